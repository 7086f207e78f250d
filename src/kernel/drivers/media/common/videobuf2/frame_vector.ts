/**
 * Frame vectors in videobuf2 (v5.12+): get_vaddr_frames() and friends after 04769cb1c45a
 * ("mm/frame-vector: Use FOLL_LONGTERM") and eb83b8e3e647 ("media: videobuf2: Move
 * frame_vector into media subsystem"), both v5.12 (R-FV-1, later eras):
 * - v5.12–v6.0: pin_user_pages_fast(FOLL_FORCE|FOLL_WRITE|FOLL_LONGTERM) first, so pages
 *   in CMA areas (and ZONE_MOVABLE from v5.13) are migrated out before they are pinned
 *   (R-GUP-8). If that pins nothing, the old follow_pfn() loop runs under mmap_lock and
 *   returns PFNs nobody keeps valid (got_ref = false, is_pfns = true): a driver may zap
 *   and free the memory behind them while the vector still holds them (R-REV-5). pfnsan
 *   (a later issue) will track these PFNs with a lease ending when their PTE changes; the
 *   model hands them out as the kernel does.
 *   v5.13 calls unsafe_follow_pfn() there ("media/videobuf1|2: Mark follow_pfn usage as
 *   unsafe", with 69bacee7f9ad "mm: Add unsafe_follow_pfn", v5.13-rc1; syzbot's "WARNING
 *   in unsafe_follow_pfn" shows get_vaddr_frames+0x337 as its caller), so the fallback
 *   WARNs once and taints, or is refused with CONFIG_STRICT_FOLLOW_PFN; the other
 *   versions call follow_pfn() (the model's unsafe_follow_pfn exists in v5.13 only; the
 *   commit that went back to follow_pfn is not pinned, see kernel-spec §12).
 *   v5.14 looks the VMA up with vma_lookup() instead of find_vma_intersection(mm, start,
 *   start + 1) (the same VMA). From v5.17 ("vb2: frame_vector.c: don't overwrite error
 *   code", Hans Verkuil, Nov 2021; no supported version between v5.15 and v6.1 shows it)
 *   a follow_pfn() -EINVAL on the first page returns pin_user_pages_fast()'s error.
 * - v6.1 (6647e76ab623 "v4l2: don't fall back to follow_pfn() if pin_user_pages_fast()
 *   fails"): no fallback. got_ref = true, is_pfns = false always; if nothing was pinned,
 *   WARN_ONCE "get_vaddr_frames() cannot follow VM_IO mapping", nr_frames 0, and the
 *   error (or -EFAULT for 0) is returned. A VM_IO|VM_PFNMAP range is now refused.
 * - v6.2: a `bool write` argument (e2fc6edd37ba "media: videobuf2: revert \"get_userptr:
 *   buffers are always writable\"") and no FOLL_FORCE ("mm/frame-vector: remove
 *   FOLL_FORCE usage", David Hildenbrand; mainline hash not pinned here): the flags are
 *   FOLL_LONGTERM, plus FOLL_WRITE when writing.
 * - v6.6 (735de5caf79e "media: vb2: frame_vector.c: replace WARN_ONCE with a comment"):
 *   the WARN_ONCE is gone; failures are silent.
 * Before v5.12 the API lives in mm/frame_vector.c (src/kernel/mm/frame_vector.ts);
 * calling these functions on such a kernel is a model error naming that file. Likewise
 * get_vaddr_frames' argument list must match the version (the write flag from v6.2).
 *
 * Stable kernels backported 6647e76ab623 (e.g. 5.10.y, 4.9.335); the model follows the
 * mainline releases.
 *
 * Model choices: as in mm/frame_vector.ts (page handles are pfns; untagged_addr() is the
 * identity; kvmalloc cannot fail). struct frame_vector and its inline helpers are in
 * include/media/frame_vector.h from v5.12; the model shares the mm/ definition of the
 * struct and keeps the helpers here.
 *
 * @kernel drivers/media/common/videobuf2/frame_vector.c (v5.12+),
 *   include/media/frame_vector.h:frame_vector_count, frame_vector_pages, frame_vector_pfns
 *   (v5.12+)
 */
import type { Op } from '../../../../../sched/index.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import { since } from '../../../../version.js';
import { FOLL_FORCE, FOLL_LONGTERM, FOLL_WRITE } from '../../../../include/linux/mm.js';
import { EFAULT, EINVAL } from '../../../../include/linux/errno.js';
import { PAGE_SIZE } from '../../../../arch/x86/include/asm/pgtable_types.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../../include/linux/mmap_lock.js';
import { get_current } from '../../../../include/linux/sched.js';
import { VM_BUG_ON, WARN_ON, WARN_ON_ONCE, WARN_ONCE } from '../../../../kernel/panic.js';
import { pfn_valid } from '../../../../mm/sparse.js';
import { find_vma_intersection, vma_lookup } from '../../../../mm/vma.js';
import { follow_pfn, unsafe_follow_pfn } from '../../../../mm/memory.pfnmap.js';
import { pin_user_pages_fast, unpin_user_pages, type page_array } from '../../../../mm/gup.js';
import type { frame_vector } from '../../../../mm/frame_vector.js';
import { pfnsan_lease_get, pfnsan_lease_put, pfnsan_use } from '../../../../mm/pfnsan/pfnsan.js';

const NONE = { kind: 'none' } as const;

/** pfnsan: pfn_to_page of the vector's pfns is a use of each (frame_vector_to_pages). */
function pfnsan_use_frames(nums: readonly (number | null)[], nr: number): void {
  for (let i = 0; i < nr; i++) pfnsan_use(nums[i]!, 1, 'frame_vector_to_pages');
}

export type { frame_vector } from '../../../../mm/frame_vector.js';

/** -errno values stand for ERR_PTR() results (frame_vector_pages). */
const IS_ERR = (x: page_array | number): x is number => typeof x === 'number';

/** Model error: the videobuf2 frame-vector API before it moved out of mm/ (v5.12). */
function frame_vector_in_media(fn: string): void {
  if (!since(5, 12))
    throw new Error(
      `${fn}() is not in drivers/media/common/videobuf2/frame_vector.c in kernel ` +
        `${currentKernel().version.name}: it is in mm/frame_vector.c until eb83b8e3e647 ` +
        '("media: videobuf2: Move frame_vector into media subsystem", v5.12) — use ' +
        'src/kernel/mm/frame_vector.ts',
    );
}

/** untagged_addr(addr): x86-64 without LAM leaves user addresses as they are. */
function untagged_addr(addr: number): number {
  return addr;
}

/**
 * frame_vector_count(vec): the number of frames stored.
 * @kernel include/media/frame_vector.h:frame_vector_count (v5.12+)
 */
export function frame_vector_count(vec: frame_vector): number {
  return vec.nr_frames;
}

/**
 * frame_vector_pages(vec): the frames as page pointers, converting pfns first.
 * @kernel include/media/frame_vector.h:frame_vector_pages (v5.12+)
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
 * @kernel include/media/frame_vector.h:frame_vector_pfns (v5.12+)
 */
export function frame_vector_pfns(vec: frame_vector): (number | null)[] {
  if (!vec.is_pfns) frame_vector_to_pfns(vec);
  return vec.ptrs;
}

/**
 * get_vaddr_frames(start, nr_frames, [write,] vec): maps the user range at start to page
 * frames in vec (R-FV-1). Too many frames for the vector WARN once and are clipped.
 * - v5.12–v6.0 (start, nr_frames, vec): pin_user_pages_fast(FOLL_FORCE|FOLL_WRITE|
 *   FOLL_LONGTERM); > 0 pinned: got_ref = true, is_pfns = false. Otherwise, under
 *   mmap_lock, got_ref = false, is_pfns = true and one pfn per page from follow_pfn()
 *   (unsafe_follow_pfn() in v5.13), VMA after VMA while each covers whole pages; an error
 *   on the first page is returned (v5.17+: pin_user_pages_fast's error instead of
 *   follow_pfn's -EINVAL), 0 frames is -EFAULT.
 * - v6.1 (start, nr_frames, vec): no fallback; nothing pinned ⇒ WARN_ONCE "cannot follow
 *   VM_IO mapping", nr_frames 0, the error or -EFAULT.
 * - v6.2+ (start, nr_frames, write, vec): FOLL_LONGTERM (+FOLL_WRITE); the WARN_ONCE
 *   until v6.5 (dropped by 735de5caf79e, v6.6).
 * @kernel drivers/media/common/videobuf2/frame_vector.c:get_vaddr_frames (v5.12+;
 *   04769cb1c45a, eb83b8e3e647, 6647e76ab623 (v6.1), e2fc6edd37ba (v6.2), 735de5caf79e
 *   (v6.6))
 * Locking: none held on entry or return; GUP may take current->mm->mmap_lock, the
 *   v5.12–v6.0 fallback takes it for read.
 * Return: frames mapped (> 0, also in vec->nr_frames), 0 for nr_frames 0, or -errno.
 */
export function get_vaddr_frames(start: number, nr_frames: number, vec: frame_vector): Op<number>;
export function get_vaddr_frames(
  start: number,
  nr_frames: number,
  write: boolean,
  vec: frame_vector,
): Op<number>;
export function* get_vaddr_frames(
  start: number,
  nr_frames: number,
  write_or_vec: boolean | frame_vector,
  maybe_vec?: frame_vector,
): Op<number> {
  frame_vector_in_media('get_vaddr_frames');
  let write = true;
  let vec: frame_vector;
  if (since(6, 2)) {
    if (typeof write_or_vec !== 'boolean' || !maybe_vec)
      throw new Error(
        'get_vaddr_frames() takes (start, nr_frames, write, vec) from v6.2 (e2fc6edd37ba)',
      );
    write = write_or_vec;
    vec = maybe_vec;
  } else {
    if (typeof write_or_vec === 'boolean' || maybe_vec)
      throw new Error(
        'get_vaddr_frames() takes (start, nr_frames, vec) before v6.2 (the write argument ' +
          'came with e2fc6edd37ba)',
      );
    vec = write_or_vec;
  }
  if (nr_frames === 0) return 0;
  if (
    WARN_ON_ONCE(
      nr_frames > vec.nr_allocated,
      'drivers/media/common/videobuf2/frame_vector.c:get_vaddr_frames',
    )
  )
    nr_frames = vec.nr_allocated;
  start = untagged_addr(start);
  const pages = vec.ptrs as page_array;

  if (since(6, 1)) {
    let gup_flags = FOLL_FORCE | FOLL_WRITE | FOLL_LONGTERM;
    if (since(6, 2)) {
      gup_flags = FOLL_LONGTERM;
      if (write) gup_flags |= FOLL_WRITE;
    }
    const ret = yield* pin_user_pages_fast(start, nr_frames, gup_flags, pages);
    vec.got_ref = true;
    vec.is_pfns = false;
    vec.nr_frames = ret;
    if (ret > 0) return ret;
    // This used to (racily) return non-refcounted pfns. Let people know.
    if (!since(6, 6))
      WARN_ONCE(
        true,
        'get_vaddr_frames() cannot follow VM_IO mapping',
        'drivers/media/common/videobuf2/frame_vector.c:get_vaddr_frames',
      );
    vec.nr_frames = 0;
    return ret ? ret : -EFAULT;
  }

  // v5.12–v6.0: pin first, follow_pfn() as the fallback.
  const mm = get_current().mm!;
  let ret = yield* pin_user_pages_fast(
    start,
    nr_frames,
    FOLL_FORCE | FOLL_WRITE | FOLL_LONGTERM,
    pages,
  );
  if (ret > 0) {
    vec.got_ref = true;
    vec.is_pfns = false;
  } else {
    const ret_pin_user_pages_fast = ret;
    yield* mmap_read_lock(mm);
    vec.got_ref = false;
    vec.is_pfns = true;
    ret = 0;
    out: do {
      const nums = frame_vector_pfns(vec);
      const vma = since(5, 14)
        ? vma_lookup(mm, start)
        : find_vma_intersection(mm, start, start + 1);
      if (!vma) break;
      while (ret < nr_frames && start + PAGE_SIZE <= vma.vm_end) {
        const r =
          since(5, 13) && !since(5, 14)
            ? yield* unsafe_follow_pfn(vma, start)
            : yield* follow_pfn(vma, start);
        const err = r.ret;
        if (err) {
          if (since(5, 17)) {
            if (ret) break out;
            // If follow_pfn() returns -EINVAL, then this is not an IO mapping or a raw PFN
            // mapping. In that case, return the original error from
            // pin_user_pages_fast().
            if (err === -EINVAL && ret_pin_user_pages_fast) ret = ret_pin_user_pages_fast;
            else ret = err;
          } else if (ret === 0) {
            ret = err;
          }
          break out;
        }
        nums[ret] = r.pfn;
        // pfnsan: nothing keeps a frame vector's pfn valid (R-REV-5).
        pfnsan_lease_put(pfnsan_lease_get(r.pfn, 1, 'get_vaddr_frames', NONE), 'get_vaddr_frames');
        start += PAGE_SIZE;
        ret++;
      }
      // Bail out if VMA doesn't completely cover the tail page.
      if (start < vma.vm_end) break;
    } while (ret < nr_frames);
    yield* mmap_read_unlock(mm);
  }
  if (!ret) ret = -EFAULT;
  if (ret > 0) vec.nr_frames = ret;
  return ret;
}

/**
 * put_vaddr_frames(vec): unpins the pages if get_vaddr_frames() pinned them (got_ref),
 * then empties the vector. No dirtying here: videobuf2's put_userptr marks the pages
 * dirty (set_page_dirty_lock) first when the device wrote to them. A vector of pfns
 * (got_ref false) only forgets them.
 * @kernel drivers/media/common/videobuf2/frame_vector.c:put_vaddr_frames (v5.12+)
 * Locking: none.
 */
export function put_vaddr_frames(vec: frame_vector): void {
  frame_vector_in_media('put_vaddr_frames');
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
    unpin_user_pages(pages, vec.nr_frames);
    vec.got_ref = false;
  }
  vec.nr_frames = 0;
}

/**
 * frame_vector_to_pages(vec): converts a vector of pfns to page pointers, without taking
 * references. Every pfn must have a struct page (pfn_valid); an MMIO pfn makes it fail
 * with the vector unchanged.
 * @kernel drivers/media/common/videobuf2/frame_vector.c:frame_vector_to_pages (v5.12+)
 * Return: 0, or -EINVAL.
 */
export function frame_vector_to_pages(vec: frame_vector): number {
  frame_vector_in_media('frame_vector_to_pages');
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
 * @kernel drivers/media/common/videobuf2/frame_vector.c:frame_vector_to_pfns (v5.12+)
 */
export function frame_vector_to_pfns(vec: frame_vector): void {
  frame_vector_in_media('frame_vector_to_pfns');
  if (vec.is_pfns) return;
  // nums[i] = page_to_pfn(pages[i]): the same number in the model.
  vec.is_pfns = true;
}

/** INT_MAX / sizeof(void *) / 2: frame_vector_create's overflow guard. */
const FRAME_VECTOR_MAX = Math.floor(Math.floor(0x7fffffff / 8) / 2);

/**
 * frame_vector_create(nr_frames): a vector with room for nr_frames frames; 0 or an
 * absurd number WARN once and give NULL.
 * @kernel drivers/media/common/videobuf2/frame_vector.c:frame_vector_create (v5.12+)
 * Return: the vector, or null.
 */
export function frame_vector_create(nr_frames: number): frame_vector | null {
  frame_vector_in_media('frame_vector_create');
  if (WARN_ON_ONCE(nr_frames === 0, 'videobuf2/frame_vector.c:frame_vector_create:0')) return null;
  // This is absurdly high. It's here just to avoid strange effects when arithmetics
  // overflows.
  if (WARN_ON_ONCE(nr_frames > FRAME_VECTOR_MAX, 'videobuf2/frame_vector.c:frame_vector_create'))
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
 * @kernel drivers/media/common/videobuf2/frame_vector.c:frame_vector_destroy (v5.12+)
 */
export function frame_vector_destroy(vec: frame_vector): void {
  frame_vector_in_media('frame_vector_destroy');
  // Make sure put_vaddr_frames() got called properly...
  VM_BUG_ON(vec.nr_frames > 0, 'VM_BUG_ON(vec->nr_frames > 0)');
  vec.ptrs = [];
}
