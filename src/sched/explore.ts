/**
 * The interleaving explorer: stateless source-DPOR with sleep sets (Abdulla, Aronis,
 * Jonsson, Sagonas, "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1).
 *
 * A program is a factory that builds fresh state and fresh thread generators; every
 * execution rebuilds it and replays a schedule prefix with {@link Runner.step}, since
 * generators cannot be cloned. Every Mazurkiewicz trace (of the dependency relation
 * below) is explored at least once, and usually exactly once. This is source-DPOR, not
 * optimal-DPOR: there are no wakeup trees, so some executions may end sleep-set blocked
 * (counted in {@link ExploreResult.sleepBlocked}) and a trace may occasionally be
 * explored twice.
 *
 * Dependency. Two steps of different threads are dependent when they touch the same
 * object, unless both are reads, both are shared (rwsem reader) acquires or releases,
 * both are releases (two threads never hold the same exclusive lock), or one is a
 * release and the other a blocking acquire (below). Steps of one thread are always
 * ordered.
 *
 * Blocking. A thread whose pending step is not enabled is skipped. Locks follow the
 * classic DPOR treatment (Flanagan and Godefroid, POPL 2005): a release and a *blocking*
 * acquire (a step with an `enabled` predicate) of the same lock are independent, since
 * they are never co-enabled and lock discipline orders every pair of acquires through
 * the acquire-acquire dependency; so the race found is between the two acquires, which
 * is reversible. A non-blocking acquire (trylock) does depend on a release, since its
 * result does. When a race's reversal would start with a thread that is not enabled at
 * the backtrack point (e.g. a lock acquire racing with a plain access made under the
 * lock), every enabled thread there is added to the backtrack set, which is
 * conservative. The analysis assumes an `enabled` predicate depends only on the state of
 * its own step's object, as with the primitives in sync.ts.
 *
 * Preemption bounding (`maxPreemptions`). Executions are pruned as soon as they would
 * exceed the bound, and, as in bounded POR (Coons, Musuvathi, McKinley 2013), each race
 * also adds a conservative backtrack point at the start of the racing thread's block of
 * steps. Guaranteed: every execution run has at most the bound's preemptions; with a
 * bound that cuts nothing (`boundPruned` 0) the exploration is the unbounded one and
 * `complete` holds. Not guaranteed: the combination with sleep sets is not the full
 * BPOR algorithm, so a bounded exploration may skip some traces that do have a schedule
 * within the bound (measured in the tests). Use {@link minimize} for exact minimal
 * preemption counts.
 *
 * Random and PCT modes: see {@link sample}. Counterexamples: see {@link minimize}.
 */
import { Prng } from './prng.js';
import { Runner, type RunResult, type RunStatus } from './runner.js';
import type { Op, Step, StepKind } from './step.js';

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
}

export type ProgramFactory = () => ProgramInstance;

export interface ExploreOptions {
  /** Stop after this many executions (result is then incomplete). Default: unlimited. */
  readonly maxExecutions?: number;
  /**
   * Start no further execution once the steps run by all executions so far (replayed
   * prefixes included) reach this many. An execution is never cut by this budget, so the
   * total can exceed it by at most one execution. Default: unlimited.
   */
  readonly maxTotalSteps?: number;
  /**
   * Preemption bound (DPOR mode only): explore only executions with at most this many
   * preemptions. A preemption is a step by a thread other than the one that ran the
   * previous step while that one is still enabled (switching away from a finished or
   * blocked thread is free). See "Preemption bounding" in the module comment for what is
   * and is not guaranteed.
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
   * execution cut because it was sleep-set blocked or hit the preemption bound is
   * flagged `sleepBlocked`; its status is not meaningful.
   */
  readonly onExecution?: (run: RunResult, info: { readonly sleepBlocked: boolean }) => void;
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
  /** Branches cut by maxPreemptions (an execution ended early, or a backtrack entry skipped). */
  readonly boundPruned: number;
  /** Steps run by all executions together, replayed prefixes included. */
  readonly totalSteps: number;
  /**
   * True when every trace was explored: DPOR mode, no budget hit, no early stop and
   * nothing cut by the preemption bound. Always false in random and PCT modes.
   */
  readonly complete: boolean;
  readonly failures: ExploreFailure[];
}

/** What the dependency relation needs to know about a step. */
interface StepInfo {
  readonly obj: string;
  readonly kind: StepKind;
  readonly shared: boolean;
  readonly blocking: boolean;
}

function info(s: Step): StepInfo {
  return { obj: s.obj, kind: s.kind, shared: s.shared === true, blocking: s.enabled !== undefined };
}

/** Whether two steps of different threads are dependent (see the module comment). */
export function dependent(a: Step, b: Step): boolean {
  return dep(info(a), info(b));
}

function dep(a: StepInfo, b: StepInfo): boolean {
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

interface Event {
  readonly tid: number;
  readonly step: StepInfo;
  /** 1-based position of this event within its thread. */
  readonly local: number;
  /** Vector clock: vc[t] = number of events of thread t that happen before or equal this one. */
  readonly vc: number[];
}

interface Node {
  /** Threads enabled in this state. */
  readonly enabled: number[];
  /** Pending step of each thread in this state (null when none). */
  readonly pending: (StepInfo | null)[];
  readonly backtrack: Set<number>;
  readonly sleep: Set<number>;
  /** Backtrack entries skipped because of the preemption bound (counted once). */
  readonly pruned: Set<number>;
  /** Thread explored from this state in the current execution, -1 at the end. */
  chosen: number;
}

function snapshot(r: Runner, sleep: Set<number>): Node {
  return {
    enabled: r.enabled().map((t) => t.id),
    pending: r.threads.map((t) => (t.done || t.pending === null ? null : info(t.pending))),
    backtrack: new Set(),
    sleep,
    pruned: new Set(),
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

function failureOf(run: RunResult, check: (() => string | null) | undefined): string | null {
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
  return !!a && a.obj === b.obj && a.kind === b.kind && a.shared === b.shared;
}

/**
 * Explores the program. By default: every Mazurkiewicz trace by source-DPOR (see the
 * module comment), optionally under a preemption bound. With `random` or `pct`, runs
 * sampled schedules instead (see {@link sample}); those modes are never complete.
 */
export function explore(factory: ProgramFactory, opts: ExploreOptions = {}): ExploreResult {
  if (opts.random && opts.pct) throw new Error('explore: choose one of random and pct, not both');
  if (opts.random || opts.pct) return sample(factory, opts);
  const maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
  const maxTotalSteps = opts.maxTotalSteps ?? Number.POSITIVE_INFINITY;
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const bound = opts.maxPreemptions ?? Number.POSITIVE_INFINITY;
  const bounded = Number.isFinite(bound);
  const record = opts.record ?? false;
  const nodes: Node[] = [];
  const events: Event[] = [];
  /** pre[d] = preemptions among the first d events. */
  const pre: number[] = [0];
  const failures: ExploreFailure[] = [];
  let executions = 0;
  let sleepBlocked = 0;
  let stepLimited = 0;
  let boundPruned = 0;
  let totalSteps = 0;
  let branch = 0;
  const result = (complete: boolean): ExploreResult => ({
    executions,
    sleepBlocked,
    stepLimited,
    boundPruned,
    totalSteps,
    complete,
    failures,
  });
  /** 1 when running `tid` at depth d is a preemption, else 0. */
  const cost = (d: number, tid: number): number => {
    if (d === 0) return 0;
    const last = events[d - 1]!.tid;
    return last !== tid && nodes[d]!.enabled.includes(last) ? 1 : 0;
  };

  for (;;) {
    if (executions >= maxExecutions || totalSteps >= maxTotalSteps) return result(false);
    executions++;
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
    if (nodes.length === 0) nodes.push(snapshot(runner, new Set()));

    // Extend the execution from the branch point.
    let d = branch;
    let end: 'final' | 'sleep' | 'limit' | 'bound';
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
        const cands = node.enabled.filter((t) => !node.sleep.has(t));
        if (cands.length === 0) {
          end = 'sleep';
          break;
        }
        const within = cands.filter((t) => pre[d]! + cost(d, t) <= bound);
        if (within.length === 0) {
          end = 'bound';
          break;
        }
        const last = d > 0 ? events[d - 1]!.tid : -1;
        node.chosen = within.includes(last) ? last : within[0]!;
        node.backtrack.add(node.chosen);
      }
      const tid = node.chosen;
      const step = node.pending[tid]!;
      pre[d + 1] = pre[d]! + cost(d, tid);
      if (!runner.step(tid)) throw new Error(`explore: thread ${tid} not runnable at step ${d}`);
      events[d] = makeEvent(events, d, tid, step);
      const sleep = new Set<number>();
      for (const q of node.sleep) {
        const s = node.pending[q];
        if (s && !dep(s, step)) sleep.add(q);
      }
      nodes[d + 1] = snapshot(runner, sleep);
      d++;
    }
    totalSteps += runner.clock;

    // Race analysis for the new events and the steps of threads left blocked.
    for (let k = branch; k < events.length; k++) analyse(nodes, events, k, events[k]!, bounded);
    const last = nodes[events.length]!;
    for (let t = 0; t < last.pending.length; t++) {
      const s = last.pending[t];
      if (s && !last.enabled.includes(t)) {
        analyse(nodes, events, events.length, makeEvent(events, events.length, t, s), bounded);
      }
    }

    let run: RunResult;
    if (end === 'final') run = finish(runner);
    else if (end === 'limit') {
      stepLimited++;
      run = runner.result('step-limit');
    } else if (end === 'bound') {
      boundPruned++;
      run = runner.result('done', 'preemption bound reached');
    } else {
      sleepBlocked++;
      run = runner.result('done', 'sleep-set blocked');
    }
    opts.onExecution?.(run, { sleepBlocked: end === 'sleep' || end === 'bound' });
    if (end === 'final') {
      const message = failureOf(run, prog.check);
      if (message !== null) {
        failures.push({
          schedule: [...run.schedule],
          status: run.status,
          message,
          preemptions: pre[events.length]!,
        });
        if (opts.stopOnFailure) return result(false);
      }
    }

    // Backtrack to the deepest state with an unexplored, non-sleeping backtrack entry
    // that the preemption bound allows.
    let next = -1;
    for (let i = events.length; i >= 0 && next < 0; i--) {
      const node = nodes[i]!;
      if (node.chosen >= 0) node.sleep.add(node.chosen);
      for (const p of node.backtrack) {
        if (node.sleep.has(p)) continue;
        if (pre[i]! + cost(i, p) > bound) {
          if (!node.pruned.has(p)) {
            node.pruned.add(p);
            boundPruned++;
          }
          continue;
        }
        node.chosen = p;
        next = i;
        break;
      }
    }
    if (next < 0) return result(stepLimited === 0 && boundPruned === 0);
    branch = next;
    nodes.length = next + 1;
    events.length = next;
    pre.length = next + 1;
  }
}

function makeEvent(events: readonly Event[], k: number, tid: number, step: StepInfo): Event {
  let vc: number[] = [];
  let local = 1;
  for (let j = k - 1; j >= 0; j--) {
    if (events[j]!.tid === tid) {
      vc = [...events[j]!.vc];
      local = events[j]!.local + 1;
      break;
    }
  }
  for (let j = 0; j < k; j++) {
    const e = events[j]!;
    if (e.tid !== tid && dep(e.step, step)) {
      for (let t = 0; t < e.vc.length; t++) vc[t] = Math.max(vc[t] ?? 0, e.vc[t] ?? 0);
    }
  }
  for (let t = 0; t < vc.length; t++) vc[t] ??= 0;
  vc[tid] = local;
  return { tid, step, local, vc };
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
  bounded: boolean,
): void {
  for (let i = 0; i < k; i++) {
    const ei = events[i]!;
    if (ei.tid === ek.tid || !dep(ei.step, ek.step)) continue;
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
    if (bounded) {
      // Bounded POR (Coons, Musuvathi, McKinley 2013): reversing the race at i may cost a
      // preemption the bound forbids, so also try the reversal at the start of the block
      // of steps of ei's thread that contains i, where switching threads may be free.
      let j = i;
      while (j > 0 && events[j - 1]!.tid === ei.tid) j--;
      if (j < i) {
        const at = nodes[j]!;
        const cj = initials.filter((t) => at.enabled.includes(t));
        if (!initials.some((t) => at.backtrack.has(t))) {
          if (cj.length > 0) at.backtrack.add(cj.find((t) => !at.sleep.has(t)) ?? cj[0]!);
          else for (const t of at.enabled) at.backtrack.add(t);
        }
      }
    }
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
}

/** One execution of a fresh instance, each step's thread picked by `choose`. */
function runChosen(
  factory: ProgramFactory,
  choose: Chooser,
  opts: { readonly record?: boolean; readonly maxSteps?: number } = {},
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
  }
  const run = finish(runner);
  return { run, message: failureOf(run, prog.check), preemptions };
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
  };
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
    totalSteps,
    complete: false,
    failures,
  });
  /** Runs and records one execution. */
  const one = (choose: Chooser): ChosenRun => {
    executions++;
    const r = runChosen(factory, choose, runOpts);
    totalSteps += r.run.steps;
    if (r.run.status === 'step-limit') stepLimited++;
    opts.onExecution?.(r.run, { sleepBlocked: false });
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
