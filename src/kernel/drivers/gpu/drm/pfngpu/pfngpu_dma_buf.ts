/**
 * pfngpu as a dma-buf exporter (model driver, after drivers/gpu/drm/amd/amdgpu/
 * amdgpu_dma_buf.c). A dynamic exporter: it has pin/unpin, maps under the reservation and
 * calls dma_buf_move_notify before every move (pfngpu.ts).
 *
 * - attach: peer-to-peer stays allowed only with CONFIG_PCI_P2PDMA (amdgpu also checks
 *   pci_p2pdma_distance).
 * - pin: keep a VRAM BO in VRAM for a peer-to-peer importer, else pin in system memory
 *   (amdgpu pins in GTT).
 * - map_dma_buf: an unpinned BO is first validated to where the importer can reach it
 *   (VRAM only with peer2peer, else system); system pages are mapped with dma_map_sgtable,
 *   VRAM pages with dma_map_resource (peer-to-peer through the BAR,
 *   amdgpu_vram_mgr_alloc_sgt). The sg_table holds the DMA addresses of the placement at
 *   that moment; only the reservation (and move_notify) keeps them valid.
 * - release: drm_gem_dmabuf_release (obj->dma_buf cleared, the object's reference dropped).
 *
 * @kernel (model driver) drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c:amdgpu_dma_buf_attach,
 *   amdgpu_dma_buf_pin, amdgpu_dma_buf_unpin, amdgpu_dma_buf_map, amdgpu_dma_buf_unmap,
 *   amdgpu_gem_prime_export; drivers/gpu/drm/drm_prime.c:drm_gem_dmabuf_release (v5.7+)
 */
import type { Op } from '../../../../../sched/index.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { EBUSY, IS_ERR, type ErrOr } from '../../../../include/linux/errno.js';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_MAPPING_ERROR,
} from '../../../../include/linux/dma-direction.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import {
  dma_map_resource,
  dma_map_sgtable,
  dma_unmap_resource,
  dma_unmap_sgtable,
  sg_alloc_table_from_pages,
  type sg_table,
} from '../../../../kernel/dma/mapping.js';
import {
  dma_buf_export,
  type dma_buf,
  type dma_buf_attachment,
  type dma_buf_ops,
} from '../../../dma-buf/dma-buf.js';
import { dma_resv_assert_held } from '../../../dma-buf/dma-resv.js';
import { drm_gem_object_get, drm_gem_object_put, type drm_gem_object } from '../drm_gem.js';
import { ttm_bo_validate, ttm_ctx, type ttm_buffer_object } from '../ttm/ttm_bo.js';
import { TTM_PL_VRAM } from '../ttm/ttm_resource.js';
import { ttm_tt_populate } from '../ttm/ttm_tt.js';
import {
  PFNGPU_GEM_DOMAIN_SYSTEM,
  PFNGPU_GEM_DOMAIN_VRAM,
  pfngpu_bo_of,
  pfngpu_bo_pin,
  pfngpu_bo_placement_from_domain,
  pfngpu_bo_unpin,
  pfngpu_ttm_bo,
  type pfngpu_device,
} from './pfngpu.js';

function bo_of(dmabuf: dma_buf): ttm_buffer_object {
  return pfngpu_ttm_bo(dmabuf.priv as drm_gem_object);
}

/** sg tables made from VRAM (dma_map_resource per page). */
const vram_sgt = new WeakSet<sg_table>();

function* pfngpu_dma_buf_attach(_dmabuf: dma_buf, attach: dma_buf_attachment): Op<number> {
  if (currentKernel().config.CONFIG_PCI_P2PDMA !== true) attach.peer2peer = false;
  return 0;
}

function* pfngpu_dma_buf_pin(attach: dma_buf_attachment): Op<number> {
  const bo = bo_of(attach.dmabuf);
  dma_resv_assert_held(attach.dmabuf.resv);
  const domain =
    bo.resource?.mem_type === TTM_PL_VRAM && attach.peer2peer
      ? PFNGPU_GEM_DOMAIN_VRAM
      : PFNGPU_GEM_DOMAIN_SYSTEM;
  return yield* pfngpu_bo_pin(bo, domain);
}

function* pfngpu_dma_buf_unpin(attach: dma_buf_attachment): Op<void> {
  pfngpu_bo_unpin(bo_of(attach.dmabuf));
}

function* pfngpu_dma_buf_map(attach: dma_buf_attachment, dir: number): Op<ErrOr<sg_table>> {
  const bo = bo_of(attach.dmabuf);
  const adev = bo.bdev.priv as pfngpu_device;
  if (!bo.pin_count) {
    /* move buffer into system memory or VRAM */
    let domains = PFNGPU_GEM_DOMAIN_SYSTEM;
    if (pfngpu_bo_of(bo).preferred_domains & PFNGPU_GEM_DOMAIN_VRAM && attach.peer2peer)
      domains |= PFNGPU_GEM_DOMAIN_VRAM;
    const r = yield* ttm_bo_validate(bo, pfngpu_bo_placement_from_domain(domains), ttm_ctx(false));
    if (r) return r;
  }
  const n = Math.ceil(bo.base.size / 4096);
  if (bo.resource!.mem_type === TTM_PL_VRAM) {
    const base = adev.aper_base / 4096 + bo.resource!.start;
    const pages = Array.from({ length: n }, (_, i) => (base + i) as page);
    const sgt = sg_alloc_table_from_pages(pages, 0, bo.base.size);
    for (let i = 0; i < n; i++) {
      const sg = sgt.sgl[i]!;
      const a = yield* dma_map_resource(
        attach.dev,
        (base + i) * 4096,
        4096,
        dir,
        DMA_ATTR_SKIP_CPU_SYNC,
      );
      if (a === DMA_MAPPING_ERROR) {
        for (let j = 0; j < i; j++)
          yield* dma_unmap_resource(attach.dev, sgt.sgl[j]!.dma_address, 4096, dir);
        return -EBUSY;
      }
      sg.dma_address = a;
      sg.dma_length = 4096;
    }
    sgt.nents = n;
    vram_sgt.add(sgt);
    return sgt;
  }
  const e = yield* ttm_tt_populate(bo.bdev, bo.ttm, ttm_ctx(false));
  if (e) return e;
  const sgt = sg_alloc_table_from_pages(bo.ttm!.pages as page[], 0, bo.base.size);
  const r = yield* dma_map_sgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
  if (r) return -EBUSY;
  return sgt;
}

function* pfngpu_dma_buf_unmap(attach: dma_buf_attachment, sgt: sg_table, dir: number): Op<void> {
  if (vram_sgt.has(sgt)) {
    for (let i = 0; i < sgt.nents; i++)
      yield* dma_unmap_resource(attach.dev, sgt.sgl[i]!.dma_address, 4096, dir);
    sgt.nents = 0;
    return;
  }
  yield* dma_unmap_sgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
}

/** drm_gem_dmabuf_release(dmabuf): the dma-buf's reference on the object goes. */
function drm_gem_dmabuf_release(dmabuf: dma_buf): void {
  const obj = dmabuf.priv as drm_gem_object;
  if (obj.dma_buf === dmabuf) obj.dma_buf = null;
  drm_gem_object_put(obj);
}

export const pfngpu_dmabuf_ops: dma_buf_ops = {
  attach: pfngpu_dma_buf_attach,
  pin: pfngpu_dma_buf_pin,
  unpin: pfngpu_dma_buf_unpin,
  map_dma_buf: pfngpu_dma_buf_map,
  unmap_dma_buf: pfngpu_dma_buf_unmap,
  release: drm_gem_dmabuf_release,
};

/**
 * pfngpu_gem_prime_export (amdgpu_gem_prime_export -> drm_gem_prime_export): a dma-buf
 * sharing the object's reservation, holding a reference on the object.
 * Return: the dma-buf or -errno.
 */
export function pfngpu_gem_prime_export(obj: drm_gem_object, flags: number): ErrOr<dma_buf> {
  const r = dma_buf_export({
    exp_name: 'pfngpu',
    ops: pfngpu_dmabuf_ops,
    size: obj.size,
    flags,
    resv: obj.resv,
    priv: obj,
  });
  if (IS_ERR(r)) return r;
  drm_gem_object_get(obj);
  return r;
}
