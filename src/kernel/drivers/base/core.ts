/**
 * The driver core's objects: struct device, struct device_driver and struct bus_type,
 * with device_add()/device_del() and the bus lists. Binding lives in dd.ts.
 *
 * Left out: kobjects and sysfs, device links, deferred probe, PM domains, async probing,
 * classes, uevents, fwnodes. A bus is a plain object with its match/probe/remove methods.
 *
 * @kernel drivers/base/core.c, drivers/base/bus.c, include/linux/device.h,
 *   include/linux/device/bus.h, include/linux/device/driver.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { mutex, mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import type { cma } from '../../mm/page_alloc.js';
import type { iommu_group } from '../iommu/iommu.js';
import { pr_err } from '../../kernel/printk.js';
import { EBUSY } from '../../include/linux/errno.js';
import {
  device_attach,
  device_release_driver,
  device_release_driver_internal,
  driver_attach,
} from './dd.js';

/**
 * struct bus_type: a bus with its match, probe and remove methods.
 * @kernel include/linux/device/bus.h:struct bus_type (all versions)
 */
export interface bus_type {
  readonly name: string;
  /** Returns non-zero when drv can handle dev (bus_type->match; int in the kernel). */
  match(dev: device, drv: device_driver): number;
  /** bus_type->probe: runs the driver's probe. Return: 0 or -errno. */
  probe(dev: device): Op<number>;
  /** bus_type->remove: runs the driver's remove. */
  remove(dev: device): Op<void>;
  /** klist_devices / klist_drivers of the subsys_private. */
  readonly devices: device[];
  readonly drivers: device_driver[];
}

/**
 * struct device_driver: name, bus, and the flags the model reads.
 * @kernel include/linux/device/driver.h:struct device_driver (all versions)
 */
export interface device_driver {
  readonly name: string;
  readonly bus: bus_type;
  /** driver_managed_dma (v5.19+ in the kernel, on the bus driver): the driver does its own DMA ownership. */
  readonly driver_managed_dma?: boolean;
}

/** struct dev_iommu: per-device IOMMU data (iommu_probe_device). */
export interface dev_iommu {
  /** Requester ID (bus << 8 | devfn) as the IOMMU sees it. */
  readonly source_id: number;
}

/**
 * struct device. `driver` is set while bound; `lock` is device_lock (a mutex, so binding
 * and unbinding are scheduling points).
 * @kernel include/linux/device.h:struct device (all versions)
 */
export class device {
  driver: device_driver | null = null;
  driver_data: unknown = null;
  parent: device | null = null;
  /** dev->iommu_group (set by iommu_group_add_device). */
  iommu_group: iommu_group | null = null;
  /** dev->iommu: non-null once the IOMMU core probed the device. */
  iommu: dev_iommu | null = null;
  /** dev->cma_area (CONFIG_DMA_CMA): the device's own CMA area. */
  cma_area: cma | null = null;
  /** *dev->dma_mask and dev->coherent_dma_mask. */
  dma_mask = 2 ** 32 - 1;
  coherent_dma_mask = 2 ** 32 - 1;
  /** dev->p->dead: set by device_del(); no driver can bind after it. */
  dead = false;
  /** device_is_registered(): kobj.state_in_sysfs. */
  registered = false;
  readonly lock: mutex;
  constructor(
    /** dev_name(dev), e.g. "0000:01:00.0". */
    readonly name: string,
    readonly bus: bus_type | null,
  ) {
    this.lock = new mutex(`dev[${name}].mutex`);
  }
}

/** dev_name(dev). @kernel include/linux/device.h:dev_name (all versions) */
export function dev_name(dev: device): string {
  return dev.name;
}

/** device_lock(dev): takes the device mutex. @kernel include/linux/device.h:device_lock (all versions) */
export function device_lock(dev: device): Op<void> {
  return mutex_lock(dev.lock);
}

/** device_unlock(dev). @kernel include/linux/device.h:device_unlock (all versions) */
export function device_unlock(dev: device): Op<void> {
  return mutex_unlock(dev.lock);
}

/** device_is_registered(dev). @kernel include/linux/device.h:device_is_registered (all versions) */
export function device_is_registered(dev: device): boolean {
  return dev.registered;
}

/**
 * dev_printk prefix: "<driver or bus name> <dev_name>: ", as dev_info()/dev_warn() print it.
 * @kernel drivers/base/core.c:__dev_printk, dev_driver_string (all versions)
 */
export function dev_prefix(dev: device): string {
  const drv = dev.driver ? dev.driver.name : (dev.bus?.name ?? '');
  return `${drv} ${dev.name}: `;
}

/**
 * device_add(dev) (registration part) + bus_probe_device(): registers dev on its bus and,
 * when the bus autoprobes, binds a matching driver.
 * @kernel drivers/base/core.c:device_add, drivers/base/bus.c:bus_add_device,
 *   bus_probe_device (all versions)
 * Locking: takes device_lock for the probe.
 * Return: 0.
 */
export function* device_add(dev: device): Op<number> {
  dev.registered = true;
  dev.dead = false;
  if (dev.bus) {
    dev.bus.devices.push(dev);
    yield* device_attach(dev);
  }
  return 0;
}

/**
 * device_del(dev): marks the device dead (no later bind), unbinds its driver and removes
 * it from its bus.
 * @kernel drivers/base/core.c:device_del, drivers/base/bus.c:bus_remove_device (all versions)
 * Locking: takes device_lock (device_release_driver).
 */
export function* device_del(dev: device): Op<void> {
  yield* device_lock(dev);
  dev.dead = true;
  yield* device_unlock(dev);
  yield* device_release_driver(dev);
  if (dev.bus) {
    const i = dev.bus.devices.indexOf(dev);
    if (i >= 0) dev.bus.devices.splice(i, 1);
  }
  dev.registered = false;
}

/**
 * driver_register(drv) (bus_add_driver): adds drv to its bus and binds it to every matching
 * unbound device.
 * @kernel drivers/base/driver.c:driver_register, drivers/base/bus.c:bus_add_driver (all versions)
 * Return: 0, or -EBUSY when a driver of that name is already registered.
 */
export function* driver_register(drv: device_driver): Op<number> {
  if (drv.bus.drivers.some((d) => d.name === drv.name)) {
    pr_err(`Error: Driver '${drv.name}' is already registered, aborting...`);
    return -EBUSY;
  }
  drv.bus.drivers.push(drv);
  return yield* driver_attach(drv);
}

/**
 * driver_unregister(drv) (bus_remove_driver + driver_detach): unbinds drv from every device
 * and removes it from the bus.
 * @kernel drivers/base/driver.c:driver_unregister, drivers/base/dd.c:driver_detach (all versions)
 */
export function* driver_unregister(drv: device_driver): Op<void> {
  for (const dev of [...drv.bus.devices]) {
    if (dev.driver === drv) yield* device_release_driver_internal(dev, drv);
  }
  const i = drv.bus.drivers.indexOf(drv);
  if (i >= 0) drv.bus.drivers.splice(i, 1);
}
