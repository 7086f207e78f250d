/**
 * MMU notifiers: classic subscriptions (struct mmu_notifier with ops) and interval
 * notifiers (struct mmu_interval_notifier) with the collision-retry protocol
 * (mmu_interval_read_begin / mmu_interval_read_retry / mmu_interval_set_seq).
 *
 * The subscriptions' invalidate_seq is odd while any invalidation is active; an interval
 * notifier's read_begin waits (a blocking step) while an invalidation overlapping it is
 * in progress, and read_retry tells the reader that one started since its begin.
 *
 * Secondary TLB callbacks: ->invalidate_range from invalidate_range_end (v5.10-v6.5),
 * ->arch_invalidate_secondary_tlbs after each TLB flush of a gather (v6.6+).
 *
 * Left out: SRCU (callbacks run in the invalidating thread, in registration order), the
 * non-blockable path's -EAGAIN except as the return value of a callback, the
 * ptep_clear_flush_notify callers of ->invalidate_range (v5.10-v6.5).
 *
 * @kernel mm/mmu_notifier.c, include/linux/mmu_notifier.h (v5.7+; interval notifiers v5.5+)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct } from '../include/linux/mm_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { EINVAL } from '../include/linux/errno.js';
import { down_write, up_write } from '../include/linux/spinlock.js';
import { lockdep_assert_held_write } from '../include/linux/spinlock.js';
import { WARN_ON } from '../kernel/panic.js';
import { since } from '../version.js';
import { pfnsan_notifier_invalidate } from './pfnsan/pfnsan.js';

/** enum mmu_notifier_event */
export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EXCLUSIVE = 7;
export const MMU_NOTIFY_EVENT_NAMES = [
  'MMU_NOTIFY_UNMAP',
  'MMU_NOTIFY_CLEAR',
  'MMU_NOTIFY_PROTECTION_VMA',
  'MMU_NOTIFY_PROTECTION_PAGE',
  'MMU_NOTIFY_SOFT_DIRTY',
  'MMU_NOTIFY_RELEASE',
  'MMU_NOTIFY_MIGRATE',
  'MMU_NOTIFY_EXCLUSIVE',
];

export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1 << 0;

export interface mmu_notifier_range {
  mm: mm_struct;
  start: number;
  end: number;
  flags: number;
  event: number;
  owner: unknown;
}

export interface mmu_notifier_ops {
  release?(sub: mmu_notifier, mm: mm_struct): Op<void>;
  /** Return 0, or -EAGAIN for a non-blockable range it cannot serve. */
  invalidate_range_start?(sub: mmu_notifier, range: mmu_notifier_range): Op<number>;
  invalidate_range_end?(sub: mmu_notifier, range: mmu_notifier_range): Op<void>;
  /**
   * v5.10-v6.5: a secondary TLB (an IOMMU or device sharing the CPU's translations) must
   * drop [start, end); called from mmu_notifier_invalidate_range_end, before the pages
   * are freed. Must not sleep. Renamed in v6.6.
   */
  invalidate_range?(sub: mmu_notifier, mm: mm_struct, start: number, end: number): Op<void>;
  /**
   * v6.6+: the same, called after each CPU TLB flush of the mm (x86: flush_tlb_mm_range),
   * before the gathered pages are freed. Must not sleep.
   */
  arch_invalidate_secondary_tlbs?(
    sub: mmu_notifier,
    mm: mm_struct,
    start: number,
    end: number,
  ): Op<void>;
}

export interface mmu_notifier {
  ops: mmu_notifier_ops;
  mm: mm_struct | null;
  /** Model: who registered it (for traces). */
  readonly name: string;
}

export interface mmu_interval_notifier_ops {
  /** Must call mmu_interval_set_seq under the user's lock; false only if !blockable. */
  invalidate(sub: mmu_interval_notifier, range: mmu_notifier_range, cur_seq: number): Op<boolean>;
}

export interface mmu_interval_notifier {
  readonly name: string;
  start: number;
  /** Inclusive last address. */
  last: number;
  ops: mmu_interval_notifier_ops;
  mm: mm_struct | null;
  invalidate_seq: number;
  /** Invalidations delivered to this subscription (model statistics). */
  invalidations: number;
  /**
   * Model: the step object of invalidate_seq (`<subscriptions seq>/<name>`, set at insert).
   * mmu_interval_set_seq writes it (under the user's lock), mmu_interval_read_begin and
   * mmu_interval_check_retry read it without that lock.
   */
  seq_obj: string;
  /**
   * Model: a value mmu_interval_set_seq gave while ->invalidate runs, not yet announced
   * (see mn_itree_invalidate_one); null otherwise.
   */
  deferred_seq: number | null;
  /** Model: ->invalidate of this subscription is running (mn_itree_invalidate_one). */
  in_invalidate: boolean;
}

/** struct mmu_notifier_subscriptions, per mm. */
export interface mmu_notifier_subscriptions {
  readonly list: mmu_notifier[];
  readonly itree: mmu_interval_notifier[];
  /** Odd while an invalidation is active. */
  invalidate_seq: number;
  active_invalidate_ranges: number;
  /** Step object for the sequence (readers and invalidators conflict on it). */
  readonly seqName: string;
  released: boolean;
}

function subs(mm: mm_struct): mmu_notifier_subscriptions | null {
  return mm.notifier_subscriptions as mmu_notifier_subscriptions | null;
}

function getSubs(mm: mm_struct): mmu_notifier_subscriptions {
  let s = subs(mm);
  if (!s) {
    s = {
      list: [],
      itree: [],
      invalidate_seq: 2,
      active_invalidate_ranges: 0,
      seqName: `mm${mm.id}.notifier_subscriptions.invalidate_seq`,
      released: false,
    };
    mm.notifier_subscriptions = s;
  }
  return s;
}

/** mm_has_notifiers(mm) */
export function mm_has_notifiers(mm: mm_struct): boolean {
  return subs(mm) !== null;
}

/** mmu_notifier_range_init(range, event, flags, mm, start, end) */
export function mmu_notifier_range_init(
  event: number,
  flags: number,
  mm: mm_struct,
  start: number,
  end: number,
): mmu_notifier_range {
  return { mm, start, end, flags: flags | MMU_NOTIFIER_RANGE_BLOCKABLE, event, owner: null };
}

/** mmu_notifier_range_init_owner(range, event, flags, mm, start, end, owner) */
export function mmu_notifier_range_init_owner(
  event: number,
  flags: number,
  mm: mm_struct,
  start: number,
  end: number,
  owner: unknown,
): mmu_notifier_range {
  return { ...mmu_notifier_range_init(event, flags, mm, start, end), owner };
}

/** The log of notifier events, per kernel instance (for tests and traces). */
export interface NotifierEvent {
  readonly phase: 'start' | 'end' | 'release';
  readonly mm: number;
  readonly event: string;
  readonly start: number;
  readonly end: number;
}

export function notifierLog(): NotifierEvent[] {
  const k = currentKernel();
  return ((k.sub.mmu_notifier_log as NotifierEvent[] | undefined) ??= []);
}

function record(phase: NotifierEvent['phase'], r: mmu_notifier_range): void {
  notifierLog().push({
    phase,
    mm: r.mm.id,
    event: MMU_NOTIFY_EVENT_NAMES[r.event]!,
    start: r.start,
    end: r.end,
  });
}

/**
 * mmu_notifier_invalidate_range_start(range): makes the sequence odd, calls every
 * overlapping interval notifier's ->invalidate and every subscription's
 * ->invalidate_range_start.
 * @kernel include/linux/mmu_notifier.h:mmu_notifier_invalidate_range_start,
 *   mm/mmu_notifier.c:mn_itree_invalidate, mn_hlist_invalidate_range_start (v5.5+)
 * Locking: may sleep; callers hold mmap_lock or the rmap locks as for the zap.
 */
export function* mmu_notifier_invalidate_range_start(range: mmu_notifier_range): Op<number> {
  const s = subs(range.mm);
  record('start', range);
  if (!s || s.released) return 0;
  yield { obj: s.seqName, kind: 'write', what: 'mn_itree_inv_start_range' };
  if (s.active_invalidate_ranges++ === 0 && s.invalidate_seq % 2 === 0) s.invalidate_seq++;
  const cur = s.invalidate_seq;
  let ret = 0;
  for (const sub of [...s.itree]) {
    if (sub.last < range.start || sub.start >= range.end) continue;
    sub.invalidations++;
    const ok = yield* mn_itree_invalidate_one(sub, range, cur);
    // The subscription's guarantee ends once its callback has run: the callback
    // synchronises with the user's lock (R-MMUN-3), so a use the user made under that lock
    // before the callback got it was still covered.
    pfnsan_notifier_invalidate(sub, range.mm, range.start, range.end);
    if (!ok) {
      WARN_ON((range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0);
      ret = -11; // -EAGAIN
    }
  }
  for (const sub of [...s.list]) {
    if (sub.ops.invalidate_range_start) {
      const r = yield* sub.ops.invalidate_range_start(sub, range);
      if (r) ret = r;
    }
    pfnsan_notifier_invalidate(sub, range.mm, range.start, range.end);
  }
  return ret;
}

/**
 * Runs sub->ops->invalidate(sub, range, cur_seq) as mn_itree_invalidate does, and
 * announces the callback's mmu_interval_set_seq: its WRITE_ONCE(interval_sub->invalidate_seq)
 * is a lockless write that mmu_interval_read_begin reads without the user's lock, so it is
 * a step on `sub.seq_obj`. mmu_interval_set_seq is a plain function (as in the kernel, so
 * callbacks keep calling it without `yield*`) and cannot yield that step itself: while the
 * callback runs it only records the value, and the step and the write come here, before
 * the callback's next step or its return. Nothing the callback does in between is seen by
 * another thread, and the user's lock it holds stays held until a later step, so the write
 * is observed as if made at the call.
 * @kernel mm/mmu_notifier.c:mn_itree_invalidate,
 *   include/linux/mmu_notifier.h:mmu_interval_set_seq (v5.5+; the callback's call)
 * Locking: as for mmu_notifier_invalidate_range_start.
 * Return: the callback's result.
 */
function* mn_itree_invalidate_one(
  sub: mmu_interval_notifier,
  range: mmu_notifier_range,
  cur_seq: number,
): Op<boolean> {
  const op = sub.ops.invalidate(sub, range, cur_seq);
  sub.in_invalidate = true;
  sub.deferred_seq = null;
  try {
    let r = op.next();
    for (;;) {
      if (sub.deferred_seq !== null) {
        yield { obj: sub.seq_obj, kind: 'write', what: 'mmu_interval_set_seq' };
        sub.invalidate_seq = sub.deferred_seq;
        sub.deferred_seq = null;
      }
      if (r.done) return r.value;
      yield r.value;
      r = op.next();
    }
  } finally {
    sub.in_invalidate = false;
  }
}

/**
 * mmu_notifier_invalidate_range_end(range): ->invalidate_range_end of every
 * subscription, then the sequence becomes even again once no invalidation is active,
 * which releases waiting readers.
 * @kernel mm/mmu_notifier.c:__mmu_notifier_invalidate_range_end, mn_itree_inv_end (v5.5+)
 * Locking: as for _start.
 */
export function* mmu_notifier_invalidate_range_end(range: mmu_notifier_range): Op<void> {
  const s = subs(range.mm);
  record('end', range);
  if (!s || s.released) return;
  for (const sub of [...s.list]) {
    // v5.10-v6.5 __mmu_notifier_invalidate_range_end: ->invalidate_range first (the
    // model's ranges are never only_end).
    if (!since(6, 6) && sub.ops.invalidate_range) {
      yield* sub.ops.invalidate_range(sub, range.mm, range.start, range.end);
    }
    if (sub.ops.invalidate_range_end) yield* sub.ops.invalidate_range_end(sub, range);
  }
  yield { obj: s.seqName, kind: 'write', what: 'mn_itree_inv_end' };
  if (--s.active_invalidate_ranges === 0 && s.invalidate_seq % 2 === 1) s.invalidate_seq++;
}

/**
 * mmu_notifier_arch_invalidate_secondary_tlbs(mm, start, end): each subscription's
 * ->arch_invalidate_secondary_tlbs, in registration order. x86 calls it at the end of
 * flush_tlb_mm_range, after the CPU's TLBs are flushed and before a gather's pages are
 * freed (mm/memory.zap.ts: tlb_flush_mmu_tlbonly). A no-op before v6.6, where
 * ->invalidate_range runs from mmu_notifier_invalidate_range_end instead.
 * @kernel include/linux/mmu_notifier.h:mmu_notifier_arch_invalidate_secondary_tlbs,
 *   mm/mmu_notifier.c:__mmu_notifier_arch_invalidate_secondary_tlbs,
 *   arch/x86/mm/tlb.c:flush_tlb_mm_range (v6.6+, 1af5a8109904 "mmu_notifiers: rename
 *   invalidate_range notifier", hash recalled)
 * Locking: may be called with the PTL held; the callbacks must not sleep.
 */
export function* mmu_notifier_arch_invalidate_secondary_tlbs(
  mm: mm_struct,
  start: number,
  end: number,
): Op<void> {
  if (!since(6, 6)) return;
  const s = subs(mm);
  if (!s || s.released) return;
  for (const sub of [...s.list]) {
    if (sub.ops.arch_invalidate_secondary_tlbs) {
      yield* sub.ops.arch_invalidate_secondary_tlbs(sub, mm, start, end);
    }
  }
}

/**
 * __mmu_notifier_register(sub, mm): adds a subscription.
 * @kernel mm/mmu_notifier.c:__mmu_notifier_register (all versions)
 * Locking: mmap_lock held for write.
 * Return: 0.
 */
export function __mmu_notifier_register(sub: mmu_notifier, mm: mm_struct): number {
  lockdep_assert_held_write(mm.mmap_lock);
  const s = getSubs(mm);
  sub.mm = mm;
  s.list.push(sub);
  return 0;
}

/** mmu_notifier_register(sub, mm): takes mmap_lock for write around the registration. */
export function* mmu_notifier_register(sub: mmu_notifier, mm: mm_struct): Op<number> {
  yield* down_write(mm.mmap_lock);
  const r = __mmu_notifier_register(sub, mm);
  yield* up_write(mm.mmap_lock);
  return r;
}

/** mmu_notifier_unregister(sub, mm): calls ->release if the mm is still live, removes sub. */
export function* mmu_notifier_unregister(sub: mmu_notifier, mm: mm_struct): Op<void> {
  const s = subs(mm);
  if (!s) return;
  const i = s.list.indexOf(sub);
  if (i < 0) return;
  if (!s.released && sub.ops.release) yield* sub.ops.release(sub, mm);
  s.list.splice(i, 1);
  sub.mm = null;
}

/**
 * mmu_interval_notifier_insert(sub, mm, start, length, ops): subscribes to
 * invalidations of [start, start+length).
 * @kernel mm/mmu_notifier.c:mmu_interval_notifier_insert (v5.5+)
 * Locking: takes mmap_lock for write when the mm has no subscriptions yet.
 * Return: 0 or -EINVAL (length 0 or overflow).
 */
export function* mmu_interval_notifier_insert(
  sub: mmu_interval_notifier,
  mm: mm_struct,
  start: number,
  length: number,
  ops: mmu_interval_notifier_ops,
): Op<number> {
  if (length === 0 || start + length - 1 < start) return -EINVAL;
  if (!subs(mm)) {
    yield* down_write(mm.mmap_lock);
    getSubs(mm);
    yield* up_write(mm.mmap_lock);
  }
  const s = getSubs(mm);
  yield { obj: s.seqName, kind: 'read', what: 'mmu_interval_notifier_insert' };
  sub.start = start;
  sub.last = start + length - 1;
  sub.ops = ops;
  sub.mm = mm;
  sub.seq_obj = `${s.seqName}/${sub.name}`;
  // A subscription added during an invalidation must see that invalidation as already
  // in progress (mn_itree_is_invalidating -> deferred insert): its seq equals the
  // current odd value so read_begin waits for the end.
  sub.invalidate_seq = s.invalidate_seq % 2 === 1 ? s.invalidate_seq : s.invalidate_seq - 1;
  s.itree.push(sub);
  return 0;
}

/** mmu_interval_notifier_remove(sub): waits for a running invalidation, then removes. */
export function* mmu_interval_notifier_remove(sub: mmu_interval_notifier): Op<void> {
  const mm = sub.mm;
  if (!mm) return;
  const s = getSubs(mm);
  // Under subscriptions->lock: while an invalidation runs, the removal is deferred to its
  // end and the remover waits for the sequence to move on (wait_event on
  // subscriptions->invalidate_seq only, so the step depends on that object alone).
  yield { obj: s.seqName, kind: 'read', what: 'mmu_interval_notifier_remove' };
  if (s.invalidate_seq % 2 === 1) {
    const seq = s.invalidate_seq;
    yield {
      obj: s.seqName,
      kind: 'read',
      what: 'mmu_interval_notifier_remove: wait_event',
      enabled: () => s.invalidate_seq !== seq,
    };
  }
  const i = s.itree.indexOf(sub);
  if (i >= 0) s.itree.splice(i, 1);
  sub.mm = null;
}

/** A new interval subscription object (the caller embeds it in its own state). */
export function new_interval_notifier(
  name: string,
  ops: mmu_interval_notifier_ops,
): mmu_interval_notifier {
  return {
    name,
    start: 0,
    last: 0,
    ops,
    mm: null,
    invalidate_seq: 0,
    invalidations: 0,
    seq_obj: `${name}.invalidate_seq`,
    deferred_seq: null,
    in_invalidate: false,
  };
}

/**
 * mmu_interval_read_begin(sub): waits while an invalidation of this range is running,
 * then returns the sequence to check with mmu_interval_read_retry.
 * Two steps: READ_ONCE(interval_sub->invalidate_seq) (written by mmu_interval_set_seq
 * under the user's lock, not under subscriptions->lock), then the comparison with
 * subscriptions->invalidate_seq and, when they are equal (this range's invalidation is
 * running), wait_event until that sequence moves on: a blocking step whose condition
 * reads subscriptions->invalidate_seq only. The kernel reads both under
 * subscriptions->lock; set_seq does not take it, and an invalidation starting or ending
 * between the two steps gives what the kernel gives when it comes just after the pair.
 * @kernel mm/mmu_notifier.c:mmu_interval_read_begin (v5.5+)
 * Locking: may sleep; call without the user's lock.
 */
export function* mmu_interval_read_begin(sub: mmu_interval_notifier): Op<number> {
  const s = getSubs(sub.mm!);
  yield { obj: sub.seq_obj, kind: 'read', what: 'mmu_interval_read_begin' };
  const seq = sub.invalidate_seq;
  yield {
    obj: s.seqName,
    kind: 'read',
    what: 'mmu_interval_read_begin',
    enabled: () => s.invalidate_seq !== seq,
  };
  return seq;
}

/**
 * mmu_interval_read_retry(sub, seq): true when an invalidation has started since
 * read_begin; the caller must redo its work. Call under the user's lock.
 * @kernel include/linux/mmu_notifier.h:mmu_interval_read_retry (v5.5+)
 */
export function mmu_interval_read_retry(sub: mmu_interval_notifier, seq: number): boolean {
  return sub.invalidate_seq !== seq;
}

/** mmu_interval_check_retry(sub, seq): the lockless hint version. */
export function mmu_interval_check_retry(sub: mmu_interval_notifier, seq: number): boolean {
  return sub.invalidate_seq !== seq;
}

/**
 * mmu_interval_set_seq(sub, cur_seq): called from ->invalidate under the user's lock.
 * @kernel include/linux/mmu_notifier.h:mmu_interval_set_seq (v5.5+)
 */
export function mmu_interval_set_seq(sub: mmu_interval_notifier, cur_seq: number): void {
  // Inside ->invalidate the write is announced and made by mn_itree_invalidate_one.
  if (sub.in_invalidate) sub.deferred_seq = cur_seq;
  else sub.invalidate_seq = cur_seq;
}

/**
 * mmu_notifier_release(mm): exit_mmap tells every subscription the mm is going away;
 * later invalidations reach nobody.
 * @kernel mm/mmu_notifier.c:__mmu_notifier_release (all versions)
 * Locking: called from exit_mmap, mmap_lock not held.
 */
export function* mmu_notifier_release(mm: mm_struct): Op<void> {
  const s = subs(mm);
  record('release', mmu_notifier_range_init(MMU_NOTIFY_RELEASE, 0, mm, 0, mm.task_size));
  if (!s || s.released) return;
  for (const sub of [...s.list]) {
    pfnsan_notifier_invalidate(sub, mm, 0, Number.MAX_SAFE_INTEGER);
    if (sub.ops.release) yield* sub.ops.release(sub, mm);
  }
  for (const sub of s.itree) pfnsan_notifier_invalidate(sub, mm, 0, Number.MAX_SAFE_INTEGER);
  s.released = true;
}
