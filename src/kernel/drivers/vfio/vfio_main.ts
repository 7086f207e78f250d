/**
 * The VFIO core: registering a bus driver's vfio_device in its group, the device file
 * (open on VFIO_GROUP_GET_DEVICE_FD, ioctl/read/write/mmap dispatch to the bus driver,
 * release on the last close), device references, and the 2021 RFC's device lookup from
 * a VMA and its per-device notifier chain.
 *
 * Device files: ≤6.9 each device fd is an anon_inode file ("[vfio-device]") sharing the
 * kernel's anonymous inode; 6.10+ (b7c5e64fecfa "vfio: Create vfio_fs_type with inode per
 * device") every vfio_device has an inode of the vfio pseudo file system and all its fds
 * use `device->inode->i_mapping` as f_mapping, so unmap_mapping_range() on it reaches
 * every mmap of the device (vfio-pci's vfio_pci_zap_bars, 6.10+).
 *
 * Left out: the cdev interface and iommufd binding (6.6+), device sets, KVM, the
 * noiommu mode, driver `match` with vf_token, `vfio_device_get_from_dev`.
 *
 * @kernel drivers/vfio/vfio_main.c (6.1+; drivers/vfio/vfio.c before) (5.7–6.18)
 */
import type { Op } from '../../../sched/index.js';
import { EINVAL } from '../../include/linux/errno.js';
import type {
  file,
  inode,
  vm_area_struct,
  vm_operations_struct,
} from '../../include/linux/mm_types.js';
import { mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import {
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  set_fops_rw,
  type file_operations_rw,
} from '../../include/linux/fs.js';
import type { file_operations } from '../../include/linux/mm_types.js';
import { anon_inode_getfile } from '../../fs/anon_inodes.js';
import { new_inode } from '../../fs/inode.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { WARN_ON } from '../../kernel/panic.js';
import { unmap_mapping_range } from '../../mm/memory.zap.js';
import { O_RDWR } from '../../fs/inode.js';
import { vfio_device, NOTIFY_STOP_MASK, type notifier_block, type vfio_group } from './vfio.js';
import { vfio_group_get_or_create, vfio_group_remove_device } from './group.js';

/**
 * The vfio pseudo file system's super block (6.10+).
 * @kernel drivers/vfio/vfio_main.c:vfio_fs_type (v6.10+, b7c5e64fecfa)
 */
function vfio_fs_sb() {
  const k = currentKernel();
  return ((k.sub.vfio_fs_sb as { s_type: string; s_nowriteback: boolean } | undefined) ??= {
    s_type: 'vfio',
    s_nowriteback: true,
  });
}

/**
 * vfio_register_group_dev(device): adds the device to the vfio group of its IOMMU
 * group (creating /dev/vfio/<id> for the first device). 6.10+: gives it its inode.
 * @kernel drivers/vfio/vfio_main.c:vfio_register_group_dev, __vfio_register_dev (5.13+;
 *   vfio_add_group_dev in 5.7–5.12, the same effect)
 * Locking: takes the group's group_lock.
 * Return: 0, or -EINVAL when the device has no IOMMU group (vfio_iommu_group_get fails).
 */
export function* vfio_register_group_dev(device: vfio_device): Op<number> {
  const iommu_group = device.dev.iommu_group;
  if (!iommu_group) return -EINVAL;
  const group = vfio_group_get_or_create(iommu_group);
  if (since(6, 10)) {
    // b7c5e64fecfa: device->inode = alloc_anon_inode(vfio.vfs_mount->mnt_sb)
    device.inode = new_inode(vfio_fs_sb(), 'anon');
  }
  yield* mutex_lock(group.group_lock);
  device.group = group;
  group.device_list.push(device);
  yield* mutex_unlock(group.group_lock);
  return 0;
}

/**
 * vfio_unregister_group_dev(device): waits until no one uses the device (asking the
 * user through ops->request while it is open), then removes it from its group.
 * @kernel drivers/vfio/vfio_main.c:vfio_unregister_group_dev (5.13+; vfio_del_group_dev
 *   5.7–5.12)
 * Locking: none on entry; blocks (wait_for_completion) until the last reference is put.
 * Leaves out: the interruptible wait's 10 s timeouts and their repeated requests (one
 *   request is made; the wait is a blocking step that a thread closing the fd enables).
 */
export function* vfio_unregister_group_dev(device: vfio_device): Op<void> {
  device.unregistered = true;
  // vfio_device_put_registration(device): the registration's own reference.
  vfio_device_put(device);
  if (device.refcount > 0) {
    if (device.ops.request) device.ops.request(device, 0);
    yield {
      obj: `vfio_device[${device.dev.name}].comp`,
      kind: 'read',
      what: 'vfio_unregister_group_dev: wait_for_completion',
      enabled: () => device.refcount === 0,
    };
  }
  const group = device.group;
  if (group) yield* vfio_group_remove_device(group, device);
}

/**
 * vfio_device_try_get(device): a reference unless the device is being unregistered.
 * @kernel drivers/vfio/vfio_main.c:vfio_device_try_get_registration (5.13+ refcount_inc_not_zero)
 * Return: true when a reference was taken.
 */
export function vfio_device_try_get(device: vfio_device): boolean {
  if (device.refcount === 0 || device.unregistered) return false;
  device.refcount++;
  return true;
}

/**
 * vfio_device_put(device): drops a reference; the last one completes the unregister wait.
 * @kernel drivers/vfio/vfio_main.c:vfio_device_put_registration (5.13+), vfio.c:
 *   vfio_device_put (5.7–5.12)
 */
export function vfio_device_put(device: vfio_device): void {
  if (WARN_ON(device.refcount <= 0)) return;
  if (--device.refcount === 0) device.comp_done = true;
}

/**
 * vfio_device_open_file(device): the first open runs ops->open_device; makes the device
 * file (f_mapping = the device inode's mapping, 6.10+).
 * @kernel drivers/vfio/group.c:vfio_device_open_file, vfio_main.c:vfio_df_open,
 *   vfio_device_first_open (6.2+; vfio_group_get_device_fd before) (5.7–6.18)
 * Locking: takes dev_set_lock around the open count.
 * Return: the file, or -errno from open_device.
 */
export function* vfio_device_open_file(device: vfio_device): Op<file | number> {
  yield* mutex_lock(device.dev_set_lock);
  device.open_count++;
  if (device.open_count === 1) {
    const ret = yield* device.ops.open_device(device);
    if (ret) {
      device.open_count--;
      yield* mutex_unlock(device.dev_set_lock);
      return ret;
    }
  }
  yield* mutex_unlock(device.dev_set_lock);
  const filep = anon_inode_getfile('[vfio-device]', vfio_device_fops, device, O_RDWR);
  // alloc_file sets FMODE_CAN_READ/WRITE from the fops; vfio adds LSEEK|PREAD|PWRITE.
  filep.f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE | FMODE_CAN_READ | FMODE_CAN_WRITE;
  // b7c5e64fecfa (v6.10): all of a device's files share its inode's address space.
  if (since(6, 10) && device.inode) filep.f_mapping = device.inode.i_mapping;
  return filep;
}

/**
 * vfio_device_fops_release(inode, filep): the last close of a device fd runs
 * ops->close_device, then drops the file's device reference.
 * @kernel drivers/vfio/vfio_main.c:vfio_device_fops_release, vfio_df_close,
 *   vfio_device_last_close (5.15+; vfio.c:vfio_device_fops_release calling ops->release
 *   before, the bus driver counting opens itself)
 * Locking: takes dev_set_lock.
 */
function* vfio_device_fops_release(_inode: inode, filep: file): Op<void> {
  const device = filep.private_data as vfio_device;
  yield* mutex_lock(device.dev_set_lock);
  if (--device.open_count === 0) yield* device.ops.close_device(device);
  yield* mutex_unlock(device.dev_set_lock);
  const group = device.group;
  if (group && group.container_users > 0) group.container_users--;
  vfio_device_put(device);
}

/** vfio_device_fops_unl_ioctl: to the bus driver. @kernel drivers/vfio/vfio_main.c:vfio_device_fops_unl_ioctl (5.7–6.18) */
function vfio_device_fops_unl_ioctl(filep: file, cmd: number, arg: unknown): Op<number> {
  const device = filep.private_data as vfio_device;
  return device.ops.ioctl(device, cmd, arg);
}

/** vfio_device_fops_mmap: to the bus driver. @kernel drivers/vfio/vfio_main.c:vfio_device_fops_mmap (5.7–6.18) */
function vfio_device_fops_mmap(filep: file, vma: vm_area_struct): Op<number> {
  const device = filep.private_data as vfio_device;
  return device.ops.mmap(device, vma);
}

/**
 * vfio_device_fops: the device file's operations.
 * @kernel drivers/vfio/vfio_main.c:vfio_device_fops (5.7–6.18)
 */
export const vfio_device_fops: file_operations = {
  name: 'vfio_device_fops',
  release: vfio_device_fops_release,
  unlocked_ioctl: vfio_device_fops_unl_ioctl,
  mmap: vfio_device_fops_mmap,
};

const vfio_device_fops_rw: file_operations_rw = {
  /** vfio_device_fops_read: to the bus driver. */
  read(f, buf, count, ppos) {
    const device = f.private_data as vfio_device;
    return device.ops.read(device, buf, count, ppos);
  },
  /** vfio_device_fops_write: to the bus driver. */
  write(f, buf, count, ppos) {
    const device = f.private_data as vfio_device;
    return device.ops.write(device, buf, count, ppos);
  },
};
set_fops_rw(vfio_device_fops, vfio_device_fops_rw);

/**
 * vfio_device_unmap_mapping_range(device, start, len): zaps every user mapping of the
 * device's files in [start, start + len) of its address space.
 * @kernel RFC 03/10 "vfio: Export unmap_mapping_range() wrapper" (2021, not merged);
 *   mainline 6.10+ calls unmap_mapping_range(core_vdev.inode->i_mapping, ...) directly
 * Locking: as unmap_mapping_range (takes i_mmap_rwsem).
 */
export function* vfio_device_unmap_mapping_range(
  device: vfio_device,
  start: number,
  len: number,
): Op<void> {
  if (!device.inode) return;
  yield* unmap_mapping_range(device.inode.i_mapping, start, len, true);
}

/* ---------------------------------------------------------------------------------------
 * The 2021 RFC "vfio: Device memory DMA mapping improvements" (Alex Williamson, Feb 2021,
 * not merged): RFC 05/10 "vfio: Create a vfio_device from vma lookup", 06/10 "vfio: Add a
 * device notifier interface", 07/10 "vfio/pci: Notify on device release".
 * ------------------------------------------------------------------------------------- */

/**
 * vfio_device_vma_open(vma): the vm_ops->open a vfio bus driver gives its device mmaps;
 * vm_private_data holds the vfio_device.
 * @kernel RFC 05/10 drivers/vfio/vfio.c:vfio_device_vma_open (not merged)
 */
export function vfio_device_vma_open(vma: vm_area_struct): void {
  void vma;
}

const vma_ops_registry = new Set<vm_operations_struct>();
function vfio_vma_ops(): Set<vm_operations_struct> {
  return vma_ops_registry;
}

/**
 * vfio_register_vma_ops(ops): marks `ops` as the vm_ops of a vfio bus driver's device
 * mmaps (vm_private_data = the vfio_device). The RFC marks them by making their ->open
 * vfio_device_vma_open; the model keeps each era's vfio-pci vm_ops (whose ->open differs)
 * and registers them instead.
 * @kernel RFC 05/10 drivers/vfio/vfio.c:vfio_device_vma_open (not merged; model form)
 */
export function vfio_register_vma_ops(ops: vm_operations_struct): void {
  vma_ops_registry.add(ops);
}

/**
 * vfio_device_get_from_vma(vma): the vfio_device behind a VMA whose vm_ops->open is
 * vfio_device_vma_open, or whose vm_ops are registered vfio device-mmap ops (vfio-pci's
 * BAR mmaps of every era), with a reference taken.
 * @kernel RFC 05/10 drivers/vfio/vfio.c:vfio_device_get_from_vma (not merged)
 * Locking: mmap_lock held (the VMA is stable).
 * Return: the device, or null where the RFC returns ERR_PTR(-ENODEV) (not a vfio VMA, or
 *   the device is being unregistered).
 */
export function vfio_device_get_from_vma(vma: vm_area_struct): vfio_device | null {
  const ops = vma.vm_ops;
  if (!ops || (ops.open !== vfio_device_vma_open && !vfio_vma_ops().has(ops))) return null;
  const device = vma.vm_private_data;
  if (!(device instanceof vfio_device)) return null;
  if (!vfio_device_try_get(device)) return null;
  return device;
}

/**
 * vfio_device_register_notifier(device, nb): adds nb to the device's SRCU notifier chain
 * (srcu_notifier_chain_register).
 * @kernel RFC 06/10 drivers/vfio/vfio.c:vfio_device_register_notifier (not merged);
 *   kernel/notifier.c:srcu_notifier_chain_register
 * Locking: takes the chain's mutex.
 * Return: 0.
 */
export function* vfio_device_register_notifier(
  device: vfio_device,
  nb: notifier_block,
): Op<number> {
  yield* mutex_lock(device.notifier_mutex);
  device.notifier.push(nb);
  yield* mutex_unlock(device.notifier_mutex);
  return 0;
}

/**
 * vfio_device_unregister_notifier(device, nb): removes nb from the chain
 * (srcu_notifier_chain_unregister).
 * @kernel RFC 06/10 drivers/vfio/vfio.c:vfio_device_unregister_notifier (not merged);
 *   kernel/notifier.c:srcu_notifier_chain_unregister
 * Locking: takes the chain's mutex. The synchronize_srcu() that follows (waiting for
 * callbacks already running) is left out.
 */
export function* vfio_device_unregister_notifier(
  device: vfio_device,
  nb: notifier_block,
): Op<void> {
  yield* mutex_lock(device.notifier_mutex);
  const i = device.notifier.indexOf(nb);
  if (i >= 0) device.notifier.splice(i, 1);
  yield* mutex_unlock(device.notifier_mutex);
}

/**
 * vfio_device_notifier_call(device, event): runs the chain (srcu_notifier_call_chain) in
 * registration order until a callback returns NOTIFY_STOP_MASK.
 * @kernel RFC 06/10 drivers/vfio/vfio.c:vfio_device_notifier_call (not merged; the RFC's
 *   chain is a srcu_notifier_head); kernel/notifier.c:srcu_notifier_call_chain
 * Locking: an SRCU read-side section, which is not a lock: it takes part in no lock order
 * (the model yields one read of the chain); callbacks may sleep.
 * Return: the last callback's NOTIFY_* value (NOTIFY_DONE for an empty chain).
 */
export function* vfio_device_notifier_call(device: vfio_device, event: number): Op<number> {
  let ret = 0;
  yield { obj: device.notifier_mutex.name, kind: 'read', what: 'srcu_read_lock' };
  for (const nb of [...device.notifier]) {
    ret = yield* nb.notifier_call(nb, event, device);
    if (ret & NOTIFY_STOP_MASK) break;
  }
  return ret;
}

/** Model lookup: the vfio device of the group whose device is named `name`, or null. */
export function vfio_device_get_from_name(group: vfio_group, name: string): vfio_device | null {
  const device = group.device_list.find((d) => d.dev.name === name) ?? null;
  if (!device || !vfio_device_try_get(device)) return null;
  return device;
}
