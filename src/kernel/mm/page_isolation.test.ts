/**
 * Tests of page isolation and alloc_contig_range (mm/page_isolation.c, the contiguous
 * allocation path of mm/page_alloc.c and mm/compaction.c). Rules: kernel-spec.md R-REV-5
 * (frames freed into an isolated range are not handed out; they come back when the range
 * is unisolated), R-GUP-8 (pinned folios cannot be migrated out of a range).
 *
 * Machine: 1 GiB, one 4 MiB CMA area at frames 0x20000-0x203ff (two pageblocks).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { folio_get, folio_ref_add, page_ref_count } from '../include/linux/page_ref.js';
import {
  folio_set_mapping,
  page_mapcount_add,
  set_page_flag,
} from '../include/linux/page-flags.js';
import { anon_vma_alloc } from './vma.js';
import { KernelBug, test_taint, TAINT_WARN } from '../kernel/panic.js';
import {
  __free_pages,
  alloc_page,
  get_pageblock_migratetype,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  page_alloc_state,
  page_is_free,
  page_zone,
} from './page_alloc.js';
import { MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_MOVABLE, PG_kernel } from './sparse.js';
import { cma_alloc, cma_find, cma_release } from './cma.js';
import {
  alloc_contig_last_blocker,
  alloc_contig_range,
  free_contig_range,
  has_unmovable_pages,
  isolate_freepages_range,
  isolate_migratepages_range,
  start_isolate_page_range,
  test_pages_isolated,
  undo_isolate_page_range,
} from './page_isolation.js';
import { folioIsolated, putback_movable_pages } from './migrate.js';

const BASE = 0x20000;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: x86_64_e820(2 ** 30),
    cma: [{ name: 'reserved', base: BASE * 4096, size: 4 * 2 ** 20 }],
  });
  return k;
}

/** A frame of the CMA area in use by a movable allocation (cma_alloc + release + alloc). */
function cmaFrameInUse(k: Kernel): page {
  const c = cma_find('reserved')!;
  const p = k.run(cma_alloc(c, 1, 0, true))!;
  k.run(cma_release(c, p, 1));
  const q = alloc_page(GFP_HIGHUSER_MOVABLE)!;
  expect(q).toBe(p);
  return q;
}

describe('start_isolate_page_range', () => {
  it('R-REV-5: a frame freed into an isolated pageblock stays off the free lists', () => {
    const k = boot();
    const p = cmaFrameInUse(k);
    expect(k.run(start_isolate_page_range(BASE, BASE + 512, MIGRATE_CMA, 0))).toBe(0);
    expect(get_pageblock_migratetype(BASE)).toBe(MIGRATE_ISOLATE);
    __free_pages(p, 0);
    expect(page_is_free(p)).toBe(true);
    const z = page_zone(BASE)!;
    for (const l of z.free.values()) expect(l.some((x) => x >= BASE && x < BASE + 512)).toBe(false);
    expect(alloc_page(GFP_HIGHUSER_MOVABLE)).not.toBe(p);
  });

  it('fails with -EBUSY when a pageblock is already isolated, leaving the others as they were', () => {
    const k = boot();
    expect(k.run(start_isolate_page_range(BASE + 512, BASE + 1024, MIGRATE_CMA, 0))).toBe(0);
    expect(k.run(start_isolate_page_range(BASE, BASE + 1024, MIGRATE_CMA, 0))).toBe(-16);
    expect(get_pageblock_migratetype(BASE)).toBe(MIGRATE_CMA);
    expect(get_pageblock_migratetype(BASE + 512)).toBe(MIGRATE_ISOLATE);
  });

  it('a MOVABLE pageblock holding a kernel page cannot be isolated', () => {
    const k = boot();
    const kp = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    set_page_flag(kp, PG_kernel);
    const block = Math.floor(kp / 512) * 512;
    expect(k.run(start_isolate_page_range(block, block + 512, MIGRATE_MOVABLE, 0))).toBe(-16);
    expect(get_pageblock_migratetype(block)).not.toBe(MIGRATE_ISOLATE);
  });

  it('before v5.18 an unaligned range is a BUG (callers aligned it)', () => {
    const k = boot('5.10');
    expect(() => k.run(start_isolate_page_range(BASE + 1, BASE + 512, MIGRATE_CMA, 0))).toThrow(
      KernelBug,
    );
  });
});

describe('undo_isolate_page_range', () => {
  it('R-REV-5: restores the migratetype and puts the free frames back on its free lists', () => {
    const k = boot();
    k.run(start_isolate_page_range(BASE, BASE + 512, MIGRATE_CMA, 0));
    k.run(undo_isolate_page_range(BASE, BASE + 512, MIGRATE_CMA));
    expect(get_pageblock_migratetype(BASE)).toBe(MIGRATE_CMA);
    const l = page_alloc_state().zones[0]!.list(0, MIGRATE_CMA);
    expect(l).toContain(BASE);
    expect(l).toContain(BASE + 511);
  });
});

describe('test_pages_isolated', () => {
  it('is 0 for an isolated range of free frames, -EBUSY for one with a frame in use or not isolated', () => {
    const k = boot();
    expect(k.run(test_pages_isolated(BASE, BASE + 512, 0))).toBe(-16);
    k.run(start_isolate_page_range(BASE, BASE + 1024, MIGRATE_CMA, 0));
    expect(k.run(test_pages_isolated(BASE, BASE + 1024, 0))).toBe(0);
    k.run(undo_isolate_page_range(BASE, BASE + 1024, MIGRATE_CMA));
    const p = cmaFrameInUse(k);
    k.run(start_isolate_page_range(BASE, BASE + 1024, MIGRATE_CMA, 0));
    const out = { pfn: 0 };
    expect(k.run(test_pages_isolated(BASE, BASE + 1024, 0, out))).toBe(-16);
    expect(out.pfn).toBe(p);
    expect(k.log.map((l) => l.text)).toContain(
      'test_pages_isolated: start_pfn=0x20000 end_pfn=0x20400 fin_pfn=0x20000 ret=fail',
    );
  });
});

describe('has_unmovable_pages', () => {
  it('a CMA pageblock is movable for MIGRATE_CMA and unmovable otherwise', () => {
    boot();
    const z = page_zone(BASE)!;
    expect(has_unmovable_pages(z, BASE, MIGRATE_CMA, 0)).toBeNull();
    expect(has_unmovable_pages(z, BASE, MIGRATE_MOVABLE, 0)).toBe(BASE);
  });
});

describe('isolate_migratepages_range', () => {
  it('R-GUP-8: isolates an anonymous folio mapped once; skips one with more references than mappings', () => {
    const k = boot();
    const mk = (): folio => {
      const f = alloc_page(GFP_HIGHUSER_MOVABLE)! as number as folio;
      folio_set_mapping(f, anon_vma_alloc(), true); // anonymous...
      page_mapcount_add(f as number as page, 1); // ...and mapped once (its reference)
      return f;
    };
    const a = mk();
    const b = mk();
    folio_ref_add(b, 1024); // pinned
    const r = k.run(isolate_migratepages_range(Math.min(a, b), Math.max(a, b) + 1));
    expect(r.folios).toEqual([a]);
    expect(r.next).toBe(Math.max(a, b) + 1);
    expect(folioIsolated(a)).toBe(true);
    expect(page_ref_count(a as number as page)).toBe(2);
    expect(folioIsolated(b)).toBe(false);
    k.run(putback_movable_pages(r.folios));
    expect(page_ref_count(a as number as page)).toBe(1);
    void k;
  });
});

describe('isolate_freepages_range', () => {
  it('takes free frames out of the allocator with refcount 1; fails if one is in use', () => {
    const k = boot();
    k.run(start_isolate_page_range(BASE, BASE + 512, MIGRATE_CMA, 0));
    expect(isolate_freepages_range(BASE, BASE + 8)).toBe(BASE + 8);
    expect(page_ref_count((BASE + 7) as page)).toBe(1);
    expect(page_is_free(BASE + 7)).toBe(false);
    expect(isolate_freepages_range(BASE + 4, BASE + 12)).toBe(0);
    expect(page_is_free(BASE + 8)).toBe(true); // given back
  });
});

describe('alloc_contig_range', () => {
  it('R-REV-5: allocates a free range: every frame refcount 1, pageblocks unisolated', () => {
    const k = boot();
    expect(k.run(alloc_contig_range(BASE, BASE + 100, MIGRATE_CMA, GFP_KERNEL))).toBe(0);
    expect(page_ref_count((BASE + 99) as page)).toBe(1);
    expect(page_is_free(BASE + 100)).toBe(true);
    expect(get_pageblock_migratetype(BASE)).toBe(MIGRATE_CMA);
  });

  it('R-GUP-8: -EBUSY when an in-use frame cannot be migrated; the blocker is recorded', () => {
    const k = boot();
    const p = cmaFrameInUse(k); // not mapped, not anonymous: not on an LRU list
    expect(k.run(alloc_contig_range(BASE, BASE + 512, MIGRATE_CMA, GFP_KERNEL))).toBe(-16);
    const b = alloc_contig_last_blocker()!;
    expect(b.pfn).toBe(p);
    expect(b.refcount).toBe(1);
    expect(b.reason).toMatch(/not movable/);
    expect(get_pageblock_migratetype(BASE)).toBe(MIGRATE_CMA);
  });
});

describe('free_contig_range', () => {
  it('frees every frame with one reference and WARNs about the others', () => {
    const k = boot();
    k.run(alloc_contig_range(BASE, BASE + 4, MIGRATE_CMA, GFP_KERNEL));
    folio_get((BASE + 1) as folio);
    free_contig_range(BASE, 4);
    expect(page_is_free(BASE)).toBe(true);
    expect(page_is_free(BASE + 1)).toBe(false);
    expect(k.log.some((l) => l.text.includes('1 pages are still in use!'))).toBe(true);
    expect(test_taint(TAINT_WARN)).toBe(true);
  });
});
