/**
 * /proc/<pid>/mem: opening it takes the task's mm (mm_access with PTRACE_MODE_ATTACH,
 * kept with mmgrab), and every read or write at offset `addr` copies through
 * access_remote_vm, a page of bounce buffer at a time, with FOLL_FORCE (unless the
 * proc_mem.force_override policy of v6.12+ says otherwise) and FOLL_WRITE for writes.
 * When nothing at all could be copied the result is -EIO; a short copy returns what was
 * done.
 *
 * Left out: the other /proc/<pid> entries, pid namespaces, the dentry revalidation, the
 * proc_mem.force_override= boot parameter (the Kconfig default is modelled:
 * CONFIG_PROC_MEM_ALWAYS_FORCE unless CONFIG_PROC_MEM_NO_FORCE or
 * CONFIG_PROC_MEM_FORCE_PTRACE is set), ptrace itself (FORCE_PTRACE never forces).
 *
 * @kernel fs/proc/base.c:mem_open, __mem_open, proc_mem_open, mem_rw, mem_read,
 *   mem_write, mem_lseek, mem_release, proc_mem_foll_force (v6.12+) (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type {
  file,
  file_operations,
  inode,
  mm_struct,
  super_block,
} from '../../include/linux/mm_types.js';
import type { task_struct } from '../../include/linux/sched.js';
import { get_current } from '../../include/linux/sched.js';
import {
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_UNSIGNED_OFFSET,
  type file_operations_rw,
} from '../../include/linux/fs.js';
import { FOLL_FORCE, FOLL_WRITE } from '../../include/linux/mm.js';
import { EFAULT, EIO, ESRCH } from '../../include/linux/errno.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { currentKernel } from '../../kernel/kernel.js';
import { copy_from_user, copy_to_user } from '../../arch/x86/mm/fault.js';
import { access_remote_vm } from '../../mm/memory.access.js';
import {
  PTRACE_MODE_ATTACH,
  PTRACE_MODE_FSCREDS,
  mm_access,
  mmget_not_zero,
  mmgrab,
} from '../../kernel/fork.access.js';
import { mmdrop, mmput } from '../../kernel/fork.js';
import { new_inode } from '../inode.js';
import { since } from '../../version.js';

/** The proc super_block of the kernel instance. */
export function proc_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.proc_sb as super_block | undefined) ??= { s_type: 'proc', s_nowriteback: true });
}

/**
 * proc_pid_make_inode(sb, task): an inode of a /proc/<pid> entry naming the task.
 * @kernel fs/proc/base.c:proc_pid_make_inode (all versions)
 */
export function proc_pid_make_inode(task: task_struct): inode {
  const i = new_inode(proc_sb(), 'reg');
  i.i_private = task;
  return i;
}

/** get_proc_task(inode): the task the inode names. */
export function get_proc_task(i: inode): task_struct | null {
  return (i.i_private as task_struct | null) ?? null;
}

/**
 * proc_mem_open(inode, mode): the task's mm if current may ptrace-attach it (mm_access
 * with PTRACE_MODE_FSCREDS); the open keeps only an mm_count reference (mmgrab), the
 * user reference is dropped.
 * @kernel fs/proc/base.c:proc_mem_open (all versions)
 * Return: the mm, null (no task or no mm), or -errno.
 */
export function* proc_mem_open(i: inode, mode: number): Op<mm_struct | null | number> {
  const task = get_proc_task(i);
  if (!task) return -ESRCH;
  const mm = yield* mm_access(task, mode | PTRACE_MODE_FSCREDS, get_current());
  if (typeof mm === 'number') return since(6, 13) && mm === -ESRCH ? null : mm;
  if (mm) {
    // ensure this mm_struct can't be freed
    yield* mmgrab(mm);
    // but do not pin its memory
    yield* mmput(mm);
  }
  return mm;
}

/**
 * mem_open(inode, file) = __mem_open(inode, file, PTRACE_MODE_ATTACH): keeps the mm in
 * file->private_data and allows offsets above LLONG_MAX (FMODE_UNSIGNED_OFFSET).
 * @kernel fs/proc/base.c:mem_open, __mem_open (all versions)
 * Return: 0 or -errno.
 */
export function* mem_open(i: inode, f: file): Op<number> {
  const mm = yield* proc_mem_open(i, PTRACE_MODE_ATTACH);
  if (typeof mm === 'number') return mm;
  f.private_data = mm;
  f.f_mode |= FMODE_UNSIGNED_OFFSET;
  return 0;
}

/**
 * proc_mem_foll_force(file, mm): whether accesses use FOLL_FORCE: always
 * (CONFIG_PROC_MEM_ALWAYS_FORCE, the default), never (CONFIG_PROC_MEM_NO_FORCE), or
 * only for an active ptracer (CONFIG_PROC_MEM_FORCE_PTRACE; the model has no ptrace).
 * Before v6.12 (41e8149c8892 "proc: add config & param to block forcing mem writes")
 * always.
 * @kernel fs/proc/base.c:proc_mem_foll_force (v6.12+)
 */
export function proc_mem_foll_force(_f: file, _mm: mm_struct): boolean {
  if (!since(6, 12)) return true;
  const c = currentKernel().config;
  if (c.CONFIG_PROC_MEM_NO_FORCE === true) return false;
  if (c.CONFIG_PROC_MEM_FORCE_PTRACE === true) return false;
  return true;
}

/**
 * mem_rw(file, buf, count, ppos, write): copies count bytes between the user buffer buf
 * and the target mm at *ppos, PAGE_SIZE at a time through a kernel bounce page and
 * access_remote_vm. The first chunk that copies nothing ends the loop: -EIO if nothing
 * was copied at all. A fault on the user buffer is -EFAULT.
 * @kernel fs/proc/base.c:mem_rw (all versions)
 * Locking: no locks held; access_remote_vm takes the target's mmap_lock.
 * Return: bytes copied, 0 (no mm, or the mm is gone), or -errno.
 */
export function* mem_rw(
  f: file,
  buf: number,
  count: number,
  ppos: { pos: number },
  write: boolean,
): Op<number> {
  const mm = f.private_data as mm_struct | null;
  let addr = ppos.pos;
  if (!mm) return 0;
  const page = new Uint8Array(PAGE_SIZE);
  let copied = 0;
  if (!(yield* mmget_not_zero(mm))) return 0;
  let flags = write ? FOLL_WRITE : 0;
  if (proc_mem_foll_force(f, mm)) flags |= FOLL_FORCE;
  while (count > 0) {
    let this_len = Math.min(count, PAGE_SIZE);
    if (write && (yield* copy_from_user(page, buf, this_len))) {
      copied = -EFAULT;
      break;
    }
    this_len = yield* access_remote_vm(mm, addr, page, this_len, flags);
    if (!this_len) {
      if (!copied) copied = -EIO;
      break;
    }
    if (!write && (yield* copy_to_user(buf, page, this_len))) {
      copied = -EFAULT;
      break;
    }
    buf += this_len;
    addr += this_len;
    copied += this_len;
    count -= this_len;
  }
  ppos.pos = addr;
  yield* mmput(mm);
  return copied;
}

/** mem_read(file, buf, count, ppos) */
export function mem_read(f: file, buf: number, count: number, ppos: { pos: number }): Op<number> {
  return mem_rw(f, buf, count, ppos, false);
}

/** mem_write(file, buf, count, ppos) */
export function mem_write(f: file, buf: number, count: number, ppos: { pos: number }): Op<number> {
  return mem_rw(f, buf, count, ppos, true);
}

/**
 * mem_release(inode, file): drops the mm_count reference of the open (mmdrop).
 * @kernel fs/proc/base.c:mem_release (all versions)
 * Model: ->release is a plain function here, so mmdrop's one step (the mm_count
 *   decrement) runs inline instead of being scheduled.
 */
export function mem_release(_i: inode, f: file): void {
  const mm = f.private_data as mm_struct | null;
  if (!mm) return;
  const op = mmdrop(mm);
  while (!op.next().done);
}

/** proc_mem_operations */
export const proc_mem_operations: file_operations & file_operations_rw = {
  name: 'proc_mem_operations',
  read: mem_read,
  write: mem_write,
  open: mem_open,
  release: mem_release,
  fmode: FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE,
};
