/**
 * Shared pieces of the VFIO stories (vfio-type1-bar, cve-2020-12888): a machine with two
 * PCI functions in IOMMU groups of their own, vfio-pci and the type1 backend loaded, and a
 * user process that does what QEMU does: open /dev/vfio/vfio and the groups, set the
 * type1v2 IOMMU, get the device fds and mmap BAR0 of device A through vfio-pci.
 *
 * Machine: 4 GiB RAM; A = 0000:01:00.0 with a 16 KiB BAR0, B = 0000:02:00.0 with a 4 KiB
 * BAR0, both placed by pci_place_bars in the window at 0x180000000 (A's BAR0: pfns
 * 0x180000-0x180003). IOMMU groups 0 (A) and 1 (B).
 *
 * Not a scenario: the library's index lists only the story files.
 */
import type { Op } from '../src/sched/index.js';
import type { ScenarioContext, ScenarioMachine } from '../src/index.js';
import type { Process } from '../src/scenario/process.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import type { pci_dev } from '../src/kernel/drivers/pci/pci.js';
import { PCI_COMMAND } from '../src/kernel/drivers/pci/pci.js';
import { driver_override_store } from '../src/kernel/drivers/pci/pci-driver.js';
import { device_driver_attach } from '../src/kernel/drivers/base/dd.js';
import { vfio_pci_driver, vfio_pci_init } from '../src/kernel/drivers/vfio/pci/vfio_pci.js';
import { VFIO_PCI_INDEX_TO_OFFSET } from '../src/kernel/drivers/vfio/pci/vfio_pci_core.js';
import { vfio_iommu_type1_init } from '../src/kernel/drivers/vfio/vfio_iommu_type1.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ,
  VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  type vfio_iommu_type1_dma_unmap,
} from '../src/kernel/include/uapi/linux/vfio.js';
import { O_RDWR } from '../src/kernel/fs/inode.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';

export const BDF_A = '0000:01:00.0';
export const BDF_B = '0000:02:00.0';
/** A's BAR0: 16 KiB, 4 frames. */
export const BAR_A_SIZE = 0x4000;
/** Where the process maps A's BAR0 (the mmap hint; vfio-pci mmaps are MAP_SHARED). */
export const BAR_MAP = 0x40000000;
/** The IOVA the process maps A's BAR0 at for the container's devices. */
export const IOVA = 0x100000;

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** The two-function machine of the VFIO stories. */
export const vfioMachine: ScenarioMachine = {
  devices: [
    { bdf: BDF_A, bars: [{ size: BAR_A_SIZE }] },
    { bdf: BDF_B, bars: [{ size: 0x1000 }] },
  ],
};

/** The VFIO user: its process, fds and A's BAR0 mapping. */
export interface VfioUser {
  readonly p: Process;
  readonly a: pci_dev;
  readonly b: pci_dev;
  /** /dev/vfio/vfio */
  readonly cfd: number;
  /** /dev/vfio/<group> of A and of B */
  readonly gfdA: number;
  readonly gfdB: number;
  /** Device fds of A and of B (-1 when not opened). */
  readonly dfdA: number;
  readonly dfdB: number;
  /** The user address of A's BAR0. */
  readonly bar: number;
  /** A's BAR0 first pfn. */
  readonly barPfn: number;
  /** A one-page scratch buffer for config-space writes (pwrite source). */
  readonly scratch: number;
}

/** Loads the modules: the VFIO core and vfio-pci (vfio_pci_init), and type1. */
export function loadVfio(ctx: ScenarioContext): void {
  ctx.run(vfio_pci_init(), 'modprobe');
  ctx.k.activate();
  const r = vfio_iommu_type1_init();
  if (r) throw new Error(`vfio_iommu_type1_init: ${errname(r)}`);
}

/** Binds a function to vfio-pci (driver_override + bind, as `driverctl` does). */
export function bindVfioPci(ctx: ScenarioContext, pdev: pci_dev): void {
  driver_override_store(pdev, 'vfio-pci');
  const r = ctx.run(device_driver_attach(vfio_pci_driver().driver!, pdev), 'bind');
  // device_driver_attach returns 1 on a bind up to 5.12 and 0 from 5.13 (the model's
  // vfio_pci_core_device test pins this down); anything negative is a failure.
  if (r < 0) throw new Error(`bind ${pdev.name} to vfio-pci: ${errname(r)}`);
}

function must(what: string, r: number): number {
  if (r < 0) throw new Error(`${what}: ${errname(r)}`);
  return r;
}

/**
 * The QEMU sequence: vfio-pci and type1 loaded, A and B bound to vfio-pci, both groups in
 * one type1v2 container, the device fds of A (and of B when `withB`), A's BAR0 mmapped
 * at BAR_MAP and touched once (the fault maps it, 5.8+). B is a bus master with memory
 * decoding on (COMMAND = MEMORY|MASTER written through its config region).
 */
export function vfioUser(ctx: ScenarioContext): VfioUser {
  loadVfio(ctx);
  const a = deviceByBdf(ctx.k, BDF_A);
  const b = deviceByBdf(ctx.k, BDF_B);
  bindVfioPci(ctx, a);
  bindVfioPci(ctx, b);
  const p = ctx.spawnProcess('qemu');
  const cfd = must('open /dev/vfio/vfio', p.open('/dev/vfio/vfio', O_RDWR));
  const gfdA = must('open group A', p.open(`/dev/vfio/${a.iommu_group!.id}`, O_RDWR));
  const gfdB = must('open group B', p.open(`/dev/vfio/${b.iommu_group!.id}`, O_RDWR));
  must('SET_CONTAINER A', p.ioctl(gfdA, VFIO_GROUP_SET_CONTAINER, cfd));
  must('SET_CONTAINER B', p.ioctl(gfdB, VFIO_GROUP_SET_CONTAINER, cfd));
  must('SET_IOMMU', p.ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  const dfdA = must('GET_DEVICE_FD A', p.ioctl(gfdA, VFIO_GROUP_GET_DEVICE_FD, BDF_A));
  const dfdB = must('GET_DEVICE_FD B', p.ioctl(gfdB, VFIO_GROUP_GET_DEVICE_FD, BDF_B));
  const bar = must(
    'mmap BAR0 of A',
    p.mmap(
      BAR_MAP,
      BAR_A_SIZE,
      PROT_READ | PROT_WRITE,
      MAP_SHARED,
      dfdA,
      VFIO_PCI_INDEX_TO_OFFSET(0),
    ),
  );
  const touched = p.store(bar, [0x11]);
  if (touched !== 0) throw new Error(`first store to A's BAR0: ${touched.toString()}`);
  const scratch = p.buffer(4096);
  // B: COMMAND = MEMORY | MASTER (0x6), so its DMA engine may master the bus.
  if (p.store(scratch, [0x06, 0x00]) !== 0) throw new Error('scratch store');
  must('B: COMMAND = MEMORY|MASTER', p.pwrite(dfdB, scratch, 2, cfgOffset(PCI_COMMAND)));
  if (p.store(scratch, [0x00, 0x00]) !== 0) throw new Error('scratch store');
  return {
    p,
    a,
    b,
    cfd,
    gfdA,
    gfdB,
    dfdA,
    dfdB,
    bar,
    barPfn: a.resource[0]!.start / 4096,
    scratch,
  };
}

/** The device-fd offset of config register `reg` (the config region, index 7). */
export function cfgOffset(reg: number): number {
  return VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + reg;
}

/** VFIO_IOMMU_MAP_DMA of [vaddr, vaddr+size) at iova, read-write. Return: 0 or -errno. */
export function mapDma(p: Process, cfd: number, vaddr: number, iova: number, size: number): number {
  return p.ioctl(cfd, VFIO_IOMMU_MAP_DMA, {
    argsz: VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ,
    flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
    vaddr,
    iova,
    size,
  });
}

/** VFIO_IOMMU_UNMAP_DMA of [iova, iova+size) as an operation. Return: 0 or -errno. */
export function unmapDmaOp(p: Process, cfd: number, iova: number, size: number): Op<number> {
  const u: vfio_iommu_type1_dma_unmap = {
    argsz: VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ,
    flags: 0,
    iova,
    size,
  };
  return p.op.ioctl(cfd, VFIO_IOMMU_UNMAP_DMA, u);
}
