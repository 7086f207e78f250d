/**
 * spinlock_t, struct mutex and struct rw_semaphore under their kernel names, built on the
 * scheduler's primitives. Every acquire and release is a scheduling point.
 * Blocking acquires tell pfnsan the lock order (lock-cycle detection, as lockdep).
 * @kernel include/linux/spinlock.h, include/linux/mutex.h, include/linux/rwsem.h (all versions)
 */
import { ExclusiveLock, RwSemaphore, SeqCount, type Op } from '../../../sched/index.js';
import { lockdep_assert } from '../../kernel/panic.js';
import { pfnsan_lock_acquired } from '../../mm/pfnsan/pfnsan.js';

export class spinlock_t extends ExclusiveLock {
  constructor(name: string) {
    super(name, 'spinlock');
  }
}

export class mutex extends ExclusiveLock {
  constructor(name: string) {
    super(name, 'mutex');
  }
}

export class rw_semaphore extends RwSemaphore {}

export class seqcount_t extends SeqCount {}

export function* spin_lock(l: spinlock_t): Op<void> {
  yield* l.lock('spin_lock');
  pfnsan_lock_acquired(l.name);
}
export function spin_unlock(l: spinlock_t): Op<void> {
  return l.unlock('spin_unlock');
}
export function spin_trylock(l: spinlock_t): Op<boolean> {
  return l.trylock('spin_trylock');
}
export function* mutex_lock(l: mutex): Op<void> {
  yield* l.lock('mutex_lock');
  pfnsan_lock_acquired(l.name);
}
export function mutex_unlock(l: mutex): Op<void> {
  return l.unlock('mutex_unlock');
}
export function mutex_trylock(l: mutex): Op<boolean> {
  return l.trylock('mutex_trylock');
}
export function* down_read(s: rw_semaphore): Op<void> {
  yield* s.downRead('down_read');
  pfnsan_lock_acquired(s.name);
}
export function down_read_trylock(s: rw_semaphore): Op<boolean> {
  return s.downReadTrylock('down_read_trylock');
}
export function up_read(s: rw_semaphore): Op<void> {
  return s.upRead('up_read');
}
export function* down_write(s: rw_semaphore): Op<void> {
  yield* s.downWrite('down_write');
  pfnsan_lock_acquired(s.name);
}
export function down_write_trylock(s: rw_semaphore): Op<boolean> {
  return s.downWriteTrylock('down_write_trylock');
}
export function up_write(s: rw_semaphore): Op<void> {
  return s.upWrite('up_write');
}
export function downgrade_write(s: rw_semaphore): Op<void> {
  return s.downgradeWrite('downgrade_write');
}
export function rwsem_is_locked(s: rw_semaphore): boolean {
  return s.isLocked();
}
export function spin_is_locked(l: spinlock_t): boolean {
  return l.isLocked();
}

/** lockdep_assert_held(l): WARN under CONFIG_LOCKDEP when the running thread does not hold l. */
export function lockdep_assert_held(l: ExclusiveLock | RwSemaphore): void {
  lockdep_assert(l.heldByCurrent());
}

/** lockdep_assert_held_write(s) */
export function lockdep_assert_held_write(s: RwSemaphore): void {
  lockdep_assert(s.writeHeldByCurrent());
}

/** lockdep_is_held(l) */
export function lockdep_is_held(l: ExclusiveLock | RwSemaphore): boolean {
  return l.heldByCurrent();
}
