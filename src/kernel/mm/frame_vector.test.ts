/**
 * Tests of mm/frame_vector.c (v5.7–v5.11), R-FV-1's first era, with R-GUP-5 (a pin adds
 * GUP_PIN_COUNTING_BIAS = 1024 to a small folio's refcount), R-GUP-8 (without
 * FOLL_LONGTERM a pin of a CMA page stays in the area and blocks cma_alloc, which names
 * the pin) and R-REV-5 (PFNs handed out without a reference go stale when the driver
 * moves its buffer; the freed CMA frames become another process's memory).
 *
 * Machine: 1 GiB of RAM, a 4 MiB CMA area 'reserved' at 0x20000000 (frames 0x20000-
 * 0x203ff) and an 8-page MMIO window at 0xfe000000 (pfns 0xfe000-0xfe007, no struct
 * page). The user task 'app' maps anonymous memory at 0x10000000 and drivers at
 * 0x30000000; a second task 'victim' maps anonymous memory at 0x50000000.
 * videobuf2 of this era calls get_vaddr_frames(start, n, FOLL_FORCE|FOLL_WRITE, vec)
 * for a buffer the device writes (vb2_create_framevec).
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  page,
  vm_area_struct,
  vm_fault,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
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
  folio_maybe_dma_pinned,
} from '../include/linux/mm.js';
import { folio_test_anon } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { PAGE_SIZE, pte_pfn } from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { KernelBug, test_taint, TAINT_WARN } from '../kernel/panic.js';
import { KERN_DEBUG, KERN_ERR } from '../kernel/printk.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { remap_pfn_range, vm_flags_set, vmf_insert_pfn } from './memory.pfnmap.js';
import { zap_vma_ptes } from './memory.zap.js';
import { is_migrate_cma_page } from './page_alloc.js';
import { phys_write } from './sparse.js';
import { cma_alloc, cma_find, cma_last_failure, cma_release } from './cma.js';
import { gup_live_pin_records, page_pin_records } from './gup.js';
import {
  frame_vector_count,
  frame_vector_create,
  frame_vector_destroy,
  frame_vector_pages,
  frame_vector_pfns,
  frame_vector_to_pages,
  frame_vector_to_pfns,
  get_vaddr_frames,
  put_vaddr_frames,
  type frame_vector,
} from './frame_vector.js';

const MiB = 2 ** 20;
const A = 0x10000000; // anonymous user buffers
const D = 0x30000000; // driver mappings
const V = 0x50000000; // the victim's anonymous memory
const CMA_BASE = 0x20000;
const BAR = 0xfe000000;
const BAR_PFN = BAR / PAGE_SIZE;
const EFAULT = -14;
const EINVAL = -22;
const EBUSY = -16;
const VB2_WRITE = FOLL_FORCE | FOLL_WRITE;

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

/** A character device whose ->mmap sets the VMA up. */
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
 * A driver with a DMA buffer from the CMA area, mapped VM_IO|VM_PFNMAP by its fault
 * handler (vmf_insert_pfn), which it can move: allocate a new buffer, zap the user
 * mapping (zap_vma_ptes), release the old frames (as a GPU driver evicting a buffer).
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

/** n pages of anonymous memory at A, all backed by frames of the CMA area. */
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

function vecOf(n: number): frame_vector {
  return frame_vector_create(n)!;
}

/* ------------------------------------------------------------------------------------ */

describe('get_vaddr_frames', () => {
  for (const v of ['5.8', '5.10', '5.11']) {
    it(`R-FV-1, R-GUP-5 (${v}): an anonymous range is pinned with pin_user_pages_locked: got_ref, pages, refcount + 1024 each`, () => {
      const env = boot(v);
      mmap(env, A, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      write(env, A, 1);
      write(env, A + PAGE_SIZE, 2);
      const p0 = pfnAt(env, A)!;
      const p1 = pfnAt(env, A + PAGE_SIZE)!;
      const before = page_ref_count(p0 as page);
      const vec = vecOf(2);
      expect(env.run(get_vaddr_frames(A, 2, VB2_WRITE, vec))).toBe(2);
      expect(vec).toMatchObject({ nr_frames: 2, got_ref: true, is_pfns: false });
      expect(vec.ptrs).toEqual([p0, p1]);
      expect(page_ref_count(p0 as page)).toBe(before + GUP_PIN_COUNTING_BIAS);
      expect(folio_maybe_dma_pinned(p1 as folio)).toBe(true);
      // The pin is recorded as taken by get_vaddr_frames through pin_user_pages_locked.
      const [r] = page_pin_records(p0);
      expect(r).toMatchObject({ comm: 'app', pid: env.task.pid, entry: 'pin_user_pages_locked' });
      expect(r!.caller).toEqual({ fn: 'get_vaddr_frames', file: 'mm/frame_vector.c' });
      put_vaddr_frames(vec);
      expect(vec).toMatchObject({ nr_frames: 0, got_ref: false });
      expect(page_ref_count(p0 as page)).toBe(before);
      expect(gup_live_pin_records()).toEqual([]);
      frame_vector_destroy(vec);
    });
  }

  it('R-FV-1 (5.7): get_user_pages_locked takes plain references (FOLL_GET, +1), put_page drops them', () => {
    const env = boot('5.7');
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, A, 1);
    const p = pfnAt(env, A)! as page;
    const before = page_ref_count(p);
    const vec = vecOf(1);
    expect(env.run(get_vaddr_frames(A, 1, VB2_WRITE, vec))).toBe(1);
    expect(vec).toMatchObject({ got_ref: true, is_pfns: false, ptrs: [p] });
    expect(page_ref_count(p)).toBe(before + 1);
    expect(page_pin_records(p)).toEqual([]); // a reference, not a pin
    put_vaddr_frames(vec);
    expect(page_ref_count(p)).toBe(before);
  });

  it('R-FV-1 (5.10): no VMA at start is -EFAULT; vec->nr_frames stays 0', () => {
    const env = boot('5.10');
    const vec = vecOf(1);
    expect(env.run(get_vaddr_frames(A, 1, VB2_WRITE, vec))).toBe(EFAULT);
    expect(vec.nr_frames).toBe(0);
    expect(env.run(get_vaddr_frames(A, 0, VB2_WRITE, vec))).toBe(0);
  });

  it('R-FV-1 (5.10): a short anonymous range gives a short count (2 of 4)', () => {
    const env = boot('5.10');
    mmap(env, A, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = vecOf(4);
    expect(env.run(get_vaddr_frames(A, 4, VB2_WRITE, vec))).toBe(2);
    expect(frame_vector_count(vec)).toBe(2);
    put_vaddr_frames(vec);
    expect(gup_live_pin_records()).toEqual([]);
  });

  it('R-FV-1 (5.10): more frames than the vector holds WARN once and are clipped', () => {
    const env = boot('5.10');
    mmap(env, A, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const vec = vecOf(2);
    expect(env.run(get_vaddr_frames(A, 4, VB2_WRITE, vec))).toBe(2);
    expect(warnings(env).some((w) => w.includes('mm/frame_vector.c:get_vaddr_frames'))).toBe(true);
    put_vaddr_frames(vec);
  });

  it('R-FV-1 (5.10): a VM_IO|VM_PFNMAP range takes the follow_pfn path: pfns, got_ref false, no struct page touched', () => {
    const env = boot('5.10');
    // BAR pages 0xfe000-0xfe003 at 0x30000000.
    expect(mmap(env, D, 4, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver())).toBe(D);
    const vec = vecOf(4);
    expect(env.run(get_vaddr_frames(D, 4, VB2_WRITE, vec))).toBe(4);
    expect(vec).toMatchObject({ nr_frames: 4, got_ref: false, is_pfns: true });
    expect(vec.ptrs).toEqual([BAR_PFN, BAR_PFN + 1, BAR_PFN + 2, BAR_PFN + 3]);
    expect(gup_live_pin_records()).toEqual([]);
    expect(warnings(env)).toEqual([]);
    put_vaddr_frames(vec); // nothing to drop
    expect(vec).toMatchObject({ nr_frames: 0, got_ref: false });
  });

  it('R-FV-1 (5.10): the pfn path continues into a following VM_IO|VM_PFNMAP VMA, and stops at a normal one', () => {
    const env = boot('5.10');
    const bar = barDriver();
    // 0x30000000: BAR pages 0-1; 0x30002000: BAR pages 2-3 (offset 2 pages); then anon.
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 0);
    mmap(env, D + 2 * PAGE_SIZE, 2, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 2);
    mmap(env, D + 4 * PAGE_SIZE, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, D + 4 * PAGE_SIZE, 1);
    const vec = vecOf(6);
    expect(env.run(get_vaddr_frames(D, 6, VB2_WRITE, vec))).toBe(4);
    expect(vec.ptrs.slice(0, 4)).toEqual([BAR_PFN, BAR_PFN + 1, BAR_PFN + 2, BAR_PFN + 3]);
    expect(vec.got_ref).toBe(false);
    // The anonymous page after them was not pinned.
    expect(gup_live_pin_records()).toEqual([]);
  });

  it('R-FV-1 (5.10): a follow_pfn error on the first page is returned (-EINVAL: PTE not yet faulted in)', () => {
    const env = boot('5.10');
    const d = cmaDriver(env, 2);
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
    const vec = vecOf(2);
    expect(env.run(get_vaddr_frames(D, 2, VB2_WRITE, vec))).toBe(EINVAL);
    expect(vec).toMatchObject({ nr_frames: 0, got_ref: false, is_pfns: true });
    // After a read fault of page 0 only, page 1 fails and the count so far is returned.
    read(env, D);
    expect(env.run(get_vaddr_frames(D, 2, VB2_WRITE, vec))).toBe(1);
    expect(vec.ptrs[0]).toBe(d.buf);
  });

  it('R-FV-1: after v5.11 the mm/ API is a model error naming drivers/media/common/videobuf2/frame_vector.c', () => {
    const env = boot('6.18');
    expect(() => env.run(get_vaddr_frames(A, 1, 0, { ...emptyVec() }))).toThrow(
      /moved it to drivers\/media\/common\/videobuf2\/frame_vector\.c/,
    );
    expect(() => frame_vector_create(1)).toThrow(/eb83b8e3e647/);
    expect(() => put_vaddr_frames(emptyVec())).toThrow(/videobuf2/);
  });
});

function emptyVec(): frame_vector {
  return { nr_allocated: 1, nr_frames: 0, got_ref: false, is_pfns: false, ptrs: [null] };
}

describe('put_vaddr_frames', () => {
  it('R-FV-1 (5.10): unpins what get_vaddr_frames pinned, without dirtying (vb2 dirties first)', () => {
    const env = boot('5.10');
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, A, 1);
    const p = pfnAt(env, A)! as page;
    const before = page_ref_count(p);
    const vec = vecOf(1);
    env.run(get_vaddr_frames(A, 1, VB2_WRITE, vec));
    frame_vector_to_pfns(vec); // a caller that looked at the pfns
    expect(vec.is_pfns).toBe(true);
    put_vaddr_frames(vec); // converts back to pages and unpins them
    expect(page_ref_count(p)).toBe(before);
    expect(vec).toMatchObject({ nr_frames: 0, got_ref: false, is_pfns: false });
  });
});

describe('frame_vector_to_pages', () => {
  it('R-FV-1 (5.10): pfns without a struct page (MMIO) cannot become pages: -EINVAL, vector unchanged', () => {
    const env = boot('5.10');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, barDriver());
    const vec = vecOf(2);
    env.run(get_vaddr_frames(D, 2, VB2_WRITE, vec));
    expect(frame_vector_to_pages(vec)).toBe(EINVAL);
    expect(frame_vector_pages(vec)).toBe(EINVAL);
    expect(vec.is_pfns).toBe(true);
    expect(frame_vector_pfns(vec)).toEqual([BAR_PFN, BAR_PFN + 1]);
  });

  it('R-FV-1 (5.10): pfns of RAM (a CMA DMA buffer) become pages, with no reference taken', () => {
    const env = boot('5.10');
    const d = cmaDriver(env, 1);
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
    read(env, D);
    const vec = vecOf(1);
    env.run(get_vaddr_frames(D, 1, VB2_WRITE, vec));
    const before = page_ref_count(d.buf as page);
    expect(frame_vector_to_pages(vec)).toBe(0);
    expect(vec.is_pfns).toBe(false);
    expect(vec.ptrs).toEqual([d.buf]);
    expect(page_ref_count(d.buf as page)).toBe(before);
  });
});

describe('frame_vector_create', () => {
  it('R-FV-1 (5.10): 0 frames WARN once and give NULL; destroy of a filled vector is a VM_BUG_ON', () => {
    const env = boot('5.10');
    expect(frame_vector_create(0)).toBeNull();
    expect(test_taint(TAINT_WARN)).toBe(true);
    const vec = vecOf(1);
    expect(vec).toMatchObject({ nr_allocated: 1, nr_frames: 0 });
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    env.run(get_vaddr_frames(A, 1, VB2_WRITE, vec));
    expect(() => frame_vector_destroy(vec)).toThrow(KernelBug);
    put_vaddr_frames(vec);
  });
});

describe('R-GUP-8, R-REV-5 scenarios (5.10)', () => {
  it('R-GUP-8 (5.10): without FOLL_LONGTERM a USERPTR buffer in the CMA area stays pinned there; cma_alloc fails and names the pin', () => {
    const env = boot('5.10');
    const pfns = anonInCma(env, 2);
    const vec = vecOf(2);
    expect(env.run(get_vaddr_frames(A, 2, VB2_WRITE, vec))).toBe(2);
    expect(vec.ptrs).toEqual(pfns); // pinned where they are: no migration
    const c = cma_find('reserved')!;
    const logFrom = env.k.log.length;
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBeNull();
    const f = cma_last_failure(c)!;
    expect(f.ret).toBe(EBUSY);
    expect(pfns).toContain(f.blocker!.pfn);
    expect(f.blocker!.pins).toHaveLength(1);
    expect(f.pins).toHaveLength(1);
    expect(f.pins[0]).toMatchObject({
      comm: 'app',
      pid: env.task.pid,
      entry: 'pin_user_pages_locked',
      caller: { fn: 'get_vaddr_frames', file: 'mm/frame_vector.c' },
      count: 1,
    });
    expect(f.pins[0]!.gup_flags & VB2_WRITE).toBe(VB2_WRITE);
    expect(f.pins[0]!.gup_flags & FOLL_LONGTERM).toBe(0);
    const log = env.k.log.slice(logFrom);
    // The kernel's own message is unchanged; the pin is named in a model-only debug line.
    const err = log.find((l) => l.level === KERN_ERR)!;
    // (no area name before v5.12, a052d4d13d88)
    expect(err.text).toBe('cma: cma_alloc: alloc failed, req-size: 1024 pages, ret: -16');
    const model = log.filter((l) => l.text.startsWith('pfnsim:'));
    expect(model).toHaveLength(1);
    expect(model[0]!.level).toBe(KERN_DEBUG);
    expect(model[0]!.text).toContain(
      `pfnsim: cma: reserved: range [0x20000-0x20400) busy at pfn 0x${f.blocker!.pfn.toString(16)}: pinned by app(${env.task.pid}) via pin_user_pages_locked(FOLL_WRITE|FOLL_FORCE) at get_vaddr_frames (mm/frame_vector.c), 1 pin`,
    );
    // Once the buffer is put, the pages can be migrated and the area allocated.
    put_vaddr_frames(vec);
    expect(env.run(cma_alloc(c, 1024, 0, false))).toBe(CMA_BASE);
    expect(cma_last_failure(c)).toBeNull();
  });

  it("R-REV-5 (5.10): the pfn path keeps the old pfns after the driver moves its buffer; they become another process's memory and a DMA through the vector writes into it", () => {
    const env = boot('5.10');
    const d = cmaDriver(env, 2);
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, d.file);
    read(env, D);
    read(env, D + PAGE_SIZE);
    const old = d.buf;
    const vec = vecOf(2);
    expect(env.run(get_vaddr_frames(D, 2, VB2_WRITE, vec))).toBe(2);
    expect(vec).toMatchObject({ got_ref: false, is_pfns: true, ptrs: [old, old + 1] });
    const ref = page_ref_count(old as page);
    // Another process, with its page tables already built.
    const victim = create_user_task('victim');
    mmap(env, V, 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, null, 0, victim);
    write(env, V + 2 * PAGE_SIZE, 0x11, victim);

    // The driver moves the buffer: new frames, user mapping zapped, old frames released.
    env.run(d.move());
    expect(d.buf).not.toBe(old);
    expect(pfnAt(env, D)).toBeNull();
    read(env, D); // the user refaults onto the new buffer
    expect(pfnAt(env, D)).toBe(d.buf);

    // The victim's next anonymous pages take the freed frames (R-REV-5: LIFO reuse).
    write(env, V, 0x22, victim);
    write(env, V + PAGE_SIZE, 0x33, victim);
    const vp = [pfnAt(env, V, victim)!, pfnAt(env, V + PAGE_SIZE, victim)!];
    expect(new Set(vp)).toEqual(new Set([old, old + 1]));
    expect(folio_test_anon(old as folio)).toBe(true);
    expect(page_ref_count(old as page)).toBe(ref); // the vector never held a reference

    // The vector still names the old frames: stale. A device write through it lands in
    // the victim's memory.
    expect(frame_vector_pfns(vec)).toEqual([old, old + 1]);
    phys_write(vec.ptrs[0]! * PAGE_SIZE, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    const victimAddr = pfnAt(env, V, victim) === old ? V : V + PAGE_SIZE;
    expect([...read(env, victimAddr, victim)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    put_vaddr_frames(vec);
  });
});
