/**
 * A scenario made by a function, as a benchmark makes one, for the parallel-check tests:
 * `threads` threads each add 1 to a counter `sections` times, under a spinlock
 * (variant `locked`, SAFE) or as a plain read then write (variant `racy`, a lost update).
 */
import { defineScenario, type Scenario } from './scenario.js';
import { point, type Op } from '../sched/index.js';
import { spinlock_t, spin_lock, spin_unlock } from '../kernel/include/linux/spinlock.js';

interface State {
  n: number;
  lock: spinlock_t;
}

export function sectionsScenario(threads: number, sections: number): Scenario<State> {
  return defineScenario<State>({
    name: `sections-${threads}x${sections}`,
    description: `${threads} threads, ${sections} increments each`,
    machine: { ram: 256 * 2 ** 20 },
    setup: () => ({ n: 0, lock: new spinlock_t('sections.lock') }),
    threads: Object.fromEntries(
      Array.from({ length: threads }, (_, t) => [
        `t${t}`,
        function* (ctx, s: State): Op<void> {
          for (let i = 0; i < sections; i++) {
            if (ctx.params.locked) yield* spin_lock(s.lock);
            yield* point('sections.n', 'read', 'READ_ONCE');
            const v = s.n;
            yield* point('sections.n', 'write', 'WRITE_ONCE');
            s.n = v + 1;
            if (ctx.params.locked) yield* spin_unlock(s.lock);
          }
        },
      ]),
    ),
    check: (_ctx, s) => (s.n === threads * sections ? null : `n is ${s.n}`),
    variants: {
      locked: { params: { locked: true }, expect: { default: 'SAFE' } },
      racy: { params: { locked: false }, expect: { default: 'check' } },
    },
  });
}
