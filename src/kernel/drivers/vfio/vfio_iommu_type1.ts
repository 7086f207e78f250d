/**
 * VFIO type1 IOMMU backend: the container's DMA mappings (VFIO_IOMMU_MAP_DMA /
 * VFIO_IOMMU_UNMAP_DMA, R-VT1-1, R-VT1-5), one vfio_domain per IOMMU domain with the
 * groups attached to it, iommu_map per pinned chunk with IOMMU_READ/WRITE|IOMMU_CACHE,
 * iommu_unmap + IOTLB sync and unpin on unmap, and the teardown on container release.
 * The pinning side (vaddr_get_pfns, follow_fault_pfn, locked_vm) is in
 * vfio_iommu_type1.pin.ts.
 *
 * The 2021 RFC "vfio/type1: Register device notifier" (R-RFC-1) is an opt-in variant
 * (vfio_type1_device_notifier_rfc(true)): the first VM_PFNMAP pfn of a mapping must
 * belong to a vfio device's mmap (vfio_device_get_from_vma); type1 holds a device
 * reference and a notifier, and VFIO_DEVICE_RELEASE removes the mapping.
 *
 * Model: the vfio_dma rbtree is an array sorted by iova; iova, vaddr and size are
 * numbers (exact below 2^53), the u64 wrap checks are done in BigInt. The valid IOVA
 * list comes from the domain aperture minus the group's reserved regions, which for
 * the model's intel-iommu are the IOAPIC/MSI window 0xfee00000-0xfeefffff
 * (IOMMU_RESV_MSI; intel_iommu_get_resv_regions); RMRRs are left out.
 *
 * Left out: dirty page tracking (VFIO_IOMMU_DIRTY_PAGES, the unmap bitmap), the
 * external pin interface used by mdev (pin_pages/unpin_pages, dma_rw), emulated groups
 * beyond their bookkeeping, nesting, the 5.12–6.1 vaddr wait queue (a pin while a vaddr
 * is invalid fails instead of blocking), VFIO_IOMMU_GET_INFO capabilities.
 *
 * @kernel drivers/vfio/vfio_iommu_type1.c (v5.7–v6.18)
 */
import { pure, type Op } from '../../../sched/index.js';
import { since } from '../../version.js';
import { currentKernel } from '../../kernel/kernel.js';
import { BUG_ON, WARN_ON } from '../../kernel/panic.js';
import {
  EBUSY,
  EEXIST,
  EINVAL,
  ENODEV,
  ENOENT,
  ENOSPC,
  ENOTTY,
  EOVERFLOW,
  IS_ERR,
} from '../../include/linux/errno.js';
import { mutex, mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import { get_current } from '../../include/linux/sched.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { GFP_KERNEL_ACCOUNT } from '../../mm/page_alloc.js';
import { pfnsan_lease_put } from '../../mm/pfnsan/pfnsan.js';
import {
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_attach_group,
  iommu_detach_group,
  iommu_domain_alloc,
  iommu_domain_free,
  iommu_iotlb_gather_init,
  iommu_iotlb_sync,
  iommu_iova_to_phys,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_unmap,
  iommu_unmap_fast,
  type iommu_domain,
  type iommu_group,
  type iommu_iotlb_gather,
} from '../iommu/iommu.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ,
  VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ,
  VFIO_IOMMU_TYPE1_INFO_MINSZ,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  type vfio_iommu_type1_dma_map,
  type vfio_iommu_type1_dma_unmap,
  type vfio_iommu_type1_info,
} from '../../include/uapi/linux/vfio.js';
import {
  NOTIFY_OK,
  VFIO_DEVICE_RELEASE,
  VFIO_IOMMU_CONTAINER_CLOSE,
  vfio_register_iommu_driver,
  type notifier_block,
  type vfio_device,
  type vfio_iommu_driver_ops,
} from './vfio.js';
import {
  vfio_device_get_from_vma,
  vfio_device_put,
  vfio_device_register_notifier,
  vfio_device_unregister_notifier,
} from './vfio_main.js';
import {
  rlimit_memlock_pages,
  set_pfnmap_hook,
  type1_params,
  vfio_batch_init,
  vfio_batch_unpin,
  vfio_dma,
  vfio_lock_acct,
  vfio_pin_pages_remote,
  vfio_unpin_pages_remote,
  type pfnmap_obj,
} from './vfio_iommu_type1.pin.js';

export {
  set_allow_unsafe_interrupts,
  set_disable_hugepages,
  set_dma_entry_limit,
  set_strict_mmio_maps,
  strict_mmio_maps,
  type1_params,
  vfio_dma,
  vfio_type1_device_notifier_rfc,
  U16_MAX,
} from './vfio_iommu_type1.pin.js';

/** enum vfio_group_type (v5.15+): an IOMMU-backed group, an emulated (mdev) one, noiommu. */
export const VFIO_IOMMU = 0;
export const VFIO_EMULATED_IOMMU = 1;
export const VFIO_NO_IOMMU = 2;

const U64_MAX = (1n << 64n) - 1n;
/** x86 IOAPIC_RANGE_START / IOAPIC_RANGE_END (drivers/iommu/intel/iommu.c). */
export const IOAPIC_RANGE_START = 0xfee00000;
export const IOAPIC_RANGE_END = 0xfeefffff;
/** VFIO_IOMMU_TLB_SYNC_MAX: fast-unmapped regions per IOTLB sync. */
const VFIO_IOMMU_TLB_SYNC_MAX = 512;

/** struct vfio_iova: a valid IOVA range, end inclusive. */
export interface vfio_iova {
  start: number;
  end: number;
}

/** struct vfio_iommu_group (struct vfio_group before v5.16): a group in a domain. */
export interface vfio_iommu_group {
  readonly iommu_group: iommu_group;
  pinned_page_dirty_scope: boolean;
}

/** struct vfio_domain: an IOMMU domain and the groups attached to it. */
export class vfio_domain {
  readonly group_list: vfio_iommu_group[] = [];
  enforce_cache_coherency = true;
  constructor(public domain: iommu_domain) {}
}

/**
 * struct vfio_iommu: a type1 container's backend data.
 * @kernel drivers/vfio/vfio_iommu_type1.c:struct vfio_iommu (v5.7–v6.18)
 */
export class vfio_iommu {
  readonly domain_list: vfio_domain[] = [];
  iova_list: vfio_iova[] = [];
  readonly lock: mutex;
  /** The rbtree of vfio_dma, as an array sorted by iova. */
  readonly dma_list: vfio_dma[] = [];
  dma_avail: number;
  vaddr_invalid_count = 0;
  /** u64 pgsize_bitmap (v5.8+ cached; computed per call before, same value). */
  pgsize_bitmap = ~0xfffn & U64_MAX; /* PAGE_MASK */
  v2 = false;
  nesting = false;
  /** v5.12–v6.1 (ec5e32940cc9, reverted by a5ac1f816563): the container fd is open. */
  container_open = true;
  readonly emulated_iommu_groups: vfio_iommu_group[] = [];
  num_non_pinned_groups = 0;
  constructor(readonly id: number) {
    this.lock = new mutex(`vfio_iommu${id}.lock`);
    this.dma_avail = type1_params().dma_entry_limit;
  }
}

/* ------------------------------------------------------------------------------------ */
/* The vfio_dma tree                                                                     */
/* ------------------------------------------------------------------------------------ */

/**
 * vfio_find_dma(iommu, start, size): a mapping overlapping [start, start+size) (size 0:
 * one strictly containing start past its first byte, as the rbtree walk finds it).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_find_dma (v5.7–v6.18)
 */
export function vfio_find_dma(iommu: vfio_iommu, start: number, size: number): vfio_dma | null {
  for (const dma of iommu.dma_list) {
    if (start + size <= dma.iova) continue;
    if (start >= dma.iova + dma.size) continue;
    return dma;
  }
  return null;
}

/** vfio_find_dma_first_node(iommu, start, size): index of the first dma ending after start. */
function vfio_find_dma_first_node(iommu: vfio_iommu, start: number, size: number): number {
  const i = iommu.dma_list.findIndex((d) => start < d.iova + d.size);
  if (i < 0) return -1;
  if (size && iommu.dma_list[i]!.iova >= start + size) return -1;
  return i;
}

function vfio_link_dma(iommu: vfio_iommu, dma: vfio_dma): void {
  let i = 0;
  while (i < iommu.dma_list.length && iommu.dma_list[i]!.iova < dma.iova) i++;
  iommu.dma_list.splice(i, 0, dma);
}

function vfio_unlink_dma(iommu: vfio_iommu, dma: vfio_dma): void {
  const i = iommu.dma_list.indexOf(dma);
  if (i >= 0) iommu.dma_list.splice(i, 1);
}

/** __ffs of the pgsize bitmap: the smallest IOMMU page size. */
function min_pgsize(iommu: vfio_iommu): number {
  let b = iommu.pgsize_bitmap;
  let s = 1;
  while (b && !(b & 1n)) {
    b >>= 1n;
    s *= 2;
  }
  return s;
}

/* ------------------------------------------------------------------------------------ */
/* Unmap and unpin                                                                       */
/* ------------------------------------------------------------------------------------ */

interface vfio_regions {
  iova: number;
  phys: number;
  len: number;
}

function* vfio_sync_unpin(
  dma: vfio_dma,
  domain: vfio_domain,
  regions: vfio_regions[],
  gather: iommu_iotlb_gather,
): Op<number> {
  let unlocked = 0;
  yield* iommu_iotlb_sync(domain.domain, gather);
  for (const e of regions.splice(0)) {
    unlocked += yield* vfio_unpin_pages_remote(
      dma,
      e.iova,
      e.phys / PAGE_SIZE,
      e.len / PAGE_SIZE,
      false,
    );
  }
  return unlocked;
}

/**
 * vfio_unmap_unpin(iommu, dma, do_accounting): removes the mapping from every domain
 * and unpins its pages: the first domain is walked with iommu_iova_to_phys to find the
 * physically contiguous chunks, which are unmapped with iommu_unmap_fast and unpinned
 * after each IOTLB sync (every 512 regions and at the end); the other domains are
 * unmapped (and synced) first, so no translation is left when pages are unpinned.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_unmap_unpin, unmap_unpin_fast,
 *   unmap_unpin_slow, vfio_sync_unpin (v5.7–v6.18)
 * Locking: iommu->lock held.
 * Return: pages unpinned when !do_accounting, else 0 (locked_vm released).
 */
export function* vfio_unmap_unpin(
  iommu: vfio_iommu,
  dma: vfio_dma,
  do_accounting: boolean,
): Op<number> {
  let iova = dma.iova;
  const end = dma.iova + dma.size;
  let unlocked = 0;
  if (!dma.size) return 0;
  if (!iommu.domain_list.length) return 0;
  const domain = iommu.domain_list[0]!;
  for (const d of iommu.domain_list.slice(1)) yield* iommu_unmap(d.domain, dma.iova, dma.size);
  const gather = iommu_iotlb_gather_init();
  const regions: vfio_regions[] = [];
  while (iova < end) {
    const phys = iommu_iova_to_phys(domain.domain, iova);
    if (WARN_ON(!phys)) {
      iova += PAGE_SIZE;
      continue;
    }
    let len = PAGE_SIZE;
    for (; iova + len < end; len += PAGE_SIZE) {
      if (iommu_iova_to_phys(domain.domain, iova + len) !== phys + len) break;
    }
    // unmap_unpin_fast
    let unmapped = yield* iommu_unmap_fast(domain.domain, iova, len, gather);
    if (unmapped) {
      regions.push({ iova, phys, len: unmapped });
      iova += unmapped;
    }
    if (regions.length >= VFIO_IOMMU_TLB_SYNC_MAX || !unmapped) {
      unlocked += yield* vfio_sync_unpin(dma, domain, regions, gather);
    }
    if (!unmapped) {
      // unmap_unpin_slow
      unmapped = yield* iommu_unmap(domain.domain, iova, len);
      if (unmapped) {
        unlocked += yield* vfio_unpin_pages_remote(
          dma,
          iova,
          phys / PAGE_SIZE,
          unmapped / PAGE_SIZE,
          false,
        );
        iova += unmapped;
      }
      if (WARN_ON(!unmapped)) break;
    }
  }
  dma.iommu_mapped = false;
  if (regions.length) unlocked += yield* vfio_sync_unpin(dma, domain, regions, gather);
  if (do_accounting) {
    yield* vfio_lock_acct(dma, -unlocked, true);
    return 0;
  }
  return unlocked;
}

/**
 * vfio_remove_dma(iommu, dma): unmaps and unpins a mapping, releases its accounting and
 * frees it (RFC: first drops the device notifier and reference).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_remove_dma (v5.7–v6.18)
 * Locking: iommu->lock held.
 */
export function* vfio_remove_dma(iommu: vfio_iommu, dma: vfio_dma): Op<void> {
  WARN_ON(dma.pfn_list.size !== 0);
  if (dma.pfnmap) yield* pfnmap_release(dma.pfnmap);
  dma.pfnmap = null;
  yield* vfio_unmap_unpin(iommu, dma, true);
  vfio_unlink_dma(iommu, dma);
  if (dma.vaddr_invalid) iommu.vaddr_invalid_count--;
  iommu.dma_avail++;
}

/* ------------------------------------------------------------------------------------ */
/* Map                                                                                   */
/* ------------------------------------------------------------------------------------ */

/** iommu_map with the argument list of the running version (gfp v6.3+). */
function* iommu_map_v(
  domain: iommu_domain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
): Op<number> {
  return since(6, 3)
    ? yield* iommu_map(domain, iova, paddr, size, prot, GFP_KERNEL_ACCOUNT)
    : yield* iommu_map(domain, iova, paddr, size, prot);
}

/**
 * vfio_iommu_map(iommu, iova, pfn, npage, prot): maps the chunk in every domain with
 * prot | IOMMU_CACHE (d->prot, IOMMU_CACHE on the model's coherent IOMMU, before v5.19),
 * unmapping it from the domains done so far on failure.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_map (v5.7–v6.18)
 * Return: 0 or iommu_map's error.
 */
export function* vfio_iommu_map(
  iommu: vfio_iommu,
  iova: number,
  pfn: number,
  npage: number,
  prot: number,
): Op<number> {
  for (let i = 0; i < iommu.domain_list.length; i++) {
    const d = iommu.domain_list[i]!;
    const ret = yield* iommu_map_v(
      d.domain,
      iova,
      pfn * PAGE_SIZE,
      npage * PAGE_SIZE,
      prot | IOMMU_CACHE,
    );
    if (ret) {
      for (let j = i - 1; j >= 0; j--)
        yield* iommu_unmap(iommu.domain_list[j]!.domain, iova, npage * PAGE_SIZE);
      return ret;
    }
  }
  return 0;
}

/**
 * vfio_pin_map_dma(iommu, dma, map_size): pins and maps the mapping chunk by chunk,
 * growing dma->size; any failure unwinds the whole mapping (vfio_remove_dma).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_pin_map_dma (v5.7–v6.18)
 * Locking: iommu->lock held.
 * Return: 0 or -errno.
 */
export function* vfio_pin_map_dma(iommu: vfio_iommu, dma: vfio_dma, map_size: number): Op<number> {
  const iova = dma.iova;
  const vaddr = dma.vaddr;
  const batch = vfio_batch_init();
  const limit = rlimit_memlock_pages();
  let size = map_size;
  let ret = 0;
  while (size) {
    /* Pin a contiguous chunk of memory */
    const r = yield* vfio_pin_pages_remote(dma, vaddr + dma.size, size / PAGE_SIZE, limit, batch);
    const npage = r.ret;
    if (npage <= 0) {
      WARN_ON(!npage);
      ret = npage;
      break;
    }
    /* Map it! */
    ret = yield* vfio_iommu_map(iommu, iova + dma.size, r.pfn_base, npage, dma.prot);
    if (ret) {
      yield* vfio_unpin_pages_remote(dma, iova + dma.size, r.pfn_base, npage, true);
      yield* vfio_batch_unpin(batch, dma);
      break;
    }
    size -= npage * PAGE_SIZE;
    dma.size += npage * PAGE_SIZE;
  }
  dma.iommu_mapped = true;
  if (ret) yield* vfio_remove_dma(iommu, dma);
  return ret;
}

/**
 * vfio_iommu_iova_dma_valid(iommu, start, end): [start, end] lies in one valid range
 * (or the list is empty: an mdev-only container).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_iova_dma_valid (v5.4+)
 */
function vfio_iommu_iova_dma_valid(iommu: vfio_iommu, start: number, end: number): boolean {
  for (const n of iommu.iova_list) if (start >= n.start && end <= n.end) return true;
  return iommu.iova_list.length === 0;
}

/** (a + b - 1) overflows u64. */
function wraps(a: number, b: number): boolean {
  return BigInt(a) + BigInt(b) - 1n > U64_MAX;
}

/**
 * vfio_change_dma_owner(dma): VADDR remap by another process moves the accounting to it.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_change_dma_owner (v6.2+, 90fdd158a695
 *   "vfio/type1: restore locked_vm")
 * Return: 0 or -ENOMEM.
 */
function* vfio_change_dma_owner(dma: vfio_dma): Op<number> {
  const task = get_current();
  const mm = task.mm!;
  const npage = dma.locked_vm;
  if (mm === dma.mm) return 0;
  const lock_cap = task.caps.has('CAP_IPC_LOCK');
  const probe = new vfio_dma();
  probe.task = task;
  probe.mm = mm;
  probe.lock_cap = lock_cap;
  const ret = yield* vfio_lock_acct(probe, npage, false);
  if (ret) return ret;
  yield* vfio_lock_acct(dma, -npage, true);
  dma.task = task;
  dma.mm = mm;
  dma.lock_cap = lock_cap;
  dma.locked_vm = npage;
  return 0;
}

/**
 * vfio_dma_do_map(iommu, map): VFIO_IOMMU_MAP_DMA (R-VT1-1). Checks in the order of the
 * running version:
 * - ≤5.11: u64 fields truncated => -EINVAL; no READ/WRITE, size 0, size/iova/vaddr not
 *   aligned to the smallest IOMMU page => -EINVAL; iova or vaddr wrap => -EINVAL; then
 *   under iommu->lock: overlap => -EEXIST; no entries left (dma_entry_limit) => -ENOSPC;
 *   outside the valid IOVA ranges => -EINVAL;
 * - 5.12 (c3cbab24db38 VFIO_DMA_MAP_FLAG_VADDR): (prot && VADDR) or neither => -EINVAL;
 *   size/alignment and wrap checked under the lock; VADDR: no mapping => -ENOENT, not
 *   invalidated or not the same range => -EINVAL, else the new vaddr is taken (6.2+: the
 *   accounting moves to the caller, vfio_change_dma_owner);
 * - 6.18 (6012379ede6a "vfio/type1: sanitize for overflow using check_*_overflow()"):
 *   truncation => -EOVERFLOW, size 0 => -EINVAL, wrap => -EOVERFLOW, all before the
 *   flag check.
 * The mapping records current's group_leader, mm and CAP_IPC_LOCK; without an IOMMU
 * domain nothing is pinned (dma->size = size); a pin/map failure removes the mapping.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_dma_do_map (v5.7–v6.18)
 * Locking: takes iommu->lock.
 * Return: 0 or -errno.
 */
export function* vfio_dma_do_map(iommu: vfio_iommu, map: vfio_iommu_type1_dma_map): Op<number> {
  const set_vaddr = since(5, 12) && (map.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  const iova = map.iova;
  const vaddr = map.vaddr;
  const size = map.size;
  let prot = 0;
  let ret = 0;
  // "Verify that none of our __u64 fields overflow": size_t and unsigned long are 64-bit
  // on x86-64, so only a value outside u64 (impossible from user space) fails.
  const fits = [size, vaddr, iova].every(
    (v) => Number.isInteger(v) && v >= 0 && BigInt(v) <= U64_MAX,
  );
  const v618 = since(6, 18);
  if (!fits) return v618 ? -EOVERFLOW : -EINVAL;
  if (v618) {
    if (!size) return -EINVAL;
    if (wraps(iova, size) || wraps(vaddr, size)) return -EOVERFLOW;
  }
  /* READ/WRITE from device perspective */
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;

  if (!since(5, 12)) {
    const pgsize = min_pgsize(iommu);
    if (!prot || !size || (size | iova | vaddr) % pgsize || vaddr % pgsize || iova % pgsize)
      return -EINVAL;
    if (wraps(iova, size) || wraps(vaddr, size)) return -EINVAL;
    yield* mutex_lock(iommu.lock);
  } else {
    if ((prot && set_vaddr) || (!prot && !set_vaddr)) return -EINVAL;
    yield* mutex_lock(iommu.lock);
    const pgsize = min_pgsize(iommu);
    if (!size || size % pgsize || iova % pgsize || vaddr % pgsize) {
      ret = -EINVAL;
      yield* mutex_unlock(iommu.lock);
      return ret;
    }
    /* Don't allow IOVA or virtual address wrap (checked above from 6.18) */
    if (!v618 && (wraps(iova, size) || wraps(vaddr, size))) {
      yield* mutex_unlock(iommu.lock);
      return -EINVAL;
    }
  }
  out_unlock: {
    let dma = vfio_find_dma(iommu, iova, size);
    if (set_vaddr) {
      if (!dma) ret = -ENOENT;
      else if (!dma.vaddr_invalid || dma.iova !== iova || dma.size !== size) ret = -EINVAL;
      else {
        if (since(6, 2)) {
          ret = yield* vfio_change_dma_owner(dma);
          if (ret) break out_unlock;
        }
        dma.vaddr = vaddr;
        dma.vaddr_invalid = false;
        iommu.vaddr_invalid_count--;
      }
      break out_unlock;
    } else if (dma) {
      ret = -EEXIST;
      break out_unlock;
    }
    if (!iommu.dma_avail) {
      ret = -ENOSPC;
      break out_unlock;
    }
    if (!vfio_iommu_iova_dma_valid(iommu, iova, iova + size - 1)) {
      ret = -EINVAL;
      break out_unlock;
    }
    iommu.dma_avail--;
    dma = new vfio_dma();
    dma.iova = iova;
    dma.vaddr = vaddr;
    dma.prot = prot;
    const cur = get_current();
    dma.task = cur; /* current->group_leader: the model's tasks are their own leaders */
    dma.lock_cap = cur.caps.has('CAP_IPC_LOCK');
    dma.mm = cur.mm!;
    dma.owner = iommu;
    /* Insert zero-sized and grow as we map chunks of it */
    vfio_link_dma(iommu, dma);
    /* Don't pin and map if container doesn't contain IOMMU capable domain */
    if (!iommu.domain_list.length) dma.size = size;
    else ret = yield* vfio_pin_map_dma(iommu, dma, size);
  }
  yield* mutex_unlock(iommu.lock);
  return ret;
}

/**
 * vfio_dma_do_unmap(iommu, unmap): VFIO_IOMMU_UNMAP_DMA (R-VT1-5): iova/size not aligned,
 * size 0, or wrap => -EINVAL (6.18: wrap => -EOVERFLOW); v2: a mapping bisected at
 * either end => -EINVAL; every mapping inside [iova, iova+size) is removed and
 * `unmap.size` is set to the bytes removed (0 if none, also on error). v5.12+: FLAG_ALL
 * (c19650995374) needs iova = size = 0 and removes everything; FLAG_VADDR invalidates
 * the vaddrs instead. Before v6.2 a mapping made by another mm stops the walk. Mappings
 * with external pins (mdev) are notified and retried (BUG after 10 tries).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_dma_do_unmap (v5.7–v6.18)
 * Locking: takes iommu->lock.
 * Return: 0 or -errno.
 */
export function* vfio_dma_do_unmap(
  iommu: vfio_iommu,
  unmap: vfio_iommu_type1_dma_unmap,
): Op<number> {
  let unmapped = 0;
  let ret = -EINVAL;
  const iova = unmap.iova;
  let size = unmap.size;
  const unmap_all = since(5, 12) && (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidate_vaddr = since(5, 12) && (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  const pgsize = min_pgsize(iommu);
  let retries = 0;
  let dma_last: vfio_dma | null = null;

  if (!since(5, 12)) {
    if (iova % pgsize) return -EINVAL;
    if (!size || size % pgsize) return -EINVAL;
    if (wraps(iova, size)) return -EINVAL;
  }
  yield* mutex_lock(iommu.lock);
  unlock: {
    if (since(5, 12)) {
      if (invalidate_vaddr && since(6, 2) && iommu.emulated_iommu_groups.length) {
        ret = -EBUSY;
        break unlock;
      }
      if (iova % pgsize) break unlock;
      if (unmap_all) {
        if (iova || size) break unlock;
        size = Number.MAX_SAFE_INTEGER; /* U64_MAX / SIZE_MAX */
      } else {
        if (!size || size % pgsize) break unlock;
        if (wraps(iova, size)) {
          if (since(6, 18)) ret = -EOVERFLOW;
          break unlock;
        }
      }
    }
    for (;;) {
      /* again: */
      if (iommu.v2 && !unmap_all) {
        let dma = vfio_find_dma(iommu, iova, 1);
        if (dma && dma.iova !== iova) break unlock;
        dma = vfio_find_dma(iommu, iova + size - 1, 0);
        if (dma && dma.iova + dma.size !== iova + size) break unlock;
      }
      ret = 0;
      const first = vfio_find_dma_first_node(iommu, iova, size);
      let again = false;
      let i = first;
      while (i >= 0 && i < iommu.dma_list.length) {
        const dma = iommu.dma_list[i]!;
        if (dma.iova >= iova + size) break;
        if (!iommu.v2 && iova > dma.iova) break;
        /* Task with same address space who mapped this iova range is allowed to unmap
         * the iova range (until v6.2, 046eca5018f8). */
        if (!since(6, 2) && dma.task.mm !== get_current().mm) break;
        if (invalidate_vaddr) {
          if (dma.vaddr_invalid) {
            for (let j = first; j < i; j++) {
              iommu.dma_list[j]!.vaddr_invalid = false;
              iommu.vaddr_invalid_count--;
            }
            ret = -EINVAL;
            unmapped = 0;
            break;
          }
          dma.vaddr_invalid = true;
          iommu.vaddr_invalid_count++;
          unmapped += dma.size;
          i++;
          continue;
        }
        if (dma.pfn_list.size) {
          if (dma_last === dma) BUG_ON(++retries > 10);
          else {
            dma_last = dma;
            retries = 0;
          }
          // vfio_notify_dma_unmap: the model has no mdev vendor driver to unpin.
          again = true;
          break;
        }
        unmapped += dma.size;
        yield* vfio_remove_dma(iommu, dma);
      }
      if (!again) break;
      // Without a vendor driver the external pins stay; the kernel would loop to the BUG.
      BUG_ON(++retries > 10, 'vfio_dma_do_unmap: external pins not released');
    }
  }
  yield* mutex_unlock(iommu.lock);
  /* Report how much was unmapped */
  unmap.size = unmapped;
  return ret;
}

/* ------------------------------------------------------------------------------------ */
/* Groups and domains                                                                    */
/* ------------------------------------------------------------------------------------ */

/** An iommu_resv_region: type IOMMU_RESV_MSI (3 in the kernel's enum) etc. */
export interface iommu_resv_region {
  readonly start: number;
  readonly length: number;
  readonly type: 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';
}

/**
 * iommu_get_group_resv_regions(group): the reserved regions of the group's devices; the
 * model's intel-iommu reports the IOAPIC/MSI window as IOMMU_RESV_MSI.
 * @kernel drivers/iommu/iommu.c:iommu_get_group_resv_regions;
 *   drivers/iommu/intel/iommu.c:intel_iommu_get_resv_regions (all versions; RMRRs and the
 *   ISA range left out). Modelled here: the IOMMU core model has no reserved regions.
 */
export function iommu_get_group_resv_regions(group: iommu_group): iommu_resv_region[] {
  if (!group.devices.length) return [];
  return [
    { start: IOAPIC_RANGE_START, length: IOAPIC_RANGE_END - IOAPIC_RANGE_START + 1, type: 'msi' },
  ];
}

function find_iommu_group(domain: vfio_domain, g: iommu_group): vfio_iommu_group | null {
  return domain.group_list.find((x) => x.iommu_group === g) ?? null;
}

function vfio_iommu_find_iommu_group(iommu: vfio_iommu, g: iommu_group): vfio_iommu_group | null {
  for (const d of iommu.domain_list) {
    const x = find_iommu_group(d, g);
    if (x) return x;
  }
  return iommu.emulated_iommu_groups.find((x) => x.iommu_group === g) ?? null;
}

function vfio_iommu_aper_conflict(iommu: vfio_iommu, start: number, end: number): boolean {
  const l = iommu.iova_list;
  if (!l.length) return false;
  const first = l[0]!;
  const last = l[l.length - 1]!;
  if (start > last.end || end < first.start) return true;
  if (start > first.start && vfio_find_dma(iommu, first.start, start - first.start)) return true;
  if (end < last.end && vfio_find_dma(iommu, end + 1, last.end - end)) return true;
  return false;
}

function vfio_iommu_aper_resize(iova: vfio_iova[], start: number, end: number): vfio_iova[] {
  if (!iova.length) return [{ start, end }];
  const out: vfio_iova[] = [];
  for (const n of iova) {
    if (n.end < start || n.start > end) continue;
    out.push({ start: Math.max(n.start, start), end: Math.min(n.end, end) });
  }
  return out;
}

function vfio_iommu_resv_conflict(iommu: vfio_iommu, resv: iommu_resv_region[]): boolean {
  return resv.some((r) => r.type !== 'direct-relaxable' && vfio_find_dma(iommu, r.start, r.length));
}

function vfio_iommu_resv_exclude(
  iova: vfio_iova[],
  resv: iommu_resv_region[],
): vfio_iova[] | number {
  let list = iova;
  for (const r of resv) {
    if (r.type === 'direct-relaxable') continue;
    const start = r.start;
    const end = r.start + r.length - 1;
    const next: vfio_iova[] = [];
    for (const n of list) {
      if (start > n.end || end < n.start) {
        next.push(n);
        continue;
      }
      if (start > n.start) next.push({ start: n.start, end: start - 1 });
      if (end < n.end) next.push({ start: end + 1, end: n.end });
    }
    list = next;
  }
  if (!list.length) return -EINVAL;
  return list;
}

function vfio_update_pgsize_bitmap(iommu: vfio_iommu): void {
  let b = U64_MAX;
  for (const d of iommu.domain_list) b &= BigInt(d.domain.pgsize_bitmap);
  const PAGE_MASK = ~0xfffn & U64_MAX;
  if (b & ~PAGE_MASK & U64_MAX) {
    b &= PAGE_MASK;
    b |= BigInt(PAGE_SIZE);
  }
  iommu.pgsize_bitmap = b;
}

/**
 * vfio_iommu_replay(iommu, domain): maps every existing mapping into a new domain: from
 * the first domain's translations if already mapped, else by pinning.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_replay (v5.7–v6.18)
 * Locking: iommu->lock held.
 * Return: 0 or -errno (everything replayed so far undone).
 */
function* vfio_iommu_replay(iommu: vfio_iommu, domain: vfio_domain): Op<number> {
  const d = iommu.domain_list[0] ?? null;
  const batch = vfio_batch_init();
  const limit = rlimit_memlock_pages();
  const done: vfio_dma[] = [];
  for (const dma of iommu.dma_list) {
    let iova = dma.iova;
    while (iova < dma.iova + dma.size) {
      let phys: number;
      let size: number;
      if (dma.iommu_mapped) {
        if (WARN_ON(!d)) return yield* replay_unwind(domain, done, dma, -EINVAL);
        phys = iommu_iova_to_phys(d!.domain, iova);
        if (WARN_ON(!phys)) {
          iova += PAGE_SIZE;
          continue;
        }
        size = PAGE_SIZE;
        while (
          iova + size < dma.iova + dma.size &&
          iommu_iova_to_phys(d!.domain, iova + size) === phys + size
        )
          size += PAGE_SIZE;
      } else {
        const vaddr = dma.vaddr + (iova - dma.iova);
        const n = dma.iova + dma.size - iova;
        const r = yield* vfio_pin_pages_remote(dma, vaddr, n / PAGE_SIZE, limit, batch);
        if (r.ret <= 0) {
          WARN_ON(!r.ret);
          return yield* replay_unwind(domain, done, dma, r.ret);
        }
        phys = r.pfn_base * PAGE_SIZE;
        size = r.ret * PAGE_SIZE;
      }
      const ret = yield* iommu_map_v(domain.domain, iova, phys, size, dma.prot | IOMMU_CACHE);
      if (ret) {
        if (!dma.iommu_mapped) {
          yield* vfio_unpin_pages_remote(dma, iova, phys / PAGE_SIZE, size / PAGE_SIZE, true);
          yield* vfio_batch_unpin(batch, dma);
        }
        return yield* replay_unwind(domain, done, dma, ret);
      }
      iova += size;
    }
    done.push(dma);
  }
  for (const dma of iommu.dma_list) dma.iommu_mapped = true;
  return 0;
}

function* replay_unwind(
  domain: vfio_domain,
  done: vfio_dma[],
  cur: vfio_dma,
  ret: number,
): Op<number> {
  for (const dma of [cur, ...done.reverse()]) {
    if (dma.iommu_mapped) {
      yield* iommu_unmap(domain.domain, dma.iova, dma.size);
      continue;
    }
    let iova = dma.iova;
    while (iova < dma.iova + dma.size) {
      const phys = iommu_iova_to_phys(domain.domain, iova);
      if (!phys) {
        iova += PAGE_SIZE;
        continue;
      }
      let size = PAGE_SIZE;
      while (
        iova + size < dma.iova + dma.size &&
        iommu_iova_to_phys(domain.domain, iova + size) === phys + size
      )
        size += PAGE_SIZE;
      yield* iommu_unmap(domain.domain, iova, size);
      yield* vfio_unpin_pages_remote(dma, iova, phys / PAGE_SIZE, size / PAGE_SIZE, true);
      iova += size;
    }
  }
  return ret;
}

/**
 * vfio_iommu_type1_attach_group(iommu, group, type): gives an IOMMU-backed group a domain:
 * allocates one (≤6.10 iommu_domain_alloc(bus) failing => -EIO; v6.11+
 * iommu_paging_domain_alloc(first device)), attaches the group, narrows the valid IOVA
 * list to the aperture minus the group's reserved regions (a conflict with an existing
 * mapping => -EINVAL), then joins an existing compatible domain if there is one (the
 * new domain is freed) or replays the existing mappings into the new one. A group
 * already attached => -EINVAL; v5.12+ a pending VADDR update => -EBUSY. Emulated groups
 * are only recorded.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_attach_group (v5.7–v6.18;
 *   `type` v5.16+)
 * Locking: takes iommu->lock; the IOMMU core takes group->mutex.
 * Return: 0 or -errno.
 * Left out: the interrupt-remapping check (the model's IOMMU remaps interrupts), the
 * software MSI cookie, the fine-grained superpage probe (≤6.1).
 */
export function* vfio_iommu_type1_attach_group(
  iommu: vfio_iommu,
  g: iommu_group,
  type: number,
): Op<number> {
  yield* mutex_lock(iommu.lock);
  const ret = yield* attach_locked(iommu, g, type);
  yield* mutex_unlock(iommu.lock);
  return ret;
}

function* attach_locked(iommu: vfio_iommu, g: iommu_group, type: number): Op<number> {
  /* Attach could require pinning, so disallow while vaddr is invalid. */
  if (since(5, 12) && iommu.vaddr_invalid_count) return -EBUSY;
  /* Check for duplicates */
  if (vfio_iommu_find_iommu_group(iommu, g)) return -EINVAL;
  const group: vfio_iommu_group = { iommu_group: g, pinned_page_dirty_scope: false };
  if (type === VFIO_EMULATED_IOMMU) {
    group.pinned_page_dirty_scope = true;
    iommu.emulated_iommu_groups.unshift(group);
    return 0;
  }
  let dom: iommu_domain | null;
  if (since(6, 11)) {
    const dev = g.devices[0];
    if (!dev) return -ENODEV;
    const r = iommu_paging_domain_alloc(dev);
    if (IS_ERR(r)) return r as number;
    dom = r as iommu_domain;
  } else {
    dom = g.devices.length ? iommu_domain_alloc(g.devices[0]!.bus) : null;
    if (!dom) return -5; /* -EIO */
  }
  const domain = new vfio_domain(dom);
  let ret = yield* iommu_attach_group(domain.domain, g);
  if (ret) {
    iommu_domain_free(domain.domain);
    return ret;
  }
  out_detach: {
    const geo = domain.domain.geometry;
    if (vfio_iommu_aper_conflict(iommu, geo.aperture_start, geo.aperture_end)) {
      ret = -EINVAL;
      break out_detach;
    }
    const resv = iommu_get_group_resv_regions(g);
    if (vfio_iommu_resv_conflict(iommu, resv)) {
      ret = -EINVAL;
      break out_detach;
    }
    const copy = vfio_iommu_aper_resize(
      iommu.iova_list.map((n) => ({ ...n })),
      geo.aperture_start,
      geo.aperture_end,
    );
    const excl = vfio_iommu_resv_exclude(copy, resv);
    if (typeof excl === 'number') {
      ret = excl;
      break out_detach;
    }
    domain.group_list.push(group);
    /* Try to match an existing compatible domain. */
    for (const d of iommu.domain_list) {
      if (d.enforce_cache_coherency === domain.enforce_cache_coherency) {
        yield* iommu_detach_group(domain.domain, g);
        if (!(yield* iommu_attach_group(d.domain, g))) {
          d.group_list.push(group);
          iommu_domain_free(domain.domain);
          iommu.iova_list = excl;
          iommu.num_non_pinned_groups++;
          return 0;
        }
        ret = yield* iommu_attach_group(domain.domain, g);
        if (ret) {
          iommu_domain_free(domain.domain);
          return ret;
        }
      }
    }
    /* replay mappings on new domains */
    ret = yield* vfio_iommu_replay(iommu, domain);
    if (ret) break out_detach;
    iommu.domain_list.unshift(domain);
    vfio_update_pgsize_bitmap(iommu);
    iommu.iova_list = excl;
    iommu.num_non_pinned_groups++;
    return 0;
  }
  yield* iommu_detach_group(domain.domain, g);
  iommu_domain_free(domain.domain);
  return ret;
}

/** vfio_iommu_unmap_unpin_all(iommu): removes every mapping. */
export function* vfio_iommu_unmap_unpin_all(iommu: vfio_iommu): Op<void> {
  while (iommu.dma_list.length) yield* vfio_remove_dma(iommu, iommu.dma_list[0]!);
}

/**
 * vfio_iommu_type1_detach_group(iommu, group): detaches the group; the last group of a
 * domain frees it, and the last IOMMU domain (without emulated groups) removes every
 * mapping first. The valid IOVA list is rebuilt from the remaining domains.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_detach_group (v5.7–v6.18)
 * Locking: takes iommu->lock.
 * Left out: the reaccounting when emulated groups remain (vfio_iommu_unmap_unpin_reaccount).
 */
export function* vfio_iommu_type1_detach_group(iommu: vfio_iommu, g: iommu_group): Op<void> {
  yield* mutex_lock(iommu.lock);
  const ei = iommu.emulated_iommu_groups.findIndex((x) => x.iommu_group === g);
  if (ei >= 0) {
    iommu.emulated_iommu_groups.splice(ei, 1);
    if (!iommu.emulated_iommu_groups.length && !iommu.domain_list.length)
      yield* vfio_iommu_unmap_unpin_all(iommu);
  } else {
    for (let i = 0; i < iommu.domain_list.length; i++) {
      const domain = iommu.domain_list[i]!;
      const group = find_iommu_group(domain, g);
      if (!group) continue;
      yield* iommu_detach_group(domain.domain, g);
      domain.group_list.splice(domain.group_list.indexOf(group), 1);
      iommu.num_non_pinned_groups--;
      if (!domain.group_list.length) {
        if (iommu.domain_list.length === 1) yield* vfio_iommu_unmap_unpin_all(iommu);
        iommu_domain_free(domain.domain);
        iommu.domain_list.splice(i, 1);
        vfio_update_pgsize_bitmap(iommu);
      }
      break;
    }
    // vfio_iommu_aper_expand + vfio_iommu_resv_refresh
    let list: vfio_iova[] = [];
    if (iommu.domain_list.length) {
      let start = 0;
      let end = Number.MAX_SAFE_INTEGER;
      for (const d of iommu.domain_list) {
        start = Math.max(start, d.domain.geometry.aperture_start);
        end = Math.min(end, d.domain.geometry.aperture_end);
      }
      const resv = iommu.domain_list.flatMap((d) =>
        d.group_list.flatMap((x) => iommu_get_group_resv_regions(x.iommu_group)),
      );
      const r = vfio_iommu_resv_exclude([{ start, end }], resv);
      list = typeof r === 'number' ? iommu.iova_list : r;
    }
    iommu.iova_list = list;
  }
  yield* mutex_unlock(iommu.lock);
}

/**
 * vfio_iommu_type1_open(arg): a new backend for VFIO_TYPE1_IOMMU (v1) or
 * VFIO_TYPE1v2_IOMMU (v2); VFIO_TYPE1_NESTING_IOMMU is v2 + nesting (≤6.12; from v6.13 the
 * reserved number is accepted as v2); anything else => -EINVAL.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_open (v5.7–v6.18)
 * Return: the vfio_iommu, or -errno.
 */
export function vfio_iommu_type1_open(arg: number): vfio_iommu | number {
  const iommu = new vfio_iommu(currentKernel().nextId('vfio_iommu'));
  switch (arg) {
    case VFIO_TYPE1_IOMMU:
      break;
    case VFIO_TYPE1_NESTING_IOMMU:
      iommu.nesting = !since(6, 13);
      iommu.v2 = true;
      break;
    case VFIO_TYPE1v2_IOMMU:
      iommu.v2 = true;
      break;
    default:
      return -EINVAL;
  }
  return iommu;
}

/**
 * vfio_iommu_type1_release(iommu): the container is closed: every mapping is removed
 * (vfio_iommu_unmap_unpin_all), then every domain is detached and freed.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_release (v5.7–v6.18)
 */
export function* vfio_iommu_type1_release(iommu: vfio_iommu): Op<void> {
  iommu.emulated_iommu_groups.length = 0;
  yield* vfio_iommu_unmap_unpin_all(iommu);
  for (const domain of iommu.domain_list.splice(0)) {
    for (const g of domain.group_list.splice(0))
      yield* iommu_detach_group(domain.domain, g.iommu_group);
    iommu_domain_free(domain.domain);
  }
  iommu.iova_list = [];
}

/**
 * vfio_iommu_type1_check_extension(iommu, arg).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_check_extension (v5.7–v6.18;
 *   UNMAP_ALL and UPDATE_VADDR v5.12+, UPDATE_VADDR refused with emulated groups v6.2+)
 * Return: 1 or 0.
 */
export function vfio_iommu_type1_check_extension(iommu: vfio_iommu | null, arg: number): number {
  switch (arg) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
      return 1;
    case VFIO_TYPE1_NESTING_IOMMU:
      return since(6, 13) ? 0 : 1;
    case VFIO_UNMAP_ALL:
      return since(5, 12) ? 1 : 0;
    case VFIO_UPDATE_VADDR:
      if (!since(5, 12)) return 0;
      if (since(6, 2)) return iommu && !iommu.emulated_iommu_groups.length ? 1 : 0;
      return 1;
    case VFIO_DMA_CC_IOMMU:
      if (!iommu) return 0;
      return iommu.domain_list.every((d) => d.enforce_cache_coherency) ? 1 : 0;
    default:
      return 0;
  }
}

/**
 * vfio_iommu_type1_ioctl(iommu, cmd, arg): CHECK_EXTENSION, GET_INFO, MAP_DMA, UNMAP_DMA.
 * MAP_DMA: argsz < minsz or an unknown flag (VADDR known from v5.12) => -EINVAL. UNMAP_DMA:
 * argsz < minsz or unknown flags => -EINVAL; GET_DIRTY_BITMAP is not modelled (-EINVAL
 * when combined with ALL/VADDR, as the kernel; alone: left out, -EINVAL); on success the
 * unmapped size is written back into `arg`.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_ioctl,
 *   vfio_iommu_type1_map_dma, vfio_iommu_type1_unmap_dma (v5.7–v6.18)
 * Return: 0/1 or -errno; unknown commands -ENOTTY.
 */
export function* vfio_iommu_type1_ioctl(iommu: vfio_iommu, cmd: number, arg: unknown): Op<number> {
  switch (cmd) {
    case VFIO_CHECK_EXTENSION:
      return vfio_iommu_type1_check_extension(iommu, arg as number);
    case VFIO_IOMMU_GET_INFO: {
      const info = arg as vfio_iommu_type1_info;
      if (info.argsz < VFIO_IOMMU_TYPE1_INFO_MINSZ) return -EINVAL;
      yield* mutex_lock(iommu.lock);
      info.flags = VFIO_IOMMU_INFO_PGSIZES;
      info.iova_pgsizes = Number(iommu.pgsize_bitmap);
      yield* mutex_unlock(iommu.lock);
      return 0;
    }
    case VFIO_IOMMU_MAP_DMA: {
      const map = arg as vfio_iommu_type1_dma_map;
      let mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
      if (since(5, 12)) mask |= VFIO_DMA_MAP_FLAG_VADDR;
      if (map.argsz < VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ || map.flags & ~mask) return -EINVAL;
      return yield* vfio_dma_do_map(iommu, map);
    }
    case VFIO_IOMMU_UNMAP_DMA: {
      const unmap = arg as vfio_iommu_type1_dma_unmap;
      let mask = since(5, 8) ? VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP : 0;
      if (since(5, 12)) mask |= VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
      if (unmap.argsz < VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ || unmap.flags & ~mask) return -EINVAL;
      if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) return -EINVAL; /* not modelled */
      const ret = yield* vfio_dma_do_unmap(iommu, unmap);
      return ret;
    }
    default:
      return -ENOTTY;
  }
}

/* ------------------------------------------------------------------------------------ */
/* The 2021 RFC: device notifier                                                         */
/* ------------------------------------------------------------------------------------ */

/** The container a pfnmap object belongs to. */
function pfnmap_iommu(p: pfnmap_obj): vfio_iommu {
  return p.iommu as vfio_iommu;
}

/**
 * The RFC's pfnmap_find_dma(pfnmap): the mapping holding this pfnmap object.
 */
function pfnmap_find_dma(p: pfnmap_obj): vfio_dma | null {
  return pfnmap_iommu(p).dma_list.find((d) => d.pfnmap === p) ?? null;
}

/**
 * vfio_device_nb_cb(nb, action): on VFIO_DEVICE_RELEASE removes the mapping backed by
 * the device (iommu_unmap through vfio_remove_dma), then drops the notifier and the
 * device reference. The RFC defers the unregistration to a work item
 * (unregister_device_bg), since the chain's rwsem is held for read while the callback
 * runs; the model runs that work at once, taking the entry off the chain without the
 * rwsem (the chain iterates over a copy).
 * @kernel (RFC 10/10, not merged) drivers/vfio/vfio_iommu_type1.c:vfio_device_nb_cb,
 *   unregister_device_bg
 * Locking: takes iommu->lock; called with the device's notifier rwsem held for read.
 * Return: NOTIFY_OK.
 */
function* vfio_device_nb_cb(p: pfnmap_obj, action: number): Op<number> {
  if (action !== VFIO_DEVICE_RELEASE) return NOTIFY_OK;
  const iommu = pfnmap_iommu(p);
  yield* mutex_lock(iommu.lock);
  const dma = pfnmap_find_dma(p);
  if (dma) {
    dma.pfnmap = null;
    yield* vfio_remove_dma(iommu, dma);
  }
  yield* mutex_unlock(iommu.lock);
  /* INIT_WORK(&pfnmap->work, unregister_device_bg); schedule_work(&pfnmap->work); */
  if (!released.has(p)) {
    released.add(p);
    for (const l of p.leases) pfnsan_lease_put(l, 'vfio_device_nb_cb');
    const i = p.device.notifier.indexOf(p.nb);
    if (i >= 0) p.device.notifier.splice(i, 1);
    vfio_device_put(p.device);
  }
  return NOTIFY_OK;
}

const released = new WeakSet<pfnmap_obj>();

/** vfio_remove_dma's RFC part: unregister the notifier, put the device, end the leases. */
function* pfnmap_release(p: pfnmap_obj): Op<void> {
  if (released.has(p)) return;
  released.add(p);
  for (const l of p.leases) pfnsan_lease_put(l, 'vfio_remove_dma');
  yield* vfio_device_unregister_notifier(p.device, p.nb);
  vfio_device_put(p.device);
}

set_pfnmap_hook({
  lookup(vma) {
    /* The RFC returns ERR_PTR(-ENODEV) where the model's lookup returns null. */
    return vfio_device_get_from_vma(vma) ?? -ENODEV;
  },
  put(device: vfio_device) {
    vfio_device_put(device);
  },
  *attach(dma, device) {
    const iommu = dma.owner as vfio_iommu;
    const p: pfnmap_obj = {
      nb: {
        notifier_call: (_nb: notifier_block, action: number) => vfio_device_nb_cb(p, action),
      },
      iommu,
      device,
      leases: [],
    };
    const ret = yield* vfio_device_register_notifier(device, p.nb);
    if (ret) return ret;
    dma.pfnmap = p;
    return 0;
  },
});

/* ------------------------------------------------------------------------------------ */
/* The ops                                                                               */
/* ------------------------------------------------------------------------------------ */

function checkExtensionOp(arg: number): Op<number> {
  return pure(vfio_iommu_type1_check_extension(null, arg));
}

function asIommu(x: unknown): vfio_iommu {
  if (!(x instanceof vfio_iommu))
    throw new Error('vfio_iommu_type1: iommu_data is not a type1 container');
  return x;
}

/**
 * vfio_iommu_driver_ops_type1: the backend the container calls.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_driver_ops_type1 (v5.7–v6.18)
 */
export const vfio_iommu_driver_ops_type1: vfio_iommu_driver_ops = {
  name: 'vfio-iommu-type1',
  open: (arg) => vfio_iommu_type1_open(arg),
  release: (d) => vfio_iommu_type1_release(asIommu(d)),
  // The container asks VFIO_CHECK_EXTENSION with no iommu_data before VFIO_SET_IOMMU
  // (vfio_container_ioctl_check_extension passes NULL), as the kernel does.
  ioctl: (d, cmd, arg) =>
    d === null && cmd === VFIO_CHECK_EXTENSION
      ? checkExtensionOp(arg as number)
      : vfio_iommu_type1_ioctl(asIommu(d), cmd, arg),
  attach_group: (d, g, type) => vfio_iommu_type1_attach_group(asIommu(d), g, type),
  detach_group: (d, g) => vfio_iommu_type1_detach_group(asIommu(d), g),
  notify(d, event) {
    /* ec5e32940cc9 (v5.12) "vfio: iommu driver notify callback"; reverted in v6.2 */
    if (since(5, 12) && !since(6, 2) && event === VFIO_IOMMU_CONTAINER_CLOSE)
      asIommu(d).container_open = false;
  },
};

/**
 * vfio_iommu_type1_init(): registers the backend with the VFIO core (module_init).
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_iommu_type1_init (v5.7–v6.18)
 * Return: 0, or -EINVAL if already registered.
 */
export function vfio_iommu_type1_init(): number {
  return vfio_register_iommu_driver(vfio_iommu_driver_ops_type1);
}

/** Model inspection: the mappings of a type1 container, in iova order. */
export function vfio_iommu_type1_dmas(iommu_data: unknown): readonly vfio_dma[] {
  return asIommu(iommu_data).dma_list;
}

/** Model inspection: the IOMMU domains of a type1 container. */
export function vfio_iommu_type1_domains(iommu_data: unknown): readonly iommu_domain[] {
  return asIommu(iommu_data).domain_list.map((d) => d.domain);
}

/** Model inspection: the valid IOVA ranges of a type1 container. */
export function vfio_iommu_type1_iova_list(iommu_data: unknown): readonly vfio_iova[] {
  return asIommu(iommu_data).iova_list;
}
