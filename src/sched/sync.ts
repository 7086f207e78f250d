/**
 * Synchronisation primitives as small state machines. Each operation yields one Step
 * naming the object and the access, then takes effect when the scheduler resumes it.
 * Blocking acquires carry an `enabled` predicate so the scheduler can tell a blocked
 * thread from a runnable one, and a deadlock from a wait.
 *
 * These are the tool's own primitives; src/kernel wraps them under the kernel's names
 * (spin_lock, down_read, mmap_read_lock, ...).
 */
import type { Op } from './step.js';
import { currentThread, type SchedThread } from './thread.js';

export class LockUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockUsageError';
  }
}

/** A non-recursive exclusive lock; spinlocks and mutexes differ only in name here. */
export class ExclusiveLock {
  owner: SchedThread | null = null;
  constructor(
    readonly name: string,
    readonly kind: 'spinlock' | 'mutex' = 'spinlock',
  ) {}

  *lock(what = `${this.kind}_lock`): Op<void> {
    yield { obj: this.name, kind: 'acquire', what, enabled: () => this.owner === null };
    if (this.owner !== null) throw new LockUsageError(`${this.name}: acquired while held`);
    this.owner = currentThread();
    this.owner.held.push({ name: this.name, shared: false });
  }

  *trylock(what = `${this.kind}_trylock`): Op<boolean> {
    yield { obj: this.name, kind: 'acquire', what };
    if (this.owner !== null) return false;
    this.owner = currentThread();
    this.owner.held.push({ name: this.name, shared: false });
    return true;
  }

  *unlock(what = `${this.kind}_unlock`): Op<void> {
    yield { obj: this.name, kind: 'release', what };
    const t = currentThread();
    if (this.owner !== t) {
      throw new LockUsageError(
        `${this.name}: released by ${t.name} but held by ${this.owner?.name ?? 'nobody'}`,
      );
    }
    this.owner = null;
    t.dropHeld(this.name);
  }

  isLocked(): boolean {
    return this.owner !== null;
  }

  heldByCurrent(): boolean {
    return this.owner === currentThread();
  }
}

/** A reader/writer semaphore with writer exclusion, trylocks and downgrade. */
export class RwSemaphore {
  /** Threads holding it for read (a thread may appear once). */
  readonly readers: SchedThread[] = [];
  writer: SchedThread | null = null;
  constructor(readonly name: string) {}

  *downRead(what = 'down_read'): Op<void> {
    yield {
      obj: this.name,
      kind: 'acquire',
      shared: true,
      what,
      enabled: () => this.writer === null,
    };
    this.addReader();
  }

  *downReadTrylock(what = 'down_read_trylock'): Op<boolean> {
    yield { obj: this.name, kind: 'acquire', shared: true, what };
    if (this.writer !== null) return false;
    this.addReader();
    return true;
  }

  *upRead(what = 'up_read'): Op<void> {
    yield { obj: this.name, kind: 'release', shared: true, what };
    const t = currentThread();
    const i = this.readers.indexOf(t);
    if (i < 0) throw new LockUsageError(`${this.name}: up_read by ${t.name}, not a reader`);
    this.readers.splice(i, 1);
    t.dropHeld(this.name);
  }

  *downWrite(what = 'down_write'): Op<void> {
    yield {
      obj: this.name,
      kind: 'acquire',
      what,
      enabled: () => this.writer === null && this.readers.length === 0,
    };
    this.setWriter();
  }

  *downWriteTrylock(what = 'down_write_trylock'): Op<boolean> {
    yield { obj: this.name, kind: 'acquire', what };
    if (this.writer !== null || this.readers.length > 0) return false;
    this.setWriter();
    return true;
  }

  *upWrite(what = 'up_write'): Op<void> {
    yield { obj: this.name, kind: 'release', what };
    const t = currentThread();
    if (this.writer !== t) {
      throw new LockUsageError(`${this.name}: up_write by ${t.name}, not the writer`);
    }
    this.writer = null;
    t.dropHeld(this.name);
  }

  /** Turns a held write lock into a read lock without letting a writer in between. */
  *downgradeWrite(what = 'downgrade_write'): Op<void> {
    yield { obj: this.name, kind: 'release', what };
    const t = currentThread();
    if (this.writer !== t) {
      throw new LockUsageError(`${this.name}: downgrade by ${t.name}, not the writer`);
    }
    this.writer = null;
    t.dropHeld(this.name);
    this.addReader();
  }

  isLocked(): boolean {
    return this.writer !== null || this.readers.length > 0;
  }

  isWriteLocked(): boolean {
    return this.writer !== null;
  }

  heldByCurrent(): boolean {
    const t = currentThread();
    return this.writer === t || this.readers.includes(t);
  }

  writeHeldByCurrent(): boolean {
    return this.writer === currentThread();
  }

  private addReader(): void {
    const t = currentThread();
    if (this.writer !== null) throw new LockUsageError(`${this.name}: read-acquired while written`);
    this.readers.push(t);
    t.held.push({ name: this.name, shared: true });
  }

  private setWriter(): void {
    const t = currentThread();
    if (this.writer !== null || this.readers.length > 0) {
      throw new LockUsageError(`${this.name}: write-acquired while held`);
    }
    this.writer = t;
    t.held.push({ name: this.name, shared: false });
  }
}

/**
 * A sequence counter: writers make it odd for the duration of a write section;
 * readers sample it and retry if it was odd or moved.
 */
export class SeqCount {
  sequence = 0;
  constructor(readonly name: string) {}

  *writeBegin(what = 'write_seqcount_begin'): Op<void> {
    yield { obj: this.name, kind: 'write', what };
    this.sequence++;
  }

  *writeEnd(what = 'write_seqcount_end'): Op<void> {
    yield { obj: this.name, kind: 'write', what };
    this.sequence++;
  }

  /** Returns the sequence with the low bit cleared when a writer is active (raw_seqcount_begin). */
  *readBegin(what = 'read_seqcount_begin'): Op<number> {
    yield { obj: this.name, kind: 'read', what };
    return this.sequence & ~1;
  }

  /** True when the reader must retry: a writer was active at begin or has run since. */
  *readRetry(start: number, what = 'read_seqcount_retry'): Op<boolean> {
    yield { obj: this.name, kind: 'read', what };
    return (start & 1) !== 0 || this.sequence !== start;
  }
}

/** An atomic integer. Every access is a step. */
export class AtomicInt {
  constructor(
    readonly name: string,
    public value = 0,
  ) {}

  *read(what = 'atomic_read'): Op<number> {
    yield { obj: this.name, kind: 'read', what };
    return this.value;
  }

  *set(v: number, what = 'atomic_set'): Op<void> {
    yield { obj: this.name, kind: 'write', what };
    this.value = v;
  }

  /** Adds and returns the new value. */
  *addReturn(d: number, what = 'atomic_add_return'): Op<number> {
    yield { obj: this.name, kind: 'write', what };
    this.value += d;
    return this.value;
  }

  /** Compare-and-exchange: returns the old value. */
  *cmpxchg(old: number, v: number, what = 'atomic_cmpxchg'): Op<number> {
    yield { obj: this.name, kind: 'write', what };
    const prev = this.value;
    if (prev === old) this.value = v;
    return prev;
  }

  /** Adds d unless the value is u; returns whether it added (atomic_add_unless). */
  *addUnless(d: number, u: number, what = 'atomic_add_unless'): Op<boolean> {
    yield { obj: this.name, kind: 'write', what };
    if (this.value === u) return false;
    this.value += d;
    return true;
  }
}

/** refcount_t semantics: saturates instead of wrapping, reports underflow and inc-on-zero. */
export type RefcountEvent =
  'ok' | 'addition on 0; use-after-free' | 'underflow; use-after-free' | 'saturated';

export class Refcount {
  static readonly REFCOUNT_MAX = 0x7fffffff;
  static readonly REFCOUNT_SATURATED = -0x40000000;
  constructor(
    readonly name: string,
    public value = 1,
  ) {}

  *inc(what = 'refcount_inc'): Op<RefcountEvent> {
    yield { obj: this.name, kind: 'write', what };
    if (this.value === Refcount.REFCOUNT_SATURATED) return 'saturated';
    if (this.value === 0) {
      this.value = Refcount.REFCOUNT_SATURATED;
      return 'addition on 0; use-after-free';
    }
    if (this.value >= Refcount.REFCOUNT_MAX) {
      this.value = Refcount.REFCOUNT_SATURATED;
      return 'saturated';
    }
    this.value++;
    return 'ok';
  }

  /** Increments unless zero; returns whether it did (refcount_inc_not_zero). */
  *incNotZero(what = 'refcount_inc_not_zero'): Op<boolean> {
    yield { obj: this.name, kind: 'write', what };
    if (this.value === 0) return false;
    // As __refcount_add_not_zero(): an increment past REFCOUNT_MAX saturates.
    if (this.value >= Refcount.REFCOUNT_MAX) this.value = Refcount.REFCOUNT_SATURATED;
    else if (this.value !== Refcount.REFCOUNT_SATURATED) this.value++;
    return true;
  }

  /** Decrements; returns [reachedZero, event] (refcount_dec_and_test). */
  *decAndTest(what = 'refcount_dec_and_test'): Op<[boolean, RefcountEvent]> {
    yield { obj: this.name, kind: 'write', what };
    if (this.value === Refcount.REFCOUNT_SATURATED) return [false, 'saturated'];
    if (this.value <= 0) {
      this.value = Refcount.REFCOUNT_SATURATED;
      return [false, 'underflow; use-after-free'];
    }
    this.value--;
    return [this.value === 0, 'ok'];
  }
}
