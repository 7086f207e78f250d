/**
 * Tests of pfnsan, the PFN sanitizer (DESIGN.md "The sanitizer"; issue 5 §1), each report
 * code triggered by a real kernel sequence of the model.
 *
 * Physical map: 4 GiB of e820 RAM plus a 1 MiB BAR at 0xfe000000 (pfns 0xfe000..0xfe0ff,
 * no struct page). User mappings at 0x7f0000000000 (PFNMAP) and 0x7f1000000000 (anon).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task, exit_mm } from '../../kernel/fork.js';
import { KernelBug } from '../../kernel/panic.js';
import { set_call_path_capture } from '../../kernel/callpath.js';
import { dmesg } from '../../kernel/printk.js';
import { SchedThread, type Op } from '../../../sched/index.js';
import type { task_struct } from '../../include/linux/sched.js';
import type { file, mm_struct, page, vm_area_struct } from '../../include/linux/mm_types.js';
import type { page_array } from '../gup.js';
import {
  FOLL_WRITE,
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
} from '../../include/linux/mm.js';
import { get_page, put_page } from '../../include/linux/page_ref.js';
import { mutex, mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_lock,
  mmap_write_unlock,
} from '../../include/linux/mmap_lock.js';
import {
  vm_get_page_prot,
  vm_mmap_pgoff,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from '../mmap.js';
import { vm_area_alloc, vma_link } from '../vma.js';
import {
  alloc_page,
  __free_pages,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  page_is_free,
} from '../page_alloc.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
  remap_pfn_range,
  unsafe_follow_pfn,
} from '../memory.pfnmap.js';
import { pte_unmap_unlock } from '../../include/linux/pgtable.js';
import { zap_vma_ptes } from '../memory.zap.js';
import {
  mmu_interval_notifier_insert,
  mmu_interval_set_seq,
  new_interval_notifier,
} from '../mmu_notifier.js';
import { ioremap_prot, iounmap } from '../../arch/x86/mm/ioremap.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { do_syscall } from '../../arch/x86/entry/common.js';
import { get_user_pages_fast, pin_user_pages_fast } from '../gup.js';
import { PAGE_SHARED } from '../../arch/x86/include/asm/pgtable_types.js';
import { PFNSAN_HISTORY } from './owners.js';
import {
  pfnsan_check_teardown,
  pfnsan_gen,
  pfnsan_history,
  pfnsan_lease_get,
  pfnsan_lease_guard,
  pfnsan_lease_of,
  pfnsan_lease_put,
  pfnsan_owner_of,
  pfnsan_report_event,
  pfnsan_reports,
  pfnsan_use,
  type pfnsan_report,
} from './pfnsan.js';

const MiB = 2 ** 20;
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
const UADDR = 0x7f0000000000;
const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const PFNMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
const RULE = '='.repeat(66);

interface Ctx {
  k: Kernel;
  task: task_struct;
  mm: mm_struct;
  th: SchedThread;
}

function boot(version: string, config: Record<string, boolean | number> = {}): Ctx {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('app');
  const th = new SchedThread(0, 'app', undefined as never, task);
  return { k, task, mm: task.mm!, th };
}

function run<T>(c: Ctx, op: Op<T>): T {
  return c.k.run(op, c.th);
}

/** A VM_PFNMAP VMA at UADDR of `pages` pages mapping pfn onwards (a driver's ->mmap). */
function pfnmapVma(c: Ctx, pfn: number, pages = 1): vm_area_struct {
  const vma = vm_area_alloc(c.mm);
  vma.vm_start = UADDR;
  vma.vm_end = UADDR + pages * 4096;
  vma.vm_flags = RW_SHARED;
  vma.vm_page_prot = vm_get_page_prot(RW_SHARED);
  vma.vm_file = null as unknown as file | null;
  vma_link(c.mm, vma);
  const r = run(
    c,
    (function* () {
      yield* mmap_write_lock(c.mm);
      const ret = yield* remap_pfn_range(vma, UADDR, pfn, pages * 4096, PAGE_SHARED);
      yield* mmap_write_unlock(c.mm);
      return ret;
    })(),
  );
  expect(r).toBe(0);
  expect(vma.vm_flags & PFNMAP_FLAGS).toBe(PFNMAP_FLAGS);
  return vma;
}

/** follow_pfnmap_start under mmap_lock; `inside` runs in the window, `after` after _end. */
function* lookup(
  vma: vm_area_struct,
  addr: number,
  inside: (pfn: number) => void,
  after: (pfn: number) => void,
): Op<number> {
  yield* mmap_read_lock(vma.vm_mm);
  const args = follow_pfnmap_args_init(vma, addr);
  expect(yield* follow_pfnmap_start(args)).toBe(0);
  const pfn = args.pfn;
  inside(pfn);
  yield* follow_pfnmap_end(args);
  yield* mmap_read_unlock(vma.vm_mm);
  after(pfn);
  return pfn;
}

function remap(pfn: number): void {
  const a = ioremap_prot(pfn * 4096, 4096, 0);
  expect(a).not.toBeNull();
  iounmap(a!);
}

function codes(): string[] {
  return pfnsan_reports().map((r) => r.code);
}

function only(code: string): pfnsan_report {
  const rs = pfnsan_reports().filter((r) => r.code === code);
  expect(rs).toHaveLength(1);
  return rs[0]!;
}

const fns = (r: { path: readonly { fn: string }[] } | undefined): string[] =>
  (r?.path ?? []).map((f) => f.fn);

/* ------------------------------------------------------------------------------------ */

describe('pfnsan_set_owner / pfnsan_gen (owners and generations)', () => {
  it('boot owners: RAM free, the kernel image kernel, a BAR unassigned, all at generation 0', () => {
    boot('6.12');
    expect(page_is_free(0x40000)).toBe(true); // 1 GiB, never allocated
    expect(pfnsan_owner_of(0x40000)).toEqual({ kind: 'free', desc: 'free' });
    expect(pfnsan_owner_of(0x1000)).toEqual({ kind: 'kernel', desc: 'kernel image (Kernel code)' });
    expect(pfnsan_owner_of(BAR_PFN)).toEqual({
      kind: 'unassigned',
      desc: 'device memory (BAR)',
    });
    expect(pfnsan_gen(BAR_PFN)).toBe(0);
  });

  it('allocation is one change of owner: kernel, refined to anon memory of the process without a new generation; free bumps it', () => {
    const c = boot('6.12');
    const addr = run(
      c,
      vm_mmap_pgoff(c.mm, null, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    expect(run(c, cpu_user_write(c.task, addr, new Uint8Array([1]))).kind).toBe('ok');
    const pfn = Math.floor(c.mm.pgd.pfn); // any allocated frame: the pgd is a page table
    expect(pfnsan_owner_of(pfn).kind).toBe('pagetable');
    // The anon frame: read back through the page tables.
    const h = pfnsan_reports();
    expect(h).toEqual([]);
    const anon = anonPfn(c, addr);
    expect(pfnsan_owner_of(anon)).toEqual({
      kind: 'anon',
      desc: `anon memory of pid ${c.task.pid} (app)`,
    });
    expect(pfnsan_gen(anon)).toBe(1);
    expect(pfnsan_history(anon).map((e) => [e.gen, e.owner.kind])).toEqual([
      [0, 'free'],
      [1, 'anon'],
    ]);
  });

  it(`history is bounded to ${PFNSAN_HISTORY} changes, the newest kept`, () => {
    boot('6.12');
    let p = alloc_page(GFP_KERNEL)!;
    for (let i = 0; i < 20; i++) {
      __free_pages(p, 0);
      const q = alloc_page(GFP_KERNEL)!;
      expect(q).toBe(p); // LIFO: the same frame comes back
      p = q;
    }
    const h = pfnsan_history(p);
    expect(h).toHaveLength(PFNSAN_HISTORY);
    expect(pfnsan_gen(p)).toBe(41); // 1 alloc + 20 * (free + alloc)
    expect(h.map((e) => e.gen)).toEqual([34, 35, 36, 37, 38, 39, 40, 41]);
    expect(h.at(-1)!.owner.kind).toBe('kernel');
    expect(h.at(-2)!.owner.kind).toBe('free');
  });
});

function anonPfn(c: Ctx, addr: number): number {
  const pages: page_array = [null];
  c.th.ctx = c.task;
  expect(run(c, get_user_pages_fast(addr, 1, FOLL_WRITE, pages))).toBe(1);
  const p = pages[0]!;
  put_page(p);
  return p;
}

describe('follow_pfnmap_start / follow_pfnmap_end leases (R-FPM-3)', () => {
  it('ioremap of the pfn inside the window: nothing; after follow_pfnmap_end: stale-pfn, even with no reuse', () => {
    const c = boot('6.12');
    const vma = pfnmapVma(c, BAR_PFN);
    run(
      c,
      lookup(
        vma,
        UADDR,
        (pfn) => {
          expect(pfn).toBe(BAR_PFN);
          remap(pfn); // inside the window
          expect(codes()).toEqual([]);
        },
        (pfn) => remap(pfn), // after _end
      ),
    );
    const r = only('stale-pfn');
    expect(r.title).toBe('BUG: pfnsan: stale-pfn in ioremap_prot');
    expect(r.pfn).toBe(BAR_PFN);
    expect(r.thread).toBe('app');
    expect(fns(r.obtained)).toContain('follow_pfnmap_start');
    expect(fns(r.ended)).toContain('follow_pfnmap_end');
    expect(fns(r.used)).toContain('ioremap_prot');
    expect(r.text.join('\n')).toContain('the frame has not changed owner since');
    expect(pfnsan_gen(BAR_PFN)).toBe(0);
  });

  it('with call-path capture off (the explorer searching), the same report without call paths', () => {
    const once = (): ReturnType<typeof only> => {
      const c = boot('6.12');
      const vma = pfnmapVma(c, BAR_PFN);
      run(
        c,
        lookup(
          vma,
          UADDR,
          () => {},
          (pfn) => remap(pfn),
        ),
      );
      return only('stale-pfn');
    };
    const full = once();
    const prev = set_call_path_capture(false);
    let bare: ReturnType<typeof only>;
    try {
      bare = once();
    } finally {
      set_call_path_capture(prev);
    }
    expect(bare.code).toBe(full.code);
    expect(bare.title).toBe(full.title);
    expect(bare.text[2]).toBe(full.text[2]);
    expect(fns(full.obtained)).toContain('follow_pfnmap_start');
    expect(bare.obtained!.path).toEqual([]);
    expect(bare.used.path).toEqual([]);
    expect(bare.text).not.toContain(' follow_pfnmap_start (mm/memory.c)');
  });

  it('report text: KASAN layout, printed once at KERN_ERR, with the three sites and the owner history', () => {
    const c = boot('6.12');
    const vma = pfnmapVma(c, BAR_PFN);
    run(
      c,
      lookup(
        vma,
        UADDR,
        () => {},
        (pfn) => {
          remap(pfn);
          remap(pfn); // the same finding again: not repeated
        },
      ),
    );
    const r = only('stale-pfn');
    expect(r.text[0]).toBe(RULE);
    expect(r.text[1]).toBe('BUG: pfnsan: stale-pfn in ioremap_prot');
    expect(r.text[2]).toMatch(
      /^Use of pfn 0xfe000 by thread app at setup: obtained from follow_pfnmap_start, kept valid by window until follow_pfnmap_end, which ended at setup \(follow_pfnmap_end\)$/,
    );
    expect(r.text).toContain('Used by thread app at setup (ioremap_prot):');
    expect(r.text).toContain(
      'Obtained from follow_pfnmap_start by thread app at setup (follow_pfnmap_start):',
    );
    expect(r.text).toContain('Guarantee ended by thread app at setup (follow_pfnmap_end):');
    expect(r.text).toContain(' follow_pfnmap_start (mm/memory.c)');
    expect(r.text).toContain('Owner history of pfn 0xfe000 (oldest first):');
    expect(r.text).toContain(' gen 0: unassigned: device memory (BAR) (thread boot, setup)');
    expect(r.text.at(-1)).toBe(RULE);
    const errLines = c.k.log.filter((l) => l.level === 3).map((l) => l.text);
    expect(errLines.filter((t) => t === 'BUG: pfnsan: stale-pfn in ioremap_prot')).toHaveLength(1);
    expect(dmesg()).toContain(r.text.join('\n').split('\n')[2]!);
  });

  it('a lease guarded by an MMU interval notifier: used before an invalidation, nothing; after it, stale-pfn', () => {
    const c = boot('6.12');
    const vma = pfnmapVma(c, BAR_PFN);
    const sub = new_interval_notifier('test-mirror', {
      *invalidate(s, _range, cur_seq) {
        mmu_interval_set_seq(s, cur_seq);
        return true;
      },
    });
    expect(run(c, mmu_interval_notifier_insert(sub, c.mm, UADDR, 4096, sub.ops))).toBe(0);
    let leasePfn = 0;
    run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const args = follow_pfnmap_args_init(vma, UADDR);
        expect(yield* follow_pfnmap_start(args)).toBe(0);
        leasePfn = args.pfn;
        // The caller keeps the pfn in step with the notifier (a mirror of the mapping).
        const lease = pfnsan_lease_get(args.pfn, 1, 'mirror', {
          kind: 'notifier',
          sub,
          mm: c.mm,
          start: UADDR,
          end: UADDR + 4096,
        });
        pfnsan_lease_guard(lease, lease.guarantee);
        yield* follow_pfnmap_end(args);
        yield* mmap_read_unlock(c.mm);
      })(),
    );
    pfnsan_use(leasePfn, 1, 'mirror_map'); // before any invalidation
    expect(codes()).toEqual([]);
    run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        yield* zap_vma_ptes(vma, UADDR, 4096);
        yield* mmap_read_unlock(c.mm);
      })(),
    );
    expect(sub.invalidations).toBe(1);
    pfnsan_use(leasePfn, 1, 'mirror_map');
    const r = only('stale-pfn');
    expect(r.ended!.what).toBe('MMU notifier invalidation of [0x7f0000000000, 0x7f0000001000)');
    expect(fns(r.ended)).toContain('zap_vma_ptes');
  });
});

describe('pfnsan_lease_guard / pfnsan_lease_put', () => {
  it("a pin guard outlives follow_pfnmap_end; the pin's release ends it", () => {
    const c = boot('6.12');
    const vma = pfnmapVma(c, BAR_PFN);
    run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const args = follow_pfnmap_args_init(vma, UADDR);
        expect(yield* follow_pfnmap_start(args)).toBe(0);
        const lease = pfnsan_lease_of(args)!;
        expect(lease.source).toBe('follow_pfnmap_start');
        pfnsan_lease_guard(lease, { kind: 'pin' });
        yield* follow_pfnmap_end(args);
        yield* mmap_read_unlock(c.mm);
        pfnsan_use(BAR_PFN, 1, 'iommu_map'); // still pinned
        expect(codes()).toEqual([]);
        pfnsan_lease_put(lease, 'unpin_user_page');
        pfnsan_use(BAR_PFN, 1, 'iommu_map');
      })(),
    );
    const r = only('stale-pfn');
    expect(r.ended!.what).toBe('unpin_user_page');
    expect(r.text[2]).toContain('kept valid by a pin or reference on the frame');
  });

  it('a driver guard ends when the frame changes owner (freed by the driver)', () => {
    boot('6.12');
    const buf = alloc_page(GFP_KERNEL)!; // pfn of a driver buffer
    const lease = pfnsan_lease_get(buf, 1, 'drv_lookup', { kind: 'none' });
    pfnsan_lease_guard(lease, { kind: 'driver', driver: 'drv' });
    pfnsan_use(buf, 1, 'drv_map');
    expect(codes()).toEqual([]);
    __free_pages(buf, 0);
    pfnsan_use(buf, 1, 'drv_map');
    const r = only('stale-pfn');
    expect(r.ended!.what).toBe(`pfn ${'0x' + buf.toString(16)} left driver drv (now free)`);
    expect(r.text[3]).toContain('generation 1 then, 2 now (free: free)');
  });
});

describe('follow_pte leases (R-LEG-1)', () => {
  it('5.15: the pfn is valid until pte_unmap_unlock of the returned ptl; a use after it is stale-pfn', () => {
    const c = boot('5.15');
    pfnmapVma(c, BAR_PFN);
    run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const r = yield* follow_pte(c.mm, UADDR);
        expect(r.ret).toBe(0);
        remap(BAR_PFN); // under the PTE lock
        expect(codes()).toEqual([]);
        yield* pte_unmap_unlock(r.ptep!, r.ptl!);
        yield* mmap_read_unlock(c.mm);
        remap(BAR_PFN);
      })(),
    );
    const r = only('stale-pfn');
    expect(r.ended!.what).toBe('pte_unmap_unlock');
    expect(fns(r.obtained)).toContain('follow_pte');
  });
});

describe('follow_pfn / unsafe_follow_pfn leases (R-LEG-2, R-LEG-3)', () => {
  it("5.10 follow_pfn: guarantee 'none', any use after the return is stale-pfn", () => {
    const c = boot('5.10');
    const vma = pfnmapVma(c, BAR_PFN);
    const pfn = run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const r = yield* follow_pfn(vma, UADDR);
        yield* mmap_read_unlock(c.mm);
        return r.pfn;
      })(),
    );
    expect(pfn).toBe(BAR_PFN);
    remap(pfn);
    const r = only('stale-pfn');
    expect(r.text[2]).toContain(
      'obtained from follow_pfn, kept valid by nothing once the lookup returned',
    );
  });

  it('5.13 unsafe_follow_pfn (STRICT_FOLLOW_PFN off): the same, the lease named after unsafe_follow_pfn', () => {
    const c = boot('5.13', { CONFIG_STRICT_FOLLOW_PFN: false });
    const vma = pfnmapVma(c, BAR_PFN);
    const pfn = run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        const r = yield* unsafe_follow_pfn(vma, UADDR);
        yield* mmap_read_unlock(c.mm);
        return r.pfn;
      })(),
    );
    remap(pfn);
    expect(only('stale-pfn').obtained!.what).toBe('unsafe_follow_pfn');
  });
});

describe('special user PTEs (use-after-free, cross-owner)', () => {
  it('remap_pfn_range of a driver page the driver frees: a user read is use-after-free; once another process owns the frame, cross-owner naming both owners', () => {
    const c = boot('6.12');
    // The other process faults one page first, so its page tables exist.
    const other = create_user_task('other');
    const oth = new SchedThread(1, 'other', undefined as never, other);
    const oaddr = c.k.run(
      vm_mmap_pgoff(
        other.mm!,
        null,
        0,
        2 * 4096,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        0,
      ),
      oth,
    );
    expect(c.k.run(cpu_user_write(other, oaddr, new Uint8Array([7])), oth).kind).toBe('ok');

    // The driver's buffer, movable so that the next anon fault reuses it (the
    // allocator's lists are LIFO per migratetype).
    const buf = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    pfnmapVma(c, buf);
    expect(run(c, cpu_user_read(c.task, UADDR, 8)).kind).toBe('ok');
    expect(codes()).toEqual([]);

    __free_pages(buf, 0); // the driver frees it; the user PTE stays
    expect(run(c, cpu_user_read(c.task, UADDR, 8)).kind).toBe('ok');
    const uaf = only('use-after-free');
    expect(uaf.pfn).toBe(buf);
    expect(uaf.text.join('\n')).toContain(
      'owned by kernel: kernel (allocated, not yet refined); the frame is now generation 2, owned by free: free',
    );
    expect(fns(uaf.obtained)).toContain('remap_pfn_range');

    // The next anon page of the other process gets the frame (the allocator is LIFO).
    expect(c.k.run(cpu_user_write(other, oaddr + 4096, new Uint8Array([9])), oth).kind).toBe('ok');
    expect(pfnsan_owner_of(buf).desc).toBe(`anon memory of pid ${other.pid} (other)`);
    expect(run(c, cpu_user_write(c.task, UADDR, new Uint8Array([1]))).kind).toBe('ok');
    const x = only('cross-owner');
    expect(x.title).toBe('BUG: pfnsan: cross-owner in cpu_user_write');
    expect(x.text.join('\n')).toContain(
      `The mapping was made for generation 1, owned by kernel: kernel (allocated, not yet refined); the frame is now generation 3, owned by anon: anon memory of pid ${other.pid} (other)`,
    );
    expect(x.history.map((e) => e.owner.kind)).toEqual(['free', 'kernel', 'free', 'anon']);
    expect(x.text).toContain('The frame was freed since (generation 2) and allocated again');
  });

  it('after zap_vma_ptes the side table forgets the entry: no report for a later fault elsewhere', () => {
    const c = boot('6.12');
    const buf = alloc_page(GFP_KERNEL)!;
    const vma = pfnmapVma(c, buf);
    run(
      c,
      (function* () {
        yield* mmap_read_lock(c.mm);
        yield* zap_vma_ptes(vma, UADDR, 4096);
        yield* mmap_read_unlock(c.mm);
      })(),
    );
    __free_pages(buf, 0);
    expect(run(c, cpu_user_read(c.task, UADDR, 8)).kind).not.toBe('ok'); // SIGBUS: no PTE
    expect(codes()).toEqual([]);
  });
});

describe('references and pins', () => {
  it('get_page on a BAR pfn: no-struct-page-ref before the oops', () => {
    boot('6.12');
    expect(() => get_page(BAR_PFN as page)).toThrow(KernelBug);
    const r = only('no-struct-page-ref');
    expect(r.title).toBe('BUG: pfnsan: no-struct-page-ref in get_page');
    expect(r.text[2]).toContain('the frame has no struct page (unassigned: device memory (BAR))');
  });

  it('put_page of a frame with no reference left: refcount-underflow before the VM_BUG_ON', () => {
    boot('6.12');
    const p = alloc_page(GFP_KERNEL)!;
    put_page(p);
    expect(() => put_page(p)).toThrow(KernelBug);
    expect(only('refcount-underflow').title).toBe('BUG: pfnsan: refcount-underflow in folio_put');
  });

  it('teardown: a pinned anon page whose mm is gone is a pincount-leak; a FOLL_GET reference a refcount-leak', () => {
    const c = boot('6.12');
    c.th.ctx = c.task;
    const addr = run(
      c,
      vm_mmap_pgoff(
        c.mm,
        null,
        0,
        2 * 4096,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        0,
      ),
    );
    const pinned: page_array = [null];
    const got: page_array = [null];
    expect(run(c, pin_user_pages_fast(addr, 1, FOLL_WRITE, pinned))).toBe(1);
    expect(run(c, get_user_pages_fast(addr + 4096, 1, FOLL_WRITE, got))).toBe(1);
    expect(pfnsan_check_teardown()).toEqual([]); // the owner is alive
    run(c, exit_mm(c.task));
    const rs = pfnsan_check_teardown();
    expect(rs.map((r) => [r.code, r.pfn])).toEqual(
      [
        ['pincount-leak', pinned[0]],
        ['refcount-leak', got[0]],
      ].sort((a, b) => (a[1] as number) - (b[1] as number)),
    );
    expect(rs[0]!.text[2]).toMatch(/has been torn down$/);
  });
});

describe('cma-pin', () => {
  it('cma_alloc failing on a pinned page reports cma-pin naming the pin holder', async () => {
    // The sequence of cma.pins.test.ts (R-GUP-8): an anon page in the CMA area at
    // 0x20000 (4 MiB), pinned without FOLL_LONGTERM, blocks cma_alloc of the whole area.
    const { cma_alloc, cma_find, cma_release } = await import('../cma.js');
    const k = new Kernel({ version: '6.18' });
    const CMA_BASE = 0x20000;
    const A = 0x10000000;
    start_kernel(k, {
      map: x86_64_e820(1024 * MiB),
      cma: [{ name: 'reserved', base: CMA_BASE * 4096, size: 4 * MiB }],
    });
    const task = create_user_task('app');
    const th = new SchedThread(0, 'app', undefined as never, task);
    const addr = k.run(
      vm_mmap_pgoff(
        task.mm!,
        null,
        A,
        2 * 4096,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        0,
      ),
      th,
    );
    expect(addr).toBe(A);
    expect(k.run(cpu_user_write(task, A + 4096, new Uint8Array([1])), th).kind).toBe('ok');
    const c = cma_find('reserved')!;
    const p = k.run(cma_alloc(c, 1, 0, true))!;
    expect(k.run(cma_release(c, p, 1))).toBe(true); // the CMA frame is the next one handed out
    expect(k.run(cpu_user_write(task, A, new Uint8Array([2])), th).kind).toBe('ok');
    const pages: page_array = [null];
    expect(k.run(pin_user_pages_fast(A, 1, FOLL_WRITE, pages), th)).toBe(1);
    expect(pages[0]).toBe(p);
    expect(k.run(cma_alloc(c, 1024, 0, false))).toBeNull();
    const r = only('cma-pin');
    expect(r.title).toBe('BUG: pfnsan: cma-pin in cma_alloc');
    expect(r.pfn).toBe(p);
    expect(r.text.join('\n')).toContain(`held by app(${task.pid}) via pin_user_pages_fast`);
    expect(fns(r.obtained)).toContain('try_grab_folio_fast');
    expect(r.history.at(-1)!.owner.desc).toBe(`anon memory of pid ${task.pid} (app)`);
  });
});

describe('locks', () => {
  it('lock-cycle: A then B, later B then A, reported once with both orders', () => {
    const c = boot('6.12');
    const a = new mutex('drv1.lock_a');
    const b = new mutex('drv1.lock_b');
    function* order(x: mutex, y: mutex): Op<void> {
      yield* mutex_lock(x);
      yield* mutex_lock(y);
      yield* mutex_unlock(y);
      yield* mutex_unlock(x);
    }
    run(c, order(a, b));
    expect(codes()).toEqual([]);
    run(c, order(b, a));
    run(c, order(b, a));
    const r = only('lock-cycle');
    expect(r.text[2]).toContain(
      'Lock drv.lock_a acquired by thread app at setup while holding drv.lock_b',
    );
    expect(r.text[3]).toBe('Cycle: drv.lock_b -> drv.lock_a -> drv.lock_b');
  });

  it("nesting two locks of one class (two mms' mmap_lock) adds no edge and no report", () => {
    const c = boot('6.12');
    const other = create_user_task('other');
    run(
      c,
      (function* () {
        yield* mmap_write_lock(c.mm);
        yield* mmap_write_lock(other.mm!);
        yield* mmap_write_unlock(other.mm!);
        yield* mmap_write_unlock(c.mm);
        yield* mmap_write_lock(other.mm!);
        yield* mmap_write_lock(c.mm);
        yield* mmap_write_unlock(c.mm);
        yield* mmap_write_unlock(other.mm!);
      })(),
    );
    expect(codes()).toEqual([]);
  });

  it('lock-held-user: a system call returning with a mutex held', () => {
    const c = boot('6.12');
    const m = new mutex('drv.ioctl_lock');
    run(
      c,
      do_syscall(
        c.task,
        (function* () {
          yield* mutex_lock(m);
          return 0;
        })(),
      ),
    );
    const r = only('lock-held-user');
    expect(r.text[2]).toBe(
      `app/${c.task.pid} (thread app) returns to user space at setup holding drv.ioctl_lock`,
    );
  });
});

describe('pfnsan_report_event', () => {
  it('a finding from elsewhere (disabled-bar) is printed with its detail lines, once', () => {
    boot('6.12');
    pfnsan_report_event('disabled-bar', BAR_PFN, 'pci_mmio_access', ['COMMAND.MEMORY is clear']);
    pfnsan_report_event('disabled-bar', BAR_PFN, 'pci_mmio_access', ['COMMAND.MEMORY is clear']);
    const r = only('disabled-bar');
    expect(r.text.slice(1, 4)).toEqual([
      'BUG: pfnsan: disabled-bar in pci_mmio_access',
      'pci_mmio_access on pfn 0xfe000 by thread boot at setup',
      'COMMAND.MEMORY is clear',
    ]);
  });
});

describe('pfnsan_report_event (a whole title)', () => {
  it('a title that is already "BUG: pfnsan: ..." is kept as the title', () => {
    boot('6.12');
    pfnsan_report_event('disabled-bar', BAR_PFN, 'BUG: pfnsan: disabled-bar read of BAR0', [
      'read by cpu at pfn 0xfe000',
    ]);
    const r = only('disabled-bar');
    expect(r.title).toBe('BUG: pfnsan: disabled-bar read of BAR0');
    expect(r.text.slice(1, 4)).toEqual([
      'BUG: pfnsan: disabled-bar read of BAR0',
      'disabled-bar on pfn 0xfe000 by thread boot at setup',
      'read by cpu at pfn 0xfe000',
    ]);
  });
});

describe('CONFIG_PFNSAN=n', () => {
  it('every entry point is a no-op: no owners, no leases, no reports, nothing printed', () => {
    const c = boot('6.12', { CONFIG_PFNSAN: false });
    const vma = pfnmapVma(c, BAR_PFN);
    const before = dmesg();
    run(
      c,
      lookup(
        vma,
        UADDR,
        () => {},
        (pfn) => remap(pfn),
      ),
    );
    const p = alloc_page(GFP_KERNEL)!;
    expect(pfnsan_gen(p)).toBe(0);
    expect(pfnsan_owner_of(p).kind).toBe('unassigned');
    expect(pfnsan_lease_get(p, 1, 'x', { kind: 'none' }).id).toBe(0);
    expect(() => get_page(BAR_PFN as page)).toThrow(KernelBug);
    expect(pfnsan_reports()).toEqual([]);
    expect(dmesg().slice(before.length)).not.toContain('pfnsan');
    expect(c.k.sub.pfnsan).toBeUndefined();
  });
});

describe('determinism', () => {
  it('the same sequence in two kernels gives identical reports', () => {
    const texts: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const c = boot('6.12');
      const buf = alloc_page(GFP_KERNEL)!;
      pfnmapVma(c, buf);
      __free_pages(buf, 0);
      run(c, cpu_user_read(c.task, UADDR, 8));
      const vma2 = c.mm.mmap.find((v) => v.vm_start === UADDR)!;
      run(
        c,
        lookup(
          vma2,
          UADDR,
          () => {},
          (pfn) => pfnsan_use(pfn, 1, 'consumer'),
        ),
      );
      texts.push(pfnsan_reports().flatMap((r) => r.text));
    }
    expect(texts[0]!.length).toBeGreaterThan(10);
    expect(texts[1]).toEqual(texts[0]);
  });
});
