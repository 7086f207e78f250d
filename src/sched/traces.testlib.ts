/**
 * Test helper: Mazurkiewicz trace keys of runs, by the explorer's own dependency relation
 * (the oracle of the brute-force cross-checks in explore.test.ts, parallel.test.ts and
 * scenarios/dpor.testlib.ts).
 *
 * A trace is identified by its events (thread id and position in its thread) and the
 * ordered pairs of dependent events of different threads. A crash ends the run: only the
 * events that happen before the crashing step count, so a run cut by a crash differs
 * from a complete one.
 */
import { dependent, type ProgramFactory, type ProgramInstance } from './explore.js';
import { Runner, type RunResult, type TraceStep } from './runner.js';

/** The key of a trace; `blocking(i)`: step i had an `enabled` predicate. */
export function traceKey(
  trace: readonly TraceStep[],
  blocking: (i: number) => boolean,
  crashedAt = -1,
): string {
  const dep = (i: number, j: number): boolean => {
    const a = trace[i]!;
    const b = trace[j]!;
    if (a.tid === b.tid) return false;
    return dependent(
      { ...a, ...(blocking(i) ? { enabled: () => true } : {}) },
      { ...b, ...(blocking(j) ? { enabled: () => true } : {}) },
    );
  };
  const keep = trace.map(() => crashedAt < 0);
  if (crashedAt >= 0) {
    keep[crashedAt] = true;
    for (let j = crashedAt; j >= 0; j--) {
      if (!keep[j]) continue;
      for (let i = 0; i < j; i++) if (trace[i]!.tid === trace[j]!.tid || dep(i, j)) keep[i] = true;
    }
  }
  const local: string[] = [];
  const count = new Map<number, number>();
  for (const s of trace) {
    const n = count.get(s.tid) ?? 0;
    count.set(s.tid, n + 1);
    local.push(`${s.tid}:${n}`);
  }
  const pairs: string[] = [];
  for (let i = 0; i < trace.length; i++) {
    for (let j = i + 1; j < trace.length; j++) {
      if (keep[i] && keep[j] && dep(i, j)) pairs.push(`${local[i]}<${local[j]}`);
    }
  }
  const events = local.filter((_, i) => keep[i]).sort();
  return `${events.join(',')} | ${pairs.sort().join(' ')}`;
}

/**
 * Replays `schedule` on a fresh instance with a full trace (then runs on, as the Runner
 * does past a schedule's end): the run's trace key, the run and the instance.
 */
export function replayKey(
  f: ProgramFactory,
  schedule: readonly number[],
): { key: string; run: RunResult; prog: ProgramInstance } {
  const prog = f();
  const r = new Runner();
  for (const t of prog.threads) r.spawn(t.name, t.op, t.ctx);
  const blk: boolean[] = [];
  for (const tid of schedule) {
    blk.push(r.threads[tid]!.pending!.enabled !== undefined);
    if (!r.step(tid)) throw new Error(`schedule ${schedule.join('.')} not runnable at ${tid}`);
  }
  const run = r.run([]);
  const crashedAt = run.status === 'crashed' ? run.trace.length - 1 : -1;
  return { key: traceKey(run.trace, (i) => blk[i] ?? false, crashedAt), run, prog };
}
