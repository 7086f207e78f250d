/**
 * The DMA engine through the IOMMU: DMA reaches the mapped frame; after iommu_unmap it
 * faults with intel-iommu's DMAR message (per version); lazy dma_unmap leaves a stale
 * IOTLB entry until the flush queue is flushed; peer-to-peer DMA into a BAR; bus mastering.
 * Machine: 4 GiB RAM; 0000:01:00.0 BAR0 1 MiB at 0x180000000 (pfn 0x180000);
 * 0000:02:00.0 BAR0 4 KiB at 0x180100000 (pfn 0x180100).
 */
import { describe, expect, it } from 'vitest';
import { pci_boot_machine as bootMachine, pci_dev_by_bdf as deviceByBdf } from '../pci/probe.js';
import { dmesg } from '../../kernel/printk.js';
import { alloc_page, GFP_KERNEL } from '../../mm/page_alloc.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import type { Op } from '../../../sched/index.js';
import { since } from '../../version.js';
import {
  DMA_BIDIRECTIONAL,
  DMA_BIT_MASK,
  DMA_TO_DEVICE,
} from '../../include/linux/dma-direction.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  dmar_faults,
  iommu_attach_group,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_domain_alloc,
  iommu_unmap,
  type iommu_domain,
} from '../iommu/iommu.js';
import { fq_flush_timeout, iommu_dma_fq_pending } from '../iommu/dma-iommu.js';
import {
  dma_map_page_attrs,
  dma_map_resource,
  dma_set_mask_and_coherent,
  dma_unmap_page_attrs,
} from '../../kernel/dma/mapping.js';
import {
  pci_enable_device_mem,
  pci_set_master,
  PCI_COMMAND_MEMORY,
  pci_write_config_word,
  PCI_COMMAND,
} from '../pci/pci.js';
import { pci_disabled_bar_accesses } from '../pci/access.js';
import { dma_engine_access } from './engine.js';

const bytes = (...b: number[]) => new Uint8Array(b);

function boot(version: string, strict = true) {
  const k = bootMachine({
    version,
    config: { CONFIG_IOMMU_DEFAULT_DMA_STRICT: strict },
    devices: [
      { bdf: '0000:01:00.0', bars: [{ size: 0x100000 }] },
      { bdf: '0000:02:00.0', bars: [{ size: 0x1000 }] },
    ],
  });
  const a = deviceByBdf(k, '0000:01:00.0');
  const b = deviceByBdf(k, '0000:02:00.0');
  k.run(
    (function* () {
      for (const d of [a, b]) {
        yield* pci_enable_device_mem(d);
        yield* pci_set_master(d);
      }
    })(),
  );
  return { k, a, b };
}

function unmanaged(k: ReturnType<typeof boot>['k'], a: ReturnType<typeof boot>['a']): iommu_domain {
  const d = since(6, 11)
    ? (iommu_paging_domain_alloc(a) as iommu_domain)
    : iommu_domain_alloc(a.bus)!;
  expect(k.run(iommu_attach_group(d, a.iommu_group!))).toBe(0);
  return d;
}

function* map(d: iommu_domain, iova: number, pa: number, size: number, prot: number): Op<number> {
  return since(6, 3)
    ? yield* iommu_map(d, iova, pa, size, prot, GFP_KERNEL)
    : yield* iommu_map(d, iova, pa, size, prot);
}

describe('dma_engine_access', () => {
  it('DMA through an IOMMU mapping reaches the mapped frame (write, then read back)', () => {
    const { k, a } = boot('6.12');
    const d = unmanaged(k, a);
    const p = alloc_page(GFP_KERNEL)!;
    k.run(map(d, 0x10000, p * 4096, 0x1000, IOMMU_READ | IOMMU_WRITE));
    // device writes 4 bytes at iova 0x10010 -> frame p offset 0x10
    const w = k.run(dma_engine_access(a, 0x10010, 4, 'write', bytes(1, 2, 3, 4)));
    expect(w.ret).toBe(0);
    expect([...phys_read(p * 4096 + 0x10, 4)]).toEqual([1, 2, 3, 4]);
    phys_write(p * 4096 + 0x20, bytes(9));
    const r = k.run(dma_engine_access(a, 0x10020, 1, 'read'));
    expect(r).toMatchObject({ ret: 0, done: 1 });
    expect(r.data[0]).toBe(9);
  });

  it('a read-only mapping refuses device writes: DMAR fault reason 05, nothing written', () => {
    const { k, a } = boot('6.12');
    const d = unmanaged(k, a);
    const p = alloc_page(GFP_KERNEL)!;
    k.run(map(d, 0x10000, p * 4096, 0x1000, IOMMU_READ));
    const w = k.run(dma_engine_access(a, 0x10000, 1, 'write', bytes(7)));
    expect(w.ret).toBe(-14);
    expect(phys_read(p * 4096, 1)[0]).toBe(0);
    expect(dmesg()).toContain(
      'DMAR: [DMA Write NO_PASID] Request device [01:00.0] fault addr 0x10000 [fault reason 0x05] PTE Write access is not set',
    );
  });

  for (const [v, line] of [
    [
      '5.10',
      'DMAR: [DMA Read] Request device [01:00.0] PASID ffffffff fault addr 10000 [fault reason 06] PTE Read access is not set',
    ],
    [
      '5.13',
      'DMAR: [DMA Read NO_PASID] Request device [0x01:0x00.0] fault addr 0x10000 [fault reason 0x06] PTE Read access is not set',
    ],
    [
      '6.12',
      'DMAR: [DMA Read NO_PASID] Request device [01:00.0] fault addr 0x10000 [fault reason 0x06] PTE Read access is not set',
    ],
  ] as const) {
    it(`(${v}) DMA after iommu_unmap faults (iommu_unmap syncs the IOTLB) with the DMAR message of the version`, () => {
      const { k, a } = boot(v);
      const d = unmanaged(k, a);
      const p = alloc_page(GFP_KERNEL)!;
      k.run(map(d, 0x10000, p * 4096, 0x1000, IOMMU_READ | IOMMU_WRITE));
      expect(k.run(dma_engine_access(a, 0x10000, 8, 'read')).ret).toBe(0); // fills the IOTLB
      expect(d.iotlb.has(0x10)).toBe(true);
      expect(k.run(iommu_unmap(d, 0x10000, 0x1000))).toBe(0x1000);
      expect(d.iotlb.has(0x10)).toBe(false);
      const r = k.run(dma_engine_access(a, 0x10000, 8, 'read'));
      expect(r).toMatchObject({ ret: -14, done: 0, fault_addr: 0x10000 });
      expect(dmesg()).toContain('DMAR: DRHD: handling fault status reg 2');
      expect(dmesg()).toContain(line);
      expect(dmar_faults()).toEqual([
        { source_id: 0x100, addr: 0x10000, write: false, fault_reason: 6, domain: d.id },
      ]);
    });
  }

  it('without bus mastering (or after the function left D0) the device transfers nothing: -EIO', () => {
    const { k, b } = boot('6.12');
    k.run(pci_write_config_word(b, PCI_COMMAND, PCI_COMMAND_MEMORY));
    expect(k.run(dma_engine_access(b, 0x1000, 4, 'read')).ret).toBe(-5);
  });
});

describe('dma_unmap_page_attrs (dma-iommu strict and lazy)', () => {
  function mapped(strict: boolean) {
    const { k, a } = boot('6.12', strict);
    expect(dma_set_mask_and_coherent(a, DMA_BIT_MASK(64))).toBe(0);
    const p = alloc_page(GFP_KERNEL)!;
    phys_write(p * 4096, bytes(0x5a));
    const iova = k.run(dma_map_page_attrs(a, p, 0, 4096, DMA_BIDIRECTIONAL));
    // SAC first: the first 1-page IOVA is the top page below 4 GiB
    expect(iova).toBe(0xfffff000);
    expect(k.run(dma_engine_access(a, iova, 1, 'read')).data[0]).toBe(0x5a);
    return { k, a, p, iova, dom: a.iommu_group!.default_domain! };
  }

  it('strict: after dma_unmap the DMA faults at once', () => {
    const { k, a, iova } = mapped(true);
    k.run(dma_unmap_page_attrs(a, iova, 4096, DMA_BIDIRECTIONAL));
    expect(k.run(dma_engine_access(a, iova, 1, 'read')).ret).toBe(-14);
  });

  it('lazy (DMA_FQ): the stale IOTLB entry still reaches the old frame until the flush queue is flushed', () => {
    const { k, a, p, iova, dom } = mapped(false);
    k.run(dma_unmap_page_attrs(a, iova, 4096, DMA_BIDIRECTIONAL));
    expect(dom.pt.has(iova / 4096)).toBe(false); // page table cleared
    expect(iommu_dma_fq_pending(dom)).toEqual([{ iova_pfn: 0xfffff, pages: 1 }]);
    // the frame is reused by someone else; the device still writes into it
    const w = k.run(dma_engine_access(a, iova, 1, 'write', bytes(0xee)));
    expect(w.ret).toBe(0);
    expect(phys_read(p * 4096, 1)[0]).toBe(0xee);
    // while queued the IOVA is not handed out again
    const p2 = alloc_page(GFP_KERNEL)!;
    expect(k.run(dma_map_page_attrs(a, p2, 0, 4096, DMA_TO_DEVICE))).toBe(0xffffe000);
    k.run(fq_flush_timeout(dom));
    expect(iommu_dma_fq_pending(dom)).toEqual([]);
    expect(k.run(dma_engine_access(a, iova, 1, 'write', bytes(1))).ret).toBe(-14);
  });
});

describe('peer-to-peer DMA (dma_map_resource into a BAR)', () => {
  it("device A writes into B's BAR0 through the IOMMU; with B's memory decoding off the write is dropped", () => {
    const { k, a, b } = boot('6.12');
    expect(dma_set_mask_and_coherent(a, DMA_BIT_MASK(64))).toBe(0);
    const barB = b.resource[0]!.start; // 0x180100000
    expect(barB).toBe(0x180100000);
    const dma = k.run(dma_map_resource(a, barB, 0x1000, DMA_BIDIRECTIONAL));
    expect(dma).toBe(0xfffff000);
    expect(k.run(dma_engine_access(a, dma + 8, 2, 'write', bytes(0xab, 0xcd))).ret).toBe(0);
    expect([...phys_read(barB + 8, 2)]).toEqual([0xab, 0xcd]);
    // B's COMMAND.MEMORY off: reads all ones, writes dropped
    k.run(pci_write_config_word(b, PCI_COMMAND, 0));
    const before = pci_disabled_bar_accesses();
    expect(k.run(dma_engine_access(a, dma + 8, 2, 'write', bytes(1, 1))).ret).toBe(0);
    expect([...phys_read(barB + 8, 2)]).toEqual([0xab, 0xcd]);
    expect([...k.run(dma_engine_access(a, dma + 8, 2, 'read')).data]).toEqual([0xff, 0xff]);
    expect(pci_disabled_bar_accesses()).toBe(before + 2);
  });

  it('before v5.16 dma_map_resource refuses RAM (WARN_ON_ONCE(pfn_valid)); from v5.16 it maps it', () => {
    const old = boot('5.15');
    const p = alloc_page(GFP_KERNEL)!;
    expect(old.k.run(dma_map_resource(old.a, p * 4096, 0x1000, DMA_BIDIRECTIONAL))).toBe(2 ** 64);
    const nw = boot('6.1');
    const q = alloc_page(GFP_KERNEL)!;
    expect(nw.k.run(dma_map_resource(nw.a, q * 4096, 0x1000, DMA_BIDIRECTIONAL))).toBe(0xfffff000);
  });
});
