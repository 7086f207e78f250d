/**
 * Tests of the PFN-mapping API of mm/memory.c (memory.pfnmap.ts).
 * Rules: kernel-spec.md §1 R-VMA-1, R-RPR-1..4, R-INS-1..4; §3 R-FPM-1..3, R-LEG-1..3,
 * R-CALL-1. R-VMA-2 (__mm_populate skipping VM_IO|VM_PFNMAP) belongs to the populate
 * code and is not tested here. R-INS-5 is in huge_memory.test.ts, R-VNP-* in
 * memory.normal.test.ts, R-FW-1 in pagewalk.test.ts, the concurrent cases in
 * memory.pfnmap.schedule.test.ts.
 *
 * Not exercised: page-table allocation failure (-ENOMEM / VM_FAULT_OOM), which the model
 * cannot inject; remap_pfn_range's kmalloc failure of the v6.16+ tracking context, which
 * the model never fails.
 *
 * Physical map: 4 GiB of e820 RAM plus a 1 MiB BAR at 0xfe000000 (pfns 0xfe000..0xfe0ff,
 * no struct page, in the 2-4 GiB hole).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { KernelBug, TAINT_USER, test_taint } from '../kernel/panic.js';
import { dmesg } from '../kernel/printk.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  mm_struct,
  page,
  vm_area_struct,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  FOLL_WRITE,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_LOCKED,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PAT,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
  get_mm_counter,
} from '../include/linux/mm.js';
import { page_mapcount } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import {
  _PAGE_ACCESSED,
  _PAGE_CACHE_MASK,
  _PAGE_DIRTY,
  _PAGE_PCD,
  _PAGE_PSE,
  _PAGE_PWT,
  _PAGE_RW,
  _PAGE_SPECIAL,
  PAGE_NONE,
  PAGE_READONLY,
  PAGE_SHARED,
  __pte,
  pfn_pte,
  pte_devmap,
  pte_dirty,
  pte_flags,
  pte_mkwrite,
  pte_pfn,
  pte_write,
  pte_young,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pte_mkspecial, pte_special } from '../arch/x86/include/asm/pgtable.js';
import {
  pgd_offset,
  pmd_alloc,
  ptep_get,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  set_pmd_at,
  set_pte_at,
  set_pud_at,
  walkToPte,
  zero_pfn,
} from '../include/linux/pgtable.js';
import { down_read, up_read } from '../include/linux/spinlock.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../include/linux/mmap_lock.js';
import { alloc_file, new_inode, O_RDONLY, O_RDWR } from '../fs/inode.js';
import {
  MAP_LOCKED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_get_page_prot,
  vm_mmap_pgoff,
} from './mmap.js';
import { do_mremap } from './mremap.js';
import { vm_area_alloc, vma_link, vma_lookup, get_file } from './vma.js';
import { anon_vma_prepare, folio_add_new_anon_rmap, RMAP_EXCLUSIVE } from './rmap.js';
import { alloc_page, __free_pages, GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from './page_alloc.js';
import { phys_read, phys_write } from './sparse.js';
import {
  PFN_DEV,
  PFN_MAP,
  __pfn_to_pfn_t,
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
  generic_access_phys,
  insert_pfn,
  io_remap_pfn_range,
  remap_pfn_range,
  remap_pfn_range_internal,
  remap_pfn_range_notrack,
  unsafe_follow_pfn,
  vm_insert_page,
  vm_insert_pages,
  vm_iomap_memory,
  vm_map_pages,
  vm_mixed_ok,
  vmf_insert_mixed,
  vmf_insert_pfn,
  vmf_insert_pfn_prot,
  type follow_pfnmap_args,
} from './memory.pfnmap.js';
import {
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WC,
  memtype_reserve,
  pat_memtype_list,
} from '../arch/x86/mm/pat/memtype.js';
import { ioremap_areas } from '../arch/x86/mm/ioremap.js';

const MiB = 2 ** 20;
/** The BAR: 0xfe000000..0xfe100000, pfns 0xfe000..0xfe0ff. */
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
/** The first pfn the L1TF check refuses: 2^(46 - 1 - 12). */
const L1TF_LIMIT_PFN = 2 ** 33;

const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const RO_SHARED = VM_READ | VM_SHARED | VM_MAYREAD | VM_MAYSHARE;
const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const PFNMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

interface Ctx {
  k: Kernel;
  task: task_struct;
  mm: mm_struct;
  th: SchedThread;
}

function boot(
  version: string,
  config: Record<string, boolean | number> = {},
  caps: string[] = [],
): Ctx {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('test', { caps });
  const th = new SchedThread(0, 'test', undefined as never, task);
  return { k, task, mm: task.mm!, th };
}

/** Runs op as the test task (current->comm "test"). */
function run<T>(c: Ctx, op: Op<T>): T {
  return c.k.run(op, c.th);
}

/** op with mmap_lock held for write (->mmap context) or read (fault context). */
function* locked<T>(mm: mm_struct, op: Op<T>, write = true): Op<T> {
  yield* write ? mmap_write_lock(mm) : mmap_read_lock(mm);
  const r = yield* op;
  yield* write ? mmap_write_unlock(mm) : mmap_read_unlock(mm);
  return r;
}

/** A VMA as mmap_region leaves it before ->mmap (unit-level; no driver). */
function makeVma(
  c: Ctx,
  start: number,
  end: number,
  flags: bigint,
  opts: { ops?: vm_operations_struct; pgoff?: number; file?: file; prot?: number } = {},
): vm_area_struct {
  const vma = vm_area_alloc(c.mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = opts.prot ?? vm_get_page_prot(flags);
  vma.vm_pgoff = opts.pgoff ?? 0;
  vma.vm_ops = opts.ops ?? null;
  if (opts.file) vma.vm_file = get_file(opts.file);
  vma_link(c.mm, vma);
  return vma;
}

/** A character device whose ->mmap is `mmap`. */
function chrdev(mmap: (f: file, vma: vm_area_struct) => Op<number>, flags = O_RDWR): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/bar0', flags, inode, { name: 'bar_fops', mmap });
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

/** Installs an entry at addr (allocating tables) under the PTE lock. */
function* installPte(mm: mm_struct, addr: number, v: pteval_t): Op<void> {
  const pudp = yield* pud_alloc(mm, pgd_offset(mm, addr), addr);
  const pmdp = yield* pmd_alloc(mm, pudp!, addr);
  expect(yield* pte_alloc(mm, pmdp!)).toBe(false);
  const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp!, addr))!;
  yield* set_pte_at(mm, addr, ptep, v);
  yield* pte_unmap_unlock(ptep, ptl);
}

/** An anonymous folio of an anon VMA (vm_insert_page must refuse it). */
function anonPage(c: Ctx): page {
  const av = makeVma(c, 0x7f0000000000, 0x7f0000001000, RW_PRIVATE);
  expect(anon_vma_prepare(av)).toBe(0);
  const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
  folio_add_new_anon_rmap(p as number as folio, av, av.vm_start, RMAP_EXCLUSIVE);
  return p;
}

function warnings(): number {
  return (dmesg().match(/WARNING: CPU/g) ?? []).length;
}

/* ------------------------------------------------------------------------------------ */

describe('VM_SPECIAL VMAs', () => {
  it('R-VMA-1: a remap_pfn_range VMA is IO|PFNMAP|DONTEXPAND|DONTDUMP: not grown by mremap, not mlocked', () => {
    const c = boot('6.12');
    const f = chrdev(function* (_f, vma) {
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        BAR_PFN,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    });
    // mmap(MAP_SHARED|MAP_LOCKED) of 4 pages: 0xfe000..0xfe003
    const addr = run(
      c,
      vm_mmap_pgoff(c.mm, f, 0, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, 0),
    );
    expect(addr).toBeGreaterThan(0);
    const vma = vma_lookup(c.mm, addr)!;
    expect(vma.vm_flags & PFNMAP_FLAGS).toBe(PFNMAP_FLAGS);
    expect((vma.vm_flags & VM_SPECIAL) !== 0n).toBe(true);
    // mmap_region drops VM_LOCKED for VM_SPECIAL VMAs (never mlocked)
    expect(vma.vm_flags & VM_LOCKED).toBe(0n);
    expect(c.mm.locked_vm).toBe(0);
    // VM_DONTEXPAND: growing in place is refused
    expect(run(c, do_mremap(c.mm, addr, 0x4000, 0x8000, 0))).toBe(-14 /* -EFAULT */);
    expect(vma.vm_end - vma.vm_start).toBe(0x4000);
  });
});

describe('remap_pfn_range_internal', () => {
  it('R-RPR-1.1: an unaligned addr WARNs once and returns -EINVAL before touching the VMA', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const ret = run(
      c,
      locked(c.mm, remap_pfn_range_internal(vma, 0x10000800, BAR_PFN, 0x1000, PAGE_SHARED)),
    );
    expect(ret).toBe(-22);
    expect(warnings()).toBe(1);
    expect(dmesg()).toMatch(/WARNING: CPU: 0 PID: \d+ at mm\/memory\.c:remap_pfn_range_internal\n/);
    expect(vma.vm_flags & VM_PFNMAP).toBe(0n);
    // _ONCE: a second bad call returns -EINVAL silently
    expect(
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000800, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toBe(-22);
    expect(warnings()).toBe(1);
  });

  it('R-RPR-1.1: the WARN site is remap_pfn_range_notrack in v5.13-v6.10 and remap_pfn_range in v5.9-v5.12', () => {
    for (const [v, fn] of [
      ['6.10', 'remap_pfn_range_notrack'],
      ['5.10', 'remap_pfn_range'],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
      expect(
        run(c, locked(c.mm, remap_pfn_range(vma, 0x10000800, BAR_PFN, 0x1000, PAGE_SHARED))),
      ).toBe(-22);
      expect(dmesg()).toMatch(new RegExp(`WARNING: CPU: 0 PID: \\d+ at mm/memory\\.c:${fn}\\n`));
      expect(pat_memtype_list()).toEqual([]);
    }
  });

  it('R-RPR-1.1: before 40736f7a6b53 (v5.9) an unaligned addr is mapped from its page without a warning', () => {
    const c = boot('5.8');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    // 0x10000800 -> the PTE of page 0x10000000 gets pfn 0xfe000
    const ret = run(
      c,
      locked(c.mm, remap_pfn_range(vma, 0x10000800, BAR_PFN, 0x1000, PAGE_SHARED)),
    );
    expect(ret).toBe(0);
    expect(warnings()).toBe(0);
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(BAR_PFN);
    expect(pteAt(c.mm, 0x10001000)).toBe(0);
  });

  it('R-RPR-1.1: remap_pfn_range_internal does not exist before 79a61cc3fc04 (v6.11)', () => {
    const c = boot('6.10');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    expect(() =>
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toThrow('remap_pfn_range_internal() does not exist in 6.10 (added by 79a61cc3fc04, v6.11)');
  });

  it('R-RPR-1.2: a COW VMA must be covered exactly (-EINVAL, flags untouched); covered, vm_pgoff becomes the pfn', () => {
    const c = boot('6.12');
    // MAP_PRIVATE writable: VM_MAYWRITE without VM_SHARED = COW; 0x10000000..0x10004000
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_PRIVATE, { pgoff: 7 });
    expect(
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10001000, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toBe(-22);
    expect(vma.vm_flags & VM_PFNMAP).toBe(0n);
    expect(vma.vm_pgoff).toBe(7);
    expect(pteAt(c.mm, 0x10001000)).toBe(0);
    expect(
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, BAR_PFN, 0x4000, PAGE_SHARED))),
    ).toBe(0);
    expect(vma.vm_pgoff).toBe(BAR_PFN);
    expect(pte_pfn(pteAt(c.mm, 0x10003000))).toBe(BAR_PFN + 3);
  });

  it('R-RPR-1.3/1.5: flags stay set after -EACCES from pfn_modify_allowed; entries before the refused pfn stay', () => {
    // L1TF-affected CPU, task without CAP_SYS_ADMIN, PROT_NONE entries above the limit
    const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const first = L1TF_LIMIT_PFN - 2; // 0x1fffffffe, 0x1ffffffff allowed; 0x200000000 refused
    const ret = run(
      c,
      locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, first, 0x4000, PAGE_NONE)),
    );
    expect(ret).toBe(-13);
    expect(vma.vm_flags & PFNMAP_FLAGS).toBe(PFNMAP_FLAGS);
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(first);
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(first + 1);
    expect(pteAt(c.mm, 0x10002000)).toBe(0);
    expect(pteAt(c.mm, 0x10003000)).toBe(0);
  });

  it('R-RPR-1.4: addr >= end (size 0) is a BUG', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    expect(() =>
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, BAR_PFN, 0, PAGE_SHARED))),
    ).toThrow(KernelBug);
  });

  it('R-RPR-1.5: special PTEs pfn upwards with exactly prot; a populated PTE is a BUG; no range check for non-COW VMAs', () => {
    const c = boot('6.12');
    // a 1-page shared VMA at 0x10000000; the remap covers 2 pages, the second outside it
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))),
    ).toBe(0);
    const e0 = pteAt(c.mm, 0x10000000);
    expect(e0).toBe(pte_mkspecial(pfn_pte(BAR_PFN, PAGE_SHARED)));
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(BAR_PFN + 1);
    expect(() =>
      run(c, locked(c.mm, remap_pfn_range_internal(vma, 0x10000000, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toThrow(KernelBug);
  });
});

describe('remap_pfn_range_notrack', () => {
  it('R-RPR-2: on error [addr, addr+size) is zapped: no partial mapping survives (v6.11+)', () => {
    const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const first = L1TF_LIMIT_PFN - 2;
    const ret = run(
      c,
      locked(c.mm, remap_pfn_range_notrack(vma, 0x10000000, first, 0x4000, PAGE_NONE)),
    );
    expect(ret).toBe(-13);
    expect(pteAt(c.mm, 0x10000000)).toBe(0);
    expect(pteAt(c.mm, 0x10001000)).toBe(0);
    expect(vma.vm_flags & PFNMAP_FLAGS).toBe(PFNMAP_FLAGS);
  });

  it('R-RPR-2: before 79a61cc3fc04 (v6.10) the partial mapping is left behind', () => {
    const c = boot('6.10', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const first = L1TF_LIMIT_PFN - 2;
    expect(
      run(c, locked(c.mm, remap_pfn_range_notrack(vma, 0x10000000, first, 0x4000, PAGE_NONE))),
    ).toBe(-13);
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(first);
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(first + 1);
  });

  it('R-RPR-2: maps without PAT: no reservation and prot exactly as given; absent before 74ffa5a3e685 (v5.13)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range_notrack(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))),
    ).toBe(0);
    expect(pat_memtype_list()).toEqual([]);
    expect(pte_flags(pteAt(c.mm, 0x10001000)) & _PAGE_CACHE_MASK).toBe(0);
    const old = boot('5.12');
    const v2 = makeVma(old, 0x10000000, 0x10002000, RW_SHARED);
    expect(() =>
      run(
        old,
        locked(old.mm, remap_pfn_range_notrack(v2, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED)),
      ),
    ).toThrow('remap_pfn_range_notrack() does not exist in 5.12');
  });
});

describe('remap_pfn_range', () => {
  function driverRemap(c: Ctx, pages: number, mapPages = pages) {
    const f = chrdev(function* (_f, vma) {
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        BAR_PFN,
        mapPages * 0x1000,
        vma.vm_page_prot,
      );
    });
    const addr = run(
      c,
      vm_mmap_pgoff(c.mm, f, 0, pages * 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
    );
    return { addr, vma: addr > 0 ? vma_lookup(c.mm, addr) : null };
  }

  it('R-RPR-3 (v6.12): a whole-VMA remap reserves the memtype (UC- for the BAR) and sets VM_PAT', () => {
    const c = boot('6.12');
    const { addr, vma } = driverRemap(c, 4);
    expect(addr).toBeGreaterThan(0);
    expect(vma!.vm_flags & VM_PAT).toBe(VM_PAT);
    expect(pat_memtype_list()).toEqual([
      { start: BAR, end: BAR + 0x4000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
    // the entries carry the reserved cache mode: PCD
    expect(pte_flags(pteAt(c.mm, addr + 0x3000)) & _PAGE_CACHE_MASK).toBe(_PAGE_PCD);
  });

  it('R-RPR-3 (v6.12): a partial remap only takes the tracked cache mode; no reservation, no VM_PAT', () => {
    const c = boot('6.12');
    // pfn 0xfe000 tracked WC by an earlier ioremap_wc-like reservation
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    const { addr, vma } = driverRemap(c, 4, 1);
    expect(vma!.vm_flags & VM_PAT).toBe(0n);
    expect(pat_memtype_list()).toHaveLength(1);
    expect(pte_flags(pteAt(c.mm, addr)) & _PAGE_CACHE_MASK).toBe(_PAGE_PWT);
  });

  it('R-RPR-3 (v6.12): a conflicting memtype fails the remap with -EINVAL and the PAT messages', () => {
    const c = boot('6.12');
    // 0xfe000000 WC and 0xfe001000 UC- already reserved by two other users
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    expect(memtype_reserve(BAR + 0x1000, BAR + 0x2000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(0);
    const { addr } = driverRemap(c, 2);
    expect(addr).toBe(-22);
    expect(dmesg()).toContain(
      `x86/PAT: test:${c.task.pid} conflicting memory types fe000000-fe002000 write-combining<->uncached-minus`,
    );
    expect(dmesg()).toContain(
      'x86/PAT: memtype_reserve failed [mem 0xfe000000-0xfe001fff], track uncached-minus, req write-back',
    );
    expect(c.mm.mmap).toHaveLength(0);
  });

  it('R-RPR-3 (v6.12): a failed remap is untracked (reservation freed, VM_PAT cleared)', () => {
    const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const first = L1TF_LIMIT_PFN - 2;
    expect(run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, first, 0x4000, PAGE_NONE)))).toBe(
      -13,
    );
    expect(pat_memtype_list()).toEqual([]);
    expect(vma.vm_flags & VM_PAT).toBe(0n);
    expect(pteAt(c.mm, 0x10000000)).toBe(0); // zapped by remap_pfn_range_notrack
  });

  it('R-RPR-3 (v5.12): COW rule first, then track_pfn_remap; whole VMA sets VM_PAT', () => {
    const c = boot('5.12');
    const cow = makeVma(c, 0x20000000, 0x20002000, RW_PRIVATE);
    expect(
      run(c, locked(c.mm, remap_pfn_range(cow, 0x20000000, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toBe(-22);
    expect(pat_memtype_list()).toEqual([]);
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))),
    ).toBe(0);
    expect(vma.vm_flags & (VM_PAT | VM_PFNMAP)).toBe(VM_PAT | VM_PFNMAP);
    expect(pat_memtype_list()).toEqual([
      { start: BAR, end: BAR + 0x2000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
  });

  it('R-RPR-3 (v6.18, f8e97613fed2): a whole-VMA remap stores a pfnmap_track_ctx (kref 1); no VM_PAT', () => {
    const c = boot('6.18');
    const { addr, vma } = driverRemap(c, 4);
    expect(addr).toBeGreaterThan(0);
    expect(vma!.pfnmap_track_ctx).toEqual({ pfn: BAR_PFN, size: 0x4000, kref: 1 });
    expect(pat_memtype_list()).toEqual([
      { start: BAR, end: BAR + 0x4000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
    expect(pte_flags(pteAt(c.mm, addr)) & _PAGE_CACHE_MASK).toBe(_PAGE_PCD);
  });

  it('R-RPR-3 (v6.18): a second whole-VMA remap of a tracked VMA is -EINVAL and maps nothing', () => {
    const c = boot('6.18');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))),
    ).toBe(0);
    const before = pteAt(c.mm, 0x10000000);
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN + 8, 0x2000, PAGE_SHARED))),
    ).toBe(-22);
    expect(pteAt(c.mm, 0x10000000)).toBe(before);
    expect(vma.pfnmap_track_ctx!.kref).toBe(1);
  });

  it('R-RPR-3 (v6.18): a partial remap over mixed memtypes is -EINVAL (pfnmap_setup_cachemode)', () => {
    const c = boot('6.18');
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    // 0xfe000 is WC, 0xfe001 untracked (UC-): not uniform
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))),
    ).toBe(-22);
    expect(vma.vm_flags & VM_PFNMAP).toBe(0n);
    expect(vma.pfnmap_track_ctx).toBeNull();
    // uniform partial range: takes WC
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN, 0x1000, PAGE_SHARED))),
    ).toBe(0);
    expect(pte_flags(pteAt(c.mm, 0x10000000)) & _PAGE_CACHE_MASK).toBe(_PAGE_PWT);
    expect(vma.pfnmap_track_ctx).toBeNull();
  });

  it('R-RPR-3 (v6.18): a failed whole-VMA remap drops the context, freeing the reservation', () => {
    const c = boot('6.18', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, L1TF_LIMIT_PFN - 2, 0x4000, PAGE_NONE))),
    ).toBe(-13);
    expect(vma.pfnmap_track_ctx).toBeNull();
    expect(pat_memtype_list()).toEqual([]);
  });
});

describe('io_remap_pfn_range', () => {
  it('R-RPR-4: x86 maps the same pfns as remap_pfn_range (pgprot_decrypted is the identity)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    expect(
      run(c, locked(c.mm, io_remap_pfn_range(vma, 0x10000000, BAR_PFN + 5, 0x2000, PAGE_SHARED))),
    ).toBe(0);
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(BAR_PFN + 5);
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(BAR_PFN + 6);
    expect(vma.vm_flags & VM_PAT).toBe(VM_PAT);
  });
});

describe('vm_iomap_memory', () => {
  it('R-RPR-4: a physical range that wraps in 64 bits is -EINVAL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    // start 0xfffffffffffff000, len 0x2000: start + len wraps
    expect(run(c, locked(c.mm, vm_iomap_memory(vma, 2 ** 64 - 4096, 0x2000)))).toBe(-22);
    expect(vma.vm_flags & VM_PFNMAP).toBe(0n);
  });

  it('R-RPR-4: vm_pgoff beyond the range, or a VMA longer than what is left, is -EINVAL', () => {
    const c = boot('6.12');
    // range 0xfe000000 + 0x3000 = 3 pages
    const v1 = makeVma(c, 0x10000000, 0x10001000, RW_SHARED, { pgoff: 4 });
    expect(run(c, locked(c.mm, vm_iomap_memory(v1, BAR, 0x3000)))).toBe(-22);
    const v2 = makeVma(c, 0x20000000, 0x20003000, RW_SHARED, { pgoff: 1 });
    expect(run(c, locked(c.mm, vm_iomap_memory(v2, BAR, 0x3000)))).toBe(-22);
  });

  it('R-RPR-4: maps the whole VMA starting vm_pgoff pages in; an unaligned start counts its partial page', () => {
    const c = boot('6.12');
    // start 0xfe000010, len 0x2000: pages 0xfe000..0xfe002 (3); vm_pgoff 1 -> 0xfe001, 0xfe002
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED, { pgoff: 1 });
    expect(run(c, locked(c.mm, vm_iomap_memory(vma, BAR + 0x10, 0x2000)))).toBe(0);
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(BAR_PFN + 1);
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(BAR_PFN + 2);
  });
});

describe('vmf_insert_pfn_prot', () => {
  const cases: [string, bigint][] = [
    ['neither PFNMAP nor MIXEDMAP', RW_SHARED],
    ['both PFNMAP and MIXEDMAP', RW_SHARED | VM_PFNMAP | VM_MIXEDMAP],
    ['a COW PFNMAP VMA', RW_PRIVATE | VM_PFNMAP],
  ];
  for (const [what, flags] of cases) {
    it(`R-INS-1: ${what} is a BUG`, () => {
      const c = boot('6.12');
      const vma = makeVma(c, 0x10000000, 0x10001000, flags);
      expect(() => run(c, locked(c.mm, vmf_insert_pfn(vma, 0x10000000, BAR_PFN), false))).toThrow(
        KernelBug,
      );
    });
  }

  it('R-INS-1: a MIXEDMAP VMA and a pfn with struct page is a BUG', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP);
    const p = alloc_page(GFP_KERNEL)!;
    expect(() => run(c, locked(c.mm, vmf_insert_pfn(vma, 0x10000000, p), false))).toThrow(
      KernelBug,
    );
  });

  it('R-INS-1: addr outside the VMA is VM_FAULT_SIGBUS', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
    expect(run(c, locked(c.mm, vmf_insert_pfn(vma, 0x10001000, BAR_PFN), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    expect(pteAt(c.mm, 0x10001000)).toBe(0);
  });

  it('R-INS-1: pfn_modify_allowed() false is VM_FAULT_SIGBUS; CAP_SYS_ADMIN may map it', () => {
    for (const [caps, want] of [
      [[], VM_FAULT_SIGBUS],
      [['CAP_SYS_ADMIN'], VM_FAULT_NOPAGE],
    ] as const) {
      const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true }, [...caps]);
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
      // PROT_NONE entry of pfn 0x200000000 (at the L1TF limit)
      expect(
        run(
          c,
          locked(c.mm, vmf_insert_pfn_prot(vma, 0x10000000, L1TF_LIMIT_PFN, PAGE_NONE), false),
        ),
      ).toBe(want);
    }
  });

  it('R-INS-1: the cache mode comes from PAT (track_pfn_insert v6.12, pfnmap_setup_cachemode_pfn v6.18); else prot exactly', () => {
    for (const v of ['6.12', '6.18']) {
      const c = boot(v);
      expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
      const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | VM_PFNMAP);
      // 0x10000000 -> 0xfe000 (WC-tracked), 0x10001000 -> 0xfe001 (untracked: UC-)
      expect(run(c, locked(c.mm, vmf_insert_pfn(vma, 0x10000000, BAR_PFN), false))).toBe(
        VM_FAULT_NOPAGE,
      );
      expect(run(c, locked(c.mm, vmf_insert_pfn(vma, 0x10001000, BAR_PFN + 1), false))).toBe(
        VM_FAULT_NOPAGE,
      );
      expect(pteAt(c.mm, 0x10000000)).toBe(__pte(BAR_PFN, PAGE_SHARED | _PAGE_PWT | _PAGE_SPECIAL));
      expect(pteAt(c.mm, 0x10001000)).toBe(
        __pte(BAR_PFN + 1, PAGE_SHARED | _PAGE_PCD | _PAGE_SPECIAL),
      );
    }
  });
});

describe('insert_pfn', () => {
  function* at(
    c: Ctx,
    vma: vm_area_struct,
    addr: number,
    pfn: number,
    prot: number,
    mkwrite: boolean,
  ) {
    return yield* locked(c.mm, insert_pfn(vma, addr, pfn, prot, mkwrite), false);
  }

  it('R-INS-2: an empty PTE gets special(pfn, prot), plus young/dirty/write with mkwrite', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | VM_PFNMAP);
    expect(run(c, at(c, vma, 0x10000000, BAR_PFN, PAGE_READONLY, false))).toBe(VM_FAULT_NOPAGE);
    expect(pteAt(c.mm, 0x10000000)).toBe(__pte(BAR_PFN, PAGE_READONLY | _PAGE_SPECIAL));
    expect(run(c, at(c, vma, 0x10001000, BAR_PFN + 1, PAGE_READONLY & ~_PAGE_ACCESSED, true))).toBe(
      VM_FAULT_NOPAGE,
    );
    const e = pteAt(c.mm, 0x10001000);
    expect(pte_young(e) && pte_dirty(e) && pte_write(e) && pte_special(e)).toBe(true);
  });

  it('R-INS-2: a present PTE: mkwrite and the same pfn makes it young, dirty and writable; without mkwrite unchanged', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
    const ro = __pte(BAR_PFN, (PAGE_READONLY & ~_PAGE_ACCESSED) | _PAGE_SPECIAL);
    run(c, installPte(c.mm, 0x10000000, ro));
    expect(run(c, at(c, vma, 0x10000000, BAR_PFN, PAGE_SHARED, false))).toBe(VM_FAULT_NOPAGE);
    expect(pteAt(c.mm, 0x10000000)).toBe(ro);
    expect(run(c, at(c, vma, 0x10000000, BAR_PFN, PAGE_SHARED, true))).toBe(VM_FAULT_NOPAGE);
    expect(pteAt(c.mm, 0x10000000)).toBe(
      __pte(BAR_PFN, pte_flags(ro) | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_RW),
    );
  });

  it('R-INS-2: mkwrite over another pfn WARNs once and leaves the PTE, unless the old pfn is the zero pfn', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | VM_MIXEDMAP);
    const other = __pte(BAR_PFN + 9, PAGE_READONLY | _PAGE_SPECIAL);
    const zero = __pte(zero_pfn(), PAGE_READONLY | _PAGE_SPECIAL);
    run(c, installPte(c.mm, 0x10000000, other));
    run(c, installPte(c.mm, 0x10001000, zero));
    expect(run(c, at(c, vma, 0x10001000, BAR_PFN, PAGE_SHARED, true))).toBe(VM_FAULT_NOPAGE);
    expect(pteAt(c.mm, 0x10001000)).toBe(zero);
    expect(warnings()).toBe(0);
    expect(run(c, at(c, vma, 0x10000000, BAR_PFN, PAGE_SHARED, true))).toBe(VM_FAULT_NOPAGE);
    expect(pteAt(c.mm, 0x10000000)).toBe(other);
    expect(warnings()).toBe(1);
  });

  it('R-INS-2: a devmap pfn_t gets pte_mkdevmap on v6.12; v6.18 has no devmap and sets special', () => {
    for (const [v, devmap] of [
      ['6.12', true],
      ['6.18', false],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP);
      const p = __pfn_to_pfn_t(BAR_PFN, PFN_DEV | PFN_MAP);
      run(c, locked(c.mm, insert_pfn(vma, 0x10000000, p, PAGE_SHARED, false), false));
      const e = pteAt(c.mm, 0x10000000);
      expect(pte_devmap(e)).toBe(devmap);
      expect(pte_special(e)).toBe(true); // _PAGE_DEVMAP entries carry the special bit on x86
    }
  });
});

describe('vmf_insert_mixed', () => {
  it('R-INS-3: vm_mixed_ok() false is VM_FAULT_SIGBUS from v6.11, a BUG before', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, BAR_PFN), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    const o = boot('6.10');
    const v2 = makeVma(o, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
    expect(() => run(o, locked(o.mm, vmf_insert_mixed(v2, 0x10000000, BAR_PFN), false))).toThrow(
      KernelBug,
    );
  });

  it('R-INS-3: v6.12 accepts a devmap pfn_t without MIXEDMAP; v6.18 does not', () => {
    for (const [v, want] of [
      ['6.12', VM_FAULT_NOPAGE],
      ['6.18', VM_FAULT_SIGBUS],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
      const p = __pfn_to_pfn_t(BAR_PFN, PFN_DEV | PFN_MAP);
      expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, p), false))).toBe(want);
    }
  });

  it('R-INS-3: the zero pfn: refused with mkwrite and in shared writable VMAs; accepted in COW VMAs', () => {
    const c = boot('6.12');
    const shared = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP);
    const cow = makeVma(c, 0x20000000, 0x20001000, RW_PRIVATE | VM_MIXEDMAP);
    expect(vm_mixed_ok(cow, zero_pfn(), true)).toBe(false);
    expect(run(c, locked(c.mm, vmf_insert_mixed(shared, 0x10000000, zero_pfn()), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    expect(run(c, locked(c.mm, vmf_insert_mixed(cow, 0x20000000, zero_pfn()), false))).toBe(
      VM_FAULT_NOPAGE,
    );
    const e = pteAt(c.mm, 0x20000000);
    expect(pte_pfn(e)).toBe(zero_pfn());
    expect(pte_special(e)).toBe(true);
  });

  it('R-INS-3: addr outside the VMA, or pfn_modify_allowed() false, is VM_FAULT_SIGBUS', () => {
    const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true });
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP, { prot: PAGE_NONE });
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10001000, BAR_PFN), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, L1TF_LIMIT_PFN), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    expect(pteAt(c.mm, 0x10000000)).toBe(0);
  });

  it('R-INS-3: with the special bit a RAM pfn is inserted special, without a reference', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP);
    const p = alloc_page(GFP_KERNEL)!;
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, p), false))).toBe(VM_FAULT_NOPAGE);
    expect(pte_special(pteAt(c.mm, 0x10000000))).toBe(true);
    expect(page_ref_count(p)).toBe(1);
    expect(page_mapcount(p)).toBe(0);
  });

  it('R-INS-3: without the special bit a pfn_valid pfn is a refcounted insert_page; -EBUSY is NOPAGE, -EINVAL SIGBUS', () => {
    const c = boot('6.12', { CONFIG_ARCH_HAS_PTE_SPECIAL: false });
    const vma = makeVma(c, 0x10000000, 0x10003000, RW_SHARED | VM_MIXEDMAP);
    const p = alloc_page(GFP_KERNEL)!;
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, p), false))).toBe(VM_FAULT_NOPAGE);
    const e = pteAt(c.mm, 0x10000000);
    expect(pte_pfn(e)).toBe(p);
    expect(pte_flags(e) & _PAGE_SPECIAL).toBe(0);
    expect(page_ref_count(p)).toBe(2);
    expect(page_mapcount(p)).toBe(1);
    expect(get_mm_counter(c.mm, MM_FILEPAGES)).toBe(1);
    // again: insert_page -EBUSY -> NOPAGE, nothing changes
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10000000, p), false))).toBe(VM_FAULT_NOPAGE);
    expect(page_ref_count(p)).toBe(2);
    // an anonymous page: validate_page_before_insert -EINVAL -> SIGBUS
    const anon = anonPage(c);
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10001000, anon), false))).toBe(
      VM_FAULT_SIGBUS,
    );
    // a BAR pfn has no struct page: insert_pfn, no special bit on this arch
    expect(run(c, locked(c.mm, vmf_insert_mixed(vma, 0x10002000, BAR_PFN), false))).toBe(
      VM_FAULT_NOPAGE,
    );
    expect(pte_pfn(pteAt(c.mm, 0x10002000))).toBe(BAR_PFN);
  });
});

describe('vm_insert_page', () => {
  it('R-INS-4: addr outside the VMA is -EFAULT', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    const p = alloc_page(GFP_KERNEL)!;
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10001000, p)))).toBe(-14);
    expect(vma.vm_flags & VM_MIXEDMAP).toBe(0n);
  });

  it('R-INS-4: converting a VMA to MIXEDMAP needs mmap_lock for write (BUG_ON(mmap_read_trylock()))', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    const p = alloc_page(GFP_KERNEL)!;
    expect(() => run(c, locked(c.mm, vm_insert_page(vma, 0x10000000, p), false))).toThrow(
      KernelBug,
    );
  });

  it('R-INS-4: a PFNMAP VMA is a BUG', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_PFNMAP);
    const p = alloc_page(GFP_KERNEL)!;
    expect(() => run(c, locked(c.mm, vm_insert_page(vma, 0x10000000, p)))).toThrow(KernelBug);
  });

  it('R-INS-4: success: MIXEDMAP set, a reference, a file rmap, RSS file +1, a non-special PTE', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    const p = alloc_page(GFP_KERNEL)!;
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10000000, p)))).toBe(0);
    expect(vma.vm_flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
    expect(page_ref_count(p)).toBe(2);
    expect(page_mapcount(p)).toBe(1);
    expect(get_mm_counter(c.mm, MM_FILEPAGES)).toBe(1);
    expect(pteAt(c.mm, 0x10000000)).toBe(pfn_pte(p, PAGE_SHARED));
    // populated: -EBUSY, nothing changes
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10000000, p)))).toBe(-16);
    expect(page_ref_count(p)).toBe(2);
  });

  it('R-INS-4: refcount 0, anonymous and page-table pages are -EINVAL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const freed = alloc_page(GFP_KERNEL)!;
    __free_pages(freed, 0);
    expect(page_ref_count(freed)).toBe(0);
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10000000, freed)))).toBe(-22);
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10001000, anonPage(c))))).toBe(-22);
    const ok = alloc_page(GFP_KERNEL)!;
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10002000, ok)))).toBe(0);
    const table = walkToPte(c.mm, 0x10002000)!.t.pfn as page; // the PTE table's own page
    expect(run(c, locked(c.mm, vm_insert_page(vma, 0x10003000, table)))).toBe(-22);
    expect(pteAt(c.mm, 0x10003000)).toBe(0);
  });

  it('R-INS-4: the zero page: v6.12 only where vm_mixed_zeropage_allowed (special, no reference); v6.10 refcounts it', () => {
    const c = boot('6.12');
    const rw = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    const ro = makeVma(c, 0x20000000, 0x20001000, RO_SHARED);
    const z = zero_pfn() as page;
    const ref = page_ref_count(z);
    expect(run(c, locked(c.mm, vm_insert_page(rw, 0x10000000, z)))).toBe(-22);
    expect(run(c, locked(c.mm, vm_insert_page(ro, 0x20000000, z)))).toBe(0);
    expect(pte_special(pteAt(c.mm, 0x20000000))).toBe(true);
    expect(page_ref_count(z)).toBe(ref);
    expect(get_mm_counter(c.mm, MM_FILEPAGES)).toBe(0);

    const o = boot('6.10');
    const rw2 = makeVma(o, 0x10000000, 0x10001000, RW_SHARED);
    const z2 = zero_pfn() as page;
    const ref2 = page_ref_count(z2);
    expect(run(o, locked(o.mm, vm_insert_page(rw2, 0x10000000, z2)))).toBe(0);
    expect(pte_special(pteAt(o.mm, 0x10000000))).toBe(false);
    expect(page_ref_count(z2)).toBe(ref2 + 1);
  });
});

describe('vm_insert_pages', () => {
  it('R-INS-4: the range must lie in the VMA (-EFAULT, *num unchanged)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED);
    const pages = [alloc_page(GFP_KERNEL)!, alloc_page(GFP_KERNEL)!, alloc_page(GFP_KERNEL)!];
    expect(run(c, locked(c.mm, vm_insert_pages(vma, 0x10000000, pages, 3)))).toEqual({
      ret: -14,
      num: 3,
    });
  });

  it('R-INS-4: an error stops the batch; *num is the pages not mapped and the earlier ones stay', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10004000, RW_SHARED);
    const a = alloc_page(GFP_KERNEL)!;
    const b = alloc_page(GFP_KERNEL)!;
    const pages = [a, b, anonPage(c), alloc_page(GFP_KERNEL)!];
    expect(run(c, locked(c.mm, vm_insert_pages(vma, 0x10000000, pages, 4)))).toEqual({
      ret: -22,
      num: 2,
    });
    expect(pte_pfn(pteAt(c.mm, 0x10000000))).toBe(a);
    expect(pte_pfn(pteAt(c.mm, 0x10001000))).toBe(b);
    expect(pteAt(c.mm, 0x10002000)).toBe(0);
    expect(page_ref_count(a)).toBe(2);
  });

  it('R-INS-4: success maps all pages across a PTE-table boundary, num 0', () => {
    const c = boot('6.12');
    // 0x101fe000..0x10202000 crosses the 2 MiB boundary at 0x10200000
    const vma = makeVma(c, 0x101fe000, 0x10202000, RW_SHARED);
    const pages = [0, 1, 2, 3].map(() => alloc_page(GFP_KERNEL)!);
    expect(run(c, locked(c.mm, vm_insert_pages(vma, 0x101fe000, pages, 4)))).toEqual({
      ret: 0,
      num: 0,
    });
    pages.forEach((p, i) => expect(pte_pfn(pteAt(c.mm, 0x101fe000 + i * 0x1000))).toBe(p));
  });
});

describe('vm_map_pages', () => {
  it('R-INS-4: vm_pgoff >= num or a VMA larger than the rest is -ENXIO; else pages from vm_pgoff', () => {
    const c = boot('6.12');
    const pages = [0, 1, 2].map(() => alloc_page(GFP_KERNEL)!);
    const v1 = makeVma(c, 0x10000000, 0x10001000, RW_SHARED, { pgoff: 3 });
    expect(run(c, locked(c.mm, vm_map_pages(v1, pages, 3)))).toBe(-6);
    const v2 = makeVma(c, 0x20000000, 0x20003000, RW_SHARED, { pgoff: 1 });
    expect(run(c, locked(c.mm, vm_map_pages(v2, pages, 3)))).toBe(-6);
    const v3 = makeVma(c, 0x30000000, 0x30002000, RW_SHARED, { pgoff: 1 });
    expect(run(c, locked(c.mm, vm_map_pages(v3, pages, 3)))).toBe(0);
    expect(pte_pfn(pteAt(c.mm, 0x30000000))).toBe(pages[1]);
    expect(pte_pfn(pteAt(c.mm, 0x30001000))).toBe(pages[2]);
  });
});

/* ------------------------------------------------------------------------------------ */

/** Runs follow_pfnmap_start under mmap_lock (read), snapshots args and the held locks, ends. */
function* lookup(mm: mm_struct, args: follow_pfnmap_args, th: SchedThread, hold = true) {
  if (hold) yield* mmap_read_lock(mm);
  const ret = yield* follow_pfnmap_start(args);
  const held = th.held.map((h) => h.name);
  const out = { ret, ...args, held };
  if (ret === 0) yield* follow_pfnmap_end(args);
  const after = th.held.map((h) => h.name);
  if (hold) yield* mmap_read_unlock(mm);
  return { ...out, after };
}

describe('follow_pfnmap_start', () => {
  it('R-FPM-1: addr_mask does not exist in v6.12 and is set from v6.15 (62fb8adc43af)', () => {
    for (const [v, mask] of [
      ['6.12', undefined],
      ['6.15', -4096],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
      run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
      const r = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10000000), c.th));
      expect(r.ret).toBe(0);
      expect(r.addr_mask).toBe(mask);
    }
  });

  it('R-FPM-2.1: without mmap_lock (or i_mmap_rwsem for a file VMA) lockdep WARNs; the lookup still runs', () => {
    const c = boot('6.12');
    const f = chrdev(function* () {
      return 0;
    });
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS, { file: f });
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    const r = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10000000), c.th, false));
    expect(r.ret).toBe(0);
    expect(warnings()).toBe(1);
    // i_mmap_rwsem is enough for a file VMA
    const r2 = run(
      c,
      (function* () {
        yield* down_read(f.f_mapping.i_mmap_rwsem);
        const x = yield* lookup(c.mm, follow_pfnmap_args_init(vma, 0x10000000), c.th, false);
        yield* up_read(f.f_mapping.i_mmap_rwsem);
        return x;
      })(),
    );
    expect(r2.ret).toBe(0);
    expect(warnings()).toBe(1);
  });

  it('R-FPM-2.2/2.3: outside the VMA, or neither VM_IO nor VM_PFNMAP, is -EINVAL; VM_IO alone passes', () => {
    const c = boot('6.12');
    const pfnmap = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
    const io = makeVma(c, 0x30000000, 0x30001000, RW_SHARED | VM_IO);
    for (const a of [0x10000000, 0x20000000, 0x30000000])
      run(c, installPte(c.mm, a, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    expect(run(c, lookup(c.mm, follow_pfnmap_args_init(pfnmap, 0x10001000), c.th)).ret).toBe(-22);
    expect(run(c, lookup(c.mm, follow_pfnmap_args_init(mixed, 0x20000000), c.th)).ret).toBe(-22);
    expect(run(c, lookup(c.mm, follow_pfnmap_args_init(io, 0x30000000), c.th)).ret).toBe(0);
  });

  it('R-FPM-2.4/2.7: no tables, or an empty PTE, is -EINVAL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | PFNMAP_FLAGS);
    expect(run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10000000), c.th)).ret).toBe(-22);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    const r = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10001000), c.th));
    expect(r.ret).toBe(-22);
    expect(r.held).toHaveLength(1); // only mmap_lock: the PTE lock was dropped
  });

  it('R-FPM-2.7: a PTE: pfn, pgprot, writable, special, with the PTE lock held until follow_pfnmap_end (R-FPM-3)', () => {
    const c = boot('6.15');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | PFNMAP_FLAGS);
    const e = __pte(BAR_PFN + 1, PAGE_READONLY | _PAGE_PCD | _PAGE_SPECIAL);
    run(c, installPte(c.mm, 0x10001000, e));
    const r = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10001234), c.th));
    expect(r.ret).toBe(0);
    expect(r.pfn).toBe(BAR_PFN + 1);
    expect(r.pgprot).toBe(pte_flags(e));
    expect(r.writable).toBe(false);
    expect(r.special).toBe(true);
    expect(r.addr_mask).toBe(-4096);
    expect(r.ptep).not.toBeNull();
    expect(r.held).toHaveLength(2); // mmap_lock and the PTE table lock
    expect(r.held[1]).toBe(r.lock!.name);
    expect(r.after).toHaveLength(1); // follow_pfnmap_end released it
  });

  it('R-FPM-2: a COWed anon page in a COW PFNMAP is returned with special = false', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE | PFNMAP_FLAGS, { pgoff: BAR_PFN });
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    run(c, installPte(c.mm, 0x10000000, pte_mkwrite(pfn_pte(p, PAGE_SHARED))));
    const r = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x10000000), c.th));
    expect(r.ret).toBe(0);
    expect(r.pfn).toBe(p);
    expect(r.special).toBe(false);
    expect(r.writable).toBe(true);
  });

  it('R-FPM-2.5/2.6: PMD and PUD leaves: pfn of the page within the leaf, mask PMD_MASK/PUD_MASK, no ptep, the leaf lock held', () => {
    const c = boot('6.15');
    // PUD leaf 0x40000000..0x80000000 -> pfn 0x4000000; PMD leaf 0x80200000 -> pfn 0x200200
    const vma = makeVma(c, 0x40000000, 0x80400000, RW_SHARED | PFNMAP_FLAGS);
    run(
      c,
      (function* () {
        const pudp = (yield* pud_alloc(c.mm, pgd_offset(c.mm, 0x40000000), 0x40000000))!;
        yield* set_pud_at(
          c.mm,
          0x40000000,
          { t: pudp.t, i: 1 },
          __pte(0x4000000, PAGE_SHARED | _PAGE_PSE | _PAGE_SPECIAL),
        );
        const pud2 = { t: pudp.t, i: 2 };
        const pmdp = (yield* pmd_alloc(c.mm, pud2, 0x80200000))!;
        yield* set_pmd_at(
          c.mm,
          0x80200000,
          { t: pmdp.t, i: 1 },
          __pte(0x200200, PAGE_SHARED | _PAGE_PSE | _PAGE_SPECIAL),
        );
      })(),
    );
    const pud = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x40000000 + 0x12345678), c.th));
    expect(pud.ret).toBe(0);
    expect(pud.pfn).toBe(0x4000000 + 0x12345);
    expect(pud.addr_mask).toBe(-(2 ** 30));
    expect(pud.ptep).toBeNull();
    expect(pud.held[1]).toBe(c.mm.page_table_lock.name);
    expect(pud.special && pud.writable).toBe(true);
    const pmd = run(c, lookup(c.mm, follow_pfnmap_args_init(vma, 0x80200000 + 0x1f000), c.th));
    expect(pmd.ret).toBe(0);
    expect(pmd.pfn).toBe(0x200200 + 0x1f);
    expect(pmd.addr_mask).toBe(-(2 ** 21));
    expect(pmd.ptep).toBeNull();
    expect(pmd.after).toHaveLength(1);
  });

  it('R-FPM-2: does not exist before 6da8e9634bb7 (v6.12)', () => {
    const c = boot('6.10');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    expect(() => run(c, follow_pfnmap_start(follow_pfnmap_args_init(vma, 0x10000000)))).toThrow(
      'follow_pfnmap_start() does not exist in 6.10 (added by 6da8e9634bb7, v6.12)',
    );
  });
});

/* ------------------------------------------------------------------------------------ */

describe('follow_pte', () => {
  it('R-LEG-1: v6.12 has no follow_pte (b0a1c0d0edcd)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    expect(() => run(c, follow_pte(vma, 0x10000000))).toThrow(
      'follow_pte() does not exist in 6.12 (removed by b0a1c0d0edcd)',
    );
  });

  it('R-LEG-1: v6.10 takes the VMA: outside it or no VM_IO|VM_PFNMAP is -EINVAL; success returns the PTE locked', () => {
    const c = boot('6.10');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    run(c, installPte(c.mm, 0x20000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    const res = run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const out = (yield* follow_pte(vma, 0x10001000)).ret;
        const mix = (yield* follow_pte(mixed, 0x20000000)).ret;
        const ok = yield* follow_pte(vma, 0x10000000);
        const held = c.th.held.length;
        const pfn = pte_pfn(ptep_get(ok.ptep!));
        yield* pte_unmap_unlock(ok.ptep!, ok.ptl!);
        yield* mmap_read_unlock(c.mm);
        return { out, mix, ret: ok.ret, held, pfn };
      })(),
    );
    expect(res).toEqual({ out: -22, mix: -22, ret: 0, held: 2, pfn: BAR_PFN });
    expect(() => run(c, follow_pte(c.mm, 0x10000000))).toThrow('takes (vma, address) from 6.10');
  });

  it('R-LEG-1: v5.12 takes the mm: no VMA checks; no PTE is -EINVAL; a huge PMD is a VM_BUG_ON', () => {
    const c = boot('5.12');
    makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    const r = run(
      c,
      (function* () {
        const ok = yield* follow_pte(c.mm, 0x10000000);
        yield* pte_unmap_unlock(ok.ptep!, ok.ptl!);
        return [
          ok.ret,
          (yield* follow_pte(c.mm, 0x10001000)).ret,
          (yield* follow_pte(c.mm, 0x50000000)).ret,
        ];
      })(),
    );
    expect(r).toEqual([0, -22, -22]);
    run(
      c,
      (function* () {
        const pudp = (yield* pud_alloc(c.mm, pgd_offset(c.mm, 0x80000000), 0x80000000))!;
        const pmdp = (yield* pmd_alloc(c.mm, { t: pudp.t, i: 2 }, 0x80000000))!;
        yield* set_pmd_at(c.mm, 0x80000000, pmdp, __pte(0x200000, PAGE_SHARED | _PAGE_PSE));
      })(),
    );
    expect(() => run(c, follow_pte(c.mm, 0x80000000))).toThrow(KernelBug);
  });
});

describe('follow_pfn', () => {
  it('R-LEG-2: no VM_IO|VM_PFNMAP is -EINVAL; else the pfn, with the PTE lock dropped and no write check', () => {
    const c = boot('5.15');
    const vma = makeVma(c, 0x10000000, 0x10001000, RO_SHARED | PFNMAP_FLAGS);
    const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN + 3, PAGE_READONLY | _PAGE_SPECIAL)));
    const r = run(
      c,
      locked(
        c.mm,
        (function* () {
          const a = yield* follow_pfn(vma, 0x10000000);
          const held = c.th.held.length;
          const b = yield* follow_pfn(mixed, 0x20000000);
          return { a, held, b };
        })(),
        false,
      ),
    );
    expect(r).toEqual({ a: { ret: 0, pfn: BAR_PFN + 3 }, held: 1, b: { ret: -22, pfn: 0 } });
  });

  it('R-LEG-2: removed in v6.10 (cb10c28ac82c)', () => {
    const c = boot('6.10');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    expect(() => run(c, follow_pfn(vma, 0x10000000))).toThrow('removed by cb10c28ac82c');
  });
});

describe('unsafe_follow_pfn', () => {
  it('R-LEG-3: CONFIG_STRICT_FOLLOW_PFN=y refuses with a pr_info and -EINVAL', () => {
    const c = boot('5.13', { CONFIG_STRICT_FOLLOW_PFN: true });
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    expect(run(c, locked(c.mm, unsafe_follow_pfn(vma, 0x10000000), false))).toEqual({
      ret: -22,
      pfn: 0,
    });
    expect(dmesg()).toContain('unsafe follow_pfn usage rejected, see CONFIG_STRICT_FOLLOW_PFN');
    expect(warnings()).toBe(0);
    expect(test_taint(TAINT_USER)).toBe(false);
  });

  it('R-LEG-3: =n warns once ("unsafe follow_pfn usage"), taints TAINT_USER and follows the pfn', () => {
    const c = boot('5.13');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    expect(run(c, locked(c.mm, unsafe_follow_pfn(vma, 0x10000000), false))).toEqual({
      ret: 0,
      pfn: BAR_PFN,
    });
    expect(run(c, locked(c.mm, unsafe_follow_pfn(vma, 0x10000000), false))).toEqual({
      ret: 0,
      pfn: BAR_PFN,
    });
    expect(dmesg().match(/unsafe follow_pfn usage\n/g)).toHaveLength(1);
    expect(test_taint(TAINT_USER)).toBe(true);
  });

  it('R-LEG-3: only v5.13 of the supported versions has it', () => {
    for (const v of ['5.12', '5.15']) {
      const c = boot(v);
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
      expect(() => run(c, unsafe_follow_pfn(vma, 0x10000000))).toThrow(
        `unsafe_follow_pfn() does not exist in ${v}`,
      );
    }
  });
});

describe('generic_access_phys', () => {
  /** A PFNMAP VMA at 0x10000000 remapped to BAR pfns 0xfe000.. (whole VMA, PAT-tracked). */
  function barVma(c: Ctx, prot = PAGE_SHARED, pages = 2): vm_area_struct {
    const vma = makeVma(c, 0x10000000, 0x10000000 + pages * 0x1000, RW_SHARED);
    expect(
      run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, BAR_PFN, pages * 0x1000, prot))),
    ).toBe(0);
    return vma;
  }

  for (const v of ['5.10', '5.15', '6.12', '6.18']) {
    it(`R-CALL-1 (v${v}): reads and writes len bytes through a temporary ioremap of the mapped pfn`, () => {
      const c = boot(v);
      const vma = barVma(c);
      phys_write(BAR + 0x1010, new Uint8Array([1, 2, 3, 4]));
      const buf = new Uint8Array(4);
      expect(run(c, locked(c.mm, generic_access_phys(vma, 0x10001010, buf, 4, 0), false))).toBe(4);
      expect([...buf]).toEqual([1, 2, 3, 4]);
      const w = new Uint8Array([9, 8]);
      expect(
        run(c, locked(c.mm, generic_access_phys(vma, 0x10000ffe, w, 2, FOLL_WRITE), false)),
      ).toBe(2);
      expect([...phys_read(BAR + 0xffe, 2)]).toEqual([9, 8]);
      expect(ioremap_areas()).toEqual([]);
      // only the VMA's own reservation is left
      expect(pat_memtype_list()).toEqual([
        { start: BAR, end: BAR + 0x2000, type: _PAGE_CACHE_MODE_UC_MINUS },
      ]);
    });
  }

  it('R-CALL-1: no entry is -EINVAL; a write to a read-only entry is -EINVAL', () => {
    const c = boot('6.12');
    const vma = barVma(c, PAGE_READONLY);
    const empty = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | PFNMAP_FLAGS);
    const buf = new Uint8Array([7]);
    expect(run(c, locked(c.mm, generic_access_phys(empty, 0x20000000, buf, 1, 0), false))).toBe(
      -22,
    );
    expect(
      run(c, locked(c.mm, generic_access_phys(vma, 0x10000000, buf, 1, FOLL_WRITE), false)),
    ).toBe(-22);
    expect(phys_read(BAR, 1)[0]).toBe(0);
    expect(run(c, locked(c.mm, generic_access_phys(vma, 0x10000000, buf, 1, 0), false))).toBe(1);
    expect(buf[0]).toBe(0);
  });

  it('R-CALL-1: ioremap failure (RAM remapped by the driver) is -ENOMEM after the "ioremap on RAM" warning', () => {
    const c = boot('6.12');
    const p = alloc_page(GFP_KERNEL)!;
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED);
    expect(run(c, locked(c.mm, remap_pfn_range(vma, 0x10000000, p, 0x1000, PAGE_SHARED)))).toBe(0);
    const buf = new Uint8Array(8);
    expect(run(c, locked(c.mm, generic_access_phys(vma, 0x10000000, buf, 8, 0), false))).toBe(-12);
    const pa = (p * 4096).toString(16).padStart(16, '0');
    const last = (p * 4096 + 4095).toString(16).padStart(16, '0');
    expect(dmesg()).toContain(`ioremap on RAM at 0x${pa} - 0x${last}`);
  });

  it('R-CALL-1 (v5.12-v6.11): a VMA without VM_IO|VM_PFNMAP is -EINVAL before any lookup', () => {
    const c = boot('5.15');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | VM_MIXEDMAP);
    run(c, installPte(c.mm, 0x10000000, __pte(BAR_PFN, PAGE_SHARED | _PAGE_SPECIAL)));
    expect(
      run(c, locked(c.mm, generic_access_phys(vma, 0x10000000, new Uint8Array(1), 1, 0), false)),
    ).toBe(-22);
  });
});

/* A read-only fd: MAP_SHARED without PROT_WRITE maps it MAYSHARE only (not COW). */
describe('remap_pfn_range through mmap(2)', () => {
  it('R-RPR-1.2: a read-only shared mapping is not COW: a partial remap is allowed', () => {
    const c = boot('6.12');
    const f = chrdev(function* (_f, vma) {
      return yield* remap_pfn_range(vma, vma.vm_start, BAR_PFN, 0x1000, vma.vm_page_prot);
    }, O_RDONLY);
    const addr = run(c, vm_mmap_pgoff(c.mm, f, 0, 0x2000, PROT_READ, MAP_SHARED, 0));
    expect(addr).toBeGreaterThan(0);
    const vma = vma_lookup(c.mm, addr)!;
    expect(vma.vm_flags & (VM_SHARED | VM_MAYWRITE)).toBe(0n);
    expect(pte_pfn(pteAt(c.mm, addr))).toBe(BAR_PFN);
    // MAP_PRIVATE of an O_RDWR fd with PROT_WRITE: COW, so a partial remap fails the mmap
    const g = chrdev(function* (_f, vma2) {
      return yield* remap_pfn_range(vma2, vma2.vm_start, BAR_PFN, 0x1000, vma2.vm_page_prot);
    });
    expect(run(c, vm_mmap_pgoff(c.mm, g, 0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0))).toBe(
      -22,
    );
  });
});
