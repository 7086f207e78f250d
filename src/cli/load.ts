/**
 * Finding the scenarios a command names: a built-in one ('driver-mmap',
 * 'driver-mmap/unsafe') or a user's file ('my.ts', 'my.ts#name', 'my.ts#name/variant').
 * A file is a .ts/.mts/.cts or .js/.mjs/.cjs module whose default export, or named export
 * `scenario` or `scenarios` (an array), is a scenario made by defineScenario (a plain
 * object of the same shape is checked by defineScenario here). TypeScript files load
 * through tsx, registered in this process so that the file shares pfnsim's modules.
 */
import { existsSync, statSync } from 'node:fs';
import type { ScenarioSource } from '../scenario/execute.js';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILTIN_SCENARIOS } from '../../scenarios/index.js';
import {
  concreteScenarios,
  defineScenario,
  isScenario,
  ScenarioError,
  type AnyScenario,
  type ConcreteScenario,
  type ScenarioSpec,
} from '../scenario/scenario.js';

/** Imports a module by absolute path. */
export type ModuleImporter = (absPath: string) => Promise<unknown>;

/** Bad input naming a scenario: the CLI prints the message on one line and exits 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

let tsxRegistered = false;

/** The default importer: registers tsx once (for TypeScript files), then import(). */
export const defaultImporter: ModuleImporter = async (absPath) => {
  if (!tsxRegistered && /\.[cm]?ts$/.test(absPath)) {
    const { register } = await import('tsx/esm/api');
    register();
    tsxRegistered = true;
  }
  return import(pathToFileURL(absPath).href);
};

const FILE = /^(.*\.(?:[cm]?ts|[cm]?js))(?:#(.*))?$/;

/** Whether a scenario reference names a file. */
export function isFileRef(ref: string): boolean {
  return FILE.test(ref);
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!.trim();
}

/** The scenarios a module exports (default, `scenario`, `scenarios`). */
function exportedScenarios(mod: Record<string, unknown>, file: string): AnyScenario[] {
  const out: AnyScenario[] = [];
  const add = (x: unknown, what: string): void => {
    if (isScenario(x)) out.push(x);
    else if (typeof x === 'object' && x !== null && 'threads' in x) {
      try {
        out.push(defineScenario(x as ScenarioSpec<unknown>));
      } catch (e) {
        throw new InputError(`scenario file '${file}': ${firstLine(e)}`);
      }
    } else throw new InputError(`scenario file '${file}': export '${what}' is not a scenario`);
  };
  if (mod.default !== undefined) {
    if (Array.isArray(mod.default)) mod.default.forEach((x, i) => add(x, `default[${i}]`));
    else add(mod.default, 'default');
  }
  if (mod.scenario !== undefined) add(mod.scenario, 'scenario');
  if (mod.scenarios !== undefined) {
    if (!Array.isArray(mod.scenarios))
      throw new InputError(`scenario file '${file}': export 'scenarios' must be an array`);
    mod.scenarios.forEach((x, i) => add(x, `scenarios[${i}]`));
  }
  const seen = new Set<AnyScenario>();
  const unique = out.filter((s) => !seen.has(s) && (seen.add(s), true));
  if (unique.length === 0)
    throw new InputError(
      `scenario file '${file}' exports no scenario: export default defineScenario({...}), or export 'scenario' or 'scenarios'`,
    );
  return unique;
}

/** The concrete scenarios of a list of scenarios, selected by `name` or `name/variant`. */
function select(
  all: readonly AnyScenario[],
  want: string | undefined,
  refOf: (s: AnyScenario) => string,
  where: string,
): ConcreteScenario[] {
  const concrete = all.flatMap((s) => concreteScenarios(s, refOf(s)));
  if (want === undefined || want === '') return concrete;
  const exact = concrete.filter((c) => c.id === want);
  if (exact.length > 0) return exact;
  const story = concrete.filter((c) => c.scenario.name === want);
  if (story.length > 0) return story;
  throw new InputError(
    `unknown scenario '${want}'${where}: ${where ? 'it has' : "'pfnsim list' shows"} ${concrete.map((c) => c.id).join(', ')}`,
  );
}

/** The built-in scenarios, all of them or those a name selects. */
export function builtinScenarios(want?: string): ConcreteScenario[] {
  return select(BUILTIN_SCENARIOS, want, (s) => s.name, '');
}

/**
 * The concrete scenarios a reference names (a built-in name or a file). Throws
 * InputError with a one-line message when it names nothing or the file is bad.
 */
export async function resolveScenarios(
  ref: string,
  importer: ModuleImporter = defaultImporter,
): Promise<ConcreteScenario[]> {
  const m = FILE.exec(ref);
  if (!m) {
    try {
      return builtinScenarios(ref);
    } catch (e) {
      if (e instanceof InputError)
        throw new InputError(
          `unknown scenario '${ref}': 'pfnsim list' shows the built-in ones; a scenario file ends in .ts or .js`,
        );
      throw e;
    }
  }
  const file = m[1]!;
  const abs = resolve(file);
  if (!existsSync(abs) || !statSync(abs).isFile())
    throw new InputError(`scenario file '${file}' not found`);
  let mod: unknown;
  try {
    mod = await importer(abs);
  } catch (e) {
    if (e instanceof ScenarioError) throw new InputError(`scenario file '${file}': ${e.message}`);
    throw new InputError(`cannot load scenario file '${file}': ${firstLine(e)}`);
  }
  const scenarios = exportedScenarios(mod as Record<string, unknown>, file);
  // How replay commands name them: the file alone when it holds one scenario without
  // variants, else file#name (variants add /variant).
  const alone = scenarios.length === 1 && !scenarios[0]!.variants;
  return select(scenarios, m[2], (s) => (alone ? file : `${file}#${s.name}`), ` in '${file}'`);
}

/**
 * How a worker thread finds the scenarios a reference names (see ScenarioSource in
 * src/scenario/execute.ts): this module's {@link builtinScenarios} or
 * {@link resolveScenarios} of the file, with the default importer.
 */
export function scenarioSource(ref: string): ScenarioSource {
  const m = FILE.exec(ref);
  return m
    ? { module: import.meta.url, export: 'resolveScenarios', args: [resolve(m[1]!)] }
    : { module: import.meta.url, export: 'builtinScenarios', args: [] };
}
