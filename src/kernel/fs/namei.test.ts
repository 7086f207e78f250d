/**
 * The model's VFS namespace and open(2) (fs/namei.c, fs/open.c): mounts, O_CREAT,
 * O_EXCL, O_TRUNC, O_DIRECT checks, unlink, ftruncate through ->setattr.
 * Rules: kernel-spec.md §11 (the conformance setup: ext4 root, tmpfs /dev/shm, /dev/zero,
 * /proc/<pid>/mem).
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { do_filp_open, do_unlinkat, vfsCreateFile, vfsLookup } from './namei.js';
import { do_sys_open, do_sys_ftruncate } from './open.js';
import { O_RDONLY, O_RDWR } from './inode.js';
import { O_CREAT, O_DIRECT, O_EXCL, O_TRUNC, FMODE_PREAD } from '../include/linux/fs.js';
import { EEXIST, EINVAL, ENOENT } from '../include/linux/errno.js';
import { ext4_sb, EXT4_I } from './ext4/inode.js';
import { shmem_sb } from '../mm/shmem.js';
import type { file } from '../include/linux/mm_types.js';

describe('do_filp_open', () => {
  it('§11: / is ext4, /dev/shm and /tmp are tmpfs; O_CREAT makes a file, O_EXCL refuses an existing one', () => {
    const env = bootEnv();
    expect(env.sys(do_sys_open('/var/tmp/a', O_RDWR, 0))).toBe(-ENOENT);
    expect(env.sys(do_sys_open('/var/tmp/a', O_RDWR | O_CREAT, 0o600))).toBeGreaterThanOrEqual(0);
    expect(vfsLookup('/var/tmp/a')!.i_sb).toBe(ext4_sb());
    expect(env.sys(do_sys_open('/var/tmp/a', O_RDWR | O_CREAT | O_EXCL, 0o600))).toBe(-EEXIST);
    env.sys(do_sys_open('/dev/shm/b', O_RDWR | O_CREAT, 0o600));
    expect(vfsLookup('/dev/shm/b')!.i_sb).toBe(shmem_sb());
    expect(env.sys(do_sys_open('/proc/99999/mem', O_RDWR, 0))).toBe(-ENOENT);
    const f = env.sys(do_filp_open('/var/tmp/a', O_RDONLY, 0)) as file;
    expect(f.f_mode & FMODE_PREAD).toBe(FMODE_PREAD);
  });

  it('§11: O_TRUNC empties a regular file; O_DIRECT is refused by files without FMODE_CAN_ODIRECT', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/f', new Uint8Array(8192).fill(1)));
    env.sys(do_sys_open('/f', O_RDWR | O_TRUNC, 0));
    expect(vfsLookup('/f')!.i_size).toBe(0);
    expect(EXT4_I(vfsLookup('/f')!).disk.length).toBe(0);
    expect(env.sys(do_sys_open('/f', O_RDWR | O_DIRECT, 0))).toBeGreaterThanOrEqual(0);
    expect(env.sys(do_sys_open('/dev/null', O_RDWR | O_DIRECT, 0))).toBe(-EINVAL);
    // tmpfs accepts O_DIRECT from v6.6 (e88e0d366f9c).
    expect(env.sys(do_sys_open('/tmp/t', O_RDWR | O_CREAT | O_DIRECT, 0))).toBeGreaterThanOrEqual(
      0,
    );
    const old = bootEnv('6.5');
    expect(old.sys(do_sys_open('/tmp/t', O_RDWR | O_CREAT | O_DIRECT, 0))).toBe(-EINVAL);
  });
});

describe('do_unlinkat', () => {
  it('§11: an unlinked file stays usable while open', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/dev/shm/u', new Uint8Array(4096).fill(2)));
    const fd = env.sys(do_sys_open('/dev/shm/u', O_RDWR, 0));
    expect(env.sys(do_unlinkat('/dev/shm/u'))).toBe(0);
    expect(vfsLookup('/dev/shm/u')).toBeNull();
    expect(env.sys(do_unlinkat('/dev/shm/u'))).toBe(-ENOENT);
    expect(env.sys(do_sys_ftruncate(fd, 8192, 1))).toBe(0);
  });
});

describe('do_sys_ftruncate', () => {
  it('§11: a negative length or a read-only descriptor is -EINVAL', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/f', new Uint8Array(10)));
    const ro = env.sys(do_sys_open('/f', O_RDONLY, 0));
    expect(env.sys(do_sys_ftruncate(ro, 4096, 1))).toBe(-EINVAL);
    const rw = env.sys(do_sys_open('/f', O_RDWR, 0));
    expect(env.sys(do_sys_ftruncate(rw, -1, 1))).toBe(-EINVAL);
    expect(env.sys(do_sys_ftruncate(rw, 4096, 1))).toBe(0);
    expect(vfsLookup('/f')!.i_size).toBe(4096);
  });
});
