/**
 * Arch helpers whose behaviour depends on the arch profile: the special bit exists only
 * with CONFIG_ARCH_HAS_PTE_SPECIAL, huge special PMD/PUD leaves only with
 * CONFIG_ARCH_SUPPORTS_{PMD,PUD}_PFNMAP (v6.12+). Without the special bit,
 * pte_mkspecial() leaves the entry unchanged and pte_special() is always false, as in
 * include/linux/pgtable.h for such architectures.
 *
 * @kernel arch/x86/include/asm/pgtable.h:pte_special, pte_mkspecial, pmd_special,
 *   pud_special (all versions; pmd/pud special v6.12+)
 */
import { currentKernel } from '../../../../kernel/kernel.js';
import {
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  _PAGE_RW,
  __pte,
  pte_flags,
  pte_pfn,
  type pteval_t,
} from './pgtable_types.js';

function hasSpecial(): boolean {
  return currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL === true;
}

export function pte_special(v: pteval_t): boolean {
  return hasSpecial() && (pte_flags(v) & _PAGE_SPECIAL) !== 0;
}

export function pte_mkspecial(v: pteval_t): pteval_t {
  return hasSpecial() ? __pte(pte_pfn(v), pte_flags(v) | _PAGE_SPECIAL) : v;
}

export function pmd_special(v: pteval_t): boolean {
  return (
    currentKernel().config.CONFIG_ARCH_SUPPORTS_PMD_PFNMAP === true &&
    (pte_flags(v) & _PAGE_SPECIAL) !== 0
  );
}

export function pmd_mkspecial(v: pteval_t): pteval_t {
  return currentKernel().config.CONFIG_ARCH_SUPPORTS_PMD_PFNMAP === true
    ? __pte(pte_pfn(v), pte_flags(v) | _PAGE_SPECIAL)
    : v;
}

export function pud_special(v: pteval_t): boolean {
  return (
    currentKernel().config.CONFIG_ARCH_SUPPORTS_PUD_PFNMAP === true &&
    (pte_flags(v) & _PAGE_SPECIAL) !== 0
  );
}

export function pud_mkspecial(v: pteval_t): pteval_t {
  return currentKernel().config.CONFIG_ARCH_SUPPORTS_PUD_PFNMAP === true
    ? __pte(pte_pfn(v), pte_flags(v) | _PAGE_SPECIAL)
    : v;
}

/** pmd_none / pud_none / p4d_none / pgd_none: the entry is empty. */
export const pmd_none = (v: pteval_t): boolean => v === 0;
export const pud_none = pmd_none;
export const p4d_none = pmd_none;
export const pgd_none = pmd_none;

/** pmd_present: present, or PROT_NONE, or a huge entry under split (PSE). */
export function pmd_present(v: pteval_t): boolean {
  return (pte_flags(v) & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE)) !== 0;
}
export const pud_present = (v: pteval_t): boolean => (pte_flags(v) & _PAGE_PRESENT) !== 0;
export const p4d_present = pud_present;
export const pgd_present = pud_present;

/** pmd_leaf / pmd_trans_huge: a present huge entry (PSE). */
export function pmd_leaf(v: pteval_t): boolean {
  return (pte_flags(v) & (_PAGE_PRESENT | _PAGE_PSE)) === (_PAGE_PRESENT | _PAGE_PSE);
}
export const pud_leaf = pmd_leaf;
export const pmd_trans_huge = pmd_leaf;

/** pmd_bad: not a page-table pointer (a huge entry is "bad" from the table walker's view). */
export function pmd_bad(v: pteval_t): boolean {
  return v !== 0 && ((pte_flags(v) & _PAGE_PSE) !== 0 || (pte_flags(v) & _PAGE_PRESENT) === 0);
}
export const pud_bad = pmd_bad;
export const p4d_bad = (v: pteval_t): boolean => v !== 0 && (pte_flags(v) & _PAGE_PRESENT) === 0;
export const pgd_bad = p4d_bad;

export const pmd_pfn = pte_pfn;
export const pud_pfn = pte_pfn;
export const pmd_write = (v: pteval_t): boolean => (pte_flags(v) & _PAGE_RW) !== 0;
export const pud_write = pmd_write;
