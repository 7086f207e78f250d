/**
 * Frame owners and generations, stored compactly.
 *
 * Per frame two 32-bit words, in typed arrays allocated lazily per subsection (as
 * mm/sparse.ts does for the memmap): the id of the frame's current *change* (an interned
 * (owner, thread, step) record) and its generation. A subsection nobody has changed costs
 * nothing; its frames have generation 0 and the owner the boot map gave them
 * ({@link OwnerTable.bootOwner}).
 *
 * History is bounded: the previous changes of a frame ((gen, change) pairs, at most
 * {@link PFNSAN_HISTORY} - 1 of them) live in a map entry created only on the frame's
 * second change, so a frame allocated once costs 8 bytes. Generation 0 is never stored:
 * it is the boot owner, shown when the oldest stored generation is 1.
 *
 * "Refinement": the page allocator sets a placeholder owner ('kernel', allocated) that
 * the first real owner (anon memory, page cache, page table, a driver) replaces without
 * a new generation: allocation and refinement are one change of owner.
 */
import { MEMMAP_CHUNK_PAGES as CHUNK } from '../sparse.js';
import type { pfnsan_history_entry, pfnsan_owner } from './pfnsan.js';

/** Changes kept per frame, the current one included. */
export const PFNSAN_HISTORY = 8;

interface Change {
  readonly owner: pfnsan_owner;
  readonly step: number;
  readonly thread: string;
  /** The allocator's placeholder, replaced by the first real owner. */
  readonly placeholder: boolean;
}

class OwnerSection {
  readonly change = new Uint32Array(CHUNK);
  readonly gen = new Uint32Array(CHUNK);
}

interface BootRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  readonly change: number;
}

const UNASSIGNED: pfnsan_owner = Object.freeze({ kind: 'unassigned', desc: 'unassigned' });

export class OwnerTable {
  /** Interned owners, by kind and description. */
  private readonly ownerIds = new Map<string, pfnsan_owner>();
  /** Interned changes; id 0 means "the boot owner". */
  private readonly changes: Change[] = [
    { owner: UNASSIGNED, step: -1, thread: 'boot', placeholder: false },
  ];
  private readonly changeIds = new Map<string, number>();
  private readonly sections: (OwnerSection | undefined)[] = [];
  /** pfn -> previous changes, oldest first, as [gen, change, gen, change, ...]. */
  private readonly hist = new Map<number, number[]>();
  /** Boot owners by physical range; later ranges take precedence (nested reservations). */
  private readonly boot: BootRange[] = [];
  /** Subsections materialised (for the scale figures). */
  materialized = 0;

  /** Interned owner objects (their identity stands for their value). */
  private readonly internedSet = new WeakSet<pfnsan_owner>();
  /** Per interned owner, the last change made with it (hot path: same thread and step). */
  private readonly lastChange = new WeakMap<
    pfnsan_owner,
    { thread: string; step: number; placeholder: boolean; id: number }
  >();

  intern(owner: pfnsan_owner): pfnsan_owner {
    if (this.internedSet.has(owner)) return owner;
    const key = `${owner.kind}\0${owner.desc}`;
    let o = this.ownerIds.get(key);
    if (!o) {
      o = Object.freeze({ kind: owner.kind, desc: owner.desc });
      this.ownerIds.set(key, o);
      this.internedSet.add(o);
    }
    return o;
  }

  private changeId(
    owner: pfnsan_owner,
    placeholder: boolean,
    thread: string,
    step: number,
  ): number {
    const o = this.intern(owner);
    const last = this.lastChange.get(o);
    if (last && last.thread === thread && last.step === step && last.placeholder === placeholder)
      return last.id;
    const key = `${o.kind}\0${o.desc}\0${thread}\0${step}\0${placeholder ? 1 : 0}`;
    let id = this.changeIds.get(key);
    if (id === undefined) {
      id = this.changes.length;
      this.changes.push({ owner: o, step, thread, placeholder });
      this.changeIds.set(key, id);
    }
    this.lastChange.set(o, { thread, step, placeholder, id });
    return id;
  }

  /** Records the owner a boot range starts with (generation 0; no per-frame state). */
  setBoot(pfn: number, nr: number, owner: pfnsan_owner): void {
    const change = this.changeId(owner, false, 'boot', -1);
    this.boot.push({ start: pfn, end: pfn + nr, change });
  }

  private bootChange(pfn: number): Change {
    for (let i = this.boot.length - 1; i >= 0; i--) {
      const b = this.boot[i]!;
      if (pfn >= b.start && pfn < b.end) return this.changes[b.change]!;
    }
    return this.changes[0]!;
  }

  bootOwner(pfn: number): pfnsan_owner {
    return this.bootChange(pfn).owner;
  }

  /**
   * Frames [pfn, pfn + nr) get `owner`; the generation is bumped, unless the frame's
   * current owner is the allocator's placeholder and this is a real owner other than
   * 'free' (refinement), or the frame already has this very owner.
   */
  set(
    pfn: number,
    nr: number,
    owner: pfnsan_owner,
    placeholder: boolean,
    thread: string,
    step: number,
  ): void {
    const id = this.changeId(owner, placeholder, thread, step);
    const o = this.changes[id]!.owner;
    for (let p = pfn; p < pfn + nr; p++) {
      const nrSec = Math.floor(p / CHUNK);
      let sec = this.sections[nrSec];
      if (!sec) {
        sec = new OwnerSection();
        this.sections[nrSec] = sec;
        this.materialized++;
      }
      const i = p - nrSec * CHUNK;
      const cur = sec.change[i]!;
      const gen = sec.gen[i]!;
      const c = cur === 0 && gen === 0 ? this.bootChange(p) : this.changes[cur]!;
      if (!placeholder && c.placeholder && o.kind !== 'free') {
        sec.change[i] = id;
        continue;
      }
      if (c.owner === o && !placeholder) continue;
      if (gen > 0) {
        let h = this.hist.get(p);
        if (!h) {
          h = [];
          this.hist.set(p, h);
        }
        h.push(gen, cur);
        if (h.length > 2 * (PFNSAN_HISTORY - 1)) h.splice(0, 2);
      }
      sec.gen[i] = gen + 1;
      sec.change[i] = id;
    }
  }

  gen(pfn: number): number {
    const sec = this.sections[Math.floor(pfn / CHUNK)];
    return sec ? sec.gen[pfn % CHUNK]! : 0;
  }

  private current(pfn: number): Change {
    const sec = this.sections[Math.floor(pfn / CHUNK)];
    if (!sec) return this.bootChange(pfn);
    const i = pfn % CHUNK;
    if (sec.gen[i] === 0) return this.bootChange(pfn);
    return this.changes[sec.change[i]!]!;
  }

  owner(pfn: number): pfnsan_owner {
    return this.current(pfn).owner;
  }

  /** The owner the frame had at generation `gen`, or null when it left the history. */
  ownerAt(pfn: number, gen: number): pfnsan_owner | null {
    const h = this.history(pfn);
    for (const e of h) if (e.gen === gen) return e.owner;
    return null;
  }

  /** The change that made generation `gen`, if still in the history. */
  entryAt(pfn: number, gen: number): pfnsan_history_entry | null {
    for (const e of this.history(pfn)) if (e.gen === gen) return e;
    return null;
  }

  /** The frame's bounded owner history, oldest first, the current owner last. */
  history(pfn: number): pfnsan_history_entry[] {
    const out: pfnsan_history_entry[] = [];
    const cur = this.gen(pfn);
    const h = this.hist.get(pfn) ?? [];
    const oldest = h.length ? h[0]! : cur;
    if (oldest === 1 || cur === 0) {
      const b = this.bootChange(pfn);
      out.push({ gen: 0, owner: b.owner, step: b.step, thread: b.thread });
    }
    for (let i = 0; i < h.length; i += 2) {
      const c = this.changes[h[i + 1]!]!;
      out.push({ gen: h[i]!, owner: c.owner, step: c.step, thread: c.thread });
    }
    if (cur > 0) {
      const c = this.current(pfn);
      out.push({ gen: cur, owner: c.owner, step: c.step, thread: c.thread });
    }
    return out.slice(-PFNSAN_HISTORY);
  }

  /** Every frame whose owner changed since boot, with its current owner (teardown walk). */
  *changed(): Generator<[number, pfnsan_owner]> {
    const touched: [number, OwnerSection][] = [];
    this.sections.forEach((sec, s) => {
      if (sec) touched.push([s, sec]);
    });
    for (const [s, sec] of touched) {
      for (let i = 0; i < CHUNK; i++) {
        if (sec.gen[i] === 0) continue;
        yield [s * CHUNK + i, this.changes[sec.change[i]!]!.owner];
      }
    }
  }
}
