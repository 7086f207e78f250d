import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, parseScheduleArg } from './main.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

describe('pfnsim CLI', () => {
  it('demo prints the trace and the kernel log', async () => {
    const r = await run(['demo']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^scenario driver-mmap on Linux 6\.12: done, \d+ steps/);
    expect(r.out).toContain('--- dmesg ---');
    expect(r.out).toContain('demo_bar: mapped BAR0 (pfn 0xfe000)');
  });

  it('demo --json prints a versioned trace document', async () => {
    const t = JSON.parse((await run(['demo', '--kernel', '6.18', '--json'])).out);
    expect(t.format).toBe('pfnsim-trace');
    expect(t.version).toBe(2);
    expect(t.kernel.version).toBe('6.18');
  });

  it('demo replays the schedule it prints, in either schedule form', async () => {
    const first = JSON.parse((await run(['demo', '--json'])).out);
    const digits = first.schedule.join('');
    const a = JSON.parse((await run(['demo', '--json', '--schedule', digits])).out);
    expect(a).toEqual(first);
    const text = (await run(['demo'])).out;
    const s = /^schedule: (.*)$/m.exec(text)![1]!;
    const b = JSON.parse((await run(['demo', '--json', '--schedule', s])).out);
    expect(b).toEqual(first);
  });

  it('bad input gets a one-line error and exit status 2', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['demo', '--kernel', '9.9'],
        /^pfnsim: unknown kernel version '9\.9': the model covers 5\.7, /,
      ],
      [['demo', '--config', 'NOEQUALS'], /^pfnsim: --config takes KEY=VALUE/],
      [['demo', '--config', 'CONFIG_NOPE=y'], /^pfnsim: unknown config option CONFIG_NOPE/],
      [['demo', '--schedule', '0a'], /^pfnsim: --schedule takes thread numbers/],
      [['frobnicate'], /^pfnsim: unknown command 'frobnicate'/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  it('versions and config list what the model knows', async () => {
    expect((await run(['versions'])).out.split('\n')).toContain('6.18');
    expect((await run(['config'])).out).toMatch(
      /CONFIG_STRICT_FOLLOW_PFN\s+reject unsafe_follow_pfn/,
    );
  });

  it('schedules: digit strings are one step per digit, otherwise the explorer form', () => {
    expect(parseScheduleArg('0011')).toEqual([0, 0, 1, 1]);
    expect(parseScheduleArg('0*2.1*2')).toEqual([0, 0, 1, 1]);
    expect(parseScheduleArg('3')).toEqual([3]);
    expect(() => parseScheduleArg('0*')).toThrow(/--schedule takes thread numbers/);
  });

  it('--html writes the viewer for run, and for check its counterexample', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pfnsim-html-'));
    const runFile = join(dir, 'run.html');
    const r = await run(['run', 'driver-mmap/unsafe', '-k', '6.12', '--html', runFile]);
    expect(r.code).toBe(0);
    const page = readFileSync(runFile, 'utf8');
    expect(page).toMatch(/^<!doctype html>/i);
    expect(page).toContain('"format":"pfnsim-trace"');
    const checkFile = join(dir, 'check.html');
    const c = await run(['check', 'driver-mmap/unsafe', '-k', '6.12', '--html', checkFile]);
    expect(c.err).toContain(`wrote the counterexample of driver-mmap/unsafe to ${checkFile}`);
    expect(readFileSync(checkFile, 'utf8')).toContain('"scenario":"driver-mmap/unsafe"');
    const safeFile = join(dir, 'safe.html');
    const s = await run(['check', 'driver-mmap/fixed', '-k', '6.12', '--html', safeFile]);
    expect(s.err).toContain('no counterexample');
    expect(existsSync(safeFile)).toBe(false);
  });

  it('--all --jobs 2 on a terminal shows progress summed over the checks, then clears it', async () => {
    let out = '';
    let err = '';
    const code = await main(['check', '--all', '--kernel', '6.18', '--jobs', '2'], {
      out: (s) => (out += s),
      err: (s) => (err += s),
      errIsTTY: true,
    });
    expect(code).toBe(0);
    const shown = [...err.matchAll(/(\d+) of 38 checks done: (\d+) executions/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(shown.length).toBeGreaterThan(1);
    for (let i = 1; i < shown.length; i++) {
      expect(shown[i]![0]).toBeGreaterThanOrEqual(shown[i - 1]![0]!);
      expect(shown[i]![1]).toBeGreaterThanOrEqual(shown[i - 1]![1]!);
    }
    expect(shown.at(-1)![0]).toBe(38);
    expect(err.endsWith('\r\x1b[K')).toBe(true);
    expect(out).toMatch(/^scenario\s+6\.18\n/);
  });
});
