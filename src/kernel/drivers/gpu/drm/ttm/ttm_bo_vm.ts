/**
 * CPU mappings of TTM buffer objects (drivers/gpu/drm/ttm/ttm_bo_vm.c).
 *
 * mmap (ttm_bo_mmap_obj): COW mappings are refused (-EINVAL) and the VMA becomes
 * VM_PFNMAP|VM_IO|VM_DONTEXPAND|VM_DONTDUMP with vm_private_data = the BO (v5.14+,
 * f91142c62161 "drm/ttm: nuke VM_MIXEDMAP on BO mappings v3"; before it the VMA was
 * VM_MIXEDMAP|VM_IO|VM_DONTEXPAND|VM_DONTDUMP, COW allowed, and the fault used
 * vmf_insert_mixed_prot). No PTE is installed at mmap time.
 *
 * Fault (ttm_bo_vm_fault): the BO's reservation is taken (a trylock; when it is held by a
 * move, the first attempt drops mmap_lock, waits for the reservation and returns
 * VM_FAULT_RETRY; the retry waits for it with mmap_lock held), then
 * ttm_bo_vm_fault_reserved looks the placement up *under the reservation*: the BAR pfn of
 * the VRAM range (bus.offset >> PAGE_SHIFT + page) or the tt page (populated on demand),
 * and inserts it with vmf_insert_pfn_prot (special PTE), prefaulting up to
 * TTM_BO_VM_NUM_PREFAULT (16) pages of the VMA. Because a move holds the reservation from
 * before ttm_bo_unmap_virtual until the new placement is assigned, a fault either inserts
 * old pfns before the move's unmap (and they are zapped) or inserts the new placement's.
 *
 * Left out: fences (ttm_bo_vm_fault_idle returns 0), drm_dev_enter / the dummy page of an
 * unplugged device, ttm_bo_vm_access (ptrace access), huge faults (v5.9-v5.15 vmwgfx
 * only), caching/encryption bits of the protection.
 *
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c (all versions; ttm_bo_mmap_obj v5.14+, the same
 *   setup was ttm_bo_mmap_vma_setup reached from ttm_bo_mmap before)
 */
import type { Op } from '../../../../../sched/index.js';
import type {
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../../../../include/linux/mm_types.js';
import {
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_RETRY_NOWAIT,
  FAULT_FLAG_TRIED,
} from '../../../../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_ERROR,
  VM_FAULT_NOPAGE,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  is_cow_mapping,
  vma_pages,
} from '../../../../include/linux/mm.js';
import { EAGAIN, EINTR, EINVAL } from '../../../../include/linux/errno.js';
import { WARN_ON } from '../../../../kernel/panic.js';
import { pr_debug } from '../../../../kernel/printk.js';
import { since } from '../../../../version.js';
import { mmap_read_unlock } from '../../../../include/linux/mmap_lock.js';
import {
  PFN_DEV,
  __pfn_to_pfn_t,
  pgprot_decrypted,
  vm_flags_set,
  vmf_insert_mixed,
  vmf_insert_pfn_prot,
} from '../../../../mm/memory.pfnmap.js';
import type { pgprot_t } from '../../../../arch/x86/include/asm/pgtable_types.js';
import {
  dma_resv_lock_interruptible,
  dma_resv_trylock,
  dma_resv_unlock,
} from '../../../dma-buf/dma-resv.js';
import { drm_gem_object_get, drm_gem_object_put } from '../drm_gem.js';
import { drm_vma_node_start } from '../drm_vma_manager.js';
import { ttm_bo_get, ttm_bo_put, ttm_ctx, type ttm_buffer_object } from './ttm_bo.js';
import { ttm_io_prot } from './ttm_bo_util.js';
import { ttm_mem_io_reserve } from './ttm_resource.js';
import { TTM_TT_FLAG_EXTERNAL, TTM_TT_FLAG_EXTERNAL_MAPPABLE, ttm_tt_populate } from './ttm_tt.js';

const PAGE_SIZE = 4096;

/** TTM_BO_VM_NUM_PREFAULT (include/drm/ttm/ttm_bo.h). */
export const TTM_BO_VM_NUM_PREFAULT = 16;

/** fault_flag_allow_retry_first(flags): ALLOW_RETRY and not yet TRIED. @kernel include/linux/mm.h (v5.7+) */
export function fault_flag_allow_retry_first(flags: number): boolean {
  return (flags & FAULT_FLAG_ALLOW_RETRY) !== 0 && !(flags & FAULT_FLAG_TRIED);
}

/**
 * ttm_bo_vm_reserve(bo, vmf): takes the BO's reservation for a fault. If it is held: on
 * the first attempt (and without RETRY_NOWAIT) drop mmap_lock, wait for the reservation
 * and let it go, and return VM_FAULT_RETRY; on a retry wait with mmap_lock held. Imported
 * (EXTERNAL) tts that are not EXTERNAL_MAPPABLE are VM_FAULT_SIGBUS.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_vm_reserve (all versions)
 * Locking: mmap_lock held for read on entry; with VM_FAULT_RETRY it was dropped; on 0 the
 *   reservation is held.
 * Return: 0, VM_FAULT_RETRY, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS.
 */
export function* ttm_bo_vm_reserve(bo: ttm_buffer_object, vmf: vm_fault): Op<vm_fault_t> {
  /*
   * Work around locking order reversal in fault / nopfn between mmap_lock and
   * bo_reserve: Perform a trylock operation for reserve, and if it fails, retry the
   * fault after waiting for the buffer to become unreserved.
   */
  if (!(yield* dma_resv_trylock(bo.base.resv))) {
    if (fault_flag_allow_retry_first(vmf.flags)) {
      if (!(vmf.flags & FAULT_FLAG_RETRY_NOWAIT)) {
        drm_gem_object_get(bo.base);
        yield* mmap_read_unlock(vmf.vma.vm_mm);
        if (!(yield* dma_resv_lock_interruptible(bo.base.resv, null)))
          yield* dma_resv_unlock(bo.base.resv);
        drm_gem_object_put(bo.base);
      }
      return VM_FAULT_RETRY;
    }
    if (yield* dma_resv_lock_interruptible(bo.base.resv, null)) return VM_FAULT_NOPAGE;
  }
  /* Refuse to fault imported pages. */
  if (bo.ttm && bo.ttm.page_flags & TTM_TT_FLAG_EXTERNAL) {
    if (!(bo.ttm.page_flags & TTM_TT_FLAG_EXTERNAL_MAPPABLE)) {
      yield* dma_resv_unlock(bo.base.resv);
      return VM_FAULT_SIGBUS;
    }
  }
  return 0;
}

/**
 * ttm_bo_io_mem_pfn(bo, page_offset): the driver's ->io_mem_pfn, else bus.offset's pfn +
 * page_offset.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_io_mem_pfn (all versions)
 */
function ttm_bo_io_mem_pfn(bo: ttm_buffer_object, page_offset: number): number {
  const bdev = bo.bdev;
  if (bdev.funcs.io_mem_pfn) return bdev.funcs.io_mem_pfn(bo, page_offset);
  return Math.floor(bo.resource!.bus.offset / PAGE_SIZE) + page_offset;
}

/**
 * ttm_bo_vm_fault_reserved(vmf, prot, num_prefault): inserts the pfns of the BO's current
 * placement from the faulting page on: io reserve (-errno: SIGBUS); the page's offset in
 * the BO from vm_pgoff minus the node start (beyond the BO: SIGBUS); system placements
 * populate their tt (-EINTR/-ERESTARTSYS/-EAGAIN: NOPAGE; else SIGBUS); then up to
 * num_prefault pages: the BAR pfn or the tt page (a missing first page: OOM; later: stop),
 * vmf_insert_pfn_prot (v5.14+; vmf_insert_mixed_prot on the VM_MIXEDMAP VMAs before), an
 * error on the first page gives NOPAGE, on a later one stops.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_vm_fault_reserved (all versions)
 * Locking: mmap_lock for read and the reservation held.
 * Return: VM_FAULT_NOPAGE (or the last insert's result), SIGBUS, OOM.
 */
export function* ttm_bo_vm_fault_reserved(
  vmf: vm_fault,
  prot: pgprot_t,
  num_prefault: number,
): Op<vm_fault_t> {
  const vma = vmf.vma;
  const bo = vma.vm_private_data as ttm_buffer_object;
  const bdev = bo.bdev;
  let ret: vm_fault_t = VM_FAULT_NOPAGE;
  let address = vmf.address;
  /* ttm_bo_vm_fault_idle: no fences in the model. */
  const err = ttm_mem_io_reserve(bdev, bo.resource);
  if (err) return VM_FAULT_SIGBUS;
  const start = drm_vma_node_start(bo.base.vma_node);
  let page_offset = Math.floor((address - vma.vm_start) / PAGE_SIZE) + vma.vm_pgoff - start;
  const page_last = vma_pages(vma) + vma.vm_pgoff - start;
  if (page_offset >= Math.ceil(bo.base.size / PAGE_SIZE)) return VM_FAULT_SIGBUS;
  prot = ttm_io_prot(bo, bo.resource!, prot);
  const iomem = bo.resource!.bus.is_iomem;
  if (!iomem) {
    const e = yield* ttm_tt_populate(bdev, bo.ttm, ttm_ctx(true, false));
    if (e) {
      if (e === -EINTR || e === -EAGAIN) return VM_FAULT_NOPAGE;
      pr_debug(`[TTM] TTM fault hit ${e}.`);
      return VM_FAULT_SIGBUS;
    }
  } else {
    /* Iomem should not be marked encrypted */
    prot = pgprot_decrypted(prot);
  }
  /* Speculatively prefault a number of pages. Only error on first page. */
  for (let i = 0; i < num_prefault; ++i) {
    let pfn: number;
    if (iomem) {
      pfn = ttm_bo_io_mem_pfn(bo, page_offset);
    } else {
      const page = bo.ttm!.pages[page_offset] ?? null;
      if (page === null && i === 0) return VM_FAULT_OOM;
      else if (page === null) break;
      pfn = page;
    }
    if (since(5, 14)) ret = yield* vmf_insert_pfn_prot(vma, address, pfn, prot);
    else ret = yield* vmf_insert_mixed(vma, address, __pfn_to_pfn_t(pfn, PFN_DEV));
    /* Never error on prefaulted PTEs */
    if (ret & VM_FAULT_ERROR) {
      if (i === 0) return VM_FAULT_NOPAGE;
      else break;
    }
    address += PAGE_SIZE;
    if (++page_offset >= page_last) break;
  }
  return ret;
}

/**
 * ttm_bo_vm_fault(vmf): reserve, fault the placement in, unreserve.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_vm_fault (all versions)
 * Locking: mmap_lock held for read (dropped when VM_FAULT_RETRY is returned).
 * Return: a vm_fault_t.
 */
export function* ttm_bo_vm_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const bo = vma.vm_private_data as ttm_buffer_object;
  let ret = yield* ttm_bo_vm_reserve(bo, vmf);
  if (ret) return ret;
  const prot = vma.vm_page_prot;
  /* drm_dev_enter always succeeds in the model (no unplug dummy page). */
  ret = yield* ttm_bo_vm_fault_reserved(vmf, prot, TTM_BO_VM_NUM_PREFAULT);
  if (ret === VM_FAULT_RETRY && !(vmf.flags & FAULT_FLAG_RETRY_NOWAIT)) return ret;
  yield* dma_resv_unlock(bo.base.resv);
  return ret;
}

/**
 * ttm_bo_vm_open(vma): a copied/split VMA takes a BO reference; WARN if the VMA's file does
 * not map through the device's address space.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_vm_open (all versions)
 */
export function ttm_bo_vm_open(vma: vm_area_struct): void {
  const bo = vma.vm_private_data as ttm_buffer_object;
  WARN_ON(bo.bdev.dev_mapping !== vma.vm_file?.f_mapping);
  ttm_bo_get(bo);
}

/**
 * ttm_bo_vm_close(vma): drops the VMA's BO reference.
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_vm_close (all versions)
 */
export function ttm_bo_vm_close(vma: vm_area_struct): void {
  const bo = vma.vm_private_data as ttm_buffer_object;
  ttm_bo_put(bo);
  vma.vm_private_data = null;
}

/** ttm_bo_vm_ops (.access left out). */
export const ttm_bo_vm_ops: vm_operations_struct = {
  name: 'ttm_bo_vm_ops',
  fault: ttm_bo_vm_fault,
  open: ttm_bo_vm_open,
  close: ttm_bo_vm_close,
};

/**
 * ttm_bo_mmap_obj(vma, bo): sets a VMA up to map bo: COW mappings -EINVAL (v5.14+);
 * a BO reference moves to vm_private_data; vm_ops = ttm_bo_vm_ops unless the driver set
 * its own; flags PFNMAP|IO|DONTEXPAND|DONTDUMP (MIXEDMAP instead of PFNMAP before v5.14).
 * @kernel drivers/gpu/drm/ttm/ttm_bo_vm.c:ttm_bo_mmap_obj (v5.14+, f91142c62161; the
 *   same body as ttm_bo_mmap_vma_setup before)
 * Locking: mmap_lock held for write.
 * Return: 0 or -EINVAL.
 */
export function ttm_bo_mmap_obj(vma: vm_area_struct, bo: ttm_buffer_object): number {
  /* Enforce no COW since would have really strange behavior with it. */
  if (since(5, 14) && is_cow_mapping(vma.vm_flags)) return -EINVAL;
  ttm_bo_get(bo);
  /* Drivers may want to override the vm_ops field. */
  if (!vma.vm_ops) vma.vm_ops = ttm_bo_vm_ops;
  /* Note: We're transferring the bo reference to vma->vm_private_data here. */
  vma.vm_private_data = bo;
  if (since(5, 14)) vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP);
  else vm_flags_set(vma, VM_MIXEDMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP);
  return 0;
}
