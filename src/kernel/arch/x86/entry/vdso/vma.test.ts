/**
 * The vDSO mappings (arch/x86/entry/vdso/vma.c, lib/vdso/datastore.c): [vvar] is
 * VM_IO|VM_PFNMAP and its fault handler inserts pfns of kernel data pages, SIGBUS where
 * there is no data; [vdso] is a private text mapping a forced write COWs.
 * Rules: kernel-spec.md O-2, O-6 (vdso COW), R-INS-1/R-INS-2 (vmf_insert_pfn).
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../../../../test/kernel-env.js';
import {
  VDSO_NR_PAGES,
  find_vvar_vma,
  vdsoBase,
  vdso_k_rng_data_pfn,
  vdso_k_time_data_pfn,
} from './vma.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
} from '../../../../include/linux/mm.js';
import { walkToPte, ptep_get } from '../../../../include/linux/pgtable.js';
import { pte_special } from '../../include/asm/pgtable.js';
import { vma_lookup } from '../../../../mm/vma.js';
import { get_user_pages_fast } from '../../../../mm/gup.js';
import { EFAULT } from '../../../../include/linux/errno.js';
import { do_sys_open } from '../../../../fs/open.js';
import { O_RDWR } from '../../../../fs/inode.js';
import { ksys_pwrite64 } from '../../../../fs/read_write.js';
import { folio_test_anon } from '../../../../include/linux/page-flags.js';
import type { folio, page } from '../../../../include/linux/mm_types.js';

describe('vdso_install_vvar_mapping', () => {
  it('O-2: [vvar] is 4 pages of VM_READ|VM_MAYREAD|VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP, below [vdso]', () => {
    const env = bootEnv('6.18');
    const vvar = find_vvar_vma(env.task.mm!)!;
    expect(vvar.vm_end - vvar.vm_start).toBe(VDSO_NR_PAGES * 4096);
    expect(vvar.vm_flags).toBe(
      VM_READ | VM_MAYREAD | VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP,
    );
    // v6.15+: [vvar_vclock] (2 pages) sits between [vvar] and the text.
    expect(vdsoBase(env.task.mm!)).toBe(vvar.vm_end + 2 * 4096);
    const v612 = bootEnv('6.12');
    expect(vdsoBase(v612.task.mm!)).toBe(find_vvar_vma(v612.task.mm!)!.vm_end);
  });
});

describe('vvar_fault', () => {
  it('O-2: page 0 maps the time data pfn as a special PTE; the timens page and page 3 SIGBUS', () => {
    const env = bootEnv('6.18');
    const v = find_vvar_vma(env.task.mm!)!.vm_start; // e.g. 0x7effffff8000
    expect(env.load(v)).toBeInstanceOf(Uint8Array);
    const pte = ptep_get(walkToPte(env.task.mm!, v)!);
    expect(env.pfnAt(v)).toBe(vdso_k_time_data_pfn());
    expect(pte_special(pte)).toBe(true);
    expect(env.load(v + 4096)).toBe('SIGBUS');
    expect(env.load(v + 3 * 4096)).toBe('SIGBUS');
    expect(env.store(v, [1])).toBe('SIGSEGV');
  });

  it('O-2 by version: the getrandom page (2) maps from v6.11, SIGBUSes before', () => {
    const env = bootEnv('6.12');
    const v = find_vvar_vma(env.task.mm!)!.vm_start;
    expect(env.load(v + 2 * 4096)).toBeInstanceOf(Uint8Array);
    expect(env.pfnAt(v + 2 * 4096)).toBe(vdso_k_rng_data_pfn());
    const old = bootEnv('6.10');
    const w = find_vvar_vma(old.task.mm!)!.vm_start;
    expect(old.load(w + 2 * 4096)).toBe('SIGBUS');
  });

  it('O-2: GUP of [vvar] is -EFAULT even once its pages are mapped', () => {
    const env = bootEnv('6.18');
    const v = find_vvar_vma(env.task.mm!)!.vm_start;
    env.load(v);
    const pages: page[] = [];
    expect(env.sys(get_user_pages_fast(v, 1, 0, pages))).toBe(-EFAULT);
  });
});

describe('map_vdso', () => {
  it('O-6: the [vdso] text is a private VM_MAYWRITE mapping: a forced write COWs it to an anon page', () => {
    const env = bootEnv('6.18');
    const text = vdsoBase(env.task.mm!)!;
    const vma = vma_lookup(env.task.mm!, text)!;
    expect(vma.vm_flags & VM_MAYWRITE).toBe(VM_MAYWRITE);
    expect(env.load(text)).toBeInstanceOf(Uint8Array);
    const before = env.pfnAt(text)!;
    const buf = env.buffer(4096, 0xcc);
    const fd = env.sys(do_sys_open('/proc/self/mem', O_RDWR, 0));
    expect(env.sys(ksys_pwrite64(fd, buf, 1, text))).toBe(1);
    const after = env.pfnAt(text)!;
    expect(after).not.toBe(before);
    expect(folio_test_anon(after as folio)).toBe(true);
  });
});
