/**
 * TTM resources (drivers/gpu/drm/ttm/ttm_resource.c): a placement of a buffer object in
 * one memory type (system pages through a ttm_tt, or a range of VRAM), the managers that
 * hand them out, the LRU the eviction walk reads, and the bus placement of iomem
 * (ttm_mem_io_reserve / ttm_mem_io_free: mem->bus.offset is the physical address of the
 * range in the BAR, which the fault handler turns into pfns).
 *
 * Left out: bulk moves, resource cursors, dmem cgroups, ttm_resource_intersects (the
 * model's managers have no ranges restrictions: fpfn/lpfn are 0), move fences.
 *
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c, include/drm/ttm/ttm_resource.h,
 *   include/drm/ttm/ttm_placement.h, drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_mem_io_reserve,
 *   ttm_mem_io_free (all versions; struct ttm_resource v5.11+, struct ttm_mem_reg before)
 */
import type { ttm_buffer_object } from './ttm_bo.js';
import type { ttm_device } from './ttm_device.js';

/** Memory types (include/drm/ttm/ttm_placement.h). */
export const TTM_PL_SYSTEM = 0;
export const TTM_PL_TT = 1;
export const TTM_PL_VRAM = 2;
export const TTM_PL_PRIV = 3;
export const TTM_NUM_MEM_TYPES = 8;

/** ttm_place flags. */
export const TTM_PL_FLAG_CONTIGUOUS = 1 << 0;
export const TTM_PL_FLAG_TOPDOWN = 1 << 1;
export const TTM_PL_FLAG_TEMPORARY = 1 << 2;
export const TTM_PL_FLAG_DESIRED = 1 << 3;
export const TTM_PL_FLAG_FALLBACK = 1 << 4;

/** struct ttm_place. */
export interface ttm_place {
  readonly fpfn: number;
  readonly lpfn: number;
  readonly mem_type: number;
  readonly flags: number;
}

/** struct ttm_placement. */
export interface ttm_placement {
  num_placement: number;
  placement: ttm_place[];
}

/** struct ttm_bus_placement. */
export interface ttm_bus_placement {
  /** Physical bus address of the start of the resource (0: not reserved). */
  offset: number;
  is_iomem: boolean;
}

/**
 * struct ttm_resource: a placement of `bo` in `mem_type`: `start` is the first page in the
 * manager's space (VRAM: page offset inside the BAR).
 * @kernel include/drm/ttm/ttm_resource.h:struct ttm_resource (v5.11+)
 */
export interface ttm_resource {
  start: number;
  readonly size: number;
  readonly mem_type: number;
  readonly placement: number;
  readonly bus: ttm_bus_placement;
  bo: ttm_buffer_object | null;
}

/** struct ttm_resource_manager_func. */
export interface ttm_resource_manager_func {
  /** Return: the resource or -ENOSPC. */
  alloc(man: ttm_resource_manager, bo: ttm_buffer_object, place: ttm_place): ttm_resource | number;
  free(man: ttm_resource_manager, res: ttm_resource): void;
}

/**
 * struct ttm_resource_manager. `lru` holds the resources of unpinned BOs, least
 * recently used first (pinned ones are on bdev->unevictable / the pinned list).
 * @kernel include/drm/ttm/ttm_resource.h:struct ttm_resource_manager (v5.11+)
 */
export class ttm_resource_manager {
  use_type = false;
  readonly lru: ttm_resource[] = [];
  usage = 0;
  constructor(
    readonly name: string,
    readonly use_tt: boolean,
    /** Size in pages. */
    readonly size: number,
    readonly func: ttm_resource_manager_func,
  ) {}
}

/** ttm_resource_manager_set_used(man, used). @kernel include/drm/ttm/ttm_resource.h (v5.11+) */
export function ttm_resource_manager_set_used(man: ttm_resource_manager, used: boolean): void {
  man.use_type = used;
}

/** ttm_resource_manager_used(man). @kernel include/drm/ttm/ttm_resource.h (v5.11+) */
export function ttm_resource_manager_used(man: ttm_resource_manager): boolean {
  return man.use_type;
}

/** Model: the manager of `mem_type` of bdev (ttm_manager_type). */
function manager(bdev: ttm_device, mem_type: number): ttm_resource_manager {
  return bdev.man_drv[mem_type]!;
}

/**
 * ttm_resource_init(bo, place, res): the common fields of a new resource; it goes on the
 * LRU tail of its manager unless the BO is pinned.
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_init (v5.11+)
 * Return: the resource.
 */
export function ttm_resource_init(
  bo: ttm_buffer_object,
  place: ttm_place,
  start: number,
): ttm_resource {
  const res: ttm_resource = {
    start,
    size: bo.base.size,
    mem_type: place.mem_type,
    placement: place.flags,
    bus: { offset: 0, is_iomem: false },
    bo,
  };
  const man = manager(bo.bdev, place.mem_type);
  man.usage += bo.base.size;
  if (!bo.pin_count) man.lru.push(res);
  return res;
}

/**
 * ttm_resource_fini(man, res): off the LRU, usage dropped.
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_fini (v5.11+)
 */
export function ttm_resource_fini(man: ttm_resource_manager, res: ttm_resource): void {
  const i = man.lru.indexOf(res);
  if (i >= 0) man.lru.splice(i, 1);
  man.usage -= res.size;
}

/**
 * ttm_resource_alloc(bo, place, res_ptr): a new resource from the manager of
 * place->mem_type.
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_alloc (v5.11+)
 * Locking: the manager's own lock (no Step: it protects only the manager's state).
 * Return: the resource or -ENOSPC.
 */
export function ttm_resource_alloc(bo: ttm_buffer_object, place: ttm_place): ttm_resource | number {
  const man = manager(bo.bdev, place.mem_type);
  return man.func.alloc(man, bo, place);
}

/**
 * ttm_resource_free(bo, res_ptr): gives the resource back to its manager at once (VRAM
 * ranges are free for the next allocation from here on) and clears the pointer.
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_free (v5.11+)
 */
export function ttm_resource_free(bo: ttm_buffer_object, res: ttm_resource | null): void {
  if (!res) return;
  const man = manager(bo.bdev, res.mem_type);
  man.func.free(man, res);
  if (bo.resource === res) bo.resource = null;
}

/**
 * ttm_resource_move_to_lru_tail(res): most recently used; pinned BOs' resources are kept
 * off the manager's LRU (ttm_bo_pin moves them to the pinned list).
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_move_to_lru_tail (v5.19+;
 *   ttm_bo_move_to_lru_tail before)
 */
export function ttm_resource_move_to_lru_tail(res: ttm_resource): void {
  const bo = res.bo;
  if (!bo) return;
  const man = manager(bo.bdev, res.mem_type);
  const i = man.lru.indexOf(res);
  if (i >= 0) man.lru.splice(i, 1);
  if (!bo.pin_count) man.lru.push(res);
}

/**
 * ttm_resource_compatible(res, placement, evicting): whether res already satisfies one
 * of the places (same memory type; the model has no range or contiguity limits).
 * @kernel drivers/gpu/drm/ttm/ttm_resource.c:ttm_resource_compatible (all versions;
 *   ttm_bo_mem_compat before v5.19)
 */
export function ttm_resource_compatible(
  res: ttm_resource,
  placement: ttm_placement,
  evicting = false,
): boolean {
  for (let i = 0; i < placement.num_placement; i++) {
    const place = placement.placement[i]!;
    if (place.flags & (evicting ? TTM_PL_FLAG_DESIRED : TTM_PL_FLAG_FALLBACK)) continue;
    if (place.mem_type === res.mem_type) return true;
  }
  return false;
}

/**
 * ttm_mem_io_reserve(bdev, mem): fills mem->bus through the driver (once).
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_mem_io_reserve (v5.10+)
 * Return: 0 or the driver's -errno.
 */
export function ttm_mem_io_reserve(bdev: ttm_device, mem: ttm_resource | null): number {
  if (!mem) return 0;
  if (mem.bus.offset) return 0;
  mem.bus.is_iomem = false;
  if (!bdev.funcs.io_mem_reserve) return 0;
  return bdev.funcs.io_mem_reserve(bdev, mem);
}

/**
 * ttm_mem_io_free(bdev, mem): forgets mem->bus (the next fault reserves again).
 * @kernel drivers/gpu/drm/ttm/ttm_bo_util.c:ttm_mem_io_free (v5.10+)
 */
export function ttm_mem_io_free(bdev: ttm_device, mem: ttm_resource | null): void {
  if (!mem) return;
  if (!mem.bus.offset) return;
  bdev.funcs.io_mem_free?.(bdev, mem);
  mem.bus.offset = 0;
}
