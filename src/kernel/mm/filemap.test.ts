/**
 * Tests of the page cache (mm/filemap.c, mm/truncate.c): cache insertion and removal,
 * page-cache faults, dirtying, writeback through folio_mkclean, truncation.
 * Rules: kernel-spec.md §11 O-1 (ext4 files write back: their shared mappings are
 * write-notified), §7 R-REV-1 (truncation unmaps through unmap_mapping_range).
 *
 * Files are ext4-like (fs/ext4): data on a per-inode disk, read on a cache miss.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, page, vm_fault } from '../include/linux/mm_types.js';
import { MM_ANONPAGES, MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  get_mm_counter,
  VM_FAULT_LOCKED,
  VM_FAULT_MAJOR,
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
} from '../include/linux/mm.js';
import {
  folio_index,
  folio_raw_mapping,
  folio_test_dirty,
  folio_test_locked,
  folio_test_uptodate,
  page_mapcount,
} from '../include/linux/page-flags.js';
import { folio_put, folio_ref_count } from '../include/linux/page_ref.js';
import { ptep_get, walkToPte } from '../include/linux/pgtable.js';
import { pte_dirty, pte_pfn, pte_write } from '../arch/x86/include/asm/pgtable_types.js';
import {
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { vma_lookup } from './vma.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { alloc_page, GFP_HIGHUSER_MOVABLE, page_is_free } from './page_alloc.js';
import { phys_read } from './sparse.js';
import { createExt4File } from '../fs/ext4/file.js';
import { ext4DiskContents } from '../fs/ext4/inode.js';
import {
  __filemap_get_folio,
  filemap_add_folio,
  filemap_fault,
  filemap_get_folio,
  filemap_page_mkwrite,
  filemap_remove_folio,
  filemap_write_and_wait_range,
  FGP_CREAT,
  FGP_LOCK,
  folio_lock,
  folio_mark_dirty,
  folio_trylock,
  folio_unlock,
  truncate_inode_pages_range,
  truncate_pagecache,
  truncate_setsize,
} from './filemap.js';

const GiB = 2 ** 30;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12'): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(4 * GiB) });
  const task = create_user_task('fm');
  const thread = new SchedThread(0, 'fm', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

/** 3 pages of data: page i is filled with 0x10 + i. */
function data3(): Uint8Array {
  const d = new Uint8Array(3 * 4096);
  for (let i = 0; i < 3; i++) d.fill(0x10 + i, i * 4096, (i + 1) * 4096);
  return d;
}

function mmapFile(
  env: Env,
  f: file,
  addr: number,
  len: number,
  prot: number,
  flags: number,
): number {
  return env.run(vm_mmap_pgoff(env.task.mm!, f, addr, len, prot, flags | MAP_FIXED, 0));
}

const pteAt = (env: Env, a: number) => ptep_get(walkToPte(env.task.mm!, a)!);

describe('filemap_add_folio', () => {
  it('a new folio enters the cache locked, with the cache reference, mapping, index and nrpages', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    const mapping = f.f_mapping;
    const fo = alloc_page(GFP_HIGHUSER_MOVABLE) as number as folio;
    expect(env.run(filemap_add_folio(mapping, fo, 2, 0))).toBe(0);
    expect(folio_test_locked(fo)).toBe(true);
    expect(folio_ref_count(fo)).toBe(2);
    expect(folio_raw_mapping(fo)).toBe(mapping);
    expect(folio_index(fo)).toBe(2);
    expect(mapping.nrpages).toBe(1);
    const other = alloc_page(GFP_HIGHUSER_MOVABLE) as number as folio;
    expect(env.run(filemap_add_folio(mapping, other, 2, 0))).toBe(-17); // -EEXIST
    expect(folio_ref_count(other)).toBe(1);
    expect(folio_raw_mapping(other)).toBeNull();
  });
});

describe('filemap_remove_folio', () => {
  it('removing a locked folio clears its mapping and drops the cache reference', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    const fo = env.run(__filemap_get_folio(f.f_mapping, 0, FGP_LOCK | FGP_CREAT, 0)) as folio;
    expect(folio_ref_count(fo)).toBe(2);
    env.run(filemap_remove_folio(fo));
    expect(folio_raw_mapping(fo)).toBeNull();
    expect(f.f_mapping.nrpages).toBe(0);
    expect(folio_ref_count(fo)).toBe(1);
    env.run(folio_unlock(fo));
    folio_put(fo);
    expect(page_is_free(fo)).toBe(true);
  });
});

describe('__filemap_get_folio', () => {
  it('without FGP_CREAT a miss is -ENOENT; FGP_CREAT|FGP_LOCK creates a locked folio; a hit takes a reference', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    expect(env.run(__filemap_get_folio(f.f_mapping, 1, FGP_LOCK, 0))).toBe(-2);
    const fo = env.run(__filemap_get_folio(f.f_mapping, 1, FGP_LOCK | FGP_CREAT, 0)) as folio;
    expect(folio_test_locked(fo)).toBe(true);
    env.run(folio_unlock(fo));
    expect(env.run(filemap_get_folio(f.f_mapping, 1))).toBe(fo);
    expect(folio_ref_count(fo)).toBe(3);
  });
});

describe('folio_lock', () => {
  it('folio_trylock fails on a locked folio; folio_unlock releases it', () => {
    const env = boot();
    const fo = alloc_page(GFP_HIGHUSER_MOVABLE) as number as folio;
    env.run(folio_lock(fo));
    expect(env.run(folio_trylock(fo))).toBe(false);
    env.run(folio_unlock(fo));
    expect(env.run(folio_trylock(fo))).toBe(true);
  });
});

describe('filemap_fault', () => {
  it('a miss is a major fault that reads the page from the disk and returns it locked (VM_FAULT_LOCKED)', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ, MAP_PRIVATE);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    const vmf = {
      vma,
      pgoff: 1,
      page: null,
      flags: 0,
      gfp_mask: GFP_HIGHUSER_MOVABLE,
    } as unknown as vm_fault;
    expect(env.run(filemap_fault(vmf))).toBe(VM_FAULT_LOCKED | VM_FAULT_MAJOR);
    const fo = vmf.page as number as folio;
    expect(folio_test_locked(fo)).toBe(true);
    expect(folio_test_uptodate(fo)).toBe(true);
    expect(phys_read(fo * 4096, 1)[0]).toBe(0x11);
    env.run(folio_unlock(fo));
    // A second fault finds it cached: minor.
    const vmf2 = { ...vmf, page: null } as vm_fault;
    expect(env.run(filemap_fault(vmf2))).toBe(VM_FAULT_LOCKED);
    expect(vmf2.page).toBe(fo);
  });

  it('beyond EOF is VM_FAULT_SIGBUS (a user access there gets SIGBUS)', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x4000, PROT_READ, MAP_PRIVATE);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    const vmf = { vma, pgoff: 3, page: null, flags: 0, gfp_mask: 0 } as unknown as vm_fault;
    expect(env.run(filemap_fault(vmf))).toBe(VM_FAULT_SIGBUS);
    expect(env.run(cpu_user_read(env.task, 0x10003000, 1))).toEqual({
      kind: 'SIGBUS',
      si_code: 'BUS_ADRERR',
      addr: 0x10003000,
    });
  });

  it('private mapping: a read maps the page-cache folio read-only (MM_FILEPAGES, file rmap)', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    const r = env.run(cpu_user_read(env.task, 0x10002000, 2));
    expect(r.kind === 'ok' && [...r.data]).toEqual([0x12, 0x12]);
    const v = pteAt(env, 0x10002000);
    const fo = env.run(filemap_get_folio(f.f_mapping, 2))!;
    expect(pte_pfn(v)).toBe(fo);
    expect(pte_write(v)).toBe(false);
    expect(page_mapcount(fo as number as page)).toBe(1);
    expect(folio_ref_count(fo)).toBe(3); // cache + PTE + our lookup
    expect(get_mm_counter(env.task.mm!, MM_FILEPAGES)).toBe(1);
  });

  it('private mapping: a write after the read COWs the page into an anonymous page (file -1, anon +1)', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    env.run(cpu_user_read(env.task, 0x10000000, 1));
    const fo = pte_pfn(pteAt(env, 0x10000000)) as folio;
    expect(env.run(cpu_user_write(env.task, 0x10000001, new Uint8Array([0xff]))).kind).toBe('ok');
    const v = pteAt(env, 0x10000000);
    expect(pte_pfn(v)).not.toBe(fo);
    expect(pte_write(v)).toBe(true);
    expect([...phys_read(pte_pfn(v) * 4096, 3)]).toEqual([0x10, 0xff, 0x10]);
    expect([...phys_read(fo * 4096, 2)]).toEqual([0x10, 0x10]);
    expect(get_mm_counter(env.task.mm!, MM_FILEPAGES)).toBe(0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    expect(page_mapcount(fo as number as page)).toBe(0);
    expect(folio_ref_count(fo)).toBe(1); // the cache's only
  });

  it('private mapping: a first write (do_cow_fault) copies the file page into an anonymous page at once', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    expect(env.run(cpu_user_write(env.task, 0x10001000, new Uint8Array([1]))).kind).toBe('ok');
    const v = pteAt(env, 0x10001000);
    const fo = env.run(filemap_get_folio(f.f_mapping, 1))!;
    expect(pte_pfn(v)).not.toBe(fo);
    expect([...phys_read(pte_pfn(v) * 4096, 2)]).toEqual([1, 0x11]);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    expect(get_mm_counter(env.task.mm!, MM_FILEPAGES)).toBe(0);
    expect(folio_ref_count(fo)).toBe(2); // cache + our lookup
  });
});

describe('filemap_page_mkwrite', () => {
  it('marks the folio dirty and returns it locked; a truncated folio gives VM_FAULT_NOPAGE', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_SHARED);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    // FGP_CREAT returns a new folio locked.
    const fo = env.run(__filemap_get_folio(f.f_mapping, 0, FGP_CREAT, 0)) as folio;
    expect(folio_test_locked(fo)).toBe(true);
    env.run(folio_unlock(fo));
    const vmf = { vma, page: fo } as unknown as vm_fault;
    expect(env.run(filemap_page_mkwrite(vmf))).toBe(VM_FAULT_LOCKED);
    expect(folio_test_dirty(fo)).toBe(true);
    expect(folio_test_locked(fo)).toBe(true);
    env.run(filemap_remove_folio(fo));
    env.run(folio_unlock(fo));
    expect(env.run(filemap_page_mkwrite(vmf))).toBe(VM_FAULT_NOPAGE);
    expect(folio_test_locked(fo)).toBe(false);
  });
});

describe('folio_mark_dirty', () => {
  it('returns true only for the clean-to-dirty transition', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    const fo = env.run(__filemap_get_folio(f.f_mapping, 0, FGP_CREAT, 0)) as folio;
    env.run(folio_unlock(fo));
    expect(env.run(folio_mark_dirty(fo))).toBe(true);
    expect(env.run(folio_mark_dirty(fo))).toBe(false);
  });
});

describe('filemap_write_and_wait_range', () => {
  it('O-1: writeback write-protects and cleans the PTEs (folio_mkclean), writes the disk and cleans the folio', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_SHARED);
    env.run(cpu_user_write(env.task, 0x10001000, new Uint8Array([0xab, 0xcd])));
    const v = pteAt(env, 0x10001000);
    expect(pte_write(v) && pte_dirty(v)).toBe(true);
    const fo = pte_pfn(v) as folio;
    expect(folio_test_dirty(fo)).toBe(true);
    expect(env.run(filemap_write_and_wait_range(f.f_mapping, 0, -1))).toBe(0);
    const v2 = pteAt(env, 0x10001000);
    expect(pte_write(v2) || pte_dirty(v2)).toBe(false);
    expect(folio_test_dirty(fo)).toBe(false);
    expect([...ext4DiskContents(f.f_inode).subarray(0x1000, 0x1003)]).toEqual([0xab, 0xcd, 0x11]);
  });
});

describe('truncate_inode_pages_range', () => {
  it('removes whole folios of the range and zeroes the cut part of the partial one', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    const folios: folio[] = [];
    for (const i of [0, 1, 2]) {
      // Read each page in through filemap_fault (returns it locked and referenced).
      const vmf = {
        vma: { vm_file: f },
        pgoff: i,
        page: null,
        flags: 0,
        gfp_mask: 0,
      } as unknown as vm_fault;
      env.run(filemap_fault(vmf));
      const fo = vmf.page as number as folio;
      env.run(folio_unlock(fo));
      folio_put(fo);
      folios.push(fo);
    }
    const f0 = folios[0]!;
    expect(f.f_mapping.nrpages).toBe(3);
    env.run(truncate_inode_pages_range(f.f_mapping, 0x800, -1));
    expect(f.f_mapping.nrpages).toBe(1);
    expect(env.run(filemap_get_folio(f.f_mapping, 1))).toBeNull();
    expect(page_is_free(folios[1]!) && page_is_free(folios[2]!)).toBe(true);
    expect(phys_read(f0 * 4096 + 0x7ff, 2)[0]).toBe(0x10);
    expect(phys_read(f0 * 4096 + 0x800, 1)[0]).toBe(0);
  });
});

describe('truncate_pagecache', () => {
  it('R-REV-1: shrinking a file unmaps the cut pages from every mapping, COWed private pages too (even_cows=1)', () => {
    const env = boot();
    const f = createExt4File('/a', data3());
    mmapFile(env, f, 0x10000000, 0x3000, PROT_READ | PROT_WRITE, MAP_SHARED);
    mmapFile(env, f, 0x20000000, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    env.run(cpu_user_read(env.task, 0x10002000, 1));
    env.run(cpu_user_write(env.task, 0x20002000, new Uint8Array([1])));
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    env.run(truncate_setsize(f.f_inode, 0x2000));
    expect(walkToPte(env.task.mm!, 0x10002000) && pteAt(env, 0x10002000)).toBe(0);
    expect(pteAt(env, 0x20002000)).toBe(0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(0);
    expect(env.run(filemap_get_folio(f.f_mapping, 2))).toBeNull();
    expect(env.run(cpu_user_read(env.task, 0x10002000, 1)).kind).toBe('SIGBUS');
    // truncate_pagecache itself keeps i_size as the caller set it.
    env.run(truncate_pagecache(f.f_inode, 0x2000));
    expect(f.f_inode.i_size).toBe(0x2000);
  });
});
