/**
 * hugetlb (mm/hugetlb.c, mapping half): reservations (resv_map, hugetlb_reserve_pages,
 * the per-VMA reserve bookkeeping), the hugetlb VMA operations, hugetlb page tables on
 * x86-64 (2 MiB leaves in PMD slots, huge_pte_alloc, the PMD lock as huge_pte_lock),
 * faults (hugetlb_fault, hugetlb_no_page from the pool and the hugetlbfs page cache,
 * hugetlb_wp for copy-on-write of private mappings, FOLL_FORCE writes), unmapping
 * (__unmap_hugepage_range), fork (copy_hugetlb_page_range), mprotect
 * (hugetlb_change_protection) and the GUP walkers of the versions that had their own
 * (follow_hugetlb_page before v6.5, hugetlb_follow_page_mask v6.1–v6.8; from v6.9 GUP
 * walks hugetlb PMD leaves generically).
 *
 * The pool (hstate counters, free list, free_huge_folio) is in mm/hugetlb.pool.ts.
 *
 * Rules: kernel-spec.md §11 O-8 (hugetlb accepts FOLL_FORCE|FOLL_WRITE on 6.18; the forced
 * write does a real COW), O-1 (hugetlbfs needs no dirty tracking), O-9/O-10 (fork and
 * unmap with pins).
 *
 * Versions (gates at the places, commits cited there):
 * - hugetlb_cow before v5.19, hugetlb_wp with FAULT_FLAG_UNSHARE from v5.19;
 * - PageAnonExclusive for hugetlb anon folios and the pinned-folio copy at fork through
 *   hugetlb_try_dup_anon_rmap from v5.19; page_needs_cow_for_dma v5.12–v5.18; no copy
 *   before v5.12 (4eae4efa2c29);
 * - write faults on shared mappings map the page writable, and a write fault without
 *   VM_WRITE WARNs with SIGSEGV, from v6.0 (1d8d14641fd9); from v6.14 such FOLL_FORCE
 *   faults work and COW without making the entry writable ("mm/hugetlb: support
 *   FOLL_FORCE|FOLL_WRITE"); before v6.0 hugetlb_cow made the entry writable regardless;
 * - unmapping an anonymous folio of the reserve owner restores the reservation from v6.9
 *   ("mm/hugetlb: restore the reservation if needed");
 * - page tables: i_mmap_rwsem for read in the fault before v6.1, the hugetlb VMA lock
 *   (not modelled) after; lazy page-table copies at fork from v6.0 (memory.copy.ts).
 *
 * Model notes and omissions: one hstate (2 MiB); no PMD sharing (huge_pmd_share: VMAs
 * would need a PUD_SIZE-aligned 1 GiB span), no hugetlb VMA lock (vma_lock), no
 * userfaultfd, no hugetlb migration or hwpoison entries (present PMD leaves only), no
 * hugetlb cgroups; the fault mutex table is one mutex per (mapping, index) instead of
 * hashed buckets; the hugetlbfs page cache is keyed by base-page index in every version
 * (v6.7+; huge-page index before, an internal difference) and holds folio_nr_pages
 * references (__filemap_add_folio of the model). The reserve map keeps regions as
 * intervals like the kernel's file_region list, without the region cache.
 *
 * @kernel mm/hugetlb.c, include/linux/hugetlb.h, include/linux/rmap.h (hugetlb_*_rmap)
 *   (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import type {
  address_space,
  file,
  folio,
  inode,
  mm_struct,
  page,
  pmd_t_ptr,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import {
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_INTERRUPTIBLE,
  FAULT_FLAG_KILLABLE,
  FAULT_FLAG_RETRY_NOWAIT,
  FAULT_FLAG_TRIED,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
} from '../include/linux/mm_types.js';
import {
  FOLL_DUMP,
  FOLL_INTERRUPTIBLE,
  FOLL_NOWAIT,
  FOLL_PIN,
  FOLL_TRIED,
  FOLL_WRITE,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_HUGETLB,
  VM_MAYSHARE,
  VM_NORESERVE,
  VM_SHARED,
  VM_WRITE,
  is_cow_mapping,
  vm_fault_to_errno,
} from '../include/linux/mm.js';
import { EFAULT, EINVAL, ENOMEM, ENOSPC } from '../include/linux/errno.js';
import {
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  pte_dirty,
  pte_flags,
  pte_mkdirty,
  pte_mkhuge,
  pte_mkwrite,
  pte_mkyoung,
  pte_none,
  pte_pfn,
  pte_present,
  pte_write,
  pte_wrprotect,
  pfn_pte,
  _PAGE_PSE,
  type pgprot_t,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { p4d_present, pgd_present, pud_present } from '../arch/x86/include/asm/pgtable.js';
import {
  entry_table,
  p4d_offset,
  pgd_offset,
  pmd_alloc,
  pmd_index,
  pmd_lockptr,
  ptep_get,
  ptep_get_lockless,
  pud_alloc,
  pud_index,
  set_pmd_at,
  pmdp_huge_get_and_clear,
} from '../include/linux/pgtable.js';
import {
  down_read,
  down_write,
  mutex,
  mutex_lock,
  mutex_unlock,
  spin_lock,
  spin_unlock,
  up_read,
  up_write,
  type spinlock_t,
} from '../include/linux/spinlock.js';
import {
  ClearPageAnonExclusive,
  PageAnonExclusive,
  SetPageAnonExclusive,
  __folio_set_locked,
  __folio_clear_locked,
  folio_clear_uptodate,
  folio_entire_mapcount_add,
  folio_mapcount,
  folio_mark_uptodate,
  folio_nr_pages,
  folio_test_anon,
  folio_clear_dirty,
  page_folio,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put, set_page_count } from '../include/linux/page_ref.js';
import { BUG, BUG_ON, VM_BUG_ON, WARN_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { pr_warn } from '../kernel/printk.js';
import { get_current } from '../include/linux/sched.js';
import { phys_clear_frame, phys_copy_frame } from './sparse.js';
import {
  anon_vma_prepare,
  folio_add_new_anon_rmap,
  folio_move_anon_rmap,
  RMAP_EXCLUSIVE,
} from './rmap.js';
import {
  __filemap_add_folio,
  __filemap_get_folio,
  FGP_LOCK,
  filemap_remove_folio,
  folio_lock,
  folio_mark_dirty,
  folio_trylock,
  folio_unlock,
} from './filemap.js';
import {
  tlb_finish_mmu,
  tlb_gather_mmu,
  tlb_remove_page_size,
  type mmu_gather,
} from './memory.zap.js';
import {
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_PROTECTION_VMA,
  mmu_notifier_arch_invalidate_secondary_tlbs,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
} from './mmu_notifier.js';
import { folio_needs_cow_for_dma } from './memory.copy.js';
import { pte_modify } from './mprotect.js';
import { gup_must_unshare, try_grab_folio, type int_ptr, type page_array } from './gup.js';
import { fatal_signal_pending } from '../include/linux/sched.js';
import { vmf_error } from './shmem.js';
import {
  alloc_surplus_hugetlb_folio,
  available_huge_pages,
  default_hstate,
  dequeue_hugetlb_folio_nodemask,
  folio_set_hugetlb_migratable,
  folio_set_hugetlb_restore_reserve,
  folio_clear_hugetlb_restore_reserve,
  folio_test_hugetlb_restore_reserve,
  hugepage_subpool_get_pages,
  hugepage_subpool_put_pages,
  hugetlb_acct_memory,
  hugetlb_acct_memory_release,
  hugetlb_count_add,
  hugetlb_count_sub,
  hugetlb_lock,
  huge_page_align_down,
  huge_page_size,
  htlb_alloc_mask,
  pages_per_huge_page,
  type hstate,
} from './hugetlb.pool.js';

/* ---------------------------------------------------------------------------------- */
/* Basics                                                                              */
/* ---------------------------------------------------------------------------------- */

/** Flags of a private mapping's reserve map pointer (vma->vm_private_data low bits). */
export const HPAGE_RESV_OWNER = 1;
export const HPAGE_RESV_UNMAPPED = 2;

/**
 * is_vm_hugetlb_page(vma)
 * @kernel include/linux/hugetlb_inline.h:is_vm_hugetlb_page (all versions)
 */
export function is_vm_hugetlb_page(vma: vm_area_struct): boolean {
  return (vma.vm_flags & VM_HUGETLB) !== 0n;
}

/** hstate_vma(vma), hstate_inode(inode), hstate_file(file): the one hstate of the model. */
export function hstate_vma(_vma: vm_area_struct): hstate {
  return default_hstate();
}
export function hstate_inode(_i: inode): hstate {
  return default_hstate();
}
export function hstate_file(_f: file): hstate {
  return default_hstate();
}

/**
 * vma_hugecache_offset(h, vma, address): the huge-page index of address in the file.
 * @kernel mm/hugetlb.c:vma_hugecache_offset (all versions)
 */
export function vma_hugecache_offset(h: hstate, vma: vm_area_struct, address: number): number {
  return (
    Math.floor((address - vma.vm_start) / huge_page_size(h)) +
    Math.floor(vma.vm_pgoff / pages_per_huge_page(h))
  );
}

/* ---------------------------------------------------------------------------------- */
/* Reserve maps                                                                        */
/* ---------------------------------------------------------------------------------- */

/** struct file_region: [from, to) in huge pages. */
export interface file_region {
  from: number;
  to: number;
}

/** struct resv_map, reduced: the sorted, disjoint regions and the reference count. */
export interface resv_map {
  refs: number;
  regions: file_region[];
  adds_in_progress: number;
}

/**
 * resv_map_alloc(): an empty reserve map with one reference.
 * @kernel mm/hugetlb.c:resv_map_alloc (all versions)
 */
export function resv_map_alloc(): resv_map {
  return { refs: 1, regions: [], adds_in_progress: 0 };
}

/**
 * region_count(resv, f, t): the huge pages of [f, t) the map holds.
 * @kernel mm/hugetlb.c:region_count (all versions)
 */
export function region_count(resv: resv_map, f: number, t: number): number {
  let chg = 0;
  for (const rg of resv.regions) {
    if (rg.to <= f) continue;
    if (rg.from >= t) break;
    chg += Math.min(rg.to, t) - Math.max(rg.from, f);
  }
  return chg;
}

/**
 * region_chg(resv, f, t, out_regions_needed): how many huge pages of [f, t) the map does
 * not hold yet; an add is now in progress.
 * @kernel mm/hugetlb.c:region_chg (all versions)
 * Return: the count (the region cache allocation cannot fail in the model).
 */
export function region_chg(resv: resv_map, f: number, t: number): number {
  resv.adds_in_progress++;
  return t - f - region_count(resv, f, t);
}

/**
 * region_add(resv, f, t, in_regions_needed, h, h_cg): the map now holds [f, t),
 * coalesced with touching regions; ends the add in progress.
 * @kernel mm/hugetlb.c:region_add, add_reservation_in_range, coalesce_file_region
 *   (all versions)
 * Return: the number of huge pages added.
 */
export function region_add(resv: resv_map, f: number, t: number): number {
  const add = t - f - region_count(resv, f, t);
  let nf = f;
  let nt = t;
  const keep: file_region[] = [];
  for (const rg of resv.regions) {
    if (rg.to < nf || rg.from > nt) keep.push(rg);
    else {
      nf = Math.min(nf, rg.from);
      nt = Math.max(nt, rg.to);
    }
  }
  keep.push({ from: nf, to: nt });
  keep.sort((a, b) => a.from - b.from);
  resv.regions = keep;
  resv.adds_in_progress--;
  return add;
}

/**
 * region_abort(resv, f, t, regions_needed): an add that will not happen.
 * @kernel mm/hugetlb.c:region_abort (all versions)
 */
export function region_abort(resv: resv_map, _f: number, _t: number): void {
  VM_BUG_ON(!resv.adds_in_progress, 'VM_BUG_ON(!resv->region_cache_count)');
  resv.adds_in_progress--;
}

/**
 * region_del(resv, f, t): removes [f, t) from the map (t = Infinity for LONG_MAX).
 * @kernel mm/hugetlb.c:region_del (all versions)
 * Return: the number of huge pages removed.
 */
export function region_del(resv: resv_map, f: number, t: number): number {
  let del = 0;
  const keep: file_region[] = [];
  for (const rg of resv.regions) {
    if (rg.to <= f || rg.from >= t) {
      keep.push(rg);
      continue;
    }
    del += Math.min(rg.to, t) - Math.max(rg.from, f);
    if (rg.from < f) keep.push({ from: rg.from, to: f });
    if (rg.to > t) keep.push({ from: t, to: rg.to });
  }
  resv.regions = keep;
  return del;
}

/**
 * resv_map_release(ref): the last reference: every region goes.
 * @kernel mm/hugetlb.c:resv_map_release (all versions)
 */
export function resv_map_release(resv: resv_map): void {
  region_del(resv, 0, Infinity);
  VM_BUG_ON(resv.adds_in_progress !== 0, 'VM_BUG_ON(resv_map->adds_in_progress)');
}

/** kref_put(&resv->refs, resv_map_release) */
function resv_map_put(resv: resv_map): void {
  if (--resv.refs === 0) resv_map_release(resv);
}

/**
 * inode_resv_map(inode): the reserve map of a hugetlbfs inode (i_data.i_private_data).
 * @kernel mm/hugetlb.c:inode_resv_map (all versions)
 */
export function inode_resv_map(i: inode): resv_map | null {
  return (i.i_mapping.private_data as resv_map | null) ?? null;
}

/** vma->vm_private_data of a private hugetlb VMA: the reserve map and HPAGE_RESV_* flags. */
interface hugetlb_vma_private {
  readonly resv: resv_map | null;
  readonly flags: number;
}

function get_vma_private_data(vma: vm_area_struct): hugetlb_vma_private {
  return (vma.vm_private_data as hugetlb_vma_private | null) ?? { resv: null, flags: 0 };
}

/**
 * vma_resv_map(vma): the inode's map for shared mappings, the VMA's own for private ones.
 * @kernel mm/hugetlb.c:vma_resv_map (all versions)
 */
export function vma_resv_map(vma: vm_area_struct): resv_map | null {
  VM_BUG_ON(!is_vm_hugetlb_page(vma), 'VM_BUG_ON_VMA(!is_vm_hugetlb_page(vma), vma)');
  if (vma.vm_flags & VM_MAYSHARE) return inode_resv_map(vma.vm_file!.f_mapping.host);
  return get_vma_private_data(vma).resv;
}

/** set_vma_resv_map(vma, map) */
function set_vma_resv_map(vma: vm_area_struct, map: resv_map | null): void {
  VM_BUG_ON(!is_vm_hugetlb_page(vma), 'VM_BUG_ON_VMA(!is_vm_hugetlb_page(vma), vma)');
  VM_BUG_ON((vma.vm_flags & VM_MAYSHARE) !== 0n, 'VM_BUG_ON_VMA(vma->vm_flags & VM_MAYSHARE, vma)');
  vma.vm_private_data = { resv: map, flags: 0 } satisfies hugetlb_vma_private;
}

/** set_vma_resv_flags(vma, flags) */
function set_vma_resv_flags(vma: vm_area_struct, flags: number): void {
  VM_BUG_ON(!is_vm_hugetlb_page(vma), 'VM_BUG_ON_VMA(!is_vm_hugetlb_page(vma), vma)');
  VM_BUG_ON((vma.vm_flags & VM_MAYSHARE) !== 0n, 'VM_BUG_ON_VMA(vma->vm_flags & VM_MAYSHARE, vma)');
  const d = get_vma_private_data(vma);
  vma.vm_private_data = { resv: d.resv, flags: d.flags | flags } satisfies hugetlb_vma_private;
}

/**
 * is_vma_resv_set(vma, flag)
 * @kernel mm/hugetlb.c:is_vma_resv_set (all versions)
 */
export function is_vma_resv_set(vma: vm_area_struct, flag: number): boolean {
  VM_BUG_ON(!is_vm_hugetlb_page(vma), 'VM_BUG_ON_VMA(!is_vm_hugetlb_page(vma), vma)');
  if (vma.vm_flags & VM_MAYSHARE) return false; // the vma_lock pointer: no flag bits
  return (get_vma_private_data(vma).flags & flag) !== 0;
}

/**
 * __vma_private_lock(vma): a private mapping owning its reserve map.
 * @kernel mm/hugetlb.c:__vma_private_lock (v6.7+; open-coded before)
 */
export function __vma_private_lock(vma: vm_area_struct): boolean {
  return (
    !(vma.vm_flags & VM_MAYSHARE) &&
    get_vma_private_data(vma).resv !== null &&
    is_vma_resv_set(vma, HPAGE_RESV_OWNER)
  );
}

/**
 * hugetlb_dup_vma_private(vma): fork's copy of a VMA starts with no reserve map: a child
 * of a private mapping has no reservations (its faults may fail; the owner's may not).
 * @kernel mm/hugetlb.c:hugetlb_dup_vma_private (v6.1+; reset_vma_resv_huge_pages before,
 *   called from kernel/fork.c:dup_mmap)
 * Locking: mmap_lock of both mms held for write.
 */
export function hugetlb_dup_vma_private(vma: vm_area_struct): void {
  VM_BUG_ON(!is_vm_hugetlb_page(vma), 'VM_BUG_ON_VMA(!is_vm_hugetlb_page(vma), vma)');
  // Shared mappings: the vma_lock, not modelled. Private mappings: the reserve map, which
  // does not apply to children.
  vma.vm_private_data = null;
}

/** enum vma_resv_mode */
const VMA_NEEDS_RESV = 0;
const VMA_COMMIT_RESV = 1;
const VMA_END_RESV = 2;
const VMA_ADD_RESV = 3;
const VMA_DEL_RESV = 4;

/**
 * __vma_reservation_common(h, vma, addr, mode): the reserve-map step of an allocation.
 * Shared maps record reserved pages; a private owner's map records consumed ones, so the
 * private result is inverted. No map (a child's private VMA, VM_NORESERVE) ⇒ 1.
 * @kernel mm/hugetlb.c:__vma_reservation_common (all versions; VMA_DEL_RESV v5.14+)
 * Return: 1 a reservation is needed, 0 one exists / was consumed, as the kernel's.
 */
function __vma_reservation_common(
  h: hstate,
  vma: vm_area_struct,
  addr: number,
  mode: number,
): number {
  const resv = vma_resv_map(vma);
  if (!resv) return 1;
  const idx = vma_hugecache_offset(h, vma, addr);
  let ret: number;
  switch (mode) {
    case VMA_NEEDS_RESV:
      ret = region_chg(resv, idx, idx + 1);
      break;
    case VMA_COMMIT_RESV:
      ret = region_add(resv, idx, idx + 1);
      break;
    case VMA_END_RESV:
      region_abort(resv, idx, idx + 1);
      ret = 0;
      break;
    case VMA_ADD_RESV:
      if (vma.vm_flags & VM_MAYSHARE) {
        ret = region_add(resv, idx, idx + 1);
      } else {
        region_abort(resv, idx, idx + 1);
        ret = region_del(resv, idx, idx + 1);
      }
      break;
    case VMA_DEL_RESV:
      if (vma.vm_flags & VM_MAYSHARE) {
        region_abort(resv, idx, idx + 1);
        ret = region_del(resv, idx, idx + 1);
      } else {
        ret = region_add(resv, idx, idx + 1);
      }
      break;
    default:
      BUG();
  }
  if (vma.vm_flags & VM_MAYSHARE || mode === VMA_DEL_RESV) return ret;
  // The reserve map for private mappings has the opposite meaning than that of shared
  // mappings: an entry means the reservation has already been consumed.
  if (ret > 0) return 0;
  if (ret === 0) return 1;
  return ret;
}

/** vma_needs_reservation / vma_commit_reservation / vma_end_reservation / add / del */
export function vma_needs_reservation(h: hstate, vma: vm_area_struct, addr: number): number {
  return __vma_reservation_common(h, vma, addr, VMA_NEEDS_RESV);
}
export function vma_commit_reservation(h: hstate, vma: vm_area_struct, addr: number): number {
  return __vma_reservation_common(h, vma, addr, VMA_COMMIT_RESV);
}
export function vma_end_reservation(h: hstate, vma: vm_area_struct, addr: number): void {
  __vma_reservation_common(h, vma, addr, VMA_END_RESV);
}
function vma_add_reservation(h: hstate, vma: vm_area_struct, addr: number): number {
  return __vma_reservation_common(h, vma, addr, VMA_ADD_RESV);
}
function vma_del_reservation(h: hstate, vma: vm_area_struct, addr: number): number {
  return __vma_reservation_common(h, vma, addr, VMA_DEL_RESV);
}

/**
 * restore_reserve_on_error(h, vma, address, folio): undoes the reserve-map step of an
 * allocation whose folio is being freed on an error path, so that free_huge_folio's
 * global count and the map agree.
 * @kernel mm/hugetlb.c:restore_reserve_on_error (v5.14+ form, 846be08578ed "mm/hugetlb:
 *   expand restore_reserve_on_error functionality"; the model uses it in every version,
 *   the older form only acted on HPageRestoreReserve folios)
 */
export function restore_reserve_on_error(
  h: hstate,
  vma: vm_area_struct,
  address: number,
  f: folio,
): void {
  const rc = vma_needs_reservation(h, vma, address);
  if (folio_test_hugetlb_restore_reserve(f)) {
    if (rc < 0) folio_clear_hugetlb_restore_reserve(f);
    else if (rc) vma_add_reservation(h, vma, address);
    else vma_end_reservation(h, vma, address);
  } else if (!rc) {
    // An entry in the reserve map not added by alloc_hugetlb_folio: remove it so that a
    // subsequent allocation does not consume a reservation.
    if (vma_del_reservation(h, vma, address) < 0) folio_set_hugetlb_restore_reserve(f);
  } else {
    vma_end_reservation(h, vma, address);
  }
}

/**
 * hugetlb_reserve_pages(inode, from, to, vma, vm_flags): reserves the huge pages of
 * [from, to) at mmap time. VM_NORESERVE ⇒ nothing. Shared mappings reserve what the
 * inode's map does not hold yet; private mappings get a new map (HPAGE_RESV_OWNER) and
 * reserve the whole range. The pool must back the reservation (hugetlb_acct_memory),
 * else the reservation is undone.
 * @kernel mm/hugetlb.c:hugetlb_reserve_pages (all versions; int 0/-errno before v5.12,
 *   bool afterwards and long in the newest kernels: the model returns 0/-errno, which
 *   hugetlbfs_file_mmap turns into -ENOMEM in every version)
 * Locking: mmap_lock held for write (mmap) and the inode lock.
 * Return: 0, -EINVAL, -ENOSPC (subpool) or -ENOMEM (pool too small).
 */
export function* hugetlb_reserve_pages(
  i: inode,
  from: number,
  to: number,
  vma: vm_area_struct | null,
  vm_flags: bigint,
): Op<number> {
  const h = hstate_inode(i);
  let chg: number;
  let add = -1;
  // This should never happen
  if (from > to) {
    WARN_ON(true);
    return -EINVAL;
  }
  // Only apply hugepage reservation if asked. At fault time, an attempt will be made for
  // VM_NORESERVE to allocate a page without using reserves.
  if (vm_flags & VM_NORESERVE) return 0;
  let resv: resv_map;
  const shared = !vma || (vma.vm_flags & VM_MAYSHARE) !== 0n;
  if (shared) {
    resv = inode_resv_map(i)!;
    chg = region_chg(resv, from, to);
  } else {
    // Private mapping.
    resv = resv_map_alloc();
    chg = to - from;
    set_vma_resv_map(vma!, resv);
    set_vma_resv_flags(vma!, HPAGE_RESV_OWNER);
  }
  let ret: number;
  out_err: {
    // There must be enough pages in the subpool for the mapping.
    const gbl_reserve = hugepage_subpool_get_pages(null, chg);
    if (gbl_reserve < 0) {
      ret = -ENOSPC;
      break out_err;
    }
    // Check enough hugepages are available for the reservation. Hand the pages back to
    // the subpool if there are not.
    ret = yield* hugetlb_acct_memory(h, gbl_reserve);
    if (ret < 0) {
      hugepage_subpool_put_pages(null, chg);
      break out_err;
    }
    // Shared mappings record regions that have reservations as they are shared by
    // multiple VMAs; private mappings only track consumed reservations.
    if (shared) {
      add = region_add(resv, from, to);
      if (chg > add) {
        // pages in this range were added to the reserve map between region_chg and
        // region_add (a race with alloc_hugetlb_folio).
        const rsv_adjust = hugepage_subpool_put_pages(null, chg - add);
        yield* hugetlb_acct_memory(h, -rsv_adjust);
      }
    }
    return 0;
  }
  // out_err:
  if (shared) {
    if (chg >= 0 && add < 0) region_abort(resv, from, to);
  }
  if (vma && is_vma_resv_set(vma, HPAGE_RESV_OWNER)) {
    resv_map_put(resv);
    set_vma_resv_map(vma, null);
  }
  return ret;
}

/**
 * hugetlb_unreserve_pages(inode, start, end, freed): truncation or hole punch of
 * [start, end) of a file whose `freed` pages were removed: the reservations of the range
 * not backed by a removed page are given back.
 * @kernel mm/hugetlb.c:hugetlb_unreserve_pages (all versions)
 * Return: 0.
 */
export function* hugetlb_unreserve_pages(
  i: inode,
  start: number,
  end: number,
  freed: number,
): Op<number> {
  const h = hstate_inode(i);
  const resv = inode_resv_map(i);
  let chg = 0;
  if (resv) chg = region_del(resv, start, end);
  const gbl_reserve = hugepage_subpool_put_pages(null, chg - freed);
  yield* hugetlb_acct_memory(h, -gbl_reserve);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The hugetlb VMA operations                                                          */
/* ---------------------------------------------------------------------------------- */

/**
 * hugetlb_vm_op_open(vma): a split or copied private VMA shares its sibling's reserve map.
 * @kernel mm/hugetlb.c:hugetlb_vm_op_open (all versions; the vma_lock of shared mappings
 *   v6.1+ is not modelled)
 */
export function hugetlb_vm_op_open(vma: vm_area_struct): void {
  const resv = vma_resv_map(vma);
  if (resv && is_vma_resv_set(vma, HPAGE_RESV_OWNER)) resv.refs++;
}

/**
 * hugetlb_vm_op_close(vma): the reserve owner's VMA goes: the reservations it never
 * consumed are given back to the pool.
 * @kernel mm/hugetlb.c:hugetlb_vm_op_close (all versions)
 * Locking: mmap_lock held. The model's ->close is not an Op: the release of the global
 *   reservation is done without a scheduling point.
 */
export function hugetlb_vm_op_close(vma: vm_area_struct): void {
  const h = hstate_vma(vma);
  const resv = vma_resv_map(vma);
  if (!resv || !is_vma_resv_set(vma, HPAGE_RESV_OWNER)) return;
  const start = vma_hugecache_offset(h, vma, vma.vm_start);
  const end = vma_hugecache_offset(h, vma, vma.vm_end);
  const reserve = end - start - region_count(resv, start, end);
  if (reserve) {
    // Decrement reserve counts. The global reserve count may be adjusted if the subpool
    // has a minimum size.
    const gbl_reserve = hugepage_subpool_put_pages(null, reserve);
    hugetlb_acct_memory_release(h, -gbl_reserve);
  }
  resv_map_put(resv);
}

/**
 * hugetlb_vm_op_split(vma, addr): a hugetlb VMA splits only at huge page boundaries.
 * @kernel mm/hugetlb.c:hugetlb_vm_op_split (all versions; ->split before v5.11,
 *   ->may_split after)
 * Return: 0 or -EINVAL.
 */
export function hugetlb_vm_op_split(vma: vm_area_struct, addr: number): number {
  if (addr % huge_page_size(hstate_vma(vma)) !== 0) return -EINVAL;
  return 0;
}

/**
 * hugetlb_vm_op_fault(vmf): never called: handle_mm_fault sends hugetlb VMAs to
 * hugetlb_fault.
 * @kernel mm/hugetlb.c:hugetlb_vm_op_fault (all versions)
 */
function* hugetlb_vm_op_fault(_vmf: vm_fault): Op<vm_fault_t> {
  BUG();
}

/**
 * hugetlb_vm_ops
 * @kernel mm/hugetlb.c:hugetlb_vm_ops (all versions; ->pagesize not modelled)
 */
export const hugetlb_vm_ops: vm_operations_struct = {
  name: 'hugetlb_vm_ops',
  fault: hugetlb_vm_op_fault,
  open: hugetlb_vm_op_open,
  close: hugetlb_vm_op_close,
  may_split: hugetlb_vm_op_split,
};

/* ---------------------------------------------------------------------------------- */
/* Page tables                                                                         */
/* ---------------------------------------------------------------------------------- */

/** huge_pte_none / huge_pte_write / huge_pte_dirty (x86: the PTE helpers on the PMD). */
export const huge_pte_none = (v: pteval_t): boolean => pte_none(v);
export const huge_pte_write = (v: pteval_t): boolean => pte_write(v);
export const huge_pte_dirty = (v: pteval_t): boolean => pte_dirty(v);
export const huge_pte_mkdirty = (v: pteval_t): pteval_t => pte_mkdirty(v);
export const huge_pte_mkwrite = (v: pteval_t): pteval_t => pte_mkwrite(v);
export const huge_pte_wrprotect = (v: pteval_t): pteval_t => pte_wrprotect(v);
/** huge_ptep_get(mm, addr, ptep): a read under the huge PTE lock. */
export const huge_ptep_get = (p: pmd_t_ptr): pteval_t => ptep_get(p);

/**
 * huge_pte_offset(mm, addr, sz): the PMD slot of a 2 MiB huge page, without allocating;
 * NULL when an upper level is not present.
 * @kernel mm/hugetlb.c:huge_pte_offset (CONFIG_ARCH_WANT_GENERAL_HUGETLB, all versions)
 */
export function huge_pte_offset(mm: mm_struct, addr: number, _sz: number): pmd_t_ptr | null {
  const pgdp = pgd_offset(mm, addr);
  if (!pgd_present(ptep_get(pgdp))) return null;
  const p4dp = p4d_offset(pgdp, addr);
  if (!p4d_present(ptep_get(p4dp))) return null;
  const pudT = entry_table(p4dp);
  if (!pudT) return null;
  const pudp = { t: pudT, i: pud_index(addr) };
  if (!pud_present(ptep_get(pudp))) return null;
  const pmdT = entry_table(pudp);
  if (!pmdT) return null;
  return { t: pmdT, i: pmd_index(addr) };
}

/**
 * hugetlb_walk(vma, addr, sz): huge_pte_offset for a hugetlb VMA.
 * @kernel include/linux/hugetlb.h:hugetlb_walk (v6.3+; huge_pte_offset before)
 */
export function hugetlb_walk(vma: vm_area_struct, addr: number, sz: number): pmd_t_ptr | null {
  return huge_pte_offset(vma.vm_mm, addr, sz);
}

/**
 * huge_pte_alloc(mm, vma, addr, sz): allocates the PUD and PMD tables down to the PMD
 * slot of a 2 MiB page (no PMD sharing in the model); a present entry there must be a
 * huge one.
 * @kernel mm/hugetlb.c:huge_pte_alloc (CONFIG_ARCH_WANT_GENERAL_HUGETLB, all versions;
 *   the vma argument v5.13+)
 * Locking: mmap_lock held.
 * Return: the PMD slot, or null on -ENOMEM.
 */
export function* huge_pte_alloc(
  mm: mm_struct,
  _vma: vm_area_struct,
  addr: number,
  sz: number,
): Op<pmd_t_ptr | null> {
  BUG_ON(sz !== PMD_SIZE, 'BUG_ON(sz != PMD_SIZE)');
  const pgdp = pgd_offset(mm, addr);
  const p4dp = p4d_offset(pgdp, addr);
  const pud = yield* pud_alloc(mm, p4dp, addr);
  if (!pud) return null;
  const pte = yield* pmd_alloc(mm, pud, addr);
  if (pte) {
    const pteval = yield* ptep_get_lockless(pte, 'huge_pte_alloc');
    BUG_ON(
      pte_present(pteval) && !pte_huge(pteval),
      'BUG_ON(pte_present(pteval) && !pte_huge(pteval))',
    );
  }
  return pte;
}

function pte_huge(v: pteval_t): boolean {
  return (pte_flags(v) & _PAGE_PSE) !== 0;
}

/**
 * huge_pte_lockptr(h, mm, pte): 2 MiB huge pages are guarded by the PMD table's split
 * lock (pmd_lockptr), others by mm->page_table_lock.
 * @kernel include/linux/hugetlb.h:huge_pte_lockptr (all versions)
 */
export function huge_pte_lockptr(h: hstate, mm: mm_struct, pte: pmd_t_ptr): spinlock_t {
  if (huge_page_size(h) === PMD_SIZE) return pmd_lockptr(mm, pte);
  return mm.page_table_lock;
}

/** huge_pte_lock(h, mm, pte): takes and returns huge_pte_lockptr. */
export function* huge_pte_lock(h: hstate, mm: mm_struct, pte: pmd_t_ptr): Op<spinlock_t> {
  const ptl = huge_pte_lockptr(h, mm, pte);
  yield* spin_lock(ptl);
  return ptl;
}

/** set_huge_pte_at(mm, addr, ptep, pte, sz) (x86: set_pte_at on the PMD slot). */
export function* set_huge_pte_at(mm: mm_struct, addr: number, p: pmd_t_ptr, v: pteval_t): Op<void> {
  yield* set_pmd_at(mm, addr, p, v);
}

/** huge_ptep_get_and_clear(mm, addr, ptep, sz) */
export function* huge_ptep_get_and_clear(mm: mm_struct, addr: number, p: pmd_t_ptr): Op<pteval_t> {
  return yield* pmdp_huge_get_and_clear(mm, addr, p);
}

/** huge_ptep_clear_flush(vma, addr, ptep): cleared, TLB flushed. */
export function* huge_ptep_clear_flush(
  vma: vm_area_struct,
  addr: number,
  p: pmd_t_ptr,
): Op<pteval_t> {
  return yield* pmdp_huge_get_and_clear(vma.vm_mm, addr, p);
}

/** huge_ptep_set_wrprotect(mm, addr, ptep) */
export function* huge_ptep_set_wrprotect(mm: mm_struct, addr: number, p: pmd_t_ptr): Op<void> {
  yield* set_pmd_at(mm, addr, p, pte_wrprotect(ptep_get(p)));
}

/**
 * huge_ptep_set_access_flags(vma, addr, ptep, pte, dirty) (x86: ptep_set_access_flags):
 * the entry is written when it differs and dirty is set.
 * @kernel arch/x86/mm/pgtable.c:ptep_set_access_flags (all versions)
 * Locking: the huge PTE lock held.
 * Return: whether it differed.
 */
export function* huge_ptep_set_access_flags(
  vma: vm_area_struct,
  addr: number,
  p: pmd_t_ptr,
  v: pteval_t,
  dirty: boolean,
): Op<boolean> {
  const changed = ptep_get(p) !== v;
  if (changed && dirty) yield* set_pmd_at(vma.vm_mm, addr, p, v);
  return changed;
}

/**
 * make_huge_pte(vma, folio, try_mkwrite): the huge entry for a folio at vm_page_prot,
 * young; writable and dirty when asked (and, from v6.14, only if the VMA has VM_WRITE:
 * "mm/hugetlb: don't map folios writable without VM_WRITE when copying during fork()",
 * David Hildenbrand; before, the callers decided alone).
 * @kernel mm/hugetlb.c:make_huge_pte (all versions)
 */
export function make_huge_pte(vma: vm_area_struct, f: folio, try_mkwrite: boolean): pteval_t {
  let entry = pte_mkhuge(pfn_pte(f, vma.vm_page_prot));
  const writable = since(6, 14) ? try_mkwrite && (vma.vm_flags & VM_WRITE) !== 0n : try_mkwrite;
  if (writable) entry = pte_mkwrite(pte_mkdirty(entry));
  else entry = pte_wrprotect(entry);
  return pte_mkyoung(entry);
}

/**
 * set_huge_ptep_writable(vma, address, ptep): dirty and writable in place.
 * @kernel mm/hugetlb.c:set_huge_ptep_writable (all versions)
 */
function* set_huge_ptep_writable(vma: vm_area_struct, address: number, p: pmd_t_ptr): Op<void> {
  const entry = huge_pte_mkwrite(huge_pte_mkdirty(ptep_get(p)));
  yield* huge_ptep_set_access_flags(vma, address, p, entry, true);
}

/**
 * set_huge_ptep_maybe_writable(vma, address, ptep): writable only with VM_WRITE (a
 * FOLL_FORCE write leaves the entry read-only).
 * @kernel mm/hugetlb.c:set_huge_ptep_maybe_writable (v6.14+, "mm/hugetlb: support
 *   FOLL_FORCE|FOLL_WRITE")
 */
function* set_huge_ptep_maybe_writable(
  vma: vm_area_struct,
  address: number,
  p: pmd_t_ptr,
): Op<void> {
  if (vma.vm_flags & VM_WRITE) yield* set_huge_ptep_writable(vma, address, p);
}

/* ---------------------------------------------------------------------------------- */
/* rmap of hugetlb folios                                                              */
/* ---------------------------------------------------------------------------------- */

/**
 * hugetlb_add_new_anon_rmap(folio, vma, address): a new private folio of vma: anonymous,
 * exclusive, mapped once as a whole; the reservation it consumed stays consumed
 * (HPG_restore_reserve cleared: ClearHPageRestoreReserve / ClearPagePrivate before).
 * @kernel include/linux/rmap.h / mm/rmap.c:hugetlb_add_new_anon_rmap (v6.8+;
 *   hugepage_add_new_anon_rmap before, the flag cleared by its callers in v5.x;
 *   exclusive v5.19+)
 */
export function hugetlb_add_new_anon_rmap(f: folio, vma: vm_area_struct, address: number): void {
  folio_clear_hugetlb_restore_reserve(f);
  folio_add_new_anon_rmap(f, vma, address, RMAP_EXCLUSIVE, true);
}

/**
 * hugetlb_add_file_rmap(folio): one more whole-folio mapping of a page-cache folio.
 * @kernel include/linux/rmap.h:hugetlb_add_file_rmap (v6.8+; page_dup_file_rmap(page,
 *   true) / page_dup_rmap before)
 */
export function hugetlb_add_file_rmap(f: folio): void {
  folio_entire_mapcount_add(f, 1);
}

/**
 * hugetlb_remove_rmap(folio): one whole-folio mapping less.
 * @kernel include/linux/rmap.h:hugetlb_remove_rmap (v6.8+; page_remove_rmap(page, true)
 *   before)
 */
export function hugetlb_remove_rmap(f: folio): void {
  folio_entire_mapcount_add(f, -1);
}

/**
 * hugetlb_try_dup_anon_rmap(folio, vma): fork shares an anonymous hugetlb folio unless
 * it is exclusive and may be pinned for DMA (then -EBUSY: the caller copies it).
 * @kernel include/linux/rmap.h:hugetlb_try_dup_anon_rmap (v6.8+; page_try_dup_anon_rmap
 *   v5.19–v6.7, fb3d824d1a46)
 * Return: 0 or -EBUSY.
 */
export function hugetlb_try_dup_anon_rmap(f: folio, vma: vm_area_struct): number {
  if (PageAnonExclusive(f as number as page)) {
    if (folio_needs_cow_for_dma(vma, f)) return -16; // -EBUSY
    for (let i = 0; i < folio_nr_pages(f); i++) ClearPageAnonExclusive((f + i) as page);
  }
  folio_entire_mapcount_add(f, 1);
  return 0;
}

/** folio_move_anon_rmap + SetPageAnonExclusive for a whole hugetlb folio. */
function hugetlb_folio_make_exclusive(f: folio, vma: vm_area_struct): void {
  folio_move_anon_rmap(f, vma);
  for (let i = 0; i < folio_nr_pages(f); i++) SetPageAnonExclusive((f + i) as page);
}

/* ---------------------------------------------------------------------------------- */
/* Allocating a hugetlb folio for a VMA                                                */
/* ---------------------------------------------------------------------------------- */

/**
 * dequeue_hugetlb_folio_vma(h, vma, address, gbl_chg): a free pool folio; a page not
 * covered by a reservation (gbl_chg) needs one no reservation claims.
 * @kernel mm/hugetlb.c:dequeue_hugetlb_folio_vma (v6.3+; dequeue_huge_page_vma before,
 *   with vma_has_reserves and avoid_reserve, the same outcome)
 * Locking: hugetlb_lock held.
 */
function dequeue_hugetlb_folio_vma(h: hstate, gbl_chg: number): folio | null {
  if (gbl_chg && !available_huge_pages(h)) return null;
  return dequeue_hugetlb_folio_nodemask(h);
}

/**
 * alloc_hugetlb_folio(vma, addr, cow_from_owner): a folio for a fault (or fork's copy):
 * from a reservation if the VMA has one for addr (the folio is marked
 * HPG_restore_reserve and resv_huge_pages drops), else from the unreserved free pages,
 * else a surplus page. The reserve map records the allocation. cow_from_owner (the reserve
 * owner's COW of its own anonymous page) never uses the VMA's reservation.
 * @kernel mm/hugetlb.c:alloc_hugetlb_folio (v6.3+; alloc_huge_page(vma, addr,
 *   avoid_reserve) before, same accounting for the model's cases)
 * Locking: mmap_lock held; takes hugetlb_lock.
 * Return: the folio (one reference) or -ENOMEM / -ENOSPC (ERR_PTR).
 */
export function* alloc_hugetlb_folio(
  vma: vm_area_struct,
  addr: number,
  cow_from_owner: boolean,
): Op<folio | number> {
  const h = hstate_vma(vma);
  const MAP_CHG_REUSE = 0;
  const MAP_CHG_NEEDED = 1;
  const MAP_CHG_ENFORCED = 2;
  let map_chg: number;
  if (cow_from_owner) {
    // Special case! Since it's a CoW on top of a reserved page, the private resv map
    // doesn't count. So it cannot consume the per-vma resv map even if it's reserved.
    map_chg = MAP_CHG_ENFORCED;
  } else {
    const retval = vma_needs_reservation(h, vma, addr);
    if (retval < 0) return -ENOMEM;
    map_chg = retval ? MAP_CHG_NEEDED : MAP_CHG_REUSE;
  }
  let gbl_chg = 0;
  if (map_chg) {
    gbl_chg = hugepage_subpool_get_pages(null, 1);
    if (gbl_chg < 0) {
      if (map_chg !== MAP_CHG_ENFORCED) vma_end_reservation(h, vma, addr);
      return -ENOSPC;
    }
  }
  yield* spin_lock(hugetlb_lock());
  let f = dequeue_hugetlb_folio_vma(h, gbl_chg);
  if (f === null) {
    yield* spin_unlock(hugetlb_lock());
    f = yield* alloc_surplus_hugetlb_folio(h, htlb_alloc_mask(h));
    if (f === null) {
      // out_subpool_put: put page to subpool iff the quota of subpool's rsv_hpages is used
      if (map_chg && !gbl_chg) {
        const gbl_reserve = hugepage_subpool_put_pages(null, 1);
        yield* hugetlb_acct_memory(h, -gbl_reserve);
      }
      if (map_chg !== MAP_CHG_ENFORCED) vma_end_reservation(h, vma, addr);
      return -ENOSPC;
    }
    yield* spin_lock(hugetlb_lock());
    h.hugepage_activelist.add(f);
    // folio_ref_unfreeze(folio, 1)
    folio_get_unfrozen(f);
  }
  // Either dequeued or buddy-allocated folio needs to add special mark to the folio when
  // it consumes a global reservation.
  if (!gbl_chg) {
    folio_set_hugetlb_restore_reserve(f);
    h.resv_huge_pages--;
  }
  yield* spin_unlock(hugetlb_lock());
  // hugetlb_set_folio_subpool(folio, spool): no subpools.
  if (map_chg !== MAP_CHG_ENFORCED) {
    const retval = vma_commit_reservation(h, vma, addr);
    // The page was added to the reservation map between vma_needs_reservation and
    // vma_commit_reservation (a race with hugetlb_reserve_pages).
    if (map_chg === MAP_CHG_NEEDED && retval === 0) {
      const rsv_adjust = hugepage_subpool_put_pages(null, 1);
      yield* hugetlb_acct_memory(h, -rsv_adjust);
    }
  }
  return f;
}

/** folio_ref_unfreeze(folio, 1): a fresh surplus folio (refcount 0) gets its reference. */
function folio_get_unfrozen(f: folio): void {
  set_page_count(f as number as page, 1);
}

/* ---------------------------------------------------------------------------------- */
/* The hugetlbfs page cache                                                            */
/* ---------------------------------------------------------------------------------- */

/** The page-cache index of huge-page index idx (base pages, as v6.7+ keys it). */
function hugetlb_cache_index(h: hstate, idx: number): number {
  return idx * pages_per_huge_page(h);
}

/**
 * hugetlb_add_to_page_cache(folio, mapping, idx): a new folio of a shared mapping joins
 * the file, locked and dirty (so nothing but hugetlbfs truncation removes it); its
 * reservation now lives in the inode's map.
 * @kernel mm/hugetlb.c:hugetlb_add_to_page_cache (v6.3+; huge_add_to_page_cache before)
 * Locking: the hugetlb fault mutex held.
 * Return: 0 or -EEXIST.
 */
export function* hugetlb_add_to_page_cache(
  f: folio,
  mapping: address_space,
  idx: number,
): Op<number> {
  const h = hstate_inode(mapping.host);
  __folio_set_locked(f);
  const err = yield* __filemap_add_folio(mapping, f, hugetlb_cache_index(h, idx));
  if (err) {
    __folio_clear_locked(f);
    return err;
  }
  folio_clear_hugetlb_restore_reserve(f);
  // mark folio dirty so that it will not be removed from cache/file by non-hugetlbfs
  // specific code paths.
  yield* folio_mark_dirty(f);
  return 0;
}

/**
 * filemap_lock_hugetlb_folio(h, mapping, idx): the locked page-cache folio at huge index
 * idx, with a reference.
 * @kernel include/linux/hugetlb.h:filemap_lock_hugetlb_folio (v6.5+; find_lock_page
 *   before)
 * Return: the folio or null (ERR_PTR(-ENOENT)).
 */
export function* filemap_lock_hugetlb_folio(
  h: hstate,
  mapping: address_space,
  idx: number,
): Op<folio | null> {
  const r = yield* __filemap_get_folio(mapping, hugetlb_cache_index(h, idx), FGP_LOCK, 0);
  return r < 0 ? null : (r as folio);
}

/**
 * hugetlb_delete_from_page_cache(folio): a locked folio leaves the file (clean, not
 * uptodate); the cache's references are dropped.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_delete_from_page_cache (v6.1+;
 *   remove_huge_page before)
 */
export function* hugetlb_delete_from_page_cache(f: folio): Op<void> {
  folio_clear_dirty(f);
  folio_clear_uptodate(f);
  yield* filemap_remove_folio(f);
}

/**
 * hugetlbfs_pagecache_present(h, vma, address): does the file have a folio for address?
 * @kernel mm/hugetlb.c:hugetlbfs_pagecache_present (all versions)
 */
export function* hugetlbfs_pagecache_present(
  h: hstate,
  vma: vm_area_struct,
  address: number,
): Op<boolean> {
  const mapping = vma.vm_file!.f_mapping;
  const idx = vma_hugecache_offset(h, vma, address);
  const r = yield* __filemap_get_folio(mapping, hugetlb_cache_index(h, idx), 0, 0);
  if (r < 0) return false;
  folio_put(r as folio);
  return true;
}

/* ---------------------------------------------------------------------------------- */
/* Faults                                                                              */
/* ---------------------------------------------------------------------------------- */

/**
 * hugetlb_fault_mutex_hash(mapping, idx) and the hugetlb_fault_mutex_table: serialises
 * the instantiation of one huge page of a file. The model has one mutex per (mapping,
 * idx) (the kernel hashes them into a table: unrelated pages may share a mutex).
 * @kernel mm/hugetlb.c:hugetlb_fault_mutex_hash (all versions)
 */
export function hugetlb_fault_mutex(mapping: address_space, idx: number): mutex {
  const k = currentKernel();
  const table = ((k.sub.hugetlb_fault_mutex_table as Map<string, mutex> | undefined) ??= new Map());
  const key = `${mapping.id}:${idx}`;
  let m = table.get(key);
  if (!m) {
    m = new mutex(`hugetlb_fault_mutex[mapping${mapping.id}:${idx}]`);
    table.set(key, m);
  }
  return m;
}

/** folio_zero_user(folio, addr_hint): clears the 512 frames. */
function folio_zero_user(f: folio): void {
  for (let i = 0; i < folio_nr_pages(f); i++) phys_clear_frame(f + i);
}

/** copy_user_large_folio(dst, src, addr_hint, vma): copies the 512 frames. Return: 0. */
function copy_user_large_folio(dst: folio, src: folio): number {
  for (let i = 0; i < folio_nr_pages(src); i++) phys_copy_frame(dst + i, src + i);
  return 0;
}

/**
 * hugetlb_pte_stable(h, mm, addr, ptep, old_pte): the entry is still old_pte, checked
 * under the huge PTE lock.
 * @kernel mm/hugetlb.c:hugetlb_pte_stable (v6.1+; an open-coded none check before)
 */
function* hugetlb_pte_stable(
  h: hstate,
  mm: mm_struct,
  ptep: pmd_t_ptr,
  old_pte: pteval_t,
): Op<boolean> {
  const ptl = yield* huge_pte_lock(h, mm, ptep);
  const same = ptep_get(ptep) === old_pte;
  yield* spin_unlock(ptl);
  return same;
}

/**
 * unmap_ref_private(mm, vma, folio, address): the reserve owner failed to COW a page its
 * children share for lack of pool pages: the page is unmapped from the children's
 * private VMAs, which are marked HPAGE_RESV_UNMAPPED (their next fault there is SIGBUS).
 * @kernel mm/hugetlb.c:unmap_ref_private (all versions)
 * Locking: takes i_mmap_rwsem for write.
 */
function* unmap_ref_private(
  _mm: mm_struct,
  vma: vm_area_struct,
  f: folio,
  address: number,
): Op<void> {
  const h = hstate_vma(vma);
  address = huge_page_align_down(h, address);
  const pgoff = (address - vma.vm_start) / PAGE_SIZE + vma.vm_pgoff;
  const mapping = vma.vm_file!.f_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  for (const iter_vma of [...mapping.i_mmap]) {
    if (
      pgoff < iter_vma.vm_pgoff ||
      pgoff >= iter_vma.vm_pgoff + (iter_vma.vm_end - iter_vma.vm_start) / PAGE_SIZE
    )
      continue;
    // Do not unmap the current VMA
    if (iter_vma === vma) continue;
    // Shared VMAs have their own reserves and do not affect MAP_PRIVATE accounting.
    if (iter_vma.vm_flags & VM_MAYSHARE) continue;
    // Unmap the page from other VMAs without their own reserves.
    if (!is_vma_resv_set(iter_vma, HPAGE_RESV_OWNER))
      yield* unmap_hugepage_range(iter_vma, address, address + huge_page_size(h), f, 0);
  }
  yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * hugetlb_wp(vmf): a write (or, v5.19+, unshare) fault on a read-only huge entry.
 * - v6.0+ (1d8d14641fd9): shared mappings make the entry writable in place; v6.0–v6.13 a
 *   write fault without VM_WRITE (FOLL_FORCE) is WARN_ON_ONCE and VM_FAULT_SIGSEGV.
 * - an anonymous folio mapped once is reused: made exclusive and, for a write, writable
 *   (from v6.14 only with VM_WRITE: a FOLL_FORCE write keeps it read-only, GUP then
 *   follows the exclusive page; O-8).
 * - otherwise copy-on-write: a new folio (the reserve owner does not use its
 *   reservation for a page its children share; if none is left, the children lose the
 *   page: unmap_ref_private), the contents copied, the entry replaced by the new
 *   folio's (writable for a write with VM_WRITE; v6.14+ only with VM_WRITE, before always).
 * Before v6.0 (hugetlb_cow) shared mappings went through the same reuse/copy code and the
 *   new entry was writable regardless of VM_WRITE.
 * @kernel mm/hugetlb.c:hugetlb_wp (v5.19+; hugetlb_cow before)
 * Locking: hugetlb fault mutex and the huge PTE lock (vmf->ptl) held on entry and on
 *   return (dropped while allocating and copying).
 * Return: 0 or VM_FAULT_* error bits.
 * Left out: uffd-wp, delay accounting.
 */
export function* hugetlb_wp(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const unshare = since(5, 19) && (vmf.flags & FAULT_FLAG_UNSHARE) !== 0;
  const pte = ptep_get(vmf.pte!);
  const h = hstate_vma(vma);
  let ret: vm_fault_t = 0;
  if (since(6, 0)) {
    // 1d8d14641fd9: hugetlb does not support FOLL_FORCE-style write faults that keep the
    // PTE mapped R/O such as maybe_mkwrite() would do (until v6.14).
    if (!since(6, 14) && WARN_ON_ONCE(!unshare && !(vma.vm_flags & VM_WRITE)))
      return VM_FAULT_SIGSEGV;
    // Let's take out MAP_SHARED mappings first.
    if (vma.vm_flags & VM_MAYSHARE) {
      if (!since(6, 2) && unshare) return 0;
      yield* set_huge_ptep_writable(vma, vmf.address, vmf.pte!);
      return 0;
    }
  }
  const old_folio = page_folio(pte_pfn(pte) as page);
  for (;;) {
    // retry_avoidcopy: If no-one else is actually using this page, we're the exclusive
    // owner and can reuse this page.
    if (folio_mapcount(old_folio) === 1 && folio_test_anon(old_folio)) {
      if (!since(5, 19) || !PageAnonExclusive(old_folio as number as page))
        hugetlb_folio_make_exclusive(old_folio, vma);
      if (!unshare) {
        if (since(6, 14)) yield* set_huge_ptep_maybe_writable(vma, vmf.address, vmf.pte!);
        else yield* set_huge_ptep_writable(vma, vmf.address, vmf.pte!);
      }
      return 0;
    }
    if (since(5, 19))
      VM_BUG_ON(
        folio_test_anon(old_folio) && PageAnonExclusive(old_folio as number as page),
        `VM_BUG_ON_PAGE(folio_test_anon(old_folio) && PageAnonExclusive(&old_folio->page)) pfn:0x${old_folio.toString(16)}`,
      );
    // If the process that created a MAP_PRIVATE mapping is about to perform a COW due to
    // a shared page count, attempt to satisfy the allocation without using the existing
    // reserves.
    const cow_from_owner = is_vma_resv_set(vma, HPAGE_RESV_OWNER) && folio_test_anon(old_folio);
    folio_get(old_folio);
    // Drop page table lock as buddy allocator may be called.
    yield* spin_unlock(vmf.ptl!);
    const r = yield* alloc_hugetlb_folio(vma, vmf.address, cow_from_owner);
    if (r < 0) {
      if (cow_from_owner) {
        const mapping = vma.vm_file!.f_mapping;
        folio_put(old_folio);
        // Drop hugetlb_fault_mutex (and the vma lock / i_mmap_rwsem) before unmapping,
        // which needs them for write. Reacquire both after unmap operation.
        const m = hugetlb_fault_mutex(mapping, vmf.pgoff);
        yield* mutex_unlock(m);
        if (!since(6, 1)) yield* up_read(mapping.i_mmap_rwsem);
        yield* unmap_ref_private(mm, vma, old_folio, vmf.address);
        if (!since(6, 1)) yield* down_read(mapping.i_mmap_rwsem);
        yield* mutex_lock(m);
        yield* spin_lock(vmf.ptl!);
        vmf.pte = hugetlb_walk(vma, vmf.address, huge_page_size(h));
        if (vmf.pte && ptep_get(vmf.pte) === pte) continue; // goto retry_avoidcopy
        // race occurs while re-acquiring page table lock, and our job is done.
        return 0;
      }
      ret = vmf_error(r);
      folio_put(old_folio);
      yield* spin_lock(vmf.ptl!); // Caller expects lock to be held
      return ret;
    }
    let new_folio = r as folio;
    out_release_all: {
      // When the original hugepage is shared one, it does not have anon_vma prepared.
      if (anon_vma_prepare(vma)) {
        ret = VM_FAULT_OOM;
        break out_release_all;
      }
      copy_user_large_folio(new_folio, old_folio);
      folio_mark_uptodate(new_folio);
      const range = mmu_notifier_range_init(
        MMU_NOTIFY_CLEAR,
        0,
        mm,
        vmf.address,
        vmf.address + huge_page_size(h),
      );
      yield* mmu_notifier_invalidate_range_start(range);
      // Retake the page table lock to check for racing updates before the page tables
      // are altered
      yield* spin_lock(vmf.ptl!);
      vmf.pte = hugetlb_walk(vma, vmf.address, huge_page_size(h));
      if (vmf.pte && ptep_get(vmf.pte) === pte) {
        // v6.14+: writable only with VM_WRITE (make_huge_pte checks it).
        const newpte = make_huge_pte(vma, new_folio, !unshare);
        // Break COW or unshare
        yield* huge_ptep_clear_flush(vma, vmf.address, vmf.pte);
        hugetlb_remove_rmap(old_folio);
        hugetlb_add_new_anon_rmap(new_folio, vma, vmf.address);
        yield* set_huge_pte_at(mm, vmf.address, vmf.pte, newpte);
        folio_set_hugetlb_migratable(new_folio);
        // Make the old page be freed below
        new_folio = old_folio;
      }
      yield* spin_unlock(vmf.ptl!);
      yield* mmu_notifier_invalidate_range_end(range);
    }
    // out_release_all: No restore in case of successful pagetable update (Break COW or
    // unshare)
    if (new_folio !== old_folio) restore_reserve_on_error(h, vma, vmf.address, new_folio);
    folio_put(new_folio);
    // out_release_old:
    folio_put(old_folio);
    yield* spin_lock(vmf.ptl!); // Caller expects lock to be held
    return ret;
  }
}

/**
 * hugetlb_no_page(mapping, vmf): a fault on an empty huge entry. The page comes from the
 * file's page cache if it is there; otherwise a new folio is taken from the pool
 * (SIGBUS beyond i_size or when the pool cannot supply one) and zeroed: shared mappings
 * add it to the page cache, private ones map it as a new anonymous folio. The entry is
 * writable only for shared writable mappings; a private write fault then COWs at once
 * (hugetlb_wp). A VMA whose pages its reserve owner took back (HPAGE_RESV_UNMAPPED) gets
 * SIGBUS with "PID %d killed due to inadequate hugepage pool".
 * @kernel mm/hugetlb.c:hugetlb_no_page (all versions; the i_size check moved after the
 *   page-cache lookup in v6.1, the same outcome)
 * Locking: hugetlb fault mutex held (the caller drops it).
 * Return: 0 or VM_FAULT_* (SIGBUS, OOM).
 */
function* hugetlb_no_page(mapping: address_space, vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const h = hstate_vma(vma);
  let ret: vm_fault_t = VM_FAULT_SIGBUS;
  let new_folio = false;
  let new_anon_folio = false;
  let folio_locked = true;
  // Currently, we are forced to kill the process in the event the original mapper has
  // unmapped pages from the child due to a failed COW/unsharing.
  if (is_vma_resv_set(vma, HPAGE_RESV_UNMAPPED)) {
    pr_warn(`PID ${get_current().pid} killed due to inadequate hugepage pool`);
    return ret;
  }
  let f = yield* filemap_lock_hugetlb_folio(h, mapping, vmf.pgoff);
  if (f === null) {
    const size = Math.floor(mapping.host.i_size / huge_page_size(h));
    if (vmf.pgoff >= size) return ret;
    if (!(vma.vm_flags & VM_MAYSHARE) && since(6, 10)) {
      // __vmf_anon_prepare (v6.10+; anon_vma_prepare after the allocation before)
      if (anon_vma_prepare(vma)) return VM_FAULT_OOM;
    }
    const r = yield* alloc_hugetlb_folio(vma, vmf.address, false);
    if (r < 0) {
      // Returning error will result in faulting task being sent SIGBUS. Before returning
      // error, get ptl and make sure there really is no pte entry.
      if (yield* hugetlb_pte_stable(h, mm, vmf.pte!, vmf.orig_pte)) ret = vmf_error(r);
      else ret = 0;
      return ret;
    }
    f = r as folio;
    folio_zero_user(f);
    folio_mark_uptodate(f);
    new_folio = true;
    if (vma.vm_flags & VM_MAYSHARE) {
      const err = yield* hugetlb_add_to_page_cache(f, mapping, vmf.pgoff);
      if (err) {
        // err can't be -EEXIST: the hugetlb fault mutex is held when adding a page.
        restore_reserve_on_error(h, vma, vmf.address, f);
        folio_put(f);
        return VM_FAULT_SIGBUS;
      }
    } else {
      new_anon_folio = true;
      yield* folio_lock(f);
      if (!since(6, 10) && anon_vma_prepare(vma)) {
        ret = VM_FAULT_OOM;
        restore_reserve_on_error(h, vma, vmf.address, f);
        yield* folio_unlock(f);
        folio_put(f);
        return ret;
      }
    }
  }
  // If we are going to COW a private mapping later, we examine the pending reservations
  // for this page now.
  if (vmf.flags & FAULT_FLAG_WRITE && !(vma.vm_flags & VM_SHARED)) {
    if (vma_needs_reservation(h, vma, vmf.address) < 0) {
      ret = VM_FAULT_OOM;
      if (new_anon_folio) restore_reserve_on_error(h, vma, vmf.address, f);
      yield* folio_unlock(f);
      folio_put(f);
      return ret;
    }
    // Just decrements count, does not deallocate
    vma_end_reservation(h, vma, vmf.address);
  }
  vmf.ptl = yield* huge_pte_lock(h, mm, vmf.pte!);
  ret = 0;
  // If pte changed from under us, retry
  if (ptep_get(vmf.pte!) !== vmf.orig_pte) {
    // backout:
    yield* spin_unlock(vmf.ptl);
    if (new_anon_folio) restore_reserve_on_error(h, vma, vmf.address, f);
    yield* folio_unlock(f);
    folio_put(f);
    return ret;
  }
  if (new_anon_folio) hugetlb_add_new_anon_rmap(f, vma, vmf.address);
  else hugetlb_add_file_rmap(f);
  const new_pte = make_huge_pte(
    vma,
    f,
    since(6, 14)
      ? (vma.vm_flags & VM_SHARED) !== 0n
      : (vma.vm_flags & VM_WRITE) !== 0n && (vma.vm_flags & VM_SHARED) !== 0n,
  );
  yield* set_huge_pte_at(mm, vmf.address, vmf.pte!, new_pte);
  hugetlb_count_add(pages_per_huge_page(h), mm);
  if (vmf.flags & FAULT_FLAG_WRITE && !(vma.vm_flags & VM_SHARED)) {
    // No need to keep file folios locked.
    if (!new_anon_folio) {
      folio_locked = false;
      yield* folio_unlock(f);
    }
    // Optimization, do the COW without a second fault
    ret = yield* hugetlb_wp(vmf);
  }
  yield* spin_unlock(vmf.ptl);
  // Only set hugetlb_migratable in newly allocated pages.
  if (new_folio) folio_set_hugetlb_migratable(f);
  if (folio_locked) yield* folio_unlock(f);
  return ret;
}

/**
 * hugetlb_fault(mm, vma, address, flags): the fault handler of hugetlb VMAs (called by
 * handle_mm_fault instead of __handle_mm_fault). Under the fault mutex of the huge page
 * (and, before v6.1, i_mmap_rwsem for read): the PMD slot is allocated; an empty entry
 * goes to hugetlb_no_page; a write or unshare fault on a read-only entry of a private
 * mapping (any mapping before v6.0) to hugetlb_wp; otherwise the entry is made young
 * (and dirty for a write).
 * @kernel mm/hugetlb.c:hugetlb_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: vm_fault_t.
 * Left out: migration and hwpoison entries (never created for hugetlb in the model),
 *   userfaultfd, the wait for a locked anonymous folio (the fault returns 0 and retries).
 */
export function* hugetlb_fault(
  mm: mm_struct,
  vma: vm_area_struct,
  address: number,
  flags: number,
): Op<vm_fault_t> {
  const h = hstate_vma(vma);
  const haddr = huge_page_align_down(h, address);
  const vmf: vm_fault = {
    vma,
    address: haddr,
    real_address: address,
    flags,
    pgoff: vma_hugecache_offset(h, vma, haddr),
    gfp_mask: 0,
    pmd: null,
    pud: null,
    orig_pte: 0,
    orig_pmd: 0,
    cow_page: null,
    page: null,
    pte: null,
    ptl: null,
  };
  // Serialize hugepage allocation and instantiation, so that we don't get spurious
  // allocation failures if two CPUs race to instantiate the same page in the page cache.
  const mapping = vma.vm_file!.f_mapping;
  const m = hugetlb_fault_mutex(mapping, vmf.pgoff);
  const old_locking = !since(6, 1);
  if (old_locking) yield* down_read(mapping.i_mmap_rwsem);
  else yield* mutex_lock(m);
  let ret: vm_fault_t = 0;
  out_mutex: {
    vmf.pte = yield* huge_pte_alloc(mm, vma, vmf.address, huge_page_size(h));
    if (!vmf.pte) {
      if (old_locking) yield* up_read(mapping.i_mmap_rwsem);
      else yield* mutex_unlock(m);
      return VM_FAULT_OOM;
    }
    if (old_locking) yield* mutex_lock(m);
    vmf.orig_pte = yield* ptep_get_lockless(vmf.pte, 'huge_ptep_get');
    if (huge_pte_none(vmf.orig_pte)) {
      ret = yield* hugetlb_no_page(mapping, vmf);
      break out_mutex;
    }
    // Not present, either a migration or a hwpoisoned entry (none in the model).
    if (!pte_present(vmf.orig_pte)) break out_mutex;
    // If we are going to COW/unshare the mapping later, we examine the pending
    // reservations for this page now.
    const cow_flags = since(5, 19) ? FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE : FAULT_FLAG_WRITE;
    if (
      flags & cow_flags &&
      (!since(6, 0) || !(vma.vm_flags & VM_MAYSHARE)) &&
      !huge_pte_write(vmf.orig_pte)
    ) {
      if (vma_needs_reservation(h, vma, vmf.address) < 0) {
        ret = VM_FAULT_OOM;
        break out_mutex;
      }
      // Just decrements count, does not deallocate
      vma_end_reservation(h, vma, vmf.address);
    }
    vmf.ptl = yield* huge_pte_lock(h, mm, vmf.pte);
    out_ptl: {
      // Check for a racing update before calling hugetlb_wp()
      if (vmf.orig_pte !== ptep_get(vmf.pte)) break out_ptl;
      if (flags & cow_flags) {
        if (!huge_pte_write(vmf.orig_pte)) {
          // Anonymous folios need to be locked since hugetlb_wp() checks whether we can
          // re-use the folio exclusively for us in case we are the only user of it.
          const f = page_folio(pte_pfn(vmf.orig_pte) as page);
          const lock_it = folio_test_anon(f);
          if (lock_it && !(yield* folio_trylock(f))) break out_ptl; // need_wait_lock
          folio_get(f);
          ret = yield* hugetlb_wp(vmf);
          if (lock_it) yield* folio_unlock(f);
          folio_put(f);
          break out_ptl;
        } else if (flags & FAULT_FLAG_WRITE) {
          vmf.orig_pte = huge_pte_mkdirty(vmf.orig_pte);
        }
      }
      vmf.orig_pte = pte_mkyoung(vmf.orig_pte);
      yield* huge_ptep_set_access_flags(
        vma,
        vmf.address,
        vmf.pte,
        vmf.orig_pte,
        (flags & FAULT_FLAG_WRITE) !== 0,
      );
    }
    yield* spin_unlock(vmf.ptl);
  }
  yield* mutex_unlock(m);
  if (old_locking) yield* up_read(mapping.i_mmap_rwsem);
  return ret;
}

/* ---------------------------------------------------------------------------------- */
/* Unmapping                                                                           */
/* ---------------------------------------------------------------------------------- */

/**
 * __unmap_hugepage_range(tlb, vma, start, end, folio, zap_flags): clears the huge entries
 * of [start, end) (or, with folio, only the one mapping it, and marks the VMA
 * HPAGE_RESV_UNMAPPED): a dirty entry dirties the folio, HugetlbPages drops, the mapping
 * goes, and the folio's reference is gathered for after the TLB flush — the last one
 * frees it to the pool's free list (free_huge_folio). From v6.9 an anonymous folio of the
 * reserve owner has its reservation restored (HPG_restore_reserve, and the reserve map
 * entry removed), unless surplus pages are in use.
 * @kernel mm/hugetlb.c:__unmap_hugepage_range (all versions; the reservation restore v6.9+,
 *   "mm/hugetlb: restore the reservation if needed", Breno Leitao)
 * Locking: mmap_lock held; i_mmap_rwsem held for write by the callers that unmap a
 *   range of the file (unmap_single_vma's hugetlb path, truncation); takes each huge PTE
 *   lock.
 */
export function* __unmap_hugepage_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  start: number,
  end: number,
  ref_folio: folio | null,
  _zap_flags: number,
): Op<void> {
  const mm = vma.vm_mm;
  const h = hstate_vma(vma);
  const sz = huge_page_size(h);
  const folio_provided = ref_folio !== null;
  WARN_ON(!is_vm_hugetlb_page(vma));
  BUG_ON(start % sz !== 0, 'BUG_ON(start & ~huge_page_mask(h))');
  BUG_ON(end % sz !== 0, 'BUG_ON(end & ~huge_page_mask(h))');
  for (let address = start; address < end; address += sz) {
    const ptep = hugetlb_walk(vma, address, sz);
    if (!ptep) {
      // address |= last_addr_mask: skip to the end of the PUD (the next iteration adds sz).
      address = Math.floor(address / PUD_SIZE) * PUD_SIZE + PUD_SIZE - sz;
      continue;
    }
    const ptl = yield* huge_pte_lock(h, mm, ptep);
    let pte = ptep_get(ptep);
    if (huge_pte_none(pte)) {
      yield* spin_unlock(ptl);
      continue;
    }
    // Migrating hugepage or HWPoisoned hugepage is already unmapped and its refcount is
    // dropped, so just clear pte here.
    if (!pte_present(pte)) {
      yield* huge_ptep_get_and_clear(mm, address, ptep);
      yield* spin_unlock(ptl);
      continue;
    }
    let f: folio;
    if (folio_provided) {
      if (ref_folio !== page_folio(pte_pfn(pte) as page)) {
        yield* spin_unlock(ptl);
        continue;
      }
      f = ref_folio;
      // Mark the VMA as having unmapped its page so that future faults in this VMA will
      // fail rather than looking like data was lost
      set_vma_resv_flags(vma, HPAGE_RESV_UNMAPPED);
    } else {
      f = page_folio(pte_pfn(pte) as page);
    }
    pte = yield* huge_ptep_get_and_clear(mm, address, ptep);
    tlb.start = Math.min(tlb.start, address); // tlb_remove_huge_tlb_entry
    tlb.end = Math.max(tlb.end, address + sz);
    if (huge_pte_dirty(pte)) yield* folio_mark_dirty(f);
    hugetlb_count_sub(pages_per_huge_page(h), mm);
    hugetlb_remove_rmap(f);
    // Restore the reservation for anonymous page, otherwise the backing page could be
    // stolen by someone. If there we are freeing a surplus, do not set the restore
    // reservation bit.
    let adjust_reservation = false;
    if (since(6, 9) && !h.surplus_huge_pages && __vma_private_lock(vma) && folio_test_anon(f)) {
      folio_set_hugetlb_restore_reserve(f);
      adjust_reservation = true;
    }
    yield* spin_unlock(ptl);
    if (adjust_reservation) {
      const rc = vma_needs_reservation(h, vma, address);
      if (rc < 0) folio_clear_hugetlb_restore_reserve(f);
      else if (rc) vma_add_reservation(h, vma, address);
      else vma_end_reservation(h, vma, address);
    }
    tlb_remove_page_size(tlb, f as number as page, sz);
    // If we were instructed to unmap a specific folio, we're done.
    if (folio_provided) break;
  }
}

/**
 * __unmap_hugepage_range_final(tlb, vma, start, end, folio, zap_flags): unmap_single_vma's
 * zap of a hugetlb VMA, under i_mmap_rwsem for write (v6.7+ takes it in hugetlb_zap_begin
 * and drops it in hugetlb_zap_end around the same call). A VMA without a file (mmap's
 * error cleanup) is skipped.
 * @kernel mm/memory.c:unmap_single_vma (the is_vm_hugetlb_page branch, all versions),
 *   mm/hugetlb.c:__unmap_hugepage_range_final (≤ v6.6), __hugetlb_zap_begin/end (v6.7+)
 * Locking: mmap_lock held; takes i_mmap_rwsem for write.
 * Left out: the VM_MAYSHARE clearing of ≤ v6.0 (it only mattered for PMD sharing).
 */
export function* __unmap_hugepage_range_final(
  tlb: mmu_gather,
  vma: vm_area_struct,
  start: number,
  end: number,
  ref_folio: folio | null,
  zap_flags: number,
): Op<void> {
  if (!vma.vm_file) return;
  const mapping = vma.vm_file.f_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  yield* __unmap_hugepage_range(tlb, vma, start, end, ref_folio, zap_flags);
  yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * unmap_hugepage_range(vma, start, end, folio, zap_flags): a zap with its own gather,
 * inside an MMU_NOTIFY_CLEAR range.
 * @kernel mm/hugetlb.c:unmap_hugepage_range (all versions)
 * Locking: mmap_lock or i_mmap_rwsem held (truncation, unmap_ref_private).
 */
export function* unmap_hugepage_range(
  vma: vm_area_struct,
  start: number,
  end: number,
  ref_folio: folio | null,
  zap_flags: number,
): Op<void> {
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, vma.vm_mm, start, end);
  yield* mmu_notifier_invalidate_range_start(range);
  const tlb = tlb_gather_mmu(vma.vm_mm);
  yield* __unmap_hugepage_range(tlb, vma, start, end, ref_folio, zap_flags);
  yield* mmu_notifier_invalidate_range_end(range);
  yield* tlb_finish_mmu(tlb);
}

/* ---------------------------------------------------------------------------------- */
/* fork                                                                                */
/* ---------------------------------------------------------------------------------- */

/**
 * hugetlb_install_folio(vma, ptep, addr, new_folio, old, sz): fork's copy of a pinned
 * anonymous folio is mapped in the child (writable only with VM_WRITE from v6.14).
 * @kernel mm/hugetlb.c:hugetlb_install_folio (v6.2+; open-coded before)
 */
function* hugetlb_install_folio(
  vma: vm_area_struct,
  ptep: pmd_t_ptr,
  addr: number,
  new_folio: folio,
): Op<void> {
  const newpte = make_huge_pte(vma, new_folio, true);
  folio_mark_uptodate(new_folio);
  hugetlb_add_new_anon_rmap(new_folio, vma, addr);
  yield* set_huge_pte_at(vma.vm_mm, addr, ptep, newpte);
  hugetlb_count_add(pages_per_huge_page(hstate_vma(vma)), vma.vm_mm);
  folio_set_hugetlb_migratable(new_folio);
}

/**
 * copy_hugetlb_page_range(dst, src, dst_vma, src_vma): fork's copy of a hugetlb VMA's
 * entries. Shared mappings: the child maps the same folios. Private (COW) mappings: the
 * parent's entries are write-protected and the child gets them read-only, the folios
 * shared (anonymous ones lose their exclusive bit) — except an anonymous folio that may
 * be pinned for DMA (v5.12+), which is copied for the child at once. Each copied entry
 * adds to the child's HugetlbPages.
 * @kernel mm/hugetlb.c:copy_hugetlb_page_range (all versions; (dst, src, vma) before
 *   v5.19; pinned copy v5.12+ (4eae4efa2c29: page_needs_cow_for_dma until v5.18,
 *   hugetlb_try_dup_anon_rmap-style after); write_protect_seq v5.19+ (623a1ddfeb23))
 * Locking: mmap_lock of both mms held for write; takes both huge PTE locks per entry.
 * Return: 0, -ENOMEM, or the allocation error of a pinned folio's copy (-ENOSPC).
 */
export function* copy_hugetlb_page_range(
  dst: mm_struct,
  src: mm_struct,
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
): Op<number> {
  const cow = is_cow_mapping(src_vma.vm_flags);
  const h = hstate_vma(src_vma);
  const sz = huge_page_size(h);
  const npages = pages_per_huge_page(h);
  let ret = 0;
  const mapping = src_vma.vm_file?.f_mapping ?? null;
  let range = null;
  if (cow) {
    range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, src, src_vma.vm_start, src_vma.vm_end);
    yield* mmu_notifier_invalidate_range_start(range);
    if (since(5, 19)) yield* src.write_protect_seq.writeBegin('raw_write_seqcount_begin');
  } else if (!since(6, 1) && mapping) {
    // For shared mappings i_mmap_rwsem must be held to call huge_pte_alloc (≤ v6.0; the
    // hugetlb vma lock after, not modelled).
    yield* down_read(mapping.i_mmap_rwsem);
  }
  for (let addr = src_vma.vm_start; addr < src_vma.vm_end; addr += sz) {
    const src_pte = hugetlb_walk(src_vma, addr, sz);
    if (!src_pte) {
      addr = Math.floor(addr / PUD_SIZE) * PUD_SIZE + PUD_SIZE - sz;
      continue;
    }
    const dst_pte = yield* huge_pte_alloc(dst, dst_vma, addr, sz);
    if (!dst_pte) {
      ret = -ENOMEM;
      break;
    }
    let dst_ptl = yield* huge_pte_lock(h, dst, dst_pte);
    let src_ptl = huge_pte_lockptr(h, src, src_pte);
    yield* spin_lock(src_ptl);
    let entry = ptep_get(src_pte);
    let done = false;
    while (!done) {
      // again:
      done = true;
      if (huge_pte_none(entry)) break; // Skip if src entry none.
      entry = ptep_get(src_pte);
      const pte_folio = page_folio(pte_pfn(entry) as page);
      folio_get(pte_folio);
      // Failing to duplicate the anon rmap is a rare case where we see pinned hugetlb
      // pages while they're prone to COW. We need to do the COW earlier during fork.
      let copy: boolean;
      if (since(5, 19)) {
        copy = folio_test_anon(pte_folio) && hugetlb_try_dup_anon_rmap(pte_folio, src_vma) !== 0;
        if (!folio_test_anon(pte_folio)) hugetlb_add_file_rmap(pte_folio);
      } else {
        copy = since(5, 12) && folio_needs_cow_for_dma(src_vma, pte_folio);
        if (!copy) hugetlb_add_file_rmap(pte_folio); // page_dup_rmap(ptepage, true)
      }
      if (copy) {
        const src_pte_old = entry;
        yield* spin_unlock(src_ptl);
        yield* spin_unlock(dst_ptl);
        // Do not use reserve as it's private owned
        const r = yield* alloc_hugetlb_folio(dst_vma, addr, false);
        if (r < 0) {
          folio_put(pte_folio);
          ret = r;
          break;
        }
        const new_folio = r as folio;
        copy_user_large_folio(new_folio, pte_folio);
        folio_put(pte_folio);
        // Install the new hugetlb folio if src pte stable
        dst_ptl = yield* huge_pte_lock(h, dst, dst_pte);
        src_ptl = huge_pte_lockptr(h, src, src_pte);
        yield* spin_lock(src_ptl);
        entry = ptep_get(src_pte);
        if (entry !== src_pte_old) {
          restore_reserve_on_error(h, dst_vma, addr, new_folio);
          folio_put(new_folio);
          // huge_ptep of dst_pte won't change as in child
          done = false;
          continue;
        }
        yield* hugetlb_install_folio(dst_vma, dst_pte, addr, new_folio);
        break;
      }
      if (cow) {
        // No need to notify as we are downgrading page table protection not changing it
        // to point to a new page.
        yield* huge_ptep_set_wrprotect(src, addr, src_pte);
        entry = huge_pte_wrprotect(entry);
      }
      yield* set_huge_pte_at(dst, addr, dst_pte, entry);
      hugetlb_count_add(npages, dst);
    }
    if (ret) break;
    yield* spin_unlock(src_ptl);
    yield* spin_unlock(dst_ptl);
  }
  if (cow) {
    if (since(5, 19)) yield* src.write_protect_seq.writeEnd('raw_write_seqcount_end');
    yield* mmu_notifier_invalidate_range_end(range!);
  } else if (!since(6, 1) && mapping) {
    yield* up_read(mapping.i_mmap_rwsem);
  }
  return ret;
}

/* ---------------------------------------------------------------------------------- */
/* mprotect                                                                            */
/* ---------------------------------------------------------------------------------- */

/**
 * hugetlb_change_protection(vma, address, end, newprot, cp_flags): applies newprot to
 * each present huge entry of [address, end) (no write upgrade: a private entry made
 * read-only stays so until a write fault reuses or copies the folio).
 * @kernel mm/hugetlb.c:hugetlb_change_protection (all versions; cp_flags v5.7+ for uffd-wp)
 * Locking: mmap_lock held for write; takes i_mmap_rwsem for write and each huge PTE lock.
 * Return: the number of base pages changed.
 */
export function* hugetlb_change_protection(
  vma: vm_area_struct,
  address: number,
  end: number,
  newprot: pgprot_t,
  _cp_flags: number,
): Op<number> {
  const mm = vma.vm_mm;
  const start = address;
  const h = hstate_vma(vma);
  const psize = huge_page_size(h);
  let pages = 0;
  const range = mmu_notifier_range_init(MMU_NOTIFY_PROTECTION_VMA, 0, mm, start, end);
  BUG_ON(address >= end, 'BUG_ON(address >= end)');
  yield* mmu_notifier_invalidate_range_start(range);
  const mapping = vma.vm_file!.f_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  for (; address < end; address += psize) {
    const ptep = hugetlb_walk(vma, address, psize);
    if (!ptep) {
      address = Math.floor(address / PUD_SIZE) * PUD_SIZE + PUD_SIZE - psize;
      continue;
    }
    const ptl = yield* huge_pte_lock(h, mm, ptep);
    const pte = ptep_get(ptep);
    if (!huge_pte_none(pte) && pte_present(pte)) {
      // huge_ptep_modify_prot_start / commit
      const old_pte = yield* huge_ptep_get_and_clear(mm, address, ptep);
      const npte = pte_mkhuge(pte_modify(old_pte, newprot));
      yield* set_huge_pte_at(mm, address, ptep, npte);
      pages++;
    }
    yield* spin_unlock(ptl);
  }
  // flush_hugetlb_tlb_range(vma, start, end): must flush before releasing i_mmap_rwsem.
  yield { obj: `mm${mm.id}.tlb`, kind: 'write', what: 'flush_hugetlb_tlb_range' };
  yield* mmu_notifier_arch_invalidate_secondary_tlbs(mm, start, end);
  yield* up_write(mapping.i_mmap_rwsem);
  yield* mmu_notifier_invalidate_range_end(range);
  return pages * pages_per_huge_page(h);
}

/* ---------------------------------------------------------------------------------- */
/* GUP's hugetlb walkers (v5.7–v6.8)                                                   */
/* ---------------------------------------------------------------------------------- */

/**
 * __follow_hugetlb_must_fault(vma, flags, pte, unshare): GUP must fault first for a
 * non-present entry, a write through a read-only entry, or (v5.19+) a read-only pin of
 * a possibly shared anonymous page (unshare).
 * @kernel mm/hugetlb.c:__follow_hugetlb_must_fault (v5.19–v6.4; open-coded before)
 */
function __follow_hugetlb_must_fault(
  vma: vm_area_struct,
  flags: number,
  pteval: pteval_t,
  unshare: { value: boolean },
): boolean {
  unshare.value = false;
  if (!pte_present(pteval)) return true;
  if (huge_pte_write(pteval)) return false;
  if (flags & FOLL_WRITE) return true;
  if (gup_must_unshare(vma, flags, pte_pfn(pteval) as page)) {
    unshare.value = true;
    return true;
  }
  return false;
}

/**
 * follow_hugetlb_page(mm, vma, pages, position, nr_pages, i, flags, locked): GUP's loop
 * over a hugetlb VMA before v6.5: for each page from *position, fault it in through
 * hugetlb_fault when needed (absent, write to read-only, unshare), then take the
 * references of every subpage of the huge page that is asked for at once
 * (try_grab_folio with refs; one try_grab_page per subpage before v5.13, the same
 * counts). FOLL_DUMP with neither an entry nor a page-cache folio stops with -EFAULT.
 * `pages` is filled from index `off + i`.
 * @kernel mm/hugetlb.c:follow_hugetlb_page (v5.7–v6.4; retired by 4849807114b8 "mm/gup:
 *   retire follow_hugetlb_page()", v6.5)
 * Locking: mmap_lock held for read; with an unlockable GUP a VM_FAULT_RETRY drops it
 *   (*locked = 0) and *nr_pages becomes 0.
 * Return: the new i (pages done so far), or the error when none were done.
 */
export function* follow_hugetlb_page(
  mm: mm_struct,
  vma: vm_area_struct,
  pages: page_array | null,
  off: number,
  position: { value: number },
  nr_pages: { value: number },
  i: number,
  flags: number,
  locked: int_ptr | null,
): Op<number> {
  let vaddr = position.value;
  let remainder = nr_pages.value;
  const h = hstate_vma(vma);
  let err = -EFAULT;
  while (vaddr < vma.vm_end && remainder) {
    // If we have a pending SIGKILL, don't keep faulting pages and potentially allocating
    // memory.
    if (fatal_signal_pending(get_current())) {
      remainder = 0;
      break;
    }
    const pte = hugetlb_walk(vma, huge_page_align_down(h, vaddr), huge_page_size(h));
    let ptl: spinlock_t | null = null;
    if (pte) ptl = yield* huge_pte_lock(h, mm, pte);
    const absent = !pte || huge_pte_none(ptep_get(pte));
    // When coredumping, it suits get_dump_page if we just return an error where there's
    // an empty slot with no huge pagecache to back it.
    if (absent && flags & FOLL_DUMP && !(yield* hugetlbfs_pagecache_present(h, vma, vaddr))) {
      if (ptl) yield* spin_unlock(ptl);
      remainder = 0;
      break;
    }
    const unshare = { value: false };
    if (absent || __follow_hugetlb_must_fault(vma, flags, ptep_get(pte!), unshare)) {
      let fault_flags = 0;
      if (ptl) yield* spin_unlock(ptl);
      if (flags & FOLL_WRITE) fault_flags |= FAULT_FLAG_WRITE;
      else if (unshare.value) fault_flags |= FAULT_FLAG_UNSHARE;
      if (locked) {
        fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
        if (since(6, 1) && flags & FOLL_INTERRUPTIBLE) fault_flags |= FAULT_FLAG_INTERRUPTIBLE;
      }
      if (flags & FOLL_NOWAIT) fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_RETRY_NOWAIT;
      // Note: FAULT_FLAG_ALLOW_RETRY and FAULT_FLAG_TRIED can co-exist
      if (flags & FOLL_TRIED) fault_flags |= FAULT_FLAG_TRIED;
      const ret = yield* hugetlb_fault(mm, vma, vaddr, fault_flags);
      if (ret & VM_FAULT_ERROR) {
        err = vm_fault_to_errno(ret, flags);
        remainder = 0;
        break;
      }
      if (ret & VM_FAULT_RETRY) {
        if (locked && !(fault_flags & FAULT_FLAG_RETRY_NOWAIT)) locked.value = 0;
        nr_pages.value = 0;
        // VM_FAULT_RETRY must not return an error, it will return zero instead.
        return i;
      }
      continue;
    }
    const pfn_offset = Math.floor((vaddr % huge_page_size(h)) / PAGE_SIZE);
    const head = pte_pfn(ptep_get(pte!));
    if (since(5, 19))
      VM_BUG_ON(
        (flags & FOLL_PIN) !== 0 &&
          folio_test_anon(head as folio) &&
          !PageAnonExclusive(head as page),
        `VM_BUG_ON_PAGE((flags & FOLL_PIN) && PageAnon(page) && !PageAnonExclusive(page)) pfn:0x${head.toString(16)}`,
      );
    // If subpage information not requested, update counters and skip the same_page loop
    // below.
    if (
      !pages &&
      !pfn_offset &&
      vaddr + huge_page_size(h) < vma.vm_end &&
      remainder >= pages_per_huge_page(h)
    ) {
      vaddr += huge_page_size(h);
      remainder -= pages_per_huge_page(h);
      i += pages_per_huge_page(h);
      yield* spin_unlock(ptl!);
      continue;
    }
    // vaddr may not be aligned to PAGE_SIZE
    const refs = Math.min(
      pages_per_huge_page(h) - pfn_offset,
      remainder,
      Math.floor((vma.vm_end - Math.floor(vaddr / PAGE_SIZE) * PAGE_SIZE) / PAGE_SIZE),
    );
    if (pages) {
      for (let nr = 0; nr < refs; nr++) pages[off + i + nr] = (head + pfn_offset + nr) as page;
      // try_grab_folio() should always succeed here, because we hold the ptl lock and
      // have verified the huge page is present.
      if (WARN_ON_ONCE(try_grab_folio(head as folio, refs, flags) !== 0)) {
        yield* spin_unlock(ptl!);
        remainder = 0;
        err = -ENOMEM;
        break;
      }
    }
    vaddr += refs * PAGE_SIZE;
    remainder -= refs;
    i += refs;
    yield* spin_unlock(ptl!);
  }
  nr_pages.value = remainder;
  position.value = vaddr;
  return i ? i : err;
}

/**
 * hugetlb_follow_page_mask(vma, address, flags, page_mask): follow_page_mask's lookup
 * in a hugetlb VMA (v6.1–v6.8): the subpage mapped at address with the reference or pin
 * taken, NULL when GUP must fault (absent, or a write through a read-only entry), -EMLINK
 * for a read-only pin that must unshare (v6.5+), -EFAULT for FOLL_DUMP of a hole without
 * a page-cache folio. v6.5+ sets *page_mask to the huge page's span (GUP then advances
 * by it). v6.1–v6.4 served follow_page() only (GUP used follow_hugetlb_page) and refused
 * FOLL_PIN with a WARN.
 * @kernel mm/hugetlb.c:hugetlb_follow_page_mask (v6.1+, 57a196a58421 "hugetlb: simplify
 *   hugetlb handling in follow_page_mask"; page_mask v6.5; removed in v6.9 when GUP
 *   began to walk hugetlb leaves generically)
 * Locking: mmap_lock held; takes the huge PTE lock.
 * Return: the page (pfn), null, or a negative errno.
 */
export function* hugetlb_follow_page_mask(
  vma: vm_area_struct,
  address: number,
  flags: number,
  page_mask: { page_mask: number } | null,
): Op<number | null> {
  const h = hstate_vma(vma);
  const mm = vma.vm_mm;
  const haddr = huge_page_align_down(h, address);
  let p: number | null = null;
  // FOLL_PIN is not supported for follow_page(). Ordinary GUP goes via
  // follow_hugetlb_page() (v6.1–v6.4).
  if (!since(6, 5) && WARN_ON_ONCE((flags & FOLL_PIN) !== 0)) return null;
  const pte = hugetlb_walk(vma, haddr, huge_page_size(h));
  if (pte) {
    const ptl = yield* huge_pte_lock(h, mm, pte);
    const entry = ptep_get(pte);
    out: if (pte_present(entry)) {
      const head = pte_pfn(entry);
      if (since(6, 5) && !huge_pte_write(entry)) {
        if (flags & FOLL_WRITE) break out;
        if (gup_must_unshare(vma, flags, head as page)) {
          // Tell the caller to do unsharing
          p = -31; // -EMLINK
          break out;
        }
      } else if (!since(6, 5) && flags & FOLL_WRITE && !huge_pte_write(entry)) {
        break out;
      }
      const sub = head + Math.floor((address % huge_page_size(h)) / PAGE_SIZE);
      // try_grab_page() should always be able to get the page here, because we hold the
      // ptl lock and have verified pte_present().
      const ret = try_grab_folio(head as folio, 1, flags);
      if (WARN_ON_ONCE(ret !== 0)) {
        p = since(6, 5) ? ret : null;
        break out;
      }
      p = sub;
      if (since(6, 5) && page_mask) page_mask.page_mask = pages_per_huge_page(h) - 1;
    }
    yield* spin_unlock(ptl);
  }
  // Fixup retval for dump requests: if pagecache doesn't exist, don't try to allocate a
  // new page but just skip it.
  if (
    since(6, 5) &&
    p === null &&
    flags & FOLL_DUMP &&
    !(yield* hugetlbfs_pagecache_present(h, vma, address))
  )
    p = -EFAULT;
  return p;
}

/* ---------------------------------------------------------------------------------- */
/* Model aids                                                                          */
/* ---------------------------------------------------------------------------------- */

/** The huge entry mapping addr in mm (its PMD slot's value), or 0: a model aid for tests. */
export function hugetlbEntryAt(mm: mm_struct, addr: number): pteval_t {
  const p = huge_pte_offset(mm, addr, PMD_SIZE);
  return p ? ptep_get(p) : 0;
}
