/**
 * The scenario API: a scenario is a machine (RAM, CMA, MMIO windows, devices), a
 * sequential setup, named threads (generators run under the explorer), final checks and
 * the verdict expected on each kernel version.
 *
 * ```ts
 * import { defineScenario } from 'pfnsim';
 * export default defineScenario({
 *   name: 'my-race',
 *   description: 'a lookup racing a zap',
 *   machine: { mmio: [{ base: 0xfe000000, size: 0x10000, name: 'BAR0' }] },
 *   setup(ctx) { const p = ctx.spawnProcess('app'); return { p, addr: p.mmap(...) }; },
 *   threads: {
 *     lookup: function* (ctx, s) { ... },
 *     zap: { kind: 'driver', run: function* (ctx, s) { ... } },
 *   },
 *   check: (ctx, s) => (stillMapped(s) ? 'the device still maps the frame' : null),
 *   expect: { '5.7-6.11': 'stale-pfn', default: 'SAFE' },
 * });
 * ```
 *
 * A scenario with `variants` (e.g. `unsafe` and `fixed`) stands for one concrete scenario
 * per variant, named `<name>/<variant>`; setup, threads and check see the variant as
 * `ctx.variant` and its parameters as `ctx.params`.
 *
 * Verdict of one execution, the first that applies (the final check of a completed run
 * runs before any of them is decided, so that what its kernel calls report counts):
 * 1. the code of the first pfnsan report ('stale-pfn', 'use-after-free', ...);
 * 2. 'BUG': a thread died with an oops (BUG(), a kernel page fault: KernelBug);
 *    'error: ...': a thread threw anything else (a fault in the scenario or the model);
 * 3. 'deadlock': every live thread is blocked;
 * 4. 'bad-page': the kernel reported a bad page or a bad page map (TAINT_BAD_PAGE);
 * 5. 'check: <message>': the scenario's final check failed;
 * 6. 'WARN': a WARNING was printed, but only when the scenario says `warn: 'violation'`.
 *    By default a WARNING is reported (counted, and visible in the kernel log) and is
 *    not a violation: many of the kernel's rules make a WARN the expected behaviour
 *    (unsafe_follow_pfn's WARN_ONCE, remap_pfn_range's alignment WARN), so a scenario
 *    that wants it to fail says so;
 * otherwise 'SAFE'.
 */
import type { Op } from '../sched/index.js';
import type { Kernel } from '../kernel/kernel/kernel.js';
import type { task_struct } from '../kernel/include/linux/sched.js';
import type { ConfigValue, KernelConfig } from '../kernel/kconfig.js';
import { SUPPORTED_VERSIONS, parseVersion } from '../kernel/version.js';
import type { MachineSpec } from './machine.js';
import type { Process, SpawnOptions } from './process.js';

/** What a thread stands for (shown in traces). */
export type ThreadKind = 'cpu' | 'driver' | 'dma' | 'kthread';

/** A machine without its version and config (those come from the run). */
export type ScenarioMachine = Omit<MachineSpec, 'version' | 'config'>;

/** What setup, threads and checks are given. */
export interface ScenarioContext {
  /** The kernel instance of this execution. */
  readonly k: Kernel;
  /** The kernel version of the run, e.g. '6.12'. */
  readonly version: string;
  /** The resolved kernel configuration. */
  readonly config: KernelConfig;
  /** The variant being run (undefined for a scenario without variants). */
  readonly variant: string | undefined;
  /** The variant's parameters ({} when none). */
  readonly params: Readonly<Record<string, unknown>>;
  /** Whether the run's kernel is version major.minor or later. */
  since(major: number, minor: number): boolean;
  /** A new user process (see spawnProcess); usable in setup. */
  spawnProcess(comm: string, opts?: SpawnOptions): Process;
  /** Runs an operation to completion now, sequentially (setup and checks). */
  run<T>(op: Op<T>, as?: string): T;
  /** Adds a note to the trace, stamped with the current thread and step. */
  note(text: string): void;
}

export type ThreadFn<S> = (ctx: ScenarioContext, state: S) => Op<unknown>;

export interface ThreadDef<S> {
  readonly kind?: ThreadKind;
  /**
   * The task the thread runs as (its `current`): a process handle or a task. Default: a
   * kernel thread named after the thread.
   */
  readonly as?: (ctx: ScenarioContext, state: S) => Process | task_struct;
  readonly run: ThreadFn<S>;
}

/** Expected verdict: 'SAFE', a code ('stale-pfn', 'BUG', 'check', ...), any of several,
 *  or 'n/a' when the scenario does not apply to that version (it is then not run). */
export type Expectation = string | readonly string[];

/**
 * Expectations by version: keys are a version ('6.12'), an inclusive range
 * ('5.7-5.12'), a version and later ('6.12+'), or 'default'. Every supported version
 * must be covered exactly once (a version key beats a range; ranges must not overlap).
 */
export type ExpectMap = Readonly<Record<string, Expectation>>;

export interface VariantSpec {
  readonly description?: string;
  readonly config?: Readonly<Record<string, ConfigValue | string>>;
  readonly params?: Readonly<Record<string, unknown>>;
  /** Overrides the scenario's expectations for this variant. */
  readonly expect?: ExpectMap;
}

export interface ScenarioSpec<S = unknown> {
  /** Lowercase words with dashes, e.g. 'follow-pfnmap-window'. */
  readonly name: string;
  readonly description: string;
  /** The story the scenario belongs to (e.g. unsafe and fixed variants of one design). */
  readonly story?: string;
  readonly machine?: ScenarioMachine;
  readonly config?: Readonly<Record<string, ConfigValue | string>>;
  /** Runs once per execution, sequentially, before the threads; returns their state. */
  readonly setup?: (ctx: ScenarioContext) => S;
  readonly threads: Readonly<Record<string, ThreadFn<S> | ThreadDef<S>>>;
  /** Final check after a completed run: a failure message, or null. */
  readonly check?: (ctx: ScenarioContext, state: S) => string | null;
  readonly expect?: ExpectMap;
  readonly variants?: Readonly<Record<string, VariantSpec>>;
  /** Whether a WARNING in the kernel log is a violation (default 'report': it is not). */
  readonly warn?: 'report' | 'violation';
}

/** A defined scenario (as returned by defineScenario). */
export interface Scenario<S = unknown> extends ScenarioSpec<S> {
  readonly kind: 'pfnsim-scenario';
}

/** A scenario of any state type (state is private to its own setup, threads and check). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyScenario = Scenario<any>;

/** One runnable scenario: a scenario, or one variant of it. */
export interface ConcreteScenario {
  /** `name` or `name/variant`. */
  readonly id: string;
  readonly scenario: AnyScenario;
  readonly variant: string | undefined;
  readonly description: string;
  readonly config: Readonly<Record<string, ConfigValue | string>>;
  readonly params: Readonly<Record<string, unknown>>;
  readonly expect: ExpectMap;
  /** How the CLI names it in a replay command (set by the loader; default: the id). */
  readonly ref: string;
}

/** Bad scenario definitions: the message names the scenario and the problem. */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Checks and returns a scenario definition; throws ScenarioError naming the problem. */
export function defineScenario<S>(spec: ScenarioSpec<S>): Scenario<S> {
  const where = `scenario '${String(spec?.name)}'`;
  if (typeof spec !== 'object' || spec === null) throw new ScenarioError('a scenario is an object');
  if (typeof spec.name !== 'string' || !NAME.test(spec.name))
    throw new ScenarioError(`${where}: name must be lowercase words with dashes (e.g. 'my-race')`);
  if (typeof spec.description !== 'string' || spec.description === '')
    throw new ScenarioError(`${where}: description is required`);
  if (typeof spec.threads !== 'object' || spec.threads === null)
    throw new ScenarioError(`${where}: threads must map thread names to generator functions`);
  const names = Object.keys(spec.threads);
  if (names.length === 0) throw new ScenarioError(`${where}: at least one thread is required`);
  for (const n of names) {
    const t = spec.threads[n]!;
    const run = typeof t === 'function' ? t : t?.run;
    if (typeof run !== 'function')
      throw new ScenarioError(`${where}: thread '${n}' must be a generator function or { run }`);
    const kind = typeof t === 'function' ? undefined : t.kind;
    if (kind !== undefined && !['cpu', 'driver', 'dma', 'kthread'].includes(kind))
      throw new ScenarioError(
        `${where}: thread '${n}' has kind '${kind}'; use cpu, driver, dma or kthread`,
      );
  }
  if (spec.warn !== undefined && spec.warn !== 'report' && spec.warn !== 'violation')
    throw new ScenarioError(`${where}: warn must be 'report' or 'violation'`);
  const variants = spec.variants ? Object.keys(spec.variants) : [];
  if (spec.variants && variants.length === 0)
    throw new ScenarioError(`${where}: variants is empty; leave it out`);
  for (const v of variants) {
    if (!NAME.test(v))
      throw new ScenarioError(`${where}: variant name '${v}' must be lowercase words with dashes`);
  }
  if (variants.length === 0) {
    if (!spec.expect) throw new ScenarioError(`${where}: expect is required`);
    resolveExpectations(spec.expect, where);
  } else {
    for (const v of variants) {
      const e = spec.variants![v]!.expect ?? spec.expect;
      if (!e) throw new ScenarioError(`${where}: variant '${v}' has no expect`);
      resolveExpectations(e, `${where} variant '${v}'`);
    }
  }
  return { ...spec, kind: 'pfnsim-scenario' };
}

/** Whether x is a scenario made by defineScenario. */
export function isScenario(x: unknown): x is AnyScenario {
  return typeof x === 'object' && x !== null && (x as Scenario).kind === 'pfnsim-scenario';
}

/** The concrete scenarios a scenario stands for: itself, or one per variant. */
export function concreteScenarios(s: AnyScenario, ref?: string): ConcreteScenario[] {
  const base = s;
  if (!base.variants) {
    return [
      {
        id: s.name,
        scenario: base,
        variant: undefined,
        description: s.description,
        config: s.config ?? {},
        params: {},
        expect: s.expect!,
        ref: ref ?? s.name,
      },
    ];
  }
  return Object.entries(base.variants).map(([v, spec]) => ({
    id: `${s.name}/${v}`,
    scenario: base,
    variant: v,
    description: spec.description ? `${s.description} (${spec.description})` : s.description,
    config: { ...(s.config ?? {}), ...(spec.config ?? {}) },
    params: spec.params ?? {},
    expect: spec.expect ?? s.expect!,
    ref: ref ? `${ref}/${v}` : `${s.name}/${v}`,
  }));
}

const VERSIONS: readonly string[] = SUPPORTED_VERSIONS;

function versionIndex(v: string, where: string, key: string): number {
  const i = VERSIONS.indexOf(v);
  if (i < 0)
    throw new ScenarioError(
      `${where}: expect key '${key}' names version '${v}', which the model does not cover (${VERSIONS.join(', ')})`,
    );
  return i;
}

/** The expectation for each supported version; throws ScenarioError on a bad map. */
export function resolveExpectations(
  e: ExpectMap,
  where = 'scenario',
): Map<string, readonly string[]> {
  const exact = new Map<string, readonly string[]>();
  const ranged = new Map<string, { key: string; value: readonly string[] }>();
  let def: readonly string[] | undefined;
  for (const [key, raw] of Object.entries(e)) {
    const value = typeof raw === 'string' ? [raw] : raw;
    if (!Array.isArray(value) || value.length === 0 || value.some((x) => typeof x !== 'string'))
      throw new ScenarioError(`${where}: expect['${key}'] must be a verdict or a list of them`);
    if (key === 'default') {
      def = value;
      continue;
    }
    let lo: number;
    let hi: number;
    const range = /^(\d+\.\d+)-(\d+\.\d+)$/.exec(key);
    const plus = /^(\d+\.\d+)\+$/.exec(key);
    if (range) {
      lo = versionIndex(range[1]!, where, key);
      hi = versionIndex(range[2]!, where, key);
      if (lo > hi) throw new ScenarioError(`${where}: expect range '${key}' is backwards`);
    } else if (plus) {
      lo = versionIndex(plus[1]!, where, key);
      hi = VERSIONS.length - 1;
    } else if (/^\d+\.\d+$/.test(key)) {
      exact.set(VERSIONS[versionIndex(key, where, key)]!, value);
      continue;
    } else {
      throw new ScenarioError(
        `${where}: expect key '${key}' is not a version, a range like '5.7-5.12', 'V+' or 'default'`,
      );
    }
    for (let i = lo; i <= hi; i++) {
      const v = VERSIONS[i]!;
      const prev = ranged.get(v);
      if (prev)
        throw new ScenarioError(`${where}: expect keys '${prev.key}' and '${key}' overlap at ${v}`);
      ranged.set(v, { key, value });
    }
  }
  const out = new Map<string, readonly string[]>();
  for (const v of VERSIONS) {
    const value = exact.get(v) ?? ranged.get(v)?.value ?? def;
    if (!value)
      throw new ScenarioError(`${where}: expect has nothing for ${v}; add it or a 'default'`);
    out.set(v, value);
  }
  return out;
}

/** The expectation for a version ('6.12' or '6.12.3'), e.g. ['SAFE'] or ['n/a']. */
export function expectedFor(s: ConcreteScenario, version: string): readonly string[] {
  const v = parseVersion(version);
  const series = `${Math.floor(v.code / 65536)}.${Math.floor(v.code / 256) % 256}`;
  return resolveExpectations(s.expect, `scenario '${s.id}'`).get(series)!;
}

/** Whether a verdict meets an expectation ('check' matches 'check: ...'). */
export function verdictMatches(verdict: string, expected: readonly string[]): boolean {
  return expected.some((e) => verdict === e || verdict.startsWith(`${e}:`));
}

/** A verdict's short form for tables: 'check: msg' -> 'check'. */
export function verdictCode(verdict: string): string {
  const i = verdict.indexOf(':');
  return i < 0 ? verdict : verdict.slice(0, i);
}
