/**
 * Page tables: table pages (struct ptdesc) with their split locks, the walkers
 * (pgd_offset .. pte_offset_map_lock), table allocation, and entry reads and writes.
 *
 * Every table is a page allocated from the page allocator (PG_table), so page-table
 * memory is accounted and its frames are reused like any other. Entry writes are
 * scheduling points (other threads read entries locklessly: GUP-fast, the first read in
 * follow_pfnmap_start); reads made under the entry's lock are plain.
 *
 * Locks: PTE tables and PMD tables have their own split lock (ptlock, x86-64
 * USE_SPLIT_PTE_PTLOCKS and USE_SPLIT_PMD_PTLOCKS); PUD leaves and table population use
 * mm->page_table_lock.
 *
 * @kernel include/linux/pgtable.h, include/linux/mm.h:pte_offset_map_lock, pmd_lock,
 *   pud_lock, mm/memory.c:__pte_alloc, __pmd_alloc, __pud_alloc (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import {
  _PAGE_TABLE,
  __pte,
  PAGE_SIZE,
  pte_pfn,
  type pteval_t,
} from '../../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_leaf,
  pmd_none,
  pud_none,
  pud_leaf,
  pmd_present,
} from '../../arch/x86/include/asm/pgtable.js';
import { alloc_page, __free_pages, GFP_PGTABLE_USER } from '../../mm/page_alloc.js';
import { set_page_flag, clear_page_flag } from './page-flags.js';
import { PG_table } from '../../mm/sparse.js';
import { spinlock_t, spin_lock, spin_unlock } from './spinlock.js';
import type { entry_ptr, mm_struct, pmd_t_ptr, pte_t_ptr, pud_t_ptr } from './mm_types.js';
import { ENOMEM } from './errno.js';
import { pfnsan_lock_released, pfnsan_owner_pagetable } from '../../mm/pfnsan/pfnsan.js';

export type PtLevel = 'pte' | 'pmd' | 'pud' | 'pgd';

/** struct ptdesc: one page-table page. */
export class ptdesc {
  readonly entries = new Float64Array(512);
  /** Lower-level tables of non-leaf entries (null for PTE tables). */
  readonly children: (ptdesc | undefined)[] | null;
  /** The split lock of PTE and PMD tables (ptlock); null for PUD and PGD tables. */
  readonly ptl: spinlock_t | null;
  readonly name: string;
  /** Non-none entries, to free empty tables at teardown. */
  used = 0;

  constructor(
    readonly id: number,
    readonly pfn: number,
    readonly level: PtLevel,
    mmId: number,
  ) {
    this.name = `mm${mmId}.${level}${id}`;
    this.children = level === 'pte' ? null : [];
    this.ptl = level === 'pte' || level === 'pmd' ? new spinlock_t(`${this.name}.ptl`) : null;
  }
}

export const pgd_index = (a: number): number => Math.floor(a / 2 ** 39) % 512;
export const pud_index = (a: number): number => Math.floor(a / 2 ** 30) % 512;
export const pmd_index = (a: number): number => Math.floor(a / 2 ** 21) % 512;
export const pte_index = (a: number): number => Math.floor(a / 4096) % 512;

/** Allocates a zeroed page-table page (pagetable_alloc + ptlock_init). */
export function pagetable_alloc(mm: mm_struct, level: PtLevel): ptdesc | null {
  const p = alloc_page(GFP_PGTABLE_USER);
  if (p === null) return null;
  set_page_flag(p, PG_table);
  pfnsan_owner_pagetable(p, mm.id);
  mm.pgtables_bytes += PAGE_SIZE;
  return new ptdesc(currentKernel().nextId('pt'), p, level, mm.id);
}

/** pagetable_free: the table's page goes back to the allocator. */
export function pagetable_free(mm: mm_struct, t: ptdesc): void {
  clear_page_flag(t.pfn, PG_table);
  mm.pgtables_bytes -= PAGE_SIZE;
  __free_pages(t.pfn as never, 0);
}

/** Step object name of an entry slot. */
export function slotName(p: entry_ptr): string {
  return `${p.t.name}[${p.i}]`;
}

/** pgd_offset(mm, addr); p4d_offset is folded into it (4-level paging). */
export function pgd_offset(mm: mm_struct, addr: number): entry_ptr {
  return { t: mm.pgd, i: pgd_index(addr) };
}
export function p4d_offset(pgdp: entry_ptr, _addr: number): entry_ptr {
  return pgdp;
}

function childOf(p: entry_ptr): ptdesc {
  const c = p.t.children?.[p.i];
  if (!c) throw new Error(`${slotName(p)} has no lower-level table`);
  return c;
}

/** The lower table of a present non-leaf entry, or undefined. */
export function entry_table(p: entry_ptr): ptdesc | undefined {
  return p.t.children?.[p.i];
}

/** pud_offset(p4d, addr): requires a present p4d entry. */
export function pud_offset(p4dp: entry_ptr, addr: number): pud_t_ptr {
  return { t: childOf(p4dp), i: pud_index(addr) };
}
/** pmd_offset(pud, addr): requires a present non-leaf pud entry. */
export function pmd_offset(pudp: pud_t_ptr, addr: number): pmd_t_ptr {
  return { t: childOf(pudp), i: pmd_index(addr) };
}

/** The PTE table a pmd entry points to, or null when none or a leaf (pte_offset_map). */
export function pte_offset_map(pmdp: pmd_t_ptr, addr: number): pte_t_ptr | null {
  const v = pmdp.t.entries[pmdp.i]!;
  if (pmd_none(v) || pmd_leaf(v) || !pmd_present(v)) return null;
  const t = pmdp.t.children?.[pmdp.i];
  if (!t) return null;
  return { t, i: pte_index(addr) };
}

/** pte_lockptr(mm, pmd): the split lock of the PTE table the pmd points to. */
export function pte_lockptr(_mm: mm_struct, pmdp: pmd_t_ptr): spinlock_t {
  const t = childOf(pmdp);
  return t.ptl!;
}

/**
 * pte_offset_map_lock(mm, pmd, addr, &ptl): maps the PTE table and takes its lock, then
 * rechecks that the pmd still points to that table (v6.5+ __pte_offset_map_lock).
 * Return: [ptep, ptl] with ptl held, or null (no table, a leaf, or the table changed).
 */
export function* pte_offset_map_lock(
  mm: mm_struct,
  pmdp: pmd_t_ptr,
  addr: number,
): Op<[pte_t_ptr, spinlock_t] | null> {
  for (;;) {
    const ptep = pte_offset_map(pmdp, addr);
    if (!ptep) return null;
    const ptl = ptep.t.ptl!;
    yield* spin_lock(ptl);
    if (pmdp.t.children?.[pmdp.i] === ptep.t && !pmd_leaf(pmdp.t.entries[pmdp.i]!))
      return [ptep, ptl];
    yield* spin_unlock(ptl);
    void mm;
  }
}

/** pte_unmap_unlock(pte, ptl) */
export function* pte_unmap_unlock(_ptep: pte_t_ptr, ptl: spinlock_t): Op<void> {
  yield* spin_unlock(ptl);
  pfnsan_lock_released(ptl, 'pte_unmap_unlock');
}

/** pmd_lockptr(mm, pmd): the split lock of the PMD table. */
export function pmd_lockptr(_mm: mm_struct, pmdp: pmd_t_ptr): spinlock_t {
  return pmdp.t.ptl!;
}

/** pmd_lock(mm, pmd): takes and returns the PMD table's lock. */
export function* pmd_lock(mm: mm_struct, pmdp: pmd_t_ptr): Op<spinlock_t> {
  const l = pmd_lockptr(mm, pmdp);
  yield* spin_lock(l);
  return l;
}

/** pud_lockptr(mm, pud) = &mm->page_table_lock. */
export function pud_lockptr(mm: mm_struct, _pudp: pud_t_ptr): spinlock_t {
  return mm.page_table_lock;
}

/** pud_lock(mm, pud) */
export function* pud_lock(mm: mm_struct, pudp: pud_t_ptr): Op<spinlock_t> {
  const l = pud_lockptr(mm, pudp);
  yield* spin_lock(l);
  return l;
}

/** ptep_get(ptep): a read under the lock (no step). */
export function ptep_get(p: entry_ptr): pteval_t {
  return p.t.entries[p.i]!;
}
export const pmdp_get = ptep_get;
export const pudp_get = ptep_get;

/** ptep_get_lockless(ptep): READ_ONCE of an entry without its lock (a step). */
export function* ptep_get_lockless(p: entry_ptr, what = 'ptep_get_lockless'): Op<pteval_t> {
  yield { obj: slotName(p), kind: 'read', what };
  return p.t.entries[p.i]!;
}
/** pmdp_get_lockless(pmdp) */
export function pmdp_get_lockless(p: pmd_t_ptr): Op<pteval_t> {
  return ptep_get_lockless(p, 'pmdp_get_lockless');
}
/** READ_ONCE(*pudp) / pudp_get without the lock. */
export function pudp_get_lockless(p: pud_t_ptr): Op<pteval_t> {
  return ptep_get_lockless(p, 'pudp_get');
}

function write(p: entry_ptr, v: pteval_t): void {
  const old = p.t.entries[p.i]!;
  if (old === 0 && v !== 0) p.t.used++;
  else if (old !== 0 && v === 0) p.t.used--;
  p.t.entries[p.i] = v;
}

/** set_pte_at(mm, addr, ptep, pte) (set_ptes with nr = 1). */
export function* set_pte_at(
  _mm: mm_struct,
  _addr: number,
  p: pte_t_ptr,
  v: pteval_t,
  what = 'set_pte_at',
): Op<void> {
  yield { obj: slotName(p), kind: 'write', what };
  write(p, v);
}

/** set_ptes(mm, addr, ptep, pte, nr): nr consecutive entries, pfn advancing by one. */
export function* set_ptes(
  mm: mm_struct,
  addr: number,
  p: pte_t_ptr,
  v: pteval_t,
  nr: number,
): Op<void> {
  for (let k = 0; k < nr; k++) {
    yield* set_pte_at(mm, addr + k * PAGE_SIZE, { t: p.t, i: p.i + k }, v + k * 65536, 'set_ptes');
  }
}

/** pte_clear(mm, addr, ptep) */
export function* pte_clear(_mm: mm_struct, _addr: number, p: pte_t_ptr): Op<void> {
  yield { obj: slotName(p), kind: 'write', what: 'pte_clear' };
  write(p, 0);
}

/** ptep_get_and_clear(mm, addr, ptep): returns the old entry. */
export function* ptep_get_and_clear(
  _mm: mm_struct,
  _addr: number,
  p: pte_t_ptr,
  what = 'ptep_get_and_clear',
): Op<pteval_t> {
  yield { obj: slotName(p), kind: 'write', what };
  const old = p.t.entries[p.i]!;
  write(p, 0);
  return old;
}

/** ptep_set_wrprotect(mm, addr, ptep) */
export function* ptep_set_wrprotect(_mm: mm_struct, _addr: number, p: pte_t_ptr): Op<void> {
  yield { obj: slotName(p), kind: 'write', what: 'ptep_set_wrprotect' };
  const v = p.t.entries[p.i]!;
  write(p, __pte(pte_pfn(v), (v % 65536) & ~2));
}

/** set_pmd_at(mm, addr, pmdp, pmd) */
export function* set_pmd_at(_mm: mm_struct, _addr: number, p: pmd_t_ptr, v: pteval_t): Op<void> {
  yield { obj: slotName(p), kind: 'write', what: 'set_pmd_at' };
  write(p, v);
}

/** set_pud_at(mm, addr, pudp, pud) */
export function* set_pud_at(_mm: mm_struct, _addr: number, p: pud_t_ptr, v: pteval_t): Op<void> {
  yield { obj: slotName(p), kind: 'write', what: 'set_pud_at' };
  write(p, v);
}

/** pmdp_huge_get_and_clear / pudp_huge_get_and_clear */
export function* pmdp_huge_get_and_clear(
  _mm: mm_struct,
  _addr: number,
  p: entry_ptr,
): Op<pteval_t> {
  yield { obj: slotName(p), kind: 'write', what: 'pmdp_huge_get_and_clear' };
  const old = p.t.entries[p.i]!;
  write(p, 0);
  return old;
}

/** Links a lower table into a non-leaf entry (pgd/p4d/pud/pmd_populate). */
export function* populate(p: entry_ptr, child: ptdesc, what: string): Op<void> {
  yield { obj: slotName(p), kind: 'write', what };
  p.t.children![p.i] = child;
  write(p, __pte(child.pfn, _PAGE_TABLE));
}

/** Unlinks a lower table from its entry (pmd_clear etc. in free_pgtables); returns it. */
export function* depopulate(p: entry_ptr, what: string): Op<ptdesc | undefined> {
  yield { obj: slotName(p), kind: 'write', what };
  const c = p.t.children![p.i];
  p.t.children![p.i] = undefined;
  write(p, 0);
  return c;
}

/**
 * __pud_alloc / __pmd_alloc: allocates the lower table, then installs it under
 * mm->page_table_lock unless another thread did first (then the new table is freed).
 * Return: 0 or -ENOMEM.
 */
function* __table_alloc(mm: mm_struct, p: entry_ptr, level: PtLevel, lock: spinlock_t): Op<number> {
  const t = pagetable_alloc(mm, level);
  if (!t) return -ENOMEM;
  yield* spin_lock(lock);
  if (p.t.entries[p.i] === 0) {
    yield* populate(p, t, `${level === 'pte' ? 'pmd' : level === 'pmd' ? 'pud' : 'p4d'}_populate`);
  } else {
    pagetable_free(mm, t);
  }
  yield* spin_unlock(lock);
  return 0;
}

/** __pud_alloc(mm, p4d, address) */
export function __pud_alloc(mm: mm_struct, p4dp: entry_ptr, _addr: number): Op<number> {
  return __table_alloc(mm, p4dp, 'pud', mm.page_table_lock);
}

/** __pmd_alloc(mm, pud, address) */
export function __pmd_alloc(mm: mm_struct, pudp: pud_t_ptr, _addr: number): Op<number> {
  return __table_alloc(mm, pudp, 'pmd', mm.page_table_lock);
}

/** __pte_alloc(mm, pmd): installs under pmd_lock (pmd_install). */
export function* __pte_alloc(mm: mm_struct, pmdp: pmd_t_ptr): Op<number> {
  return yield* __table_alloc(mm, pmdp, 'pte', pmd_lockptr(mm, pmdp));
}

/** pud_alloc(mm, p4d, addr): the pud slot, allocating the table; null on -ENOMEM. */
export function* pud_alloc(mm: mm_struct, p4dp: entry_ptr, addr: number): Op<pud_t_ptr | null> {
  if (p4dp.t.entries[p4dp.i] === 0 && (yield* __pud_alloc(mm, p4dp, addr)) !== 0) return null;
  return pud_offset(p4dp, addr);
}

/** pmd_alloc(mm, pud, addr): null on -ENOMEM or when the pud is a leaf. */
export function* pmd_alloc(mm: mm_struct, pudp: pud_t_ptr, addr: number): Op<pmd_t_ptr | null> {
  const v = pudp.t.entries[pudp.i]!;
  if (pud_none(v) && (yield* __pmd_alloc(mm, pudp, addr)) !== 0) return null;
  if (pud_leaf(pudp.t.entries[pudp.i]!)) return null;
  return pmd_offset(pudp, addr);
}

/** pte_alloc(mm, pmd): true on failure (-ENOMEM), as the kernel's macro. */
export function* pte_alloc(mm: mm_struct, pmdp: pmd_t_ptr): Op<boolean> {
  if (pmd_none(pmdp.t.entries[pmdp.i]!)) return (yield* __pte_alloc(mm, pmdp)) !== 0;
  return false;
}

/**
 * Walks to the PTE slot for addr without allocating: null if any level is missing or a
 * leaf sits above the PTE level. For model code that inspects tables (not a kernel API).
 */
export function walkToPte(mm: mm_struct, addr: number): pte_t_ptr | null {
  const pgdp = pgd_offset(mm, addr);
  const pudT = pgdp.t.children?.[pgdp.i];
  if (!pudT) return null;
  const pudp = { t: pudT, i: pud_index(addr) };
  if (pud_leaf(pudT.entries[pudp.i]!)) return null;
  const pmdT = pudT.children?.[pudp.i];
  if (!pmdT) return null;
  const pmdp = { t: pmdT, i: pmd_index(addr) };
  return pte_offset_map(pmdp, addr);
}

/** The lowest-level entry slot mapping addr (PTE, PMD or PUD leaf), or null. */
export function walkToLeaf(mm: mm_struct, addr: number): { ptr: entry_ptr; level: PtLevel } | null {
  const pgdp = pgd_offset(mm, addr);
  const pudT = pgdp.t.children?.[pgdp.i];
  if (!pudT) return null;
  const pudp = { t: pudT, i: pud_index(addr) };
  const pudv = pudT.entries[pudp.i]!;
  if (pud_leaf(pudv)) return { ptr: pudp, level: 'pud' };
  const pmdT = pudT.children?.[pudp.i];
  if (!pmdT) return null;
  const pmdp = { t: pmdT, i: pmd_index(addr) };
  const pmdv = pmdT.entries[pmdp.i]!;
  if (pmd_leaf(pmdv)) return { ptr: pmdp, level: 'pmd' };
  const ptep = pte_offset_map(pmdp, addr);
  return ptep ? { ptr: ptep, level: 'pte' } : null;
}

/** zero_pfn and the zero page (mm/memory.c:init_zero_pfn; include/linux/pgtable.h). */
export function zero_pfn(): number {
  return currentKernel().sub.zero_pfn as number;
}

/** is_zero_pfn(pfn) */
export function is_zero_pfn(pfn: number): boolean {
  return pfn === zero_pfn();
}

/** my_zero_pfn(addr): x86 has one zero page. */
export function my_zero_pfn(_addr: number): number {
  return zero_pfn();
}
