/**
 * The system-call boundary (arch/x86/entry/common.c, kernel/entry/common.c): the call
 * runs as the task, task work (deferred fput) runs on the way out, and lockdep reports a
 * lock still held when returning to user space.
 * Rules: DESIGN.md "locks held across a return to user space"; kernel-spec.md §11.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../../../test/kernel-env.js';
import { do_syscall, lockdep_sys_exit } from './common.js';
import { get_current } from '../../../include/linux/sched.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../include/linux/mmap_lock.js';
import { dmesg } from '../../../kernel/printk.js';
import { do_sys_open, ksys_close } from '../../../fs/open.js';
import { vfsCreateFile, vfsLookup, do_unlinkat } from '../../../fs/namei.js';
import { O_RDWR } from '../../../fs/inode.js';
import type { Op } from '../../../../sched/index.js';
import { test_taint, TAINT_WARN } from '../../../kernel/panic.js';

describe('do_syscall', () => {
  it('§11: the body runs with current = the task; current is restored afterwards', () => {
    const env = bootEnv();
    let seen = -1;
    const r = env.k.run(
      do_syscall(
        env.task,
        (function* (): Op<number> {
          seen = get_current().pid;
          return 42;
        })(),
      ),
    );
    expect(r).toBe(42);
    expect(seen).toBe(env.task.pid);
    expect(
      env.k.run(
        (function* () {
          return get_current().pid;
        })(),
      ),
    ).toBe(0);
  });

  it('§11: the last close of an unlinked file is released on the way out (task_work_run)', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/tmp/x', new Uint8Array(4096).fill(1)));
    const i = vfsLookup('/tmp/x')!;
    const fd = env.sys(do_sys_open('/tmp/x', O_RDWR, 0));
    env.sys(do_unlinkat('/tmp/x'));
    expect(i.i_mapping.nrpages).toBe(1);
    // close(2) drops the last reference; __fput runs before the return to user space,
    // evicting the unlinked inode and its page cache.
    expect(env.sys(ksys_close(fd))).toBe(0);
    expect(i.i_mapping.nrpages).toBe(0);
  });
});

describe('lockdep_sys_exit', () => {
  it('§11: a lock held when returning to user space is reported once, and lockdep turns off', () => {
    const env = bootEnv();
    const mm = env.task.mm!;
    expect(lockdep_sys_exit(env.task)).toBe(false);
    env.sys(mmap_read_lock(mm));
    const log = dmesg();
    expect(log).toContain('WARNING: lock held when returning to user space!');
    expect(log).toContain(`test/${env.task.pid} is leaving the kernel with locks still held!`);
    expect(log).toContain(`mm${mm.id}.mmap_lock (read)`);
    expect(env.k.debug_locks).toBe(false);
    // lockdep reports are not WARN()s: no taint.
    expect(test_taint(TAINT_WARN)).toBe(false);
    env.sys(mmap_read_unlock(mm));
    env.sys(mmap_read_lock(mm));
    expect(dmesg().split('WARNING: lock held').length).toBe(2);
  });
});
