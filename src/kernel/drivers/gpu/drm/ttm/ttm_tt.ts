/**
 * TTM page arrays (drivers/gpu/drm/ttm/ttm_tt.c): the system pages backing a buffer object
 * whose resource is in a memory type that uses a tt (TTM_PL_SYSTEM, TTM_PL_TT). The pages
 * are allocated by ttm_tt_populate (the driver's hook or the pool) and freed by
 * ttm_tt_unpopulate; a BO moved to VRAM loses its tt (ttm_bo_tt_destroy), so its old
 * pages are free again the moment the move completes.
 *
 * Left out: swapout/swapin (TTM_TT_FLAG_SWAPPED), caching changes, external (imported
 * sg) tts, the page accounting limits (ttm_global).
 *
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c, include/drm/ttm/ttm_tt.h (v5.10+ pool-based; flag
 *   names TTM_TT_FLAG_* v5.19+, TTM_PAGE_FLAG_* before)
 */
import type { Op } from '../../../../../sched/index.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { EINVAL, ENOMEM } from '../../../../include/linux/errno.js';
import { pr_err } from '../../../../kernel/printk.js';
import { WARN_ON } from '../../../../kernel/panic.js';
import { dma_resv_assert_held } from '../../../dma-buf/dma-resv.js';
import type { ttm_buffer_object, ttm_operation_ctx } from './ttm_bo.js';
import { ttm_bo_type_device, ttm_bo_type_kernel, ttm_bo_type_sg } from './ttm_bo.js';
import type { ttm_device } from './ttm_device.js';
import { ttm_pool_alloc, ttm_pool_free } from './ttm_pool.js';

export const TTM_TT_FLAG_SWAPPED = 1 << 0;
export const TTM_TT_FLAG_ZERO_ALLOC = 1 << 1;
export const TTM_TT_FLAG_EXTERNAL = 1 << 2;
export const TTM_TT_FLAG_EXTERNAL_MAPPABLE = 1 << 3;
export const TTM_TT_FLAG_PRIV_POPULATED = 1 << 5;

/** enum ttm_caching. */
export const ttm_uncached = 0;
export const ttm_write_combined = 1;
export const ttm_cached = 2;

/**
 * struct ttm_tt.
 * @kernel include/drm/ttm/ttm_tt.h:struct ttm_tt (all versions)
 */
export interface ttm_tt {
  readonly pages: (page | null)[];
  readonly num_pages: number;
  page_flags: number;
  readonly dma_address: number[];
  readonly caching: number;
}

/**
 * ttm_tt_init(ttm, bo, page_flags, caching, extra_pages): an unpopulated tt covering the BO.
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c:ttm_tt_init (all versions)
 * Return: the tt.
 */
export function ttm_tt_init(bo: ttm_buffer_object, page_flags: number, caching: number): ttm_tt {
  const n = Math.ceil(bo.base.size / 4096);
  return {
    pages: new Array<page | null>(n).fill(null),
    num_pages: n,
    page_flags,
    dma_address: new Array<number>(n).fill(0),
    caching,
  };
}

/** ttm_tt_is_populated(tt). @kernel include/drm/ttm/ttm_tt.h:ttm_tt_is_populated (all versions) */
export function ttm_tt_is_populated(tt: ttm_tt): boolean {
  return (tt.page_flags & TTM_TT_FLAG_PRIV_POPULATED) !== 0;
}

/**
 * ttm_tt_create(bo, zero_alloc): gives bo a tt from the driver (ZERO_ALLOC for device
 * BOs when asked) unless it has one.
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c:ttm_tt_create (all versions)
 * Locking: the BO's reservation held.
 * Return: 0, -EINVAL (bad type), -ENOMEM.
 */
export function ttm_tt_create(bo: ttm_buffer_object, zero_alloc: boolean): number {
  dma_resv_assert_held(bo.base.resv);
  if (bo.ttm) return 0;
  let page_flags = 0;
  switch (bo.type) {
    case ttm_bo_type_device:
      if (zero_alloc) page_flags |= TTM_TT_FLAG_ZERO_ALLOC;
      break;
    case ttm_bo_type_kernel:
      break;
    case ttm_bo_type_sg:
      page_flags |= TTM_TT_FLAG_EXTERNAL;
      break;
    default:
      pr_err('[TTM] Illegal buffer object type');
      return -EINVAL;
  }
  bo.ttm = bo.bdev.funcs.ttm_tt_create(bo, page_flags);
  if (!bo.ttm) return -ENOMEM;
  WARN_ON(
    (bo.ttm.page_flags & TTM_TT_FLAG_EXTERNAL_MAPPABLE) !== 0 &&
      !(bo.ttm.page_flags & TTM_TT_FLAG_EXTERNAL),
  );
  return 0;
}

/**
 * ttm_tt_populate(bdev, ttm, ctx): allocates the pages (driver hook, else the pool) once.
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c:ttm_tt_populate (all versions; reached through
 *   ttm_bo_populate v6.13+)
 * Return: 0 or -errno.
 */
export function* ttm_tt_populate(
  bdev: ttm_device,
  ttm: ttm_tt | null,
  ctx: ttm_operation_ctx,
): Op<number> {
  if (!ttm) return -EINVAL;
  if (ttm_tt_is_populated(ttm)) return 0;
  const ret = bdev.funcs.ttm_tt_populate
    ? yield* bdev.funcs.ttm_tt_populate(bdev, ttm, ctx)
    : yield* ttm_pool_alloc(bdev.pool, ttm, ctx);
  if (ret) return ret;
  ttm.page_flags |= TTM_TT_FLAG_PRIV_POPULATED;
  return 0;
}

/**
 * ttm_tt_unpopulate(bdev, ttm): frees the pages (driver hook, else the pool).
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c:ttm_tt_unpopulate (all versions)
 */
export function ttm_tt_unpopulate(bdev: ttm_device, ttm: ttm_tt): void {
  if (!ttm_tt_is_populated(ttm)) return;
  if (bdev.funcs.ttm_tt_unpopulate) bdev.funcs.ttm_tt_unpopulate(bdev, ttm);
  else ttm_pool_free(bdev.pool, ttm);
  ttm.page_flags &= ~TTM_TT_FLAG_PRIV_POPULATED;
}

/**
 * ttm_tt_destroy(bdev, ttm): the driver's destroy hook.
 * @kernel drivers/gpu/drm/ttm/ttm_tt.c:ttm_tt_destroy (all versions)
 */
export function ttm_tt_destroy(bdev: ttm_device, ttm: ttm_tt): void {
  bdev.funcs.ttm_tt_destroy?.(bdev, ttm);
}
