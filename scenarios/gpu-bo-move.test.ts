/**
 * gpu-bo-move: both variants' verdicts on every version, and the replay of the unsafe
 * variant where the move and BO 2's creation run between the lookup and the device write.
 *
 * Machine (gpu-bo-move.ts): pfngpu VRAM pfns 0x180040-0x18007f; BO 1 = pfns
 * 0x180040-0x180041, the lookup's pfn 0x180041; the second device maps it at IOVA
 * 0x100000. Rules: R-FPM-3, R-LEG-1, R-LEG-2 (the pfn is valid only inside the lookup's
 * window), R-REV-4 (ttm_bo_unmap_virtual on a move, old pfns reused at once), R-MMUN-4
 * (dma-buf with move_notify as the safe path).
 */
import { describe, expect, it } from 'vitest';
import { checkScenario, concreteScenarios, expectedFor, runScenario } from '../src/index.js';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';
import gpuBoMove from './gpu-bo-move.js';

const [unsafe, fixed] = concreteScenarios(gpuBoMove);

describe('gpu-bo-move: verdict per version', () => {
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

describe('gpu-bo-move: replays', () => {
  it('R-FPM-3, R-REV-4 (6.12): pfn 0x180041 mapped after follow_pfnmap_end (stale-pfn), then BO 2 owns it when the device writes (cross-owner)', () => {
    // other (tid 1): lookup, iommu_map (9 steps); user (tid 0): GEM_MOVE, GEM_CREATE; other: DMA.
    const t = runScenario(unsafe!, '6.12', {}, '1*9.0*21.1', { snapshots: false });
    expect(t.reports.map((r) => [r.code, r.pfn])).toEqual([
      ['stale-pfn', 0x180041],
      ['cross-owner', 0x180041],
    ]);
    expect(t.reports[0]!.ended?.what).toBe('follow_pfnmap_end');
    expect(t.reports[1]!.text.join('\n')).toMatch(
      /pfngpu BO 1 \(VRAM\)[\s\S]*pfngpu BO 2 \(VRAM\)/,
    );
  });

  it('R-LEG-2 (5.10): follow_pfn drops the PTE lock before returning; the iommu_map of its pfn is stale-pfn', () => {
    const t = runScenario(unsafe!, '5.10', {}, '1', { snapshots: false });
    expect(t.verdict).toBe('stale-pfn');
    expect(t.notes.map((n) => n.text)).toContain('follow_pfn: pfn 0x180041');
  });

  it('R-MMUN-4 (6.12): after the move, the importer maps the new placement and writes BO 1 in system memory', () => {
    const t = runScenario(fixed!, '6.12', {}, '', { snapshots: false });
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toEqual(
      expect.arrayContaining([
        'GEM_MOVE BO 1 -> system: 0',
        'pfnimp DMA write at BO offset 0x1000: done',
      ]),
    );
    const dmaFrame = t.steps.find((s) => s.thread === 'other' && s.what === 'dma_engine_access');
    expect(dmaFrame?.obj).not.toBe(`pfn${0x180041}`);
  });
});
