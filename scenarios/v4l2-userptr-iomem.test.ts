/**
 * v4l2-userptr-iomem: both variants' verdicts on every version, and the replay of the
 * unsafe variant on 5.10 (the CMA frame 0x20000 freed and faulted into 'victim' at
 * 0x50000000 before the capture) and on 6.1 (QBUF refused).
 *
 * Rules: R-FV-1 (frame vectors: the pfn path of VM_IO|VM_PFNMAP mappings until 6.1),
 * R-REV-5 (freed CMA frames are reused at once), R-GUP-8 (FOLL_LONGTERM pins).
 */
import { describe, expect, it } from 'vitest';
import { checkScenario, concreteScenarios, expectedFor, runScenario } from '../src/index.js';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';
import v4l2 from './v4l2-userptr-iomem.js';

const [unsafe, fixed] = concreteScenarios(v4l2);

describe('v4l2-userptr-iomem: verdict per version', () => {
  for (const c of [unsafe!, fixed!]) {
    it(`${c.id}: every version gives the expected verdict`, () => {
      for (const v of SUPPORTED_VERSIONS) {
        const r = checkScenario(c, v, { minimize: 'never', trace: false });
        expect([v, r.verdict]).toEqual([v, expectedFor(c, v)[0]]);
        expect(r.matches).toBe(true);
        if (r.verdict === 'SAFE') expect(r.complete).toBe(true);
      }
    });
  }
});

describe('v4l2-userptr-iomem: replays', () => {
  it("R-FV-1, R-REV-5 (5.10): the frame vector's pfn 0x20000 is used after follow_pfn; the capture writes victim's page (cross-owner)", () => {
    // owner, then victim, then the capture (each to completion).
    const t = runScenario(unsafe!, '5.10', {}, '', { snapshots: false });
    expect(t.verdict).toBe('stale-pfn');
    expect(t.reports.map((r) => [r.code, r.pfn])).toEqual([
      ['stale-pfn', 0x20000],
      ['stale-pfn', 0x20000],
      ['cross-owner', 0x20000],
    ]);
    expect(t.reports[2]!.thread).toBe('capture');
    expect(t.reports[2]!.text.join('\n')).toMatch(/anon memory of pid \d+ \(victim\)/);
  });

  it('R-FV-1 (6.1): QBUF of the VM_IO|VM_PFNMAP buffer is -EFAULT; nothing is captured', () => {
    const t = runScenario(unsafe!, '6.1', {}, '', { snapshots: false });
    expect(t.verdict).toBe('SAFE');
    expect(t.notes[0]!.text).toMatch(/QBUF -EFAULT$/);
    expect(t.notes.at(-1)!.text).toBe('pfncap captured a frame: no buffer queued');
  });

  it('R-GUP-8 (6.12): the pinned anonymous buffer outlives munmap; the capture writes it, not victim', () => {
    const t = runScenario(fixed!, '6.12', {}, '', { snapshots: false });
    expect(t.verdict).toBe('SAFE');
    expect(t.reports).toEqual([]);
    expect(t.notes.at(-1)!.text).toBe('pfncap captured a frame: done');
  });
});
