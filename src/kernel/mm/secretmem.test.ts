/**
 * memfd_secret (mm/secretmem.c): the file, the mapping rules, secretmem_fault and the
 * direct map, and GUP's refusal through vma_is_secretmem.
 * Rules: kernel-spec.md R-GUP-2 (secretmem ⇒ -EFAULT, v5.14+), O-4.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import {
  folio_is_secretmem,
  pageInDirectMap,
  sys_memfd_secret,
  vma_is_secretmem,
} from './secretmem.js';
import { vma_is_secretmem as gup_vma_is_secretmem, get_user_pages_fast } from './gup.js';
import { sys_ftruncate, sys_mmap } from '../arch/x86/entry/syscall_64.js';
import { ksys_close } from '../fs/open.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mmap.js';
import { VM_DONTDUMP, VM_LOCKED } from '../include/linux/mm.js';
import { vma_lookup } from './vma.js';
import { EFAULT, EINVAL, ENOSYS } from '../include/linux/errno.js';
import { O_CLOEXEC } from '../include/linux/fs.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { task_work_run } from '../fs/file_table.js';

const RW = PROT_READ | PROT_WRITE;

describe('sys_memfd_secret', () => {
  it('O-4: v6.5+ makes a file; before v6.5 secretmem is off by default (-ENOSYS), before v5.14 absent', () => {
    expect(bootEnv('6.18').sys(sys_memfd_secret(0))).toBeGreaterThanOrEqual(0);
    expect(bootEnv('6.1').sys(sys_memfd_secret(0))).toBe(-ENOSYS);
    expect(bootEnv('5.10').sys(sys_memfd_secret(0))).toBe(-ENOSYS);
    const env = bootEnv('6.18');
    expect(env.sys(sys_memfd_secret(1))).toBe(-EINVAL);
    expect(env.sys(sys_memfd_secret(O_CLOEXEC))).toBeGreaterThanOrEqual(0);
  });
});

describe('secretmem_mmap', () => {
  it('O-4: shared mappings only; VM_LOCKED|VM_DONTDUMP; the size may be set once', () => {
    const env = bootEnv();
    const fd = env.sys(sys_memfd_secret(0));
    expect(env.sys(sys_ftruncate(fd, 8192))).toBe(0);
    expect(env.sys(sys_ftruncate(fd, 4096))).toBe(-EINVAL);
    expect(env.sys(sys_mmap(0, 8192, RW, MAP_PRIVATE, fd, 0))).toBe(-EINVAL);
    const a = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, fd, 0));
    const vma = vma_lookup(env.task.mm!, a)!;
    expect(vma.vm_flags & (VM_LOCKED | VM_DONTDUMP)).toBe(VM_LOCKED | VM_DONTDUMP);
    expect(vma_is_secretmem(vma)).toBe(true);
    // The GUP side recognises the same VMAs.
    expect(gup_vma_is_secretmem(vma)).toBe(true);
  });
});

describe('secretmem_fault', () => {
  it('O-4: a fault allocates a zeroed page outside the direct map; GUP on it is -EFAULT', () => {
    const env = bootEnv();
    const fd = env.sys(sys_memfd_secret(0));
    env.sys(sys_ftruncate(fd, 4096));
    const a = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, fd, 0));
    expect(env.store(a, [9])).toBe('ok');
    const p = env.pfnAt(a)!;
    expect(pageInDirectMap(p)).toBe(false);
    expect(folio_is_secretmem(p as folio)).toBe(true);
    expect([...(env.load(a, 2) as Uint8Array)]).toEqual([9, 0]);
    const pages: page[] = [];
    expect(env.sys(get_user_pages_fast(a, 1, 0, pages))).toBe(-EFAULT);
    // Beyond i_size: SIGBUS.
    expect(env.load(a + 4096)).toBe('SIGBUS');
    // When the file and the mapping are gone the frame is back in the direct map.
    env.sys(sys_munmap(a, 8192));
    env.sys(ksys_close(fd));
    env.sys(task_work_run());
    expect(pageInDirectMap(p)).toBe(true);
  });
});
