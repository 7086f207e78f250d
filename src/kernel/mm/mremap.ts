/**
 * mremap(2): shrinking (the tail is unmapped), growing in place when the space after
 * the VMA is free, moving with MREMAP_MAYMOVE (and to a fixed address with
 * MREMAP_FIXED), and the rules of vma_to_resize: a VMA may not grow when it is
 * VM_DONTEXPAND or VM_PFNMAP (-EFAULT, R-VMA-1), nor be resized across its end.
 *
 * A move creates the new VMA (copy_vma: same file, anon_vma and vm_pgoff, so anonymous
 * folios keep their folio->index and the rmap still finds them), moves the page-table
 * entries (move_page_tables inside MMU_NOTIFY_UNMAP of the old range; entries keep
 * their pfn, flags and special bit, and no refcount or mapping changes), then unmaps the
 * old range with do_vmi_munmap (vm_ops->close on the old VMA). A VM_PFNMAP VMA may move
 * (its size unchanged): up to v6.15 its VM_PAT goes with the new VMA (untrack_pfn_clear
 * on the old); from v6.16 both share the pfnmap_track_ctx until the old one is freed.
 *
 * Left out: MREMAP_DONTUNMAP (a model error), hugetlb, userfaultfd events, commit
 * accounting and RLIMIT_AS (may_expand_vm), mseal (-EPERM, v6.10+), the PMD/PUD-level
 * table moves (HAVE_MOVE_PMD/PUD: whole PTE tables are moved by x86 when both ranges are
 * PMD-aligned; the model moves the entries one by one, which ends with the same entries
 * at the same addresses but different table pages), VMA merging on expand or copy,
 * mm_populate of the grown part of a VM_LOCKED mapping, try_realign_addr. A THP PMD
 * leaf is split and its PTEs moved (the kernel moves the leaf with move_huge_pmd), and so
 * is a PMD migration entry (split into 512 PTE migration entries, which move like any
 * entry; the kernel moves the entry whole when the extent is a whole PMD).
 *
 * Migration entries move like any entry (move_ptes copies the value; soft-dirty is not
 * modelled), so remove_migration_ptes later finds them at the new address: the new VMA
 * keeps vm_pgoff and anon_vma, and the rmap walk computes the same address.
 *
 * @kernel mm/mremap.c (v5.7+)
 */
import type { Op } from '../../sched/index.js';
import type {
  entry_ptr,
  mm_struct,
  pmd_t_ptr,
  pte_t_ptr,
  pud_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import {
  VM_DONTEXPAND,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_PFNMAP,
  VM_SHARED,
  vma_is_anonymous,
} from '../include/linux/mm.js';
import { EAGAIN, EFAULT, EINVAL, ENOMEM } from '../include/linux/errno.js';
import {
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  TASK_SIZE_MAX,
  native_pte_val,
  pte_none,
} from '../arch/x86/include/asm/pgtable_types.js';
import { is_swap_pmd } from '../include/linux/swapops.js';
import {
  pmd_leaf,
  pmd_none,
  pud_bad,
  pud_leaf,
  pud_none,
  pgd_none,
} from '../arch/x86/include/asm/pgtable.js';
import {
  p4d_offset,
  pgd_offset,
  pmd_alloc,
  pmd_lock,
  pmd_lockptr,
  pmd_offset,
  pmdp_huge_get_and_clear,
  pte_alloc,
  pte_offset_map,
  pte_offset_map_lock,
  pte_unmap_unlock,
  ptep_get,
  ptep_get_and_clear,
  pud_alloc,
  pud_lock,
  pud_offset,
  set_pmd_at,
  set_pte_at,
  set_pud_at,
} from '../include/linux/pgtable.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { mmap_write_lock, mmap_write_unlock } from '../include/linux/mmap_lock.js';
import { get_current } from '../include/linux/sched.js';
import { pr_err, pr_warn } from '../kernel/printk.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import {
  MMU_NOTIFY_UNMAP,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
} from './mmu_notifier.js';
import { find_vma_intersection, vm_area_dup, vma_link, vma_lookup } from './vma.js';
import {
  MAP_FIXED,
  MAP_SHARED,
  do_munmap,
  do_vmi_munmap,
  get_unmapped_area,
  sysctl_max_map_count,
} from './mmap.js';
import { HPAGE_PMD_SIZE, HPAGE_PUD_SIZE } from './memory.zap.js';
import { split_huge_pmd, vma_is_special_huge } from './huge_memory.anon.js';
import { untrack_pfn_clear } from '../arch/x86/mm/pat/memtype.js';

export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/**
 * vma_to_resize(addr, old_len, new_len, flags): the VMA at addr, if it may be resized:
 * no VMA at addr or old_len past its end is -EFAULT; growing a VM_DONTEXPAND or
 * VM_PFNMAP VMA is -EFAULT; duplicating a private mapping (old_len 0) is -EINVAL
 * (v5.18+); MREMAP_DONTUNMAP needs an anonymous private VMA up to v5.12, and a VMA
 * without VM_DONTEXPAND|VM_PFNMAP from v5.13; a VM_LOCKED VMA may not grow past
 * RLIMIT_MEMLOCK without CAP_IPC_LOCK (-EAGAIN).
 * @kernel mm/mremap.c:vma_to_resize (v5.7+; DONTUNMAP rule a4609387859f "mm: extend
 *   MREMAP_DONTUNMAP to non-anonymous mappings" v5.13; private duplication refused
 *   dba58d3b8c50 "mm/mremap: fail map duplication attempts for private mappings")
 * Locking: mmap_lock held for write.
 * Return: the VMA, or -errno.
 * Left out: hugetlb (-EINVAL before v5.16), RLIMIT_AS (may_expand_vm), commit charge.
 */
export function vma_to_resize(
  mm: mm_struct,
  addr: number,
  old_len: number,
  new_len: number,
  flags: number,
): vm_area_struct | number {
  const vma = vma_lookup(mm, addr);
  if (!vma) return -EFAULT;
  // !old_len is an attempt to 'duplicate' a mapping; for private mappings it would create
  // an unrelated new mapping instead.
  if (since(5, 18) && !old_len && !(vma.vm_flags & (VM_SHARED | VM_MAYSHARE))) {
    const cur = get_current();
    if (!currentKernel().onceFired.has('mremap-duplicate')) {
      currentKernel().onceFired.add('mremap-duplicate');
      pr_warn(
        `${cur.comm} (${cur.pid}): attempted to duplicate a private mapping with mremap.  This is not supported.`,
      );
    }
    return -EINVAL;
  }
  if (flags & MREMAP_DONTUNMAP) {
    if (since(5, 13)) {
      if (vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EINVAL;
    } else if (!vma_is_anonymous(vma) || vma.vm_flags & VM_SHARED) {
      return -EINVAL;
    }
  }
  // We can't remap across vm area boundaries.
  if (old_len > vma.vm_end - addr) return -EFAULT;
  if (new_len === old_len) return vma;
  // Need to be careful about a growing mapping.
  const pgoff = (addr - vma.vm_start) / PAGE_SIZE + vma.vm_pgoff;
  if (pgoff + new_len / PAGE_SIZE < pgoff) return -EINVAL;
  if (vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EFAULT;
  // mlock_future_ok() / the RLIMIT_MEMLOCK check.
  if (vma.vm_flags & VM_LOCKED) {
    const cur = get_current();
    const locked = mm.locked_vm * PAGE_SIZE + (new_len - old_len);
    if (locked > cur.rlimit_memlock && !cur.caps.has('CAP_IPC_LOCK')) return -EAGAIN;
  }
  return vma;
}

/**
 * vma_expandable(vma, delta): the delta bytes after the VMA are free and inside the
 * user address space.
 * @kernel mm/mremap.c:vma_expandable (v5.7+)
 */
function vma_expandable(vma: vm_area_struct, delta: number): boolean {
  const end = vma.vm_end + delta;
  if (find_vma_intersection(vma.vm_mm, vma.vm_end, end)) return false;
  // get_unmapped_area(NULL, vm_start, end - vm_start, 0, MAP_FIXED)
  if (end - vma.vm_start > TASK_SIZE_MAX || end > TASK_SIZE_MAX) return false;
  return true;
}

/** get_extent(entry, old_addr, old_end, new_addr): the next step that stays in one table. */
function get_extent(size: number, old_addr: number, old_end: number, new_addr: number): number {
  let extent = (Math.floor(old_addr / size) + 1) * size - old_addr;
  if (extent > old_end - old_addr) extent = old_end - old_addr;
  const next = (Math.floor(new_addr / size) + 1) * size - new_addr;
  if (extent > next) extent = next;
  return extent;
}

/** get_old_pud(mm, addr): the pud slot, or null (none; a bad one is cleared). */
function* get_old_pud(mm: mm_struct, addr: number): Op<pud_t_ptr | null> {
  const pgdp = pgd_offset(mm, addr);
  if (pgd_none(ptep_get(pgdp))) return null;
  const pudp = pud_offset(p4d_offset(pgdp, addr), addr);
  const v = ptep_get(pudp);
  if (pud_none(v)) return null;
  if (pud_bad(v) && !pud_leaf(v)) {
    pr_err(`mm/pgtable-generic.c: bad pud ${native_pte_val(v)}`);
    yield* pmdp_huge_get_and_clear(mm, addr, pudp);
    return null;
  }
  return pudp;
}

/** get_old_pmd(mm, addr): the pmd slot, or null when any level is empty. */
function* get_old_pmd(mm: mm_struct, addr: number): Op<pmd_t_ptr | null> {
  const pudp = yield* get_old_pud(mm, addr);
  if (!pudp) return null;
  const v = ptep_get(pudp);
  if (pud_leaf(v)) {
    // pud_none_or_clear_bad() in get_old_pud: a leaf is a "bad pud" there.
    pr_err(`mm/pgtable-generic.c: bad pud ${native_pte_val(v)}`);
    yield* pmdp_huge_get_and_clear(mm, addr, pudp);
    return null;
  }
  const pmdp = pmd_offset(pudp, addr);
  if (pmd_none(ptep_get(pmdp))) return null;
  return pmdp;
}

/** alloc_new_pud / alloc_new_pmd: allocates the path to the new address. */
function* alloc_new_pud(mm: mm_struct, addr: number): Op<pud_t_ptr | null> {
  const pgdp = pgd_offset(mm, addr);
  return yield* pud_alloc(mm, p4d_offset(pgdp, addr), addr);
}

function* alloc_new_pmd(mm: mm_struct, addr: number): Op<pmd_t_ptr | null> {
  const pudp = yield* alloc_new_pud(mm, addr);
  if (!pudp) return null;
  return yield* pmd_alloc(mm, pudp, addr);
}

/**
 * move_ptes(vma, old_pmd, old_addr, old_end, new_vma, new_pmd, new_addr): moves the
 * entries of one PTE table span under both tables' locks: each old entry is cleared
 * and set at the new address unchanged (pfn, flags, special bit; a migration entry too).
 * @kernel mm/mremap.c:move_ptes (v5.7+; -EAGAIN retry v6.5+)
 * Locking: mmap_lock held for write; takes the old then the new PTE table lock.
 * Return: 0, or -EAGAIN when the old table went away.
 * Left out: need_rmap_locks (the model never merges the new VMA, so it is false).
 */
function* move_ptes(
  vma: vm_area_struct,
  old_pmd: pmd_t_ptr,
  old_addr: number,
  old_end: number,
  new_vma: vm_area_struct,
  new_pmd: pmd_t_ptr,
  new_addr: number,
): Op<number> {
  const mm = vma.vm_mm;
  const r = yield* pte_offset_map_lock(mm, old_pmd, old_addr);
  if (!r) return -EAGAIN;
  const [old_pte, old_ptl] = r;
  const new_pte0 = pte_offset_map(new_pmd, new_addr);
  if (!new_pte0) {
    yield* pte_unmap_unlock(old_pte, old_ptl);
    return -EAGAIN;
  }
  const new_ptl = new_pte0.t.ptl!;
  if (new_ptl !== old_ptl) yield* spin_lock(new_ptl);
  let oi = old_pte.i;
  let ni = new_pte0.i;
  for (; old_addr < old_end; oi++, ni++, old_addr += PAGE_SIZE, new_addr += PAGE_SIZE) {
    const op: pte_t_ptr = { t: old_pte.t, i: oi };
    if (pte_none(ptep_get(op))) continue;
    const pte = yield* ptep_get_and_clear(mm, old_addr, op);
    yield* set_pte_at(new_vma.vm_mm, new_addr, { t: new_pte0.t, i: ni }, pte);
  }
  if (new_ptl !== old_ptl) yield* spin_unlock(new_ptl);
  yield* pte_unmap_unlock(old_pte, old_ptl);
  return 0;
}

/**
 * move_huge_pmd / move_huge_pud for special leaves: the leaf moves as it is to an empty
 * slot at the new address, under both locks.
 * @kernel mm/huge_memory.c:move_huge_pmd, mm/mremap.c:move_huge_pud (v5.7+)
 * Return: true when moved.
 */
function* move_huge_leaf(
  mm: mm_struct,
  old_addr: number,
  new_addr: number,
  oldp: entry_ptr,
  newp: entry_ptr,
  level: 'pmd' | 'pud',
): Op<boolean> {
  if (ptep_get(newp) !== 0) return false;
  const old_ptl = level === 'pmd' ? yield* pmd_lock(mm, oldp) : yield* pud_lock(mm, oldp);
  const cur = ptep_get(oldp);
  if (!(level === 'pmd' ? pmd_leaf(cur) : pud_leaf(cur))) {
    yield* spin_unlock(old_ptl);
    return false;
  }
  const new_ptl = level === 'pmd' ? pmd_lockptr(mm, newp) : old_ptl;
  if (new_ptl !== old_ptl) yield* spin_lock(new_ptl);
  const v = yield* pmdp_huge_get_and_clear(mm, old_addr, oldp);
  if (level === 'pmd') yield* set_pmd_at(mm, new_addr, newp, v);
  else yield* set_pud_at(mm, new_addr, newp, v);
  if (new_ptl !== old_ptl) yield* spin_unlock(new_ptl);
  yield* spin_unlock(old_ptl);
  return true;
}

/**
 * move_page_tables(vma, old_addr, new_vma, new_addr, len): moves every entry of
 * [old_addr, old_addr+len) to the same offsets from new_addr, inside an MMU_NOTIFY_UNMAP
 * range over the old addresses. PMD/PUD leaves of special VMAs move whole when the
 * extent allows, else are split (a special leaf is just cleared); THP leaves and PMD
 * migration entries are split and their PTEs moved.
 * @kernel mm/mremap.c:move_page_tables (v5.7+)
 * Locking: mmap_lock held for write.
 * Return: the number of bytes moved (less than len only when a table allocation failed).
 */
export function* move_page_tables(
  vma: vm_area_struct,
  old_addr: number,
  new_vma: vm_area_struct,
  new_addr: number,
  len: number,
): Op<number> {
  if (!len) return 0;
  const old_end = old_addr + len;
  const mm = vma.vm_mm;
  const range = mmu_notifier_range_init(MMU_NOTIFY_UNMAP, 0, mm, old_addr, old_end);
  yield* mmu_notifier_invalidate_range_start(range);
  let extent: number;
  let failed = false;
  for (; old_addr < old_end; old_addr += extent, new_addr += extent) {
    extent = get_extent(PUD_SIZE, old_addr, old_end, new_addr);
    const old_pud = yield* get_old_pud(mm, old_addr);
    if (!old_pud) continue;
    const new_pud = yield* alloc_new_pud(new_vma.vm_mm, new_addr);
    if (!new_pud) break;
    if (pud_leaf(ptep_get(old_pud)) && extent === HPAGE_PUD_SIZE) {
      yield* move_huge_leaf(mm, old_addr, new_addr, old_pud, new_pud, 'pud');
      continue;
    }
    extent = get_extent(PMD_SIZE, old_addr, old_end, new_addr);
    const old_pmd = yield* get_old_pmd(mm, old_addr);
    if (!old_pmd) continue;
    const new_pmd = yield* alloc_new_pmd(new_vma.vm_mm, new_addr);
    if (!new_pmd) break;
    for (;;) {
      const v = ptep_get(old_pmd);
      if (is_swap_pmd(v) || pmd_leaf(v)) {
        if (
          extent === HPAGE_PMD_SIZE &&
          vma_is_special_huge(vma) &&
          (yield* move_huge_leaf(mm, old_addr, new_addr, old_pmd, new_pmd, 'pmd'))
        )
          break;
        yield* split_huge_pmd(vma, old_pmd, old_addr);
      }
      if (pmd_none(ptep_get(old_pmd))) break;
      if (yield* pte_alloc(new_vma.vm_mm, new_pmd)) {
        failed = true;
        break;
      }
      if (
        (yield* move_ptes(vma, old_pmd, old_addr, old_addr + extent, new_vma, new_pmd, new_addr)) <
        0
      )
        continue; // again
      break;
    }
    if (failed) break;
  }
  yield* mmu_notifier_invalidate_range_end(range);
  return len + old_addr - old_end;
}

/**
 * copy_vma(vma, addr, len, pgoff): the new VMA of a move: a duplicate of vma at
 * [addr, addr+len) with file, anon_vma and flags; an anonymous VMA never faulted takes
 * the new address as its pgoff.
 * @kernel mm/vma.c:copy_vma (v5.7+; mm/mmap.c before v6.10)
 * Locking: mmap_lock held for write.
 * Return: the new VMA.
 * Left out: vma_merge with a neighbour (need_rmap_locks is then false).
 */
function copy_vma(vma: vm_area_struct, addr: number, len: number, pgoff: number): vm_area_struct {
  // If anonymous vma has not yet been faulted, update new pgoff to match new location.
  if (vma_is_anonymous(vma) && !vma.anon_vma) pgoff = addr / PAGE_SIZE;
  const n = vm_area_dup(vma);
  n.vm_start = addr;
  n.vm_end = addr + len;
  n.vm_pgoff = pgoff;
  n.vm_ops?.open?.(n);
  vma_link(vma.vm_mm, n);
  return n;
}

/**
 * move_vma(vma, old_addr, old_len, new_len, new_addr, locked, flags): moves a mapping:
 * copy_vma, move_page_tables, vm_ops->mremap, then unmaps the old range. A failed move
 * moves the entries back and unmaps the new range instead.
 * @kernel mm/mremap.c:move_vma (v5.7+)
 * Locking: mmap_lock held for write.
 * Return: new_addr, or -errno.
 */
function* move_vma(
  vma: vm_area_struct,
  old_addr: number,
  old_len: number,
  new_len: number,
  new_addr: number,
  flags: number,
): Op<number> {
  const mm = vma.vm_mm;
  // We'd prefer to avoid failure later on in do_munmap: which may split one vma into
  // three before unmapping.
  if (mm.mmap.length >= sysctl_max_map_count - 3) return -ENOMEM;
  if (flags & MREMAP_DONTUNMAP)
    throw new Error('mremap(MREMAP_DONTUNMAP) is not modelled (move_vma keeps the old VMA)');
  if (vma.vm_ops?.may_split) {
    let err = 0;
    if (vma.vm_start !== old_addr) err = vma.vm_ops.may_split(vma, old_addr);
    if (!err && vma.vm_end !== old_addr + old_len)
      err = vma.vm_ops.may_split(vma, old_addr + old_len);
    if (err) return err;
  }
  const new_pgoff = vma.vm_pgoff + (old_addr - vma.vm_start) / PAGE_SIZE;
  const new_vma = copy_vma(vma, new_addr, new_len, new_pgoff);
  const moved_len = yield* move_page_tables(vma, old_addr, new_vma, new_addr, old_len);
  let err = 0;
  if (moved_len < old_len) err = -ENOMEM;
  else if (vma.vm_ops?.mremap) err = vma.vm_ops.mremap(new_vma);
  let ret = new_addr;
  if (err) {
    // On error, move entries back from new area to old, and unmap new area instead.
    yield* move_page_tables(new_vma, new_addr, vma, old_addr, moved_len);
    vma = new_vma;
    old_len = new_len;
    old_addr = new_addr;
    ret = err;
  }
  // Tell pfnmap has moved from this vma (VM_PAT stays with the new one), until v6.16.
  if (vma.vm_flags & VM_PFNMAP && !since(6, 16)) untrack_pfn_clear(vma);
  // The model's vma_link already counted new_len in total_vm; do_vmi_munmap takes
  // old_len off again, as the kernel's vm_stat_account + do_vmi_munmap do.
  yield* do_vmi_munmap(mm, old_addr, old_len, false);
  if (vma.vm_flags & VM_LOCKED) mm.locked_vm += new_len / PAGE_SIZE;
  return ret;
}

/**
 * mremap_to(addr, old_len, new_addr, new_len, locked, flags): MREMAP_FIXED: the target
 * must be aligned, inside TASK_SIZE and not overlap the source (-EINVAL); whatever is
 * mapped there is unmapped first; a shrink unmaps the tail; then vma_to_resize and
 * move_vma.
 * @kernel mm/mremap.c:mremap_to (v5.7+)
 * Locking: mmap_lock held for write.
 * Return: the new address, or -errno.
 */
function* mremap_to(
  mm: mm_struct,
  addr: number,
  old_len: number,
  new_addr: number,
  new_len: number,
  flags: number,
): Op<number> {
  if (new_addr % PAGE_SIZE !== 0) return -EINVAL;
  if (new_len > TASK_SIZE_MAX || new_addr > TASK_SIZE_MAX - new_len) return -EINVAL;
  // Ensure the old/new locations do not overlap.
  if (addr + old_len > new_addr && new_addr + new_len > addr) return -EINVAL;
  // move_vma() needs us to stay 4 maps below the threshold.
  if (mm.mmap.length + 2 >= sysctl_max_map_count - 3) return -ENOMEM;
  let ret: number;
  if (flags & MREMAP_FIXED) {
    ret = yield* do_munmap(mm, new_addr, new_len);
    if (ret) return ret;
  }
  if (old_len > new_len) {
    ret = yield* do_munmap(mm, addr + new_len, old_len - new_len);
    if (ret) return ret;
    old_len = new_len;
  }
  const vma = vma_to_resize(mm, addr, old_len, new_len, flags);
  if (typeof vma === 'number') return vma;
  let map_flags = 0;
  if (flags & MREMAP_FIXED) map_flags |= MAP_FIXED;
  if (vma.vm_flags & VM_MAYSHARE) map_flags |= MAP_SHARED;
  ret = get_unmapped_area(
    mm,
    vma.vm_file,
    new_addr,
    new_len,
    vma.vm_pgoff + (addr - vma.vm_start) / PAGE_SIZE,
    map_flags,
  );
  if (ret < 0) return ret;
  // We got a new mapping.
  if (!(flags & MREMAP_FIXED)) new_addr = ret;
  return yield* move_vma(vma, addr, old_len, new_len, new_addr, flags);
}

/**
 * do_mremap(addr, old_len, new_len, flags, new_addr): mremap(2).
 * -EINVAL: unknown flags, FIXED without MAYMOVE, DONTUNMAP without MAYMOVE or with a
 * size change, unaligned addr, new_len 0. From v5.16 no VMA at addr is -EFAULT at once.
 * Shrinking unmaps the tail (old_len == new_len: nothing); growing goes through
 * vma_to_resize (VM_DONTEXPAND/VM_PFNMAP: -EFAULT), then in place if the space after is
 * free, else a move with MREMAP_MAYMOVE, else -ENOMEM.
 * @kernel mm/mremap.c:SYSCALL_DEFINE5(mremap) (v5.7–v6.15; do_mremap and struct
 *   vma_remap_struct v6.16+, the same rules; early vma_lookup v5.16+, 550a7d60bd5e "mm,
 *   hugepages: add mremap() support for hugepage backed vma")
 * Locking: takes and releases mmap_lock for write (a shrink through do_vmi_munmap
 *   releases it there).
 * Return: the (new) address, or -errno.
 */
export function* do_mremap(
  mm: mm_struct,
  addr: number,
  old_len: number,
  new_len: number,
  flags: number,
  new_addr = 0,
): Op<number> {
  let ret = -EINVAL;
  if (flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) return ret;
  if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return ret;
  // MREMAP_DONTUNMAP is always a move and it does not allow resizing in the process.
  if (flags & MREMAP_DONTUNMAP && (!(flags & MREMAP_MAYMOVE) || old_len !== new_len)) return ret;
  if (addr % PAGE_SIZE !== 0) return ret;
  old_len = Math.ceil(old_len / PAGE_SIZE) * PAGE_SIZE;
  new_len = Math.ceil(new_len / PAGE_SIZE) * PAGE_SIZE;
  // A zero old_len is a special case ("duplicate"), a zero new_len is nonsensical.
  if (!new_len) return ret;
  yield* mmap_write_lock(mm);
  if (since(5, 16) && !vma_lookup(mm, addr)) {
    yield* mmap_write_unlock(mm);
    return -EFAULT;
  }
  if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
    ret = yield* mremap_to(mm, addr, old_len, new_addr, new_len, flags);
    yield* mmap_write_unlock(mm);
    return ret;
  }
  // Always allow a shrinking remap: that just unmaps the unnecessary pages.
  if (old_len >= new_len) {
    if (since(5, 16)) {
      if (old_len === new_len) {
        yield* mmap_write_unlock(mm);
        return addr;
      }
      ret = yield* do_vmi_munmap(mm, addr + new_len, old_len - new_len, true);
      if (ret) {
        yield* mmap_write_unlock(mm);
        return ret;
      }
      return addr; // do_vmi_munmap released mmap_lock
    }
    // Up to v5.15 (__do_munmap with downgrade): an error of a zero-length munmap is
    // ignored.
    const retval = yield* do_vmi_munmap(mm, addr + new_len, old_len - new_len, true);
    if (retval < 0 && old_len !== new_len) {
      yield* mmap_write_unlock(mm);
      return retval;
    }
    if (retval < 0) yield* mmap_write_unlock(mm);
    return addr;
  }
  // Ok, we need to grow.
  const vma = vma_to_resize(mm, addr, old_len, new_len, flags);
  if (typeof vma === 'number') {
    yield* mmap_write_unlock(mm);
    return vma;
  }
  // old_len exactly to the end of the area: can we just expand the current mapping?
  if (old_len === vma.vm_end - addr) {
    const delta = new_len - old_len;
    if (vma_expandable(vma, delta)) {
      const pages = delta / PAGE_SIZE;
      // vma_merge_extend() / vma_adjust(): the VMA grows in place.
      vma.vm_end += delta;
      mm.total_vm += pages;
      if (vma.vm_flags & VM_LOCKED) mm.locked_vm += pages;
      yield* mmap_write_unlock(mm);
      return addr;
    }
  }
  // We weren't able to just expand or shrink the area: create a new one and move it.
  ret = -ENOMEM;
  if (flags & MREMAP_MAYMOVE) {
    let map_flags = 0;
    if (vma.vm_flags & VM_MAYSHARE) map_flags |= MAP_SHARED;
    const a = get_unmapped_area(
      mm,
      vma.vm_file,
      0,
      new_len,
      vma.vm_pgoff + (addr - vma.vm_start) / PAGE_SIZE,
      map_flags,
    );
    if (a < 0) ret = a;
    else ret = yield* move_vma(vma, addr, old_len, new_len, a, flags);
  }
  yield* mmap_write_unlock(mm);
  return ret;
}
