/**
 * gpu-bo-move: a buffer object of the TTM-like GPU 'pfngpu' is mapped into a process
 * (VM_IO|VM_PFNMAP, faulted in with vmf_insert_pfn_prot from VRAM, R-REV-4). A second
 * device's driver takes the BO's pages for its own DMA, while the process moves the BO to
 * system memory (ttm_bo_validate: ttm_bo_unmap_virtual, copy, the old VRAM range freed at
 * once) and creates a new VRAM BO, which gets the same VRAM range (the lowest free one).
 *
 * - unsafe: the second driver looks the pfn up behind the user address and maps it into
 *   its device's IOMMU domain after the lookup's guarantee ended: follow_pfn up to 6.9
 *   (it drops the PTE lock before returning), follow_pte + pte_unmap_unlock on 6.10-6.11,
 *   follow_pfnmap_start/_end on 6.12+ (the pfn used past _end). pfnsan reports the
 *   use (stale-pfn); when the move ran first, the device then writes BO 2's VRAM
 *   (cross-owner).
 * - fixed: the second driver imports the BO as a dma-buf (PRIME_HANDLE_TO_FD, a dynamic
 *   attachment with move_notify): the exporter's move calls move_notify under the
 *   reservation, the importer drops its mapping and maps the new placement on its next
 *   DMA, under the same reservation: SAFE.
 *
 * Machine: 4 GiB RAM; 0000:01:00.0 the second device (DMA only, an unmanaged IOMMU domain
 * of its own in the unsafe variant; its 4 KiB BAR 0 is placed first, at 0x180000000);
 * 0000:03:00.0 pfngpu with 256 KiB of VRAM in BAR 0 (pfns 0x180040-0x18007f);
 * 0000:04:00.0 pfnimp, the dma-buf importer of the fixed variant. BO 1 is 8 KiB in VRAM
 * (pfns 0x180040-0x180041) mapped in the process; the lookup asks for its second page
 * (pfn 0x180041), which BO 2 gets after the move.
 */
import { defineScenario, type Op, type ScenarioContext } from '../src/index.js';
import type { Process } from '../src/scenario/process.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import { since } from '../src/kernel/version.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { dma_engine_access } from '../src/kernel/drivers/dma/engine.js';
import {
  pci_enable_device_mem,
  pci_set_master,
  type pci_dev,
} from '../src/kernel/drivers/pci/pci.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_attach_group,
  iommu_domain_alloc,
  iommu_map,
  iommu_paging_domain_alloc,
  type iommu_domain,
} from '../src/kernel/drivers/iommu/iommu.js';
import {
  PFNGPU_DEVICE,
  PFNGPU_GEM_DOMAIN_SYSTEM,
  PFNGPU_GEM_DOMAIN_VRAM,
  PFNGPU_IOCTL_GEM_CREATE,
  PFNGPU_IOCTL_GEM_MMAP,
  PFNGPU_IOCTL_GEM_MOVE,
  PFNGPU_IOCTL_PRIME_HANDLE_TO_FD,
  PFNGPU_VENDOR,
  pfngpu_init,
  pfngpu_open,
  type pfngpu_device,
  type pfngpu_gem_create,
  type pfngpu_gem_mmap,
  type pfngpu_prime_handle,
} from '../src/kernel/drivers/gpu/drm/pfngpu/pfngpu.js';
import {
  PFNIMP_DEVICE,
  PFNIMP_VENDOR,
  pfnimp_dma,
  pfnimp_import_fd,
  pfnimp_init,
  type pfnimp_import,
} from '../src/kernel/drivers/gpu/drm/pfngpu/pfnimp.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../src/kernel/mm/memory.pfnmap.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { ptep_get, pte_unmap_unlock } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { GFP_KERNEL } from '../src/kernel/mm/page_alloc.js';

const DEV_BDF = '0000:01:00.0';
const GPU_BDF = '0000:03:00.0';
const IMP_BDF = '0000:04:00.0';
const BO_SIZE = 0x2000;
const IOVA = 0x100000;
const hex = (n: number): string => `0x${n.toString(16)}`;

interface State {
  readonly p: Process;
  readonly fd: number;
  readonly handle: number;
  readonly addr: number;
  /** unsafe: the second device and its IOMMU domain. */
  readonly dev?: { readonly pdev: pci_dev; readonly domain: iommu_domain };
  /** fixed: the dma-buf import of BO 1. */
  readonly imp?: pfnimp_import;
}

function must(what: string, r: number): number {
  if (r < 0) throw new Error(`${what}: ${errname(r)}`);
  return r;
}

/** The second device with an unmanaged IOMMU domain (as a driver using the IOMMU API). */
function secondDevice(ctx: ScenarioContext): { pdev: pci_dev; domain: iommu_domain } {
  const pdev = deviceByBdf(ctx.k, DEV_BDF);
  ctx.run(pci_enable_device_mem(pdev));
  ctx.run(pci_set_master(pdev));
  ctx.k.activate();
  const domain = since(6, 11)
    ? (iommu_paging_domain_alloc(pdev) as iommu_domain)
    : iommu_domain_alloc(pdev.bus)!;
  must('iommu_attach_group', ctx.run(iommu_attach_group(domain, pdev.iommu_group!)));
  return { pdev, domain };
}

/** iommu_map of one page with the gfp argument where the version has it (v6.3+). */
function* mapPage(d: iommu_domain, pfn: number): Op<number> {
  return since(6, 3)
    ? yield* iommu_map(d, IOVA, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL)
    : yield* iommu_map(d, IOVA, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE);
}

/**
 * The pfn behind `addr`, looked up the way each era offers: the callback runs inside the
 * lookup's window (under the PTE lock) where there is one; returns the pfn, or null.
 */
function* lookupPfn(ctx: ScenarioContext, p: Process, addr: number): Op<number | null> {
  const mm = p.task.mm!;
  let pfn: number | null = null;
  yield* mmap_read_lock(mm);
  const vma = vma_lookup(mm, addr)!;
  if (since(6, 12)) {
    const args = follow_pfnmap_args_init(vma, addr);
    const ret = yield* follow_pfnmap_start(args);
    ctx.note(
      ret ? `follow_pfnmap_start: ${errname(ret)}` : `follow_pfnmap_start: pfn ${hex(args.pfn)}`,
    );
    if (!ret) {
      pfn = args.pfn;
      yield* follow_pfnmap_end(args);
    }
  } else if (!since(6, 10)) {
    const r = yield* follow_pfn(vma, addr);
    ctx.note(r.ret ? `follow_pfn: ${errname(r.ret)}` : `follow_pfn: pfn ${hex(r.pfn)}`);
    if (!r.ret) pfn = r.pfn;
  } else {
    const r = yield* follow_pte(vma, addr);
    ctx.note(r.ret ? `follow_pte: ${errname(r.ret)}` : 'follow_pte: PTE lock held');
    if (!r.ret) {
      pfn = pte_pfn(ptep_get(r.ptep!));
      yield* pte_unmap_unlock(r.ptep!, r.ptl!);
    }
  }
  yield* mmap_read_unlock(mm);
  return pfn;
}

export const gpuBoMove = defineScenario<State>({
  name: 'gpu-bo-move',
  story: 'gpu-bo-move',
  description:
    "a second device's driver uses a GPU BO's pages while the BO moves out of VRAM and a new BO takes its range",
  machine: {
    devices: [
      { bdf: DEV_BDF, bars: [{ size: 0x1000 }] },
      { bdf: GPU_BDF, vendor: PFNGPU_VENDOR, device: PFNGPU_DEVICE, bars: [{ size: 0x40000 }] },
      { bdf: IMP_BDF, vendor: PFNIMP_VENDOR, device: PFNIMP_DEVICE, bars: [{ size: 0x1000 }] },
    ],
  },
  config: { CONFIG_DMABUF_MOVE_NOTIFY: true },
  setup(ctx) {
    must('pfngpu_init', ctx.run(pfngpu_init(), 'insmod'));
    must('pfnimp_init', ctx.run(pfnimp_init(), 'insmod'));
    const adev = deviceByBdf(ctx.k, GPU_BDF).driver_data as pfngpu_device;
    const p = ctx.spawnProcess('gpuapp');
    const fd = must('open the GPU', p.run(pfngpu_open(adev)));
    const c: pfngpu_gem_create = { size: BO_SIZE, domain: PFNGPU_GEM_DOMAIN_VRAM };
    must('GEM_CREATE', p.ioctl(fd, PFNGPU_IOCTL_GEM_CREATE, c));
    const handle = c.handle!;
    const m: pfngpu_gem_mmap = { handle };
    must('GEM_MMAP', p.ioctl(fd, PFNGPU_IOCTL_GEM_MMAP, m));
    const addr = must(
      'mmap BO 1',
      p.mmap(0, BO_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset!),
    );
    for (let off = 0; off < BO_SIZE; off += 4096) {
      const r = p.store(addr + off, [0x01]);
      if (r !== 0) throw new Error(`store to BO 1: ${r.toString()}`);
    }
    ctx.note(`BO 1 (${BO_SIZE / 1024} KiB, VRAM) mapped at ${hex(addr)} and faulted in`);
    if (ctx.variant === 'fixed') {
      const x: pfngpu_prime_handle = { handle, flags: 0 };
      must('PRIME_HANDLE_TO_FD', p.ioctl(fd, PFNGPU_IOCTL_PRIME_HANDLE_TO_FD, x));
      const imp = p.run(pfnimp_import_fd(deviceByBdf(ctx.k, IMP_BDF), x.fd!, true));
      if (typeof imp === 'number') throw new Error(`pfnimp import: ${errname(imp)}`);
      ctx.note(`BO 1 exported as dma-buf fd ${x.fd!}; pfnimp attached dynamically (move_notify)`);
      return { p, fd, handle, addr, imp };
    }
    return { p, fd, handle, addr, dev: secondDevice(ctx) };
  },
  threads: {
    user: {
      kind: 'cpu',
      as: (_ctx, s) => s.p,
      *run(ctx, s): Op<void> {
        const r = yield* s.p.op.ioctl(s.fd, PFNGPU_IOCTL_GEM_MOVE, {
          handle: s.handle,
          domain: PFNGPU_GEM_DOMAIN_SYSTEM,
        });
        ctx.note(`GEM_MOVE BO 1 -> system: ${r ? errname(r) : 0}`);
        const c: pfngpu_gem_create = { size: BO_SIZE, domain: PFNGPU_GEM_DOMAIN_VRAM };
        const r2 = yield* s.p.op.ioctl(s.fd, PFNGPU_IOCTL_GEM_CREATE, c);
        ctx.note(`GEM_CREATE BO 2 in VRAM: ${r2 ? errname(r2) : `handle ${c.handle!}`}`);
      },
    },
    other: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        const data = Uint8Array.from([0xee, 0xee, 0xee, 0xee]);
        if (s.imp) {
          const r = yield* pfnimp_dma(s.imp, 0x1000, 4, 'write', data);
          ctx.note(`pfnimp DMA write at BO offset 0x1000: ${r.ret ? errname(r.ret) : 'done'}`);
          return;
        }
        const pfn = yield* lookupPfn(ctx, s.p, s.addr + 0x1000);
        if (pfn === null) return;
        const m = yield* mapPage(s.dev!.domain, pfn);
        ctx.note(`iommu_map iova ${hex(IOVA)} -> pfn ${hex(pfn)}: ${m ? errname(m) : 0}`);
        if (m) return;
        const r = yield* dma_engine_access(s.dev!.pdev, IOVA, 4, 'write', data);
        ctx.note(`device DMA write at iova ${hex(IOVA)}: ${r.ret ? errname(r.ret) : 'done'}`);
      },
    },
  },
  variants: {
    unsafe: {
      description: 'follow_pfn / follow_pte / follow_pfnmap, the pfn used after the window',
      expect: { default: 'stale-pfn' },
    },
    fixed: {
      description: 'a dma-buf import with move_notify',
      expect: { default: 'SAFE' },
    },
  },
});

export default gpuBoMove;
