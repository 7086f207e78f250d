/**
 * The live side of the agreement cases (issue 3 §6): builds conformance/probe.c with the
 * system's cc, runs it on the live kernel and parses its output into a ResultTable; reads
 * and records the checked-in tables `conformance/expected-<version>.json`.
 *
 *   node dist/conformance/live.js            run the probe, print the table and its
 *                                            differences from the expected table
 *   node dist/conformance/live.js --record   also (re)write expected-<version>.json
 *
 * Environment: PFNSIM_PROBE_DIR (a directory on ext4 for the file-backed and O_DIRECT
 * cases, default /var/tmp), CC (the compiler, default cc).
 * Uses only Node's standard library.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ENTRY_POINTS, MAPPING_KINDS, type ResultTable } from './cases.js';

/** What one probe run printed. */
export interface ProbeOutput {
  /** `# key value` header lines (uname-r, thp_enabled, nr_hugepages, ...). */
  readonly meta: Record<string, string>;
  /** VmFlags (from /proc/self/smaps) of each kind's mapping, e.g. 'rd mr pf io de dd'. */
  readonly vmflags: Record<string, string>;
  /** `${kind}/${entry}` -> result string, in the probe's (= cases.ts) order. */
  readonly results: ResultTable;
}

/** The contents of conformance/expected-<version>.json. */
export interface ExpectedFile {
  /** `uname -r` of the machine the table was recorded on. */
  readonly kernel: string;
  /** The model version the table is compared against ('6.18'). */
  readonly version: string;
  /** Recording date (UTC, YYYY-MM-DD). */
  readonly recorded: string;
  /** Sysctls and settings the results depend on, as the probe printed them. */
  readonly settings: Record<string, string>;
  /** Kernel config options that matter, from /proc/config.gz ('y', 'n' or a value). */
  readonly config: Record<string, string>;
  readonly vmflags: Record<string, string>;
  readonly results: ResultTable;
}

/** A result string as cases.ts defines them. */
export const RESULT_PATTERN = /^(ok|short:\d+|-E[A-Z0-9]+|SIGBUS|SIGSEGV|skip:\S+)$/;

/** Config options recorded with an expected table (absent options are recorded 'n'). */
export const RECORDED_CONFIG = [
  'CONFIG_ARCH_HAS_PTE_SPECIAL',
  'CONFIG_HAVE_GUP_FAST',
  'CONFIG_TRANSPARENT_HUGEPAGE',
  'CONFIG_HUGETLBFS',
  'CONFIG_SECRETMEM',
  'CONFIG_CMA',
  'CONFIG_ZONE_DEVICE',
  'CONFIG_FS_DAX',
  'CONFIG_IO_URING',
  'CONFIG_AIO',
  'CONFIG_PERF_EVENTS',
  'CONFIG_CROSS_MEMORY_ATTACH',
  'CONFIG_PROC_MEM_ALWAYS_FORCE',
  'CONFIG_PROC_MEM_FORCE_PTRACE',
  'CONFIG_PROC_MEM_NO_FORCE',
  'CONFIG_TIME_NS',
  'CONFIG_VDSO_GETRANDOM',
] as const;

/** Every case id, kinds outer, entry points inner (the probe's order). */
export function caseIds(): string[] {
  return MAPPING_KINDS.flatMap((k) => ENTRY_POINTS.map((e) => `${k.id}/${e.id}`));
}

/** The conformance/ directory (also when running from dist/conformance/). */
export function conformanceDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'probe.c'))) return dir;
    if (existsSync(join(dir, 'conformance', 'probe.c'))) return join(dir, 'conformance');
    dir = dirname(dir);
  }
  throw new Error('conformance/probe.c not found above ' + fileURLToPath(import.meta.url));
}

/** The model version name of the running kernel: '6.18' for '6.18.44-fc-v595'. */
export function liveKernelVersion(kernelRelease: string = release()): string {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!m) throw new Error(`cannot read a version from uname -r '${kernelRelease}'`);
  return `${m[1]}.${m[2]}`;
}

/**
 * Parses the probe's stdout. Throws if a line is malformed, a case id is unknown, or a
 * result string breaks the cases.ts conventions.
 */
export function parseProbeOutput(text: string): ProbeOutput {
  const known = new Set(caseIds());
  const meta: Record<string, string> = {};
  const vmflags: Record<string, string> = {};
  const results: ResultTable = {};
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      const key = m[1]!;
      const value = m[2]!;
      if (key === 'vmflags') {
        const [kind, ...flags] = value.split(/\s+/);
        if (kind) vmflags[kind] = flags.join(' ');
      } else {
        meta[key] = value;
      }
      continue;
    }
    const m = /^(\S+)\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`probe: malformed line '${line}'`);
    const id = m[1]!;
    const result = m[2]!;
    if (!known.has(id)) throw new Error(`probe: unknown case '${id}'`);
    if (!RESULT_PATTERN.test(result)) throw new Error(`probe: bad result '${result}' for ${id}`);
    results[id] = result;
  }
  return { meta, vmflags, results };
}

/**
 * Compiles probe.c into `outDir` with `${CC:-cc} -O2 -Wall -Wextra`. Returns the binary's
 * path, or `{ skipped }` when no compiler runs; throws with the compiler's messages when
 * the build fails.
 */
export function buildProbe(outDir: string): string | { skipped: string } {
  const cc = process.env.CC ?? 'cc';
  const out = join(outDir, 'pfnsim-probe');
  const src = join(conformanceDir(), 'probe.c');
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', out, src], { encoding: 'utf8' });
  if (r.error) return { skipped: `cannot run ${cc}: ${r.error.message}` };
  if (r.status !== 0) throw new Error(`${cc} failed on ${src}:\n${r.stderr}`);
  return out;
}

/** Why the live side cannot run here, or null. */
export function liveUnavailable(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'the probe needs root (hugetlb pool, /proc/self/mem)';
  return null;
}

/**
 * Builds and runs the probe; `filter` limits it to case ids starting with one of the
 * prefixes. The ext4 directory is PFNSIM_PROBE_DIR or /var/tmp.
 */
export function runProbe(filter: readonly string[] = []): ProbeOutput | { skipped: string } {
  const why = liveUnavailable();
  if (why) return { skipped: why };
  const tmp = mkdtempSync(join(tmpdir(), 'pfnsim-probe-'));
  try {
    const bin = buildProbe(tmp);
    if (typeof bin !== 'string') return bin;
    const args = ['-d', process.env.PFNSIM_PROBE_DIR ?? '/var/tmp', ...filter];
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 300_000 });
    if (r.error) throw r.error;
    if (r.status !== 0) {
      throw new Error(`probe exited ${r.status ?? r.signal}:\n${r.stderr}`);
    }
    return parseProbeOutput(r.stdout);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The live kernel's table for every case, or why it cannot be had here. */
export function runLive(): ResultTable | { skipped: string } {
  const out = runProbe();
  return 'skipped' in out ? out : out.results;
}

function expectedPath(version: string): string {
  return join(conformanceDir(), `expected-${version}.json`);
}

/** The whole checked-in record for `version` ('6.18'). Throws if there is none. */
export function loadExpectedFile(version: string): ExpectedFile {
  const path = expectedPath(version);
  if (!existsSync(path)) throw new Error(`no expected table for ${version}: ${path}`);
  return JSON.parse(readFileSync(path, 'utf8')) as ExpectedFile;
}

/** The checked-in result table for `version` ('6.18'). */
export function loadExpected(version: string): ResultTable {
  return loadExpectedFile(version).results;
}

/** One case whose results differ between two tables (missing on one side = undefined). */
export interface Difference {
  readonly id: string;
  readonly expected: string | undefined;
  readonly actual: string | undefined;
}

/** The cases (in cases.ts order, then unknown ids) where `actual` differs from `expected`. */
export function diffTables(expected: ResultTable, actual: ResultTable): Difference[] {
  const ids = [...new Set([...caseIds(), ...Object.keys(expected), ...Object.keys(actual)])];
  return ids
    .filter((id) => expected[id] !== actual[id])
    .map((id) => ({ id, expected: expected[id], actual: actual[id] }));
}

/** The options of RECORDED_CONFIG in /proc/config.gz ('n' when unset), or {} without it. */
export function readKernelConfig(path = '/proc/config.gz'): Record<string, string> {
  if (!existsSync(path)) return {};
  const text = gunzipSync(readFileSync(path)).toString('utf8');
  const config: Record<string, string> = {};
  for (const opt of RECORDED_CONFIG) {
    const m = new RegExp(`^${opt}=(.*)$`, 'm').exec(text);
    config[opt] = m ? m[1]! : 'n';
  }
  return config;
}

/** Builds the record of a probe run (the date is today's, UTC). */
export function makeExpectedFile(out: ProbeOutput, now: Date = new Date()): ExpectedFile {
  const kernel = out.meta['uname-r'] ?? release();
  const { 'uname-r': _uname, ...settings } = out.meta;
  return {
    kernel,
    version: liveKernelVersion(kernel),
    recorded: now.toISOString().slice(0, 10),
    settings,
    config: readKernelConfig(),
    vmflags: out.vmflags,
    results: out.results,
  };
}

/** Counts of each result class per entry point: ok, short, errno, signal, skip. */
export function summarize(table: ResultTable): Record<string, Record<string, number>> {
  const sum: Record<string, Record<string, number>> = {};
  for (const e of ENTRY_POINTS) sum[e.id] = { ok: 0, short: 0, errno: 0, signal: 0, skip: 0 };
  for (const [id, r] of Object.entries(table)) {
    const row = sum[id.slice(id.indexOf('/') + 1)];
    if (!row) continue;
    const cls =
      r === 'ok'
        ? 'ok'
        : r.startsWith('short:')
          ? 'short'
          : r.startsWith('-E')
            ? 'errno'
            : r.startsWith('SIG')
              ? 'signal'
              : 'skip';
    row[cls] = (row[cls] ?? 0) + 1;
  }
  return sum;
}

function main(argv: readonly string[]): number {
  const record = argv.includes('--record');
  const filter = argv.filter((a) => !a.startsWith('--'));
  const run = runProbe(filter);
  if ('skipped' in run) {
    console.log(`live side skipped: ${run.skipped}`);
    return 0;
  }
  for (const [id, r] of Object.entries(run.results)) console.log(`${id.padEnd(40)} ${r}`);
  console.log('\nper entry point (ok/short/errno/signal/skip):');
  for (const [e, c] of Object.entries(summarize(run.results))) {
    console.log(`  ${e.padEnd(22)} ${c.ok}/${c.short}/${c.errno}/${c.signal}/${c.skip}`);
  }
  const version = liveKernelVersion(run.meta['uname-r'] ?? release());
  if (record) {
    if (filter.length > 0) throw new Error('--record needs the full run (no case filter)');
    const path = expectedPath(version);
    writeFileSync(path, JSON.stringify(makeExpectedFile(run), null, 2) + '\n');
    console.log(`\nrecorded ${path}`);
    return 0;
  }
  if (!existsSync(expectedPath(version))) {
    console.log(`\nno expected table for ${version}`);
    return 0;
  }
  const exp = loadExpected(version);
  const diffs = diffTables(exp, run.results).filter((d) => filter.length === 0 || d.actual);
  console.log(`\n${diffs.length} difference(s) from expected-${version}.json`);
  for (const d of diffs) console.log(`  ${d.id}: expected ${d.expected}, live ${d.actual}`);
  return diffs.length === 0 ? 0 : 1;
}

const invoked = process.argv[1] !== undefined ? resolve(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
