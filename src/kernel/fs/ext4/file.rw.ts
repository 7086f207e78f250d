/**
 * The ext4-like file system's read(2)/write(2) and truncate side: ->read_iter and
 * ->write_iter of ext4_file_operations (buffered through the page cache, O_DIRECT
 * through iomap with the user pages pinned), ->open (FMODE_CAN_ODIRECT), the buffered
 * ->write_begin/->write_end of delayed allocation, and ->setattr for a size change.
 *
 * The hooks are attached to ext4_file_operations (fs/ext4/file.ts) when this module
 * loads, so every ext4 file of the model, however opened, reads and writes through them.
 *
 * Left out: delayed-allocation reservations, journaling, extents and unwritten extents,
 * the dio write checks for unaligned and extending writes beyond updating i_size,
 * DAX, encryption/verity (ext4_should_use_dio is always true), IOCB_NOWAIT.
 *
 * @kernel fs/ext4/file.c:ext4_file_read_iter, ext4_dio_read_iter, ext4_file_write_iter,
 *   ext4_dio_write_iter, ext4_buffered_write_iter, ext4_file_open; fs/ext4/inode.c:
 *   ext4_da_write_begin, ext4_da_write_end, ext4_setattr (v6.x)
 */
import type { Op } from '../../../sched/index.js';
import type { address_space, file, folio, inode } from '../../include/linux/mm_types.js';
import {
  ATTR_SIZE,
  FMODE_CAN_ODIRECT,
  FMODE_NOWAIT,
  IOCB_APPEND,
  IOCB_DIRECT,
  set_fops_rw,
  set_fstype_iops,
  type iattr,
  type kiocb,
} from '../../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../../include/linux/uio.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { ext4_file_operations } from './file.js';
import { EXT4_I } from './inode.js';
import {
  FGP_WRITEBEGIN,
  filemap_read,
  generic_perform_write,
  type write_ops,
} from '../../mm/filemap.rw.js';
import {
  __filemap_get_folio,
  filemap_read_folio,
  folio_lock,
  folio_mark_dirty,
  folio_unlock,
  truncate_setsize,
} from '../../mm/filemap.js';
import {
  folio_mark_uptodate,
  folio_raw_mapping,
  folio_test_uptodate,
} from '../../include/linux/page-flags.js';
import { folio_put } from '../../include/linux/page_ref.js';
import { phys_clear_frame } from '../../mm/sparse.js';
import { ENOTBLK, iomap_dio_rw, type iomap_ops } from '../iomap/direct-io.js';

/** EFBIG (errno-base.h). */
const EFBIG = 27;

/** The logical block size of the model's disk (bdev_logical_block_size). */
export const EXT4_LOGICAL_BLOCK_SIZE = 512;

/**
 * ext4_iomap_ops as the model's direct I/O sees them: the file's bytes on its disk.
 * @kernel fs/ext4/inode.c:ext4_iomap_ops (v5.5+)
 */
export const ext4_iomap_ops: iomap_ops = {
  name: 'ext4_iomap_ops',
  logical_block_size: EXT4_LOGICAL_BLOCK_SIZE,
  *read_blocks(i: inode, pos: number, len: number): Op<Uint8Array> {
    yield { obj: `ext4.inode${i.i_ino}.disk`, kind: 'read', what: 'submit_bio(READ)' };
    const d = EXT4_I(i).disk;
    const out = new Uint8Array(len);
    if (pos < d.length) out.set(d.subarray(pos, Math.min(d.length, pos + len)));
    return out;
  },
  *write_blocks(i: inode, pos: number, data: Uint8Array): Op<void> {
    yield { obj: `ext4.inode${i.i_ino}.disk`, kind: 'write', what: 'submit_bio(WRITE)' };
    const info = EXT4_I(i);
    if (pos + data.length > info.disk.length) {
      const grown = new Uint8Array(pos + data.length);
      grown.set(info.disk);
      info.disk = grown;
    }
    info.disk.set(data, pos);
  },
};

/**
 * ext4_dio_read_iter(iocb, to): O_DIRECT read through iomap (ext4_should_use_dio is true
 * for the model's files).
 * @kernel fs/ext4/file.c:ext4_dio_read_iter (v5.5+)
 * Locking: takes the inode lock shared (not modelled).
 * Return: bytes read or -errno.
 */
export function ext4_dio_read_iter(iocb: kiocb, to: iov_iter): Op<number> {
  return iomap_dio_rw(iocb, to, ext4_iomap_ops, 0);
}

/**
 * ext4_file_read_iter(iocb, to): O_DIRECT reads go to ext4_dio_read_iter, the rest to
 * generic_file_read_iter (filemap_read).
 * @kernel fs/ext4/file.c:ext4_file_read_iter (all versions)
 * Return: bytes read or -errno.
 */
export function* ext4_file_read_iter(iocb: kiocb, to: iov_iter): Op<number> {
  if (!iov_iter_count(to)) return 0; // skip atime
  if (iocb.ki_flags & IOCB_DIRECT) return yield* ext4_dio_read_iter(iocb, to);
  return yield* filemap_read(iocb, to, 0);
}

/**
 * ext4_da_write_begin(file, mapping, pos, len): the page-cache folio for pos, locked; a
 * partial write to a folio not uptodate reads it from the disk first (inside i_size) or
 * zeroes it (beyond).
 * @kernel fs/ext4/inode.c:ext4_da_write_begin, fs/buffer.c:block_write_begin (v6.x)
 * Return: the locked folio with a reference, or -errno.
 */
function* ext4_da_write_begin(
  filp: file,
  mapping: address_space,
  pos: number,
  len: number,
): Op<folio | number> {
  const index = Math.floor(pos / PAGE_SIZE);
  for (;;) {
    const r = yield* __filemap_get_folio(mapping, index, FGP_WRITEBEGIN, 0);
    if (r < 0) return r;
    const f = r as folio;
    const offset = pos % PAGE_SIZE;
    if (folio_test_uptodate(f) || (offset === 0 && len === PAGE_SIZE)) return f;
    if (index * PAGE_SIZE < mapping.host.i_size) {
      const err = yield* filemap_read_folio(filp, mapping, f);
      if (err) {
        folio_put(f);
        return err;
      }
      yield* folio_lock(f);
      if (folio_raw_mapping(f) !== mapping) {
        yield* folio_unlock(f);
        folio_put(f);
        continue;
      }
      return f;
    }
    // Beyond EOF: the new block reads as zeroes around the write.
    phys_clear_frame(f);
    folio_mark_uptodate(f);
    return f;
  }
}

/**
 * ext4_da_write_end(file, mapping, pos, len, copied, folio): a short copy into a folio
 * that is not uptodate is rejected (0); otherwise the folio becomes uptodate and dirty,
 * i_size grows to cover the write, and the folio is unlocked and put.
 * @kernel fs/ext4/inode.c:ext4_da_write_end, fs/buffer.c:block_write_end,
 *   generic_write_end (v6.x)
 * Return: bytes accepted.
 */
function* ext4_da_write_end(
  _filp: file,
  mapping: address_space,
  pos: number,
  len: number,
  copied: number,
  f: folio,
): Op<number> {
  const inode = mapping.host;
  if (copied < len && !folio_test_uptodate(f)) copied = 0;
  else folio_mark_uptodate(f);
  if (copied) yield* folio_mark_dirty(f);
  if (pos + copied > inode.i_size) inode.i_size = pos + copied;
  yield* folio_unlock(f);
  folio_put(f);
  return copied;
}

const ext4_write_ops: write_ops = {
  write_begin: ext4_da_write_begin,
  write_end: ext4_da_write_end,
};

/**
 * ext4_buffered_write_iter(iocb, from): generic_write_checks (O_APPEND writes at
 * i_size) then generic_perform_write.
 * @kernel fs/ext4/file.c:ext4_buffered_write_iter (v5.5+)
 * Return: bytes written or -errno.
 */
export function* ext4_buffered_write_iter(iocb: kiocb, from: iov_iter): Op<number> {
  if (iocb.ki_flags & IOCB_APPEND) iocb.ki_pos = iocb.ki_filp.f_inode.i_size;
  if (!iov_iter_count(from)) return 0;
  if (iocb.ki_pos + iov_iter_count(from) > Number.MAX_SAFE_INTEGER) return -EFBIG;
  return yield* generic_perform_write(iocb, from, ext4_write_ops);
}

/**
 * ext4_dio_write_iter(iocb, from): O_DIRECT write through iomap; i_size grows for an
 * extending write; -ENOTBLK from iomap (cached pages that could not be dropped) falls
 * back to a buffered write of what is left.
 * @kernel fs/ext4/file.c:ext4_dio_write_iter (v5.5+)
 * Return: bytes written or -errno.
 */
export function* ext4_dio_write_iter(iocb: kiocb, from: iov_iter): Op<number> {
  const inode = iocb.ki_filp.f_inode;
  if (iocb.ki_flags & IOCB_APPEND) iocb.ki_pos = inode.i_size;
  const start = iocb.ki_pos;
  let ret = yield* iomap_dio_rw(iocb, from, ext4_iomap_ops, 0);
  if (ret === -ENOTBLK) ret = 0;
  if (ret > 0 && start + ret > inode.i_size) inode.i_size = start + ret;
  if (ret >= 0 && iov_iter_count(from)) {
    const b = yield* ext4_buffered_write_iter(iocb, from);
    if (b > 0) ret += b;
    else if (ret === 0) ret = b;
  }
  return ret;
}

/**
 * ext4_file_write_iter(iocb, from): O_DIRECT to ext4_dio_write_iter, else buffered.
 * @kernel fs/ext4/file.c:ext4_file_write_iter (all versions)
 * Return: bytes written or -errno.
 */
export function ext4_file_write_iter(iocb: kiocb, from: iov_iter): Op<number> {
  if (iocb.ki_flags & IOCB_DIRECT) return ext4_dio_write_iter(iocb, from);
  return ext4_buffered_write_iter(iocb, from);
}

/**
 * ext4_file_open(inode, filp): the file supports O_DIRECT and non-blocking I/O.
 * @kernel fs/ext4/file.c:ext4_file_open (FMODE_CAN_ODIRECT v5.19+; before, do_dentry_open
 *   checked a_ops->direct_IO, which ext4 has: the model uses the bit in all versions)
 * Return: 0.
 */
export function* ext4_file_open(_i: inode, filp: file): Op<number> {
  filp.f_mode |= FMODE_NOWAIT | FMODE_CAN_ODIRECT;
  return 0;
}

/**
 * ext4_setattr(idmap, dentry, attr) for ATTR_SIZE: truncate_setsize (unmapping and
 * dropping the cached pages past the new size) and the disk shrinks with it.
 * @kernel fs/ext4/inode.c:ext4_setattr (all versions)
 * Return: 0.
 */
export function* ext4_setattr(i: inode, attr: iattr): Op<number> {
  if (!(attr.ia_valid & ATTR_SIZE) || attr.ia_size === i.i_size) return 0;
  const shrink = attr.ia_size < i.i_size;
  yield* truncate_setsize(i, attr.ia_size);
  if (shrink) {
    const info = EXT4_I(i);
    if (info.disk.length > attr.ia_size) info.disk = info.disk.slice(0, attr.ia_size);
  }
  return 0;
}

set_fops_rw(ext4_file_operations, {
  read_iter: ext4_file_read_iter,
  write_iter: ext4_file_write_iter,
  open: ext4_file_open,
});
set_fstype_iops('ext4', { name: 'ext4_file_inode_operations', setattr: ext4_setattr });
