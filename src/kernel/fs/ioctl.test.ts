/**
 * The ioctl system call (fs/ioctl.c): descriptor lookup and ->unlocked_ioctl dispatch.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { EBADF, ENOTTY } from '../include/linux/errno.js';
import { do_sys_open } from './open.js';
import { O_RDWR } from './inode.js';
import { sys_ioctl } from './ioctl.js';

describe('sys_ioctl', () => {
  it('a bad descriptor is -EBADF', () => {
    const env = bootEnv();
    expect(env.sys(sys_ioctl(7, 0x3b71, 0))).toBe(-EBADF);
  });
  it('a file without ->unlocked_ioctl is -ENOTTY (/dev/zero)', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    expect(fd).toBe(0);
    expect(env.sys(sys_ioctl(fd, 0x3b71, 0))).toBe(-ENOTTY);
  });
});
