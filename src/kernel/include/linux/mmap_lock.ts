/**
 * The mmap_lock wrappers (include/linux/mmap_lock.h): every acquire and release of
 * mm->mmap_lock is a scheduling point, named after the wrapper that made it.
 *
 * v5.7 spelled the lock mm->mmap_sem and used down_read()/up_read() on it directly; the
 * wrappers arrived in v5.8 (da1c55f1b272 "mmap locking API: rename mmap_sem to
 * mmap_lock"). The model's mm_struct has one `mmap_lock` field for every version, and
 * these wrappers are the only way model code takes it.
 *
 * @kernel include/linux/mmap_lock.h (v5.8+; the same rw_semaphore as mmap_sem in v5.7)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import { lockdep_assert, VM_BUG_ON, WARN_ON_ONCE } from '../../kernel/panic.js';
import { since } from '../../version.js';
import type { mm_struct } from './mm_types.js';
import { pfnsan_lock_acquired } from '../../mm/pfnsan/pfnsan.js';

/**
 * mmap_read_lock(mm): takes mmap_lock for read, waiting while a writer holds it.
 * @kernel include/linux/mmap_lock.h:mmap_read_lock (v5.8+; down_read(&mm->mmap_sem) before)
 * Locking: returns with mmap_lock held for read.
 * Return: nothing.
 */
export function* mmap_read_lock(mm: mm_struct): Op<void> {
  yield* mm.mmap_lock.downRead('mmap_read_lock');
  pfnsan_lock_acquired(mm.mmap_lock.name);
}

/**
 * mmap_read_unlock(mm)
 * @kernel include/linux/mmap_lock.h:mmap_read_unlock (v5.8+)
 * Locking: mmap_lock held for read on entry; released on return.
 * Return: nothing.
 */
export function mmap_read_unlock(mm: mm_struct): Op<void> {
  return mm.mmap_lock.upRead('mmap_read_unlock');
}

/**
 * mmap_write_lock(mm): takes mmap_lock for write, waiting for readers and writers.
 * @kernel include/linux/mmap_lock.h:mmap_write_lock (v5.8+)
 * Locking: returns with mmap_lock held for write.
 * Return: nothing.
 */
export function* mmap_write_lock(mm: mm_struct): Op<void> {
  yield* mm.mmap_lock.downWrite('mmap_write_lock');
  pfnsan_lock_acquired(mm.mmap_lock.name);
}

/**
 * mmap_write_unlock(mm)
 * @kernel include/linux/mmap_lock.h:mmap_write_unlock (v5.8+)
 * Locking: mmap_lock held for write on entry; released on return.
 * Return: nothing.
 */
export function mmap_write_unlock(mm: mm_struct): Op<void> {
  return mm.mmap_lock.upWrite('mmap_write_unlock');
}

/**
 * mmap_write_downgrade(mm): turns the held write lock into a read lock.
 * @kernel include/linux/mmap_lock.h:mmap_write_downgrade (v5.8+)
 * Locking: write-held on entry; read-held on return.
 * Return: nothing.
 */
export function mmap_write_downgrade(mm: mm_struct): Op<void> {
  return mm.mmap_lock.downgradeWrite('mmap_write_downgrade');
}

/**
 * mmap_read_trylock(mm): takes mmap_lock for read if no writer holds it.
 * @kernel include/linux/mmap_lock.h:mmap_read_trylock (v5.8+; down_read_trylock before)
 * Locking: on true, mmap_lock is held for read.
 * Return: true when taken.
 */
export function mmap_read_trylock(mm: mm_struct): Op<boolean> {
  return mm.mmap_lock.downReadTrylock('mmap_read_trylock');
}

/**
 * mmap_assert_locked(mm): the running thread holds mmap_lock (read or write).
 *
 * Up to v6.9: lockdep_assert_held() (a lockdep WARN when the running thread does not
 * hold it) then VM_BUG_ON_MM(!rwsem_is_locked()) (a BUG with CONFIG_DEBUG_VM when
 * nobody holds it). From "mm: use rwsem assertion macros for mmap_lock" (Matthew
 * Wilcox, merged with the v6.10 mm batch; the mainline hash is not pinned here):
 * rwsem_assert_held() = lockdep_assert_held() with CONFIG_LOCKDEP, else
 * WARN_ON_ONCE(!rwsem_is_locked()).
 * @kernel include/linux/mmap_lock.h:mmap_assert_locked (v5.8+; rwsem_assert_held v6.10+)
 * Locking: none taken.
 * Return: nothing; reports as above.
 */
export function mmap_assert_locked(mm: mm_struct): void {
  const k = currentKernel();
  if (since(6, 10)) {
    if (k.config.CONFIG_LOCKDEP === true) lockdep_assert(mm.mmap_lock.heldByCurrent());
    else WARN_ON_ONCE(!mm.mmap_lock.isLocked(), 'include/linux/rwsem.h:rwsem_assert_held');
    return;
  }
  lockdep_assert(mm.mmap_lock.heldByCurrent());
  VM_BUG_ON(
    !mm.mmap_lock.isLocked(),
    `VM_BUG_ON_MM(!rwsem_is_locked(&mm->mmap_lock)) mm:mm${mm.id}`,
  );
}

/**
 * mmap_assert_write_locked(mm): the running thread holds mmap_lock for write.
 * Versions as mmap_assert_locked (lockdep_assert_held_write; rwsem_assert_held_write
 * v6.10+).
 * @kernel include/linux/mmap_lock.h:mmap_assert_write_locked (v5.8+)
 * Locking: none taken.
 * Return: nothing; reports as above.
 */
export function mmap_assert_write_locked(mm: mm_struct): void {
  const k = currentKernel();
  if (since(6, 10)) {
    if (k.config.CONFIG_LOCKDEP === true) lockdep_assert(mm.mmap_lock.writeHeldByCurrent());
    else
      WARN_ON_ONCE(!mm.mmap_lock.isWriteLocked(), 'include/linux/rwsem.h:rwsem_assert_held_write');
    return;
  }
  lockdep_assert(mm.mmap_lock.writeHeldByCurrent());
  VM_BUG_ON(
    !mm.mmap_lock.isLocked(),
    `VM_BUG_ON_MM(!rwsem_is_locked(&mm->mmap_lock)) mm:mm${mm.id}`,
  );
}
