/**
 * The DMA mapping API (kernel/dma/mapping.c) and dma-direct (kernel/dma/direct.c): a
 * device behind an IOMMU DMA domain goes through dma-iommu (IOVA + iommu_map); a device
 * without one (no IOMMU, or an identity domain) uses bus address = physical address.
 *
 * sg_table is minimal: one scatterlist entry per (pfn, offset, length); mapping gives each
 * entry its own DMA segment (no merging).
 *
 * Left out: swiotlb (an address beyond the mask fails instead of bouncing), dma_ops other
 * than dma-iommu, debug_dma_* (CONFIG_DMA_API_DEBUG), the per-device coherent pools,
 * dma_sync_*, non-coherent devices (x86 is coherent), P2PDMA pages in scatterlists
 * (peer-to-peer goes through dma_map_resource here), the noncontiguous and pages APIs.
 *
 * @kernel kernel/dma/mapping.c, kernel/dma/direct.c, kernel/dma/direct.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { since } from '../../version.js';
import { BUG_ON, WARN_ON_ONCE, WARN_ONCE } from '../panic.js';
import type { device } from '../../drivers/base/core.js';
import type { page } from '../../include/linux/mm_types.js';
import { EINVAL, EIO, ENOMEM } from '../../include/linux/errno.js';
import {
  DMA_ATTR_FORCE_CONTIGUOUS,
  DMA_BIT_MASK,
  DMA_MAPPING_ERROR,
  valid_dma_direction,
} from '../../include/linux/dma-direction.js';
import { pfn_valid, phys_clear_frame } from '../../mm/sparse.js';
import {
  __GFP_DMA32,
  __GFP_ZERO,
  alloc_page,
  alloc_pages,
  __free_pages,
} from '../../mm/page_alloc.js';
import { pfnsan_set_owner } from '../../mm/pfnsan/pfnsan.js';
import { __iommu_map, __IOMMU_DOMAIN_DMA_API } from '../../drivers/iommu/iommu.js';
import {
  __iommu_dma_map,
  __iommu_dma_unmap,
  dma_info_to_prot,
  iommu_dma_alloc_iova,
  iommu_dma_map_page,
  iommu_dma_map_resource,
  iommu_dma_unmap_page,
  iommu_dma_unmap_resource,
  iommu_get_dma_domain,
} from '../../drivers/iommu/dma-iommu.js';
import {
  dma_alloc_contiguous,
  dma_free_contiguous,
  get_order,
  gfpflags_allow_blocking,
} from './contiguous.js';

/** struct scatterlist (minimal): a frame, an offset and a length, and its DMA segment. */
export interface scatterlist {
  readonly page_link: page;
  readonly offset: number;
  readonly length: number;
  dma_address: number;
  dma_length: number;
}

/** struct sg_table (minimal): the entries, and the number of DMA segments after mapping. */
export interface sg_table {
  readonly sgl: scatterlist[];
  orig_nents: number;
  nents: number;
}

/**
 * sg_alloc_table_from_pages(sgt, pages, n_pages, offset, size): one entry per page (the
 * model does not merge contiguous pages).
 * @kernel lib/scatterlist.c:sg_alloc_table_from_pages (all versions)
 * Return: the table.
 */
export function sg_alloc_table_from_pages(
  pages: readonly page[],
  offset: number,
  size: number,
): sg_table {
  const sgl: scatterlist[] = [];
  let left = size;
  pages.forEach((p, i) => {
    const off = i === 0 ? offset : 0;
    const len = Math.min(4096 - off, left);
    left -= len;
    sgl.push({ page_link: p, offset: off, length: len, dma_address: 0, dma_length: 0 });
  });
  return { sgl, orig_nents: sgl.length, nents: 0 };
}

/**
 * dma_map_direct(dev, ops): whether the device uses dma-direct: it has no DMA-API IOMMU
 * domain (no IOMMU, or an identity default domain).
 * @kernel kernel/dma/mapping.c:dma_map_direct, dma_go_direct (all versions)
 */
export function dma_map_direct(dev: device): boolean {
  const d = iommu_get_dma_domain(dev);
  return !d || !(d.type & __IOMMU_DOMAIN_DMA_API);
}

/**
 * dma_capable(dev, addr, size, is_ram): the whole range lies under the DMA mask.
 * @kernel include/linux/dma-direct.h:dma_capable (all versions)
 */
export function dma_capable(dev: device, addr: number, size: number): boolean {
  if (!size) return true;
  return addr + size - 1 <= dev.dma_mask;
}

/**
 * dma_set_mask(dev, mask) / dma_set_mask_and_coherent(dev, mask).
 * @kernel kernel/dma/mapping.c:dma_set_mask, dma_set_coherent_mask (all versions)
 * Return: 0, or -EIO for a mask below 24 bits (dma_supported).
 */
export function dma_set_mask_and_coherent(dev: device, mask: number): number {
  if (mask < DMA_BIT_MASK(24)) return -EIO;
  dev.dma_mask = mask;
  dev.coherent_dma_mask = mask;
  return 0;
}

/**
 * dma_direct_map_page(dev, page, offset, size, dir, attrs): bus address = physical.
 * @kernel kernel/dma/direct.h:dma_direct_map_page (all versions)
 * Return: the address, or DMA_MAPPING_ERROR beyond the mask (no swiotlb in the model).
 */
function dma_direct_map_page(dev: device, pfn: number, offset: number, size: number): number {
  const dma_addr = pfn * 4096 + offset;
  if (!dma_capable(dev, dma_addr, size)) {
    WARN_ONCE(
      true,
      `${dev.name}: DMA addr 0x${dma_addr.toString(16).padStart(16, '0')}+${size} overflow (mask ${dev.dma_mask.toString(16)}, bus limit 0).`,
      'dma_direct_map_page',
    );
    return DMA_MAPPING_ERROR;
  }
  return dma_addr;
}

/**
 * dma_map_page_attrs(dev, page, offset, size, dir, attrs): maps one frame (or part) for DMA.
 * @kernel kernel/dma/mapping.c:dma_map_page_attrs (all versions; dma_map_phys v6.17+)
 * Locking: none; may take IOMMU Steps.
 * Return: the DMA address, or DMA_MAPPING_ERROR. BUG on an invalid direction.
 */
export function* dma_map_page_attrs(
  dev: device,
  pg: page,
  offset: number,
  size: number,
  dir: number,
  attrs = 0,
): Op<number> {
  BUG_ON(!valid_dma_direction(dir), 'BUG_ON(!valid_dma_direction(dir))');
  if (dma_map_direct(dev)) return dma_direct_map_page(dev, pg, offset, size);
  return yield* iommu_dma_map_page(dev, pg, offset, size, dir, attrs);
}

/**
 * dma_unmap_page_attrs(dev, addr, size, dir, attrs).
 * @kernel kernel/dma/mapping.c:dma_unmap_page_attrs (all versions)
 */
export function* dma_unmap_page_attrs(
  dev: device,
  addr: number,
  size: number,
  dir: number,
  attrs = 0,
): Op<void> {
  void attrs;
  BUG_ON(!valid_dma_direction(dir), 'BUG_ON(!valid_dma_direction(dir))');
  if (dma_map_direct(dev)) return;
  yield* iommu_dma_unmap_page(dev, addr, size);
}

/** dma_mapping_error(dev, addr). @kernel include/linux/dma-mapping.h:dma_mapping_error (all versions) Return: -ENOMEM or 0. */
export function dma_mapping_error(dev: device, addr: number): number {
  void dev;
  return addr === DMA_MAPPING_ERROR ? -ENOMEM : 0;
}

/**
 * dma_map_sgtable(dev, sgt, dir, attrs): maps every entry; sgt.nents = segments.
 * @kernel kernel/dma/mapping.c:dma_map_sgtable, __dma_map_sg_attrs (v5.8+); iommu_dma_map_sg
 * Return: 0, or -EINVAL / -ENOMEM (mapping undone).
 */
export function* dma_map_sgtable(dev: device, sgt: sg_table, dir: number, attrs = 0): Op<number> {
  BUG_ON(!valid_dma_direction(dir), 'BUG_ON(!valid_dma_direction(dir))');
  let mapped = 0;
  for (const sg of sgt.sgl) {
    const a = yield* dma_map_page_attrs(dev, sg.page_link, sg.offset, sg.length, dir, attrs);
    if (a === DMA_MAPPING_ERROR) {
      for (let i = 0; i < mapped; i++) {
        const s = sgt.sgl[i]!;
        yield* dma_unmap_page_attrs(dev, s.dma_address, s.dma_length, dir, attrs);
      }
      return dma_map_direct(dev) ? -EINVAL : -ENOMEM;
    }
    sg.dma_address = a;
    sg.dma_length = sg.length;
    mapped++;
  }
  sgt.nents = mapped;
  return 0;
}

/** dma_unmap_sgtable(dev, sgt, dir, attrs). @kernel include/linux/dma-mapping.h:dma_unmap_sgtable (v5.8+) */
export function* dma_unmap_sgtable(dev: device, sgt: sg_table, dir: number, attrs = 0): Op<void> {
  for (let i = 0; i < sgt.nents; i++) {
    const s = sgt.sgl[i]!;
    yield* dma_unmap_page_attrs(dev, s.dma_address, s.dma_length, dir, attrs);
  }
  sgt.nents = 0;
}

/**
 * dma_map_resource(dev, phys_addr, size, dir, attrs): maps MMIO (another device's BAR) for
 * peer-to-peer DMA. Until v5.15 RAM was refused (WARN_ON_ONCE(pfn_valid)); a9c38c5d267c
 * "dma-mapping: remove bogus test for pfn_valid from dma_map_resource" (v5.16, backported
 * to 5.15.y) dropped the check.
 * @kernel kernel/dma/mapping.c:dma_map_resource (all versions), kernel/dma/direct.c:
 *   dma_direct_map_resource
 * Return: the DMA address, or DMA_MAPPING_ERROR.
 */
export function* dma_map_resource(
  dev: device,
  phys_addr: number,
  size: number,
  dir: number,
  attrs = 0,
): Op<number> {
  BUG_ON(!valid_dma_direction(dir), 'BUG_ON(!valid_dma_direction(dir))');
  if (!since(5, 16) && WARN_ON_ONCE(pfn_valid(Math.floor(phys_addr / 4096)), 'dma_map_resource'))
    return DMA_MAPPING_ERROR;
  if (dma_map_direct(dev)) {
    if (!dma_capable(dev, phys_addr, size)) {
      WARN_ONCE(
        true,
        `${dev.name}: DMA addr 0x${phys_addr.toString(16)}+${size} overflow`,
        'dma_direct_map_resource',
      );
      return DMA_MAPPING_ERROR;
    }
    return phys_addr;
  }
  return yield* iommu_dma_map_resource(dev, phys_addr, size, dir, attrs);
}

/** dma_unmap_resource(dev, addr, size, dir, attrs). @kernel kernel/dma/mapping.c:dma_unmap_resource (all versions) */
export function* dma_unmap_resource(
  dev: device,
  addr: number,
  size: number,
  dir: number,
  attrs = 0,
): Op<void> {
  void attrs;
  BUG_ON(!valid_dma_direction(dir), 'BUG_ON(!valid_dma_direction(dir))');
  if (dma_map_direct(dev)) return;
  yield* iommu_dma_unmap_resource(dev, addr, size);
}

/** A coherent buffer: its frames (cpu_addr stands for the kernel mapping) and DMA address. */
export interface dma_coherent_buf {
  /** The first frame (the kernel's cpu_addr is its direct-map or vmap address). */
  readonly cpu_addr: page;
  /** Every frame, in DMA order (contiguous unless from the IOMMU remap path). */
  readonly pages: readonly page[];
  readonly dma_handle: number;
  readonly size: number;
  /** Allocated page by page (iommu_dma_alloc_remap), freed page by page. */
  readonly remap: boolean;
}

function owner(dev: device, pages: readonly page[]): void {
  const desc = `DMA buffer of ${dev.name} (${dev.driver?.name ?? 'no driver'})`;
  for (const p of pages) pfnsan_set_owner(p, 1, { kind: 'driver', desc });
}

/**
 * dma_alloc_coherent(dev, size, gfp) = dma_alloc_attrs(..., 0). dma-direct: frames from
 * dma_alloc_contiguous (CMA) or the page allocator, retried in ZONE_DMA32 when beyond the
 * coherent mask, zeroed, bus address = physical. IOMMU: with a blocking gfp and no
 * DMA_ATTR_FORCE_CONTIGUOUS, separate pages mapped contiguously in IOVA
 * (iommu_dma_alloc_remap); otherwise iommu_dma_alloc_pages (CMA first) and one mapping.
 * The frames become the driver's (pfnsan owner).
 * @kernel kernel/dma/mapping.c:dma_alloc_attrs, kernel/dma/direct.c:dma_direct_alloc,
 *   __dma_direct_alloc_pages, drivers/iommu/dma-iommu.c:iommu_dma_alloc,
 *   iommu_dma_alloc_remap, iommu_dma_alloc_pages (all versions)
 * Locking: may sleep (CMA) with a blocking gfp.
 * Return: the buffer, or null.
 */
export function* dma_alloc_coherent(
  dev: device,
  size: number,
  gfp: number,
  attrs = 0,
): Op<dma_coherent_buf | null> {
  const sz = Math.ceil(size / 4096) * 4096;
  const order = get_order(sz);
  const n = sz / 4096;
  if (dma_map_direct(dev)) {
    let pg = yield* dma_alloc_contiguous(dev, sz, gfp);
    if (pg !== null && pg * 4096 + sz - 1 > dev.coherent_dma_mask) {
      yield* dma_free_contiguous(dev, pg, sz);
      pg = null;
    }
    if (pg === null) {
      pg = alloc_pages(gfp & ~__GFP_ZERO, order);
      if (pg !== null && pg * 4096 + sz - 1 > dev.coherent_dma_mask) {
        __free_pages(pg, order);
        pg = alloc_pages((gfp & ~__GFP_ZERO) | __GFP_DMA32, order);
      }
    }
    if (pg === null) return null;
    const pages = Array.from({ length: n }, (_, i) => (pg + i) as page);
    for (const p of pages) phys_clear_frame(p);
    owner(dev, pages);
    return { cpu_addr: pg, pages, dma_handle: pg * 4096, size: sz, remap: false };
  }
  const prot = dma_info_to_prot(0 /* DMA_BIDIRECTIONAL */, true, attrs);
  if (gfpflags_allow_blocking(gfp) && !(attrs & DMA_ATTR_FORCE_CONTIGUOUS)) {
    // iommu_dma_alloc_remap: pages from the page allocator, one IOVA range.
    const pages: page[] = [];
    for (let i = 0; i < n; i++) {
      const p = alloc_page(gfp & ~__GFP_ZERO);
      if (p === null) {
        for (const q of pages) __free_pages(q, 0);
        return null;
      }
      pages.push(p);
    }
    const dom = iommu_get_dma_domain(dev)!;
    const iova = iommu_dma_alloc_iova(dom, sz, dev.coherent_dma_mask, dev);
    if (!iova) {
      for (const q of pages) __free_pages(q, 0);
      return null;
    }
    for (let i = 0; i < n; i++) {
      yield* __iommu_map(dom, iova + i * 4096, pages[i]! * 4096, 4096, prot, gfp);
    }
    for (const p of pages) phys_clear_frame(p);
    owner(dev, pages);
    return { cpu_addr: pages[0]!, pages, dma_handle: iova, size: sz, remap: true };
  }
  // iommu_dma_alloc_pages
  let pg = yield* dma_alloc_contiguous(dev, sz, gfp);
  if (pg === null) pg = alloc_pages(gfp & ~__GFP_ZERO, order);
  if (pg === null) return null;
  const handle = yield* __iommu_dma_map(dev, pg * 4096, sz, prot, dev.coherent_dma_mask);
  if (handle === DMA_MAPPING_ERROR) {
    yield* dma_free_contiguous(dev, pg, sz);
    return null;
  }
  const pages = Array.from({ length: n }, (_, i) => (pg + i) as page);
  for (const p of pages) phys_clear_frame(p);
  owner(dev, pages);
  return { cpu_addr: pg, pages, dma_handle: handle, size: sz, remap: false };
}

/**
 * dma_free_coherent(dev, size, buf): unmaps (IOMMU) and frees the frames (CMA or the page
 * allocator).
 * @kernel kernel/dma/mapping.c:dma_free_attrs, kernel/dma/direct.c:dma_direct_free,
 *   drivers/iommu/dma-iommu.c:iommu_dma_free, __iommu_dma_free (all versions)
 */
export function* dma_free_coherent(dev: device, buf: dma_coherent_buf): Op<void> {
  if (!dma_map_direct(dev)) yield* __iommu_dma_unmap(dev, buf.dma_handle, buf.size);
  if (buf.remap) for (const p of buf.pages) __free_pages(p, 0);
  else yield* dma_free_contiguous(dev, buf.cpu_addr, buf.size);
}
