/**
 * pfnimp: a model-only importer device (not a kernel file) for the dma-buf tests: a PCI
 * function whose DMA engine reads and writes an imported dma-buf through the sg_table the
 * exporter mapped for it (dma_engine_access at each entry's DMA address).
 *
 * - Dynamic (dma_buf_dynamic_attach with move_notify, as RDMA's ib_umem_dmabuf or amdgpu
 *   importing): every DMA runs under the dma-buf's reservation; the mapping is made on
 *   first use (dma_buf_map_attachment) and dropped in move_notify (called by the exporter
 *   under the reservation before a move), so the next DMA maps again and reaches the new
 *   placement.
 * - Static (dma_buf_attach): maps once (dma_buf_map_attachment_unlocked) and keeps the
 *   table; the exporter keeps the buffer pinned for it.
 *
 * @kernel (model device) after drivers/infiniband/core/umem_dmabuf.c:
 *   ib_umem_dmabuf_map_pages, ib_umem_dmabuf_unmap_pages, ib_umem_dmabuf_attach_ops
 */
import type { Op } from '../../../../../sched/index.js';
import { EINVAL, IS_ERR } from '../../../../include/linux/errno.js';
import { DMA_BIDIRECTIONAL } from '../../../../include/linux/dma-direction.js';
import type { sg_table } from '../../../../kernel/dma/mapping.js';
import { pci_enable_device_mem, pci_set_master, type pci_dev } from '../../../pci/pci.js';
import { pci_register_driver, type pci_driver } from '../../../pci/pci-driver.js';
import { dma_engine_access, type dma_engine_result } from '../../../dma/engine.js';
import {
  dma_buf_attach,
  dma_buf_dynamic_attach,
  dma_buf_get,
  dma_buf_map_attachment,
  dma_buf_map_attachment_unlocked,
  dma_buf_pin,
  dma_buf_unmap_attachment,
  dma_buf_unpin,
  type dma_buf,
  type dma_buf_attach_ops,
  type dma_buf_attachment,
} from '../../../dma-buf/dma-buf.js';
import { dma_resv_lock, dma_resv_unlock } from '../../../dma-buf/dma-resv.js';

export const PFNIMP_VENDOR = 0x1234;
export const PFNIMP_DEVICE = 0x2222;

/** The importer's state for one imported buffer. */
export class pfnimp_import {
  attach: dma_buf_attachment | null = null;
  dmabuf: dma_buf | null = null;
  sgt: sg_table | null = null;
  /** move_notify calls received (model statistics). */
  invalidations = 0;
  /** Maps made (model statistics). */
  maps = 0;
  constructor(
    readonly pdev: pci_dev,
    readonly dynamic: boolean,
  ) {}
}

function* pfnimp_move_notify(attach: dma_buf_attachment): Op<void> {
  const imp = attach.importer_priv as pfnimp_import;
  imp.invalidations++;
  if (imp.sgt) {
    yield* dma_buf_unmap_attachment(attach, imp.sgt, DMA_BIDIRECTIONAL);
    imp.sgt = null;
  }
}

export const pfnimp_attach_ops: dma_buf_attach_ops = {
  allow_peer2peer: true,
  move_notify: pfnimp_move_notify,
};

/**
 * pfnimp_import_fd(pdev, fd, dynamic): dma_buf_get of current's fd and an attachment.
 * Return: the import or -errno.
 */
export function* pfnimp_import_fd(
  pdev: pci_dev,
  fd: number,
  dynamic: boolean,
): Op<pfnimp_import | number> {
  const dmabuf = yield* dma_buf_get(fd);
  if (IS_ERR(dmabuf)) return dmabuf;
  const imp = new pfnimp_import(pdev, dynamic);
  const db = dmabuf as dma_buf;
  const attach = dynamic
    ? yield* dma_buf_dynamic_attach(db, pdev, pfnimp_attach_ops, imp)
    : yield* dma_buf_attach(db, pdev);
  if (IS_ERR(attach)) return attach;
  imp.attach = attach as dma_buf_attachment;
  imp.dmabuf = db;
  return imp;
}

/** The DMA transfer over the mapped table (each entry one page of the buffer). */
function* dma_over(
  imp: pfnimp_import,
  sgt: sg_table,
  offset: number,
  len: number,
  dir: 'read' | 'write',
  data?: Uint8Array,
): Op<dma_engine_result> {
  const out = new Uint8Array(dir === 'read' ? len : 0);
  let done = 0;
  while (done < len) {
    const off = offset + done;
    const sg = sgt.sgl[Math.floor(off / 4096)];
    if (!sg) return { ret: -EINVAL, done, data: out.subarray(0, done) };
    const n = Math.min(4096 - (off % 4096), len - done);
    const r = yield* dma_engine_access(
      imp.pdev,
      sg.dma_address + (off % 4096),
      n,
      dir,
      dir === 'write' ? data!.subarray(done, done + n) : undefined,
    );
    if (r.ret) return { ...r, done: done + r.done };
    if (dir === 'read') out.set(r.data, done);
    done += n;
  }
  return { ret: 0, done, data: out };
}

/**
 * pfnimp_dma(imp, offset, len, dir, data): one DMA transfer into the imported buffer.
 * Dynamic: under the reservation, (re)mapping first if move_notify dropped the table.
 * Static: the table mapped once is used without the lock.
 * Return: the engine's result ({ret: -errno} when mapping fails).
 */
export function* pfnimp_dma(
  imp: pfnimp_import,
  offset: number,
  len: number,
  dir: 'read' | 'write',
  data?: Uint8Array,
): Op<dma_engine_result> {
  const attach = imp.attach!;
  if (imp.dynamic) {
    yield* dma_resv_lock(attach.dmabuf.resv, null);
    if (!imp.sgt) {
      const sgt = yield* dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
      if (IS_ERR(sgt)) {
        yield* dma_resv_unlock(attach.dmabuf.resv);
        return { ret: sgt, done: 0, data: new Uint8Array(0) };
      }
      imp.sgt = sgt as sg_table;
      imp.maps++;
    }
    const r = yield* dma_over(imp, imp.sgt, offset, len, dir, data);
    yield* dma_resv_unlock(attach.dmabuf.resv);
    return r;
  }
  if (!imp.sgt) {
    const sgt = yield* dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
    if (IS_ERR(sgt)) return { ret: sgt, done: 0, data: new Uint8Array(0) };
    imp.sgt = sgt as sg_table;
    imp.maps++;
  }
  return yield* dma_over(imp, imp.sgt, offset, len, dir, data);
}

/** dma_buf_pin under the reservation (a dynamic importer that needs the buffer fixed). */
export function* pfnimp_pin(imp: pfnimp_import): Op<number> {
  const attach = imp.attach!;
  yield* dma_resv_lock(attach.dmabuf.resv, null);
  const r = yield* dma_buf_pin(attach);
  yield* dma_resv_unlock(attach.dmabuf.resv);
  return r;
}

/** dma_buf_unpin under the reservation. */
export function* pfnimp_unpin(imp: pfnimp_import): Op<void> {
  const attach = imp.attach!;
  yield* dma_resv_lock(attach.dmabuf.resv, null);
  yield* dma_buf_unpin(attach);
  yield* dma_resv_unlock(attach.dmabuf.resv);
}

function* pfnimp_probe(pdev: pci_dev): Op<number> {
  const ret = yield* pci_enable_device_mem(pdev);
  if (ret) return ret;
  yield* pci_set_master(pdev);
  return 0;
}

export const pfnimp_pci_driver: pci_driver = {
  name: 'pfnimp',
  id_table: [{ vendor: PFNIMP_VENDOR, device: PFNIMP_DEVICE }],
  probe: pfnimp_probe,
};

/** Registers the importer driver. */
export function pfnimp_init(): Op<number> {
  return pci_register_driver(pfnimp_pci_driver);
}
