/**
 * Tests of MADV_POPULATE_READ / MADV_POPULATE_WRITE (mm/madvise.c:madvise_populate over
 * mm/gup.c:faultin_page_range, v6.9+, or faultin_vma_page_range per VMA, v5.14-v6.8).
 * Rules: R-GUP-2 (with FOLL_MADV_POPULATE a refused VMA is -EINVAL, no VMA -ENOMEM), O-2,
 * O-4, O-5.
 *
 * Machine: 1 GiB of RAM and an 8-page MMIO window at 0xfe000000 (pfns 0xfe000-0xfe007).
 * Anonymous memory at 0x10000000, drivers at 0x30000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, vm_area_struct, vm_fault } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_LOCKED,
  VM_MIXEDMAP,
  VM_PFNMAP,
} from '../include/linux/mm.js';
import { PAGE_SIZE, pte_pfn, pte_write } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf, zero_pfn } from '../include/linux/pgtable.js';
import { folio_test_anon, page_folio } from '../include/linux/page-flags.js';
import type { page } from '../include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { createExt4File } from '../fs/ext4/file.js';
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
import { remap_pfn_range, vm_flags_set, vmf_insert_mixed } from './memory.pfnmap.js';
import { do_madvise, MADV_POPULATE_READ, MADV_POPULATE_WRITE } from './madvise.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const D = 0x30000000;
const BAR = 0xfe000000;
const BAR_PFN = BAR / PAGE_SIZE;
const EINVAL = -22;
const ENOMEM = -12;
const EFAULT = -14;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.18'): Env {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [
      ...x86_64_e820(1024 * MiB),
      { start: BAR, end: BAR + 8 * PAGE_SIZE, kind: 'mmio', name: 'BAR0' },
    ],
  });
  const task = create_user_task('pop');
  const th = new SchedThread(0, 'pop', (function* () {})(), task);
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

function driverFile(name: string, mmapFn: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, v) => mmapFn(v),
  });
}

const madv = (env: Env, start: number, len: number, b: number): number =>
  env.run(do_madvise(env.task.mm!, start, len, b));

describe('madvise_populate', () => {
  for (const v of ['6.18', '6.1', '5.15']) {
    it(`(${v}) MADV_POPULATE_WRITE faults in writable anonymous pages; MADV_POPULATE_READ maps the zero page`, () => {
      const env = boot(v);
      mmap(env, A, 4);
      expect(madv(env, A, 2 * PAGE_SIZE, MADV_POPULATE_WRITE)).toBe(0);
      for (const a of [A, A + PAGE_SIZE]) {
        expect(pte_write(pte(env, a)!)).toBe(true);
        expect(folio_test_anon(page_folio(pte_pfn(pte(env, a)!) as page))).toBe(true);
      }
      expect(madv(env, A + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MADV_POPULATE_READ)).toBe(0);
      expect(pte_pfn(pte(env, A + 3 * PAGE_SIZE)!)).toBe(zero_pfn());
      expect(env.task.mm!.mmap_lock.isLocked()).toBe(false);
    });
  }

  it('O-2, R-GUP-2: a VM_IO|VM_PFNMAP range is -EINVAL (the check failure FOLL_MADV_POPULATE turns into -EINVAL), on v6.18 and v6.1', () => {
    for (const v of ['6.18', '6.1']) {
      const env = boot(v);
      const bar = driverFile('bar', function* (vma) {
        vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
        return yield* remap_pfn_range(
          vma,
          vma.vm_start,
          BAR_PFN,
          vma.vm_end - vma.vm_start,
          vma.vm_page_prot,
        );
      });
      mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, bar);
      expect(madv(env, D, 2 * PAGE_SIZE, MADV_POPULATE_READ)).toBe(EINVAL);
      expect(madv(env, D, 2 * PAGE_SIZE, MADV_POPULATE_WRITE)).toBe(EINVAL);
    }
  });

  it('O-4: a secretmem range is -EINVAL', () => {
    const env = boot('6.18');
    const inode = new_inode({ s_type: 'secretmem', s_nowriteback: true }, 'reg');
    inode.i_size = 4 * PAGE_SIZE;
    const sm = alloc_file('secretmem', O_RDWR, inode, {
      name: 'secretmem_fops',
      *mmap(_f, vma) {
        vma.vm_flags |= VM_LOCKED | VM_DONTDUMP;
        vma.vm_ops = {
          name: 'secretmem_vm_ops',
          *fault() {
            return VM_FAULT_SIGBUS;
          },
        };
        return 0;
      },
    });
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, sm);
    expect(madv(env, D, PAGE_SIZE, MADV_POPULATE_READ)).toBe(EINVAL);
  });

  it('O-5: PROT_NONE and MADV_POPULATE_WRITE of read-only memory are -EINVAL (no FOLL_FORCE)', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_NONE);
    mmap(env, A + PAGE_SIZE, 1, PROT_READ);
    expect(madv(env, A, PAGE_SIZE, MADV_POPULATE_READ)).toBe(EINVAL);
    expect(madv(env, A + PAGE_SIZE, PAGE_SIZE, MADV_POPULATE_WRITE)).toBe(EINVAL);
    expect(madv(env, A + PAGE_SIZE, PAGE_SIZE, MADV_POPULATE_READ)).toBe(0);
  });

  it('R-GUP-2: a hole is -ENOMEM; v6.9+ stops at the hole (faultin_page_range), v6.1 still populates the VMA after it (the madvise walk)', () => {
    for (const [v, after] of [
      ['6.18', false],
      ['6.1', true],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      mmap(env, A + 2 * PAGE_SIZE, 1);
      expect(madv(env, A, 3 * PAGE_SIZE, MADV_POPULATE_WRITE)).toBe(ENOMEM);
      expect(pte(env, A)).not.toBeNull();
      expect(pte(env, A + 2 * PAGE_SIZE) !== null).toBe(after);
      expect(madv(env, A + PAGE_SIZE, PAGE_SIZE, MADV_POPULATE_READ)).toBe(ENOMEM);
    }
  });

  it('a fault that SIGBUSes is -EFAULT (VM_MIXEDMAP ring of 2 pages, populated over 3)', () => {
    const env = boot('6.18');
    const ring = driverFile('ring', function* (vma) {
      vm_flags_set(vma, VM_MIXEDMAP | VM_DONTEXPAND);
      vma.vm_ops = {
        name: 'ring_vm_ops',
        *fault(vmf: vm_fault) {
          if (vmf.pgoff >= 2) return VM_FAULT_SIGBUS;
          return yield* vmf_insert_mixed(vmf.vma, vmf.address, BAR_PFN + vmf.pgoff);
        },
      };
      return 0;
    });
    mmap(env, D, 3, PROT_READ | PROT_WRITE, MAP_SHARED, ring);
    expect(madv(env, D, 3 * PAGE_SIZE, MADV_POPULATE_READ)).toBe(EFAULT);
    expect(pte(env, D + PAGE_SIZE)).not.toBeNull();
  });

  it('MADV_POPULATE_WRITE of a writable private file mapping breaks COW (anonymous copies)', () => {
    const env = boot('6.18');
    mmap(
      env,
      A,
      1,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE,
      createExt4File('/f', new Uint8Array(PAGE_SIZE).fill(3)),
    );
    expect(madv(env, A, PAGE_SIZE, MADV_POPULATE_WRITE)).toBe(0);
    expect(folio_test_anon(page_folio(pte_pfn(pte(env, A)!) as page))).toBe(true);
  });

  it('v5.13 does not know MADV_POPULATE_* (v5.14+): -EINVAL', () => {
    const env = boot('5.13');
    mmap(env, A, 1);
    expect(madv(env, A, PAGE_SIZE, MADV_POPULATE_READ)).toBe(EINVAL);
  });
});
