/**
 * Tests of GUP-fast (mm/gup.c: gup_fast_fallback and the lockless walk): what stops the
 * walk (R-GUP-7: protnone, access denied, pte_special, special PMD leaves, no
 * ARCH_HAS_PTE_SPECIAL), the fall-back to the slow path and its results, the
 * write_protect_seq race with fork under a fixed schedule, and O-1 on the fast path.
 *
 * Machine: 1 GiB of RAM; an MMIO window of 2 MiB at 0xfc000000 (pfns 0xfc000-0xfc1ff)
 * for huge pfnmap leaves. Anonymous memory at 0x10000000, files at 0x20000000, drivers at
 * 0x30000000 (2 MiB aligned).
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op, type Step, type SchedThread as Th } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file, folio, page, vm_area_struct, vm_fault } from '../include/linux/mm_types.js';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_FALLBACK,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  folio_maybe_dma_pinned,
} from '../include/linux/mm.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { PageAnonExclusive } from '../include/linux/page-flags.js';
import { PAGE_SIZE, pte_pfn, pte_write } from '../arch/x86/include/asm/pgtable_types.js';
import { pmd_special } from '../arch/x86/include/asm/pgtable.js';
import { ptep_get, walkToLeaf } from '../include/linux/pgtable.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { createExt4File } from '../fs/ext4/file.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { createTmpfsFile } from './shmem.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { vm_flags_set, vmf_insert_mixed } from './memory.pfnmap.js';
import { vmf_insert_pfn_pmd } from './huge_memory.js';
import { secretmem_file_create } from './secretmem.js';
import {
  get_user_pages_fast,
  get_user_pages_fast_only,
  pin_user_pages_fast,
  unpin_user_pages,
  type page_array,
} from './gup.js';

const MiB = 2 ** 20;
const A = 0x10000000;
const F = 0x20000000;
const D = 0x30000000;
const BAR2 = 0xfc000000;
const BAR2_PFN = BAR2 / PAGE_SIZE;
const EFAULT = -14;
const EEXIST = -17;
const EOVERFLOW = -75;

interface Env {
  k: Kernel;
  task: task_struct;
  th: SchedThread;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.18', config: Record<string, boolean> = {}): Env {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [
      ...x86_64_e820(1024 * MiB),
      { start: BAR2, end: BAR2 + 2 * MiB, kind: 'mmio', name: 'BAR2' },
    ],
  });
  const task = create_user_task('fast');
  const th = new SchedThread(0, 'fast', (function* () {})(), task);
  return { k, task, th, run: (op) => k.run(op, th) };
}

function mmap(
  env: Env,
  addr: number,
  pages: number,
  prot = PROT_READ | PROT_WRITE,
  flags = MAP_PRIVATE | MAP_ANONYMOUS,
  f: file | null = null,
): void {
  const r = env.run(
    vm_mmap_pgoff(env.task.mm!, f, addr, pages * PAGE_SIZE, prot, flags | MAP_FIXED, 0),
  );
  expect(r).toBe(addr);
}

const write = (env: Env, addr: number): string =>
  env.run(cpu_user_write(env.task, addr, new Uint8Array([1]))).kind;
const read = (env: Env, addr: number): string => env.run(cpu_user_read(env.task, addr, 1)).kind;

function pfnAt(mm: task_struct['mm'], addr: number): number | null {
  const l = walkToLeaf(mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : pte_pfn(v);
}

function newPages(n: number): page_array {
  return new Array<page | null>(n).fill(null);
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

/** Runs op as the task, returning its result and whether it ever took mmap_lock. */
function traced<T>(env: Env, op: Op<T>): { ret: T; steps: Step[]; tookLock: boolean } {
  const steps: Step[] = [];
  const ret = env.run(recording(op, steps));
  return {
    ret,
    steps,
    tookLock: steps.some((s) => s.obj.endsWith('.mmap_lock') && s.kind === 'acquire'),
  };
}

function driverFile(name: string, mmapFn: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, v) => mmapFn(v),
  });
}

describe('gup_fast_fallback', () => {
  it('R-GUP-7: present, writable anonymous pages are pinned without mmap_lock', () => {
    const env = boot('6.18');
    mmap(env, A, 4);
    for (let i = 0; i < 4; i++) write(env, A + i * PAGE_SIZE);
    const pages = newPages(4);
    const t = traced(env, pin_user_pages_fast(A, 4, FOLL_WRITE, pages));
    expect(t.ret).toBe(4);
    expect(t.tookLock).toBe(false);
    // Every PTE was read locklessly (and re-read after the grab): steps on the entries.
    expect(t.steps.filter((s) => s.what === 'gup_fast_pte_range')).toHaveLength(4);
    expect(t.steps.filter((s) => s.what === 'gup_fast_pte_range recheck')).toHaveLength(4);
    expect(t.steps.filter((s) => s.what === 'folio_ref_try_add')).toHaveLength(4);
    for (let i = 0; i < 4; i++) expect(pages[i]).toBe(pfnAt(env.task.mm, A + i * PAGE_SIZE));
    unpin_user_pages(pages, 4);
  });

  it('R-GUP-7: the slow path resumes at the first page the fast walk did not take (not present)', () => {
    const env = boot('6.18');
    mmap(env, A, 4);
    write(env, A);
    write(env, A + PAGE_SIZE);
    const pages = newPages(4);
    const t = traced(env, pin_user_pages_fast(A, 4, FOLL_WRITE, pages));
    expect(t.ret).toBe(4);
    expect(t.tookLock).toBe(true);
    // The fast walk pinned two pages; the slow path faulted the other two in.
    expect(t.steps.filter((s) => s.what === 'folio_ref_try_add')).toHaveLength(2);
    for (let i = 0; i < 4; i++) expect(pages[i]).toBe(pfnAt(env.task.mm, A + i * PAGE_SIZE));
    unpin_user_pages(pages, 4);
  });

  it('R-GUP-7: with FOLL_FAST_ONLY (get_user_pages_fast_only) there is no slow path: the count is what the walk took', () => {
    const env = boot('6.18');
    mmap(env, A, 3);
    write(env, A);
    const pages = newPages(3);
    const t = traced(env, get_user_pages_fast_only(A, 3, 0, pages));
    expect(t.ret).toBe(1);
    expect(t.tookLock).toBe(false);
    expect(pfnAt(env.task.mm, A + PAGE_SIZE)).toBeNull();
  });

  it('R-GUP-7: a slow-path error after k fast pages returns k (the caller releases them)', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    write(env, A);
    write(env, A + PAGE_SIZE);
    // A + 2 pages: nothing mapped.
    const pages = newPages(3);
    expect(env.run(pin_user_pages_fast(A, 3, FOLL_WRITE, pages))).toBe(2);
    expect(env.run(pin_user_pages_fast(A + 2 * PAGE_SIZE, 1, FOLL_WRITE, newPages(1)))).toBe(
      EFAULT,
    );
    unpin_user_pages(pages, 2);
  });

  it('R-GUP-7: without CONFIG_ARCH_HAS_PTE_SPECIAL the PTE level pins nothing: everything goes the slow way', () => {
    const env = boot('6.18', { CONFIG_ARCH_HAS_PTE_SPECIAL: false });
    mmap(env, A, 2);
    write(env, A);
    write(env, A + PAGE_SIZE);
    const pages = newPages(2);
    const t = traced(env, pin_user_pages_fast(A, 2, FOLL_WRITE, pages));
    expect(t.ret).toBe(2);
    expect(t.tookLock).toBe(true);
    expect(t.steps.some((s) => s.what === 'folio_ref_try_add')).toBe(false);
    expect(env.run(get_user_pages_fast_only(A, 2, 0, newPages(2)))).toBe(0);
    unpin_user_pages(pages, 2);
  });

  it('R-GUP-7: a pte_special entry stops the walk: VM_MIXEDMAP pfns end in the slow path (-EEXIST), VM_PFNMAP in check_vma_flags (-EFAULT)', () => {
    const env = boot('6.18');
    const mixed = driverFile('mixed', function* (vma) {
      vm_flags_set(vma, VM_MIXEDMAP | VM_DONTEXPAND);
      vma.vm_ops = {
        name: 'mixed_vm_ops',
        *fault(vmf: vm_fault) {
          return yield* vmf_insert_mixed(vmf.vma, vmf.address, BAR2_PFN + vmf.pgoff);
        },
      };
      return 0;
    });
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, mixed);
    expect(read(env, D)).toBe('ok');
    const t = traced(env, get_user_pages_fast(D, 1, 0, newPages(1)));
    expect(t.ret).toBe(EEXIST);
    expect(t.tookLock).toBe(true);
    expect(t.steps.some((s) => s.what === 'folio_ref_try_add')).toBe(false);
  });

  it('R-GUP-7: a special (huge pfnmap) PMD leaf stops the walk (v6.12+): the slow path refuses the VM_PFNMAP VMA with -EFAULT, nothing is grabbed', () => {
    const env = boot('6.12');
    const huge = driverFile('hbar', function* (vma) {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      vma.vm_ops = {
        name: 'hbar_vm_ops',
        *fault() {
          return VM_FAULT_SIGBUS;
        },
        *huge_fault(vmf: vm_fault, order: number) {
          if (order !== 9) return VM_FAULT_FALLBACK;
          return yield* vmf_insert_pfn_pmd(vmf, BAR2_PFN, (vmf.flags & 1) !== 0);
        },
      };
      return 0;
    });
    mmap(env, D, 512, PROT_READ | PROT_WRITE, MAP_SHARED, huge);
    expect(read(env, D + 5 * PAGE_SIZE)).toBe('ok');
    const l = walkToLeaf(env.task.mm!, D)!;
    expect(l.level).toBe('pmd');
    expect(pmd_special(ptep_get(l.ptr))).toBe(true);
    const t = traced(env, get_user_pages_fast(D + 5 * PAGE_SIZE, 1, 0, newPages(1)));
    expect(t.ret).toBe(EFAULT);
    expect(t.steps.some((s) => s.what === 'folio_ref_try_add')).toBe(false);
  });

  it('R-GUP-7: protnone and access-denied entries stop the walk: PROT_NONE is refused by the slow path; a write to a COW-shared page is resolved by it', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_NONE);
    expect(env.run(pin_user_pages_fast(A, 1, 0, newPages(1)))).toBe(EFAULT);
    mmap(env, F, 1);
    write(env, F);
    const orig = pfnAt(env.task.mm, F)!;
    const child = env.run(fork_task(env.task)) as task_struct;
    expect(pte_write(ptep_get(walkToLeaf(env.task.mm!, F)!.ptr))).toBe(false);
    const pages = newPages(1);
    const t = traced(env, pin_user_pages_fast(F, 1, FOLL_WRITE, pages));
    expect(t.ret).toBe(1);
    expect(t.tookLock).toBe(true);
    expect(pages[0]).not.toBe(orig);
    expect(pfnAt(child.mm, F)).toBe(orig);
    unpin_user_pages(pages, 1);
  });

  it('R-GUP-5: a read-only pin of a COW-shared anonymous page is not taken by the fast path (must unshare, v5.19+)', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A);
    const orig = pfnAt(env.task.mm, A)!;
    env.run(fork_task(env.task));
    const pages = newPages(1);
    const t = traced(env, pin_user_pages_fast(A, 1, 0, pages));
    expect(t.ret).toBe(1);
    expect(t.tookLock).toBe(true);
    expect(pages[0]).not.toBe(orig);
    expect(PageAnonExclusive(pages[0]!)).toBe(true);
    unpin_user_pages(pages, 1);
  });

  it('R-GUP-7: an end that wraps is -EOVERFLOW (v6.5+; 0 on v6.1); past TASK_SIZE_MAX is -EFAULT', () => {
    for (const [v, wrap] of [
      ['6.18', EOVERFLOW],
      ['6.1', 0],
    ] as const) {
      const env = boot(v);
      expect(env.run(pin_user_pages_fast(2 ** 64 - PAGE_SIZE, 2, 0, newPages(2)))).toBe(wrap);
      expect(env.run(pin_user_pages_fast(0x7ffffffff000 - PAGE_SIZE, 3, 0, newPages(3)))).toBe(
        EFAULT,
      );
    }
  });

  it('O-1: a long-term write pin of a shared ext4 page falls back from the fast path and is -EFAULT; shmem is pinned without mmap_lock', () => {
    const env = boot('6.18');
    mmap(
      env,
      F,
      1,
      PROT_READ | PROT_WRITE,
      MAP_SHARED,
      createExt4File('/f', new Uint8Array(PAGE_SIZE)),
    );
    expect(write(env, F)).toBe('ok');
    let t = traced(env, pin_user_pages_fast(F, 1, FOLL_WRITE | FOLL_LONGTERM, newPages(1)));
    expect(t.ret).toBe(EFAULT);
    expect(t.tookLock).toBe(true);
    const tmp = env.run(createTmpfsFile('/tmp/s', new Uint8Array(PAGE_SIZE)));
    mmap(env, F + 0x100000, 1, PROT_READ | PROT_WRITE, MAP_SHARED, tmp);
    write(env, F + 0x100000);
    const pages = newPages(1);
    t = traced(env, pin_user_pages_fast(F + 0x100000, 1, FOLL_WRITE | FOLL_LONGTERM, pages));
    expect(t.ret).toBe(1);
    expect(t.tookLock).toBe(false);
    unpin_user_pages(pages, 1);
  });
});

describe('gup_fast_folio_allowed', () => {
  it('O-4: GUP-fast grabs a secretmem page, sees its mapping and drops it; the slow path refuses the VMA (-EFAULT), on v6.18 (gup_fast_folio_allowed) and v5.15 (page_is_secretmem)', () => {
    for (const v of ['6.18', '5.15']) {
      const env = boot(v);
      const sm = secretmem_file_create(0);
      sm.f_inode.i_size = 2 * PAGE_SIZE;
      mmap(env, F, 2, PROT_READ | PROT_WRITE, MAP_SHARED, sm);
      expect(write(env, F)).toBe('ok');
      const p = pfnAt(env.task.mm, F)! as page;
      const before = page_ref_count(p);
      const t = traced(env, get_user_pages_fast(F, 1, 0, newPages(1)));
      expect(t.ret).toBe(EFAULT);
      expect(t.steps.some((s) => s.what === 'folio_ref_try_add')).toBe(true);
      expect(t.steps.some((s) => s.what === 'READ_ONCE(folio->mapping)')).toBe(true);
      expect(t.tookLock).toBe(true);
      expect(page_ref_count(p)).toBe(before);
    }
  });
});

describe('gup_fast', () => {
  /** Steps thread tid until its pending step satisfies pred (or it ends). */
  function runUntil(r: ReturnType<Kernel['runner']>, t: Th, pred: (s: Step) => boolean): void {
    while (!t.done && t.pending && !pred(t.pending)) expect(r.step(t.id)).toBe(true);
  }

  function race(version: string) {
    const env = boot(version);
    mmap(env, A, 1);
    write(env, A);
    const page0 = pfnAt(env.task.mm, A)! as page;
    const base = page_ref_count(page0);
    const pages = newPages(1);
    const r = env.k.runner();
    const gup = r.spawn('gup', pin_user_pages_fast(A, 1, FOLL_WRITE, pages), env.task);
    const fork = r.spawn('fork', fork_task(env.task), env.task);
    // GUP-fast samples write_protect_seq (when it has one), walks and pins ...
    runUntil(r, gup, (s) => s.what === 'read_seqcount_retry' || s.obj.endsWith('.mmap_lock'));
    const fastPinned = folio_maybe_dma_pinned(page0 as number as folio);
    // ... fork's copy_page_range runs in full ...
    runUntil(r, fork, () => false);
    expect(fork.done).toBe(true);
    // ... then GUP-fast re-checks the sequence count.
    const before = r.trace.length;
    runUntil(r, gup, () => false);
    const after = r.trace.slice(before);
    return { env, page0, base, pages, gup, fork, fastPinned, after };
  }

  it('R-GUP-7, O-9: a FOLL_PIN racing fork: write_protect_seq moved, so the fast pins are undone and the slow path pins again (v5.11+)', () => {
    const { page0, base, pages, gup, fork, fastPinned, after } = race('6.18');
    expect(fastPinned).toBe(true);
    expect(gup.result).toBe(1);
    // The retry saw the fork, the pin was dropped, and the page was pinned again under
    // mmap_lock.
    expect(after[0]!.what).toBe('read_seqcount_retry');
    expect(after.some((s) => s.obj.endsWith('.mmap_lock') && s.kind === 'acquire')).toBe(true);
    // The parent keeps its page with exactly one pin; the child got a copy at fork
    // because the page looked pinned then (folio_needs_cow_for_dma).
    expect(pages[0]).toBe(page0);
    expect(page_ref_count(page0)).toBe(base + GUP_PIN_COUNTING_BIAS);
    const child = fork.result as task_struct;
    expect(pfnAt(child.mm, A)).not.toBe(page0);
    unpin_user_pages(pages, 1);
    expect(page_ref_count(page0)).toBe(base);
  });

  it('R-GUP-7: v5.10 has no write_protect_seq: GUP-fast ends right after its PTE re-check, so a fork run at the same point leaves the fast pin in place (no slow path)', () => {
    const { page0, base, pages, gup, after } = race('5.10');
    expect(gup.result).toBe(1);
    expect(after.some((s) => s.obj.endsWith('.mmap_lock'))).toBe(false);
    expect(after.some((s) => s.what === 'read_seqcount_retry')).toBe(false);
    expect(pages[0]).toBe(page0);
    expect(page_ref_count(page0)).toBe(base + GUP_PIN_COUNTING_BIAS);
    unpin_user_pages(pages, 1);
  });

  it('R-GUP-7: fork in progress (write_protect_seq odd) makes GUP-fast give up at once and wait in the slow path', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A);
    const pages = newPages(1);
    const r = env.k.runner();
    const fork = r.spawn('fork', fork_task(env.task), env.task);
    // Run fork up to the first step after raw_write_seqcount_begin.
    while (!fork.done && env.task.mm!.write_protect_seq.sequence % 2 === 0) r.step(fork.id);
    const gup = r.spawn('gup', pin_user_pages_fast(A, 1, FOLL_WRITE, pages), env.task);
    const log: Step[] = [];
    while (!gup.done && gup.pending && !gup.pending.obj.endsWith('.mmap_lock')) {
      log.push(gup.pending);
      r.step(gup.id);
    }
    // It sampled the count (odd) and went straight to the slow path: no entry was read.
    expect(log.some((s) => s.what === 'gup_fast_pte_range')).toBe(false);
    r.run();
    expect(gup.result).toBe(1);
    unpin_user_pages(pages, 1);
  });
});
