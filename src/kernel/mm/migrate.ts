/**
 * Page migration: migrate_pages() and the steps below it (unmap the folio by replacing
 * each mapping with a migration entry, check the folio's references, copy it, move
 * mapping/index/flags and the page-cache slot to the new folio, restore the mappings
 * pointing to the new folio, free the old one), the waits of faults that find a
 * migration entry, and the LRU isolation helpers callers use to hand folios to
 * migrate_pages(). The entries' encoding is include/linux/swapops.ts.
 *
 * Model choices:
 *  - Migration entries are installed, as in the kernel. Between try_to_migrate() and
 *    remove_migration_ptes() every PTE (or PMD) that mapped the folio holds a
 *    non-present swap-type entry naming the old page (swapops.ts), and the old folio is
 *    locked. A fault that finds one calls migration_entry_wait() (PMD:
 *    pmd_migration_entry_wait()), which blocks until the folio is unlocked and returns
 *    so the fault is retried. Zap, fork, mprotect and mremap handle the entries as the
 *    kernel does (memory.zap.ts, memory.copy.ts, mprotect.ts, huge_memory.anon.ts); an
 *    entry zapped meanwhile is simply not restored.
 *  - There are no LRU lists. An anonymous or page-cache folio that is not a page
 *    table, kernel or reserved page counts as "on the LRU"; isolating it takes a
 *    reference and marks it isolated until it is put back or freed.
 *  - The folio lock is filemap.ts's (folio_lock, folio_trylock, folio_unlock);
 *    folio_wait_writeback is a local helper (filemap.ts has none).
 *  - Left out: hugetlb, KSM, swap cache, device-private pages, non-LRU movable pages
 *    (balloon, zsmalloc), THP splitting on -ENOMEM, deferred-split handling,
 *    memcg/zone statistics, mlock bookkeeping, the TLB batch flush, NUMA node choice.
 *
 * @kernel mm/migrate.c, include/linux/swapops.h (v5.7+; batched unmap/move v6.3+)
 */
import type { Op, Step } from '../../sched/index.js';
import type {
  address_space,
  anon_vma,
  entry_ptr,
  folio,
  mm_struct,
  page,
  pmd_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import { VM_BUG_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { EAGAIN, EBUSY, EINVAL, EIO, ENOMEM } from '../include/linux/errno.js';
import { folio_maybe_dma_pinned } from '../include/linux/mm.js';
import {
  is_migration_entry,
  is_pmd_migration_entry,
  is_readable_migration_entry,
  is_swap_pte,
  is_writable_migration_entry,
  is_migration_entry_dirty,
  is_migration_entry_young,
  make_migration_entry_dirty,
  make_migration_entry_young,
  make_readable_exclusive_migration_entry,
  make_readable_migration_entry,
  make_writable_migration_entry,
  pfn_swap_entry_folio,
  pmd_to_swp_entry,
  pte_to_swp_entry,
  swp_entry_to_pmd,
  swp_entry_to_pte,
  swp_offset_pfn,
  type swp_entry_t,
} from '../include/linux/swapops.js';
import { folio_lock, folio_trylock, folio_unlock } from './filemap.js';
import {
  __folio_set_swapbacked,
  ClearPageAnonExclusive,
  folio_clear_dirty,
  folio_clear_writeback,
  folio_index,
  folio_mapcount,
  folio_mapped,
  folio_mark_uptodate,
  folio_nr_pages,
  folio_order,
  folio_pincount,
  folio_raw_mapping,
  folio_set_dirty_flag,
  folio_set_index,
  folio_set_lru,
  folio_set_mapping,
  folio_test_anon,
  folio_test_dirty,
  folio_test_large,
  folio_test_locked,
  folio_test_swapbacked,
  folio_test_uptodate,
  folio_test_writeback,
  page_flags,
  PageAnonExclusive,
  prep_compound_page,
  SetPageAnonExclusive,
  set_page_flag,
  clear_page_flag,
} from '../include/linux/page-flags.js';
import {
  folio_get,
  folio_ref_obj,
  folio_put,
  folio_try_get,
  folio_ref_add,
  folio_ref_count,
  set_page_count,
} from '../include/linux/page_ref.js';
import {
  pfn_pte,
  pte_dirty,
  pte_mkdirty,
  pte_mkhuge,
  pte_mkold,
  pte_mkwrite,
  pte_pfn,
  pte_present,
  pte_write,
  pte_young,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pmd_leaf, pmd_none } from '../arch/x86/include/asm/pgtable.js';
import {
  pgd_offset,
  pmd_index,
  ptep_get,
  pte_index,
  pud_index,
  set_pmd_at,
  set_pte_at,
  ptep_get_and_clear,
  pmdp_huge_get_and_clear,
  pmd_lock,
  pte_offset_map_lock,
  pte_unmap_unlock,
} from '../include/linux/pgtable.js';
import { pud_leaf } from '../arch/x86/include/asm/pgtable.js';
import {
  down_read,
  spin_lock,
  spin_unlock,
  up_read,
  type spinlock_t,
} from '../include/linux/spinlock.js';
import {
  folio_add_anon_rmap_pmd,
  folio_add_anon_rmap_ptes,
  folio_add_file_rmap_pmd,
  folio_add_file_rmap_ptes,
  folio_remove_rmap_pmd,
  folio_remove_rmap_ptes,
  rmap_candidates,
  vma_address,
  RMAP_EXCLUSIVE,
  RMAP_NONE,
} from './rmap.js';
import {
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
  MMU_NOTIFY_CLEAR,
} from './mmu_notifier.js';
import {
  phys_copy_frame,
  PG_buddy,
  PG_kernel,
  PG_lru,
  PG_referenced,
  PG_reserved,
  PG_table,
  PG_tail,
} from './sparse.js';
import {
  alloc_pages,
  GFP_TRANSHUGE,
  __GFP_COMP,
  __GFP_RECLAIM,
  pfn_in_cma_area,
  zone_state_obj,
} from './page_alloc.js';

/* ------------------------------------------------------------------------------------ */
/* enum migrate_mode, enum migrate_reason (include/linux/migrate_mode.h)                 */
/* ------------------------------------------------------------------------------------ */

export const MIGRATE_ASYNC = 0;
export const MIGRATE_SYNC_LIGHT = 1;
export const MIGRATE_SYNC = 2;

export const MR_COMPACTION = 0;
export const MR_MEMORY_FAILURE = 1;
export const MR_MEMORY_HOTPLUG = 2;
/** MR_SYSCALL: move_pages(2), migrate_pages(2); also applies to cpusets. */
export const MR_SYSCALL = 3;
export const MR_MEMPOLICY_MBIND = 4;
export const MR_NUMA_MISPLACED = 5;
export const MR_CONTIG_RANGE = 6;
export const MR_LONGTERM_PIN = 7;
export const MR_DEMOTION = 8;
export const MR_DAMON = 9;
export const MR_TYPES = 10;
export const MIGRATE_REASON_NAMES = [
  'compaction',
  'memory_failure',
  'memory_hotplug',
  'syscall_or_cpuset',
  'mempolicy_mbind',
  'numa_misplaced',
  'contig_range',
  'longterm_pin',
  'demotion',
  'damon',
];

export const MIGRATEPAGE_SUCCESS = 0;
/** Internal: the folio was unmapped and waits for the move step (v6.3+). */
export const MIGRATEPAGE_UNMAP = 1;

/** Passes over the list before migrate_pages() gives up on folios that keep failing. */
export const NR_MAX_MIGRATE_PAGES_RETRY = 10;
/** v6.3+: passes of the first, asynchronous batch of a synchronous migration. */
export const NR_MAX_MIGRATE_ASYNC_RETRY = 3;
export const NR_MAX_MIGRATE_SYNC_RETRY = NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY;

/** try_to_migrate() flags (enum ttu_flags). */
export const TTU_SPLIT_HUGE_PMD = 0x4;
export const TTU_SYNC = 0x10;
export const TTU_BATCH_FLUSH = 0x40;
export const TTU_RMAP_LOCKED = 0x80;

/* ------------------------------------------------------------------------------------ */
/* Model state: isolated folios, per-folio failure records, the folio lock              */
/* ------------------------------------------------------------------------------------ */

/** Why the last migration attempt of a folio failed (model record for reports). */
export interface MigrateFailure {
  readonly pfn: number;
  /** The kernel's result for the attempt (-EAGAIN, -EBUSY, -ENOMEM, ...). */
  readonly rc: number;
  readonly reason: string;
  readonly refcount: number;
  /** What the refcount would be with no extra reference: mappings + expected refs. */
  readonly expected: number;
  readonly mapcount: number;
  /** folio->_pincount (large folios only). */
  readonly pincount: number;
  readonly maybe_dma_pinned: boolean;
}

interface DstState {
  page_was_mapped: boolean;
  anon_vma: anon_vma | null;
}

interface MigrateState {
  readonly isolated: Set<number>;
  readonly failures: Map<number, MigrateFailure>;
  readonly dst: Map<number, DstState>;
}

function mstate(): MigrateState {
  const k = currentKernel();
  return ((k.sub.migrate as MigrateState | undefined) ??= {
    isolated: new Set(),
    failures: new Map(),
    dst: new Map(),
  });
}

/** The last recorded migration failure of the folio at pfn, if any. */
export function migrate_failure(pfn: number): MigrateFailure | undefined {
  return mstate().failures.get(pfn);
}

/** The failures of a folio whose references kept it from migrating (retry_repeats). */
const EXTRA_REFS = 'extra references: refcount differs from folio_expected_refs()';
const MAYBE_PINNED = 'exclusive anonymous folio may be DMA-pinned: its mapping stays';

function recordFailure(f: folio, rc: number, reason: string): void {
  const mapping = folio_mapping(f);
  const mapcount = folio_mapcount(f);
  mstate().failures.set(f, {
    pfn: f,
    rc,
    reason,
    refcount: folio_ref_count(f),
    expected: folio_expected_refs(mapping, f) + mapcount,
    mapcount,
    pincount: folio_test_large(f) ? folio_pincount(f) : 0,
    maybe_dma_pinned: folio_maybe_dma_pinned(f),
  });
}

/**
 * The step object of the folio lock, as filemap.ts names it (folio_lock and friends come
 * from there; migration_entry_wait_on_locked waits on the same object).
 */
function folioLockObj(f: folio): string {
  return `folio${f}.lock`;
}

/** folio_wait_writeback(folio): sleeps until PG_writeback is clear. */
function* folio_wait_writeback(f: folio): Op<void> {
  const s: Step = {
    obj: `folio${f.toString(16)}.PG_writeback`,
    kind: 'read',
    what: 'folio_wait_writeback',
    enabled: () => !folio_test_writeback(f),
  };
  yield s;
}

/** folio_mapping(folio): the page-cache address_space, NULL for anonymous folios. */
function folio_mapping(f: folio): address_space | null {
  if (folio_test_anon(f)) return null;
  return (folio_raw_mapping(f) as address_space | null) ?? null;
}

/* ------------------------------------------------------------------------------------ */
/* LRU isolation (mm/vmscan.c, mm/swap.c) as the model has it                            */
/* ------------------------------------------------------------------------------------ */

/**
 * Whether the model counts a folio as on an LRU list: PG_lru, or an anonymous or
 * page-cache folio (the model does not maintain LRU lists) that is not isolated and is
 * not a free, tail, page-table, kernel or reserved page.
 */
export function folioOnLru(f: folio): boolean {
  if (mstate().isolated.has(f)) return false;
  const fl = page_flags(f);
  if (fl & (PG_buddy | PG_tail | PG_table | PG_kernel | PG_reserved)) return false;
  if (fl & PG_lru) return true;
  return folio_test_anon(f) || folio_raw_mapping(f) !== null;
}

/** Whether folio_isolate_lru() took this folio off the LRU (model query). */
export function folioIsolated(f: folio): boolean {
  return mstate().isolated.has(f);
}

/**
 * folio_isolate_lru(folio): takes the folio off its LRU list for migration, with a
 * reference the caller owns.
 * @kernel mm/vmscan.c:folio_isolate_lru (v6.x; isolate_lru_page before)
 * Locking: lruvec lock internally; the caller holds a reference.
 * Return: true if isolated, false if it was not on an LRU list.
 */
export function folio_isolate_lru(f: folio): boolean {
  VM_BUG_ON(
    folio_ref_count(f) === 0,
    `VM_BUG_ON_FOLIO(!folio_ref_count(folio)) pfn:0x${f.toString(16)}`,
  );
  if (!folioOnLru(f)) return false;
  folio_get(f);
  clear_page_flag(f, PG_lru);
  mstate().isolated.add(f);
  return true;
}

/**
 * folio_putback_lru(folio): back on the LRU, dropping the isolation reference.
 * @kernel mm/vmscan.c:folio_putback_lru (v6.x; putback_lru_page before)
 */
export function folio_putback_lru(f: folio): void {
  mstate().isolated.delete(f);
  folio_set_lru(f);
  folio_put(f);
}

/** folio_add_lru(folio): a new folio goes on the LRU (mm/swap.c). */
function folio_add_lru(f: folio): void {
  folio_set_lru(f);
}

/**
 * How a step of {@link contig_ref_step} touches the folio and its zone:
 * - 'read': reads the reference count;
 * - 'write': changes the references (a pin, a get, a put that cannot be the last);
 * - 'put': drops a reference that may be the last: the folio may go back to its zone's
 *   free lists (the zone is in `also`);
 * - 'isolate': changes the references or the LRU flag next to a read of the pageblock's
 *   migratetype (folio_is_longterm_pinnable, the scan of alloc_contig_range: the zone is
 *   in `reads`).
 */
export type contig_ref_kind = 'read' | 'write' | 'put' | 'isolate';

/**
 * Model: the step before a reference, LRU or pin change on a folio in a CMA area, the
 * frames that alloc_contig_range() (cma_alloc) scans, isolates and migrates while GUP
 * pins them and migrates them itself, reading the references without the page-table
 * lock. Other folios keep the steps they had: nothing else in the model reads their
 * references unlocked.
 */
export function* contig_ref_step(
  f: folio,
  what: string,
  kind: contig_ref_kind = 'write',
): Op<void> {
  if (!pfn_in_cma_area(f)) return;
  const obj = folio_ref_obj(f);
  if (kind === 'read') yield { obj, kind: 'read', what };
  else if (kind === 'write') yield { obj, kind: 'write', what };
  else if (kind === 'put') yield { obj, kind: 'write', what, also: [zone_state_obj(f)] };
  else yield { obj, kind: 'write', what, reads: [zone_state_obj(f)] };
}

/**
 * putback_movable_pages(list): puts folios that were not migrated back on their LRU
 * lists; empties the list.
 * @kernel mm/migrate.c:putback_movable_pages (all versions)
 * Locking: the lruvec lock per folio (a step per folio in a CMA area: contig_ref_step).
 */
export function* putback_movable_pages(l: folio[]): Op<void> {
  for (const f of l.splice(0)) {
    yield* contig_ref_step(f, 'folio_putback_lru', 'put');
    folio_putback_lru(f);
  }
}

/* ------------------------------------------------------------------------------------ */
/* Allocation of the destination                                                         */
/* ------------------------------------------------------------------------------------ */

/** struct migration_target_control */
export interface migration_target_control {
  nid: number;
  gfp_mask: number;
  reason: number;
}

export type new_folio_t = (src: folio, priv: unknown) => folio | null;
export type free_folio_t = (dst: folio, priv: unknown) => void;

/**
 * alloc_migration_target(src, private): a new folio of src's order with the caller's
 * gfp mask (large folios: GFP_TRANSHUGE without reclaim). The model has one node.
 * @kernel mm/migrate.c:alloc_migration_target (v5.9+)
 * Return: the new folio (refcount 1), or NULL.
 */
export const alloc_migration_target: new_folio_t = (src, priv) => {
  const mtc = priv as migration_target_control;
  let gfp = mtc.gfp_mask;
  let order = 0;
  if (folio_test_large(src)) {
    gfp &= ~__GFP_RECLAIM;
    gfp |= GFP_TRANSHUGE;
    order = folio_order(src);
  }
  const p = alloc_pages(gfp | (order ? __GFP_COMP : 0), order);
  if (p === null) return null;
  if (order > 0) prep_compound_page(p, order);
  return p as number as folio;
};

/* ------------------------------------------------------------------------------------ */
/* Page-table walking for migration entries (page_vma_mapped_walk, PVMW_MIGRATION)       */
/* ------------------------------------------------------------------------------------ */

interface Slot {
  readonly ptr: entry_ptr;
  readonly level: 'pte' | 'pmd';
}

/**
 * The PTE or PMD slot for addr: the PMD slot when it holds a leaf or a non-present,
 * non-none entry (a PMD migration entry), else the PTE slot; null when there is no table.
 */
function slotFor(mm: mm_struct, addr: number): Slot | null {
  const pgdp = pgd_offset(mm, addr);
  const pudT = pgdp.t.children?.[pgdp.i];
  if (!pudT) return null;
  const pudv = pudT.entries[pud_index(addr)]!;
  if (pud_leaf(pudv)) return null;
  const pmdT = pudT.children?.[pud_index(addr)];
  if (!pmdT) return null;
  const pmdp: pmd_t_ptr = { t: pmdT, i: pmd_index(addr) };
  const pmdv = pmdT.entries[pmdp.i]!;
  if (pmd_none(pmdv)) return null;
  if (pmd_leaf(pmdv) || is_swap_pte(pmdv)) return { ptr: pmdp, level: 'pmd' };
  const pteT = pmdT.children?.[pmdp.i];
  if (!pteT) return null;
  return { ptr: { t: pteT, i: pte_index(addr) }, level: 'pte' };
}

function slotLock(s: Slot): spinlock_t {
  return s.ptr.t.ptl!;
}

/** The first page of the folio mapped inside vma, and its address, or null. */
function folioInVma(f: folio, vma: vm_area_struct): { i: number; address: number } | null {
  const n = folio_nr_pages(f);
  const idx = folio_index(f);
  for (let i = 0; i < n; i++) {
    const a = vma_address(vma, idx + i);
    if (a >= 0) return { i, address: a };
  }
  return null;
}

/** rmap_walk over the folio's VMAs, holding i_mmap_rwsem for read for file folios. */
function* rmapWalkVmas(
  f: folio,
  locked: boolean,
  visit: (vma: vm_area_struct) => Op<boolean>,
  done?: () => boolean,
): Op<void> {
  const m = folio_raw_mapping(f);
  const file = m && !folio_test_anon(f) ? (m as address_space) : null;
  if (file && !locked) yield* down_read(file.i_mmap_rwsem);
  try {
    for (const vma of rmap_candidates(f)) {
      if (!(yield* visit(vma))) break;
      if (done?.()) break;
    }
  } finally {
    if (file && !locked) yield* up_read(file.i_mmap_rwsem);
  }
}

/* ------------------------------------------------------------------------------------ */
/* try_to_migrate / remove_migration_ptes                                                */
/* ------------------------------------------------------------------------------------ */

/**
 * folio_try_share_anon_rmap_pte/pmd(folio, page): an exclusive anonymous page is about
 * to lose its only mapping temporarily; refuse (-EBUSY) if it may be DMA-pinned, else
 * clear PageAnonExclusive (the migration entry remembers exclusivity).
 * @kernel include/linux/rmap.h:folio_try_share_anon_rmap_pte (v6.7+;
 *   page_try_share_anon_rmap v5.19+, 6c287605fd56)
 */
function folio_try_share_anon_rmap(f: folio, p: page): number {
  if (folio_maybe_dma_pinned(f)) return -EBUSY;
  ClearPageAnonExclusive(p);
  return 0;
}

/**
 * set_pmd_migration_entry(pvmw, page): replaces a PMD mapping of a THP by a PMD
 * migration entry.
 * @kernel mm/huge_memory.c:set_pmd_migration_entry (all versions)
 * Locking: the PMD lock is held.
 * Return: 0, or -EBUSY when an exclusive anonymous THP may be pinned (entry restored).
 */
function* set_pmd_migration_entry(
  f: folio,
  vma: vm_area_struct,
  address: number,
  pmdp: pmd_t_ptr,
): Op<number> {
  const mm = vma.vm_mm;
  const p = f as number as page;
  const pmdval = yield* pmdp_huge_get_and_clear(mm, address, pmdp);
  const anon_exclusive = since(5, 19) && folio_test_anon(f) && PageAnonExclusive(p);
  if (anon_exclusive && folio_try_share_anon_rmap(f, p)) {
    yield* set_pmd_at(mm, address, pmdp, pmdval);
    recordFailure(f, -EAGAIN, MAYBE_PINNED);
    return -EBUSY;
  }
  if (pte_dirty(pmdval)) folio_set_dirty_flag(f);
  let entry: swp_entry_t;
  if (pte_write(pmdval)) entry = make_writable_migration_entry(p);
  else if (anon_exclusive) entry = make_readable_exclusive_migration_entry(p);
  else entry = make_readable_migration_entry(p);
  if (since(6, 1)) {
    if (pte_young(pmdval)) entry = make_migration_entry_young(entry);
    if (pte_dirty(pmdval)) entry = make_migration_entry_dirty(entry);
  }
  yield* set_pmd_at(mm, address, pmdp, swp_entry_to_pmd(entry));
  folio_remove_rmap_pmd(f, vma);
  folio_put(f);
  return 0;
}

/**
 * try_to_migrate_one(folio, vma, address, flags): replaces every mapping of the folio in
 * one VMA by a migration entry, inside an MMU_NOTIFY_CLEAR range over the folio's span
 * in the VMA. Each cleared PTE drops its rmap and its folio reference; RSS is unchanged.
 * @kernel mm/rmap.c:try_to_migrate_one (v5.14+, a98a2f0c8ce1; try_to_unmap_one with
 *   TTU_MIGRATION before)
 * Locking: folio locked; takes each PTE/PMD lock.
 * Return: false to stop the rmap walk (an exclusive anonymous page may be pinned).
 */
function* try_to_migrate_one(f: folio, vma: vm_area_struct, _flags: number): Op<boolean> {
  const mm = vma.vm_mm;
  const where = folioInVma(f, vma);
  if (!where) return true;
  const n = folio_nr_pages(f);
  const end = Math.min(where.address + (n - where.i) * 4096, vma.vm_end);
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, where.address, end);
  yield* mmu_notifier_invalidate_range_start(range);
  let ret = true;
  let held: spinlock_t | null = null;
  for (let i = where.i, a = where.address; i < n && a < vma.vm_end; i++, a += 4096) {
    const s = slotFor(mm, a);
    if (!s) continue;
    const l = slotLock(s);
    if (held !== l) {
      if (held) yield* spin_unlock(held);
      yield* spin_lock(l);
      held = l;
    }
    const v = ptep_get(s.ptr);
    if (!pte_present(v) && !(s.level === 'pmd' && pmd_leaf(v))) continue;
    if (s.level === 'pmd') {
      if (!pmd_leaf(v) || pte_pfn(v) !== f) continue;
      if (yield* set_pmd_migration_entry(f, vma, a - i * 4096, s.ptr)) ret = false;
      break;
    }
    const subpage = (f + i) as page;
    if (pte_pfn(v) !== subpage) continue;
    const anon_exclusive = since(5, 19) && folio_test_anon(f) && PageAnonExclusive(subpage);
    // ptep_clear_flush(): the PTE is cleared and the TLB flushed.
    const pteval = yield* ptep_get_and_clear(mm, a, s.ptr, 'ptep_clear_flush');
    if (pte_dirty(pteval)) folio_set_dirty_flag(f);
    const writable = pte_write(pteval);
    // See folio_try_share_anon_rmap_pte(): clear PTE first. It reads the references
    // (folio_maybe_dma_pinned), which a GUP unpin changes without the PTE lock.
    if (anon_exclusive) yield* contig_ref_step(f, 'folio_maybe_dma_pinned', 'read');
    if (anon_exclusive && folio_try_share_anon_rmap(f, subpage)) {
      yield* set_pte_at(mm, a, s.ptr, pteval);
      recordFailure(f, -EAGAIN, MAYBE_PINNED);
      ret = false;
      break;
    }
    let entry: swp_entry_t;
    if (writable) entry = make_writable_migration_entry(subpage);
    else if (anon_exclusive) entry = make_readable_exclusive_migration_entry(subpage);
    else entry = make_readable_migration_entry(subpage);
    // "mm/migration: remember young/dirty bit for page migrations" (Peter Xu, v6.1).
    if (since(6, 1)) {
      if (pte_young(pteval)) entry = make_migration_entry_young(entry);
      if (pte_dirty(pteval)) entry = make_migration_entry_dirty(entry);
    }
    yield* set_pte_at(mm, a, s.ptr, swp_entry_to_pte(entry), 'set_migration_pte');
    folio_remove_rmap_ptes(f, subpage, 1, vma);
    folio_put(f);
  }
  if (held) yield* spin_unlock(held);
  yield* mmu_notifier_invalidate_range_end(range);
  return ret;
}

/**
 * try_to_migrate(folio, flags): replaces all mappings of a locked folio by migration
 * entries, VMA by VMA, stopping once the folio is unmapped or a VMA refuses.
 * @kernel mm/rmap.c:try_to_migrate (v5.14+)
 * Locking: folio locked; rmap locks (i_mmap_rwsem for file folios) unless TTU_RMAP_LOCKED.
 * Left out: hugetlb PMD sharing, device-exclusive and device-private entries, TTU_SYNC.
 */
export function* try_to_migrate(f: folio, flags: number): Op<void> {
  if (
    WARN_ON_ONCE(
      (flags & ~(TTU_RMAP_LOCKED | TTU_SPLIT_HUGE_PMD | TTU_SYNC | TTU_BATCH_FLUSH)) !== 0,
    )
  )
    return;
  yield* rmapWalkVmas(
    f,
    (flags & TTU_RMAP_LOCKED) !== 0,
    (vma) => try_to_migrate_one(f, vma, flags),
    () => !folio_mapped(f),
  );
}

/**
 * remove_migration_pte(folio, vma, addr, old): turns every migration entry of vma that
 * names a page of `old` into a present entry for the matching page of `dst`: a folio
 * reference, the rmap, vm_page_prot plus write for writable entries, young/dirty from
 * the entry (v6.1+; always old before), exclusivity from the entry (v5.19+, 6c287605fd56).
 * @kernel mm/migrate.c:remove_migration_pte, mm/huge_memory.c:remove_migration_pmd
 *   (all versions)
 * Locking: takes each PTE/PMD lock.
 */
function* remove_migration_pte(dst: folio, vma: vm_area_struct, old: folio): Op<boolean> {
  const mm = vma.vm_mm;
  const where = folioInVma(dst, vma);
  if (!where) return true;
  const n = folio_nr_pages(dst);
  const anon = folio_test_anon(dst);
  let held: spinlock_t | null = null;
  for (let i = where.i, a = where.address; i < n && a < vma.vm_end; i++, a += 4096) {
    const s = slotFor(mm, a);
    if (!s) continue;
    const l = slotLock(s);
    if (held !== l) {
      if (held) yield* spin_unlock(held);
      yield* spin_lock(l);
      held = l;
    }
    const v = ptep_get(s.ptr);
    if (!is_swap_pte(v) || !is_migration_entry(v)) continue;
    const entry = pte_to_swp_entry(v);
    if (s.level === 'pmd') {
      if (swp_offset_pfn(entry) !== old) continue;
      // remove_migration_pmd()
      folio_get(dst);
      let pmde = pte_mkhuge(pfn_pte(dst, vma.vm_page_prot));
      if (is_writable_migration_entry(entry)) pmde = pte_mkwrite(pmde);
      if (since(6, 1)) {
        if (!is_migration_entry_young(entry)) pmde = pte_mkold(pmde);
        if (folio_test_dirty(dst) && is_migration_entry_dirty(entry)) pmde = pte_mkdirty(pmde);
      } else {
        pmde = pte_mkold(pmde);
      }
      if (anon) {
        const excl = since(5, 19) && !is_readable_migration_entry(entry);
        folio_add_anon_rmap_pmd(dst, vma, excl ? RMAP_EXCLUSIVE : RMAP_NONE);
        // __folio_add_anon_rmap(RMAP_LEVEL_PMD): only the head carries the bit.
        if (excl) SetPageAnonExclusive(dst as number as page);
      } else {
        folio_add_file_rmap_pmd(dst, vma);
      }
      yield* set_pmd_at(mm, a - i * 4096, s.ptr, pmde);
      break;
    }
    if (swp_offset_pfn(entry) !== old + i) continue;
    const np = (dst + i) as page;
    folio_get(dst);
    let pte = pfn_pte(np, vma.vm_page_prot);
    if (since(6, 1)) {
      if (!is_migration_entry_young(entry)) pte = pte_mkold(pte);
      if (folio_test_dirty(dst) && is_migration_entry_dirty(entry)) pte = pte_mkdirty(pte);
    } else {
      pte = pte_mkold(pte);
    }
    if (is_writable_migration_entry(entry)) pte = pte_mkwrite(pte);
    if (anon) {
      const excl = since(5, 19) && !is_readable_migration_entry(entry);
      folio_add_anon_rmap_ptes(dst, np, 1, vma, a, excl ? RMAP_EXCLUSIVE : RMAP_NONE);
    } else {
      folio_add_file_rmap_ptes(dst, np, 1, vma);
    }
    yield* set_pte_at(mm, a, s.ptr, pte, 'remove_migration_pte');
  }
  if (held) yield* spin_unlock(held);
  return true;
}

/**
 * remove_migration_ptes(src, dst, locked): replaces every migration entry naming src by
 * a mapping of dst (dst == src undoes a failed migration). No MMU notifier: the entries
 * were not present.
 * @kernel mm/migrate.c:remove_migration_ptes (all versions; folio form v6.x)
 * Locking: rmap locks taken unless `locked`; the folios are locked.
 */
export function* remove_migration_ptes(src: folio, dst: folio, locked: boolean): Op<void> {
  yield* rmapWalkVmas(dst, locked, (vma) => remove_migration_pte(dst, vma, src));
}

/**
 * migration_entry_wait_on_locked(entry, ptl): drops the page-table lock and sleeps until
 * the folio the entry names is unlocked (the end of its migration), without a reference.
 * @kernel mm/filemap.c:migration_entry_wait_on_locked (v5.19+, ffa65753c431
 *   "mm/migrate.c: rework migration_entry_wait() to not take a pageref")
 * Locking: ptl held on entry, released on return.
 */
function* migration_entry_wait_on_locked(entry: swp_entry_t, ptl: spinlock_t): Op<void> {
  const f = pfn_swap_entry_folio(entry);
  yield* spin_unlock(ptl);
  yield {
    obj: folioLockObj(f),
    kind: 'read',
    what: 'migration_entry_wait_on_locked',
    enabled: () => !folio_test_locked(f),
  };
}

/**
 * put_and_wait_on_page_locked(page): queues the task on the page's lock bit, drops the
 * caller's reference, then sleeps until the page is unlocked (one wake-up, no re-check).
 * @kernel mm/filemap.c:put_and_wait_on_page_locked, wait_on_page_bit_common(DROP)
 *   (v5.0-v5.18)
 * Locking: none held; the caller holds a reference, which is gone on return.
 */
function* put_and_wait_on_page_locked(f: folio): Op<void> {
  yield { obj: folioLockObj(f), kind: 'read', what: 'put_and_wait_on_page_locked' };
  const bit_is_set = folio_test_locked(f);
  yield* contig_ref_step(f, 'put_and_wait_on_page_locked: folio_put', 'put');
  folio_put(f);
  if (!bit_is_set) return;
  yield {
    obj: folioLockObj(f),
    kind: 'read',
    what: 'put_and_wait_on_page_locked',
    enabled: () => !folio_test_locked(f),
  };
}

/**
 * Waits out a migration entry found under `ptl` (the common tail of
 * __migration_entry_wait and pmd_migration_entry_wait): from v5.19 without a reference
 * (migration_entry_wait_on_locked); before, with a reference taken under the lock
 * (get_page_unless_zero: "just fault again" when it is zero) and dropped by
 * put_and_wait_on_page_locked, so between the two the folio has one reference more than
 * its mappings and a migration that checks the refcount then fails with -EAGAIN.
 * Locking: ptl held on entry, released on return.
 */
function* wait_on_migration_entry(entry: swp_entry_t, ptl: spinlock_t): Op<void> {
  if (since(5, 19)) {
    yield* migration_entry_wait_on_locked(entry, ptl);
    return;
  }
  const f = pfn_swap_entry_folio(entry);
  yield* contig_ref_step(f, 'get_page_unless_zero');
  if (!folio_try_get(f)) {
    yield* spin_unlock(ptl);
    return;
  }
  yield* spin_unlock(ptl);
  yield* put_and_wait_on_page_locked(f);
}

/**
 * migration_entry_wait(mm, pmd, address): a fault found a PTE migration entry: if the
 * PTE still holds one, wait until the migration finishes (the old folio is unlocked),
 * then return so the fault retries.
 * @kernel mm/migrate.c:migration_entry_wait, __migration_entry_wait (all versions; the
 *   reference-free wait v5.19+, ffa65753c431; pte_offset_map_lock may fail v6.5+)
 * Locking: mmap_lock (or the VMA lock) held for read; takes and drops the PTE lock.
 */
export function* migration_entry_wait(mm: mm_struct, pmdp: pmd_t_ptr, address: number): Op<void> {
  const r = yield* pte_offset_map_lock(mm, pmdp, address);
  if (!r) return;
  const [ptep, ptl] = r;
  const pte = ptep_get(ptep);
  if (!is_swap_pte(pte) || !is_migration_entry(pte_to_swp_entry(pte))) {
    yield* pte_unmap_unlock(ptep, ptl);
    return;
  }
  yield* wait_on_migration_entry(pte_to_swp_entry(pte), ptl);
}

/**
 * pmd_migration_entry_wait(mm, pmd): a fault found a PMD migration entry: wait, under the
 * same rules as migration_entry_wait, if the PMD still holds one.
 * @kernel mm/migrate.c:pmd_migration_entry_wait (all versions, CONFIG_ARCH_ENABLE_THP_MIGRATION;
 *   the reference-free wait v5.19+)
 * Locking: mmap_lock held for read; takes and drops the PMD lock.
 */
export function* pmd_migration_entry_wait(mm: mm_struct, pmdp: pmd_t_ptr): Op<void> {
  const ptl = yield* pmd_lock(mm, pmdp);
  const pmd = ptep_get(pmdp);
  if (!is_pmd_migration_entry(pmd)) {
    yield* spin_unlock(ptl);
    return;
  }
  yield* wait_on_migration_entry(pmd_to_swp_entry(pmd), ptl);
}

/* ------------------------------------------------------------------------------------ */
/* Moving the folio                                                                      */
/* ------------------------------------------------------------------------------------ */

/**
 * folio_expected_refs(mapping, folio): the references a folio has once unmapped: the
 * caller's isolation reference, plus one per page for the page cache.
 * @kernel mm/migrate.c:folio_expected_refs (v6.1+; expected_page_refs before)
 */
export function folio_expected_refs(mapping: address_space | null, f: folio): number {
  let refs = 1;
  if (!mapping) return refs;
  refs += folio_nr_pages(f);
  return refs;
}

/**
 * __folio_migrate_mapping(mapping, newfolio, folio, expected_count): moves index and
 * mapping to the new folio; for page-cache folios, freezes the old folio's refcount at
 * the expected value (-EAGAIN if someone holds another reference), moves the page-cache
 * references, the dirty bit and the i_pages slots, and unfreezes the old folio with the
 * cache references gone.
 * @kernel mm/migrate.c:__folio_migrate_mapping (v6.11+; migrate_page_move_mapping before)
 * Locking: both folios locked; the i_pages lock is taken (one step).
 * Return: MIGRATEPAGE_SUCCESS or -EAGAIN.
 */
function* __folio_migrate_mapping(
  mapping: address_space | null,
  newfolio: folio,
  f: folio,
  expected_count: number,
): Op<number> {
  const nr = folio_nr_pages(f);
  if (!mapping) {
    folio_set_index(newfolio, folio_index(f));
    folio_set_mapping(newfolio, folio_raw_mapping(f) as { id: number } | null, folio_test_anon(f));
    if (folio_test_swapbacked(f)) __folio_set_swapbacked(newfolio);
    return MIGRATEPAGE_SUCCESS;
  }
  yield { obj: `mapping${mapping.id}.i_pages`, kind: 'write', what: 'xas_lock_irq' };
  // folio_ref_freeze(folio, expected_count)
  if (folio_ref_count(f) !== expected_count) {
    recordFailure(f, -EAGAIN, EXTRA_REFS);
    return -EAGAIN;
  }
  folio_set_index(newfolio, folio_index(f));
  folio_set_mapping(newfolio, mapping, false);
  folio_ref_add(newfolio, nr);
  if (folio_test_swapbacked(f)) __folio_set_swapbacked(newfolio);
  if (folio_test_dirty(f)) {
    folio_clear_dirty(f);
    folio_set_dirty_flag(newfolio);
  }
  for (const [idx, v] of mapping.i_pages) if (v === f) mapping.i_pages.set(idx, newfolio);
  // folio_ref_unfreeze(folio, expected_count - nr)
  set_page_count(f as number as page, expected_count - nr);
  return MIGRATEPAGE_SUCCESS;
}

/**
 * folio_migrate_flags(newfolio, folio): copies the page flags the new folio inherits.
 * @kernel mm/migrate.c:folio_migrate_flags (v5.16+; migrate_page_states before)
 * Left out: active/unevictable/workingset/idle/young, NUMA cpupid, KSM, memcg.
 */
export function folio_migrate_flags(newfolio: folio, f: folio): void {
  if (page_flags(f) & PG_referenced) set_page_flag(newfolio, PG_referenced);
  if (folio_test_uptodate(f)) folio_mark_uptodate(newfolio);
  if (folio_test_dirty(f)) folio_set_dirty_flag(newfolio);
  if (folio_test_writeback(newfolio)) folio_clear_writeback(newfolio);
}

/**
 * __migrate_folio(mapping, dst, src, src_private, mode): the reference check, the copy
 * and the mapping move of a simple folio.
 * @kernel mm/migrate.c:__migrate_folio, migrate_folio (v6.0+; migrate_page before)
 * Return: MIGRATEPAGE_SUCCESS, or -EAGAIN when the folio has more references than
 * folio_expected_refs() (a GUP pin or get, a racing lookup).
 */
function* __migrate_folio(mapping: address_space | null, dst: folio, src: folio): Op<number> {
  const expected_count = folio_expected_refs(mapping, src);
  // Check whether src does not have extra refs before we do more work. The read of the
  // refcount is a scheduling point: a racing get (GUP, a v5.x migration-entry waiter) may
  // land just before it.
  yield { obj: folio_ref_obj(src), kind: 'read', what: 'folio_ref_count' };
  if (folio_ref_count(src) !== expected_count) {
    recordFailure(src, -EAGAIN, EXTRA_REFS);
    return -EAGAIN;
  }
  // folio_mc_copy(dst, src)
  for (let i = 0; i < folio_nr_pages(src); i++) phys_copy_frame(dst + i, src + i);
  const rc = yield* __folio_migrate_mapping(mapping, dst, src, expected_count);
  if (rc !== MIGRATEPAGE_SUCCESS) return rc;
  folio_migrate_flags(dst, src);
  return MIGRATEPAGE_SUCCESS;
}

/**
 * writeout(mapping, folio): writes a dirty page-cache folio back before migration can
 * be retried. The migration entries are removed first.
 * @kernel mm/migrate.c:writeout (v5.x-v6.x)
 * Return: -EINVAL (no writepage), -EAGAIN (retry), or -EIO.
 */
function* writeout(mapping: address_space, f: folio): Op<number> {
  if (!mapping.a_ops.writepage) return -EINVAL;
  if (!folio_test_dirty(f)) return -EAGAIN;
  folio_clear_dirty(f);
  yield* remove_migration_ptes(f, f, false);
  const rc = yield* mapping.a_ops.writepage(mapping, f);
  return rc < 0 ? -EIO : -EAGAIN;
}

/**
 * fallback_migrate_folio(mapping, dst, src, mode): page cache whose a_ops has no
 * migrate_folio: dirty folios are written back first (MIGRATE_SYNC only), else -EBUSY.
 * @kernel mm/migrate.c:fallback_migrate_folio (all versions)
 */
function* fallback_migrate_folio(
  mapping: address_space,
  dst: folio,
  src: folio,
  mode: number,
): Op<number> {
  if (folio_test_dirty(src)) {
    if (mode !== MIGRATE_SYNC) {
      recordFailure(src, -EBUSY, 'dirty page-cache folio without migrate_folio (not MIGRATE_SYNC)');
      return -EBUSY;
    }
    return yield* writeout(mapping, src);
  }
  return yield* __migrate_folio(mapping, dst, src);
}

/**
 * move_to_new_folio(dst, src, mode): moves a locked, unmapped folio to dst with the
 * mapping's migrate_folio (or the simple/fallback path).
 * @kernel mm/migrate.c:move_to_new_folio (v5.16+; move_to_new_page before)
 * Locking: src and dst locked.
 * Return: MIGRATEPAGE_SUCCESS or -errno.
 */
function* move_to_new_folio(dst: folio, src: folio, mode: number): Op<number> {
  VM_BUG_ON(
    !folio_test_locked(src),
    `VM_BUG_ON_FOLIO(!folio_test_locked(src)) pfn:0x${src.toString(16)}`,
  );
  VM_BUG_ON(
    !folio_test_locked(dst),
    `VM_BUG_ON_FOLIO(!folio_test_locked(dst)) pfn:0x${dst.toString(16)}`,
  );
  const mapping = folio_mapping(src);
  let rc: number;
  if (!mapping) rc = yield* __migrate_folio(null, dst, src);
  else if (mapping.a_ops.migrate_folio) rc = yield* __migrate_folio(mapping, dst, src);
  else rc = yield* fallback_migrate_folio(mapping, dst, src, mode);
  // When successful, old pagecache src->mapping must be cleared before src is freed;
  // anonymous src->mapping is cleared by free_pages_prepare.
  if (rc === MIGRATEPAGE_SUCCESS && !folio_test_anon(src)) folio_set_mapping(src, null, false);
  return rc;
}

/** folio_get_anon_vma(folio): pins the anon_vma across the migration. */
function folio_get_anon_vma(f: folio): anon_vma | null {
  const av = folio_raw_mapping(f) as anon_vma | null;
  if (!av || !folio_mapped(f)) return null;
  av.refcount++;
  return av;
}

function put_anon_vma(av: anon_vma): void {
  av.refcount--;
}

/** migrate_folio_done(src, reason): drops the isolation reference; src is freed. */
function migrate_folio_done(src: folio, reason: number): void {
  mstate().isolated.delete(src);
  mstate().failures.delete(src);
  if (reason !== MR_MEMORY_FAILURE) folio_put(src);
}

/** migrate_folio_undo_src(): restores the mappings of src and unlocks it. */
function* migrate_folio_undo_src(
  src: folio,
  page_was_mapped: boolean,
  av: anon_vma | null,
  locked: boolean,
): Op<void> {
  if (page_was_mapped) yield* remove_migration_ptes(src, src, false);
  if (av) put_anon_vma(av);
  if (locked) yield* folio_unlock(src);
}

/** migrate_folio_undo_dst(): unlocks and frees the unused destination. */
function* migrate_folio_undo_dst(
  dst: folio,
  locked: boolean,
  put_new_folio: free_folio_t | null,
  priv: unknown,
): Op<void> {
  if (locked) yield* folio_unlock(dst);
  if (put_new_folio) put_new_folio(dst, priv);
  else folio_put(dst);
}

interface UnmapResult {
  rc: number;
  dst: folio | null;
}

/**
 * migrate_folio_unmap(): allocates the destination, locks both folios and replaces the
 * source's mappings by migration entries.
 * @kernel mm/migrate.c:migrate_folio_unmap (v6.3+; the first half of __unmap_and_move
 *   before, where `force` (pass > 2) allowed sleeping on the folio lock and writeback)
 * Return: MIGRATEPAGE_UNMAP with dst, MIGRATEPAGE_SUCCESS (freed under us), -ENOMEM,
 *   -EAGAIN (retry), or -EBUSY.
 */
function* migrate_folio_unmap(
  get_new_folio: new_folio_t,
  put_new_folio: free_folio_t | null,
  priv: unknown,
  src: folio,
  mode: number,
  reason: number,
  force: boolean,
): Op<UnmapResult> {
  let rc = -EAGAIN;
  let page_was_mapped = false;
  let av: anon_vma | null = null;
  let locked = false;
  let dst_locked = false;
  mstate().failures.delete(src);
  yield* contig_ref_step(src, 'migrate_folio_unmap: folio_ref_count', 'read');
  if (folio_ref_count(src) === 1) {
    // Folio was freed from under us. So we are done.
    yield* contig_ref_step(src, 'migrate_folio_done', 'put');
    migrate_folio_done(src, reason);
    return { rc: MIGRATEPAGE_SUCCESS, dst: null };
  }
  const dst = get_new_folio(src, priv);
  if (dst === null) {
    recordFailure(src, -ENOMEM, 'no memory for the destination folio');
    return { rc: -ENOMEM, dst: null };
  }
  const legacy = !since(6, 3);
  out: {
    if (!(yield* folio_trylock(src))) {
      if (mode === MIGRATE_ASYNC || (legacy && !force)) break out;
      if (mode === MIGRATE_SYNC_LIGHT && !folio_test_uptodate(src)) break out;
      yield* folio_lock(src);
    }
    locked = true;
    if (folio_test_writeback(src)) {
      if (mode !== MIGRATE_SYNC) {
        rc = -EBUSY;
        recordFailure(src, rc, 'folio under writeback (not MIGRATE_SYNC)');
        break out;
      }
      if (legacy && !force) break out;
      yield* folio_wait_writeback(src);
    }
    if (folio_test_anon(src)) av = folio_get_anon_vma(src);
    if (!(yield* folio_trylock(dst))) break out;
    dst_locked = true;
    if (folio_raw_mapping(src) !== null && folio_mapped(src)) {
      VM_BUG_ON(
        folio_test_anon(src) && !av,
        `VM_BUG_ON_FOLIO(anon && !anon_vma) pfn:0x${src.toString(16)}`,
      );
      yield* try_to_migrate(src, mode === MIGRATE_ASYNC ? TTU_BATCH_FLUSH : 0);
      page_was_mapped = true;
    }
    if (!folio_mapped(src)) {
      mstate().dst.set(dst, { page_was_mapped, anon_vma: av });
      return { rc: MIGRATEPAGE_UNMAP, dst };
    }
  }
  yield* migrate_folio_undo_src(src, page_was_mapped, av, locked);
  yield* migrate_folio_undo_dst(dst, dst_locked, put_new_folio, priv);
  return { rc, dst: null };
}

/**
 * migrate_folio_move(): moves an unmapped source to dst and restores the mappings to
 * dst; on success src's last reference is dropped and it returns to the allocator.
 * -EAGAIN leaves both locked and unmapped for another pass; other errors undo.
 * @kernel mm/migrate.c:migrate_folio_move (v6.3+; the second half of __unmap_and_move)
 * Return: MIGRATEPAGE_SUCCESS or -errno.
 */
function* migrate_folio_move(
  put_new_folio: free_folio_t | null,
  priv: unknown,
  src: folio,
  dst: folio,
  mode: number,
  reason: number,
): Op<number> {
  const st = mstate().dst.get(dst)!;
  mstate().dst.delete(dst);
  mstate().failures.delete(src);
  const rc = yield* move_to_new_folio(dst, src, mode);
  if (rc === MIGRATEPAGE_SUCCESS) {
    folio_add_lru(dst);
    if (st.page_was_mapped) yield* remove_migration_ptes(src, dst, false);
    yield* folio_unlock(dst);
    // The destination's own reference: the mappings (and page cache) hold theirs.
    folio_put(dst);
    if (st.anon_vma) put_anon_vma(st.anon_vma);
    yield* folio_unlock(src);
    yield* contig_ref_step(src, 'migrate_folio_done', 'put');
    migrate_folio_done(src, reason);
    return rc;
  }
  if (rc === -EAGAIN) {
    mstate().dst.set(dst, st);
    return rc;
  }
  yield* migrate_folio_undo_src(src, st.page_was_mapped, st.anon_vma, true);
  yield* migrate_folio_undo_dst(dst, true, put_new_folio, priv);
  return rc;
}

/** Undoes a folio left unmapped after the last move pass (the `out:` cleanup). */
function* undoUnmapped(
  src: folio,
  dst: folio,
  put_new_folio: free_folio_t | null,
  priv: unknown,
): Op<void> {
  const st = mstate().dst.get(dst)!;
  mstate().dst.delete(dst);
  yield* migrate_folio_undo_src(src, st.page_was_mapped, st.anon_vma, true);
  yield* migrate_folio_undo_dst(dst, true, put_new_folio, priv);
}

/* ------------------------------------------------------------------------------------ */
/* migrate_pages                                                                         */
/* ------------------------------------------------------------------------------------ */

interface Stats {
  nr_succeeded: number;
}

/**
 * Model: whether a retry of `folios` would only repeat the pass that just failed. A folio
 * that failed on its references (a GUP pin or reference: __migrate_folio's count check,
 * or try_to_migrate's maybe-pinned check) fails the same way in every later pass until
 * another thread changes its references: the passes in between change nothing that
 * matters. One read step per folio on its reference count: when no count has moved
 * since its failure, the caller gives up at once, as after its last pass; when one has,
 * the pass runs. So a pin dropped during the retries is explored once (before the check,
 * or after the last pass) rather than once per pass. Folios in a CMA area only (the
 * references contig_ref_step announces); any other folio, or another failure, keeps
 * every pass.
 */
export function* retry_repeats(folios: readonly folio[]): Op<boolean> {
  if (!folios.length) return false;
  const failures = mstate().failures;
  for (const f of folios) {
    const fail = failures.get(f);
    if (!fail || (fail.reason !== EXTRA_REFS && fail.reason !== MAYBE_PINNED)) return false;
    if (!pfn_in_cma_area(f)) return false;
  }
  let same = true;
  for (const f of folios) {
    yield* contig_ref_step(f, 'migrate_pages: retry', 'read');
    if (folio_ref_count(f) !== failures.get(f)!.refcount) same = false;
  }
  return same;
}

/**
 * migrate_pages_batch(from, ...): unmaps as many folios of `from` as possible, then
 * moves them, each phase retrying -EAGAIN folios for up to nr_pass passes. Folios that
 * fail permanently go to ret_folios; -EAGAIN ones stay on `from`.
 * @kernel mm/migrate.c:migrate_pages_batch (v6.3+)
 * Return: the number of folios not migrated, or -ENOMEM.
 */
function* migrate_pages_batch(
  from: folio[],
  get_new_folio: new_folio_t,
  put_new_folio: free_folio_t | null,
  priv: unknown,
  mode: number,
  reason: number,
  ret_folios: folio[],
  stats: Stats,
  nr_pass: number,
  retrying = false,
): Op<number> {
  let retry = 1;
  let nr_failed = 0;
  let rc_saved = 0;
  const unmap: { src: folio; dst: folio }[] = [];
  unmapLoop: for (let pass = 0; pass < nr_pass && retry; pass++) {
    if ((pass > 0 || retrying) && (yield* retry_repeats(from))) break;
    retry = 0;
    for (const f of [...from]) {
      const nr = folio_nr_pages(f);
      const r = yield* migrate_folio_unmap(
        get_new_folio,
        put_new_folio,
        priv,
        f,
        mode,
        reason,
        true,
      );
      switch (r.rc) {
        case -ENOMEM:
          nr_failed++;
          rc_saved = -ENOMEM;
          break unmapLoop;
        case -EAGAIN:
          retry++;
          break;
        case MIGRATEPAGE_SUCCESS:
          stats.nr_succeeded += nr;
          from.splice(from.indexOf(f), 1);
          break;
        case MIGRATEPAGE_UNMAP:
          from.splice(from.indexOf(f), 1);
          unmap.push({ src: f, dst: r.dst! });
          break;
        default:
          nr_failed++;
          from.splice(from.indexOf(f), 1);
          ret_folios.push(f);
          break;
      }
    }
  }
  if (rc_saved === 0) nr_failed += retry;
  if (rc_saved === 0 || unmap.length) {
    // move: (try_to_unmap_flush() of the batched TLB flush is implicit in the model)
    retry = 1;
    for (let pass = 0; pass < nr_pass && retry; pass++) {
      if (pass > 0 && (yield* retry_repeats(unmap.map((u) => u.src)))) break;
      retry = 0;
      for (const u of [...unmap]) {
        const nr = folio_nr_pages(u.src);
        const rc = yield* migrate_folio_move(put_new_folio, priv, u.src, u.dst, mode, reason);
        if (rc === -EAGAIN) {
          retry++;
          continue;
        }
        unmap.splice(unmap.indexOf(u), 1);
        if (rc === MIGRATEPAGE_SUCCESS) stats.nr_succeeded += nr;
        else {
          nr_failed++;
          ret_folios.push(u.src);
        }
      }
    }
    nr_failed += retry;
  }
  // Cleanup remaining folios
  for (const u of unmap) {
    yield* undoUnmapped(u.src, u.dst, put_new_folio, priv);
    ret_folios.push(u.src);
  }
  return rc_saved ? rc_saved : nr_failed;
}

/**
 * migrate_pages_sync(): a synchronous migration first tries the whole list in one
 * MIGRATE_ASYNC batch (NR_MAX_MIGRATE_ASYNC_RETRY passes), then every remaining folio
 * alone with the caller's mode (NR_MAX_MIGRATE_SYNC_RETRY passes).
 * @kernel mm/migrate.c:migrate_pages_sync (v6.3+, 2ef7dbb26990)
 */
function* migrate_pages_sync(
  from: folio[],
  get_new_folio: new_folio_t,
  put_new_folio: free_folio_t | null,
  priv: unknown,
  mode: number,
  reason: number,
  ret_folios: folio[],
  stats: Stats,
): Op<number> {
  const folios: folio[] = [];
  let nr_failed = 0;
  let rc = yield* migrate_pages_batch(
    from,
    get_new_folio,
    put_new_folio,
    priv,
    MIGRATE_ASYNC,
    reason,
    folios,
    stats,
    NR_MAX_MIGRATE_ASYNC_RETRY,
  );
  if (rc < 0) {
    ret_folios.push(...folios, ...from.splice(0));
    return rc;
  }
  // Fall back to migrate all failed folios one by one synchronously.
  from.push(...folios);
  while (from.length) {
    const one = [from.shift()!];
    rc = yield* migrate_pages_batch(
      one,
      get_new_folio,
      put_new_folio,
      priv,
      mode,
      reason,
      ret_folios,
      stats,
      NR_MAX_MIGRATE_SYNC_RETRY,
      true,
    );
    ret_folios.push(...one);
    if (rc < 0) return rc;
    nr_failed += rc;
  }
  return nr_failed;
}

/**
 * The pre-v6.3 loop: up to 10 passes over the list, each unmapping, moving and (on
 * failure) restoring one folio at a time (unmap_and_move); the folio lock may be slept
 * on from the fourth pass (force).
 * @kernel mm/migrate.c:migrate_pages, unmap_and_move (v5.7-v6.2)
 */
function* migrate_pages_legacy(
  from: folio[],
  get_new_folio: new_folio_t,
  put_new_folio: free_folio_t | null,
  priv: unknown,
  mode: number,
  reason: number,
  ret_folios: folio[],
  stats: Stats,
): Op<number> {
  let retry = 1;
  let nr_failed = 0;
  for (let pass = 0; pass < NR_MAX_MIGRATE_PAGES_RETRY && retry; pass++) {
    if (pass > 0 && (yield* retry_repeats(from))) break;
    retry = 0;
    for (const f of [...from]) {
      const nr = folio_nr_pages(f);
      const u = yield* migrate_folio_unmap(
        get_new_folio,
        put_new_folio,
        priv,
        f,
        mode,
        reason,
        pass > 2,
      );
      let rc = u.rc;
      if (rc === MIGRATEPAGE_UNMAP) {
        rc = yield* migrate_folio_move(put_new_folio, priv, f, u.dst!, mode, reason);
        if (rc === -EAGAIN) yield* undoUnmapped(f, u.dst!, put_new_folio, priv);
      }
      switch (rc) {
        case -ENOMEM:
          return -ENOMEM;
        case -EAGAIN:
          retry++;
          break;
        case MIGRATEPAGE_SUCCESS:
          stats.nr_succeeded += nr;
          from.splice(from.indexOf(f), 1);
          break;
        default:
          nr_failed++;
          from.splice(from.indexOf(f), 1);
          ret_folios.push(f);
          break;
      }
    }
  }
  return nr_failed + retry;
}

/**
 * migrate_pages(from, get_new_folio, put_new_folio, private, mode, reason,
 * ret_succeeded): migrates the isolated folios of `from` to folios from get_new_folio.
 * A folio with more references than its mappings and the caller's isolation reference
 * (a GUP pin or get) fails with -EAGAIN and is retried up to NR_MAX_MIGRATE_PAGES_RETRY
 * times in all, then counted as failed; its mappings are restored. On return `from`
 * holds the folios that were not migrated (the caller puts them back with
 * putback_movable_pages()); migrated ones are freed at once.
 * @kernel mm/migrate.c:migrate_pages (v5.7+; batched unmap/move and the async-first
 *   pass of synchronous migration v6.3+, 2ef7dbb26990)
 * Locking: may sleep; no locks held by the caller except what isolation requires.
 * Return: the number of folios not migrated (0 = all), or -ENOMEM.
 */
export function* migrate_pages(
  from: folio[],
  get_new_folio: new_folio_t,
  put_new_folio: free_folio_t | null,
  priv: unknown,
  mode: number,
  reason: number,
  ret_succeeded?: { value: number },
): Op<number> {
  const stats: Stats = { nr_succeeded: 0 };
  const ret_folios: folio[] = [];
  const work = from.splice(0);
  let rc: number;
  if (!since(6, 3)) {
    rc = yield* migrate_pages_legacy(
      work,
      get_new_folio,
      put_new_folio,
      priv,
      mode,
      reason,
      ret_folios,
      stats,
    );
  } else if (mode === MIGRATE_ASYNC) {
    rc = yield* migrate_pages_batch(
      work,
      get_new_folio,
      put_new_folio,
      priv,
      mode,
      reason,
      ret_folios,
      stats,
      NR_MAX_MIGRATE_PAGES_RETRY,
    );
  } else {
    rc = yield* migrate_pages_sync(
      work,
      get_new_folio,
      put_new_folio,
      priv,
      mode,
      reason,
      ret_folios,
      stats,
    );
  }
  // Put the permanent failure folios back to the migration list.
  from.push(...work, ...ret_folios);
  // v6.3+: "Return 0 in case all split folios of fail-to-migrate large folios are
  // migrated successfully" - an empty list reports success.
  if (since(6, 3) && from.length === 0) rc = 0;
  if (ret_succeeded) ret_succeeded.value = stats.nr_succeeded;
  return rc;
}
