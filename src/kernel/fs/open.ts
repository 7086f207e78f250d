/**
 * open(2), close(2) and ftruncate(2): do_sys_open reserves a descriptor, opens the path
 * (fs/namei.ts) and installs the file; close drops the descriptor's reference (the last
 * one is released at the return to user space); ftruncate changes the size through the
 * file system's ->setattr.
 *
 * Left out: openat2's RESOLVE_* flags, file modes and umask, O_TMPFILE, O_PATH,
 * ftruncate of files over 2 GiB without O_LARGEFILE (every model open is large-file,
 * as on 64-bit), leases and IS_APPEND.
 *
 * @kernel fs/open.c:do_sys_open, do_sys_openat2, build_open_flags, do_ftruncate,
 *   do_sys_ftruncate; fs/file.c:close_fd (all versions)
 */
import type { Op } from '../../sched/index.js';
import { FMODE_WRITE } from '../include/linux/mm_types.js';
import { O_LARGEFILE } from '../include/linux/fs.js';
import { EBADF, EINVAL } from '../include/linux/errno.js';
import {
  close_fd,
  fd_install,
  fget,
  get_unused_fd_flags,
  put_unused_fd,
} from '../include/linux/fdtable.js';
import { fput } from './file_table.js';
import { do_filp_open, do_truncate } from './namei.js';

/** Flags open(2) keeps (VALID_OPEN_FLAGS, reduced to the model's). */
const VALID_OPEN_FLAGS = 0o37777777;

/**
 * do_sys_open(dfd, filename, flags, mode): open(2)/openat(2) with AT_FDCWD.
 * @kernel fs/open.c:do_sys_open, do_sys_openat2, build_open_flags (all versions)
 * Locking: none held.
 * Return: the new descriptor or -errno.
 */
export function* do_sys_open(filename: string, flags: number, mode: number): Op<number> {
  // build_open_flags(): force_o_largefile() on 64-bit; unknown bits are ignored by open(2).
  flags = (flags & VALID_OPEN_FLAGS) | O_LARGEFILE;
  const fd = yield* get_unused_fd_flags(flags);
  if (fd < 0) return fd;
  const f = yield* do_filp_open(filename, flags, mode);
  if (typeof f === 'number') {
    yield* put_unused_fd(fd);
    return f;
  }
  yield* fd_install(fd, f);
  return fd;
}

/**
 * close(2): close_fd.
 * @kernel fs/open.c:SYSCALL_DEFINE1(close), fs/file.c:close_fd (all versions)
 * Return: 0 or -EBADF.
 */
export function ksys_close(fd: number): Op<number> {
  return close_fd(fd);
}

/**
 * do_sys_ftruncate(fd, length, small): a negative length is -EINVAL; a bad descriptor
 * -EBADF; a file not open for writing or not a regular file -EINVAL; then do_truncate
 * (->setattr with ATTR_SIZE).
 * @kernel fs/open.c:do_sys_ftruncate, do_ftruncate (all versions)
 * Return: 0 or -errno.
 */
export function* do_sys_ftruncate(fd: number, length: number, _small: number): Op<number> {
  if (length < 0) return -EINVAL;
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  let error: number;
  if (f.f_inode.i_kind !== 'reg' || !(f.f_mode & FMODE_WRITE)) error = -EINVAL;
  else error = yield* do_truncate(f.f_inode, length);
  fput(f);
  return error;
}
