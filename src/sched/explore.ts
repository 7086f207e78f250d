/**
 * The interleaving explorer: stateless dynamic partial-order reduction over the Runner.
 *
 * A program is a factory that builds fresh state and fresh thread generators; every
 * execution rebuilds it and replays a schedule prefix with {@link Runner.step}, since
 * generators cannot be cloned.
 *
 * Algorithms (`opts.algorithm`):
 * - 'optimal' (default): optimal-DPOR with wakeup trees (Abdulla, Aronis, Jonsson,
 *   Sagonas, POPL 2014, Algorithm 2; JACM 2017). Every Mazurkiewicz trace (of the
 *   dependency relation below) is explored exactly once and no execution ends sleep-set
 *   blocked, under the assumptions listed below (checked against brute-force enumeration
 *   in the tests).
 * - 'source': source-DPOR with sleep sets (the same papers, Algorithm 1): every trace at
 *   least once, usually exactly once; some executions may end sleep-set blocked
 *   ({@link ExploreResult.sleepBlocked}).
 * - With `maxPreemptions`: a sound preemption-bounded search, see below.
 *
 * Dependency. Two steps of different threads are dependent when their extra objects
 * conflict ({@link Step.also} are writes, {@link Step.reads} reads), or when they touch
 * the same object, unless both are reads, both are shared (rwsem reader) acquires or
 * releases, both are releases (two threads never hold the same exclusive lock), or one
 * is a release and the other a blocking acquire (below). Steps of one thread are always
 * ordered. Traces are the equivalence classes of executions that order every dependent
 * pair alike.
 *
 * Blocking. A thread whose pending step is not enabled is skipped. A release and a
 * *blocking* acquire (a step with an `enabled` predicate) of the same lock are
 * independent for traces, since they are never co-enabled and lock discipline orders
 * every pair of acquires through the acquire-acquire dependency (Flanagan and Godefroid,
 * POPL 2005). A non-blocking acquire (trylock) does depend on a release, since its
 * result does. Optimal-DPOR needs more: a reversed race must be runnable, so its
 * happens-before relation also orders a release before a later blocking acquire of the
 * same object that it can enable (not when both are shared), which does not change the
 * traces (for valid executions the acquire order fixes those pairs). A race between two
 * acquires of a lock, A (thread p) then A' (thread q), is then reversible although A'
 * comes after p's release R: R's edge to A' is dropped when the reversal also removes
 * R's matching acquire.
 *
 * Assumptions: the program is deterministic; a step's `enabled` predicate depends only
 * on the state of its own object, and only steps on that object (or writing it through
 * `also`) change it; locks are
 * released by the thread that took them. A reversal that still finds its thread blocked
 * (possible with a blocking step that a write enables) is dropped and counted in
 * {@link ExploreResult.infeasible}; none of the lock primitives in sync.ts cause one.
 *
 * Deadlocks and crashes end an execution; the steps the unfinished threads were about
 * to take are analysed for races as if appended (both algorithms), so an order in
 * which the crash does not happen is explored too. A crashed run's trace is made of the
 * steps that happen before the crashing step.
 *
 * Preemption bounding (`maxPreemptions`). A preemption is a step by a thread other than
 * the one that ran the previous step while that one is still enabled. The bounded search
 * is a depth-first enumeration of every schedule with at most the bound's preemptions,
 * with no partial-order reduction: sound (every trace that has a schedule within the
 * bound is explored, checked against brute force in the tests) at the price of exploring
 * each such trace once per schedule. Sleep sets are not combined with the bound, since a
 * sleeping thread's traces may have been explored only with more preemptions (Coons,
 * Musuvathi, McKinley, OOPSLA 2013). `complete` is true when the bound cut nothing.
 *
 * Random and PCT modes: see {@link sample}. Counterexamples: see {@link minimize}:
 * `failures[0].schedule` of a result is the first failure found, for the caller to
 * minimise and print with {@link formatSchedule}.
 *
 * Progress: `onProgress` every `progressEvery` executions, with counts only (no wall
 * clock here) and an estimate of the total by Knuth's estimator over the current path
 * of the exploration tree, each node's known children weighted alike.
 *
 * Parallel exploration: parallel.ts splits the tree into subtrees ({@link exploreSubtree}).
 */
import { Prng } from './prng.js';
import { Runner, type RunResult, type RunStatus } from './runner.js';
import type { Op, Step, StepKind } from './step.js';
import { cloneWakeup, insertWakeup, weakInitial, type WakeupNode } from './wakeup.js';

/** One thread of a program: a fresh generator built by the factory. */
export interface ProgramThread {
  readonly name: string;
  readonly op: Op<unknown>;
  readonly ctx?: unknown;
}

/** A fresh instance of the program under test. `check` runs after a completed run. */
export interface ProgramInstance {
  readonly threads: readonly ProgramThread[];
  /** Returns a failure message, or null when the final state is fine. */
  readonly check?: () => string | null;
  /**
   * The program's own classification of a finished run of any status but 'step-limit'
   * (crashed and deadlocked runs too): a failure message, or null when the run is fine.
   * When given, it replaces the default (the deadlock and crash messages, then `check`)
   * wherever a failure is decided: exploration, {@link minimize}, {@link countPreemptions}.
   */
  readonly failure?: (run: RunResult) => string | null;
  /**
   * Labels of a finished run, counted per execution into {@link ExploreResult.labels}
   * (runs cut at maxSteps and sleep-set blocked runs are not labelled). Lets a caller
   * tally outcomes without `onExecution`, which cannot cross worker threads.
   */
  readonly labels?: (run: RunResult) => readonly string[];
  /**
   * True once the run's outcome can no longer change, whatever runs next (a sanitizer
   * report that decides the verdict). {@link minimize} and {@link countPreemptions} end
   * such a run there, as a completed one; exploration runs every execution to its end,
   * since later steps can race with earlier ones.
   */
  readonly decided?: () => boolean;
}

export type ProgramFactory = () => ProgramInstance;

export type ExploreAlgorithm = 'optimal' | 'source';

/** Counts handed to {@link ExploreOptions.onProgress}. No wall clock: the caller times. */
export interface ExploreProgress {
  /** Executions so far (sleep-set blocked ones included). */
  readonly executions: number;
  /** Steps run so far by all executions, replayed prefixes included. */
  readonly totalSteps: number;
  readonly failures: number;
  /**
   * Estimated share of the exploration tree already done, in (0, 1]: each node's
   * children are weighted alike (Knuth's estimator over the current path, with the
   * children known so far). 1 at the end of a complete exploration.
   */
  readonly fractionDone: number;
  /** executions / fractionDone, rounded: the estimated number of executions in all. */
  readonly estimatedTotal: number;
}

export interface ExploreOptions {
  /** DPOR algorithm (default 'optimal'); ignored by the bounded, random and PCT modes. */
  readonly algorithm?: ExploreAlgorithm;
  /** Stop after this many executions (result is then incomplete). Default: unlimited. */
  readonly maxExecutions?: number;
  /**
   * Start no further execution once the steps run by all executions so far (replayed
   * prefixes included) reach this many. An execution is never cut by this budget, so the
   * total can exceed it by at most one execution. Default: unlimited.
   */
  readonly maxTotalSteps?: number;
  /**
   * Preemption bound: explore every trace that has a schedule with at most this many
   * preemptions, and only such schedules. See "Preemption bounding" in the module comment.
   */
  readonly maxPreemptions?: number;
  /** Random mode instead of DPOR: `runs` executions, each step uniform among the enabled threads. */
  readonly random?: { readonly runs: number; readonly seed: number };
  /** PCT mode instead of DPOR (see {@link explore}). */
  readonly pct?: { readonly depth: number; readonly runs: number; readonly seed: number };
  /** Cut an execution after this many steps (result is then incomplete). Default: unlimited. */
  readonly maxSteps?: number;
  /** Stop at the first failing execution. */
  readonly stopOnFailure?: boolean;
  /** Keep the Runner's trace for each execution (default false; replay to get it). */
  readonly record?: boolean;
  /**
   * Called after every execution with its result (without a trace unless `record`). An
   * execution cut because it was sleep-set blocked is flagged `sleepBlocked`; its status
   * is not meaningful.
   */
  readonly onExecution?: (run: RunResult, info: { readonly sleepBlocked: boolean }) => void;
  /** Called after every `progressEvery` executions (DPOR and bounded modes). */
  readonly onProgress?: (p: ExploreProgress) => void;
  /** Default 1000. */
  readonly progressEvery?: number;
}

export interface ExploreFailure {
  readonly schedule: number[];
  readonly status: RunStatus;
  readonly message: string;
  /** Preemptions in the schedule (see {@link countPreemptions}). */
  readonly preemptions: number;
}

export interface ExploreResult {
  /** Executions run, including sleep-set blocked and step-limited ones. */
  readonly executions: number;
  /** Executions cut short because every enabled thread was in the sleep set. */
  readonly sleepBlocked: number;
  /** Executions cut at maxSteps. */
  readonly stepLimited: number;
  /** Branches cut by maxPreemptions. */
  readonly boundPruned: number;
  /** Wakeup-tree branches dropped because their thread was blocked (see the module comment). */
  readonly infeasible: number;
  /** Steps run by all executions together, replayed prefixes included. */
  readonly totalSteps: number;
  /**
   * True when every trace was explored: DPOR mode, no budget hit, no early stop and
   * nothing cut by the preemption bound. Always false in random and PCT modes.
   */
  readonly complete: boolean;
  /** Failures in the order found; `failures[0].schedule` is the one to minimise. */
  readonly failures: ExploreFailure[];
  /**
   * How many labelled executions carried each label ({@link ProgramInstance.labels}),
   * keys in the order first seen; empty when the program gives no labels.
   */
  readonly labels: Record<string, number>;
}

/** What the dependency relation needs to know about a step. */
export interface StepInfo {
  readonly obj: string;
  readonly kind: StepKind;
  readonly shared: boolean;
  readonly blocking: boolean;
  /** {@link Step.also}; empty when the step writes nothing else. */
  readonly also: readonly string[];
  /** {@link Step.reads}; empty when the step reads nothing else. */
  readonly reads: readonly string[];
}

const NO_ALSO: readonly string[] = [];

export function stepInfo(s: Step): StepInfo {
  return {
    obj: s.obj,
    kind: s.kind,
    shared: s.shared === true,
    blocking: s.enabled !== undefined,
    also: s.also ?? NO_ALSO,
    reads: s.reads ?? NO_ALSO,
  };
}

const info = stepInfo;

/** Whether two steps of different threads are dependent (see the module comment). */
export function dependent(a: Step, b: Step): boolean {
  return dep(info(a), info(b));
}

/** {@link dependent} on {@link StepInfo}s (source-DPOR's dependency and the traces'). */
export function dependentInfo(a: StepInfo, b: StepInfo): boolean {
  return dep(a, b);
}

/**
 * Whether one step's extra objects ({@link Step.also}, {@link Step.reads}) conflict with
 * the other's: a write (an `also` entry, or the `obj` of a step that is not a read) of
 * an object the other touches in any way, or a read of an object the other writes.
 */
function extraMeets(a: StepInfo, b: StepInfo): boolean {
  for (const o of a.also) if (o === b.obj || b.also.includes(o) || b.reads.includes(o)) return true;
  for (const o of b.also) if (o === a.obj || a.reads.includes(o)) return true;
  if (b.kind !== 'read') for (const o of a.reads) if (o === b.obj) return true;
  if (a.kind !== 'read') for (const o of b.reads) if (o === a.obj) return true;
  return false;
}

function dep(a: StepInfo, b: StepInfo): boolean {
  if ((a.also.length || b.also.length || a.reads.length || b.reads.length) && extraMeets(a, b))
    return true;
  if (a.obj !== b.obj) return false;
  if (a.kind === 'read' && b.kind === 'read') return false;
  const lockish = (k: StepKind): boolean => k === 'acquire' || k === 'release';
  if (lockish(a.kind) && lockish(b.kind)) {
    if (a.shared && b.shared) return false;
    // Two releases of one lock are never co-enabled in different threads.
    if (a.kind === 'release' && b.kind === 'release') return false;
    if (a.kind === 'release' && b.kind === 'acquire' && b.blocking) return false;
    if (b.kind === 'release' && a.kind === 'acquire' && a.blocking) return false;
  }
  return true;
}

/** Whether release `r` can enable the blocking acquire `a` (an edge of optimal-DPOR's order). */
function enables(r: StepInfo, a: StepInfo): boolean {
  return (
    r.obj === a.obj &&
    r.kind === 'release' &&
    a.kind === 'acquire' &&
    a.blocking &&
    !(r.shared && a.shared)
  );
}

/** Optimal-DPOR's dependency: {@link dep} plus release-enables-acquire, both ways. */
export function depHb(a: StepInfo, b: StepInfo): boolean {
  return dep(a, b) || enables(a, b) || enables(b, a);
}

interface Event {
  readonly tid: number;
  readonly step: StepInfo;
  /** 1-based position of this event within its thread. */
  readonly local: number;
  /** Vector clock: vc[t] = number of events of thread t that happen before or equal this one. */
  readonly vc: number[];
  /** For a release: position of the same thread's latest acquire of the object, else -1. */
  readonly match: number;
}

/** A node of source-DPOR (one per state of the current execution). */
interface Node {
  /** Threads enabled in this state. */
  readonly enabled: number[];
  /** Pending step of each thread in this state (null when none). */
  readonly pending: (StepInfo | null)[];
  readonly backtrack: Set<number>;
  readonly sleep: Set<number>;
  /** Children fully explored. */
  done: number;
  /** Thread explored from this state in the current execution, -1 at the end. */
  chosen: number;
}

function snapshot(r: Runner, sleep: Set<number>): Node {
  return {
    enabled: r.enabled().map((t) => t.id),
    pending: r.threads.map((t) => (t.done || t.pending === null ? null : info(t.pending))),
    backtrack: new Set(),
    sleep,
    done: 0,
    chosen: -1,
  };
}

function build(
  factory: ProgramFactory,
  record: boolean,
): { runner: Runner; prog: ProgramInstance } {
  const prog = factory();
  const runner = new Runner({ record });
  for (const t of prog.threads) runner.spawn(t.name, t.op, t.ctx);
  return { runner, prog };
}

/** The run's final status once no step is taken any more ('done', 'crashed' or 'deadlock'). */
function finish(runner: Runner): RunResult {
  return runner.run([]);
}

function failureOf(run: RunResult, prog: ProgramInstance): string | null {
  if (prog.failure) {
    return run.status === 'step-limit' || run.status === 'bad-schedule' ? null : prog.failure(run);
  }
  const check = prog.check;
  if (run.status === 'deadlock') {
    return `deadlock: ${run.blocked.map((b) => `${b.thread} waits for ${b.obj}${b.what ? ` in ${b.what}` : ''}`).join(', ')}`;
  }
  if (run.status === 'crashed') {
    const e = run.crashed?.error;
    return `${run.crashed?.thread ?? '?'} crashed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
  if (run.status === 'done' && check) return check();
  return null;
}

function sameStep(a: StepInfo | null | undefined, b: StepInfo): boolean {
  return (
    !!a &&
    a.obj === b.obj &&
    a.kind === b.kind &&
    a.shared === b.shared &&
    a.also.length === b.also.length &&
    a.also.every((o, i) => b.also[i] === o) &&
    a.reads.length === b.reads.length &&
    a.reads.every((o, i) => b.reads[i] === o)
  );
}

/**
 * Where a subtree exploration starts: the schedule prefix leading to its root and the
 * sleep set at the root. Races whose reversal would start above the root are left to
 * whoever explores the rest of the tree (see parallel.ts).
 */
export interface SubtreeRoot {
  readonly prefix: readonly number[];
  readonly sleep: readonly number[];
}

/**
 * Explores the program. By default: every Mazurkiewicz trace exactly once by
 * optimal-DPOR (see the module comment); `algorithm: 'source'` for source-DPOR; with
 * `maxPreemptions`, the sound bounded search. With `random` or `pct`, runs sampled
 * schedules instead (see {@link sample}); those modes are never complete.
 */
export function explore(factory: ProgramFactory, opts: ExploreOptions = {}): ExploreResult {
  if (opts.random && opts.pct) throw new Error('explore: choose one of random and pct, not both');
  if (opts.random || opts.pct) return sample(factory, opts);
  return exploreSubtree(factory, opts, { prefix: [], sleep: [] });
}

/**
 * Explores the subtree of executions that start with `root.prefix`, with `root.sleep`
 * as the sleep set after it (DPOR and bounded modes). With an empty root this is
 * {@link explore}.
 */
export function exploreSubtree(
  factory: ProgramFactory,
  opts: ExploreOptions,
  root: SubtreeRoot,
): ExploreResult {
  if (opts.maxPreemptions !== undefined && Number.isFinite(opts.maxPreemptions)) {
    return exploreBounded(factory, opts, root);
  }
  const algorithm = opts.algorithm ?? 'optimal';
  if (algorithm === 'optimal') return exploreOptimal(factory, opts, root);
  if (algorithm === 'source') return exploreSource(factory, opts, root);
  throw new Error(`explore: unknown algorithm '${String(algorithm)}' (optimal or source)`);
}

/** Shared bookkeeping of the DPOR loops: counts, budgets, progress and failures. */
class Tally {
  executions = 0;
  sleepBlocked = 0;
  stepLimited = 0;
  boundPruned = 0;
  infeasible = 0;
  totalSteps = 0;
  readonly failures: ExploreFailure[] = [];
  readonly labels: Record<string, number> = {};
  private readonly maxExecutions: number;
  private readonly maxTotalSteps: number;
  private readonly every: number;

  constructor(private readonly opts: ExploreOptions) {
    this.maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
    this.maxTotalSteps = opts.maxTotalSteps ?? Number.POSITIVE_INFINITY;
    this.every = Math.max(1, opts.progressEvery ?? 1000);
  }

  budgetLeft(): boolean {
    return this.executions < this.maxExecutions && this.totalSteps < this.maxTotalSteps;
  }

  /** Records a finished execution; returns true when exploration must stop (stopOnFailure). */
  record(run: RunResult, message: string | null, preemptions: number): boolean {
    if (message === null) return false;
    this.failures.push({ schedule: [...run.schedule], status: run.status, message, preemptions });
    return this.opts.stopOnFailure === true;
  }

  /** Counts the labels of a finished (not sleep-set blocked, not step-limited) run. */
  label(prog: ProgramInstance, run: RunResult): void {
    if (prog.labels) countLabels(this.labels, prog.labels(run));
  }

  /**
   * Ends a DPOR execution that stopped as `end` ('final': finished, deadlocked or crashed;
   * 'limit': cut at maxSteps; 'sleep': sleep-set blocked): counts it, reports it to
   * onExecution, labels and records a final one. Returns true when exploration must stop.
   */
  endExecution(
    end: 'final' | 'limit' | 'sleep',
    runner: Runner,
    prog: ProgramInstance,
    preemptions: () => number,
  ): boolean {
    let run: RunResult;
    if (end === 'final') run = finish(runner);
    else if (end === 'limit') {
      this.stepLimited++;
      run = runner.result('step-limit');
    } else {
      this.sleepBlocked++;
      run = runner.result('done', 'sleep-set blocked');
    }
    this.opts.onExecution?.(run, { sleepBlocked: end === 'sleep' });
    if (end !== 'final') return false;
    this.label(prog, run);
    return this.record(run, failureOf(run, prog), preemptions());
  }

  progress(fraction: () => number): void {
    if (!this.opts.onProgress || this.executions % this.every !== 0) return;
    const f = Math.min(1, Math.max(fraction(), Number.MIN_VALUE));
    this.opts.onProgress({
      executions: this.executions,
      totalSteps: this.totalSteps,
      failures: this.failures.length,
      fractionDone: f,
      estimatedTotal: Math.max(this.executions, Math.round(this.executions / f)),
    });
  }

  result(complete: boolean): ExploreResult {
    return {
      executions: this.executions,
      sleepBlocked: this.sleepBlocked,
      stepLimited: this.stepLimited,
      boundPruned: this.boundPruned,
      infeasible: this.infeasible,
      totalSteps: this.totalSteps,
      complete,
      failures: this.failures,
      labels: this.labels,
    };
  }
}

function countLabels(into: Record<string, number>, labels: readonly string[]): void {
  for (const l of labels) into[l] = (into[l] ?? 0) + 1;
}

/**
 * Knuth-style share of the tree done: each node splits its weight evenly among its
 * `total` children, of which `done` are finished; the leaf just run counts as finished.
 */
function pathFraction(path: readonly { done: number; total: number }[]): number {
  let w = 1;
  let f = 0;
  for (const { done, total } of path) {
    const b = Math.max(total, done + 1);
    f += (w * done) / b;
    w /= b;
  }
  return f + w;
}

/** Steps of threads that did not finish (a deadlock's blocked threads, or after a crash). */
function leftover(runner: Runner): { tid: number; step: StepInfo }[] {
  const out: { tid: number; step: StepInfo }[] = [];
  for (const t of runner.threads)
    if (!t.done && t.pending) out.push({ tid: t.id, step: info(t.pending) });
  return out;
}

/** A node of optimal-DPOR. */
interface ONode {
  readonly enabled: number[];
  readonly pending: (StepInfo | null)[];
  readonly sleep: Set<number>;
  /**
   * The part of `sleep` inherited from a subtree root's given sleep set: those threads
   * block a wakeup sequence only when they are initials of it (not weak initials),
   * since the sequences the sequential search would have passed down are unknown here.
   */
  readonly given: Set<number>;
  /** The wakeup tree; while a child is explored it stays first, removed on backtrack. */
  wut: WakeupNode<StepInfo>[];
  done: number;
  chosen: number;
}

function exploreOptimal(
  factory: ProgramFactory,
  opts: ExploreOptions,
  root: SubtreeRoot,
): ExploreResult {
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const record = opts.record ?? false;
  const rootDepth = root.prefix.length;
  const t = new Tally(opts);
  const nodes: ONode[] = [];
  const events: Event[] = [];
  let branch = 0;
  let stopped = false;

  const fraction = (): number =>
    pathFraction(
      nodes
        .slice(rootDepth)
        .filter((n) => n.chosen >= 0)
        .map((n) => ({ done: n.done, total: n.done + n.wut.length })),
    );

  for (;;) {
    if (!t.budgetLeft()) return t.result(false);
    t.executions++;
    const { runner, prog } = build(factory, record);
    for (let d = 0; d < branch; d++) {
      const tid = nodes[d]!.chosen;
      const p = runner.threads[tid]?.pending;
      if (!sameStep(p ? info(p) : null, events[d]!.step) || !runner.step(tid)) {
        throw new Error(`explore: program is not deterministic (replay diverged at step ${d})`);
      }
    }

    let d = branch;
    let sleep = d === rootDepth ? new Set(root.sleep) : new Set<number>();
    let given = new Set(sleep);
    let wut: WakeupNode<StepInfo>[] = [];
    let end: 'final' | 'sleep' | 'limit';
    for (;;) {
      if (nodes[d] === undefined) {
        nodes[d] = {
          enabled: runner.enabled().map((x) => x.id),
          pending: runner.threads.map((x) =>
            x.done || x.pending === null ? null : info(x.pending),
          ),
          sleep,
          given,
          wut,
          done: 0,
          chosen: -1,
        };
      }
      const node = nodes[d]!;
      if (node.chosen < 0) {
        if (runner.isFinished() || node.enabled.length === 0) {
          node.wut = [];
          end = 'final';
          break;
        }
        if (d >= maxSteps) {
          node.wut = [];
          end = 'limit';
          break;
        }
        if (d < rootDepth) {
          const tid = root.prefix[d]!;
          if (!node.enabled.includes(tid)) {
            throw new Error(`explore: subtree prefix step ${d} (thread ${tid}) is not enabled`);
          }
          node.wut = [{ tid, step: node.pending[tid]!, children: [] }];
          node.chosen = tid;
        } else {
          while (node.wut.length > 0 && !node.enabled.includes(node.wut[0]!.tid)) {
            node.wut.shift();
            t.infeasible++;
          }
          if (node.wut.length === 0) {
            const cands = node.enabled.filter((x) => !node.sleep.has(x));
            if (cands.length === 0) {
              end = 'sleep';
              break;
            }
            const last = d > 0 ? events[d - 1]!.tid : -1;
            const tid = cands.includes(last) ? last : cands[0]!;
            node.wut.push({ tid, step: node.pending[tid]!, children: [] });
          }
          node.chosen = node.wut[0]!.tid;
        }
      }
      const tid = node.chosen;
      const br = node.wut[0]!;
      const step = node.pending[tid]!;
      if (!sameStep(step, br.step)) {
        throw new Error(
          `explore: program is not deterministic, or a step's effect is not announced (thread ${tid} at step ${d} is ${step.kind} ${step.obj}, expected ${br.step.kind} ${br.step.obj}; schedule ${formatSchedule([...events.slice(0, d).map((e) => e.tid), tid])})`,
        );
      }
      if (!runner.step(tid)) throw new Error(`explore: thread ${tid} not runnable at step ${d}`);
      events[d] = makeEvent(events, d, tid, step, depHb);
      sleep = new Set<number>();
      given = new Set<number>();
      if (d + 1 === rootDepth) {
        sleep = new Set(root.sleep);
        given = new Set(root.sleep);
      } else if (d >= rootDepth) {
        for (const q of node.sleep) {
          const s = node.pending[q];
          if (q !== tid && s && !depHb(s, step)) {
            sleep.add(q);
            if (node.given.has(q)) given.add(q);
          }
        }
      }
      wut = cloneWakeup(br.children);
      d++;
    }
    t.totalSteps += runner.clock;

    // Race analysis: the new events, and after a deadlock or crash the steps left over.
    for (let k = Math.max(branch, rootDepth); k < events.length; k++) {
      racesOptimal(nodes, events, k, events[k]!, rootDepth);
    }
    if (end === 'final') {
      for (const { tid, step } of leftover(runner)) {
        const ev = makeEvent(events, events.length, tid, step, depHb);
        racesOptimal(nodes, events, events.length, ev, rootDepth);
      }
      const cont = crashContinuation(factory, runner, events, maxSteps);
      if (cont) {
        t.totalSteps += cont.clock;
        afterCrash(events, cont, depHb, (ext, k, ev, past) =>
          racesOptimal(nodes, ext, k, ev, rootDepth, past),
        );
      }
    }

    if (t.endExecution(end, runner, prog, () => preemptionsOf(events, nodes))) stopped = true;
    t.progress(fraction);
    if (stopped) return t.result(false);

    // Backtrack to the deepest node whose wakeup tree has a branch left.
    let next = -1;
    for (let i = events.length; i >= rootDepth && next < 0; i--) {
      const node = nodes[i]!;
      if (node.chosen >= 0) {
        node.sleep.add(node.chosen);
        node.wut.shift();
        node.done++;
        node.chosen = -1;
      }
      while (node.wut.length > 0 && !node.enabled.includes(node.wut[0]!.tid)) {
        node.wut.shift();
        t.infeasible++;
      }
      if (node.wut.length > 0) {
        node.chosen = node.wut[0]!.tid;
        next = i;
      }
    }
    if (next < 0) return t.result(t.stepLimited === 0);
    branch = next;
    nodes.length = next + 1;
    events.length = next;
  }
}

/** Preemptions of the current execution (the node snapshots give the enabled sets). */
function preemptionsOf(events: readonly Event[], nodes: readonly { enabled: number[] }[]): number {
  let n = 0;
  for (let d = 1; d < events.length; d++) {
    const last = events[d - 1]!.tid;
    if (events[d]!.tid !== last && nodes[d]!.enabled.includes(last)) n++;
  }
  return n;
}

/**
 * Races of optimal-DPOR for the event `ek` at position k (a real event, or a left-over
 * step appended virtually): for each earlier event e of another thread that it depends
 * on ({@link dep}), the race is reversible when nothing that happens after e is needed
 * before ek, except a release whose matching acquire is also removed by the reversal.
 * Then v = notdep(e, E).ek is inserted into the wakeup tree before e unless a thread of
 * that node's sleep set is a weak initial of v.
 */
function racesOptimal(
  nodes: ONode[],
  events: readonly Event[],
  k: number,
  ek: Event,
  rootDepth: number,
  only: (i: number) => boolean = () => true,
): void {
  let pp = -1;
  for (let j = k - 1; j >= 0; j--) {
    if (events[j]!.tid === ek.tid) {
      pp = j;
      break;
    }
  }
  // ek's direct predecessors of other threads (the only way anything after e reaches ek).
  const preds: number[] = [];
  for (let j = rootDepth; j < k; j++) {
    const x = events[j]!;
    if (x.tid !== ek.tid && depHb(x.step, ek.step)) preds.push(j);
  }
  for (const i of preds) {
    const e = events[i]!;
    if (!only(i) || !dep(e.step, ek.step)) continue;
    if (pp > i && hb(e, events[pp]!)) continue;
    let ok = true;
    for (const j of preds) {
      if (j <= i) continue;
      const x = events[j]!;
      if (!hb(e, x)) continue;
      if (enables(x.step, ek.step) && x.match >= i && hb(e, events[x.match]!)) continue;
      ok = false;
      break;
    }
    if (!ok) continue;
    const v: { tid: number; step: StepInfo }[] = [];
    for (let j = i + 1; j < k; j++) {
      const x = events[j]!;
      if (!hb(e, x)) v.push({ tid: x.tid, step: x.step });
    }
    v.push({ tid: ek.tid, step: ek.step });
    const node = nodes[i]!;
    let asleep = false;
    for (const q of node.sleep) {
      const w = weakInitial(v, q, node.pending[q] ?? null, depHb);
      if (w !== null && (w >= 0 || !node.given.has(q))) {
        asleep = true;
        break;
      }
    }
    if (!asleep) insertWakeup(node.wut, v, depHb);
  }
}

/**
 * The sound preemption-bounded search: every schedule with at most `maxPreemptions`
 * preemptions, depth first, the non-preemptive choice first (see the module comment).
 */
function exploreBounded(
  factory: ProgramFactory,
  opts: ExploreOptions,
  root: SubtreeRoot,
): ExploreResult {
  const bound = opts.maxPreemptions!;
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const record = opts.record ?? false;
  const rootDepth = root.prefix.length;
  const t = new Tally(opts);
  /** Per step: the thread run, the alternatives left, how many were explored. */
  const choices: number[] = [];
  const alts: { tid: number; cost: number }[][] = [];
  const seen: { done: number; total: number }[] = [];
  const pre: number[] = [0];
  let branch = 0;
  for (;;) {
    if (!t.budgetLeft()) return t.result(false);
    t.executions++;
    const { runner, prog } = build(factory, record);
    let d = 0;
    let limited = false;
    while (!runner.isFinished()) {
      const en = runner.enabled().map((x) => x.id);
      if (en.length === 0) break;
      if (d >= maxSteps) {
        limited = true;
        break;
      }
      const last = d > 0 ? choices[d - 1]! : -1;
      const free = last < 0 || !en.includes(last);
      if (d >= branch) {
        let order: { tid: number; cost: number }[];
        if (d < rootDepth)
          order = [{ tid: root.prefix[d]!, cost: free || root.prefix[d] === last ? 0 : 1 }];
        else {
          const ids = free ? en : [last, ...en.filter((x) => x !== last)];
          order = ids.map((tid) => ({ tid, cost: free || tid === last ? 0 : 1 }));
        }
        const ok = order.filter((c) => pre[d]! + c.cost <= bound);
        t.boundPruned += order.length - ok.length;
        if (ok.length === 0)
          throw new Error(`explore: subtree prefix exceeds the preemption bound at step ${d}`);
        choices[d] = ok[0]!.tid;
        alts[d] = ok.slice(1);
        seen[d] = { done: 0, total: ok.length };
        pre[d + 1] = pre[d]! + ok[0]!.cost;
      }
      if (!runner.step(choices[d]!)) {
        throw new Error(`explore: thread ${choices[d]} not runnable at step ${d}`);
      }
      d++;
    }
    choices.length = d;
    t.totalSteps += runner.clock;
    let run: RunResult;
    if (limited) {
      t.stepLimited++;
      run = runner.result('step-limit');
    } else run = finish(runner);
    opts.onExecution?.(run, { sleepBlocked: false });
    if (!limited) t.label(prog, run);
    const stop = !limited && t.record(run, failureOf(run, prog), pre[d]!);
    t.progress(() => pathFraction(seen.slice(rootDepth, d)));
    if (stop) return t.result(false);
    let b = d - 1;
    while (b >= rootDepth && alts[b]!.length === 0) b--;
    if (b < rootDepth) return t.result(t.stepLimited === 0 && t.boundPruned === 0);
    const alt = alts[b]!.shift()!;
    seen[b]!.done++;
    choices[b] = alt.tid;
    pre[b + 1] = pre[b]! + alt.cost;
    choices.length = b + 1;
    alts.length = b + 1;
    seen.length = b + 1;
    pre.length = b + 2;
    branch = b + 1;
  }
}

/** Source-DPOR with sleep sets (POPL 2014, Algorithm 1). */
function exploreSource(
  factory: ProgramFactory,
  opts: ExploreOptions,
  root: SubtreeRoot,
): ExploreResult {
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const record = opts.record ?? false;
  const rootDepth = root.prefix.length;
  const t = new Tally(opts);
  const nodes: Node[] = [];
  const events: Event[] = [];
  let branch = 0;
  const fraction = (): number =>
    pathFraction(
      nodes
        .slice(rootDepth)
        .filter((n) => n.chosen >= 0)
        .map((n) => ({
          done: n.done,
          total: n.done + [...n.backtrack].filter((p) => !n.sleep.has(p)).length,
        })),
    );

  for (;;) {
    if (!t.budgetLeft()) return t.result(false);
    t.executions++;
    const { runner, prog } = build(factory, record);
    for (let d = 0; d < branch; d++) {
      const tid = nodes[d]!.chosen;
      if (
        !sameStep(
          runner.threads[tid]?.pending ? info(runner.threads[tid].pending) : null,
          events[d]!.step,
        ) ||
        !runner.step(tid)
      ) {
        throw new Error(`explore: program is not deterministic (replay diverged at step ${d})`);
      }
    }
    if (nodes.length === 0)
      nodes.push(snapshot(runner, new Set(rootDepth === 0 ? root.sleep : [])));

    // Extend the execution from the branch point.
    let d = branch;
    let end: 'final' | 'sleep' | 'limit';
    for (;;) {
      const node = nodes[d]!;
      if (node.chosen < 0) {
        if (runner.isFinished() || node.enabled.length === 0) {
          end = 'final';
          break;
        }
        if (d >= maxSteps) {
          end = 'limit';
          break;
        }
        if (d < rootDepth) {
          const tid = root.prefix[d]!;
          if (!node.enabled.includes(tid)) {
            throw new Error(`explore: subtree prefix step ${d} (thread ${tid}) is not enabled`);
          }
          node.chosen = tid;
        } else {
          const cands = node.enabled.filter((x) => !node.sleep.has(x));
          if (cands.length === 0) {
            end = 'sleep';
            break;
          }
          const last = d > 0 ? events[d - 1]!.tid : -1;
          node.chosen = cands.includes(last) ? last : cands[0]!;
        }
        node.backtrack.add(node.chosen);
      }
      const tid = node.chosen;
      const step = node.pending[tid]!;
      if (!runner.step(tid)) throw new Error(`explore: thread ${tid} not runnable at step ${d}`);
      events[d] = makeEvent(events, d, tid, step, dep);
      let sleep = new Set<number>();
      if (d + 1 === rootDepth) sleep = new Set(root.sleep);
      else if (d >= rootDepth) {
        for (const q of node.sleep) {
          const s = node.pending[q];
          if (s && !dep(s, step)) sleep.add(q);
        }
      }
      nodes[d + 1] = snapshot(runner, sleep);
      d++;
    }
    t.totalSteps += runner.clock;

    // Race analysis for the new events and the steps of threads left over.
    for (let k = Math.max(branch, rootDepth); k < events.length; k++) {
      analyse(nodes, events, k, events[k]!, rootDepth);
    }
    for (const { tid, step } of leftover(runner)) {
      if (nodes[events.length]!.enabled.includes(tid) && !runner.isFinished()) continue;
      analyse(
        nodes,
        events,
        events.length,
        makeEvent(events, events.length, tid, step, dep),
        rootDepth,
      );
    }
    if (end === 'final') {
      const cont = crashContinuation(factory, runner, events, maxSteps);
      if (cont) {
        t.totalSteps += cont.clock;
        afterCrash(events, cont, dep, (ext, k, ev, past) =>
          analyse(nodes, ext, k, ev, rootDepth, past),
        );
      }
    }

    const stop = t.endExecution(end, runner, prog, () => preemptionsOf(events, nodes));
    t.progress(fraction);
    if (stop) return t.result(false);

    // Backtrack to the deepest state with an unexplored, non-sleeping backtrack entry.
    let next = -1;
    for (let i = events.length; i >= rootDepth && next < 0; i--) {
      const node = nodes[i]!;
      if (node.chosen >= 0) {
        node.sleep.add(node.chosen);
        node.done++;
      }
      node.chosen = -1;
      for (const p of node.backtrack) {
        if (node.sleep.has(p)) continue;
        node.chosen = p;
        next = i;
        break;
      }
    }
    if (next < 0) return t.result(t.stepLimited === 0);
    branch = next;
    nodes.length = next + 1;
    events.length = next;
  }
}

/** How the other threads go on after a crash ({@link crashContinuation}). */
interface Continuation {
  /** Steps taken, in order. */
  readonly steps: { tid: number; step: StepInfo }[];
  /** Pending steps of the threads that did not finish (blocked, or cut by a crash). */
  readonly pending: { tid: number; step: StepInfo }[];
  /** Steps run, the replayed prefix included. */
  readonly clock: number;
}

/**
 * After a run that crashed at its last event c: the steps the other threads take when
 * the run goes on without the crashed thread, from the state before c (a real execution,
 * replayed), each thread running while it can, then the lowest id (as Runner.run does).
 * Null when the run did not crash at a step (nothing to continue).
 *
 * Why. A crash ends the run, so a thread that had not got far never shows the steps it
 * would take later; a later step that races with a step of the crash's past (say it takes
 * a lock the crashing thread took) is a race whose reversal is another trace, where the
 * crash happens after that thread's steps, or not at all. Only the next pending step of
 * each thread is known from the run itself. See {@link afterCrash}.
 */
function crashContinuation(
  factory: ProgramFactory,
  crashed: Runner,
  events: readonly Event[],
  maxSteps: number,
): Continuation | null {
  const c = events.length - 1;
  const crashTid = crashed.result('crashed').crashed?.tid;
  if (crashTid === undefined || c < 0 || events[c]!.tid !== crashTid) return null;
  const { runner } = build(factory, false);
  for (let d = 0; d < c; d++) {
    const tid = events[d]!.tid;
    const p = runner.threads[tid]?.pending;
    if (!sameStep(p ? info(p) : null, events[d]!.step) || !runner.step(tid)) {
      throw new Error(`explore: program is not deterministic (replay diverged at step ${d})`);
    }
  }
  const steps: { tid: number; step: StepInfo }[] = [];
  let last = -1;
  while (!runner.isFinished() && runner.clock < maxSteps) {
    const en = runner.enabled().filter((x) => x.id !== crashTid);
    if (en.length === 0) break;
    const next = en.find((x) => x.id === last) ?? en[0]!;
    steps.push({ tid: next.id, step: info(next.pending!) });
    runner.step(next.id);
    last = next.id;
  }
  const pending = leftover(runner).filter((x) => x.tid !== crashTid);
  return { steps, pending, clock: runner.clock };
}

/**
 * Race analysis of a crash's continuation: its steps are appended after the crashing
 * event c as if they ran after it, and each is checked for races with the events that
 * happen before c (c included) only. A reversal v = notdep(e, E).e' of such a race holds
 * no event that happens after c (e happens before c), so it is made of events of the
 * continuation's real execution and can be run; races with events outside c's past
 * cannot change what happens before the crash. Blocked threads' pending steps at the
 * continuation's end are analysed the same way, as the left-over steps of a deadlock.
 */
function afterCrash(
  events: readonly Event[],
  cont: Continuation,
  depFn: (a: StepInfo, b: StepInfo) => boolean,
  races: (ext: readonly Event[], k: number, ev: Event, past: (i: number) => boolean) => void,
): void {
  const c = events.length - 1;
  const crash = events[c]!;
  const ext = [...events];
  const past = (i: number): boolean => i <= c && hb(ext[i]!, crash);
  for (const { tid, step } of cont.steps) {
    const ev = makeEvent(ext, ext.length, tid, step, depFn);
    races(ext, ext.length, ev, past);
    ext.push(ev);
  }
  for (const { tid, step } of cont.pending) {
    races(ext, ext.length, makeEvent(ext, ext.length, tid, step, depFn), past);
  }
}

function makeEvent(
  events: readonly Event[],
  k: number,
  tid: number,
  step: StepInfo,
  depFn: (a: StepInfo, b: StepInfo) => boolean,
): Event {
  let vc: number[] = [];
  let local = 1;
  let match = -1;
  for (let j = k - 1; j >= 0; j--) {
    const e = events[j]!;
    if (e.tid === tid) {
      if (local === 1) {
        vc = [...e.vc];
        local = e.local + 1;
      }
      if (step.kind !== 'release') break;
      if (e.step.obj === step.obj && e.step.kind === 'acquire') {
        match = j;
        break;
      }
    }
  }
  for (let j = 0; j < k; j++) {
    const e = events[j]!;
    if (e.tid !== tid && depFn(e.step, step)) {
      for (let t = 0; t < e.vc.length; t++) vc[t] = Math.max(vc[t] ?? 0, e.vc[t] ?? 0);
    }
  }
  for (let t = 0; t < vc.length; t++) vc[t] ??= 0;
  vc[tid] = local;
  return { tid, step, local, vc, match };
}

/** Whether event a happens before event b (a earlier than b in the execution). */
function hb(a: Event, b: Event): boolean {
  return (b.vc[a.tid] ?? 0) >= a.local;
}

/**
 * Finds every race e ⋖ e' (e' at position k, possibly a blocked thread's pending step
 * appended virtually) and updates the backtrack set before e as source-DPOR does.
 */
function analyse(
  nodes: Node[],
  events: readonly Event[],
  k: number,
  ek: Event,
  rootDepth: number,
  only: (i: number) => boolean = () => true,
): void {
  for (let i = rootDepth; i < k; i++) {
    const ei = events[i]!;
    if (ei.tid === ek.tid || !only(i) || !dep(ei.step, ek.step)) continue;
    let direct = true;
    for (let j = i + 1; j < k && direct; j++) {
      const ej = events[j]!;
      if (hb(ei, ej) && hb(ej, ek)) direct = false;
    }
    if (!direct) continue;
    // v = notdep(e, E).e'; I = its initials.
    const v: Event[] = [];
    for (let j = i + 1; j < k; j++) if (!hb(ei, events[j]!)) v.push(events[j]!);
    v.push(ek);
    const initials: number[] = [];
    const seen = new Set<number>();
    for (let u = 0; u < v.length; u++) {
      const eu = v[u]!;
      if (seen.has(eu.tid)) continue;
      seen.add(eu.tid);
      let first = true;
      for (let w = 0; w < u && first; w++) if (hb(v[w]!, eu)) first = false;
      if (first) initials.push(eu.tid);
    }
    const node = nodes[i]!;
    if (initials.some((t) => node.backtrack.has(t))) continue;
    const cands = initials.filter((t) => node.enabled.includes(t));
    if (cands.length > 0) node.backtrack.add(cands.find((t) => !node.sleep.has(t)) ?? cands[0]!);
    else for (const t of node.enabled) node.backtrack.add(t);
  }
}

/**
 * Schedule strings: thread ids separated by dots, a run of n > 1 steps of one thread
 * written `tid*n`; e.g. [0, 0, 0, 1, 0] is "0*3.1.0" and [] is "". Works for any number
 * of threads.
 */
export function formatSchedule(schedule: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < schedule.length;) {
    let j = i;
    while (j < schedule.length && schedule[j] === schedule[i]) j++;
    parts.push(j - i > 1 ? `${schedule[i]}*${j - i}` : `${schedule[i]}`);
    i = j;
  }
  return parts.join('.');
}

/** Parses a schedule string (see {@link formatSchedule}); throws on malformed input. */
export function parseSchedule(text: string): number[] {
  const s = text.trim();
  if (s === '') return [];
  const out: number[] = [];
  for (const part of s.split('.')) {
    const m = /^(\d+)(?:\*(\d+))?$/.exec(part);
    if (!m) throw new Error(`bad schedule element '${part}' in '${text}'`);
    const tid = Number(m[1]);
    const n = m[2] === undefined ? 1 : Number(m[2]);
    if (n < 1) throw new Error(`bad repeat count in '${part}'`);
    for (let i = 0; i < n; i++) out.push(tid);
  }
  return out;
}

export interface ReplayResult extends RunResult {
  /** The program's check() message after a completed run, else null. */
  readonly check: string | null;
}

/**
 * Runs a fresh instance of the program under the given schedule (array or string)
 * with a full trace. Past the end of the schedule the Runner's rule applies (the last
 * thread continues while it can, else the lowest enabled id); a schedule taken from an
 * exploration covers the whole run.
 */
export function replay(
  factory: ProgramFactory,
  schedule: readonly number[] | string,
  opts: { readonly maxSteps?: number } = {},
): ReplayResult {
  const prog = factory();
  const runner = new Runner({
    record: true,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
  });
  for (const t of prog.threads) runner.spawn(t.name, t.op, t.ctx);
  const run = runner.run(typeof schedule === 'string' ? parseSchedule(schedule) : schedule);
  const check = run.status === 'done' && prog.check ? prog.check() : null;
  return { ...run, check };
}

/** Picks the thread for step `index` among the enabled ids (ascending, never empty). */
type Chooser = (enabled: readonly number[], index: number, runner: Runner) => number;

interface ChosenRun {
  readonly run: RunResult;
  /** The failure message after a completed run (null when fine or step-limited). */
  readonly message: string | null;
  readonly preemptions: number;
  /** The program's labels of the run (with `labels`; none when step-limited). */
  readonly labels?: readonly string[];
}

/** One execution of a fresh instance, each step's thread picked by `choose`. */
function runChosen(
  factory: ProgramFactory,
  choose: Chooser,
  opts: { readonly record?: boolean; readonly maxSteps?: number; readonly labels?: boolean } = {},
): ChosenRun {
  const { runner, prog } = build(factory, opts.record ?? false);
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  let preemptions = 0;
  let last = -1;
  while (!runner.isFinished()) {
    const en = runner.enabled().map((t) => t.id);
    if (en.length === 0) break;
    if (runner.clock >= maxSteps) {
      return { run: runner.result('step-limit'), message: null, preemptions };
    }
    const tid = choose(en, runner.clock, runner);
    if (last >= 0 && tid !== last && en.includes(last)) preemptions++;
    if (!runner.step(tid)) throw new Error(`explore: chose thread ${tid}, which is not enabled`);
    last = tid;
    if (prog.decided?.() && !runner.isFinished()) {
      // The outcome is fixed: end the run here, as if complete (its check gives it).
      const run = runner.result('done');
      return { run, message: failureOf(run, prog), preemptions, ...labelsOf(run) };
    }
  }
  const run = finish(runner);
  return { run, message: failureOf(run, prog), preemptions, ...labelsOf(run) };

  function labelsOf(run: RunResult): { labels?: readonly string[] } {
    return opts.labels && prog.labels ? { labels: prog.labels(run) } : {};
  }
}

/** The Runner's rule past the end of a schedule: the last thread continues, else the lowest id. */
function continueOrLowest(en: readonly number[], _index: number, runner: Runner): number {
  const last = runner.schedule.at(-1);
  return last !== undefined && en.includes(last) ? last : en[0]!;
}

/** Follows `schedule`, then {@link continueOrLowest}; throws at a step that is not enabled. */
function following(schedule: readonly number[]): Chooser {
  return (en, index, runner) => {
    if (index >= schedule.length) return continueOrLowest(en, index, runner);
    const tid = schedule[index]!;
    if (!en.includes(tid)) throw new BadSchedule(index, tid);
    return tid;
  };
}

class BadSchedule extends Error {
  constructor(
    readonly index: number,
    readonly tid: number,
  ) {
    super(`schedule position ${index}: thread ${tid} is not enabled`);
    this.name = 'BadSchedule';
  }
}

/**
 * Preemptions in a schedule of the program: steps by a thread other than the previous
 * step's while that thread is still enabled. Past the end of the schedule the Runner's
 * rule applies, which never preempts. Throws when the schedule cannot be followed.
 */
export function countPreemptions(factory: ProgramFactory, schedule: readonly number[]): number {
  return runChosen(factory, following(schedule)).preemptions;
}

/**
 * Random and PCT modes. Deterministic for a seed: one PRNG, seeded once, drives all runs.
 *
 * - Random: every step picks uniformly among the enabled threads; `runs` executions.
 * - PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010) with depth d: first
 *   one estimation run under the Runner's default (non-preemptive) rule gives k, its
 *   number of steps (at least 1); it counts as an execution and is checked like any
 *   other. Then each of `runs` executions gives the n threads distinct random initial
 *   priorities d .. d+n-1, picks d-1 distinct change points uniformly among the steps
 *   1..k (fewer when k < d-1), and always runs the enabled thread of highest priority;
 *   just before step number k_i (1-based) the thread that would run gets priority i
 *   (below every initial priority), and the choice is made again.
 */
function sample(factory: ProgramFactory, opts: ExploreOptions): ExploreResult {
  const maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
  const maxTotalSteps = opts.maxTotalSteps ?? Number.POSITIVE_INFINITY;
  const runOpts = {
    ...(opts.record !== undefined ? { record: opts.record } : {}),
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    labels: true,
  };
  const labels: Record<string, number> = {};
  const mode = opts.random ?? opts.pct!;
  const rng = new Prng(mode.seed);
  const failures: ExploreFailure[] = [];
  let executions = 0;
  let stepLimited = 0;
  let totalSteps = 0;
  const result = (): ExploreResult => ({
    executions,
    sleepBlocked: 0,
    stepLimited,
    boundPruned: 0,
    infeasible: 0,
    totalSteps,
    complete: false,
    failures,
    labels,
  });
  /** Runs and records one execution. */
  const one = (choose: Chooser): ChosenRun => {
    executions++;
    const r = runChosen(factory, choose, runOpts);
    totalSteps += r.run.steps;
    if (r.run.status === 'step-limit') stepLimited++;
    opts.onExecution?.(r.run, { sleepBlocked: false });
    if (r.labels) countLabels(labels, r.labels);
    if (r.message !== null) {
      failures.push({
        schedule: [...r.run.schedule],
        status: r.run.status,
        message: r.message,
        preemptions: r.preemptions,
      });
    }
    return r;
  };
  const budgetLeft = (): boolean => executions < maxExecutions && totalSteps < maxTotalSteps;
  const stop = (): boolean => opts.stopOnFailure === true && failures.length > 0;

  if (opts.random) {
    for (let i = 0; i < opts.random.runs && budgetLeft() && !stop(); i++) {
      one((en) => en[rng.int(en.length)]!);
    }
    return result();
  }
  const depth = opts.pct!.depth;
  if (!(depth >= 1)) throw new Error(`explore: pct depth must be at least 1, got ${depth}`);
  if (!budgetLeft()) return result();
  const k = Math.max(1, one(continueOrLowest).run.steps);
  for (let i = 0; i < opts.pct!.runs && budgetLeft() && !stop(); i++) {
    let prio: number[] = [];
    const change = new Map<number, number>();
    const points = rng.shuffle(Array.from({ length: k }, (_, j) => j + 1));
    for (let j = 1; j <= Math.min(depth - 1, k); j++) change.set(points[j - 1]!, j);
    const highest = (en: readonly number[]): number =>
      en.reduce((a, b) => (prio[b]! > prio[a]! ? b : a), en[0]!);
    one((en, index, runner) => {
      if (index === 0) {
        const n = runner.threads.length;
        prio = rng.shuffle(Array.from({ length: n }, (_, j) => depth + j));
      }
      const t = highest(en);
      const c = change.get(index + 1);
      if (c === undefined) return t;
      prio[t] = c;
      return highest(en);
    });
  }
  return result();
}

/** A failure as {@link minimize} compares them. */
export interface FailureSignature {
  readonly status: RunStatus;
  readonly message: string;
}

export interface MinimizeOptions {
  /** Executions the search may run (default 100000); past it the result is not exhaustive. */
  readonly maxExecutions?: number;
  /** Cut executions after this many steps (such runs never count as reproducing). */
  readonly maxSteps?: number;
}

export interface MinimizeResult extends FailureSignature {
  /** The whole schedule of the minimised run (replayable as is). */
  readonly schedule: number[];
  readonly preemptions: number;
  readonly steps: number;
  /** Preemptions and steps of the schedule given. */
  readonly original: { readonly preemptions: number; readonly steps: number };
  /** Executions run by the search. */
  readonly executions: number;
  /** True when the search finished within its budget: the result is then minimal. */
  readonly exhaustive: boolean;
}

/**
 * Minimises a failing schedule: finds a schedule that reproduces the same failure
 * (`isSameFailure`, by default same status and same message) with the fewest
 * preemptions, then the fewest steps.
 *
 * 1. Delta attempts, cheap: for each step of the current best schedule, try the schedule
 *    cut just before it (the rest runs under the Runner's non-preemptive rule) and the
 *    schedule with that step left out; keep any reproducing run that is better in
 *    (preemptions, steps), until nothing improves.
 * 2. Exhaustive search with increasing preemption bound b = 0, 1, ... up to the best
 *    count so far: a stateless depth-first enumeration of every complete run with at
 *    most b preemptions (no partial-order reduction, so nothing within the bound is
 *    skipped), trying the non-preemptive choice first, pruning runs that can no longer
 *    beat the best (more preemptions, or as many and at least as many steps). The first
 *    b at which a reproducing run exists is finished and the search stops.
 *
 * A run whose program reports itself decided ({@link ProgramInstance.decided}) ends at
 * that step, so its length is the steps up to the decision: the minimal schedule then
 * reaches the failure as early as any schedule with as few preemptions.
 *
 * Guarantee: the result always reproduces the failure (it is the replayed run) and is
 * never worse than the input in (preemptions, steps). When `exhaustive` is true, no
 * complete run of the program with fewer preemptions reproduces the failure, and none
 * with as many preemptions has fewer steps. Throws when the schedule cannot be followed
 * or does not fail.
 */
export function minimize(
  factory: ProgramFactory,
  failingSchedule: readonly number[] | string,
  isSameFailure: (a: FailureSignature, b: FailureSignature) => boolean = (a, b) =>
    a.status === b.status && a.message === b.message,
  opts: MinimizeOptions = {},
): MinimizeResult {
  const maxExecutions = opts.maxExecutions ?? 100_000;
  const runOpts = opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {};
  const given =
    typeof failingSchedule === 'string' ? parseSchedule(failingSchedule) : failingSchedule;
  const first = runChosen(factory, following(given), runOpts);
  if (first.message === null) {
    throw new Error(`minimize: schedule '${formatSchedule(given)}' does not fail`);
  }
  const target: FailureSignature = { status: first.run.status, message: first.message };
  let best = { run: first.run, message: first.message, preemptions: first.preemptions };
  let executions = 1;
  const better = (p: number, steps: number): boolean =>
    p < best.preemptions || (p === best.preemptions && steps < best.run.steps);
  const offer = (r: ChosenRun): void => {
    if (r.message === null || r.run.status === 'step-limit') return;
    if (!isSameFailure({ status: r.run.status, message: r.message }, target)) return;
    if (better(r.preemptions, r.run.steps)) best = { ...r, message: r.message };
  };
  const attempt = (schedule: readonly number[]): void => {
    if (executions >= maxExecutions) return;
    executions++;
    try {
      offer(runChosen(factory, following(schedule), runOpts));
    } catch (e) {
      if (!(e instanceof BadSchedule)) throw e;
    }
  };

  // 1. Delta attempts.
  for (let improved = true; improved && executions < maxExecutions;) {
    improved = false;
    const cur = best.run.schedule;
    for (let i = cur.length - 1; i >= 0 && !improved; i--) {
      const before = best;
      attempt(cur.slice(0, i));
      attempt([...cur.slice(0, i), ...cur.slice(i + 1)]);
      improved = best !== before;
    }
  }

  // 2. Exhaustive search by increasing bound.
  let exhaustive = true;
  for (let b = 0; b <= best.preemptions && exhaustive; b++) {
    exhaustive = boundedSearch(b);
    if (best.preemptions <= b) break;
  }

  return {
    schedule: [...best.run.schedule],
    status: target.status,
    message: best.message,
    preemptions: best.preemptions,
    steps: best.run.steps,
    original: { preemptions: first.preemptions, steps: first.run.steps },
    executions,
    exhaustive,
  };

  /** Every complete run with at most `bound` preemptions; false when the budget ran out. */
  function boundedSearch(bound: number): boolean {
    const choices: number[] = [];
    /** Untried choices at each step, with what each costs in preemptions. */
    const alts: { tid: number; cost: number }[][] = [];
    const pre: number[] = [0];
    let branch = 0;
    for (;;) {
      if (executions >= maxExecutions) return false;
      executions++;
      // Once the bound reaches the best count, longer runs cannot beat the best.
      const cap =
        bound >= best.preemptions
          ? Math.min(opts.maxSteps ?? Infinity, best.run.steps)
          : (opts.maxSteps ?? Infinity);
      const r = runChosen(
        factory,
        (en, index, runner) => {
          if (index < branch) return choices[index]!;
          // Past the replayed prefix: the non-preemptive choice first, the others later.
          const last = runner.schedule.at(-1);
          const free = last === undefined || !en.includes(last);
          const order = free ? [...en] : [last, ...en.filter((t) => t !== last)];
          const p = pre[index]!;
          const ok = order
            .map((tid) => ({ tid, cost: free || tid === last ? 0 : 1 }))
            .filter((c) => p + c.cost <= bound);
          // ok is never empty: the non-preemptive choice costs nothing.
          choices[index] = ok[0]!.tid;
          alts[index] = ok.slice(1);
          pre[index + 1] = p + ok[0]!.cost;
          return ok[0]!.tid;
        },
        { ...runOpts, maxSteps: cap },
      );
      offer(r);
      // Backtrack to the deepest step with an alternative left.
      let d = choices.length - 1;
      while (d >= 0 && alts[d]!.length === 0) d--;
      if (d < 0) return true;
      const alt = alts[d]!.shift()!;
      choices[d] = alt.tid;
      pre[d + 1] = pre[d]! + alt.cost;
      choices.length = d + 1;
      alts.length = d + 1;
      pre.length = d + 2;
      branch = d + 1;
    }
  }
}
