/**
 * folio_walk (mm/pagewalk.c): look up the folio mapped at one address of a VMA and
 * return with the page-table lock of the entry held (R-FW-1).
 *
 * folio_walk_start/folio_walk_end appeared in v6.12 (aa39ca6940f1 "mm/pagewalk: introduce
 * folio_walk_start() + folio_walk_end()") in the same merge window as the pfnmap check
 * (10d83d7781a8 "mm/pagewalk: check pfnmap for folio_walk_start()", which made special
 * PUD leaves "not found"; special PMD leaves are refused by vm_normal_page_pmd(), which
 * the same huge-pfnmap series taught about pmd_special). No released kernel has the walk
 * without the check, so before v6.12 calling it is a model error (the callers it replaced
 * used follow_page() and other walkers).
 *
 * The v6.12 release also has "mm/pagewalk: fix usage of pmd_leaf()/pud_leaf() without
 * present check" (a fix of aa39ca6940f1 merged for v6.12-rc): non-present PMD/PUD entries
 * take the locked path, which is what the model does for all versions it allows.
 *
 * Left out: hugetlb VMAs (vma_pgtable_walk_begin/end are the hugetlb VMA lock, a no-op
 * here), pgd/p4d_none_or_clear_bad()'s clearing of a bad entry and its "bad pgd" report
 * (a bad entry is simply not found), PUD migration entries (the kernel has none either).
 *
 * @kernel mm/pagewalk.c:folio_walk_start, include/linux/pagewalk.h (v6.12+)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { VM_WARN_ON_ONCE, WARN_ON_ONCE } from '../kernel/panic.js';
import type {
  folio,
  page,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { page_folio, pfn_to_page } from '../include/linux/page-flags.js';
import {
  PAGE_SIZE,
  pte_devmap,
  pte_none,
  pte_pfn,
  pte_present,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  p4d_bad,
  p4d_none,
  pgd_bad,
  pgd_none,
  pmd_leaf,
  pmd_none,
  pmd_present,
  pud_leaf,
  pud_none,
  pud_present,
  pud_special,
} from '../arch/x86/include/asm/pgtable.js';
import {
  is_zero_pfn,
  p4d_offset,
  pgd_offset,
  pmd_lock,
  pmd_offset,
  pmdp_get,
  pmdp_get_lockless,
  ptep_get,
  ptep_get_lockless,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_lock,
  pud_offset,
  pudp_get,
  pudp_get_lockless,
} from '../include/linux/pgtable.js';
import { spin_unlock, type spinlock_t } from '../include/linux/spinlock.js';
import { mmap_assert_locked } from '../include/linux/mmap_lock.js';
import { vm_normal_page, vm_normal_page_pmd } from './memory.normal.js';
import { is_huge_zero_pmd } from './huge_memory.js';
import {
  is_migration_entry,
  is_pmd_migration_entry,
  pfn_swap_entry_to_page,
  pte_to_swp_entry,
} from '../include/linux/swapops.js';
import { since } from '../version.js';

/** folio_walk_flags_t: walk shared zeropages (small and huge) as well. */
export const FW_ZEROPAGE = 1 << 0;
/** folio_walk_flags_t: walk migration entries as well. */
export const FW_MIGRATION = 1 << 1;

/** enum folio_walk_level */
export const FW_LEVEL_PTE = 0;
export const FW_LEVEL_PMD = 1;
export const FW_LEVEL_PUD = 2;

const PMD_SIZE = 2 ** 21;
const PUD_SIZE = 2 ** 30;

/**
 * struct folio_walk: the result of folio_walk_start(). `page` is the mapped page at the
 * address (null for the shared zeropage and migration entries); level says which of
 * ptep/pte, pmdp/pmd, pudp/pud is set; ptl is the lock held until folio_walk_end().
 * @kernel include/linux/pagewalk.h:struct folio_walk (v6.12+)
 */
export interface folio_walk {
  page: page | null;
  level: number;
  ptep: pte_t_ptr | null;
  pte: pteval_t;
  pmdp: pmd_t_ptr | null;
  pmd: pteval_t;
  pudp: pud_t_ptr | null;
  pud: pteval_t;
  ptl: spinlock_t | null;
  /** model: the VMA of the walk, for folio_walk_end */
  vma?: vm_area_struct;
}

/** `struct folio_walk fw;` (fields unset until folio_walk_start fills them). */
export function folio_walk_init(): folio_walk {
  return {
    page: null,
    level: FW_LEVEL_PTE,
    ptep: null,
    pte: 0,
    pmdp: null,
    pmd: 0,
    pudp: null,
    pud: 0,
    ptl: null,
  };
}

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/**
 * folio_walk_start(fw, vma, addr, flags): the folio mapped at addr, with the entry's
 * page-table lock held (R-FW-1):
 * - mmap_assert_locked; addr outside the VMA is WARN_ON_ONCE and NULL;
 * - pgd/p4d none or bad: NULL;
 * - PUD none: NULL; not present or a leaf: under the PUD lock, re-read: not present or
 *   special (a pfnmap leaf, 10d83d7781a8) or devmap (up to v6.16): NULL; a table after
 *   all: continue at the PMD; else the leaf's page;
 * - PMD none: NULL; not present or a leaf: under the PMD lock, re-read: none NULL, a
 *   table continue at the PTE; present: vm_normal_page_pmd() (NULL for special/pfnmap
 *   leaves), else with FW_ZEROPAGE the huge zero folio (page not exposed); a PMD
 *   migration entry with FW_MIGRATION (page not exposed); anything else NULL;
 * - PTE: map+lock failure NULL; present: vm_normal_page() (NULL for pfnmap and special
 *   entries), else with FW_ZEROPAGE the zero page (not exposed); a migration entry with
 *   FW_MIGRATION (not exposed); else NULL.
 * On success fw->page is the page at addr within the entry (exposed) or NULL.
 * @kernel mm/pagewalk.c:folio_walk_start (v6.12+, aa39ca6940f1; pfnmap check
 *   10d83d7781a8; pud_devmap dropped with the devmap removal, v6.17)
 * Locking: mmap_lock held (read is enough); returns with fw->ptl held on success.
 * Return: the folio, or null.
 */
export function* folio_walk_start(
  fw: folio_walk,
  vma: vm_area_struct,
  addr: number,
  flags: number,
): Op<folio | null> {
  if (!since(6, 12))
    absent('folio_walk_start()', 'added by aa39ca6940f1 with its pfnmap check 10d83d7781a8, v6.12');
  const mm = vma.vm_mm;
  let entry_size: number;
  let expose_page = true;
  let p: page;
  let ptl: spinlock_t;

  mmap_assert_locked(mm);
  /* vma_pgtable_walk_begin(vma): hugetlb only */

  if (WARN_ON_ONCE(addr < vma.vm_start || addr >= vma.vm_end, 'mm/pagewalk.c:folio_walk_start'))
    return null;

  const pgdp = pgd_offset(mm, addr);
  const pgd = yield* ptep_get_lockless(pgdp, 'pgdp_get');
  if (pgd_none(pgd) || pgd_bad(pgd)) return null;

  const p4dp = p4d_offset(pgdp, addr);
  const p4d = yield* ptep_get_lockless(p4dp, 'p4dp_get');
  if (p4d_none(p4d) || p4d_bad(p4d)) return null;

  found: {
    const pudp = pud_offset(p4dp, addr);
    /* pudp_get() without the lock: a lockless read */
    let pud = yield* pudp_get_lockless(pudp);
    if (pud_none(pud)) return null;
    /* CONFIG_PGTABLE_HAS_HUGE_LEAVES: x86 with THP */
    pmd_table: {
      if (!pud_present(pud) || pud_leaf(pud)) {
        ptl = yield* pud_lock(mm, pudp);
        pud = pudp_get(pudp);

        entry_size = PUD_SIZE;
        fw.level = FW_LEVEL_PUD;
        fw.pudp = pudp;
        fw.pud = pud;

        /* TODO in the kernel: FW_MIGRATION support for PUD migration entries */
        if (!pud_present(pud) || (!since(6, 17) && pte_devmap(pud)) || pud_special(pud)) {
          yield* spin_unlock(ptl);
          return null;
        } else if (!pud_leaf(pud)) {
          yield* spin_unlock(ptl);
          break pmd_table;
        }
        p = pfn_to_page(pte_pfn(pud));
        break found;
      }
    }

    VM_WARN_ON_ONCE(!pud_present(pud) || pud_leaf(pud));
    const pmdp = pmd_offset(pudp, addr);
    let pmd = yield* pmdp_get_lockless(pmdp);
    if (pmd_none(pmd)) return null;
    pte_table: {
      if (!pmd_present(pmd) || pmd_leaf(pmd)) {
        ptl = yield* pmd_lock(mm, pmdp);
        pmd = pmdp_get(pmdp);

        entry_size = PMD_SIZE;
        fw.level = FW_LEVEL_PMD;
        fw.pmdp = pmdp;
        fw.pmd = pmd;

        if (pmd_none(pmd)) {
          yield* spin_unlock(ptl);
          return null;
        } else if (pmd_present(pmd) && !pmd_leaf(pmd)) {
          yield* spin_unlock(ptl);
          break pte_table;
        } else if (pmd_present(pmd)) {
          const np = vm_normal_page_pmd(vma, addr, pmd);
          if (np !== null) {
            p = np;
            break found;
          } else if (flags & FW_ZEROPAGE && is_huge_zero_pmd(pmd)) {
            p = pfn_to_page(pte_pfn(pmd));
            expose_page = false;
            break found;
          }
        } else if (flags & FW_MIGRATION && is_pmd_migration_entry(pmd)) {
          p = pfn_swap_entry_to_page(pte_to_swp_entry(pmd));
          expose_page = false;
          break found;
        }
        yield* spin_unlock(ptl);
        return null;
      }
    }

    VM_WARN_ON_ONCE(!pmd_present(pmd) || pmd_leaf(pmd));
    const r = yield* pte_offset_map_lock(mm, pmdp, addr);
    if (!r) return null;
    const [ptep, l] = r;
    ptl = l;
    const pte = ptep_get(ptep);

    entry_size = PAGE_SIZE;
    fw.level = FW_LEVEL_PTE;
    fw.ptep = ptep;
    fw.pte = pte;

    if (pte_present(pte)) {
      const np = vm_normal_page(vma, addr, pte);
      if (np !== null) {
        p = np;
        break found;
      }
      if (flags & FW_ZEROPAGE && is_zero_pfn(pte_pfn(pte))) {
        p = pfn_to_page(pte_pfn(pte));
        expose_page = false;
        break found;
      }
    } else if (!pte_none(pte)) {
      const entry = pte_to_swp_entry(pte);
      if (flags & FW_MIGRATION && is_migration_entry(entry)) {
        p = pfn_swap_entry_to_page(entry);
        expose_page = false;
        break found;
      }
    }
    yield* pte_unmap_unlock(ptep, ptl);
    /* not_found: vma_pgtable_walk_end(vma) */
    return null;
  }
  /* found: */
  if (expose_page)
    /* Note: Offset from the mapped page, not the folio start. */
    fw.page = ((p as number) + Math.floor((addr % entry_size) / PAGE_SIZE)) as page;
  else fw.page = null;
  fw.ptl = ptl;
  fw.vma = vma;
  return page_folio(p);
}

/**
 * folio_walk_end(fw, vma): drops the lock folio_walk_start() returned with (and unmaps
 * the PTE table for a PTE-level walk).
 * @kernel include/linux/pagewalk.h:folio_walk_end (v6.12+)
 * Locking: releases fw->ptl.
 */
export function* folio_walk_end(fw: folio_walk, vma: vm_area_struct): Op<void> {
  if (!since(6, 12)) absent('folio_walk_end()', 'added by aa39ca6940f1, v6.12');
  void vma; /* vma_pgtable_walk_end(vma): hugetlb only */
  yield* spin_unlock(fw.ptl!);
  /* pte_unmap(fw->ptep) for FW_LEVEL_PTE: nothing without CONFIG_HIGHPTE */
}
