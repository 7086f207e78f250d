/**
 * Pipes: a ring of up to 16 buffers, each a part of one page with the operations that
 * own the page reference (anonymous pages the pipe allocated for write(2), or user
 * pages vmsplice took references on). Reading copies out of the buffers and releases
 * each one it empties (put_page); the last close of both ends releases whatever is
 * left (free_pipe_info).
 *
 * A reader of an empty pipe with writers, or a writer of a full one, waits: the model's
 * step is blocked until the other side moves (a run where nobody can is a deadlock).
 *
 * Left out: packet mode (O_DIRECT pipes), F_SETPIPE_SZ, buffer merging of small writes
 * into a page already in the ring, pipe accounting, SIGPIPE delivery (the writer gets
 * -EPIPE), watch queues, splice(2)/tee(2).
 *
 * @kernel fs/pipe.c:do_pipe2, create_pipe_files, pipe_read, pipe_write, pipe_release,
 *   free_pipe_info, anon_pipe_buf_release (all versions; the head/tail ring v5.5+)
 */
import type { Op } from '../../sched/index.js';
import type { file, file_operations, inode, page, super_block } from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import {
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_STREAM,
  O_CLOEXEC,
  O_DIRECT,
  O_NONBLOCK,
  type file_operations_rw,
  type kiocb,
} from '../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../include/linux/uio.js';
import { EAGAIN, EFAULT, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { mutex, mutex_lock, mutex_unlock } from '../include/linux/spinlock.js';
import { copy_page_from_iter, copy_page_to_iter } from '../lib/iov_iter.js';
import { put_page } from '../include/linux/page_ref.js';
import { alloc_page, GFP_USER, __GFP_ACCOUNT } from '../mm/page_alloc.js';
import { alloc_file, new_inode } from './inode.js';
import { fd_install, get_unused_fd_flags, put_unused_fd } from '../include/linux/fdtable.js';
import { fput } from './file_table.js';

/** EPIPE (errno-base.h). */
export const EPIPE = 32;

/** PIPE_DEF_BUFFERS */
export const PIPE_DEF_BUFFERS = 16;

/** PIPE_BUF_FLAG_* */
export const PIPE_BUF_FLAG_LRU = 0x01;
export const PIPE_BUF_FLAG_ATOMIC = 0x02;
export const PIPE_BUF_FLAG_GIFT = 0x04;
export const PIPE_BUF_FLAG_PACKET = 0x08;
export const PIPE_BUF_FLAG_CAN_MERGE = 0x10;

/** struct pipe_buf_operations */
export interface pipe_buf_operations {
  readonly name: string;
  /** ->release: the buffer's page reference goes. */
  release(pipe: pipe_inode_info, buf: pipe_buffer): void;
}

/** struct pipe_buffer */
export interface pipe_buffer {
  page: page;
  offset: number;
  len: number;
  ops: pipe_buf_operations;
  flags: number;
}

/** struct pipe_inode_info */
export interface pipe_inode_info {
  readonly id: number;
  readonly mutex: mutex;
  /** The ring, oldest first (bufs[tail & mask] .. bufs[head - 1 & mask]). */
  readonly bufs: pipe_buffer[];
  max_usage: number;
  readers: number;
  writers: number;
}

/** pipe_full(head, tail, limit) for the model's ring. */
export function pipe_full(pipe: pipe_inode_info): boolean {
  return pipe.bufs.length >= pipe.max_usage;
}

/** pipe_empty(head, tail) */
export function pipe_empty(pipe: pipe_inode_info): boolean {
  return pipe.bufs.length === 0;
}

/**
 * anon_pipe_buf_release(pipe, buf): the pipe's own page goes back (put_page; the kernel
 * may keep one page as pipe->tmp_page, left out).
 * @kernel fs/pipe.c:anon_pipe_buf_release (all versions)
 */
export const anon_pipe_buf_ops: pipe_buf_operations = {
  name: 'anon_pipe_buf_ops',
  release(_pipe, buf) {
    put_page(buf.page);
  },
};

/**
 * pipe_buf_release(pipe, buf): calls ->release.
 * @kernel include/linux/pipe_fs_i.h:pipe_buf_release (all versions)
 */
export function pipe_buf_release(pipe: pipe_inode_info, buf: pipe_buffer): void {
  buf.ops.release(pipe, buf);
}

/** The pipe of a pipe file (file->private_data). */
export function get_pipe_info(f: file, _for_splice: boolean): pipe_inode_info | null {
  if (f.f_op !== pipefifo_fops) return null;
  return f.private_data as pipe_inode_info;
}

/** Blocks until the predicate holds (pipe_wait_readable / pipe_wait_writable). */
function* pipe_wait(pipe: pipe_inode_info, what: string, until: () => boolean): Op<void> {
  yield { obj: `pipe${pipe.id}.wait`, kind: 'acquire', what, enabled: until };
  yield { obj: `pipe${pipe.id}.wait`, kind: 'release', what };
}

/**
 * pipe_read(iocb, to): copies from the oldest buffers into the iterator, releasing each
 * emptied buffer. An empty pipe returns 0 when no writer is left, -EAGAIN for
 * O_NONBLOCK, and otherwise waits for data.
 * @kernel fs/pipe.c:pipe_read (all versions)
 * Locking: takes pipe->mutex; copies to the user under it (as the kernel does).
 * Return: bytes read, 0, or -errno (-EFAULT when the first copy faults).
 */
export function* pipe_read(iocb: kiocb, to: iov_iter): Op<number> {
  const total_len = iov_iter_count(to);
  const filp = iocb.ki_filp;
  const pipe = filp.private_data as pipe_inode_info;
  let ret = 0;
  if (!total_len) return 0;
  yield* mutex_lock(pipe.mutex);
  for (;;) {
    while (!pipe_empty(pipe)) {
      const buf = pipe.bufs[0]!;
      const chars = Math.min(buf.len, iov_iter_count(to));
      const written = yield* copy_page_to_iter(buf.page, buf.offset, chars, to);
      if (written < chars) {
        if (!ret) ret = -EFAULT;
        break;
      }
      ret += chars;
      buf.offset += chars;
      buf.len -= chars;
      if (!buf.len) {
        pipe.bufs.shift();
        pipe_buf_release(pipe, buf);
      }
      if (!iov_iter_count(to)) break;
    }
    if (ret || !pipe.writers) break;
    if (filp.f_flags & O_NONBLOCK) {
      ret = -EAGAIN;
      break;
    }
    yield* mutex_unlock(pipe.mutex);
    yield* pipe_wait(pipe, 'pipe_wait_readable', () => !pipe_empty(pipe) || !pipe.writers);
    yield* mutex_lock(pipe.mutex);
  }
  yield* mutex_unlock(pipe.mutex);
  return ret;
}

/**
 * pipe_write(iocb, from): copies the iterator into new anonymous pages, one buffer per
 * page. No reader ⇒ -EPIPE (and SIGPIPE); a full pipe waits (or -EAGAIN for O_NONBLOCK).
 * @kernel fs/pipe.c:pipe_write (all versions)
 * Locking: takes pipe->mutex.
 * Return: bytes written, or -errno when nothing was.
 */
export function* pipe_write(iocb: kiocb, from: iov_iter): Op<number> {
  const filp = iocb.ki_filp;
  const pipe = filp.private_data as pipe_inode_info;
  let ret = 0;
  if (!iov_iter_count(from)) return 0;
  yield* mutex_lock(pipe.mutex);
  for (;;) {
    if (!pipe.readers) {
      if (!ret) ret = -EPIPE;
      break;
    }
    if (!pipe_full(pipe)) {
      const p = alloc_page(GFP_USER | __GFP_ACCOUNT);
      if (p === null) {
        if (!ret) ret = -ENOMEM;
        break;
      }
      const n = Math.min(PAGE_SIZE, iov_iter_count(from));
      const copied = yield* copy_page_from_iter(p, 0, n, from);
      if (copied < n && !copied) {
        put_page(p);
        if (!ret) ret = -EFAULT;
        break;
      }
      pipe.bufs.push({ page: p, offset: 0, len: copied, ops: anon_pipe_buf_ops, flags: 0 });
      ret += copied;
      if (!iov_iter_count(from) || copied < n) break;
      continue;
    }
    if (filp.f_flags & O_NONBLOCK) {
      if (!ret) ret = -EAGAIN;
      break;
    }
    yield* mutex_unlock(pipe.mutex);
    yield* pipe_wait(pipe, 'pipe_wait_writable', () => !pipe_full(pipe) || !pipe.readers);
    yield* mutex_lock(pipe.mutex);
  }
  yield* mutex_unlock(pipe.mutex);
  return ret;
}

/**
 * free_pipe_info(pipe): releases every buffer left in the ring.
 * @kernel fs/pipe.c:free_pipe_info (all versions)
 */
export function free_pipe_info(pipe: pipe_inode_info): void {
  while (pipe.bufs.length) pipe_buf_release(pipe, pipe.bufs.shift()!);
}

/**
 * pipe_release(inode, file): one end closes; when neither readers nor writers are left
 * the pipe is freed (its buffers released).
 * @kernel fs/pipe.c:pipe_release, put_pipe_info (all versions)
 */
export function pipe_release(_i: inode, f: file): void {
  const pipe = f.private_data as pipe_inode_info;
  if (f.f_mode & FMODE_READ) pipe.readers--;
  if (f.f_mode & FMODE_WRITE) pipe.writers--;
  if (!pipe.readers && !pipe.writers) free_pipe_info(pipe);
}

/** pipefifo_fops */
export const pipefifo_fops: file_operations & file_operations_rw = {
  name: 'pipefifo_fops',
  read_iter: pipe_read,
  write_iter: pipe_write,
  release: pipe_release,
  fmode: FMODE_STREAM,
};

function pipefs_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.pipefs_sb as super_block | undefined) ??= {
    s_type: 'pipefs',
    s_nowriteback: true,
  });
}

/**
 * alloc_pipe_info(): a new empty pipe.
 * @kernel fs/pipe.c:alloc_pipe_info (all versions)
 */
export function alloc_pipe_info(): pipe_inode_info {
  const id = currentKernel().nextId('pipe');
  return {
    id,
    mutex: new mutex(`pipe${id}.mutex`),
    bufs: [],
    max_usage: PIPE_DEF_BUFFERS,
    readers: 0,
    writers: 0,
  };
}

/**
 * create_pipe_files(res, flags): a pipe inode and its two open files, [read end, write
 * end], O_RDONLY and O_WRONLY, stream files (no pread/pwrite).
 * @kernel fs/pipe.c:create_pipe_files, get_pipe_inode (all versions)
 */
export function create_pipe_files(flags: number): [file, file] {
  const pipe = alloc_pipe_info();
  const i = new_inode(pipefs_sb(), 'anon');
  i.i_private = pipe;
  // Each end holds an inode reference.
  i.i_count = 2;
  const w = alloc_file('pipe:[w]', 1 | (flags & O_NONBLOCK), i, pipefifo_fops);
  const r = alloc_file('pipe:[r]', 0 | (flags & O_NONBLOCK), i, pipefifo_fops);
  for (const f of [r, w]) {
    f.private_data = pipe;
    f.f_mode |= FMODE_STREAM | (f === r ? FMODE_CAN_READ : FMODE_CAN_WRITE);
  }
  pipe.readers = 1;
  pipe.writers = 1;
  return [r, w];
}

/**
 * do_pipe2(fildes, flags): two descriptors, [read end, write end].
 * @kernel fs/pipe.c:do_pipe2, __do_pipe_flags (all versions)
 * Return: [rfd, wfd] or -errno (-EINVAL for unknown flags, -EMFILE).
 */
export function* do_pipe2(flags: number): Op<[number, number] | number> {
  if (flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT)) return -EINVAL;
  const [r, w] = create_pipe_files(flags);
  const rfd = yield* get_unused_fd_flags(flags);
  if (rfd < 0) {
    fput(r);
    fput(w);
    return rfd;
  }
  const wfd = yield* get_unused_fd_flags(flags);
  if (wfd < 0) {
    yield* put_unused_fd(rfd);
    fput(r);
    fput(w);
    return wfd;
  }
  yield* fd_install(rfd, r);
  yield* fd_install(wfd, w);
  return [rfd, wfd];
}
