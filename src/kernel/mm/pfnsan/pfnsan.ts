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
 * STATUS: contract only. The bodies below are placeholders that keep the API callable while
 * the sanitizer is written in this directory; callers may rely on the signatures.
 */
import type { Frame } from '../../kernel/callpath.js';

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

/** Records a pfn range handed out by a lookup, with its guarantee. */
export function pfnsan_lease_get(
  pfn: number,
  nr: number,
  source: string,
  guarantee: pfnsan_guarantee,
): pfnsan_lease {
  return {
    id: 0,
    pfn,
    nr,
    source,
    guarantee,
    gen: 0,
    obtained: { thread: '', step: -1, path: [], what: source },
  };
}

/** The guarantee of `lease` ended here (`why`: the function ending it). */
export function pfnsan_lease_put(lease: pfnsan_lease, why: string): void {
  void lease;
  void why;
}

/** The caller adds a guarantee that outlives the lookup's (a notifier subscription, a pin). */
export function pfnsan_lease_guard(lease: pfnsan_lease, guarantee: pfnsan_guarantee): void {
  lease.guarantee = guarantee;
}

/** A consumer receives pfns [pfn, pfn+nr): reports `stale-pfn` if their lease has ended. */
export function pfnsan_use(pfn: number, nr: number, consumer: string): void {
  void pfn;
  void nr;
  void consumer;
}

/** Called by the MMU-notifier core when an invalidation of [start, end) of mm reaches sub. */
export function pfnsan_notifier_invalidate(
  sub: object,
  mm: object,
  start: number,
  end: number,
): void {
  void sub;
  void mm;
  void start;
  void end;
}

/** Frames [pfn, pfn+nr) change owner; their generation is bumped. */
export function pfnsan_set_owner(pfn: number, nr: number, owner: pfnsan_owner): void {
  void pfn;
  void nr;
  void owner;
}

/** The current generation of a frame. */
export function pfnsan_gen(pfn: number): number {
  void pfn;
  return 0;
}

/** The current owner of a frame. */
export function pfnsan_owner_of(pfn: number): pfnsan_owner {
  void pfn;
  return { kind: 'unassigned', desc: 'unassigned' };
}

/**
 * An access to frame `pfn` through a mapping made for generation `gen` (`via` names the
 * mapping, e.g. "IOMMU domain 1 iova 0x100000"): reports use-after-free or cross-owner.
 */
export function pfnsan_access(pfn: number, gen: number, how: 'read' | 'write', via: string): void {
  void pfn;
  void gen;
  void how;
  void via;
}

/** Every report made so far in the current kernel. */
export function pfnsan_reports(): readonly pfnsan_report[] {
  return [];
}

/**
 * Reports a finding detected elsewhere (e.g. 'disabled-bar' by the PCI model, 'cma-pin' by
 * cma_alloc), at the current thread and step, with `detail` lines after the title.
 */
export function pfnsan_report_event(
  code: pfnsan_code,
  pfn: number,
  title: string,
  detail: readonly string[] = [],
): void {
  void code;
  void pfn;
  void title;
  void detail;
}
