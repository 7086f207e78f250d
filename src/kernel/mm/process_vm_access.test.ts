/**
 * process_vm_readv/process_vm_writev (mm/process_vm_access.c): pin_user_pages_remote of
 * the remote side (FOLL_WRITE for writev), copy, unpin; partial counts.
 * Rules: kernel-spec.md §11 (entry points: pin_user_pages_remote), O-2, O-4, O-5, O-6.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { process_vm_rw, sys_process_vm_readv, sys_process_vm_writev } from './process_vm_access.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ } from './mmap.js';
import { sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { EFAULT, EINVAL, ESRCH } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_maybe_dma_pinned } from '../include/linux/mm.js';
import type { folio, page } from '../include/linux/mm_types.js';

const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe('process_vm_rw_core', () => {
  it('§11 readv: copies the remote pages into the local buffer and unpins them', () => {
    const a = bootEnv();
    const b = a.spawn('target');
    const remote = b.buffer(8192, 0x5a); // two pages, e.g. 0x7effffff6000
    const local = a.buffer(8192);
    const pfn = b.pfnAt(remote)!;
    const refs = page_ref_count(pfn as page);
    const n = a.sys(
      sys_process_vm_readv(
        b.task.pid,
        [{ iov_base: local, iov_len: 8192 }],
        [{ iov_base: remote, iov_len: 8192 }],
        0,
      ),
    );
    expect(n).toBe(8192);
    expect([...(a.load(local + 4095, 2) as Uint8Array)]).toEqual([0x5a, 0x5a]);
    // The pin (GUP_PIN_COUNTING_BIAS) is gone again.
    expect(page_ref_count(pfn as page)).toBe(refs);
    expect(folio_maybe_dma_pinned(pfn as folio)).toBe(false);
  });

  it('§11 writev: pins with FOLL_WRITE and writes the remote memory', () => {
    const a = bootEnv();
    const b = a.spawn('target');
    const remote = b.buffer(4096, 1);
    const local = a.buffer(4096, 0x77);
    expect(
      a.sys(
        sys_process_vm_writev(
          b.task.pid,
          [{ iov_base: local, iov_len: 4096 }],
          [{ iov_base: remote, iov_len: 4096 }],
          0,
        ),
      ),
    ).toBe(4096);
    expect([...(b.load(remote, 1) as Uint8Array)]).toEqual([0x77]);
  });

  it('O-6: writev into a read-only private mapping is -EFAULT (no FOLL_FORCE)', () => {
    const a = bootEnv();
    const ro = a.mmap(4096, PROT_READ, ANON);
    a.load(ro);
    const local = a.buffer(4096);
    expect(
      a.sys(
        sys_process_vm_writev(
          a.task.pid,
          [{ iov_base: local, iov_len: 4096 }],
          [{ iov_base: ro, iov_len: 4096 }],
          0,
        ),
      ),
    ).toBe(-EFAULT);
    // readv of the same range works (the zero page).
    expect(
      a.sys(
        sys_process_vm_readv(
          a.task.pid,
          [{ iov_base: local, iov_len: 4096 }],
          [{ iov_base: ro, iov_len: 4096 }],
          0,
        ),
      ),
    ).toBe(4096);
  });

  it('O-5/O-2: PROT_NONE and the [vvar] VM_IO|VM_PFNMAP mapping are -EFAULT', () => {
    const a = bootEnv();
    const none = a.mmap(4096, PROT_NONE, ANON);
    const local = a.buffer(4096);
    const rd = (addr: number): number =>
      a.sys(
        sys_process_vm_readv(
          a.task.pid,
          [{ iov_base: local, iov_len: 4096 }],
          [{ iov_base: addr, iov_len: 4096 }],
          0,
        ),
      );
    expect(rd(none)).toBe(-EFAULT);
    const vvar = a.task.mm!.mmap.find(
      (v) => (v.vm_private_data as { name?: string })?.name === '[vvar]',
    )!;
    expect(rd(vvar.vm_start)).toBe(-EFAULT);
  });

  it('§11 partial counts: a hole after copied bytes returns the bytes copied, not the error', () => {
    const a = bootEnv();
    const r = a.buffer(8192, 3); // e.g. [0x7effffff6000, 0x7effffff8000)
    a.sys(sys_munmap(r + 4096, 4096)); // the second page becomes a hole
    const local = a.buffer(8192);
    const n = a.sys(
      sys_process_vm_readv(
        a.task.pid,
        [{ iov_base: local, iov_len: 8192 }],
        [
          { iov_base: r, iov_len: 4096 },
          { iov_base: r + 4096, iov_len: 4096 },
        ],
        0,
      ),
    );
    expect(n).toBe(4096);
    // The hole first: nothing copied, the error.
    expect(
      a.sys(
        sys_process_vm_readv(
          a.task.pid,
          [{ iov_base: local, iov_len: 8192 }],
          [{ iov_base: r + 4096, iov_len: 4096 }],
          0,
        ),
      ),
    ).toBe(-EFAULT);
  });

  it('§11 argument checks: flags ≠ 0 is -EINVAL, an unknown pid -ESRCH, an empty local side 0', () => {
    const a = bootEnv();
    const local = a.buffer(4096);
    const iov = [{ iov_base: local, iov_len: 4096 }];
    expect(a.sys(process_vm_rw(a.task.pid, iov, iov, 1, false))).toBe(-EINVAL);
    expect(a.sys(process_vm_rw(99999, iov, iov, 0, false))).toBe(-ESRCH);
    expect(a.sys(process_vm_rw(a.task.pid, [], iov, 0, false))).toBe(0);
  });
});
