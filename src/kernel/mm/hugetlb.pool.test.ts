/**
 * Tests of the hugetlb page pool (mm/hugetlb.c's pool half, mm/hugetlb.pool.ts): growing
 * and shrinking it with vm.nr_hugepages, surplus pages with vm.nr_overcommit_hugepages,
 * and pages going back to the pool free list (free_huge_folio), not to the buddy, at
 * munmap and exit.
 *
 * Addresses: the model's top-down allocator hands out 0x7effffe00000 for the first 2 MiB
 * mapping below MMAP_BASE (0x7f0000000000); pool pages are order-9 folios from the buddy.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, mmput } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, page } from '../include/linux/mm_types.js';
import { folio_order, folio_test_anon, folio_test_large } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import { ENOMEM } from '../include/linux/errno.js';
import {
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  ksys_mmap_pgoff,
  vm_munmap,
} from './mmap.js';
import { memfd_create, MFD_HUGETLB } from './memfd.js';
import { fput, task_work_run } from '../fs/file_table.js';
import { do_truncate } from '../fs/namei.js';
import { page_alloc_state, page_is_free } from './page_alloc.js';
import {
  default_hstate,
  folio_test_hugetlb,
  hugetlb_acct_memory,
  hugetlb_overcommit_handler,
  hugetlb_report_meminfo,
  hugetlb_sysctl_handler,
  hugetlb_usage,
} from './hugetlb.pool.js';
import { hugetlbEntryAt } from './hugetlb.js';

const MiB = 2 ** 20;
const HP = 2 * MiB;
const RW = PROT_READ | PROT_WRITE;
const ANON_HUGE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;

function boot(version = '6.18'): Kernel {
  const k = new Kernel({ version });
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

/** Free frames of the buddy allocator (all zones). */
function buddyFree(): number {
  return page_alloc_state().zones.reduce((s, z) => s + z.nr_free, 0);
}

function mmap(
  k: Kernel,
  t: task_struct,
  len: number,
  flags: number,
  f: file | null = null,
): number {
  return runAs(k, t, ksys_mmap_pgoff(t.mm!, 0, len, RW, flags, f, 0));
}

function store(k: Kernel, t: task_struct, addr: number, byte: number): string {
  return runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind;
}

function munmap(k: Kernel, t: task_struct, addr: number, len: number): number {
  const r = runAs(k, t, vm_munmap(t.mm!, addr, len));
  k.run(task_work_run());
  return r;
}

function exitTask(k: Kernel, t: task_struct): void {
  runAs(k, t, mmput(t.mm!));
  k.run(task_work_run());
}

function memfdHuge(k: Kernel, size: number): file {
  const f = memfd_create('pfnsim', MFD_HUGETLB) as file;
  expect(typeof f).toBe('object');
  expect(k.run(do_truncate(f.f_inode, size))).toBe(0);
  return f;
}

describe('set_max_huge_pages', () => {
  it('vm.nr_hugepages grows the pool with order-9 hugetlb folios from the buddy and shrinks it back', () => {
    for (const v of ['5.10', '6.1', '6.18']) {
      const k = boot(v);
      const base = buddyFree();
      expect(pool()).toEqual({ nr: 0, free: 0, resv: 0, surp: 0 });
      setPool(k, 3);
      expect(pool()).toEqual({ nr: 3, free: 3, resv: 0, surp: 0 });
      expect(buddyFree()).toBe(base - 3 * 512);
      const pfns = [...default_hstate().hugepage_freelists];
      expect(pfns.length).toBe(3);
      for (const f of pfns) {
        expect(f % 512).toBe(0);
        expect(folio_test_large(f)).toBe(true);
        expect(folio_order(f)).toBe(9);
        expect(folio_test_hugetlb(f)).toBe(true);
        expect(page_ref_count(f as number as page)).toBe(0); // frozen on the free list
        expect(page_is_free(f)).toBe(false); // not the buddy's
      }
      expect(hugetlb_report_meminfo()).toContain('HugePages_Total:       3');
      expect(hugetlb_report_meminfo()).toContain('Hugepagesize:       2048 kB');
      setPool(k, 1);
      expect(pool()).toEqual({ nr: 1, free: 1, resv: 0, surp: 0 });
      expect(buddyFree()).toBe(base - 512);
      setPool(k, 0);
      expect(buddyFree()).toBe(base);
      for (const f of pfns) {
        expect(folio_test_hugetlb(f)).toBe(false);
        expect(page_is_free(f)).toBe(true);
      }
    }
  });

  it('shrinking below the reserved pages keeps them; in-use pages beyond the count become surplus', () => {
    const k = boot('6.18');
    setPool(k, 2);
    const t = create_user_task('p');
    const a = mmap(k, t, 2 * HP, ANON_HUGE);
    expect(store(k, t, a, 1)).toBe('ok');
    expect(pool()).toEqual({ nr: 2, free: 1, resv: 1, surp: 0 });
    // One page is in use and one free page is reserved: neither can go.
    setPool(k, 0);
    expect(pool()).toEqual({ nr: 2, free: 1, resv: 1, surp: 2 });
    const buddy = buddyFree();
    // Freeing the surplus page in use gives it back to the buddy, not to the pool.
    expect(munmap(k, t, a, 2 * HP)).toBe(0);
    expect(pool()).toEqual({ nr: 0, free: 0, resv: 0, surp: 0 });
    expect(buddyFree()).toBeGreaterThanOrEqual(buddy + 2 * 512);
  });
});

describe('hugetlb_acct_memory', () => {
  it('nr_overcommit_hugepages lets a reservation take surplus pages from the buddy; they go back with it', () => {
    const k = boot('6.18');
    const base = buddyFree();
    const h = default_hstate();
    expect(k.run(hugetlb_acct_memory(h, 1))).toBe(-ENOMEM);
    expect(k.run(hugetlb_overcommit_handler(2))).toBe(0);
    expect(k.run(hugetlb_acct_memory(h, 2))).toBe(0);
    expect(pool()).toEqual({ nr: 2, free: 2, resv: 2, surp: 2 });
    expect(buddyFree()).toBe(base - 2 * 512);
    expect(k.run(hugetlb_acct_memory(h, 1))).toBe(-ENOMEM); // beyond the overcommit limit
    expect(k.run(hugetlb_acct_memory(h, -2))).toBe(0);
    expect(pool()).toEqual({ nr: 0, free: 0, resv: 0, surp: 0 });
    expect(buddyFree()).toBe(base);
  });

  it('MAP_HUGETLB with an empty pool but overcommit allowed maps surplus pages', () => {
    const k = boot('6.18');
    const base = buddyFree();
    expect(k.run(hugetlb_overcommit_handler(1))).toBe(0);
    const t = create_user_task('p');
    const a = mmap(k, t, HP, ANON_HUGE);
    expect(a).toBeGreaterThan(0);
    expect(store(k, t, a, 1)).toBe('ok');
    expect(pool()).toEqual({ nr: 1, free: 0, resv: 0, surp: 1 });
    exitTask(k, t);
    expect(pool()).toEqual({ nr: 0, free: 0, resv: 0, surp: 0 });
    expect(buddyFree()).toBe(base);
  });
});

describe('free_huge_folio', () => {
  it('munmap gives the pages back to the pool free list, not to the buddy; the reservation goes with the VMA', () => {
    for (const v of ['5.10', '6.1', '6.6', '6.12', '6.18']) {
      const k = boot(v);
      setPool(k, 2);
      const buddy = buddyFree();
      const t = create_user_task('p');
      const a = mmap(k, t, 2 * HP, ANON_HUGE);
      expect(store(k, t, a, 1)).toBe('ok');
      const f = pte_pfn(hugetlbEntryAt(t.mm!, a));
      expect(pool()).toEqual({ nr: 2, free: 1, resv: 1, surp: 0 });
      expect(munmap(k, t, a, 2 * HP)).toBe(0);
      expect(pool()).toEqual({ nr: 2, free: 2, resv: 0, surp: 0 });
      expect(default_hstate().hugepage_freelists).toContain(f);
      expect(page_ref_count(f as page)).toBe(0);
      expect(folio_test_anon(f as folio)).toBe(false);
      expect(folio_test_hugetlb(f as folio)).toBe(true);
      expect(page_is_free(f)).toBe(false);
      expect(hugetlb_usage(t.mm!)).toBe(0);
      // The page tables of the mapping went back; the pool pages did not.
      expect(buddyFree()).toBeLessThanOrEqual(buddy);
      exitTask(k, t);
      expect(buddyFree()).toBe(buddy);
    }
  });

  it('exit of a process with private and shared hugetlb mappings leaves the pool and the buddy as before', () => {
    for (const v of ['5.10', '5.15', '6.1', '6.6', '6.12', '6.18']) {
      const k = boot(v);
      setPool(k, 4);
      const buddy = buddyFree();
      const t = create_user_task('p');
      const a = mmap(k, t, 2 * HP, ANON_HUGE);
      const f = memfdHuge(k, HP);
      const s = mmap(k, t, HP, MAP_SHARED, f);
      expect(store(k, t, a, 1)).toBe('ok');
      expect(store(k, t, a + HP, 2)).toBe('ok');
      expect(store(k, t, s, 3)).toBe('ok');
      expect(pool()).toEqual({ nr: 4, free: 1, resv: 0, surp: 0 });
      fput(f); // the descriptor's reference; the VMA keeps the file
      exitTask(k, t);
      expect(pool()).toEqual({ nr: 4, free: 4, resv: 0, surp: 0 });
      expect(buddyFree()).toBe(buddy);
    }
  });
});
