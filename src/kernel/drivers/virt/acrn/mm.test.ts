/**
 * ACRN acrn_vm_ram_map (kernel-spec.md R-CALL-3) per era: the PFNMAP branch's checks
 * (v6.10+ per page, follow_pfnmap v6.12+), the v5.18–v6.9 single follow_pfn, the pinning
 * path for normal memory, and the hypervisor EPT table it fills.
 *
 * Layout: the service VM's process maps a test driver at `base` (remap_pfn_range of
 * chunks given per test, VM_IO|VM_PFNMAP); guest physical 0x40000000 is the target.
 * BAR pfns 0xfe000.. have no struct page.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../../sched/index.js';
import { Kernel } from '../../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../../init/main.js';
import { create_user_task } from '../../../kernel/fork.js';
import type { task_struct } from '../../../include/linux/sched.js';
import type { file, folio, page, vm_operations_struct } from '../../../include/linux/mm_types.js';
import { PAGE_SIZE } from '../../../arch/x86/include/asm/pgtable_types.js';
import { page_ref_count } from '../../../include/linux/page_ref.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../../../mm/mmap.js';
import { remap_pfn_range } from '../../../mm/memory.pfnmap.js';
import { alloc_page, GFP_KERNEL } from '../../../mm/page_alloc.js';
import { cpu_user_write } from '../../../arch/x86/mm/fault.js';
import { walkToPte, ptep_get } from '../../../include/linux/pgtable.js';
import { pte_pfn } from '../../../arch/x86/include/asm/pgtable_types.js';
import { folio_maybe_dma_pinned } from '../../../include/linux/mm.js';
import {
  ACRN_MEMMAP_MMIO,
  ACRN_MEMMAP_RAM,
  ACRN_MEM_ACCESS_READ,
  ACRN_MEM_ACCESS_RWX,
  ACRN_MEM_MAPPING_MAX,
  ACRN_MEM_TYPE_UC,
  ACRN_MEM_TYPE_WB,
  acrn_hv_guest_access,
  acrn_hv_state,
  acrn_vm_all_ram_unmap,
  acrn_vm_alloc,
  acrn_vm_memseg_map,
  acrn_vm_ram_map,
  type acrn_vm,
  type acrn_vm_memmap,
} from './mm.js';

const MiB = 2 ** 20;
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
const GPA = 0x40000000;

/** [page offset in the VMA, pfn, pages] chunks remapped at mmap time. */
type Chunk = readonly [number, number, number];

function chunkFile(chunks: readonly Chunk[]): file {
  const ops: vm_operations_struct = { name: 'acrntest_vm_ops' };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/acrntest', O_RDWR, inode, {
    name: 'acrntest_fops',
    *mmap(_f, vma) {
      vma.vm_ops = ops;
      for (const [off, pfn, n] of chunks) {
        const r = yield* remap_pfn_range(
          vma,
          vma.vm_start + off * PAGE_SIZE,
          pfn,
          n * PAGE_SIZE,
          vma.vm_page_prot,
        );
        if (r) return r;
      }
      return 0;
    },
  });
}

interface W {
  k: Kernel;
  task: task_struct;
  vm: acrn_vm;
  run<T>(op: Op<T>): T;
  map(chunks: readonly Chunk[], pages: number, prot?: number): number;
}

function world(version: string): W {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('acrn-dm');
  const run = <T>(op: Op<T>): T =>
    k.run(op, new SchedThread(0, task.comm, op as Op<unknown>, task));
  const w: W = {
    k,
    task,
    vm: acrn_vm_alloc(1),
    run,
    map(chunks, pages, prot = PROT_READ | PROT_WRITE) {
      const a = run(
        vm_mmap_pgoff(task.mm!, chunkFile(chunks), 0, pages * PAGE_SIZE, prot, MAP_SHARED, 0),
      );
      expect(a).toBeGreaterThan(0);
      return a;
    },
  };
  return w;
}

function memmap(vma_base: number, pages: number, attr = ACRN_MEM_ACCESS_RWX): acrn_vm_memmap {
  return { type: ACRN_MEMMAP_RAM, attr, user_vm_pa: GPA, vma_base, len: pages * PAGE_SIZE };
}

const CHECKED = ['6.10', '6.12', '6.13', '6.18'];

describe('acrn_vm_ram_map', () => {
  for (const v of CHECKED) {
    it(`R-CALL-3 (${v}): a contiguous writable BAR range becomes one WB region at 0xfe000000 with a generation per frame`, () => {
      const w = world(v);
      const base = w.map([[0, BAR_PFN, 4]], 4);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 4)))).toBe(0);
      const hv = acrn_hv_state();
      expect(hv.regions).toHaveLength(1);
      expect(hv.regions[0]).toMatchObject({
        vmid: 1,
        user_vm_pa: GPA,
        service_vm_pa: BAR,
        size: 4 * PAGE_SIZE,
        attr: ACRN_MEM_TYPE_WB | ACRN_MEM_ACCESS_RWX,
      });
      expect(hv.regions[0]!.gens).toHaveLength(4);
      // gpa 0x40003000 -> pfn 0xfe003
      expect(w.run(acrn_hv_guest_access(1, GPA + 3 * PAGE_SIZE, 'read'))).toBe(BAR_PFN + 3);
      expect(w.vm.regions_mapping_count).toBe(0); // nothing pinned or recorded
    });

    it(`R-CALL-3 (${v}): the PFNMAP VMA shorter than the request ⇒ -EINVAL, before any per-page check`, () => {
      const w = world(v);
      // read-only PTEs with RWX requested would be -EFAULT at page 0 if a lookup ran first
      const base = w.map([[0, BAR_PFN, 2]], 2, PROT_READ);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 3)))).toBe(-22);
      expect(acrn_hv_state().calls).toBe(0);
    });

    it(`R-CALL-3 (${v}): a page without a PTE (lookup error) ⇒ -EINVAL, nothing sent`, () => {
      const w = world(v);
      // pages 0,1 mapped, page 2 a hole
      const base = w.map([[0, BAR_PFN, 2]], 3);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 3)))).toBe(-22);
      expect(acrn_hv_state().calls).toBe(0);
    });

    it(`R-CALL-3 (${v}): a read-only PTE with ACRN_MEM_ACCESS_WRITE ⇒ -EFAULT; read-only access is accepted`, () => {
      const w = world(v);
      const base = w.map([[0, BAR_PFN, 2]], 2, PROT_READ);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 2)))).toBe(-14);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 2, ACRN_MEM_ACCESS_READ)))).toBe(0);
    });

    it(`R-CALL-3 (${v}): a refcounted page (pfn_valid && !PageReserved) ⇒ -EFAULT`, () => {
      const w = world(v);
      const p = alloc_page(GFP_KERNEL)! as number;
      const base = w.map([[0, p, 1]], 1);
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 1)))).toBe(-14);
      expect(page_ref_count(p as page)).toBe(1);
    });

    it(`R-CALL-3 (${v}): pfns 0xfe000, 0xfe005 are not first+i ⇒ -EINVAL`, () => {
      const w = world(v);
      const base = w.map(
        [
          [0, BAR_PFN, 1],
          [1, BAR_PFN + 5, 1],
        ],
        2,
      );
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 2)))).toBe(-22);
    });

    it(`R-CALL-3 (${v}): len 0x800 (no whole page) ⇒ -EINVAL before any lookup`, () => {
      const w = world(v);
      const base = w.map([[0, BAR_PFN, 1]], 1);
      expect(w.run(acrn_vm_ram_map(w.vm, { ...memmap(base, 1), len: 0x800 }))).toBe(-22);
    });
  }

  for (const v of ['6.1', '6.6']) {
    it(`R-CALL-3 (${v}): follow_pfn of the first page only — a read-only, non-contiguous range is sent as one region from 0xfe000`, () => {
      const w = world(v);
      const base = w.map(
        [
          [0, BAR_PFN, 1],
          [1, BAR_PFN + 5, 1],
        ],
        2,
        PROT_READ,
      );
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 2)))).toBe(0);
      expect(acrn_hv_state().regions[0]).toMatchObject({ service_vm_pa: BAR, size: 2 * PAGE_SIZE });
      // the guest's second page is 0xfe001, which the process never mapped
      expect(w.run(acrn_hv_guest_access(1, GPA + PAGE_SIZE, 'write'))).toBe(BAR_PFN + 1);
    });
  }

  it('R-CALL-3 (5.15): no PFNMAP branch — pin_user_pages_fast fails on the VM_PFNMAP VMA (-EFAULT)', () => {
    const w = world('5.15');
    const base = w.map([[0, BAR_PFN, 2]], 2);
    expect(w.run(acrn_vm_ram_map(w.vm, memmap(base, 2)))).toBe(-14);
    expect(acrn_hv_state().calls).toBe(0);
  });

  for (const v of ['5.12', '6.1', '6.18']) {
    it(`R-CALL-3 (${v}): normal memory is long-term pinned, recorded in regions_mapping and sent one region per page`, () => {
      const w = world(v);
      const a = w.run(
        vm_mmap_pgoff(
          w.task.mm!,
          null,
          0,
          3 * PAGE_SIZE,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS,
          0,
        ),
      );
      for (let i = 0; i < 3; i++)
        expect(w.run(cpu_user_write(w.task, a + i * PAGE_SIZE, new Uint8Array([i]))).kind).toBe(
          'ok',
        );
      const pfns = [0, 1, 2].map((i) =>
        pte_pfn(ptep_get(walkToPte(w.task.mm!, a + i * PAGE_SIZE)!)),
      );
      expect(w.run(acrn_vm_ram_map(w.vm, memmap(a, 3)))).toBe(0);
      expect(w.vm.regions_mapping_count).toBe(1);
      const hv = acrn_hv_state();
      expect(hv.regions.map((r) => r.service_vm_pa / PAGE_SIZE)).toEqual(pfns);
      expect(hv.regions.map((r) => r.user_vm_pa)).toEqual([
        GPA,
        GPA + PAGE_SIZE,
        GPA + 2 * PAGE_SIZE,
      ]);
      for (const p of pfns) expect(folio_maybe_dma_pinned(p as folio)).toBe(true);
      w.run(acrn_vm_all_ram_unmap(w.vm));
      for (const p of pfns) expect(folio_maybe_dma_pinned(p as folio)).toBe(false);
    });
  }

  it('R-CALL-3 (6.18): a failing hypercall undoes the slot and the pins', () => {
    const w = world('6.18');
    const a = w.run(
      vm_mmap_pgoff(
        w.task.mm!,
        null,
        0,
        PAGE_SIZE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        0,
      ),
    );
    expect(w.run(cpu_user_write(w.task, a, new Uint8Array([1]))).kind).toBe('ok');
    const p = pte_pfn(ptep_get(walkToPte(w.task.mm!, a)!));
    acrn_hv_state().fail_next = -5;
    expect(w.run(acrn_vm_ram_map(w.vm, memmap(a, 1)))).toBe(-5);
    expect(w.vm.regions_mapping_count).toBe(0);
    expect(folio_maybe_dma_pinned(p as folio)).toBe(false);
  });

  it(`R-CALL-3 (6.18): the ${ACRN_MEM_MAPPING_MAX + 1}th pinned region ⇒ "Run out of memory mapping slots!", -ENOMEM, pins dropped`, () => {
    const w = world('6.18');
    const a = w.run(
      vm_mmap_pgoff(
        w.task.mm!,
        null,
        0,
        PAGE_SIZE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        0,
      ),
    );
    expect(w.run(cpu_user_write(w.task, a, new Uint8Array([1]))).kind).toBe('ok');
    const p = pte_pfn(ptep_get(walkToPte(w.task.mm!, a)!));
    w.vm.regions_mapping_count = ACRN_MEM_MAPPING_MAX;
    const before = page_ref_count(p as page);
    expect(w.run(acrn_vm_ram_map(w.vm, memmap(a, 1)))).toBe(-12);
    expect(page_ref_count(p as page)).toBe(before);
    expect(w.k.log.some((l) => l.text.includes('Run out of memory mapping slots!'))).toBe(true);
  });
});

describe('acrn_vm_memseg_map', () => {
  it('R-CALL-3 (6.18): MMIO maps service_vm_pa uncached without any lookup; an unknown type ⇒ -EINVAL', () => {
    const w = world('6.18');
    const mm: acrn_vm_memmap = {
      type: ACRN_MEMMAP_MMIO,
      attr: ACRN_MEM_ACCESS_RWX,
      user_vm_pa: GPA,
      vma_base: BAR,
      len: PAGE_SIZE,
    };
    expect(w.run(acrn_vm_memseg_map(w.vm, mm))).toBe(0);
    expect(acrn_hv_state().regions[0]).toMatchObject({
      service_vm_pa: BAR,
      attr: ACRN_MEM_TYPE_UC | ACRN_MEM_ACCESS_RWX,
    });
    expect(w.run(acrn_vm_memseg_map(w.vm, { ...mm, type: 7 }))).toBe(-22);
  });
});
