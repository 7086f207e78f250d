/**
 * Heterogeneous memory management's page-table snapshot (mm/hmm.c): hmm_range_fault()
 * fills an array of "hmm pfns" for a user range, faulting pages in where the caller asks
 * (HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE), without taking any reference or pin. The result
 * is valid only until the interval notifier's sequence moves: the caller must take its
 * own lock and check mmu_interval_read_retry() before using it (R-MMUN-3).
 *
 * Model encoding: an hmm pfn is `pfn * 16 + flags` (the kernel keeps the flags in the top
 * bits of an unsigned long): HMM_PFN_VALID 1, HMM_PFN_WRITE 2, HMM_PFN_ERROR 4. The
 * request flags share the VALID/WRITE bits as in the kernel.
 * Left out: device-private pages (dev_private_owner), hugetlb and huge PMD/PUD leaves
 * other than reading their pfn (hmm_pfn_to_map_order is 0), swap entries other than
 * faulting them in, HMM_PFN_DMA_MAPPED (v6.16), the timeout (callers retry on -EBUSY).
 *
 * @kernel mm/hmm.c:hmm_range_fault, hmm_vma_walk_test, hmm_vma_fault,
 *   hmm_pte_need_fault, hmm_vma_handle_pte (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import { EBUSY, EFAULT, EPERM } from '../include/linux/errno.js';
import { VM_FAULT_ERROR, VM_IO, VM_PFNMAP, VM_READ, VM_WRITE } from '../include/linux/mm.js';
import { FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, type mm_struct } from '../include/linux/mm_types.js';
import {
  PAGE_SIZE,
  pte_pfn,
  pte_present,
  pte_write,
} from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get_lockless, walkToLeaf } from '../include/linux/pgtable.js';
import { lockdep_assert_held } from '../include/linux/spinlock.js';
import { handle_mm_fault } from './memory.fault.js';
import { vma_lookup } from './vma.js';
import { mmu_interval_check_retry, type mmu_interval_notifier } from './mmu_notifier.js';

/** enum hmm_pfn_flags (model encoding, see the file comment). */
export const HMM_PFN_VALID = 1;
export const HMM_PFN_WRITE = 2;
export const HMM_PFN_ERROR = 4;
export const HMM_PFN_FLAGS = 16;
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;

/** struct hmm_range. @kernel include/linux/hmm.h:struct hmm_range (v5.7+) */
export interface hmm_range {
  notifier: mmu_interval_notifier;
  notifier_seq: number;
  start: number;
  end: number;
  /** The output array, and where this range starts in it (range.hmm_pfns = &list[off]). */
  hmm_pfns: number[];
  hmm_pfns_off: number;
  default_flags: number;
  pfn_flags_mask: number;
}

/** hmm_pfn_to_page(hmm_pfn): the page (its pfn in the model). @kernel include/linux/hmm.h:hmm_pfn_to_page (v5.7+) */
export function hmm_pfn_to_page(hmm_pfn: number): number {
  return Math.floor(hmm_pfn / HMM_PFN_FLAGS);
}

/** hmm_pfn_to_map_order(hmm_pfn): 0 in the model (no huge leaves reported). */
export function hmm_pfn_to_map_order(_hmm_pfn: number): number {
  return 0;
}

/**
 * hmm_range_fault(range): snapshots (and with REQ_FAULT, faults in) the range's pages.
 * Per page: no VMA, or a VM_IO|VM_PFNMAP VMA or one without VM_READ where a fault is
 * needed ⇒ -EFAULT; a write fault on a VMA without VM_WRITE ⇒ -EPERM; a needed fault is
 * taken with handle_mm_fault(FAULT_FLAG_REMOTE [|WRITE]) (an error ⇒ -EFAULT) and the
 * walk restarts from that page; -EBUSY when the notifier's sequence moved since
 * range.notifier_seq (checked before every walk).
 * @kernel mm/hmm.c:hmm_range_fault (v5.7+; the hmm_pfns array form from v5.8)
 * Locking: mmap_lock of the notifier's mm held for read.
 * Return: 0, -EBUSY (retry with a new notifier_seq), -EFAULT, -EPERM.
 */
export function* hmm_range_fault(range: hmm_range): Op<number> {
  const mm: mm_struct = range.notifier.mm!;
  lockdep_assert_held(mm.mmap_lock);
  let last = range.start;
  for (;;) {
    // If range is no longer valid force retry. (A lockless READ_ONCE of the notifier's
    // invalidate_seq, which mmu_interval_set_seq writes under the user's lock.)
    yield { obj: range.notifier.seq_obj, kind: 'read', what: 'mmu_interval_check_retry' };
    if (mmu_interval_check_retry(range.notifier, range.notifier_seq)) return -EBUSY;
    let ret = 0;
    walk: for (let addr = last; addr < range.end; addr += PAGE_SIZE) {
      const i = range.hmm_pfns_off + (addr - range.start) / PAGE_SIZE;
      const req = (range.hmm_pfns[i]! & range.pfn_flags_mask) | range.default_flags;
      const vma = vma_lookup(mm, addr);
      if (!vma) {
        ret = -EFAULT;
        break walk;
      }
      // hmm_vma_walk_test: VM_IO|VM_PFNMAP or unreadable VMAs are not walked.
      if (vma.vm_flags & (VM_IO | VM_PFNMAP) || !(vma.vm_flags & VM_READ)) {
        if (req & HMM_PFN_REQ_FAULT) {
          ret = -EFAULT;
          break walk;
        }
        range.hmm_pfns[i] = HMM_PFN_ERROR;
        continue;
      }
      const leaf = walkToLeaf(mm, addr);
      const v = leaf ? yield* ptep_get_lockless(leaf.ptr, 'hmm_vma_walk_pmd') : 0;
      const present = v !== 0 && pte_present(v);
      const need_write = (req & HMM_PFN_REQ_WRITE) !== 0 && (req & HMM_PFN_REQ_FAULT) !== 0;
      if (present && (!need_write || pte_write(v))) {
        let pfn = pte_pfn(v);
        if (leaf!.level !== 'pte')
          pfn += Math.floor((addr % (leaf!.level === 'pmd' ? 2 ** 21 : 2 ** 30)) / PAGE_SIZE);
        range.hmm_pfns[i] =
          pfn * HMM_PFN_FLAGS + HMM_PFN_VALID + (pte_write(v) ? HMM_PFN_WRITE : 0);
        continue;
      }
      if (!(req & HMM_PFN_REQ_FAULT)) {
        range.hmm_pfns[i] = 0;
        continue;
      }
      // hmm_vma_fault
      let fault_flags = FAULT_FLAG_REMOTE;
      if (need_write) {
        if (!(vma.vm_flags & VM_WRITE)) {
          ret = -EPERM;
          break walk;
        }
        fault_flags |= FAULT_FLAG_WRITE;
      }
      const r = yield* handle_mm_fault(vma, addr, fault_flags);
      if (r & VM_FAULT_ERROR) {
        ret = -EFAULT;
        break walk;
      }
      last = addr;
      ret = -EBUSY;
      break walk;
    }
    if (ret !== -EBUSY) return ret;
  }
}
