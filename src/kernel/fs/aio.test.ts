/**
 * io_setup's AIO ring (fs/aio.c): a shared file mapping of page-cache pages with
 * aio_ring_vm_ops (filemap_fault, filemap_page_mkwrite).
 * Rules: kernel-spec.md O-1 (the AIO ring needs dirty tracking: long-term write pins are
 * refused), §11 (ordinary GUP works).
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { AIO_RING_MAGIC, aioContexts, exit_aio, sys_io_destroy, sys_io_setup } from './aio.js';
import { vma_lookup } from '../mm/vma.js';
import { VM_DONTEXPAND, VM_SHARED } from '../include/linux/mm.js';
import { EINVAL } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_test_anon } from '../include/linux/page-flags.js';
import {
  sys_io_uring_setup,
  sys_io_uring_register,
  IORING_REGISTER_BUFFERS,
} from '../io_uring/io_uring.js';
import { sys_process_vm_writev } from '../mm/process_vm_access.js';
import { EFAULT } from '../include/linux/errno.js';
import type { folio, page } from '../include/linux/mm_types.js';

describe('sys_io_setup', () => {
  it('§11: the ring is a MAP_SHARED file mapping of page-cache pages with a header; the id is its address', () => {
    const env = bootEnv();
    const ctx = { value: 0 };
    expect(env.sys(sys_io_setup(128, ctx))).toBe(0);
    const vma = vma_lookup(env.task.mm!, ctx.value)!;
    expect(vma.vm_start).toBe(ctx.value);
    expect(vma.vm_flags & (VM_SHARED | VM_DONTEXPAND)).toBe(VM_SHARED | VM_DONTEXPAND);
    // 128 events: max(128, 4 * CPUs) * 2 + 2 = 258 events of 32 bytes + 32: 3 pages.
    expect(vma.vm_end - vma.vm_start).toBe(3 * 4096);
    expect(vma.vm_ops!.page_mkwrite).toBeDefined();
    // Not populated until touched; a read faults the page-cache page in.
    expect(env.pfnAt(ctx.value)).toBeNull();
    const hdr = env.load(ctx.value, 20) as Uint8Array;
    expect(new DataView(hdr.buffer).getUint32(16, true)).toBe(AIO_RING_MAGIC);
    expect(folio_test_anon(env.pfnAt(ctx.value)! as folio)).toBe(false);
    expect(env.sys(sys_io_setup(128, ctx))).toBe(-EINVAL); // *ctxp must be 0
    expect(env.sys(sys_io_setup(0, { value: 0 }))).toBe(-EINVAL);
  });

  it('O-1: a long-term write pin (io_uring buffer) of the ring is -EFAULT; process_vm_writev works', () => {
    const env = bootEnv();
    const ctx = { value: 0 };
    env.sys(sys_io_setup(8, ctx));
    const fd = env.sys(sys_io_uring_setup(4, {}));
    expect(
      env.sys(
        sys_io_uring_register(
          fd,
          IORING_REGISTER_BUFFERS,
          [{ iov_base: ctx.value, iov_len: 4096 }],
          1,
        ),
      ),
    ).toBe(-EFAULT);
    const src = env.buffer(4096, 3);
    expect(
      env.sys(
        sys_process_vm_writev(
          env.task.pid,
          [{ iov_base: src, iov_len: 64 }],
          [{ iov_base: ctx.value + 64, iov_len: 64 }],
          0,
        ),
      ),
    ).toBe(64);
  });
});

describe('exit_aio', () => {
  it('§11: io_destroy unmaps and frees the ring; exit_aio frees it without munmap', () => {
    const env = bootEnv();
    const ctx = { value: 0 };
    env.sys(sys_io_setup(8, ctx));
    env.load(ctx.value);
    const p = env.pfnAt(ctx.value)! as page;
    expect(env.sys(sys_io_destroy(ctx.value))).toBe(0);
    expect(vma_lookup(env.task.mm!, ctx.value)).toBeNull();
    expect(page_ref_count(p)).toBe(0);
    expect(env.sys(sys_io_destroy(ctx.value))).toBe(-EINVAL);
    const c2 = { value: 0 };
    env.sys(sys_io_setup(8, c2));
    expect(aioContexts(env.task.mm!).length).toBe(1);
    env.sys(exit_aio(env.task.mm!));
    expect(aioContexts(env.task.mm!).length).toBe(0);
  });
});
