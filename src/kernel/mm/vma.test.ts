/**
 * VMA bookkeeping: lookup, linking, and __split_vma (with vma_adjust_trans_huge).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { find_vma, find_vma_intersection, vma_lookup, __split_vma } from './vma.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from './mmap.js';
import { do_mprotect_pkey } from './mprotect.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import { walkToLeaf } from '../include/linux/pgtable.js';
import { setTransparentHugepage } from './huge_memory.anon.js';
import { mmap_write_lock, mmap_write_unlock } from '../include/linux/mmap_lock.js';
import { PMD_SIZE } from '../arch/x86/include/asm/pgtable_types.js';

function boot() {
  const k = new Kernel({ version: '6.12' });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  setTransparentHugepage(k, { enabled: 'always' });
  const task = create_user_task('app');
  return { k, task, mm: task.mm! };
}

describe('find_vma / vma_lookup', () => {
  it('find the VMA containing or following an address', () => {
    const { k, mm } = boot();
    const a = k.run(
      vm_mmap_pgoff(mm, null, 0x10000000, 0x2000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    const b = k.run(
      vm_mmap_pgoff(mm, null, 0x20000000, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    expect([a, b]).toEqual([0x10000000, 0x20000000]);
    expect(vma_lookup(mm, 0x10001fff)!.vm_start).toBe(0x10000000);
    expect(vma_lookup(mm, 0x10002000)).toBeNull(); // the gap
    expect(find_vma(mm, 0x10002000)!.vm_start).toBe(0x20000000);
    expect(find_vma(mm, 0x20001000)).toBeNull();
    expect(find_vma_intersection(mm, 0x10001000, 0x20000000)!.vm_start).toBe(0x10000000);
  });
});

describe('__split_vma', () => {
  it('splits a PMD-mapped THP that straddles the split point first (vma_adjust_trans_huge)', () => {
    const { k, task, mm } = boot();
    const addr = k.run(
      vm_mmap_pgoff(
        mm,
        null,
        0,
        2 * PMD_SIZE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        0,
      ),
    );
    expect(addr % PMD_SIZE).toBe(0);
    expect(k.run(cpu_user_write(task, addr, new Uint8Array([7]))).kind).toBe('ok');
    expect(walkToLeaf(mm, addr)!.level).toBe('pmd');
    const vma = vma_lookup(mm, addr)!;
    k.run(
      (function* () {
        yield* mmap_write_lock(mm);
        const r = yield* __split_vma(mm, vma, addr + 0x1000, true);
        expect(typeof r).toBe('object');
        yield* mmap_write_unlock(mm);
      })(),
    );
    // No huge entry crosses the new boundary: the THP is mapped by PTEs now.
    expect(walkToLeaf(mm, addr)!.level).toBe('pte');
    expect(walkToLeaf(mm, addr + 0x1000)!.level).toBe('pte');
    expect(mm.mmap.map((v) => [v.vm_start - addr, v.vm_end - addr])).toEqual([
      [0, 0x1000],
      [0x1000, 2 * PMD_SIZE],
    ]);
  });

  it('mprotect of the first page of a THP works and leaves the rest writable', () => {
    const { k, task, mm } = boot();
    const addr = k.run(
      vm_mmap_pgoff(mm, null, 0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    k.run(cpu_user_write(task, addr, new Uint8Array([1])));
    expect(k.run(do_mprotect_pkey(mm, addr, 0x1000, PROT_READ))).toBe(0);
    expect(k.run(cpu_user_write(task, addr + 0x1000, new Uint8Array([2]))).kind).toBe('ok');
    expect(k.run(cpu_user_write(task, addr, new Uint8Array([3]))).kind).toBe('SIGSEGV');
  });
});
