/**
 * The TTM page pool (drivers/gpu/drm/ttm/ttm_pool.c): where a ttm_tt's system pages come
 * from and go back to.
 *
 * - Without use_dma_alloc, cached pages: ttm_pool_select_type() gives no pool type on x86
 *   for ttm_cached, so pages come from alloc_pages() and go straight back to the page
 *   allocator on free (__free_pages): the next allocation anywhere may take them at once.
 * - With use_dma_alloc (devices that need coherent DMA memory): pages come from
 *   dma_alloc_attrs(..., DMA_ATTR_FORCE_CONTIGUOUS) (the device's CMA area first,
 *   kernel/dma/contiguous.c) and go back
 *   to the pool's type list on free (ttm_pool_type_give: list_add at the head;
 *   ttm_pool_type_take: the first entry), so the next TTM allocation of the device takes
 *   the last page freed.
 *
 * Model: order-0 pages only (the kernel tries the largest order that fits first); no
 * write-combined/uncached pool types, no shrinker, no DMA mapping of cached pages for
 * TT placements (the model's pfngpu has no GART).
 *
 * @kernel drivers/gpu/drm/ttm/ttm_pool.c:ttm_pool_init, ttm_pool_alloc, ttm_pool_free,
 *   ttm_pool_alloc_page, ttm_pool_free_page, ttm_pool_type_give, ttm_pool_type_take,
 *   ttm_pool_select_type (v5.10+, d099fc8f540a "drm/ttm: new TT backend allocation pool v3")
 */
import type { Op } from '../../../../../sched/index.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { ENOMEM } from '../../../../include/linux/errno.js';
import { GFP_KERNEL, GFP_USER, __free_pages, alloc_page } from '../../../../mm/page_alloc.js';
import { phys_clear_frame } from '../../../../mm/sparse.js';
import { DMA_ATTR_FORCE_CONTIGUOUS } from '../../../../include/linux/dma-direction.js';
import { pfnsan_set_owner } from '../../../../mm/pfnsan/pfnsan.js';
import { dma_alloc_coherent, type dma_coherent_buf } from '../../../../kernel/dma/mapping.js';
import type { device } from '../../../base/core.js';
import type { ttm_tt } from './ttm_tt.js';
import { TTM_TT_FLAG_ZERO_ALLOC } from './ttm_tt.js';
import type { ttm_operation_ctx } from './ttm_bo.js';

/** struct ttm_pool (one cached-pages type list for use_dma_alloc). */
export class ttm_pool {
  /** pool->caching[ttm_cached].orders[0].pages: LIFO. */
  readonly cached: page[] = [];
  /** The dma_alloc_attrs() allocation behind each pool page (its DMA address). */
  readonly dma: Map<page, dma_coherent_buf> = new Map();
  constructor(
    readonly dev: device,
    readonly use_dma_alloc: boolean,
  ) {}
}

/**
 * ttm_pool_init(pool, dev, nid, use_dma_alloc, use_dma32).
 * @kernel drivers/gpu/drm/ttm/ttm_pool.c:ttm_pool_init (v5.10+)
 */
export function ttm_pool_init(dev: device, use_dma_alloc: boolean): ttm_pool {
  return new ttm_pool(dev, use_dma_alloc);
}

/**
 * ttm_pool_alloc(pool, tt, ctx): fills tt->pages: from the pool's list, else a new page
 * (dma_alloc_attrs with use_dma_alloc, else alloc_pages(GFP_USER)); zeroed when the tt
 * asks for it (__GFP_ZERO). On failure every page taken so far is freed again.
 * @kernel drivers/gpu/drm/ttm/ttm_pool.c:ttm_pool_alloc, ttm_pool_alloc_page (v5.10+)
 * Locking: may sleep (CMA).
 * Return: 0 or -ENOMEM.
 */
export function* ttm_pool_alloc(pool: ttm_pool, tt: ttm_tt, ctx: ttm_operation_ctx): Op<number> {
  void ctx;
  const zero = (tt.page_flags & TTM_TT_FLAG_ZERO_ALLOC) !== 0;
  for (let i = 0; i < tt.num_pages; i++) {
    let p: page | null;
    if (pool.use_dma_alloc) {
      p = pool.cached.shift() ?? null; /* ttm_pool_type_take: list_first_entry */
      if (p === null) {
        /* ttm_pool_alloc_page: attr = DMA_ATTR_FORCE_CONTIGUOUS */
        const buf = yield* dma_alloc_coherent(
          pool.dev,
          4096,
          GFP_KERNEL,
          DMA_ATTR_FORCE_CONTIGUOUS,
        );
        if (buf) {
          p = buf.cpu_addr;
          pool.dma.set(p, buf);
        }
      }
      if (p !== null) tt.dma_address[i] = pool.dma.get(p)!.dma_handle;
    } else {
      p = alloc_page(GFP_USER);
    }
    if (p === null) {
      tt.pages.length = i;
      ttm_pool_free(pool, tt);
      tt.pages.length = tt.num_pages;
      tt.pages.fill(null);
      return -ENOMEM;
    }
    if (zero) phys_clear_frame(p);
    tt.pages[i] = p;
  }
  return 0;
}

/**
 * ttm_pool_free(pool, tt): gives every page back: to the pool's list (use_dma_alloc) or to
 * the page allocator.
 * @kernel drivers/gpu/drm/ttm/ttm_pool.c:ttm_pool_free, ttm_pool_free_range (v5.10+)
 */
export function ttm_pool_free(pool: ttm_pool, tt: ttm_tt): void {
  for (let i = 0; i < tt.pages.length; i++) {
    const p = tt.pages[i];
    if (p === null || p === undefined) continue;
    if (pool.use_dma_alloc) {
      /* ttm_pool_type_give: list_add (head) */
      pool.cached.unshift(p);
      pfnsan_set_owner(p, 1, {
        kind: 'driver',
        desc: `ttm_pool of ${pool.dev.name} (free pages)`,
      });
    } else {
      __free_pages(p, 0);
    }
    tt.pages[i] = null;
  }
}
