/**
 * The generations special user PTEs were made for. Normal pages mapped by user PTEs are
 * refcounted (the mapping keeps the frame), so only entries without a reference, the
 * pte_special / pfnmap entries remap_pfn_range, vmf_insert_pfn* and insert_pfn install,
 * need a generation: a side table keyed by (mm, page address) records the pfn and its
 * generation at insertion, zapping forgets it, and a CPU access through the entry
 * compares generations.
 *
 * Left out: PMD/PUD pfnmap leaves (vmf_insert_pfn_pmd/pud), entries moved by mremap or
 * copied by fork (not recorded at their new place; an entry whose pfn no longer matches
 * the translation is ignored and dropped).
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
}
