/**
 * x86-64 page table entry encoding, 4-level paging, 4 KiB pages.
 *
 * An entry (pte_t, pmd_t, pud_t, pgd_t) is held as one JS number:
 * `pfn * 65536 + flags`, where `flags` keeps the x86 bits 0..11 at their hardware
 * positions and maps the high bits the model uses into bits 12..15 (NX = bit 63 ->
 * bit 15, DEVMAP = _PAGE_BIT_SOFTW4 (58) -> bit 14, PAT_LARGE (12 in huge entries) ->
 * bit 13). This is exact for physical addresses below 2^53 bytes and keeps all bit
 * operations in 32-bit integers. {@link native_pte_val} gives the hardware value.
 *
 * @kernel arch/x86/include/asm/pgtable_types.h (all versions)
 */
export type pteval_t = number;
/** pgprot_t: the flag part of an entry. */
export type pgprot_t = number;

export const _PAGE_BIT_PRESENT = 0;
export const _PAGE_BIT_RW = 1;
export const _PAGE_BIT_USER = 2;
export const _PAGE_BIT_PWT = 3;
export const _PAGE_BIT_PCD = 4;
export const _PAGE_BIT_ACCESSED = 5;
export const _PAGE_BIT_DIRTY = 6;
export const _PAGE_BIT_PSE = 7;
export const _PAGE_BIT_PAT = 7;
export const _PAGE_BIT_GLOBAL = 8;
export const _PAGE_BIT_SOFTW1 = 9;
export const _PAGE_BIT_SPECIAL = _PAGE_BIT_SOFTW1;
export const _PAGE_BIT_PROTNONE = _PAGE_BIT_GLOBAL;

export const _PAGE_PRESENT = 1 << 0;
export const _PAGE_RW = 1 << 1;
export const _PAGE_USER = 1 << 2;
export const _PAGE_PWT = 1 << 3;
export const _PAGE_PCD = 1 << 4;
export const _PAGE_ACCESSED = 1 << 5;
export const _PAGE_DIRTY = 1 << 6;
export const _PAGE_PSE = 1 << 7;
export const _PAGE_PAT = 1 << 7;
export const _PAGE_GLOBAL = 1 << 8;
export const _PAGE_SPECIAL = 1 << 9;
/** PROT_NONE entries: not present, GLOBAL bit reused (NUMA hinting and PROT_NONE). */
export const _PAGE_PROTNONE = 1 << 8;
export const _PAGE_PAT_LARGE = 1 << 13;
export const _PAGE_DEVMAP = 1 << 14;
export const _PAGE_NX = 1 << 15;

export const FLAGS_SPAN = 65536;
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PAGE_MASK = -4096;
export const PMD_SHIFT = 21;
export const PMD_SIZE = 1 << 21;
export const PUD_SHIFT = 30;
export const PUD_SIZE = 2 ** 30;
export const PGDIR_SHIFT = 39;
export const PGDIR_SIZE = 2 ** 39;
export const PTRS_PER_PTE = 512;
export const PTRS_PER_PMD = 512;
export const PTRS_PER_PUD = 512;
export const PTRS_PER_PGD = 512;
/** Highest user address + 1 (x86-64 4-level: 47 bits less one guard page). */
export const TASK_SIZE_MAX = 0x7ffffffff000;
export const HPAGE_PMD_ORDER = 9;
export const HPAGE_PMD_NR = 512;
export const HPAGE_PUD_ORDER = 18;

/** Page-table entries for intermediate levels: present, rw, user, accessed, dirty. */
export const _PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;

/** Cache modes in pgprot (PWT/PCD/PAT), enum page_cache_mode. */
export const _PAGE_CACHE_MASK = _PAGE_PWT | _PAGE_PCD | _PAGE_PAT;
export const _PAGE_CACHE_WB = 0;
export const _PAGE_CACHE_WC = _PAGE_PWT;
export const _PAGE_CACHE_UC_MINUS = _PAGE_PCD;
export const _PAGE_CACHE_UC = _PAGE_PCD | _PAGE_PWT;

/** protection_map for the VM_READ|VM_WRITE|VM_EXEC|VM_SHARED combinations (x86). */
export const PAGE_NONE = _PAGE_PROTNONE | _PAGE_ACCESSED;
export const PAGE_SHARED = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX;
export const PAGE_SHARED_EXEC = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED;
export const PAGE_COPY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX;
export const PAGE_COPY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
export const PAGE_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX;
export const PAGE_READONLY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
export const PAGE_KERNEL =
  _PAGE_PRESENT | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_NX | _PAGE_GLOBAL;

export function __pte(pfn: number, flags: number): pteval_t {
  return pfn * FLAGS_SPAN + (flags & 0xffff);
}
export function pte_flags(v: pteval_t): number {
  return v % FLAGS_SPAN;
}
export function pte_pfn(v: pteval_t): number {
  return Math.floor(v / FLAGS_SPAN);
}
export function pte_none(v: pteval_t): boolean {
  return v === 0;
}
export function pte_present(v: pteval_t): boolean {
  return (pte_flags(v) & (_PAGE_PRESENT | _PAGE_PROTNONE)) !== 0;
}
export function pte_protnone(v: pteval_t): boolean {
  return (pte_flags(v) & (_PAGE_PRESENT | _PAGE_PROTNONE)) === _PAGE_PROTNONE;
}
export function pte_write(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_RW) !== 0;
}
export function pte_dirty(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_DIRTY) !== 0;
}
export function pte_young(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_ACCESSED) !== 0;
}
export function pte_user(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_USER) !== 0;
}
export function pte_huge(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_PSE) !== 0;
}
export function pte_devmap(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_DEVMAP) !== 0;
}
export function pte_pgprot(v: pteval_t): pgprot_t {
  return pte_flags(v);
}
function setf(v: pteval_t, f: number): pteval_t {
  return __pte(pte_pfn(v), pte_flags(v) | f);
}
function clearf(v: pteval_t, f: number): pteval_t {
  return __pte(pte_pfn(v), pte_flags(v) & ~f);
}
export const pte_mkwrite = (v: pteval_t): pteval_t => setf(v, _PAGE_RW);
export const pte_wrprotect = (v: pteval_t): pteval_t => clearf(v, _PAGE_RW);
export const pte_mkdirty = (v: pteval_t): pteval_t => setf(v, _PAGE_DIRTY);
export const pte_mkclean = (v: pteval_t): pteval_t => clearf(v, _PAGE_DIRTY);
export const pte_mkyoung = (v: pteval_t): pteval_t => setf(v, _PAGE_ACCESSED);
export const pte_mkold = (v: pteval_t): pteval_t => clearf(v, _PAGE_ACCESSED);
export const pte_mkhuge = (v: pteval_t): pteval_t => setf(v, _PAGE_PSE);
export const pte_mkdevmap = (v: pteval_t): pteval_t => setf(v, _PAGE_DEVMAP | _PAGE_SPECIAL);
export const pfn_pte = (pfn: number, prot: pgprot_t): pteval_t => __pte(pfn, prot);

/** The hardware value of an entry, as a 16-digit hex string (for reports). */
export function native_pte_val(v: pteval_t): string {
  const f = pte_flags(v);
  let x = (BigInt(pte_pfn(v)) << 12n) | BigInt(f & 0xfff);
  if (f & _PAGE_NX) x |= 1n << 63n;
  if (f & _PAGE_DEVMAP) x |= 1n << 58n;
  if (f & _PAGE_PAT_LARGE) x |= 1n << 12n;
  return x.toString(16).padStart(16, '0');
}
