/**
 * Test helper: the explorer's sequential search on a scenario against brute force. Every
 * schedule within a preemption bound is enumerated (explore with maxPreemptions: no
 * reduction), each run is replayed with its trace and grouped into its Mazurkiewicz trace
 * by the explorer's own dependency relation (as src/sched/explore.test.ts does); the
 * optimal-DPOR search must explore every one of those traces, each once. A step whose
 * access to shared state is not announced makes two different behaviours one trace (or a
 * blocking step depend on another object), and the search then misses one of them.
 */
import { expect } from 'vitest';
import { scenarioFactory } from '../src/scenario/execute.js';
import type { ConcreteScenario } from '../src/index.js';
import { dependent, explore, type ProgramFactory } from '../src/sched/explore.js';
import { Runner, type TraceStep } from '../src/sched/runner.js';
import { set_call_path_capture } from '../src/kernel/kernel/callpath.js';

/** The trace key of a run: its events (up to a crash) and its ordered dependent pairs. */
function traceKey(
  tr: readonly TraceStep[],
  blocking: readonly boolean[],
  crashedAt: number,
): string {
  const dep = (i: number, j: number): boolean => {
    const a = tr[i]!;
    const b = tr[j]!;
    if (a.tid === b.tid) return false;
    return dependent(
      { ...a, ...(blocking[i] ? { enabled: () => true } : {}) },
      { ...b, ...(blocking[j] ? { enabled: () => true } : {}) },
    );
  };
  // A crash ends the run: only the events that happen before the crashing step count.
  const keep = tr.map(() => crashedAt < 0);
  if (crashedAt >= 0) {
    keep[crashedAt] = true;
    for (let j = crashedAt; j >= 0; j--) {
      if (!keep[j]) continue;
      for (let i = 0; i < j; i++) if (tr[i]!.tid === tr[j]!.tid || dep(i, j)) keep[i] = true;
    }
  }
  const local: string[] = [];
  const count = new Map<number, number>();
  for (const s of tr) {
    const n = count.get(s.tid) ?? 0;
    count.set(s.tid, n + 1);
    local.push(`${s.tid}:${n}`);
  }
  const pairs: string[] = [];
  for (let i = 0; i < tr.length; i++)
    for (let j = i + 1; j < tr.length; j++)
      if (keep[i] && keep[j] && dep(i, j)) pairs.push(`${local[i]}<${local[j]}`);
  return `${local
    .filter((_, i) => keep[i])
    .sort()
    .join(',')} | ${pairs.sort().join(' ')}`;
}

function keyOf(f: ProgramFactory, schedule: readonly number[]): string {
  const prog = f();
  const r = new Runner();
  for (const t of prog.threads) r.spawn(t.name, t.op, t.ctx);
  const blk: boolean[] = [];
  for (const tid of schedule) {
    blk.push(r.threads[tid]!.pending!.enabled !== undefined);
    if (!r.step(tid)) throw new Error(`schedule ${schedule.join('')} not runnable`);
  }
  const run = r.run([]);
  return traceKey(run.trace, blk, run.status === 'crashed' ? run.trace.length - 1 : -1);
}

export interface DporCheck {
  /** Traces of the schedules within the bound. */
  readonly brute: number;
  /** Executions of the sequential search (sleep-set blocked ones left out) and its traces. */
  readonly executions: number;
  readonly traces: number;
  readonly complete: boolean;
}

/**
 * Asserts that the sequential optimal-DPOR search of `s` on `version` explores each trace
 * at most once and every trace that has a schedule with at most `bound` preemptions.
 */
export function expectDporCoversBruteForce(
  s: ConcreteScenario,
  version: string,
  bound: number,
): DporCheck {
  const prev = set_call_path_capture(false);
  try {
    const f = scenarioFactory(s, version);
    const brute = new Set<string>();
    explore(f, { maxPreemptions: bound, onExecution: (run) => brute.add(keyOf(f, run.schedule)) });
    const seq: string[] = [];
    const r = explore(f, {
      onExecution: (run, { sleepBlocked }) => {
        if (!sleepBlocked) seq.push(keyOf(f, run.schedule));
      },
    });
    const got = new Set(seq);
    expect(r.complete).toBe(true);
    expect(got.size, 'a trace explored twice').toBe(seq.length);
    expect(
      [...brute].filter((k) => !got.has(k)),
      'traces the search missed',
    ).toEqual([]);
    return { brute: brute.size, executions: seq.length, traces: got.size, complete: r.complete };
  } finally {
    set_call_path_capture(prev);
  }
}
