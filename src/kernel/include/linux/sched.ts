/**
 * struct task_struct, reduced to what the model needs, and `current`.
 * @kernel include/linux/sched.h:struct task_struct (all versions)
 */
import { currentThread } from '../../../sched/index.js';
import type { mm_struct } from './mm_types.js';
import type { files_struct } from './fdtable.js';

export interface task_struct {
  readonly pid: number;
  tgid: number;
  comm: string;
  /** The address space; null for kernel threads. */
  mm: mm_struct | null;
  /** Set when a fatal signal is pending (fatal_signal_pending()). */
  fatal_signal: boolean;
  /** CAP_IPC_LOCK and friends, by name. */
  readonly caps: Set<string>;
  /** RLIMIT_MEMLOCK in bytes. */
  rlimit_memlock: number;
  /**
   * The open-file table (include/linux/fdtable.h); null or absent for kernel threads and
   * after exit_files.
   */
  files?: files_struct | null;
}

const swapper: task_struct = {
  pid: 0,
  tgid: 0,
  comm: 'swapper/0',
  mm: null,
  fatal_signal: false,
  caps: new Set(['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_RAWIO']),
  rlimit_memlock: Infinity,
};

/** `current`: the task of the running model thread (swapper when none is attached). */
export function get_current(): task_struct {
  const ctx = currentThread().ctx as task_struct | undefined;
  return ctx ?? swapper;
}

/** fatal_signal_pending(p) */
export function fatal_signal_pending(p: task_struct): boolean {
  return p.fatal_signal;
}
