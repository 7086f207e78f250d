/**
 * Tests of drivers/media/common/videobuf2/frame_vector.c (v5.12+), R-FV-1's later eras:
 * pin_user_pages_fast(FOLL_LONGTERM) with the follow_pfn fallback (v5.12–v6.0;
 * unsafe_follow_pfn in v5.13), no fallback and a WARN_ONCE (v6.1), the write argument
 * without FOLL_FORCE (v6.2), no WARN (v6.6+); with R-GUP-5 (a pin adds
 * GUP_PIN_COUNTING_BIAS = 1024 to a small folio's refcount), R-GUP-8 (FOLL_LONGTERM moves
 * USERPTR pages out of the CMA area before pinning, so cma_alloc succeeds) and R-REV-5
 * (fallback PFNs go stale when the driver moves its buffer; from v6.1 the mapping is
 * refused instead).
 *
 * Machine: 1 GiB of RAM, a 4 MiB CMA area 'reserved' at 0x20000000 (frames 0x20000-
 * 0x203ff) and an 8-page MMIO window at 0xfe000000 (pfns 0xfe000-0xfe007, no struct
 * page). The task 'app' maps anonymous memory at 0x10000000 and drivers at 0x30000000; a
 * second task 'victim' maps anonymous memory at 0x50000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../../../sched/index.js';
import { Kernel } from '../../../../kernel/kernel.js';
import { KERNEL_VERSION } from '../../../../version.js';
import { start_kernel, x86_64_e820 } from '../../../../init/main.js';
import { create_user_task } from '../../../../kernel/fork.js';
import type { task_struct } from '../../../../include/linux/sched.js';
import type {
  file,
  folio,
  page,
  vm_area_struct,
  vm_fault,
  vm_operations_struct,
} from '../../../../include/linux/mm_types.js';
import {
  FOLL_FORCE,
  FOLL_LONGTERM,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
} from '../../../../include/linux/mm.js';
import { folio_test_anon } from '../../../../include/linux/page-flags.js';
import { page_ref_count } from '../../../../include/linux/page_ref.js';
import { PAGE_SIZE, pte_pfn } from '../../../../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../../../../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../../include/linux/mmap_lock.js';
import { alloc_file, new_inode, O_RDWR } from '../../../../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../../../../arch/x86/mm/fault.js';
import { KernelBug, test_taint, TAINT_USER, TAINT_WARN } from '../../../../kernel/panic.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../../../../mm/mmap.js';
import { remap_pfn_range, vm_flags_set, vmf_insert_pfn } from '../../../../mm/memory.pfnmap.js';
import { zap_vma_ptes } from '../../../../mm/memory.zap.js';
import { is_migrate_cma_page } from '../../../../mm/page_alloc.js';
import { phys_read, phys_write } from '../../../../mm/sparse.js';
import { cma_alloc, cma_find, cma_last_failure, cma_release } from '../../../../mm/cma.js';
import { gup_live_pin_records, page_pin_records } from '../../../../mm/gup.js';
import {
  frame_vector_count,
  frame_vector_create,
  frame_vector_destroy,
  frame_vector_pages,
  frame_vector_pfns,
  frame_vector_to_pages,
  get_vaddr_frames,
  put_vaddr_frames,
  type frame_vector,
} from './frame_vector.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const D = 0x30000000;
const V = 0x50000000;
const CMA_BASE = 0x20000;
const BAR = 0xfe000000;
const BAR_PFN = BAR / PAGE_SIZE;
const EFAULT = -14;
const EINVAL = -22;
const WARN_TEXT = 'get_vaddr_frames() cannot follow VM_IO mapping';
const SITE = 'drivers/media/common/videobuf2/frame_vector.c:get_vaddr_frames';

interface Env {
  k: Kernel;
  task: task_struct;
  th: SchedThread;
  run<T>(op: Op<T>, as?: SchedThread): T;
}

function boot(version: string, config: Record<string, boolean> = {}): Env {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [
      ...x86_64_e820(1024 * MiB),
      { start: BAR, end: BAR + 8 * PAGE_SIZE, kind: 'mmio', name: 'BAR0' },
    ],
    cma: [{ name: 'reserved', base: CMA_BASE * PAGE_SIZE, size: 4 * MiB }],
  });
  k.activate();
  const task = create_user_task('app');
  const th = new SchedThread(0, 'app', (function* () {})(), task);
  return { k, task, th, run: (op, as = th) => k.run(op, as) };
}

function threadOf(t: task_struct): SchedThread {
  return new SchedThread(1, t.comm, (function* () {})(), t);
}

function mmap(
  env: Env,
  addr: number,
  pages: number,
  prot: number,
  flags: number,
  f: file | null = null,
  pgoff = 0,
  t = env.task,
): number {
  return env.run(
    vm_mmap_pgoff(t.mm!, f, addr, pages * PAGE_SIZE, prot, flags | MAP_FIXED, pgoff),
    t === env.task ? env.th : threadOf(t),
  );
}

function write(env: Env, addr: number, b: number, t = env.task): void {
  const r = env.run(
    cpu_user_write(t, addr, new Uint8Array(PAGE_SIZE).fill(b)),
    t === env.task ? env.th : threadOf(t),
  );
  expect(r.kind).toBe('ok');
}

function read(env: Env, addr: number, t = env.task): Uint8Array {
  const r = env.run(cpu_user_read(t, addr, 4), t === env.task ? env.th : threadOf(t));
  expect(r.kind).toBe('ok');
  return (r as { data: Uint8Array }).data;
}

function pfnAt(env: Env, addr: number, t = env.task): number | null {
  const l = walkToLeaf(t.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : pte_pfn(v);
}

/** Each WARN report of the log as one string (from "cut here" to its end marker). */
function warnings(env: Env): string[] {
  const out: string[] = [];
  let cur: string[] | null = null;
  for (const l of env.k.log) {
    if (l.text.includes('[ cut here ]')) cur = [];
    if (cur) cur.push(l.text);
    if (cur && l.text.startsWith('---[ end trace')) {
      out.push(cur.join('\n'));
      cur = null;
    }
  }
  return out;
}

/** get_vaddr_frames with the argument list of the run's version (write from v6.2). */
function gvf(env: Env, start: number, n: number, vec: frame_vector, write = true): number {
  const withWrite = env.k.version.code >= KERNEL_VERSION(6, 2);
  return env.run(
    withWrite ? get_vaddr_frames(start, n, write, vec) : get_vaddr_frames(start, n, vec),
  );
}

function driverFile(name: string, mmapFn: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, vma) => mmapFn(vma),
  });
}

/** remap_pfn_range of the MMIO window at the mapping's offset (VM_IO|VM_PFNMAP). */
function barDriver(): file {
  return driverFile('bar', function* (vma) {
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    return yield* remap_pfn_range(
      vma,
      vma.vm_start,
      BAR_PFN + vma.vm_pgoff,
      vma.vm_end - vma.vm_start,
      vma.vm_page_prot,
    );
  });
}

/**
 * A driver with a DMA buffer from the CMA area mapped VM_IO|VM_PFNMAP by its fault
 * handler, which it can move (new buffer, zap_vma_ptes, release of the old frames).
 */
interface CmaDriver {
  file: file;
  buf: number;
  vma: vm_area_struct | null;
  move(): Op<void>;
}

function cmaDriver(env: Env, npages: number): CmaDriver {
  const c = cma_find('reserved')!;
  const d: CmaDriver = {
    file: null as unknown as file,
    buf: env.run(cma_alloc(c, npages, 0, false))!,
    vma: null,
    *move() {
      const nbuf = (yield* cma_alloc(c, npages, 0, false))!;
      const vma = d.vma!;
      yield* mmap_read_lock(vma.vm_mm);
      yield* zap_vma_ptes(vma, vma.vm_start, npages * PAGE_SIZE);
      yield* mmap_read_unlock(vma.vm_mm);
      const old = d.buf;
      d.buf = nbuf;
      expect(yield* cma_release(c, old as page, npages)).toBe(true);
    },
  };
  const ops: vm_operations_struct = {
    name: 'dmabuf_vm_ops',
    *fault(vmf: vm_fault): Op<number> {
      if (vmf.pgoff >= npages) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, d.buf + vmf.pgoff);
    },
  };
  d.file = driverFile('dmabuf', function* (vma) {
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    vma.vm_ops = ops;
    d.vma = vma;
    return 0;
  });
  return d;
}

/** n pages of anonymous memory at A (filled 0xc0 + i), all backed by CMA frames. */
function anonInCma(env: Env, n: number): number[] {
  mmap(env, A, n + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  write(env, A + n * PAGE_SIZE, 0xee); // page tables first, so they cannot take the frames
  const c = cma_find('reserved')!;
  const p = env.run(cma_alloc(c, n, 0, true))!;
  expect(env.run(cma_release(c, p, n))).toBe(true);
  const pfns: number[] = [];
  for (let i = 0; i < n; i++) {
    write(env, A + i * PAGE_SIZE, 0xc0 + i);
    pfns.push(pfnAt(env, A + i * PAGE_SIZE)!);
    expect(is_migrate_cma_page(pfns[i]!)).toBe(true);
  }
  return pfns;
}

const ALL = ['5.12', '5.13', '5.15', '6.1', '6.5', '6.6', '6.18'];
const FALLBACK = ['5.12', '5.13', '5.15'];
const NO_FALLBACK = ['6.1', '6.5', '6.6', '6.18'];
const WARNS = (v: string): boolean => v === '6.1' || v === '6.5';

/* ------------------------------------------------------------------------------------ */

describe('get_vaddr_frames', () => {
  for (const v of ALL) {
    it(`R-FV-1, R-GUP-5 (${v}): an anonymous range is pinned (pin_user_pages_fast, FOLL_LONGTERM): got_ref, pages, refcount + 1024 each; put unpins`, () => {
      const env = boot(v);
      mmap(env, A, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      write(env, A, 1);
      write(env, A + PAGE_SIZE, 2);
      const p = [pfnAt(env, A)!, pfnAt(env, A + PAGE_SIZE)!];
      const before = page_ref_count(p[0] as page);
      const vec = frame_vector_create(2)!;
      expect(gvf(env, A, 2, vec)).toBe(2);
      expect(vec).toMatchObject({ nr_frames: 2, got_ref: true, is_pfns: false });
      expect(vec.ptrs).toEqual(p);
      expect(page_ref_count(p[0] as page)).toBe(before + GUP_PIN_COUNTING_BIAS);
      const [r] = page_pin_records(p[1]!);
      expect(r).toMatchObject({ comm: 'app', entry: 'pin_user_pages_fast' });
      expect(r!.caller).toEqual({
        fn: 'get_vaddr_frames',
        file: 'drivers/media/common/videobuf2/frame_vector.c',
      });
      // The era's flags: FOLL_FORCE|FOLL_WRITE|FOLL_LONGTERM until v6.1, then
      // FOLL_LONGTERM|FOLL_WRITE for a write buffer.
      const force = !(v.startsWith('6.') && v !== '6.1');
      expect(r!.gup_flags & (FOLL_FORCE | FOLL_WRITE | FOLL_LONGTERM)).toBe(
        (force ? FOLL_FORCE : 0) | FOLL_WRITE | FOLL_LONGTERM,
      );
      put_vaddr_frames(vec);
      expect(vec).toMatchObject({ nr_frames: 0, got_ref: false });
      expect(page_ref_count(p[0] as page)).toBe(before);
      expect(gup_live_pin_records()).toEqual([]);
      frame_vector_destroy(vec);
      expect(warnings(env)).toEqual([]);
    });
  }

  for (const v of FALLBACK) {
    it(`R-FV-1 (${v}): a VM_IO|VM_PFNMAP range over MMIO: the pin fails and the follow_pfn fallback returns pfns (got_ref false, no references)`, () => {
      const env = boot(v);
      mmap(env, D, 4, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
      const vec = frame_vector_create(4)!;
      expect(gvf(env, D, 4, vec)).toBe(4);
      expect(vec).toMatchObject({ nr_frames: 4, got_ref: false, is_pfns: true });
      expect(vec.ptrs).toEqual([BAR_PFN, BAR_PFN + 1, BAR_PFN + 2, BAR_PFN + 3]);
      expect(gup_live_pin_records()).toEqual([]);
      // v5.13 went through unsafe_follow_pfn: one WARN and TAINT_USER (STRICT_FOLLOW_PFN=n).
      const unsafe = warnings(env).some((w) => w.includes('unsafe follow_pfn usage'));
      expect(unsafe).toBe(v === '5.13');
      expect(test_taint(TAINT_USER)).toBe(v === '5.13');
      put_vaddr_frames(vec);
      expect(vec.nr_frames).toBe(0);
    });
  }

  it('R-FV-1, R-LEG-3 (5.13): with CONFIG_STRICT_FOLLOW_PFN=y the fallback is refused: -EINVAL and the pr_info', () => {
    const env = boot('5.13', { CONFIG_STRICT_FOLLOW_PFN: true });
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
    const vec = frame_vector_create(2)!;
    expect(gvf(env, D, 2, vec)).toBe(EINVAL);
    expect(vec.nr_frames).toBe(0);
    expect(env.k.log.map((l) => l.text)).toContain(
      'unsafe follow_pfn usage rejected, see CONFIG_STRICT_FOLLOW_PFN',
    );
    expect(test_taint(TAINT_USER)).toBe(false);
  });

  it('R-FV-1 (5.15): the fallback goes on into the next VMA while it covers whole pages; short count at a normal VMA', () => {
    const env = boot('5.15');
    const bar = barDriver();
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 0);
    mmap(env, D + 2 * PAGE_SIZE, 1, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 2);
    mmap(env, D + 3 * PAGE_SIZE, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = frame_vector_create(4)!;
    expect(gvf(env, D, 4, vec)).toBe(3);
    expect(vec.ptrs.slice(0, 3)).toEqual([BAR_PFN, BAR_PFN + 1, BAR_PFN + 2]);
    expect(gup_live_pin_records()).toEqual([]);
  });

  for (const v of FALLBACK) {
    it(`R-FV-1 (${v}): the fallback's error on the first page is returned (-EINVAL, PTE not faulted in); no VMA is -EFAULT`, () => {
      const env = boot(v);
      const d = cmaDriver(env, 1);
      mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
      const vec = frame_vector_create(1)!;
      expect(gvf(env, D, 1, vec)).toBe(EINVAL);
      expect(vec.nr_frames).toBe(0);
      expect(gvf(env, V, 1, vec)).toBe(EFAULT);
    });
  }

  for (const v of NO_FALLBACK) {
    it(`R-FV-1 (${v}): a VM_IO|VM_PFNMAP range is refused (-EFAULT, nr_frames 0, got_ref true, nothing pinned)${WARNS(v) ? ' with the WARN_ONCE' : ', silently (735de5caf79e)'}`, () => {
      const env = boot(v);
      mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
      const vec = frame_vector_create(2)!;
      expect(gvf(env, D, 2, vec)).toBe(EFAULT);
      expect(vec).toMatchObject({ nr_frames: 0, got_ref: true, is_pfns: false });
      expect(vec.ptrs).toEqual([null, null]);
      expect(gup_live_pin_records()).toEqual([]);
      const w = warnings(env);
      if (WARNS(v)) {
        expect(w).toHaveLength(1);
        expect(w[0]).toContain(WARN_TEXT);
        expect(w[0]).toContain(`at ${SITE}`);
        expect(test_taint(TAINT_WARN)).toBe(true);
        // Once only.
        expect(gvf(env, D, 2, vec)).toBe(EFAULT);
        expect(warnings(env)).toHaveLength(1);
      } else {
        expect(w).toEqual([]);
        expect(test_taint(TAINT_WARN)).toBe(false);
      }
      put_vaddr_frames(vec);
      expect(vec).toMatchObject({ nr_frames: 0, got_ref: false });
    });
  }

  it('R-FV-1 (6.1 vs 6.5 vs 6.18): a read-only private buffer: FOLL_FORCE|FOLL_WRITE pins it (forced COW) until v6.1; from v6.2 write=true is refused and write=false pins', () => {
    // 6.1: FOLL_FORCE|FOLL_WRITE|FOLL_LONGTERM on a PROT_READ private mapping succeeds.
    let env = boot('6.1');
    mmap(env, A, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    let vec = frame_vector_create(1)!;
    expect(gvf(env, A, 1, vec)).toBe(1);
    expect(folio_test_anon(vec.ptrs[0]! as folio)).toBe(true);
    put_vaddr_frames(vec);
    for (const v of ['6.5', '6.18']) {
      env = boot(v);
      mmap(env, A, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
      vec = frame_vector_create(1)!;
      expect(gvf(env, A, 1, vec, true)).toBe(EFAULT);
      // v6.5 still WARNs, though this is no VM_IO mapping (why 735de5caf79e dropped it).
      expect(warnings(env).some((w) => w.includes(WARN_TEXT))).toBe(v === '6.5');
      expect(gvf(env, A, 1, vec, false)).toBe(1);
      expect(vec.got_ref).toBe(true);
      put_vaddr_frames(vec);
      expect(gup_live_pin_records()).toEqual([]);
    }
  });

  it('R-FV-1: more frames than the vector holds WARN once and are clipped (6.18)', () => {
    const env = boot('6.18');
    mmap(env, A, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = frame_vector_create(2)!;
    expect(gvf(env, A, 4, vec)).toBe(2);
    expect(warnings(env).some((w) => w.includes(`at ${SITE}`))).toBe(true);
    expect(gvf(env, A, 0, vec)).toBe(0);
    put_vaddr_frames(vec);
  });

  it('R-FV-1: the argument list and the location are checked against the version (model errors)', () => {
    let env = boot('6.18');
    const vec = frame_vector_create(1)!;
    expect(() => env.run(get_vaddr_frames(A, 1, vec))).toThrow(/\(start, nr_frames, write, vec\)/);
    env = boot('6.1');
    const vec1 = frame_vector_create(1)!;
    expect(() => env.run(get_vaddr_frames(A, 1, true, vec1))).toThrow(/before v6\.2/);
    env = boot('5.11');
    expect(() => frame_vector_create(1)).toThrow(/it is in mm\/frame_vector\.c until eb83b8e3e647/);
    expect(() => env.run(get_vaddr_frames(A, 1, vec1))).toThrow(
      /src\/kernel\/mm\/frame_vector\.ts/,
    );
  });
});

describe('put_vaddr_frames', () => {
  it('R-FV-1 (6.18): unpins exactly what was pinned, including a short count (2 of 4)', () => {
    const env = boot('6.18');
    mmap(env, A, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = frame_vector_create(4)!;
    expect(gvf(env, A, 4, vec)).toBe(2);
    expect(frame_vector_count(vec)).toBe(2);
    expect(gup_live_pin_records().reduce((n, r) => n + r.count, 0)).toBe(2);
    put_vaddr_frames(vec);
    expect(gup_live_pin_records()).toEqual([]);
  });
});

describe('frame_vector_to_pages', () => {
  it('R-FV-1 (5.15): fallback pfns without a struct page (MMIO) cannot become pages: -EINVAL', () => {
    const env = boot('5.15');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
    const vec = frame_vector_create(2)!;
    expect(gvf(env, D, 2, vec)).toBe(2);
    expect(frame_vector_to_pages(vec)).toBe(EINVAL);
    expect(frame_vector_pages(vec)).toBe(EINVAL);
    expect(vec.is_pfns).toBe(true);
  });

  it('R-FV-1 (6.18): a vector of pages converts to pfns and back, with no reference change', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, A, 1);
    const vec = frame_vector_create(1)!;
    gvf(env, A, 1, vec);
    const p = vec.ptrs[0]!;
    const ref = page_ref_count(p as page);
    expect(frame_vector_pfns(vec)).toEqual([p]);
    expect(vec.is_pfns).toBe(true);
    expect(frame_vector_to_pages(vec)).toBe(0);
    expect(page_ref_count(p as page)).toBe(ref);
    put_vaddr_frames(vec);
  });
});

describe('frame_vector_create', () => {
  it('R-FV-1 (6.18): 0 frames WARN once and give NULL; destroy of a filled vector is a VM_BUG_ON', () => {
    const env = boot('6.18');
    expect(frame_vector_create(0)).toBeNull();
    expect(test_taint(TAINT_WARN)).toBe(true);
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = frame_vector_create(1)!;
    gvf(env, A, 1, vec);
    expect(() => frame_vector_destroy(vec)).toThrow(KernelBug);
    put_vaddr_frames(vec);
    frame_vector_destroy(vec);
  });
});

describe('R-GUP-8, R-REV-5 scenarios (v5.12+)', () => {
  for (const v of ['5.12', '6.1', '6.18']) {
    it(`R-GUP-8 (${v}): with FOLL_LONGTERM a USERPTR buffer in the CMA area is migrated out before the pin; cma_alloc over the whole area succeeds`, () => {
      const env = boot(v);
      const pfns = anonInCma(env, 2);
      const vec = frame_vector_create(2)!;
      expect(gvf(env, A, 2, vec)).toBe(2);
      for (let i = 0; i < 2; i++) {
        const q = vec.ptrs[i]!;
        expect(pfns).not.toContain(q);
        expect(is_migrate_cma_page(q)).toBe(false);
        expect(pfnAt(env, A + i * PAGE_SIZE)).toBe(q);
        expect(phys_read(q * PAGE_SIZE, 1)[0]).toBe(0xc0 + i); // the data moved with it
        expect(page_ref_count(q as page)).toBe(1 + GUP_PIN_COUNTING_BIAS);
      }
      const c = cma_find('reserved')!;
      expect(env.run(cma_alloc(c, 1024, 0, false))).toBe(CMA_BASE);
      expect(cma_last_failure(c)).toBeNull();
      expect(env.k.log.some((l) => l.text.startsWith('pfnsim:'))).toBe(false);
      put_vaddr_frames(vec);
    });
  }

  for (const v of FALLBACK) {
    it(`R-REV-5 (${v}): fallback pfns of a driver's CMA buffer go stale when it moves the buffer; the frames become another process's memory`, () => {
      const env = boot(v);
      const d = cmaDriver(env, 2);
      mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
      read(env, D);
      read(env, D + PAGE_SIZE);
      const old = d.buf;
      const vec = frame_vector_create(2)!;
      expect(gvf(env, D, 2, vec)).toBe(2);
      expect(vec).toMatchObject({ got_ref: false, is_pfns: true, ptrs: [old, old + 1] });
      const victim = create_user_task('victim');
      mmap(env, V, 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, null, 0, victim);
      write(env, V + 2 * PAGE_SIZE, 0x11, victim); // its page tables
      env.run(d.move());
      read(env, D);
      expect(pfnAt(env, D)).toBe(d.buf);
      write(env, V, 0x22, victim);
      write(env, V + PAGE_SIZE, 0x33, victim);
      const vp = [pfnAt(env, V, victim)!, pfnAt(env, V + PAGE_SIZE, victim)!];
      expect(new Set(vp)).toEqual(new Set([old, old + 1]));
      // Stale: the vector still names the old frames, now the victim's anonymous pages.
      expect(frame_vector_pfns(vec)).toEqual([old, old + 1]);
      expect(folio_test_anon(old as folio)).toBe(true);
      // frame_vector_to_pages() happily turns them into the victim's struct pages.
      expect(frame_vector_to_pages(vec)).toBe(0);
      phys_write(old * PAGE_SIZE, new Uint8Array([1, 2, 3, 4])); // a device DMA through it
      const at = vp[0] === old ? V : V + PAGE_SIZE;
      expect([...read(env, at, victim)]).toEqual([1, 2, 3, 4]);
      put_vaddr_frames(vec);
    });
  }

  for (const v of NO_FALLBACK) {
    it(`R-REV-5 (${v}): the same driver buffer cannot be taken at all (pin refused, no pfn fallback), so no stale pfn exists`, () => {
      const env = boot(v);
      const d = cmaDriver(env, 2);
      mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
      read(env, D);
      read(env, D + PAGE_SIZE);
      const vec = frame_vector_create(2)!;
      expect(gvf(env, D, 2, vec)).toBe(EFAULT);
      expect(vec.nr_frames).toBe(0);
      expect(frame_vector_pfns(vec)).toEqual([null, null]);
      expect(warnings(env).some((w) => w.includes(WARN_TEXT))).toBe(WARNS(v));
      put_vaddr_frames(vec);
    });
  }
});
