/**
 * The DMA API on top of an IOMMU domain (drivers/iommu/dma-iommu.c): each mapping takes an
 * IOVA range from the domain's iova_domain and maps it with iommu_map; each unmap clears
 * the entries and either syncs the IOTLB at once (strict) or queues the IOVA range on the
 * flush queue (lazy, IOMMU_DOMAIN_DMA_FQ), where it stays allocated, with its IOTLB
 * entries possibly still live, until the queue is flushed: when it fills up
 * (IOVA_FQ_SIZE entries) or when its timer fires after IOVA_FQ_TIMEOUT ms. The model has
 * no timers: {@link fq_flush_timeout} is the timer's callback, run by a scenario thread.
 *
 * Left out: swiotlb bounce buffers for untrusted devices, deferred attach, per-CPU flush
 * queues (one queue per domain), the 6.7+ adaptive queue sizes, iommu_dma_forcedac, MSI
 * pages, scatterlist segment merging (__finalise_sg: each sg entry keeps its own DMA
 * segment), the remap (vmap) allocation path of dma_alloc_coherent.
 *
 * @kernel drivers/iommu/dma-iommu.c, drivers/iommu/iova.c (flush queue until v5.15)
 *   (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { WARN_ON } from '../../kernel/panic.js';
import {
  DMA_MAPPING_ERROR,
  DMA_BIT_MASK,
  DMA_ATTR_PRIVILEGED,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
} from '../../include/linux/dma-direction.js';
import type { device } from '../base/core.js';
import {
  __iommu_map,
  __IOMMU_DOMAIN_DMA_FQ,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_flush_iotlb_all,
  iommu_iotlb_gather_init,
  iommu_iotlb_sync,
  iommu_unmap_fast,
  type iommu_domain,
  type iommu_iotlb_gather,
} from './iommu.js';
import {
  alloc_iova_fast,
  free_iova_fast,
  init_iova_domain,
  iova_align,
  iova_offset,
  iova_shift,
  type iova_domain,
} from './iova.js';

/** IOVA_FQ_SIZE: entries of a flush queue (until v6.7's adaptive sizes). */
export const IOVA_FQ_SIZE = 256;
/** IOVA_FQ_TIMEOUT: ms until the flush timer fires. */
export const IOVA_FQ_TIMEOUT = 10;
/** GFP_ATOMIC (__GFP_HIGH | __GFP_KSWAPD_RECLAIM). */
export const GFP_ATOMIC = 0x20 | 0x800;

/** One queued IOVA range waiting for the IOTLB flush. */
export interface iova_fq_entry {
  readonly iova_pfn: number;
  readonly pages: number;
}

/**
 * struct iommu_dma_cookie: the domain's IOVA allocator and flush queue.
 * @kernel drivers/iommu/dma-iommu.c:struct iommu_dma_cookie (all versions)
 */
export interface iommu_dma_cookie {
  readonly iovad: iova_domain;
  readonly fq: iova_fq_entry[];
}

/**
 * iommu_get_dma_cookie(domain) + iommu_dma_init_domain(): gives a DMA-API domain its IOVA
 * allocator (granule 4 KiB, base pfn 1).
 * @kernel drivers/iommu/dma-iommu.c:iommu_get_dma_cookie, iommu_dma_init_domain (all versions)
 */
export function iommu_get_dma_cookie(domain: iommu_domain): iommu_dma_cookie {
  const base_pfn = Math.max(1, Math.floor(domain.geometry.aperture_start / 4096));
  const c: iommu_dma_cookie = { iovad: init_iova_domain(4096, base_pfn), fq: [] };
  domain.iova_cookie = c;
  return c;
}

/** iommu_get_dma_domain(dev): the group's default domain. @kernel drivers/iommu/iommu.c:iommu_get_dma_domain (all versions) */
export function iommu_get_dma_domain(dev: device): iommu_domain | null {
  return dev.iommu_group?.default_domain ?? null;
}

/**
 * dma_info_to_prot(dir, coherent, attrs): IOMMU prot for a DMA direction.
 * @kernel drivers/iommu/dma-iommu.c:dma_info_to_prot (all versions)
 * Return: IOMMU_* bits (0 for DMA_NONE).
 */
export function dma_info_to_prot(dir: number, coherent: boolean, attrs: number): number {
  let prot = coherent ? IOMMU_CACHE : 0;
  if (attrs & DMA_ATTR_PRIVILEGED) prot |= IOMMU_PRIV;
  switch (dir) {
    case DMA_BIDIRECTIONAL:
      return prot | IOMMU_READ | IOMMU_WRITE;
    case DMA_TO_DEVICE:
      return prot | IOMMU_READ;
    case DMA_FROM_DEVICE:
      return prot | IOMMU_WRITE;
    default:
      return 0;
  }
}

/**
 * iommu_dma_alloc_iova(domain, size, dma_limit, dev): a PCI device first gets an address
 * below 4 GiB (SAC), then anywhere under its mask.
 * @kernel drivers/iommu/dma-iommu.c:iommu_dma_alloc_iova (all versions)
 * Return: the IOVA, or 0 when none is left.
 */
export function iommu_dma_alloc_iova(
  domain: iommu_domain,
  size: number,
  dma_limit: number,
  dev: device,
): number {
  const iovad = domain.iova_cookie!.iovad;
  const shift = iova_shift(iovad);
  const iova_len = size / iovad.granule;
  const limit = Math.min(dma_limit, domain.geometry.aperture_end);
  let iova = 0;
  if (limit > DMA_BIT_MASK(32) && dev.bus?.name === 'pci') {
    iova = alloc_iova_fast(iovad, iova_len, Math.floor(DMA_BIT_MASK(32) / 2 ** shift), false);
  }
  if (!iova) iova = alloc_iova_fast(iovad, iova_len, Math.floor(limit / 2 ** shift), true);
  return iova * 2 ** shift;
}

/**
 * iommu_dma_free_iova(cookie, iova, size, gather): frees the IOVA range at once, or, when
 * the unmap was queued (lazy), puts it on the flush queue (flushing a full queue first).
 * @kernel drivers/iommu/dma-iommu.c:iommu_dma_free_iova, queue_iova (v5.15+; iova.c:queue_iova
 *   before), fq_full, fq_flush_iotlb, fq_ring_free (all versions)
 */
function* iommu_dma_free_iova(
  domain: iommu_domain,
  iova: number,
  size: number,
  gather: iommu_iotlb_gather | null,
): Op<void> {
  const cookie = domain.iova_cookie!;
  const iovad = cookie.iovad;
  const pfn = iova / iovad.granule;
  const pages = size / iovad.granule;
  if (gather && gather.queued) {
    if (cookie.fq.length >= IOVA_FQ_SIZE - 1) yield* fq_flush_timeout(domain);
    cookie.fq.push({ iova_pfn: pfn, pages });
  } else {
    free_iova_fast(iovad, pfn, pages);
  }
}

/**
 * fq_flush_timeout(domain): the flush-queue timer (and the queue-full path): flushes the
 * whole IOTLB, then frees every queued IOVA range.
 * @kernel drivers/iommu/dma-iommu.c:fq_flush_timeout, fq_flush_iotlb, fq_ring_free (v5.15+;
 *   iova.c before) (all versions)
 */
export function* fq_flush_timeout(domain: iommu_domain): Op<void> {
  const cookie = domain.iova_cookie;
  if (!cookie) return;
  yield* iommu_flush_iotlb_all(domain);
  const q = cookie.fq.splice(0);
  for (const e of q) free_iova_fast(cookie.iovad, e.iova_pfn, e.pages);
}

/** Model: IOVA ranges queued for a lazy flush. */
export function iommu_dma_fq_pending(domain: iommu_domain): readonly iova_fq_entry[] {
  return domain.iova_cookie?.fq ?? [];
}

/**
 * __iommu_dma_map(dev, phys, size, prot, dma_mask): allocates an IOVA range and maps it.
 * @kernel drivers/iommu/dma-iommu.c:__iommu_dma_map (all versions)
 * Return: the DMA address (with phys's offset in the granule), or DMA_MAPPING_ERROR.
 */
export function* __iommu_dma_map(
  dev: device,
  phys: number,
  size: number,
  prot: number,
  dma_mask: number,
): Op<number> {
  const domain = iommu_get_dma_domain(dev)!;
  const iovad = domain.iova_cookie!.iovad;
  const iova_off = iova_offset(iovad, phys);
  const len = iova_align(iovad, size + iova_off);
  const iova = iommu_dma_alloc_iova(domain, len, dma_mask, dev);
  if (!iova) return DMA_MAPPING_ERROR;
  // iommu_map_atomic (≤6.2) / iommu_map(..., GFP_ATOMIC) (6.3+)
  const ret = yield* __iommu_map(domain, iova, phys - iova_off, len, prot, GFP_ATOMIC);
  if (ret) {
    yield* iommu_dma_free_iova(domain, iova, len, null);
    return DMA_MAPPING_ERROR;
  }
  return iova + iova_off;
}

/**
 * __iommu_dma_unmap(dev, dma_addr, size): clears the entries; strict domains sync the
 * IOTLB now, lazy (DMA_FQ) domains queue the range for the next flush.
 * @kernel drivers/iommu/dma-iommu.c:__iommu_dma_unmap (all versions; gather->queued v5.15+)
 */
export function* __iommu_dma_unmap(dev: device, dma_addr: number, size: number): Op<void> {
  const domain = iommu_get_dma_domain(dev)!;
  const iovad = domain.iova_cookie!.iovad;
  const iova_off = iova_offset(iovad, dma_addr);
  const addr = dma_addr - iova_off;
  const len = iova_align(iovad, size + iova_off);
  const gather = iommu_iotlb_gather_init();
  gather.queued = (domain.type & __IOMMU_DOMAIN_DMA_FQ) !== 0;
  const unmapped = yield* iommu_unmap_fast(domain, addr, len, gather);
  WARN_ON(unmapped !== len);
  if (!gather.queued) yield* iommu_iotlb_sync(domain, gather);
  yield* iommu_dma_free_iova(domain, addr, len, gather);
}

/**
 * iommu_dma_map_page(dev, page, offset, size, dir, attrs).
 * @kernel drivers/iommu/dma-iommu.c:iommu_dma_map_page (all versions; iommu_dma_map_phys
 *   v6.17+)
 * Return: DMA address or DMA_MAPPING_ERROR.
 */
export function iommu_dma_map_page(
  dev: device,
  pfn: number,
  offset: number,
  size: number,
  dir: number,
  attrs: number,
): Op<number> {
  const prot = dma_info_to_prot(dir, true, attrs);
  return __iommu_dma_map(dev, pfn * 4096 + offset, size, prot, dev.dma_mask);
}

/** iommu_dma_unmap_page(dev, dma_handle, size, dir, attrs). @kernel drivers/iommu/dma-iommu.c:iommu_dma_unmap_page (all versions) */
export function iommu_dma_unmap_page(dev: device, dma_handle: number, size: number): Op<void> {
  return __iommu_dma_unmap(dev, dma_handle, size);
}

/**
 * iommu_dma_map_resource(dev, phys, size, dir, attrs): maps MMIO (a peer's BAR) with
 * IOMMU_MMIO.
 * @kernel drivers/iommu/dma-iommu.c:iommu_dma_map_resource (all versions)
 * Return: DMA address or DMA_MAPPING_ERROR.
 */
export function iommu_dma_map_resource(
  dev: device,
  phys: number,
  size: number,
  dir: number,
  attrs: number,
): Op<number> {
  return __iommu_dma_map(
    dev,
    phys,
    size,
    dma_info_to_prot(dir, false, attrs) | IOMMU_MMIO,
    dev.dma_mask,
  );
}

/** iommu_dma_unmap_resource(dev, handle, size, dir, attrs). @kernel drivers/iommu/dma-iommu.c:iommu_dma_unmap_resource (all versions) */
export function iommu_dma_unmap_resource(dev: device, handle: number, size: number): Op<void> {
  return __iommu_dma_unmap(dev, handle, size);
}
