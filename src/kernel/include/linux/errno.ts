/**
 * Error numbers (include/uapi/asm-generic/errno-base.h, errno.h). Kernel functions
 * return them negated, as the kernel does: `return -EINVAL;`.
 * @kernel include/uapi/asm-generic/errno-base.h (all versions)
 */
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const ERANGE = 34;
export const ENOSYS = 38;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const EREMOTEIO = 121;
export const EHWPOISON = 133;
/** Kernel-internal (include/linux/errno.h): never seen by user space. */
export const ENOIOCTLCMD = 515;
export const ENOTSUPP = 524;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL',
  [ENFILE]: 'ENFILE',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [ENOSPC]: 'ENOSPC',
  [ESPIPE]: 'ESPIPE',
  [ERANGE]: 'ERANGE',
  [ENOSYS]: 'ENOSYS',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EREMOTEIO]: 'EREMOTEIO',
  [EHWPOISON]: 'EHWPOISON',
  [ENOIOCTLCMD]: 'ENOIOCTLCMD',
  [ENOTSUPP]: 'ENOTSUPP',
};

/** "-EINVAL" for -22, the number itself for non-errors (for traces and messages). */
export function errname(ret: number): string {
  if (ret < 0 && NAMES[-ret]) return `-${NAMES[-ret]}`;
  return String(ret);
}

/** IS_ERR_VALUE: a negative errno in the kernel's error range. */
export function IS_ERR_VALUE(x: number): boolean {
  return x < 0 && x >= -4095;
}

/** ERR_PTR-style union: a value or a negative errno. */
export type ErrOr<T> = T | number;
export function IS_ERR<T>(x: ErrOr<T>): x is number {
  return typeof x === 'number' && IS_ERR_VALUE(x);
}
export function PTR_ERR(x: number): number {
  return x;
}
