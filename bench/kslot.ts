/**
 * The K-slot lease benchmark (issue 5): the same model explored by pfnsim (bench/kslot.scenario.ts,
 * on the modelled 6.18 kernel) and by SPIN (bench/kslot.pml), printed side by side.
 *
 *   npm run build && npm run bench:kslot [-- --budget-s 60 --k4-budget-s 1800 --jobs 2
 *                                           --spin-timeout-s 300 --spin-mem-mb 8192]
 *
 * Each pfnsim configuration runs in a child process so that its peak memory (max RSS) is its
 * own. Rows run on one thread, and FIXED K=3 also on `--jobs` worker threads
 * (checkScenarioParallel), whose memory is in the same process. FIXED K=4 has its own
 * budget (`--k4-budget-s`). SPIN is run when `spin` and
 * `gcc` are on the PATH (Debian packages spin, gcc).
 * Figures, not tests: nothing here asserts on time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kslotScenario } from './kslot.scenario.js';
import { concreteScenarios } from '../src/scenario/scenario.js';
import {
  checkScenarioParallel,
  type CheckResult,
  type ParallelCheckOptions,
} from '../src/scenario/execute.js';

const here = dirname(fileURLToPath(import.meta.url));

interface OneResult {
  readonly label: string;
  readonly verdict: string;
  readonly complete: boolean;
  readonly executions: number;
  readonly seconds: number;
  readonly maxRssMb: number;
  readonly cx?: {
    readonly steps: number;
    readonly schedule: string;
    readonly reportStep?: number;
    readonly reportWhat?: string;
  };
}

/** One pfnsim configuration, in this process (the child side). */
async function runOne(
  variant: 'bug' | 'fixed',
  K: number,
  mode: string,
  budgetS: number,
  jobs: number,
): Promise<OneResult> {
  const c = concreteScenarios(kslotScenario(K)).find((x) => x.variant === variant)!;
  const t0 = performance.now();
  let executions = 0;
  let aborted = false;
  const opts: ParallelCheckOptions = {
    minimize: variant === 'bug' ? 'always' : 'never',
    ...(mode === 'random' ? { random: { runs: 1000, seed: 1 } } : {}),
    ...(mode === 'pct' ? { pct: { depth: 2, runs: 1000, seed: 1 } } : {}),
    jobs,
    source: {
      module: new URL('./kslot.scenario.js', import.meta.url).href,
      export: 'kslotScenario',
      args: [K],
    },
    onProgress: (n) => {
      executions = n;
      // The budget: stop exploring once it is spent (the result then says incomplete).
      // On worker threads the exploration cannot be cut here: those rows have no budget.
      if (jobs === 1 && !aborted && performance.now() - t0 > budgetS * 1000) {
        aborted = true;
        throw new BudgetSpent();
      }
    },
  };
  let r: CheckResult | undefined;
  try {
    r = await checkScenarioParallel(c, '6.18', opts);
  } catch (e) {
    if (!(e instanceof BudgetSpent)) throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  const maxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  const label = `${variant.toUpperCase()} K=${K}${mode === 'dpor' ? '' : ` ${mode}`}${jobs > 1 ? ` -j${jobs}` : ''}`;
  if (!r)
    return { label, verdict: '(budget spent)', complete: false, executions, seconds, maxRssMb };
  const report = r.counterexample?.trace?.reports[0];
  return {
    label,
    verdict: r.verdict,
    complete: r.complete,
    executions: r.executions,
    seconds,
    maxRssMb,
    ...(r.counterexample
      ? {
          cx: {
            steps: r.counterexample.steps,
            schedule: r.counterexample.schedule,
            ...(report ? { reportStep: report.step, reportWhat: report.used.what } : {}),
          },
        }
      : {}),
  };
}

class BudgetSpent extends Error {}

interface SpinResult {
  readonly label: string;
  readonly states?: number;
  readonly memMb?: number;
  readonly seconds: number;
  readonly errors?: number;
  readonly note: string;
}

function runSpin(variant: 'bug' | 'fixed', K: number, timeoutS: number, memMb: number): SpinResult {
  const label = `${variant.toUpperCase()} K=${K}`;
  const dir = mkdtempSync(join(tmpdir(), 'kslot-spin-'));
  copyFileSync(join(here, '..', '..', 'bench', 'kslot.pml'), join(dir, 'kslot.pml'));
  const defs = [`-DK=${K}`, ...(variant === 'fixed' ? ['-DFIXED'] : [])];
  execFileSync('spin', ['-a', ...defs, 'kslot.pml'], { cwd: dir, stdio: 'pipe' });
  execFileSync('gcc', ['-O2', '-DSAFETY', `-DMEMLIM=${memMb}`, '-o', 'pan', 'pan.c'], {
    cwd: dir,
    stdio: 'pipe',
  });
  const t0 = performance.now();
  // coreutils timeout with SIGINT: pan prints its statistics (states stored, memory)
  // before it exits, and timeout exits with 124.
  const p = spawnSync('timeout', ['-s', 'INT', String(timeoutS), './pan', '-m1000000'], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const seconds = (performance.now() - t0) / 1000;
  const out = `${p.stdout ?? ''}${p.stderr ?? ''}`;
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const states = num(/([\d.e+]+) states, stored/);
  const memMbUsed = num(/([\d.]+)\s+total actual memory usage/);
  const errors = num(/errors: (\d+)/);
  let note: string;
  if (p.status === 124 || p.error || p.signal) note = `stopped after ${timeoutS} s`;
  else if (/out of memory|pan: reached -DMEMLIM/.test(out))
    note = `out of memory (MEMLIM ${memMb} MB)`;
  else if (errors) note = 'assertion violated';
  else note = 'exhaustive, no errors';
  return {
    label,
    ...(states !== undefined ? { states } : {}),
    ...(memMbUsed !== undefined ? { memMb: memMbUsed } : {}),
    seconds,
    ...(errors !== undefined ? { errors } : {}),
    note,
  };
}

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--one') {
    const [variant, K, mode, budget, jobs] = process.argv.slice(3);
    const r = await runOne(
      variant as 'bug' | 'fixed',
      Number(K),
      mode!,
      Number(budget),
      Number(jobs),
    );
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const budgetS = flag('--budget-s', 60);
  const k4BudgetS = flag('--k4-budget-s', 1800);
  const jobs = flag('--jobs', 2);
  const spinTimeoutS = flag('--spin-timeout-s', 300);
  const spinMemMb = flag('--spin-mem-mb', 8192);
  const configs: [string, number, string, number, number][] = [
    ['bug', 2, 'dpor', budgetS, 1],
    ['fixed', 1, 'dpor', budgetS, 1],
    ['fixed', 2, 'dpor', budgetS, 1],
    ['fixed', 3, 'dpor', budgetS, 1],
    ['fixed', 3, 'dpor', budgetS, jobs],
    ['fixed', 4, 'dpor', k4BudgetS, 1],
    ['bug', 4, 'random', budgetS, 1],
    ['bug', 4, 'pct', budgetS, 1],
  ];
  console.log(
    `pfnsim (6.18 model, one child process per row; budget ${budgetS} s per one-thread row)`,
  );
  console.log(
    'config            verdict        complete  executions  exec/s   time s  peak MB  counterexample',
  );
  for (const [variant, K, mode, budget, j] of configs) {
    let out: string;
    try {
      out = execFileSync(
        process.execPath,
        [
          fileURLToPath(import.meta.url),
          '--one',
          variant,
          String(K),
          mode,
          String(budget),
          String(j),
        ],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 24,
          // A row on worker threads has no budget of its own: the child is stopped here.
          timeout: (budget + 60) * 1000,
        },
      );
    } catch (e) {
      const label = `${variant.toUpperCase()} K=${K}${mode === 'dpor' ? '' : ` ${mode}`}${j > 1 ? ` -j${j}` : ''}`;
      console.log(
        `${label.padEnd(17)} (stopped after ${budget + 60} s: ${(e as Error).message.split('\n')[0]})`,
      );
      continue;
    }
    const r = JSON.parse(out.trim().split('\n').pop()!) as OneResult;
    const rate = r.seconds > 0 ? Math.round(r.executions / r.seconds) : 0;
    const cx = r.cx
      ? `${r.cx.steps} steps${r.cx.reportStep !== undefined ? `, reported at step ${r.cx.reportStep} (${r.cx.reportWhat})` : ''}; --schedule ${r.cx.schedule}`
      : '';
    console.log(
      `${r.label.padEnd(17)} ${r.verdict.padEnd(14)} ${String(r.complete).padEnd(9)} ${String(r.executions).padStart(10)}  ${String(rate).padStart(6)}  ${r.seconds.toFixed(1).padStart(6)}  ${String(r.maxRssMb).padStart(7)}  ${cx}`,
    );
  }
  const haveSpin =
    spawnSync('spin', ['-V']).status === 0 && spawnSync('gcc', ['--version']).status === 0;
  if (!haveSpin) {
    console.log('\nSPIN: not run (install the Debian packages spin and gcc)');
    return;
  }
  console.log(
    `\nSPIN (bench/kslot.pml; -DSAFETY, MEMLIM ${spinMemMb} MB, timeout ${spinTimeoutS} s)`,
  );
  console.log('config            states stored   memory MB   time s  result');
  for (const [variant, K] of [
    ['bug', 2],
    ['fixed', 2],
    ['fixed', 3],
  ] as const) {
    const s = runSpin(variant, K, spinTimeoutS, spinMemMb);
    console.log(
      `${s.label.padEnd(17)} ${String(s.states ?? '-').padStart(13)}  ${String(s.memMb ?? '-').padStart(10)}  ${s.seconds.toFixed(1).padStart(7)}  ${s.note}`,
    );
  }
}

await main();
