/**
 * An ext4-like write-back file system, inode side: the superblock, inodes whose data
 * live on a "disk" (one Uint8Array per inode, in the ext4 inode info), the address-space
 * operations that move data between that disk and the page cache (read on a cache miss,
 * written back by filemap_write_and_wait_range), and ->page_mkwrite.
 *
 * Left out: block allocation (delayed allocation, ext4_da_get_block_prep: every offset
 * below i_size has storage), journaling (data=ordered / data=journal), extents, inline
 * data, DAX, quotas, ENOSPC, encryption and verity, i_size changes by writes.
 *
 * @kernel fs/ext4/inode.c (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import type {
  address_space,
  address_space_operations,
  file,
  folio,
  inode,
  super_block,
  vm_fault,
  vm_fault_t,
} from '../../include/linux/mm_types.js';
import { VM_FAULT_LOCKED, VM_FAULT_NOPAGE } from '../../include/linux/mm.js';
import { new_inode } from '../inode.js';
import {
  folio_index,
  folio_mark_uptodate,
  folio_raw_mapping,
} from '../../include/linux/page-flags.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import {
  filemap_dirty_folio,
  folio_lock,
  folio_mark_dirty,
  folio_unlock,
} from '../../mm/filemap.js';

/** struct ext4_inode_info, reduced to the file's data on the model's disk. */
export interface ext4_inode_info {
  disk: Uint8Array;
}

/** EXT4_I(inode) */
export function EXT4_I(i: inode): ext4_inode_info {
  return i.i_private as ext4_inode_info;
}

/** The ext4 superblock of the kernel instance (one mounted ext4 file system). */
export function ext4_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.ext4_sb as super_block | undefined) ??= { s_type: 'ext4', s_nowriteback: false });
}

/** The model's disk I/O: bytes of the file at [pos, pos + len), zeroes past the disk. */
function disk_read(i: inode, pos: number, len: number): Uint8Array {
  const d = EXT4_I(i).disk;
  const out = new Uint8Array(len);
  if (pos < d.length) out.set(d.subarray(pos, Math.min(d.length, pos + len)));
  return out;
}

function disk_write(i: inode, pos: number, data: Uint8Array): void {
  const info = EXT4_I(i);
  if (pos + data.length > info.disk.length) {
    const grown = new Uint8Array(pos + data.length);
    grown.set(info.disk);
    info.disk = grown;
  }
  info.disk.set(data, pos);
}

/**
 * ext4_read_folio(file, folio): reads the folio's file range from the disk (zeroes past
 * EOF), marks it uptodate and unlocks it.
 * @kernel fs/ext4/inode.c:ext4_read_folio (v5.19+; ext4_readpage before; both read through
 *   ext4_mpage_readpages)
 * Locking: the folio is locked on entry, unlocked on return.
 * Return: 0.
 */
export function* ext4_read_folio(_file: file | null, f: folio): Op<number> {
  const mapping = folio_raw_mapping(f) as address_space;
  const i = mapping.host;
  const pos = folio_index(f) * PAGE_SIZE;
  const valid = Math.max(0, Math.min(PAGE_SIZE, i.i_size - pos));
  const data = new Uint8Array(PAGE_SIZE);
  data.set(disk_read(i, pos, valid));
  phys_write(f * PAGE_SIZE, data);
  folio_mark_uptodate(f);
  yield* folio_unlock(f);
  return 0;
}

/**
 * ext4_writepage(mapping, folio): writes a folio's bytes below i_size to the disk (the
 * model's ->writepage; ext4 writes through ext4_writepages / ext4_do_writepages since
 * v6.x and ext4_writepage before).
 * @kernel fs/ext4/inode.c:ext4_writepages (all versions)
 * Locking: the folio is locked and under writeback (filemap holds both).
 * Return: 0.
 */
export function* ext4_writepage(mapping: address_space, f: folio): Op<number> {
  const i = mapping.host;
  const pos = folio_index(f) * PAGE_SIZE;
  const valid = Math.max(0, Math.min(PAGE_SIZE, i.i_size - pos));
  yield { obj: `ext4.inode${i.i_ino}.disk`, kind: 'write', what: 'ext4_writepages' };
  disk_write(i, pos, phys_read(f * PAGE_SIZE, valid));
  return 0;
}

/**
 * ext4_aops: ->read_folio from the disk, ->writepage to it, ->dirty_folio
 * (ext4_dirty_folio = filemap_dirty_folio once buffers are set up).
 * @kernel fs/ext4/inode.c:ext4_aops (all versions)
 */
export const ext4_aops: address_space_operations = {
  name: 'ext4_aops',
  read_folio: ext4_read_folio,
  writepage: ext4_writepage,
  dirty_folio: (m, f) => filemap_dirty_folio(m, f),
};

/**
 * A new regular ext4 inode whose disk holds `contents` and whose i_size is its length
 * (what ext4_new_inode + writing the data and syncing would leave). The tool's helper.
 */
export function ext4NewInode(contents: Uint8Array): inode {
  const i = new_inode(ext4_sb(), 'reg', ext4_aops);
  const info: ext4_inode_info = { disk: contents.slice() };
  i.i_private = info;
  i.i_size = contents.length;
  return i;
}

/**
 * ext4_page_mkwrite(vmf): write-notify for a shared ext4 mapping: locks the folio,
 * returns VM_FAULT_NOPAGE if it was truncated or lies beyond EOF (block_page_mkwrite's
 * -EFAULT), else marks it dirty and returns it locked.
 * @kernel fs/ext4/inode.c:ext4_page_mkwrite, fs/buffer.c:block_page_mkwrite (all
 *   versions; vmf_fs_error / block_page_mkwrite_return map the errors)
 * Locking: mmap_lock held for read; returns with the folio locked on success.
 * Return: VM_FAULT_LOCKED or VM_FAULT_NOPAGE.
 * Left out: block allocation (delalloc reservation), the journal, sb_start_pagefault,
 *   file_update_time, ENOSPC retries.
 */
export function* ext4_page_mkwrite(vmf: vm_fault): Op<vm_fault_t> {
  const i = vmf.vma.vm_file!.f_inode;
  const f = vmf.page! as number as folio;
  yield* folio_lock(f);
  if (folio_raw_mapping(f) !== i.i_mapping || folio_index(f) * PAGE_SIZE >= i.i_size) {
    // We overload EFAULT to mean page got truncated: vmf_fs_error(-EFAULT) = NOPAGE.
    yield* folio_unlock(f);
    return VM_FAULT_NOPAGE;
  }
  yield* folio_mark_dirty(f);
  return VM_FAULT_LOCKED;
}

/** The bytes of an ext4 file on the model's disk (for checking writeback). */
export function ext4DiskContents(i: inode): Uint8Array {
  return EXT4_I(i).disk.slice(0, i.i_size);
}
