import { afterAll, describe, expect, it } from 'vitest';
import { BUILTIN_SCENARIOS } from '../../scenarios/index.js';
import { WorkerPool } from '../sched/pool.js';
import {
  checkCells,
  checkScenario,
  checkScenarioParallel,
  type CheckOptions,
  type CheckResult,
  type ScenarioSource,
} from './execute.js';
import { sectionsScenario } from './parallel-check.fixtures.js';
import { concreteScenarios, type ConcreteScenario } from './scenario.js';

const BUILTINS: ScenarioSource = {
  module: new URL('../../scenarios/index.ts', import.meta.url).href,
  export: 'BUILTIN_SCENARIOS',
};
const SECTIONS = (threads: number, sections: number): ScenarioSource => ({
  module: new URL('./parallel-check.fixtures.ts', import.meta.url).href,
  export: 'sectionsScenario',
  args: [threads, sections],
});

function builtin(id: string): ConcreteScenario {
  const c = BUILTIN_SCENARIOS.flatMap((s) => concreteScenarios(s)).find((x) => x.id === id);
  if (!c) throw new Error(`no built-in scenario ${id}`);
  return c;
}

/** The result without what may differ between the sequential and the parallel check. */
function comparable(r: CheckResult): unknown {
  const { jobs: _j, timeMs: _t, totalSteps: _s, sleepBlocked: _b, counterexample, ...rest } = r;
  if (!counterexample) return rest;
  const { found: _f, ...cx } = counterexample;
  return { ...rest, counterexample: cx };
}

// One pool for the file: workers start once (from the sources, through tsx).
const pool = new WorkerPool(2);
afterAll(() => pool.close());

describe('checkScenarioParallel', () => {
  // Scenarios with more than one execution, SAFE and violation verdicts, that meet the
  // explorer's assumptions (no infeasible reversal).
  const ids = [
    'driver-mmap/unsafe',
    'follow-pfnmap/unsafe',
    'kvm-remapped/fixed',
    'cma-pagecache/fixed-revoke',
  ];
  const modes: [string, CheckOptions][] = [
    ['stop at the first violation', {}],
    ['explore all', { all: true }],
  ];
  for (const [mode, opts] of modes) {
    it(`gives the sequential CheckResult on built-in scenarios, 5.10 and 6.18 (${mode})`, async () => {
      let parallel = 0;
      for (const id of ids) {
        for (const v of ['5.10', '6.18']) {
          const c = builtin(id);
          const seq = checkScenario(c, v, opts);
          const par = await checkScenarioParallel(c, v, {
            ...opts,
            pool,
            source: BUILTINS,
            sequentialFirst: 0,
          });
          expect(comparable(par), `${id} on ${v}`).toEqual(comparable(seq));
          expect(Object.keys(par.verdicts)).toEqual(Object.keys(seq.verdicts));
          if (par.jobs === 2) parallel++;
        }
      }
      expect(parallel).toBeGreaterThan(ids.length);
    });
  }

  it('rebuilds a scenario made by a function with arguments (the benchmark way)', async () => {
    const locked = concreteScenarios(sectionsScenario(3, 2))[0]!;
    const a = await checkScenarioParallel(locked, '6.18', {
      jobs: 2,
      pool,
      source: SECTIONS(3, 2),
      sequentialFirst: 0,
    });
    expect(a.jobs).toBe(2);
    expect(a.verdict).toBe('SAFE');
    // 3 threads x 2 critical sections of one lock: 6!/(2!2!2!) = 90 orders.
    expect(a.executions).toBe(90);
    expect(comparable(a)).toEqual(comparable(checkScenario(locked, '6.18')));
    // Two threads, one unlocked increment each: every violation is 'n is 1'.
    const racy = concreteScenarios(sectionsScenario(2, 1))[1]!;
    const b = await checkScenarioParallel(racy, '6.18', {
      jobs: 2,
      pool,
      source: SECTIONS(2, 1),
      sequentialFirst: 0,
    });
    const seq = checkScenario(racy, '6.18');
    expect(b.jobs).toBe(2);
    expect(b.verdict).toBe('check: n is 1');
    expect(b.verdict).toBe(seq.verdict);
    // The first failures found may differ; minimised, they have the same size.
    expect(b.counterexample!.minimal).toBe(true);
    expect([b.counterexample!.steps, b.counterexample!.preemptions]).toEqual([
      seq.counterexample!.steps,
      seq.counterexample!.preemptions,
    ]);
  });

  it('the same inputs give the same result, whatever the timing of the workers', async () => {
    const racy = concreteScenarios(sectionsScenario(3, 2))[1]!;
    const opts = { jobs: 2, pool, source: SECTIONS(3, 2), sequentialFirst: 0 };
    const a = await checkScenarioParallel(racy, '6.18', opts);
    const b = await checkScenarioParallel(racy, '6.18', opts);
    expect(comparable(b)).toEqual(comparable(a));
    expect(b.counterexample!.found).toEqual(a.counterexample!.found);
  });

  it('stays on this thread when the exploration ends within sequentialFirst executions', async () => {
    const locked = concreteScenarios(sectionsScenario(3, 2))[0]!;
    const source = SECTIONS(3, 2);
    const small = await checkScenarioParallel(locked, '6.18', {
      pool,
      source,
      sequentialFirst: 100,
    });
    expect(small.jobs).toBe(1);
    expect(small.executions).toBe(90);
    const big = await checkScenarioParallel(locked, '6.18', { pool, source, sequentialFirst: 20 });
    expect(big.jobs).toBe(2);
    expect(big.executions).toBe(90);
  });

  it('supports the preemption bound: the sequential verdicts and executions', async () => {
    for (const c of concreteScenarios(sectionsScenario(3, 2))) {
      const opts = { all: true, maxPreemptions: 1 };
      const seq = checkScenario(c, '6.18', opts);
      const par = await checkScenarioParallel(c, '6.18', {
        ...opts,
        pool,
        source: SECTIONS(3, 2),
        sequentialFirst: 0,
      });
      expect(par.jobs).toBe(2);
      expect(seq.complete).toBe(false);
      const { boundPruned: _a, ...p } = comparable(par) as Record<string, unknown>;
      const { boundPruned: _b, ...q } = comparable(seq) as Record<string, unknown>;
      expect(p, c.id).toEqual(q);
    }
  });

  it('needs a source that gives the scenario', async () => {
    const c = builtin('driver-mmap/fixed');
    await expect(checkScenarioParallel(c, '6.18', { jobs: 2, sequentialFirst: 0 })).rejects.toThrow(
      /jobs 2 needs a source/,
    );
    await expect(
      checkScenarioParallel(c, '6.18', { pool, source: SECTIONS(2, 1), sequentialFirst: 0 }),
    ).rejects.toThrow(/no scenario 'driver-mmap\/fixed' \(it has sections-2x1\/locked/);
  });
});

describe('checkCells', () => {
  it('runs whole checks on the workers; results in cell order, as checkScenario gives them', async () => {
    const cells = ['driver-mmap/unsafe', 'driver-mmap/fixed', 'follow-pfnmap/unsafe'].flatMap(
      (id) =>
        ['5.10', '6.18'].map((version) => ({ scenario: builtin(id), source: BUILTINS, version })),
    );
    const progress: [number, number][] = [];
    const got = await checkCells(cells, { trace: false }, pool, (done, n) =>
      progress.push([done, n]),
    );
    const want = cells.map((c) => checkScenario(c.scenario, c.version, { trace: false }));
    expect(got.map(({ timeMs: _t, ...r }) => r)).toEqual(want.map(({ timeMs: _t, ...r }) => r));
    expect(progress.at(-1)).toEqual([cells.length, want.reduce((n, r) => n + r.executions, 0)]);
  });

  it('rejects with the message of a check that throws', async () => {
    const cells = [{ scenario: builtin('driver-mmap/fixed'), source: BUILTINS, version: '6.18' }];
    await expect(checkCells(cells, { config: { CONFIG_NOPE: 'y' } }, pool)).rejects.toThrow(
      /^unknown config option CONFIG_NOPE/,
    );
  });
});
