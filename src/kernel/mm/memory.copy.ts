/**
 * fork()'s page-table copy: copy_page_range and the walkers under it, down to the
 * per-entry rules of copy_present_ptes (R-FORK-2, R-FORK-3, O-9).
 *
 * What gets copied:
 * - vma_needs_copy: VMAs without anon_vma whose faults refill them (shared file or
 *   private never-written mappings) get no entries; VM_PFNMAP|VM_MIXEDMAP always do
 *   (and VM_HUGETLB before v6.0).
 * - an entry whose vm_normal_page() is NULL (pfnmap, special mixedmap, the zero page):
 *   the child gets the entry made old, clean for VM_SHARED; a writable entry of a COW
 *   mapping is write-protected in parent and child. No refcount, mapcount or RSS change.
 * - a normal page: a reference and one more mapping for the child (RSS counted in the
 *   child); COW mappings write-protect both sides. An anonymous page of an mm that has
 *   pinned pages (MMF_HAS_PINNED) and that may be DMA-pinned is copied at once into a
 *   new page for the child, and the parent keeps its writable entry (O-9).
 * - COW VMAs: MMU_NOTIFY_PROTECTION_PAGE on the parent's range around the copy, and
 *   mm->write_protect_seq held for write (odd) so GUP-fast backs off (R-MMUN-2).
 * - x86 PAT: the memtype of a VM_PAT mapping is reserved again for the child before the
 *   copy (track_pfn_copy) until the 2025 rework, which shares it by kref in vm_area_dup.
 *
 * - a migration entry (copy_nonpresent_pte, copy_huge_pmd): the child gets the entry and
 *   counts it in its RSS; in a COW mapping a writable entry (v5.19+: any entry that is not
 *   plain readable, i.e. readable-exclusive too) is first made readable in the parent, so
 *   both map the new folio read-only once remove_migration_ptes restores them. No folio
 *   reference or mapcount changes here: the rmap walk of remove_migration_ptes adds them.
 *
 * Left out: swap and device entries (the model has none: a swap entry stops the run
 * with an error; a non-present value the model does not encode is copied as it is, as
 * the kernel does with entry kinds it does not recognise), userfaultfd-wp bits,
 * soft-dirty (hugetlb VMAs: copy_hugetlb_page_range in mm/hugetlb.ts), the batching of PTE-mapped large
 * folios (folio_pte_batch, v6.9+; entries are handled one by one, which ends in the
 * same state except that the kernel's batch merges the
 * write bit of a shared mapping's PTEs of one large folio), the need_resched() break
 * every 32 entries, memcg charging, copy_mc (hwpoison) failures.
 *
 * @kernel mm/memory.c (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import type {
  entry_ptr,
  folio,
  mm_struct,
  page,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { MMF_HAS_PINNED, MM_ANONPAGES } from '../include/linux/mm_types.js';
import {
  VM_HUGETLB,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_SHARED,
  VM_WRITE,
  add_mm_counter,
  folio_maybe_dma_pinned,
  is_cow_mapping,
  mm_counter,
  mm_counter_file,
  mm_flags_test,
} from '../include/linux/mm.js';
import {
  ClearPageAnonExclusive,
  PageAnonExclusive,
  folio_mark_uptodate,
  folio_test_anon,
  page_folio,
  page_mapcount_add,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put } from '../include/linux/page_ref.js';
import {
  is_migration_entry,
  is_readable_migration_entry,
  is_swap_pmd,
  is_writable_migration_entry,
  make_readable_migration_entry,
  non_swap_entry,
  pfn_swap_entry_folio,
  pte_to_swp_entry,
  swp_entry_to_pte,
  swp_offset,
} from '../include/linux/swapops.js';
import {
  pgd_offset,
  p4d_offset,
  pud_offset,
  pmd_offset,
  pud_alloc,
  pmd_alloc,
  pte_alloc,
  pte_offset_map,
  pte_offset_map_lock,
  pte_unmap_unlock,
  ptep_get,
  set_pte_at,
  ptep_set_wrprotect,
  set_pud_at,
  pud_lock,
  pud_lockptr,
  pmdp_huge_get_and_clear,
  slotName,
  pud_index,
  pmd_index,
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
  pud_write,
} from '../arch/x86/include/asm/pgtable.js';
import {
  PAGE_SIZE,
  PGDIR_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  native_pte_val,
  pfn_pte,
  pte_mkclean,
  pte_mkdirty,
  pte_mkold,
  pte_mkwrite,
  pte_none,
  pte_present,
  pte_write,
  pte_wrprotect,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { BUG_ON, VM_BUG_ON, VM_WARN_ON_ONCE } from '../kernel/panic.js';
import { pr_err } from '../kernel/printk.js';
import { since } from '../version.js';
import { EAGAIN, EBUSY, ENOMEM } from '../include/linux/errno.js';
import { folio_add_new_anon_rmap, folio_add_file_rmap_ptes, RMAP_EXCLUSIVE } from './rmap.js';
import { alloc_page, GFP_HIGHUSER_MOVABLE } from './page_alloc.js';
import { phys_copy_frame } from './sparse.js';
import { copy_hugetlb_page_range } from './hugetlb.js';
import {
  MMU_NOTIFY_PROTECTION_PAGE,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
  type mmu_notifier_range,
} from './mmu_notifier.js';
import { vm_normal_page } from './memory.normal.js';
import { copy_huge_pmd } from './huge_memory.anon.js';
import { track_pfn_copy, untrack_pfn_clear, untrack_pfn_copy } from '../arch/x86/mm/pat/memtype.js';

/** NR_MM_COUNTERS: the rss vector copy_pte_range accumulates for the child. */
const NR_MM_COUNTERS = 4;

/** The preallocated folio copy_pte_range hands down (struct folio **prealloc). */
interface prealloc_t {
  folio: folio | null;
}

/** pgd_addr_end / pud_addr_end / pmd_addr_end: the next boundary of `size`, capped at end. */
function addr_end(addr: number, end: number, size: number): number {
  const boundary = (Math.floor(addr / size) + 1) * size;
  return boundary - 1 < end - 1 ? boundary : end;
}

/** An entry slot `i` further on in the same table (ptep + i). */
function slot_add(p: entry_ptr, i: number): entry_ptr {
  return { t: p.t, i: p.i + i };
}

/**
 * is_vm_hugetlb_page(vma)
 * @kernel include/linux/hugetlb_inline.h:is_vm_hugetlb_page (all versions)
 */
function is_vm_hugetlb_page(vma: vm_area_struct): boolean {
  return (vma.vm_flags & VM_HUGETLB) !== 0n;
}

/**
 * folio_needs_cow_for_dma(vma, folio): fork must copy this anonymous folio now because
 * the parent may have it pinned for DMA: the mm has pinned pages and the folio looks
 * pinned (folio_maybe_dma_pinned, which may say yes for a plain refcount of 1024 or more).
 * @kernel include/linux/mm.h:folio_needs_cow_for_dma (v6.7+; page_needs_cow_for_dma
 *   v5.13+, open-coded with mm->has_pinned in copy_present_page v5.9+, 70e806e4e645)
 * Locking: PTL and, from v5.19, src mm->write_protect_seq held for write (VM_BUG_ON);
 *   before that the function checked is_cow_mapping itself.
 * Return: true when the folio must be copied for the child.
 * The model keeps MMF_HAS_PINNED for all versions (v5.9-v5.12 had atomic mm->has_pinned).
 */
export function folio_needs_cow_for_dma(vma: vm_area_struct, f: folio): boolean {
  if (since(5, 19)) {
    // fb3d824d1a46 ("mm/rmap: split page_dup_rmap() into page_dup_file_rmap() and
    // page_try_dup_anon_rmap()"): only called under the fork's write_protect_seq.
    VM_BUG_ON(
      (vma.vm_mm.write_protect_seq.sequence & 1) === 0,
      'VM_BUG_ON(!(raw_read_seqcount(&vma->vm_mm->write_protect_seq) & 1))',
    );
  } else if (!is_cow_mapping(vma.vm_flags)) {
    return false;
  }
  if (!mm_flags_test(MMF_HAS_PINNED, vma.vm_mm)) return false;
  return folio_maybe_dma_pinned(f);
}

/**
 * folio_try_dup_anon_rmap_pte(folio, page, dst_vma, src_vma): one more PTE mapping of
 * an anonymous page for the child. A page mapped exclusively (PageAnonExclusive) that
 * may be pinned cannot be shared: -EBUSY, the caller copies it. Otherwise the page stops
 * being exclusive and its mapcount grows.
 * @kernel include/linux/rmap.h:folio_try_dup_anon_rmap_pte (v6.8+; page_try_dup_anon_rmap
 *   v5.19-v6.7, fb3d824d1a46)
 * Locking: src PTL held; src mm->write_protect_seq held for write.
 * Return: 0, or -EBUSY when the page must be copied.
 * Model: lives here (not in mm/rmap.ts) as fork is its only user; device-private folios
 * are not modelled.
 */
export function folio_try_dup_anon_rmap_pte(
  f: folio,
  p: page,
  _dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
): number {
  if (PageAnonExclusive(p)) {
    if (folio_needs_cow_for_dma(src_vma, f)) return -EBUSY;
    ClearPageAnonExclusive(p);
  }
  page_mapcount_add(p, 1);
  return 0;
}

/**
 * folio_dup_file_rmap_pte(folio, page, dst_vma): one more PTE mapping of a page-cache
 * (or driver) page for the child.
 * @kernel include/linux/rmap.h:folio_dup_file_rmap_pte (v6.8+; page_dup_file_rmap
 *   v5.19-v6.7, page_dup_rmap before)
 * Locking: src PTL held.
 */
export function folio_dup_file_rmap_pte(f: folio, p: page, dst_vma: vm_area_struct): void {
  folio_add_file_rmap_ptes(f, p, 1, dst_vma);
}

/**
 * copy_nonpresent_pte(dst_mm, src_mm, dst_pte, src_pte, dst_vma, src_vma, addr, rss):
 * copies one non-present entry for the child. A migration entry: the child's RSS counter
 * of the folio it names (mm_counter) grows; in a COW mapping a writable entry is first
 * made readable in the parent ("COW mappings require pages in both parent and child to
 * be set to read"; v5.19+ also a readable-exclusive one: "A previously exclusive entry is
 * now shared", 6c287605fd56); the child gets the (possibly downgraded) entry. No folio
 * reference, mapcount or rmap change.
 * @kernel mm/memory.c:copy_nonpresent_pte (v5.9+, split out of copy_one_pte, which had
 *   the same rules v5.7-v5.8; is_write_migration_entry/make_migration_entry_read before
 *   v5.14; pfn_swap_entry_folio v6.9+)
 * Locking: src and dst PTLs held.
 * Return: 0.
 * Left out: swap entries (swap_duplicate, MM_SWAPENTS: a swap entry stops the run with an
 *   error), device-private/exclusive entries, PTE markers, soft-dirty and uffd-wp bits.
 */
function* copy_nonpresent_pte(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pte: pte_t_ptr,
  src_pte: pte_t_ptr,
  addr: number,
  rss: number[],
): Op<number> {
  const vm_flags = dst_vma.vm_flags;
  const orig_pte = ptep_get(src_pte);
  let pte = orig_pte;
  let entry = pte_to_swp_entry(orig_pte);
  if (!non_swap_entry(entry)) {
    throw new Error(
      `copy_nonpresent_pte: swap entry ${native_pte_val(orig_pte)} at ${slotName(src_pte)}: swap is not modelled`,
    );
  } else if (is_migration_entry(entry)) {
    const f = pfn_swap_entry_folio(entry);
    rss[mm_counter(f)]!++;
    const downgrade = since(5, 19)
      ? !is_readable_migration_entry(entry)
      : is_writable_migration_entry(entry);
    if (downgrade && is_cow_mapping(vm_flags)) {
      // COW mappings require pages in both parent and child to be set to read.
      entry = make_readable_migration_entry(swp_offset(entry));
      pte = swp_entry_to_pte(entry);
      yield* set_pte_at(src_vma.vm_mm, addr, src_pte, pte);
    }
  }
  yield* set_pte_at(dst_vma.vm_mm, addr, dst_pte, pte);
  return 0;
}

/**
 * copy_present_page(dst_vma, src_vma, dst_pte, src_pte, addr, rss, prealloc, page): the
 * child gets its own copy of a page the parent may have pinned: the preallocated folio
 * receives the bytes, becomes the child's exclusive anonymous page, and is mapped dirty
 * (and writable when the VMA has VM_WRITE). The parent's entry is left as it is.
 * @kernel mm/memory.c:copy_present_page (v5.9+, 70e806e4e645 "mm: Do early cow for pinned
 *   pages during fork() for ptes"; v5.9-v5.18 also copied pinned non-anonymous pages,
 *   hitting __page_set_anon_rmap's BUG_ON(!anon_vma) when the child VMA had none)
 * Locking: src and dst PTLs held.
 * Return: 0, or -EAGAIN when no folio is preallocated yet (the caller drops the locks,
 *   allocates and retries).
 */
function* copy_present_page(
  dst_vma: vm_area_struct,
  _src_vma: vm_area_struct,
  dst_pte: pte_t_ptr,
  _src_pte: pte_t_ptr,
  addr: number,
  rss: number[],
  prealloc: prealloc_t,
  p: page,
): Op<number> {
  const new_folio = prealloc.folio;
  if (!new_folio) return -EAGAIN;
  // copy_mc_user_highpage (copy_user_highpage before v6.1): the bytes of the page.
  phys_copy_frame(new_folio, p);
  prealloc.folio = null;
  folio_mark_uptodate(new_folio);
  // __folio_set_anon / __page_set_anon_rmap: BUG_ON(!anon_vma).
  BUG_ON(!dst_vma.anon_vma, 'BUG_ON(!anon_vma) in __folio_set_anon');
  folio_add_new_anon_rmap(new_folio, dst_vma, addr, RMAP_EXCLUSIVE);
  rss[MM_ANONPAGES]!++;
  // mk_pte(&new_folio->page, dst_vma->vm_page_prot); maybe_mkwrite(pte_mkdirty(pte)).
  let pte = pte_mkdirty(pfn_pte(new_folio, dst_vma.vm_page_prot));
  if (dst_vma.vm_flags & VM_WRITE) pte = pte_mkwrite(pte);
  yield* set_pte_at(dst_vma.vm_mm, addr, dst_pte, pte);
  return 0;
}

/**
 * __copy_present_ptes(dst_vma, src_vma, dst_pte, src_pte, pte, addr, nr): the entry the
 * child gets: a writable entry of a COW mapping is write-protected in the parent and the
 * child; VM_SHARED copies are clean; all copies are old.
 * @kernel mm/memory.c:__copy_present_ptes (v6.9+; the tail of copy_present_pte v5.9-v6.8,
 *   of copy_one_pte before)
 * Locking: src and dst PTLs held.
 */
function* __copy_present_ptes(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pte: pte_t_ptr,
  src_pte: pte_t_ptr,
  pte: pteval_t,
  addr: number,
): Op<void> {
  const src_mm = src_vma.vm_mm;
  if (is_cow_mapping(src_vma.vm_flags) && pte_write(pte)) {
    yield* ptep_set_wrprotect(src_mm, addr, src_pte);
    pte = pte_wrprotect(pte);
  }
  if (src_vma.vm_flags & VM_SHARED) pte = pte_mkclean(pte);
  pte = pte_mkold(pte);
  yield* set_pte_at(dst_vma.vm_mm, addr, dst_pte, pte, 'set_ptes');
}

/**
 * copy_present_ptes(dst_vma, src_vma, dst_pte, src_pte, pte, addr, max_nr, rss,
 * prealloc): copies one present entry for the child.
 * - vm_normal_page() NULL (pfnmap, special mixedmap, zero page): the entry only (R-FORK-3).
 * - an anonymous page: shared with the child (a reference, one more mapping, RSS), unless
 *   it may be pinned: then copy_present_page (O-9). Before v5.19 the pinned check came
 *   first and applied to any page of a COW mapping; before v5.9 nothing was copied.
 * - a file or driver page: a reference and one more mapping, RSS of its type.
 * @kernel mm/memory.c:copy_present_ptes (v6.9+), copy_present_pte (v5.9-v6.8),
 *   copy_one_pte (v5.7-v5.8)
 * Locking: src and dst PTLs held.
 * Return: the number of entries copied (1), or -EAGAIN when a preallocated folio is
 *   needed.
 * Large folios are handled one PTE at a time (see the file comment).
 */
function* copy_present_ptes(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pte: pte_t_ptr,
  src_pte: pte_t_ptr,
  pte: pteval_t,
  addr: number,
  _max_nr: number,
  rss: number[],
  prealloc: prealloc_t,
): Op<number> {
  const p = vm_normal_page(src_vma, addr, pte);
  if (p !== null) {
    const f = page_folio(p);
    if (since(5, 19)) {
      // fb3d824d1a46: anonymous pages go through folio_try_dup_anon_rmap.
      folio_get(f);
      if (folio_test_anon(f)) {
        if (folio_try_dup_anon_rmap_pte(f, p, dst_vma, src_vma)) {
          // Page may be pinned, we have to copy.
          folio_put(f);
          const err = yield* copy_present_page(
            dst_vma,
            src_vma,
            dst_pte,
            src_pte,
            addr,
            rss,
            prealloc,
            p,
          );
          return err ? err : 1;
        }
        rss[MM_ANONPAGES]!++;
        VM_WARN_ON_ONCE(PageAnonExclusive(p));
      } else {
        folio_dup_file_rmap_pte(f, p, dst_vma);
        rss[mm_counter_file(f)]!++;
      }
    } else {
      // 70e806e4e645 (v5.9): early COW of maybe-pinned pages; b51ad4f8679e (v5.18)
      // reordered it as page_needs_cow_for_dma() ahead of get_page with the same effect.
      if (since(5, 9) && folio_needs_cow_for_dma(src_vma, f)) {
        const err = yield* copy_present_page(
          dst_vma,
          src_vma,
          dst_pte,
          src_pte,
          addr,
          rss,
          prealloc,
          p,
        );
        return err ? err : 1;
      }
      // get_page(page); page_dup_rmap(page, false); rss[mm_counter(page)]++.
      folio_get(f);
      page_mapcount_add(p, 1);
      rss[mm_counter(f)]!++;
    }
  }
  yield* __copy_present_ptes(dst_vma, src_vma, dst_pte, src_pte, pte, addr);
  return 1;
}

/**
 * folio_prealloc(src_mm, vma, addr, need_zero): the page copy_present_page copies into,
 * allocated with no page-table lock held.
 * @kernel mm/memory.c:folio_prealloc (v6.8+; page_copy_prealloc v5.9-v6.7)
 * Locking: none held (may sleep).
 * Return: the folio, or NULL.
 */
function folio_prealloc(_src_mm: mm_struct, _vma: vm_area_struct, _addr: number): folio | null {
  const p = alloc_page(GFP_HIGHUSER_MOVABLE);
  return p === null ? null : (p as number as folio);
}

/**
 * copy_pte_range(dst_vma, src_vma, dst_pmd, src_pmd, addr, end): copies the entries of
 * one PTE table, with the child's table lock and then the parent's held (nested), the
 * child's RSS counted at the end; restarts at the same address after preallocating a
 * page for copy_present_page.
 * @kernel mm/memory.c:copy_pte_range (v5.7+; prealloc retry v5.9+)
 * Locking: mmap_lock held for write in both mms; takes and releases both PTLs.
 * Return: 0 or -ENOMEM.
 */
function* copy_pte_range(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pmd: pmd_t_ptr,
  src_pmd: pmd_t_ptr,
  addr: number,
  end: number,
): Op<number> {
  const dst_mm = dst_vma.vm_mm;
  const src_mm = src_vma.vm_mm;
  const prealloc: prealloc_t = { folio: null };
  let ret = 0;
  out: for (;;) {
    const rss = new Array<number>(NR_MM_COUNTERS).fill(0);
    // pte_alloc_map_lock(dst_mm, dst_pmd, addr, &dst_ptl)
    if (yield* pte_alloc(dst_mm, dst_pmd)) {
      ret = -ENOMEM;
      break out;
    }
    const locked = yield* pte_offset_map_lock(dst_mm, dst_pmd, addr);
    if (!locked) {
      ret = -ENOMEM;
      break out;
    }
    const [orig_dst_pte, dst_ptl] = locked;
    // pte_offset_map_nolock (v6.5+; pte_offset_map + pte_lockptr before) then
    // spin_lock_nested(src_ptl, SINGLE_DEPTH_NESTING).
    const orig_src_pte = pte_offset_map(src_pmd, addr);
    if (!orig_src_pte) {
      yield* pte_unmap_unlock(orig_dst_pte, dst_ptl);
      break out; // ret == 0
    }
    const src_ptl = orig_src_pte.t.ptl!;
    yield* spin_lock(src_ptl);
    let k = 0;
    let nr: number;
    do {
      nr = 1;
      const src_pte = slot_add(orig_src_pte, k);
      const dst_pte = slot_add(orig_dst_pte, k);
      const ptent = ptep_get(src_pte);
      if (pte_none(ptent)) continue;
      if (!pte_present(ptent)) {
        // No -EIO (swap_duplicate), -EBUSY or -ENOENT (device-exclusive) in the model.
        ret = yield* copy_nonpresent_pte(dst_vma, src_vma, dst_pte, src_pte, addr, rss);
        continue;
      }
      // copy_present_ptes() will clear `*prealloc' if consumed.
      ret = yield* copy_present_ptes(
        dst_vma,
        src_vma,
        dst_pte,
        src_pte,
        ptent,
        addr,
        (end - addr) / PAGE_SIZE,
        rss,
        prealloc,
      );
      // If we need a pre-allocated page for this pte, drop the locks, allocate, and
      // try again.
      if (ret === -EAGAIN) break;
      if (prealloc.folio) {
        // The pre-allocated page cannot be reused: the pinned entry changed.
        folio_put(prealloc.folio);
        prealloc.folio = null;
      }
      nr = ret;
    } while (((k += nr), (addr += PAGE_SIZE * nr), addr !== end));
    yield* spin_unlock(src_ptl);
    for (let m = 0; m < NR_MM_COUNTERS; m++) if (rss[m]) add_mm_counter(dst_mm, m, rss[m]!);
    yield* pte_unmap_unlock(orig_dst_pte, dst_ptl);
    if (ret === -EAGAIN) {
      prealloc.folio = folio_prealloc(src_mm, src_vma, addr);
      if (!prealloc.folio) return -ENOMEM;
    }
    // We've captured and resolved the error. Reset, try again.
    ret = 0;
    if (addr !== end) continue;
    break;
  }
  if (prealloc.folio) folio_put(prealloc.folio);
  return ret;
}

/**
 * pmd_none_or_clear_bad(pmd) / pud_ / pgd_: true for an empty entry, and for a corrupt
 * one, which is reported ("bad pmd") and cleared.
 * @kernel include/linux/pgtable.h:pmd_none_or_clear_bad, pud_none_or_clear_bad,
 *   pgd_none_or_clear_bad; mm/pgtable-generic.c:pmd_clear_bad (all versions)
 * Locking: mmap_lock held.
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
 * copy_pmd_range(dst_vma, src_vma, dst_pud, src_pud, addr, end): allocates the child's
 * PMD table and copies each PMD: huge leaves and PMD migration entries through
 * copy_huge_pmd (special pfnmap leaves copied as special, v6.12+ bc02afbd4d73 "mm/fork:
 * accept huge pfnmap entries"; anonymous THPs shared), tables through copy_pte_range.
 * @kernel mm/memory.c:copy_pmd_range (v5.7+)
 * Locking: mmap_lock held for write in both mms.
 * Return: 0 or -ENOMEM.
 */
function* copy_pmd_range(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pud: pud_t_ptr,
  src_pud: pud_t_ptr,
  addr: number,
  end: number,
): Op<number> {
  const dst_mm = dst_vma.vm_mm;
  const src_mm = src_vma.vm_mm;
  const dst_pmd0 = yield* pmd_alloc(dst_mm, dst_pud, addr);
  if (!dst_pmd0) return -ENOMEM;
  const src_pmd0 = pmd_offset(src_pud, addr);
  let next: number;
  do {
    next = addr_end(addr, end, PMD_SIZE);
    const src_pmd: pmd_t_ptr = { t: src_pmd0.t, i: pmd_index(addr) };
    const dst_pmd: pmd_t_ptr = { t: dst_pmd0.t, i: pmd_index(addr) };
    // *src_pmd: a plain read; the mmap_lock held for write keeps it stable.
    const v = ptep_get(src_pmd);
    if (is_swap_pmd(v) || pmd_leaf(v)) {
      VM_BUG_ON(next - addr !== PMD_SIZE, 'VM_BUG_ON_VMA(next-addr != HPAGE_PMD_SIZE)');
      // Special pfnmap leaves (v6.12+) and anonymous THPs alike (mm/huge_memory.anon.ts).
      const err = yield* copy_huge_pmd(dst_mm, src_mm, dst_pmd, src_pmd, addr, dst_vma, src_vma);
      if (err === -ENOMEM) return -ENOMEM;
      if (!err) continue;
      // fall through
    }
    if (yield* none_or_clear_bad(src_pmd, 'pmd', src_mm, addr)) continue;
    if (yield* copy_pte_range(dst_vma, src_vma, dst_pmd, src_pmd, addr, next)) return -ENOMEM;
  } while (((addr = next), addr !== end));
  return 0;
}

/**
 * copy_huge_pud(dst_mm, src_mm, dst_pud, src_pud, addr, vma): copies a PUD leaf (a huge
 * pfnmap in the model) as it is, made old; v6.12+ write-protects it in both mms only
 * for a writable entry of a COW mapping (before, always).
 * @kernel mm/huge_memory.c:copy_huge_pud (v5.7+; COW-only write-protect v6.12,
 *   bc02afbd4d73 "mm/fork: accept huge pfnmap entries")
 * Locking: takes the dst mm's page_table_lock, then the src mm's nested.
 * Return: 0, or -EAGAIN when the entry is no longer a huge leaf.
 * Model: lives here with its only caller; anonymous PUD THPs do not exist.
 */
export function* copy_huge_pud(
  dst_mm: mm_struct,
  src_mm: mm_struct,
  dst_pud: pud_t_ptr,
  src_pud: pud_t_ptr,
  addr: number,
  vma: vm_area_struct,
): Op<number> {
  const dst_ptl = yield* pud_lock(dst_mm, dst_pud);
  const src_ptl = pud_lockptr(src_mm, src_pud);
  yield* spin_lock(src_ptl);
  let ret = -EAGAIN;
  let pud = ptep_get(src_pud);
  if (pud_leaf(pud)) {
    if (!since(6, 12) || (is_cow_mapping(vma.vm_flags) && pud_write(pud))) {
      // pudp_set_wrprotect(src_mm, addr, src_pud)
      yield* ptep_set_wrprotect(src_mm, addr, src_pud);
      pud = pte_wrprotect(pud);
    }
    pud = pte_mkold(pud);
    yield* set_pud_at(dst_mm, addr, dst_pud, pud);
    ret = 0;
  }
  yield* spin_unlock(src_ptl);
  yield* spin_unlock(dst_ptl);
  return ret;
}

/**
 * copy_pud_range(dst_vma, src_vma, dst_p4d, src_p4d, addr, end): allocates the child's
 * PUD table and copies each PUD: leaves through copy_huge_pud, tables through
 * copy_pmd_range.
 * @kernel mm/memory.c:copy_pud_range (v5.7+)
 * Locking: mmap_lock held for write in both mms.
 * Return: 0 or -ENOMEM.
 */
function* copy_pud_range(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_p4d: entry_ptr,
  src_p4d: entry_ptr,
  addr: number,
  end: number,
): Op<number> {
  const dst_mm = dst_vma.vm_mm;
  const src_mm = src_vma.vm_mm;
  const dst_pud0 = yield* pud_alloc(dst_mm, dst_p4d, addr);
  if (!dst_pud0) return -ENOMEM;
  const src_pud0 = pud_offset(src_p4d, addr);
  let next: number;
  do {
    next = addr_end(addr, end, PUD_SIZE);
    const src_pud: pud_t_ptr = { t: src_pud0.t, i: pud_index(addr) };
    const dst_pud: pud_t_ptr = { t: dst_pud0.t, i: pud_index(addr) };
    if (pud_leaf(ptep_get(src_pud))) {
      VM_BUG_ON(next - addr !== PUD_SIZE, 'VM_BUG_ON_VMA(next-addr != HPAGE_PUD_SIZE)');
      const err = yield* copy_huge_pud(dst_mm, src_mm, dst_pud, src_pud, addr, src_vma);
      if (err === -ENOMEM) return -ENOMEM;
      if (!err) continue;
      // fall through
    }
    if (yield* none_or_clear_bad(src_pud, 'pud', src_mm, addr)) continue;
    if (yield* copy_pmd_range(dst_vma, src_vma, dst_pud, src_pud, addr, next)) return -ENOMEM;
  } while (((addr = next), addr !== end));
  return 0;
}

/**
 * copy_p4d_range(dst_vma, src_vma, dst_pgd, src_pgd, addr, end): the P4D level, folded
 * into the PGD with 4-level paging.
 * @kernel mm/memory.c:copy_p4d_range (v5.7+)
 * Locking: mmap_lock held for write in both mms.
 * Return: 0 or -ENOMEM.
 */
function* copy_p4d_range(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
  dst_pgd: entry_ptr,
  src_pgd: entry_ptr,
  addr: number,
  end: number,
): Op<number> {
  // p4d_alloc(dst_mm, dst_pgd, addr) and p4d_offset(src_pgd, addr) are the pgd entries;
  // p4d_none_or_clear_bad() of a folded level is always false.
  const dst_p4d = p4d_offset(dst_pgd, addr);
  const src_p4d = p4d_offset(src_pgd, addr);
  if (yield* copy_pud_range(dst_vma, src_vma, dst_p4d, src_p4d, addr, end)) return -ENOMEM;
  return 0;
}

/**
 * vma_needs_copy(dst_vma, src_vma): whether fork copies the VMA's page tables. Entries
 * that a fault refills correctly are not copied: a VMA without anon_vma gets nothing
 * unless it is VM_PFNMAP or VM_MIXEDMAP (R-FORK-2), or, before v6.0, VM_HUGETLB.
 * @kernel mm/memory.c:vma_needs_copy (v5.19+; open-coded in copy_page_range before;
 *   VM_HUGETLB dropped v6.0, bcd51a3c679d "hugetlb: lazy page table copies in fork()")
 * Locking: mmap_lock held for write.
 * Return: true to copy.
 * Left out: userfaultfd-wp (uffd-wp VMAs always copy, v5.19+).
 */
export function vma_needs_copy(_dst_vma: vm_area_struct, src_vma: vm_area_struct): boolean {
  if (!since(6, 0) && src_vma.vm_flags & VM_HUGETLB) return true;
  if (src_vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) return true;
  if (src_vma.anon_vma) return true;
  // Don't copy ptes where a page fault will fill them correctly.
  return false;
}

/**
 * copy_page_range(dst_vma, src_vma): copies the page tables of src_vma (the parent's)
 * into dst_vma (the child's) at fork.
 * - No copy when vma_needs_copy says so.
 * - x86 PAT, VM_PFNMAP: before the copy, track_pfn_copy reserves the memtype again for
 *   the child; failure fails the fork. v6.4-v6.14 cleared VM_PAT of dst_vma if the copy
 *   failed (d155df53f310); v6.15 undoes the reservation instead (untrack_pfn_copy,
 *   dc84bc2aba85). From f8e97613fed2 (v6.16) the reservation is a pfnmap_track_ctx
 *   shared by vm_area_dup and nothing happens here.
 * - COW mappings: MMU_NOTIFY_PROTECTION_PAGE on [vm_start, vm_end) of the parent's mm
 *   around the copy (R-MMUN-2; shared mappings get no notifier), and the parent's
 *   write_protect_seq made odd for the duration (v5.11+, 57efa1fe5957 "mm/gup: prevent
 *   gup_fast from racing with COW during fork").
 * @kernel mm/memory.c:copy_page_range (v5.7+)
 * Locking: mmap_lock held for write in both mms (dup_mmap).
 * Return: 0, -ENOMEM, or track_pfn_copy's error (-EINVAL, or its reservation error).
 * Hugetlb VMAs: copy_hugetlb_page_range (mm/hugetlb.ts).
 */
export function* copy_page_range(dst_vma: vm_area_struct, src_vma: vm_area_struct): Op<number> {
  let addr = src_vma.vm_start;
  const end = src_vma.vm_end;
  const dst_mm = dst_vma.vm_mm;
  const src_mm = src_vma.vm_mm;
  let ret: number;
  let pfn = 0;

  if (!vma_needs_copy(dst_vma, src_vma)) return 0;

  if (is_vm_hugetlb_page(src_vma))
    return yield* copy_hugetlb_page_range(dst_mm, src_mm, dst_vma, src_vma);

  const pat = !since(6, 16) && (src_vma.vm_flags & VM_PFNMAP) !== 0n;
  if (pat) {
    // v6.15 (dc84bc2aba85): track_pfn_copy(dst_vma, src_vma, &pfn) also sets VM_PAT on
    // dst_vma once the reservation succeeded; before, track_pfn_copy(src_vma).
    const r = yield* track_pfn_copy(dst_vma, src_vma);
    ret = r.ret;
    if (ret) return ret;
    pfn = r.pfn;
  }

  // A permission downgrade of the parent's entries happens only for COW mappings.
  const is_cow = is_cow_mapping(src_vma.vm_flags);
  let range: mmu_notifier_range | null = null;
  if (is_cow) {
    range = mmu_notifier_range_init(MMU_NOTIFY_PROTECTION_PAGE, 0, src_mm, addr, end);
    yield* mmu_notifier_invalidate_range_start(range);
    // 57efa1fe5957 (v5.11): raw_write_seqcount_begin(&src_mm->write_protect_seq).
    if (since(5, 11)) yield* src_mm.write_protect_seq.writeBegin('raw_write_seqcount_begin');
  }

  ret = 0;
  let next: number;
  do {
    next = addr_end(addr, end, PGDIR_SIZE);
    const src_pgd = pgd_offset(src_mm, addr);
    const dst_pgd = pgd_offset(dst_mm, addr);
    if (yield* none_or_clear_bad(src_pgd, 'pgd', src_mm, addr)) continue;
    if (yield* copy_p4d_range(dst_vma, src_vma, dst_pgd, src_pgd, addr, next)) {
      // d155df53f310 (v6.4) until dc84bc2aba85 (v6.15): clear VM_PAT of the child.
      if (pat && since(6, 4) && !since(6, 15)) untrack_pfn_clear(dst_vma);
      ret = -ENOMEM;
      break;
    }
  } while (((addr = next), addr !== end));

  if (is_cow) {
    if (since(5, 11)) yield* src_mm.write_protect_seq.writeEnd('raw_write_seqcount_end');
    yield* mmu_notifier_invalidate_range_end(range!);
  }
  // dc84bc2aba85 (v6.15): undo the child's reservation when the copy failed.
  if (ret && pat && since(6, 15)) untrack_pfn_copy(dst_vma, pfn);
  return ret;
}
