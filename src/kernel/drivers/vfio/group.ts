/**
 * VFIO groups: /dev/vfio/<iommu group id>, one opener at a time, attached to a container
 * with VFIO_GROUP_SET_CONTAINER, handing out device fds with VFIO_GROUP_GET_DEVICE_FD.
 *
 * Left out: the noiommu and emulated (mdev) group types, KVM association, DMA ownership
 * claiming (iommu_group_claim_dma_owner, 5.19+: the model leaves the group on its default
 * domain until type1 attaches its own), group viability with non-vfio drivers bound.
 *
 * @kernel drivers/vfio/group.c (6.2+; drivers/vfio/vfio.c before) (5.7–6.18)
 */
import type { Op } from '../../../sched/index.js';
import { EBADF, EBUSY, EINVAL, ENODEV, ENOTTY } from '../../include/linux/errno.js';
import type { file, file_operations, inode } from '../../include/linux/mm_types.js';
import { down_write, mutex_lock, mutex_unlock, up_write } from '../../include/linux/spinlock.js';
import { fd_install, fget, get_unused_fd_flags } from '../../include/linux/fdtable.js';
import { O_CLOEXEC, set_fops_rw } from '../../include/linux/fs.js';
import { fput } from '../../fs/file_table.js';
import { devtmpfs_create_node } from '../../fs/namei.js';
import { currentKernel } from '../../kernel/kernel.js';
import type { iommu_group } from '../iommu/iommu.js';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_STATUS_MINSZ,
  VFIO_GROUP_UNSET_CONTAINER,
  type vfio_group_status,
} from '../../include/uapi/linux/vfio.js';
import { vfio_group, type vfio_container, type vfio_device } from './vfio.js';
import { vfio_container_fops, vfio_container_get, vfio_container_put } from './container.js';
import { vfio_device_get_from_name, vfio_device_open_file, vfio_device_put } from './vfio_main.js';

/** enum vfio_group_type (5.15+): VFIO_IOMMU, the type passed to attach_group. */
export const VFIO_IOMMU = 0;

interface group_state {
  readonly groups: Map<number, vfio_group>;
}
function st(): group_state {
  const k = currentKernel();
  return ((k.sub.vfio_group as group_state | undefined) ??= { groups: new Map() });
}

/**
 * vfio_group_find_or_alloc(dev): the vfio_group of an IOMMU group, created with its
 * /dev/vfio/<id> node on first use.
 * @kernel drivers/vfio/group.c:vfio_group_find_or_alloc, vfio_create_group (6.2+;
 *   vfio.c:vfio_group_get_from_iommu/vfio_create_group before)
 * Return: the group.
 */
export function vfio_group_get_or_create(iommu_group: iommu_group): vfio_group {
  let group = st().groups.get(iommu_group.id);
  if (!group) {
    group = new vfio_group(iommu_group);
    st().groups.set(iommu_group.id, group);
    const ino = devtmpfs_create_node(`vfio/${iommu_group.id}`, vfio_group_fops);
    ino.i_private = group;
  }
  return group;
}

/** Model lookup: the vfio_group of IOMMU group `id`, or null. */
export function vfio_group_find(id: number): vfio_group | null {
  return st().groups.get(id) ?? null;
}

/**
 * vfio_group_remove_device: takes an unregistered device off its group's list.
 * @kernel drivers/vfio/vfio_main.c:vfio_unregister_group_dev (list_del of device_list)
 * Locking: takes group_lock.
 */
export function* vfio_group_remove_device(group: vfio_group, device: vfio_device): Op<void> {
  yield* mutex_lock(group.group_lock);
  const i = group.device_list.indexOf(device);
  if (i >= 0) group.device_list.splice(i, 1);
  yield* mutex_unlock(group.group_lock);
}

/**
 * vfio_group_fops_open(inode, filep): one opener at a time.
 * @kernel drivers/vfio/group.c:vfio_group_fops_open (5.7–6.18)
 * Return: 0, -EBUSY when the group is already open, -ENODEV when it has no devices.
 */
function* vfio_group_fops_open(ino: inode, filep: file): Op<number> {
  const group = ino.i_private as vfio_group;
  yield* mutex_lock(group.group_lock);
  let ret = 0;
  if (group.opened) ret = -EBUSY;
  else if (group.device_list.length === 0) ret = -ENODEV;
  else {
    group.opened = true;
    filep.private_data = group;
  }
  yield* mutex_unlock(group.group_lock);
  return ret;
}

/**
 * vfio_group_fops_release(inode, filep): unsets the container and allows a new opener.
 * @kernel drivers/vfio/group.c:vfio_group_fops_release (5.7–6.18)
 */
function* vfio_group_fops_release(_ino: inode, filep: file): Op<void> {
  const group = filep.private_data as vfio_group | null;
  // A failed ->open is not FMODE_OPENED: __fput calls no ->release for it.
  if (!group) return;
  if (group.container) yield* __vfio_group_unset_container(group);
  group.opened = false;
}

/**
 * vfio_group_ioctl_set_container(group, fd): attaches the group to the container of fd;
 * a container with an IOMMU driver attaches the group's IOMMU group to its domain.
 * @kernel drivers/vfio/group.c:vfio_group_ioctl_set_container, container.c:
 *   vfio_container_attach_group (6.2+; vfio.c:vfio_group_set_container before)
 * Locking: takes container->group_lock for write.
 * Return: 0, -EINVAL (already set, not a container fd), -EBADF, or attach_group's error.
 */
function* vfio_group_set_container(group: vfio_group, container_fd: number): Op<number> {
  if (group.container || group.container_users) return -EINVAL;
  const f = yield* fget(container_fd);
  if (!f) return -EBADF;
  if (f.f_op !== vfio_container_fops) {
    fput(f);
    return -EINVAL;
  }
  const container = f.private_data as vfio_container;
  yield* down_write(container.group_lock);
  let ret = 0;
  const driver = container.iommu_driver;
  if (driver)
    ret = yield* driver.ops.attach_group(container.iommu_data, group.iommu_group, VFIO_IOMMU);
  if (!ret) {
    group.container = container;
    container.group_list.push(group);
    vfio_container_get(container);
    group.container_users = 1;
  }
  yield* up_write(container.group_lock);
  fput(f);
  return ret;
}

/**
 * __vfio_group_unset_container(group): detaches the group; the last group leaving a
 * container releases its IOMMU driver data.
 * @kernel drivers/vfio/container.c:vfio_group_detach_container (6.2+;
 *   vfio.c:__vfio_group_unset_container before)
 * Locking: takes container->group_lock for write.
 */
function* __vfio_group_unset_container(group: vfio_group): Op<void> {
  const container = group.container!;
  yield* down_write(container.group_lock);
  const driver = container.iommu_driver;
  if (driver) yield* driver.ops.detach_group(container.iommu_data, group.iommu_group);
  group.container = null;
  group.container_users = 0;
  const i = container.group_list.indexOf(group);
  if (i >= 0) container.group_list.splice(i, 1);
  if (driver && container.group_list.length === 0) {
    yield* driver.ops.release(container.iommu_data);
    container.iommu_driver = null;
    container.iommu_data = null;
  }
  yield* up_write(container.group_lock);
  yield* vfio_container_put(container);
}

/**
 * vfio_group_ioctl_unset_container(group).
 * @kernel drivers/vfio/group.c:vfio_group_ioctl_unset_container (5.7–6.18)
 * Return: 0, -EINVAL without a container, -EBUSY while device fds are open.
 */
function* vfio_group_unset_container(group: vfio_group): Op<number> {
  if (!group.container) return -EINVAL;
  if (group.container_users !== 1) return -EBUSY;
  yield* __vfio_group_unset_container(group);
  return 0;
}

/**
 * vfio_group_ioctl_get_device_fd(group, name): opens the named device and installs a
 * device fd. Needs a container with an IOMMU driver.
 * @kernel drivers/vfio/group.c:vfio_group_ioctl_get_device_fd (6.2+;
 *   vfio.c:vfio_group_get_device_fd before) (5.7–6.18)
 * Return: the fd, or -EINVAL (no container/IOMMU), -ENODEV (no such device), the open's
 *   -errno.
 */
function* vfio_group_get_device_fd(group: vfio_group, name: string): Op<number> {
  if (!group.container_users || !group.container?.iommu_driver) return -EINVAL;
  const device = vfio_device_get_from_name(group, name);
  if (!device) return -ENODEV;
  const fdno = yield* get_unused_fd_flags(O_CLOEXEC);
  if (fdno < 0) {
    vfio_device_put(device);
    return fdno;
  }
  const filep = yield* vfio_device_open_file(device);
  if (typeof filep === 'number') {
    vfio_device_put(device);
    return filep;
  }
  group.container_users++;
  yield* fd_install(fdno, filep);
  return fdno;
}

/**
 * vfio_group_fops_unl_ioctl(filep, cmd, arg). `arg` is the container fd number for
 * SET_CONTAINER, the device name for GET_DEVICE_FD, a vfio_group_status for GET_STATUS.
 * @kernel drivers/vfio/group.c:vfio_group_fops_unl_ioctl (5.7–6.18)
 * Return: per command; -ENOTTY for others.
 */
function* vfio_group_fops_unl_ioctl(filep: file, cmd: number, arg: unknown): Op<number> {
  const group = filep.private_data as vfio_group;
  switch (cmd) {
    case VFIO_GROUP_GET_STATUS: {
      const status = arg as vfio_group_status;
      if (status.argsz < VFIO_GROUP_STATUS_MINSZ) return -EINVAL;
      status.flags = VFIO_GROUP_FLAGS_VIABLE; // vfio_group_viable: all devices vfio-bound
      if (group.container) status.flags |= VFIO_GROUP_FLAGS_CONTAINER_SET;
      return 0;
    }
    case VFIO_GROUP_SET_CONTAINER:
      return yield* vfio_group_set_container(group, arg as number);
    case VFIO_GROUP_UNSET_CONTAINER:
      return yield* vfio_group_unset_container(group);
    case VFIO_GROUP_GET_DEVICE_FD:
      return yield* vfio_group_get_device_fd(group, arg as string);
    default:
      return -ENOTTY;
  }
}

/**
 * vfio_group_fops: the operations of /dev/vfio/<id>.
 * @kernel drivers/vfio/group.c:vfio_group_fops (5.7–6.18)
 */
export const vfio_group_fops: file_operations = {
  name: 'vfio_group_fops',
  release: vfio_group_fops_release,
  unlocked_ioctl: vfio_group_fops_unl_ioctl,
};
set_fops_rw(vfio_group_fops, { open: vfio_group_fops_open });
