/**
 * Tests of the VFIO type1 backend (drivers/vfio/vfio_iommu_type1.c): MAP_DMA checks
 * (R-VT1-1), vaddr_get_pfns / follow_fault_pfn per era (R-VT1-2, R-VT1-3), locked_vm
 * accounting (R-VT1-4), UNMAP_DMA (R-VT1-5), DMA through a type1 mapping, the BAR-zap
 * gap (R-VPCI-4) and the 2021 RFC device notifier (R-RFC-1).
 *
 * Machine: 4 GiB RAM; PCI 0000:01:00.0 (the assigned device, DMA master) with a 1 MiB
 * BAR0 at 0x180000000; 0000:02:00.0 with a 64 KiB BAR0 at 0x180100000 (pfns
 * 0x180100-0x18010f), the MMIO a test driver maps with remap_pfn_range. The task 'qemu'
 * maps anonymous memory at 0x10000000 and device mmaps at 0x30000000. IOVAs from 0x100000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../sched/index.js';
import type { Kernel } from '../../kernel/kernel.js';
import { pci_boot_machine, pci_dev_by_bdf } from '../pci/probe.js';
import { pci_enable_device_mem, pci_set_master, type pci_dev } from '../pci/pci.js';
import { mmio_or_phys_read, mmio_or_phys_write } from '../pci/access.js';
import { dma_engine_access } from '../dma/engine.js';
import { create_user_task } from '../../kernel/fork.js';
import type { task_struct } from '../../include/linux/sched.js';
import type { file, page, vm_area_struct, vm_fault } from '../../include/linux/mm_types.js';
import {
  GUP_PIN_COUNTING_BIAS,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_RETRY,
  VM_IO,
  VM_PFNMAP,
} from '../../include/linux/mm.js';
import { FAULT_FLAG_ALLOW_RETRY } from '../../include/linux/mm_types.js';
import { page_ref_count } from '../../include/linux/page_ref.js';
import { PAGE_SIZE, pte_pfn } from '../../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../../include/linux/pgtable.js';
import { mmap_read_unlock } from '../../include/linux/mmap_lock.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { alloc_file, new_inode, O_RDWR } from '../../fs/inode.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../../mm/mmap.js';
import { remap_pfn_range, vm_flags_set, vmf_insert_pfn } from '../../mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../../mm/memory.zap.js';
import { alloc_page, GFP_KERNEL } from '../../mm/page_alloc.js';
import { phys_read } from '../../mm/sparse.js';
import { dmesg } from '../../kernel/printk.js';
import { iommu_iova_to_phys, type iommu_domain } from '../iommu/iommu.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ,
  VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1v2_IOMMU,
  type vfio_iommu_type1_dma_unmap,
} from '../../include/uapi/linux/vfio.js';
import { VFIO_DEVICE_RELEASE, vfio_device, vfio_state, type vfio_device_ops } from './vfio.js';
import { vfio_device_notifier_call, vfio_device_vma_open } from './vfio_main.js';
import {
  VFIO_IOMMU,
  set_dma_entry_limit,
  set_strict_mmio_maps,
  vfio_iommu,
  vfio_iommu_driver_ops_type1,
  vfio_iommu_type1_attach_group,
  vfio_iommu_type1_dmas,
  vfio_iommu_type1_domains,
  vfio_iommu_type1_init,
  vfio_iommu_type1_iova_list,
  vfio_iommu_type1_ioctl,
  vfio_iommu_type1_open,
  vfio_iommu_type1_release,
  vfio_type1_device_notifier_rfc,
} from './vfio_iommu_type1.js';

const A = 0x10000000;
const D = 0x30000000;
const IOVA = 0x100000;
const EFAULT = -14;
const EINVAL = -22;
const ENOMEM = -12;
const EEXIST = -17;
const ENOSPC = -28;
const ENOENT = -2;
const ENODEV = -19;
const EOVERFLOW = -75;
const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

interface Env {
  k: Kernel;
  a: pci_dev;
  b: pci_dev;
  barPfn: number;
  task: task_struct;
  th: SchedThread;
  iommu: vfio_iommu;
  run<T>(op: Op<T>): T;
}

function boot(version: string, task: { caps?: string[]; rlimit_memlock?: number } = {}): Env {
  const k = pci_boot_machine({
    version,
    devices: [
      { bdf: '0000:01:00.0', bars: [{ size: 0x100000 }] },
      { bdf: '0000:02:00.0', bars: [{ size: 0x10000 }] },
    ],
  });
  const a = pci_dev_by_bdf(k, '0000:01:00.0');
  const b = pci_dev_by_bdf(k, '0000:02:00.0');
  k.run(
    (function* () {
      for (const d of [a, b]) {
        yield* pci_enable_device_mem(d);
        yield* pci_set_master(d);
      }
    })(),
  );
  const t = create_user_task('qemu', task);
  const th = new SchedThread(0, 'qemu', (function* () {})(), t);
  const run = <T>(op: Op<T>): T => k.run(op, th);
  const iommu = vfio_iommu_type1_open(VFIO_TYPE1v2_IOMMU) as vfio_iommu;
  expect(run(vfio_iommu_type1_attach_group(iommu, a.iommu_group!, VFIO_IOMMU))).toBe(0);
  k.activate(); // module parameters below are per kernel
  return { k, a, b, barPfn: b.resource[0]!.start / PAGE_SIZE, task: t, th, iommu, run };
}

function domain(env: Env): iommu_domain {
  return vfio_iommu_type1_domains(env.iommu)[0]!;
}

function map(env: Env, vaddr: number, iova: number, size: number, flags = RW, argsz = 32): number {
  return env.run(
    vfio_iommu_type1_ioctl(env.iommu, VFIO_IOMMU_MAP_DMA, { argsz, flags, vaddr, iova, size }),
  );
}

function unmap(env: Env, iova: number, size: number, flags = 0): { ret: number; size: number } {
  const u: vfio_iommu_type1_dma_unmap = {
    argsz: VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ,
    flags,
    iova,
    size,
  };
  const ret = env.run(vfio_iommu_type1_ioctl(env.iommu, VFIO_IOMMU_UNMAP_DMA, u));
  return { ret, size: u.size };
}

function mmap(
  env: Env,
  addr: number,
  pages: number,
  prot: number,
  flags: number,
  f: file | null = null,
): void {
  const r = env.run(
    vm_mmap_pgoff(env.task.mm!, f, addr, pages * PAGE_SIZE, prot, flags | MAP_FIXED, 0),
  );
  expect(r).toBe(addr);
}

/** n anonymous pages at A, each written (so faulted in); returns their pfns. */
function anon(env: Env, n: number): number[] {
  mmap(env, A, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const pfns: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = env.run(cpu_user_write(env.task, A + i * PAGE_SIZE, new Uint8Array([0x40 + i])));
    expect(r.kind).toBe('ok');
    pfns.push(pte_pfn(ptep_get(walkToLeaf(env.task.mm!, A + i * PAGE_SIZE)!.ptr)));
  }
  return pfns;
}

function driverFile(name: string, mmapFn: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, vma) => mmapFn(vma),
  });
}

/** remap_pfn_range of `pfn0` (default: device B's BAR) at mmap: VM_IO|VM_PFNMAP. */
function remapDriver(pfn0: () => number, setup?: (vma: vm_area_struct) => void): file {
  return driverFile('bar', function* (vma) {
    setup?.(vma);
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    return yield* remap_pfn_range(
      vma,
      vma.vm_start,
      pfn0(),
      vma.vm_end - vma.vm_start,
      vma.vm_page_prot,
    );
  });
}

/** A VM_PFNMAP driver with no PTEs at mmap: its fault handler inserts BAR pfns; the first
 *  `retries` faults drop mmap_lock and return VM_FAULT_RETRY. */
function faultDriver(env: Env, retries: number, calls: { n: number }): file {
  return driverFile('lazy', function* (vma) {
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    vma.vm_ops = {
      name: 'lazy_vm_ops',
      *fault(vmf: vm_fault): Op<number> {
        calls.n++;
        if (calls.n <= retries && vmf.flags & FAULT_FLAG_ALLOW_RETRY) {
          yield* mmap_read_unlock(vmf.vma.vm_mm);
          return VM_FAULT_RETRY;
        }
        return yield* vmf_insert_pfn(vmf.vma, vmf.address, env.barPfn + vmf.pgoff);
      },
    };
    return 0;
  });
}

function pins(pfn: number): number {
  return Math.floor(page_ref_count(pfn as page) / GUP_PIN_COUNTING_BIAS);
}

/* ------------------------------------------------------------------------------------ */

describe('vfio_iommu_type1_init', () => {
  it('registers vfio-iommu-type1 with the VFIO core once', () => {
    const env = boot('6.12');
    void env;
    expect(vfio_iommu_type1_init()).toBe(0);
    expect(vfio_state().iommu_drivers_list.map((d) => d.ops.name)).toContain('vfio-iommu-type1');
    expect(vfio_iommu_type1_init()).toBe(EINVAL);
    expect(vfio_iommu_driver_ops_type1.open(99)).toBe(EINVAL);
  });
});

describe('vfio_dma_do_map', () => {
  it('R-VT1-1: argsz, unknown flags, prot, size, alignment and VADDR checks are -EINVAL (6.12)', () => {
    const env = boot('6.12');
    anon(env, 4);
    expect(map(env, A, IOVA, 0x4000, RW, VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ - 1)).toBe(EINVAL);
    expect(map(env, A, IOVA, 0x4000, RW | 8)).toBe(EINVAL); // unknown flag bit 3
    expect(map(env, A, IOVA, 0x4000, 0)).toBe(EINVAL); // neither READ/WRITE nor VADDR
    expect(map(env, A, IOVA, 0x4000, RW | VFIO_DMA_MAP_FLAG_VADDR)).toBe(EINVAL);
    expect(map(env, A, IOVA, 0)).toBe(EINVAL); // size 0
    expect(map(env, A, IOVA, 0x4800)).toBe(EINVAL); // size not 4 KiB aligned
    expect(map(env, A, IOVA + 0x800, 0x4000)).toBe(EINVAL); // iova 0x100800
    expect(map(env, A + 0x10, IOVA, 0x4000)).toBe(EINVAL); // vaddr 0x10000010
    expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
  });

  it('R-VT1-1: an iova range wrapping u64 is -EINVAL up to 6.15 and -EOVERFLOW in 6.18', () => {
    for (const [v, e] of [
      ['5.7', EINVAL],
      ['6.12', EINVAL],
      ['6.18', EOVERFLOW],
    ] as const) {
      const env = boot(v);
      anon(env, 2);
      // iova 0xffff_ffff_ffff_f000 + 0x2000 - 1 wraps
      expect(map(env, A, 2 ** 64 - 0x1000, 0x2000)).toBe(e);
    }
  });

  it('R-VT1-1: overlap -EEXIST, outside the valid IOVA ranges (MSI window, aperture) -EINVAL', () => {
    const env = boot('6.12');
    anon(env, 4);
    // valid ranges: the 48-bit aperture minus 0xfee00000-0xfeefffff (IOMMU_RESV_MSI)
    expect(vfio_iommu_type1_iova_list(env.iommu)).toEqual([
      { start: 0, end: 0xfedfffff },
      { start: 0xfef00000, end: 2 ** 48 - 1 },
    ]);
    expect(map(env, A, IOVA, 0x2000)).toBe(0);
    expect(map(env, A + 0x2000, IOVA + 0x1000, 0x2000)).toBe(EEXIST); // overlaps 0x101000
    expect(map(env, A, 0xfee00000, 0x1000)).toBe(EINVAL); // MSI window
    expect(map(env, A, 0xfedff000, 0x2000)).toBe(EINVAL); // straddles into the window
    expect(map(env, A, 2 ** 48, 0x1000)).toBe(EINVAL); // beyond the aperture
    expect(map(env, A + 0x2000, 0xfef00000, 0x1000)).toBe(0); // first page after the window
  });

  it('R-VT1-1: dma_entry_limit entries, then -ENOSPC; an unmap gives one back', () => {
    const env = boot('6.12');
    anon(env, 4);
    set_dma_entry_limit(2);
    const iommu = vfio_iommu_type1_open(VFIO_TYPE1v2_IOMMU) as vfio_iommu;
    expect(env.run(vfio_iommu_type1_attach_group(iommu, env.b.iommu_group!, VFIO_IOMMU))).toBe(0);
    const m = (i: number) =>
      env.run(
        vfio_iommu_type1_ioctl(iommu, VFIO_IOMMU_MAP_DMA, {
          argsz: 32,
          flags: RW,
          vaddr: A + i * PAGE_SIZE,
          iova: IOVA + i * PAGE_SIZE,
          size: PAGE_SIZE,
        }),
      );
    expect(m(0)).toBe(0);
    expect(m(1)).toBe(0);
    expect(m(2)).toBe(ENOSPC);
    const u = { argsz: 24, flags: 0, iova: IOVA, size: PAGE_SIZE };
    expect(env.run(vfio_iommu_type1_ioctl(iommu, VFIO_IOMMU_UNMAP_DMA, u))).toBe(0);
    expect(m(2)).toBe(0);
  });

  it('R-VT1-1: records task, mm and CAP_IPC_LOCK; pins each page once (GUP_PIN_COUNTING_BIAS)', () => {
    const env = boot('6.12', { caps: ['CAP_IPC_LOCK'] });
    const pfns = anon(env, 3);
    const before = pfns.map(pins);
    expect(map(env, A, IOVA, 0x3000)).toBe(0);
    const [dma] = vfio_iommu_type1_dmas(env.iommu);
    expect(dma).toMatchObject({
      iova: IOVA,
      vaddr: A,
      size: 0x3000,
      lock_cap: true,
      iommu_mapped: true,
    });
    expect(dma!.task).toBe(env.task);
    expect(dma!.mm).toBe(env.task.mm);
    expect(pfns.map(pins)).toEqual(before.map((p) => p + 1));
    for (let i = 0; i < 3; i++)
      expect(iommu_iova_to_phys(domain(env), IOVA + i * PAGE_SIZE)).toBe(pfns[i]! * PAGE_SIZE);
  });

  it('R-VT1-1: without an IOMMU domain nothing is pinned, the mapping is only recorded', () => {
    const env = boot('6.12');
    const pfns = anon(env, 2);
    const iommu = vfio_iommu_type1_open(VFIO_TYPE1v2_IOMMU) as vfio_iommu;
    const r = env.run(
      vfio_iommu_type1_ioctl(iommu, VFIO_IOMMU_MAP_DMA, {
        argsz: 32,
        flags: RW,
        vaddr: A,
        iova: IOVA,
        size: 0x2000,
      }),
    );
    expect(r).toBe(0);
    expect(vfio_iommu_type1_dmas(iommu)[0]).toMatchObject({ size: 0x2000, iommu_mapped: false });
    expect(pfns.map(pins)).toEqual([0, 0]);
    expect(env.task.mm!.locked_vm).toBe(0);
  });

  it('R-VT1-1: a pin failure part way unwinds the whole mapping (vfio_remove_dma)', () => {
    const env = boot('6.12');
    const pfns = anon(env, 2); // 0x10000000-0x10001fff mapped, 0x10002000 not
    expect(map(env, A, IOVA, 0x4000)).toBe(EFAULT);
    expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
    expect(pfns.map(pins)).toEqual([0, 0]);
    expect(env.task.mm!.locked_vm).toBe(0);
    expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(0);
  });

  it('R-VT1-1: VFIO_DMA_MAP_FLAG_VADDR (5.12+): -ENOENT, -EINVAL, then the new vaddr', () => {
    const env = boot('6.12');
    anon(env, 2);
    expect(map(env, A, IOVA, 0x2000)).toBe(0);
    expect(map(env, A, IOVA, 0x2000, VFIO_DMA_MAP_FLAG_VADDR)).toBe(EINVAL); // not invalidated
    expect(unmap(env, IOVA, 0x2000, VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ ret: 0, size: 0x2000 });
    expect(map(env, A, 0x800000, 0x2000, VFIO_DMA_MAP_FLAG_VADDR)).toBe(ENOENT);
    expect(map(env, A, IOVA, 0x1000, VFIO_DMA_MAP_FLAG_VADDR)).toBe(EINVAL); // not the same size
    expect(map(env, A + 0x1000, IOVA, 0x2000, VFIO_DMA_MAP_FLAG_VADDR)).toBe(0);
    expect(vfio_iommu_type1_dmas(env.iommu)[0]).toMatchObject({
      vaddr: A + 0x1000,
      vaddr_invalid: false,
    });
  });

  it('R-VT1-1: 5.7 knows no VADDR flag (unknown flag: -EINVAL) and checks prot before size', () => {
    const env = boot('5.7');
    anon(env, 2);
    expect(map(env, A, IOVA, 0x2000, VFIO_DMA_MAP_FLAG_VADDR)).toBe(EINVAL);
    expect(map(env, A, IOVA, 0, 0)).toBe(EINVAL);
    expect(map(env, A, IOVA, 0x2000)).toBe(0);
    expect(map(env, A, IOVA, 0x2000)).toBe(EEXIST);
  });
});

describe('vaddr_get_pfns / follow_fault_pfn', () => {
  const ERAS = ['5.7', '5.8', '5.12', '6.12', '6.15'];

  it.each(ERAS)(
    'R-VT1-2/R-VT1-3 (%s): a remap_pfn_range BAR VMA maps its MMIO pfns, nothing pinned or accounted',
    (v) => {
      const env = boot(v);
      const f = remapDriver(() => env.barPfn);
      mmap(env, D, 16, PROT_READ | PROT_WRITE, MAP_SHARED, f);
      expect(map(env, D, IOVA, 16 * PAGE_SIZE)).toBe(0);
      for (let i = 0; i < 16; i++)
        expect(iommu_iova_to_phys(domain(env), IOVA + i * PAGE_SIZE)).toBe(
          (env.barPfn + i) * PAGE_SIZE,
        );
      expect(env.task.mm!.locked_vm).toBe(0);
      expect(unmap(env, IOVA, 16 * PAGE_SIZE)).toEqual({ ret: 0, size: 16 * PAGE_SIZE });
      expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(0);
    },
  );

  it.each(ERAS)(
    'R-VT1-2 (%s): a VM_IO VMA without VM_PFNMAP is refused with the pin error -EFAULT',
    (v) => {
      const env = boot(v);
      const f = driverFile('io', function* (vma) {
        vm_flags_set(vma, VM_IO | VM_DONTEXPAND);
        return 0;
      });
      mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, f);
      expect(map(env, D, IOVA, PAGE_SIZE)).toBe(EFAULT);
      expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
    },
  );

  it.each(ERAS)('R-VT1-2 (%s): a VM_PFNMAP pfn with a refcounted struct page is -EFAULT', (v) => {
    const env = boot(v);
    const p = alloc_page(GFP_KERNEL)!;
    const f = remapDriver(() => p);
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, f);
    const refs = page_ref_count(p);
    expect(map(env, D, IOVA, PAGE_SIZE)).toBe(EFAULT);
    expect(page_ref_count(p)).toBe(refs);
  });

  it('R-VT1-3: a device-writable mapping of a read-only PFNMAP is mapped in 5.8 (follow_pfn has no write check) and -EFAULT from 5.12', () => {
    for (const [v, want] of [
      ['5.8', 0],
      ['5.12', EFAULT],
      ['6.12', EFAULT],
      ['6.15', EFAULT],
    ] as const) {
      const env = boot(v);
      const f = remapDriver(() => env.barPfn);
      mmap(env, D, 1, PROT_READ, MAP_SHARED, f);
      expect(map(env, D, IOVA, PAGE_SIZE, RW)).toBe(want);
      // read-only from the device's side is fine in every era
      expect(map(env, D, IOVA + 0x10000, PAGE_SIZE, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    }
  });

  it('R-VT1-3: a PFNMAP VMA whose PTEs are not populated yet: 5.7 follow_pfn only (-EFAULT), 5.8+ faults it in', () => {
    for (const [v, want] of [
      ['5.7', EFAULT],
      ['5.8', 0],
      ['5.12', 0],
      ['6.12', 0],
      ['6.15', 0],
    ] as const) {
      const env = boot(v);
      const calls = { n: 0 };
      mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, faultDriver(env, 0, calls));
      expect(map(env, D, IOVA, 2 * PAGE_SIZE)).toBe(want);
      expect(calls.n).toBe(want ? 0 : 2);
      if (!want)
        expect(iommu_iova_to_phys(domain(env), IOVA + PAGE_SIZE)).toBe(
          (env.barPfn + 1) * PAGE_SIZE,
        );
    }
  });

  it.each(['5.8', '5.12', '6.12', '6.15'])(
    'R-VT1-3 (%s): fixup_user_fault dropping mmap_lock gives -EAGAIN and the VMA is looked up again',
    (v) => {
      const env = boot(v);
      const calls = { n: 0 };
      mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, faultDriver(env, 1, calls));
      expect(map(env, D, IOVA, PAGE_SIZE)).toBe(0);
      // first fault: VM_FAULT_RETRY (unlocked => -EAGAIN => retry); second inserts the pfn
      expect(calls.n).toBe(2);
      expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(env.barPfn * PAGE_SIZE);
    },
  );
});

describe('vfio_pin_pages_remote', () => {
  it('R-VT1-4: pinned pages are charged to locked_vm and released by UNMAP_DMA', () => {
    const env = boot('6.12');
    const pfns = anon(env, 4);
    expect(map(env, A, IOVA, 4 * PAGE_SIZE)).toBe(0);
    expect(env.task.mm!.locked_vm).toBe(4);
    expect(vfio_iommu_type1_dmas(env.iommu)[0]!.locked_vm).toBe(4);
    expect(unmap(env, IOVA, 4 * PAGE_SIZE)).toEqual({ ret: 0, size: 4 * PAGE_SIZE });
    expect(env.task.mm!.locked_vm).toBe(0);
    expect(pfns.map(pins)).toEqual([0, 0, 0, 0]);
  });

  it.each(['5.7', '6.12', '6.18'])(
    'R-VT1-4 (%s): past RLIMIT_MEMLOCK without CAP_IPC_LOCK: the exact pr_warn, -ENOMEM, nothing pinned',
    (v) => {
      const env = boot(v, { rlimit_memlock: 2 * PAGE_SIZE });
      const pfns = anon(env, 4);
      expect(map(env, A, IOVA, 4 * PAGE_SIZE)).toBe(ENOMEM);
      expect(dmesg()).toContain('vfio_pin_pages_remote: RLIMIT_MEMLOCK (8192) exceeded');
      expect(env.task.mm!.locked_vm).toBe(0);
      expect(pfns.map(pins)).toEqual([0, 0, 0, 0]);
      expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
      expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(0);
    },
  );

  it('R-VT1-4: CAP_IPC_LOCK bypasses the limit but the pages are still counted', () => {
    const env = boot('6.12', { rlimit_memlock: 0, caps: ['CAP_IPC_LOCK'] });
    anon(env, 3);
    expect(map(env, A, IOVA, 3 * PAGE_SIZE)).toBe(0);
    expect(env.task.mm!.locked_vm).toBe(3);
    expect(env.run(vfio_iommu_type1_release(env.iommu))).toBeUndefined();
    expect(env.task.mm!.locked_vm).toBe(0);
  });
});

describe('vfio_dma_do_unmap', () => {
  it('R-VT1-5: v2 refuses to bisect a mapping at either end (-EINVAL, size 0) and reports bytes removed', () => {
    const env = boot('6.12');
    anon(env, 4);
    expect(map(env, A, IOVA, 0x2000)).toBe(0); // 0x100000-0x101fff
    expect(map(env, A + 0x2000, IOVA + 0x2000, 0x2000)).toBe(0); // 0x102000-0x103fff
    expect(unmap(env, IOVA + 0x1000, 0x1000)).toEqual({ ret: EINVAL, size: 0 }); // starts inside
    expect(unmap(env, IOVA, 0x3000)).toEqual({ ret: EINVAL, size: 0 }); // ends inside the 2nd
    expect(unmap(env, IOVA + 0x800, 0x1000)).toEqual({ ret: EINVAL, size: 0 }); // misaligned
    expect(unmap(env, IOVA, 0)).toEqual({ ret: EINVAL, size: 0 });
    expect(unmap(env, 0x800000, 0x1000)).toEqual({ ret: 0, size: 0 }); // nothing there
    expect(unmap(env, IOVA, 0x4000)).toEqual({ ret: 0, size: 0x4000 }); // both
    expect(env.task.mm!.locked_vm).toBe(0);
  });

  it('R-VT1-5: VFIO_DMA_UNMAP_FLAG_ALL (5.12+) needs iova = size = 0 and removes everything; 5.7 refuses the flag', () => {
    const env = boot('6.12');
    anon(env, 2);
    expect(map(env, A, IOVA, 0x1000)).toBe(0);
    expect(map(env, A + 0x1000, 0x900000, 0x1000)).toBe(0);
    expect(unmap(env, IOVA, 0, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ ret: EINVAL, size: 0 });
    expect(unmap(env, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ ret: 0, size: 0x2000 });
    expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
    const old = boot('5.7');
    anon(old, 1);
    expect(map(old, A, IOVA, 0x1000)).toBe(0);
    expect(unmap(old, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ ret: EINVAL, size: 0 });
  });
});

describe('DMA through a type1 mapping', () => {
  it('R-VT1-1: a device write at an iova lands in the pinned anonymous page the process reads', () => {
    const env = boot('6.12');
    const pfns = anon(env, 2);
    expect(map(env, A, IOVA, 0x2000)).toBe(0);
    // device 01:00.0 writes 3 bytes at iova 0x101010 -> page 1 of A, offset 0x10
    const w = env.run(
      dma_engine_access(env.a, IOVA + 0x1010, 3, 'write', new Uint8Array([7, 8, 9])),
    );
    expect(w.ret).toBe(0);
    expect([...phys_read(pfns[1]! * PAGE_SIZE + 0x10, 3)]).toEqual([7, 8, 9]);
    const r = env.run(cpu_user_read(env.task, A + 0x1010, 3));
    expect(r.kind).toBe('ok');
    expect([...(r as { data: Uint8Array }).data]).toEqual([7, 8, 9]);
    // after UNMAP_DMA the same write faults in the IOMMU
    expect(unmap(env, IOVA, 0x2000).ret).toBe(0);
    const w2 = env.run(dma_engine_access(env.a, IOVA + 0x1010, 1, 'write', new Uint8Array([1])));
    expect(w2.ret).toBe(EFAULT);
  });
});

describe('R-VPCI-4: type1 mappings of a BAR VMA outlive the VMA', () => {
  it.each(['5.8', '6.12', '6.18'])(
    '(%s) unmap_mapping_range zaps the CPU PTEs but the IOMMU entry stays and DMA still reaches the BAR',
    (v) => {
      const env = boot(v);
      const f = remapDriver(() => env.barPfn);
      mmap(env, D, 4, PROT_READ | PROT_WRITE, MAP_SHARED, f);
      expect(map(env, D, IOVA, 4 * PAGE_SIZE)).toBe(0);
      env.run(unmap_mapping_range(f.f_mapping, 0, 0, true));
      const leaf = walkToLeaf(env.task.mm!, D);
      expect(leaf === null || ptep_get(leaf.ptr) === 0).toBe(true); // CPU PTE gone
      expect(iommu_iova_to_phys(domain(env), IOVA + 0x2000)).toBe((env.barPfn + 2) * PAGE_SIZE);
      mmio_or_phys_write((env.barPfn + 2) * PAGE_SIZE, new Uint8Array([0]));
      const w = env.run(
        dma_engine_access(env.a, IOVA + 0x2000, 1, 'write', new Uint8Array([0x5a])),
      );
      expect(w.ret).toBe(0);
      expect(mmio_or_phys_read((env.barPfn + 2) * PAGE_SIZE, 1)[0]).toBe(0x5a);
    },
  );
});

describe('R-RFC-1: vfio/type1: Register device notifier (opt-in variant)', () => {
  const vdevOps: vfio_device_ops = {
    name: 'test-vfio',
    *open_device() {
      return 0;
    },
    *close_device() {},
    *read() {
      return 0;
    },
    *write() {
      return 0;
    },
    *ioctl() {
      return 0;
    },
    *mmap() {
      return 0;
    },
  };

  /** A vfio device's BAR mmap: remap_pfn_range with vm_ops->open = vfio_device_vma_open. */
  function vfioBar(env: Env): { f: file; vdev: vfio_device } {
    const vdev = new vfio_device(env.b, vdevOps);
    const f = remapDriver(
      () => env.barPfn,
      (vma) => {
        vma.vm_ops = { name: 'vfio_pci_mmap_ops', open: vfio_device_vma_open };
        vma.vm_private_data = vdev;
      },
    );
    return { f, vdev };
  }

  it.each(['5.12', '6.12', '6.18'])(
    '(%s) the mapping of a vfio BAR holds a device reference and is removed on VFIO_DEVICE_RELEASE',
    (v) => {
      const env = boot(v);
      vfio_type1_device_notifier_rfc(true);
      const { f, vdev } = vfioBar(env);
      mmap(env, D, 4, PROT_READ | PROT_WRITE, MAP_SHARED, f);
      const refs = vdev.refcount;
      expect(map(env, D, IOVA, 4 * PAGE_SIZE)).toBe(0);
      expect(vdev.refcount).toBe(refs + 1);
      expect(vdev.notifier).toHaveLength(1);
      expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(env.barPfn * PAGE_SIZE);
      env.run(vfio_device_notifier_call(vdev, VFIO_DEVICE_RELEASE));
      expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
      expect(iommu_iova_to_phys(domain(env), IOVA)).toBe(0);
      expect(vdev.refcount).toBe(refs);
      expect(vdev.notifier).toHaveLength(0);
      const w = env.run(dma_engine_access(env.a, IOVA, 1, 'write', new Uint8Array([1])));
      expect(w.ret).toBe(EFAULT);
    },
  );

  it('(6.12) UNMAP_DMA drops the notifier and the device reference', () => {
    const env = boot('6.12');
    vfio_type1_device_notifier_rfc(true);
    const { f, vdev } = vfioBar(env);
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, f);
    const refs = vdev.refcount;
    expect(map(env, D, IOVA, PAGE_SIZE)).toBe(0);
    expect(unmap(env, IOVA, PAGE_SIZE)).toEqual({ ret: 0, size: PAGE_SIZE });
    expect(vdev.refcount).toBe(refs);
    expect(vdev.notifier).toHaveLength(0);
  });

  it.each(['5.12', '6.12'])(
    '(%s) a non-vfio PFNMAP VMA is refused (-ENODEV) with strict_mmio_maps and accepted with strict_mmio_maps=0',
    (v) => {
      const env = boot(v);
      vfio_type1_device_notifier_rfc(true);
      mmap(
        env,
        D,
        1,
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        remapDriver(() => env.barPfn),
      );
      expect(map(env, D, IOVA, PAGE_SIZE)).toBe(ENODEV);
      expect(vfio_iommu_type1_dmas(env.iommu)).toHaveLength(0);
      set_strict_mmio_maps(false);
      expect(map(env, D, IOVA, PAGE_SIZE)).toBe(0);
    },
  );

  it('without the RFC (the merged kernels) a non-vfio PFNMAP VMA is mapped and strict_mmio_maps does not exist', () => {
    const env = boot('6.12');
    mmap(
      env,
      D,
      1,
      PROT_READ | PROT_WRITE,
      MAP_SHARED,
      remapDriver(() => env.barPfn),
    );
    expect(map(env, D, IOVA, PAGE_SIZE)).toBe(0);
    expect(() => set_strict_mmio_maps(false)).toThrow(/only with the 2021 RFC/);
  });
});

describe('vfio_iommu_type1_release', () => {
  it('container close unpins everything, frees the domain and returns the group to its default domain', () => {
    const env = boot('6.12');
    const pfns = anon(env, 2);
    expect(map(env, A, IOVA, 0x2000)).toBe(0);
    const d = domain(env);
    env.run(vfio_iommu_type1_release(env.iommu));
    expect(pfns.map(pins)).toEqual([0, 0]);
    expect(env.task.mm!.locked_vm).toBe(0);
    expect(d.freed).toBe(true);
    expect(env.a.iommu_group!.domain).toBe(env.a.iommu_group!.default_domain);
  });
});
