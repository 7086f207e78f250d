/**
 * DRM open files (drivers/gpu/drm/drm_file.c): struct drm_file with its GEM handle table,
 * drm_open (the file's f_mapping becomes the device's shared address space, so every
 * mapping of every open is in one i_mmap tree for drm_vma_node_unmap) and drm_release
 * (the handles go, dropping their references).
 *
 * The model has no /dev/dri nodes: {@link drm_open_fd} stands for open("/dev/dri/cardN")
 * (a file on the device's anonymous inode, drm_open, a descriptor in current's table).
 *
 * Left out: minors and render nodes, master/authentication, events, drm_file lists.
 *
 * @kernel drivers/gpu/drm/drm_file.c:drm_open, drm_open_helper, drm_file_alloc,
 *   drm_release, drivers/gpu/drm/drm_gem.c:drm_gem_open, drm_gem_release (all versions)
 */
import type { Op } from '../../../../sched/index.js';
import type { file, file_operations, inode } from '../../../include/linux/mm_types.js';
import { alloc_file, ihold } from '../../../fs/inode.js';
import { fd_install, get_unused_fd_flags } from '../../../include/linux/fdtable.js';
import { fput } from '../../../fs/file_table.js';
import type { drm_device, drm_gem_object } from './drm_gem.js';
import { drm_gem_handle_delete } from './drm_gem.js';

/**
 * struct drm_file: one open of a DRM device.
 * @kernel include/drm/drm_file.h:struct drm_file (all versions)
 */
export class drm_file {
  /** object_idr: handle -> object. */
  readonly object_idr = new Map<number, drm_gem_object>();
  next_handle = 1;
  filp: file | null = null;
  constructor(
    /** file_priv->minor->dev */
    readonly minor_dev: drm_device,
  ) {}
}

/**
 * drm_file_alloc(minor): a new drm_file (drm_gem_open: empty handle table).
 * @kernel drivers/gpu/drm/drm_file.c:drm_file_alloc (all versions)
 */
export function drm_file_alloc(dev: drm_device): drm_file {
  return new drm_file(dev);
}

/**
 * drm_open(inode, filp): allocates the drm_file, stores it in filp->private_data and
 * points filp->f_mapping at dev->anon_inode->i_mapping.
 * @kernel drivers/gpu/drm/drm_file.c:drm_open, drm_open_helper (all versions)
 * Return: 0.
 */
export function drm_open(dev: drm_device, filp: file): number {
  const priv = drm_file_alloc(dev);
  priv.filp = filp;
  filp.private_data = priv;
  filp.f_mapping = dev.anon_inode.i_mapping;
  return 0;
}

/**
 * drm_release(inode, filp): drm_gem_release (every handle deleted) on the last close.
 * @kernel drivers/gpu/drm/drm_file.c:drm_release, drm_gem.c:drm_gem_release (all versions)
 */
export function drm_release(_inode: inode, filp: file): void {
  const priv = filp.private_data as drm_file | null;
  if (!priv) return;
  for (const h of [...priv.object_idr.keys()]) drm_gem_handle_delete(priv, h);
}

/**
 * Model of open("/dev/dri/cardN", flags) by current: a file on the device's anonymous
 * inode with the driver's fops, drm_open, and a descriptor.
 * Return: the descriptor or -errno (-EMFILE).
 */
export function* drm_open_fd(dev: drm_device, fops: file_operations, flags: number): Op<number> {
  const i = dev.anon_inode;
  ihold(i);
  const f = alloc_file(`/dev/dri/card0`, flags, i, fops);
  drm_open(dev, f);
  const fd = yield* get_unused_fd_flags(flags);
  if (fd < 0) {
    fput(f);
    return fd;
  }
  yield* fd_install(fd, f);
  return fd;
}
