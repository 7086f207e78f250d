/**
 * Property: after any sequence of mmap (anonymous, shmem, ext4 files, drivers mapping a
 * BAR with remap_pfn_range, inserting pfns at fault time, or inserting refcounted pages
 * with vm_insert_page), CPU reads and writes (faults, COW), zaps, driver revocations
 * (unmap_mapping_range), munmap, fork and exit, a full teardown (every process exits,
 * the page cache is truncated, the driver frees its pages) leaves:
 * - every frame that was free before free again, and no other frame freed;
 * - every driver page's refcount and mapcount where they started;
 * - no page-table page left, no lock held;
 * - no WARN, BUG, bad page or bad page map in the kernel log (nothing tainted).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Op } from '../../src/sched/index.js';
import { Kernel } from '../../src/kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../src/kernel/init/main.js';
import { create_user_task, fork_task, exit_mm } from '../../src/kernel/kernel/fork.js';
import type { task_struct } from '../../src/kernel/include/linux/sched.js';
import type {
  file,
  vm_area_struct,
  vm_fault,
  page,
} from '../../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../../src/kernel/fs/inode.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_FAULT_SIGBUS,
  VM_SHARED,
} from '../../src/kernel/include/linux/mm.js';
import {
  remap_pfn_range,
  vm_flags_set,
  vmf_insert_pfn,
  vm_insert_page,
} from '../../src/kernel/mm/memory.pfnmap.js';
import { unmap_mapping_range, zap_page_range_single } from '../../src/kernel/mm/memory.zap.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
  vm_munmap,
} from '../../src/kernel/mm/mmap.js';
import { mmap_read_lock, mmap_read_unlock } from '../../src/kernel/include/linux/mmap_lock.js';
import { cpu_user_read, cpu_user_write } from '../../src/kernel/arch/x86/mm/fault.js';
import { alloc_page, GFP_KERNEL, page_alloc_state } from '../../src/kernel/mm/page_alloc.js';
import { page_ref_count, put_page } from '../../src/kernel/include/linux/page_ref.js';
import { page_mapcount } from '../../src/kernel/include/linux/page-flags.js';
import { createExt4File } from '../../src/kernel/fs/ext4/file.js';
import { createTmpfsFile } from '../../src/kernel/mm/shmem.js';
import { truncate_inode_pages } from '../../src/kernel/mm/filemap.js';
import { task_work_run } from '../../src/kernel/fs/file_table.js';

const BAR = 0xfe000000;
const BAR_PAGES = 8;

type Kind =
  'anon' | 'anonShared' | 'pfnmap' | 'faultpfn' | 'mixed' | 'ext4Shared' | 'ext4Private' | 'shmem';
type Action =
  | { t: 'mmap'; proc: number; kind: Kind; pages: number }
  | { t: 'touch'; proc: number; vma: number; page: number; write: boolean }
  | { t: 'zap'; proc: number; vma: number }
  | { t: 'revoke'; drv: number }
  | { t: 'munmap'; proc: number; vma: number }
  | { t: 'fork'; proc: number }
  | { t: 'exit'; proc: number };

const kinds: Kind[] = [
  'anon',
  'anonShared',
  'pfnmap',
  'faultpfn',
  'mixed',
  'ext4Shared',
  'ext4Private',
  'shmem',
];
const idx = fc.nat({ max: 7 });
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({
    t: fc.constant('mmap' as const),
    proc: idx,
    kind: fc.constantFrom(...kinds),
    pages: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({
    t: fc.constant('touch' as const),
    proc: idx,
    vma: idx,
    page: fc.nat({ max: 3 }),
    write: fc.boolean(),
  }),
  fc.record({
    t: fc.constant('touch' as const),
    proc: idx,
    vma: idx,
    page: fc.nat({ max: 3 }),
    write: fc.boolean(),
  }),
  fc.record({ t: fc.constant('zap' as const), proc: idx, vma: idx }),
  fc.record({ t: fc.constant('revoke' as const), drv: fc.nat({ max: 2 }) }),
  fc.record({ t: fc.constant('munmap' as const), proc: idx, vma: idx }),
  fc.record({ t: fc.constant('fork' as const), proc: idx }),
  fc.record({ t: fc.constant('exit' as const), proc: idx }),
);

interface World {
  readonly k: Kernel;
  readonly procs: task_struct[];
  readonly drivers: Record<'pfnmap' | 'faultpfn' | 'mixed', file>;
  readonly driverPages: page[];
  readonly files: file[];
}

function driverFile(name: string, mmap: (vma: vm_area_struct) => Op<number>): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file(`/dev/${name}`, O_RDWR, inode, {
    name: `${name}_fops`,
    mmap: (_f, vma) => mmap(vma),
  });
}

function setup(k: Kernel): World {
  const driverPages: page[] = [];
  for (let i = 0; i < 4; i++) driverPages.push(alloc_page(GFP_KERNEL)!);
  const faultOps = {
    name: 'faultpfn_vm_ops',
    *fault(vmf: vm_fault): Op<number> {
      if (vmf.pgoff >= BAR_PAGES) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, BAR / 4096 + vmf.pgoff);
    },
  };
  const drivers = {
    pfnmap: driverFile('bar', function* (vma) {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      const len = vma.vm_end - vma.vm_start;
      return yield* remap_pfn_range(vma, vma.vm_start, BAR / 4096, len, vma.vm_page_prot);
    }),
    faultpfn: driverFile('barfault', function* (vma) {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      vma.vm_ops = faultOps;
      return 0;
    }),
    mixed: driverFile('ring', function* (vma) {
      vm_flags_set(vma, VM_MIXEDMAP | VM_DONTEXPAND);
      for (let i = 0; i * 4096 < vma.vm_end - vma.vm_start; i++) {
        const r = yield* vm_insert_page(vma, vma.vm_start + i * 4096, driverPages[i]!);
        if (r) return r;
      }
      return 0;
    }),
  };
  const files = [
    createExt4File('/data/a', new Uint8Array(4 * 4096).fill(7)),
    k.run(createTmpfsFile('/tmp/b', new Uint8Array(4 * 4096).fill(9))),
  ];
  return { k, procs: [create_user_task('p0')], drivers, driverPages, files };
}

function* apply(w: World, a: Action): Op<void> {
  if (a.t === 'revoke') {
    const d = [w.drivers.pfnmap, w.drivers.faultpfn, w.drivers.mixed][a.drv]!;
    yield* unmap_mapping_range(d.f_mapping, 0, 0, 1);
    return;
  }
  if (w.procs.length === 0) return;
  const p = w.procs[a.proc % w.procs.length]!;
  const mm = p.mm!;
  const vma = (i: number): vm_area_struct | undefined => mm.mmap[i % Math.max(1, mm.mmap.length)];
  switch (a.t) {
    case 'mmap': {
      const len = a.pages * 4096;
      const rw = PROT_READ | PROT_WRITE;
      const map = (f: file | null, flags: number): Op<number> =>
        vm_mmap_pgoff(mm, f, 0, len, rw, flags, 0);
      if (a.kind === 'anon') yield* map(null, MAP_PRIVATE | MAP_ANONYMOUS);
      else if (a.kind === 'anonShared') yield* map(null, MAP_SHARED | MAP_ANONYMOUS);
      else if (a.kind === 'ext4Shared') yield* map(w.files[0]!, MAP_SHARED);
      else if (a.kind === 'ext4Private') yield* map(w.files[0]!, MAP_PRIVATE);
      else if (a.kind === 'shmem') yield* map(w.files[1]!, MAP_SHARED);
      else yield* map(w.drivers[a.kind], MAP_SHARED);
      return;
    }
    case 'touch': {
      const v = vma(a.vma);
      if (!v) return;
      const addr = v.vm_start + (a.page % ((v.vm_end - v.vm_start) / 4096)) * 4096;
      if (a.write) yield* cpu_user_write(p, addr, new Uint8Array([a.page + 1]));
      else yield* cpu_user_read(p, addr, 1);
      return;
    }
    case 'zap': {
      const v = vma(a.vma);
      if (!v) return;
      yield* mmap_read_lock(mm);
      yield* zap_page_range_single(v, v.vm_start, v.vm_end - v.vm_start, null);
      yield* mmap_read_unlock(mm);
      return;
    }
    case 'munmap': {
      const v = vma(a.vma);
      if (v) yield* vm_munmap(mm, v.vm_start, v.vm_end - v.vm_start);
      return;
    }
    case 'fork': {
      if (w.procs.length >= 4) return;
      const child = yield* fork_task(p);
      if (typeof child !== 'number') w.procs.push(child);
      return;
    }
    case 'exit':
      yield* exit_mm(p);
      w.procs.splice(w.procs.indexOf(p), 1);
      return;
  }
}

function freeFrames(): number {
  return page_alloc_state().zones.reduce((s, z) => s + z.nr_free, 0);
}

describe('property: teardown returns every frame and reference (issue 2)', () => {
  for (const version of ['5.10', '6.1', '6.12', '6.18']) {
    it(`random mmap/fault/remap/insert/zap/munmap/fork/exit sequences, then teardown, on ${version}`, () => {
      fc.assert(
        fc.property(fc.array(action, { minLength: 5, maxLength: 40, size: 'max' }), (actions) => {
          const k = new Kernel({ version });
          start_kernel(k, {
            map: [
              ...x86_64_e820(512 * 2 ** 20),
              { start: BAR, end: BAR + BAR_PAGES * 4096, kind: 'mmio', name: 'BAR0' },
            ],
          });
          const before = freeFrames();
          const w = setup(k);
          // Each action is a system call: task work (the deferred __fput) runs on return.
          for (const a of actions) {
            k.run(apply(w, a));
            k.run(task_work_run());
          }
          // Teardown: every process exits, the page cache goes, the driver frees its pages.
          for (const p of [...w.procs]) k.run(exit_mm(p));
          k.run(task_work_run());
          for (const f of w.files) k.run(truncate_inode_pages(f.f_mapping, 0));
          for (const pg of w.driverPages) {
            expect(page_ref_count(pg)).toBe(1);
            expect(page_mapcount(pg)).toBe(0);
            put_page(pg);
          }
          expect(freeFrames()).toBe(before);
          const bad = k.log.filter((l) => /WARNING:|BUG:|Bad page|Oops/.test(l.text));
          expect(bad.map((l) => l.text)).toEqual([]);
          expect(k.tainted_mask).toBe(0);
        }),
        { numRuns: 100, seed: 20261122 },
      );
    });
  }

  it('the driver VMAs are what the property exercises (sanity of the generator)', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, {
      map: [
        ...x86_64_e820(512 * 2 ** 20),
        { start: BAR, end: BAR + BAR_PAGES * 4096, kind: 'mmio', name: 'BAR0' },
      ],
    });
    const w = setup(k);
    for (const kind of ['pfnmap', 'faultpfn', 'mixed'] as const) {
      k.run(apply(w, { t: 'mmap', proc: 0, kind, pages: 2 }));
    }
    const flags = w.procs[0]!.mm!.mmap.map((v) => v.vm_flags);
    expect(flags.filter((f) => (f & VM_PFNMAP) !== 0n)).toHaveLength(2);
    expect(flags.filter((f) => (f & VM_MIXEDMAP) !== 0n)).toHaveLength(1);
    expect(flags.every((f) => (f & VM_SHARED) !== 0n)).toBe(true);
    expect(page_mapcount(w.driverPages[0]!)).toBe(1);
  });
});
