/**
 * struct page / struct folio accessors over the memmap: flags, folio geometry, mapping,
 * index, mapcount and pincount. Handles are pfns (see mm_types.ts).
 *
 * @kernel include/linux/page-flags.h, include/linux/mm.h (all versions)
 * Locking: plain reads and writes of per-frame words; callers hold what the kernel
 * requires (the folio lock, the PTL, or an atomic context as noted per function).
 */
import {
  memmap,
  PG_anon,
  PG_anon_exclusive,
  PG_dirty,
  PG_head,
  PG_locked,
  PG_lru,
  PG_reserved,
  PG_swapbacked,
  PG_tail,
  PG_buddy,
  PG_table,
  PG_uptodate,
  PG_writeback,
  PG_mlocked,
  type SubsectionArrays,
  memmap_slot,
} from '../../mm/sparse.js';
import type { folio, page } from './mm_types.js';

/** page_to_pfn(page) */
export function page_to_pfn(p: page): number {
  return p;
}

/** pfn_to_page(pfn): only meaningful when pfn_valid(pfn). */
export function pfn_to_page(pfn: number): page {
  return pfn as page;
}

/** folio_pfn(folio) */
export function folio_pfn(f: folio): number {
  return f;
}

/** Frame index inside its section. */
function slot(pfn: number): number {
  return memmap_slot(pfn);
}

function arr(pfn: number): SubsectionArrays {
  return memmap().arraysFor(pfn);
}

/** The flags word of a frame (reads do not materialise a pristine section). */
export function page_flags(pfn: number): number {
  const a = memmap().peek(pfn);
  return a ? a.flags[slot(pfn)]! : memmap().pristineFlags(pfn);
}

export function set_page_flag(pfn: number, f: number): void {
  arr(pfn).flags[slot(pfn)]! |= f;
}

export function clear_page_flag(pfn: number, f: number): void {
  arr(pfn).flags[slot(pfn)]! &= ~f;
}

/** compound order of the folio containing the frame (0 for small pages). */
export function frame_order(pfn: number): number {
  const a = memmap().peek(pfn);
  return a ? a.order[slot(pfn)]! : 0;
}

/**
 * page_folio(page): the folio a page belongs to. Large folios are naturally aligned, so
 * the head is the page's pfn rounded down to the folio size.
 */
export function page_folio(p: page): folio {
  const o = frame_order(p);
  if (o === 0) return p as number as folio;
  const n = 2 ** o;
  return (Math.floor(p / n) * n) as folio;
}

/** compound_head(page) */
export function compound_head(p: page): page {
  return page_folio(p) as number as page;
}

/** folio_page(folio, n) */
export function folio_page(f: folio, n: number): page {
  return (f + n) as page;
}

/** &folio->page */
export function folio_head_page(f: folio): page {
  return f as number as page;
}

export function folio_order(f: folio): number {
  return (page_flags(f) & PG_head) !== 0 ? frame_order(f) : 0;
}

export function folio_nr_pages(f: folio): number {
  return 2 ** folio_order(f);
}

export function folio_test_large(f: folio): boolean {
  return (page_flags(f) & PG_head) !== 0;
}

export function PageTail(p: page): boolean {
  return (page_flags(p) & PG_tail) !== 0;
}

export function PageHead(p: page): boolean {
  return (page_flags(p) & PG_head) !== 0;
}

/** PageReserved(page) */
export function PageReserved(p: page): boolean {
  return (page_flags(p) & PG_reserved) !== 0;
}

export function SetPageReserved(p: page): void {
  set_page_flag(p, PG_reserved);
}

export function ClearPageReserved(p: page): void {
  clear_page_flag(p, PG_reserved);
}

/** PageBuddy(page): free in the page allocator. */
export function PageBuddy(p: page): boolean {
  return (page_flags(p) & PG_buddy) !== 0;
}

/** PageTable(page): a page-table page. */
export function PageTable(p: page): boolean {
  return (page_flags(p) & PG_table) !== 0;
}

/** folio_test_anon(folio): folio->mapping has PAGE_MAPPING_ANON. */
export function folio_test_anon(f: folio): boolean {
  return (page_flags(f) & PG_anon) !== 0;
}

export function PageAnon(p: page): boolean {
  return folio_test_anon(page_folio(p));
}

export function PageAnonExclusive(p: page): boolean {
  return (page_flags(p) & PG_anon_exclusive) !== 0;
}

export function SetPageAnonExclusive(p: page): void {
  set_page_flag(p, PG_anon_exclusive);
}

export function ClearPageAnonExclusive(p: page): void {
  clear_page_flag(p, PG_anon_exclusive);
}

const simple = (bit: number) =>
  [
    (f: folio): boolean => (page_flags(f) & bit) !== 0,
    (f: folio): void => set_page_flag(f, bit),
    (f: folio): void => clear_page_flag(f, bit),
  ] as const;

export const [folio_test_locked, __folio_set_locked, __folio_clear_locked] = simple(PG_locked);
export const [folio_test_dirty, folio_set_dirty_flag, folio_clear_dirty] = simple(PG_dirty);
export const [folio_test_uptodate, folio_mark_uptodate, folio_clear_uptodate] = simple(PG_uptodate);
export const [folio_test_lru, folio_set_lru, folio_clear_lru] = simple(PG_lru);
export const [folio_test_writeback, folio_set_writeback, folio_clear_writeback] =
  simple(PG_writeback);
export const [folio_test_swapbacked, __folio_set_swapbacked, __folio_clear_swapbacked] =
  simple(PG_swapbacked);
export const [folio_test_mlocked, folio_set_mlocked, folio_clear_mlocked] = simple(PG_mlocked);

/** folio->mapping: the address_space or anon_vma object, or null. */
export function folio_raw_mapping(f: folio): unknown {
  const a = memmap().peek(f);
  if (!a) return null;
  const id = a.mapping[slot(f)]!;
  return id === 0 ? null : (memmap().mappings.get(id) ?? null);
}

/** Sets folio->mapping to an object with an `id` (address_space or anon_vma), or clears it. */
export function folio_set_mapping(f: folio, m: { id: number } | null, anon: boolean): void {
  const a = arr(f);
  if (m === null) {
    a.mapping[slot(f)] = 0;
    a.flags[slot(f)]! &= ~PG_anon;
    return;
  }
  memmap().mappings.set(m.id, m);
  a.mapping[slot(f)] = m.id;
  if (anon) a.flags[slot(f)]! |= PG_anon;
  else a.flags[slot(f)]! &= ~PG_anon;
}

/** folio->index (page-cache index or anon linear index). */
export function folio_index(f: folio): number {
  const a = memmap().peek(f);
  return a ? a.index[slot(f)]! : 0;
}

export function folio_set_index(f: folio, idx: number): void {
  arr(f).index[slot(f)] = idx;
}

/** page_mapcount(page): PTE mappings of this page plus PMD mappings of its folio. */
export function page_mapcount(p: page): number {
  const a = memmap().peek(p);
  const own = a ? a.mapcount[slot(p)]! : 0;
  const f = page_folio(p);
  if (f === (p as number) && !folio_test_large(f)) return own;
  return own + (memmap().large.get(f)?._entire_mapcount ?? 0);
}

/** Adjusts the per-page mapcount (the rmap functions use it). */
export function page_mapcount_add(p: page, d: number): number {
  const a = arr(p);
  a.mapcount[slot(p)]! += d;
  return a.mapcount[slot(p)]!;
}

/** folio_mapcount(folio): total mappings of all its pages (PMD mappings count once per page). */
export function folio_mapcount(f: folio): number {
  if (!folio_test_large(f)) return page_mapcount(f as number as page);
  const n = folio_nr_pages(f);
  const a = memmap().peek(f);
  let sum = 0;
  if (a) for (let i = 0; i < n; i++) sum += memmap().peek(f + i)?.mapcount[slot(f + i)] ?? 0;
  return sum + (memmap().large.get(f)?._entire_mapcount ?? 0);
}

/** folio_mapped(folio) */
export function folio_mapped(f: folio): boolean {
  return folio_mapcount(f) > 0;
}

/** folio->_entire_mapcount adjustment for PMD/PUD mappings of a large folio. */
export function folio_entire_mapcount_add(f: folio, d: number): void {
  const info = memmap().large.get(f);
  if (!info) throw new Error(`folio 0x${f.toString(16)} is not large`);
  info._entire_mapcount += d;
}

/** folio->_pincount of a large folio. */
export function folio_pincount(f: folio): number {
  return memmap().large.get(f)?._pincount ?? 0;
}

export function folio_pincount_add(f: folio, d: number): void {
  const info = memmap().large.get(f);
  if (!info) throw new Error(`folio 0x${f.toString(16)} is not large`);
  info._pincount += d;
}

/** Marks pfn..pfn+2^order-1 as one folio (prep_compound_page). */
export function prep_compound_page(head: number, order: number): void {
  const n = 2 ** order;
  for (let i = 0; i < n; i++) {
    const a = arr(head + i);
    a.order[slot(head + i)] = order;
    a.flags[slot(head + i)]! =
      (a.flags[slot(head + i)]! & ~(PG_head | PG_tail)) | (i === 0 ? PG_head : PG_tail);
  }
  memmap().large.set(head, { _pincount: 0, _entire_mapcount: 0 });
}

/** Undoes prep_compound_page (on free or split). */
export function clear_compound_page(head: number, order: number): void {
  const n = 2 ** order;
  for (let i = 0; i < n; i++) {
    const a = arr(head + i);
    a.order[slot(head + i)] = 0;
    a.flags[slot(head + i)]! &= ~(PG_head | PG_tail);
  }
  memmap().large.delete(head);
}
