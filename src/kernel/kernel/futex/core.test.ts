/**
 * get_futex_key (kernel/futex/core.c) and FUTEX_WAKE / FUTEX_WAIT with a zero timeout.
 * Rules: kernel-spec.md §11 (shared futex = get_futex_key → get_user_pages_fast), O-2,
 * O-3, O-4, O-7.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../../test/kernel-env.js';
import {
  ETIMEDOUT,
  FLAGS_SHARED,
  FLAGS_SIZE_32,
  FUTEX_PRIVATE_FLAG,
  FUTEX_READ,
  FUTEX_WAIT,
  FUTEX_WAKE,
  do_futex,
  get_futex_key,
} from './core.js';
import { sys_mmap, sys_ftruncate, sys_memfd_create } from '../../arch/x86/entry/syscall_64.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../../mm/mmap.js';
import { sys_io_uring_setup } from '../../io_uring/io_uring.js';
import { do_sys_open } from '../../fs/open.js';
import { O_RDONLY } from '../../fs/inode.js';
import { vfsCreateFile } from '../../fs/namei.js';
import { find_vvar_vma } from '../../arch/x86/entry/vdso/vma.js';
import { EAGAIN, EFAULT, EINVAL } from '../../include/linux/errno.js';

const RW = PROT_READ | PROT_WRITE;

function wake(env: Env, addr: number, op = FUTEX_WAKE): number {
  return env.sys(do_futex(addr, op, 1));
}

describe('get_futex_key', () => {
  it('§11: an anonymous writable page keys on (mm, address); a shared file page on (inode, pgoff)', () => {
    const env = bootEnv();
    const a = env.buffer(4096);
    const k1 = env.sys(get_futex_key(a + 8, FLAGS_SIZE_32 | FLAGS_SHARED, FUTEX_READ));
    expect(typeof k1 === 'object' && k1.kind).toBe('mmshared');
    const mfd = env.sys(sys_memfd_create('f', 0));
    env.sys(sys_ftruncate(mfd, 8192));
    const m = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, mfd, 0));
    const k2 = env.sys(get_futex_key(m + 4096, FLAGS_SIZE_32 | FLAGS_SHARED, FUTEX_READ));
    expect(k2).toMatchObject({ kind: 'inode', pgoff: 1 });
  });

  it('§11: a misaligned address is -EINVAL; a private futex needs no page at all', () => {
    const env = bootEnv();
    const none = env.sys(sys_mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    expect(env.sys(get_futex_key(none + 2, FLAGS_SIZE_32 | FLAGS_SHARED, FUTEX_READ))).toBe(
      -EINVAL,
    );
    expect(wake(env, none, FUTEX_WAKE | FUTEX_PRIVATE_FLAG)).toBe(0);
  });
});

describe('do_futex', () => {
  it('O-7: FUTEX_WAKE on a read-only anonymous (zero) page is -EFAULT; writable anonymous is 0 woken', () => {
    const env = bootEnv();
    const ro = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    env.load(ro);
    expect(wake(env, ro)).toBe(-EFAULT);
    expect(wake(env, env.buffer(4096))).toBe(0);
  });

  it('O-7: a read-only file page is fine (the inode is the key)', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/f', new Uint8Array(4096)));
    const fd = env.sys(do_sys_open('/f', O_RDONLY, 0));
    const m = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0));
    expect(wake(env, m)).toBe(0);
  });

  it('O-3/O-7: a page without a mapping (the io_uring ring of a VM_MIXEDMAP VMA) is -EFAULT', () => {
    const env = bootEnv();
    const fd = env.sys(sys_io_uring_setup(4, {}));
    const ring = env.sys(sys_mmap(0, 4096, RW, MAP_SHARED, fd, 0));
    expect(wake(env, ring)).toBe(-EFAULT);
  });

  it('O-2/O-5: [vvar] and PROT_NONE are -EFAULT (GUP fails both ways)', () => {
    const env = bootEnv();
    expect(wake(env, find_vvar_vma(env.task.mm!)!.vm_start)).toBe(-EFAULT);
    const none = env.sys(sys_mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    expect(wake(env, none)).toBe(-EFAULT);
  });

  it('§11 FUTEX_WAIT with a zero timeout: -EAGAIN when the value differs, -ETIMEDOUT when it matches', () => {
    const env = bootEnv();
    const a = env.buffer(4096);
    env.store(a, [7, 0, 0, 0]);
    expect(env.sys(do_futex(a, FUTEX_WAIT, 8))).toBe(-EAGAIN);
    expect(env.sys(do_futex(a, FUTEX_WAIT, 7))).toBe(-ETIMEDOUT);
  });
});
