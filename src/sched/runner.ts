/**
 * Runners: drive operations step by step.
 *
 * - {@link runOp} drives one operation to completion with no other thread: the model as
 *   a plain synchronous library.
 * - {@link Runner} runs several threads under an explicit schedule (a list of thread
 *   ids, one per step), deterministically, detects blocked threads and deadlocks, and
 *   records a trace of every step.
 */
import type { Op, Step, StepKind } from './step.js';
import { SchedThread, setRunning } from './thread.js';

export interface TraceStep {
  /** Position in the execution, from 0. */
  readonly index: number;
  readonly tid: number;
  readonly thread: string;
  readonly obj: string;
  readonly kind: StepKind;
  readonly shared?: boolean;
  /** {@link Step.also}, when the step has extra written objects. */
  readonly also?: readonly string[];
  /** {@link Step.reads}, when the step has extra read objects. */
  readonly reads?: readonly string[];
  readonly what?: string;
}

export interface BlockedThread {
  readonly tid: number;
  readonly thread: string;
  /** The object the thread waits for and the function waiting. */
  readonly obj: string;
  readonly what?: string;
}

export type RunStatus = 'done' | 'deadlock' | 'crashed' | 'step-limit' | 'bad-schedule';

export interface RunResult {
  readonly status: RunStatus;
  readonly steps: number;
  /** The thread ids actually scheduled, one per step (replayable as a schedule). */
  readonly schedule: readonly number[];
  readonly trace: readonly TraceStep[];
  /** With status 'deadlock': every thread that could not run. */
  readonly blocked: readonly BlockedThread[];
  /** With status 'crashed': the thread whose step threw, and what it threw. */
  readonly crashed?: { readonly tid: number; readonly thread: string; readonly error: unknown };
  /** With status 'bad-schedule': why the schedule could not be followed. */
  readonly message?: string;
}

export class DeadlockError extends Error {
  constructor(
    message: string,
    readonly blocked: readonly BlockedThread[],
  ) {
    super(message);
    this.name = 'DeadlockError';
  }
}

/** Hooks for the layer above: called around each step, with the runner's logical clock. */
export interface RunnerHooks {
  beforeStep?(thread: SchedThread, step: Step, index: number): void;
  afterStep?(thread: SchedThread, step: Step, index: number): void;
}

export interface RunnerOptions {
  /** Keep a full trace (default true). */
  readonly record?: boolean;
  /** Stop after this many steps (default: unlimited). */
  readonly maxSteps?: number;
  readonly hooks?: RunnerHooks;
}

let activeRunner: Runner | null = null;

/** Steps executed so far by the runner that is running (0 outside a runner). */
export function logicalClock(): number {
  return activeRunner?.clock ?? 0;
}

export class Runner {
  readonly threads: SchedThread[] = [];
  readonly trace: TraceStep[] = [];
  readonly schedule: number[] = [];
  clock = 0;
  private last: SchedThread | null = null;
  private readonly record: boolean;
  private readonly maxSteps: number;
  private readonly hooks: RunnerHooks;
  private crash: RunResult['crashed'] | undefined;

  constructor(opts: RunnerOptions = {}) {
    this.record = opts.record ?? true;
    this.maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
    this.hooks = opts.hooks ?? {};
  }

  /** Adds a thread and runs it up to its first step (local work only). */
  spawn(name: string, op: Op<unknown>, ctx?: unknown): SchedThread {
    const t = new SchedThread(this.threads.length, name, op, ctx);
    this.threads.push(t);
    this.resume(t);
    return t;
  }

  /** Threads whose pending step can run now, in id order. */
  enabled(): SchedThread[] {
    return this.threads.filter((t) => isEnabled(t));
  }

  /** Threads that have a pending step that cannot run now. */
  blocked(): BlockedThread[] {
    return this.threads
      .filter((t) => !t.done && t.pending !== null && !isEnabled(t))
      .map((t) => ({ tid: t.id, thread: t.name, obj: t.pending!.obj, what: t.pending!.what }));
  }

  isFinished(): boolean {
    return this.crash !== undefined || this.threads.every((t) => t.done);
  }

  /** Runs the pending step of thread `tid`; returns false if it is not enabled. */
  step(tid: number): boolean {
    const t = this.threads[tid];
    if (!t || !isEnabled(t) || this.crash) return false;
    const step = t.pending!;
    const index = this.clock;
    this.hooks.beforeStep?.(t, step, index);
    if (this.record) {
      this.trace.push({
        index,
        tid: t.id,
        thread: t.name,
        obj: step.obj,
        kind: step.kind,
        ...(step.shared ? { shared: true } : {}),
        ...(step.also?.length ? { also: step.also } : {}),
        ...(step.reads?.length ? { reads: step.reads } : {}),
        ...(step.what !== undefined ? { what: step.what } : {}),
      });
    }
    this.schedule.push(t.id);
    this.clock++;
    this.last = t;
    this.resume(t);
    this.hooks.afterStep?.(t, step, index);
    return true;
  }

  /**
   * Runs to the end. At step i the thread `schedule[i]` runs; past the end of the
   * schedule the last thread keeps running while it can, else the lowest enabled id.
   */
  run(schedule: readonly number[] = []): RunResult {
    let i = 0;
    for (;;) {
      if (this.crash) return this.result('crashed');
      if (this.threads.every((t) => t.done)) return this.result('done');
      if (this.clock >= this.maxSteps) return this.result('step-limit');
      const en = this.enabled();
      if (en.length === 0) return this.result('deadlock');
      let next: SchedThread;
      if (i < schedule.length) {
        const want = schedule[i]!;
        const t = this.threads[want];
        if (!t || !isEnabled(t)) {
          const why = !t
            ? `no thread ${want}`
            : t.done
              ? `thread ${want} (${t.name}) has ended`
              : `thread ${want} (${t.name}) is blocked on ${t.pending?.obj}`;
          return this.result('bad-schedule', `schedule position ${i}: ${why}`);
        }
        next = t;
        i++;
      } else {
        next = this.last && isEnabled(this.last) ? this.last : en[0]!;
      }
      this.step(next.id);
    }
  }

  result(status: RunStatus, message?: string): RunResult {
    return {
      status,
      steps: this.clock,
      schedule: [...this.schedule],
      trace: this.trace,
      blocked: status === 'deadlock' ? this.blocked() : [],
      ...(this.crash ? { crashed: this.crash } : {}),
      ...(message !== undefined ? { message } : {}),
    };
  }

  private resume(t: SchedThread): void {
    const prevThread = setRunning(t);
    const prevRunner = activeRunner;
    activeRunner = this;
    try {
      const r = t.op.next();
      t.started = true;
      if (r.done) {
        t.done = true;
        t.pending = null;
        t.result = r.value;
      } else {
        t.pending = r.value;
      }
    } catch (e) {
      t.done = true;
      t.pending = null;
      t.error = e;
      this.crash = { tid: t.id, thread: t.name, error: e };
    } finally {
      setRunning(prevThread);
      activeRunner = prevRunner;
    }
  }
}

function isEnabled(t: SchedThread): boolean {
  if (t.done || t.pending === null) return false;
  const en = t.pending.enabled;
  return en === undefined || en();
}

/**
 * Drives one operation to completion as the only thread. A step that cannot run
 * (a lock held by nobody who can release it) is a deadlock and throws
 * {@link DeadlockError}. Errors thrown by the operation propagate unchanged.
 * Pass a {@link SchedThread} to run as a thread that persists across calls (so a lock
 * taken in one call can be released in the next, as one kernel task would).
 */
export function runOp<T>(op: Op<T>, as: string | SchedThread = 'main', ctx?: unknown): T {
  const t = typeof as === 'string' ? new SchedThread(0, as, op as Op<unknown>, ctx) : as;
  const name = t.name;
  const prev = setRunning(t);
  try {
    let r = op.next();
    while (!r.done) {
      const s = r.value;
      if (s.enabled && !s.enabled()) {
        throw new DeadlockError(`deadlock: ${name} waits for ${s.obj} in ${s.what ?? s.kind}`, [
          { tid: t.id, thread: name, obj: s.obj, what: s.what },
        ]);
      }
      r = op.next();
    }
    return r.value;
  } finally {
    setRunning(prev);
  }
}
