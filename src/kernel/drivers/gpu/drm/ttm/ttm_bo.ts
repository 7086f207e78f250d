/**
 * TTM buffer objects (drivers/gpu/drm/ttm/ttm_bo.c): creation and validation into a
 * placement, moves and eviction, pinning, and ttm_bo_unmap_virtual, which every move runs
 * first (ttm_bo_handle_move_mem) so that no CPU mapping of the old placement survives:
 * drm_vma_node_unmap = unmap_mapping_range(dev_mapping, offset, size, 1) (R-REV-4). The
 * driver's ->move then copies the contents and frees the old placement at once (VRAM
 * range back to the manager, system pages back to the pool or the page allocator), so the
 * old frames can belong to the next BO or allocation right after the move.
 *
 * Locking: every state change of a BO happens under its reservation (bo->base.resv).
 * Pinned BOs (pin_count) are off the LRU, so eviction never picks them; from v6.3
 * ttm_bo_validate refuses to move them (-EINVAL, "drm/ttm: prevent moving of pinned BOs",
 * Jan 2023); before, drivers' ->move refused (amdgpu/radeon: WARN_ON_ONCE, -EINVAL).
 *
 * Model: one reference count (the GEM object's) for the BO; no fences (moves are
 * synchronous CPU copies, waits return at once); no delayed destroy, swapout, multihop,
 * ww_acquire tickets, dmem cgroups, bulk moves. ttm_resource_manager_evict_all (from
 * ttm_resource.c) is here to avoid an import cycle.
 *
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c, include/drm/ttm/ttm_bo.h (all versions; pin_count
 *   and ttm_bo_pin v5.11+, TTM_PL_FLAG_NO_EVICT before)
 */
import type { Op } from '../../../../../sched/index.js';
import { EBUSY, EINVAL, ENOMEM, ENOSPC } from '../../../../include/linux/errno.js';
import { WARN_ON, WARN_ON_ONCE } from '../../../../kernel/panic.js';
import { pr_err } from '../../../../kernel/printk.js';
import { since } from '../../../../version.js';
import {
  dma_resv,
  dma_resv_assert_held,
  dma_resv_is_locked,
  dma_resv_lock,
  dma_resv_lock_interruptible,
  dma_resv_trylock,
  dma_resv_unlock,
} from '../../../dma-buf/dma-resv.js';
import {
  drm_vma_node_unmap,
  drm_vma_offset_add,
  drm_vma_offset_remove,
} from '../drm_vma_manager.js';
import { drm_gem_object, drm_gem_object_get, drm_gem_object_put } from '../drm_gem.js';
import { ttm_manager_type, type ttm_device } from './ttm_device.js';
import {
  TTM_PL_FLAG_DESIRED,
  TTM_PL_FLAG_FALLBACK,
  TTM_PL_SYSTEM,
  ttm_mem_io_free,
  ttm_resource_alloc,
  ttm_resource_compatible,
  ttm_resource_free,
  ttm_resource_manager_used,
  ttm_resource_move_to_lru_tail,
  type ttm_place,
  type ttm_placement,
  type ttm_resource,
  type ttm_resource_manager,
} from './ttm_resource.js';
import {
  ttm_tt_create,
  ttm_tt_destroy,
  ttm_tt_populate,
  ttm_tt_unpopulate,
  type ttm_tt,
} from './ttm_tt.js';

/** enum ttm_bo_type. */
export const ttm_bo_type_device = 0;
export const ttm_bo_type_kernel = 1;
export const ttm_bo_type_sg = 2;

/**
 * struct ttm_operation_ctx.
 * @kernel include/drm/ttm/ttm_bo.h:struct ttm_operation_ctx (all versions)
 */
export interface ttm_operation_ctx {
  interruptible: boolean;
  no_wait_gpu: boolean;
  bytes_moved: number;
}

/** A fresh operation context. */
export function ttm_ctx(interruptible = true, no_wait_gpu = false): ttm_operation_ctx {
  return { interruptible, no_wait_gpu, bytes_moved: 0 };
}

/**
 * struct ttm_buffer_object: `base` is the embedded GEM object (its size, vma_node, resv
 * and reference count).
 * @kernel include/drm/ttm/ttm_bo.h:struct ttm_buffer_object (all versions)
 */
export class ttm_buffer_object {
  resource: ttm_resource | null = null;
  ttm: ttm_tt | null = null;
  pin_count = 0;
  deleted = false;
  /** Driver data (the driver's BO wrapper). */
  priv: unknown = null;
  constructor(
    readonly base: drm_gem_object,
    readonly bdev: ttm_device,
    readonly type: number,
  ) {}
}

/**
 * ttm_bo_reserve(bo, interruptible, no_wait, ticket): takes the reservation (trylock for
 * no_wait: -EBUSY when held).
 * @kernel include/drm/ttm/ttm_bo.h:ttm_bo_reserve (all versions)
 * Return: 0, -EBUSY.
 */
export function* ttm_bo_reserve(
  bo: ttm_buffer_object,
  interruptible: boolean,
  no_wait: boolean,
): Op<number> {
  if (no_wait) return (yield* dma_resv_trylock(bo.base.resv)) ? 0 : -EBUSY;
  if (interruptible) return yield* dma_resv_lock_interruptible(bo.base.resv, null);
  return yield* dma_resv_lock(bo.base.resv, null);
}

/**
 * ttm_bo_unreserve(bo): LRU tail, then drops the reservation.
 * @kernel include/drm/ttm/ttm_bo.h:ttm_bo_unreserve (all versions)
 */
export function* ttm_bo_unreserve(bo: ttm_buffer_object): Op<void> {
  ttm_bo_move_to_lru_tail(bo);
  yield* dma_resv_unlock(bo.base.resv);
}

/**
 * ttm_bo_move_to_lru_tail(bo).
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_move_to_lru_tail (all versions)
 */
export function ttm_bo_move_to_lru_tail(bo: ttm_buffer_object): void {
  if (bo.resource) ttm_resource_move_to_lru_tail(bo.resource);
}

/** ttm_bo_get(bo). @kernel include/drm/ttm/ttm_bo.h:ttm_bo_get (all versions) */
export function ttm_bo_get(bo: ttm_buffer_object): void {
  drm_gem_object_get(bo.base);
}

/** ttm_bo_put(bo): the last reference runs ttm_bo_release. @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_put (all versions) */
export function ttm_bo_put(bo: ttm_buffer_object): void {
  drm_gem_object_put(bo.base);
}

/**
 * ttm_bo_tt_destroy(bo): unpopulate (pages freed) and destroy the BO's tt.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_tt_destroy (all versions)
 */
export function ttm_bo_tt_destroy(bo: ttm_buffer_object): void {
  if (!bo.ttm) return;
  ttm_tt_unpopulate(bo.bdev, bo.ttm);
  ttm_tt_destroy(bo.bdev, bo.ttm);
  bo.ttm = null;
}

/**
 * ttm_bo_cleanup_memtype_use(bo): ->delete_mem_notify, tt destroyed, resource freed.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_cleanup_memtype_use (all versions)
 */
function ttm_bo_cleanup_memtype_use(bo: ttm_buffer_object): void {
  bo.bdev.funcs.delete_mem_notify?.(bo);
  ttm_bo_tt_destroy(bo);
  ttm_resource_free(bo, bo.resource);
}

/**
 * ttm_bo_release(kref): the last reference: WARN_ON_ONCE if still pinned;
 * ->release_notify, the fake offset removed, io freed, backing store freed.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_release (all versions)
 * Model: the cleanup runs at once (the kernel defers it to a worker when the BO is busy or
 * its reservation cannot be taken; the model has no fences, and the model's callers never
 * drop the last reference under another thread's reservation of the BO).
 */
export function ttm_bo_release(bo: ttm_buffer_object): void {
  WARN_ON_ONCE(bo.pin_count !== 0, 'ttm_bo_release: pinned');
  WARN_ON(dma_resv_is_locked(bo.base.resv));
  bo.bdev.funcs.release_notify?.(bo);
  drm_vma_offset_remove(bo.bdev.vma_manager, bo.base.vma_node);
  ttm_mem_io_free(bo.bdev, bo.resource);
  ttm_bo_cleanup_memtype_use(bo);
  bo.deleted = true;
}

/**
 * ttm_bo_unmap_virtual(bo): zaps every CPU mapping of the BO (drm_vma_node_unmap on the
 * device's address space: unmap_mapping_range(..., even_cows=1), MMU_NOTIFY_CLEAR) and
 * frees the io reservation, so the next fault reserves and looks the placement up again.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_unmap_virtual (all versions)
 * Locking: reservation held by the caller (moves); takes i_mmap_rwsem and PTLs.
 */
export function* ttm_bo_unmap_virtual(bo: ttm_buffer_object): Op<void> {
  const bdev = bo.bdev;
  yield* drm_vma_node_unmap(bo.base.vma_node, bdev.dev_mapping);
  ttm_mem_io_free(bdev, bo.resource);
}

/**
 * ttm_bo_handle_move_mem(bo, mem, evict, ctx, hop): unmaps the BO's CPU mappings, gives it
 * a tt (populated unless the target is SYSTEM) when the target uses one, then the driver's
 * ->move (copy, free of the old placement, assignment). On failure a tt made for a BO that
 * had none is destroyed again.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_handle_move_mem (all versions; before
 *   v5.10 the unmap was conditional on an iomem side or a caching change, always true for
 *   VRAM <-> system)
 * Locking: reservation held.
 * Return: 0 or -errno.
 */
export function* ttm_bo_handle_move_mem(
  bo: ttm_buffer_object,
  mem: ttm_resource,
  evict: boolean,
  ctx: ttm_operation_ctx,
): Op<number> {
  const bdev = bo.bdev;
  const old_use_tt = !bo.resource || ttm_manager_type(bdev, bo.resource.mem_type)!.use_tt;
  const new_use_tt = ttm_manager_type(bdev, mem.mem_type)!.use_tt;
  yield* ttm_bo_unmap_virtual(bo);
  let ret = 0;
  if (new_use_tt) {
    /* Zero init the new TTM structure if the old location should have used one as well. */
    ret = ttm_tt_create(bo, old_use_tt);
    if (!ret && mem.mem_type !== TTM_PL_SYSTEM) ret = yield* ttm_tt_populate(bdev, bo.ttm, ctx);
  }
  if (!ret) ret = yield* bdev.funcs.move(bo, evict, ctx, mem);
  if (ret) {
    if (!old_use_tt) ttm_bo_tt_destroy(bo);
    return ret;
  }
  ctx.bytes_moved += bo.base.size;
  return 0;
}

/**
 * ttm_bo_evict(bo, ctx): moves bo where ->evict_flags says (the driver's eviction
 * placement), allocating there and calling ttm_bo_handle_move_mem(evict=true).
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_evict (all versions)
 * Locking: reservation held.
 * Return: 0 or -errno ("Failed to find memory space for buffer 0x... eviction" /
 *   "Buffer eviction failed" printed).
 * Leaves out: the empty placement (ttm_bo_pipeline_gutting).
 */
export function* ttm_bo_evict(bo: ttm_buffer_object, ctx: ttm_operation_ctx): Op<number> {
  dma_resv_assert_held(bo.base.resv);
  const placement: ttm_placement = { num_placement: 0, placement: [] };
  bo.bdev.funcs.evict_flags(bo, placement);
  if (!placement.num_placement) return -EINVAL;
  const r = yield* ttm_bo_mem_space(bo, placement, ctx);
  if (typeof r === 'number') {
    pr_err(`[TTM] Failed to find memory space for buffer ${bo.base.name} eviction`);
    return r;
  }
  const ret = yield* ttm_bo_handle_move_mem(bo, r, true, ctx);
  if (ret) {
    ttm_resource_free(bo, r);
    pr_err('[TTM] Buffer eviction failed');
  }
  return ret;
}

/**
 * ttm_bo_evict_alloc: evicts unpinned BOs from the manager's LRU (least recently used
 * first; trylock of their reservation; ->eviction_valuable) until the allocation for the
 * evictor succeeds.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_evict_alloc, ttm_bo_evict_cb (v6.10+ LRU
 *   walk; ttm_mem_evict_first before, same choice of victims)
 * Return: the resource, or -EBUSY when nothing more can be evicted.
 */
function* ttm_bo_evict_alloc(
  man: ttm_resource_manager,
  place: ttm_place,
  evictor: ttm_buffer_object,
  ctx: ttm_operation_ctx,
): Op<ttm_resource | number> {
  for (;;) {
    let evicted = false;
    for (const res of [...man.lru]) {
      const bo = res.bo;
      if (!bo || bo === evictor || bo.pin_count) continue;
      if (!(yield* dma_resv_trylock(bo.base.resv))) continue;
      let lret = 0;
      if (bo.resource === res && bo.bdev.funcs.eviction_valuable(bo, place)) {
        lret = yield* ttm_bo_evict(bo, ctx);
        evicted = lret === 0;
      }
      yield* dma_resv_unlock(bo.base.resv);
      if (lret) return lret;
      if (evicted) break;
    }
    if (!evicted) return -EBUSY;
    const r = ttm_resource_alloc(evictor, place);
    if (typeof r !== 'number') return r;
  }
}

/**
 * ttm_bo_alloc_resource(bo, placement, ctx, force_space): the first place whose manager
 * has room; with force_space, evicting from non-system managers.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_alloc_resource (v6.9+; ttm_bo_mem_space
 *   with placement/busy_placement before, same order of attempts)
 * Return: the resource or -ENOSPC.
 */
function* ttm_bo_alloc_resource(
  bo: ttm_buffer_object,
  placement: ttm_placement,
  ctx: ttm_operation_ctx,
  force_space: boolean,
): Op<ttm_resource | number> {
  for (let i = 0; i < placement.num_placement; i++) {
    const place = placement.placement[i]!;
    const man = ttm_manager_type(bo.bdev, place.mem_type);
    if (!man || !ttm_resource_manager_used(man)) continue;
    if (place.flags & (force_space ? TTM_PL_FLAG_DESIRED : TTM_PL_FLAG_FALLBACK)) continue;
    const may_evict = force_space && place.mem_type !== TTM_PL_SYSTEM;
    const r = ttm_resource_alloc(bo, place);
    if (typeof r !== 'number') return r;
    if (r !== -ENOSPC) return r;
    if (!may_evict) continue;
    const e = yield* ttm_bo_evict_alloc(man, place, bo, ctx);
    if (e === -EBUSY) continue;
    return e;
  }
  return -ENOSPC;
}

/**
 * ttm_bo_mem_space(bo, placement, res, ctx): ttm_bo_alloc_resource without, then with
 * eviction.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_mem_space (all versions)
 * Return: the resource or -errno.
 */
export function* ttm_bo_mem_space(
  bo: ttm_buffer_object,
  placement: ttm_placement,
  ctx: ttm_operation_ctx,
): Op<ttm_resource | number> {
  let r = yield* ttm_bo_alloc_resource(bo, placement, ctx, false);
  if (r === -ENOSPC) r = yield* ttm_bo_alloc_resource(bo, placement, ctx, true);
  return r;
}

/**
 * ttm_bo_validate(bo, placement, ctx): moves bo into one of the places unless it is
 * already compatible. A pinned BO is not moved: -EINVAL from v6.3; before, the driver's
 * ->move refused. No space (after eviction) is -ENOMEM. A BO left in SYSTEM gets a tt.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_validate (all versions; pinned check v6.3,
 *   "drm/ttm: prevent moving of pinned BOs")
 * Locking: reservation held.
 * Return: 0 or -errno.
 */
export function* ttm_bo_validate(
  bo: ttm_buffer_object,
  placement: ttm_placement,
  ctx: ttm_operation_ctx,
): Op<number> {
  dma_resv_assert_held(bo.base.resv);
  if (!placement.num_placement) return -EINVAL; /* ttm_bo_pipeline_gutting: left out */
  /* Check whether we need to move buffer. */
  if (!bo.resource || !ttm_resource_compatible(bo.resource, placement)) {
    /* Moving of pinned BOs is forbidden */
    if (since(6, 3) && bo.pin_count) return -EINVAL;
    const r = yield* ttm_bo_mem_space(bo, placement, ctx);
    if (typeof r === 'number') return r === -ENOSPC ? -ENOMEM : r;
    const ret = yield* ttm_bo_handle_move_mem(bo, r, false, ctx);
    if (ret) {
      ttm_resource_free(bo, r);
      return ret;
    }
  }
  /* We might need to add a TTM. */
  if (!bo.resource || bo.resource.mem_type === TTM_PL_SYSTEM) {
    const ret = ttm_tt_create(bo, true);
    if (ret) return ret;
  }
  return 0;
}

/**
 * ttm_bo_init_reserved(bdev, bo, type, placement, alignment, ctx, sg, resv, destroy): the
 * BO gets its fake mmap offset (device and sg BOs), its reservation is taken (own resv:
 * WARN_ON(!trylock)) and it is validated into `placement`. On failure the reference is
 * dropped.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_init_reserved (all versions)
 * Locking: returns with the reservation held on success.
 * Return: 0 or -errno.
 */
export function* ttm_bo_init_reserved(
  bo: ttm_buffer_object,
  placement: ttm_placement,
  ctx: ttm_operation_ctx,
  resv: dma_resv | null = null,
): Op<number> {
  if (resv) bo.base.resv = resv;
  if (bo.type === ttm_bo_type_device || bo.type === ttm_bo_type_sg) {
    const ret = drm_vma_offset_add(
      bo.bdev.vma_manager,
      bo.base.vma_node,
      Math.ceil(bo.base.size / 4096),
    );
    if (ret) {
      ttm_bo_put(bo);
      return ret;
    }
  }
  if (!resv) WARN_ON(!(yield* dma_resv_trylock(bo.base.resv)));
  else dma_resv_assert_held(resv);
  const ret = yield* ttm_bo_validate(bo, placement, ctx);
  if (ret) {
    if (!resv) yield* dma_resv_unlock(bo.base.resv);
    ttm_bo_put(bo);
    return ret;
  }
  return 0;
}

/**
 * ttm_bo_init_validate(...): ttm_bo_init_reserved, then unreserve.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_init_validate (v6.0+; ttm_bo_init before)
 * Return: 0 or -errno.
 */
export function* ttm_bo_init_validate(
  bo: ttm_buffer_object,
  placement: ttm_placement,
  interruptible: boolean,
): Op<number> {
  const ret = yield* ttm_bo_init_reserved(bo, placement, ttm_ctx(interruptible));
  if (ret) return ret;
  yield* ttm_bo_unreserve(bo);
  return 0;
}

/**
 * ttm_bo_pin(bo): the BO leaves the LRU (no eviction) until unpinned.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_pin (v5.11+)
 * Locking: reservation held.
 */
export function ttm_bo_pin(bo: ttm_buffer_object): void {
  dma_resv_assert_held(bo.base.resv);
  WARN_ON_ONCE(bo.base.refcount <= 0, 'ttm_bo_pin: no reference');
  if (!bo.pin_count++ && bo.resource) ttm_resource_move_to_lru_tail(bo.resource);
}

/**
 * ttm_bo_unpin(bo): the last unpin puts the BO back on the LRU.
 * @kernel drivers/gpu/drm/ttm/ttm_bo.c:ttm_bo_unpin (v5.11+)
 * Locking: reservation held.
 */
export function ttm_bo_unpin(bo: ttm_buffer_object): void {
  dma_resv_assert_held(bo.base.resv);
  WARN_ON_ONCE(bo.base.refcount <= 0, 'ttm_bo_unpin: no reference');
  if (WARN_ON_ONCE(!bo.pin_count, 'ttm_bo_unpin: not pinned')) return;
  if (!--bo.pin_count && bo.resource) ttm_resource_move_to_lru_tail(bo.resource);
}

/**
 * ttm_resource_manager_evict_all(bdev, man): evicts every unpinned BO of the manager
 * (pinned ones stay: they are not on the LRU).
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_manager_evict_all (v5.11+;
 *   ttm_bo_evict_mm before)
 * Locking: takes each BO's reservation.
 * Return: 0 or the first eviction error.
 */
export function* ttm_resource_manager_evict_all(
  bdev: ttm_device,
  man: ttm_resource_manager,
): Op<number> {
  void bdev;
  const ctx = ttm_ctx(false, false);
  for (const res of [...man.lru]) {
    const bo = res.bo;
    if (!bo || bo.pin_count) continue;
    yield* dma_resv_lock(bo.base.resv, null);
    let ret = 0;
    if (bo.resource === res && !bo.pin_count) ret = yield* ttm_bo_evict(bo, ctx);
    yield* dma_resv_unlock(bo.base.resv);
    if (ret) return ret;
  }
  return 0;
}
