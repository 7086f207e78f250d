/**
 * Tests of madvise(2) (mm/madvise.c): MADV_DONTNEED / MADV_DONTNEED_LOCKED, the range
 * walk, and the VMA-flag behaviours DOFORK/DONTFORK/DODUMP.
 * Rules: kernel-spec.md §1 R-VMA-1; §8 R-MMUN-2 (DONTNEED = CLEAR); §11 O-2, O-3, O-10.
 */
import { describe, expect, it } from 'vitest';
import type { Op, Step } from '../../sched/index.js';
import { SchedThread } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, mm_struct, vm_operations_struct } from '../include/linux/mm_types.js';
import { VM_DONTCOPY, VM_DONTDUMP, VM_LOCKED, VM_MIXEDMAP } from '../include/linux/mm.js';
import { EAGAIN, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { folio_get, folio_put, page_ref_count } from '../include/linux/page_ref.js';
import { ptep_get, walkToPte, zero_pfn } from '../include/linux/pgtable.js';
import { pte_pfn, type pteval_t } from '../arch/x86/include/asm/pgtable_types.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_LOCKED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { alloc_page, GFP_KERNEL, page_is_free } from './page_alloc.js';
import { remap_pfn_range, vm_insert_page } from './memory.pfnmap.js';
import { page_mapcount } from '../include/linux/page-flags.js';
import { notifierLog } from './mmu_notifier.js';
import { vma_lookup } from './vma.js';
import type { page } from '../include/linux/mm_types.js';
import {
  MADV_COLD,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  do_madvise,
  madvise_behavior_valid,
} from './madvise.js';

const MiB = 2 ** 20;
const BAR = 0xc0000000;
const BAR_PFN = BAR / 4096;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'bar' }],
  });
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

function mmapAnonAt(k: Kernel, t: task_struct, addr: number, len: number, extra = 0): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(
      t.mm!,
      null,
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra,
      0,
    ),
  );
  expect(a).toBe(addr);
  return a;
}

function write(k: Kernel, t: task_struct, addr: number, byte: number): void {
  expect(runAs(k, t, cpu_user_write(t, addr, new Uint8Array([byte]))).kind).toBe('ok');
}

function readResult(k: Kernel, t: task_struct, addr: number) {
  return runAs(k, t, cpu_user_read(t, addr, 1));
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

/**
 * A driver file: the BAR through remap_pfn_range (VM_PFNMAP), or, with `ring`, kernel
 * pages through vm_insert_page (VM_MIXEDMAP, refcounted, O-3). No ->fault: an access to a
 * zapped entry SIGBUSes.
 */
function barFile(ring: number[] | null = null): file {
  const ops: vm_operations_struct = { name: 'bar_vm_ops' };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/bar', O_RDWR, inode, {
    name: 'bar_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      if (!ring)
        return yield* remap_pfn_range(
          vma,
          vma.vm_start,
          BAR_PFN,
          vma.vm_end - vma.vm_start,
          vma.vm_page_prot,
        );
      for (let a = vma.vm_start, i = 0; a < vma.vm_end; a += 4096, i++) {
        const err = yield* vm_insert_page(vma, a, ring[i]! as page);
        if (err) return err;
      }
      return 0;
    },
  });
}

function mmapBar(
  k: Kernel,
  t: task_struct,
  addr: number,
  len: number,
  ring: number[] | null = null,
): number {
  const a = runAs(
    k,
    t,
    vm_mmap_pgoff(
      t.mm!,
      barFile(ring),
      addr,
      len,
      PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_FIXED,
      0,
    ),
  );
  expect(a).toBe(addr);
  return a;
}

describe('do_madvise', () => {
  it('MADV_DONTNEED on a private anon page: the frame is freed, a read maps the zero page', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x2000);
    write(k, t, a, 0x5a);
    const p = pte_pfn(pteAt(mm, a));
    expect(p).not.toBe(zero_pfn());
    notifierLog().length = 0;
    expect(runAs(k, t, do_madvise(mm, a, 0x1000, MADV_DONTNEED))).toBe(0);
    expect(pteAt(mm, a)).toBe(0);
    expect(page_is_free(p)).toBe(true);
    // R-MMUN-2: MADV_DONTNEED zaps inside MMU_NOTIFY_CLEAR.
    expect(notifierLog().map((e) => [e.phase, e.event, e.start, e.end])).toEqual([
      ['start', 'MMU_NOTIFY_CLEAR', a, a + 0x1000],
      ['end', 'MMU_NOTIFY_CLEAR', a, a + 0x1000],
    ]);
    const r = readResult(k, t, a);
    expect(r.kind === 'ok' && r.data[0]).toBe(0);
    expect(pte_pfn(pteAt(mm, a))).toBe(zero_pfn());
  });

  it('O-10: a pinned page survives MADV_DONTNEED; the refault gets another page', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x1000);
    write(k, t, a, 1);
    const p = pte_pfn(pteAt(mm, a));
    folio_get(p as folio);
    expect(runAs(k, t, do_madvise(mm, a, 0x1000, MADV_DONTNEED))).toBe(0);
    expect(page_ref_count(p as page)).toBe(1);
    write(k, t, a, 2);
    expect(pte_pfn(pteAt(mm, a))).not.toBe(p);
    folio_put(p as folio);
    expect(page_is_free(p)).toBe(true);
  });

  it('R-VMA-1: MADV_DONTNEED on a VM_PFNMAP VMA is -EINVAL and leaves the entries', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapBar(k, t, 0x20000000, 0x2000);
    expect(runAs(k, t, do_madvise(mm, a, 0x2000, MADV_DONTNEED))).toBe(-EINVAL);
    expect(pte_pfn(pteAt(mm, a + 0x1000))).toBe(BAR_PFN + 1);
  });

  it('O-3: MADV_DONTNEED on a VM_MIXEDMAP ring unmaps its pages; without ->fault: SIGBUS', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const ring = [alloc_page(GFP_KERNEL)!, alloc_page(GFP_KERNEL)!];
    const a = mmapBar(k, t, 0x20000000, 0x2000, ring);
    expect(vma_lookup(mm, a)!.vm_flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
    expect(page_ref_count(ring[0]! as page)).toBe(2);
    expect(runAs(k, t, do_madvise(mm, a, 0x2000, MADV_DONTNEED))).toBe(0);
    expect(pteAt(mm, a)).toBe(0);
    // The mapping's reference and mapcount are gone; the driver's reference stays.
    expect([page_ref_count(ring[0]! as page), page_mapcount(ring[0]! as page)]).toEqual([1, 0]);
    expect(readResult(k, t, a).kind).toBe('SIGBUS');
  });

  it('VM_LOCKED: MADV_DONTNEED is -EINVAL, MADV_DONTNEED_LOCKED zaps (v5.18+)', () => {
    const k = boot();
    const t = create_user_task('t', { caps: ['CAP_IPC_LOCK'] });
    const mm = t.mm!;
    const a = mmapAnonAt(k, t, 0x10000000, 0x1000, MAP_LOCKED);
    expect(vma_lookup(mm, a)!.vm_flags & VM_LOCKED).toBe(VM_LOCKED);
    write(k, t, a, 1);
    expect(runAs(k, t, do_madvise(mm, a, 0x1000, MADV_DONTNEED))).toBe(-EINVAL);
    expect(pteAt(mm, a)).not.toBe(0);
    expect(runAs(k, t, do_madvise(mm, a, 0x1000, MADV_DONTNEED_LOCKED))).toBe(0);
    expect(pteAt(mm, a)).toBe(0);
    // v5.15 does not know MADV_DONTNEED_LOCKED.
    const k2 = boot('5.15');
    const t2 = create_user_task('t2');
    mmapAnonAt(k2, t2, 0x10000000, 0x1000);
    expect(runAs(k2, t2, do_madvise(t2.mm!, 0x10000000, 0x1000, MADV_DONTNEED_LOCKED))).toBe(
      -EINVAL,
    );
  });

  it('holes: mapped pieces are zapped, then -ENOMEM; no VMA at all: -ENOMEM', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    mmapAnonAt(k, t, 0x10003000, 0x1000);
    write(k, t, 0x10000000, 1);
    write(k, t, 0x10003000, 2);
    // [0x0fffe000, 0x10005000): hole, VMA, hole, VMA, hole.
    expect(runAs(k, t, do_madvise(mm, 0x0fffe000, 0x7000, MADV_DONTNEED))).toBe(-ENOMEM);
    expect(pteAt(mm, 0x10000000)).toBe(0);
    expect(pteAt(mm, 0x10003000)).toBe(0);
    expect(runAs(k, t, do_madvise(mm, 0x50000000, 0x1000, MADV_DONTNEED))).toBe(-ENOMEM);
  });

  it('argument checks: unknown behaviour, unaligned start, length 0, wrap', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    expect(runAs(k, t, do_madvise(mm, 0x10000000, 0x1000, 77))).toBe(-EINVAL);
    expect(runAs(k, t, do_madvise(mm, 0x10000001, 0x1000, MADV_DONTNEED))).toBe(-EINVAL);
    expect(runAs(k, t, do_madvise(mm, 0x10000000, 0, MADV_DONTNEED))).toBe(0);
    expect(runAs(k, t, do_madvise(mm, 0x50000000, 0, MADV_DONTNEED))).toBe(0);
    expect(runAs(k, t, do_madvise(mm, 2 ** 64 - 0x1000, 0x2000, MADV_DONTNEED))).toBe(-EINVAL);
    expect(madvise_behavior_valid(MADV_POPULATE_READ)).toBe(true);
    expect(madvise_behavior_valid(MADV_COLD)).toBe(true);
  });

  it('MADV_POPULATE_* go through GUP (full tests in madvise.populate.test.ts): populating mapped memory is 0', () => {
    const k = boot();
    const t = create_user_task('t');
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    for (const b of [MADV_POPULATE_READ, MADV_POPULATE_WRITE])
      expect(runAs(k, t, do_madvise(t.mm!, 0x10000000, 0x1000, b))).toBe(0);
  });

  it('locking: DONTNEED takes mmap_lock for read, DONTFORK for write', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x1000);
    for (const [b, shared] of [
      [MADV_DONTNEED, true],
      [MADV_DONTFORK, false],
    ] as const) {
      const steps: Step[] = [];
      runAs(k, t, recording(do_madvise(mm, 0x10000000, 0x1000, b), steps));
      const acq = steps.find((s) => s.obj === mm.mmap_lock.name && s.kind === 'acquire')!;
      expect(Boolean(acq.shared)).toBe(shared);
    }
  });

  it('MADV_DONTFORK sets VM_DONTCOPY on the range, splitting the VMA; DOFORK clears it', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x4000);
    expect(runAs(k, t, do_madvise(mm, 0x10001000, 0x2000, MADV_DONTFORK))).toBe(0);
    expect(mm.mmap.map((v) => [v.vm_start, v.vm_end, (v.vm_flags & VM_DONTCOPY) !== 0n])).toEqual([
      [0x10000000, 0x10001000, false],
      [0x10001000, 0x10003000, true],
      [0x10003000, 0x10004000, false],
    ]);
    expect(runAs(k, t, do_madvise(mm, 0x10001000, 0x1000, MADV_DOFORK))).toBe(0);
    expect(vma_lookup(mm, 0x10001000)!.vm_flags & VM_DONTCOPY).toBe(0n);
    expect(vma_lookup(mm, 0x10002000)!.vm_flags & VM_DONTCOPY).toBe(VM_DONTCOPY);
  });

  it('R-VMA-1: MADV_DOFORK on VM_IO and MADV_DODUMP on VM_SPECIAL are -EINVAL', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    const a = mmapBar(k, t, 0x20000000, 0x2000);
    expect(runAs(k, t, do_madvise(mm, a, 0x2000, MADV_DONTFORK))).toBe(0);
    expect(runAs(k, t, do_madvise(mm, a, 0x2000, MADV_DOFORK))).toBe(-EINVAL);
    expect(vma_lookup(mm, a)!.vm_flags & VM_DONTCOPY).toBe(VM_DONTCOPY);
    expect(runAs(k, t, do_madvise(mm, a, 0x2000, MADV_DODUMP))).toBe(-EINVAL);
    expect(vma_lookup(mm, a)!.vm_flags & VM_DONTDUMP).toBe(VM_DONTDUMP);
    // A VM_MIXEDMAP VMA is VM_SPECIAL too.
    const b = mmapBar(k, t, 0x30000000, 0x1000, [alloc_page(GFP_KERNEL)!]);
    expect(runAs(k, t, do_madvise(mm, b, 0x1000, MADV_DODUMP))).toBe(-EINVAL);
  });

  it('a split at vm.max_map_count is reported as -EAGAIN', () => {
    const k = boot();
    const t = create_user_task('t');
    const mm = t.mm!;
    mmapAnonAt(k, t, 0x10000000, 0x4000);
    // Pretend the mm is at the limit (the model's map_count is mm.mmap.length).
    const pad = Array.from({ length: 65530 - mm.mmap.length }, () => mm.mmap[0]!);
    mm.mmap.push(...pad);
    expect(runAs(k, t, do_madvise(mm, 0x10001000, 0x1000, MADV_DONTFORK))).toBe(-EAGAIN);
    mm.mmap.length = 1;
  });
});
