/**
 * The page allocator: deterministic, prompt reuse (R-REV-5 depends on it), zones,
 * migratetypes, CMA, and the free-time bad page checks.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import {
  __free_pages,
  alloc_page,
  alloc_pages,
  get_pageblock_migratetype,
  GFP_DMA32,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  page_is_free,
  page_zonenum,
  take_free_frame,
  ZONE_DMA32,
  ZONE_NORMAL,
  __GFP_ZERO,
} from './page_alloc.js';
import {
  MIGRATE_CMA,
  MIGRATE_MOVABLE,
  MIGRATE_UNMOVABLE,
  phys_read,
  phys_write,
} from './sparse.js';
import { page_ref_count, folio_put, folio_get, set_page_count } from '../include/linux/page_ref.js';
import { page_mapcount_add } from '../include/linux/page-flags.js';
import type { folio, page } from '../include/linux/mm_types.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

function boot(
  opts: { cma?: { name: string; base: number; size: number }[]; ram?: number } = {},
): Kernel {
  const k = new Kernel({ version: '6.12' });
  start_kernel(k, { map: x86_64_e820(opts.ram ?? 4 * GiB), cma: opts.cma });
  return k;
}

describe('__alloc_pages', () => {
  it('hands out a page with refcount 1, and the same frame again right after it is freed', () => {
    boot();
    const p = alloc_page(GFP_KERNEL)!;
    expect(page_ref_count(p)).toBe(1);
    __free_pages(p, 0);
    expect(page_is_free(p)).toBe(true);
    expect(alloc_page(GFP_KERNEL)).toBe(p);
  });

  it('is deterministic: two boots give the same sequence', () => {
    const seq = (): number[] => {
      boot();
      const out: number[] = [];
      for (let i = 0; i < 50; i++) out.push(alloc_page(i % 3 ? GFP_KERNEL : GFP_HIGHUSER_MOVABLE)!);
      for (const p of out.slice(10, 20)) __free_pages(p as page, 0);
      for (let i = 0; i < 10; i++) out.push(alloc_page(GFP_KERNEL)!);
      return out;
    };
    expect(seq()).toEqual(seq());
  });

  it('order-9 blocks are 2 MiB aligned', () => {
    boot();
    alloc_page(GFP_KERNEL);
    const h = alloc_pages(GFP_HIGHUSER_MOVABLE, 9)!;
    expect(h % 512).toBe(0);
  });

  it('an unmovable request claims a whole free pageblock (steal_suitable_fallback)', () => {
    boot();
    const p = alloc_page(GFP_KERNEL)!;
    expect(get_pageblock_migratetype(p)).toBe(MIGRATE_UNMOVABLE);
    const q = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    expect(get_pageblock_migratetype(q)).toBe(MIGRATE_MOVABLE);
    expect(Math.floor(p / 512)).not.toBe(Math.floor(q / 512));
  });

  it('GFP_DMA32 stays below 4 GiB; plain requests prefer ZONE_NORMAL', () => {
    boot();
    expect(page_zonenum(alloc_page(GFP_DMA32)!)).toBe(ZONE_DMA32);
    expect(page_zonenum(alloc_page(GFP_KERNEL)!)).toBe(ZONE_NORMAL);
  });

  it('old contents survive reallocation unless __GFP_ZERO is asked for', () => {
    boot();
    const p = alloc_page(GFP_KERNEL)!;
    phys_write(p * 4096, new Uint8Array([0xde, 0xad]));
    __free_pages(p, 0);
    const q = alloc_page(GFP_KERNEL)!;
    expect(q).toBe(p);
    expect([...phys_read(q * 4096, 2)]).toEqual([0xde, 0xad]);
    __free_pages(q, 0);
    const r = alloc_page(GFP_KERNEL | __GFP_ZERO)!;
    expect([...phys_read(r * 4096, 2)]).toEqual([0, 0]);
  });

  it('R-REV-5: freed CMA frames go on the MOVABLE list and the next movable allocation reuses them', () => {
    // A CMA area at 256 MiB..264 MiB on a 1 GiB machine (one zone, DMA32: allocations
    // take the first zone of the zonelist with free memory, so on a bigger machine they
    // would come from ZONE_NORMAL first).
    boot({ ram: GiB, cma: [{ name: 'reserved', base: 256 * MiB, size: 8 * MiB }] });
    const cmaPfn = (256 * MiB) / 4096;
    expect(get_pageblock_migratetype(cmaPfn)).toBe(MIGRATE_CMA);
    expect(take_free_frame(cmaPfn)).toBe(true); // as alloc_contig_range takes it for a driver
    memmapSetRef(cmaPfn, 1);
    __free_pages(cmaPfn as page, 0); // the driver releases its DMA buffer
    expect(alloc_page(GFP_HIGHUSER_MOVABLE)).toBe(cmaPfn); // the page cache/anon gets it
  });

  it('unmovable requests never get CMA frames', () => {
    boot({ cma: [{ name: 'reserved', base: 256 * MiB, size: 8 * MiB }] });
    const cmaPfn = (256 * MiB) / 4096;
    take_free_frame(cmaPfn);
    memmapSetRef(cmaPfn, 1);
    __free_pages(cmaPfn as page, 0);
    expect(alloc_page(GFP_KERNEL)).not.toBe(cmaPfn);
  });
});

describe('pageblock stealing', () => {
  it('an unmovable page claims a whole free movable pageblock; the rest of it stays free and serves the next unmovable pages in address order', () => {
    boot();
    const mov = alloc_page(GFP_HIGHUSER_MOVABLE)!; // the movable block is not aligned now
    const a = alloc_page(GFP_KERNEL)!;
    expect(a % 512).toBe(0);
    expect(get_pageblock_migratetype(a)).toBe(MIGRATE_UNMOVABLE);
    expect(get_pageblock_migratetype(mov)).toBe(MIGRATE_MOVABLE);
    for (let i = 1; i < 512; i++) expect(page_is_free(a + i)).toBe(true);
    const next = Array.from({ length: 511 }, () => alloc_page(GFP_KERNEL)!);
    expect(next).toEqual(Array.from({ length: 511 }, (_, i) => a + 1 + i));
    // The movable frames skipped to align the stolen block are still free, and movable.
    expect(page_is_free(mov + 1)).toBe(true);
    expect(alloc_page(GFP_HIGHUSER_MOVABLE)).toBe(mov + 1);
  });
});

describe('free_pages_prepared / bad_page', () => {
  it('freeing a still-mapped folio reports "Bad page state" and leaks it', () => {
    const k = boot();
    const p = alloc_page(GFP_KERNEL)!;
    page_mapcount_add(p, 1);
    folio_put(p as number as folio);
    const text = k.log.map((l) => l.text).join('\n');
    expect(text).toMatch(/BUG: Bad page state in process swapper\/0 {2}pfn:/);
    expect(text).toMatch(/page dumped because: nonzero mapcount/);
    expect(k.tainted_mask & (1 << 5)).not.toBe(0); // TAINT_BAD_PAGE
    expect(page_is_free(p)).toBe(false);
  });

  it('folio_get on a free page is VM_BUG_ON (CONFIG_DEBUG_VM)', () => {
    boot();
    const p = alloc_page(GFP_KERNEL)!;
    __free_pages(p, 0);
    expect(() => folio_get(p as number as folio)).toThrow(/VM_BUG_ON_FOLIO/);
  });
});

/** What the allocator's caller does with a frame it took (prep_new_page: refcount 1). */
function memmapSetRef(pfn: number, v: number): void {
  set_page_count(pfn as page, v);
}
