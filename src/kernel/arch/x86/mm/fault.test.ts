/**
 * Tests of the x86 user-address fault handler, the model's MMU accesses and the user
 * copies. Rules: kernel-spec.md §11 O-2 (SIGBUS where a driver's fault returns
 * VM_FAULT_SIGBUS), O-5 (PROT_NONE: every access fails).
 */
import { describe, expect, it } from 'vitest';
import { startMigration as migrationAtRefCheck } from '../../../mm/migrate.testlib.js';
import { Kernel } from '../../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../../init/main.js';
import { create_user_task } from '../../../kernel/fork.js';
import { SchedThread, type Op } from '../../../../sched/index.js';
import type { task_struct } from '../../../include/linux/sched.js';
import type { vm_area_struct } from '../../../include/linux/mm_types.js';
import {
  VM_EXEC,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_READ,
  VM_WRITE,
} from '../../../include/linux/mm.js';
import { ptep_get, walkToPte, zero_pfn } from '../../../include/linux/pgtable.js';
import { pte_dirty, pte_pfn, pte_write, pte_young } from '../include/asm/pgtable_types.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../../../mm/mmap.js';
import { vma_lookup } from '../../../mm/vma.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import {
  access_error,
  copy_from_user,
  copy_to_user,
  cpu_user_read,
  cpu_user_write,
  do_user_addr_fault,
  X86_PF_PROT,
  X86_PF_USER,
  X86_PF_WRITE,
} from './fault.js';

const GiB = 2 ** 30;

interface Env {
  k: Kernel;
  task: task_struct;
  run<T>(op: Op<T>): T;
}

function boot(version = '6.12'): Env {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(4 * GiB) });
  const task = create_user_task('fault');
  const thread = new SchedThread(0, 'fault', (function* () {})(), task);
  return { k, task, run: (op) => k.run(op, thread) };
}

function mmapAnon(env: Env, addr: number, len: number, prot: number): void {
  env.run(
    vm_mmap_pgoff(env.task.mm!, null, addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0),
  );
}

import type { folio, page } from '../../../include/linux/mm_types.js';
import { page_ref_count } from '../../../include/linux/page_ref.js';
import { pte_present } from '../include/asm/pgtable_types.js';
import { is_migration_entry } from '../../../include/linux/swapops.js';
import { __GFP_MOVABLE, page_is_free } from '../../../mm/page_alloc.js';
import { phys_read } from '../../../mm/sparse.js';

const pteOf = (env: Env, addr: number): number => ptep_get(walkToPte(env.task.mm!, addr)!);

/**
 * Starts migrate_pages() of the folio mapped at `addr` (isolated first) in thread 0 of a
 * runner, and stops it once try_to_migrate has replaced the mappings by migration entries
 * and dropped the PTE lock: its next step is the reference check of __migrate_folio.
 */
function startMigration(env: Env, addr: number) {
  const src = pte_pfn(pteOf(env, addr)) as folio;
  return migrationAtRefCheck(env.k, src);
}

describe('access_error', () => {
  const vma = (f: bigint) => ({ vm_flags: f }) as unknown as vm_area_struct;
  it('a write needs VM_WRITE; a read of a present page that faulted is an error; a read needs an accessible VMA', () => {
    expect(access_error(X86_PF_WRITE | X86_PF_USER, vma(VM_READ))).toBe(true);
    expect(access_error(X86_PF_WRITE | X86_PF_USER, vma(VM_READ | VM_WRITE))).toBe(false);
    expect(access_error(X86_PF_PROT | X86_PF_USER, vma(VM_READ))).toBe(true);
    expect(access_error(X86_PF_USER, vma(VM_READ))).toBe(false);
    expect(access_error(X86_PF_USER, vma(VM_EXEC))).toBe(false);
    expect(access_error(X86_PF_USER, vma(0n))).toBe(true);
  });
});

describe('do_user_addr_fault', () => {
  it('an address outside every VMA is SIGSEGV SEGV_MAPERR', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ);
    expect(env.run(do_user_addr_fault(env.task, X86_PF_USER, 0x10001000))).toEqual({
      kind: 'SIGSEGV',
      si_code: 'SEGV_MAPERR',
      addr: 0x10001000,
    });
    expect(env.task.mm!.mmap_lock.isLocked()).toBe(false);
  });

  it('O-5: a write to a read-only VMA and any access to a PROT_NONE VMA are SIGSEGV SEGV_ACCERR', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ);
    mmapAnon(env, 0x20000000, 0x1000, PROT_NONE);
    expect(env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([1])))).toEqual({
      kind: 'SIGSEGV',
      si_code: 'SEGV_ACCERR',
      addr: 0x10000000,
    });
    expect(env.run(cpu_user_read(env.task, 0x20000010, 1))).toEqual({
      kind: 'SIGSEGV',
      si_code: 'SEGV_ACCERR',
      addr: 0x20000010,
    });
  });

  it('a read-only VMA can be read (the zero page gets mapped), then writing it is still SEGV_ACCERR', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ);
    expect(env.run(cpu_user_read(env.task, 0x10000000, 4)).kind).toBe('ok');
    expect(pte_pfn(ptep_get(walkToPte(env.task.mm!, 0x10000000)!))).toBe(zero_pfn());
    expect(env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([1]))).kind).toBe('SIGSEGV');
  });

  it('O-2: a driver ->fault returning VM_FAULT_SIGBUS is SIGBUS BUS_ADRERR; VM_FAULT_SIGSEGV is SIGSEGV SEGV_MAPERR', () => {
    const env = boot();
    let ret = VM_FAULT_SIGBUS;
    const f = alloc_file(
      '/dev/x',
      O_RDWR,
      new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr'),
      {
        name: 'x_fops',
        *mmap(_f, vma) {
          vma.vm_ops = {
            name: 'x_vm_ops',
            *fault() {
              return ret;
            },
          };
          return 0;
        },
      },
    );
    env.run(
      vm_mmap_pgoff(env.task.mm!, f, 0x30000000, 0x1000, PROT_READ, MAP_SHARED | MAP_FIXED, 0),
    );
    expect(env.run(cpu_user_read(env.task, 0x30000000, 1))).toEqual({
      kind: 'SIGBUS',
      si_code: 'BUS_ADRERR',
      addr: 0x30000000,
    });
    ret = VM_FAULT_SIGSEGV;
    expect(env.run(cpu_user_read(env.task, 0x30000000, 1))).toEqual({
      kind: 'SIGSEGV',
      si_code: 'SEGV_MAPERR',
      addr: 0x30000000,
    });
  });
});

describe('cpu_user_read / cpu_user_write (the MMU)', () => {
  it('the MMU sets accessed on reads and dirty on writes of the leaf it walks through', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x2000, PROT_READ | PROT_WRITE);
    env.run(cpu_user_write(env.task, 0x10000ffe, new Uint8Array([1, 2, 3, 4])));
    const p0 = walkToPte(env.task.mm!, 0x10000000)!;
    const p1 = walkToPte(env.task.mm!, 0x10001000)!;
    expect(pte_dirty(ptep_get(p0)) && pte_dirty(ptep_get(p1))).toBe(true);
    const r = env.run(cpu_user_read(env.task, 0x10000ffe, 4));
    expect(r.kind === 'ok' && [...r.data]).toEqual([1, 2, 3, 4]);
    expect(pte_young(ptep_get(p0))).toBe(true);
  });

  for (const v of ['5.7', '5.10', '6.12', '6.18']) {
    it(`R-REV-5 (${v}): a CPU write racing a migration faults on the migration entry, sleeps until the migration ends, then writes the new frame (the old one is freed untouched)`, () => {
      const env = boot(v);
      // 0x10000000: one anonymous page holding 0x61 at offset 0.
      mmapAnon(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE);
      env.run(cpu_user_write(env.task, 0x10000000, new Uint8Array([0x61])));
      const { r, src } = startMigration(env, 0x10000000);
      expect(is_migration_entry(pteOf(env, 0x10000000))).toBe(true);
      r.spawn('writer', cpu_user_write(env.task, 0x10000010, new Uint8Array([0x62])), env.task);
      const w = r.threads[1]!;
      while (!w.done && r.enabled().includes(w)) r.step(1);
      // Blocked on the old folio's lock bit, nothing written yet.
      expect(w.done).toBe(false);
      expect(w.pending!.obj).toBe(`folio${src}.lock`);
      expect(w.pending!.what).toBe(
        v.startsWith('5.') ? 'put_and_wait_on_page_locked' : 'migration_entry_wait_on_locked',
      );
      expect([...phys_read(src * 4096 + 0x10, 1)]).toEqual([0]);
      expect(page_ref_count(src as number as page)).toBe(1);
      expect(r.run().status).toBe('done');
      expect(r.threads[0]!.result).toBe(0);
      expect(w.result).toEqual({ kind: 'ok' });
      const v1 = pteOf(env, 0x10000000);
      const dst = pte_pfn(v1);
      expect(pte_present(v1) && pte_write(v1) && pte_dirty(v1)).toBe(true);
      expect(dst).not.toBe(src);
      expect([...phys_read(dst * 4096, 0x11)].filter((b) => b !== 0)).toEqual([0x61, 0x62]);
      expect(page_is_free(src as number as page)).toBe(true);
    });
  }
});

describe('copy_from_user', () => {
  it('faults pages in and returns the bytes it could not copy, zero-filling them', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE);
    env.run(cpu_user_write(env.task, 0x10000ff0, new Uint8Array(16).fill(7)));
    const buf = new Uint8Array(32).fill(0xee);
    // 0x10000ff0..0x10001010: the second page is outside any VMA.
    const left = env.run(copy_from_user(buf, 0x10000ff0, 32));
    expect(left).toBe(16);
    expect([...buf.subarray(0, 16)].every((b) => b === 7)).toBe(true);
    expect([...buf.subarray(16)].every((b) => b === 0)).toBe(true);
  });

  it('reads an untouched anonymous page (read fault: zero page)', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ);
    const buf = new Uint8Array(8).fill(1);
    expect(env.run(copy_from_user(buf, 0x10000000, 8))).toBe(0);
    expect([...buf]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('copy_to_user', () => {
  it('write faults break COW of the zero page; a read-only VMA is not written (bytes not copied)', () => {
    const env = boot();
    mmapAnon(env, 0x10000000, 0x1000, PROT_READ | PROT_WRITE);
    mmapAnon(env, 0x20000000, 0x1000, PROT_READ);
    env.run(cpu_user_read(env.task, 0x10000000, 1));
    expect(env.run(copy_to_user(0x10000000, new Uint8Array([5, 6]), 2))).toBe(0);
    const v = ptep_get(walkToPte(env.task.mm!, 0x10000000)!);
    expect(pte_pfn(v)).not.toBe(zero_pfn());
    expect(pte_write(v)).toBe(true);
    const r = env.run(cpu_user_read(env.task, 0x10000000, 2));
    expect(r.kind === 'ok' && [...r.data]).toEqual([5, 6]);
    expect(env.run(copy_to_user(0x20000000, new Uint8Array([1]), 1))).toBe(1);
    expect(vma_lookup(env.task.mm!, 0x20000000)).not.toBeNull();
  });
});
