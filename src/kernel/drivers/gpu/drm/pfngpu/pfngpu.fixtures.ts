/**
 * Test machine for the TTM / dma-buf tests (not a test file itself).
 *
 * Machine: 4 GiB RAM (0x100000000-0x17fffffff above 4 GiB); the PCI window starts at
 * 0x180000000. 0000:03:00.0 is pfngpu with BAR 0 = 256 KiB of VRAM at 0x180000000 (pfns
 * 0x180000-0x18003f, no struct page); 0000:04:00.0 is the pfnimp importer (BAR 0 4 KiB at
 * 0x180040000). Optional CMA area "gpu" of 16 MiB at 0x10000000 (pfns 0x10000-0x10fff) as
 * the GPU's dev->cma_area. Both drivers bound at boot; the IOMMU is on (DMA domains).
 */
import { SchedThread, type Op } from '../../../../../sched/index.js';
import type { Kernel } from '../../../../kernel/kernel.js';
import type { task_struct } from '../../../../include/linux/sched.js';
import type { vm_area_struct } from '../../../../include/linux/mm_types.js';
import { create_user_task } from '../../../../kernel/fork.js';
import { do_syscall, do_user_access } from '../../../../arch/x86/entry/common.js';
import { sys_mmap } from '../../../../arch/x86/entry/syscall_64.js';
import { cpu_user_read, cpu_user_write } from '../../../../arch/x86/mm/fault.js';
import { sys_ioctl } from '../../../../fs/ioctl.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../mm/mmap.js';
import { vma_lookup } from '../../../../mm/vma.js';
import { ptep_get, walkToLeaf } from '../../../../include/linux/pgtable.js';
import { pte_pfn, pte_present } from '../../../../arch/x86/include/asm/pgtable_types.js';
import { pte_special } from '../../../../arch/x86/include/asm/pgtable.js';
import { pci_boot_machine, pci_dev_by_bdf } from '../../../pci/probe.js';
import type { pci_dev } from '../../../pci/pci.js';
import {
  PFNGPU_DEVICE,
  PFNGPU_IOCTL_EVICT_VRAM,
  PFNGPU_IOCTL_GEM_CREATE,
  PFNGPU_IOCTL_GEM_MMAP,
  PFNGPU_IOCTL_GEM_MOVE,
  PFNGPU_IOCTL_PRIME_HANDLE_TO_FD,
  PFNGPU_VENDOR,
  pfngpu_init,
  pfngpu_open,
  pfngpu_ttm_bo,
  type pfngpu_device,
  type pfngpu_gem_create,
  type pfngpu_gem_mmap,
  type pfngpu_prime_handle,
} from './pfngpu.js';
import { PFNIMP_DEVICE, PFNIMP_VENDOR, pfnimp_init } from './pfnimp.js';
import type { ttm_buffer_object } from '../ttm/ttm_bo.js';
import type { drm_file } from '../drm_file.js';
import { fget } from '../../../../include/linux/fdtable.js';

export const VRAM_BASE = 0x180000000;
export const VRAM_PFN = 0x180000;
export const RW = PROT_READ | PROT_WRITE;

export interface GpuEnv {
  readonly k: Kernel;
  readonly gpu: pci_dev;
  readonly imp: pci_dev;
  readonly adev: pfngpu_device;
  readonly task: task_struct;
  readonly thread: SchedThread;
  readonly fd: number;
  sys<T>(op: Op<T>): T;
  ioctl(cmd: number, arg: unknown): number;
  /** GEM_CREATE: the handle (throws on error). */
  create(size: number, domain: number): number;
  offset(handle: number): number;
  /** mmap of the BO's fake offset; returns the address or -errno. */
  mmap(handle: number, len: number, flags?: number, prot?: number): number;
  move(handle: number, domain: number): number;
  evict(): number;
  exportFd(handle: number): number;
  bo(handle: number): ttm_buffer_object;
  load(addr: number, len?: number): Uint8Array | string;
  store(addr: number, bytes: Uint8Array | number[]): string;
  /** The pfn of the present PTE at addr, or null. */
  pfnAt(addr: number): number | null;
  specialAt(addr: number): boolean;
  vma(addr: number): vm_area_struct;
  loadOp(addr: number, len: number): Op<Uint8Array | string>;
  ioctlOp(cmd: number, arg: unknown): Op<number>;
}

export function gpuMachine(
  version = '6.12',
  opts: { config?: Record<string, boolean>; cma?: boolean; use_dma_alloc?: boolean } = {},
): GpuEnv {
  const k = pci_boot_machine({
    version,
    config: { CONFIG_DMABUF_MOVE_NOTIFY: true, ...opts.config },
    cma: opts.cma ? [{ name: 'gpu', base: 0x10000000, size: 16 * 2 ** 20 }] : undefined,
    devices: [
      {
        bdf: '0000:03:00.0',
        vendor: PFNGPU_VENDOR,
        device: PFNGPU_DEVICE,
        bars: [{ size: 0x40000 }],
        cma: opts.cma ? 'gpu' : undefined,
      },
      {
        bdf: '0000:04:00.0',
        vendor: PFNIMP_VENDOR,
        device: PFNIMP_DEVICE,
        bars: [{ size: 0x1000 }],
      },
    ],
  });
  if (k.run(pfngpu_init({ use_dma_alloc: opts.use_dma_alloc }), 'init') !== 0)
    throw new Error('pfngpu_init failed');
  if (k.run(pfnimp_init(), 'init') !== 0) throw new Error('pfnimp_init failed');
  const gpu = pci_dev_by_bdf(k, '0000:03:00.0');
  const imp = pci_dev_by_bdf(k, '0000:04:00.0');
  const adev = gpu.driver_data as pfngpu_device;
  const task = create_user_task('gpuapp', { caps: ['CAP_SYS_ADMIN'] });
  const thread = new SchedThread(0, 'gpuapp', (function* () {})(), task);
  const sys = <T>(op: Op<T>): T => k.run(do_syscall(task, op), thread);
  const fd = sys(pfngpu_open(adev));
  const env: GpuEnv = {
    k,
    gpu,
    imp,
    adev,
    task,
    thread,
    fd,
    sys,
    ioctl: (cmd, arg) => sys(sys_ioctl(fd, cmd, arg)),
    create(size, domain) {
      const a: pfngpu_gem_create = { size, domain };
      const r = env.ioctl(PFNGPU_IOCTL_GEM_CREATE, a);
      if (r !== 0) throw new Error(`GEM_CREATE failed: ${r}`);
      return a.handle!;
    },
    offset(handle) {
      const a: pfngpu_gem_mmap = { handle };
      const r = env.ioctl(PFNGPU_IOCTL_GEM_MMAP, a);
      if (r !== 0) throw new Error(`GEM_MMAP failed: ${r}`);
      return a.offset!;
    },
    mmap(handle, len, flags = MAP_SHARED, prot = RW) {
      return sys(sys_mmap(0, len, prot, flags, fd, env.offset(handle)));
    },
    move: (handle, domain) => env.ioctl(PFNGPU_IOCTL_GEM_MOVE, { handle, domain }),
    evict: () => env.ioctl(PFNGPU_IOCTL_EVICT_VRAM, {}),
    exportFd(handle) {
      const a: pfngpu_prime_handle = { handle, flags: 0 };
      const r = env.ioctl(PFNGPU_IOCTL_PRIME_HANDLE_TO_FD, a);
      if (r !== 0) throw new Error(`PRIME_HANDLE_TO_FD failed: ${r}`);
      return a.fd!;
    },
    bo(handle) {
      const f = sys(fget(fd))!;
      const obj = (f.private_data as drm_file).object_idr.get(handle)!;
      return pfngpu_ttm_bo(obj);
    },
    load(addr, len = 1) {
      const r = sys(cpu_user_read(task, addr, len));
      return r.kind === 'ok' ? r.data : r.kind;
    },
    store(addr, bytes) {
      const data = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
      return sys(cpu_user_write(task, addr, data)).kind;
    },
    pfnAt(addr) {
      const l = walkToLeaf(task.mm!, addr);
      if (!l) return null;
      const v = ptep_get(l.ptr);
      return pte_present(v) ? pte_pfn(v) : null;
    },
    specialAt(addr) {
      const l = walkToLeaf(task.mm!, addr);
      return !!l && pte_present(ptep_get(l.ptr)) && pte_special(ptep_get(l.ptr));
    },
    vma: (addr) => vma_lookup(task.mm!, addr)!,
    *loadOp(addr, len) {
      const r = yield* do_user_access(task, cpu_user_read(task, addr, len));
      return r.kind === 'ok' ? r.data : r.kind;
    },
    ioctlOp: (cmd, arg) => do_syscall(task, sys_ioctl(fd, cmd, arg)),
  };
  return env;
}

/** n bytes of `v`. */
export function fill(n: number, v: number): Uint8Array {
  return new Uint8Array(n).fill(v);
}
