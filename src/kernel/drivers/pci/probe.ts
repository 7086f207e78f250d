/**
 * Adding PCI functions (drivers/pci/probe.c): the model's enumeration creates a pci_dev
 * from a machine description (BDF, IDs, BAR sizes and addresses), claims its BARs in the
 * iomem tree under the host bridge window, registers them with the BAR dispatcher
 * (access.ts), puts the function in its IOMMU group and adds it to the driver core.
 *
 * Left out: config-space probing of BAR sizes, bridges, bus numbers, resource assignment
 * (addresses come from the machine description), quirks, capabilities.
 *
 * @kernel drivers/pci/probe.c:pci_setup_device, pci_device_add, drivers/pci/bus.c:
 *   pci_bus_add_device, drivers/pci/setup-res.c:pci_claim_resource (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel, Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import type { PhysRange } from '../../mm/sparse.js';
import { cma_find } from '../../mm/cma.js';
import {
  DEFINE_RES_NAMED,
  iomem_resource,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  request_resource_conflict,
  resource_string,
  type resource,
} from '../../kernel/resource.js';
import { pr_info, pr_err } from '../../kernel/printk.js';
import type { cma } from '../../mm/page_alloc.js';
import { device_add } from '../base/core.js';
import {
  iommu_group_alloc,
  iommu_present_on_machine,
  iommu_set_present,
  iommu_probe_device,
  type iommu_group,
} from '../iommu/iommu.js';
import { pci_bar_register } from './access.js';
import { PCI_D0, pci_bar_why_disabled, pci_dev } from './pci.js';
import { pci_bus_type, pci_update_bar_owners } from './pci-driver.js';

/** One BAR of a modelled function: its placement and size (power of two, ≥ 4 KiB). */
export interface pci_bar_spec {
  readonly base: number;
  readonly size: number;
  readonly prefetch?: boolean;
}

/** A modelled PCI function. */
export interface pci_device_spec {
  /** "0000:01:00.0" */
  readonly bdf: string;
  readonly vendor?: number;
  readonly device?: number;
  readonly bars: readonly pci_bar_spec[];
  /** Functions with the same number share an IOMMU group; default: a group of their own. */
  readonly iommuGroup?: number;
  /** The device's own CMA area (dev->cma_area). */
  readonly cma?: cma | null;
  /** The function supports FLR (default true). */
  readonly flr?: boolean;
  /** PCI_PM_CTRL_NO_SOFT_RESET (default true). */
  readonly no_soft_reset?: boolean;
  /** PCI_COMMAND as firmware left it (default 0: decoding off). */
  readonly command?: number;
}

/** Parses "0000:01:00.0" into domain, bus, devfn; throws on a malformed BDF. */
export function parse_bdf(bdf: string): { domain: number; bus: number; devfn: number } {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i.exec(bdf);
  if (!m) throw new Error(`PCI device '${bdf}': the BDF must look like 0000:01:00.0`);
  const slot = parseInt(m[3]!, 16);
  if (slot > 0x1f) throw new Error(`PCI device '${bdf}': slot must be at most 1f`);
  return {
    domain: parseInt(m[1]!, 16),
    bus: parseInt(m[2]!, 16),
    devfn: (slot << 3) | parseInt(m[4]!, 10),
  };
}

interface probe_state {
  readonly all: pci_dev[];
  readonly groups: Map<number, iommu_group>;
}

function st(): probe_state {
  const k = currentKernel();
  return ((k.sub.pci_probe as probe_state | undefined) ??= { all: [], groups: new Map() });
}

/** Model lookup: the function with this BDF (also after removal), or null. */
export function pci_find_bdf(bdf: string): pci_dev | null {
  return st().all.find((d) => d.name === bdf.toLowerCase()) ?? null;
}

/** Model lookup: every function created on this machine. */
export function pci_all_devices(): readonly pci_dev[] {
  return st().all;
}

/**
 * pci_get_domain_bus_and_slot(domain, bus, devfn): the added function at that address.
 * @kernel drivers/pci/search.c:pci_get_domain_bus_and_slot (all versions)
 * Return: the function or null (no reference counting in the model).
 */
export function pci_get_domain_bus_and_slot(
  domain: number,
  bus: number,
  devfn: number,
): pci_dev | null {
  return (
    st().all.find(
      (d) => d.is_added && d.domain_nr === domain && d.bus_nr === bus && d.devfn === devfn,
    ) ?? null
  );
}

/** pci_find_parent_resource: the iomem resource (host bridge window) containing res. */
function find_parent(res: resource): resource {
  for (let p = iomem_resource().child; p; p = p.sibling) {
    if (p.start <= res.start && p.end >= res.end) return p;
  }
  return iomem_resource();
}

/**
 * Creates and adds a PCI function (pci_setup_device + pci_device_add + pci_bus_add_device):
 * BARs claimed in iomem and registered with the dispatcher, IOMMU group, driver core
 * (which binds a matching registered driver).
 * Locking: takes the IOMMU group mutex and device_lock.
 * Return: the function.
 */
export function* pci_device_add_spec(spec: pci_device_spec): Op<pci_dev> {
  const { domain, bus, devfn } = parse_bdf(spec.bdf);
  const pdev = new pci_dev(
    spec.bdf.toLowerCase(),
    pci_bus_type(),
    domain,
    bus,
    devfn,
    spec.vendor ?? 0x1af4,
    spec.device ?? 0x1000,
  );
  pdev.flr = spec.flr ?? true;
  pdev.no_soft_reset = spec.no_soft_reset ?? true;
  pdev.command = spec.command ?? 0;
  pdev.cma_area = spec.cma ?? null;
  spec.bars.forEach((b, i) => {
    if (!b) return;
    let flags = IORESOURCE_MEM | IORESOURCE_MEM_64;
    if (b.prefetch) flags |= IORESOURCE_PREFETCH;
    const res = DEFINE_RES_NAMED(b.base, b.size, pdev.name, flags);
    pdev.resource[i] = res;
    pr_info(`pci ${pdev.name}: BAR ${i} ${resource_string(res)}`);
    // pci_claim_resource
    const conflict = request_resource_conflict(find_parent(res), res);
    if (conflict) {
      pr_err(
        `pci ${pdev.name}: BAR ${i} ${resource_string(res)}: can't claim; address conflict with ${conflict.name ?? '??'} ${resource_string(conflict)}`,
      );
    }
    pci_bar_register({
      start_pfn: b.base / 4096,
      nr_pages: b.size / 4096,
      name: `BAR${i} of ${pdev.name}`,
      cfg_obj: pdev.cfg_obj,
      why_disabled: () => pci_bar_why_disabled(pdev),
    });
  });
  pdev.current_state = PCI_D0;
  st().all.push(pdev);
  // iommu_bus_notifier(BUS_NOTIFY_ADD_DEVICE) -> iommu_probe_device
  let group: iommu_group | null = null;
  if (spec.iommuGroup !== undefined) {
    group = st().groups.get(spec.iommuGroup) ?? null;
  }
  const hadGroup = group !== null;
  if (!group) group = iommu_group_alloc_lazy();
  const ret = yield* iommu_probe_device(pdev, pdev.source_id, group);
  if (ret === 0 && spec.iommuGroup !== undefined && !hadGroup) {
    st().groups.set(spec.iommuGroup, pdev.iommu_group!);
  }
  if (ret === 0) pr_info(`pci ${pdev.name}: Adding to iommu group ${pdev.iommu_group!.id}`);
  pdev.is_added = true;
  pci_update_bar_owners(pdev);
  yield* device_add(pdev);
  return pdev;
}

/** A new group only when the machine has an IOMMU (iommu_probe_device refuses otherwise). */
function iommu_group_alloc_lazy(): iommu_group | null {
  return iommu_present_on_machine() ? iommu_group_alloc() : null;
}

/** A function of a machine description (BAR sizes only; pci_place_bars gives addresses). */
export interface pci_machine_device {
  readonly bdf: string;
  readonly vendor?: number;
  readonly device?: number;
  readonly bars: readonly { readonly size: number; readonly prefetch?: boolean }[];
  readonly iommuGroup?: number;
  /** Name of a CMA area of the machine (dev->cma_area). */
  readonly cma?: string;
  readonly flr?: boolean;
  readonly command?: number;
}

const GiB = 2 ** 30;

/**
 * Model: places the BARs of `devices` in one MMIO window ("PCI Bus 0000:00") starting at the
 * first GiB boundary above every range of `map`, each BAR aligned to its size.
 * Return: the window to add to the physical map (null without devices) and the BAR bases.
 * Throws an Error naming the problem for a malformed BDF, a repeated BDF or a bad size.
 */
export function pci_place_bars(
  map: readonly PhysRange[],
  devices: readonly pci_machine_device[],
): { window: PhysRange | null; bases: number[][] } {
  if (devices.length === 0) return { window: null, bases: [] };
  const top = Math.max(...map.map((r) => r.end));
  const start = Math.ceil(top / GiB) * GiB;
  let cur = start;
  const bases: number[][] = [];
  const seen = new Set<string>();
  for (const d of devices) {
    parse_bdf(d.bdf);
    if (seen.has(d.bdf.toLowerCase())) throw new Error(`machine: device ${d.bdf} is listed twice`);
    seen.add(d.bdf.toLowerCase());
    const b: number[] = [];
    for (const bar of d.bars) {
      if (bar.size < 4096 || !Number.isInteger(Math.log2(bar.size))) {
        throw new Error(
          `machine: device ${d.bdf}: BAR sizes must be powers of two of at least 4096`,
        );
      }
      cur = Math.ceil(cur / bar.size) * bar.size;
      b.push(cur);
      cur += bar.size;
    }
    bases.push(b);
  }
  const end = Math.max(start + GiB, Math.ceil(cur / GiB) * GiB);
  return { window: { start, end, kind: 'mmio', name: 'PCI Bus 0000:00' }, bases };
}

/**
 * Model: adds the machine's functions after start_kernel (with the IOMMU on or off), as
 * PCI enumeration at boot does.
 */
export function pci_boot_devices(
  k: Kernel,
  devices: readonly pci_machine_device[],
  bases: readonly (readonly number[])[],
  iommu: boolean,
): void {
  k.activate();
  iommu_set_present(iommu);
  devices.forEach((d, i) => {
    const c = d.cma !== undefined ? cma_find(d.cma) : null;
    if (d.cma !== undefined && !c) {
      throw new Error(`machine: device ${d.bdf}: no CMA area named '${d.cma}' (add it to cma)`);
    }
    k.run(
      pci_device_add_spec({
        bdf: d.bdf,
        vendor: d.vendor,
        device: d.device,
        bars: d.bars.map((b, j) => ({ base: bases[i]![j]!, size: b.size, prefetch: b.prefetch })),
        iommuGroup: d.iommuGroup,
        cma: c,
        flr: d.flr,
        command: d.command,
      }),
      'boot',
    );
  });
}

/**
 * Model (tests and the scenario layer): boots a kernel of `version` with `ram` bytes, CMA
 * areas, and PCI functions placed by pci_place_bars.
 * Return: the kernel.
 */
export function pci_boot_machine(opts: {
  readonly version: string;
  readonly config?: Readonly<Record<string, boolean | number>>;
  readonly ram?: number;
  readonly cma?: readonly { name: string; base: number; size: number }[];
  readonly devices?: readonly pci_machine_device[];
  readonly iommu?: boolean;
}): Kernel {
  const k = new Kernel({ version: opts.version, config: opts.config ?? {} });
  const map: PhysRange[] = x86_64_e820(opts.ram ?? 4 * GiB);
  const { window, bases } = pci_place_bars(map, opts.devices ?? []);
  if (window) map.push(window);
  start_kernel(k, { map, cma: opts.cma });
  pci_boot_devices(k, opts.devices ?? [], bases, opts.iommu ?? true);
  return k;
}

/** Model: the function with this BDF in kernel k; throws naming the BDF when there is none. */
export function pci_dev_by_bdf(k: Kernel, bdf: string): pci_dev {
  k.activate();
  const d = pci_find_bdf(bdf);
  if (!d) throw new Error(`machine: no PCI device ${bdf}`);
  return d;
}
