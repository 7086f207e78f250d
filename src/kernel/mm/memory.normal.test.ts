/**
 * Tests of vm_normal_page() and friends and of the bad-page-map report
 * (memory.normal.ts). Rules: kernel-spec.md §2 R-VNP-1..5, in both arch profiles
 * (CONFIG_ARCH_HAS_PTE_SPECIAL=y, the x86 default, and =n) and in the eras v6.10/v6.12
 * (vm_normal_page + vm_normal_page_pmd) and v6.18 (__vm_normal_page for every level).
 *
 * The functions take entry values; the tests build VMAs with vm_area_alloc + vma_link and
 * pass entries made with the pgtable helpers. Physical map: 4 GiB e820 RAM (memmap up to
 * pfn 0x17ffff) plus a BAR at 0xfe000000 (pfns 0xfe000.., no struct page).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { TAINT_BAD_PAGE, test_taint } from '../kernel/panic.js';
import { dmesg } from '../kernel/printk.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../include/linux/mm.js';
import {
  _PAGE_DEVMAP,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  PAGE_SHARED_EXEC,
  __pte,
  pfn_pte,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pgd_offset, pmd_alloc, pte_alloc, pud_alloc, zero_pfn } from '../include/linux/pgtable.js';
import { vm_area_alloc, vma_link } from './vma.js';
import { alloc_page, GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from './page_alloc.js';
import { highest_memmap_pfn } from './sparse.js';
import { mm_get_huge_zero_folio } from './huge_memory.js';
import {
  print_bad_page_map,
  vm_normal_folio,
  vm_normal_page,
  vm_normal_page_pmd,
  vm_normal_page_pud,
  PGTABLE_LEVEL_PMD,
} from './memory.normal.js';

const MiB = 2 ** 20;
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
/** A pfn in "Kernel code" (0x1000000..0x3000000): PageReserved, below highest_memmap_pfn. */
const RESERVED_PFN = 0x1800;
/** Beyond the memmap (highest_memmap_pfn is 0x17ffff with 4 GiB). */
const BEYOND_PFN = 0x200000;

const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const PFNMAP = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

interface Ctx {
  k: Kernel;
  mm: mm_struct;
  th: SchedThread;
}

function boot(version: string, config: Record<string, boolean | number> = {}): Ctx {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('test');
  return { k, mm: task.mm!, th: new SchedThread(0, 'test', undefined as never, task) };
}

/** Runs fn as the test task, so current->comm is "test". */
function as<T>(c: Ctx, fn: () => T): T {
  return c.k.run(
    (function* (): Op<T> {
      return fn();
    })(),
    c.th,
  );
}

function makeVma(
  c: Ctx,
  start: number,
  end: number,
  flags: bigint,
  pgoff = start / 4096,
): vm_area_struct {
  const vma = vm_area_alloc(c.mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = PAGE_SHARED_EXEC;
  vma.vm_pgoff = pgoff;
  vma_link(c.mm, vma);
  return vma;
}

/** Allocates the tables down to the PTE table of addr (for the pmd value in reports). */
function tables(c: Ctx, addr: number): void {
  c.k.run(
    (function* () {
      const pudp = yield* pud_alloc(c.mm, pgd_offset(c.mm, addr), addr);
      const pmdp = yield* pmd_alloc(c.mm, pudp!, addr);
      yield* pte_alloc(c.mm, pmdp!);
    })(),
  );
}

const special = (pfn: number): pteval_t => __pte(pfn, PAGE_SHARED_EXEC | _PAGE_SPECIAL);
const normal = (pfn: number): pteval_t => pfn_pte(pfn, PAGE_SHARED_EXEC);

function reports(): number {
  return (dmesg().match(/BUG: Bad page map in process/g) ?? []).length;
}

describe('vm_normal_page', () => {
  it('R-VNP-1: a special entry: find_special_page answers first', () => {
    for (const v of ['6.12', '6.18']) {
      const c = boot(v);
      const p = alloc_page(GFP_KERNEL)!;
      const vma = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP);
      vma.vm_ops = { name: 'gntdev_vmops', find_special_page: () => p };
      expect(vm_normal_page(vma, 0x10000000, special(BAR_PFN))).toBe(p);
    }
  });

  it('R-VNP-1: a special entry in a PFNMAP or MIXEDMAP VMA, or of the zero pfn, is NULL without a report', () => {
    for (const v of ['6.10', '6.12', '6.18']) {
      const c = boot(v);
      const pfnmap = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP);
      const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
      const plain = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
      const ram = alloc_page(GFP_KERNEL)!;
      expect(vm_normal_page(pfnmap, 0x10000000, special(ram))).toBeNull();
      expect(vm_normal_page(mixed, 0x20000000, special(ram))).toBeNull();
      expect(vm_normal_page(plain, 0x30000000, special(zero_pfn()))).toBeNull();
      expect(reports()).toBe(0);
    }
  });

  it('R-VNP-1: a special entry elsewhere is reported (BUG: Bad page map) and NULL; TAINT_BAD_PAGE', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
    tables(c, 0x30000000);
    const ram = alloc_page(GFP_KERNEL)!;
    expect(as(c, () => vm_normal_page(vma, 0x30000000, special(ram)))).toBeNull();
    expect(reports()).toBe(1);
    const hex = (ram * 4096 + 0x227).toString(16).padStart(8, '0'); // P|RW|U|A (0x27) | SPECIAL (0x200)
    expect(dmesg()).toMatch(
      new RegExp(`BUG: Bad page map in process test  pte:${hex} pmd:[0-9a-f]{5,}067\\n`),
    );
    expect(dmesg()).toContain(
      'addr:0000000030000000 vm_flags:00000033 anon_vma:0000000000000000 mapping:0000000000000000 index:30000',
    );
    expect(dmesg()).toContain('file:(null) fault:0x0 mmap:0x0 read_folio:0x0');
    expect(dmesg()).toContain('Disabling lock debugging due to kernel taint');
    expect(test_taint(TAINT_BAD_PAGE)).toBe(true);
  });

  it('R-VNP-1: v6.12 returns NULL for a devmap entry; v6.18 checks the huge zero pfn instead', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
    expect(
      vm_normal_page(
        vma,
        0x30000000,
        __pte(BAR_PFN, PAGE_SHARED_EXEC | _PAGE_SPECIAL | _PAGE_DEVMAP),
      ),
    ).toBeNull();
    expect(reports()).toBe(0);
    // a special entry of the huge zero folio's first pfn: v6.12 reports it
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    expect(as(c, () => vm_normal_page(vma, 0x30000000, special(hz)))).toBeNull();
    expect(reports()).toBe(1);
    const n = boot('6.18');
    const v2 = makeVma(n, 0x30000000, 0x30001000, RW_PRIVATE);
    const hz2 = n.k.run(mm_get_huge_zero_folio(n.mm))!;
    expect(vm_normal_page(v2, 0x30000000, special(hz2 + 3))).toBeNull();
    expect(reports()).toBe(0);
  });

  it('R-VNP-2: special bit clear: pfn > highest_memmap_pfn is reported and NULL; else the page, PageReserved included, whatever the VMA', () => {
    for (const v of ['6.12', '6.18']) {
      const c = boot(v);
      expect(highest_memmap_pfn()).toBe(0x17ffff);
      const pfnmap = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP);
      const plain = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
      expect(vm_normal_page(plain, 0x30000000, normal(RESERVED_PFN))).toBe(RESERVED_PFN);
      const ram = alloc_page(GFP_KERNEL)!;
      expect(vm_normal_page(pfnmap, 0x10000000, normal(ram))).toBe(ram);
      expect(reports()).toBe(0);
      expect(as(c, () => vm_normal_page(plain, 0x30000000, normal(BEYOND_PFN)))).toBeNull();
      expect(reports()).toBe(1);
    }
  });
});

describe('vm_normal_page without the special bit', () => {
  const cfg = { CONFIG_ARCH_HAS_PTE_SPECIAL: false };

  it('R-VNP-3: MIXEDMAP: no struct page is NULL; a valid pfn is the page', () => {
    for (const v of ['6.10', '6.12', '6.18']) {
      const c = boot(v, cfg);
      const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
      const ram = alloc_page(GFP_KERNEL)!;
      expect(vm_normal_page(mixed, 0x20000000, normal(BAR_PFN))).toBeNull();
      expect(vm_normal_page(mixed, 0x20000000, normal(ram))).toBe(ram);
    }
  });

  it('R-VNP-3: MIXEDMAP and the zero pfn: the page up to v6.10, NULL from v6.11', () => {
    for (const [v, zeroIsPage] of [
      ['6.10', true],
      ['6.12', false],
      ['6.18', false],
    ] as const) {
      const c = boot(v, cfg);
      const mixed = makeVma(c, 0x20000000, 0x20001000, RW_PRIVATE | VM_MIXEDMAP);
      expect(vm_normal_page(mixed, 0x20000000, normal(zero_pfn()))).toBe(
        zeroIsPage ? zero_pfn() : null,
      );
    }
  });

  it('R-VNP-3: PFNMAP: the vm_pgoff-linear pfn and every pfn of a shared VMA are NULL; a COWed page of a COW VMA is normal', () => {
    for (const v of ['6.12', '6.18']) {
      const c = boot(v, cfg);
      // shared PFNMAP 0x10000000.. remapped to 0xfe000..
      const shared = makeVma(c, 0x10000000, 0x10002000, RW_SHARED | PFNMAP, BAR_PFN);
      // COW PFNMAP 0x20000000.. (remap_pfn_range set vm_pgoff = 0xfe000)
      const cow = makeVma(c, 0x20000000, 0x20002000, RW_PRIVATE | PFNMAP, BAR_PFN);
      const anon = alloc_page(GFP_HIGHUSER_MOVABLE)!;
      expect(vm_normal_page(shared, 0x10001000, normal(BAR_PFN + 1))).toBeNull();
      expect(vm_normal_page(shared, 0x10001000, normal(anon))).toBeNull();
      expect(vm_normal_page(cow, 0x20001000, normal(BAR_PFN + 1))).toBeNull();
      expect(vm_normal_page(cow, 0x20001000, normal(anon))).toBe(anon);
      expect(vm_normal_folio(cow, 0x20001000, normal(anon))).toBe(anon);
      expect(reports()).toBe(0);
    }
  });

  it('R-VNP-3: then the zero pfn is NULL and pfn > highest_memmap_pfn is reported', () => {
    const c = boot('6.12', cfg);
    const plain = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
    expect(vm_normal_page(plain, 0x30000000, normal(zero_pfn()))).toBeNull();
    expect(reports()).toBe(0);
    expect(as(c, () => vm_normal_page(plain, 0x30000000, normal(BEYOND_PFN)))).toBeNull();
    expect(reports()).toBe(1);
  });
});

describe('vm_normal_page_pmd', () => {
  const leaf = (pfn: number, extra = 0): pteval_t =>
    __pte(pfn, PAGE_SHARED_EXEC | _PAGE_PSE | extra);

  it('R-VNP-4 (v6.12): pmd_special is NULL first, even in a normal VMA, silently', () => {
    const c = boot('6.12');
    const plain = makeVma(c, 0x40000000, 0x40200000, RW_PRIVATE);
    expect(vm_normal_page_pmd(plain, 0x40000000, leaf(0x200000, _PAGE_SPECIAL))).toBeNull();
    expect(reports()).toBe(0);
  });

  it('R-VNP-4 (v6.12): MIXEDMAP valid is the page at once; devmap, huge zero, beyond the memmap are NULL silently', () => {
    const c = boot('6.12');
    const mixed = makeVma(c, 0x40000000, 0x40200000, RW_SHARED | VM_MIXEDMAP);
    const plain = makeVma(c, 0x80000000, 0x80200000, RW_PRIVATE);
    expect(vm_normal_page_pmd(mixed, 0x40000000, leaf(0x100000))).toBe(0x100000);
    expect(vm_normal_page_pmd(mixed, 0x40000000, leaf(BAR_PFN))).toBeNull();
    expect(vm_normal_page_pmd(plain, 0x80000000, leaf(0x100000, _PAGE_DEVMAP))).toBeNull();
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    expect(vm_normal_page_pmd(plain, 0x80000000, leaf(hz))).toBeNull();
    expect(vm_normal_page_pmd(plain, 0x80000000, leaf(BEYOND_PFN))).toBeNull();
    expect(vm_normal_page_pmd(plain, 0x80000000, leaf(0x100000))).toBe(0x100000);
    expect(reports()).toBe(0);
  });

  it('R-VNP-4 (v6.10): no pmd_special check: a special leaf in a normal VMA is a page', () => {
    const c = boot('6.10');
    const plain = makeVma(c, 0x40000000, 0x40200000, RW_PRIVATE);
    expect(vm_normal_page_pmd(plain, 0x40000000, leaf(0x100000, _PAGE_SPECIAL))).toBe(0x100000);
  });

  it('R-VNP-4 (v6.18): R-VNP-1..3 at PMD level, with reports', () => {
    const c = boot('6.18');
    const pfnmap = makeVma(c, 0x40000000, 0x40200000, RW_SHARED | PFNMAP);
    const plain = makeVma(c, 0x80000000, 0x80200000, RW_PRIVATE);
    tables(c, 0x80000000);
    expect(vm_normal_page_pmd(pfnmap, 0x40000000, leaf(0x200000, _PAGE_SPECIAL))).toBeNull();
    expect(reports()).toBe(0);
    expect(
      as(c, () => vm_normal_page_pmd(plain, 0x80000000, leaf(0x200000, _PAGE_SPECIAL))),
    ).toBeNull();
    expect(reports()).toBe(1);
    expect(dmesg()).toContain('BUG: Bad page map in process test  pmd:2000002a7\n');
    expect(as(c, () => vm_normal_page_pmd(plain, 0x80000000, leaf(BEYOND_PFN)))).toBeNull();
    expect(reports()).toBe(2);
  });
});

describe('vm_normal_page_pud', () => {
  it('R-VNP-4 (v6.18): __vm_normal_page at PUD level; absent before v6.18', () => {
    const c = boot('6.18');
    const pfnmap = makeVma(c, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
    const pud = __pte(0x4000000, PAGE_SHARED_EXEC | _PAGE_PSE | _PAGE_SPECIAL);
    expect(vm_normal_page_pud(pfnmap, 0x40000000, pud)).toBeNull();
    const plain = makeVma(c, 0x80000000, 0xc0000000, RW_PRIVATE);
    expect(as(c, () => vm_normal_page_pud(plain, 0x80000000, pud))).toBeNull();
    expect(dmesg()).toContain('BUG: Bad page map in process test  pud:40000002a7\n');
    const o = boot('6.12');
    const v2 = makeVma(o, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
    expect(() => vm_normal_page_pud(v2, 0x40000000, pud)).toThrow(
      'vm_normal_page_pud() does not exist in 6.12',
    );
  });
});

describe('print_bad_pte', () => {
  it('R-VNP-5: 60 reports, then silence until 60 s after the first; then "N messages suppressed"', () => {
    const c = boot('6.12'); // CONFIG_HZ=250: 60 s = 15000 jiffies
    const vma = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
    const bad = normal(BEYOND_PFN);
    for (let i = 0; i < 60; i++) vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(60);
    vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(60);
    c.k.ktime_ns = 59_996_000_000; // jiffies 14999: still within the minute
    vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(60);
    expect(dmesg()).not.toContain('messages suppressed');
    c.k.ktime_ns = 60_000_000_000; // jiffies 15000 = first + 60 * HZ
    vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(61);
    expect(dmesg()).toContain('BUG: Bad page map: 2 messages suppressed');
    // a new burst of 60 starts with that report
    for (let i = 0; i < 59; i++) vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(120);
    vm_normal_page(vma, 0x30000000, bad);
    expect(reports()).toBe(120);
  });

  it('R-VNP-5: the report lines name the file, ->fault, ->mmap and ->read_folio (readpage before v5.19)', () => {
    for (const [v, rf] of [
      ['5.15', 'readpage'],
      ['6.12', 'read_folio'],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
      vma.vm_ops = {
        name: 'drv_vm_ops',
        fault: function* drv_fault() {
          return 0;
        },
      };
      as(c, () => vm_normal_page(vma, 0x30000000, normal(BEYOND_PFN)));
      expect(dmesg()).toContain(`file:(null) fault:drv_fault mmap:0x0 ${rf}:0x0`);
    }
  });
});

describe('print_bad_page_map', () => {
  it('R-VNP-5 (v6.18): "<level>:<entry>", the page-table line, the hooks line with mmap_prepare', () => {
    const c = boot('6.18');
    const vma = makeVma(c, 0x30000000, 0x30001000, RW_PRIVATE);
    tables(c, 0x30000000);
    as(c, () => print_bad_page_map(vma, 0x30000000, normal(BEYOND_PFN), null, PGTABLE_LEVEL_PMD));
    const log = dmesg();
    expect(log).toContain('BUG: Bad page map in process test  pmd:200000027\n');
    expect(log).toMatch(/pgd:[0-9a-f]+067 p4d:[0-9a-f]+067 pud:[0-9a-f]+067 pmd:[0-9a-f]+067\n/);
    expect(log).toContain('file:(null) fault:0x0 mmap:0x0 mmap_prepare: 0x0 read_folio:0x0');
    expect(test_taint(TAINT_BAD_PAGE)).toBe(true);
    const o = boot('6.12');
    const v2 = makeVma(o, 0x30000000, 0x30001000, RW_PRIVATE);
    expect(() => print_bad_page_map(v2, 0x30000000, 0, null, PGTABLE_LEVEL_PMD)).toThrow(
      'print_bad_page_map() does not exist in 6.12',
    );
  });
});
