/**
 * get_user_pages and friends (mm/gup.c): taking references (FOLL_GET) and pins (FOLL_PIN)
 * on the pages behind user addresses, by walking the page tables under mmap_lock and
 * faulting in what is missing (the slow path), or by a lockless walk (GUP-fast); the
 * long-term pin rules (FOLL_LONGTERM: migrate folios out of CMA, ZONE_MOVABLE and
 * isolated pageblocks first); fixup_user_fault; and the population helpers behind
 * mlock/MAP_POPULATE (__mm_populate, populate_vma_page_range) and MADV_POPULATE_*
 * (faultin_page_range / faultin_vma_page_range).
 *
 * Rules: kernel-spec.md R-GUP-1..9, R-VMA-2, and the §11 observations O-1..O-11.
 *
 * Versions. Each behaviour is selected where it changed, with the commit cited at the
 * gate. The large steps:
 * - v5.7–v5.12: per-entry-point flag checks (is_valid_gup_flags), FOLL_COW for forced
 *   writes, FOLL_NUMA, FOLL_MLOCK/FOLL_POPULATE for mlock, CMA-only long-term migration
 *   that pins in place when migration fails (check_and_migrate_cma_pages), no
 *   write_protect_seq before v5.11.
 * - v5.13–v5.18: ZONE_MOVABLE too, migration failure is -ENOMEM with nothing pinned.
 * - v5.19/v6.0: PageAnonExclusive: R/O pins unshare (-EMLINK ⇒ FAULT_FLAG_UNSHARE),
 *   FOLL_COW gone, MIGRATE_ISOLATE and device-coherent memory are not long-term pinnable.
 * - v6.3: is_valid_gup_args and FOLL_UNLOCKABLE; v6.5: no long-term write pins of
 *   dirty-tracked file mappings, the zero page is never pinned, gup_vma_lookup;
 *   v6.9: FOLL_MADV_POPULATE; v6.12: special PMD/PUD leaves stop GUP-fast;
 *   v6.14: hugetlb accepts FOLL_FORCE|FOLL_WRITE again.
 *
 * Model choices and omissions (each also noted at the function):
 * - `pages` is a JS array the caller owns; functions fill it from an index. NULL slots
 *   stand for entries the kernel leaves NULL (or, before v5.17, uninitialised).
 * - `int *locked` is an {@link int_ptr}. The vmas[] output of kernels before v6.5 is not
 *   modelled (every caller passes NULL).
 * - Left out: hugetlb's own walker (follow_hugetlb_page, before v6.9: hugetlb VMAs take the
 *   generic walk here; their faults belong to the hugetlb model), the gate area
 *   (vsyscall page: in_gate_area is false), stack expansion by GUP before v6.5
 *   (find_extend_vma finds the VMA but never grows it), ZONE_DEVICE/devmap pages and
 *   dev_pagemap references, fsdax (no VMA or folio is fsdax in the model), KSM, NUMA
 *   hinting (protnone entries only come from PROT_NONE VMAs), mark_page_accessed /
 *   folio_set_referenced (no LRU ages), touch_pmd of FOLL_TOUCH on huge leaves, the
 *   mlocking of pages (PG_mlocked, FOLL_MLOCK's mlock_vma_page), memalloc_pin_save
 *   (PF_MEMALLOC_PIN: allocations made while pinning are not steered away from CMA and
 *   ZONE_MOVABLE; the migration target of a long-term pin is), NR_FOLL_PIN_* vmstat
 *   counters, mmap_read_lock_killable's -EINTR, and arch_make_folio_accessible (x86: 0).
 * - Model addition (not kernel behaviour): every live FOLL_PIN pin is recorded with its
 *   owner, entry point, flags, call path and time ("Pin provenance", end of file), so
 *   that reports such as cma_alloc's failure can name the pin holding a frame.
 * - GUP-fast's IRQ-disabled window (which keeps page tables from being freed under the
 *   walk) is not modelled: a walker that races with a table free reads the freed table's
 *   cleared entries and fails its re-check, as it would on a live kernel.
 *
 * @kernel mm/gup.c (v5.7+; see the gates), include/linux/mm.h, mm/internal.h
 *   (gup_must_unshare, gup_can_follow_protnone, INTERNAL_GUP_FLAGS)
 */
import { currentThread, type Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
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
  vm_fault_t,
} from '../include/linux/mm_types.js';
import {
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_INTERRUPTIBLE,
  FAULT_FLAG_KILLABLE,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_RETRY_NOWAIT,
  FAULT_FLAG_TRIED,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  MMF_HAS_PINNED,
} from '../include/linux/mm_types.js';
import {
  FOLL_ANON,
  FOLL_COW,
  FOLL_DUMP,
  FOLL_FAST_ONLY,
  FOLL_FORCE,
  FOLL_GET,
  FOLL_HONOR_NUMA_FAULT,
  FOLL_HWPOISON,
  FOLL_INTERRUPTIBLE,
  FOLL_LONGTERM,
  FOLL_MADV_POPULATE,
  FOLL_MLOCK,
  FOLL_NOFAULT,
  FOLL_NOWAIT,
  FOLL_NUMA,
  FOLL_PCI_P2PDMA,
  FOLL_PIN,
  FOLL_POPULATE,
  FOLL_REMOTE,
  FOLL_SPLIT_PMD,
  FOLL_TOUCH,
  FOLL_TRIED,
  FOLL_UNLOCKABLE,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  VM_FAULT_COMPLETED,
  VM_FAULT_ERROR,
  VM_FAULT_RETRY,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKONFAULT,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHADOW_STACK,
  VM_SHARED,
  VM_WRITE,
  folio_has_pincount,
  folio_is_device_coherent,
  folio_is_longterm_pinnable,
  is_cow_mapping,
  mm_flags_set,
  mm_flags_test,
  vm_fault_to_errno,
  vma_is_anonymous,
} from '../include/linux/mm.js';
import {
  EAGAIN,
  EBUSY,
  EEXIST,
  EFAULT,
  EHWPOISON,
  EINTR,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  EREMOTEIO,
} from '../include/linux/errno.js';
import {
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_USER,
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  PGDIR_SIZE,
  HPAGE_PMD_NR,
  TASK_SIZE_MAX,
  pte_dirty,
  pte_flags,
  pte_mkdirty,
  pte_mkyoung,
  pte_none,
  pte_pfn,
  pte_present,
  pte_protnone,
  pte_write,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pgd_none,
  pmd_leaf,
  pmd_none,
  pmd_present,
  pmd_special,
  pmd_write,
  pte_special,
  pud_bad,
  pud_leaf,
  pud_present,
  pud_special,
  pud_write,
  p4d_bad,
  p4d_present,
} from '../arch/x86/include/asm/pgtable.js';
import {
  entry_table,
  is_zero_pfn,
  pgd_offset,
  p4d_offset,
  pmd_index,
  pmd_lock,
  pmdp_get_lockless,
  ptep_get,
  ptep_get_lockless,
  pte_alloc,
  pte_index,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_index,
  pud_lock,
  pudp_get_lockless,
  set_pte_at,
} from '../include/linux/pgtable.js';
import { spin_unlock } from '../include/linux/spinlock.js';
import {
  mmap_assert_locked,
  mmap_read_lock,
  mmap_read_unlock,
} from '../include/linux/mmap_lock.js';
import {
  folio_nr_pages,
  folio_pincount_add,
  folio_raw_mapping,
  folio_test_anon,
  folio_test_dirty,
  folio_test_large,
  page_folio,
  PageAnon,
  PageAnonExclusive,
} from '../include/linux/page-flags.js';
import {
  folio_get,
  folio_ref_obj,
  folio_put_refs,
  folio_ref_add,
  folio_ref_count,
  folio_ref_try_add,
} from '../include/linux/page_ref.js';
import { fatal_signal_pending, get_current } from '../include/linux/sched.js';
import {
  BUG,
  dump_stack,
  VM_BUG_ON,
  VM_WARN_ON_ONCE,
  WARN_ON,
  WARN_ON_ONCE,
} from '../kernel/panic.js';
import { pr_warn } from '../kernel/printk.js';
import {
  arch_vma_access_permitted,
  handle_mm_fault,
  vma_is_accessible,
  VM_FAULT_WRITE,
} from './memory.fault.js';
import { vm_normal_page } from './memory.normal.js';
import { is_huge_zero_pmd } from './huge_memory.js';
import { split_huge_pmd } from './huge_memory.anon.js';
import { find_vma, find_vma_intersection, vma_lookup } from './vma.js';
import { folio_lock, folio_mark_dirty, folio_unlock, mapping_can_writeback } from './filemap.js';
import { shmem_mapping } from './shmem.js';
import {
  alloc_migration_target,
  contig_ref_step,
  folio_isolate_lru,
  folioIsolated,
  migrate_pages,
  putback_movable_pages,
  MIGRATE_SYNC,
  MR_CONTIG_RANGE,
  MR_LONGTERM_PIN,
  type migration_target_control,
} from './migrate.js';
import { GFP_USER, __GFP_NOWARN, pfn_in_cma_area, zone_state_obj } from './page_alloc.js';
import { pfnsan_unpin_check } from './pfnsan/pfnsan.js';

/** -EMLINK: GUP's internal "unshare first" result of follow_page_mask (v5.19+). */
const EMLINK = 31;

/* ------------------------------------------------------------------------------------ */
/* Types                                                                                 */
/* ------------------------------------------------------------------------------------ */

/** struct page **pages: filled by GUP; NULL slots as described in the file comment. */
export type page_array = (page | null)[];

/** int *: an in/out integer argument (`locked`). */
export interface int_ptr {
  value: number;
}

/** bool *: an out boolean argument (`unlocked` of fixup_user_fault). */
export interface bool_ptr {
  value: boolean;
}

/** struct follow_page_context, reduced (no dev_pagemap in the model). */
interface follow_page_context {
  page_mask: number;
}

/**
 * What the follow_page_* walkers return: a page (its pfn, >= 0), NULL, or an ERR_PTR,
 * which the model writes as the negative errno.
 */
type follow_ret = number | null;

const IS_ERR = (x: follow_ret): x is number => x !== null && x < 0;

/** mm/internal.h INTERNAL_GUP_FLAGS (v6.7+, with "mm/gup: explicitly define and check internal
 *  GUP flags, disallow FOLL_TOUCH"; + FOLL_MADV_POPULATE v6.9, 631426ba1d45). */
export function INTERNAL_GUP_FLAGS(): number {
  let f = FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE;
  if (since(6, 9)) f |= FOLL_MADV_POPULATE;
  return f;
}

/** Model limit: consecutive faults on one address after which GUP is reported as stuck. */
const MAX_GUP_RETRIES = 64;

/* ------------------------------------------------------------------------------------ */
/* Predicates the pin rules depend on                                                    */
/* ------------------------------------------------------------------------------------ */

/**
 * secretmem_mapping(mapping): the address_space of a memfd_secret file. The secretmem
 * model (mm/secretmem.ts) creates its inodes on a super block whose s_type is
 * 'secretmem'; this predicate is how GUP recognises them.
 * @kernel include/linux/secretmem.h:secretmem_mapping (v6.10+; the a_ops comparison of
 *   vma_is_secretmem/page_is_secretmem v5.14+)
 * Return: true for a secretmem mapping.
 */
export function secretmem_mapping(mapping: address_space | null | undefined): boolean {
  return mapping?.host?.i_sb?.s_type === 'secretmem';
}

/**
 * vma_is_secretmem(vma): the VMA maps a memfd_secret file (vma->vm_file's mapping is a
 * secretmem mapping; see secretmem_mapping).
 * @kernel include/linux/secretmem.h:vma_is_secretmem (v5.14+, 1507f51255c9 "mm: introduce
 *   memfd_secret system call to create "secret" memory areas")
 * Return: true for a secretmem VMA (always false before v5.14).
 */
export function vma_is_secretmem(vma: vm_area_struct): boolean {
  if (!since(5, 14) || currentKernel().config.CONFIG_SECRETMEM !== true) return false;
  return secretmem_mapping(vma.vm_file?.f_mapping);
}

/**
 * vma_is_fsdax(vma): a file mapping on a DAX file system. The model has no DAX.
 * @kernel include/linux/fs.h:vma_is_fsdax (all versions)
 * Return: false.
 */
export function vma_is_fsdax(_vma: vm_area_struct): boolean {
  return false;
}

/**
 * is_pci_p2pdma_page(page): PCI peer-to-peer DMA memory (a ZONE_DEVICE page of a PCI
 * BAR). Until the device model exists, a page counts as P2PDMA when its pfn was
 * registered with {@link mark_pci_p2pdma_page} (a model hook).
 * @kernel include/linux/memremap.h:is_pci_p2pdma_page (all versions)
 * Return: true for a registered P2PDMA page.
 */
export function is_pci_p2pdma_page(p: page): boolean {
  const s = currentKernel().sub.pci_p2pdma_pfns as Set<number> | undefined;
  return s?.has(p) ?? false;
}

/** Model hook: marks pfn as PCI P2PDMA memory (see is_pci_p2pdma_page). */
export function mark_pci_p2pdma_page(pfn: number): void {
  const k = currentKernel();
  const s = (k.sub.pci_p2pdma_pfns as Set<number> | undefined) ?? new Set<number>();
  s.add(pfn);
  k.sub.pci_p2pdma_pfns = s;
}

/** is_zero_page(page) / is_zero_folio(folio): the shared zero page (include/linux/mm.h). */
function is_zero_page(p: number): boolean {
  return is_zero_pfn(p);
}

/* ------------------------------------------------------------------------------------ */
/* Taking and dropping references and pins                                               */
/* ------------------------------------------------------------------------------------ */

/**
 * mm_set_has_pinned_flag(mm): records that the mm has had pages pinned (MMF_HAS_PINNED),
 * which fork consults (folio_needs_cow_for_dma, O-9). Once set it stays set.
 * v5.9–v5.12 set atomic mm->has_pinned (008cfe4418b3 "mm: Introduce mm_struct.has_pinned");
 * v5.13+ the MMF_HAS_PINNED bit (a458b76a4171 "mm: gup: pack has_pinned in MMF_HAS_PINNED");
 * the model keeps the bit for both. v5.7–v5.8 record nothing.
 * @kernel mm/gup.c:mm_set_has_pinned_flag (v5.13+)
 */
export function mm_set_has_pinned_flag(mm: mm_struct): void {
  if (!since(5, 9)) return;
  if (!mm_flags_test(MMF_HAS_PINNED, mm)) mm_flags_set(MMF_HAS_PINNED, mm);
}

/**
 * try_grab_folio(folio, refs, flags): takes `refs` references (FOLL_GET) or pins
 * (FOLL_PIN) on a folio the caller holds stable (slow path, under the PTL).
 * - FOLL_GET: refcount += refs.
 * - FOLL_PIN: the zero page is left alone (v6.5+, c8070b787519 "mm: Don't pin ZERO_PAGE in
 *   pin_user_pages()"); a folio with a pincount gets refcount += refs and _pincount +=
 *   refs; a small folio refcount += refs * GUP_PIN_COUNTING_BIAS (R-GUP-5).
 * - a P2PDMA page without FOLL_PCI_P2PDMA is refused with -EREMOTEIO (v6.2+,
 *   4003f107fa2e "mm: introduce FOLL_PCI_P2PDMA to gate getting PCI P2PDMA pages").
 * - a folio whose refcount is not positive: WARN_ON_ONCE and -ENOMEM (v5.18+; before,
 *   try_grab_page returned false for it — WARN for FOLL_PIN, try_get_page's WARN for
 *   FOLL_GET — which its callers turned into -ENOMEM).
 * @kernel mm/gup.c:try_grab_folio (v6.11+; try_grab_page v5.7–v6.10)
 * Locking: the caller holds the PTL (or the folio is otherwise stable).
 * Return: 0, -ENOMEM, -EREMOTEIO.
 */
export function try_grab_folio(f: folio, refs: number, flags: number): number {
  if (WARN_ON_ONCE(folio_ref_count(f) <= 0)) return -ENOMEM;
  if (since(6, 2) && !(flags & FOLL_PCI_P2PDMA) && is_pci_p2pdma_page(f as number as page))
    return -EREMOTEIO;
  if (flags & FOLL_GET) {
    folio_ref_add(f, refs);
  } else if (flags & FOLL_PIN) {
    // Don't take a pin on the zero page - it's not going anywhere and it is used in a
    // *lot* of places.
    if (since(6, 5) && is_zero_page(f)) return 0;
    // Increment the normal page refcount field at least once, so that the page really
    // is pinned.
    if (folio_has_pincount(f)) {
      folio_ref_add(f, refs);
      folio_pincount_add(f, refs);
    } else {
      folio_ref_add(f, refs * GUP_PIN_COUNTING_BIAS);
    }
    gup_pin_record_add(f, refs, flags); // model: pin provenance (end of file)
  }
  return 0;
}

/**
 * gup_put_folio(folio, refs, flags): drops what try_grab_folio took: FOLL_PIN undoes the
 * pincount (or the bias) and the references; the last reference frees the folio.
 * @kernel mm/gup.c:gup_put_folio (v5.19+; put_compound_head v5.7–v5.18)
 * Locking: none.
 */
export function gup_put_folio(f: folio, refs: number, flags: number): void {
  if (flags & FOLL_PIN) {
    if (since(6, 5) && is_zero_page(f)) return;
    pfnsan_unpin_check(f, refs);
    gup_pin_record_del(f, refs); // model: pin provenance (end of file)
    if (folio_has_pincount(f)) folio_pincount_add(f, -refs);
    else refs *= GUP_PIN_COUNTING_BIAS;
  }
  folio_put_refs(f, refs);
}

/**
 * The speculative reference GUP-fast takes on a folio it found through a lockless PTE
 * read: folio_ref_try_add fails when the refcount is zero (the folio is being freed). A
 * scheduling point on the folio's refcount: another thread may have freed, split or
 * reused it since the PTE was read.
 * @kernel mm/gup.c:try_get_folio (v5.18+; try_get_compound_head v5.7–v5.17)
 * Return: the folio with refs more references, or null.
 */
function* try_get_folio(p: page, refs: number): Op<folio | null> {
  let f = page_folio(p);
  for (;;) {
    yield {
      obj: folio_ref_obj(f),
      kind: 'write',
      what: 'folio_ref_try_add',
      // The long-term check next to the grab reads the pageblock's migratetype.
      ...(pfn_in_cma_area(f) ? { reads: [zone_state_obj(f)] } : {}),
    };
    if (WARN_ON_ONCE(folio_ref_count(f) < 0)) return null;
    if (!folio_ref_try_add(f, refs)) return null;
    // The folio may have been split between page_folio() and the increment.
    if (page_folio(p) === f) return f;
    // v5.18+ retries with the new folio; v5.7–v5.17 gave up.
    folio_put_refs(f, refs);
    if (!since(5, 18)) return null;
    f = page_folio(p);
  }
}

/**
 * try_grab_folio_fast(page, refs, flags): GUP-fast's grab: a speculative reference
 * (try_get_folio), then for FOLL_PIN the long-term check and the pin accounting.
 * - FOLL_PIN of the zero page: nothing taken (v6.5+); earlier it was pinned like any page.
 * - FOLL_PIN|FOLL_LONGTERM of a folio that is not long-term pinnable: refused, so the
 *   caller falls back to the slow path which migrates it (v5.13+ after the reference,
 *   folio_is_longterm_pinnable; v5.7–v5.12 before it, CMA pageblocks only: "Can't do
 *   FOLL_LONGTERM + FOLL_PIN with CMA in the gup fast path").
 * - P2PDMA without FOLL_PCI_P2PDMA: refused (v6.2+).
 * @kernel mm/gup.c:try_grab_folio_fast (v6.11+; try_grab_folio v5.18–v6.10,
 *   try_grab_compound_head v5.7–v5.17)
 * Locking: none (lockless walk); one step for the reference.
 * Return: the folio, or null (nothing taken).
 */
function* try_grab_folio_fast(p: page, refs: number, flags: number): Op<folio | null> {
  if (WARN_ON_ONCE((flags & (FOLL_GET | FOLL_PIN)) === 0)) return null;
  if (since(6, 2) && !(flags & FOLL_PCI_P2PDMA) && is_pci_p2pdma_page(p)) return null;
  if (flags & FOLL_GET) return yield* try_get_folio(p, refs);
  // FOLL_PIN is set.
  if (since(6, 5) && is_zero_page(p)) return page_folio(p);
  if (!since(5, 13) && flags & FOLL_LONGTERM) {
    // The pageblock's migratetype is read before any reference is taken.
    if (pfn_in_cma_area(p))
      yield { obj: zone_state_obj(p), kind: 'read', what: 'is_migrate_cma_page' };
    if (!folio_is_longterm_pinnable(page_folio(p))) return null;
  }
  const f = yield* try_get_folio(p, refs);
  if (!f) return null;
  if (since(5, 13) && flags & FOLL_LONGTERM && !folio_is_longterm_pinnable(f)) {
    folio_put_refs(f, refs);
    return null;
  }
  // When pinning a large folio, use an exact count to track it; the reference from
  // try_get_folio() is left intact.
  if (folio_has_pincount(f)) folio_pincount_add(f, refs);
  else folio_ref_add(f, refs * (GUP_PIN_COUNTING_BIAS - 1));
  gup_pin_record_add(f, refs, flags); // model: pin provenance (end of file)
  return f;
}

/**
 * unpin_user_page(page): releases one FOLL_PIN pin.
 * @kernel mm/gup.c:unpin_user_page (v5.6+)
 * Locking: none.
 */
export function unpin_user_page(p: page): void {
  gup_put_folio(page_folio(p), 1, FOLL_PIN);
}

/**
 * The run of consecutive entries of `pages` from i that belong to one folio.
 * @kernel mm/gup.c:gup_folio_next (v6.1+; compound_next v5.13–v6.0)
 */
function gup_folio_next(pages: page_array, npages: number, i: number): [folio, number] {
  const f = page_folio(pages[i]!);
  let nr = i + 1;
  for (; nr < npages; nr++) {
    const q = pages[nr];
    if (q === null || q === undefined || page_folio(q) !== f) break;
  }
  return [f, nr - i];
}

/**
 * unpin_user_pages(pages, npages): releases the pins of npages pages, a folio's run of
 * pages at a time. A negative npages (an errno passed by mistake) WARNs and does nothing.
 * NULL entries are skipped (v6.11+, the pages_or_folios rework; before, a NULL entry is
 * dereferenced and the model oopses, as the kernel would).
 * @kernel mm/gup.c:unpin_user_pages (v5.6+; batched by folio v5.13+, 31b912de1316)
 * Locking: none.
 */
export function unpin_user_pages(pages: page_array, npages: number): void {
  if (WARN_ON(npages < 0)) return;
  for (let i = 0; i < npages;) {
    if (pages[i] === null || pages[i] === undefined) {
      if (since(6, 11)) {
        i++;
        continue;
      }
      BUG('BUG: kernel NULL pointer dereference, address: 0000000000000008 (unpin_user_pages)');
    }
    const [f, nr] = gup_folio_next(pages, npages, i);
    gup_put_folio(f, nr, FOLL_PIN);
    i += nr;
  }
}

/**
 * unpin_user_pages_dirty_lock(pages, npages, make_dirty): releases the pins, first
 * marking each folio dirty under its lock if asked and it is clean (what a DMA write into
 * the pages requires).
 * @kernel mm/gup.c:unpin_user_pages_dirty_lock (v5.6+; set_page_dirty_lock before v5.19)
 * Locking: takes each folio's lock.
 */
export function* unpin_user_pages_dirty_lock(
  pages: page_array,
  npages: number,
  make_dirty: boolean,
): Op<void> {
  if (!make_dirty) {
    unpin_user_pages(pages, npages);
    return;
  }
  for (let i = 0; i < npages;) {
    const [f, nr] = gup_folio_next(pages, npages, i);
    // Checking PageDirty may race with clear_page_dirty_for_io(); both outcomes are fine.
    if (!folio_test_dirty(f)) {
      yield* folio_lock(f);
      yield* folio_mark_dirty(f);
      yield* folio_unlock(f);
    }
    gup_put_folio(f, nr, FOLL_PIN);
    i += nr;
  }
}

/**
 * unpin_user_page_range_dirty_lock(page, npages, make_dirty): as
 * unpin_user_pages_dirty_lock for npages consecutive pages starting at page.
 * @kernel mm/gup.c:unpin_user_page_range_dirty_lock (v5.12+)
 */
export function* unpin_user_page_range_dirty_lock(
  p: page,
  npages: number,
  make_dirty: boolean,
): Op<void> {
  for (let i = 0; i < npages;) {
    const f = page_folio((p + i) as page);
    let nr = 1;
    if (folio_test_large(f)) nr = Math.min(npages - i, folio_nr_pages(f) - (p + i - f));
    if (make_dirty && !folio_test_dirty(f)) {
      yield* folio_lock(f);
      yield* folio_mark_dirty(f);
      yield* folio_unlock(f);
    }
    gup_put_folio(f, nr, FOLL_PIN);
    i += nr;
  }
}

function requireVersion(name: string, a: number, b: number, why: string): void {
  if (!since(a, b)) {
    throw new Error(
      `${name} does not exist in kernel ${currentKernel().version.name}: ${why} (v${a}.${b})`,
    );
  }
}

/**
 * unpin_folio(folio): releases one pin of a folio (memfd_pin_folios users).
 * @kernel mm/gup.c:unpin_folio (v6.11+, "mm/gup: introduce unpin_folio/unpin_folios
 *   helpers"; calling it on an older kernel is a model error)
 */
export function unpin_folio(f: folio): void {
  requireVersion('unpin_folio', 6, 11, 'added with memfd_pin_folios');
  gup_put_folio(f, 1, FOLL_PIN);
}

/**
 * unpin_folios(folios, nfolios): releases one pin per entry, runs of the same folio at a
 * time; NULL entries are skipped; a negative count WARNs.
 * @kernel mm/gup.c:unpin_folios (v6.11+)
 */
export function unpin_folios(folios: (folio | null)[], nfolios: number): void {
  requireVersion('unpin_folios', 6, 11, 'added with memfd_pin_folios');
  if (WARN_ON(nfolios < 0)) return;
  let i = 0;
  while (i < nfolios) {
    let j = i + 1;
    for (; j < nfolios; j++) if (folios[i] !== folios[j]) break;
    const f = folios[i];
    if (f !== null && f !== undefined) gup_put_folio(f, j - i, FOLL_PIN);
    i = j;
  }
}

/**
 * unpin_user_folio(folio, npages): releases npages pins of one folio.
 * @kernel mm/gup.c:unpin_user_folio (present in v6.12 and v6.18; io_uring's coalesced
 *   buffers. The release that added it is not pinned here: the model accepts it from v6.12)
 */
export function unpin_user_folio(f: folio, npages: number): void {
  requireVersion('unpin_user_folio', 6, 12, 'added for io_uring buffer coalescing');
  gup_put_folio(f, npages, FOLL_PIN);
}

/* ------------------------------------------------------------------------------------ */
/* The slow path: following the page tables under mmap_lock                              */
/* ------------------------------------------------------------------------------------ */

/**
 * no_page_table(vma, flags, address): what a walk that found no table or no entry
 * returns: NULL (fault it in), except for FOLL_DUMP on memory a fault would only fill
 * with zeroes (anonymous, or no ->fault): -EFAULT so the core dump leaves a hole.
 * @kernel mm/gup.c:no_page_table (all versions; the hugetlb branch v6.9+ is not modelled:
 *   hugetlb VMAs have ->fault and get NULL)
 * Return: null or -EFAULT.
 */
function no_page_table(vma: vm_area_struct, flags: number, _address: number): follow_ret {
  if (!(flags & FOLL_DUMP)) return null;
  if (vma_is_anonymous(vma) || !vma.vm_ops?.fault) return -EFAULT;
  return null;
}

/**
 * follow_pfn_pte(vma, address, ptep, flags): a present PTE without a struct page behind
 * it (vm_normal_page NULL, not the zero page: a VM_MIXEDMAP pfn, R-GUP-6). FOLL_TOUCH
 * marks it young (and dirty for a write) in place.
 * - v5.7–v5.16: FOLL_GET ⇒ -EFAULT ("No page to get reference"); FOLL_PIN fell through to
 *   -EEXIST, which __get_user_pages skipped, leaving pages[i] unset (a bug).
 * - v5.17: FOLL_GET|FOLL_PIN ⇒ -EFAULT (Peter Xu's fix, "Fixes: 3faa52c03f44 ("mm/gup:
 *   track FOLL_PIN pages")"; hash not pinned here).
 * - v5.18+: always -EEXIST; __get_user_pages fails it when pages[] is wanted ("mm/gup:
 *   follow_pfn_pte(): -EEXIST cleanup", John Hubbard; hash not pinned here).
 * @kernel mm/gup.c:follow_pfn_pte (all versions)
 * Locking: the PTL is held.
 * Return: -EEXIST or -EFAULT.
 */
function* follow_pfn_pte(
  vma: vm_area_struct,
  address: number,
  ptep: pte_t_ptr,
  flags: number,
): Op<number> {
  // No page to get reference.
  if (!since(5, 17) && flags & FOLL_GET) return -EFAULT;
  if (since(5, 17) && !since(5, 18) && flags & (FOLL_GET | FOLL_PIN)) return -EFAULT;
  if (flags & FOLL_TOUCH) {
    const orig = ptep_get(ptep);
    let entry = orig;
    if (flags & FOLL_WRITE) entry = pte_mkdirty(entry);
    entry = pte_mkyoung(entry);
    if (orig !== entry) yield* set_pte_at(vma.vm_mm, address, ptep, entry, 'follow_pfn_pte');
  }
  // Proper page table entry exists, but no corresponding struct page.
  return -EEXIST;
}

/**
 * can_follow_write_common(page, vma, flags): may FOLL_FORCE write through a read-only
 * entry? Only in a private (COW), VM_MAYWRITE, !VM_WRITE mapping, and only once the page
 * is an exclusive anonymous page, i.e. after a write fault broke COW (R-GUP-4).
 * @kernel mm/gup.c:can_follow_write_common (v6.12+; the same tests inline in
 *   can_follow_write_pte/pmd v6.0+, 5535be309971)
 */
function can_follow_write_common(p: number | null, vma: vm_area_struct, flags: number): boolean {
  // Maybe FOLL_FORCE is set to override it?
  if (!(flags & FOLL_FORCE)) return false;
  // But FOLL_FORCE has no effect on shared mappings ...
  if (vma.vm_flags & (VM_MAYSHARE | VM_SHARED)) return false;
  // ... or read-only private ones ...
  if (!(vma.vm_flags & VM_MAYWRITE)) return false;
  // ... or already writable ones that just need to take a write fault.
  if (vma.vm_flags & VM_WRITE) return false;
  // We broke COW and could map the page writable if we have an exclusive anonymous page.
  return p !== null && PageAnon(p as page) && PageAnonExclusive(p as page);
}

/**
 * can_follow_write_pte(pte, page, vma, flags): a FOLL_WRITE lookup may use this PTE.
 * v6.0+: writable, or can_follow_write_common (soft-dirty and uffd-wp, which would also
 * require a write fault, are not modelled). v5.7–v5.19: writable, or FOLL_FORCE with
 * FOLL_COW (set by faultin_page after a COW) on a dirty PTE.
 * @kernel mm/gup.c:can_follow_write_pte (all versions; 5535be309971 "mm/gup: fix FOLL_FORCE
 *   COW security issue and remove FOLL_COW", v6.0)
 */
function can_follow_write_pte(
  pte: pteval_t,
  p: number | null,
  vma: vm_area_struct,
  flags: number,
): boolean {
  if (!since(6, 0))
    return pte_write(pte) || (!!(flags & FOLL_FORCE) && !!(flags & FOLL_COW) && pte_dirty(pte));
  if (pte_write(pte)) return true;
  return can_follow_write_common(p, vma, flags);
}

/** can_follow_write_pmd(pmd, page, vma, flags): as can_follow_write_pte for a PMD leaf. */
function can_follow_write_pmd(
  pmd: pteval_t,
  p: number | null,
  vma: vm_area_struct,
  flags: number,
): boolean {
  if (!since(6, 0))
    return pmd_write(pmd) || (!!(flags & FOLL_FORCE) && !!(flags & FOLL_COW) && pte_dirty(pmd));
  if (pmd_write(pmd)) return true;
  return can_follow_write_common(p, vma, flags);
}

/**
 * gup_can_follow_protnone(vma, flags): may GUP use a PROT_NONE (protnone) entry rather
 * than fault? v6.5+: yes unless the caller honours NUMA hinting faults
 * (FOLL_HONOR_NUMA_FAULT, d74943a2f3cd) in an accessible VMA. v6.2–v6.4: only with
 * FOLL_FORCE (474098edac26). v5.7–v6.1: not with FOLL_NUMA, which __get_user_pages sets
 * when FOLL_FORCE is clear.
 * @kernel mm/internal.h:gup_can_follow_protnone (v6.2+)
 */
function gup_can_follow_protnone(vma: vm_area_struct, flags: number): boolean {
  if (!since(6, 2)) return !(flags & FOLL_NUMA);
  if (!since(6, 5)) return (flags & FOLL_FORCE) !== 0;
  if (!(flags & FOLL_HONOR_NUMA_FAULT)) return true;
  return !vma_is_accessible(vma);
}

/**
 * gup_must_unshare(vma, flags, page): a read-only FOLL_PIN must first unshare the page
 * (FAULT_FLAG_UNSHARE), so the pin keeps seeing what the process sees:
 * - an anonymous page that is not PageAnonExclusive (v5.19+, a7f226604170 "mm/gup:
 *   trigger FAULT_FLAG_UNSHARE when R/O-pinning a possibly shared anonymous page");
 * - with FOLL_LONGTERM, any non-anonymous page (the zero page, page cache) in a COW
 *   mapping, or when the VMA is unknown (GUP-fast) (v6.2+, 84209e87c696 "mm/gup: reliable
 *   R/O long-term pinning in COW mappings"; O-11).
 * FOLL_WRITE needs no unsharing: the entry is writable, hence exclusive.
 * @kernel mm/internal.h:gup_must_unshare (v5.19+)
 * Return: true when the caller must unshare (follow_page returns -EMLINK).
 */
export function gup_must_unshare(vma: vm_area_struct | null, flags: number, p: page): boolean {
  if (!since(5, 19)) return false;
  if ((flags & (FOLL_WRITE | FOLL_PIN)) !== FOLL_PIN) return false;
  if (!PageAnon(p)) {
    if (!since(6, 2)) return false;
    // We only care about R/O long-term pinning.
    if (!(flags & FOLL_LONGTERM)) return false;
    // We really need the vma ...
    if (!vma) return true;
    // ... because we only care about writable private ("COW") mappings.
    return is_cow_mapping(vma.vm_flags);
  }
  // KSM pages cannot be exclusive, and consequently, cannot get pinned.
  return !PageAnonExclusive(p);
}

/** The assertion after the unshare check: a pinned anonymous page must be exclusive. */
function check_pinned_exclusive(flags: number, p: page): void {
  if (!since(5, 19)) return;
  const bad = (flags & FOLL_PIN) !== 0 && PageAnon(p) && !PageAnonExclusive(p);
  // VM_BUG_ON_PAGE until the v6.5 conversion to VM_WARN_ON_ONCE_PAGE.
  if (since(6, 5)) VM_WARN_ON_ONCE(bad);
  else
    VM_BUG_ON(
      bad,
      `VM_BUG_ON_PAGE((flags & FOLL_PIN) && PageAnon(page) && !PageAnonExclusive(page)) pfn:0x${p.toString(16)}`,
    );
}

/**
 * follow_page_pte(vma, address, pmd, flags, ctx): looks up the page a PTE maps, under the
 * PTL, and takes the GET/PIN reference. In order: no table or no present entry ⇒ no page
 * (NULL: fault it in); protnone not followable ⇒ no page; a write the entry does not
 * allow ⇒ NULL; no struct page: FOLL_DUMP ⇒ -EFAULT, the zero pfn ⇒ the zero page, else
 * follow_pfn_pte (-EEXIST/-EFAULT, R-GUP-6); a read-only pin that must unshare ⇒ -EMLINK
 * (v5.19+); then try_grab_folio (its error is returned); FOLL_TOUCH marks the folio dirty
 * for a write through a clean PTE.
 * @kernel mm/gup.c:follow_page_pte (all versions; gates as noted in the called helpers)
 * Locking: mmap_lock held; takes and releases the PTL.
 * Return: the page, NULL, or a negative errno (ERR_PTR).
 * Left out: FOLL_MIGRATION (KSM, ≤ v6.2), devmap pages, FOLL_SPLIT (≤ v5.9), FOLL_MLOCK's
 *   mlock_vma_page (≤ v5.17), mark_page_accessed.
 */
function* follow_page_pte(
  vma: vm_area_struct,
  address: number,
  pmdp: pmd_t_ptr,
  flags: number,
): Op<follow_ret> {
  const mm = vma.vm_mm;
  const r = yield* pte_offset_map_lock(mm, pmdp, address);
  if (!r) return no_page_table(vma, flags, address);
  const [ptep, ptl] = r;
  const pte = ptep_get(ptep);
  let p: follow_ret;
  no_page: {
    if (!pte_present(pte)) break no_page;
    if (pte_protnone(pte) && !gup_can_follow_protnone(vma, flags)) break no_page;
    if (!since(6, 0) && flags & FOLL_WRITE && !can_follow_write_pte(pte, null, vma, flags)) {
      yield* pte_unmap_unlock(ptep, ptl);
      return null;
    }
    p = vm_normal_page(vma, address, pte);
    out: {
      // We only care about anon pages in can_follow_write_pte().
      if (since(6, 0) && flags & FOLL_WRITE && !can_follow_write_pte(pte, p, vma, flags)) {
        p = null;
        break out;
      }
      if (p === null) {
        if (flags & FOLL_DUMP) {
          // Avoid special (like zero) pages in core dumps.
          p = -EFAULT;
          break out;
        }
        if (is_zero_pfn(pte_pfn(pte))) {
          p = pte_pfn(pte);
        } else {
          p = yield* follow_pfn_pte(vma, address, ptep, flags);
          break out;
        }
      }
      const pg = p as page;
      const f = page_folio(pg);
      if (!pte_write(pte) && gup_must_unshare(vma, flags, pg)) {
        p = -EMLINK;
        break out;
      }
      check_pinned_exclusive(flags, pg);
      // try_grab_folio() does nothing unless FOLL_GET or FOLL_PIN is set.
      if (flags & (FOLL_GET | FOLL_PIN)) yield* contig_ref_step(f, 'try_grab_folio');
      const ret = try_grab_folio(f, 1, flags);
      if (ret) {
        p = ret;
        break out;
      }
      if (flags & FOLL_TOUCH) {
        if (flags & FOLL_WRITE && !pte_dirty(pte) && !folio_test_dirty(f))
          yield* folio_mark_dirty(f);
        // mark_page_accessed(): no LRU ages in the model.
      }
    }
    yield* pte_unmap_unlock(ptep, ptl);
    return p;
  }
  yield* pte_unmap_unlock(ptep, ptl);
  if (!pte_none(pte)) return null;
  return no_page_table(vma, flags, address);
}

/**
 * follow_huge_pmd(vma, addr, pmd, flags, ctx): the page of a PMD leaf (THP or the huge
 * zero page): a write must be allowed (can_follow_write_pmd); FOLL_DUMP skips the huge
 * zero page (-EFAULT); protnone as for PTEs; a read-only pin that must unshare ⇒ -EMLINK
 * (v5.19+); one GET/PIN on the folio; ctx->page_mask covers the 512 pages.
 * @kernel mm/gup.c:follow_huge_pmd (v6.9+; mm/huge_memory.c:follow_trans_huge_pmd before,
 *   same checks)
 * Locking: the PMD lock is held.
 * Return: the page at addr inside the leaf, NULL, or a negative errno.
 * Left out: touch_pmd (FOLL_TOUCH), FOLL_MLOCK (≤ v5.17).
 */
function follow_huge_pmd(
  vma: vm_area_struct,
  addr: number,
  pmdp: pmd_t_ptr,
  flags: number,
  ctx: follow_page_context,
): follow_ret {
  const pmdval = ptep_get(pmdp);
  const head = pte_pfn(pmdval);
  if (flags & FOLL_WRITE && !can_follow_write_pmd(pmdval, head, vma, flags)) return null;
  // Avoid dumping huge zero page.
  if (flags & FOLL_DUMP && is_huge_zero_pmd(pmdval)) return -EFAULT;
  if (pte_protnone(pmdval) && !gup_can_follow_protnone(vma, flags)) return null;
  if (!pmd_write(pmdval) && gup_must_unshare(vma, flags, head as page)) return -EMLINK;
  check_pinned_exclusive(flags, head as page);
  const ret = try_grab_folio(page_folio(head as page), 1, flags);
  if (ret) return ret;
  ctx.page_mask = HPAGE_PMD_NR - 1;
  return head + Math.floor((addr % PMD_SIZE) / PAGE_SIZE);
}

/**
 * follow_huge_pud(vma, addr, pud, flags, ctx): the page of a PUD leaf. In the model the
 * only PUD leaves are VM_PFNMAP (refused by check_vma_flags before any walk) and hugetlb
 * (the hugetlb model's), so this mirrors the v6.18 code for completeness.
 * @kernel mm/gup.c:follow_huge_pud (v6.9+; follow_devmap_pud / follow_huge_pud (hugetlb)
 *   before)
 * Locking: the PUD lock is held.
 */
function follow_huge_pud(
  vma: vm_area_struct,
  addr: number,
  pudp: pud_t_ptr,
  flags: number,
  ctx: follow_page_context,
): follow_ret {
  const pud = ptep_get(pudp);
  if (!pud_present(pud)) return null;
  const head = pte_pfn(pud);
  if (flags & FOLL_WRITE && !(pud_write(pud) || can_follow_write_common(head, vma, flags)))
    return null;
  const p = head + Math.floor((addr % PUD_SIZE) / PAGE_SIZE);
  if (!pud_write(pud) && gup_must_unshare(vma, flags, p as page)) return -EMLINK;
  const ret = try_grab_folio(page_folio(p as page), 1, flags);
  if (ret) return ret;
  ctx.page_mask = PUD_SIZE / PAGE_SIZE - 1;
  return p;
}

/**
 * follow_pmd_mask(vma, address, pud, flags, ctx): the PMD level: a lockless read decides
 * between the PTE table and a huge leaf; the leaf is re-read under the PMD lock.
 * FOLL_SPLIT_PMD splits a THP leaf and continues on the PTE level.
 * @kernel mm/gup.c:follow_pmd_mask (all versions; devmap/hugetlb branches of older
 *   kernels not modelled)
 * Locking: mmap_lock held; takes the PMD lock for leaves.
 */
function* follow_pmd_mask(
  vma: vm_area_struct,
  address: number,
  pudp: pud_t_ptr,
  flags: number,
  ctx: follow_page_context,
): Op<follow_ret> {
  const mm = vma.vm_mm;
  const pmdT = entry_table(pudp);
  if (!pmdT) return no_page_table(vma, flags, address);
  const pmdp: pmd_t_ptr = { t: pmdT, i: pmd_index(address) };
  let pmdval = yield* pmdp_get_lockless(pmdp);
  if (pmd_none(pmdval)) return no_page_table(vma, flags, address);
  if (!pmd_present(pmdval)) return no_page_table(vma, flags, address);
  if (!pmd_leaf(pmdval)) return yield* follow_page_pte(vma, address, pmdp, flags);
  if (pte_protnone(pmdval) && !gup_can_follow_protnone(vma, flags))
    return no_page_table(vma, flags, address);
  const ptl = yield* pmd_lock(mm, pmdp);
  pmdval = ptep_get(pmdp);
  if (!pmd_present(pmdval)) {
    yield* spin_unlock(ptl);
    return no_page_table(vma, flags, address);
  }
  if (!pmd_leaf(pmdval)) {
    yield* spin_unlock(ptl);
    return yield* follow_page_pte(vma, address, pmdp, flags);
  }
  if (flags & FOLL_SPLIT_PMD) {
    yield* spin_unlock(ptl);
    yield* split_huge_pmd(vma, pmdp, address);
    // If pmd was left empty, stuff a page table in there quickly.
    if (yield* pte_alloc(mm, pmdp)) return -ENOMEM;
    return yield* follow_page_pte(vma, address, pmdp, flags);
  }
  const p = follow_huge_pmd(vma, address, pmdp, flags, ctx);
  yield* spin_unlock(ptl);
  return p;
}

/**
 * follow_pud_mask(vma, address, p4d, flags, ctx): the PUD level.
 * @kernel mm/gup.c:follow_pud_mask (all versions)
 * Locking: mmap_lock held; takes mm->page_table_lock for a PUD leaf.
 */
function* follow_pud_mask(
  vma: vm_area_struct,
  address: number,
  p4dp: entry_ptr,
  flags: number,
  ctx: follow_page_context,
): Op<follow_ret> {
  const pudT = entry_table(p4dp);
  if (!pudT) return no_page_table(vma, flags, address);
  const pudp: pud_t_ptr = { t: pudT, i: pud_index(address) };
  const pud = yield* pudp_get_lockless(pudp);
  if (!pud_present(pud)) return no_page_table(vma, flags, address);
  if (pud_leaf(pud)) {
    const ptl = yield* pud_lock(vma.vm_mm, pudp);
    const p = follow_huge_pud(vma, address, pudp, flags, ctx);
    yield* spin_unlock(ptl);
    if (p !== null) return p;
    return no_page_table(vma, flags, address);
  }
  if (pud_bad(pud)) return no_page_table(vma, flags, address);
  return yield* follow_pmd_mask(vma, address, pudp, flags, ctx);
}

/**
 * follow_page_mask(vma, address, flags, ctx): looks up the page mapped at address and
 * takes the reference or pin flags ask for.
 * @kernel mm/gup.c:follow_page_mask (all versions)
 * Locking: mmap_lock held (read is enough).
 * Return: the page, NULL (nothing mapped: fault it in), or a negative errno: -EMLINK
 *   (unshare first), -EEXIST (no struct page), -EFAULT, -ENOMEM, -EREMOTEIO.
 */
export function* follow_page_mask(
  vma: vm_area_struct,
  address: number,
  flags: number,
  ctx: follow_page_context = { page_mask: 0 },
): Op<follow_ret> {
  const mm = vma.vm_mm;
  ctx.page_mask = 0;
  const pgdp = pgd_offset(mm, address);
  const pgd = ptep_get(pgdp);
  if (pgd_none(pgd) || p4d_bad(pgd)) return no_page_table(vma, flags, address);
  // follow_p4d_mask: READ_ONCE(*p4dp) (the p4d level is folded into the pgd).
  const p4dp = p4d_offset(pgdp, address);
  const p4d = yield* ptep_get_lockless(p4dp, 'follow_p4d_mask');
  if (!p4d_present(p4d) || p4d_bad(p4d)) return no_page_table(vma, flags, address);
  return yield* follow_pud_mask(vma, address, p4dp, flags, ctx);
}

/* ------------------------------------------------------------------------------------ */
/* Faulting in, the VMA checks, and the slow-path loop                                   */
/* ------------------------------------------------------------------------------------ */

/**
 * faultin_page(vma, address, flags, unshare, locked): resolves what follow_page_mask
 * could not, with handle_mm_fault: FOLL_WRITE ⇒ FAULT_FLAG_WRITE, FOLL_REMOTE ⇒ REMOTE,
 * unlockable ⇒ ALLOW_RETRY|KILLABLE (+INTERRUPTIBLE with FOLL_INTERRUPTIBLE, v6.1+),
 * FOLL_NOWAIT ⇒ ALLOW_RETRY|RETRY_NOWAIT, FOLL_TRIED ⇒ TRIED, unshare ⇒ UNSHARE (v5.19+).
 * A write fault that broke COW in a !VM_WRITE VMA (VM_FAULT_WRITE) sets FOLL_COW so the
 * retry may follow the dirty R/O PTE (≤ v5.19; R-GUP-4).
 * "Unlockable" is `locked != NULL` up to v6.2 and FOLL_UNLOCKABLE from v6.3
 * ("mm/gup: add FOLL_UNLOCKABLE", Jason Gunthorpe).
 * @kernel mm/gup.c:faultin_page (all versions)
 * Locking: mmap_lock held for read on entry; on -EBUSY/-EAGAIN it may have been dropped
 *   (*locked = 0).
 * Return: 0 (retry the lookup), -EBUSY (VM_FAULT_RETRY), -EAGAIN (VM_FAULT_COMPLETED,
 *   v5.19+), -ENOENT (FOLL_MLOCK without FOLL_POPULATE: don't fault, ≤ v5.17), -EFAULT
 *   (FOLL_NOFAULT v5.16+, SIGBUS/SIGSEGV), -ENOMEM, -EHWPOISON.
 */
function* faultin_page(
  vma: vm_area_struct,
  address: number,
  flagsp: int_ptr,
  unshare: boolean,
  locked: int_ptr | null,
): Op<number> {
  const flags = flagsp.value;
  let fault_flags = 0;
  // mlock all present pages, but do not fault in new pages.
  if (!since(5, 18) && (flags & (FOLL_POPULATE | FOLL_MLOCK)) === FOLL_MLOCK) return -ENOENT;
  if (since(5, 16) && flags & FOLL_NOFAULT) return -EFAULT;
  if (flags & FOLL_WRITE) fault_flags |= FAULT_FLAG_WRITE;
  if (flags & FOLL_REMOTE) fault_flags |= FAULT_FLAG_REMOTE;
  const unlockable = since(6, 3) ? (flags & FOLL_UNLOCKABLE) !== 0 : locked !== null;
  if (unlockable) {
    fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
    if (since(6, 1) && flags & FOLL_INTERRUPTIBLE) fault_flags |= FAULT_FLAG_INTERRUPTIBLE;
  }
  if (flags & FOLL_NOWAIT) fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_RETRY_NOWAIT;
  // FAULT_FLAG_ALLOW_RETRY and FAULT_FLAG_TRIED can co-exist.
  if (flags & FOLL_TRIED) fault_flags |= FAULT_FLAG_TRIED;
  if (unshare) {
    fault_flags |= FAULT_FLAG_UNSHARE;
    // FAULT_FLAG_WRITE and FAULT_FLAG_UNSHARE are incompatible.
    if (since(6, 5)) VM_WARN_ON_ONCE((fault_flags & FAULT_FLAG_WRITE) !== 0);
    else
      VM_BUG_ON(
        (fault_flags & FAULT_FLAG_WRITE) !== 0,
        'VM_BUG_ON(fault_flags & FAULT_FLAG_WRITE)',
      );
  }
  const ret: vm_fault_t = yield* handle_mm_fault(vma, address, fault_flags, null);
  if (since(5, 19) && ret & VM_FAULT_COMPLETED) {
    // With FAULT_FLAG_RETRY_NOWAIT we'll never release the mmap lock in the page fault
    // handler.
    WARN_ON_ONCE((fault_flags & FAULT_FLAG_RETRY_NOWAIT) !== 0);
    if (locked) locked.value = 0;
    return -EAGAIN;
  }
  if (ret & VM_FAULT_ERROR) {
    const err = vm_fault_to_errno(ret, flags);
    if (err) return err;
    BUG(`faultin_page: handle_mm_fault returned 0x${ret.toString(16)} (no errno)`);
  }
  if (ret & VM_FAULT_RETRY) {
    if (locked && !(fault_flags & FAULT_FLAG_RETRY_NOWAIT)) locked.value = 0;
    return -EBUSY;
  }
  // The VM_FAULT_WRITE bit tells us that do_wp_page has broken COW when necessary, even
  // if maybe_mkwrite decided not to set pte_write.
  if (!since(6, 0) && ret & VM_FAULT_WRITE && !(vma.vm_flags & VM_WRITE)) flagsp.value |= FOLL_COW;
  return 0;
}

/**
 * vma_needs_dirty_tracking(vma): a shared writable mapping whose writes the file system
 * must see: vm_ops with ->page_mkwrite/->pfn_mkwrite, or a file that is written back
 * (not shmem/tmpfs, not VM_PFNMAP). Lives here because GUP is its reason to exist (the
 * kernel keeps it in mm/mmap.c, whose model file belongs to another part of the model).
 * @kernel mm/mmap.c:vma_needs_dirty_tracking (v6.5+, with writable_file_mapping_allowed)
 * Return: true when dirty tracking is needed.
 */
export function vma_needs_dirty_tracking(vma: vm_area_struct): boolean {
  // Only shared, writable VMAs require dirty tracking.
  if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) !== (VM_WRITE | VM_SHARED)) return false;
  // Does the filesystem need to be notified?
  if (vma.vm_ops && (vma.vm_ops.page_mkwrite || vma.vm_ops.pfn_mkwrite)) return true;
  // Even if the filesystem doesn't indicate a need for writenotify, if it can writeback,
  // dirty tracking is still required (vma_fs_can_writeback).
  if (vma.vm_flags & VM_PFNMAP) return false;
  return vma.vm_file !== null && mapping_can_writeback(vma.vm_file.f_mapping);
}

/**
 * writable_file_mapping_allowed(vma, gup_flags): a long-term write pin (FOLL_PIN |
 * FOLL_LONGTERM) of a file mapping that needs dirty tracking is refused: the kernel
 * would write to a folio behind the file system's back after writeback cleaned it (O-1).
 * @kernel mm/gup.c:writable_file_mapping_allowed (v6.5+, "mm/gup: disallow FOLL_LONGTERM
 *   GUP-nonfast writing to file-backed mappings", Lorenzo Stoakes; hash not pinned here)
 * Return: true when the write pin is allowed.
 */
export function writable_file_mapping_allowed(vma: vm_area_struct, gup_flags: number): boolean {
  // If we aren't pinning then no problematic write can occur.
  if ((gup_flags & (FOLL_PIN | FOLL_LONGTERM)) !== (FOLL_PIN | FOLL_LONGTERM)) return true;
  // If the VMA does not require dirty tracking then no problematic write can occur either.
  return !vma_needs_dirty_tracking(vma);
}

/**
 * check_vma_flags(vma, gup_flags): may GUP use this VMA at all? (R-GUP-2, first match):
 * 1. VM_IO|VM_PFNMAP ⇒ -EFAULT (O-2);
 * 2. FOLL_ANON on a non-anonymous VMA ⇒ -EFAULT;
 * 3. FOLL_LONGTERM on fsdax ⇒ -EOPNOTSUPP (here since v5.12, "mm/gup: remove the vma
 *    allocation from gup_longterm_locked()" (release from memory, not re-verified); after pinning before; no fsdax in
 *    the model);
 * 4. FOLL_SPLIT_PMD on hugetlb ⇒ -EOPNOTSUPP (v6.9+, with hugetlb joining the generic
 *    walk; hash not pinned here);
 * 5. secretmem ⇒ -EFAULT (v5.14+; O-4);
 * 6. FOLL_WRITE: a non-anonymous VMA refused by writable_file_mapping_allowed ⇒ -EFAULT
 *    (v6.5+; O-1); a !VM_WRITE (or, v6.6+, shadow-stack) VMA needs FOLL_FORCE ⇒ else
 *    -EFAULT, is refused if hugetlb (v6.1–v6.13: f347454d0341 "mm/gup: disallow
 *    FOLL_FORCE|FOLL_WRITE on hugetlb mappings"; lifted in v6.14 by "mm/hugetlb: support
 *    FOLL_FORCE|FOLL_WRITE", O-8) and needs a COW mapping ⇒ else -EFAULT (O-6);
 * 7. a read of a !VM_READ VMA needs FOLL_FORCE and VM_MAYREAD ⇒ else -EFAULT (O-5);
 * 8. arch_vma_access_permitted (protection keys) ⇒ else -EFAULT.
 * @kernel mm/gup.c:check_vma_flags (all versions)
 * Return: 0 or -errno.
 */
export function check_vma_flags(vma: vm_area_struct, gup_flags: number): number {
  const vm_flags = vma.vm_flags;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  const foreign = (gup_flags & FOLL_REMOTE) !== 0;
  const vma_anon = vma_is_anonymous(vma);
  if (vm_flags & (VM_IO | VM_PFNMAP)) return -EFAULT;
  if (gup_flags & FOLL_ANON && !vma_anon) return -EFAULT;
  if (since(5, 12) && gup_flags & FOLL_LONGTERM && vma_is_fsdax(vma)) return -EOPNOTSUPP;
  if (since(6, 9) && gup_flags & FOLL_SPLIT_PMD && vm_flags & VM_HUGETLB) return -EOPNOTSUPP;
  if (vma_is_secretmem(vma)) return -EFAULT;
  if (write) {
    if (since(6, 5) && !vma_anon && !writable_file_mapping_allowed(vma, gup_flags)) return -EFAULT;
    if (!(vm_flags & VM_WRITE) || (since(6, 6) && vm_flags & VM_SHADOW_STACK)) {
      if (!(gup_flags & FOLL_FORCE)) return -EFAULT;
      // hugetlb does not support FOLL_FORCE|FOLL_WRITE.
      if (since(6, 1) && !since(6, 14) && vm_flags & VM_HUGETLB) return -EFAULT;
      // We used to let the write,force case do COW in a VM_MAYWRITE VM_SHARED !VM_WRITE
      // vma ... Anon pages in shared mappings are surprising: now just reject it.
      if (!is_cow_mapping(vm_flags)) return -EFAULT;
    }
  } else if (!(vm_flags & VM_READ)) {
    if (!(gup_flags & FOLL_FORCE)) return -EFAULT;
    // Is there actually any vma we can reach here which does not have VM_MAYREAD set?
    if (!(vm_flags & VM_MAYREAD)) return -EFAULT;
  }
  // gups are always data accesses, not instruction fetches, so execute=false here.
  if (!arch_vma_access_permitted(vma, write, false, foreign)) return -EFAULT;
  return 0;
}

/**
 * gup_vma_lookup(mm, addr): the VMA containing addr; GUP no longer grows stacks. An
 * access up to 64 KiB below a VM_GROWSDOWN VMA is reported (at most once an hour):
 * "GUP no longer grows the stack in <comm> (<pid>): <start>-<end> (<addr>)".
 * @kernel mm/gup.c:gup_vma_lookup (v6.5+, 8d7071af8907 "mm: always expand the stack with
 *   the mmap write lock held")
 * Return: the VMA or null.
 */
function gup_vma_lookup(mm: mm_struct, addr: number): vm_area_struct | null {
  const vma = find_vma(mm, addr);
  if (!vma || addr >= vma.vm_start) return vma;
  // Only warn for half-way relevant accesses.
  if (!(vma.vm_flags & VM_GROWSDOWN)) return null;
  if (vma.vm_start - addr > 65536) return null;
  // Let's not warn more than once an hour..
  const k = currentKernel();
  const now = k.jiffies;
  const next = (k.sub.gup_next_warn as number | undefined) ?? 0;
  if (next && now < next) return null;
  k.sub.gup_next_warn = now + 60 * 60 * (k.config.CONFIG_HZ as number);
  const cur = get_current();
  pr_warn(
    `GUP no longer grows the stack in ${cur.comm} (${cur.pid}): ${vma.vm_start.toString(16)}-${vma.vm_end.toString(16)} (${addr.toString(16)})`,
  );
  dump_stack();
  return null;
}

/**
 * find_extend_vma(mm, addr) as GUP used it before v6.5: the VMA containing addr, or a
 * stack VMA grown down to addr. Growing the stack is not modelled: reaching that case is
 * a model error rather than a silent difference.
 * @kernel mm/mmap.c:find_extend_vma (≤ v6.4)
 */
function find_extend_vma(mm: mm_struct, addr: number): vm_area_struct | null {
  const vma = find_vma(mm, addr);
  if (!vma) return null;
  if (vma.vm_start <= addr) return vma;
  if (vma.vm_flags & VM_GROWSDOWN) {
    throw new Error(
      `find_extend_vma: GUP at 0x${addr.toString(16)} below a VM_GROWSDOWN VMA would grow the stack (not modelled before v6.5)`,
    );
  }
  return null;
}

/**
 * __get_user_pages(mm, start, nr_pages, gup_flags, pages, locked): the slow-path loop.
 * For each page: at a VMA boundary look the VMA up (none ⇒ -EFAULT; FOLL_MADV_POPULATE,
 * v6.9+: none ⇒ -ENOMEM, check failure ⇒ -EINVAL) and check_vma_flags; a fatal signal
 * ⇒ -EINTR; follow_page_mask; NULL or -EMLINK ⇒ faultin_page and look again (0), stop
 * (-EBUSY/-EAGAIN as 0 pages more, -EFAULT, -ENOMEM, -EHWPOISON); -EEXIST ⇒ fails when
 * pages[] is wanted (v5.18+), else the page is skipped; other errors stop. A huge leaf
 * advances by the rest of its pages (page_mask), at once for pages[] too from v6.9
 * (earlier kernels took one page per iteration when filling pages[]).
 * @kernel mm/gup.c:__get_user_pages (all versions)
 * Locking: mmap_lock held (read or write); with an unlockable GUP it may be dropped
 *   (*locked = 0).
 * Return: the number of pages done if any, else the first error, or 0 (a retry dropped
 *   the lock) (R-GUP-3).
 */
export function* __get_user_pages(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  off: number,
  locked: int_ptr | null,
): Op<number> {
  let ret = 0;
  let i = 0;
  let vma: vm_area_struct | null = null;
  const ctx: follow_page_context = { page_mask: 0 };
  if (!nr_pages) return 0;
  const bad = (pages !== null) !== ((gup_flags & (FOLL_GET | FOLL_PIN)) !== 0);
  if (since(6, 5)) VM_WARN_ON_ONCE(bad);
  else VM_BUG_ON(bad, 'VM_BUG_ON(!!pages != !!(gup_flags & (FOLL_GET | FOLL_PIN)))');
  // If FOLL_FORCE is set then do not force a full fault as the hinting fault information
  // is unrelated to the reference behaviour of a task using the address space.
  if (!since(6, 2) && !(gup_flags & FOLL_FORCE)) gup_flags |= FOLL_NUMA;
  out: do {
    let fill = true;
    let p: follow_ret;
    // first iteration or cross vma bound
    if (!vma || start >= vma.vm_end) {
      if (since(6, 9) && gup_flags & FOLL_MADV_POPULATE) {
        // MADV_POPULATE_(READ|WRITE) wants to handle VMA lookups+error reporting
        // differently.
        vma = vma_lookup(mm, start);
        if (!vma) {
          ret = -ENOMEM;
          break out;
        }
        if (check_vma_flags(vma, gup_flags)) {
          ret = -EINVAL;
          break out;
        }
      } else {
        vma = since(6, 5) ? gup_vma_lookup(mm, start) : find_extend_vma(mm, start);
        // in_gate_area(): the model has no gate VMA (vsyscall page).
        if (!vma) {
          ret = -EFAULT;
          break out;
        }
        ret = check_vma_flags(vma, gup_flags);
        if (ret) break out;
      }
    }
    const foll: int_ptr = { value: gup_flags };
    let tries = 0;
    for (;;) {
      // retry:
      // If we have a pending SIGKILL, don't keep faulting pages and potentially allocating
      // memory.
      if (fatal_signal_pending(get_current())) {
        ret = -EINTR;
        break out;
      }
      p = yield* follow_page_mask(vma, start, foll.value, ctx);
      if (p === null || p === -EMLINK) {
        if (++tries > MAX_GUP_RETRIES) {
          throw new Error(
            `__get_user_pages: no progress at 0x${start.toString(16)} after ${MAX_GUP_RETRIES} faults (model limit; the kernel would loop)`,
          );
        }
        ret = yield* faultin_page(vma, start, foll, p === -EMLINK, locked);
        if (ret === 0) continue;
        if (ret === -EBUSY || ret === -EAGAIN) {
          ret = 0;
          break out;
        }
        if (ret === -EFAULT || ret === -ENOMEM || ret === -EHWPOISON) break out;
        if (!since(5, 18) && ret === -ENOENT) {
          fill = false;
          break;
        }
        BUG(`__get_user_pages: unexpected faultin_page() result ${ret}`);
      } else if (p === -EEXIST) {
        // Proper page table entry exists, but no corresponding struct page. If the caller
        // expects **pages to be filled in, bail out now (v5.18+).
        if (since(5, 18) && pages) {
          ret = -EEXIST;
          break out;
        }
        fill = false;
      } else if (IS_ERR(p)) {
        ret = p;
        break out;
      }
      break;
    }
    let page_increm: number;
    if (!since(6, 9)) {
      if (fill && pages) {
        pages[off + i] = p as page;
        ctx.page_mask = 0;
      }
      page_increm = 1 + (~Math.floor(start / PAGE_SIZE) & ctx.page_mask);
      if (page_increm > nr_pages) page_increm = nr_pages;
    } else {
      page_increm = 1 + (~Math.floor(start / PAGE_SIZE) & ctx.page_mask);
      if (page_increm > nr_pages) page_increm = nr_pages;
      if (fill && pages) {
        // A large folio (or part of it): do the refcount work for all the subpages too.
        if (page_increm > 1) {
          const f = page_folio(p as page);
          // Since we already hold refcount on the large folio, this should never fail.
          if (try_grab_folio(f, page_increm - 1, gup_flags)) {
            // Release the 1st page ref if the folio is problematic, fail hard.
            gup_put_folio(f, 1, gup_flags);
            ret = -EFAULT;
            break out;
          }
        }
        for (let j = 0; j < page_increm; j++) pages[off + i + j] = ((p as number) + j) as page;
      }
    }
    i += page_increm;
    start += page_increm * PAGE_SIZE;
    nr_pages -= page_increm;
  } while (nr_pages);
  return i ? i : ret;
}

/**
 * vma_permits_fault(vma, fault_flags): a write needs VM_WRITE, a read VM_READ (no
 * FOLL_FORCE here), and the arch must allow it.
 * @kernel mm/gup.c:vma_permits_fault (all versions)
 */
function vma_permits_fault(vma: vm_area_struct, fault_flags: number): boolean {
  const write = (fault_flags & FAULT_FLAG_WRITE) !== 0;
  const foreign = (fault_flags & FAULT_FLAG_REMOTE) !== 0;
  const vm_flags = write ? VM_WRITE : VM_READ;
  if (!(vm_flags & vma.vm_flags)) return false;
  return arch_vma_access_permitted(vma, write, false, foreign);
}

/**
 * fixup_user_fault(mm, address, fault_flags, unlocked): resolves a user fault for a
 * caller that failed an atomic user access (futex, KVM, VFIO's follow_fault_pfn) by
 * calling handle_mm_fault directly, which also invokes the VMA's ->fault on VM_PFNMAP
 * VMAs (R-GUP-9). With `unlocked`, the fault may retry (ALLOW_RETRY|KILLABLE).
 * @kernel mm/gup.c:fixup_user_fault (all versions; VM_FAULT_COMPLETED v5.19+,
 *   gup_vma_lookup v6.5+, find_extend_vma before)
 * Locking: mmap_lock held for read on entry and on return (retaken if a retry dropped
 *   it, and then *unlocked = true).
 * Return: 0, -EFAULT (no VMA, no permission, SIGBUS/SIGSEGV, hwpoison), -ENOMEM, -EINTR.
 */
export function* fixup_user_fault(
  mm: mm_struct,
  address: number,
  fault_flags: number,
  unlocked: bool_ptr | null,
): Op<number> {
  if (unlocked) fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
  for (let tries = 0; ; tries++) {
    const vma = since(6, 5) ? gup_vma_lookup(mm, address) : find_extend_vma(mm, address);
    if (!vma || address < vma.vm_start) return -EFAULT;
    if (!vma_permits_fault(vma, fault_flags)) return -EFAULT;
    if (fault_flags & FAULT_FLAG_KILLABLE && fatal_signal_pending(get_current())) return -EINTR;
    const ret = yield* handle_mm_fault(vma, address, fault_flags, null);
    if (since(5, 19) && ret & VM_FAULT_COMPLETED) {
      // Retake the lock to pair with the unlock() in the callers.
      yield* mmap_read_lock(mm);
      unlocked!.value = true;
      return 0;
    }
    if (ret & VM_FAULT_ERROR) {
      const err = vm_fault_to_errno(ret, 0);
      if (err) return err;
      BUG(`fixup_user_fault: handle_mm_fault returned 0x${ret.toString(16)} (no errno)`);
    }
    if (ret & VM_FAULT_RETRY) {
      if (tries > MAX_GUP_RETRIES) throw new Error('fixup_user_fault: endless VM_FAULT_RETRY');
      yield* mmap_read_lock(mm);
      unlocked!.value = true;
      fault_flags |= FAULT_FLAG_TRIED;
      continue;
    }
    return 0;
  }
}

/** gup_signal_pending(flags): fatal signals always; other signals with FOLL_INTERRUPTIBLE
 *  (v6.1+; the model has fatal signals only). */
function gup_signal_pending(_flags: number): boolean {
  return fatal_signal_pending(get_current());
}

/**
 * __get_user_pages_locked(mm, start, nr_pages, pages, locked, flags): __get_user_pages
 * with the VM_FAULT_RETRY protocol: when a fault dropped mmap_lock, retake it and redo
 * the faulting page with FOLL_TRIED, then continue. Sets MMF_HAS_PINNED for FOLL_PIN and
 * FOLL_GET when pages[] is wanted without FOLL_PIN.
 * - ≤ v6.2: `locked` NULL means no retry (the caller holds mmap_lock throughout).
 * - v6.3+ ("mm/gup: add FOLL_UNLOCKABLE", Jason Gunthorpe): *locked == 0 means take and drop
 *   mmap_lock here; retries only with FOLL_UNLOCKABLE.
 * - v6.7+ ("mm/gup: make failure to pin an error if FOLL_NOWAIT not specified", Lorenzo
 *   Stoakes): nr_pages 0 ⇒ 0 at once; pinning nothing without FOLL_NOWAIT is a WARN and
 *   -EFAULT.
 * @kernel mm/gup.c:__get_user_pages_locked (all versions)
 * Locking: as `locked` says; returns with mmap_lock held iff *locked is 1.
 * Return: pages done, or -errno.
 */
export function* __get_user_pages_locked(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  pages: page_array | null,
  off: number,
  locked: int_ptr | null,
  flags: number,
): Op<number> {
  let must_unlock = false;
  if (since(6, 7) && !nr_pages) return 0;
  if (since(6, 3)) {
    // The internal caller expects GUP to manage the lock internally and the lock must be
    // released when this returns.
    if (!locked!.value) {
      yield* mmap_read_lock(mm);
      must_unlock = true;
      locked!.value = 1;
    } else {
      mmap_assert_locked(mm);
    }
  } else if (locked) {
    // check caller initialized locked
    VM_BUG_ON(locked.value !== 1, 'BUG_ON(*locked != 1)');
  }
  if (flags & FOLL_PIN) mm_set_has_pinned_flag(mm);
  // Traditional behavior is to set FOLL_GET if the caller wants pages[] filled in, but
  // only for FOLL_GET, not for the newer FOLL_PIN.
  if (pages && !(flags & FOLL_PIN)) flags |= FOLL_GET;
  let pages_done = 0;
  let ret: number;
  for (;;) {
    ret = yield* __get_user_pages(mm, start, nr_pages, flags, pages, off, locked);
    const unlockable = since(6, 3) ? (flags & FOLL_UNLOCKABLE) !== 0 : locked !== null;
    if (!unlockable) {
      // VM_FAULT_RETRY couldn't trigger, bypass.
      pages_done = ret;
      break;
    }
    // VM_FAULT_RETRY or VM_FAULT_COMPLETED cannot return errors.
    if (!locked!.value) {
      if (since(6, 5)) VM_WARN_ON_ONCE(ret < 0 || ret >= nr_pages);
      else VM_BUG_ON(ret < 0 || ret >= nr_pages, 'BUG_ON(ret < 0 || ret >= nr_pages)');
    }
    if (ret > 0) {
      nr_pages -= ret;
      pages_done += ret;
      if (!nr_pages) break;
    }
    if (locked!.value) {
      // VM_FAULT_RETRY didn't trigger or it was a FOLL_NOWAIT.
      if (!pages_done) pages_done = ret;
      break;
    }
    // VM_FAULT_RETRY triggered, so seek to the faulting offset.
    if (pages) off += ret;
    start += ret * PAGE_SIZE;
    // The lock was temporarily dropped, so we must unlock later.
    must_unlock = true;
    let stop = false;
    for (let tries = 0; ; tries++) {
      // retry: Repeat on the address that fired VM_FAULT_RETRY with both
      // FAULT_FLAG_ALLOW_RETRY and FAULT_FLAG_TRIED.
      if (gup_signal_pending(flags)) {
        if (!pages_done) pages_done = -EINTR;
        stop = true;
        break;
      }
      yield* mmap_read_lock(mm);
      locked!.value = 1;
      ret = yield* __get_user_pages(mm, start, 1, flags | FOLL_TRIED, pages, off, locked);
      if (!locked!.value) {
        // Continue to retry until we succeeded.
        if (tries > MAX_GUP_RETRIES) throw new Error('__get_user_pages_locked: endless retry');
        continue;
      }
      break;
    }
    if (stop) break;
    if (ret !== 1) {
      if (!pages_done) pages_done = ret;
      break;
    }
    nr_pages--;
    pages_done++;
    if (!nr_pages) break;
    if (pages) off++;
    start += PAGE_SIZE;
  }
  if (must_unlock && locked!.value) {
    // We either temporarily dropped the lock, or the caller requested that we both acquire
    // and drop the lock. Either way, we must now unlock, and notify the caller.
    yield* mmap_read_unlock(mm);
    locked!.value = 0;
  }
  // Failing to pin anything implies something has gone wrong (except with FOLL_NOWAIT).
  if (since(6, 7) && WARN_ON_ONCE(pages_done === 0 && !(flags & FOLL_NOWAIT))) return -EFAULT;
  return pages_done;
}

/* ------------------------------------------------------------------------------------ */
/* Population: mlock / MAP_POPULATE / MADV_POPULATE_*                                    */
/* ------------------------------------------------------------------------------------ */

/**
 * populate_vma_page_range(vma, start, end, locked): faults in [start, end) of one VMA
 * without taking references (mlock, MAP_POPULATE): writable private mappings with write
 * faults (breaking COW), the rest with forced reads.
 * - ≤ v5.17: FOLL_TOUCH|FOLL_POPULATE|FOLL_MLOCK (VM_LOCKONFAULT drops FOLL_POPULATE, so
 *   only present pages are visited), FOLL_FORCE if the VMA is accessible.
 * - v5.18–v6.4 (b67bf49ce7aa): VM_LOCKONFAULT ⇒ nr_pages at once; FOLL_TOUCH, FOLL_WRITE
 *   for writable private, FOLL_FORCE if accessible (a PROT_NONE VMA then fails
 *   check_vma_flags with -EFAULT).
 * - later (present in v6.18; the release is not pinned, the model uses v6.5): an
 *   inaccessible VMA ⇒ -EFAULT at once; FOLL_FORCE only when not writing. The result is
 *   the same in the model.
 * - v6.3+: FOLL_UNLOCKABLE when `locked` is given.
 * @kernel mm/gup.c:populate_vma_page_range (all versions)
 * Locking: mmap_lock held; with `locked` it may be dropped (*locked = 0).
 * Return: pages processed (from start), or -errno.
 */
export function* populate_vma_page_range(
  vma: vm_area_struct,
  start: number,
  end: number,
  locked: int_ptr | null,
): Op<number> {
  const mm = vma.vm_mm;
  const nr_pages = (end - start) / PAGE_SIZE;
  const misaligned = start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0;
  const outside = start < vma.vm_start || end > vma.vm_end;
  if (since(6, 5)) {
    VM_WARN_ON_ONCE(misaligned);
    VM_WARN_ON_ONCE(outside);
  } else {
    VM_BUG_ON(misaligned, 'VM_BUG_ON(!PAGE_ALIGNED(start) || !PAGE_ALIGNED(end))');
    VM_BUG_ON(outside, 'VM_BUG_ON_VMA(start < vma->vm_start || end > vma->vm_end, vma)');
  }
  mmap_assert_locked(mm);
  let gup_flags: number;
  if (!since(5, 18)) {
    gup_flags = FOLL_TOUCH | FOLL_POPULATE | FOLL_MLOCK;
    if (vma.vm_flags & VM_LOCKONFAULT) gup_flags &= ~FOLL_POPULATE;
    // We want to touch writable mappings with a write fault in order to break COW, except
    // for shared mappings because these don't COW.
    if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
    // We want mlock to succeed for regions that have any permissions other than PROT_NONE.
    if (vma_is_accessible(vma)) gup_flags |= FOLL_FORCE;
    return yield* __get_user_pages(mm, start, nr_pages, gup_flags, null, 0, locked);
  }
  // Rightly or wrongly, the VM_LOCKONFAULT case has never used faultin_page() to break
  // COW, so it has no work to do here.
  if (vma.vm_flags & VM_LOCKONFAULT) return nr_pages;
  gup_flags = FOLL_TOUCH;
  if (since(6, 5)) {
    // ... similarly, we've never faulted in PROT_NONE pages.
    if (!vma_is_accessible(vma)) return -EFAULT;
    if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
    else gup_flags |= FOLL_FORCE;
  } else {
    if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
    if (vma_is_accessible(vma)) gup_flags |= FOLL_FORCE;
  }
  if (since(6, 3) && locked) gup_flags |= FOLL_UNLOCKABLE;
  // We made sure addr is within a VMA, so the following will not result in a stack
  // expansion that recurses back here.
  const l = since(6, 3) ? (locked ?? { value: 1 }) : locked;
  return yield* __get_user_pages(mm, start, nr_pages, gup_flags, null, 0, l);
}

/**
 * faultin_vma_page_range(vma, start, end, write, locked): MADV_POPULATE_(READ|WRITE) for
 * the part of the range inside one VMA: FOLL_TOUCH|FOLL_HWPOISON (+FOLL_WRITE), no
 * FOLL_FORCE; any check_vma_flags failure is reported as -EINVAL.
 * @kernel mm/gup.c:faultin_vma_page_range (v5.14–v6.8, 4ca9b3859dac "mm/madvise:
 *   introduce MADV_POPULATE_(READ|WRITE) to prefault page tables")
 * Locking: mmap_lock held for read; may be dropped (*locked = 0).
 * Return: pages processed, or -errno.
 */
export function* faultin_vma_page_range(
  vma: vm_area_struct,
  start: number,
  end: number,
  write: boolean,
  locked: int_ptr,
): Op<number> {
  requireVersion('faultin_vma_page_range', 5, 14, 'added with MADV_POPULATE_(READ|WRITE)');
  if (since(6, 9))
    throw new Error('faultin_vma_page_range was replaced by faultin_page_range in v6.9');
  const mm = vma.vm_mm;
  const nr_pages = (end - start) / PAGE_SIZE;
  mmap_assert_locked(mm);
  // FOLL_TOUCH: mark page accessed; FOLL_HWPOISON: -EHWPOISON instead of -EFAULT;
  // FOLL_POPULATE (≤ v5.17): always populate memory with VM_LOCKONFAULT; !FOLL_FORCE:
  // require proper access permissions.
  let gup_flags = FOLL_TOUCH | FOLL_HWPOISON;
  if (!since(5, 18)) gup_flags |= FOLL_POPULATE | FOLL_MLOCK;
  if (since(6, 3)) gup_flags |= FOLL_UNLOCKABLE;
  if (write) gup_flags |= FOLL_WRITE;
  // We want to report -EINVAL instead of -EFAULT for any permission problems or
  // incompatible mappings.
  if (check_vma_flags(vma, gup_flags)) return -EINVAL;
  return yield* __get_user_pages(mm, start, nr_pages, gup_flags, null, 0, locked);
}

/**
 * faultin_page_range(mm, start, end, write, locked): MADV_POPULATE_(READ|WRITE) over a
 * range of VMAs: FOLL_TOUCH|FOLL_HWPOISON|FOLL_UNLOCKABLE|FOLL_MADV_POPULATE
 * (+FOLL_WRITE) through __get_user_pages_locked, so a missing VMA is -ENOMEM and a VMA
 * that fails check_vma_flags is -EINVAL (R-GUP-2, O-2, O-4).
 * @kernel mm/gup.c:faultin_page_range (v6.9+, 631426ba1d45 "mm/madvise: make
 *   MADV_POPULATE_(READ|WRITE) handle VM_FAULT_RETRY properly")
 * Locking: mmap_lock held for read; may be dropped (*locked = 0).
 * Return: pages processed, or -errno.
 */
export function* faultin_page_range(
  mm: mm_struct,
  start: number,
  end: number,
  write: boolean,
  locked: int_ptr,
): Op<number> {
  requireVersion('faultin_page_range', 6, 9, 'it replaced faultin_vma_page_range');
  const nr_pages = (end - start) / PAGE_SIZE;
  VM_WARN_ON_ONCE(start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0);
  mmap_assert_locked(mm);
  let gup_flags = FOLL_TOUCH | FOLL_HWPOISON | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;
  if (write) gup_flags |= FOLL_WRITE;
  return yield* __get_user_pages_locked(mm, start, nr_pages, null, 0, locked, gup_flags);
}

/**
 * __mm_populate(start, len, ignore_errors): faults in [start, start+len) of current's mm
 * VMA by VMA for mlock() and MAP_POPULATE/MAP_LOCKED; VM_IO|VM_PFNMAP VMAs are skipped
 * silently (R-VMA-2, O-2). An error stops the walk unless ignore_errors (then the next
 * VMA is tried).
 * @kernel mm/gup.c:__mm_populate (all versions; find_vma_intersection v6.1+, vm_next
 *   before, the same walk)
 * Locking: called without mmap_lock; takes it for read (it may be dropped and retaken
 *   by faults that retry).
 * Return: 0 or the first -errno (populate_vma_page_range's).
 */
export function* __mm_populate(start: number, len: number, ignore_errors: boolean): Op<number> {
  const mm = get_current().mm!;
  const end = start + len;
  let vma: vm_area_struct | null = null;
  const locked: int_ptr = { value: 0 };
  let ret = 0;
  let nend: number;
  for (let nstart = start; nstart < end; nstart = nend) {
    // We want to fault in pages for [nstart; end) address range. Find first corresponding
    // VMA.
    if (!locked.value) {
      locked.value = 1;
      yield* mmap_read_lock(mm);
      vma = find_vma_intersection(mm, nstart, end);
    } else if (nstart >= vma!.vm_end) {
      vma = find_vma_intersection(mm, vma!.vm_end, end);
    }
    if (!vma) break;
    // Set [nstart; nend) to intersection of desired address range with the first VMA.
    // Also, skip undesirable VMA types.
    nend = Math.min(end, vma.vm_end);
    if (vma.vm_flags & (VM_IO | VM_PFNMAP)) continue;
    if (nstart < vma.vm_start) nstart = vma.vm_start;
    // Now fault in a range of pages. populate_vma_page_range() double checks the vma
    // flags, so that it won't mlock pages if the vma was already munlocked.
    ret = yield* populate_vma_page_range(vma, nstart, nend, locked);
    if (ret < 0) {
      if (ignore_errors) {
        ret = 0;
        continue; // continue at next VMA
      }
      break;
    }
    nend = nstart + ret * PAGE_SIZE;
    ret = 0;
  }
  if (locked.value) yield* mmap_read_unlock(mm);
  return ret; // 0 or negative error code
}

/**
 * mm_populate(addr, len): __mm_populate ignoring errors (MAP_POPULATE, MAP_LOCKED,
 * mremap of a locked VMA).
 * @kernel include/linux/mm.h:mm_populate (all versions)
 */
export function* mm_populate(addr: number, len: number): Op<void> {
  yield* __mm_populate(addr, len, true);
}

/* ------------------------------------------------------------------------------------ */
/* FOLL_LONGTERM: keep long-term pins out of CMA, ZONE_MOVABLE and isolated pageblocks   */
/* ------------------------------------------------------------------------------------ */

/** The target of a long-term-pin migration: GFP_USER (not movable, so neither CMA nor
 *  ZONE_MOVABLE) without warnings. */
function longterm_mtc(): migration_target_control {
  return { nid: -1, gfp_mask: GFP_USER | __GFP_NOWARN, reason: MR_LONGTERM_PIN };
}

/**
 * migrate_device_coherent_folio(folio): moves a device-coherent folio to system RAM. The
 * kernel uses the migrate_vma/migrate_device machinery; the model migrates it with
 * migrate_pages, with the reference the caller converted from its pin serving as the
 * isolation reference.
 * @kernel mm/migrate_device.c:migrate_device_coherent_folio (v6.0+,
 *   migrate_device_coherent_page before v6.12)
 * Return: 0, or -EBUSY when the folio could not be migrated.
 */
function* migrate_device_coherent_folio(f: folio): Op<number> {
  if (!folio_isolate_lru(f)) {
    folio_put_refs(f, 1);
    return -EBUSY;
  }
  folio_put_refs(f, 1);
  const list = [f];
  const mtc = longterm_mtc();
  const rc = yield* migrate_pages(
    list,
    alloc_migration_target,
    null,
    mtc,
    MIGRATE_SYNC,
    MR_LONGTERM_PIN,
  );
  if (rc) {
    yield* putback_movable_pages(list);
    return -EBUSY;
  }
  return 0;
}

/**
 * collect_longterm_unpinnable_folios(list, pages): counts the folios of pages[] that
 * folio_is_longterm_pinnable() refuses, and isolates each movable one from the LRU onto
 * the migration list (device-coherent folios are counted only; a folio that cannot be
 * isolated is counted and left where it is, so the caller retries).
 * @kernel mm/gup.c:collect_longterm_unpinnable_folios (v6.2+; collect_longterm_unpinnable_pages
 *   v6.2–v6.10; the loop of check_and_migrate_movable_pages v5.13–v6.1)
 * Locking: none beyond the pins held on pages[]; one step per folio in a CMA area (the
 *   migratetype read, the isolation and its reference: contig_ref_step).
 * Return: the number of folios collected (>= 0). `busy` (model) gets the movable folios
 *   that could not be isolated: someone else (alloc_contig_range) has them.
 * Left out: hugetlb folios (isolate_hugetlb), lru_add_drain_all.
 */
function* collect_longterm_unpinnable_folios(
  list: folio[],
  pages: page_array,
  off: number,
  nr_pages: number,
  busy: folio[],
): Op<number> {
  let collected = 0;
  let prev: folio | null = null;
  for (let i = 0; i < nr_pages; i++) {
    const f = page_folio(pages[off + i]!);
    if (f === prev) continue;
    prev = f;
    yield* contig_ref_step(f, 'folio_isolate_lru', 'isolate');
    if (folio_is_longterm_pinnable(f)) continue;
    collected++;
    if (folio_is_device_coherent(f)) continue;
    if (!folio_isolate_lru(f)) {
      busy.push(f);
      continue;
    }
    list.push(f);
  }
  return collected;
}

/**
 * Model: the retry of a long-term pin whose folios someone else has isolated. The kernel
 * unpins, returns -EAGAIN and pins again at once, spinning until the isolator (a
 * concurrent alloc_contig_range) has migrated the folio or put it back; each round in
 * between changes nothing. The spin is modelled as a wait for that: a blocking step on
 * the folio's reference object, enabled once the folio is no longer isolated (the
 * isolator's putback and migrate_folio_done are steps on that object), so a paused
 * isolator is not a livelock.
 */
function* wait_longterm_isolated(busy: readonly folio[]): Op<void> {
  for (const f of busy) {
    if (!folioIsolated(f)) continue;
    yield {
      obj: folio_ref_obj(f),
      kind: 'read',
      what: '__gup_longterm_locked: retry until the isolator lets the folio go',
      enabled: () => !folioIsolated(f),
    };
  }
}

/**
 * migrate_longterm_unpinnable_folios(list, pages): unpins every page (a device-coherent
 * folio's pin is first turned into a plain reference and the folio migrated at once,
 * failure ⇒ -EBUSY), then migrates the list with MR_LONGTERM_PIN to GFP_USER memory.
 * @kernel mm/gup.c:migrate_longterm_unpinnable_folios (v6.2+, "mm/gup.c: refactor
 *   check_and_migrate_movable_pages()"; _pages before v6.11)
 * Locking: none beyond the pins.
 * Return: -EAGAIN when everything was migrated (the caller pins again), -ENOMEM when a
 *   folio could not be migrated, -EBUSY for a device-coherent failure; on error nothing
 *   is left pinned and the list is put back.
 */
function* migrate_longterm_unpinnable_folios(
  list: folio[],
  pages: page_array,
  off: number,
  nr_pages: number,
): Op<number> {
  let ret: number;
  err: {
    for (let i = 0; i < nr_pages; i++) {
      const f = page_folio(pages[off + i]!);
      if (folio_is_device_coherent(f)) {
        // Migration will fail if the folio is pinned, so convert the pin on the source
        // folio to a normal reference.
        pages[off + i] = null;
        folio_get(f);
        gup_put_folio(f, 1, FOLL_PIN);
        if (yield* migrate_device_coherent_folio(f)) {
          ret = -EBUSY;
          break err;
        }
        continue;
      }
      // We can't migrate folios with unexpected references, so drop the reference
      // obtained by __get_user_pages_locked(). Migrating folios hold the isolation
      // reference, so they won't be freed.
      yield* contig_ref_step(f, 'unpin_user_page', 'put');
      gup_put_folio(f, 1, FOLL_PIN);
      pages[off + i] = null;
    }
    if (list.length) {
      const mtc = longterm_mtc();
      if (
        yield* migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_LONGTERM_PIN)
      ) {
        ret = -ENOMEM;
        break err;
      }
    }
    yield* putback_movable_pages(list);
    return -EAGAIN;
  }
  for (let i = 0; i < nr_pages; i++) {
    const q = pages[off + i];
    if (q === null || q === undefined) continue;
    yield* contig_ref_step(page_folio(q), 'unpin_user_page', 'put');
    unpin_user_page(q);
  }
  yield* putback_movable_pages(list);
  return ret;
}

/**
 * check_and_migrate_movable_pages(nr_pages, pages): are all the pinned pages allowed to
 * stay pinned for the long term? (R-GUP-8)
 * - v6.2+: 0 if all are; else everything is unpinned (the entries cleared) and the
 *   offenders migrated: -EAGAIN (pin again) or an error with nothing pinned (-ENOMEM;
 *   -EBUSY for device-coherent memory).
 * - v5.13–v6.1: the same decisions, returning nr_pages for "all fine" and 0 for "pin
 *   again" (f68749ec342b "mm/gup: return an error on migration failure"); see
 *   check_and_migrate_movable_pages_old.
 * @kernel mm/gup.c:check_and_migrate_movable_pages (v5.13+)
 * Return: see above.
 */
function* check_and_migrate_movable_pages(
  nr_pages: number,
  pages: page_array,
  off: number,
): Op<number> {
  const list: folio[] = [];
  const busy: folio[] = [];
  const collected = yield* collect_longterm_unpinnable_folios(list, pages, off, nr_pages, busy);
  if (!collected) return 0;
  const rc = yield* migrate_longterm_unpinnable_folios(list, pages, off, nr_pages);
  if (rc === -EAGAIN) yield* wait_longterm_isolated(busy);
  return rc;
}

/**
 * check_and_migrate_movable_pages (v5.13–v6.1 form): folios that may not be long-term
 * pinned are isolated (an isolation failure is counted); a device-coherent folio (v6.0+,
 * "mm/gup: migrate device coherent pages when pinning instead of failing") has its pin
 * turned into a reference, its entry cleared, and is migrated at once (failure: the
 * error, -EBUSY, after unpinning the rest). If anything was found, every remaining page
 * is unpinned (or put, for FOLL_GET) — the entries keep their stale values — and the
 * isolated folios are migrated with MR_LONGTERM_PIN.
 * @kernel mm/gup.c:check_and_migrate_movable_pages (v5.13–v6.1, d1e153fea2a8 and
 *   f68749ec342b; rewritten in v6.2)
 * Return: nr_pages when all may stay pinned; 0 to pin again; -ENOMEM on migration failure,
 *   -EBUSY for a device-coherent failure (nothing left pinned).
 */
function* check_and_migrate_movable_pages_old(
  nr_pages: number,
  pages: page_array,
  off: number,
  gup_flags: number,
): Op<number> {
  let isolation_error_count = 0;
  let coherent_pages = false;
  const list: folio[] = [];
  const busy: folio[] = [];
  let prev: folio | null = null;
  let ret = 0;
  unpin: {
    for (let i = 0; i < nr_pages; i++) {
      const head = page_folio(pages[off + i]!);
      if (head === prev) continue;
      prev = head;
      // Device coherent pages are managed by a driver and should not be pinned
      // indefinitely: try to migrate the page out of device memory.
      if (folio_is_device_coherent(head)) {
        // We always want a new GUP lookup with device coherent pages.
        pages[off + i] = null;
        coherent_pages = true;
        // Migration will fail if the page is pinned, so convert the pin on the source page
        // to a normal reference.
        if (gup_flags & FOLL_PIN) {
          folio_get(head);
          gup_put_folio(head, 1, FOLL_PIN);
        }
        ret = yield* migrate_device_coherent_folio(head);
        if (ret) break unpin;
        continue;
      }
      yield* contig_ref_step(head, 'isolate_lru_page', 'isolate');
      if (folio_is_longterm_pinnable(head)) continue;
      // Try to move out any movable page before pinning the range.
      if (!folio_isolate_lru(head)) {
        isolation_error_count++;
        busy.push(head);
        continue;
      }
      list.push(head);
    }
    // If list is empty, and no isolation errors, means that all pages are in the correct
    // zone.
    if (!list.length && !isolation_error_count && !coherent_pages) return nr_pages;
  }
  // unpin_pages: pages[i] might be NULL if any device coherent pages were found.
  for (let i = 0; i < nr_pages; i++) {
    const q = pages[off + i];
    if (q === null || q === undefined) continue;
    yield* contig_ref_step(
      page_folio(q),
      gup_flags & FOLL_PIN ? 'unpin_user_page' : 'put_page',
      'put',
    );
    if (gup_flags & FOLL_PIN) unpin_user_page(q);
    else folio_put_refs(page_folio(q), 1);
  }
  if (list.length) {
    ret = yield* migrate_pages(
      list,
      alloc_migration_target,
      null,
      longterm_mtc(),
      MIGRATE_SYNC,
      MR_LONGTERM_PIN,
    );
    // number of pages not migrated
    if (ret > 0) ret = -ENOMEM;
  }
  if (ret && list.length) yield* putback_movable_pages(list);
  if (!ret) yield* wait_longterm_isolated(busy);
  return ret;
}

/**
 * check_and_migrate_cma_pages(mm, start, nr_pages, pages, gup_flags) (v5.7–v5.12): pages
 * in MIGRATE_CMA pageblocks are isolated; if any, all pages are unpinned, the CMA ones
 * migrated (MR_CONTIG_RANGE), and the range pinned again and re-checked. If migration
 * fails, the range is pinned again without migrating: the long-term pin then sits in
 * the CMA area (the behaviour f68749ec342b later changed to -ENOMEM).
 * Model: the kernel allocated the targets with GFP_USER|__GFP_MOVABLE under
 * memalloc_nocma_save() (movable, but not CMA); the model has no PF_MEMALLOC_NOCMA and
 * allocates them with GFP_USER, which also keeps them out of CMA (and of ZONE_MOVABLE).
 * @kernel mm/gup.c:check_and_migrate_cma_pages (v5.7–v5.12)
 * Locking: mmap_lock held (read).
 * Return: the number of pages pinned, or -errno from the re-pin.
 */
function* check_and_migrate_cma_pages(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  pages: page_array,
  off: number,
  gup_flags: number,
): Op<number> {
  let migrate_allow = true;
  let ret = nr_pages;
  for (;;) {
    // check_again:
    const list: folio[] = [];
    for (let i = 0; i < nr_pages;) {
      const q = pages[off + i]!;
      const head = page_folio(q);
      // gup may start from a tail page. Advance step by the left part.
      const step = folio_nr_pages(head) - (q - head);
      yield* contig_ref_step(head, 'isolate_lru_page', 'isolate');
      if (!folio_is_longterm_pinnable(head)) {
        if (folio_isolate_lru(head)) list.push(head);
      }
      i += step;
    }
    if (!list.length) return ret;
    // drop the above get_user_pages reference.
    for (let i = 0; i < nr_pages; i++) {
      yield* contig_ref_step(page_folio(pages[off + i]!), 'put_page', 'put');
    }
    if (gup_flags & FOLL_PIN) unpin_user_pages(pages.slice(off, off + nr_pages), nr_pages);
    else for (let i = 0; i < nr_pages; i++) folio_put_refs(page_folio(pages[off + i]!), 1);
    const mtc: migration_target_control = {
      nid: -1,
      gfp_mask: GFP_USER | __GFP_NOWARN,
      reason: MR_CONTIG_RANGE,
    };
    if (
      yield* migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_CONTIG_RANGE)
    ) {
      // some of the pages failed migration. Do get_user_pages without migration.
      migrate_allow = false;
      if (list.length) yield* putback_movable_pages(list);
    }
    // We did migrate all the pages, Try to get the page references again migrating any
    // new CMA pages which we failed to isolate earlier.
    ret = yield* __get_user_pages_locked(mm, start, nr_pages, pages, off, null, gup_flags);
    if (ret > 0 && migrate_allow) {
      nr_pages = ret;
      continue;
    }
    return ret;
  }
}

/**
 * __gup_longterm_locked(mm, start, nr_pages, pages, locked, gup_flags):
 * __get_user_pages_locked, plus the FOLL_LONGTERM rule: pin, check, and while the check
 * migrated something, pin again (R-GUP-8). Without FOLL_LONGTERM, just
 * __get_user_pages_locked.
 * - v5.7–v5.12: FOLL_LONGTERM needs pages[] (-EINVAL); check_and_migrate_cma_pages.
 * - v5.13–v6.1: loop while the check returns 0; its result is returned.
 * - v6.2+ ("mm/gup.c: refactor check_and_migrate_movable_pages()"): loop while -EAGAIN; an
 *   error is returned (nothing pinned), else the count.
 * @kernel mm/gup.c:__gup_longterm_locked (all versions)
 * Locking: as __get_user_pages_locked (`locked` ignored before v6.3: the caller holds
 *   mmap_lock throughout).
 * Return: pages pinned, or -errno.
 */
export function* __gup_longterm_locked(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  pages: page_array | null,
  off: number,
  locked: int_ptr | null,
  gup_flags: number,
): Op<number> {
  const l = since(6, 3) ? locked : null;
  if (!(gup_flags & FOLL_LONGTERM))
    return yield* __get_user_pages_locked(mm, start, nr_pages, pages, off, l, gup_flags);
  return yield* gup_longterm_inflight(
    longterm_pin_loop(mm, start, nr_pages, pages, off, l, gup_flags),
  );
}

/** Model: the FOLL_LONGTERM body of __gup_longterm_locked (its pins are in flight meanwhile). */
function* longterm_pin_loop(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  pages: page_array | null,
  off: number,
  l: int_ptr | null,
  gup_flags: number,
): Op<number> {
  if (!since(5, 13)) {
    if (!pages) return -EINVAL;
    const rc = yield* __get_user_pages_locked(mm, start, nr_pages, pages, off, null, gup_flags);
    if (rc < 0) return rc;
    // check_dax_vmas(): no fsdax VMAs in the model.
    return yield* check_and_migrate_cma_pages(mm, start, rc, pages, off, gup_flags);
  }
  if (!since(6, 2)) {
    let rc: number;
    let tries = 0;
    do {
      rc = yield* __get_user_pages_locked(mm, start, nr_pages, pages, off, null, gup_flags);
      if (rc <= 0) break;
      rc = yield* check_and_migrate_movable_pages_old(rc, pages!, off, gup_flags);
      if (++tries > MAX_GUP_RETRIES)
        throw new Error('__gup_longterm_locked: endless migration retry');
    } while (!rc);
    return rc;
  }
  let rc: number;
  let nr_pinned_pages: number;
  let tries = 0;
  do {
    nr_pinned_pages = yield* __get_user_pages_locked(mm, start, nr_pages, pages, off, l, gup_flags);
    if (nr_pinned_pages <= 0) {
      rc = nr_pinned_pages;
      break;
    }
    // FOLL_LONGTERM implies FOLL_PIN.
    rc = yield* check_and_migrate_movable_pages(nr_pinned_pages, pages!, off);
    if (++tries > MAX_GUP_RETRIES)
      throw new Error('__gup_longterm_locked: endless migration retry');
  } while (rc === -EAGAIN);
  return rc ? rc : nr_pinned_pages;
}

/* ------------------------------------------------------------------------------------ */
/* The exported interface: argument checks and entry points                              */
/* ------------------------------------------------------------------------------------ */

/**
 * is_valid_gup_args(pages, locked, gup_flags, to_set): checks the flags a caller passed
 * to an exported GUP function and adds the ones the function implies (R-GUP-1). Each
 * failure WARNs once (per check) and the caller returns -EINVAL (get_*) or 0 (pin_*):
 * internal flags from the caller (v6.3–v6.6: FOLL_PIN|FOLL_TRIED|FOLL_UNLOCKABLE|
 * FOLL_REMOTE|FOLL_FAST_ONLY; v6.7+: INTERNAL_GUP_FLAGS, which adds FOLL_TOUCH and
 * v6.9's FOLL_MADV_POPULATE); *locked != 1; FOLL_GET with FOLL_PIN; FOLL_LONGTERM
 * without FOLL_PIN; GET/PIN without pages[]; FOLL_LONGTERM with FOLL_PCI_P2PDMA. A
 * `locked` argument adds FOLL_UNLOCKABLE.
 * @kernel mm/gup.c:is_valid_gup_args (v6.3+, "mm/gup: simplify the external interface
 *   functions and consolidate invariants", Jason Gunthorpe)
 * Return: the flags to use, or null when invalid.
 */
export function is_valid_gup_args(
  pages: page_array | null,
  locked: int_ptr | null,
  gup_flags: number,
  to_set: number,
): number | null {
  const internal = since(6, 7)
    ? INTERNAL_GUP_FLAGS()
    : FOLL_PIN | FOLL_TRIED | FOLL_UNLOCKABLE | FOLL_REMOTE | FOLL_FAST_ONLY;
  if (WARN_ON_ONCE((gup_flags & internal) !== 0, 'is_valid_gup_args:internal')) return null;
  gup_flags |= to_set;
  if (locked) {
    // At the external interface locked must be set.
    if (WARN_ON_ONCE(locked.value !== 1, 'is_valid_gup_args:locked')) return null;
    gup_flags |= FOLL_UNLOCKABLE;
  }
  // FOLL_GET and FOLL_PIN are mutually exclusive.
  if (
    WARN_ON_ONCE(
      (gup_flags & (FOLL_PIN | FOLL_GET)) === (FOLL_PIN | FOLL_GET),
      'is_valid_gup_args:get_pin',
    )
  )
    return null;
  // LONGTERM can only be specified when pinning.
  if (
    WARN_ON_ONCE(
      !(gup_flags & FOLL_PIN) && (gup_flags & FOLL_LONGTERM) !== 0,
      'is_valid_gup_args:longterm',
    )
  )
    return null;
  // Pages input must be given if using GET/PIN.
  if (WARN_ON_ONCE((gup_flags & (FOLL_GET | FOLL_PIN)) !== 0 && !pages, 'is_valid_gup_args:pages'))
    return null;
  // We want to allow the pgmap to be hot-unplugged at all times.
  if (
    WARN_ON_ONCE(
      (gup_flags & FOLL_LONGTERM) !== 0 && (gup_flags & FOLL_PCI_P2PDMA) !== 0,
      'is_valid_gup_args:p2pdma',
    )
  )
    return null;
  return gup_flags;
}

/**
 * is_valid_gup_flags(gup_flags) (≤ v6.2): FOLL_PIN is only set by the pin_user_pages*()
 * functions and FOLL_LONGTERM needs FOLL_PIN: either from a get_user_pages*() caller
 * WARNs once and is refused.
 * @kernel mm/gup.c:is_valid_gup_flags (v5.7–v6.2)
 */
function is_valid_gup_flags(gup_flags: number): boolean {
  if (WARN_ON_ONCE((gup_flags & FOLL_PIN) !== 0, 'is_valid_gup_flags:pin')) return false;
  if (WARN_ON_ONCE((gup_flags & FOLL_LONGTERM) !== 0, 'is_valid_gup_flags:longterm')) return false;
  return true;
}

/** The pre-v6.3 checks of the pin_user_pages*() functions. */
function pin_args_ok(gup_flags: number, pages: page_array | null, fn: string): boolean {
  // FOLL_GET and FOLL_PIN are mutually exclusive.
  if (WARN_ON_ONCE((gup_flags & FOLL_GET) !== 0, `${fn}:get`)) return false;
  // FOLL_PIN requires pages != NULL (between v5.15 and v6.1, David Hildenbrand; hash not
  // pinned here).
  if (since(6, 1) && WARN_ON_ONCE(!pages, `${fn}:pages`)) return false;
  return true;
}

/**
 * __get_user_pages_remote (≤ v6.2): FOLL_LONGTERM cannot be combined with `locked`
 * (WARN, -EINVAL) and goes through __gup_longterm_locked; the rest through
 * __get_user_pages_locked, with FOLL_TOUCH|FOLL_REMOTE.
 */
function* __get_user_pages_remote(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  locked: int_ptr | null,
): Op<number> {
  if (gup_flags & FOLL_LONGTERM) {
    if (WARN_ON_ONCE(locked !== null, '__get_user_pages_remote:locked')) return -EINVAL;
    return yield* __gup_longterm_locked(
      mm,
      start,
      nr_pages,
      pages,
      0,
      null,
      gup_flags | FOLL_TOUCH | FOLL_REMOTE,
    );
  }
  return yield* __get_user_pages_locked(
    mm,
    start,
    nr_pages,
    pages,
    0,
    locked,
    gup_flags | FOLL_TOUCH | FOLL_REMOTE,
  );
}

/**
 * get_user_pages_remote(mm, start, nr_pages, gup_flags, pages, locked): takes a
 * reference (FOLL_GET when pages[] is given) on the pages of another mm, with
 * FOLL_TOUCH|FOLL_REMOTE, faulting them in as needed (R-GUP-1, R-GUP-3). Used by
 * /proc/<pid>/mem (access_remote_vm, FOLL_FORCE).
 * @kernel mm/gup.c:get_user_pages_remote (all versions; vmas argument ≤ v6.4 not modelled)
 * Locking: mmap_lock of mm held for read (or write) by the caller; with `locked` it may be
 *   dropped (then *locked = 0).
 * Return: pages done (> 0), or -errno; -EINVAL for invalid arguments.
 */
export function* get_user_pages_remote(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  locked: int_ptr | null,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, locked, gup_flags, FOLL_TOUCH | FOLL_REMOTE);
    if (f === null) return -EINVAL;
    return yield* __get_user_pages_locked(mm, start, nr_pages, pages, 0, locked ?? { value: 1 }, f);
  }
  if (!is_valid_gup_flags(gup_flags)) return -EINVAL;
  return yield* __get_user_pages_remote(mm, start, nr_pages, gup_flags, pages, locked);
}

/**
 * get_user_pages(start, nr_pages, gup_flags, pages): get_user_pages_remote on current's
 * mm without FOLL_REMOTE and without `locked`.
 * @kernel mm/gup.c:get_user_pages (all versions)
 * Locking: current->mm->mmap_lock held by the caller.
 * Return: pages done, or -errno.
 */
export function* get_user_pages(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
): Op<number> {
  const mm = get_current().mm!;
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_TOUCH);
    if (f === null) return -EINVAL;
    return yield* __get_user_pages_locked(mm, start, nr_pages, pages, 0, { value: 1 }, f);
  }
  if (!is_valid_gup_flags(gup_flags)) return -EINVAL;
  return yield* __gup_longterm_locked(mm, start, nr_pages, pages, 0, null, gup_flags | FOLL_TOUCH);
}

/** get_user_pages_unlocked's body before v6.3, from an offset in pages[]. */
function* get_user_pages_unlocked_old(
  start: number,
  nr_pages: number,
  pages: page_array | null,
  off: number,
  gup_flags: number,
): Op<number> {
  const mm = get_current().mm!;
  // FOLL_LONGTERM behavior is incompatible with FAULT_FLAG_ALLOW_RETRY (the FS DAX check
  // needs the vmas); disallowed until v6.3 ("mm/gup: remove the restriction on locked
  // with FOLL_LONGTERM").
  if (WARN_ON_ONCE((gup_flags & FOLL_LONGTERM) !== 0, 'get_user_pages_unlocked:longterm'))
    return -EINVAL;
  const locked: int_ptr = { value: 1 };
  yield* mmap_read_lock(mm);
  const ret = yield* __get_user_pages_locked(
    mm,
    start,
    nr_pages,
    pages,
    off,
    locked,
    gup_flags | FOLL_TOUCH,
  );
  if (locked.value) yield* mmap_read_unlock(mm);
  return ret;
}

/**
 * get_user_pages_unlocked(start, nr_pages, pages, gup_flags): get_user_pages on
 * current's mm taking and dropping mmap_lock itself, with fault retries allowed.
 * @kernel mm/gup.c:get_user_pages_unlocked (all versions)
 * Locking: mmap_lock not held on entry or return.
 * Return: pages done, or -errno.
 */
export function* get_user_pages_unlocked(
  start: number,
  nr_pages: number,
  pages: page_array | null,
  gup_flags: number,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_TOUCH | FOLL_UNLOCKABLE);
    if (f === null) return -EINVAL;
    return yield* __get_user_pages_locked(
      get_current().mm!,
      start,
      nr_pages,
      pages,
      0,
      { value: 0 },
      f,
    );
  }
  return yield* get_user_pages_unlocked_old(start, nr_pages, pages, 0, gup_flags);
}

/**
 * pin_user_pages(start, nr_pages, gup_flags, pages): FOLL_PIN (without FOLL_TOUCH) on
 * current's mm, with the FOLL_LONGTERM rules (R-GUP-5, R-GUP-8). Invalid arguments WARN
 * and return 0 (v6.3+) or -EINVAL (before) (R-GUP-1).
 * @kernel mm/gup.c:pin_user_pages (v5.6+)
 * Locking: current->mm->mmap_lock held by the caller.
 * Return: pages pinned, or -errno.
 */
export function* pin_user_pages(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
): Op<number> {
  const mm = get_current().mm!;
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_PIN);
    if (f === null) return 0;
    return yield* __gup_longterm_locked(mm, start, nr_pages, pages, 0, { value: 1 }, f);
  }
  if (!pin_args_ok(gup_flags, pages, 'pin_user_pages')) return -EINVAL;
  return yield* __gup_longterm_locked(mm, start, nr_pages, pages, 0, null, gup_flags | FOLL_PIN);
}

/**
 * pin_user_pages_remote(mm, start, nr_pages, gup_flags, pages, locked): FOLL_PIN on
 * another mm, with FOLL_TOUCH|FOLL_REMOTE and the FOLL_LONGTERM rules (process_vm_readv/
 * writev, VFIO type1). Invalid arguments: 0 (v6.3+) or -EINVAL.
 * @kernel mm/gup.c:pin_user_pages_remote (v5.6+)
 * Locking: mm->mmap_lock held by the caller; with `locked` it may be dropped.
 * Return: pages pinned, or -errno.
 */
export function* pin_user_pages_remote(
  mm: mm_struct,
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  locked: int_ptr | null,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, locked, gup_flags, FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE);
    if (f === null) return 0;
    return yield* __gup_longterm_locked(mm, start, nr_pages, pages, 0, locked ?? { value: 1 }, f);
  }
  if (!pin_args_ok(gup_flags, pages, 'pin_user_pages_remote')) return -EINVAL;
  return yield* __get_user_pages_remote(mm, start, nr_pages, gup_flags | FOLL_PIN, pages, locked);
}

/**
 * pin_user_pages_unlocked(start, nr_pages, pages, gup_flags): FOLL_PIN on current's mm,
 * taking mmap_lock itself. Before v6.3 it went through get_user_pages_unlocked, which
 * refused FOLL_LONGTERM (WARN, -EINVAL).
 * @kernel mm/gup.c:pin_user_pages_unlocked (v5.6+)
 * Locking: mmap_lock not held on entry or return.
 * Return: pages pinned, or -errno (0 for invalid arguments, v6.3+).
 */
export function* pin_user_pages_unlocked(
  start: number,
  nr_pages: number,
  pages: page_array | null,
  gup_flags: number,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_PIN | FOLL_TOUCH | FOLL_UNLOCKABLE);
    if (f === null) return 0;
    return yield* __gup_longterm_locked(
      get_current().mm!,
      start,
      nr_pages,
      pages,
      0,
      { value: 0 },
      f,
    );
  }
  if (!pin_args_ok(gup_flags, pages, 'pin_user_pages_unlocked')) return -EINVAL;
  return yield* get_user_pages_unlocked_old(start, nr_pages, pages, 0, gup_flags | FOLL_PIN);
}

/* ------------------------------------------------------------------------------------ */
/* GUP-fast: the lockless walk                                                            */
/* ------------------------------------------------------------------------------------ */

/** x86 __pte_access_permitted: present and user, and writable for a write. */
function pte_access_permitted(v: pteval_t, write: boolean): boolean {
  const need = _PAGE_PRESENT | _PAGE_USER | (write ? _PAGE_RW : 0);
  return (pte_flags(v) & need) === need;
}

/** x86 pmd_leaf/pud_leaf as GUP-fast sees them: the PSE bit (protnone leaves included). */
function huge_bit(v: pteval_t): boolean {
  return (pte_flags(v) & 0x80) !== 0;
}

/** Step name of a folio's mapping word (READ_ONCE(folio->mapping) in GUP-fast). */
function* read_folio_mapping(f: folio): Op<unknown> {
  yield { obj: `folio${f}.mapping`, kind: 'read', what: 'READ_ONCE(folio->mapping)' };
  return folio_raw_mapping(f);
}

/**
 * gup_fast_folio_allowed(folio, flags): GUP-fast's VMA-less checks after the grab: a
 * small folio in a secretmem mapping is refused; a FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE pin
 * is allowed only for anonymous and shmem folios (the file-backed case falls back to the
 * slow path, whose writable_file_mapping_allowed decides, O-1). A folio without a mapping
 * (truncated) falls back too.
 * @kernel mm/gup.c:gup_fast_folio_allowed (v6.5+; folio_fast_pin_allowed v6.5–v6.8)
 * Locking: lockless (IRQs off in the kernel); one step reading folio->mapping.
 * Return: true when the fast path may keep the folio.
 */
function* gup_fast_folio_allowed(f: folio, flags: number): Op<boolean> {
  const reject_file_backed =
    (flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) === (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE);
  // secretmem folios are always order-0 folios.
  const check_secretmem = currentKernel().config.CONFIG_SECRETMEM === true && !folio_test_large(f);
  if (!reject_file_backed && !check_secretmem) return true;
  const mapping = yield* read_folio_mapping(f);
  // The mapping may have been truncated: fall back to the slow path.
  if (!mapping) return false;
  // Anonymous folios pose no problem.
  if (folio_test_anon(f)) return true;
  const m = mapping as address_space;
  if (check_secretmem && secretmem_mapping(m)) return false;
  // The only remaining allowed file system is shmem.
  return !reject_file_backed || shmem_mapping(m);
}

/**
 * page_is_secretmem(page) (v5.14–v6.4): GUP-fast's secretmem test of a small page.
 * @kernel include/linux/secretmem.h:page_is_secretmem (v5.14–v6.4)
 */
function* page_is_secretmem(p: page): Op<boolean> {
  if (!since(5, 14) || currentKernel().config.CONFIG_SECRETMEM !== true) return false;
  const f = page_folio(p);
  if (folio_test_large(f)) return false;
  const mapping = yield* read_folio_mapping(f);
  return !folio_test_anon(f) && secretmem_mapping(mapping as address_space | null);
}

interface fast_nr {
  value: number;
}

/**
 * gup_fast_pte_range(pmd, pmdp, addr, end, flags, pages, nr): the PTE level of GUP-fast.
 * Each entry is read locklessly (ptep_get_lockless, a step); the walk stops at the first
 * protnone, access-denied (not present, not user, not writable for a write) or
 * pte_special entry (R-GUP-7). The folio is grabbed speculatively (try_grab_folio_fast,
 * a step), then the PMD (v6.0+, 70cbc3cc78a9 "mm: gup: fix the fast GUP race against THP
 * collapse") and the PTE are read again (steps) and the grab undone if either changed;
 * then the secretmem (v5.14–v6.4) / gup_fast_folio_allowed (v6.5+) and unshare (v5.19+)
 * checks. Without CONFIG_ARCH_HAS_PTE_SPECIAL the PTE level pins nothing.
 * @kernel mm/gup.c:gup_fast_pte_range (v6.9+; gup_pte_range before)
 * Locking: none (lockless walk).
 * Return: 1 when the whole range was taken, 0 when the walk stopped.
 */
function* gup_fast_pte_range(
  pmd: pteval_t,
  pmdp: pmd_t_ptr,
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<number> {
  // If we can't determine whether or not a pte is special, then fail immediately.
  if (currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL !== true) return 0;
  // pte_offset_map(&pmd, addr): the PTE table of the PMD value read.
  const t = entry_table(pmdp);
  if (!t || t.pfn !== pte_pfn(pmd)) return 0;
  do {
    const ptep: pte_t_ptr = { t, i: pte_index(addr) };
    const pte = yield* ptep_get_lockless(ptep, 'gup_fast_pte_range');
    // Always fallback to ordinary GUP on PROT_NONE-mapped pages.
    if (pte_protnone(pte)) return 0;
    if (!pte_access_permitted(pte, (flags & FOLL_WRITE) !== 0)) return 0;
    if (pte_special(pte)) return 0;
    // If it's not marked as special it must have a valid memmap.
    const p = pte_pfn(pte) as page;
    const f = yield* try_grab_folio_fast(p, 1, flags);
    if (!f) return 0;
    if (!since(6, 5) && (yield* page_is_secretmem(p))) {
      yield* contig_ref_step(f, 'gup_put_folio', 'put');
      gup_put_folio(f, 1, flags);
      return 0;
    }
    // The re-check: has the PMD or the PTE changed under us?
    const pmdNow = since(6, 0) ? yield* pmdp_get_lockless(pmdp) : pmd;
    const pteNow = yield* ptep_get_lockless(ptep, 'gup_fast_pte_range recheck');
    if (pmdNow !== pmd || pteNow !== pte) {
      yield* contig_ref_step(f, 'gup_put_folio', 'put');
      gup_put_folio(f, 1, flags);
      return 0;
    }
    if (since(6, 5) && !(yield* gup_fast_folio_allowed(f, flags))) {
      yield* contig_ref_step(f, 'gup_put_folio', 'put');
      gup_put_folio(f, 1, flags);
      return 0;
    }
    if (!pte_write(pte) && gup_must_unshare(null, flags, p)) {
      yield* contig_ref_step(f, 'gup_put_folio', 'put');
      gup_put_folio(f, 1, flags);
      return 0;
    }
    pages[nr.value] = p;
    nr.value++;
    addr += PAGE_SIZE;
  } while (addr !== end);
  return 1;
}

/**
 * gup_fast_pmd_leaf(orig, pmdp, addr, end, flags, pages, nr): a huge PMD leaf in
 * GUP-fast: access must be permitted; a special leaf (huge pfnmap) stops the walk (v6.12+,
 * "mm/gup: detect huge pfnmap entries in gup-fast"); the covered subpages are recorded,
 * the folio grabbed `refs` times at once, the PMD re-read, then the folio and unshare
 * checks.
 * @kernel mm/gup.c:gup_fast_pmd_leaf (v6.9+; gup_huge_pmd before)
 * Return: 1 or 0.
 */
function* gup_fast_pmd_leaf(
  orig: pteval_t,
  pmdp: pmd_t_ptr,
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<number> {
  if (!pte_access_permitted(orig, (flags & FOLL_WRITE) !== 0)) return 0;
  if (since(6, 12) && pmd_special(orig)) return 0;
  const p = (pte_pfn(orig) + Math.floor((addr % PMD_SIZE) / PAGE_SIZE)) as page;
  let refs = 0;
  for (let a = addr; a !== end; a += PAGE_SIZE) pages[nr.value + refs] = (p + refs++) as page;
  const f = yield* try_grab_folio_fast(p, refs, flags);
  if (!f) return 0;
  if ((yield* pmdp_get_lockless(pmdp)) !== orig) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  if (since(6, 5) && !(yield* gup_fast_folio_allowed(f, flags))) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  if (!pmd_write(orig) && gup_must_unshare(null, flags, f as number as page)) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  nr.value += refs;
  return 1;
}

/**
 * gup_fast_pud_leaf(orig, pudp, addr, end, flags, pages, nr): as gup_fast_pmd_leaf for a
 * PUD leaf (a special one stops the walk, v6.12+).
 * @kernel mm/gup.c:gup_fast_pud_leaf (v6.9+; gup_huge_pud before)
 */
function* gup_fast_pud_leaf(
  orig: pteval_t,
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<number> {
  if (!pte_access_permitted(orig, (flags & FOLL_WRITE) !== 0)) return 0;
  if (since(6, 12) && pud_special(orig)) return 0;
  const p = (pte_pfn(orig) + Math.floor((addr % PUD_SIZE) / PAGE_SIZE)) as page;
  let refs = 0;
  for (let a = addr; a !== end; a += PAGE_SIZE) pages[nr.value + refs] = (p + refs++) as page;
  const f = yield* try_grab_folio_fast(p, refs, flags);
  if (!f) return 0;
  if ((yield* pudp_get_lockless(pudp)) !== orig) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  if (since(6, 5) && !(yield* gup_fast_folio_allowed(f, flags))) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  if (!pud_write(orig) && gup_must_unshare(null, flags, f as number as page)) {
    yield* contig_ref_step(f, 'gup_put_folio', 'put');
    gup_put_folio(f, refs, flags);
    return 0;
  }
  nr.value += refs;
  return 1;
}

/** pXd_addr_end(addr, end, size): the next boundary of a size-aligned block, capped. */
function addr_end(addr: number, end: number, size: number): number {
  const boundary = (Math.floor(addr / size) + 1) * size;
  return boundary < end ? boundary : end;
}

/**
 * gup_fast_pmd_range(pudp, pud, addr, end, flags, pages, nr): each PMD read locklessly
 * (a step); not present ⇒ stop; a leaf: protnone ⇒ stop, else gup_fast_pmd_leaf; else the
 * PTE level.
 * @kernel mm/gup.c:gup_fast_pmd_range (v6.9+; gup_pmd_range before)
 */
function* gup_fast_pmd_range(
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<number> {
  const t = entry_table(pudp);
  if (!t) return 0;
  do {
    const pmdp: pmd_t_ptr = { t, i: pmd_index(addr) };
    const pmd = yield* pmdp_get_lockless(pmdp);
    const next = addr_end(addr, end, PMD_SIZE);
    if (!pmd_present(pmd)) return 0;
    if (huge_bit(pmd)) {
      // See gup_fast_pte_range().
      if (pte_protnone(pmd)) return 0;
      if (!(yield* gup_fast_pmd_leaf(pmd, pmdp, addr, next, flags, pages, nr))) return 0;
    } else if (!(yield* gup_fast_pte_range(pmd, pmdp, addr, next, flags, pages, nr))) {
      return 0;
    }
    addr = next;
  } while (addr !== end);
  return 1;
}

/**
 * gup_fast_pud_range(p4dp, addr, end, flags, pages, nr): each PUD read locklessly.
 * @kernel mm/gup.c:gup_fast_pud_range (v6.9+; gup_pud_range before)
 */
function* gup_fast_pud_range(
  p4dp: entry_ptr,
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<number> {
  const t = entry_table(p4dp);
  if (!t) return 0;
  do {
    const pudp: pud_t_ptr = { t, i: pud_index(addr) };
    const pud = yield* pudp_get_lockless(pudp);
    const next = addr_end(addr, end, PUD_SIZE);
    if (!pud_present(pud)) return 0;
    if (huge_bit(pud)) {
      if (!(yield* gup_fast_pud_leaf(pud, pudp, addr, next, flags, pages, nr))) return 0;
    } else if (!(yield* gup_fast_pmd_range(pudp, addr, next, flags, pages, nr))) {
      return 0;
    }
    addr = next;
  } while (addr !== end);
  return 1;
}

/**
 * gup_fast_pgd_range(addr, end, flags, pages, nr): the top of the lockless walk over
 * current's mm; the pgd and (folded) p4d entries are each read locklessly.
 * @kernel mm/gup.c:gup_fast_pgd_range, gup_fast_p4d_range (v6.9+; gup_pgd_range before)
 */
function* gup_fast_pgd_range(
  addr: number,
  end: number,
  flags: number,
  pages: page_array,
  nr: fast_nr,
): Op<void> {
  const mm = get_current().mm!;
  do {
    const pgdp = pgd_offset(mm, addr);
    const pgd = yield* ptep_get_lockless(pgdp, 'gup_fast_pgd_range');
    const next = addr_end(addr, end, PGDIR_SIZE);
    if (pgd_none(pgd)) return;
    // gup_fast_p4d_range: p4d_offset_lockless + READ_ONCE(*p4dp).
    const p4dp = p4d_offset(pgdp, addr);
    const p4d = yield* ptep_get_lockless(p4dp, 'gup_fast_p4d_range');
    if (!p4d_present(p4d)) return;
    if (!(yield* gup_fast_pud_range(p4dp, addr, next, flags, pages, nr))) return;
    addr = next;
  } while (addr !== end);
}

/**
 * gup_fast_unpin_user_pages(pages, npages): undoes GUP-fast's pins after a race with
 * fork, without the exclusivity sanity checks.
 * @kernel mm/gup.c:gup_fast_unpin_user_pages (v6.9+; unpin_user_pages_lockless
 *   v5.19–v6.8, unpin_user_pages v5.11–v5.18)
 */
function gup_fast_unpin_user_pages(pages: page_array, npages: number): void {
  for (let i = 0; i < npages;) {
    const [f, nr] = gup_folio_next(pages, npages, i);
    gup_put_folio(f, nr, FOLL_PIN);
    i += nr;
  }
}

/**
 * gup_fast(start, end, gup_flags, pages): the lockless part. For FOLL_PIN the mm's
 * write_protect_seq is sampled first (odd: fork is write-protecting, give up at once),
 * and re-checked after the walk: if fork ran copy_page_range meanwhile, every pin taken
 * is undone and 0 returned, so the caller takes the slow path (v5.11+, 57efa1fe5957
 * "mm/gup: prevent gup_fast from racing with COW during fork"; v6.13+ spells the sample
 * raw_seqcount_try_begin, the same test).
 * @kernel mm/gup.c:gup_fast (v6.9+; lockless_pages_from_mm v5.11–v6.8, inline before)
 * Locking: none (IRQs off in the kernel); steps on write_protect_seq and every entry.
 * Return: the number of pages taken from start, in order.
 */
function* gup_fast(start: number, end: number, gup_flags: number, pages: page_array): Op<number> {
  if (currentKernel().config.CONFIG_HAVE_GUP_FAST !== true) return 0;
  const mm = get_current().mm!;
  const seqcount = mm.write_protect_seq;
  let seq = 0;
  const check_seq = since(5, 11) && (gup_flags & FOLL_PIN) !== 0;
  if (check_seq) {
    yield {
      obj: seqcount.name,
      kind: 'read',
      what: since(6, 13) ? 'raw_seqcount_try_begin' : 'raw_read_seqcount',
    };
    seq = seqcount.sequence;
    if (seq & 1) return 0;
  }
  const nr: fast_nr = { value: 0 };
  yield* gup_fast_pgd_range(start, end, gup_flags, pages, nr);
  // When pinning pages for DMA there could be a concurrent write protect from fork() via
  // copy_page_range(), in this case always fail GUP-fast.
  if (check_seq && (yield* seqcount.readRetry(seq, 'read_seqcount_retry'))) {
    gup_fast_unpin_user_pages(pages, nr.value);
    return 0;
  }
  return nr.value;
}

/** The flags GUP-fast accepts, by version. */
function gup_fast_allowed_flags(): number {
  let m = FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET;
  if (since(5, 8)) m |= FOLL_FAST_ONLY;
  if (since(5, 16)) m |= FOLL_NOFAULT;
  if (since(6, 2)) m |= FOLL_PCI_P2PDMA;
  if (since(6, 5)) m |= FOLL_HONOR_NUMA_FAULT;
  return m;
}

/**
 * __gup_longterm_unlocked (≤ v6.2): GUP-fast's slow path: FOLL_LONGTERM under
 * mmap_read_lock through __gup_longterm_locked, otherwise get_user_pages_unlocked.
 */
function* __gup_longterm_unlocked(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array,
  off: number,
): Op<number> {
  const mm = get_current().mm!;
  if (gup_flags & FOLL_LONGTERM) {
    yield* mmap_read_lock(mm);
    const ret = yield* __gup_longterm_locked(mm, start, nr_pages, pages, off, null, gup_flags);
    yield* mmap_read_unlock(mm);
    return ret;
  }
  return yield* get_user_pages_unlocked_old(start, nr_pages, pages, off, gup_flags);
}

/**
 * gup_fast_fallback(start, nr_pages, gup_flags, pages): GUP-fast, then the slow path
 * from the first page the fast walk did not take (not with FOLL_FAST_ONLY). Unknown
 * flags WARN and are -EINVAL; FOLL_PIN sets MMF_HAS_PINNED first; an end that wraps is
 * -EOVERFLOW (v6.5+; 0 before), past TASK_SIZE_MAX -EFAULT. If the slow path fails after
 * k > 0 fast pages, k is returned (the caller must release them) (R-GUP-7).
 * @kernel mm/gup.c:gup_fast_fallback (v6.9+; internal_get_user_pages_fast before; the
 *   slow path via __gup_longterm_locked with FOLL_UNLOCKABLE v6.3+, __gup_longterm_unlocked
 *   before)
 * Locking: none on entry; the slow path takes current->mm->mmap_lock.
 * Return: pages taken, or -errno.
 */
export function* gup_fast_fallback(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array,
): Op<number> {
  if (WARN_ON_ONCE((gup_flags & ~gup_fast_allowed_flags()) !== 0, 'gup_fast_fallback:flags'))
    return -EINVAL;
  const mm = get_current().mm!;
  if (gup_flags & FOLL_PIN) mm_set_has_pinned_flag(mm);
  if (nr_pages <= 0) return 0;
  start = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  const len = nr_pages * PAGE_SIZE;
  const end = start + len;
  if (end >= 2 ** 64) return since(6, 5) ? -EOVERFLOW : 0;
  if (end > TASK_SIZE_MAX) return -EFAULT;
  const nr_pinned = yield* gup_fast(start, end, gup_flags, pages);
  if (nr_pinned === nr_pages || gup_flags & FOLL_FAST_ONLY) return nr_pinned;
  // Slow path: try to get the remaining pages with get_user_pages.
  start += nr_pinned * PAGE_SIZE;
  const ret = since(6, 3)
    ? yield* __gup_longterm_locked(
        mm,
        start,
        nr_pages - nr_pinned,
        pages,
        nr_pinned,
        { value: 0 },
        gup_flags | FOLL_TOUCH | FOLL_UNLOCKABLE,
      )
    : yield* __gup_longterm_unlocked(start, nr_pages - nr_pinned, gup_flags, pages, nr_pinned);
  if (ret < 0) {
    // The caller has to unpin the pages we already pinned so returning -errno is not an
    // option.
    if (nr_pinned) return nr_pinned;
    return ret;
  }
  return ret + nr_pinned;
}

/**
 * get_user_pages_fast_only(start, nr_pages, gup_flags, pages): GUP-fast with FOLL_GET and
 * no slow path (IRQ-safe). Before v6.3 it never returned a negative value (clamped to 0).
 * @kernel mm/gup.c:get_user_pages_fast_only (v5.8+)
 * Return: pages taken, or -errno (v6.3+).
 */
export function* get_user_pages_fast_only(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array,
): Op<number> {
  requireVersion('get_user_pages_fast_only', 5, 8, 'it was __get_user_pages_fast before');
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_GET | FOLL_FAST_ONLY);
    if (f === null) return -EINVAL;
    return yield* gup_fast_fallback(start, nr_pages, f, pages);
  }
  const nr = yield* gup_fast_fallback(
    start,
    nr_pages,
    gup_flags | FOLL_GET | FOLL_FAST_ONLY,
    pages,
  );
  return nr < 0 ? 0 : nr;
}

/**
 * get_user_pages_fast(start, nr_pages, gup_flags, pages): FOLL_GET on current's pages,
 * lockless first, then the slow path (shared futexes, vmsplice's iov_iter) (R-GUP-7).
 * @kernel mm/gup.c:get_user_pages_fast (all versions)
 * Locking: none on entry; may take current->mm->mmap_lock.
 * Return: pages taken, or -errno.
 */
export function* get_user_pages_fast(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_GET);
    if (f === null) return -EINVAL;
    return yield* gup_fast_fallback(start, nr_pages, f, pages);
  }
  if (!is_valid_gup_flags(gup_flags)) return -EINVAL;
  return yield* gup_fast_fallback(start, nr_pages, gup_flags | FOLL_GET, pages);
}

/**
 * pin_user_pages_fast(start, nr_pages, gup_flags, pages): FOLL_PIN on current's pages,
 * lockless first (racing fork is detected through write_protect_seq), then the slow path
 * with the FOLL_LONGTERM rules (io_uring buffers, O_DIRECT) (R-GUP-5, R-GUP-7, R-GUP-8).
 * @kernel mm/gup.c:pin_user_pages_fast (v5.6+)
 * Locking: none on entry; may take current->mm->mmap_lock.
 * Return: pages pinned, or -errno (-EINVAL for invalid arguments).
 */
export function* pin_user_pages_fast(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array,
): Op<number> {
  if (since(6, 3)) {
    const f = is_valid_gup_args(pages, null, gup_flags, FOLL_PIN);
    if (f === null) return -EINVAL;
    return yield* gup_fast_fallback(start, nr_pages, f, pages);
  }
  // FOLL_GET and FOLL_PIN are mutually exclusive.
  if (WARN_ON_ONCE((gup_flags & FOLL_GET) !== 0, 'pin_user_pages_fast:get')) return -EINVAL;
  return yield* gup_fast_fallback(start, nr_pages, gup_flags | FOLL_PIN, pages);
}

/* ------------------------------------------------------------------------------------ */
/* The *_locked entry points (v5.7–v5.17): mm/frame_vector.c's GUP calls                 */
/* ------------------------------------------------------------------------------------ */

/**
 * get_user_pages_locked(start, nr_pages, gup_flags, pages, locked): FOLL_GET (with
 * pages[]) on current's mm with FOLL_TOUCH, under mmap_lock held by the caller, which a
 * fault may drop (then *locked = 0). FOLL_LONGTERM WARNs and is -EINVAL ("incompatible
 * with FAULT_FLAG_ALLOW_RETRY"); from v5.8 so is a FOLL_PIN from the caller (420c2091b65a
 * "mm/gup: introduce pin_user_pages_locked()", v2 of which added the check).
 * The only caller in the model is mm/frame_vector.c of v5.7.
 * @kernel mm/gup.c:get_user_pages_locked (v5.7–v5.17; removed by "mm/gup: remove
 *   get_user_pages_locked()", John Hubbard, v5.18 — the mainline hash is not pinned here;
 *   calling it on a later kernel is a model error)
 * Locking: current->mm->mmap_lock held for read, *locked == 1; on return *locked says
 *   whether it is still held.
 * Return: pages done, or -errno.
 */
export function* get_user_pages_locked(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  locked: int_ptr,
): Op<number> {
  if (since(5, 18))
    throw new Error(
      `get_user_pages_locked does not exist in kernel ${currentKernel().version.name}: removed in v5.18 ("mm/gup: remove get_user_pages_locked()")`,
    );
  // FIXME: Current FOLL_LONGTERM behavior is incompatible with FAULT_FLAG_ALLOW_RETRY
  // because of the FS DAX check requirement on vmas.
  if (WARN_ON_ONCE((gup_flags & FOLL_LONGTERM) !== 0, 'get_user_pages_locked:longterm'))
    return -EINVAL;
  // FOLL_PIN must only be set internally by the pin_user_pages*() APIs, never directly by
  // the caller, so enforce that.
  if (since(5, 8) && WARN_ON_ONCE((gup_flags & FOLL_PIN) !== 0, 'get_user_pages_locked:pin'))
    return -EINVAL;
  return yield* __get_user_pages_locked(
    get_current().mm!,
    start,
    nr_pages,
    pages,
    0,
    locked,
    gup_flags | FOLL_TOUCH,
  );
}

/**
 * pin_user_pages_locked(start, nr_pages, gup_flags, pages, locked): the FOLL_PIN variant
 * of get_user_pages_locked: FOLL_LONGTERM and FOLL_GET WARN and are -EINVAL; the pins
 * are taken with FOLL_PIN|FOLL_TOUCH and no long-term migration (a pin of a CMA page stays
 * in the CMA area, R-GUP-8).
 * @kernel mm/gup.c:pin_user_pages_locked (v5.8–v5.17: 420c2091b65a "mm/gup: introduce
 *   pin_user_pages_locked()"; removed by "mm/gup: remove unused pin_user_pages_locked()",
 *   John Hubbard, v5.18 — mainline hash not pinned here; calling it outside v5.8–v5.17
 *   is a model error)
 * Locking: current->mm->mmap_lock held for read, *locked == 1; a fault may drop it
 *   (*locked = 0).
 * Return: pages pinned, or -errno.
 */
export function* pin_user_pages_locked(
  start: number,
  nr_pages: number,
  gup_flags: number,
  pages: page_array | null,
  locked: int_ptr,
): Op<number> {
  requireVersion('pin_user_pages_locked', 5, 8, 'added by 420c2091b65a');
  if (since(5, 18))
    throw new Error(
      `pin_user_pages_locked does not exist in kernel ${currentKernel().version.name}: removed in v5.18 ("mm/gup: remove unused pin_user_pages_locked()")`,
    );
  // FIXME: Current FOLL_LONGTERM behavior is incompatible with FAULT_FLAG_ALLOW_RETRY
  // because of the FS DAX check requirement on vmas.
  if (WARN_ON_ONCE((gup_flags & FOLL_LONGTERM) !== 0, 'pin_user_pages_locked:longterm'))
    return -EINVAL;
  // FOLL_GET and FOLL_PIN are mutually exclusive.
  if (WARN_ON_ONCE((gup_flags & FOLL_GET) !== 0, 'pin_user_pages_locked:get')) return -EINVAL;
  gup_flags |= FOLL_PIN;
  return yield* __get_user_pages_locked(
    get_current().mm!,
    start,
    nr_pages,
    pages,
    0,
    locked,
    gup_flags | FOLL_TOUCH,
  );
}

/* ==================================================================================== */
/* Pin provenance (model only, not kernel behaviour; issue 3 §5)                          */
/*                                                                                        */
/* The kernel counts FOLL_PIN pins (GUP_PIN_COUNTING_BIAS in the refcount, or            */
/* folio->_pincount) but does not remember who took them. The model keeps, per kernel    */
/* instance, a record of every live pin: the task, the GUP entry point and its flags, the */
/* call path and the logical time, so that a report (cma_alloc's failure, pfnsan) can     */
/* name the pin that holds a frame. try_grab_folio / try_grab_folio_fast add records;     */
/* gup_put_folio removes them. Nothing here changes what the kernel model does.           */
/* ==================================================================================== */

// Imports of this section (kept with it; ES imports are hoisted).
import { call_path, type Frame } from '../kernel/callpath.js';

/** One grab of FOLL_PIN pins on a folio (model). */
export interface gup_pin_record {
  /** Deterministic id, in pin order. */
  readonly id: number;
  /** The folio (head pfn) pinned, and its size then. */
  readonly folio: number;
  readonly nr_pages: number;
  /** Pins of this grab still held (try_grab_folio's refs, less those released). */
  count: number;
  /** current at the time of the pin. */
  readonly comm: string;
  readonly pid: number;
  /** The outermost mm/gup.c entry point on the call path (pin_user_pages_fast, ...). */
  readonly entry: string | null;
  /** The frame that called the entry point (get_vaddr_frames, io_sqe_buffer_register, ...). */
  readonly caller: Frame | null;
  /** The flags try_grab_folio saw (FOLL_PIN and the internal flags included). */
  readonly gup_flags: number;
  /** The modelled kernel functions on the stack, innermost first (callpath.ts). */
  readonly call_path: readonly Frame[];
  /** Logical time (ns since boot) and scheduler step of the pin. */
  readonly time_ns: number;
  readonly step: number;
  /**
   * Taken inside a FOLL_LONGTERM __gup_longterm_locked() call that has not returned: the
   * pin is transient, the call may still drop it to migrate the folio (R-GUP-8). Cleared
   * when the call returns with the pin held.
   */
  inflight: boolean;
}

interface GupPinState {
  /** Live records by folio head pfn, oldest first. */
  readonly byFolio: Map<number, gup_pin_record[]>;
  /**
   * Per scheduler thread: its FOLL_LONGTERM __gup_longterm_locked() calls in progress
   * (nested ones counted) and the pins taken meanwhile.
   */
  readonly longterm: Map<object, { depth: number; readonly pins: gup_pin_record[] }>;
}

function pinState(): GupPinState {
  const k = currentKernel();
  return ((k.sub.gup_pins as GupPinState | undefined) ??= {
    byFolio: new Map(),
    longterm: new Map(),
  });
}

/**
 * Runs a FOLL_LONGTERM __gup_longterm_locked() body: the pins the current task takes
 * meanwhile are in flight ({@link gup_pin_record.inflight}) until the outermost such
 * call returns.
 */
function* gup_longterm_inflight<T>(op: Op<T>): Op<T> {
  const st = pinState();
  const me = currentThread();
  let call = st.longterm.get(me);
  if (!call) st.longterm.set(me, (call = { depth: 0, pins: [] }));
  call.depth++;
  try {
    return yield* op;
  } finally {
    if (--call.depth === 0) {
      st.longterm.delete(me);
      for (const r of call.pins) r.inflight = false;
    }
  }
}

/** The GUP entry points a pin can be attributed to. */
const GUP_ENTRY_POINTS = new Set([
  'pin_user_pages',
  'pin_user_pages_fast',
  'pin_user_pages_fast_only',
  'pin_user_pages_remote',
  'pin_user_pages_unlocked',
  'pin_user_pages_locked',
  'memfd_pin_folios',
  'get_user_pages',
  'get_user_pages_fast',
  'get_user_pages_fast_only',
  'get_user_pages_remote',
  'get_user_pages_unlocked',
  'get_user_pages_locked',
]);

/** Adds a record of `refs` new FOLL_PIN pins on f (from try_grab_folio[_fast]). */
function gup_pin_record_add(f: folio, refs: number, flags: number): void {
  if (!(flags & FOLL_PIN) || refs <= 0) return;
  const k = currentKernel();
  // This function's own frame is left out, and so are the model's Kernel.run/clocked
  // wrappers (src/kernel/kernel/kernel.ts, which no kernel file corresponds to).
  const frames = call_path(1).filter((f) => f.file !== 'kernel/kernel.c');
  let ei = -1;
  for (let i = 0; i < frames.length; i++)
    if (frames[i]!.file === 'mm/gup.c' && GUP_ENTRY_POINTS.has(frames[i]!.fn)) ei = i;
  const t = get_current();
  const rec: gup_pin_record = {
    id: k.nextId('gup_pin'),
    folio: f,
    nr_pages: folio_nr_pages(f),
    count: refs,
    comm: t.comm,
    pid: t.pid,
    entry: ei >= 0 ? frames[ei]!.fn : null,
    caller: ei >= 0 ? (frames[ei + 1] ?? null) : null,
    gup_flags: flags,
    call_path: frames,
    time_ns: k.ktime_ns,
    step: k.step,
    inflight: false,
  };
  const call = pinState().longterm.get(currentThread());
  if (call) {
    rec.inflight = true;
    call.pins.push(rec);
  }
  const m = pinState().byFolio;
  const list = m.get(f);
  if (list) list.push(rec);
  else m.set(f, [rec]);
}

/**
 * Removes `refs` pins of f from the records. The kernel does not say whose pins an unpin
 * drops; the model takes them from the newest records of the current task first, then
 * from the newest records of anyone (an unpin by another task, e.g. io_uring teardown
 * from a worker, or a pin of a large folio that was split since: looked up by range).
 */
function gup_pin_record_del(f: folio, refs: number): void {
  const m = pinState().byFolio;
  let key: number = f;
  let list = m.get(key);
  if (!list) {
    for (const [head, l] of m) {
      if (l.some((r) => f >= head && f < head + r.nr_pages)) {
        key = head;
        list = l;
        break;
      }
    }
  }
  if (!list) return;
  const pid = get_current().pid;
  for (const mine of [true, false]) {
    for (let i = list.length - 1; i >= 0 && refs > 0; i--) {
      const r = list[i]!;
      if (mine && r.pid !== pid) continue;
      const n = Math.min(r.count, refs);
      r.count -= n;
      refs -= n;
      if (r.count === 0) list.splice(i, 1);
    }
  }
  if (!list.length) m.delete(key);
}

/**
 * The live pin records of the folio containing pfn (copies, oldest first); empty when
 * it has none or has no struct page. Model inspection for reports (cma_alloc's failure)
 * and tests.
 */
export function page_pin_records(pfn: number): gup_pin_record[] {
  const m = pinState().byFolio;
  const out: gup_pin_record[] = [];
  for (const [head, l] of m)
    for (const r of l) if (pfn >= head && pfn < head + r.nr_pages) out.push({ ...r });
  return out.sort((a, b) => a.id - b.id);
}

/** Every live pin record of the kernel (copies, oldest first): leak checks at teardown. */
export function gup_live_pin_records(): gup_pin_record[] {
  const out: gup_pin_record[] = [];
  for (const l of pinState().byFolio.values()) for (const r of l) out.push({ ...r });
  return out.sort((a, b) => a.id - b.id);
}

const FOLL_NAMES: readonly [number, string][] = [
  [FOLL_WRITE, 'FOLL_WRITE'],
  [FOLL_GET, 'FOLL_GET'],
  [FOLL_DUMP, 'FOLL_DUMP'],
  [FOLL_FORCE, 'FOLL_FORCE'],
  [FOLL_NOWAIT, 'FOLL_NOWAIT'],
  [FOLL_NOFAULT, 'FOLL_NOFAULT'],
  [FOLL_HWPOISON, 'FOLL_HWPOISON'],
  [FOLL_ANON, 'FOLL_ANON'],
  [FOLL_LONGTERM, 'FOLL_LONGTERM'],
  [FOLL_SPLIT_PMD, 'FOLL_SPLIT_PMD'],
  [FOLL_PCI_P2PDMA, 'FOLL_PCI_P2PDMA'],
  [FOLL_INTERRUPTIBLE, 'FOLL_INTERRUPTIBLE'],
  [FOLL_HONOR_NUMA_FAULT, 'FOLL_HONOR_NUMA_FAULT'],
  [FOLL_TOUCH, 'FOLL_TOUCH'],
  [FOLL_TRIED, 'FOLL_TRIED'],
  [FOLL_REMOTE, 'FOLL_REMOTE'],
  [FOLL_PIN, 'FOLL_PIN'],
  [FOLL_FAST_ONLY, 'FOLL_FAST_ONLY'],
  [FOLL_UNLOCKABLE, 'FOLL_UNLOCKABLE'],
  [FOLL_MADV_POPULATE, 'FOLL_MADV_POPULATE'],
  [FOLL_NUMA, 'FOLL_NUMA'],
  [FOLL_COW, 'FOLL_COW'],
  [FOLL_MLOCK, 'FOLL_MLOCK'],
  [FOLL_POPULATE, 'FOLL_POPULATE'],
];

/** "FOLL_WRITE|FOLL_LONGTERM" (model formatting; "0" for none). */
export function foll_flags_str(flags: number): string {
  return (
    FOLL_NAMES.filter(([b]) => (flags & b) !== 0)
      .map(([, n]) => n)
      .join('|') || '0'
  );
}

/** The flags GUP adds itself, left out when naming the caller's flags. */
const GUP_ADDED_FLAGS =
  FOLL_PIN |
  FOLL_GET |
  FOLL_TOUCH |
  FOLL_TRIED |
  FOLL_REMOTE |
  FOLL_FAST_ONLY |
  FOLL_UNLOCKABLE |
  FOLL_MADV_POPULATE |
  FOLL_NUMA |
  FOLL_COW;

/**
 * One line naming a pin's owner: "app(1001) via pin_user_pages_fast(FOLL_WRITE) at
 * get_vaddr_frames (drivers/media/common/videobuf2/frame_vector.c), 1 pin, t=0.000123s
 * step 12" (model formatting; the flags shown leave out those GUP adds itself; the step
 * only inside a multi-thread run).
 */
export function gup_pin_record_str(r: gup_pin_record): string {
  const via = r.entry ? ` via ${r.entry}(${foll_flags_str(r.gup_flags & ~GUP_ADDED_FLAGS)})` : '';
  const at = r.caller ? ` at ${r.caller.fn} (${r.caller.file})` : '';
  const t = (r.time_ns / 1e9).toFixed(6);
  const step = r.step >= 0 ? ` step ${r.step}` : '';
  const inflight = r.inflight ? ' (in flight: the FOLL_LONGTERM call has not returned)' : '';
  return `${r.comm}(${r.pid})${via}${at}, ${r.count} pin${r.count === 1 ? '' : 's'}, t=${t}s${step}${inflight}`;
}
