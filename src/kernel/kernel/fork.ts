/**
 * Address-space and task creation (kernel/fork.c): mm_alloc, and process creation for
 * the model's user tasks. dup_mmap / copy_process for fork() live with the fork model.
 *
 * @kernel kernel/fork.c:mm_alloc, mm_init (all versions)
 */
import { currentKernel } from './kernel.js';
import type { mm_struct } from '../include/linux/mm_types.js';
import type { task_struct } from '../include/linux/sched.js';
import { rw_semaphore, seqcount_t, spinlock_t } from '../include/linux/spinlock.js';
import { pagetable_alloc } from '../include/linux/pgtable.js';
import { TASK_SIZE_MAX } from '../arch/x86/include/asm/pgtable_types.js';

/** Top of the mmap area (below the stack gap), as arch_pick_mmap_layout gives it. */
export const MMAP_BASE = 0x7f0000000000;

/**
 * mm_alloc(): a new, empty address space with its own PGD.
 * Locking: none (the mm is private until published).
 * Return: the mm, or null when the PGD cannot be allocated.
 */
export function mm_alloc(): mm_struct | null {
  const k = currentKernel();
  const id = k.nextId('mm');
  const mm: mm_struct = {
    id,
    pgd: null as never,
    mmap_lock: new rw_semaphore(`mm${id}.mmap_lock`),
    page_table_lock: new spinlock_t(`mm${id}.page_table_lock`),
    write_protect_seq: new seqcount_t(`mm${id}.write_protect_seq`),
    mmap: [],
    owner: null,
    mm_users: 1,
    mm_count: 1,
    flags: 0,
    def_flags: 0n,
    rss_stat: [0, 0, 0, 0],
    total_vm: 0,
    locked_vm: 0,
    pinned_vm: 0,
    notifier_subscriptions: null,
    mmap_base: MMAP_BASE,
    task_size: TASK_SIZE_MAX,
    pgtables_bytes: 0,
  };
  const pgd = pagetable_alloc(mm, 'pgd');
  if (!pgd) return null;
  mm.pgd = pgd;
  return mm;
}

/** Creates a user task with a fresh address space (the model's execve of an empty image). */
export function create_user_task(
  comm: string,
  opts: { caps?: string[]; rlimit_memlock?: number } = {},
): task_struct {
  const k = currentKernel();
  const mm = mm_alloc();
  if (!mm) throw new Error('out of memory creating a task');
  const pid = k.nextId('pid') + 1000;
  const t: task_struct = {
    pid,
    tgid: pid,
    comm,
    mm,
    fatal_signal: false,
    caps: new Set(opts.caps ?? []),
    rlimit_memlock: opts.rlimit_memlock ?? 8 * 1024 * 1024,
  };
  mm.owner = t;
  return t;
}

/** A kernel thread (no mm), e.g. a driver's worker. */
export function create_kthread(comm: string): task_struct {
  const k = currentKernel();
  const pid = k.nextId('pid') + 1000;
  return {
    pid,
    tgid: pid,
    comm,
    mm: null,
    fatal_signal: false,
    caps: new Set(['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_RAWIO']),
    rlimit_memlock: Infinity,
  };
}
