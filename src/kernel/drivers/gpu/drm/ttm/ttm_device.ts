/**
 * TTM devices (drivers/gpu/drm/ttm/ttm_device.c): the driver callbacks (ttm_device_funcs),
 * the memory-type managers, the page pool, and dev_mapping: the address space every user
 * mapping of the device's BOs lives in (the DRM device's anon inode), which
 * ttm_bo_unmap_virtual zaps through. The system manager (ttm_sys_manager.c) is here too:
 * TTM_PL_SYSTEM resources have no range, their pages live in the BO's ttm_tt.
 *
 * Left out: the global swapout shrinker, the workqueue (no delayed destroy), the
 * unevictable list as a list (pinned resources are simply kept off the LRU).
 *
 * @kernel drivers/gpu/drm/ttm/ttm_device.c, drivers/gpu/drm/ttm/ttm_sys_manager.c,
 *   include/drm/ttm/ttm_device.h (v5.13+ names; ttm_bo_device in bo_driver.h before, same
 *   roles)
 */
import type { Op } from '../../../../../sched/index.js';
import type { address_space } from '../../../../include/linux/mm_types.js';
import type { device } from '../../../base/core.js';
import type { drm_vma_offset_manager } from '../drm_vma_manager.js';
import { ttm_pool, ttm_pool_init } from './ttm_pool.js';
import type { ttm_buffer_object, ttm_operation_ctx } from './ttm_bo.js';
import type { ttm_tt } from './ttm_tt.js';
import {
  TTM_NUM_MEM_TYPES,
  TTM_PL_SYSTEM,
  ttm_resource_fini,
  ttm_resource_init,
  ttm_resource_manager,
  ttm_resource_manager_set_used,
  type ttm_place,
  type ttm_placement,
  type ttm_resource,
} from './ttm_resource.js';

/**
 * struct ttm_device_funcs (the callbacks the model uses).
 * @kernel include/drm/ttm/ttm_device.h:struct ttm_device_funcs (all versions)
 */
export interface ttm_device_funcs {
  ttm_tt_create(bo: ttm_buffer_object, page_flags: number): ttm_tt | null;
  ttm_tt_populate?(bdev: ttm_device, ttm: ttm_tt, ctx: ttm_operation_ctx): Op<number>;
  ttm_tt_unpopulate?(bdev: ttm_device, ttm: ttm_tt): void;
  ttm_tt_destroy?(bdev: ttm_device, ttm: ttm_tt): void;
  eviction_valuable(bo: ttm_buffer_object, place: ttm_place): boolean;
  /** Fills `placement` with where an evicted bo should go. */
  evict_flags(bo: ttm_buffer_object, placement: ttm_placement): void;
  /** Moves bo to new_mem (copy and free of the old placement). Return 0/-errno. */
  move(
    bo: ttm_buffer_object,
    evict: boolean,
    ctx: ttm_operation_ctx,
    new_mem: ttm_resource,
  ): Op<number>;
  io_mem_reserve?(bdev: ttm_device, mem: ttm_resource): number;
  io_mem_free?(bdev: ttm_device, mem: ttm_resource): void;
  io_mem_pfn?(bo: ttm_buffer_object, page_offset: number): number;
  release_notify?(bo: ttm_buffer_object): void;
  delete_mem_notify?(bo: ttm_buffer_object): void;
}

/**
 * struct ttm_device.
 * @kernel include/drm/ttm/ttm_device.h:struct ttm_device (v5.13+)
 */
export class ttm_device {
  readonly man_drv: (ttm_resource_manager | null)[] = new Array<ttm_resource_manager | null>(
    TTM_NUM_MEM_TYPES,
  ).fill(null);
  readonly pool: ttm_pool;
  /** The driver's device (container_of in the kernel). */
  priv: unknown = null;
  constructor(
    readonly name: string,
    readonly funcs: ttm_device_funcs,
    readonly dev: device,
    readonly dev_mapping: address_space,
    readonly vma_manager: drm_vma_offset_manager,
    use_dma_alloc: boolean,
  ) {
    this.pool = ttm_pool_init(dev, use_dma_alloc);
  }
}

/** The system manager's allocator: resources without a range. */
const ttm_sys_manager_func = {
  alloc(_man: ttm_resource_manager, bo: ttm_buffer_object, place: ttm_place): ttm_resource {
    return ttm_resource_init(bo, place, 0);
  },
  free(man: ttm_resource_manager, res: ttm_resource): void {
    ttm_resource_fini(man, res);
  },
};

/**
 * ttm_sys_man_init(bdev): the TTM_PL_SYSTEM manager (use_tt, no size limit).
 * @kernel drivers/gpu/drm/ttm/ttm_sys_manager.c:ttm_sys_man_init (v5.11+)
 */
export function ttm_sys_man_init(bdev: ttm_device): void {
  const man = new ttm_resource_manager('system', true, 0, ttm_sys_manager_func);
  ttm_resource_manager_set_used(man, true);
  bdev.man_drv[TTM_PL_SYSTEM] = man;
}

/**
 * ttm_device_init(bdev, funcs, dev, mapping, vma_manager, use_dma_alloc, use_dma32): a
 * device with its system manager and page pool.
 * @kernel drivers/gpu/drm/ttm/ttm_device.c:ttm_device_init (v5.13+; ttm_bo_device_init before)
 * Return: the device.
 */
export function ttm_device_init(
  name: string,
  funcs: ttm_device_funcs,
  dev: device,
  mapping: address_space,
  vma_manager: drm_vma_offset_manager,
  use_dma_alloc: boolean,
): ttm_device {
  const bdev = new ttm_device(name, funcs, dev, mapping, vma_manager, use_dma_alloc);
  ttm_sys_man_init(bdev);
  return bdev;
}

/**
 * ttm_manager_type(bdev, mem_type). @kernel include/drm/ttm/ttm_device.h:ttm_manager_type (v5.11+)
 */
export function ttm_manager_type(bdev: ttm_device, mem_type: number): ttm_resource_manager | null {
  return bdev.man_drv[mem_type] ?? null;
}

/**
 * ttm_set_driver_manager(bdev, type, manager).
 * @kernel include/drm/ttm/ttm_device.h:ttm_set_driver_manager (v5.11+)
 */
export function ttm_set_driver_manager(
  bdev: ttm_device,
  type: number,
  man: ttm_resource_manager | null,
): void {
  bdev.man_drv[type] = man;
}
