/**
 * A program named by module, so that a worker thread can rebuild it: the worker imports
 * `module` and takes the export `export`; with `args`, the export is called with them
 * (they must survive structured cloning) and returns the {@link ProgramFactory}, or a
 * promise of it; without, the export is the factory itself.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ProgramFactory } from './explore.js';

export interface ProgramModule {
  /** A file URL, an absolute path, or a path relative to the working directory. */
  readonly module: string;
  readonly export: string;
  readonly args?: readonly unknown[];
}

/** The module specifier as a URL string that `import()` accepts in any thread. */
export function moduleUrl(spec: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec)) return spec;
  return pathToFileURL(isAbsolute(spec) ? spec : resolve(spec)).href;
}

/** Imports the module and returns the program factory it names. */
export async function loadProgram(p: ProgramModule): Promise<ProgramFactory> {
  const mod = (await import(moduleUrl(p.module))) as Record<string, unknown>;
  const x = mod[p.export];
  if (typeof x !== 'function') {
    throw new Error(`program module ${p.module}: export '${p.export}' is not a function`);
  }
  if (p.args === undefined) return x as ProgramFactory;
  const f: unknown = await (x as (...a: unknown[]) => unknown)(...p.args);
  if (typeof f !== 'function') {
    throw new Error(
      `program module ${p.module}: ${p.export}(...args) did not return a program factory`,
    );
  }
  return f as ProgramFactory;
}
