/**
 * The page allocator: zones, migratetypes, free lists with prompt, deterministic reuse.
 *
 * Each zone keeps LIFO free lists per order and migratetype, like the per-cpu lists the
 * kernel serves most allocations from: a frame freed now is the next one handed out for
 * the same order and migratetype. As in free_unref_page() (v5.x+), freed order-0 CMA
 * frames go on the MOVABLE list, so the next movable allocation (page cache, anonymous
 * memory) takes a frame a driver has just released from CMA. Memory never handed out
 * yet is carved from the low end of each free range on demand, so a terabyte machine
 * costs nothing until it is used.
 *
 * Left out: buddy coalescing (freed blocks stay at their order; order-9 requests are
 * served from order-9 free blocks or fresh memory), watermarks, reclaim and the OOM
 * killer (an allocation that finds nothing fails).
 *
 * @kernel mm/page_alloc.c (all versions)
 */
import { currentKernel } from '../kernel/kernel.js';
import {
  add_taint,
  dump_stack,
  LOCKDEP_NOW_UNRELIABLE,
  TAINT_BAD_PAGE,
  VM_BUG_ON,
} from '../kernel/panic.js';
import { pr_alert } from '../kernel/printk.js';
import { get_current } from '../include/linux/sched.js';
import {
  memmap,
  MIGRATE_CMA,
  MIGRATE_ISOLATE,
  MIGRATE_MOVABLE,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
  memmap_slot,
  pageblock_nr_pages,
  pageblock_order,
  PG_anon,
  PG_buddy,
  PG_reserved,
  phys_clear_frame,
} from './sparse.js';
import type { page } from '../include/linux/mm_types.js';
import { pfnsan_page_alloc, pfnsan_page_free } from './pfnsan/pfnsan.js';

/** gfp_t bits (model values; names as in include/linux/gfp_types.h). */
export const __GFP_DMA32 = 0x04;
export const __GFP_MOVABLE = 0x08;
export const __GFP_RECLAIMABLE = 0x10;
export const __GFP_HIGH = 0x20;
export const __GFP_IO = 0x40;
export const __GFP_FS = 0x80;
export const __GFP_ZERO = 0x100;
export const __GFP_DIRECT_RECLAIM = 0x400;
export const __GFP_KSWAPD_RECLAIM = 0x800;
export const __GFP_NOWARN = 0x2000;
export const __GFP_COMP = 0x40000;
export const __GFP_ACCOUNT = 0x400000;
/** Model-only: allocation may take CMA pageblocks (ALLOC_CMA, set for movable requests). */
export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_HIGHUSER_MOVABLE = GFP_USER | __GFP_MOVABLE;
export const GFP_TRANSHUGE = GFP_HIGHUSER_MOVABLE | __GFP_COMP;
export const GFP_PGTABLE_USER = GFP_KERNEL_ACCOUNT | __GFP_ZERO;
export const GFP_DMA32 = __GFP_DMA32;

export const ZONE_DMA32 = 0;
export const ZONE_NORMAL = 1;
export const ZONE_MOVABLE = 2;
export const ZONE_NAMES = ['DMA32', 'Normal', 'Movable'];

/** A run of never-allocated frames of one migratetype, consumed from the low end. */
interface FreshRange {
  next: number;
  readonly end: number;
  readonly mt: number;
}

/** struct zone, reduced: span, free lists and untouched memory. */
export class zone {
  readonly free = new Map<number, number[]>();
  readonly fresh: FreshRange[] = [];
  managed_pages = 0;
  nr_free = 0;
  constructor(
    readonly idx: number,
    readonly zone_start_pfn: number,
    readonly zone_end_pfn: number,
  ) {}

  get name(): string {
    return ZONE_NAMES[this.idx]!;
  }

  list(order: number, mt: number): number[] {
    const key = order * 8 + mt;
    let l = this.free.get(key);
    if (!l) {
      l = [];
      this.free.set(key, l);
    }
    return l;
  }
}

/** struct cma: a contiguous area reserved at boot whose pageblocks are MIGRATE_CMA. */
export interface cma {
  readonly name: string;
  readonly base_pfn: number;
  readonly count: number;
  /** Frames handed out by cma_alloc (bitmap), as pfn offsets. */
  readonly bitmap: Uint8Array;
}

export interface PageAllocState {
  readonly zones: zone[];
  readonly cmas: cma[];
  /** Frames handed out, freed and failed, for reports and benchmarks. */
  stats: { allocs: number; frees: number; failures: number };
}

export function page_alloc_state(): PageAllocState {
  const s = currentKernel().sub.page_alloc as PageAllocState | undefined;
  if (!s) throw new Error('the kernel has no page allocator: boot it with a machine description');
  return s;
}

/** Zone index of a frame (page_zonenum). */
export function page_zonenum(p: page | number): number {
  for (const z of page_alloc_state().zones) {
    if (p >= z.zone_start_pfn && p < z.zone_end_pfn) return z.idx;
  }
  return ZONE_NORMAL;
}

export function page_zone(p: page | number): zone | undefined {
  return page_alloc_state().zones.find((z) => p >= z.zone_start_pfn && p < z.zone_end_pfn);
}

/**
 * Model: the scheduler object that stands for a zone's allocator state (its free lists
 * and buddy flags, the pageblock migratetypes, the LRU membership of its folios), as
 * zone->lock guards the first two. Steps that read or change that state name it, or list
 * it in their `also`.
 */
export function zone_state_obj(p: page | number): string {
  return `zone${page_zone(p)?.idx ?? page_zonenum(p)}.lock`;
}

/**
 * Model: whether the frame lies in a CMA area. Static (the areas are fixed at boot),
 * unlike the pageblock's migratetype, which isolation turns to MIGRATE_ISOLATE and back.
 */
export function pfn_in_cma_area(p: page | number): boolean {
  return page_alloc_state().cmas.some((c) => p >= c.base_pfn && p < c.base_pfn + c.count);
}

/** get_pageblock_migratetype(page) */
export function get_pageblock_migratetype(p: page | number): number {
  const a = memmap().peek(p);
  if (a) return a.migratetype[memmap_slot(p) >> pageblock_order]!;
  return pristineMigratetype(p);
}

function pristineMigratetype(p: number): number {
  for (const c of page_alloc_state().cmas) {
    if (p >= c.base_pfn && p < c.base_pfn + c.count) return MIGRATE_CMA;
  }
  return MIGRATE_MOVABLE;
}

/** set_pageblock_migratetype(page, mt) */
export function set_pageblock_migratetype(p: page | number, mt: number): void {
  memmap().arraysFor(p).migratetype[memmap_slot(p) >> pageblock_order] = mt;
}

/** is_migrate_cma_page(page) */
export function is_migrate_cma_page(p: page | number): boolean {
  return get_pageblock_migratetype(p) === MIGRATE_CMA;
}

/**
 * Sets up zones and their untouched memory from the memmap's RAM ranges (free_area_init,
 * memblock_free_all). CMA areas are carved out as MIGRATE_CMA runs.
 */
export function free_area_init(opts: {
  movable_start_pfn?: number;
  cma?: readonly { name: string; base: number; size: number }[];
}): PageAllocState {
  const m = memmap();
  const ram = m.memmapRanges.filter((r) => r.kind === 'ram');
  const end = ram.length ? ram[ram.length - 1]!.end / 4096 : 0;
  const dma32End = Math.min(end, 0x100000);
  const movStart = Math.min(opts.movable_start_pfn ?? end, end);
  const zones: zone[] = [new zone(ZONE_DMA32, 0, dma32End)];
  if (movStart > dma32End) zones.push(new zone(ZONE_NORMAL, dma32End, movStart));
  if (opts.movable_start_pfn !== undefined && movStart < end) {
    zones.push(new zone(ZONE_MOVABLE, Math.max(movStart, dma32End), end));
  }
  const cmas: cma[] = (opts.cma ?? []).map((c) => {
    if (c.base % (pageblock_nr_pages * 4096) !== 0 || c.size % (pageblock_nr_pages * 4096) !== 0) {
      throw new Error(`CMA area '${c.name}' must be aligned to pageblocks (2 MiB)`);
    }
    return {
      name: c.name,
      base_pfn: c.base / 4096,
      count: c.size / 4096,
      bitmap: new Uint8Array(c.size / 4096),
    };
  });
  const state: PageAllocState = { zones, cmas, stats: { allocs: 0, frees: 0, failures: 0 } };
  currentKernel().sub.page_alloc = state;
  for (const r of ram) {
    let lo = r.start / 4096;
    const hi = r.end / 4096;
    // Split the range at zone and CMA boundaries.
    const cuts = new Set<number>([lo, hi]);
    for (const z of zones) cuts.add(z.zone_start_pfn).add(z.zone_end_pfn);
    for (const c of cmas) cuts.add(c.base_pfn).add(c.base_pfn + c.count);
    for (const mr of m.memblockReserved) cuts.add(mr.start / 4096).add(mr.end / 4096);
    const points = [...cuts].filter((x) => x >= lo && x <= hi).sort((a, b) => a - b);
    for (let i = 0; i + 1 < points.length; i++) {
      lo = points[i]!;
      const h = points[i + 1]!;
      const z = zones.find((zz) => lo >= zz.zone_start_pfn && lo < zz.zone_end_pfn);
      if (!z || h <= lo) continue;
      // memblock-reserved memory (the kernel image) never reaches the allocator.
      if (m.memblockReserved.some((mr) => lo >= mr.start / 4096 && lo < mr.end / 4096)) continue;
      const mt = cmas.some((c) => lo >= c.base_pfn && lo < c.base_pfn + c.count)
        ? MIGRATE_CMA
        : MIGRATE_MOVABLE;
      z.fresh.push({ next: lo, end: h, mt });
      z.managed_pages += h - lo;
      z.nr_free += h - lo;
    }
  }
  return state;
}

function gfp_migratetype(gfp: number): number {
  if (gfp & __GFP_MOVABLE) return MIGRATE_MOVABLE;
  if (gfp & __GFP_RECLAIMABLE) return MIGRATE_RECLAIMABLE;
  return MIGRATE_UNMOVABLE;
}

function zonelist(gfp: number): zone[] {
  const zs = page_alloc_state().zones;
  if (gfp & __GFP_DMA32) return zs.filter((z) => z.idx === ZONE_DMA32);
  const order =
    gfp & __GFP_MOVABLE ? [ZONE_MOVABLE, ZONE_NORMAL, ZONE_DMA32] : [ZONE_NORMAL, ZONE_DMA32];
  return order.map((i) => zs.find((z) => z.idx === i)).filter((z): z is zone => z !== undefined);
}

function isFreeBlock(pfn: number, order: number): boolean {
  const a = memmap().peek(pfn);
  if (!a) return false;
  const i = memmap_slot(pfn);
  return (a.flags[i]! & PG_buddy) !== 0 && a.order[i] === order;
}

function popList(l: number[], order: number): number | null {
  while (l.length) {
    const pfn = l.pop()!;
    if (isFreeBlock(pfn, order)) return pfn;
  }
  return null;
}

/**
 * Takes [start, next) out of never-used range r. Frames [r.next, start) skipped to align
 * the block stay never-used, as a range of their own taken before the rest of r; a range
 * used up is dropped, so the list does not grow with the allocations.
 */
function takeFrom(z: zone, r: FreshRange, start: number, next: number): void {
  const i = z.fresh.indexOf(r);
  const parts: FreshRange[] = [];
  if (start > r.next) parts.push({ next: r.next, end: start, mt: r.mt });
  r.next = next;
  if (r.next < r.end) parts.push(r);
  z.fresh.splice(i, 1, ...parts);
}

function takeFresh(z: zone, order: number, want: number, mts: readonly number[]): number | null {
  const n = 2 ** order;
  for (const mt of mts) {
    for (const r of z.fresh) {
      if (r.mt !== mt) continue;
      if (mt === want || order >= pageblock_order) {
        const start = Math.ceil(r.next / n) * n;
        if (start + n > r.end) continue;
        takeFrom(z, r, start, start + n);
        if (mt !== want && mt !== MIGRATE_CMA) set_pageblock_migratetype(start, want);
        return start;
      }
      // Another migratetype: claim a whole free pageblock for it, as
      // steal_suitable_fallback() does with a fully free block. The rest of the block is
      // free memory of the new type, handed out in address order as expand() would: it
      // becomes a never-used range of that type, taken before any other.
      const start = Math.ceil(r.next / pageblock_nr_pages) * pageblock_nr_pages;
      if (start + pageblock_nr_pages > r.end) continue;
      takeFrom(z, r, start, start + pageblock_nr_pages);
      set_pageblock_migratetype(start, want);
      if (n < pageblock_nr_pages) {
        z.fresh.unshift({ next: start + n, end: start + pageblock_nr_pages, mt: want });
      }
      return start;
    }
  }
  return null;
}

function splitHigher(z: zone, order: number, mts: readonly number[]): number | null {
  for (let o = order + 1; o <= 10; o++) {
    for (const mt of mts) {
      const pfn = popList(z.list(o, mt), o);
      if (pfn === null) continue;
      markAllocated(pfn, o);
      const n = 2 ** order;
      for (let p = pfn + n; p < pfn + 2 ** o; p += n) freeBlock(p, order, false);
      return pfn;
    }
  }
  return null;
}

function markAllocated(pfn: number, order: number): void {
  const n = 2 ** order;
  for (let i = 0; i < n; i++) {
    const a = memmap().arraysFor(pfn + i);
    const s = memmap_slot(pfn + i);
    a.flags[s] = 0;
    a.order[s] = 0;
    a.refcount[s] = 0;
    a.mapcount[s] = 0;
    a.mapping[s] = 0;
    a.index[s] = 0;
  }
}

/**
 * Puts a block on its free list. Order-0 frames of CMA pageblocks go on the MOVABLE list
 * (free_unref_page: pcp lists hold only the PCP types), isolated ones on no list.
 */
function freeBlock(pfn: number, order: number, count: boolean): void {
  const z = page_zone(pfn);
  if (!z) return;
  const n = 2 ** order;
  for (let i = 0; i < n; i++) {
    const a = memmap().arraysFor(pfn + i);
    const s = memmap_slot(pfn + i);
    a.flags[s] = PG_buddy;
    a.order[s] = order;
    a.refcount[s] = 0;
    a.mapcount[s] = 0;
    a.mapping[s] = 0;
  }
  let mt = get_pageblock_migratetype(pfn);
  if (count) z.nr_free += n;
  if (mt === MIGRATE_ISOLATE) return;
  if (mt === MIGRATE_CMA && order === 0) mt = MIGRATE_MOVABLE;
  z.list(order, mt).push(pfn);
}

/**
 * __alloc_pages(gfp, order): a block of 2^order frames with refcount 1 on the head, or
 * null. Movable requests may use CMA pageblocks (ALLOC_CMA), after movable memory.
 * @kernel mm/page_alloc.c:__alloc_pages (all versions; __alloc_frozen_pages v6.14+)
 * Locking: zone->lock / pcp lock internally; callable in any context in the model.
 * Return: the head page, or NULL on failure.
 */
export function __alloc_pages(gfp: number, order: number): page | null {
  const st = page_alloc_state();
  const mt = gfp_migratetype(gfp);
  const mts = mt === MIGRATE_MOVABLE ? [MIGRATE_MOVABLE, MIGRATE_CMA] : [mt];
  const fallback = [MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE].filter(
    (x) => x !== mt,
  );
  for (const z of zonelist(gfp)) {
    let pfn: number | null = null;
    for (const m of mts) {
      pfn = popList(z.list(order, m), order);
      if (pfn !== null) break;
    }
    pfn ??= takeFresh(z, order, mt, [...mts, ...fallback.filter((m) => m !== MIGRATE_CMA)]);
    pfn ??= splitHigher(z, order, mts);
    if (pfn === null) {
      for (const m of fallback) {
        pfn = popList(z.list(order, m), order);
        if (pfn !== null) break;
      }
    }
    if (pfn === null) continue;
    markAllocated(pfn, order);
    memmap().arraysFor(pfn).refcount[memmap_slot(pfn)] = 1;
    // Old contents stay unless __GFP_ZERO asks for zeroed memory (prep_new_page).
    if (gfp & __GFP_ZERO) for (let i = 0; i < 2 ** order; i++) phys_clear_frame(pfn + i);
    z.nr_free -= 2 ** order;
    st.stats.allocs++;
    pfnsan_page_alloc(pfn, 2 ** order);
    return pfn as page;
  }
  st.stats.failures++;
  return null;
}

/** alloc_pages(gfp, order) */
export function alloc_pages(gfp: number, order: number): page | null {
  return __alloc_pages(gfp, order);
}

/** alloc_page(gfp) */
export function alloc_page(gfp: number): page | null {
  return __alloc_pages(gfp, 0);
}

/** Bad-page report rate limit state (mm/page_alloc.c:bad_page's statics). */
interface BadPageRatelimit {
  resume: number;
  nr_shown: number;
  nr_unshown: number;
}

/**
 * bad_page(page, reason): "BUG: Bad page state" with the page's state, at most 60
 * reports then silence for 60 seconds; taints TAINT_BAD_PAGE and resets the mapcount.
 * The page is not freed (it leaks, as in the kernel).
 * @kernel mm/page_alloc.c:bad_page (all versions)
 */
export function bad_page(p: page, reason: string): void {
  const k = currentKernel();
  const rl = ((k.sub.bad_page_rl as BadPageRatelimit | undefined) ??= {
    resume: 0,
    nr_shown: 0,
    nr_unshown: 0,
  });
  const hz = k.config.CONFIG_HZ as number;
  let show = true;
  if (rl.nr_shown === 60) {
    if (k.jiffies < rl.resume) {
      rl.nr_unshown++;
      show = false;
    } else {
      if (rl.nr_unshown) {
        pr_alert(`BUG: Bad page state: ${rl.nr_unshown} messages suppressed`);
        rl.nr_unshown = 0;
      }
      rl.nr_shown = 0;
    }
  }
  if (show) {
    if (rl.nr_shown++ === 0) rl.resume = k.jiffies + 60 * hz;
    const a = memmap().arraysFor(p);
    const s = memmap_slot(p);
    pr_alert(
      `BUG: Bad page state in process ${get_current().comm}  pfn:${p.toString(16).padStart(5, '0')}`,
    );
    pr_alert(
      `page: refcount:${a.refcount[s]} mapcount:${a.mapcount[s]} mapping:${a.mapping[s] ? `mapping#${a.mapping[s]}` : '0000000000000000'} index:0x${a.index[s]!.toString(16)} pfn:0x${p.toString(16)}`,
    );
    pr_alert(`flags: 0x${a.flags[s]!.toString(16)}`);
    pr_alert(`page dumped because: ${reason}`);
    dump_stack();
  }
  add_taint(TAINT_BAD_PAGE, LOCKDEP_NOW_UNRELIABLE);
  memmap().arraysFor(p).mapcount[memmap_slot(p)] = 0;
}

/** page_bad_reason(): the first failed free-time check of one frame, or null. */
function page_bad_reason(pfn: number, head: boolean): string | null {
  const a = memmap().arraysFor(pfn);
  const s = memmap_slot(pfn);
  if (a.mapcount[s] !== 0) return 'nonzero mapcount';
  if (head && a.mapping[s] !== 0) return 'non-NULL mapping';
  if (head && a.refcount[s] !== 0) return 'nonzero _refcount';
  if ((a.flags[s]! & (PG_buddy | PG_reserved)) !== 0) return 'PAGE_FLAGS_CHECK_AT_FREE flag(s) set';
  return null;
}

/**
 * free_pages_prepare + free: checks every frame of a block whose refcount reached zero
 * (anon mappings are cleared first, as PageMappingFlags pages are) and returns it to
 * the allocator; a bad frame is reported by bad_page() and the block is leaked.
 * @kernel mm/page_alloc.c:free_pages_prepare, free_unref_page (all versions)
 * Locking: as __alloc_pages.
 */
export function free_pages_prepared(p: page, order: number): void {
  const a = memmap().arraysFor(p);
  const s = memmap_slot(p);
  if (a.flags[s]! & PG_anon) {
    a.mapping[s] = 0;
    a.flags[s]! &= ~PG_anon;
  }
  let bad = false;
  for (let i = 0; i < 2 ** order; i++) {
    const why = page_bad_reason(p + i, i === 0);
    if (why) {
      bad_page((p + i) as page, why);
      bad = true;
    }
  }
  if (bad) return;
  freeBlock(p, order, true);
  page_alloc_state().stats.frees++;
  pfnsan_page_free(p, 2 ** order);
}

/**
 * __free_pages(page, order): drops the caller's reference; frees at zero.
 * @kernel mm/page_alloc.c:__free_pages (all versions)
 */
export function __free_pages(p: page, order: number): void {
  const a = memmap().arraysFor(p);
  const s = memmap_slot(p);
  VM_BUG_ON(
    a.refcount[s]! <= 0,
    `VM_BUG_ON_PAGE(page_ref_count(page) == 0) pfn:0x${p.toString(16)}`,
  );
  if (--a.refcount[s]! === 0) free_pages_prepared(p, order);
}

/** Whether a frame is free in the allocator (PageBuddy, or never handed out). */
export function page_is_free(pfn: number): boolean {
  const z = page_zone(pfn);
  if (!z) return false;
  const a = memmap().peek(pfn);
  if (a && (a.flags[memmap_slot(pfn)]! & PG_buddy) !== 0) return true;
  return z.fresh.some((r) => pfn >= r.next && pfn < r.end);
}

/**
 * Takes a specific free frame out of the allocator (as alloc_contig_range does for the
 * frames it collects). Returns false if the frame is not free.
 */
export function take_free_frame(pfn: number): boolean {
  if (!page_is_free(pfn)) return false;
  const z = page_zone(pfn)!;
  const a = memmap().peek(pfn);
  const s = memmap_slot(pfn);
  if (a && (a.flags[s]! & PG_buddy) !== 0) {
    const order = a.order[s]!;
    const n = 2 ** order;
    const head = Math.floor(pfn / n) * n;
    // Break the free block: its other frames stay free as order-0 blocks.
    for (let p = head; p < head + n; p++) {
      const aa = memmap().arraysFor(p);
      aa.flags[memmap_slot(p)] = 0;
      aa.order[memmap_slot(p)] = 0;
    }
    for (let p = head; p < head + n; p++) if (p !== pfn) freeBlock(p, 0, false);
  } else {
    // Never handed out: split the fresh range around it.
    const i = z.fresh.findIndex((r) => pfn >= r.next && pfn < r.end);
    const r = z.fresh[i]!;
    const after: FreshRange = { next: pfn + 1, end: r.end, mt: r.mt };
    for (let p = r.next; p < pfn; p++) freeBlock(p, 0, false);
    z.fresh.splice(i, 1, after);
  }
  markAllocated(pfn, 0);
  z.nr_free--;
  pfnsan_page_alloc(pfn, 1);
  return true;
}

/**
 * move_freepages_block(zone, page, migratetype): moves every free block of the pageblock
 * containing pfn onto the free lists of `mt`; with MIGRATE_ISOLATE onto no list, so the
 * allocator cannot hand them out (freeBlock keeps later frees of the block off the lists
 * too). Never-used memory of the block is first turned into free order-0 blocks so it
 * moves with the rest. Used by page isolation: isolating (to MIGRATE_ISOLATE) and undoing
 * it (back to the block's migratetype; order-0 CMA frames then sit on the MIGRATE_CMA
 * list, as the buddy lists hold them, not on the MOVABLE per-cpu list).
 * @kernel mm/page_alloc.c:move_freepages_block (v5.x-v6.9; move_freepages_block_isolate
 *   v6.10+)
 * Locking: zone->lock in the kernel (the model's allocator needs none).
 * Return: the number of free frames moved.
 */
export function move_freepages_block(z: zone, pfn: number, mt: number): number {
  const start = Math.max(
    Math.floor(pfn / pageblock_nr_pages) * pageblock_nr_pages,
    z.zone_start_pfn,
  );
  const end = Math.min(start + pageblock_nr_pages, z.zone_end_pfn);
  // Carve the block's never-used frames out of the fresh ranges.
  for (let i = 0; i < z.fresh.length; i++) {
    const r = z.fresh[i]!;
    const lo = Math.max(r.next, start);
    const hi = Math.min(r.end, end);
    if (lo >= hi) continue;
    const parts: FreshRange[] = [];
    if (r.next < lo) parts.push({ next: r.next, end: lo, mt: r.mt });
    if (hi < r.end) parts.push({ next: hi, end: r.end, mt: r.mt });
    z.fresh.splice(i, 1, ...parts);
    i += parts.length - 1;
    for (let p = lo; p < hi; p++) {
      const a = memmap().arraysFor(p);
      const s = memmap_slot(p);
      a.flags[s] = PG_buddy;
      a.order[s] = 0;
      a.refcount[s] = 0;
      a.mapcount[s] = 0;
      a.mapping[s] = 0;
    }
  }
  // Take the block's free blocks off whatever list holds them.
  for (const l of z.free.values()) {
    let w = 0;
    for (const p of l) if (p < start || p >= end) l[w++] = p;
    l.length = w;
  }
  let moved = 0;
  for (let p = start; p < end;) {
    const a = memmap().peek(p);
    const s = memmap_slot(p);
    if (!a || (a.flags[s]! & PG_buddy) === 0) {
      p++;
      continue;
    }
    const n = 2 ** a.order[s]!;
    if (p % n !== 0) {
      p++;
      continue;
    }
    if (mt !== MIGRATE_ISOLATE) z.list(a.order[s]!, mt).push(p);
    moved += n;
    p += n;
  }
  return moved;
}
