/**
 * mlock(2), mlock2(2) and munlock(2): the VMA side (VM_LOCKED / VM_LOCKONFAULT on the
 * VMAs of the range, mm->locked_vm, RLIMIT_MEMLOCK) and the population after it
 * (__mm_populate in mm/gup.ts) with the error mapping mlock reports.
 *
 * Rules (R-VMA-1, R-VMA-2, O-2, O-4, O-5): VM_LOCKED is never set on VM_SPECIAL VMAs
 * (VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_DONTEXPAND), hugetlb, secretmem (v5.14+; already
 * VM_LOCKED at mmap) or VM_DROPPABLE (v6.11+) VMAs, and such VMAs do not count in
 * locked_vm; __mm_populate skips VM_IO|VM_PFNMAP VMAs silently (so mlock of a [vvar]-like
 * mapping returns 0), while a GUP failure (-EFAULT: PROT_NONE, secretmem) is reported as
 * -ENOMEM and -ENOMEM as -EAGAIN.
 *
 * Left out: the page side of mlock (PG_mlocked, the unevictable LRU, mlock_vma_pages_range's
 * page-table walk and munlock of pages), VMA merging after a flag change (the split
 * pieces stay separate), mlockall/munlockall, MCL_* flags, the per-VMA lock
 * (vma_start_write), lru_add_drain.
 *
 * @kernel mm/mlock.c (v5.7+; gates at the functions)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
import {
  VM_DROPPABLE,
  VM_HUGETLB,
  VM_LOCKED,
  VM_LOCKONFAULT,
  VM_SPECIAL,
} from '../include/linux/mm.js';
import { EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { mmap_write_lock, mmap_write_unlock } from '../include/linux/mmap_lock.js';
import { get_current } from '../include/linux/sched.js';
import { VM_BUG_ON } from '../kernel/panic.js';
import { since } from '../version.js';
import { find_vma, vmas_in_range } from './vma.js';
import { split_vma } from './mmap.js';
import { __mm_populate, vma_is_secretmem } from './gup.js';

/** mlock2() flag (include/uapi/asm-generic/mman-common.h). */
export const MLOCK_ONFAULT = 0x01;

/** VM_LOCKED_MASK: VM_LOCKED | VM_LOCKONFAULT (VM_LOCKED_CLEAR_MASK = ~it before v6.3). */
export const VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT;

/**
 * can_do_mlock(): a non-zero RLIMIT_MEMLOCK, or CAP_IPC_LOCK.
 * @kernel mm/mlock.c:can_do_mlock (all versions)
 */
export function can_do_mlock(): boolean {
  const t = get_current();
  if (t.rlimit_memlock !== 0) return true;
  return t.caps.has('CAP_IPC_LOCK');
}

/**
 * __mlock_posix_error_return(retval): mlock's POSIX errors for what GUP reports: -EFAULT
 * (the range cannot be faulted in) becomes -ENOMEM, -ENOMEM becomes -EAGAIN.
 * @kernel mm/mlock.c:__mlock_posix_error_return (all versions)
 */
export function __mlock_posix_error_return(retval: number): number {
  if (retval === -EFAULT) return -ENOMEM;
  if (retval === -ENOMEM) return -EAGAIN;
  return retval;
}

/**
 * mlock_fixup(mm, vma, start, end, newflags): gives [start, end) of vma the new lock
 * flags, splitting the VMA at the edges, and accounts mm->locked_vm. Nothing is done for
 * VMAs that must never be locked: VM_SPECIAL, hugetlb, the gate VMA (none in the model),
 * DAX (none in the model), secretmem (v5.14+, 1507f51255c9) and VM_DROPPABLE (v6.11+,
 * 9651fcedf7b9) — their flags are left as they are and they are not counted.
 * @kernel mm/mlock.c:mlock_fixup (all versions; vma_modify_flags v6.7+, split_vma before)
 * Locking: mmap_lock held for write.
 * Return: 0 or the split's -errno (-ENOMEM at vm.max_map_count).
 */
export function* mlock_fixup(
  mm: mm_struct,
  vma: vm_area_struct,
  start: number,
  end: number,
  newflags: bigint,
): Op<number> {
  const oldflags = vma.vm_flags;
  if (
    newflags === oldflags ||
    oldflags & VM_SPECIAL ||
    oldflags & VM_HUGETLB ||
    vma_is_secretmem(vma) ||
    (since(6, 11) && oldflags & VM_DROPPABLE)
  )
    // don't set VM_LOCKED or VM_LOCKONFAULT and don't count
    return 0;
  if (start !== vma.vm_start) {
    const err = yield* split_vma(mm, vma, start, true);
    if (err) return err;
  }
  if (end !== vma.vm_end) {
    const err = yield* split_vma(mm, vma, end, false);
    if (err) return err;
  }
  // Keep track of amount of locked VM.
  let nr_pages = (end - start) / PAGE_SIZE;
  if (!(newflags & VM_LOCKED)) nr_pages = -nr_pages;
  else if (oldflags & VM_LOCKED) nr_pages = 0;
  mm.locked_vm += nr_pages;
  // vm_flags is protected by the mmap_lock held in write mode. (mlock_vma_pages_range /
  // munlock of the pages is not modelled.)
  vma.vm_flags = newflags;
  return 0;
}

/**
 * apply_vma_lock_flags(start, len, flags): sets the lock flags on every VMA of
 * [start, start+len); the range must be mapped without holes: start outside any VMA, or a
 * gap after some VMAs were changed, is -ENOMEM (the VMAs already changed stay changed).
 * @kernel mm/mlock.c:apply_vma_lock_flags (all versions)
 * Locking: mmap_lock held for write.
 * Return: 0, -EINVAL (wrap), -ENOMEM.
 */
export function* apply_vma_lock_flags(start: number, len: number, flags: bigint): Op<number> {
  const mm = get_current().mm!;
  VM_BUG_ON(start % PAGE_SIZE !== 0, 'VM_BUG_ON(offset_in_page(start))');
  VM_BUG_ON(len % PAGE_SIZE !== 0, 'VM_BUG_ON(len != PAGE_ALIGN(len))');
  const end = start + len;
  if (end < start || end >= 2 ** 64) return -EINVAL;
  if (end === start) return 0;
  let vma = find_vma(mm, start);
  if (!vma || vma.vm_start > start) return -ENOMEM;
  let nstart = start;
  let tmp = vma.vm_start;
  while (vma && vma.vm_start < end) {
    if (vma.vm_start !== tmp) return -ENOMEM;
    const newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | flags;
    // Here we know that vma->vm_start <= nstart < vma->vm_end.
    tmp = Math.min(vma.vm_end, end);
    const error = yield* mlock_fixup(mm, vma, nstart, tmp, newflags);
    if (error) return error;
    // vma_iter_end(): the end of the VMA just handled (beyond `end` when mlock_fixup
    // left a VM_SPECIAL VMA unsplit).
    tmp = vma.vm_end;
    nstart = tmp;
    vma = find_vma(mm, nstart);
  }
  if (tmp < end) return -ENOMEM;
  return 0;
}

/**
 * count_mm_mlocked_page_nr(mm, start, len): pages of [start, start+len) already in
 * VM_LOCKED VMAs (they do not count again against RLIMIT_MEMLOCK).
 * @kernel mm/mlock.c:count_mm_mlocked_page_nr (v4.14+)
 */
function count_mm_mlocked_page_nr(mm: mm_struct, start: number, len: number): number {
  const end = start + len;
  let count = 0;
  for (const v of vmas_in_range(mm, start, end)) {
    if (!(v.vm_flags & VM_LOCKED)) continue;
    count += Math.min(v.vm_end, end) - Math.max(v.vm_start, start);
  }
  return count / PAGE_SIZE;
}

/**
 * do_mlock(start, len, flags): mlock/mlock2 for current: -EPERM without a memlock
 * allowance; the range rounded to pages; RLIMIT_MEMLOCK checked (pages already locked in
 * the range not counted twice) unless CAP_IPC_LOCK (-ENOMEM); the VMA flags set under
 * mmap_lock; then __mm_populate, whose error goes through __mlock_posix_error_return
 * (-EFAULT ⇒ -ENOMEM, -ENOMEM ⇒ -EAGAIN).
 * @kernel mm/mlock.c:do_mlock (all versions)
 * Locking: takes mmap_lock for write, then (in __mm_populate) for read.
 * Return: 0 or -errno.
 * Left out: mmap_write_lock_killable's -EINTR.
 */
export function* do_mlock(start: number, len: number, flags: bigint): Op<number> {
  const cur = get_current();
  const mm = cur.mm!;
  if (!can_do_mlock()) return -EPERM;
  len = Math.ceil((len + (start % PAGE_SIZE)) / PAGE_SIZE) * PAGE_SIZE;
  start = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  const lock_limit = Math.floor(cur.rlimit_memlock / PAGE_SIZE);
  let locked = len / PAGE_SIZE;
  yield* mmap_write_lock(mm);
  locked += mm.locked_vm;
  const cap = cur.caps.has('CAP_IPC_LOCK');
  if (locked > lock_limit && !cap) {
    // The regions requested may intersect with previously mlocked areas, which are already
    // counted in mm->locked_vm.
    locked -= count_mm_mlocked_page_nr(mm, start, len);
  }
  let error = -ENOMEM;
  // check against resource limits
  if (locked <= lock_limit || cap) error = yield* apply_vma_lock_flags(start, len, flags);
  yield* mmap_write_unlock(mm);
  if (error) return error;
  error = yield* __mm_populate(start, len, false);
  if (error) return __mlock_posix_error_return(error);
  return 0;
}

/**
 * mlock(start, len): do_mlock with VM_LOCKED.
 * @kernel mm/mlock.c:SYSCALL_DEFINE2(mlock) (all versions)
 */
export function mlock(start: number, len: number): Op<number> {
  return do_mlock(start, len, VM_LOCKED);
}

/**
 * mlock2(start, len, flags): MLOCK_ONFAULT adds VM_LOCKONFAULT (only present pages are
 * populated); other flags are -EINVAL.
 * @kernel mm/mlock.c:SYSCALL_DEFINE3(mlock2) (all versions)
 */
export function* mlock2(start: number, len: number, flags: number): Op<number> {
  if (flags & ~MLOCK_ONFAULT) return -EINVAL;
  let vm_flags = VM_LOCKED;
  if (flags & MLOCK_ONFAULT) vm_flags |= VM_LOCKONFAULT;
  return yield* do_mlock(start, len, vm_flags);
}

/**
 * munlock(start, len): clears the lock flags of the range (and un-accounts locked_vm).
 * @kernel mm/mlock.c:SYSCALL_DEFINE2(munlock) (all versions)
 * Locking: takes mmap_lock for write.
 * Return: 0 or -errno (apply_vma_lock_flags').
 */
export function* munlock(start: number, len: number): Op<number> {
  const mm = get_current().mm!;
  len = Math.ceil((len + (start % PAGE_SIZE)) / PAGE_SIZE) * PAGE_SIZE;
  start = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  yield* mmap_write_lock(mm);
  const ret = yield* apply_vma_lock_flags(start, len, 0n);
  yield* mmap_write_unlock(mm);
  return ret;
}
