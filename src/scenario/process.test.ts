/**
 * The user-facing process handle: system calls by name, the synchronous and the Op
 * forms, fork/exit, CPU accesses returning signals, and one agreement case run end to
 * end.
 */
import { describe, expect, it } from 'vitest';
import { bootMachine } from './machine.js';
import { Process, Signal, isSignal, spawnProcess } from './process.js';
import { agreementMachine, runModelCase } from './agreement.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../kernel/mm/mmap.js';
import { O_CREAT } from '../kernel/include/linux/fs.js';
import { O_RDWR } from '../kernel/fs/inode.js';
import { page_ref_count } from '../kernel/include/linux/page_ref.js';
import { walkToPte, ptep_get } from '../kernel/include/linux/pgtable.js';
import { pte_pfn } from '../kernel/arch/x86/include/asm/pgtable_types.js';
import { hugetlb_sysctl_handler } from '../kernel/mm/hugetlb.pool.js';
import { MFD_HUGETLB } from '../kernel/mm/memfd.js';
import type { page } from '../kernel/include/linux/mm_types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe('Process', () => {
  it('system calls return what the kernel returns; loads and stores return data or a signal', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'app');
    const a = p.mmap(0, 8192, RW, ANON);
    expect(a % 4096).toBe(0);
    expect(p.store(a, [1, 2])).toBe(0);
    expect([...(p.load(a, 2) as Uint8Array)]).toEqual([1, 2]);
    expect(p.mprotect(a, 4096, PROT_NONE)).toBe(0);
    const s = p.load(a, 1);
    expect(isSignal(s) && (s as Signal).signo).toBe('SIGSEGV');
    expect(p.munmap(a, 3)).toBe(0);
    expect(p.close(42)).toBe(-9);
    expect(p.vvar()).toBeGreaterThan(0);
    const fd = p.open('/tmp/x', O_RDWR | O_CREAT);
    expect(p.pwrite(fd, a + 4096, 2, 0)).toBe(2);
    expect(p.pread(fd, a + 4096, 2, 0)).toBe(2);
  });

  it('fork returns the child pid; the child has its own handle and exits, releasing its pages', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'parent');
    const a = p.mmap(0, 4096, RW, ANON);
    p.store(a, [5]);
    const pid = p.fork();
    expect(pid).toBeGreaterThan(p.pid);
    const c = Process.of(k, pid);
    expect([...(c.load(a, 1) as Uint8Array)]).toEqual([5]);
    c.store(a, [6]); // COW in the child
    const cpfn = pte_pfn(ptep_get(walkToPte(c.task.mm!, a)!)) as page;
    expect(page_ref_count(cpfn)).toBe(1);
    c.exit(0);
    expect(c.exited).toBe(true);
    expect(page_ref_count(cpfn)).toBe(0);
    expect([...(p.load(a, 1) as Uint8Array)]).toEqual([5]);
  });

  it('the Op forms run in threads of a multi-thread run', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'a');
    const q = spawnProcess(k, 'b');
    const src = p.buffer(4096, 0x3c);
    const dst = q.buffer(4096, 0);
    const r = k.runner();
    let got = 0;
    r.spawn(
      'reader',
      (function* () {
        got = yield* q.op.process_vm_readv(
          p.pid,
          [{ iov_base: dst, iov_len: 4096 }],
          [{ iov_base: src, iov_len: 4096 }],
        );
      })(),
    );
    r.spawn('mapper', p.op.mmap(0, 4096, RW, ANON));
    expect(r.run().status).toBe('done');
    expect(got).toBe(4096);
    expect([...(q.load(dst, 1) as Uint8Array)]).toEqual([0x3c]);
  });

  it('hugetlb: MAP_HUGETLB and MFD_HUGETLB need pool pages (-ENOMEM without them)', () => {
    const k = bootMachine({ version: '6.18' });
    const p = spawnProcess(k, 'h');
    expect(p.mmap(0, 2 << 20, RW, ANON | 0x40000)).toBe(-12);
    k.run(hugetlb_sysctl_handler(2));
    const a = p.mmap(0, 2 << 20, RW, ANON | 0x40000);
    expect(a % (2 << 20)).toBe(0);
    expect(p.store(a, [1])).toBe(0);
    const fd = p.memfd_create('h', MFD_HUGETLB);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(p.ftruncate(fd, 2 << 20)).toBe(0);
    expect(p.mmap(0, 2 << 20, RW, MAP_SHARED, fd, 0) % (2 << 20)).toBe(0);
  });
});

describe('runModelCase', () => {
  it('runs one agreement case: ext4-shared-rw/io_uring-register is -EFAULT (O-1)', () => {
    const k = agreementMachine('6.18');
    expect(runModelCase(k, 'ext4-shared-rw', 'io_uring-register')).toBe('-EFAULT');
    expect(runModelCase(k, 'anon-private', 'io_uring-register')).toBe('ok');
    expect(runModelCase(k, 'hugetlb-anon', 'cpu-read')).toBe('ok');
  });
});
