/**
 * The boundary between a model process and the kernel: do_syscall runs a system call's
 * body as the task (current = task for its duration, whatever model thread runs it) and
 * then returns to user space the way syscall_exit_to_user_mode does: pending task work
 * runs (the deferred __fput of files whose last reference went during the call), and
 * lockdep checks that no lock is still held ("WARNING: lock held when returning to user
 * space!", which turns lockdep off, like any lockdep report). Faults taken by user-mode
 * accesses return through the same exit (irqentry_exit_to_user_mode).
 *
 * Left out: signals (delivered by the caller from the result), rseq, audit, seccomp,
 * syscall tracing, context tracking, the user-mode entry work (nothing to do on entry
 * in the model).
 *
 * @kernel arch/x86/entry/common.c:do_syscall_64 (v5.x–v6.x; arch/x86/entry/syscall_64.c
 *   in v6.13+), kernel/entry/common.c:syscall_exit_to_user_mode, exit_to_user_mode_loop,
 *   irqentry_exit_to_user_mode; kernel/locking/lockdep.c:lockdep_sys_exit (all versions)
 */
import { currentThread, type Op } from '../../../../sched/index.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { pr_warn } from '../../../kernel/printk.js';
import { task_work_run } from '../../../fs/file_table.js';
import { pfnsan_user_return } from '../../../mm/pfnsan/pfnsan.js';

/**
 * debug_locks_off(): lockdep reports once, then stops checking.
 * @kernel lib/debug_locks.c:debug_locks_off (all versions)
 * Return: whether this call turned it off (whether to report).
 */
function debug_locks_off(): boolean {
  const k = currentKernel();
  if (!k.debug_locks) return false;
  k.debug_locks = false;
  return true;
}

/**
 * lockdep_sys_exit(): a task returning to user space holds no lock; if it does, the
 * report lists the locks and lockdep turns itself off (debug_locks_off).
 * @kernel kernel/locking/lockdep.c:lockdep_sys_exit (all versions, CONFIG_LOCKDEP)
 * Return: true when the report was printed.
 */
export function lockdep_sys_exit(task: task_struct): boolean {
  const k = currentKernel();
  if (k.config.CONFIG_LOCKDEP !== true) return false;
  const held = currentThread().held;
  if (!held.length) return false;
  if (!debug_locks_off()) return false;
  const lines = [
    '',
    '================================================',
    'WARNING: lock held when returning to user space!',
    `${k.version.name}.0-pfnsim`,
    '------------------------------------------------',
    `${task.comm}/${task.pid} is leaving the kernel with locks still held!`,
    `${held.length} lock${held.length > 1 ? 's' : ''} held by ${task.comm}/${task.pid}:`,
    ...held.map((h, i) => ` #${i}: ${h.name}${h.shared ? ' (read)' : ''}`),
  ];
  pr_warn(lines.join('\n'));
  return true;
}

/**
 * exit_to_user_mode(): the work done on every return to user space: task work, then the
 * lockdep check.
 * @kernel kernel/entry/common.c:syscall_exit_to_user_mode, exit_to_user_mode_loop
 *   (resume_user_mode_work -> task_work_run), exit_to_user_mode_prepare (lockdep_sys_exit)
 * Locking: none may be held.
 */
export function* exit_to_user_mode(task: task_struct): Op<void> {
  // exit_to_user_mode_loop(): _TIF_NOTIFY_RESUME -> resume_user_mode_work -> task_work_run
  yield* task_work_run();
  pfnsan_user_return(task);
  lockdep_sys_exit(task);
}

/**
 * do_syscall(task, op): runs a system call body as `task` (current) and returns to user
 * space. The op's result is the system call's return value.
 * @kernel arch/x86/entry/common.c:do_syscall_64 (the model's entry for every system call)
 * Locking: none held on entry or return (lockdep reports otherwise).
 */
export function* do_syscall<T>(task: task_struct, op: Op<T>): Op<T> {
  const t = currentThread();
  const prev = t.ctx;
  t.ctx = task;
  try {
    const ret = yield* op;
    yield* exit_to_user_mode(task);
    return ret;
  } finally {
    t.ctx = prev;
  }
}

/**
 * A user-mode access (a load or store of the process) as the kernel sees it: the #PF
 * handler runs as the task, then irqentry_exit_to_user_mode.
 * @kernel kernel/entry/common.c:irqentry_exit_to_user_mode (all versions)
 */
export function* do_user_access<T>(task: task_struct, op: Op<T>): Op<T> {
  return yield* do_syscall(task, op);
}
