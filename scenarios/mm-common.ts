/**
 * Shared pieces of the memory-management stories (follow-pfnmap, cma-pagecache,
 * frame-vector, kvm-remapped, ...): a character-device driver whose mmap maps RAM frames
 * it allocated (remap_pfn_range at mmap time, or vmf_insert_pfn from ->fault), a device
 * with an IOMMU domain of its own (the "device table" a pfn is mapped into), and a few
 * version-shaped wrappers (iommu_map's gfp argument, iommu_paging_domain_alloc).
 *
 * Not a scenario: the library's index lists only the story files.
 */
import type { Op } from '../src/index.js';
import type {
  file,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
} from '../src/kernel/include/linux/mm.js';
import { remap_pfn_range, vm_flags_set, vmf_insert_pfn } from '../src/kernel/mm/memory.pfnmap.js';
import { since } from '../src/kernel/version.js';
import { alloc_page, GFP_KERNEL, __free_pages } from '../src/kernel/mm/page_alloc.js';
import type { page } from '../src/kernel/include/linux/mm_types.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../src/kernel/mm/mmap.js';
import { unmap_mapping_range } from '../src/kernel/mm/memory.zap.js';
import { spinlock_t } from '../src/kernel/include/linux/spinlock.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { dma_engine_access } from '../src/kernel/drivers/dma/engine.js';
import type { Process } from '../src/scenario/process.js';
import type { ThreadDef } from '../src/scenario/scenario.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_iova_to_phys,
  iommu_attach_group,
  iommu_domain_alloc,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_unmap,
  type iommu_domain,
} from '../src/kernel/drivers/iommu/iommu.js';
import {
  pci_enable_device_mem,
  pci_set_master,
  type pci_dev,
} from '../src/kernel/drivers/pci/pci.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import type { ScenarioContext } from '../src/index.js';
import { pfnsan_set_owner } from '../src/kernel/mm/pfnsan/pfnsan.js';
import type { mm_struct } from '../src/kernel/include/linux/mm_types.js';
import { ptep_get, walkToPte } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn, pte_present } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { phys_read } from '../src/kernel/mm/sparse.js';

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** The user's device (an accelerator with its own IOMMU domain). */
export const USER_DEV_BDF = '0000:01:00.0';

/** The machine entry of the user's device (one small BAR; it only does DMA). */
export const USER_DEV = { bdf: USER_DEV_BDF, bars: [{ size: 0x1000 }] } as const;

/** How a driver maps its buffer into user space. */
export type MapMode = 'remap' | 'fault';

/** A driver buffer mapped to user space: the frames can change (driver.pfns). */
export interface DriverBuffer {
  readonly name: string;
  /** The frames the driver currently maps, one per page of the mapping. */
  pfns: number[];
  readonly filp: file;
}

/**
 * A character device whose ->mmap maps the driver's buffer: `remap` sets
 * VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP (remap_pfn_range sets them too) and maps the
 * whole VMA at once; `fault` sets the same flags and inserts one pfn per fault with
 * vmf_insert_pfn (a later fault after a zap maps whatever buf.pfns says then).
 */
export function driverBufferFile(name: string, pfns: number[], mode: MapMode): DriverBuffer {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  const buf: { name: string; pfns: number[]; filp: file | null } = { name, pfns, filp: null };
  const vmOps = {
    name: `${name}_vm_ops`,
    *fault(vmf: vm_fault): Op<vm_fault_t> {
      const i = vmf.pgoff;
      if (i >= buf.pfns.length) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, buf.pfns[i]!);
    },
  };
  buf.filp = alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      const pages = (vma.vm_end - vma.vm_start) / 4096;
      if (vma.vm_pgoff + pages > buf.pfns.length) return -22; /* -EINVAL */
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      if (mode === 'fault') {
        vma.vm_ops = vmOps;
        return 0;
      }
      for (let i = 0; i < pages; i++) {
        const r = yield* remap_pfn_range(
          vma,
          vma.vm_start + i * 4096,
          buf.pfns[vma.vm_pgoff + i]!,
          4096,
          vma.vm_page_prot,
        );
        if (r) return r;
      }
      return 0;
    },
  });
  return buf as DriverBuffer;
}

/** Marks frames as the named driver's buffer (pfnsan owner). */
export function ownFrames(pfns: readonly number[], desc: string): void {
  for (const p of pfns) pfnsan_set_owner(p, 1, { kind: 'driver', desc });
}

/** The user's device, enabled for DMA, with an unmanaged IOMMU domain attached. */
export function userDevice(ctx: ScenarioContext): { dev: pci_dev; domain: iommu_domain } {
  const dev = deviceByBdf(ctx.k, USER_DEV_BDF);
  ctx.run(pci_enable_device_mem(dev));
  ctx.run(pci_set_master(dev));
  const domain = since(6, 11)
    ? (iommu_paging_domain_alloc(dev) as iommu_domain)
    : iommu_domain_alloc(dev.bus)!;
  const r = ctx.run(iommu_attach_group(domain, dev.iommu_group!));
  if (r) throw new Error(`attaching the user's device to its IOMMU domain failed: ${r}`);
  return { dev, domain };
}

/** iommu_map with the gfp argument exactly where the version has it (v6.3+). */
export function* iommuMap(
  d: iommu_domain,
  iova: number,
  pa: number,
  size: number,
  prot: number,
): Op<number> {
  return since(6, 3)
    ? yield* iommu_map(d, iova, pa, size, prot, GFP_KERNEL)
    : yield* iommu_map(d, iova, pa, size, prot);
}

export { iommu_unmap };

/**
 * The frame mapped at user address addr of mm and its first `len` bytes, read from
 * physical memory without an access (checks must not fault or report): null when no
 * present PTE maps it.
 */
export function userFrame(
  mm: mm_struct,
  addr: number,
  len: number,
): { pfn: number; bytes: Uint8Array } | null {
  const ptep = walkToPte(mm, addr);
  if (!ptep) return null;
  const pte = ptep_get(ptep);
  if (!pte_present(pte)) return null;
  const pfn = pte_pfn(pte);
  return { pfn, bytes: phys_read(pfn * 4096 + (addr % 4096), len) };
}

/* ------------------------------------------------------------------------------------ */
/* The pfn race: a driver buffer in a process, a pfn user with a device, a zap + free,   */
/* and another process whose next page fault gets the freed frame.                      */
/* ------------------------------------------------------------------------------------ */

/** Where the user's device sees the pfn. */
export const IOVA = 0x100000;
/** What the user's device writes. */
export const DEV_BYTE = 0xdd;
/** What the other process writes into its own page. */
export const VICTIM_BYTE = 0x11;

/** The user's device and its IOMMU domain. */
export interface UserDevice {
  readonly dev: pci_dev;
  readonly domain: iommu_domain;
}

export interface PfnRace {
  /** The process that mapped the driver's buffer. */
  readonly app: Process;
  /** Another process, with an untouched private anonymous page at vaddr. */
  readonly victim: Process;
  readonly buf: DriverBuffer;
  /** The driver's frame (pfn). */
  readonly frame: number;
  /** Where app mapped the buffer. */
  readonly uaddr: number;
  readonly vaddr: number;
  /** The user's device and its IOMMU domain. */
  readonly dev: pci_dev;
  readonly domain: iommu_domain;
  /** The user's lock (its IOMMU entry, a notifier's sequence). */
  readonly lock: spinlock_t;
  /** The user's IOMMU entry at IOVA is live (under lock). */
  mapped: boolean;
  /** The driver has freed its frame. */
  freed: boolean;
}

/**
 * Sets up the pfn race: the driver allocates one RAM frame (GFP_KERNEL), owns it, and
 * maps it into `app` through /dev/demo_buf (mode: remap_pfn_range or vmf_insert_pfn);
 * `victim` has an untouched anon page; the user's device has its IOMMU domain.
 */
export function pfnRaceSetup(ctx: ScenarioContext, mode: MapMode = 'remap'): PfnRace {
  const frame = alloc_page(GFP_KERNEL)! as number;
  ownFrames([frame], 'buffer of demo_buf');
  const buf = driverBufferFile('demo_buf', [frame], mode);
  const app = ctx.spawnProcess('app');
  const uaddr = app.run(
    vm_mmap_pgoff(app.task.mm!, buf.filp, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
  );
  if (uaddr < 0) throw new Error(`mmap of /dev/demo_buf failed: ${errname(uaddr)}`);
  const victim = ctx.spawnProcess('victim');
  const vaddr = victim.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const { dev, domain } = userDevice(ctx);
  ctx.note(
    `demo_buf: pfn ${hex(frame)} mapped at ${hex(uaddr)} in app; victim has an untouched anon page at ${hex(vaddr)}`,
  );
  return {
    app,
    victim,
    buf,
    frame,
    uaddr,
    vaddr,
    dev,
    domain,
    lock: new spinlock_t('accel.lock'),
    mapped: false,
    freed: false,
  };
}

/** The user's device writes 8 bytes of DEV_BYTE at IOVA (through its IOMMU domain). */
export function* deviceWrite(ctx: ScenarioContext, s: UserDevice): Op<void> {
  const r = yield* dma_engine_access(s.dev, IOVA, 8, 'write', new Uint8Array(8).fill(DEV_BYTE));
  ctx.note(
    r.ret === 0
      ? `device wrote 8 bytes at iova ${hex(IOVA)}`
      : `device write at iova ${hex(IOVA)} failed: ${errname(r.ret)}`,
  );
}

/** The user maps pfn at IOVA in its device's domain (the consumer of the pfn). */
export function* mapPfn(ctx: ScenarioContext, s: UserDevice, pfn: number): Op<number> {
  const r = yield* iommuMap(s.domain, IOVA, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE);
  ctx.note(r ? `iommu_map: ${errname(r)}` : `iommu_map: iova ${hex(IOVA)} -> pfn ${hex(pfn)}`);
  return r;
}

/** The driver tears its buffer down: zap every user mapping, then free the frame. */
export function zapperThread<S extends PfnRace>(): ThreadDef<S> {
  return {
    kind: 'driver',
    *run(ctx, s): Op<void> {
      ctx.note('demo_buf: unmap_mapping_range(whole file, even_cows=1), then free the frame');
      yield* unmap_mapping_range(s.buf.filp.f_mapping, 0, 0, 1);
      __free_pages(s.frame as page, 0);
      s.freed = true;
    },
  };
}

/** The other process writes its own page (its fault takes the most recently freed frame). */
export function victimThread<S extends PfnRace>(): ThreadDef<S> {
  return {
    kind: 'cpu',
    as: (_ctx, s) => s.victim,
    *run(_ctx, s): Op<void> {
      yield* s.victim.op.store(s.vaddr, new Uint8Array(8).fill(VICTIM_BYTE));
    },
  };
}

/** The harm: the device's write landed in victim's page, or its IOMMU maps a freed frame. */
export function pfnRaceCheck(s: PfnRace): string | null {
  const v = userFrame(s.victim.task.mm!, s.vaddr, 8);
  if (v && v.bytes.some((b) => b === DEV_BYTE))
    return `the device wrote into victim's anon page at ${hex(s.vaddr)} (pfn ${hex(v.pfn)}, the driver's freed frame)`;
  const pa = iommu_iova_to_phys(s.domain, IOVA);
  if (s.freed && pa !== 0 && Math.floor(pa / 4096) === s.frame)
    return `the device's IOMMU still maps iova ${hex(IOVA)} to pfn ${hex(s.frame)}, which the driver freed`;
  return null;
}
