/**
 * Inodes, address spaces and open files, reduced to what mappings need.
 * @kernel fs/inode.c:new_inode, inode_init_once, fs/file_table.c:alloc_file_pseudo
 *   (all versions)
 * Locking: none (objects are private until published).
 */
import { currentKernel } from '../kernel/kernel.js';
import type {
  address_space,
  address_space_operations,
  file,
  file_operations,
  inode,
  super_block,
} from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import { rw_semaphore } from '../include/linux/spinlock.js';
import type { Op } from '../../sched/index.js';
import { truncate_inode_pages } from '../mm/filemap.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_DIRECT = 0o40000;
export const O_SYNC = 0o4010000;

/** Address-space operations of memory that is never written back. */
export const empty_aops: address_space_operations = { name: 'empty_aops' };

/** new_inode(sb): an inode with an empty page cache. */
export function new_inode(
  sb: super_block,
  kind: inode['i_kind'],
  a_ops: address_space_operations = empty_aops,
): inode {
  const k = currentKernel();
  const ino = k.nextId('ino');
  const mapping: address_space = {
    id: k.nextId('mapping'),
    host: null as never,
    i_mmap: new Set(),
    i_mmap_rwsem: new rw_semaphore(`inode${ino}.i_mmap_rwsem`),
    i_pages: new Map(),
    a_ops,
    nrpages: 0,
    flags: 0,
    private_data: null,
  };
  const i: inode = {
    i_ino: ino,
    i_size: 0,
    i_mapping: mapping,
    i_sb: sb,
    i_kind: kind,
    i_private: null,
    i_count: 1,
    i_nlink: 1,
  };
  mapping.host = i;
  return i;
}

/** f_mode for open flags (O_RDONLY, O_WRONLY, O_RDWR). */
export function open_fmode(flags: number): number {
  const acc = flags & 3;
  return (
    (acc === O_RDONLY || acc === O_RDWR ? FMODE_READ : 0) |
    (acc === O_WRONLY || acc === O_RDWR ? FMODE_WRITE : 0)
  );
}

/** alloc_file_pseudo(inode, name, flags, fops): an open file on the inode. */
export function alloc_file(path: string, flags: number, i: inode, fops: file_operations): file {
  return {
    id: currentKernel().nextId('file'),
    f_path: path,
    f_mode: open_fmode(flags),
    f_flags: flags,
    f_inode: i,
    f_mapping: i.i_mapping,
    f_op: fops,
    private_data: null,
    f_count: 1,
  };
}

/**
 * iput(inode): drops a reference; the last reference to an unlinked inode evicts it:
 * ->evict_inode, or truncate_inode_pages_final of its page cache.
 * @kernel fs/inode.c:iput, iput_final, evict (all versions)
 * Locking: may sleep; takes the locks truncation takes.
 */
export function* iput(i: inode): Op<void> {
  if (--i.i_count > 0 || i.i_nlink > 0) return;
  if (i.i_sb.s_op?.evict_inode) yield* i.i_sb.s_op.evict_inode(i);
  else yield* truncate_inode_pages(i.i_mapping, 0); // truncate_inode_pages_final
}

/** ihold(inode) */
export function ihold(i: inode): void {
  i.i_count++;
}
