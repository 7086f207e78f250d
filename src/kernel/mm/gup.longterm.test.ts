/**
 * Tests of FOLL_LONGTERM (mm/gup.c: __gup_longterm_locked and the check/migrate helpers),
 * R-GUP-8 and O-11: folios that may not stay pinned (CMA and isolated pageblocks,
 * ZONE_MOVABLE, device-coherent memory) are migrated out before the pin, per version;
 * migration failure leaves nothing pinned (-ENOMEM, -EBUSY), except on v5.7-v5.12, where
 * the pin is taken in place.
 *
 * Machine: 1 GiB of RAM with a 4 MiB CMA area 'reserved' at 0x20000000 (frames
 * 0x20000-0x203ff). A page lands in the area by the R-REV-5 trick of cma.test.ts:
 * cma_alloc() a frame, cma_release() it (order-0 CMA frees go on the MOVABLE list, LIFO),
 * and the next anonymous fault takes that very frame. Anonymous memory at 0x10000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { folio, page } from '../include/linux/mm_types.js';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  folio_is_longterm_pinnable,
  folio_maybe_dma_pinned,
  mark_device_coherent,
} from '../include/linux/mm.js';
import { folio_get, folio_put, page_ref_count } from '../include/linux/page_ref.js';
import { PAGE_SIZE, pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf, zero_pfn } from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { MIGRATE_ISOLATE, phys_read } from './sparse.js';
import {
  is_migrate_cma_page,
  page_is_free,
  page_zonenum,
  set_pageblock_migratetype,
  ZONE_MOVABLE,
} from './page_alloc.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import { createExt4File } from '../fs/ext4/file.js';
import { cma_alloc, cma_find, cma_release } from './cma.js';
import { pin_user_pages, pin_user_pages_fast, unpin_user_pages, type page_array } from './gup.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const CMA_BASE = 0x20000;
const ENOMEM = -12;
const EBUSY = -16;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version: string, movable_start_pfn?: number): Env {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: x86_64_e820((movable_start_pfn !== undefined ? 8192 : 1024) * MiB),
    cma: [{ name: 'reserved', base: CMA_BASE * PAGE_SIZE, size: 4 * MiB }],
    ...(movable_start_pfn !== undefined ? { movable_start_pfn } : {}),
  });
  const task = create_user_task('lt');
  const th = new SchedThread(0, 'lt', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, th) };
}

function mmapAnon(env: Env, addr: number, pages: number, prot = PROT_READ | PROT_WRITE): void {
  env.run(
    vm_mmap_pgoff(
      env.task.mm!,
      null,
      addr,
      pages * PAGE_SIZE,
      prot,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      0,
    ),
  );
}

function pfnAt(env: Env, addr: number): number | null {
  const l = walkToLeaf(env.task.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : pte_pfn(v);
}

function write(env: Env, addr: number, fill: number): void {
  expect(env.run(cpu_user_write(env.task, addr, new Uint8Array(PAGE_SIZE).fill(fill))).kind).toBe(
    'ok',
  );
}

function locked<T>(env: Env, op: Op<T>): T {
  const mm = env.task.mm!;
  return env.run(
    (function* () {
      yield* mmap_read_lock(mm);
      const r = yield* op;
      yield* mmap_read_unlock(mm);
      return r;
    })(),
  );
}

function newPages(n: number): page_array {
  return new Array<page | null>(n).fill(null);
}

/** Anonymous memory at A whose page is frame 0x20000 of the CMA area (filled with 0xc3). */
function anonInCma(env: Env): number {
  mmapAnon(env, A, 2);
  write(env, A + PAGE_SIZE, 1); // page tables first, so their allocation cannot take the frame
  const c = cma_find('reserved')!;
  const p = env.run(cma_alloc(c, 1, 0, true))!;
  expect(env.run(cma_release(c, p, 1))).toBe(true);
  write(env, A, 0xc3);
  expect(pfnAt(env, A)).toBe(p);
  expect(is_migrate_cma_page(p)).toBe(true);
  return p;
}

describe('__gup_longterm_locked', () => {
  for (const v of ['6.18', '6.1', '5.15', '5.10']) {
    it(`R-GUP-8, O-11 (${v}): a long-term pin of a page in a CMA area migrates it out first; the PFN changes and cma_alloc over the area then succeeds`, () => {
      const env = boot(v);
      const p = anonInCma(env);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
      const q = pages[0]!;
      expect(q).not.toBe(p);
      expect(pfnAt(env, A)).toBe(q);
      expect(is_migrate_cma_page(q)).toBe(false);
      expect(folio_is_longterm_pinnable(q as number as folio)).toBe(true);
      expect(page_ref_count(q)).toBe(1 + GUP_PIN_COUNTING_BIAS);
      expect(phys_read(q * PAGE_SIZE, 2)).toEqual(new Uint8Array([0xc3, 0xc3]));
      expect(page_is_free(p)).toBe(true);
      const c = cma_find('reserved')!;
      expect(env.run(cma_alloc(c, 1024, 0, false))).toBe(CMA_BASE);
      unpin_user_pages(pages, 1);
    });
  }

  for (const v of ['6.18', '6.1', '5.15']) {
    it(`R-GUP-8 (${v}): when migration is impossible (an extra reference) the pin fails with -ENOMEM and nothing is left pinned`, () => {
      const env = boot(v);
      const p = anonInCma(env);
      folio_get(p as folio); // someone else holds a reference: migration cannot proceed
      const before = page_ref_count(p as page);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(ENOMEM);
      expect(page_ref_count(p as page)).toBe(before);
      expect(folio_maybe_dma_pinned(p as folio)).toBe(false);
      expect(pfnAt(env, A)).toBe(p);
      // v6.2+ clears the entries it unpinned; v5.13-v6.1 leave the stale pointers.
      expect(pages[0]).toBe(v === '6.18' ? null : p);
      folio_put(p as folio);
    });
  }

  it('R-GUP-8 history (v5.10): when migration fails the range is pinned again without migrating: the pin stays in the CMA area and blocks cma_alloc', () => {
    const env = boot('5.10');
    const p = anonInCma(env);
    folio_get(p as folio);
    const before = page_ref_count(p as page);
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
    expect(pages[0]).toBe(p);
    expect(page_ref_count(p as page)).toBe(before + GUP_PIN_COUNTING_BIAS);
    expect(env.run(cma_alloc(cma_find('reserved')!, 1024, 0, true))).toBeNull();
    unpin_user_pages(pages, 1);
    folio_put(p as folio);
  });

  it('R-GUP-7, R-GUP-8: pin_user_pages_fast(FOLL_LONGTERM) does not take a CMA page on the fast path; the slow path migrates it', () => {
    for (const v of ['6.18', '5.10']) {
      const env = boot(v);
      const p = anonInCma(env);
      const pages = newPages(1);
      expect(env.run(pin_user_pages_fast(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
      expect(pages[0]).not.toBe(p);
      expect(is_migrate_cma_page(pages[0]!)).toBe(false);
      unpin_user_pages(pages, 1);
    }
  });

  it('R-GUP-8: ZONE_MOVABLE pages are migrated out on v5.13+ (v6.18, v5.15) but pinned in place on v5.10 (CMA only)', () => {
    for (const [v, moves] of [
      ['6.18', true],
      ['5.15', true],
      ['5.10', false],
    ] as const) {
      // 8 GiB of RAM; ZONE_MOVABLE from 6 GiB (pfn 0x180000) up.
      const env = boot(v, 0x180000);
      mmapAnon(env, A, 1);
      write(env, A, 7);
      const p = pfnAt(env, A)!;
      expect(page_zonenum(p)).toBe(ZONE_MOVABLE);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
      expect(pages[0] !== p).toBe(moves);
      if (moves) expect(page_zonenum(pages[0]!)).not.toBe(ZONE_MOVABLE);
      unpin_user_pages(pages, 1);
    }
  });

  it('R-GUP-8: a page in a MIGRATE_ISOLATE pageblock is migrated out on v6.1+ (1c563432588d), pinned in place on v5.15', () => {
    for (const [v, moves] of [
      ['6.18', true],
      ['6.1', true],
      ['5.15', false],
    ] as const) {
      const env = boot(v);
      mmapAnon(env, A, 1);
      write(env, A, 7);
      const p = pfnAt(env, A)!;
      set_pageblock_migratetype(p, MIGRATE_ISOLATE);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
      expect(pages[0] !== p).toBe(moves);
      unpin_user_pages(pages, 1);
    }
  });

  it('R-GUP-8: device-coherent memory is migrated to system RAM (v6.0+); if that fails the pin is -EBUSY with nothing pinned', () => {
    let env = boot('6.18');
    mmapAnon(env, A, 1);
    write(env, A, 7);
    let p = pfnAt(env, A)!;
    mark_device_coherent(p);
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
    expect(pages[0]).not.toBe(p);
    expect(pfnAt(env, A)).toBe(pages[0]);
    unpin_user_pages(pages, 1);

    env = boot('6.18');
    mmapAnon(env, A, 1);
    write(env, A, 7);
    p = pfnAt(env, A)!;
    mark_device_coherent(p);
    folio_get(p as folio);
    const before = page_ref_count(p as page);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, newPages(1)))).toBe(EBUSY);
    expect(page_ref_count(p as page)).toBe(before);
    expect(folio_maybe_dma_pinned(p as folio)).toBe(false);
    folio_put(p as folio);
  });

  it('R-GUP-8, O-11: a read-only long-term pin of untouched private memory: v6.18 unshares the zero page into a new anonymous page; v6.1 pins the zero page (it passes the long-term check)', () => {
    for (const v of ['6.18', '6.1']) {
      const env = boot(v);
      mmapAnon(env, A, 1, PROT_READ | PROT_WRITE);
      // A read fault maps the zero page first.
      env.run(
        (function* () {
          yield* mmap_read_lock(env.task.mm!);
          yield* mmap_read_unlock(env.task.mm!);
        })(),
      );
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_LONGTERM, pages))).toBe(1);
      if (v === '6.18') {
        expect(pages[0]).not.toBe(zero_pfn());
        expect(pfnAt(env, A)).toBe(pages[0]);
      } else {
        expect(pages[0]).toBe(zero_pfn());
        expect(folio_is_longterm_pinnable(zero_pfn() as folio)).toBe(true);
      }
      unpin_user_pages(pages, 1);
    }
  });

  it('O-11: a read-only long-term pin of a private file mapping COW-unshares the page-cache page (v6.2+): the PFN changes; v6.1 pins the cache page', () => {
    for (const v of ['6.18', '6.1']) {
      const env = boot(v);
      const f = createExt4File('/lib', new Uint8Array(PAGE_SIZE).fill(5));
      env.run(vm_mmap_pgoff(env.task.mm!, f, A, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED, 0));
      const cache = locked(env, pin_user_pages(A, 1, 0, newPages(1)));
      expect(cache).toBe(1);
      const cachePfn = pfnAt(env, A)!;
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_LONGTERM, pages))).toBe(1);
      if (v === '6.18') {
        expect(pages[0]).not.toBe(cachePfn);
        expect(phys_read(pages[0]! * PAGE_SIZE, 1)[0]).toBe(5);
      } else {
        expect(pages[0]).toBe(cachePfn);
      }
      unpin_user_pages(pages, 1);
    }
  });
});
