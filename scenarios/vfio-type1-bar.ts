/**
 * vfio-type1-bar: VFIO type1 DMA mappings of a PFNMAP VMA. A QEMU-like process mmaps BAR0
 * of device A through vfio-pci and VFIO_IOMMU_MAP_DMA's it, so that device B (in the same
 * container) can DMA into A's BAR (peer to peer). type1 resolves the VMA with
 * follow_fault_pfn and keeps only the raw pfns: nothing holds them after the lookup's
 * window ends (R-VT1-2, R-VT1-3), and vfio-pci's zaps remove CPU PTEs only (R-VPCI-4).
 * B's DMA engine then writes through the IOMMU while A's BAR is
 *
 * - vfio-type1-bar-disable: disabled through config space (COMMAND.MEMORY cleared);
 * - vfio-type1-bar-reset: reset (VFIO_DEVICE_RESET: save, disable, FLR, restore);
 * - vfio-type1-bar-release: released by vfio-pci and bound to a host driver;
 * - vfio-type1-nonvfio-pfnmap: the VMA is not a vfio BAR at all, but a driver's
 *   remap_pfn_range of RAM it later frees.
 *
 * Variants:
 * - unsafe: the merged kernels (no RFC). The MAP_DMA itself maps pfns whose lookup
 *   window has ended (pfnsan: stale-pfn in iommu_map, on every version: follow_pfn ≤5.7,
 *   follow_pte 5.8–6.11 — 5.8 adds fixup_user_fault, 5.12 the write check — and
 *   follow_pfnmap_start/_end 6.12+); later reports show the harm (disabled-bar,
 *   cross-owner, use-after-free).
 * - rfc: the 2021 RFC "vfio/type1: Register device notifier" (R-RFC-1, never merged),
 *   opt-in in the model. The mapping holds a vfio device reference that guards the
 *   pfns, and VFIO_DEVICE_RELEASE removes the mapping; the RFC does nothing on memory
 *   disable or reset, so B's DMA still reaches A's BAR while it does not decode.
 * - fixed: for release, the RFC; for disable and reset, the RFC plus the user removing
 *   the DMA mapping first (VFIO_IOMMU_UNMAP_DMA, as QEMU's memory listener does when the
 *   guest turns memory decoding off); for the non-vfio VMA, the RFC with
 *   strict_mmio_maps=1 (MAP_DMA refused with -ENODEV).
 *
 * Machine: see vfio-common.ts (A = 0000:01:00.0, BAR0 pfns 0x180000-0x180003, mapped at
 * 0x40000000 and at IOVA 0x100000; B = 0000:02:00.0). B writes 4 bytes at IOVA 0x101000
 * (pfn 0x180001).
 */
import { defineScenario, type Op } from '../src/index.js';
import type { Process } from '../src/scenario/process.js';
import { dma_engine_access } from '../src/kernel/drivers/dma/engine.js';
import { PCI_COMMAND, pci_enable_device_mem, type pci_dev } from '../src/kernel/drivers/pci/pci.js';
import {
  driver_override_store,
  pci_device_id_any,
  pci_register_driver,
  type pci_driver,
} from '../src/kernel/drivers/pci/pci-driver.js';
import { device_release_driver } from '../src/kernel/drivers/base/dd.js';
import {
  set_strict_mmio_maps,
  vfio_type1_device_notifier_rfc,
} from '../src/kernel/drivers/vfio/vfio_iommu_type1.js';
import { VFIO_DEVICE_RESET } from '../src/kernel/include/uapi/linux/vfio.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import type { file, vm_area_struct } from '../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../src/kernel/include/linux/mm.js';
import { remap_pfn_range, vm_flags_set } from '../src/kernel/mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../src/kernel/mm/memory.zap.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../src/kernel/mm/mmap.js';
import { alloc_pages, GFP_KERNEL, __free_pages } from '../src/kernel/mm/page_alloc.js';
import { ClearPageReserved, SetPageReserved } from '../src/kernel/include/linux/page-flags.js';
import type { page } from '../src/kernel/include/linux/mm_types.js';
import {
  BAR_A_SIZE,
  IOVA,
  cfgOffset,
  hex,
  mapDma,
  unmapDmaOp,
  vfioMachine,
  vfioUser,
} from './vfio-common.js';
import type { ScenarioContext } from '../src/index.js';
import type { VfioUser } from './vfio-common.js';

/** Where B's DMA writes: the second page of the mapping. */
const DMA_AT = IOVA + 0x1000;

interface State {
  readonly u: VfioUser;
  /** MAP_DMA's result in setup. */
  readonly mapped: number;
  /** B's DMA result (ret), once done. */
  dma?: number;
}

/** Applies the variant's type1 module parameters (per kernel: set after boot). */
function type1Params(ctx: ScenarioContext): void {
  ctx.k.activate();
  if (ctx.params.rfc === true) {
    vfio_type1_device_notifier_rfc(true);
    if (ctx.params.strict === false) set_strict_mmio_maps(false);
  }
}

/** The QEMU sequence and MAP_DMA of A's BAR0 at IOVA 0x100000. */
function setupBar(ctx: ScenarioContext): State {
  const u = vfioUser(ctx);
  type1Params(ctx);
  const mapped = mapDma(u.p, u.cfd, u.bar, IOVA, BAR_A_SIZE);
  ctx.note(
    `MAP_DMA of A's BAR0 (${hex(u.bar)}) at iova ${hex(IOVA)}: ${mapped ? errname(mapped) : 0}`,
  );
  return { u, mapped };
}

/** B's DMA engine: one 4-byte write at IOVA 0x101000. */
function* dmaB(ctx: ScenarioContext, b: pci_dev, s: { dma?: number }): Op<void> {
  const r = yield* dma_engine_access(
    b,
    DMA_AT,
    4,
    'write',
    Uint8Array.from([0xb0, 0x0b, 0xb0, 0x0b]),
  );
  s.dma = r.ret;
  ctx.note(`B's DMA write at iova ${hex(DMA_AT)}: ${r.ret ? errname(r.ret) : 'done'}`);
}

const dmaThread = {
  kind: 'dma' as const,
  run: (ctx: ScenarioContext, s: State): Op<void> => dmaB(ctx, s.u.b, s),
};

const rfcVariants = {
  unsafe: {
    description: 'merged kernels: the IOMMU keeps the raw pfns of the BAR',
    params: { rfc: false },
    expect: { default: 'stale-pfn' },
  },
  rfc: {
    description: 'the 2021 device-notifier RFC, which acts on device release only',
    params: { rfc: true },
    expect: { '5.7': 'n/a', default: 'disabled-bar' },
  },
  fixed: {
    description: 'the RFC, and the user unmaps the DMA range before the device stops decoding',
    params: { rfc: true, unmapFirst: true },
    expect: { '5.7': 'n/a', default: 'SAFE' },
  },
};

/** The user's side of disable/reset: optionally UNMAP_DMA first, then `act`. */
function* userThen(
  ctx: ScenarioContext,
  s: State,
  act: (p: Process) => Op<number>,
  what: string,
): Op<void> {
  const { p, cfd } = s.u;
  if (ctx.params.unmapFirst === true) {
    const r = yield* unmapDmaOp(p, cfd, IOVA, BAR_A_SIZE);
    ctx.note(`UNMAP_DMA iova ${hex(IOVA)}: ${r ? errname(r) : 0}`);
  }
  const r = yield* act(p);
  ctx.note(`${what}: ${r < 0 ? errname(r) : r}`);
}

export const vfioType1BarDisable = defineScenario<State>({
  name: 'vfio-type1-bar-disable',
  story: 'vfio-type1-bar',
  description:
    "B's DMA through a type1 mapping of A's vfio-pci BAR0 while the user clears A's COMMAND.MEMORY",
  machine: vfioMachine,
  setup: setupBar,
  threads: {
    user: {
      kind: 'cpu',
      as: (_ctx, s) => s.u.p,
      // The scratch buffer holds 0x0000: COMMAND = 0 turns memory decoding off.
      run: (ctx, s) =>
        userThen(
          ctx,
          s,
          (p) => p.op.pwrite(s.u.dfdA, s.u.scratch, 2, cfgOffset(PCI_COMMAND)),
          "pwrite A's COMMAND = 0",
        ),
    },
    dma: dmaThread,
  },
  variants: rfcVariants,
});

export const vfioType1BarReset = defineScenario<State>({
  name: 'vfio-type1-bar-reset',
  story: 'vfio-type1-bar',
  description: "B's DMA through a type1 mapping of A's vfio-pci BAR0 racing VFIO_DEVICE_RESET of A",
  machine: vfioMachine,
  setup: setupBar,
  threads: {
    user: {
      kind: 'cpu',
      as: (_ctx, s) => s.u.p,
      run: (ctx, s) =>
        userThen(
          ctx,
          s,
          (p) => p.op.ioctl(s.u.dfdA, VFIO_DEVICE_RESET, 0),
          'VFIO_DEVICE_RESET of A',
        ),
    },
    dma: dmaThread,
  },
  variants: rfcVariants,
});

/** A host driver for A after vfio-pci lets it go: binds any function, enables memory. */
function hostDriver(): pci_driver {
  return {
    name: 'hostdrv',
    id_table: [pci_device_id_any],
    *probe(pdev: pci_dev) {
      return yield* pci_enable_device_mem(pdev);
    },
  };
}

export const vfioType1BarRelease = defineScenario<State>({
  name: 'vfio-type1-bar-release',
  story: 'vfio-type1-bar',
  description:
    "B's DMA through a type1 mapping of A's vfio-pci BAR0 while A is released and bound to a host driver",
  machine: vfioMachine,
  setup: setupBar,
  threads: {
    user: {
      kind: 'cpu',
      as: (_ctx, s) => s.u.p,
      *run(ctx, s): Op<void> {
        const { p, a } = s.u;
        // The last reference to A's device file goes with the munmap after the close:
        // vfio_device_fops_release -> close_device (the RFC's VFIO_DEVICE_RELEASE).
        yield* p.op.close(s.u.dfdA);
        yield* p.op.munmap(s.u.bar, BAR_A_SIZE);
        yield* p.op.close(s.u.gfdA);
        ctx.note("A's device and group closed, BAR0 unmapped");
        // The administrator hands A back to the host: unbind vfio-pci, bind hostdrv.
        yield* device_release_driver(a);
        driver_override_store(a, '');
        const r = yield* pci_register_driver(hostDriver());
        ctx.note(
          `A unbound from vfio-pci; hostdrv registered (${r}), A bound to ${a.driver?.name ?? 'none'}`,
        );
      },
    },
    dma: dmaThread,
  },
  variants: {
    unsafe: rfcVariants.unsafe,
    fixed: {
      description: 'the 2021 device-notifier RFC: VFIO_DEVICE_RELEASE removes the mapping',
      params: { rfc: true },
      expect: { '5.7': 'n/a', default: 'SAFE' },
    },
  },
});

/* ------------------------------------------------------------------------------------ */
/* A non-vfio PFNMAP VMA                                                                 */
/* ------------------------------------------------------------------------------------ */

const BUF_ORDER = 2;
const BUF_PAGES = 1 << BUF_ORDER;

interface DrvState {
  readonly u: VfioUser;
  readonly drv: file;
  readonly buf: page;
  readonly addr: number;
  readonly mapped: number;
  dma?: number;
}

/**
 * A driver with a 16 KiB RAM buffer (order-2 allocation, pages marked PageReserved as
 * drivers that remap RAM do, so type1's PFNMAP path accepts them: is_invalid_reserved_pfn)
 * that its ->mmap maps with remap_pfn_range (VM_IO|VM_PFNMAP).
 */
function bufFile(buf: page): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/pfnbuf', O_RDWR, inode, {
    name: 'pfnbuf_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        buf + vma.vm_pgoff,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  });
}

export const vfioType1NonvfioPfnmap = defineScenario<DrvState>({
  name: 'vfio-type1-nonvfio-pfnmap',
  story: 'vfio-type1-bar',
  description:
    "type1 MAP_DMA of a driver's remap_pfn_range VMA over RAM the driver then frees and reallocates, racing B's DMA",
  machine: vfioMachine,
  setup(ctx) {
    const u = vfioUser(ctx);
    type1Params(ctx);
    const buf = alloc_pages(GFP_KERNEL, BUF_ORDER);
    if (buf === null) throw new Error('pfnbuf: no memory');
    for (let i = 0; i < BUF_PAGES; i++) SetPageReserved((buf + i) as page);
    const drv = bufFile(buf);
    const addr = u.p.run(
      vm_mmap_pgoff(u.p.task.mm!, drv, 0, BUF_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
    );
    if (addr < 0) throw new Error(`mmap of /dev/pfnbuf: ${errname(addr)}`);
    const mapped = mapDma(u.p, u.cfd, addr, IOVA, BUF_PAGES * 4096);
    ctx.note(
      `pfnbuf (pfns ${hex(buf)}-${hex(buf + BUF_PAGES - 1)}) mapped at ${hex(addr)}; MAP_DMA at iova ${hex(IOVA)}: ${mapped ? errname(mapped) : 0}`,
    );
    return { u, drv, buf, addr, mapped };
  },
  threads: {
    driver: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        // The driver tears its buffer down (e.g. on a mode change): revoke the user
        // mappings, free the frames; the allocator hands them out again at once (LIFO).
        yield* unmap_mapping_range(s.drv.f_mapping, 0, 0, 1);
        for (let i = 0; i < BUF_PAGES; i++) ClearPageReserved((s.buf + i) as page);
        __free_pages(s.buf, BUF_ORDER);
        const again = alloc_pages(GFP_KERNEL, BUF_ORDER);
        ctx.note(
          `pfnbuf freed; the next order-2 allocation got pfn ${again === null ? 'none' : hex(again)}`,
        );
      },
    },
    dma: {
      kind: 'dma',
      run: (ctx, s) => dmaB(ctx, s.u.b, s),
    },
  },
  variants: {
    unsafe: {
      description: 'merged kernels: any VM_PFNMAP VMA with reserved pfns is accepted',
      params: { rfc: false },
      expect: { default: 'stale-pfn' },
    },
    nonstrict: {
      description: 'the RFC with strict_mmio_maps=0: a non-vfio VMA keeps the old behaviour',
      params: { rfc: true, strict: false },
      expect: { '5.7': 'n/a', default: 'stale-pfn' },
    },
    fixed: {
      description: 'the RFC with strict_mmio_maps=1: MAP_DMA of a non-vfio VMA is -ENODEV',
      params: { rfc: true },
      expect: { '5.7': 'n/a', default: 'SAFE' },
    },
  },
});

export const vfioType1BarScenarios = [
  vfioType1BarDisable,
  vfioType1BarReset,
  vfioType1BarRelease,
  vfioType1NonvfioPfnmap,
] as const;

export default vfioType1BarDisable;
