import { describe, expect, it } from 'vitest';
import { DeadlockError, logicalClock, Runner, runOp, type RunResult } from './runner.js';
import { point, type Op, type Step } from './step.js';
import { ExclusiveLock } from './sync.js';
import { currentThread, SchedThread } from './thread.js';

/** A thread body that makes `n` write steps on `obj`, then returns `ret`. */
function* steps(obj: string, n: number, ret: unknown = undefined): Op<unknown> {
  for (let i = 0; i < n; i++) yield* point(obj, 'write', `${obj}#${i}`);
  return ret;
}

/** Takes `first` then `second`, then releases both (one half of an ABBA pair). */
function* lockPair(first: ExclusiveLock, second: ExclusiveLock): Op<void> {
  yield* first.lock();
  yield* second.lock();
  yield* second.unlock();
  yield* first.unlock();
}

function abba(): Runner {
  const a = new ExclusiveLock('A');
  const b = new ExclusiveLock('B');
  const r = new Runner();
  r.spawn('T0', lockPair(a, b));
  r.spawn('T1', lockPair(b, a));
  return r;
}

describe('runOp', () => {
  it('drives an operation to completion and returns its value', () => {
    const seen: string[] = [];
    const v = runOp(
      (function* (): Op<number> {
        yield* point('x', 'read');
        seen.push('after 1');
        yield* point('y', 'write');
        seen.push('after 2');
        return 42;
      })(),
    );
    expect(v).toBe(42);
    expect(seen).toEqual(['after 1', 'after 2']);
  });

  it('runs the operation as the named thread and restores the running thread after', () => {
    const before = currentThread();
    const name = runOp(
      (function* (): Op<string> {
        yield* point('x', 'read');
        return currentThread().name;
      })(),
      'worker',
    );
    expect(name).toBe('worker');
    expect(currentThread()).toBe(before);
  });

  it('runs an enabled blocking step', () => {
    const l = new ExclusiveLock('L');
    runOp(
      (function* () {
        yield* l.lock();
        yield* l.unlock();
      })(),
    );
    expect(l.isLocked()).toBe(false);
  });

  it('throws DeadlockError naming the lock when a thread takes the same lock twice', () => {
    const l = new ExclusiveLock('L', 'mutex');
    let err: unknown;
    try {
      runOp(
        (function* () {
          yield* l.lock();
          yield* l.lock();
        })(),
        'self',
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeadlockError);
    const d = err as DeadlockError;
    expect(d.message).toBe('deadlock: self waits for L in mutex_lock');
    expect(d.blocked).toEqual([{ tid: 0, thread: 'self', obj: 'L', what: 'mutex_lock' }]);
  });

  it('reports the id of a persistent thread in the deadlock', () => {
    const l = new ExclusiveLock('L');
    const t = new SchedThread(3, 'kworker', steps('unused', 0));
    runOp(l.lock(), t);
    let err: unknown;
    try {
      runOp(l.lock(), t);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeadlockError);
    expect((err as DeadlockError).blocked).toEqual([
      { tid: 3, thread: 'kworker', obj: 'L', what: 'spinlock_lock' },
    ]);
  });

  it('lets errors thrown by the operation propagate unchanged', () => {
    const boom = new RangeError('boom');
    expect(() =>
      runOp(
        (function* () {
          yield* point('x', 'read');
          throw boom;
        })(),
      ),
    ).toThrow(boom);
  });

  it('keeps locks across calls when run as a persistent thread', () => {
    const l = new ExclusiveLock('L');
    const t = new SchedThread(0, 'task', steps('unused', 0));
    runOp(l.lock(), t);
    expect(l.owner).toBe(t);
    expect(t.holds('L')).toBe(true);
    runOp(l.unlock(), t);
    expect(t.holds('L')).toBe(false);
  });
});

describe('Runner', () => {
  it('spawn runs a thread up to its first step', () => {
    const r = new Runner();
    let started = false;
    const t = r.spawn(
      'T',
      (function* () {
        started = true;
        yield* point('x', 'write');
      })(),
    );
    expect(started).toBe(true);
    expect(t.pending).toMatchObject({ obj: 'x', kind: 'write' });
    expect(r.clock).toBe(0);
  });

  it('follows an explicit schedule, one thread id per step', () => {
    const r = new Runner();
    r.spawn('T0', steps('a', 2));
    r.spawn('T1', steps('b', 2));
    const res = r.run([1, 0, 1, 0]);
    expect(res.status).toBe('done');
    expect(res.steps).toBe(4);
    expect(res.schedule).toEqual([1, 0, 1, 0]);
    expect(res.trace.map((s) => `${s.thread}:${s.what}`)).toEqual([
      'T1:b#0',
      'T0:a#0',
      'T1:b#1',
      'T0:a#1',
    ]);
    expect(res.trace.map((s) => s.index)).toEqual([0, 1, 2, 3]);
  });

  it('is deterministic: the same schedule gives identical traces', () => {
    const build = (): RunResult => {
      const l = new ExclusiveLock('L');
      const r = new Runner();
      r.spawn('T0', lockPair(l, new ExclusiveLock('M0')));
      r.spawn('T1', lockPair(new ExclusiveLock('M1'), l));
      r.spawn('T2', steps('c', 3));
      return r.run([2, 0, 1, 2, 0, 0, 0, 1]);
    };
    const x = build();
    const y = build();
    expect(x.status).toBe('done');
    expect(x.trace).toEqual(y.trace);
    expect(x.schedule).toEqual(y.schedule);
    expect(x.trace.length).toBe(11);
  });

  it('records shared steps and the function name in the trace', () => {
    const r = new Runner();
    r.spawn(
      'T',
      (function* (): Op<void> {
        const s: Step = { obj: 'sem', kind: 'acquire', shared: true, what: 'down_read' };
        yield s;
        yield { obj: 'x', kind: 'read' };
      })(),
    );
    const res = r.run();
    expect(res.trace).toEqual([
      {
        index: 0,
        tid: 0,
        thread: 'T',
        obj: 'sem',
        kind: 'acquire',
        shared: true,
        what: 'down_read',
      },
      { index: 1, tid: 0, thread: 'T', obj: 'x', kind: 'read' },
    ]);
  });

  it("reports 'deadlock' with both blocked threads for an ABBA cycle under the schedule that causes it", () => {
    const res = abba().run([0, 1]);
    expect(res.status).toBe('deadlock');
    expect(res.steps).toBe(2);
    expect(res.blocked).toEqual([
      { tid: 0, thread: 'T0', obj: 'B', what: 'spinlock_lock' },
      { tid: 1, thread: 'T1', obj: 'A', what: 'spinlock_lock' },
    ]);
  });

  it('the ABBA pair completes under a schedule that runs one thread first', () => {
    const res = abba().run([0, 0, 0, 0]);
    expect(res.status).toBe('done');
    expect(res.blocked).toEqual([]);
    expect(res.schedule).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it("reports 'bad-schedule' when the schedule names a blocked thread", () => {
    const r = abba();
    const res = r.run([0, 1, 0]);
    // After [0, 1] both are blocked: the run is a deadlock before position 2 is read.
    expect(res.status).toBe('deadlock');
    const r2 = abba();
    const res2 = r2.run([0, 0, 1, 1]);
    expect(res2.status).toBe('bad-schedule');
    expect(res2.message).toBe('schedule position 2: thread 1 (T1) is blocked on B');
    expect(res2.steps).toBe(2);
  });

  it("reports 'bad-schedule' when the schedule names an ended thread", () => {
    const r = new Runner();
    r.spawn('T0', steps('a', 1));
    r.spawn('T1', steps('b', 2));
    const res = r.run([0, 0]);
    expect(res.status).toBe('bad-schedule');
    expect(res.message).toBe('schedule position 1: thread 0 (T0) has ended');
    expect(res.schedule).toEqual([0]);
  });

  it("reports 'bad-schedule' when the schedule names no thread", () => {
    const r = new Runner();
    r.spawn('T0', steps('a', 1));
    const res = r.run([5]);
    expect(res.status).toBe('bad-schedule');
    expect(res.message).toBe('schedule position 0: no thread 5');
  });

  it("reports 'crashed' with the thread and the error when a thread throws", () => {
    const boom = new Error('boom');
    const r = new Runner();
    r.spawn('T0', steps('a', 3));
    const t1 = r.spawn(
      'T1',
      (function* () {
        yield* point('b', 'write');
        throw boom;
      })(),
    );
    const res = r.run([1, 0, 1]);
    expect(res.status).toBe('crashed');
    expect(res.crashed).toEqual({ tid: 1, thread: 'T1', error: boom });
    expect(res.steps).toBe(1);
    expect(t1.done).toBe(true);
    expect(t1.error).toBe(boom);
    expect(r.isFinished()).toBe(true);
    expect(r.step(0)).toBe(false);
  });

  it("reports 'crashed' for a thread that throws before its first step", () => {
    const r = new Runner();
    r.spawn(
      'T0',
      (function* (): Op<void> {
        throw new Error('early');
      })(),
    );
    const res = r.run();
    expect(res.status).toBe('crashed');
    expect(res.steps).toBe(0);
  });

  it('past the schedule, continues the last thread while it can run', () => {
    const r = new Runner();
    r.spawn('T0', steps('a', 3));
    r.spawn('T1', steps('b', 3));
    r.spawn('T2', steps('c', 2));
    const res = r.run([1]);
    expect(res.status).toBe('done');
    expect(res.schedule).toEqual([1, 1, 1, 0, 0, 0, 2, 2]);
  });

  it('past the schedule, picks the lowest enabled id when the last thread is blocked', () => {
    const l = new ExclusiveLock('L');
    const r = new Runner();
    r.spawn('T0', steps('a', 2));
    r.spawn('T1', lockPair(l, new ExclusiveLock('M')));
    r.spawn(
      'T2',
      (function* () {
        yield* point('c', 'write');
        yield* l.lock();
        yield* l.unlock();
      })(),
    );
    // T1 takes L, T2 reaches its lock of L and blocks: T0 (lowest enabled) runs to
    // its end, then T1 (lowest enabled) to its end, which lets T2 finish.
    const res = r.run([1, 2]);
    expect(res.status).toBe('done');
    expect(res.schedule).toEqual([1, 2, 0, 0, 1, 1, 1, 2, 2]);
  });

  it('with no schedule runs thread 0 to its end first', () => {
    const r = new Runner();
    r.spawn('T0', steps('a', 2));
    r.spawn('T1', steps('b', 1));
    expect(r.run().schedule).toEqual([0, 0, 1]);
  });

  it("stops with 'step-limit' after maxSteps", () => {
    const r = new Runner({ maxSteps: 3 });
    r.spawn('T0', steps('a', 10));
    const res = r.run();
    expect(res.status).toBe('step-limit');
    expect(res.steps).toBe(3);
  });

  it('keeps the thread results', () => {
    const r = new Runner();
    const t0 = r.spawn('T0', steps('a', 1, 'zero'));
    const t1 = r.spawn('T1', steps('b', 1, 'one'));
    r.run();
    expect([t0.result, t1.result]).toEqual(['zero', 'one']);
  });

  it('without recording keeps the schedule but no trace', () => {
    const r = new Runner({ record: false });
    r.spawn('T0', steps('a', 2));
    const res = r.run();
    expect(res.status).toBe('done');
    expect(res.trace).toEqual([]);
    expect(res.schedule).toEqual([0, 0]);
  });

  it('calls the hooks around each step with its index, and exposes the logical clock', () => {
    const calls: string[] = [];
    const clocks: number[] = [];
    const r = new Runner({
      hooks: {
        beforeStep: (t, s, i) => calls.push(`before ${i} ${t.name} ${s.obj}`),
        afterStep: (t, s, i) => calls.push(`after ${i} ${t.name} ${s.obj}`),
      },
    });
    r.spawn(
      'T0',
      (function* () {
        yield* point('a', 'write');
        clocks.push(logicalClock());
        yield* point('b', 'write');
        clocks.push(logicalClock());
      })(),
    );
    r.run();
    expect(calls).toEqual(['before 0 T0 a', 'after 0 T0 a', 'before 1 T0 b', 'after 1 T0 b']);
    expect(clocks).toEqual([1, 2]);
    expect(logicalClock()).toBe(0);
  });

  it('runs each step as its own thread', () => {
    const names: string[] = [];
    const body = function* (): Op<void> {
      yield* point('x', 'write');
      names.push(currentThread().name);
    };
    const r = new Runner();
    r.spawn('T0', body());
    r.spawn('T1', body());
    r.run([1, 0]);
    expect(names).toEqual(['T1', 'T0']);
  });
});
