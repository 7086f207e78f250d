import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import noPteSpecial from './no-pte-special.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';
import { expectDporCoversBruteForce } from './dpor.testlib.js';

describe('no-pte-special', () => {
  verdictTests(noPteSpecial, 'unsafe');
  verdictTests(noPteSpecial, 'fixed');
  replayTest(noPteSpecial, 'unsafe', '6.12');

  it('R-INS-1: the first fault of the COW PFNMAP BUGs in vmf_insert_pfn_prot', () => {
    const t = runScenario(variantOf(noPteSpecial, 'unsafe'), '5.10');
    expect(t.verdict).toBe('BUG');
    expect(t.log.map((l) => l.text).join('\n')).toMatch(/kernel BUG at mm\/memory\.c/);
  });

  it('R-VNP-3: fixed, app first: read of the pfn entry, COW of page 1, no bad page map', () => {
    // vm_pgoff = 0xfe000; the read returns the BAR byte; the write copies into an anon
    // page; the driver's zap (even_cows=1) removes both the pfn entry and the copy.
    const t = runScenario(variantOf(noPteSpecial, 'fixed'), '6.12', {}, '0');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes[0]!.text).toContain('vm_pgoff 0xfe000');
    expect(t.log.map((l) => l.text).join('\n')).not.toContain('Bad page map');
    const mid = t.snapshots.find((s) =>
      s.processes[0]!.ptes.some((e) => !e.special && e.pfn < 0xfe000),
    );
    expect(mid, 'a COWed anon page was mapped at some point').toBeDefined();
  });

  it('unsafe: the search explores every trace of the schedules with <= 3 preemptions, once', () => {
    // The app's fault BUGs before the driver has run; the driver's read of the PUD entry
    // the fault populates races with that write: driver first is another trace (the
    // explorer finds it from the crash's continuation).
    const r = expectDporCoversBruteForce(variantOf(noPteSpecial, 'unsafe'), '6.18', 3);
    expect(r.traces).toBeGreaterThanOrEqual(2);
  });
});
