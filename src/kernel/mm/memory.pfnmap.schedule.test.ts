/**
 * Fixed two-thread schedules for the PFN lookups (kernel-spec.md §3 R-FPM-2, R-FPM-3,
 * R-CALL-1): the lock follow_pfnmap_start() returns with excludes a concurrent clear of
 * the entry until follow_pfnmap_end(); the pre-ffef67b93aa3 PMD path returns a leaf that
 * was zapped while it waited for the PMD lock; generic_access_phys() retries when the
 * entry changed between its two lookups.
 *
 * Threads: A = 0, B = 1. Steps are those of the model's primitives (lock acquire and
 * release, lockless entry reads, entry writes).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { Op, RunResult, TraceStep } from '../../sched/index.js';
import type { mm_struct, pmd_t_ptr, pte_t_ptr, vm_area_struct } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
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
  _PAGE_PCD,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  PAGE_SHARED,
  __pte,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  p4d_offset,
  pgd_offset,
  pmd_alloc,
  pmd_lock,
  pmd_offset,
  pmdp_huge_get_and_clear,
  ptep_get,
  ptep_get_and_clear,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  pud_offset,
  set_pmd_at,
  set_pte_at,
  walkToPte,
} from '../include/linux/pgtable.js';
import { spin_unlock } from '../include/linux/spinlock.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { vm_area_alloc, vma_link } from './vma.js';
import { phys_write } from './sparse.js';
import {
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  generic_access_phys,
} from './memory.pfnmap.js';
import { ioremap_areas } from '../arch/x86/mm/ioremap.js';

const MiB = 2 ** 20;
/** BAR 0xfe000000..0xfe100000: pfns 0xfe000..0xfe0ff, no struct page. */
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
const A = 0;
const B = 1;

const FLAGS =
  VM_READ |
  VM_WRITE |
  VM_SHARED |
  VM_MAYREAD |
  VM_MAYWRITE |
  VM_MAYSHARE |
  VM_IO |
  VM_PFNMAP |
  VM_DONTEXPAND |
  VM_DONTDUMP;

function boot(version: string) {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const taskA = create_user_task('reader');
  const taskB = create_user_task('zapper');
  return { k, taskA, taskB, mm: taskA.mm! };
}

function makeVma(mm: mm_struct, start: number, end: number): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = FLAGS;
  vma.vm_page_prot = PAGE_SHARED;
  vma.vm_pgoff = BAR_PFN;
  vma_link(mm, vma);
  return vma;
}

/** Installs a PTE (allocating tables) and returns the PMD slot above it. */
function* installPte(mm: mm_struct, addr: number, v: pteval_t): Op<pmd_t_ptr> {
  const pudp = yield* pud_alloc(mm, pgd_offset(mm, addr), addr);
  const pmdp = (yield* pmd_alloc(mm, pudp!, addr))!;
  expect(yield* pte_alloc(mm, pmdp)).toBe(false);
  const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp, addr))!;
  yield* set_pte_at(mm, addr, ptep, v);
  yield* pte_unmap_unlock(ptep, ptl);
  return pmdp;
}

/** Thread A: mmap_read_lock, follow_pfnmap_start, read the outputs, end, unlock. */
function* reader(vma: vm_area_struct, addr: number): Op<{ ret: number; pfn: number }> {
  yield* mmap_read_lock(vma.vm_mm);
  const args = follow_pfnmap_args_init(vma, addr);
  const ret = yield* follow_pfnmap_start(args);
  const pfn = args.pfn;
  if (ret === 0) yield* follow_pfnmap_end(args);
  yield* mmap_read_unlock(vma.vm_mm);
  return { ret, pfn };
}

/** Thread B: clears the PTE of addr under the PTE lock (what a zap does per entry). */
function* clearPte(mm: mm_struct, pmdp: pmd_t_ptr, addr: number): Op<pteval_t> {
  const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp, addr))!;
  const old = yield* ptep_get_and_clear(mm, addr, ptep);
  yield* pte_unmap_unlock(ptep, ptl);
  return old;
}

describe('follow_pfnmap_start', () => {
  /*
   * A: 0 mmap_read_lock, 1 pgd, 2 p4d, 3 pud, 4 pmd (lockless reads), 5 PTE lock (start
   *    returns holding it), 6 PTE unlock (follow_pfnmap_end), 10 mmap_read_unlock.
   * B: its first step is the PTE lock: blocked from 5 to 6; 7 lock, 8 clear, 9 unlock.
   */
  const SCHEDULE = [A, A, A, A, A, A, A, B, B, B, A];

  function once() {
    const { k, taskA, taskB, mm } = boot('6.12');
    // 0x10000000 -> pfn 0xfe000, special, UC-
    const vma = makeVma(mm, 0x10000000, 0x10001000);
    const entry = __pte(BAR_PFN, PAGE_SHARED | _PAGE_PCD | _PAGE_SPECIAL);
    const pmdp = k.run(installPte(mm, 0x10000000, entry));
    const ptl = walkToPte(mm, 0x10000000)!.t.ptl!;
    const snapshots: {
      index: number;
      blocked: string[];
      enabled: number[];
      owner: string | null;
    }[] = [];
    const r = k.runner({
      hooks: {
        afterStep: (_t, _s, index) => {
          snapshots.push({
            index,
            blocked: r.blocked().map((b) => `${b.thread}@${b.obj}`),
            enabled: r.enabled().map((t) => t.id),
            owner: ptl.owner?.name ?? null,
          });
        },
      },
    });
    const ta = r.spawn('A', reader(vma, 0x10000000), taskA);
    const tb = r.spawn('B', clearPte(mm, pmdp, 0x10000000), taskB);
    const res: RunResult = r.run(SCHEDULE);
    return { res, ta, tb, snapshots, ptl, entry, mm };
  }

  it('R-FPM-2/R-FPM-3: the PTE lock held from start to end keeps B from clearing the entry (fixed schedule)', () => {
    const { res, ta, tb, snapshots, ptl, entry, mm } = once();
    expect(res.status).toBe('done');
    expect(res.schedule).toEqual(SCHEDULE);
    // after step 5 A holds the PTE lock and B waits for it; only A can run
    for (const i of [5]) {
      expect(snapshots[i]!.owner).toBe('A');
      expect(snapshots[i]!.blocked).toEqual([`B@${ptl.name}`]);
      expect(snapshots[i]!.enabled).toEqual([A]);
    }
    // after follow_pfnmap_end (step 6) B can run
    expect(snapshots[6]!.owner).toBeNull();
    expect(snapshots[6]!.blocked).toEqual([]);
    expect(snapshots[6]!.enabled).toEqual([A, B]);
    // trace order: A's release of the PTE lock precedes B's acquire
    const t: readonly TraceStep[] = res.trace;
    const aRelease = t.findIndex((s) => s.tid === A && s.obj === ptl.name && s.kind === 'release');
    const bAcquire = t.findIndex((s) => s.tid === B && s.obj === ptl.name && s.kind === 'acquire');
    expect(aRelease).toBe(6);
    expect(bAcquire).toBe(7);
    expect(t[8]).toMatchObject({ tid: B, kind: 'write', what: 'ptep_get_and_clear' });
    // A saw the entry; B cleared the same entry afterwards
    expect(ta.result).toEqual({ ret: 0, pfn: BAR_PFN });
    expect(tb.result).toBe(entry);
    expect(ptep_get(walkToPte(mm, 0x10000000)!)).toBe(0);
  });

  it('two runs with the same schedule give identical traces', () => {
    const one = once().res;
    const two = once().res;
    expect(two.trace).toEqual(one.trace);
    expect(two.schedule).toEqual(one.schedule);
  });

  /*
   * The PMD-leaf path and ffef67b93aa3 "mm/memory: fix PMD/PUD checks in
   * follow_pfnmap_start()": A reads the PMD lockless (step 4) and sees a leaf; B takes the
   * PMD lock, clears the leaf and unlocks (5-7); A takes the PMD lock. The .0 releases
   * re-check the value read before the lock and return the zapped leaf's pfn; 6.12.81 and
   * 6.18.22 re-read the PMD and fail with -EINVAL.
   */
  for (const [version, fixed] of [
    ['6.12', false],
    ['6.12.81', true],
    ['6.18', false],
    ['6.18.22', true],
  ] as const) {
    it(`R-FPM-2.6 (${version}): a PMD leaf zapped while A waits for the PMD lock is ${fixed ? 'refused (-EINVAL)' : 'returned stale'}`, () => {
      const { k, taskA, taskB, mm } = boot(version);
      // 0x40000000..0x40200000: one PMD leaf -> pfn 0x200000 (2 MiB aligned), special
      const vma = makeVma(mm, 0x40000000, 0x40200000);
      const pmdp = k.run(
        (function* () {
          const pudp = (yield* pud_alloc(mm, pgd_offset(mm, 0x40000000), 0x40000000))!;
          const p = (yield* pmd_alloc(mm, pudp, 0x40000000))!;
          yield* set_pmd_at(
            mm,
            0x40000000,
            p,
            __pte(0x200000, PAGE_SHARED | _PAGE_PSE | _PAGE_SPECIAL),
          );
          return p;
        })(),
      );
      expect(
        pmd_offset(
          pud_offset(p4d_offset(pgd_offset(mm, 0x40000000), 0x40000000), 0x40000000),
          0x40000000,
        ),
      ).toEqual(pmdp);
      const zap = function* (): Op<pteval_t> {
        const l = yield* pmd_lock(mm, pmdp);
        const old = yield* pmdp_huge_get_and_clear(mm, 0x40000000, pmdp);
        yield* spin_unlock(l);
        return old;
      };
      const r = k.runner();
      const ta = r.spawn('A', reader(vma, 0x40000000 + 0x5000), taskA);
      r.spawn('B', zap(), taskB);
      const res = r.run([A, A, A, A, A, B, B, B]);
      expect(res.status).toBe('done');
      expect(ptep_get(pmdp)).toBe(0);
      if (fixed) expect(ta.result).toEqual({ ret: -22, pfn: 0 });
      else expect(ta.result).toEqual({ ret: 0, pfn: 0x200005 });
    });
  }
});

describe('generic_access_phys', () => {
  /*
   * A reads 4 bytes at 0x10000010. Its first lookup (steps 0-6: mmap_read_lock, 4 entry
   * reads, PTE lock, unlock) finds pfn 0xfe000; B then moves the entry to 0xfe001 under
   * the PTE lock (7-10). A's second lookup sees another phys address, drops its ioremap
   * and retries; the copy comes from 0xfe001 (R-CALL-1; v5.12+ 96667f8a4382).
   */
  for (const version of ['5.15', '6.12', '6.18']) {
    it(`R-CALL-1 (${version}): the entry changed between the two lookups: retry, and read the new pfn`, () => {
      const { k, taskA, taskB, mm } = boot(version);
      const vma = makeVma(mm, 0x10000000, 0x10001000);
      const prot = PAGE_SHARED | _PAGE_PCD | _PAGE_SPECIAL;
      const pmdp = k.run(installPte(mm, 0x10000000, __pte(BAR_PFN, prot)));
      const ptl = walkToPte(mm, 0x10000000)!.t.ptl!;
      phys_write(BAR + 0x10, new Uint8Array([1, 2, 3, 4]));
      phys_write(BAR + 0x1010, new Uint8Array([5, 6, 7, 8]));
      const buf = new Uint8Array(4);
      const access = function* (): Op<number> {
        yield* mmap_read_lock(mm);
        const n = yield* generic_access_phys(vma, 0x10000010, buf, 4, 0);
        yield* mmap_read_unlock(mm);
        return n;
      };
      const move = function* (): Op<void> {
        const [ptep, l] = (yield* pte_offset_map_lock(mm, pmdp, 0x10000000))! as [
          pte_t_ptr,
          typeof ptl,
        ];
        yield* ptep_get_and_clear(mm, 0x10000000, ptep);
        yield* set_pte_at(mm, 0x10000000, ptep, __pte(BAR_PFN + 1, prot));
        yield* pte_unmap_unlock(ptep, l);
      };
      const r = k.runner();
      const ta = r.spawn('A', access(), taskA);
      r.spawn('B', move(), taskB);
      const res = r.run([A, A, A, A, A, A, A, B, B, B, B]);
      expect(res.status).toBe('done');
      expect(ta.result).toBe(4);
      expect([...buf]).toEqual([5, 6, 7, 8]);
      // four lookups by A: two in the round that saw the change, two in the retried round
      const acquires = res.trace.filter(
        (s) => s.tid === A && s.obj === ptl.name && s.kind === 'acquire',
      );
      expect(acquires).toHaveLength(4);
      expect(ioremap_areas()).toEqual([]);
    });
  }
});
