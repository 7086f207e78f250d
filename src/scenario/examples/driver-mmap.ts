/**
 * The built-in kernel-API example: a PCI-like device driver maps its BAR into a process
 * with remap_pfn_range(); a kernel thread looks the PFN up behind the user address (the
 * way VFIO type1 does for DMA mappings), while the driver revokes the mapping with
 * unmap_mapping_range() (as vfio-pci does when memory is disabled).
 *
 * On 6.12+ the lookup is follow_pfnmap_start()/follow_pfnmap_end(): the PTE lock is held
 * between the two, so the zap waits for the lookup to finish. On older kernels it is
 * follow_pfn(), which drops the lock before returning. Either way, once the lookup
 * returns nothing keeps the PFN valid: the notes show the PFN the lookup handed out and
 * whether the PTE still maps it afterwards.
 */
import type { Op, Runner } from '../../sched/index.js';
import type { Kernel } from '../../kernel/kernel/kernel.js';
import type { file, vm_area_struct } from '../../kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../../kernel/fs/inode.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../../kernel/include/linux/mm.js';
import { vm_flags_set } from '../../kernel/mm/memory.pfnmap.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  remap_pfn_range,
} from '../../kernel/mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../../kernel/mm/memory.zap.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../../kernel/mm/mmap.js';
import { vma_lookup } from '../../kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../../kernel/include/linux/mmap_lock.js';
import { create_kthread, create_user_task } from '../../kernel/kernel/fork.js';
import { walkToPte, ptep_get } from '../../kernel/include/linux/pgtable.js';
import { pte_present, pte_pfn } from '../../kernel/arch/x86/include/asm/pgtable_types.js';
import { errname } from '../../kernel/include/linux/errno.js';
import { pr_info } from '../../kernel/kernel/printk.js';
import { since } from '../../kernel/version.js';
import type { Trace } from '../../report/format.js';
import { bootMachine } from '../machine.js';
import { Notes, runThreads } from '../run.js';

export const DEMO_NAME = 'driver-mmap';

const BAR_BASE = 0xfe000000;
const BAR_SIZE = 16 * 4096;

/** The driver's ->mmap: VM_IO|VM_PFNMAP over the BAR, every page mapped at once. */
function demoDriverFile(): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/demo_bar', O_RDWR, inode, {
    name: 'demo_bar_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        BAR_BASE / 4096 + vma.vm_pgoff,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  });
}

/** Runs the example once; an empty schedule interleaves the threads at the PTE lock. */
export function runDemo(
  version: string,
  config: Record<string, string>,
  schedule: readonly number[],
): Trace {
  const k: Kernel = bootMachine({
    version,
    config,
    mmio: [{ base: BAR_BASE, size: BAR_SIZE, name: '0000:00:02.0 BAR0' }],
  });
  const notes = new Notes(k);
  const app = create_user_task('app');
  const mm = app.mm!;
  const drv = demoDriverFile();
  const addr = k.run(
    vm_mmap_pgoff(mm, drv, 0, BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
    'setup',
  );
  if (addr < 0) throw new Error(`mmap of the demo device failed: ${errname(addr)}`);
  pr_info(
    `demo_bar: mapped BAR0 (pfn 0x${(BAR_BASE / 4096).toString(16)}) at 0x${addr.toString(16)} in ${app.comm}`,
  );
  const target = addr + 3 * 4096;
  notes.add(
    'setup',
    `app mapped /dev/demo_bar at 0x${addr.toString(16)}; the lookup asks for 0x${target.toString(16)}`,
  );
  const lookupTask = create_kthread('vfio-lookup');
  const driverTask = create_kthread('demo_bar-reset');

  function* lookup(): Op<void> {
    yield* mmap_read_lock(mm);
    const vma = vma_lookup(mm, target)!;
    if (since(6, 12)) {
      const args = follow_pfnmap_args_init(vma, target);
      const ret = yield* follow_pfnmap_start(args);
      if (ret) notes.add('lookup', `follow_pfnmap_start: ${errname(ret)}`);
      else {
        notes.add(
          'lookup',
          `follow_pfnmap_start: pfn 0x${args.pfn.toString(16)}, PTE lock held until _end`,
        );
        yield* follow_pfnmap_end(args);
        notes.add(
          'lookup',
          `follow_pfnmap_end: pfn 0x${args.pfn.toString(16)} is no longer guaranteed`,
        );
      }
    } else {
      const r = yield* follow_pfn(vma, target);
      notes.add(
        'lookup',
        r.ret
          ? `follow_pfn: ${errname(r.ret)}`
          : `follow_pfn: pfn 0x${r.pfn.toString(16)} (PTE lock already dropped)`,
      );
    }
    yield* mmap_read_unlock(mm);
  }

  function* revoke(): Op<void> {
    notes.add('revoke', 'driver disables the BAR: unmap_mapping_range(whole device, even_cows=1)');
    yield* unmap_mapping_range(drv.f_mapping, 0, 0, 1);
    const ptep = walkToPte(mm, target);
    const v = ptep ? ptep_get(ptep) : 0;
    notes.add(
      'revoke',
      pte_present(v) ? `PTE still maps pfn 0x${pte_pfn(v).toString(16)}` : 'PTE cleared',
    );
  }

  return runThreads(
    DEMO_NAME,
    k,
    [
      { name: 'lookup', op: lookup(), task: lookupTask },
      { name: 'revoke', op: revoke(), task: driverTask },
    ],
    schedule,
    notes,
    interleaveAtPteLock,
  );
}

/**
 * The default interleaving: the lookup runs until it holds a PTE lock, then the revoke
 * runs until it has to wait, then the default policy finishes both. The trace's schedule
 * replays it with --schedule.
 */
function interleaveAtPteLock(r: Runner): void {
  const [lookup, revoke] = r.threads;
  const holdsPtl = (): boolean => lookup!.held.some((h) => h.name.endsWith('.ptl'));
  while (!lookup!.done && !holdsPtl() && r.step(0));
  while (!revoke!.done && r.step(1));
}
