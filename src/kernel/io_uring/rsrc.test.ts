/**
 * io_uring registered buffers (io_uring/rsrc.c, io_uring/memmap.c:io_pin_pages) and
 * fixed reads/writes through them.
 * Rules: kernel-spec.md §11 (IORING_REGISTER_BUFFERS = pin_user_pages_fast(FOLL_WRITE|
 * FOLL_LONGTERM)), O-1, O-2, O-3, O-4, O-6, O-10, O-11.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../test/kernel-env.js';
import {
  IORING_OP_READ_FIXED,
  IORING_OP_WRITE_FIXED,
  IORING_REGISTER_BUFFERS,
  IORING_UNREGISTER_BUFFERS,
  io_issue_sqe,
  ioUringUserLockedVm,
  sys_io_uring_register,
  sys_io_uring_setup,
} from './io_uring.js';
import {
  sys_mmap,
  sys_munmap,
  sys_ftruncate,
  sys_memfd_create,
} from '../arch/x86/entry/syscall_64.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../mm/mmap.js';
import { do_sys_open } from '../fs/open.js';
import { O_RDONLY, O_RDWR } from '../fs/inode.js';
import { vfsCreateFile } from '../fs/namei.js';
import { EBUSY, EFAULT, EINVAL, ENOMEM, ENXIO, EOPNOTSUPP } from '../include/linux/errno.js';
import { GUP_PIN_COUNTING_BIAS, folio_maybe_dma_pinned } from '../include/linux/mm.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_pincount, folio_test_anon } from '../include/linux/page-flags.js';
import { find_vvar_vma } from '../arch/x86/entry/vdso/vma.js';
import { phys_read } from '../mm/sparse.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { ROOT } from '../../../test/kernel-env.js';
import { setTransparentHugepage } from '../mm/huge_memory.anon.js';

const RW = PROT_READ | PROT_WRITE;

function ring(env: Env): number {
  return env.sys(sys_io_uring_setup(4, {}));
}
function reg(env: Env, fd: number, addr: number, len = 4096): number {
  return env.sys(
    sys_io_uring_register(fd, IORING_REGISTER_BUFFERS, [{ iov_base: addr, iov_len: len }], 1),
  );
}
function unreg(env: Env, fd: number): number {
  return env.sys(sys_io_uring_register(fd, IORING_UNREGISTER_BUFFERS, null, 0));
}

describe('io_sqe_buffers_register', () => {
  it('§11: anonymous memory is pinned (GUP_PIN_COUNTING_BIAS) until unregistered', () => {
    const env = bootEnv();
    const a = env.buffer(8192, 1);
    const p = env.pfnAt(a)! as page;
    const refs = page_ref_count(p);
    const fd = ring(env);
    expect(reg(env, fd, a, 8192)).toBe(0);
    expect(page_ref_count(p)).toBe(refs + GUP_PIN_COUNTING_BIAS);
    expect(folio_maybe_dma_pinned(p as number as folio)).toBe(true);
    expect(reg(env, fd, a, 8192)).toBe(-EBUSY);
    expect(unreg(env, fd)).toBe(0);
    expect(page_ref_count(p)).toBe(refs);
    expect(unreg(env, fd)).toBe(-ENXIO);
  });

  it('O-1: a shared writable ext4 mapping is refused (-EFAULT); memfd/tmpfs is allowed', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/var/tmp/m', new Uint8Array(8192)));
    const ffd = env.sys(do_sys_open('/var/tmp/m', O_RDWR, 0));
    const ext4 = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, ffd, 0));
    env.store(ext4, [1]);
    const mfd = env.sys(sys_memfd_create('m', 0));
    env.sys(sys_ftruncate(mfd, 8192));
    const memfd = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, mfd, 0));
    env.store(memfd, [1]);
    const fd = ring(env);
    expect(reg(env, fd, ext4)).toBe(-EFAULT);
    expect(reg(env, fd, memfd)).toBe(0);
  });

  it('O-1 by version: before v6.10 the VMA check refuses ext4 with -EOPNOTSUPP after pinning', () => {
    const env = bootEnv('6.1');
    env.sys(vfsCreateFile('/m', new Uint8Array(8192)));
    const ffd = env.sys(do_sys_open('/m', O_RDWR, 0));
    const ext4 = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, ffd, 0));
    env.store(ext4, [1]);
    const p = env.pfnAt(ext4)! as page;
    const refs = page_ref_count(p);
    expect(reg(env, ring(env), ext4)).toBe(-EOPNOTSUPP);
    expect(page_ref_count(p)).toBe(refs);
  });

  it('O-2/O-4/O-6: [vvar], secretmem-like and read-only memory are -EFAULT (FOLL_WRITE, no FOLL_FORCE)', () => {
    const env = bootEnv();
    const fd = ring(env);
    expect(reg(env, fd, find_vvar_vma(env.task.mm!)!.vm_start)).toBe(-EFAULT);
    const ro = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    env.load(ro);
    expect(reg(env, fd, ro)).toBe(-EFAULT);
  });

  it('O-11: long-term pinning of a private file page COW-unshares it first (the PFN changes)', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/f', new Uint8Array(4096).fill(5)));
    const ffd = env.sys(do_sys_open('/f', O_RDONLY, 0));
    const priv = env.sys(sys_mmap(0, 4096, RW, MAP_PRIVATE, ffd, 0));
    env.load(priv);
    const cache = env.pfnAt(priv)!;
    expect(folio_test_anon(cache as folio)).toBe(false);
    expect(reg(env, ring(env), priv)).toBe(0);
    const now = env.pfnAt(priv)!;
    expect(now).not.toBe(cache);
    expect(folio_test_anon(now as folio)).toBe(true);
  });

  it('§11 accounting: without CAP_IPC_LOCK the pages count against RLIMIT_MEMLOCK (-ENOMEM over it)', () => {
    const env = bootEnv('6.18', { caps: [], rlimit_memlock: 16 * 4096 });
    const fd = ring(env); // the ring and SQE regions are charged too (2 pages)
    expect(ioUringUserLockedVm()).toBe(2);
    const big = env.buffer(15 * 4096);
    expect(reg(env, fd, big, 15 * 4096)).toBe(-ENOMEM);
    expect(page_ref_count(env.pfnAt(big)! as page)).toBe(1);
    expect(reg(env, fd, big, 14 * 4096)).toBe(0);
    expect(ioUringUserLockedVm()).toBe(16);
    expect(env.task.mm!.pinned_vm).toBe(14);
    expect(unreg(env, fd)).toBe(0);
    expect(ioUringUserLockedVm()).toBe(2);
    expect(env.task.mm!.pinned_vm).toBe(0);
    void ROOT;
  });

  it('§11 coalescing (v6.10+): a THP-backed buffer keeps one pin on the folio', () => {
    const env = bootEnv();
    setTransparentHugepage(env.k, { enabled: 'always' });
    const q = env.sys(sys_mmap(0, 4 << 20, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    const a = Math.ceil(q / (2 << 20)) * (2 << 20);
    env.store(a, [1]);
    const head = env.pfnAt(a)! as number as folio;
    expect(reg(env, ring(env), a, 2 << 20)).toBe(0);
    expect(folio_pincount(head)).toBe(1);
  });

  it('§11 argument checks: a NULL array is -EFAULT, 0 buffers -EINVAL, more than 1 GiB -EFAULT', () => {
    const env = bootEnv();
    const fd = ring(env);
    expect(env.sys(sys_io_uring_register(fd, IORING_REGISTER_BUFFERS, null, 1))).toBe(-EFAULT);
    expect(env.sys(sys_io_uring_register(fd, IORING_REGISTER_BUFFERS, [], 0))).toBe(-EINVAL);
    expect(reg(env, fd, 0x10000, (1 << 30) + 1)).toBe(-EFAULT);
    expect(env.sys(sys_io_uring_register(fd, IORING_UNREGISTER_BUFFERS, null, 1))).toBe(-EINVAL);
  });
});

describe('io_issue_sqe', () => {
  it('O-10: fixed reads and writes go through the pinned pages, even after munmap of the buffer', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/var/tmp/d', new Uint8Array(8192).fill(0x44)));
    const dfd = env.sys(do_sys_open('/var/tmp/d', O_RDWR, 0));
    const a = env.buffer(4096, 0);
    const p = env.pfnAt(a)!;
    const fd = ring(env);
    expect(reg(env, fd, a)).toBe(0);
    expect(env.sys(sys_munmap(a, 4096))).toBe(0);
    const sqe = { opcode: IORING_OP_READ_FIXED, fd: dfd, off: 0, addr: a, len: 4096, buf_index: 0 };
    expect(env.sys(io_issue_sqe(fd, sqe))).toBe(4096);
    expect(phys_read(p * 4096, 1)[0]).toBe(0x44);
    // Outside the registered range: -EFAULT.
    expect(env.sys(io_issue_sqe(fd, { ...sqe, addr: a + 1, len: 4096 }))).toBe(-EFAULT);
    expect(env.sys(io_issue_sqe(fd, { ...sqe, buf_index: 3 }))).toBe(-EFAULT);
    expect(
      env.sys(io_issue_sqe(fd, { ...sqe, opcode: IORING_OP_WRITE_FIXED, off: 4096, len: 16 })),
    ).toBe(16);
    expect(unreg(env, fd)).toBe(0);
    // The frame is free once the last pin is gone.
    expect(page_ref_count(p as page)).toBe(0);
  });
});
