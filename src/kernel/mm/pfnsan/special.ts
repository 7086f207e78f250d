/**
 * The generations special user PTEs were made for. Normal pages mapped by user PTEs are
 * refcounted (the mapping keeps the frame), so only entries without a reference, the
 * pte_special / pfnmap entries remap_pfn_range, vmf_insert_pfn* and insert_pfn install,
 * need a generation: a side table keyed by (mm, page address) records the pfn and its
 * generation at insertion, zapping forgets it, and a CPU access through the entry
 * compares generations.
 *
 * PMD and PUD pfnmap leaves (insert_pfn_pmd/pud) are recorded the same way, one record
 * per leaf with the generation of each of its frames, keyed by the leaf's aligned
 * address; a zap or split forgets them.
 *
 * Left out: entries moved by mremap or copied by fork (not recorded at their new place;
 * an entry whose pfn no longer matches the translation is ignored and dropped).
 */
import type { pfnsan_site } from './pfnsan.js';

export interface SpecialEntry {
  readonly pfn: number;
  readonly gen: number;
  /** Where the entry was inserted (shared by the entries one call inserted). */
  readonly at: pfnsan_site;
}

export class SpecialPtes {
  readonly byMm = new WeakMap<object, Map<number, SpecialEntry>>();

  set(mm: object, addr: number, e: SpecialEntry): void {
    let m = this.byMm.get(mm);
    if (!m) {
      m = new Map();
      this.byMm.set(mm, m);
    }
    m.set(addr, e);
  }

  get(mm: object, addr: number): SpecialEntry | undefined {
    return this.byMm.get(mm)?.get(addr);
  }

  clear(mm: object, addr: number): void {
    this.byMm.get(mm)?.delete(addr);
  }

  /** Huge leaves by mm, then by leaf size, then by aligned address. */
  readonly hugeByMm = new WeakMap<object, Map<number, Map<number, HugeSpecialEntry>>>();

  setHuge(mm: object, addr: number, e: HugeSpecialEntry): void {
    let bySize = this.hugeByMm.get(mm);
    if (!bySize) {
      bySize = new Map();
      this.hugeByMm.set(mm, bySize);
    }
    let m = bySize.get(e.size);
    if (!m) {
      m = new Map();
      bySize.set(e.size, m);
    }
    m.set(addr, e);
  }

  /** The huge leaf record covering addr, with its aligned address. */
  getHuge(mm: object, addr: number): { addr: number; e: HugeSpecialEntry } | undefined {
    const bySize = this.hugeByMm.get(mm);
    if (!bySize) return undefined;
    for (const [size, m] of bySize) {
      const base = addr - (addr % size);
      const e = m.get(base);
      if (e) return { addr: base, e };
    }
    return undefined;
  }

  clearHuge(mm: object, addr: number, size: number): void {
    this.hugeByMm
      .get(mm)
      ?.get(size)
      ?.delete(addr - (addr % size));
  }
}

/** A PMD or PUD pfnmap leaf: its first pfn, size in bytes and each frame's generation. */
export interface HugeSpecialEntry {
  readonly pfn: number;
  readonly size: number;
  readonly gens: Int32Array;
  readonly at: pfnsan_site;
}
