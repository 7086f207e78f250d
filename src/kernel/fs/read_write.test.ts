/**
 * read/write/pread/pwrite (fs/read_write.c) through buffered I/O (mm/filemap.c,
 * mm/shmem.c) and O_DIRECT through iomap with pinned user pages (fs/iomap/direct-io.c).
 * Rules: kernel-spec.md §11 (O_DIRECT = iov_iter_extract_pages → FOLL_PIN, +FOLL_WRITE
 * when reading into memory), O-1, O-2, O-5, O-6.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../test/kernel-env.js';
import { ksys_pread64, ksys_pwrite64, ksys_read, ksys_write } from './read_write.js';
import { do_sys_open } from './open.js';
import { vfsCreateFile, vfsLookup } from './namei.js';
import { O_CREAT, O_DIRECT } from '../include/linux/fs.js';
import { O_RDONLY, O_RDWR, O_WRONLY } from './inode.js';
import { do_pipe2 } from './pipe.js';
import { EXT4_I } from './ext4/inode.js';
import { ext4_iomap_ops } from './ext4/file.rw.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ } from '../mm/mmap.js';
import { EBADF, EFAULT, EINVAL, ESPIPE } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_test_dirty } from '../include/linux/page-flags.js';
import { find_vvar_vma } from '../arch/x86/entry/vdso/vma.js';
import { GUP_PIN_COUNTING_BIAS } from '../include/linux/mm.js';
import type { page } from '../include/linux/mm_types.js';

function dataFile(env: Env, path: string, n = 8192, fill = 0x70): void {
  env.sys(vfsCreateFile(path, new Uint8Array(n).fill(fill)));
}

describe('vfs_read / vfs_write', () => {
  it('§11 buffered: ext4 reads go through the page cache; writes dirty it and grow i_size', () => {
    const env = bootEnv();
    dataFile(env, '/var/tmp/f');
    const fd = env.sys(do_sys_open('/var/tmp/f', O_RDWR, 0));
    const buf = env.buffer(8192);
    expect(env.sys(ksys_read(fd, buf, 100))).toBe(100);
    expect(env.sys(ksys_read(fd, buf, 100))).toBe(100); // the position advanced
    expect([...(env.load(buf, 1) as Uint8Array)]).toEqual([0x70]);
    const inode = vfsLookup('/var/tmp/f')!;
    expect(inode.i_mapping.nrpages).toBe(1);
    env.store(buf, [1, 2, 3]);
    expect(env.sys(ksys_pwrite64(fd, buf, 3, 8190))).toBe(3);
    expect(inode.i_size).toBe(8193);
    const cached = inode.i_mapping.i_pages.get(1)!;
    expect(folio_test_dirty(cached)).toBe(true);
    // EOF: a read at i_size returns 0.
    expect(env.sys(ksys_pread64(fd, buf, 10, 8193))).toBe(0);
  });

  it('§11 buffered: tmpfs holes read as zeroes without allocating', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/tmp/t', O_RDWR | O_CREAT, 0o600));
    const buf = env.buffer(4096, 9);
    expect(env.sys(ksys_pwrite64(fd, buf, 1, 8192))).toBe(1);
    expect(vfsLookup('/tmp/t')!.i_mapping.nrpages).toBe(1);
    expect(env.sys(ksys_pread64(fd, buf, 4096, 0))).toBe(4096);
    expect([...(env.load(buf, 1) as Uint8Array)]).toEqual([0]);
    expect(vfsLookup('/tmp/t')!.i_mapping.nrpages).toBe(1);
  });

  it('§11: open mode, pipes and descriptors are checked (-EBADF, -ESPIPE)', () => {
    const env = bootEnv();
    dataFile(env, '/f');
    const ro = env.sys(do_sys_open('/f', O_RDONLY, 0));
    const wo = env.sys(do_sys_open('/f', O_WRONLY, 0));
    const buf = env.buffer(4096);
    expect(env.sys(ksys_write(ro, buf, 1))).toBe(-EBADF);
    expect(env.sys(ksys_read(wo, buf, 1))).toBe(-EBADF);
    expect(env.sys(ksys_read(77, buf, 1))).toBe(-EBADF);
    expect(env.sys(ksys_pread64(ro, buf, 1, -1))).toBe(-EINVAL);
    const p = env.sys(do_pipe2(0)) as [number, number];
    expect(env.sys(ksys_pread64(p[0], buf, 1, 0))).toBe(-ESPIPE);
  });

  it('O-5: a read into a PROT_NONE buffer is -EFAULT (copy_to_user faults)', () => {
    const env = bootEnv();
    dataFile(env, '/f');
    const fd = env.sys(do_sys_open('/f', O_RDONLY, 0));
    const none = env.mmap(4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(env.sys(ksys_read(fd, none, 10))).toBe(-EFAULT);
  });
});

describe('iomap_dio_rw', () => {
  it('§11 O_DIRECT read: the disk data lands in the pinned user page, which is dirtied and unpinned', () => {
    const env = bootEnv();
    dataFile(env, '/var/tmp/d', 8192, 0x64);
    const fd = env.sys(do_sys_open('/var/tmp/d', O_RDWR | O_DIRECT, 0));
    const buf = env.buffer(4096, 0);
    const p = env.pfnAt(buf)! as page;
    const refs = page_ref_count(p);
    expect(env.sys(ksys_pread64(fd, buf, 4096, 4096))).toBe(4096);
    expect([...(env.load(buf, 1) as Uint8Array)]).toEqual([0x64]);
    expect(page_ref_count(p)).toBe(refs);
    // Nothing went through the page cache.
    expect(vfsLookup('/var/tmp/d')!.i_mapping.nrpages).toBe(0);
  });

  it('§11 O_DIRECT write: the pinned page is written to the disk; the cached copy is dropped', () => {
    const env = bootEnv();
    dataFile(env, '/var/tmp/d', 8192, 0x64);
    const buffered = env.sys(do_sys_open('/var/tmp/d', O_RDONLY, 0));
    const buf = env.buffer(4096, 0x21);
    env.sys(ksys_pread64(buffered, buf, 1, 0)); // caches page 0
    const inode = vfsLookup('/var/tmp/d')!;
    expect(inode.i_mapping.nrpages).toBe(1);
    env.store(buf, new Uint8Array(4096).fill(0x21));
    const fd = env.sys(do_sys_open('/var/tmp/d', O_RDWR | O_DIRECT, 0));
    expect(env.sys(ksys_pwrite64(fd, buf, 4096, 0))).toBe(4096);
    expect(EXT4_I(inode).disk[0]).toBe(0x21);
    expect(inode.i_mapping.nrpages).toBe(0);
  });

  it('§11 O_DIRECT: misaligned positions or buffers are -EINVAL; O_DIRECT on /dev/zero fails to open', () => {
    const env = bootEnv();
    dataFile(env, '/d');
    const fd = env.sys(do_sys_open('/d', O_RDWR | O_DIRECT, 0));
    const buf = env.buffer(8192);
    expect(env.sys(ksys_pread64(fd, buf, 4096, 100))).toBe(-EINVAL);
    expect(env.sys(ksys_pread64(fd, buf + 8, 4096, 0))).toBe(-EINVAL);
    expect(env.sys(do_sys_open('/dev/zero', O_RDWR | O_DIRECT, 0))).toBe(-EINVAL);
  });

  it('O-6/O-2/O-5: O_DIRECT reads into read-only, [vvar] or PROT_NONE memory are -EFAULT; writes from read-only memory work', () => {
    const env = bootEnv();
    dataFile(env, '/d');
    const fd = env.sys(do_sys_open('/d', O_RDWR | O_DIRECT, 0));
    const ro = env.mmap(4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    env.load(ro);
    expect(env.sys(ksys_pread64(fd, ro, 4096, 0))).toBe(-EFAULT);
    expect(env.sys(ksys_pwrite64(fd, ro, 4096, 0))).toBe(4096);
    const vvar = find_vvar_vma(env.task.mm!)!.vm_start;
    expect(env.sys(ksys_pread64(fd, vvar, 4096, 0))).toBe(-EFAULT);
    expect(env.sys(ksys_pwrite64(fd, vvar, 4096, 0))).toBe(-EFAULT);
    const none = env.mmap(4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(env.sys(ksys_pwrite64(fd, none, 4096, 0))).toBe(-EFAULT);
  });

  it('§11 O_DIRECT pins (FOLL_PIN: +GUP_PIN_COUNTING_BIAS) while the transfer runs, and v6.1 takes references', () => {
    // Watch the refcount from inside the device transfer by making the file's disk read
    // report it.
    for (const [version, delta] of [
      ['6.18', GUP_PIN_COUNTING_BIAS],
      ['6.1', 1],
    ] as const) {
      const env = bootEnv(version);
      dataFile(env, '/d');
      const inode = vfsLookup('/d')!;
      const buf = env.buffer(4096);
      const p = env.pfnAt(buf)! as page;
      const base = page_ref_count(p);
      let seen = -1;
      const orig = ext4_iomap_ops.read_blocks;
      ext4_iomap_ops.read_blocks = function* (i, pos, len) {
        seen = page_ref_count(p);
        return yield* orig.call(ext4_iomap_ops, i, pos, len);
      };
      void inode;
      const fd = env.sys(do_sys_open('/d', O_RDWR | O_DIRECT, 0));
      expect(env.sys(ksys_pread64(fd, buf, 4096, 0))).toBe(4096);
      ext4_iomap_ops.read_blocks = orig;
      expect(seen - base).toBe(delta);
      expect(page_ref_count(p)).toBe(base);
    }
  });
});
