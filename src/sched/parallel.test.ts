import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  explore,
  exploreSubtree,
  formatSchedule,
  type ExploreOptions,
  type ExploreProgress,
  type ProgramFactory,
} from './explore.js';
import * as fixtures from './explore.fixtures.js';
import { labelled } from './labels.fixtures.js';
import { exploreParallel, splitTasks, WorkerPool, type ParallelResult } from './parallel.js';
import { loadProgram } from './program-module.js';
import { replayKey } from './traces.testlib.js';

const FIXTURES = new URL('./explore.fixtures.ts', import.meta.url).href;

/** A trace's identity: the ordered dependent pairs of events of different threads. */
function traceKey(f: ProgramFactory, schedule: readonly number[]): string {
  return replayKey(f, schedule).key;
}

function sequentialKeys(
  f: ProgramFactory,
  opts: ExploreOptions,
): {
  keys: string[];
  failures: string[];
  executions: number;
} {
  const keys: string[] = [];
  const r = explore(f, {
    ...opts,
    onExecution: (run, { sleepBlocked }) => {
      if (!sleepBlocked) keys.push(traceKey(f, run.schedule));
    },
  });
  expect(r.complete).toBe(true);
  return {
    keys,
    failures: r.failures.map((x) => `${x.status}: ${x.message} @ ${traceKey(f, x.schedule)}`),
    executions: r.executions,
  };
}

const programs: [string, keyof typeof fixtures, unknown[]][] = [
  ['critical sections 3x2', 'criticalSections', [3, 2]],
  ['lost update, 3 threads', 'increment', [false, 3]],
  ['abba', 'abba', []],
  ['philosophers 3 (deadlock)', 'philosophers', [3, false]],
  ['philosophers 4, ordered', 'philosophers', [4, true]],
  ['rwsem r/w/r/w', 'rwsem', [[false, true, false, true]]],
  [
    'plan program with failures',
    'planProgram',
    [
      [
        [7, 5],
        [1, 8],
        [2, 6],
      ],
    ],
  ],
];

function sameAsSequential(
  name: string,
  par: ParallelResult,
  f: ProgramFactory,
  opts: ExploreOptions,
): void {
  const seq = sequentialKeys(f, opts);
  const keys = par.schedules!.map((s) => traceKey(f, s));
  expect(par.complete, name).toBe(true);
  // The union of the tasks' traces is the sequential result's, each trace once.
  expect([...keys].sort(), name).toEqual([...seq.keys].sort());
  expect(par.executions - par.sleepBlocked, name).toBe(keys.length);
  const failures = par.failures.map(
    (x) => `${x.status}: ${x.message} @ ${traceKey(f, x.schedule)}`,
  );
  expect([...failures].sort(), name).toEqual([...seq.failures].sort());
}

describe('splitTasks', () => {
  /** Explores every task of a split; returns the trace keys (in order) and blocked runs. */
  function runSplit(
    f: ProgramFactory,
    algorithm: 'optimal' | 'source',
    target: number,
  ): { keys: string[]; sleepBlocked: number; tasks: number } {
    const { tasks, droppedWeight } = splitTasks(f, { algorithm }, target);
    const keys: string[] = [];
    let weight = droppedWeight;
    let sleepBlocked = 0;
    for (const t of tasks) {
      weight += t.weight;
      const r = exploreSubtree(
        f,
        {
          algorithm,
          onExecution: (run, { sleepBlocked }) => {
            if (!sleepBlocked) keys.push(traceKey(f, run.schedule));
          },
        },
        t,
      );
      expect(r.complete).toBe(true);
      sleepBlocked += r.sleepBlocked;
    }
    expect(weight).toBeCloseTo(1, 9);
    return { keys, sleepBlocked, tasks: tasks.length };
  }

  const cases = (): [string, ProgramFactory][] => [
    ...programs.map(
      ([name, exp, args]) =>
        [name, (fixtures[exp] as (...a: unknown[]) => ProgramFactory)(...args)] as [
          string,
          ProgramFactory,
        ],
    ),
    ...Array.from(
      { length: 60 },
      (_, i) => [`seed ${i + 1}`, fixtures.randomProgram(i + 1)] as [string, ProgramFactory],
    ),
    ...Array.from(
      { length: 40 },
      (_, i) =>
        [`plans ${i}`, fixtures.planProgram(fixtures.randomPlans(2000 + i, 2, 3, 2))] as [
          string,
          ProgramFactory,
        ],
    ),
  ];

  it('optimal: the tasks partition the traces, each explored once', () => {
    let blocked = 0;
    let traces = 0;
    for (const [name, f] of cases()) {
      const seq = sequentialKeys(f, {});
      for (const target of [2, 3, 5, 16, 64]) {
        const got = runSplit(f, 'optimal', target);
        expect(new Set(got.keys).size, `${name} target ${target}: twice`).toBe(got.keys.length);
        expect([...got.keys].sort(), `${name} target ${target}`).toEqual([...seq.keys].sort());
        blocked += got.sleepBlocked;
        traces += got.keys.length;
      }
    }
    // Measured, over the 107 programs and 5 splits: 3615 traces, each once, and 497
    // executions that end sleep-set blocked (the overhead of splitting optimal-DPOR).
    expect({ traces, blocked }).toEqual({ traces: 3615, blocked: 497 });
  });

  it('optimal: partition on random programs (fast-check)', () => {
    const per = [1, 1, 3, 2, 2, 3, 2, 2, 5];
    const plans = fc
      .array(
        fc.array(fc.integer({ min: 0, max: fixtures.ACTIONS - 1 }), {
          minLength: 1,
          maxLength: 3,
        }),
        { minLength: 2, maxLength: 4 },
      )
      .filter((p) => p.flat().reduce((n, a) => n + per[a]!, 0) <= 12);
    fc.assert(
      fc.property(plans, fc.integer({ min: 2, max: 40 }), (p, target) => {
        const f = fixtures.planProgram(p);
        const seq = sequentialKeys(f, {});
        const got = runSplit(f, 'optimal', target);
        expect(new Set(got.keys).size).toBe(got.keys.length);
        expect([...got.keys].sort()).toEqual([...seq.keys].sort());
      }),
      { numRuns: 50, seed: 11 },
    );
  });

  it('source: the union of the tasks covers every trace', () => {
    for (const [name, f] of cases()) {
      const seq = sequentialKeys(f, { algorithm: 'source' });
      for (const target of [2, 5, 16]) {
        const got = runSplit(f, 'source', target);
        expect(new Set(got.keys), `${name} target ${target}`).toEqual(new Set(seq.keys));
      }
    }
  });

  it('bounded: the tasks are the schedule prefixes within the bound', () => {
    const f = fixtures.increment(false, 3);
    for (const k of [0, 1, 2]) {
      const seq = explore(f, { maxPreemptions: k });
      const { tasks, boundPruned } = splitTasks(f, { maxPreemptions: k }, 8);
      let executions = 0;
      let pruned = boundPruned;
      for (const t of tasks) {
        const r = exploreSubtree(f, { maxPreemptions: k }, t);
        executions += r.executions;
        pruned += r.boundPruned;
      }
      expect(executions).toBe(seq.executions);
      expect(pruned > 0).toBe(seq.boundPruned > 0);
    }
  });
});

describe('exploreParallel (worker threads, from the TypeScript sources)', () => {
  it.each(programs)(
    '%s: jobs=2 gives the sequential traces and failures',
    async (name, exp, args) => {
      const make = fixtures[exp] as (...a: unknown[]) => ProgramFactory;
      const par = await exploreParallel(
        { module: FIXTURES, export: exp, args },
        { jobs: 2, collectSchedules: true },
      );
      expect(par.jobs).toBe(2);
      sameAsSequential(name, par, make(...args), {});
    },
  );

  it('source-DPOR and the bounded mode in parallel', async () => {
    const f = fixtures.philosophers(3, false);
    const src = await exploreParallel(
      { module: FIXTURES, export: 'philosophers', args: [3, false] },
      { jobs: 2, algorithm: 'source', collectSchedules: true },
    );
    const seq = sequentialKeys(f, { algorithm: 'source' });
    expect(new Set(src.schedules!.map((s) => traceKey(f, s)))).toEqual(new Set(seq.keys));
    const b = await exploreParallel(
      { module: FIXTURES, export: 'increment', args: [false, 3] },
      { jobs: 2, maxPreemptions: 1 },
    );
    const bs = explore(fixtures.increment(false, 3), { maxPreemptions: 1 });
    expect(b.executions).toBe(bs.executions);
    expect(b.failures.length).toBe(bs.failures.length);
    expect(b.complete).toBe(false);
  });

  it('stopOnFailure stops at a failure; the first failure replays and can be minimised', async () => {
    const par = await exploreParallel(
      { module: FIXTURES, export: 'philosophers', args: [3, false] },
      { jobs: 2, stopOnFailure: true },
    );
    expect(par.failures).toHaveLength(1);
    expect(par.complete).toBe(false);
    expect(par.failures[0]!.status).toBe('deadlock');
    const f = await loadProgram({ module: FIXTURES, export: 'philosophers', args: [3, false] });
    const seq = explore(f, { stopOnFailure: true });
    expect(seq.failures[0]!.message).toBe(par.failures[0]!.message);
  });

  it('reports progress with an estimate', async () => {
    const calls: ExploreProgress[] = [];
    const par = await exploreParallel(
      { module: FIXTURES, export: 'criticalSections', args: [3, 3] },
      { jobs: 2, progressEvery: 200, onProgress: (p) => calls.push(p) },
    );
    expect(par.executions - par.sleepBlocked).toBe(1680);
    expect(calls.length).toBeGreaterThan(0);
    for (let i = 1; i < calls.length; i++) {
      expect(calls[i]!.executions).toBeGreaterThanOrEqual(calls[i - 1]!.executions + 200);
    }
    for (const c of calls) {
      expect(c.fractionDone).toBeGreaterThan(0);
      expect(c.fractionDone).toBeLessThanOrEqual(1);
      expect(c.estimatedTotal).toBeGreaterThanOrEqual(c.executions);
    }
  });

  it('rejects a module export that is not a program', async () => {
    await expect(
      exploreParallel({ module: FIXTURES, export: 'ACTIONS' }, { jobs: 2 }),
    ).rejects.toThrow(/export 'ACTIONS' is not a function/);
  });
});

const DIST = fileURLToPath(new URL('../../dist/src/sched/parallel.js', import.meta.url));
const DIST_FIXTURES = fileURLToPath(
  new URL('../../dist/src/sched/explore.fixtures.js', import.meta.url),
);

describe('exploreParallel from the built JavaScript (dist/)', () => {
  // CI builds before testing; skipped when dist/ has no build of this module yet.
  it.skipIf(!existsSync(DIST) || !existsSync(DIST_FIXTURES))(
    'runs jobs=2 with the worker entry resolved in dist/',
    () => {
      const script = `
        const { exploreParallel } = await import(${JSON.stringify(DIST)});
        const r = await exploreParallel(
          { module: ${JSON.stringify(DIST_FIXTURES)}, export: 'philosophers', args: [3, false] },
          { jobs: 2 },
        );
        console.log(JSON.stringify({ executions: r.executions, sleepBlocked: r.sleepBlocked,
          failures: r.failures.map((f) => f.message).sort(), complete: r.complete }));`;
      const dir = mkdtempSync(join(tmpdir(), 'pfnsim-parallel-'));
      const file = join(dir, 'run.mjs');
      writeFileSync(file, script);
      const out = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
      rmSync(dir, { recursive: true, force: true });
      expect(out.stderr).toBe('');
      const got = JSON.parse(out.stdout) as {
        executions: number;
        sleepBlocked: number;
        failures: string[];
        complete: boolean;
      };
      const seq = explore(fixtures.philosophers(3, false));
      expect(got.complete).toBe(true);
      expect(got.executions - got.sleepBlocked).toBe(seq.executions);
      expect(got.failures).toEqual(seq.failures.map((f) => f.message).sort());
    },
  );
});

const LABELLED = new URL('./labels.fixtures.ts', import.meta.url).href;

describe('exploreParallel: labels, stopOnFailure and a shared pool', () => {
  it('labels are summed over the tasks: the sequential counts', async () => {
    const programs: [Parameters<typeof labelled>[0], ...unknown[]][] = [
      ['criticalSections', 3, 2],
      ['increment', false, 3],
    ];
    for (const args of programs) {
      const seq = explore(labelled(...args));
      const par = await exploreParallel(
        { module: LABELLED, export: 'labelled', args: [...args] },
        { jobs: 2 },
      );
      expect(par.complete).toBe(true);
      expect(par.labels, args[0]).toEqual(seq.labels);
      expect(par.labels.done).toBe(par.executions - par.sleepBlocked);
      expect(par.failures.map((f) => f.message).sort()).toEqual(
        seq.failures.map((f) => f.message).sort(),
      );
    }
  });

  it('stopOnFailure counts the tasks up to the first failing one, in task order', async () => {
    const f = labelled('increment', false, 3);
    // What the merge must give: tasks in order, each stopping at its own first failure,
    // up to and including the first task that fails.
    const { tasks } = splitTasks(f, {}, 2 * 8);
    let executions = 0;
    let first: string | undefined;
    for (const t of tasks) {
      const r = exploreSubtree(f, { stopOnFailure: true }, t);
      executions += r.executions;
      if (r.failures.length > 0) {
        first = formatSchedule(r.failures[0]!.schedule);
        break;
      }
    }
    expect(first).toBeDefined();
    for (let i = 0; i < 2; i++) {
      const par = await exploreParallel(
        { module: LABELLED, export: 'labelled', args: ['increment', false, 3] },
        { jobs: 2, stopOnFailure: true },
      );
      expect(par.complete).toBe(false);
      expect(par.executions).toBe(executions);
      expect(par.failures.map((x) => formatSchedule(x.schedule))).toEqual([first]);
    }
  });

  it('a shared pool serves several explorations and module calls, and stays open', async () => {
    const pool = new WorkerPool(2);
    try {
      const a = await exploreParallel(
        { module: FIXTURES, export: 'criticalSections', args: [3, 2] },
        { pool },
      );
      const b = await exploreParallel(
        { module: FIXTURES, export: 'increment', args: [false, 3] },
        { pool },
      );
      expect(a.jobs).toBe(2);
      expect(a.executions - a.sleepBlocked).toBe(90);
      expect(b.executions - b.sleepBlocked).toBe(explore(fixtures.increment(false, 3)).executions);
      const plans = await pool.call({
        module: FIXTURES,
        export: 'randomPlans',
        args: [5, 2, 3, 2],
      });
      expect(plans).toEqual(fixtures.randomPlans(5, 2, 3, 2));
      await expect(pool.call({ module: FIXTURES, export: 'nope' })).rejects.toThrow(
        /export 'nope' is not a function/,
      );
      // A failed call leaves the pool usable.
      expect(
        await pool.call({ module: FIXTURES, export: 'randomPlans', args: [5, 2, 3, 2] }),
      ).toEqual(plans);
    } finally {
      await pool.close();
    }
  });
});
