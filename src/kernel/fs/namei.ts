/**
 * A minimal VFS namespace per kernel instance and the path walk of open(2):
 *   /          ext4 (the write-back file system of fs/ext4)
 *   /dev       devtmpfs with /dev/zero, /dev/null and (CONFIG_DEVMEM) /dev/mem
 *              (drivers/char/mem)
 *   /dev/shm   tmpfs (mm/shmem)
 *   /tmp       tmpfs
 *   /proc      /proc/<pid>/mem and /proc/self/mem (fs/proc/base)
 * The longest mount prefix of an absolute path picks the file system; inside a mount a
 * path is just a name (directories are implicit: any path under a mount can name a
 * file). A name holds one reference on its inode (the dentry's); every open takes
 * another, and unlink drops the name's.
 *
 * path_openat: lookup, O_CREAT (a new inode of the mount's file system; O_EXCL on an
 * existing name ⇒ -EEXIST), a missing name without O_CREAT ⇒ -ENOENT, then vfs_open:
 * do_dentry_open sets f_mode (the open mode, FMODE_CAN_READ/WRITE from the methods, the
 * file's default FMODE_LSEEK/PREAD/PWRITE), calls ->open, and refuses O_DIRECT on a file
 * that cannot do it (-EINVAL); O_TRUNC of a writable regular file truncates it.
 *
 * Left out: relative paths and dfd (AT_FDCWD only), symlinks, permissions (everything
 * runs as root), directories as files, rename, link counts beyond 0/1, O_TMPFILE,
 * O_PATH.
 *
 * @kernel fs/namei.c:do_filp_open, path_openat, do_open, lookup_open, do_unlinkat;
 *   fs/open.c:vfs_open, do_dentry_open, handle_truncate (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { file, file_operations, inode, super_block } from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import {
  ATTR_SIZE,
  FMODE_CAN_ODIRECT,
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  O_ACCMODE,
  O_CREAT,
  O_DIRECT,
  O_EXCL,
  O_TRUNC,
  f_op_rw,
  i_op,
  type file_operations_rw,
} from '../include/linux/fs.js';
import { EACCES, EEXIST, EINVAL, ENOENT, EPERM } from '../include/linux/errno.js';
import { currentKernel } from '../kernel/kernel.js';
import { get_current } from '../include/linux/sched.js';
import { alloc_file, ihold, iput, new_inode } from './inode.js';
import { fput } from './file_table.js';
import { ext4_file_operations } from './ext4/file.js';
import { ext4NewInode, ext4_sb } from './ext4/inode.js';
import {
  SHMEM_I,
  createTmpfsFile,
  shmem_file_operations,
  shmem_get_inode,
  shmem_sb,
} from '../mm/shmem.js';
import { mem_fops, null_fops, zero_fops } from '../drivers/char/mem.js';
import { proc_mem_operations, proc_pid_make_inode, proc_sb } from './proc/base.js';
import { find_get_task_by_vpid } from '../kernel/pid.js';
// The read/write and setattr hooks of ext4 and shmem attach themselves on load.
import './ext4/file.rw.js';
import '../mm/shmem.rw.js';

/** EISDIR (errno-base.h). */
const EISDIR = 21;

/** A mounted file system. */
export interface vfsmount {
  readonly mnt_mountpoint: string;
  readonly mnt_sb: super_block;
  readonly fstype: 'ext4' | 'tmpfs' | 'devtmpfs' | 'proc';
}

/** A name in a mount: its inode and the file_operations opens of it get. */
interface dentry {
  readonly d_inode: inode;
  readonly f_op: file_operations;
}

interface mnt_namespace {
  readonly mounts: vfsmount[];
  /** Per mount: name inside the mount → dentry. */
  readonly names: Map<vfsmount, Map<string, dentry>>;
}

function devtmpfs_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.devtmpfs_sb as super_block | undefined) ??= {
    s_type: 'devtmpfs',
    s_nowriteback: true,
  });
}

/**
 * The kernel instance's mount namespace, made on first use (the model's init: mount
 * the root, devtmpfs, /dev/shm, /tmp, /proc).
 */
export function init_mnt_ns(): mnt_namespace {
  const k = currentKernel();
  let ns = k.sub.mnt_ns as mnt_namespace | undefined;
  if (ns) return ns;
  const mounts: vfsmount[] = [
    { mnt_mountpoint: '/', mnt_sb: ext4_sb(), fstype: 'ext4' },
    { mnt_mountpoint: '/dev', mnt_sb: devtmpfs_sb(), fstype: 'devtmpfs' },
    { mnt_mountpoint: '/dev/shm', mnt_sb: shmem_sb(), fstype: 'tmpfs' },
    { mnt_mountpoint: '/tmp', mnt_sb: shmem_sb(), fstype: 'tmpfs' },
    { mnt_mountpoint: '/proc', mnt_sb: proc_sb(), fstype: 'proc' },
  ];
  ns = { mounts, names: new Map(mounts.map((m) => [m, new Map<string, dentry>()])) };
  k.sub.mnt_ns = ns;
  const dev = ns.names.get(mounts[1]!)!;
  dev.set('zero', { d_inode: new_inode(devtmpfs_sb(), 'chr'), f_op: zero_fops });
  dev.set('null', { d_inode: new_inode(devtmpfs_sb(), 'chr'), f_op: null_fops });
  if (k.config.CONFIG_DEVMEM === true)
    dev.set('mem', { d_inode: new_inode(devtmpfs_sb(), 'chr'), f_op: mem_fops });
  return ns;
}

/**
 * devtmpfs_create_node(name, fops): the character device node /dev/<name> that
 * device_create()/misc_register() make appear (e.g. "vfio/vfio", "vfio/3"); an existing
 * node is kept. Return: the node's inode.
 * @kernel drivers/base/devtmpfs.c:devtmpfs_create_node (all versions; model helper)
 */
export function devtmpfs_create_node(name: string, f_op: file_operations): inode {
  const ns = init_mnt_ns();
  const dev = ns.names.get(ns.mounts[1]!)!;
  let d = dev.get(name);
  if (!d) {
    d = { d_inode: new_inode(devtmpfs_sb(), 'chr'), f_op };
    dev.set(name, d);
  }
  return d.d_inode;
}

/**
 * devtmpfs_delete_node(name): removes /dev/<name> (device_destroy). Open files keep their inode.
 * @kernel drivers/base/devtmpfs.c:devtmpfs_delete_node (all versions; model helper)
 */
export function devtmpfs_delete_node(name: string): void {
  const ns = init_mnt_ns();
  ns.names.get(ns.mounts[1]!)!.delete(name);
}

/** Splits an absolute path into its mount and the name inside it. */
function lookup_mnt(ns: mnt_namespace, path: string): { mnt: vfsmount; name: string } | null {
  if (!path.startsWith('/')) return null;
  const norm =
    '/' +
    path
      .split('/')
      .filter((c) => c && c !== '.')
      .join('/');
  let best: vfsmount | null = null;
  for (const m of ns.mounts) {
    const mp = m.mnt_mountpoint;
    if (norm === mp || mp === '/' || norm.startsWith(mp + '/')) {
      if (!best || mp.length > best.mnt_mountpoint.length) best = m;
    }
  }
  if (!best) return null;
  const mp = best.mnt_mountpoint;
  const name = mp === '/' ? norm.slice(1) : norm.slice(mp.length + 1);
  return { mnt: best, name };
}

/** A new regular inode of a mount's file system (the ->create of its directory). */
function fs_create(mnt: vfsmount): dentry | number {
  switch (mnt.fstype) {
    case 'ext4':
      return { d_inode: ext4NewInode(new Uint8Array(0)), f_op: ext4_file_operations };
    case 'tmpfs':
      return { d_inode: shmem_get_inode(1), f_op: shmem_file_operations };
    default:
      return -EACCES;
  }
}

/**
 * /proc lookups: "<pid>/mem" or "self/mem" name a fresh inode of the task.
 * @kernel fs/proc/base.c:proc_pid_lookup, proc_pident_lookup (all versions)
 */
function proc_lookup(name: string): dentry | number {
  const parts = name.split('/');
  if (parts.length !== 2 || parts[1] !== 'mem') return -ENOENT;
  const pid = parts[0] === 'self' ? get_current().tgid : Number(parts[0]);
  if (!Number.isInteger(pid)) return -ENOENT;
  const task = find_get_task_by_vpid(pid);
  if (!task) return -ENOENT;
  return { d_inode: proc_pid_make_inode(task), f_op: proc_mem_operations };
}

/**
 * do_dentry_open(f, open): f_mode from the open flags (plus FMODE_LSEEK|PREAD|PWRITE,
 * which stream files drop) and the file's methods, ->open, then the O_DIRECT check.
 * @kernel fs/open.c:do_dentry_open (all versions; FMODE_CAN_ODIRECT check v5.19+,
 *   a_ops->direct_IO before: the model uses the bit the file system's ->open sets for
 *   both)
 * Return: 0 or -errno.
 */
function* do_dentry_open(f: file): Op<number> {
  const rw: file_operations_rw = f_op_rw(f);
  f.f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE | (rw.fmode ?? 0);
  if (f.f_mode & FMODE_READ && (rw.read || rw.read_iter)) f.f_mode |= FMODE_CAN_READ;
  if (f.f_mode & FMODE_WRITE && (rw.write || rw.write_iter)) f.f_mode |= FMODE_CAN_WRITE;
  if (rw.open) {
    const error = yield* rw.open(f.f_inode, f);
    if (error) return error;
  }
  if (f.f_flags & O_DIRECT && !(f.f_mode & FMODE_CAN_ODIRECT)) return -EINVAL;
  return 0;
}

/**
 * handle_truncate(file): O_TRUNC: the size becomes 0 through ->setattr.
 * @kernel fs/namei.c:handle_truncate, fs/open.c:do_truncate (all versions)
 * Return: 0 or -errno.
 */
export function* do_truncate(i: inode, length: number): Op<number> {
  const iops = i_op(i);
  if (!iops?.setattr) return -EPERM;
  return yield* iops.setattr(i, { ia_valid: ATTR_SIZE, ia_size: length });
}

/**
 * do_filp_open(dfd, pathname, op): the open file for pathname, or -errno.
 * @kernel fs/namei.c:do_filp_open, path_openat, open_last_lookups, do_open (all versions)
 * Locking: none held on entry.
 * Return: the file (one reference) or -errno.
 */
export function* do_filp_open(pathname: string, flags: number, _mode: number): Op<file | number> {
  const ns = init_mnt_ns();
  const where = lookup_mnt(ns, pathname);
  if (!where) return -ENOENT;
  const { mnt, name } = where;
  yield { obj: `mnt:${mnt.mnt_mountpoint}`, kind: 'read', what: 'path_openat' };
  let d: dentry | number;
  if (name === '') return -EISDIR;
  if (mnt.fstype === 'proc') {
    if (flags & O_CREAT) return -EACCES;
    d = proc_lookup(name);
  } else {
    const names = ns.names.get(mnt)!;
    const found = names.get(name);
    if (found) {
      if (flags & O_CREAT && flags & O_EXCL) return -EEXIST;
      d = found;
    } else if (flags & O_CREAT) {
      d = fs_create(mnt);
      if (typeof d !== 'number') names.set(name, d);
    } else {
      d = -ENOENT;
    }
  }
  if (typeof d === 'number') return d;
  const i = d.d_inode;
  // The file's reference on the inode (the dentry's, taken by the path walk).
  ihold(i);
  const f = alloc_file(pathname, flags & ~O_CREAT, i, d.f_op);
  const err = yield* do_dentry_open(f);
  if (err) {
    fput(f);
    return err;
  }
  if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0 && i.i_kind === 'reg') {
    const e = yield* do_truncate(i, 0);
    if (e) {
      fput(f);
      return e;
    }
  }
  return f;
}

/**
 * do_unlinkat(dfd, name): removes a name; the inode loses its link and the name's
 * reference (it is evicted when the last open file goes).
 * @kernel fs/namei.c:do_unlinkat, vfs_unlink (all versions)
 * Return: 0 or -errno.
 */
export function* do_unlinkat(pathname: string): Op<number> {
  const ns = init_mnt_ns();
  const where = lookup_mnt(ns, pathname);
  if (!where || where.name === '') return -ENOENT;
  const names = ns.names.get(where.mnt)!;
  const d = names.get(where.name);
  if (!d) return -ENOENT;
  if (where.mnt.fstype === 'devtmpfs' || where.mnt.fstype === 'proc') return -EPERM;
  names.delete(where.name);
  const i = d.d_inode;
  i.i_nlink = 0;
  const info = i.i_sb.s_type === 'tmpfs' ? SHMEM_I(i) : null;
  if (info) info.i_nlink = 0;
  yield* iput(i);
  return 0;
}

/**
 * Creates (or replaces the contents of) a file at an absolute path with the given bytes,
 * as a shell would before a scenario runs: ext4 files get them on disk, tmpfs files in
 * the page cache. The tool's helper, not a kernel function.
 * Return: the inode.
 */
export function* vfsCreateFile(path: string, contents: Uint8Array): Op<inode> {
  const ns = init_mnt_ns();
  const where = lookup_mnt(ns, path);
  if (!where || where.name === '') throw new Error(`vfsCreateFile: '${path}' is not a file path`);
  const names = ns.names.get(where.mnt)!;
  const old = names.get(where.name);
  if (old) {
    names.delete(where.name);
    old.d_inode.i_nlink = 0;
    yield* iput(old.d_inode);
  }
  if (where.mnt.fstype === 'ext4') {
    const i = ext4NewInode(contents);
    names.set(where.name, { d_inode: i, f_op: ext4_file_operations });
    return i;
  }
  if (where.mnt.fstype === 'tmpfs') {
    const f = yield* createTmpfsFile(path, contents);
    const i = f.f_inode;
    // The name keeps the inode; the helper's open file goes.
    ihold(i);
    fput(f);
    names.set(where.name, { d_inode: i, f_op: shmem_file_operations });
    return i;
  }
  throw new Error(`vfsCreateFile: cannot create files on ${where.mnt.fstype} (${path})`);
}

/** The inode a path names (the tool's inspection helper), or null. */
export function vfsLookup(path: string): inode | null {
  const ns = init_mnt_ns();
  const where = lookup_mnt(ns, path);
  if (!where) return null;
  return ns.names.get(where.mnt)?.get(where.name)?.d_inode ?? null;
}
