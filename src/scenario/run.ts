/**
 * Running a set of named threads in a kernel under a schedule and turning the result into
 * a trace document.
 */
import type { Op, Runner } from '../sched/index.js';
import type { Kernel } from '../kernel/kernel/kernel.js';
import { TRACE_FORMAT, TRACE_VERSION, type Trace, type TraceNote } from '../report/format.js';
import { KernelBug } from '../kernel/kernel/panic.js';

export interface ThreadSpec {
  readonly name: string;
  readonly op: Op<unknown>;
  /** The kernel task the thread runs as (its `current`). */
  readonly task?: unknown;
}

/** Notes a scenario makes during a run, stamped with the current step. */
export class Notes {
  readonly list: TraceNote[] = [];
  constructor(private readonly k: Kernel) {}
  add(thread: string, text: string): void {
    this.list.push({ step: this.k.step, thread, text });
  }
}

export function runThreads(
  scenario: string,
  k: Kernel,
  threads: readonly ThreadSpec[],
  schedule: readonly number[],
  notes: Notes,
  /** Steps the runner before the schedule is followed (a scenario's default interleaving). */
  drive?: (r: Runner) => void,
): Trace {
  const r = k.runner();
  for (const t of threads) r.spawn(t.name, t.op, t.task);
  if (drive && schedule.length === 0) drive(r);
  const res = r.run(schedule);
  let error: string | undefined;
  if (res.status === 'crashed' && res.crashed) {
    const e = res.crashed.error;
    error =
      e instanceof KernelBug
        ? e.message
        : e instanceof Error
          ? `${e.name}: ${e.message}`
          : String(e);
  } else if (res.status === 'deadlock') {
    error = `deadlock: ${res.blocked.map((b) => `${b.thread} waits for ${b.obj}`).join('; ')}`;
  } else if (res.message) {
    error = res.message;
  }
  return {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    scenario,
    kernel: { version: k.version.name, config: { ...k.config } },
    threads: threads.map((t, i) => ({ tid: i, name: t.name })),
    schedule: res.schedule,
    status: res.status,
    steps: res.trace.map((s) => ({ ...s })),
    log: k.log.map((l) => ({ ...l })),
    notes: notes.list,
    reports: [],
    snapshots: [],
    ...(error !== undefined ? { error } : {}),
  };
}
