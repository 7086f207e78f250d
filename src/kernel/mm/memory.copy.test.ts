/**
 * Tests of fork()'s page-table copy (mm/memory.c:copy_page_range and below).
 * Rules: kernel-spec.md §9 R-FORK-2, R-FORK-3; §8 R-MMUN-2; §11 O-3, O-9.
 *
 * Each test builds the parent's state by hand (VMAs and entries as the fault and remap
 * paths would leave them), forks with fork_task, and inspects both page tables.
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  address_space,
  file,
  folio,
  mm_struct,
  page,
  vm_area_struct,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { MMF_HAS_PINNED, MM_ANONPAGES, MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  GUP_PIN_COUNTING_BIAS,
  VM_HUGETLB,
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  VM_DONTEXPAND,
  VM_DONTDUMP,
  get_mm_counter,
  inc_mm_counter,
  mm_flags_set,
} from '../include/linux/mm.js';
import {
  PageAnonExclusive,
  folio_set_index,
  folio_set_mapping,
  page_mapcount,
} from '../include/linux/page-flags.js';
import { folio_get, folio_ref_add, page_ref_count } from '../include/linux/page_ref.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  ptep_get,
  set_pmd_at,
  set_pud_at,
  set_pte_at,
  walkToLeaf,
  walkToPte,
  zero_pfn,
} from '../include/linux/pgtable.js';
import { pmd_mkspecial, pte_mkspecial, pud_mkspecial } from '../arch/x86/include/asm/pgtable.js';
import {
  _PAGE_PSE,
  __pte,
  pfn_pte,
  pte_dirty,
  pte_flags,
  pte_mkdirty,
  pte_mkwrite,
  pte_mkyoung,
  pte_pfn,
  pte_write,
  pte_young,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pmd_special, pte_special, pud_special } from '../arch/x86/include/asm/pgtable.js';
import { anon_vma_prepare, folio_add_file_rmap_ptes, folio_add_new_anon_rmap } from './rmap.js';
import { RMAP_EXCLUSIVE } from './rmap.js';
import { alloc_page, __GFP_ZERO, GFP_HIGHUSER_MOVABLE } from './page_alloc.js';
import { phys_read, phys_write } from './sparse.js';
import { vm_area_alloc, vma_link, get_file } from './vma.js';
import { vm_get_page_prot } from './mmap.js';
import { notifierLog } from './mmu_notifier.js';
import { copy_page_range, vma_needs_copy } from './memory.copy.js';
import { new_inode, alloc_file, O_RDWR } from '../fs/inode.js';
import { KernelBug } from '../kernel/panic.js';
import type { Op } from '../../sched/index.js';
import { FAULT_FLAG_USER, FAULT_FLAG_WRITE } from '../include/linux/mm_types.js';
import { VM_PAT } from '../include/linux/mm.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../include/linux/mmap_lock.js';
import { handle_mm_fault } from './memory.fault.js';
import { remap_pfn_range } from './memory.pfnmap.js';
import { pat_memtype_list } from '../arch/x86/mm/pat/memtype.js';
import { vma_lookup } from './vma.js';

const MiB = 2 ** 20;
/** An MMIO window with no struct page: pfns 0xc0000..0xc00ff. */
const BAR_START = 0xc0000000;

function boot(version: string): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [
      ...x86_64_e820(2 ** 32),
      { start: BAR_START, end: BAR_START + MiB, kind: 'mmio', name: 'test BAR' },
    ],
  });
  return k;
}

interface VmaOpts {
  file?: file;
  ops?: vm_operations_struct;
  anon?: boolean;
  pgoff?: number;
}

/** A VMA as mmap_region would leave it, linked into mm (no ->mmap, no accounting). */
function makeVma(
  mm: mm_struct,
  start: number,
  end: number,
  flags: bigint,
  opts: VmaOpts = {},
): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = vm_get_page_prot(flags);
  vma.vm_pgoff = opts.pgoff ?? start / 4096;
  vma.vm_ops = opts.ops ?? null;
  if (opts.file) vma.vm_file = get_file(opts.file);
  vma_link(mm, vma);
  if (opts.anon) expect(anon_vma_prepare(vma)).toBe(0);
  return vma;
}

/** Walks (allocating tables) to the PTE of addr and sets it under the PTL. */
function* installPte(mm: mm_struct, addr: number, v: pteval_t): Op<void> {
  const pudp = yield* pud_alloc(mm, pgd_offset(mm, addr), addr);
  const pmdp = yield* pmd_alloc(mm, pudp!, addr);
  expect(yield* pte_alloc(mm, pmdp!)).toBe(false);
  const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp!, addr))!;
  yield* set_pte_at(mm, addr, ptep, v);
  yield* pte_unmap_unlock(ptep, ptl);
}

/** An anonymous page faulted in for write: exclusive, dirty, writable if VM_WRITE. */
function mapAnon(k: Kernel, vma: vm_area_struct, addr: number, fill?: number): number {
  const p = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_ZERO)!;
  if (fill !== undefined) phys_write(p * 4096, new Uint8Array(4096).fill(fill));
  folio_add_new_anon_rmap(p as number as folio, vma, addr, RMAP_EXCLUSIVE);
  inc_mm_counter(vma.vm_mm, MM_ANONPAGES);
  let pte = pte_mkyoung(pte_mkdirty(pfn_pte(p, vma.vm_page_prot)));
  if (vma.vm_flags & VM_WRITE) pte = pte_mkwrite(pte);
  k.run(installPte(vma.vm_mm, addr, pte));
  return p;
}

/** A special entry as remap_pfn_range / vmf_insert_pfn / vmf_insert_mixed would set it. */
function mapSpecial(k: Kernel, vma: vm_area_struct, addr: number, pfn: number, write: boolean) {
  let pte = pte_mkspecial(pte_mkyoung(pte_mkdirty(pfn_pte(pfn, vma.vm_page_prot))));
  if (write) pte = pte_mkwrite(pte);
  k.run(installPte(vma.vm_mm, addr, pte));
}

/** vm_insert_page(): a refcounted page, not special, file-rmap'd, RSS file. */
function insertPage(k: Kernel, vma: vm_area_struct, addr: number, p: number) {
  folio_get(p as folio);
  inc_mm_counter(vma.vm_mm, MM_FILEPAGES);
  folio_add_file_rmap_ptes(p as folio, p as page, 1, vma);
  k.run(installPte(vma.vm_mm, addr, pfn_pte(p, vma.vm_page_prot)));
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

function fork(k: Kernel, parent: task_struct): task_struct {
  const child = k.run(fork_task(parent));
  if (typeof child === 'number') throw new Error(`fork failed: ${child}`);
  return child;
}

function regFile(k: Kernel): file {
  void k;
  const inode = new_inode({ s_type: 'ext4', s_nowriteback: false }, 'reg');
  inode.i_size = 16 * MiB;
  return alloc_file('/data', O_RDWR, inode, { name: 'ext4_file_operations' });
}

/** A page-cache page of `mapping` at `index`, mapped at addr of vma (filemap_map_pages). */
function mapPageCache(
  k: Kernel,
  vma: vm_area_struct,
  mapping: address_space,
  addr: number,
  index: number,
): number {
  const p = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_ZERO)!;
  folio_set_mapping(p as number as folio, mapping, false);
  folio_set_index(p as number as folio, index);
  mapping.i_pages.set(index, p as number as folio);
  mapping.nrpages++;
  insertPage(k, vma, addr, p);
  return p;
}

const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const RW_SHARED = RW_PRIVATE | VM_SHARED | VM_MAYSHARE;
const PFNMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

import { SchedThread, type Runner } from '../../sched/index.js';
import { __GFP_MOVABLE, page_is_free } from './page_alloc.js';
import {
  is_migration_entry,
  is_readable_exclusive_migration_entry,
  is_readable_migration_entry,
  is_writable_migration_entry,
  swp_offset_pfn,
} from '../include/linux/swapops.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { do_mprotect_pkey } from './mprotect.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';

/** Runs op as the task (current = task). */
function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

/** A private anonymous page at addr, written with `byte` (a real write fault). */
function anonPage(k: Kernel, t: task_struct, addr: number, byte: number): void {
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  runAs(k, t, vm_mmap_pgoff(t.mm!, null, addr, 0x1000, PROT_READ | PROT_WRITE, flags, 0));
  expect(runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind).toBe('ok');
}

function readByte(k: Kernel, t: task_struct, addr: number): number {
  const r = runAs(k, t, cpu_user_read(t, addr, 1));
  return r.kind === 'ok' ? r.data[0]! : -1;
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

describe('vma_needs_copy', () => {
  it('R-FORK-2: PFNMAP and MIXEDMAP VMAs always copy; others only with an anon_vma', () => {
    const k = boot('6.12');
    const t = create_user_task('p');
    const mm = t.mm!;
    const pfnmap = makeVma(mm, 0x10000000, 0x10010000, RW_SHARED | PFNMAP_FLAGS);
    const mixed = makeVma(mm, 0x10100000, 0x10110000, RW_SHARED | VM_MIXEDMAP);
    const shared = makeVma(mm, 0x10200000, 0x10210000, RW_SHARED, { file: regFile(k) });
    const anon = makeVma(mm, 0x10300000, 0x10310000, RW_PRIVATE, { anon: true });
    const untouched = makeVma(mm, 0x10400000, 0x10410000, RW_PRIVATE);
    expect(vma_needs_copy(pfnmap, pfnmap)).toBe(true);
    expect(vma_needs_copy(mixed, mixed)).toBe(true);
    expect(vma_needs_copy(shared, shared)).toBe(false);
    expect(vma_needs_copy(anon, anon)).toBe(true);
    expect(vma_needs_copy(untouched, untouched)).toBe(false);
  });

  it('bcd51a3c679d (v6.0): a hugetlb VMA without anon_vma is copied on 5.15, not on 6.1', () => {
    for (const [v, want] of [
      ['5.15', true],
      ['6.1', false],
    ] as const) {
      boot(v);
      const t = create_user_task('p');
      const h = makeVma(t.mm!, 0x40000000, 0x40200000, RW_SHARED | VM_HUGETLB);
      expect(vma_needs_copy(h, h)).toBe(want);
    }
  });
});

describe('copy_page_range', () => {
  it('R-FORK-2: a PFNMAP VMA without anon_vma gets its special entries copied', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    // 0x10000000..0x10004000 -> BAR pfns 0xc0000..0xc0003 (no struct page)
    const vma = makeVma(parent.mm!, 0x10000000, 0x10004000, RW_SHARED | PFNMAP_FLAGS);
    expect(vma.anon_vma).toBeNull();
    for (let i = 0; i < 4; i++) mapSpecial(k, vma, 0x10000000 + i * 4096, 0xc0000 + i, true);
    const child = fork(k, parent);
    for (let i = 0; i < 4; i++) {
      const v = pteAt(child.mm!, 0x10000000 + i * 4096);
      expect(pte_pfn(v)).toBe(0xc0000 + i);
      expect(pte_special(v)).toBe(true);
    }
  });

  it('R-FORK-2: a shared file VMA without anon_vma gets no entries', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const f = regFile(k);
    const vma = makeVma(parent.mm!, 0x20000000, 0x20002000, RW_SHARED, { file: f, pgoff: 0 });
    // page cache index 0 mapped at 0x20000000
    const p = mapPageCache(k, vma, f.f_mapping, 0x20000000, 0);
    expect(page_ref_count(p as page)).toBe(2);
    const child = fork(k, parent);
    expect(pteAt(child.mm!, 0x20000000)).toBe(0);
    expect(page_ref_count(p as page)).toBe(2);
    expect(page_mapcount(p as page)).toBe(1);
    expect(get_mm_counter(child.mm!, MM_FILEPAGES)).toBe(0);
    // The child VMA is in i_mmap, so a later fault or unmap_mapping_range finds it.
    expect(f.f_mapping.i_mmap.size).toBe(2);
  });

  it('R-FORK-3: a shared special entry is copied old and clean with the same pfn, no refcount or mapcount change', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x10000000, 0x10002000, RW_SHARED | PFNMAP_FLAGS);
    // A RAM frame remapped by a driver (remap_pfn_range of a kernel page) at 0x10000000
    // and a BAR pfn 0xc0010 at 0x10001000.
    const ram = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    mapSpecial(k, vma, 0x10000000, ram, true);
    mapSpecial(k, vma, 0x10001000, 0xc0010, true);
    const before = pteAt(parent.mm!, 0x10000000);
    const child = fork(k, parent);
    for (const [addr, pfn] of [
      [0x10000000, ram],
      [0x10001000, 0xc0010],
    ] as const) {
      const c = pteAt(child.mm!, addr);
      expect(pte_pfn(c)).toBe(pfn);
      expect(pte_young(c)).toBe(false);
      expect(pte_dirty(c)).toBe(false);
      expect(pte_write(c)).toBe(true); // shared: not write-protected
      expect(pte_special(c)).toBe(true);
    }
    expect(pteAt(parent.mm!, 0x10000000)).toBe(before);
    expect(page_ref_count(ram as page)).toBe(1);
    expect(page_mapcount(ram as page)).toBe(0);
    expect(get_mm_counter(child.mm!, MM_FILEPAGES)).toBe(0);
  });

  it('R-FORK-3: a writable special entry of a COW mapping is write-protected in parent and child', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE | PFNMAP_FLAGS);
    // 0x10000000 -> BAR pfn 0xc0020, writable (vmf_insert_pfn_prot with RW)
    mapSpecial(k, vma, 0x10000000, 0xc0020, true);
    const child = fork(k, parent);
    const p = pteAt(parent.mm!, 0x10000000);
    const c = pteAt(child.mm!, 0x10000000);
    expect(pte_write(p)).toBe(false);
    expect(pte_write(c)).toBe(false);
    expect(pte_pfn(c)).toBe(0xc0020);
    expect(pte_dirty(c)).toBe(true); // private: the dirty bit is kept
    expect(pte_young(c)).toBe(false);
  });

  it('R-FORK-3 / O-3: MIXEDMAP: a special entry of a RAM frame is copied without references; a vm_insert_page entry is refcounted', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x30000000, 0x30002000, RW_SHARED | VM_MIXEDMAP);
    const special = alloc_page(GFP_HIGHUSER_MOVABLE)!; // vmf_insert_mixed: special entry
    const normal = alloc_page(GFP_HIGHUSER_MOVABLE)!; // vm_insert_page: not special
    mapSpecial(k, vma, 0x30000000, special, true);
    insertPage(k, vma, 0x30001000, normal);
    expect(page_ref_count(normal as page)).toBe(2);
    const child = fork(k, parent);
    expect(pte_pfn(pteAt(child.mm!, 0x30000000))).toBe(special);
    expect(page_ref_count(special as page)).toBe(1);
    expect(page_mapcount(special as page)).toBe(0);
    expect(pte_pfn(pteAt(child.mm!, 0x30001000))).toBe(normal);
    expect(page_ref_count(normal as page)).toBe(3);
    expect(page_mapcount(normal as page)).toBe(2);
    expect(get_mm_counter(child.mm!, MM_FILEPAGES)).toBe(1);
  });

  it('R-FORK-3: the zero page is copied as a special entry without a reference', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x50000000, 0x50001000, RW_PRIVATE, { anon: true });
    // do_anonymous_page read fault: pte_mkspecial(pfn_pte(my_zero_pfn(addr), vm_page_prot))
    mapSpecial(k, vma, 0x50000000, zero_pfn(), false);
    const refs = page_ref_count(zero_pfn() as page);
    const child = fork(k, parent);
    expect(pte_pfn(pteAt(child.mm!, 0x50000000))).toBe(zero_pfn());
    expect(page_ref_count(zero_pfn() as page)).toBe(refs);
    expect(get_mm_counter(child.mm!, MM_ANONPAGES)).toBe(0);
  });

  it('anon COW: the page is shared, mapcount 2, refcount 2, read-only in both, no longer exclusive', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, vma, 0x60000000, 0xab);
    expect(PageAnonExclusive(p as page)).toBe(true);
    const child = fork(k, parent);
    const pp = pteAt(parent.mm!, 0x60000000);
    const cp = pteAt(child.mm!, 0x60000000);
    expect(pte_pfn(cp)).toBe(p);
    expect(page_mapcount(p as page)).toBe(2);
    expect(page_ref_count(p as page)).toBe(2);
    expect(pte_write(pp)).toBe(false);
    expect(pte_write(cp)).toBe(false);
    expect(pte_young(cp)).toBe(false);
    expect(PageAnonExclusive(p as page)).toBe(false);
    expect(get_mm_counter(child.mm!, MM_ANONPAGES)).toBe(1);
    // The child VMA shares the anon_vma, so rmap finds both mappings.
    const cvma = child.mm!.mmap[0]!;
    expect(cvma.anon_vma).toBe(vma.anon_vma);
  });

  it('O-9: a maybe-pinned anon page is copied for the child; the parent keeps the pinned frame writable', () => {
    for (const v of ['5.10', '6.12', '6.18']) {
      const k = boot(v);
      const parent = create_user_task('p');
      const vma = makeVma(parent.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
      const p = mapAnon(k, vma, 0x60000000, 0x5a);
      // pin_user_pages(): refcount += GUP_PIN_COUNTING_BIAS; MMF_HAS_PINNED on the mm.
      folio_ref_add(p as folio, GUP_PIN_COUNTING_BIAS);
      mm_flags_set(MMF_HAS_PINNED, parent.mm!);
      const child = fork(k, parent);
      const pp = pteAt(parent.mm!, 0x60000000);
      const cp = pteAt(child.mm!, 0x60000000);
      expect(pte_pfn(pp)).toBe(p);
      expect(pte_write(pp)).toBe(true);
      expect(pte_pfn(cp)).not.toBe(p);
      expect(pte_write(cp)).toBe(true);
      expect(pte_dirty(cp)).toBe(true);
      expect(phys_read(pte_pfn(cp) * 4096, 4096)).toEqual(new Uint8Array(4096).fill(0x5a));
      expect(page_ref_count(p as page)).toBe(1 + GUP_PIN_COUNTING_BIAS);
      expect(page_mapcount(p as page)).toBe(1);
      expect(page_mapcount(pte_pfn(cp) as page)).toBe(1);
      expect(get_mm_counter(child.mm!, MM_ANONPAGES)).toBe(1);
      // MMF_HAS_PINNED is not inherited (MMF_INIT_MASK).
      expect(child.mm!.flags & (1 << MMF_HAS_PINNED)).toBe(0);
    }
  });

  it('O-9 / 70e806e4e645: before v5.9 a maybe-pinned anon page is shared like any other', () => {
    const k = boot('5.8');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, vma, 0x60000000, 1);
    folio_ref_add(p as folio, GUP_PIN_COUNTING_BIAS);
    mm_flags_set(MMF_HAS_PINNED, parent.mm!);
    const child = fork(k, parent);
    expect(pte_pfn(pteAt(child.mm!, 0x60000000))).toBe(p);
    expect(pte_write(pteAt(parent.mm!, 0x60000000))).toBe(false);
    expect(page_mapcount(p as page)).toBe(2);
  });

  it('O-9: without MMF_HAS_PINNED a refcount of 1024+ does not make fork copy', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, vma, 0x60000000, 1);
    folio_ref_add(p as folio, GUP_PIN_COUNTING_BIAS);
    const child = fork(k, parent);
    expect(pte_pfn(pteAt(child.mm!, 0x60000000))).toBe(p);
    expect(page_mapcount(p as page)).toBe(2);
  });

  it('fb3d824d1a46 (v5.19): v5.15 copies a maybe-pinned page-cache page of a COW mapping, v6.12 shares it', () => {
    for (const [v, copied] of [
      ['5.15', true],
      ['6.12', false],
    ] as const) {
      const k = boot(v);
      const parent = create_user_task('p');
      const f = regFile(k);
      const vma = makeVma(parent.mm!, 0x20000000, 0x20001000, RW_PRIVATE, {
        file: f,
        pgoff: 0,
        anon: true,
      });
      const p = mapPageCache(k, vma, f.f_mapping, 0x20000000, 0);
      folio_ref_add(p as folio, GUP_PIN_COUNTING_BIAS);
      mm_flags_set(MMF_HAS_PINNED, parent.mm!);
      const child = fork(k, parent);
      expect(pte_pfn(pteAt(child.mm!, 0x20000000)) !== p).toBe(copied);
      expect(get_mm_counter(child.mm!, copied ? MM_ANONPAGES : MM_FILEPAGES)).toBe(1);
    }
  });

  it('v5.15: a maybe-pinned page of a COW MIXEDMAP VMA without anon_vma hits BUG_ON(!anon_vma)', () => {
    const k = boot('5.15');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x30000000, 0x30001000, RW_PRIVATE | VM_MIXEDMAP);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    insertPage(k, vma, 0x30000000, p);
    folio_ref_add(p as number as folio, GUP_PIN_COUNTING_BIAS);
    mm_flags_set(MMF_HAS_PINNED, parent.mm!);
    expect(() => k.run(fork_task(parent))).toThrow(KernelBug);
  });

  it('R-MMUN-2: PROTECTION_PAGE brackets the copy of a COW VMA on the parent range; shared VMAs get none', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const cow = makeVma(parent.mm!, 0x60000000, 0x60004000, RW_PRIVATE, { anon: true });
    mapAnon(k, cow, 0x60001000, 1);
    const shr = makeVma(parent.mm!, 0x10000000, 0x10002000, RW_SHARED | PFNMAP_FLAGS);
    mapSpecial(k, shr, 0x10000000, 0xc0030, true);
    notifierLog().length = 0;
    const child = fork(k, parent);
    const ev = notifierLog().filter((e) => e.event === 'MMU_NOTIFY_PROTECTION_PAGE');
    expect(ev).toEqual([
      {
        phase: 'start',
        mm: parent.mm!.id,
        event: 'MMU_NOTIFY_PROTECTION_PAGE',
        start: 0x60000000,
        end: 0x60004000,
      },
      {
        phase: 'end',
        mm: parent.mm!.id,
        event: 'MMU_NOTIFY_PROTECTION_PAGE',
        start: 0x60000000,
        end: 0x60004000,
      },
    ]);
    expect(notifierLog().some((e) => e.mm === child.mm!.id)).toBe(false);
  });

  it('57efa1fe5957 (v5.11): write_protect_seq moves by 2 across a fork with a COW VMA, not with shared VMAs only', () => {
    for (const [v, cowDelta] of [
      ['5.10', 0],
      ['6.12', 2],
    ] as const) {
      const k = boot(v);
      const a = create_user_task('a');
      const cow = makeVma(a.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
      mapAnon(k, cow, 0x60000000, 1);
      const s0 = a.mm!.write_protect_seq.sequence;
      fork(k, a);
      expect(a.mm!.write_protect_seq.sequence - s0).toBe(cowDelta);

      const b = create_user_task('b');
      const shr = makeVma(b.mm!, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS);
      mapSpecial(k, shr, 0x10000000, 0xc0040, true);
      const s1 = b.mm!.write_protect_seq.sequence;
      fork(k, b);
      expect(b.mm!.write_protect_seq.sequence).toBe(s1);
    }
  });

  it('bc02afbd4d73 (v6.12): special PMD and PUD leaves of a pfnmap are copied as special leaves', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const mm = parent.mm!;
    // 0x40000000..0x80000000: one PUD leaf -> pfn 0x100000 (4 GiB), shared;
    // 0x80200000..0x80400000: one PMD leaf -> pfn 0x180000 (6 GiB, past RAM), private.
    const pudVma = makeVma(mm, 0x40000000, 0x80000000, RW_SHARED | PFNMAP_FLAGS);
    const pmdVma = makeVma(mm, 0x80200000, 0x80400000, RW_PRIVATE | PFNMAP_FLAGS);
    k.run(
      (function* () {
        const pudp = yield* pud_alloc(mm, pgd_offset(mm, 0x40000000), 0x40000000);
        yield* set_pud_at(
          mm,
          0x40000000,
          pudp!,
          pud_mkspecial(__pte(0x100000, pte_flags(pte_mkyoung(pudVma.vm_page_prot)) | _PAGE_PSE)),
        );
        const pud2 = yield* pud_alloc(mm, pgd_offset(mm, 0x80200000), 0x80200000);
        const pmdp = yield* pmd_alloc(mm, pud2!, 0x80200000);
        yield* set_pmd_at(
          mm,
          0x80200000,
          pmdp!,
          pmd_mkspecial(__pte(0x180000, pte_flags(pte_mkyoung(pmdVma.vm_page_prot)) | _PAGE_PSE)),
        );
      })(),
    );
    const child = fork(k, parent);
    const pud = walkToLeaf(child.mm!, 0x40000000)!;
    expect(pud.level).toBe('pud');
    const pudv = ptep_get(pud.ptr);
    expect(pte_pfn(pudv)).toBe(0x100000);
    expect(pud_special(pudv)).toBe(true);
    expect(pte_young(pudv)).toBe(false);
    expect(pte_write(pudv)).toBe(true); // shared: left writable (v6.12+)
    const pmd = walkToLeaf(child.mm!, 0x80200000)!;
    expect(pmd.level).toBe('pmd');
    const pmdv = ptep_get(pmd.ptr);
    expect(pte_pfn(pmdv)).toBe(0x180000);
    expect(pmd_special(pmdv)).toBe(true);
    expect(pte_young(pmdv)).toBe(false);
    // The parent's leaves are untouched (still young).
    expect(pte_young(ptep_get(walkToLeaf(mm, 0x80200000)!.ptr))).toBe(true);
  });

  it('returns 0 and copies nothing for a VMA that needs no copy (direct call)', () => {
    const k = boot('6.12');
    const a = create_user_task('a');
    const b = create_user_task('b');
    const src = makeVma(a.mm!, 0x10000000, 0x10001000, RW_PRIVATE);
    const dst = makeVma(b.mm!, 0x10000000, 0x10001000, RW_PRIVATE);
    expect(k.run(copy_page_range(dst, src))).toBe(0);
    expect(walkToPte(b.mm!, 0x10000000)).toBeNull();
  });
});

/** A user write fault at addr, as the page-fault handler makes it (mmap_lock held for read). */
function writeFault(k: Kernel, mm: mm_struct, addr: number): number {
  return k.run(
    (function* () {
      yield* mmap_read_lock(mm);
      const vma = vma_lookup(mm, addr)!;
      const r = yield* handle_mm_fault(vma, addr, FAULT_FLAG_WRITE | FAULT_FLAG_USER);
      yield* mmap_read_unlock(mm);
      return r;
    })(),
  );
}

/** remap_pfn_range of the whole VMA, under mmap_lock held for write (a driver's ->mmap). */
function remapWhole(k: Kernel, vma: vm_area_struct, pfn: number): number {
  return k.run(
    (function* () {
      yield* mmap_write_lock(vma.vm_mm);
      const r = yield* remap_pfn_range(
        vma,
        vma.vm_start,
        pfn,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
      yield* mmap_write_unlock(vma.vm_mm);
      return r;
    })(),
  );
}

describe('copy_page_range: COW after fork', () => {
  it('anon COW: a write in the child after fork copies; the parent then reuses its page', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const vma = makeVma(parent.mm!, 0x60000000, 0x60001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, vma, 0x60000000, 0x77);
    const child = fork(k, parent);
    expect(writeFault(k, child.mm!, 0x60000000)).toBe(0);
    const c = pteAt(child.mm!, 0x60000000);
    expect(pte_pfn(c)).not.toBe(p);
    expect(pte_write(c)).toBe(true);
    expect(phys_read(pte_pfn(c) * 4096, 4)).toEqual(new Uint8Array(4).fill(0x77));
    expect(page_mapcount(p as page)).toBe(1);
    expect(page_ref_count(p as page)).toBe(1);
    expect(writeFault(k, parent.mm!, 0x60000000)).toBe(0);
    const pp = pteAt(parent.mm!, 0x60000000);
    expect(pte_pfn(pp)).toBe(p);
    expect(pte_write(pp)).toBe(true);
  });
});

describe('copy_page_range: x86 PAT', () => {
  it('track_pfn_copy: 6.12 reserves the memtype again for the child; 6.18 shares the pfnmap_track_ctx', () => {
    for (const [v, after] of [
      ['6.12', 2],
      ['6.15', 2],
      ['6.18', 1],
    ] as const) {
      const k = boot(v);
      const parent = create_user_task('p');
      // 0x10000000..0x10004000 -> BAR pfns 0xc0000..0xc0003, remapped UC- by the driver
      const vma = makeVma(parent.mm!, 0x10000000, 0x10004000, RW_SHARED);
      expect(remapWhole(k, vma, 0xc0000)).toBe(0);
      expect(pat_memtype_list().length).toBe(1);
      const child = fork(k, parent);
      expect(pat_memtype_list().length).toBe(after);
      const cvma = vma_lookup(child.mm!, 0x10000000)!;
      if (v === '6.18') {
        expect(cvma.pfnmap_track_ctx).toBe(vma.pfnmap_track_ctx);
        expect(vma.pfnmap_track_ctx!.kref).toBe(2);
      } else {
        expect(cvma.vm_flags & VM_PAT).toBe(VM_PAT);
      }
      expect(pte_pfn(pteAt(child.mm!, 0x10003000))).toBe(0xc0003);
    }
  });

  it('dc84bc2aba85 (v6.15): when track_pfn_copy fails, 6.12 frees the parent reservation at the child teardown; 6.15 does not', () => {
    for (const [v, left] of [
      ['6.12', 0],
      ['6.15', 1],
    ] as const) {
      const k = boot(v);
      const parent = create_user_task('p');
      // A private (COW) mapping of BAR pfns 0xc0000..0xc0003 at 0x10000000.
      const vma = makeVma(parent.mm!, 0x10000000, 0x10004000, RW_PRIVATE);
      expect(remapWhole(k, vma, 0xc0000)).toBe(0);
      // The parent writes its first page: the entry at vm_start becomes an anon page, so
      // get_pat_info() cannot find the pfn and track_pfn_copy() fails with -EINVAL.
      expect(writeFault(k, parent.mm!, 0x10000000)).toBe(0);
      expect(pte_special(pteAt(parent.mm!, 0x10000000))).toBe(false);
      expect(k.run(fork_task(parent))).toBe(-12);
      // 6.12: the child VMA kept VM_PAT, its teardown looked the pfn up from vm_pgoff and
      // freed the parent's reservation. 6.15: VM_PAT only after a successful reservation.
      expect(pat_memtype_list().length).toBe(left);
    }
  });
});

describe('copy_nonpresent_pte', () => {
  for (const v of ['5.7', '5.10', '6.12', '6.18']) {
    it(`R-FORK-3 (${v}): fork during a migration: the writable entry becomes readable in parent and child, the child counts it; afterwards both map the new frame read-only and a write COWs`, () => {
      const k = boot(v);
      const parent = create_user_task('parent');
      const A = 0x10000000;
      anonPage(k, parent, A, 0x11);
      const { r, src } = startMigration(k, parent.mm!, A);
      expect(is_writable_migration_entry(pteAt(parent.mm!, A))).toBe(true);
      r.spawn('fork', fork_task(parent));
      const child = runThread(r, 1) as task_struct;
      const cmm = child.mm!;
      // Parent and child hold the same readable entry naming the old frame.
      expect(is_readable_migration_entry(pteAt(parent.mm!, A))).toBe(true);
      expect(pteAt(cmm, A)).toBe(pteAt(parent.mm!, A));
      expect(swp_offset_pfn(pteAt(cmm, A))).toBe(src);
      expect(get_mm_counter(cmm, MM_ANONPAGES)).toBe(1);
      // No reference or mapping for the copy: only the migration's isolation reference.
      expect(page_ref_count(src as number as page)).toBe(1);
      expect(page_mapcount(src as number as page)).toBe(0);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      // remove_migration_ptes found both entries: the new frame, read-only, shared.
      const dst = pte_pfn(pteAt(parent.mm!, A));
      expect(dst).not.toBe(src);
      expect(pte_pfn(pteAt(cmm, A))).toBe(dst);
      expect(pte_write(pteAt(parent.mm!, A)) || pte_write(pteAt(cmm, A))).toBe(false);
      expect(page_mapcount(dst as page)).toBe(2);
      expect(page_ref_count(dst as page)).toBe(2);
      expect(PageAnonExclusive(dst as page)).toBe(false);
      expect(page_is_free(src as number as page)).toBe(true);
      expect(readByte(k, child, A)).toBe(0x11);
      // The parent's write copies: the child keeps the migrated frame and its data.
      expect(runAs(k, parent, cpu_user_write(parent, A, new Uint8Array([0x22]))).kind).toBe('ok');
      expect(pte_pfn(pteAt(parent.mm!, A))).not.toBe(dst);
      expect(pte_pfn(pteAt(cmm, A))).toBe(dst);
      expect(readByte(k, parent, A)).toBe(0x22);
      expect(readByte(k, child, A)).toBe(0x11);
    });
  }

  it('R-FORK-3 (6.12 vs 5.15): a readable-exclusive entry (v5.19+) is made plainly readable for fork; 5.15 has no such kind', () => {
    for (const v of ['5.15', '6.12']) {
      const k = boot(v);
      const parent = create_user_task('parent');
      const A = 0x10000000;
      anonPage(k, parent, A, 0x33);
      // Read-only but still exclusively owned by the parent.
      expect(runAs(k, parent, do_mprotect_pkey(parent.mm!, A, 0x1000, PROT_READ))).toBe(0);
      const { r } = startMigration(k, parent.mm!, A);
      expect(is_readable_exclusive_migration_entry(pteAt(parent.mm!, A))).toBe(v === '6.12');
      r.spawn('fork', fork_task(parent));
      const child = runThread(r, 1) as task_struct;
      expect(is_readable_migration_entry(pteAt(parent.mm!, A))).toBe(true);
      expect(is_migration_entry(pteAt(child.mm!, A))).toBe(true);
      expect(r.run().status).toBe('done');
      const dst = pte_pfn(pteAt(parent.mm!, A));
      expect(PageAnonExclusive(dst as page)).toBe(false);
      expect(readByte(k, child, A)).toBe(0x33);
    }
  });
});
