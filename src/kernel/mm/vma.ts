/**
 * VMA bookkeeping: the per-mm VMA tree (a sorted array standing in for the maple tree),
 * lookup, insertion, removal and splitting, and the i_mmap / anon_vma links.
 *
 * @kernel mm/vma.c, mm/mmap.c:find_vma, vma_lookup (v6.1+ maple tree; earlier rbtree)
 * Locking: callers hold mmap_lock (read for lookups, write for changes) and, for the
 *   i_mmap links, i_mmap_rwsem for write (taken here, within the caller's step).
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import { vma_adjust_trans_huge } from './huge_memory.anon.js';
import type { mm_struct, vm_area_struct, anon_vma } from '../include/linux/mm_types.js';
import { get_file } from '../fs/file_table.js';
import { VM_BUG_ON } from '../kernel/panic.js';

/** vm_area_alloc(mm): a blank VMA. */
export function vm_area_alloc(mm: mm_struct): vm_area_struct {
  return {
    id: currentKernel().nextId('vma'),
    vm_start: 0,
    vm_end: 0,
    vm_pgoff: 0,
    vm_flags: 0n,
    vm_page_prot: 0,
    vm_mm: mm,
    vm_file: null,
    vm_ops: null,
    vm_private_data: null,
    anon_vma: null,
    pfnmap_track_ctx: null,
  };
}

/** Index of the first VMA with vm_end > addr. */
function lowerBound(mm: mm_struct, addr: number): number {
  let lo = 0;
  let hi = mm.mmap.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (mm.mmap[mid]!.vm_end <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** find_vma(mm, addr): the first VMA with vm_end > addr, or null. */
export function find_vma(mm: mm_struct, addr: number): vm_area_struct | null {
  return mm.mmap[lowerBound(mm, addr)] ?? null;
}

/** vma_lookup(mm, addr): the VMA containing addr, or null. */
export function vma_lookup(mm: mm_struct, addr: number): vm_area_struct | null {
  const v = find_vma(mm, addr);
  return v && v.vm_start <= addr ? v : null;
}

/** find_vma_intersection(mm, start, end) */
export function find_vma_intersection(
  mm: mm_struct,
  start: number,
  end: number,
): vm_area_struct | null {
  const v = find_vma(mm, start);
  return v && v.vm_start < end ? v : null;
}

/** VMAs overlapping [start, end), in address order. */
export function vmas_in_range(mm: mm_struct, start: number, end: number): vm_area_struct[] {
  const out: vm_area_struct[] = [];
  for (let i = lowerBound(mm, start); i < mm.mmap.length; i++) {
    const v = mm.mmap[i]!;
    if (v.vm_start >= end) break;
    out.push(v);
  }
  return out;
}

/** Links a VMA into the mm's tree and its file's i_mmap (vma_link). */
export function vma_link(mm: mm_struct, vma: vm_area_struct): void {
  const i = lowerBound(mm, vma.vm_start);
  const next = mm.mmap[i];
  VM_BUG_ON(
    next !== undefined && next.vm_start < vma.vm_end,
    `vma_link: [${vma.vm_start.toString(16)}, ${vma.vm_end.toString(16)}) overlaps`,
  );
  mm.mmap.splice(i, 0, vma);
  mm.total_vm += (vma.vm_end - vma.vm_start) / 4096;
  if (vma.vm_file) vma.vm_file.f_mapping.i_mmap.add(vma);
  if (vma.anon_vma) vma.anon_vma.vmas.add(vma);
}

/** Unlinks a VMA from the tree, i_mmap and its anon_vma (the counterpart of vma_link). */
export function vma_unlink(mm: mm_struct, vma: vm_area_struct): void {
  const i = mm.mmap.indexOf(vma);
  if (i >= 0) mm.mmap.splice(i, 1);
  mm.total_vm -= (vma.vm_end - vma.vm_start) / 4096;
  if (vma.vm_file) vma.vm_file.f_mapping.i_mmap.delete(vma);
  if (vma.anon_vma) unlink_anon_vma(vma);
}

export { get_file, fput } from '../fs/file_table.js';

/** anon_vma_alloc() */
export function anon_vma_alloc(): anon_vma {
  const av = {
    id: currentKernel().nextId('mapping'),
    root: null as never,
    vmas: new Set(),
    refcount: 1,
  } as anon_vma;
  av.root = av;
  return av;
}

/** Drops a VMA from its anon_vma (unlink_anon_vmas, reduced to one shared anon_vma). */
export function unlink_anon_vma(vma: vm_area_struct): void {
  const av = vma.anon_vma;
  if (!av) return;
  av.vmas.delete(vma);
  av.refcount--;
  vma.anon_vma = null;
}

/**
 * __split_vma(vmi, vma, addr, new_below): splits vma at addr; the new VMA takes the part
 * below addr when new_below, else the part above. Calls vm_ops->may_split, duplicates the
 * file reference and the anon_vma link, and vm_ops->open on the new VMA.
 * @kernel mm/vma.c:__split_vma (v6.7+; mm/mmap.c before)
 * A PMD-mapped THP straddling addr is split first (vma_adjust_trans_huge), so no huge
 * entry crosses a VMA boundary.
 * Locking: mmap_lock held for write.
 * Return: the new VMA, or -errno from may_split.
 */
export function* __split_vma(
  mm: mm_struct,
  vma: vm_area_struct,
  addr: number,
  new_below: boolean,
): Op<vm_area_struct | number> {
  if (vma.vm_ops?.may_split) {
    const err = vma.vm_ops.may_split(vma, addr);
    if (err) return err;
  }
  yield* vma_adjust_trans_huge(vma, vma.vm_start, addr, 0);
  const n = vm_area_dup(vma);
  if (new_below) {
    n.vm_end = addr;
    vma.vm_pgoff += (addr - vma.vm_start) / 4096;
    vma.vm_start = addr;
  } else {
    n.vm_start = addr;
    n.vm_pgoff += (addr - vma.vm_start) / 4096;
    vma.vm_end = addr;
  }
  mm.total_vm -= (n.vm_end - n.vm_start) / 4096;
  vma_link(mm, n);
  n.vm_ops?.open?.(n);
  return n;
}

/**
 * vm_area_dup(vma): a copy sharing the file (with a new reference), the anon_vma, and
 * the pfnmap tracking context (kref), as in the kernel.
 */
export function vm_area_dup(vma: vm_area_struct): vm_area_struct {
  const n = vm_area_alloc(vma.vm_mm);
  n.vm_start = vma.vm_start;
  n.vm_end = vma.vm_end;
  n.vm_pgoff = vma.vm_pgoff;
  n.vm_flags = vma.vm_flags;
  n.vm_page_prot = vma.vm_page_prot;
  n.vm_ops = vma.vm_ops;
  n.vm_private_data = vma.vm_private_data;
  n.vm_file = vma.vm_file ? get_file(vma.vm_file) : null;
  n.anon_vma = vma.anon_vma;
  if (n.anon_vma) n.anon_vma.refcount++;
  n.pfnmap_track_ctx = vma.pfnmap_track_ctx;
  if (n.pfnmap_track_ctx) n.pfnmap_track_ctx.kref++;
  return n;
}
