/**
 * Tests of the zap paths (mm/memory.c: zap_pte_range and up, zap_page_range_single,
 * zap_vma_ptes, unmap_mapping_range, free_pgtables) and the reduced mmu_gather.
 * Rules: kernel-spec.md §7 R-REV-1, R-REV-2; §8 R-MMUN-2; §2 R-VNP-6.
 *
 * Mappings are made with vm_mmap_pgoff and populated through the CPU's fault path
 * (cpu_user_write / cpu_user_read), except pfnmap entries, which a test driver's ->mmap
 * installs as remap_pfn_range would (special, no struct page).
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import type { Op, Step } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  mm_struct,
  page,
  vm_area_struct,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  get_mm_counter,
} from '../include/linux/mm.js';
import {
  folio_test_dirty,
  folio_test_anon,
  page_mapcount,
  __folio_set_locked,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put, page_ref_count } from '../include/linux/page_ref.js';
import {
  pgd_offset,
  pmd_alloc,
  pud_alloc,
  ptep_get,
  set_pmd_at,
  set_pud_at,
  walkToLeaf,
  walkToPte,
  zero_pfn,
} from '../include/linux/pgtable.js';
import { pmd_mkspecial, pud_mkspecial } from '../arch/x86/include/asm/pgtable.js';
import {
  _PAGE_PSE,
  pfn_pte,
  pte_dirty,
  pte_pfn,
  pte_present,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { alloc_page, GFP_KERNEL, page_is_free } from './page_alloc.js';
import { remap_pfn_range, vm_insert_page } from './memory.pfnmap.js';
import { shmem_file_setup } from './shmem.js';
import {
  mmu_notifier_register,
  notifierLog,
  type mmu_notifier,
  type mmu_notifier_range,
} from './mmu_notifier.js';
import { vma_lookup } from './vma.js';
import {
  tlb_finish_mmu,
  tlb_gather_mmu,
  unmap_mapping_folio,
  unmap_mapping_pages,
  unmap_mapping_range,
  unmap_page_range,
  zap_page_range_single,
  zap_vma_ptes,
  pgtable_pages,
} from './memory.zap.js';

const MiB = 2 ** 20;
/** An MMIO BAR without struct page: pfns 0xc0000..0xc00ff. */
const BAR = 0xc0000000;
const BAR_PFN = BAR / 4096;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'bar' }],
  });
  return k;
}

/** An unlinked tmpfs file of `size` bytes (shmem_file_setup); pages come at fault time. */
function tmpfsFile(size: number): file {
  const f = shmem_file_setup('test', size, 0n);
  if (typeof f === 'number') throw new Error(`shmem_file_setup: ${f}`);
  return f;
}

/** Runs op as the task (current = task). */
function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

/** Drives op and records every step it yields. */
function* recording<T>(op: Op<T>, log: Step[]): Op<T> {
  let r = op.next();
  while (!r.done) {
    log.push(r.value);
    const sent: unknown = yield r.value;
    r = op.next(sent);
  }
  return r.value;
}

function mmapAnon(k: Kernel, t: task_struct, len: number, addr = 0, flags = 0): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(
      t.mm!,
      null,
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | flags,
      0,
    ),
  );
  expect(a).toBeGreaterThan(0);
  return a;
}

function write(k: Kernel, t: task_struct, addr: number, byte: number): void {
  expect(runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind).toBe('ok');
}

function read(k: Kernel, t: task_struct, addr: number): number {
  const r = runAs(k, t, cpu_user_read(t, addr, 1));
  expect(r.kind).toBe('ok');
  return r.kind === 'ok' ? r.data[0]! : -1;
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

/**
 * A test driver whose ->mmap maps its BAR as remap_pfn_range does: VM_IO|VM_PFNMAP|
 * VM_DONTEXPAND|VM_DONTDUMP and a special entry per page (vm_pgoff = first pfn).
 */
function barFile(firstPfn = BAR_PFN): file {
  const ops: vm_operations_struct = { name: 'bar_vm_ops' };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/bar', O_RDWR, inode, {
    name: 'bar_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        firstPfn,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  });
}

/** A driver mapping kernel pages with vm_insert_page (VM_MIXEDMAP, refcounted). */
function ringFile(pages: number[]): file {
  const ops: vm_operations_struct = { name: 'ring_vm_ops' };
  const inode = new_inode({ s_type: 'anon_inodefs', s_nowriteback: true }, 'anon');
  return alloc_file('anon_inode:[ring]', O_RDWR, inode, {
    name: 'ring_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      for (let a = vma.vm_start, i = 0; a < vma.vm_end; a += 4096, i++) {
        const err = yield* vm_insert_page(vma, a, pages[i]! as page);
        if (err) return err;
      }
      return 0;
    },
  });
}

function mmapFile(
  k: Kernel,
  t: task_struct,
  f: file,
  len: number,
  flags: number,
  pgoff = 0,
): number {
  const a = runAs(k, t, vm_mmap_pgoff(t.mm!, f, 0, len, PROT_READ | PROT_WRITE, flags, pgoff));
  expect(a).toBeGreaterThan(0);
  return a;
}

/** A notifier that calls `onEnd` at each invalidate_range_end. */
function endHook(k: Kernel, mm: mm_struct, onEnd: (r: mmu_notifier_range) => void): mmu_notifier {
  const sub: mmu_notifier = {
    name: 'test',
    mm: null,
    ops: {
      *invalidate_range_end(_s, r) {
        onEnd(r);
      },
    },
  };
  k.run(mmu_notifier_register(sub, mm));
  return sub;
}

import type { Runner } from '../../sched/index.js';
import { page_alloc_state, __GFP_MOVABLE } from './page_alloc.js';
import { is_migration_entry, swp_offset_pfn } from '../include/linux/swapops.js';
import { do_madvise, MADV_DONTNEED } from './madvise.js';
import { set_pte_at } from '../include/linux/pgtable.js';

/** The kernel log's lines. */
const logText = (k: Kernel): string[] => k.log.map((l) => l.text);

/** Frames the allocator has handed out and not had back. */
function liveFrames(): number {
  const st = page_alloc_state().stats;
  return st.allocs - st.frees;
}

/**
 * Starts migrate_pages() of the folio mapped at `addr` (isolated first) in thread 0 of a
 * runner, and stops it once try_to_migrate has replaced the mappings by migration entries
 * and dropped the PTE lock: its next step is the reference check of __migrate_folio.
 */
function startMigration(k: Kernel, mm: mm_struct, addr: number) {
  const src = pte_pfn(pteAt(mm, addr)) as folio;
  return migrationAtRefCheck(k, src);
}

/** Runs thread tid alone until it ends. */
function runThread(r: Runner, tid: number): unknown {
  while (!r.threads[tid]!.done) expect(r.step(tid)).toBe(true);
  return r.threads[tid]!.result;
}

describe('zap_pte_range', () => {
  it('R-VNP-6: zapping pfnmap entries clears them without refcount, rmap or RSS change', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    // The BAR at 0xc0000000 has no struct page; 4 pages are mapped.
    const a = mmapFile(k, t, barFile(), 0x4000, MAP_SHARED);
    expect(pte_pfn(pteAt(mm, a))).toBe(BAR_PFN);
    const rss = [...mm.rss_stat];
    const vma = vma_lookup(mm, a)!;
    runAs(k, t, zap_page_range_single(vma, a, 0x4000, null));
    for (let i = 0; i < 4; i++) expect(pteAt(mm, a + i * 4096)).toBe(0);
    expect(mm.rss_stat).toEqual(rss);
  });

  it('R-VNP-6: special entries of RAM pfns keep their refcount and mapcount', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    // A driver remapping RAM pfns 0x5000.. (struct page exists, entries are special).
    const a = mmapFile(k, t, barFile(0x5000), 0x2000, MAP_SHARED);
    const before = [page_ref_count(0x5000 as page), page_mapcount(0x5000 as page)];
    runAs(k, t, zap_page_range_single(vma_lookup(mm, a)!, a, 0x2000, null));
    expect(pteAt(mm, a)).toBe(0);
    expect([page_ref_count(0x5000 as page), page_mapcount(0x5000 as page)]).toEqual(before);
  });

  it('R-VNP-6: the zero page is cleared without touching its refcount', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x2000);
    expect(read(k, t, a)).toBe(0); // read fault maps the zero page
    expect(pte_pfn(pteAt(mm, a))).toBe(zero_pfn());
    const ref = page_ref_count(zero_pfn() as page);
    runAs(k, t, zap_page_range_single(vma_lookup(mm, a)!, a, 0x1000, null));
    expect(pteAt(mm, a)).toBe(0);
    expect(page_ref_count(zero_pfn() as page)).toBe(ref);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(0);
  });

  it('R-MMUN-2: anonymous pages are freed after mmu_notifier_invalidate_range_end', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x3000);
    for (let i = 0; i < 3; i++) write(k, t, a + i * 4096, i + 1);
    const pfns = [0, 1, 2].map((i) => pte_pfn(pteAt(mm, a + i * 4096)));
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(3);
    const atEnd: boolean[] = [];
    const ptesAtEnd: pteval_t[] = [];
    endHook(k, mm, () => {
      atEnd.push(...pfns.map((p) => page_is_free(p)));
      ptesAtEnd.push(...[0, 1, 2].map((i) => pteAt(mm, a + i * 4096)));
    });
    notifierLog().length = 0;
    runAs(k, t, zap_page_range_single(vma_lookup(mm, a)!, a, 0x3000, null));
    // At the end of the CLEAR range the entries are gone but the frames not yet freed.
    expect(ptesAtEnd).toEqual([0, 0, 0]);
    expect(atEnd).toEqual([false, false, false]);
    expect(pfns.map((p) => page_is_free(p))).toEqual([true, true, true]);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(0);
    expect(notifierLog().map((e) => [e.phase, e.event, e.start, e.end])).toEqual([
      ['start', 'MMU_NOTIFY_CLEAR', a, a + 0x3000],
      ['end', 'MMU_NOTIFY_CLEAR', a, a + 0x3000],
    ]);
  });

  it('a page with another reference survives the zap: only the mapping goes', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x1000);
    write(k, t, a, 7);
    const p = pte_pfn(pteAt(mm, a));
    folio_get(p as folio); // e.g. a pin
    runAs(k, t, zap_page_range_single(vma_lookup(mm, a)!, a, 0x1000, null));
    expect(page_is_free(p)).toBe(false);
    expect(page_ref_count(p as page)).toBe(1);
    expect(page_mapcount(p as page)).toBe(0);
    folio_put(p as folio);
    expect(page_is_free(p)).toBe(true);
  });

  it('a dirty shared file entry dirties its page-cache folio; RSS shmem drops', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const f = tmpfsFile(0x2000);
    const a = mmapFile(k, t, f, 0x2000, MAP_SHARED);
    write(k, t, a, 9);
    const p = pte_pfn(pteAt(mm, a));
    expect(pte_dirty(pteAt(mm, a))).toBe(true);
    expect(get_mm_counter(mm, MM_SHMEMPAGES) + get_mm_counter(mm, MM_FILEPAGES)).toBe(1);
    runAs(k, t, zap_page_range_single(vma_lookup(mm, a)!, a, 0x2000, null));
    expect(folio_test_dirty(p as folio)).toBe(true);
    expect(get_mm_counter(mm, MM_SHMEMPAGES) + get_mm_counter(mm, MM_FILEPAGES)).toBe(0);
    expect(page_is_free(p)).toBe(false); // the page cache keeps it
    expect(page_mapcount(p as page)).toBe(0);
  });
});

describe('zap_pmd_range / zap_pud_range', () => {
  function hugeBar(
    k: Kernel,
    t: task_struct,
    level: 'pmd' | 'pud',
  ): { a: number; vma: vm_area_struct } {
    const size = level === 'pmd' ? 2 * MiB : 2 ** 30;
    const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
    const f = alloc_file('/dev/huge', O_RDWR, inode, {
      name: 'huge_fops',
      *mmap(_f, vma) {
        vma.vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
        vma.vm_ops = { name: 'huge_vm_ops' };
        return 0;
      },
    });
    // A size-aligned address: the hint is used when free.
    const a = runAs(
      k,
      t,
      vm_mmap_pgoff(t.mm!, f, size * 16, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, 0),
    );
    expect(a).toBe(size * 16);
    const mm = t.mm!;
    const vma = vma_lookup(mm, a)!;
    k.run(
      (function* () {
        const pudp = yield* pud_alloc(mm, pgd_offset(mm, a), a);
        // RAM pfn 0x40000 (1 GiB) is PUD- and PMD-aligned.
        const leaf = pfn_pte(0x40000, vma.vm_page_prot | _PAGE_PSE);
        if (level === 'pud') {
          yield* set_pud_at(mm, a, pudp!, pud_mkspecial(leaf));
          return;
        }
        const pmdp = yield* pmd_alloc(mm, pudp!, a);
        yield* set_pmd_at(mm, a, pmdp!, pmd_mkspecial(leaf));
      })(),
    );
    expect(walkToLeaf(mm, a)?.level).toBe(level);
    return { a, vma };
  }

  it('R-VNP-6: a special PMD leaf covering the range is cleared without accounting', () => {
    const k = boot();
    const t = create_user_task('t');
    const { a, vma } = hugeBar(k, t, 'pmd');
    const ref = page_ref_count(0x40000 as page);
    runAs(k, t, zap_vma_ptes(vma, a, 2 * MiB));
    expect(walkToLeaf(t.mm!, a)).toBeNull();
    expect(page_ref_count(0x40000 as page)).toBe(ref);
  });

  it('R-VNP-6: a partial zap of a special PMD leaf clears the whole leaf (split)', () => {
    const k = boot();
    const t = create_user_task('t');
    const { a, vma } = hugeBar(k, t, 'pmd');
    notifierLog().length = 0;
    runAs(k, t, zap_vma_ptes(vma, a + 0x1000, 0x1000));
    expect(walkToLeaf(t.mm!, a)).toBeNull();
    expect(walkToLeaf(t.mm!, a + 0x100000)).toBeNull();
    // The split's own CLEAR range covers the 2 MiB, inside the zap's CLEAR range.
    expect(notifierLog().map((e) => [e.phase, e.start, e.end])).toEqual([
      ['start', a + 0x1000, a + 0x2000],
      ['start', a, a + 2 * MiB],
      ['end', a, a + 2 * MiB],
      ['end', a + 0x1000, a + 0x2000],
    ]);
  });

  it('R-VNP-6: a special PUD leaf is cleared (v6.12 huge pfnmap)', () => {
    const k = boot();
    const t = create_user_task('t');
    const { a, vma } = hugeBar(k, t, 'pud');
    runAs(k, t, zap_vma_ptes(vma, a, 2 ** 30));
    expect(walkToLeaf(t.mm!, a)).toBeNull();
  });
});

describe('zap_vma_ptes', () => {
  it('R-REV-2: no-op when the range does not lie inside the VMA', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapFile(k, t, barFile(), 0x4000, MAP_SHARED);
    const vma = vma_lookup(mm, a)!;
    notifierLog().length = 0;
    runAs(k, t, zap_vma_ptes(vma, a + 0x2000, 0x4000)); // runs past vm_end
    runAs(k, t, zap_vma_ptes(vma, a - 0x1000, 0x2000)); // starts before vm_start
    expect(pte_pfn(pteAt(mm, a + 0x3000))).toBe(BAR_PFN + 3);
    expect(pte_pfn(pteAt(mm, a))).toBe(BAR_PFN);
    expect(notifierLog()).toEqual([]);
  });

  it('R-REV-2: no-op on a VMA without VM_PFNMAP (VM_MIXEDMAP, anonymous)', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x1000);
    write(k, t, a, 1);
    const anon = vma_lookup(mm, a)!;
    runAs(k, t, zap_vma_ptes(anon, a, 0x1000));
    expect(pteAt(mm, a)).not.toBe(0);
    const ring = alloc_page(GFP_KERNEL)!;
    const b = mmapFile(k, t, ringFile([ring]), 0x1000, MAP_SHARED);
    const mixed = vma_lookup(mm, b)!;
    expect(mixed.vm_flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
    runAs(k, t, zap_vma_ptes(mixed, b, 0x1000));
    expect(pte_pfn(pteAt(mm, b))).toBe(ring);
  });

  it('R-REV-2, R-MMUN-2: zaps a VM_PFNMAP range inside the VMA under MMU_NOTIFY_CLEAR', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapFile(k, t, barFile(), 0x4000, MAP_SHARED);
    notifierLog().length = 0;
    runAs(k, t, zap_vma_ptes(vma_lookup(mm, a)!, a + 0x1000, 0x2000));
    expect([0, 1, 2, 3].map((i) => pteAt(mm, a + i * 4096) !== 0)).toEqual([
      true,
      false,
      false,
      true,
    ]);
    expect(notifierLog().map((e) => `${e.phase}:${e.event}`)).toEqual([
      'start:MMU_NOTIFY_CLEAR',
      'end:MMU_NOTIFY_CLEAR',
    ]);
  });
});

/** A 16-page tmpfs file mapped twice: pages 2..9 at A and pages 6..13 at B. */
function twoWindows(k: Kernel, t: task_struct, flags = MAP_SHARED) {
  const f = tmpfsFile(16 * 4096);
  const A = mmapFile(k, t, f, 8 * 4096, flags, 2);
  const B = mmapFile(k, t, f, 8 * 4096, flags, 6);
  for (let i = 0; i < 8; i++) {
    read(k, t, A + i * 4096);
    read(k, t, B + i * 4096);
  }
  return { f, A, B };
}
const present = (mm: mm_struct, base: number) =>
  [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (pteAt(mm, base + i * 4096) !== 0 ? 1 : 0));

describe('unmap_mapping_range', () => {
  it('R-REV-1: pgoff arithmetic over two VMAs mapping different windows of one file', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const { f, A, B } = twoWindows(k, t);
    notifierLog().length = 0;
    // File bytes [0x5000, 0x8800): pages 5..8 (holelen rounds up to 4 pages).
    runAs(k, t, unmap_mapping_range(f.f_mapping, 0x5000, 0x3800, 1));
    // A maps pages 2..9: indexes 3..6 go. B maps 6..13: indexes 0..2 go.
    expect(present(mm, A)).toEqual([1, 1, 1, 0, 0, 0, 0, 1]);
    expect(present(mm, B)).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
    // One CLEAR range per VMA, in vm_pgoff order: A (pgoff 2) then B (pgoff 6).
    expect(notifierLog().map((e) => [e.phase, e.event, e.start, e.end])).toEqual([
      ['start', 'MMU_NOTIFY_CLEAR', A + 0x3000, A + 0x7000],
      ['end', 'MMU_NOTIFY_CLEAR', A + 0x3000, A + 0x7000],
      ['start', 'MMU_NOTIFY_CLEAR', B, B + 0x3000],
      ['end', 'MMU_NOTIFY_CLEAR', B, B + 0x3000],
    ]);
  });

  it('R-REV-1: holelen 0 unmaps to the end of the file', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const { f, A, B } = twoWindows(k, t);
    runAs(k, t, unmap_mapping_range(f.f_mapping, 0x8000, 0, 1));
    // From page 8 on: A's indexes 6, 7 (pages 8, 9); all of B from index 2 (page 8).
    expect(present(mm, A)).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect(present(mm, B)).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
    // unmap_mapping_pages(nr = 0) is the same.
    read(k, t, A + 6 * 4096);
    runAs(k, t, unmap_mapping_pages(f.f_mapping, 9, 0, true));
    expect(present(mm, A)).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
  });

  it('R-REV-1: even_cows=0 keeps COWed anonymous pages, even_cows=1 removes them', () => {
    for (const even_cows of [0, 1]) {
      const k = boot();
      const t = create_user_task('t');
      const mm = t.mm!;
      const { f, A } = twoWindows(k, t, MAP_PRIVATE);
      write(k, t, A, 0x22); // COW: page 2 becomes a private anonymous copy
      const cow = pte_pfn(pteAt(mm, A));
      expect(folio_test_anon(cow as folio)).toBe(true);
      runAs(k, t, unmap_mapping_range(f.f_mapping, 0, 0, even_cows));
      // Page-cache pages go in both cases; the COWed page only with even_cows.
      expect(present(mm, A)).toEqual([even_cows ? 0 : 1, 0, 0, 0, 0, 0, 0, 0]);
      expect(page_is_free(cow)).toBe(even_cows === 1);
      if (!even_cows) expect(read(k, t, A)).toBe(0x22);
    }
  });

  it('R-REV-1: i_mmap_rwsem held for read across the walk (v6.12), for write (v5.10)', () => {
    for (const [v, shared] of [
      ['6.12', true],
      ['5.10', false],
    ] as const) {
      const k = boot(v);
      const t = create_user_task('t');
      const { f } = twoWindows(k, t);
      const steps: Step[] = [];
      runAs(k, t, recording(unmap_mapping_range(f.f_mapping, 0, 0, 1), steps));
      const lock = steps.filter((s) => s.obj === f.f_mapping.i_mmap_rwsem.name);
      expect(lock.map((s) => s.kind)).toEqual(['acquire', 'release']);
      expect(Boolean(lock[0]!.shared)).toBe(shared);
      // Every entry cleared lies between the acquire and the release.
      const first = steps.indexOf(lock[0]!);
      const last = steps.indexOf(lock[1]!);
      const clears = steps.filter((s) => s.what === 'ptep_get_and_clear_full');
      expect(clears.length).toBe(16);
      for (const c of clears) {
        expect(steps.indexOf(c)).toBeGreaterThan(first);
        expect(steps.indexOf(c)).toBeLessThan(last);
      }
    }
  });
});

describe('unmap_mapping_folio', () => {
  it('R-REV-1: unmaps one locked folio everywhere, keeping COWed pages (even_cows=0)', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const { f, A, B } = twoWindows(k, t);
    const p = pte_pfn(pteAt(mm, A + 5 * 4096)); // page 7 of the file
    expect(pte_pfn(pteAt(mm, B + 1 * 4096))).toBe(p);
    // A private mapping of pages 6..7 whose page 7 was COWed.
    const C = mmapFile(k, t, f, 2 * 4096, MAP_PRIVATE, 6);
    write(k, t, C + 4096, 0x33);
    const cow = pte_pfn(pteAt(mm, C + 4096));
    expect(cow).not.toBe(p);
    __folio_set_locked(p as folio);
    runAs(k, t, unmap_mapping_folio(p as folio));
    expect(pteAt(mm, A + 5 * 4096)).toBe(0);
    expect(pteAt(mm, B + 1 * 4096)).toBe(0);
    expect(pte_pfn(pteAt(mm, C + 4096))).toBe(cow);
    expect(present(mm, A)).toEqual([1, 1, 1, 1, 1, 0, 1, 1]);
    expect(page_mapcount(p as page)).toBe(0);
  });
});

describe('mmu_gather', () => {
  it('tlb_finish_mmu drops the gathered references; before it the frames are in use', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x1000);
    write(k, t, a, 1);
    const p = pte_pfn(pteAt(mm, a));
    const vma = vma_lookup(mm, a)!;
    const tlb = tlb_gather_mmu(mm);
    runAs(k, t, unmap_page_range(tlb, vma, a, a + 0x1000, null));
    expect(pteAt(mm, a)).toBe(0);
    expect(page_is_free(p)).toBe(false);
    expect(tlb.pages.length).toBe(1);
    runAs(k, t, tlb_finish_mmu(tlb));
    expect(page_is_free(p)).toBe(true);
  });

  it('pgtable_pages counts the PGD and every table under it', () => {
    const k = boot();
    const t = create_user_task('t');
    expect(pgtable_pages(t.mm!)).toBe(1);
    const a = mmapAnon(k, t, 0x1000);
    write(k, t, a, 1);
    expect(pgtable_pages(t.mm!)).toBe(4);
    expect(t.mm!.pgtables_bytes).toBe(4 * 4096);
  });
});

describe('zap_nonpresent_ptes', () => {
  for (const v of ['5.7', '5.10', '6.12', '6.18']) {
    it(`R-REV-5 (${v}): MADV_DONTNEED of a page under migration clears its migration entry: RSS drops, nothing is put, the migration succeeds and does not map the zapped page again, both frames go back`, () => {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const live0 = liveFrames();
      // 0x10000000..0x10002000: two anonymous pages; the first one migrates.
      const a = mmapAnon(k, t, 0x2000, 0x10000000, MAP_FIXED);
      write(k, t, a, 0x5a);
      write(k, t, a + 0x1000, 0x5b);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(2);
      const { r, src, list } = startMigration(k, mm, a);
      expect(is_migration_entry(pteAt(mm, a))).toBe(true);
      expect(swp_offset_pfn(pteAt(mm, a))).toBe(src);
      // Isolation reference only: the mapping's went with try_to_migrate.
      expect(page_ref_count(src as number as page)).toBe(1);
      r.spawn('madvise', do_madvise(mm, a, 0x1000, MADV_DONTNEED), t);
      expect(runThread(r, 1)).toBe(0);
      expect(pteAt(mm, a)).toBe(0);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(1);
      // No folio_put: the migration still holds its reference.
      expect(page_ref_count(src as number as page)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      expect(list).toEqual([]);
      // remove_migration_ptes found no entry: the page stays unmapped.
      expect(pteAt(mm, a)).toBe(0);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(1);
      expect(page_is_free(src as number as page)).toBe(true);
      // Only the second page (and the page tables) are live: the new frame went back too.
      expect(read(k, t, a + 0x1000)).toBe(0x5b);
      expect(logText(k).filter((l) => /Bad page|WARNING|unrecognized/.test(l))).toEqual([]);
      runAs(k, t, do_madvise(mm, a + 0x1000, 0x1000, MADV_DONTNEED));
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(0);
      expect(liveFrames() - live0).toBe(pgtable_pages(mm) - 1);
    });
  }

  it('R-REV-1 (v5.10): unmap_mapping_range with zap_details leaves a COWed page\'s migration entry in place ("we leave swap entries"); v6.12 even_cows zaps it', () => {
    for (const [v, kept] of [
      ['5.10', true],
      ['6.12', false],
    ] as const) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const f = tmpfsFile(4 * 4096);
      const a = mmapFile(k, t, f, 4 * 4096, MAP_PRIVATE);
      write(k, t, a, 0x22); // COW: a private anonymous copy of file page 0
      const { r } = startMigration(k, mm, a);
      r.spawn('unmap', unmap_mapping_range(f.f_mapping, 0, 0, 1), t);
      runThread(r, 1);
      expect(is_migration_entry(pteAt(mm, a))).toBe(kept);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(kept ? 1 : 0);
      expect(r.run().status).toBe('done');
      // Kept: remove_migration_ptes maps the new copy; zapped: nothing comes back.
      expect(pte_present(pteAt(mm, a))).toBe(kept);
      if (kept) expect(read(k, t, a)).toBe(0x22);
    }
  });

  it('a non-present entry that is not a migration entry is reported as an unrecognized swap entry, WARNs once and is cleared', () => {
    const k = boot('6.12');
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnon(k, t, 0x1000, 0x10000000, MAP_FIXED);
    write(k, t, a, 1);
    const p = pte_pfn(pteAt(mm, a));
    // A value outside the model's swap encoding: present bit clear, no swap marker.
    runAs(k, t, set_pte_at(mm, a, walkToPte(mm, a)!, pfn_pte(p, 0x2)));
    runAs(k, t, do_madvise(mm, a, 0x1000, MADV_DONTNEED));
    expect(pteAt(mm, a)).toBe(0);
    expect(logText(k).some((l) => l.includes('unrecognized swap entry'))).toBe(true);
    expect(logText(k).some((l) => l.startsWith('WARNING:'))).toBe(true);
  });
});
