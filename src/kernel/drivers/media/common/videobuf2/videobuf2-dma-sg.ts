/**
 * videobuf2's scatter-gather allocator (videobuf2-dma-sg.c), USERPTR part: pages only.
 * vb2_dma_sg_get_userptr takes the frames with vb2_create_framevec (R-FV-1), converts
 * them to pages (frame_vector_pages: MMIO pfns fail) and maps an sg_table with
 * dma_map_sgtable. Every failure is -ENOMEM, whatever went wrong (the kernel returns
 * ERR_PTR(-ENOMEM) from all its error labels). RAM frames of a VM_PFNMAP mapping found
 * by follow_pfn (before v6.1) convert to pages without being pinned.
 * put_userptr unmaps, dirties the pages for device writes and destroys the vector.
 *
 * Left out: MMAP and DMABUF buffers, vm_map_ram (vaddr), cache syncs.
 *
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c (v5.7+; dma_map_sgtable
 *   from v5.10, dma_map_sg_attrs before)
 */
import type { Op } from '../../../../../sched/index.js';
import { ENOMEM, IS_ERR, type ErrOr } from '../../../../include/linux/errno.js';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
} from '../../../../include/linux/dma-direction.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { pr_debug } from '../../../../kernel/printk.js';
import {
  dma_map_sgtable,
  dma_unmap_sgtable,
  sg_alloc_table_from_pages,
  type sg_table,
} from '../../../../kernel/dma/mapping.js';
import type { device } from '../../../base/core.js';
import { vb2_plane_cookie, type vb2_buffer, type vb2_mem_ops } from './videobuf2-core.js';
import {
  frame_vector_count,
  frame_vector_pages,
  vb2_create_framevec,
  vb2_destroy_framevec,
  type frame_vector,
} from './videobuf2-memops.js';
import { set_page_dirty_lock } from './videobuf2-dma-contig.js';

/** struct vb2_dma_sg_buf (USERPTR fields). @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c:struct vb2_dma_sg_buf (v5.7+) */
export interface vb2_dma_sg_buf {
  readonly dev: device;
  pages: page[];
  readonly offset: number;
  readonly dma_dir: number;
  sg_table: sg_table | null;
  readonly size: number;
  num_pages: number;
  vec: frame_vector | null;
  readonly vb: vb2_buffer;
}

/**
 * vb2_dma_sg_get_userptr(vb, dev, vaddr, size): pins (or looks up) the user pages and
 * maps them as a scatter-gather list.
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c:vb2_dma_sg_get_userptr (v5.7+)
 * Locking: none held; the frame vector takes current->mm's mmap_lock.
 * Return: the buffer, or -ENOMEM for any failure.
 */
export function* vb2_dma_sg_get_userptr(
  vb: vb2_buffer,
  dev: device,
  vaddr: number,
  size: number,
): Op<ErrOr<vb2_dma_sg_buf>> {
  const dma_dir = vb.vb2_queue.dma_dir;
  const vec = yield* vb2_create_framevec(
    vaddr,
    size,
    dma_dir === DMA_FROM_DEVICE || dma_dir === DMA_BIDIRECTIONAL,
  );
  if (IS_ERR(vec)) return -ENOMEM; // userptr_fail_pfnvec
  const pages = frame_vector_pages(vec);
  if (typeof pages === 'number') {
    // userptr_fail_sgtable
    vb2_destroy_framevec(vec);
    return -ENOMEM;
  }
  const buf: vb2_dma_sg_buf = {
    dev,
    pages: pages.slice(0, frame_vector_count(vec)) as page[],
    offset: vaddr % 4096,
    dma_dir,
    sg_table: null,
    size,
    num_pages: frame_vector_count(vec),
    vec,
    vb,
  };
  const sgt = sg_alloc_table_from_pages(buf.pages, buf.offset, size);
  // No need to sync to the device, this will happen later when the prepare() memop is
  // called.
  if (yield* dma_map_sgtable(buf.dev, sgt, buf.dma_dir, DMA_ATTR_SKIP_CPU_SYNC)) {
    // userptr_fail_map
    vb2_destroy_framevec(vec);
    return -ENOMEM;
  }
  buf.sg_table = sgt;
  return buf;
}

/**
 * vb2_dma_sg_put_userptr(buf_priv): unmaps, dirties the pages after device writes and
 * destroys the vector.
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c:vb2_dma_sg_put_userptr (v5.7+)
 */
export function* vb2_dma_sg_put_userptr(buf_priv: unknown): Op<void> {
  const buf = buf_priv as vb2_dma_sg_buf;
  pr_debug(`vb2_dma_sg_put_userptr: Releasing userspace buffer of ${buf.num_pages} pages`);
  yield* dma_unmap_sgtable(buf.dev, buf.sg_table!, buf.dma_dir, DMA_ATTR_SKIP_CPU_SYNC);
  if (buf.dma_dir === DMA_FROM_DEVICE || buf.dma_dir === DMA_BIDIRECTIONAL)
    for (let i = buf.num_pages - 1; i >= 0; i--) yield* set_page_dirty_lock(buf.pages[i]!);
  vb2_destroy_framevec(buf.vec!);
  buf.vec = null;
  buf.sg_table = null;
}

/**
 * vb2_dma_sg_cookie(vb, buf_priv): the buffer's sg_table.
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c:vb2_dma_sg_cookie (v5.7+)
 */
export function vb2_dma_sg_cookie(_vb: vb2_buffer, buf_priv: unknown): sg_table {
  return (buf_priv as vb2_dma_sg_buf).sg_table!;
}

/**
 * vb2_dma_sg_plane_desc(vb, plane_no): the plane's sg_table for the driver.
 * @kernel include/media/videobuf2-dma-sg.h:vb2_dma_sg_plane_desc (v5.7+)
 */
export function vb2_dma_sg_plane_desc(vb: vb2_buffer, plane_no: number): sg_table {
  return vb2_plane_cookie(vb, plane_no) as sg_table;
}

/**
 * vb2_dma_sg_memops (USERPTR part).
 * @kernel drivers/media/common/videobuf2/videobuf2-dma-sg.c:vb2_dma_sg_memops (v5.7+)
 */
export const vb2_dma_sg_memops: vb2_mem_ops = {
  name: 'vb2_dma_sg_memops',
  get_userptr: vb2_dma_sg_get_userptr,
  put_userptr: vb2_dma_sg_put_userptr,
  cookie: vb2_dma_sg_cookie,
};
