/**
 * pfnsan: the PFN sanitizer, in the place mm/kasan/ has in Linux (model-only; enabled by
 * CONFIG_PFNSAN). This file is the API the rest of the model calls. Two levels:
 *
 * 1. Contract (leases). A lookup that hands out a pfn calls {@link pfnsan_lease_get} with
 *    what keeps the pfn valid; whatever ends that guarantee calls {@link pfnsan_lease_put};
 *    a consumer of a pfn (iommu_map, memremap/ioremap of a pfn, a KVM or device mapping,
 *    pfn_to_page + get_page) calls {@link pfnsan_use}, which reports a use whose guarantee
 *    is gone, at the moment of use, whether or not the frame was reused.
 * 2. Harm (owners and generations). Every frame has an owner and a generation bumped on
 *    each change of owner ({@link pfnsan_set_owner}). A mapping a device or the CPU uses
 *    records the generation it was made for; an access through it calls
 *    {@link pfnsan_access}, which reports a use-after-free or cross-owner access.
 *
 * Also: pins that make cma_alloc fail, refcount/pincount leaks and underflows, refcounts
 * of frames without struct page, lock-order cycles and locks held on return to user space.
 *
 * The parts live beside this file: owners.ts (owners, generations, bounded history, in
 * typed arrays per memory section), leases.ts, locks.ts (lock-order graph), special.ts
 * (generations of special user PTEs), report.ts (KASAN-style reports), state.ts (the
 * per-kernel state and the CONFIG_PFNSAN check). With CONFIG_PFNSAN=n every entry point
 * returns after one cached check and allocates nothing.
 *
 * @kernel mm/kasan/ (the role; pfnsan has no kernel counterpart)
 */
import { currentThread } from '../../../sched/index.js';
import type { Frame } from '../../kernel/callpath.js';
import type { folio, page } from '../../include/linux/mm_types.js';
import { GUP_PIN_COUNTING_BIAS, folio_has_pincount } from '../../include/linux/mm.js';
import {
  folio_mapcount,
  folio_pincount,
  folio_raw_mapping,
  page_folio,
} from '../../include/linux/page-flags.js';
import { folio_ref_count } from '../../include/linux/page_ref.js';
import { pfn_valid } from '../sparse.js';
import { guaranteeStr } from './leases.js';
import { lock_class } from './locks.js';
import { emit, hex, type ReportInput } from './report.js';
import { now, san, site, type PfnsanState } from './state.js';

/** Stable report codes (as KASAN's bug types). */
export type pfnsan_code =
  /** A pfn used after the guarantee of its lease had ended. */
  | 'stale-pfn'
  /** An access through a mapping made for a frame that has since been freed. */
  | 'use-after-free'
  /** An access through a mapping made for a frame that now has another owner. */
  | 'cross-owner'
  /** An access to a device BAR whose memory decoding is off (COMMAND.MEMORY clear, D3hot,
   *  reset in progress) or that was unplugged. */
  | 'disabled-bar'
  /** A pin of CMA or movable memory that made cma_alloc fail. */
  | 'cma-pin'
  /** Frames with references or pins left at teardown. */
  | 'refcount-leak'
  | 'pincount-leak'
  | 'refcount-underflow'
  /** get_page/put_page on a pfn that has no struct page. */
  | 'no-struct-page-ref'
  /** A cycle in the lock-order graph. */
  | 'lock-cycle'
  /** A lock held across a return to user space. */
  | 'lock-held-user';

/** Who owns a frame. `desc` is the human-readable owner, e.g. "anon memory of pid 2 (a.out)". */
export interface pfnsan_owner {
  readonly kind:
    'free' | 'anon' | 'pagecache' | 'kernel' | 'pagetable' | 'driver' | 'bar' | 'unassigned';
  readonly desc: string;
}

/** What keeps a leased pfn valid. */
export type pfnsan_guarantee =
  /** Valid until `end` (e.g. 'follow_pfnmap_end', 'pte_unmap_unlock') is called on the lease. */
  | { readonly kind: 'window'; readonly end: string }
  /** Valid while the pin or reference the caller took on the frame is held. */
  | { readonly kind: 'pin' }
  /** Valid until an MMU-notifier invalidation of [start, end) of `mm` reaches `sub`. */
  | {
      readonly kind: 'notifier';
      readonly sub: object;
      readonly mm: object;
      readonly start: number;
      readonly end: number;
    }
  /** Valid while the named driver keeps owning the memory (the frame's generation holds). */
  | { readonly kind: 'driver'; readonly driver: string }
  /** Nothing keeps it valid once the lookup has returned (follow_pfn, unsafe_follow_pfn). */
  | { readonly kind: 'none' };

/** A point in an execution: thread, step and kernel call path. */
export interface pfnsan_site {
  readonly thread: string;
  readonly step: number;
  readonly path: readonly Frame[];
  readonly what: string;
}

export interface pfnsan_lease {
  readonly id: number;
  readonly pfn: number;
  readonly nr: number;
  /** The lookup that produced it ('follow_pfnmap_start', 'follow_pte', ...). */
  readonly source: string;
  guarantee: pfnsan_guarantee;
  /** Generation of each frame when leased is that of `pfn` (ranges share one owner). */
  readonly gen: number;
  readonly obtained: pfnsan_site;
  ended?: pfnsan_site;
}

export interface pfnsan_history_entry {
  readonly gen: number;
  readonly owner: pfnsan_owner;
  readonly step: number;
  readonly thread: string;
}

export interface pfnsan_report {
  readonly code: pfnsan_code;
  /** One line, KASAN style: "BUG: pfnsan: stale-pfn in iommu_map". */
  readonly title: string;
  readonly pfn: number;
  readonly thread: string;
  readonly step: number;
  readonly obtained?: pfnsan_site;
  readonly ended?: pfnsan_site;
  readonly used: pfnsan_site;
  readonly history: readonly pfnsan_history_entry[];
  /** The report as printed to the kernel log. */
  readonly text: readonly string[];
}

/** Whether the sanitizer runs in the current kernel (CONFIG_PFNSAN). */
export function pfnsan_enabled(): boolean {
  return san() !== null;
}

/* ------------------------------------------------------------------------------------ */
/* Leases                                                                               */
/* ------------------------------------------------------------------------------------ */

function inertLease(pfn: number, nr: number, source: string, g: pfnsan_guarantee): pfnsan_lease {
  return {
    id: 0,
    pfn,
    nr,
    source,
    guarantee: g,
    gen: 0,
    obtained: { thread: '', step: -1, path: [], what: source },
  };
}

/**
 * Records a pfn range handed out by a lookup, with its guarantee. With CONFIG_PFNSAN=n
 * the lease is an inert record nothing tracks.
 */
export function pfnsan_lease_get(
  pfn: number,
  nr: number,
  source: string,
  guarantee: pfnsan_guarantee,
): pfnsan_lease {
  const s = san();
  if (!s) return inertLease(pfn, nr, source, guarantee);
  const lease: pfnsan_lease = {
    id: s.leases.nextId++,
    pfn,
    nr,
    source,
    guarantee,
    gen: s.owners.gen(pfn),
    obtained: site(source),
  };
  const lookupEnd =
    guarantee.kind === 'window' ? guarantee.end : guarantee.kind === 'none' ? source : null;
  s.leases.add(lease, { lookupEnd, guardGen: lease.gen, guarded: false });
  s.leases.watchSub(lease, guarantee);
  return lease;
}

function endLease(s: PfnsanState, lease: pfnsan_lease, at: pfnsan_site): void {
  if (lease.ended) return;
  lease.ended = at;
  s.leases.unwatchSub(lease);
}

/**
 * The guarantee of `lease` ended here (`why`: the function ending it). The end of the
 * lookup's own window (e.g. 'follow_pfnmap_end') does not end a lease the caller has
 * guarded with a longer guarantee ({@link pfnsan_lease_guard}); any other `why` does.
 */
export function pfnsan_lease_put(lease: pfnsan_lease, why: string): void {
  const s = san();
  if (!s || lease.id === 0 || lease.ended) return;
  const ex = s.leases.extra.get(lease);
  if (ex && ex.guarded && why === ex.lookupEnd) return;
  endLease(s, lease, site(why));
}

/** The caller adds a guarantee that outlives the lookup's (a notifier subscription, a pin). */
export function pfnsan_lease_guard(lease: pfnsan_lease, guarantee: pfnsan_guarantee): void {
  const s = san();
  if (!s || lease.id === 0) {
    lease.guarantee = guarantee;
    return;
  }
  if (lease.ended) {
    // Guarding after the guarantee ended does not revive the pfn: the report will name
    // the end. The new guarantee is kept for the report's text.
    lease.guarantee = guarantee;
    return;
  }
  s.leases.unwatchSub(lease);
  lease.guarantee = guarantee;
  const ex = s.leases.extra.get(lease);
  if (ex) {
    ex.guarded = true;
    ex.guardGen = s.owners.gen(lease.pfn);
  }
  s.leases.watchSub(lease, guarantee);
}

/** Whether a lease still guarantees its pfns (a driver lease ends when the frame moves). */
function leaseLive(s: PfnsanState, l: pfnsan_lease): boolean {
  if (l.ended) return false;
  if (l.guarantee.kind !== 'driver') return true;
  const ex = s.leases.extra.get(l);
  const want = ex ? ex.guardGen : l.gen;
  const cur = s.owners.gen(l.pfn);
  if (cur === want) return true;
  const e = s.owners.entryAt(l.pfn, want + 1);
  l.ended = {
    thread: e?.thread ?? '?',
    step: e?.step ?? -1,
    path: [],
    what: `pfn ${hex(l.pfn)} left driver ${l.guarantee.driver} (now ${s.owners.owner(l.pfn).desc})`,
  };
  return false;
}

/** A consumer receives pfns [pfn, pfn+nr): reports `stale-pfn` if their lease has ended. */
export function pfnsan_use(pfn: number, nr: number, consumer: string): void {
  const s = san();
  if (!s || s.leases.empty()) return;
  for (let p = pfn; p < pfn + nr; p++) {
    const l = s.leases.find(p, (x) => leaseLive(s, x));
    if (!l || !l.ended) continue;
    reportStale(s, l, p, nr, consumer);
    return;
  }
}

function reportStale(
  s: PfnsanState,
  l: pfnsan_lease,
  pfn: number,
  nr: number,
  consumer: string,
): void {
  const used = site(consumer);
  const ended = l.ended!;
  const owner = s.owners.owner(pfn);
  const gen = s.owners.gen(pfn);
  const frames = nr === 1 ? 'pfn' : `pfns ${hex(pfn)}+${nr - 1} from pfn`;
  const reuse =
    gen === l.gen
      ? `the frame has not changed owner since (generation ${gen}, ${owner.kind}: ${owner.desc})`
      : `the frame has changed owner since: generation ${l.gen} then, ${gen} now (${owner.kind}: ${owner.desc})`;
  emit(s, {
    code: 'stale-pfn',
    consumer,
    pfn,
    what: [
      `Use of ${frames} ${hex(pfn)} by thread ${used.thread} at ${stepOf(used.step)}: obtained from ${l.source}, kept valid by ${guaranteeStr(l.guarantee)}, which ended at ${stepOf(ended.step)} (${ended.what})`,
      reuse,
    ],
    used,
    obtained: l.obtained,
    obtainedHead: `Obtained from ${l.source}`,
    ended,
    endedHead: 'Guarantee ended',
    history: s.owners.history(pfn),
    key: `${consumer}|${pathKey(used)}|${pathKey(l.obtained)}|${ended.what}`,
  });
}

function stepOf(step: number): string {
  return step < 0 ? 'setup' : `step ${step}`;
}

function pathKey(x: pfnsan_site): string {
  return x.path.map((f) => f.fn).join('<');
}

/** Called by the MMU-notifier core when an invalidation of [start, end) of mm reaches sub. */
export function pfnsan_notifier_invalidate(
  sub: object,
  mm: object,
  start: number,
  end: number,
): void {
  const s = san();
  if (!s) return;
  const set = s.leases.bySub.get(sub);
  if (!set || !set.size) return;
  let at: pfnsan_site | null = null;
  for (const l of [...set]) {
    const g = l.guarantee;
    if (g.kind !== 'notifier' || g.mm !== mm || start >= g.end || end <= g.start) continue;
    at ??= site(`MMU notifier invalidation of [${hex(start)}, ${hex(end)})`);
    endLease(s, l, at);
  }
}

/**
 * Model glue: the lease's window ends when `lock` is released (follow_pte returns with
 * the PTE lock held; the caller's pte_unmap_unlock ends the window).
 */
export function pfnsan_lease_attach_lock(lease: pfnsan_lease, lock: object): void {
  const s = san();
  if (!s || lease.id === 0) return;
  s.leases.attachLock(lock, lease);
}

/** Model glue: `lock` was released; ends the windows attached to it. */
export function pfnsan_lock_released(lock: object, why: string): void {
  const s = san();
  if (!s || !s.leases.byLock.size) return;
  const ls = s.leases.byLock.get(lock);
  if (!ls) return;
  s.leases.byLock.delete(lock);
  for (const l of ls) pfnsan_lease_put(l, why);
}

/** Model glue: remembers the lease a lookup made for its argument block (follow_pfnmap_args). */
export function pfnsan_lease_bind(key: object, lease: pfnsan_lease): void {
  const s = san();
  if (!s || lease.id === 0) return;
  s.leases.byArgs.set(key, lease);
}

/** The lease bound to `key` by {@link pfnsan_lease_bind}, if any. */
export function pfnsan_lease_of(key: object): pfnsan_lease | null {
  const s = san();
  if (!s) return null;
  return s.leases.byArgs.get(key) ?? null;
}

/* ------------------------------------------------------------------------------------ */
/* Owners and generations                                                               */
/* ------------------------------------------------------------------------------------ */

/** Frames [pfn, pfn+nr) change owner; their generation is bumped. */
export function pfnsan_set_owner(pfn: number, nr: number, owner: pfnsan_owner): void {
  const s = san();
  if (!s) return;
  const t = now();
  s.owners.set(pfn, nr, owner, false, t.thread, t.step);
}

/** The owner frames of a boot range start with (generation 0), without per-frame state. */
export function pfnsan_boot_owner(pfn: number, nr: number, owner: pfnsan_owner): void {
  const s = san();
  if (!s) return;
  s.owners.setBoot(pfn, nr, owner);
}

const ALLOCATED: pfnsan_owner = { kind: 'kernel', desc: 'kernel (allocated, not yet refined)' };
const FREE: pfnsan_owner = { kind: 'free', desc: 'free' };

/** The interned anon owner of each mm, with the description it was made for. */
const anonOwners = new WeakMap<object, { desc: string; owner: pfnsan_owner }>();

/** The page allocator handed out [pfn, pfn+nr): 'kernel' until a real owner refines it. */
export function pfnsan_page_alloc(pfn: number, nr: number): void {
  const s = san();
  if (!s) return;
  const t = now();
  s.owners.set(pfn, nr, ALLOCATED, true, t.thread, t.step);
}

/** The page allocator got [pfn, pfn+nr) back. */
export function pfnsan_page_free(pfn: number, nr: number): void {
  const s = san();
  if (!s) return;
  const t = now();
  s.owners.set(pfn, nr, FREE, false, t.thread, t.step);
}

/** Who a process is, for owner descriptions: "pid 2 (a.out)", or "mm 3" without a task. */
function mmDesc(mm: { id: number; owner: { pid: number; comm: string } | null }): string {
  return mm.owner ? `pid ${mm.owner.pid} (${mm.owner.comm})` : `mm ${mm.id}`;
}

/** A new anonymous folio of `mm` (folio_add_new_anon_rmap). */
export function pfnsan_owner_anon(
  pfn: number,
  nr: number,
  mm: { id: number; mm_users: number; owner: { pid: number; comm: string } | null },
): void {
  const s = san();
  if (!s) return;
  const desc = `anon memory of ${mmDesc(mm)}`;
  let cached = anonOwners.get(mm);
  if (!cached || cached.desc !== desc) {
    cached = { desc, owner: s.owners.intern({ kind: 'anon', desc }) };
    anonOwners.set(mm, cached);
    s.liveness.set(cached.owner, mm);
  }
  const owner = cached.owner;
  const t = now();
  s.owners.set(pfn, nr, owner, false, t.thread, t.step);
}

/** A folio entered the page cache of `inode` (__filemap_add_folio). */
export function pfnsan_owner_pagecache(pfn: number, nr: number, ino: number): void {
  if (!san()) return;
  pfnsan_set_owner(pfn, nr, { kind: 'pagecache', desc: `page cache of inode ${ino}` });
}

/** A page-table page of `mm` (pagetable_alloc). */
export function pfnsan_owner_pagetable(pfn: number, mmId: number): void {
  if (!san()) return;
  pfnsan_set_owner(pfn, 1, { kind: 'pagetable', desc: `page table of mm ${mmId}` });
}

/** The current generation of a frame. */
export function pfnsan_gen(pfn: number): number {
  const s = san();
  return s ? s.owners.gen(pfn) : 0;
}

/** The current owner of a frame. */
export function pfnsan_owner_of(pfn: number): pfnsan_owner {
  const s = san();
  return s ? s.owners.owner(pfn) : { kind: 'unassigned', desc: 'unassigned' };
}

/** The frame's bounded owner history, oldest first (current owner last). */
export function pfnsan_history(pfn: number): readonly pfnsan_history_entry[] {
  const s = san();
  return s ? s.owners.history(pfn) : [];
}

/**
 * An access to frame `pfn` through a mapping made for generation `gen` (`via` names the
 * mapping, e.g. "IOMMU domain 1 iova 0x100000"): reports use-after-free or cross-owner.
 */
export function pfnsan_access(pfn: number, gen: number, how: 'read' | 'write', via: string): void {
  const s = san();
  if (!s) return;
  accessCheck(s, pfn, gen, how, via, undefined);
}

function accessCheck(
  s: PfnsanState,
  pfn: number,
  gen: number,
  how: 'read' | 'write',
  via: string,
  mapped: pfnsan_site | undefined,
): void {
  const cur = s.owners.gen(pfn);
  if (cur === gen) return;
  const now_ = s.owners.owner(pfn);
  const then = s.owners.ownerAt(pfn, gen);
  const code: pfnsan_code = now_.kind === 'free' ? 'use-after-free' : 'cross-owner';
  const used = site(`${how} through ${via}`);
  const consumer = used.path[0]?.fn ?? via;
  const next = s.owners.entryAt(pfn, gen + 1);
  const ended: pfnsan_site | undefined = next
    ? {
        thread: next.thread,
        step: next.step,
        path: [],
        what: `pfn ${hex(pfn)} became generation ${gen + 1}: ${next.owner.kind}: ${next.owner.desc}`,
      }
    : undefined;
  const thenStr = then ? `${then.kind}: ${then.desc}` : 'unknown (out of the history)';
  const freed = s.owners
    .history(pfn)
    .filter((e) => e.gen > gen && e.gen < cur && e.owner.kind === 'free');
  const since = freed.length
    ? [
        `The frame was freed since (generation ${freed.map((e) => e.gen).join(', ')}) and allocated again`,
      ]
    : [];
  emit(s, {
    code,
    consumer,
    pfn,
    what: [
      `${how === 'read' ? 'Read' : 'Write'} of pfn ${hex(pfn)} through ${via} by thread ${used.thread} at ${stepOf(used.step)}`,
      `The mapping was made for generation ${gen}, owned by ${thenStr}; the frame is now generation ${cur}, owned by ${now_.kind}: ${now_.desc}`,
      ...since,
    ],
    used,
    obtained: mapped,
    obtainedHead: 'Mapping made',
    ended,
    endedHead: 'Frame changed owner',
    history: s.owners.history(pfn),
    key: `${pfn}|${gen}|${cur}|${via}`,
  });
}

/* ------------------------------------------------------------------------------------ */
/* Special user PTEs                                                                    */
/* ------------------------------------------------------------------------------------ */

/**
 * nr special PTEs of mm from addr map pfns from pfn (remap_pte_range, insert_pfn): their
 * generations are recorded for the CPU access check.
 */
export function pfnsan_special_map(mm: object, addr: number, pfn: number, nr: number): void {
  const s = san();
  if (!s || nr <= 0) return;
  const at = site('special user PTE inserted');
  for (let i = 0; i < nr; i++) {
    s.special.set(mm, addr + i * 4096, { pfn: pfn + i, gen: s.owners.gen(pfn + i), at });
  }
}

/** The special PTE of mm at addr was zapped. */
export function pfnsan_special_unmap(mm: object, addr: number): void {
  const s = san();
  if (!s) return;
  s.special.clear(mm, addr - (addr % 4096));
}

/**
 * A PMD or PUD pfnmap leaf of `size` bytes at addr (aligned) maps pfns from pfn
 * (insert_pfn_pmd, insert_pfn_pud): the generation of each frame is recorded.
 */
export function pfnsan_special_map_huge(mm: object, addr: number, pfn: number, size: number): void {
  const s = san();
  if (!s) return;
  const nr = size / 4096;
  const gens = new Int32Array(nr);
  for (let i = 0; i < nr; i++) gens[i] = s.owners.gen(pfn + i);
  s.special.setHuge(mm, addr - (addr % size), {
    pfn,
    size,
    gens,
    at: site('special huge leaf inserted'),
  });
}

/** The PMD or PUD pfnmap leaf of `size` bytes covering addr was zapped or split. */
export function pfnsan_special_unmap_huge(mm: object, addr: number, size: number): void {
  const s = san();
  if (!s) return;
  s.special.clearHuge(mm, addr, size);
}

/**
 * The CPU accessed user address addr of mm, translated to physical address pa: if the
 * PTE, or the PMD/PUD leaf, is a recorded special entry for that pfn, compare
 * generations.
 */
export function pfnsan_user_access(
  mm: { id: number },
  addr: number,
  pa: number,
  how: 'read' | 'write',
): void {
  const s = san();
  if (!s) return;
  const page = addr - (addr % 4096);
  const pfn = Math.floor(pa / 4096);
  const m = s.special.byMm.get(mm);
  const e = m?.get(page);
  if (!e) {
    const h = s.special.getHuge(mm, page);
    if (!h) return;
    const i = (page - h.addr) / 4096;
    if (h.e.pfn + i !== pfn) {
      s.special.clearHuge(mm, h.addr, h.e.size);
      return;
    }
    accessCheck(s, pfn, h.e.gens[i]!, how, `user huge leaf of mm ${mm.id} at ${hex(page)}`, h.e.at);
    return;
  }
  if (e.pfn !== pfn) {
    m!.delete(page);
    return;
  }
  accessCheck(s, pfn, e.gen, how, `user PTE of mm ${mm.id} at ${hex(page)}`, e.at);
}

/* ------------------------------------------------------------------------------------ */
/* References, pins, CMA                                                                */
/* ------------------------------------------------------------------------------------ */

/**
 * get_page/folio_get on `pfn` (consumer `fn`): a frame without struct page cannot be
 * refcounted; reported before the oops the model produces.
 */
export function pfnsan_page_ref(pfn: number, fn: string): void {
  const s = san();
  if (!s || pfn_valid(pfn)) return;
  const used = site(fn);
  const owner = s.owners.owner(pfn);
  emit(s, {
    code: 'no-struct-page-ref',
    consumer: fn,
    pfn,
    what: [
      `${fn} on pfn ${hex(pfn)} by thread ${used.thread} at ${stepOf(used.step)}: the frame has no struct page (${owner.kind}: ${owner.desc})`,
    ],
    used,
    history: s.owners.history(pfn),
    key: `${fn}|${pfn}|${pathKey(used)}`,
  });
}

/** A put of `refs` references (or pins, `what`) on a frame that has only `have`. */
export function pfnsan_refcount_underflow(
  pfn: number,
  refs: number,
  have: number,
  fn: string,
  what = 'references',
): void {
  const s = san();
  if (!s) return;
  const used = site(fn);
  emit(s, {
    code: 'refcount-underflow',
    consumer: fn,
    pfn,
    what: [
      `${fn} drops ${refs} ${what} of pfn ${hex(pfn)}, which holds ${have}, by thread ${used.thread} at ${stepOf(used.step)}`,
    ],
    used,
    history: s.owners.history(pfn),
    key: `${fn}|${pfn}|${pathKey(used)}`,
  });
}

/** unpin of `refs` pins of folio f (gup_put_folio with FOLL_PIN): reports an underflow. */
export function pfnsan_unpin_check(f: number, refs: number): void {
  const s = san();
  if (!s || !pfn_valid(f)) return;
  const fo = f as folio;
  if (folio_has_pincount(fo)) {
    const have = folio_pincount(fo);
    if (have < refs) pfnsan_refcount_underflow(f, refs, have, 'unpin_user_page', 'pins');
  } else {
    const have = folio_ref_count(fo);
    if (have < refs * GUP_PIN_COUNTING_BIAS)
      pfnsan_refcount_underflow(
        f,
        refs * GUP_PIN_COUNTING_BIAS,
        have,
        'unpin_user_page',
        'references (pins count GUP_PIN_COUNTING_BIAS)',
      );
  }
}

/** A pin that made cma_alloc fail, as the page-isolation code found it. */
export interface pfnsan_cma_pin_holder {
  readonly id: number;
  readonly folio: number;
  readonly comm: string;
  readonly pid: number;
  readonly entry: string | null;
  readonly call_path: readonly Frame[];
  readonly step: number;
}

/** cma_alloc of `count` pages from area `cma` failed because pinned frame `pfn` was busy. */
export function pfnsan_cma_pin(
  cma: string,
  count: number,
  pfn: number,
  pins: readonly pfnsan_cma_pin_holder[],
): void {
  const s = san();
  if (!s || !pins.length) return;
  const used = site('cma_alloc');
  const r = pins[0]!;
  emit(s, {
    code: 'cma-pin',
    consumer: 'cma_alloc',
    pfn,
    what: [
      `cma_alloc of ${count} pages from CMA area ${cma} failed by thread ${used.thread} at ${stepOf(used.step)}: pfn ${hex(pfn)} is pinned`,
      ...pins.map(
        (p) =>
          `pin #${p.id} of folio ${hex(p.folio)} held by ${p.comm}(${p.pid})${p.entry ? ` via ${p.entry}` : ''}`,
      ),
    ],
    used,
    obtained: {
      thread: `${r.comm}(${r.pid})`,
      step: r.step,
      path: r.call_path,
      what: r.entry ?? 'pin',
    },
    obtainedHead: 'Pinned',
    history: s.owners.history(pfn),
    key: `${cma}|${pins.map((p) => p.id).join(',')}`,
  });
}

/* ------------------------------------------------------------------------------------ */
/* Locks                                                                                */
/* ------------------------------------------------------------------------------------ */

/**
 * The running thread acquired lock `name` (a blocking acquire): records the lock-order
 * edges from each class it holds, and reports the first cycle each new edge closes.
 */
export function pfnsan_lock_acquired(name: string): void {
  const s = san();
  if (!s) return;
  const held = currentThread().held;
  if (held.length < 2) return;
  const to = s.locks.classOf(name);
  for (let i = 0; i < held.length - 1; i++) {
    const from = s.locks.classOf(held[i]!.name);
    if (from === to || s.locks.has(from, to)) continue;
    const at = site(`${to} acquired while holding ${from}`);
    s.locks.add(from, to, at);
    const back = s.locks.path(to, from);
    if (!back) continue;
    const cycle = [from, ...back];
    const lines = [
      `Lock ${to} acquired by thread ${at.thread} at ${stepOf(at.step)} while holding ${from}, but the opposite order was seen before: possible deadlock`,
      `Cycle: ${cycle.join(' -> ')}`,
    ];
    const rep: ReportInput = {
      code: 'lock-cycle',
      consumer: at.path[0]?.fn ?? to,
      pfn: -1,
      what: lines,
      used: at,
      obtained: s.locks.edges.get(back[0]!)?.get(back[1]!),
      obtainedHead: `Order ${back[0]} -> ${back[1]} first seen`,
      history: [],
      key: [...cycle].sort().join(','),
    };
    emit(s, rep);
  }
}

/**
 * Return to user space (syscall exit): each lock the running thread still holds is a
 * 'lock-held-user' report, once per lock class.
 */
export function pfnsan_user_return(task: { pid: number; comm: string }): void {
  const s = san();
  if (!s) return;
  const held = currentThread().held;
  if (!held.length) return;
  for (const h of held) {
    const used = site('return to user space');
    emit(s, {
      code: 'lock-held-user',
      consumer: used.path[0]?.fn ?? 'exit_to_user_mode',
      pfn: -1,
      what: [
        `${task.comm}/${task.pid} (thread ${used.thread}) returns to user space at ${stepOf(used.step)} holding ${h.name}${h.shared ? ' (read)' : ''}`,
      ],
      used,
      history: [],
      key: lock_class(h.name),
    });
  }
}

/* ------------------------------------------------------------------------------------ */
/* Teardown                                                                             */
/* ------------------------------------------------------------------------------------ */

/**
 * Walks the frames that changed owner since boot and are still allocated to a process's
 * anon memory or a file's page cache whose owner is gone (the mm has no users left, or
 * the folio left the page cache), and reports the references ('refcount-leak') or pins
 * ('pincount-leak') left on them. Frames of the kernel, page tables, drivers and BARs are
 * not checked. Returns the reports made by this walk.
 */
export function pfnsan_check_teardown(): readonly pfnsan_report[] {
  const s = san();
  if (!s) return [];
  const before = s.reports.length;
  for (const [pfn, owner] of s.owners.changed()) {
    if (owner.kind !== 'anon' && owner.kind !== 'pagecache') continue;
    if (!pfn_valid(pfn)) continue;
    const f = pfn as folio;
    if (page_folio(pfn as page) !== f) continue; // tails: checked with their head
    const refs = folio_ref_count(f);
    if (refs <= 0) continue;
    let gone: string | null = null;
    if (owner.kind === 'anon') {
      const mm = s.liveness.get(owner);
      if (mm && mm.mm_users === 0) gone = `the owner's mm ${mm.id} has been torn down`;
    } else if (folio_raw_mapping(f) === null) {
      gone = 'the folio has left the page cache';
    }
    if (!gone) continue;
    const pins = folio_has_pincount(f)
      ? folio_pincount(f)
      : Math.floor(refs / GUP_PIN_COUNTING_BIAS);
    const mapped = folio_mapcount(f);
    const used = site('teardown check');
    const code: pfnsan_code = pins > 0 ? 'pincount-leak' : 'refcount-leak';
    emit(s, {
      code,
      consumer: 'pfnsan_check_teardown',
      pfn,
      what: [
        `pfn ${hex(pfn)} (${owner.kind}: ${owner.desc}) still has refcount ${refs}, ${pins} pin${pins === 1 ? '' : 's'} and mapcount ${mapped} at teardown: ${gone}`,
      ],
      used,
      history: s.owners.history(pfn),
      key: `${pfn}`,
    });
  }
  return s.reports.slice(before);
}

/* ------------------------------------------------------------------------------------ */
/* Reports                                                                              */
/* ------------------------------------------------------------------------------------ */

/** Every report made so far in the current kernel. */
export function pfnsan_reports(): readonly pfnsan_report[] {
  const s = san();
  return s ? s.reports : [];
}

/**
 * Reports a finding detected elsewhere (e.g. 'disabled-bar' by the PCI model, 'cma-pin' by
 * cma_alloc), at the current thread and step, with `detail` lines after the title.
 * `title` names where it was found ("BUG: pfnsan: <code> in <title>"), or is the whole
 * title when it already starts with "BUG: pfnsan:".
 */
export function pfnsan_report_event(
  code: pfnsan_code,
  pfn: number,
  title: string,
  detail: readonly string[] = [],
): void {
  const s = san();
  if (!s) return;
  const whole = title.startsWith('BUG: pfnsan:');
  const used = site(whole ? code : title);
  emit(s, {
    code,
    consumer: title,
    ...(whole ? { title } : {}),
    pfn,
    what: [
      `${whole ? code : title} on pfn ${hex(pfn)} by thread ${used.thread} at ${stepOf(used.step)}`,
      ...detail,
    ],
    used,
    history: pfn >= 0 ? s.owners.history(pfn) : [],
    key: `${title}|${pfn}|${detail.join('\n')}|${pathKey(used)}`,
  });
}
