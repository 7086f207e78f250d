#!/usr/bin/env node
/**
 * The pfnsim command line. The only module that reads argv or the environment.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { runDemo, DEMO_NAME } from '../scenario/examples/driver-mmap.js';
import { renderTrace } from '../report/text.js';
import { SUPPORTED_VERSIONS } from '../kernel/version.js';
import { CONFIG_OPTIONS } from '../kernel/kconfig.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Parses repeated K=V options into a record; throws a one-line error on a bad one. */
export function parseConfig(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const it of items) {
    const m = /^([A-Z0-9_]+)=(.+)$/.exec(it);
    if (!m)
      throw new Error(`--config takes KEY=VALUE (e.g. CONFIG_STRICT_FOLLOW_PFN=y), not '${it}'`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

function parseSchedule(s: string | undefined): number[] {
  if (s === undefined) return [];
  if (!/^[0-9]*$/.test(s))
    throw new Error(`--schedule takes thread numbers, one digit per step (e.g. 0011), not '${s}'`);
  return [...s].map(Number);
}

export function buildProgram(out: (s: string) => void): Command {
  const program = new Command();
  program
    .name('pfnsim')
    .description('An executable model of Linux PFN-mapped memory')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: out });

  program
    .command('demo')
    .description(
      `run the built-in kernel-API example (${DEMO_NAME}): a driver mmap with remap_pfn_range, a follow_pfnmap_start/_end lookup racing a zap`,
    )
    .option('-k, --kernel <version>', `kernel version (${SUPPORTED_VERSIONS.join(', ')})`, '6.12')
    .option('-c, --config <KEY=VALUE>', 'set a kernel config option (repeatable)', collect, [])
    .option('-s, --schedule <digits>', 'thread to run at each step, e.g. 0000111')
    .option('--json', 'print the trace as JSON')
    .action((opts: { kernel: string; config: string[]; schedule?: string; json?: boolean }) => {
      const trace = runDemo(opts.kernel, parseConfig(opts.config), parseSchedule(opts.schedule));
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
  return program;
}

export interface Io {
  out(s: string): void;
  err(s: string): void;
}

const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function main(argv: readonly string[], io: Io = processIo): number {
  const chunks: string[] = [];
  const program = buildProgram((s) => chunks.push(s));
  let code = 0;
  try {
    program.parse(argv as string[], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      code = e.exitCode;
    } else {
      chunks.push(`pfnsim: ${e instanceof Error ? e.message : String(e)}\n`);
      code = 2;
    }
  }
  const text = chunks.join('');
  if (code === 0) io.out(text);
  else io.err(text);
  return code;
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

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2));
