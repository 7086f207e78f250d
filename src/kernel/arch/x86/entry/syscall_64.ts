/**
 * The x86-64 system-call entry points whose bodies live in files the syscall layer does
 * not otherwise model: mmap (ksys_mmap_pgoff: the descriptor lookup, MAP_HUGETLB, and
 * vm_mmap_pgoff's populate step), munmap, mprotect, madvise, mlock/munlock, fork, exit,
 * memfd_create, ftruncate. The other system calls are entered directly through their
 * own files (fs/read_write.ts, fs/open.ts, fs/pipe.ts, fs/splice.ts,
 * mm/process_vm_access.ts, io_uring/, fs/aio.ts, kernel/events/core.ts,
 * kernel/futex/core.ts, mm/secretmem.ts). Each runs as `current`; wrap it in
 * do_syscall (entry/common.ts) for the return to user space. They are generators so that
 * `current` is read when the call runs, not when the operation is built.
 *
 * @kernel arch/x86/kernel/sys_x86_64.c:SYSCALL_DEFINE6(mmap); mm/mmap.c:ksys_mmap_pgoff,
 *   SYSCALL_DEFINE2(munmap); mm/util.c:vm_mmap_pgoff (populate); mm/mprotect.c:
 *   SYSCALL_DEFINE3(mprotect); mm/madvise.c:SYSCALL_DEFINE3(madvise); mm/mlock.c;
 *   kernel/fork.c:SYSCALL_DEFINE0(fork); kernel/exit.c:SYSCALL_DEFINE1(exit);
 *   mm/memfd.c:SYSCALL_DEFINE2(memfd_create); fs/open.c:SYSCALL_DEFINE2(ftruncate)
 */
import type { Op } from '../../../../sched/index.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { get_current } from '../../../include/linux/sched.js';
import { EBADF, EINVAL } from '../../../include/linux/errno.js';
import { VM_LOCKED } from '../../../include/linux/mm.js';
import {
  fd_install,
  fget,
  get_unused_fd_flags,
  put_unused_fd,
} from '../../../include/linux/fdtable.js';
import { fput } from '../../../fs/file_table.js';
import {
  MAP_ANONYMOUS,
  MAP_NONBLOCK,
  MAP_POPULATE,
  __vm_munmap,
  ksys_mmap_pgoff as mm_ksys_mmap_pgoff,
} from '../../../mm/mmap.js';
import { vma_lookup } from '../../../mm/vma.js';
import { do_mprotect_pkey } from '../../../mm/mprotect.js';
import { do_madvise } from '../../../mm/madvise.js';
import { mlock, munlock } from '../../../mm/mlock.js';
import { mm_populate } from '../../../mm/gup.js';
import { fork_task } from '../../../kernel/fork.js';
import { do_exit } from '../../../kernel/exit.js';
import { MFD_CLOEXEC, memfd_create } from '../../../mm/memfd.js';
import { O_CLOEXEC } from '../../../include/linux/fs.js';
import { do_sys_ftruncate } from '../../../fs/open.js';
import { PAGE_SIZE } from '../include/asm/pgtable_types.js';

/**
 * ksys_mmap_pgoff(addr, len, prot, flags, fd, pgoff): a file mapping needs a descriptor
 * (-EBADF); then mm/mmap.c's ksys_mmap_pgoff (MAP_HUGETLB and hugetlbfs files) and, as
 * vm_mmap_pgoff does after dropping mmap_lock, mm_populate for MAP_POPULATE (without
 * MAP_NONBLOCK) or a VM_LOCKED result.
 * @kernel mm/mmap.c:ksys_mmap_pgoff, mm/util.c:vm_mmap_pgoff (all versions)
 * Locking: none held; vm_mmap_pgoff takes mmap_lock.
 * Return: the address or -errno.
 */
export function* ksys_mmap_pgoff(
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  pgoff: number,
): Op<number> {
  const mm = get_current().mm!;
  let f = null;
  if (!(flags & MAP_ANONYMOUS)) {
    f = yield* fget(fd);
    if (!f) return -EBADF;
  }
  const ret = yield* mm_ksys_mmap_pgoff(mm, addr, len, prot, flags, f, pgoff);
  if (f) fput(f);
  if (ret >= 0) {
    const vma = vma_lookup(mm, ret);
    const locked = vma !== null && (vma.vm_flags & VM_LOCKED) !== 0n;
    if (locked || (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE)
      yield* mm_populate(ret, Math.ceil(len / PAGE_SIZE) * PAGE_SIZE);
  }
  return ret;
}

/**
 * mmap(addr, len, prot, flags, fd, off): an offset that is not page aligned is -EINVAL.
 * @kernel arch/x86/kernel/sys_x86_64.c:SYSCALL_DEFINE6(mmap) (all versions)
 * Return: the address or -errno.
 */
export function* sys_mmap(
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
): Op<number> {
  if (off % PAGE_SIZE !== 0) return -EINVAL;
  return yield* ksys_mmap_pgoff(addr, len, prot, flags, fd, off / PAGE_SIZE);
}

/**
 * munmap(addr, len) = __vm_munmap(addr, len, true).
 * @kernel mm/mmap.c:SYSCALL_DEFINE2(munmap) (all versions)
 */
export function* sys_munmap(addr: number, len: number): Op<number> {
  return yield* __vm_munmap(get_current().mm!, addr, len, true);
}

/**
 * mprotect(start, len, prot) = do_mprotect_pkey(start, len, prot, -1).
 * @kernel mm/mprotect.c:SYSCALL_DEFINE3(mprotect) (all versions)
 */
export function* sys_mprotect(start: number, len: number, prot: number): Op<number> {
  return yield* do_mprotect_pkey(get_current().mm!, start, len, prot, -1);
}

/**
 * madvise(start, len, behavior) = do_madvise(current->mm, ...).
 * @kernel mm/madvise.c:SYSCALL_DEFINE3(madvise) (all versions)
 */
export function* sys_madvise(start: number, len: number, behavior: number): Op<number> {
  return yield* do_madvise(get_current().mm!, start, len, behavior);
}

/** mlock(start, len) (mm/mlock.c). */
export function* sys_mlock(start: number, len: number): Op<number> {
  return yield* mlock(start, len);
}

/** munlock(start, len) (mm/mlock.c). */
export function* sys_munlock(start: number, len: number): Op<number> {
  return yield* munlock(start, len);
}

/**
 * fork(): a child process with a copy of the address space and file table.
 * @kernel kernel/fork.c:SYSCALL_DEFINE0(fork), kernel_clone (all versions)
 * Return: the child task (the parent's fork() returns its pid), or -errno.
 */
export function* sys_fork(): Op<task_struct | number> {
  return yield* fork_task(get_current());
}

/**
 * exit(code): do_exit.
 * @kernel kernel/exit.c:SYSCALL_DEFINE1(exit) (all versions)
 */
export function* sys_exit(code: number): Op<void> {
  return yield* do_exit(get_current(), code);
}

/**
 * memfd_create(name, flags): memfd_create's file (shmem, or hugetlbfs with MFD_HUGETLB)
 * installed in a new descriptor (O_CLOEXEC with MFD_CLOEXEC).
 * @kernel mm/memfd.c:SYSCALL_DEFINE2(memfd_create) (all versions)
 * Return: the descriptor or -errno.
 */
export function* sys_memfd_create(name: string, flags: number): Op<number> {
  const fd = yield* get_unused_fd_flags(flags & MFD_CLOEXEC ? O_CLOEXEC : 0);
  if (fd < 0) return fd;
  const f = memfd_create(name, flags);
  if (typeof f === 'number') {
    yield* put_unused_fd(fd);
    return f;
  }
  yield* fd_install(fd, f);
  return fd;
}

/**
 * ftruncate(fd, length) = do_sys_ftruncate(fd, length, 1).
 * @kernel fs/open.c:SYSCALL_DEFINE2(ftruncate) (all versions)
 */
export function* sys_ftruncate(fd: number, length: number): Op<number> {
  return yield* do_sys_ftruncate(fd, length, 1);
}
