/**
 * Address-space and task creation (kernel/fork.c): mm_alloc, the model's user tasks, and
 * fork()'s memory side: dup_mmap, dup_mm, copy_mm and a model-level fork_task, with
 * mmput/mmdrop and exit_mm for the way back.
 *
 * @kernel kernel/fork.c:mm_alloc, mm_init (all versions)
 */
import type { Op } from '../../sched/index.js';
import { Refcount } from '../../sched/index.js';
import { currentKernel } from './kernel.js';
import type { file, mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
import { MMF_HAS_MDWE } from '../include/linux/mm_types.js';
import type { task_struct } from '../include/linux/sched.js';
import { fatal_signal_pending, get_current } from '../include/linux/sched.js';
import {
  down_write,
  rw_semaphore,
  seqcount_t,
  spinlock_t,
  up_write,
} from '../include/linux/spinlock.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../include/linux/mmap_lock.js';
import { pagetable_alloc, pagetable_free } from '../include/linux/pgtable.js';
import { TASK_SIZE_MAX } from '../arch/x86/include/asm/pgtable_types.js';
import {
  VM_DONTCOPY,
  VM_LOCKED,
  VM_LOCKONFAULT,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_WIPEONFORK,
} from '../include/linux/mm.js';
import { ENOMEM, EINTR } from '../include/linux/errno.js';
import { VM_BUG_ON, WARN_ON_ONCE } from './panic.js';
import { pr_alert } from './printk.js';
import { since } from '../version.js';
import { vm_area_dup, vma_link } from '../mm/vma.js';
import { copy_page_range } from '../mm/memory.copy.js';
import { hugetlb_dup_vma_private, is_vm_hugetlb_page } from '../mm/hugetlb.js';
import { exit_mmap } from '../mm/mmap.js';
import { untrack_pfn_clear } from '../arch/x86/mm/pat/memtype.js';
import { alloc_files_struct, dup_fd, exit_files } from '../include/linux/fdtable.js';
import { attach_pid } from './pid.js';

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
    files: alloc_files_struct(),
  };
  mm.owner = t;
  attach_pid(t);
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
    files: null,
  };
}

/* ------------------------------------------------------------------------------------ */
/* fork(): duplicating the address space (dup_mmap, dup_mm, copy_mm) and dropping it.    */
/* ------------------------------------------------------------------------------------ */

/** mm->flags bits a child inherits (MMF_INIT_MASK, as far as the model has MMF_* bits). */
function mmf_init_flags(flags: number): number {
  // MMF_HAS_MDWE is in MMF_INIT_MASK since b507808ebce2 (v6.3); MMF_HAS_PINNED never is.
  return since(6, 3) ? flags & (1 << MMF_HAS_MDWE) : 0;
}

/** `current` for the fork paths: the running model thread's task, else the mm's owner. */
function fork_current(oldmm: mm_struct): task_struct {
  const cur = get_current();
  return cur.mm === null && oldmm.owner ? oldmm.owner : cur;
}

/**
 * dup_mmap(mm, oldmm): gives the new mm a copy of every VMA of oldmm and, through
 * copy_page_range, of their page tables.
 * - VM_DONTCOPY VMAs are skipped: a hole in the child (R-FORK-1).
 * - VM_WIPEONFORK VMAs are duplicated without anon_vma and without page tables: an
 *   empty VMA of the same layout (R-FORK-1).
 * - the child VMA shares the parent's anon_vma (anon_vma_fork), its file (the model's
 *   vm_area_dup takes the file reference dup_mmap takes in the kernel), and loses
 *   VM_LOCKED|VM_LOCKONFAULT; vm_ops->open is called; file VMAs go into i_mmap under
 *   i_mmap_rwsem. Order: v6.9+ (35e351780fa9 "fork: defer linking file vma until vma is
 *   fully initialized") tree store, ->open, i_mmap link, copy; before, i_mmap link,
 *   tree store, copy, ->open.
 * - v6.15 (dc84bc2aba85): VM_PAT is cleared on a VM_PFNMAP child VMA; track_pfn_copy()
 *   sets it again once the child's reservation exists. From f8e97613fed2 (v6.16)
 *   vm_area_dup shares the pfnmap_track_ctx by kref and fails (-ENOMEM for the fork) when
 *   the kref is at REFCOUNT_MAX (vma_pfnmap_track_ctx_dup).
 * - a pending fatal signal of the forking task stops the loop with -EINTR.
 * - on error the VMAs copied so far (including the one whose copy failed) stay in the
 *   child for its teardown (v6.8+ marks the rest of the __mt_dup'ed tree with
 *   XA_ZERO_ENTRY; the model's child tree simply holds the copied VMAs).
 * @kernel kernel/fork.c:dup_mmap (v5.7-v6.15), mm/mmap.c:dup_mmap (v6.16+)
 * Locking: takes oldmm's mmap_lock for write (killable), then mm's nested; releases mm's,
 *   then oldmm's.
 * Return: 0, -EINTR, -ENOMEM, or copy_page_range's error.
 * Left out: uprobes, userfaultfd, mempolicy, VM_ACCOUNT charging (always succeeds),
 *   per-VMA locks (vma_start_write), KSM/khugepaged, hugetlb private data, the
 *   killable wait of mmap_write_lock_killable (the model's rwsem has no signals), the
 *   anon_vma_chain (one anon_vma per VMA family, shared with the child), maple tree
 *   allocation failures.
 */
export function* dup_mmap(mm: mm_struct, oldmm: mm_struct): Op<number> {
  let retval = 0;
  // mmap_write_lock_killable(oldmm) (down_write_killable(&oldmm->mmap_sem) in v5.7)
  yield* mmap_write_lock(oldmm);
  // mmap_write_lock_nested(mm, SINGLE_DEPTH_NESTING): not linked in yet, no deadlock.
  yield* mmap_write_lock(mm);
  const current = fork_current(oldmm);

  for (const mpnt of [...oldmm.mmap]) {
    if (mpnt.vm_flags & VM_DONTCOPY) {
      // vm_stat_account(mm, flags, -pages): the model's total_vm counts linked VMAs.
      continue;
    }
    // Don't duplicate many vmas if we've been oom-killed (for example).
    if (fatal_signal_pending(current)) {
      retval = -EINTR;
      break;
    }
    // vm_area_dup(): v6.16+ vma_pfnmap_track_ctx_dup() refuses a kref at REFCOUNT_MAX.
    const ctx = mpnt.pfnmap_track_ctx;
    if (since(6, 16) && ctx && ctx.kref >= Refcount.REFCOUNT_MAX) {
      retval = -ENOMEM; // fail_nomem
      break;
    }
    const tmp = vm_area_dup(mpnt);
    // dc84bc2aba85 (v6.15): track_pfn_copy() will later take care of copying the state.
    if (since(6, 15) && !since(6, 16) && tmp.vm_flags & VM_PFNMAP) untrack_pfn_clear(tmp);
    tmp.vm_mm = mm;
    if (tmp.vm_flags & VM_WIPEONFORK) {
      // VM_WIPEONFORK gets a clean slate in the child. Don't prepare anon_vma until
      // fault since we don't copy page for current vma. (The model's vm_area_dup took
      // a reference on the anon_vma; give it back.)
      if (tmp.anon_vma) tmp.anon_vma.refcount--;
      tmp.anon_vma = null;
    }
    // else anon_vma_fork(tmp, mpnt): the child shares mpnt's anon_vma (vm_area_dup set
    // it); vma_link below puts tmp on it.
    tmp.vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT);
    // hugetlb: a private mapping's reserve map (and a shared one's vma lock) is not the
    // child's (mm/hugetlb.ts).
    if (is_vm_hugetlb_page(tmp)) hugetlb_dup_vma_private(tmp);

    const file = tmp.vm_file;
    if (since(6, 9)) {
      // 35e351780fa9: vma_iter_bulk_store, map_count++, ->open, then the i_mmap link.
      tmp.vm_ops?.open?.(tmp);
      yield* dup_mmap_link(mm, tmp, file);
      if (!(tmp.vm_flags & VM_WIPEONFORK)) retval = yield* copy_page_range(tmp, mpnt);
    } else {
      yield* dup_mmap_link(mm, tmp, file);
      if (!(tmp.vm_flags & VM_WIPEONFORK)) retval = yield* copy_page_range(tmp, mpnt);
      tmp.vm_ops?.open?.(tmp);
    }
    if (retval) break;
  }
  // arch_dup_mmap(oldmm, mm): 0 on x86 without LDT changes.
  yield* mmap_write_unlock(mm);
  // flush_tlb_mm(oldmm): the parent's write-protected entries take effect.
  yield* mmap_write_unlock(oldmm);
  return retval;
}

/**
 * The child VMA goes into the child's tree and, for a file, into i_mmap just after the
 * parent's (vma_interval_tree_insert_after) under i_mmap_rwsem held for write.
 */
function* dup_mmap_link(mm: mm_struct, tmp: vm_area_struct, file: file | null): Op<void> {
  if (!file) {
    vma_link(mm, tmp);
    return;
  }
  const mapping = file.f_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  vma_link(mm, tmp);
  yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * dup_mm(tsk, oldmm): a new mm for tsk with oldmm's layout: a fresh PGD and counters
 * (mm_init: RSS 0, no notifier subscriptions, only MMF_INIT_MASK flags, so
 * MMF_HAS_PINNED is not inherited), then dup_mmap. On failure the half-built mm is
 * dropped with mmput(), whose exit_mmap tears down what was copied.
 * @kernel kernel/fork.c:dup_mm, mm_init (all versions)
 * Locking: none held on entry (dup_mmap takes the mmap_locks).
 * Return: the mm, or null (every error; copy_mm turns it into -ENOMEM).
 */
export function* dup_mm(tsk: task_struct, oldmm: mm_struct): Op<mm_struct | null> {
  const mm = mm_alloc();
  if (!mm) return null;
  // memcpy(mm, oldmm, sizeof(*mm)) then mm_init(mm, tsk, ...): what survives.
  mm.flags = mmf_init_flags(oldmm.flags);
  mm.def_flags = oldmm.def_flags & VM_NOHUGEPAGE; // VM_INIT_DEF_MASK
  mm.mmap_base = oldmm.mmap_base;
  mm.task_size = oldmm.task_size;
  mm.owner = tsk; // mm_init_owner(mm, p)
  const err = yield* dup_mmap(mm, oldmm);
  if (err) {
    // free_pt: mm_init_owner(mm, NULL); mmput(mm).
    mm.owner = null;
    yield* mmput(mm);
    return null;
  }
  return mm;
}

/**
 * copy_mm(clone_flags, tsk): the child's address space: shared with CLONE_VM (mm_users
 * +1), else dup_mm of current's. A kernel thread has none. The model passes `current`
 * (the forking task) as `parent`.
 * @kernel kernel/fork.c:copy_mm (all versions)
 * Locking: none held on entry.
 * Return: 0 or -ENOMEM (dup_mm's errors, -EINTR included, all become -ENOMEM).
 */
export function* copy_mm(clone_flags: number, tsk: task_struct, parent: task_struct): Op<number> {
  tsk.mm = null;
  const oldmm = parent.mm;
  if (!oldmm) return 0;
  let mm: mm_struct | null;
  if (clone_flags & CLONE_VM) {
    yield { obj: `mm${oldmm.id}.mm_users`, kind: 'write', what: 'mmget' };
    oldmm.mm_users++;
    mm = oldmm;
  } else {
    mm = yield* dup_mm(tsk, oldmm);
    if (!mm) return -ENOMEM;
  }
  tsk.mm = mm;
  return 0;
}

/** CLONE_VM (include/uapi/linux/sched.h): share the address space. */
export const CLONE_VM = 0x00000100;

/**
 * fork_task(parent): what fork() does for memory: a new task (copy_process) whose mm is
 * a copy of the parent's (copy_mm -> dup_mm -> dup_mmap -> copy_page_range), with a copy
 * of the parent's open-file table (copy_files -> dup_fd, every file referenced again),
 * made findable by pid once it exists (attach_pid).
 * @kernel kernel/fork.c:copy_process, kernel_clone (all versions; memory only)
 * Locking: none held on entry; the parent's mmap_lock is taken for write inside.
 * Return: the child task, or -errno (-ENOMEM for any dup_mm failure).
 * Left out: everything of copy_process but the task identity, copy_files and copy_mm.
 */
export function* fork_task(parent: task_struct): Op<task_struct | number> {
  const k = currentKernel();
  const pid = k.nextId('pid') + 1000;
  const child: task_struct = {
    pid,
    tgid: pid,
    comm: parent.comm,
    mm: null,
    fatal_signal: false,
    caps: new Set(parent.caps),
    rlimit_memlock: parent.rlimit_memlock,
    files: null,
  };
  // copy_files(): the child gets a copy of the table, every file referenced again.
  if (parent.files) child.files = yield* dup_fd(parent.files);
  const err = yield* copy_mm(0, child, parent);
  if (err) {
    // bad_fork_cleanup_files: exit_files(p)
    if (child.files) yield* exit_files(child);
    return err;
  }
  attach_pid(child);
  return child;
}

/**
 * mmput(mm): drops a user of the mm; the last one tears the address space down
 * (__mmput: exit_mmap, then mmdrop).
 * @kernel kernel/fork.c:mmput, __mmput (all versions)
 * Locking: may sleep; no mmap_lock held.
 * Left out: uprobes, aio, KSM, khugepaged, the exe file, binfmt.
 */
export function* mmput(mm: mm_struct): Op<void> {
  yield { obj: `mm${mm.id}.mm_users`, kind: 'write', what: 'mmput' };
  if (--mm.mm_users !== 0) return;
  VM_BUG_ON(mm.mm_users !== 0, 'VM_BUG_ON(atomic_read(&mm->mm_users))');
  yield* exit_mmap(mm);
  yield* mmdrop(mm);
}

/**
 * mmdrop(mm): drops a reference to the mm_struct; the last one frees the PGD and checks
 * that nothing was left accounted (check_mm: "BUG: Bad rss-counter state",
 * "BUG: non-zero pgtables_bytes on freeing mm").
 * @kernel include/linux/sched/mm.h:mmdrop, kernel/fork.c:__mmdrop, check_mm
 *   (all versions)
 * Locking: none.
 */
export function* mmdrop(mm: mm_struct): Op<void> {
  yield { obj: `mm${mm.id}.mm_count`, kind: 'write', what: 'mmdrop' };
  if (--mm.mm_count !== 0) return;
  // __mmdrop: mm_free_pgd(mm), then check_mm(mm).
  WARN_ON_ONCE(mm === get_current().mm);
  pagetable_free(mm, mm.pgd);
  const resident_page_types = ['MM_FILEPAGES', 'MM_ANONPAGES', 'MM_SWAPENTS', 'MM_SHMEMPAGES'];
  for (let i = 0; i < mm.rss_stat.length; i++) {
    const x = mm.rss_stat[i]!;
    if (x)
      pr_alert(`BUG: Bad rss-counter state mm:mm${mm.id} type:${resident_page_types[i]} val:${x}`);
  }
  if (mm.pgtables_bytes)
    pr_alert(`BUG: non-zero pgtables_bytes on freeing mm: ${mm.pgtables_bytes}`);
}

/**
 * exit_mm(tsk): the exiting task lets go of its address space: tsk->mm becomes NULL
 * under the mmap_lock (read), the mm loses its owner, and mmput() drops the task's user
 * (the last one runs exit_mmap).
 * @kernel kernel/exit.c:exit_mm (all versions; `current` is the tsk argument here)
 * Locking: takes and releases mm->mmap_lock for read.
 * Left out: exit_mm_release (robust futexes, vfork completion), the lazy-TLB mm_count
 *   reference held until the next context switch, membarrier.
 */
export function* exit_mm(tsk: task_struct): Op<void> {
  const mm = tsk.mm;
  if (!mm) return;
  yield* mmap_read_lock(mm);
  tsk.mm = null;
  yield* mmap_read_unlock(mm);
  // mm_update_next_owner(mm)
  if (mm.owner === tsk) mm.owner = null;
  yield* mmput(mm);
}
