/**
 * Tests of shmem/tmpfs (mm/shmem.c): faults allocate swap-backed page-cache folios counted
 * as MM_SHMEMPAGES; shared mappings are writable from the first fault (no write-notify:
 * s_nowriteback); shared anonymous memory is a "dev/zero" shmem file.
 * Rules: kernel-spec.md §11 O-1 (shmem needs no dirty tracking), O-9 (shared mappings are
 * not copied at fork).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task } from '../kernel/fork.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, page } from '../include/linux/mm_types.js';
import { MM_ANONPAGES, MM_SHMEMPAGES } from '../include/linux/mm_types.js';
import { get_mm_counter } from '../include/linux/mm.js';
import {
  folio_test_locked,
  folio_test_swapbacked,
  folio_test_uptodate,
  page_mapcount,
} from '../include/linux/page-flags.js';
import { folio_ref_count } from '../include/linux/page_ref.js';
import { ptep_get, walkToPte } from '../include/linux/pgtable.js';
import { _PAGE_RW, pte_pfn, pte_write } from '../arch/x86/include/asm/pgtable_types.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { vma_lookup } from './vma.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { phys_read } from './sparse.js';
import { filemap_get_folio, folio_unlock } from './filemap.js';
import {
  createTmpfsFile,
  SGP_CACHE,
  SGP_NOALLOC,
  SGP_READ,
  shmem_anon_vm_ops,
  shmem_file_setup,
  shmem_get_folio,
  shmem_mmap,
  shmem_vm_ops,
  shmem_zero_setup,
} from './shmem.js';

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12'): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('shm');
  const thread = new SchedThread(0, 'shm', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

const pteAt = (env: Env, a: number, t = env.task) => ptep_get(walkToPte(t.mm!, a)!);

function mmapF(
  env: Env,
  f: file | null,
  addr: number,
  len: number,
  prot: number,
  flags: number,
): number {
  return env.run(vm_mmap_pgoff(env.task.mm!, f, addr, len, prot, flags | MAP_FIXED, 0));
}

describe('shmem_fault', () => {
  it('O-1: a shared mapping of a tmpfs file is writable from the first (read) fault: no write-notify; MM_SHMEMPAGES', () => {
    const env = boot();
    const f = env.run(createTmpfsFile('/dev/shm/x', new Uint8Array([1, 2, 3])));
    mmapF(env, f, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    expect(vma.vm_ops).toBe(shmem_vm_ops);
    expect(vma.vm_page_prot & _PAGE_RW).not.toBe(0);
    const r = env.run(cpu_user_read(env.task, 0x10000000, 3));
    expect(r.kind === 'ok' && [...r.data]).toEqual([1, 2, 3]);
    const v = pteAt(env, 0x10000000);
    expect(pte_write(v)).toBe(true);
    const fo = pte_pfn(v) as folio;
    expect(folio_test_swapbacked(fo)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_SHMEMPAGES)).toBe(1);
    expect(page_mapcount(fo as number as page)).toBe(1);
    expect(folio_ref_count(fo)).toBe(2); // cache + PTE
    env.run(cpu_user_write(env.task, 0x10000001, new Uint8Array([9])));
    expect(pte_pfn(pteAt(env, 0x10000000))).toBe(fo);
    expect([...phys_read(fo * 4096, 3)]).toEqual([1, 9, 3]);
  });

  it('a private mapping of a tmpfs file COWs on write (MM_SHMEMPAGES -1, MM_ANONPAGES +1), the file keeps its data', () => {
    const env = boot();
    const f = env.run(createTmpfsFile('/dev/shm/x', new Uint8Array([1, 2, 3])));
    mmapF(env, f, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    env.run(cpu_user_read(env.task, 0x10000000, 1));
    const fo = pte_pfn(pteAt(env, 0x10000000));
    env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([7])));
    expect(pte_pfn(pteAt(env, 0x10000000))).not.toBe(fo);
    expect(get_mm_counter(env.task.mm!, MM_SHMEMPAGES)).toBe(0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    expect([...phys_read(fo * 4096, 1)]).toEqual([1]);
  });

  it('a fault beyond i_size gets SIGBUS (shmem_get_folio -EINVAL ⇒ vmf_error)', () => {
    const env = boot();
    const f = env.run(createTmpfsFile('/dev/shm/x', new Uint8Array(10)));
    mmapF(env, f, 0x10000000, 0x2000, PROT_READ, MAP_SHARED);
    expect(env.run(cpu_user_read(env.task, 0x10001000, 1)).kind).toBe('SIGBUS');
  });
});

describe('shmem_get_folio', () => {
  it('SGP_READ on a hole is null, SGP_NOALLOC -ENOENT, SGP_CACHE allocates a zeroed swap-backed folio, locked', () => {
    const env = boot();
    const f = shmem_file_setup('x', 0x3000, 0n) as file;
    expect(env.run(shmem_get_folio(f.f_inode, 1, SGP_READ))).toBeNull();
    expect(env.run(shmem_get_folio(f.f_inode, 1, SGP_NOALLOC))).toBe(-2);
    const fo = env.run(shmem_get_folio(f.f_inode, 1, SGP_CACHE)) as folio;
    expect(folio_test_locked(fo)).toBe(true);
    expect(folio_test_uptodate(fo) && folio_test_swapbacked(fo)).toBe(true);
    expect(folio_ref_count(fo)).toBe(2);
    expect(f.f_mapping.nrpages).toBe(1);
    env.run(folio_unlock(fo));
    expect(env.run(filemap_get_folio(f.f_mapping, 1))).toBe(fo);
    expect(env.run(shmem_get_folio(f.f_inode, 3, SGP_CACHE))).toBe(-22);
  });
});

describe('shmem_file_setup', () => {
  it('an unlinked file of the given size; a negative size is -EINVAL', () => {
    const env = boot();
    const f = shmem_file_setup('x', 0x2000, 0n) as file;
    expect(f.f_inode.i_size).toBe(0x2000);
    expect(f.f_inode.i_sb.s_type).toBe('tmpfs');
    expect(f.f_inode.i_sb.s_nowriteback).toBe(true);
    const vma = { vm_ops: null } as never;
    env.run(shmem_mmap(f, vma));
    expect((vma as { vm_ops: unknown }).vm_ops).toBe(shmem_anon_vm_ops);
    expect(shmem_file_setup('y', -1, 0n)).toBe(-22);
  });
});

describe('shmem_zero_setup', () => {
  it("MAP_SHARED|MAP_ANONYMOUS is a dev/zero shmem file; fork does not copy it and the child sees the parent's writes", () => {
    const env = boot();
    mmapF(env, null, 0x10000000, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    expect(vma.vm_file?.f_path).toBe('dev/zero');
    expect(vma.vm_ops).toBe(shmem_anon_vm_ops);
    expect(vma.vm_file!.f_inode.i_size).toBe(0x2000);
    env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([0x61])));
    expect(get_mm_counter(env.task.mm!, MM_SHMEMPAGES)).toBe(1);
    const child = env.run(fork_task(env.task)) as task_struct;
    expect(walkToPte(child.mm!, 0x10000000)).toBeNull();
    const r = env.run(cpu_user_read(child, 0x10000000, 1));
    expect(r.kind === 'ok' && [...r.data]).toEqual([0x61]);
    expect(pte_pfn(pteAt(env, 0x10000000, child))).toBe(pte_pfn(pteAt(env, 0x10000000)));
  });

  it('replaces an existing vm_file (MAP_SHARED of /dev/zero) and returns 0', () => {
    const env = boot();
    const zero = shmem_file_setup('/dev/zero', 0, 0n) as file;
    const vma = { vm_start: 0, vm_end: 0x1000, vm_flags: 0n, vm_file: zero, vm_ops: null } as never;
    expect(shmem_zero_setup(vma)).toBe(0);
    expect((vma as { vm_file: file }).vm_file).not.toBe(zero);
    expect(zero.f_count).toBe(0);
    void env;
  });
});

describe('createTmpfsFile', () => {
  it('leaves the contents in the page cache, dirty, with only the cache reference', () => {
    const env = boot();
    const data = new Uint8Array(0x1802).fill(4);
    const f = env.run(createTmpfsFile('/tmp/f', data));
    expect(f.f_mapping.nrpages).toBe(2);
    const fo = env.run(filemap_get_folio(f.f_mapping, 1))!;
    expect(folio_ref_count(fo)).toBe(2);
    expect([...phys_read(fo * 4096 + 0x800, 3)]).toEqual([4, 4, 0]);
  });
});
