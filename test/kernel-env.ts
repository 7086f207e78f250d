/**
 * A booted kernel and one user task for the kernel-level tests of the system-call layer
 * (src/kernel may not use src/scenario's Process): `env.sys(op)` runs a system call body
 * as the task through do_syscall, and small helpers make the common setup short.
 */
import { SchedThread, type Op } from '../src/sched/index.js';
import { Kernel } from '../src/kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../src/kernel/init/main.js';
import { create_user_task } from '../src/kernel/kernel/fork.js';
import type { task_struct } from '../src/kernel/include/linux/sched.js';
import { do_syscall } from '../src/kernel/arch/x86/entry/common.js';
import { sys_mmap } from '../src/kernel/arch/x86/entry/syscall_64.js';
import { cpu_user_read, cpu_user_write } from '../src/kernel/arch/x86/mm/fault.js';
import { arch_setup_additional_pages } from '../src/kernel/arch/x86/entry/vdso/vma.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { walkToLeaf, ptep_get } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn, pte_present } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import type { ConfigValue } from '../src/kernel/kconfig.js';

export const ROOT = ['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_PTRACE', 'CAP_PERFMON'];

export interface Env {
  readonly k: Kernel;
  readonly task: task_struct;
  readonly thread: SchedThread;
  /** Runs a system call body as the task (do_syscall). */
  sys<T>(op: Op<T>): T;
  /** mmap(0, len, prot, flags, fd, off) as the task. */
  mmap(len: number, prot: number, flags: number, fd?: number, off?: number): number;
  /** A load: the bytes or the fault kind ('SIGSEGV', 'SIGBUS', ...). */
  load(addr: number, len?: number): Uint8Array | string;
  /** A store: 'ok' or the fault kind. */
  store(addr: number, bytes: number[] | Uint8Array): string;
  /** A populated private anonymous read-write buffer of len bytes filled with `fill`. */
  buffer(len: number, fill?: number): number;
  /** The pfn a present PTE maps at addr, or null. */
  pfnAt(addr: number): number | null;
  /** Another task on the same kernel (its own thread). */
  spawn(comm: string, caps?: string[]): Env;
}

function envFor(k: Kernel, task: task_struct): Env {
  const thread = new SchedThread(0, task.comm, (function* () {})(), task);
  const env: Env = {
    k,
    task,
    thread,
    sys: <T>(op: Op<T>): T => k.run(do_syscall(task, op), thread),
    mmap: (len, prot, flags, fd = -1, off = 0) => env.sys(sys_mmap(0, len, prot, flags, fd, off)),
    load(addr, len = 1) {
      const r = env.sys(cpu_user_read(task, addr, len));
      return r.kind === 'ok' ? r.data : r.kind;
    },
    store(addr, bytes) {
      const d = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
      return env.sys(cpu_user_write(task, addr, d)).kind;
    },
    buffer(len, fill = 0) {
      const a = env.mmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      if (a < 0) throw new Error(`buffer: ${a}`);
      if (env.store(a, new Uint8Array(len).fill(fill)) !== 'ok') throw new Error('buffer: store');
      return a;
    },
    pfnAt(addr) {
      const l = walkToLeaf(task.mm!, addr);
      if (!l) return null;
      const v = ptep_get(l.ptr);
      if (!pte_present(v)) return null;
      const span = l.level === 'pmd' ? 512 : l.level === 'pud' ? 512 * 512 : 1;
      return pte_pfn(v) + (Math.floor(addr / 4096) % span);
    },
    spawn(comm, caps = ROOT) {
      k.activate();
      const t = create_user_task(comm, { caps });
      const e = envFor(k, t);
      e.sys(arch_setup_additional_pages(t.mm!));
      return e;
    },
  };
  return env;
}

/** Boots a 4 GiB machine of the version and makes a root task with the vDSO mapped. */
export function bootEnv(
  version = '6.18',
  opts: { caps?: string[]; config?: Record<string, ConfigValue>; rlimit_memlock?: number } = {},
): Env {
  const k = new Kernel({ version, config: opts.config ?? {} });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('test', {
    caps: opts.caps ?? ROOT,
    rlimit_memlock: opts.rlimit_memlock,
  });
  const env = envFor(k, task);
  env.sys(arch_setup_additional_pages(task.mm!));
  return env;
}
