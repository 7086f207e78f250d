/**
 * Binding devices to drivers (drivers/base/dd.c): probing a device with a driver,
 * device_driver_attach() (the sysfs "bind" file and driver_override users), releasing
 * the driver (the "unbind" file, driver unregistration, device removal), driver_attach()
 * on driver registration and device_attach() on device addition.
 *
 * All of it runs under device_lock (a mutex: the binding is a scheduling point a
 * concurrent user of the device can interleave with).
 *
 * Return conventions per version: until v5.12 really_probe()/driver_probe_device() return
 * 1 when bound and 0 when not (a probe error is printed and swallowed);
 * ef6dcbdd8eb2 "driver core: Flow the return code from ->probe() through to sysfs bind"
 * (v5.13) makes them return 0 or the probe's -errno; v5.15 (__driver_probe_device, "driver
 * core: Split the driver_probe_device() function") returns -ENODEV for a dead or
 * unregistered device and -EBUSY for one already bound, where earlier versions returned 0.
 *
 * Left out: deferred probe and its retry lists, async probe, device links, pinctrl,
 * dma_configure (the IOMMU is set up at device_add in the model), devres, sync_state,
 * probe_count waits, driver_deferred_probe_timeout.
 *
 * @kernel drivers/base/dd.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { since } from '../../version.js';
import { pr_debug, pr_warn } from '../../kernel/printk.js';
import { EBUSY, ENODEV, ENXIO } from '../../include/linux/errno.js';
import {
  device_is_registered,
  device_lock,
  device_unlock,
  dev_name,
  type device,
  type device_driver,
} from './core.js';

/** include/linux/errno.h: EPROBE_DEFER (kernel-internal). */
export const EPROBE_DEFER = 517;

/**
 * driver_match_device(drv, dev): the bus's match method, or 1 without one.
 * @kernel drivers/base/base.h:driver_match_device (all versions)
 * Return: non-zero on a match.
 */
export function driver_match_device(drv: device_driver, dev: device): number {
  return drv.bus.match ? drv.bus.match(dev, drv) : 1;
}

/**
 * really_probe(dev, drv): sets dev->driver and calls the bus probe; on failure clears it.
 * @kernel drivers/base/dd.c:really_probe, call_driver_probe (v5.15+) (all versions)
 * Locking: device_lock held.
 * Return: ≤5.12: 1 bound, 0 not bound (errors printed); 5.13+: 0 or the probe's -errno.
 */
function* really_probe(dev: device, drv: device_driver): Op<number> {
  dev.driver = drv;
  const ret = yield* drv.bus.probe(dev);
  if (ret === 0) {
    pr_debug(
      `bus: '${drv.bus.name}': really_probe: bound device ${dev_name(dev)} to driver ${drv.name}`,
    );
    return since(5, 13) ? 0 : 1;
  }
  dev.driver = null;
  dev.driver_data = null;
  if (ret === -ENODEV || ret === -ENXIO) {
    pr_debug(`${drv.name}: probe of ${dev_name(dev)} rejects match ${ret}`);
  } else if (ret !== -EPROBE_DEFER) {
    pr_warn(`${drv.name}: probe of ${dev_name(dev)} failed with error ${ret}`);
  }
  return since(5, 13) ? ret : 0;
}

/**
 * driver_probe_device(drv, dev) / __driver_probe_device (v5.15+): probes dev with drv.
 * @kernel drivers/base/dd.c:driver_probe_device, __driver_probe_device (all versions)
 * Locking: device_lock held.
 * Return: as really_probe; -ENODEV when not registered (or dead, v5.15+); -EBUSY when
 *   already bound (v5.15+).
 */
export function* driver_probe_device(drv: device_driver, dev: device): Op<number> {
  if (since(5, 15)) {
    if (dev.dead || !device_is_registered(dev)) return -ENODEV;
    if (dev.driver) return -EBUSY;
  } else if (!device_is_registered(dev)) {
    return -ENODEV;
  }
  return yield* really_probe(dev, drv);
}

/**
 * device_driver_attach(drv, dev): binds dev to drv if nothing is bound (the "bind" sysfs
 * file; vfio-pci's users after driver_override).
 * @kernel drivers/base/dd.c:device_driver_attach (all versions; return per file comment)
 * Locking: takes and releases device_lock.
 * Return: ≤5.12: 1 bound, 0 not (also when dead or bound); 5.13–5.14: 0/-errno, 0 when
 *   dead or bound; 5.15+: 0, -ENODEV (dead/unregistered), -EBUSY (bound), probe -errno.
 */
export function* device_driver_attach(drv: device_driver, dev: device): Op<number> {
  yield* device_lock(dev);
  let ret = 0;
  if (since(5, 15)) ret = yield* driver_probe_device(drv, dev);
  else if (!dev.dead && !dev.driver) ret = yield* driver_probe_device(drv, dev);
  yield* device_unlock(dev);
  return ret;
}

/**
 * __device_release_driver(dev): calls the bus remove method and clears dev->driver.
 * @kernel drivers/base/dd.c:__device_release_driver (all versions)
 * Locking: device_lock held.
 */
function* __device_release_driver(dev: device): Op<void> {
  const drv = dev.driver;
  if (!drv) return;
  yield* drv.bus.remove(dev);
  dev.driver = null;
  dev.driver_data = null;
}

/**
 * device_release_driver_internal(dev, drv): unbinds dev if bound (to drv when given).
 * @kernel drivers/base/dd.c:device_release_driver_internal (all versions)
 * Locking: takes and releases device_lock.
 */
export function* device_release_driver_internal(dev: device, drv: device_driver | null): Op<void> {
  yield* device_lock(dev);
  if (dev.driver && (!drv || drv === dev.driver)) yield* __device_release_driver(dev);
  yield* device_unlock(dev);
}

/**
 * device_release_driver(dev): manually detaches the device from its driver (the "unbind"
 * sysfs file).
 * @kernel drivers/base/dd.c:device_release_driver (all versions)
 * Locking: takes and releases device_lock.
 */
export function device_release_driver(dev: device): Op<void> {
  return device_release_driver_internal(dev, null);
}

/**
 * __driver_attach(dev, drv): for driver_attach(): binds dev to drv when they match and dev
 * has no driver.
 * @kernel drivers/base/dd.c:__driver_attach (all versions)
 * Locking: takes device_lock.
 * Return: 0 (errors do not stop the walk).
 */
function* __driver_attach(dev: device, drv: device_driver): Op<number> {
  if (!driver_match_device(drv, dev)) return 0;
  yield* device_lock(dev);
  if (!dev.dead && !dev.driver) yield* driver_probe_device(drv, dev);
  yield* device_unlock(dev);
  return 0;
}

/**
 * driver_attach(drv): tries to bind drv to every unbound device on its bus.
 * @kernel drivers/base/dd.c:driver_attach (all versions)
 * Locking: takes each device_lock in turn.
 * Return: 0.
 */
export function* driver_attach(drv: device_driver): Op<number> {
  for (const dev of [...drv.bus.devices]) yield* __driver_attach(dev, drv);
  return 0;
}

/**
 * device_attach(dev) (__device_attach): tries each driver of the bus until one binds.
 * @kernel drivers/base/dd.c:device_attach, __device_attach, __device_attach_driver (all versions)
 * Locking: takes and releases device_lock.
 * Return: 1 when bound, 0 when no driver bound (-ENODEV when the device is dead).
 */
export function* device_attach(dev: device): Op<number> {
  yield* device_lock(dev);
  let ret = 0;
  if (dev.dead) ret = -ENODEV;
  else if (dev.driver) ret = 1;
  else if (dev.bus) {
    for (const drv of [...dev.bus.drivers]) {
      if (!driver_match_device(drv, dev)) continue;
      const r = yield* driver_probe_device(drv, dev);
      if (dev.driver === drv) {
        ret = 1;
        break;
      }
      void r;
    }
  }
  yield* device_unlock(dev);
  return ret;
}
