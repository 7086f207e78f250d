/**
 * videobuf2's memory helpers (videobuf2-memops.c): vb2_create_framevec() turns a USERPTR
 * plane into a frame vector, vb2_destroy_framevec() gives it back. The frame-vector API
 * they call moved and changed under them (R-FV-1):
 * - v5.7–v5.11: mm/frame_vector.c's get_vaddr_frames(start & PAGE_MASK, nr,
 *   FOLL_FORCE | FOLL_WRITE, vec) ("buffers are always writable", so no `write`
 *   argument): pins without FOLL_LONGTERM, or follow_pfn() PFNs for VM_IO|VM_PFNMAP;
 * - v5.12–v6.1: videobuf2's get_vaddr_frames(start & PAGE_MASK, nr, vec) (04769cb1c45a
 *   "mm/frame-vector: Use FOLL_LONGTERM", eb83b8e3e647): long-term pins first, follow_pfn
 *   fallback until v6.0, no fallback from v6.1 (6647e76ab623);
 * - v6.2+: vb2_create_framevec(start, length, write) and get_vaddr_frames(start &
 *   PAGE_MASK, nr, write, vec) (e2fc6edd37ba "media: videobuf2: revert \"get_userptr:
 *   buffers are always writable\"").
 * Only a complete set of frames is accepted: a short count is -EFAULT.
 *
 * The model's vb2_create_framevec always takes `write`; before v6.2 the kernel's had no
 * such argument and the model ignores it there (the flags were FOLL_FORCE|FOLL_WRITE).
 * Left out: vb2_common_vm_ops (the MMAP-buffer VMA refcounting of the same file).
 *
 * @kernel drivers/media/common/videobuf2/videobuf2-memops.c (v5.7+)
 */
import type { Op } from '../../../../../sched/index.js';
import { since } from '../../../../version.js';
import { EFAULT, ENOMEM, type ErrOr } from '../../../../include/linux/errno.js';
import { FOLL_FORCE, FOLL_WRITE } from '../../../../include/linux/mm.js';
import type { page_array } from '../../../../mm/gup.js';
import {
  frame_vector_count as mm_frame_vector_count,
  frame_vector_pages as mm_frame_vector_pages,
  frame_vector_pfns as mm_frame_vector_pfns,
  frame_vector_to_pages as mm_frame_vector_to_pages,
  frame_vector_create as mm_frame_vector_create,
  frame_vector_destroy as mm_frame_vector_destroy,
  get_vaddr_frames as mm_get_vaddr_frames,
  put_vaddr_frames as mm_put_vaddr_frames,
  type frame_vector,
} from '../../../../mm/frame_vector.js';
import {
  frame_vector_count as vb2_fv_count,
  frame_vector_pages as vb2_fv_pages,
  frame_vector_pfns as vb2_fv_pfns,
  frame_vector_to_pages as vb2_fv_to_pages,
  frame_vector_create as vb2_fv_create,
  frame_vector_destroy as vb2_fv_destroy,
  get_vaddr_frames as vb2_get_vaddr_frames,
  put_vaddr_frames as vb2_put_vaddr_frames,
} from './frame_vector.js';

const PAGE_SHIFT = 12;

/** frame_vector_create of the era (mm/ until v5.11, videobuf2 from v5.12). */
function frame_vector_create(nr: number): frame_vector | null {
  return since(5, 12) ? vb2_fv_create(nr) : mm_frame_vector_create(nr);
}
function frame_vector_destroy(vec: frame_vector): void {
  if (since(5, 12)) vb2_fv_destroy(vec);
  else mm_frame_vector_destroy(vec);
}
function put_vaddr_frames(vec: frame_vector): void {
  if (since(5, 12)) vb2_put_vaddr_frames(vec);
  else mm_put_vaddr_frames(vec);
}

/**
 * vb2_create_framevec(start, length, write): the frames of the user range [start,
 * start + length), all of them or none.
 * @kernel drivers/media/common/videobuf2/videobuf2-memops.c:vb2_create_framevec (v5.7+:
 *   FOLL_FORCE|FOLL_WRITE until v5.11; no flags v5.12 (04769cb1c45a); `write` v6.2
 *   (e2fc6edd37ba))
 * Locking: none held; get_vaddr_frames takes current->mm's mmap_lock.
 * Return: the vector, or -ENOMEM (no vector), get_vaddr_frames' -errno, -EFAULT when
 *   fewer frames than pages were found (their references are dropped first).
 */
export function* vb2_create_framevec(
  start: number,
  length: number,
  write: boolean,
): Op<ErrOr<frame_vector>> {
  const first = Math.floor(start / 2 ** PAGE_SHIFT);
  const last = Math.floor((start + length - 1) / 2 ** PAGE_SHIFT);
  const nr = last - first + 1;
  const vec = frame_vector_create(nr);
  if (!vec) return -ENOMEM;
  const base = start - (start % 4096); // start & PAGE_MASK
  let ret: number;
  if (!since(5, 12)) ret = yield* mm_get_vaddr_frames(base, nr, FOLL_FORCE | FOLL_WRITE, vec);
  else if (!since(6, 2)) ret = yield* vb2_get_vaddr_frames(base, nr, vec);
  else ret = yield* vb2_get_vaddr_frames(base, nr, write, vec);
  if (ret < 0) {
    frame_vector_destroy(vec);
    return ret;
  }
  // We accept only complete set of PFNs
  if (ret !== nr) {
    put_vaddr_frames(vec);
    frame_vector_destroy(vec);
    return -EFAULT;
  }
  return vec;
}

/**
 * vb2_destroy_framevec(vec): drops the pins (if any) and frees the vector.
 * @kernel drivers/media/common/videobuf2/videobuf2-memops.c:vb2_destroy_framevec (v5.7+)
 * Locking: none.
 */
export function vb2_destroy_framevec(vec: frame_vector): void {
  put_vaddr_frames(vec);
  frame_vector_destroy(vec);
}

export type { frame_vector };

/*
 * The frame-vector helpers of the era (include/linux/mm.h + mm/frame_vector.c until
 * v5.11, include/media/frame_vector.h + videobuf2/frame_vector.c from v5.12), as the
 * allocators (videobuf2-dma-contig.c, videobuf2-dma-sg.c) call them.
 */

/** frame_vector_count(vec). @kernel include/media/frame_vector.h:frame_vector_count (v5.7+) */
export function frame_vector_count(vec: frame_vector): number {
  return since(5, 12) ? vb2_fv_count(vec) : mm_frame_vector_count(vec);
}

/** frame_vector_pages(vec). @kernel include/media/frame_vector.h:frame_vector_pages (v5.7+) Return: pages or -EINVAL. */
export function frame_vector_pages(vec: frame_vector): page_array | number {
  return since(5, 12) ? vb2_fv_pages(vec) : mm_frame_vector_pages(vec);
}

/** frame_vector_pfns(vec). @kernel include/media/frame_vector.h:frame_vector_pfns (v5.7+) */
export function frame_vector_pfns(vec: frame_vector): (number | null)[] {
  return since(5, 12) ? vb2_fv_pfns(vec) : mm_frame_vector_pfns(vec);
}

/** frame_vector_to_pages(vec). @kernel drivers/media/common/videobuf2/frame_vector.c:frame_vector_to_pages (v5.7+) Return: 0 or -EINVAL. */
export function frame_vector_to_pages(vec: frame_vector): number {
  return since(5, 12) ? vb2_fv_to_pages(vec) : mm_frame_vector_to_pages(vec);
}
