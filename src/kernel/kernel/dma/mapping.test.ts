/**
 * The DMA API: dma-direct without an IOMMU, dma-iommu with one, dma_map_sgtable,
 * dma_alloc_coherent from the device's CMA area.
 * Machine: 4 GiB RAM, CMA area "dev" of 16 MiB at 0x10000000 (pfn 0x10000).
 */
import { describe, expect, it } from 'vitest';
import {
  pci_boot_machine as bootMachine,
  pci_dev_by_bdf as deviceByBdf,
} from '../../drivers/pci/probe.js';
import { alloc_page, GFP_KERNEL } from '../../mm/page_alloc.js';
import type { page } from '../../include/linux/mm_types.js';
import {
  DMA_BIDIRECTIONAL,
  DMA_BIT_MASK,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
} from '../../include/linux/dma-direction.js';
import { DMA_ATTR_FORCE_CONTIGUOUS } from '../../include/linux/dma-direction.js';
import { KernelBug } from '../panic.js';
import {
  dma_alloc_coherent,
  dma_free_coherent,
  dma_map_page_attrs,
  dma_map_sgtable,
  dma_mapping_error,
  dma_set_mask_and_coherent,
  dma_unmap_sgtable,
  sg_alloc_table_from_pages,
} from './mapping.js';
import { iommu_iova_to_phys } from '../../drivers/iommu/iommu.js';

function boot(iommu: boolean) {
  const k = bootMachine({
    version: '6.12',
    iommu,
    cma: [{ name: 'dev', base: 0x10000000, size: 16 * 2 ** 20 }],
    devices: [{ bdf: '0000:01:00.0', bars: [], cma: 'dev' }],
  });
  return { k, pdev: deviceByBdf(k, '0000:01:00.0') };
}

describe('dma_map_page_attrs', () => {
  it('dma-direct (no IOMMU): the bus address is the physical address; beyond the 32-bit mask ⇒ DMA_MAPPING_ERROR', () => {
    const { k, pdev } = boot(false);
    // pfn 0x150000 lies above 4 GiB (RAM 0x100000000..0x180000000)
    const high = 0x150000 as page;
    expect(k.run(dma_map_page_attrs(pdev, high, 0x10, 64, DMA_TO_DEVICE))).toBe(DMA_MAPPING_ERROR);
    expect(dma_mapping_error(pdev, DMA_MAPPING_ERROR)).toBe(-12);
    expect(dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(64))).toBe(0);
    expect(k.run(dma_map_page_attrs(pdev, high, 0x10, 64, DMA_TO_DEVICE))).toBe(0x150000010);
  });

  it('an invalid direction is a BUG', () => {
    const { k, pdev } = boot(true);
    const p = alloc_page(GFP_KERNEL)!;
    expect(() => k.run(dma_map_page_attrs(pdev, p, 0, 64, 3))).toThrow(KernelBug);
  });

  it('with an IOMMU: IOVAs top-down below 4 GiB, offset kept, mapped to the frame', () => {
    const { k, pdev } = boot(true);
    const p = alloc_page(GFP_KERNEL)!;
    const a = k.run(dma_map_page_attrs(pdev, p, 0x80, 0x100, DMA_BIDIRECTIONAL));
    expect(a).toBe(0xfffff080);
    expect(iommu_iova_to_phys(pdev.iommu_group!.default_domain!, a)).toBe(p * 4096 + 0x80);
  });
});

describe('dma_map_sgtable / dma_unmap_sgtable', () => {
  it('maps each entry (one segment each) and unmaps them', () => {
    const { k, pdev } = boot(true);
    const pages = [alloc_page(GFP_KERNEL)!, alloc_page(GFP_KERNEL)!];
    const sgt = sg_alloc_table_from_pages(pages, 0, 8192);
    expect(k.run(dma_map_sgtable(pdev, sgt, DMA_BIDIRECTIONAL))).toBe(0);
    expect(sgt.nents).toBe(2);
    const dom = pdev.iommu_group!.default_domain!;
    expect(iommu_iova_to_phys(dom, sgt.sgl[1]!.dma_address)).toBe(pages[1]! * 4096);
    k.run(dma_unmap_sgtable(pdev, sgt, DMA_BIDIRECTIONAL));
    expect(dom.pt.size).toBe(0);
  });
});

describe('dma_alloc_coherent / dma_free_coherent', () => {
  it('dma-direct takes the device CMA area (pfns 0x10000..0x10fff); freeing gives them back', () => {
    const { k, pdev } = boot(false);
    const buf = k.run(dma_alloc_coherent(pdev, 0x4000, GFP_KERNEL))!;
    expect(buf.cpu_addr).toBeGreaterThanOrEqual(0x10000);
    expect(buf.cpu_addr + 3).toBeLessThan(0x11000);
    expect(buf.dma_handle).toBe(buf.cpu_addr * 4096);
    expect(pdev.cma_area!.bitmap[buf.cpu_addr - 0x10000]).toBe(1);
    k.run(dma_free_coherent(pdev, buf));
    expect(pdev.cma_area!.bitmap[buf.cpu_addr - 0x10000]).toBe(0);
  });

  it('IOMMU + FORCE_CONTIGUOUS: CMA frames mapped at one IOVA; without it: separate pages (remap path)', () => {
    const { k, pdev } = boot(true);
    const dom = pdev.iommu_group!.default_domain!;
    const c = k.run(dma_alloc_coherent(pdev, 0x2000, GFP_KERNEL, DMA_ATTR_FORCE_CONTIGUOUS))!;
    expect(c.cpu_addr).toBeGreaterThanOrEqual(0x10000);
    expect(iommu_iova_to_phys(dom, c.dma_handle + 0x1000)).toBe((c.cpu_addr + 1) * 4096);
    const r = k.run(dma_alloc_coherent(pdev, 0x2000, GFP_KERNEL))!;
    expect(r.remap).toBe(true);
    expect(iommu_iova_to_phys(dom, r.dma_handle + 0x1000)).toBe(r.pages[1]! * 4096);
    k.run(dma_free_coherent(pdev, c));
    k.run(dma_free_coherent(pdev, r));
    expect(dom.pt.size).toBe(0);
  });
});
