/**
 * Running scenarios: one execution under a schedule with a full trace
 * ({@link runScenario}), and exploration of the interleavings of its threads with the
 * explorer of src/sched ({@link checkScenario}).
 *
 * Every execution boots a fresh machine and runs the setup again (a generator cannot be
 * cloned), so one execution is exactly what `pfnsim run --schedule` replays. Each thread
 * is wrapped so that every step advances the kernel's logical clock and stamps its step
 * index, the way Kernel.runner() does, whether the explorer's runner or ours drives it:
 * both paths see identical kernel behaviour.
 */
import { performance } from 'node:perf_hooks';
import { exploreParallel, type WorkerPool } from '../sched/parallel.js';
import {
  Runner,
  countPreemptions,
  currentThread,
  explore,
  formatSchedule,
  minimize,
  parseSchedule,
  type ExploreOptions,
  type ExploreResult,
  type Op,
  type ProgramFactory,
  type ProgramThread,
  type RunStatus,
} from '../sched/index.js';
import type { Kernel } from '../kernel/kernel/kernel.js';
import type { ConfigValue } from '../kernel/kconfig.js';
import { KernelBug, TAINT_BAD_PAGE } from '../kernel/kernel/panic.js';
import { create_kthread } from '../kernel/kernel/fork.js';
import type { task_struct } from '../kernel/include/linux/sched.js';
import { since as kernelSince } from '../kernel/version.js';
import { pfnsan_reports, type pfnsan_report } from '../kernel/mm/pfnsan/pfnsan.js';
import { set_call_path_capture, type Frame } from '../kernel/kernel/callpath.js';
import {
  TRACE_FORMAT,
  TRACE_VERSION,
  type Trace,
  type TraceNote,
  type TraceReport,
  type TraceSite,
  type TraceSnapshot,
  type TraceStepRecord,
} from '../report/format.js';
import { bootMachine } from './machine.js';
import { Process, spawnProcess } from './process.js';
import {
  expectedFor,
  verdictMatches,
  type ConcreteScenario,
  type ScenarioContext,
  type ThreadDef,
  type ThreadFn,
  type ThreadKind,
} from './scenario.js';
import { takeSnapshot } from './snapshot.js';

type Config = Readonly<Record<string, ConfigValue | string>>;

/** One execution's machine, state and threads. */
class Instance {
  readonly k: Kernel;
  readonly ctx: ScenarioContext;
  readonly state: unknown;
  readonly threads: ProgramThread[] = [];
  readonly kinds: ThreadKind[] = [];
  readonly notes: TraceNote[] = [];
  /** Steps taken by the threads so far (the index of the next step). */
  clock = 0;
  /** What the first thread to die threw. */
  crash: unknown = undefined;
  private phase: 'setup' | 'threads' | 'check' = 'setup';
  private checked: { msg: string | null } | undefined;

  constructor(
    readonly s: ConcreteScenario,
    version: string,
    config: Config,
  ) {
    const spec = s.scenario;
    this.k = bootMachine({
      ...(spec.machine ?? {}),
      version,
      config: { ...s.config, ...config },
    });
    const k = this.k;
    const self = this;
    this.ctx = {
      k,
      version: k.version.name,
      config: k.config,
      variant: s.variant,
      params: s.params,
      since: (a, b) => (k.activate(), kernelSince(a, b)),
      spawnProcess: (comm, opts) => spawnProcess(k, comm, opts),
      run: <T>(op: Op<T>, as?: string): T => k.run(op, as ?? self.phase),
      note(text: string): void {
        const thread = self.phase === 'threads' ? currentThread().name : self.phase;
        self.notes.push({ step: self.phase === 'setup' ? -1 : k.step, thread, text });
      },
    };
    k.activate();
    this.state = spec.setup ? spec.setup(this.ctx) : undefined;
    k.activate();
    this.phase = 'threads';
    for (const [name, t] of Object.entries(spec.threads)) {
      const def: ThreadDef<unknown> =
        typeof t === 'function' ? { run: t as ThreadFn<unknown> } : (t as ThreadDef<unknown>);
      const as = def.as ? def.as(this.ctx, this.state) : create_kthread(name);
      const task: task_struct = as instanceof Process ? as.task : as;
      this.kinds.push(def.kind ?? 'kthread');
      this.threads.push({ name, op: this.clocked(def.run(this.ctx, this.state)), ctx: task });
    }
  }

  /** Wraps a thread: each step advances the clock and stamps its index; records a crash. */
  private *clocked(op: Op<unknown>): Op<unknown> {
    const k = this.k;
    let r: IteratorResult<unknown, unknown>;
    k.activate();
    try {
      r = op.next();
      while (!r.done) {
        const sent: unknown = yield r.value as never;
        k.activate();
        k.ktime_ns += 1000;
        k.step = this.clock++;
        r = op.next(sent);
      }
    } catch (e) {
      this.crash ??= e;
      throw e;
    }
    return r.value;
  }

  /** The scenario's final check, run once, after a completed run. */
  checkMessage(): string | null {
    if (!this.checked) {
      this.phase = 'check';
      this.k.activate();
      const check = this.s.scenario.check;
      this.checked = { msg: check ? check(this.ctx, this.state) : null };
    }
    return this.checked.msg;
  }

  /** Executions whose kernel log has a WARNING. */
  warned(): boolean {
    return this.k.log.some((l) => /^WARNING: /m.test(l.text));
  }

  /** The verdict of the execution (see the scenario module's comment for the order). */
  verdict(status: RunStatus): string {
    this.k.activate();
    // The final check runs first: the kernel calls it makes are sanitised like the
    // threads' (a cma_alloc retried there reports the pin that still blocks it).
    const msg = status === 'done' && this.crash === undefined ? this.checkMessage() : null;
    this.k.activate();
    const reports = pfnsan_reports();
    if (reports.length > 0) return reports[0]!.code;
    if (status === 'crashed' || this.crash !== undefined) {
      const e = this.crash;
      if (e instanceof KernelBug) return 'BUG';
      return `error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    }
    if (status === 'deadlock') return 'deadlock';
    if ((this.k.tainted_mask & (1 << TAINT_BAD_PAGE)) !== 0) return 'bad-page';
    if (msg !== null) return `check: ${msg}`;
    if (this.s.scenario.warn === 'violation' && this.warned()) return 'WARN';
    return 'SAFE';
  }
}

function site(s: {
  thread: string;
  step: number;
  path: readonly Frame[];
  what: string;
}): TraceSite {
  return {
    thread: s.thread,
    step: s.step,
    path: s.path.map((f) => `${f.fn} (${f.file})`),
    what: s.what,
  };
}

/** A pfnsan report in the trace format. */
export function traceReport(r: pfnsan_report): TraceReport {
  return {
    code: r.code,
    title: r.title,
    pfn: r.pfn,
    thread: r.thread,
    step: r.step,
    ...(r.obtained ? { obtained: site(r.obtained) } : {}),
    ...(r.ended ? { ended: site(r.ended) } : {}),
    used: site(r.used),
    history: r.history.map((h) => ({
      gen: h.gen,
      owner: h.owner.desc,
      step: h.step,
      thread: h.thread,
    })),
    text: [...r.text],
  };
}

function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=*+#-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The command that replays one execution. `config`: the options given on the command line. */
export function replayCommand(
  s: ConcreteScenario,
  version: string,
  config: Config,
  schedule: readonly number[],
): string {
  const words = ['pfnsim', 'run', s.ref, '--kernel', version];
  for (const [k, v] of Object.entries(config)) {
    const val = v === true ? 'y' : v === false ? 'n' : String(v);
    words.push('--config', `${k}=${val}`);
  }
  words.push('--schedule', formatSchedule(schedule));
  return words.map(shellWord).join(' ');
}

export interface RunOptions {
  /** Record a snapshot after setup and after every step that changed it (default true). */
  readonly snapshots?: boolean;
  /** Cut the run after this many steps. */
  readonly maxSteps?: number;
}

/**
 * One execution of a scenario under a schedule (an array, or a schedule string as
 * formatSchedule writes it; past its end the last thread continues while it can, else
 * the lowest enabled one), as a v2 trace. Deterministic: the same inputs give the
 * identical trace. Throws on a bad version or config (ConfigError, VersionError) or a
 * setup that throws.
 */
export function runScenario(
  s: ConcreteScenario,
  version: string,
  config: Config = {},
  schedule: readonly number[] | string = [],
  opts: RunOptions = {},
): Trace {
  // A trace is what gets printed: its reports carry their call paths.
  const prev = set_call_path_capture(true);
  try {
    return traceOf(s, version, config, schedule, opts);
  } finally {
    set_call_path_capture(prev);
  }
}

function traceOf(
  s: ConcreteScenario,
  version: string,
  config: Config,
  schedule: readonly number[] | string,
  opts: RunOptions,
): Trace {
  const sched = typeof schedule === 'string' ? parseSchedule(schedule) : schedule;
  const inst = new Instance(s, version, config);
  const k = inst.k;
  const held = new Map<number, string[]>();
  const snapshots: TraceSnapshot[] = [];
  let lastKey = '';
  const snap = (step: number): void => {
    const pfns = pfnsan_reports().map((r) => r.pfn);
    const sn = takeSnapshot(k, step, pfns);
    const key = JSON.stringify({ ...sn, step: 0 });
    if (key !== lastKey) snapshots.push(sn);
    lastKey = key;
  };
  const withSnapshots = opts.snapshots !== false;
  if (withSnapshots) snap(-1);
  const runner = new Runner({
    record: true,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    hooks: {
      afterStep(t, _step, index) {
        held.set(
          index,
          t.held.map((h) => (h.shared ? `${h.name}(read)` : h.name)),
        );
        if (withSnapshots) snap(index);
      },
    },
  });
  for (const t of inst.threads) runner.spawn(t.name, t.op, t.ctx);
  const res = runner.run(sched);
  let error: string | undefined;
  if (res.status === 'crashed' && res.crashed) {
    const e = res.crashed.error;
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } else if (res.status === 'deadlock') {
    error = `deadlock: ${res.blocked.map((b) => `${b.thread} waits for ${b.obj}`).join('; ')}`;
  } else if (res.message) {
    error = res.message;
  }
  const verdict =
    res.status === 'bad-schedule' || res.status === 'step-limit'
      ? undefined
      : inst.verdict(res.status);
  k.activate();
  const steps: TraceStepRecord[] = res.trace.map((st) => ({
    ...st,
    held: held.get(st.index) ?? [],
  }));
  return {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    scenario: s.id,
    kernel: { version: k.version.name, config: { ...k.config } },
    threads: inst.threads.map((t, i) => ({ tid: i, name: t.name, kind: inst.kinds[i]! })),
    schedule: [...res.schedule],
    status: res.status,
    steps,
    log: k.log.map((l) => ({ ...l })),
    notes: inst.notes,
    reports: pfnsan_reports().map(traceReport),
    snapshots,
    ...(verdict !== undefined ? { verdict } : {}),
    replay: replayCommand(s, k.version.name, config, res.schedule),
    ...(error !== undefined ? { error } : {}),
  };
}

export interface CheckOptions {
  /** Config options on top of the scenario's (what the CLI's --config gives). */
  readonly config?: Config;
  readonly maxPreemptions?: number;
  readonly random?: { readonly runs: number; readonly seed: number };
  readonly pct?: { readonly depth: number; readonly runs: number; readonly seed: number };
  readonly maxExecutions?: number;
  readonly maxTotalSteps?: number;
  /** Cut each execution after this many steps. */
  readonly maxSteps?: number;
  /** Explore everything instead of stopping at the first violation. */
  readonly all?: boolean;
  /**
   * Worker threads for {@link checkScenarioParallel} (DPOR modes only; default 1).
   * {@link checkScenario} always runs on the calling thread.
   */
  readonly jobs?: number;
  /**
   * Whether to minimise the counterexample: always (default), only when the verdict
   * differs from the expectation, or never (the schedule found is given as is).
   */
  readonly minimize?: 'always' | 'unexpected' | 'never';
  /** Executions the counterexample minimisation may run (default 20000). */
  readonly minimizeExecutions?: number;
  /** Keep the counterexample's trace in the result (default true). */
  readonly trace?: boolean;
  /**
   * Progress display: called with the executions so far and the explorer's estimate of
   * the total: after every execution, sleep-set blocked ones left out ({@link checkScenario}),
   * or every few, summed over the workers ({@link checkScenarioParallel}).
   */
  readonly onProgress?: (executions: number, estimatedTotal?: number) => void;
}

export interface Counterexample {
  readonly verdict: string;
  /** The minimised schedule, as `--schedule` takes it. */
  readonly schedule: string;
  readonly steps: number;
  readonly preemptions: number;
  /** Steps and preemptions of the schedule exploration found first. */
  readonly found: { readonly steps: number; readonly preemptions: number };
  /** The step at which the sanitizer report that is the verdict was made (the schedule ends there). */
  readonly reportedAt?: number;
  /** Whether minimisation finished within its budget (the result is then minimal). */
  readonly minimal: boolean;
  readonly replay: string;
  readonly trace?: Trace;
}

export interface CheckResult {
  readonly scenario: string;
  readonly version: string;
  /** 'SAFE', the first violation found, or 'n/a' when the scenario does not apply. */
  readonly verdict: string;
  readonly expected: readonly string[];
  readonly matches: boolean;
  readonly mode: 'dpor' | 'random' | 'pct' | 'skipped';
  /**
   * Executions run to their end or cut at maxSteps. Executions that ended sleep-set
   * blocked explore no new interleaving and are counted in `sleepBlocked` only.
   */
  readonly executions: number;
  /** Every interleaving was explored (DPOR, no budget or bound cut anything). */
  readonly complete: boolean;
  readonly sleepBlocked: number;
  readonly stepLimited: number;
  readonly boundPruned: number;
  readonly totalSteps: number;
  /** Executions by verdict (complete executions only): SAFE first, then in string order. */
  readonly verdicts: Readonly<Record<string, number>>;
  /** Executions that printed a WARNING. */
  readonly warnings: number;
  /**
   * Worker threads that explored (1 on the calling thread; with
   * {@link checkScenarioParallel}, at most `jobs`, and no more than the tasks).
   */
  readonly jobs: number;
  /** Wall time in milliseconds (not deterministic). */
  readonly timeMs: number;
  readonly counterexample?: Counterexample;
}

/** Labels of a scenario execution (ProgramInstance.labels): its verdict, and a WARNING. */
const VERDICT_LABEL = 'verdict:';
const WARNED_LABEL = 'warned';

/**
 * The explorer's program for a scenario on one version: each instance boots a fresh
 * machine and runs the setup. An execution's failure message is its verdict (null when
 * SAFE), for every status; its labels are its verdict and whether it printed a WARNING;
 * it is decided at the first sanitizer report (the verdict, whatever runs after it).
 */
export function scenarioFactory(
  s: ConcreteScenario,
  version: string,
  config: Config = {},
): ProgramFactory {
  return () => {
    const inst = new Instance(s, version, config);
    // Asked twice per execution (failure and labels), with the same status.
    const seen = new Map<RunStatus, string>();
    const verdict = (status: RunStatus): string => {
      let v = seen.get(status);
      if (v === undefined) seen.set(status, (v = inst.verdict(status)));
      return v;
    };
    return {
      threads: inst.threads,
      failure: (run) => {
        const v = verdict(run.status);
        return v === 'SAFE' ? null : v;
      },
      labels: (run) => [
        VERDICT_LABEL + verdict(run.status),
        ...(inst.warned() ? [WARNED_LABEL] : []),
      ],
      decided: () => {
        inst.k.activate();
        return pfnsan_reports().length > 0;
      },
    };
  };
}

/**
 * Where a worker thread finds a scenario ({@link checkScenarioParallel}): it imports
 * `module` (a path or file URL; TypeScript files load through tsx) and takes the export
 * `export`; with `args`, calls it with them (they must survive structured cloning) and
 * awaits the result. The value is a scenario, a concrete scenario, or an array of them;
 * the one whose concrete id is the checked scenario's is used.
 */
export interface ScenarioSource {
  readonly module: string;
  readonly export: string;
  readonly args?: readonly unknown[];
}

/** What checkScenario and checkScenarioParallel share before exploring. */
function prepare(
  s: ConcreteScenario,
  version: string,
  opts: CheckOptions,
  t0: number,
): { skipped: CheckResult } | { config: Config } {
  const config = opts.config ?? {};
  const expected = expectedFor(s, version);
  if (expected.length === 1 && expected[0] === 'n/a') {
    return {
      skipped: {
        scenario: s.id,
        version,
        expected,
        verdict: 'n/a',
        matches: true,
        mode: 'skipped',
        executions: 0,
        complete: true,
        sleepBlocked: 0,
        stepLimited: 0,
        boundPruned: 0,
        totalSteps: 0,
        verdicts: {},
        warnings: 0,
        jobs: 1,
        timeMs: performance.now() - t0,
      },
    };
  }
  // Build one instance first, so a bad config or a failing setup is reported once, here.
  void new Instance(s, version, config);
  return { config };
}

/** The explorer options of a check, without callbacks. */
function exploreOptions(opts: CheckOptions): ExploreOptions {
  return {
    stopOnFailure: opts.all !== true,
    ...(opts.maxPreemptions !== undefined ? { maxPreemptions: opts.maxPreemptions } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.pct ? { pct: opts.pct } : {}),
    ...(opts.maxExecutions !== undefined ? { maxExecutions: opts.maxExecutions } : {}),
    ...(opts.maxTotalSteps !== undefined ? { maxTotalSteps: opts.maxTotalSteps } : {}),
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
  };
}

/**
 * The result of a check from the explorer's: verdict counts from the labels, the first
 * failure's verdict, its counterexample minimised and replayed on this thread.
 */
function conclude(
  s: ConcreteScenario,
  version: string,
  opts: CheckOptions,
  config: Config,
  factory: ProgramFactory,
  res: ExploreResult,
  jobs: number,
  t0: number,
): CheckResult {
  const found: Record<string, number> = {};
  for (const [label, n] of Object.entries(res.labels)) {
    if (label.startsWith(VERDICT_LABEL)) found[label.slice(VERDICT_LABEL.length)] = n;
  }
  const order = Object.keys(found).sort((a, b) =>
    a === b ? 0 : a === 'SAFE' ? -1 : b === 'SAFE' ? 1 : a < b ? -1 : 1,
  );
  const verdicts: Record<string, number> = {};
  for (const v of order) verdicts[v] = found[v]!;
  const expected = expectedFor(s, version);
  const mode = opts.random ? 'random' : opts.pct ? 'pct' : 'dpor';
  let verdict = 'SAFE';
  let counterexample: Counterexample | undefined;
  const first = res.failures[0];
  if (first) {
    // The failure message is the verdict (scenarioFactory's `failure`), for every status.
    verdict = first.message;
    const how = opts.minimize ?? 'always';
    const doMin = how === 'always' || (how === 'unexpected' && !verdictMatches(verdict, expected));
    const m = doMin
      ? minimize(factory, first.schedule, (a) => a.message === verdict, {
          maxExecutions: opts.minimizeExecutions ?? 20_000,
          ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
        })
      : {
          schedule: first.schedule,
          steps: first.schedule.length,
          preemptions: first.preemptions,
          exhaustive: false,
        };
    // A sanitizer report decides the verdict at the step it is made (the first report is
    // the verdict), so the counterexample is the schedule up to that step: replaying it
    // and running on without preemption gives the same first report. The minimiser
    // already ends its runs there (`decided`); a schedule that was not minimised is cut.
    let schedule = m.schedule;
    let steps = m.steps;
    let preemptions = m.preemptions;
    let trace: Trace | undefined = runScenario(s, version, config, schedule);
    const firstReport = trace.reports[0];
    const at = firstReport && firstReport.code === verdict ? firstReport.step : -1;
    if (at >= 0 && at + 1 < schedule.length) {
      schedule = schedule.slice(0, at + 1);
      steps = at + 1;
      preemptions = countPreemptions(factory, schedule);
      trace = opts.trace === false ? undefined : runScenario(s, version, config, schedule);
    } else if (opts.trace === false) trace = undefined;
    counterexample = {
      verdict,
      schedule: formatSchedule(schedule),
      steps,
      preemptions,
      ...(at >= 0 ? { reportedAt: at } : {}),
      found: { steps: first.schedule.length, preemptions: first.preemptions },
      minimal: m.exhaustive,
      replay: replayCommand(s, version, config, schedule),
      ...(trace ? { trace } : {}),
    };
  }
  return {
    scenario: s.id,
    version,
    expected,
    verdict,
    matches: verdictMatches(verdict, expected),
    mode,
    executions: res.executions - res.sleepBlocked,
    complete: res.complete,
    sleepBlocked: res.sleepBlocked,
    stepLimited: res.stepLimited,
    boundPruned: res.boundPruned,
    totalSteps: res.totalSteps,
    verdicts,
    warnings: res.labels[WARNED_LABEL] ?? 0,
    jobs,
    timeMs: performance.now() - t0,
    ...(counterexample ? { counterexample } : {}),
  };
}

/**
 * Explores the interleavings of a scenario's threads on one kernel version, on this
 * thread: by DPOR (optionally preemption-bounded), or random or PCT sampling. Stops at
 * the first violation unless `all`; minimises that counterexample (fewest preemptions,
 * then fewest steps) and gives its replay command. A version whose expectation is 'n/a'
 * is not run.
 */
export function checkScenario(
  s: ConcreteScenario,
  version: string,
  opts: CheckOptions = {},
): CheckResult {
  const prev = set_call_path_capture(false);
  try {
    return checkHere(s, version, opts);
  } finally {
    set_call_path_capture(prev);
  }
}

/**
 * checkScenario's body. The search runs without capturing call paths (kernel/callpath.ts:
 * they are printed, never decide a verdict, and capturing them is most of a step's cost);
 * the counterexample's trace is replayed with them.
 */
function checkHere(s: ConcreteScenario, version: string, opts: CheckOptions): CheckResult {
  const t0 = performance.now();
  const pre = prepare(s, version, opts, t0);
  if ('skipped' in pre) return pre.skipped;
  const factory = scenarioFactory(s, version, pre.config);
  let executions = 0;
  // The explorer's estimate of the executions in all (DPOR modes; Knuth's estimator).
  let estimatedTotal: number | undefined;
  const res = explore(factory, {
    ...exploreOptions(opts),
    progressEvery: 10,
    onProgress: (p) => {
      estimatedTotal = p.estimatedTotal;
    },
    onExecution(_run, { sleepBlocked }) {
      if (sleepBlocked) return;
      executions++;
      opts.onProgress?.(executions, estimatedTotal);
    },
  });
  return conclude(s, version, opts, pre.config, factory, res, 1, t0);
}

/** Options of {@link checkScenarioParallel}. */
export interface ParallelCheckOptions extends CheckOptions {
  /** How worker threads rebuild the scenario (needed when exploring on workers). */
  readonly source?: ScenarioSource;
  /** Workers to share between checks (see src/sched/pool.ts); `jobs` defaults to its size. */
  readonly pool?: WorkerPool;
  /**
   * Explore on this thread first, up to this many executions (default 50); when that
   * finishes the check (complete, a violation found, or the budget reached), the result
   * is checkScenario's and no worker is used. Splitting costs more than a small
   * exploration. 0: always on the workers.
   */
  readonly sequentialFirst?: number;
}

const WORKER_PROGRAM = new URL(
  /\.ts$/.test(new URL(import.meta.url).pathname) ? './worker-program.ts' : './worker-program.js',
  import.meta.url,
).href;

/**
 * {@link checkScenario} with the DPOR exploration split over `jobs` worker threads
 * (exploreParallel in src/sched/parallel.ts), each rebuilding the scenario from
 * `source`. Random and PCT modes, and `jobs` 1 without a pool, run checkScenario; so
 * does an exploration that ends within `sequentialFirst` executions.
 *
 * The counterexample is minimised, cut and replayed on this thread as checkScenario
 * does. Compared with checkScenario's result: `jobs`, `timeMs`, `totalSteps`,
 * `sleepBlocked` and `counterexample.found` differ. When the exploration is complete,
 * `executions`, `verdicts` and `warnings` are equal, provided the scenario meets the
 * explorer's assumptions (src/sched/explore.ts; `infeasible` reversals or steps whose
 * effects are not announced break them): the split enumerates every order at the top of
 * the tree, so it can find interleavings the sequential search misses, and then reports
 * more executions (deterministically, for a given `jobs`). The verdict is the first failure
 * in the explorer's task order, which may be another failure than the one the
 * sequential search meets first (both stop there unless `all`); so when executions can
 * end with different violations, the verdict can differ. With the same verdict, a
 * minimal counterexample (`minimal`) has the same steps and preemptions, but may be
 * another schedule of that length when several are minimal, since minimisation starts
 * from the failure found. The result does not depend on the workers' timing, except
 * through `maxExecutions` and `maxTotalSteps`.
 *
 * A benchmark builds its scenario from a function and names it for the workers, e.g.
 * with bench/kslot.scenario.ts's `kslotScenario(K)`:
 *
 *     const c = concreteScenarios(kslotScenario(4)).find((x) => x.variant === 'bug')!;
 *     const r = await checkScenarioParallel(c, '6.18', {
 *       jobs: 2,
 *       source: { module: 'bench/kslot.scenario.ts', export: 'kslotScenario', args: [4] },
 *     });
 *
 * (`module` relative to the working directory, or absolute, or a file URL such as
 * `new URL('./kslot.scenario.js', import.meta.url).href`.) Throws when `jobs` > 1 in a
 * DPOR mode without `source`, or when `source` does not give the scenario.
 */
export async function checkScenarioParallel(
  s: ConcreteScenario,
  version: string,
  opts: ParallelCheckOptions = {},
): Promise<CheckResult> {
  const prev = set_call_path_capture(false);
  try {
    return await checkParallelHere(s, version, opts);
  } finally {
    set_call_path_capture(prev);
  }
}

async function checkParallelHere(
  s: ConcreteScenario,
  version: string,
  opts: ParallelCheckOptions,
): Promise<CheckResult> {
  const jobs = opts.jobs ?? opts.pool?.size ?? 1;
  if (opts.random || opts.pct || jobs <= 1) return checkScenario(s, version, opts);
  if (!opts.source)
    throw new Error(`checkScenarioParallel: jobs ${jobs} needs a source for the workers`);
  const t0 = performance.now();
  const pre = prepare(s, version, opts, t0);
  if ('skipped' in pre) return pre.skipped;
  const factory = scenarioFactory(s, version, pre.config);
  const first = opts.sequentialFirst ?? 50;
  if (first > 0) {
    const budget = Math.min(first, opts.maxExecutions ?? Number.POSITIVE_INFINITY);
    let executions = 0;
    const probe = explore(factory, {
      ...exploreOptions(opts),
      maxExecutions: budget,
      onExecution(_run, { sleepBlocked }) {
        if (sleepBlocked) return;
        executions++;
        opts.onProgress?.(executions);
      },
    });
    const stopped = opts.all !== true && probe.failures.length > 0;
    // Ended by itself (or by the caller's own budget): that is checkScenario's result.
    if (probe.executions < budget || stopped || budget === opts.maxExecutions) {
      return conclude(s, version, opts, pre.config, factory, probe, 1, t0);
    }
  }
  const res = await exploreParallel(
    {
      module: WORKER_PROGRAM,
      export: 'scenarioProgram',
      args: [opts.source, s.id, version, pre.config],
    },
    {
      ...exploreOptions(opts),
      jobs,
      ...(opts.pool ? { pool: opts.pool } : {}),
      progressEvery: 10,
      ...(opts.onProgress
        ? { onProgress: (p) => opts.onProgress!(p.executions, p.estimatedTotal) }
        : {}),
    },
  );
  return conclude(s, version, opts, pre.config, factory, res, res.jobs, t0);
}

/** One (scenario, version) check of {@link checkCells}. */
export interface CheckCell {
  readonly scenario: ConcreteScenario;
  readonly source: ScenarioSource;
  readonly version: string;
}

/** CheckOptions that can cross to a worker thread (no callbacks). */
export type CellOptions = Omit<CheckOptions, 'onProgress'>;

/**
 * Runs {@link checkScenario} for each cell on a pool of worker threads, each cell on one
 * worker (rebuilt there from its source), and returns the results in cell order; each
 * result is the one checkScenario gives on this thread, but for `timeMs`. `onProgress`
 * gets the cells finished and the executions so far, summed over the cells. Rejects
 * with the first error a cell throws (its message as checkScenario's).
 */
export async function checkCells(
  cells: readonly CheckCell[],
  opts: CellOptions,
  pool: WorkerPool,
  onProgress?: (cellsDone: number, executions: number) => void,
): Promise<CheckResult[]> {
  const { jobs: _j, ...wire } = opts as CheckOptions;
  const { onProgress: _o, ...plain } = wire;
  const results: CheckResult[] = new Array(cells.length);
  const counts = new Array<number>(cells.length).fill(0);
  let done = 0;
  let sum = 0;
  await Promise.all(
    cells.map(async (c, i) => {
      const r = (await pool.call(
        {
          module: WORKER_PROGRAM,
          export: 'checkCell',
          args: [c.source, c.scenario.id, c.version, plain],
        },
        (n) => {
          sum += (n as number) - counts[i]!;
          counts[i] = n as number;
          onProgress?.(done, sum);
        },
      )) as CheckResult;
      results[i] = r;
      sum += r.executions - counts[i]!;
      counts[i] = r.executions;
      done++;
      onProgress?.(done, sum);
    }),
  );
  return results;
}
