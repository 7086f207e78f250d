/**
 * Page isolation and contiguous allocation: marking pageblocks MIGRATE_ISOLATE so the
 * allocator leaves their free frames alone (start_isolate_page_range,
 * undo_isolate_page_range, test_pages_isolated), and alloc_contig_range(), which isolates
 * a range, migrates every movable folio out of it, checks that all of it is free and
 * takes it out of the allocator (the engine under cma_alloc()).
 *
 * alloc_contig_range() and its helpers live in mm/page_alloc.c and mm/compaction.c in
 * the kernel; they are here, next to the isolation they drive, and keep their names.
 * When a range cannot be allocated the model records the frame that blocked it and why
 * (alloc_contig_last_blocker()), the information the kernel only gives through the
 * test_pages_isolated tracepoint and dynamic-debug page dumps, and, beyond what the
 * kernel knows, the FOLL_PIN pins holding that frame with their owners (gup.ts, "Pin
 * provenance").
 *
 * Left out: hugetlb and non-LRU movable pages, reclaim of clean page cache
 * (reclaim_clean_pages_from_list: clean unmapped page-cache folios are migrated rather
 * than dropped), per-cpu list draining (the model has no per-cpu lists), straddling free
 * blocks larger than a pageblock, zone->lock contention beyond one step per pageblock.
 *
 * @kernel mm/page_isolation.c, mm/page_alloc.c:alloc_contig_range,
 *   __alloc_contig_migrate_range, free_contig_range,
 *   mm/compaction.c:isolate_migratepages_range, isolate_freepages_range (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { address_space, folio, page } from '../include/linux/mm_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import { BUG_ON, WARN } from '../kernel/panic.js';
import { pr_debug, pr_info, ratelimit_state, ___ratelimit } from '../kernel/printk.js';
import { vmemmap_addr } from '../kernel/panic.js';
import { EBUSY, EINTR, ENOMEM } from '../include/linux/errno.js';
import { fatal_signal_pending, get_current } from '../include/linux/sched.js';
import {
  folio_index,
  folio_mapcount,
  folio_nr_pages,
  folio_pincount,
  folio_raw_mapping,
  folio_test_anon,
  folio_test_large,
  frame_order,
  page_flags,
  page_folio,
  PageReserved,
} from '../include/linux/page-flags.js';
import { folio_ref_count, page_ref_count, set_page_count } from '../include/linux/page_ref.js';
import {
  __free_pages,
  get_pageblock_migratetype,
  GFP_USER,
  is_migrate_cma_page,
  move_freepages_block,
  page_zone,
  set_pageblock_migratetype,
  take_free_frame,
  __GFP_MOVABLE,
  __GFP_NOWARN,
  ZONE_MOVABLE,
  type zone,
  zone_state_obj,
  pfn_in_cma_area,
} from './page_alloc.js';
import {
  MIGRATE_CMA,
  MIGRATE_ISOLATE,
  PG_buddy,
  PG_kernel,
  PG_reserved,
  PG_table,
  PG_tail,
  pageblock_nr_pages,
  pfn_valid,
} from './sparse.js';
import {
  alloc_migration_target,
  folio_isolate_lru,
  folioOnLru,
  migrate_failure,
  migrate_pages,
  putback_movable_pages,
  contig_ref_step,
  retry_repeats,
  MIGRATE_SYNC,
  MR_CONTIG_RANGE,
  type MigrateFailure,
  type migration_target_control,
} from './migrate.js';
import { page_pin_records, type gup_pin_record } from './gup.js';

/** Isolation flags (include/linux/page-isolation.h, v5.7-v6.15). */
export const MEMORY_OFFLINE = 0x1;
export const REPORT_FAILURE = 0x2;

/** MAX_ORDER_NR_PAGES on x86-64 (MAX_ORDER 11 before v6.4, MAX_PAGE_ORDER 10 after). */
const MAX_ORDER_NR_PAGES = 1024;
/** COMPACT_CLUSTER_MAX: folios isolated per round of __alloc_contig_migrate_range. */
const COMPACT_CLUSTER_MAX = 32;

/** is_migrate_isolate_page(page) */
export function is_migrate_isolate_page(pfn: number): boolean {
  return get_pageblock_migratetype(pfn) === MIGRATE_ISOLATE;
}

function zoneLockStep(z: zone, what: string): Op<void> {
  return (function* () {
    yield { obj: zone_state_obj(z.zone_start_pfn), kind: 'write' as const, what };
  })();
}

/**
 * has_unmovable_pages(zone, page, migratetype, flags): the first page of the pageblock
 * that migration cannot empty, or null. A CMA pageblock counts as movable when isolating
 * for MIGRATE_CMA, and as unmovable otherwise.
 * @kernel mm/page_isolation.c:has_unmovable_pages (all versions; in mm/page_alloc.c in older kernels)
 * Return: the pfn of an unmovable page, or null.
 */
export function has_unmovable_pages(
  z: zone,
  pfn: number,
  migratetype: number,
  flags: number,
): number | null {
  void flags;
  if (is_migrate_cma_page(pfn)) {
    if (migratetype === MIGRATE_CMA) return null;
    return pfn;
  }
  const start = Math.floor(pfn / pageblock_nr_pages) * pageblock_nr_pages;
  for (let p = pfn; p < start + pageblock_nr_pages; p++) {
    if (!pfn_valid(p)) continue;
    if (PageReserved(p as page)) return p;
    if (z.idx === ZONE_MOVABLE) continue;
    const fl = page_flags(p);
    if (fl & PG_buddy) {
      p += 2 ** frame_order(p) - 1;
      continue;
    }
    if (page_ref_count(p as page) === 0) continue;
    if (fl & PG_tail) continue;
    const f = page_folio(p as page);
    if (folioOnLru(f)) {
      p += folio_nr_pages(f) - 1;
      continue;
    }
    return p;
  }
  return null;
}

/**
 * set_migratetype_isolate(page, migratetype, flags): marks one pageblock MIGRATE_ISOLATE
 * and takes its free frames off the free lists.
 * @kernel mm/page_isolation.c:set_migratetype_isolate (all versions)
 * Locking: zone->lock (one step).
 * Return: 0, or -EBUSY when the block is already isolated or has unmovable pages.
 */
export function* set_migratetype_isolate(
  pfn: number,
  migratetype: number,
  flags: number,
): Op<number> {
  const z = page_zone(pfn)!;
  yield* zoneLockStep(z, 'set_migratetype_isolate');
  // We assume the caller intended to SET migrate type to isolate. If it is already
  // set, then someone else must have raced and set it before us.
  if (is_migrate_isolate_page(pfn)) return -EBUSY;
  const unmovable = has_unmovable_pages(z, pfn, migratetype, flags);
  if (unmovable === null) {
    set_pageblock_migratetype(pfn, MIGRATE_ISOLATE);
    move_freepages_block(z, pfn, MIGRATE_ISOLATE);
    return 0;
  }
  if (flags & REPORT_FAILURE) {
    pr_info(`page:${unmovable.toString(16)} pfn:0x${unmovable.toString(16)}`);
    pr_info('page dumped because: unmovable page');
  }
  return -EBUSY;
}

/**
 * unset_migratetype_isolate(page, migratetype): restores the block's migratetype and puts
 * its free frames back on that type's free lists.
 * @kernel mm/page_isolation.c:unset_migratetype_isolate (all versions)
 * Locking: zone->lock (one step).
 */
export function* unset_migratetype_isolate(pfn: number, migratetype: number): Op<void> {
  const z = page_zone(pfn)!;
  yield* zoneLockStep(z, 'unset_migratetype_isolate');
  if (!is_migrate_isolate_page(pfn)) return;
  set_pageblock_migratetype(pfn, migratetype);
  move_freepages_block(z, pfn, migratetype);
}

/** __first_valid_page(pfn, nr_pages) */
function __first_valid_page(pfn: number, nr: number): number | null {
  for (let i = 0; i < nr; i++) if (pfn_valid(pfn + i)) return pfn + i;
  return null;
}

/**
 * start_isolate_page_range(start_pfn, end_pfn, migratetype, flags): isolates every
 * pageblock of the range (pageblock-aligned: v5.18+ aligns the ends itself, "mm:
 * page_isolation: enable arbitrary range page isolation"; before, callers aligned them
 * and unaligned ends BUG). Frames freed into an isolated block stay off the free lists.
 * @kernel mm/page_isolation.c:start_isolate_page_range (all versions)
 * Locking: zone->lock per pageblock.
 * Return: 0, or -EBUSY (nothing left isolated).
 */
export function* start_isolate_page_range(
  start_pfn: number,
  end_pfn: number,
  migratetype: number,
  flags: number,
): Op<number> {
  let s = start_pfn;
  let e = end_pfn;
  if (since(5, 18)) {
    s = Math.floor(start_pfn / pageblock_nr_pages) * pageblock_nr_pages;
    e = Math.ceil(end_pfn / pageblock_nr_pages) * pageblock_nr_pages;
  } else {
    BUG_ON(s % pageblock_nr_pages !== 0, 'BUG_ON(!IS_ALIGNED(start_pfn, pageblock_nr_pages))');
    BUG_ON(e % pageblock_nr_pages !== 0, 'BUG_ON(!IS_ALIGNED(end_pfn, pageblock_nr_pages))');
  }
  for (let pfn = s; pfn < e; pfn += pageblock_nr_pages) {
    const p = __first_valid_page(pfn, pageblock_nr_pages);
    if (p !== null && (yield* set_migratetype_isolate(p, migratetype, flags))) {
      yield* undo_isolate_page_range(s, pfn, migratetype);
      return -EBUSY;
    }
  }
  return 0;
}

/**
 * undo_isolate_page_range(start_pfn, end_pfn, migratetype): makes isolated pageblocks of
 * the range allocatable again, with their free frames on `migratetype`'s lists.
 * @kernel mm/page_isolation.c:undo_isolate_page_range (all versions)
 */
export function* undo_isolate_page_range(
  start_pfn: number,
  end_pfn: number,
  migratetype: number,
): Op<void> {
  const s = Math.floor(start_pfn / pageblock_nr_pages) * pageblock_nr_pages;
  const e = Math.ceil(end_pfn / pageblock_nr_pages) * pageblock_nr_pages;
  for (let pfn = s; pfn < e; pfn += pageblock_nr_pages) {
    const p = __first_valid_page(pfn, pageblock_nr_pages);
    if (p === null || !is_migrate_isolate_page(p)) continue;
    yield* unset_migratetype_isolate(p, migratetype);
  }
}

/**
 * test_pages_isolated(start_pfn, end_pfn, isol_flags): whether every pageblock of the
 * range is isolated and every frame in it is free.
 * @kernel mm/page_isolation.c:test_pages_isolated, __test_page_isolated_in_pageblock
 *   (all versions)
 * Locking: zone->lock (one step).
 * Return: 0, or -EBUSY. `out.pfn` (model; the tracepoint's fin_pfn) is the first frame
 *   that is not free, or end_pfn.
 */
export function* test_pages_isolated(
  start_pfn: number,
  end_pfn: number,
  isol_flags: number,
  out?: { pfn: number },
): Op<number> {
  void isol_flags;
  let pfn: number;
  for (pfn = start_pfn; pfn < end_pfn; pfn += pageblock_nr_pages) {
    const p = __first_valid_page(pfn, Math.min(pageblock_nr_pages, end_pfn - pfn));
    if (p !== null && !is_migrate_isolate_page(p)) break;
  }
  const first = __first_valid_page(start_pfn, end_pfn - start_pfn);
  if (pfn < end_pfn || first === null) {
    if (out) out.pfn = pfn < end_pfn ? pfn : start_pfn;
    trace_test_pages_isolated(start_pfn, end_pfn, pfn < end_pfn ? pfn : start_pfn);
    return -EBUSY;
  }
  yield* zoneLockStep(page_zone(first)!, 'test_pages_isolated');
  pfn = start_pfn;
  while (pfn < end_pfn) {
    if (page_flags(pfn) & PG_buddy) pfn += 2 ** frame_order(pfn) - (pfn % 2 ** frame_order(pfn));
    else break;
  }
  pfn = Math.min(pfn, end_pfn);
  if (out) out.pfn = pfn;
  trace_test_pages_isolated(start_pfn, end_pfn, pfn);
  return pfn < end_pfn ? -EBUSY : 0;
}

/**
 * trace_test_pages_isolated(start_pfn, end_pfn, fin_pfn): the tracepoint, written to the
 * run's log at KERN_DEBUG in its TP_printk format (the model has no separate trace
 * buffer).
 * @kernel include/trace/events/page_isolation.h:test_pages_isolated (all versions)
 */
function trace_test_pages_isolated(start_pfn: number, end_pfn: number, fin_pfn: number): void {
  pr_debug(
    `test_pages_isolated: start_pfn=0x${start_pfn.toString(16)} end_pfn=0x${end_pfn.toString(16)} fin_pfn=0x${fin_pfn.toString(16)} ret=${end_pfn <= fin_pfn ? 'success' : 'fail'}`,
  );
}

/* ------------------------------------------------------------------------------------ */
/* alloc_contig_range                                                                    */
/* ------------------------------------------------------------------------------------ */

/** The frame that kept a range from being allocated, and why (model report). */
export interface ContigBlocker {
  readonly pfn: number;
  /** The folio (head pfn) the frame belongs to. */
  readonly folio: number;
  readonly kind: 'anon' | 'file' | 'kernel' | 'pagetable' | 'reserved' | 'unknown';
  readonly reason: string;
  readonly refcount: number;
  /** The refcount the folio would have with no extra reference (mappings + page cache). */
  readonly expected_refcount: number;
  readonly extra_refs: number;
  readonly mapcount: number;
  /** folio->_pincount (large folios; 0 for small ones, whose pins are in the refcount). */
  readonly pincount: number;
  readonly maybe_dma_pinned: boolean;
  /** The last migration attempt's failure, if migration was tried. */
  readonly migrate: MigrateFailure | null;
  /**
   * Model only (the kernel does not know who pinned a page): the live FOLL_PIN pins of
   * the frame's folio when the range was found busy — who took them, through which GUP
   * entry point, with which flags, from where and when (gup.ts, "Pin provenance").
   */
  readonly pins: readonly gup_pin_record[];
}

interface ContigState {
  lastBlocker: ContigBlocker | null;
  /** Folios that isolation skipped in the current call, with the reason. */
  skipped: Map<number, string>;
  busyRatelimit: ratelimit_state | null;
}

function cstate(): ContigState {
  const k = currentKernel();
  return ((k.sub.alloc_contig as ContigState | undefined) ??= {
    lastBlocker: null,
    skipped: new Map(),
    busyRatelimit: null,
  });
}

/** The blocker recorded by the last alloc_contig_range() that failed with -EBUSY. */
export function alloc_contig_last_blocker(): ContigBlocker | null {
  return cstate().lastBlocker;
}

function describeBlocker(pfn: number): ContigBlocker {
  const fl = page_flags(pfn);
  const base = {
    pfn,
    folio: pfn,
    refcount: page_ref_count(pfn as page),
    expected_refcount: 0,
    extra_refs: 0,
    mapcount: 0,
    pincount: 0,
    maybe_dma_pinned: false,
    migrate: null,
    pins: [] as readonly gup_pin_record[],
  };
  if (fl & PG_reserved) return { ...base, kind: 'reserved', reason: 'PageReserved: never movable' };
  if (fl & PG_table)
    return { ...base, kind: 'pagetable', reason: 'a page-table page: not movable' };
  if (fl & PG_kernel)
    return { ...base, kind: 'kernel', reason: 'a kernel allocation: not movable' };
  const f = page_folio(pfn as page);
  const anon = folio_test_anon(f);
  const mapping = anon ? null : (folio_raw_mapping(f) as address_space | null);
  const mapcount = folio_mapcount(f);
  const refcount = folio_ref_count(f);
  const expected = mapcount + (mapping ? folio_nr_pages(f) : 0);
  const large = folio_test_large(f);
  const pincount = large ? folio_pincount(f) : 0;
  const mig = migrate_failure(f) ?? null;
  const skipped = cstate().skipped.get(f);
  let reason: string;
  if (skipped) reason = skipped;
  else if (mig) reason = `migration failed (${mig.rc}): ${mig.reason}`;
  else if (!anon && !mapping) reason = 'in use and not on the LRU: not movable';
  else reason = 'in use and not migrated';
  return {
    ...base,
    folio: f,
    kind: anon ? 'anon' : mapping ? 'file' : 'unknown',
    reason,
    refcount,
    expected_refcount: expected,
    extra_refs: refcount - expected,
    mapcount,
    pincount,
    maybe_dma_pinned: large ? pincount > 0 : refcount >= 1024,
    migrate: mig,
    pins: page_pin_records(pfn),
  };
}

/**
 * isolate_migratepages_range(cc, start_pfn, end_pfn) for alloc_contig_range: isolates up
 * to COMPACT_CLUSTER_MAX in-use LRU folios from the range, skipping free frames and
 * unmovable pages, and anonymous folios with more references than mappings ("Migration
 * will fail if an anonymous page is pinned in memory").
 * @kernel mm/compaction.c:isolate_migratepages_range, isolate_migratepages_block
 *   (all versions)
 * Locking: the zone's state is read in one step (the free frames' buddy flags), then one
 *   step per in-use folio of a CMA area (its references, LRU flag and isolation:
 *   contig_ref_step), as the kernel reads them without the page-table lock.
 * Return: the folios isolated and the pfn where the scan stopped (cc->migrate_pfn).
 */
export function* isolate_migratepages_range(
  start_pfn: number,
  end_pfn: number,
): Op<{ folios: folio[]; next: number }> {
  const folios: folio[] = [];
  let pfn = start_pfn;
  if (pfn_in_cma_area(start_pfn))
    yield { obj: zone_state_obj(start_pfn), kind: 'read', what: 'isolate_migratepages_block' };
  while (pfn < end_pfn && folios.length < COMPACT_CLUSTER_MAX) {
    if (!pfn_valid(pfn)) {
      pfn++;
      continue;
    }
    const fl = page_flags(pfn);
    if (fl & PG_buddy) {
      const n = 2 ** frame_order(pfn);
      pfn += n - (pfn % n);
      continue;
    }
    const f = page_folio(pfn as page);
    const next = f + folio_nr_pages(f);
    yield* contig_ref_step(f, 'isolate_migratepages_block', 'isolate');
    if (page_ref_count(f as number as page) === 0 || !folioOnLru(f)) {
      pfn = Math.max(next, pfn + 1);
      continue;
    }
    const anon = folio_test_anon(f);
    const mapping = anon ? null : folio_raw_mapping(f);
    // (folio_ref_count(folio) - 1) > folio_mapcount(folio) with the scan's reference.
    if (!mapping && folio_ref_count(f) > folio_mapcount(f)) {
      cstate().skipped.set(
        f,
        'anonymous folio has more references than mappings (pinned): isolate_migratepages_block skipped it',
      );
      pfn = next;
      continue;
    }
    if (folio_isolate_lru(f)) folios.push(f);
    pfn = next;
  }
  return { folios, next: pfn };
}

/**
 * __alloc_contig_migrate_range(cc, start, end): isolates and migrates the in-use folios
 * of the range (MIGRATE_SYNC, MR_CONTIG_RANGE, destinations from GFP_USER |
 * __GFP_MOVABLE), giving up on a batch after 5 migrate_pages() rounds.
 * @kernel mm/page_alloc.c:__alloc_contig_migrate_range (all versions)
 * Return: 0, or -EBUSY / -EINTR / -ENOMEM.
 */
export function* __alloc_contig_migrate_range(
  start: number,
  end: number,
  gfp_mask: number,
): Op<number> {
  const mtc: migration_target_control = {
    nid: 0,
    gfp_mask: GFP_USER | __GFP_MOVABLE,
    reason: MR_CONTIG_RANGE,
  };
  let pfn = start;
  let tries = 0;
  let ret = 0;
  const list: folio[] = [];
  while (pfn < end || list.length) {
    if (fatal_signal_pending(get_current())) {
      ret = -EINTR;
      break;
    }
    if (!list.length) {
      const r = yield* isolate_migratepages_range(pfn, end);
      list.push(...r.folios);
      pfn = r.next;
      tries = 0;
    } else if (++tries === 5 || (yield* retry_repeats(list))) {
      // Model: retry_repeats (migrate.ts) ends the tries early when every folio failed
      // on references that have not moved since: the remaining tries would fail alike.
      ret = -EBUSY;
      break;
    }
    ret = yield* migrate_pages(
      list,
      alloc_migration_target,
      null,
      mtc,
      MIGRATE_SYNC,
      MR_CONTIG_RANGE,
    );
    // On -ENOMEM, migrate_pages() bails out right away. It is pointless to retry.
    if (ret === -ENOMEM) break;
  }
  if (ret < 0) {
    // "mm: page_alloc: dump migrate-failed pages" (v5.12); -EBUSY and !__GFP_NOWARN only
    // in later versions. Dynamic debug in the kernel: KERN_DEBUG lines here.
    if (since(5, 12) && !(gfp_mask & __GFP_NOWARN) && ret === -EBUSY) alloc_contig_dump_pages(list);
    yield* putback_movable_pages(list);
  }
  return ret < 0 ? ret : 0;
}

/**
 * alloc_contig_dump_pages(page_list): dump_page() of each folio that failed to migrate,
 * when its dynamic-debug site is enabled (printed at KERN_DEBUG in the model).
 * @kernel mm/page_alloc.c:alloc_contig_dump_pages (v5.12+)
 */
function alloc_contig_dump_pages(list: readonly folio[]): void {
  for (const f of list) {
    const mapping = folio_raw_mapping(f) as { id: number } | null;
    pr_debug(
      `page: refcount:${folio_ref_count(f)} mapcount:${folio_mapcount(f)} mapping:${mapping ? vmemmap_addr(mapping.id).padStart(16, '0') : '0000000000000000'} index:0x${folio_index(f).toString(16)} pfn:0x${f.toString(16)}`,
    );
    pr_debug(`${folio_test_anon(f) ? 'anon ' : ''}flags: 0x${page_flags(f).toString(16)}`);
    pr_debug('page dumped because: migration failure');
  }
}

/**
 * isolate_freepages_range(cc, start_pfn, end_pfn): takes the free frames of the range
 * out of the allocator, each with a reference (post_alloc_hook).
 * @kernel mm/compaction.c:isolate_freepages_range (all versions)
 * Return: end_pfn, or 0 when a frame is not free (frames taken so far are given back).
 */
export function isolate_freepages_range(start_pfn: number, end_pfn: number): number {
  for (let pfn = start_pfn; pfn < end_pfn; pfn++) {
    if (!take_free_frame(pfn)) {
      for (let q = start_pfn; q < pfn; q++) __free_pages(q as page, 0);
      return 0;
    }
    set_page_count(pfn as page, 1);
  }
  return end_pfn;
}

/**
 * alloc_contig_range(start, end, migratetype, gfp_mask): allocates the frames
 * [start, end): isolates their pageblocks, migrates every in-use movable folio out,
 * checks that all frames are free, and takes them, each with refcount 1. The blocks are
 * unisolated at the end whatever the outcome.
 * @kernel mm/page_alloc.c:alloc_contig_range (all versions; isolation of
 *   MAX_ORDER-aligned ranges before v5.18, pageblock-aligned after; the "PFNs busy"
 *   pr_info_ratelimited dropped in v5.13, "mm/page_alloc: drop pr_info_ratelimited() in
 *   alloc_contig_range()")
 * Locking: may sleep; callers serialise (cma_mutex).
 * Return: 0, -EBUSY (a frame could not be freed: alloc_contig_last_blocker() says which),
 *   -EINTR, -ENOMEM.
 */
export function* alloc_contig_range(
  start: number,
  end: number,
  migratetype: number,
  gfp_mask: number,
): Op<number> {
  const cs = cstate();
  cs.skipped.clear();
  cs.lastBlocker = null;
  const isoStart = since(5, 18)
    ? start
    : Math.floor(start / MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES;
  const isoEnd = since(5, 18) ? end : Math.ceil(end / MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES;
  let ret = yield* start_isolate_page_range(isoStart, isoEnd, migratetype, 0);
  done: {
    if (ret) break done;
    // In case of -EBUSY, we'd like to know which page causes problem. So, just fall
    // through. test_pages_isolated() has a tracepoint which will report the busy page.
    ret = yield* __alloc_contig_migrate_range(start, end, gfp_mask);
    if (ret && ret !== -EBUSY) break done;
    ret = 0;
    const out = { pfn: end };
    if (yield* test_pages_isolated(start, end, 0, out)) {
      if (!since(5, 13)) {
        const rs = (cs.busyRatelimit ??= new ratelimit_state(
          5 * (currentKernel().config.CONFIG_HZ as number),
          10,
        ));
        if (___ratelimit(rs, 'alloc_contig_range'))
          pr_info(`alloc_contig_range: [${start.toString(16)}, ${end.toString(16)}) PFNs busy`);
      }
      cs.lastBlocker = describeBlocker(out.pfn);
      ret = -EBUSY;
      break done;
    }
    if (!isolate_freepages_range(start, end)) {
      cs.lastBlocker = null;
      ret = -EBUSY;
      break done;
    }
  }
  yield* undo_isolate_page_range(isoStart, isoEnd, migratetype);
  return ret;
}

/**
 * free_contig_range(pfn, nr_pages): drops the allocation reference of each frame; frames
 * nobody else holds go back to the allocator (order-0 CMA frames on the MOVABLE list).
 * @kernel mm/page_alloc.c:free_contig_range (all versions)
 */
export function free_contig_range(pfn: number, nr_pages: number): void {
  let count = 0;
  for (let p = pfn; p < pfn + nr_pages; p++) {
    if (page_ref_count(p as page) !== 1) count++;
    __free_pages(p as page, 0);
  }
  WARN(count !== 0, `${count} pages are still in use!`);
}
