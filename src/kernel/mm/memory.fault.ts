/**
 * Page faults (mm/memory.c, fault half): handle_mm_fault and the handlers under it —
 * anonymous faults (zero page, new folio), file faults through ->fault (read, COW,
 * shared with ->page_mkwrite), write faults on present read-only entries (do_wp_page:
 * reuse, write-notify, pfn_mkwrite, copy-on-write including the COW of a special PTE in a
 * COW PFNMAP), and the huge PUD/PMD entry points.
 *
 * Version gates (commits cited at each gate): the anonymous-reuse rule of do_wp_page
 * (v5.7–v5.8 reuse_swap_page, v5.9–v5.18 page_count, v5.19+ PageAnonExclusive with the
 * refcount check), the shared/private rework of do_wp_page and the removal of
 * VM_FAULT_WRITE (v6.2), sanitize_fault_flags (v6.2), large-folio reuse (v6.5 never,
 * v6.15 exclusive large folios), VM_DROPPABLE (v6.11).
 *
 * Migration entries: a fault on a PTE migration entry goes through do_swap_page to
 * migration_entry_wait, one on a PMD migration entry to pmd_migration_entry_wait; both
 * sleep until the migration ends and return 0, so the access is retried and finds the
 * new folio (or the old one, if the migration failed and restored it).
 *
 * Left out: fault-around (do_fault_around / ->map_pages: every read fault maps one
 * page), swap-in (do_swap_page on a swap entry: the model has no swap and stops the run
 * with an error; device-private/exclusive, hwpoison and marker entries likewise), NUMA
 * hinting (do_numa_page; PROT_NONE PTEs only come from PROT_NONE VMAs here, which
 * access_error refuses), userfaultfd, uprobes, the per-VMA lock (faults run under
 * mmap_lock; VM_FAULT_RETRY
 * comes only from a ->fault that returns it), memcg, mTHP (anonymous faults allocate
 * order-0 or PMD-order folios only), large page-cache folios and do_set_pmd, hwpoison,
 * check_stable_address_space (the OOM reaper), KSM, dirty throttling.
 *
 * @kernel mm/memory.c (all versions)
 */
import type { Op } from '../../sched/index.js';
import { since } from '../version.js';
import type {
  folio,
  mm_struct,
  page,
  pmd_t_ptr,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../include/linux/mm_types.js';
import {
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_INSTRUCTION,
  FAULT_FLAG_INTERRUPTIBLE,
  FAULT_FLAG_KILLABLE,
  FAULT_FLAG_MKWRITE,
  FAULT_FLAG_ORIG_PTE_VALID,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_RETRY_NOWAIT,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_VMA_LOCK,
  FAULT_FLAG_WRITE,
  MM_ANONPAGES,
} from '../include/linux/mm_types.js';
import {
  add_mm_counter,
  dec_mm_counter,
  inc_mm_counter,
  is_cow_mapping,
  linear_page_index,
  mm_counter_file,
  vma_is_anonymous,
  VM_ACCESS_FLAGS,
  VM_DROPPABLE,
  VM_FAULT_DONE_COW,
  VM_FAULT_ERROR,
  VM_FAULT_FALLBACK,
  VM_FAULT_LOCKED,
  VM_FAULT_NOPAGE,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_HUGETLB,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_SHARED,
  VM_WRITE,
  vmFaultNames,
} from '../include/linux/mm.js';
import {
  __pte,
  PAGE_SIZE,
  HPAGE_PMD_ORDER,
  pfn_pte,
  pte_flags,
  pte_mkdirty,
  pte_mkwrite,
  pte_mkyoung,
  pte_none,
  pte_pfn,
  pte_present,
  pte_protnone,
  pte_write,
  _PAGE_PSE,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_none,
  pte_mkspecial,
  pud_leaf,
  pud_none,
  pud_write,
} from '../arch/x86/include/asm/pgtable.js';
import {
  is_zero_pfn,
  my_zero_pfn,
  p4d_offset,
  pagetable_alloc,
  pagetable_free,
  pgd_offset,
  pmd_alloc,
  pmd_lock,
  pmdp_get_lockless,
  populate,
  pte_alloc,
  pte_offset_map,
  pte_offset_map_lock,
  pte_unmap_unlock,
  ptep_get,
  ptep_get_and_clear,
  ptep_get_lockless,
  pud_alloc,
  pudp_get_lockless,
  set_pte_at,
  set_ptes,
  type ptdesc,
} from '../include/linux/pgtable.js';
import { spin_lock as spin_lock_ptl, spin_unlock } from '../include/linux/spinlock.js';
import {
  folio_mapcount,
  folio_mark_uptodate,
  folio_test_anon,
  folio_test_dirty,
  folio_test_large,
  folio_test_locked,
  folio_raw_mapping,
  page_folio,
  page_mapcount,
  PageAnonExclusive,
  SetPageAnonExclusive,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put, folio_ref_count, put_page } from '../include/linux/page_ref.js';
import {
  __GFP_ZERO,
  alloc_page,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  __GFP_FS,
  __GFP_IO,
} from './page_alloc.js';
import {
  anon_vma_prepare,
  folio_add_file_rmap_ptes,
  folio_add_new_anon_rmap,
  folio_mappings,
  folio_move_anon_rmap,
  folio_remove_rmap_ptes,
  RMAP_EXCLUSIVE,
} from './rmap.js';
import {
  MMU_NOTIFY_CLEAR,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
} from './mmu_notifier.js';
import { page_fault_oops, VM_BUG_ON, VM_WARN_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { phys_clear_frame, phys_copy_frame, phys_write } from './sparse.js';
import {
  folio_lock,
  folio_mark_dirty,
  folio_trylock,
  folio_unlock,
  mapping_gfp_mask,
} from './filemap.js';
import {
  __split_huge_pmd,
  __split_huge_pud,
  do_huge_pmd_anonymous_page,
  do_huge_pmd_wp_page,
  huge_pmd_set_accessed,
  huge_pud_set_accessed,
  page_trans_huge_mapcount,
  thp_vma_allowable_order,
} from './huge_memory.anon.js';
import { print_bad_pte, vm_normal_page } from './memory.normal.js';
import {
  is_migration_entry,
  is_pmd_migration_entry,
  is_swap_pmd,
  non_swap_entry,
  pte_to_swp_entry,
  swp_type,
  SWP_MODEL_UNKNOWN,
} from '../include/linux/swapops.js';
import { migration_entry_wait, pmd_migration_entry_wait } from './migrate.js';
import { __copy_from_user_inatomic } from '../arch/x86/mm/fault.js';
import { get_current } from '../include/linux/sched.js';
import { hugetlb_fault } from './hugetlb.js';

/** VM_FAULT_WRITE: "special case for get_user_pages" (≤ v6.1; removed by cb8d86331343, v6.2). */
export const VM_FAULT_WRITE = 0x000008;

/** FAULT_FLAG_DEFAULT (include/linux/mm.h): what arch fault handlers start from. */
export const FAULT_FLAG_DEFAULT =
  FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE;

const HPAGE_PUD_ORDER = 18;

/** vmf->prealloc_pte: the PTE table __do_fault allocates before calling ->fault. */
const prealloc_pte = new WeakMap<vm_fault, ptdesc>();

/**
 * vma_is_accessible(vma): any of read, write, exec.
 * @kernel include/linux/mm.h:vma_is_accessible (v5.8+)
 */
export function vma_is_accessible(vma: vm_area_struct): boolean {
  return (vma.vm_flags & VM_ACCESS_FLAGS) !== 0n;
}

/**
 * arch_vma_access_permitted(vma, write, execute, foreign): the x86 protection-key check.
 * @kernel arch/x86/include/asm/mmu_context.h:arch_vma_access_permitted (all versions)
 * Return: true (no VMA carries a protection key in the model; pkey 0 allows everything).
 */
export function arch_vma_access_permitted(
  _vma: vm_area_struct,
  _write: boolean,
  _execute: boolean,
  _foreign: boolean,
): boolean {
  return true;
}

/**
 * mm_forbids_zeropage(mm): s390 KVM guests forbid the shared zero page.
 * @kernel include/linux/mm.h:mm_forbids_zeropage (all versions)
 * Return: false on x86.
 */
export function mm_forbids_zeropage(_mm: mm_struct): boolean {
  return false;
}

/** maybe_mkwrite(pte, vma): writable only if the VMA is (FOLL_FORCE COW keeps it R/O). */
export function maybe_mkwrite(pte: pteval_t, vma: vm_area_struct): pteval_t {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(pte) : pte;
}

/**
 * ptep_set_access_flags(vma, address, ptep, entry, dirty) (x86): writes entry when it
 * differs and dirty is set; young-only changes are left to the hardware.
 * @kernel arch/x86/mm/pgtable.c:ptep_set_access_flags (all versions)
 * Locking: the PTL is held.
 * Return: whether the entry differed.
 */
export function* ptep_set_access_flags(
  vma: vm_area_struct,
  address: number,
  ptep: NonNullable<vm_fault['pte']>,
  entry: pteval_t,
  dirty: boolean,
): Op<boolean> {
  const changed = ptep_get(ptep) !== entry;
  if (changed && dirty) yield* set_pte_at(vma.vm_mm, address, ptep, entry, 'ptep_set_access_flags');
  return changed;
}

/**
 * vmf_anon_prepare(vmf): anon_vma_prepare for a fault.
 * @kernel mm/memory.c:vmf_anon_prepare (v6.10+; anon_vma_prepare() before)
 * Return: 0 or VM_FAULT_OOM. (The per-VMA-lock retry is not modelled.)
 */
export function vmf_anon_prepare(vmf: vm_fault): vm_fault_t {
  return anon_vma_prepare(vmf.vma) ? VM_FAULT_OOM : 0;
}

/**
 * folio_prealloc(mm, vma, addr, need_zero): an order-0 movable folio for an anonymous
 * mapping, zeroed on request.
 * @kernel mm/memory.c:folio_prealloc (v6.8+; alloc_zeroed_user_highpage_movable /
 *   alloc_page_vma before)
 * Return: the folio with one reference, or null.
 */
export function folio_prealloc(
  _mm: mm_struct,
  _vma: vm_area_struct,
  _addr: number,
  need_zero: boolean,
): folio | null {
  return alloc_page(GFP_HIGHUSER_MOVABLE | (need_zero ? __GFP_ZERO : 0)) as folio | null;
}

/** __get_fault_gfp_mask(vma) */
function __get_fault_gfp_mask(vma: vm_area_struct): number {
  if (vma.vm_file) return mapping_gfp_mask(vma.vm_file.f_mapping) | __GFP_FS | __GFP_IO;
  return GFP_KERNEL;
}

/** pte_same(a, b) */
const pte_same = (a: pteval_t, b: pteval_t): boolean => a === b;

/** x86 pmd_trans_huge: PSE set (present, or invalidated while being split). */
function pmd_trans_huge(v: pteval_t): boolean {
  return v !== 0 && (pte_flags(v) & _PAGE_PSE) !== 0;
}

/**
 * sanitize_fault_flags(vma, flags): UNSHARE only with read faults on COW mappings; write
 * faults need VM_MAYWRITE and, without VM_WRITE, a COW mapping (FOLL_FORCE).
 * @kernel mm/memory.c:sanitize_fault_flags (v6.2+: 79881fed6052 "mm: add early
 *   FAULT_FLAG_WRITE consistency checks" and its FAULT_FLAG_UNSHARE sibling)
 * Return: [0 or VM_FAULT_SIGSEGV, adjusted flags].
 */
function sanitize_fault_flags(vma: vm_area_struct, flags: number): [vm_fault_t, number] {
  if (flags & FAULT_FLAG_UNSHARE) {
    if (WARN_ON_ONCE((flags & FAULT_FLAG_WRITE) !== 0)) return [VM_FAULT_SIGSEGV, flags];
    if (!is_cow_mapping(vma.vm_flags)) flags &= ~FAULT_FLAG_UNSHARE;
  } else if (flags & FAULT_FLAG_WRITE) {
    if (WARN_ON_ONCE(!(vma.vm_flags & VM_MAYWRITE))) return [VM_FAULT_SIGSEGV, flags];
    if (WARN_ON_ONCE(!(vma.vm_flags & VM_WRITE) && !is_cow_mapping(vma.vm_flags)))
      return [VM_FAULT_SIGSEGV, flags];
  }
  if (
    since(6, 4) &&
    WARN_ON_ONCE(
      (flags & (FAULT_FLAG_VMA_LOCK | FAULT_FLAG_RETRY_NOWAIT)) ===
        (FAULT_FLAG_VMA_LOCK | FAULT_FLAG_RETRY_NOWAIT),
    )
  )
    return [VM_FAULT_SIGSEGV, flags];
  return [0, flags];
}

/**
 * handle_mm_fault(vma, address, flags, regs): resolves a fault at address in vma:
 * checks the flags (v6.2+) and the arch access rule, then walks/allocates the page
 * tables and dispatches (__handle_mm_fault). A VM_DROPPABLE VMA (v6.11+, 9651fcedf7b9)
 * never reports OOM.
 * @kernel mm/memory.c:handle_mm_fault (all versions)
 * Locking: mmap_lock held for read on entry; held on return unless VM_FAULT_RETRY or
 *   VM_FAULT_COMPLETED is returned (only a ->fault that drops it can cause that).
 * Return: vm_fault_t: 0, VM_FAULT_* error bits, VM_FAULT_MAJOR/RETRY/COMPLETED...
 * Left out: fault accounting (mm_account_fault), memcg OOM. A VM_HUGETLB VMA goes to
 *   hugetlb_fault (mm/hugetlb.ts).
 */
export function* handle_mm_fault(
  vma: vm_area_struct,
  address: number,
  flags: number,
  _regs: unknown = null,
): Op<vm_fault_t> {
  let ret: vm_fault_t;
  if (since(6, 2)) {
    [ret, flags] = sanitize_fault_flags(vma, flags);
    if (ret) return ret;
  }
  if (
    !arch_vma_access_permitted(
      vma,
      (flags & FAULT_FLAG_WRITE) !== 0,
      (flags & FAULT_FLAG_INSTRUCTION) !== 0,
      (flags & FAULT_FLAG_REMOTE) !== 0,
    )
  )
    return VM_FAULT_SIGSEGV;
  const is_droppable = since(6, 11) && (vma.vm_flags & VM_DROPPABLE) !== 0n;
  if (vma.vm_flags & VM_HUGETLB) ret = yield* hugetlb_fault(vma.vm_mm, vma, address, flags);
  else ret = yield* __handle_mm_fault(vma, address, flags);
  if (is_droppable) ret &= ~VM_FAULT_OOM;
  return ret;
}

/**
 * __handle_mm_fault(vma, address, flags): allocates the PUD and PMD tables down to the
 * fault, tries huge PUD/PMD faults where THP allows them (->huge_fault, anonymous THP),
 * handles write/access faults on huge leaves, waits out a PMD migration entry (then 0:
 * the access retries), and falls back to handle_pte_fault.
 * @kernel mm/memory.c:__handle_mm_fault (all versions; the PMD migration check since
 *   84c3fc4e9c56 "mm: thp: check pmd migration entry in common path", v4.14)
 * Locking: mmap_lock held for read.
 * Return: vm_fault_t.
 */
function* __handle_mm_fault(vma: vm_area_struct, address: number, flags: number): Op<vm_fault_t> {
  const vmf: vm_fault = {
    vma,
    address: Math.floor(address / PAGE_SIZE) * PAGE_SIZE,
    real_address: address,
    flags,
    pgoff: linear_page_index(vma, address),
    gfp_mask: __get_fault_gfp_mask(vma),
    pmd: null,
    pud: null,
    orig_pte: 0,
    orig_pmd: 0,
    cow_page: null,
    page: null,
    pte: null,
    ptl: null,
  };
  const mm = vma.vm_mm;
  const vm_flags = vma.vm_flags;
  let ret: vm_fault_t;
  const pgd = pgd_offset(mm, address);
  const p4d = p4d_offset(pgd, address);
  const pud = yield* pud_alloc(mm, p4d, address);
  if (!pud) return VM_FAULT_OOM;
  vmf.pud = pud;
  for (;;) {
    // retry_pud:
    const pudval = yield* pudp_get_lockless(pud);
    if (pud_none(pudval) && thp_vma_allowable_order(vma, vm_flags, HPAGE_PUD_ORDER)) {
      ret = yield* create_huge_pud(vmf);
      if (!(ret & VM_FAULT_FALLBACK)) return ret;
    } else if (pmd_trans_huge(pudval)) {
      if (flags & FAULT_FLAG_WRITE && !pud_write(pudval)) {
        ret = yield* wp_huge_pud(vmf, pudval);
        if (!(ret & VM_FAULT_FALLBACK)) return ret;
      } else {
        yield* huge_pud_set_accessed(vmf, pudval);
        return 0;
      }
    }
    const pmd = yield* pmd_alloc(mm, pud, address);
    if (!pmd) {
      // pmd_alloc of the model refuses a PUD leaf: a huge PUD fault raced with us.
      if (pud_leaf(ptep_get(pud))) continue;
      return VM_FAULT_OOM;
    }
    vmf.pmd = pmd;
    break;
  }
  const pmdp = vmf.pmd!;
  const pmdval = yield* pmdp_get_lockless(pmdp);
  if (pmd_none(pmdval) && thp_vma_allowable_order(vma, vm_flags, HPAGE_PMD_ORDER)) {
    ret = yield* create_huge_pmd(vmf);
    if (!(ret & VM_FAULT_FALLBACK)) return ret;
  } else {
    vmf.orig_pmd = pmdval;
    if (is_swap_pmd(vmf.orig_pmd)) {
      // thp_migration_supported(): only PMD migration entries are swap PMDs.
      VM_BUG_ON(
        !is_pmd_migration_entry(vmf.orig_pmd),
        'VM_BUG_ON(thp_migration_supported() && !is_pmd_migration_entry(vmf.orig_pmd))',
      );
      if (is_pmd_migration_entry(vmf.orig_pmd)) yield* pmd_migration_entry_wait(mm, pmdp);
      return 0;
    }
    if (pmd_trans_huge(vmf.orig_pmd)) {
      if (pte_protnone(vmf.orig_pmd) && vma_is_accessible(vma)) {
        throw new Error('do_huge_pmd_numa_page: NUMA hinting is not modelled');
      }
      if (flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE) && !pte_write(vmf.orig_pmd)) {
        ret = yield* wp_huge_pmd(vmf);
        if (!(ret & VM_FAULT_FALLBACK)) return ret;
      } else {
        yield* huge_pmd_set_accessed(vmf);
        return 0;
      }
    }
  }
  return yield* handle_pte_fault(vmf);
}

/**
 * create_huge_pmd(vmf): anonymous VMAs get a THP (or the huge zero page); others use
 * ->huge_fault(vmf, PMD_ORDER) if they have one.
 * @kernel mm/memory.c:create_huge_pmd (all versions; ->huge_fault took enum
 *   page_entry_size before v6.6)
 * Return: the handler's result or VM_FAULT_FALLBACK.
 */
function* create_huge_pmd(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  if (vma_is_anonymous(vma)) return yield* do_huge_pmd_anonymous_page(vmf);
  if (vma.vm_ops?.huge_fault) return yield* vma.vm_ops.huge_fault(vmf, HPAGE_PMD_ORDER);
  return VM_FAULT_FALLBACK;
}

/**
 * wp_huge_pmd(vmf): write fault on a read-only huge PMD leaf: anonymous THP ⇒
 * do_huge_pmd_wp_page; a shared mapping's ->huge_fault may resolve it (v6.2+: only for
 * VM_SHARED|VM_MAYSHARE, aea06577a900 "mm: don't call vm_ops->huge_fault() in
 * wp_huge_pmd()/wp_huge_pud() for private mappings"); otherwise the PMD is split and the
 * fault is retried on the PTE level.
 * @kernel mm/memory.c:wp_huge_pmd (all versions)
 * Return: vm_fault_t, VM_FAULT_FALLBACK after a split.
 */
function* wp_huge_pmd(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  if (vma_is_anonymous(vma)) return yield* do_huge_pmd_wp_page(vmf);
  if (!since(6, 2) || vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) {
    if (vma.vm_ops?.huge_fault) {
      const ret = yield* vma.vm_ops.huge_fault(vmf, HPAGE_PMD_ORDER);
      if (!(ret & VM_FAULT_FALLBACK)) return ret;
    }
  }
  // COW or write-notify handled on pte level: split pmd.
  yield* __split_huge_pmd(vma, vmf.pmd!, vmf.address, false);
  return VM_FAULT_FALLBACK;
}

/**
 * create_huge_pud(vmf): no anonymous PUD THP; ->huge_fault(vmf, PUD_ORDER) otherwise.
 * @kernel mm/memory.c:create_huge_pud (all versions)
 */
function* create_huge_pud(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  if (vma_is_anonymous(vma)) return VM_FAULT_FALLBACK;
  if (vma.vm_ops?.huge_fault) return yield* vma.vm_ops.huge_fault(vmf, HPAGE_PUD_ORDER);
  return VM_FAULT_FALLBACK;
}

/**
 * wp_huge_pud(vmf, orig_pud): as wp_huge_pmd for PUD leaves; the split removes the leaf.
 * @kernel mm/memory.c:wp_huge_pud (all versions; shared-only ->huge_fault v6.2+)
 */
function* wp_huge_pud(vmf: vm_fault, _orig_pud: pteval_t): Op<vm_fault_t> {
  const vma = vmf.vma;
  if (!vma_is_anonymous(vma) && (!since(6, 2) || vma.vm_flags & (VM_SHARED | VM_MAYSHARE))) {
    if (vma.vm_ops?.huge_fault) {
      const ret = yield* vma.vm_ops.huge_fault(vmf, HPAGE_PUD_ORDER);
      if (!(ret & VM_FAULT_FALLBACK)) return ret;
    }
  }
  yield* __split_huge_pud(vma, vmf.pud!, vmf.address);
  return VM_FAULT_FALLBACK;
}

/**
 * handle_pte_fault(vmf): reads the PTE locklessly; none ⇒ do_pte_missing; not present ⇒
 * do_swap_page (migration entries); present and the access needs write on a read-only
 * entry ⇒ do_wp_page; else marks it young (and dirty on write) under the PTL.
 * @kernel mm/memory.c:handle_pte_fault (all versions)
 * Locking: mmap_lock held for read; takes and releases the PTL.
 * Return: vm_fault_t.
 */
export function* handle_pte_fault(vmf: vm_fault): Op<vm_fault_t> {
  const pmdp = vmf.pmd!;
  const pmdval = yield* pmdp_get_lockless(pmdp);
  if (pmd_none(pmdval)) {
    // Leave __pte_alloc() until later: ->fault may want to map a huge page.
    vmf.pte = null;
    vmf.flags &= ~FAULT_FLAG_ORIG_PTE_VALID;
  } else {
    const ptep = pte_offset_map(pmdp, vmf.address);
    if (!ptep) return 0; // a huge PMD appeared, or is being split: retry
    vmf.pte = ptep;
    vmf.ptl = ptep.t.ptl;
    vmf.orig_pte = yield* ptep_get_lockless(ptep);
    vmf.flags |= FAULT_FLAG_ORIG_PTE_VALID;
    if (pte_none(vmf.orig_pte)) vmf.pte = null;
  }
  if (!vmf.pte) return yield* do_pte_missing(vmf);
  if (!pte_present(vmf.orig_pte)) return yield* do_swap_page(vmf);
  if (pte_protnone(vmf.orig_pte) && vma_is_accessible(vmf.vma)) {
    throw new Error('do_numa_page: NUMA hinting is not modelled');
  }
  const ptl = vmf.ptl!;
  yield* spin_lock_ptl(ptl);
  let entry = vmf.orig_pte;
  if (!pte_same(ptep_get(vmf.pte), entry)) {
    yield* pte_unmap_unlock(vmf.pte, ptl);
    return 0;
  }
  if (vmf.flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) {
    if (!pte_write(entry)) return yield* do_wp_page(vmf);
    else if (vmf.flags & FAULT_FLAG_WRITE) entry = pte_mkdirty(entry);
  }
  entry = pte_mkyoung(entry);
  yield* ptep_set_access_flags(
    vmf.vma,
    vmf.address,
    vmf.pte,
    entry,
    (vmf.flags & FAULT_FLAG_WRITE) !== 0,
  );
  yield* pte_unmap_unlock(vmf.pte, ptl);
  return 0;
}

/**
 * do_swap_page(vmf): a fault on a non-present, non-none PTE. A migration entry: wait in
 * migration_entry_wait until the migration ends, then return 0 so the access is retried
 * (it finds the new folio, or the restored old one). pte_unmap_same() rechecks the PTE
 * only where pte_t is wider than unsigned long, so on x86-64 it is "same".
 * @kernel mm/memory.c:do_swap_page (all versions; the migration branch unchanged since
 *   before v5.7)
 * Locking: mmap_lock held for read (the per-VMA lock is not modelled); the PTL is not held.
 * Return: 0 after a migration wait.
 * Left out: swap-in, device-private/exclusive, hwpoison and PTE-marker entries: the model
 *   creates none, and one found here stops the run with an error naming it. (The kernel's
 *   last branch, an entry of unknown kind, prints a bad-PTE report and returns
 *   VM_FAULT_SIGBUS; a non-present value the model does not encode gets that.)
 */
export function* do_swap_page(vmf: vm_fault): Op<vm_fault_t> {
  // pte_unmap_same(vmf): sizeof(pte_t) == sizeof(unsigned long) on x86-64.
  vmf.pte = null;
  const entry = pte_to_swp_entry(vmf.orig_pte);
  if (non_swap_entry(entry)) {
    if (is_migration_entry(entry)) {
      yield* migration_entry_wait(vmf.vma.vm_mm, vmf.pmd!, vmf.address);
      return 0;
    }
    if (swp_type(entry) === SWP_MODEL_UNKNOWN) {
      print_bad_pte(vmf.vma, vmf.address, vmf.orig_pte, null);
      return VM_FAULT_SIGBUS;
    }
  }
  throw new Error(
    `do_swap_page: swap entry 0x${vmf.orig_pte.toString(16)} at 0x${vmf.address.toString(16)}: swap-in is not modelled`,
  );
}

/**
 * do_pte_missing(vmf): no PTE: anonymous VMAs ⇒ do_anonymous_page, others ⇒ do_fault.
 * @kernel mm/memory.c:do_pte_missing (v6.5+; inline in handle_pte_fault before)
 */
function* do_pte_missing(vmf: vm_fault): Op<vm_fault_t> {
  if (vma_is_anonymous(vmf.vma)) return yield* do_anonymous_page(vmf);
  return yield* do_fault(vmf);
}

/** vmf_pte_changed(vmf): under the PTL, the PTE is no longer what the fault started from. */
function vmf_pte_changed(vmf: vm_fault): boolean {
  if (vmf.flags & FAULT_FLAG_ORIG_PTE_VALID) return !pte_same(ptep_get(vmf.pte!), vmf.orig_pte);
  return !pte_none(ptep_get(vmf.pte!));
}

/**
 * do_anonymous_page(vmf): first touch of anonymous memory. A read maps the shared zero
 * page (special PTE, no reference, no RSS) unless the mm forbids it; a write allocates a
 * zeroed movable folio, makes it the VMA's anonymous page (anon_vma_prepare,
 * folio_add_new_anon_rmap, exclusive) and counts MM_ANONPAGES.
 * @kernel mm/memory.c:do_anonymous_page (all versions)
 * Locking: mmap_lock held for read; takes the PTL.
 * Return: 0, VM_FAULT_SIGBUS (a VM_SHARED VMA without vm_ops), VM_FAULT_OOM.
 */
export function* do_anonymous_page(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const addr = vmf.address;
  // File mapping without ->vm_ops ?
  if (vma.vm_flags & VM_SHARED) return VM_FAULT_SIGBUS;
  if (yield* pte_alloc(mm, vmf.pmd!)) return VM_FAULT_OOM;

  if (!(vmf.flags & FAULT_FLAG_WRITE) && !mm_forbids_zeropage(mm)) {
    const entry = pte_mkspecial(pfn_pte(my_zero_pfn(addr), vma.vm_page_prot));
    const r = yield* pte_offset_map_lock(mm, vmf.pmd!, addr);
    if (!r) return 0;
    [vmf.pte, vmf.ptl] = r;
    if (!vmf_pte_changed(vmf)) yield* set_pte_at(mm, addr, vmf.pte, entry);
    yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
    return 0;
  }

  let ret = vmf_anon_prepare(vmf);
  if (ret) return ret;
  // alloc_anon_folio: mTHP orders are "never" by default, so one page.
  const f = folio_prealloc(mm, vma, addr, true);
  if (f === null) return VM_FAULT_OOM;
  folio_mark_uptodate(f);
  let entry = pfn_pte(f, vma.vm_page_prot);
  if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
  const r = yield* pte_offset_map_lock(mm, vmf.pmd!, addr);
  if (!r) {
    folio_put(f);
    return 0;
  }
  [vmf.pte, vmf.ptl] = r;
  if (vmf_pte_changed(vmf)) {
    yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
    folio_put(f);
    return 0;
  }
  ret = 0;
  add_mm_counter(mm, MM_ANONPAGES, 1);
  folio_add_new_anon_rmap(f, vma, addr, RMAP_EXCLUSIVE);
  yield* set_pte_at(mm, addr, vmf.pte, entry);
  yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
  return ret;
}

/**
 * __do_fault(vmf): calls vma->vm_ops->fault (after preallocating a PTE table if the PMD
 * is empty) and returns with vmf->page locked and referenced. A ->fault that returns
 * neither an error, NOPAGE, RETRY nor DONE_COW must have set vmf->page: otherwise the
 * kernel dereferences NULL (page_folio(NULL)) and oopses, as the model does.
 * @kernel mm/memory.c:__do_fault (all versions)
 * Locking: mmap_lock held for read; returns with the folio locked.
 * Return: the handler's vm_fault_t (VM_FAULT_OOM if the table cannot be allocated).
 */
function* __do_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const pmdval = yield* pmdp_get_lockless(vmf.pmd!);
  if (pmd_none(pmdval) && !prealloc_pte.has(vmf)) {
    const t = pagetable_alloc(vma.vm_mm, 'pte');
    if (!t) return VM_FAULT_OOM;
    prealloc_pte.set(vmf, t);
  }
  const ret = yield* vma.vm_ops!.fault!(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW)) return ret;
  if (vmf.page === null) {
    page_fault_oops(
      '0000000000000008',
      false,
      `${vma.vm_ops!.name}->fault returned ${vmFaultNames(ret)} without a page (NULL vmf->page)`,
    );
  }
  const f = page_folio(vmf.page);
  if (!(ret & VM_FAULT_LOCKED)) yield* folio_lock(f);
  else VM_BUG_ON(!folio_test_locked(f), 'VM_BUG_ON_PAGE(!folio_test_locked(folio), vmf->page)');
  return ret;
}

/**
 * pmd_install(mm, pmd, pte): links a preallocated PTE table under the PMD lock unless
 * another thread populated the PMD first.
 * @kernel mm/memory.c:pmd_install (v5.16+; inline before)
 * Locking: takes the PMD lock.
 */
function* pmd_install(mm: mm_struct, pmdp: pmd_t_ptr, vmf: vm_fault): Op<void> {
  const ptl = yield* pmd_lock(mm, pmdp);
  if (pmd_none(ptep_get(pmdp))) {
    yield* populate(pmdp, prealloc_pte.get(vmf)!, 'pmd_populate');
    prealloc_pte.delete(vmf);
  }
  yield* spin_unlock(ptl);
}

/**
 * set_pte_range(vmf, folio, page, nr, addr): maps nr pages of a folio: young; on write
 * dirty and writable if VM_WRITE; a read of a dirty folio through a writable entry is
 * mapped dirty (present in v6.18; the release that added it was not determined, the
 * model applies it to all); a COW write makes the folio the VMA's new anonymous page,
 * otherwise a file rmap is added.
 * @kernel mm/memory.c:set_pte_range (v6.5+; do_set_pte v5.11–v6.4, alloc_set_pte before)
 * Locking: the PTL is held.
 */
export function* set_pte_range(
  vmf: vm_fault,
  f: folio,
  p: page,
  nr: number,
  addr: number,
): Op<void> {
  const vma = vmf.vma;
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  let entry = pfn_pte(p, vma.vm_page_prot);
  if (write) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  else if (pte_write(entry) && folio_test_dirty(f)) entry = pte_mkdirty(entry);
  if (write && !(vma.vm_flags & VM_SHARED)) {
    VM_BUG_ON(nr !== 1, 'VM_BUG_ON_FOLIO(nr != 1, folio)');
    folio_add_new_anon_rmap(f, vma, addr, RMAP_EXCLUSIVE);
  } else {
    folio_add_file_rmap_ptes(f, p, nr, vma);
  }
  yield* set_ptes(vma.vm_mm, addr, vmf.pte!, entry, nr);
}

/**
 * finish_fault(vmf): maps the page ->fault (or the COW) produced: installs the PTE table
 * if needed (the preallocated one, or pte_alloc), rechecks the PTE under the PTL
 * (changed ⇒ VM_FAULT_NOPAGE), then set_pte_range and the RSS (MM_ANONPAGES for a COW,
 * else mm_counter_file: MM_FILEPAGES or MM_SHMEMPAGES). The folio's reference passes to
 * the PTE.
 * @kernel mm/memory.c:finish_fault (all versions)
 * Locking: the folio is locked; takes the PTL.
 * Return: 0, VM_FAULT_NOPAGE or VM_FAULT_OOM.
 * Left out: do_set_pmd (PMD-mapped page-cache folios) and large-folio batches.
 */
export function* finish_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const is_cow = (vmf.flags & FAULT_FLAG_WRITE) !== 0 && !(vma.vm_flags & VM_SHARED);
  const p = (is_cow ? vmf.cow_page : vmf.page)!;
  const f = page_folio(p);
  const addr = vmf.address;
  const pmdval = yield* pmdp_get_lockless(vmf.pmd!);
  if (pmd_none(pmdval)) {
    if (prealloc_pte.has(vmf)) yield* pmd_install(mm, vmf.pmd!, vmf);
    else if (yield* pte_alloc(mm, vmf.pmd!)) return VM_FAULT_OOM;
  }
  const r = yield* pte_offset_map_lock(mm, vmf.pmd!, addr);
  if (!r) return VM_FAULT_NOPAGE;
  [vmf.pte, vmf.ptl] = r;
  let ret: vm_fault_t = 0;
  if (vmf_pte_changed(vmf)) {
    ret = VM_FAULT_NOPAGE;
  } else {
    yield* set_pte_range(vmf, f, p, 1, addr);
    add_mm_counter(mm, is_cow ? MM_ANONPAGES : mm_counter_file(f), 1);
  }
  yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
  return ret;
}

/**
 * do_read_fault(vmf): read fault on a file VMA: ->fault, then map the page read-only (or
 * as the VMA's protection says).
 * @kernel mm/memory.c:do_read_fault (all versions)
 * Locking: mmap_lock held for read.
 * Left out: fault-around (should_fault_around / do_fault_around).
 */
function* do_read_fault(vmf: vm_fault): Op<vm_fault_t> {
  let ret = yield* __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  ret |= yield* finish_fault(vmf);
  const f = page_folio(vmf.page!);
  yield* folio_unlock(f);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) folio_put(f);
  return ret;
}

/**
 * do_cow_fault(vmf): write fault on a private file VMA: a new anonymous folio receives a
 * copy of the file page and is mapped writable; the file page's reference is dropped.
 * @kernel mm/memory.c:do_cow_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: vm_fault_t.
 */
function* do_cow_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  let ret = vmf_anon_prepare(vmf);
  if (ret) return ret;
  const f = folio_prealloc(vma.vm_mm, vma, vmf.address, false);
  if (f === null) return VM_FAULT_OOM;
  vmf.cow_page = f as number as page;
  ret = yield* __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    folio_put(f);
    return ret;
  }
  if (ret & VM_FAULT_DONE_COW) return ret;
  // copy_mc_user_highpage: hwpoison is not modelled.
  phys_copy_frame(f, vmf.page!);
  folio_mark_uptodate(f);
  ret |= yield* finish_fault(vmf);
  yield* folio_unlock(page_folio(vmf.page!));
  put_page(vmf.page!);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) folio_put(f);
  return ret;
}

/**
 * do_shared_fault(vmf): write fault on a shared file VMA: ->fault, then ->page_mkwrite
 * if the file wants write notification, then map the page writable and dirty it.
 * @kernel mm/memory.c:do_shared_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: vm_fault_t.
 */
function* do_shared_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  let ret = yield* __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  const f = page_folio(vmf.page!);
  if (vma.vm_ops?.page_mkwrite) {
    yield* folio_unlock(f);
    const tmp = yield* do_page_mkwrite(vmf, f);
    if (!tmp || tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      folio_put(f);
      return tmp;
    }
  }
  ret |= yield* finish_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    yield* folio_unlock(f);
    folio_put(f);
    return ret;
  }
  ret |= yield* fault_dirty_shared_page(vmf);
  return ret;
}

/**
 * do_fault(vmf): a missing PTE in a VMA with vm_ops. Without ->fault: VM_FAULT_SIGBUS if
 * the PTE is (still) none, VM_FAULT_NOPAGE if something was mapped meanwhile (a VM_PFNMAP
 * or VM_MIXEDMAP VMA after a zap ends here: SIGBUS on access). Else read, COW or shared
 * fault; an unused preallocated table is freed.
 * @kernel mm/memory.c:do_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: vm_fault_t.
 */
export function* do_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  let ret: vm_fault_t;
  if (!vma.vm_ops?.fault) {
    const r = yield* pte_offset_map_lock(mm, vmf.pmd!, vmf.address);
    if (!r) {
      ret = VM_FAULT_SIGBUS;
    } else {
      ret = pte_none(ptep_get(r[0])) ? VM_FAULT_SIGBUS : VM_FAULT_NOPAGE;
      yield* pte_unmap_unlock(r[0], r[1]);
    }
  } else if (!(vmf.flags & FAULT_FLAG_WRITE)) {
    ret = yield* do_read_fault(vmf);
  } else if (!(vma.vm_flags & VM_SHARED)) {
    ret = yield* do_cow_fault(vmf);
  } else {
    ret = yield* do_shared_fault(vmf);
  }
  // The preallocated page table is unused: free it.
  const t = prealloc_pte.get(vmf);
  if (t) {
    pagetable_free(mm, t);
    prealloc_pte.delete(vmf);
  }
  return ret;
}

/**
 * do_page_mkwrite(vmf, folio): tells the file a page is about to become writable
 * (->page_mkwrite, with FAULT_FLAG_WRITE|FAULT_FLAG_MKWRITE), and returns with the folio
 * locked; a folio truncated meanwhile makes the fault retry (returns 0).
 * @kernel mm/memory.c:do_page_mkwrite (all versions)
 * Locking: mmap_lock held for read, PTL not held.
 * Return: the handler's result with VM_FAULT_LOCKED, an error/NOPAGE, or 0 (retry).
 * Left out: the IS_SWAPFILE check.
 */
export function* do_page_mkwrite(vmf: vm_fault, f: folio): Op<vm_fault_t> {
  const old_flags = vmf.flags;
  vmf.flags = FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE;
  let ret = yield* vmf.vma.vm_ops!.page_mkwrite!(vmf);
  vmf.flags = old_flags;
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) return ret;
  if (!(ret & VM_FAULT_LOCKED)) {
    yield* folio_lock(f);
    if (!folio_raw_mapping(f)) {
      yield* folio_unlock(f);
      return 0; // retry
    }
    ret |= VM_FAULT_LOCKED;
  } else {
    VM_BUG_ON(!folio_test_locked(f), 'VM_BUG_ON_FOLIO(!folio_test_locked(folio), folio)');
  }
  return ret;
}

/**
 * fault_dirty_shared_page(vmf): marks the just-written shared file folio dirty and
 * unlocks it.
 * @kernel mm/memory.c:fault_dirty_shared_page (all versions)
 * Locking: the folio is locked on entry, unlocked on return.
 * Return: 0 (the model never drops mmap_lock for dirty throttling, so never
 *   VM_FAULT_RETRY (≤ v5.x) / VM_FAULT_COMPLETED).
 */
export function* fault_dirty_shared_page(vmf: vm_fault): Op<vm_fault_t> {
  const f = page_folio(vmf.page!);
  yield* folio_mark_dirty(f);
  VM_BUG_ON(folio_test_anon(f), 'VM_BUG_ON_FOLIO(folio_test_anon(folio), folio)');
  yield* folio_unlock(f);
  return 0;
}

/**
 * wp_page_reuse(vmf, folio): makes the present read-only PTE young, dirty and (VM_WRITE)
 * writable in place, and drops the PTL.
 * @kernel mm/memory.c:wp_page_reuse (all versions; the FAULT_FLAG_WRITE and
 *   PageAnonExclusive assertions v5.19+)
 * Locking: PTL held on entry, released on return.
 */
export function* wp_page_reuse(vmf: vm_fault, f: folio | null): Op<void> {
  const vma = vmf.vma;
  if (since(5, 19)) {
    VM_BUG_ON(!(vmf.flags & FAULT_FLAG_WRITE), 'VM_BUG_ON(!(vmf->flags & FAULT_FLAG_WRITE))');
    if (f !== null)
      VM_BUG_ON(
        folio_test_anon(f) && !PageAnonExclusive(vmf.page!),
        'VM_BUG_ON(folio_test_anon(folio) && !PageAnonExclusive(vmf->page))',
      );
  }
  // Present in v6.18; the release that added it was not determined.
  if (since(6, 18)) VM_WARN_ON(is_zero_pfn(pte_pfn(vmf.orig_pte)));
  const entry = maybe_mkwrite(pte_mkdirty(pte_mkyoung(vmf.orig_pte)), vma);
  yield* ptep_set_access_flags(vma, vmf.address, vmf.pte!, entry, true);
  yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
}

/**
 * finish_mkwrite_fault(vmf, folio): after ->page_mkwrite/->pfn_mkwrite ran without the
 * PTL, retake it and make the PTE writable unless it changed meanwhile.
 * @kernel mm/memory.c:finish_mkwrite_fault (all versions)
 * Locking: takes and releases the PTL.
 * Return: 0, or VM_FAULT_NOPAGE when the PTE changed (the access is retried).
 */
function* finish_mkwrite_fault(vmf: vm_fault, f: folio | null): Op<vm_fault_t> {
  WARN_ON_ONCE(!(vmf.vma.vm_flags & VM_SHARED));
  const r = yield* pte_offset_map_lock(vmf.vma.vm_mm, vmf.pmd!, vmf.address);
  if (!r) return VM_FAULT_NOPAGE;
  [vmf.pte, vmf.ptl] = r;
  if (!pte_same(ptep_get(vmf.pte), vmf.orig_pte)) {
    yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
    return VM_FAULT_NOPAGE;
  }
  yield* wp_page_reuse(vmf, f);
  return 0;
}

/**
 * wp_pfn_shared(vmf): write fault on a read-only entry without a normal page in a shared
 * mapping (VM_PFNMAP / VM_MIXEDMAP): with ->pfn_mkwrite, call it without the PTL (an
 * error or NOPAGE is returned as is) and then make the PTE writable if unchanged (changed
 * ⇒ NOPAGE); without it, make the PTE writable+dirty+young in place. (R-FORK-4)
 * @kernel mm/memory.c:wp_pfn_shared (all versions)
 * Locking: PTL held on entry, released on return.
 * Return: 0 (VM_FAULT_WRITE before v6.2), or the pfn_mkwrite / finish_mkwrite_fault result.
 */
export function* wp_pfn_shared(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  if (vma.vm_ops?.pfn_mkwrite) {
    yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
    vmf.flags |= FAULT_FLAG_MKWRITE;
    const ret = yield* vma.vm_ops.pfn_mkwrite(vmf);
    if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) return ret;
    return yield* finish_mkwrite_fault(vmf, null);
  }
  yield* wp_page_reuse(vmf, null);
  return since(6, 2) ? 0 : VM_FAULT_WRITE;
}

/**
 * wp_page_shared(vmf, folio): write fault on a read-only PTE of a shared file mapping:
 * ->page_mkwrite (write-notify) then finish_mkwrite_fault, or reuse in place; then the
 * folio is marked dirty.
 * @kernel mm/memory.c:wp_page_shared (all versions)
 * Locking: PTL held on entry, released on return.
 * Return: 0 (VM_FAULT_WRITE before v6.2) or the ->page_mkwrite error / NOPAGE.
 */
export function* wp_page_shared(vmf: vm_fault, f: folio): Op<vm_fault_t> {
  const vma = vmf.vma;
  let ret: vm_fault_t = since(6, 2) ? 0 : VM_FAULT_WRITE;
  folio_get(f);
  if (vma.vm_ops?.page_mkwrite) {
    yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
    let tmp = yield* do_page_mkwrite(vmf, f);
    if (!tmp || tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      folio_put(f);
      return tmp;
    }
    tmp = yield* finish_mkwrite_fault(vmf, f);
    if (tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      yield* folio_unlock(f);
      folio_put(f);
      return tmp;
    }
  } else {
    yield* wp_page_reuse(vmf, f);
    yield* folio_lock(f);
  }
  ret |= yield* fault_dirty_shared_page(vmf);
  folio_put(f);
  return ret;
}

/**
 * __wp_page_copy_user(dst, src, vmf): fills the COW page. With a source page, a page copy.
 * Without one (a special PTE of a COW PFNMAP: no struct page), a best-effort copy from
 * the user address in the current mm with page faults disabled; if that fails, retake the
 * PTL, return -EAGAIN (refault) if the PTE changed, else copy again under the PTL and, if
 * the source is still unreadable, WARN_ON_ONCE and zero-fill. (R-FORK-4)
 * @kernel mm/memory.c:__wp_page_copy_user (v5.16+; cow_user_page v5.7–v5.15, returning
 *   bool; the retry under the PTL since 83d116c53058 (v5.7))
 * Locking: mmap_lock held for read; the PTL is taken only for the retry.
 * Return: 0, or -EAGAIN when the PTE changed.
 * x86 has hardware accessed bits, so the pre-copy mkyoung under the PTL never runs.
 * What makes the user copy fail under the PTL in the model: the entry is not present to
 * the MMU (a PROT_NONE entry, _PAGE_PRESENT clear) — see cpu access in arch/x86/mm/fault.ts.
 */
function* __wp_page_copy_user(dst: page, src: page | null, vmf: vm_fault): Op<number> {
  if (src !== null) {
    // copy_mc_user_highpage: hwpoison is not modelled.
    phys_copy_frame(dst, src);
    return 0;
  }
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const addr = vmf.address;
  const uaddr = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  // kmap_local_page(dst) + pagefault_disable(): the copy lands in dst's frame.
  const user_mm = get_current().mm ?? mm;
  const kaddr = new Uint8Array(PAGE_SIZE);
  vmf.pte = null;
  let left = yield* __copy_from_user_inatomic(user_mm, kaddr, uaddr, PAGE_SIZE);
  let warn = false;
  if (left) {
    // Re-validate under PTL if the page is still mapped.
    const r = yield* pte_offset_map_lock(mm, vmf.pmd!, addr);
    if (!r || !pte_same(ptep_get(r[0]), vmf.orig_pte)) {
      if (r) yield* pte_unmap_unlock(r[0], r[1]);
      vmf.pte = null;
      return -11; // -EAGAIN
    }
    [vmf.pte, vmf.ptl] = r;
    // The same page can be mapped back since last copy attempt: copy again under the PTL.
    left = yield* __copy_from_user_inatomic(user_mm, kaddr, uaddr, PAGE_SIZE);
    if (left) warn = true;
  }
  if (warn) {
    WARN_ON_ONCE(true);
    phys_clear_frame(dst);
  } else {
    phys_write(dst * PAGE_SIZE, kaddr);
  }
  if (vmf.pte) yield* pte_unmap_unlock(vmf.pte, vmf.ptl!);
  return 0;
}

/**
 * wp_page_copy(vmf): copy-on-write (or unshare): a new anonymous folio (zeroed when the
 * source is the zero page, else a copy — from the user address when there is no source
 * page), then inside an MMU_NOTIFY_CLEAR range for the page, under the PTL and only if the
 * PTE is unchanged: RSS (file ⇒ anon, or anon +1 for the zero page / a pfn), clear the old
 * PTE, exclusive anon rmap for the new folio, PTE := new folio (dirty+writable on write),
 * drop the old page's mapping; then the old page's two references (the PTE's and the one
 * do_wp_page took) are dropped. If the PTE changed, the new folio is freed and 0 returned
 * (the access refaults).
 * @kernel mm/memory.c:wp_page_copy (all versions; VM_FAULT_WRITE on success before v6.2)
 * Locking: mmap_lock held for read, PTL not held on entry; takes the PTL inside the
 *   notifier range.
 * Return: 0 (VM_FAULT_WRITE before v6.2 when copied), VM_FAULT_OOM.
 */
export function* wp_page_copy(vmf: vm_fault): Op<vm_fault_t> {
  const unshare = (vmf.flags & FAULT_FLAG_UNSHARE) !== 0;
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const old_folio = vmf.page !== null ? page_folio(vmf.page) : null;
  let page_copied = false;
  let ret = vmf_anon_prepare(vmf);
  if (ret) {
    if (old_folio) folio_put(old_folio);
    return ret;
  }
  const pfn_is_zero = is_zero_pfn(pte_pfn(vmf.orig_pte));
  let new_folio = folio_prealloc(mm, vma, vmf.address, pfn_is_zero);
  if (new_folio === null) {
    if (old_folio) folio_put(old_folio);
    return VM_FAULT_OOM;
  }
  if (!pfn_is_zero) {
    const err = yield* __wp_page_copy_user(new_folio as number as page, vmf.page, vmf);
    if (err) {
      // COW failed: if another thread resolved the fault, fine; else the user refaults.
      folio_put(new_folio);
      if (old_folio) folio_put(old_folio);
      return 0;
    }
  }
  folio_mark_uptodate(new_folio);
  const start = Math.floor(vmf.address / PAGE_SIZE) * PAGE_SIZE;
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, start, start + PAGE_SIZE);
  yield* mmu_notifier_invalidate_range_start(range);
  // Re-check the pte - we dropped the lock.
  const r = yield* pte_offset_map_lock(mm, vmf.pmd!, vmf.address);
  if (r && pte_same(ptep_get(r[0]), vmf.orig_pte)) {
    [vmf.pte, vmf.ptl] = r;
    if (old_folio) {
      if (!folio_test_anon(old_folio)) {
        dec_mm_counter(mm, mm_counter_file(old_folio));
        inc_mm_counter(mm, MM_ANONPAGES);
      }
    } else {
      inc_mm_counter(mm, MM_ANONPAGES);
    }
    let entry = pfn_pte(new_folio, vma.vm_page_prot);
    if (!unshare) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
    // ptep_clear_flush: clear the entry before installing the new one.
    yield* ptep_get_and_clear(mm, vmf.address, vmf.pte, 'ptep_clear_flush');
    folio_add_new_anon_rmap(new_folio, vma, vmf.address, RMAP_EXCLUSIVE);
    VM_BUG_ON(unshare && pte_write(entry), 'BUG_ON(unshare && pte_write(entry))');
    yield* set_pte_at(mm, vmf.address, vmf.pte, entry);
    if (old_folio) folio_remove_rmap_ptes(old_folio, vmf.page!, 1, vma);
    // Free the old page..
    new_folio = old_folio;
    page_copied = true;
    yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
  } else if (r) {
    yield* pte_unmap_unlock(r[0], r[1]);
  }
  yield* mmu_notifier_invalidate_range_end(range);
  if (new_folio) folio_put(new_folio);
  if (old_folio) folio_put(old_folio);
  ret = 0;
  return page_copied && !since(6, 2) ? VM_FAULT_WRITE : ret;
}

/**
 * __wp_can_reuse_large_anon_folio(folio, vma): a PTE-mapped large anonymous folio can be
 * reused when more than one of its pages is mapped, every reference is a mapping, and all
 * mappings are in this mm (v6.15+, "mm: CONFIG_NO_PAGE_MAPCOUNT" series: the mm-id
 * tracking is modelled by looking at where the folio is mapped).
 * @kernel mm/memory.c:__wp_can_reuse_large_anon_folio (v6.15+)
 */
function __wp_can_reuse_large_anon_folio(f: folio, vma: vm_area_struct): boolean {
  const mapcount = folio_mapcount(f);
  if (mapcount <= 1) return false;
  if (folio_mappings(f).some((h) => h.vma.vm_mm !== vma.vm_mm)) return false;
  return mapcount === folio_ref_count(f);
}

/**
 * wp_can_reuse_anon_folio(folio, vma): may a write fault reuse this non-exclusive
 * anonymous folio? Only if this mapping holds the only reference (checked again under the
 * folio lock); the folio then moves to vma's anon_vma. Large folios: never (v6.5–v6.14),
 * the mapping/refcount rule (v6.15+); v6.1 applies the refcount rule to them too.
 * @kernel mm/memory.c:wp_can_reuse_anon_folio (v6.5+; inline in do_wp_page v5.19–v6.4)
 * Locking: PTL held; trylocks the folio.
 */
function* wp_can_reuse_anon_folio(f: folio, vma: vm_area_struct): Op<boolean> {
  if (folio_test_large(f)) {
    if (since(6, 15)) return __wp_can_reuse_large_anon_folio(f, vma);
    if (since(6, 5)) return false;
  }
  // KSM is not modelled; the LRU drain (lru_add_drain) has nothing to drain.
  if (folio_ref_count(f) > 3) return false;
  if (folio_ref_count(f) > 1) return false;
  if (!(yield* folio_trylock(f))) return false;
  if (folio_ref_count(f) !== 1) {
    yield* folio_unlock(f);
    return false;
  }
  folio_move_anon_rmap(f, vma);
  yield* folio_unlock(f);
  return true;
}

/**
 * do_wp_page(vmf): write (or unshare) fault on a present read-only PTE. (R-FORK-4)
 * - v6.2+ (b9086fde6d44 "mm: rework handling in do_wp_page() based on private vs. shared
 *   mappings"): VM_SHARED|VM_MAYSHARE ⇒ no normal page: wp_pfn_shared, else
 *   wp_page_shared. Private: an anonymous page that is PageAnonExclusive or reusable
 *   (wp_can_reuse_anon_folio) is made writable in place; everything else is copied
 *   (wp_page_copy), including the zero page and pfns without a page.
 * - v5.7–v6.1: no normal page ⇒ wp_pfn_shared if VM_WRITE|VM_SHARED, else copy; an
 *   anonymous page is reused if exclusive: v5.19+ PageAnonExclusive or the only reference
 *   (6c287605fd56); v5.9–v5.18 page_count == 1 and mapcount == 1 (09854ba94c6a "mm:
 *   do_wp_page() simplification"); v5.7–v5.8 reuse_swap_page (only one mapping).
 *   Writable shared file pages ⇒ wp_page_shared; else copy.
 * @kernel mm/memory.c:do_wp_page (all versions)
 * Locking: mmap_lock held for read; PTL held on entry, released on return.
 * Return: vm_fault_t (VM_FAULT_WRITE on success before v6.2).
 */
export function* do_wp_page(vmf: vm_fault): Op<vm_fault_t> {
  const unshare = (vmf.flags & FAULT_FLAG_UNSHARE) !== 0;
  const vma = vmf.vma;
  vmf.page = vm_normal_page(vma, vmf.address, vmf.orig_pte);
  const f = vmf.page !== null ? page_folio(vmf.page) : null;

  if (since(6, 2)) {
    // Shared mapping: we are guaranteed to have VM_WRITE and FAULT_FLAG_WRITE here.
    if (vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) {
      if (!vmf.page) {
        vmf.page = null;
        return yield* wp_pfn_shared(vmf);
      }
      return yield* wp_page_shared(vmf, f!);
    }
    if (
      f !== null &&
      folio_test_anon(f) &&
      (PageAnonExclusive(vmf.page!) || (yield* wp_can_reuse_anon_folio(f, vma)))
    ) {
      if (!PageAnonExclusive(vmf.page!)) SetPageAnonExclusive(vmf.page!);
      if (unshare) {
        yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
        return 0;
      }
      yield* wp_page_reuse(vmf, f);
      return 0;
    }
    // Ok, we need to copy. Oh, well..
    if (f !== null) folio_get(f);
    yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
    return yield* wp_page_copy(vmf);
  }

  if (!vmf.page) {
    if (unshare) {
      // No anonymous page -> nothing to do.
      yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
      return 0;
    }
    if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED))
      return yield* wp_pfn_shared(vmf);
    yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
    return yield* wp_page_copy(vmf);
  }
  const p = vmf.page;
  const folio = f!;
  if (folio_test_anon(folio)) {
    if (since(5, 19)) {
      let reuse = PageAnonExclusive(p);
      if (!reuse) {
        reuse = yield* wp_can_reuse_anon_folio(folio, vma);
        // page_move_anon_rmap() also set PageAnonExclusive until v6.2.
        if (reuse) SetPageAnonExclusive(p);
      }
      if (reuse) {
        if (unshare) {
          yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
          return 0;
        }
        yield* wp_page_reuse(vmf, folio);
        return VM_FAULT_WRITE;
      }
    } else if (since(5, 9)) {
      if (folio_ref_count(folio) === 1 && (yield* folio_trylock(folio))) {
        if (page_mapcount(p) !== 1 || folio_ref_count(folio) !== 1) {
          yield* folio_unlock(folio);
        } else {
          yield* folio_unlock(folio);
          yield* wp_page_reuse(vmf, folio);
          return VM_FAULT_WRITE;
        }
      }
    } else {
      if (!(yield* folio_trylock(folio))) {
        folio_get(folio);
        yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
        yield* folio_lock(folio);
        const r = yield* pte_offset_map_lock(vma.vm_mm, vmf.pmd!, vmf.address);
        if (!r) {
          yield* folio_unlock(folio);
          folio_put(folio);
          return 0;
        }
        [vmf.pte, vmf.ptl] = r;
        if (!pte_same(ptep_get(vmf.pte), vmf.orig_pte)) {
          yield* folio_unlock(folio);
          yield* pte_unmap_unlock(vmf.pte, vmf.ptl);
          folio_put(folio);
          return 0;
        }
        folio_put(folio);
      }
      // reuse_swap_page(page, &total_map_swapcount): no swap in the model.
      if (page_trans_huge_mapcount(p) <= 1) {
        if (folio_mapcount(folio) === 1) folio_move_anon_rmap(folio, vma);
        yield* folio_unlock(folio);
        yield* wp_page_reuse(vmf, folio);
        return VM_FAULT_WRITE;
      }
      yield* folio_unlock(folio);
    }
  } else if (unshare) {
    yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
    return 0;
  } else if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED)) {
    return yield* wp_page_shared(vmf, folio);
  }
  // copy:
  folio_get(folio);
  yield* pte_unmap_unlock(vmf.pte!, vmf.ptl!);
  return yield* wp_page_copy(vmf);
}
