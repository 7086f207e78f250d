/**
 * CPU mappings of TTM BOs: ttm_bo_mmap_obj (through drm_gem_mmap) and ttm_bo_vm_fault
 * (R-REV-4). Machine: see pfngpu.fixtures.ts — VRAM BAR at 0x180000000 (pfn 0x180000,
 * 64 pages, no struct page).
 */
import { describe, expect, it } from 'vitest';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
} from '../../../../include/linux/mm.js';
import { EACCES, EINVAL } from '../../../../include/linux/errno.js';
import { sys_mmap } from '../../../../arch/x86/entry/syscall_64.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ } from '../../../../mm/mmap.js';
import { PFNGPU_GEM_DOMAIN_SYSTEM, PFNGPU_GEM_DOMAIN_VRAM, pfngpu_open } from '../pfngpu/pfngpu.js';
import { RW, VRAM_PFN, fill, gpuMachine } from '../pfngpu/pfngpu.fixtures.js';
import { ttm_bo_vm_ops, TTM_BO_VM_NUM_PREFAULT } from './ttm_bo_vm.js';
import { drm_vma_node_start } from '../drm_vma_manager.js';

describe('ttm_bo_mmap_obj', () => {
  it('R-REV-4: MAP_PRIVATE (a COW mapping) of a BO is refused with -EINVAL (v5.14+)', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x4000, PFNGPU_GEM_DOMAIN_VRAM);
    expect(env.mmap(h, 0x4000, MAP_PRIVATE)).toBe(-EINVAL);
    // read-only private is not COW only without VM_MAYWRITE; an O_RDWR fd gives MAYWRITE
    expect(env.mmap(h, 0x4000, MAP_PRIVATE, PROT_READ)).toBe(-EINVAL);
  });

  it('R-REV-4: MAP_SHARED gives VM_PFNMAP|VM_IO|VM_DONTEXPAND|VM_DONTDUMP, ttm_bo_vm_ops, vm_pgoff = fake offset, no PTE yet', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x4000, PFNGPU_GEM_DOMAIN_VRAM);
    const off = env.offset(h);
    // first node of the manager: DRM_FILE_PAGE_OFFSET_START = 0x100000 pages = 4 GiB
    expect(off).toBe(0x100000000);
    const a = env.mmap(h, 0x4000);
    expect(a).toBeGreaterThan(0);
    const vma = env.vma(a);
    const want = VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP;
    expect(vma.vm_flags & want).toBe(want);
    expect(vma.vm_flags & VM_MIXEDMAP).toBe(0n);
    expect(vma.vm_ops).toBe(ttm_bo_vm_ops);
    expect(vma.vm_pgoff).toBe(0x100000);
    expect(vma.vm_pgoff).toBe(drm_vma_node_start(env.bo(h).base.vma_node));
    expect(env.pfnAt(a)).toBeNull();
  });

  it('R-REV-4: before v5.14 (f91142c62161) the VMA is VM_MIXEDMAP and MAP_PRIVATE is accepted', () => {
    const env = gpuMachine('5.10');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x2000, MAP_PRIVATE);
    expect(a).toBeGreaterThan(0);
    const vma = env.vma(a);
    expect(vma.vm_flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
    expect(vma.vm_flags & VM_PFNMAP).toBe(0n);
    // the fault still inserts the BAR pfn (vmf_insert_mixed of a pfn without struct page)
    expect(env.load(a + 0x1000, 1)).toEqual(fill(1, 0));
    expect(env.pfnAt(a + 0x1000)).toBe(VRAM_PFN + 1);
    expect(env.specialAt(a + 0x1000)).toBe(true);
  });
});

describe('ttm_bo_vm_fault', () => {
  it('R-REV-4: a VRAM BO read faults in special PTEs to its BAR pfns (0x180000..), prefaulting the rest of the VMA', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x4000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x4000);
    expect(env.store(a, fill(8, 0x5a))).toBe('ok');
    for (let i = 0; i < 4; i++) {
      expect(env.pfnAt(a + i * 0x1000)).toBe(VRAM_PFN + i);
      expect(env.specialAt(a + i * 0x1000)).toBe(true);
    }
    expect(env.load(a, 8)).toEqual(fill(8, 0x5a));
    // the bytes are in the BAR frame itself
    expect(env.bo(h).resource!.start).toBe(0);
  });

  it(`R-REV-4: prefault stops after TTM_BO_VM_NUM_PREFAULT (${TTM_BO_VM_NUM_PREFAULT}) pages`, () => {
    const env = gpuMachine('6.12');
    const h = env.create(20 * 0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 20 * 0x1000);
    expect(env.load(a, 1)).toEqual(fill(1, 0));
    expect(env.pfnAt(a + 15 * 0x1000)).toBe(VRAM_PFN + 15);
    expect(env.pfnAt(a + 16 * 0x1000)).toBeNull();
    // a fault in the middle maps from there on
    expect(env.load(a + 18 * 0x1000, 1)).toEqual(fill(1, 0));
    expect(env.pfnAt(a + 19 * 0x1000)).toBe(VRAM_PFN + 19);
    expect(env.pfnAt(a + 17 * 0x1000)).toBeNull();
  });

  it('R-REV-4: a system BO is populated on first fault and mapped by special PTEs to its tt pages', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const bo = env.bo(h);
    expect(bo.ttm!.pages[0]).toBeNull();
    const a = env.mmap(h, 0x2000);
    expect(env.store(a + 0x1004, [1, 2, 3])).toBe('ok');
    expect(bo.ttm!.pages[0]).not.toBeNull();
    // the prefault runs forward from the faulting page only: page 0 is not mapped
    expect(env.pfnAt(a)).toBeNull();
    expect(env.pfnAt(a + 0x1000)).toBe(bo.ttm!.pages[1]);
    expect(env.specialAt(a + 0x1000)).toBe(true);
    expect(env.load(a + 0x1004, 3)).toEqual(Uint8Array.from([1, 2, 3]));
  });

  it('R-REV-4: a VMA larger than the BO is refused by drm_gem_mmap_obj (-EINVAL)', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    expect(env.mmap(h, 0x3000)).toBe(-EINVAL);
  });
});

describe('drm_gem_mmap', () => {
  it('R-REV-4: an offset that is not the start of a BO is -EINVAL; a BO of another open file is -EACCES', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    const off = env.offset(h);
    expect(env.sys(sys_mmap(0, 0x1000, RW, MAP_SHARED, env.fd, off + 0x1000))).toBe(-EINVAL);
    const fd2 = env.sys(pfngpu_open(env.adev));
    expect(env.sys(sys_mmap(0, 0x1000, RW, MAP_SHARED, fd2, off))).toBe(-EACCES);
  });
});
