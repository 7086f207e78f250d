/**
 * Small programs for the explorer's tests, its parallel tests (workers import this
 * module by name) and bench/explore.ts. Each export builds a {@link ProgramFactory}
 * from JSON-serialisable arguments.
 */
import type { ProgramFactory } from './explore.js';
import { point, type Op } from './step.js';
import { ExclusiveLock, RwSemaphore } from './sync.js';

/** n threads, thread i writes its own object `o<i>` once. */
export function independent(n: number): ProgramFactory {
  return () => ({
    threads: Array.from({ length: n }, (_, i) => ({ name: `T${i}`, op: point(`o${i}`, 'write') })),
  });
}

/** Two threads, one step each on `x` with the given kinds. */
export function pair(k0: 'read' | 'write', k1: 'read' | 'write'): ProgramFactory {
  return () => ({
    threads: [
      { name: 'T0', op: point('x', k0) },
      { name: 'T1', op: point('x', k1) },
    ],
  });
}

/**
 * `n` threads (default 2) each incrementing a shared counter by read-then-write,
 * optionally under a mutex; check() fails when an update was lost.
 */
export function increment(locked: boolean, n = 2): ProgramFactory {
  return () => {
    const shared = { x: 0 };
    const m = new ExclusiveLock('m', 'mutex');
    function* inc(): Op<void> {
      if (locked) yield* m.lock();
      yield* point('x', 'read');
      const v = shared.x;
      yield* point('x', 'write');
      shared.x = v + 1;
      if (locked) yield* m.unlock();
    }
    return {
      threads: Array.from({ length: n }, (_, i) => ({ name: `T${i}`, op: inc() })),
      check: () => (shared.x === n ? null : `lost update: x = ${shared.x}`),
    };
  };
}

/** T0 takes A then B, T1 takes B then A. */
export function abba(): ProgramFactory {
  return () => {
    const a = new ExclusiveLock('A');
    const b = new ExclusiveLock('B');
    function* lockPair(first: ExclusiveLock, second: ExclusiveLock): Op<void> {
      yield* first.lock();
      yield* second.lock();
      yield* second.unlock();
      yield* first.unlock();
    }
    return {
      threads: [
        { name: 'T0', op: lockPair(a, b) },
        { name: 'T1', op: lockPair(b, a) },
      ],
    };
  };
}

/** One thread per entry: a writer (true) or a reader (false) of one rwsem. */
export function rwsem(writers: boolean[]): ProgramFactory {
  return () => {
    const s = new RwSemaphore('sem');
    function* body(w: boolean): Op<void> {
      if (w) {
        yield* s.downWrite();
        yield* s.upWrite();
      } else {
        yield* s.downRead();
        yield* s.upRead();
      }
    }
    return { threads: writers.map((w, i) => ({ name: `T${i}`, op: body(w) })) };
  };
}

/**
 * `threads` threads, each running `sections` critical sections on one mutex; inside:
 * read and write `x`, write a private object. Traces: orders of the acquires keeping
 * each thread's in program order, (threads*sections)! / (sections!)^threads.
 */
export function criticalSections(threads: number, sections: number): ProgramFactory {
  return () => {
    const m = new ExclusiveLock('m', 'mutex');
    function* body(i: number): Op<void> {
      for (let k = 0; k < sections; k++) {
        yield* m.lock();
        yield* point('x', 'read');
        yield* point('x', 'write');
        yield* point(`p${i}`, 'write');
        yield* m.unlock();
      }
    }
    return {
      threads: Array.from({ length: threads }, (_, i) => ({ name: `T${i}`, op: body(i) })),
    };
  };
}

/** Dining philosophers: n threads, fork i and i+1 mod n, the last one left-handed or not. */
export function philosophers(n: number, ordered: boolean): ProgramFactory {
  return () => {
    const forks = Array.from({ length: n }, (_, i) => new ExclusiveLock(`fork${i}`));
    function* eat(i: number): Op<void> {
      let a = forks[i]!;
      let b = forks[(i + 1) % n]!;
      if (ordered && i === n - 1) [a, b] = [b, a];
      yield* a.lock();
      yield* b.lock();
      yield* point(`plate${i}`, 'write');
      yield* b.unlock();
      yield* a.unlock();
    }
    return { threads: Array.from({ length: n }, (_, i) => ({ name: `P${i}`, op: eat(i) })) };
  };
}

/** A small deterministic PRNG (mulberry32), for building random programs from a seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A program given as plans: per thread, a list of action numbers (see {@link planProgram}). */
export type Plans = readonly (readonly number[])[];

/**
 * Plans of a seeded random program: `minThreads`..`maxThreads` threads (default 2..3)
 * of 1..`maxActions` actions (default 2).
 */
export function randomPlans(seed: number, minThreads = 2, maxThreads = 3, maxActions = 2): Plans {
  const rnd = prng(seed);
  const pick = (n: number): number => Math.floor(rnd() * n);
  const nThreads = minThreads + pick(maxThreads - minThreads + 1);
  return Array.from({ length: nThreads }, () =>
    Array.from({ length: 1 + pick(maxActions) }, () => pick(ACTIONS)),
  );
}

/** Number of distinct actions of {@link planProgram}. */
export const ACTIONS = 9;

/**
 * A program from plans. Actions: 0 read x; 1 write x (counted); 2 a critical section on
 * mutex m writing x; 3 trylock m; 4 rwsem reader section; 5 rwsem writer section
 * writing y; 6 down_read_trylock; 7 read y then write x under no lock; 8 mutex m then
 * rwsem reader nested, reading y. check() fails when x was written an odd number of
 * times while y was read as 0 by thread 0's first read (a data-dependent failure).
 */
export function planProgram(plans: Plans): ProgramFactory {
  return () => {
    const m = new ExclusiveLock('m', 'mutex');
    const s = new RwSemaphore('s');
    const state = { x: 0, y: 0, sawY: -1 };
    function* action(a: number, tid: number): Op<void> {
      switch (a) {
        case 0:
          yield* point('x', 'read');
          break;
        case 1:
          yield* point('x', 'write');
          state.x++;
          break;
        case 2:
          yield* m.lock();
          yield* point('x', 'write');
          state.x++;
          yield* m.unlock();
          break;
        case 3:
          if (yield* m.trylock()) yield* m.unlock();
          break;
        case 4:
          yield* s.downRead();
          yield* s.upRead();
          break;
        case 5:
          yield* s.downWrite();
          yield* point('y', 'write');
          state.y++;
          yield* s.upWrite();
          break;
        case 6:
          if (yield* s.downReadTrylock()) yield* s.upRead();
          break;
        case 7:
          yield* point('y', 'read');
          if (tid === 0 && state.sawY < 0) state.sawY = state.y;
          yield* point('x', 'write');
          state.x++;
          break;
        default:
          yield* m.lock();
          yield* s.downRead();
          yield* point('y', 'read');
          yield* s.upRead();
          yield* m.unlock();
          break;
      }
    }
    return {
      threads: plans.map((plan, i) => ({
        name: `T${i}`,
        op: (function* (): Op<void> {
          for (const a of plan) yield* action(a, i);
        })(),
      })),
      check: () =>
        state.x % 2 === 1 && state.sawY === 0 ? `odd x=${state.x} with y unseen` : null,
    };
  };
}

/**
 * The seeded random programs of the original cross-check (2 or 3 threads of 1 or 2
 * actions among the first 7, no check).
 */
export function randomProgram(seed: number): ProgramFactory {
  const rnd = prng(seed);
  const pick = (n: number): number => Math.floor(rnd() * n);
  const nThreads = 2 + pick(2);
  const plans = Array.from({ length: nThreads }, () =>
    Array.from({ length: 1 + pick(2) }, () => pick(7)),
  );
  const f = planProgram(plans);
  return () => {
    const p = f();
    return { threads: p.threads };
  };
}
