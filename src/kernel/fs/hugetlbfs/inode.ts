/**
 * hugetlbfs: the internal mount behind MAP_HUGETLB and memfd_create(MFD_HUGETLB)
 * (hugetlb_file_setup), its inodes (a reserve map each, the page cache of huge folios),
 * mmap (hugetlbfs_file_mmap: VM_HUGETLB|VM_DONTEXPAND, huge-page alignment, the
 * reservation that fails with -ENOMEM when the pool cannot back the mapping), the huge-page
 * aligned get_unmapped_area, truncation (ftruncate → hugetlbfs_setattr →
 * hugetlb_vmtruncate) and the eviction of the inode (its folios go back to the pool).
 *
 * Left out: named hugetlbfs mounts (mount options, subpools, directories, hugetlbfs files
 * in a namespace: files exist only through hugetlb_file_setup), read(2) of hugetlbfs
 * files (hugetlbfs_read_iter), fallocate and hole punching, SysV SHM_HUGETLB (a
 * reservation at file setup: hugetlb_file_setup without VM_NORESERVE is a model error),
 * the hugetlb VMA lock taken around the unmaps, gigantic-page mounts.
 *
 * @kernel fs/hugetlbfs/inode.c (v5.7+)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import type {
  address_space_operations,
  file,
  file_operations,
  folio,
  inode,
  mm_struct,
  super_block,
  vm_area_struct,
} from '../../include/linux/mm_types.js';
import { VM_DONTEXPAND, VM_HUGETLB, VM_NORESERVE, VM_WRITE } from '../../include/linux/mm.js';
import { EINVAL, ENODEV, ENOMEM, ENOSYS, EPERM } from '../../include/linux/errno.js';
import { alloc_file, new_inode, O_RDWR } from '../inode.js';
import { ATTR_SIZE, set_fstype_iops, type iattr } from '../../include/linux/fs.js';
import { down_write, up_write } from '../../include/linux/spinlock.js';
import { mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import { folio_index, folio_mapped, folio_nr_pages } from '../../include/linux/page-flags.js';
import { folio_get, folio_put } from '../../include/linux/page_ref.js';
import { BUG_ON } from '../../kernel/panic.js';
import { folio_lock, folio_unlock, noop_dirty_folio } from '../../mm/filemap.js';
import { find_vma_intersection } from '../../mm/vma.js';
import { TASK_SIZE_MAX, PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK } from '../../mm/shmem.js';
import {
  huge_pte_offset,
  hugetlb_delete_from_page_cache,
  hugetlb_fault_mutex,
  hugetlb_reserve_pages,
  hugetlb_unreserve_pages,
  hugetlb_vm_ops,
  hstate_file,
  hstate_inode,
  resv_map_alloc,
  resv_map_release,
  unmap_hugepage_range,
  type resv_map,
} from '../../mm/hugetlb.js';
import {
  default_hstate,
  huge_page_order,
  huge_page_shift,
  huge_page_size,
  hugepages_supported,
  type hstate,
} from '../../mm/hugetlb.pool.js';
import { ptep_get } from '../../include/linux/pgtable.js';
import { pte_none, pte_pfn, pte_present } from '../../arch/x86/include/asm/pgtable_types.js';

/** hugetlb_file_setup() creat_flags (include/linux/hugetlb.h). */
export const HUGETLB_SHMFS_INODE = 1;
export const HUGETLB_ANONHUGE_INODE = 2;
/** The name of the file behind MAP_HUGETLB|MAP_ANONYMOUS. */
export const HUGETLB_ANON_FILE = 'anon_hugepage';
/** ZAP_FLAG_DROP_MARKER (include/linux/mm.h), as the truncation passes it. */
const ZAP_FLAG_DROP_MARKER = 1 << 0;

/** struct hugetlbfs_inode_info, reduced to the memfd seals. */
export interface hugetlbfs_inode_info {
  seals: number;
}

/** HUGETLBFS_I(inode) */
export function HUGETLBFS_I(i: inode): hugetlbfs_inode_info {
  return i.i_private as hugetlbfs_inode_info;
}

/**
 * The superblock of the internal hugetlbfs mount of the default hstate
 * (hugetlbfs_vmount[default_hstate_idx]): nothing is ever written back (noop backing
 * device), so shared writable mappings need no dirty tracking (O-1).
 * @kernel fs/hugetlbfs/inode.c:init_hugetlbfs_fs, hugetlbfs_fill_super (all versions)
 */
export function hugetlbfs_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.hugetlbfs_sb as super_block | undefined) ??= {
    s_type: 'hugetlbfs',
    s_nowriteback: true,
    s_op: { evict_inode: hugetlbfs_evict_inode },
  });
}

/**
 * hugetlbfs_aops: dirty_folio = noop_dirty_folio (no write_begin/write_end in the model).
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_aops (all versions)
 */
export const hugetlbfs_aops: address_space_operations = {
  name: 'hugetlbfs_aops',
  dirty_folio: (m, f) => noop_dirty_folio(m, f),
};

/**
 * is_file_hugepages(file): a hugetlbfs file (or a SysV SHM_HUGETLB segment).
 * @kernel include/linux/hugetlb.h:is_file_hugepages (all versions; FOP_HUGE_PAGES v6.12+,
 *   f_op == &hugetlbfs_file_operations before)
 */
export function is_file_hugepages(f: file): boolean {
  return f.f_op === hugetlbfs_file_operations;
}

/**
 * hugetlbfs_get_inode(sb, idmap, dir, mode, dev): a new regular hugetlbfs inode with its
 * reserve map (i_data.i_private_data) and F_SEAL_SEAL.
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_get_inode (all versions)
 */
export function hugetlbfs_get_inode(sb: super_block): inode {
  const resv: resv_map = resv_map_alloc();
  const i = new_inode(sb, 'reg', hugetlbfs_aops);
  i.i_mapping.private_data = resv;
  const info: hugetlbfs_inode_info = { seals: F_SEAL_SEAL };
  i.i_private = info;
  return i;
}

/** PGOFF_LOFFT_MAX: the pgoff bits that would overflow a loff_t byte offset. */
const PGOFF_LOFFT_MAX_PAGES = 2 ** (63 - 12 - 1);

/**
 * hugetlbfs_file_mmap(file, vma): the VMA becomes VM_HUGETLB|VM_DONTEXPAND with
 * hugetlb_vm_ops; the file offset must be huge-page aligned (-EINVAL); the huge pages of
 * the mapping are reserved (hugetlb_reserve_pages: a private mapping reserves all of
 * them, a shared one what the file has not reserved yet) and a failure is -ENOMEM
 * (MAP_HUGETLB with nr_hugepages 0). A writable mapping extends i_size to its end.
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_file_mmap (all versions)
 * Locking: mmap_lock held for write; the inode lock (not modelled: mmap_lock serialises
 *   the model's mappers).
 * Return: 0, -EINVAL or -ENOMEM.
 */
export function* hugetlbfs_file_mmap(f: file, vma: vm_area_struct): Op<number> {
  const i = f.f_inode;
  const h = hstate_file(f);
  // If you add any error returns here, do so after setting VM_HUGETLB, so
  // is_vm_hugetlb_page tests below unmap_region go the right way when do_mmap unwinds.
  vma.vm_flags |= VM_HUGETLB | VM_DONTEXPAND;
  vma.vm_ops = hugetlb_vm_ops;
  // page based offset in vm_pgoff could be sufficiently large to overflow a loff_t when
  // converted to byte offset.
  if (vma.vm_pgoff >= PGOFF_LOFFT_MAX_PAGES) return -EINVAL;
  // must be huge page aligned
  if (vma.vm_pgoff % 2 ** huge_page_order(h) !== 0) return -EINVAL;
  const vma_len = vma.vm_end - vma.vm_start;
  const len = vma_len + vma.vm_pgoff * PAGE_SIZE;
  // check for overflow
  if (len < vma_len) return -EINVAL;
  let ret = -ENOMEM;
  // for SHM_HUGETLB, the pages are reserved in the shmget() call so skip reserving here
  // (S_PRIVATE inodes, VM_NORESERVE added; none in the model).
  const vm_flags = vma.vm_flags;
  const r = yield* hugetlb_reserve_pages(
    i,
    vma.vm_pgoff / 2 ** huge_page_order(h),
    Math.floor(len / huge_page_size(h)),
    vma,
    vm_flags,
  );
  if (r < 0) return ret;
  ret = 0;
  if (vma.vm_flags & VM_WRITE && i.i_size < len) i.i_size = len;
  return ret;
}

/**
 * hugetlbfs_file_operations (->mmap and ->get_unmapped_area).
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_file_operations (all versions)
 */
export const hugetlbfs_file_operations: file_operations = {
  name: 'hugetlbfs_file_operations',
  mmap: hugetlbfs_file_mmap,
};

/**
 * hugetlb_get_unmapped_area(file, addr, len, pgoff, flags): lengths and MAP_FIXED
 * addresses must be huge-page aligned (-EINVAL); a hint is rounded up to a huge page;
 * the search is top-down below mmap_base in huge-page steps.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_get_unmapped_area (v6.x generic version;
 *   arch/x86/mm/hugetlbpage.c's before, which rounded a hint down; the model's mm is an
 *   argument, the kernel uses current->mm)
 * Locking: mmap_lock held for write.
 * Return: the address, -EINVAL or -ENOMEM.
 */
export function hugetlb_get_unmapped_area(
  mm: mm_struct,
  f: file,
  addr: number,
  len: number,
  _pgoff: number,
  flags: number,
): number {
  const h = hstate_file(f);
  const hsz = huge_page_size(h);
  const MAP_FIXED = 0x10;
  if (len % hsz !== 0) return -EINVAL;
  if (flags & MAP_FIXED) {
    if (addr % hsz !== 0) return -EINVAL;
    if (addr + len > TASK_SIZE_MAX) return -ENOMEM;
    return addr;
  }
  if (addr) {
    const addr0 = Math.ceil(addr / hsz) * hsz;
    if (addr0 + len <= TASK_SIZE_MAX && !find_vma_intersection(mm, addr0, addr0 + len))
      return addr0;
  }
  // vm_unmapped_area() top-down with info.align_mask = huge_page_mask_align(file).
  let top = mm.mmap_base;
  for (let k = mm.mmap.length - 1; k >= -1; k--) {
    const v = k >= 0 ? mm.mmap[k]! : null;
    if (v && v.vm_start >= top) continue;
    const floor = v ? v.vm_end : 0x10000;
    const start = Math.floor((top - len) / hsz) * hsz;
    if (start >= floor) return start;
    if (v) top = Math.min(top, v.vm_start);
  }
  return -ENOMEM;
}

/* ---------------------------------------------------------------------------------- */
/* Truncation and eviction                                                             */
/* ---------------------------------------------------------------------------------- */

/** vma_offset_start(vma, start) / vma_offset_end(vma, end): the VMA part of a pgoff range. */
function vma_offset_start(vma: vm_area_struct, start: number): number {
  let offset = 0;
  if (vma.vm_pgoff < start) offset = (start - vma.vm_pgoff) * PAGE_SIZE;
  return vma.vm_start + offset;
}
function vma_offset_end(vma: vm_area_struct, end: number): number {
  if (!end) return vma.vm_end;
  const t_end = (end - vma.vm_pgoff) * PAGE_SIZE + vma.vm_start;
  return Math.min(t_end, vma.vm_end);
}

/** The VMAs of the mapping overlapping pgoffs [start, last] (vma_interval_tree_foreach). */
function i_mmap_overlapping(i: inode, start: number, last: number): vm_area_struct[] {
  return [...i.i_mapping.i_mmap]
    .filter((v) => {
      const vlast = v.vm_pgoff + (v.vm_end - v.vm_start) / PAGE_SIZE - 1;
      return v.vm_pgoff <= last && vlast >= start;
    })
    .sort((a, b) => a.vm_pgoff - b.vm_pgoff);
}

/**
 * hugetlb_vmdelete_list(root, start, end, zap_flags): zaps [start, end) of the file
 * (end 0: to EOF) in every VMA that maps it, private COWed pages included.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_vmdelete_list (all versions)
 * Locking: i_mmap_rwsem held for write.
 */
function* hugetlb_vmdelete_list(i: inode, start: number, end: number, zap_flags: number): Op<void> {
  for (const vma of i_mmap_overlapping(i, start, end ? end - 1 : Infinity)) {
    const v_start = vma_offset_start(vma, start);
    const v_end = vma_offset_end(vma, end);
    if (v_start >= v_end) continue;
    yield* unmap_hugepage_range(vma, v_start, v_end, null, zap_flags);
  }
}

/**
 * hugetlb_unmap_file_folio(h, mapping, folio, index): a folio faulted in again after the
 * truncation's unmap is unmapped from every VMA that still maps its pfn.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_unmap_file_folio (v6.1+; hugetlb_vmdelete_list
 *   of the one page before)
 * Locking: the hugetlb fault mutex held; takes i_mmap_rwsem for write.
 */
function* hugetlb_unmap_file_folio(h: hstate, i: inode, f: folio, index: number): Op<void> {
  const start = index * 2 ** huge_page_order(h);
  const end = (index + 1) * 2 ** huge_page_order(h);
  const mapping = i.i_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  for (const vma of i_mmap_overlapping(i, start, end - 1)) {
    const v_start = vma_offset_start(vma, start);
    const v_end = vma_offset_end(vma, end);
    const ptep = huge_pte_offset(vma.vm_mm, v_start, huge_page_size(h));
    if (!ptep) continue;
    const pte = ptep_get(ptep);
    if (pte_none(pte) || !pte_present(pte) || pte_pfn(pte) !== f) continue;
    yield* unmap_hugepage_range(vma, v_start, v_end, null, ZAP_FLAG_DROP_MARKER);
  }
  yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * remove_inode_single_folio(h, inode, mapping, folio, index, truncate_op): takes one
 * folio out of the file (unmapping it first if a fault mapped it again); a hole punch
 * (!truncate_op) gives its reservation back at once.
 * @kernel fs/hugetlbfs/inode.c:remove_inode_single_folio (v6.1+; inline in
 *   remove_inode_hugepages before)
 * Locking: the hugetlb fault mutex held.
 * Return: true (the folio was removed).
 */
function* remove_inode_single_folio(
  h: hstate,
  i: inode,
  f: folio,
  index: number,
  truncate_op: boolean,
): Op<boolean> {
  // If folio is mapped, it was faulted in after being unmapped in caller.
  if (folio_mapped(f)) yield* hugetlb_unmap_file_folio(h, i, f, index);
  yield* folio_lock(f);
  yield* hugetlb_delete_from_page_cache(f);
  if (!truncate_op) yield* hugetlb_unreserve_pages(i, index, index + 1, 1);
  yield* folio_unlock(f);
  return true;
}

/**
 * remove_inode_hugepages(inode, lstart, lend): removes the file's folios from lstart
 * (bytes) on; truncation (lend = LLONG_MAX) then gives back the reservations beyond
 * lstart, less the pages removed. The folios go back to the pool when their last
 * reference goes.
 * @kernel fs/hugetlbfs/inode.c:remove_inode_hugepages (all versions)
 * Locking: takes each page's hugetlb fault mutex.
 */
export function* remove_inode_hugepages(i: inode, lstart: number, lend: number): Op<void> {
  const h = hstate_inode(i);
  const mapping = i.i_mapping;
  const truncate_op = lend === Infinity;
  const start = Math.floor(lstart / PAGE_SIZE);
  const end = lend === Infinity ? Infinity : Math.floor(lend / PAGE_SIZE);
  let freed = 0;
  // filemap_get_folios(mapping, &next, end - 1, &fbatch): each folio with a reference.
  yield { obj: `mapping${mapping.id}.i_pages`, kind: 'read', what: 'filemap_get_folios' };
  const batch = [...mapping.i_pages.entries()]
    .filter(([idx]) => idx >= start && idx < end)
    .sort((a, b) => a[0] - b[0])
    .map(([, f]) => f);
  for (const f of batch) folio_get(f);
  for (const f of batch) {
    const index = folio_index(f) / folio_nr_pages(f);
    const m = hugetlb_fault_mutex(mapping, index);
    yield* mutex_lock(m);
    // Remove folio that was part of folio_batch.
    if (yield* remove_inode_single_folio(h, i, f, index, truncate_op)) freed++;
    yield* mutex_unlock(m);
  }
  for (const f of batch) folio_put(f); // folio_batch_release
  if (truncate_op)
    yield* hugetlb_unreserve_pages(i, Math.floor(lstart / huge_page_size(h)), Infinity, freed);
}

/**
 * hugetlbfs_evict_inode(inode): the last reference to the (unlinked) inode: its folios
 * are removed and the reserve map released.
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_evict_inode (all versions)
 */
export function* hugetlbfs_evict_inode(i: inode): Op<void> {
  yield* remove_inode_hugepages(i, 0, Infinity);
  const resv = i.i_mapping.private_data as resv_map | null;
  // Only regular and link inodes have associated reserve maps
  if (resv) resv_map_release(resv);
}

/**
 * hugetlb_vmtruncate(inode, offset): the new size; every mapping loses the pages
 * beyond it, then the file does.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_vmtruncate (all versions)
 * Locking: the inode lock; takes i_mmap_rwsem for write.
 */
function* hugetlb_vmtruncate(i: inode, offset: number): Op<void> {
  const h = hstate_inode(i);
  BUG_ON(offset % huge_page_size(h) !== 0, 'BUG_ON(offset & ~huge_page_mask(h))');
  const pgoff = offset / PAGE_SIZE;
  i.i_size = offset;
  const mapping = i.i_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  if (mapping.i_mmap.size) yield* hugetlb_vmdelete_list(i, pgoff, 0, ZAP_FLAG_DROP_MARKER);
  yield* up_write(mapping.i_mmap_rwsem);
  yield* remove_inode_hugepages(i, offset, Infinity);
}

/**
 * hugetlbfs_setattr(idmap, dentry, attr): a size change must be a multiple of the huge
 * page size (-EINVAL) and respect F_SEAL_SHRINK/F_SEAL_GROW (-EPERM); then
 * hugetlb_vmtruncate.
 * @kernel fs/hugetlbfs/inode.c:hugetlbfs_setattr (all versions)
 * Return: 0 or -errno.
 */
export function* hugetlbfs_setattr(i: inode, attr: iattr): Op<number> {
  const h = hstate_inode(i);
  const info = HUGETLBFS_I(i);
  if (attr.ia_valid & ATTR_SIZE) {
    const oldsize = i.i_size;
    const newsize = attr.ia_size;
    if (newsize % huge_page_size(h) !== 0) return -EINVAL;
    // protected by i_rwsem
    if (
      (newsize < oldsize && info.seals & F_SEAL_SHRINK) ||
      (newsize > oldsize && info.seals & F_SEAL_GROW)
    )
      return -EPERM;
    yield* hugetlb_vmtruncate(i, newsize);
  }
  return 0;
}

set_fstype_iops('hugetlbfs', { name: 'hugetlbfs_inode_operations', setattr: hugetlbfs_setattr });

/* ---------------------------------------------------------------------------------- */
/* hugetlb_file_setup                                                                  */
/* ---------------------------------------------------------------------------------- */

/**
 * hstate_sizelog(page_size_log): 0 is the default hstate; 21 (2 MiB) the one hstate of
 * the model; anything else (1 GiB pages included) has none.
 * @kernel include/linux/hugetlb.h:hstate_sizelog (all versions)
 */
export function hstate_sizelog(page_size_log: number): hstate | null {
  if (!page_size_log) return default_hstate();
  if (page_size_log === huge_page_shift(default_hstate())) return default_hstate();
  return null;
}

/**
 * hugetlb_file_setup(name, size, acctflag, creat_flags, page_size_log): an unlinked file
 * on the internal hugetlbfs mount of the page size asked for (-ENODEV without one), of
 * i_size size, open O_RDWR. MAP_HUGETLB and MFD_HUGETLB pass VM_NORESERVE: their pages are
 * reserved at mmap time.
 * @kernel fs/hugetlbfs/inode.c:hugetlb_file_setup (all versions; a user_struct argument
 *   for SHM accounting before v5.15)
 * Return: the file, or -errno (ERR_PTR): -ENODEV, -ENOSYS without CONFIG_HUGETLBFS,
 *   -ENOMEM when the reservation fails.
 * Model: the reservation at file setup (SysV SHM_HUGETLB, without VM_NORESERVE) is not
 *   modelled and stops the run with an error.
 */
export function hugetlb_file_setup(
  name: string,
  size: number,
  acctflag: bigint,
  creat_flags: number,
  page_size_log: number,
): file | number {
  if (!hugepages_supported()) return -ENOSYS; // the !CONFIG_HUGETLBFS stub
  const h = hstate_sizelog(page_size_log);
  if (!h) return -ENODEV;
  if (!(acctflag & VM_NORESERVE))
    throw new Error('hugetlb_file_setup: reserving at file setup (SHM_HUGETLB) is not modelled');
  const i = hugetlbfs_get_inode(hugetlbfs_sb());
  void creat_flags; // HUGETLB_SHMFS_INODE would set S_PRIVATE
  i.i_size = size;
  i.i_nlink = 0; // clear_nlink(inode)
  // hugetlb_reserve_pages(inode, 0, size >> huge_page_shift, NULL, acctflag) with
  // VM_NORESERVE: nothing to reserve.
  return alloc_file(name, O_RDWR, i, hugetlbfs_file_operations);
}
