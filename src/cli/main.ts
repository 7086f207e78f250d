#!/usr/bin/env node
/**
 * The pfnsim command line. The only module that reads argv or the environment.
 *
 * Exit status: 0 when every verdict is the expected one, 1 when a `check` verdict
 * differs from its expectation, 2 on bad input (one line on stderr naming the problem).
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { runDemo, DEMO_NAME } from '../scenario/examples/driver-mmap.js';
import { renderTrace } from '../report/text.js';
import { renderHtml } from '../report/html.js';
import type { Trace } from '../report/format.js';
import { SUPPORTED_VERSIONS, parseVersion } from '../kernel/version.js';
import { CONFIG_OPTIONS } from '../kernel/kconfig.js';
import { parseSchedule as parseScheduleString } from '../sched/index.js';
import { resolveExpectations, verdictCode, type ConcreteScenario } from '../scenario/scenario.js';
import {
  checkCells,
  checkScenario,
  checkScenarioParallel,
  runScenario,
  type CheckOptions,
  type CheckResult,
} from '../scenario/execute.js';
import { WorkerPool } from '../sched/pool.js';
import {
  InputError,
  builtinScenarios,
  defaultImporter,
  resolveScenarios,
  scenarioSource,
  type ModuleImporter,
} from './load.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Parses repeated K=V options into a record; throws a one-line error on a bad one. */
export function parseConfig(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const it of items) {
    const m = /^([A-Z0-9_]+)=(.+)$/.exec(it);
    if (!m)
      throw new InputError(
        `--config takes KEY=VALUE (e.g. CONFIG_STRICT_FOLLOW_PFN=y), not '${it}'`,
      );
    out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * A schedule: the explorer's form ("0*3.1.0", thread ids separated by dots, `tid*n` for
 * a run), or one digit per step ("00010").
 */
export function parseScheduleArg(s: string | undefined): number[] {
  if (s === undefined) return [];
  if (/^[0-9]{2,}$/.test(s)) return [...s].map(Number);
  try {
    return parseScheduleString(s);
  } catch {
    throw new InputError(
      `--schedule takes thread numbers, e.g. 0*3.1.0 (as 'check' prints) or 00010 (one digit per step), not '${s}'`,
    );
  }
}

function intArg(flag: string, min: number): (v: string) => number {
  return (v) => {
    if (!/^\d+$/.test(v) || Number(v) < min)
      throw new InputError(
        `${flag} takes a whole number${min > 0 ? ` of at least ${min}` : ''}, not '${v}'`,
      );
    return Number(v);
  };
}

function versionArg(v: string): string {
  parseVersion(v); // throws VersionError naming the supported versions
  return v;
}

const NEWEST = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;

/** Per-version expectations in ranges: "5.7-6.11: SAFE; 6.12+: stale-pfn". */
export function summarizeExpect(c: ConcreteScenario): string {
  const m = resolveExpectations(c.expect, c.id);
  const vs: readonly string[] = SUPPORTED_VERSIONS;
  const runs: { from: string; to: string; value: string }[] = [];
  for (const v of vs) {
    const value = m.get(v)!.join(' or ');
    const last = runs.at(-1);
    if (last && last.value === value) last.to = v;
    else runs.push({ from: v, to: v, value });
  }
  if (runs.length === 1) return runs[0]!.value;
  return runs
    .map((r) => {
      const range = r.from === r.to ? r.from : r.to === NEWEST ? `${r.from}+` : `${r.from}-${r.to}`;
      return `${range}: ${r.value}`;
    })
    .join('; ');
}

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Whether stderr is a terminal (progress is shown only then). */
  readonly errIsTTY?: boolean;
  /** How scenario files are imported (default: tsx for TypeScript, then import()). */
  readonly importModule?: ModuleImporter;
}

interface CheckFlags {
  all?: boolean;
  kernel?: string;
  config: string[];
  maxPreemptions?: number;
  random?: number;
  seed?: number;
  pct?: number;
  runs?: number;
  jobs?: number;
  maxExecutions?: number;
  exploreAll?: boolean;
  json?: boolean;
  html?: string;
}

/** Writes the trace viewer for `trace` to `path` (one self-contained HTML file). */
function writeHtml(path: string, trace: Trace): void {
  try {
    writeFileSync(path, renderHtml(trace));
  } catch (e) {
    throw new InputError(`--html: cannot write '${path}': ${(e as Error).message}`);
  }
}

function fmtMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function renderCheck(r: CheckResult): string {
  const lines: string[] = [];
  const mark = r.matches ? 'as expected' : `DIFFERS: expected ${r.expected.join(' or ')}`;
  lines.push(`${r.scenario} on ${r.version}: ${r.verdict} (${mark})`);
  if (r.mode === 'skipped') {
    lines.push('  not run: the scenario does not apply to this version');
    return lines.join('\n');
  }
  const how =
    r.mode === 'dpor'
      ? r.complete
        ? 'all interleavings explored'
        : r.counterexample
          ? 'stopped at the first violation'
          : 'incomplete (a budget or the preemption bound cut the exploration)'
      : `${r.mode} sampling`;
  lines.push(`  executions: ${r.executions} (${how}), time ${fmtMs(r.timeMs)}`);
  const counts = Object.entries(r.verdicts)
    .map(([v, n]) => `${v} ${n}`)
    .join(', ');
  if (counts) lines.push(`  verdicts: ${counts}`);
  if (r.warnings > 0)
    lines.push(`  warnings: ${plural(r.warnings, 'execution')} printed a WARNING`);
  const c = r.counterexample;
  if (c) {
    lines.push(
      `  counterexample: ${plural(c.steps, 'step')}, ${plural(c.preemptions, 'preemption')}` +
        ` (found with ${c.found.steps} and ${c.found.preemptions}${c.minimal ? '; minimal' : '; minimisation budget ran out'})`,
    );
    lines.push(`  schedule: ${c.schedule}`);
    for (const rep of c.trace?.reports ?? []) lines.push(`  report: ${rep.title}`);
    if (c.trace)
      for (const n of c.trace.notes)
        lines.push(`    | ${n.step < 0 ? 'start' : `step ${n.step}`} ${n.thread}: ${n.text}`);
    lines.push(`  replay: ${c.replay}`);
  }
  return lines.join('\n');
}

/** The scenario x version matrix: SAFE or the violation code; '!' where it differs. */
function renderMatrix(results: readonly CheckResult[], versions: readonly string[]): string {
  const ids = [...new Set(results.map((r) => r.scenario))];
  const cell = (r: CheckResult | undefined): string =>
    !r ? '' : r.verdict === 'n/a' ? '-' : `${verdictCode(r.verdict)}${r.matches ? '' : '!'}`;
  const width = Math.max(8, ...ids.map((i) => i.length));
  const cols = versions.map((v) =>
    Math.max(v.length, ...results.filter((r) => r.version === v).map((r) => cell(r).length)),
  );
  const lines = [
    ['scenario'.padEnd(width), ...versions.map((v, i) => v.padEnd(cols[i]!))].join('  ').trimEnd(),
  ];
  for (const id of ids) {
    const row = versions.map((v, i) =>
      cell(results.find((r) => r.scenario === id && r.version === v)).padEnd(cols[i]!),
    );
    lines.push([id.padEnd(width), ...row].join('  ').trimEnd());
  }
  const differ = results.filter((r) => !r.matches);
  lines.push('');
  lines.push(
    `${plural(ids.length, 'scenario')} x ${plural(versions.length, 'version')}: ${differ.length} of ${results.length} verdicts differ from the expected ones${differ.length ? " (marked '!')" : ''}; '-': does not apply`,
  );
  for (const r of differ) {
    lines.push('');
    lines.push(renderCheck(r));
  }
  return lines.join('\n');
}

function checkOptions(f: CheckFlags, io: Io, label: () => string): CheckOptions {
  if (f.random !== undefined && f.pct !== undefined)
    throw new InputError('choose one of --random and --pct, not both');
  if (f.seed !== undefined && f.random === undefined && f.pct === undefined)
    throw new InputError('--seed needs --random N or --pct D');
  if (f.runs !== undefined && f.pct === undefined)
    throw new InputError('--runs sets the number of PCT runs; it needs --pct D');
  if (f.maxPreemptions !== undefined && (f.random !== undefined || f.pct !== undefined))
    throw new InputError(
      '--max-preemptions bounds the exhaustive exploration, not --random or --pct',
    );
  if ((f.jobs ?? 1) > 1 && !f.all && (f.random !== undefined || f.pct !== undefined))
    throw new InputError(
      '--jobs splits the exhaustive exploration; --random and --pct run on one job (drop --jobs, or use it with --all)',
    );
  const seed = f.seed ?? 1;
  let shown = 0;
  return {
    config: parseConfig(f.config),
    ...(f.maxPreemptions !== undefined ? { maxPreemptions: f.maxPreemptions } : {}),
    ...(f.random !== undefined ? { random: { runs: f.random, seed } } : {}),
    ...(f.pct !== undefined ? { pct: { depth: f.pct, runs: f.runs ?? 1000, seed } } : {}),
    ...(f.maxExecutions !== undefined ? { maxExecutions: f.maxExecutions } : {}),
    ...(f.exploreAll ? { all: true } : {}),
    ...(f.jobs !== undefined ? { jobs: f.jobs } : {}),
    ...(io.errIsTTY
      ? {
          onProgress: (n: number, estimate?: number) => {
            if (n - shown >= 100) {
              shown = n;
              const of = estimate !== undefined && estimate >= n ? ` of about ${estimate}` : '';
              io.err(`\r\x1b[K${label()}: ${n}${of} executions`);
            }
          },
        }
      : {}),
  };
}

export function buildProgram(
  io: Io,
  out: (s: string) => void,
): { program: Command; exit: { code: number } } {
  const exit = { code: 0 };
  const importer = io.importModule ?? defaultImporter;
  const program = new Command();
  program
    .name('pfnsim')
    .description('An executable model of Linux PFN-mapped memory')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: out, outputError: () => {} });

  program
    .command('list')
    .description(
      'list the built-in scenarios (or those of a scenario file) with their stories, variants and expected verdicts',
    )
    .argument('[file]', 'a scenario file (.ts or .js)')
    .action(async (file?: string) => {
      const cs = file ? await resolveScenarios(file, importer) : builtinScenarios();
      const byScenario = new Map<string, ConcreteScenario[]>();
      for (const c of cs) {
        const l = byScenario.get(c.scenario.name) ?? [];
        l.push(c);
        byScenario.set(c.scenario.name, l);
      }
      for (const [name, list] of byScenario) {
        const s = list[0]!.scenario;
        out(`${name}${s.story && s.story !== name ? ` (story: ${s.story})` : ''}\n`);
        out(`  ${s.description}\n`);
        const threads = Object.entries(s.threads)
          .map(([n, t]) => `${n}${typeof t === 'function' || !t.kind ? '' : `(${t.kind})`}`)
          .join(', ');
        out(`  threads: ${threads}\n`);
        for (const c of list) {
          const vdesc = c.variant ? s.variants![c.variant]!.description : undefined;
          out(`  ${c.id}${vdesc ? `: ${vdesc}` : ''}\n`);
          out(`    expect: ${summarizeExpect(c)}\n`);
        }
      }
    });

  program
    .command('run')
    .description('run one execution of a scenario and print its trace, kernel log and reports')
    .argument(
      '<scenario>',
      "a built-in scenario ('pfnsim list') or a file (my.ts, my.ts#name/variant)",
    )
    .option('-k, --kernel <version>', `kernel version (${SUPPORTED_VERSIONS.join(', ')})`, NEWEST)
    .option('-c, --config <KEY=VALUE>', 'set a kernel config option (repeatable)', collect, [])
    .option(
      '-s, --schedule <schedule>',
      "thread to run at each step, e.g. 0*3.1.0 (as 'check' prints)",
    )
    .option('--json', 'print the trace as JSON')
    .option('--html <file>', 'also write the trace viewer to this HTML file')
    .action(
      async (
        ref: string,
        o: { kernel: string; config: string[]; schedule?: string; json?: boolean; html?: string },
      ) => {
        versionArg(o.kernel);
        const config = parseConfig(o.config);
        const schedule = parseScheduleArg(o.schedule);
        const cs = await resolveScenarios(ref, importer);
        if (cs.length !== 1)
          throw new InputError(
            `'${ref}' names ${cs.length} scenarios; run one of ${cs.map((c) => c.ref).join(', ')}`,
          );
        const trace = runScenario(cs[0]!, o.kernel, config, schedule);
        if (trace.status === 'bad-schedule')
          throw new InputError(`--schedule cannot be followed: ${trace.error}`);
        if (o.html) writeHtml(o.html, trace);
        out(o.json ? JSON.stringify(trace, null, 2) + '\n' : renderTrace(trace) + '\n');
      },
    );

  program
    .command('check')
    .description(
      'explore the interleavings of a scenario on each kernel version: verdict, executions, time, and a minimised counterexample with its replay command',
    )
    .argument('[scenario]', "a built-in scenario ('pfnsim list') or a file")
    .option('--all', 'check every built-in scenario and print the scenario x version matrix')
    .option('-k, --kernel <version>', "kernel version, or 'all'", 'all')
    .option('-c, --config <KEY=VALUE>', 'set a kernel config option (repeatable)', collect, [])
    .option(
      '--max-preemptions <n>',
      'explore only executions with at most n preemptions',
      intArg('--max-preemptions', 0),
    )
    .option(
      '--random <n>',
      'run n random schedules instead of exploring them all',
      intArg('--random', 1),
    )
    .option(
      '--pct <depth>',
      'run PCT schedules of this depth instead of exploring them all',
      intArg('--pct', 1),
    )
    .option('--runs <n>', 'number of PCT runs (default 1000)', intArg('--runs', 1))
    .option('--seed <s>', 'seed of --random and --pct (default 1)', intArg('--seed', 0))
    .option('--max-executions <n>', 'stop after n executions', intArg('--max-executions', 1))
    .addOption(new Option('--explore-all', 'keep exploring after the first violation'))
    .option(
      '-j, --jobs <n>',
      "worker threads (default 1): each scenario's exploration is split over n workers; with --all, n checks run at a time",
      intArg('--jobs', 1),
    )
    .option('--json', 'print the results as JSON')
    .option('--html <file>', "write the first counterexample's trace viewer to this HTML file")
    .action(async (ref: string | undefined, f: CheckFlags) => {
      if (f.all && ref) throw new InputError(`give a scenario or --all, not both`);
      if (!f.all && !ref) throw new InputError(`check needs a scenario or --all`);
      const versions =
        f.kernel === undefined || f.kernel === 'all'
          ? [...SUPPORTED_VERSIONS]
          : [versionArg(f.kernel)];
      let current = '';
      const opts = checkOptions(f, io, () => current);
      const cs = f.all ? builtinScenarios() : await resolveScenarios(ref!, importer);
      const cellOpts: CheckOptions = {
        ...opts,
        ...(f.all && !f.html ? { minimize: 'unexpected' as const, trace: false } : {}),
      };
      const jobs = f.jobs ?? 1;
      const source = scenarioSource(ref ?? '');
      const results: CheckResult[] = [];
      if (jobs === 1) {
        for (const c of cs) {
          for (const v of versions) {
            current = `${c.id} on ${v}`;
            results.push(checkScenario(c, v, cellOpts));
          }
        }
      } else {
        const pool = new WorkerPool(jobs);
        try {
          if (f.all) {
            // Whole checks on the workers, n at a time; results in the usual order.
            const cells = cs.flatMap((c) =>
              versions.map((version) => ({ scenario: c, source, version })),
            );
            const { onProgress: _p, ...plain } = cellOpts;
            let shown = 0;
            let shownDone = 0;
            results.push(
              ...(await checkCells(cells, plain, pool, (done, n) => {
                if (io.errIsTTY && (n - shown >= 100 || done > shownDone)) {
                  shown = n;
                  shownDone = done;
                  io.err(`\r\x1b[K${done} of ${cells.length} checks done: ${n} executions`);
                }
              })),
            );
          } else {
            for (const c of cs) {
              for (const v of versions) {
                current = `${c.id} on ${v}`;
                results.push(
                  await checkScenarioParallel(c, v, { ...cellOpts, jobs, pool, source }),
                );
              }
            }
          }
        } finally {
          await pool.close();
        }
      }
      if (io.errIsTTY && opts.onProgress) io.err('\r\x1b[K');
      if (f.json) out(JSON.stringify(results, null, 2) + '\n');
      else if (f.all) out(renderMatrix(results, versions) + '\n');
      else out(results.map(renderCheck).join('\n\n') + '\n');
      if (f.html) {
        const cx = results.find((r) => r.counterexample?.trace)?.counterexample;
        if (cx?.trace) {
          writeHtml(f.html, cx.trace);
          io.err(`pfnsim: wrote the counterexample of ${cx.trace.scenario} to ${f.html}\n`);
        } else io.err(`pfnsim: no counterexample: ${f.html} not written\n`);
      }
      if (results.some((r) => !r.matches)) exit.code = 1;
    });

  program
    .command('demo')
    .description(
      `run the built-in kernel-API example (${DEMO_NAME}): a driver mmap with remap_pfn_range, a follow_pfnmap_start/_end lookup racing a zap`,
    )
    .option('-k, --kernel <version>', `kernel version (${SUPPORTED_VERSIONS.join(', ')})`, '6.12')
    .option('-c, --config <KEY=VALUE>', 'set a kernel config option (repeatable)', collect, [])
    .option('-s, --schedule <schedule>', 'thread to run at each step, e.g. 0000111 or 0*4.1*3')
    .option('--json', 'print the trace as JSON')
    .action((opts: { kernel: string; config: string[]; schedule?: string; json?: boolean }) => {
      const trace = runDemo(opts.kernel, parseConfig(opts.config), parseScheduleArg(opts.schedule));
      out(opts.json ? JSON.stringify(trace, null, 2) + '\n' : renderTrace(trace) + '\n');
    });

  program
    .command('config')
    .description('list the kernel config options the model knows')
    .action(() => {
      for (const [name, o] of Object.entries(CONFIG_OPTIONS)) out(`${name.padEnd(34)} ${o.help}\n`);
    });

  program
    .command('versions')
    .description('list the kernel versions the model covers')
    .action(() => out(SUPPORTED_VERSIONS.join('\n') + '\n'));
  return { program, exit };
}

const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  errIsTTY: process.stderr.isTTY === true,
};

/** Runs the command line; resolves to the exit status (0, 1 or 2). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const chunks: string[] = [];
  const { program, exit } = buildProgram(io, (s) => chunks.push(s));
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) {
        io.out(chunks.join(''));
        return 0;
      }
      io.err(`pfnsim: ${e.message.replace(/^error: /, '').split('\n')[0]}\n`);
      return 2;
    }
    // Bad input (InputError, VersionError, ConfigError, ScenarioError, a failing setup):
    // one line naming the problem.
    io.err(`pfnsim: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}\n`);
    return 2;
  }
  io.out(chunks.join(''));
  return exit.code;
}

function isEntryPoint(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
