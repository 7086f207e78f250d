/**
 * DMA-buf (drivers/dma-buf/dma-buf.c): sharing a buffer between an exporter (here a TTM
 * GPU driver) and importers (devices that DMA to it through an sg_table of DMA addresses).
 *
 * The parts that decide whether an importer's DMA addresses can outlive the memory:
 * - A dynamic exporter (ops->pin set) may move the buffer while attachments exist; it must
 *   call dma_buf_move_notify() under the reservation lock before the move, and each
 *   dynamic importer (dma_buf_dynamic_attach with importer_ops->move_notify) must drop its
 *   mapping and re-map under the lock before its next DMA.
 * - A static importer (dma_buf_attach, no importer_ops) cannot be told: the exporter is
 *   pinned for it (dma_buf_pin -> ops->pin), at attach time with the sg_table cached
 *   (v5.7 .. v6.16: "When either the importer or the exporter can't handle dynamic
 *   mappings we cache the mapping here"), at map time from v6.17 (de68b17d5d07 "dma-buf:
 *   dma-buf: stop mapping sg_tables on attach v2", b72f66f22c0e "dma-buf: drop caching of
 *   sg_tables"; dma_buf_pin_on_map). Pinned TTM BOs are not evicted or moved.
 * - CONFIG_DMABUF_MOVE_NOTIFY=n (the kernel default): even dynamic importers get the
 *   buffer pinned at map time.
 *
 * Locking convention (v6.2+, Osipenko's dynamic locking specification): map/unmap, pin/unpin
 * with the reservation held by the importer; attach/detach/export/fd/get/put without it.
 * Before v6.2 only dynamic attachments required the lock for map/unmap.
 *
 * Left out: fences and poll, vmap, mmap of the dma-buf fd, begin/end_cpu_access, sysfs
 * stats, names, CONFIG_DMABUF_DEBUG's sg mangling, cache_sgt_mapping exporters.
 *
 * @kernel drivers/dma-buf/dma-buf.c, include/linux/dma-buf.h (v5.7+: dynamic handling
 *   bb42df4662a4 "dma-buf: add dynamic DMA-buf handling v15")
 */
import type { Op } from '../../../sched/index.js';
import type { file, file_operations, inode } from '../../include/linux/mm_types.js';
import { EBADF, EINVAL, EBUSY, ENOMEM, IS_ERR, type ErrOr } from '../../include/linux/errno.js';
import { DMA_BIDIRECTIONAL } from '../../include/linux/dma-direction.js';
import { WARN_ON, WARN_ON_ONCE } from '../../kernel/panic.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { fget, fd_install, get_unused_fd_flags } from '../../include/linux/fdtable.js';
import { fput } from '../../fs/file_table.js';
import { anon_inode_getfile } from '../../fs/anon_inodes.js';
import { O_RDWR } from '../../fs/inode.js';
import type { device } from '../base/core.js';
import type { sg_table } from '../../kernel/dma/mapping.js';
import {
  dma_resv,
  dma_resv_assert_held,
  dma_resv_init,
  dma_resv_lock,
  dma_resv_unlock,
} from './dma-resv.js';

/**
 * struct dma_buf_ops (the callbacks the model uses).
 * @kernel include/linux/dma-buf.h:struct dma_buf_ops (all versions)
 */
export interface dma_buf_ops {
  /** Called without the reservation lock. Return 0/-errno. */
  attach?(dmabuf: dma_buf, attach: dma_buf_attachment): Op<number>;
  detach?(dmabuf: dma_buf, attach: dma_buf_attachment): Op<void>;
  /** With the reservation held: keep the backing store in place. Return 0/-errno. */
  pin?(attach: dma_buf_attachment): Op<number>;
  unpin?(attach: dma_buf_attachment): Op<void>;
  /** With the reservation held (dynamic) : the sg_table of DMA addresses, or -errno. */
  map_dma_buf(attach: dma_buf_attachment, dir: number): Op<ErrOr<sg_table>>;
  unmap_dma_buf(attach: dma_buf_attachment, sgt: sg_table, dir: number): Op<void>;
  /** The last reference to the dma-buf is gone. */
  release(dmabuf: dma_buf): void;
}

/**
 * struct dma_buf_attach_ops: what a dynamic importer provides.
 * @kernel include/linux/dma-buf.h:struct dma_buf_attach_ops (v5.7+)
 */
export interface dma_buf_attach_ops {
  readonly allow_peer2peer: boolean;
  /** Called by the exporter with the reservation held, before the backing store moves. */
  move_notify(attach: dma_buf_attachment): Op<void>;
}

/**
 * struct dma_buf_attachment.
 * @kernel include/linux/dma-buf.h:struct dma_buf_attachment (all versions)
 */
export interface dma_buf_attachment {
  readonly dmabuf: dma_buf;
  readonly dev: device;
  readonly importer_ops: dma_buf_attach_ops | null;
  readonly importer_priv: unknown;
  peer2peer: boolean;
  /** The cached mapping (v5.7-v6.16, static/dynamic mismatch). */
  sgt: sg_table | null;
  dir: number;
  /** Exporter-private data. */
  priv: unknown;
}

/** struct dma_buf_export_info. */
export interface dma_buf_export_info {
  readonly exp_name: string;
  readonly ops: dma_buf_ops;
  readonly size: number;
  readonly flags: number;
  readonly resv: dma_resv | null;
  readonly priv: unknown;
}

/**
 * struct dma_buf.
 * @kernel include/linux/dma-buf.h:struct dma_buf (all versions)
 */
export class dma_buf {
  readonly attachments: dma_buf_attachment[] = [];
  file!: file;
  constructor(
    readonly size: number,
    readonly ops: dma_buf_ops,
    readonly priv: unknown,
    readonly exp_name: string,
    readonly resv: dma_resv,
  ) {}
}

/**
 * dma_buf_is_dynamic(dmabuf): the exporter can move the buffer (has ->pin).
 * @kernel include/linux/dma-buf.h:dma_buf_is_dynamic (v5.7+)
 */
export function dma_buf_is_dynamic(dmabuf: dma_buf): boolean {
  return !!dmabuf.ops.pin;
}

/** dma_buf_attachment_is_dynamic(attach): the importer has importer_ops. */
export function dma_buf_attachment_is_dynamic(attach: dma_buf_attachment): boolean {
  return !!attach.importer_ops;
}

function move_notify_enabled(): boolean {
  return currentKernel().config.CONFIG_DMABUF_MOVE_NOTIFY === true;
}

/**
 * dma_buf_pin_on_map(attach): the exporter pins at map time: it can pin, and the importer
 * cannot take move notifications (static, or CONFIG_DMABUF_MOVE_NOTIFY=n).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_pin_on_map (v6.17+, de68b17d5d07); before it,
 *   dma_buf_map_attachment pinned dynamic exporters when !CONFIG_DMABUF_MOVE_NOTIFY and
 *   static importers were pinned at attach time.
 */
function dma_buf_pin_on_map(attach: dma_buf_attachment): boolean {
  if (since(6, 17)) {
    return (
      !!attach.dmabuf.ops.pin && (!dma_buf_attachment_is_dynamic(attach) || !move_notify_enabled())
    );
  }
  return dma_buf_is_dynamic(attach.dmabuf) && !move_notify_enabled();
}

/** dma_buf_fops: release drops the exporter's buffer. */
export const dma_buf_fops: file_operations = {
  name: 'dma_buf_fops',
  release: dma_buf_file_release,
};

/**
 * dma_buf_release: the dma-buf file's last reference: ->release; WARN if attachments
 * are left.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_release, dma_buf_file_release (all versions)
 */
function dma_buf_file_release(_i: inode, f: file): void {
  const dmabuf = f.private_data as dma_buf;
  dmabuf.ops.release(dmabuf);
  WARN_ON(dmabuf.attachments.length !== 0);
}

/** is_dma_buf_file(file). @kernel drivers/dma-buf/dma-buf.c:is_dma_buf_file (all versions) */
export function is_dma_buf_file(f: file): boolean {
  return f.f_op === dma_buf_fops;
}

/**
 * dma_buf_export(exp_info): wraps the exporter's buffer in a dma_buf with an anonymous
 * file. The ops must have map/unmap/release (WARN, -EINVAL) and both or neither of
 * pin/unpin (WARN, -EINVAL). Without exp_info->resv the dma-buf gets its own.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_export (all versions; pin/unpin check v5.7+)
 * Return: the dma_buf or -errno.
 */
export function dma_buf_export(exp_info: dma_buf_export_info): ErrOr<dma_buf> {
  const ops = exp_info.ops;
  if (WARN_ON(!exp_info.priv || !ops || !ops.map_dma_buf || !ops.unmap_dma_buf || !ops.release))
    return -EINVAL;
  if (WARN_ON(!ops.pin !== !ops.unpin)) return -EINVAL;
  const resv = exp_info.resv ?? dma_resv_init(`dmabuf${currentKernel().nextId('dma_buf')}`);
  const dmabuf = new dma_buf(exp_info.size, ops, exp_info.priv, exp_info.exp_name, resv);
  dmabuf.file = anon_inode_getfile('dmabuf', dma_buf_fops, dmabuf, exp_info.flags | O_RDWR);
  return dmabuf;
}

/**
 * dma_buf_fd(dmabuf, flags): a descriptor of current for the dma-buf's file (the
 * descriptor takes the caller's reference).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_fd (all versions)
 * Return: the descriptor or -errno.
 */
export function* dma_buf_fd(dmabuf: dma_buf | null, flags: number): Op<number> {
  if (!dmabuf || !dmabuf.file) return -EINVAL;
  const fd = yield* get_unused_fd_flags(flags);
  if (fd < 0) return fd;
  yield* fd_install(fd, dmabuf.file);
  return fd;
}

/**
 * dma_buf_get(fd): the dma_buf of current's descriptor, with a file reference.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_get (all versions)
 * Return: the dma_buf, -EBADF, or -EINVAL for a file that is not a dma-buf.
 */
export function* dma_buf_get(fd: number): Op<ErrOr<dma_buf>> {
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  if (!is_dma_buf_file(f)) {
    fput(f);
    return -EINVAL;
  }
  return f.private_data as dma_buf;
}

/**
 * dma_buf_put(dmabuf): drops a file reference (the last one releases the buffer).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_put (all versions)
 */
export function dma_buf_put(dmabuf: dma_buf): void {
  if (WARN_ON(!dmabuf || !dmabuf.file)) return;
  fput(dmabuf.file);
}

/** get_dma_buf(dmabuf): takes a file reference. @kernel include/linux/dma-buf.h:get_dma_buf (all versions) */
export function get_dma_buf(dmabuf: dma_buf): void {
  dmabuf.file.f_count++;
}

/**
 * dma_buf_dynamic_attach(dmabuf, dev, importer_ops, importer_priv): adds dev's attachment.
 * importer_ops without move_notify is a WARN and -EINVAL. ->attach runs without the
 * reservation; the list is changed under it. v5.7-v6.16: when exactly one side is
 * dynamic, the mapping is made now (DMA_BIDIRECTIONAL) and cached, pinning a dynamic
 * exporter first (so a static importer keeps the buffer pinned until detach).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_dynamic_attach (v5.7+; attach-time mapping
 *   removed in v6.17 by de68b17d5d07)
 * Locking: reservation not held on entry; taken inside.
 * Return: the attachment or -errno.
 */
export function* dma_buf_dynamic_attach(
  dmabuf: dma_buf,
  dev: device,
  importer_ops: dma_buf_attach_ops | null,
  importer_priv: unknown,
): Op<ErrOr<dma_buf_attachment>> {
  if (WARN_ON(!dmabuf || !dev)) return -EINVAL;
  if (WARN_ON(!!importer_ops && !importer_ops.move_notify)) return -EINVAL;
  const attach: dma_buf_attachment = {
    dmabuf,
    dev,
    importer_ops,
    importer_priv,
    peer2peer: importer_ops ? importer_ops.allow_peer2peer : false,
    sgt: null,
    dir: DMA_BIDIRECTIONAL,
    priv: null,
  };
  if (dmabuf.ops.attach) {
    const ret = yield* dmabuf.ops.attach(dmabuf, attach);
    if (ret) return ret;
  }
  yield* dma_resv_lock(dmabuf.resv, null);
  dmabuf.attachments.unshift(attach); /* list_add */
  yield* dma_resv_unlock(dmabuf.resv);

  if (!since(6, 17) && dma_buf_attachment_is_dynamic(attach) !== dma_buf_is_dynamic(dmabuf)) {
    /*
     * When either the importer or the exporter can't handle dynamic
     * mappings we cache the mapping here to avoid issues with the
     * reservation object lock.
     */
    yield* dma_resv_lock(dmabuf.resv, null);
    let ret = 0;
    if (dma_buf_is_dynamic(dmabuf)) ret = yield* dmabuf.ops.pin!(attach);
    if (!ret) {
      const sgt = yield* dmabuf.ops.map_dma_buf(attach, DMA_BIDIRECTIONAL);
      if (IS_ERR(sgt)) {
        ret = sgt;
        if (dma_buf_is_dynamic(dmabuf)) yield* dmabuf.ops.unpin!(attach);
      } else {
        attach.sgt = sgt;
        attach.dir = DMA_BIDIRECTIONAL;
      }
    }
    yield* dma_resv_unlock(dmabuf.resv);
    if (ret) {
      yield* dma_buf_detach(dmabuf, attach);
      return ret;
    }
  }
  return attach;
}

/**
 * dma_buf_attach(dmabuf, dev): a static attachment (no move notifications).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_attach (all versions)
 * Return: the attachment or -errno.
 */
export function dma_buf_attach(dmabuf: dma_buf, dev: device): Op<ErrOr<dma_buf_attachment>> {
  return dma_buf_dynamic_attach(dmabuf, dev, null, null);
}

/**
 * dma_buf_detach(dmabuf, attach): removes the attachment; a cached mapping (v5.7-v6.16)
 * is unmapped and a pinned exporter unpinned first; then ->detach.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_detach (all versions)
 * Locking: reservation not held on entry; taken inside.
 */
export function* dma_buf_detach(dmabuf: dma_buf, attach: dma_buf_attachment): Op<void> {
  if (WARN_ON(!dmabuf || !attach || dmabuf !== attach.dmabuf)) return;
  yield* dma_resv_lock(dmabuf.resv, null);
  if (attach.sgt) {
    yield* dmabuf.ops.unmap_dma_buf(attach, attach.sgt, attach.dir);
    if (dma_buf_is_dynamic(dmabuf)) yield* dmabuf.ops.unpin!(attach);
    attach.sgt = null;
  }
  const i = dmabuf.attachments.indexOf(attach);
  if (i >= 0) dmabuf.attachments.splice(i, 1);
  yield* dma_resv_unlock(dmabuf.resv);
  if (dmabuf.ops.detach) yield* dmabuf.ops.detach(dmabuf, attach);
}

/**
 * dma_buf_pin(attach): a dynamic importer keeps the buffer in place (WARN for a static
 * attachment), through ->pin.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_pin (v5.7+)
 * Locking: reservation held.
 * Return: 0 or the exporter's -errno.
 */
export function* dma_buf_pin(attach: dma_buf_attachment): Op<number> {
  const dmabuf = attach.dmabuf;
  WARN_ON(!attach.importer_ops);
  dma_resv_assert_held(dmabuf.resv);
  if (dmabuf.ops.pin) return yield* dmabuf.ops.pin(attach);
  return 0;
}

/**
 * dma_buf_unpin(attach): undoes dma_buf_pin; the exporter may move the buffer again.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_unpin (v5.7+)
 * Locking: reservation held.
 */
export function* dma_buf_unpin(attach: dma_buf_attachment): Op<void> {
  const dmabuf = attach.dmabuf;
  WARN_ON(!attach.importer_ops);
  dma_resv_assert_held(dmabuf.resv);
  if (dmabuf.ops.unpin) yield* dmabuf.ops.unpin(attach);
}

/**
 * dma_buf_map_attachment(attach, direction): the sg_table of DMA addresses of the buffer
 * for attach->dev. Before v6.17 a cached mapping is returned as is. The exporter is pinned
 * first when the importer cannot take move notifications (dma_buf_pin_on_map; WARN_ON_ONCE
 * on -EBUSY from v6.17); a failed map unpins again.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_map_attachment (all versions; reservation
 *   held for every caller from v6.2, for dynamic attachments before)
 * Locking: reservation held (see above).
 * Return: the table or -errno.
 */
export function* dma_buf_map_attachment(
  attach: dma_buf_attachment,
  direction: number,
): Op<ErrOr<sg_table>> {
  if (WARN_ON(!attach || !attach.dmabuf)) return -EINVAL;
  const dmabuf = attach.dmabuf;
  if (since(6, 2) || dma_buf_attachment_is_dynamic(attach)) dma_resv_assert_held(dmabuf.resv);
  if (!since(6, 17) && attach.sgt) {
    /* Two mappings with different directions for the same attachment are not allowed. */
    if (attach.dir !== direction && attach.dir !== DMA_BIDIRECTIONAL) return -EBUSY;
    return attach.sgt;
  }
  const pin = dma_buf_pin_on_map(attach);
  if (pin) {
    const ret = yield* dmabuf.ops.pin!(attach);
    if (since(6, 17)) WARN_ON_ONCE(ret === -EBUSY, 'dma_buf_map_attachment: -EBUSY pin');
    if (ret) return ret;
  }
  let sg = yield* dmabuf.ops.map_dma_buf(attach, direction);
  if (sg === null) sg = -ENOMEM;
  if (IS_ERR(sg)) {
    if (pin) yield* dmabuf.ops.unpin!(attach);
    return sg;
  }
  return sg;
}

/**
 * dma_buf_map_attachment_unlocked(attach, direction): takes the reservation around
 * dma_buf_map_attachment.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_map_attachment_unlocked (v6.2+; before, static
 *   importers called dma_buf_map_attachment without the lock)
 * Return: the table or -errno.
 */
export function* dma_buf_map_attachment_unlocked(
  attach: dma_buf_attachment,
  direction: number,
): Op<ErrOr<sg_table>> {
  if (WARN_ON(!attach || !attach.dmabuf)) return -EINVAL;
  if (!since(6, 2)) return yield* dma_buf_map_attachment(attach, direction);
  yield* dma_resv_lock(attach.dmabuf.resv, null);
  const sg = yield* dma_buf_map_attachment(attach, direction);
  yield* dma_resv_unlock(attach.dmabuf.resv);
  return sg;
}

/**
 * dma_buf_unmap_attachment(attach, sg_table, direction): gives a mapping back (not the
 * cached one before v6.17); unpins what map pinned.
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_unmap_attachment (all versions)
 * Locking: as dma_buf_map_attachment.
 */
export function* dma_buf_unmap_attachment(
  attach: dma_buf_attachment,
  sg: sg_table,
  direction: number,
): Op<void> {
  if (WARN_ON(!attach || !attach.dmabuf || !sg)) return;
  const dmabuf = attach.dmabuf;
  if (since(6, 2) || dma_buf_attachment_is_dynamic(attach)) dma_resv_assert_held(dmabuf.resv);
  if (!since(6, 17) && attach.sgt === sg) return;
  yield* dmabuf.ops.unmap_dma_buf(attach, sg, direction);
  if (dma_buf_pin_on_map(attach)) yield* dmabuf.ops.unpin!(attach);
}

/**
 * dma_buf_unmap_attachment_unlocked(attach, sg_table, direction).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_unmap_attachment_unlocked (v6.2+)
 */
export function* dma_buf_unmap_attachment_unlocked(
  attach: dma_buf_attachment,
  sg: sg_table,
  direction: number,
): Op<void> {
  if (!since(6, 2)) return yield* dma_buf_unmap_attachment(attach, sg, direction);
  yield* dma_resv_lock(attach.dmabuf.resv, null);
  yield* dma_buf_unmap_attachment(attach, sg, direction);
  yield* dma_resv_unlock(attach.dmabuf.resv);
}

/**
 * dma_buf_move_notify(dmabuf): the exporter is about to move the buffer: every dynamic
 * importer's ->move_notify runs (they must stop using their mappings).
 * @kernel drivers/dma-buf/dma-buf.c:dma_buf_move_notify (v5.7+)
 * Locking: reservation held by the exporter.
 */
export function* dma_buf_move_notify(dmabuf: dma_buf): Op<void> {
  dma_resv_assert_held(dmabuf.resv);
  for (const attach of [...dmabuf.attachments]) {
    if (attach.importer_ops) yield* attach.importer_ops.move_notify(attach);
  }
}
