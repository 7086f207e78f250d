/**
 * Tests of mremap(2) (mm/mremap.c): shrink, grow in place, move, and the refusal to grow
 * VM_DONTEXPAND / VM_PFNMAP VMAs.
 * Rules: kernel-spec.md §1 R-VMA-1 (VM_DONTEXPAND: no mremap growth); §8 R-MMUN-2
 * (move_page_tables: UNMAP on the old range); §2 R-VNP-6 (moved special entries keep
 * their pfn, no refcount change).
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import type { Op } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  mm_struct,
  page,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { MM_ANONPAGES } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  get_mm_counter,
} from '../include/linux/mm.js';
import { EFAULT, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { folio_index, page_mapcount } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { ptep_get, walkToPte } from '../include/linux/pgtable.js';
import { pte_special } from '../arch/x86/include/asm/pgtable.js';
import { pte_pfn, type pteval_t } from '../arch/x86/include/asm/pgtable_types.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  __vm_munmap,
  vm_mmap_pgoff,
} from './mmap.js';
import { page_is_free } from './page_alloc.js';
import { notifierLog } from './mmu_notifier.js';
import { vma_lookup } from './vma.js';
import { folio_mappings } from './rmap.js';
import { MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, do_mremap } from './mremap.js';
import { remap_pfn_range } from './memory.pfnmap.js';
import { pat_memtype_list } from '../arch/x86/mm/pat/memtype.js';

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

function mmapAnonAt(k: Kernel, t: task_struct, addr: number, len: number): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(
      t.mm!,
      null,
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      0,
    ),
  );
  expect(a).toBe(addr);
  return a;
}

function write(k: Kernel, t: task_struct, addr: number, byte: number): void {
  expect(runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind).toBe('ok');
}

function read(k: Kernel, t: task_struct, addr: number): number {
  const r = runAs(k, t, cpu_user_read(t, addr, 1));
  expect(r.kind).toBe('ok');
  return r.kind === 'ok' ? r.data[0]! : -1;
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

/** A driver file: flags is VM_PFNMAP-style or just VM_DONTEXPAND. */
function driverFile(flags: bigint, counts = { close: 0, mremap: 0 }): file {
  const ops: vm_operations_struct = {
    name: 'drv_vm_ops',
    close: () => void counts.close++,
    mremap: () => {
      counts.mremap++;
      return 0;
    },
  };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/drv', O_RDWR, inode, {
    name: 'drv_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      if (flags & VM_PFNMAP)
        return yield* remap_pfn_range(
          vma,
          vma.vm_start,
          BAR_PFN,
          vma.vm_end - vma.vm_start,
          vma.vm_page_prot,
        );
      vma.vm_flags |= flags;
      return 0;
    },
  });
}

function mmapDrv(k: Kernel, t: task_struct, f: file, addr: number, len: number): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(t.mm!, f, addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, 0),
  );
  expect(a).toBe(addr);
  return a;
}

import type { Runner } from '../../sched/index.js';
import { pgd_offset, pmd_index, pud_index, walkToLeaf } from '../include/linux/pgtable.js';
import {
  is_migration_entry,
  is_pmd_migration_entry,
  is_writable_migration_entry,
  swp_offset_pfn,
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

describe('do_mremap', () => {
  it('R-VMA-1: growing a VM_DONTEXPAND VMA is -EFAULT, in place or with MREMAP_MAYMOVE', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapDrv(k, t, driverFile(VM_DONTEXPAND | VM_MIXEDMAP), 0x20000000, 0x2000);
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x4000, 0))).toBe(-EFAULT);
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x4000, MREMAP_MAYMOVE))).toBe(-EFAULT);
    expect(vma_lookup(mm, a)!.vm_end).toBe(a + 0x2000);
    // Shrinking is allowed.
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x1000, 0))).toBe(a);
    expect(vma_lookup(mm, a)!.vm_end).toBe(a + 0x1000);
    expect(mm.mmap_lock.isLocked()).toBe(false);
  });

  it('R-VMA-1: a VM_PFNMAP VMA cannot grow (-EFAULT) but can move at the same size', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const counts = { close: 0, mremap: 0 };
    const a = mmapDrv(
      k,
      t,
      driverFile(VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, counts),
      0x20000000,
      0x2000,
    );
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x3000, MREMAP_MAYMOVE))).toBe(-EFAULT);
    notifierLog().length = 0;
    const b = runAs(
      k,
      t,
      do_mremap(mm, a, 0x2000, 0x2000, MREMAP_MAYMOVE | MREMAP_FIXED, 0x30000000),
    );
    expect(b).toBe(0x30000000);
    // R-VNP-6: the special entries moved as they were.
    for (let i = 0; i < 2; i++) {
      expect(pteAt(mm, a + i * 4096)).toBe(0);
      const v = pteAt(mm, b + i * 4096);
      expect(pte_pfn(v)).toBe(BAR_PFN + i);
      expect(pte_special(v)).toBe(true);
    }
    // A shared VMA keeps the pgoff mmap gave it (remap_pfn_range sets it only for COW).
    expect(vma_lookup(mm, b)!.vm_pgoff).toBe(0);
    expect(vma_lookup(mm, a)).toBeNull();
    expect(counts).toEqual({ close: 1, mremap: 1 });
    // R-MMUN-2: the move is an UNMAP of the old range (then the old VMA's munmap).
    const starts = notifierLog().filter((e) => e.phase === 'start');
    expect(starts.map((e) => [e.event, e.start, e.end])).toEqual([
      ['MMU_NOTIFY_UNMAP', a, a + 0x2000],
      ['MMU_NOTIFY_UNMAP', a, a + 0x2000],
    ]);
  });

  it('moving a remapped VMA keeps its memtype reservation with the new VMA', () => {
    for (const v of ['6.12', '6.18']) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const a = mmapDrv(k, t, driverFile(VM_PFNMAP), 0x20000000, 0x2000);
      expect(pat_memtype_list().map((m) => [m.start, m.end])).toEqual([[BAR, BAR + 0x2000]]);
      const b = runAs(
        k,
        t,
        do_mremap(mm, a, 0x2000, 0x2000, MREMAP_MAYMOVE | MREMAP_FIXED, 0x30000000),
      );
      expect(b).toBe(0x30000000);
      // The old VMA's munmap did not untrack: up to v6.15 its VM_PAT was cleared
      // (untrack_pfn_clear); from v6.16 the new VMA holds a reference to the context.
      expect(pat_memtype_list().map((m) => [m.start, m.end])).toEqual([[BAR, BAR + 0x2000]]);
      expect(runAs(k, t, __vm_munmap(mm, b, 0x2000, true))).toBe(0);
      expect(pat_memtype_list()).toEqual([]);
    }
  });

  it('shrinking unmaps the tail and frees its pages', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x4000);
    const pfns: number[] = [];
    for (let i = 0; i < 4; i++) {
      write(k, t, a + i * 4096, i + 1);
      pfns.push(pte_pfn(pteAt(mm, a + i * 4096)));
    }
    expect(runAs(k, t, do_mremap(mm, a, 0x4000, 0x1800, 0))).toBe(a);
    expect(vma_lookup(mm, a)!.vm_end).toBe(a + 0x2000);
    expect(pfns.map((p) => page_is_free(p))).toEqual([false, false, true, true]);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(2);
    // Same size: nothing happens.
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x2000, 0))).toBe(a);
    expect(mm.mmap_lock.isLocked()).toBe(false);
  });

  it('grows in place when the space after the VMA is free', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    write(k, t, a, 9);
    const total = mm.total_vm;
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x5000, 0))).toBe(a);
    expect(vma_lookup(mm, a)!.vm_end).toBe(a + 0x5000);
    expect(mm.total_vm).toBe(total + 3);
    write(k, t, a + 0x4000, 1);
    expect(read(k, t, a)).toBe(9);
  });

  it('growth blocked by the next VMA: -ENOMEM without MREMAP_MAYMOVE; moved with it', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    mmapAnonAt(k, t, 0x10002000, 0x1000);
    write(k, t, a, 0x11);
    write(k, t, a + 0x1000, 0x22);
    const p0 = pte_pfn(pteAt(mm, a));
    const p1 = pte_pfn(pteAt(mm, a + 0x1000));
    const idx = folio_index(p0 as folio);
    const pgoff = vma_lookup(mm, a)!.vm_pgoff;
    expect(runAs(k, t, do_mremap(mm, a, 0x2000, 0x4000, 0))).toBe(-ENOMEM);
    notifierLog().length = 0;
    const b = runAs(k, t, do_mremap(mm, a, 0x2000, 0x4000, MREMAP_MAYMOVE));
    expect(b).toBeGreaterThan(0);
    expect(b).not.toBe(a);
    // The pages moved with their entries: same frames, same refcount and mapcount,
    // folio->index and vm_pgoff kept, so the rmap finds them at the new address.
    expect(pte_pfn(pteAt(mm, b))).toBe(p0);
    expect(pte_pfn(pteAt(mm, b + 0x1000))).toBe(p1);
    expect(pteAt(mm, a)).toBe(0);
    expect(vma_lookup(mm, a)).toBeNull();
    const nv = vma_lookup(mm, b)!;
    expect([nv.vm_start, nv.vm_end, nv.vm_pgoff]).toEqual([b, b + 0x4000, pgoff]);
    expect(folio_index(p0 as folio)).toBe(idx);
    expect([page_ref_count(p0 as page), page_mapcount(p0 as page)]).toEqual([1, 1]);
    expect(folio_mappings(p0 as folio).map((h) => h.address)).toEqual([b]);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(2);
    expect([read(k, t, b), read(k, t, b + 0x1000)]).toEqual([0x11, 0x22]);
    // R-MMUN-2: UNMAP around the move of the old range.
    expect(notifierLog()[0]).toMatchObject({
      phase: 'start',
      event: 'MMU_NOTIFY_UNMAP',
      start: a,
      end: a + 0x2000,
    });
  });

  it('argument checks', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    expect(runAs(k, t, do_mremap(mm, a, 0x1000, 0x1000, 8))).toBe(-EINVAL);
    expect(runAs(k, t, do_mremap(mm, a, 0x1000, 0x2000, MREMAP_FIXED, 0x30000000))).toBe(-EINVAL);
    expect(runAs(k, t, do_mremap(mm, a, 0x1000, 0x2000, MREMAP_DONTUNMAP | MREMAP_MAYMOVE))).toBe(
      -EINVAL,
    );
    expect(runAs(k, t, do_mremap(mm, a + 1, 0x1000, 0x2000, 0))).toBe(-EINVAL);
    expect(runAs(k, t, do_mremap(mm, a, 0x1000, 0, 0))).toBe(-EINVAL);
    // old_len past the end of the VMA.
    expect(runAs(k, t, do_mremap(mm, a, 0x3000, 0x4000, MREMAP_MAYMOVE))).toBe(-EFAULT);
    // Duplicating a private mapping (old_len 0) is refused (v5.18+).
    expect(runAs(k, t, do_mremap(mm, a, 0, 0x1000, MREMAP_MAYMOVE))).toBe(-EINVAL);
    // Overlapping MREMAP_FIXED target.
    expect(
      runAs(k, t, do_mremap(mm, a, 0x2000, 0x2000, MREMAP_MAYMOVE | MREMAP_FIXED, a + 0x1000)),
    ).toBe(-EINVAL);
    expect(mm.mmap_lock.isLocked()).toBe(false);
  });

  it('no VMA at addr: -EFAULT from v5.16; up to v5.15 a shrink there succeeds', () => {
    for (const [v, shrink] of [
      ['5.15', 0x10000000],
      ['6.12', -EFAULT],
    ] as const) {
      const k = boot(v);
      const t = create_user_task('t');
      expect(runAs(k, t, do_mremap(t.mm!, 0x10000000, 0x2000, 0x1000, 0))).toBe(shrink);
      expect(runAs(k, t, do_mremap(t.mm!, 0x10000000, 0x1000, 0x2000, 0))).toBe(-EFAULT);
      expect(t.mm!.mmap_lock.isLocked()).toBe(false);
    }
  });
});

describe('move_ptes', () => {
  for (const v of ['5.10', '6.12']) {
    it(`(${v}) mremap of a page under migration moves its migration entry like any entry; the migration then maps the new frame at the new address`, () => {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      // 0x10000000 (one written page) moves to 0x30000000.
      mmapAnonAt(k, t, 0x10000000, 0x1000);
      write(k, t, 0x10000000, 0x44);
      const { r, src } = startMigration(k, mm, 0x10000000);
      const entry = pteAt(mm, 0x10000000);
      r.spawn(
        'mremap',
        do_mremap(mm, 0x10000000, 0x1000, 0x1000, MREMAP_MAYMOVE | MREMAP_FIXED, 0x30000000),
        t,
      );
      expect(runThread(r, 1)).toBe(0x30000000);
      expect(pteAt(mm, 0x10000000)).toBe(0);
      expect(pteAt(mm, 0x30000000)).toBe(entry);
      expect(swp_offset_pfn(pteAt(mm, 0x30000000))).toBe(src);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      const dst = pte_pfn(pteAt(mm, 0x30000000));
      expect(dst).not.toBe(src);
      expect(page_mapcount(dst as page)).toBe(1);
      expect(page_is_free(src as number as page)).toBe(true);
      expect(read(k, t, 0x30000000)).toBe(0x44);
    });
  }
});

describe('move_page_tables', () => {
  it('(6.12) mremap of a THP under migration splits the PMD migration entry and moves the 512 PTE migration entries; the new folio is mapped by PTEs at the new address', () => {
    const k = boot('6.12');
    const t = create_user_task('t');
    const mm = t.mm!;
    // 0x40000000..0x40200000: one PMD-mapped THP; it moves to 0x80000000.
    mmapAnonAt(k, t, 0x40000000, 0x200000);
    write(k, t, 0x40000000 + 0x5000, 0x66);
    expect(walkToLeaf(mm, 0x40000000)!.level).toBe('pmd');
    const { r, src } = startMigration(k, mm, 0x40000000);
    expect(is_pmd_migration_entry(pmdAt(mm, 0x40000000))).toBe(true);
    r.spawn(
      'mremap',
      do_mremap(mm, 0x40000000, 0x200000, 0x200000, MREMAP_MAYMOVE | MREMAP_FIXED, 0x80000000),
      t,
    );
    expect(runThread(r, 1)).toBe(0x80000000);
    expect(is_writable_migration_entry(pteAt(mm, 0x80000000))).toBe(true);
    expect(is_migration_entry(pteAt(mm, 0x801ff000))).toBe(true);
    expect(swp_offset_pfn(pteAt(mm, 0x80005000))).toBe(src + 5);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(512);
    expect(r.run().status).toBe('done');
    expect(r.threads[0]!.result).toBe(0);
    const dst = pte_pfn(pteAt(mm, 0x80000000));
    expect(dst).not.toBe(src);
    expect(pte_pfn(pteAt(mm, 0x801ff000))).toBe(dst + 511);
    expect(page_ref_count(dst as page)).toBe(512);
    expect(read(k, t, 0x80005000)).toBe(0x66);
  });
});
