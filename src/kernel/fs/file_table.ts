/**
 * Dropping file references. The last fput() does not release the file at once: for a
 * user task the kernel queues __fput() as task work run on the way back to user space
 * (and delayed_fput for kernel threads), so munmap never releases a file under
 * mmap_lock. The model queues it per kernel and runs the queue at the model's return
 * points (the end of a system call, exit).
 *
 * @kernel fs/file_table.c:fput, __fput, flush_delayed_fput; kernel/task_work.c:task_work_run
 *   (all versions)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import type { file } from '../include/linux/mm_types.js';
import { iput } from './inode.js';

function queue(): file[] {
  return ((currentKernel().sub.delayed_fput as file[] | undefined) ??= []);
}

/** get_file(file) */
export function get_file(f: file): file {
  f.f_count++;
  return f;
}

/**
 * fput(file): drops a reference; the last one queues __fput.
 * Locking: any context.
 */
export function fput(f: file): void {
  if (--f.f_count === 0) queue().push(f);
}

/**
 * __fput(file): ->release, then the inode reference (iput may evict an unlinked inode).
 * Locking: process context, no locks held.
 */
export function* __fput(f: file): Op<void> {
  const r = f.f_op.release?.(f.f_inode, f);
  if (r) yield* r;
  yield* iput(f.f_inode);
}

/**
 * task_work_run(): runs the queued __fput work (the model's only task work), as the
 * return to user space and do_exit do.
 * Locking: no locks held.
 */
export function* task_work_run(): Op<void> {
  const q = queue();
  while (q.length) yield* __fput(q.shift()!);
}
