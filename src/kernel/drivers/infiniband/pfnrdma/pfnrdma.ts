/**
 * pfnrdma: a model-only RDMA device (not a kernel driver). A PCI function with a memory
 * translation table (MTT) per memory region: the device's DMA engine looks up the MR's
 * entry for each page and accesses the DMA address found there.
 *
 * REG_MR (the uverbs reg_mr path reduced to one ioctl): a pinned MR uses ib_umem_get
 * (FOLL_LONGTERM pins, pinned_vm accounting) and fills the MTT at once; an ODP MR
 * (IB_ACCESS_ON_DEMAND, CONFIG_INFINIBAND_ON_DEMAND_PAGING) uses ib_umem_odp_get with
 * pfnrdma's interval-notifier ops and starts with an empty MTT.
 *
 * The device side, modelled on mlx5 (drivers/infiniband/hw/mlx5/odp.c):
 * - pfnrdma_dma(): per page the hardware holds the MR's translation lock (`xlt_lock`, the
 *   model of the UMR/MTT update being ordered against in-flight accesses) while it reads
 *   the MTT entry and accesses the frame; an empty entry raises a page fault;
 * - the page fault (pagefault_real_mr): ib_umem_odp_map_dma_and_lock, then the MTT update
 *   (mlx5r_umr_update_xlt) under umem_mutex, then mutex_unlock;
 * - invalidate (mlx5_ib_invalidate_range): refuses non-blockable ranges; under umem_mutex
 *   mmu_interval_set_seq, then (if anything is mapped) zap the MTT entries of the range
 *   under xlt_lock (the UMR completes only after in-flight accesses), count the pages
 *   invalidated, ib_umem_odp_unmap_dma_pages.
 * Statistics per MR: invalidate callbacks, pages invalidated (mlx5's odp_stats
 * invalidations), page faults, fault retries.
 *
 * @kernel (model driver) drivers/infiniband/hw/mlx5/odp.c:mlx5_ib_invalidate_range,
 *   pagefault_real_mr (v5.10+), drivers/infiniband/hw/mlx5/mr.c:mlx5_ib_reg_user_mr
 */
import type { Op } from '../../../../sched/index.js';
import { currentKernel } from '../../../kernel/kernel.js';
import {
  EFAULT,
  EINVAL,
  ENODEV,
  EOPNOTSUPP,
  ENOTTY,
  IS_ERR,
} from '../../../include/linux/errno.js';
import { DMA_BIT_MASK } from '../../../include/linux/dma-direction.js';
import type { file, file_operations } from '../../../include/linux/mm_types.js';
import {
  mutex_unlock,
  spinlock_t,
  spin_lock,
  spin_unlock,
  mutex_lock,
} from '../../../include/linux/spinlock.js';
import { fd_install, get_unused_fd_flags } from '../../../include/linux/fdtable.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import { dma_set_mask_and_coherent } from '../../../kernel/dma/mapping.js';
import {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  mmu_interval_set_seq,
  type mmu_interval_notifier,
  type mmu_interval_notifier_ops,
  type mmu_notifier_range,
} from '../../../mm/mmu_notifier.js';
import { dma_engine_access, type dma_engine_result } from '../../dma/engine.js';
import {
  pci_clear_master,
  pci_disable_device,
  pci_enable_device_mem,
  pci_set_master,
  type pci_dev,
} from '../../pci/pci.js';
import { pci_register_driver, type pci_driver } from '../../pci/pci-driver.js';
import {
  IB_ACCESS_ON_DEMAND,
  ib_umem_get,
  ib_umem_release,
  ib_umem_start,
  type ib_device,
  type ib_umem,
} from '../core/umem.js';
import {
  ODP_READ_ALLOWED_BIT,
  ODP_WRITE_ALLOWED_BIT,
  ib_umem_odp_get,
  ib_umem_odp_map_dma_and_lock,
  ib_umem_odp_release,
  ib_umem_odp_retry_count,
  ib_umem_odp_unmap_dma_pages,
  type ib_umem_odp,
} from '../core/umem_odp.js';

export const PFNRDMA_VENDOR = 0x1b36;
export const PFNRDMA_DEVICE = 0x0f1d;

/** ioctls of the model's uverbs file. */
export const PFNRDMA_REG_MR = 0xc0201b01;
export const PFNRDMA_DEREG_MR = 0x40041b02;

/** REG_MR argument: the range, access flags, and the key (out). */
export interface pfnrdma_reg_mr {
  addr: number;
  length: number;
  access: number;
  lkey?: number;
}

/** A memory region: its umem and the device's translation table. */
export interface pfnrdma_mr {
  readonly lkey: number;
  readonly dev: pfnrdma_dev;
  readonly umem: ib_umem | ib_umem_odp;
  readonly odp: boolean;
  /** The MTT: DMA address | ODP bits per page, 0 when not present. */
  readonly mtt: number[];
  /** Hardware: MTT reads+accesses and UMR updates are ordered on it. */
  readonly xlt_lock: spinlock_t;
  /** Statistics. */
  invalidate_calls: number;
  invalidations: number;
  page_faults: number;
}

export interface pfnrdma_dev {
  readonly pdev: pci_dev;
  readonly ibdev: ib_device;
  readonly mrs: Map<number, pfnrdma_mr>;
}

interface pfnrdma_state {
  devs: Map<pci_dev, pfnrdma_dev>;
  driver: pci_driver | null;
}

function st(): pfnrdma_state {
  const k = currentKernel();
  return ((k.sub.pfnrdma as pfnrdma_state | undefined) ??= { devs: new Map(), driver: null });
}

export function pfnrdma_of(pdev: pci_dev): pfnrdma_dev | null {
  return st().devs.get(pdev) ?? null;
}

/**
 * The invalidate callback (mlx5_ib_invalidate_range).
 * Locking: called from mmu_notifier_invalidate_range_start; takes umem_mutex and the
 *   hardware xlt_lock.
 * Return: false only for a non-blockable range.
 */
function* pfnrdma_invalidate_range(
  mni: mmu_interval_notifier,
  range: mmu_notifier_range,
  cur_seq: number,
): Op<boolean> {
  const umem_odp = mni_to_odp.get(mni)!;
  if (!(range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE)) return false;
  yield* mutex_lock(umem_odp.umem_mutex);
  mmu_interval_set_seq(mni, cur_seq);
  const mr = umem_odp.private as pfnrdma_mr | null;
  if (mr) mr.invalidate_calls++;
  // If npages is zero then umem_odp->private may not be setup yet. This does not
  // complete until after the first page is mapped for DMA.
  out: {
    if (!umem_odp.npages || !mr) break out;
    const start = Math.max(ib_umem_start(umem_odp), range.start);
    const end = Math.min(umem_odp.address + umem_odp.length, range.end);
    // Iteration one - zap the HW's MTTs (one UMR, ordered after in-flight accesses).
    let invalidations = 0;
    yield* spin_lock(mr.xlt_lock);
    for (let addr = start; addr < end; addr += 4096) {
      const idx = (addr - ib_umem_start(umem_odp)) >> umem_odp.page_shift;
      if (umem_odp.dma_list[idx]! & (ODP_READ_ALLOWED_BIT | ODP_WRITE_ALLOWED_BIT)) {
        mr.mtt[idx] = 0;
        invalidations++;
      }
    }
    yield* spin_unlock(mr.xlt_lock);
    mr.invalidations += invalidations;
    // We are now sure that the device will not access the memory. We can safely unmap
    // it, and mark it as dirty if needed.
    yield* ib_umem_odp_unmap_dma_pages(umem_odp, start, end);
  }
  yield* mutex_unlock(umem_odp.umem_mutex);
  return true;
}

const mni_to_odp = new WeakMap<mmu_interval_notifier, ib_umem_odp>();

export const pfnrdma_mn_ops: mmu_interval_notifier_ops = { invalidate: pfnrdma_invalidate_range };

/**
 * The device's page fault on an ODP MR (pagefault_real_mr): maps [va, va + bcnt) and
 * writes the MTT under umem_mutex.
 * Return: pages mapped, or -errno.
 */
export function* pfnrdma_odp_pagefault(
  mr: pfnrdma_mr,
  va: number,
  bcnt: number,
  write: boolean,
): Op<number> {
  const odp = mr.umem as ib_umem_odp;
  let access_mask = ODP_READ_ALLOWED_BIT;
  if (odp.writable && write) access_mask |= ODP_WRITE_ALLOWED_BIT;
  mr.page_faults++;
  const start_idx = (va - ib_umem_start(odp)) >> odp.page_shift;
  const np = yield* ib_umem_odp_map_dma_and_lock(odp, va, bcnt, access_mask, true);
  if (np < 0) return np;
  // No need to check whether the MTTs really belong to this MR, since
  // ib_umem_odp_map_dma_and_lock already checks this. (mlx5r_umr_update_xlt)
  odp.private = mr;
  yield* spin_lock(mr.xlt_lock);
  for (let i = start_idx; i < start_idx + np; i++) mr.mtt[i] = odp.dma_list[i]!;
  yield* spin_unlock(mr.xlt_lock);
  yield* mutex_unlock(odp.umem_mutex);
  return np;
}

/** Number of times an ODP fault of this MR had to redo its snapshot (read_retry). */
export function pfnrdma_fault_retries(mr: pfnrdma_mr): number {
  return mr.odp ? ib_umem_odp_retry_count(mr.umem as ib_umem_odp) : 0;
}

/**
 * The hardware accesses `len` bytes of the MR at byte offset `off` (from the MR's start
 * address). Per page: xlt_lock; MTT entry; absent on an ODP MR ⇒ unlock, page fault,
 * retry the page (a fault error ends the access with it); present ⇒ dma_engine_access on
 * the entry's DMA address; unlock. A write needs ODP_WRITE_ALLOWED_BIT on ODP MRs (else a
 * write fault).
 * Return: { ret, done } with ret 0 or -errno.
 */
export function* pfnrdma_dma(
  mr: pfnrdma_mr,
  off: number,
  len: number,
  dir: 'read' | 'write',
  data?: Uint8Array,
): Op<{ ret: number; done: number }> {
  const base = ib_umem_start(mr.umem);
  const va0 = mr.umem.address + off;
  let done = 0;
  while (done < len) {
    const va = va0 + done;
    const idx = Math.floor((va - base) / 4096);
    if (idx >= mr.mtt.length) return { ret: -EFAULT, done };
    const n = Math.min(4096 - (va % 4096), len - done);
    yield* spin_lock(mr.xlt_lock);
    const e = mr.mtt[idx]!;
    const ok = e !== 0 && (!mr.odp || dir === 'read' || (e & ODP_WRITE_ALLOWED_BIT) !== 0);
    if (!ok) {
      yield* spin_unlock(mr.xlt_lock);
      if (!mr.odp) return { ret: -EFAULT, done };
      const r = yield* pfnrdma_odp_pagefault(mr, va - (va % 4096), 4096, dir === 'write');
      if (r < 0) return { ret: r, done };
      continue;
    }
    const dma = mr.odp ? e - (e % 4) : e;
    const res: dma_engine_result = yield* dma_engine_access(
      mr.dev.pdev,
      dma + (va % 4096),
      n,
      dir,
      data?.subarray(done, done + n),
    );
    yield* spin_unlock(mr.xlt_lock);
    if (res.ret) return { ret: res.ret, done };
    done += n;
  }
  return { ret: 0, done };
}

/** reg_user_mr (mlx5_ib_reg_user_mr reduced). Return: the MR or -errno. */
function* pfnrdma_reg_user_mr(
  dev: pfnrdma_dev,
  addr: number,
  length: number,
  access: number,
): Op<pfnrdma_mr | number> {
  const lkey = currentKernel().nextId('pfnrdma_lkey');
  const xlt_lock = new spinlock_t(`pfnrdma[${dev.pdev.name}].mr${lkey}.xlt`);
  if (access & IB_ACCESS_ON_DEMAND) {
    if (currentKernel().config.CONFIG_INFINIBAND_ON_DEMAND_PAGING !== true) return -EOPNOTSUPP;
    const odp = yield* ib_umem_odp_get(dev.ibdev, addr, length, access, pfnrdma_mn_ops);
    if (IS_ERR(odp)) return odp;
    mni_to_odp.set(odp.notifier, odp);
    const mr: pfnrdma_mr = {
      lkey,
      dev,
      umem: odp,
      odp: true,
      mtt: new Array<number>(odp.dma_list.length).fill(0),
      xlt_lock,
      invalidate_calls: 0,
      invalidations: 0,
      page_faults: 0,
    };
    odp.private = mr;
    return mr;
  }
  const umem = yield* ib_umem_get(dev.ibdev, addr, length, access);
  if (IS_ERR(umem)) return umem;
  const mtt = umem.sgt!.sgl.slice(0, umem.sgt!.nents).map((s) => s.dma_address - s.offset);
  return {
    lkey,
    dev,
    umem,
    odp: false,
    mtt,
    xlt_lock,
    invalidate_calls: 0,
    invalidations: 0,
    page_faults: 0,
  };
}

/** dereg_mr: stop the device using the MR, then release the umem. */
export function* pfnrdma_dereg_mr(mr: pfnrdma_mr): Op<void> {
  yield* spin_lock(mr.xlt_lock);
  mr.mtt.fill(0);
  yield* spin_unlock(mr.xlt_lock);
  mr.dev.mrs.delete(mr.lkey);
  if (mr.odp) yield* ib_umem_odp_release(mr.umem as ib_umem_odp);
  else yield* ib_umem_release(mr.umem);
}

function* pfnrdma_ioctl(filp: file, cmd: number, arg: unknown): Op<number> {
  const dev = filp.private_data as pfnrdma_dev;
  switch (cmd) {
    case PFNRDMA_REG_MR: {
      const a = arg as pfnrdma_reg_mr;
      const mr = yield* pfnrdma_reg_user_mr(dev, a.addr, a.length, a.access);
      if (typeof mr === 'number') return mr;
      dev.mrs.set(mr.lkey, mr);
      a.lkey = mr.lkey;
      return 0;
    }
    case PFNRDMA_DEREG_MR: {
      const mr = dev.mrs.get(arg as number);
      if (!mr) return -EINVAL;
      yield* pfnrdma_dereg_mr(mr);
      return 0;
    }
    default:
      return -ENOTTY;
  }
}

export const pfnrdma_fops: file_operations = {
  name: 'pfnrdma_fops',
  unlocked_ioctl: pfnrdma_ioctl,
};

function* pfnrdma_probe(pdev: pci_dev): Op<number> {
  let ret = yield* pci_enable_device_mem(pdev);
  if (ret) return ret;
  yield* pci_set_master(pdev);
  ret = dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(64));
  if (ret) return ret;
  st().devs.set(pdev, {
    pdev,
    ibdev: { name: `pfnrdma_${pdev.name}`, dma_device: pdev },
    mrs: new Map(),
  });
  return 0;
}

function* pfnrdma_remove(pdev: pci_dev): Op<void> {
  st().devs.delete(pdev);
  yield* pci_clear_master(pdev);
  yield* pci_disable_device(pdev);
}

/** Registers the pfnrdma PCI driver. Return: 0 or -errno. */
export function* pfnrdma_init(): Op<number> {
  const s = st();
  s.driver ??= {
    name: 'pfnrdma',
    id_table: [{ vendor: PFNRDMA_VENDOR, device: PFNRDMA_DEVICE }],
    probe: pfnrdma_probe,
    remove: pfnrdma_remove,
  };
  return yield* pci_register_driver(s.driver);
}

/** Opens the device's uverbs file as the current task. Return: the fd or -ENODEV. */
export function* pfnrdma_open(pdev: pci_dev): Op<number> {
  const dev = pfnrdma_of(pdev);
  if (!dev) return -ENODEV;
  const fd = yield* get_unused_fd_flags(O_RDWR);
  if (fd < 0) return fd;
  const i = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  const f = alloc_file(`/dev/infiniband/uverbs-${pdev.name}`, O_RDWR, i, pfnrdma_fops);
  f.private_data = dev;
  yield* fd_install(fd, f);
  return fd;
}
