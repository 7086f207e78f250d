/**
 * Tests of the THP fault, split, zap and fork paths (mm/huge_memory.c, anonymous side).
 * Rules: kernel-spec.md §9 R-FORK-3 (huge pfnmap leaves copied as special, v6.12), §2
 * R-VNP-6 (zap/fork of special leaves), §8 R-MMUN-2 (splits fire CLEAR).
 *
 * Addresses: anonymous mappings at 0x40000000 (2 MiB aligned), 4 MiB long.
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task } from '../kernel/fork.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import type { folio, page, pmd_t_ptr } from '../include/linux/mm_types.js';
import { MM_ANONPAGES } from '../include/linux/mm_types.js';
import {
  get_mm_counter,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_HUGEPAGE,
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../include/linux/mm.js';
import {
  folio_mapcount,
  folio_order,
  page_mapcount,
  PageAnonExclusive,
} from '../include/linux/page-flags.js';
import { folio_ref_count } from '../include/linux/page_ref.js';
import {
  pgd_offset,
  pmd_alloc,
  pmd_index,
  ptep_get,
  pud_alloc,
  set_pmd_at,
  walkToLeaf,
  walkToPte,
  zero_pfn,
  type ptdesc,
} from '../include/linux/pgtable.js';
import { pmd_mkspecial, pmd_special, pte_special } from '../arch/x86/include/asm/pgtable.js';
import {
  _PAGE_PSE,
  PAGE_SHARED,
  pfn_pte,
  pte_pfn,
  pte_write,
  pte_young,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { vma_lookup, vm_area_alloc, vma_link } from './vma.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { notifierLog } from './mmu_notifier.js';
import { page_is_free } from './page_alloc.js';
import { phys_read } from './sparse.js';
import { is_huge_zero_pfn } from './huge_memory.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import {
  copy_huge_pmd,
  depositedTables,
  setTransparentHugepage,
  split_huge_pmd,
  thp_vma_allowable_order,
  zap_huge_pmd,
} from './huge_memory.anon.js';

const GiB = 2 ** 30;
const A = 0x40000000;
const MiB2 = 0x200000;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12'): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(4 * GiB) });
  const task = create_user_task('thp');
  const thread = new SchedThread(0, 'thp', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

function mmapAnon(env: Env, addr = A, len = 2 * MiB2): void {
  env.run(
    vm_mmap_pgoff(
      env.task.mm!,
      null,
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      0,
    ),
  );
}

function leaf(env: Env, addr: number, task = env.task) {
  const l = walkToLeaf(task.mm!, addr);
  return l ? { level: l.level, v: ptep_get(l.ptr), ptr: l.ptr } : null;
}

function pmdTable(env: Env, addr: number): ptdesc {
  const pgdp = pgd_offset(env.task.mm!, addr);
  const pudT = pgdp.t.children![pgdp.i]!;
  return pudT.children![Math.floor(addr / GiB) % 512]!;
}

const write = (env: Env, addr: number, b: number[], task = env.task) =>
  env.run(cpu_user_write(task, addr, new Uint8Array(b)));
const read = (env: Env, addr: number, n: number) => env.run(cpu_user_read(env.task, addr, n));

import type { Runner } from '../../sched/index.js';
import {
  is_migration_entry,
  is_pmd_migration_entry,
  is_readable_migration_entry,
  is_writable_migration_entry,
  swp_offset_pfn,
} from '../include/linux/swapops.js';
import { __GFP_MOVABLE } from './page_alloc.js';
import { do_madvise, MADV_DONTNEED } from './madvise.js';
import { handle_mm_fault } from './memory.fault.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { pgtable_pages } from './memory.zap.js';

/** The PMD entry of addr (a PMD migration entry is neither a leaf nor a table). */
const pmdAt = (env: Env, addr: number, task = env.task): number => {
  const pgdp = pgd_offset(task.mm!, addr);
  return pgdp.t.children![pgdp.i]!.children![Math.floor(addr / GiB) % 512]!.entries[
    pmd_index(addr)
  ]!;
};

/**
 * A PMD-mapped THP at A written with `byte` at A+0x3000, then migrate_pages() of it
 * started in thread 0 of a runner and stopped once try_to_migrate has replaced the PMD by
 * a PMD migration entry and dropped the PMD lock (next: the reference check).
 */
function thpUnderMigration(env: Env, byte = 0x3c) {
  mmapAnon(env, A, MiB2);
  expect(write(env, A + 0x3000, [byte]).kind).toBe('ok');
  const l = leaf(env, A)!;
  expect(l.level).toBe('pmd');
  const src = pte_pfn(l.v) as folio;
  const { r } = migrationAtRefCheck(env.k, src);
  expect(is_pmd_migration_entry(pmdAt(env, A))).toBe(true);
  return { r, src };
}

/** Runs thread tid alone until it ends. */
function runThread(r: Runner, tid: number): unknown {
  while (!r.threads[tid]!.done) expect(r.step(tid)).toBe(true);
  if (r.threads[tid]!.error) throw r.threads[tid]!.error;
  return r.threads[tid]!.result;
}

describe('thp_vma_allowable_order', () => {
  it("THP 'madvise' allows an anonymous PMD fault only with VM_HUGEPAGE; 'never' never; PUD order never for anonymous VMAs (v6.8+)", () => {
    const env = boot('6.12');
    mmapAnon(env);
    const vma = vma_lookup(env.task.mm!, A)!;
    expect(thp_vma_allowable_order(vma, vma.vm_flags, 9)).toBe(true);
    expect(thp_vma_allowable_order(vma, vma.vm_flags, 18)).toBe(false);
    setTransparentHugepage(env.k, { enabled: 'madvise' });
    expect(thp_vma_allowable_order(vma, vma.vm_flags, 9)).toBe(false);
    expect(thp_vma_allowable_order(vma, vma.vm_flags | VM_HUGEPAGE, 9)).toBe(true);
    setTransparentHugepage(env.k, { enabled: 'never' });
    expect(thp_vma_allowable_order(vma, vma.vm_flags | VM_HUGEPAGE, 9)).toBe(false);
  });
});

describe('do_huge_pmd_anonymous_page', () => {
  it("THP 'always' (the default): a write fault at a 2 MiB-aligned address maps a PMD-sized folio", () => {
    const env = boot();
    mmapAnon(env);
    expect(write(env, A + 0x1234, [0x42]).kind).toBe('ok');
    const l = leaf(env, A)!;
    expect(l.level).toBe('pmd');
    const f = pte_pfn(l.v) as folio;
    expect(f % 512).toBe(0);
    expect(folio_order(f)).toBe(9);
    expect(pte_write(l.v)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(512);
    expect(folio_mapcount(f)).toBe(1);
    expect(folio_ref_count(f)).toBe(1);
    expect(PageAnonExclusive(f as number as page)).toBe(true);
    expect([...phys_read(f * 4096 + 0x1234, 2)]).toEqual([0x42, 0]);
    // The PTE table for a later split is deposited.
    expect(depositedTables(pmdTable(env, A))).toBe(1);
  });

  it('a read fault maps the huge zero page read-only, with no RSS', () => {
    const env = boot();
    mmapAnon(env);
    const r = read(env, A + MiB2 + 8, 8);
    expect(r.kind).toBe('ok');
    const l = leaf(env, A + MiB2)!;
    expect(l.level).toBe('pmd');
    expect(is_huge_zero_pfn(pte_pfn(l.v))).toBe(true);
    expect(pte_write(l.v)).toBe(false);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(0);
    expect(depositedTables(pmdTable(env, A))).toBe(1);
  });

  it("THP 'never': the same write fault maps one 4 KiB page", () => {
    const env = boot();
    setTransparentHugepage(env.k, { enabled: 'never' });
    mmapAnon(env);
    write(env, A, [1]);
    expect(leaf(env, A)!.level).toBe('pte');
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
  });

  it('a 2 MiB block not wholly inside the VMA falls back to a PTE fault', () => {
    const env = boot();
    mmapAnon(env, A, MiB2 + 0x1000);
    write(env, A + MiB2, [1]);
    expect(leaf(env, A + MiB2)!.level).toBe('pte');
  });
});

describe('do_huge_pmd_wp_page', () => {
  it('v6.12: a write to the huge zero page splits it into zero-page PTEs and COWs one 4 KiB page', () => {
    const env = boot('6.12');
    mmapAnon(env);
    read(env, A, 1);
    notifierLog().length = 0;
    expect(write(env, A + 0x3000, [5]).kind).toBe('ok');
    const l = leaf(env, A + 0x3000)!;
    expect(l.level).toBe('pte');
    expect(pte_pfn(l.v)).not.toBe(zero_pfn());
    expect(pte_pfn(leaf(env, A)!.v)).toBe(zero_pfn());
    expect(pte_special(leaf(env, A)!.v)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    // R-MMUN-2: the split (2 MiB) and the COW (4 KiB) both fire CLEAR.
    expect(
      notifierLog()
        .filter((e) => e.phase === 'start')
        .map((e) => e.end - e.start),
    ).toEqual([MiB2, 0x1000]);
  });

  it('v6.13+ (1ced09e0331f): a write to the huge zero page maps a new THP instead', () => {
    const env = boot('6.18');
    mmapAnon(env);
    read(env, A, 1);
    expect(write(env, A + 0x3000, [5]).kind).toBe('ok');
    const l = leaf(env, A)!;
    expect(l.level).toBe('pmd');
    expect(is_huge_zero_pfn(pte_pfn(l.v))).toBe(false);
    expect(pte_write(l.v)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(512);
    expect(depositedTables(pmdTable(env, A))).toBe(1);
  });

  it('an exclusive THP behind a write-protected PMD is made writable in place', () => {
    const env = boot();
    mmapAnon(env);
    write(env, A, [1]);
    const l = leaf(env, A)!;
    env.run(set_pmd_at(env.task.mm!, A, l.ptr, l.v - 2)); // clear _PAGE_RW
    write(env, A + 8, [2]);
    const l2 = leaf(env, A)!;
    expect(l2.level).toBe('pmd');
    expect(pte_pfn(l2.v)).toBe(pte_pfn(l.v));
    expect(pte_write(l2.v)).toBe(true);
  });

  it('after fork a write to the shared THP splits the PMD and copies only the written 4 KiB page', () => {
    const env = boot();
    mmapAnon(env);
    write(env, A, [1]);
    const f = pte_pfn(leaf(env, A)!.v);
    const child = env.run(fork_task(env.task)) as task_struct;
    expect(folio_mapcount(f as folio)).toBe(2);
    write(env, A + 0x5000, [9]);
    const l = leaf(env, A + 0x5000)!;
    expect(l.level).toBe('pte');
    expect(pte_pfn(l.v)).not.toBe(f + 5);
    // The rest of the parent's range still maps the THP's pages, read-only.
    const other = leaf(env, A + 0x6000)!;
    expect(pte_pfn(other.v)).toBe(f + 6);
    expect(pte_write(other.v)).toBe(false);
    // The child still has the PMD leaf.
    expect(leaf(env, A, child)!.level).toBe('pmd');
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(512);
  });
});

describe('__split_huge_pmd', () => {
  it('split_huge_pmd turns a THP leaf into 512 PTEs mapping the same folio, consuming the deposited table', () => {
    const env = boot();
    mmapAnon(env);
    write(env, A, [1]);
    const l = leaf(env, A)!;
    const f = pte_pfn(l.v) as folio;
    const vma = vma_lookup(env.task.mm!, A)!;
    notifierLog().length = 0;
    env.run(split_huge_pmd(vma, l.ptr as pmd_t_ptr, A + 0x10000));
    for (const i of [0, 1, 255, 511]) {
      const e = leaf(env, A + i * 0x1000)!;
      expect(e.level).toBe('pte');
      expect(pte_pfn(e.v)).toBe(f + i);
      expect(pte_write(e.v)).toBe(true);
      expect(page_mapcount((f + i) as page)).toBe(1);
      expect(PageAnonExclusive((f + i) as page)).toBe(true);
    }
    expect(folio_order(f)).toBe(9);
    expect(folio_ref_count(f)).toBe(512);
    expect(folio_mapcount(f)).toBe(512);
    expect(depositedTables(pmdTable(env, A))).toBe(0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(512);
    expect(notifierLog().map((e) => [e.phase, e.event, e.start])).toEqual([
      ['start', 'MMU_NOTIFY_CLEAR', A],
      ['end', 'MMU_NOTIFY_CLEAR', A],
    ]);
  });

  it('a split of the huge zero page leaves 512 special zero-page PTEs', () => {
    const env = boot();
    mmapAnon(env);
    read(env, A, 1);
    const l = leaf(env, A)!;
    env.run(split_huge_pmd(vma_lookup(env.task.mm!, A)!, l.ptr as pmd_t_ptr, A));
    const p = walkToPte(env.task.mm!, A + 0x7000)!;
    expect(pte_pfn(ptep_get(p))).toBe(zero_pfn());
    expect(pte_special(ptep_get(p))).toBe(true);
    expect(p.t.used).toBe(512);
  });

  it('a special pfnmap PMD leaf (v6.12 huge pfnmap) is just cleared: it refaults on the PTE level', () => {
    const env = boot('6.12');
    const mm = env.task.mm!;
    const vma = vm_area_alloc(mm);
    vma.vm_start = 0x80000000;
    vma.vm_end = 0x80400000;
    vma.vm_flags =
      VM_READ |
      VM_WRITE |
      VM_SHARED |
      VM_MAYREAD |
      VM_MAYWRITE |
      VM_MAYSHARE |
      VM_PFNMAP |
      VM_IO |
      VM_DONTEXPAND |
      VM_DONTDUMP;
    vma.vm_page_prot = PAGE_SHARED;
    vma.vm_file = alloc_file(
      '/dev/bar',
      O_RDWR,
      new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr'),
      { name: 'bar' },
    );
    vma.vm_ops = { name: 'bar_vm_ops' };
    vma_link(mm, vma);
    const pmdp = env.run(
      (function* () {
        const pud = yield* pud_alloc(mm, pgd_offset(mm, 0x80000000), 0x80000000);
        return (yield* pmd_alloc(mm, pud!, 0x80000000))!;
      })(),
    );
    env.run(
      set_pmd_at(mm, 0x80000000, pmdp, pmd_mkspecial(pfn_pte(0xc0000, PAGE_SHARED | _PAGE_PSE))),
    );
    env.run(split_huge_pmd(vma, pmdp, 0x80001000));
    expect(ptep_get(pmdp)).toBe(0);
  });
});

describe('zap_huge_pmd', () => {
  it('zapping an anonymous THP leaf frees the folio and the deposited table and drops RSS by 512', () => {
    const env = boot();
    mmapAnon(env);
    write(env, A, [1]);
    const l = leaf(env, A)!;
    const f = pte_pfn(l.v);
    const pt = pmdTable(env, A);
    const bytes = env.task.mm!.pgtables_bytes;
    const zapped = env.run(zap_huge_pmd(null, vma_lookup(env.task.mm!, A)!, l.ptr as pmd_t_ptr, A));
    expect(zapped).toBe(true);
    expect(ptep_get(l.ptr)).toBe(0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(0);
    expect(page_is_free(f)).toBe(true);
    expect(depositedTables(pt)).toBe(0);
    expect(env.task.mm!.pgtables_bytes).toBe(bytes - 4096);
  });

  it('a PMD that is not a huge leaf is left to the PTE walk (returns false)', () => {
    const env = boot();
    setTransparentHugepage(env.k, { enabled: 'never' });
    mmapAnon(env);
    write(env, A, [1]);
    const pt = pmdTable(env, A);
    const pmdp = { t: pt, i: pmd_index(A) };
    expect(env.run(zap_huge_pmd(null, vma_lookup(env.task.mm!, A)!, pmdp, A))).toBe(false);
    expect(leaf(env, A)!.level).toBe('pte');
  });
});

describe('copy_huge_pmd', () => {
  it('fork shares an anonymous THP: both leaves read-only and old, mapcount 2, not exclusive, child RSS 512', () => {
    const env = boot();
    mmapAnon(env);
    write(env, A, [1]);
    const f = pte_pfn(leaf(env, A)!.v) as folio;
    const child = env.run(fork_task(env.task)) as task_struct;
    const p = leaf(env, A)!;
    const c = leaf(env, A, child)!;
    expect(c.level).toBe('pmd');
    expect(pte_pfn(c.v)).toBe(f);
    expect(pte_write(p.v) || pte_write(c.v)).toBe(false);
    expect(pte_young(c.v)).toBe(false);
    expect(folio_mapcount(f)).toBe(2);
    expect(folio_ref_count(f)).toBe(2);
    expect(PageAnonExclusive(f as number as page)).toBe(false);
    expect(get_mm_counter(child.mm!, MM_ANONPAGES)).toBe(512);
  });

  it('R-FORK-3 (v6.12, "mm/fork: accept huge pfnmap entries"): a special pfnmap PMD leaf is copied as it is, made old', () => {
    const env = boot('6.12');
    const mm = env.task.mm!;
    const dst = create_user_task('child').mm!;
    const mk = (m: typeof mm) => {
      const vma = vm_area_alloc(m);
      vma.vm_start = 0x80000000;
      vma.vm_end = 0x80200000;
      vma.vm_flags =
        VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE | VM_PFNMAP | VM_IO;
      vma.vm_page_prot = PAGE_SHARED;
      vma.vm_ops = { name: 'bar_vm_ops' };
      vma_link(m, vma);
      return vma;
    };
    const sv = mk(mm);
    const dv = mk(dst);
    const pmdOf = (m: typeof mm) =>
      env.run(
        (function* () {
          const pud = yield* pud_alloc(m, pgd_offset(m, 0x80000000), 0x80000000);
          return (yield* pmd_alloc(m, pud!, 0x80000000))!;
        })(),
      );
    const sp = pmdOf(mm);
    const dp = pmdOf(dst);
    const entry = pmd_mkspecial(pfn_pte(0xc0000, PAGE_SHARED | _PAGE_PSE));
    env.run(set_pmd_at(mm, 0x80000000, sp, entry));
    expect(env.run(copy_huge_pmd(dst, mm, dp, sp, 0x80000000, dv, sv))).toBe(0);
    const v = ptep_get(dp);
    expect(pte_pfn(v)).toBe(0xc0000);
    expect(pmd_special(v)).toBe(true);
    expect(pte_write(v)).toBe(true);
    expect(pte_young(v)).toBe(false);
    expect(get_mm_counter(dst, MM_ANONPAGES)).toBe(0);
  });
});

describe('zap_huge_pmd', () => {
  for (const v of ['5.10', '6.12']) {
    it(`R-REV-5 (${v}): MADV_DONTNEED of a whole THP under migration clears the PMD migration entry: RSS -512, the deposited table freed, no reference dropped; the migration succeeds and maps nothing`, () => {
      const env = boot(v);
      const { r, src } = thpUnderMigration(env);
      const mm = env.task.mm!;
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(512);
      expect(depositedTables(pmdTable(env, A))).toBe(1);
      const tables = pgtable_pages(mm);
      expect(folio_ref_count(src)).toBe(1);
      r.spawn('madvise', do_madvise(mm, A, MiB2, MADV_DONTNEED), env.task);
      expect(runThread(r, 1)).toBe(0);
      expect(pmdAt(env, A)).toBe(0);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(0);
      expect(depositedTables(pmdTable(env, A))).toBe(0);
      expect(pgtable_pages(mm)).toBe(tables);
      expect(folio_ref_count(src)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      expect(pmdAt(env, A)).toBe(0);
      expect(page_is_free(src as number as page)).toBe(true);
      expect(env.k.log.some((l) => /Bad page|WARNING/.test(l.text))).toBe(false);
    });
  }
});

describe('__split_huge_pmd', () => {
  for (const v of ['5.10', '6.12']) {
    it(`(${v}) MADV_DONTNEED of one page of a THP under migration splits the PMD migration entry into 512 PTE migration entries (no reference or mapcount change) and zaps one; the migration maps the other 511 pages of the new folio`, () => {
      const env = boot(v);
      const { r, src } = thpUnderMigration(env, 0x3c);
      const mm = env.task.mm!;
      r.spawn('madvise', do_madvise(mm, A, 0x1000, MADV_DONTNEED), env.task);
      expect(runThread(r, 1)).toBe(0);
      expect(walkToPte(mm, A)).not.toBeNull();
      expect(ptep_get(walkToPte(mm, A)!)).toBe(0);
      const e1 = ptep_get(walkToPte(mm, A + 0x1000)!);
      expect(is_writable_migration_entry(e1)).toBe(true);
      expect(swp_offset_pfn(e1)).toBe(src + 1);
      expect(is_migration_entry(ptep_get(walkToPte(mm, A + MiB2 - 0x1000)!))).toBe(true);
      expect(folio_ref_count(src)).toBe(1);
      expect(folio_mapcount(src)).toBe(0);
      expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(511);
      expect(depositedTables(pmdTable(env, A))).toBe(0);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      const dst = pte_pfn(ptep_get(walkToPte(mm, A + 0x1000)!)) - 1;
      expect(dst).not.toBe(src);
      expect(ptep_get(walkToPte(mm, A)!)).toBe(0);
      expect(folio_mapcount(dst as folio)).toBe(511);
      expect(folio_ref_count(dst as folio)).toBe(511);
      expect(read(env, A + 0x3000, 1)).toEqual({ kind: 'ok', data: new Uint8Array([0x3c]) });
      expect(page_is_free(src as number as page)).toBe(true);
    });
  }
});

describe('copy_huge_pmd', () => {
  for (const v of ['5.10', '6.12']) {
    it(`R-FORK-3 (${v}): fork during a THP migration copies the PMD migration entry, made readable in the parent; the child counts 512 pages and a deposited table; afterwards both map the new THP read-only`, () => {
      const env = boot(v);
      const { r, src } = thpUnderMigration(env, 0x5d);
      expect(is_writable_migration_entry(pmdAt(env, A))).toBe(true);
      r.spawn('fork', fork_task(env.task));
      const child = runThread(r, 1) as task_struct;
      expect(is_readable_migration_entry(pmdAt(env, A))).toBe(true);
      expect(pmdAt(env, A, child)).toBe(pmdAt(env, A));
      expect(swp_offset_pfn(pmdAt(env, A, child))).toBe(src);
      expect(get_mm_counter(child.mm!, MM_ANONPAGES)).toBe(512);
      const cpgd = pgd_offset(child.mm!, A);
      expect(depositedTables(cpgd.t.children![cpgd.i]!.children![Math.floor(A / GiB) % 512]!)).toBe(
        1,
      );
      expect(folio_ref_count(src)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      const p = leaf(env, A)!;
      const c = leaf(env, A, child)!;
      expect(p.level === 'pmd' && c.level === 'pmd').toBe(true);
      expect(pte_pfn(p.v)).toBe(pte_pfn(c.v));
      expect(pte_pfn(p.v)).not.toBe(src);
      expect(pte_write(p.v) || pte_write(c.v)).toBe(false);
      expect(folio_mapcount(pte_pfn(p.v) as folio)).toBe(2);
      expect(env.run(cpu_user_read(child, A + 0x3000, 1))).toEqual({
        kind: 'ok',
        data: new Uint8Array([0x5d]),
      });
    });
  }
});

describe('pmd_migration_entry_wait', () => {
  it('a fault on a PMD migration entry waits until the THP is migrated (__handle_mm_fault returns 0); the retry finds the new PMD leaf', () => {
    const env = boot('6.12');
    const { r, src } = thpUnderMigration(env);
    const mm = env.task.mm!;
    r.spawn(
      'fault',
      (function* () {
        yield* mmap_read_lock(mm);
        const ret = yield* handle_mm_fault(vma_lookup(mm, A)!, A + 0x3000, 0);
        yield* mmap_read_unlock(mm);
        return ret;
      })(),
      env.task,
    );
    const f = r.threads[1]!;
    while (!f.done && r.enabled().includes(f)) r.step(1);
    expect(f.done).toBe(false);
    expect(f.pending!.what).toBe('migration_entry_wait_on_locked');
    expect(f.pending!.obj).toBe(`folio${src}.lock`);
    expect(r.run().status).toBe('done');
    expect(f.result).toBe(0);
    const l = leaf(env, A)!;
    expect(l.level).toBe('pmd');
    expect(pte_pfn(l.v)).not.toBe(src);
    expect(read(env, A + 0x3000, 1)).toEqual({ kind: 'ok', data: new Uint8Array([0x3c]) });
  });
});
