/**
 * GEM objects (drivers/gpu/drm/drm_gem.c): the driver-independent buffer object with its
 * fake mmap offset (vma_node), its reservation object, per-file handles, and the mmap
 * entry point drm_gem_mmap(): the VMA's vm_pgoff must be exactly the start of an object's
 * offset range; the opener must have a handle to it (-EACCES otherwise); the VMA must not
 * be larger than the object; then the object's ->mmap sets the VMA up (TTM:
 * ttm_bo_mmap_obj). The VMA keeps the fake offset as vm_pgoff, which is what lets
 * drm_vma_node_unmap() find it in the device's shared address space.
 *
 * Also struct drm_device (the part the model needs): its vma offset manager and the
 * anonymous inode whose address space every open of the device shares (drm_fs_inode_new /
 * drm_open: filp->f_mapping = dev->anon_inode->i_mapping).
 *
 * Left out: object names (flink), the handle idr's locking (handles are per-file maps),
 * drm_dev_enter/unplug (drm_dev_is_unplugged is a flag), obj->funcs without ->mmap (the
 * legacy vm_ops path), shmem and CMA helpers, GEM LRU.
 *
 * @kernel drivers/gpu/drm/drm_gem.c, include/drm/drm_gem.h, drivers/gpu/drm/drm_drv.c
 *   (all versions)
 */
import type { Op } from '../../../../sched/index.js';
import type {
  file,
  inode,
  vm_area_struct,
  vm_operations_struct,
} from '../../../include/linux/mm_types.js';
import { EACCES, EINVAL, ENODEV } from '../../../include/linux/errno.js';
import { VM_DONTEXPAND, vma_pages } from '../../../include/linux/mm.js';
import { WARN_ON } from '../../../kernel/panic.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { new_inode } from '../../../fs/inode.js';
import type { device } from '../../base/core.js';
import { dma_resv, dma_resv_init } from '../../dma-buf/dma-resv.js';
import type { dma_buf, dma_buf_attachment } from '../../dma-buf/dma-buf.js';
import {
  drm_vma_node_init,
  drm_vma_node_is_allowed,
  drm_vma_node_size,
  drm_vma_offset_exact_lookup_locked,
  drm_vma_offset_lock_lookup,
  drm_vma_offset_manager,
  drm_vma_offset_manager_init,
  drm_vma_offset_unlock_lookup,
  drm_vma_node_allow,
  drm_vma_node_revoke,
  type drm_vma_offset_node,
} from './drm_vma_manager.js';
import type { drm_file } from './drm_file.js';

/**
 * struct drm_gem_object_funcs (the hooks the model uses).
 * @kernel include/drm/drm_gem.h:struct drm_gem_object_funcs (all versions)
 */
export interface drm_gem_object_funcs {
  /** ->free: the last reference is gone. */
  free(obj: drm_gem_object): void;
  /** ->mmap: sets up the VMA (TTM: drm_gem_ttm_mmap -> ttm_bo_mmap_obj). Return 0/-errno. */
  mmap?(obj: drm_gem_object, vma: vm_area_struct): Op<number>;
  /** ->export: the dma-buf for PRIME export, or -errno. */
  export?(obj: drm_gem_object, flags: number): dma_buf | number;
  /** ->vm_ops: installed by drm_gem_mmap_obj before ->mmap. */
  readonly vm_ops: vm_operations_struct | null;
}

/**
 * struct drm_driver (the part the model uses).
 * @kernel include/drm/drm_drv.h:struct drm_driver (all versions)
 */
export interface drm_driver {
  readonly name: string;
}

/**
 * struct drm_device: the DRM device of a bound PCI function.
 * @kernel include/drm/drm_device.h:struct drm_device (all versions)
 */
export class drm_device {
  readonly vma_offset_manager: drm_vma_offset_manager;
  /** dev->anon_inode: every open of the device maps through its address space. */
  readonly anon_inode: inode;
  unplugged = false;
  constructor(
    readonly driver: drm_driver,
    readonly dev: device,
  ) {
    this.vma_offset_manager = drm_vma_offset_manager_init(`drm[${dev.name}].vma_offset_manager`);
    this.anon_inode = new_inode({ s_type: 'drm', s_nowriteback: true }, 'anon');
  }
}

/** drm_dev_is_unplugged(dev). @kernel include/drm/drm_drv.h:drm_dev_is_unplugged (all versions) */
export function drm_dev_is_unplugged(dev: drm_device): boolean {
  return dev.unplugged;
}

/** container_of(node, struct drm_gem_object, vma_node): the model's back pointer. */
const gem_of_node = new WeakMap<drm_vma_offset_node, drm_gem_object>();

/**
 * struct drm_gem_object. `refcount` is its kref; `resv` points at `_resv` unless shared.
 * @kernel include/drm/drm_gem.h:struct drm_gem_object (all versions)
 */
export class drm_gem_object {
  refcount = 1;
  handle_count = 0;
  readonly vma_node: drm_vma_offset_node = drm_vma_node_init();
  readonly _resv: dma_resv;
  resv: dma_resv;
  /** obj->dma_buf: the exported dma-buf while one exists. */
  dma_buf: dma_buf | null = null;
  /** obj->import_attach: set for imported objects. */
  import_attach: dma_buf_attachment | null = null;
  funcs: drm_gem_object_funcs | null = null;
  constructor(
    readonly dev: drm_device,
    readonly size: number,
    /** A name for locks and reports, e.g. "pfngpu BO 3". */
    readonly name: string,
  ) {
    this._resv = dma_resv_init(name);
    this.resv = this._resv;
    gem_of_node.set(this.vma_node, this);
  }
}

/**
 * drm_gem_private_object_init(dev, obj, size): refcount 1, no backing store; the
 * reservation is the object's own.
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_private_object_init (all versions)
 * Return: the object.
 */
export function drm_gem_private_object_init(
  dev: drm_device,
  size: number,
  name: string,
): drm_gem_object {
  return new drm_gem_object(dev, size, name);
}

/** drm_gem_object_get(obj). @kernel include/drm/drm_gem.h:drm_gem_object_get (all versions) */
export function drm_gem_object_get(obj: drm_gem_object): void {
  WARN_ON(obj.refcount <= 0);
  obj.refcount++;
}

/**
 * drm_gem_object_put(obj): drops a reference; the last one calls ->free.
 * @kernel include/drm/drm_gem.h:drm_gem_object_put, drm_gem.c:drm_gem_object_free (all versions)
 * Locking: any (the free path of the model takes no blocking lock).
 */
export function drm_gem_object_put(obj: drm_gem_object): void {
  if (WARN_ON(obj.refcount <= 0)) return;
  if (--obj.refcount === 0) obj.funcs?.free(obj);
}

/**
 * drm_gem_handle_create(file_priv, obj): a new handle in the file's table (taking a
 * reference), and permission for the file to mmap the object.
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_handle_create, drm_gem_handle_create_tail
 *   (all versions)
 * Return: the handle (> 0).
 */
export function drm_gem_handle_create(file_priv: drm_file, obj: drm_gem_object): number {
  drm_gem_object_get(obj);
  obj.handle_count++;
  const handle = file_priv.next_handle++;
  file_priv.object_idr.set(handle, obj);
  drm_vma_node_allow(obj.vma_node, file_priv);
  return handle;
}

/**
 * drm_gem_object_lookup(filp, handle): the object with a reference, or null.
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_object_lookup (all versions)
 */
export function drm_gem_object_lookup(file_priv: drm_file, handle: number): drm_gem_object | null {
  const obj = file_priv.object_idr.get(handle) ?? null;
  if (obj) drm_gem_object_get(obj);
  return obj;
}

/**
 * drm_gem_handle_delete(filp, handle): removes the handle, revokes the file's mmap
 * permission, drops the handle's reference.
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_handle_delete, drm_gem_object_release_handle
 *   (all versions)
 * Return: 0 or -EINVAL for an unknown handle.
 */
export function drm_gem_handle_delete(file_priv: drm_file, handle: number): number {
  const obj = file_priv.object_idr.get(handle);
  if (!obj) return -EINVAL;
  file_priv.object_idr.delete(handle);
  drm_vma_node_revoke(obj.vma_node, file_priv);
  obj.handle_count--;
  drm_gem_object_put(obj);
  return 0;
}

/**
 * drm_gem_mmap_obj(obj, obj_size, vma): the VMA may not be larger than the object
 * (-EINVAL); takes the mapping's reference, sets vm_private_data and the object's vm_ops,
 * then ->mmap (WARN if it did not set VM_DONTEXPAND).
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_mmap_obj (all versions with obj->funcs->mmap,
 *   v5.11+; earlier drivers called ttm_bo_mmap from their own fops, same VMA setup)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno (the reference is dropped again on failure).
 */
export function* drm_gem_mmap_obj(
  obj: drm_gem_object,
  obj_size: number,
  vma: vm_area_struct,
): Op<number> {
  /* Check for valid size. */
  if (obj_size < vma.vm_end - vma.vm_start) return -EINVAL;
  /* Take a ref for this mapping of the object. */
  drm_gem_object_get(obj);
  vma.vm_private_data = obj;
  vma.vm_ops = obj.funcs?.vm_ops ?? null;
  if (obj.funcs?.mmap) {
    const ret = yield* obj.funcs.mmap(obj, vma);
    if (ret) {
      drm_gem_object_put(obj);
      return ret;
    }
    WARN_ON(!(vma.vm_flags & VM_DONTEXPAND));
    return 0;
  }
  drm_gem_object_put(obj);
  return -EINVAL;
}

/**
 * drm_gem_mmap(filp, vma): the file_operations.mmap of GEM drivers: looks up the object
 * whose fake offset range starts exactly at vm_pgoff and spans the VMA (-EINVAL if none or
 * dying); the opener needs a handle (-EACCES); then drm_gem_mmap_obj.
 * @kernel drivers/gpu/drm/drm_gem.c:drm_gem_mmap (all versions)
 * Locking: mmap_lock held for write; takes vm_lock for read.
 * Return: 0 or -errno (-ENODEV for an unplugged device).
 */
export function* drm_gem_mmap(filp: file, vma: vm_area_struct): Op<number> {
  const priv = filp.private_data as drm_file;
  const dev = priv.minor_dev;
  if (drm_dev_is_unplugged(dev)) return -ENODEV;
  const mgr = dev.vma_offset_manager;
  yield* drm_vma_offset_lock_lookup(mgr);
  const node = drm_vma_offset_exact_lookup_locked(mgr, vma.vm_pgoff, vma_pages(vma));
  let obj: drm_gem_object | null = null;
  if (node) {
    obj = gem_of_node.get(node) ?? null;
    /* kref_get_unless_zero */
    if (obj && obj.refcount > 0) obj.refcount++;
    else obj = null;
  }
  drm_vma_offset_unlock_lookup(mgr);
  if (!obj) return -EINVAL;
  if (!drm_vma_node_is_allowed(node!, priv)) {
    drm_gem_object_put(obj);
    return -EACCES;
  }
  const ret = yield* drm_gem_mmap_obj(obj, drm_vma_node_size(node!) * 4096, vma);
  drm_gem_object_put(obj);
  return ret;
}

/** Model: a fresh id for an object of dev (deterministic per kernel). */
export function drm_gem_next_id(): number {
  return currentKernel().nextId('drm_gem');
}
