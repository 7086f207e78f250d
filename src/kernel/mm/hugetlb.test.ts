/**
 * Tests of hugetlb's mapping half (mm/hugetlb.c as mm/hugetlb.ts) through the paths a
 * process takes: mmap(MAP_HUGETLB) and mmap of a hugetlb memfd (ksys_mmap_pgoff), CPU
 * faults (handle_mm_fault → hugetlb_fault), fork, mprotect, MADV_DONTNEED and munmap; and
 * GUP's hugetlb walkers of the versions that had them. The pool has its tests in
 * hugetlb.pool.test.ts, hugetlbfs (mmap, truncation, eviction) in
 * fs/hugetlbfs/inode.test.ts.
 * Rules: kernel-spec.md §11 O-8 (FOLL_FORCE|FOLL_WRITE on hugetlb: a real COW on 6.18),
 * O-9/O-10 (fork and unmap with pins); the conformance kinds hugetlb-anon and
 * hugetlb-memfd (conformance/cases.ts).
 *
 * Addresses: the model's top-down allocator hands out 0x7effffe00000 for the first 2 MiB
 * mapping below MMAP_BASE (0x7f0000000000); pool pages are order-9 folios from the
 * buddy, e.g. pfn 0x...00 aligned to 512.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task, mmput } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, mm_struct, page } from '../include/linux/mm_types.js';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  MM_ANONPAGES,
  MM_FILEPAGES,
  MM_SHMEMPAGES,
  MMF_HAS_PINNED,
} from '../include/linux/mm_types.js';
import {
  FOLL_GET,
  FOLL_PIN,
  FOLL_WRITE,
  VM_FAULT_SIGSEGV,
  VM_SHARED,
  get_mm_counter,
  mm_flags_set,
} from '../include/linux/mm.js';
import {
  PageAnonExclusive,
  folio_mapcount,
  folio_pincount,
  folio_test_anon,
} from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { pte_dirty, pte_pfn, pte_write, PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { EINVAL } from '../include/linux/errno.js';
import { dmesg } from '../kernel/printk.js';
import {
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  ksys_mmap_pgoff,
  vm_munmap,
} from './mmap.js';
import { do_mprotect_pkey } from './mprotect.js';
import { MADV_DONTNEED, do_madvise } from './madvise.js';
import { handle_mm_fault } from './memory.fault.js';
import { vma_lookup } from './vma.js';
import { memfd_create, MFD_HUGETLB } from './memfd.js';
import { fput, task_work_run } from '../fs/file_table.js';
import {
  default_hstate,
  folio_test_hugetlb,
  hugetlb_sysctl_handler,
  hugetlb_usage,
} from './hugetlb.pool.js';
import {
  follow_hugetlb_page,
  hugetlb_follow_page_mask,
  hugetlbEntryAt,
  is_vma_resv_set,
  HPAGE_RESV_OWNER,
  region_add,
  region_chg,
  region_count,
  region_del,
  resv_map_alloc,
} from './hugetlb.js';
import { do_truncate } from '../fs/namei.js';
import { try_grab_folio, unpin_user_page, type page_array } from './gup.js';

const MiB = 2 ** 20;
const HP = 2 * MiB;
const RW = PROT_READ | PROT_WRITE;
const ANON_HUGE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;

function boot(version = '6.18'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  return k;
}

function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

function pool(): { nr: number; free: number; resv: number; surp: number } {
  const h = default_hstate();
  return {
    nr: h.nr_huge_pages,
    free: h.free_huge_pages,
    resv: h.resv_huge_pages,
    surp: h.surplus_huge_pages,
  };
}

function setPool(k: Kernel, n: number): void {
  expect(k.run(hugetlb_sysctl_handler(n))).toBe(0);
}

function mmap(
  k: Kernel,
  t: task_struct,
  len: number,
  prot: number,
  flags: number,
  f: file | null = null,
  addr = 0,
  pgoff = 0,
): number {
  return runAs(k, t, ksys_mmap_pgoff(t.mm!, addr, len, prot, flags, f, pgoff));
}

function store(k: Kernel, t: task_struct, addr: number, byte: number): string {
  return runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind;
}

function load(k: Kernel, t: task_struct, addr: number): number | string {
  const r = runAs(k, t, cpu_user_read(t, addr, 1));
  return r.kind === 'ok' ? r.data[0]! : r.kind;
}

function munmap(k: Kernel, t: task_struct, addr: number, len: number): number {
  const r = runAs(k, t, vm_munmap(t.mm!, addr, len));
  k.run(task_work_run());
  return r;
}

function exitTask(k: Kernel, t: task_struct): void {
  runAs(k, t, mmput(t.mm!));
  k.run(task_work_run());
}

function fork(k: Kernel, t: task_struct): task_struct {
  const c = runAs(k, t, fork_task(t));
  if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
  return c;
}

/** A fault as GUP's faultin_page makes it (FAULT_FLAG_REMOTE), under mmap_lock. */
function* faultAs(mm: mm_struct, addr: number, flags: number): Op<number> {
  yield* mmap_read_lock(mm);
  const vma = vma_lookup(mm, addr)!;
  const r = yield* handle_mm_fault(vma, addr, flags);
  yield* mmap_read_unlock(mm);
  return r;
}

function pfnAt(t: task_struct, addr: number): number {
  return pte_pfn(hugetlbEntryAt(t.mm!, addr));
}

function memfdHuge(k: Kernel, size: number): file {
  const f = memfd_create('pfnsim', MFD_HUGETLB) as file;
  expect(typeof f).toBe('object');
  expect(k.run(do_truncate(f.f_inode, size))).toBe(0);
  return f;
}

describe('hugetlb_fault', () => {
  it('a private page comes from the pool at the first fault, zeroed, anonymous, exclusive, in HugetlbPages not RSS', () => {
    for (const v of ['5.10', '5.15', '6.1', '6.6', '6.12', '6.18']) {
      const k = boot(v);
      setPool(k, 2);
      const t = create_user_task('p');
      const a = mmap(k, t, HP, RW, ANON_HUGE);
      expect(pool()).toEqual({ nr: 2, free: 2, resv: 1, surp: 0 });
      // 0x7effffe00000 + 0x1234: read fault maps a zeroed page read-only.
      expect(load(k, t, a + 0x1234)).toBe(0);
      const e = hugetlbEntryAt(t.mm!, a);
      const f = pte_pfn(e) as folio;
      expect(pte_write(e)).toBe(false);
      expect(folio_test_hugetlb(f)).toBe(true);
      expect(folio_test_anon(f)).toBe(true);
      expect(PageAnonExclusive(f as number as page)).toBe(true);
      expect(folio_mapcount(f)).toBe(1);
      expect(page_ref_count(f as number as page)).toBe(1);
      expect(pool()).toEqual({ nr: 2, free: 1, resv: 0, surp: 0 });
      expect(hugetlb_usage(t.mm!)).toBe(512);
      expect(get_mm_counter(t.mm!, MM_ANONPAGES)).toBe(0);
      expect(get_mm_counter(t.mm!, MM_FILEPAGES)).toBe(0);
      // The write fault reuses the exclusive page and makes the entry writable.
      expect(store(k, t, a + 0x1234, 0x5a)).toBe('ok');
      expect(pfnAt(t, a)).toBe(f);
      expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(true);
      expect(load(k, t, a + 0x1234)).toBe(0x5a);
    }
  });

  it('a mapping past the end of a shared hugetlbfs file is SIGBUS', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    const f = memfdHuge(k, HP);
    // A read-only mapping does not extend i_size: the second huge page is beyond EOF.
    const a = mmap(k, t, 2 * HP, PROT_READ, MAP_SHARED, f);
    expect(load(k, t, a)).toBe(0);
    expect(load(k, t, a + HP)).toBe('SIGBUS');
    fput(f);
  });
});

describe('copy_hugetlb_page_range', () => {
  it('fork of a private mapping: both see the page read-only; the writer COWs into a new pool page, the other keeps the old one', () => {
    for (const v of ['5.10', '5.15', '6.1', '6.6', '6.12', '6.18']) {
      const k = boot(v);
      setPool(k, 3);
      const parent = create_user_task('parent');
      const a = mmap(k, parent, HP, RW, ANON_HUGE);
      expect(store(k, parent, a + 8, 0x11)).toBe('ok');
      const old = pfnAt(parent, a) as folio;
      const child = fork(k, parent);
      // Both map the same folio read-only; it is no longer exclusive.
      expect(pfnAt(child, a)).toBe(old);
      expect(pte_write(hugetlbEntryAt(parent.mm!, a))).toBe(false);
      expect(pte_write(hugetlbEntryAt(child.mm!, a))).toBe(false);
      expect(folio_mapcount(old)).toBe(2);
      // PG_anon_exclusive exists from v5.19 (6c287605fd56).
      if (v !== '5.10' && v !== '5.15')
        expect(PageAnonExclusive(old as number as page)).toBe(false);
      expect(hugetlb_usage(child.mm!)).toBe(512);
      // The child's VMA carries no reservation of its own.
      expect(is_vma_resv_set(vma_lookup(child.mm!, a)!, HPAGE_RESV_OWNER)).toBe(false);
      expect(pool()).toEqual({ nr: 3, free: 2, resv: 0, surp: 0 });
      // The parent (the reserve owner) writes: hugetlb_wp copies into a new page.
      expect(store(k, parent, a + 8, 0x22)).toBe('ok');
      const copy = pfnAt(parent, a);
      expect(copy).not.toBe(old);
      expect(pte_write(hugetlbEntryAt(parent.mm!, a))).toBe(true);
      expect(folio_test_anon(copy as folio)).toBe(true);
      expect(pool()).toEqual({ nr: 3, free: 1, resv: 0, surp: 0 });
      expect(load(k, child, a + 8)).toBe(0x11);
      expect(load(k, parent, a + 8)).toBe(0x22);
      expect(folio_mapcount(old)).toBe(1);
      // The child is now the only user: its write fault reuses the old page.
      expect(store(k, child, a + 8, 0x33)).toBe('ok');
      expect(pfnAt(child, a)).toBe(old);
      expect(pool()).toEqual({ nr: 3, free: 1, resv: 0, surp: 0 });
      exitTask(k, child);
      expect(pool()).toEqual({ nr: 3, free: 2, resv: 0, surp: 0 });
      exitTask(k, parent);
      expect(pool()).toEqual({ nr: 3, free: 3, resv: 0, surp: 0 });
    }
  });

  it('O-9, 4eae4efa2c29 (v5.12): a pinned private hugetlb page is copied for the child at fork; not before', () => {
    for (const [v, copied] of [
      ['5.10', false],
      ['5.15', true],
      ['6.18', true],
    ] as const) {
      const k = boot(v);
      setPool(k, 3);
      const parent = create_user_task('parent');
      const a = mmap(k, parent, HP, RW, ANON_HUGE);
      expect(store(k, parent, a, 0x44)).toBe('ok');
      const f = pfnAt(parent, a) as folio;
      // FOLL_PIN of one subpage through the GUP walker of the version.
      expect(pinOne(k, parent, a, v)).toBe(f);
      expect(folio_pincount(f)).toBe(1);
      const child = fork(k, parent);
      if (copied) {
        expect(pfnAt(child, a)).not.toBe(f);
        expect(load(k, child, a)).toBe(0x44);
        // The parent keeps its exclusive, writable page.
        expect(pte_write(hugetlbEntryAt(parent.mm!, a))).toBe(true);
        expect(folio_mapcount(f)).toBe(1);
      } else {
        expect(pfnAt(child, a)).toBe(f);
        expect(folio_mapcount(f)).toBe(2);
      }
      exitTask(k, child);
      exitTask(k, parent);
      // The pin keeps the folio out of the pool until it is dropped. From v6.9 the zap
      // set HPG_restore_reserve on it and the VMA's close already released the owner's
      // reservation, so resv_huge_pages is one short (an unsigned wrap in the kernel)
      // until the pinned folio is freed.
      expect(pool()).toEqual({ nr: 3, free: 2, resv: v === '6.18' ? -1 : 0, surp: 0 });
      unpin_user_page(f as number as page);
      expect(pool()).toEqual({ nr: 3, free: 3, resv: 0, surp: 0 });
    }
  });

  it('O-9: a shared memfd mapping is never copied: the child maps the same page (PTEs copied on 5.x, none from v6.0)', () => {
    for (const v of ['5.15', '6.18']) {
      const k = boot(v);
      setPool(k, 2);
      const parent = create_user_task('parent');
      const f = memfdHuge(k, HP);
      const a = mmap(k, parent, HP, RW, MAP_SHARED, f);
      expect(store(k, parent, a, 0x66)).toBe('ok');
      const pg = pfnAt(parent, a);
      const child = fork(k, parent);
      // bcd51a3c679d (v6.0): no page tables copied for a VMA without anon_vma.
      expect(hugetlbEntryAt(child.mm!, a) !== 0).toBe(v === '5.15');
      expect(load(k, child, a)).toBe(0x66);
      expect(pfnAt(child, a)).toBe(pg);
      expect(pte_write(hugetlbEntryAt(parent.mm!, a))).toBe(true);
      exitTask(k, child);
      exitTask(k, parent);
      fput(f);
      k.run(task_work_run());
      expect(pool()).toEqual({ nr: 2, free: 2, resv: 0, surp: 0 });
    }
  });
});

/**
 * A FOLL_PIN of the subpage at addr as GUP takes it in the version: follow_hugetlb_page
 * before v6.5, hugetlb_follow_page_mask v6.5–v6.8, the generic leaf walk's try_grab_folio
 * from v6.9 (gup.ts); the page is present and writable, so no fault is needed.
 */
function pinOne(k: Kernel, t: task_struct, addr: number, v: string): number {
  const mm = t.mm!;
  mm_flags_set(MMF_HAS_PINNED, mm); // mm_set_has_pinned_flag, as the pin entry points do
  if (v === '5.10' || v === '5.15') {
    const pages: page_array = [];
    const n = runAs(
      k,
      t,
      (function* () {
        yield* mmap_read_lock(mm);
        const r = yield* follow_hugetlb_page(
          mm,
          vma_lookup(mm, addr)!,
          pages,
          0,
          { value: addr },
          { value: 1 },
          0,
          FOLL_PIN | FOLL_WRITE,
          null,
        );
        yield* mmap_read_unlock(mm);
        return r;
      })(),
    );
    expect(n).toBe(1);
    return pages[0]!;
  }
  const head = pfnAt(t, addr);
  expect(try_grab_folio(head as folio, 1, FOLL_PIN)).toBe(0);
  return head;
}

describe('hugetlb_wp', () => {
  it('O-8: a FOLL_FORCE write into a read-only private page shared after fork does a real COW (v6.14+): new page, dirty, not writable, exclusive', () => {
    const k = boot('6.18');
    setPool(k, 3);
    const parent = create_user_task('parent');
    const a = mmap(k, parent, HP, PROT_READ, ANON_HUGE);
    expect(load(k, parent, a)).toBe(0);
    const old = pfnAt(parent, a) as folio;
    const child = fork(k, parent);
    expect(folio_mapcount(old)).toBe(2);
    // The forced write, as GUP's faultin_page issues it for /proc/<pid>/mem.
    expect(runAs(k, parent, faultAs(parent.mm!, a, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE))).toBe(0);
    const e = hugetlbEntryAt(parent.mm!, a);
    const copy = pte_pfn(e) as folio;
    expect(copy).not.toBe(old);
    expect(pte_write(e)).toBe(false); // no VM_WRITE: make_huge_pte keeps it read-only
    expect(pte_dirty(e)).toBe(false);
    expect(PageAnonExclusive(copy as number as page)).toBe(true); // GUP may follow it for write
    expect(folio_mapcount(old)).toBe(1);
    expect(pfnAt(child, a)).toBe(old);
    expect(pool().free).toBe(1);
    // A CPU write is still refused: the VMA is PROT_READ.
    expect(store(k, parent, a, 1)).toBe('SIGSEGV');
    exitTask(k, child);
    exitTask(k, parent);
    expect(pool()).toEqual({ nr: 3, free: 3, resv: 0, surp: 0 });
  });

  it('O-8: a FOLL_FORCE write into an exclusive read-only private page reuses it and leaves the entry read-only (v6.14+)', () => {
    const k = boot('6.18');
    setPool(k, 1);
    const t = create_user_task('p');
    const a = mmap(k, t, HP, PROT_READ, ANON_HUGE);
    expect(load(k, t, a)).toBe(0);
    const pg = pfnAt(t, a);
    expect(runAs(k, t, faultAs(t.mm!, a, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE))).toBe(0);
    expect(pfnAt(t, a)).toBe(pg);
    expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(false);
    expect(PageAnonExclusive(pg as page)).toBe(true);
  });

  it('1d8d14641fd9 (v6.0)–v6.13: a write fault without VM_WRITE on hugetlb WARNs and is SIGSEGV', () => {
    for (const v of ['6.1', '6.12', '6.13']) {
      const k = boot(v);
      setPool(k, 2);
      const t = create_user_task('p');
      const a = mmap(k, t, HP, PROT_READ, ANON_HUGE);
      expect(load(k, t, a)).toBe(0);
      expect(runAs(k, t, faultAs(t.mm!, a, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE))).toBe(
        VM_FAULT_SIGSEGV,
      );
      expect(dmesg()).toContain('WARNING');
      expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(false);
    }
  });

  it('before v6.0 (hugetlb_cow) a forced write made the entry writable without VM_WRITE (the bug the 6.14 rework names)', () => {
    const k = boot('5.15');
    setPool(k, 2);
    const t = create_user_task('p');
    const a = mmap(k, t, HP, PROT_READ, ANON_HUGE);
    expect(load(k, t, a)).toBe(0);
    expect(runAs(k, t, faultAs(t.mm!, a, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE))).toBe(0);
    expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(true);
  });

  it('the reserve owner whose COW finds no free page takes the page from its child (unmap_ref_private); the child then SIGBUSes', () => {
    const k = boot('6.18');
    setPool(k, 1);
    const parent = create_user_task('parent');
    const a = mmap(k, parent, HP, RW, ANON_HUGE);
    expect(store(k, parent, a, 7)).toBe('ok');
    const pg = pfnAt(parent, a);
    const child = fork(k, parent);
    expect(pool()).toEqual({ nr: 1, free: 0, resv: 0, surp: 0 });
    expect(store(k, parent, a, 8)).toBe('ok');
    // No page for a copy: the child lost its mapping, the parent reuses the page.
    expect(pfnAt(parent, a)).toBe(pg);
    expect(hugetlbEntryAt(child.mm!, a)).toBe(0);
    expect(load(k, child, a)).toBe('SIGBUS');
    expect(dmesg()).toContain('killed due to inadequate hugepage pool');
  });
});

describe('hugetlb_change_protection', () => {
  it('mprotect makes the huge entries read-only and back; a split inside a huge page is -EINVAL', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    const a = mmap(k, t, 2 * HP, RW, ANON_HUGE);
    expect(store(k, t, a, 1)).toBe('ok');
    expect(runAs(k, t, do_mprotect_pkey(t.mm!, a, 2 * HP, PROT_READ, -1))).toBe(0);
    expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(false);
    expect(store(k, t, a, 2)).toBe('SIGSEGV');
    expect(runAs(k, t, do_mprotect_pkey(t.mm!, a, 4096, RW, -1))).toBe(-EINVAL);
    expect(runAs(k, t, do_mprotect_pkey(t.mm!, a, HP, RW, -1))).toBe(0);
    // No write upgrade: the exclusive page is made writable by the next write fault.
    expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(false);
    expect(store(k, t, a, 3)).toBe('ok');
    expect(pte_write(hugetlbEntryAt(t.mm!, a))).toBe(true);
    expect(t.mm!.mmap.length).toBe(2);
    exitTask(k, t);
    expect(pool()).toEqual({ nr: 2, free: 2, resv: 0, surp: 0 });
  });
});

describe('madvise_dontneed_free_valid_vma (hugetlb)', () => {
  it('O-10, 90e7e7f5ef3f (v5.18): MADV_DONTNEED on hugetlb is -EINVAL before, zaps after; the refault gets a fresh page', () => {
    const k1 = boot('5.15');
    setPool(k1, 1);
    const t1 = create_user_task('p');
    const a1 = mmap(k1, t1, HP, RW, ANON_HUGE);
    expect(store(k1, t1, a1, 1)).toBe('ok');
    expect(runAs(k1, t1, do_madvise(t1.mm!, a1, HP, MADV_DONTNEED))).toBe(-EINVAL);

    for (const [v, resv] of [
      ['6.6', 0],
      ['6.18', 1],
    ] as const) {
      const k = boot(v);
      setPool(k, 2);
      const t = create_user_task('p');
      const a = mmap(k, t, HP, RW, ANON_HUGE);
      expect(store(k, t, a, 1)).toBe('ok');
      expect(runAs(k, t, do_madvise(t.mm!, a, HP, MADV_DONTNEED))).toBe(0);
      expect(hugetlbEntryAt(t.mm!, a)).toBe(0);
      // v6.9 ("mm/hugetlb: restore the reservation if needed"): the owner's reservation
      // comes back with the page.
      expect(pool()).toEqual({ nr: 2, free: 2, resv, surp: 0 });
      expect(load(k, t, a)).toBe(0); // refaults a fresh zeroed page
      expect(pool().free).toBe(1);
    }
  });

  it('start must be huge-page aligned; the end is rounded up before v6.3 and down since', () => {
    for (const [v, zapped] of [
      ['6.1', true],
      ['6.6', false],
    ] as const) {
      const k = boot(v);
      setPool(k, 1);
      const t = create_user_task('p');
      const a = mmap(k, t, HP, RW, ANON_HUGE);
      expect(store(k, t, a, 1)).toBe('ok');
      expect(runAs(k, t, do_madvise(t.mm!, a + 4096, 4096, MADV_DONTNEED))).toBe(-EINVAL);
      expect(runAs(k, t, do_madvise(t.mm!, a, 4096, MADV_DONTNEED))).toBe(0);
      expect(hugetlbEntryAt(t.mm!, a) === 0).toBe(zapped);
    }
  });
});

describe('hugetlb_no_page (shared)', () => {
  it('a hugetlb memfd mapped by two processes: one page in the page cache, seen and written by both', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const p1 = create_user_task('p1');
    const p2 = create_user_task('p2');
    const f = memfdHuge(k, HP);
    expect(pool().resv).toBe(0); // ftruncate reserves nothing
    const a1 = mmap(k, p1, HP, RW, MAP_SHARED, f);
    expect(pool().resv).toBe(1); // the file's region [0, 1) is reserved
    const a2 = mmap(k, p2, HP, RW, MAP_SHARED, f);
    expect(pool().resv).toBe(1); // already reserved for this file
    expect(vma_lookup(p1.mm!, a1)!.vm_flags & VM_SHARED).toBe(VM_SHARED);
    expect(store(k, p1, a1 + 100, 0x77)).toBe('ok');
    expect(load(k, p2, a2 + 100)).toBe(0x77);
    const pg = pfnAt(p1, a1) as folio;
    expect(pfnAt(p2, a2)).toBe(pg);
    expect(folio_test_anon(pg)).toBe(false);
    expect(folio_mapcount(pg)).toBe(2);
    expect(f.f_inode.i_mapping.nrpages).toBe(512);
    expect(pte_write(hugetlbEntryAt(p2.mm!, a2))).toBe(true); // shared writable: no COW
    expect(store(k, p2, a2 + 101, 0x78)).toBe('ok');
    expect(load(k, p1, a1 + 101)).toBe(0x78);
    expect(get_mm_counter(p1.mm!, MM_SHMEMPAGES)).toBe(0);
    expect(pool()).toEqual({ nr: 2, free: 1, resv: 0, surp: 0 });
    // Unmapping both leaves the page in the file; closing the file frees it to the pool.
    expect(munmap(k, p1, a1, HP)).toBe(0);
    expect(munmap(k, p2, a2, HP)).toBe(0);
    expect(pool().free).toBe(1);
    fput(f);
    k.run(task_work_run());
    expect(pool()).toEqual({ nr: 2, free: 2, resv: 0, surp: 0 });
  });
});

describe('follow_hugetlb_page / hugetlb_follow_page_mask', () => {
  it('follow_hugetlb_page (≤ v6.4) faults the page in and takes one reference per subpage asked for', () => {
    const k = boot('5.15');
    setPool(k, 1);
    const t = create_user_task('p');
    const mm = t.mm!;
    const a = mmap(k, t, HP, RW, ANON_HUGE);
    const pages: page_array = [];
    const pos = { value: a + 2 * PAGE_SIZE };
    const nr = { value: 3 };
    const n = runAs(
      k,
      t,
      (function* () {
        yield* mmap_read_lock(mm);
        const r = yield* follow_hugetlb_page(
          mm,
          vma_lookup(mm, a)!,
          pages,
          0,
          pos,
          nr,
          0,
          FOLL_GET | FOLL_WRITE,
          null,
        );
        yield* mmap_read_unlock(mm);
        return r;
      })(),
    );
    expect(n).toBe(3);
    const head = pfnAt(t, a);
    expect(pages).toEqual([head + 2, head + 3, head + 4]);
    expect(pos.value).toBe(a + 5 * PAGE_SIZE);
    expect(nr.value).toBe(0);
    expect(page_ref_count(head as page)).toBe(1 + 3);
    expect(pte_write(hugetlbEntryAt(mm, a))).toBe(true);
  });

  it('hugetlb_follow_page_mask (v6.5–v6.8) returns the subpage, sets page_mask, and NULL for a write through a read-only entry', () => {
    const k = boot('6.6');
    setPool(k, 2);
    const t = create_user_task('p');
    const mm = t.mm!;
    const a = mmap(k, t, HP, RW, ANON_HUGE);
    expect(load(k, t, a)).toBe(0);
    const head = pfnAt(t, a);
    const ctx = { page_mask: 0 };
    const run = (flags: number): number | null =>
      runAs(
        k,
        t,
        (function* () {
          yield* mmap_read_lock(mm);
          const r = yield* hugetlb_follow_page_mask(vma_lookup(mm, a)!, a + 0x5000, flags, ctx);
          yield* mmap_read_unlock(mm);
          return r;
        })(),
      );
    expect(run(FOLL_GET | FOLL_WRITE)).toBeNull(); // read-only entry: fault first
    expect(run(FOLL_PIN)).toBe(head + 5);
    expect(ctx.page_mask).toBe(511);
    expect(folio_pincount(head as folio)).toBe(1);
  });
});

describe('resv_map regions', () => {
  it('region_chg / region_add / region_del / region_count keep disjoint huge-page intervals', () => {
    boot('6.18');
    const r = resv_map_alloc();
    expect(region_chg(r, 0, 4)).toBe(4);
    expect(region_add(r, 0, 4)).toBe(4);
    expect(region_chg(r, 2, 6)).toBe(2);
    expect(region_add(r, 2, 6)).toBe(2);
    expect(r.regions).toEqual([{ from: 0, to: 6 }]);
    expect(region_del(r, 1, 3)).toBe(2);
    expect(r.regions).toEqual([
      { from: 0, to: 1 },
      { from: 3, to: 6 },
    ]);
    expect(region_count(r, 0, 10)).toBe(4);
    expect(region_del(r, 0, Infinity)).toBe(4);
    expect(r.adds_in_progress).toBe(0);
  });
});
