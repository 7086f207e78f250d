/**
 * Golden outputs of the main commands. The time a check took is normalised to
 * `time <T> ms`. To rewrite the golden files after an intended change:
 *   PFNSIM_UPDATE_GOLDEN=1 npx vitest run test/cli/golden.test.ts
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const UPDATE = process.env.PFNSIM_UPDATE_GOLDEN === '1';
const GOLDEN = join(import.meta.dirname, 'golden');
const FIXTURES = 'test/cli/fixtures';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

function normalise(text: string): string {
  return text.replace(/time \d+ ms/g, 'time <T> ms').replace(/"timeMs": [\d.e+-]+/g, '"timeMs": 0');
}

function golden(name: string, text: string): void {
  const file = join(GOLDEN, name);
  const got = normalise(text);
  if (UPDATE) writeFileSync(file, got);
  expect(got).toBe(readFileSync(file, 'utf8'));
}

describe('golden outputs', () => {
  it('pfnsim list', async () => {
    const r = await run(['list']);
    expect(r.code).toBe(0);
    golden('list.txt', r.out);
  });

  it('pfnsim run driver-mmap/unsafe --kernel 6.12 --schedule (the counterexample)', async () => {
    const r = await run([
      'run',
      'driver-mmap/unsafe',
      '--kernel',
      '6.12',
      '--schedule',
      '0*8.1*31.0*2',
    ]);
    expect(r.code).toBe(0);
    golden('run-driver-mmap-unsafe-6.12.txt', r.out);
  });

  it('pfnsim check driver-mmap --kernel 6.12', async () => {
    const r = await run(['check', 'driver-mmap', '--kernel', '6.12']);
    expect(r.code).toBe(0);
    golden('check-driver-mmap-6.12.txt', r.out);
  });

  it('pfnsim check --all --kernel 6.18', async () => {
    const r = await run(['check', '--all', '--kernel', '6.18']);
    expect(r.code).toBe(0);
    golden('check-all-6.18.txt', r.out);
  });

  it("pfnsim check <user's .ts file> --kernel 5.10", async () => {
    const r = await run(['check', `${FIXTURES}/user-scenario.ts`, '--kernel', '5.10']);
    expect(r.code).toBe(0);
    golden('check-user-file-5.10.txt', r.out);
  });
});

describe('check and run semantics', () => {
  it('the replay command check prints reproduces the counterexample trace', async () => {
    const r = await run(['check', 'driver-mmap/unsafe', '--kernel', '5.10', '--json']);
    const [res] = JSON.parse(r.out);
    const argv = res.counterexample.replay.split(' ').slice(1);
    const replayed = JSON.parse((await run([...argv, '--json'])).out);
    expect(replayed).toEqual(res.counterexample.trace);
    expect(replayed.verdict).toBe(res.verdict);
  });

  it('exit status 1 when a verdict differs from the expected one', async () => {
    // The lost update needs a preemption: bounded to none, the exploration finds no
    // violation, but the scenario expects one.
    const args = ['check', `${FIXTURES}/user-scenario.ts`, '--kernel', '6.12'];
    const r = await run([...args, '--max-preemptions', '0']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^lost-update on 6\.12: SAFE \(DIFFERS: expected check\)/);
    expect((await run([...args, '--max-preemptions', '1'])).code).toBe(0);
  });

  it('--all --jobs 2 prints the same matrix as --all (the golden one)', async () => {
    const r = await run(['check', '--all', '--kernel', '6.18', '--jobs', '2']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    golden('check-all-6.18.txt', r.out);
  });

  it("--jobs 2 loads a user's .ts file in the workers; same output as --jobs 1", async () => {
    const args = ['check', `${FIXTURES}/user-locks.ts`, '--kernel', '6.18'];
    const one = await run(args);
    const two = await run([...args, '--jobs', '2']);
    expect(two.code).toBe(0);
    expect(two.err).toBe('');
    expect(normalise(two.out)).toBe(normalise(one.out));
    expect(one.out).toMatch(/executions: 90 \(all interleavings explored\)/);
    const [res] = JSON.parse((await run([...args, '--jobs', '2', '--json'])).out);
    expect(res.jobs).toBe(2);
  });
});

describe('bad input: one line on stderr, exit status 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pfnsim-cli-'));
  const broken = join(dir, 'broken.mjs');
  writeFileSync(broken, "export default defineScenario({ name: 'broken',\n");
  const cases: [string, string[], RegExp][] = [
    ['unknown scenario', ['run', 'nope'], /^pfnsim: unknown scenario 'nope': 'pfnsim list' shows/],
    [
      'unknown variant',
      ['check', 'driver-mmap/safe'],
      /^pfnsim: unknown scenario 'driver-mmap\/safe'/,
    ],
    [
      'bad version',
      ['check', 'driver-mmap', '--kernel', '4.19'],
      /^pfnsim: unknown kernel version '4\.19'/,
    ],
    [
      'bad flag',
      ['check', 'driver-mmap', '--frobnicate'],
      /^pfnsim: unknown option '--frobnicate'/,
    ],
    [
      'bad number',
      ['check', 'driver-mmap', '--random', 'x'],
      /^pfnsim: --random takes a whole number/,
    ],
    [
      'random and pct',
      ['check', 'driver-mmap', '--random', '3', '--pct', '2'],
      /^pfnsim: choose one of --random and --pct/,
    ],
    [
      'run of a story with variants',
      ['run', 'driver-mmap'],
      /^pfnsim: 'driver-mmap' names 2 scenarios; run one of driver-mmap\/unsafe, driver-mmap\/fixed/,
    ],
    [
      'a schedule that cannot be followed',
      ['run', 'driver-mmap/fixed', '--schedule', '7'],
      /^pfnsim: --schedule cannot be followed: schedule position 0: no thread 7/,
    ],
    ['check without a scenario', ['check'], /^pfnsim: check needs a scenario or --all/],
    [
      '--jobs 0',
      ['check', 'driver-mmap', '--jobs', '0'],
      /^pfnsim: --jobs takes a whole number of at least 1, not '0'/,
    ],
    [
      '--jobs with --random',
      ['check', 'driver-mmap', '--jobs', '2', '--random', '5'],
      /^pfnsim: --jobs splits the exhaustive exploration; --random and --pct run on one job/,
    ],
    ['missing file', ['run', 'nowhere.ts'], /^pfnsim: scenario file 'nowhere\.ts' not found/],
    [
      'file without a scenario',
      ['run', `${FIXTURES}/no-scenario.mjs`],
      /^pfnsim: scenario file '.*no-scenario\.mjs' exports no scenario/,
    ],
    ['malformed file', ['run', broken], /^pfnsim: cannot load scenario file '.*broken\.mjs': /],
    [
      'bad expectations',
      ['check', `${FIXTURES}/bad-expect.ts`],
      /^pfnsim: scenario file '.*bad-expect\.ts': scenario 'gappy': expect has nothing for 5\.7/,
    ],
    [
      'unknown name in a file',
      ['run', `${FIXTURES}/user-scenario.ts#other`],
      /^pfnsim: unknown scenario 'other' in '.*user-scenario\.ts': it has lost-update/,
    ],
  ];
  for (const [what, args, re] of cases) {
    it(what, async () => {
      const r = await run(args);
      expect(r.err).toMatch(re);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
    });
  }
});
