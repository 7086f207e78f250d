/**
 * An ext4-like write-back file system, file side: mmap of a regular file
 * (ext4_file_mmap) with ext4_file_vm_ops = { fault: filemap_fault, page_mkwrite:
 * ext4_page_mkwrite }, so shared writable mappings are write-notified
 * (vma_wants_writenotify) and every first write after writeback goes through
 * ->page_mkwrite.
 *
 * Left out: block allocation, journaling and extents (see inode.ts), DAX (ext4_dax_vm_ops),
 * MAP_SYNC, read(2)/write(2), fault-around (filemap_map_pages).
 *
 * @kernel fs/ext4/file.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type {
  file,
  file_operations,
  vm_area_struct,
  vm_operations_struct,
} from '../../include/linux/mm_types.js';
import { filemap_fault } from '../../mm/filemap.js';
import { alloc_file, O_RDWR } from '../inode.js';
import { ext4_page_mkwrite, ext4NewInode } from './inode.js';

/**
 * ext4_file_vm_ops
 * @kernel fs/ext4/file.c:ext4_file_vm_ops (all versions; .map_pages not modelled)
 */
export const ext4_file_vm_ops: vm_operations_struct = {
  name: 'ext4_file_vm_ops',
  fault: filemap_fault,
  page_mkwrite: ext4_page_mkwrite,
};

/**
 * ext4_file_mmap(file, vma): sets ext4_file_vm_ops.
 * @kernel fs/ext4/file.c:ext4_file_mmap (all versions)
 * Locking: mmap_lock held for write.
 * Return: 0. (The forced-shutdown -EIO and MAP_SYNC -EOPNOTSUPP checks are not modelled.)
 */
export function* ext4_file_mmap(_file: file, vma: vm_area_struct): Op<number> {
  vma.vm_ops = ext4_file_vm_ops;
  return 0;
}

/** ext4_file_operations (the parts mappings use). */
export const ext4_file_operations: file_operations = {
  name: 'ext4_file_operations',
  mmap: ext4_file_mmap,
};

/**
 * Opens a new ext4 file holding `contents` on disk (nothing cached yet). The tool's
 * helper: creating and filling a file, then open(path, flags).
 * Return: the open file.
 */
export function createExt4File(path: string, contents: Uint8Array, flags = O_RDWR): file {
  return alloc_file(path, flags, ext4NewInode(contents), ext4_file_operations);
}
