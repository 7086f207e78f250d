/**
 * The vfio-pci driver: a pci_driver with no ID table (users bind it with
 * driver_override or new_id), whose probe registers a vfio_pci_core_device in the
 * function's IOMMU group and puts the idle function in D3hot; remove waits for the
 * device to be released and powers it up again for the next driver.
 *
 * Ownership of the BAR frames follows the binding (the PCI core's pci_device_probe /
 * pci_device_remove call pfnsan_set_owner): bound to vfio-pci, the BARs are the user's
 * through vfio; after unbind and a host driver's bind they are that driver's, whatever a
 * former user or an IOMMU mapping still points at.
 *
 * Left out: SR-IOV (sriov_configure, VF tokens, the bus notifier), VGA arbitration,
 * AER err_handler, the `ids=` module parameter, `nointxmask`, `disable_vga`,
 * `enable_sriov`, the vfio_pci_core module split (one driver here).
 *
 * @kernel drivers/vfio/pci/vfio_pci.c (5.7–6.18; probe/remove bodies in
 *   vfio_pci_core.c:vfio_pci_core_register_device/unregister_device 5.15+)
 */
import type { Op } from '../../../../sched/index.js';
import { EINVAL } from '../../../include/linux/errno.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { PCI_D0, PCI_D3hot, type pci_dev } from '../../pci/pci.js';
import { pci_register_driver, type pci_driver } from '../../pci/pci-driver.js';
import { vfio_container_init } from '../container.js';
import { vfio_register_group_dev, vfio_unregister_group_dev } from '../vfio_main.js';
import {
  vfio_pci_core_device,
  vfio_pci_disable_idle_d3,
  vfio_pci_set_power_state,
} from './vfio_pci_core.js';

/**
 * vfio_pci_probe(pdev, id): no IOMMU group ⇒ -EINVAL; registers the vfio device; an idle
 * function goes to D0 then D3hot (unless disable_idle_d3).
 * @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_probe, vfio_pci_core_register_device
 *   (5.7–6.18)
 * Locking: device_lock held.
 * Return: 0 or -errno.
 */
function* vfio_pci_probe(pdev: pci_dev): Op<number> {
  if (!pdev.iommu_group) return -EINVAL; // vfio_iommu_group_get
  const vdev = new vfio_pci_core_device(pdev);
  const ret = yield* vfio_register_group_dev(vdev);
  if (ret) return ret;
  pdev.driver_data = vdev;
  vdev.needs_pm_restore = !pdev.no_soft_reset; // vfio_pci_probe_power_state
  if (!vfio_pci_disable_idle_d3()) {
    yield* vfio_pci_set_power_state(vdev, PCI_D0);
    yield* vfio_pci_set_power_state(vdev, PCI_D3hot);
  }
  return 0;
}

/**
 * vfio_pci_remove(pdev): unregisters the vfio device (blocking until its users are
 * gone), then D0 for the next driver.
 * @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_remove, vfio_pci_core_unregister_device
 *   (5.7–6.18)
 * Locking: device_lock held.
 */
function* vfio_pci_remove(pdev: pci_dev): Op<void> {
  const vdev = pdev.driver_data as vfio_pci_core_device | null;
  if (!vdev) return;
  yield* vfio_unregister_group_dev(vdev);
  if (!vfio_pci_disable_idle_d3()) yield* vfio_pci_set_power_state(vdev, PCI_D0);
  pdev.driver_data = null;
}

/** vfio_pci_driver. @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_driver (5.7–6.18) */
export function vfio_pci_driver(): pci_driver {
  const k = currentKernel();
  return ((k.sub.vfio_pci_driver as pci_driver | undefined) ??= {
    name: 'vfio-pci',
    id_table: [],
    probe: (pdev) => vfio_pci_probe(pdev),
    remove: vfio_pci_remove,
    driver_managed_dma: true,
  });
}

/**
 * vfio_pci_init(): module init: the VFIO core's /dev/vfio/vfio (vfio_init) and the
 * vfio-pci driver.
 * @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_init, drivers/vfio/vfio_main.c:vfio_init
 *   (5.7–6.18)
 * Return: 0 or -errno.
 */
export function* vfio_pci_init(): Op<number> {
  vfio_container_init();
  return yield* pci_register_driver(vfio_pci_driver());
}

/** The vfio_pci_core_device bound to pdev, or null. */
export function vfio_pci_vdev(pdev: pci_dev): vfio_pci_core_device | null {
  return pdev.driver_data instanceof vfio_pci_core_device ? pdev.driver_data : null;
}
