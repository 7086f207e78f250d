/**
 * no-pte-special: on an architecture without a software "special" PTE bit
 * (CONFIG_ARCH_HAS_PTE_SPECIAL=n), vm_normal_page() can tell a raw pfn from a COWed
 * anonymous page in a private (COW) VM_PFNMAP mapping only by the linear rule
 * pfn == vm_pgoff + ((addr - vm_start) >> PAGE_SHIFT) (R-VNP-3, kernel-spec §2). That rule
 * holds only when the driver maps the whole VMA with remap_pfn_range(), which then sets
 * vm_pgoff = pfn for COW mappings (R-RPR-1 step 2). A process maps a device BAR
 * MAP_PRIVATE, reads the first page (the pfn entry) and writes the second (a COW copy),
 * while the driver revokes the BAR with unmap_mapping_range(even_cows=1).
 *
 * - unsafe: the driver's ->mmap sets VM_IO|VM_PFNMAP and leaves vm_pgoff at the file
 *   offset (0), inserting pfns from ->fault with vmf_insert_pfn(): vm_normal_page could
 *   not recognise those entries. The kernel refuses this mapping outright:
 *   vmf_insert_pfn_prot() has BUG_ON(VM_PFNMAP && is_cow_mapping()) (R-INS-1, in every
 *   supported version), so the first fault is an oops (BUG) before any entry exists.
 * - fixed: the driver maps the whole VMA at mmap time with remap_pfn_range() (vm_pgoff
 *   becomes the BAR's first pfn): vm_normal_page returns NULL for the pfn entries (no
 *   refcount, no rmap, no bad page map), the write fault copies the page into an anon
 *   page, and the zap frees that copy and clears the pfn entries without touching the
 *   BAR frames (which have no struct page).
 */
import { defineScenario, type Op } from '../src/index.js';
import type { file, vm_area_struct, vm_fault } from '../src/kernel/include/linux/mm_types.js';
import type { vm_fault_t } from '../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
} from '../src/kernel/include/linux/mm.js';
import { remap_pfn_range, vm_flags_set, vmf_insert_pfn } from '../src/kernel/mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../src/kernel/mm/memory.zap.js';
import { MAP_PRIVATE, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../src/kernel/mm/mmap.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { isSignal, type Process } from '../src/scenario/process.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { hex, userFrame } from './mm-common.js';

const BAR_BASE = 0xfe000000;
const BAR_PAGES = 4;
const BAR_PFN = BAR_BASE / 4096;

interface State {
  readonly p: Process;
  readonly drv: file;
  readonly addr: number;
  read: number | null;
  wrote: boolean;
}

/** /dev/bar_priv: remap at mmap time (fixed) or insert from ->fault (unsafe). */
function barFile(fault: boolean): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  const vmOps = {
    name: 'bar_priv_vm_ops',
    *fault(vmf: vm_fault): Op<vm_fault_t> {
      if (vmf.pgoff >= BAR_PAGES) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, BAR_PFN + vmf.pgoff);
    },
  };
  return alloc_file('/dev/bar_priv', O_RDWR, inode, {
    name: 'bar_priv_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      if (fault) {
        vma.vm_ops = vmOps;
        return 0;
      }
      return yield* remap_pfn_range(
        vma,
        vma.vm_start,
        BAR_PFN + vma.vm_pgoff,
        vma.vm_end - vma.vm_start,
        vma.vm_page_prot,
      );
    },
  });
}

export const noPteSpecial = defineScenario<State>({
  name: 'no-pte-special',
  story: 'no-pte-special',
  description:
    'a private (COW) VM_PFNMAP mapping of a BAR on an arch without pte_special: vm_normal_page relies on vm_pgoff encoding the pfn',
  machine: { ram: 2 ** 30, mmio: [{ base: BAR_BASE, size: BAR_PAGES * 4096, name: 'BAR0' }] },
  config: { CONFIG_ARCH_HAS_PTE_SPECIAL: false },
  setup(ctx) {
    const p = ctx.spawnProcess('app');
    const drv = barFile(ctx.variant === 'unsafe');
    const addr = p.run(
      vm_mmap_pgoff(p.task.mm!, drv, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0),
    );
    if (addr < 0) throw new Error(`mmap of /dev/bar_priv failed: ${errname(addr)}`);
    const vma = vma_lookup(p.task.mm!, addr)!;
    ctx.note(
      `app mapped /dev/bar_priv MAP_PRIVATE at ${hex(addr)}: vm_pgoff ${hex(vma.vm_pgoff)} (BAR pfn ${hex(BAR_PFN)})`,
    );
    return { p, drv, addr, read: null, wrote: false };
  },
  threads: {
    app: {
      kind: 'cpu',
      as: (_ctx, s) => s.p,
      *run(ctx, s): Op<void> {
        const r = yield* s.p.op.load(s.addr, 1);
        if (isSignal(r)) ctx.note(`app: read of page 0: ${r.toString()}`);
        else s.read = r[0]!;
        const w = yield* s.p.op.store(s.addr + 4096, [0x42]);
        if (isSignal(w)) ctx.note(`app: write of page 1: ${w.toString()}`);
        else s.wrote = true;
      },
    },
    driver: {
      kind: 'driver',
      *run(ctx, _s): Op<void> {
        ctx.note('bar_priv: revoke: unmap_mapping_range(whole device, even_cows=1)');
        yield* unmap_mapping_range(_s.drv.f_mapping, 0, 0, 1);
      },
    },
  },
  check(_ctx, s) {
    // After the revoke nothing of the BAR stays mapped; a COW copy made after the zap may.
    const mm = s.p.task.mm!;
    for (const a of [s.addr, s.addr + 4096]) {
      const e = userFrame(mm, a, 1);
      if (e && e.pfn >= BAR_PFN && e.pfn < BAR_PFN + BAR_PAGES)
        return `app still maps BAR pfn ${hex(e.pfn)} at ${hex(a)} after the revoke`;
    }
    return null;
  },
  variants: {
    unsafe: {
      description: 'fault-based: vmf_insert_pfn in a COW VM_PFNMAP VMA whose vm_pgoff is 0',
      expect: { default: 'BUG' },
    },
    fixed: {
      description: "remap_pfn_range of the whole VMA at mmap time (vm_pgoff = the BAR's pfn)",
      expect: { default: 'SAFE' },
    },
  },
});

export default noPteSpecial;
