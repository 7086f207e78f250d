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
 */
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
  /** Cut an execution after this many steps (result is then incomplete). Default: unlimited. */
  readonly maxSteps?: number;
  /** Stop at the first failing execution. */
  readonly stopOnFailure?: boolean;
  /** Keep the Runner's trace for each execution (default false; replay to get it). */
  readonly record?: boolean;
  /**
   * Called after every execution with its result (without a trace unless `record`). A
   * sleep-set blocked execution is flagged; its status is not meaningful.
   */
  readonly onExecution?: (run: RunResult, info: { readonly sleepBlocked: boolean }) => void;
}

export interface ExploreFailure {
  readonly schedule: number[];
  readonly status: RunStatus;
  readonly message: string;
}

export interface ExploreResult {
  /** Executions run, including sleep-set blocked and step-limited ones. */
  readonly executions: number;
  /** Executions cut short because every enabled thread was in the sleep set. */
  readonly sleepBlocked: number;
  /** Executions cut at maxSteps. */
  readonly stepLimited: number;
  /** True when every trace was explored (no budget hit, no early stop). */
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
  /** Thread explored from this state in the current execution, -1 at the end. */
  chosen: number;
}

function snapshot(r: Runner, sleep: Set<number>): Node {
  return {
    enabled: r.enabled().map((t) => t.id),
    pending: r.threads.map((t) => (t.done || t.pending === null ? null : info(t.pending))),
    backtrack: new Set(),
    sleep,
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

/** Explores every Mazurkiewicz trace of the program (see the module comment). */
export function explore(factory: ProgramFactory, opts: ExploreOptions = {}): ExploreResult {
  const maxExecutions = opts.maxExecutions ?? Number.POSITIVE_INFINITY;
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const record = opts.record ?? false;
  const nodes: Node[] = [];
  const events: Event[] = [];
  const failures: ExploreFailure[] = [];
  let executions = 0;
  let sleepBlocked = 0;
  let stepLimited = 0;
  let branch = 0;

  for (;;) {
    if (executions >= maxExecutions) {
      return { executions, sleepBlocked, stepLimited, complete: false, failures };
    }
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
        const cands = node.enabled.filter((t) => !node.sleep.has(t));
        if (cands.length === 0) {
          end = 'sleep';
          break;
        }
        const last = d > 0 ? events[d - 1]!.tid : -1;
        node.chosen = cands.includes(last) ? last : cands[0]!;
        node.backtrack.add(node.chosen);
      }
      const tid = node.chosen;
      const step = node.pending[tid]!;
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

    // Race analysis for the new events and the steps of threads left blocked.
    for (let k = branch; k < events.length; k++) analyse(nodes, events, k, events[k]!);
    const last = nodes[events.length]!;
    for (let t = 0; t < last.pending.length; t++) {
      const s = last.pending[t];
      if (s && !last.enabled.includes(t)) {
        analyse(nodes, events, events.length, makeEvent(events, events.length, t, s));
      }
    }

    let run: RunResult;
    if (end === 'final') run = finish(runner);
    else if (end === 'limit') {
      stepLimited++;
      run = runner.result('step-limit');
    } else {
      sleepBlocked++;
      run = runner.result('done', 'sleep-set blocked');
    }
    opts.onExecution?.(run, { sleepBlocked: end === 'sleep' });
    if (end === 'final') {
      const message = failureOf(run, prog.check);
      if (message !== null) {
        failures.push({ schedule: [...run.schedule], status: run.status, message });
        if (opts.stopOnFailure) {
          return { executions, sleepBlocked, stepLimited, complete: false, failures };
        }
      }
    }

    // Backtrack to the deepest state with an unexplored, non-sleeping backtrack entry.
    let next = -1;
    for (let i = events.length; i >= 0 && next < 0; i--) {
      const node = nodes[i]!;
      if (node.chosen >= 0) node.sleep.add(node.chosen);
      for (const p of node.backtrack) {
        if (!node.sleep.has(p)) {
          node.chosen = p;
          next = i;
          break;
        }
      }
    }
    if (next < 0) {
      return { executions, sleepBlocked, stepLimited, complete: stepLimited === 0, failures };
    }
    branch = next;
    nodes.length = next + 1;
    events.length = next;
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
function analyse(nodes: Node[], events: readonly Event[], k: number, ek: Event): void {
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
