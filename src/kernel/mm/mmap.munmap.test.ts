/**
 * Tests of munmap and exit (mm/mmap.c, mm/vma.c: do_vmi_munmap, do_vmi_align_munmap,
 * __vm_munmap, exit_mmap) and of free_pgtables through them.
 * Rules: kernel-spec.md §8 R-MMUN-2 (UNMAP around the whole range); §1 R-VMA-1.
 */
import { describe, expect, it } from 'vitest';
import type { Op, Step } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, mmput } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, mm_struct, vm_operations_struct } from '../include/linux/mm_types.js';
import { MM_ANONPAGES } from '../include/linux/mm_types.js';
import { get_mm_counter } from '../include/linux/mm.js';
import { walkToLeaf, ptep_get, type ptdesc } from '../include/linux/pgtable.js';
import { pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { EINVAL } from '../include/linux/errno.js';
import { dmesg } from '../kernel/printk.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  __vm_munmap,
  do_munmap,
  exit_mmap,
  vm_mmap_pgoff,
  vm_munmap,
} from './mmap.js';
import { page_is_free } from './page_alloc.js';
import { notifierLog } from './mmu_notifier.js';
import { find_vma, vma_lookup } from './vma.js';
import { pgtable_pages } from './memory.zap.js';
import { remap_pfn_range } from './memory.pfnmap.js';
import { pat_memtype_list } from '../arch/x86/mm/pat/memtype.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  return k;
}

function runAs<T>(k: Kernel, t: task_struct, op: Op<T>): T {
  return k.run(op, new SchedThread(0, t.comm, op as Op<unknown>, t));
}

function* recording<T>(op: Op<T>, log: Step[]): Op<T> {
  let r = op.next();
  while (!r.done) {
    log.push(r.value);
    const sent: unknown = yield r.value;
    r = op.next(sent);
  }
  return r.value;
}

function mmapAnonAt(k: Kernel, t: task_struct, addr: number, len: number): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(
      t.mm!,
      null,
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      0,
    ),
  );
  expect(a).toBe(addr);
  return a;
}

function touch(k: Kernel, t: task_struct, addr: number, len: number): number[] {
  const pfns: number[] = [];
  for (let a = addr; a < addr + len; a += 4096) {
    expect(runAs(k, t, cpu_user_write(t, a, new Uint8Array([(a / 4096) & 0xff]))).kind).toBe('ok');
    pfns.push(pfnAt(t.mm!, a));
  }
  return pfns;
}

/** The pfn mapping addr, at whatever level the leaf is (THP PMD leaves included). */
function pfnAt(mm: mm_struct, addr: number): number {
  const leaf = walkToLeaf(mm, addr);
  if (!leaf) return 0;
  const v = ptep_get(leaf.ptr);
  const size = leaf.level === 'pte' ? 4096 : leaf.level === 'pmd' ? 2 * MiB : GiB;
  return pte_pfn(v) + Math.floor((addr % size) / 4096);
}

/** Every table page of the mm, PGD first. */
function tablePfns(mm: mm_struct): number[] {
  const out: number[] = [];
  const walk = (t: ptdesc): void => {
    out.push(t.pfn);
    if (t.children) for (const c of t.children) if (c) walk(c);
  };
  walk(mm.pgd);
  return out;
}

/** A file whose VMAs count open/close calls. */
function countingFile(counts: { open: number; close: number }): file {
  const ops: vm_operations_struct = {
    name: 'counting_vm_ops',
    open: () => void counts.open++,
    close: () => void counts.close++,
    *fault() {
      return 0x2; // VM_FAULT_SIGBUS: never faulted in these tests
    },
  };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/c', O_RDWR, inode, {
    name: 'c_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      return 0;
    },
  });
}

describe('do_vmi_munmap', () => {
  it('argument checks: unaligned start, zero length, beyond TASK_SIZE', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x4000);
    expect(runAs(k, t, __vm_munmap(mm, a + 1, 0x1000, true))).toBe(-EINVAL);
    expect(runAs(k, t, __vm_munmap(mm, a, 0, true))).toBe(-EINVAL);
    expect(runAs(k, t, __vm_munmap(mm, 0x7ffffffff000 + 0x1000, 0x1000, true))).toBe(-EINVAL);
    expect(runAs(k, t, __vm_munmap(mm, 0x7fffffffe000, 0x3000, true))).toBe(-EINVAL);
    // Nothing mapped there: success.
    expect(runAs(k, t, __vm_munmap(mm, 0x20000000, 0x1000, true))).toBe(0);
    expect(mm.mmap.length).toBe(1);
    // The lock is free after every call (errors and successes).
    expect(mm.mmap_lock.isLocked()).toBe(false);
  });

  it('munmap in the middle of a VMA splits it in two and frees the middle pages', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const counts = { open: 0, close: 0 };
    const f = countingFile(counts);
    // An anonymous VMA 0x10000000-0x10008000 (8 pages), all touched.
    const a = mmapAnonAt(k, t, 0x10000000, 0x8000);
    const pfns = touch(k, t, a, 0x8000);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(8);
    const total = mm.total_vm;
    notifierLog().length = 0;
    expect(runAs(k, t, __vm_munmap(mm, a + 0x2000, 0x3000, true))).toBe(0);
    // [0x10000000, 0x10002000) and [0x10005000, 0x10008000) remain.
    expect(mm.mmap.map((v) => [v.vm_start, v.vm_end])).toEqual([
      [a, a + 0x2000],
      [a + 0x5000, a + 0x8000],
    ]);
    // Anonymous pgoff follows the address: the upper piece's pgoff moved by 5 pages.
    expect(mm.mmap[1]!.vm_pgoff - mm.mmap[0]!.vm_pgoff).toBe(5);
    expect(pfns.map((p) => page_is_free(p))).toEqual([
      false,
      false,
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(5);
    expect(mm.total_vm).toBe(total - 3);
    // R-MMUN-2: one UNMAP range exactly [start, end).
    expect(notifierLog().map((e) => [e.phase, e.event, e.start, e.end])).toEqual([
      ['start', 'MMU_NOTIFY_UNMAP', a + 0x2000, a + 0x5000],
      ['end', 'MMU_NOTIFY_UNMAP', a + 0x2000, a + 0x5000],
    ]);
    // The surviving pages still read back.
    const r = runAs(k, t, cpu_user_read(t, a + 0x6000, 1));
    expect(r.kind === 'ok' && r.data[0]).toBe(((a + 0x6000) / 4096) & 0xff);

    // A file VMA split in the middle: ->open for the new piece, ->close for the
    // removed middle, the file reference moves with them.
    const b = runAs(
      k,
      t,
      vm_mmap_pgoff(mm, f, 0x30000000, 0x6000, PROT_READ, MAP_SHARED | MAP_FIXED, 0),
    );
    expect(b).toBe(0x30000000);
    expect(f.f_count).toBe(2);
    expect(runAs(k, t, __vm_munmap(mm, b + 0x2000, 0x2000, true))).toBe(0);
    expect(counts).toEqual({ open: 2, close: 1 });
    expect(f.f_count).toBe(3); // two VMAs + the open file
    expect(vma_lookup(mm, b + 0x4000)!.vm_pgoff).toBe(4);
    expect(f.f_mapping.i_mmap.size).toBe(2);
  });

  it('munmap of a whole range frees its page tables but keeps upper tables still used', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    // Two VMAs in different 1 GiB (PUD) regions under the same PGD entry, and one 4 KiB
    // VMA in the same 2 MiB (PMD) region as the first.
    const a = mmapAnonAt(k, t, 0x40000000, 0x10000); // PUD index 1
    const b = mmapAnonAt(k, t, 0x80000000, 0x1000); // PUD index 2
    const c = mmapAnonAt(k, t, 0x40100000, 0x1000); // same PTE table as a
    touch(k, t, a, 0x10000);
    touch(k, t, b, 0x1000);
    touch(k, t, c, 0x1000);
    // PGD + PUD + (PMD + PTE) for 1 GiB + (PMD + PTE) for 2 GiB.
    expect(pgtable_pages(mm)).toBe(6);
    const before = tablePfns(mm);
    // Unmapping a: its PTE table is shared with c (ceiling = c's start), so nothing goes.
    expect(runAs(k, t, __vm_munmap(mm, a, 0x10000, true))).toBe(0);
    expect(pgtable_pages(mm)).toBe(6);
    // Unmapping c: now nothing else uses the 1 GiB region: its PTE and PMD tables go,
    // the PUD table stays (b uses it), the PGD stays.
    expect(runAs(k, t, __vm_munmap(mm, c, 0x1000, true))).toBe(0);
    expect(pgtable_pages(mm)).toBe(4);
    expect(mm.pgtables_bytes).toBe(4 * 4096);
    const after = tablePfns(mm);
    const freed = before.filter((p) => !after.includes(p));
    expect(freed.length).toBe(2);
    expect(freed.every((p) => page_is_free(p))).toBe(true);
    // Unmapping b, the last VMA: everything but the PGD goes.
    expect(runAs(k, t, __vm_munmap(mm, b, 0x1000, true))).toBe(0);
    expect(pgtable_pages(mm)).toBe(1);
    expect(mm.pgtables_bytes).toBe(4096);
    expect(before.slice(1).every((p) => page_is_free(p))).toBe(true);
  });

  it('munmap spanning several VMAs and holes unmaps each piece inside one UNMAP range', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x3000);
    mmapAnonAt(k, t, 0x10005000, 0x3000);
    const pfns = [...touch(k, t, 0x10000000, 0x3000), ...touch(k, t, 0x10005000, 0x3000)];
    notifierLog().length = 0;
    expect(runAs(k, t, __vm_munmap(mm, 0x10001000, 0x6000, true))).toBe(0);
    expect(mm.mmap.map((v) => [v.vm_start, v.vm_end])).toEqual([
      [0x10000000, 0x10001000],
      [0x10007000, 0x10008000],
    ]);
    expect(pfns.map((p) => page_is_free(p))).toEqual([false, true, true, true, true, false]);
    expect(notifierLog().filter((e) => e.phase === 'start').length).toBe(1);
  });

  it('do_munmap keeps mmap_lock; munmap(2) downgrades it to read for the page tables', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    touch(k, t, a, 0x2000);
    const steps: Step[] = [];
    runAs(k, t, recording(__vm_munmap(mm, a, 0x1000, true), steps));
    const lockSteps = steps.filter((s) => s.obj === mm.mmap_lock.name).map((s) => s.what);
    expect(lockSteps).toEqual(['mmap_write_lock', 'mmap_write_downgrade', 'mmap_read_unlock']);
    // The entry is cleared after the downgrade.
    const down = steps.findIndex((s) => s.what === 'mmap_write_downgrade');
    const clear = steps.findIndex((s) => s.what === 'ptep_get_and_clear_full');
    expect(clear).toBeGreaterThan(down);
    // vm_munmap (unlock = false) keeps the write lock throughout.
    const steps2: Step[] = [];
    runAs(k, t, recording(vm_munmap(mm, a + 0x1000, 0x1000), steps2));
    expect(steps2.filter((s) => s.obj === mm.mmap_lock.name).map((s) => s.what)).toEqual([
      'mmap_write_lock',
      'mmap_write_unlock',
    ]);
    // do_munmap under the caller's lock.
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    runAs(
      k,
      t,
      (function* () {
        yield* mm.mmap_lock.downWrite();
        expect(yield* do_munmap(mm, 0x10000000, 0x1000)).toBe(0);
        expect(mm.mmap_lock.isWriteLocked()).toBe(true);
        yield* mm.mmap_lock.upWrite();
      })(),
    );
    expect(find_vma(mm, 0)).toBeNull();
  });
});

describe('unmap_single_vma (PAT)', () => {
  /** A driver remapping 4 pages of an MMIO BAR at 0xc0000000 over its whole VMA. */
  function barFile(): file {
    const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
    return alloc_file('/dev/bar', O_RDWR, inode, {
      name: 'bar_fops',
      *mmap(_f, vma) {
        vma.vm_ops = { name: 'bar_vm_ops' };
        return yield* remap_pfn_range(vma, vma.vm_start, 0xc0000, 0x4000, vma.vm_page_prot);
      },
    });
  }

  it('munmap drops the memtype reservation of a remapped VMA (VM_PAT up to v6.15, ctx v6.16+)', () => {
    for (const v of ['5.10', '6.12', '6.18']) {
      const k = new Kernel({ version: v });
      start_kernel(k, {
        map: [
          ...x86_64_e820(2 ** 32),
          { start: 0xc0000000, end: 0xc0100000, kind: 'mmio', name: 'bar' },
        ],
      });
      const t = create_user_task('t');
      const mm = t.mm!;
      const a = runAs(k, t, vm_mmap_pgoff(mm, barFile(), 0, 0x4000, PROT_READ, MAP_SHARED, 0));
      expect(a).toBeGreaterThan(0);
      expect(pat_memtype_list().map((m) => [m.start, m.end])).toEqual([[0xc0000000, 0xc0004000]]);
      // Tail first. Up to v6.15 unmap_single_vma untracks the piece's own range
      // (untrack_pfn: the piece's first pfn, its size), which shrinks the reservation
      // (memtype_erase, MEMTYPE_END_MATCH); from v6.16 both pieces share the
      // pfnmap_track_ctx and the reservation stays whole until the last piece goes.
      expect(runAs(k, t, __vm_munmap(mm, a + 0x3000, 0x1000, true))).toBe(0);
      expect(pat_memtype_list().map((m) => [m.start, m.end])).toEqual([
        [0xc0000000, v === '6.18' ? 0xc0004000 : 0xc0003000],
      ]);
      expect(runAs(k, t, __vm_munmap(mm, a, 0x3000, true))).toBe(0);
      expect(pat_memtype_list()).toEqual([]);
      // Head first: up to v6.15 the head's range matches no reservation ("freeing
      // invalid memtype"), and the tail's later untrack shrinks the reservation to the
      // head's range, which stays reserved with no mapping left; v6.16+ frees it.
      const b = runAs(k, t, vm_mmap_pgoff(mm, barFile(), 0, 0x4000, PROT_READ, MAP_SHARED, 0));
      expect(runAs(k, t, __vm_munmap(mm, b, 0x1000, true))).toBe(0);
      expect(runAs(k, t, __vm_munmap(mm, b + 0x1000, 0x3000, true))).toBe(0);
      if (v === '6.18') {
        expect(pat_memtype_list()).toEqual([]);
      } else {
        expect(dmesg()).toContain('freeing invalid memtype [mem 0xc0000000-0xc0000fff]');
        expect(pat_memtype_list().map((m) => [m.start, m.end])).toEqual([[0xc0000000, 0xc0001000]]);
      }
      expect(dmesg()).not.toContain('WARNING');
    }
  });
});

describe('exit_mmap', () => {
  it('leaves the mm with no frames: every page and table frame is free, pgtables_bytes 0', () => {
    for (const v of ['5.10', '6.1', '6.12', '6.18']) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      const counts = { open: 0, close: 0 };
      const f = countingFile(counts);
      mmapAnonAt(k, t, 0x10000000, 0x5000);
      mmapAnonAt(k, t, 0x7f0000000000 - 3 * GiB, 4 * MiB);
      runAs(k, t, vm_mmap_pgoff(mm, f, 0x20000000, 0x2000, PROT_READ, MAP_SHARED | MAP_FIXED, 0));
      const pages = [
        ...touch(k, t, 0x10000000, 0x5000),
        ...touch(k, t, 0x7f0000000000 - 3 * GiB, 0x3000),
        ...touch(k, t, 0x7f0000000000 - 3 * GiB + 3 * MiB, 0x1000),
      ];
      const tables = tablePfns(mm);
      expect(tables.length).toBeGreaterThan(5);
      notifierLog().length = 0;
      runAs(k, t, exit_mmap(mm));
      expect(mm.mmap.length).toBe(0);
      expect([v, pages.filter((p) => !page_is_free(p)).map((p) => p.toString(16))]).toEqual([
        v,
        [],
      ]);
      // Only the PGD is left; mmdrop frees it.
      expect(tables.slice(1).every((p) => page_is_free(p))).toBe(true);
      expect(mm.pgtables_bytes).toBe(4096);
      expect(mm.rss_stat).toEqual([0, 0, 0, 0]);
      expect(counts.close).toBe(1);
      expect(f.f_count).toBe(1);
      // mmu_notifier_release first, then one UNMAP range over everything.
      expect(notifierLog().map((e) => `${e.phase}:${e.event}`)).toEqual([
        'release:MMU_NOTIFY_RELEASE',
        'start:MMU_NOTIFY_UNMAP',
        'end:MMU_NOTIFY_UNMAP',
      ]);
      expect(mm.mmap_lock.isLocked()).toBe(false);
      // mmdrop (the last reference) frees the PGD: the mm owns no frame any more.
      mm.mm_users = 0;
      runAs(k, t, mmput_pgd_only(mm));
      expect(page_is_free(tables[0]!)).toBe(true);
      expect(mm.pgtables_bytes).toBe(0);
      expect(dmesg()).not.toContain('BUG:');
    }
  });

  it('mmput runs exit_mmap then frees the PGD', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x3000);
    const pages = touch(k, t, 0x10000000, 0x3000);
    const tables = tablePfns(mm);
    runAs(k, t, mmput(mm));
    expect([...pages, ...tables].every((p) => page_is_free(p))).toBe(true);
    expect(mm.pgtables_bytes).toBe(0);
    expect(dmesg()).not.toContain('BUG:');
  });

  it('locking: none before v6.1; read for the unmap, write for the tables from v6.1', () => {
    for (const [v, expected] of [
      ['5.10', []],
      ['6.12', ['mmap_read_lock', 'mmap_read_unlock', 'mmap_write_lock', 'mmap_write_unlock']],
    ] as const) {
      const k = boot(v);
      const t = create_user_task('t');
      const mm = t.mm!;
      mmapAnonAt(k, t, 0x10000000, 0x1000);
      touch(k, t, 0x10000000, 0x1000);
      const steps: Step[] = [];
      runAs(k, t, recording(exit_mmap(mm), steps));
      expect(steps.filter((s) => s.obj === mm.mmap_lock.name).map((s) => s.what)).toEqual(expected);
    }
  });
});

/** mmdrop's part of mmput for an mm whose exit_mmap already ran. */
function* mmput_pgd_only(mm: mm_struct): Op<void> {
  mm.mm_users = 1;
  mm.mmap.length = 0;
  yield* mmput(mm);
}
