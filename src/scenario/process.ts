/**
 * A user-space process of a modelled machine: `spawnProcess(k, comm)` makes a task with
 * an empty address space (plus the vDSO, as exec leaves it) and an empty descriptor
 * table, and the returned handle's methods are the system calls, named as in C and
 * returning what they return: an address, a count, 0, or a negative errno. CPU accesses
 * are `load(addr, len)` (the bytes, or the signal the access raised) and
 * `store(addr, bytes)` (0, or the signal).
 *
 * Every method has two forms:
 * - `p.mmap(...)` runs the call to completion in the kernel now (Kernel.run, as this
 *   process's own thread) and returns its result;
 * - `p.op.mmap(...)` is the same call as an operation, for a thread of a multi-thread run
 *   (`k.runner().spawn(name, p.op.mmap(...))`).
 * Both enter through do_syscall: the call runs as the process (current) and returns to
 * user space (task work, the lockdep held-lock check).
 *
 * Arguments that are user memory in C are user addresses here (read/write buffers, the
 * memory an iovec names); the iovec arrays, perf_event_attr, io_uring_params and the
 * io_setup context pointer are passed as values (their copies from and to user memory
 * are left out). Signals are returned, not delivered: the process stays alive.
 */
import type { Op } from '../sched/index.js';
import { SchedThread } from '../sched/index.js';
import type { Kernel } from '../kernel/kernel/kernel.js';
import type { task_struct } from '../kernel/include/linux/sched.js';
import type { iovec } from '../kernel/include/linux/uio.js';
import { create_user_task } from '../kernel/kernel/fork.js';
import { do_syscall, do_user_access } from '../kernel/arch/x86/entry/common.js';
import {
  sys_exit,
  sys_fork,
  sys_ftruncate,
  sys_madvise,
  sys_memfd_create,
  sys_mlock,
  sys_mmap,
  sys_mprotect,
  sys_munlock,
  sys_munmap,
} from '../kernel/arch/x86/entry/syscall_64.js';
import { do_sys_open, ksys_close } from '../kernel/fs/open.js';
import { do_unlinkat } from '../kernel/fs/namei.js';
import { sys_ioctl } from '../kernel/fs/ioctl.js';
import { ksys_pread64, ksys_pwrite64, ksys_read, ksys_write } from '../kernel/fs/read_write.js';
import { do_pipe2 } from '../kernel/fs/pipe.js';
import { sys_vmsplice } from '../kernel/fs/splice.js';
import { sys_process_vm_readv, sys_process_vm_writev } from '../kernel/mm/process_vm_access.js';
import { sys_memfd_secret } from '../kernel/mm/secretmem.js';
import {
  io_issue_sqe,
  sys_io_uring_register,
  sys_io_uring_setup,
  type io_uring_params,
  type io_uring_sqe,
} from '../kernel/io_uring/io_uring.js';
import { sys_io_destroy, sys_io_setup } from '../kernel/fs/aio.js';
import { sys_perf_event_open, type perf_event_attr } from '../kernel/kernel/events/core.js';
import { do_futex } from '../kernel/kernel/futex/core.js';
import {
  arch_setup_additional_pages,
  find_vvar_vma,
  vdsoBase,
} from '../kernel/arch/x86/entry/vdso/vma.js';
import { cpu_user_read, cpu_user_write } from '../kernel/arch/x86/mm/fault.js';
import { find_get_task_by_vpid } from '../kernel/kernel/pid.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';

/** A signal a CPU access raised (returned, not delivered). */
export class Signal {
  constructor(
    readonly signo: 'SIGSEGV' | 'SIGBUS' | 'OOM' | 'fatal_signal' | 'FAULT_LOOP',
    readonly si_code: string,
    readonly addr: number,
  ) {}
  toString(): string {
    return `${this.signo}(${this.si_code}) at 0x${this.addr.toString(16)}`;
  }
}

/** Whether a load/store result is a signal. */
export function isSignal(x: unknown): x is Signal {
  return x instanceof Signal;
}

/** Capabilities of a root process (what the live probe runs with). */
const ROOT_CAPS = [
  'CAP_SYS_ADMIN',
  'CAP_IPC_LOCK',
  'CAP_SYS_PTRACE',
  'CAP_PERFMON',
  'CAP_SYS_RAWIO',
];

export interface SpawnOptions {
  /** Run as root (CAP_SYS_ADMIN, CAP_IPC_LOCK, ...); default true, as the live probe. */
  readonly root?: boolean;
  /** RLIMIT_MEMLOCK in bytes (default 8 MiB). */
  readonly rlimit_memlock?: number;
  /** Map the vDSO ([vvar], [vdso]) as exec does; default true. */
  readonly vdso?: boolean;
}

const handles = new WeakMap<task_struct, Process>();

/** The system calls as operations (run them in a thread of a multi-thread run). */
export class ProcessOps {
  constructor(private readonly p: Process) {}

  private sys<T>(op: Op<T>): Op<T> {
    return do_syscall(this.p.task, op);
  }

  mmap(addr: number, len: number, prot: number, flags: number, fd = -1, off = 0): Op<number> {
    return this.sys(sys_mmap(addr, len, prot, flags, fd, off));
  }
  munmap(addr: number, len: number): Op<number> {
    return this.sys(sys_munmap(addr, len));
  }
  mprotect(addr: number, len: number, prot: number): Op<number> {
    return this.sys(sys_mprotect(addr, len, prot));
  }
  madvise(addr: number, len: number, advice: number): Op<number> {
    return this.sys(sys_madvise(addr, len, advice));
  }
  mlock(addr: number, len: number): Op<number> {
    return this.sys(sys_mlock(addr, len));
  }
  munlock(addr: number, len: number): Op<number> {
    return this.sys(sys_munlock(addr, len));
  }
  /** fork(): the child's pid (its handle: Process.of(k, pid)) or -errno. */
  *fork(): Op<number> {
    const r = yield* this.sys(sys_fork());
    if (typeof r === 'number') return r;
    const child = new Process(this.p.k, r);
    return child.pid;
  }
  *exit(code: number): Op<void> {
    yield* this.sys(sys_exit(code));
    this.p.exited = true;
  }
  open(path: string, flags: number, mode = 0o600): Op<number> {
    return this.sys(do_sys_open(path, flags, mode));
  }
  close(fd: number): Op<number> {
    return this.sys(ksys_close(fd));
  }
  /** ioctl(fd, cmd, arg): `arg` is the argument structure as a value; outputs are written into it. */
  ioctl(fd: number, cmd: number, arg: unknown = 0): Op<number> {
    return this.sys(sys_ioctl(fd, cmd, arg));
  }
  unlink(path: string): Op<number> {
    return this.sys(do_unlinkat(path));
  }
  read(fd: number, buf: number, count: number): Op<number> {
    return this.sys(ksys_read(fd, buf, count));
  }
  write(fd: number, buf: number, count: number): Op<number> {
    return this.sys(ksys_write(fd, buf, count));
  }
  pread(fd: number, buf: number, count: number, offset: number): Op<number> {
    return this.sys(ksys_pread64(fd, buf, count, offset));
  }
  pwrite(fd: number, buf: number, count: number, offset: number): Op<number> {
    return this.sys(ksys_pwrite64(fd, buf, count, offset));
  }
  ftruncate(fd: number, length: number): Op<number> {
    return this.sys(sys_ftruncate(fd, length));
  }
  memfd_create(name: string, flags: number): Op<number> {
    return this.sys(sys_memfd_create(name, flags));
  }
  memfd_secret(flags: number): Op<number> {
    return this.sys(sys_memfd_secret(flags));
  }
  process_vm_readv(
    pid: number,
    local: readonly iovec[],
    remote: readonly iovec[],
    flags = 0,
  ): Op<number> {
    return this.sys(sys_process_vm_readv(pid, local, remote, flags));
  }
  process_vm_writev(
    pid: number,
    local: readonly iovec[],
    remote: readonly iovec[],
    flags = 0,
  ): Op<number> {
    return this.sys(sys_process_vm_writev(pid, local, remote, flags));
  }
  /** pipe2(flags): [read fd, write fd] or -errno. */
  pipe(flags = 0): Op<[number, number] | number> {
    return this.sys(do_pipe2(flags));
  }
  vmsplice(fd: number, iov: readonly iovec[], flags = 0): Op<number> {
    return this.sys(sys_vmsplice(fd, iov, flags));
  }
  io_uring_setup(entries: number, params: io_uring_params = {}): Op<number> {
    return this.sys(sys_io_uring_setup(entries, params));
  }
  io_uring_register(
    fd: number,
    opcode: number,
    arg: readonly iovec[] | null,
    nrArgs: number,
  ): Op<number> {
    return this.sys(sys_io_uring_register(fd, opcode, arg, nrArgs));
  }
  /** One IORING_OP_READ_FIXED / WRITE_FIXED submission; returns the CQE's res. */
  io_uring_submit(ringfd: number, sqe: io_uring_sqe): Op<number> {
    return this.sys(io_issue_sqe(ringfd, sqe));
  }
  /** io_setup(nrEvents, ctxp): 0 and ctxp.value = the context (the ring's address). */
  io_setup(nrEvents: number, ctxp: { value: number }): Op<number> {
    return this.sys(sys_io_setup(nrEvents, ctxp));
  }
  io_destroy(ctx: number): Op<number> {
    return this.sys(sys_io_destroy(ctx));
  }
  perf_event_open(attr: perf_event_attr, pid = 0, cpu = -1, groupFd = -1, flags = 0): Op<number> {
    return this.sys(sys_perf_event_open(attr, pid, cpu, groupFd, flags));
  }
  /** futex(uaddr, op, val) for FUTEX_WAKE and FUTEX_WAIT (zero timeout). */
  futex(uaddr: number, op: number, val: number): Op<number> {
    return this.sys(do_futex(uaddr, op, val));
  }
  /** A plain load of len bytes: the data, or the signal raised. */
  *load(addr: number, len: number): Op<Uint8Array | Signal> {
    const r = yield* do_user_access(this.p.task, cpu_user_read(this.p.task, addr, len));
    if (r.kind === 'ok') return r.data;
    return toSignal(r);
  }
  /** A plain store of bytes: 0, or the signal raised. */
  *store(addr: number, bytes: Uint8Array | readonly number[]): Op<0 | Signal> {
    const data = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    const r = yield* do_user_access(this.p.task, cpu_user_write(this.p.task, addr, data));
    if (r.kind === 'ok') return 0;
    return toSignal(r);
  }
}

function toSignal(r: { kind: string; addr?: number; si_code?: string }): Signal {
  const kind = r.kind as Signal['signo'];
  return new Signal(kind, r.si_code ?? '', r.addr ?? 0);
}

/** A model process: the system calls, synchronous (see ProcessOps for the Op forms). */
export class Process {
  readonly op: ProcessOps;
  /** The thread synchronous calls run as (its `current` is this task). */
  readonly thread: SchedThread;
  exited = false;

  constructor(
    readonly k: Kernel,
    readonly task: task_struct,
  ) {
    this.op = new ProcessOps(this);
    this.thread = new SchedThread(0, `${task.comm}:${task.pid}`, (function* () {})(), task);
    handles.set(task, this);
  }

  /** The handle of a process by pid (a child from fork()). */
  static of(k: Kernel, pid: number): Process {
    k.activate();
    const t = find_get_task_by_vpid(pid);
    if (!t) throw new Error(`no process with pid ${pid}`);
    return handles.get(t) ?? new Process(k, t);
  }

  get pid(): number {
    return this.task.pid;
  }

  /** Runs an operation as this process, synchronously. */
  run<T>(op: Op<T>): T {
    if (this.exited) throw new Error(`process ${this.pid} has exited`);
    return this.k.run(op, this.thread);
  }

  mmap(addr: number, len: number, prot: number, flags: number, fd = -1, off = 0): number {
    return this.run(this.op.mmap(addr, len, prot, flags, fd, off));
  }
  munmap(addr: number, len: number): number {
    return this.run(this.op.munmap(addr, len));
  }
  mprotect(addr: number, len: number, prot: number): number {
    return this.run(this.op.mprotect(addr, len, prot));
  }
  madvise(addr: number, len: number, advice: number): number {
    return this.run(this.op.madvise(addr, len, advice));
  }
  mlock(addr: number, len: number): number {
    return this.run(this.op.mlock(addr, len));
  }
  munlock(addr: number, len: number): number {
    return this.run(this.op.munlock(addr, len));
  }
  fork(): number {
    return this.run(this.op.fork());
  }
  exit(code = 0): void {
    this.run(this.op.exit(code));
  }
  open(path: string, flags: number, mode = 0o600): number {
    return this.run(this.op.open(path, flags, mode));
  }
  close(fd: number): number {
    return this.run(this.op.close(fd));
  }
  ioctl(fd: number, cmd: number, arg: unknown = 0): number {
    return this.run(this.op.ioctl(fd, cmd, arg));
  }
  unlink(path: string): number {
    return this.run(this.op.unlink(path));
  }
  read(fd: number, buf: number, count: number): number {
    return this.run(this.op.read(fd, buf, count));
  }
  write(fd: number, buf: number, count: number): number {
    return this.run(this.op.write(fd, buf, count));
  }
  pread(fd: number, buf: number, count: number, offset: number): number {
    return this.run(this.op.pread(fd, buf, count, offset));
  }
  pwrite(fd: number, buf: number, count: number, offset: number): number {
    return this.run(this.op.pwrite(fd, buf, count, offset));
  }
  ftruncate(fd: number, length: number): number {
    return this.run(this.op.ftruncate(fd, length));
  }
  memfd_create(name: string, flags = 0): number {
    return this.run(this.op.memfd_create(name, flags));
  }
  memfd_secret(flags = 0): number {
    return this.run(this.op.memfd_secret(flags));
  }
  process_vm_readv(
    pid: number,
    local: readonly iovec[],
    remote: readonly iovec[],
    flags = 0,
  ): number {
    return this.run(this.op.process_vm_readv(pid, local, remote, flags));
  }
  process_vm_writev(
    pid: number,
    local: readonly iovec[],
    remote: readonly iovec[],
    flags = 0,
  ): number {
    return this.run(this.op.process_vm_writev(pid, local, remote, flags));
  }
  pipe(flags = 0): [number, number] | number {
    return this.run(this.op.pipe(flags));
  }
  vmsplice(fd: number, iov: readonly iovec[], flags = 0): number {
    return this.run(this.op.vmsplice(fd, iov, flags));
  }
  io_uring_setup(entries: number, params: io_uring_params = {}): number {
    return this.run(this.op.io_uring_setup(entries, params));
  }
  io_uring_register(
    fd: number,
    opcode: number,
    arg: readonly iovec[] | null,
    nrArgs: number,
  ): number {
    return this.run(this.op.io_uring_register(fd, opcode, arg, nrArgs));
  }
  io_uring_submit(ringfd: number, sqe: io_uring_sqe): number {
    return this.run(this.op.io_uring_submit(ringfd, sqe));
  }
  io_setup(nrEvents: number, ctxp: { value: number }): number {
    return this.run(this.op.io_setup(nrEvents, ctxp));
  }
  io_destroy(ctx: number): number {
    return this.run(this.op.io_destroy(ctx));
  }
  perf_event_open(attr: perf_event_attr, pid = 0, cpu = -1, groupFd = -1, flags = 0): number {
    return this.run(this.op.perf_event_open(attr, pid, cpu, groupFd, flags));
  }
  futex(uaddr: number, op: number, val: number): number {
    return this.run(this.op.futex(uaddr, op, val));
  }
  load(addr: number, len: number): Uint8Array | Signal {
    return this.run(this.op.load(addr, len));
  }
  store(addr: number, bytes: Uint8Array | readonly number[]): 0 | Signal {
    return this.run(this.op.store(addr, bytes));
  }

  /** The address of the process's [vvar] mapping (what /proc/self/maps shows), or -1. */
  vvar(): number {
    const mm = this.task.mm;
    const v = mm ? find_vvar_vma(mm) : null;
    return v ? v.vm_start : -1;
  }

  /** The address of the [vdso] text, or -1. */
  vdso(): number {
    const mm = this.task.mm;
    return (mm && vdsoBase(mm)) ?? -1;
  }

  /**
   * A scratch buffer: a fresh private anonymous read-write mapping of len bytes, written
   * with `fill` (so it is populated). The tool's helper for the user-memory arguments of
   * system calls. Return: its address (throws if mmap fails).
   */
  buffer(len: number, fill = 0): number {
    const a = this.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (a < 0) throw new Error(`buffer: mmap failed (${a})`);
    const r = this.store(a, new Uint8Array(len).fill(fill));
    if (r !== 0) throw new Error(`buffer: store faulted (${r.toString()})`);
    return a;
  }
}

/**
 * spawnProcess(k, comm, opts): a new process on machine k: a user task with an empty
 * address space and descriptor table, the vDSO mapped (as exec leaves it), running as
 * root unless asked otherwise.
 */
export function spawnProcess(k: Kernel, comm: string, opts: SpawnOptions = {}): Process {
  k.activate();
  const task = create_user_task(comm, {
    caps: opts.root === false ? [] : ROOT_CAPS,
    rlimit_memlock: opts.rlimit_memlock,
  });
  const p = new Process(k, task);
  if (opts.vdso !== false) {
    const r = p.run(do_syscall(task, arch_setup_additional_pages(task.mm!)));
    if (r) throw new Error(`spawnProcess: mapping the vDSO failed (${r})`);
  }
  return p;
}
