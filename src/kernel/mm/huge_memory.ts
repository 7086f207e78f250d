/**
 * Huge PFN mappings and the huge zero folio (mm/huge_memory.c, the parts PFN-mapping
 * drivers use): vmf_insert_pfn_pmd / vmf_insert_pfn_pud install one PMD (2 MiB) or PUD
 * (1 GiB) leaf for a ->huge_fault handler (R-INS-5), and the shared huge zero folio that
 * anonymous read faults map.
 *
 * Eras:
 * - v5.7-v6.3: the _prot variants (vmf_insert_pfn_pmd_prot / _pud_prot), pfn_t
 *   arguments, devmap leaves for pfn_t_devmap pfns, no special bit on huge leaves;
 *   removed by 7b806d229ef1 "mm: remove vmf_insert_pfn_xxx_prot() for huge page-table
 *   entries" (v6.4);
 * - v6.4-v6.15: insert_pfn_pud() ignored the cache mode track_pfn_insert() computed and
 *   used vma->vm_page_prot, until 09fefdca80ae "mm/huge_memory: don't ignore queried
 *   cachemode in vmf_insert_pfn_pud()" (v6.16);
 * - v6.12+: huge PFN leaves are special (pmd_mkspecial/pud_mkspecial, huge pfnmap series
 *   "mm: mark special bits for huge pfn mappings when inject");
 * - v6.16: pfnmap_setup_cachemode_pfn() replaces track_pfn_insert() (f8e97613fed2 series);
 * - v6.17: pfn_t and devmap are gone (Alistair Popple's "mm: Remove pXX_devmap page table
 *   bit and pfn_t type" series); the pfn is a plain number.
 *
 * A pfn argument may be a pfn_t or a plain number; a number stands for
 * __pfn_to_pfn_t(pfn, PFN_DEV), what PFN-mapping drivers pass. On v6.17+ a pfn_t's flags
 * are ignored (the kernel has no pfn_t there).
 *
 * The PMD/PUD lock is taken by vmf_insert_pfn_pmd/pud around insert_pfn_pmd/pud in every
 * version (the kernel took it inside insert_pfn_pmd/pud until v6.15; the Steps are the
 * same). x86 needs no page-table deposit (arch_needs_pgtable_deposit() is false).
 *
 * The anonymous THP fault paths live in mm/huge_memory.anon.ts.
 *
 * @kernel mm/huge_memory.c (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { BUG_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { lockdep_assert_held, spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import type {
  folio,
  mm_struct,
  pmd_t_ptr,
  pud_t_ptr,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../include/linux/mm_types.js';
import {
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_WRITE,
  is_cow_mapping,
  mm_flags_set,
  mm_flags_test,
} from '../include/linux/mm.js';
import { pfnsan_special_map_huge } from './pfnsan/pfnsan.js';
import { prep_compound_page } from '../include/linux/page-flags.js';
import {
  _PAGE_DEVMAP,
  __pte,
  pte_flags,
  pte_mkdirty,
  pte_mkhuge,
  pte_mkwrite,
  pte_mkyoung,
  pte_pfn,
  pfn_pte,
  type pgprot_t,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_mkspecial,
  pmd_none,
  pmd_present,
  pud_mkspecial,
  pud_none,
} from '../arch/x86/include/asm/pgtable.js';
import {
  pmd_lockptr,
  pmdp_get,
  pud_lockptr,
  pudp_get,
  set_pmd_at,
  set_pud_at,
} from '../include/linux/pgtable.js';
import { folio_put } from '../include/linux/page_ref.js';
import { EEXIST } from '../include/linux/errno.js';
import { alloc_pages, __GFP_MOVABLE, __GFP_ZERO, GFP_TRANSHUGE } from './page_alloc.js';
import { since } from '../version.js';
import {
  __pfn_to_pfn_t,
  PFN_DEV,
  pfn_t_devmap,
  pfn_t_to_pfn,
  type pfn_t,
} from './memory.pfnmap.js';
import {
  pfnmap_setup_cachemode_pfn,
  track_pfn_insert,
  type pgprot_ptr,
} from '../arch/x86/mm/pat/memtype.js';

export const HPAGE_PMD_ORDER = 9;
export const HPAGE_PMD_NR = 512;
export const HPAGE_PMD_SIZE = 2 ** 21;
export const HPAGE_PUD_SIZE = 2 ** 30;
/** PMD_MASK / PUD_MASK as negative numbers (the kernel's unsigned masks). */
export const PMD_MASK = -(2 ** 21);
export const PUD_MASK = -(2 ** 30);
/** MMF_HUGE_ZERO_PAGE: the mm holds a reference on the huge zero folio. */
export const MMF_HUGE_ZERO_PAGE = 23;

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/** The statics of the huge zero folio. */
interface huge_zero_state {
  huge_zero_folio: folio | null;
  /** huge_zero_pfn; -1 stands for ~0UL (no folio). */
  huge_zero_pfn: number;
  huge_zero_refcount: number;
}

function hz(): huge_zero_state {
  const k = currentKernel();
  let st = k.sub.huge_zero as huge_zero_state | undefined;
  if (!st) {
    st = { huge_zero_folio: null, huge_zero_pfn: -1, huge_zero_refcount: 0 };
    k.sub.huge_zero = st;
  }
  return st;
}

/**
 * is_huge_zero_pfn(pfn): pfn lies in the huge zero folio.
 * @kernel include/linux/huge_mm.h:is_huge_zero_pfn (v6.18; the model uses it for all versions)
 * Locking: none (READ_ONCE of huge_zero_pfn).
 */
export function is_huge_zero_pfn(pfn: number): boolean {
  const z = hz().huge_zero_pfn;
  return z !== -1 && z === pfn - (pfn % HPAGE_PMD_NR);
}

/**
 * is_huge_zero_pmd(pmd): a present PMD leaf mapping the huge zero folio.
 * @kernel include/linux/huge_mm.h:is_huge_zero_pmd (all versions)
 */
export function is_huge_zero_pmd(pmd: pteval_t): boolean {
  const z = hz().huge_zero_pfn;
  return pmd_present(pmd) && z !== -1 && z === pte_pfn(pmd);
}

/**
 * is_huge_zero_folio(folio)
 * @kernel include/linux/huge_mm.h:is_huge_zero_folio (v6.8+; is_huge_zero_page before)
 */
export function is_huge_zero_folio(f: folio): boolean {
  return hz().huge_zero_folio === f;
}

/**
 * get_huge_zero_page(): takes a reference on the huge zero folio, allocating it (order
 * 9, zeroed, unmovable: (GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE) on first use;
 * the first allocation leaves the refcount at 2 (one for the shrinker).
 * @kernel mm/huge_memory.c:get_huge_zero_page (all versions)
 * Locking: atomics (each a Step).
 * Return: false when the allocation fails.
 * Model: prep_compound_page marks the folio, as __GFP_COMP would.
 */
function* get_huge_zero_page(): Op<boolean> {
  const st = hz();
  for (;;) {
    yield { obj: 'huge_zero_refcount', kind: 'write', what: 'atomic_inc_not_zero' };
    if (st.huge_zero_refcount !== 0) {
      st.huge_zero_refcount++;
      return true;
    }
    const zero = alloc_pages((GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE, HPAGE_PMD_ORDER);
    if (zero === null) return false;
    prep_compound_page(zero, HPAGE_PMD_ORDER);
    yield { obj: 'huge_zero_folio', kind: 'write', what: 'cmpxchg' };
    if (st.huge_zero_folio !== null) {
      /* another thread won the cmpxchg: drop ours and retry */
      folio_put(zero as number as folio);
      continue;
    }
    st.huge_zero_folio = zero as number as folio;
    st.huge_zero_pfn = zero;
    /* We take additional reference here. It will be put back by shrinker */
    st.huge_zero_refcount = 2;
    return true;
  }
}

/**
 * mm_get_huge_zero_folio(mm): the huge zero folio, with a reference held for mm (taken
 * once per mm, MMF_HUGE_ZERO_PAGE).
 * @kernel mm/huge_memory.c:mm_get_huge_zero_folio (v6.8+; mm_get_huge_zero_page before)
 * Locking: atomics.
 * Return: the folio, or null when it cannot be allocated.
 */
export function* mm_get_huge_zero_folio(mm: mm_struct): Op<folio | null> {
  if (mm_flags_test(MMF_HUGE_ZERO_PAGE, mm)) return hz().huge_zero_folio;
  if (!(yield* get_huge_zero_page())) return null;
  if (mm_flags_test(MMF_HUGE_ZERO_PAGE, mm)) {
    /* test_and_set_bit lost: put_huge_zero_page() */
    BUG_ON(--hz().huge_zero_refcount === 0);
  } else mm_flags_set(MMF_HUGE_ZERO_PAGE, mm);
  return hz().huge_zero_folio;
}

/**
 * mm_put_huge_zero_folio(mm): drops mm's reference at exit.
 * @kernel mm/huge_memory.c:mm_put_huge_zero_folio (v6.8+)
 */
export function mm_put_huge_zero_folio(mm: mm_struct): void {
  if (mm_flags_test(MMF_HUGE_ZERO_PAGE, mm)) BUG_ON(--hz().huge_zero_refcount === 0);
}

/** The pfn_t for an argument: pfn_t as given, a number as __pfn_to_pfn_t(pfn, PFN_DEV). */
function as_pfn_t(pfn: pfn_t | number): pfn_t {
  return typeof pfn === 'number' ? __pfn_to_pfn_t(pfn, PFN_DEV) : pfn;
}

/** pmd_pfn of an argument. */
function pfn_of(pfn: pfn_t | number): number {
  return typeof pfn === 'number' ? pfn : pfn_t_to_pfn(pfn);
}

/** maybe_pmd_mkwrite / maybe_pud_mkwrite */
function maybe_mkwrite(e: pteval_t, vma: vm_area_struct): pteval_t {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(e) : e;
}

/** pmdp_set_access_flags / pudp_set_access_flags on x86: written when changed and dirty. */
function* set_access_flags(
  vma: vm_area_struct,
  addr: number,
  p: pmd_t_ptr,
  entry: pteval_t,
  level: 'pmd' | 'pud',
): Op<boolean> {
  const changed = pmdp_get(p) !== entry;
  if (changed) {
    if (level === 'pmd') yield* set_pmd_at(vma.vm_mm, addr, p, entry);
    else yield* set_pud_at(vma.vm_mm, addr, p, entry);
  }
  return changed;
}

/**
 * insert_pfn_pmd(vma, addr, pmd, pfn, prot, write): installs a PMD leaf for pfn unless
 * the PMD is populated. On a populated PMD a write request with the same pfn makes it
 * young, dirty and (VM_WRITE) writable; a different pfn is a WARN_ON_ONCE unless the PMD
 * maps the huge zero folio; otherwise the PMD is left alone. The new leaf is special
 * (v6.12+) or devmap (pfn_t_devmap, before v6.17); a write request makes it young, dirty
 * and (VM_WRITE) writable.
 * @kernel mm/huge_memory.c:insert_pfn_pmd (v5.7-v6.16; insert_pmd with folio_or_pfn v6.17+)
 * Locking: the PMD lock held (taken inside until v6.15, by the caller after).
 * Return: 0, or -EEXIST when the PMD was populated.
 */
export function* insert_pfn_pmd(
  vma: vm_area_struct,
  addr: number,
  pmd: pmd_t_ptr,
  pfn: pfn_t | number,
  prot: pgprot_t,
  write: boolean,
): Op<number> {
  const mm = vma.vm_mm;
  lockdep_assert_held(pmd_lockptr(mm, pmd));
  const cur = pmdp_get(pmd);
  if (!pmd_none(cur)) {
    if (write) {
      if (pte_pfn(cur) !== pfn_of(pfn)) {
        WARN_ON_ONCE(!is_huge_zero_pmd(cur), 'mm/huge_memory.c:insert_pfn_pmd');
        return -EEXIST;
      }
      let entry = pte_mkyoung(cur);
      entry = maybe_mkwrite(pte_mkdirty(entry), vma);
      yield* set_access_flags(vma, addr, pmd, entry, 'pmd');
    }
    return -EEXIST;
  }
  let entry = pte_mkhuge(pfn_pte(pfn_of(pfn), prot));
  if (!since(6, 17) && pfn_t_devmap(as_pfn_t(pfn)))
    entry = __pte(pte_pfn(entry), pte_flags(entry) | _PAGE_DEVMAP);
  else if (since(6, 12)) entry = pmd_mkspecial(entry);
  if (write) {
    entry = pte_mkyoung(pte_mkdirty(entry));
    entry = maybe_mkwrite(entry, vma);
  }
  yield* set_pmd_at(mm, addr, pmd, entry);
  // pfnsan: a leaf without a reference (not devmap) records its frames' generations.
  if (!(pte_flags(entry) & _PAGE_DEVMAP))
    pfnsan_special_map_huge(mm, addr, pfn_of(pfn), HPAGE_PMD_SIZE);
  return 0;
}

/**
 * vmf_insert_pfn_pmd_prot(vmf, pfn, pgprot, write): installs a PMD leaf for a huge
 * fault (R-INS-5): BUG unless the VMA is PFNMAP or MIXEDMAP (or, with pfn_t, the pfn is
 * devmap), BUG for both, BUG for a COW PFNMAP; the PMD-aligned address outside the VMA
 * is SIGBUS; the cache mode comes from PAT; the leaf is installed by insert_pfn_pmd
 * under the PMD lock.
 * @kernel mm/huge_memory.c:vmf_insert_pfn_pmd_prot (v5.7-v6.3; removed by 7b806d229ef1)
 * Locking: mmap_lock (or the VMA lock) held; takes the PMD lock.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_SIGBUS.
 */
export function* vmf_insert_pfn_pmd_prot(
  vmf: vm_fault,
  pfn: pfn_t | number,
  pgprot: pgprot_t,
  write: boolean,
): Op<vm_fault_t> {
  if (since(6, 4)) absent('vmf_insert_pfn_pmd_prot()', 'removed by 7b806d229ef1, v6.4');
  return yield* __vmf_insert_pfn_pmd(vmf, pfn, pgprot, write);
}

function* __vmf_insert_pfn_pmd(
  vmf: vm_fault,
  pfn: pfn_t | number,
  pgprot: pgprot_t,
  write: boolean,
): Op<vm_fault_t> {
  const addr = vmf.address - (vmf.address % HPAGE_PMD_SIZE);
  const vma = vmf.vma;
  const f = vma.vm_flags;
  const devmap = !since(6, 17) && pfn_t_devmap(as_pfn_t(pfn));
  /*
   * If we had pmd_special, we could avoid all these restrictions,
   * but we need to be consistent with PTEs and architectures that
   * can't support a 'special' bit.
   */
  BUG_ON(!(f & (VM_PFNMAP | VM_MIXEDMAP)) && !devmap);
  BUG_ON((f & (VM_PFNMAP | VM_MIXEDMAP)) === (VM_PFNMAP | VM_MIXEDMAP));
  BUG_ON((f & VM_PFNMAP) !== 0n && is_cow_mapping(f));

  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;

  const prot: pgprot_ptr = { pgprot };
  if (since(6, 16)) pfnmap_setup_cachemode_pfn(pfn_of(pfn), prot);
  else track_pfn_insert(vma, prot, as_pfn_t(pfn));

  const pmdp = vmf.pmd;
  if (!pmdp) throw new Error('vmf_insert_pfn_pmd: vmf->pmd is not set (the fault path sets it)');
  const ptl = pmd_lockptr(vma.vm_mm, pmdp);
  yield* spin_lock(ptl);
  yield* insert_pfn_pmd(vma, addr, pmdp, pfn, prot.pgprot, write);
  yield* spin_unlock(ptl);
  return VM_FAULT_NOPAGE;
}

/**
 * vmf_insert_pfn_pmd(vmf, pfn, write) = vmf_insert_pfn_pmd_prot with vma->vm_page_prot
 * (an inline wrapper up to v6.3, the function itself from v6.4).
 * @kernel mm/huge_memory.c:vmf_insert_pfn_pmd (v5.7+; pfn_t until v6.17)
 * Locking: mmap_lock (or the VMA lock) held; takes the PMD lock.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_SIGBUS.
 */
export function vmf_insert_pfn_pmd(
  vmf: vm_fault,
  pfn: pfn_t | number,
  write: boolean,
): Op<vm_fault_t> {
  return __vmf_insert_pfn_pmd(vmf, pfn, vmf.vma.vm_page_prot, write);
}

/**
 * insert_pfn_pud(vma, addr, pud, pfn, prot, write): installs a PUD leaf unless the PUD
 * is populated; a write request on a populated PUD with the same pfn makes it young,
 * dirty and (VM_WRITE) writable, a different pfn is a WARN_ON_ONCE and nothing changes.
 * The leaf is special from v6.12; devmap before v6.17 for pfn_t_devmap pfns.
 * @kernel mm/huge_memory.c:insert_pfn_pud (v5.7-v6.16; insert_pud v6.17+)
 * Locking: the PUD lock (mm->page_table_lock) held.
 * Return: nothing.
 */
export function* insert_pfn_pud(
  vma: vm_area_struct,
  addr: number,
  pud: pud_t_ptr,
  pfn: pfn_t | number,
  prot: pgprot_t,
  write: boolean,
): Op<void> {
  const mm = vma.vm_mm;
  lockdep_assert_held(pud_lockptr(mm, pud));
  const cur = pudp_get(pud);
  if (!pud_none(cur)) {
    if (write) {
      if (WARN_ON_ONCE(pte_pfn(cur) !== pfn_of(pfn), 'mm/huge_memory.c:insert_pfn_pud')) return;
      let entry = pte_mkyoung(cur);
      entry = maybe_mkwrite(pte_mkdirty(entry), vma);
      yield* set_access_flags(vma, addr, pud, entry, 'pud');
    }
    return;
  }
  let entry = pte_mkhuge(pfn_pte(pfn_of(pfn), prot));
  if (!since(6, 17) && pfn_t_devmap(as_pfn_t(pfn)))
    entry = __pte(pte_pfn(entry), pte_flags(entry) | _PAGE_DEVMAP);
  else if (since(6, 12)) entry = pud_mkspecial(entry);
  if (write) {
    entry = pte_mkyoung(pte_mkdirty(entry));
    entry = maybe_mkwrite(entry, vma);
  }
  yield* set_pud_at(mm, addr, pud, entry);
  if (!(pte_flags(entry) & _PAGE_DEVMAP))
    pfnsan_special_map_huge(mm, addr, pfn_of(pfn), HPAGE_PUD_SIZE);
}

function* __vmf_insert_pfn_pud(
  vmf: vm_fault,
  pfn: pfn_t | number,
  pgprot: pgprot_t,
  write: boolean,
): Op<vm_fault_t> {
  const addr = vmf.address - (vmf.address % HPAGE_PUD_SIZE);
  const vma = vmf.vma;
  const f = vma.vm_flags;
  const devmap = !since(6, 17) && pfn_t_devmap(as_pfn_t(pfn));
  BUG_ON(!(f & (VM_PFNMAP | VM_MIXEDMAP)) && !devmap);
  BUG_ON((f & (VM_PFNMAP | VM_MIXEDMAP)) === (VM_PFNMAP | VM_MIXEDMAP));
  BUG_ON((f & VM_PFNMAP) !== 0n && is_cow_mapping(f));

  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;

  const prot: pgprot_ptr = { pgprot };
  if (since(6, 16)) pfnmap_setup_cachemode_pfn(pfn_of(pfn), prot);
  else track_pfn_insert(vma, prot, as_pfn_t(pfn));
  /*
   * 7b806d229ef1 (v6.4) .. 09fefdca80ae (v6.16): insert_pfn_pud() used
   * vma->vm_page_prot, dropping the cache mode set up above.
   */
  const insprot = since(6, 4) && !since(6, 16) ? vma.vm_page_prot : prot.pgprot;

  const pudp = vmf.pud;
  if (!pudp) throw new Error('vmf_insert_pfn_pud: vmf->pud is not set (the fault path sets it)');
  const ptl = pud_lockptr(vma.vm_mm, pudp);
  yield* spin_lock(ptl);
  yield* insert_pfn_pud(vma, addr, pudp, pfn, insprot, write);
  yield* spin_unlock(ptl);
  return VM_FAULT_NOPAGE;
}

/**
 * vmf_insert_pfn_pud_prot(vmf, pfn, pgprot, write): as vmf_insert_pfn_pmd_prot, for a
 * PUD leaf (1 GiB).
 * @kernel mm/huge_memory.c:vmf_insert_pfn_pud_prot (v5.7-v6.3; removed by 7b806d229ef1)
 * Locking: mmap_lock (or the VMA lock) held; takes the PUD lock.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_SIGBUS.
 */
export function* vmf_insert_pfn_pud_prot(
  vmf: vm_fault,
  pfn: pfn_t | number,
  pgprot: pgprot_t,
  write: boolean,
): Op<vm_fault_t> {
  if (since(6, 4)) absent('vmf_insert_pfn_pud_prot()', 'removed by 7b806d229ef1, v6.4');
  return yield* __vmf_insert_pfn_pud(vmf, pfn, pgprot, write);
}

/**
 * vmf_insert_pfn_pud(vmf, pfn, write): vmf_insert_pfn_pud_prot with vm_page_prot (see
 * the file comment for the v6.4-v6.15 cache-mode loss).
 * @kernel mm/huge_memory.c:vmf_insert_pfn_pud (v5.7+; pfn_t until v6.17)
 * Locking: mmap_lock (or the VMA lock) held; takes the PUD lock.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_SIGBUS.
 */
export function vmf_insert_pfn_pud(
  vmf: vm_fault,
  pfn: pfn_t | number,
  write: boolean,
): Op<vm_fault_t> {
  return __vmf_insert_pfn_pud(vmf, pfn, vmf.vma.vm_page_prot, write);
}
