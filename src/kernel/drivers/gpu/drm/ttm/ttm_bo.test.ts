/**
 * TTM moves and eviction: ttm_bo_handle_move_mem runs ttm_bo_unmap_virtual
 * (drm_vma_node_unmap -> unmap_mapping_range, R-REV-1/R-REV-4) before the copy, and the old
 * placement is freed at once (R-REV-4, R-REV-5). Pinned BOs are neither moved nor evicted.
 * Machine: see pfngpu.fixtures.ts — VRAM pfns 0x180000-0x18003f.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../../../include/linux/errno.js';
import { notifierLog } from '../../../../mm/mmu_notifier.js';
import { alloc_page, GFP_KERNEL, page_is_free } from '../../../../mm/page_alloc.js';
import { phys_read } from '../../../../mm/sparse.js';
import { pfnsan_owner_of } from '../../../../mm/pfnsan/pfnsan.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../../include/linux/mmap_lock.js';
import {
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
} from '../../../../mm/memory.pfnmap.js';
import { dmesg } from '../../../../kernel/printk.js';
import {
  PFNGPU_GEM_DOMAIN_SYSTEM,
  PFNGPU_GEM_DOMAIN_VRAM,
  pfngpu_vram_ranges,
} from '../pfngpu/pfngpu.js';
import { VRAM_PFN, fill, gpuMachine } from '../pfngpu/pfngpu.fixtures.js';
import { TTM_PL_SYSTEM, TTM_PL_VRAM } from './ttm_resource.js';
import { ttm_bo_pin, ttm_bo_unpin } from './ttm_bo.js';
import { dma_resv_lock, dma_resv_unlock } from '../../../dma-buf/dma-resv.js';

describe('ttm_bo_handle_move_mem / ttm_bo_unmap_virtual', () => {
  it('R-REV-4/R-REV-1: VRAM -> system zaps the PTEs (MMU_NOTIFY_CLEAR over the BO range); the next access refaults to the new page with the same contents', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x2000);
    expect(env.store(a + 0x1010, fill(16, 0xc3))).toBe('ok');
    expect(env.pfnAt(a + 0x1000)).toBe(VRAM_PFN + 1); // 0x180001
    const before = notifierLog().length;
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    expect(env.pfnAt(a + 0x1000)).toBeNull();
    const ev = notifierLog().slice(before);
    expect(ev).toContainEqual(
      expect.objectContaining({
        phase: 'start',
        event: 'MMU_NOTIFY_CLEAR',
        start: a,
        end: a + 0x2000,
      }),
    );
    const bo = env.bo(h);
    expect(bo.resource!.mem_type).toBe(TTM_PL_SYSTEM);
    expect(env.load(a + 0x1010, 16)).toEqual(fill(16, 0xc3));
    expect(env.pfnAt(a + 0x1000)).toBe(bo.ttm!.pages[1]);
    expect(env.specialAt(a + 0x1000)).toBe(true);
  });

  it('R-REV-4: system -> VRAM zaps, copies, and the BO is reached through the BAR afterwards', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const a = env.mmap(h, 0x1000);
    expect(env.store(a, [9, 8, 7])).toBe('ok');
    const old = env.pfnAt(a)!;
    expect(old).toBeLessThan(VRAM_PFN);
    expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(0);
    expect(env.pfnAt(a)).toBeNull();
    expect(env.bo(h).ttm).toBeNull();
    expect(env.load(a, 3)).toEqual(Uint8Array.from([9, 8, 7]));
    expect(env.pfnAt(a)).toBe(VRAM_PFN);
  });

  it('R-REV-4: the old VRAM range is what the next BO created gets; its frames change owner at once', () => {
    const env = gpuMachine('6.12');
    const h1 = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    const a1 = env.mmap(h1, 0x2000);
    expect(env.store(a1, fill(4, 0x11))).toBe('ok');
    expect(pfnsan_owner_of(VRAM_PFN)).toMatchObject({ kind: 'driver', desc: 'pfngpu BO 1 (VRAM)' });
    expect(env.move(h1, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    expect(pfnsan_owner_of(VRAM_PFN).kind).toBe('bar');
    const h2 = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    expect(env.bo(h2).resource!.start).toBe(0);
    expect(pfngpu_vram_ranges(env.adev)).toEqual([[0, 1]]);
    expect(pfnsan_owner_of(VRAM_PFN)).toMatchObject({ kind: 'driver', desc: 'pfngpu BO 2 (VRAM)' });
  });

  it('R-REV-5: system -> VRAM frees the BO pages to the page allocator; the next alloc_page takes the last one freed (LIFO)', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const a = env.mmap(h, 0x2000);
    expect(env.store(a, [1])).toBe('ok');
    expect(env.store(a + 0x1000, [2])).toBe('ok');
    const pages = [...env.bo(h).ttm!.pages] as number[];
    expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(0);
    for (const p of pages) expect(page_is_free(p)).toBe(true);
    const p = env.k.run(
      (function* () {
        return alloc_page(GFP_KERNEL);
      })(),
    );
    expect(p).toBe(pages[1]);
  });

  it('R-REV-5: with use_dma_alloc the pages come from the device CMA area (pfn 0x10000..) and go back to the pool, where the next system BO takes them', () => {
    const env = gpuMachine('6.12', { cma: true, use_dma_alloc: true });
    const h1 = env.create(0x1000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const a1 = env.mmap(h1, 0x1000);
    expect(env.store(a1, fill(8, 0x77))).toBe('ok');
    const p1 = env.pfnAt(a1)!;
    expect(p1).toBeGreaterThanOrEqual(0x10000);
    expect(p1).toBeLessThan(0x11000);
    expect(env.move(h1, PFNGPU_GEM_DOMAIN_VRAM)).toBe(0);
    expect(page_is_free(p1)).toBe(false); // kept by the TTM pool
    const h2 = env.create(0x1000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const a2 = env.mmap(h2, 0x1000);
    // ZERO_ALLOC: the new BO does not see the old bytes
    expect(env.load(a2, 8)).toEqual(fill(8, 0));
    expect(env.pfnAt(a2)).toBe(p1);
    expect(pfnsan_owner_of(p1)).toMatchObject({ desc: 'pfngpu BO 2 (system)' });
  });

  it('R-REV-5: a pfn looked up with follow_pfnmap_start/_end before the move now holds another BO', () => {
    const env = gpuMachine('6.12');
    const hA = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const aA = env.mmap(hA, 0x1000);
    expect(env.store(aA, fill(16, 0xaa))).toBe('ok');
    const mm = env.task.mm!;
    const vma = env.vma(aA);
    const pfn = env.sys(
      (function* () {
        yield* mmap_read_lock(mm);
        const args = follow_pfnmap_args_init(vma, aA);
        const r = yield* follow_pfnmap_start(args);
        const got = r === 0 ? args.pfn : -1;
        if (r === 0) yield* follow_pfnmap_end(args);
        yield* mmap_read_unlock(mm);
        return got;
      })(),
    );
    expect(pfn).toBe(VRAM_PFN); // 0x180000, BO A's VRAM
    expect(env.move(hA, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    const hB = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const aB = env.mmap(hB, 0x1000);
    expect(env.store(aB, fill(16, 0xbb))).toBe('ok');
    // the cached pfn: BO B's data and owner, while A's data moved elsewhere
    expect(phys_read(pfn * 4096, 16)).toEqual(fill(16, 0xbb));
    expect(pfnsan_owner_of(pfn).desc).toBe('pfngpu BO 2 (VRAM)');
    expect(env.load(aA, 16)).toEqual(fill(16, 0xaa));
    expect(env.pfnAt(aA)).not.toBe(pfn);
  });
});

describe('ttm_bo_evict / ttm_resource_manager_evict_all', () => {
  it('R-REV-4: EVICT_VRAM moves unpinned VRAM BOs to system memory and zaps their mappings; a pinned BO stays', () => {
    const env = gpuMachine('6.12');
    const h1 = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const h2 = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const a1 = env.mmap(h1, 0x1000);
    const a2 = env.mmap(h2, 0x1000);
    expect(env.store(a1, [1])).toBe('ok');
    expect(env.store(a2, [2])).toBe('ok');
    const bo2 = env.bo(h2);
    env.sys(
      (function* () {
        yield* dma_resv_lock(bo2.base.resv);
        ttm_bo_pin(bo2);
        yield* dma_resv_unlock(bo2.base.resv);
      })(),
    );
    expect(env.evict()).toBe(0);
    expect(env.bo(h1).resource!.mem_type).toBe(TTM_PL_SYSTEM);
    expect(env.pfnAt(a1)).toBeNull();
    expect(bo2.resource!.mem_type).toBe(TTM_PL_VRAM);
    expect(env.pfnAt(a2)).toBe(VRAM_PFN + 1);
    expect(env.load(a1, 1)).toEqual(Uint8Array.from([1]));
  });

  it('R-REV-4: VRAM full: creating a VRAM BO evicts the least recently used unpinned BO', () => {
    const env = gpuMachine('6.12');
    const big = env.create(0x3f000, PFNGPU_GEM_DOMAIN_VRAM); // 63 pages
    const a = env.mmap(big, 0x1000);
    expect(env.store(a, [5])).toBe('ok');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    expect(env.bo(big).resource!.mem_type).toBe(TTM_PL_SYSTEM);
    expect(env.bo(h).resource!.start).toBe(0);
    expect(env.pfnAt(a)).toBeNull();
    expect(env.load(a, 1)).toEqual(Uint8Array.from([5]));
  });
});

describe('ttm_bo_validate / ttm_bo_pin', () => {
  it('pinned BO: GEM_MOVE is -EINVAL from ttm_bo_validate (v6.3+), mappings untouched; after unpin it moves', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x1000);
    expect(env.store(a, [3])).toBe('ok');
    const bo = env.bo(h);
    const lockAnd = (f: () => void) =>
      env.sys(
        (function* () {
          yield* dma_resv_lock(bo.base.resv);
          f();
          yield* dma_resv_unlock(bo.base.resv);
        })(),
      );
    lockAnd(() => ttm_bo_pin(bo));
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(-EINVAL);
    expect(env.pfnAt(a)).toBe(VRAM_PFN);
    expect(dmesg()).not.toContain('amdgpu_bo_move');
    lockAnd(() => ttm_bo_unpin(bo));
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    expect(env.pfnAt(a)).toBeNull();
  });

  it('pinned BO before v6.3: the driver ->move refuses it (WARN_ON_ONCE, -EINVAL) after the mappings were already zapped', () => {
    const env = gpuMachine('6.1');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x1000);
    expect(env.store(a, [3])).toBe('ok');
    const bo = env.bo(h);
    env.sys(
      (function* () {
        yield* dma_resv_lock(bo.base.resv);
        ttm_bo_pin(bo);
        yield* dma_resv_unlock(bo.base.resv);
      })(),
    );
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(-EINVAL);
    expect(dmesg()).toMatch(/WARNING/);
    expect(bo.resource!.mem_type).toBe(TTM_PL_VRAM);
    // ttm_bo_handle_move_mem unmapped first; the refault maps the same VRAM page again
    expect(env.pfnAt(a)).toBeNull();
    expect(env.load(a, 1)).toEqual(Uint8Array.from([3]));
    expect(env.pfnAt(a)).toBe(VRAM_PFN);
  });
});
