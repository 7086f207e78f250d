/**
 * Trace snapshots: the IOMMU entries of every live domain, with the frame generation each
 * was made for, and frames flagged stale when their owner changed under a live entry.
 */
import { describe, expect, it } from 'vitest';
import { bootMachine, deviceByBdf } from './machine.js';
import { takeSnapshot } from './snapshot.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_paging_domain_alloc,
  iommu_map,
  type iommu_domain,
} from '../kernel/drivers/iommu/iommu.js';
import { alloc_page, __free_pages, GFP_KERNEL } from '../kernel/mm/page_alloc.js';
import { pfnsan_set_owner } from '../kernel/mm/pfnsan/pfnsan.js';

describe('takeSnapshot: IOMMU entries', () => {
  it('lists each mapping with its generation, and flags the frame once its owner changes', () => {
    const k = bootMachine({
      version: '6.18',
      ram: 2 ** 28,
      devices: [{ bdf: '0000:01:00.0', bars: [{ size: 2 ** 20 }] }],
    });
    const dev = deviceByBdf(k, '0000:01:00.0');
    const d = iommu_paging_domain_alloc(dev) as iommu_domain;
    const page = alloc_page(GFP_KERNEL)!;
    const pfn = page as unknown as number;
    pfnsan_set_owner(pfn, 1, { kind: 'driver', desc: 'test DMA buffer' });
    // iova 0x100000 -> the driver's buffer, read/write
    expect(
      k.run(iommu_map(d, 0x100000, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL)),
    ).toBe(0);
    const before = takeSnapshot(k, 0, []);
    const e = before.iommu.find((x) => x.domain === d.obj)!;
    expect(e).toMatchObject({ iova: 0x100000, pfn, prot: 'rw' });
    expect(before.frames.find((f) => f.pfn === pfn)).toMatchObject({ owner: 'test DMA buffer' });
    expect(before.frames.find((f) => f.pfn === pfn)!.stale).toBeUndefined();
    // The driver frees the buffer while the IOMMU entry is still live.
    __free_pages(page, 0);
    const after = takeSnapshot(k, 1, []);
    const f = after.frames.find((x) => x.pfn === pfn)!;
    expect(f.gen).toBeGreaterThan(e.gen);
    expect(f.stale).toBe(true);
  });
});
