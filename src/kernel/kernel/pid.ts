/**
 * The pid table of a kernel instance: tasks are attached when created and detached when
 * they are released, and system calls that name a process by pid (process_vm_readv,
 * /proc/<pid>) find it here.
 *
 * Left out: pid namespaces (every lookup is in the initial namespace), thread groups
 * (every task is its own group leader), task reference counts (a looked-up task stays
 * valid for the model's lifetime of the kernel).
 *
 * @kernel kernel/pid.c:attach_pid, detach_pid, find_task_by_vpid, find_get_task_by_vpid
 *   (all versions)
 */
import { currentKernel } from './kernel.js';
import type { task_struct } from '../include/linux/sched.js';

function pidTable(): Map<number, task_struct> {
  const k = currentKernel();
  return ((k.sub.pid_hash as Map<number, task_struct> | undefined) ??= new Map());
}

/**
 * attach_pid(task, PIDTYPE_PID): makes the task findable by its pid.
 * @kernel kernel/pid.c:attach_pid (all versions)
 */
export function attach_pid(task: task_struct): void {
  pidTable().set(task.pid, task);
}

/**
 * detach_pid(task, PIDTYPE_PID): the pid no longer names the task (release_task).
 * @kernel kernel/pid.c:detach_pid (all versions)
 */
export function detach_pid(task: task_struct): void {
  if (pidTable().get(task.pid) === task) pidTable().delete(task.pid);
}

/**
 * find_task_by_vpid(nr) / find_get_task_by_vpid(nr): the task with pid nr.
 * @kernel kernel/pid.c:find_task_by_vpid, find_get_task_by_vpid (all versions)
 * Return: the task, or null.
 */
export function find_get_task_by_vpid(nr: number): task_struct | null {
  return pidTable().get(nr) ?? null;
}
export const find_task_by_vpid = find_get_task_by_vpid;
