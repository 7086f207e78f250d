/**
 * Test helper: the explorer's sequential search on a scenario against brute force. Every
 * schedule within a preemption bound is enumerated (explore with maxPreemptions: no
 * reduction), each run is replayed with its trace and grouped into its Mazurkiewicz trace
 * by the explorer's own dependency relation (src/sched/traces.testlib.ts); the
 * optimal-DPOR search must explore every one of those traces, each once. A step whose
 * access to shared state is not announced makes two different behaviours one trace (or a
 * blocking step depend on another object), and the search then misses one of them.
 */
import { expect } from 'vitest';
import { scenarioFactory } from '../src/scenario/execute.js';
import type { ConcreteScenario } from '../src/index.js';
import { explore, type ProgramFactory } from '../src/sched/explore.js';
import { replayKey } from '../src/sched/traces.testlib.js';
import { set_call_path_capture } from '../src/kernel/kernel/callpath.js';

function keyOf(f: ProgramFactory, schedule: readonly number[]): string {
  return replayKey(f, schedule).key;
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
