/**
 * shmem/tmpfs: files whose page cache is their only storage (the superblock has
 * s_nowriteback: nothing is ever written back, so shared writable mappings get no
 * write-notify), shared anonymous memory (shmem_zero_setup for MAP_SHARED|MAP_ANONYMOUS
 * and MAP_SHARED of /dev/zero), and their faults (shmem_fault → shmem_get_folio): a
 * missing page is allocated zeroed, swap-backed, and added to the file's page cache; it
 * counts as MM_SHMEMPAGES (mm_counter_file) once mapped.
 *
 * Left out: swap (shmem_writeout), huge pages (shmem_enabled defaults to never), block
 * and inode accounting (size limits), fallocate holes, userfaultfd, NUMA policies,
 * seals on mmap (no F_ADD_SEALS in the model), xattrs and the tmpfs namespace (files are
 * created directly, not through a mount).
 *
 * @kernel mm/shmem.c (all versions; shmem_getpage_gfp before v6.1)
 */
import type { Op } from '../../sched/index.js';
import { currentKernel } from '../kernel/kernel.js';
import type {
  address_space,
  address_space_operations,
  file,
  file_operations,
  folio,
  inode,
  page,
  super_block,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import {
  VM_FAULT_HWPOISON,
  VM_FAULT_LOCKED,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
} from '../include/linux/mm.js';
import { EINVAL, EEXIST, ENOENT, ENOMEM, IS_ERR } from '../include/linux/errno.js';

/** EFBIG (errno-base.h; not in the shared errno table). */
const EFBIG = 27;
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { fput } from './vma.js';
import {
  __folio_set_swapbacked,
  __folio_set_locked,
  folio_mark_uptodate,
  folio_nr_pages,
  folio_raw_mapping,
  folio_test_uptodate,
} from '../include/linux/page-flags.js';
import { folio_put } from '../include/linux/page_ref.js';
import { alloc_pages, GFP_HIGHUSER_MOVABLE } from './page_alloc.js';
import { phys_clear_frame, phys_write } from './sparse.js';
import {
  __filemap_add_folio,
  filemap_dirty_folio,
  filemap_get_entry,
  folio_lock,
  folio_mark_dirty,
  folio_unlock,
} from './filemap.js';
import { WARN_ON_ONCE } from '../kernel/panic.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';

/** enum sgp_type (include/linux/shmem_fs.h). */
export const SGP_READ = 0;
export const SGP_NOALLOC = 1;
export const SGP_CACHE = 2;
export const SGP_WRITE = 3;
export const SGP_FALLOC = 4;

/** F_SEAL_* (include/uapi/linux/fcntl.h). */
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
export const F_SEAL_EXEC = 0x0020;

/** MAX_LFS_FILESIZE on 64-bit. */
const MAX_LFS_FILESIZE = Number.MAX_SAFE_INTEGER;

/** struct shmem_inode_info, reduced: the seals and the link count. */
export interface shmem_inode_info {
  seals: number;
  /** i_nlink: 0 for files from shmem_file_setup / memfd (unlinked at birth). */
  i_nlink: number;
}

/** SHMEM_I(inode) */
export function SHMEM_I(i: inode): shmem_inode_info {
  return i.i_private as shmem_inode_info;
}

/** The tmpfs superblock of the kernel instance (shm_mnt). */
export function shmem_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.shmem_sb as super_block | undefined) ??= {
    s_type: 'tmpfs',
    s_nowriteback: true,
  });
}

/**
 * shmem_aops: dirty_folio only marks the folio (noop_dirty_folio); no ->read_folio (a
 * hole is a new zeroed folio) and no ->writepage (no swap in the model).
 * @kernel mm/shmem.c:shmem_aops (all versions)
 */
export const shmem_aops: address_space_operations = {
  name: 'shmem_aops',
  dirty_folio: (m, f) => filemap_dirty_folio(m, f),
};

/** shmem_mapping(mapping): is this a shmem file's page cache? */
export function shmem_mapping(mapping: address_space): boolean {
  return mapping.a_ops === shmem_aops;
}

/** vma_is_shmem(vma) */
export function vma_is_shmem(vma: vm_area_struct): boolean {
  return vma.vm_ops === shmem_vm_ops || vma.vm_ops === shmem_anon_vm_ops;
}

/** vmf_error(err): -ENOMEM ⇒ OOM, -EHWPOISON ⇒ HWPOISON, others ⇒ SIGBUS (include/linux/mm.h). */
export function vmf_error(err: number): vm_fault_t {
  if (err === -ENOMEM) return VM_FAULT_OOM;
  if (err === -133) return VM_FAULT_HWPOISON;
  return VM_FAULT_SIGBUS;
}

/**
 * shmem_add_to_page_cache(folio, mapping, index): the cache takes its references and the
 * folio its mapping and index; nrpages grows.
 * @kernel mm/shmem.c:shmem_add_to_page_cache (all versions)
 * Locking: the folio is locked and new.
 * Return: 0 or -EEXIST.
 */
function* shmem_add_to_page_cache(f: folio, mapping: address_space, index: number): Op<number> {
  return yield* __filemap_add_folio(mapping, f, index);
}

/**
 * shmem_alloc_and_add_folio(inode, index): a new locked, swap-backed folio in the cache.
 * @kernel mm/shmem.c:shmem_alloc_and_add_folio (v6.7+; shmem_alloc_folio + add before)
 * Return: the folio (locked, one reference for the caller) or -ENOMEM / -EEXIST.
 */
function* shmem_alloc_and_add_folio(i: inode, index: number): Op<folio | number> {
  const p = alloc_pages(GFP_HIGHUSER_MOVABLE, 0);
  if (p === null) return -ENOMEM;
  const f = p as number as folio;
  __folio_set_locked(f);
  __folio_set_swapbacked(f);
  const err = yield* shmem_add_to_page_cache(f, i.i_mapping, index);
  if (err) {
    folio_put(f);
    return err;
  }
  return f;
}

/**
 * shmem_get_folio(inode, index, sgp): the folio at index, locked and referenced. A
 * cached folio is returned (truncation rechecked); a hole is SGP_READ ⇒ null,
 * SGP_NOALLOC ⇒ -ENOENT, otherwise a new folio is allocated and, except for SGP_WRITE,
 * zeroed and marked uptodate. SGP_READ/SGP_CACHE beyond i_size ⇒ -EINVAL.
 * @kernel mm/shmem.c:shmem_get_folio_gfp (v6.1+; shmem_getpage_gfp before)
 * Locking: may sleep on the folio lock.
 * Return: the locked folio, null (SGP_READ hole), or -errno.
 */
export function* shmem_get_folio(i: inode, index: number, sgp: number): Op<folio | null | number> {
  const mapping = i.i_mapping;
  if (WARN_ON_ONCE(!shmem_mapping(mapping))) return -EINVAL;
  if (index > Math.floor(MAX_LFS_FILESIZE / PAGE_SIZE)) return -EFBIG;
  for (;;) {
    if (sgp <= SGP_CACHE && index * PAGE_SIZE >= i.i_size) return -EINVAL;
    const found = yield* filemap_get_entry(mapping, index);
    let f: folio;
    if (found !== null) {
      yield* folio_lock(found);
      // Has the folio been truncated?
      if (folio_raw_mapping(found) !== mapping) {
        yield* folio_unlock(found);
        folio_put(found);
        continue;
      }
      if (folio_test_uptodate(found)) return found;
      if (sgp === SGP_READ) {
        yield* folio_unlock(found);
        folio_put(found);
        return null;
      }
      f = found;
    } else {
      if (sgp === SGP_READ) return null;
      if (sgp === SGP_NOALLOC) return -ENOENT;
      const r = yield* shmem_alloc_and_add_folio(i, index);
      if (IS_ERR(r)) {
        if (r === -EEXIST) continue;
        return r;
      }
      f = r as folio;
      if (sgp === SGP_FALLOC) sgp = SGP_WRITE;
    }
    // clear: let SGP_WRITE callers fill the folio themselves.
    if (sgp !== SGP_WRITE && !folio_test_uptodate(f)) {
      for (let k = 0; k < folio_nr_pages(f); k++) phys_clear_frame(f + k);
      folio_mark_uptodate(f);
    }
    // Perhaps the file has been truncated since we checked.
    if (sgp <= SGP_CACHE && index * PAGE_SIZE >= i.i_size) {
      yield* folio_unlock(f);
      folio_put(f);
      return -EINVAL;
    }
    return f;
  }
}

/**
 * shmem_fault(vmf): ->fault of shmem: the folio at vmf->pgoff from shmem_get_folio
 * (SGP_CACHE: allocated if missing, SIGBUS beyond EOF), returned locked.
 * @kernel mm/shmem.c:shmem_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: VM_FAULT_LOCKED with vmf->page set, or vmf_error(err).
 */
export function* shmem_fault(vmf: vm_fault): Op<vm_fault_t> {
  const i = vmf.vma.vm_file!.f_inode;
  WARN_ON_ONCE(vmf.page !== null);
  const r = yield* shmem_get_folio(i, vmf.pgoff, SGP_CACHE);
  if (r !== null && r < 0) return vmf_error(r);
  if (r === null) return 0;
  vmf.page = r as number as page;
  return VM_FAULT_LOCKED;
}

/**
 * shmem_vm_ops / shmem_anon_vm_ops: ->fault = shmem_fault, no ->page_mkwrite (so no
 * write-notify). The anon variant marks shared anonymous memory and unlinked files.
 * @kernel mm/shmem.c:shmem_vm_ops, shmem_anon_vm_ops (the anon ops exist in newer kernels,
 *   shmem_vm_ops served both before; the model uses them in every version, with the same
 *   behaviour)
 */
export const shmem_vm_ops: vm_operations_struct = { name: 'shmem_vm_ops', fault: shmem_fault };
export const shmem_anon_vm_ops: vm_operations_struct = {
  name: 'shmem_anon_vm_ops',
  fault: shmem_fault,
};

/**
 * shmem_mmap(file, vma): sets vm_ops.
 * @kernel mm/shmem.c:shmem_mmap (all versions)
 * Locking: mmap_lock held for write.
 * Return: 0.
 * Left out: the F_SEAL_WRITE/F_SEAL_FUTURE_WRITE check, file_accessed.
 */
export function* shmem_mmap(file: file, vma: vm_area_struct): Op<number> {
  vma.vm_ops = SHMEM_I(file.f_inode).i_nlink ? shmem_vm_ops : shmem_anon_vm_ops;
  return 0;
}

/** shmem_file_operations (the parts mappings use). */
export const shmem_file_operations: file_operations = {
  name: 'shmem_file_operations',
  mmap: shmem_mmap,
};

/**
 * shmem_get_inode(sb, ...): a new tmpfs inode with its shmem info (seals F_SEAL_SEAL).
 * @kernel mm/shmem.c:shmem_get_inode (all versions)
 */
export function shmem_get_inode(nlink: number): inode {
  const i = new_inode(shmem_sb(), 'reg', shmem_aops);
  const info: shmem_inode_info = { seals: F_SEAL_SEAL, i_nlink: nlink };
  i.i_private = info;
  i.i_nlink = nlink;
  return i;
}

/**
 * __shmem_file_setup(name, size, flags): an unlinked tmpfs file of the given size, open
 * read-write.
 * @kernel mm/shmem.c:__shmem_file_setup (all versions)
 * Return: the file, or -EINVAL for a negative or too large size.
 */
function __shmem_file_setup(name: string, size: number, _flags: bigint): file | number {
  if (size < 0 || size > MAX_LFS_FILESIZE) return -EINVAL;
  const i = shmem_get_inode(0);
  i.i_size = size;
  return alloc_file(name, O_RDWR, i, shmem_file_operations);
}

/**
 * shmem_file_setup(name, size, flags): an unlinked shmem file (SysV shm, memfd).
 * @kernel mm/shmem.c:shmem_file_setup (all versions)
 * Return: the file or -errno (ERR_PTR).
 */
export function shmem_file_setup(name: string, size: number, flags: bigint): file | number {
  return __shmem_file_setup(name, size, flags);
}

/**
 * shmem_kernel_file_setup(name, size, flags): as shmem_file_setup, S_PRIVATE.
 * @kernel mm/shmem.c:shmem_kernel_file_setup (all versions)
 */
export function shmem_kernel_file_setup(name: string, size: number, flags: bigint): file | number {
  return __shmem_file_setup(name, size, flags);
}

/**
 * shmem_zero_setup(vma): shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or MAP_SHARED
 * of /dev/zero) becomes a "dev/zero" shmem file of the VMA's size; the VMA gets the file
 * and shmem_anon_vm_ops.
 * @kernel mm/shmem.c:shmem_zero_setup (all versions; shmem_vm_ops in older kernels)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function shmem_zero_setup(vma: vm_area_struct): number {
  const size = vma.vm_end - vma.vm_start;
  const f = shmem_kernel_file_setup('dev/zero', size, vma.vm_flags);
  if (typeof f === 'number') return f;
  if (vma.vm_file) fput(vma.vm_file);
  vma.vm_file = f;
  vma.vm_ops = shmem_anon_vm_ops;
  return 0;
}

/**
 * Creates a linked tmpfs file holding `contents` (the tool's helper: what open(O_CREAT) +
 * write(2) on a tmpfs mount would leave): its pages are in the page cache, uptodate and
 * dirty, unreferenced but by the cache.
 * Return: the open file (O_RDWR).
 */
export function* createTmpfsFile(path: string, contents: Uint8Array): Op<file> {
  const i = shmem_get_inode(1);
  i.i_size = contents.length;
  const f = alloc_file(path, O_RDWR, i, shmem_file_operations);
  for (let off = 0; off < contents.length; off += PAGE_SIZE) {
    const got = yield* shmem_get_folio(i, off / PAGE_SIZE, SGP_WRITE);
    if (got === null || got < 0)
      throw new Error(`createTmpfsFile: cannot allocate page ${off / PAGE_SIZE} (${String(got)})`);
    const r = got as folio;
    const chunk = contents.subarray(off, Math.min(off + PAGE_SIZE, contents.length));
    phys_clear_frame(r);
    phys_write(r * PAGE_SIZE, chunk);
    folio_mark_uptodate(r);
    yield* folio_mark_dirty(r);
    yield* folio_unlock(r);
    folio_put(r);
  }
  return f;
}
