/**
 * Frame vectors in mm/ (v5.7–v5.11): get_vaddr_frames() turns a user address range into
 * page frames for a driver (videobuf2's USERPTR buffers, exynos g2d, habanalabs), taking
 * one of two paths chosen by the first VMA (R-FV-1, first era):
 * - a VMA without VM_IO|VM_PFNMAP: the pages are taken with GUP under mmap_lock —
 *   get_user_pages_locked (FOLL_GET, v5.7) or pin_user_pages_locked (FOLL_PIN, v5.8+,
 *   55a650c35fea "mm/gup: frame_vector: convert get_user_pages() --> pin_user_pages()").
 *   The caller's gup_flags are used as given: no FOLL_LONGTERM (pin_user_pages_locked
 *   refuses it), so a pin of a page in a CMA area or ZONE_MOVABLE stays where it is and
 *   blocks cma_alloc() for as long as the buffer lives (R-GUP-8, R-REV-5);
 * - a VM_IO|VM_PFNMAP VMA: follow_pfn() per page, continuing into following VM_IO|
 *   VM_PFNMAP VMAs. These PFNs come with nothing that keeps them valid: no reference, no
 *   pin, no lock, no MMU notifier (vec->got_ref = false, vec->is_pfns = true). Once the
 *   driver that owns the mapping zaps it and frees or moves the memory, the vector still
 *   holds the old PFNs and the device DMAs into whatever the frames became (R-REV-5).
 *   pfnsan (a later issue) will give these PFNs a lease that ends when the PTE they were
 *   read from changes, and report uses after it; the model hands them out as the kernel
 *   does.
 *
 * In v5.12 the file moved to drivers/media/common/videobuf2/frame_vector.c (eb83b8e3e647
 * "media: videobuf2: Move frame_vector into media subsystem", right after 04769cb1c45a
 * "mm/frame-vector: Use FOLL_LONGTERM"); its model is
 * src/kernel/drivers/media/common/videobuf2/frame_vector.ts. Calling these functions on a
 * v5.12+ kernel is a model error naming that file.
 *
 * struct frame_vector and its inline helpers (frame_vector_count/pages/pfns) are in
 * include/linux/mm.h in this era; the model keeps them here.
 *
 * Model choices: a page handle is its pfn, so vec->ptrs holds numbers read as page
 * pointers or pfns according to vec->is_pfns, as the kernel's `void *ptrs[]` does;
 * untagged_addr() is the identity (x86-64 without LAM); kvmalloc cannot fail.
 * Left out: fsdax (vma_is_fsdax is false in the model, so the -EOPNOTSUPP branch is
 * modelled but never taken), nommu.
 *
 * @kernel mm/frame_vector.c (v5.7–v5.11), include/linux/mm.h:struct frame_vector,
 *   frame_vector_count, frame_vector_pages, frame_vector_pfns (v5.7–v5.11)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import { VM_IO, VM_PFNMAP } from '../include/linux/mm.js';
import { EFAULT, EINVAL, EOPNOTSUPP } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { get_current } from '../include/linux/sched.js';
import { put_page } from '../include/linux/page_ref.js';
import { VM_BUG_ON, WARN_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { pfn_valid } from './sparse.js';
import { find_vma_intersection } from './vma.js';
import { follow_pfn } from './memory.pfnmap.js';
import {
  get_user_pages_locked,
  pin_user_pages_locked,
  unpin_user_pages,
  vma_is_fsdax,
  type int_ptr,
  type page_array,
} from './gup.js';
import { pfnsan_lease_get, pfnsan_lease_put, pfnsan_use } from './pfnsan/pfnsan.js';

const NONE = { kind: 'none' } as const;

/** pfnsan: pfn_to_page of the vector's pfns is a use of each (frame_vector_to_pages). */
function pfnsan_use_frames(nums: readonly (number | null)[], nr: number): void {
  for (let i = 0; i < nr; i++) pfnsan_use(nums[i]!, 1, 'frame_vector_to_pages');
}

/**
 * struct frame_vector: room for nr_allocated frames, nr_frames of them filled; got_ref
 * says whether get_vaddr_frames() holds a reference or pin on each page (to be dropped by
 * put_vaddr_frames()), is_pfns whether ptrs[] holds pfns or page pointers.
 * @kernel include/linux/mm.h:struct frame_vector (v5.7–v5.11; include/media/frame_vector.h
 *   from v5.12, same layout)
 */
export interface frame_vector {
  /** Number of frames we have space for. */
  nr_allocated: number;
  /** Number of frames stored in ptrs array. */
  nr_frames: number;
  /** Did we pin (or take references on) the pages? */
  got_ref: boolean;
  /** Does the array contain pages or pfns? */
  is_pfns: boolean;
  /**
   * void *ptrs[]: page pointers or pfns (the same numbers in the model, where a page
   * handle is its pfn); null where nothing was stored.
   */
  ptrs: (number | null)[];
}

/** -errno values stand for ERR_PTR() results (frame_vector_pages). */
const IS_ERR = (x: page_array | number): x is number => typeof x === 'number';

/** Model error: the mm/ frame-vector API after it moved to videobuf2 (v5.12). */
function frame_vector_in_mm(fn: string): void {
  if (since(5, 12))
    throw new Error(
      `${fn}() is not in mm/frame_vector.c in kernel ${currentKernel().version.name}: ` +
        'eb83b8e3e647 ("media: videobuf2: Move frame_vector into media subsystem", v5.12) ' +
        'moved it to drivers/media/common/videobuf2/frame_vector.c — use ' +
        'src/kernel/drivers/media/common/videobuf2/frame_vector.ts',
    );
}

/** untagged_addr(addr): x86-64 without LAM leaves user addresses as they are. */
function untagged_addr(addr: number): number {
  return addr;
}

/**
 * frame_vector_count(vec): the number of frames stored.
 * @kernel include/linux/mm.h:frame_vector_count (v5.7–v5.11)
 */
export function frame_vector_count(vec: frame_vector): number {
  return vec.nr_frames;
}

/**
 * frame_vector_pages(vec): the frames as page pointers, converting pfns first.
 * @kernel include/linux/mm.h:frame_vector_pages (v5.7–v5.11)
 * Return: the array, or -EINVAL (ERR_PTR) when a pfn has no struct page.
 */
export function frame_vector_pages(vec: frame_vector): page_array | number {
  if (vec.is_pfns) {
    const err = frame_vector_to_pages(vec);
    if (err) return err;
  }
  return vec.ptrs as page_array;
}

/**
 * frame_vector_pfns(vec): the frames as pfns, converting page pointers first.
 * @kernel include/linux/mm.h:frame_vector_pfns (v5.7–v5.11)
 */
export function frame_vector_pfns(vec: frame_vector): (number | null)[] {
  if (!vec.is_pfns) frame_vector_to_pfns(vec);
  return vec.ptrs;
}

/**
 * get_vaddr_frames(start, nr_frames, gup_flags, vec): maps the user range at start to
 * page frames in vec (R-FV-1, first era). With current->mm's mmap_lock held for read:
 * - no VMA at start: -EFAULT; an fsdax VMA: -EOPNOTSUPP;
 * - a VMA without VM_IO|VM_PFNMAP: got_ref = true, is_pfns = false, and the pages are
 *   taken by pin_user_pages_locked(gup_flags) (v5.8+, FOLL_PIN) or
 *   get_user_pages_locked(gup_flags) (v5.7, FOLL_GET), possibly fewer than asked;
 * - otherwise got_ref = false, is_pfns = true, and follow_pfn() gives one pfn per page,
 *   in this VMA while it covers a whole page, then in the next one while it is VM_IO|
 *   VM_PFNMAP and has not ended mid-page. A follow_pfn error on the first page is
 *   returned; on a later page the count so far. These pfns are not kept valid by
 *   anything (see the file comment).
 * Too many frames for the vector WARN once and are clipped to nr_allocated.
 * @kernel mm/frame_vector.c:get_vaddr_frames (v5.7–v5.11: get_user_pages_locked v5.7,
 *   pin_user_pages_locked v5.8+ (55a650c35fea); mmap_sem became mmap_lock in v5.8 with no
 *   change of behaviour)
 * Locking: takes and drops current->mm->mmap_lock (read); GUP may drop it on a fault
 *   retry, in which case it is not dropped again.
 * Return: frames mapped (> 0, also stored in vec->nr_frames), 0 for nr_frames 0, or
 *   -errno (vec->nr_frames unchanged).
 */
export function* get_vaddr_frames(
  start: number,
  nr_frames: number,
  gup_flags: number,
  vec: frame_vector,
): Op<number> {
  frame_vector_in_mm('get_vaddr_frames');
  const mm = get_current().mm!;
  let ret = 0;
  if (nr_frames === 0) return 0;
  if (WARN_ON_ONCE(nr_frames > vec.nr_allocated, 'mm/frame_vector.c:get_vaddr_frames'))
    nr_frames = vec.nr_allocated;
  start = untagged_addr(start);
  yield* mmap_read_lock(mm);
  const locked: int_ptr = { value: 1 };
  out: {
    let vma = find_vma_intersection(mm, start, start + 1);
    if (!vma) {
      ret = -EFAULT;
      break out;
    }
    // While get_vaddr_frames() could be used for transient (kernel controlled lifetime)
    // pinning of memory pages all current users establish long term (userspace
    // controlled lifetime) page pinning. Treat get_vaddr_frames() like
    // get_user_pages_longterm() and disallow it for filesystem-dax mappings.
    if (vma_is_fsdax(vma)) {
      ret = -EOPNOTSUPP;
      break out;
    }
    if (!(vma.vm_flags & (VM_IO | VM_PFNMAP))) {
      vec.got_ref = true;
      vec.is_pfns = false;
      const pages = vec.ptrs as page_array;
      ret = since(5, 8)
        ? yield* pin_user_pages_locked(start, nr_frames, gup_flags, pages, locked)
        : yield* get_user_pages_locked(start, nr_frames, gup_flags, pages, locked);
      break out;
    }
    vec.got_ref = false;
    vec.is_pfns = true;
    do {
      const nums = frame_vector_pfns(vec);
      while (ret < nr_frames && start + PAGE_SIZE <= vma.vm_end) {
        const r = yield* follow_pfn(vma, start);
        if (r.ret) {
          if (ret === 0) ret = r.ret;
          break out;
        }
        nums[ret] = r.pfn;
        // pfnsan: nothing keeps a frame vector's pfn valid (R-REV-5).
        pfnsan_lease_put(pfnsan_lease_get(r.pfn, 1, 'get_vaddr_frames', NONE), 'get_vaddr_frames');
        start += PAGE_SIZE;
        ret++;
      }
      // We stop if we have enough pages or if VMA doesn't completely cover the tail page.
      if (ret >= nr_frames || start < vma.vm_end) break;
      vma = find_vma_intersection(mm, start, start + 1);
    } while (vma && vma.vm_flags & (VM_IO | VM_PFNMAP));
  }
  if (locked.value) yield* mmap_read_unlock(mm);
  if (!ret) ret = -EFAULT;
  if (ret > 0) vec.nr_frames = ret;
  return ret;
}

/**
 * put_vaddr_frames(vec): drops what get_vaddr_frames() took, if it took anything
 * (got_ref): each page's reference (put_page, v5.7) or pin (unpin_user_pages, v5.8+),
 * then empties the vector. The pages are not dirtied here; videobuf2 marks them dirty
 * (set_page_dirty_lock) before calling it. A vector of pfns (got_ref false) only
 * forgets them.
 * @kernel mm/frame_vector.c:put_vaddr_frames (v5.7–v5.11; unpin_user_pages v5.8+,
 *   55a650c35fea)
 * Locking: none.
 */
export function put_vaddr_frames(vec: frame_vector): void {
  frame_vector_in_mm('put_vaddr_frames');
  out: {
    if (!vec.got_ref) break out;
    const pages = frame_vector_pages(vec);
    // frame_vector_pages() might needed to do a conversion when get_vaddr_frames() got
    // pages but vec was later converted to pfns. But it shouldn't really fail to convert
    // pfns back...
    if (IS_ERR(pages)) {
      WARN_ON(true);
      break out;
    }
    if (since(5, 8)) {
      unpin_user_pages(pages, vec.nr_frames);
    } else {
      for (let i = 0; i < vec.nr_frames; i++) put_page(pages[i]!);
    }
    vec.got_ref = false;
  }
  vec.nr_frames = 0;
}

/**
 * frame_vector_to_pages(vec): converts a vector of pfns to page pointers; no reference
 * is taken on the pages. Every pfn must have a struct page (pfn_valid): an MMIO pfn
 * makes the conversion fail with the vector unchanged.
 * @kernel mm/frame_vector.c:frame_vector_to_pages (v5.7–v5.11)
 * Return: 0, or -EINVAL.
 */
export function frame_vector_to_pages(vec: frame_vector): number {
  frame_vector_in_mm('frame_vector_to_pages');
  if (!vec.is_pfns) return 0;
  const nums = frame_vector_pfns(vec);
  for (let i = 0; i < vec.nr_frames; i++) if (!pfn_valid(nums[i]!)) return -EINVAL;
  pfnsan_use_frames(nums, vec.nr_frames);
  // pages[i] = pfn_to_page(nums[i]): the same number in the model.
  vec.is_pfns = false;
  return 0;
}

/**
 * frame_vector_to_pfns(vec): converts a vector of page pointers to pfns.
 * @kernel mm/frame_vector.c:frame_vector_to_pfns (v5.7–v5.11)
 */
export function frame_vector_to_pfns(vec: frame_vector): void {
  frame_vector_in_mm('frame_vector_to_pfns');
  if (vec.is_pfns) return;
  // nums[i] = page_to_pfn(pages[i]): the same number in the model.
  vec.is_pfns = true;
}

/** INT_MAX / sizeof(void *) / 2: frame_vector_create's overflow guard. */
const FRAME_VECTOR_MAX = Math.floor(Math.floor(0x7fffffff / 8) / 2);

/**
 * frame_vector_create(nr_frames): a vector with room for nr_frames frames. 0 frames, or
 * more than INT_MAX / sizeof(void *) / 2, WARN once and give NULL.
 * @kernel mm/frame_vector.c:frame_vector_create (v5.7–v5.11)
 * Return: the vector, or null.
 */
export function frame_vector_create(nr_frames: number): frame_vector | null {
  frame_vector_in_mm('frame_vector_create');
  if (WARN_ON_ONCE(nr_frames === 0, 'mm/frame_vector.c:frame_vector_create:0')) return null;
  // This is absurdly high. It's here just to avoid strange effects when arithmetics
  // overflows.
  if (WARN_ON_ONCE(nr_frames > FRAME_VECTOR_MAX, 'mm/frame_vector.c:frame_vector_create:max'))
    return null;
  return {
    nr_allocated: nr_frames,
    nr_frames: 0,
    got_ref: false,
    is_pfns: false,
    ptrs: new Array<number | null>(nr_frames).fill(null),
  };
}

/**
 * frame_vector_destroy(vec): frees the vector; put_vaddr_frames() must have been called
 * (VM_BUG_ON(vec->nr_frames > 0) with CONFIG_DEBUG_VM).
 * @kernel mm/frame_vector.c:frame_vector_destroy (v5.7–v5.11)
 */
export function frame_vector_destroy(vec: frame_vector): void {
  frame_vector_in_mm('frame_vector_destroy');
  // Make sure put_vaddr_frames() got called properly...
  VM_BUG_ON(vec.nr_frames > 0, 'VM_BUG_ON(vec->nr_frames > 0)');
  vec.ptrs = [];
}
