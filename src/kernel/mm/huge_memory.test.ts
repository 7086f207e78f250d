/**
 * Tests of the huge PFN insertions and the huge zero folio (huge_memory.ts).
 * Rules: kernel-spec.md §1 R-INS-5 (vmf_insert_pfn_pmd/_pud), with the version changes:
 * v6.4 7b806d229ef1 (the _prot variants removed; insert_pfn_pud ignoring the PAT cache
 * mode until v6.16, 09fefdca80ae), v6.12 special huge leaves, v6.17 no devmap/pfn_t.
 *
 * The vm_fault is built by hand (the fault path is not used): vmf->pmd / vmf->pud point at
 * the slot the fault handler would have allocated.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import { KernelBug } from '../kernel/panic.js';
import { dmesg } from '../kernel/printk.js';
import { SchedThread, type Op } from '../../sched/index.js';
import type {
  mm_struct,
  pmd_t_ptr,
  pud_t_ptr,
  vm_area_struct,
  vm_fault,
} from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  mm_flags_test,
} from '../include/linux/mm.js';
import { folio_order } from '../include/linux/page-flags.js';
import {
  _PAGE_ACCESSED,
  _PAGE_CACHE_MASK,
  _PAGE_DEVMAP,
  _PAGE_DIRTY,
  _PAGE_PCD,
  _PAGE_PSE,
  _PAGE_PWT,
  _PAGE_RW,
  _PAGE_SPECIAL,
  PAGE_READONLY,
  PAGE_SHARED,
  __pte,
  pte_flags,
  pte_pfn,
} from '../arch/x86/include/asm/pgtable_types.js';
import { pmd_special, pud_special } from '../arch/x86/include/asm/pgtable.js';
import {
  pgd_offset,
  pmd_alloc,
  ptep_get,
  pud_alloc,
  set_pmd_at,
  set_pud_at,
} from '../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { vm_area_alloc, vma_link } from './vma.js';
import { phys_read } from './sparse.js';
import { alloc_pages, GFP_KERNEL, __free_pages } from './page_alloc.js';
import { pfnsan_reports } from './pfnsan/pfnsan.js';
import { zap_vma_ptes } from './memory.zap.js';
import { cpu_user_read } from '../arch/x86/mm/fault.js';
import type { task_struct } from '../include/linux/sched.js';
import type { file } from '../include/linux/mm_types.js';
import {
  HPAGE_PMD_NR,
  MMF_HUGE_ZERO_PAGE,
  is_huge_zero_pfn,
  is_huge_zero_pmd,
  mm_get_huge_zero_folio,
  mm_put_huge_zero_folio,
  vmf_insert_pfn_pmd,
  vmf_insert_pfn_pmd_prot,
  vmf_insert_pfn_pud,
  vmf_insert_pfn_pud_prot,
} from './huge_memory.js';
import { PFN_DEV, PFN_MAP, __pfn_to_pfn_t } from './memory.pfnmap.js';
import { _PAGE_CACHE_MODE_WC, memtype_reserve } from '../arch/x86/mm/pat/memtype.js';

const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const PFNMAP = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
/** A 2 MiB-aligned pfn of a device window (8 GiB), no struct page. */
const PMD_PFN = 0x200000;
/** A 1 GiB-aligned pfn (256 GiB), no struct page. */
const PUD_PFN = 0x4000000;

interface Ctx {
  k: Kernel;
  mm: mm_struct;
  th: SchedThread;
}

function boot(version: string): Ctx {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 32) });
  const task = create_user_task('test');
  return { k, mm: task.mm!, th: new SchedThread(0, 'test', undefined as never, task) };
}

function makeVma(c: Ctx, start: number, end: number, flags: bigint): vm_area_struct {
  const vma = vm_area_alloc(c.mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = (flags & VM_WRITE) !== 0n ? PAGE_SHARED : PAGE_READONLY;
  vma.vm_pgoff = 0;
  vma_link(c.mm, vma);
  return vma;
}

/** The vm_fault of a huge fault at address, with the PMD (and PUD) slot allocated. */
function vmfAt(c: Ctx, vma: vm_area_struct, address: number): vm_fault {
  const { pud, pmd } = c.k.run(
    (function* (): Op<{ pud: pud_t_ptr; pmd: pmd_t_ptr }> {
      const pudp = (yield* pud_alloc(c.mm, pgd_offset(c.mm, address), address))!;
      const pmdp = (yield* pmd_alloc(c.mm, pudp, address))!;
      return { pud: pudp, pmd: pmdp };
    })(),
  );
  return {
    vma,
    gfp_mask: 0,
    pgoff: 0,
    address,
    real_address: address,
    flags: 0,
    pmd,
    pud,
    orig_pte: 0,
    orig_pmd: 0,
    cow_page: null,
    page: null,
    pte: null,
    ptl: null,
  };
}

/** The vm_fault of a PUD-sized fault: only the PUD slot is allocated. */
function vmfPud(c: Ctx, vma: vm_area_struct, address: number): vm_fault {
  const pud = c.k.run(pud_alloc(c.mm, pgd_offset(c.mm, address), address))!;
  return {
    vma,
    gfp_mask: 0,
    pgoff: 0,
    address,
    real_address: address,
    flags: 0,
    pmd: null,
    pud,
    orig_pte: 0,
    orig_pmd: 0,
    cow_page: null,
    page: null,
    pte: null,
    ptl: null,
  };
}

function run<T>(c: Ctx, op: Op<T>): T {
  return c.k.run(
    (function* (): Op<T> {
      yield* mmap_read_lock(c.mm);
      const r = yield* op;
      yield* mmap_read_unlock(c.mm);
      return r;
    })(),
    c.th,
  );
}

function warnings(): number {
  return (dmesg().match(/WARNING: CPU/g) ?? []).length;
}

describe('pfnsan: PMD pfnmap leaves', () => {
  it('a leaf over a driver buffer the driver frees: a user read through it is use-after-free; a new leaf there is checked against its own frames', () => {
    const c = boot('6.12');
    const buf = alloc_pages(GFP_KERNEL, 9)!; // 2 MiB, aligned
    const addr = 0x40000000;
    const vma = makeVma(c, addr, addr + 0x200000, RW_SHARED | PFNMAP);
    // A driver's mmap: file-backed, so vma_is_special_huge() (no folio behind the leaf).
    vma.vm_file = { f_mapping: null } as unknown as file;
    expect(run(c, vmf_insert_pfn_pmd(vmfAt(c, vma, addr), buf, false))).toBe(VM_FAULT_NOPAGE);
    const task = c.th.ctx as task_struct;
    expect(c.k.run(cpu_user_read(task, addr + 0x1000, 8), c.th).kind).toBe('ok');
    expect(pfnsan_reports()).toEqual([]);
    __free_pages(buf, 9); // the driver frees it; the leaf stays
    expect(c.k.run(cpu_user_read(task, addr + 0x3000, 8), c.th).kind).toBe('ok');
    const [r] = pfnsan_reports();
    expect(r!.code).toBe('use-after-free');
    expect(r!.pfn).toBe(buf + 3);
    expect(r!.text.join('\n')).toContain(`user huge leaf of mm ${c.mm.id} at 0x40003000`);
    // Zapped, then a new buffer mapped by a new leaf at the same place: clean.
    c.k.run(zap_vma_ptes(vma, addr, 0x200000), c.th);
    const buf2 = alloc_pages(GFP_KERNEL, 9)!;
    expect(run(c, vmf_insert_pfn_pmd(vmfAt(c, vma, addr), buf2, false))).toBe(VM_FAULT_NOPAGE);
    expect(c.k.run(cpu_user_read(task, addr + 0x3000, 8), c.th).kind).toBe('ok');
    expect(pfnsan_reports()).toHaveLength(1);
  });
});

describe('vmf_insert_pfn_pmd', () => {
  for (const [what, flags] of [
    ['PFNMAP and MIXEDMAP', RW_SHARED | VM_PFNMAP | VM_MIXEDMAP],
    ['a COW PFNMAP', RW_PRIVATE | VM_PFNMAP],
    ['neither, for a pfn that is not devmap', RW_SHARED],
  ] as const) {
    it(`R-INS-5: ${what} is a BUG`, () => {
      const c = boot('6.12');
      const vma = makeVma(c, 0x40000000, 0x40200000, flags);
      expect(() => run(c, vmf_insert_pfn_pmd(vmfAt(c, vma, 0x40000000), PMD_PFN, false))).toThrow(
        KernelBug,
      );
    });
  }

  it('R-INS-5: the PMD-aligned address below vm_start is VM_FAULT_SIGBUS', () => {
    const c = boot('6.12');
    // VMA 0x40100000..0x40400000; a fault at 0x40150000 aligns down to 0x40000000
    const vma = makeVma(c, 0x40100000, 0x40400000, RW_SHARED | PFNMAP);
    const vmf = vmfAt(c, vma, 0x40150000);
    expect(run(c, vmf_insert_pfn_pmd(vmf, PMD_PFN, false))).toBe(VM_FAULT_SIGBUS);
    expect(ptep_get(vmf.pmd!)).toBe(0);
  });

  it('R-INS-5: installs a special leaf from v6.12; v6.10 a plain leaf, or devmap for a devmap pfn_t', () => {
    for (const [v, pfn, want] of [
      ['6.12', PMD_PFN, _PAGE_SPECIAL],
      ['6.18', PMD_PFN, _PAGE_SPECIAL],
      ['6.10', PMD_PFN, 0],
      ['6.10', __pfn_to_pfn_t(PMD_PFN, PFN_DEV | PFN_MAP), _PAGE_DEVMAP],
    ] as const) {
      const c = boot(v);
      const vma = makeVma(c, 0x40000000, 0x40200000, RW_SHARED | PFNMAP);
      // fault at 0x40012000 -> leaf at 0x40000000 -> pfn 0x200000
      const vmf = vmfAt(c, vma, 0x40012000);
      expect(run(c, vmf_insert_pfn_pmd(vmf, pfn, false))).toBe(VM_FAULT_NOPAGE);
      const e = ptep_get(vmf.pmd!);
      expect(pte_pfn(e)).toBe(PMD_PFN);
      // PAT: an untracked device pfn is UC- (PCD)
      expect(pte_flags(e)).toBe(PAGE_SHARED | _PAGE_PCD | _PAGE_PSE | want);
      expect(pmd_special(e)).toBe(want === _PAGE_SPECIAL);
    }
  });

  it('R-INS-5: an existing leaf: write with another pfn WARNs and keeps it (not for the huge zero folio); the same pfn becomes young, dirty, writable', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0x40600000, RW_SHARED | VM_MIXEDMAP);
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    const a = vmfAt(c, vma, 0x40000000);
    const b = vmfAt(c, vma, 0x40200000);
    const z = vmfAt(c, vma, 0x40400000);
    const ro = __pte(PMD_PFN, (PAGE_READONLY & ~_PAGE_ACCESSED) | _PAGE_PSE | _PAGE_SPECIAL);
    c.k.run(set_pmd_at(c.mm, 0x40000000, a.pmd!, ro));
    c.k.run(set_pmd_at(c.mm, 0x40200000, b.pmd!, ro));
    const zero = __pte(hz, PAGE_READONLY | _PAGE_PSE);
    c.k.run(set_pmd_at(c.mm, 0x40400000, z.pmd!, zero));
    expect(run(c, vmf_insert_pfn_pmd(z, PMD_PFN + 512, true))).toBe(VM_FAULT_NOPAGE);
    expect(ptep_get(z.pmd!)).toBe(zero);
    expect(warnings()).toBe(0);
    expect(run(c, vmf_insert_pfn_pmd(a, PMD_PFN + 512, true))).toBe(VM_FAULT_NOPAGE);
    expect(ptep_get(a.pmd!)).toBe(ro);
    expect(warnings()).toBe(1);
    expect(run(c, vmf_insert_pfn_pmd(b, PMD_PFN, true))).toBe(VM_FAULT_NOPAGE);
    expect(ptep_get(b.pmd!)).toBe(
      __pte(PMD_PFN, pte_flags(ro) | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_RW),
    );
    // without write, a populated PMD is left alone
    expect(run(c, vmf_insert_pfn_pmd(a, PMD_PFN, false))).toBe(VM_FAULT_NOPAGE);
    expect(ptep_get(a.pmd!)).toBe(ro);
  });

  it('R-INS-5: the PAT cache mode of the pfn is used (WC-tracked pfn -> PWT)', () => {
    for (const v of ['6.1', '6.12', '6.18']) {
      const c = boot(v);
      expect(
        memtype_reserve(PMD_PFN * 4096, PMD_PFN * 4096 + 0x200000, _PAGE_CACHE_MODE_WC, null),
      ).toBe(0);
      const vma = makeVma(c, 0x40000000, 0x40200000, RW_SHARED | PFNMAP);
      const vmf = vmfAt(c, vma, 0x40000000);
      expect(run(c, vmf_insert_pfn_pmd(vmf, PMD_PFN, false))).toBe(VM_FAULT_NOPAGE);
      expect(pte_flags(ptep_get(vmf.pmd!)) & _PAGE_CACHE_MASK & ~_PAGE_PSE).toBe(_PAGE_PWT);
    }
  });
});

describe('vmf_insert_pfn_pmd_prot', () => {
  it('R-INS-5: exists up to v6.3 and takes the given pgprot; removed by 7b806d229ef1 (v6.4)', () => {
    const c = boot('6.1');
    const vma = makeVma(c, 0x40000000, 0x40200000, RW_SHARED | PFNMAP);
    const vmf = vmfAt(c, vma, 0x40000000);
    expect(run(c, vmf_insert_pfn_pmd_prot(vmf, PMD_PFN, PAGE_READONLY, false))).toBe(
      VM_FAULT_NOPAGE,
    );
    expect(pte_flags(ptep_get(vmf.pmd!)) & _PAGE_RW).toBe(0);
    const n = boot('6.5');
    const v2 = makeVma(n, 0x40000000, 0x40200000, RW_SHARED | PFNMAP);
    expect(() =>
      run(n, vmf_insert_pfn_pmd_prot(vmfAt(n, v2, 0x40000000), PMD_PFN, PAGE_READONLY, false)),
    ).toThrow('vmf_insert_pfn_pmd_prot() does not exist in 6.5 (removed by 7b806d229ef1, v6.4)');
  });
});

describe('vmf_insert_pfn_pud', () => {
  it('R-INS-5: BUG for PFNMAP|MIXEDMAP and for a COW PFNMAP; SIGBUS for an aligned address outside the VMA', () => {
    const c = boot('6.12');
    const both = makeVma(c, 0x40000000, 0x80000000, RW_SHARED | VM_PFNMAP | VM_MIXEDMAP);
    expect(() => run(c, vmf_insert_pfn_pud(vmfPud(c, both, 0x40000000), PUD_PFN, false))).toThrow(
      KernelBug,
    );
    const c2 = boot('6.12');
    const cow = makeVma(c2, 0x40000000, 0x80000000, RW_PRIVATE | VM_PFNMAP);
    expect(() => run(c2, vmf_insert_pfn_pud(vmfPud(c2, cow, 0x40000000), PUD_PFN, false))).toThrow(
      KernelBug,
    );
    const c3 = boot('6.12');
    const off = makeVma(c3, 0x40200000, 0x80000000, RW_SHARED | PFNMAP);
    expect(run(c3, vmf_insert_pfn_pud(vmfPud(c3, off, 0x40200000), PUD_PFN, false))).toBe(
      VM_FAULT_SIGBUS,
    );
  });

  it('R-INS-5: a special PUD leaf; v6.4-v6.15 drop the PAT cache mode (vm_page_prot), fixed by 09fefdca80ae (v6.16)', () => {
    for (const [v, cache] of [
      ['6.1', _PAGE_PWT],
      ['6.12', 0],
      ['6.15', 0],
      ['6.18', _PAGE_PWT],
    ] as const) {
      const c = boot(v);
      expect(
        memtype_reserve(PUD_PFN * 4096, PUD_PFN * 4096 + 0x1000, _PAGE_CACHE_MODE_WC, null),
      ).toBe(0);
      const vma = makeVma(c, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
      const vmf = vmfPud(c, vma, 0x40000000);
      expect(run(c, vmf_insert_pfn_pud(vmf, PUD_PFN, false))).toBe(VM_FAULT_NOPAGE);
      const e = ptep_get(vmf.pud!);
      expect(pte_pfn(e)).toBe(PUD_PFN);
      expect(pte_flags(e) & _PAGE_CACHE_MASK & ~_PAGE_PSE).toBe(cache);
      expect(pud_special(e)).toBe(v !== '6.1');
    }
  });

  it('R-INS-5: write on a populated PUD with another pfn WARNs and keeps it', () => {
    const c = boot('6.12');
    const vma = makeVma(c, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
    const vmf = vmfPud(c, vma, 0x40000000);
    const old = __pte(PUD_PFN, PAGE_READONLY | _PAGE_PSE | _PAGE_SPECIAL);
    c.k.run(set_pud_at(c.mm, 0x40000000, vmf.pud!, old));
    expect(run(c, vmf_insert_pfn_pud(vmf, PUD_PFN + 0x40000, true))).toBe(VM_FAULT_NOPAGE);
    expect(ptep_get(vmf.pud!)).toBe(old);
    expect(warnings()).toBe(1);
  });

  it('R-INS-5: vmf_insert_pfn_pud_prot exists up to v6.3 only', () => {
    const c = boot('6.1');
    const vma = makeVma(c, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
    expect(
      run(c, vmf_insert_pfn_pud_prot(vmfPud(c, vma, 0x40000000), PUD_PFN, PAGE_SHARED, true)),
    ).toBe(VM_FAULT_NOPAGE);
    const n = boot('6.12');
    const v2 = makeVma(n, 0x40000000, 0x80000000, RW_SHARED | PFNMAP);
    expect(() =>
      run(n, vmf_insert_pfn_pud_prot(vmfPud(n, v2, 0x40000000), PUD_PFN, PAGE_SHARED, true)),
    ).toThrow('does not exist in 6.12');
  });
});

describe('mm_get_huge_zero_folio', () => {
  it('allocates one zeroed order-9 folio on first use (refcount 2: one for the shrinker), one reference per mm', () => {
    const c = boot('6.12');
    const st = () => c.k.sub.huge_zero as { huge_zero_refcount: number; huge_zero_pfn: number };
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    expect(hz).not.toBeNull();
    expect(hz % HPAGE_PMD_NR).toBe(0);
    expect(folio_order(hz)).toBe(9);
    expect(phys_read(hz * 4096, 2 * 2 ** 20).every((b) => b === 0)).toBe(true);
    expect(st().huge_zero_refcount).toBe(2);
    expect(mm_flags_test(MMF_HUGE_ZERO_PAGE, c.mm)).toBe(true);
    // the same mm: no further reference
    expect(c.k.run(mm_get_huge_zero_folio(c.mm))).toBe(hz);
    expect(st().huge_zero_refcount).toBe(2);
    // another mm: one more
    const other = create_user_task('other').mm!;
    expect(c.k.run(mm_get_huge_zero_folio(other))).toBe(hz);
    expect(st().huge_zero_refcount).toBe(3);
    mm_put_huge_zero_folio(other);
    expect(st().huge_zero_refcount).toBe(2);
  });

  it('is_huge_zero_pfn covers the 512 pfns of the folio; is_huge_zero_pmd a present leaf of it', () => {
    const c = boot('6.18');
    expect(is_huge_zero_pfn(0)).toBe(false); // not allocated yet
    const hz = c.k.run(mm_get_huge_zero_folio(c.mm))!;
    expect(is_huge_zero_pfn(hz)).toBe(true);
    expect(is_huge_zero_pfn(hz + 511)).toBe(true);
    expect(is_huge_zero_pfn(hz + 512)).toBe(false);
    expect(is_huge_zero_pmd(__pte(hz, PAGE_READONLY | _PAGE_PSE))).toBe(true);
    expect(is_huge_zero_pmd(__pte(hz + 512, PAGE_READONLY | _PAGE_PSE))).toBe(false);
    expect(is_huge_zero_pmd(0)).toBe(false);
  });
});
