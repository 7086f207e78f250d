/**
 * GEM/TTM glue (drivers/gpu/drm/drm_gem_ttm_helper.c): the GEM ->mmap of TTM-based drivers.
 *
 * @kernel drivers/gpu/drm/drm_gem_ttm_helper.c:drm_gem_ttm_mmap (v5.11+)
 */
import type { Op } from '../../../../sched/index.js';
import type { vm_area_struct } from '../../../include/linux/mm_types.js';
import { drm_gem_object_put, type drm_gem_object } from './drm_gem.js';
import type { ttm_buffer_object } from './ttm/ttm_bo.js';
import { ttm_bo_mmap_obj } from './ttm/ttm_bo_vm.js';

/** drm_gem_ttm_of_gem(gem): the TTM BO embedding gem (the model's back pointer). */
export function drm_gem_ttm_of_gem(gem: drm_gem_object): ttm_buffer_object {
  return gem_to_ttm.get(gem)!;
}

const gem_to_ttm = new WeakMap<drm_gem_object, ttm_buffer_object>();

/** Model: records the container of gem (done when the BO is created). */
export function drm_gem_ttm_set_container(gem: drm_gem_object, bo: ttm_buffer_object): void {
  gem_to_ttm.set(gem, bo);
}

/**
 * drm_gem_ttm_mmap(gem, vma): ttm_bo_mmap_obj, then drops the GEM reference
 * drm_gem_mmap_obj took (TTM keeps its own in vm_private_data).
 * @kernel drivers/gpu/drm/drm_gem_ttm_helper.c:drm_gem_ttm_mmap (v5.11+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* drm_gem_ttm_mmap(gem: drm_gem_object, vma: vm_area_struct): Op<number> {
  const ret = ttm_bo_mmap_obj(vma, drm_gem_ttm_of_gem(gem));
  if (ret < 0) return ret;
  /* ttm has its own object refcounting, so drop gem reference to avoid double accounting. */
  drm_gem_object_put(gem);
  return 0;
}
