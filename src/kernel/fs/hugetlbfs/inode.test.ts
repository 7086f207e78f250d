/**
 * Tests of hugetlbfs (fs/hugetlbfs/inode.c): hugetlb_file_setup for MAP_HUGETLB and
 * memfd_create(MFD_HUGETLB), hugetlbfs_file_mmap (alignment, VM_HUGETLB|VM_DONTEXPAND and
 * the reservation: -ENOMEM when the pool cannot back the mapping, as on the live kernel
 * with nr_hugepages 0), hugetlb_get_unmapped_area, truncation (hugetlbfs_setattr) and
 * eviction; kernel-spec.md §11 O-1 (hugetlbfs is not written back: no dirty tracking).
 *
 * Addresses: the model's top-down allocator hands out 0x7effffe00000 for the first 2 MiB
 * mapping below MMAP_BASE (0x7f0000000000).
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../../sched/index.js';
import { SchedThread } from '../../../sched/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task } from '../../kernel/fork.js';
import type { task_struct } from '../../include/linux/sched.js';
import type { file } from '../../include/linux/mm_types.js';
import { VM_DONTEXPAND, VM_HUGETLB, VM_NORESERVE, VM_SHARED } from '../../include/linux/mm.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { EINVAL, ENODEV, ENOMEM, ENOSYS, EPERM } from '../../include/linux/errno.js';
import { ATTR_SIZE } from '../../include/linux/fs.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  ksys_mmap_pgoff,
  vm_munmap,
} from '../../mm/mmap.js';
import { vma_lookup } from '../../mm/vma.js';
import { memfd_create, MFD_ALLOW_SEALING, MFD_HUGETLB } from '../../mm/memfd.js';
import { mapping_can_writeback } from '../../mm/filemap.js';
import { F_SEAL_SHRINK } from '../../mm/shmem.js';
import { vma_needs_dirty_tracking } from '../../mm/gup.js';
import { fput, task_work_run } from '../file_table.js';
import { do_truncate } from '../namei.js';
import { default_hstate, hugetlb_sysctl_handler } from '../../mm/hugetlb.pool.js';
import { hugetlbEntryAt, is_vma_resv_set, HPAGE_RESV_OWNER } from '../../mm/hugetlb.js';
import {
  HUGETLBFS_I,
  HUGETLB_ANON_FILE,
  HUGETLB_ANONHUGE_INODE,
  hugetlb_file_setup,
  hugetlb_get_unmapped_area,
  hugetlbfs_setattr,
  is_file_hugepages,
} from './inode.js';

const MiB = 2 ** 20;
const HP = 2 * MiB;
const RW = PROT_READ | PROT_WRITE;
const ANON_HUGE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;

function boot(version = '6.18', config: Record<string, boolean> = {}): Kernel {
  const k = new Kernel({ version, config });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  return k;
}

function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

function pool(): { nr: number; free: number; resv: number; surp: number } {
  const h = default_hstate();
  return {
    nr: h.nr_huge_pages,
    free: h.free_huge_pages,
    resv: h.resv_huge_pages,
    surp: h.surplus_huge_pages,
  };
}

function setPool(k: Kernel, n: number): void {
  expect(k.run(hugetlb_sysctl_handler(n))).toBe(0);
}

function mmap(
  k: Kernel,
  t: task_struct,
  len: number,
  prot: number,
  flags: number,
  f: file | null = null,
  addr = 0,
  pgoff = 0,
): number {
  return runAs(k, t, ksys_mmap_pgoff(t.mm!, addr, len, prot, flags, f, pgoff));
}

function store(k: Kernel, t: task_struct, addr: number, byte: number): string {
  return runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind;
}

function load(k: Kernel, t: task_struct, addr: number): number | string {
  const r = runAs(k, t, cpu_user_read(t, addr, 1));
  return r.kind === 'ok' ? r.data[0]! : r.kind;
}

function memfdHuge(k: Kernel, size: number, flags = 0): file {
  const f = memfd_create('pfnsim', MFD_HUGETLB | flags) as file;
  expect(typeof f).toBe('object');
  expect(k.run(do_truncate(f.f_inode, size))).toBe(0);
  return f;
}

describe('hugetlb_file_setup', () => {
  it('MAP_HUGETLB|MAP_ANONYMOUS maps an unlinked anon_hugepage file of the hugetlbfs mount', () => {
    const k = boot('6.18');
    setPool(k, 1);
    const t = create_user_task('p');
    const a = mmap(k, t, HP, RW, ANON_HUGE);
    const f = vma_lookup(t.mm!, a)!.vm_file!;
    expect(f.f_path).toBe(HUGETLB_ANON_FILE);
    expect(is_file_hugepages(f)).toBe(true);
    expect(f.f_inode.i_size).toBe(HP);
    expect(f.f_inode.i_nlink).toBe(0);
  });

  it('a page-size log of 30 (1 GiB) has no hstate here: -ENODEV; without CONFIG_HUGETLBFS: -ENOSYS', () => {
    boot('6.18');
    expect(
      hugetlb_file_setup(HUGETLB_ANON_FILE, HP, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, 30),
    ).toBe(-ENODEV);
    expect(
      typeof hugetlb_file_setup(HUGETLB_ANON_FILE, HP, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, 21),
    ).toBe('object');
    boot('6.18', { CONFIG_HUGETLBFS: false });
    expect(hugetlb_file_setup(HUGETLB_ANON_FILE, HP, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, 0)).toBe(
      -ENOSYS,
    );
  });
});

describe('hugetlbfs_file_mmap', () => {
  it('MAP_HUGETLB with an empty pool is -ENOMEM (the reservation fails), as on the live kernel with nr_hugepages 0', () => {
    for (const v of ['5.10', '5.15', '6.1', '6.6', '6.12', '6.18']) {
      const k = boot(v);
      const t = create_user_task('p');
      expect(mmap(k, t, HP, RW, ANON_HUGE)).toBe(-ENOMEM);
      expect(t.mm!.mmap.length).toBe(0);
      expect(pool()).toEqual({ nr: 0, free: 0, resv: 0, surp: 0 });
      // The same for a shared mapping of a hugetlb memfd: ftruncate reserved nothing.
      const f = memfdHuge(k, HP);
      expect(mmap(k, t, HP, RW, MAP_SHARED, f)).toBe(-ENOMEM);
      fput(f);
    }
  });

  it('reserves the whole private mapping at mmap: VM_HUGETLB|VM_DONTEXPAND, HPAGE_RESV_OWNER, resv_huge_pages 2', () => {
    const k = boot('6.18');
    setPool(k, 3);
    const t = create_user_task('p');
    // len 4 KiB + 2 MiB is rounded up to 4 MiB (two huge pages) by ksys_mmap_pgoff.
    const a = mmap(k, t, HP + 4096, RW, ANON_HUGE);
    expect(a % HP).toBe(0);
    const vma = vma_lookup(t.mm!, a)!;
    expect(vma.vm_end - vma.vm_start).toBe(2 * HP);
    expect(vma.vm_flags & (VM_HUGETLB | VM_DONTEXPAND)).toBe(VM_HUGETLB | VM_DONTEXPAND);
    expect(is_vma_resv_set(vma, HPAGE_RESV_OWNER)).toBe(true);
    expect(pool()).toEqual({ nr: 3, free: 3, resv: 2, surp: 0 });
    // A second mapping of 2 huge pages cannot be backed by the one unreserved page.
    expect(mmap(k, t, 2 * HP, RW, ANON_HUGE)).toBe(-ENOMEM);
    expect(pool()).toEqual({ nr: 3, free: 3, resv: 2, surp: 0 });
  });

  it('MAP_NORESERVE reserves nothing: the mapping succeeds and a fault with an empty pool is SIGBUS', () => {
    const k = boot('6.18');
    const t = create_user_task('p');
    const a = mmap(k, t, HP, RW, ANON_HUGE | MAP_NORESERVE);
    expect(a).toBeGreaterThan(0);
    expect(pool().resv).toBe(0);
    expect(store(k, t, a, 1)).toBe('SIGBUS');
  });

  it('misaligned requests are -EINVAL: MAP_FIXED at a 4 KiB address, a file offset inside a huge page', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    expect(mmap(k, t, HP, RW, ANON_HUGE | MAP_FIXED, null, 0x40001000)).toBe(-EINVAL);
    const f = memfdHuge(k, 2 * HP);
    expect(mmap(k, t, HP, RW, MAP_SHARED, f, 0, 1)).toBe(-EINVAL);
    expect(mmap(k, t, HP, RW, MAP_SHARED | MAP_HUGETLB, f, 0, 512)).toBeGreaterThan(0);
    expect(pool().resv).toBe(1);
    fput(f);
  });

  it('O-1: a shared writable hugetlb mapping needs no dirty tracking (hugetlbfs is never written back)', () => {
    const k = boot('6.18');
    setPool(k, 1);
    const t = create_user_task('p');
    const f = memfdHuge(k, HP);
    const a = mmap(k, t, HP, RW, MAP_SHARED, f);
    const vma = vma_lookup(t.mm!, a)!;
    expect(vma.vm_flags & VM_SHARED).toBe(VM_SHARED);
    expect(mapping_can_writeback(f.f_mapping)).toBe(false);
    expect(vma_needs_dirty_tracking(vma)).toBe(false);
    fput(f);
  });
});

describe('hugetlb_get_unmapped_area', () => {
  it('top-down in huge-page steps below mmap_base; a hint is rounded up; MAP_FIXED must be aligned', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    const f = memfdHuge(k, HP);
    const mm = t.mm!;
    expect(hugetlb_get_unmapped_area(mm, f, 0, HP, 0, MAP_SHARED)).toBe(0x7effffe00000);
    expect(hugetlb_get_unmapped_area(mm, f, 0x40001000, HP, 0, MAP_SHARED)).toBe(0x40200000);
    expect(hugetlb_get_unmapped_area(mm, f, 0x40001000, HP, 0, MAP_SHARED | MAP_FIXED)).toBe(
      -EINVAL,
    );
    expect(hugetlb_get_unmapped_area(mm, f, 0, 4096, 0, MAP_SHARED)).toBe(-EINVAL);
    const a = mmap(k, t, HP, RW, MAP_SHARED, f);
    expect(a).toBe(0x7effffe00000);
    expect(hugetlb_get_unmapped_area(mm, f, 0, HP, 0, MAP_SHARED)).toBe(0x7effffc00000);
    fput(f);
  });
});

describe('hugetlbfs_setattr', () => {
  it('ftruncate of a hugetlb memfd: sizes must be huge-page multiples; shrinking unmaps and frees the pages', () => {
    for (const v of ['5.10', '6.1', '6.18']) {
      const k = boot(v);
      setPool(k, 2);
      const t = create_user_task('p');
      const f = memfdHuge(k, 2 * HP);
      expect(k.run(do_truncate(f.f_inode, HP + 4096))).toBe(-EINVAL);
      const a = mmap(k, t, 2 * HP, RW, MAP_SHARED, f);
      expect(store(k, t, a, 1)).toBe('ok');
      expect(store(k, t, a + HP, 2)).toBe('ok');
      expect(pool().free).toBe(0);
      expect(k.run(hugetlbfs_setattr(f.f_inode, { ia_valid: ATTR_SIZE, ia_size: HP }))).toBe(0);
      expect(hugetlbEntryAt(t.mm!, a + HP)).toBe(0);
      expect(pool()).toEqual({ nr: 2, free: 1, resv: 0, surp: 0 });
      expect(load(k, t, a + HP)).toBe('SIGBUS');
      expect(load(k, t, a)).toBe(1);
      fput(f);
    }
  });

  it('F_SEAL_SHRINK refuses a shrinking truncate with -EPERM', () => {
    const k = boot('6.18');
    const f = memfdHuge(k, 2 * HP, MFD_ALLOW_SEALING);
    HUGETLBFS_I(f.f_inode).seals |= F_SEAL_SHRINK;
    expect(k.run(hugetlbfs_setattr(f.f_inode, { ia_valid: ATTR_SIZE, ia_size: HP }))).toBe(-EPERM);
    expect(k.run(hugetlbfs_setattr(f.f_inode, { ia_valid: ATTR_SIZE, ia_size: 4 * HP }))).toBe(0);
    expect(f.f_inode.i_size).toBe(4 * HP);
    fput(f);
  });
});

describe('hugetlbfs_evict_inode', () => {
  it('the last close of a hugetlb memfd frees its page-cache pages to the pool', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    const f = memfdHuge(k, 2 * HP);
    const a = mmap(k, t, 2 * HP, RW, MAP_SHARED, f);
    expect(store(k, t, a, 1)).toBe('ok');
    expect(pool()).toEqual({ nr: 2, free: 1, resv: 1, surp: 0 });
    expect(f.f_inode.i_mapping.nrpages).toBe(512);
    // The VMA still holds the file: closing the descriptor frees nothing.
    fput(f);
    k.run(task_work_run());
    expect(pool()).toEqual({ nr: 2, free: 1, resv: 1, surp: 0 });
    // munmap drops the last file reference: the inode is evicted, page and reservation go.
    expect(runAs(k, t, vm_munmap(t.mm!, a, 2 * HP))).toBe(0);
    k.run(task_work_run());
    expect(pool()).toEqual({ nr: 2, free: 2, resv: 0, surp: 0 });
  });
});
