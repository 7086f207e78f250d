/**
 * Tests of mlock(2)/mlock2(2)/munlock(2) (mm/mlock.c) with the population in mm/gup.c:
 * R-VMA-1 (VM_LOCKED is never set on VM_SPECIAL VMAs), R-VMA-2 (__mm_populate skips
 * VM_IO|VM_PFNMAP), O-2 (mlock of a pfnmap is 0), O-4 (secretmem: -ENOMEM), O-5
 * (PROT_NONE: -ENOMEM), and the RLIMIT_MEMLOCK / locked_vm accounting.
 *
 * Machine: 1 GiB of RAM and an 8-page MMIO window at 0xfe000000. Anonymous memory at
 * 0x10000000, drivers at 0x30000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, vm_area_struct } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_DROPPABLE,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_LOCKED,
  VM_LOCKONFAULT,
  VM_PFNMAP,
} from '../include/linux/mm.js';
import { PAGE_SIZE, pte_write } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../include/linux/pgtable.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { vma_lookup } from './vma.js';
import { remap_pfn_range, vm_flags_set } from './memory.pfnmap.js';
import { mlock, mlock2, munlock, MLOCK_ONFAULT, __mlock_posix_error_return } from './mlock.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const D = 0x30000000;
const BAR = 0xfe000000;
const EPERM = -1;
const EAGAIN = -11;
const ENOMEM = -12;
const EFAULT = -14;
const EINVAL = -22;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.18', opts: { caps?: string[]; rlimit_memlock?: number } = {}): Env {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [
      ...x86_64_e820(1024 * MiB),
      { start: BAR, end: BAR + 8 * PAGE_SIZE, kind: 'mmio', name: 'BAR0' },
    ],
  });
  const task = create_user_task('ml', opts);
  const th = new SchedThread(0, 'ml', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, th) };
}

function mmap(
  env: Env,
  addr: number,
  pages: number,
  prot = PROT_READ | PROT_WRITE,
  flags = MAP_PRIVATE | MAP_ANONYMOUS,
  f: file | null = null,
): void {
  expect(
    env.run(vm_mmap_pgoff(env.task.mm!, f, addr, pages * PAGE_SIZE, prot, flags | MAP_FIXED, 0)),
  ).toBe(addr);
}

function pte(env: Env, addr: number): number | null {
  const l = walkToLeaf(env.task.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : v;
}

const vma = (env: Env, addr: number): vm_area_struct => vma_lookup(env.task.mm!, addr)!;

function barDriver(): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/bar', O_RDWR, inode, {
    name: 'bar_fops',
    *mmap(_f, v) {
      vm_flags_set(v, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      return yield* remap_pfn_range(
        v,
        v.vm_start,
        BAR / PAGE_SIZE,
        v.vm_end - v.vm_start,
        v.vm_page_prot,
      );
    },
  });
}

describe('do_mlock', () => {
  for (const v of ['6.18', '6.1', '5.15', '5.10']) {
    it(`(${v}) R-VMA-2: mlock sets VM_LOCKED, counts locked_vm and populates with write faults`, () => {
      const env = boot(v);
      mmap(env, A, 3);
      expect(env.run(mlock(A, 3 * PAGE_SIZE))).toBe(0);
      expect(vma(env, A).vm_flags & VM_LOCKED).toBe(VM_LOCKED);
      expect(env.task.mm!.locked_vm).toBe(3);
      for (let i = 0; i < 3; i++) expect(pte_write(pte(env, A + i * PAGE_SIZE)!)).toBe(true);
    });
  }

  it('R-VMA-1, O-2: mlock of a VM_IO|VM_PFNMAP mapping returns 0, never sets VM_LOCKED and counts nothing; a neighbouring anonymous VMA is locked and populated', () => {
    const env = boot('6.18');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
    mmap(env, D + 2 * PAGE_SIZE, 2);
    expect(env.run(mlock(D, 4 * PAGE_SIZE))).toBe(0);
    expect(vma(env, D).vm_flags & VM_LOCKED).toBe(0n);
    expect(vma(env, D + 2 * PAGE_SIZE).vm_flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(env.task.mm!.locked_vm).toBe(2);
    expect(pte(env, D + 3 * PAGE_SIZE)).not.toBeNull();
  });

  it('O-5: mlock of PROT_NONE memory is -ENOMEM (GUP -EFAULT through __mlock_posix_error_return); the VMA keeps VM_LOCKED', () => {
    for (const v of ['6.18', '5.15']) {
      const env = boot(v);
      mmap(env, A, 1, PROT_NONE);
      expect(env.run(mlock(A, PAGE_SIZE))).toBe(ENOMEM);
      expect(vma(env, A).vm_flags & VM_LOCKED).toBe(VM_LOCKED);
    }
  });

  it('O-4: mlock of secretmem is -ENOMEM (check_vma_flags refuses it); locked_vm is not charged again', () => {
    const env = boot('6.18');
    const inode = new_inode({ s_type: 'secretmem', s_nowriteback: true }, 'reg');
    inode.i_size = 4 * PAGE_SIZE;
    const sm = alloc_file('secretmem', O_RDWR, inode, {
      name: 'secretmem_fops',
      *mmap(_f, v) {
        v.vm_flags |= VM_LOCKED | VM_DONTDUMP;
        v.vm_ops = {
          name: 'secretmem_vm_ops',
          *fault() {
            return VM_FAULT_SIGBUS;
          },
        };
        return 0;
      },
    });
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, sm);
    const before = env.task.mm!.locked_vm;
    expect(env.run(mlock(D, 2 * PAGE_SIZE))).toBe(ENOMEM);
    expect(env.task.mm!.locked_vm).toBe(before);
  });

  it('a hole in the range is -ENOMEM (nothing populated); the VMA before the hole was locked already', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    mmap(env, A + 2 * PAGE_SIZE, 1);
    expect(env.run(mlock(A, 3 * PAGE_SIZE))).toBe(ENOMEM);
    expect(vma(env, A).vm_flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(pte(env, A)).toBeNull();
    expect(env.run(mlock(A + PAGE_SIZE, PAGE_SIZE))).toBe(ENOMEM);
  });

  it('RLIMIT_MEMLOCK: beyond it -ENOMEM without CAP_IPC_LOCK; a zero limit is -EPERM; CAP_IPC_LOCK bypasses both', () => {
    let env = boot('6.18', { rlimit_memlock: PAGE_SIZE });
    mmap(env, A, 2);
    expect(env.run(mlock(A, 2 * PAGE_SIZE))).toBe(ENOMEM);
    expect(env.run(mlock(A, PAGE_SIZE))).toBe(0);
    // Pages already locked in the range are not counted twice.
    expect(env.run(mlock(A, PAGE_SIZE))).toBe(0);
    env = boot('6.18', { rlimit_memlock: 0 });
    mmap(env, A, 1);
    expect(env.run(mlock(A, PAGE_SIZE))).toBe(EPERM);
    env = boot('6.18', { rlimit_memlock: 0, caps: ['CAP_IPC_LOCK'] });
    mmap(env, A, 2);
    expect(env.run(mlock(A, 2 * PAGE_SIZE))).toBe(0);
  });

  it('a partial mlock splits the VMA; munlock clears the flags and un-accounts', () => {
    const env = boot('6.18');
    mmap(env, A, 4);
    expect(env.run(mlock(A + PAGE_SIZE, 2 * PAGE_SIZE))).toBe(0);
    expect(vma(env, A).vm_end).toBe(A + PAGE_SIZE);
    expect(vma(env, A + PAGE_SIZE).vm_end).toBe(A + 3 * PAGE_SIZE);
    expect(vma(env, A).vm_flags & VM_LOCKED).toBe(0n);
    expect(pte(env, A)).toBeNull();
    expect(env.task.mm!.locked_vm).toBe(2);
    expect(env.run(munlock(A + PAGE_SIZE, 2 * PAGE_SIZE))).toBe(0);
    expect(vma(env, A + PAGE_SIZE).vm_flags & VM_LOCKED).toBe(0n);
    expect(env.task.mm!.locked_vm).toBe(0);
  });

  it('VM_DROPPABLE VMAs are never locked (v6.11+): VM_LOCKED is not set on v6.12, is on v6.10', () => {
    for (const [v, locked] of [
      ['6.12', 0n],
      ['6.10', VM_LOCKED],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      vma(env, A).vm_flags |= VM_DROPPABLE;
      expect(env.run(mlock(A, PAGE_SIZE))).toBe(0);
      expect(vma(env, A).vm_flags & VM_LOCKED).toBe(locked);
    }
  });
});

describe('mlock2', () => {
  it('MLOCK_ONFAULT sets VM_LOCKONFAULT and populates nothing (v6.18 returns at once, v5.15 visits present pages only); unknown flags are -EINVAL', () => {
    for (const v of ['6.18', '5.15']) {
      const env = boot(v);
      mmap(env, A, 2);
      expect(env.run(mlock2(A, 2 * PAGE_SIZE, MLOCK_ONFAULT))).toBe(0);
      expect(vma(env, A).vm_flags & (VM_LOCKED | VM_LOCKONFAULT)).toBe(VM_LOCKED | VM_LOCKONFAULT);
      expect(pte(env, A)).toBeNull();
      expect(env.run(mlock2(A, PAGE_SIZE, 2))).toBe(EINVAL);
    }
  });
});

describe('__mlock_posix_error_return', () => {
  it('O-4, O-5: -EFAULT becomes -ENOMEM, -ENOMEM becomes -EAGAIN, other errors pass', () => {
    expect(__mlock_posix_error_return(EFAULT)).toBe(ENOMEM);
    expect(__mlock_posix_error_return(ENOMEM)).toBe(EAGAIN);
    expect(__mlock_posix_error_return(-4)).toBe(-4);
  });
});
