/**
 * Parallel exploration over worker threads.
 *
 * Split. The main thread expands the top of the exploration tree by replaying schedule
 * prefixes: at a node with sleep set S and candidate threads c1..cm (the enabled
 * threads not in S, in id order) it makes one task per ci, with the sleep set of
 * {@link exploreSubtree} after ci: the threads of S and c1..c(i-1) whose next steps are
 * independent of ci's. Every trace from the node that has no initial in S has a first
 * ci among its initials and belongs to that task alone, so the tasks partition the
 * traces (a task whose traces all start with a sleeping thread finds none: its
 * executions end sleep-set blocked, counted in `sleepBlocked`). Nodes are expanded,
 * the heaviest first (a node's weight is split evenly among its tasks), until there are
 * `jobs * tasksPerJob` tasks or nothing is left to expand. With `maxPreemptions` the
 * tasks are simply the schedule prefixes within the bound, with no sleep sets.
 *
 * Workers (pool.ts, started per exploration or shared through `pool`). A worker imports
 * the program module (see {@link ProgramModule}) once, then runs {@link exploreSubtree}
 * on each task it is handed; tasks are handed out in depth-first order to whichever
 * worker is free. Inside a task the exploration is the
 * sequential one, except at the boundary: races whose reversal would start above the
 * task's root are dropped, since every thread there has its own task; and, for
 * optimal-DPOR, the sleeping threads a task inherits block a wakeup sequence only when
 * they are initials of it, not weak initials. (The sequential search passes wakeup
 * sequences found under one child of a node down to its later siblings; a task cannot
 * receive them, and with the weak-initial test it would lose those traces. With the
 * stronger test it finds them itself, and the inherited sleep set still keeps it off
 * other tasks' traces, at the price of some sleep-set blocked executions.) The union
 * of the tasks' traces is the sequential result's, each trace explored in one task
 * only; checked against the sequential explorer on 107 programs split 5 ways each
 * (parallel.test.ts), not proved.
 *
 * Merge. Counts and labels (ProgramInstance.labels) are summed in task order;
 * failures are listed in task order (within a task, in the order found). Budgets
 * (`maxExecutions`, `maxTotalSteps`) are split: each task gets what is left when it
 * starts, so the total may exceed a budget by what the tasks running at that moment
 * spend. `stopOnFailure`: each task stops at its own first failure; once task i has
 * failed, no later task is handed out, running later tasks are cancelled, and tasks
 * before i run to their end; the result counts tasks 0..i only and keeps the first
 * failure in task order, so it does not depend on the workers' timing (but it may be
 * another failure than the sequential explorer's first). `onExecution` is not available
 * (it cannot cross threads); `onProgress` receives the summed counts, with the estimate
 * combining the tasks' weights and each running task's own estimate.
 */
import { availableParallelism } from 'node:os';
import {
  dependentInfo,
  depHb,
  stepInfo,
  type ExploreFailure,
  type ExploreOptions,
  type ExploreProgress,
  type ExploreResult,
  type ProgramFactory,
  type StepInfo,
} from './explore.js';
import { Runner } from './runner.js';
import { loadProgram, type ProgramModule } from './program-module.js';
import { Cancelled, isTypeScript, WorkerPool, type PoolWorker, type ToWorker } from './pool.js';

export type { ProgramModule } from './program-module.js';
export { WorkerPool } from './pool.js';

export interface ParallelOptions extends Omit<ExploreOptions, 'onExecution' | 'random' | 'pct'> {
  /**
   * Worker threads (default: the pool's size, else the machine's available parallelism);
   * never more than the tasks.
   */
  readonly jobs?: number;
  /**
   * Workers to use (see pool.ts), kept when the exploration ends; by default the
   * exploration starts its own and terminates them at the end.
   */
  readonly pool?: WorkerPool;
  /** Tasks to aim for per worker when splitting (default 8). */
  readonly tasksPerJob?: number;
  /**
   * Return the schedule of every execution that was not sleep-set blocked, in
   * `schedules` (for tests and tools comparing runs; memory grows with the count).
   */
  readonly collectSchedules?: boolean;
}

export interface ParallelResult extends ExploreResult {
  /** Tasks the tree was split into, and how many were run. */
  readonly tasks: number;
  readonly tasksRun: number;
  readonly jobs: number;
  /** With `collectSchedules`: every complete execution's schedule, task by task. */
  readonly schedules?: number[][];
}

/** A subtree handed to a worker. */
export interface Task {
  readonly prefix: number[];
  readonly sleep: number[];
  /** Share of the tree (for the progress estimate). */
  readonly weight: number;
}

/**
 * Splits the exploration of `factory` into tasks (see the module comment). Exported for
 * tests; {@link exploreParallel} calls it.
 */
export function splitTasks(
  factory: ProgramFactory,
  opts: Pick<ExploreOptions, 'algorithm' | 'maxPreemptions' | 'maxSteps'>,
  target: number,
): { tasks: Task[]; boundPruned: number; droppedWeight: number } {
  let boundPruned = 0;
  let droppedWeight = 0;
  const bounded = opts.maxPreemptions !== undefined && Number.isFinite(opts.maxPreemptions);
  const depFn = (opts.algorithm ?? 'optimal') === 'optimal' ? depHb : dependentInfo;
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  type Open = Task & { open: boolean };
  let tasks: Open[] = [{ prefix: [], sleep: [], weight: 1, open: true }];
  // Each expansion either splits a task or makes it longer by one step (one candidate),
  // or closes it; the step cap keeps a long single-candidate chain from running on.
  for (let round = 0; round < 100_000 && tasks.length < target; round++) {
    let idx = -1;
    for (let i = 0; i < tasks.length; i++) {
      if (tasks[i]!.open && (idx < 0 || tasks[i]!.weight > tasks[idx]!.weight)) idx = i;
    }
    if (idx < 0) break;
    let t = tasks[idx]!;
    const prog = factory();
    const runner = new Runner({ record: false });
    for (const th of prog.threads) runner.spawn(th.name, th.op, th.ctx);
    let pre = 0;
    const stepTo = (d: number, tid: number): void => {
      const last = d > 0 ? t.prefix[d - 1]! : -1;
      if (last >= 0 && tid !== last && runner.enabled().some((x) => x.id === last)) pre++;
      if (!runner.step(tid)) throw new Error(`parallel: task prefix not runnable at step ${d}`);
    };
    for (let d = 0; d < t.prefix.length; d++) stepTo(d, t.prefix[d]!);
    let children: Open[];
    // A node with one candidate is stepped through here rather than in another round.
    for (;;) {
      const en = runner.isFinished() ? [] : runner.enabled().map((x) => x.id);
      if (en.length === 0 || t.prefix.length >= maxSteps) {
        children = [{ ...t, open: false }];
        break;
      }
      const pending: (StepInfo | null)[] = runner.threads.map((x) =>
        x.done || x.pending === null ? null : stepInfo(x.pending),
      );
      if (bounded) {
        const last = t.prefix.at(-1) ?? -1;
        const free = last < 0 || !en.includes(last);
        const cands = en.filter((c) => pre + (free || c === last ? 0 : 1) <= opts.maxPreemptions!);
        boundPruned += en.length - cands.length;
        children = cands.map((c) => ({
          prefix: [...t.prefix, c],
          sleep: [],
          weight: t.weight / cands.length,
          open: true,
        }));
      } else {
        const sleep = new Set(t.sleep);
        const cands = en.filter((c) => !sleep.has(c));
        children = cands.map((c, k) => ({
          prefix: [...t.prefix, c],
          sleep: [...t.sleep, ...cands.slice(0, k)].filter((q) => !depFn(pending[q]!, pending[c]!)),
          weight: t.weight / cands.length,
          open: true,
        }));
      }
      if (children.length !== 1) break;
      const d = t.prefix.length;
      const only = children[0]!;
      stepTo(d, only.prefix[d]!);
      t = only;
    }
    // No candidate: every trace from here starts with a sleeping thread (another task's).
    if (children.length === 0) droppedWeight += t.weight;
    tasks = [...tasks.slice(0, idx), ...children, ...tasks.slice(idx + 1)];
  }
  return {
    tasks: tasks.map(({ prefix, sleep, weight }) => ({ prefix, sleep, weight })),
    boundPruned,
    droppedWeight,
  };
}

/** The plain-data options a worker gets with a task. */
type WireOptions = Extract<ToWorker, { type: 'task' }>['opts'];

/**
 * Explores the program named by `program` with `jobs` worker threads. Same result as
 * {@link explore} in traces and failures (see the module comment for what differs:
 * failure order, budgets, sleep-set blocked executions of tasks with no traces).
 * Deterministic when no budget cuts it: the same program and options give the same
 * result whatever the timing of the workers.
 */
export async function exploreParallel(
  program: ProgramModule,
  opts: ParallelOptions = {},
): Promise<ParallelResult> {
  const jobs = Math.max(1, Math.floor(opts.jobs ?? opts.pool?.size ?? availableParallelism()));
  const factory = await loadProgram(program);
  const split = splitTasks(factory, opts, jobs * Math.max(1, opts.tasksPerJob ?? 8));
  const tasks = split.tasks;
  const every = Math.max(1, opts.progressEvery ?? 1000);
  const { onProgress, jobs: _j, tasksPerJob: _t, pool: _p, ...rest } = opts;
  const maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
  const maxTotalSteps = opts.maxTotalSteps ?? Number.POSITIVE_INFINITY;
  const n = Math.max(1, Math.min(jobs, tasks.length, opts.pool?.size ?? jobs));
  const pool = opts.pool ?? new WorkerPool(n, { typescript: isTypeScript(program.module) });

  const results: (ExploreResult | undefined)[] = new Array(tasks.length);
  const schedules: (number[][] | undefined)[] = new Array(tasks.length);
  const running = new Map<number, { executions: number; totalSteps: number; fraction: number }>();
  const busy = new Map<number, PoolWorker>();
  let doneExec = 0;
  let doneSteps = 0;
  let doneWeight = split.droppedWeight;
  let failures = 0;
  let lastReport = 0;
  let next = 0;
  /** With stopOnFailure: the lowest task with a failure; later tasks do not count. */
  let cut = Number.POSITIVE_INFINITY;
  let error: unknown = undefined;

  const report = (): void => {
    if (!onProgress) return;
    let executions = doneExec;
    let totalSteps = doneSteps;
    let fraction = doneWeight;
    for (const [id, r] of running) {
      executions += r.executions;
      totalSteps += r.totalSteps;
      fraction += tasks[id]!.weight * r.fraction;
    }
    if (executions < lastReport + every) return;
    lastReport = executions;
    const f = Math.min(1, Math.max(fraction, Number.MIN_VALUE));
    const p: ExploreProgress = {
      executions,
      totalSteps,
      failures,
      fractionDone: f,
      estimatedTotal: Math.max(executions, Math.round(executions / f)),
    };
    onProgress(p);
  };

  /** One lane: takes the next task, runs it on a worker, until none is left. */
  const lane = async (): Promise<void> => {
    for (;;) {
      const budgetLeft = doneExec < maxExecutions && doneSteps < maxTotalSteps;
      if (error !== undefined || next >= tasks.length || next > cut || !budgetLeft) return;
      const id = next++;
      const w = await pool.acquire();
      if (error !== undefined || id > cut) {
        pool.release(w);
        return;
      }
      busy.set(id, w);
      running.set(id, { executions: 0, totalSteps: 0, fraction: 0 });
      const wire: WireOptions = {
        ...rest,
        ...(Number.isFinite(maxExecutions) ? { maxExecutions: maxExecutions - doneExec } : {}),
        ...(Number.isFinite(maxTotalSteps) ? { maxTotalSteps: maxTotalSteps - doneSteps } : {}),
        reportProgress: onProgress !== undefined,
        progressEvery: Math.max(1, Math.floor(every / n)),
      };
      let m;
      try {
        m = await w.request({ type: 'task', id, program, task: tasks[id]!, opts: wire }, (p) => {
          if (p.type !== 'progress') return;
          running.set(id, {
            executions: p.executions,
            totalSteps: p.totalSteps,
            fraction: p.fractionDone,
          });
          report();
        });
      } catch (e) {
        busy.delete(id);
        running.delete(id);
        if (e instanceof Cancelled) return;
        pool.release(w);
        if (error === undefined) {
          error = new Error(`parallel worker: ${e instanceof Error ? e.message : String(e)}`);
          for (const other of busy.values()) pool.cancel(other);
        }
        return;
      }
      busy.delete(id);
      running.delete(id);
      pool.release(w);
      if (m.type !== 'result') throw new Error('parallel: unexpected answer from a worker');
      results[id] = m.result;
      schedules[id] = m.schedules;
      doneExec += m.result.executions;
      doneSteps += m.result.totalSteps;
      doneWeight += tasks[id]!.weight;
      failures += m.result.failures.length;
      if (opts.stopOnFailure && m.result.failures.length > 0 && id < cut) {
        // Earlier tasks still count (they may hold an earlier failure); later ones not.
        cut = id;
        for (const [j, other] of busy) if (j > cut) pool.cancel(other);
      }
      report();
    }
  };

  try {
    await Promise.all(Array.from({ length: n }, lane));
  } finally {
    if (!opts.pool) await pool.close();
  }
  if (error !== undefined) throw error;

  const all: ExploreFailure[] = [];
  const labels: Record<string, number> = {};
  let executions = 0;
  let sleepBlocked = 0;
  let stepLimited = 0;
  let boundPruned = split.boundPruned;
  let infeasible = 0;
  let totalSteps = 0;
  let complete = boundPruned === 0;
  let tasksRun = 0;
  const counted = results.slice(0, Math.min(results.length, cut + 1));
  for (const r of counted) {
    if (!r) {
      complete = false;
      continue;
    }
    tasksRun++;
    executions += r.executions;
    sleepBlocked += r.sleepBlocked;
    stepLimited += r.stepLimited;
    boundPruned += r.boundPruned;
    infeasible += r.infeasible;
    totalSteps += r.totalSteps;
    complete &&= r.complete;
    all.push(...r.failures);
    for (const [k, v] of Object.entries(r.labels)) labels[k] = (labels[k] ?? 0) + v;
  }
  const failed = opts.stopOnFailure === true && all.length > 0;
  return {
    executions,
    sleepBlocked,
    stepLimited,
    boundPruned,
    infeasible,
    totalSteps,
    complete: complete && !failed,
    failures: failed ? all.slice(0, 1) : all,
    labels,
    tasks: tasks.length,
    tasksRun,
    jobs: n,
    ...(opts.collectSchedules
      ? { schedules: schedules.slice(0, counted.length).flatMap((x) => x ?? []) }
      : {}),
  };
}
