/**
 * Removing PCI functions (drivers/pci/remove.c): pci_stop_and_remove_bus_device unbinds the
 * driver, deletes the device (which leaves its IOMMU group) and releases its BARs from the
 * iomem tree. A hot-unplug (pciehp surprise removal) first marks the function disconnected
 * and physically gone, so its BARs decode nothing from then on.
 *
 * Left out: bridges and subordinate buses, pci_bus_sem, ASPM, pci_bridge_d3_update, VFs.
 *
 * @kernel drivers/pci/remove.c (all versions); drivers/pci/hotplug/pciehp_pci.c:
 *   pciehp_unconfigure_device (the surprise-removal order)
 */
import type { Op } from '../../../sched/index.js';
import { release_resource } from '../../kernel/resource.js';
import { pfnsan_set_owner } from '../../mm/pfnsan/pfnsan.js';
import { device_del } from '../base/core.js';
import { device_release_driver } from '../base/dd.js';
import { iommu_release_device } from '../iommu/iommu.js';
import { PCI_ROM_RESOURCE, pci_dev_set_disconnected, type pci_dev } from './pci.js';

/**
 * pci_free_resources(dev): releases every claimed BAR from the resource tree.
 * @kernel drivers/pci/remove.c:pci_free_resources (all versions)
 */
function pci_free_resources(pdev: pci_dev): void {
  for (const r of pdev.resource) if (r && r.parent) release_resource(r);
}

/**
 * pci_stop_dev(dev): unbinds the driver.
 * @kernel drivers/pci/remove.c:pci_stop_dev, pci_stop_bus_device (all versions)
 * Locking: takes device_lock.
 */
function* pci_stop_dev(pdev: pci_dev): Op<void> {
  if (!pdev.is_added) return;
  yield* device_release_driver(pdev);
  pdev.is_added = false;
}

/**
 * pci_destroy_dev(dev): deletes the device (leaving its IOMMU group via the bus notifier)
 * and releases its BARs; their frames no longer belong to anyone.
 * @kernel drivers/pci/remove.c:pci_destroy_dev, pci_remove_bus_device (all versions)
 */
function* pci_destroy_dev(pdev: pci_dev): Op<void> {
  yield* device_del(pdev);
  yield* iommu_release_device(pdev);
  pci_free_resources(pdev);
  for (let i = 0; i < PCI_ROM_RESOURCE; i++) {
    const r = pdev.resource[i];
    if (!r) continue;
    pfnsan_set_owner(r.start / 4096, (r.end + 1 - r.start) / 4096, {
      kind: 'unassigned',
      desc: `unassigned (was BAR${i} of ${pdev.name}, removed)`,
    });
  }
}

/**
 * pci_stop_and_remove_bus_device(dev): unbinds and removes the function.
 * @kernel drivers/pci/remove.c:pci_stop_and_remove_bus_device (all versions)
 * Locking: the caller holds pci_rescan_remove_lock (not modelled); takes device_lock.
 */
export function* pci_stop_and_remove_bus_device(pdev: pci_dev): Op<void> {
  yield* pci_stop_dev(pdev);
  yield* pci_destroy_dev(pdev);
}

/**
 * Model: a surprise hot-unplug of the function (pciehp with the slot empty):
 * pci_dev_set_disconnected, the function is physically gone (one config-state Step), then
 * pci_stop_and_remove_bus_device.
 * @kernel drivers/pci/hotplug/pciehp_pci.c:pciehp_unconfigure_device (all versions)
 */
export function* pci_hot_unplug(pdev: pci_dev): Op<void> {
  pci_dev_set_disconnected(pdev);
  yield { obj: pdev.cfg_obj, kind: 'write', what: 'hot-unplug' };
  pdev.present = false;
  yield* pci_stop_and_remove_bus_device(pdev);
}
