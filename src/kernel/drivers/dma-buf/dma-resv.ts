/**
 * Reservation objects (drivers/dma-buf/dma-resv.c): the lock that serialises every change
 * of a buffer's backing store (TTM moves, dma-buf map/unmap, move_notify, CPU faults).
 *
 * The lock is a ww_mutex in the kernel; the model keeps it as one exclusive mutex (every
 * acquire and release is a Step on `<name>.resv`). The wound/wait acquire context
 * (ww_acquire_ctx, -EDEADLK back-off) is left out: callers lock one reservation at a time.
 * Fences are left out too: every move in the model is a synchronous CPU copy, so a
 * reservation is always idle (dma_resv_test_signaled is true, waits return at once).
 *
 * @kernel drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import {
  lockdep_assert_held,
  mutex,
  mutex_lock,
  mutex_trylock,
  mutex_unlock,
} from '../../include/linux/spinlock.js';

/** struct dma_resv: the ww_mutex `lock` (fence slots left out). */
export class dma_resv {
  readonly lock: mutex;
  constructor(readonly name: string) {
    this.lock = new mutex(`${name}.resv`);
  }
}

/**
 * dma_resv_init(obj): a new, unlocked reservation object.
 * @kernel drivers/dma-buf/dma-resv.c:dma_resv_init (all versions)
 * Return: the object (named `name`, or resv<N>).
 */
export function dma_resv_init(name?: string): dma_resv {
  return new dma_resv(name ?? `resv${currentKernel().nextId('dma_resv')}`);
}

/**
 * dma_resv_lock(obj, ctx): takes the reservation lock, waiting for it.
 * @kernel include/linux/dma-resv.h:dma_resv_lock (all versions)
 * Locking: takes obj's lock (a scheduling point).
 * Return: 0 (no acquire context in the model, so never -EDEADLK/-EALREADY).
 */
export function* dma_resv_lock(obj: dma_resv, ctx: null = null): Op<number> {
  void ctx;
  yield* mutex_lock(obj.lock);
  return 0;
}

/**
 * dma_resv_lock_interruptible(obj, ctx): as dma_resv_lock; a signal would give -EINTR.
 * @kernel include/linux/dma-resv.h:dma_resv_lock_interruptible (all versions)
 * Return: 0 (signals are not delivered while waiting in the model).
 */
export function dma_resv_lock_interruptible(obj: dma_resv, ctx: null = null): Op<number> {
  return dma_resv_lock(obj, ctx);
}

/**
 * dma_resv_trylock(obj): takes the lock only if free.
 * @kernel include/linux/dma-resv.h:dma_resv_trylock (all versions)
 * Return: true when taken.
 */
export function dma_resv_trylock(obj: dma_resv): Op<boolean> {
  return mutex_trylock(obj.lock);
}

/**
 * dma_resv_unlock(obj).
 * @kernel include/linux/dma-resv.h:dma_resv_unlock (all versions)
 */
export function dma_resv_unlock(obj: dma_resv): Op<void> {
  return mutex_unlock(obj.lock);
}

/**
 * dma_resv_assert_held(obj): lockdep check that the running thread holds obj.
 * @kernel include/linux/dma-resv.h:dma_resv_assert_held (all versions)
 */
export function dma_resv_assert_held(obj: dma_resv): void {
  lockdep_assert_held(obj.lock);
}

/**
 * dma_resv_is_locked(obj). @kernel include/linux/dma-resv.h:dma_resv_is_locked (all versions)
 */
export function dma_resv_is_locked(obj: dma_resv): boolean {
  return obj.lock.isLocked();
}

/**
 * dma_resv_test_signaled(obj, usage): whether every fence of obj has signalled.
 * @kernel drivers/dma-buf/dma-resv.c:dma_resv_test_signaled (all versions)
 * Return: true (the model has no fences: moves are synchronous).
 */
export function dma_resv_test_signaled(obj: dma_resv, usage = 0): boolean {
  void obj;
  void usage;
  return true;
}
