import { describe, expect, it } from 'vitest';
import { checkScenario, concreteScenarios, expectedFor, runScenario } from '../src/index.js';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';
import driverMmap from './driver-mmap.js';

const [unsafe, fixed] = concreteScenarios(driverMmap);

describe('driver-mmap', () => {
  for (const v of SUPPORTED_VERSIONS) {
    it(`${v}: unsafe is caught, fixed is SAFE over every interleaving`, () => {
      const u = checkScenario(unsafe!, v, { minimize: 'never', trace: false });
      expect(u.verdict).not.toBe('SAFE');
      expect(u.matches).toBe(true);
      expect(u.verdict).toMatch(/^(stale-pfn|check: device iova 0x0 still maps pfn 0xfe003)/);
      const f = checkScenario(fixed!, v, { trace: false });
      expect(f.verdict).toBe('SAFE');
      expect(f.complete).toBe(true);
      expect(expectedFor(fixed!, v)).toEqual(['SAFE']);
    });
  }

  it('unsafe 6.12: the sanitizer names the use after follow_pfnmap_end (pfn 0xfe003)', () => {
    // lookup: mmap_read_lock .. follow_pfnmap_start/_end, mmap_read_unlock, then the
    // DMA mapping (10 steps); then the revoke.
    const t = runScenario(unsafe!, '6.12', {}, '0*10.1*31');
    expect(t.verdict).toBe('stale-pfn');
    expect(t.reports[0]!.pfn).toBe(0xfe003);
    expect(t.reports[0]!.ended?.what).toBe('follow_pfnmap_end');
  });

  it('fixed 5.10: the mapping made under the PTE lock is flushed by the revoke', () => {
    const t = runScenario(fixed!, '5.10');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toContain(
      'driver flushed 1 device DMA mapping(s) of the BAR',
    );
    // The BAR VMA's 16 special PTEs (pfn 0xfe000..0xfe00f) are gone after the revoke.
    const before = t.snapshots[0]!.processes[0]!;
    const bar = before.vmas.find((m) => m.file === '/dev/demo_bar')!;
    expect(bar.flags).toEqual(expect.arrayContaining(['VM_IO', 'VM_PFNMAP']));
    const barPtes = before.ptes.filter((e) => e.addr >= bar.start && e.addr < bar.end);
    expect(barPtes.map((e) => e.pfn)).toEqual(Array.from({ length: 16 }, (_, i) => 0xfe000 + i));
    expect(barPtes.every((e) => e.special && e.level === 'pte')).toBe(true);
    const after = t.snapshots.at(-1)!.processes[0]!;
    expect(after.ptes.filter((e) => e.addr >= bar.start && e.addr < bar.end)).toEqual([]);
  });
});
