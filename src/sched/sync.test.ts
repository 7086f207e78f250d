import { describe, expect, it } from 'vitest';
import { DeadlockError, Runner, runOp } from './runner.js';
import { point, type Op, type Step } from './step.js';
import {
  AtomicInt,
  ExclusiveLock,
  LockUsageError,
  Refcount,
  RwSemaphore,
  SeqCount,
} from './sync.js';
import { SchedThread } from './thread.js';

/** A thread that persists across runOp calls, as one kernel task would. */
function task(id: number, name: string): SchedThread {
  return new SchedThread(
    id,
    name,
    (function* (): Op<unknown> {
      return undefined;
    })(),
  );
}

/** The first step an operation yields (without running it further). */
function firstStep(op: Op<unknown>): Step {
  const r = op.next();
  if (r.done) throw new Error('operation made no step');
  return r.value;
}

/** A thread body: runs `ops` in order. */
function* seq(...ops: Array<() => Op<unknown>>): Op<void> {
  for (const op of ops) yield* op();
}

describe('ExclusiveLock', () => {
  it('lock records the owner and the held lock; unlock clears both', () => {
    const l = new ExclusiveLock('L');
    const a = task(0, 'A');
    runOp(l.lock(), a);
    expect(l.isLocked()).toBe(true);
    expect(l.owner).toBe(a);
    expect(a.held).toEqual([{ name: 'L', shared: false }]);
    runOp(l.unlock(), a);
    expect(l.isLocked()).toBe(false);
    expect(l.owner).toBeNull();
    expect(a.held).toEqual([]);
  });

  it('announces acquire and release steps named after the lock kind', () => {
    const spin = new ExclusiveLock('S');
    const mtx = new ExclusiveLock('M', 'mutex');
    const s = firstStep(spin.lock());
    expect(s).toMatchObject({ obj: 'S', kind: 'acquire', what: 'spinlock_lock' });
    expect(s.enabled?.()).toBe(true);
    expect(firstStep(mtx.lock())).toMatchObject({ obj: 'M', kind: 'acquire', what: 'mutex_lock' });
    expect(firstStep(mtx.trylock())).toMatchObject({ kind: 'acquire', what: 'mutex_trylock' });
    expect(firstStep(mtx.unlock())).toMatchObject({ kind: 'release', what: 'mutex_unlock' });
  });

  it('the lock step is disabled while another thread holds the lock', () => {
    const l = new ExclusiveLock('L');
    runOp(l.lock(), task(0, 'A'));
    const s = firstStep(l.lock());
    expect(s.enabled?.()).toBe(false);
  });

  it('trylock succeeds on a free lock and fails, without blocking, on a held one', () => {
    const l = new ExclusiveLock('L', 'mutex');
    const a = task(0, 'A');
    const b = task(1, 'B');
    expect(runOp(l.trylock(), a)).toBe(true);
    expect(l.owner).toBe(a);
    expect(firstStep(l.trylock()).enabled).toBeUndefined();
    expect(runOp(l.trylock(), b)).toBe(false);
    expect(l.owner).toBe(a);
    expect(b.held).toEqual([]);
    runOp(l.unlock(), a);
    expect(runOp(l.trylock(), b)).toBe(true);
    expect(l.owner).toBe(b);
  });

  it('unlock by a thread that does not hold the lock is a LockUsageError', () => {
    const l = new ExclusiveLock('L');
    runOp(l.lock(), task(0, 'A'));
    expect(() => runOp(l.unlock(), task(1, 'B'))).toThrow(LockUsageError);
    expect(() => runOp(new ExclusiveLock('free').unlock(), task(1, 'B'))).toThrow(/held by nobody/);
  });

  it('heldByCurrent answers for the running thread only', () => {
    const l = new ExclusiveLock('L');
    const a = task(0, 'A');
    runOp(l.lock(), a);
    expect(
      runOp(
        (function* () {
          yield* point('x', 'read');
          return l.heldByCurrent();
        })(),
        a,
      ),
    ).toBe(true);
    expect(
      runOp(
        (function* () {
          yield* point('x', 'read');
          return l.heldByCurrent();
        })(),
        task(1, 'B'),
      ),
    ).toBe(false);
  });

  it('a thread blocked on a held lock is not enabled, and runs once the lock is released', () => {
    const l = new ExclusiveLock('L');
    const r = new Runner();
    r.spawn(
      'A',
      seq(
        () => l.lock(),
        () => point('work', 'write'),
        () => l.unlock(),
      ),
    );
    r.spawn(
      'B',
      seq(
        () => l.lock(),
        () => l.unlock(),
      ),
    );
    expect(r.step(0)).toBe(true); // A takes L
    expect(r.enabled().map((t) => t.id)).toEqual([0]);
    expect(r.blocked()).toEqual([{ tid: 1, thread: 'B', obj: 'L', what: 'spinlock_lock' }]);
    expect(r.step(1)).toBe(false); // B cannot run
    expect(r.step(0)).toBe(true); // work
    expect(r.step(0)).toBe(true); // A releases L
    expect(r.enabled().map((t) => t.id)).toEqual([1]);
    expect(r.blocked()).toEqual([]);
    expect(r.step(1)).toBe(true);
    expect(l.owner?.name).toBe('B');
  });
});

describe('RwSemaphore', () => {
  it('readers share the semaphore', () => {
    const s = new RwSemaphore('mmap_lock');
    const a = task(0, 'A');
    const b = task(1, 'B');
    runOp(s.downRead(), a);
    expect(firstStep(s.downRead()).enabled?.()).toBe(true);
    runOp(s.downRead(), b);
    expect(s.readers).toEqual([a, b]);
    expect(s.isLocked()).toBe(true);
    expect(s.isWriteLocked()).toBe(false);
    expect(b.held).toEqual([{ name: 'mmap_lock', shared: true }]);
    runOp(s.upRead(), a);
    expect(s.readers).toEqual([b]);
    expect(a.held).toEqual([]);
  });

  it('reader-side steps are marked shared', () => {
    const s = new RwSemaphore('sem');
    expect(firstStep(s.downRead())).toMatchObject({
      kind: 'acquire',
      shared: true,
      what: 'down_read',
    });
    expect(firstStep(s.downWrite()).shared).toBeUndefined();
  });

  it('a writer waits for readers', () => {
    const s = new RwSemaphore('sem');
    runOp(s.downRead(), task(0, 'A'));
    expect(firstStep(s.downWrite()).enabled?.()).toBe(false);
  });

  it('a writer excludes readers and other writers', () => {
    const s = new RwSemaphore('sem');
    const w = task(0, 'W');
    runOp(s.downWrite(), w);
    expect(s.writer).toBe(w);
    expect(s.isWriteLocked()).toBe(true);
    expect(firstStep(s.downRead()).enabled?.()).toBe(false);
    expect(firstStep(s.downWrite()).enabled?.()).toBe(false);
    runOp(s.upWrite(), w);
    expect(s.isLocked()).toBe(false);
    expect(firstStep(s.downWrite()).enabled?.()).toBe(true);
  });

  it('a thread taking the read side while it holds the write side deadlocks', () => {
    const s = new RwSemaphore('sem');
    const w = task(0, 'W');
    runOp(s.downWrite(), w);
    expect(() => runOp(s.downRead(), w)).toThrow(DeadlockError);
  });

  it('down_read_trylock fails only when a writer holds it', () => {
    const s = new RwSemaphore('sem');
    const a = task(0, 'A');
    const b = task(1, 'B');
    expect(runOp(s.downReadTrylock(), a)).toBe(true);
    expect(runOp(s.downReadTrylock(), b)).toBe(true);
    expect(s.readers.length).toBe(2);
    runOp(s.upRead(), a);
    runOp(s.upRead(), b);
    runOp(s.downWrite(), a);
    expect(runOp(s.downReadTrylock(), b)).toBe(false);
    expect(s.readers).toEqual([]);
  });

  it('down_write_trylock fails when readers or a writer hold it', () => {
    const s = new RwSemaphore('sem');
    const a = task(0, 'A');
    const b = task(1, 'B');
    runOp(s.downRead(), a);
    expect(runOp(s.downWriteTrylock(), b)).toBe(false);
    expect(s.writer).toBeNull();
    runOp(s.upRead(), a);
    expect(runOp(s.downWriteTrylock(), b)).toBe(true);
    expect(s.writer).toBe(b);
    expect(runOp(s.downWriteTrylock(), a)).toBe(false);
    expect(s.writer).toBe(b);
  });

  it('downgrade_write lets readers in but keeps writers out', () => {
    const s = new RwSemaphore('sem');
    const w = task(0, 'W');
    runOp(s.downWrite(), w);
    expect(firstStep(s.downRead()).enabled?.()).toBe(false);
    runOp(s.downgradeWrite(), w);
    expect(s.writer).toBeNull();
    expect(s.readers).toEqual([w]);
    expect(w.held).toEqual([{ name: 'sem', shared: true }]);
    expect(firstStep(s.downRead()).enabled?.()).toBe(true);
    expect(firstStep(s.downWrite()).enabled?.()).toBe(false);
    const r = task(1, 'R');
    runOp(s.downRead(), r);
    expect(s.readers).toEqual([w, r]);
    // The downgraded holder releases with up_read, not up_write.
    expect(() => runOp(s.upWrite(), w)).toThrow(LockUsageError);
    runOp(s.upRead(), w);
    runOp(s.upRead(), r);
    expect(s.isLocked()).toBe(false);
  });

  it('downgrade_write by a non-writer and up_read by a non-reader are errors', () => {
    const s = new RwSemaphore('sem');
    expect(() => runOp(s.downgradeWrite(), task(0, 'A'))).toThrow(/not the writer/);
    expect(() => runOp(s.upRead(), task(0, 'A'))).toThrow(/not a reader/);
  });

  it('in a runner, a writer blocked by a reader becomes enabled at up_read', () => {
    const s = new RwSemaphore('sem');
    const r = new Runner();
    r.spawn(
      'R',
      seq(
        () => s.downRead(),
        () => s.upRead(),
      ),
    );
    r.spawn(
      'W',
      seq(
        () => s.downWrite(),
        () => s.upWrite(),
      ),
    );
    expect(r.step(0)).toBe(true); // R: down_read
    expect(r.enabled().map((t) => t.id)).toEqual([0]);
    expect(r.blocked()).toEqual([{ tid: 1, thread: 'W', obj: 'sem', what: 'down_write' }]);
    expect(r.step(0)).toBe(true); // R: up_read
    expect(r.enabled().map((t) => t.id)).toEqual([1]);
    expect(r.run().status).toBe('done');
    expect(s.isLocked()).toBe(false);
  });
});

describe('SeqCount', () => {
  it('a read section with no writer does not retry', () => {
    const sc = new SeqCount('seq');
    const start = runOp(sc.readBegin());
    expect(runOp(sc.readRetry(start))).toBe(false);
  });

  it('a write section that begins after the read began forces a retry', () => {
    const sc = new SeqCount('seq');
    const start = runOp(sc.readBegin());
    runOp(sc.writeBegin());
    expect(runOp(sc.readRetry(start))).toBe(true);
    runOp(sc.writeEnd());
    expect(runOp(sc.readRetry(start))).toBe(true);
  });

  it('a read that begins inside a write section retries even when nothing moves after', () => {
    const sc = new SeqCount('seq');
    runOp(sc.writeBegin());
    expect(sc.sequence % 2).toBe(1);
    const start = runOp(sc.readBegin());
    expect(runOp(sc.readRetry(start))).toBe(true);
  });

  it('readBegin returns the sequence with the low bit cleared (raw_seqcount_begin)', () => {
    const sc = new SeqCount('seq');
    runOp(sc.writeBegin());
    runOp(sc.writeEnd());
    runOp(sc.writeBegin()); // sequence 3
    expect(runOp(sc.readBegin())).toBe(2);
  });

  it('a read after a completed write section succeeds', () => {
    const sc = new SeqCount('seq');
    runOp(sc.writeBegin());
    runOp(sc.writeEnd());
    expect(sc.sequence).toBe(2);
    const start = runOp(sc.readBegin());
    expect(start).toBe(2);
    expect(runOp(sc.readRetry(start))).toBe(false);
  });

  it('reads and writes are steps of kind read and write on the counter', () => {
    const sc = new SeqCount('seq');
    expect(firstStep(sc.readBegin())).toMatchObject({ obj: 'seq', kind: 'read' });
    expect(firstStep(sc.readRetry(0))).toMatchObject({ obj: 'seq', kind: 'read' });
    expect(firstStep(sc.writeBegin())).toMatchObject({ obj: 'seq', kind: 'write' });
  });
});

describe('AtomicInt', () => {
  it('cmpxchg swaps when the old value matches and returns the previous value', () => {
    const a = new AtomicInt('a', 5);
    expect(runOp(a.cmpxchg(5, 9))).toBe(5);
    expect(a.value).toBe(9);
  });

  it('cmpxchg leaves the value alone on a mismatch and returns the current value', () => {
    const a = new AtomicInt('a', 5);
    expect(runOp(a.cmpxchg(4, 9))).toBe(5);
    expect(a.value).toBe(5);
  });

  it('addUnless adds unless the value equals u', () => {
    const a = new AtomicInt('a', 0);
    expect(runOp(a.addUnless(1, 0))).toBe(false);
    expect(a.value).toBe(0);
    runOp(a.set(3));
    expect(runOp(a.addUnless(2, 0))).toBe(true);
    expect(a.value).toBe(5);
    expect(runOp(a.addUnless(-1, 5))).toBe(false);
    expect(a.value).toBe(5);
  });

  it('addReturn and read', () => {
    const a = new AtomicInt('a');
    expect(runOp(a.addReturn(3))).toBe(3);
    expect(runOp(a.addReturn(-5))).toBe(-2);
    expect(runOp(a.read())).toBe(-2);
  });

  it('a value written by another thread between two steps is seen by the later step', () => {
    const a = new AtomicInt('a', 1);
    const r = new Runner();
    const seen: number[] = [];
    r.spawn(
      'T0',
      (function* () {
        const v = yield* a.read();
        seen.push(v);
        seen.push(yield* a.cmpxchg(v, v + 10));
      })(),
    );
    r.spawn(
      'T1',
      (function* () {
        yield* a.addReturn(100);
      })(),
    );
    expect(r.run([0, 1, 0]).status).toBe('done');
    expect(seen).toEqual([1, 101]); // the cmpxchg failed: the value moved under it
    expect(a.value).toBe(101);
  });
});

describe('Refcount', () => {
  it('inc and decAndTest count up and down, reporting zero', () => {
    const r = new Refcount('ref', 1);
    expect(runOp(r.inc())).toBe('ok');
    expect(r.value).toBe(2);
    expect(runOp(r.decAndTest())).toEqual([false, 'ok']);
    expect(runOp(r.decAndTest())).toEqual([true, 'ok']);
    expect(r.value).toBe(0);
  });

  it('inc on zero is a use-after-free and saturates', () => {
    const r = new Refcount('ref', 0);
    expect(runOp(r.inc())).toBe('addition on 0; use-after-free');
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
  });

  it('decrement below zero is an underflow and saturates', () => {
    const r = new Refcount('ref', 0);
    expect(runOp(r.decAndTest())).toEqual([false, 'underflow; use-after-free']);
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
  });

  it('inc at REFCOUNT_MAX saturates instead of wrapping, and stays saturated', () => {
    const r = new Refcount('ref', Refcount.REFCOUNT_MAX);
    expect(runOp(r.inc())).toBe('saturated');
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
    expect(runOp(r.inc())).toBe('saturated');
    expect(runOp(r.decAndTest())).toEqual([false, 'saturated']);
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
  });

  it('incNotZero refuses zero and increments otherwise', () => {
    const r = new Refcount('ref', 0);
    expect(runOp(r.incNotZero())).toBe(false);
    expect(r.value).toBe(0);
    r.value = 1;
    expect(runOp(r.incNotZero())).toBe(true);
    expect(r.value).toBe(2);
  });

  it('incNotZero at REFCOUNT_MAX saturates instead of going past it', () => {
    const r = new Refcount('ref', Refcount.REFCOUNT_MAX);
    expect(runOp(r.incNotZero())).toBe(true);
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
    expect(runOp(r.incNotZero())).toBe(true);
    expect(r.value).toBe(Refcount.REFCOUNT_SATURATED);
  });
});
