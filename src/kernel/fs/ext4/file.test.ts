/**
 * Tests of ext4 file mappings (fs/ext4/file.c): ->mmap and the write-notify cycle of a
 * shared writable mapping of a file that is written back.
 * Rules: kernel-spec.md §11 O-1 (ext4 files need dirty tracking: page_mkwrite).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task } from '../../kernel/fork.js';
import { SchedThread, type Op } from '../../../sched/index.js';
import type { task_struct } from '../../include/linux/sched.js';
import type { folio, vm_fault } from '../../include/linux/mm_types.js';
import { MM_FILEPAGES } from '../../include/linux/mm_types.js';
import { get_mm_counter } from '../../include/linux/mm.js';
import { folio_test_dirty } from '../../include/linux/page-flags.js';
import { ptep_get, walkToPte } from '../../include/linux/pgtable.js';
import {
  _PAGE_RW,
  pte_dirty,
  pte_pfn,
  pte_write,
} from '../../arch/x86/include/asm/pgtable_types.js';
import {
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../../mm/mmap.js';
import { vma_lookup } from '../../mm/vma.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { filemap_write_and_wait_range } from '../../mm/filemap.js';
import { createExt4File, ext4_file_mmap, ext4_file_vm_ops } from './file.js';
import { ext4DiskContents } from './inode.js';
import { O_RDONLY } from '../inode.js';

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12'): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('ext4');
  const thread = new SchedThread(0, 'ext4', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

const pteAt = (env: Env, a: number) => ptep_get(walkToPte(env.task.mm!, a)!);

describe('ext4_file_mmap', () => {
  it('O-1: sets ext4_file_vm_ops; a shared writable mapping is write-notified (vm_page_prot read-only)', () => {
    const env = boot();
    const f = createExt4File('/data', new Uint8Array(0x2000).fill(3));
    env.run(
      vm_mmap_pgoff(
        env.task.mm!,
        f,
        0x10000000,
        0x2000,
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_FIXED,
        0,
      ),
    );
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    expect(vma.vm_ops).toBe(ext4_file_vm_ops);
    expect(vma.vm_page_prot & _PAGE_RW).toBe(0);
    expect(env.run(ext4_file_mmap(f, vma))).toBe(0);
  });

  it('a read-only open can be mapped shared read-only, and the page reads the disk bytes', () => {
    const env = boot();
    const f = createExt4File('/ro', new Uint8Array([9, 8, 7]), O_RDONLY);
    expect(
      env.run(
        vm_mmap_pgoff(env.task.mm!, f, 0x10000000, 0x1000, PROT_READ, MAP_SHARED | MAP_FIXED, 0),
      ),
    ).toBe(0x10000000);
    const r = env.run(cpu_user_read(env.task, 0x10000000, 4));
    expect(r.kind === 'ok' && [...r.data]).toEqual([9, 8, 7, 0]);
    expect(get_mm_counter(env.task.mm!, MM_FILEPAGES)).toBe(1);
  });
});

describe('ext4_file_vm_ops', () => {
  it('O-1: the first write faults into page_mkwrite; after writeback folio_mkclean write-protects and the next write calls page_mkwrite again', () => {
    const env = boot();
    const f = createExt4File('/data', new Uint8Array(0x2000).fill(3));
    env.run(
      vm_mmap_pgoff(
        env.task.mm!,
        f,
        0x10000000,
        0x2000,
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_FIXED,
        0,
      ),
    );
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    let mkwrites = 0;
    vma.vm_ops = {
      ...ext4_file_vm_ops,
      *page_mkwrite(vmf: vm_fault) {
        mkwrites++;
        return yield* ext4_file_vm_ops.page_mkwrite!(vmf);
      },
    };
    // Read first: mapped read-only (write-notify), no page_mkwrite.
    env.run(cpu_user_read(env.task, 0x10000000, 1));
    expect(pte_write(pteAt(env, 0x10000000))).toBe(false);
    expect(mkwrites).toBe(0);
    // First write: do_wp_page -> wp_page_shared -> page_mkwrite; the folio is dirty.
    expect(env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([0x44]))).kind).toBe('ok');
    expect(mkwrites).toBe(1);
    const v = pteAt(env, 0x10000000);
    expect(pte_write(v) && pte_dirty(v)).toBe(true);
    const fo = pte_pfn(v) as folio;
    expect(folio_test_dirty(fo)).toBe(true);
    // A second write goes straight through.
    env.run(cpu_user_write(env.task, 0x10000001, new Uint8Array([0x45])));
    expect(mkwrites).toBe(1);
    // Writeback: the disk gets the data, the PTE is write-protected and clean.
    expect(env.run(filemap_write_and_wait_range(f.f_mapping, 0, -1))).toBe(0);
    expect([...ext4DiskContents(f.f_inode).subarray(0, 3)]).toEqual([0x44, 0x45, 3]);
    expect(pte_write(pteAt(env, 0x10000000))).toBe(false);
    expect(folio_test_dirty(fo)).toBe(false);
    // The next write is notified again.
    env.run(cpu_user_write(env.task, 0x10000002, new Uint8Array([0x46])));
    expect(mkwrites).toBe(2);
    expect(folio_test_dirty(fo)).toBe(true);
    // A write to the untouched second page (PTE none) is notified through do_shared_fault.
    env.run(cpu_user_write(env.task, 0x10001000, new Uint8Array([1])));
    expect(mkwrites).toBe(3);
    expect(pte_write(pteAt(env, 0x10001000))).toBe(true);
  });

  it('a private writable mapping is not write-notified: a write COWs without page_mkwrite', () => {
    const env = boot();
    const f = createExt4File('/data', new Uint8Array(0x1000).fill(3));
    env.run(
      vm_mmap_pgoff(
        env.task.mm!,
        f,
        0x10000000,
        0x1000,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_FIXED,
        0,
      ),
    );
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    let mkwrites = 0;
    vma.vm_ops = {
      ...ext4_file_vm_ops,
      *page_mkwrite(vmf: vm_fault) {
        mkwrites++;
        return yield* ext4_file_vm_ops.page_mkwrite!(vmf);
      },
    };
    env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([1])));
    expect(mkwrites).toBe(0);
    expect([...ext4DiskContents(f.f_inode).subarray(0, 1)]).toEqual([3]);
  });
});
