/**
 * /dev/zero and /dev/null (drivers/char/mem.c).
 * Rules: kernel-spec.md §11 (devzero-private is anonymous memory, devzero-shared is shmem).
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../../test/kernel-env.js';
import { do_sys_open } from '../../fs/open.js';
import { O_RDWR } from '../../fs/inode.js';
import { ksys_read, ksys_write } from '../../fs/read_write.js';
import { sys_mmap } from '../../arch/x86/entry/syscall_64.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../mm/mmap.js';
import { vma_lookup } from '../../mm/vma.js';
import { vma_is_anonymous } from '../../include/linux/mm.js';
import { vma_is_shmem } from '../../mm/shmem.js';
import { folio_test_anon } from '../../include/linux/page-flags.js';
import type { folio } from '../../include/linux/mm_types.js';

const RW = PROT_READ | PROT_WRITE;

describe('mmap_zero', () => {
  it('§11: MAP_PRIVATE of /dev/zero is anonymous memory (vm_ops NULL, the file kept)', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const a = env.sys(sys_mmap(0, 8192, RW, MAP_PRIVATE, fd, 0));
    const vma = vma_lookup(env.task.mm!, a)!;
    expect(vma_is_anonymous(vma)).toBe(true);
    expect(vma.vm_file!.f_path).toBe('/dev/zero');
    env.store(a, [1]);
    expect(folio_test_anon(env.pfnAt(a)! as folio)).toBe(true);
  });

  it('§11: MAP_SHARED of /dev/zero is shmem (shmem_zero_setup replaces the file)', () => {
    const env = bootEnv();
    const fd = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const a = env.sys(sys_mmap(0, 8192, RW, MAP_SHARED, fd, 0));
    const vma = vma_lookup(env.task.mm!, a)!;
    expect(vma_is_shmem(vma)).toBe(true);
    expect(vma.vm_file!.f_path).toBe('dev/zero');
    env.store(a, [1]);
    expect(folio_test_anon(env.pfnAt(a)! as folio)).toBe(false);
  });
});

describe('read_iter_zero', () => {
  it('§11: reads of /dev/zero give zeroes, /dev/null gives EOF and swallows writes', () => {
    const env = bootEnv();
    const zero = env.sys(do_sys_open('/dev/zero', O_RDWR, 0));
    const nul = env.sys(do_sys_open('/dev/null', O_RDWR, 0));
    const buf = env.buffer(8192, 0xff);
    expect(env.sys(ksys_read(zero, buf, 5000))).toBe(5000);
    expect([...(env.load(buf + 4999, 2) as Uint8Array)]).toEqual([0, 0xff]);
    expect(env.sys(ksys_read(nul, buf, 10))).toBe(0);
    expect(env.sys(ksys_write(nul, buf, 10))).toBe(10);
  });
});
