/**
 * read(2), write(2), pread64(2), pwrite64(2): the descriptor lookup, the checks of
 * vfs_read/vfs_write (open mode, FMODE_CAN_READ/WRITE, access_ok, rw_verify_area, the
 * MAX_RW_COUNT clamp, FMODE_PREAD/PWRITE for the positional forms) and the dispatch to
 * the file's ->read/->write or, through a synchronous kiocb and a user-buffer iov_iter,
 * its ->read_iter/->write_iter. What happens next is the file's: buffered I/O through
 * the page cache, O_DIRECT through iomap with the user pages pinned (ext4), copies from
 * the pinned pages of another process (/proc/<pid>/mem), pipe buffers.
 *
 * The file position lives here (the model's struct file has no f_pos field).
 *
 * Left out: fsnotify, the f_pos_lock (FMODE_ATOMIC_POS), mandatory locks,
 * sb_start_write freeze protection, readv/writev, preadv2 flags.
 *
 * @kernel fs/read_write.c:ksys_read, ksys_write, ksys_pread64, ksys_pwrite64, vfs_read,
 *   vfs_write, new_sync_read, new_sync_write, rw_verify_area (v5.x+; the iov_iter paths
 *   as of v6.x)
 */
import type { Op } from '../../sched/index.js';
import type { file } from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import {
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_STREAM,
  FMODE_UNSIGNED_OFFSET,
  IOCB_WRITE,
  MAX_RW_COUNT,
  f_op_rw,
  init_sync_kiocb,
} from '../include/linux/fs.js';
import { ITER_DEST, ITER_SOURCE } from '../include/linux/uio.js';
import { EBADF, EFAULT, EINVAL, ESPIPE } from '../include/linux/errno.js';
import { fget } from '../include/linux/fdtable.js';
import { fput } from './file_table.js';
import { access_ok, iov_iter_ubuf } from '../lib/iov_iter.js';

const positions = new WeakMap<file, number>();

/** file->f_pos */
export function f_pos(f: file): number {
  return positions.get(f) ?? 0;
}

/** file->f_pos = pos */
export function set_f_pos(f: file, pos: number): void {
  positions.set(f, pos);
}

/**
 * rw_verify_area(read_write, file, ppos, count): a negative position (unless the file
 * takes unsigned offsets) or a range that overflows loff_t is -EINVAL.
 * @kernel fs/read_write.c:rw_verify_area (all versions)
 * Return: 0 or -EINVAL.
 */
export function rw_verify_area(f: file, pos: number | null, count: number): number {
  if (pos !== null) {
    if (pos < 0 && !(f.f_mode & FMODE_UNSIGNED_OFFSET)) return -EINVAL;
    if (pos + count > Number.MAX_SAFE_INTEGER && !(f.f_mode & FMODE_UNSIGNED_OFFSET))
      return -EINVAL;
  }
  return 0;
}

/**
 * new_sync_read(filp, buf, len, ppos): ->read_iter with a synchronous kiocb over a
 * user buffer (ITER_DEST).
 * @kernel fs/read_write.c:new_sync_read (all versions)
 * Return: bytes read or -errno; *ppos advances.
 */
export function* new_sync_read(
  f: file,
  buf: number,
  len: number,
  ppos: { pos: number },
): Op<number> {
  const kiocb = init_sync_kiocb(f, ppos.pos);
  const iter = iov_iter_ubuf(ITER_DEST, buf, len);
  const ret = yield* f_op_rw(f).read_iter!(kiocb, iter);
  if (ret > 0) ppos.pos = kiocb.ki_pos;
  return ret;
}

/**
 * new_sync_write(filp, buf, len, ppos): ->write_iter with a synchronous kiocb over a
 * user buffer (ITER_SOURCE).
 * @kernel fs/read_write.c:new_sync_write (all versions)
 * Return: bytes written or -errno; *ppos advances.
 */
export function* new_sync_write(
  f: file,
  buf: number,
  len: number,
  ppos: { pos: number },
): Op<number> {
  const kiocb = init_sync_kiocb(f, ppos.pos);
  kiocb.ki_flags |= IOCB_WRITE;
  const iter = iov_iter_ubuf(ITER_SOURCE, buf, len);
  const ret = yield* f_op_rw(f).write_iter!(kiocb, iter);
  if (ret > 0) ppos.pos = kiocb.ki_pos;
  return ret;
}

/**
 * vfs_read(file, buf, count, pos): not open for reading ⇒ -EBADF; no read method ⇒
 * -EINVAL; a buffer outside user space ⇒ -EFAULT; rw_verify_area; count clamped to
 * MAX_RW_COUNT; then ->read or ->read_iter.
 * @kernel fs/read_write.c:vfs_read (all versions)
 * Return: bytes read or -errno.
 */
export function* vfs_read(
  f: file,
  buf: number,
  count: number,
  ppos: { pos: number } | null,
): Op<number> {
  if (!(f.f_mode & FMODE_READ)) return -EBADF;
  if (!(f.f_mode & FMODE_CAN_READ)) return -EINVAL;
  if (!access_ok(buf, count)) return -EFAULT;
  const ret = rw_verify_area(f, ppos ? ppos.pos : null, count);
  if (ret) return ret;
  if (count > MAX_RW_COUNT) count = MAX_RW_COUNT;
  const ops = f_op_rw(f);
  const p = ppos ?? { pos: 0 };
  if (ops.read) return yield* ops.read(f, buf, count, p);
  if (ops.read_iter) return yield* new_sync_read(f, buf, count, p);
  return -EINVAL;
}

/**
 * vfs_write(file, buf, count, pos): as vfs_read for writing.
 * @kernel fs/read_write.c:vfs_write (all versions)
 * Return: bytes written or -errno.
 */
export function* vfs_write(
  f: file,
  buf: number,
  count: number,
  ppos: { pos: number } | null,
): Op<number> {
  if (!(f.f_mode & FMODE_WRITE)) return -EBADF;
  if (!(f.f_mode & FMODE_CAN_WRITE)) return -EINVAL;
  if (!access_ok(buf, count)) return -EFAULT;
  const ret = rw_verify_area(f, ppos ? ppos.pos : null, count);
  if (ret) return ret;
  if (count > MAX_RW_COUNT) count = MAX_RW_COUNT;
  const ops = f_op_rw(f);
  const p = ppos ?? { pos: 0 };
  if (ops.write) return yield* ops.write(f, buf, count, p);
  if (ops.write_iter) return yield* new_sync_write(f, buf, count, p);
  return -EINVAL;
}

/**
 * ksys_read(fd, buf, count): read(2) at the file position (none for stream files).
 * @kernel fs/read_write.c:ksys_read (all versions)
 * Return: bytes read or -errno (-EBADF for a bad descriptor).
 */
export function* ksys_read(fd: number, buf: number, count: number): Op<number> {
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  const ppos = f.f_mode & FMODE_STREAM ? null : { pos: f_pos(f) };
  const ret = yield* vfs_read(f, buf, count, ppos);
  if (ret >= 0 && ppos) set_f_pos(f, ppos.pos);
  fput(f);
  return ret;
}

/**
 * ksys_write(fd, buf, count): write(2) at the file position.
 * @kernel fs/read_write.c:ksys_write (all versions)
 * Return: bytes written or -errno.
 */
export function* ksys_write(fd: number, buf: number, count: number): Op<number> {
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  const ppos = f.f_mode & FMODE_STREAM ? null : { pos: f_pos(f) };
  const ret = yield* vfs_write(f, buf, count, ppos);
  if (ret >= 0 && ppos) set_f_pos(f, ppos.pos);
  fput(f);
  return ret;
}

/**
 * ksys_pread64(fd, buf, count, pos): a negative position is -EINVAL; a file without
 * FMODE_PREAD (a pipe) is -ESPIPE.
 * @kernel fs/read_write.c:ksys_pread64 (all versions)
 * Return: bytes read or -errno.
 */
export function* ksys_pread64(fd: number, buf: number, count: number, pos: number): Op<number> {
  if (pos < 0) return -EINVAL;
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  let ret = -ESPIPE;
  if (f.f_mode & FMODE_PREAD) ret = yield* vfs_read(f, buf, count, { pos });
  fput(f);
  return ret;
}

/**
 * ksys_pwrite64(fd, buf, count, pos): as ksys_pread64 for writing (FMODE_PWRITE).
 * @kernel fs/read_write.c:ksys_pwrite64 (all versions)
 * Return: bytes written or -errno.
 */
export function* ksys_pwrite64(fd: number, buf: number, count: number, pos: number): Op<number> {
  if (pos < 0) return -EINVAL;
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  let ret = -ESPIPE;
  if (f.f_mode & FMODE_PWRITE) ret = yield* vfs_write(f, buf, count, { pos });
  fput(f);
  return ret;
}
