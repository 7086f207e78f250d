/**
 * Tests of the page-fault handlers (mm/memory.c, fault half).
 * Rules: kernel-spec.md §9 R-FORK-4 (do_wp_page / wp_pfn_shared / wp_page_copy), §2 R-VNP-6
 * (the write-fault consumer of vm_normal_page NULL), §8 R-MMUN-2 (wp_page_copy = CLEAR for
 * one page), §11 O-2 (SIGBUS where a driver's fault returns VM_FAULT_SIGBUS).
 *
 * Each test boots its own kernel; user accesses go through the model's MMU
 * (cpu_user_read / cpu_user_write), which faults into do_user_addr_fault.
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from './migrate.testlib.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task, fork_task } from '../kernel/fork.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  file_operations,
  page,
  vm_fault,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { FAULT_FLAG_WRITE, MM_ANONPAGES } from '../include/linux/mm_types.js';
import {
  get_mm_counter,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_IO,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_MAYREAD,
  VM_WRITE,
} from '../include/linux/mm.js';
import { page_mapcount, PageAnonExclusive, folio_test_anon } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { ptep_get, ptep_set_wrprotect, walkToPte, zero_pfn } from '../include/linux/pgtable.js';
import { pte_special } from '../arch/x86/include/asm/pgtable.js';
import {
  _PAGE_RW,
  pfn_pte,
  pte_dirty,
  pte_flags,
  pte_pfn,
  pte_present,
  pte_protnone,
  pte_write,
  pte_wrprotect,
  pte_young,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pte_mkspecial } from '../arch/x86/include/asm/pgtable.js';
import { set_pte_at } from '../include/linux/pgtable.js';
import {
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_ANONYMOUS,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from './mmap.js';
import { vma_lookup, vm_area_alloc, vma_link } from './vma.js';
import { new_inode, alloc_file, O_RDWR } from '../fs/inode.js';
import { cpu_user_read, cpu_user_write } from '../arch/x86/mm/fault.js';
import { mmu_notifier_register, notifierLog } from './mmu_notifier.js';
import { phys_read, phys_write } from './sparse.js';
import { handle_mm_fault } from './memory.fault.js';
import { vm_normal_page } from './memory.normal.js';
import { remap_pfn_range } from './memory.pfnmap.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { KernelBug } from '../kernel/panic.js';

const GiB = 2 ** 30;
/** A device BAR without struct pages: pfns 0xc0000.. */
const BAR = 0xc0000000;
const BAR_PFN = BAR / 4096;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12', config: Record<string, boolean> = {}): Env {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [
      ...x86_64_e820(4 * GiB),
      { start: BAR, end: BAR + 0x200000, kind: 'mmio', name: 'dev BAR' },
    ],
  });
  const task = create_user_task('test');
  const thread = new SchedThread(0, 'test', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

function mmap(
  env: Env,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  f: file | null = null,
  pgoff = 0,
): number {
  return env.run(vm_mmap_pgoff(env.task.mm!, f, addr, len, prot, flags | MAP_FIXED, pgoff));
}

function pte(env: Env, addr: number): number {
  const p = walkToPte(env.task.mm!, addr);
  return p ? ptep_get(p) : 0;
}

function write(env: Env, addr: number, bytes: number[]) {
  return env.run(cpu_user_write(env.task, addr, new Uint8Array(bytes)));
}

function read(env: Env, addr: number, len: number) {
  return env.run(cpu_user_read(env.task, addr, len));
}

/** handle_mm_fault under mmap_lock, as a caller like GUP would. */
function fault(env: Env, addr: number, flags: number): number {
  const mm = env.task.mm!;
  return env.run(
    (function* () {
      yield* mmap_read_lock(mm);
      const r = yield* handle_mm_fault(vma_lookup(mm, addr)!, addr, flags);
      yield* mmap_read_unlock(mm);
      return r;
    })(),
  );
}

/** A character device whose mmap remaps `pfn` (remap_pfn_range) and has the given ops. */
function pfnDevice(
  env: Env,
  ops: Partial<vm_operations_struct>,
  pfn = BAR_PFN,
  remap = true,
): file {
  const fops: file_operations = {
    name: 'testdev_fops',
    *mmap(_f, vma) {
      vma.vm_ops = { name: 'testdev_vm_ops', ...ops };
      if (!remap) {
        vma.vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
        return 0;
      }
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        pfn,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  };
  const sb = { s_type: 'devtmpfs', s_nowriteback: true };
  return alloc_file('/dev/testdev', O_RDWR, new_inode(sb, 'chr'), fops);
}

import type { Runner } from '../../sched/index.js';
import type { folio } from '../include/linux/mm_types.js';
import { __GFP_MOVABLE } from './page_alloc.js';
import {
  is_migration_entry,
  is_writable_migration_entry,
  swp_entry,
  swp_entry_to_pte,
} from '../include/linux/swapops.js';
import { migrate_failure } from './migrate.js';
import { page_is_free } from './page_alloc.js';

/**
 * Starts migrate_pages() of the folio mapped at `addr` (isolated first) in thread 0 of a
 * runner, and stops it once try_to_migrate has replaced the mappings by migration entries
 * and dropped the PTE lock: its next step is the reference check of __migrate_folio.
 */
function startMigration(env: Env, addr: number) {
  const src = pte_pfn(pte(env, addr)) as folio;
  return migrationAtRefCheck(env.k, src);
}

/** handle_mm_fault under mmap_lock, as an op (for a runner thread). */
function* faultOp(env: Env, addr: number, flags: number) {
  const mm = env.task.mm!;
  yield* mmap_read_lock(mm);
  const ret = yield* handle_mm_fault(vma_lookup(mm, addr)!, addr, flags);
  yield* mmap_read_unlock(mm);
  return ret;
}

/** Steps thread tid while it can run; returns what it is blocked on (or null if done). */
function runUntilBlocked(r: Runner, tid: number): string | null {
  const t = r.threads[tid]!;
  while (!t.done && r.enabled().includes(t)) r.step(tid);
  return t.done ? null : (t.pending!.what ?? null);
}

describe('do_anonymous_page', () => {
  it('R-VNP-6: a read fault on anonymous memory maps the zero page: special, no reference, no RSS', () => {
    const env = boot();
    // 0x10000000: one private anonymous page.
    mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const zp = zero_pfn();
    const ref0 = page_ref_count(zp as page);
    const r = read(env, 0x10000010, 16);
    expect(r.kind).toBe('ok');
    if (r.kind === 'ok') expect([...r.data].every((b) => b === 0)).toBe(true);
    const v = pte(env, 0x10000000);
    expect(pte_pfn(v)).toBe(zp);
    expect(pte_special(v)).toBe(true);
    expect(pte_write(v)).toBe(false);
    expect(page_ref_count(zp as page)).toBe(ref0);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(0);
  });

  it('a write fault allocates a zeroed exclusive anonymous page: RSS +1, mapcount 1, writable and dirty', () => {
    const env = boot();
    mmap(env, 0x10000000, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(write(env, 0x10001008, [0xaa, 0xbb]).kind).toBe('ok');
    const v = pte(env, 0x10001000);
    const pfn = pte_pfn(v);
    expect(pfn).not.toBe(zero_pfn());
    expect(pte_write(v) && pte_dirty(v) && pte_young(v)).toBe(true);
    expect(page_mapcount(pfn as page)).toBe(1);
    expect(page_ref_count(pfn as page)).toBe(1);
    expect(PageAnonExclusive(pfn as page)).toBe(true);
    expect(folio_test_anon(pfn as never)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    expect([...phys_read(pfn * 4096 + 8, 3)]).toEqual([0xaa, 0xbb, 0]);
  });

  it('a VM_SHARED VMA without vm_ops is refused with VM_FAULT_SIGBUS', () => {
    const env = boot();
    const mm = env.task.mm!;
    const vma = vm_area_alloc(mm);
    vma.vm_start = 0x20000000;
    vma.vm_end = 0x20001000;
    vma.vm_flags = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE;
    vma_link(mm, vma);
    expect(fault(env, 0x20000000, 0)).toBe(VM_FAULT_SIGBUS);
  });
  it('two threads racing a write fault on one page: one page is mapped and the loser frees its own', () => {
    let raced = 0;
    for (const pattern of [
      [0, 1],
      [1, 0],
      [0, 0, 1],
      [1, 1, 0],
      [0, 1, 1, 0],
      [0, 0, 0, 1, 1, 1],
    ]) {
      const env = boot();
      mmap(env, 0x10000000, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      // The page tables exist (0x10001000 is faulted in): the race is on the PTE of 0x10000000.
      write(env, 0x10001000, [0]);
      const stats = (env.k.sub.page_alloc as { stats: { allocs: number; frees: number } }).stats;
      const live0 = stats.allocs - stats.frees;
      const allocs0 = stats.allocs;
      const r = env.k.runner();
      r.spawn('t0', cpu_user_write(env.task, 0x10000000, new Uint8Array([1])), env.task);
      r.spawn('t1', cpu_user_write(env.task, 0x10000004, new Uint8Array([2])), env.task);
      for (let i = 0; !r.isFinished(); i++) {
        if (!r.step(pattern[i % pattern.length]!)) r.step(r.enabled()[0]!.id);
      }
      expect(r.threads.map((t) => (t.result as { kind: string }).kind)).toEqual(['ok', 'ok']);
      const v = pte(env, 0x10000000);
      expect([...phys_read(pte_pfn(v) * 4096, 5)]).toEqual([1, 0, 0, 0, 2]);
      expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(2);
      expect(stats.allocs - stats.frees - live0).toBe(1);
      if (stats.allocs - allocs0 === 2) raced++;
    }
    // Some schedules let both threads allocate: the loser's page was freed (vmf_pte_changed).
    expect(raced).toBeGreaterThan(0);
  });
});

describe('handle_mm_fault', () => {
  it('v6.2+ sanitize_fault_flags: a write fault on a VMA without VM_MAYWRITE WARNs and returns VM_FAULT_SIGSEGV', () => {
    const env = boot('6.12');
    mmap(env, 0x10000000, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    vma.vm_flags &= ~VM_MAYWRITE;
    expect(fault(env, 0x10000000, FAULT_FLAG_WRITE)).toBe(VM_FAULT_SIGSEGV);
    expect(env.k.log.some((l) => l.text.startsWith('WARNING:'))).toBe(true);
  });

  it('v6.1 has no such check: the same write fault allocates a page mapped read-only', () => {
    const env = boot('6.1');
    mmap(env, 0x10000000, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    const vma = vma_lookup(env.task.mm!, 0x10000000)!;
    vma.vm_flags &= ~VM_MAYWRITE;
    expect(fault(env, 0x10000000, FAULT_FLAG_WRITE)).toBe(0);
    const v = pte(env, 0x10000000);
    expect(pte_pfn(v)).not.toBe(zero_pfn());
    expect(pte_write(v)).toBe(false);
  });
});

describe('do_fault', () => {
  it('O-2: a VM_PFNMAP VMA whose entries were never installed and that has no ->fault gets SIGBUS', () => {
    const env = boot();
    const dev = pfnDevice(env, {}, BAR_PFN, false);
    mmap(env, 0x30000000, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, dev);
    const r = read(env, 0x30000000, 4);
    expect(r).toEqual({ kind: 'SIGBUS', si_code: 'BUS_ADRERR', addr: 0x30000000 });
  });
});

describe('__do_fault', () => {
  it('O-2: a driver fault returning VM_FAULT_SIGBUS makes the access SIGBUS (BUS_ADRERR)', () => {
    const env = boot();
    let calls = 0;
    const dev = pfnDevice(
      env,
      {
        *fault() {
          calls++;
          return VM_FAULT_SIGBUS;
        },
      },
      BAR_PFN,
      false,
    );
    mmap(env, 0x30000000, 0x2000, PROT_READ, MAP_SHARED, dev);
    expect(read(env, 0x30001000, 1)).toEqual({
      kind: 'SIGBUS',
      si_code: 'BUS_ADRERR',
      addr: 0x30001000,
    });
    expect(calls).toBe(1);
  });

  it('a ->fault that returns 0 without setting vmf->page oopses on the NULL page (page_folio(NULL))', () => {
    const env = boot();
    const dev = pfnDevice(
      env,
      {
        *fault() {
          return 0;
        },
      },
      BAR_PFN,
      false,
    );
    mmap(env, 0x30000000, 0x1000, PROT_READ, MAP_SHARED, dev);
    expect(() => read(env, 0x30000000, 1)).toThrow(KernelBug);
    expect(env.k.log.some((l) => l.text.includes('0000000000000008'))).toBe(true);
  });
});

describe('do_wp_page', () => {
  it('R-VNP-6: a write after a read fault COWs the zero page into a new anonymous page (RSS +1)', () => {
    const env = boot();
    mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    read(env, 0x10000000, 1);
    expect(pte_pfn(pte(env, 0x10000000))).toBe(zero_pfn());
    notifierLog().length = 0;
    expect(write(env, 0x10000000, [7]).kind).toBe('ok');
    const v = pte(env, 0x10000000);
    expect(pte_pfn(v)).not.toBe(zero_pfn());
    expect(pte_special(v)).toBe(false);
    expect(pte_write(v)).toBe(true);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    expect(page_mapcount(pte_pfn(v) as page)).toBe(1);
    expect([...phys_read(pte_pfn(v) * 4096, 2)]).toEqual([7, 0]);
    // R-MMUN-2: wp_page_copy fires CLEAR for exactly the one page.
    expect(notifierLog().filter((e) => e.phase === 'start')).toEqual([
      {
        phase: 'start',
        mm: env.task.mm!.id,
        event: 'MMU_NOTIFY_CLEAR',
        start: 0x10000000,
        end: 0x10001000,
      },
    ]);
  });

  for (const version of ['5.7', '5.10', '6.1', '6.12', '6.18']) {
    it(`${version}: an exclusive anonymous page behind a read-only PTE is reused in place, not copied`, () => {
      const env = boot(version);
      mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      write(env, 0x10000000, [1]);
      const p = walkToPte(env.task.mm!, 0x10000000)!;
      const pfn = pte_pfn(ptep_get(p));
      env.run(ptep_set_wrprotect(env.task.mm!, 0x10000000, p));
      expect(pte_write(ptep_get(p))).toBe(false);
      notifierLog().length = 0;
      expect(write(env, 0x10000000, [2]).kind).toBe('ok');
      expect(pte_pfn(ptep_get(p))).toBe(pfn);
      expect(pte_write(ptep_get(p))).toBe(true);
      expect(notifierLog().length).toBe(0);
      expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    });

    it(`${version}: after fork the parent's write copies; the child's later write reuses the original`, () => {
      const env = boot(version);
      mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      write(env, 0x10000000, [0x11]);
      const orig = pte_pfn(pte(env, 0x10000000));
      const child = env.run(fork_task(env.task)) as task_struct;
      expect(page_mapcount(orig as page)).toBe(2);
      // Parent writes: the page is shared, so it is copied.
      expect(write(env, 0x10000000, [0x22]).kind).toBe('ok');
      const parentPfn = pte_pfn(pte(env, 0x10000000));
      expect(parentPfn).not.toBe(orig);
      expect([...phys_read(parentPfn * 4096, 1)]).toEqual([0x22]);
      expect(page_mapcount(orig as page)).toBe(1);
      expect(page_ref_count(orig as page)).toBe(1);
      // Child writes: it now holds the only reference and mapping: reuse.
      const cenv = { ...env, task: child };
      expect(write(cenv, 0x10000000, [0x33]).kind).toBe('ok');
      const childPte = ptep_get(walkToPte(child.mm!, 0x10000000)!);
      expect(pte_pfn(childPte)).toBe(orig);
      expect(pte_write(childPte)).toBe(true);
      expect([...phys_read(orig * 4096, 1)]).toEqual([0x33]);
    });
  }
});

describe('wp_pfn_shared', () => {
  function sharedPfnmap(env: Env, ops: Partial<vm_operations_struct>) {
    const dev = pfnDevice(env, ops);
    mmap(env, 0x30000000, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, dev);
    const p = walkToPte(env.task.mm!, 0x30000000)!;
    // A read-only special PTE, as a driver that maps read-only first would leave it.
    env.run(set_pte_at(env.task.mm!, 0x30000000, p, pte_wrprotect(ptep_get(p))));
    return p;
  }

  it('R-FORK-4: without pfn_mkwrite a write makes the special PTE writable, dirty and young in place', () => {
    const env = boot();
    const p = sharedPfnmap(env, {});
    expect(pte_special(ptep_get(p))).toBe(true);
    notifierLog().length = 0;
    expect(write(env, 0x30000004, [0x5a]).kind).toBe('ok');
    const v = ptep_get(p);
    expect(pte_pfn(v)).toBe(BAR_PFN);
    expect(pte_write(v) && pte_dirty(v) && pte_young(v) && pte_special(v)).toBe(true);
    expect([...phys_read(BAR + 4, 1)]).toEqual([0x5a]);
    expect(notifierLog().length).toBe(0);
  });

  it('R-FORK-4: pfn_mkwrite is called without the PTL; success makes the PTE writable', () => {
    const env = boot();
    let calls = 0;
    let heldPtl = true;
    const p = sharedPfnmap(env, {
      *pfn_mkwrite(vmf: vm_fault) {
        calls++;
        heldPtl = vmf.pte!.t.ptl!.isLocked();
        return 0;
      },
    });
    expect(write(env, 0x30000000, [1]).kind).toBe('ok');
    expect(calls).toBe(1);
    expect(heldPtl).toBe(false);
    expect(pte_write(ptep_get(p))).toBe(true);
  });

  it('R-FORK-4: a pfn_mkwrite error is returned as is (VM_FAULT_SIGBUS ⇒ SIGBUS), the PTE stays read-only', () => {
    const env = boot();
    const p = sharedPfnmap(env, {
      *pfn_mkwrite() {
        return VM_FAULT_SIGBUS;
      },
    });
    expect(write(env, 0x30000000, [1])).toEqual({
      kind: 'SIGBUS',
      si_code: 'BUS_ADRERR',
      addr: 0x30000000,
    });
    expect(pte_write(ptep_get(p))).toBe(false);
  });

  it('R-FORK-4: pfn_mkwrite returning VM_FAULT_NOPAGE is returned without touching the PTE', () => {
    const env = boot();
    const p = sharedPfnmap(env, {
      *pfn_mkwrite() {
        return VM_FAULT_NOPAGE;
      },
    });
    expect(fault(env, 0x30000000, FAULT_FLAG_WRITE)).toBe(VM_FAULT_NOPAGE);
    expect(pte_write(ptep_get(p))).toBe(false);
  });

  it('R-FORK-4: a PTE changed while pfn_mkwrite ran ⇒ finish_mkwrite_fault returns VM_FAULT_NOPAGE', () => {
    const env = boot();
    const other = pfn_pte(BAR_PFN + 1, 0x8000 | 0x25);
    const p = sharedPfnmap(env, {
      *pfn_mkwrite(vmf: vm_fault) {
        yield* set_pte_at(vmf.vma.vm_mm, vmf.address, vmf.pte!, pte_mkspecial(other));
        return 0;
      },
    });
    expect(fault(env, 0x30000000, FAULT_FLAG_WRITE)).toBe(VM_FAULT_NOPAGE);
    expect(pte_pfn(ptep_get(p))).toBe(BAR_PFN + 1);
    expect(pte_write(ptep_get(p))).toBe(false);
  });
});

describe('wp_page_copy', () => {
  it('R-FORK-4: a write to a special PTE of a COW PFNMAP copies the device bytes from the user address into a new anonymous page', () => {
    const env = boot();
    // The device frame 0xc0000 holds a pattern.
    phys_write(BAR, new Uint8Array([1, 2, 3, 4]));
    const dev = pfnDevice(env, {});
    mmap(env, 0x30000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE, dev);
    const vma = vma_lookup(env.task.mm!, 0x30000000)!;
    const p = walkToPte(env.task.mm!, 0x30000000)!;
    expect(pte_special(ptep_get(p))).toBe(true);
    expect(pte_write(ptep_get(p))).toBe(false);
    notifierLog().length = 0;
    expect(write(env, 0x30000002, [0x99]).kind).toBe('ok');
    const v = ptep_get(p);
    const pfn = pte_pfn(v);
    expect(pfn).not.toBe(BAR_PFN);
    expect(pte_special(v)).toBe(false);
    expect(pte_write(v)).toBe(true);
    // The copy came from the device frame; the write landed in the copy only.
    expect([...phys_read(pfn * 4096, 4)]).toEqual([1, 2, 0x99, 4]);
    expect([...phys_read(BAR, 4)]).toEqual([1, 2, 3, 4]);
    expect(get_mm_counter(env.task.mm!, MM_ANONPAGES)).toBe(1);
    // Later, vm_normal_page returns the new anonymous page (R-VNP-3/R-FORK-4).
    expect(vm_normal_page(vma, 0x30000000, v)).toBe(pfn);
    expect(PageAnonExclusive(pfn as page)).toBe(true);
    expect(
      notifierLog()
        .filter((e) => e.phase === 'start')
        .map((e) => [e.event, e.start, e.end]),
    ).toEqual([['MMU_NOTIFY_CLEAR', 0x30000000, 0x30001000]]);
    expect(notifierLog().filter((e) => e.phase === 'end').length).toBe(1);
  });

  it('R-FORK-4: when the source stays unreadable under the PTL (a PROT_NONE entry) the copy WARNs once and is zero-filled', () => {
    const env = boot();
    phys_write(BAR, new Uint8Array([9, 9, 9, 9]));
    const dev = pfnDevice(env, {});
    // PROT_NONE private device mapping: remap_pfn_range installs PROT_NONE special PTEs.
    mmap(env, 0x30000000, 0x1000, PROT_NONE, MAP_PRIVATE, dev);
    const p = walkToPte(env.task.mm!, 0x30000000)!;
    expect(pte_protnone(ptep_get(p))).toBe(true);
    expect(pte_present(ptep_get(p))).toBe(true);
    // A forced write (FOLL_FORCE on a COW mapping) reaches do_wp_page -> wp_page_copy.
    expect(fault(env, 0x30000000, FAULT_FLAG_WRITE)).toBe(0);
    const warnings = env.k.log.filter((l) => l.text.startsWith('WARNING:'));
    expect(warnings.length).toBe(1);
    expect(warnings[0]!.text).toContain('__wp_page_copy_user');
    const v = ptep_get(p);
    expect(pte_pfn(v)).not.toBe(BAR_PFN);
    expect([...phys_read(pte_pfn(v) * 4096, 4)]).toEqual([0, 0, 0, 0]);
    // No VM_WRITE: the copy is not writable (maybe_mkwrite), and keeps PROT_NONE.
    expect(pte_flags(v) & _PAGE_RW).toBe(0);
    expect(pte_protnone(v)).toBe(true);
  });

  it('R-FORK-4: if the PTE changes before wp_page_copy retakes the PTL, the copy is dropped and 0 returned (refault)', () => {
    const env = boot();
    const dev = pfnDevice(env, {});
    mmap(env, 0x30000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE, dev);
    const mm = env.task.mm!;
    const p = walkToPte(mm, 0x30000000)!;
    let raced = false;
    // A notifier that clears the PTE (as a racing zap would) when the CLEAR range starts.
    env.run(
      mmu_notifier_register(
        {
          name: 'racer',
          mm: null,
          ops: {
            *invalidate_range_start() {
              raced = true;
              yield* set_pte_at(mm, 0x30000000, p, 0);
              return 0;
            },
          },
        },
        mm,
      ),
    );
    const before = env.k.sub.page_alloc as { stats: { allocs: number; frees: number } };
    const allocs0 = before.stats.allocs;
    const frees0 = before.stats.frees;
    expect(fault(env, 0x30000000, FAULT_FLAG_WRITE)).toBe(0);
    expect(raced).toBe(true);
    expect(ptep_get(p)).toBe(0);
    expect(get_mm_counter(mm, MM_ANONPAGES)).toBe(0);
    // The new page was allocated and freed again.
    expect(before.stats.allocs - allocs0).toBe(1);
    expect(before.stats.frees - frees0).toBe(1);
  });
});

describe('do_swap_page', () => {
  it('R-REV-5 (6.12): a write fault on a migration entry waits in migration_entry_wait until the migration ends, returns 0, and the retry finds the new frame', () => {
    const env = boot('6.12');
    // 0x10000000: one anonymous page, written (a writable PTE).
    mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, 0x10000000, [0x41]);
    const { r, src } = startMigration(env, 0x10000000);
    expect(is_writable_migration_entry(pte(env, 0x10000000))).toBe(true);
    r.spawn('fault', faultOp(env, 0x10000000, FAULT_FLAG_WRITE), env.task);
    expect(runUntilBlocked(r, 1)).toBe('migration_entry_wait_on_locked');
    // The waiter holds no reference (v5.19+): only the isolation one.
    expect(page_ref_count(src as number as page)).toBe(1);
    expect(r.run().status).toBe('done');
    expect(r.threads[1]!.result).toBe(0);
    expect(r.threads[0]!.result).toBe(0);
    const v = pte(env, 0x10000000);
    expect(pte_present(v) && pte_write(v)).toBe(true);
    expect(pte_pfn(v)).not.toBe(src);
    expect(page_is_free(src as number as page)).toBe(true);
    expect(write(env, 0x10000001, [0x42]).kind).toBe('ok');
    expect([...phys_read(pte_pfn(v) * 4096, 2)]).toEqual([0x41, 0x42]);
  });

  for (const [v, unmaps] of [
    ['5.10', 2],
    ['6.12', 1],
  ] as const) {
    it(`R-GUP-8 (${v}): ${v === '5.10' ? "the waiter's reference (get_page_unless_zero until put_and_wait_on_page_locked) fails the migration's refcount check: the page is restored and migrated on the next pass" : 'the waiter takes no reference: the first refcount check passes'}`, () => {
      const env = boot(v);
      mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      write(env, 0x10000000, [0x41]);
      notifierLog().length = 0;
      const { r, src } = startMigration(env, 0x10000000);
      r.spawn('fault', faultOp(env, 0x10000000, 0), env.task);
      // Run the fault up to the wait itself (5.10: the reference is still held there).
      const t = r.threads[1]!;
      const waitStep =
        v === '5.10' ? 'put_and_wait_on_page_locked' : 'migration_entry_wait_on_locked';
      while (t.pending!.what !== waitStep) expect(r.step(1)).toBe(true);
      expect(page_ref_count(src as number as page)).toBe(v === '5.10' ? 2 : 1);
      // The migration's reference check now.
      expect(r.step(0)).toBe(true);
      if (v === '5.10') expect(migrate_failure(src)!.reason).toMatch(/extra references/);
      // The waiter drops its reference (5.10) and sleeps until the folio is unlocked.
      expect(runUntilBlocked(r, 1)).toBe(waitStep);
      expect(page_ref_count(src as number as page)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      expect(r.threads[1]!.result).toBe(0);
      // try_to_migrate ran once per unmap pass (one CLEAR range each).
      const starts = notifierLog().filter(
        (e) => e.phase === 'start' && e.event === 'MMU_NOTIFY_CLEAR',
      );
      expect(starts.length).toBe(unmaps);
      expect(pte_pfn(pte(env, 0x10000000))).not.toBe(src);
      expect(read(env, 0x10000000, 1)).toEqual({ kind: 'ok', data: new Uint8Array([0x41]) });
    });
  }

  it("a non-present entry of no known kind gets the kernel's last branch: a bad-page-map report and VM_FAULT_SIGBUS", () => {
    const env = boot('6.12');
    mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, 0x10000000, [1]);
    const p = walkToPte(env.task.mm!, 0x10000000)!;
    // Present bit clear, no swap marker: outside the model's swap encoding.
    env.run(set_pte_at(env.task.mm!, 0x10000000, p, pfn_pte(0x1234, _PAGE_RW)));
    expect(fault(env, 0x10000000, 0)).toBe(VM_FAULT_SIGBUS);
    expect(env.k.log.some((l) => l.text.includes('BUG: Bad page map'))).toBe(true);
  });

  it('a swap entry (swap type 0) stops the run: swap-in is not modelled', () => {
    const env = boot('6.12');
    mmap(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    write(env, 0x10000000, [1]);
    const p = walkToPte(env.task.mm!, 0x10000000)!;
    env.run(set_pte_at(env.task.mm!, 0x10000000, p, swp_entry_to_pte(swp_entry(0, 77))));
    expect(is_migration_entry(ptep_get(p))).toBe(false);
    expect(() => fault(env, 0x10000000, 0)).toThrow(/swap-in is not modelled/);
  });
});
