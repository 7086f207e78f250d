/**
 * A task's exit, as far as memory and files go: the address space is let go (exit_mm;
 * the last user tears it down), the open-file table is dropped (exit_files; the last
 * reference of each file is released by the task work run next), the deferred file
 * releases run (exit_task_work), and the pid is released.
 *
 * Left out: signals to the parent and zombies (the task is reaped at once), robust
 * futexes, thread groups, accounting. exit_aio(mm) runs here before exit_mm when this
 * task holds the last user of the mm (the kernel runs it from __mmput).
 *
 * @kernel kernel/exit.c:do_exit, release_task (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import { exit_mm } from './fork.js';
import { exit_files } from '../include/linux/fdtable.js';
import { task_work_run } from '../fs/file_table.js';
import { detach_pid } from './pid.js';
import { exit_aio } from '../fs/aio.js';

/** The exit code a task left with (the model keeps it for the tool). */
const exitCodes = new WeakMap<task_struct, number>();

/**
 * do_exit(code): the task (current) leaves: exit_aio when it holds the mm's last user,
 * exit_mm, exit_files, exit_task_work (the deferred __fput of its last file references),
 * then release_task (detach_pid).
 * @kernel kernel/exit.c:do_exit, release_task (all versions)
 * Locking: no locks held.
 * Return: nothing (the kernel's do_exit does not return).
 */
export function* do_exit(tsk: task_struct, code: number): Op<void> {
  exitCodes.set(tsk, code);
  const mm = tsk.mm;
  if (mm && mm.mm_users === 1) yield* exit_aio(mm);
  yield* exit_mm(tsk);
  yield* exit_files(tsk);
  // exit_task_work(tsk)
  yield* task_work_run();
  // release_task(p) (no zombie state in the model)
  detach_pid(tsk);
}

/** The code a task exited with, or undefined while it lives (the tool's accessor). */
export function exitCode(tsk: task_struct): number | undefined {
  return exitCodes.get(tsk);
}
