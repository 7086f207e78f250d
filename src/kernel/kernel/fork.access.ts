/**
 * Taking another task's address space: get_task_mm (a user reference, mm_users + 1),
 * mmget_not_zero, mmgrab (a reference on the mm_struct only), and mm_access, the
 * ptrace-checked form /proc/<pid>/mem and process_vm_readv/writev use.
 *
 * ptrace_may_access is modelled as granted (every model process runs with the same
 * credentials, as root on the live machine), so mm_access fails only for a task without
 * an mm.
 *
 * @kernel kernel/fork.c:get_task_mm, mm_access; include/linux/sched/mm.h:mmget_not_zero,
 *   mmgrab (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct } from '../include/linux/mm_types.js';
import type { task_struct } from '../include/linux/sched.js';
import { ESRCH } from '../include/linux/errno.js';
import { since } from '../version.js';

/** PTRACE_MODE_* (include/linux/ptrace.h). */
export const PTRACE_MODE_READ = 0x01;
export const PTRACE_MODE_ATTACH = 0x02;
export const PTRACE_MODE_NOAUDIT = 0x04;
export const PTRACE_MODE_FSCREDS = 0x08;
export const PTRACE_MODE_REALCREDS = 0x10;
export const PTRACE_MODE_ATTACH_REALCREDS = PTRACE_MODE_ATTACH | PTRACE_MODE_REALCREDS;

/**
 * mmget_not_zero(mm): a user reference unless the mm is already being torn down.
 * @kernel include/linux/sched/mm.h:mmget_not_zero (all versions)
 * Return: true when a reference was taken.
 */
export function* mmget_not_zero(mm: mm_struct): Op<boolean> {
  yield { obj: `mm${mm.id}.mm_users`, kind: 'write', what: 'mmget_not_zero' };
  if (mm.mm_users === 0) return false;
  mm.mm_users++;
  return true;
}

/**
 * mmgrab(mm): pins the mm_struct (mm_count), not the address space.
 * @kernel include/linux/sched/mm.h:mmgrab (all versions)
 */
export function* mmgrab(mm: mm_struct): Op<void> {
  yield { obj: `mm${mm.id}.mm_count`, kind: 'write', what: 'mmgrab' };
  mm.mm_count++;
}

/**
 * get_task_mm(task): the task's mm with a user reference (none for kernel threads).
 * @kernel kernel/fork.c:get_task_mm (all versions)
 * Return: the mm or null.
 */
export function* get_task_mm(task: task_struct): Op<mm_struct | null> {
  const mm = task.mm;
  if (!mm) return null;
  yield { obj: `mm${mm.id}.mm_users`, kind: 'write', what: 'mmget' };
  mm.mm_users++;
  return mm;
}

/**
 * ptrace_may_access(task, mode): may current inspect task? The model's processes share
 * one set of credentials (root): always granted.
 * @kernel kernel/ptrace.c:ptrace_may_access (all versions; credentials left out)
 */
export function ptrace_may_access(_task: task_struct, _mode: number): boolean {
  return true;
}

/**
 * mm_access(task, mode): the task's mm with a user reference, if current may ptrace it.
 * A task without an mm is -ESRCH from v6.13 ("mm: refactor mm_access() to
 * not return NULL"), NULL before (callers turn it into -ESRCH).
 * @kernel kernel/fork.c:mm_access (all versions)
 * Return: the mm, null (no mm, before v6.13), or -errno.
 */
export function* mm_access(
  task: task_struct,
  mode: number,
  current: task_struct,
): Op<mm_struct | null | number> {
  const mm = yield* get_task_mm(task);
  if (!mm) return since(6, 13) ? -ESRCH : null;
  if (mm !== current.mm && !ptrace_may_access(task, mode)) {
    mm.mm_users--;
    return -13; // -EACCES
  }
  return mm;
}
