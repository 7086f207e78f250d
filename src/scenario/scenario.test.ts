import { describe, expect, it } from 'vitest';
import {
  concreteScenarios,
  defineScenario,
  expectedFor,
  resolveExpectations,
  verdictCode,
  verdictMatches,
  ScenarioError,
  type ScenarioSpec,
} from './scenario.js';
import { checkScenario, runScenario } from './execute.js';
import { BUILTIN_SCENARIOS } from '../../scenarios/index.js';
import { set_call_path_capture } from '../kernel/kernel/callpath.js';
import { concreteScenarios as concreteOf } from './scenario.js';
import { point, type Op } from '../sched/index.js';
import { spinlock_t, spin_lock, spin_unlock } from '../kernel/include/linux/spinlock.js';
import { BUG, WARN } from '../kernel/kernel/panic.js';
import { alloc_page, bad_page, GFP_KERNEL } from '../kernel/mm/page_alloc.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { SUPPORTED_VERSIONS } from '../kernel/version.js';
import type { Process } from './process.js';

/** A small machine: 256 MiB of RAM, the least the model boots. */
const machine = { ram: 256 * 2 ** 20 };

function one<S>(spec: Omit<ScenarioSpec<S>, 'expect'> & { expect?: ScenarioSpec<S>['expect'] }) {
  return concreteScenarios(
    defineScenario<S>({ expect: { default: 'SAFE' }, machine, ...spec }),
  )[0]!;
}

/** Two threads each read a shared counter and write it back plus one: the lost update. */
function counter(atomic: boolean) {
  return one<{ n: number; lock: spinlock_t }>({
    name: atomic ? 'counter-locked' : 'counter-racy',
    description: 'two increments of one counter',
    setup: () => ({ n: 0, lock: new spinlock_t('counter.lock') }),
    threads: Object.fromEntries(
      ['a', 'b'].map((t) => [
        t,
        function* (_ctx, s): Op<void> {
          if (atomic) yield* spin_lock(s.lock);
          yield* point('counter', 'read', 'READ_ONCE');
          const v = s.n;
          yield* point('counter', 'write', 'WRITE_ONCE');
          s.n = v + 1;
          if (atomic) yield* spin_unlock(s.lock);
        },
      ]),
    ),
    check: (_ctx, s) => (s.n === 2 ? null : `counter is ${s.n}, not 2`),
  });
}

describe('defineScenario', () => {
  it('rejects a bad name, a missing description, no threads, a bad kind, a missing expect', () => {
    const ok = {
      name: 'x',
      description: 'd',
      threads: { t: function* () {} },
      expect: { default: 'SAFE' },
    };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...ok, name: 'Bad Name' }, /name must be lowercase words with dashes/],
      [{ ...ok, description: '' }, /description is required/],
      [{ ...ok, threads: {} }, /at least one thread/],
      [{ ...ok, threads: { t: 3 } }, /thread 't' must be a generator function/],
      [{ ...ok, threads: { t: { kind: 'gpu', run: function* () {} } } }, /kind 'gpu'/],
      [{ ...ok, expect: undefined }, /expect is required/],
      [{ ...ok, warn: 'loud' }, /warn must be 'report' or 'violation'/],
      [{ ...ok, expect: undefined, variants: { a: {} } }, /variant 'a' has no expect/],
    ];
    for (const [spec, re] of bad) {
      expect(() => defineScenario(spec as never)).toThrow(ScenarioError);
      expect(() => defineScenario(spec as never)).toThrow(re);
    }
  });

  it('variants stand for one concrete scenario each, named name/variant, with merged config', () => {
    const s = defineScenario({
      name: 'v',
      description: 'd',
      config: { CONFIG_DEBUG_VM: 'y' },
      threads: { t: function* () {} },
      expect: { default: 'SAFE' },
      variants: {
        unsafe: { expect: { default: 'stale-pfn' }, config: { CONFIG_PFNSAN: 'y' } },
        fixed: { params: { fixed: true } },
      },
    });
    const cs = concreteScenarios(s);
    expect(cs.map((c) => c.id)).toEqual(['v/unsafe', 'v/fixed']);
    expect(cs[0]!.config).toEqual({ CONFIG_DEBUG_VM: 'y', CONFIG_PFNSAN: 'y' });
    expect(expectedFor(cs[0]!, '6.12')).toEqual(['stale-pfn']);
    expect(expectedFor(cs[1]!, '6.12')).toEqual(['SAFE']);
    expect(cs[1]!.params).toEqual({ fixed: true });
  });
});

describe('resolveExpectations', () => {
  it('a version key beats a range, a range beats default, V+ runs to the newest version', () => {
    const m = resolveExpectations({
      '5.7-5.12': 'stale-pfn',
      '5.10': 'BUG',
      '6.12+': ['SAFE', 'WARN'],
      default: 'check',
    });
    expect(m.get('5.7')).toEqual(['stale-pfn']);
    expect(m.get('5.10')).toEqual(['BUG']);
    expect(m.get('5.13')).toEqual(['check']);
    expect(m.get('6.18')).toEqual(['SAFE', 'WARN']);
    expect(m.size).toBe(SUPPORTED_VERSIONS.length);
  });

  it('rejects unknown versions, backwards or overlapping ranges, and gaps', () => {
    expect(() => resolveExpectations({ '5.9': 'SAFE', default: 'SAFE' })).toThrow(/'5.9'/);
    expect(() => resolveExpectations({ '6.1-5.7': 'SAFE' })).toThrow(/backwards/);
    expect(() => resolveExpectations({ '5.7-6.1': 'SAFE', '6.1+': 'BUG' })).toThrow(
      /'5.7-6.1' and '6.1\+' overlap at 6.1/,
    );
    expect(() => resolveExpectations({ '5.7-6.1': 'SAFE' })).toThrow(/nothing for 6.5/);
    expect(() => resolveExpectations({ latest: 'SAFE' })).toThrow(/not a version/);
  });

  it("verdicts match by code: 'check' matches 'check: ...'; codes drop the message", () => {
    expect(verdictMatches('check: counter is 1', ['check'])).toBe(true);
    expect(verdictMatches('check: counter is 1', ['SAFE'])).toBe(false);
    expect(verdictMatches('stale-pfn', ['stale-pfn', 'check'])).toBe(true);
    expect(verdictCode('check: counter is 1')).toBe('check');
    expect(verdictCode('SAFE')).toBe('SAFE');
  });
});

describe('checkScenario', () => {
  it('finds the lost update, minimises it to one preemption, and the replay reproduces it', () => {
    const c = counter(false);
    const r = checkScenario(c, '6.12');
    expect(r.verdict).toBe('check: counter is 1, not 2');
    expect(r.matches).toBe(false);
    const ce = r.counterexample!;
    expect(ce.preemptions).toBe(1);
    expect(ce.steps).toBe(4);
    expect(ce.minimal).toBe(true);
    expect(ce.replay).toBe(`pfnsim run counter-racy --kernel 6.12 --schedule ${ce.schedule}`);
    const t = runScenario(c, '6.12', {}, ce.schedule);
    expect(t.verdict).toBe('check: counter is 1, not 2');
    expect(t).toEqual(ce.trace);
  });

  it('the locked counter is SAFE over every interleaving (DPOR: 2 traces, lock order)', () => {
    const r = checkScenario(counter(true), '6.12');
    expect(r.verdict).toBe('SAFE');
    expect(r.complete).toBe(true);
    expect(r.verdicts.SAFE).toBe(2);
    expect(r.counterexample).toBeUndefined();
  });

  it('independent threads are one execution', () => {
    const c = one<{ a: number[] }>({
      name: 'independent',
      description: 'three threads, three objects',
      setup: () => ({ a: [0, 0, 0] }),
      threads: Object.fromEntries(
        [0, 1, 2].map((i) => [
          `t${i}`,
          function* (_ctx, s): Op<void> {
            yield* point(`obj${i}`, 'write');
            s.a[i] = 1;
            yield* point(`obj${i}`, 'read');
          },
        ]),
      ),
    });
    const r = checkScenario(c, '6.18');
    expect(r.executions).toBe(1);
    expect(r.complete).toBe(true);
  });

  it('random and PCT modes are seeded and find the lost update', () => {
    const a = checkScenario(counter(false), '6.12', { random: { runs: 50, seed: 7 } });
    const b = checkScenario(counter(false), '6.12', { random: { runs: 50, seed: 7 } });
    expect(a.mode).toBe('random');
    expect(a.verdict).toBe('check: counter is 1, not 2');
    expect(a.counterexample!.schedule).toBe(b.counterexample!.schedule);
    const p = checkScenario(counter(false), '6.12', { pct: { depth: 2, runs: 50, seed: 1 } });
    expect(p.verdict).toBe('check: counter is 1, not 2');
  });

  it("'n/a' versions are not run", () => {
    const c = one({
      name: 'na',
      description: 'only 6.12+',
      threads: { t: function* () {} },
      expect: { '6.12+': 'SAFE', default: 'n/a' },
    });
    const r = checkScenario(c, '5.10');
    expect(r.mode).toBe('skipped');
    expect(r.executions).toBe(0);
    expect(r.matches).toBe(true);
  });
});

describe('verdicts', () => {
  it('BUG: a thread that oopses ends the execution with BUG', () => {
    const c = one({
      name: 'oops',
      description: 'BUG()',
      threads: {
        t: function* (): Op<void> {
          yield* point('x', 'write');
          BUG('model test');
        },
      },
    });
    const t = runScenario(c, '6.12');
    expect(t.status).toBe('crashed');
    expect(t.verdict).toBe('BUG');
    expect(t.log.some((l) => l.text.includes('kernel BUG at'))).toBe(true);
  });

  it('deadlock: ABBA lock order', () => {
    const c = one<{ a: spinlock_t; b: spinlock_t }>({
      name: 'abba',
      description: 'two locks taken in opposite orders',
      setup: () => ({ a: new spinlock_t('A'), b: new spinlock_t('B') }),
      threads: {
        t0: function* (_c, s): Op<void> {
          yield* spin_lock(s.a);
          yield* spin_lock(s.b);
          yield* spin_unlock(s.b);
          yield* spin_unlock(s.a);
        },
        t1: function* (_c, s): Op<void> {
          yield* spin_lock(s.b);
          yield* spin_lock(s.a);
          yield* spin_unlock(s.a);
          yield* spin_unlock(s.b);
        },
      },
    });
    // pfnsan's lock-order check reports the cycle first (an execution that takes both
    // orders without deadlocking); without the sanitizer the explorer finds the deadlock.
    expect(checkScenario(c, '6.12').verdict).toBe('lock-cycle');
    const r = checkScenario(c, '6.12', { config: { CONFIG_PFNSAN: 'n' } });
    expect(r.verdict).toBe('deadlock');
    // 0.1: t0 takes A, t1 takes B; then both block.
    expect(r.counterexample!.schedule).toBe('0.1');
    expect(runScenario(c, '6.12', { CONFIG_PFNSAN: 'n' }, '0.1').status).toBe('deadlock');
    expect(r.counterexample!.replay).toBe(
      'pfnsim run abba --kernel 6.12 --config CONFIG_PFNSAN=n --schedule 0.1',
    );
  });

  it('bad-page: bad_page() taints TAINT_BAD_PAGE', () => {
    const c = one({
      name: 'badpage',
      description: 'a bad page report',
      threads: {
        t: function* (): Op<void> {
          yield* point('x', 'write');
          bad_page(alloc_page(GFP_KERNEL)!, 'model test');
        },
      },
    });
    expect(runScenario(c, '6.12').verdict).toBe('bad-page');
  });

  it("WARN is reported but SAFE by default, and a violation with warn: 'violation'", () => {
    const spec = {
      name: 'warns',
      description: 'a WARN',
      threads: {
        t: function* (): Op<void> {
          yield* point('x', 'write');
          WARN(true, 'model test');
        },
      },
    };
    const quiet = checkScenario(one(spec), '6.12');
    expect(quiet.verdict).toBe('SAFE');
    expect(quiet.warnings).toBe(1);
    const strict = checkScenario(one({ ...spec, warn: 'violation' }), '6.12');
    expect(strict.verdict).toBe('WARN');
  });

  it('error: a thread that throws something else is a model or scenario error', () => {
    const c = one({
      name: 'throws',
      description: 'throws',
      threads: {
        t: function* (): Op<void> {
          yield* point('x', 'write');
          throw new TypeError('oops');
        },
      },
    });
    expect(runScenario(c, '6.12').verdict).toBe('error: TypeError: oops');
  });
});

describe('runScenario traces', () => {
  const anon = one<{ p: Process; addr: number }>({
    name: 'anon',
    description: 'a process writes two anonymous pages',
    setup(ctx) {
      const p = ctx.spawnProcess('app', { vdso: false });
      const addr = p.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      ctx.note(`mapped at 0x${addr.toString(16)}`);
      return { p, addr };
    },
    threads: {
      writer: {
        kind: 'cpu',
        as: (_ctx, s) => s.p,
        *run(ctx, s): Op<void> {
          yield* s.p.op.store(s.addr, [1]);
          yield* s.p.op.store(s.addr + 4096, [2]);
          ctx.note('stored');
        },
      },
    },
  });

  it('the same schedule gives the identical trace JSON', () => {
    const a = runScenario(anon, '6.12');
    const b = runScenario(anon, '6.12', {}, a.schedule);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(a.threads).toEqual([{ tid: 0, name: 'writer', kind: 'cpu' }]);
    expect(a.notes.map((n) => [n.thread, n.text])).toEqual([
      ['setup', `mapped at 0x${a.snapshots[0]!.processes[0]!.vmas[0]!.start.toString(16)}`],
      ['writer', 'stored'],
    ]);
  });

  it('records the locks held after each step and snapshots after setup and changed steps', () => {
    const t = runScenario(anon, '6.12');
    const lockStep = t.steps.find((s) => s.kind === 'acquire' && s.obj.endsWith('mmap_lock'));
    expect(lockStep?.held).toContain(`${lockStep!.obj}(read)`);
    expect(t.snapshots[0]!.step).toBe(-1);
    // After setup: one VMA, nothing present; at the end two writable PTEs.
    const first = t.snapshots[0]!.processes[0]!;
    expect(first.vmas).toHaveLength(1);
    expect(first.vmas[0]!.flags).toEqual(
      expect.arrayContaining(['VM_READ', 'VM_WRITE', 'VM_MAYREAD', 'VM_MAYWRITE']),
    );
    expect(first.ptes).toEqual([]);
    const last = t.snapshots.at(-1)!.processes[0]!;
    expect(last.ptes.map((e) => [e.addr - last.vmas[0]!.start, e.level, e.write])).toEqual([
      [0, 'pte', true],
      [4096, 'pte', true],
    ]);
    expect(t.snapshots.at(-1)!.frames.map((f) => f.pfn)).toEqual(
      [...last.ptes.map((e) => e.pfn)].sort((x, y) => x - y),
    );
    expect(t.verdict).toBe('SAFE');
    expect(t.replay).toBe(`pfnsim run anon --kernel 6.12 --schedule ${'0*' + t.steps.length}`);
  });
});

describe('checkScenario progress', () => {
  it('reports executions with the explorer estimate of the total; the last estimate is the count', () => {
    // 3 threads x 3 critical sections of one lock: 1680 Mazurkiewicz traces (9!/(3!3!3!)).
    const c = one<{ lock: spinlock_t }>({
      name: 'three-by-three',
      description: '3 threads, 3 critical sections each',
      setup: () => ({ lock: new spinlock_t('cs.lock') }),
      threads: Object.fromEntries(
        ['a', 'b', 'c'].map((t) => [
          t,
          function* (_ctx, s): Op<void> {
            for (let i = 0; i < 3; i++) {
              yield* spin_lock(s.lock);
              yield* spin_unlock(s.lock);
            }
          },
        ]),
      ),
    });
    const seen: [number, number | undefined][] = [];
    const r = checkScenario(c, '6.18', { onProgress: (n, est) => seen.push([n, est]) });
    expect(r.verdict).toBe('SAFE');
    // At least the 1680 traces of the threads (the scenario's own thread start-up steps can
    // add a few orders).
    expect(r.executions).toBeGreaterThanOrEqual(1680);
    expect(seen.at(-1)![0]).toBe(r.executions);
    const estimates = seen.map(([, e]) => e).filter((e): e is number => e !== undefined);
    expect(estimates.length).toBeGreaterThan(100);
    // Near the end the estimate has converged to the real total.
    expect(Math.abs(estimates.at(-1)! - r.executions)).toBeLessThanOrEqual(r.executions * 0.05);
  });
});

describe('call paths: searched without, printed with', () => {
  it("the counterexample's trace has the report's call paths; the setting is restored", () => {
    const c = BUILTIN_SCENARIOS.flatMap((x) => concreteOf(x)).find(
      (x) => x.id === 'follow-pfnmap/unsafe',
    )!;
    const r = checkScenario(c, '6.18');
    expect(r.verdict).toBe('stale-pfn');
    const rep = r.counterexample!.trace!.reports[0]!;
    expect(rep.code).toBe('stale-pfn');
    expect(rep.obtained!.path.some((f) => f.startsWith('follow_pfnmap_start'))).toBe(true);
    expect(rep.used.path.length).toBeGreaterThan(0);
    // checkScenario left capture on (the default), as it found it.
    expect(set_call_path_capture(true)).toBe(true);
  });
});
