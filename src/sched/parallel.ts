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
 * Workers. Each worker imports the program module (see {@link ProgramModule}) once,
 * then runs {@link exploreSubtree} on each task it is handed; tasks are handed out in
 * depth-first order to whichever worker is free. Inside a task the exploration is the
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
 * Merge. Counts are summed; failures are listed in task order (within a task, in the
 * order found). Budgets (`maxExecutions`, `maxTotalSteps`) are split: each task gets
 * what is left when it starts, so the total may exceed a budget by what the tasks
 * running at that moment spend. `stopOnFailure` stops handing out tasks and ends the
 * workers at the first failure. `onExecution` is not available (it cannot cross
 * threads); `onProgress` receives the summed counts, with the estimate combining the
 * tasks' weights and each running task's own estimate.
 *
 * The worker entry resolves both from the TypeScript sources (tests, through tsx's
 * loader, registered in the worker) and from the built JavaScript (dist/). A program
 * module written in TypeScript also gets the loader.
 */
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
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
import { loadProgram, moduleUrl, type ProgramModule } from './program-module.js';

export type { ProgramModule } from './program-module.js';

export interface ParallelOptions extends Omit<ExploreOptions, 'onExecution' | 'random' | 'pct'> {
  /** Worker threads (default: the machine's available parallelism). */
  readonly jobs?: number;
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

/** Messages between the main thread and a worker (internal). */
export type ToWorker =
  | { readonly type: 'task'; readonly id: number; readonly task: Task; readonly opts: WireOptions }
  | { readonly type: 'exit' };
export type FromWorker =
  | { readonly type: 'ready' }
  | {
      readonly type: 'progress';
      readonly id: number;
      readonly executions: number;
      readonly totalSteps: number;
      readonly fractionDone: number;
    }
  | {
      readonly type: 'result';
      readonly id: number;
      readonly result: ExploreResult;
      readonly schedules?: number[][];
    }
  | { readonly type: 'error'; readonly message: string };

/** The options a worker gets (plain data). */
export type WireOptions = Omit<ParallelOptions, 'onProgress' | 'jobs' | 'tasksPerJob'> & {
  readonly reportProgress: boolean;
};

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
    const t = tasks[idx]!;
    const prog = factory();
    const runner = new Runner({ record: false });
    for (const th of prog.threads) runner.spawn(th.name, th.op, th.ctx);
    let pre = 0;
    for (let d = 0; d < t.prefix.length; d++) {
      const tid = t.prefix[d]!;
      const last = d > 0 ? t.prefix[d - 1]! : -1;
      if (last >= 0 && tid !== last && runner.enabled().some((x) => x.id === last)) pre++;
      if (!runner.step(tid)) throw new Error(`parallel: task prefix not runnable at step ${d}`);
    }
    const en = runner.isFinished() ? [] : runner.enabled().map((x) => x.id);
    if (en.length === 0 || t.prefix.length >= maxSteps) {
      t.open = false;
      continue;
    }
    const pending: (StepInfo | null)[] = runner.threads.map((x) =>
      x.done || x.pending === null ? null : stepInfo(x.pending),
    );
    let children: Open[];
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

/** How to start a worker running parallel-worker, from sources or from dist. */
function startWorker(program: ProgramModule): Worker {
  const self = import.meta.url;
  const fromTs = /\.ts$/.test(new URL(self).pathname);
  const entry = new URL(fromTs ? './parallel-worker.ts' : './parallel-worker.js', self).href;
  const needTsx = fromTs || /\.[cm]?tsx?$/.test(new URL(moduleUrl(program.module)).pathname);
  if (!needTsx) return new Worker(new URL(entry), { workerData: { program } });
  // tsx's ESM loader, registered inside the worker before the entry is imported.
  const req = createRequire(self);
  const api = pathToFileURL(req.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
  const code =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: { program } });
}

/**
 * Explores the program named by `program` with `jobs` worker threads. Same result as
 * {@link explore} in traces and failures (see the module comment for what differs:
 * failure order, budgets, sleep-set blocked executions of tasks with no traces).
 */
export async function exploreParallel(
  program: ProgramModule,
  opts: ParallelOptions = {},
): Promise<ParallelResult> {
  const jobs = Math.max(1, Math.floor(opts.jobs ?? availableParallelism()));
  const factory = await loadProgram(program);
  const split = splitTasks(factory, opts, jobs * Math.max(1, opts.tasksPerJob ?? 8));
  const tasks = split.tasks;
  const every = Math.max(1, opts.progressEvery ?? 1000);
  const { onProgress, jobs: _j, tasksPerJob: _t, ...rest } = opts;
  const maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
  const maxTotalSteps = opts.maxTotalSteps ?? Number.POSITIVE_INFINITY;

  const results: (ExploreResult | undefined)[] = new Array(tasks.length);
  const schedules: (number[][] | undefined)[] = new Array(tasks.length);
  const running = new Map<number, { executions: number; totalSteps: number; fraction: number }>();
  let doneExec = 0;
  let doneSteps = 0;
  let doneWeight = split.droppedWeight;
  let failures = 0;
  let lastReport = 0;
  let next = 0;
  let stop = false;

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

  const n = Math.min(jobs, tasks.length);
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolveAll, rejectAll) => {
      let live = n;
      const finishOne = (): void => {
        if (--live === 0) resolveAll();
      };
      const dispatch = (w: Worker): void => {
        const budgetLeft = doneExec < maxExecutions && doneSteps < maxTotalSteps;
        if (stop || next >= tasks.length || !budgetLeft) {
          w.postMessage({ type: 'exit' } satisfies ToWorker);
          return;
        }
        const id = next++;
        running.set(id, { executions: 0, totalSteps: 0, fraction: 0 });
        const wire: WireOptions = {
          ...rest,
          ...(Number.isFinite(maxExecutions) ? { maxExecutions: maxExecutions - doneExec } : {}),
          ...(Number.isFinite(maxTotalSteps) ? { maxTotalSteps: maxTotalSteps - doneSteps } : {}),
          reportProgress: onProgress !== undefined,
          progressEvery: Math.max(1, Math.floor(every / n)),
        };
        w.postMessage({ type: 'task', id, task: tasks[id]!, opts: wire } satisfies ToWorker);
      };
      for (let i = 0; i < n; i++) {
        const w = startWorker(program);
        workers.push(w);
        let exited = false;
        w.on('message', (m: FromWorker) => {
          if (m.type === 'ready') dispatch(w);
          else if (m.type === 'progress') {
            running.set(m.id, {
              executions: m.executions,
              totalSteps: m.totalSteps,
              fraction: m.fractionDone,
            });
            report();
          } else if (m.type === 'result') {
            running.delete(m.id);
            results[m.id] = m.result;
            schedules[m.id] = m.schedules;
            doneExec += m.result.executions;
            doneSteps += m.result.totalSteps;
            doneWeight += tasks[m.id]!.weight;
            failures += m.result.failures.length;
            if (opts.stopOnFailure && m.result.failures.length > 0 && !stop) {
              stop = true;
              for (const other of workers) if (other !== w) void other.terminate();
            }
            report();
            dispatch(w);
          } else {
            rejectAll(new Error(`parallel worker: ${m.message}`));
          }
        });
        w.on('error', (e) => rejectAll(e));
        w.on('exit', (code) => {
          if (exited) return;
          exited = true;
          if (code !== 0 && !stop) rejectAll(new Error(`parallel worker exited with code ${code}`));
          else finishOne();
        });
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }

  const all: ExploreFailure[] = [];
  let executions = 0;
  let sleepBlocked = 0;
  let stepLimited = 0;
  let boundPruned = split.boundPruned;
  let infeasible = 0;
  let totalSteps = 0;
  let complete = boundPruned === 0;
  let tasksRun = 0;
  for (const r of results) {
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
    tasks: tasks.length,
    tasksRun,
    jobs: n,
    ...(opts.collectSchedules ? { schedules: schedules.flatMap((x) => x ?? []) } : {}),
  };
}
