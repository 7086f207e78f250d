/**
 * VFIO containers: /dev/vfio/vfio. Each open is a container; groups join it with
 * VFIO_GROUP_SET_CONTAINER; VFIO_SET_IOMMU picks a registered IOMMU backend (type1) and
 * attaches every group; other ioctls go to the backend (VFIO_IOMMU_MAP_DMA, ...).
 *
 * Left out: noiommu containers, vfio_iommu_driver_allowed (noiommu only), module
 * reference counting of the backends, the iommufd compat container (6.2+).
 *
 * @kernel drivers/vfio/container.c (6.2+; drivers/vfio/vfio.c before) (5.7–6.18)
 */
import type { Op } from '../../../sched/index.js';
import { EINVAL, ENODEV } from '../../include/linux/errno.js';
import type { file, file_operations, inode } from '../../include/linux/mm_types.js';
import { set_fops_rw } from '../../include/linux/fs.js';
import { down_read, down_write, up_read, up_write } from '../../include/linux/spinlock.js';
import { devtmpfs_create_node } from '../../fs/namei.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_SET_IOMMU,
} from '../../include/uapi/linux/vfio.js';
import {
  VFIO_IOMMU_CONTAINER_CLOSE,
  vfio_container,
  vfio_state,
  type vfio_iommu_driver,
} from './vfio.js';
import { VFIO_IOMMU } from './group.js';

/** Container references: the open file and each attached group (kref in the kernel). */
const refs = new WeakMap<vfio_container, number>();

/** vfio_container_get(container). @kernel drivers/vfio/container.c:vfio_container_get (5.7–6.18) */
export function vfio_container_get(container: vfio_container): void {
  refs.set(container, (refs.get(container) ?? 0) + 1);
}

/**
 * vfio_container_put(container): the last reference releases the IOMMU backend's data.
 * @kernel drivers/vfio/container.c:vfio_container_put, vfio_container_release (5.7–6.18)
 */
export function* vfio_container_put(container: vfio_container): Op<void> {
  const n = (refs.get(container) ?? 0) - 1;
  refs.set(container, n);
  if (n > 0) return;
  const driver = container.iommu_driver;
  if (driver) {
    yield* driver.ops.release(container.iommu_data);
    container.iommu_driver = null;
    container.iommu_data = null;
  }
}

/**
 * vfio_fops_open(inode, filep): a new, empty container.
 * @kernel drivers/vfio/container.c:vfio_fops_open (5.7–6.18)
 * Return: 0.
 */
function* vfio_fops_open(_ino: inode, filep: file): Op<number> {
  const container = new vfio_container(currentKernel().nextId('vfio_container'));
  vfio_container_get(container);
  filep.private_data = container;
  return 0;
}

/**
 * vfio_fops_release(inode, filep): tells the backend the container fd is closed (5.12+,
 * ec5e32940cc9 "vfio: iommu driver notify callback") and drops the file's reference.
 * @kernel drivers/vfio/container.c:vfio_fops_release (5.7–6.18)
 */
function* vfio_fops_release(_ino: inode, filep: file): Op<void> {
  const container = filep.private_data as vfio_container;
  const driver = container.iommu_driver;
  if (since(5, 12) && driver?.ops.notify)
    driver.ops.notify(container.iommu_data, VFIO_IOMMU_CONTAINER_CLOSE);
  yield* vfio_container_put(container);
}

/**
 * vfio_ioctl_check_extension(container, arg): without a backend, the first registered
 * driver reporting support (> 0); with one, that driver's answer.
 * @kernel drivers/vfio/container.c:vfio_container_ioctl_check_extension (6.2+;
 *   vfio.c:vfio_ioctl_check_extension before) (5.7–6.18)
 * Locking: takes container->group_lock for read.
 * Return: > 0 supported, 0 not.
 */
function* vfio_ioctl_check_extension(container: vfio_container, arg: number): Op<number> {
  let ret = 0;
  yield* down_read(container.group_lock);
  const driver = container.iommu_driver;
  if (!driver) {
    for (const d of [...vfio_state().iommu_drivers_list]) {
      ret = yield* d.ops.ioctl(null, VFIO_CHECK_EXTENSION, arg);
      if (ret > 0) break;
    }
  } else {
    ret = yield* driver.ops.ioctl(container.iommu_data, VFIO_CHECK_EXTENSION, arg);
  }
  yield* up_read(container.group_lock);
  return ret;
}

/**
 * __vfio_container_attach_groups(container, driver, data): attaches every group; on a
 * failure detaches those done and returns the error.
 * @kernel drivers/vfio/container.c:__vfio_container_attach_groups (5.7–6.18)
 */
function* __vfio_container_attach_groups(
  container: vfio_container,
  driver: vfio_iommu_driver,
  data: unknown,
): Op<number> {
  const done = [];
  for (const group of container.group_list) {
    const ret = yield* driver.ops.attach_group(data, group.iommu_group, VFIO_IOMMU);
    if (ret) {
      for (const g of done) yield* driver.ops.detach_group(data, g.iommu_group);
      return ret;
    }
    done.push(group);
  }
  return 0;
}

/**
 * vfio_ioctl_set_iommu(container, arg): needs at least one group and no backend yet;
 * tries each registered driver: CHECK_EXTENSION(arg) > 0, then open(arg) (a negative
 * number is its ERR_PTR), then attaching all groups; the first that succeeds is kept.
 * @kernel drivers/vfio/container.c:vfio_ioctl_set_iommu (5.7–6.18)
 * Locking: takes container->group_lock for write.
 * Return: 0, -EINVAL (no group, or already set), -ENODEV (no driver took it), or the
 *   last driver's error.
 */
function* vfio_ioctl_set_iommu(container: vfio_container, arg: number): Op<number> {
  let ret = -ENODEV;
  yield* down_write(container.group_lock);
  if (container.group_list.length === 0 || container.iommu_driver) {
    yield* up_write(container.group_lock);
    return -EINVAL;
  }
  for (const driver of [...vfio_state().iommu_drivers_list]) {
    if ((yield* driver.ops.ioctl(null, VFIO_CHECK_EXTENSION, arg)) <= 0) continue;
    const data = driver.ops.open(arg);
    if (typeof data === 'number' && data < 0) {
      ret = data;
      continue;
    }
    ret = yield* __vfio_container_attach_groups(container, driver, data);
    if (ret) {
      yield* driver.ops.release(data);
      continue;
    }
    container.iommu_driver = driver;
    container.iommu_data = data;
    break;
  }
  yield* up_write(container.group_lock);
  return ret;
}

/**
 * vfio_fops_unl_ioctl(filep, cmd, arg): GET_API_VERSION, CHECK_EXTENSION, SET_IOMMU;
 * anything else goes to the backend (under group_lock for read), or -EINVAL without one.
 * @kernel drivers/vfio/container.c:vfio_fops_unl_ioctl (5.7–6.18)
 */
function* vfio_fops_unl_ioctl(filep: file, cmd: number, arg: unknown): Op<number> {
  const container = filep.private_data as vfio_container;
  switch (cmd) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION:
      return yield* vfio_ioctl_check_extension(container, arg as number);
    case VFIO_SET_IOMMU:
      return yield* vfio_ioctl_set_iommu(container, arg as number);
    default: {
      let ret = -EINVAL;
      yield* down_read(container.group_lock);
      const driver = container.iommu_driver;
      if (driver) ret = yield* driver.ops.ioctl(container.iommu_data, cmd, arg);
      yield* up_read(container.group_lock);
      return ret;
    }
  }
}

/**
 * vfio_fops: the operations of /dev/vfio/vfio.
 * @kernel drivers/vfio/container.c:vfio_fops (5.7–6.18)
 */
export const vfio_container_fops: file_operations = {
  name: 'vfio_fops',
  release: vfio_fops_release,
  unlocked_ioctl: vfio_fops_unl_ioctl,
};
set_fops_rw(vfio_container_fops, { open: vfio_fops_open });

/**
 * vfio_container_init(): registers the misc device /dev/vfio/vfio.
 * @kernel drivers/vfio/container.c:vfio_container_init (6.2+; vfio.c:vfio_init before)
 */
export function vfio_container_init(): void {
  devtmpfs_create_node('vfio/vfio', vfio_container_fops);
}

export { VFIO_IOMMU };
