/**
 * Tests of memfd_create(2) (mm/memfd.c).
 * Rules: kernel-spec.md §11 O-1 (memfd is shmem: no dirty tracking).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { SchedThread } from '../../sched/index.js';
import type { file } from '../include/linux/mm_types.js';
import { MAP_FIXED, MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from './mmap.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { truncate_setsize } from './filemap.js';
import { F_SEAL_EXEC, F_SEAL_SEAL, SHMEM_I } from './shmem.js';
import { HUGETLBFS_I } from '../fs/hugetlbfs/inode.js';
import {
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_NAME_MAX_LEN,
  MFD_NOEXEC_SEAL,
  memfd_create,
} from './memfd.js';

function boot(version = '6.12') {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  return k;
}

describe('memfd_create', () => {
  it('creates an empty shmem file "memfd:<name>" that is sealed against sealing unless MFD_ALLOW_SEALING', () => {
    boot();
    const f = memfd_create('buf', MFD_CLOEXEC) as file;
    expect(f.f_path).toBe('memfd:buf');
    expect(f.f_inode.i_size).toBe(0);
    expect(f.f_inode.i_sb.s_type).toBe('tmpfs');
    expect(SHMEM_I(f.f_inode).seals).toBe(F_SEAL_SEAL);
    const g = memfd_create('buf', MFD_ALLOW_SEALING) as file;
    expect(SHMEM_I(g.f_inode).seals).toBe(0);
  });

  it('unknown flags and an over-long name are -EINVAL', () => {
    boot();
    expect(memfd_create('x', 0x100)).toBe(-22);
    expect(memfd_create('n'.repeat(MFD_NAME_MAX_LEN + 1), 0)).toBe(-22);
    expect(typeof memfd_create('n'.repeat(MFD_NAME_MAX_LEN), 0)).toBe('object');
  });

  it('MFD_HUGETLB gives an empty hugetlbfs file; a page size without an hstate (MFD_HUGE_1GB) is -ENODEV', () => {
    boot();
    const f = memfd_create('h', MFD_HUGETLB | MFD_ALLOW_SEALING) as file;
    expect(f.f_path).toBe('memfd:h');
    expect(f.f_inode.i_sb.s_type).toBe('hugetlbfs');
    expect(f.f_inode.i_size).toBe(0);
    expect(HUGETLBFS_I(f.f_inode).seals).toBe(0); // F_SEAL_SEAL dropped
    expect(HUGETLBFS_I((memfd_create('h', MFD_HUGETLB) as file).f_inode).seals).toBe(F_SEAL_SEAL);
    // MFD_HUGE_2MB (21 << MFD_HUGE_SHIFT) is the default hstate; 30 (1 GiB) has none.
    expect(typeof memfd_create('h', MFD_HUGETLB | (21 << 26))).toBe('object');
    expect(memfd_create('h', MFD_HUGETLB | (30 << 26))).toBe(-19);
  });

  it('v6.3+: MFD_NOEXEC_SEAL seals exec and allows sealing; with MFD_EXEC it is -EINVAL; v6.1 knows neither flag', () => {
    boot('6.12');
    const f = memfd_create('x', MFD_NOEXEC_SEAL) as file;
    expect(SHMEM_I(f.f_inode).seals).toBe(F_SEAL_EXEC);
    expect(memfd_create('x', MFD_EXEC | MFD_NOEXEC_SEAL)).toBe(-22);
    boot('6.1');
    expect(memfd_create('x', MFD_NOEXEC_SEAL)).toBe(-22);
    expect(memfd_create('x', MFD_EXEC)).toBe(-22);
  });

  it('a mapping of the empty memfd SIGBUSes until the file is sized (ftruncate), then is shared memory', () => {
    const k = boot();
    const task = create_user_task('memfd');
    const th = new SchedThread(0, 'memfd', (function* () {})(), task);
    const f = memfd_create('buf', 0) as file;
    k.run(
      vm_mmap_pgoff(
        task.mm!,
        f,
        0x10000000,
        0x1000,
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_FIXED,
        0,
      ),
      th,
    );
    expect(k.run(cpu_user_read(task, 0x10000000, 1), th).kind).toBe('SIGBUS');
    k.run(truncate_setsize(f.f_inode, 0x1000), th);
    expect(k.run(cpu_user_write(task, 0x10000000, new Uint8Array([3])), th).kind).toBe('ok');
    const r = k.run(cpu_user_read(task, 0x10000000, 1), th);
    expect(r.kind === 'ok' && r.data[0]).toBe(3);
  });
});
