/**
 * The worker-thread side of parallel checks (execute.ts): rebuilds a concrete scenario
 * from its {@link ScenarioSource} and gives the explorer's program for it
 * ({@link scenarioProgram}, for exploreParallel) or checks it whole ({@link checkCell},
 * for checkCells). Also usable on the main thread: exploreParallel builds the program
 * there too, to split the exploration.
 */
import { moduleUrl } from '../sched/program-module.js';
import { set_call_path_capture } from '../kernel/kernel/callpath.js';
import type { ProgramFactory } from '../sched/explore.js';
import type { ConfigValue } from '../kernel/kconfig.js';
import {
  checkScenario,
  scenarioFactory,
  type CellOptions,
  type CheckResult,
  type ScenarioSource,
} from './execute.js';
import { concreteScenarios, isScenario, type ConcreteScenario } from './scenario.js';

type Config = Readonly<Record<string, ConfigValue | string>>;

function isConcrete(x: unknown): x is ConcreteScenario {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as ConcreteScenario).id === 'string' &&
    isScenario((x as ConcreteScenario).scenario)
  );
}

/** The concrete scenario `id` that `source` gives (see {@link ScenarioSource}). */
export async function loadScenario(source: ScenarioSource, id: string): Promise<ConcreteScenario> {
  const where = `scenario source ${source.module}#${source.export}`;
  const mod = (await import(moduleUrl(source.module))) as Record<string, unknown>;
  let x: unknown = mod[source.export];
  if (x === undefined) throw new Error(`${where}: the module has no such export`);
  if (source.args !== undefined) {
    if (typeof x !== 'function') throw new Error(`${where}: the export is not a function`);
    x = await (x as (...a: unknown[]) => unknown)(...source.args);
  }
  const found: ConcreteScenario[] = [];
  for (const item of Array.isArray(x) ? x : [x]) {
    if (isScenario(item)) found.push(...concreteScenarios(item));
    else if (isConcrete(item)) found.push(item);
    else throw new Error(`${where}: not a scenario or a list of scenarios`);
  }
  const c = found.find((f) => f.id === id);
  if (!c)
    throw new Error(`${where}: no scenario '${id}' (it has ${found.map((f) => f.id).join(', ')})`);
  return c;
}

/**
 * The explorer's program for scenario `id` of `source` (a ProgramModule export). Its
 * executions capture no call paths (a worker only searches; checkScenarioParallel
 * restores the setting on the main thread).
 */
export async function scenarioProgram(
  source: ScenarioSource,
  id: string,
  version: string,
  config: Config,
): Promise<ProgramFactory> {
  const c = await loadScenario(source, id);
  set_call_path_capture(false);
  return scenarioFactory(c, version, config);
}

/**
 * checkScenario of scenario `id` of `source`, on this thread; `progress` gets the
 * executions so far, every 10 (a WorkerPool.call export).
 */
export async function checkCell(
  source: ScenarioSource,
  id: string,
  version: string,
  opts: CellOptions,
  progress?: (executions: number) => void,
): Promise<CheckResult> {
  const c = await loadScenario(source, id);
  return checkScenario(c, version, {
    ...opts,
    ...(progress ? { onProgress: (n: number) => n % 10 === 0 && progress(n) } : {}),
  });
}
