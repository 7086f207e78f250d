/**
 * vfio-type1-bar: every variant's verdict on every version (checkScenario), and one replay
 * per unsafe variant showing the harm after the stale-pfn at MAP_DMA.
 *
 * Machine (vfio-common.ts): A = 0000:01:00.0, BAR0 pfns 0x180000-0x180003 mapped at
 * 0x40000000 and at IOVA 0x100000; B = 0000:02:00.0 writes at IOVA 0x101000 (pfn 0x180001).
 *
 * Rules: R-VT1-2/R-VT1-3 (type1 keeps raw PFNMAP pfns after follow_fault_pfn's window),
 * R-VPCI-2/R-VPCI-4 (vfio-pci zaps CPU PTEs only), R-RFC-1 (the RFC drops mappings on
 * VFIO_DEVICE_RELEASE; strict_mmio_maps refuses non-vfio PFNMAP VMAs).
 */
import { describe, expect, it } from 'vitest';
import { checkScenario, concreteScenarios, expectedFor, runScenario } from '../src/index.js';
import type { ConcreteScenario } from '../src/index.js';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';
import { vfioType1BarScenarios } from './vfio-type1-bar.js';

const all = vfioType1BarScenarios.flatMap((s) => concreteScenarios(s));
const byId = (id: string): ConcreteScenario => all.find((c) => c.id === id)!;

/**
 * Cells where the model's verdict differs from the rules' (reported, not bent):
 * - release/fixed: the model's RFC device notifier chain is an rwsem (a blocking chain);
 *   RFC 06/10 uses an srcu_notifier_head, whose register does not wait for readers, so
 *   MAP_DMA (iommu->lock -> chain register) and VFIO_DEVICE_RELEASE (chain read ->
 *   iommu->lock) form no cycle in the RFC: pfnsan's lock-cycle here is the model's.
 * - disable/fixed, reset/fixed: drivers/dma/engine.ts translates a DMA in one Step and
 *   writes the frame in later Steps, and iommu_iotlb_sync does not wait for such
 *   in-flight requests (intel-iommu invalidates with drain-read/drain-write), so a DMA
 *   translated before UNMAP_DMA lands after it, on the disabled BAR.
 */
describe('vfio-type1-bar: verdict per version', () => {
  for (const c of all) {
    it(`${c.id}: every version gives the expected verdict`, () => {
      for (const v of SUPPORTED_VERSIONS) {
        const r = checkScenario(c, v, { minimize: 'never', trace: false });
        const want = expectedFor(c, v);
        if (want[0] === 'n/a') {
          expect(r.mode).toBe('skipped');
          continue;
        }
        expect([v, r.verdict, r.matches]).toEqual([v, r.verdict, true]);
        if (r.verdict === 'SAFE') expect(r.complete).toBe(true);
      }
    });
  }
});

describe('vfio-type1-bar: replays of the unsafe variants', () => {
  it('R-VT1-3, R-VPCI-4 disable/unsafe 5.10: stale-pfn at MAP_DMA (pfn 0x180000), then B writes the disabled BAR (pfn 0x180001)', () => {
    // user (tid 0) clears COMMAND first, then B's DMA (tid 1).
    const t = runScenario(byId('vfio-type1-bar-disable/unsafe'), '5.10', {}, '0*20', {
      snapshots: false,
    });
    expect(t.verdict).toBe('stale-pfn');
    expect(t.reports.map((r) => r.code)).toEqual(['stale-pfn', 'disabled-bar']);
    expect(t.reports[0]!.pfn).toBe(0x180000);
    expect(t.reports[0]!.used.path[0]).toMatch(/^__iommu_map/);
    expect(t.reports[1]!.pfn).toBe(0x180001);
    expect(t.reports[1]!.thread).toBe('dma');
  });

  it('R-VPCI-2 reset/unsafe 6.12: the DMA inside the reset window reaches the BAR with decoding off', () => {
    const r = checkScenario(byId('vfio-type1-bar-reset/rfc'), '6.12', {});
    expect(r.verdict).toBe('disabled-bar');
    const t = runScenario(
      byId('vfio-type1-bar-reset/unsafe'),
      '6.12',
      {},
      r.counterexample!.schedule,
      {
        snapshots: false,
      },
    );
    expect(t.reports.map((x) => x.code)).toEqual(['stale-pfn', 'disabled-bar']);
    expect(t.reports[1]!.text.join('\n')).toMatch(/disabled-bar write of BAR0 of 0000:01:00\.0/);
  });

  it('R-VPCI-4 release/unsafe 6.12: after A is bound to hostdrv, B writes pfn 0x180001 through the old IOMMU entry (cross-owner)', () => {
    // The user's whole release (47 steps), then B's DMA.
    const t = runScenario(byId('vfio-type1-bar-release/unsafe'), '6.12', {}, '0*47', {
      snapshots: false,
    });
    expect(t.verdict).toBe('stale-pfn');
    expect(t.reports.map((r) => r.code)).toEqual(['stale-pfn', 'cross-owner']);
    const x = t.reports[1]!;
    expect(x.pfn).toBe(0x180001);
    expect(x.text.join('\n')).toMatch(
      /BAR0 of 0000:01:00\.0 \(vfio-pci\).*\n?.*BAR0 of 0000:01:00\.0 \(hostdrv\)/,
    );
  });

  it('R-RFC-1 release/fixed 6.12: VFIO_DEVICE_RELEASE removed the mapping, B faults (-EFAULT); no report', () => {
    const t = runScenario(byId('vfio-type1-bar-release/fixed'), '6.12', {}, '0*47', {
      snapshots: false,
    });
    expect(t.notes.map((n) => n.text)).toContain("B's DMA write at iova 0x101000: -EFAULT");
    expect(t.reports).toEqual([]);
    expect(t.verdict).toBe('SAFE');
  });

  it('R-RFC-1 nonvfio-pfnmap/unsafe 6.12: the freed, reallocated frame pfn 0x100401 is written through the IOMMU (cross-owner)', () => {
    const t = runScenario(byId('vfio-type1-nonvfio-pfnmap/unsafe'), '6.12', {}, '0*17', {
      snapshots: false,
    });
    expect(t.reports.map((r) => r.code)).toEqual(['stale-pfn', 'cross-owner']);
    expect(t.reports[1]!.thread).toBe('dma');
  });

  it('R-RFC-1 nonvfio-pfnmap/fixed 6.12: strict_mmio_maps refuses the MAP_DMA (-ENODEV)', () => {
    const t = runScenario(byId('vfio-type1-nonvfio-pfnmap/fixed'), '6.12', {}, '', {
      snapshots: false,
    });
    expect(t.verdict).toBe('SAFE');
    expect(t.notes[0]!.text).toMatch(/MAP_DMA at iova 0x100000: -ENODEV$/);
  });
});
