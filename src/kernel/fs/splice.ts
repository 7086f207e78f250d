/**
 * vmsplice(2): a write end gets the user pages themselves as pipe buffers. The pages are
 * taken with iov_iter_get_pages2 (get_user_pages_fast, FOLL_GET: references, not pins)
 * and each buffer owns one reference (user_page_pipe_buf_ops: ->release is put_page),
 * so the pipe keeps the frames alive after munmap, and keeps the old frame after the
 * process writes to a COW page again. A read end copies pipe data out to the user
 * buffers (vmsplice_to_user).
 *
 * Left out: SPLICE_F_GIFT stealing (the flag is recorded on the buffers), splice(2),
 * tee(2), compat iovecs.
 *
 * @kernel fs/splice.c:vmsplice, vmsplice_to_pipe, iter_to_pipe, add_to_pipe,
 *   wait_for_space, vmsplice_to_user, user_page_pipe_buf_ops (v5.x+;
 *   iov_iter_get_pages2 v6.0+, iov_iter_get_pages + iov_iter_advance before)
 */
import type { Op } from '../../sched/index.js';
import type { file, page } from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import {
  ITER_DEST,
  ITER_SOURCE,
  iov_iter_count,
  type iov_iter,
  type iovec,
} from '../include/linux/uio.js';
import { EAGAIN, EBADF, EINVAL } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { mutex_lock, mutex_unlock } from '../include/linux/spinlock.js';
import { put_page } from '../include/linux/page_ref.js';
import { import_iovec, iov_iter_get_pages2, iov_iter_revert } from '../lib/iov_iter.js';
import { fget } from '../include/linux/fdtable.js';
import { fput } from './file_table.js';
import { init_sync_kiocb } from '../include/linux/fs.js';
import {
  EPIPE,
  PIPE_BUF_FLAG_GIFT,
  get_pipe_info,
  pipe_buf_release,
  pipe_full,
  pipe_read,
  type pipe_buf_operations,
  type pipe_buffer,
  type pipe_inode_info,
} from './pipe.js';

/** SPLICE_F_* (include/linux/splice.h). */
export const SPLICE_F_MOVE = 0x01;
export const SPLICE_F_NONBLOCK = 0x02;
export const SPLICE_F_MORE = 0x04;
export const SPLICE_F_GIFT = 0x08;
export const SPLICE_F_ALL = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT;

/**
 * user_page_pipe_buf_ops: a vmspliced user page; ->release puts the reference
 * iov_iter_get_pages2 took.
 * @kernel fs/splice.c:user_page_pipe_buf_ops, page_cache_pipe_buf_release (all versions)
 */
export const user_page_pipe_buf_ops: pipe_buf_operations = {
  name: 'user_page_pipe_buf_ops',
  release(_pipe, buf) {
    put_page(buf.page);
  },
};

/**
 * add_to_pipe(pipe, buf): appends a buffer; no reader ⇒ -EPIPE, a full ring ⇒ -EAGAIN,
 * and in both cases the buffer is released.
 * @kernel fs/splice.c:add_to_pipe (all versions)
 * Locking: pipe->mutex held.
 * Return: buf->len or -errno.
 */
export function add_to_pipe(pipe: pipe_inode_info, buf: pipe_buffer): number {
  let ret: number;
  if (!pipe.readers) {
    ret = -EPIPE; // send_sig(SIGPIPE, current, 0)
  } else if (pipe_full(pipe)) {
    ret = -EAGAIN;
  } else {
    pipe.bufs.push({ ...buf });
    return buf.len;
  }
  pipe_buf_release(pipe, buf);
  return ret;
}

/**
 * wait_for_space(pipe, flags): no reader ⇒ -EPIPE; a full pipe ⇒ -EAGAIN with
 * SPLICE_F_NONBLOCK, else wait.
 * @kernel fs/splice.c:wait_for_space (all versions)
 * Locking: pipe->mutex held (dropped while waiting).
 * Return: 0 or -errno.
 */
function* wait_for_space(pipe: pipe_inode_info, flags: number): Op<number> {
  for (;;) {
    if (!pipe.readers) return -EPIPE;
    if (!pipe_full(pipe)) return 0;
    if (flags & SPLICE_F_NONBLOCK) return -EAGAIN;
    yield* mutex_unlock(pipe.mutex);
    yield {
      obj: `pipe${pipe.id}.wait`,
      kind: 'acquire',
      what: 'pipe_wait_writable',
      enabled: () => !pipe_full(pipe) || !pipe.readers,
    };
    yield { obj: `pipe${pipe.id}.wait`, kind: 'release', what: 'pipe_wait_writable' };
    yield* mutex_lock(pipe.mutex);
  }
}

/**
 * iter_to_pipe(from, pipe, flags): takes up to 16 pages at a time behind the iterator
 * (iov_iter_get_pages2: FOLL_GET references) and adds one buffer per page; a failure to
 * add gives back the rest of the batch (iov_iter_revert, put_page).
 * @kernel fs/splice.c:iter_to_pipe (all versions)
 * Locking: pipe->mutex held.
 * Return: bytes added, or the first error when nothing was.
 */
export function* iter_to_pipe(from: iov_iter, pipe: pipe_inode_info, flags: number): Op<number> {
  let total = 0;
  let ret = 0;
  out: while (iov_iter_count(from)) {
    const pages: page[] = [];
    const r = yield* iov_iter_get_pages2(from, pages, Number.MAX_SAFE_INTEGER, 16);
    let left = r.ret;
    let start = r.start;
    if (left <= 0) {
      ret = left;
      break;
    }
    const n = Math.ceil((left + start) / PAGE_SIZE);
    for (let i = 0; i < n; i++) {
      const size = Math.min(left, PAGE_SIZE - start);
      const buf: pipe_buffer = {
        page: pages[i]!,
        offset: start,
        len: size,
        ops: user_page_pipe_buf_ops,
        flags,
      };
      ret = add_to_pipe(pipe, buf);
      if (ret < 0) {
        iov_iter_revert(from, left);
        // this one got dropped by add_to_pipe()
        while (++i < n) put_page(pages[i]!);
        break out;
      }
      total += ret;
      left -= size;
      start = 0;
    }
  }
  return total ? total : ret;
}

/**
 * vmsplice_to_pipe(file, iter, flags): the write-end case.
 * @kernel fs/splice.c:vmsplice_to_pipe (all versions)
 * Locking: takes pipe->mutex.
 * Return: bytes spliced or -errno.
 */
export function* vmsplice_to_pipe(f: file, iter: iov_iter, flags: number): Op<number> {
  const buf_flag = flags & SPLICE_F_GIFT ? PIPE_BUF_FLAG_GIFT : 0;
  const pipe = get_pipe_info(f, true);
  if (!pipe) return -EBADF;
  yield* mutex_lock(pipe.mutex);
  let ret = yield* wait_for_space(pipe, flags);
  if (!ret) ret = yield* iter_to_pipe(iter, pipe, buf_flag);
  yield* mutex_unlock(pipe.mutex);
  return ret;
}

/**
 * vmsplice_to_user(file, iter, flags): the read-end case: the pipe's data is copied to
 * the user buffers (as a read(2) of the pipe).
 * @kernel fs/splice.c:vmsplice_to_user (all versions)
 * Return: bytes copied or -errno.
 */
export function* vmsplice_to_user(f: file, iter: iov_iter, _flags: number): Op<number> {
  const pipe = get_pipe_info(f, true);
  if (!pipe) return -EBADF;
  if (!iov_iter_count(iter)) return 0;
  return yield* pipe_read(init_sync_kiocb(f, 0), iter);
}

/**
 * vmsplice(fd, uiov, nr_segs, flags): unknown flags ⇒ -EINVAL; a bad descriptor ⇒
 * -EBADF; a write end splices user pages into the pipe, a read end copies out; an empty
 * iovec is 0.
 * @kernel fs/splice.c:SYSCALL_DEFINE4(vmsplice) (all versions)
 * Return: bytes or -errno.
 * Model: `iov` holds the iovec array's contents.
 */
export function* sys_vmsplice(fd: number, iov: readonly iovec[], flags: number): Op<number> {
  if (flags & ~SPLICE_F_ALL) return -EINVAL;
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  let type: number;
  if (f.f_mode & FMODE_WRITE) type = ITER_SOURCE;
  else if (f.f_mode & FMODE_READ) type = ITER_DEST;
  else {
    fput(f);
    return -EBADF;
  }
  const iter = import_iovec(type, iov);
  let error: number;
  if (typeof iter === 'number') error = iter;
  else if (!iov_iter_count(iter)) error = 0;
  else if (type === ITER_SOURCE) error = yield* vmsplice_to_pipe(f, iter, flags);
  else error = yield* vmsplice_to_user(f, iter, flags);
  fput(f);
  return error;
}
