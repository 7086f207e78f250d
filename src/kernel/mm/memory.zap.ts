/**
 * Tearing down user mappings: the zap walkers (unmap_page_range down to zap_pte_range),
 * the entry points that use them (unmap_vmas for munmap and exit, zap_page_range_single
 * for MADV_DONTNEED, zap_vma_ptes and unmap_mapping_range for revocation), a reduced
 * struct mmu_gather, and the freeing of page tables (free_pgtables / free_pgd_range).
 *
 * What a zap does to a present entry (R-VNP-6, R-REV-1):
 * - vm_normal_page() NULL (pfnmap, special mixedmap entries, the zero page): the entry is
 *   cleared; no refcount, mapcount or RSS change.
 * - a normal page: one mapping less (folio_remove_rmap_ptes), RSS less one, a dirty
 *   entry of a page-cache folio dirties the folio; the reference the mapping held is
 *   dropped through the gather after the TLB flush, so a page whose last mapping went
 *   is freed at tlb_finish_mmu, after mmu_notifier_invalidate_range_end.
 * - zap_details: callers that keep private COWed pages (unmap_mapping_range with
 *   even_cows = 0) skip anonymous folios: `check_mapping` before v5.18, `even_cows`
 *   after (Peter Xu's "mm: Rework zap ptes on swap entries" series, 5abfd71d936a and
 *   following).
 *
 * MMU notifiers (R-MMUN-2): unmap_vmas fires MMU_NOTIFY_UNMAP around the whole range,
 * zap_page_range_single MMU_NOTIFY_CLEAR; start precedes the first clear, end follows the
 * last, and the gathered pages are freed after end. Exception in the model: a THP PMD
 * leaf is zapped by huge_memory.anon.ts's zap_huge_pmd, which drops the folio reference
 * at once instead of gathering it (the kernel gathers it with tlb_remove_page_size).
 *
 * Migration entries (zap_nonpresent_ptes, zap_huge_pmd): the entry is cleared and the RSS
 * of the folio it names drops; nothing else changes: try_to_migrate already removed the
 * mapping and its reference, and remove_migration_ptes later finds no entry to restore.
 * Before v5.18 a zap with zap_details (unmap_mapping_range) leaves them in place.
 *
 * Left out: swap and device entries (the model creates none: any non-present PTE that is
 * not a migration entry is reported as an unrecognized swap entry and cleared, in every
 * version; before v5.18 the kernel cleared other non-swap entries silently and accounted
 * swap entries in MM_SWAPENTS), the batching of swap entries (swap_pte_batch), userfaultfd-wp
 * markers (ZAP_FLAG_DROP_MARKER is set where the kernel sets it and has no effect),
 * uprobes (hugetlb VMAs: mm/hugetlb.ts), folio_mark_accessed/LRU aging, the batching of PTE-mapped large
 * folios (folio_pte_batch, v6.9+: entries are zapped one at a time, which ends in the
 * same state), the gather's batch limit (its forced mid-walk flush), CONFIG_PT_RECLAIM
 * (v6.14+ freeing of empty PTE tables by MADV_DONTNEED), DAX (vma_is_dax is false).
 *
 * @kernel mm/memory.c (v5.7+), include/asm-generic/tlb.h, mm/mmu_gather.c
 */
import type { Op } from '../../sched/index.js';
import type {
  address_space,
  entry_ptr,
  folio,
  mm_struct,
  page,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { MM_ANONPAGES } from '../include/linux/mm_types.js';
import { VM_PFNMAP, add_mm_counter, mm_counter, vma_pages } from '../include/linux/mm.js';
import {
  folio_index,
  folio_mapcount,
  folio_nr_pages,
  folio_test_anon,
  folio_test_large,
  folio_test_locked,
  folio_raw_mapping,
  page_folio,
} from '../include/linux/page-flags.js';
import { folio_put_refs } from '../include/linux/page_ref.js';
import {
  is_migration_entry,
  is_swap_pmd,
  pfn_swap_entry_folio,
  pte_to_swp_entry,
  swp_entry_to_pte,
} from '../include/linux/swapops.js';
import {
  depopulate,
  entry_table,
  pagetable_free,
  pgd_offset,
  p4d_offset,
  pud_offset,
  pmd_offset,
  pte_offset_map_lock,
  pte_unmap_unlock,
  ptep_get,
  ptep_get_and_clear,
  pmdp_get_lockless,
  pudp_get_lockless,
  pmd_lock,
  pud_lock,
  pmdp_huge_get_and_clear,
  pmd_index,
  pud_index,
  type ptdesc,
} from '../include/linux/pgtable.js';
import {
  pgd_bad,
  pgd_none,
  pmd_bad,
  pmd_leaf,
  pmd_none,
  pud_bad,
  pud_leaf,
  pud_none,
} from '../arch/x86/include/asm/pgtable.js';
import {
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PGDIR_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  native_pte_val,
  pte_devmap,
  pte_dirty,
  pte_none,
  pte_present,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { spin_unlock } from '../include/linux/spinlock.js';
import { down_read, up_read, down_write, up_write } from '../include/linux/spinlock.js';
import { BUG_ON, VM_BUG_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { pr_alert, pr_err } from '../kernel/printk.js';
import { since } from '../version.js';
import {
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_UNMAP,
  mmu_notifier_arch_invalidate_secondary_tlbs,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
} from './mmu_notifier.js';
import { folio_remove_rmap_ptes } from './rmap.js';
import { unlink_anon_vma } from './vma.js';
import { unlink_file_vma } from './mmap.js';
import { print_bad_pte, vm_normal_page } from './memory.normal.js';
import {
  __split_huge_pud,
  split_huge_pmd,
  vma_is_special_huge,
  zap_huge_pmd as zap_huge_pmd_anon,
} from './huge_memory.anon.js';
import { folio_mark_dirty } from './filemap.js';
import { untrack_pfn } from '../arch/x86/mm/pat/memtype.js';
import { __unmap_hugepage_range_final, is_vm_hugetlb_page } from './hugetlb.js';
import { pfnsan_special_unmap, pfnsan_special_unmap_huge } from './pfnsan/pfnsan.js';

/** ULONG_MAX, as the kernel passes it for "to the end of the address space". */
export const ULONG_MAX = 2 ** 64 - 1;
/** FIRST_USER_ADDRESS (x86: 0) and USER_PGTABLES_CEILING (0 = the top). */
export const FIRST_USER_ADDRESS = 0;
export const USER_PGTABLES_CEILING = 0;
/** HPAGE_PMD_SIZE / HPAGE_PUD_SIZE */
export const HPAGE_PMD_SIZE = PMD_SIZE;
export const HPAGE_PUD_SIZE = PUD_SIZE;
const NR_MM_COUNTERS = 4;

/**
 * ZAP_FLAG_* (include/linux/mm.h): userfaultfd-wp markers and hugetlb; set where the
 * kernel sets them, no effect in the model (no uffd-wp, no hugetlb).
 */
export const ZAP_FLAG_DROP_MARKER = 1 << 0;
export const ZAP_FLAG_UNMAP = 1 << 1;

/**
 * struct zap_details: what a zap may skip.
 * @kernel include/linux/mm.h:struct zap_details (check_mapping through v5.17; even_cows,
 *   single_folio and zap_flags v5.18+)
 */
export interface zap_details {
  /** ≤ v5.17: only zap pages whose mapping is this one (private COWed pages are kept). */
  check_mapping?: address_space | null;
  /** v5.18+: also zap private COWed (anonymous) pages. */
  even_cows?: boolean;
  /** unmap_mapping_folio: the locked folio being unmapped (single_page before v5.18). */
  single_folio?: folio | null;
  zap_flags?: number;
}

/** One gathered page: `nr` PTE mappings of the folio of `page` whose references to drop. */
interface gathered_page {
  readonly page: page;
  readonly nr: number;
  /** v6.3+: the rmap is removed after the TLB flush (dirty page-cache folios). */
  delay_rmap: boolean;
}

/**
 * struct mmu_gather, reduced: the range to flush, the pages whose mapping references
 * are dropped after the flush, and the page-table pages freed after it.
 * @kernel include/asm-generic/tlb.h:struct mmu_gather (all versions)
 */
export interface mmu_gather {
  readonly mm: mm_struct;
  /** The whole address space is going away (exit_mmap). */
  readonly fullmm: boolean;
  /** The range whose TLB entries must be flushed (start >= end: nothing). */
  start: number;
  end: number;
  freed_tables: boolean;
  /** v6.3+: some gathered pages still hold their rmap (tlb_flush_rmaps pending). */
  delayed_rmap: boolean;
  readonly pages: gathered_page[];
  readonly tables: ptdesc[];
}

function __tlb_reset_range(tlb: mmu_gather): void {
  tlb.start = tlb.fullmm ? 0 : Infinity;
  tlb.end = tlb.fullmm ? ULONG_MAX : 0;
  tlb.freed_tables = false;
}

/**
 * tlb_gather_mmu(tlb, mm): starts a gather for a range of mm.
 * @kernel mm/mmu_gather.c:tlb_gather_mmu (v5.11+ signature; tlb_gather_mmu(tlb, mm,
 *   start, end) before, same effect)
 * Locking: none taken.
 * Return: the gather.
 */
export function tlb_gather_mmu(mm: mm_struct): mmu_gather {
  const tlb: mmu_gather = {
    mm,
    fullmm: false,
    start: 0,
    end: 0,
    freed_tables: false,
    delayed_rmap: false,
    pages: [],
    tables: [],
  };
  __tlb_reset_range(tlb);
  return tlb;
}

/**
 * tlb_gather_mmu_fullmm(tlb, mm): a gather for the teardown of the whole mm.
 * @kernel mm/mmu_gather.c:tlb_gather_mmu_fullmm (v5.11+; fullmm from start=0, end=-1
 *   before)
 * Locking: none taken.
 * Return: the gather.
 */
export function tlb_gather_mmu_fullmm(mm: mm_struct): mmu_gather {
  const tlb: mmu_gather = {
    mm,
    fullmm: true,
    start: 0,
    end: 0,
    freed_tables: false,
    delayed_rmap: false,
    pages: [],
    tables: [],
  };
  __tlb_reset_range(tlb);
  return tlb;
}

/** __tlb_adjust_range(tlb, address, range_size) */
function __tlb_adjust_range(tlb: mmu_gather, address: number, size: number): void {
  tlb.start = Math.min(tlb.start, address);
  tlb.end = Math.max(tlb.end, address + size);
}

/** tlb_remove_tlb_entry(tlb, ptep, address): the entry's TLB entry must be flushed. */
function tlb_remove_tlb_entry(tlb: mmu_gather, address: number, size = PAGE_SIZE): void {
  __tlb_adjust_range(tlb, address, size);
}

/**
 * __tlb_remove_folio_pages(tlb, page, nr_pages, delay_rmap): the mapping references of
 * nr pages are dropped after the flush.
 * @kernel mm/mmu_gather.c:__tlb_remove_folio_pages (v6.9+; __tlb_remove_page_size before)
 * Return: false (the batch never fills in the model).
 */
function __tlb_remove_folio_pages(
  tlb: mmu_gather,
  p: page,
  nr: number,
  delay_rmap: boolean,
): boolean {
  tlb.pages.push({ page: p, nr, delay_rmap });
  if (delay_rmap) tlb.delayed_rmap = true;
  return false;
}

/**
 * tlb_remove_page_size(tlb, page, page_size): the mapping's reference to the folio of
 * page (a hugetlb folio, mapped whole) is dropped after the flush.
 * @kernel include/asm-generic/tlb.h:tlb_remove_page_size (all versions)
 * Return: nothing (the batch never fills in the model).
 */
export function tlb_remove_page_size(tlb: mmu_gather, p: page, _page_size: number): void {
  __tlb_remove_folio_pages(tlb, p, 1, false);
}

/**
 * pte_free_tlb / pmd_free_tlb / pud_free_tlb: a page-table page is freed after the flush.
 * @kernel include/asm-generic/tlb.h:pte_free_tlb, pmd_free_tlb, pud_free_tlb (all versions)
 */
function pgtable_free_tlb(tlb: mmu_gather, t: ptdesc, address: number): void {
  tlb.freed_tables = true;
  __tlb_adjust_range(tlb, address, PAGE_SIZE);
  tlb.tables.push(t);
}

/**
 * tlb_flush_mmu_tlbonly(tlb): flushes the gathered range from the TLBs (a scheduling
 * point when there is anything to flush: until it, other CPUs may still use the old
 * translations), then, from v6.6, the secondary TLBs (x86 flush_tlb_mm_range ends with
 * mmu_notifier_arch_invalidate_secondary_tlbs).
 * @kernel include/asm-generic/tlb.h:tlb_flush_mmu_tlbonly,
 *   arch/x86/mm/tlb.c:flush_tlb_mm_range (all versions; the secondary TLBs v6.6+)
 * Locking: may be called under the PTL.
 */
export function* tlb_flush_mmu_tlbonly(tlb: mmu_gather): Op<void> {
  if (!(tlb.end > tlb.start || tlb.freed_tables)) return;
  yield { obj: `mm${tlb.mm.id}.tlb`, kind: 'write', what: 'tlb_flush_mmu_tlbonly' };
  yield* mmu_notifier_arch_invalidate_secondary_tlbs(tlb.mm, tlb.start, tlb.end);
  __tlb_reset_range(tlb);
}

/**
 * tlb_flush_rmaps(tlb, vma): removes the rmap of the pages whose removal was delayed
 * until the TLB flush (dirty page-cache folios, v6.3+).
 * @kernel mm/mmu_gather.c:tlb_flush_rmaps (v6.3+, 5df397dec7c4 "mm: delay
 *   page_remove_rmap() until after the TLB has been flushed")
 * Locking: the PTL of the entries, held.
 */
export function tlb_flush_rmaps(tlb: mmu_gather, vma: vm_area_struct): void {
  if (!tlb.delayed_rmap) return;
  for (const g of tlb.pages) {
    if (!g.delay_rmap) continue;
    folio_remove_rmap_ptes(page_folio(g.page), g.page, g.nr, vma);
    g.delay_rmap = false;
  }
  tlb.delayed_rmap = false;
}

/**
 * tlb_flush_mmu(tlb): flushes the TLB, then frees the gathered page tables and drops the
 * gathered pages' references (a page whose last reference this was is freed).
 * @kernel mm/mmu_gather.c:tlb_flush_mmu, tlb_flush_mmu_free, tlb_batch_pages_flush,
 *   tlb_table_flush (all versions)
 * Locking: none required.
 */
export function* tlb_flush_mmu(tlb: mmu_gather): Op<void> {
  yield* tlb_flush_mmu_tlbonly(tlb);
  // tlb_table_flush(): the page-table pages.
  for (const t of tlb.tables.splice(0)) pagetable_free(tlb.mm, t);
  // tlb_batch_pages_flush() -> free_pages_and_swap_cache() -> folios_put_refs().
  for (const g of tlb.pages.splice(0)) {
    VM_BUG_ON(g.delay_rmap, 'tlb_batch_pages_flush: delayed rmap not flushed');
    folio_put_refs(page_folio(g.page), g.nr);
  }
}

/**
 * tlb_finish_mmu(tlb): the final flush of a gather; every gathered page and table is
 * released here.
 * @kernel mm/mmu_gather.c:tlb_finish_mmu (all versions)
 * Locking: none required.
 * Left out: the nested-flush (mm_tlb_flush_nested) widening.
 */
export function* tlb_finish_mmu(tlb: mmu_gather): Op<void> {
  yield* tlb_flush_mmu(tlb);
}

/** {pgd,pud,pmd}_addr_end(addr, end): the end of the entry's span, capped at end. */
export function addr_end(addr: number, end: number, size: number): number {
  const boundary = (Math.floor(addr / size) + 1) * size;
  return boundary - 1 < end - 1 ? boundary : end;
}

/** is_swap_pmd || pmd_trans_huge || pmd_devmap: the zap walkers' huge-entry test. */
function pmd_is_huge(v: pteval_t): boolean {
  return is_swap_pmd(v) || pmd_leaf(v) || (pte_devmap(v) && !pmd_none(v));
}

/**
 * pmd_none_or_clear_bad / pud_ / pgd_: true for an empty entry, and for a corrupt one,
 * which is reported ("bad pmd") and cleared.
 * @kernel include/linux/pgtable.h:pmd_none_or_clear_bad, pud_none_or_clear_bad,
 *   pgd_none_or_clear_bad; mm/pgtable-generic.c:pmd_clear_bad (all versions)
 */
function* none_or_clear_bad(
  p: entry_ptr,
  level: 'pgd' | 'pud' | 'pmd',
  mm: mm_struct,
  addr: number,
): Op<boolean> {
  const v = ptep_get(p);
  const none = level === 'pmd' ? pmd_none(v) : level === 'pud' ? pud_none(v) : pgd_none(v);
  if (none) return true;
  const bad = level === 'pmd' ? pmd_bad(v) : level === 'pud' ? pud_bad(v) : pgd_bad(v);
  if (!bad) return false;
  pr_err(`mm/pgtable-generic.c: bad ${level} ${native_pte_val(v)}`);
  yield* pmdp_huge_get_and_clear(mm, addr, p);
  return true;
}

/**
 * should_zap_cows(details): whether private COWed pages are zapped too.
 * @kernel mm/memory.c:should_zap_cows (v5.18+; !details->check_mapping before)
 */
export function should_zap_cows(details: zap_details | null): boolean {
  if (!details) return true;
  if (since(5, 18)) return details.even_cows === true;
  return !details.check_mapping;
}

/**
 * should_zap_folio(details, folio): whether this present page is zapped. v5.18+: COWed
 * pages only if even_cows, i.e. anonymous folios are kept otherwise. Before: the page's
 * mapping must be details->check_mapping (anonymous pages have an anon_vma there).
 * @kernel mm/memory.c:should_zap_folio (v6.x; should_zap_page v5.18; the check_mapping
 *   test inline in zap_pte_range before)
 */
export function should_zap_folio(details: zap_details | null, f: folio): boolean {
  if (since(5, 18)) {
    if (should_zap_cows(details)) return true;
    return !folio_test_anon(f);
  }
  if (!details || !details.check_mapping) return true;
  return details.check_mapping === folio_raw_mapping(f);
}

/**
 * zap_present_folio_ptes: clears one PTE mapping a normal page and accounts it: dirty
 * page-cache folios are marked dirty (and, v6.3+, their rmap removal waits for the TLB
 * flush), RSS drops, the mapping goes, the reference is gathered.
 * @kernel mm/memory.c:zap_present_folio_ptes (v6.9+; inline in zap_pte_range before)
 * Locking: the PTE table's lock held.
 * Return: whether the walk must flush before dropping the PTL.
 */
function* zap_present_folio_pte(
  tlb: mmu_gather,
  vma: vm_area_struct,
  f: folio,
  p: page,
  ptep: pte_t_ptr,
  addr: number,
  rss: number[],
): Op<boolean> {
  const mm = tlb.mm;
  let force_flush = false;
  let delay_rmap = false;
  // ptep_get_and_clear_full (anon: clear_full_ptes; the value is the same).
  const ptent = yield* ptep_get_and_clear(mm, addr, ptep, 'ptep_get_and_clear_full');
  if (!folio_test_anon(f)) {
    if (pte_dirty(ptent)) {
      yield* folio_mark_dirty(f);
      // v6.3+: tlb_delay_rmap() is true on SMP x86.
      if (since(6, 3)) delay_rmap = true;
      force_flush = true;
    }
    rss[mm_counter(f)]!--;
  } else {
    rss[MM_ANONPAGES]!--;
  }
  tlb_remove_tlb_entry(tlb, addr);
  if (!delay_rmap) {
    folio_remove_rmap_ptes(f, p, 1, vma);
    if (folio_mapcount(f) < 0) print_bad_pte(vma, addr, ptent, p);
  }
  __tlb_remove_folio_pages(tlb, p, 1, delay_rmap);
  return force_flush;
}

/**
 * zap_nonpresent_ptes(tlb, vma, pte, ptent, max_nr, addr, details, rss, ...): zaps one
 * non-present PTE. A migration entry is cleared and the RSS counter of the folio it names
 * (mm_counter) drops by one, with no rmap change and no folio_put: try_to_migrate
 * already dropped the mapping's reference, and the migration holds its own. v5.18+
 * (Peter Xu, "mm: Don't skip swap entry even if zap_details specified"): skipped when
 * should_zap_folio() keeps the folio; before, a zap with any zap_details
 * (unmap_mapping_range) kept every non-device swap entry ("If details->check_mapping, we
 * leave swap entries"). Anything else is an unrecognized swap entry (see the file
 * comment): reported, WARN_ON_ONCE, cleared.
 * @kernel mm/memory.c:zap_nonpresent_ptes (v6.14+, "mm: introduce zap_nonpresent_ptes()";
 *   inline in zap_pte_range before; migration_entry_to_page before v5.14,
 *   pfn_swap_entry_to_page v5.14-v6.8, pfn_swap_entry_folio v6.9+)
 * Locking: the PTE table's lock held.
 * Return: nothing (the model zaps one entry per call).
 */
function* zap_nonpresent_ptes(
  tlb: mmu_gather,
  _vma: vm_area_struct,
  ptep: pte_t_ptr,
  ptent: pteval_t,
  addr: number,
  details: zap_details | null,
  rss: number[],
): Op<void> {
  const entry = pte_to_swp_entry(ptent);
  if (!since(5, 18) && details) {
    // If details->check_mapping, we leave swap entries (device-private ones are not modelled).
    return;
  }
  if (is_migration_entry(entry)) {
    const f = pfn_swap_entry_folio(entry);
    if (since(5, 18) && !should_zap_folio(details, f)) return;
    rss[mm_counter(f)]!--;
  } else {
    // We should have covered all the swap entry types.
    pr_alert(`unrecognized swap entry 0x${native_pte_val(swp_entry_to_pte(entry))}`);
    WARN_ON_ONCE(true);
  }
  yield* ptep_get_and_clear(tlb.mm, addr, ptep, 'pte_clear_not_present_full');
}

/**
 * zap_pte_range(tlb, vma, pmd, addr, end, details): zaps the PTEs of one table under
 * its lock: entries vm_normal_page() rejects are only cleared (R-VNP-6); normal pages
 * are unmapped and their references gathered; pages should_zap_folio() keeps stay;
 * non-present entries go to zap_nonpresent_ptes.
 * @kernel mm/memory.c:zap_pte_range, zap_present_ptes (v5.7+)
 * Locking: mmap_lock held (read is enough); takes and releases the PTE table's lock.
 * Return: the address reached (addr when the table went away before the lock was taken).
 */
function* zap_pte_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
  end: number,
  details: zap_details | null,
): Op<number> {
  const mm = tlb.mm;
  let force_flush = false;
  const rss = new Array<number>(NR_MM_COUNTERS).fill(0);
  const r = yield* pte_offset_map_lock(mm, pmdp, addr);
  if (!r) return addr;
  const [start_pte, ptl] = r;
  let i = start_pte.i;
  do {
    const ptep: pte_t_ptr = { t: start_pte.t, i };
    const ptent = ptep_get(ptep);
    if (pte_none(ptent)) continue;
    if (pte_present(ptent)) {
      const p = vm_normal_page(vma, addr, ptent);
      if (!p) {
        // R-VNP-6: pfnmap / special / zero-page entries are only cleared.
        yield* ptep_get_and_clear(mm, addr, ptep, 'ptep_get_and_clear_full');
        pfnsan_special_unmap(mm, addr);
        tlb_remove_tlb_entry(tlb, addr);
        continue;
      }
      const f = page_folio(p);
      if (!should_zap_folio(details, f)) continue;
      if (yield* zap_present_folio_pte(tlb, vma, f, p, ptep, addr, rss)) force_flush = true;
      continue;
    }
    yield* zap_nonpresent_ptes(tlb, vma, ptep, ptent, addr, details, rss);
  } while (((addr += PAGE_SIZE), i++, addr !== end));

  for (let m = 0; m < NR_MM_COUNTERS; m++) if (rss[m]) add_mm_counter(mm, m, rss[m]!);

  // Do the actual TLB flush before dropping ptl.
  if (force_flush) {
    yield* tlb_flush_mmu_tlbonly(tlb);
    tlb_flush_rmaps(tlb, vma);
  }
  yield* pte_unmap_unlock(start_pte, ptl);
  // A forced flush frees the batched memory too.
  if (force_flush) yield* tlb_flush_mmu(tlb);
  return addr;
}

/**
 * zap_huge_pmd for special VMAs: a pfnmap/mixedmap PMD leaf is cleared under the PMD
 * lock with no refcount, mapcount or RSS change (R-VNP-6 at PMD level).
 * @kernel mm/huge_memory.c:zap_huge_pmd (the vma_is_special_huge branch, v5.8+)
 * Locking: takes and releases the PMD lock.
 * Return: 1 when the leaf was zapped, 0 when it was no longer a huge entry.
 */
function* zap_huge_pmd_special(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
): Op<number> {
  // __pmd_trans_huge_lock()
  const ptl = yield* pmd_lock(vma.vm_mm, pmdp);
  if (!pmd_is_huge(ptep_get(pmdp))) {
    yield* spin_unlock(ptl);
    return 0;
  }
  yield* pmdp_huge_get_and_clear(tlb.mm, addr, pmdp);
  pfnsan_special_unmap_huge(tlb.mm, addr, HPAGE_PMD_SIZE);
  tlb_remove_tlb_entry(tlb, addr, HPAGE_PMD_SIZE);
  // vma_is_special_huge(): no deposited table on x86, nothing to account.
  yield* spin_unlock(ptl);
  return 1;
}

/**
 * zap_huge_pmd(tlb, vma, pmd, addr): zaps a PMD leaf covering the whole range. Model
 * glue: special VMAs go to zap_huge_pmd_special here, THPs (and the huge zero page) to
 * huge_memory.anon.ts, which models the rest of mm/huge_memory.c:zap_huge_pmd.
 * Locking: takes and releases the PMD lock.
 * Return: 1 when zapped, 0 when the entry changed under us (the caller falls through).
 */
function* zap_huge_pmd(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
): Op<number> {
  if (vma_is_special_huge(vma)) return yield* zap_huge_pmd_special(tlb, vma, pmdp, addr);
  return (yield* zap_huge_pmd_anon(tlb, vma, pmdp, addr)) ? 1 : 0;
}

/**
 * zap_pmd_range(tlb, vma, pud, addr, end, details): PMD leaves covering the whole span
 * are zapped whole, partly covered ones are split first; PTE tables go to zap_pte_range.
 * @kernel mm/memory.c:zap_pmd_range (v5.7+; the retry on a vanished PTE table v6.5+)
 * Locking: mmap_lock held.
 * Return: end.
 */
function* zap_pmd_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  details: zap_details | null,
): Op<number> {
  const t = pmd_offset(pudp, addr).t;
  do {
    const pmdp: pmd_t_ptr = { t, i: pmd_index(addr) };
    const next = addr_end(addr, end, PMD_SIZE);
    const v = yield* pmdp_get_lockless(pmdp);
    if (pmd_is_huge(v)) {
      if (next - addr !== HPAGE_PMD_SIZE) {
        yield* split_huge_pmd(vma, pmdp, addr);
      } else if (yield* zap_huge_pmd(tlb, vma, pmdp, addr)) {
        addr = next;
        continue;
      }
      // fall through
    } else if (
      details?.single_folio &&
      folio_test_large(details.single_folio) &&
      folio_nr_pages(details.single_folio) >= HPAGE_PMD_NR &&
      next - addr === HPAGE_PMD_SIZE &&
      pmd_none(v)
    ) {
      // Take and drop the THP pmd lock so that we cannot return while zap_huge_pmd()
      // has cleared the pmd but not yet dropped the mapcount.
      const ptl = yield* pmd_lock(tlb.mm, pmdp);
      yield* spin_unlock(ptl);
    }
    if (!since(6, 5)) {
      // pmd_none_or_trans_huge_or_clear_bad(): a racing THP or an empty pmd is skipped.
      if (pmd_is_huge(ptep_get(pmdp)) || (yield* none_or_clear_bad(pmdp, 'pmd', tlb.mm, addr))) {
        addr = next;
        continue;
      }
      yield* zap_pte_range(tlb, vma, pmdp, addr, next, details);
      addr = next;
      continue;
    }
    if (pmd_none(ptep_get(pmdp))) {
      addr = next;
      continue;
    }
    // v6.5+: a PTE table that vanished (or became a leaf) before its lock was taken makes
    // zap_pte_range return addr, and this pmd is walked again.
    addr = yield* zap_pte_range(tlb, vma, pmdp, addr, next, details);
  } while (addr !== end);
  return addr;
}

/**
 * zap_huge_pud for special VMAs: a pfnmap PUD leaf is cleared under the PUD lock with no
 * accounting. Anonymous PUD pages do not exist (the kernel BUG()s).
 * @kernel mm/huge_memory.c:zap_huge_pud (v5.7+ DAX; pfnmap leaves v6.12+)
 * Locking: takes and releases mm->page_table_lock (pud_lock).
 * Return: 1 when zapped, 0 when no longer a leaf.
 */
function* zap_huge_pud(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pudp: pud_t_ptr,
  addr: number,
): Op<number> {
  const ptl = yield* pud_lock(vma.vm_mm, pudp);
  if (!pud_leaf(ptep_get(pudp))) {
    yield* spin_unlock(ptl);
    return 0;
  }
  yield* pmdp_huge_get_and_clear(tlb.mm, addr, pudp);
  pfnsan_special_unmap_huge(tlb.mm, addr, HPAGE_PUD_SIZE);
  tlb_remove_tlb_entry(tlb, addr, HPAGE_PUD_SIZE);
  if (!vma_is_special_huge(vma)) {
    yield* spin_unlock(ptl);
    BUG_ON(true, 'zap_huge_pud: no support for anonymous PUD pages');
  }
  yield* spin_unlock(ptl);
  return 1;
}

/**
 * zap_pud_range(tlb, vma, p4d, addr, end, details): PUD leaves (pfnmap, v6.12+) are
 * zapped or split like PMD leaves; PMD tables go to zap_pmd_range.
 * @kernel mm/memory.c:zap_pud_range (v5.7+)
 * Locking: mmap_lock held.
 * Return: end.
 */
function* zap_pud_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  p4dp: entry_ptr,
  addr: number,
  end: number,
  details: zap_details | null,
): Op<number> {
  const t = pud_offset(p4dp, addr).t;
  let next: number;
  do {
    const pudp: pud_t_ptr = { t, i: pud_index(addr) };
    next = addr_end(addr, end, PUD_SIZE);
    const v = yield* pudp_get_lockless(pudp);
    if (pud_leaf(v) || (pte_devmap(v) && !pud_none(v))) {
      if (next - addr !== HPAGE_PUD_SIZE) {
        yield* __split_huge_pud(vma, pudp, addr);
      } else if (yield* zap_huge_pud(tlb, vma, pudp, addr)) {
        continue;
      }
      // fall through
    }
    if (yield* none_or_clear_bad(pudp, 'pud', tlb.mm, addr)) continue;
    next = yield* zap_pmd_range(tlb, vma, pudp, addr, next, details);
  } while (((addr = next), addr !== end));
  return addr;
}

/**
 * unmap_page_range(tlb, vma, addr, end, details): zaps [addr, end) of one VMA.
 * @kernel mm/memory.c:unmap_page_range, zap_p4d_range (v5.7+)
 * Locking: mmap_lock held (read is enough); the PTLs are taken per table.
 * Return: nothing.
 */
export function* unmap_page_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  addr: number,
  end: number,
  details: zap_details | null,
): Op<void> {
  BUG_ON(addr >= end, 'unmap_page_range: addr >= end');
  let next: number;
  do {
    const pgdp = pgd_offset(vma.vm_mm, addr);
    next = addr_end(addr, end, PGDIR_SIZE);
    if (yield* none_or_clear_bad(pgdp, 'pgd', vma.vm_mm, addr)) continue;
    // zap_p4d_range: the P4D level is folded into the PGD (4-level paging).
    next = yield* zap_pud_range(tlb, vma, p4d_offset(pgdp, addr), addr, next, details);
  } while (((addr = next), addr !== end));
}

/**
 * unmap_single_vma(tlb, vma, start, end, details, mm_wr_locked): zaps the part of
 * [start, end) inside vma; a VM_PFNMAP VMA's PAT memtype reservation is dropped first.
 * A hugetlb VMA is zapped by __unmap_hugepage_range (mm/hugetlb.ts).
 * @kernel mm/memory.c:unmap_single_vma (v5.7+; mm_wr_locked v6.3+; untrack_pfn here
 *   until the 2025 pfnmap_track_ctx rework)
 * Locking: mmap_lock held.
 * Return: nothing.
 */
export function* unmap_single_vma(
  tlb: mmu_gather,
  vma: vm_area_struct,
  start_addr: number,
  end_addr: number,
  details: zap_details | null,
  mm_wr_locked: boolean,
): Op<void> {
  const start = Math.max(vma.vm_start, start_addr);
  if (start >= vma.vm_end) return;
  const end = Math.min(vma.vm_end, end_addr);
  if (end <= vma.vm_start) return;
  // The 2025 rework (f8e97613fed2 series, v6.16) drops the reservation with the VMA.
  if (vma.vm_flags & VM_PFNMAP && !since(6, 16)) yield* untrack_pfn(vma, 0, 0, mm_wr_locked);
  if (start !== end) {
    // hugetlb: __unmap_hugepage_range (under i_mmap_rwsem; skipped without vm_file, the
    // mmap_region error cleanup), see mm/hugetlb.ts.
    if (is_vm_hugetlb_page(vma))
      yield* __unmap_hugepage_range_final(tlb, vma, start, end, null, details?.zap_flags ?? 0);
    else yield* unmap_page_range(tlb, vma, start, end, details);
  }
}

/**
 * unmap_vmas(tlb, vmas, start_addr, end_addr, mm_wr_locked): zaps [start, end) of each
 * VMA of the list (munmap's detached VMAs, or all of them at exit), with private COWed
 * pages, inside one MMU_NOTIFY_UNMAP range (R-MMUN-2).
 * @kernel mm/memory.c:unmap_vmas (v5.7+; a zap_details with even_cows v6.1+, NULL before,
 *   the same effect)
 * Locking: mmap_lock held (write for munmap, read at exit since v6.1).
 * Return: nothing.
 */
export function* unmap_vmas(
  tlb: mmu_gather,
  vmas: readonly vm_area_struct[],
  start_addr: number,
  end_addr: number,
  mm_wr_locked: boolean,
): Op<void> {
  if (vmas.length === 0) return;
  const details: zap_details | null = since(6, 1)
    ? { zap_flags: ZAP_FLAG_DROP_MARKER | ZAP_FLAG_UNMAP, even_cows: true }
    : null;
  const range = mmu_notifier_range_init(MMU_NOTIFY_UNMAP, 0, vmas[0]!.vm_mm, start_addr, end_addr);
  yield* mmu_notifier_invalidate_range_start(range);
  for (const vma of vmas) {
    if (vma.vm_start >= end_addr) break;
    yield* unmap_single_vma(tlb, vma, start_addr, end_addr, details, mm_wr_locked);
  }
  yield* mmu_notifier_invalidate_range_end(range);
}

/**
 * zap_page_range_single(vma, address, size, details): zaps [address, address+size) of
 * one VMA inside an MMU_NOTIFY_CLEAR range; the gathered pages are freed after the end
 * of the range (R-MMUN-2).
 * @kernel mm/memory.c:zap_page_range_single (v5.7+; static before v6.3, when it replaced
 *   zap_page_range for MADV_DONTNEED, which zapped the same way)
 * Locking: mmap_lock held (read is enough) or i_mmap_rwsem for unmap_mapping_range.
 * Return: nothing.
 */
export function* zap_page_range_single(
  vma: vm_area_struct,
  address: number,
  size: number,
  details: zap_details | null,
): Op<void> {
  const end = address + size;
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, vma.vm_mm, address, end);
  const tlb = tlb_gather_mmu(vma.vm_mm);
  yield* mmu_notifier_invalidate_range_start(range);
  yield* unmap_single_vma(tlb, vma, address, end, details, false);
  yield* mmu_notifier_invalidate_range_end(range);
  yield* tlb_finish_mmu(tlb);
}

/**
 * zap_vma_ptes(vma, address, size): drivers' zap of their own pfnmap range; does
 * nothing unless the range lies inside the VMA and the VMA is VM_PFNMAP (R-REV-2).
 * @kernel mm/memory.c:zap_vma_ptes (v5.7+; returns void since v4.18)
 * Locking: mmap_lock or the driver's own serialisation.
 * Return: nothing.
 */
export function* zap_vma_ptes(vma: vm_area_struct, address: number, size: number): Op<void> {
  if (address < vma.vm_start || address + size > vma.vm_end || !(vma.vm_flags & VM_PFNMAP)) return;
  yield* zap_page_range_single(vma, address, size, null);
}

/** i_mmap in vma_interval_tree order: by vm_pgoff, equal keys in insertion order. */
function i_mmap_in_tree_order(mapping: address_space): vm_area_struct[] {
  return [...mapping.i_mmap].sort((a, b) => a.vm_pgoff - b.vm_pgoff);
}

/**
 * unmap_mapping_range_tree(root, first_index, last_index, details): every VMA of the
 * file overlapping [first_index, last_index] by pgoff gets the overlap zapped:
 * [vm_start + (max(first, vba) - vba) pages, vm_start + (min(last, vea) - vba + 1) pages).
 * @kernel mm/memory.c:unmap_mapping_range_tree, unmap_mapping_range_vma (v5.7+)
 * Locking: i_mmap_rwsem held.
 */
function* unmap_mapping_range_tree(
  mapping: address_space,
  first_index: number,
  last_index: number,
  details: zap_details,
): Op<void> {
  for (const vma of i_mmap_in_tree_order(mapping)) {
    const vba = vma.vm_pgoff;
    const vea = vba + vma_pages(vma) - 1;
    if (vea < first_index || vba > last_index) continue;
    const zba = Math.max(first_index, vba);
    const zea = Math.min(last_index, vea);
    const start = (zba - vba) * PAGE_SIZE + vma.vm_start;
    const end = (zea - vba + 1) * PAGE_SIZE + vma.vm_start;
    yield* zap_page_range_single(vma, start, end - start, details);
  }
}

function* i_mmap_lock_for_unmap(mapping: address_space): Op<void> {
  // v5.18: "mm: unmap_mapping_range_tree() with i_mmap_rwsem shared" (Hugh Dickins).
  if (since(5, 18)) yield* down_read(mapping.i_mmap_rwsem);
  else yield* down_write(mapping.i_mmap_rwsem);
}

function* i_mmap_unlock_for_unmap(mapping: address_space): Op<void> {
  if (since(5, 18)) yield* up_read(mapping.i_mmap_rwsem);
  else yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * unmap_mapping_pages(mapping, start, nr, even_cows): unmaps pages [start, start+nr) of
 * a file from every process; nr 0 means to the end of the file. even_cows false keeps
 * private COWed pages.
 * @kernel mm/memory.c:unmap_mapping_pages (v5.7+; even_cows field and i_mmap_rwsem
 *   shared v5.18+, check_mapping and the lock held for write before)
 * Locking: takes i_mmap_rwsem across the walk.
 * Return: nothing.
 */
export function* unmap_mapping_pages(
  mapping: address_space,
  start: number,
  nr: number,
  even_cows: boolean,
): Op<void> {
  const details: zap_details = since(5, 18)
    ? { even_cows }
    : { check_mapping: even_cows ? null : mapping };
  const first_index = start;
  let last_index = start + nr - 1;
  if (last_index < first_index) last_index = ULONG_MAX;
  yield* i_mmap_lock_for_unmap(mapping);
  if (mapping.i_mmap.size !== 0)
    yield* unmap_mapping_range_tree(mapping, first_index, last_index, details);
  yield* i_mmap_unlock_for_unmap(mapping);
}

/**
 * unmap_mapping_range(mapping, holebegin, holelen, even_cows): unmaps the byte range
 * [holebegin, holebegin+holelen) of a file from every process (R-REV-1): first =
 * holebegin >> 12, count = ceil(holelen / 4096), holelen 0 = to the end of the file.
 * @kernel mm/memory.c:unmap_mapping_range (v5.7+)
 * Locking: takes i_mmap_rwsem (through unmap_mapping_pages).
 * Return: nothing.
 */
export function* unmap_mapping_range(
  mapping: address_space,
  holebegin: number,
  holelen: number,
  even_cows: number | boolean,
): Op<void> {
  const hba = Math.floor(holebegin / PAGE_SIZE);
  let hlen = Math.floor((holelen + PAGE_SIZE - 1) / PAGE_SIZE);
  // Check for overflow (loff_t is wider than pgoff_t only on 32-bit; kept for form).
  const holeend = Math.floor((holebegin + holelen + PAGE_SIZE - 1) / PAGE_SIZE);
  if (holeend > ULONG_MAX) hlen = ULONG_MAX - hba + 1;
  yield* unmap_mapping_pages(mapping, hba, hlen, Boolean(even_cows));
}

/**
 * unmap_mapping_folio(folio): unmaps one locked page-cache folio from every process,
 * keeping private COWed pages.
 * @kernel mm/memory.c:unmap_mapping_folio (v5.18+; unmap_mapping_page from v5.13,
 *   22061a1ffabd "mm/thp: unmap_mapping_page() to fix THP truncate_cleanup_page()")
 * Locking: folio locked; takes i_mmap_rwsem.
 * Return: nothing.
 */
export function* unmap_mapping_folio(f: folio): Op<void> {
  const mapping = folio_raw_mapping(f) as address_space | null;
  VM_BUG_ON(!folio_test_locked(f), 'VM_BUG_ON(!folio_test_locked(folio))');
  if (!mapping) return;
  const first_index = folio_index(f);
  const last_index = first_index + folio_nr_pages(f) - 1;
  const details: zap_details = since(5, 18)
    ? { even_cows: false, single_folio: f, zap_flags: ZAP_FLAG_DROP_MARKER }
    : { check_mapping: mapping, single_folio: f };
  yield* i_mmap_lock_for_unmap(mapping);
  if (mapping.i_mmap.size !== 0)
    yield* unmap_mapping_range_tree(mapping, first_index, last_index, details);
  yield* i_mmap_unlock_for_unmap(mapping);
}

/* ---------------------------------------------------------------------------------- */
/* Freeing page tables                                                                 */
/* ---------------------------------------------------------------------------------- */

/** "ceiling - 1" with unsigned wrap: a ceiling of 0 means the top of the address space. */
function minus1(x: number): number {
  return x === 0 ? ULONG_MAX : x - 1;
}

/**
 * free_pte_range(tlb, pmd, addr): unlinks a PTE table from its pmd and frees it after
 * the flush.
 * @kernel mm/memory.c:free_pte_range (v5.7+)
 */
function* free_pte_range(tlb: mmu_gather, pmdp: pmd_t_ptr, addr: number): Op<void> {
  const t = yield* depopulate(pmdp, 'pmd_clear');
  if (t) pgtable_free_tlb(tlb, t, addr);
}

/**
 * free_pmd_range: frees the PTE tables under [addr, end), then the PMD table itself if
 * its whole PUD_SIZE span lies within [floor, ceiling).
 * @kernel mm/memory.c:free_pmd_range (v5.7+)
 */
function* free_pmd_range(
  tlb: mmu_gather,
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  floor: number,
  ceiling: number,
): Op<void> {
  let start = addr;
  const t = entry_table(pudp)!;
  let next: number;
  do {
    const pmdp: pmd_t_ptr = { t, i: pmd_index(addr) };
    next = addr_end(addr, end, PMD_SIZE);
    if (yield* none_or_clear_bad(pmdp, 'pmd', tlb.mm, addr)) continue;
    yield* free_pte_range(tlb, pmdp, addr);
  } while (((addr = next), addr !== end));

  start = Math.floor(start / PUD_SIZE) * PUD_SIZE;
  if (start < floor) return;
  if (ceiling) {
    ceiling = Math.floor(ceiling / PUD_SIZE) * PUD_SIZE;
    if (!ceiling) return;
  }
  if (end - 1 > minus1(ceiling)) return;
  const pmdT = yield* depopulate(pudp, 'pud_clear');
  if (pmdT) pgtable_free_tlb(tlb, pmdT, start);
}

/**
 * free_pud_range: frees the PMD tables under [addr, end), then the PUD table if its
 * whole span (P4D_SIZE = PGDIR_SIZE with 4-level paging) lies within [floor, ceiling).
 * The PGD is never freed here (x86-64 4-level: p4d_clear clears the PGD entry).
 * @kernel mm/memory.c:free_pud_range, free_p4d_range (v5.7+)
 */
function* free_pud_range(
  tlb: mmu_gather,
  p4dp: entry_ptr,
  addr: number,
  end: number,
  floor: number,
  ceiling: number,
): Op<void> {
  let start = addr;
  const t = entry_table(p4dp)!;
  let next: number;
  do {
    const pudp: pud_t_ptr = { t, i: pud_index(addr) };
    next = addr_end(addr, end, PUD_SIZE);
    if (yield* none_or_clear_bad(pudp, 'pud', tlb.mm, addr)) continue;
    yield* free_pmd_range(tlb, pudp, addr, next, floor, ceiling);
  } while (((addr = next), addr !== end));

  start = Math.floor(start / PGDIR_SIZE) * PGDIR_SIZE;
  if (start < floor) return;
  if (ceiling) {
    ceiling = Math.floor(ceiling / PGDIR_SIZE) * PGDIR_SIZE;
    if (!ceiling) return;
  }
  if (end - 1 > minus1(ceiling)) return;
  const pudT = yield* depopulate(p4dp, 'p4d_clear');
  if (pudT) pgtable_free_tlb(tlb, pudT, start);
}

/**
 * free_pgd_range(tlb, addr, end, floor, ceiling): frees the page tables that map only
 * [addr, end) and nothing outside [floor, ceiling) (where other VMAs may still need
 * them): a table goes only when its whole span is inside [floor, ceiling); the range is
 * first widened/narrowed to PMD granularity as the kernel does.
 * @kernel mm/memory.c:free_pgd_range (v5.7+)
 * Locking: mmap_lock held (write, or read with the VMAs already unreachable).
 */
export function* free_pgd_range(
  tlb: mmu_gather,
  addr: number,
  end: number,
  floor: number,
  ceiling: number,
): Op<void> {
  addr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  if (addr < floor) {
    addr += PMD_SIZE;
    if (!addr) return;
  }
  if (ceiling) {
    ceiling = Math.floor(ceiling / PMD_SIZE) * PMD_SIZE;
    if (!ceiling) return;
  }
  if (end - 1 > minus1(ceiling)) end -= PMD_SIZE;
  if (addr > end - 1) return;
  let next: number;
  do {
    const pgdp = pgd_offset(tlb.mm, addr);
    next = addr_end(addr, end, PGDIR_SIZE);
    if (yield* none_or_clear_bad(pgdp, 'pgd', tlb.mm, addr)) continue;
    yield* free_pud_range(tlb, p4d_offset(pgdp, addr), addr, next, floor, ceiling);
  } while (((addr = next), addr !== end));
}

/**
 * free_pgtables(tlb, vmas, floor, ceiling, mm_wr_locked): hides each VMA from the
 * reverse map (anon_vma and i_mmap) and frees the page tables under the VMAs, gathering
 * neighbours less than a PMD apart into one free_pgd_range; [floor, ceiling) bounds
 * what may go (the end of the previous remaining VMA and the start of the next one;
 * 0 and 0 at exit).
 * @kernel mm/memory.c:free_pgtables (v5.7+; mm_wr_locked v6.3+)
 * Locking: mmap_lock held; takes i_mmap_rwsem for write per file VMA (unlink_file_vma).
 * Return: nothing.
 */
export function* free_pgtables(
  tlb: mmu_gather,
  vmas: readonly vm_area_struct[],
  floor: number,
  ceiling: number,
  _mm_wr_locked: boolean,
): Op<void> {
  let k = 0;
  while (k < vmas.length) {
    let vma = vmas[k]!;
    const addr = vma.vm_start;
    let next = vmas[k + 1] ?? null;
    unlink_anon_vma(vma);
    yield* unlink_file_vma(vma);
    // Optimization: gather nearby vmas into one call down.
    while (next && next.vm_start <= vma.vm_end + PMD_SIZE) {
      vma = next;
      k++;
      next = vmas[k + 1] ?? null;
      unlink_anon_vma(vma);
      yield* unlink_file_vma(vma);
    }
    yield* free_pgd_range(tlb, addr, vma.vm_end, floor, next ? next.vm_start : ceiling);
    k++;
  }
}

/** Test and report helper: the page-table pages an mm holds (PGD included). */
export function pgtable_pages(mm: mm_struct): number {
  let n = 0;
  const walk = (t: ptdesc): void => {
    n++;
    if (t.children) for (const c of t.children) if (c) walk(c);
  };
  walk(mm.pgd);
  return n;
}
