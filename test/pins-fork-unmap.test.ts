/**
 * Issue 3 §3, pins across fork and unmap, through the system calls (kernel-spec §11 O-9,
 * O-10): vmsplice takes references, not pins, so fork shares the page and the pipe keeps
 * the page the child still maps after the parent's COW; mprotect never fails because of
 * a pin and the pin keeps the page.
 */
import { describe, expect, it } from 'vitest';
import { bootMachine } from '../src/scenario/machine.js';
import { Process, spawnProcess, isSignal } from '../src/scenario/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import {
  IORING_REGISTER_BUFFERS,
  IORING_UNREGISTER_BUFFERS,
} from '../src/kernel/io_uring/io_uring.js';
import { walkToPte, ptep_get } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { page_ref_count } from '../src/kernel/include/linux/page_ref.js';
import { folio_maybe_dma_pinned } from '../src/kernel/include/linux/mm.js';
import type { folio, page } from '../src/kernel/include/linux/mm_types.js';

const RW = PROT_READ | PROT_WRITE;

function pfnOf(p: Process, addr: number): number {
  return pte_pfn(ptep_get(walkToPte(p.task.mm!, addr)!));
}

describe('vmsplice across fork (O-9)', () => {
  it('the pipe holds a reference, fork shares the page, and after the parent COWs the pipe still has the old bytes', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'parent');
    const a = p.mmap(0, 4096, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(p.store(a, [0x41])).toBe(0); // 'A'
    const old = pfnOf(p, a);
    const fds = p.pipe();
    if (typeof fds === 'number') throw new Error(`pipe: ${fds}`);
    expect(p.vmsplice(fds[1], [{ iov_base: a, iov_len: 4096 }])).toBe(4096);
    // A reference (FOLL_GET), not a pin.
    expect(folio_maybe_dma_pinned(old as folio)).toBe(false);
    const child = Process.of(k, p.fork());
    expect(pfnOf(child, a)).toBe(old); // shared: a reference is not a pin
    expect(p.store(a, [0x42])).toBe(0); // 'B': the parent COWs
    expect(pfnOf(p, a)).not.toBe(old);
    expect(pfnOf(child, a)).toBe(old);
    const buf = p.buffer(4096);
    expect(p.read(fds[0], buf, 4096)).toBe(4096);
    expect([...(p.load(buf, 1) as Uint8Array)]).toEqual([0x41]); // the stale page
  });
});

describe('mprotect on a pinned range (O-10)', () => {
  it('succeeds; the pin keeps the page; writes then fault; unregistering drops the pin', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'app');
    const a = p.buffer(4096, 7);
    const pfn = pfnOf(p, a) as page;
    const ring = p.io_uring_setup(4);
    expect(ring).toBeGreaterThanOrEqual(0);
    expect(
      p.io_uring_register(ring, IORING_REGISTER_BUFFERS, [{ iov_base: a, iov_len: 4096 }], 1),
    ).toBe(0);
    expect(folio_maybe_dma_pinned(pfn as number as folio)).toBe(true);
    expect(p.mprotect(a, 4096, PROT_READ)).toBe(0);
    expect(pfnOf(p, a)).toBe(pfn);
    expect(isSignal(p.store(a, [1]))).toBe(true);
    expect(p.munmap(a, 4096)).toBe(0); // munmap never fails because of a pin either
    expect(page_ref_count(pfn)).toBeGreaterThanOrEqual(1024); // only the pin keeps it
    expect(p.io_uring_register(ring, IORING_UNREGISTER_BUFFERS, null, 0)).toBe(0);
    expect(folio_maybe_dma_pinned(pfn as number as folio)).toBe(false);
  });
});
