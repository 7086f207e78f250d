/**
 * Reverse mapping: adding and removing the mappings of a folio (mapcounts, page->mapping,
 * RSS is left to the callers as in the kernel) and walking every place a folio is mapped
 * (for migration, writeback's write-protect, unmapping).
 *
 * anon_vma chains are reduced to one anon_vma shared by a VMA and its forked copies;
 * the walk checks each VMA's page table, so a VMA that does not map the folio is
 * simply skipped.
 *
 * @kernel mm/rmap.c (v6.8+ names folio_add_*_rmap_ptes / folio_remove_rmap_ptes; earlier
 *   page_add_new_anon_rmap, page_add_file_rmap, page_remove_rmap with the same effect)
 */
import type { Op } from '../../sched/index.js';
import type {
  anon_vma,
  address_space,
  folio,
  page,
  vm_area_struct,
  pte_t_ptr,
} from '../include/linux/mm_types.js';
import {
  folio_entire_mapcount_add,
  folio_index,
  folio_nr_pages,
  folio_raw_mapping,
  folio_set_index,
  folio_set_mapping,
  folio_test_anon,
  page_mapcount_add,
  SetPageAnonExclusive,
  ClearPageAnonExclusive,
  folio_clear_dirty,
  folio_test_dirty,
  folio_set_dirty_flag,
} from '../include/linux/page-flags.js';
import { linear_page_index } from '../include/linux/mm.js';
import { anon_vma_alloc } from './vma.js';
import { ENOMEM } from '../include/linux/errno.js';
import {
  down_read,
  up_read,
  spin_lock,
  spin_unlock,
  type spinlock_t,
} from '../include/linux/spinlock.js';
import { walkToLeaf, ptep_get, pmd_lockptr, type ptdesc } from '../include/linux/pgtable.js';
import {
  pte_pfn,
  pte_present,
  pte_dirty,
  pte_write,
  pte_wrprotect,
  pte_mkclean,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { slotName } from '../include/linux/pgtable.js';
import { pfnsan_owner_anon } from './pfnsan/pfnsan.js';

export const RMAP_NONE = 0;
export const RMAP_EXCLUSIVE = 1;

/**
 * anon_vma_prepare(vma): gives a VMA its anon_vma before the first anonymous folio.
 * @kernel mm/rmap.c:__anon_vma_prepare (all versions)
 * Locking: mmap_lock held (read is enough).
 * Return: 0 or -ENOMEM.
 */
export function anon_vma_prepare(vma: vm_area_struct): number {
  if (vma.anon_vma) return 0;
  const av = anon_vma_alloc();
  if (!av) return -ENOMEM;
  vma.anon_vma = av;
  av.vmas.add(vma);
  return 0;
}

/**
 * folio_add_new_anon_rmap(folio, vma, address, flags): a freshly allocated folio becomes
 * anonymous memory of vma: mapping = anon_vma, index = linear index, exclusive.
 * @kernel mm/rmap.c:folio_add_new_anon_rmap (v6.x; page_add_new_anon_rmap before)
 * Locking: the PTL of the entry being set.
 */
export function folio_add_new_anon_rmap(
  f: folio,
  vma: vm_area_struct,
  address: number,
  flags: number,
  pmd = false,
): void {
  const av = vma.anon_vma as anon_vma;
  folio_set_mapping(f, av, true);
  folio_set_index(f, linear_page_index(vma, address));
  const n = folio_nr_pages(f);
  if (pmd) folio_entire_mapcount_add(f, 1);
  else for (let i = 0; i < n; i++) page_mapcount_add((f + i) as page, 1);
  // A new anonymous folio is always exclusive to its mm (flags only carry RMAP_EXCLUSIVE).
  void flags;
  for (let i = 0; i < n; i++) SetPageAnonExclusive((f + i) as page);
  pfnsan_owner_anon(f, n, vma.vm_mm);
}

/**
 * folio_add_anon_rmap_ptes(folio, page, nr, vma, address, flags): nr more PTE mappings of
 * an existing anonymous folio (fork, swap-in). RMAP_EXCLUSIVE marks the pages exclusive.
 * @kernel mm/rmap.c:folio_add_anon_rmap_ptes (v6.8+; page_add_anon_rmap before)
 * Locking: the PTL.
 */
export function folio_add_anon_rmap_ptes(
  _f: folio,
  p: page,
  nr: number,
  _vma: vm_area_struct,
  _address: number,
  flags: number,
): void {
  for (let i = 0; i < nr; i++) {
    page_mapcount_add((p + i) as page, 1);
    if (flags & RMAP_EXCLUSIVE) SetPageAnonExclusive((p + i) as page);
  }
}

/** folio_add_anon_rmap_pmd(folio, page, vma, address, flags) */
export function folio_add_anon_rmap_pmd(f: folio, _vma: vm_area_struct, flags: number): void {
  folio_entire_mapcount_add(f, 1);
  if (!(flags & RMAP_EXCLUSIVE))
    for (let i = 0; i < folio_nr_pages(f); i++) ClearPageAnonExclusive((f + i) as page);
}

/**
 * folio_add_file_rmap_ptes(folio, page, nr, vma): nr PTE mappings of a page-cache (or
 * driver) folio.
 * @kernel mm/rmap.c:folio_add_file_rmap_ptes (v6.8+; page_add_file_rmap before)
 * Locking: the PTL.
 */
export function folio_add_file_rmap_ptes(
  _f: folio,
  p: page,
  nr: number,
  _vma: vm_area_struct,
): void {
  for (let i = 0; i < nr; i++) page_mapcount_add((p + i) as page, 1);
}

/** folio_add_file_rmap_pmd(folio, page, vma) */
export function folio_add_file_rmap_pmd(f: folio, _vma: vm_area_struct): void {
  folio_entire_mapcount_add(f, 1);
}

/**
 * folio_remove_rmap_ptes(folio, page, nr, vma): drops nr PTE mappings.
 * @kernel mm/rmap.c:folio_remove_rmap_ptes (v6.8+; page_remove_rmap before)
 * Locking: the PTL.
 */
export function folio_remove_rmap_ptes(_f: folio, p: page, nr: number, _vma: vm_area_struct): void {
  for (let i = 0; i < nr; i++) page_mapcount_add((p + i) as page, -1);
}

/** folio_remove_rmap_pmd(folio, page, vma) */
export function folio_remove_rmap_pmd(f: folio, _vma: vm_area_struct): void {
  folio_entire_mapcount_add(f, -1);
}

/** folio_move_anon_rmap(folio, vma): reuse on write fault makes the folio vma's own. */
export function folio_move_anon_rmap(f: folio, vma: vm_area_struct): void {
  if (vma.anon_vma) folio_set_mapping(f, vma.anon_vma, true);
}

/** vma_address(vma, pgoff, nr): the address of pgoff in vma, or -1 if outside. */
export function vma_address(vma: vm_area_struct, pgoff: number): number {
  const a = vma.vm_start + (pgoff - vma.vm_pgoff) * 4096;
  return a >= vma.vm_start && a < vma.vm_end ? a : -1;
}

/** One place a folio is mapped, found by the walk. */
export interface RmapHit {
  readonly vma: vm_area_struct;
  readonly address: number;
  readonly ptr: pte_t_ptr;
  readonly level: 'pte' | 'pmd' | 'pud';
  /** The page of the folio mapped there. */
  readonly page: page;
}

/** The VMAs that may map a folio: its anon_vma's or its file's i_mmap. */
export function rmap_candidates(f: folio): vm_area_struct[] {
  const m = folio_raw_mapping(f);
  if (!m) return [];
  if (folio_test_anon(f)) return [...(m as anon_vma).vmas];
  return [...(m as address_space).i_mmap];
}

/**
 * Finds every present entry that maps a page of the folio (page_vma_mapped_walk over
 * rmap_walk's VMAs). Plain lookup: the caller holds what it needs.
 */
export function folio_mappings(f: folio): RmapHit[] {
  const hits: RmapHit[] = [];
  const n = folio_nr_pages(f);
  const idx = folio_index(f);
  for (const vma of rmap_candidates(f)) {
    for (let i = 0; i < n; i++) {
      const address = vma_address(vma, idx + i);
      if (address < 0) continue;
      const leaf = walkToLeaf(vma.vm_mm, address);
      if (!leaf) continue;
      const v: pteval_t = ptep_get(leaf.ptr);
      if (!pte_present(v)) continue;
      const base = leaf.level === 'pte' ? f + i : f;
      if (leaf.level === 'pte' && pte_pfn(v) !== base) continue;
      if (leaf.level !== 'pte' && (pte_pfn(v) !== f || i > 0)) continue;
      hits.push({
        vma,
        address,
        ptr: leaf.ptr,
        level: leaf.level as 'pte' | 'pmd' | 'pud',
        page: (f + i) as page,
      });
    }
  }
  return hits;
}

/** The lock protecting an entry found by the walk. */
export function hitLock(h: RmapHit): spinlock_t {
  if (h.level === 'pte') return (h.ptr.t as ptdesc).ptl!;
  if (h.level === 'pmd') return pmd_lockptr(h.vma.vm_mm, h.ptr);
  return h.vma.vm_mm.page_table_lock;
}

/**
 * rmap_walk(folio, visit): visits each mapping of the folio with its page-table lock held,
 * holding i_mmap_rwsem for read (file folios) across the walk, as rmap_walk_file does.
 * @kernel mm/rmap.c:rmap_walk (all versions)
 * Locking: takes i_mmap_rwsem (read) and each entry's PTL; the folio should be locked.
 */
export function* rmap_walk(f: folio, visit: (h: RmapHit) => Op<boolean>): Op<void> {
  const m = folio_raw_mapping(f);
  const fileMapping = m && !folio_test_anon(f) ? (m as address_space) : null;
  if (fileMapping) yield* down_read(fileMapping.i_mmap_rwsem);
  try {
    for (const h of folio_mappings(f)) {
      const ptl = hitLock(h);
      yield* spin_lock(ptl);
      const go = yield* visit(h);
      yield* spin_unlock(ptl);
      if (!go) break;
    }
  } finally {
    if (fileMapping) yield* down_read_release(fileMapping);
  }
}

function* down_read_release(m: address_space): Op<void> {
  yield* up_read(m.i_mmap_rwsem);
}

/**
 * folio_mkclean(folio): write-protects and cleans every PTE mapping a page-cache folio, so
 * the next write faults into ->page_mkwrite (writeback). Returns the number of entries
 * that were dirty or writable.
 * @kernel mm/rmap.c:folio_mkclean (all versions)
 * Locking: folio locked; takes i_mmap_rwsem and the PTLs through rmap_walk.
 */
export function* folio_mkclean(f: folio): Op<number> {
  let cleaned = 0;
  yield* rmap_walk(f, function* (h) {
    if (h.level !== 'pte') return true;
    const v = ptep_get(h.ptr);
    if (!pte_dirty(v) && !pte_write(v)) return true;
    // flush_cache_page + ptep_clear_flush + set_pte_at(wrprotect(mkclean)).
    yield { obj: slotName(h.ptr), kind: 'write', what: 'folio_mkclean' };
    if (pte_dirty(v)) folio_set_dirty_flag(f);
    h.ptr.t.entries[h.ptr.i] = pte_wrprotect(pte_mkclean(v));
    cleaned++;
    return true;
  });
  return cleaned;
}

/** folio_test_clear_dirty helper for writeback. */
export function folio_test_clear_dirty(f: folio): boolean {
  const d = folio_test_dirty(f);
  folio_clear_dirty(f);
  return d;
}
