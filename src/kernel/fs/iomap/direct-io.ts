/**
 * Direct I/O through iomap, as ext4 does it (ext4_dio_read_iter / ext4_dio_write_iter ->
 * iomap_dio_rw): the page cache is written back (reads) or written back and dropped
 * (writes) over the range, then the user pages are pinned batch by batch with
 * iov_iter_extract_pages (pin_user_pages_fast: FOLL_PIN, plus FOLL_WRITE when the read
 * lands in memory), the device transfers the data to or from the pinned frames, and the
 * bio completion marks read-into pages dirty and unpins them (bio_release_pages).
 *
 * The model's block device is the file system's own data store, reached through the
 * iomap_ops the caller passes (the file's storage is one mapped extent below i_size; a
 * read past EOF stops there). A pin failure part-way through ends the I/O: the error
 * is recorded and returned (iomap_dio_set_error), even after some bytes went out, as
 * __iomap_dio_rw does.
 *
 * Left out: asynchronous and polled I/O (every dio completes inline), IOCB_NOWAIT,
 * holes and unwritten extents (zeroing), sub-block zeroing, the bio size limits beyond
 * BIO_MAX_VECS pages per batch, fua/sync writes, page-cache invalidation after the write.
 *
 * @kernel fs/iomap/direct-io.c:iomap_dio_rw, __iomap_dio_rw, iomap_dio_bio_iter,
 *   iomap_dio_complete; block/bio.c:bio_iov_iter_get_pages, bio_release_pages (v6.x;
 *   iov_iter_extract_pages v6.3+, iov_iter_get_pages with FOLL_GET references before)
 */
import type { Op } from '../../../sched/index.js';
import type { inode, page } from '../../include/linux/mm_types.js';
import type { kiocb } from '../../include/linux/fs.js';
import { IOCB_NOWAIT } from '../../include/linux/fs.js';
import {
  iov_iter_count,
  iov_iter_rw,
  READ,
  user_backed_iter,
  type iov_iter,
} from '../../include/linux/uio.js';
import { EAGAIN, EFAULT, EINVAL } from '../../include/linux/errno.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import {
  iov_iter_extract_pages,
  iov_iter_extract_will_pin,
  iov_iter_get_pages2,
} from '../../lib/iov_iter.js';
import { kiocb_invalidate_pages, kiocb_write_and_wait } from '../../mm/filemap.rw.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import { page_folio } from '../../include/linux/page-flags.js';
import { folio_mark_dirty, folio_lock, folio_unlock } from '../../mm/filemap.js';
import { unpin_user_page } from '../../mm/gup.js';
import { since } from '../../version.js';
import { put_page } from '../../include/linux/page_ref.js';

/** -ENOTBLK: fall back to buffered I/O (include/uapi/asm-generic/errno-base.h). */
export const ENOTBLK = 15;

/** BIO_MAX_VECS: pages per bio. */
export const BIO_MAX_VECS = 256;

/** The file system's side of direct I/O: its block size and its data store. */
export interface iomap_ops {
  readonly name: string;
  /** bdev_logical_block_size(iomap->bdev) */
  readonly logical_block_size: number;
  /** Reads len bytes of the file's storage at pos (zeroes past the stored data). */
  read_blocks(inode: inode, pos: number, len: number): Op<Uint8Array>;
  /** Writes data to the file's storage at pos. */
  write_blocks(inode: inode, pos: number, data: Uint8Array): Op<void>;
}

/** IOMAP_DIO_* flags of iomap_dio_rw. */
export const IOMAP_DIO_FORCE_WAIT = 1 << 0;
export const IOMAP_DIO_OVERWRITE_ONLY = 1 << 1;
export const IOMAP_DIO_PARTIAL = 1 << 2;

/** Whether an iterator's segments are aligned to the device's logical block size. */
function bdev_iter_is_aligned(bs: number, i: iov_iter): boolean {
  if (user_backed_iter(i)) {
    for (let s = i.seg; s < i.nr_segs; s++) {
      const v = i.iov[s]!;
      const base = s === i.seg ? v.iov_base + i.iov_offset : v.iov_base;
      const len = s === i.seg ? v.iov_len - i.iov_offset : v.iov_len;
      if (base % bs !== 0 || len % bs !== 0) return false;
    }
    return true;
  }
  for (let s = i.seg; s < i.nr_segs; s++) {
    const b = i.bvec[s];
    if (b && (b.bv_offset % bs !== 0 || b.bv_len % bs !== 0)) return false;
  }
  return true;
}

/**
 * bio_release_pages(bio, mark_dirty): after the transfer: read-into pages are marked
 * dirty (folio_mark_dirty_lock), then each pinned page is unpinned (or each referenced
 * page put, for iterators that were not pinned).
 * @kernel block/bio.c:bio_release_pages, __bio_release_pages, bio_set_pages_dirty (v6.x)
 */
function* bio_release_pages(
  pages: page[],
  n: number,
  mark_dirty: boolean,
  pinned: boolean,
): Op<void> {
  for (let k = 0; k < n; k++) {
    const p = pages[k]!;
    if (mark_dirty) {
      // folio_mark_dirty_lock()
      const f = page_folio(p);
      yield* folio_lock(f);
      yield* folio_mark_dirty(f);
      yield* folio_unlock(f);
    }
    if (pinned) unpin_user_page(p);
    else if (!since(6, 3)) put_page(p);
  }
}

/** Before v6.3: iov_iter_get_pages (FOLL_GET references), as { ret, offset }. */
function* get_pages_legacy(
  iter: iov_iter,
  pages: page[],
  want: number,
): Op<{ ret: number; offset: number }> {
  const r = yield* iov_iter_get_pages2(iter, pages, want, BIO_MAX_VECS);
  return { ret: r.ret, offset: r.start };
}

/**
 * iomap_dio_bio_iter for the model's single mapped extent [pos, pos + length): checks
 * the alignment, then per batch of up to BIO_MAX_VECS pages extracts (pins) the pages
 * and transfers the data.
 * @kernel fs/iomap/direct-io.c:iomap_dio_bio_iter (v6.x)
 * Return: bytes transferred (> 0), or -errno when the first batch failed.
 */
function* iomap_dio_bio_iter(
  ops: iomap_ops,
  inode: inode,
  pos: number,
  length: number,
  iter: iov_iter,
  write: boolean,
): Op<number> {
  const bs = ops.logical_block_size;
  if ((pos | length) % bs !== 0 || !bdev_iter_is_aligned(bs, iter)) return -EINVAL;
  let copied = 0;
  let ret = 0;
  while (copied < length && iov_iter_count(iter)) {
    const want = Math.min(length - copied, BIO_MAX_VECS * PAGE_SIZE);
    const pages: page[] = [];
    // a7e689dd1c06 "block: Convert bio_iov_iter_get_pages to use iov_iter_extract_pages"
    // (v6.3): user pages are pinned (FOLL_PIN); before, iov_iter_get_pages took
    // references (FOLL_GET) that bio_release_pages put.
    const extract = since(6, 3);
    const pinned = extract && iov_iter_extract_will_pin(iter);
    // bio_iov_iter_get_pages(): size <= 0 ? size || -EFAULT
    const r = extract
      ? yield* iov_iter_extract_pages(iter, pages, want, BIO_MAX_VECS, 0)
      : yield* get_pages_legacy(iter, pages, want);
    if (r.ret <= 0) {
      ret = r.ret ? r.ret : -EFAULT;
      break;
    }
    const n = Math.ceil((r.ret + r.offset) / PAGE_SIZE);
    // The device transfer, one page fragment at a time.
    let done = 0;
    for (let k = 0; k < n; k++) {
      const off = k === 0 ? r.offset : 0;
      const len = Math.min(PAGE_SIZE - off, r.ret - done);
      const pa = pages[k]! * PAGE_SIZE + off;
      if (write) {
        yield { obj: `pfn${pages[k]}`, kind: 'read', what: 'dma read (bio write)' };
        yield* ops.write_blocks(inode, pos + copied + done, phys_read(pa, len));
      } else {
        const data = yield* ops.read_blocks(inode, pos + copied + done, len);
        yield { obj: `pfn${pages[k]}`, kind: 'write', what: 'dma write (bio read)' };
        phys_write(pa, data);
      }
      done += len;
    }
    // bio end_io: IOMAP_DIO_DIRTY for reads into user memory; release the pages.
    yield* bio_release_pages(pages, n, !write && user_backed_iter(iter), pinned);
    copied += r.ret;
  }
  return copied ? copied : ret;
}

/**
 * iomap_dio_rw(iocb, iter, ops, dops, dio_flags, private, done_before): synchronous
 * direct I/O. Reads at or past EOF return 0; reads write the cache back first; writes
 * write it back and drop it: a page that cannot be dropped makes the call return
 * -ENOTBLK (without IOMAP_DIO_PARTIAL), on which ext4 falls back to a buffered write.
 * Then the bio loop; an error after partial progress is the result
 * (iomap_dio_set_error); reads are trimmed at i_size.
 * @kernel fs/iomap/direct-io.c:iomap_dio_rw, __iomap_dio_rw, iomap_dio_complete (v6.x)
 * Locking: the caller holds the inode lock (shared for reads); no mmap_lock.
 * Return: bytes transferred, 0, or -errno.
 */
export function* iomap_dio_rw(
  iocb: kiocb,
  iter: iov_iter,
  ops: iomap_ops,
  dio_flags: number,
): Op<number> {
  const inode = iocb.ki_filp.f_inode;
  const write = iov_iter_rw(iter) !== READ;
  const count = iov_iter_count(iter);
  if (!count) return 0;
  const i_size = inode.i_size;
  let length = count;
  if (!write) {
    if (iocb.ki_pos >= i_size) return 0;
    const ret = yield* kiocb_write_and_wait(iocb, count);
    if (ret) return ret;
  } else {
    if (iocb.ki_flags & IOCB_NOWAIT) return -EAGAIN;
    const ret = yield* kiocb_invalidate_pages(iocb, count);
    if (ret) {
      // -EBUSY from the invalidation: fall back to buffered I/O.
      return ret === -EAGAIN ? ret : dio_flags & IOMAP_DIO_PARTIAL ? ret : -ENOTBLK;
    }
  }
  // iomap_iter over the extent: the model's file has storage below i_size; reads stop
  // at EOF rounded up to the block size (the tail is read and trimmed on completion).
  if (!write) {
    const bs = ops.logical_block_size;
    length = Math.min(count, Math.ceil((i_size - iocb.ki_pos) / bs) * bs);
  }
  // iomap_iter rounds: each processes what it can; an error ends the loop and, even
  // after partial progress, becomes the result (iomap_dio_set_error).
  let copied = 0;
  let error = 0;
  while (copied < length && iov_iter_count(iter) > 0) {
    const r = yield* iomap_dio_bio_iter(
      ops,
      inode,
      iocb.ki_pos + copied,
      length - copied,
      iter,
      write,
    );
    if (r < 0) {
      error = r;
      break;
    }
    if (r === 0) break;
    copied += r;
  }
  if (error) return error;
  const r = copied;
  // iomap_dio_complete: a read beyond i_size is trimmed.
  let ret = r;
  if (!write && iocb.ki_pos + ret > i_size) ret = i_size - iocb.ki_pos;
  iocb.ki_pos += ret;
  return ret;
}
