/**
 * VFIO core types: struct vfio_device, vfio_device_ops, vfio_group, vfio_container, the
 * IOMMU backend interface (vfio_iommu_driver_ops) and the 2021 RFC's device notifier.
 *
 * The model unifies the layouts of the eras: ≤5.14 drivers/vfio/vfio.c kept `device_data`
 * and the bus driver's own refcount (vfio_pci_device.refcnt); 5.15+ (2fb89f56a624 "vfio:
 * Introduce a vfio_device open_count" / "vfio: Provide better generic support for
 * open/release vfio_device_ops") moved the open count into vfio_device with
 * open_device/close_device ops; 6.2 split vfio_main.c into group.c and container.c. The
 * behaviour the model needs (open on the first device-fd open, close/release on the last
 * close, ioctl/read/write/mmap dispatch) is the same in all of them.
 *
 * Left out: iommufd, the cdev interface (/dev/vfio/devices, 6.6+), device sets,
 * migration, mdev, noiommu, KVM association, capability chains.
 *
 * @kernel drivers/vfio/vfio.h, include/linux/vfio.h (5.7–6.18)
 */
import type { Op } from '../../../sched/index.js';
import type { device } from '../base/core.js';
import type { iommu_group } from '../iommu/iommu.js';
import type { file, inode, vm_area_struct } from '../../include/linux/mm_types.js';
import { mutex, rw_semaphore } from '../../include/linux/spinlock.js';
import { currentKernel } from '../../kernel/kernel.js';
import { EINVAL } from '../../include/linux/errno.js';

/**
 * struct notifier_block of a blocking notifier chain (include/linux/notifier.h):
 * notifier_call(nb, action, data) may sleep, so it is an Op. Return: NOTIFY_*.
 */
export interface notifier_block {
  notifier_call(nb: notifier_block, action: number, data: unknown): Op<number>;
}
/** include/linux/notifier.h */
export const NOTIFY_DONE = 0x0000;
export const NOTIFY_OK = 0x0001;
export const NOTIFY_STOP_MASK = 0x8000;

/**
 * enum vfio_device_notify_type of the 2021 RFC ("vfio: Add a device notifier interface",
 * RFC 06/10, Alex Williamson, Feb 2021; not merged): fired when the device is released.
 */
export const VFIO_DEVICE_RELEASE = 0;

/**
 * struct vfio_device_ops: what a bus driver (vfio-pci) implements.
 * `open_device`/`close_device` are the 5.15+ names; ≤5.14 `open`/`release` took the
 * driver's own refcount and ran the same code on the first open and the last release.
 * @kernel include/linux/vfio.h:struct vfio_device_ops (5.7–6.18)
 */
export interface vfio_device_ops {
  readonly name: string;
  /** First open of the device fd. Return: 0 or -errno. */
  open_device(vdev: vfio_device): Op<number>;
  /** Last close of the device fd. */
  close_device(vdev: vfio_device): Op<void>;
  /** read(2) on the device fd: `buf` is a user address. Return: bytes or -errno. */
  read(vdev: vfio_device, buf: number, count: number, ppos: { pos: number }): Op<number>;
  /** write(2) on the device fd. Return: bytes or -errno. */
  write(vdev: vfio_device, buf: number, count: number, ppos: { pos: number }): Op<number>;
  /** ioctl on the device fd. Return: 0/-errno or a value. */
  ioctl(vdev: vfio_device, cmd: number, arg: unknown): Op<number>;
  /** mmap of the device fd. Return: 0 or -errno. */
  mmap(vdev: vfio_device, vma: vm_area_struct): Op<number>;
  /** Ask the user to release the device (unbind while open): the REQ IRQ. */
  request?(vdev: vfio_device, count: number): void;
}

/**
 * struct vfio_device. Bus drivers embed it (vfio_pci_core_device extends it).
 * @kernel include/linux/vfio.h:struct vfio_device (5.7–6.18; ≤5.12 private to vfio.c)
 */
export class vfio_device {
  group: vfio_group | null = null;
  /** refcount_t refcount (5.13+; kref ≤5.12): references from lookups and open files. */
  refcount = 1;
  /** open_count (5.15+; the bus driver's refcnt before): open device fds. */
  open_count = 0;
  /** struct mutex dev_set->lock (5.15+; vfio_pci reflck->lock before). */
  readonly dev_set_lock: mutex;
  /** 6.10+ (b7c5e64fecfa "vfio: Create vfio_fs_type with inode per device"): the inode whose i_mapping all device fds share. */
  inode: inode | null = null;
  /** The 2021 RFC: the per-device SRCU notifier chain (srcu_notifier_head). */
  readonly notifier: notifier_block[] = [];
  /** srcu_notifier_head.mutex: serialises (un)registration. */
  readonly notifier_mutex: mutex;
  /** Removed from its group (vfio_unregister_group_dev ran). */
  unregistered = false;
  /** Completion signalled when the last reference goes (vfio_unregister_group_dev waits). */
  comp_done = false;
  constructor(
    /** The physical device (pdev->dev). */
    readonly dev: device,
    readonly ops: vfio_device_ops,
  ) {
    this.dev_set_lock = new mutex(`vfio_device[${dev.name}].dev_set_lock`);
    this.notifier_mutex = new mutex(`vfio_device[${dev.name}].notifier.mutex`);
  }
}

/**
 * struct vfio_group: the vfio view of an IOMMU group (/dev/vfio/<id>).
 * @kernel drivers/vfio/vfio.h:struct vfio_group (6.2+; drivers/vfio/vfio.c before)
 */
export class vfio_group {
  readonly device_list: vfio_device[] = [];
  container: vfio_container | null = null;
  /** The group fd is open (only one opener at a time: -EBUSY). */
  opened = false;
  /** container_users (≤6.1) / the group is in use by a container. */
  container_users = 0;
  /** struct mutex group_lock (6.2+; group->device_lock / container->group_lock before). */
  readonly group_lock: mutex;
  constructor(readonly iommu_group: iommu_group) {
    this.group_lock = new mutex(`vfio_group${iommu_group.id}.group_lock`);
  }
}

/** An IOMMU backend chosen for a container by VFIO_SET_IOMMU. */
export interface vfio_iommu_driver {
  readonly ops: vfio_iommu_driver_ops;
}

/**
 * struct vfio_container (/dev/vfio/vfio).
 * @kernel drivers/vfio/container.c:struct vfio_container (6.2+; vfio.c before)
 */
export class vfio_container {
  readonly group_list: vfio_group[] = [];
  /** rw_semaphore group_lock. */
  readonly group_lock: rw_semaphore;
  iommu_driver: vfio_iommu_driver | null = null;
  iommu_data: unknown = null;
  constructor(readonly id: number) {
    this.group_lock = new rw_semaphore(`vfio_container${id}.group_lock`);
  }
}

/**
 * struct vfio_iommu_driver_ops: the backend (type1) interface the container calls.
 * `open(arg)` returns the backend's data or a negative errno (ERR_PTR).
 * @kernel drivers/vfio/vfio.h:struct vfio_iommu_driver_ops (6.2+; include/linux/vfio.h
 *   before) (5.7–6.18; `notify` v5.12+ ec5e32940cc9 "vfio: iommu driver notify callback")
 */
export interface vfio_iommu_driver_ops {
  readonly name: string;
  open(arg: number): unknown /* iommu data */ | number /* -errno */;
  release(iommu_data: unknown): Op<void>;
  ioctl(iommu_data: unknown, cmd: number, arg: unknown): Op<number>;
  attach_group(iommu_data: unknown, group: iommu_group, type: number): Op<number>;
  detach_group(iommu_data: unknown, group: iommu_group): Op<void>;
  notify?(iommu_data: unknown, event: number): void;
}

/** enum vfio_iommu_notify_type (v5.12+): the container fd was closed. */
export const VFIO_IOMMU_CONTAINER_CLOSE = 0;

interface vfio_core_state {
  readonly iommu_drivers_list: vfio_iommu_driver[];
}

/** The per-kernel state of the VFIO core (struct vfio vfio). */
export function vfio_state(): vfio_core_state {
  const k = currentKernel();
  return ((k.sub.vfio_core as vfio_core_state | undefined) ??= { iommu_drivers_list: [] });
}

/**
 * vfio_register_iommu_driver(ops): adds a backend the container may choose for
 * VFIO_SET_IOMMU.
 * @kernel drivers/vfio/container.c:vfio_register_iommu_driver (6.2+; vfio.c before)
 *   (5.7–6.18)
 * Locking: vfio.iommu_drivers_lock (state only in the model).
 * Return: 0, or -EINVAL when a driver with these ops is already registered.
 */
export function vfio_register_iommu_driver(ops: vfio_iommu_driver_ops): number {
  const list = vfio_state().iommu_drivers_list;
  if (list.some((d) => d.ops === ops)) return -EINVAL;
  list.push({ ops });
  return 0;
}

/**
 * vfio_unregister_iommu_driver(ops): removes a backend.
 * @kernel drivers/vfio/container.c:vfio_unregister_iommu_driver (5.7–6.18)
 */
export function vfio_unregister_iommu_driver(ops: vfio_iommu_driver_ops): void {
  const list = vfio_state().iommu_drivers_list;
  const i = list.findIndex((d) => d.ops === ops);
  if (i >= 0) list.splice(i, 1);
}

/** The vfio_device behind a device fd (file->private_data), or null for other files. */
export function vfio_device_from_file(f: file): vfio_device | null {
  return f.private_data instanceof vfio_device ? f.private_data : null;
}
