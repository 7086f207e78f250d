/**
 * On-demand-paging user memory (drivers/infiniband/core/umem_odp.c): an ODP MR pins
 * nothing. ib_umem_odp_get() registers an MMU interval notifier over the range; the
 * device's page faults call ib_umem_odp_map_dma_and_lock(), which snapshots the pages with
 * hmm_range_fault() (faulting them in), then takes umem_mutex and checks
 * mmu_interval_read_retry() before DMA-mapping them: a racing invalidation makes it start
 * over, so a stale pfn is never given to the device (R-MMUN-3). It returns with
 * umem_mutex held so the driver can write its device page table under it; the driver's
 * invalidate callback takes the same mutex, sets the sequence, zaps the device entries
 * and calls ib_umem_odp_unmap_dma_pages().
 *
 * Versions: the hmm_range_fault form (36f30e486dce "IB/core: Improve ODP to use
 * hmm_range_fault()", v5.10) is modelled from v5.10; before it
 * ib_umem_odp_map_dma_pages() took page references with get_user_pages_remote() and the
 * driver passed the sequence — not modelled (the functions throw a model error naming
 * this). v6.16 stores the DMA state in the pfn list (hmm_dma_map, "RDMA/umem: Store ODP
 * access mask information in PFN") — the model keeps the v5.10–v6.15 dma_list form for
 * v6.16+, with the same locking and retry protocol.
 * Left out: implicit ODP (ib_umem_odp_alloc_implicit/child), huge page_shift
 * (IB_ACCESS_HUGETLB), the timeout on -EBUSY, tgid/owning_process lookup (mmget_not_zero
 * is modelled as the mm still having users).
 *
 * @kernel drivers/infiniband/core/umem_odp.c (v5.10+), include/rdma/ib_umem_odp.h
 */
import type { Op } from '../../../../sched/index.js';
import { since } from '../../../version.js';
import { EFAULT, EINVAL, EOVERFLOW, type ErrOr } from '../../../include/linux/errno.js';
import { DMA_BIDIRECTIONAL } from '../../../include/linux/dma-direction.js';
import type { mm_struct, page } from '../../../include/linux/mm_types.js';
import { page_folio } from '../../../include/linux/page-flags.js';
import { get_current } from '../../../include/linux/sched.js';
import {
  lockdep_assert_held,
  mutex,
  mutex_lock,
  mutex_unlock,
} from '../../../include/linux/spinlock.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../include/linux/mmap_lock.js';
import { WARN_ON, WARN_ON_ONCE } from '../../../kernel/panic.js';
import { dma_mapping_error } from '../../../kernel/dma/mapping.js';
import { folio_mark_dirty } from '../../../mm/filemap.js';
import {
  mmu_interval_notifier_insert,
  mmu_interval_notifier_remove,
  mmu_interval_read_begin,
  mmu_interval_read_retry,
  new_interval_notifier,
  type mmu_interval_notifier,
  type mmu_interval_notifier_ops,
} from '../../../mm/mmu_notifier.js';
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  hmm_pfn_to_page,
  hmm_range_fault,
  type hmm_range,
} from '../../../mm/hmm.js';
import {
  IB_ACCESS_ON_DEMAND,
  ib_access_writable,
  ib_dma_map_page,
  ib_dma_unmap_page,
  ib_umem_end,
  ib_umem_start,
  type ib_device,
  type ib_umem,
} from './umem.js';

const PAGE_SHIFT = 12;
const PAGE_SIZE = 4096;

/** ODP access bits kept in the low bits of dma_list entries. @kernel include/rdma/ib_umem_odp.h (v5.10–v6.15) */
export const ODP_READ_ALLOWED_BIT = 1 << 0;
export const ODP_WRITE_ALLOWED_BIT = 1 << 1;
export const ODP_DMA_ADDR_MASK = ~(ODP_READ_ALLOWED_BIT | ODP_WRITE_ALLOWED_BIT);

/** struct ib_umem_odp. @kernel include/rdma/ib_umem_odp.h:struct ib_umem_odp (v5.10+) */
export interface ib_umem_odp extends ib_umem {
  readonly notifier: mmu_interval_notifier;
  /** hmm pfns of the pages, one per PAGE_SIZE (model encoding of mm/hmm.ts). */
  pfn_list: number[];
  /** DMA address | ODP_*_ALLOWED_BIT per page, 0 when not mapped. */
  dma_list: number[];
  /** umem_mutex: serialises faults' device page table updates and invalidations. */
  readonly umem_mutex: mutex;
  /** Pages currently DMA-mapped. */
  npages: number;
  readonly page_shift: number;
  /** The driver's MR (mlx5: struct mlx5_ib_mr), set after the first fault. */
  private: unknown;
}

function not_modelled(fn: string): void {
  if (!since(5, 10))
    throw new Error(
      `${fn}(): the pre-hmm ODP path (ib_umem_odp_map_dma_pages with get_user_pages_remote, ` +
        'before 36f30e486dce, v5.10) is not modelled — run ODP scenarios on v5.10+',
    );
}

/** Model: byte-to-dma mask without 32-bit truncation of large addresses. */
function dma_of(e: number): number {
  return e - (e % 4);
}

/**
 * ib_init_umem_odp(umem_odp, ops): allocates the pfn and DMA lists and inserts the
 * interval notifier over the page-aligned range.
 * @kernel drivers/infiniband/core/umem_odp.c:ib_init_umem_odp (v5.10+)
 * Return: 0, -EOVERFLOW, -EINVAL (empty), or the notifier insertion's error.
 */
function* ib_init_umem_odp(umem_odp: ib_umem_odp, ops: mmu_interval_notifier_ops): Op<number> {
  const page_size = 2 ** umem_odp.page_shift;
  const start = umem_odp.address - (umem_odp.address % page_size);
  let end = umem_odp.address + umem_odp.length;
  if (end > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
  end = Math.ceil(end / page_size) * page_size;
  const ndmas = (end - start) / page_size;
  if (!ndmas) return -EINVAL;
  umem_odp.pfn_list = new Array<number>((end - start) / PAGE_SIZE).fill(0);
  umem_odp.dma_list = new Array<number>(ndmas).fill(0);
  return yield* mmu_interval_notifier_insert(
    umem_odp.notifier,
    umem_odp.owning_mm,
    start,
    end - start,
    ops,
  );
}

/**
 * ib_umem_odp_get(device, addr, size, access, ops): an ODP umem for current->mm's
 * [addr, addr + size) with an interval notifier using `ops` (the driver's invalidate).
 * No page is pinned or faulted here.
 * @kernel drivers/infiniband/core/umem_odp.c:ib_umem_odp_get (v5.10+)
 * Locking: may take mmap_lock for write (first notifier of the mm).
 * Return: the umem, or -EINVAL (no IB_ACCESS_ON_DEMAND: WARN_ON_ONCE), -EOVERFLOW.
 */
export function* ib_umem_odp_get(
  device: ib_device,
  addr: number,
  size: number,
  access: number,
  ops: mmu_interval_notifier_ops,
): Op<ErrOr<ib_umem_odp>> {
  not_modelled('ib_umem_odp_get');
  if (WARN_ON_ONCE(!(access & IB_ACCESS_ON_DEMAND), 'umem_odp.c:ib_umem_odp_get')) return -EINVAL;
  const mm: mm_struct = get_current().mm!;
  const umem_odp: ib_umem_odp = {
    ibdev: device,
    owning_mm: mm,
    length: size,
    address: addr,
    writable: ib_access_writable(access),
    is_odp: true,
    pages: [],
    sgt: null,
    nmap: 0,
    notifier: new_interval_notifier(`ib_umem_odp@0x${addr.toString(16)}`, ops),
    pfn_list: [],
    dma_list: [],
    umem_mutex: new mutex(`umem_odp@0x${addr.toString(16)}.umem_mutex`),
    npages: 0,
    page_shift: PAGE_SHIFT,
    private: null,
  };
  const ret = yield* ib_init_umem_odp(umem_odp, ops);
  if (ret) return ret;
  return umem_odp;
}

/**
 * ib_umem_odp_release(umem_odp): unmaps every mapped page under umem_mutex and removes
 * the notifier (waiting for a running invalidation). The driver must have stopped the
 * device using the MR first.
 * @kernel drivers/infiniband/core/umem_odp.c:ib_umem_odp_release (v5.10+)
 */
export function* ib_umem_odp_release(umem_odp: ib_umem_odp): Op<void> {
  not_modelled('ib_umem_odp_release');
  yield* mutex_lock(umem_odp.umem_mutex);
  yield* ib_umem_odp_unmap_dma_pages(umem_odp, ib_umem_start(umem_odp), ib_umem_end(umem_odp));
  yield* mutex_unlock(umem_odp.umem_mutex);
  yield* mmu_interval_notifier_remove(umem_odp.notifier);
}

/**
 * ib_umem_odp_map_dma_single_page(umem_odp, dma_index, page, access_mask): DMA-maps one
 * page into dma_list (an entry already mapped only gets its access bits resynced).
 * @kernel drivers/infiniband/core/umem_odp.c:ib_umem_odp_map_dma_single_page (v5.10+)
 * Locking: umem_mutex held.
 * Return: 0 or -EFAULT (mapping error).
 */
function* ib_umem_odp_map_dma_single_page(
  umem_odp: ib_umem_odp,
  dma_index: number,
  p: page,
  access_mask: number,
): Op<number> {
  const dev = umem_odp.ibdev;
  const cur = umem_odp.dma_list[dma_index]!;
  if (cur) {
    // If the page is already dma mapped it means it went through a non-invalidating
    // transition, like read-only to writable. Resync the flags.
    umem_odp.dma_list[dma_index] = dma_of(cur) + access_mask;
    return 0;
  }
  const dma_addr = yield* ib_dma_map_page(dev, p, 0, 2 ** umem_odp.page_shift, DMA_BIDIRECTIONAL);
  if (dma_mapping_error(dev.dma_device, dma_addr)) {
    umem_odp.dma_list[dma_index] = 0;
    return -EFAULT;
  }
  umem_odp.npages++;
  umem_odp.dma_list[dma_index] = dma_addr + access_mask;
  return 0;
}

/**
 * ib_umem_odp_map_dma_and_lock(umem_odp, user_virt, bcnt, access_mask, fault): faults in
 * (with `fault`) and DMA-maps [user_virt, user_virt + bcnt):
 *   retry: seq = mmu_interval_read_begin; mmap_read_lock; hmm_range_fault; unlock
 *   (-EBUSY ⇒ retry); mutex_lock(umem_mutex); mmu_interval_read_retry(seq) ⇒ unlock and
 *   retry; map each page.
 * On success umem_mutex stays held for the caller's device page table update.
 * @kernel drivers/infiniband/core/umem_odp.c:ib_umem_odp_map_dma_and_lock (v5.10+)
 * Locking: takes mmap_lock (read) and umem_mutex; returns holding umem_mutex iff > 0.
 * Return: pages mapped (> 0), or -EINVAL (access_mask 0, mm gone), -EFAULT (outside the
 *   umem, or hmm_range_fault's -EFAULT/-EPERM as returned).
 */
export function* ib_umem_odp_map_dma_and_lock(
  umem_odp: ib_umem_odp,
  user_virt: number,
  bcnt: number,
  access_mask: number,
  fault: boolean,
): Op<number> {
  not_modelled('ib_umem_odp_map_dma_and_lock');
  const owning_mm = umem_odp.owning_mm;
  if (access_mask === 0) return -EINVAL;
  if (user_virt < ib_umem_start(umem_odp) || user_virt + bcnt > ib_umem_end(umem_odp))
    return -EFAULT;
  const page_shift = umem_odp.page_shift;
  // owning_process / mmget_not_zero: the mm must still have users.
  if (owning_mm.mm_users !== undefined && owning_mm.mm_users <= 0) return -EINVAL;
  const range: hmm_range = {
    notifier: umem_odp.notifier,
    notifier_seq: 0,
    start: user_virt - (user_virt % 2 ** page_shift),
    end: Math.ceil((user_virt + bcnt) / 2 ** page_shift) * 2 ** page_shift,
    hmm_pfns: umem_odp.pfn_list,
    hmm_pfns_off: 0,
    default_flags: 0,
    pfn_flags_mask: 0,
  };
  const pfn_start_idx = (range.start - ib_umem_start(umem_odp)) >> PAGE_SHIFT;
  range.hmm_pfns_off = pfn_start_idx;
  const num_pfns = (range.end - range.start) >> PAGE_SHIFT;
  if (fault) {
    range.default_flags = HMM_PFN_REQ_FAULT;
    if (access_mask & ODP_WRITE_ALLOWED_BIT) range.default_flags |= HMM_PFN_REQ_WRITE;
  }
  let ret: number;
  let current_seq: number;
  for (;;) {
    // retry:
    current_seq = range.notifier_seq = yield* mmu_interval_read_begin(umem_odp.notifier);
    yield* mmap_read_lock(owning_mm);
    ret = yield* hmm_range_fault(range);
    yield* mmap_read_unlock(owning_mm);
    if (ret) {
      if (ret === -16 /* -EBUSY */) continue;
      return ret;
    }
    yield* mutex_lock(umem_odp.umem_mutex);
    if (mmu_interval_read_retry(umem_odp.notifier, current_seq)) {
      yield* mutex_unlock(umem_odp.umem_mutex);
      umem_odp_retries.set(umem_odp, (umem_odp_retries.get(umem_odp) ?? 0) + 1);
      continue;
    }
    break;
  }
  const start_idx = (range.start - ib_umem_start(umem_odp)) >> page_shift;
  let dma_index = start_idx;
  for (let pfn_index = 0; pfn_index < num_pfns; pfn_index++, dma_index++) {
    const hp = umem_odp.pfn_list[pfn_start_idx + pfn_index]!;
    let mask = access_mask;
    if (fault) {
      // Since we asked for hmm_range_fault() to populate pages it shouldn't return an
      // error entry on success.
      WARN_ON((hp & HMM_PFN_ERROR) !== 0);
      WARN_ON(!(hp & HMM_PFN_VALID));
    } else {
      if (!(hp & HMM_PFN_VALID)) {
        WARN_ON(umem_odp.dma_list[dma_index] !== 0);
        continue;
      }
      mask = ODP_READ_ALLOWED_BIT;
      if (hp & HMM_PFN_WRITE) mask |= ODP_WRITE_ALLOWED_BIT;
    }
    ret = yield* ib_umem_odp_map_dma_single_page(
      umem_odp,
      dma_index,
      hmm_pfn_to_page(hp) as page,
      mask,
    );
    if (ret < 0) break;
  }
  // upon success lock should stay on hold for the callee
  if (!ret) return dma_index - start_idx;
  yield* mutex_unlock(umem_odp.umem_mutex);
  return ret;
}

/** Model statistics: how many times a fault found its snapshot invalidated (read_retry). */
const umem_odp_retries = new WeakMap<ib_umem_odp, number>();
export function ib_umem_odp_retry_count(umem_odp: ib_umem_odp): number {
  return umem_odp_retries.get(umem_odp) ?? 0;
}

/**
 * ib_umem_odp_unmap_dma_pages(umem_odp, virt, bound): DMA-unmaps the mapped pages of
 * [virt, bound), marking written-allowed pages dirty.
 * @kernel drivers/infiniband/core/umem_odp.c:ib_umem_odp_unmap_dma_pages (v5.10+)
 * Locking: umem_mutex held.
 */
export function* ib_umem_odp_unmap_dma_pages(
  umem_odp: ib_umem_odp,
  virt: number,
  bound: number,
): Op<void> {
  lockdep_assert_held(umem_odp.umem_mutex);
  virt = Math.max(virt, ib_umem_start(umem_odp));
  bound = Math.min(bound, ib_umem_end(umem_odp));
  for (let addr = virt; addr < bound; addr += 2 ** umem_odp.page_shift) {
    const idx = (addr - ib_umem_start(umem_odp)) >> umem_odp.page_shift;
    const dma = umem_odp.dma_list[idx]!;
    // The access flags guaranteed a valid DMA address in case was NULL
    if (dma) {
      const pfn_idx = (addr - ib_umem_start(umem_odp)) >> PAGE_SHIFT;
      const p = hmm_pfn_to_page(umem_odp.pfn_list[pfn_idx]!) as page;
      yield* ib_dma_unmap_page(
        umem_odp.ibdev,
        dma_of(dma),
        2 ** umem_odp.page_shift,
        DMA_BIDIRECTIONAL,
      );
      if (dma & ODP_WRITE_ALLOWED_BIT) {
        // set_page_dirty prefers being called with the page lock. However, MMU notifiers
        // are called sometimes with and sometimes without the lock. We rely on the
        // umem_mutex instead to prevent other mmu notifiers from continuing and allowing
        // the page mapping to be removed.
        yield* folio_mark_dirty(page_folio(p));
      }
      umem_odp.dma_list[idx] = 0;
      umem_odp.npages--;
    }
  }
}
