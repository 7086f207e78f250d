/**
 * madvise(2): the range walk (holes give -ENOMEM after the rest is done), MADV_DONTNEED
 * and MADV_DONTNEED_LOCKED (zap the range, refaults get fresh pages or the zero page),
 * and the VMA-flag behaviours MADV_DOFORK/DONTFORK (VM_DONTCOPY), DODUMP/DONTDUMP,
 * WIPEONFORK/KEEPONFORK, NORMAL/RANDOM/SEQUENTIAL.
 *
 * Rules the model follows (R-VMA-1, O-2, O-3, O-10):
 * - MADV_DONTNEED refuses VM_PFNMAP and VM_LOCKED VMAs (-EINVAL; DONTNEED_LOCKED allows
 *   VM_LOCKED) and, before v5.18, VM_HUGETLB; a VM_MIXEDMAP range is zapped (its special
 *   entries are cleared, so a VMA without ->fault then SIGBUSes).
 * - MADV_DOFORK on VM_IO is -EINVAL; MADV_DODUMP on a VM_SPECIAL VMA is -EINVAL.
 * - Pins never make madvise fail: zapping a pinned page only drops the mapping's
 *   reference.
 *
 * MADV_POPULATE_READ/WRITE (v5.14+) prefault through GUP: faultin_vma_page_range per VMA
 * of the walk (v5.14-v6.8), faultin_page_range with FOLL_MADV_POPULATE over the range
 * (v6.9+); a VMA GUP refuses is -EINVAL, a hole -ENOMEM (O-2, O-4).
 *
 * Behaviours that are valid but not modelled (WILLNEED, FREE, REMOVE, COLD, PAGEOUT,
 * MERGEABLE, HUGEPAGE, COLLAPSE, GUARD_*, HWPOISON, SOFT_OFFLINE) throw a model error
 * naming the behaviour before any lock is taken.
 *
 * Left out: userfaultfd_remove, anon_vma_name, VMA merging after a flag change (the
 * split pieces stay separate), the per-VMA lock (v6.x madvise_lock), CONFIG_PT_RECLAIM
 * (reclaim_pt, v6.14+), KSM is taken as built in (CONFIG_KSM=y).
 *
 * @kernel mm/madvise.c (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
import {
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WIPEONFORK,
} from '../include/linux/mm.js';
import { EAGAIN, EFAULT, EHWPOISON, EINTR, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../include/linux/mmap_lock.js';
import { since } from '../version.js';
import { find_vma, vma_lookup } from './vma.js';
import { faultin_page_range, faultin_vma_page_range, type int_ptr } from './gup.js';
import { currentKernel } from '../kernel/kernel.js';
import { pr_warn } from '../kernel/printk.js';
import { split_vma } from './mmap.js';
import { zap_page_range_single, type zap_details } from './memory.zap.js';
import { hstate_vma } from './hugetlb.js';
import { huge_page_size } from './hugetlb.pool.js';

export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
export const MADV_COLLAPSE = 25;
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

/** The behaviours this model implements. */
const MODELLED = new Set([
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_DONTFORK,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DODUMP,
  MADV_WIPEONFORK,
  MADV_KEEPONFORK,
]);

/**
 * madvise_behavior_valid(behavior): whether the run's kernel knows the behaviour.
 * COLD/PAGEOUT v5.4, POPULATE_* v5.14, DONTNEED_LOCKED v5.18, COLLAPSE v6.1, GUARD_*
 * v6.13; MERGEABLE with CONFIG_KSM, HUGEPAGE/NOHUGEPAGE/COLLAPSE with
 * CONFIG_TRANSPARENT_HUGEPAGE, HWPOISON/SOFT_OFFLINE with CONFIG_MEMORY_FAILURE (not
 * modelled: invalid here).
 * @kernel mm/madvise.c:madvise_behavior_valid (v5.7+)
 * Return: true or false.
 */
export function madvise_behavior_valid(behavior: number): boolean {
  switch (behavior) {
    case MADV_DOFORK:
    case MADV_DONTFORK:
    case MADV_NORMAL:
    case MADV_SEQUENTIAL:
    case MADV_RANDOM:
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_FREE:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_MERGEABLE:
    case MADV_UNMERGEABLE:
    case MADV_DONTDUMP:
    case MADV_DODUMP:
    case MADV_WIPEONFORK:
    case MADV_KEEPONFORK:
      return true;
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
      return true;
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
      return since(5, 14);
    case MADV_DONTNEED_LOCKED:
      return since(5, 18);
    case MADV_COLLAPSE:
      return since(6, 1);
    case MADV_GUARD_INSTALL:
    case MADV_GUARD_REMOVE:
      return since(6, 13);
    default:
      return false;
  }
}

/**
 * madvise_need_mmap_write(behavior): whether the behaviour changes VMAs (mmap_lock for
 * write) or only walks them (read).
 * @kernel mm/madvise.c:madvise_need_mmap_write (v5.7+)
 */
function madvise_need_mmap_write(behavior: number): boolean {
  switch (behavior) {
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_FREE:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_COLLAPSE:
    case MADV_GUARD_INSTALL:
    case MADV_GUARD_REMOVE:
      return false;
    default:
      return true;
  }
}

/**
 * madvise_dontneed_free_valid_vma(vma, start, end, behavior): DONTNEED may not touch
 * VM_PFNMAP VMAs, nor VM_LOCKED ones unless MADV_DONTNEED_LOCKED. Before v5.18
 * (can_madv_lru_vma) VM_HUGETLB VMAs were refused too; from v5.18 a hugetlb VMA takes
 * MADV_DONTNEED(_LOCKED) only (not MADV_FREE) at a huge-page-aligned start, and *end is
 * rounded to a huge page: up until v6.3, down since ("mm,madvise,hugetlb: fix unexpected
 * data loss with MADV_DONTNEED on hugetlbfs", Rik van Riel, v6.3).
 * @kernel mm/madvise.c:madvise_dontneed_free_valid_vma (v5.18+, with 90e7e7f5ef3f "mm:
 *   enable MADV_DONTNEED for hugetlb mappings"; can_madv_lru_vma before)
 * Return: true when the VMA may be zapped.
 */
export function madvise_dontneed_free_valid_vma(
  vma: vm_area_struct,
  start: number,
  end: { value: number },
  behavior: number,
): boolean {
  if (!since(5, 18)) return !(vma.vm_flags & (VM_LOCKED | VM_HUGETLB | VM_PFNMAP));
  if (!(vma.vm_flags & VM_HUGETLB)) {
    let forbidden = VM_PFNMAP;
    if (behavior !== MADV_DONTNEED_LOCKED) forbidden |= VM_LOCKED;
    return !(vma.vm_flags & forbidden);
  }
  if (behavior !== MADV_DONTNEED && behavior !== MADV_DONTNEED_LOCKED) return false;
  const hsz = huge_page_size(hstate_vma(vma));
  if (start % hsz !== 0) return false;
  // Madvise callers expect the length to be rounded up to PAGE_SIZE boundaries, and may
  // be unaware that this VMA uses huge pages. Avoid unexpected data loss by rounding
  // down the number of huge pages freed (v6.3+; ALIGN up before).
  end.value = since(6, 3) ? Math.floor(end.value / hsz) * hsz : Math.ceil(end.value / hsz) * hsz;
  return true;
}

/**
 * madvise_dontneed_single_vma(vma, start, end): zaps the range (MMU_NOTIFY_CLEAR), COWed
 * pages included.
 * @kernel mm/madvise.c:madvise_dontneed_single_vma (v5.7+; zap_page_range before v6.3,
 *   the same zap for a range inside one VMA; reclaim_pt/even_cows details v6.14+)
 * Locking: mmap_lock held for read.
 * Return: 0.
 */
function* madvise_dontneed_single_vma(vma: vm_area_struct, start: number, end: number): Op<number> {
  // The PT_RECLAIM series (v6.14) passes { reclaim_pt, even_cows }: the same zap, with
  // empty PTE tables freed under CONFIG_PT_RECLAIM (not modelled).
  const details: zap_details | null = since(6, 14) ? { even_cows: true } : null;
  yield* zap_page_range_single(vma, start, end - start, details);
  return 0;
}

/**
 * madvise_dontneed_free(vma, prev, start, end, behavior): the VMA check, then the zap.
 * @kernel mm/madvise.c:madvise_dontneed_free (v5.7+)
 * Locking: mmap_lock held for read.
 * Return: 0 or -EINVAL.
 */
function* madvise_dontneed_free(
  vma: vm_area_struct,
  start: number,
  end: number,
  behavior: number,
): Op<number> {
  const endp = { value: end };
  if (!madvise_dontneed_free_valid_vma(vma, start, endp, behavior)) return -EINVAL;
  end = endp.value;
  if (start === end) return 0;
  return yield* madvise_dontneed_single_vma(vma, start, end);
}

/**
 * madvise_update_vma(vma, prev, start, end, new_flags): applies new VMA flags to
 * [start, end), splitting the VMA at the edges first.
 * @kernel mm/madvise.c:madvise_update_vma (v5.17+; inline in madvise_behavior before)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno from the split (-ENOMEM at vm.max_map_count).
 * Left out: vma_merge (the pieces are not merged back with neighbours).
 */
function* madvise_update_vma(
  mm: mm_struct,
  vma: vm_area_struct,
  start: number,
  end: number,
  new_flags: bigint,
): Op<number> {
  if (new_flags === vma.vm_flags) return 0;
  if (start !== vma.vm_start) {
    const err = yield* split_vma(mm, vma, start, true);
    if (err) return err;
  }
  if (end !== vma.vm_end) {
    const err = yield* split_vma(mm, vma, end, false);
    if (err) return err;
  }
  // vm_flags is protected by the mmap_lock held in write mode.
  vma.vm_flags = new_flags;
  return 0;
}

/**
 * madvise_vma_behavior(vma, prev, start, end, behavior): one VMA's share of the call.
 * @kernel mm/madvise.c:madvise_vma_behavior (v5.17+; madvise_vma/madvise_behavior before)
 * Locking: mmap_lock held (read or write per madvise_need_mmap_write).
 * Return: 0 or -errno; -ENOMEM from a split is reported as -EAGAIN.
 */
function* madvise_vma_behavior(
  mm: mm_struct,
  vma: vm_area_struct,
  start: number,
  end: number,
  behavior: number,
): Op<number> {
  let new_flags = vma.vm_flags;
  switch (behavior) {
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
      return yield* madvise_dontneed_free(vma, start, end, behavior);
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
      // v5.14-v6.8 only: v6.9+ populates outside the VMA walk (do_madvise).
      return yield* madvise_populate_vma(mm, vma, start, end, behavior);
    case MADV_NORMAL:
      new_flags = new_flags & ~VM_RAND_READ & ~VM_SEQ_READ;
      break;
    case MADV_SEQUENTIAL:
      new_flags = (new_flags & ~VM_RAND_READ) | VM_SEQ_READ;
      break;
    case MADV_RANDOM:
      new_flags = (new_flags & ~VM_SEQ_READ) | VM_RAND_READ;
      break;
    case MADV_DONTFORK:
      new_flags |= VM_DONTCOPY;
      break;
    case MADV_DOFORK:
      if (vma.vm_flags & VM_IO) return -EINVAL;
      new_flags &= ~VM_DONTCOPY;
      break;
    case MADV_WIPEONFORK:
      // MADV_WIPEONFORK is only supported on anonymous memory.
      if (vma.vm_file || vma.vm_flags & VM_SHARED) return -EINVAL;
      new_flags |= VM_WIPEONFORK;
      break;
    case MADV_KEEPONFORK:
      new_flags &= ~VM_WIPEONFORK;
      break;
    case MADV_DONTDUMP:
      new_flags |= VM_DONTDUMP;
      break;
    case MADV_DODUMP:
      if (!(vma.vm_flags & VM_HUGETLB) && new_flags & VM_SPECIAL) return -EINVAL;
      new_flags &= ~VM_DONTDUMP;
      break;
    default:
      throw new Error(`madvise behaviour ${behavior} is not modelled`);
  }
  let error = yield* madvise_update_vma(mm, vma, start, end, new_flags);
  // madvise() returns EAGAIN if kernel resources are temporarily unavailable.
  if (error === -ENOMEM) error = -EAGAIN;
  return error;
}

/**
 * madvise_populate_error(pages): the errno MADV_POPULATE_(READ|WRITE) reports for a
 * failed population: -EINTR, -EINVAL (incompatible mapping or permissions: a VMA that
 * check_vma_flags refuses, O-2, O-4), -EHWPOISON, -EFAULT (VM_FAULT_SIGBUS/SIGSEGV) as
 * they are; -ENOMEM (no VMA, v6.9+, or out of memory) too; anything else warns once
 * ("madvise_populate: unhandled return value: %ld") and becomes -ENOMEM.
 * @kernel mm/madvise.c:madvise_populate (the switch; v5.14+)
 */
function madvise_populate_error(pages: number): number {
  switch (pages) {
    case -EINTR:
    case -EINVAL:
    case -EHWPOISON:
    case -EFAULT:
    case -ENOMEM:
      return pages;
    default: {
      const k = currentKernel();
      if (!k.onceFired.has('pr_warn_once:madvise_populate')) {
        k.onceFired.add('pr_warn_once:madvise_populate');
        pr_warn(`madvise_populate: unhandled return value: ${pages}`);
      }
      return -ENOMEM;
    }
  }
}

/**
 * madvise_populate(mm, start, end, behavior): prefaults [start, end) readable
 * (MADV_POPULATE_READ) or writable (MADV_POPULATE_WRITE) with faultin_page_range, retaking
 * mmap_lock whenever a fault dropped it, until done or an error (see
 * madvise_populate_error).
 * @kernel mm/madvise.c:madvise_populate (v6.9+, 631426ba1d45 "mm/madvise: make
 *   MADV_POPULATE_(READ|WRITE) handle VM_FAULT_RETRY properly")
 * Locking: mmap_lock held for read on entry and on return.
 * Return: 0 or -errno.
 */
function* madvise_populate(
  mm: mm_struct,
  start: number,
  end: number,
  behavior: number,
): Op<number> {
  const write = behavior === MADV_POPULATE_WRITE;
  const locked: int_ptr = { value: 1 };
  while (start < end) {
    // Populate (prefault) page tables readable/writable.
    const pages = yield* faultin_page_range(mm, start, end, write, locked);
    if (!locked.value) {
      yield* mmap_read_lock(mm);
      locked.value = 1;
    }
    if (pages < 0) return madvise_populate_error(pages);
    start += pages * PAGE_SIZE;
  }
  return 0;
}

/**
 * madvise_populate (v5.14-v6.8 form, here madvise_populate_vma): the same for the part
 * of the range inside one VMA of the walk, with faultin_vma_page_range; after a dropped
 * lock the VMA is looked up again (none: -ENOMEM).
 * @kernel mm/madvise.c:madvise_populate (v5.14-v6.8, 4ca9b3859dac)
 * Locking: mmap_lock held for read on entry and on return.
 * Return: 0 or -errno.
 */
function* madvise_populate_vma(
  mm: mm_struct,
  vma0: vm_area_struct,
  start: number,
  end: number,
  behavior: number,
): Op<number> {
  const write = behavior === MADV_POPULATE_WRITE;
  const locked: int_ptr = { value: 1 };
  let vma: vm_area_struct | null = vma0;
  while (start < end) {
    // We might have temporarily dropped the lock. For example, our VMA might have been
    // split.
    if (!vma || start >= vma.vm_end) {
      vma = vma_lookup(mm, start);
      if (!vma) return -ENOMEM;
    }
    const tmp_end = Math.min(end, vma.vm_end);
    // Populate (prefault) page tables readable/writable.
    const pages = yield* faultin_vma_page_range(vma, start, tmp_end, write, locked);
    if (!locked.value) {
      yield* mmap_read_lock(mm);
      locked.value = 1;
      vma = null;
    }
    if (pages < 0) return madvise_populate_error(pages);
    start += pages * PAGE_SIZE;
  }
  return 0;
}

/**
 * madvise_walk_vmas(mm, start, end, behavior, visit): visits each VMA piece of
 * [start, end); unmapped holes are skipped and reported as -ENOMEM at the end, an error
 * from a VMA stops the walk at once. No VMA at or after start is -ENOMEM at once.
 * @kernel mm/madvise.c:madvise_walk_vmas (v5.17+; the same loop inline in do_madvise
 *   before)
 * Locking: mmap_lock held.
 * Return: 0, the first VMA error, or -ENOMEM for a hole.
 */
function* madvise_walk_vmas(
  mm: mm_struct,
  start: number,
  end: number,
  behavior: number,
): Op<number> {
  let vma = find_vma(mm, start);
  let unmapped_error = 0;
  for (;;) {
    // Still start < end.
    if (!vma) return -ENOMEM;
    // Here start < (end|vma->vm_end).
    if (start < vma.vm_start) {
      unmapped_error = -ENOMEM;
      start = vma.vm_start;
      if (start >= end) break;
    }
    // Here vma->vm_start <= start < (end|vma->vm_end).
    const tmp = Math.min(vma.vm_end, end);
    const error = yield* madvise_vma_behavior(mm, vma, start, tmp, behavior);
    if (error) return error;
    start = tmp;
    if (start >= end) break;
    vma = find_vma(mm, start);
  }
  return unmapped_error;
}

/** x modulo 2^64, for unsigned long sums of model numbers. */
function wrap64(x: number): number {
  return x >= 2 ** 64 ? x - 2 ** 64 : x;
}

/**
 * do_madvise(mm, start, len_in, behavior): madvise(2). Unknown behaviour, unaligned
 * start, or a length that wraps is -EINVAL; an empty range is 0; then the walk under
 * mmap_lock (read for MADV_DONTNEED, write for flag changes such as MADV_DOFORK).
 * @kernel mm/madvise.c:do_madvise (v5.7+; mm argument v5.10+, current->mm before)
 * Locking: takes and releases mmap_lock.
 * Return: 0 or -errno (see madvise_walk_vmas).
 */
export function* do_madvise(
  mm: mm_struct,
  start: number,
  len_in: number,
  behavior: number,
): Op<number> {
  if (!madvise_behavior_valid(behavior)) return -EINVAL;
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  // Unsigned long arithmetic: PAGE_ALIGN and start + len wrap at 2^64.
  const len = wrap64(Math.ceil(len_in / PAGE_SIZE) * PAGE_SIZE);
  // Check to see whether len was rounded up from small -ve to zero.
  if (len_in && !len) return -EINVAL;
  const end = wrap64(start + len);
  if (end < start) return -EINVAL;
  if (end === start) return 0;
  if (behavior === MADV_POPULATE_READ || behavior === MADV_POPULATE_WRITE) {
    // MADV_POPULATE_(READ|WRITE) takes mmap_lock for read (madvise_need_mmap_write).
    // v6.9+ (631426ba1d45): madvise_populate() over the whole range; before, per VMA from
    // the walk (madvise_vma_behavior -> madvise_populate_vma).
    yield* mmap_read_lock(mm);
    const error = since(6, 9)
      ? yield* madvise_populate(mm, start, end, behavior)
      : yield* madvise_walk_vmas(mm, start, end, behavior);
    yield* mmap_read_unlock(mm);
    return error;
  }
  if (!MODELLED.has(behavior)) throw new Error(`madvise behaviour ${behavior} is not modelled`);
  const write = madvise_need_mmap_write(behavior);
  if (write) yield* mmap_write_lock(mm);
  else yield* mmap_read_lock(mm);
  const error = yield* madvise_walk_vmas(mm, start, end, behavior);
  if (write) yield* mmap_write_unlock(mm);
  else yield* mmap_read_unlock(mm);
  return error;
}
