/**
 * The ioctl system call: look the descriptor up and call the file's ->unlocked_ioctl.
 */
import type { Op } from '../../sched/index.js';
import { EBADF, ENOIOCTLCMD, ENOTTY } from '../include/linux/errno.js';
import { fget } from '../include/linux/fdtable.js';
import type { file } from '../include/linux/mm_types.js';
import { fput } from './file_table.js';

/**
 * vfs_ioctl(filp, cmd, arg): ->unlocked_ioctl, or -ENOTTY without one. ENOIOCTLCMD from
 * the driver is turned into -ENOTTY.
 * @kernel fs/ioctl.c:vfs_ioctl (all versions)
 * Locking: none held; the driver takes its own locks.
 * Return: the driver's result or -ENOTTY. The generic ioctls (FIOCLEX, FIONBIO, FIGETBSZ,
 * ...) handled by do_vfs_ioctl are left out.
 */
export function* vfs_ioctl(filp: file, cmd: number, arg: unknown): Op<number> {
  if (!filp.f_op.unlocked_ioctl) return -ENOTTY;
  const error = yield* filp.f_op.unlocked_ioctl(filp, cmd, arg);
  if (error === -ENOIOCTLCMD) return -ENOTTY;
  return error;
}

/**
 * sys_ioctl(fd, cmd, arg): a bad descriptor is -EBADF; else vfs_ioctl.
 * @kernel fs/ioctl.c:SYSCALL_DEFINE3(ioctl) (all versions)
 * Locking: none held on entry or return.
 * Return: 0/-errno or the driver's value.
 */
export function* sys_ioctl(fd: number, cmd: number, arg: unknown): Op<number> {
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  const error = yield* vfs_ioctl(f, cmd, arg);
  fput(f);
  return error;
}
