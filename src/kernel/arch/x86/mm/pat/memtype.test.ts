/**
 * Tests of the x86 PAT memtype tracking (memtype.ts): the reservation tree and RAM page
 * types, reserve_pfn_range's refusals and messages, and the hooks the core mm calls
 * (kernel-spec.md §1 R-RPR-3, R-INS-1/3 cache modes, fork's track_pfn_copy, and
 * pfn_modify_allowed for R-RPR-1.5 / R-INS-1).
 *
 * Physical map: 4 GiB e820 (System RAM 0x1000-0x9f000, 0x100000-0x1000000,
 * 0x3000000-0x80000000, 0x100000000-0x180000000) plus a BAR at 0xfe000000-0xfe100000.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../../../init/main.js';
import { create_user_task } from '../../../../kernel/fork.js';
import { dmesg } from '../../../../kernel/printk.js';
import { SchedThread, type Op } from '../../../../../sched/index.js';
import type { task_struct } from '../../../../include/linux/sched.js';
import type { folio, mm_struct, vm_area_struct } from '../../../../include/linux/mm_types.js';
import {
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PAT,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../../../../include/linux/mm.js';
import {
  _PAGE_CACHE_MASK,
  _PAGE_PCD,
  _PAGE_PWT,
  PAGE_NONE,
  PAGE_SHARED,
  pfn_pte,
} from '../../include/asm/pgtable_types.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  set_pte_at,
} from '../../../../include/linux/pgtable.js';
import { mmap_write_lock, mmap_write_unlock } from '../../../../include/linux/mmap_lock.js';
import { vm_area_alloc, vma_link } from '../../../../mm/vma.js';
import { alloc_page, GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from '../../../../mm/page_alloc.js';
import { anon_vma_prepare, folio_add_new_anon_rmap, RMAP_EXCLUSIVE } from '../../../../mm/rmap.js';
import { remap_pfn_range } from '../../../../mm/memory.pfnmap.js';
import {
  _PAGE_CACHE_MODE_UC,
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WB,
  _PAGE_CACHE_MODE_WC,
  _PAGE_CACHE_MODE_WT,
  lookup_memtype,
  memtype_free,
  memtype_reserve,
  pat_memtype_list,
  pfn_modify_allowed,
  pfnmap_setup_cachemode,
  pfnmap_track,
  pfnmap_untrack,
  reserve_pfn_range,
  track_pfn_copy,
  track_pfn_insert,
  track_pfn_remap,
  untrack_pfn,
  untrack_pfn_clear,
  untrack_pfn_copy,
  type pgprot_ptr,
} from './memtype.js';
import { __pfn_to_pfn_t, PFN_DEV } from '../../../../mm/memory.pfnmap.js';

const MiB = 2 ** 20;
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
const RW_SHARED = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE;
const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;

interface Ctx {
  k: Kernel;
  task: task_struct;
  mm: mm_struct;
  th: SchedThread;
}

function boot(
  version: string,
  config: Record<string, boolean | number> = {},
  caps: string[] = [],
): Ctx {
  const k = new Kernel({ version, config });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('test', { caps });
  return { k, task, mm: task.mm!, th: new SchedThread(0, 'test', undefined as never, task) };
}

/** Runs op as the test task with mmap_lock held for write. */
function w<T>(c: Ctx, op: Op<T>, mm: mm_struct = c.mm): T {
  return c.k.run(
    (function* (): Op<T> {
      yield* mmap_write_lock(mm);
      const r = yield* op;
      yield* mmap_write_unlock(mm);
      return r;
    })(),
    c.th,
  );
}

/** Runs fn as the test task (current->comm "test"). */
function as<T>(c: Ctx, fn: () => T): T {
  return c.k.run(
    (function* (): Op<T> {
      return fn();
    })(),
    c.th,
  );
}

function makeVma(c: Ctx, mm: mm_struct, start: number, end: number, flags: bigint): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = PAGE_SHARED;
  vma.vm_pgoff = 0;
  vma_link(mm, vma);
  void c;
  return vma;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

describe('memtype_reserve', () => {
  it('a WB request on non-RAM becomes UC- (MTRR) and is entered in the tree', () => {
    boot('6.12');
    const nt = { pcm: -1 };
    expect(memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_WB, nt)).toBe(0);
    expect(nt.pcm).toBe(_PAGE_CACHE_MODE_UC_MINUS);
    expect(pat_memtype_list()).toEqual([
      { start: BAR, end: BAR + 0x2000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
  });

  it('an overlap of another type: refused without new_type (-EBUSY, messages), adopted with it', () => {
    const c = boot('6.12');
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    expect(as(c, () => memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_UC_MINUS, null))).toBe(
      -16,
    );
    expect(dmesg()).toContain(
      `x86/PAT: test:${c.task.pid} conflicting memory types fe000000-fe002000 uncached-minus<->write-combining`,
    );
    expect(dmesg()).toContain(
      'x86/PAT: memtype_reserve failed [mem 0xfe000000-0xfe001fff], track uncached-minus, req uncached-minus',
    );
    const nt = { pcm: -1 };
    expect(memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_UC_MINUS, nt)).toBe(0);
    expect(nt.pcm).toBe(_PAGE_CACHE_MODE_WC);
    expect(pat_memtype_list().map((e) => e.type)).toEqual([
      _PAGE_CACHE_MODE_WC,
      _PAGE_CACHE_MODE_WC,
    ]);
  });

  it('RAM is tracked per page: only WB pages may change type (-EBUSY with the kernel message); strong UC becomes UC-', () => {
    const c = boot('6.12');
    const p = alloc_page(GFP_KERNEL)!;
    const pa = p * 4096;
    expect(memtype_reserve(pa, pa + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    expect(lookup_memtype(pa)).toBe(_PAGE_CACHE_MODE_WC);
    expect(pat_memtype_list()).toEqual([]);
    expect(memtype_reserve(pa, pa + 0x1000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(-16);
    expect(dmesg()).toContain(
      `x86/PAT: reserve_ram_pages_type failed [mem ${hex(pa)}-${hex(pa + 0xfff)}], track 0x1, req 0x2`,
    );
    expect(memtype_free(pa, pa + 0x1000)).toBe(0);
    expect(lookup_memtype(pa)).toBe(_PAGE_CACHE_MODE_WB);
    // UC on RAM: WARN_ON_ONCE, reserved as UC-
    expect(as(c, () => memtype_reserve(pa, pa + 0x1000, _PAGE_CACHE_MODE_UC, null))).toBe(0);
    expect(lookup_memtype(pa)).toBe(_PAGE_CACHE_MODE_UC_MINUS);
    expect(dmesg()).toContain('WARNING: CPU');
  });

  it('non-RAM then RAM is -EINVAL; RAM then non-RAM counts as RAM (the callback only sees gaps before RAM); the ISA hole is untracked WB', () => {
    boot('6.12');
    // 0xfffff000..0x100001000: the last page of the PCI hole, then RAM at 4 GiB
    expect(memtype_reserve(0xfffff000, 0x100001000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(-22);
    // 0x7ffff000..0x80001000: the last RAM page below 2 GiB, then the hole: per-page RAM tracking
    expect(memtype_reserve(0x7ffff000, 0x80001000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(0);
    expect(lookup_memtype(0x7ffff000)).toBe(_PAGE_CACHE_MODE_UC_MINUS);
    expect(pat_memtype_list()).toEqual([]);
    const nt = { pcm: -1 };
    expect(memtype_reserve(0xa0000, 0xc0000, _PAGE_CACHE_MODE_UC_MINUS, nt)).toBe(0);
    expect(nt.pcm).toBe(_PAGE_CACHE_MODE_WB);
    expect(pat_memtype_list()).toEqual([]);
  });

  it('start >= end WARNs "memtype_reserve failed" and is -EINVAL', () => {
    const c = boot('6.12');
    expect(as(c, () => memtype_reserve(BAR, BAR, _PAGE_CACHE_MODE_WC, null))).toBe(-22);
    expect(dmesg()).toContain(
      'memtype_reserve failed: [mem 0xfe000000-0xfdffffff], req write-combining',
    );
  });
});

describe('memtype_free', () => {
  it('frees the exact reservation; an unknown one is "freeing invalid memtype" and -EINVAL', () => {
    const c = boot('6.12');
    expect(memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    expect(as(c, () => memtype_free(BAR + 0x4000, BAR + 0x5000))).toBe(-22);
    expect(dmesg()).toContain(
      `x86/PAT: test:${c.task.pid} freeing invalid memtype [mem 0xfe004000-0xfe004fff]`,
    );
    expect(memtype_free(BAR, BAR + 0x2000)).toBe(0);
    expect(pat_memtype_list()).toEqual([]);
  });

  it('the end of a reservation: shrunk up to v6.15 (MEMTYPE_END_MATCH), refused from v6.16', () => {
    for (const [v, ret, left] of [
      ['6.15', 0, [{ start: BAR, end: BAR + 0x1000, type: _PAGE_CACHE_MODE_WC }]],
      ['6.18', -22, [{ start: BAR, end: BAR + 0x2000, type: _PAGE_CACHE_MODE_WC }]],
    ] as const) {
      const c = boot(v);
      expect(memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
      expect(as(c, () => memtype_free(BAR + 0x1000, BAR + 0x2000))).toBe(ret);
      expect(pat_memtype_list()).toEqual(left);
    }
  });
});

describe('lookup_memtype', () => {
  it('RAM pages have their own type; non-RAM the first overlapping reservation, else UC-; the ISA hole WB', () => {
    boot('6.12');
    expect(lookup_memtype(0x3000000)).toBe(_PAGE_CACHE_MODE_WB);
    expect(lookup_memtype(BAR)).toBe(_PAGE_CACHE_MODE_UC_MINUS);
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WT, null)).toBe(0);
    expect(lookup_memtype(BAR)).toBe(_PAGE_CACHE_MODE_WT);
    expect(lookup_memtype(0xb8000)).toBe(_PAGE_CACHE_MODE_WB);
  });
});

describe('reserve_pfn_range', () => {
  it('RAM: nothing reserved; a request of another type gets the page type with "map pfn RAM range"', () => {
    const c = boot('6.12');
    const p = alloc_page(GFP_KERNEL)!;
    const prot: pgprot_ptr = { pgprot: PAGE_SHARED | _PAGE_PCD };
    expect(as(c, () => reserve_pfn_range(p * 4096, 0x1000, prot))).toBe(0);
    expect(prot.pgprot & _PAGE_CACHE_MASK).toBe(0);
    expect(dmesg()).toContain(
      `x86/PAT: test:${c.task.pid} map pfn RAM range req uncached-minus for [mem ${hex(p * 4096)}-${hex(p * 4096 + 0xfff)}], got write-back`,
    );
    expect(pat_memtype_list()).toEqual([]);
  });

  it('a type that may not replace the request is -EINVAL ("map pfn expected mapping type") and unreserved', () => {
    const c = boot('6.12');
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    // WT requested, WC tracked: is_new_memtype_allowed(WT, WC) is false
    const prot: pgprot_ptr = { pgprot: PAGE_SHARED | 0x80 | _PAGE_PCD | _PAGE_PWT };
    expect(as(c, () => reserve_pfn_range(BAR, 0x1000, prot))).toBe(-22);
    expect(dmesg()).toContain(
      `x86/PAT: test:${c.task.pid} map pfn expected mapping type write-through for [mem 0xfe000000-0xfe000fff], got write-combining`,
    );
    expect(pat_memtype_list()).toHaveLength(1);
  });

  it('strict_prot (fork, up to v6.15) refuses any other type; v6.16 dropped it', () => {
    for (const [v, ret] of [
      ['6.12', -22],
      ['6.18', 0],
    ] as const) {
      const c = boot(v);
      expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(0);
      const prot: pgprot_ptr = { pgprot: PAGE_SHARED | _PAGE_PWT }; // WC requested, UC- tracked
      expect(as(c, () => reserve_pfn_range(BAR, 0x1000, prot, 1))).toBe(ret);
      if (ret === 0) expect(prot.pgprot & _PAGE_CACHE_MASK).toBe(_PAGE_PCD);
    }
  });
});

describe('track_pfn_remap', () => {
  it('R-RPR-3: with no VMA it reserves; a partial range needs one tracked type; gone in v6.16', () => {
    const c = boot('6.12');
    const prot: pgprot_ptr = { pgprot: PAGE_SHARED };
    expect(track_pfn_remap(null, prot, BAR_PFN, 0, 0x2000)).toBe(0);
    expect(pat_memtype_list()).toHaveLength(1);
    const vma = makeVma(c, c.mm, 0x10000000, 0x10004000, RW_SHARED);
    expect(memtype_reserve(BAR + 0x10000, BAR + 0x11000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    // partial: 0xfe010 WC, 0xfe011 UC-: -EINVAL
    expect(track_pfn_remap(vma, { pgprot: PAGE_SHARED }, BAR_PFN + 0x10, 0x10000000, 0x2000)).toBe(
      -22,
    );
    expect(vma.vm_flags & VM_PAT).toBe(0n);
    const n = boot('6.18');
    expect(() => track_pfn_remap(null, { pgprot: PAGE_SHARED }, BAR_PFN, 0, 0x1000)).toThrow(
      'track_pfn_remap() does not exist in 6.18',
    );
    void n;
  });
});

describe('track_pfn_insert', () => {
  it('R-INS-1: the prot takes the tracked type of the pfn (v5.7-v6.15)', () => {
    boot('6.12');
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    const p: pgprot_ptr = { pgprot: PAGE_SHARED | _PAGE_PCD };
    track_pfn_insert(null as never, p, __pfn_to_pfn_t(BAR_PFN, PFN_DEV));
    expect(p.pgprot & _PAGE_CACHE_MASK).toBe(_PAGE_PWT);
  });
});

describe('pfnmap_setup_cachemode', () => {
  it('R-RPR-3 (v6.16+): uniform ranges take their type; mixed ones are -EINVAL; absent in v6.12', () => {
    boot('6.18');
    expect(memtype_reserve(BAR, BAR + 0x2000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    const p: pgprot_ptr = { pgprot: PAGE_SHARED };
    expect(pfnmap_setup_cachemode(BAR_PFN, 0x2000, p)).toBe(0);
    expect(p.pgprot & _PAGE_CACHE_MASK).toBe(_PAGE_PWT);
    expect(pfnmap_setup_cachemode(BAR_PFN + 1, 0x2000, { pgprot: PAGE_SHARED })).toBe(-22);
    boot('6.12');
    expect(() => pfnmap_setup_cachemode(BAR_PFN, 0x1000, { pgprot: 0 })).toThrow(
      'pfnmap_setup_cachemode() does not exist in 6.12',
    );
  });
});

describe('pfnmap_track', () => {
  it('R-RPR-3 (v6.16+): pfnmap_track reserves and pfnmap_untrack frees; absent in v6.15', () => {
    boot('6.18');
    const p: pgprot_ptr = { pgprot: PAGE_SHARED };
    expect(pfnmap_track(BAR_PFN, 0x3000, p)).toBe(0);
    expect(p.pgprot & _PAGE_CACHE_MASK).toBe(_PAGE_PCD);
    expect(pat_memtype_list()).toEqual([
      { start: BAR, end: BAR + 0x3000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
    pfnmap_untrack(BAR_PFN, 0x3000);
    expect(pat_memtype_list()).toEqual([]);
    boot('6.15');
    expect(() => pfnmap_track(BAR_PFN, 0x1000, { pgprot: 0 })).toThrow(
      'pfnmap_track() does not exist in 6.15',
    );
  });
});

describe('track_pfn_copy', () => {
  /** A VM_PAT VMA remapped whole to BAR pfns, and its fork copy (same flags, child mm). */
  function remapped(c: Ctx, flags = RW_SHARED) {
    const src = makeVma(c, c.mm, 0x10000000, 0x10002000, flags);
    expect(w(c, remap_pfn_range(src, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))).toBe(0);
    const child = create_user_task('child').mm!;
    const dst = makeVma(c, child, 0x10000000, 0x10002000, src.vm_flags & ~VM_PAT);
    return { src, dst, child };
  }

  it('fork reserves the range again with the source cache mode; v6.15 marks dst VM_PAT and returns the pfn', () => {
    for (const [v, pfn, dstPat] of [
      ['6.12', 0, false],
      ['6.15', BAR_PFN, true],
    ] as const) {
      const c = boot(v);
      const { src, dst, child } = remapped(c);
      expect(w(c, track_pfn_copy(dst, src), child)).toEqual({ ret: 0, pfn });
      expect(pat_memtype_list()).toHaveLength(2);
      expect((dst.vm_flags & VM_PAT) !== 0n).toBe(dstPat);
    }
  });

  it('v6.15: untrack_pfn_copy undoes the reservation of a failed copy; absent in v6.12', () => {
    const c = boot('6.15');
    const { src, dst, child } = remapped(c);
    const r = w(c, track_pfn_copy(dst, src), child);
    w(
      c,
      (function* () {
        untrack_pfn_copy(dst, r.pfn);
      })(),
      child,
    );
    expect(pat_memtype_list()).toHaveLength(1);
    expect(dst.vm_flags & VM_PAT).toBe(0n);
    boot('6.12');
    expect(() => untrack_pfn_copy(dst, 0)).toThrow('untrack_pfn_copy() does not exist in 6.12');
  });

  it('a source without VM_PAT is 0 with nothing reserved', () => {
    const c = boot('6.12');
    const src = makeVma(c, c.mm, 0x10000000, 0x10001000, RW_SHARED);
    const child = create_user_task('child').mm!;
    const dst = makeVma(c, child, 0x10000000, 0x10001000, RW_SHARED);
    expect(w(c, track_pfn_copy(dst, src), child)).toEqual({ ret: 0, pfn: 0 });
    expect(pat_memtype_list()).toEqual([]);
  });

  it('R-CALL-4 (v6.9+): a COW source whose first entry is now an anon folio cannot give the cache mode: -EINVAL', () => {
    const c = boot('6.12');
    const { src, dst, child } = remapped(c, RW_PRIVATE);
    // the first page was COWed: a normal anon PTE at 0x10000000
    expect(anon_vma_prepare(src)).toBe(0);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    folio_add_new_anon_rmap(p as number as folio, src, 0x10000000, RMAP_EXCLUSIVE);
    c.k.run(
      (function* () {
        const pudp = yield* pud_alloc(c.mm, pgd_offset(c.mm, 0x10000000), 0x10000000);
        const pmdp = yield* pmd_alloc(c.mm, pudp!, 0x10000000);
        yield* pte_alloc(c.mm, pmdp!);
        const [ptep, ptl] = (yield* pte_offset_map_lock(c.mm, pmdp!, 0x10000000))!;
        yield* set_pte_at(c.mm, 0x10000000, ptep, pfn_pte(p, PAGE_SHARED));
        yield* pte_unmap_unlock(ptep, ptl);
      })(),
    );
    expect(w(c, track_pfn_copy(dst, src), child)).toEqual({ ret: -22, pfn: 0 });
    expect(pat_memtype_list()).toHaveLength(1);
    // untrack_pfn of the whole VMA falls back to vm_pgoff (the remapped pfn) for COW
    w(c, untrack_pfn(src, 0, 0, true));
    expect(pat_memtype_list()).toEqual([]);
    expect(src.vm_flags & VM_PAT).toBe(0n);
  });
});

describe('untrack_pfn', () => {
  it('pfn = size = 0: the whole VMA, its pfn read from the first entry; VM_PAT cleared', () => {
    const c = boot('6.12');
    const vma = makeVma(c, c.mm, 0x10000000, 0x10002000, RW_SHARED);
    expect(w(c, remap_pfn_range(vma, 0x10000000, BAR_PFN, 0x2000, PAGE_SHARED))).toBe(0);
    w(c, untrack_pfn(vma, 0, 0, true));
    expect(pat_memtype_list()).toEqual([]);
    expect(vma.vm_flags & VM_PAT).toBe(0n);
    // untrack_pfn_clear only clears the flag
    vma.vm_flags |= VM_PAT;
    w(
      c,
      (function* () {
        untrack_pfn_clear(vma);
      })(),
    );
    expect(vma.vm_flags & VM_PAT).toBe(0n);
  });
});

describe('pfn_modify_allowed', () => {
  it('without X86_BUG_L1TF everything is allowed', () => {
    boot('6.12');
    expect(pfn_modify_allowed(2 ** 33, PAGE_NONE)).toBe(true);
  });

  it('L1TF: a PROT_NONE entry of a pfn without struct page at or above the limit needs CAP_SYS_ADMIN', () => {
    const c = boot('6.12', { CONFIG_X86_BUG_L1TF: true });
    const limit = 2 ** 33; // 1 << (46 - 1 - 12)
    expect(as(c, () => pfn_modify_allowed(limit, PAGE_NONE))).toBe(false);
    expect(as(c, () => pfn_modify_allowed(limit - 1, PAGE_NONE))).toBe(true);
    expect(as(c, () => pfn_modify_allowed(limit, PAGE_SHARED))).toBe(true); // present: not inverted
    expect(as(c, () => pfn_modify_allowed(0x3000, PAGE_NONE))).toBe(true); // pfn_valid: RAM
    const admin = boot('6.12', { CONFIG_X86_BUG_L1TF: true }, ['CAP_SYS_ADMIN']);
    expect(as(admin, () => pfn_modify_allowed(limit, PAGE_NONE))).toBe(true);
  });
});

describe('get_pat_info through fork and munmap', () => {
  // On 6.12 the failed fork's teardown untracks the child's copy of VM_PAT and so frees
  // the parent's reservation; the parent's munmap then finds none ("freeing invalid
  // memtype"). dc84bc2aba85 (6.15) clears VM_PAT in the child first and untracks only
  // what the copy reserved.
  for (const [version, parentFreesTwice] of [
    ['6.12', true],
    ['6.15', false],
  ] as const) {
    it(`R-CALL-4 (${version}): after a COW of the first page of a private remap, fork fails (-ENOMEM) and munmap frees the memtype via vm_pgoff`, async () => {
      const { alloc_file, new_inode, O_RDWR } = await import('../../../../fs/inode.js');
      const { vm_mmap_pgoff, vm_munmap, MAP_PRIVATE, PROT_READ, PROT_WRITE } =
        await import('../../../../mm/mmap.js');
      const { cpu_user_write } = await import('../fault.js');
      const { fork_task } = await import('../../../../kernel/fork.js');
      const { VM_IO, VM_PFNMAP, VM_DONTEXPAND, VM_DONTDUMP } =
        await import('../../../../include/linux/mm.js');
      const { vm_flags_set } = await import('../../../../mm/memory.pfnmap.js');
      const k = new Kernel({ version });
      start_kernel(k, {
        map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
      });
      const task = create_user_task('app');
      const drv = alloc_file(
        '/dev/bar',
        O_RDWR,
        new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr'),
        {
          name: 'bar_fops',
          *mmap(_f, vma) {
            vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
            return yield* remap_pfn_range(
              vma,
              vma.vm_start,
              BAR_PFN,
              vma.vm_end - vma.vm_start,
              vma.vm_page_prot,
            );
          },
        },
      );
      const addr = k.run(
        vm_mmap_pgoff(task.mm!, drv, 0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0),
      );
      expect(addr).toBeGreaterThan(0);
      expect(pat_memtype_list()).toHaveLength(1);
      // COW of the special PTE at addr: the first entry becomes an anon page.
      expect(k.run(cpu_user_write(task, addr, new Uint8Array([1]))).kind).toBe('ok');
      // follow_phys at vm_start finds a non-special entry: track_pfn_copy needs the
      // pgprot and gets -EINVAL; dup_mm fails and copy_mm reports -ENOMEM.
      expect(k.run(fork_task(task))).toBe(-12);
      expect(pat_memtype_list()).toHaveLength(parentFreesTwice ? 0 : 1);
      // untrack_pfn needs no pgprot: it falls back to vm_pgoff (= the remapped pfn).
      expect(k.run(vm_munmap(task.mm!, addr, 0x2000))).toBe(0);
      expect(pat_memtype_list()).toEqual([]);
      expect(/freeing invalid memtype/.test(dmesg())).toBe(parentFreesTwice);
    });
  }
});
