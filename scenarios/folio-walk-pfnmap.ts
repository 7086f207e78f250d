/**
 * folio-walk-pfnmap: a kernel walker that wants the folio behind a user address (KSM's
 * get_mergeable_page, move_pages' page lookup, s390's storage-key code) meets a VM_PFNMAP
 * mapping of a device BAR and takes a reference on what it found, while the driver
 * revokes the BAR (unmap_mapping_range).
 *
 * The BAR's driver maps it from ->huge_fault: a 2 MiB special PMD leaf
 * (vmf_insert_pfn_pmd, as vfio-pci does since v6.12) where huge pfnmaps exist, and one
 * special PTE per fault (vmf_insert_pfn) before v6.12. The BAR frames have no struct page.
 *
 * - fixed: the kernel's walker: folio_walk_start() on v6.12+ (aa39ca6940f1), which with
 *   10d83d7781a8 "mm/pagewalk: check pfnmap for folio_walk_start()" returns NULL for a
 *   special/pfnmap leaf (R-FW-1: vm_normal_page_pmd is NULL for pmd_special); before
 *   v6.12 the era's equivalent, follow_page(vma, addr, FOLL_GET) as KSM called it
 *   (follow_page_mask: vm_normal_page is NULL for the special PTE, -EEXIST). SAFE.
 * - unsafe: the walk as folio_walk_start did it for a leaf before 10d83d7781a8 (both are
 *   v6.12-rc commits, so no supported release has it; the scenario open-codes it): under
 *   the PMD lock, the page of the leaf's pfn (pmd_page/pud_page), without
 *   vm_normal_page_pmd's pfnmap check, then page_folio + folio_get. The BAR (at 3.97 GiB,
 *   above the machine's 1 GiB of RAM) has no memmap, so page_folio's read of
 *   compound_head is a kernel page fault: an oops (BUG) before any refcount is taken.
 *   Only v6.12+ has huge pfnmap leaves: n/a before.
 */
import { defineScenario, type Op } from '../src/index.js';
import type {
  file,
  folio,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import {
  FOLL_GET,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_FALLBACK,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
} from '../src/kernel/include/linux/mm.js';
import { vm_flags_set, vmf_insert_pfn } from '../src/kernel/mm/memory.pfnmap.js';
import { vmf_insert_pfn_pmd } from '../src/kernel/mm/huge_memory.js';
import { unmap_mapping_range } from '../src/kernel/mm/memory.zap.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../src/kernel/mm/mmap.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { folio_walk_end, folio_walk_init, folio_walk_start } from '../src/kernel/mm/pagewalk.js';
import { follow_page_mask } from '../src/kernel/mm/gup.js';
import {
  pmd_lock,
  pmd_offset,
  pmdp_get,
  pud_offset,
  p4d_offset,
  pgd_offset,
} from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { pmd_leaf, pmd_present } from '../src/kernel/arch/x86/include/asm/pgtable.js';
import { spin_unlock } from '../src/kernel/include/linux/spinlock.js';
import { folio_get, folio_put, put_page } from '../src/kernel/include/linux/page_ref.js';
import { page_folio, pfn_to_page } from '../src/kernel/include/linux/page-flags.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { isSignal, type Process } from '../src/scenario/process.js';
import { hex } from './mm-common.js';

/** A 2 MiB BAR, 2 MiB aligned (pfn 0xfe000..0xfe1ff). */
const BAR_BASE = 0xfe000000;
const BAR_SIZE = 0x200000;
const BAR_PFN = BAR_BASE / 4096;
const PMD_ORDER = 9;

interface State {
  readonly p: Process;
  readonly drv: file;
  readonly addr: number;
  /** The folio the walker holds a reference on. */
  got: number | null;
}

/** The BAR's char device: ->huge_fault maps a PMD leaf on 6.12+, PTEs otherwise. */
function barFile(): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  const vmOps = {
    name: 'hbar_vm_ops',
    *fault(vmf: vm_fault): Op<vm_fault_t> {
      if (vmf.pgoff >= BAR_SIZE / 4096) return VM_FAULT_SIGBUS;
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, BAR_PFN + vmf.pgoff);
    },
    *huge_fault(vmf: vm_fault, order: number): Op<vm_fault_t> {
      if (order !== PMD_ORDER || !since612()) return VM_FAULT_FALLBACK;
      const base = vmf.address - (vmf.address % BAR_SIZE);
      if (base < vmf.vma.vm_start || base + BAR_SIZE > vmf.vma.vm_end) return VM_FAULT_FALLBACK;
      return yield* vmf_insert_pfn_pmd(vmf, BAR_PFN, false);
    },
  };
  let since612 = (): boolean => false;
  const f = alloc_file('/dev/hbar', O_RDWR, inode, {
    name: 'hbar_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      vma.vm_ops = vmOps;
      return 0;
    },
  });
  return Object.assign(f, {
    setEra(v: boolean): void {
      since612 = () => v;
    },
  });
}

/** The walk as folio_walk_start did a PMD leaf before 10d83d7781a8 (no pfnmap check). */
function* openCodedWalk(vma: vm_area_struct, addr: number): Op<folio | null> {
  const mm = vma.vm_mm;
  const pmdp = pmd_offset(pud_offset(p4d_offset(pgd_offset(mm, addr), addr), addr), addr);
  const ptl = yield* pmd_lock(mm, pmdp);
  const pmd = pmdp_get(pmdp);
  if (!pmd_present(pmd) || !pmd_leaf(pmd)) {
    yield* spin_unlock(ptl);
    return null;
  }
  const p = pfn_to_page(pte_pfn(pmd) + Math.floor((addr % BAR_SIZE) / 4096));
  const f = page_folio(p);
  folio_get(f);
  yield* spin_unlock(ptl);
  return f;
}

export const folioWalkPfnmap = defineScenario<State>({
  name: 'folio-walk-pfnmap',
  story: 'folio-walk-pfnmap',
  description:
    'a kernel walker looks for the folio behind a huge VM_PFNMAP mapping of a BAR (folio_walk_start and its pfnmap check) while the driver revokes the BAR',
  machine: { ram: 2 ** 30, mmio: [{ base: BAR_BASE, size: BAR_SIZE, name: 'BAR0' }] },
  setup(ctx) {
    const p = ctx.spawnProcess('app');
    const drv = barFile() as file & { setEra(v: boolean): void };
    drv.setEra(ctx.since(6, 12));
    // A 4 MiB window so that a 2 MiB-aligned 2 MiB range fits inside it.
    const len = 2 * BAR_SIZE;
    const raw = p.run(
      vm_mmap_pgoff(p.task.mm!, drv, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
    );
    if (raw < 0) throw new Error(`mmap of /dev/hbar failed: ${errname(raw)}`);
    const addr = Math.ceil(raw / BAR_SIZE) * BAR_SIZE;
    p.munmap(raw, addr - raw);
    p.munmap(addr + BAR_SIZE, raw + len - (addr + BAR_SIZE));
    const r = p.load(addr + 0x3000, 1);
    if (isSignal(r)) throw new Error(`first touch of the BAR mapping: ${r.toString()}`);
    const vma = vma_lookup(p.task.mm!, addr)!;
    ctx.note(
      `app mapped /dev/hbar at ${hex(addr)} (vm_pgoff ${hex(vma.vm_pgoff)}); first touch faulted it in ${ctx.since(6, 12) ? 'as one 2 MiB special PMD leaf' : 'as a special PTE'}`,
    );
    return { p, drv, addr, got: null };
  },
  threads: {
    walker: {
      kind: 'kthread',
      *run(ctx, s): Op<void> {
        const mm = s.p.task.mm!;
        const addr = s.addr + 0x3000;
        yield* mmap_read_lock(mm);
        const vma = vma_lookup(mm, addr);
        let f: folio | null = null;
        if (!vma) {
          ctx.note('walker: no VMA');
        } else if (ctx.variant === 'unsafe') {
          f = yield* openCodedWalk(vma, addr);
          ctx.note(`walker (no pfnmap check): ${f === null ? 'nothing' : `folio ${hex(f)}`}`);
        } else if (ctx.since(6, 12)) {
          const fw = folio_walk_init();
          f = yield* folio_walk_start(fw, vma, addr, 0);
          if (f !== null) {
            folio_get(f);
            yield* folio_walk_end(fw, vma);
          }
          ctx.note(`walker: folio_walk_start = ${f === null ? 'NULL' : `folio ${hex(f)}`}`);
        } else {
          const r = yield* follow_page_mask(vma, addr, FOLL_GET);
          if (typeof r === 'number' && r > 0) f = page_folio(r as never);
          ctx.note(
            `walker: follow_page(FOLL_GET) = ${r === null ? 'NULL' : typeof r === 'number' && r < 0 ? errname(r) : `page ${hex(r as number)}`}`,
          );
        }
        yield* mmap_read_unlock(mm);
        s.got = f;
        if (f !== null) {
          if (ctx.variant !== 'unsafe' && !ctx.since(6, 12)) put_page(f as never);
          else folio_put(f);
          s.got = null;
        }
      },
    },
    driver: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        ctx.note('hbar: revoke: unmap_mapping_range(whole BAR, even_cows=1)');
        yield* unmap_mapping_range(s.drv.f_mapping, 0, 0, 1);
      },
    },
  },
  check: (_ctx, s) => (s.got !== null ? `walker still holds folio ${hex(s.got)}` : null),
  variants: {
    unsafe: {
      description: 'the leaf walk without the pfnmap check takes a reference on a BAR frame',
      expect: { '6.12+': 'BUG', default: 'n/a' },
    },
    fixed: {
      description: 'folio_walk_start with its pfnmap check (v6.12+), follow_page(FOLL_GET) before',
      expect: { default: 'SAFE' },
    },
  },
});

export default folioWalkPfnmap;
