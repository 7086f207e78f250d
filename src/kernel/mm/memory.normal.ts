/**
 * "Normal" versus "special" page-table entries: vm_normal_page() and friends decide
 * whether the pfn of a present entry is a refcounted page the core mm may touch, or a
 * raw PFN (a PFN mapping, the zero page) it must leave alone; a bad entry is reported
 * by print_bad_pte() / print_bad_page_map() (R-VNP-1..5).
 *
 * Two arch profiles (CONFIG_ARCH_HAS_PTE_SPECIAL=y, x86; =n, arches without the bit)
 * and three eras:
 * - up to v6.11: vm_normal_page / vm_normal_page_pmd (no pmd_special);
 * - v6.12-v6.17: vm_normal_page_pmd checks pmd_special first (huge pfnmap series);
 * - v6.18: everything goes through __vm_normal_page (David Hildenbrand's "mm:
 *   vm_normal_page*() improvements" series), which adds vm_normal_page_pud and reports
 *   bad entries at every level with print_bad_page_map.
 *
 * Called with the entry's page-table lock held (or on a value read under it): no Steps.
 *
 * @kernel mm/memory.c (v5.7+)
 */
import { currentKernel } from '../kernel/kernel.js';
import {
  add_taint,
  dump_stack,
  LOCKDEP_NOW_UNRELIABLE,
  TAINT_BAD_PAGE,
  VM_WARN_ON_ONCE,
} from '../kernel/panic.js';
import { pr_alert } from '../kernel/printk.js';
import { get_current } from '../include/linux/sched.js';
import type { folio, page, vm_area_struct } from '../include/linux/mm_types.js';
import { VM_MIXEDMAP, VM_PFNMAP, is_cow_mapping, linear_page_index } from '../include/linux/mm.js';
import { page_folio, pfn_to_page } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { page_mapcount } from '../include/linux/page-flags.js';
import {
  native_pte_val,
  pte_devmap,
  pte_pfn,
  PAGE_SHIFT,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_special,
  pud_leaf,
  pud_present,
  pud_special,
  pte_special,
} from '../arch/x86/include/asm/pgtable.js';
import { is_zero_pfn, pgd_index, pmd_index, pud_index } from '../include/linux/pgtable.js';
import { highest_memmap_pfn, pfn_valid } from './sparse.js';
import { is_huge_zero_pfn, is_huge_zero_pmd } from './huge_memory.js';
import { since } from '../version.js';

/** enum pgtable_level (v6.18). */
export const PGTABLE_LEVEL_PTE = 0;
export const PGTABLE_LEVEL_PMD = 1;
export const PGTABLE_LEVEL_PUD = 2;
export const PGTABLE_LEVEL_P4D = 3;
export const PGTABLE_LEVEL_PGD = 4;

/**
 * pgtable_level_to_str(level)
 * @kernel include/linux/pgtable.h:pgtable_level_to_str (v6.18)
 */
export function pgtable_level_to_str(level: number): string {
  switch (level) {
    case PGTABLE_LEVEL_PTE:
      return 'pte';
    case PGTABLE_LEVEL_PMD:
      return 'pmd';
    case PGTABLE_LEVEL_PUD:
      return 'pud';
    case PGTABLE_LEVEL_P4D:
      return 'p4d';
    case PGTABLE_LEVEL_PGD:
      return 'pgd';
    default:
      return 'unknown';
  }
}

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/** "%08llx" of an entry's hardware value. */
function x08(v: pteval_t): string {
  return native_pte_val(v)
    .replace(/^0+(?=.)/, '')
    .padStart(8, '0');
}

/** "%px" of a user address. */
function px(addr: number): string {
  return addr.toString(16).padStart(16, '0');
}

/** "%ps" of an optional hook: its function name, else `<ops>-><hook>`, else 0x0. */
function ps(fn: unknown, fallback: string): string {
  if (typeof fn !== 'function') return '0x0';
  const name = (fn as { name?: string }).name;
  return name && !['fault', 'mmap', 'mmap_prepare', 'read_folio', 'readpage'].includes(name)
    ? name
    : fallback;
}

/** The statics of is_bad_page_map_ratelimited() (print_bad_pte() before v6.18). */
interface bad_page_map_rl {
  resume: number;
  nr_shown: number;
  nr_unshown: number;
}

/**
 * is_bad_page_map_ratelimited(): a burst of 60 reports, then quiet until 60 s after
 * the first of the burst; the first report after that says how many were suppressed.
 * @kernel mm/memory.c:is_bad_page_map_ratelimited (v6.18; inline in print_bad_pte before)
 * Locking: none (the kernel's statics are racy; in the model each call is atomic).
 * Return: true when this report must be dropped.
 */
function is_bad_page_map_ratelimited(): boolean {
  const k = currentKernel();
  const rl = ((k.sub.bad_page_map_rl as bad_page_map_rl | undefined) ??= {
    resume: 0,
    nr_shown: 0,
    nr_unshown: 0,
  });
  const jiffies = k.jiffies;
  if (rl.nr_shown === 60) {
    /* time_before(jiffies, resume) */
    if (jiffies - rl.resume < 0) {
      rl.nr_unshown++;
      return true;
    }
    if (rl.nr_unshown) {
      pr_alert(`BUG: Bad page map: ${rl.nr_unshown} messages suppressed`);
      rl.nr_unshown = 0;
    }
    rl.nr_shown = 0;
  }
  if (rl.nr_shown++ === 0) rl.resume = jiffies + 60 * (k.config.CONFIG_HZ as number);
  return false;
}

/** The values of the upper-level entries for addr, as far as tables exist. */
function upper_entries(
  vma: vm_area_struct,
  addr: number,
): { pgd: number; pud?: number; pmd?: number } {
  const pgdT = vma.vm_mm.pgd;
  const pgd = pgdT.entries[pgd_index(addr)]!;
  const pudT = pgdT.children?.[pgd_index(addr)];
  if (!pudT) return { pgd };
  const pud = pudT.entries[pud_index(addr)]!;
  const pmdT = pudT.children?.[pud_index(addr)];
  if (!pmdT) return { pgd, pud };
  return { pgd, pud, pmd: pmdT.entries[pmd_index(addr)]! };
}

/** dump_page(page, reason), reduced to the fields the model keeps. */
function dump_page(p: page, reason: string): void {
  pr_alert(
    `page: refcount:${page_ref_count(p)} mapcount:${page_mapcount(p)} mapping:0000000000000000 index:0x0 pfn:0x${p.toString(16)}`,
  );
  pr_alert(`page dumped because: ${reason}`);
}

/** The report lines shared by print_bad_pte and print_bad_page_map, after the first. */
function report_tail(vma: vm_area_struct, addr: number): void {
  const mapping = vma.vm_file ? vma.vm_file.f_mapping : null;
  const index = linear_page_index(vma, addr);
  pr_alert(
    `addr:${px(addr)} vm_flags:${vma.vm_flags.toString(16).padStart(8, '0')} anon_vma:${vma.anon_vma ? `anon_vma#${vma.anon_vma.id}` : '0000000000000000'} mapping:${mapping ? `mapping#${mapping.id}` : '0000000000000000'} index:${index.toString(16)}`,
  );
  const file = vma.vm_file ? (vma.vm_file.f_path.split('/').pop() ?? vma.vm_file.f_path) : '(null)';
  const fault = ps(vma.vm_ops?.fault, `${vma.vm_ops?.name}->fault`);
  const mmap = ps(vma.vm_file?.f_op.mmap, `${vma.vm_file?.f_op.name}->mmap`);
  const aname = mapping ? mapping.a_ops.name : '';
  /* 7e0a126519b8-era "fs: Remove aops->readpage" (v5.19): readpage -> read_folio */
  const rf = since(5, 19) ? 'read_folio' : 'readpage';
  const rfsym = mapping ? `${aname}->${rf}` : '0x0';
  if (since(6, 16)) {
    /* .mmap_prepare (v6.16) is reported too; only 6.18 of the supported versions */
    pr_alert(`file:${file} fault:${fault} mmap:${mmap} mmap_prepare: 0x0 ${rf}:${rfsym}`);
  } else {
    pr_alert(`file:${file} fault:${fault} mmap:${mmap} ${rf}:${rfsym}`);
  }
  dump_stack();
  add_taint(TAINT_BAD_PAGE, LOCKDEP_NOW_UNRELIABLE);
}

/**
 * print_bad_pte(vma, addr, pte, page): reports a bad PTE: "BUG: Bad page map in
 * process <comm>  pte:<val> pmd:<val>", the page (if any), the VMA line, the hooks line,
 * a stack dump, and taints TAINT_BAD_PAGE (LOCKDEP_NOW_UNRELIABLE). Rate-limited (60
 * reports, then quiet for the rest of the minute). From v6.18 a macro for
 * print_bad_page_map(..., PGTABLE_LEVEL_PTE).
 * @kernel mm/memory.c:print_bad_pte (v5.7+)
 * Locking: the entry's page-table lock held.
 * Return: nothing; the caller still handles the entry.
 */
export function print_bad_pte(
  vma: vm_area_struct,
  addr: number,
  pte: pteval_t,
  p: page | null,
): void {
  if (since(6, 18)) {
    print_bad_page_map(vma, addr, pte, p, PGTABLE_LEVEL_PTE);
    return;
  }
  if (is_bad_page_map_ratelimited()) return;
  const up = upper_entries(vma, addr);
  pr_alert(
    `BUG: Bad page map in process ${get_current().comm}  pte:${x08(pte)} pmd:${x08(up.pmd ?? 0)}`,
  );
  if (p !== null) dump_page(p, 'bad pte');
  report_tail(vma, addr);
}

/**
 * print_bad_page_map(vma, addr, entry, page, level): the v6.18 report for a bad entry
 * at any level: "BUG: Bad page map in process <comm>  <level>:<val>", the values of the
 * upper levels (down to the first non-present or leaf one), the page (if any), the VMA
 * line, the hooks line with mmap_prepare, a stack dump; taints TAINT_BAD_PAGE.
 * Rate-limited as print_bad_pte.
 * @kernel mm/memory.c:print_bad_page_map (v6.18)
 * Locking: the entry's page-table lock held; tables cannot go away.
 * Return: nothing.
 */
export function print_bad_page_map(
  vma: vm_area_struct,
  addr: number,
  entry: pteval_t,
  p: page | null,
  level: number,
): void {
  if (!since(6, 18)) absent('print_bad_page_map()', 'added in v6.18; print_bad_pte() before');
  if (is_bad_page_map_ratelimited()) return;
  pr_alert(
    `BUG: Bad page map in process ${get_current().comm}  ${pgtable_level_to_str(level)}:${x08(entry)}`,
  );
  /* __print_bad_page_map_pgtable(): p4d is folded into pgd on 4-level x86 */
  const up = upper_entries(vma, addr);
  const pgdv = x08(up.pgd);
  if (up.pud === undefined) pr_alert(`pgd:${pgdv}`);
  else if (!pud_present(up.pud) || pud_leaf(up.pud) || up.pmd === undefined)
    pr_alert(`pgd:${pgdv} p4d:${pgdv} pud:${x08(up.pud)}`);
  else pr_alert(`pgd:${pgdv} p4d:${pgdv} pud:${x08(up.pud)} pmd:${x08(up.pmd)}`);
  if (p !== null) dump_page(p, 'bad page map');
  report_tail(vma, addr);
}

/**
 * __vm_normal_page(vma, addr, pfn, special, entry, level): the v6.18 core of
 * vm_normal_page*().
 * - With the special bit (CONFIG_ARCH_HAS_PTE_SPECIAL): a special entry is
 *   vm_ops->find_normal_page's answer if it has one, else NULL for PFNMAP/MIXEDMAP VMAs
 *   and the (huge) zero pfn, else a bad-map report and NULL (R-VNP-1).
 * - Without it: MIXEDMAP pfns without struct page, the PFNMAP pfns that follow the
 *   vm_pgoff rule and all PFNMAP pfns of non-COW VMAs are special; then the (huge)
 *   zero pfn (R-VNP-3).
 * - Then a pfn beyond highest_memmap_pfn is reported and NULL; else the page,
 *   PageReserved included (R-VNP-2).
 * @kernel mm/memory.c:__vm_normal_page (v6.18)
 * Locking: the entry's page-table lock held (or the entry read under it).
 * Return: the page, or null.
 * Model: vm_ops->find_normal_page is the vm_operations_struct field find_special_page
 *   (the kernel calls it only with CONFIG_FIND_NORMAL_PAGE, which its one user selects).
 */
export function __vm_normal_page(
  vma: vm_area_struct,
  addr: number,
  pfn: number,
  special: boolean,
  entry: pteval_t,
  level: number,
): page | null {
  if (!since(6, 18)) absent('__vm_normal_page()', 'added in v6.18');
  if (currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL === true) {
    if (special) {
      if (vma.vm_ops?.find_special_page) return vma.vm_ops.find_special_page(vma, addr);
      if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) return null;
      if (is_zero_pfn(pfn) || is_huge_zero_pfn(pfn)) return null;
      print_bad_page_map(vma, addr, entry, null, level);
      return null;
    }
  } else {
    if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) {
      if (vma.vm_flags & VM_MIXEDMAP) {
        /* If it has a "struct page", it's "normal". */
        if (!pfn_valid(pfn)) return null;
      } else {
        const off = Math.floor((addr - vma.vm_start) / 2 ** PAGE_SHIFT);
        /* Only CoW'ed anon folios are "normal". */
        if (pfn === vma.vm_pgoff + off) return null;
        if (!is_cow_mapping(vma.vm_flags)) return null;
      }
    }
    if (is_zero_pfn(pfn) || is_huge_zero_pfn(pfn)) return null;
  }
  if (pfn > highest_memmap_pfn()) {
    /* Corrupted page table entry. */
    print_bad_page_map(vma, addr, entry, null, level);
    return null;
  }
  VM_WARN_ON_ONCE(is_zero_pfn(pfn) || is_huge_zero_pfn(pfn));
  return pfn_to_page(pfn);
}

/**
 * vm_normal_page(vma, addr, pte): the page of a present PTE, or NULL for a special
 * mapping (R-VNP-1..3).
 * Up to v6.17:
 * - special bit set: find_special_page, then NULL for PFNMAP|MIXEDMAP VMAs, the zero
 *   pfn and (v6.16 and before) pte_devmap entries; else print_bad_pte and NULL;
 * - no special bit: as __vm_normal_page, except that a valid MIXEDMAP pfn is normal at
 *   once (no highest_memmap_pfn check) and, before v6.11, even the zero pfn ("mm/memory:
 *   cleanly support zeropage in vm_insert_page*(), vm_map_pages*() and
 *   vmf_insert_mixed()" made it special);
 * - special bit clear: pfn > highest_memmap_pfn is reported; else the page.
 * v6.18: __vm_normal_page(vma, addr, pte_pfn(pte), pte_special(pte), pte, PTE level).
 * @kernel mm/memory.c:vm_normal_page (v5.7+; __vm_normal_page v6.18)
 * Locking: the PTE's page-table lock held (or the value read under it).
 * Return: the page, or null.
 */
export function vm_normal_page(vma: vm_area_struct, addr: number, pte: pteval_t): page | null {
  if (since(6, 18))
    return __vm_normal_page(vma, addr, pte_pfn(pte), pte_special(pte), pte, PGTABLE_LEVEL_PTE);
  const pfn = pte_pfn(pte);
  let out = false;
  if (currentKernel().config.CONFIG_ARCH_HAS_PTE_SPECIAL === true) {
    if (pte_special(pte)) {
      if (vma.vm_ops?.find_special_page) return vma.vm_ops.find_special_page(vma, addr);
      if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) return null;
      if (is_zero_pfn(pfn)) return null;
      /* devmap PTEs (removed in v6.17 with pfn_t/devmap) */
      if (!since(6, 17) && pte_devmap(pte)) return null;
      print_bad_pte(vma, addr, pte, null);
      return null;
    }
  } else {
    if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) {
      if (vma.vm_flags & VM_MIXEDMAP) {
        if (!pfn_valid(pfn)) return null;
        if (since(6, 11) && is_zero_pfn(pfn)) return null;
        out = true;
      } else {
        const off = Math.floor((addr - vma.vm_start) / 2 ** PAGE_SHIFT);
        if (pfn === vma.vm_pgoff + off) return null;
        if (!is_cow_mapping(vma.vm_flags)) return null;
      }
    }
    if (!out && is_zero_pfn(pfn)) return null;
  }
  if (!out && pfn > highest_memmap_pfn()) {
    print_bad_pte(vma, addr, pte, null);
    return null;
  }
  /* NOTE! We still have PageReserved() pages in the page tables. */
  if (since(6, 11)) VM_WARN_ON_ONCE(is_zero_pfn(pfn));
  return pfn_to_page(pfn);
}

/**
 * vm_normal_folio(vma, addr, pte): the folio of vm_normal_page(), or NULL.
 * @kernel mm/memory.c:vm_normal_folio (v6.1+; used by the model for all versions)
 * Locking: as vm_normal_page.
 */
export function vm_normal_folio(vma: vm_area_struct, addr: number, pte: pteval_t): folio | null {
  const p = vm_normal_page(vma, addr, pte);
  return p !== null ? page_folio(p) : null;
}

/**
 * vm_normal_page_pmd(vma, addr, pmd): the page of a PMD leaf, or NULL (R-VNP-4).
 * Up to v6.17 there is no report: v6.12+ returns NULL for pmd_special first (huge pfnmap
 * series); then the no-special-bit PFNMAP/MIXEDMAP rules (a valid MIXEDMAP pfn is normal
 * at once); then devmap (v6.16 and before), the huge zero pmd and pfns beyond
 * highest_memmap_pfn give NULL silently. v6.18: __vm_normal_page at PMD level.
 * @kernel mm/memory.c:vm_normal_page_pmd (v5.7+ with CONFIG_TRANSPARENT_HUGEPAGE;
 *   CONFIG_PGTABLE_HAS_HUGE_LEAVES v6.12+)
 * Locking: the PMD lock held (or the value read under it).
 * Return: the page, or null.
 */
export function vm_normal_page_pmd(vma: vm_area_struct, addr: number, pmd: pteval_t): page | null {
  if (since(6, 18))
    return __vm_normal_page(vma, addr, pte_pfn(pmd), pmd_special(pmd), pmd, PGTABLE_LEVEL_PMD);
  const pfn = pte_pfn(pmd);
  /* Currently it's only used for huge pfnmaps */
  if (since(6, 12) && pmd_special(pmd)) return null;
  if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) {
    if (vma.vm_flags & VM_MIXEDMAP) {
      if (!pfn_valid(pfn)) return null;
      return pfn_to_page(pfn);
    }
    const off = Math.floor((addr - vma.vm_start) / 2 ** PAGE_SHIFT);
    if (pfn === vma.vm_pgoff + off) return null;
    if (!is_cow_mapping(vma.vm_flags)) return null;
  }
  if (!since(6, 17) && pte_devmap(pmd)) return null;
  if (is_huge_zero_pmd(pmd)) return null;
  if (pfn > highest_memmap_pfn()) return null;
  return pfn_to_page(pfn);
}

/**
 * vm_normal_folio_pmd(vma, addr, pmd): the folio of vm_normal_page_pmd(), or NULL.
 * @kernel mm/memory.c:vm_normal_folio_pmd (v6.8+; used by the model for all versions)
 */
export function vm_normal_folio_pmd(
  vma: vm_area_struct,
  addr: number,
  pmd: pteval_t,
): folio | null {
  const p = vm_normal_page_pmd(vma, addr, pmd);
  return p !== null ? page_folio(p) : null;
}

/**
 * vm_normal_page_pud(vma, addr, pud): the page of a PUD leaf, or NULL, by
 * __vm_normal_page at PUD level.
 * @kernel mm/memory.c:vm_normal_page_pud (v6.18)
 * Locking: the PUD lock held.
 * Return: the page, or null.
 */
export function vm_normal_page_pud(vma: vm_area_struct, addr: number, pud: pteval_t): page | null {
  if (!since(6, 18)) absent('vm_normal_page_pud()', 'added in v6.18');
  return __vm_normal_page(vma, addr, pte_pfn(pud), pud_special(pud), pud, PGTABLE_LEVEL_PUD);
}
