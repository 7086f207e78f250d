/**
 * process_vm_readv(2) / process_vm_writev(2): copies between the caller's buffers and
 * another process's memory. The remote pages are pinned a batch at a time with
 * pin_user_pages_remote (FOLL_PIN|FOLL_TOUCH|FOLL_REMOTE, plus FOLL_WRITE for writev)
 * under the target's mmap_lock, copied with the lock dropped (the local side may fault),
 * and unpinned, dirtied first for writev (unpin_user_pages_dirty_lock).
 *
 * Counting: a remote segment whose pin fails stops the whole call with -EFAULT unless
 * bytes were already copied, in which case the count so far is returned; a short copy to
 * or from the local buffers is -EFAULT the same way.
 *
 * Left out: compat iovecs, the copy of the iovec arrays from user memory (the arrays'
 * contents are passed), kmalloc failures of the page array, ptrace credentials
 * (mm_access grants).
 *
 * @kernel mm/process_vm_access.c:process_vm_rw_pages, process_vm_rw_single_vec,
 *   process_vm_rw_core, process_vm_rw (all versions; pin_user_pages_remote since v5.6,
 *   its locked argument v5.9+)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct, page } from '../include/linux/mm_types.js';
import { get_current } from '../include/linux/sched.js';
import {
  ITER_DEST,
  ITER_SOURCE,
  iov_iter_count,
  type iov_iter,
  type iovec,
} from '../include/linux/uio.js';
import { FOLL_WRITE } from '../include/linux/mm.js';
import { EACCES, EFAULT, EINVAL, EPERM, ESRCH } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { copy_page_from_iter, copy_page_to_iter, import_iovec } from '../lib/iov_iter.js';
import { pin_user_pages_remote, unpin_user_pages_dirty_lock, type int_ptr } from './gup.js';
import { find_get_task_by_vpid } from '../kernel/pid.js';
import { PTRACE_MODE_ATTACH_REALCREDS, mm_access } from '../kernel/fork.access.js';
import { mmput } from '../kernel/fork.js';

/** PVM_MAX_KMALLOC_PAGES * PAGE_SIZE / sizeof(struct page *): pages pinned per batch. */
export const PVM_MAX_USER_PAGES = (2 * PAGE_SIZE) / 8;

/**
 * process_vm_rw_pages(pages, offset, len, iter, vm_write): copies between the pinned
 * pages and the local iterator; a short copy while the iterator still has room is
 * -EFAULT.
 * @kernel mm/process_vm_access.c:process_vm_rw_pages (all versions)
 * Return: 0 or -EFAULT.
 */
function* process_vm_rw_pages(
  pages: page[],
  offset: number,
  len: number,
  iter: iov_iter,
  vm_write: boolean,
): Op<number> {
  let k = 0;
  while (len && iov_iter_count(iter)) {
    const p = pages[k++]!;
    const copy = Math.min(PAGE_SIZE - offset, len);
    const copied = vm_write
      ? yield* copy_page_from_iter(p, offset, copy, iter)
      : yield* copy_page_to_iter(p, offset, copy, iter);
    len -= copied;
    if (copied < copy && iov_iter_count(iter)) return -EFAULT;
    offset = 0;
  }
  return 0;
}

/**
 * process_vm_rw_single_vec(addr, len, iter, process_pages, mm, task, vm_write): one
 * remote segment, PVM_MAX_USER_PAGES pages at a time: pin under mmap_lock (read), copy,
 * unpin (dirtying for writes). A pin that returns ≤ 0 is -EFAULT.
 * @kernel mm/process_vm_access.c:process_vm_rw_single_vec (all versions)
 * Locking: takes and releases mm's mmap_lock around each pin.
 * Return: 0 or -errno.
 */
function* process_vm_rw_single_vec(
  addr: number,
  len: number,
  iter: iov_iter,
  mm: mm_struct,
  vm_write: boolean,
): Op<number> {
  let pa = addr - (addr % PAGE_SIZE);
  let start_offset = addr - pa;
  let rc = 0;
  const flags = vm_write ? FOLL_WRITE : 0;
  if (len === 0) return 0;
  let nr_pages = Math.floor((addr + len - 1) / PAGE_SIZE) - Math.floor(addr / PAGE_SIZE) + 1;
  while (!rc && nr_pages && iov_iter_count(iter)) {
    let pinned_pages = Math.min(nr_pages, PVM_MAX_USER_PAGES);
    const locked: int_ptr = { value: 1 };
    const process_pages: page[] = [];
    // Get the pages we're interested in. We must access remotely because task/mm might
    // not be current/current->mm.
    yield* mmap_read_lock(mm);
    pinned_pages = yield* pin_user_pages_remote(mm, pa, pinned_pages, flags, process_pages, locked);
    if (locked.value) yield* mmap_read_unlock(mm);
    if (pinned_pages <= 0) return -EFAULT;
    const bytes = Math.min(pinned_pages * PAGE_SIZE - start_offset, len);
    rc = yield* process_vm_rw_pages(process_pages, start_offset, bytes, iter, vm_write);
    len -= bytes;
    start_offset = 0;
    nr_pages -= pinned_pages;
    pa += pinned_pages * PAGE_SIZE;
    // If vm_write is set, the pages need to be made dirty:
    yield* unpin_user_pages_dirty_lock(process_pages, pinned_pages, vm_write);
  }
  return rc;
}

/**
 * process_vm_rw_core(pid, iter, rvec, riovcnt, flags, vm_write): nothing to do ⇒ 0; no
 * such pid ⇒ -ESRCH; mm_access failure ⇒ its error (-EACCES becomes -EPERM); then each
 * remote segment in turn until the local iterator is full or an error. Bytes copied win
 * over an error.
 * @kernel mm/process_vm_access.c:process_vm_rw_core (all versions)
 * Return: bytes copied or -errno.
 */
export function* process_vm_rw_core(
  pid: number,
  iter: iov_iter,
  rvec: readonly iovec[],
  _flags: number,
  vm_write: boolean,
): Op<number> {
  let rc = 0;
  let nr_pages = 0;
  let total_len = iov_iter_count(iter);
  for (const v of rvec) {
    if (v.iov_len > 0) {
      const n =
        Math.floor((v.iov_base + v.iov_len - 1) / PAGE_SIZE) -
        Math.floor(v.iov_base / PAGE_SIZE) +
        1;
      nr_pages = Math.max(nr_pages, n);
    }
  }
  if (nr_pages === 0) return 0;
  const task = find_get_task_by_vpid(pid);
  if (!task) return -ESRCH;
  const mm = yield* mm_access(task, PTRACE_MODE_ATTACH_REALCREDS, get_current());
  if (mm === null || typeof mm === 'number') {
    rc = mm === null ? -ESRCH : mm;
    // Explicitly map EACCES to EPERM as EPERM is a more appropriate error code for
    // process_vm_readv/writev
    if (rc === -EACCES) rc = -EPERM;
    return rc;
  }
  for (let i = 0; i < rvec.length && iov_iter_count(iter) && !rc; i++) {
    rc = yield* process_vm_rw_single_vec(rvec[i]!.iov_base, rvec[i]!.iov_len, iter, mm, vm_write);
  }
  // copied = space before - space after
  total_len -= iov_iter_count(iter);
  // If we have managed to copy any data at all then we return the number of bytes
  // copied. Otherwise we return the error code.
  if (total_len) rc = total_len;
  yield* mmput(mm);
  return rc;
}

/**
 * process_vm_rw(pid, lvec, liovcnt, rvec, riovcnt, flags, vm_write): flags must be 0
 * (-EINVAL); the local iovecs are checked (import_iovec: -EFAULT, -EINVAL); an empty
 * local side is 0; then process_vm_rw_core.
 * @kernel mm/process_vm_access.c:process_vm_rw (all versions)
 * Return: bytes copied or -errno.
 */
export function* process_vm_rw(
  pid: number,
  lvec: readonly iovec[],
  rvec: readonly iovec[],
  flags: number,
  vm_write: boolean,
): Op<number> {
  if (flags !== 0) return -EINVAL;
  const iter = import_iovec(vm_write ? ITER_SOURCE : ITER_DEST, lvec);
  if (typeof iter === 'number') return iter;
  if (!iov_iter_count(iter)) return 0;
  if (rvec.length > 1024) return -EINVAL;
  return yield* process_vm_rw_core(pid, iter, rvec, flags, vm_write);
}

/** process_vm_readv(pid, lvec, liovcnt, rvec, riovcnt, flags) */
export function sys_process_vm_readv(
  pid: number,
  lvec: readonly iovec[],
  rvec: readonly iovec[],
  flags: number,
): Op<number> {
  return process_vm_rw(pid, lvec, rvec, flags, false);
}

/** process_vm_writev(pid, lvec, liovcnt, rvec, riovcnt, flags) */
export function sys_process_vm_writev(
  pid: number,
  lvec: readonly iovec[],
  rvec: readonly iovec[],
  flags: number,
): Op<number> {
  return process_vm_rw(pid, lvec, rvec, flags, true);
}
