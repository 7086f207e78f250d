/**
 * Explorer benchmark (issue 5): prints figures, asserts nothing.
 *
 * For a few programs of src/sched/explore.fixtures.ts: executions, time and executions
 * per second of optimal-DPOR and source-DPOR run sequentially, and of optimal-DPOR over
 * worker threads (jobs 1, 2, and the machine's parallelism when larger). The parallel
 * time includes starting the workers.
 *
 * Run: npm run build && node dist/bench/explore.js [--jobs N]
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { explore, type ExploreResult, type ProgramFactory } from '../src/sched/explore.js';
import * as fixtures from '../src/sched/explore.fixtures.js';
import { exploreParallel } from '../src/sched/parallel.js';

const fromTs = import.meta.url.endsWith('.ts');
const FIXTURES = new URL(
  fromTs ? '../src/sched/explore.fixtures.ts' : '../src/sched/explore.fixtures.js',
  import.meta.url,
).href;

const programs: [string, keyof typeof fixtures, unknown[]][] = [
  ['3 threads x 3 critical sections', 'criticalSections', [3, 3]],
  ['3 threads x 4 critical sections', 'criticalSections', [3, 4]],
  ['5 threads x 2 critical sections', 'criticalSections', [5, 2]],
  ['6 philosophers (deadlocks)', 'philosophers', [6, false]],
  ['lost update, 5 threads', 'increment', [false, 5]],
];

const arg = process.argv.indexOf('--jobs');
const maxJobs = arg > 0 ? Number(process.argv[arg + 1]) : availableParallelism();
const jobsList = [...new Set([1, 2, maxJobs])].filter((j) => j >= 1).sort((a, b) => a - b);

function line(label: string, r: ExploreResult, ms: number): void {
  const done = r.executions - r.sleepBlocked;
  console.log(
    `  ${label.padEnd(22)} ${String(r.executions).padStart(8)} executions (${String(done).padStart(7)} traces, ${String(r.sleepBlocked).padStart(5)} blocked, ${String(r.failures.length).padStart(5)} failing)  ${(ms / 1000).toFixed(2).padStart(7)} s  ${Math.round(
      (r.executions * 1000) / ms,
    )
      .toString()
      .padStart(7)} exec/s`,
  );
}

console.log(`explore benchmark: node ${process.version}, ${availableParallelism()} CPUs\n`);
for (const [name, exp, args] of programs) {
  const f = (fixtures[exp] as (...a: unknown[]) => ProgramFactory)(...args);
  console.log(`${name}:`);
  for (const algorithm of ['optimal', 'source'] as const) {
    const t0 = performance.now();
    const r = explore(f, { algorithm });
    line(`sequential ${algorithm}`, r, performance.now() - t0);
  }
  for (const jobs of jobsList) {
    const t0 = performance.now();
    const r = await exploreParallel({ module: FIXTURES, export: exp, args }, { jobs });
    line(`parallel jobs=${jobs}`, r, performance.now() - t0);
  }
  console.log('');
}
