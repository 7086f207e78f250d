/**
 * Tests of the ext4 inode side (fs/ext4/inode.c): reading the disk into the page cache,
 * ->page_mkwrite, and writeback to the disk.
 * Rules: kernel-spec.md §11 O-1.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { SchedThread, type Op } from '../../../sched/index.js';
import { create_user_task } from '../../kernel/fork.js';
import type { folio, vm_fault } from '../../include/linux/mm_types.js';
import { VM_FAULT_LOCKED, VM_FAULT_NOPAGE } from '../../include/linux/mm.js';
import {
  folio_test_dirty,
  folio_test_locked,
  folio_test_uptodate,
} from '../../include/linux/page-flags.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import {
  __filemap_get_folio,
  FGP_CREAT,
  FGP_FOR_MMAP,
  FGP_LOCK,
  filemap_write_and_wait_range,
  folio_lock,
  folio_mark_dirty,
  folio_unlock,
} from '../../mm/filemap.js';
import { createExt4File } from './file.js';
import { ext4_page_mkwrite, ext4_read_folio, ext4_sb, ext4DiskContents } from './inode.js';

function boot(): { k: Kernel; run<T>(op: Op<T>): T } {
  const k = new Kernel({ version: '6.12' });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('ext4');
  const thread = new SchedThread(0, 'ext4', (function* () {})(), task);
  return { k, run: (op) => k.run(op, thread) };
}

describe('ext4_read_folio', () => {
  it('fills the folio from the disk, zeroes past EOF, marks it uptodate and unlocks it', () => {
    const env = boot();
    const d = new Uint8Array(0x1800).fill(0x5a);
    const f = createExt4File('/x', d);
    expect(f.f_inode.i_sb).toBe(ext4_sb());
    expect(ext4_sb().s_nowriteback).toBe(false);
    const fo = env.run(__filemap_get_folio(f.f_mapping, 1, FGP_CREAT | FGP_FOR_MMAP, 0)) as folio;
    phys_write(fo * 4096, new Uint8Array(4096).fill(0xee)); // stale frame contents
    env.run(folio_lock(fo));
    expect(env.run(ext4_read_folio(f, fo))).toBe(0);
    expect(folio_test_uptodate(fo)).toBe(true);
    expect(folio_test_locked(fo)).toBe(false);
    expect(phys_read(fo * 4096 + 0x7ff, 1)[0]).toBe(0x5a);
    expect(phys_read(fo * 4096 + 0x800, 1)[0]).toBe(0);
  });
});

describe('ext4_page_mkwrite', () => {
  it('locks and dirties the folio (VM_FAULT_LOCKED); a folio beyond EOF gives VM_FAULT_NOPAGE', () => {
    const env = boot();
    const f = createExt4File('/x', new Uint8Array(0x1000));
    const vma = { vm_file: f } as never;
    const fo = env.run(__filemap_get_folio(f.f_mapping, 0, FGP_CREAT | FGP_FOR_MMAP, 0)) as folio;
    expect(env.run(ext4_page_mkwrite({ vma, page: fo } as unknown as vm_fault))).toBe(
      VM_FAULT_LOCKED,
    );
    expect(folio_test_locked(fo)).toBe(true);
    expect(folio_test_dirty(fo)).toBe(true);
    env.run(folio_unlock(fo));
    const beyond = env.run(
      __filemap_get_folio(f.f_mapping, 1, FGP_CREAT | FGP_FOR_MMAP, 0),
    ) as folio;
    expect(env.run(ext4_page_mkwrite({ vma, page: beyond } as unknown as vm_fault))).toBe(
      VM_FAULT_NOPAGE,
    );
    expect(folio_test_locked(beyond)).toBe(false);
  });
});

describe('ext4_writepage', () => {
  it('writeback copies the bytes below i_size of each dirty folio to the disk', () => {
    const env = boot();
    const f = createExt4File('/x', new Uint8Array(0x1004));
    const fo = env.run(__filemap_get_folio(f.f_mapping, 1, FGP_CREAT | FGP_LOCK, 0)) as folio;
    phys_write(fo * 4096, new Uint8Array(8).fill(0x77));
    env.run(folio_mark_dirty(fo));
    env.run(folio_unlock(fo));
    expect(env.run(filemap_write_and_wait_range(f.f_mapping, 0, -1))).toBe(0);
    const disk = ext4DiskContents(f.f_inode);
    expect(disk.length).toBe(0x1004);
    expect([...disk.subarray(0x1000)]).toEqual([0x77, 0x77, 0x77, 0x77]);
    expect(folio_test_dirty(fo)).toBe(false);
  });
});
