/**
 * TTM move helpers (drivers/gpu/drm/ttm/ttm_bo_util.c): the CPU copy a driver's ->move
 * uses when it has no copy engine (ttm_bo_move_memcpy), and the cleanup that frees the old
 * placement the moment the copy is done (ttm_bo_move_sync_cleanup -> ttm_bo_wait_free_node:
 * the tt is destroyed when the new placement does not use one, the old resource is freed)
 * before the BO is pointed at the new resource.
 *
 * Each page copied is a read Step on the source frame and a write Step on the destination
 * frame (`pfn<N>`, the objects user accesses and DMA use), so another thread touching
 * the frames is ordered against the copy. VRAM frames are reached through their BAR
 * (drivers/pci/access.ts: a BAR that does not decode reads all ones).
 *
 * Left out: ttm_bo_move_accel_cleanup's ghost objects and pipelined moves, kmap/vmap of
 * BOs, ttm_io_prot's caching (the protection is returned unchanged), swapped tts.
 *
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c (v5.14+ kmap_iter copy; a page loop with
 *   ttm_copy_io_page / ttm_copy_io_ttm_page / ttm_copy_ttm_io_page before, same effect)
 */
import type { Op } from '../../../../../sched/index.js';
import type { pgprot_t } from '../../../../arch/x86/include/asm/pgtable_types.js';
import { EINVAL } from '../../../../include/linux/errno.js';
import { WARN_ON } from '../../../../kernel/panic.js';
import { mmio_or_phys_read, mmio_or_phys_write } from '../../../pci/access.js';
import { frame_obj } from '../../../dma/engine.js';
import { ttm_manager_type } from './ttm_device.js';
import { ttm_bo_tt_destroy, type ttm_buffer_object, type ttm_operation_ctx } from './ttm_bo.js';
import {
  ttm_mem_io_free,
  ttm_mem_io_reserve,
  ttm_resource_free,
  type ttm_resource,
} from './ttm_resource.js';
import {
  TTM_TT_FLAG_SWAPPED,
  TTM_TT_FLAG_ZERO_ALLOC,
  ttm_tt_is_populated,
  ttm_tt_populate,
} from './ttm_tt.js';

/**
 * ttm_bo_assign_mem(bo, new_mem): the BO's resource is now new_mem.
 * @kernel include/drm/ttm/ttm_bo.h:ttm_bo_assign_mem (all versions)
 */
export function ttm_bo_assign_mem(bo: ttm_buffer_object, new_mem: ttm_resource): void {
  bo.resource = new_mem;
  new_mem.bo = bo;
}

/**
 * ttm_bo_move_null(bo, new_mem): nothing to copy: the old resource is freed and the new
 * one assigned.
 * @kernel include/drm/ttm/ttm_bo.h:ttm_bo_move_null (all versions)
 */
export function ttm_bo_move_null(bo: ttm_buffer_object, new_mem: ttm_resource): void {
  ttm_resource_free(bo, bo.resource);
  ttm_bo_assign_mem(bo, new_mem);
}

/**
 * ttm_io_prot(bo, res, tmp): the protection of a CPU mapping of res.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_io_prot (all versions)
 * Return: tmp (the model leaves out write-combined/uncached caching modes).
 */
export function ttm_io_prot(bo: ttm_buffer_object, res: ttm_resource, tmp: pgprot_t): pgprot_t {
  void bo;
  void res;
  return tmp;
}

/** The frame of page i of a placement: the tt page, or the BAR frame of an iomem range. */
function placement_pfn(bo: ttm_buffer_object, mem: ttm_resource, tt: boolean, i: number): number {
  if (tt) return bo.ttm!.pages[i]!;
  return Math.floor(mem.bus.offset / 4096) + i;
}

/**
 * ttm_move_memcpy(clear, num_pages, dst_iter, src_iter): copies (or, with clear, zeroes)
 * num_pages pages, page by page.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_move_memcpy (v5.14+)
 */
function* ttm_move_memcpy(
  clear: boolean,
  num_pages: number,
  dst: (i: number) => number,
  src: (i: number) => number,
): Op<void> {
  for (let i = 0; i < num_pages; i++) {
    const d = dst(i);
    let data: Uint8Array = new Uint8Array(4096);
    if (!clear) {
      const s = src(i);
      yield { obj: frame_obj(s), kind: 'read', what: 'ttm_move_memcpy' };
      data = mmio_or_phys_read(s * 4096, 4096, 'ttm_move_memcpy');
    }
    yield { obj: frame_obj(d), kind: 'write', what: 'ttm_move_memcpy' };
    mmio_or_phys_write(d * 4096, data, 'ttm_move_memcpy');
  }
}

/**
 * ttm_bo_move_sync_cleanup(bo, new_mem): ttm_bo_wait_free_node (the BO is idle: its tt is
 * destroyed when new_mem's manager does not use one, and the old resource freed), then the
 * new resource is assigned.
 * @kernel include/drm/ttm/ttm_bo.h:ttm_bo_move_sync_cleanup,
 *   drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_bo_move_accel_cleanup, ttm_bo_wait_free_node
 *   (all versions)
 */
export function ttm_bo_move_sync_cleanup(bo: ttm_buffer_object, new_mem: ttm_resource): void {
  const dst_use_tt = ttm_manager_type(bo.bdev, new_mem.mem_type)!.use_tt;
  if (!dst_use_tt) ttm_bo_tt_destroy(bo);
  ttm_resource_free(bo, bo.resource);
  ttm_bo_assign_mem(bo, new_mem);
}

/**
 * ttm_bo_move_memcpy(bo, ctx, dst_mem): the CPU move: populates the tt when the
 * destination uses one, maps both sides (iomem through ttm_mem_io_reserve), copies every
 * page (or leaves a never-populated source as zero), then ttm_bo_move_sync_cleanup.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_bo_move_memcpy (all versions)
 * Locking: reservation held.
 * Return: 0 or -errno.
 */
export function* ttm_bo_move_memcpy(
  bo: ttm_buffer_object,
  ctx: ttm_operation_ctx,
  dst_mem: ttm_resource,
): Op<number> {
  const bdev = bo.bdev;
  const dst_man = ttm_manager_type(bdev, dst_mem.mem_type)!;
  const ttm = bo.ttm;
  const src_mem = bo.resource;
  if (WARN_ON(!src_mem)) return -EINVAL;
  const src_man = ttm_manager_type(bdev, src_mem!.mem_type)!;
  if (ttm && (ttm.page_flags & TTM_TT_FLAG_SWAPPED || dst_man.use_tt)) {
    const ret = yield* ttm_tt_populate(bdev, ttm, ctx);
    if (ret) return ret;
  }
  let ret = 0;
  if (!dst_man.use_tt) ret = ttm_mem_io_reserve(bdev, dst_mem);
  if (ret) return ret;
  if (!src_man.use_tt) ret = ttm_mem_io_reserve(bdev, src_mem);
  if (ret) return ret;
  const clear = src_man.use_tt && (!ttm || !ttm_tt_is_populated(ttm));
  if (!(clear && ttm && !(ttm.page_flags & TTM_TT_FLAG_ZERO_ALLOC))) {
    yield* ttm_move_memcpy(
      clear,
      Math.ceil(dst_mem.size / 4096),
      (i) => placement_pfn(bo, dst_mem, dst_man.use_tt, i),
      (i) => placement_pfn(bo, src_mem!, src_man.use_tt, i),
    );
  }
  if (!src_man.use_tt) ttm_mem_io_free(bdev, src_mem);
  if (!dst_man.use_tt) ttm_mem_io_free(bdev, dst_mem);
  ttm_bo_move_sync_cleanup(bo, dst_mem);
  return 0;
}
