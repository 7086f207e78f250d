/**
 * A model-only DMA engine: what a device does when it reads or writes memory at a DMA
 * address. Not a kernel file (drivers/dma/ holds the dmaengine framework, which the model
 * does not use); this is the hardware side the IOMMU and the DMA API exist for.
 *
 * Per call: one read Step of the function's config state (bus mastering must be on, the
 * function present and in D0; otherwise nothing is transferred and -EIO is returned).
 * Per 4 KiB page: one read Step of the IOMMU domain (`iommu_domain<id>`: the translation
 * through the IOTLB, then the page table), then one Step on the frame (`pfn<N>`, the same
 * object the CPU's accesses in arch/x86/mm/fault.ts use), then one read Step of the domain
 * when the request completes: a translated request is in flight until then, and an IOTLB
 * invalidation of its domain waits for it (the drain of VT-d's invalidation). A translation fault is logged as
 * intel-iommu's DMAR fault and ends the transfer (-EFAULT; the access is dropped). A frame
 * inside a PCI BAR (peer-to-peer) goes through drivers/pci/access.ts, which also reads the
 * peer's config state (disabled BAR: all ones / dropped). Accesses through an IOMMU entry
 * call pfnsan_access with the generation the entry recorded.
 *
 * @kernel (model hardware) drivers/iommu/intel/dmar.c:dmar_fault (the fault report)
 */
import type { Op } from '../../../sched/index.js';
import { EFAULT, EIO } from '../../include/linux/errno.js';
import { pfnsan_access } from '../../mm/pfnsan/pfnsan.js';
import type { device } from '../base/core.js';
import {
  dmar_fault_report,
  iommu_get_domain_for_dev,
  iommu_hw_translate,
  __IOMMU_DOMAIN_PAGING,
} from '../iommu/iommu.js';
import { mmio_or_phys_read, mmio_or_phys_write, pci_bar_lookup } from '../pci/access.js';
import { PCI_COMMAND_MASTER, PCI_D0, pci_dev } from '../pci/pci.js';

/** The outcome of a DMA transfer. */
export interface dma_engine_result {
  /** 0, -EFAULT (IOMMU fault), -EIO (the device cannot master the bus). */
  readonly ret: number;
  /** Bytes transferred before the end or the fault. */
  readonly done: number;
  /** For reads: the bytes read (length `done`). */
  readonly data: Uint8Array;
  /** The DMA address that faulted, if any. */
  readonly fault_addr?: number;
}

/** The Step object of a physical frame (shared with the CPU's accesses). */
export function frame_obj(pfn: number): string {
  return `pfn${pfn}`;
}

/**
 * dma_engine_access(dev, dma_addr, len, dir, data?): the device reads (`dir` 'read': from
 * memory into the device) or writes (`dir` 'write': `data` into memory) `len` bytes at
 * dma_addr.
 * Locking: none (hardware).
 * Return: the result, never thrown.
 */
export function* dma_engine_access(
  dev: device,
  dma_addr: number,
  len: number,
  dir: 'read' | 'write',
  data?: Uint8Array,
): Op<dma_engine_result> {
  const write = dir === 'write';
  if (write && (!data || data.length < len)) {
    throw new Error('dma_engine_access: a write needs `data` of at least `len` bytes');
  }
  const out = new Uint8Array(write ? 0 : len);
  if (dev instanceof pci_dev) {
    yield { obj: dev.cfg_obj, kind: 'read', what: 'dma_engine_access: bus master' };
    if (!dev.present || dev.hw_power !== PCI_D0 || !(dev.command & PCI_COMMAND_MASTER)) {
      return { ret: -EIO, done: 0, data: out.subarray(0, 0) };
    }
  }
  const source_id = dev instanceof pci_dev ? dev.source_id : (dev.iommu?.source_id ?? 0);
  let done = 0;
  while (done < len) {
    const addr = dma_addr + done;
    const n = Math.min(4096 - (addr % 4096), len - done);
    const domain = iommu_get_domain_for_dev(dev);
    let pa = addr;
    let gen: number | null = null;
    if (domain) {
      yield { obj: domain.obj, kind: 'read', what: 'dma translate' };
      const t = iommu_hw_translate(domain, addr, write);
      if ('fault_reason' in t) {
        dmar_fault_report(source_id, addr - (addr % 4096), write, t.fault_reason, domain.id);
        return { ret: -EFAULT, done, data: out.subarray(0, write ? 0 : done), fault_addr: addr };
      }
      pa = t.pte.pfn * 4096 + (addr % 4096);
      if (domain.type & __IOMMU_DOMAIN_PAGING) gen = t.pte.gen;
      // The request is in flight until its memory access completes; an IOTLB invalidation
      // of the domain drains it first (iommu_iotlb_sync waits for inflight to reach 0).
      domain.inflight++;
    }
    const pfn = Math.floor(pa / 4096);
    yield { obj: frame_obj(pfn), kind: write ? 'write' : 'read', what: 'dma_engine_access' };
    const bar = pci_bar_lookup(pfn);
    if (bar) yield { obj: bar.cfg_obj, kind: 'read', what: 'dma_engine_access: p2p BAR decode' };
    const who = `DMA from ${dev.name}`;
    if (gen !== null) {
      pfnsan_access(pfn, gen, dir, `IOMMU domain ${domain!.id} iova 0x${addr.toString(16)}`);
    }
    if (write) mmio_or_phys_write(pa, data!.subarray(done, done + n), who);
    else out.set(mmio_or_phys_read(pa, n, who), done);
    if (domain) {
      yield { obj: domain.obj, kind: 'read', what: 'dma request complete' };
      domain.inflight--;
    }
    done += n;
  }
  return { ret: 0, done, data: out };
}
