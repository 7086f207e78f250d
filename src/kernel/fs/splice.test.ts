/**
 * vmsplice (fs/splice.c) and the pipe buffers holding user pages (fs/pipe.c).
 * Rules: kernel-spec.md §11 (vmsplice = iov_iter_get_pages2 → FOLL_GET), O-2, O-9, O-10.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { sys_vmsplice, SPLICE_F_NONBLOCK, add_to_pipe, user_page_pipe_buf_ops } from './splice.js';
import { do_pipe2, EPIPE, alloc_pipe_info } from './pipe.js';
import { ksys_close } from './open.js';
import { ksys_read, ksys_write } from './read_write.js';
import { sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { fork_task } from '../kernel/fork.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../mm/mmap.js';
import { EAGAIN, EBADF, EFAULT, EINVAL } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_maybe_dma_pinned } from '../include/linux/mm.js';
import { find_vvar_vma } from '../arch/x86/entry/vdso/vma.js';
import { alloc_page, GFP_USER } from '../mm/page_alloc.js';
import { phys_read } from '../mm/sparse.js';
import type { folio, page } from '../include/linux/mm_types.js';

function pipe(env: ReturnType<typeof bootEnv>): [number, number] {
  const r = env.sys(do_pipe2(0));
  if (typeof r === 'number') throw new Error(`pipe ${r}`);
  return r;
}

describe('iter_to_pipe', () => {
  it('§11: vmsplice takes a reference (FOLL_GET), not a pin, on each page', () => {
    const env = bootEnv();
    const a = env.buffer(8192, 0x11); // e.g. 0x7effffff6000, two anon pages
    const p0 = env.pfnAt(a)! as page;
    const before = page_ref_count(p0);
    const [, w] = pipe(env);
    expect(env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 8192 }], 0))).toBe(8192);
    expect(page_ref_count(p0)).toBe(before + 1);
    expect(folio_maybe_dma_pinned(p0 as number as folio)).toBe(false);
  });

  it('O-10: the pipe keeps the old page after munmap; reading the pipe copies it out and puts it', () => {
    const env = bootEnv();
    const a = env.buffer(4096, 0x22);
    const p0 = env.pfnAt(a)! as page;
    const [r, w] = pipe(env);
    env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 4096 }], 0));
    expect(env.sys(sys_munmap(a, 4096))).toBe(0);
    // Only the pipe buffer's reference is left.
    expect(page_ref_count(p0)).toBe(1);
    expect(phys_read(p0 * 4096, 1)[0]).toBe(0x22);
    const buf = env.buffer(4096);
    expect(env.sys(ksys_read(r, buf, 4096))).toBe(4096);
    expect([...(env.load(buf, 1) as Uint8Array)]).toEqual([0x22]);
    // The emptied buffer released the page (freed: no reference).
    expect(page_ref_count(p0)).toBe(0);
  });

  it('O-9: after fork and a COW write in the parent, the pipe still holds the stale page', () => {
    const env = bootEnv();
    const a = env.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    env.store(a, [1]);
    const [r, w] = pipe(env);
    env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 4096 }], 0));
    const child = env.sys(fork_task(env.task));
    expect(typeof child).not.toBe('number');
    const shared = env.pfnAt(a);
    env.store(a, [2]); // the parent COWs: a new page; the pipe's page is the child's now
    expect(env.pfnAt(a)).not.toBe(shared);
    const buf = env.buffer(4096);
    env.sys(ksys_read(r, buf, 1));
    expect([...(env.load(buf, 1) as Uint8Array)]).toEqual([1]);
  });

  it('O-2: pages GUP cannot take (the [vvar] VM_IO|VM_PFNMAP mapping) are -EFAULT', () => {
    const env = bootEnv();
    const vvar = find_vvar_vma(env.task.mm!)!.vm_start;
    const [, w] = pipe(env);
    expect(env.sys(sys_vmsplice(w, [{ iov_base: vvar, iov_len: 4096 }], 0))).toBe(-EFAULT);
  });
});

describe('sys_vmsplice', () => {
  it('§11: unknown flags -EINVAL; a bad descriptor -EBADF; an empty iovec 0; a read end copies out', () => {
    const env = bootEnv();
    const a = env.buffer(4096, 5);
    const [r, w] = pipe(env);
    expect(env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 4096 }], 0x100))).toBe(-EINVAL);
    expect(env.sys(sys_vmsplice(99, [{ iov_base: a, iov_len: 4096 }], 0))).toBe(-EBADF);
    expect(env.sys(sys_vmsplice(w, [], 0))).toBe(0);
    expect(env.sys(ksys_write(w, a, 8))).toBe(8);
    const dst = env.buffer(4096);
    expect(env.sys(sys_vmsplice(r, [{ iov_base: dst, iov_len: 4096 }], 0))).toBe(8);
    expect([...(env.load(dst, 1) as Uint8Array)]).toEqual([5]);
  });

  it('§11: a full pipe is -EAGAIN with SPLICE_F_NONBLOCK; no reader is -EPIPE', () => {
    const env = bootEnv();
    const a = env.buffer(17 * 4096, 1);
    const [r, w] = pipe(env);
    // 16 buffers fill the pipe.
    expect(env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 16 * 4096 }], 0))).toBe(16 * 4096);
    expect(
      env.sys(sys_vmsplice(w, [{ iov_base: a + 16 * 4096, iov_len: 4096 }], SPLICE_F_NONBLOCK)),
    ).toBe(-EAGAIN);
    env.sys(ksys_close(r));
    expect(env.sys(sys_vmsplice(w, [{ iov_base: a, iov_len: 4096 }], 0))).toBe(-EPIPE);
  });
});

describe('add_to_pipe', () => {
  it('§11: a buffer that cannot be added is released (its page reference put)', () => {
    const env = bootEnv();
    const pipe = alloc_pipe_info();
    const p = alloc_page(GFP_USER)!;
    expect(page_ref_count(p)).toBe(1);
    // No reader: -EPIPE and ->release put the page.
    expect(
      add_to_pipe(pipe, { page: p, offset: 0, len: 4096, ops: user_page_pipe_buf_ops, flags: 0 }),
    ).toBe(-EPIPE);
    expect(page_ref_count(p)).toBe(0);
    void env;
  });
});
