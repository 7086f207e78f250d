/**
 * The contiguous memory allocator: areas reserved at boot (page_alloc_state().cmas, from
 * the `cma` boot parameter) whose pageblocks are MIGRATE_CMA, lent to movable
 * allocations (page cache, anonymous memory) and taken back on demand by cma_alloc(),
 * which migrates whatever lives in the range it picks (alloc_contig_range()) and tries
 * the next aligned range when that range is busy. A frame that cannot be migrated (a
 * pinned folio, a kernel page) blocks its range; cma_last_failure() says which frame
 * blocked each range and why, and names the pins holding it (who took them, through
 * which GUP call, from where; gup.ts "Pin provenance"), which the model also logs in
 * KERN_DEBUG lines prefixed "pfnsim:" (the kernel itself does not know pin owners).
 *
 * Freed CMA frames return to the allocator at once and, being order-0 frees, land on the
 * MOVABLE per-cpu list (free_unref_page), so the next movable allocation takes a frame a
 * driver has just released (R-REV-5).
 *
 * Left out: order_per_bit > 0, multiple ranges per area (v6.15+ has them; the model's
 * areas are one range), cma_alloc_folio / __GFP_COMP, debugfs and sysfs statistics,
 * tracepoints, KASAN tag resets.
 *
 * @kernel mm/cma.c (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { page } from '../include/linux/mm_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import { VM_BUG_ON, vmemmap_addr } from '../kernel/panic.js';
import { pr_debug, pr_err, pr_info, ratelimit_state, ___ratelimit } from '../kernel/printk.js';
import { EBUSY, ENOMEM } from '../include/linux/errno.js';
import {
  mutex,
  mutex_lock,
  mutex_unlock,
  spin_lock,
  spin_unlock,
  spinlock_t,
} from '../include/linux/spinlock.js';
import { GFP_KERNEL, page_alloc_state, __GFP_NOWARN, type cma } from './page_alloc.js';
import { MIGRATE_CMA } from './sparse.js';
import {
  alloc_contig_last_blocker,
  alloc_contig_range,
  free_contig_range,
  type ContigBlocker,
} from './page_isolation.js';
import { gup_pin_record_str, type gup_pin_record } from './gup.js';
import { pfnsan_cma_pin } from './pfnsan/pfnsan.js';

/** One candidate range cma_alloc() tried and could not allocate. */
export interface CmaRangeAttempt {
  readonly start_pfn: number;
  /** Exclusive. */
  readonly end_pfn: number;
  /** alloc_contig_range()'s result (-EBUSY: a frame could not be freed). */
  readonly ret: number;
  /** The frame that kept the range busy, with refcount, mapcount and pin details. */
  readonly blocker: ContigBlocker | null;
}

/** Why the most recent cma_alloc() on an area failed (model report). */
export interface CmaAllocFailure {
  readonly cma: string;
  readonly count: number;
  readonly align: number;
  /** The kernel's ret in "alloc failed, req-size: N pages, ret: R". */
  readonly ret: number;
  /** Every range tried, in order. */
  readonly attempts: readonly CmaRangeAttempt[];
  /** The first blocker found (the frame that blocked the first busy range). */
  readonly blocker: ContigBlocker | null;
  /**
   * Model only: every FOLL_PIN pin that held a blocking frame, over all the ranges tried,
   * oldest first (each blocker's `pins`, without repeats). The kernel's own messages do
   * not name pins; the model adds a KERN_DEBUG "pfnsim:" line per busy range.
   */
  readonly pins: readonly gup_pin_record[];
}

interface CmaModel {
  readonly lock: spinlock_t;
  readonly alloc_mutex: mutex;
  lastFailure: CmaAllocFailure | null;
  readonly rs: ratelimit_state;
}

interface CmaGlobal {
  readonly cma_mutex: mutex;
  readonly areas: Map<cma, CmaModel>;
}

function cglobal(): CmaGlobal {
  const k = currentKernel();
  return ((k.sub.cma as CmaGlobal | undefined) ??= {
    cma_mutex: new mutex('cma_mutex'),
    areas: new Map(),
  });
}

function cm(c: cma): CmaModel {
  const g = cglobal();
  let m = g.areas.get(c);
  if (!m) {
    const hz = currentKernel().config.CONFIG_HZ as number;
    m = {
      lock: new spinlock_t(`cma.${c.name}.lock`),
      alloc_mutex: new mutex(`cma.${c.name}.alloc_mutex`),
      lastFailure: null,
      rs: new ratelimit_state(5 * hz, 10),
    };
    g.areas.set(c, m);
  }
  return m;
}

/** The CMA area with this name (model lookup; areas come from the boot parameters). */
export function cma_find(name: string): cma | null {
  return page_alloc_state().cmas.find((c) => c.name === name) ?? null;
}

/** cma_get_base(cma): physical address of the area. */
export function cma_get_base(c: cma): number {
  return c.base_pfn * 4096;
}

/** cma_get_size(cma): bytes. */
export function cma_get_size(c: cma): number {
  return c.count * 4096;
}

/** cma_get_name(cma) */
export function cma_get_name(c: cma): string {
  return c.name;
}

/** The model's areas have order_per_bit 0: one bitmap entry per page. */
const order_per_bit = 0;

/** cma_bitmap_aligned_mask(cma, align_order) */
function cma_bitmap_aligned_mask(align_order: number): number {
  if (align_order <= order_per_bit) return 0;
  return 2 ** (align_order - order_per_bit) - 1;
}

/** cma_bitmap_aligned_offset(cma, align_order) */
function cma_bitmap_aligned_offset(c: cma, align_order: number): number {
  return (c.base_pfn % 2 ** align_order) >> order_per_bit;
}

/**
 * bitmap_find_next_zero_area_off(map, size, start, nr, align_mask, align_offset): the
 * first run of nr clear bits at or after start whose index + align_offset is aligned to
 * align_mask + 1; a value past size when there is none.
 * @kernel lib/bitmap.c:bitmap_find_next_zero_area_off (all versions)
 */
export function bitmap_find_next_zero_area_off(
  map: Uint8Array,
  size: number,
  start: number,
  nr: number,
  align_mask: number,
  align_offset: number,
): number {
  for (;;) {
    let index = start;
    while (index < size && map[index]) index++;
    // Align allocation
    index =
      Math.floor((index + align_offset + align_mask) / (align_mask + 1)) * (align_mask + 1) -
      align_offset;
    const end = index + nr;
    if (end > size) return end;
    let i = index;
    while (i < end && !map[i]) i++;
    if (i < end) {
      start = i + 1;
      continue;
    }
    return index;
  }
}

/** Free (clear) bits of the area's bitmap: cma->available_count (v6.15+). */
function available_count(c: cma): number {
  let n = 0;
  for (let i = 0; i < c.count; i++) if (!c.bitmap[i]) n++;
  return n;
}

/** %p of a struct page (the model prints the vmemmap address, unhashed). */
function ptr(p: number | null): string {
  return p === null ? '0000000000000000' : vmemmap_addr(p).padStart(16, '0');
}

/**
 * cma_clear_bitmap(cma, pfn, count): gives bitmap bits back.
 * @kernel mm/cma.c:cma_clear_bitmap (all versions)
 * Locking: takes cma->lock.
 */
function* cma_clear_bitmap(c: cma, pfn: number, count: number): Op<void> {
  const m = cm(c);
  yield* spin_lock(m.lock);
  c.bitmap.fill(0, pfn - c.base_pfn, pfn - c.base_pfn + count);
  yield* spin_unlock(m.lock);
}

/**
 * cma_debug_show_areas(cma): the free runs of the bitmap, "N@offset" joined by "+".
 * Under CONFIG_CMA_DEBUG only before v6.9 ("mm/cma: drop CONFIG_CMA_DEBUG"); one line per
 * range from v6.15.
 * @kernel mm/cma.c:cma_debug_show_areas (all versions)
 */
function* cma_debug_show_areas(c: cma): Op<void> {
  const m = cm(c);
  yield* spin_lock(m.lock);
  const parts: string[] = [];
  let total = 0;
  let start = 0;
  for (;;) {
    let z = start;
    while (z < c.count && c.bitmap[z]) z++;
    if (z >= c.count) break;
    let s = z;
    while (s < c.count && !c.bitmap[s]) s++;
    const nr = s - z;
    parts.push(`${(since(6, 15) ? start : total) ? '+' : ''}${nr << order_per_bit}@${z}`);
    total += nr << order_per_bit;
    start = z + nr;
  }
  if (since(6, 15)) {
    pr_info('cma: number of available pages: ');
    pr_info(`cma: range 0: ${parts.join('')}`);
    pr_info(`cma: => ${available_count(c)} free of ${c.count} total pages`);
  } else {
    pr_info(
      `cma: number of available pages: ${parts.join('')}=> ${total} free of ${c.count} total pages`,
    );
  }
  yield* spin_unlock(m.lock);
}

/**
 * cma_alloc(cma, count, align, no_warn): allocates count frames aligned to 2^align pages
 * from the area: picks the first free aligned run of the bitmap, reserves it, and asks
 * alloc_contig_range() for it; a busy run (-EBUSY: something in it could not be
 * migrated) is given back and the search resumes one alignment step further. Every
 * frame returned has refcount 1.
 * Messages: the busy pr_debug ("memory range at %p is busy", "at pfn 0x%lx %p" v6.5+) and
 * on failure "cma: <func>: [<name>: ]alloc failed, req-size: N pages, ret: R" (the name
 * v5.12+, a052d4d13d88; ratelimited v5.13+, 63f83b31f4f3; %lu v5.13+, 78fa51503fdb;
 * <func> is __cma_alloc v6.12+ ("mm/cma: add cma_alloc_folio()"), and the busy message
 * comes from cma_range_alloc v6.15+, c009da4258f9).
 * @kernel mm/cma.c:cma_alloc, __cma_alloc, cma_range_alloc (all versions; __cma_alloc
 *   v6.12+, cma_range_alloc v6.15+)
 * Locking: may sleep; takes cma->lock and cma_mutex (per-area alloc_mutex v6.15+,
 *   24ac6fb6e364).
 * Return: the first page, or NULL. cma_last_failure() describes a failure.
 */
export function* cma_alloc(
  c: cma | null,
  count: number,
  align: number,
  no_warn: boolean,
): Op<page | null> {
  if (!c || !c.count) return null;
  const m = cm(c);
  m.lastFailure = null;
  if (!count) return null;
  const gfp = GFP_KERNEL | (no_warn ? __GFP_NOWARN : 0);
  const fnAlloc = since(6, 12) ? '__cma_alloc' : 'cma_alloc';
  const fnRange = since(6, 15) ? 'cma_range_alloc' : fnAlloc;
  const attempts: CmaRangeAttempt[] = [];
  let pg: page | null = null;
  // __cma_alloc's ret starts at -ENOMEM; cma_range_alloc's (v6.15+) at -EBUSY.
  let ret = since(6, 15) ? -EBUSY : -ENOMEM;
  const mask = cma_bitmap_aligned_mask(align);
  const offset = cma_bitmap_aligned_offset(c, align);
  const bitmap_maxno = c.count >> order_per_bit;
  const bitmap_count = count >> order_per_bit;
  if (bitmap_count > bitmap_maxno) {
    if (!since(6, 15)) return null;
  } else {
    let start = 0;
    for (;;) {
      yield* spin_lock(m.lock);
      // If the request is larger than the available number of pages, stop right away.
      if (since(6, 15) && count > available_count(c)) {
        yield* spin_unlock(m.lock);
        break;
      }
      const bitmap_no = bitmap_find_next_zero_area_off(
        c.bitmap,
        bitmap_maxno,
        start,
        bitmap_count,
        mask,
        offset,
      );
      if (bitmap_no >= bitmap_maxno) {
        yield* spin_unlock(m.lock);
        break;
      }
      c.bitmap.fill(1, bitmap_no, bitmap_no + bitmap_count);
      // It's safe to drop the lock here. We've marked this region for our exclusive use.
      // If the migration fails we will take the lock again and unmark it.
      yield* spin_unlock(m.lock);
      const pfn = c.base_pfn + (bitmap_no << order_per_bit);
      const mx = since(6, 15) ? m.alloc_mutex : cglobal().cma_mutex;
      yield* mutex_lock(mx);
      ret = yield* alloc_contig_range(pfn, pfn + count, MIGRATE_CMA, gfp);
      yield* mutex_unlock(mx);
      if (ret === 0) {
        pg = pfn as page;
        break;
      }
      attempts.push({
        start_pfn: pfn,
        end_pfn: pfn + count,
        ret,
        blocker: ret === -EBUSY ? alloc_contig_last_blocker() : null,
      });
      yield* cma_clear_bitmap(c, pfn, count);
      if (ret !== -EBUSY) break;
      const at = since(6, 5) ? `pfn 0x${pfn.toString(16)} ${ptr(pfn)}` : ptr(pfn);
      pr_debug(`cma: ${fnRange}(): memory range at ${at} is busy, retrying`);
      pfnsim_report_busy(c, attempts[attempts.length - 1]!);
      // try again with a bit different memory target
      start = bitmap_no + mask + 1;
    }
  }
  if (ret && !no_warn) {
    const name = since(5, 12) ? `${c.name}: ` : '';
    const line = `cma: ${fnAlloc}: ${name}alloc failed, req-size: ${count} pages, ret: ${ret}`;
    if (!since(5, 13) || ___ratelimit(m.rs, fnAlloc)) pr_err(line);
    if (since(6, 9) || currentKernel().config.CONFIG_CMA_DEBUG === true)
      yield* cma_debug_show_areas(c);
  }
  pr_debug(`cma: ${fnAlloc}(): returned ${ptr(pg)}`);
  if (pg === null) {
    const pins = new Map<number, gup_pin_record>();
    for (const a of attempts) for (const r of a.blocker?.pins ?? []) pins.set(r.id, r);
    m.lastFailure = {
      cma: c.name,
      count,
      align,
      ret,
      attempts,
      blocker: attempts.find((a) => a.blocker)?.blocker ?? null,
      pins: [...pins.values()].sort((a, b) => a.id - b.id),
    };
    // pfnsan: a pin still inside its FOLL_LONGTERM GUP call is transient (the call is
    // about to drop it and migrate the folio out of CMA): cma_alloc may fail on it, as
    // it may on any short-lived reference, and a caller retries. Only the pins GUP has
    // handed to its caller are reported.
    const b = m.lastFailure.blocker;
    const held = m.lastFailure.pins.filter((r) => !r.inflight);
    if (b) pfnsan_cma_pin(c.name, count, b.pfn, held);
  }
  return pg;
}

/**
 * Model-only log line(s) for a busy range, after the kernel's own "is busy" message:
 * which frame blocked it and, when the frame is pinned, who holds each pin (task, GUP
 * entry point and flags, caller, time). KERN_DEBUG and prefixed "pfnsim:" so they are
 * never mistaken for kernel output.
 */
function pfnsim_report_busy(c: cma, a: CmaRangeAttempt): void {
  const b = a.blocker;
  if (!b) return;
  const range = `[0x${a.start_pfn.toString(16)}-0x${a.end_pfn.toString(16)})`;
  const head = `pfnsim: cma: ${c.name}: range ${range} busy at pfn 0x${b.pfn.toString(16)}`;
  if (!b.pins.length) {
    pr_debug(`${head}: ${b.reason}`);
    return;
  }
  for (const r of b.pins) pr_debug(`${head}: pinned by ${gup_pin_record_str(r)}`);
}

/**
 * cma_pages_valid(cma, pages, count): the frames lie inside the area.
 * @kernel mm/cma.c:cma_pages_valid (v5.16+)
 */
export function cma_pages_valid(c: cma | null, pages: page | null, count: number): boolean {
  if (!c || pages === null) return false;
  const pfn = pages as number;
  if (pfn < c.base_pfn || pfn >= c.base_pfn + c.count) {
    pr_debug(`cma: cma_pages_valid(page ${ptr(pfn)}, count ${count})`);
    return false;
  }
  if (since(6, 15)) return pfn + count <= c.base_pfn + c.count;
  return true;
}

/**
 * cma_release(cma, pages, count): gives frames from cma_alloc() back: each loses its
 * reference and returns to the allocator at once (order 0 onto the MOVABLE list, so the
 * next movable allocation reuses it), and the bitmap bits are cleared. A frame someone
 * still references is not freed ("N pages are still in use!" WARN).
 * @kernel mm/cma.c:cma_release, mm/page_alloc.c:free_contig_range (all versions)
 * Locking: takes cma->lock.
 * Return: false when the frames are not in the area, else true.
 */
export function* cma_release(c: cma | null, pages: page | null, count: number): Op<boolean> {
  if (!cma_pages_valid(c, pages, count)) return false;
  const pfn = pages as number;
  VM_BUG_ON(
    pfn + count > c!.base_pfn + c!.count,
    'VM_BUG_ON(pfn + count > cma->base_pfn + cma->count)',
  );
  free_contig_range(pfn, count);
  yield* cma_clear_bitmap(c!, pfn, count);
  return true;
}

/**
 * The failure of the most recent cma_alloc() on this area: every range tried and the
 * frame that blocked it (pfn, refcount against the expected refcount, mapcount, pincount,
 * whether it may be DMA-pinned, the migration error, and the pins holding it with their
 * owners). Null if that call succeeded.
 */
export function cma_last_failure(c: cma): CmaAllocFailure | null {
  return cm(c).lastFailure;
}
