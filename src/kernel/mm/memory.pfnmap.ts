/**
 * Installing and looking up PFN mappings (mm/memory.c): remap_pfn_range and its
 * variants, vm_iomap_memory, vmf_insert_pfn(_prot), vmf_insert_mixed, vm_insert_page(s),
 * vm_map_pages (R-RPR-*, R-INS-1..4); the lookups follow_pfnmap_start/end (v6.12+),
 * follow_pte (up to v6.11), follow_pfn (up to v6.9), unsafe_follow_pfn (v5.13), and
 * generic_access_phys (R-FPM-*, R-LEG-*, R-CALL-1).
 *
 * Calling a function that does not exist in the run's kernel version throws an Error
 * naming the commit that added or removed it.
 *
 * Out-parameters are returned:
 * - follow_pte(mm | vma, addr) -> { ret, ptep, ptl }: ptep/ptl are set when ret is 0,
 *   and then the PTE lock is held (release with pte_unmap_unlock(ptep, ptl));
 * - follow_pfn / unsafe_follow_pfn(vma, addr) -> { ret, pfn } (pfn 0 on error);
 * - follow_phys(vma, addr, flags) -> { ret, prot, paddr };
 * - vm_insert_pages(vma, addr, pages, num) -> { ret, num } with num the pages not mapped;
 * - struct follow_pfnmap_args is an object filled in place, as in the kernel.
 *
 * pfn_t (include/linux/pfn_t.h, up to v6.16) is modelled here as { pfn, flags }; functions
 * that took a pfn_t accept a pfn_t or a plain pfn, which stands for
 * __pfn_to_pfn_t(pfn, PFN_DEV) (what PFN-mapping drivers pass).
 *
 * Entries are read under their page-table lock as plain reads; the lockless reads of the
 * upper levels in the lookups are Steps, as are all entry writes and lock operations.
 *
 * @kernel mm/memory.c (v5.7+), include/linux/pfn_t.h (v5.7-v6.16)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import {
  add_taint,
  BUG_ON,
  lockdep_assert,
  LOCKDEP_STILL_OK,
  TAINT_USER,
  VM_BUG_ON,
  VM_WARN_ON_ONCE,
  WARN_ON_ONCE,
  WARN_ONCE,
} from '../kernel/panic.js';
import { pr_info } from '../kernel/printk.js';
import { EACCES, EBUSY, EFAULT, EINVAL, ENOMEM, ENXIO } from '../include/linux/errno.js';
import type {
  entry_ptr,
  folio,
  mm_struct,
  page,
  pfnmap_track_ctx,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
  vm_fault_t,
} from '../include/linux/mm_types.js';
import {
  FOLL_WRITE,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_NOPAGE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_WRITE,
  inc_mm_counter,
  is_cow_mapping,
  mm_counter_file,
  vma_pages,
} from '../include/linux/mm.js';
import {
  folio_test_anon,
  page_flags,
  page_folio,
  pfn_to_page,
} from '../include/linux/page-flags.js';
import { folio_get, folio_ref_count, page_ref_count } from '../include/linux/page_ref.js';
import {
  PAGE_SIZE,
  pte_devmap,
  pfn_pte,
  pte_mkdevmap,
  pte_mkdirty,
  pte_mkwrite,
  pte_mkyoung,
  pte_none,
  pte_pfn,
  pte_pgprot,
  pte_present,
  pte_write,
  type pgprot_t,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  p4d_bad,
  p4d_none,
  pgd_bad,
  pgd_none,
  pmd_bad,
  pmd_leaf,
  pmd_none,
  pmd_present,
  pmd_special,
  pmd_trans_huge,
  pmd_write,
  pte_mkspecial,
  pte_special,
  pud_bad,
  pud_leaf,
  pud_none,
  pud_present,
  pud_special,
  pud_write,
} from '../arch/x86/include/asm/pgtable.js';
import {
  is_zero_pfn,
  p4d_offset,
  pgd_offset,
  pmd_alloc,
  pmd_lock,
  pmd_offset,
  pmdp_get,
  pmdp_get_lockless,
  ptep_get,
  ptep_get_lockless,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  pud_lock,
  pud_offset,
  pudp_get,
  pudp_get_lockless,
  set_pte_at,
  zero_pfn,
} from '../include/linux/pgtable.js';
import { lockdep_is_held, spin_unlock, type spinlock_t } from '../include/linux/spinlock.js';
import {
  mmap_assert_locked,
  mmap_assert_write_locked,
  mmap_read_trylock,
} from '../include/linux/mmap_lock.js';
import { PG_buddy, PG_kernel, PG_table, pfn_valid } from './sparse.js';
import { folio_add_file_rmap_ptes } from './rmap.js';
import { vm_normal_folio } from './memory.normal.js';
import { zap_page_range_single } from './memory.zap.js';
import {
  pfn_modify_allowed,
  pfnmap_setup_cachemode,
  pfnmap_setup_cachemode_pfn,
  pfnmap_track,
  pfnmap_untrack,
  track_pfn_insert,
  track_pfn_remap,
  untrack_pfn,
  type pgprot_ptr,
} from '../arch/x86/mm/pat/memtype.js';
import { ioremap_prot, iounmap, memcpy_fromio, memcpy_toio } from '../arch/x86/mm/ioremap.js';
import { since } from '../version.js';
import {
  pfnsan_lease_attach_lock,
  pfnsan_lease_bind,
  pfnsan_lease_get,
  pfnsan_lease_of,
  pfnsan_lease_put,
  pfnsan_special_map,
  type pfnsan_lease,
} from './pfnsan/pfnsan.js';

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/** PAGE_MASK / PMD_MASK / PUD_MASK: the kernel's unsigned masks as negative numbers. */
export const PAGE_MASK = -PAGE_SIZE;
export const PMD_MASK = -(2 ** 21);
export const PUD_MASK = -(2 ** 30);
const PMD_SIZE = 2 ** 21;
const PUD_SIZE = 2 ** 30;
const PGDIR_SIZE = 2 ** 39;

/** PAGE_ALIGN(x) */
function PAGE_ALIGN(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}

/** pXd_addr_end(addr, end) */
function addr_end(addr: number, end: number, size: number): number {
  const boundary = Math.floor(addr / size) * size + size;
  return Math.min(boundary, end);
}

/**
 * vm_flags_set(vma, flags): from v6.3 the wrapper asserts mmap_lock held for write
 * ("mm: introduce vma->vm_flags wrapper functions"; v6.4+ through vma_start_write());
 * before, drivers set vma->vm_flags directly.
 * @kernel include/linux/mm.h:vm_flags_set (v6.3+)
 * Locking: mmap_lock held for write.
 */
export function vm_flags_set(vma: vm_area_struct, flags: bigint): void {
  if (since(6, 3)) mmap_assert_write_locked(vma.vm_mm);
  vma.vm_flags |= flags;
}

/**
 * vm_flags_clear(vma, flags)
 * @kernel include/linux/mm.h:vm_flags_clear (v6.3+)
 * Locking: mmap_lock held for write.
 */
export function vm_flags_clear(vma: vm_area_struct, flags: bigint): void {
  if (since(6, 3)) mmap_assert_write_locked(vma.vm_mm);
  vma.vm_flags &= ~flags;
}

/**
 * __vm_flags_mod(vma, set, clear): the variant without the lock assertion.
 * @kernel include/linux/mm.h:__vm_flags_mod (v6.3+)
 */
export function __vm_flags_mod(vma: vm_area_struct, set: bigint, clear: bigint): void {
  vma.vm_flags = (vma.vm_flags | set) & ~clear;
}

/** maybe_mkwrite(pte, vma): writable when the VMA is. */
function maybe_mkwrite(pte: pteval_t, vma: vm_area_struct): pteval_t {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(pte) : pte;
}

/**
 * ptep_set_access_flags(vma, addr, ptep, entry, dirty) on x86: writes the entry when it
 * changed and dirty is set.
 * Return: whether it changed.
 */
function* ptep_set_access_flags(
  vma: vm_area_struct,
  addr: number,
  ptep: pte_t_ptr,
  entry: pteval_t,
  dirty: boolean,
): Op<boolean> {
  const changed = ptep_get(ptep) !== entry;
  if (changed && dirty) yield* set_pte_at(vma.vm_mm, addr, ptep, entry, 'ptep_set_access_flags');
  return changed;
}

/**
 * pte_alloc_map_lock(mm, pmd, addr): allocates the PTE table if needed, maps and locks it.
 * @kernel include/linux/mm.h:pte_alloc_map_lock (all versions)
 * Return: [ptep, ptl] with ptl held, or null (allocation failure, or a leaf PMD).
 */
function* pte_alloc_map_lock(
  mm: mm_struct,
  pmdp: pmd_t_ptr,
  addr: number,
): Op<[pte_t_ptr, spinlock_t] | null> {
  if (yield* pte_alloc(mm, pmdp)) return null;
  return yield* pte_offset_map_lock(mm, pmdp, addr);
}

/**
 * walk_to_pmd(mm, addr): allocates the upper tables down to the PMD slot of addr.
 * @kernel mm/memory.c:walk_to_pmd (all versions)
 * Return: the PMD slot, or null on allocation failure.
 */
function* walk_to_pmd(mm: mm_struct, addr: number): Op<pmd_t_ptr | null> {
  const pgd = pgd_offset(mm, addr);
  const p4d = p4d_offset(pgd, addr);
  const pud = yield* pud_alloc(mm, p4d, addr);
  if (!pud) return null;
  const pmd = yield* pmd_alloc(mm, pud, addr);
  if (!pmd) return null;
  VM_BUG_ON(pmd_trans_huge(pmdp_get(pmd)));
  return pmd;
}

/**
 * get_locked_pte(mm, addr): the locked PTE slot of addr, allocating tables.
 * @kernel mm/memory.c:__get_locked_pte (all versions)
 * Return: [ptep, ptl] with ptl held, or null (-ENOMEM for the callers).
 */
function* get_locked_pte(mm: mm_struct, addr: number): Op<[pte_t_ptr, spinlock_t] | null> {
  const pmd = yield* walk_to_pmd(mm, addr);
  if (!pmd) return null;
  return yield* pte_alloc_map_lock(mm, pmd, addr);
}

/* ------------------------------------------------------------------------- */
/* pfn_t (include/linux/pfn_t.h, v5.7-v6.16)                                   */
/* ------------------------------------------------------------------------- */

/** pfn_t flags (the kernel keeps them in the top bits of pfn_t.val). */
export const PFN_SG_CHAIN = 1 << 0;
export const PFN_SG_LAST = 1 << 1;
export const PFN_DEV = 1 << 2;
export const PFN_MAP = 1 << 3;
export const PFN_SPECIAL = 1 << 4;

/** pfn_t: a pfn with flags saying what kind of memory it is. */
export interface pfn_t {
  readonly pfn: number;
  readonly flags: number;
}

/** __pfn_to_pfn_t(pfn, flags) */
export function __pfn_to_pfn_t(pfn: number, flags: number): pfn_t {
  return { pfn, flags };
}

/** pfn_to_pfn_t(pfn) = __pfn_to_pfn_t(pfn, 0): a pfn with a struct page. */
export function pfn_to_pfn_t(pfn: number): pfn_t {
  return __pfn_to_pfn_t(pfn, 0);
}

/** pfn_t_to_pfn(pfn) */
export function pfn_t_to_pfn(p: pfn_t): number {
  return p.pfn;
}

/** pfn_t_devmap(pfn): PFN_DEV|PFN_MAP (ZONE_DEVICE with struct page). */
export function pfn_t_devmap(p: pfn_t): boolean {
  return (p.flags & (PFN_DEV | PFN_MAP)) === (PFN_DEV | PFN_MAP);
}

/** pfn_t_special(pfn): PFN_SPECIAL, only with CONFIG_ARCH_HAS_PTE_SPECIAL. */
export function pfn_t_special(p: pfn_t): boolean {
  return (
    currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL === true && (p.flags & PFN_SPECIAL) !== 0
  );
}

/** pfn_t_valid(pfn) = pfn_valid(pfn_t_to_pfn(pfn)) */
export function pfn_t_valid(p: pfn_t): boolean {
  return pfn_valid(p.pfn);
}

function to_pfn_t(pfn: pfn_t | number): pfn_t {
  return typeof pfn === 'number' ? __pfn_to_pfn_t(pfn, PFN_DEV) : pfn;
}

/* ------------------------------------------------------------------------- */
/* remap_pfn_range                                                           */
/* ------------------------------------------------------------------------- */

/**
 * remap_pte_range: sets special PTEs for [addr, end), pfn upwards. A populated PTE is a
 * BUG; an entry pfn_modify_allowed() refuses stops the loop with -EACCES.
 * @kernel mm/memory.c:remap_pte_range (all versions)
 * Locking: takes the PTE table lock.
 * Return: 0, -ENOMEM, -EACCES.
 */
function* remap_pte_range(
  mm: mm_struct,
  pmdp: pmd_t_ptr,
  addr: number,
  end: number,
  pfn: number,
  prot: pgprot_t,
): Op<number> {
  const r = yield* pte_alloc_map_lock(mm, pmdp, addr);
  if (!r) return -ENOMEM;
  const [mapped, ptl] = r;
  let err = 0;
  let i = mapped.i;
  const first = { addr, pfn };
  do {
    const ptep = { t: mapped.t, i };
    BUG_ON(!pte_none(ptep_get(ptep)));
    if (!pfn_modify_allowed(pfn, prot)) {
      err = -EACCES;
      break;
    }
    yield* set_pte_at(mm, addr, ptep, pte_mkspecial(pfn_pte(pfn, prot)), 'remap_pte_range');
    pfn++;
    i++;
    addr += PAGE_SIZE;
  } while (addr !== end);
  pfnsan_special_map(mm, first.addr, first.pfn, pfn - first.pfn);
  yield* pte_unmap_unlock(mapped, ptl);
  return err;
}

/** remap_pmd_range / remap_pud_range / remap_p4d_range: the table levels. */
function* remap_pmd_range(
  mm: mm_struct,
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  pfn: number,
  prot: pgprot_t,
): Op<number> {
  pfn -= Math.floor(addr / PAGE_SIZE);
  const base = yield* pmd_alloc(mm, pudp, addr);
  if (!base) return -ENOMEM;
  VM_BUG_ON(pmd_trans_huge(pmdp_get(base)));
  do {
    const next = addr_end(addr, end, PMD_SIZE);
    const pmdp = pmd_offset(pudp, addr);
    const err = yield* remap_pte_range(
      mm,
      pmdp,
      addr,
      next,
      pfn + Math.floor(addr / PAGE_SIZE),
      prot,
    );
    if (err) return err;
    addr = next;
  } while (addr !== end);
  return 0;
}

function* remap_pud_range(
  mm: mm_struct,
  p4dp: entry_ptr,
  addr: number,
  end: number,
  pfn: number,
  prot: pgprot_t,
): Op<number> {
  pfn -= Math.floor(addr / PAGE_SIZE);
  const base = yield* pud_alloc(mm, p4dp, addr);
  if (!base) return -ENOMEM;
  do {
    const next = addr_end(addr, end, PUD_SIZE);
    const pudp = pud_offset(p4dp, addr);
    const err = yield* remap_pmd_range(
      mm,
      pudp,
      addr,
      next,
      pfn + Math.floor(addr / PAGE_SIZE),
      prot,
    );
    if (err) return err;
    addr = next;
  } while (addr !== end);
  return 0;
}

/**
 * The page-table walk of remap_pfn_range_internal (the pgd loop over remap_p4d_range);
 * the caller has checked addr < end.
 */
function* remap_pfn_range_walk(
  vma: vm_area_struct,
  addr: number,
  end: number,
  pfn: number,
  prot: pgprot_t,
): Op<number> {
  const mm = vma.vm_mm;
  pfn -= Math.floor(addr / PAGE_SIZE);
  do {
    const next = addr_end(addr, end, PGDIR_SIZE);
    /* remap_p4d_range: p4d_alloc is the pgd slot on 4-level x86 */
    const p4dp = p4d_offset(pgd_offset(mm, addr), addr);
    const err = yield* remap_pud_range(
      mm,
      p4dp,
      addr,
      next,
      pfn + Math.floor(addr / PAGE_SIZE),
      prot,
    );
    if (err) return err;
    addr = next;
  } while (addr !== end);
  return 0;
}

/** The COW-VMA rule of R-RPR-1.2 (vm_pgoff = pfn when covered); null to continue, else the error. */
function remap_pfn_range_prepare(
  vma: vm_area_struct,
  addr: number,
  end: number,
  pfn: number,
): number | null {
  /*
   * There's a horrible special case to handle copy-on-write behaviour that some
   * programs depend on. We mark the "original" un-COW'ed pages by matching them up
   * with "vma->vm_pgoff". See vm_normal_page() for details.
   */
  if (is_cow_mapping(vma.vm_flags)) {
    if (addr !== vma.vm_start || end !== vma.vm_end) return -EINVAL;
    vma.vm_pgoff = pfn;
  }
  return null;
}

const VM_REMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

/**
 * remap_pfn_range_internal(vma, addr, pfn, size, prot): maps [addr, addr +
 * PAGE_ALIGN(size)) to pfn upwards with special PTEs (R-RPR-1):
 * 1. an unaligned addr is WARN_ON_ONCE and -EINVAL (40736f7a6b53, v5.9);
 * 2. a COW VMA must be covered exactly (-EINVAL, before any flag change) and gets
 *    vm_pgoff = pfn;
 * 3. VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP are set and stay set;
 * 4. addr >= end is a BUG;
 * 5. each PTE: populated is a BUG; pfn_modify_allowed() false stops with -EACCES;
 *    table allocation failure is -ENOMEM. Non-COW VMAs get no range check.
 * @kernel mm/memory.c:remap_pfn_range_internal (v6.11+, 79a61cc3fc04 "mm: avoid leaving
 *   partial pfn mappings around in error case"; the same body was remap_pfn_range_notrack
 *   v5.13-v6.10 and remap_pfn_range before)
 * Locking: mmap_lock held for write (vm_flags_set asserts it, v6.3+); takes page-table locks.
 * Return: 0 or -errno; entries installed before an error stay.
 */
export function* remap_pfn_range_internal(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  size: number,
  prot: pgprot_t,
): Op<number> {
  if (!since(6, 11)) absent('remap_pfn_range_internal()', 'added by 79a61cc3fc04, v6.11');
  const end = addr + PAGE_ALIGN(size);
  if (WARN_ON_ONCE(addr % PAGE_SIZE !== 0, 'mm/memory.c:remap_pfn_range_internal')) return -EINVAL;
  const err = remap_pfn_range_prepare(vma, addr, end, pfn);
  if (err !== null) return err;
  vm_flags_set(vma, VM_REMAP_FLAGS);
  BUG_ON(addr >= end);
  return yield* remap_pfn_range_walk(vma, addr, end, pfn, prot);
}

/**
 * remap_pfn_range_notrack(vma, addr, pfn, size, prot): remap_pfn_range without the PAT
 * hook (the caller chose the cache mode). From v6.11 it calls remap_pfn_range_internal
 * and an error zaps [addr, addr + size) before returning, so no partial mapping
 * survives (R-RPR-2; 79a61cc3fc04); v5.13-v6.10 it is the body of R-RPR-1 itself and
 * leaves the entries made before an error.
 * @kernel mm/memory.c:remap_pfn_range_notrack (v5.13+, 74ffa5a3e685 "mm: add
 *   remap_pfn_range_notrack"; zap on error v6.11+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* remap_pfn_range_notrack(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  size: number,
  prot: pgprot_t,
): Op<number> {
  if (!since(5, 13)) absent('remap_pfn_range_notrack()', 'added by 74ffa5a3e685, v5.13');
  if (!since(6, 11)) {
    const end = addr + PAGE_ALIGN(size);
    if (WARN_ON_ONCE(addr % PAGE_SIZE !== 0, 'mm/memory.c:remap_pfn_range_notrack')) return -EINVAL;
    const err = remap_pfn_range_prepare(vma, addr, end, pfn);
    if (err !== null) return err;
    vm_flags_set(vma, VM_REMAP_FLAGS);
    BUG_ON(addr >= end);
    return yield* remap_pfn_range_walk(vma, addr, end, pfn, prot);
  }
  const error = yield* remap_pfn_range_internal(vma, addr, pfn, size, prot);
  if (!error) return 0;
  /*
   * A partial pfn range mapping is dangerous: it does not maintain page reference
   * counts, and callers may free pages due to the error. So zap it early.
   */
  yield* zap_page_range_single(vma, addr, size, null);
  return error;
}

/**
 * pfnmap_track_ctx_alloc(pfn, size, prot): reserves the memtype (pfnmap_track) and
 * allocates the context that owns the reservation (kref 1).
 * @kernel mm/memory.c:pfnmap_track_ctx_alloc (v6.16+, f8e97613fed2)
 * Return: the context, or -EINVAL (tracking failed); kmalloc never fails in the model
 *   (the kernel's -ENOMEM path untracks first).
 */
function pfnmap_track_ctx_alloc(
  pfn: number,
  size: number,
  prot: pgprot_ptr,
): pfnmap_track_ctx | number {
  if (pfnmap_track(pfn, size, prot)) return -EINVAL;
  return { pfn, size, kref: 1 };
}

/**
 * pfnmap_track_ctx_release(ctx): the last reference is gone: drop the reservation.
 * Called through kref_put() by remap_pfn_range's error path and by whoever frees the
 * last VMA sharing the context (vm_area_free).
 * @kernel mm/memory.c:pfnmap_track_ctx_release (v6.16+, f8e97613fed2)
 */
export function pfnmap_track_ctx_release(ctx: pfnmap_track_ctx): void {
  pfnmap_untrack(ctx.pfn, ctx.size);
}

/** kref_put(&ctx->kref, pfnmap_track_ctx_release) */
export function pfnmap_track_ctx_put(ctx: pfnmap_track_ctx): void {
  if (--ctx.kref === 0) pfnmap_track_ctx_release(ctx);
}

/**
 * remap_pfn_range(vma, addr, pfn, size, prot): maps a pfn range into a user VMA with
 * x86 PAT tracking (R-RPR-3):
 * - up to v5.12: COW rule, then track_pfn_remap (any failure -EINVAL), the flags, the
 *   walk; a walk error untracks;
 * - v5.13-v6.15: track_pfn_remap (whole VMA: reserve + VM_PAT; partial: cache mode only;
 *   failure -EINVAL), remap_pfn_range_notrack, untrack_pfn on error;
 * - v6.16+ (f8e97613fed2 "mm: convert VM_PFNMAP tracking to pfnmap_track() +
 *   pfnmap_untrack()"): whole VMA: a VMA that already has a pfnmap_track_ctx is -EINVAL,
 *   tracking failure -EINVAL, the context (kref 1) is stored on success and dropped
 *   (untracking) on error; partial: pfnmap_setup_cachemode failure is -EINVAL.
 * @kernel mm/memory.c:remap_pfn_range (v5.7+)
 * Locking: mmap_lock held for write; takes page-table locks.
 * Return: 0 or -errno.
 * Model: only the x86 (__HAVE_PFNMAP_TRACKING) form.
 */
export function* remap_pfn_range(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  size: number,
  prot: pgprot_t,
): Op<number> {
  if (!since(5, 13)) {
    const end = addr + PAGE_ALIGN(size);
    const remap_pfn = pfn;
    if (since(5, 9) && WARN_ON_ONCE(addr % PAGE_SIZE !== 0, 'mm/memory.c:remap_pfn_range'))
      return -EINVAL;
    const cow = remap_pfn_range_prepare(vma, addr, end, pfn);
    if (cow !== null) return cow;
    const p: pgprot_ptr = { pgprot: prot };
    if (track_pfn_remap(vma, p, remap_pfn, addr, PAGE_ALIGN(size))) return -EINVAL;
    vma.vm_flags |= VM_REMAP_FLAGS;
    BUG_ON(addr >= end);
    const err = yield* remap_pfn_range_walk(vma, addr, end, pfn, p.pgprot);
    if (err) yield* untrack_pfn(vma, remap_pfn, PAGE_ALIGN(size), true);
    return err;
  }
  if (!since(6, 16)) {
    const p: pgprot_ptr = { pgprot: prot };
    if (track_pfn_remap(vma, p, pfn, addr, PAGE_ALIGN(size))) return -EINVAL;
    const err = yield* remap_pfn_range_notrack(vma, addr, pfn, size, p.pgprot);
    if (err) yield* untrack_pfn(vma, pfn, PAGE_ALIGN(size), true);
    return err;
  }
  size = PAGE_ALIGN(size);
  const p: pgprot_ptr = { pgprot: prot };
  let ctx: pfnmap_track_ctx | null = null;
  /*
   * If we cover the full VMA, we'll perform actual tracking, and remember to untrack
   * when the last reference to our tracking context from a VMA goes away.
   */
  if (addr === vma.vm_start && addr + size === vma.vm_end) {
    if (vma.pfnmap_track_ctx) return -EINVAL;
    const c = pfnmap_track_ctx_alloc(pfn, size, p);
    if (typeof c === 'number') return c;
    ctx = c;
  } else if (pfnmap_setup_cachemode(pfn, size, p)) {
    return -EINVAL;
  }
  const err = yield* remap_pfn_range_notrack(vma, addr, pfn, size, p.pgprot);
  if (ctx) {
    if (err) pfnmap_track_ctx_put(ctx);
    else vma.pfnmap_track_ctx = ctx;
  }
  return err;
}

/**
 * pgprot_decrypted(prot): x86 without memory encryption leaves prot as it is.
 * @kernel arch/x86/include/asm/pgtable.h:pgprot_decrypted (all versions; SME/TDX not modelled)
 */
export function pgprot_decrypted(prot: pgprot_t): pgprot_t {
  return prot;
}

/**
 * io_remap_pfn_range(vma, addr, pfn, size, prot) = remap_pfn_range with
 * pgprot_decrypted(prot); x86 translates no pfns (R-RPR-4).
 * @kernel include/linux/mm.h:io_remap_pfn_range (all versions)
 * Locking: as remap_pfn_range.
 * Return: as remap_pfn_range.
 */
export function io_remap_pfn_range(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  size: number,
  prot: pgprot_t,
): Op<number> {
  return remap_pfn_range(vma, addr, pfn, size, pgprot_decrypted(prot));
}

const U64 = 1n << 64n;

/**
 * vm_iomap_memory(vma, start, len): maps the physical range [start, start + len) into
 * the whole VMA, starting vm_pgoff pages into the range (R-RPR-4): a range that wraps
 * (in 64 bits), a vm_pgoff beyond it, or a VMA longer than what is left is -EINVAL.
 * @kernel mm/memory.c:vm_iomap_memory (all versions)
 * Locking: mmap_lock held for write (usually from ->mmap).
 * Return: 0 or -errno.
 */
export function* vm_iomap_memory(vma: vm_area_struct, start: number, len: number): Op<number> {
  const s = BigInt(start);
  /* Check that the physical memory area passed in looks valid */
  if ((s + BigInt(len)) % U64 < s) return -EINVAL;
  /*
   * You *really* shouldn't map things that aren't page-aligned, but we've historically
   * allowed it because IO memory might just have smaller alignment.
   */
  const l = BigInt(len) + (s % 4096n);
  let pfn = s / 4096n;
  let pages = (l + 4095n) / 4096n;
  if ((pfn + pages) % U64 < pfn) return -EINVAL;
  /* We start the mapping 'vm_pgoff' pages into the area */
  if (BigInt(vma.vm_pgoff) > pages) return -EINVAL;
  pfn += BigInt(vma.vm_pgoff);
  pages -= BigInt(vma.vm_pgoff);
  /* Can we fit all of the mapping? */
  const vm_len = vma.vm_end - vma.vm_start;
  if (BigInt(vm_len / PAGE_SIZE) > pages) return -EINVAL;
  /* Ok, let it rip */
  return yield* io_remap_pfn_range(vma, vma.vm_start, Number(pfn), vm_len, vma.vm_page_prot);
}

/* ------------------------------------------------------------------------- */
/* vmf_insert_pfn and friends                                                */
/* ------------------------------------------------------------------------- */

/**
 * insert_pfn(vma, addr, pfn, prot, mkwrite): installs one special PTE (R-INS-2). No
 * table is VM_FAULT_OOM. A populated PTE: with mkwrite and the same pfn it becomes
 * young, dirty and (VM_WRITE) writable; with mkwrite and another pfn a WARN_ON_ONCE
 * unless the old one is the zero pfn, unchanged; without mkwrite unchanged. An empty PTE
 * gets special(pfn, prot) (devmap instead for pfn_t_devmap pfns before v6.17), plus
 * young/dirty/write with mkwrite. Always VM_FAULT_NOPAGE.
 * @kernel mm/memory.c:insert_pfn (all versions; pfn_t until v6.17)
 * Locking: mmap_lock (or the VMA lock) held; takes the PTE lock.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_OOM.
 */
export function* insert_pfn(
  vma: vm_area_struct,
  addr: number,
  pfn: pfn_t | number,
  prot: pgprot_t,
  mkwrite: boolean,
): Op<vm_fault_t> {
  const mm = vma.vm_mm;
  const raw = typeof pfn === 'number' ? pfn : pfn.pfn;
  const r = yield* get_locked_pte(mm, addr);
  if (!r) return VM_FAULT_OOM;
  const [pte, ptl] = r;
  let entry = ptep_get(pte);
  if (!pte_none(entry)) {
    if (mkwrite) {
      /*
       * For read faults on private mappings the PFN passed in may not match the PFN
       * we have mapped if the mapped PFN is a writeable COW page. In the mkwrite case
       * we are creating a writable PTE for a shared mapping and we expect the PFNs to
       * match. If they don't match, we are likely racing with block allocation and
       * mapping invalidation so just skip the update.
       */
      if (pte_pfn(entry) !== raw) {
        WARN_ON_ONCE(!is_zero_pfn(pte_pfn(entry)), 'mm/memory.c:insert_pfn');
      } else {
        entry = pte_mkyoung(entry);
        entry = maybe_mkwrite(pte_mkdirty(entry), vma);
        yield* ptep_set_access_flags(vma, addr, pte, entry, true);
      }
    }
    yield* pte_unmap_unlock(pte, ptl);
    return VM_FAULT_NOPAGE;
  }
  /* Ok, finally just insert the thing.. */
  if (!since(6, 17) && pfn_t_devmap(to_pfn_t(pfn))) entry = pte_mkdevmap(pfn_pte(raw, prot));
  else entry = pte_mkspecial(pfn_pte(raw, prot));
  if (mkwrite) {
    entry = pte_mkyoung(entry);
    entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  }
  yield* set_pte_at(mm, addr, pte, entry, 'insert_pfn');
  if (!pte_devmap(entry)) pfnsan_special_map(mm, addr, raw, 1);
  yield* pte_unmap_unlock(pte, ptl);
  return VM_FAULT_NOPAGE;
}

/**
 * vmf_insert_pfn_prot(vma, addr, pfn, pgprot): inserts one pfn from a fault handler
 * (R-INS-1): BUG unless exactly one of PFNMAP/MIXEDMAP, BUG for a COW PFNMAP, BUG for a
 * MIXEDMAP pfn with struct page; addr outside the VMA or pfn_modify_allowed() false is
 * VM_FAULT_SIGBUS; the cache mode comes from PAT (track_pfn_insert; v6.16+
 * pfnmap_setup_cachemode_pfn); then insert_pfn without mkwrite.
 * @kernel mm/memory.c:vmf_insert_pfn_prot (all versions)
 * Locking: mmap_lock (or the VMA lock) held; takes the PTE lock.
 * Return: VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_OOM.
 */
export function* vmf_insert_pfn_prot(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  pgprot: pgprot_t,
): Op<vm_fault_t> {
  const f = vma.vm_flags;
  BUG_ON(!(f & (VM_PFNMAP | VM_MIXEDMAP)));
  BUG_ON((f & (VM_PFNMAP | VM_MIXEDMAP)) === (VM_PFNMAP | VM_MIXEDMAP));
  BUG_ON((f & VM_PFNMAP) !== 0n && is_cow_mapping(f));
  BUG_ON((f & VM_MIXEDMAP) !== 0n && pfn_valid(pfn));

  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;
  if (!pfn_modify_allowed(pfn, pgprot)) return VM_FAULT_SIGBUS;

  const p: pgprot_ptr = { pgprot };
  if (since(6, 16)) pfnmap_setup_cachemode_pfn(pfn, p);
  else track_pfn_insert(vma, p, __pfn_to_pfn_t(pfn, PFN_DEV));
  return yield* insert_pfn(vma, addr, __pfn_to_pfn_t(pfn, PFN_DEV), p.pgprot, false);
}

/**
 * vmf_insert_pfn(vma, addr, pfn) = vmf_insert_pfn_prot with vma->vm_page_prot.
 * @kernel mm/memory.c:vmf_insert_pfn (all versions)
 * Locking: as vmf_insert_pfn_prot.
 * Return: as vmf_insert_pfn_prot.
 */
export function vmf_insert_pfn(vma: vm_area_struct, addr: number, pfn: number): Op<vm_fault_t> {
  return vmf_insert_pfn_prot(vma, addr, pfn, vma.vm_page_prot);
}

/**
 * vm_mixed_zeropage_allowed(vma): whether the shared zero page may be mapped: not where
 * the mm forbids it, yes in COW VMAs and VMAs that can never be writable, else only in
 * fsdax or VM_IO VMAs with ->pfn_mkwrite.
 * @kernel mm/memory.c:vm_mixed_zeropage_allowed (v6.11+, "mm/memory: cleanly support
 *   zeropage in vm_insert_page*(), vm_map_pages*() and vmf_insert_mixed()")
 * Return: true or false.
 * Model: mm_forbids_zeropage() is false (x86) and no VMA is fsdax.
 */
export function vm_mixed_zeropage_allowed(vma: vm_area_struct): boolean {
  if (!since(6, 11)) absent('vm_mixed_zeropage_allowed()', 'added in v6.11');
  VM_WARN_ON_ONCE((vma.vm_flags & VM_PFNMAP) !== 0n);
  /* mm_forbids_zeropage(vma->vm_mm) is false on x86 */
  if (is_cow_mapping(vma.vm_flags)) return true;
  if (!(vma.vm_flags & (VM_WRITE | VM_MAYWRITE))) return true;
  return !!vma.vm_ops?.pfn_mkwrite && (vma.vm_flags & VM_IO) !== 0n;
}

/**
 * vm_mixed_ok(vma, pfn, mkwrite): the pfns vmf_insert_mixed accepts (R-INS-3): v6.11+
 * refuses the zero pfn with mkwrite or where the zero page is not allowed; then any pfn
 * in a MIXEDMAP VMA, a devmap or special pfn_t (before v6.17), the zero pfn.
 * @kernel mm/memory.c:vm_mixed_ok (all versions; mkwrite and zero-page rules v6.11+)
 * Return: true or false.
 */
export function vm_mixed_ok(vma: vm_area_struct, pfn: pfn_t | number, mkwrite: boolean): boolean {
  const raw = typeof pfn === 'number' ? pfn : pfn.pfn;
  if (since(6, 11) && is_zero_pfn(raw) && (mkwrite || !vm_mixed_zeropage_allowed(vma)))
    return false;
  /* these checks mirror the abort conditions in vm_normal_page */
  if (vma.vm_flags & VM_MIXEDMAP) return true;
  if (!since(6, 17)) {
    if (pfn_t_devmap(to_pfn_t(pfn))) return true;
    if (pfn_t_special(to_pfn_t(pfn))) return true;
  }
  if (is_zero_pfn(raw)) return true;
  return false;
}

/**
 * __vm_insert_mixed(vma, addr, pfn, mkwrite): vmf_insert_mixed's body (R-INS-3).
 * vm_mixed_ok false is VM_FAULT_SIGBUS (v6.11+; a BUG before); addr outside the VMA is
 * SIGBUS; the cache mode comes from PAT; pfn_modify_allowed false is SIGBUS. Without a
 * special PTE bit a pfn with struct page (not devmap) is inserted as a refcounted page
 * (insert_page: -ENOMEM is OOM, other errors but -EBUSY SIGBUS, else NOPAGE); otherwise
 * insert_pfn.
 * @kernel mm/memory.c:__vm_insert_mixed (all versions)
 * Locking: mmap_lock (or the VMA lock) held; takes the PTE lock.
 * Return: a vm_fault_t.
 */
function* __vm_insert_mixed(
  vma: vm_area_struct,
  addr: number,
  pfn: pfn_t | number,
  mkwrite: boolean,
): Op<vm_fault_t> {
  const p: pgprot_ptr = { pgprot: vma.vm_page_prot };
  const raw = typeof pfn === 'number' ? pfn : pfn.pfn;
  if (since(6, 11)) {
    if (!vm_mixed_ok(vma, pfn, mkwrite)) return VM_FAULT_SIGBUS;
  } else {
    BUG_ON(!vm_mixed_ok(vma, pfn, mkwrite));
  }
  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;
  if (since(6, 16)) pfnmap_setup_cachemode_pfn(raw, p);
  else track_pfn_insert(vma, p, to_pfn_t(pfn));
  if (!pfn_modify_allowed(raw, p.pgprot)) return VM_FAULT_SIGBUS;
  /*
   * If we don't have pte special, then we have to use the pfn_valid() based
   * VM_MIXEDMAP scheme (see vm_normal_page), and thus we *must* refcount the page if
   * pfn_valid is true (hence insert_page rather than insert_pfn).
   */
  const devmap = !since(6, 17) && pfn_t_devmap(to_pfn_t(pfn));
  if (currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL !== true && !devmap && pfn_valid(raw)) {
    const err = yield* insert_page(vma, addr, pfn_to_page(raw), p.pgprot, mkwrite);
    if (err === -ENOMEM) return VM_FAULT_OOM;
    if (err < 0 && err !== -EBUSY) return VM_FAULT_SIGBUS;
    return VM_FAULT_NOPAGE;
  }
  return yield* insert_pfn(vma, addr, pfn, p.pgprot, mkwrite);
}

/**
 * vmf_insert_mixed(vma, addr, pfn): inserts a pfn into a MIXEDMAP VMA from a fault
 * handler (R-INS-3).
 * @kernel mm/memory.c:vmf_insert_mixed (all versions; pfn_t until v6.17)
 * Locking: mmap_lock (or the VMA lock) held; takes the PTE lock.
 * Return: a vm_fault_t.
 */
export function vmf_insert_mixed(
  vma: vm_area_struct,
  addr: number,
  pfn: pfn_t | number,
): Op<vm_fault_t> {
  return __vm_insert_mixed(vma, addr, pfn, false);
}

/** is_zero_folio(folio) */
function is_zero_folio(f: folio): boolean {
  return (f as number) === zero_pfn();
}

/** page_has_type(page) and folio_test_slab(folio): typed (free, page-table) and slab pages. */
function page_is_typed_or_slab(p: page): boolean {
  return (page_flags(p) & (PG_buddy | PG_table | PG_kernel)) !== 0;
}

/**
 * validate_page_before_insert(vma, page): pages vm_insert_page may map: not free
 * (refcount 0, checked here from v6.11, by the callers before), the zero page only where
 * vm_mixed_zeropage_allowed() (v6.11+; before, it was refcounted like any page), no
 * anonymous, slab or typed pages.
 * @kernel mm/memory.c:validate_page_before_insert (all versions)
 * Return: 0 or -EINVAL.
 */
function validate_page_before_insert(vma: vm_area_struct, p: page): number {
  const f = page_folio(p);
  if (since(6, 11)) {
    if (!folio_ref_count(f)) return -EINVAL;
    if (is_zero_folio(f)) {
      if (!vm_mixed_zeropage_allowed(vma)) return -EINVAL;
      return 0;
    }
  }
  if (folio_test_anon(f) || page_is_typed_or_slab(p)) return -EINVAL;
  return 0;
}

/**
 * insert_page_into_pte_locked(vma, pte, addr, page, prot, mkwrite): a populated PTE is
 * -EBUSY (v6.15+: with mkwrite and the same pfn it is made young and writable, another
 * pfn is WARN_ON_ONCE unless zero and -EFAULT); the zero page gets a special PTE and no
 * reference (v6.11+); any other page gets a reference, a file rmap, RSS +1 and a
 * non-special PTE (R-INS-4).
 * @kernel mm/memory.c:insert_page_into_pte_locked (all versions)
 * Locking: the PTE lock held.
 * Return: 0, -EBUSY, -EFAULT.
 */
function* insert_page_into_pte_locked(
  vma: vm_area_struct,
  pte: pte_t_ptr,
  addr: number,
  p: page,
  prot: pgprot_t,
  mkwrite: boolean,
): Op<number> {
  const f = page_folio(p);
  let pteval = ptep_get(pte);
  if (!pte_none(pteval)) {
    if (!mkwrite || !since(6, 15)) return -EBUSY;
    /* see insert_pfn(). */
    if (pte_pfn(pteval) !== p) {
      WARN_ON_ONCE(!is_zero_pfn(pte_pfn(pteval)), 'mm/memory.c:insert_page_into_pte_locked');
      return -EFAULT;
    }
    pteval = maybe_mkwrite(pteval, vma);
    pteval = pte_mkyoung(pteval);
    yield* ptep_set_access_flags(vma, addr, pte, pteval, true);
    return 0;
  }
  /* Ok, finally just insert the thing.. */
  pteval = pfn_pte(p, prot);
  if (since(6, 11) && is_zero_folio(f)) {
    pteval = pte_mkspecial(pteval);
  } else {
    folio_get(f);
    if (mkwrite && since(6, 15)) {
      pteval = pte_mkyoung(pteval);
      pteval = maybe_mkwrite(pte_mkdirty(pteval), vma);
    }
    inc_mm_counter(vma.vm_mm, mm_counter_file(f));
    folio_add_file_rmap_ptes(f, p, 1, vma);
  }
  yield* set_pte_at(vma.vm_mm, addr, pte, pteval, 'insert_page');
  return 0;
}

/**
 * insert_page(vma, addr, page, prot, mkwrite): validates the page, takes the PTE lock
 * (allocating tables: failure -ENOMEM) and inserts it.
 * @kernel mm/memory.c:insert_page (all versions; mkwrite v6.15+)
 * Locking: mmap_lock held; takes the PTE lock.
 * Return: 0, -EINVAL, -ENOMEM, -EBUSY, -EFAULT.
 */
function* insert_page(
  vma: vm_area_struct,
  addr: number,
  p: page,
  prot: pgprot_t,
  mkwrite: boolean,
): Op<number> {
  const retval = validate_page_before_insert(vma, p);
  if (retval) return retval;
  const r = yield* get_locked_pte(vma.vm_mm, addr);
  if (!r) return -ENOMEM;
  const [pte, ptl] = r;
  const ret = yield* insert_page_into_pte_locked(vma, pte, addr, p, prot, mkwrite);
  yield* pte_unmap_unlock(pte, ptl);
  return ret;
}

/**
 * vm_insert_page(vma, addr, page): maps a driver-allocated page into a user VMA
 * (R-INS-4): addr outside is -EFAULT; a refcount-0 page is -EINVAL (checked here before
 * v6.11, in validate_page_before_insert after); the VMA becomes MIXEDMAP
 * (BUG_ON(mmap_read_trylock()): a successful trylock means mmap_lock was not
 * write-held; BUG for a PFNMAP VMA); then insert_page with vm_page_prot.
 * @kernel mm/memory.c:vm_insert_page (all versions)
 * Locking: mmap_lock held for write (or the VMA already MIXEDMAP); takes the PTE lock.
 * Return: 0 or -errno.
 */
export function* vm_insert_page(vma: vm_area_struct, addr: number, p: page): Op<number> {
  if (addr < vma.vm_start || addr >= vma.vm_end) return -EFAULT;
  if (!since(6, 11) && !page_ref_count(p)) return -EINVAL;
  if (!(vma.vm_flags & VM_MIXEDMAP)) {
    /* a successful trylock means the caller did not hold mmap_lock for write */
    BUG_ON(yield* mmap_read_trylock(vma.vm_mm));
    BUG_ON((vma.vm_flags & VM_PFNMAP) !== 0n);
    vm_flags_set(vma, VM_MIXEDMAP);
  }
  return yield* insert_page(vma, addr, p, vma.vm_page_prot, false);
}

/**
 * insert_page_in_batch_locked: insert_page for one page of vm_insert_pages' batch, the
 * PTE lock already held (refcount check here before v6.11).
 * @kernel mm/memory.c:insert_page_in_batch_locked (all versions)
 */
function* insert_page_in_batch_locked(
  vma: vm_area_struct,
  pte: pte_t_ptr,
  addr: number,
  p: page,
  prot: pgprot_t,
): Op<number> {
  if (!since(6, 11) && !page_ref_count(p)) return -EINVAL;
  const err = validate_page_before_insert(vma, p);
  if (err) return err;
  return yield* insert_page_into_pte_locked(vma, pte, addr, p, prot, false);
}

/**
 * vm_insert_pages(vma, addr, pages, num): vm_insert_page for `num` consecutive pages,
 * taking the PTE lock once per batch of 8 within a PTE table. The range must lie in the
 * VMA (-EFAULT). On error the pages before the failing one stay mapped.
 * @kernel mm/memory.c:vm_insert_pages, insert_pages (all versions)
 * Locking: as vm_insert_page.
 * Return: { ret: 0 or -errno, num: the pages not mapped } (the kernel's *num).
 */
export function* vm_insert_pages(
  vma: vm_area_struct,
  addr: number,
  pages: readonly page[],
  num: number,
): Op<{ ret: number; num: number }> {
  const end_addr = addr + num * PAGE_SIZE - 1;
  if (addr < vma.vm_start || end_addr >= vma.vm_end) return { ret: -EFAULT, num };
  if (!(vma.vm_flags & VM_MIXEDMAP)) {
    BUG_ON(yield* mmap_read_trylock(vma.vm_mm));
    BUG_ON((vma.vm_flags & VM_PFNMAP) !== 0n);
    vm_flags_set(vma, VM_MIXEDMAP);
  }
  /* insert_pages(): defer page refcount checking till we're about to map that page */
  const mm = vma.vm_mm;
  const prot = vma.vm_page_prot;
  let curr_page_idx = 0;
  let remaining_pages_total = num;
  let ret: number;
  for (;;) {
    ret = -EFAULT;
    const pmd = yield* walk_to_pmd(mm, addr);
    if (!pmd) break;
    let pages_to_write_in_pmd = Math.min(
      remaining_pages_total,
      512 - (Math.floor(addr / PAGE_SIZE) % 512),
    );
    /* Allocate the PTE if necessary; takes PMD lock once only. */
    ret = -ENOMEM;
    if (yield* pte_alloc(mm, pmd)) break;
    let failed = false;
    while (pages_to_write_in_pmd) {
      let pte_idx = 0;
      const batch_size = Math.min(pages_to_write_in_pmd, 8);
      const r = yield* pte_offset_map_lock(mm, pmd, addr);
      if (!r) {
        ret = -EFAULT;
        failed = true;
        break;
      }
      const [start_pte, pte_lock] = r;
      for (; pte_idx < batch_size; ++pte_idx) {
        const pte = { t: start_pte.t, i: start_pte.i + pte_idx };
        const err = yield* insert_page_in_batch_locked(vma, pte, addr, pages[curr_page_idx]!, prot);
        if (err) {
          yield* pte_unmap_unlock(start_pte, pte_lock);
          ret = err;
          remaining_pages_total -= pte_idx;
          failed = true;
          break;
        }
        addr += PAGE_SIZE;
        ++curr_page_idx;
      }
      if (failed) break;
      yield* pte_unmap_unlock(start_pte, pte_lock);
      pages_to_write_in_pmd -= batch_size;
      remaining_pages_total -= batch_size;
    }
    if (failed) break;
    if (!remaining_pages_total) {
      ret = 0;
      break;
    }
  }
  return { ret, num: remaining_pages_total };
}

/**
 * __vm_map_pages(vma, pages, num, offset): maps pages[offset ..] over the whole VMA:
 * an offset beyond the object or a VMA larger than what is left is -ENXIO; the first
 * vm_insert_page error is returned, earlier pages staying mapped.
 * @kernel mm/memory.c:__vm_map_pages (all versions)
 * Locking: mmap_lock held for write (->mmap).
 * Return: 0 or -errno.
 */
function* __vm_map_pages(
  vma: vm_area_struct,
  pages: readonly page[],
  num: number,
  offset: number,
): Op<number> {
  const count = vma_pages(vma);
  let uaddr = vma.vm_start;
  /* Fail if the user requested offset is beyond the end of the object */
  if (offset >= num) return -ENXIO;
  /* Fail if the user requested size exceeds available object size */
  if (count > num - offset) return -ENXIO;
  for (let i = 0; i < count; i++) {
    const ret = yield* vm_insert_page(vma, uaddr, pages[offset + i]!);
    if (ret < 0) return ret;
    uaddr += PAGE_SIZE;
  }
  return 0;
}

/**
 * vm_map_pages(vma, pages, num): maps an object of num pages, honouring vm_pgoff.
 * @kernel mm/memory.c:vm_map_pages (all versions)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno (-ENXIO for a bad offset or size).
 */
export function vm_map_pages(vma: vm_area_struct, pages: readonly page[], num: number): Op<number> {
  return __vm_map_pages(vma, pages, num, vma.vm_pgoff);
}

/**
 * vm_map_pages_zero(vma, pages, num): as vm_map_pages with offset 0.
 * @kernel mm/memory.c:vm_map_pages_zero (all versions)
 */
export function vm_map_pages_zero(
  vma: vm_area_struct,
  pages: readonly page[],
  num: number,
): Op<number> {
  return __vm_map_pages(vma, pages, num, 0);
}

/* ------------------------------------------------------------------------- */
/* follow_pfnmap (v6.12+)                                                     */
/* ------------------------------------------------------------------------- */

/**
 * struct follow_pfnmap_args (R-FPM-1): inputs vma and address; internal lock and ptep;
 * outputs pfn, addr_mask (v6.15+, undefined before: the field does not exist), pgprot,
 * writable, special. addr_mask is PAGE_MASK, PMD_MASK or PUD_MASK as a negative number
 * (the leaf size is -addr_mask).
 * @kernel include/linux/mm.h:struct follow_pfnmap_args (v6.12+; addr_mask v6.15+)
 */
export interface follow_pfnmap_args {
  vma: vm_area_struct;
  address: number;
  lock: spinlock_t | null;
  ptep: pte_t_ptr | null;
  pfn: number;
  addr_mask: number | undefined;
  pgprot: pgprot_t;
  writable: boolean;
  special: boolean;
}

/** `struct follow_pfnmap_args args = { .vma = vma, .address = addr };` */
export function follow_pfnmap_args_init(vma: vm_area_struct, address: number): follow_pfnmap_args {
  return {
    vma,
    address,
    lock: null,
    ptep: null,
    pfn: 0,
    addr_mask: undefined,
    pgprot: 0,
    writable: false,
    special: false,
  };
}

/**
 * pfnmap_args_setup: fills the outputs; pfn = leaf pfn + the address's page within the
 * leaf.
 * @kernel mm/memory.c:pfnmap_args_setup (v6.12+; addr_mask v6.15+)
 */
function pfnmap_args_setup(
  args: follow_pfnmap_args,
  lock: spinlock_t,
  ptep: pte_t_ptr | null,
  pgprot: pgprot_t,
  pfn_base: number,
  addr_mask: number,
  writable: boolean,
  special: boolean,
): void {
  args.lock = lock;
  args.ptep = ptep;
  args.pfn = pfn_base + Math.floor((args.address % -addr_mask) / PAGE_SIZE);
  /* 62fb8adc43af "mm: Provide address mask in struct follow_pfnmap_args" (v6.15) */
  if (since(6, 15)) args.addr_mask = addr_mask;
  args.pgprot = pgprot;
  args.writable = writable;
  args.special = special;
  // pfnsan: the leaf's pfns are valid until follow_pfnmap_end (R-FPM-3).
  pfnsan_lease_bind(
    args,
    pfnsan_lease_get(pfn_base, -addr_mask / PAGE_SIZE, 'follow_pfnmap_start', {
      kind: 'window',
      end: 'follow_pfnmap_end',
    }),
  );
}

/**
 * pfnmap_lockdep_assert(vma): with CONFIG_LOCKDEP, a file VMA needs i_mmap_rwsem or
 * mmap_lock held, another VMA mmap_lock (a lockdep WARN otherwise). The first v6.12-rc
 * form dereferenced vm_file unconditionally; released v6.12 checks it.
 * @kernel mm/memory.c:pfnmap_lockdep_assert (v6.12+)
 */
function pfnmap_lockdep_assert(vma: vm_area_struct): void {
  if (currentKernel().config.CONFIG_LOCKDEP !== true) return;
  const mapping = vma.vm_file ? vma.vm_file.f_mapping : null;
  if (mapping)
    lockdep_assert(lockdep_is_held(mapping.i_mmap_rwsem) || lockdep_is_held(vma.vm_mm.mmap_lock));
  else lockdep_assert(lockdep_is_held(vma.vm_mm.mmap_lock));
}

/**
 * Whether this kernel has ffef67b93aa3 "mm/memory: fix PMD/PUD checks in
 * follow_pfnmap_start()" (mainline, March 2026): it re-reads the PUD/PMD under its lock
 * and checks pXd_present first. Stable: 6.12.81 (7a6616bea41c) and 6.18.22
 * (9e36ceb5ca43); the 6.13 and 6.15 series were EOL and never got it; the .0 releases
 * of the supported versions predate it.
 */
function follow_pfnmap_rechecks_leaf(): boolean {
  if (since(6, 18, 22)) return true;
  return since(6, 12, 81) && !since(6, 13);
}

/**
 * follow_pfnmap_start(args): looks up the PFN mapped at args->address in a VM_IO or
 * VM_PFNMAP VMA and returns with the entry's lock held (R-FPM-2):
 * 1. lockdep check (pfnmap_lockdep_assert);
 * 2. address outside the VMA: -EINVAL;  3. neither VM_IO nor VM_PFNMAP: -EINVAL;
 * 4. pgd/p4d none or bad: -EINVAL;
 * 5. PUD: none (fixed kernels: not present) is -EINVAL; a leaf takes the PUD lock and is
 *    returned (mask PUD_MASK, no ptep). Before ffef67b93aa3 the leaf test after locking
 *    re-checks the value read before the lock, so a PUD zapped in between is returned
 *    as it was read; fixed kernels re-read it: not present -EINVAL, not a leaf retry;
 * 6. PMD: likewise (fixed kernels first require pmd_present);
 * 7. PTE: map+lock failure or not present: -EINVAL; else the PTE with its lock held.
 * Outputs as pfnmap_args_setup. Non-special entries (COWed anon pages in a COW PFNMAP)
 * come back with special = false.
 * @kernel mm/memory.c:follow_pfnmap_start (v6.12+, 6da8e9634bb7 "mm: new follow_pfnmap
 *   API"; PMD/PUD re-read ffef67b93aa3, stable 6.12.81 and 6.18.22)
 * Locking: mmap_lock (or i_mmap_rwsem for a file VMA) held and kept until
 *   follow_pfnmap_end; on success the PTE, PMD or PUD lock is held.
 * Return: 0 or -EINVAL.
 */
export function* follow_pfnmap_start(args: follow_pfnmap_args): Op<number> {
  if (!since(6, 12)) absent('follow_pfnmap_start()', 'added by 6da8e9634bb7, v6.12');
  const vma = args.vma;
  const address = args.address;
  const mm = vma.vm_mm;
  const fixed = follow_pfnmap_rechecks_leaf();

  pfnmap_lockdep_assert(vma);
  if (address < vma.vm_start || address >= vma.vm_end) return -EINVAL;
  if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) return -EINVAL;

  for (;;) {
    /* retry: */
    const pgdp = pgd_offset(mm, address);
    const pgd = yield* ptep_get_lockless(pgdp, 'pgdp_get');
    if (pgd_none(pgd) || pgd_bad(pgd)) return -EINVAL;

    const p4dp = p4d_offset(pgdp, address);
    const p4d = yield* ptep_get_lockless(p4dp, 'p4dp_get');
    if (p4d_none(p4d) || p4d_bad(p4d)) return -EINVAL;

    const pudp = pud_offset(p4dp, address);
    let pud = yield* pudp_get_lockless(pudp);
    if (fixed ? !pud_present(pud) : pud_none(pud)) return -EINVAL;
    if (pud_leaf(pud)) {
      const lock = yield* pud_lock(mm, pudp);
      if (fixed) {
        pud = pudp_get(pudp);
        if (!pud_present(pud)) {
          yield* spin_unlock(lock);
          return -EINVAL;
        }
      }
      if (!pud_leaf(pud)) {
        yield* spin_unlock(lock);
        continue;
      }
      pfnmap_args_setup(
        args,
        lock,
        null,
        pte_pgprot(pud),
        pte_pfn(pud),
        PUD_MASK,
        pud_write(pud),
        pud_special(pud),
      );
      return 0;
    }

    const pmdp = pmd_offset(pudp, address);
    let pmd = yield* pmdp_get_lockless(pmdp);
    if (fixed && !pmd_present(pmd)) return -EINVAL;
    if (pmd_leaf(pmd)) {
      const lock = yield* pmd_lock(mm, pmdp);
      if (fixed) {
        pmd = pmdp_get(pmdp);
        if (!pmd_present(pmd)) {
          yield* spin_unlock(lock);
          return -EINVAL;
        }
      }
      if (!pmd_leaf(pmd)) {
        yield* spin_unlock(lock);
        continue;
      }
      pfnmap_args_setup(
        args,
        lock,
        null,
        pte_pgprot(pmd),
        pte_pfn(pmd),
        PMD_MASK,
        pmd_write(pmd),
        pmd_special(pmd),
      );
      return 0;
    }

    const r = yield* pte_offset_map_lock(mm, pmdp, address);
    if (!r) return -EINVAL;
    const [ptep, lock] = r;
    const pte = ptep_get(ptep);
    if (!pte_present(pte)) {
      yield* pte_unmap_unlock(ptep, lock);
      return -EINVAL;
    }
    pfnmap_args_setup(
      args,
      lock,
      ptep,
      pte_pgprot(pte),
      pte_pfn(pte),
      PAGE_MASK,
      pte_write(pte),
      pte_special(pte),
    );
    return 0;
  }
}

/**
 * follow_pfnmap_end(args): drops the lock follow_pfnmap_start returned with (and unmaps
 * the PTE). The outputs are stable only between start and end with mmap_lock held;
 * after end any use needs MMU-notifier synchronisation (R-FPM-3).
 * @kernel mm/memory.c:follow_pfnmap_end (v6.12+)
 * Locking: releases args->lock.
 */
export function* follow_pfnmap_end(args: follow_pfnmap_args): Op<void> {
  if (!since(6, 12)) absent('follow_pfnmap_end()', 'added by 6da8e9634bb7, v6.12');
  if (args.lock) yield* spin_unlock(args.lock);
  /* pte_unmap(args->ptep): nothing to do without CONFIG_HIGHPTE */
  const lease = pfnsan_lease_of(args);
  if (lease) pfnsan_lease_put(lease, 'follow_pfnmap_end');
}

/* ------------------------------------------------------------------------- */
/* Legacy lookups                                                            */
/* ------------------------------------------------------------------------- */

/** follow_pte's result: ptep and ptl when ret is 0, the PTE lock then held. */
export interface follow_pte_result {
  ret: number;
  ptep: pte_t_ptr | null;
  ptl: spinlock_t | null;
}

function is_mm(x: mm_struct | vm_area_struct): x is mm_struct {
  return (x as mm_struct).mmap_lock !== undefined && (x as vm_area_struct).vm_mm === undefined;
}

/**
 * follow_pte(mm, address) up to v6.9, follow_pte(vma, address) in v6.10-v6.11: the
 * locked PTE mapping address (R-LEG-1).
 * - v6.10 (29ae7d96d166 "mm: pass VMA instead of MM to follow_pte()" and "mm:
 *   follow_pte() improvements"): mmap_assert_locked, address outside the VMA or neither
 *   VM_IO nor VM_PFNMAP is -EINVAL;
 * - pgd/p4d/pud none or bad (a PUD leaf is bad) is -EINVAL; a huge PMD is a VM_BUG_ON,
 *   and -EINVAL without CONFIG_DEBUG_VM; before v6.5 a none or bad PMD is -EINVAL, after
 *   pte_offset_map_lock's failure is; a PTE that is not present is -EINVAL.
 * Signatures: static inline (mm, addr, &ptep, &ptl) up to v5.10 (follow_pfn's helper);
 * exported as (mm, addr, range, &ptep, &pmdp, &ptl) in v5.11 (ff5c19ed4b08; range and
 * pmdp NULL behave as modelled) and (mm, addr, &ptep, &ptl) in v5.12-v6.9 (9fd6dad1261a).
 * Removed in v6.12 (b0a1c0d0edcd "mm: remove follow_pte()").
 * @kernel mm/memory.c:follow_pte (v5.7-v6.11)
 * Locking: mmap_lock held for read; on success returns with the PTE lock held.
 * Return: { ret: 0 or -EINVAL, ptep, ptl }.
 */
export function* follow_pte(
  mm_or_vma: mm_struct | vm_area_struct,
  address: number,
): Op<follow_pte_result> {
  if (since(6, 12)) absent('follow_pte()', 'removed by b0a1c0d0edcd');
  const fail = { ret: -EINVAL, ptep: null, ptl: null };
  let mm: mm_struct;
  if (since(6, 10)) {
    if (is_mm(mm_or_vma))
      throw new Error('follow_pte() takes (vma, address) from 6.10 (29ae7d96d166), not an mm');
    const vma = mm_or_vma;
    mm = vma.vm_mm;
    mmap_assert_locked(mm);
    if (address < vma.vm_start || address >= vma.vm_end) return fail;
    if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) return fail;
  } else {
    if (!is_mm(mm_or_vma))
      throw new Error('follow_pte() takes (mm, address) before 6.10 (29ae7d96d166), not a VMA');
    mm = mm_or_vma;
  }
  const pgdp = pgd_offset(mm, address);
  const pgd = yield* ptep_get_lockless(pgdp, 'pgdp_get');
  if (pgd_none(pgd) || pgd_bad(pgd)) return fail;
  const p4dp = p4d_offset(pgdp, address);
  const p4d = yield* ptep_get_lockless(p4dp, 'p4dp_get');
  if (p4d_none(p4d) || p4d_bad(p4d)) return fail;
  const pudp = pud_offset(p4dp, address);
  const pud = yield* pudp_get_lockless(pudp);
  if (pud_none(pud) || pud_bad(pud)) return fail;
  const pmdp = pmd_offset(pudp, address);
  const pmd = yield* pmdp_get_lockless(pmdp);
  VM_BUG_ON(pmd_trans_huge(pmd));
  /* v6.5 "mm/memory: allow pte_offset_map[_lock]() to fail" dropped this check */
  if (!since(6, 5) && (pmd_none(pmd) || pmd_bad(pmd))) return fail;
  const r = yield* pte_offset_map_lock(mm, pmdp, address);
  if (!r) return fail;
  const [ptep, ptl] = r;
  if (!pte_present(ptep_get(ptep))) {
    yield* pte_unmap_unlock(ptep, ptl);
    return fail;
  }
  // pfnsan: the entry's pfn is valid until the caller's pte_unmap_unlock of this ptl.
  pfnsan_lease_attach_lock(
    pfnsan_lease_get(pte_pfn(ptep_get(ptep)), 1, 'follow_pte', {
      kind: 'window',
      end: 'pte_unmap_unlock',
    }),
    ptl,
  );
  return { ret: 0, ptep, ptl };
}

/**
 * follow_pfn(vma, address): the pfn mapped at address in a VM_IO/VM_PFNMAP VMA, read
 * under the PTE lock which is dropped before returning: nothing keeps the pfn valid
 * afterwards, and there is no write check (R-LEG-2).
 * @kernel mm/memory.c:follow_pfn (v5.7-v6.9; removed by cb10c28ac82c "mm: remove
 *   follow_pfn", v6.10)
 * Locking: mmap_lock held for read; takes and drops the PTE lock.
 * Return: { ret: 0 or -EINVAL, pfn }.
 */
export function* follow_pfn(
  vma: vm_area_struct,
  address: number,
): Op<{ ret: number; pfn: number }> {
  if (since(6, 10)) absent('follow_pfn()', 'removed by cb10c28ac82c');
  if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) return { ret: -EINVAL, pfn: 0 };
  const r = yield* follow_pte(vma.vm_mm, address);
  if (r.ret) return { ret: r.ret, pfn: 0 };
  const pfn = pte_pfn(ptep_get(r.ptep!));
  yield* pte_unmap_unlock(r.ptep!, r.ptl!);
  // pfnsan: nothing keeps the pfn valid once follow_pfn returns (R-LEG-2).
  pfnsan_lease_put(pfnsan_lease_get(pfn, 1, 'follow_pfn', { kind: 'none' }), 'follow_pfn');
  return { ret: 0, pfn };
}

/**
 * unsafe_follow_pfn(vma, address): follow_pfn for callers that cannot synchronise with
 * page-table changes (R-LEG-3): with CONFIG_STRICT_FOLLOW_PFN it refuses ("unsafe
 * follow_pfn usage rejected, see CONFIG_STRICT_FOLLOW_PFN", -EINVAL); without it it
 * warns once ("unsafe follow_pfn usage"), taints TAINT_USER (LOCKDEP_STILL_OK) and calls
 * follow_pfn.
 * @kernel mm/memory.c:unsafe_follow_pfn (v5.13 only in the supported versions:
 *   69bacee7f9ad "mm: Add unsafe_follow_pfn", v5.13-rc1; gone from v5.14 per the model's
 *   CONFIG_STRICT_FOLLOW_PFN range, the removing commit not pinned)
 * Locking: as follow_pfn.
 * Return: { ret, pfn } as follow_pfn.
 */
export function* unsafe_follow_pfn(
  vma: vm_area_struct,
  address: number,
): Op<{ ret: number; pfn: number }> {
  if (!since(5, 13) || since(5, 14))
    absent('unsafe_follow_pfn()', 'it exists from 69bacee7f9ad, v5.13, to v5.13');
  if (currentKernel().config.CONFIG_STRICT_FOLLOW_PFN === true) {
    pr_info('unsafe follow_pfn usage rejected, see CONFIG_STRICT_FOLLOW_PFN');
    return { ret: -EINVAL, pfn: 0 };
  }
  WARN_ONCE(true, 'unsafe follow_pfn usage', 'mm/memory.c:unsafe_follow_pfn');
  add_taint(TAINT_USER, LOCKDEP_STILL_OK);
  const r = yield* follow_pfn(vma, address);
  // pfnsan: as follow_pfn, nothing keeps the pfn valid after the return (R-LEG-3).
  if (!r.ret)
    pfnsan_lease_put(
      pfnsan_lease_get(r.pfn, 1, 'unsafe_follow_pfn', { kind: 'none' }),
      'unsafe_follow_pfn',
    );
  return r;
}

/**
 * follow_phys(vma, address, flags): the protection and physical address of the PTE at
 * address of a VM_IO/VM_PFNMAP VMA.
 * - up to v6.8: FOLL_WRITE in flags requires a writable PTE;
 * - v6.9-v6.11 ("x86/mm/pat: fix VM_PAT handling in COW mappings"): always at
 *   vm_start, no write check, and an entry that vm_normal_folio() finds (a COWed anon
 *   folio) is refused.
 * v6.12 moved it into arch/x86/mm/pat/memtype.c (static, on follow_pfnmap).
 * @kernel mm/memory.c:follow_phys (v5.7-v6.11)
 * Locking: mmap_lock held; takes and drops the PTE lock.
 * Return: { ret: 0 or -EINVAL, prot, paddr }.
 */
export function* follow_phys(
  vma: vm_area_struct,
  address: number,
  flags: number,
): Op<{ ret: number; prot: pgprot_t; paddr: number }> {
  if (since(6, 12)) absent('follow_phys() in mm/memory.c', 'moved into x86 PAT code in v6.12');
  const fail = { ret: -EINVAL, prot: 0, paddr: 0 };
  if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) return fail;
  const at = since(6, 9) ? vma.vm_start : address;
  const r = yield* follow_pte(since(6, 10) ? vma : vma.vm_mm, at);
  if (r.ret) return fail;
  const pte = ptep_get(r.ptep!);
  let ret = { ret: 0, prot: pte_pgprot(pte), paddr: pte_pfn(pte) * PAGE_SIZE };
  if (since(6, 9)) {
    /* Never return PFNs of anon folios in COW mappings. */
    if (vm_normal_folio(vma, at, pte)) ret = fail;
  } else if (flags & FOLL_WRITE && !pte_write(pte)) ret = fail;
  yield* pte_unmap_unlock(r.ptep!, r.ptl!);
  return ret;
}

/**
 * pfnsan (model only): generic_access_phys (v5.12+) ioremaps the pfn after the lookup's
 * window, then repeats the lookup and drops the mapping unless the entry is unchanged;
 * nothing is accessed through an unverified mapping. A lease around that one ioremap
 * says so (the re-check is its guarantee); v5.11 and older do not re-check, and their
 * ioremap of follow_phys()'s address is a stale use.
 */
function revalidated_lease(pfn: number): pfnsan_lease {
  return pfnsan_lease_get(pfn, 1, 'generic_access_phys', {
    kind: 'window',
    end: 'generic_access_phys',
  });
}

/**
 * generic_access_phys(vma, addr, buf, len, write): vm_ops->access for iomem mappings,
 * used by __access_remote_vm (ptrace, /proc/pid/mem) when GUP fails (R-CALL-1). Reads or
 * writes `len` bytes at addr through a temporary ioremap of the mapped pfn.
 * - v6.12+: follow_pfnmap_start fails: -EINVAL; prot, phys and writable are saved and the
 *   lookup ended; a write to a read-only entry is -EINVAL; ioremap failure -ENOMEM; the
 *   lookup is repeated (failure: -EINVAL) and if prot, phys or writable changed the
 *   ioremap is dropped and everything restarts; else the copy happens under the entry's
 *   lock and `len` is returned.
 * - v5.12-v6.11 (96667f8a4382 "mm: Close race in generic_access_phys"): the same with
 *   follow_pte and pte_same; a VMA without VM_IO|VM_PFNMAP is -EINVAL first.
 * - up to v5.11: one follow_phys (write check included), ioremap, copy, iounmap: the pte
 *   can change between the lookup and the copy.
 * @kernel mm/memory.c:generic_access_phys (all versions, CONFIG_HAVE_IOREMAP_PROT)
 * Locking: mmap_lock held for read (__access_remote_vm); takes the entry's lock.
 * Return: len, -EINVAL, -ENOMEM.
 */
export function* generic_access_phys(
  vma: vm_area_struct,
  addr: number,
  buf: Uint8Array,
  len: number,
  write: number,
): Op<number> {
  const offset = addr % PAGE_SIZE;
  const copy = (maddr: number): void => {
    if (write) memcpy_toio(maddr + offset, buf, len);
    else memcpy_fromio(buf, maddr + offset, len);
  };

  if (!since(5, 12)) {
    const r = yield* follow_phys(vma, addr, write);
    if (r.ret) return -EINVAL;
    const maddr = ioremap_prot(r.paddr, PAGE_ALIGN(len + offset), r.prot);
    if (maddr === null) return -ENOMEM;
    copy(maddr);
    iounmap(maddr);
    return len;
  }

  if (!since(6, 12)) {
    if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) return -EINVAL;
    const target = since(6, 10) ? vma : vma.vm_mm;
    for (;;) {
      /* retry: */
      let r = yield* follow_pte(target, addr);
      if (r.ret) return -EINVAL;
      const pte = ptep_get(r.ptep!);
      yield* pte_unmap_unlock(r.ptep!, r.ptl!);
      const prot = pte_pgprot(pte);
      const phys_addr = pte_pfn(pte) * PAGE_SIZE;
      if (write & FOLL_WRITE && !pte_write(pte)) return -EINVAL;
      const lease = revalidated_lease(pte_pfn(pte));
      const maddr = ioremap_prot(phys_addr, PAGE_ALIGN(len + offset), prot);
      pfnsan_lease_put(lease, 'generic_access_phys');
      if (maddr === null) return -ENOMEM;
      r = yield* follow_pte(target, addr);
      if (r.ret) {
        iounmap(maddr);
        return -EINVAL;
      }
      if (pte !== ptep_get(r.ptep!)) {
        yield* pte_unmap_unlock(r.ptep!, r.ptl!);
        iounmap(maddr);
        continue;
      }
      copy(maddr);
      yield* pte_unmap_unlock(r.ptep!, r.ptl!);
      iounmap(maddr);
      return len;
    }
  }

  const args = follow_pfnmap_args_init(vma, addr);
  for (;;) {
    /* retry: */
    if (yield* follow_pfnmap_start(args)) return -EINVAL;
    const prot = args.pgprot;
    const phys_addr = args.pfn * PAGE_SIZE;
    const writable = args.writable;
    yield* follow_pfnmap_end(args);

    if (write & FOLL_WRITE && !writable) return -EINVAL;

    const lease = revalidated_lease(phys_addr / PAGE_SIZE);
    const maddr = ioremap_prot(phys_addr, PAGE_ALIGN(len + offset), prot);
    pfnsan_lease_put(lease, 'generic_access_phys');
    if (maddr === null) return -ENOMEM;

    if (yield* follow_pfnmap_start(args)) {
      iounmap(maddr);
      return -EINVAL;
    }
    if (prot !== args.pgprot || phys_addr !== args.pfn * PAGE_SIZE || writable !== args.writable) {
      yield* follow_pfnmap_end(args);
      iounmap(maddr);
      continue;
    }
    copy(maddr);
    yield* follow_pfnmap_end(args);
    iounmap(maddr);
    return len;
  }
}
