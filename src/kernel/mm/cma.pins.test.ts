/**
 * Tests of cma_alloc's and alloc_contig_range's naming of the pins that block them
 * (model only: gup.ts "Pin provenance"). Rules: R-GUP-8 (a pin without FOLL_LONGTERM
 * keeps a page in the CMA area and blocks cma_alloc; FOLL_LONGTERM migrates it out
 * first), R-REV-5 (CMA frames are lent to anonymous memory), R-GUP-5.
 *
 * Machine: 1 GiB of RAM with a 4 MiB CMA area 'reserved' at 0x20000000 (frames
 * 0x20000-0x203ff, two pageblocks). The task 'app' maps anonymous memory at 0x10000000;
 * its pages are placed in the area by the R-REV-5 trick of cma.test.ts (cma_alloc then
 * cma_release frames; the next anonymous faults take them back, last released first).
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { page } from '../include/linux/mm_types.js';
import { FOLL_LONGTERM, FOLL_WRITE } from '../include/linux/mm.js';
import { PAGE_SIZE, pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../include/linux/pgtable.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import { KERN_DEBUG } from '../kernel/printk.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { is_migrate_cma_page, GFP_KERNEL } from './page_alloc.js';
import { MIGRATE_CMA } from './sparse.js';
import { cma_alloc, cma_find, cma_last_failure, cma_release } from './cma.js';
import { alloc_contig_last_blocker, alloc_contig_range } from './page_isolation.js';
import {
  get_user_pages_fast,
  gup_live_pin_records,
  pin_user_pages_fast,
  unpin_user_pages,
  type page_array,
} from './gup.js';
import { folio_put } from '../include/linux/page_ref.js';
import { page_folio } from '../include/linux/page-flags.js';
import { pfnsan_reports } from './pfnsan/pfnsan.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const CMA_BASE = 0x20000;
const EBUSY = -16;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version: string): Env {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: x86_64_e820(1024 * MiB),
    cma: [{ name: 'reserved', base: CMA_BASE * PAGE_SIZE, size: 4 * MiB }],
  });
  k.activate();
  const task = create_user_task('app');
  const th = new SchedThread(0, 'app', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, th) };
}

function pfnAt(env: Env, addr: number): number {
  return pte_pfn(ptep_get(walkToLeaf(env.task.mm!, addr)!.ptr));
}

function write(env: Env, addr: number, b: number): void {
  expect(env.run(cpu_user_write(env.task, addr, new Uint8Array([b]))).kind).toBe('ok');
}

/**
 * Anonymous pages at A, A + 4 KiB, ... backed by CMA frames: `span` frames of the area
 * are allocated and released, and each of the `n` faults takes the last one released
 * (so with span 513 the first page is frame 0x20200, in the second pageblock, and the
 * second is 0x201ff, in the first).
 */
function anonInCma(env: Env, n: number, span = n): number[] {
  env.run(
    vm_mmap_pgoff(
      env.task.mm!,
      null,
      A,
      (n + 1) * PAGE_SIZE,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      0,
    ),
  );
  write(env, A + n * PAGE_SIZE, 1); // page tables first
  const c = cma_find('reserved')!;
  const p = env.run(cma_alloc(c, span, 0, true))!;
  expect(env.run(cma_release(c, p, span))).toBe(true);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    write(env, A + i * PAGE_SIZE, 0x40 + i);
    out.push(pfnAt(env, A + i * PAGE_SIZE));
    expect(is_migrate_cma_page(out[i]!)).toBe(true);
  }
  return out;
}

function newPages(n: number): page_array {
  return new Array<page | null>(n).fill(null);
}

function modelLines(env: Env, from: number): string[] {
  return env.k.log
    .slice(from)
    .filter((l) => l.text.startsWith('pfnsim:'))
    .map((l) => {
      expect(l.level).toBe(KERN_DEBUG);
      return l.text;
    });
}

/* ------------------------------------------------------------------------------------ */

describe('cma_alloc', () => {
  it('R-GUP-8 (6.18): a pin_user_pages_fast pin without FOLL_LONGTERM keeps the page in the area; cma_alloc fails and the record and a pfnsim: line name the pin', () => {
    const env = boot('6.18');
    const [p] = anonInCma(env, 1);
    const pages = newPages(1);
    expect(env.run(pin_user_pages_fast(A, 1, FOLL_WRITE, pages))).toBe(1);
    expect(pages[0]).toBe(p); // not migrated: no FOLL_LONGTERM
    const c = cma_find('reserved')!;
    const from = env.k.log.length;
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBeNull();
    const f = cma_last_failure(c)!;
    expect(f.ret).toBe(EBUSY);
    expect(f.blocker).toMatchObject({ pfn: p, kind: 'anon', maybe_dma_pinned: true });
    expect(f.pins).toHaveLength(1);
    expect(f.pins[0]).toMatchObject({
      folio: p,
      comm: 'app',
      pid: env.task.pid,
      entry: 'pin_user_pages_fast',
      count: 1,
    });
    expect(f.pins[0]!.call_path[0]!.fn).toBe('try_grab_folio_fast');
    expect(modelLines(env, from)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^pfnsim: cma: reserved: range \\[0x20000-0x20400\\) busy at pfn 0x${p!.toString(16)}: pinned by app\\(${env.task.pid}\\) via pin_user_pages_fast\\(FOLL_WRITE\\), 1 pin, t=`,
        ),
      ),
    ]);
    // The kernel's own lines say nothing about the pin (model output: the pfnsim: lines
    // and the pfnsan cma-pin report, which names it).
    const sanLines = new Set(pfnsan_reports().flatMap((r) => r.text));
    const kernelLines = env.k.log
      .slice(from)
      .filter((l) => !l.text.startsWith('pfnsim:') && !sanLines.has(l.text))
      .map((l) => l.text);
    expect(kernelLines).toContain(
      'cma: __cma_alloc: reserved: alloc failed, req-size: 1024 pages, ret: -16',
    );
    expect(kernelLines.some((t) => t.includes('pin_user_pages') || t.includes('app('))).toBe(false);
    // The record is a snapshot: it survives the unpin, and then the area can be allocated.
    unpin_user_pages(pages, 1);
    expect(gup_live_pin_records()).toEqual([]);
    expect(f.pins[0]!.count).toBe(1);
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBe(CMA_BASE);
  });

  it('R-GUP-8 (6.18): with FOLL_LONGTERM the same page is migrated out first and cma_alloc succeeds', () => {
    const env = boot('6.18');
    const [p] = anonInCma(env, 1);
    const pages = newPages(1);
    expect(env.run(pin_user_pages_fast(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
    expect(pages[0]).not.toBe(p);
    expect(env.run(cma_alloc(cma_find('reserved')!, 1024, 0, false))).toBe(CMA_BASE);
    unpin_user_pages(pages, 1);
  });

  it('R-GUP-8 (6.18): a FOLL_LONGTERM pin still inside its GUP call fails cma_alloc without cma-pin; the call then migrates the page out and cma_alloc succeeds', () => {
    const env = boot('6.18');
    const [p] = anonInCma(env, 1);
    const pages = newPages(1);
    const r = env.k.runner();
    r.spawn('gup', pin_user_pages_fast(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages), env.task);
    r.spawn('cma', cma_alloc(cma_find('reserved')!, 1024, 0, true));
    // GUP-fast refuses the CMA page; the slow path pins it, then checks and migrates.
    while (!gup_live_pin_records().some((x) => x.folio === p)) expect(r.step(0)).toBe(true);
    expect(gup_live_pin_records().find((x) => x.folio === p)!.inflight).toBe(true);
    const from = env.k.log.length;
    while (!r.threads[1]!.done) expect(r.step(1)).toBe(true);
    expect(r.threads[1]!.result).toBeNull();
    const c = cma_find('reserved')!;
    expect(cma_last_failure(c)!.pins.map((x) => [x.folio, x.inflight])).toEqual([[p, true]]);
    expect(modelLines(env, from).join('\n')).toContain(
      '(in flight: the FOLL_LONGTERM call has not returned)',
    );
    expect(pfnsan_reports().map((x) => x.code)).not.toContain('cma-pin');
    while (!r.threads[0]!.done) expect(r.step(0)).toBe(true);
    expect(r.threads[0]!.result).toBe(1);
    expect(pages[0]).not.toBe(p);
    expect(gup_live_pin_records().map((x) => [x.folio, x.inflight])).toEqual([[pages[0], false]]);
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBe(CMA_BASE);
    unpin_user_pages(pages, 1);
  });

  it('R-GUP-8 (6.18): a pin stays in flight while another thread of the same process completes its own FOLL_LONGTERM call', () => {
    const env = boot('6.18');
    const [p0, p1] = anonInCma(env, 2);
    const a = newPages(1);
    const b = newPages(1);
    const r = env.k.runner();
    r.spawn('gup-a', pin_user_pages_fast(A, 1, FOLL_WRITE | FOLL_LONGTERM, a), env.task);
    r.spawn(
      'gup-b',
      pin_user_pages_fast(A + PAGE_SIZE, 1, FOLL_WRITE | FOLL_LONGTERM, b),
      env.task,
    );
    // Thread a pins its CMA page and stops before checking it (no lock held then).
    while (r.threads[0]!.pending?.what !== 'folio_isolate_lru') expect(r.step(0)).toBe(true);
    const rec = (pfn: number) => gup_live_pin_records().find((x) => x.folio === pfn);
    expect(rec(p0)!.inflight).toBe(true);
    // Thread b, the same task, migrates its page and returns with the pin.
    while (!r.threads[1]!.done) expect(r.step(1)).toBe(true);
    expect(r.threads[1]!.result).toBe(1);
    expect(b[0]).not.toBe(p1);
    expect(rec(b[0]!)!.inflight).toBe(false);
    expect(rec(p0)!.inflight).toBe(true);
    while (!r.threads[0]!.done) expect(r.step(0)).toBe(true);
    expect(rec(a[0]!)!.inflight).toBe(false);
    unpin_user_pages(a, 1);
    unpin_user_pages(b, 1);
  });

  it('R-GUP-8 (6.18): every busy range names its own pin; the failure lists both pins once', () => {
    const env = boot('6.18');
    const [p0, p1] = anonInCma(env, 2, 513);
    expect([p0, p1]).toEqual([CMA_BASE + 512, CMA_BASE + 511]);
    const pages = newPages(2);
    expect(env.run(pin_user_pages_fast(A, 2, FOLL_WRITE, pages))).toBe(2);
    const c = cma_find('reserved')!;
    const from = env.k.log.length;
    // Two 2 MiB-aligned ranges of 512 frames: each holds one pinned page.
    expect(env.run(cma_alloc(c, 512, 9, false))).toBeNull();
    const f = cma_last_failure(c)!;
    expect(f.attempts.map((a) => [a.start_pfn, a.blocker!.pfn])).toEqual([
      [CMA_BASE, CMA_BASE + 511],
      [CMA_BASE + 512, CMA_BASE + 512],
    ]);
    expect(f.pins.map((r) => r.folio)).toEqual([CMA_BASE + 512, CMA_BASE + 511]);
    const lines = modelLines(env, from);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('range [0x20000-0x20200) busy at pfn 0x201ff: pinned by app(');
    expect(lines[1]).toContain('range [0x20200-0x20400) busy at pfn 0x20200: pinned by app(');
    unpin_user_pages(pages, 2);
  });

  it('R-GUP-8 (6.18): a frame held by a plain reference (FOLL_GET), not a pin, has no pins; the pfnsim: line gives the reason', () => {
    const env = boot('6.18');
    const [p] = anonInCma(env, 1);
    const pages = newPages(1);
    expect(env.run(get_user_pages_fast(A, 1, FOLL_WRITE, pages))).toBe(1);
    const c = cma_find('reserved')!;
    const from = env.k.log.length;
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBeNull();
    const f = cma_last_failure(c)!;
    expect(f.blocker!.pfn).toBe(p);
    expect(f.blocker!.pins).toEqual([]);
    expect(f.pins).toEqual([]);
    expect(modelLines(env, from)).toEqual([
      `pfnsim: cma: reserved: range [0x20000-0x20400) busy at pfn 0x${p!.toString(16)}: ${f.blocker!.reason}`,
    ]);
    folio_put(page_folio(pages[0]!));
  });
});

describe('alloc_contig_range', () => {
  it('R-GUP-8 (5.10): the recorded blocker carries the pins of its folio (copies, oldest first)', () => {
    const env = boot('5.10');
    const [p] = anonInCma(env, 1);
    const a = newPages(1);
    const b = newPages(1);
    expect(env.run(pin_user_pages_fast(A, 1, FOLL_WRITE, a))).toBe(1);
    expect(env.run(pin_user_pages_fast(A, 1, 0, b))).toBe(1);
    expect(env.run(alloc_contig_range(CMA_BASE, CMA_BASE + 1024, MIGRATE_CMA, GFP_KERNEL))).toBe(
      EBUSY,
    );
    const blk = alloc_contig_last_blocker()!;
    expect(blk.pfn).toBe(p);
    expect(blk.pins.map((r) => [r.entry, r.gup_flags & FOLL_WRITE])).toEqual([
      ['pin_user_pages_fast', FOLL_WRITE],
      ['pin_user_pages_fast', 0],
    ]);
    unpin_user_pages(a, 1);
    unpin_user_pages(b, 1);
    expect(blk.pins).toHaveLength(2);
    expect(gup_live_pin_records()).toEqual([]);
  });
});
