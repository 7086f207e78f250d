/**
 * read(2)/write(2) through the page cache (the buffered I/O half of mm/filemap.c), and
 * the page-cache side of direct I/O:
 * - filemap_read: each page found in the cache (or read through ->read_folio) is copied
 *   to the iterator, stopping at i_size;
 * - generic_perform_write: each page is got locked from the file system's write_begin,
 *   filled with page faults disabled (after faulting the source in), and given back
 *   dirty through write_end;
 * - kiocb_write_and_wait / kiocb_invalidate_pages: what direct I/O does to the cache
 *   first (write it back; for writes, drop the cached pages of the range, failing with
 *   -EBUSY when a page cannot be dropped).
 *
 * The file system's ->write_begin/->write_end are passed in (the model's
 * address_space_operations carry only what mappings use).
 *
 * Left out: readahead (one page at a time), large folios, IOCB_NOWAIT, dirty throttling
 * (balance_dirty_pages_ratelimited), file_update_time, the invalidate_lock.
 *
 * @kernel mm/filemap.c:filemap_read, generic_perform_write, kiocb_write_and_wait,
 *   kiocb_invalidate_pages, mm/truncate.c:invalidate_inode_pages2_range (v6.x)
 */
import type { Op } from '../../sched/index.js';
import type { address_space, file, folio, page } from '../include/linux/mm_types.js';
import type { kiocb } from '../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../include/linux/uio.js';
import { EBUSY, EFAULT, EIO } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import {
  copy_page_from_iter_atomic,
  copy_page_to_iter,
  fault_in_iov_iter_readable,
  iov_iter_revert,
} from '../lib/iov_iter.js';
import {
  FGP_CREAT,
  FGP_LOCK,
  FGP_WRITE,
  __filemap_get_folio,
  filemap_get_folio,
  filemap_read_folio,
  filemap_remove_folio,
  filemap_write_and_wait_range,
  folio_lock,
  folio_unlock,
} from './filemap.js';
import {
  folio_mapped,
  folio_raw_mapping,
  folio_test_dirty,
  folio_test_uptodate,
} from '../include/linux/page-flags.js';
import { folio_put, folio_ref_count } from '../include/linux/page_ref.js';
import { unmap_mapping_folio } from './memory.zap.js';

/**
 * filemap_read(iocb, iter, already_read): copies the file from iocb->ki_pos into the
 * iterator, page by page, up to i_size. A page missing from the cache is added and read
 * through ->read_folio; a page that cannot be read is -EIO.
 * @kernel mm/filemap.c:filemap_read (v5.12+; generic_file_buffered_read before)
 * Locking: takes folio locks while reading pages in; copies with no lock held (the
 *   copy to a user buffer may fault).
 * Return: bytes read, or -errno when nothing was read.
 */
export function* filemap_read(iocb: kiocb, iter: iov_iter, already_read: number): Op<number> {
  const filp = iocb.ki_filp;
  const mapping = filp.f_mapping;
  const inode = mapping.host;
  let error = 0;
  if (!iov_iter_count(iter)) return 0;
  while (iov_iter_count(iter) > 0) {
    const isize = inode.i_size;
    if (iocb.ki_pos >= isize) break;
    const index = Math.floor(iocb.ki_pos / PAGE_SIZE);
    const r = yield* filemap_get_pages(filp, mapping, index);
    if (r < 0) {
      error = r;
      break;
    }
    const f = r as folio;
    const offset = iocb.ki_pos % PAGE_SIZE;
    const bytes = Math.min(PAGE_SIZE - offset, isize - iocb.ki_pos, iov_iter_count(iter));
    const copied = yield* copy_page_to_iter(f as number as page, offset, bytes, iter);
    folio_put(f);
    already_read += copied;
    iocb.ki_pos += copied;
    if (copied < bytes) {
      error = -EFAULT;
      break;
    }
  }
  return already_read ? already_read : error;
}

/**
 * filemap_get_pages for one index: the cached folio, or a new one read through
 * ->read_folio (filemap_create_folio), uptodate and with a reference.
 * @kernel mm/filemap.c:filemap_get_pages, filemap_create_folio, filemap_update_page
 * Return: the folio or -errno.
 */
function* filemap_get_pages(filp: file, mapping: address_space, index: number): Op<folio | number> {
  for (;;) {
    let f = yield* filemap_get_folio(mapping, index);
    if (f === null) {
      const r = yield* __filemap_get_folio(mapping, index, FGP_CREAT | FGP_LOCK, 0);
      if (r < 0) return r;
      f = r as folio;
      if (folio_test_uptodate(f)) {
        yield* folio_unlock(f);
        return f;
      }
      const err = yield* filemap_read_folio(filp, mapping, f);
      if (err) {
        folio_put(f);
        return err;
      }
      return f;
    }
    if (folio_test_uptodate(f)) return f;
    yield* folio_lock(f);
    if (folio_raw_mapping(f) !== mapping) {
      yield* folio_unlock(f);
      folio_put(f);
      continue;
    }
    if (folio_test_uptodate(f)) {
      yield* folio_unlock(f);
      return f;
    }
    const err = yield* filemap_read_folio(filp, mapping, f);
    if (err) {
      folio_put(f);
      return -EIO;
    }
    return f;
  }
}

/** A file system's ->write_begin / ->write_end pair. */
export interface write_ops {
  /** Returns the folio for pos, locked and referenced, or -errno. */
  write_begin(filp: file, mapping: address_space, pos: number, len: number): Op<folio | number>;
  /** Finishes a copy of `copied` of `len` bytes at pos; unlocks and puts the folio. */
  write_end(
    filp: file,
    mapping: address_space,
    pos: number,
    len: number,
    copied: number,
    f: folio,
  ): Op<number>;
}

/**
 * generic_perform_write(iocb, i): the buffered write loop: for each page, fault the
 * source in (nothing at all faultable ⇒ -EFAULT), get the page locked from write_begin,
 * copy with page faults disabled, hand it to write_end (which dirties it and moves
 * i_size). A copy that write_end rejects is retried.
 * @kernel mm/filemap.c:generic_perform_write (v5.x+)
 * Locking: the caller holds the inode lock (not modelled); folio locks inside.
 * Return: bytes written, or -errno when nothing was written.
 */
export function* generic_perform_write(iocb: kiocb, i: iov_iter, ops: write_ops): Op<number> {
  const filp = iocb.ki_filp;
  let pos = iocb.ki_pos;
  const mapping = filp.f_mapping;
  let written = 0;
  let status: number;
  do {
    const offset = pos % PAGE_SIZE;
    let bytes = Math.min(PAGE_SIZE - offset, iov_iter_count(i));
    for (;;) {
      // retry:
      if ((yield* fault_in_iov_iter_readable(i, bytes)) === bytes) {
        status = -EFAULT;
        break;
      }
      const r = yield* ops.write_begin(filp, mapping, pos, bytes);
      if (r < 0) {
        status = r;
        break;
      }
      const f = r as folio;
      const copied = yield* copy_page_from_iter_atomic(f as number as page, offset, bytes, i);
      status = yield* ops.write_end(filp, mapping, pos, bytes, copied, f);
      if (status !== copied) {
        iov_iter_revert(i, copied - Math.max(status, 0));
        if (status < 0) break;
      }
      if (status === 0) {
        // A short copy made write_end reject the whole thing.
        if (copied) {
          bytes = copied;
          continue;
        }
        break;
      }
      pos += status;
      written += status;
      break;
    }
    if (status <= 0) break;
  } while (iov_iter_count(i));
  if (!written) return status;
  iocb.ki_pos += written;
  return written;
}

/**
 * kiocb_write_and_wait(iocb, count): writes back the cached pages the direct I/O will
 * cover.
 * @kernel mm/filemap.c:kiocb_write_and_wait (v6.5+; filemap_write_and_wait_range before)
 * Return: 0 or -errno.
 */
export function kiocb_write_and_wait(iocb: kiocb, count: number): Op<number> {
  const pos = iocb.ki_pos;
  return filemap_write_and_wait_range(iocb.ki_filp.f_mapping, pos, pos + count - 1);
}

/**
 * invalidate_inode_pages2_range(mapping, start, end): drops the cached folios of
 * [start, end]: each is unmapped from every process first; a dirty folio, or one with
 * references beyond the cache's, the caller's and the lookup's, cannot be dropped (-EBUSY
 * after the rest are done).
 * @kernel mm/truncate.c:invalidate_inode_pages2_range, invalidate_complete_folio2 (all
 *   versions)
 * Locking: takes folio locks.
 * Return: 0 or -EBUSY.
 */
export function* invalidate_inode_pages2_range(
  mapping: address_space,
  start: number,
  end: number,
): Op<number> {
  let ret = 0;
  yield { obj: `mapping${mapping.id}.i_pages`, kind: 'read', what: 'find_get_entries' };
  const indices = [...mapping.i_pages.keys()]
    .filter((x) => x >= start && x <= end)
    .sort((a, b) => a - b);
  for (const index of indices) {
    const f = yield* filemap_get_folio(mapping, index);
    if (f === null) continue;
    yield* folio_lock(f);
    if (folio_raw_mapping(f) !== mapping) {
      yield* folio_unlock(f);
      folio_put(f);
      continue;
    }
    if (folio_mapped(f)) yield* unmap_mapping_folio(f);
    // invalidate_complete_folio2: the cache's reference and ours only, and clean.
    if (folio_test_dirty(f) || folio_ref_count(f) > 2 || folio_mapped(f)) {
      ret = -EBUSY;
    } else {
      yield* filemap_remove_folio(f);
    }
    yield* folio_unlock(f);
    folio_put(f);
  }
  return ret;
}

/**
 * kiocb_invalidate_pages(iocb, count): before a direct write: write back the range,
 * then drop its cached pages so later buffered reads see the new data.
 * @kernel mm/filemap.c:kiocb_invalidate_pages (v6.5+; open-coded in
 *   generic_file_direct_write / iomap before)
 * Return: 0 or -errno (-EBUSY when a page could not be dropped).
 */
export function* kiocb_invalidate_pages(iocb: kiocb, count: number): Op<number> {
  const mapping = iocb.ki_filp.f_mapping;
  const pos = iocb.ki_pos;
  const end = pos + count - 1;
  const ret = yield* filemap_write_and_wait_range(mapping, pos, end);
  if (ret) return ret;
  return yield* invalidate_inode_pages2_range(
    mapping,
    Math.floor(pos / PAGE_SIZE),
    Math.floor(end / PAGE_SIZE),
  );
}

/** FGP_WRITEBEGIN: FGP_LOCK | FGP_WRITE | FGP_CREAT | FGP_STABLE (v6.x). */
export const FGP_WRITEBEGIN = FGP_LOCK | FGP_WRITE | FGP_CREAT;
