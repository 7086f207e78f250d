/**
 * Tests of the slow GUP path and its interface (mm/gup.c): is_valid_gup_args and the
 * older per-function checks (R-GUP-1), check_vma_flags (R-GUP-2, O-1, O-2, O-4, O-5, O-6,
 * O-8), __get_user_pages' results (R-GUP-3), forced writes (R-GUP-4, O-6), try_grab_folio
 * and unpinning (R-GUP-5), follow_page_pte's special entries (R-GUP-6), fixup_user_fault
 * (R-GUP-9), populate_vma_page_range / __mm_populate (R-VMA-2), and pins across munmap,
 * MADV_DONTNEED and fork (O-9, O-10).
 *
 * Machine: 1 GiB of RAM plus an 8-page MMIO window at 0xfe000000 (pfns 0xfe000-0xfe007,
 * no struct page). Processes map at 0x10000000 (anonymous), 0x20000000 (files) and
 * 0x30000000 (drivers) unless a test says otherwise.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, exit_mm, fork_task } from '../kernel/fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  page,
  vm_area_struct,
  vm_fault,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { FAULT_FLAG_WRITE, MMF_HAS_PINNED } from '../include/linux/mm_types.js';
import {
  FOLL_ANON,
  FOLL_DUMP,
  FOLL_FORCE,
  FOLL_GET,
  FOLL_LONGTERM,
  FOLL_PCI_P2PDMA,
  FOLL_PIN,
  FOLL_REMOTE,
  FOLL_SPLIT_PMD,
  FOLL_TOUCH,
  FOLL_UNLOCKABLE,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MIXEDMAP,
  VM_PFNMAP,
  folio_maybe_dma_pinned,
  mm_flags_test,
} from '../include/linux/mm.js';
import {
  folio_pincount,
  folio_test_dirty,
  folio_test_anon,
  PageAnonExclusive,
  page_folio,
} from '../include/linux/page-flags.js';
import { folio_get, folio_put, page_ref_count } from '../include/linux/page_ref.js';
import {
  PAGE_SIZE,
  pte_pfn,
  pte_write,
  pte_dirty,
  pte_young,
} from '../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf, zero_pfn } from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { alloc_file, new_inode, O_RDONLY, O_RDWR } from '../fs/inode.js';
import { createExt4File } from '../fs/ext4/file.js';
import { task_work_run } from '../fs/file_table.js';
import { test_taint, TAINT_WARN } from '../kernel/panic.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
  vm_munmap,
} from './mmap.js';
import { vma_lookup } from './vma.js';
import { createTmpfsFile } from './shmem.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { page_is_free } from './page_alloc.js';
import { phys_read } from './sparse.js';
import { do_madvise, MADV_DONTNEED } from './madvise.js';
import {
  remap_pfn_range,
  vm_flags_set,
  vmf_insert_mixed,
  vmf_insert_pfn,
} from './memory.pfnmap.js';
import {
  __mm_populate,
  check_vma_flags,
  fixup_user_fault,
  get_user_pages,
  get_user_pages_fast,
  get_user_pages_remote,
  get_user_pages_unlocked,
  is_valid_gup_args,
  mark_pci_p2pdma_page,
  pin_user_pages,
  pin_user_pages_remote,
  pin_user_pages_unlocked,
  populate_vma_page_range,
  try_grab_folio,
  unpin_folio,
  unpin_folios,
  unpin_user_page,
  unpin_user_pages,
  unpin_user_pages_dirty_lock,
  vma_is_secretmem,
  vma_needs_dirty_tracking,
  writable_file_mapping_allowed,
  type page_array,
} from './gup.js';

const MiB = 2 ** 20;
const A = 0x10000000; // anonymous mappings
const F = 0x20000000; // file mappings
const D = 0x30000000; // driver mappings
const BAR = 0xfe000000;
const BAR_PFN = BAR / PAGE_SIZE;
const EFAULT = -14;
const EINVAL = -22;
const ENOMEM = -12;
const EEXIST = -17;
const EINTR = -4;
const EREMOTEIO = -121;
const EOPNOTSUPP = -95;

interface Env {
  k: Kernel;
  task: task_struct;
  th: SchedThread;
  run<T>(op: Op<T>, as?: SchedThread): T;
}

function boot(version = '6.18', config: Record<string, boolean> = {}): Env {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [
      ...x86_64_e820(1024 * MiB),
      { start: BAR, end: BAR + 8 * PAGE_SIZE, kind: 'mmio', name: 'BAR0' },
    ],
  });
  const task = create_user_task('gup');
  const th = new SchedThread(0, 'gup', (function* () {})(), task);
  return { k, task, th, run: (op, as = th) => k.run(op, as) };
}

function threadOf(t: task_struct): SchedThread {
  return new SchedThread(1, t.comm, (function* () {})(), t);
}

function mmap(
  env: Env,
  addr: number,
  pages: number,
  prot = PROT_READ | PROT_WRITE,
  flags = MAP_PRIVATE | MAP_ANONYMOUS,
  f: file | null = null,
  t = env.task,
): number {
  return env.run(
    vm_mmap_pgoff(t.mm!, f, addr, pages * PAGE_SIZE, prot, flags | MAP_FIXED, 0),
    t === env.task ? env.th : threadOf(t),
  );
}

function write(env: Env, addr: number, b: number, t = env.task): string {
  return env.run(
    cpu_user_write(t, addr, new Uint8Array([b])),
    t === env.task ? env.th : threadOf(t),
  ).kind;
}

function read(env: Env, addr: number): string {
  return env.run(cpu_user_read(env.task, addr, 1)).kind;
}

/** The pfn mapped at addr (PTE or huge leaf), or null. */
function pfnAt(env: Env, addr: number, t = env.task): number | null {
  const l = walkToLeaf(t.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  if (v === 0) return null;
  const off =
    l.level === 'pte'
      ? 0
      : Math.floor((addr % (l.level === 'pmd' ? 2 * MiB : 2 ** 30)) / PAGE_SIZE);
  return pte_pfn(v) + off;
}

function pteAt(env: Env, addr: number): number {
  return ptep_get(walkToLeaf(env.task.mm!, addr)!.ptr);
}

/** Runs op with current->mm->mmap_lock held for read, as get_user_pages' callers do. */
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

/** A character device whose ->mmap sets the VMA up (as a driver would). */
function driverFile(name: string, mmapFn: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, vma) => mmapFn(vma),
  });
}

/** A remap_pfn_range driver over the MMIO window (VM_IO|VM_PFNMAP, like a perf ring). */
function pfnmapDriver(): file {
  return driverFile('bar', function* (vma) {
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    return yield* remap_pfn_range(
      vma,
      vma.vm_start,
      BAR_PFN,
      vma.vm_end - vma.vm_start,
      vma.vm_page_prot,
    );
  });
}

/** A VM_MIXEDMAP driver whose fault inserts MMIO pfns with vmf_insert_mixed (special PTEs). */
function mixedDriver(): file {
  const ops: vm_operations_struct = {
    name: 'mixed_vm_ops',
    *fault(vmf: vm_fault): Op<number> {
      if (vmf.pgoff >= 8) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_mixed(vmf.vma, vmf.address, BAR_PFN + vmf.pgoff);
    },
  };
  return driverFile('mixed', function* (vma) {
    vm_flags_set(vma, VM_MIXEDMAP | VM_DONTEXPAND);
    vma.vm_ops = ops;
    return 0;
  });
}

/** A VM_PFNMAP driver that inserts pfns at fault time and SIGBUSes past 4 pages (vvar-like). */
function faultPfnDriver(): file {
  const ops: vm_operations_struct = {
    name: 'vvar_vm_ops',
    *fault(vmf: vm_fault): Op<number> {
      if (vmf.pgoff >= 4) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, BAR_PFN + vmf.pgoff);
    },
  };
  return driverFile('vvar', function* (vma) {
    vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    vma.vm_ops = ops;
    return 0;
  });
}

/** A memfd_secret-like file: its inode's super block is 'secretmem' (see vma_is_secretmem). */
function secretmemFile(): file {
  const inode = new_inode({ s_type: 'secretmem', s_nowriteback: true }, 'reg');
  inode.i_size = 16 * PAGE_SIZE;
  return alloc_file('secretmem', O_RDWR, inode, {
    name: 'secretmem_fops',
    *mmap(_f, vma) {
      vma.vm_flags |= VM_LOCKED | VM_DONTDUMP;
      vma.vm_ops = {
        name: 'secretmem_vm_ops',
        *fault() {
          return VM_FAULT_SIGBUS;
        },
      };
      return 0;
    },
  });
}

function warned(env: Env): boolean {
  return env.k.log.some((l) => l.text.includes('WARNING:'));
}

/* ------------------------------------------------------------------------------------ */

describe('is_valid_gup_args', () => {
  it('R-GUP-1: implied flags are added, and `locked` adds FOLL_UNLOCKABLE', () => {
    const env = boot('6.18');
    env.k.activate();
    const p = newPages(1);
    expect(is_valid_gup_args(p, null, FOLL_WRITE, FOLL_TOUCH | FOLL_REMOTE)).toBe(
      FOLL_WRITE | FOLL_TOUCH | FOLL_REMOTE,
    );
    expect(is_valid_gup_args(p, { value: 1 }, FOLL_LONGTERM, FOLL_PIN)).toBe(
      FOLL_LONGTERM | FOLL_PIN | FOLL_UNLOCKABLE,
    );
    expect(warned(env)).toBe(false);
  });

  for (const [what, pages, lk, flags, set] of [
    ['an internal flag (FOLL_PIN) from the caller', true, null, FOLL_PIN, FOLL_GET],
    ['FOLL_GET together with FOLL_PIN', true, null, FOLL_GET, FOLL_PIN],
    ['FOLL_LONGTERM without FOLL_PIN', true, null, FOLL_LONGTERM, FOLL_GET],
    ['GET/PIN without pages', false, null, 0, FOLL_PIN],
    ['FOLL_LONGTERM with FOLL_PCI_P2PDMA', true, null, FOLL_LONGTERM | FOLL_PCI_P2PDMA, FOLL_PIN],
    ['*locked != 1', true, 0, 0, FOLL_PIN],
  ] as const) {
    it(`R-GUP-1: ${what} WARNs and is refused`, () => {
      const env = boot('6.18');
      env.k.activate();
      const r = is_valid_gup_args(
        pages ? newPages(1) : null,
        lk === null ? null : { value: lk },
        flags,
        set,
      );
      expect(r).toBeNull();
      expect(warned(env)).toBe(true);
      expect(test_taint(TAINT_WARN)).toBe(true);
    });
  }

  it('R-GUP-1: FOLL_TOUCH from a caller is internal from v6.7 (INTERNAL_GUP_FLAGS), accepted on v6.5', () => {
    let env = boot('6.18');
    env.k.activate();
    expect(is_valid_gup_args(newPages(1), null, FOLL_TOUCH, FOLL_GET)).toBeNull();
    env = boot('6.5');
    env.k.activate();
    expect(is_valid_gup_args(newPages(1), null, FOLL_TOUCH, FOLL_GET)).toBe(FOLL_TOUCH | FOLL_GET);
  });
});

describe('pin_user_pages', () => {
  it('R-GUP-1: invalid arguments return 0 on v6.18 (is_valid_gup_args), -EINVAL on v6.1 and v5.15', () => {
    for (const [v, want] of [
      ['6.18', 0],
      ['6.1', EINVAL],
      ['5.15', EINVAL],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      expect(locked(env, pin_user_pages(A, 1, FOLL_GET, newPages(1)))).toBe(want);
      expect(warned(env)).toBe(true);
    }
  });

  it('R-GUP-1: pages == NULL: 0 on v6.18, -EINVAL on v6.1; v5.15 had no such check and hits __get_user_pages VM_BUG_ON', () => {
    let env = boot('6.18');
    mmap(env, A, 1);
    expect(locked(env, pin_user_pages(A, 1, 0, null))).toBe(0);
    env = boot('6.1');
    mmap(env, A, 1);
    expect(locked(env, pin_user_pages(A, 1, 0, null))).toBe(EINVAL);
    env = boot('5.15');
    mmap(env, A, 1);
    expect(() => locked(env, pin_user_pages(A, 1, 0, null))).toThrow(/VM_BUG_ON\(!!pages/);
  });

  it('R-GUP-5: pins a small anonymous page: refcount +1024 (GUP_PIN_COUNTING_BIAS), MMF_HAS_PINNED set; unpin restores', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    expect(write(env, A, 1)).toBe('ok');
    const pfn = pfnAt(env, A)! as page;
    const before = page_ref_count(pfn);
    const pages = newPages(1);
    expect(mm_flags_test(MMF_HAS_PINNED, env.task.mm!)).toBe(false);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    expect(pages[0]).toBe(pfn);
    expect(page_ref_count(pfn)).toBe(before + GUP_PIN_COUNTING_BIAS);
    expect(folio_maybe_dma_pinned(pfn as number as folio)).toBe(true);
    expect(mm_flags_test(MMF_HAS_PINNED, env.task.mm!)).toBe(true);
    unpin_user_pages(pages, 1);
    expect(page_ref_count(pfn)).toBe(before);
    expect(folio_maybe_dma_pinned(pfn as number as folio)).toBe(false);
  });

  it('R-GUP-5: MMF_HAS_PINNED is not recorded on v5.8 (introduced with mm->has_pinned in v5.9)', () => {
    const env = boot('5.8');
    mmap(env, A, 1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, newPages(1)))).toBe(1);
    expect(mm_flags_test(MMF_HAS_PINNED, env.task.mm!)).toBe(false);
  });

  it('R-GUP-3: a fatal signal stops GUP with -EINTR before any page', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    env.task.fatal_signal = true;
    expect(locked(env, pin_user_pages(A, 2, 0, newPages(2)))).toBe(EINTR);
  });
});

describe('check_vma_flags', () => {
  function vmaOf(env: Env, addr: number): vm_area_struct {
    return vma_lookup(env.task.mm!, addr)!;
  }

  it('R-GUP-2 (1), O-2: VM_IO|VM_PFNMAP is -EFAULT, before anything else; pin_user_pages reports it', () => {
    const env = boot('6.18');
    mmap(env, D, 4, PROT_READ | PROT_WRITE, MAP_SHARED, pfnmapDriver());
    const vma = vmaOf(env, D);
    expect(check_vma_flags(vma, FOLL_ANON | FOLL_LONGTERM | FOLL_WRITE)).toBe(EFAULT);
    expect(locked(env, pin_user_pages(D, 1, FOLL_WRITE, newPages(1)))).toBe(EFAULT);
    expect(locked(env, get_user_pages(D, 1, 0, newPages(1)))).toBe(EFAULT);
  });

  it('R-GUP-2 (2): FOLL_ANON on a file mapping is -EFAULT; on anonymous memory it passes', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    mmap(env, F, 1, PROT_READ, MAP_PRIVATE, createExt4File('/a', new Uint8Array(PAGE_SIZE)));
    expect(check_vma_flags(vmaOf(env, F), FOLL_ANON)).toBe(EFAULT);
    expect(check_vma_flags(vmaOf(env, A), FOLL_ANON)).toBe(0);
  });

  it('R-GUP-2 (4): FOLL_SPLIT_PMD on a hugetlb VMA is -EOPNOTSUPP from v6.9 (v6.18), not checked on v6.6', () => {
    for (const [v, want] of [
      ['6.18', EOPNOTSUPP],
      ['6.6', 0],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      const vma = vmaOf(env, A);
      vma.vm_flags |= VM_HUGETLB;
      expect(check_vma_flags(vma, FOLL_SPLIT_PMD)).toBe(want);
    }
  });

  it('R-GUP-2 (5), O-4: secretmem is -EFAULT from v5.14 (v5.15), unknown to v5.13', () => {
    for (const [v, want] of [
      ['6.18', EFAULT],
      ['5.15', EFAULT],
      ['5.13', 0],
    ] as const) {
      const env = boot(v);
      mmap(env, F, 2, PROT_READ | PROT_WRITE, MAP_SHARED, secretmemFile());
      const vma = vmaOf(env, F);
      expect(vma_is_secretmem(vma)).toBe(want === EFAULT);
      expect(check_vma_flags(vma, FOLL_WRITE)).toBe(want);
    }
  });

  it('R-GUP-2 (6), O-1: a long-term write pin of a shared ext4 mapping is -EFAULT from v6.5; short-term pins and shmem pass; v6.1 allowed it', () => {
    for (const v of ['6.18', '6.5', '6.1']) {
      const env = boot(v);
      mmap(
        env,
        F,
        2,
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        createExt4File('/a', new Uint8Array(2 * PAGE_SIZE)),
      );
      const tmp = env.run(createTmpfsFile('/tmp/b', new Uint8Array(2 * PAGE_SIZE)));
      mmap(env, F + 0x100000, 2, PROT_READ | PROT_WRITE, MAP_SHARED, tmp);
      const ext4 = vmaOf(env, F);
      const shm = vmaOf(env, F + 0x100000);
      expect(vma_needs_dirty_tracking(ext4)).toBe(true);
      expect(vma_needs_dirty_tracking(shm)).toBe(false);
      expect(writable_file_mapping_allowed(ext4, FOLL_PIN | FOLL_LONGTERM)).toBe(false);
      expect(writable_file_mapping_allowed(ext4, FOLL_PIN)).toBe(true);
      const lt = FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE;
      expect(check_vma_flags(ext4, lt)).toBe(v === '6.1' ? 0 : EFAULT);
      expect(check_vma_flags(ext4, FOLL_PIN | FOLL_WRITE)).toBe(0);
      expect(check_vma_flags(shm, lt)).toBe(0);
      // The same through pin_user_pages: -EFAULT on v6.5+, a pin on v6.1.
      const pages = newPages(1);
      const r = locked(env, pin_user_pages(F, 1, FOLL_WRITE | FOLL_LONGTERM, pages));
      expect(r).toBe(v === '6.1' ? 1 : EFAULT);
      if (r === 1) unpin_user_pages(pages, 1);
      expect(locked(env, pin_user_pages(F, 1, FOLL_WRITE, pages))).toBe(1);
      unpin_user_pages(pages, 1);
    }
  });

  it('R-GUP-2 (6), O-6: writing a read-only mapping needs FOLL_FORCE, and FOLL_FORCE needs a COW mapping', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_READ);
    const ext4 = createExt4File('/a', new Uint8Array(PAGE_SIZE));
    mmap(env, F, 1, PROT_READ, MAP_SHARED, ext4);
    const priv = vmaOf(env, A);
    const shared = vmaOf(env, F);
    expect(check_vma_flags(priv, FOLL_WRITE)).toBe(EFAULT);
    expect(check_vma_flags(priv, FOLL_WRITE | FOLL_FORCE)).toBe(0);
    // A read-only shared mapping of a writable fd keeps VM_MAYWRITE, but is not COW.
    expect(check_vma_flags(shared, FOLL_WRITE | FOLL_FORCE)).toBe(EFAULT);
    const ro = createExt4File('/b', new Uint8Array(PAGE_SIZE), O_RDONLY);
    mmap(env, F + 0x100000, 1, PROT_READ, MAP_SHARED, ro);
    expect(check_vma_flags(vmaOf(env, F + 0x100000), FOLL_WRITE | FOLL_FORCE)).toBe(EFAULT);
  });

  it('R-GUP-2 (6), O-8: FOLL_FORCE|FOLL_WRITE on a read-only private hugetlb VMA: refused on v6.1-v6.13, allowed on v5.15 and v6.15+', () => {
    for (const [v, want] of [
      ['5.15', 0],
      ['6.1', EFAULT],
      ['6.12', EFAULT],
      ['6.13', EFAULT],
      ['6.15', 0],
      ['6.18', 0],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1, PROT_READ);
      const vma = vmaOf(env, A);
      vma.vm_flags |= VM_HUGETLB;
      expect(check_vma_flags(vma, FOLL_WRITE | FOLL_FORCE)).toBe(want);
    }
  });

  it('R-GUP-2 (7), O-5: reading PROT_NONE needs FOLL_FORCE (VM_MAYREAD is there)', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_NONE);
    const vma = vmaOf(env, A);
    expect(check_vma_flags(vma, 0)).toBe(EFAULT);
    expect(check_vma_flags(vma, FOLL_FORCE)).toBe(0);
    vma.vm_flags &= ~0x10n; // VM_MAYREAD
    expect(check_vma_flags(vma, FOLL_FORCE)).toBe(EFAULT);
  });
});

describe('get_user_pages_remote', () => {
  it('R-GUP-4, O-6: a FOLL_FORCE write to a read-only private file mapping COWs into an exclusive anon page; the file page and the PTE stay read-only', () => {
    for (const v of ['5.15', '6.1', '6.18']) {
      const env = boot(v);
      const data = new Uint8Array(PAGE_SIZE).fill(0x5a);
      mmap(env, F, 1, PROT_READ, MAP_PRIVATE, createExt4File('/lib.so', data));
      expect(read(env, F)).toBe('ok');
      const cache = pfnAt(env, F)!;
      const mm = env.task.mm!;
      const pages = newPages(1);
      const r = locked(env, get_user_pages_remote(mm, F, 1, FOLL_FORCE | FOLL_WRITE, pages, null));
      expect(r).toBe(1);
      const anon = pages[0]!;
      expect(anon).not.toBe(cache);
      expect(pfnAt(env, F)).toBe(anon);
      expect(folio_test_anon(page_folio(anon))).toBe(true);
      expect(PageAnonExclusive(anon)).toBe(true);
      expect(pte_write(pteAt(env, F))).toBe(false); // maybe_mkwrite: !VM_WRITE
      expect(phys_read(anon * PAGE_SIZE, 4)).toEqual(new Uint8Array([0x5a, 0x5a, 0x5a, 0x5a]));
      folio_put(page_folio(anon));
    }
  });

  it('O-6: non-forced writes to read-only private or shared mappings are -EFAULT; a forced write to a read-only shared mapping too', () => {
    const env = boot('6.18');
    mmap(env, F, 1, PROT_READ, MAP_PRIVATE, createExt4File('/a', new Uint8Array(PAGE_SIZE)));
    mmap(
      env,
      F + 0x100000,
      1,
      PROT_READ,
      MAP_SHARED,
      createExt4File('/b', new Uint8Array(PAGE_SIZE)),
    );
    const mm = env.task.mm!;
    expect(locked(env, get_user_pages_remote(mm, F, 1, FOLL_WRITE, newPages(1), null))).toBe(
      EFAULT,
    );
    expect(
      locked(
        env,
        get_user_pages_remote(mm, F + 0x100000, 1, FOLL_WRITE | FOLL_FORCE, newPages(1), null),
      ),
    ).toBe(EFAULT);
  });

  it('O-5: a forced read of untouched PROT_NONE memory maps the zero page; a forced write allocates an anonymous page', () => {
    const env = boot('6.18');
    mmap(env, A, 2, PROT_NONE);
    const mm = env.task.mm!;
    const pages = newPages(1);
    expect(locked(env, get_user_pages_remote(mm, A, 1, FOLL_FORCE, pages, null))).toBe(1);
    expect(pages[0]).toBe(zero_pfn());
    folio_put(page_folio(pages[0]!));
    expect(
      locked(
        env,
        get_user_pages_remote(mm, A + PAGE_SIZE, 1, FOLL_FORCE | FOLL_WRITE, pages, null),
      ),
    ).toBe(1);
    expect(folio_test_anon(page_folio(pages[0]!))).toBe(true);
    expect(pfnAt(env, A + PAGE_SIZE)).toBe(pages[0]);
    folio_put(page_folio(pages[0]!));
    // The process itself still cannot touch it.
    expect(read(env, A + PAGE_SIZE)).toBe('SIGSEGV');
  });

  it('R-GUP-3: no VMA at start is -EFAULT; a hole after k pages returns k', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    const mm = env.task.mm!;
    expect(locked(env, get_user_pages_remote(mm, A - PAGE_SIZE, 1, 0, newPages(1), null))).toBe(
      EFAULT,
    );
    const pages = newPages(4);
    expect(locked(env, get_user_pages_remote(mm, A, 4, FOLL_WRITE, pages, null))).toBe(2);
    for (const p of pages.slice(0, 2)) folio_put(page_folio(p!));
    expect(pages[2]).toBeNull();
  });

  it('R-GUP-5: FOLL_GET takes one plain reference per page (no bias), and does not set MMF_HAS_PINNED', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A, 1);
    const pfn = pfnAt(env, A)! as page;
    const before = page_ref_count(pfn);
    const pages = newPages(1);
    expect(locked(env, get_user_pages_remote(env.task.mm!, A, 1, 0, pages, null))).toBe(1);
    expect(page_ref_count(pfn)).toBe(before + 1);
    expect(mm_flags_test(MMF_HAS_PINNED, env.task.mm!)).toBe(false);
    folio_put(page_folio(pfn));
  });

  it('R-GUP-1: FOLL_PIN or FOLL_LONGTERM from a get_user_pages_remote caller WARN and are -EINVAL (v6.18 and v5.15)', () => {
    for (const v of ['6.18', '5.15']) {
      const env = boot(v);
      mmap(env, A, 1);
      const mm = env.task.mm!;
      expect(locked(env, get_user_pages_remote(mm, A, 1, FOLL_PIN, newPages(1), null))).toBe(
        EINVAL,
      );
      expect(locked(env, get_user_pages_remote(mm, A, 1, FOLL_LONGTERM, newPages(1), null))).toBe(
        EINVAL,
      );
      expect(warned(env)).toBe(true);
    }
  });
});

describe('follow_page_pte', () => {
  it('R-GUP-6: a VM_MIXEDMAP pfn without struct page: -EEXIST when pages[] is wanted (v5.18+), skipped without pages', () => {
    const env = boot('6.18');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, mixedDriver());
    expect(read(env, D)).toBe('ok');
    expect(pfnAt(env, D)).toBe(BAR_PFN);
    const mm = env.task.mm!;
    expect(locked(env, get_user_pages_remote(mm, D, 1, 0, newPages(1), null))).toBe(EEXIST);
    expect(locked(env, pin_user_pages(D, 1, 0, newPages(1)))).toBe(EEXIST);
    // Without pages[] the entry is accepted as "there" (populating does this).
    expect(locked(env, get_user_pages_remote(mm, D, 1, 0, null, null))).toBe(1);
  });

  it('R-GUP-6: FOLL_DUMP on the special entry is -EFAULT (no core dump of special pages)', () => {
    const env = boot('6.18');
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, mixedDriver());
    read(env, D);
    expect(locked(env, get_user_pages_remote(env.task.mm!, D, 1, FOLL_DUMP, null, null))).toBe(
      EFAULT,
    );
  });

  it('R-GUP-6 history: v5.15 refuses FOLL_GET with -EFAULT and counts a FOLL_PIN without filling pages[] (the bug fixed in v5.17)', () => {
    const env = boot('5.15');
    mmap(env, D, 1, PROT_READ | PROT_WRITE, MAP_SHARED, mixedDriver());
    read(env, D);
    expect(locked(env, get_user_pages_remote(env.task.mm!, D, 1, 0, newPages(1), null))).toBe(
      EFAULT,
    );
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(D, 1, 0, pages))).toBe(1);
    expect(pages[0]).toBeNull();
  });

  it('R-GUP-6: the zero page is returned for a read of untouched anonymous memory; FOLL_PIN does not pin it on v6.5+, did on v6.1', () => {
    for (const [v, bias] of [
      ['6.18', 0],
      ['6.1', GUP_PIN_COUNTING_BIAS],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1, PROT_READ);
      const z = zero_pfn() as page;
      const before = page_ref_count(z);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, 0, pages))).toBe(1);
      expect(pages[0]).toBe(z);
      expect(page_ref_count(z)).toBe(before + bias);
      unpin_user_pages(pages, 1);
      expect(page_ref_count(z)).toBe(before);
    }
  });

  it('R-GUP-5: a read-only pin of a shared anonymous page unshares it first (v5.19+): the pinned page is exclusive; v5.15 pins the shared page', () => {
    for (const v of ['6.18', '5.15']) {
      const env = boot(v);
      mmap(env, A, 1);
      write(env, A, 7);
      const orig = pfnAt(env, A)!;
      const child = env.run(fork_task(env.task)) as task_struct;
      expect(pfnAt(env, A, child)).toBe(orig);
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(A, 1, 0, pages))).toBe(1);
      if (v === '6.18') {
        expect(pages[0]).not.toBe(orig);
        expect(PageAnonExclusive(pages[0]!)).toBe(true);
        expect(pfnAt(env, A)).toBe(pages[0]);
      } else {
        expect(pages[0]).toBe(orig);
      }
      unpin_user_pages(pages, 1);
      env.run(exit_mm(child), threadOf(child));
    }
  });
});

describe('try_grab_folio', () => {
  it('R-GUP-5: a PMD-mapped THP counts pins in _pincount (+1 reference per pinned page); unpin undoes both', () => {
    const env = boot('6.18');
    const THP = 0x40000000;
    mmap(env, THP, 512);
    expect(write(env, THP, 1)).toBe('ok');
    expect(walkToLeaf(env.task.mm!, THP)!.level).toBe('pmd');
    const head = pfnAt(env, THP)! as number as folio;
    const refs = page_ref_count(head as number as page);
    const pages = newPages(4);
    expect(locked(env, pin_user_pages(THP + 8 * PAGE_SIZE, 4, FOLL_WRITE, pages))).toBe(4);
    expect(pages).toEqual([head + 8, head + 9, head + 10, head + 11]);
    expect(folio_pincount(head)).toBe(4);
    expect(page_ref_count(head as number as page)).toBe(refs + 4);
    expect(folio_maybe_dma_pinned(head)).toBe(true);
    unpin_user_pages(pages, 4);
    expect(folio_pincount(head)).toBe(0);
    expect(page_ref_count(head as number as page)).toBe(refs);
  });

  it('R-GUP-5: a P2PDMA page without FOLL_PCI_P2PDMA is -EREMOTEIO (v6.2+); v6.1 pins it', () => {
    for (const [v, want] of [
      ['6.18', EREMOTEIO],
      ['6.1', 0],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      write(env, A, 1);
      const pfn = pfnAt(env, A)!;
      mark_pci_p2pdma_page(pfn);
      const f = pfn as folio;
      const before = page_ref_count(pfn as page);
      expect(try_grab_folio(f, 1, FOLL_PIN)).toBe(want);
      expect(page_ref_count(pfn as page)).toBe(before + (want ? 0 : GUP_PIN_COUNTING_BIAS));
      if (v === '6.18') {
        expect(try_grab_folio(f, 1, FOLL_PIN | FOLL_PCI_P2PDMA)).toBe(0);
        expect(locked(env, pin_user_pages(A, 1, 0, newPages(1)))).toBe(EREMOTEIO);
      }
    }
  });

  it('R-GUP-5: a folio with no references WARNs and is -ENOMEM', () => {
    const env = boot('6.18');
    env.k.activate();
    // A free frame (refcount 0) from the middle of RAM.
    const free = 0x30000 as folio;
    expect(page_is_free(free)).toBe(true);
    expect(try_grab_folio(free, 1, FOLL_GET)).toBe(ENOMEM);
    expect(warned(env)).toBe(true);
  });
});

describe('unpin_user_pages_dirty_lock', () => {
  it('R-GUP-5: marks a clean page-cache folio dirty (under its lock) and drops the pin', () => {
    const env = boot('6.18');
    mmap(env, F, 1, PROT_READ, MAP_SHARED, createExt4File('/x', new Uint8Array(PAGE_SIZE)));
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(F, 1, 0, pages))).toBe(1);
    const f = page_folio(pages[0]!);
    const before = page_ref_count(f as number as page);
    expect(folio_test_dirty(f)).toBe(false);
    env.run(unpin_user_pages_dirty_lock(pages, 1, true));
    expect(folio_test_dirty(f)).toBe(true);
    expect(page_ref_count(f as number as page)).toBe(before - GUP_PIN_COUNTING_BIAS);
  });
});

describe('unpin_folios', () => {
  it('R-GUP-5: releases one pin per entry (runs of one folio together, NULLs skipped); unknown before v6.11', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    const f = page_folio(pages[0]!);
    const before = page_ref_count(f as number as page);
    unpin_folios([f, null, f], 3);
    expect(page_ref_count(f as number as page)).toBe(before - 2 * GUP_PIN_COUNTING_BIAS);
    const old = boot('6.10');
    old.k.activate();
    expect(() => unpin_folio(f)).toThrow(/does not exist in kernel 6.10/);
    env.k.activate();
  });
});

describe('get_user_pages_unlocked', () => {
  it('R-GUP-1: takes mmap_lock itself; FOLL_LONGTERM through pin_user_pages_unlocked was refused before v6.3', () => {
    for (const [v, want] of [
      ['6.18', 1],
      ['6.1', EINVAL],
    ] as const) {
      const env = boot(v);
      mmap(env, A, 1);
      const pages = newPages(1);
      expect(env.run(get_user_pages_unlocked(A, 1, pages, 0))).toBe(1);
      expect(env.task.mm!.mmap_lock.isLocked()).toBe(false);
      folio_put(page_folio(pages[0]!));
      expect(env.run(pin_user_pages_unlocked(A, 1, pages, FOLL_LONGTERM))).toBe(want);
      if (want === 1) unpin_user_page(pages[0]!);
    }
  });
});

describe('fixup_user_fault', () => {
  it('R-GUP-9: no VMA or a missing permission is -EFAULT; a write fault maps a writable page', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_READ);
    mmap(env, A + 0x100000, 1, PROT_NONE);
    mmap(env, A + 0x200000, 1);
    const mm = env.task.mm!;
    expect(locked(env, fixup_user_fault(mm, A - 0x100000, 0, null))).toBe(EFAULT);
    expect(locked(env, fixup_user_fault(mm, A, FAULT_FLAG_WRITE, null))).toBe(EFAULT);
    expect(locked(env, fixup_user_fault(mm, A + 0x100000, 0, null))).toBe(EFAULT);
    expect(locked(env, fixup_user_fault(mm, A + 0x200000, FAULT_FLAG_WRITE, null))).toBe(0);
    expect(pte_write(pteAt(env, A + 0x200000))).toBe(true);
    expect(pte_dirty(pteAt(env, A + 0x200000))).toBe(true);
  });

  it('R-GUP-9: invokes the ->fault of a VM_PFNMAP VMA (GUP would refuse it); VM_FAULT_SIGBUS is -EFAULT', () => {
    const env = boot('6.18');
    mmap(env, D, 8, PROT_READ | PROT_WRITE, MAP_SHARED, faultPfnDriver());
    const mm = env.task.mm!;
    expect(locked(env, fixup_user_fault(mm, D + PAGE_SIZE, 0, null))).toBe(0);
    expect(pfnAt(env, D + PAGE_SIZE)).toBe(BAR_PFN + 1);
    expect(pte_young(pteAt(env, D + PAGE_SIZE)) || true).toBe(true);
    expect(locked(env, fixup_user_fault(mm, D + 5 * PAGE_SIZE, 0, null))).toBe(EFAULT);
    expect(locked(env, get_user_pages_remote(mm, D + PAGE_SIZE, 1, 0, newPages(1), null))).toBe(
      EFAULT,
    );
  });

  it('R-GUP-9: a fatal signal is -EINTR when retries are allowed (unlocked given)', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    env.task.fatal_signal = true;
    const unlocked = { value: false };
    expect(locked(env, fixup_user_fault(env.task.mm!, A, 0, unlocked))).toBe(EINTR);
    expect(locked(env, fixup_user_fault(env.task.mm!, A, 0, null))).toBe(0);
  });
});

describe('populate_vma_page_range', () => {
  it('R-VMA-2: writable private memory is populated with write faults (COW broken), shared with reads; PROT_NONE is -EFAULT', () => {
    for (const v of ['6.18', '6.1', '5.15']) {
      const env = boot(v);
      mmap(env, A, 2);
      mmap(env, A + 0x100000, 1, PROT_NONE);
      const vma = vma_lookup(env.task.mm!, A)!;
      expect(locked(env, populate_vma_page_range(vma, A, A + 2 * PAGE_SIZE, null))).toBe(2);
      expect(pte_write(pteAt(env, A))).toBe(true);
      expect(pfnAt(env, A)).not.toBe(zero_pfn());
      const none = vma_lookup(env.task.mm!, A + 0x100000)!;
      expect(locked(env, populate_vma_page_range(none, A + 0x100000, A + 0x101000, null))).toBe(
        EFAULT,
      );
    }
  });
});

describe('__mm_populate', () => {
  it('R-VMA-2, O-2: VM_IO|VM_PFNMAP VMAs are skipped silently; the rest of the range is populated', () => {
    const env = boot('6.18');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, faultPfnDriver());
    mmap(env, D + 2 * PAGE_SIZE, 2);
    expect(env.run(__mm_populate(D, 4 * PAGE_SIZE, false))).toBe(0);
    expect(pfnAt(env, D)).toBeNull(); // the driver's fault was never called
    expect(pfnAt(env, D + 2 * PAGE_SIZE)).not.toBeNull();
    expect(env.task.mm!.mmap_lock.isLocked()).toBe(false);
  });

  it('O-4, O-5: a GUP error stops the walk and is returned (-EFAULT), unless errors are ignored', () => {
    const env = boot('6.18');
    mmap(env, A, 1, PROT_NONE);
    mmap(env, A + PAGE_SIZE, 1);
    expect(env.run(__mm_populate(A, 2 * PAGE_SIZE, false))).toBe(EFAULT);
    expect(pfnAt(env, A + PAGE_SIZE)).toBeNull();
    expect(env.run(__mm_populate(A, 2 * PAGE_SIZE, true))).toBe(0);
    expect(pfnAt(env, A + PAGE_SIZE)).not.toBeNull();
  });
});

describe('unpin_user_pages', () => {
  it('O-10: munmap succeeds on a pinned range; the pin keeps the page; the unpin frees it', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A, 0x42);
    const pfn = pfnAt(env, A)!;
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE | FOLL_LONGTERM, pages))).toBe(1);
    expect(env.run(vm_munmap(env.task.mm!, A, PAGE_SIZE))).toBe(0);
    env.run(task_work_run());
    expect(pfnAt(env, A)).toBeNull();
    expect(page_is_free(pfn)).toBe(false);
    expect(page_ref_count(pfn as page)).toBe(GUP_PIN_COUNTING_BIAS);
    expect(phys_read(pfn * PAGE_SIZE, 1)[0]).toBe(0x42);
    unpin_user_pages(pages, 1);
    expect(page_is_free(pfn)).toBe(true);
  });

  it('O-10: MADV_DONTNEED on a pinned private page succeeds; the refault gets another page, the pin keeps the old one', () => {
    const env = boot('6.18');
    mmap(env, A, 1);
    write(env, A, 0x42);
    const pfn = pfnAt(env, A)!;
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    expect(env.run(do_madvise(env.task.mm!, A, PAGE_SIZE, MADV_DONTNEED))).toBe(0);
    expect(write(env, A, 0x43)).toBe('ok');
    expect(pfnAt(env, A)).not.toBe(pfn);
    expect(phys_read(pfn * PAGE_SIZE, 1)[0]).toBe(0x42);
    unpin_user_pages(pages, 1);
    expect(page_is_free(pfn)).toBe(true);
  });

  it('O-10: MADV_DONTNEED on a pinned shared (tmpfs) page: the refault finds the same page', () => {
    const env = boot('6.18');
    const tmp = env.run(createTmpfsFile('/tmp/s', new Uint8Array(PAGE_SIZE).fill(1)));
    mmap(env, F, 1, PROT_READ | PROT_WRITE, MAP_SHARED, tmp);
    write(env, F, 2);
    const pfn = pfnAt(env, F)!;
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(F, 1, FOLL_WRITE, pages))).toBe(1);
    expect(env.run(do_madvise(env.task.mm!, F, PAGE_SIZE, MADV_DONTNEED))).toBe(0);
    expect(read(env, F)).toBe('ok');
    expect(pfnAt(env, F)).toBe(pfn);
    unpin_user_pages(pages, 1);
  });

  it('O-9: a pinned anonymous page in a COW mapping is copied into the child at fork; an unpinned one is shared', () => {
    const env = boot('6.18');
    mmap(env, A, 2);
    write(env, A, 1);
    write(env, A + PAGE_SIZE, 2);
    const pinned = pfnAt(env, A)!;
    const plain = pfnAt(env, A + PAGE_SIZE)!;
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(A, 1, FOLL_WRITE, pages))).toBe(1);
    const child = env.run(fork_task(env.task)) as task_struct;
    expect(pfnAt(env, A)).toBe(pinned);
    expect(pfnAt(env, A, child)).not.toBe(pinned);
    expect(pfnAt(env, A + PAGE_SIZE, child)).toBe(plain);
    // The parent's pinned page stays writable and exclusive: its writes reach the pin.
    expect(pte_write(pteAt(env, A))).toBe(true);
    unpin_user_pages(pages, 1);
    env.run(exit_mm(child), threadOf(child));
  });

  it('R-GUP-5: a negative count (an errno passed by mistake) WARNs and releases nothing', () => {
    const env = boot('6.18');
    env.k.activate();
    unpin_user_pages([], -14);
    expect(warned(env)).toBe(true);
  });
});

describe('pin_user_pages_remote', () => {
  it('R-GUP-1: invalid arguments return 0 (v6.18) and FOLL_LONGTERM with `locked` was -EINVAL before v6.3', () => {
    let env = boot('6.18');
    mmap(env, A, 1);
    const mm = env.task.mm!;
    expect(locked(env, pin_user_pages_remote(mm, A, 1, FOLL_GET, newPages(1), null))).toBe(0);
    const pages = newPages(1);
    expect(locked(env, pin_user_pages_remote(mm, A, 1, FOLL_LONGTERM, pages, { value: 1 }))).toBe(
      1,
    );
    unpin_user_pages(pages, 1);
    env = boot('6.1');
    mmap(env, A, 1);
    expect(
      locked(
        env,
        pin_user_pages_remote(env.task.mm!, A, 1, FOLL_LONGTERM, newPages(1), { value: 1 }),
      ),
    ).toBe(EINVAL);
  });

  it('process_vm_writev-style: pins another process pages with FOLL_REMOTE semantics', () => {
    const env = boot('6.18');
    const other = create_user_task('other');
    mmap(env, A, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, null, other);
    write(env, A, 9, other);
    const pages = newPages(1);
    const r = env.run(
      (function* () {
        yield* mmap_read_lock(other.mm!);
        const n = yield* pin_user_pages_remote(other.mm!, A, 1, FOLL_WRITE, pages, null);
        yield* mmap_read_unlock(other.mm!);
        return n;
      })(),
    );
    expect(r).toBe(1);
    expect(pages[0]).toBe(pfnAt(env, A, other));
    expect(mm_flags_test(MMF_HAS_PINNED, other.mm!)).toBe(true);
    expect(mm_flags_test(MMF_HAS_PINNED, env.task.mm!)).toBe(false);
    unpin_user_pages(pages, 1);
  });
});

describe('get_user_pages', () => {
  it('R-GUP-1: FOLL_TOUCH is implied by get_user_pages*(), not by pin_user_pages(): a write lookup of a special entry marks it dirty', () => {
    const env = boot('6.18');
    mmap(env, D, 2, PROT_READ | PROT_WRITE, MAP_SHARED, mixedDriver());
    read(env, D);
    read(env, D + PAGE_SIZE);
    expect(pte_dirty(pteAt(env, D))).toBe(false);
    expect(locked(env, pin_user_pages(D, 1, FOLL_WRITE, newPages(1)))).toBe(EEXIST);
    expect(pte_dirty(pteAt(env, D))).toBe(false);
    expect(locked(env, get_user_pages(D + PAGE_SIZE, 1, FOLL_WRITE, null))).toBe(1);
    expect(pte_dirty(pteAt(env, D + PAGE_SIZE))).toBe(true);
  });

  it('R-GUP-5: get_user_pages_fast on a page-cache folio takes one reference', () => {
    const env = boot('6.18');
    const tmp = env.run(createTmpfsFile('/tmp/t', new Uint8Array(PAGE_SIZE)));
    mmap(env, F, 1, PROT_READ | PROT_WRITE, MAP_SHARED, tmp);
    read(env, F);
    const pfn = pfnAt(env, F)! as page;
    const before = page_ref_count(pfn);
    const pages = newPages(1);
    expect(env.run(get_user_pages_fast(F, 1, 0, pages))).toBe(1);
    expect(page_ref_count(pfn)).toBe(before + 1);
    folio_get(page_folio(pfn));
    folio_put(page_folio(pfn));
    folio_put(page_folio(pfn));
  });
});

describe('copy_huge_pmd', () => {
  it('O-9: fork splits the PMD of a THP the parent has pinned and copies its 4 KiB pages for the child (v5.9+); an unpinned THP stays shared as a PMD', () => {
    for (const v of ['6.18', '6.1', '5.10']) {
      const env = boot(v);
      const THP = 0x40000000;
      mmap(env, THP, 512);
      mmap(env, THP + 0x200000, 512);
      expect(write(env, THP, 1)).toBe('ok');
      expect(write(env, THP + 0x200000, 2)).toBe('ok');
      const mm = env.task.mm!;
      expect(walkToLeaf(mm, THP)!.level).toBe('pmd');
      const head = pfnAt(env, THP)!;
      const pages = newPages(1);
      expect(locked(env, pin_user_pages(THP + 3 * PAGE_SIZE, 1, FOLL_WRITE, pages))).toBe(1);
      const child = env.run(fork_task(env.task)) as task_struct;
      // Pinned THP: the parent's PMD was split; it still maps the same folio, writable.
      expect(walkToLeaf(mm, THP)!.level).toBe('pte');
      expect(pfnAt(env, THP + 3 * PAGE_SIZE)).toBe(head + 3);
      expect(pte_write(pteAt(env, THP + 3 * PAGE_SIZE))).toBe(true);
      // The child has its own 4 KiB copies.
      expect(walkToLeaf(child.mm!, THP)!.level).toBe('pte');
      const c3 = pfnAt(env, THP + 3 * PAGE_SIZE, child)!;
      expect(c3).not.toBe(head + 3);
      expect(folio_pincount(page_folio(c3 as page))).toBe(0);
      // Unpinned THP: shared as a PMD leaf in both.
      expect(walkToLeaf(child.mm!, THP + 0x200000)!.level).toBe('pmd');
      expect(pfnAt(env, THP + 0x200000, child)).toBe(pfnAt(env, THP + 0x200000));
      unpin_user_pages(pages, 1);
      env.run(exit_mm(child), threadOf(child));
    }
  });

  it('O-9 history: v5.8 shares even a pinned THP with the child (no split at fork)', () => {
    const env = boot('5.8');
    const THP = 0x40000000;
    mmap(env, THP, 512);
    expect(write(env, THP, 1)).toBe('ok');
    const pages = newPages(1);
    expect(locked(env, pin_user_pages(THP, 1, FOLL_WRITE, pages))).toBe(1);
    const child = env.run(fork_task(env.task)) as task_struct;
    expect(walkToLeaf(env.task.mm!, THP)!.level).toBe('pmd');
    expect(pfnAt(env, THP, child)).toBe(pfnAt(env, THP));
    unpin_user_pages(pages, 1);
    env.run(exit_mm(child), threadOf(child));
  });
});
