/**
 * RDMA user memory (drivers/infiniband/core/umem.c): ib_umem_get() pins a user range for
 * a memory region (MR) with pin_user_pages_fast(FOLL_LONGTERM) — so CMA and ZONE_MOVABLE
 * pages are migrated out first (R-GUP-8) and VM_IO|VM_PFNMAP ranges are refused with
 * GUP's -EFAULT (R-GUP-2) — accounts the pages in mm->pinned_vm against RLIMIT_MEMLOCK,
 * and DMA-maps them (dma_map_sgtable). The pins last until ib_umem_release (dereg_mr):
 * the device may DMA into the pages for as long as the MR lives, whatever the process
 * does with its mapping (munmap leaves the pinned pages allocated).
 *
 * Versions: FOLL_WRITE always, plus FOLL_FORCE for a read-only MR, until v6.2; from v6.2
 * ("RDMA/umem: remove FOLL_FORCE usage", David Hildenbrand) FOLL_LONGTERM plus FOLL_WRITE
 * only for a writable MR. pin_user_pages_fast since v5.6 (John Hubbard's FOLL_PIN
 * series); sg tables built page by page (ib_umem_add_sg_table, then
 * sg_alloc_append_table_from_pages) — the model builds one entry per page.
 * fsdax: refused by GUP's FOLL_LONGTERM check (-EOPNOTSUPP; the model has no fsdax VMAs).
 *
 * Also here: the small part of include/rdma/ib_verbs.h the model needs (access flags,
 * struct ib_device reduced to its DMA device, ib_dma_map_page/unmap_page).
 * Left out: dma-buf umems (ib_umem_dmabuf_get), ib_umem_find_best_pgsz and huge page
 * sizes, IB_ACCESS_RELAXED_ORDERING's DMA attribute, cond_resched, the 512-page chunking
 * (one pin_user_pages_fast call per 512 pages is kept).
 *
 * @kernel drivers/infiniband/core/umem.c (v5.7+), include/rdma/ib_umem.h,
 *   include/rdma/ib_verbs.h
 */
import type { Op } from '../../../../sched/index.js';
import { since } from '../../../version.js';
import { EINVAL, ENOMEM, EOPNOTSUPP, EPERM, type ErrOr } from '../../../include/linux/errno.js';
import { FOLL_FORCE, FOLL_LONGTERM, FOLL_WRITE } from '../../../include/linux/mm.js';
import type { mm_struct, page } from '../../../include/linux/mm_types.js';
import { get_current } from '../../../include/linux/sched.js';
import { DMA_BIDIRECTIONAL } from '../../../include/linux/dma-direction.js';
import { can_do_mlock } from '../../../mm/mlock.js';
import {
  pin_user_pages_fast,
  unpin_user_pages_dirty_lock,
  type page_array,
} from '../../../mm/gup.js';
import {
  dma_map_page_attrs,
  dma_map_sgtable,
  dma_unmap_page_attrs,
  dma_unmap_sgtable,
  sg_alloc_table_from_pages,
  type sg_table,
} from '../../../kernel/dma/mapping.js';
import type { device } from '../../base/core.js';

const PAGE_SIZE = 4096;
const UINT_MAX = 0xffffffff;

/** enum ib_access_flags. @kernel include/rdma/ib_verbs.h:enum ib_access_flags (v5.7+) */
export const IB_ACCESS_LOCAL_WRITE = 1 << 0;
export const IB_ACCESS_REMOTE_WRITE = 1 << 1;
export const IB_ACCESS_REMOTE_READ = 1 << 2;
export const IB_ACCESS_REMOTE_ATOMIC = 1 << 3;
export const IB_ACCESS_MW_BIND = 1 << 4;
export const IB_ZERO_BASED = 1 << 5;
export const IB_ACCESS_ON_DEMAND = 1 << 6;
export const IB_ACCESS_HUGETLB = 1 << 7;
export const IB_ACCESS_RELAXED_ORDERING = 1 << 20;

/** struct ib_device, reduced to its name and DMA device. */
export interface ib_device {
  readonly name: string;
  readonly dma_device: device;
}

/**
 * ib_access_writable(access): the MR can be written (local or remote write, atomics,
 * memory-window binds).
 * @kernel include/rdma/ib_verbs.h:ib_access_writable (v5.7+)
 */
export function ib_access_writable(access: number): boolean {
  // We have writable memory backing the MR if any of the following access flags are set.
  // "Local write" and "remote write" obviously require write access. "Remote atomic" can
  // do things like fetch and add, which will modify memory, and "MW bind" can change
  // permissions by binding a window.
  return (
    (access &
      (IB_ACCESS_LOCAL_WRITE |
        IB_ACCESS_REMOTE_WRITE |
        IB_ACCESS_REMOTE_ATOMIC |
        IB_ACCESS_MW_BIND)) !==
    0
  );
}

/** ib_dma_map_page(dev, page, offset, size, dir). @kernel include/rdma/ib_verbs.h:ib_dma_map_page (v5.7+) */
export function ib_dma_map_page(
  dev: ib_device,
  p: page,
  offset: number,
  size: number,
  dir: number,
): Op<number> {
  return dma_map_page_attrs(dev.dma_device, p, offset, size, dir);
}

/** ib_dma_unmap_page(dev, addr, size, dir). @kernel include/rdma/ib_verbs.h:ib_dma_unmap_page (v5.7+) */
export function ib_dma_unmap_page(
  dev: ib_device,
  addr: number,
  size: number,
  dir: number,
): Op<void> {
  return dma_unmap_page_attrs(dev.dma_device, addr, size, dir);
}

/** struct ib_umem. @kernel include/rdma/ib_umem.h:struct ib_umem (v5.7+) */
export interface ib_umem {
  readonly ibdev: ib_device;
  readonly owning_mm: mm_struct;
  readonly length: number;
  readonly address: number;
  readonly writable: boolean;
  readonly is_odp: boolean;
  /** The pinned pages, in order (the sg table's pages). */
  pages: page[];
  /** The DMA-mapped table (null for ODP umems). */
  sgt: sg_table | null;
  nmap: number;
}

/** ib_umem_start/ib_umem_end/ib_umem_num_pages. @kernel include/rdma/ib_umem.h (v5.7+) */
export function ib_umem_start(umem: { address: number }): number {
  return umem.address - (umem.address % PAGE_SIZE);
}
export function ib_umem_end(umem: { address: number; length: number }): number {
  return Math.ceil((umem.address + umem.length) / PAGE_SIZE) * PAGE_SIZE;
}
export function ib_umem_num_pages(umem: { address: number; length: number }): number {
  return (ib_umem_end(umem) - ib_umem_start(umem)) / PAGE_SIZE;
}

/**
 * __ib_umem_release(dev, umem, dirty): unmaps and unpins (marking dirty when the MR was
 * writable and `dirty`).
 * @kernel drivers/infiniband/core/umem.c:__ib_umem_release (v5.7+)
 */
function* __ib_umem_release(umem: ib_umem, dirty: boolean): Op<void> {
  if (umem.nmap > 0 && umem.sgt)
    yield* dma_unmap_sgtable(umem.ibdev.dma_device, umem.sgt, DMA_BIDIRECTIONAL);
  umem.nmap = 0;
  yield* unpin_user_pages_dirty_lock(umem.pages, umem.pages.length, umem.writable && dirty);
  umem.pages = [];
  umem.sgt = null;
}

/**
 * ib_umem_get(device, addr, size, access): pins and DMA-maps [addr, addr + size).
 * Checks in order: overflow ⇒ -EINVAL; !can_do_mlock() ⇒ -EPERM; IB_ACCESS_ON_DEMAND ⇒
 * -EOPNOTSUPP (the driver must use ib_umem_odp_get); 0 pages ⇒ -EINVAL; pinned_vm over
 * RLIMIT_MEMLOCK without CAP_IPC_LOCK ⇒ -ENOMEM; then pin_user_pages_fast(FOLL_LONGTERM
 * ...) per 512 pages — its error (e.g. -EFAULT for VM_IO|VM_PFNMAP) unpins what was pinned
 * and undoes the accounting; a DMA mapping failure ⇒ -ENOMEM.
 * @kernel drivers/infiniband/core/umem.c:ib_umem_get (v5.7+; FOLL_FORCE for read-only MRs
 *   until v6.2)
 * Locking: none held; GUP takes current->mm's mmap_lock.
 * Return: the umem or -errno.
 */
export function* ib_umem_get(
  device: ib_device,
  addr: number,
  size: number,
  access: number,
): Op<ErrOr<ib_umem>> {
  // If the combination of the addr and size requested for this memory region causes an
  // integer overflow, return error.
  if (addr + size < addr || Math.ceil((addr + size) / PAGE_SIZE) * PAGE_SIZE < addr + size)
    return -EINVAL;
  if (!can_do_mlock()) return -EPERM;
  if (access & IB_ACCESS_ON_DEMAND) return -EOPNOTSUPP;
  const cur = get_current();
  const mm = cur.mm!;
  const umem: ib_umem = {
    ibdev: device,
    owning_mm: mm,
    length: size,
    address: addr,
    writable: ib_access_writable(access),
    is_odp: false,
    pages: [],
    sgt: null,
    nmap: 0,
  };
  let npages = ib_umem_num_pages(umem);
  if (npages === 0 || npages > UINT_MAX) return -EINVAL;
  const lock_limit = Math.floor(cur.rlimit_memlock / PAGE_SIZE);
  const new_pinned = (mm.pinned_vm += npages);
  if (new_pinned > lock_limit && !cur.caps.has('CAP_IPC_LOCK')) {
    mm.pinned_vm -= npages;
    return -ENOMEM;
  }
  let cur_base = addr - (addr % PAGE_SIZE);
  let gup_flags: number;
  if (since(6, 2)) {
    gup_flags = FOLL_LONGTERM;
    if (umem.writable) gup_flags |= FOLL_WRITE;
  } else {
    gup_flags = FOLL_WRITE;
    if (!umem.writable) gup_flags |= FOLL_FORCE;
    gup_flags |= FOLL_LONGTERM;
  }
  let ret: number;
  umem_release: {
    while (npages) {
      const page_list: page_array = new Array<page | null>(Math.min(npages, PAGE_SIZE / 8)).fill(
        null,
      );
      const pinned = yield* pin_user_pages_fast(cur_base, page_list.length, gup_flags, page_list);
      if (pinned < 0) {
        ret = pinned;
        break umem_release;
      }
      cur_base += pinned * PAGE_SIZE;
      npages -= pinned;
      for (let i = 0; i < pinned; i++) umem.pages.push(page_list[i]!);
    }
    const sgt = sg_alloc_table_from_pages(umem.pages, 0, umem.pages.length * PAGE_SIZE);
    if (yield* dma_map_sgtable(device.dma_device, sgt, DMA_BIDIRECTIONAL)) {
      ret = -ENOMEM;
      break umem_release;
    }
    umem.sgt = sgt;
    umem.nmap = sgt.nents;
    return umem;
  }
  yield* __ib_umem_release(umem, false);
  mm.pinned_vm -= ib_umem_num_pages(umem);
  return ret;
}

/**
 * ib_umem_release(umem): unpins (dirtying writable MRs) and gives back the pinned_vm
 * accounting; ODP umems go to ib_umem_odp_release (umem_odp.ts, which the caller uses
 * directly in the model).
 * @kernel drivers/infiniband/core/umem.c:ib_umem_release (v5.7+)
 */
export function* ib_umem_release(umem: ib_umem | null): Op<void> {
  if (!umem) return;
  if (umem.is_odp) throw new Error('ib_umem_release: use ib_umem_odp_release for ODP umems');
  yield* __ib_umem_release(umem, true);
  umem.owning_mm.pinned_vm -= ib_umem_num_pages(umem);
}
