/**
 * The open-file table of a task (struct files_struct) and the descriptor operations of
 * fs/file.c: allocating the lowest free descriptor, installing a file in it, looking a
 * descriptor up with a reference (fget), closing, duplicating the table at fork (dup_fd:
 * every file gets a reference) and dropping it at exit.
 *
 * A descriptor reserved by get_unused_fd_flags but not yet installed holds null, as the
 * kernel's open_fds bit is set before fd_install fills fdt->fd[fd].
 *
 * Left out: close-on-exec (O_CLOEXEC is accepted and recorded, there is no exec), RCU
 * lookups (fget takes the table lock's step instead), the fdtable resizing, dup2/dup3.
 *
 * @kernel include/linux/fdtable.h:struct files_struct, fs/file.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type { file } from './mm_types.js';
import type { task_struct } from './sched.js';
import { get_current } from './sched.js';
import { spinlock_t, spin_lock, spin_unlock } from './spinlock.js';
import { EBADF, EMFILE } from './errno.js';
import { currentKernel } from '../../kernel/kernel.js';
import { fput, get_file } from '../../fs/file_table.js';

/** RLIMIT_NOFILE default soft limit. */
export const NR_OPEN_DEFAULT = 1024;

export interface files_struct {
  /** References: tasks sharing the table (CLONE_FILES). */
  count: number;
  /** fdt->fd[]: descriptor → file; null while reserved (get_unused_fd_flags). */
  readonly fdt: Map<number, file | null>;
  /** Descriptors with close-on-exec set. */
  readonly close_on_exec: Set<number>;
  /** The lowest descriptor that may be free (files->next_fd). */
  next_fd: number;
  readonly file_lock: spinlock_t;
  /** RLIMIT_NOFILE of the owner. */
  nofile: number;
}

/**
 * A new empty table (init_files / the table of a freshly created process).
 * @kernel fs/file.c:dup_fd of init_files (the model starts processes with no descriptors)
 */
export function alloc_files_struct(): files_struct {
  const id = currentKernel().nextId('files');
  return {
    count: 1,
    fdt: new Map(),
    close_on_exec: new Set(),
    next_fd: 0,
    file_lock: new spinlock_t(`files${id}.file_lock`),
    nofile: NR_OPEN_DEFAULT,
  };
}

function files_of(t: task_struct): files_struct | null {
  return t.files ?? null;
}

/**
 * alloc_fd(start, end, flags): the lowest free descriptor at or above start, marked
 * in use (reserved).
 * @kernel fs/file.c:alloc_fd (all versions)
 * Locking: takes files->file_lock.
 * Return: the descriptor, or -EMFILE.
 */
export function* alloc_fd(files: files_struct, start: number, flags: number): Op<number> {
  yield* spin_lock(files.file_lock);
  let fd = Math.max(start, files.next_fd);
  while (files.fdt.has(fd)) fd++;
  let error: number;
  if (fd >= files.nofile) {
    error = -EMFILE;
  } else {
    if (start <= files.next_fd) files.next_fd = fd + 1;
    files.fdt.set(fd, null);
    if (flags & 0o2000000) files.close_on_exec.add(fd);
    else files.close_on_exec.delete(fd);
    error = fd;
  }
  yield* spin_unlock(files.file_lock);
  return error;
}

/**
 * get_unused_fd_flags(flags): reserves the lowest free descriptor of current.
 * @kernel fs/file.c:get_unused_fd_flags (all versions)
 * Return: the descriptor or -EMFILE.
 */
export function* get_unused_fd_flags(flags: number): Op<number> {
  const files = files_of(get_current());
  if (!files) return -EMFILE;
  return yield* alloc_fd(files, 0, flags);
}

/**
 * put_unused_fd(fd): gives a reserved descriptor back.
 * @kernel fs/file.c:put_unused_fd (all versions)
 */
export function* put_unused_fd(fd: number): Op<void> {
  const files = files_of(get_current());
  if (!files) return;
  yield* spin_lock(files.file_lock);
  if (files.fdt.get(fd) === null) files.fdt.delete(fd);
  if (fd < files.next_fd) files.next_fd = fd;
  yield* spin_unlock(files.file_lock);
}

/**
 * fd_install(fd, file): publishes a file in a reserved descriptor; the descriptor takes
 * over the caller's reference.
 * @kernel fs/file.c:fd_install (all versions; BUG_ON a filled slot)
 */
export function* fd_install(fd: number, f: file): Op<void> {
  const files = files_of(get_current())!;
  yield { obj: files.file_lock.name, kind: 'write', what: 'fd_install' };
  files.fdt.set(fd, f);
}

/**
 * fget(fd): the file of current's descriptor with a reference taken.
 * @kernel fs/file.c:fget (all versions)
 * Return: the file, or null for a closed or reserved descriptor.
 */
export function* fget(fd: number): Op<file | null> {
  const files = files_of(get_current());
  if (!files) return null;
  yield { obj: files.file_lock.name, kind: 'read', what: 'fget' };
  const f = files.fdt.get(fd);
  if (!f) return null;
  return get_file(f);
}

/** fget_task(task, fd): as fget, on another task's table. */
export function* fget_task(task: task_struct, fd: number): Op<file | null> {
  const files = files_of(task);
  if (!files) return null;
  yield { obj: files.file_lock.name, kind: 'read', what: 'fget_task' };
  const f = files.fdt.get(fd);
  return f ? get_file(f) : null;
}

/**
 * file_close_fd(fd) / close_fd(fd) + filp_close: takes the file out of the table and
 * drops the table's reference (the last fput is deferred to task work).
 * @kernel fs/file.c:close_fd, file_close_fd (v6.8+; pick_file before), fs/open.c:filp_close
 *   (all versions)
 * Return: 0 or -EBADF.
 */
export function* close_fd(fd: number): Op<number> {
  const files = files_of(get_current());
  if (!files) return -EBADF;
  yield* spin_lock(files.file_lock);
  const f = files.fdt.get(fd);
  if (f) {
    files.fdt.delete(fd);
    files.close_on_exec.delete(fd);
    if (fd < files.next_fd) files.next_fd = fd;
  }
  yield* spin_unlock(files.file_lock);
  if (!f) return -EBADF;
  fput(f);
  return 0;
}

/**
 * dup_fd(oldf): a copy of the table for fork(): every open file gets a reference, the
 * close-on-exec set is copied, reserved (not yet installed) slots are left out.
 * @kernel fs/file.c:dup_fd (all versions)
 * Locking: takes oldf->file_lock.
 * Return: the new table.
 */
export function* dup_fd(oldf: files_struct): Op<files_struct> {
  const newf = alloc_files_struct();
  newf.nofile = oldf.nofile;
  yield* spin_lock(oldf.file_lock);
  for (const [fd, f] of oldf.fdt) {
    if (!f) continue;
    newf.fdt.set(fd, get_file(f));
    if (oldf.close_on_exec.has(fd)) newf.close_on_exec.add(fd);
  }
  newf.next_fd = oldf.next_fd;
  yield* spin_unlock(oldf.file_lock);
  return newf;
}

/**
 * put_files_struct(files) / exit_files(tsk): the task lets go of its table; the last
 * user closes every descriptor (close_files: filp_close on each).
 * @kernel fs/file.c:exit_files, put_files_struct, close_files (all versions)
 */
export function* exit_files(tsk: task_struct): Op<void> {
  const files = files_of(tsk);
  if (!files) return;
  tsk.files = null;
  if (--files.count > 0) return;
  const fds = [...files.fdt.keys()].sort((a, b) => a - b);
  for (const fd of fds) {
    const f = files.fdt.get(fd);
    files.fdt.delete(fd);
    if (f) fput(f);
    yield { obj: files.file_lock.name, kind: 'write', what: 'close_files' };
  }
}

/** The descriptors of a task's table that hold a file (for the tool's inspection). */
export function openFds(tsk: task_struct): number[] {
  const files = files_of(tsk);
  if (!files) return [];
  return [...files.fdt.entries()]
    .filter(([, f]) => f !== null)
    .map(([fd]) => fd)
    .sort((a, b) => a - b);
}
