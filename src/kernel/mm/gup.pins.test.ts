/**
 * Tests of the model's pin provenance (gup.ts, "Pin provenance"): every live FOLL_PIN pin
 * is recorded with who took it, through which GUP entry point, with which flags, from
 * where and when; the record follows the kernel's pin accounting exactly (R-GUP-5: a pin
 * adds GUP_PIN_COUNTING_BIAS to a small folio's refcount or 1 to a large folio's
 * _pincount; the zero page is not pinned from v6.5). Also the *_locked entry points of
 * v5.7–v5.17 that mm/frame_vector.c used (R-FV-1).
 *
 * Machine: 1 GiB of RAM. The task 'app' maps anonymous memory at 0x10000000 and a THP
 * range at 0x40000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_kthread, create_user_task, exit_mm, fork_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { folio, page } from '../include/linux/mm_types.js';
import {
  FOLL_FORCE,
  FOLL_GET,
  FOLL_LONGTERM,
  FOLL_PIN,
  FOLL_TOUCH,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
} from '../include/linux/mm.js';
import { folio_pincount } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { PAGE_SIZE, pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf, zero_pfn } from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import {
  foll_flags_str,
  get_user_pages_locked,
  gup_live_pin_records,
  gup_pin_record_str,
  page_pin_records,
  pin_user_pages,
  pin_user_pages_fast,
  pin_user_pages_locked,
  unpin_user_page,
  unpin_user_pages,
  type page_array,
} from './gup.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const THP = 0x40000000;
const EINVAL = -22;

interface Env {
  k: Kernel;
  task: task_struct;
  th: SchedThread;
  run<T>(op: Op<T>, as?: SchedThread): T;
}

function boot(version: string): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(1024 * MiB) });
  k.activate();
  const task = create_user_task('app');
  const th = new SchedThread(0, 'app', (function* () {})(), task);
  return { k, task, th, run: (op, as = th) => k.run(op, as) };
}

function threadOf(t: task_struct): SchedThread {
  return new SchedThread(1, t.comm, (function* () {})(), t);
}

function mmap(env: Env, addr: number, pages: number, flags = MAP_PRIVATE | MAP_ANONYMOUS): void {
  env.run(
    vm_mmap_pgoff(
      env.task.mm!,
      null,
      addr,
      pages * PAGE_SIZE,
      PROT_READ | PROT_WRITE,
      flags | MAP_FIXED,
      0,
    ),
  );
}

function write(env: Env, addr: number, b: number): void {
  expect(env.run(cpu_user_write(env.task, addr, new Uint8Array([b]))).kind).toBe('ok');
}

function pfnAt(env: Env, addr: number, t = env.task): number {
  const l = walkToLeaf(t.mm!, addr)!;
  const off = l.level === 'pte' ? 0 : Math.floor((addr % (2 * MiB)) / PAGE_SIZE);
  return pte_pfn(ptep_get(l.ptr)) + off;
}

/** op with mm's mmap_lock held for read, run as `as`. */
function locked<T>(env: Env, op: Op<T>, t = env.task): T {
  const mm = t.mm!;
  return env.run(
    (function* () {
      yield* mmap_read_lock(mm);
      const r = yield* op;
      yield* mmap_read_unlock(mm);
      return r;
    })(),
    t === env.task ? env.th : threadOf(t),
  );
}

/** Runs fn as task t (current == t). */
function as(env: Env, t: task_struct, fn: () => void): void {
  env.run(
    (function* (): Op<void> {
      fn();
    })(),
    t === env.task ? env.th : threadOf(t),
  );
}

function newPages(n: number): page_array {
  return new Array<page | null>(n).fill(null);
}

function warned(env: Env): boolean {
  return env.k.log.some((l) => l.text.includes('WARNING:'));
}

/* ------------------------------------------------------------------------------------ */

describe('try_grab_folio', () => {
  it('R-GUP-5: a slow-path pin is recorded with the task, entry point, flags, call path and time; unpinning removes it', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A, 1);
    const p = pfnAt(env, A);
    const pages = newPages(1);
    const t0 = env.k.ktime_ns;
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    expect(page_ref_count(p as page)).toBe(1 + GUP_PIN_COUNTING_BIAS);
    const recs = page_pin_records(p);
    expect(recs).toHaveLength(1);
    const r = recs[0]!;
    expect(r).toMatchObject({
      folio: p,
      nr_pages: 1,
      count: 1,
      comm: 'app',
      pid: env.task.pid,
      entry: 'pin_user_pages',
      caller: null, // called from the test, not from a modelled kernel function
    });
    expect(r.gup_flags & (FOLL_PIN | FOLL_WRITE)).toBe(FOLL_PIN | FOLL_WRITE);
    expect(r.call_path[0]).toEqual({ fn: 'try_grab_folio', file: 'mm/gup.c' });
    expect(r.call_path.map((f) => f.fn)).toContain('__get_user_pages');
    expect(r.time_ns).toBeGreaterThan(t0);
    expect(gup_pin_record_str(r)).toMatch(
      new RegExp(
        `^app\\(${env.task.pid}\\) via pin_user_pages\\(FOLL_WRITE\\), 1 pin, t=\\d+\\.\\d{6}s$`,
      ),
    );
    unpin_user_pages(pages, 1);
    expect(page_ref_count(p as page)).toBe(1);
    expect(page_pin_records(p)).toEqual([]);
    expect(gup_live_pin_records()).toEqual([]);
  });

  it('R-GUP-5: a read-only pin of the zero page is a recorded pin before v6.5 and nothing from v6.5 (c8070b787519)', () => {
    for (const [v, pinned] of [
      ['6.1', true],
      ['6.18', false],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, 0, pages))).toBe(1);
      expect(pages[0]).toBe(zero_pfn());
      expect(page_pin_records(zero_pfn()).length).toBe(pinned ? 1 : 0);
      unpin_user_pages(pages, 1);
      expect(gup_live_pin_records()).toEqual([]);
    }
  });

  it('R-GUP-5: pins of a large folio are recorded against the folio and found from any of its pages', () => {
    const env = boot('6.18');
    mmap(env, THP, 512);
    write(env, THP, 1);
    const head = pfnAt(env, THP);
    const pages = newPages(4);
    expect(locked(env, pin_user_pages(THP + 8 * PAGE_SIZE, 4, FOLL_WRITE, pages))).toBe(4);
    expect(folio_pincount(head as folio)).toBe(4);
    const recs = page_pin_records(head + 100);
    expect(recs.reduce((n, r) => n + r.count, 0)).toBe(4);
    expect(recs.every((r) => r.folio === head && r.nr_pages === 512)).toBe(true);
    unpin_user_page(pages[0]!);
    expect(page_pin_records(head).reduce((n, r) => n + r.count, 0)).toBe(3);
    unpin_user_pages(pages.slice(1), 3);
    expect(gup_live_pin_records()).toEqual([]);
  });
});

describe('try_grab_folio_fast', () => {
  it('R-GUP-5, R-GUP-7: a GUP-fast pin is recorded through try_grab_folio_fast with pin_user_pages_fast as the entry point', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    write(env, A, 1);
    write(env, A + PAGE_SIZE, 2);
    const pages = newPages(2);
    expect(env.run(pin_user_pages_fast(A, 2, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(2);
    const recs = gup_live_pin_records();
    expect(recs.map((r) => r.folio)).toEqual([pages[0], pages[1]]);
    for (const r of recs) {
      expect(r.entry).toBe('pin_user_pages_fast');
      expect(r.call_path[0]!.fn).toBe('try_grab_folio_fast');
      expect(r.call_path.map((f) => f.fn)).toContain('gup_fast_pte_range');
    }
    expect(gup_pin_record_str(recs[0]!)).toContain(
      'via pin_user_pages_fast(FOLL_WRITE|FOLL_LONGTERM)',
    );
    unpin_user_pages(pages, 2);
    expect(gup_live_pin_records()).toEqual([]);
  });

  it('R-GUP-5: a GUP-fast pin of a PMD-mapped THP is one record of several pins', () => {
    const env = boot('6.18');
    mmap(env, THP, 512);
    write(env, THP, 1);
    const head = pfnAt(env, THP);
    const pages = newPages(3);
    expect(env.run(pin_user_pages_fast(THP, 3, FOLL_WRITE, pages))).toBe(3);
    const recs = page_pin_records(head);
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ count: 3, folio: head, entry: 'pin_user_pages_fast' });
    expect(recs[0]!.call_path[0]!.fn).toBe('try_grab_folio_fast');
    unpin_user_pages(pages, 3);
    expect(gup_live_pin_records()).toEqual([]);
  });
});

describe('gup_put_folio', () => {
  it("R-GUP-5: an unpin drops the unpinning task's own newest pin first, then anyone's newest", () => {
    const env = boot('6.18');
    mmap(env, A, 1, MAP_SHARED | MAP_ANONYMOUS);
    write(env, A, 1);
    const p = pfnAt(env, A);
    const child = env.run(fork_task(env.task)) as task_struct;
    const pp = newPages(1);
    const cp = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pp))).toBe(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, cp), child)).toBe(1);
    expect(cp[0]).toBe(p); // a shared mapping: the same page
    expect(page_pin_records(p).map((r) => r.pid)).toEqual([env.task.pid, child.pid]);
    // The parent unpins: its own record goes although the child's is newer.
    as(env, env.task, () => unpin_user_pages(pp, 1));
    expect(page_pin_records(p).map((r) => r.pid)).toEqual([child.pid]);
    // A kernel thread unpins the child's buffer (a teardown worker): the newest goes.
    const kth = create_kthread('kworker/0:1');
    as(env, kth, () => unpin_user_pages(cp, 1));
    expect(page_pin_records(p)).toEqual([]);
    expect(page_ref_count(p as page)).toBe(3); // two mappings + the page cache of shmem
    env.run(exit_mm(child), threadOf(child));
  });
});

describe('pin_user_pages_locked', () => {
  it('R-FV-1: exists v5.8–v5.17 only (model error otherwise)', () => {
    for (const v of ['5.7', '6.1']) {
      const env = boot(v);
      mmap(env, A, 1);
      expect(() => locked(env, pin_user_pages_locked(A, 1, 0, newPages(1), { value: 1 }))).toThrow(
        /pin_user_pages_locked does not exist/,
      );
    }
  });

  it('R-FV-1 (5.10): FOLL_LONGTERM and FOLL_GET WARN and are -EINVAL; otherwise a FOLL_PIN|FOLL_TOUCH pin', () => {
    const env = boot('5.10');
    mmap(env, A, 1);
    write(env, A, 1);
    const pages = newPages(1);
    expect(locked(env, pin_user_pages_locked(A, 1, FOLL_LONGTERM, pages, { value: 1 }))).toBe(
      EINVAL,
    );
    expect(warned(env)).toBe(true);
    expect(locked(env, pin_user_pages_locked(A, 1, FOLL_GET, pages, { value: 1 }))).toBe(EINVAL);
    const lk = { value: 1 };
    expect(locked(env, pin_user_pages_locked(A, 1, FOLL_WRITE | FOLL_FORCE, pages, lk))).toBe(1);
    expect(lk.value).toBe(1);
    const [r] = page_pin_records(pages[0]!);
    expect(r!.entry).toBe('pin_user_pages_locked');
    expect(foll_flags_str(r!.gup_flags)).toBe('FOLL_WRITE|FOLL_FORCE|FOLL_TOUCH|FOLL_PIN');
    unpin_user_pages(pages, 1);
  });
});

describe('get_user_pages_locked', () => {
  it('R-FV-1: a reference per page (FOLL_GET|FOLL_TOUCH), no pin record; FOLL_PIN from the caller WARNs from v5.8; gone in v5.18', () => {
    const env = boot('5.10');
    mmap(env, A, 1);
    write(env, A, 1);
    const p = pfnAt(env, A) as page;
    const pages = newPages(1);
    expect(locked(env, get_user_pages_locked(A, 1, FOLL_WRITE, pages, { value: 1 }))).toBe(1);
    expect(pages[0]).toBe(p);
    expect(page_ref_count(p)).toBe(2);
    expect(gup_live_pin_records()).toEqual([]);
    expect(locked(env, get_user_pages_locked(A, 1, FOLL_PIN, pages, { value: 1 }))).toBe(EINVAL);
    expect(warned(env)).toBe(true);
    const env61 = boot('6.1');
    mmap(env61, A, 1);
    expect(() =>
      locked(env61, get_user_pages_locked(A, 1, FOLL_TOUCH, pages, { value: 1 })),
    ).toThrow(/removed in v5\.18/);
  });
});
