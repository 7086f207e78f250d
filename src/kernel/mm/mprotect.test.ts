/**
 * Tests of mprotect(2) (mm/mprotect.c: do_mprotect_pkey, mprotect_fixup,
 * change_protection) and of what the CPU then sees.
 * Rules: kernel-spec.md §8 R-MMUN-2 (PROTECTION_VMA); §0 (VM_MAYWRITE of MAP_SHARED with a
 * read-only fd); §2 R-VNP-6 (special entries keep their pfn).
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import type { Op } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, mm_struct, vm_operations_struct } from '../include/linux/mm_types.js';
import { MMF_HAS_MDWE } from '../include/linux/mm_types.js';
import { VM_MAYWRITE, VM_READ, VM_WRITE, mm_flags_set } from '../include/linux/mm.js';
import { EACCES, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { ptep_get, walkToPte } from '../include/linux/pgtable.js';
import { pte_special } from '../arch/x86/include/asm/pgtable.js';
import {
  _PAGE_CACHE_MASK,
  _PAGE_CACHE_UC_MINUS,
  pte_dirty,
  pte_flags,
  pte_pfn,
  pte_present,
  pte_protnone,
  pte_write,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { alloc_file, new_inode, O_RDONLY, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { notifierLog } from './mmu_notifier.js';
import { shmem_file_setup } from './shmem.js';
import { vma_lookup } from './vma.js';
import { PROT_GROWSDOWN, PROT_GROWSUP, do_mprotect_pkey } from './mprotect.js';
import { remap_pfn_range } from './memory.pfnmap.js';
import { createExt4File } from '../fs/ext4/file.js';

const MiB = 2 ** 20;
const BAR = 0xc0000000;
const BAR_PFN = BAR / 4096;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'bar' }],
  });
  return k;
}

function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

function mmapAnonAt(
  k: Kernel,
  t: task_struct,
  addr: number,
  len: number,
  prot = PROT_READ | PROT_WRITE,
): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(t.mm!, null, addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0),
  );
  expect(a).toBe(addr);
  return a;
}

function write(k: Kernel, t: task_struct, addr: number, byte: number) {
  return runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte])));
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

/** A driver mapping its BAR uncached (UC-) with special entries, as remap_pfn_range. */
function barFile(): file {
  const ops: vm_operations_struct = { name: 'bar_vm_ops' };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/bar', O_RDWR, inode, {
    name: 'bar_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      // pgprot_noncached(vma->vm_page_prot), then remap_pfn_range.
      vma.vm_page_prot = (vma.vm_page_prot & ~_PAGE_CACHE_MASK) | _PAGE_CACHE_UC_MINUS;
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        BAR_PFN,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  });
}

import type { Runner } from '../../sched/index.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { PageAnonExclusive } from '../include/linux/page-flags.js';
import { pgd_offset, pmd_index, pud_index, walkToLeaf } from '../include/linux/pgtable.js';
import { pmd_leaf } from '../arch/x86/include/asm/pgtable.js';
import {
  is_pmd_migration_entry,
  is_readable_exclusive_migration_entry,
  is_readable_migration_entry,
  is_writable_migration_entry,
  swp_offset,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
} from '../include/linux/swapops.js';
import { __GFP_MOVABLE } from './page_alloc.js';

/** The PMD entry of addr (a PMD migration entry is neither a leaf nor a table). */
function pmdAt(mm: mm_struct, addr: number): pteval_t {
  const pgd = pgd_offset(mm, addr);
  const pmdT = pgd.t.children![pgd.i]!.children![pud_index(addr)]!;
  return pmdT.entries[pmd_index(addr)]!;
}

/**
 * Starts migrate_pages() of the folio mapped at `addr` (PTE or PMD leaf; isolated first)
 * in thread 0 of a runner, and stops it once try_to_migrate has replaced the mappings by
 * migration entries and dropped the page-table lock: its next step is the reference check
 * of __migrate_folio.
 */
function startMigration(k: Kernel, mm: mm_struct, addr: number) {
  const src = pte_pfn(ptep_get(walkToLeaf(mm, addr)!.ptr)) as folio;
  return migrationAtRefCheck(k, src);
}

/** Runs thread tid alone until it ends. */
function runThread(r: Runner, tid: number): unknown {
  while (!r.threads[tid]!.done) expect(r.step(tid)).toBe(true);
  if (r.threads[tid]!.error) throw r.threads[tid]!.error;
  return r.threads[tid]!.result;
}

describe('do_mprotect_pkey', () => {
  it('mprotect(PROT_READ) makes writes fault and then SIGSEGV; reads and pfns stay', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    expect(write(k, t, a, 0x41).kind).toBe('ok');
    const before = pteAt(mm, a);
    expect(pte_write(before)).toBe(true);
    notifierLog().length = 0;
    expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ))).toBe(0);
    const after = pteAt(mm, a);
    expect(pte_write(after)).toBe(false);
    expect(pte_pfn(after)).toBe(pte_pfn(before));
    expect(pte_dirty(after)).toBe(true);
    expect(vma_lookup(mm, a)!.vm_flags & (VM_READ | VM_WRITE)).toBe(VM_READ);
    // R-MMUN-2: the rewrite runs inside MMU_NOTIFY_PROTECTION_VMA.
    expect(notifierLog().map((e) => `${e.phase}:${e.event}`)).toEqual([
      'start:MMU_NOTIFY_PROTECTION_VMA',
      'end:MMU_NOTIFY_PROTECTION_VMA',
    ]);
    expect(write(k, t, a, 0x42)).toEqual({ kind: 'SIGSEGV', si_code: 'SEGV_ACCERR', addr: a });
    const r = runAs(k, t, cpu_user_read(t, a, 1));
    expect(r.kind === 'ok' && r.data[0]).toBe(0x41);
  });

  it('PROT_NONE entries stay (protnone) and every access SIGSEGVs', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x1000);
    write(k, t, a, 1);
    const p = pte_pfn(pteAt(mm, a));
    expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x1000, PROT_NONE))).toBe(0);
    expect(pte_protnone(pteAt(mm, a))).toBe(true);
    expect(pte_pfn(pteAt(mm, a))).toBe(p);
    expect(runAs(k, t, cpu_user_read(t, a, 1)).kind).toBe('SIGSEGV');
  });

  it('PROT_WRITE on MAP_SHARED of a read-only fd is -EACCES (no VM_MAYWRITE)', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const shm = shmem_file_setup('ro', 0x2000, 0n);
    if (typeof shm === 'number') throw new Error('shmem');
    const ro = alloc_file('/dev/shm/ro', O_RDONLY, shm.f_inode, shm.f_op);
    const a = runAs(k, t, vm_mmap_pgoff(mm, ro, 0, 0x2000, PROT_READ, MAP_SHARED, 0));
    expect(a).toBeGreaterThan(0);
    expect(vma_lookup(mm, a)!.vm_flags & VM_MAYWRITE).toBe(0n);
    expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ | PROT_WRITE))).toBe(-EACCES);
    expect(vma_lookup(mm, a)!.vm_flags & VM_WRITE).toBe(0n);
    // The same file opened read-write maps with VM_MAYWRITE: allowed.
    const b = runAs(k, t, vm_mmap_pgoff(mm, shm, 0, 0x2000, PROT_READ, MAP_SHARED, 0));
    expect(runAs(k, t, do_mprotect_pkey(mm, b, 0x2000, PROT_READ | PROT_WRITE))).toBe(0);
  });

  it('argument checks and holes', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x2000);
    mmapAnonAt(k, t, 0x10003000, 0x1000);
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000800, 0x1000, PROT_READ))).toBe(-EINVAL);
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0, PROT_READ))).toBe(0);
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0x1000, 0x10))).toBe(-EINVAL);
    expect(
      runAs(
        k,
        t,
        do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP),
      ),
    ).toBe(-EINVAL);
    // PROT_GROWSDOWN on a VMA without VM_GROWSDOWN.
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ | PROT_GROWSDOWN))).toBe(
      -EINVAL,
    );
    // Start outside any VMA.
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x0fff0000, 0x1000, PROT_READ))).toBe(-ENOMEM);
    // A gap: the first VMA is changed, then -ENOMEM.
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0x4000, PROT_READ))).toBe(-ENOMEM);
    expect(vma_lookup(mm, 0x10001000)!.vm_flags & VM_WRITE).toBe(0n);
    expect(vma_lookup(mm, 0x10003000)!.vm_flags & VM_WRITE).toBe(VM_WRITE);
    // Past the last VMA: -ENOMEM after the change.
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10003000, 0x2000, PROT_READ))).toBe(-ENOMEM);
    // A wrapping range.
    expect(runAs(k, t, do_mprotect_pkey(mm, 2 ** 64 - 0x1000, 0x2000, PROT_READ))).toBe(-ENOMEM);
    expect(mm.mmap_lock.isLocked()).toBe(false);
  });

  it('splits the VMA at the edges of the range', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x4000);
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10001000, 0x2000, PROT_READ))).toBe(0);
    expect(mm.mmap.map((v) => [v.vm_start, v.vm_end, (v.vm_flags & VM_WRITE) !== 0n])).toEqual([
      [0x10000000, 0x10001000, true],
      [0x10001000, 0x10003000, false],
      [0x10003000, 0x10004000, true],
    ]);
  });

  it('R-VNP-6: special pfnmap entries keep pfn, special bit and cache mode', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = runAs(
      k,
      t,
      vm_mmap_pgoff(
        mm,
        barFile(),
        0x20000000,
        0x2000,
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_FIXED,
        0,
      ),
    );
    expect(pte_write(pteAt(mm, a))).toBe(true);
    expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ))).toBe(0);
    for (let i = 0; i < 2; i++) {
      const v = pteAt(mm, a + i * 4096);
      expect(pte_pfn(v)).toBe(BAR_PFN + i);
      expect(pte_special(v)).toBe(true);
      expect(pte_write(v)).toBe(false);
      expect(pte_flags(v) & _PAGE_CACHE_MASK).toBe(_PAGE_CACHE_UC_MINUS);
    }
    // And back to RW: the driver's entries become writable again (no write-notify).
    expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ | PROT_WRITE))).toBe(0);
    expect(pte_write(pteAt(mm, a))).toBe(true);
    expect(pte_present(pteAt(mm, a))).toBe(true);
  });

  it('RW again: v6.12 makes exclusive anon pages writable at once; v5.10 waits for a fault', () => {
    for (const [v, writable] of [
      ['5.10', false],
      ['6.12', true],
    ] as const) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const a = mmapAnonAt(k, t, 0x10000000, 0x1000);
      write(k, t, a, 1);
      expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x1000, PROT_READ))).toBe(0);
      expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x1000, PROT_READ | PROT_WRITE))).toBe(0);
      expect(pte_write(pteAt(mm, a))).toBe(writable);
      // Either way a write succeeds (the fault reuses the exclusive page).
      const p = pte_pfn(pteAt(mm, a));
      expect(write(k, t, a, 2).kind).toBe('ok');
      expect(pte_pfn(pteAt(mm, a))).toBe(p);
    }
  });

  it('write-notify (ext4, ->page_mkwrite): RW again makes dirty entries writable, clean ones stay read-only', () => {
    for (const v of ['5.10', '6.12']) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const f = createExt4File('/data', new Uint8Array(0x2000).fill(7));
      const a = runAs(k, t, vm_mmap_pgoff(mm, f, 0, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
      expect(a).toBeGreaterThan(0);
      expect(write(k, t, a, 1).kind).toBe('ok'); // page 0: dirty, writable
      expect(runAs(k, t, cpu_user_read(t, a + 0x1000, 1)).kind).toBe('ok'); // page 1: clean, read-only
      expect([pte_write(pteAt(mm, a)), pte_write(pteAt(mm, a + 0x1000))]).toEqual([true, false]);
      expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ))).toBe(0);
      expect([pte_write(pteAt(mm, a)), pte_write(pteAt(mm, a + 0x1000))]).toEqual([false, false]);
      // v5.10 MM_CP_DIRTY_ACCT / v6.12 MM_CP_TRY_CHANGE_WRITABLE: the FS already knows
      // the dirty page; the clean one must fault into ->page_mkwrite first.
      expect(runAs(k, t, do_mprotect_pkey(mm, a, 0x2000, PROT_READ | PROT_WRITE))).toBe(0);
      expect([pte_write(pteAt(mm, a)), pte_write(pteAt(mm, a + 0x1000))]).toEqual([true, false]);
      expect(write(k, t, a + 0x1000, 2).kind).toBe('ok');
      expect(pte_write(pteAt(mm, a + 0x1000))).toBe(true);
    }
  });

  it('MDWE (v6.3+): write+exec and new exec are -EACCES', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    mm_flags_set(MMF_HAS_MDWE, mm);
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ | PROT_EXEC))).toBe(
      -EACCES,
    );
    expect(runAs(k, t, do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ))).toBe(0);
  });
});

describe('change_pte_range', () => {
  for (const v of ['5.15', '6.12']) {
    it(`(${v}) mprotect(PROT_READ) during a migration turns the writable migration entry read-only (readable-exclusive for anon v5.19+); the restored PTE is read-only and a write gets SIGSEGV`, () => {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      // 0x10000000: one anonymous page, written (writable, dirty, young).
      mmapAnonAt(k, t, 0x10000000, 0x1000);
      expect(write(k, t, 0x10000000, 0x71).kind).toBe('ok');
      const { r, src } = startMigration(k, mm, 0x10000000);
      const before = pteAt(mm, 0x10000000);
      expect(is_writable_migration_entry(before)).toBe(true);
      r.spawn('mprotect', do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ), t);
      expect(runThread(r, 1)).toBe(0);
      const e = pteAt(mm, 0x10000000);
      if (v === '6.12') expect(is_readable_exclusive_migration_entry(e)).toBe(true);
      else expect(is_readable_migration_entry(e)).toBe(true);
      // The offset (pfn and, v6.1+, the young/dirty bits) is kept.
      expect(swp_offset(e)).toBe(swp_offset(before));
      if (v === '6.12') expect(swp_offset(e)).toBe(src + SWP_MIG_YOUNG + SWP_MIG_DIRTY);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      const pte = pteAt(mm, 0x10000000);
      expect(pte_pfn(pte)).not.toBe(src);
      expect(pte_write(pte)).toBe(false);
      if (v === '6.12') expect(PageAnonExclusive(pte_pfn(pte) as page)).toBe(true);
      expect(write(k, t, 0x10000000, 0x72)).toEqual({
        kind: 'SIGSEGV',
        si_code: 'SEGV_ACCERR',
        addr: 0x10000000,
      });
      const rd = runAs(k, t, cpu_user_read(t, 0x10000000, 1));
      expect(rd.kind === 'ok' && rd.data[0]).toBe(0x71);
    });
  }

  it('(6.12) the downgrade happens whatever the new protection: mprotect keeping PROT_WRITE (adding PROT_EXEC) still restores a read-only PTE; the next write reuses the exclusive page in place', () => {
    const k = boot('6.12');
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    expect(write(k, t, 0x10000000, 0x71).kind).toBe('ok');
    const { r } = startMigration(k, mm, 0x10000000);
    r.spawn(
      'mprotect',
      do_mprotect_pkey(mm, 0x10000000, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC),
      t,
    );
    expect(runThread(r, 1)).toBe(0);
    expect(is_readable_exclusive_migration_entry(pteAt(mm, 0x10000000))).toBe(true);
    expect(r.run().status).toBe('done');
    const dst = pte_pfn(pteAt(mm, 0x10000000));
    expect(pte_write(pteAt(mm, 0x10000000))).toBe(false);
    expect(write(k, t, 0x10000000, 0x73).kind).toBe('ok');
    expect(pte_pfn(pteAt(mm, 0x10000000))).toBe(dst);
    expect(pte_write(pteAt(mm, 0x10000000))).toBe(true);
  });
});

describe('change_huge_pmd', () => {
  it('(6.12) a PMD migration entry of a THP made PROT_READ becomes readable-exclusive; the restored PMD leaf is read-only', () => {
    const k = boot('6.12');
    const t = create_user_task('t');
    const mm = t.mm!;
    // 0x40000000..0x40200000: one PMD-mapped anonymous THP.
    mmapAnonAt(k, t, 0x40000000, 0x200000);
    expect(write(k, t, 0x40000000, 0x55).kind).toBe('ok');
    expect(walkToLeaf(mm, 0x40000000)!.level).toBe('pmd');
    const { r, src } = startMigration(k, mm, 0x40000000);
    expect(is_pmd_migration_entry(pmdAt(mm, 0x40000000))).toBe(true);
    expect(is_writable_migration_entry(pmdAt(mm, 0x40000000))).toBe(true);
    r.spawn('mprotect', do_mprotect_pkey(mm, 0x40000000, 0x200000, PROT_READ), t);
    expect(runThread(r, 1)).toBe(0);
    expect(is_readable_exclusive_migration_entry(pmdAt(mm, 0x40000000))).toBe(true);
    expect(r.run().status).toBe('done');
    const l = walkToLeaf(mm, 0x40000000)!;
    expect(l.level).toBe('pmd');
    const pmd = ptep_get(l.ptr);
    expect(pmd_leaf(pmd) && !pte_write(pmd)).toBe(true);
    expect(pte_pfn(pmd)).not.toBe(src);
    expect(write(k, t, 0x40001000, 1).kind).toBe('SIGSEGV');
  });
});
