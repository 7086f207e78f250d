/**
 * Swap entries: the non-present, non-none page-table entries that name where a page went
 * (include/linux/swapops.h). The model creates only migration entries (page migration,
 * mm/migrate.ts); the rest of the API is here so walkers can tell them apart exactly as
 * the kernel does.
 *
 * Model encoding. A swap-type entry is a number like any entry, `pfn * 65536 + flags`
 * (arch/x86/include/asm/pgtable_types.ts), with
 *  - _PAGE_PRESENT and _PAGE_PROTNONE clear and PSE clear (so pte_present() and
 *    pmd_present() are false, pte_none() too);
 *  - _PAGE_SWP_MODEL (bit 12) set: "this is a swap entry the model encodes";
 *  - the swap type in bits 1-2 (SWP_TYPE_SHIFT);
 *  - for migration entries the SWP_MIG_YOUNG / SWP_MIG_DIRTY bits (v6.1+) at the positions
 *    of _PAGE_ACCESSED and _PAGE_DIRTY, and the pfn of the page being migrated in the pfn
 *    field, so pte_pfn() of the entry is that pfn.
 * x86 keeps the same information inverted in the high bits of the non-present entry
 * (__swp_entry, arch/x86/include/asm/pgtable_64.h); only the meaning is modelled.
 * swp_entry_t is that same number: pte_to_swp_entry() and swp_entry_to_pte() are the
 * identity (no soft-dirty, uffd-wp or swp-exclusive bits exist in the model).
 *
 * Swap types of the model (the kernel numbers them from MAX_SWAPFILES upwards for the
 * non-swap kinds): type 0 is a swap device slot (the model has no swap, so nothing makes
 * one), 1-3 the three migration types; a non-present value without _PAGE_SWP_MODEL
 * decodes as SWP_MODEL_UNKNOWN, a type no helper recognises (the kernel's "unrecognized
 * swap entry").
 *
 * swp_offset() of a migration entry carries the A/D bits above the pfn as the kernel's
 * does (SWP_MIG_YOUNG_BIT = SWP_PFN_BITS = MAX_PHYSMEM_BITS(46) - PAGE_SHIFT on x86-64
 * with 4-level paging), so make_readable_migration_entry(swp_offset(entry)) keeps them,
 * as in the kernel; swp_offset_pfn() is the pfn alone.
 *
 * Names by version: before v5.14 the kernel had make_migration_entry(page, write),
 * is_write_migration_entry(), make_migration_entry_read(&entry) and
 * migration_entry_to_page(); 4dd845b5a3e5 ("mm/swapops: rework swap entry manipulation
 * code") and af5cdaf82238 ("mm: remove special swap entry functions") replaced them with
 * make_{readable,writable}_migration_entry(), is_writable_migration_entry() and
 * pfn_swap_entry_to_page() (v5.14). SWP_MIGRATION_READ_EXCLUSIVE came with 6c287605fd56
 * (v5.19), swp_offset_pfn() and the A/D bits with v6.1 (0d206b5d2e0d, 2e3468778dbe),
 * pfn_swap_entry_folio() with v6.9 ("mm: Add pfn_swap_entry_folio()"). All names are
 * exported and behave the same in every version; the model's callers use the newest
 * names (their doc comments say which name each version used).
 *
 * Left out: genuine swap entries and swap devices, device-private/exclusive entries,
 * hwpoison and PTE-marker entries, soft-dirty / uffd-wp / exclusive swap PTE bits, and
 * pfn_swap_entry_to_page()'s BUG_ON(is_migration_entry(entry) && !PageLocked(page)) (a
 * migration entry only exists while its folio is locked; tests of other files build
 * entries for unlocked pages by hand).
 *
 * @kernel include/linux/swapops.h, include/linux/swap.h (SWP_* types),
 *   include/linux/huge_mm.h:is_swap_pmd (v5.7+; names as above)
 */
import type { folio, page } from './mm_types.js';
import { page_folio } from './page-flags.js';
import { VM_BUG_ON } from '../../kernel/panic.js';
import { since } from '../../version.js';
import {
  __pte,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  pte_flags,
  pte_none,
  pte_pfn,
  pte_present,
  type pteval_t,
} from '../../arch/x86/include/asm/pgtable_types.js';
import { pmd_none, pmd_present } from '../../arch/x86/include/asm/pgtable.js';

/** swp_entry_t: in the model the entry's own value (see the file comment). */
export type swp_entry_t = number;

/** The model's marker of a swap-type entry (bit 12 of the flag part). */
export const _PAGE_SWP_MODEL = 1 << 12;
const SWP_TYPE_SHIFT = 1;
const SWP_TYPE_MASK = 3;

/** MAX_SWAPFILES of the model: swap type 0 only (never created: no swap device). */
export const MAX_SWAPFILES = 1;
/** Swap types of migration entries (include/linux/swap.h: MAX_SWAPFILES + n). */
export const SWP_MIGRATION_READ = MAX_SWAPFILES;
export const SWP_MIGRATION_READ_EXCLUSIVE = MAX_SWAPFILES + 1;
export const SWP_MIGRATION_WRITE = MAX_SWAPFILES + 2;
/** Model only: the type of a non-present value outside the model's swap encoding. */
export const SWP_MODEL_UNKNOWN = MAX_SWAPFILES + 3;

/** SWP_PFN_BITS: MAX_PHYSMEM_BITS (46, 4-level paging) - PAGE_SHIFT. */
export const SWP_PFN_BITS = 46 - 12;
const SWP_PFN_SPAN = 2 ** SWP_PFN_BITS;
/** SWP_MIG_YOUNG / SWP_MIG_DIRTY: the A/D bits of a migration entry's offset (v6.1+). */
export const SWP_MIG_YOUNG = SWP_PFN_SPAN;
export const SWP_MIG_DIRTY = 2 * SWP_PFN_SPAN;
/** Where the model keeps the A/D bits in the entry's flag part. */
const SWP_MIG_YOUNG_FLAG = _PAGE_ACCESSED;
const SWP_MIG_DIRTY_FLAG = _PAGE_DIRTY;

/** `offset | bit` for offsets wider than 32 bits (bit is SWP_MIG_YOUNG or SWP_MIG_DIRTY). */
function offset_or(offset: number, bit: number): number {
  return Math.floor(offset / bit) % 2 ? offset : offset + bit;
}

/**
 * swp_entry(type, offset): the entry for a type and an offset (the offset's A/D bits, if
 * any, go to the model's A/D flag positions).
 * @kernel include/linux/swapops.h:swp_entry (all versions)
 */
export function swp_entry(type: number, offset: number): swp_entry_t {
  const pfn = offset % SWP_PFN_SPAN;
  const ad = Math.floor(offset / SWP_PFN_SPAN);
  let flags = _PAGE_SWP_MODEL | ((type & SWP_TYPE_MASK) << SWP_TYPE_SHIFT);
  if (ad & 1) flags |= SWP_MIG_YOUNG_FLAG;
  if (ad & 2) flags |= SWP_MIG_DIRTY_FLAG;
  return __pte(pfn, flags);
}

/**
 * swp_type(entry): the entry's type; SWP_MODEL_UNKNOWN for a value the model does not
 * encode as a swap entry.
 * @kernel include/linux/swapops.h:swp_type (all versions)
 */
export function swp_type(e: swp_entry_t): number {
  const f = pte_flags(e);
  if (!(f & _PAGE_SWP_MODEL) || pte_present(e)) return SWP_MODEL_UNKNOWN;
  return (f >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK;
}

/**
 * swp_offset(entry): the offset: for migration entries the pfn, with the A/D bits above
 * it (v6.1+).
 * @kernel include/linux/swapops.h:swp_offset (all versions)
 */
export function swp_offset(e: swp_entry_t): number {
  const f = pte_flags(e);
  let off = pte_pfn(e);
  if (f & SWP_MIG_YOUNG_FLAG) off += SWP_MIG_YOUNG;
  if (f & SWP_MIG_DIRTY_FLAG) off += SWP_MIG_DIRTY;
  return off;
}

/**
 * swp_offset_pfn(entry): the pfn of a pfn swap entry (the offset without the A/D bits).
 * @kernel include/linux/swapops.h:swp_offset_pfn (v6.1+, 0d206b5d2e0d; swp_offset()
 *   before, when the offset held only the pfn)
 */
export function swp_offset_pfn(e: swp_entry_t): number {
  VM_BUG_ON(!is_pfn_swap_entry(e), 'VM_BUG_ON(!is_pfn_swap_entry(entry))');
  return swp_offset(e) % SWP_PFN_SPAN;
}

/**
 * is_swap_pte(pte): neither none nor present.
 * @kernel include/linux/swapops.h:is_swap_pte (v5.7-v6.18)
 */
export function is_swap_pte(pte: pteval_t): boolean {
  return !pte_none(pte) && !pte_present(pte);
}

/**
 * pte_to_swp_entry(pte) / swp_entry_to_pte(entry): the identity in the model.
 * @kernel include/linux/swapops.h:pte_to_swp_entry, swp_entry_to_pte (all versions)
 */
export function pte_to_swp_entry(pte: pteval_t): swp_entry_t {
  return pte;
}
export function swp_entry_to_pte(e: swp_entry_t): pteval_t {
  return e;
}

/**
 * non_swap_entry(entry): the entry is not a swap device slot (migration, device,
 * hwpoison, marker).
 * @kernel include/linux/swapops.h:non_swap_entry (all versions)
 */
export function non_swap_entry(e: swp_entry_t): boolean {
  return swp_type(e) >= MAX_SWAPFILES;
}

/**
 * is_migration_entry(entry)
 * @kernel include/linux/swapops.h:is_migration_entry (all versions; READ_EXCLUSIVE v5.19+)
 */
export function is_migration_entry(e: swp_entry_t): boolean {
  const t = swp_type(e);
  return (
    t === SWP_MIGRATION_READ || t === SWP_MIGRATION_READ_EXCLUSIVE || t === SWP_MIGRATION_WRITE
  );
}

/**
 * is_writable_migration_entry(entry)
 * @kernel include/linux/swapops.h:is_writable_migration_entry (v5.14+;
 *   is_write_migration_entry before)
 */
export function is_writable_migration_entry(e: swp_entry_t): boolean {
  return swp_type(e) === SWP_MIGRATION_WRITE;
}
/** is_write_migration_entry(entry): the name before v5.14 (4dd845b5a3e5). */
export const is_write_migration_entry = is_writable_migration_entry;

/**
 * is_readable_migration_entry(entry): read-only and not exclusive.
 * @kernel include/linux/swapops.h:is_readable_migration_entry (v5.14+)
 */
export function is_readable_migration_entry(e: swp_entry_t): boolean {
  return swp_type(e) === SWP_MIGRATION_READ;
}

/**
 * is_readable_exclusive_migration_entry(entry): read-only, exclusively mapped anon page.
 * @kernel include/linux/swapops.h:is_readable_exclusive_migration_entry (v5.19+,
 *   6c287605fd56)
 */
export function is_readable_exclusive_migration_entry(e: swp_entry_t): boolean {
  return swp_type(e) === SWP_MIGRATION_READ_EXCLUSIVE;
}

/**
 * make_readable_migration_entry(offset) / make_readable_exclusive_migration_entry(offset)
 * / make_writable_migration_entry(offset)
 * @kernel include/linux/swapops.h (v5.14+; make_migration_entry(page, write) before;
 *   the exclusive kind v5.19+)
 */
export function make_readable_migration_entry(offset: number): swp_entry_t {
  return swp_entry(SWP_MIGRATION_READ, offset);
}
export function make_readable_exclusive_migration_entry(offset: number): swp_entry_t {
  return swp_entry(SWP_MIGRATION_READ_EXCLUSIVE, offset);
}
export function make_writable_migration_entry(offset: number): swp_entry_t {
  return swp_entry(SWP_MIGRATION_WRITE, offset);
}

/**
 * make_migration_entry(page, write): the pre-v5.14 constructor.
 * @kernel include/linux/swapops.h:make_migration_entry (v5.7-v5.13)
 */
export function make_migration_entry(p: page, write: boolean): swp_entry_t {
  return swp_entry(write ? SWP_MIGRATION_WRITE : SWP_MIGRATION_READ, p);
}

/**
 * make_migration_entry_read(&entry): the pre-v5.14 write-to-read conversion (C modifies
 * the entry in place; the model returns the new one).
 * @kernel include/linux/swapops.h:make_migration_entry_read (v5.7-v5.13)
 */
export function make_migration_entry_read(e: swp_entry_t): swp_entry_t {
  return swp_entry(SWP_MIGRATION_READ, swp_offset(e));
}

/**
 * migration_entry_supports_ad(): whether migration entries carry the young/dirty bits:
 * from v6.1 (2e3468778dbe "mm: remember young/dirty bit for page migrations"), where
 * x86-64's swap offset has room for them; before, no such bits exist.
 * @kernel include/linux/swapops.h:migration_entry_supports_ad (v6.1+)
 */
export function migration_entry_supports_ad(): boolean {
  return since(6, 1);
}

/**
 * make_migration_entry_young(entry) / make_migration_entry_dirty(entry) and the tests
 * is_migration_entry_young / is_migration_entry_dirty: no-ops (false) without A/D support.
 * @kernel include/linux/swapops.h (v6.1+, 2e3468778dbe)
 */
export function make_migration_entry_young(e: swp_entry_t): swp_entry_t {
  if (migration_entry_supports_ad())
    return swp_entry(swp_type(e), offset_or(swp_offset(e), SWP_MIG_YOUNG));
  return e;
}
export function is_migration_entry_young(e: swp_entry_t): boolean {
  if (migration_entry_supports_ad()) return (pte_flags(e) & SWP_MIG_YOUNG_FLAG) !== 0;
  // Keep the old behavior of aging page after migration.
  return false;
}
export function make_migration_entry_dirty(e: swp_entry_t): swp_entry_t {
  if (migration_entry_supports_ad())
    return swp_entry(swp_type(e), offset_or(swp_offset(e), SWP_MIG_DIRTY));
  return e;
}
export function is_migration_entry_dirty(e: swp_entry_t): boolean {
  if (migration_entry_supports_ad()) return (pte_flags(e) & SWP_MIG_DIRTY_FLAG) !== 0;
  // Keep the old behavior of clean page after migration.
  return false;
}

/**
 * is_pfn_swap_entry(entry): an entry whose offset is a pfn (migration; device entries
 * are not modelled).
 * @kernel include/linux/swapops.h:is_pfn_swap_entry (v5.14+)
 */
export function is_pfn_swap_entry(e: swp_entry_t): boolean {
  return is_migration_entry(e);
}

/**
 * pfn_swap_entry_to_page(entry): the page a pfn swap entry names.
 * @kernel include/linux/swapops.h:pfn_swap_entry_to_page (v5.14+, af5cdaf82238;
 *   migration_entry_to_page before)
 * Left out: BUG_ON(is_migration_entry(entry) && !PageLocked(page)) (see file comment).
 */
export function pfn_swap_entry_to_page(e: swp_entry_t): page {
  return swp_offset_pfn(e) as page;
}

/** migration_entry_to_page(entry): the name before v5.14 (af5cdaf82238). */
export const migration_entry_to_page = pfn_swap_entry_to_page;

/**
 * pfn_swap_entry_folio(entry): the folio a pfn swap entry names.
 * @kernel include/linux/swapops.h:pfn_swap_entry_folio (v6.9+; page_folio of
 *   pfn_swap_entry_to_page / migration_entry_to_page before)
 */
export function pfn_swap_entry_folio(e: swp_entry_t): folio {
  return page_folio(pfn_swap_entry_to_page(e));
}

/**
 * is_swap_pmd(pmd): a non-present, non-none PMD (a PMD migration entry).
 * @kernel include/linux/huge_mm.h:is_swap_pmd (v5.7-v6.18)
 */
export function is_swap_pmd(pmd: pteval_t): boolean {
  return !pmd_none(pmd) && !pmd_present(pmd);
}

/**
 * pmd_to_swp_entry(pmd) / swp_entry_to_pmd(entry): the identity in the model.
 * @kernel include/linux/swapops.h:pmd_to_swp_entry, swp_entry_to_pmd (all versions,
 *   CONFIG_ARCH_ENABLE_THP_MIGRATION: x86-64 has it)
 */
export function pmd_to_swp_entry(pmd: pteval_t): swp_entry_t {
  return pmd;
}
export function swp_entry_to_pmd(e: swp_entry_t): pteval_t {
  return e;
}

/**
 * is_pmd_migration_entry(pmd)
 * @kernel include/linux/swapops.h:is_pmd_migration_entry (all versions)
 */
export function is_pmd_migration_entry(pmd: pteval_t): boolean {
  return is_swap_pmd(pmd) && is_migration_entry(pmd_to_swp_entry(pmd));
}
