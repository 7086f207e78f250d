/**
 * videobuf2's DMA-contiguous allocator (videobuf2-dma-contig.c), USERPTR part: a user
 * buffer must be contiguous in the device's DMA address space. vb2_dc_get_userptr takes
 * the frames with vb2_create_framevec (R-FV-1) and then:
 * - if they all have a struct page (frame_vector_to_pages succeeds — pinned anonymous or
 *   file pages, or RAM frames behind a VM_PFNMAP mapping found by follow_pfn, which are
 *   NOT pinned): an sg_table of the pages, dma_map_sgtable, and the mapping must come out
 *   as one contiguous DMA range ("contiguous mapping is too small", -EFAULT);
 * - otherwise (the pfn path: MMIO pfns from follow_pfn, before v6.1): the pfns must be
 *   consecutive (else -EINVAL), and the range is mapped with dma_map_resource as a
 *   peer-to-peer MMIO range. buf->dma_addr is the first pfn's address (the offset of the
 *   user address inside its page is not added, as in the kernel).
 * Nothing keeps follow_pfn's frames valid: once the driver that owns the mapping zaps and
 * frees them, the device keeps DMAing into them for the whole stream (R-REV-5). From v6.1
 * the frame vector refuses VM_IO|VM_PFNMAP ranges and QBUF fails with -EFAULT.
 *
 * put_userptr unmaps, marks the pages dirty (set_page_dirty_lock) for device writes, and
 * destroys the frame vector (unpinning what was pinned).
 *
 * Version notes: dma_map_sg_attrs/dma_unmap_sg_attrs before the sgtable conversion
 * ("media: videobuf2: use sgtable-based scatterlist wrappers", Marek Szyprowski, v5.10)
 * — same effect in the model; the `write` argument of vb2_create_framevec from v6.2; the
 * put path's BUG_ON(IS_ERR(pages)) became WARN_ON_ONCE in later kernels (unreachable: an
 * sg_table exists only for a vector of pages).
 * Left out: MMAP and DMABUF buffers, dma_get_cache_alignment (1 on x86), non-coherent
 * memory and cache syncs, vaddr, dma_sgt's offset handling beyond the first entry.
 *
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c (v5.7+)
 */
import type { Op } from '../../../../../sched/index.js';
import {
  EFAULT,
  EINVAL,
  EIO,
  ENOMEM,
  IS_ERR,
  type ErrOr,
} from '../../../../include/linux/errno.js';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
} from '../../../../include/linux/dma-direction.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { page_folio } from '../../../../include/linux/page-flags.js';
import { pr_debug, pr_err } from '../../../../kernel/printk.js';
import { WARN_ON_ONCE } from '../../../../kernel/panic.js';
import { folio_lock, folio_mark_dirty, folio_unlock } from '../../../../mm/filemap.js';
import {
  dma_map_resource,
  dma_map_sgtable,
  dma_mapping_error,
  dma_unmap_resource,
  dma_unmap_sgtable,
  sg_alloc_table_from_pages,
  type sg_table,
} from '../../../../kernel/dma/mapping.js';
import type { device } from '../../../base/core.js';
import type { vb2_buffer, vb2_mem_ops } from './videobuf2-core.js';
import { vb2_plane_cookie } from './videobuf2-core.js';
import {
  frame_vector_count,
  frame_vector_pages,
  frame_vector_pfns,
  frame_vector_to_pages,
  vb2_create_framevec,
  vb2_destroy_framevec,
  type frame_vector,
} from './videobuf2-memops.js';

/** struct vb2_dc_buf (USERPTR fields). @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:struct vb2_dc_buf (v5.7+) */
export interface vb2_dc_buf {
  readonly dev: device;
  size: number;
  dma_addr: number;
  readonly dma_dir: number;
  /** null for the pfn path (dma_map_resource). */
  dma_sgt: sg_table | null;
  vec: frame_vector | null;
  readonly vb: vb2_buffer;
}

/**
 * set_page_dirty_lock(page): marks the page's folio dirty under its lock.
 * @kernel mm/page-writeback.c:set_page_dirty_lock (v5.7+; folio_mark_dirty_lock v6.x)
 */
export function* set_page_dirty_lock(p: page): Op<void> {
  const f = page_folio(p);
  yield* folio_lock(f);
  yield* folio_mark_dirty(f);
  yield* folio_unlock(f);
}

/**
 * vb2_dc_get_contiguous_size(sgt): the length of the DMA-contiguous run at the start.
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:vb2_dc_get_contiguous_size (v5.7+)
 */
export function vb2_dc_get_contiguous_size(sgt: sg_table): number {
  let expected = sgt.sgl[0]!.dma_address;
  let size = 0;
  for (let i = 0; i < sgt.nents; i++) {
    const s = sgt.sgl[i]!;
    if (s.dma_address !== expected) break;
    expected += s.dma_length;
    size += s.dma_length;
  }
  return size;
}

/**
 * vb2_dc_cookie(vb, buf_priv): the buffer's DMA address.
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:vb2_dc_cookie (v5.7+)
 */
export function vb2_dc_cookie(_vb: vb2_buffer, buf_priv: unknown): number {
  return (buf_priv as vb2_dc_buf).dma_addr;
}

/**
 * vb2_dma_contig_plane_dma_addr(vb, plane_no): the plane's DMA address for the driver.
 * @kernel include/media/videobuf2-dma-contig.h:vb2_dma_contig_plane_dma_addr (v5.7+)
 */
export function vb2_dma_contig_plane_dma_addr(vb: vb2_buffer, plane_no: number): number {
  return vb2_plane_cookie(vb, plane_no) as number;
}

/**
 * vb2_dc_put_userptr(buf_priv): unmaps the buffer, dirties its pages after device writes,
 * and destroys the frame vector (unpinning pinned pages; a pfn vector only forgets).
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:vb2_dc_put_userptr (v5.7+)
 * Locking: none (may sleep).
 */
export function* vb2_dc_put_userptr(buf_priv: unknown): Op<void> {
  const buf = buf_priv as vb2_dc_buf;
  const sgt = buf.dma_sgt;
  if (sgt) {
    // No need to sync to CPU, it's already synced to the CPU since the finish() memop
    // will have been called before this.
    yield* dma_unmap_sgtable(buf.dev, sgt, buf.dma_dir, DMA_ATTR_SKIP_CPU_SYNC);
    if (buf.dma_dir === DMA_FROM_DEVICE || buf.dma_dir === DMA_BIDIRECTIONAL) {
      const pages = frame_vector_pages(buf.vec!);
      // sgt should exist only if vector contains pages...
      if (!WARN_ON_ONCE(typeof pages === 'number', 'vb2_dc_put_userptr'))
        for (let i = 0; i < frame_vector_count(buf.vec!); i++)
          yield* set_page_dirty_lock((pages as page[])[i]!);
    }
    buf.dma_sgt = null;
  } else {
    yield* dma_unmap_resource(buf.dev, buf.dma_addr, buf.size, buf.dma_dir, 0);
  }
  vb2_destroy_framevec(buf.vec!);
  buf.vec = null;
}

/**
 * vb2_dc_get_userptr(vb, dev, vaddr, size): acquires [vaddr, vaddr + size) for the device
 * as one DMA-contiguous range (see the file comment for the two paths).
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:vb2_dc_get_userptr
 *   (v5.7+; dma_map_sgtable from v5.10; vb2_create_framevec's `write` from v6.2)
 * Locking: none held; the frame vector takes current->mm's mmap_lock.
 * Return: the buffer, or -EINVAL (size 0, non-consecutive pfns), vb2_create_framevec's
 *   error (-EFAULT for a VM_IO|VM_PFNMAP range from v6.1), -ENOMEM (dma_map_resource
 *   failed), -EIO (dma_map_sgtable failed), -EFAULT (not DMA-contiguous).
 */
export function* vb2_dc_get_userptr(
  vb: vb2_buffer,
  dev: device,
  vaddr: number,
  size: number,
): Op<ErrOr<vb2_dc_buf>> {
  // Only cache aligned DMA transfers are reliable: dma_get_cache_alignment() is 1 on x86.
  if (!size) {
    pr_debug('size is zero');
    return -EINVAL;
  }
  const dma_dir = vb.vb2_queue.dma_dir;
  const buf: vb2_dc_buf = { dev, size: 0, dma_addr: 0, dma_dir, dma_sgt: null, vec: null, vb };
  const offset = vaddr % 4096;
  const vec = yield* vb2_create_framevec(
    vaddr,
    size,
    dma_dir === DMA_FROM_DEVICE || dma_dir === DMA_BIDIRECTIONAL,
  );
  if (IS_ERR(vec)) return vec;
  buf.vec = vec;
  const n_pages = frame_vector_count(vec);
  let ret = frame_vector_to_pages(vec);
  fail_pfnvec: {
    if (ret < 0) {
      const nums = frame_vector_pfns(vec);
      // Failed to convert to pages... Check the memory is physically contiguous and use
      // direct mapping
      for (let i = 1; i < n_pages; i++) if (nums[i - 1]! + 1 !== nums[i]) break fail_pfnvec;
      buf.dma_addr = yield* dma_map_resource(buf.dev, nums[0]! * 4096, size, buf.dma_dir, 0);
      if (dma_mapping_error(buf.dev, buf.dma_addr)) {
        ret = -ENOMEM;
        break fail_pfnvec;
      }
      buf.size = size;
      return buf;
    }
    const pages = frame_vector_pages(vec) as page[];
    const sgt = sg_alloc_table_from_pages(pages.slice(0, n_pages), offset, size);
    // No need to sync to the device, this will happen later when the prepare() memop is
    // called.
    if (yield* dma_map_sgtable(buf.dev, sgt, buf.dma_dir, DMA_ATTR_SKIP_CPU_SYNC)) {
      pr_err('failed to map scatterlist');
      ret = -EIO;
      break fail_pfnvec;
    }
    const contig_size = vb2_dc_get_contiguous_size(sgt);
    if (contig_size < size) {
      pr_err(`contiguous mapping is too small ${contig_size}/${size}`);
      ret = -EFAULT;
      yield* dma_unmap_sgtable(buf.dev, sgt, buf.dma_dir, DMA_ATTR_SKIP_CPU_SYNC);
      break fail_pfnvec;
    }
    buf.dma_addr = sgt.sgl[0]!.dma_address;
    buf.dma_sgt = sgt;
    buf.size = size;
    return buf;
  }
  vb2_destroy_framevec(vec);
  return ret;
}

/**
 * vb2_dma_contig_memops (USERPTR part).
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-contig.c:vb2_dma_contig_memops (v5.7+)
 */
export const vb2_dma_contig_memops: vb2_mem_ops = {
  name: 'vb2_dma_contig_memops',
  get_userptr: vb2_dc_get_userptr,
  put_userptr: vb2_dc_put_userptr,
  cookie: vb2_dc_cookie,
};
