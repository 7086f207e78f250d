/**
 * The descriptor table (include/linux/fdtable.h, fs/file.c): alloc_fd, fd_install,
 * fget, close_fd, dup_fd at fork, exit_files.
 * Rules: kernel-spec.md §11 (the entry points act through descriptors); R-FORK-1 context.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../../test/kernel-env.js';
import { alloc_fd, close_fd, exit_files, fget, openFds } from './fdtable.js';
import { do_sys_open } from '../../fs/open.js';
import { O_RDWR } from '../../fs/inode.js';
import { fork_task } from '../../kernel/fork.js';
import { EBADF } from './errno.js';
import { fput } from '../../fs/file_table.js';
import type { task_struct } from './sched.js';

describe('alloc_fd', () => {
  it('§11: the lowest free descriptor is used; a closed one is reused', () => {
    const env = bootEnv();
    const a = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const b = env.sys(do_sys_open('/dev/null', O_RDWR, 0));
    expect([a, b]).toEqual([0, 1]);
    expect(env.sys(close_fd(0))).toBe(0);
    expect(env.sys(close_fd(0))).toBe(-EBADF);
    expect(env.sys(do_sys_open('/dev/zero', O_RDWR, 0))).toBe(0);
    expect(env.sys(alloc_fd(env.task.files!, 5, 0))).toBe(5);
    expect(openFds(env.task)).toEqual([0, 1]);
  });
});

describe('fget', () => {
  it('§11: takes a reference on the file of a descriptor', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const f = env.sys(fget(fd))!;
    expect(f.f_count).toBe(2);
    fput(f);
    expect(env.sys(fget(9))).toBeNull();
  });
});

describe('dup_fd', () => {
  it('§11: fork copies the table and references every file; exit drops them', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const f = env.sys(fget(fd))!;
    fput(f);
    const child = env.sys(fork_task(env.task)) as task_struct;
    expect(openFds(child)).toEqual([fd]);
    expect(f.f_count).toBe(2);
    env.sys(exit_files(child));
    expect(child.files).toBeNull();
    expect(f.f_count).toBe(1);
  });
});
