/**
 * Property (issue 3, R-GUP-5, R-GUP-8, O-9, O-10): after any sequence of mmap (private and
 * shared anonymous), CPU writes, pins and references taken through GUP (pin_user_pages,
 * pin_user_pages_fast, pin_user_pages_remote, get_user_pages_fast, with and without
 * FOLL_LONGTERM/FOLL_WRITE), unpins, fork, munmap, MADV_DONTNEED and exit, a full teardown
 * (every pin and reference released, every process exited) leaves:
 * - every frame that was free before free again, and no other frame freed;
 * - no folio that still looks pinned, and every pinned page's refcount back to 0;
 * - no WARN, BUG, bad page or bad rss counter in the kernel log (nothing tainted).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SchedThread, type Op } from '../../src/sched/index.js';
import { Kernel } from '../../src/kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../src/kernel/init/main.js';
import { create_user_task, exit_mm, fork_task } from '../../src/kernel/kernel/fork.js';
import type { task_struct } from '../../src/kernel/include/linux/sched.js';
import type { folio, page } from '../../src/kernel/include/linux/mm_types.js';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  folio_maybe_dma_pinned,
} from '../../src/kernel/include/linux/mm.js';
import { page_folio } from '../../src/kernel/include/linux/page-flags.js';
import { folio_put, page_ref_count } from '../../src/kernel/include/linux/page_ref.js';
import { mmap_read_lock, mmap_read_unlock } from '../../src/kernel/include/linux/mmap_lock.js';
import { PAGE_SIZE } from '../../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { zero_pfn } from '../../src/kernel/include/linux/pgtable.js';
import { task_work_run } from '../../src/kernel/fs/file_table.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
  vm_munmap,
} from '../../src/kernel/mm/mmap.js';
import { do_madvise, MADV_DONTNEED } from '../../src/kernel/mm/madvise.js';
import { cpu_user_write } from '../../src/kernel/arch/x86/mm/fault.js';
import { page_alloc_state } from '../../src/kernel/mm/page_alloc.js';
import {
  get_user_pages_fast,
  pin_user_pages,
  pin_user_pages_fast,
  pin_user_pages_remote,
  unpin_user_pages,
  type page_array,
} from '../../src/kernel/mm/gup.js';

const BASE = 0x10000000;
const SLOT = 0x100000; // one VMA slot per 1 MiB
const SLOTS = 2;

type Action =
  | { t: 'mmap'; proc: number; slot: number; pages: number; shared: boolean }
  | { t: 'touch'; proc: number; slot: number; page: number }
  | {
      t: 'pin';
      proc: number;
      slot: number;
      page: number;
      n: number;
      how: 'pin' | 'fast' | 'remote' | 'get';
      write: boolean;
      longterm: boolean;
    }
  | { t: 'unpin'; which: number }
  | { t: 'fork'; proc: number }
  | { t: 'munmap'; proc: number; slot: number }
  | { t: 'dontneed'; proc: number; slot: number }
  | { t: 'exit'; proc: number };

const idx = fc.nat({ max: 3 });
const slot = fc.nat({ max: SLOTS - 1 });
const mmapAction = fc.record({
  t: fc.constant('mmap' as const),
  proc: idx,
  slot,
  pages: fc.integer({ min: 1, max: 4 }),
  shared: fc.boolean(),
});
const action: fc.Arbitrary<Action> = fc.oneof(
  mmapAction,
  mmapAction,
  fc.record({ t: fc.constant('touch' as const), proc: idx, slot, page: fc.nat({ max: 3 }) }),
  fc.record({
    t: fc.constant('pin' as const),
    proc: idx,
    slot,
    page: fc.nat({ max: 3 }),
    n: fc.integer({ min: 1, max: 3 }),
    how: fc.constantFrom('pin' as const, 'fast' as const, 'remote' as const, 'get' as const),
    write: fc.boolean(),
    longterm: fc.boolean(),
  }),
  fc.record({
    t: fc.constant('pin' as const),
    proc: idx,
    slot,
    page: fc.nat({ max: 3 }),
    n: fc.integer({ min: 1, max: 3 }),
    how: fc.constantFrom('pin' as const, 'fast' as const),
    write: fc.boolean(),
    longterm: fc.boolean(),
  }),
  fc.record({ t: fc.constant('unpin' as const), which: fc.nat({ max: 15 }) }),
  fc.record({ t: fc.constant('fork' as const), proc: idx }),
  fc.record({ t: fc.constant('munmap' as const), proc: idx, slot }),
  fc.record({ t: fc.constant('dontneed' as const), proc: idx, slot }),
  fc.record({ t: fc.constant('exit' as const), proc: idx }),
);

interface Held {
  readonly pages: page[];
  readonly pin: boolean;
}

interface World {
  readonly k: Kernel;
  readonly procs: task_struct[];
  readonly held: Held[];
  /** Every page ever pinned or referenced through GUP. */
  readonly seen: Set<number>;
}

function as(t: task_struct): SchedThread {
  return new SchedThread(0, t.comm, (function* () {})(), t);
}

function* withLock<T>(t: task_struct, op: Op<T>): Op<T> {
  yield* mmap_read_lock(t.mm!);
  const r = yield* op;
  yield* mmap_read_unlock(t.mm!);
  return r;
}

function apply(w: World, a: Action): void {
  const { k } = w;
  if (a.t === 'unpin') {
    if (!w.held.length) return;
    const h = w.held.splice(a.which % w.held.length, 1)[0]!;
    release(h);
    return;
  }
  if (!w.procs.length) return;
  const p = w.procs[a.proc % w.procs.length]!;
  const mm = p.mm!;
  const th = as(p);
  switch (a.t) {
    case 'mmap': {
      const flags = (a.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED;
      const addr = BASE + a.slot * SLOT;
      k.run(
        vm_mmap_pgoff(mm, null, addr, a.pages * PAGE_SIZE, PROT_READ | PROT_WRITE, flags, 0),
        th,
      );
      return;
    }
    case 'touch':
      k.run(
        cpu_user_write(p, BASE + a.slot * SLOT + a.page * PAGE_SIZE, new Uint8Array([a.page + 1])),
        th,
      );
      return;
    case 'pin': {
      const start = BASE + a.slot * SLOT + a.page * PAGE_SIZE;
      const pages: page_array = new Array<page | null>(a.n).fill(null);
      let flags = a.write ? FOLL_WRITE : 0;
      let n: number;
      if (a.how === 'get') {
        n = k.run(get_user_pages_fast(start, a.n, flags, pages), th);
      } else {
        if (a.longterm) flags |= FOLL_LONGTERM;
        if (a.how === 'pin') n = k.run(withLock(p, pin_user_pages(start, a.n, flags, pages)), th);
        else if (a.how === 'fast') n = k.run(pin_user_pages_fast(start, a.n, flags, pages), th);
        else {
          // Pinned by another process (process_vm_*), from the first process's thread.
          const other = as(w.procs[0]!);
          n = k.run(withLock(p, pin_user_pages_remote(mm, start, a.n, flags, pages, null)), other);
        }
      }
      if (n > 0) {
        const got = pages.slice(0, n) as page[];
        for (const q of got) w.seen.add(q);
        w.held.push({ pages: got, pin: a.how !== 'get' });
      }
      return;
    }
    case 'fork': {
      const c = k.run(fork_task(p), th);
      if (typeof c !== 'number') w.procs.push(c);
      return;
    }
    case 'munmap':
      k.run(vm_munmap(mm, BASE + a.slot * SLOT, SLOT), th);
      return;
    case 'dontneed':
      k.run(do_madvise(mm, BASE + a.slot * SLOT, 4 * PAGE_SIZE, MADV_DONTNEED), th);
      return;
    case 'exit':
      k.run(exit_mm(p), th);
      w.procs.splice(w.procs.indexOf(p), 1);
      return;
  }
}

function release(h: Held): void {
  if (h.pin) unpin_user_pages(h.pages, h.pages.length);
  else for (const q of h.pages) folio_put(page_folio(q));
}

function freeFrames(): number {
  return page_alloc_state().zones.reduce((s, z) => s + z.nr_free, 0);
}

describe('property: pins and references leave nothing behind after teardown (issue 3)', () => {
  for (const version of ['5.10', '5.15', '6.1', '6.18']) {
    it(`random pin/unpin/fork/munmap/MADV_DONTNEED/exit sequences, then teardown, on ${version}`, () => {
      let pins = 0;
      let forksWithPins = 0;
      fc.assert(
        fc.property(fc.array(action, { minLength: 5, maxLength: 40, size: 'max' }), (actions) => {
          const k = new Kernel({ version });
          start_kernel(k, { map: x86_64_e820(512 * 2 ** 20) });
          const before = freeFrames();
          const zero = zero_pfn() as page;
          const zeroRefs = page_ref_count(zero);
          const w: World = { k, procs: [create_user_task('p0')], held: [], seen: new Set() };
          for (const a of actions) {
            if (a.t === 'fork' && w.held.some((h) => h.pin)) forksWithPins++;
            apply(w, a);
            k.run(task_work_run());
          }
          pins += w.seen.size;
          // Teardown: every pin and reference is released, every process exits.
          for (const h of w.held.splice(0)) release(h);
          for (const p of [...w.procs]) k.run(exit_mm(p), as(p));
          w.procs.length = 0;
          k.run(task_work_run());
          for (const q of w.seen) {
            expect(folio_maybe_dma_pinned(page_folio(q as page) as folio)).toBe(false);
            // The shared zero page is never freed: its count is back where it started.
            expect(page_ref_count(q as page)).toBe(q === zero ? zeroRefs : 0);
          }
          expect(freeFrames()).toBe(before);
          const bad = k.log.filter((l) => /WARNING:|BUG:|Bad page|Oops/.test(l.text));
          expect(bad.map((l) => l.text)).toEqual([]);
          expect(k.tainted_mask).toBe(0);
        }),
        { numRuns: 150, seed: 20261123 },
      );
      // The sequences did pin pages, and forked while pins were held.
      expect(pins).toBeGreaterThan(100);
      expect(forksWithPins).toBeGreaterThan(10);
    });
  }
});
