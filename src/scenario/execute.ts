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
  type FailureSignature,
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
import type { Frame } from '../kernel/kernel/callpath.js';
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
    const reports = pfnsan_reports();
    if (reports.length > 0) return reports[0]!.code;
    if (status === 'crashed' || this.crash !== undefined) {
      const e = this.crash;
      if (e instanceof KernelBug) return 'BUG';
      return `error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    }
    if (status === 'deadlock') return 'deadlock';
    if ((this.k.tainted_mask & (1 << TAINT_BAD_PAGE)) !== 0) return 'bad-page';
    if (status === 'done') {
      const msg = this.checkMessage();
      if (msg !== null) return `check: ${msg}`;
    }
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
   * Worker threads. Parallel exploration is not available yet (src/sched has no parallel
   * explorer): any value runs on one thread, and the result says so in `jobs`.
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
  /** Called after every execution with the count so far (progress display). */
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
  readonly executions: number;
  /** Every interleaving was explored (DPOR, no budget or bound cut anything). */
  readonly complete: boolean;
  readonly sleepBlocked: number;
  readonly stepLimited: number;
  readonly boundPruned: number;
  readonly totalSteps: number;
  /** Executions by verdict (complete executions only). */
  readonly verdicts: Readonly<Record<string, number>>;
  /** Executions that printed a WARNING. */
  readonly warnings: number;
  /** Worker threads used (always 1 until src/sched has a parallel explorer). */
  readonly jobs: number;
  /** Wall time in milliseconds (not deterministic). */
  readonly timeMs: number;
  readonly counterexample?: Counterexample;
}

/**
 * Explores the interleavings of a scenario's threads on one kernel version: by DPOR
 * (optionally preemption-bounded), or random or PCT sampling. Stops at the first
 * violation unless `all`; minimises that counterexample (fewest preemptions, then
 * fewest steps) and gives its replay command. A version whose expectation is 'n/a' is
 * not run.
 */
export function checkScenario(
  s: ConcreteScenario,
  version: string,
  opts: CheckOptions = {},
): CheckResult {
  const t0 = performance.now();
  const config = opts.config ?? {};
  const expected = expectedFor(s, version);
  const base = {
    scenario: s.id,
    version,
    expected,
    sleepBlocked: 0,
    stepLimited: 0,
    boundPruned: 0,
    totalSteps: 0,
    warnings: 0,
    jobs: 1,
  };
  if (expected.length === 1 && expected[0] === 'n/a') {
    return {
      ...base,
      verdict: 'n/a',
      matches: true,
      mode: 'skipped',
      executions: 0,
      complete: true,
      verdicts: {},
      timeMs: performance.now() - t0,
    };
  }
  // Build one instance first, so a bad config or a failing setup is reported once, here.
  void new Instance(s, version, config);

  let last: Instance | undefined;
  const factory: ProgramFactory = () => {
    const inst = new Instance(s, version, config);
    last = inst;
    return {
      threads: inst.threads,
      check: () => {
        const v = inst.verdict('done');
        return v === 'SAFE' ? null : v;
      },
      // The first sanitizer report is the verdict, whatever runs after it.
      decided: () => {
        inst.k.activate();
        return pfnsan_reports().length > 0;
      },
    };
  };
  const verdicts: Record<string, number> = {};
  const failing: string[] = [];
  let warnings = 0;
  let executions = 0;
  // The explorer's estimate of the executions in all (DPOR modes; Knuth's estimator).
  let estimatedTotal: number | undefined;
  const exploreOpts: ExploreOptions = {
    progressEvery: 10,
    onProgress: (p) => {
      estimatedTotal = p.estimatedTotal;
    },
    stopOnFailure: opts.all !== true,
    ...(opts.maxPreemptions !== undefined ? { maxPreemptions: opts.maxPreemptions } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.pct ? { pct: opts.pct } : {}),
    ...(opts.maxExecutions !== undefined ? { maxExecutions: opts.maxExecutions } : {}),
    ...(opts.maxTotalSteps !== undefined ? { maxTotalSteps: opts.maxTotalSteps } : {}),
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    onExecution(run, { sleepBlocked }) {
      executions++;
      opts.onProgress?.(executions, estimatedTotal);
      if (sleepBlocked || run.status === 'step-limit' || !last) return;
      const v = last.verdict(run.status);
      verdicts[v] = (verdicts[v] ?? 0) + 1;
      if (last.warned()) warnings++;
      if (v !== 'SAFE') failing.push(v);
    },
  };
  const res: ExploreResult = explore(factory, exploreOpts);
  const mode = opts.random ? 'random' : opts.pct ? 'pct' : 'dpor';
  let verdict = 'SAFE';
  let counterexample: Counterexample | undefined;
  const first = res.failures[0];
  if (first) {
    verdict = failing[0]!;
    // The verdict of a signature: minimize compares runs right after running them, so
    // `last` is the instance of the run being compared.
    const verdictOf = (sig: FailureSignature): string =>
      sig.status === 'done' ? sig.message : last!.verdict(sig.status);
    const how = opts.minimize ?? 'always';
    const doMin = how === 'always' || (how === 'unexpected' && !verdictMatches(verdict, expected));
    const m = doMin
      ? minimize(factory, first.schedule, (a) => verdictOf(a) === verdict, {
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
    ...base,
    verdict,
    matches: verdictMatches(verdict, expected),
    mode,
    executions: res.executions,
    complete: res.complete,
    sleepBlocked: res.sleepBlocked,
    stepLimited: res.stepLimited,
    boundPruned: res.boundPruned,
    totalSteps: res.totalSteps,
    verdicts,
    warnings,
    timeMs: performance.now() - t0,
    ...(counterexample ? { counterexample } : {}),
  };
}
