/**
 * Programs of explore.fixtures.ts with the ProgramInstance hooks added, for the tests of
 * label counting and failure messages (sequential and in worker threads).
 */
import type { ProgramFactory } from './explore.js';
import * as fixtures from './explore.fixtures.js';

/**
 * Fixture `name(...args)` with labels (the run's status, and 'failed' when `check`
 * fails) and a failure message of its own for every status ('<status>!').
 */
export function labelled(name: keyof typeof fixtures, ...args: unknown[]): ProgramFactory {
  const make = fixtures[name] as (...a: unknown[]) => ProgramFactory;
  const factory = make(...args);
  return () => {
    const prog = factory();
    const failed = (status: string): boolean =>
      status !== 'done' || (prog.check ? prog.check() !== null : false);
    return {
      ...prog,
      failure: (run) => (failed(run.status) ? `${run.status}!` : null),
      labels: (run) => [run.status, ...(failed(run.status) ? ['failed'] : [])],
    };
  };
}
