/**
 * DMA from CMA (kernel/dma/contiguous.c): dma_alloc_contiguous() takes the device's own CMA
 * area (dev->cma_area) or the default one (dma_contiguous_default_area, from `cma=`), only
 * in contexts that may sleep; dma_free_contiguous() gives the frames back to that area.
 *
 * Left out: per-NUMA areas, the cma_pernuma/numa_cma parameters, CONFIG_CMA_ALIGNMENT
 * other than its default 8.
 *
 * @kernel kernel/dma/contiguous.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../kernel.js';
import type { device } from '../../drivers/base/core.js';
import type { page } from '../../include/linux/mm_types.js';
import { __GFP_DIRECT_RECLAIM, __GFP_NOWARN, __free_pages, type cma } from '../../mm/page_alloc.js';
import { cma_alloc, cma_release } from '../../mm/cma.js';

/** CONFIG_CMA_ALIGNMENT default. */
export const CONFIG_CMA_ALIGNMENT = 8;

/** gfpflags_allow_blocking(gfp): __GFP_DIRECT_RECLAIM is set. @kernel include/linux/gfp.h:gfpflags_allow_blocking (all versions) */
export function gfpflags_allow_blocking(gfp: number): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0;
}

/** get_order(size): the allocation order for size bytes. @kernel include/asm-generic/getorder.h:get_order (all versions) */
export function get_order(size: number): number {
  let order = 0;
  while (4096 * 2 ** order < size) order++;
  return order;
}

/** dma_contiguous_default_area: the global CMA area for DMA (null unless set). */
export function dma_contiguous_default_area(): cma | null {
  return (currentKernel().sub.dma_contiguous_default_area as cma | undefined) ?? null;
}

/** Model: sets dma_contiguous_default_area (the `cma=` boot parameter's area). */
export function dma_contiguous_set_default(c: cma | null): void {
  currentKernel().sub.dma_contiguous_default_area = c;
}

/**
 * cma_alloc_aligned(cma, size, gfp): cma_alloc of size's pages, aligned to its order (at
 * most CONFIG_CMA_ALIGNMENT).
 * @kernel kernel/dma/contiguous.c:cma_alloc_aligned (v5.10+; inline in dma_alloc_contiguous before)
 * Return: the first page or null.
 */
function cma_alloc_aligned(c: cma, size: number, gfp: number): Op<page | null> {
  const align = Math.min(get_order(size), CONFIG_CMA_ALIGNMENT);
  return cma_alloc(c, Math.ceil(size / 4096), align, (gfp & __GFP_NOWARN) !== 0);
}

/**
 * dma_alloc_contiguous(dev, size, gfp): frames from the device's CMA area, else (for more
 * than one page) from the default area; nothing in atomic context.
 * @kernel kernel/dma/contiguous.c:dma_alloc_contiguous (all versions)
 * Locking: may sleep (cma_alloc).
 * Return: the first page, or null (the caller falls back to the page allocator).
 */
export function* dma_alloc_contiguous(dev: device, size: number, gfp: number): Op<page | null> {
  if (!gfpflags_allow_blocking(gfp)) return null;
  if (dev.cma_area) return yield* cma_alloc_aligned(dev.cma_area, size, gfp);
  if (size <= 4096) return null;
  const def = dma_contiguous_default_area();
  if (!def) return null;
  return yield* cma_alloc_aligned(def, size, gfp);
}

/**
 * dma_free_contiguous(dev, page, size): returns frames to the CMA area they came from, or
 * to the page allocator.
 * @kernel kernel/dma/contiguous.c:dma_free_contiguous (all versions)
 */
export function* dma_free_contiguous(dev: device, pg: page, size: number): Op<void> {
  const count = Math.ceil(size / 4096);
  if (dev.cma_area) {
    if (yield* cma_release(dev.cma_area, pg, count)) return;
  } else {
    const def = dma_contiguous_default_area();
    if (def && (yield* cma_release(def, pg, count))) return;
  }
  __free_pages(pg, get_order(size));
}
