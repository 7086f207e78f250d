/**
 * PCI drivers (drivers/pci/pci-driver.c): struct pci_driver, the PCI bus type's match
 * (ID table, driver_override), probe and remove, and pci_register_driver /
 * pci_unregister_driver. Binding goes through drivers/base/dd.ts.
 *
 * Ownership: the frames of a function's BARs belong to the driver bound to it; binding,
 * unbinding (and hot-unplug, remove.ts) change their pfnsan owner, e.g.
 * {kind:'bar', desc:'BAR0 of 0000:01:00.0 (vfio-pci)'}.
 *
 * Left out: dynamic IDs (new_id), override_only IDs (v5.15+), IRQ setup, runtime PM,
 * SR-IOV VF probing, pci_device_shutdown, the NUMA-local probe.
 *
 * @kernel drivers/pci/pci-driver.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { ENODEV } from '../../include/linux/errno.js';
import { currentKernel } from '../../kernel/kernel.js';
import { pfnsan_set_owner } from '../../mm/pfnsan/pfnsan.js';
import {
  driver_register,
  driver_unregister,
  type bus_type,
  type device,
  type device_driver,
} from '../base/core.js';
import { PCI_D0, PCI_UNKNOWN, PCI_ROM_RESOURCE, to_pci_dev, type pci_dev } from './pci.js';

/** PCI_ANY_ID. */
export const PCI_ANY_ID = 0xffffffff;

/** struct pci_device_id (vendor/device; subvendor etc. left out). */
export interface pci_device_id {
  readonly vendor: number;
  readonly device: number;
}

/** pci_device_id_any: what driver_override matches with. */
export const pci_device_id_any: pci_device_id = { vendor: PCI_ANY_ID, device: PCI_ANY_ID };

/**
 * struct pci_driver.
 * @kernel include/linux/pci.h:struct pci_driver (all versions)
 */
export interface pci_driver {
  readonly name: string;
  readonly id_table: readonly pci_device_id[];
  /** Return: 0 or -errno. */
  probe(dev: pci_dev, id: pci_device_id): Op<number>;
  remove?(dev: pci_dev): Op<void>;
  /** The driver manages DMA ownership itself (vfio-pci), v5.19+. */
  readonly driver_managed_dma?: boolean;
  /** The embedded struct device_driver (set by pci_register_driver). */
  driver?: device_driver;
}

const drivers = new WeakMap<device_driver, pci_driver>();

/** to_pci_driver(drv). */
export function to_pci_driver(drv: device_driver): pci_driver {
  return drivers.get(drv)!;
}

/**
 * pci_match_id(ids, dev): the first matching entry.
 * @kernel drivers/pci/pci-driver.c:pci_match_id, pci_match_one_device (all versions)
 */
export function pci_match_id(ids: readonly pci_device_id[], dev: pci_dev): pci_device_id | null {
  for (const id of ids) {
    if (
      (id.vendor === PCI_ANY_ID || id.vendor === dev.vendor) &&
      (id.device === PCI_ANY_ID || id.device === dev.device)
    )
      return id;
  }
  return null;
}

/**
 * pci_match_device(drv, dev): with driver_override set only the named driver matches (with
 * pci_device_id_any when its table does not); else the ID table.
 * @kernel drivers/pci/pci-driver.c:pci_match_device (all versions)
 * Return: the matching ID or null.
 */
export function pci_match_device(drv: pci_driver, dev: pci_dev): pci_device_id | null {
  if (dev.driver_override !== null && dev.driver_override !== drv.name) return null;
  const found = pci_match_id(drv.id_table, dev);
  if (found) return found;
  if (dev.driver_override !== null) return pci_device_id_any;
  return null;
}

/** The pfnsan owner of a function's BAR frames, per binding. */
export function pci_bar_owner_desc(pdev: pci_dev, bar: number): string {
  const who = pdev.driver ? pdev.driver.name : 'no driver';
  return `BAR${bar} of ${pdev.name} (${who})`;
}

/** Sets the pfnsan owner of every BAR frame of pdev from its binding. */
export function pci_update_bar_owners(pdev: pci_dev): void {
  for (let i = 0; i < PCI_ROM_RESOURCE; i++) {
    const r = pdev.resource[i];
    if (!r) continue;
    pfnsan_set_owner(r.start / 4096, (r.end + 1 - r.start) / 4096, {
      kind: 'bar',
      desc: pci_bar_owner_desc(pdev, i),
    });
  }
}

/**
 * pci_device_probe(dev): runs the bound driver's probe with the matching ID; the BAR
 * frames become the driver's, and go back if the probe fails.
 * @kernel drivers/pci/pci-driver.c:pci_device_probe, __pci_device_probe, pci_call_probe
 *   (all versions)
 * Locking: device_lock held.
 * Return: 0 or -errno (-ENODEV without a matching ID).
 */
function* pci_device_probe(dev: device): Op<number> {
  const pdev = to_pci_dev(dev);
  const drv = to_pci_driver(dev.driver!);
  const id = pci_match_device(drv, pdev);
  if (!id) return -ENODEV;
  pci_update_bar_owners(pdev);
  const err = yield* drv.probe(pdev, id);
  if (err) {
    const saved = dev.driver;
    dev.driver = null;
    pci_update_bar_owners(pdev);
    dev.driver = saved;
  }
  return err;
}

/**
 * pci_device_remove(dev): runs the driver's remove; a function left on is marked
 * PCI_UNKNOWN; the BAR frames lose their driver.
 * @kernel drivers/pci/pci-driver.c:pci_device_remove (all versions)
 * Locking: device_lock held.
 */
function* pci_device_remove(dev: device): Op<void> {
  const pdev = to_pci_dev(dev);
  const drv = to_pci_driver(dev.driver!);
  if (drv.remove) yield* drv.remove(pdev);
  if (pdev.current_state === PCI_D0) pdev.current_state = PCI_UNKNOWN;
  const saved = dev.driver;
  dev.driver = null;
  pci_update_bar_owners(pdev);
  dev.driver = saved;
}

/**
 * pci_bus_type.
 * @kernel drivers/pci/pci-driver.c:pci_bus_type, pci_bus_match (all versions)
 */
export const pci_bus_type_proto = {
  name: 'pci',
  match(dev: device, drv: device_driver): number {
    return pci_match_device(to_pci_driver(drv), to_pci_dev(dev)) ? 1 : 0;
  },
  probe: pci_device_probe,
  remove: pci_device_remove,
};

/** The PCI bus of the current kernel (per-instance lists). */
export function pci_bus_type(): bus_type {
  const k = currentKernel();
  return ((k.sub.pci_bus_type as bus_type | undefined) ??= {
    ...pci_bus_type_proto,
    devices: [],
    drivers: [],
  });
}

/**
 * pci_register_driver(drv): registers the driver and binds it to matching functions.
 * @kernel drivers/pci/pci-driver.c:__pci_register_driver (all versions)
 * Return: 0 or -errno.
 */
export function* pci_register_driver(drv: pci_driver): Op<number> {
  const d: device_driver = {
    name: drv.name,
    bus: pci_bus_type(),
    driver_managed_dma: drv.driver_managed_dma ?? false,
  };
  drv.driver = d;
  drivers.set(d, drv);
  return yield* driver_register(d);
}

/**
 * pci_unregister_driver(drv): unbinds it from every function and unregisters it.
 * @kernel drivers/pci/pci-driver.c:pci_unregister_driver (all versions)
 */
export function* pci_unregister_driver(drv: pci_driver): Op<void> {
  if (drv.driver) yield* driver_unregister(drv.driver);
}

/**
 * driver_override_store(dev, buf): sets (or, with an empty string, clears) the name of the
 * only driver allowed to bind; does not bind or unbind by itself.
 * @kernel drivers/pci/pci-sysfs.c:driver_override_store, drivers/base/driver.c:
 *   driver_set_override (v5.19+) (all versions)
 */
export function driver_override_store(pdev: pci_dev, buf: string): void {
  const name = buf.replace(/\n$/, '');
  pdev.driver_override = name.length ? name : null;
}
