/**
 * Tests of the contiguous memory allocator (mm/cma.c). Rules: kernel-spec.md R-REV-5
 * (CMA frames are lent to movable allocations and reused at once after release), R-GUP-8
 * (a pin in a CMA area blocks cma_alloc; FOLL_LONGTERM exists to keep pins out),
 * R-GUP-5 (a small folio's pin adds GUP_PIN_COUNTING_BIAS = 1024 to its refcount).
 *
 * The machine: 1 GiB of RAM with one 4 MiB CMA area 'reserved' at 0x20000000, frames
 * 0x20000-0x203ff (two pageblocks). Placing a page inside the area deterministically
 * uses R-REV-5 itself: cma_alloc() a frame, cma_release() it (an order-0 free goes on
 * the MOVABLE list, LIFO), and the next alloc_page(GFP_HIGHUSER_MOVABLE) returns that
 * very frame. Anonymous and page-cache mappings are then set up by hand as the fault
 * path would leave them (see migrate.test.ts).
 */
import { mm_alloc } from '../kernel/fork.js';
import { describe, expect, it } from 'vitest';
import type { Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import type {
  address_space,
  folio,
  mm_struct,
  page,
  pte_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { MM_ANONPAGES, MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../include/linux/mm.js';
import {
  folio_set_index,
  folio_set_mapping,
  folio_test_anon,
} from '../include/linux/page-flags.js';
import { folio_get, folio_ref_add, page_ref_count } from '../include/linux/page_ref.js';
import {
  PAGE_COPY,
  PAGE_SHARED,
  PAGE_SIZE,
  pfn_pte,
  pte_mkdirty,
  pte_mkwrite,
  pte_pfn,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map,
  ptep_get,
  pud_alloc,
  set_pte_at,
  walkToLeaf,
} from '../include/linux/pgtable.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { vm_area_alloc, vma_link } from './vma.js';
import {
  anon_vma_prepare,
  folio_add_file_rmap_ptes,
  folio_add_new_anon_rmap,
  RMAP_EXCLUSIVE,
} from './rmap.js';
import {
  alloc_page,
  GFP_HIGHUSER_MOVABLE,
  is_migrate_cma_page,
  page_alloc_state,
  page_is_free,
  type cma,
} from './page_alloc.js';
import { phys_read, phys_write } from './sparse.js';
import { new_inode } from '../fs/inode.js';
import { notifierLog } from './mmu_notifier.js';
import { test_taint, TAINT_WARN } from '../kernel/panic.js';
import {
  bitmap_find_next_zero_area_off,
  cma_alloc,
  cma_find,
  cma_get_base,
  cma_get_name,
  cma_get_size,
  cma_last_failure,
  cma_pages_valid,
  cma_release,
} from './cma.js';

const MiB = 2 ** 20;
const BASE = 0x20000; // first frame of the area (0x20000000)
const A = 0x7f0000000000;

function boot(version = '6.12'): { k: Kernel; c: cma } {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: x86_64_e820(1024 * MiB),
    cma: [{ name: 'reserved', base: BASE * PAGE_SIZE, size: 4 * MiB }],
  });
  return { k, c: cma_find('reserved')! };
}

function newMm(_k: Kernel): mm_struct {
  const mm = mm_alloc()!;
  mm.mmap_base = A;
  return mm;
}

function newVma(mm: mm_struct, shared = false): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = A;
  vma.vm_end = A + 64 * PAGE_SIZE;
  vma.vm_flags =
    VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | (shared ? VM_SHARED | VM_MAYSHARE : 0n);
  vma.vm_page_prot = shared ? PAGE_SHARED : PAGE_COPY;
  vma_link(mm, vma);
  return vma;
}

function* ptep(mm: mm_struct, addr: number): Op<pte_t_ptr> {
  const pud = (yield* pud_alloc(mm, pgd_offset(mm, addr), addr))!;
  const pmd = (yield* pmd_alloc(mm, pud, addr))!;
  yield* pte_alloc(mm, pmd);
  return pte_offset_map(pmd, addr)!;
}

/** A movable page that lands inside the CMA area: allocate + release the frame first. */
function pageInCma(k: Kernel, c: cma, nth = 0): page {
  const p = k.run(cma_alloc(c, nth + 1, 0, true))!;
  expect(k.run(cma_release(c, p, nth + 1))).toBe(true);
  const q = alloc_page(GFP_HIGHUSER_MOVABLE)!;
  expect(q).toBe(p + nth); // R-REV-5: the last released frame comes back first
  return q;
}

/** Anonymous memory at A backed by a frame of the area. */
function anonInCma(k: Kernel, c: cma): { mm: mm_struct; p: page } {
  const mm = newMm(k);
  const vma = newVma(mm);
  expect(anon_vma_prepare(vma)).toBe(0);
  // Build the tables first so their allocation cannot disturb the LIFO trick.
  k.run(ptep(mm, A));
  const p = pageInCma(k, c);
  k.run(
    (function* () {
      const pte = yield* ptep(mm, A);
      yield* spin_lock(pte.t.ptl!);
      folio_add_new_anon_rmap(p as number as folio, vma, A, RMAP_EXCLUSIVE);
      yield* set_pte_at(mm, A, pte, pte_mkdirty(pte_mkwrite(pfn_pte(p, vma.vm_page_prot))));
      mm.rss_stat[MM_ANONPAGES]!++;
      yield* spin_unlock(pte.t.ptl!);
    })(),
  );
  return { mm, p };
}

/** A page-cache folio in the area, mapped shared at A in one mm. */
function fileInCma(k: Kernel, c: cma): { mm: mm_struct; p: page; mapping: address_space } {
  const mm = newMm(k);
  const vma = newVma(mm, true);
  k.run(ptep(mm, A));
  const inode = new_inode({ s_type: 'ext4', s_nowriteback: false }, 'reg', {
    name: 'test_aops',
    migrate_folio: true,
  });
  const mapping = inode.i_mapping;
  vma.vm_file = { f_mapping: mapping } as never;
  mapping.i_mmap.add(vma);
  const p = pageInCma(k, c);
  const f = p as number as folio;
  folio_set_mapping(f, mapping, false);
  folio_set_index(f, 0);
  mapping.i_pages.set(0, f);
  mapping.nrpages++;
  k.run(
    (function* () {
      const pte = yield* ptep(mm, A);
      folio_get(f);
      folio_add_file_rmap_ptes(f, p, 1, vma);
      yield* set_pte_at(mm, A, pte, pfn_pte(p, vma.vm_page_prot));
      mm.rss_stat[MM_FILEPAGES]!++;
    })(),
  );
  return { mm, p, mapping };
}

function pteAt(mm: mm_struct, addr: number): number {
  return ptep_get(walkToLeaf(mm, addr)!.ptr);
}

function logText(k: Kernel, level?: number): string[] {
  return k.log.filter((l) => level === undefined || l.level === level).map((l) => l.text);
}

describe('cma_alloc', () => {
  it('R-REV-5: a free area is allocated whole; every frame is owned (refcount 1) and its bitmap bit set', () => {
    const { k, c } = boot('6.12');
    const p = k.run(cma_alloc(c, 1024, 0, false));
    expect(p).toBe(BASE);
    for (let i = 0; i < 1024; i++) {
      expect(page_ref_count((BASE + i) as page)).toBe(1);
      expect(page_is_free(BASE + i)).toBe(false);
      expect(c.bitmap[i]).toBe(1);
    }
    expect(is_migrate_cma_page(BASE)).toBe(true); // unisolated again
    expect(cma_last_failure(c)).toBeNull();
  });

  for (const [v, ret] of [
    ['6.12', -12],
    ['6.18', -16],
  ] as const) {
    it(`(${v}) an exhausted area returns NULL with "ret: ${ret}" (-EBUSY from cma_range_alloc v6.15+)`, () => {
      const { k, c } = boot(v);
      expect(k.run(cma_alloc(c, 1024, 0, false))).toBe(BASE);
      expect(k.run(cma_alloc(c, 1, 0, false))).toBeNull();
      expect(logText(k)).toContain(
        `cma: __cma_alloc: reserved: alloc failed, req-size: 1 pages, ret: ${ret}`,
      );
      expect(cma_last_failure(c)!.attempts).toEqual([]);
    });
  }

  it('R-REV-5: an anonymous page living in the area is migrated out and the allocation succeeds', () => {
    const { k, c } = boot('6.12');
    const { mm, p } = anonInCma(k, c);
    const data = new Uint8Array(PAGE_SIZE).fill(0xc3);
    phys_write(p * PAGE_SIZE, data);
    const before = notifierLog().length;
    expect(k.run(cma_alloc(c, 1024, 0, false))).toBe(BASE);
    const np = pte_pfn(pteAt(mm, A));
    expect(np).not.toBe(p);
    expect(is_migrate_cma_page(np)).toBe(false);
    expect(phys_read(np * PAGE_SIZE, PAGE_SIZE)).toEqual(data);
    expect(page_ref_count(np as page)).toBe(1);
    expect(mm.rss_stat[MM_ANONPAGES]).toBe(1);
    // The old frame now belongs to the CMA caller, no longer to the process.
    expect(page_ref_count(p)).toBe(1);
    expect(folio_test_anon(p as number as folio)).toBe(false);
    expect(
      notifierLog()
        .slice(before)
        .map((e) => e.event),
    ).toContain('MMU_NOTIFY_CLEAR');
  });

  for (const [v, err, busy] of [
    [
      '5.10',
      'cma: cma_alloc: alloc failed, req-size: 1024 pages, ret: -16',
      'cma: cma_alloc(): memory range at ffffea0000800000 is busy, retrying',
    ],
    [
      '6.1',
      'cma: cma_alloc: reserved: alloc failed, req-size: 1024 pages, ret: -16',
      'cma: cma_alloc(): memory range at ffffea0000800000 is busy, retrying',
    ],
    [
      '6.12',
      'cma: __cma_alloc: reserved: alloc failed, req-size: 1024 pages, ret: -16',
      'cma: __cma_alloc(): memory range at pfn 0x20000 ffffea0000800000 is busy, retrying',
    ],
    [
      '6.18',
      'cma: __cma_alloc: reserved: alloc failed, req-size: 1024 pages, ret: -16',
      'cma: cma_range_alloc(): memory range at pfn 0x20000 ffffea0000800000 is busy, retrying',
    ],
  ] as const) {
    it(`R-GUP-8 (${v}): a pinned page in the area fails the allocation; the log says so and cma_last_failure names the frame`, () => {
      const { k, c } = boot(v);
      const { mm, p } = anonInCma(k, c);
      folio_ref_add(p as number as folio, 1024); // pin_user_pages() of a small folio
      expect(k.run(cma_alloc(c, 1024, 0, false))).toBeNull();
      expect(logText(k)).toContain(err);
      expect(logText(k, 7)).toContain(busy);
      const f = cma_last_failure(c)!;
      expect(f.ret).toBe(-16);
      expect(f.attempts.length).toBe(1);
      expect(f.attempts[0]!.start_pfn).toBe(BASE);
      const b = f.blocker!;
      expect(b.pfn).toBe(p);
      expect(b.kind).toBe('anon');
      expect(b.refcount).toBe(1025);
      expect(b.expected_refcount).toBe(1);
      expect(b.extra_refs).toBe(1024);
      expect(b.maybe_dma_pinned).toBe(true);
      expect(b.reason).toMatch(/more references than mappings/);
      // The page stays where it is, mapped, and the area is free again.
      expect(pte_pfn(pteAt(mm, A))).toBe(p);
      expect(c.bitmap.every((x) => x === 0)).toBe(true);
      expect(page_is_free(BASE + 600)).toBe(true);
    });
  }

  it('R-GUP-8 (5.10): alloc_contig_range also printed "PFNs busy" (dropped in v5.13)', () => {
    const { k, c } = boot('5.10');
    const { p } = anonInCma(k, c);
    folio_ref_add(p as number as folio, 1024);
    k.run(cma_alloc(c, 1024, 0, false));
    expect(logText(k)).toContain('alloc_contig_range: [20000, 20400) PFNs busy');
    const { k: k2, c: c2 } = boot('6.12');
    const { p: p2 } = anonInCma(k2, c2);
    folio_ref_add(p2 as number as folio, 1024);
    k2.run(cma_alloc(c2, 1024, 0, false));
    expect(logText(k2).some((t) => t.includes('PFNs busy'))).toBe(false);
    expect(logText(k2, 7)).toContain(
      'test_pages_isolated: start_pfn=0x20000 end_pfn=0x20400 fin_pfn=0x20000 ret=fail',
    );
  });

  it('R-GUP-8: a busy range is given back and the next aligned range is tried', () => {
    const { k, c } = boot('6.12');
    const { p } = anonInCma(k, c); // frame 0x20000, first pageblock
    folio_ref_add(p as number as folio, 1024);
    expect(k.run(cma_alloc(c, 512, 9, false))).toBe(BASE + 512);
    expect(logText(k, 7)).toContain(
      'cma: __cma_alloc(): memory range at pfn 0x20000 ffffea0000800000 is busy, retrying',
    );
    expect(logText(k).some((t) => t.includes('alloc failed'))).toBe(false);
    expect(c.bitmap[0]).toBe(0);
    expect(c.bitmap[512]).toBe(1);
    expect(cma_last_failure(c)).toBeNull();
  });

  it('R-GUP-8: a page-cache folio with an extra reference is isolated, fails migration, and the failure shows refcount against expected', () => {
    const { k, c } = boot('6.12');
    const { mm, p } = fileInCma(k, c);
    folio_get(p as number as folio); // e.g. a get_user_pages() reference
    expect(k.run(cma_alloc(c, 1024, 0, false))).toBeNull();
    const b = cma_last_failure(c)!.blocker!;
    expect(b.pfn).toBe(p);
    expect(b.kind).toBe('file');
    expect(b.refcount).toBe(3); // page cache + mapping + the extra reference
    expect(b.expected_refcount).toBe(2);
    expect(b.extra_refs).toBe(1);
    expect(b.maybe_dma_pinned).toBe(false);
    expect(b.migrate!.rc).toBe(-11);
    expect(b.reason).toMatch(/migration failed \(-11\)/);
    expect(logText(k, 7)).toContain('page dumped because: migration failure');
    expect(pte_pfn(pteAt(mm, A))).toBe(p);
  });

  it('no_warn suppresses the error message', () => {
    const { k, c } = boot('6.12');
    const { p } = anonInCma(k, c);
    folio_ref_add(p as number as folio, 1024);
    expect(k.run(cma_alloc(c, 1024, 0, true))).toBeNull();
    expect(logText(k).some((t) => t.includes('alloc failed'))).toBe(false);
    expect(cma_last_failure(c)!.blocker!.pfn).toBe(p);
  });

  it('a request larger than the area returns NULL without trying', () => {
    const { k, c } = boot('6.12');
    expect(k.run(cma_alloc(c, 2048, 0, false))).toBeNull();
    expect(k.run(cma_alloc(c, 0, 0, false))).toBeNull();
    expect(k.run(cma_alloc(null, 1, 0, false))).toBeNull();
  });
});

describe('cma_release', () => {
  it('R-REV-5: released frames are free at once and the next movable alloc_page returns the last released one first', () => {
    const { k, c } = boot('6.12');
    const p = k.run(cma_alloc(c, 4, 0, false))!;
    expect(k.run(cma_release(c, p, 4))).toBe(true);
    for (let i = 0; i < 4; i++) expect(page_is_free(p + i)).toBe(true);
    expect(c.bitmap.slice(0, 4).every((x) => x === 0)).toBe(true);
    expect(alloc_page(GFP_HIGHUSER_MOVABLE)).toBe(p + 3);
    expect(alloc_page(GFP_HIGHUSER_MOVABLE)).toBe(p + 2);
    // The MOVABLE list held them (free_unref_page), not the CMA list.
    expect(page_alloc_state().zones[0]!.list(0, 1)).toContain(p + 1);
  });

  it('returns false for frames outside the area', () => {
    const { k, c } = boot('6.12');
    const q = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    expect(k.run(cma_release(c, q, 1))).toBe(false);
    expect(k.run(cma_release(c, null, 1))).toBe(false);
    expect(page_ref_count(q)).toBe(1);
  });

  it('a frame someone still references is not freed: WARN "1 pages are still in use!"', () => {
    const { k, c } = boot('6.12');
    const p = k.run(cma_alloc(c, 2, 0, false))!;
    folio_get(p as number as folio);
    expect(k.run(cma_release(c, p, 2))).toBe(true);
    expect(page_is_free(p)).toBe(false);
    expect(page_is_free(p + 1)).toBe(true);
    expect(k.log.some((l) => l.text.includes('1 pages are still in use!'))).toBe(true);
    expect(test_taint(TAINT_WARN)).toBe(true);
  });
});

describe('cma_pages_valid', () => {
  it('accepts frames inside the area; v6.15+ also refuses a run that ends past it', () => {
    const { c } = boot('6.12');
    expect(cma_pages_valid(c, BASE as page, 1)).toBe(true);
    expect(cma_pages_valid(c, (BASE - 1) as page, 1)).toBe(false);
    const { c: c2 } = boot('6.18');
    expect(cma_pages_valid(c2, (BASE + 1023) as page, 2)).toBe(false);
  });
});

describe('cma_last_failure', () => {
  it('is null after a successful allocation, even following a failure', () => {
    const { k, c } = boot('6.12');
    expect(k.run(cma_alloc(c, 4096, 0, true))).toBeNull();
    expect(k.run(cma_alloc(c, 1, 0, true))).toBe(BASE);
    expect(cma_last_failure(c)).toBeNull();
    expect(cma_get_name(c)).toBe('reserved');
    expect(cma_get_base(c)).toBe(0x20000000);
    expect(cma_get_size(c)).toBe(4 * MiB);
  });
});

describe('bitmap_find_next_zero_area_off', () => {
  it('finds the first aligned run of clear bits, or a value past the size', () => {
    const m = new Uint8Array(16);
    m[0] = 1;
    expect(bitmap_find_next_zero_area_off(m, 16, 0, 2, 0, 0)).toBe(1);
    expect(bitmap_find_next_zero_area_off(m, 16, 0, 4, 3, 0)).toBe(4);
    expect(bitmap_find_next_zero_area_off(m, 16, 0, 16, 0, 0)).toBeGreaterThan(16);
  });
});
