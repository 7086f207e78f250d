/**
 * io_uring ring mappings (io_uring/memmap.c: io_uring_mmap, io_region_mmap) and the
 * ring regions (io_create_region).
 * Rules: kernel-spec.md O-2, O-3 (VM_MIXEDMAP kernel rings), R-VMA-1.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../test/kernel-env.js';
import {
  sys_io_uring_setup,
  sys_io_uring_register,
  IORING_REGISTER_BUFFERS,
  type io_uring_params,
} from './io_uring.js';
import { IORING_OFF_SQES, io_pin_pages } from './memmap.js';
import { sys_madvise, sys_mmap, sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../mm/mmap.js';
import { MADV_DONTNEED } from '../mm/madvise.js';
import { VM_DONTEXPAND, VM_IO, VM_MIXEDMAP, VM_PFNMAP } from '../include/linux/mm.js';
import { vma_lookup } from '../mm/vma.js';
import { EFAULT, EINVAL } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { phys_read } from '../mm/sparse.js';
import type { page } from '../include/linux/mm_types.js';

const RW = PROT_READ | PROT_WRITE;

function mapRing(
  env: Env,
  entries: number,
  pages: number,
  off = 0,
): { addr: number; p: io_uring_params } {
  const p: io_uring_params = {};
  const fd = env.sys(sys_io_uring_setup(entries, p));
  expect(fd).toBeGreaterThanOrEqual(0);
  return { addr: env.sys(sys_mmap(0, pages * 4096, RW, MAP_SHARED, fd, off)), p };
}

describe('io_uring_mmap', () => {
  it('O-3 (v6.10+): the SQ ring is VM_MIXEDMAP|VM_DONTEXPAND of refcounted pages, mapped at mmap', () => {
    const env = bootEnv('6.18');
    const { addr, p } = mapRing(env, 256, 2);
    const vma = vma_lookup(env.task.mm!, addr)!;
    expect(vma.vm_flags & (VM_MIXEDMAP | VM_DONTEXPAND)).toBe(VM_MIXEDMAP | VM_DONTEXPAND);
    expect(vma.vm_flags & (VM_IO | VM_PFNMAP)).toBe(0n);
    // Both pages are present already; the ring header says 256 entries (offset 24).
    const pfn = env.pfnAt(addr)!;
    expect(env.pfnAt(addr + 4096)).toBe(pfn + 1);
    expect(new DataView(phys_read(pfn * 4096 + 24, 4).buffer).getUint32(0, true)).toBe(256);
    expect(p.sq_entries).toBe(256);
    expect(page_ref_count(pfn as page)).toBeGreaterThan(1);
    // GUP works on the ring: it can be registered as a buffer (long-term pin).
    const fd2 = env.sys(sys_io_uring_setup(4, {}));
    expect(
      env.sys(
        sys_io_uring_register(fd2, IORING_REGISTER_BUFFERS, [{ iov_base: addr, iov_len: 4096 }], 1),
      ),
    ).toBe(0);
  });

  it('O-3: after MADV_DONTNEED the ring range SIGBUSes (no ->fault)', () => {
    const env = bootEnv('6.18');
    const { addr } = mapRing(env, 4, 1);
    expect(env.load(addr)).toBeInstanceOf(Uint8Array);
    expect(env.sys(sys_madvise(addr, 4096, MADV_DONTNEED))).toBe(0);
    expect(env.load(addr)).toBe('SIGBUS');
  });

  it('R-VMA-1 (before v6.10): the ring was mapped with remap_pfn_range: VM_IO|VM_PFNMAP', () => {
    const env = bootEnv('6.6');
    const { addr } = mapRing(env, 4, 1);
    const vma = vma_lookup(env.task.mm!, addr)!;
    expect(vma.vm_flags & (VM_IO | VM_PFNMAP)).toBe(VM_IO | VM_PFNMAP);
    expect(env.load(addr)).toBeInstanceOf(Uint8Array);
  });

  it('§11: an unknown offset is -EINVAL; the SQE array maps at IORING_OFF_SQES', () => {
    const env = bootEnv('6.18');
    const fd = env.sys(sys_io_uring_setup(4, {}));
    expect(env.sys(sys_mmap(0, 4096, RW, MAP_SHARED, fd, 0x20000000))).toBe(-EINVAL);
    expect(env.sys(sys_mmap(0, 4096, RW, MAP_SHARED, fd, IORING_OFF_SQES))).toBeGreaterThan(0);
    // A private mapping of the ring is allowed by io_uring_mmap (no VM_SHARED check).
    expect(env.sys(sys_mmap(0, 4096, RW, MAP_PRIVATE, fd, 0))).toBeGreaterThan(0);
  });
});

describe('io_pin_pages', () => {
  it('§11: all or nothing: a range running into a hole unpins what it got and is -EFAULT', () => {
    const env = bootEnv('6.18');
    const a = env.buffer(8192, 1);
    env.sys(sys_munmap(a + 4096, 4096));
    const p = env.pfnAt(a)! as page;
    const refs = page_ref_count(p);
    // [a, a + 8192): the second page is not mapped.
    const r = env.sys(io_pin_pages(a, 8192));
    expect(r).toBe(-EFAULT);
    expect(page_ref_count(p)).toBe(refs);
  });
});
