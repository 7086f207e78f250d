/**
 * Leases: the pfns lookups hand out, with what keeps each valid, indexed for the checks
 * consumers make ({@link LeaseTable.find}), for the lock whose release ends a lookup's
 * window (follow_pte: pte_unmap_unlock of the returned ptl) and for the MMU-notifier
 * subscription that guards them.
 */
import type { pfnsan_guarantee, pfnsan_lease, pfnsan_site } from './pfnsan.js';

/** Leases kept per pfn (the latest ones; an older one cannot decide a check). */
const PER_PFN = 4;
/** Ranges longer than this are kept in a list instead of per pfn. */
const BIG = 64;

/** What the sanitizer keeps beside a lease. */
export interface LeaseExtra {
  /** The guarantee the lookup gave (its window end name), before any guard. */
  readonly lookupEnd: string | null;
  /** Generation of the frame when a 'driver' guard was added. */
  guardGen: number;
  /** The caller added a guarantee that outlives the lookup's. */
  guarded: boolean;
}

export class LeaseTable {
  nextId = 1;
  private readonly byPfn = new Map<number, pfnsan_lease[]>();
  private readonly big: pfnsan_lease[] = [];
  readonly extra = new WeakMap<pfnsan_lease, LeaseExtra>();
  /** Leases whose window ends when this lock is released (follow_pte). */
  readonly byLock = new Map<object, pfnsan_lease[]>();
  /** Active notifier-guarded leases by subscription. */
  readonly bySub = new Map<object, Set<pfnsan_lease>>();
  /** follow_pfnmap_args -> the lease follow_pfnmap_start made for it. */
  readonly byArgs = new WeakMap<object, pfnsan_lease>();

  add(lease: pfnsan_lease, extra: LeaseExtra): void {
    this.extra.set(lease, extra);
    if (lease.nr > BIG) {
      this.big.push(lease);
      return;
    }
    for (let p = lease.pfn; p < lease.pfn + lease.nr; p++) {
      let l = this.byPfn.get(p);
      if (!l) {
        l = [];
        this.byPfn.set(p, l);
      }
      l.push(lease);
      if (l.length > PER_PFN) l.shift();
    }
  }

  /**
   * The lease that decides a use of pfn: the latest live lease covering it if there is
   * one; else the latest ended lease the caller had guarded (it declared it kept this
   * pfn); else the latest ended one; else null (the pfn did not come from a lookup).
   */
  find(pfn: number, live: (l: pfnsan_lease) => boolean): pfnsan_lease | null {
    let bestLive: pfnsan_lease | null = null;
    let bestGuarded: pfnsan_lease | null = null;
    let best: pfnsan_lease | null = null;
    const consider = (l: pfnsan_lease): void => {
      if (live(l)) {
        if (!bestLive || l.id > bestLive.id) bestLive = l;
      } else if (this.extra.get(l)?.guarded) {
        if (!bestGuarded || l.id > bestGuarded.id) bestGuarded = l;
      } else if (!best || l.id > best.id) best = l;
    };
    for (const l of this.byPfn.get(pfn) ?? []) consider(l);
    for (const l of this.big) if (pfn >= l.pfn && pfn < l.pfn + l.nr) consider(l);
    return bestLive ?? bestGuarded ?? best;
  }

  /** Whether any lease was ever made (the cheap test before a lookup). */
  empty(): boolean {
    return this.byPfn.size === 0 && this.big.length === 0;
  }

  attachLock(lock: object, lease: pfnsan_lease): void {
    const l = this.byLock.get(lock);
    if (l) l.push(lease);
    else this.byLock.set(lock, [lease]);
  }

  watchSub(lease: pfnsan_lease, g: pfnsan_guarantee): void {
    if (g.kind !== 'notifier') return;
    let s = this.bySub.get(g.sub);
    if (!s) {
      s = new Set();
      this.bySub.set(g.sub, s);
    }
    s.add(lease);
  }

  unwatchSub(lease: pfnsan_lease): void {
    const g = lease.guarantee;
    if (g.kind === 'notifier') this.bySub.get(g.sub)?.delete(lease);
  }
}

/** "window until follow_pfnmap_end", "a pin", ... for report lines. */
export function guaranteeStr(g: pfnsan_guarantee): string {
  switch (g.kind) {
    case 'window':
      return `window until ${g.end}`;
    case 'pin':
      return 'a pin or reference on the frame';
    case 'notifier':
      return `MMU notifier subscription over [0x${g.start.toString(16)}, 0x${g.end.toString(16)})`;
    case 'driver':
      return `ownership by driver ${g.driver}`;
    case 'none':
      return 'nothing once the lookup returned';
  }
}

export type { pfnsan_site };
