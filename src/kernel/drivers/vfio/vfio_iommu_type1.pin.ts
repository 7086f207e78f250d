/**
 * VFIO type1 IOMMU backend, part 1: turning a user virtual range into pfns — the pins of
 * page-backed memory (pin_user_pages_remote with FOLL_LONGTERM), the VM_PFNMAP path
 * (follow_fault_pfn in each era) and the locked_vm accounting (R-VT1-2, R-VT1-3,
 * R-VT1-4), with the 2021 RFC's device lookup for VM_PFNMAP VMAs (R-RFC-1).
 *
 * Eras of vaddr_get_pfn(s) / follow_fault_pfn modelled here:
 * - 5.7: vaddr_get_pfn pins one page; a VM_PFNMAP VMA is read with follow_pfn() only
 *   (5cbf3264bc71 "vfio/type1: Fix VA->PA translation for PFNMAP VMAs in vaddr_get_pfn()");
 *   a missing PTE leaves the GUP error (-EFAULT).
 * - 5.8 (41311242221e "vfio/type1: Support faulting PFNMAP vmas"): follow_fault_pfn:
 *   follow_pfn, else fixup_user_fault(FAULT_FLAG_REMOTE [|WRITE]); `unlocked` => -EAGAIN
 *   and the VMA is looked up again.
 * - 5.12 (07956b6269d3 "vfio/type1: Use follow_pte()"): follow_pte + the write check;
 *   4d83de6da265 "vfio/type1: Batch page pinning": vaddr_get_pfns pins up to 512 pages.
 * - 6.10 (29ae7d96d166): follow_pte(vma, ...).
 * - 6.12 (6da8e9634bb7 "mm: new follow_pfnmap API"; vfio converted in the same series):
 *   follow_pfnmap_start/_end.
 * - 6.15 (afe84f3b7a26 "vfio/type1: Catch zero from pin_user_pages_remote()",
 *   0fd06844de5d "vfio/type1: Use mapping page mask for pfnmaps"): 0 pinned is -EFAULT;
 *   a reserved pfnmap pfn counts to the end of its leaf (addr_mask).
 *
 * pfnsan: the pfn a lookup returns is leased by the lookup itself (follow_pfn: nothing
 * keeps it; follow_pte: until pte_unmap_unlock; follow_pfnmap: until follow_pfnmap_end).
 * iommu_map() consumes it (pfnsan_use in the IOMMU core), so the unsafe path is reported
 * there. In the RFC variant the device reference guards it: v6.12+ guards the
 * follow_pfnmap lease ('driver') before follow_pfnmap_end; before v6.12 the lookup's
 * lease is not reachable here (follow_pte attaches it to the PTE lock), so a new
 * 'driver' lease is taken after the device is resolved.
 *
 * @kernel drivers/vfio/vfio_iommu_type1.c (v5.7–v6.18); mm/util.c:__account_locked_vm
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { WARN_ON_ONCE } from '../../kernel/panic.js';
import { pr_debug, pr_warn } from '../../kernel/printk.js';
import { EAGAIN, EFAULT, ENODEV, ENOMEM, ESRCH } from '../../include/linux/errno.js';
import type { mm_struct, page, vm_area_struct } from '../../include/linux/mm_types.js';
import { FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE } from '../../include/linux/mm_types.js';
import { FOLL_LONGTERM, FOLL_WRITE, VM_PFNMAP } from '../../include/linux/mm.js';
import type { task_struct } from '../../include/linux/sched.js';
import { get_current } from '../../include/linux/sched.js';
import { PageReserved } from '../../include/linux/page-flags.js';
import { ptep_get } from '../../include/linux/pgtable.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../../include/linux/mmap_lock.js';
import {
  PAGE_SHIFT,
  PAGE_SIZE,
  pte_pfn,
  pte_write,
} from '../../arch/x86/include/asm/pgtable_types.js';
import { pte_unmap_unlock } from '../../include/linux/pgtable.js';
import { pfn_valid } from '../../mm/sparse.js';
import { find_vma_intersection, vma_lookup } from '../../mm/vma.js';
import {
  fixup_user_fault,
  pin_user_pages_remote,
  unpin_user_pages_dirty_lock,
  type bool_ptr,
  type page_array,
} from '../../mm/gup.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../../mm/memory.pfnmap.js';
import { mmget_not_zero } from '../../kernel/fork.access.js';
import { mmput } from '../../kernel/fork.js';
import {
  pfnsan_lease_get,
  pfnsan_lease_guard,
  pfnsan_lease_of,
  type pfnsan_lease,
} from '../../mm/pfnsan/pfnsan.js';
import { IOMMU_WRITE } from '../iommu/iommu.js';
import type { vfio_device } from './vfio.js';

/* ------------------------------------------------------------------------------------ */
/* Module parameters                                                                     */
/* ------------------------------------------------------------------------------------ */

/** U16_MAX: dma_entry_limit's default ("Maximum number of user DMA mappings per container (65535)."). */
export const U16_MAX = 65535;

/** The module parameters of vfio_iommu_type1 (per kernel), and the RFC switch. */
export interface vfio_iommu_type1_params {
  /** dma_entry_limit (uint, 0644, default U16_MAX; v5.1+, 492855939bdb). */
  dma_entry_limit: number;
  /** disable_hugepages (bool, 0644, default false). */
  disable_hugepages: boolean;
  /** allow_unsafe_interrupts (bool, 0644, default false). */
  allow_unsafe_interrupts: boolean;
  /** Model: the 2021 RFC "vfio/type1: Register device notifier" is applied (never merged). */
  device_notifier_rfc: boolean;
  /** strict_mmio_maps (RFC only; bool, 0644, default true). */
  strict_mmio_maps: boolean;
}

/** The per-kernel module parameters. */
export function type1_params(): vfio_iommu_type1_params {
  const k = currentKernel();
  return ((k.sub.vfio_iommu_type1 as vfio_iommu_type1_params | undefined) ??= {
    dma_entry_limit: U16_MAX,
    disable_hugepages: false,
    allow_unsafe_interrupts: false,
    device_notifier_rfc: false,
    strict_mmio_maps: true,
  });
}

/** `vfio_iommu_type1.dma_entry_limit=` (takes effect for containers opened afterwards). */
export function set_dma_entry_limit(n: number): void {
  type1_params().dma_entry_limit = n >>> 0;
}

/** `vfio_iommu_type1.disable_hugepages=`. */
export function set_disable_hugepages(v: boolean): void {
  type1_params().disable_hugepages = v;
}

/** `vfio_iommu_type1.allow_unsafe_interrupts=`. */
export function set_allow_unsafe_interrupts(v: boolean): void {
  type1_params().allow_unsafe_interrupts = v;
}

/**
 * Model switch: apply the 2021 RFC "vfio/type1: Register device notifier" (Alex
 * Williamson, RFC PATCH 10/10, Feb 2021; never merged). Off by default. Turning it on
 * resets `strict_mmio_maps` to its default, true.
 */
export function vfio_type1_device_notifier_rfc(enabled: boolean): void {
  const p = type1_params();
  p.device_notifier_rfc = enabled;
  p.strict_mmio_maps = true;
}

/**
 * `vfio_iommu_type1.strict_mmio_maps=` of the RFC (bool, 0644, default true, "Restrict to
 * safe DMA mappings of device memory (true)."). The parameter exists only with the RFC.
 */
export function set_strict_mmio_maps(v: boolean): void {
  const p = type1_params();
  if (!p.device_notifier_rfc)
    throw new Error(
      'vfio_iommu_type1.strict_mmio_maps exists only with the 2021 RFC "vfio/type1: Register device notifier"; call vfio_type1_device_notifier_rfc(true) first',
    );
  p.strict_mmio_maps = v;
}

/** Whether the RFC is applied and strict_mmio_maps is set. */
export function strict_mmio_maps(): boolean {
  const p = type1_params();
  return p.device_notifier_rfc && p.strict_mmio_maps;
}

/* ------------------------------------------------------------------------------------ */
/* Types                                                                                 */
/* ------------------------------------------------------------------------------------ */

/** struct vfio_pfn: a pfn pinned through the external (mdev) interface. */
export interface vfio_pfn {
  readonly iova: number;
  readonly pfn: number;
  ref_count: number;
}

/** The RFC's struct pfnmap_obj: a device reference and notifier held for one vfio_dma. */
export interface pfnmap_obj {
  readonly nb: import('./vfio.js').notifier_block;
  readonly iommu: object;
  readonly device: vfio_device;
  /** Model: the pfnsan leases the device reference guards. */
  readonly leases: pfnsan_lease[];
}

/**
 * struct vfio_dma: one user mapping (MAP_DMA), kept in the container's ordered list.
 * @kernel drivers/vfio/vfio_iommu_type1.c:struct vfio_dma (v5.7–v6.18; vaddr_invalid
 *   v5.12+, mm and locked_vm v6.2+ 046eca5018f8/18e292705ba2)
 */
export class vfio_dma {
  iova = 0;
  vaddr = 0;
  size = 0;
  prot = 0;
  iommu_mapped = false;
  lock_cap = false;
  vaddr_invalid = false;
  task!: task_struct;
  /** dma->mm (v6.2+); the model keeps it in all versions (before: dma->task->mm). */
  mm!: mm_struct;
  /** Ex-user (external) pinned pfn list, by iova. */
  readonly pfn_list = new Map<number, vfio_pfn>();
  locked_vm = 0;
  /** Model glue: the container (struct vfio_iommu) the mapping belongs to. */
  owner: object | null = null;
  /** RFC: the device backing this mapping's VM_PFNMAP pfns. */
  pfnmap: pfnmap_obj | null = null;
}

/** struct vfio_batch: pages pinned ahead, as pfns. */
export interface vfio_batch {
  pages: number[];
  capacity: number;
  size: number;
  offset: number;
}

/** VFIO_BATCH_MAX_CAPACITY = PAGE_SIZE / sizeof(struct page *). */
export const VFIO_BATCH_MAX_CAPACITY = PAGE_SIZE / 8;

/**
 * vfio_batch_init(batch) / vfio_batch_init_single: a batch of 512 pages, or 1 with
 * disable_hugepages (v5.12+, 4b6c33b32296). Before v5.12 pages were pinned one at a
 * time, which the model runs as a batch of one.
 * @kernel drivers/vfio/vfio_iommu_type1.c:__vfio_batch_init (v5.12+)
 */
export function vfio_batch_init(single = false): vfio_batch {
  const one = single || !since(5, 12) || type1_params().disable_hugepages;
  return { pages: [], capacity: one ? 1 : VFIO_BATCH_MAX_CAPACITY, size: 0, offset: 0 };
}

/* ------------------------------------------------------------------------------------ */
/* Accounting                                                                            */
/* ------------------------------------------------------------------------------------ */

/**
 * __account_locked_vm(mm, pages, inc, task, bypass_rlim): adds to or subtracts from
 * mm->locked_vm, refusing an increase past RLIMIT_MEMLOCK unless bypass_rlim.
 * @kernel mm/util.c:__account_locked_vm (v5.3+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -ENOMEM.
 */
export function __account_locked_vm(
  mm: mm_struct,
  pages: number,
  inc: boolean,
  task: task_struct,
  bypass_rlim: boolean,
): number {
  let ret = 0;
  const locked_vm = mm.locked_vm;
  if (inc) {
    if (!bypass_rlim) {
      const limit = Math.floor(task.rlimit_memlock / PAGE_SIZE);
      if (locked_vm + pages > limit) ret = -ENOMEM;
    }
    if (!ret) mm.locked_vm = locked_vm + pages;
  } else {
    WARN_ON_ONCE(pages > locked_vm, '__account_locked_vm');
    mm.locked_vm = locked_vm - pages;
  }
  pr_debug(
    `__account_locked_vm: [${task.pid}] caller vfio_lock_acct ${inc ? '+' : '-'}${(pages * PAGE_SIZE) / 1024} ${mm.locked_vm * PAGE_SIZE}/${task.rlimit_memlock}${ret ? ' - exceeded' : ''}`,
  );
  return ret;
}

/**
 * vfio_lock_acct(dma, npage, async): charges npage pages (negative: releases) to the
 * mapping's mm, under its mmap_lock for write. v6.2 (18e292705ba2 "vfio/type1: track
 * locked_vm per dma", 046eca5018f8 "vfio/type1: prevent underflow of locked_vm via
 * exec()") uses dma->mm and keeps dma->locked_vm; before, dma->task->mm.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_lock_acct, mm_lock_acct (v5.7–v6.18)
 * Locking: takes mmap_lock of the mm for write.
 * Return: 0, -ENOMEM (RLIMIT_MEMLOCK), -ESRCH (the process exited).
 * Left out: mmap_write_lock_killable's -EINTR.
 */
export function* vfio_lock_acct(dma: vfio_dma, npage: number, async: boolean): Op<number> {
  if (!npage) return 0;
  let mm: mm_struct | null;
  if (since(6, 2)) {
    mm = dma.mm;
    if (async && !(yield* mmget_not_zero(mm))) return -ESRCH;
  } else {
    mm = dma.task.mm;
    if (!mm) return -ESRCH;
    if (async) {
      if (!(yield* mmget_not_zero(mm))) return -ESRCH;
    }
  }
  yield* mmap_write_lock(mm);
  const ret = __account_locked_vm(mm, Math.abs(npage), npage > 0, dma.task, dma.lock_cap);
  if (!ret && since(6, 2)) dma.locked_vm += npage;
  yield* mmap_write_unlock(mm);
  if (async) yield* mmput(mm);
  return ret;
}

/* ------------------------------------------------------------------------------------ */
/* pfns                                                                                  */
/* ------------------------------------------------------------------------------------ */

/**
 * is_invalid_reserved_pfn(pfn): a pfn without struct page, or a PageReserved page: not
 * pinned, not accounted.
 * @kernel drivers/vfio/vfio_iommu_type1.c:is_invalid_reserved_pfn (v5.7–v6.18; the
 *   compound-head check of older versions gives the same answer)
 */
export function is_invalid_reserved_pfn(pfn: number): boolean {
  if (pfn_valid(pfn)) return PageReserved(pfn as page);
  return true;
}

/**
 * put_pfn(pfn, prot): unpins a page-backed pfn, dirtying it if the device could write.
 * @kernel drivers/vfio/vfio_iommu_type1.c:put_pfn (v5.7–v6.18)
 * Return: 1 if a page was unpinned, 0 for an invalid or reserved pfn.
 */
export function* put_pfn(pfn: number, prot: number): Op<number> {
  if (!is_invalid_reserved_pfn(pfn)) {
    yield* unpin_user_pages_dirty_lock([pfn as page], 1, (prot & IOMMU_WRITE) !== 0);
    return 1;
  }
  return 0;
}

/**
 * vfio_batch_unpin(batch, dma): unpins the pages left in the batch.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_batch_unpin (v5.12+)
 */
export function* vfio_batch_unpin(batch: vfio_batch, dma: vfio_dma): Op<void> {
  while (batch.size) {
    const pfn = batch.pages[batch.offset]!;
    yield* put_pfn(pfn, dma.prot);
    batch.offset++;
    batch.size--;
  }
}

/** The RFC hook vaddr_get_pfns calls for a VM_PFNMAP VMA (set by vfio_iommu_type1.ts). */
export interface pfnmap_hook {
  /** The device behind the VMA (vfio_device_get_from_vma): a reference, or -errno. */
  lookup(vma: vm_area_struct): vfio_device | number;
  /** Drops a reference lookup() took. */
  put(device: vfio_device): void;
  /** The RFC's registration for dma (dma->pfnmap); -errno if it failed. */
  attach(dma: vfio_dma, device: vfio_device): Op<number>;
}

let rfcHook: pfnmap_hook | null = null;
/** Model glue: the RFC's device handling, installed by vfio_iommu_type1.ts. */
export function set_pfnmap_hook(h: pfnmap_hook): void {
  rfcHook = h;
}

/** What follow_fault_pfn hands back. */
interface fault_pfn {
  ret: number;
  pfn: number;
  addr_mask: number;
}

/**
 * follow_fault_pfn(vma, mm, vaddr, write_fault): the pfn mapped at vaddr of a VM_PFNMAP
 * VMA, faulting it in through the VMA's fault handler when it is not mapped yet.
 * 1. lookup (5.8–5.11 follow_pfn; 5.12–6.11 follow_pte; 6.12+ follow_pfnmap_start);
 * 2. failed: fixup_user_fault(mm, vaddr, FAULT_FLAG_REMOTE | (write ? FAULT_FLAG_WRITE :
 *    0), &unlocked); mmap_lock was dropped => -EAGAIN (the caller looks the VMA up again);
 *    error => returned; lookup again, error => returned;
 * 3. 5.12+: write_fault on a read-only entry => -EFAULT;
 * 4. copy pfn (and addr_mask, 6.15+), drop the PTE lock: nothing keeps the pfn after this.
 * @kernel drivers/vfio/vfio_iommu_type1.c:follow_fault_pfn (v5.8+, 41311242221e; follow_pte
 *   + write check v5.12 07956b6269d3; follow_pfnmap v6.12; addr_mask v6.15 0fd06844de5d)
 * Locking: mmap_lock held for read (dropped and retaken if -EAGAIN).
 * Return: { ret: 0 or -errno, pfn, addr_mask }.
 */
export function* follow_fault_pfn(
  vma: vm_area_struct,
  mm: mm_struct,
  vaddr: number,
  write_fault: boolean,
  guard: ((lease: pfnsan_lease) => void) | null,
): Op<fault_pfn> {
  const out: fault_pfn = { ret: 0, pfn: 0, addr_mask: -PAGE_SIZE };
  const fault = function* (): Op<number | 'again'> {
    const unlocked: bool_ptr = { value: false };
    const r = yield* fixup_user_fault(
      mm,
      vaddr,
      FAULT_FLAG_REMOTE | (write_fault ? FAULT_FLAG_WRITE : 0),
      unlocked,
    );
    if (unlocked.value) return 'again';
    return r;
  };
  if (since(6, 12)) {
    const args = follow_pfnmap_args_init(vma, vaddr);
    let ret = yield* follow_pfnmap_start(args);
    if (ret) {
      const f = yield* fault();
      if (f === 'again') return { ...out, ret: -EAGAIN };
      if (f) return { ...out, ret: f };
      ret = yield* follow_pfnmap_start(args);
      if (ret) return { ...out, ret };
    }
    if (write_fault && !args.writable) {
      out.ret = -EFAULT;
    } else {
      out.pfn = args.pfn;
      /* 0fd06844de5d (v6.15): *addr_mask = args.addr_mask */
      if (since(6, 15)) out.addr_mask = args.addr_mask!;
      const lease = pfnsan_lease_of(args);
      if (guard && lease) guard(lease);
    }
    yield* follow_pfnmap_end(args);
    return out;
  }
  if (since(5, 12)) {
    const look = () => follow_pte(since(6, 10) ? vma : vma.vm_mm, vaddr);
    let r = yield* look();
    if (r.ret) {
      const f = yield* fault();
      if (f === 'again') return { ...out, ret: -EAGAIN };
      if (f) return { ...out, ret: f };
      r = yield* look();
      if (r.ret) return { ...out, ret: r.ret };
    }
    const pte = ptep_get(r.ptep!);
    if (write_fault && !pte_write(pte)) out.ret = -EFAULT;
    else out.pfn = pte_pfn(pte);
    yield* pte_unmap_unlock(r.ptep!, r.ptl!);
    return out;
  }
  // 5.8–5.11: follow_pfn, no write check.
  let r = yield* follow_pfn(vma, vaddr);
  if (r.ret) {
    const f = yield* fault();
    if (f === 'again') return { ...out, ret: -EAGAIN };
    if (f) return { ...out, ret: f };
    r = yield* follow_pfn(vma, vaddr);
  }
  return { ...out, ret: r.ret, pfn: r.pfn };
}

/** vaddr_get_pfns' result: count (> 0) or -errno, and the first pfn. */
export interface get_pfns {
  ret: number;
  pfn: number;
}

/**
 * vaddr_get_pfns(mm, vaddr, npages, prot, batch) (vaddr_get_pfn before v5.12): the pfns
 * backing [vaddr, vaddr + npages pages):
 * 1. mmap_read_lock; pin_user_pages_remote(mm, vaddr, n, FOLL_LONGTERM [| FOLL_WRITE])
 *    (n = min(npages, batch capacity)); > 0 => the pages go into the batch;
 *    0 => -EFAULT (v6.15+, afe84f3b7a26);
 * 2. else the VMA at vaddr (find_vma_intersection; vma_lookup from v5.14); not
 *    VM_PFNMAP (VM_IO alone is not enough) => the pin's error;
 * 3. VM_PFNMAP: ≤5.7 follow_pfn (failure keeps the pin's error), else follow_fault_pfn,
 *    -EAGAIN => look the VMA up again;
 * 4. the pfn has a refcounted struct page (not is_invalid_reserved_pfn) => -EFAULT; else
 *    count 1, or (v6.15+) up to the end of the leaf per addr_mask, and the batch stays
 *    empty.
 * RFC variant: the first VM_PFNMAP pfn of a vfio_dma resolves the VMA to its vfio device
 * (vfio_device_get_from_vma); no device => the error (-ENODEV) with strict_mmio_maps, the
 * old behaviour without; then a device reference and notifier are held for the dma.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vaddr_get_pfns (v5.12+), vaddr_get_pfn (≤v5.11)
 * Locking: takes and drops mmap_lock for read.
 * Return: { ret: pages (> 0) or -errno, pfn: the first pfn }.
 * Left out: v6.0–v6.5's unpin of zero pages in the batch (873aefb376bb); untagged_addr.
 */
export function* vaddr_get_pfns(
  mm: mm_struct,
  vaddr: number,
  npages: number,
  prot: number,
  batch: vfio_batch,
  dma: vfio_dma | null,
): Op<get_pfns> {
  const pin_pages = Math.min(npages, batch.capacity);
  let flags = 0;
  if (prot & IOMMU_WRITE) flags |= FOLL_WRITE;
  yield* mmap_read_lock(mm);
  const pages: page_array = new Array<page | null>(pin_pages).fill(null);
  let ret = yield* pin_user_pages_remote(mm, vaddr, pin_pages, flags | FOLL_LONGTERM, pages, null);
  let pfn = 0;
  done: {
    if (ret > 0) {
      pfn = pages[0]!;
      batch.pages = pages.slice(0, ret).map((p) => p!);
      batch.size = ret;
      batch.offset = 0;
      break done;
    } else if (!ret && since(6, 15)) {
      /* afe84f3b7a26 "vfio/type1: Catch zero from pin_user_pages_remote()" */
      ret = -EFAULT;
    }
    for (;;) {
      /* retry: */
      const vma = since(5, 14)
        ? vma_lookup(mm, vaddr)
        : find_vma_intersection(mm, vaddr, vaddr + 1);
      if (!vma || !(vma.vm_flags & VM_PFNMAP)) break done;
      if (!since(5, 8)) {
        // 5.7: follow_pfn() only; success on a reserved pfn returns it, anything else
        // keeps the GUP error.
        const r = yield* follow_pfn(vma, vaddr);
        if (!r.ret && is_invalid_reserved_pfn(r.pfn)) {
          pfn = r.pfn;
          ret = yield* pfnmap_rfc(dma, vma, pfn, 1, null);
          if (ret === 0) ret = 1;
        }
        break done;
      }
      const rfc = rfcHook && type1_params().device_notifier_rfc && dma ? dma : null;
      // RFC: the device is resolved before the lookup's window ends so the pfn's lease can
      // be guarded while it is still valid (the patch resolves it right after; the errors
      // and their order are the same).
      let device: vfio_device | number | null = null;
      if (rfc && !rfc.pfnmap) device = rfcHook!.lookup(vma);
      const guardDev = rfc
        ? (rfc.pfnmap?.device ?? (typeof device === 'number' ? null : device))
        : null;
      const guarded: pfnsan_lease[] = [];
      const guard =
        guardDev && since(6, 12)
          ? (l: pfnsan_lease) => {
              pfnsan_lease_guard(l, { kind: 'driver', driver: `vfio device ${guardDev.dev.name}` });
              guarded.push(l);
            }
          : null;
      const r = yield* follow_fault_pfn(vma, mm, vaddr, (prot & IOMMU_WRITE) !== 0, guard);
      if (r.ret === -EAGAIN) {
        if (device && typeof device !== 'number') rfcHook!.put(device);
        continue;
      }
      ret = r.ret;
      if (!ret) {
        pfn = r.pfn;
        if (is_invalid_reserved_pfn(pfn)) {
          if (since(6, 15)) {
            // epfn = (*pfn | (~addr_mask >> PAGE_SHIFT)) + 1
            const leaf = -r.addr_mask / PAGE_SIZE;
            const epfn = pfn - (pfn % leaf) + leaf;
            ret = Math.min(npages, epfn - pfn);
          } else {
            ret = 1;
          }
          if (rfc) {
            const e = yield* pfnmap_rfc_attach(rfc, device, vma, pfn, ret, guarded);
            device = null;
            if (e) ret = e;
          }
        } else {
          ret = -EFAULT;
        }
      }
      if (device && typeof device !== 'number') rfcHook!.put(device);
      break done;
    }
  }
  yield* mmap_read_unlock(mm);
  return { ret, pfn };
}

/** 5.7 form of the RFC step (no lease window to guard: follow_pfn's pfn has none). */
function* pfnmap_rfc(
  dma: vfio_dma | null,
  vma: vm_area_struct,
  pfn: number,
  n: number,
  _unused: null,
): Op<number> {
  if (!dma || !rfcHook || !type1_params().device_notifier_rfc || dma.pfnmap) {
    if (dma?.pfnmap) dma.pfnmap.leases.push(driverLease(pfn, n, dma.pfnmap.device));
    return 0;
  }
  return yield* pfnmap_rfc_attach(dma, rfcHook.lookup(vma), vma, pfn, n, []);
}

function driverLease(pfn: number, n: number, device: vfio_device): pfnsan_lease {
  return pfnsan_lease_get(pfn, n, 'vfio_device_get_from_vma', {
    kind: 'driver',
    driver: `vfio device ${device.dev.name}`,
  });
}

/**
 * The RFC's block in vaddr_get_pfn: first VM_PFNMAP pfn of a dma => device lookup and
 * notifier registration; later pfns share the dma's pfnmap object.
 * Return: 0, or -errno (strict: the lookup's error; a notifier failure only when strict).
 */
function* pfnmap_rfc_attach(
  dma: vfio_dma,
  looked: vfio_device | number | null,
  _vma: vm_area_struct,
  pfn: number,
  n: number,
  guarded: pfnsan_lease[],
): Op<number> {
  if (dma.pfnmap) {
    if (guarded.length) dma.pfnmap.leases.push(...guarded);
    else dma.pfnmap.leases.push(driverLease(pfn, n, dma.pfnmap.device));
    if (looked !== null && typeof looked !== 'number') rfcHook!.put(looked);
    return 0;
  }
  if (looked === null || typeof looked === 'number') {
    // IS_ERR(device): strict => PTR_ERR(device), else keep the old behaviour.
    return strict_mmio_maps() ? (looked ?? -ENODEV) : 0;
  }
  const ret = yield* rfcHook!.attach(dma, looked);
  if (ret) {
    rfcHook!.put(looked);
    return strict_mmio_maps() ? ret : 0;
  }
  if (guarded.length) dma.pfnmap!.leases.push(...guarded);
  else dma.pfnmap!.leases.push(driverLease(pfn, n, looked));
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Pinning a chunk                                                                       */
/* ------------------------------------------------------------------------------------ */

/** What vfio_pin_pages_remote needs of the container: the external pin lookup. */
export type find_vpfn = (dma: vfio_dma, iova: number) => vfio_pfn | null;

/** vfio_find_vpfn(dma, iova): the externally pinned pfn at iova. */
export function vfio_find_vpfn(dma: vfio_dma, iova: number): vfio_pfn | null {
  return dma.pfn_list.get(iova) ?? null;
}

/**
 * vfio_pin_pages_remote(dma, vaddr, npage, limit, batch): pins (or, for VM_PFNMAP,
 * looks up) the longest run of contiguous pfns from vaddr of one kind (reserved or not)
 * and charges the non-reserved pages not already pinned externally to locked_vm
 * (R-VT1-4):
 * - a page that would take locked_vm + pending over `limit` (RLIMIT_MEMLOCK in pages)
 *   without CAP_IPC_LOCK: pr_warn "vfio_pin_pages_remote: RLIMIT_MEMLOCK (<bytes>)
 *   exceeded", -ENOMEM, everything of this call unpinned;
 * - a VM_PFNMAP run continues only while the first pfn is reserved and the next one
 *   follows it.
 * Pages pinned beyond the run stay in the batch for the next call.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_pin_pages_remote (v5.7–v6.18; batch v5.12
 *   4d83de6da265; pfnmap runs v6.15 0fd06844de5d; folio batching of the accounting
 *   v6.18 492d1e9f0df7 gives the same result)
 * Locking: iommu->lock held; takes mmap_lock (read, then write to account).
 * Return: { ret: pages in the run (> 0) or -errno, pfn_base }.
 */
export function* vfio_pin_pages_remote(
  dma: vfio_dma,
  vaddr: number,
  npage: number,
  limit: number,
  batch: vfio_batch,
): Op<{ ret: number; pfn_base: number }> {
  const mm = get_current().mm;
  /* This code path is only user initiated */
  if (!mm) return { ret: -ENODEV, pfn_base: 0 };
  let pfn = 0;
  let pinned = 0;
  let lock_acct = 0;
  let rsvd = false;
  let ret: number;
  let iova = vaddr - dma.vaddr + dma.iova;
  let pfn_base: number;
  const p = type1_params();
  if (batch.size) {
    /* Leftover pages in batch from an earlier call. */
    pfn_base = batch.pages[batch.offset]!;
    pfn = pfn_base;
    rsvd = is_invalid_reserved_pfn(pfn_base);
  } else {
    pfn_base = 0;
  }
  if (since(6, 15) && p.disable_hugepages) npage = 1;

  outer: {
    unpin_out: {
      while (npage) {
        if (!batch.size) {
          /* Empty batch, so refill it. */
          const r = yield* vaddr_get_pfns(mm, vaddr, npage, dma.prot, batch, dma);
          if (r.ret < 0) {
            ret = r.ret;
            break unpin_out;
          }
          pfn = r.pfn;
          if (!pfn_base) {
            pfn_base = pfn;
            rsvd = is_invalid_reserved_pfn(pfn_base);
          }
          if (!batch.size) {
            if (since(6, 15)) {
              /* Handle pfnmap */
              if (pfn !== pfn_base + pinned || !rsvd) break outer;
              pinned += r.ret;
              npage -= r.ret;
              vaddr += PAGE_SIZE * r.ret;
              iova += PAGE_SIZE * r.ret;
              continue;
            }
            // ≤6.14: a VM_PFNMAP pfn takes the batch's one slot (batch->size = ret = 1);
            // its "page" is never dereferenced.
            batch.pages = [pfn];
            batch.size = 1;
            batch.offset = 0;
          }
        }
        for (;;) {
          if (pfn !== pfn_base + pinned || rsvd !== is_invalid_reserved_pfn(pfn)) break outer;
          /* Reserved pages aren't counted against the user, externally pinned pages are
           * already counted against the user. */
          if (!rsvd && !vfio_find_vpfn(dma, iova)) {
            if (!dma.lock_cap && mm.locked_vm + lock_acct + 1 > limit) {
              pr_warn(`vfio_pin_pages_remote: RLIMIT_MEMLOCK (${limit * PAGE_SIZE}) exceeded`);
              ret = -ENOMEM;
              break unpin_out;
            }
            lock_acct++;
          }
          pinned++;
          npage--;
          vaddr += PAGE_SIZE;
          iova += PAGE_SIZE;
          batch.offset++;
          batch.size--;
          if (!batch.size) break;
          pfn = batch.pages[batch.offset]!;
        }
        if (!since(6, 15) && p.disable_hugepages) break;
      }
      break outer;
    }
    // unpin_out (error):
    return yield* pin_unwind(dma, batch, pinned, rsvd, pfn_base, pfn, ret);
  }
  // out:
  ret = yield* vfio_lock_acct(dma, lock_acct, false);
  return yield* pin_unwind(dma, batch, pinned, rsvd, pfn_base, pfn, ret);
}

function* pin_unwind(
  dma: vfio_dma,
  batch: vfio_batch,
  pinned: number,
  rsvd: boolean,
  pfn_base: number,
  pfn: number,
  ret: number,
): Op<{ ret: number; pfn_base: number }> {
  if (since(5, 12) && !since(6, 15) && batch.size === 1 && !batch.offset) {
    /* May be a VM_PFNMAP pfn, which the batch can't remember. */
    yield* put_pfn(pfn, dma.prot);
    batch.size = 0;
  } else if (!since(5, 12) && batch.size) {
    // ≤5.11: a page that did not continue the run is put back at once.
    yield* vfio_batch_unpin(batch, dma);
  }
  if (ret < 0) {
    if (pinned && !rsvd) {
      for (let q = pfn_base; pinned; q++, pinned--) yield* put_pfn(q, dma.prot);
    }
    yield* vfio_batch_unpin(batch, dma);
    return { ret, pfn_base };
  }
  return { ret: pinned, pfn_base };
}

/**
 * vfio_unpin_pages_remote(dma, iova, pfn, npage, do_accounting): unpins npage pfns from
 * pfn (put_pfn: nothing for reserved ones) and, if asked, releases their locked_vm
 * except for pages still pinned externally.
 * @kernel drivers/vfio/vfio_iommu_type1.c:vfio_unpin_pages_remote (v5.7–v6.18; folio
 *   batching v6.18)
 * Return: pages unpinned.
 */
export function* vfio_unpin_pages_remote(
  dma: vfio_dma,
  iova: number,
  pfn: number,
  npage: number,
  do_accounting: boolean,
): Op<number> {
  let unlocked = 0;
  let locked = 0;
  for (let i = 0; i < npage; i++, iova += PAGE_SIZE) {
    if (yield* put_pfn(pfn++, dma.prot)) {
      unlocked++;
      if (vfio_find_vpfn(dma, iova)) locked++;
    }
  }
  if (do_accounting) yield* vfio_lock_acct(dma, locked - unlocked, true);
  return unlocked;
}

/** RLIMIT_MEMLOCK of current in pages (rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT). */
export function rlimit_memlock_pages(): number {
  const t = get_current();
  return t.rlimit_memlock === Infinity ? Infinity : Math.floor(t.rlimit_memlock / 2 ** PAGE_SHIFT);
}
