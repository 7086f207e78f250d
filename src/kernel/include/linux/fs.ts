/**
 * The parts of include/linux/fs.h the system-call layer needs beyond what mm_types.ts
 * carries: struct kiocb and the IOCB_* flags, the read/write side of struct
 * file_operations (read_iter, write_iter, llseek, the FMODE_* capability bits an ->open
 * sets), struct inode_operations (->setattr for truncate), and the open(2) flags.
 *
 * mm_types.ts's file_operations keeps only what mappings use (->mmap, ->release). The
 * other hooks are attached here to the same file_operations objects through a registry,
 * so files made by any part of the model (memfd_create, shmem_file_setup, the ext4
 * helpers) get their read/write paths from the file system that owns them, as the kernel
 * finds them in one struct. Likewise ->setattr is registered per file system type (the
 * model's file systems give all their inodes the same inode_operations).
 *
 * @kernel include/linux/fs.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type { file, file_operations, inode, super_block } from './mm_types.js';
import type { iov_iter } from './uio.js';

/** open(2) flags (include/uapi/asm-generic/fcntl.h, x86 values). */
export const O_ACCMODE = 0o3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;

/** f_mode bits beyond FMODE_READ/FMODE_WRITE (include/linux/fs.h, v6.x values). */
export const FMODE_LSEEK = 0x4;
export const FMODE_PREAD = 0x8;
export const FMODE_PWRITE = 0x10;
export const FMODE_ATOMIC_POS = 0x8000;
export const FMODE_CAN_READ = 0x20000;
export const FMODE_CAN_WRITE = 0x40000;
export const FMODE_STREAM = 0x200000;
/** The file supports O_DIRECT (v5.19+, a2ad63daa88b "VFS: add FMODE_CAN_ODIRECT file flag"). */
export const FMODE_CAN_ODIRECT = 0x400000;
export const FMODE_NOWAIT = 0x8000000;
export const FMODE_UNSIGNED_OFFSET = 0x2000;

/** kiocb->ki_flags (enum of IOCB_*). */
export const IOCB_HIPRI = 1 << 0;
export const IOCB_DSYNC = 1 << 1;
export const IOCB_SYNC = 1 << 2;
export const IOCB_NOWAIT = 1 << 3;
export const IOCB_APPEND = 1 << 4;
export const IOCB_EVENTFD = 1 << 16;
export const IOCB_DIRECT = 1 << 17;
export const IOCB_WRITE = 1 << 18;

/** MAX_RW_COUNT: INT_MAX & PAGE_MASK. */
export const MAX_RW_COUNT = 0x7ffff000;

/** struct kiocb, reduced. */
export interface kiocb {
  readonly ki_filp: file;
  ki_pos: number;
  ki_flags: number;
}

/**
 * iocb_flags(file): the IOCB_* flags an open file's f_flags imply.
 * @kernel include/linux/fs.h:iocb_flags (all versions)
 */
export function iocb_flags(f: file): number {
  let res = 0;
  if (f.f_flags & O_APPEND) res |= IOCB_APPEND;
  if (f.f_flags & O_DIRECT) res |= IOCB_DIRECT;
  if (f.f_flags & O_DSYNC) res |= IOCB_DSYNC;
  return res;
}

/**
 * init_sync_kiocb(kiocb, filp): a synchronous kiocb at the file's flags.
 * @kernel include/linux/fs.h:init_sync_kiocb (all versions)
 */
export function init_sync_kiocb(filp: file, pos: number): kiocb {
  return { ki_filp: filp, ki_pos: pos, ki_flags: iocb_flags(filp) };
}

/** The read/write half of struct file_operations. */
export interface file_operations_rw {
  /** ->read(file, buf, count, ppos): a user buffer, the position updated in place. */
  read?(f: file, buf: number, count: number, ppos: { pos: number }): Op<number>;
  /** ->write(file, buf, count, ppos) */
  write?(f: file, buf: number, count: number, ppos: { pos: number }): Op<number>;
  read_iter?(iocb: kiocb, to: iov_iter): Op<number>;
  write_iter?(iocb: kiocb, from: iov_iter): Op<number>;
  /**
   * ->open(inode, file): called by do_dentry_open after the file exists; may set
   * f_mode bits (FMODE_CAN_ODIRECT, FMODE_NOWAIT) and private_data. 0 or -errno.
   */
  open?(i: inode, f: file): Op<number>;
  /** Default f_mode bits do_dentry_open adds (FMODE_LSEEK|FMODE_PREAD|FMODE_PWRITE ...). */
  readonly fmode?: number;
}

const fopsRw = new WeakMap<file_operations, file_operations_rw>();

/**
 * Attaches the read/write hooks of a file_operations (the model's way of filling the rest
 * of the kernel's struct; called once per fops object by the file system that owns it).
 */
export function set_fops_rw(fops: file_operations, rw: file_operations_rw): void {
  fopsRw.set(fops, rw);
}

/** The read/write hooks of a file (empty when its file system has none). */
export function f_op_rw(f: file): file_operations_rw {
  return fopsRw.get(f.f_op) ?? (f.f_op as file_operations & file_operations_rw);
}

/** struct iattr, reduced to the size change of truncate. */
export interface iattr {
  ia_valid: number;
  ia_size: number;
}
export const ATTR_SIZE = 1 << 3;

/** struct inode_operations, reduced. */
export interface inode_operations {
  readonly name: string;
  /** ->setattr(idmap, dentry, iattr): 0 or -errno. */
  setattr?(i: inode, attr: iattr): Op<number>;
}

const fstypeIops = new Map<string, inode_operations>();
const inodeIops = new WeakMap<inode, inode_operations>();

/**
 * Sets the inode_operations the inodes of a file system type use (the model's file
 * systems give all their regular inodes one set; called once when the file system's
 * module loads).
 */
export function set_fstype_iops(s_type: string, iops: inode_operations): void {
  fstypeIops.set(s_type, iops);
}

/** inode->i_op = iops for one inode (anon inodes of pseudo file systems). */
export function set_inode_iops(i: inode, iops: inode_operations): void {
  inodeIops.set(i, iops);
}

/** inode->i_op */
export function i_op(i: inode): inode_operations | undefined {
  return inodeIops.get(i) ?? fstypeIops.get(i.i_sb.s_type);
}

/** The super_block of a file (file_inode(f)->i_sb). */
export function file_sb(f: file): super_block {
  return f.f_inode.i_sb;
}
