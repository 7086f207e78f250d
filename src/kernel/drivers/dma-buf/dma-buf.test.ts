/**
 * dma-buf between pfngpu (a dynamic TTM exporter) and the pfnimp importer device: dynamic
 * importers re-map after move_notify; static importers pin the exporter (R-REV-4, R-MMUN-4's
 * "dma-buf with explicit revoke"). Machine: see gpu/drm/pfngpu/pfngpu.fixtures.ts —
 * VRAM pfns 0x180000.., importer 0000:04:00.0 behind the IOMMU.
 */
import { describe, expect, it } from 'vitest';
import { EBADF, EINVAL } from '../../include/linux/errno.js';
import { PFNGPU_GEM_DOMAIN_SYSTEM, PFNGPU_GEM_DOMAIN_VRAM } from '../gpu/drm/pfngpu/pfngpu.js';
import { VRAM_PFN, fill, gpuMachine } from '../gpu/drm/pfngpu/pfngpu.fixtures.js';
import {
  pfnimp_dma,
  pfnimp_import_fd,
  pfnimp_pin,
  pfnimp_unpin,
  type pfnimp_import,
} from '../gpu/drm/pfngpu/pfnimp.js';
import { TTM_PL_SYSTEM, TTM_PL_VRAM } from '../gpu/drm/ttm/ttm_resource.js';
import { iommu_iova_to_phys } from '../iommu/iommu.js';
import { dma_buf_export, dma_buf_get } from './dma-buf.js';
import { dmesg } from '../../kernel/printk.js';

function importer(env: ReturnType<typeof gpuMachine>, fd: number, dynamic: boolean): pfnimp_import {
  const r = env.sys(pfnimp_import_fd(env.imp, fd, dynamic));
  if (typeof r === 'number') throw new Error(`import failed: ${r}`);
  return r;
}

function dmaRead(env: ReturnType<typeof gpuMachine>, imp: pfnimp_import, off: number, len: number) {
  return env.sys(pfnimp_dma(imp, off, len, 'read'));
}

describe('dma_buf_dynamic_attach / dma_buf_move_notify', () => {
  it('R-REV-4: a dynamic importer drops its mapping on move_notify, re-maps, and its DMA reaches the new placement', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x2000);
    expect(env.store(a + 0x1000, fill(8, 0x42))).toBe('ok');
    const imp = importer(env, env.exportFd(h), true);
    // peer-to-peer: the table points at the BAR (dma_map_resource through the IOMMU)
    let r = dmaRead(env, imp, 0x1000, 8);
    expect(r.ret).toBe(0);
    expect(r.data).toEqual(fill(8, 0x42));
    const dom = env.imp.iommu_group!.default_domain!;
    const iova1 = imp.sgt!.sgl[1]!.dma_address;
    expect(iommu_iova_to_phys(dom, iova1)).toBe((VRAM_PFN + 1) * 4096);
    expect(env.bo(h).pin_count).toBe(0);

    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    expect(imp.invalidations).toBe(1);
    expect(imp.sgt).toBeNull();
    expect(iommu_iova_to_phys(dom, iova1)).toBe(0); // unmapped in move_notify
    r = dmaRead(env, imp, 0x1000, 8);
    expect(r.ret).toBe(0);
    expect(r.data).toEqual(fill(8, 0x42));
    const sys1 = env.bo(h).ttm!.pages[1]!;
    expect(iommu_iova_to_phys(dom, imp.sgt!.sgl[1]!.dma_address)).toBe(sys1 * 4096);
    expect(imp.maps).toBe(2);
    // a DMA write lands in the new placement, which the CPU mapping now refaults to
    expect(env.sys(pfnimp_dma(imp, 0x1000, 2, 'write', Uint8Array.from([7, 7]))).ret).toBe(0);
    expect(env.load(a + 0x1000, 3)).toEqual(Uint8Array.from([7, 7, 0x42]));
    expect(env.pfnAt(a + 0x1000)).toBe(sys1);
  });

  it('R-REV-4: CONFIG_DMABUF_MOVE_NOTIFY=n: the dynamic importer gets the buffer pinned at map time, so moves fail', () => {
    const env = gpuMachine('6.12', { config: { CONFIG_DMABUF_MOVE_NOTIFY: false } });
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const imp = importer(env, env.exportFd(h), true);
    expect(dmaRead(env, imp, 0, 1).ret).toBe(0);
    expect(env.bo(h).pin_count).toBe(1);
    expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(-EINVAL);
    expect(env.bo(h).resource!.mem_type).toBe(TTM_PL_SYSTEM);
    expect(imp.invalidations).toBe(0);
  });
});

describe('dma_buf_attach (static importer)', () => {
  it('R-REV-4: v6.12: the exporter is pinned and mapped at attach (cached sg_table); moves and eviction leave it in place', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const a = env.mmap(h, 0x1000);
    expect(env.store(a, [0x31])).toBe('ok');
    const imp = importer(env, env.exportFd(h), false);
    const bo = env.bo(h);
    expect(bo.pin_count).toBe(1);
    expect(imp.attach!.sgt).not.toBeNull();
    // not peer-to-peer (static importer): pinned in system memory
    expect(bo.resource!.mem_type).toBe(TTM_PL_SYSTEM);
    expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(-EINVAL);
    expect(env.evict()).toBe(0);
    const r = dmaRead(env, imp, 0, 1);
    expect(r.ret).toBe(0);
    expect(r.data).toEqual(Uint8Array.from([0x31]));
    expect(imp.sgt).toBe(imp.attach!.sgt);
  });

  it('R-REV-4: v6.18 (de68b17d5d07, v6.17): nothing is pinned at attach; the first map pins', () => {
    const env = gpuMachine('6.18');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_SYSTEM);
    const imp = importer(env, env.exportFd(h), false);
    const bo = env.bo(h);
    expect(bo.pin_count).toBe(0);
    expect(imp.attach!.sgt).toBeNull();
    expect(dmaRead(env, imp, 0, 1).ret).toBe(0);
    expect(bo.pin_count).toBe(1);
    expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(-EINVAL);
  });
});

describe('dma_buf_pin / dma_buf_unpin', () => {
  it('R-REV-4: a dynamic importer that pins keeps the BO in place (VRAM, peer-to-peer); after unpin the move notifies it', () => {
    const env = gpuMachine('6.12');
    const h = env.create(0x1000, PFNGPU_GEM_DOMAIN_VRAM);
    const imp = importer(env, env.exportFd(h), true);
    expect(env.sys(pfnimp_pin(imp))).toBe(0);
    expect(env.bo(h).resource!.mem_type).toBe(TTM_PL_VRAM);
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(-EINVAL);
    expect(imp.invalidations).toBe(0);
    env.sys(pfnimp_unpin(imp));
    expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
    expect(imp.invalidations).toBe(1);
  });
});

describe('dma_buf_get', () => {
  it('a descriptor that is not a dma-buf is -EINVAL; a closed one -EBADF', () => {
    const env = gpuMachine('6.12');
    expect(env.sys(dma_buf_get(env.fd))).toBe(-EINVAL);
    expect(env.sys(dma_buf_get(99))).toBe(-EBADF);
  });
});

describe('dma_buf_export', () => {
  it('an exporter with pin but no unpin is a WARN and -EINVAL', () => {
    const env = gpuMachine('6.12');
    const r = env.sys(
      (function* () {
        return dma_buf_export({
          exp_name: 'bad',
          ops: {
            *pin() {
              return 0;
            },
            *map_dma_buf() {
              return -EINVAL;
            },
            *unmap_dma_buf() {},
            release() {},
          },
          size: 4096,
          flags: 0,
          resv: null,
          priv: {},
        });
      })(),
    );
    expect(r).toBe(-EINVAL);
    expect(dmesg()).toMatch(/WARNING/);
  });
});
