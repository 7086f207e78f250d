/**
 * mprotect(2): the range checks and per-VMA permission rules of do_mprotect_pkey, the
 * VMA change of mprotect_fixup (split at the edges, new vm_flags, vm_page_prot), and
 * change_protection, which rewrites every present entry of the range with the new
 * protection inside MMU_NOTIFY_PROTECTION_VMA.
 *
 * Rules the model follows:
 * - a permission the VMA may not have is -EACCES: VM_WRITE needs VM_MAYWRITE (a
 *   MAP_SHARED mapping of a read-only fd has neither VM_SHARED nor VM_MAYWRITE), VM_READ
 *   VM_MAYREAD, VM_EXEC VM_MAYEXEC; under MDWE (v6.3+) write+exec or new exec is -EACCES;
 * - holes: the range must start inside a VMA and be covered without gaps, else -ENOMEM
 *   (VMAs before the gap keep their new protection);
 * - entries keep their pfn, special bit, cache mode, dirty and young bits (pte_modify);
 *   the write bit follows the new vm_page_prot, which drops write for shared mappings
 *   with write-notify and for private (COW) mappings, except that entries may be made
 *   writable at once: up to v5.15 dirty entries of a write-notify shared mapping
 *   (MM_CP_DIRTY_ACCT); from v6.1 (MM_CP_TRY_CHANGE_WRITABLE) dirty entries of a shared
 *   mapping and exclusive anonymous pages of a private one (v6.1 also required those to
 *   be dirty);
 * - VM_PFNMAP|VM_MIXEDMAP ranges made PROT_NONE are checked with pfn_modify_allowed
 *   (L1TF) first: -EACCES.
 * - migration entries (PTE and PMD): a writable one becomes readable (readable-exclusive
 *   for an anonymous folio, v5.19+) whatever the new protection ("A protection check is
 *   difficult so just be safe and disable write"), so remove_migration_ptes never
 *   restores a writable entry the VMA no longer allows; other entries stay as they are.
 *
 * Left out: protection keys (pkey must be -1), READ_IMPLIES_EXEC, PROT_GROWSUP (x86 has
 * no VM_GROWSUP), vm_ops->mprotect (SGX), security_file_mprotect, commit accounting and
 * RLIMIT_DATA (may_expand_vm), mseal (-EPERM, v6.10+), VMA merging, NUMA hinting
 * (prot_numa), userfaultfd-wp, soft-dirty (CONFIG_MEM_SOFT_DIRTY off), hugetlb, the
 * populate of a VM_LOCKED private mapping made writable, arch_validate_flags (shadow
 * stacks).
 *
 * @kernel mm/mprotect.c (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import type {
  entry_ptr,
  folio,
  mm_struct,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { MMF_HAS_MDWE } from '../include/linux/mm_types.js';
import {
  VM_ACCESS_FLAGS,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_NORESERVE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_SHARED,
  VM_SOFTDIRTY,
  VM_WRITE,
  mm_flags_test,
  vma_is_anonymous,
} from '../include/linux/mm.js';
import { EACCES, EINVAL, ENOMEM } from '../include/linux/errno.js';
import {
  _PAGE_ACCESSED,
  _PAGE_CACHE_MASK,
  _PAGE_DEVMAP,
  _PAGE_DIRTY,
  _PAGE_PAT_LARGE,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  __pte,
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PGDIR_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  pte_dirty,
  pte_flags,
  pte_mkwrite,
  pte_none,
  pte_pfn,
  pte_present,
  pte_protnone,
  pte_write,
  native_pte_val,
  type pgprot_t,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pmd_none,
  pmd_leaf,
  pud_leaf,
  pud_none,
  pgd_none,
  pgd_bad,
  pud_bad,
  pmd_bad,
} from '../arch/x86/include/asm/pgtable.js';
import {
  entry_table,
  p4d_offset,
  pgd_offset,
  pmd_lock,
  pmdp_get_lockless,
  pmdp_huge_get_and_clear,
  pmd_index,
  pte_offset_map_lock,
  pte_unmap_unlock,
  ptep_get,
  ptep_get_and_clear,
  pud_index,
  pud_lock,
  pudp_get_lockless,
  set_pmd_at,
  set_pte_at,
  set_pud_at,
  slotName,
  walkToLeaf,
} from '../include/linux/pgtable.js';
import { spin_unlock } from '../include/linux/spinlock.js';
import { mmap_write_lock, mmap_write_unlock } from '../include/linux/mmap_lock.js';
import { BUG_ON, VM_BUG_ON, WARN_ON_ONCE } from '../kernel/panic.js';
import { pr_err } from '../kernel/printk.js';
import { PageAnon, PageAnonExclusive, folio_test_anon } from '../include/linux/page-flags.js';
import {
  is_pmd_migration_entry,
  is_swap_pmd,
  is_swap_pte,
  is_writable_migration_entry,
  make_readable_exclusive_migration_entry,
  make_readable_migration_entry,
  pfn_swap_entry_folio,
  pmd_to_swp_entry,
  pte_to_swp_entry,
  swp_entry_to_pmd,
  swp_entry_to_pte,
  swp_offset,
  type swp_entry_t,
} from '../include/linux/swapops.js';
import { since } from '../version.js';
import {
  MMU_NOTIFY_PROTECTION_VMA,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
  type mmu_notifier_range,
} from './mmu_notifier.js';
import {
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  calc_vm_prot_bits,
  split_vma,
  vm_get_page_prot,
  vma_set_page_prot,
  vma_wants_writenotify,
} from './mmap.js';
import { find_vma } from './vma.js';
import {
  addr_end,
  tlb_finish_mmu,
  tlb_gather_mmu,
  HPAGE_PMD_SIZE,
  HPAGE_PUD_SIZE,
  type mmu_gather,
} from './memory.zap.js';
import { vm_normal_page, vm_normal_page_pmd } from './memory.normal.js';
import { __split_huge_pmd, __split_huge_pud } from './huge_memory.anon.js';
import { pfn_modify_allowed } from '../arch/x86/mm/pat/memtype.js';
import { hugetlb_change_protection, is_vm_hugetlb_page } from './hugetlb.js';

export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;

/** MM_CP_* (include/linux/mm.h): change_protection flags. */
export const MM_CP_TRY_CHANGE_WRITABLE = 1 << 0;
/** ≤ v6.0 name of bit 0: MM_CP_DIRTY_ACCT. */
export const MM_CP_DIRTY_ACCT = 1 << 0;
export const MM_CP_PROT_NUMA = 1 << 1;

/**
 * pte_modify(pte, newprot): the entry with newprot's access bits and its own pfn, cache
 * mode (PCD/PWT/PAT), special, devmap, dirty and young bits (_PAGE_CHG_MASK).
 * @kernel arch/x86/include/asm/pgtable.h:pte_modify (all versions; _PAGE_PAT in the mask
 *   since v6.0)
 * Model: lives here with its only callers.
 */
export function pte_modify(pte: pteval_t, newprot: pgprot_t): pteval_t {
  const chg = _PAGE_CACHE_MASK | _PAGE_SPECIAL | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_DEVMAP;
  return __pte(pte_pfn(pte), (pte_flags(pte) & chg) | (newprot & ~chg));
}

/**
 * pmd_modify(pmd, newprot): as pte_modify for a huge leaf: PSE and the large PAT bit are
 * kept too (_HPAGE_CHG_MASK).
 * @kernel arch/x86/include/asm/pgtable.h:pmd_modify, pud_modify (pud_modify v6.12+)
 */
export function pmd_modify(pmd: pteval_t, newprot: pgprot_t): pteval_t {
  const chg =
    0x18 /* PCD|PWT */ |
    _PAGE_PSE |
    _PAGE_PAT_LARGE |
    _PAGE_SPECIAL |
    _PAGE_ACCESSED |
    _PAGE_DIRTY |
    _PAGE_DEVMAP;
  return __pte(pte_pfn(pmd), (pte_flags(pmd) & chg) | (newprot & ~chg));
}

/**
 * vma_wants_manual_pte_write_upgrade(vma): whether change_protection may make entries
 * writable itself: shared mappings that want write-notify, private writable mappings.
 * @kernel include/linux/mm.h:vma_wants_manual_pte_write_upgrade (v6.1+)
 */
export function vma_wants_manual_pte_write_upgrade(vma: vm_area_struct): boolean {
  if (vma.vm_flags & VM_SHARED) return vma_wants_writenotify(vma, vma.vm_page_prot);
  return (vma.vm_flags & VM_WRITE) !== 0n;
}

/**
 * can_change_pte_writable(vma, addr, pte): a read-only entry of a writable VMA may be
 * made writable now: a private mapping's exclusive anonymous page (the write fault
 * would reuse it), or a shared mapping's dirty entry (the FS was already notified).
 * v6.1 required every such entry to be dirty; "mm/mprotect: allow clean exclusive anon
 * pages to be writable" (v6.2) dropped that for anonymous pages.
 * @kernel mm/mprotect.c:can_change_pte_writable (v6.1+)
 * Locking: the PTL held.
 */
export function can_change_pte_writable(vma: vm_area_struct, addr: number, pte: pteval_t): boolean {
  if (WARN_ON_ONCE(!(vma.vm_flags & VM_WRITE))) return false;
  // Don't touch entries that are not even readable.
  if (pte_protnone(pte)) return false;
  if (!since(6, 2) && !pte_dirty(pte)) return false;
  if (!(vma.vm_flags & VM_SHARED)) {
    const p = vm_normal_page(vma, addr, pte);
    return p !== null && PageAnon(p) && PageAnonExclusive(p);
  }
  return pte_dirty(pte);
}

/**
 * The read-only kind a writable migration entry becomes in mprotect: readable-exclusive
 * for an anonymous folio (v5.19+, 6c287605fd56), readable otherwise; the offset, with its
 * A/D bits, is kept.
 * @kernel mm/mprotect.c:change_pte_range, mm/huge_memory.c:change_huge_pmd (the
 *   is_writable_migration_entry branch; make_migration_entry_read before v5.14)
 */
function make_readable_migration_entry_for(f: folio, entry: swp_entry_t): swp_entry_t {
  if (since(5, 19) && folio_test_anon(f))
    return make_readable_exclusive_migration_entry(swp_offset(entry));
  return make_readable_migration_entry(swp_offset(entry));
}

/**
 * change_pte_range(tlb, vma, pmd, addr, end, newprot, cp_flags): rewrites each present
 * PTE under the table's lock: ptep_modify_prot_start (the entry is cleared, so a
 * lockless reader may see it empty), pte_modify, the optional write upgrade, commit. A
 * writable migration entry becomes a read-only one (counted as changed).
 * @kernel mm/mprotect.c:change_pte_range (v5.7+)
 * Locking: takes and releases the PTE table's lock.
 * Return: entries changed, or -EAGAIN when the table went away before the lock.
 */
function* change_pte_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
  end: number,
  newprot: pgprot_t,
  cp_flags: number,
): Op<number> {
  const mm = vma.vm_mm;
  let pages = 0;
  const r = yield* pte_offset_map_lock(mm, pmdp, addr);
  if (!r) return -11; // -EAGAIN
  const [start_pte, ptl] = r;
  let i = start_pte.i;
  do {
    const ptep: pte_t_ptr = { t: start_pte.t, i };
    const oldpte = ptep_get(ptep);
    if (pte_present(oldpte)) {
      // ptep_modify_prot_start(): get and clear.
      yield* ptep_get_and_clear(mm, addr, ptep, 'ptep_modify_prot_start');
      let ptent = pte_modify(oldpte, newprot);
      if (since(6, 1)) {
        if (
          cp_flags & MM_CP_TRY_CHANGE_WRITABLE &&
          !pte_write(ptent) &&
          can_change_pte_writable(vma, addr, ptent)
        )
          ptent = pte_mkwrite(ptent);
      } else if (
        cp_flags & MM_CP_DIRTY_ACCT &&
        pte_dirty(ptent) &&
        !(vma.vm_flags & VM_SOFTDIRTY)
      ) {
        // Avoid taking write faults for known dirty pages.
        ptent = pte_mkwrite(ptent);
      }
      yield* set_pte_at(mm, addr, ptep, ptent, 'ptep_modify_prot_commit');
      tlb.start = Math.min(tlb.start, addr);
      tlb.end = Math.max(tlb.end, addr + PAGE_SIZE);
      pages++;
    } else if (is_swap_pte(oldpte)) {
      let entry = pte_to_swp_entry(oldpte);
      let newpte: pteval_t;
      if (is_writable_migration_entry(entry)) {
        // A protection check is difficult so just be safe and disable write.
        entry = make_readable_migration_entry_for(pfn_swap_entry_folio(entry), entry);
        newpte = swp_entry_to_pte(entry);
      } else {
        newpte = oldpte;
      }
      if (newpte !== oldpte) {
        yield* set_pte_at(mm, addr, ptep, newpte);
        pages++;
      }
    } else {
      // It must be an none page, or what else?..
      WARN_ON_ONCE(!pte_none(oldpte));
    }
  } while (((addr += PAGE_SIZE), i++, addr !== end));
  yield* pte_unmap_unlock(start_pte, ptl);
  return pages;
}

/**
 * can_change_pmd_writable(vma, addr, pmd): change_pte_range's write upgrade for a PMD
 * leaf: an exclusive anonymous THP, or a dirty leaf of a shared mapping.
 * @kernel mm/huge_memory.c:can_change_pmd_writable (v6.1+)
 */
function can_change_pmd_writable(vma: vm_area_struct, addr: number, pmd: pteval_t): boolean {
  if (WARN_ON_ONCE(!(vma.vm_flags & VM_WRITE))) return false;
  if (pte_protnone(pmd)) return false;
  if (!since(6, 2) && !pte_dirty(pmd)) return false;
  if (!(vma.vm_flags & VM_SHARED)) {
    const p = vm_normal_page_pmd(vma, addr, pmd);
    return p !== null && PageAnon(p) && PageAnonExclusive(p);
  }
  return pte_dirty(pmd);
}

/**
 * change_huge_pmd(tlb, vma, pmd, addr, newprot, cp_flags): a PMD leaf covering the whole
 * span gets the new protection under the PMD lock; the entry is invalidated (not
 * cleared) first, so it never reads as none. Special (pfnmap) leaves keep their pfn and
 * cache mode; THP leaves keep their folio (no refcount or mapping change). A PMD
 * migration entry that is writable becomes read-only, nothing else.
 * @kernel mm/huge_memory.c:change_huge_pmd (v5.7+)
 * Locking: takes and releases the PMD lock.
 * Return: HPAGE_PMD_NR when changed, 1 for a migration entry (handled, no TLB flush),
 *   0 when no longer a leaf.
 * Model: lives here with its only caller; prot_numa and uffd-wp left out.
 */
export function* change_huge_pmd(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pmdp: pmd_t_ptr,
  addr: number,
  newprot: pgprot_t,
  cp_flags: number,
): Op<number> {
  const mm = vma.vm_mm;
  // __pmd_trans_huge_lock(): a huge leaf or a swap PMD.
  const ptl = yield* pmd_lock(mm, pmdp);
  const cur = ptep_get(pmdp);
  if (is_swap_pmd(cur)) {
    // CONFIG_ARCH_ENABLE_THP_MIGRATION: a PMD migration entry.
    let entry = pmd_to_swp_entry(cur);
    VM_BUG_ON(!is_pmd_migration_entry(cur), 'VM_BUG_ON(!is_pmd_migration_entry(*pmd))');
    let newpmd = cur;
    if (is_writable_migration_entry(entry)) {
      // A protection check is difficult so just be safe and disable write.
      entry = make_readable_migration_entry_for(pfn_swap_entry_folio(entry), entry);
      newpmd = swp_entry_to_pmd(entry);
    }
    if (newpmd !== cur) yield* set_pmd_at(mm, addr, pmdp, newpmd);
    yield* spin_unlock(ptl);
    return 1;
  }
  if (!pmd_leaf(cur)) {
    yield* spin_unlock(ptl);
    return 0;
  }
  // pmdp_invalidate(_ad): not present, still huge.
  yield { obj: slotName(pmdp), kind: 'write', what: 'pmdp_invalidate' };
  pmdp.t.entries[pmdp.i] = __pte(pte_pfn(cur), pte_flags(cur) & ~(_PAGE_PRESENT | _PAGE_PROTNONE));
  let entry = pmd_modify(cur, newprot);
  if (since(6, 1)) {
    if (
      cp_flags & MM_CP_TRY_CHANGE_WRITABLE &&
      !pte_write(entry) &&
      can_change_pmd_writable(vma, addr, entry)
    )
      entry = pte_mkwrite(entry);
  }
  yield* set_pmd_at(mm, addr, pmdp, entry);
  tlb.start = Math.min(tlb.start, addr);
  tlb.end = Math.max(tlb.end, addr + HPAGE_PMD_SIZE);
  yield* spin_unlock(ptl);
  return HPAGE_PMD_NR;
}

/**
 * change_huge_pud(tlb, vma, pud, addr, newprot, cp_flags): as change_huge_pmd for a
 * pfnmap PUD leaf (v6.12+, "mm/mprotect: fix dax pud handlings").
 * @kernel mm/huge_memory.c:change_huge_pud (v6.12+)
 * Locking: takes and releases mm->page_table_lock.
 * Return: HPAGE_PUD_NR when changed, 0 when no longer a leaf.
 */
function* change_huge_pud(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pudp: pud_t_ptr,
  addr: number,
  newprot: pgprot_t,
): Op<number> {
  const mm = vma.vm_mm;
  const ptl = yield* pud_lock(mm, pudp);
  const cur = ptep_get(pudp);
  if (!pud_leaf(cur)) {
    yield* spin_unlock(ptl);
    return 0;
  }
  // pudp_invalidate(): can't clear the PUD or it can race with concurrent zapping.
  yield { obj: slotName(pudp), kind: 'write', what: 'pudp_invalidate' };
  pudp.t.entries[pudp.i] = __pte(pte_pfn(cur), pte_flags(cur) & ~(_PAGE_PRESENT | _PAGE_PROTNONE));
  yield* set_pud_at(mm, addr, pudp, pmd_modify(cur, newprot));
  tlb.start = Math.min(tlb.start, addr);
  tlb.end = Math.max(tlb.end, addr + HPAGE_PUD_SIZE);
  yield* spin_unlock(ptl);
  return 512 * 512;
}

/** pmd_none_or_clear_bad / pud_ / pgd_ (see memory.zap.ts). */
function* none_or_clear_bad(
  p: entry_ptr,
  level: 'pgd' | 'pud' | 'pmd',
  mm: mm_struct,
  addr: number,
): Op<boolean> {
  const v = ptep_get(p);
  const none = level === 'pmd' ? pmd_none(v) : level === 'pud' ? pud_none(v) : pgd_none(v);
  if (none) return true;
  const bad = level === 'pmd' ? pmd_bad(v) : level === 'pud' ? pud_bad(v) : pgd_bad(v);
  if (!bad) return false;
  pr_err(`mm/pgtable-generic.c: bad ${level} ${native_pte_val(v)}`);
  yield* pmdp_huge_get_and_clear(mm, addr, p);
  return true;
}

/** The lazily started MMU_NOTIFY_PROTECTION_VMA range of one walk level. */
interface lazy_range {
  range: mmu_notifier_range | null;
}

function* lazy_range_start(
  lr: lazy_range,
  vma: vm_area_struct,
  addr: number,
  end: number,
): Op<void> {
  if (lr.range) return;
  lr.range = mmu_notifier_range_init(MMU_NOTIFY_PROTECTION_VMA, 0, vma.vm_mm, addr, end);
  yield* mmu_notifier_invalidate_range_start(lr.range);
}

function* lazy_range_end(lr: lazy_range): Op<void> {
  if (lr.range) yield* mmu_notifier_invalidate_range_end(lr.range);
}

/**
 * change_pmd_range: PMD leaves and PMD migration entries covering the span go to
 * change_huge_pmd, partly covered ones are split first; PTE tables to change_pte_range.
 * Up to v6.11 the MMU_NOTIFY_PROTECTION_VMA range starts here, at the first populated
 * pmd, and covers [that address, end).
 * @kernel mm/mprotect.c:change_pmd_range (v5.7+; notifier moved to change_pud_range in
 *   v6.12, "mm/mprotect: push mmu notifier to PUDs")
 * Locking: mmap_lock held for write.
 * Return: entries changed.
 */
function* change_pmd_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  pudp: pud_t_ptr,
  addr: number,
  end: number,
  newprot: pgprot_t,
  cp_flags: number,
): Op<number> {
  let pages = 0;
  const lr: lazy_range = { range: null };
  const t = entry_table(pudp)!;
  let next: number;
  do {
    const pmdp: pmd_t_ptr = { t, i: pmd_index(addr) };
    next = addr_end(addr, end, PMD_SIZE);
    for (;;) {
      if (pmd_none(ptep_get(pmdp))) break;
      if (!since(6, 12)) yield* lazy_range_start(lr, vma, addr, end);
      const v = yield* pmdp_get_lockless(pmdp);
      if (is_swap_pmd(v) || pmd_leaf(v)) {
        if (next - addr !== HPAGE_PMD_SIZE) {
          yield* __split_huge_pmd(vma, pmdp, addr, false);
          // For file-backed VMAs the pmd could have been cleared.
        } else {
          const ret = yield* change_huge_pmd(tlb, vma, pmdp, addr, newprot, cp_flags);
          if (ret) {
            if (ret === HPAGE_PMD_NR) pages += HPAGE_PMD_NR;
            break; // huge pmd was handled
          }
        }
        // fall through, the trans huge pmd just split
        if (pmd_none(ptep_get(pmdp))) break;
      }
      const ret = yield* change_pte_range(tlb, vma, pmdp, addr, next, newprot, cp_flags);
      if (ret < 0) continue; // -EAGAIN: the table changed under us, again
      pages += ret;
      break;
    }
  } while (((addr = next), addr !== end));
  yield* lazy_range_end(lr);
  return pages;
}

/**
 * change_pud_range: from v6.12 the MMU_NOTIFY_PROTECTION_VMA range starts here at the
 * first populated pud and PUD leaves (pfnmap) are changed or split (cleared); before,
 * a PUD leaf is a "bad pud" here and is reported and cleared.
 * @kernel mm/mprotect.c:change_pud_range (v5.7+; PUD leaves and the notifier v6.12+)
 * Locking: mmap_lock held for write.
 * Return: entries changed.
 */
function* change_pud_range(
  tlb: mmu_gather,
  vma: vm_area_struct,
  p4dp: entry_ptr,
  addr: number,
  end: number,
  newprot: pgprot_t,
  cp_flags: number,
): Op<number> {
  let pages = 0;
  const lr: lazy_range = { range: null };
  const t = entry_table(p4dp)!;
  let next: number;
  do {
    const pudp: pud_t_ptr = { t, i: pud_index(addr) };
    next = addr_end(addr, end, PUD_SIZE);
    if (since(6, 12)) {
      let again = true;
      while (again) {
        again = false;
        const pud = yield* pudp_get_lockless(pudp);
        if (pud_none(pud)) break;
        yield* lazy_range_start(lr, vma, addr, end);
        if (pud_leaf(pud)) {
          if (next - addr !== PUD_SIZE) {
            yield* __split_huge_pud(vma, pudp, addr);
            again = true;
            continue;
          }
          const ret = yield* change_huge_pud(tlb, vma, pudp, addr, newprot);
          if (ret === 0) {
            again = true;
            continue;
          }
          pages += ret;
          break;
        }
        pages += yield* change_pmd_range(tlb, vma, pudp, addr, next, newprot, cp_flags);
      }
      continue;
    }
    if (yield* none_or_clear_bad(pudp, 'pud', vma.vm_mm, addr)) continue;
    pages += yield* change_pmd_range(tlb, vma, pudp, addr, next, newprot, cp_flags);
  } while (((addr = next), addr !== end));
  yield* lazy_range_end(lr);
  return pages;
}

/**
 * change_protection(tlb, vma, start, end, cp_flags): applies vma->vm_page_prot to every
 * present entry of [start, end). A hugetlb VMA goes to hugetlb_change_protection.
 * @kernel mm/mprotect.c:change_protection, change_protection_range, change_p4d_range
 *   (v5.7+; newprot argument before v6.1, the same vm_page_prot from mprotect)
 * Locking: mmap_lock held for write.
 * Return: the number of entries changed (a huge leaf counts its pages).
 */
export function* change_protection(
  tlb: mmu_gather,
  vma: vm_area_struct,
  start: number,
  end: number,
  cp_flags: number,
): Op<number> {
  const newprot = vma.vm_page_prot;
  if (is_vm_hugetlb_page(vma))
    return yield* hugetlb_change_protection(vma, start, end, newprot, cp_flags);
  let addr = start;
  BUG_ON(addr >= end, 'change_protection_range: addr >= end');
  let pages = 0;
  let next: number;
  do {
    const pgdp = pgd_offset(vma.vm_mm, addr);
    next = addr_end(addr, end, PGDIR_SIZE);
    if (yield* none_or_clear_bad(pgdp, 'pgd', vma.vm_mm, addr)) continue;
    pages += yield* change_pud_range(
      tlb,
      vma,
      p4d_offset(pgdp, addr),
      addr,
      next,
      newprot,
      cp_flags,
    );
  } while (((addr = next), addr !== end));
  return pages;
}

/**
 * prot_none_walk: a VM_PFNMAP|VM_MIXEDMAP range about to become PROT_NONE: each present
 * entry must pass pfn_modify_allowed with the new protection (the L1TF check), else
 * -EACCES and nothing changes.
 * @kernel mm/mprotect.c:prot_none_pte_entry, prot_none_walk_ops (v5.7+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -EACCES.
 */
function prot_none_walk(vma: vm_area_struct, start: number, end: number, prot: pgprot_t): number {
  for (let a = start; a < end; a += PAGE_SIZE) {
    const leaf = walkToLeaf(vma.vm_mm, a);
    if (!leaf) continue;
    const v = ptep_get(leaf.ptr);
    if (!pte_present(v)) continue;
    let pfn = pte_pfn(v);
    if (leaf.level !== 'pte') {
      const size = leaf.level === 'pmd' ? PMD_SIZE : PUD_SIZE;
      pfn += Math.floor((a % size) / PAGE_SIZE);
    }
    if (!pfn_modify_allowed(pfn, prot)) return -EACCES;
  }
  return 0;
}

/**
 * mprotect_fixup(vmi, tlb, vma, pprev, start, end, newflags): gives [start, end) of one
 * VMA the new flags: nothing when unchanged; the PROT_NONE pfn check; VM_ACCOUNT
 * bookkeeping; split at the edges; new vm_flags and vm_page_prot; change_protection.
 * @kernel mm/mprotect.c:mprotect_fixup (v5.7+; MM_CP_TRY_CHANGE_WRITABLE v6.1+,
 *   MM_CP_DIRTY_ACCT from vma_wants_writenotify() before)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* mprotect_fixup(
  tlb: mmu_gather,
  vma: vm_area_struct,
  start: number,
  end: number,
  newflags: bigint,
): Op<number> {
  const mm = vma.vm_mm;
  const oldflags = vma.vm_flags;
  if (newflags === oldflags) return 0;
  // Do PROT_NONE PFN permission checks here when we can still bail out.
  if (oldflags & (VM_PFNMAP | VM_MIXEDMAP) && (newflags & VM_ACCESS_FLAGS) === 0n) {
    const error = prot_none_walk(vma, start, end, vm_get_page_prot(newflags));
    if (error) return error;
  }
  // Commit accounting is not modelled; the flag bookkeeping is.
  if (newflags & VM_WRITE) {
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE)))
      newflags |= VM_ACCOUNT;
  } else if (oldflags & VM_ACCOUNT && vma_is_anonymous(vma) && !vma.anon_vma) {
    newflags &= ~VM_ACCOUNT;
  }
  // vma_modify_flags(): split at start and end (merging is not modelled).
  if (start !== vma.vm_start) {
    const err = yield* split_vma(mm, vma, start, true);
    if (err) return err;
  }
  if (end !== vma.vm_end) {
    const err = yield* split_vma(mm, vma, end, false);
    if (err) return err;
  }
  // vm_flags and vm_page_prot are protected by the mmap_lock held in write mode.
  vma.vm_flags = newflags;
  let mm_cp_flags = 0;
  if (since(6, 1)) {
    if (vma_wants_manual_pte_write_upgrade(vma)) mm_cp_flags |= MM_CP_TRY_CHANGE_WRITABLE;
  } else if (vma_wants_writenotify(vma, vma.vm_page_prot)) {
    mm_cp_flags |= MM_CP_DIRTY_ACCT;
  }
  vma_set_page_prot(vma);
  yield* change_protection(tlb, vma, start, end, mm_cp_flags);
  return 0;
}

/**
 * map_deny_write_exec(vma, vm_flags): under prctl(PR_SET_MDWE) a mapping may not become
 * writable and executable, nor executable when it was not.
 * @kernel include/linux/mman.h:map_deny_write_exec (v6.3+, b507808ebce2 "mm: implement
 *   memory-deny-write-execute as a prctl")
 */
function map_deny_write_exec(vma: vm_area_struct, vm_flags: bigint): boolean {
  if (!since(6, 3)) return false;
  if (!mm_flags_test(MMF_HAS_MDWE, vma.vm_mm)) return false;
  if (vm_flags & VM_EXEC && vm_flags & VM_WRITE) return true;
  if (!(vma.vm_flags & VM_EXEC) && vm_flags & VM_EXEC) return true;
  return false;
}

/** x modulo 2^64, for unsigned long sums of model numbers. */
function wrap64(x: number): number {
  return x >= 2 ** 64 ? x - 2 ** 64 : x;
}

/**
 * do_mprotect_pkey(start, len, prot, pkey): mprotect(2) and pkey_mprotect(2).
 * -EINVAL: both PROT_GROWSDOWN and PROT_GROWSUP, unaligned start, unknown prot bits,
 * PROT_GROWSDOWN on a VMA without VM_GROWSDOWN; 0 for len 0; -ENOMEM: wrapping range,
 * start outside a VMA, or a gap; -EACCES: a permission the VMA may not have (VM_MAY*),
 * or MDWE. VMAs already changed before an error keep their new protection.
 * @kernel mm/mprotect.c:do_mprotect_pkey (v5.7+)
 * Locking: takes and releases mmap_lock for write.
 * Return: 0 or -errno.
 */
export function* do_mprotect_pkey(
  mm: mm_struct,
  start: number,
  len: number,
  prot: number,
  pkey = -1,
): Op<number> {
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL; // can't be both
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  if (!len) return 0;
  // Unsigned long arithmetic: PAGE_ALIGN and start + len wrap at 2^64.
  len = wrap64(Math.ceil(len / PAGE_SIZE) * PAGE_SIZE);
  const end = wrap64(start + len);
  if (end <= start) return -ENOMEM;
  // arch_validate_prot(): only PROT_READ|PROT_WRITE|PROT_EXEC|PROT_SEM.
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -EINVAL;
  const reqprot = prot;
  yield* mmap_write_lock(mm);
  let error = -EINVAL;
  if (pkey !== -1) {
    // No protection keys are ever allocated in the model.
    yield* mmap_write_unlock(mm);
    return error;
  }
  let vma = find_vma(mm, start);
  error = -ENOMEM;
  if (!vma || vma.vm_start >= end) {
    yield* mmap_write_unlock(mm);
    return error;
  }
  if (grows & PROT_GROWSDOWN) {
    start = vma.vm_start;
    error = -EINVAL;
    if (!(vma.vm_flags & VM_GROWSDOWN)) {
      yield* mmap_write_unlock(mm);
      return error;
    }
  } else {
    if (vma.vm_start > start) {
      yield* mmap_write_unlock(mm);
      return error;
    }
    if (grows & PROT_GROWSUP) {
      // x86 has no VM_GROWSUP.
      yield* mmap_write_unlock(mm);
      return -EINVAL;
    }
  }
  const tlb = tlb_gather_mmu(mm);
  let nstart = start;
  let tmp = vma.vm_start;
  for (;;) {
    if (vma.vm_start !== tmp) {
      error = -ENOMEM;
      break;
    }
    // Each mprotect() call explicitly passes r/w/x permissions; a permission not passed
    // is cleared from the VMA.
    let newflags = calc_vm_prot_bits(prot);
    newflags |= vma.vm_flags & ~VM_ACCESS_FLAGS;
    // newflags >> 4 shift VM_MAY% in place of VM_%.
    if (newflags & ~(newflags >> 4n) & VM_ACCESS_FLAGS) {
      error = -EACCES;
      break;
    }
    if (map_deny_write_exec(vma, newflags)) {
      error = -EACCES;
      break;
    }
    tmp = Math.min(vma.vm_end, end);
    error = yield* mprotect_fixup(tlb, vma, nstart, tmp, newflags);
    if (error) break;
    nstart = tmp;
    prot = reqprot;
    if (nstart >= end) break;
    const nxt = find_vma(mm, nstart);
    if (!nxt || nxt.vm_start >= end) break;
    vma = nxt;
  }
  yield* tlb_finish_mmu(tlb);
  if (!error && tmp < end) error = -ENOMEM;
  yield* mmap_write_unlock(mm);
  return error;
}
