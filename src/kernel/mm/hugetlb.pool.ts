/**
 * The hugetlb page pool (mm/hugetlb.c, pool half): the default hstate (2 MiB pages,
 * default_hugepagesz on x86-64), its counters (nr_huge_pages, free_huge_pages,
 * resv_huge_pages, surplus_huge_pages, nr_overcommit_huge_pages), the free list the
 * folios wait on with refcount 0, growing and shrinking the pool from the buddy
 * allocator (set_max_huge_pages, the vm.nr_hugepages sysctl), the global reservation
 * count (hugetlb_acct_memory, gather_surplus_pages), freeing a hugetlb folio back to the
 * pool when its last reference goes (free_huge_folio), and the per-mm HugetlbPages counter
 * (hugetlb_count_add/sub: hugetlb pages are never counted in the RSS counters).
 *
 * Split from mm/hugetlb.ts so that mm/swap.ts (__folio_put → free_huge_folio) can import
 * it without pulling the fault and page-table half into the page-reference modules.
 *
 * Pages: each pool page is an order-9 folio from alloc_pages() made compound
 * (prep_compound_page) and marked as a hugetlb folio. The model keeps the hugetlb folio
 * state (folio_test_hugetlb, the HPG_* flags restore_reserve, freed, temporary,
 * migratable) in a per-kernel map keyed by the head pfn instead of page-type bits.
 *
 * Left out: NUMA (one node: the per-node counters equal the global ones, nodemasks and
 * mempolicies are not modelled), gigantic (1 GiB) hstates and CMA-backed pools, hugetlb
 * cgroups, memcg charging, HugeTLB vmemmap optimisation (HVO), hwpoison, demotion, boot-time
 * pools (hugepages= on the command line: the pool starts empty, as on the live machine
 * with nr_hugepages 0), hugetlbfs subpools (mount size=/min_size=: every hugetlbfs inode
 * here has no subpool, so hugepage_subpool_get/put_pages return their delta), PF_MEMALLOC_PIN
 * in dequeue (long-term pins are not steered away from CMA/movable pool pages), the
 * free_hpage_workfn deferral (freed surplus pages go to the buddy at once).
 *
 * @kernel mm/hugetlb.c (v5.7+; folio names v6.3+, page names before)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import type { folio, mm_struct, page } from '../include/linux/mm_types.js';
import {
  ClearPageAnonExclusive,
  folio_mapcount,
  folio_set_mapping,
  folio_test_anon,
  prep_compound_page,
} from '../include/linux/page-flags.js';
import { folio_put, folio_ref_count, set_page_count } from '../include/linux/page_ref.js';
import { alloc_pages, GFP_HIGHUSER_MOVABLE, __GFP_COMP, __GFP_NOWARN } from './page_alloc.js';
import { mutex, mutex_lock, mutex_unlock, spinlock_t } from '../include/linux/spinlock.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { VM_BUG_ON } from '../kernel/panic.js';
import { ENOMEM, EOPNOTSUPP } from '../include/linux/errno.js';

/** HUGETLB_PAGE_ORDER on x86-64: the PMD order (2 MiB pages). */
export function HUGETLB_PAGE_ORDER(): number {
  return 9;
}

/** struct hstate, reduced to one node. */
export interface hstate {
  readonly name: string;
  readonly order: number;
  max_huge_pages: number;
  nr_huge_pages: number;
  free_huge_pages: number;
  resv_huge_pages: number;
  surplus_huge_pages: number;
  nr_overcommit_huge_pages: number;
  /** hugepage_freelists[0]: free folios, refcount 0; the last element is the list head. */
  readonly hugepage_freelists: folio[];
  /** hugepage_activelist: folios handed out by the pool. */
  readonly hugepage_activelist: Set<folio>;
  /** resize_lock: serialises pool resizing (set_max_huge_pages). */
  readonly resize_lock: mutex;
}

/** The hugetlb folio state the kernel keeps in page types and folio->private (HPG_*). */
interface hugetlb_folio_info {
  restore_reserve: boolean;
  freed: boolean;
  temporary: boolean;
  migratable: boolean;
}

/** Per-kernel hugetlb state. */
interface HugetlbPoolState {
  readonly default_hstate: hstate;
  /** hugetlb_lock: protects the hstate counters and lists. */
  readonly hugetlb_lock: spinlock_t;
  /** folio_test_hugetlb(): the hugetlb folios by head pfn, with their HPG_* flags. */
  readonly folios: Map<number, hugetlb_folio_info>;
  /** mm->hugetlb_usage (HugetlbPages in /proc/<pid>/status), in base pages. */
  readonly hugetlb_usage: WeakMap<mm_struct, number>;
}

/**
 * The hugetlb state of the running kernel, created on first use as hugetlb_init
 * (subsys_initcall) creates the default hstate at boot: 2 MiB, an empty pool.
 * @kernel mm/hugetlb.c:hugetlb_init, hugetlb_add_hstate (all versions)
 */
function pool(): HugetlbPoolState {
  const k = currentKernel();
  return ((k.sub.hugetlb as HugetlbPoolState | undefined) ??= {
    default_hstate: {
      name: 'hugepages-2048kB',
      order: HUGETLB_PAGE_ORDER(),
      max_huge_pages: 0,
      nr_huge_pages: 0,
      free_huge_pages: 0,
      resv_huge_pages: 0,
      surplus_huge_pages: 0,
      nr_overcommit_huge_pages: 0,
      hugepage_freelists: [],
      hugepage_activelist: new Set(),
      resize_lock: new mutex('hstate.resize_lock'),
    },
    hugetlb_lock: new spinlock_t('hugetlb_lock'),
    folios: new Map(),
    hugetlb_usage: new WeakMap(),
  });
}

/** default_hstate (hstates[default_hstate_idx]). */
export function default_hstate(): hstate {
  return pool().default_hstate;
}

/** hugetlb_lock */
export function hugetlb_lock(): spinlock_t {
  return pool().hugetlb_lock;
}

/** hugepages_supported(): x86-64 always has PMD-sized huge pages. */
export function hugepages_supported(): boolean {
  return currentKernel().config.CONFIG_HUGETLBFS === true;
}

/** huge_page_order(h) */
export function huge_page_order(h: hstate): number {
  return h.order;
}

/** pages_per_huge_page(h) */
export function pages_per_huge_page(h: hstate): number {
  return 2 ** h.order;
}

/** huge_page_size(h) */
export function huge_page_size(h: hstate): number {
  return 4096 * 2 ** h.order;
}

/** huge_page_shift(h) */
export function huge_page_shift(h: hstate): number {
  return 12 + h.order;
}

/** addr & huge_page_mask(h) */
export function huge_page_align_down(h: hstate, addr: number): number {
  return Math.floor(addr / huge_page_size(h)) * huge_page_size(h);
}

/** persistent_huge_pages(h): pool pages that are not surplus. */
export function persistent_huge_pages(h: hstate): number {
  return h.nr_huge_pages - h.surplus_huge_pages;
}

/** available_huge_pages(h): free pages no reservation claims. */
export function available_huge_pages(h: hstate): number {
  return h.free_huge_pages - h.resv_huge_pages;
}

/**
 * htlb_alloc_mask(h): 2 MiB hugetlb pages are migratable on x86-64, so the pool takes
 * movable memory (GFP_HIGHUSER_MOVABLE).
 * @kernel mm/hugetlb.c:htlb_alloc_mask (all versions)
 */
export function htlb_alloc_mask(_h: hstate): number {
  return GFP_HIGHUSER_MOVABLE;
}

/* ---------------------------------------------------------------------------------- */
/* The hugetlb folio flag and the HPG_* flags                                          */
/* ---------------------------------------------------------------------------------- */

/**
 * folio_test_hugetlb(folio): the folio belongs to the hugetlb pool (PG_hugetlb page type
 * v6.9+, the HUGETLB_PAGE_DTOR compound destructor before).
 * @kernel include/linux/page-flags.h:folio_test_hugetlb (v5.16+; PageHuge before)
 */
export function folio_test_hugetlb(f: folio): boolean {
  const k = currentKernel();
  const s = k.sub.hugetlb as HugetlbPoolState | undefined;
  return s?.folios.has(f) ?? false;
}

/** PageHuge(page): the page belongs to a hugetlb folio. */
export function PageHuge(p: page): boolean {
  const s = currentKernel().sub.hugetlb as HugetlbPoolState | undefined;
  if (!s) return false;
  const head = Math.floor(p / 512) * 512;
  return s.folios.has(head);
}

function info(f: folio): hugetlb_folio_info {
  const i = pool().folios.get(f);
  if (!i) throw new Error(`folio 0x${f.toString(16)} is not a hugetlb folio`);
  return i;
}

/** __folio_set_hugetlb / __folio_clear_hugetlb */
function __folio_set_hugetlb(f: folio): void {
  pool().folios.set(f, {
    restore_reserve: false,
    freed: false,
    temporary: false,
    migratable: false,
  });
}
function __folio_clear_hugetlb(f: folio): void {
  pool().folios.delete(f);
}

/** folio_test/set/clear_hugetlb_restore_reserve (HPG_restore_reserve). */
export function folio_test_hugetlb_restore_reserve(f: folio): boolean {
  return info(f).restore_reserve;
}
export function folio_set_hugetlb_restore_reserve(f: folio): void {
  info(f).restore_reserve = true;
}
export function folio_clear_hugetlb_restore_reserve(f: folio): void {
  info(f).restore_reserve = false;
}
/** folio_test_hugetlb_freed (HPG_freed): on the free list. */
export function folio_test_hugetlb_freed(f: folio): boolean {
  return info(f).freed;
}
/** folio_set/clear_hugetlb_migratable (HPG_migratable). */
export function folio_set_hugetlb_migratable(f: folio): void {
  info(f).migratable = true;
}
export function folio_test_hugetlb_migratable(f: folio): boolean {
  return info(f).migratable;
}

/** The hugetlb folios currently in the pool (free and in use), head pfns: a model aid. */
export function hugetlbFolios(): folio[] {
  return [...pool().folios.keys()] as folio[];
}

/* ---------------------------------------------------------------------------------- */
/* Subpools (none in the model) and the per-mm counter                                 */
/* ---------------------------------------------------------------------------------- */

/** struct hugepage_subpool: the model's hugetlbfs inodes have none (NULL). */
export type hugepage_subpool = null;

/**
 * hugepage_subpool_get_pages(spool, delta): with no subpool the global pool is charged
 * the whole delta.
 * @kernel mm/hugetlb.c:hugepage_subpool_get_pages (all versions)
 * Return: delta (the pages to reserve globally).
 */
export function hugepage_subpool_get_pages(_spool: hugepage_subpool, delta: number): number {
  return delta;
}

/**
 * hugepage_subpool_put_pages(spool, delta): with no subpool the whole delta is
 * returned to the global pool.
 * @kernel mm/hugetlb.c:hugepage_subpool_put_pages (all versions)
 * Return: delta.
 */
export function hugepage_subpool_put_pages(_spool: hugepage_subpool, delta: number): number {
  return delta;
}

/**
 * hugetlb_count_add(l, mm) / hugetlb_count_sub: mm->hugetlb_usage, reported as
 * HugetlbPages; hugetlb mappings are not in the RSS counters (MM_ANONPAGES/MM_FILEPAGES)
 * in any version.
 * @kernel include/linux/hugetlb.h:hugetlb_count_add, hugetlb_count_sub (all versions)
 */
export function hugetlb_count_add(l: number, mm: mm_struct): void {
  const u = pool().hugetlb_usage;
  u.set(mm, (u.get(mm) ?? 0) + l);
}
export function hugetlb_count_sub(l: number, mm: mm_struct): void {
  hugetlb_count_add(-l, mm);
}

/** mm->hugetlb_usage in base pages (HugetlbPages = this × 4 KiB). */
export function hugetlb_usage(mm: mm_struct): number {
  return pool().hugetlb_usage.get(mm) ?? 0;
}

/* ---------------------------------------------------------------------------------- */
/* Free list                                                                           */
/* ---------------------------------------------------------------------------------- */

/**
 * enqueue_hugetlb_folio(h, folio): a folio with no references goes on the free list.
 * @kernel mm/hugetlb.c:enqueue_hugetlb_folio (v6.3+; enqueue_huge_page before)
 * Locking: hugetlb_lock held.
 */
export function enqueue_hugetlb_folio(h: hstate, f: folio): void {
  VM_BUG_ON(
    folio_ref_count(f) !== 0,
    `VM_BUG_ON_FOLIO(folio_ref_count(folio)) pfn:0x${f.toString(16)}`,
  );
  h.hugepage_activelist.delete(f);
  h.hugepage_freelists.push(f);
  h.free_huge_pages++;
  info(f).freed = true;
}

/**
 * dequeue_hugetlb_folio_node_exact(h, nid): the first free folio (the list head: the
 * most recently freed) moves to the active list with refcount 1.
 * @kernel mm/hugetlb.c:dequeue_hugetlb_folio_node_exact (v6.3+; dequeue_huge_page_node_exact
 *   before)
 * Locking: hugetlb_lock held.
 * Return: the folio or null.
 */
export function dequeue_hugetlb_folio_node_exact(h: hstate, _nid: number): folio | null {
  const f = h.hugepage_freelists.pop();
  if (f === undefined) return null;
  h.hugepage_activelist.add(f);
  set_page_count(f as number as page, 1); // folio_ref_unfreeze(folio, 1)
  info(f).freed = false;
  h.free_huge_pages--;
  return f;
}

/**
 * dequeue_hugetlb_folio_nodemask(h, gfp_mask, nid, nmask): one node in the model.
 * @kernel mm/hugetlb.c:dequeue_hugetlb_folio_nodemask (v6.3+; dequeue_huge_page_nodemask
 *   before)
 * Locking: hugetlb_lock held.
 */
export function dequeue_hugetlb_folio_nodemask(h: hstate): folio | null {
  return dequeue_hugetlb_folio_node_exact(h, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Allocating and freeing pool pages                                                   */
/* ---------------------------------------------------------------------------------- */

/**
 * alloc_buddy_hugetlb_folio(h, gfp_mask, nid, nmask, node_alloc_noretry): an order-9
 * compound folio from the buddy allocator, its references frozen (0).
 * @kernel mm/hugetlb.c:alloc_buddy_hugetlb_folio (v6.3+; alloc_buddy_huge_page before;
 *   __alloc_frozen_pages v6.14+, a reference dropped by the caller before)
 * Return: the folio or null.
 */
function alloc_buddy_hugetlb_folio(h: hstate, gfp_mask: number): folio | null {
  const p = alloc_pages(gfp_mask | __GFP_COMP | __GFP_NOWARN, huge_page_order(h));
  if (p === null) return null;
  prep_compound_page(p, huge_page_order(h));
  set_page_count(p, 0);
  return p as number as folio;
}

/**
 * init_new_hugetlb_folio(h, folio): marks the folio hugetlb (no subpool, no cgroup).
 * @kernel mm/hugetlb.c:init_new_hugetlb_folio (v6.3+; prep_new_huge_page before)
 */
function init_new_hugetlb_folio(_h: hstate, f: folio): void {
  __folio_set_hugetlb(f);
}

/**
 * only_alloc_fresh_hugetlb_folio(h, gfp_mask, nid, nmask, node_alloc_noretry): a new
 * hugetlb folio from the buddy, not yet counted in the pool.
 * @kernel mm/hugetlb.c:only_alloc_fresh_hugetlb_folio (v6.7+; alloc_fresh_huge_page before)
 */
function only_alloc_fresh_hugetlb_folio(h: hstate, gfp_mask: number): folio | null {
  const f = alloc_buddy_hugetlb_folio(h, gfp_mask);
  if (f !== null) init_new_hugetlb_folio(h, f);
  return f;
}

/**
 * __prep_account_new_huge_page(h, nid): one page more in the pool.
 * @kernel mm/hugetlb.c:__prep_account_new_huge_page (all versions)
 * Locking: hugetlb_lock held.
 */
function __prep_account_new_huge_page(h: hstate, _nid: number): void {
  h.nr_huge_pages++;
}

/**
 * alloc_pool_huge_folio(h, nodes_allowed, node_alloc_noretry, next_node): a fresh folio
 * for growing the pool.
 * @kernel mm/hugetlb.c:alloc_pool_huge_folio (v6.8+; alloc_pool_huge_page before)
 */
function alloc_pool_huge_folio(h: hstate): folio | null {
  return only_alloc_fresh_hugetlb_folio(h, htlb_alloc_mask(h));
}

/**
 * prep_and_add_allocated_folios(h, folio_list): counts new folios in the pool and puts
 * them on the free list.
 * @kernel mm/hugetlb.c:prep_and_add_allocated_folios (v6.7+; per page
 *   prep_new_huge_page + put_page into free_huge_page before, with the same result)
 * Locking: takes hugetlb_lock.
 */
function* prep_and_add_allocated_folios(h: hstate, list: folio[]): Op<void> {
  yield* spin_lock(hugetlb_lock());
  for (const f of list) {
    __prep_account_new_huge_page(h, 0);
    enqueue_hugetlb_folio(h, f);
  }
  yield* spin_unlock(hugetlb_lock());
}

/**
 * remove_hugetlb_folio(h, folio, adjust_surplus): takes a folio out of the pool's lists
 * and counts; the folio stops being a hugetlb folio.
 * @kernel mm/hugetlb.c:remove_hugetlb_folio (v6.3+; remove_hugetlb_page before)
 * Locking: hugetlb_lock held.
 */
function remove_hugetlb_folio(h: hstate, f: folio, adjust_surplus: boolean): void {
  const i = h.hugepage_freelists.indexOf(f);
  if (i >= 0) h.hugepage_freelists.splice(i, 1);
  h.hugepage_activelist.delete(f);
  if (folio_test_hugetlb_freed(f)) h.free_huge_pages--;
  if (adjust_surplus) h.surplus_huge_pages--;
  __folio_clear_hugetlb(f);
  h.nr_huge_pages--;
}

/**
 * update_and_free_hugetlb_folio(h, folio, atomic): a folio that left the pool goes back
 * to the buddy allocator (its reference unfrozen and dropped).
 * @kernel mm/hugetlb.c:update_and_free_hugetlb_folio, __update_and_free_hugetlb_folio
 *   (v6.3+; update_and_free_page before)
 * Locking: hugetlb_lock not held.
 */
function update_and_free_hugetlb_folio(_h: hstate, f: folio): void {
  set_page_count(f as number as page, 1); // folio_ref_unfreeze(folio, 1)
  folio_put(f); // hugetlb_free_folio: the compound page goes to the buddy
}

/**
 * remove_pool_hugetlb_folio(h, nodes_allowed, acct_surplus): a free folio to give back
 * to the buddy (the list head), taken out of the pool.
 * @kernel mm/hugetlb.c:remove_pool_hugetlb_folio (v6.8+; remove_pool_huge_page before)
 * Locking: hugetlb_lock held.
 */
function remove_pool_hugetlb_folio(h: hstate, acct_surplus: boolean): folio | null {
  if (acct_surplus && !h.surplus_huge_pages) return null;
  const f = h.hugepage_freelists[h.hugepage_freelists.length - 1];
  if (f === undefined) return null;
  remove_hugetlb_folio(h, f, acct_surplus);
  return f;
}

/**
 * adjust_pool_surplus(h, nodes_allowed, delta): turns one page into (+1) or out of (-1)
 * surplus.
 * @kernel mm/hugetlb.c:adjust_pool_surplus (all versions)
 * Locking: hugetlb_lock held.
 * Return: 1 when a page was adjusted, 0 otherwise.
 */
function adjust_pool_surplus(h: hstate, delta: number): number {
  VM_BUG_ON(delta !== -1 && delta !== 1, 'VM_BUG_ON(delta != -1 && delta != 1)');
  if (delta < 0 ? !h.surplus_huge_pages : h.surplus_huge_pages >= h.nr_huge_pages) return 0;
  h.surplus_huge_pages += delta;
  return 1;
}

/**
 * free_huge_folio(folio): the last reference to a hugetlb folio is gone (folio_put →
 * __folio_put): the folio loses its mapping and anon-exclusive bit; a reservation it
 * consumed is given back (HPG_restore_reserve ⇒ resv_huge_pages++); a temporary or
 * surplus folio leaves the pool for the buddy; any other goes back on the pool's free
 * list, not to the buddy.
 * @kernel mm/hugetlb.c:free_huge_folio (v6.6+; free_huge_page before, reached through the
 *   compound destructor HUGETLB_PAGE_DTOR until v6.6)
 * Locking: takes hugetlb_lock. The model's folio_put is not an Op, so the lock is taken
 *   without a scheduling point here (the update is atomic in the model).
 * Left out: hugetlb cgroup uncharging, NR_HUGETLB, memcg.
 */
export function free_huge_folio(f: folio): void {
  const h = default_hstate();
  VM_BUG_ON(
    folio_ref_count(f) !== 0,
    `VM_BUG_ON_FOLIO(folio_ref_count(folio)) pfn:0x${f.toString(16)}`,
  );
  VM_BUG_ON(
    folio_mapcount(f) !== 0,
    `VM_BUG_ON_FOLIO(folio_mapcount(folio)) pfn:0x${f.toString(16)}`,
  );
  // hugetlb_set_folio_subpool(folio, NULL): no subpools.
  if (since(5, 19) && folio_test_anon(f))
    for (let i = 0; i < pages_per_huge_page(h); i++) ClearPageAnonExclusive((f + i) as page);
  folio_set_mapping(f, null, false);
  let restore_reserve = folio_test_hugetlb_restore_reserve(f);
  folio_clear_hugetlb_restore_reserve(f);
  // If HPageRestoreReserve was set on page, page allocation consumed a reservation. A
  // return code of zero implies that the subpool will be under its minimum size if the
  // reservation is not restored after page is free. Therefore, force restore_reserve.
  if (!restore_reserve && hugepage_subpool_put_pages(null, 1) === 0) restore_reserve = true;
  // spin_lock_irqsave(&hugetlb_lock, flags)
  info(f).migratable = false;
  if (restore_reserve) h.resv_huge_pages++;
  if (info(f).temporary) {
    remove_hugetlb_folio(h, f, false);
    update_and_free_hugetlb_folio(h, f);
  } else if (h.surplus_huge_pages) {
    // remove the page from active list
    remove_hugetlb_folio(h, f, true);
    update_and_free_hugetlb_folio(h, f);
  } else {
    enqueue_hugetlb_folio(h, f);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Surplus pages and the global reservation count                                      */
/* ---------------------------------------------------------------------------------- */

/**
 * alloc_surplus_hugetlb_folio(h, gfp_mask, nid, nmask): a page beyond the persistent
 * pool, allowed while surplus_huge_pages < nr_overcommit_huge_pages (vm.nr_overcommit_
 * hugepages, 0 by default: no surplus at all).
 * @kernel mm/hugetlb.c:alloc_surplus_hugetlb_folio (v6.3+; alloc_surplus_huge_page before)
 * Locking: hugetlb_lock not held on entry; taken inside.
 * Return: the folio (refcount 0, counted as surplus, not on a list) or null.
 */
export function* alloc_surplus_hugetlb_folio(h: hstate, gfp_mask: number): Op<folio | null> {
  yield* spin_lock(hugetlb_lock());
  if (h.surplus_huge_pages >= h.nr_overcommit_huge_pages) {
    yield* spin_unlock(hugetlb_lock());
    return null;
  }
  yield* spin_unlock(hugetlb_lock());
  const f = only_alloc_fresh_hugetlb_folio(h, gfp_mask);
  if (f === null) return null;
  yield* spin_lock(hugetlb_lock());
  __prep_account_new_huge_page(h, 0);
  // We could have raced with the pool size change. Double check that and simply
  // deallocate the new page if we would end up overcommiting the surpluses.
  if (h.surplus_huge_pages >= h.nr_overcommit_huge_pages) {
    info(f).temporary = true;
    yield* spin_unlock(hugetlb_lock());
    free_huge_folio(f);
    return null;
  }
  h.surplus_huge_pages++;
  yield* spin_unlock(hugetlb_lock());
  return f;
}

/**
 * gather_surplus_pages(h, delta): makes the pool able to back delta more reserved pages:
 * enough free pages ⇒ resv_huge_pages += delta; otherwise surplus pages are allocated
 * (dropping hugetlb_lock) and -ENOMEM when they cannot all be had.
 * @kernel mm/hugetlb.c:gather_surplus_pages (all versions)
 * Locking: hugetlb_lock held on entry and on return (dropped while allocating).
 * Return: 0 or -ENOMEM.
 */
function* gather_surplus_pages(h: hstate, delta: number): Op<number> {
  let needed = h.resv_huge_pages + delta - h.free_huge_pages;
  if (needed <= 0) {
    h.resv_huge_pages += delta;
    return 0;
  }
  const surplus_list: folio[] = [];
  let allocated = 0;
  let alloc_ok = true;
  let ret = -ENOMEM;
  for (;;) {
    // retry:
    yield* spin_unlock(hugetlb_lock());
    let i = 0;
    for (; i < needed; i++) {
      const f = yield* alloc_surplus_hugetlb_folio(h, htlb_alloc_mask(h));
      if (f === null) {
        alloc_ok = false;
        break;
      }
      surplus_list.push(f);
    }
    allocated += i;
    // After retaking hugetlb_lock, we need to recalculate 'needed' because either
    // resv_huge_pages or free_huge_pages may have changed.
    yield* spin_lock(hugetlb_lock());
    needed = h.resv_huge_pages + delta - (h.free_huge_pages + allocated);
    if (needed > 0 && alloc_ok) continue;
    break;
  }
  if (needed <= 0) {
    // The surplus_list now contains _at_least_ the number of extra pages needed to
    // accommodate the reservation. Commit the entire reservation here.
    needed += allocated;
    h.resv_huge_pages += delta;
    ret = 0;
    while (surplus_list.length && needed-- > 0) enqueue_hugetlb_folio(h, surplus_list.shift()!);
  }
  yield* spin_unlock(hugetlb_lock());
  // Free unnecessary surplus pages to the buddy allocator. Pages have no ref count, call
  // free_huge_folio directly.
  for (const f of surplus_list) free_huge_folio(f);
  yield* spin_lock(hugetlb_lock());
  return ret;
}

/**
 * return_unused_surplus_pages(h, unused_resv_pages): uncommits reservations and frees
 * up to that many surplus pages to the buddy.
 * @kernel mm/hugetlb.c:return_unused_surplus_pages (all versions)
 * Locking: hugetlb_lock held (the model does the frees atomically with it).
 */
function return_unused_surplus_pages(h: hstate, unused_resv_pages: number): void {
  // Uncommit the reservation
  h.resv_huge_pages -= unused_resv_pages;
  let nr_pages = Math.min(unused_resv_pages, h.surplus_huge_pages);
  const list: folio[] = [];
  while (nr_pages--) {
    const f = remove_pool_hugetlb_folio(h, true);
    if (!f) break;
    list.push(f);
  }
  for (const f of list) update_and_free_hugetlb_folio(h, f);
}

/**
 * allowed_mems_nr(h): the free pages on the nodes the task may use (all of them here).
 * @kernel mm/hugetlb.c:allowed_mems_nr (v5.8+; cpuset_mems_nr before)
 */
function allowed_mems_nr(h: hstate): number {
  return h.free_huge_pages;
}

/**
 * hugetlb_acct_memory(h, delta): charges (delta > 0) or releases (delta < 0) global
 * reservations: a charge needs the pool (plus allowed surplus) to back the reserved
 * pages, else -ENOMEM.
 * @kernel mm/hugetlb.c:hugetlb_acct_memory (all versions)
 * Locking: takes hugetlb_lock.
 * Return: 0 or -ENOMEM.
 */
export function* hugetlb_acct_memory(h: hstate, delta: number): Op<number> {
  let ret = -ENOMEM;
  if (!delta) return 0;
  yield* spin_lock(hugetlb_lock());
  out: {
    if (delta > 0) {
      if ((yield* gather_surplus_pages(h, delta)) < 0) break out;
      if (delta > allowed_mems_nr(h)) {
        return_unused_surplus_pages(h, delta);
        break out;
      }
    }
    ret = 0;
    if (delta < 0) return_unused_surplus_pages(h, -delta);
  }
  yield* spin_unlock(hugetlb_lock());
  return ret;
}

/**
 * hugetlb_acct_memory(h, delta) for delta <= 0 from a caller that is not an Op (the
 * model's vm_ops->close): the release half, under hugetlb_lock without a scheduling point.
 * @kernel mm/hugetlb.c:hugetlb_acct_memory (all versions; the delta < 0 branch)
 */
export function hugetlb_acct_memory_release(h: hstate, delta: number): void {
  VM_BUG_ON(delta > 0, 'hugetlb_acct_memory_release: a charge needs the Op');
  if (delta < 0) return_unused_surplus_pages(h, -delta);
}

/* ---------------------------------------------------------------------------------- */
/* Resizing the pool: vm.nr_hugepages                                                  */
/* ---------------------------------------------------------------------------------- */

/**
 * set_max_huge_pages(h, count, nid, nodes_allowed): grows the persistent pool to count
 * pages from the buddy (surplus pages are converted first) or shrinks it: free pages
 * beyond what the reservations need go back to the buddy, and in-use pages beyond count
 * become surplus, to be given back when they are freed.
 * @kernel mm/hugetlb.c:set_max_huge_pages (all versions; allocations batched through
 *   prep_and_add_allocated_folios v6.7+, one by one before, same end state)
 * Locking: takes h->resize_lock and hugetlb_lock.
 * Return: 0 (a short pool when the buddy runs out is not an error).
 */
export function* set_max_huge_pages(h: hstate, count: number): Op<number> {
  yield* mutex_lock(h.resize_lock);
  yield* spin_lock(hugetlb_lock());
  // Increase the pool size. First take pages out of surplus state. Then make up the
  // remaining difference by allocating fresh huge pages.
  while (h.surplus_huge_pages && count > persistent_huge_pages(h)) {
    if (!adjust_pool_surplus(h, -1)) break;
  }
  const page_list: folio[] = [];
  out: {
    while (count > persistent_huge_pages(h) + page_list.length) {
      yield* spin_unlock(hugetlb_lock());
      const f = alloc_pool_huge_folio(h);
      if (f === null) {
        yield* prep_and_add_allocated_folios(h, page_list.splice(0));
        yield* spin_lock(hugetlb_lock());
        break out;
      }
      page_list.push(f);
      yield* spin_lock(hugetlb_lock());
    }
    // Add allocated pages to the pool
    if (page_list.length) {
      yield* spin_unlock(hugetlb_lock());
      yield* prep_and_add_allocated_folios(h, page_list.splice(0));
      yield* spin_lock(hugetlb_lock());
    }
    // Decrease the pool size. First return free pages to the buddy allocator (being
    // careful to keep enough around to satisfy reservations). Then place pages into
    // surplus state as needed so the pool will shrink to the desired size as pages
    // become free.
    let persistent_free_count = h.free_huge_pages;
    if (h.free_huge_pages > persistent_huge_pages(h)) {
      if (h.free_huge_pages > h.surplus_huge_pages) persistent_free_count -= h.surplus_huge_pages;
      else persistent_free_count = 0;
    }
    let min_count = h.resv_huge_pages + persistent_huge_pages(h) - persistent_free_count;
    min_count = Math.max(count, min_count);
    const free_list: folio[] = [];
    while (min_count < persistent_huge_pages(h)) {
      const f = remove_pool_hugetlb_folio(h, false);
      if (!f) break;
      free_list.push(f);
    }
    yield* spin_unlock(hugetlb_lock());
    for (const f of free_list) update_and_free_hugetlb_folio(h, f);
    yield* spin_lock(hugetlb_lock());
    while (count < persistent_huge_pages(h)) {
      if (!adjust_pool_surplus(h, 1)) break;
    }
  }
  h.max_huge_pages = persistent_huge_pages(h);
  yield* spin_unlock(hugetlb_lock());
  yield* mutex_unlock(h.resize_lock);
  return 0;
}

/**
 * __nr_hugepages_store_common(obey_mempolicy, h, nid, count, len): a write of
 * nr_hugepages (sysctl or sysfs) for all nodes.
 * @kernel mm/hugetlb.c:__nr_hugepages_store_common (all versions)
 * Return: len, or -errno.
 */
export function* __nr_hugepages_store_common(
  _obey_mempolicy: boolean,
  h: hstate,
  count: number,
  len: number,
): Op<number> {
  const err = yield* set_max_huge_pages(h, count);
  return err ? err : len;
}

/**
 * hugetlb_sysctl_handler(write): `echo count > /proc/sys/vm/nr_hugepages` for the default
 * hstate.
 * @kernel mm/hugetlb.c:hugetlb_sysctl_handler, hugetlb_sysctl_handler_common (all versions)
 * Return: 0 or -errno (-EOPNOTSUPP without huge page support).
 */
export function* hugetlb_sysctl_handler(count: number): Op<number> {
  if (!hugepages_supported()) return -EOPNOTSUPP;
  const r = yield* __nr_hugepages_store_common(false, default_hstate(), count, 1);
  return r < 0 ? r : 0;
}

/**
 * hugetlb_overcommit_handler(write): `echo count > /proc/sys/vm/nr_overcommit_hugepages`:
 * how many surplus pages the pool may take from the buddy beyond nr_hugepages.
 * @kernel mm/hugetlb.c:hugetlb_overcommit_handler (all versions)
 * Locking: takes hugetlb_lock.
 * Return: 0 or -EOPNOTSUPP.
 */
export function* hugetlb_overcommit_handler(count: number): Op<number> {
  if (!hugepages_supported()) return -EOPNOTSUPP;
  yield* spin_lock(hugetlb_lock());
  default_hstate().nr_overcommit_huge_pages = count;
  yield* spin_unlock(hugetlb_lock());
  return 0;
}

/**
 * hugetlb_report_meminfo(m): the HugePages_* lines of /proc/meminfo.
 * @kernel mm/hugetlb.c:hugetlb_report_meminfo (all versions)
 */
export function hugetlb_report_meminfo(): string {
  const h = default_hstate();
  const pad = (n: number, w: number): string => String(n).padStart(w);
  return (
    `HugePages_Total:   ${pad(h.nr_huge_pages, 5)}\n` +
    `HugePages_Free:    ${pad(h.free_huge_pages, 5)}\n` +
    `HugePages_Rsvd:    ${pad(h.resv_huge_pages, 5)}\n` +
    `HugePages_Surp:    ${pad(h.surplus_huge_pages, 5)}\n` +
    `Hugepagesize:   ${pad(huge_page_size(h) / 1024, 8)} kB\n` +
    `Hugetlb:        ${pad((h.nr_huge_pages * huge_page_size(h)) / 1024, 8)} kB\n`
  );
}
