/**
 * Tests of folio_walk_start / folio_walk_end (pagewalk.ts). Rule: kernel-spec.md §4
 * R-FW-1 (10d83d7781a8 "mm/pagewalk: check pfnmap for folio_walk_start()", v6.12):
 * special PFN mappings never yield a folio, at any level; the shared zeropages only with
 * FW_ZEROPAGE; migration entries only with FW_MIGRATION.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { dmesg } from '../kernel/printk.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { folio, mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
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
import { prep_compound_page } from '../include/linux/page-flags.js';
import {
  _PAGE_PSE,
  _PAGE_SPECIAL,
  PAGE_READONLY,
  PAGE_SHARED,
  __pte,
  pfn_pte,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  set_pmd_at,
  set_pte_at,
  set_pud_at,
  zero_pfn,
} from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { vm_area_alloc, vma_link } from './vma.js';
import { alloc_page, alloc_pages, GFP_HIGHUSER_MOVABLE } from './page_alloc.js';
import { mm_get_huge_zero_folio } from './huge_memory.js';
import { make_readable_migration_entry } from '../include/linux/swapops.js';
import {
  FW_LEVEL_PMD,
  FW_LEVEL_PTE,
  FW_LEVEL_PUD,
  FW_MIGRATION,
  FW_ZEROPAGE,
  folio_walk_end,
  folio_walk_init,
  folio_walk_start,
  type folio_walk,
} from './pagewalk.js';

const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const PFNMAP = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

interface Ctx {
  k: Kernel;
  mm: mm_struct;
  th: SchedThread;
}

function boot(version: string): Ctx {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('test');
  return { k, mm: task.mm!, th: new SchedThread(0, 'test', undefined as never, task) };
}

function makeVma(c: Ctx, start: number, end: number, flags: bigint): vm_area_struct {
  const vma = vm_area_alloc(c.mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = PAGE_SHARED;
  vma.vm_pgoff = start / 4096;
  vma_link(c.mm, vma);
  return vma;
}

function setPte(c: Ctx, addr: number, v: pteval_t): void {
  c.k.run(
    (function* () {
      const pudp = yield* pud_alloc(c.mm, pgd_offset(c.mm, addr), addr);
      const pmdp = yield* pmd_alloc(c.mm, pudp!, addr);
      yield* pte_alloc(c.mm, pmdp!);
      const [ptep, ptl] = (yield* pte_offset_map_lock(c.mm, pmdp!, addr))!;
      yield* set_pte_at(c.mm, addr, ptep, v);
      yield* pte_unmap_unlock(ptep, ptl);
    })(),
  );
}

function setPmd(c: Ctx, addr: number, v: pteval_t): void {
  c.k.run(
    (function* () {
      const pudp = yield* pud_alloc(c.mm, pgd_offset(c.mm, addr), addr);
      const pmdp = yield* pmd_alloc(c.mm, pudp!, addr);
      yield* set_pmd_at(c.mm, addr, pmdp!, v);
    })(),
  );
}

function setPud(c: Ctx, addr: number, v: pteval_t): void {
  c.k.run(
    (function* () {
      const pudp = yield* pud_alloc(c.mm, pgd_offset(c.mm, addr), addr);
      yield* set_pud_at(c.mm, addr, pudp!, v);
    })(),
  );
}

interface Walk {
  folio: folio | null;
  fw: folio_walk;
  held: string[];
  after: number;
}

/** folio_walk_start under mmap_read_lock; records the locks held on return; ends the walk. */
function walk(c: Ctx, vma: vm_area_struct, addr: number, flags: number, lock = true): Walk {
  return c.k.run(
    (function* (): Op<Walk> {
      if (lock) yield* mmap_read_lock(c.mm);
      const fw = folio_walk_init();
      const f = yield* folio_walk_start(fw, vma, addr, flags);
      const held = c.th.held.map((h) => h.name);
      if (f) yield* folio_walk_end(fw, vma);
      const after = c.th.held.length;
      if (lock) yield* mmap_read_unlock(c.mm);
      return { folio: f, fw, held, after };
    })(),
    c.th,
  );
}

function warnings(): number {
  return (dmesg().match(/WARNING: CPU/g) ?? []).length;
}

describe('folio_walk_start', () => {
  it('R-FW-1: an address outside the VMA WARNs once and is NULL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE);
    expect(walk(c, vma, 0x10001000, 0).folio).toBeNull();
    expect(warnings()).toBe(1);
    expect(dmesg()).toMatch(/WARNING: CPU: 0 PID: \d+ at mm\/pagewalk\.c:folio_walk_start\n/);
  });

  it('R-FW-1: a normal PTE gives its folio and page, with the PTE lock held until folio_walk_end', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    setPte(c, 0x10000000, pfn_pte(p, PAGE_SHARED));
    const w = walk(c, vma, 0x10000abc, 0);
    expect(w.folio).toBe(p);
    expect(w.fw.page).toBe(p);
    expect(w.fw.level).toBe(FW_LEVEL_PTE);
    expect(w.held).toHaveLength(2); // mmap_lock + PTE lock
    expect(w.held[1]).toBe(w.fw.ptl!.name);
    expect(w.after).toBe(1);
  });

  it('R-FW-1: the page of a large folio is the one mapped at addr (offset from the mapped page)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0x40200000, RW_PRIVATE);
    const head = alloc_pages(GFP_HIGHUSER_MOVABLE, 9)!;
    prep_compound_page(head, 9);
    setPmd(c, 0x40000000, __pte(head, PAGE_SHARED | _PAGE_PSE));
    const w = walk(c, vma, 0x40000000 + 0x7000, 0);
    expect(w.folio).toBe(head);
    expect(w.fw.page).toBe(head + 7);
    expect(w.fw.level).toBe(FW_LEVEL_PMD);
  });

  it('R-FW-1: special PTEs (PFNMAP, MIXEDMAP) never yield a folio, even of a RAM pfn, even with FW_ZEROPAGE', () => {
    const c = boot('6.12');
    const pfnmap = makeVma(c, 0x10000000, 0x10001000, RW_SHARED | PFNMAP);
    const mixed = makeVma(c, 0x20000000, 0x20001000, RW_SHARED | VM_MIXEDMAP);
    const ram = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    setPte(c, 0x10000000, __pte(ram, PAGE_SHARED | _PAGE_SPECIAL));
    setPte(c, 0x20000000, __pte(ram, PAGE_SHARED | _PAGE_SPECIAL));
    const w1 = walk(c, pfnmap, 0x10000000, FW_ZEROPAGE);
    const w2 = walk(c, mixed, 0x20000000, FW_ZEROPAGE);
    expect(w1.folio).toBeNull();
    expect(w2.folio).toBeNull();
    expect(w1.held).toHaveLength(1); // the PTE lock was dropped
  });

  it('R-FW-1: special PMD and PUD leaves (huge pfnmaps) are NULL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0xc0000000, RW_SHARED | PFNMAP);
    // a RAM-backed 2 MiB pfnmap leaf at 0x80000000 and a 1 GiB one at 0x40000000
    setPmd(c, 0x80000000, __pte(0x100000, PAGE_SHARED | _PAGE_PSE | _PAGE_SPECIAL));
    setPud(c, 0x40000000, __pte(0x4000000, PAGE_SHARED | _PAGE_PSE | _PAGE_SPECIAL));
    const pmd = walk(c, vma, 0x80000000, FW_ZEROPAGE);
    const pud = walk(c, vma, 0x40000000, FW_ZEROPAGE);
    expect(pmd.folio).toBeNull();
    expect(pmd.fw.level).toBe(FW_LEVEL_PMD);
    expect(pmd.held).toHaveLength(1);
    expect(pud.folio).toBeNull();
    expect(pud.fw.level).toBe(FW_LEVEL_PUD);
    expect(pud.held).toHaveLength(1);
  });

  it('R-FW-1: a non-special PUD leaf gives its folio, with the PUD lock held', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0x80000000, RW_PRIVATE);
    setPud(c, 0x40000000, __pte(0x100000, PAGE_SHARED | _PAGE_PSE));
    const w = walk(c, vma, 0x40000000 + 0x3000, 0);
    expect(w.folio).not.toBeNull();
    expect(w.fw.page).toBe(0x100003);
    expect(w.held[1]).toBe(c.mm.page_table_lock.name);
  });

  it('R-FW-1: the zero page and the huge zero folio only with FW_ZEROPAGE, and never exposed as fw->page', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0x40400000, RW_PRIVATE);
    setPte(c, 0x40000000, __pte(zero_pfn(), PAGE_READONLY | _PAGE_SPECIAL));
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    setPmd(c, 0x40200000, __pte(hz, PAGE_READONLY | _PAGE_PSE));
    expect(walk(c, vma, 0x40000000, 0).folio).toBeNull();
    expect(walk(c, vma, 0x40200000, 0).folio).toBeNull();
    const z = walk(c, vma, 0x40000000, FW_ZEROPAGE);
    expect(z.folio).toBe(zero_pfn());
    expect(z.fw.page).toBeNull();
    const h = walk(c, vma, 0x40201000, FW_ZEROPAGE);
    expect(h.folio).toBe(hz);
    expect(h.fw.page).toBeNull();
    expect(h.fw.level).toBe(FW_LEVEL_PMD);
  });

  it('R-FW-1: a migration entry only with FW_MIGRATION (page not exposed)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    setPte(c, 0x10000000, make_readable_migration_entry(p));
    expect(walk(c, vma, 0x10000000, FW_ZEROPAGE).folio).toBeNull();
    const w = walk(c, vma, 0x10000000, FW_MIGRATION);
    expect(w.folio).toBe(p);
    expect(w.fw.page).toBeNull();
  });

  it('R-FW-1: empty tables are NULL', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10002000, RW_PRIVATE);
    expect(walk(c, vma, 0x10000000, FW_ZEROPAGE | FW_MIGRATION).folio).toBeNull();
    setPte(c, 0x10000000, pfn_pte(alloc_page(GFP_HIGHUSER_MOVABLE)!, PAGE_SHARED));
    expect(walk(c, vma, 0x10001000, FW_ZEROPAGE | FW_MIGRATION).folio).toBeNull();
  });

  it('R-FW-1: mmap_lock must be held (mmap_assert_locked: a lockdep WARN)', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE);
    setPte(c, 0x10000000, pfn_pte(alloc_page(GFP_HIGHUSER_MOVABLE)!, PAGE_SHARED));
    expect(walk(c, vma, 0x10000000, 0, false).folio).not.toBeNull();
    expect(warnings()).toBe(1);
  });

  it('R-FW-1: folio_walk_start does not exist before aa39ca6940f1 (v6.12)', () => {
    const c = boot('6.10');
    const vma = makeVma(c, 0x10000000, 0x10001000, RW_PRIVATE);
    expect(() => walk(c, vma, 0x10000000, 0)).toThrow('folio_walk_start() does not exist in 6.10');
  });
});
