import { describe, expect, it } from 'vitest';
import { main } from './main.js';

function run(args: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

describe('pfnsim CLI', () => {
  it('demo prints the trace and the kernel log', () => {
    const r = run(['demo']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^scenario driver-mmap on Linux 6\.12: done, \d+ steps/);
    expect(r.out).toContain('--- dmesg ---');
    expect(r.out).toContain('demo_bar: mapped BAR0 (pfn 0xfe000)');
  });

  it('demo --json prints a versioned trace document', () => {
    const t = JSON.parse(run(['demo', '--kernel', '6.18', '--json']).out);
    expect(t.format).toBe('pfnsim-trace');
    expect(t.version).toBe(1);
    expect(t.kernel.version).toBe('6.18');
  });

  it('bad input gets a one-line error and exit status 2', () => {
    const cases: [string[], RegExp][] = [
      [
        ['demo', '--kernel', '9.9'],
        /^pfnsim: unknown kernel version '9\.9': the model covers 5\.7, /,
      ],
      [['demo', '--config', 'NOEQUALS'], /^pfnsim: --config takes KEY=VALUE/],
      [['demo', '--config', 'CONFIG_NOPE=y'], /^pfnsim: unknown config option CONFIG_NOPE/],
      [['demo', '--schedule', '0a'], /^pfnsim: --schedule takes thread numbers/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
    const bad = run(['frobnicate']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/unknown command 'frobnicate'/);
  });

  it('versions and config list what the model knows', () => {
    expect(run(['versions']).out.split('\n')).toContain('6.18');
    expect(run(['config']).out).toMatch(/CONFIG_STRICT_FOLLOW_PFN\s+reject unsafe_follow_pfn/);
  });
});
