/**
 * perf_event_open and the perf ring buffer mapping (kernel/events/core.c).
 * Rules: kernel-spec.md O-2 (the perf ring is VM_IO|VM_PFNMAP from v6.14: GUP -EFAULT,
 * CPU access works, pfn_mkwrite SIGBUSes past the control page), R-VMA-1, R-FORK-4.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../../test/kernel-env.js';
import { PERF_COUNT_SW_DUMMY, PERF_TYPE_SOFTWARE, sys_perf_event_open } from './core.js';
import { sys_mmap, sys_munmap } from '../../arch/x86/entry/syscall_64.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../mm/mmap.js';
import { vma_lookup } from '../../mm/vma.js';
import {
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_PFNMAP,
} from '../../include/linux/mm.js';
import { EACCES, EFAULT, EINVAL, ENOENT } from '../../include/linux/errno.js';
import { get_user_pages_fast } from '../../mm/gup.js';
import { page_ref_count } from '../../include/linux/page_ref.js';
import { ptep_get, walkToPte } from '../../include/linux/pgtable.js';
import { pte_write } from '../../arch/x86/include/asm/pgtable_types.js';
import type { page } from '../../include/linux/mm_types.js';

const RW = PROT_READ | PROT_WRITE;

function ring(env: Env, pages = 2): number {
  const fd = env.sys(
    sys_perf_event_open(
      { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_DUMMY, exclude_kernel: true },
      0,
      -1,
      -1,
      0,
    ),
  );
  expect(fd).toBeGreaterThanOrEqual(0);
  return env.sys(sys_mmap(0, pages * 4096, RW, MAP_SHARED, fd, 0));
}

describe('perf_mmap', () => {
  it('O-2 (v6.14+): mapped at mmap with remap_pfn_range, read-only PTEs: VM_IO|VM_PFNMAP|VM_DONTCOPY|VM_DONTEXPAND|VM_DONTDUMP', () => {
    const env = bootEnv('6.18');
    const a = ring(env);
    const vma = vma_lookup(env.task.mm!, a)!;
    const want = VM_IO | VM_PFNMAP | VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP;
    expect(vma.vm_flags & want).toBe(want);
    expect(env.pfnAt(a)).not.toBeNull();
    expect(env.pfnAt(a + 4096)).not.toBeNull();
    expect(pte_write(ptep_get(walkToPte(env.task.mm!, a)!))).toBe(false);
  });

  it('O-2 / R-FORK-4: a write to the control page is allowed by pfn_mkwrite; to a data page SIGBUS', () => {
    const env = bootEnv('6.18');
    const a = ring(env);
    expect(env.store(a, [1])).toBe('ok');
    expect(pte_write(ptep_get(walkToPte(env.task.mm!, a)!))).toBe(true);
    expect(env.store(a + 4096, [1])).toBe('SIGBUS');
    expect(env.load(a + 4096)).toBeInstanceOf(Uint8Array);
  });

  it('O-2: GUP on the ring is -EFAULT (v6.18) but works on the pre-v6.14 fault-mapped ring', () => {
    const env = bootEnv('6.18');
    const a = ring(env);
    const pages: page[] = [];
    expect(env.sys(get_user_pages_fast(a, 1, 0, pages))).toBe(-EFAULT);
    const old = bootEnv('6.13');
    const b = ring(old);
    const vma = vma_lookup(old.task.mm!, b)!;
    expect(vma.vm_flags & (VM_IO | VM_PFNMAP)).toBe(0n);
    expect(old.pfnAt(b)).toBeNull();
    expect(old.store(b, [1])).toBe('ok');
    expect(old.store(b + 4096, [1])).toBe('SIGBUS');
    const q: page[] = [];
    expect(old.sys(get_user_pages_fast(b, 1, 0, q))).toBe(1);
  });

  it('§11 checks: private mappings and sizes other than 1 + 2^n pages are -EINVAL', () => {
    const env = bootEnv('6.18');
    const fd = env.sys(
      sys_perf_event_open(
        { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_DUMMY, exclude_kernel: true },
        0,
        -1,
        -1,
        0,
      ),
    );
    expect(env.sys(sys_mmap(0, 8192, RW, MAP_PRIVATE, fd, 0))).toBe(-EINVAL);
    expect(env.sys(sys_mmap(0, 4 * 4096, RW, MAP_SHARED, fd, 0))).toBe(-EINVAL);
    expect(env.sys(sys_mmap(0, 3 * 4096, RW, MAP_SHARED, fd, 0))).toBeGreaterThan(0);
  });

  it('§11: the last munmap detaches the buffer from the event and frees its pages', () => {
    const env = bootEnv('6.18');
    const a = ring(env);
    const p = env.pfnAt(a)! as page;
    expect(page_ref_count(p)).toBe(1);
    env.sys(sys_munmap(a, 8192));
    expect(page_ref_count(p)).toBe(0);
  });
});

describe('sys_perf_event_open', () => {
  it('§11: unknown types are -ENOENT; counting the kernel needs CAP_PERFMON at paranoid 2', () => {
    const env = bootEnv('6.18', { caps: [] });
    expect(
      env.sys(sys_perf_event_open({ type: 5, config: 0, exclude_kernel: true }, 0, -1, -1, 0)),
    ).toBe(-ENOENT);
    expect(
      env.sys(
        sys_perf_event_open(
          { type: PERF_TYPE_SOFTWARE, config: PERF_COUNT_SW_DUMMY },
          0,
          -1,
          -1,
          0,
        ),
      ),
    ).toBe(-EACCES);
  });
});
