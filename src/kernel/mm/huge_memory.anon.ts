/**
 * Transparent huge pages on the fault, split, zap and fork paths: the THP policy
 * (/sys/kernel/mm/transparent_hugepage/enabled), PMD-sized anonymous folios and the huge
 * zero page on anonymous faults, write faults on huge PMDs, splitting a PMD leaf into 512
 * PTEs, zapping and copying PMD leaves, and the PTE table each anonymous PMD leaf keeps
 * deposited for its split.
 *
 * The THP policy is a per-kernel setting, `currentKernel().sub.transparent_hugepage`,
 * `{ enabled: 'always' | 'madvise' | 'never', use_zero_page: boolean }`, default
 * `{ enabled: 'always', use_zero_page: true }` (CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS, the
 * kernel's Kconfig default, and use_zero_page's default 1). Set it with
 * {@link setTransparentHugepage}. Per-size (mTHP) settings are not modelled: PMD order is
 * "inherit" and every smaller anonymous order is "never", as the kernel boots.
 *
 * The huge zero folio itself (its allocation and the mm's reference) belongs to
 * mm/huge_memory.ts (mm_get_huge_zero_folio, is_huge_zero_pfn).
 *
 * PMD migration entries (a THP under migration, mm/migrate.ts): zap_huge_pmd clears them
 * (RSS and the deposited table go, no folio reference or rmap change), copy_huge_pmd
 * copies them (made readable in both for COW, the child's RSS), and a split turns one into
 * 512 PTE migration entries, as the kernel does.
 *
 * Left out: khugepaged, deferred split queues and splitting of the folio itself
 * (split_folio: a PMD split keeps the large folio, PTE-mapped), NUMA hinting,
 * userfaultfd, memcg charging, file/shmem THP, DAX, PUD-sized anonymous memory (the
 * kernel has none either), and on v5.7 the huge COW of do_huge_pmd_wp_page (the model
 * splits as v5.8+ does).
 *
 * @kernel mm/huge_memory.c, include/linux/huge_mm.h, mm/pgtable-generic.c (all versions,
 *   gates where behaviour changed)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel, type Kernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import type {
  folio,
  mm_struct,
  page,
  pmd_t_ptr,
  pud_t_ptr,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../include/linux/mm_types.js';
import { FAULT_FLAG_UNSHARE, FAULT_FLAG_WRITE, MM_ANONPAGES } from '../include/linux/mm_types.js';
import {
  add_mm_counter,
  is_cow_mapping,
  mm_counter_file,
  mm_flags_test,
  vma_is_anonymous,
  VM_FAULT_FALLBACK,
  VM_FAULT_OOM,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_SPECIAL,
  VM_WRITE,
} from '../include/linux/mm.js';
import {
  __pte,
  _PAGE_ACCESSED,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_RW,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  pfn_pte,
  pte_dirty,
  pte_flags,
  pte_mkdirty,
  pte_mkold,
  pte_mkwrite,
  pte_mkyoung,
  pte_pfn,
  pte_young,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_mkspecial,
  pmd_none,
  pmd_present,
  pmd_special,
  pte_mkspecial,
} from '../arch/x86/include/asm/pgtable.js';
import {
  pagetable_alloc,
  pagetable_free,
  pmd_lock,
  pmd_lockptr,
  pmdp_get_lockless,
  pmdp_huge_get_and_clear,
  populate,
  ptep_get,
  pud_lock,
  pudp_get,
  set_pmd_at,
  set_pud_at,
  slotName,
  my_zero_pfn,
  type ptdesc,
  walkToLeaf,
  pgd_offset,
  entry_table,
} from '../include/linux/pgtable.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import {
  ClearPageAnonExclusive,
  folio_mapcount,
  folio_mark_uptodate,
  folio_nr_pages,
  folio_test_anon,
  folio_test_dirty,
  folio_test_large,
  folio_set_dirty_flag,
  page_folio,
  page_mapcount,
  PageAnonExclusive,
  PageHead,
  prep_compound_page,
  SetPageAnonExclusive,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put, folio_ref_add, folio_ref_count } from '../include/linux/page_ref.js';
import { __GFP_ZERO, alloc_pages, GFP_TRANSHUGE } from './page_alloc.js';
import {
  folio_add_anon_rmap_pmd,
  folio_add_anon_rmap_ptes,
  folio_add_new_anon_rmap,
  folio_move_anon_rmap,
  folio_remove_rmap_pmd,
  RMAP_EXCLUSIVE,
  RMAP_NONE,
} from './rmap.js';
import {
  MMU_NOTIFY_CLEAR,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
} from './mmu_notifier.js';
import { BUG, VM_BUG_ON, VM_WARN_ON_ONCE, WARN_ON_ONCE } from '../kernel/panic.js';
import { folio_lock, folio_trylock, folio_unlock } from './filemap.js';
import { memmap } from './sparse.js';
import { is_huge_zero_pmd, mm_get_huge_zero_folio } from './huge_memory.js';
import {
  is_migration_entry_dirty,
  is_migration_entry_young,
  is_pmd_migration_entry,
  is_readable_exclusive_migration_entry,
  is_readable_migration_entry,
  is_swap_pmd,
  is_writable_migration_entry,
  make_migration_entry_dirty,
  make_migration_entry_young,
  make_readable_exclusive_migration_entry,
  make_readable_migration_entry,
  make_writable_migration_entry,
  pfn_swap_entry_folio,
  pfn_swap_entry_to_page,
  pmd_to_swp_entry,
  swp_entry_to_pmd,
  swp_entry_to_pte,
  swp_offset,
  type swp_entry_t,
} from '../include/linux/swapops.js';
import { vmf_anon_prepare, VM_FAULT_WRITE } from './memory.fault.js';
import { folio_needs_cow_for_dma } from './memory.copy.js';
import { pfnsan_special_unmap_huge } from './pfnsan/pfnsan.js';

/** MMF_DISABLE_THP: prctl(PR_SET_THP_DISABLE) (include/linux/sched/coredump.h). */
export const MMF_DISABLE_THP = 24;

export type ThpEnabled = 'always' | 'madvise' | 'never';

/** The sysfs THP knobs the fault path reads (tool-level state, one per kernel). */
export interface TransparentHugepageSettings {
  enabled: ThpEnabled;
  use_zero_page: boolean;
}

function thpSettings(): TransparentHugepageSettings {
  const k = currentKernel();
  return ((k.sub.transparent_hugepage as TransparentHugepageSettings | undefined) ??= {
    enabled: 'always',
    use_zero_page: true,
  });
}

/**
 * Sets /sys/kernel/mm/transparent_hugepage/{enabled,use_zero_page} of a kernel instance
 * (the tool's API; a scenario does this as root would with echo).
 */
export function setTransparentHugepage(
  k: Kernel,
  s: Partial<TransparentHugepageSettings>,
): TransparentHugepageSettings {
  const cur = (k.sub.transparent_hugepage as TransparentHugepageSettings | undefined) ?? {
    enabled: 'always',
    use_zero_page: true,
  };
  const next = { ...cur, ...s };
  k.sub.transparent_hugepage = next;
  return next;
}

/** hugepage_global_enabled(): enabled is "always" or "madvise" (include/linux/huge_mm.h). */
export function hugepage_global_enabled(): boolean {
  return thpSettings().enabled !== 'never';
}

/** hugepage_global_always(): enabled is "always". */
export function hugepage_global_always(): boolean {
  return thpSettings().enabled === 'always';
}

/** transparent_hugepage_use_zero_page(): the use_zero_page knob (default 1). */
export function transparent_hugepage_use_zero_page(): boolean {
  return thpSettings().use_zero_page;
}

/**
 * vma_is_special_huge(vma): a VMA whose huge leaves map raw pfns (DAX, or file-backed
 * VM_PFNMAP/VM_MIXEDMAP): they have no folio, no deposited table, no rmap.
 * @kernel include/linux/huge_mm.h:vma_is_special_huge (all versions)
 */
export function vma_is_special_huge(vma: vm_area_struct): boolean {
  return vma.vm_file !== null && (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) !== 0n;
}

/**
 * thp_vma_suitable_order(vma, addr, order): the naturally aligned block of 2^order pages
 * around addr lies inside the VMA (and, for files, vm_pgoff is aligned the same way).
 * @kernel include/linux/huge_mm.h:thp_vma_suitable_order (v6.8+; transhuge_vma_suitable)
 */
export function thp_vma_suitable_order(vma: vm_area_struct, addr: number, order: number): boolean {
  const hpage = PAGE_SIZE * 2 ** order;
  if (!vma_is_anonymous(vma)) {
    const delta = vma.vm_start / PAGE_SIZE - vma.vm_pgoff;
    if (delta % (hpage / PAGE_SIZE) !== 0) return false;
  }
  const haddr = Math.floor(addr / hpage) * hpage;
  return haddr >= vma.vm_start && haddr + hpage <= vma.vm_end;
}

/**
 * thp_vma_allowable_order(vma, vm_flags, TVA_IN_PF | TVA_ENFORCE_SYSFS, order): may a page
 * fault try a PMD (order 9) or PUD (order 18) leaf here?
 * - v6.8+ (__thp_vma_allowable_orders, 3485b88390b0 "mm: thp: introduce multi-size THP
 *   sysfs interface"): anonymous VMAs take PMD order only, under the sysfs policy; other
 *   VMAs need the sysfs policy and a ->huge_fault.
 * - v6.1–v6.7 (hugepage_vma_check): VM_SPECIAL/hugetlb VMAs are allowed before the sysfs
 *   check; other file VMAs are not; anonymous VMAs follow the sysfs policy.
 * - before v6.1 (__transparent_hugepage_enabled): the sysfs policy for every VMA.
 * In all versions VM_NOHUGEPAGE and MMF_DISABLE_THP refuse.
 * @kernel mm/huge_memory.c:__thp_vma_allowable_orders, hugepage_vma_check,
 *   include/linux/huge_mm.h:__transparent_hugepage_enabled (gates at v6.1 and v6.8)
 * Left out: DAX, shmem/file THP (their huge_enabled rules), temporary stacks.
 */
export function thp_vma_allowable_order(
  vma: vm_area_struct,
  vm_flags: bigint,
  order: number,
): boolean {
  if (currentKernel().config.CONFIG_TRANSPARENT_HUGEPAGE !== true) return false;
  if (vm_flags & VM_NOHUGEPAGE) return false;
  if (mm_flags_test(MMF_DISABLE_THP, vma.vm_mm)) return false;
  const sysfs =
    hugepage_global_always() || ((vm_flags & VM_HUGEPAGE) !== 0n && hugepage_global_enabled());
  if (since(6, 8)) {
    if (vma_is_anonymous(vma)) return order === HPAGE_PMD_ORDER && sysfs;
    if (!sysfs) return false;
    return vma.vm_ops?.huge_fault !== undefined;
  }
  if (since(6, 1)) {
    if (vm_flags & (VM_SPECIAL | VM_HUGETLB)) return true;
    if (!sysfs) return false;
    return vma_is_anonymous(vma);
  }
  return sysfs;
}

/** x86 pmd_trans_huge: the PSE bit, whether or not the entry is present (under split). */
function pmd_trans_huge(v: pteval_t): boolean {
  return v !== 0 && (pte_flags(v) & _PAGE_PSE) !== 0;
}
export { pmd_trans_huge };

/** pmd_mkhuge(pfn_pmd(pfn, prot)): a huge leaf. */
function mk_huge_pmd(pfn: number, prot: number): pteval_t {
  return __pte(pfn, prot | _PAGE_PSE);
}

/** maybe_pmd_mkwrite(pmd, vma) */
export function maybe_pmd_mkwrite(v: pteval_t, vma: vm_area_struct): pteval_t {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(v) : v;
}

/** Deposited PTE tables, per PMD table (pmd_huge_pte of the PMD table's ptdesc). */
const deposits = new WeakMap<ptdesc, ptdesc[]>();

/**
 * pgtable_trans_huge_deposit(mm, pmdp, pgtable): keeps a PTE table for a later split of
 * the huge leaf at pmdp.
 * @kernel mm/pgtable-generic.c:pgtable_trans_huge_deposit (all versions)
 * Locking: the PMD lock is held.
 */
export function pgtable_trans_huge_deposit(_mm: mm_struct, pmdp: pmd_t_ptr, pgtable: ptdesc): void {
  let l = deposits.get(pmdp.t);
  if (!l) {
    l = [];
    deposits.set(pmdp.t, l);
  }
  l.push(pgtable);
}

/**
 * pgtable_trans_huge_withdraw(mm, pmdp): takes back a deposited table.
 * @kernel mm/pgtable-generic.c:pgtable_trans_huge_withdraw (all versions)
 * Locking: the PMD lock is held.
 * Return: the table (the kernel oopses on an empty list; the model BUGs).
 */
export function pgtable_trans_huge_withdraw(_mm: mm_struct, pmdp: pmd_t_ptr): ptdesc {
  const t = deposits.get(pmdp.t)?.pop();
  if (!t) BUG('pgtable_trans_huge_withdraw: no deposited page table');
  return t;
}

/** The number of PTE tables deposited under a PMD table (model inspection, for teardown checks). */
export function depositedTables(pmdTable: ptdesc): number {
  return deposits.get(pmdTable)?.length ?? 0;
}

/** zap_deposited_table(mm, pmd): withdraw and free (pte_free) the deposited table. */
function zap_deposited_table(mm: mm_struct, pmdp: pmd_t_ptr): void {
  pagetable_free(mm, pgtable_trans_huge_withdraw(mm, pmdp));
}

/** Writes an entry of a table nobody else can see yet (no step needed). */
function fill_unlinked(t: ptdesc, i: number, v: pteval_t): void {
  if (t.entries[i] === 0 && v !== 0) t.used++;
  t.entries[i] = v;
}

/**
 * set_huge_zero_folio(pgtable, mm, vma, haddr, pmd, zero_folio): maps the huge zero folio
 * read-only with a deposited table. v6.18 marks the leaf special ("mm/huge_memory: mark
 * PMD mappings of the huge zero folio special", the vm_normal_page_pud series).
 * @kernel mm/huge_memory.c:set_huge_zero_folio (set_huge_zero_page before v6.9)
 * Locking: the PMD lock is held.
 */
function* set_huge_zero_folio(
  pgtable: ptdesc,
  mm: mm_struct,
  vma: vm_area_struct,
  haddr: number,
  pmdp: pmd_t_ptr,
  zero_folio: folio,
): Op<void> {
  let entry = mk_huge_pmd(zero_folio, vma.vm_page_prot);
  if (since(6, 18)) entry = pmd_mkspecial(entry);
  pgtable_trans_huge_deposit(mm, pmdp, pgtable);
  yield* set_pmd_at(mm, haddr, pmdp, entry);
}

/**
 * vma_alloc_anon_folio_pmd(vma, addr): a zeroed PMD-order anonymous folio (compound).
 * @kernel mm/huge_memory.c:vma_alloc_anon_folio_pmd (v6.13+; inline in
 *   __do_huge_pmd_anonymous_page before)
 * Return: the folio with one reference, or null (THP_FAULT_FALLBACK).
 */
function vma_alloc_anon_folio_pmd(_vma: vm_area_struct, _addr: number): folio | null {
  const p = alloc_pages(GFP_TRANSHUGE | __GFP_ZERO, HPAGE_PMD_ORDER);
  if (p === null) return null;
  prep_compound_page(p, HPAGE_PMD_ORDER);
  folio_mark_uptodate(p as number as folio);
  return p as number as folio;
}

/**
 * map_anon_folio_pmd(folio, pmd, vma, haddr): installs a new anonymous THP: exclusive
 * rmap, writable+dirty if VM_WRITE, RSS +512.
 * @kernel mm/huge_memory.c:map_anon_folio_pmd (v6.13+; inline before)
 * Locking: the PMD lock is held.
 */
function* map_anon_folio_pmd(
  f: folio,
  pmdp: pmd_t_ptr,
  vma: vm_area_struct,
  haddr: number,
): Op<void> {
  const entry = maybe_pmd_mkwrite(pte_mkdirty(mk_huge_pmd(f, vma.vm_page_prot)), vma);
  folio_add_new_anon_rmap(f, vma, haddr, RMAP_EXCLUSIVE, true);
  yield* set_pmd_at(vma.vm_mm, haddr, pmdp, entry);
  add_mm_counter(vma.vm_mm, MM_ANONPAGES, HPAGE_PMD_NR);
}

/**
 * __do_huge_pmd_anonymous_page(vmf): allocates a THP and a PTE table to deposit, and maps
 * the THP if the PMD is still empty.
 * @kernel mm/huge_memory.c:__do_huge_pmd_anonymous_page (all versions)
 * Locking: mmap_lock held for read; takes the PMD lock.
 * Return: 0, VM_FAULT_FALLBACK (no THP could be allocated) or VM_FAULT_OOM.
 */
function* __do_huge_pmd_anonymous_page(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const haddr = Math.floor(vmf.address / PMD_SIZE) * PMD_SIZE;
  const f = vma_alloc_anon_folio_pmd(vma, vmf.address);
  if (f === null) return VM_FAULT_FALLBACK;
  const pgtable = pagetable_alloc(vma.vm_mm, 'pte');
  if (pgtable === null) {
    folio_put(f);
    return VM_FAULT_OOM;
  }
  const pmdp = vmf.pmd!;
  vmf.ptl = yield* pmd_lock(vma.vm_mm, pmdp);
  if (!pmd_none(ptep_get(pmdp))) {
    yield* spin_unlock(vmf.ptl);
    pagetable_free(vma.vm_mm, pgtable);
    folio_put(f);
    return 0;
  }
  pgtable_trans_huge_deposit(vma.vm_mm, pmdp, pgtable);
  yield* map_anon_folio_pmd(f, pmdp, vma, haddr);
  yield* spin_unlock(vmf.ptl);
  return 0;
}

/**
 * do_huge_pmd_anonymous_page(vmf): PMD fault on an empty PMD of an anonymous VMA: read
 * faults map the huge zero folio (use_zero_page), write faults a new THP.
 * @kernel mm/huge_memory.c:do_huge_pmd_anonymous_page (all versions)
 * Locking: mmap_lock held for read.
 * Return: 0, VM_FAULT_FALLBACK (the 2 MiB block is not inside the VMA, or no huge
 *   folio), VM_FAULT_OOM.
 */
export function* do_huge_pmd_anonymous_page(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const haddr = Math.floor(vmf.address / PMD_SIZE) * PMD_SIZE;
  if (!thp_vma_suitable_order(vma, haddr, HPAGE_PMD_ORDER)) return VM_FAULT_FALLBACK;
  const ret = vmf_anon_prepare(vmf);
  if (ret) return ret;
  if (!(vmf.flags & FAULT_FLAG_WRITE) && transparent_hugepage_use_zero_page()) {
    const mm = vma.vm_mm;
    const pgtable = pagetable_alloc(mm, 'pte');
    if (pgtable === null) return VM_FAULT_OOM;
    const zero_folio = yield* mm_get_huge_zero_folio(mm);
    if (zero_folio === null) {
      pagetable_free(mm, pgtable);
      return VM_FAULT_FALLBACK;
    }
    const pmdp = vmf.pmd!;
    vmf.ptl = yield* pmd_lock(mm, pmdp);
    if (pmd_none(ptep_get(pmdp))) {
      yield* set_huge_zero_folio(pgtable, mm, vma, haddr, pmdp, zero_folio);
      yield* spin_unlock(vmf.ptl);
    } else {
      yield* spin_unlock(vmf.ptl);
      pagetable_free(mm, pgtable);
    }
    return 0;
  }
  return yield* __do_huge_pmd_anonymous_page(vmf);
}

/**
 * pmdp_set_access_flags(vma, addr, pmdp, entry, dirty) (x86): writes entry if it differs
 * and the update makes it dirty/writable; young-only updates are left to the hardware.
 * @kernel arch/x86/mm/pgtable.c:pmdp_set_access_flags (all versions)
 * Locking: the PMD lock is held.
 * Return: whether the entry differed.
 */
function* pmdp_set_access_flags(
  vma: vm_area_struct,
  addr: number,
  pmdp: pmd_t_ptr,
  entry: pteval_t,
  dirty: boolean,
): Op<boolean> {
  const changed = ptep_get(pmdp) !== entry;
  if (changed && dirty) yield* set_pmd_at(vma.vm_mm, addr, pmdp, entry);
  return changed;
}

/**
 * touch_pmd(vma, addr, pmd, write): marks a huge leaf young (and dirty on write).
 * @kernel mm/huge_memory.c:touch_pmd (all versions)
 * Locking: the PMD lock is held.
 */
function* touch_pmd(vma: vm_area_struct, addr: number, pmdp: pmd_t_ptr, write: boolean): Op<void> {
  let v = pte_mkyoung(ptep_get(pmdp));
  if (write) v = pte_mkdirty(v);
  yield* pmdp_set_access_flags(vma, Math.floor(addr / PMD_SIZE) * PMD_SIZE, pmdp, v, write);
}

/**
 * huge_pmd_set_accessed(vmf): a fault on a huge leaf that allows the access: just update
 * young/dirty under the PMD lock if the leaf is unchanged.
 * @kernel mm/huge_memory.c:huge_pmd_set_accessed (all versions)
 * Locking: mmap_lock held for read; takes the PMD lock.
 */
export function* huge_pmd_set_accessed(vmf: vm_fault): Op<void> {
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  vmf.ptl = yield* pmd_lock(vmf.vma.vm_mm, vmf.pmd!);
  if (ptep_get(vmf.pmd!) === vmf.orig_pmd) yield* touch_pmd(vmf.vma, vmf.address, vmf.pmd!, write);
  yield* spin_unlock(vmf.ptl);
}

/**
 * huge_pud_set_accessed(vmf, orig_pud): as huge_pmd_set_accessed, for PUD leaves.
 * @kernel mm/huge_memory.c:huge_pud_set_accessed (all versions)
 * Locking: mmap_lock held for read; takes the PUD lock (mm->page_table_lock).
 */
export function* huge_pud_set_accessed(vmf: vm_fault, orig_pud: pteval_t): Op<void> {
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  const pudp = vmf.pud!;
  vmf.ptl = yield* pud_lock(vmf.vma.vm_mm, pudp);
  if (pudp_get(pudp) === orig_pud) {
    let v = pte_mkyoung(orig_pud);
    if (write) v = pte_mkdirty(v);
    if (v !== orig_pud && write) yield* set_pud_at(vmf.vma.vm_mm, vmf.address, pudp, v);
  }
  yield* spin_unlock(vmf.ptl);
}

/**
 * do_huge_zero_wp_pmd(vmf): a write to the huge zero page maps a new zeroed THP in its
 * place (v6.13+, 1ced09e0331f "mm: allocate THP on hugezeropage wp-fault").
 * @kernel mm/huge_memory.c:do_huge_zero_wp_pmd (v6.13+)
 * Locking: mmap_lock held for read; takes the PMD lock inside an MMU_NOTIFY_CLEAR range.
 * Return: 0, or VM_FAULT_FALLBACK when no THP could be allocated.
 */
function* do_huge_zero_wp_pmd(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const haddr = Math.floor(vmf.address / PMD_SIZE) * PMD_SIZE;
  const f = vma_alloc_anon_folio_pmd(vma, vmf.address);
  if (f === null) return VM_FAULT_FALLBACK;
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, vma.vm_mm, haddr, haddr + PMD_SIZE);
  yield* mmu_notifier_invalidate_range_start(range);
  const pmdp = vmf.pmd!;
  vmf.ptl = yield* pmd_lock(vma.vm_mm, pmdp);
  if (ptep_get(pmdp) !== vmf.orig_pmd) {
    folio_put(f);
  } else {
    yield* pmdp_huge_get_and_clear(vma.vm_mm, haddr, pmdp);
    yield* map_anon_folio_pmd(f, pmdp, vma, haddr);
  }
  yield* spin_unlock(vmf.ptl);
  yield* mmu_notifier_invalidate_range_end(range);
  return 0;
}

/**
 * page_trans_huge_mapcount(page): the mapcount reuse_swap_page() judged a page by before
 * v5.19: for a page of a THP, the largest per-page PTE mapcount plus the PMD mappings.
 * @kernel mm/huge_memory.c:page_trans_huge_mapcount (v5.7–v5.18; PageDoubleMap not modelled)
 */
export function page_trans_huge_mapcount(p: page): number {
  const f = page_folio(p);
  if (!folio_test_large(f)) return page_mapcount(p);
  const entire = memmap().large.get(f)?._entire_mapcount ?? 0;
  let max = 0;
  for (let i = 0; i < folio_nr_pages(f); i++) {
    max = Math.max(max, page_mapcount((f + i) as page) - entire);
  }
  return max + entire;
}

/**
 * do_huge_pmd_wp_page(vmf): write fault on a read-only anonymous huge leaf. The huge zero
 * page gets a new THP (v6.13+) or is split; an exclusive THP (PageAnonExclusive, or the
 * only reference; before v5.19 the only mapping, reuse_swap_page) is made writable in
 * place; otherwise the PMD is split and the COW happens on the PTE level.
 * @kernel mm/huge_memory.c:do_huge_pmd_wp_page (v5.8+ "thp: change CoW semantics for
 *   anon-THP" splits instead of copying 2 MiB; PageAnonExclusive rule 6c287605fd56, v5.19)
 * Locking: mmap_lock held for read; takes the PMD lock and the folio lock.
 * Return: 0 (VM_FAULT_WRITE before v6.2) when resolved, VM_FAULT_FALLBACK after a split.
 */
export function* do_huge_pmd_wp_page(vmf: vm_fault): Op<vm_fault_t> {
  const unshare = (vmf.flags & FAULT_FLAG_UNSHARE) !== 0;
  const vma = vmf.vma;
  const haddr = Math.floor(vmf.address / PMD_SIZE) * PMD_SIZE;
  const orig_pmd = vmf.orig_pmd;
  const pmdp = vmf.pmd!;
  const ptl = pmd_lockptr(vma.vm_mm, pmdp);
  vmf.ptl = ptl;
  VM_BUG_ON(vma.anon_vma === null, 'VM_BUG_ON_VMA(!vma->anon_vma, vma)');
  const reused = since(6, 2) ? 0 : VM_FAULT_WRITE;

  if (is_huge_zero_pmd(orig_pmd)) {
    if (since(6, 13)) {
      const ret = yield* do_huge_zero_wp_pmd(vmf);
      if (!(ret & VM_FAULT_FALLBACK)) return ret;
    }
    yield* __split_huge_pmd(vma, pmdp, vmf.address, false);
    return VM_FAULT_FALLBACK;
  }

  yield* spin_lock(ptl);
  if (ptep_get(pmdp) !== orig_pmd) {
    yield* spin_unlock(ptl);
    return 0;
  }
  const pg = pte_pfn(orig_pmd) as page;
  const f = page_folio(pg);
  VM_BUG_ON(!PageHead(pg), 'VM_BUG_ON_PAGE(!PageHead(page), page)');

  const makeWritable = function* (): Op<vm_fault_t> {
    if (unshare) {
      yield* spin_unlock(ptl);
      return 0;
    }
    const entry = maybe_pmd_mkwrite(pte_mkdirty(pte_mkyoung(orig_pmd)), vma);
    yield* pmdp_set_access_flags(vma, haddr, pmdp, entry, true);
    yield* spin_unlock(ptl);
    return reused;
  };

  if (since(5, 19) && PageAnonExclusive(pg)) return yield* makeWritable();

  if (!(yield* folio_trylock(f))) {
    folio_get(f);
    yield* spin_unlock(ptl);
    yield* folio_lock(f);
    yield* spin_lock(ptl);
    if (ptep_get(pmdp) !== orig_pmd) {
      yield* spin_unlock(ptl);
      yield* folio_unlock(f);
      folio_put(f);
      return 0;
    }
    folio_put(f);
  }

  if (since(5, 19)) {
    // Recheck after temporarily dropping the PT lock.
    if (PageAnonExclusive(pg)) {
      yield* folio_unlock(f);
      return yield* makeWritable();
    }
    if (folio_ref_count(f) === 1) {
      folio_move_anon_rmap(f, vma);
      SetPageAnonExclusive(pg);
      yield* folio_unlock(f);
      return yield* makeWritable();
    }
  } else if (page_trans_huge_mapcount(pg) <= 1) {
    // reuse_swap_page(page, NULL): nobody else maps the huge page or a part of it.
    yield* folio_unlock(f);
    return yield* makeWritable();
  }
  yield* folio_unlock(f);
  yield* spin_unlock(ptl);
  yield* __split_huge_pmd(vma, pmdp, vmf.address, false);
  return VM_FAULT_FALLBACK;
}

/**
 * __split_huge_zero_page_pmd(vma, haddr, pmd): replaces a huge zero leaf by 512 special
 * zero-page PTEs in the deposited table.
 * @kernel mm/huge_memory.c:__split_huge_zero_page_pmd (all versions)
 * Locking: the PMD lock is held.
 */
function* __split_huge_zero_page_pmd(
  vma: vm_area_struct,
  haddr: number,
  pmdp: pmd_t_ptr,
): Op<void> {
  const mm = vma.vm_mm;
  yield* pmdp_huge_get_and_clear(mm, haddr, pmdp);
  const pgtable = pgtable_trans_huge_withdraw(mm, pmdp);
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const addr = haddr + i * PAGE_SIZE;
    VM_BUG_ON(pgtable.entries[i] !== 0, 'VM_BUG_ON(!pte_none(ptep_get(pte)))');
    fill_unlinked(pgtable, i, pte_mkspecial(pfn_pte(my_zero_pfn(addr), vma.vm_page_prot)));
  }
  yield* populate(pmdp, pgtable, 'pmd_populate');
}

/**
 * The pmd_migration branch of __split_huge_pmd_locked: the entry's kind, young and dirty
 * bits go to 512 PTE migration entries (one per page of the folio) in the deposited
 * table, which replaces the entry. No reference, rmap or RSS change: the folio is
 * unmapped while it migrates.
 * @kernel mm/huge_memory.c:__split_huge_pmd_locked (pmd_migration, all versions; the
 *   readable-exclusive kind v5.19+, 6c287605fd56; A/D bits v6.1+)
 * Locking: the PMD lock is held.
 */
function* __split_huge_pmd_migration_locked(
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  _haddr: number,
): Op<void> {
  const mm = vma.vm_mm;
  const old_pmd = ptep_get(pmdp);
  const entry = pmd_to_swp_entry(old_pmd);
  const pg = pfn_swap_entry_to_page(entry);
  const write = is_writable_migration_entry(entry);
  const anon_exclusive =
    since(5, 19) && folio_test_anon(page_folio(pg)) && is_readable_exclusive_migration_entry(entry);
  const young = is_migration_entry_young(entry);
  const dirty = is_migration_entry_dirty(entry);
  // Withdraw the table only after we mark the pmd entry invalid (a migration entry is).
  const pgtable = pgtable_trans_huge_withdraw(mm, pmdp);
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    let swp: swp_entry_t;
    if (write) swp = make_writable_migration_entry(pg + i);
    else if (anon_exclusive) swp = make_readable_exclusive_migration_entry(pg + i);
    else swp = make_readable_migration_entry(pg + i);
    if (young) swp = make_migration_entry_young(swp);
    if (dirty) swp = make_migration_entry_dirty(swp);
    VM_WARN_ON_ONCE(pgtable.entries[i] !== 0);
    fill_unlinked(pgtable, i, swp_entry_to_pte(swp));
  }
  // pmd_populate() over the entry: the table replaces it (no folio_remove_rmap_pmd).
  yield* populate(pmdp, pgtable, 'pmd_populate');
}

/**
 * __split_huge_pmd_locked(vma, pmd, haddr, freeze): turns a huge leaf into a PTE table.
 * File/special VMAs just lose the leaf (refaulted on the PTE level; a special pfnmap leaf
 * has nothing else to undo). An anonymous THP is invalidated, then its deposited table is
 * filled with 512 PTEs mapping the same folio with the leaf's write/young/dirty bits; the
 * folio gains 511 references, 512 PTE mappings (exclusive if the head was
 * PageAnonExclusive) and loses its PMD mapping. A PMD migration entry becomes 512 PTE
 * migration entries for the folio's pages, of the same kind (writable, readable-exclusive
 * for an anonymous folio v5.19+, readable) and A/D bits (v6.1+), with no reference, rmap
 * or RSS change (a file VMA's entry is dropped with the file RSS).
 * @kernel mm/huge_memory.c:__split_huge_pmd_locked (all versions; the file-VMA migration
 *   entry case v5.13+, 99fa8a48203d "mm/thp: fix __split_huge_pmd_locked() on shmem
 *   migration entry")
 * Locking: the PMD lock is held.
 * Left out: freeze (try_to_migrate's TTU_SPLIT_HUGE_PMD), soft-dirty, uffd-wp. Before
 *   v5.13 the anonymous migration-entry split's refcount/mapcount bookkeeping was not
 *   re-read: the model applies the later rule (none) to every version.
 */
function* __split_huge_pmd_locked(
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  haddr: number,
  freeze: boolean,
): Op<void> {
  const mm = vma.vm_mm;
  VM_BUG_ON(haddr % PMD_SIZE !== 0, 'VM_BUG_ON(haddr & ~HPAGE_PMD_MASK)');
  VM_BUG_ON(vma.vm_start > haddr, 'VM_BUG_ON_VMA(vma->vm_start > haddr, vma)');
  VM_BUG_ON(
    vma.vm_end < haddr + PMD_SIZE,
    'VM_BUG_ON_VMA(vma->vm_end < haddr + HPAGE_PMD_SIZE, vma)',
  );
  VM_BUG_ON(
    !is_pmd_migration_entry(ptep_get(pmdp)) && !pmd_trans_huge(ptep_get(pmdp)),
    'VM_BUG_ON(!is_pmd_migration_entry(*pmd) && !pmd_trans_huge(*pmd))',
  );

  if (!vma_is_anonymous(vma)) {
    const old = yield* pmdp_huge_get_and_clear(mm, haddr, pmdp);
    pfnsan_special_unmap_huge(mm, haddr, PMD_SIZE);
    if (vma_is_special_huge(vma)) return;
    let f: folio;
    if (is_pmd_migration_entry(old)) {
      f = pfn_swap_entry_folio(pmd_to_swp_entry(old));
    } else if (is_huge_zero_pmd(old)) {
      return;
    } else {
      f = page_folio(pte_pfn(old) as page);
      if (!folio_test_dirty(f) && pte_dirty(old)) folio_set_dirty_flag(f);
      folio_remove_rmap_pmd(f, vma);
      folio_put(f);
    }
    add_mm_counter(mm, mm_counter_file(f), -HPAGE_PMD_NR);
    return;
  }

  if (is_huge_zero_pmd(ptep_get(pmdp))) {
    yield* __split_huge_zero_page_pmd(vma, haddr, pmdp);
    return;
  }

  if (is_pmd_migration_entry(ptep_get(pmdp))) {
    yield* __split_huge_pmd_migration_locked(vma, pmdp, haddr);
    return;
  }

  // pmdp_invalidate: not present, still PSE, until the table replaces it.
  yield { obj: slotName(pmdp), kind: 'write', what: 'pmdp_invalidate' };
  const old = ptep_get(pmdp);
  pmdp.t.entries[pmdp.i] = __pte(pte_pfn(old), pte_flags(old) & ~(_PAGE_PRESENT | _PAGE_PROTNONE));
  const pg = pte_pfn(old) as page;
  const f = page_folio(pg);
  const dirty = pte_dirty(old);
  if (dirty) folio_set_dirty_flag(f);
  const write = (pte_flags(old) & _PAGE_RW) !== 0;
  const young = pte_young(old);
  VM_WARN_ON_ONCE(folio_ref_count(f) === 0);
  VM_WARN_ON_ONCE(!folio_test_anon(f));
  void freeze;
  const anon_exclusive = PageAnonExclusive(pg);
  folio_ref_add(f, HPAGE_PMD_NR - 1);
  if (!anon_exclusive)
    for (let i = 0; i < HPAGE_PMD_NR; i++) ClearPageAnonExclusive((pg + i) as page);
  folio_add_anon_rmap_ptes(
    f,
    pg,
    HPAGE_PMD_NR,
    vma,
    haddr,
    anon_exclusive ? RMAP_EXCLUSIVE : RMAP_NONE,
  );

  const pgtable = pgtable_trans_huge_withdraw(mm, pmdp);
  let entry = pfn_pte(pg, vma.vm_page_prot);
  if (write) entry = pte_mkwrite(entry);
  if (!young) entry = pte_mkold(entry);
  if (dirty) entry = pte_mkdirty(entry);
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    VM_WARN_ON_ONCE(pgtable.entries[i] !== 0);
    fill_unlinked(pgtable, i, entry + i * 65536);
  }
  folio_remove_rmap_pmd(f, vma);
  yield* populate(pmdp, pgtable, 'pmd_populate');
}

/**
 * __split_huge_pmd(vma, pmd, address, freeze): splits the huge leaf (or PMD migration
 * entry) mapping address inside an MMU_NOTIFY_CLEAR range, under the PMD lock; nothing
 * if it is no longer either.
 * @kernel mm/huge_memory.c:__split_huge_pmd, split_huge_pmd_locked (all versions)
 * Locking: mmap_lock held (read is enough) or the rmap locks; takes the PMD lock.
 */
export function* __split_huge_pmd(
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  address: number,
  freeze: boolean,
): Op<void> {
  const haddr = Math.floor(address / PMD_SIZE) * PMD_SIZE;
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, vma.vm_mm, haddr, haddr + PMD_SIZE);
  yield* mmu_notifier_invalidate_range_start(range);
  const ptl = yield* pmd_lock(vma.vm_mm, pmdp);
  // split_huge_pmd_locked(): a huge leaf or a PMD migration entry.
  const v = ptep_get(pmdp);
  if (pmd_trans_huge(v) || is_pmd_migration_entry(v))
    yield* __split_huge_pmd_locked(vma, pmdp, haddr, freeze);
  yield* spin_unlock(ptl);
  yield* mmu_notifier_invalidate_range_end(range);
}

/**
 * split_huge_pmd(vma, pmd, address): splits the PMD if it is a huge leaf or a swap PMD (a
 * lockless check first, as the kernel's macro does). For zap of partial ranges, mprotect, fork.
 * @kernel include/linux/huge_mm.h:split_huge_pmd (all versions)
 * Locking: as __split_huge_pmd.
 */
export function* split_huge_pmd(vma: vm_area_struct, pmdp: pmd_t_ptr, address: number): Op<void> {
  const v = yield* pmdp_get_lockless(pmdp);
  if (is_swap_pmd(v) || pmd_trans_huge(v)) yield* __split_huge_pmd(vma, pmdp, address, false);
}

/**
 * __split_huge_pud(vma, pud, address): removes a huge PUD leaf (DAX and special pfnmap
 * leaves alike: they are refaulted on smaller levels) inside an MMU_NOTIFY_CLEAR range.
 * @kernel mm/huge_memory.c:__split_huge_pud, __split_huge_pud_locked (all versions)
 * Locking: mmap_lock held; takes the PUD lock.
 */
export function* __split_huge_pud(vma: vm_area_struct, pudp: pud_t_ptr, address: number): Op<void> {
  const haddr = Math.floor(address / PUD_SIZE) * PUD_SIZE;
  const range = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, vma.vm_mm, haddr, haddr + PUD_SIZE);
  yield* mmu_notifier_invalidate_range_start(range);
  const ptl = yield* pud_lock(vma.vm_mm, pudp);
  if (pmd_trans_huge(pudp_get(pudp))) {
    yield* pmdp_huge_get_and_clear(vma.vm_mm, haddr, pudp);
    pfnsan_special_unmap_huge(vma.vm_mm, haddr, PUD_SIZE);
  }
  yield* spin_unlock(ptl);
  yield* mmu_notifier_invalidate_range_end(range);
}

/**
 * __pmd_trans_huge_lock(pmd, vma): takes the PMD lock if the PMD is a huge leaf or a swap
 * PMD (a PMD migration entry).
 * @kernel mm/huge_memory.c:__pmd_trans_huge_lock (all versions)
 * Return: the held lock, or null (neither; lock not held).
 */
function* __pmd_trans_huge_lock(pmdp: pmd_t_ptr, vma: vm_area_struct) {
  const ptl = yield* pmd_lock(vma.vm_mm, pmdp);
  const v = ptep_get(pmdp);
  if (is_swap_pmd(v) || pmd_trans_huge(v)) return ptl;
  yield* spin_unlock(ptl);
  return null;
}

/** The part of struct mmu_gather (mm/memory.zap.ts) zap_huge_pmd uses. */
export interface mmu_gather_like {
  readonly mm: mm_struct;
  start: number;
  end: number;
  readonly pages: { page: page; nr: number; delay_rmap: boolean }[];
}

/**
 * zap_huge_pmd(tlb, vma, pmd, addr): clears a PMD leaf for zap/munmap. Special pfnmap
 * leaves are just cleared; the huge zero leaf frees its deposited table; a THP loses its
 * PMD mapping, its deposited table (anonymous) and its RSS, and the leaf's reference. A
 * PMD migration entry loses the deposited table and the RSS only (flush_needed = 0: no
 * rmap, no reference, nothing gathered).
 * @kernel mm/huge_memory.c:zap_huge_pmd (all versions; pfn_swap_entry_folio v6.9+,
 *   migration_entry_to_page before)
 * Locking: mmap_lock or the rmap locks held; takes the PMD lock.
 * Return: true if a huge leaf was zapped, false if the PMD was not huge (caller walks PTEs).
 * The leaf's folio reference goes into the mmu_gather (tlb_remove_page_size) and is
 * dropped after its TLB flush; with tlb null (no gather) it is dropped at once.
 */
export function* zap_huge_pmd(
  tlb: mmu_gather_like | null,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
): Op<boolean> {
  const mm = tlb?.mm ?? vma.vm_mm;
  const ptl = yield* __pmd_trans_huge_lock(pmdp, vma);
  if (!ptl) return false;
  const orig = yield* pmdp_huge_get_and_clear(mm, addr, pmdp);
  pfnsan_special_unmap_huge(mm, addr, PMD_SIZE);
  if (vma_is_special_huge(vma)) {
    yield* spin_unlock(ptl);
    return true;
  }
  if (is_huge_zero_pmd(orig)) {
    zap_deposited_table(mm, pmdp);
    yield* spin_unlock(ptl);
    return true;
  }
  let f: folio;
  let flush_needed = true;
  if (pmd_present(orig)) {
    const pg = pte_pfn(orig) as page;
    f = page_folio(pg);
    folio_remove_rmap_pmd(f, vma);
    WARN_ON_ONCE(folio_mapcount(f) < 0);
    VM_BUG_ON(!PageHead(pg), 'VM_BUG_ON_PAGE(!PageHead(page), page)');
  } else {
    // thp_migration_supported(): a PMD migration entry. The migration holds the folio.
    VM_BUG_ON(!is_pmd_migration_entry(orig), 'VM_BUG_ON(!is_pmd_migration_entry(orig_pmd))');
    f = pfn_swap_entry_folio(pmd_to_swp_entry(orig));
    flush_needed = false;
  }
  if (folio_test_anon(f)) {
    zap_deposited_table(mm, pmdp);
    add_mm_counter(mm, MM_ANONPAGES, -HPAGE_PMD_NR);
  } else {
    add_mm_counter(mm, mm_counter_file(f), -HPAGE_PMD_NR);
  }
  yield* spin_unlock(ptl);
  if (!flush_needed) return true;
  if (tlb) {
    // tlb_remove_pmd_tlb_entry + tlb_remove_page_size(tlb, &folio->page, HPAGE_PMD_SIZE)
    tlb.start = Math.min(tlb.start, addr);
    tlb.end = Math.max(tlb.end, addr + PMD_SIZE);
    tlb.pages.push({ page: f as number as page, nr: 1, delay_rmap: false });
  } else {
    folio_put(f);
  }
  return true;
}

/**
 * copy_huge_pmd(dst_mm, src_mm, dst_pmd, src_pmd, addr, dst_vma, src_vma): fork of a PMD
 * leaf. A special pfnmap leaf (v6.12+, "mm/fork: accept huge pfnmap entries") is copied
 * as it is, made old. Non-anonymous VMAs are skipped (refaulted). An anonymous THP or the
 * huge zero page is shared: the child gets a deposited table, both leaves are
 * write-protected and old, the THP's PMD mapcount, reference and the child's RSS grow,
 * and its pages lose PageAnonExclusive. A PMD migration entry is copied as it is, after a
 * writable (v5.19+: any non-readable) entry of the parent was made readable: the child's
 * RSS grows, the folio's references and mappings do not (remove_migration_ptes maps the
 * new folio in both).
 * @kernel mm/huge_memory.c:copy_huge_pmd (all versions)
 * Locking: mmap_lock held for write on both mms; takes both PMD locks.
 * Return: 0, -ENOMEM (no table), or -EAGAIN (the PMD is no longer huge: copy PTEs).
 * A THP that may be DMA-pinned (folio_needs_cow_for_dma; v5.19+ only when exclusive) is
 * not shared: the parent's PMD is split and -EAGAIN returned, so copy_pte_range copies
 * its 4 KiB pages for the child (v5.9+, O-9).
 * Left out: soft-dirty and uffd-wp swap bits.
 */
export function* copy_huge_pmd(
  dst_mm: mm_struct,
  src_mm: mm_struct,
  dst_pmd: pmd_t_ptr,
  src_pmd: pmd_t_ptr,
  addr: number,
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
): Op<number> {
  let pmd = yield* pmdp_get_lockless(src_pmd);
  if (since(6, 12) && pmd_trans_huge(pmd) && pmd_special(pmd) && !is_huge_zero_pmd(pmd)) {
    const dst_ptl = yield* pmd_lock(dst_mm, dst_pmd);
    const src_ptl = pmd_lockptr(src_mm, src_pmd);
    if (src_ptl !== dst_ptl) yield* spin_lock(src_ptl);
    VM_WARN_ON_ONCE(is_cow_mapping(src_vma.vm_flags) && (pte_flags(pmd) & _PAGE_RW) !== 0);
    yield* set_pmd_at(dst_mm, addr, dst_pmd, pte_mkold(pmd));
    if (src_ptl !== dst_ptl) yield* spin_unlock(src_ptl);
    yield* spin_unlock(dst_ptl);
    return 0;
  }
  // Skip if it can be refilled on fault.
  if (!vma_is_anonymous(dst_vma)) return 0;
  const pgtable = pagetable_alloc(dst_mm, 'pte');
  if (pgtable === null) return -12; // -ENOMEM
  const dst_ptl = yield* pmd_lock(dst_mm, dst_pmd);
  const src_ptl = pmd_lockptr(src_mm, src_pmd);
  if (src_ptl !== dst_ptl) yield* spin_lock(src_ptl);
  let ret = -11; // -EAGAIN
  pmd = ptep_get(src_pmd);
  if (is_swap_pmd(pmd)) {
    // CONFIG_ARCH_ENABLE_THP_MIGRATION: a PMD migration entry.
    let entry: swp_entry_t = pmd_to_swp_entry(pmd);
    VM_BUG_ON(!is_pmd_migration_entry(pmd), 'VM_BUG_ON(!is_pmd_migration_entry(pmd))');
    // 6c287605fd56 (v5.19): "!is_readable" (readable-exclusive too); before, writable only.
    const make_read = since(5, 19)
      ? !is_readable_migration_entry(entry)
      : is_writable_migration_entry(entry);
    if (make_read) {
      entry = make_readable_migration_entry(swp_offset(entry));
      pmd = swp_entry_to_pmd(entry);
      yield* set_pmd_at(src_mm, addr, src_pmd, pmd);
    }
    add_mm_counter(dst_mm, MM_ANONPAGES, HPAGE_PMD_NR);
    pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
    yield* set_pmd_at(dst_mm, addr, dst_pmd, pmd);
    ret = 0;
  } else if (!pmd_trans_huge(pmd) || !(pte_flags(pmd) & _PAGE_PRESENT)) {
    pagetable_free(dst_mm, pgtable);
  } else {
    if (is_huge_zero_pmd(pmd)) {
      // mm_get_huge_zero_folio() only takes the mm's reference here.
      yield* mm_get_huge_zero_folio(dst_mm);
    } else {
      const pg = pte_pfn(pmd) as page;
      const f = page_folio(pg);
      VM_BUG_ON(!PageHead(pg), 'VM_BUG_ON_PAGE(!PageHead(src_page), src_page)');
      folio_get(f);
      // A THP the parent may have pinned is not shared with the child: split the parent's
      // PMD and let copy_pte_range copy its 4 KiB pages (O-9). v5.9+ (d042035eaeaf "mm/thp:
      // Split huge pmds/puds if they're pinned when fork()"); from v5.19 only an exclusive
      // THP (page_try_dup_anon_rmap / folio_try_dup_anon_rmap_pmd -EBUSY).
      if (
        since(5, 9) &&
        (!since(5, 19) || PageAnonExclusive(pg)) &&
        folio_needs_cow_for_dma(src_vma, f)
      ) {
        // Page maybe pinned: split and retry the fault on PTEs.
        folio_put(f);
        pagetable_free(dst_mm, pgtable);
        if (src_ptl !== dst_ptl) yield* spin_unlock(src_ptl);
        yield* spin_unlock(dst_ptl);
        yield* __split_huge_pmd(src_vma, src_pmd, addr, false);
        return -11; // -EAGAIN
      }
      // folio_try_dup_anon_rmap_pmd (unpinned case): one more PMD mapping, not exclusive.
      folio_add_anon_rmap_pmd(f, dst_vma, RMAP_NONE);
      add_mm_counter(dst_mm, MM_ANONPAGES, HPAGE_PMD_NR);
    }
    pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
    // pmdp_set_wrprotect(src_mm, addr, src_pmd)
    yield { obj: slotName(src_pmd), kind: 'write', what: 'pmdp_set_wrprotect' };
    src_pmd.t.entries[src_pmd.i] = __pte(pte_pfn(pmd), pte_flags(pmd) & ~_PAGE_RW);
    pmd = __pte(pte_pfn(pmd), pte_flags(pmd) & ~(_PAGE_RW | _PAGE_ACCESSED));
    yield* set_pmd_at(dst_mm, addr, dst_pmd, pmd);
    ret = 0;
  }
  if (src_ptl !== dst_ptl) yield* spin_unlock(src_ptl);
  yield* spin_unlock(dst_ptl);
  return ret;
}

/**
 * split_huge_pmd_address(vma, address, freeze): splits the PMD-mapped THP (or PMD
 * migration entry) covering address, if there is one.
 * @kernel mm/huge_memory.c:split_huge_pmd_address (all versions)
 * Locking: mmap_lock held.
 */
export function* split_huge_pmd_address(
  vma: vm_area_struct,
  address: number,
  freeze: boolean,
): Op<void> {
  const leaf = walkToLeaf(vma.vm_mm, address);
  if (!leaf || leaf.level !== 'pmd') {
    // A PMD migration entry is not a leaf to walkToLeaf: look at the slot itself.
    const pmdp = pmdSlot(vma, address);
    if (pmdp && is_pmd_migration_entry(ptep_get(pmdp)))
      yield* __split_huge_pmd(vma, pmdp, address, freeze);
    return;
  }
  yield* __split_huge_pmd(vma, leaf.ptr, address, freeze);
}

function pmdSlot(vma: vm_area_struct, address: number): pmd_t_ptr | null {
  const pgdp = pgd_offset(vma.vm_mm, address);
  const pudT = entry_table(pgdp);
  if (!pudT) return null;
  const pmdT = entry_table({ t: pudT, i: Math.floor(address / PUD_SIZE) % 512 });
  if (!pmdT) return null;
  return { t: pmdT, i: Math.floor(address / PMD_SIZE) % 512 };
}

/** split_huge_pmd_if_needed(vma, address): an unaligned boundary inside a PMD range. */
function* split_huge_pmd_if_needed(vma: vm_area_struct, address: number): Op<void> {
  const lo = Math.floor(address / PMD_SIZE) * PMD_SIZE;
  const hi = lo + PMD_SIZE;
  if (address % PMD_SIZE !== 0 && lo >= vma.vm_start && hi <= vma.vm_end) {
    yield* split_huge_pmd_address(vma, address, false);
  }
}

/**
 * vma_adjust_trans_huge(vma, start, end, adjust_next): before a VMA's bounds change,
 * splits huge PMDs that the new start or end would cut through.
 * @kernel mm/huge_memory.c:vma_adjust_trans_huge (all versions)
 * Locking: mmap_lock held for write.
 */
export function* vma_adjust_trans_huge(
  vma: vm_area_struct,
  start: number,
  end: number,
  adjust_next: number,
): Op<void> {
  yield* split_huge_pmd_if_needed(vma, start);
  yield* split_huge_pmd_if_needed(vma, end);
  void adjust_next;
}
