/**
 * Building a machine for a run: a kernel instance of a version and configuration, booted
 * with a physical map of RAM, device MMIO windows and CMA areas.
 */
import { Kernel } from '../kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../kernel/init/main.js';
import type { PhysRange } from '../kernel/mm/sparse.js';
import type { ConfigValue } from '../kernel/kconfig.js';
import { pci_boot_devices, pci_find_bdf, pci_place_bars } from '../kernel/drivers/pci/probe.js';
import type { pci_dev } from '../kernel/drivers/pci/pci.js';

/** A PCI function of the machine. Its BARs are placed in an MMIO window above RAM. */
export interface DeviceSpec {
  /** "0000:01:00.0" */
  readonly bdf: string;
  readonly vendor?: number;
  readonly device?: number;
  /** Sizes are powers of two of at least 4 KiB; each BAR is aligned to its size. */
  readonly bars: readonly { readonly size: number; readonly prefetch?: boolean }[];
  /** Devices with the same number share an IOMMU group (default: one group each). */
  readonly iommuGroup?: number;
  /** Name of one of the machine's CMA areas to use as the device's dev->cma_area. */
  readonly cma?: string;
  /** The function supports FLR (default true). */
  readonly flr?: boolean;
  /** PCI_COMMAND as firmware left it (default 0). */
  readonly command?: number;
}

export interface MmioWindow {
  /** Physical address of the window (page aligned). */
  readonly base: number;
  readonly size: number;
  readonly name: string;
}

export interface MachineSpec {
  readonly version: string;
  readonly config?: Readonly<Record<string, ConfigValue | string>>;
  /** Bytes of RAM (default 4 GiB). */
  readonly ram?: number;
  /** Device memory without struct page (BARs). Must not overlap RAM. */
  readonly mmio?: readonly MmioWindow[];
  readonly cma?: readonly { name: string; base: number; size: number }[];
  /** PCI functions, added at boot in this order. */
  readonly devices?: readonly DeviceSpec[];
  /** The machine has an IOMMU turned on (default true). */
  readonly iommu?: boolean;
}

/** Boots a kernel for the spec; throws an Error with a one-line message on bad input. */
export function bootMachine(spec: MachineSpec): Kernel {
  const k = new Kernel({ version: spec.version, config: spec.config ?? {} });
  const map: PhysRange[] = x86_64_e820(spec.ram ?? 4 * 2 ** 30);
  for (const w of spec.mmio ?? []) {
    map.push({ start: w.base, end: w.base + w.size, kind: 'mmio', name: w.name });
  }
  const { window, bases } = pci_place_bars(map, spec.devices ?? []);
  if (window) map.push(window);
  start_kernel(k, { map, cma: spec.cma });
  pci_boot_devices(k, spec.devices ?? [], bases, spec.iommu ?? true);
  return k;
}

/** The machine's PCI function with this BDF; throws naming the BDF when there is none. */
export function deviceByBdf(k: Kernel, bdf: string): pci_dev {
  k.activate();
  const d = pci_find_bdf(bdf);
  if (!d) throw new Error(`machine: no PCI device ${bdf}`);
  return d;
}
