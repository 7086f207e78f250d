/**
 * pfncap: a model-only V4L2 capture device (not a kernel driver). A PCI function whose
 * DMA engine writes each captured frame into the next queued USERPTR buffer, the way a
 * frame grabber does, through a videobuf2 queue with the dma-contig allocator (default)
 * or dma-sg (module parameter `dma_sg`). Its ioctls are the V4L2 ones a USERPTR stream
 * uses: VIDIOC_REQBUFS, VIDIOC_QBUF, VIDIOC_DQBUF, VIDIOC_STREAMON, VIDIOC_STREAMOFF; the
 * argument structures are plain objects (v4l2_requestbuffers, v4l2_buffer) and the checks
 * are those of videobuf2-v4l2.c's vb2_reqbufs/vb2_qbuf/vb2_dqbuf (type and memory must
 * match the queue).
 *
 * The device side is pfncap_capture_frame(): the hardware takes the oldest active buffer,
 * DMAs `length` bytes of the frame to its DMA address(es) with dma_engine_access (one
 * Step per page on the frame; through the IOMMU when the device has a DMA domain), then
 * the interrupt handler completes it with vb2_buffer_done. The device never learns that
 * the user's mapping changed: whatever frames the buffer was mapped to at QBUF time are
 * written (R-MMUN-4, R-REV-5).
 *
 * @kernel (model driver) drivers/media/common/videobuf2/videobuf2-v4l2.c:vb2_reqbufs,
 *   vb2_qbuf, vb2_dqbuf, vb2_streamon, vb2_streamoff (argument checks only)
 */
import type { Op } from '../../../../sched/index.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { EINVAL, ENODEV, ENOTTY } from '../../../include/linux/errno.js';
import { DMA_FROM_DEVICE, DMA_BIT_MASK } from '../../../include/linux/dma-direction.js';
import type { file, file_operations, inode } from '../../../include/linux/mm_types.js';
import {
  mutex,
  mutex_lock,
  mutex_unlock,
  spinlock_t,
  spin_lock,
  spin_unlock,
} from '../../../include/linux/spinlock.js';
import { fd_install, get_unused_fd_flags } from '../../../include/linux/fdtable.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import { dma_set_mask_and_coherent } from '../../../kernel/dma/mapping.js';
import { dma_engine_access } from '../../dma/engine.js';
import {
  pci_clear_master,
  pci_disable_device,
  pci_enable_device_mem,
  pci_set_master,
  type pci_dev,
} from '../../pci/pci.js';
import { pci_register_driver, type pci_driver } from '../../pci/pci-driver.js';
import {
  VB2_BUF_STATE_DONE,
  VB2_BUF_STATE_ERROR,
  VB2_MEMORY_USERPTR,
  VB2_USERPTR,
  vb2_buffer_done,
  vb2_core_dqbuf,
  vb2_core_qbuf,
  vb2_core_queue_init,
  vb2_core_queue_release,
  vb2_core_reqbufs,
  vb2_core_streamoff,
  vb2_core_streamon,
  type vb2_buffer,
  type vb2_queue,
} from '../common/videobuf2/videobuf2-core.js';
import {
  vb2_dma_contig_memops,
  vb2_dma_contig_plane_dma_addr,
} from '../common/videobuf2/videobuf2-dma-contig.js';
import { vb2_dma_sg_memops, vb2_dma_sg_plane_desc } from '../common/videobuf2/videobuf2-dma-sg.js';

/** The model device's PCI IDs. */
export const PFNCAP_VENDOR = 0x1b36;
export const PFNCAP_DEVICE = 0x0f1c;

/** enum v4l2_buf_type / v4l2_memory values used. */
export const V4L2_BUF_TYPE_VIDEO_CAPTURE = 1;
export const V4L2_MEMORY_USERPTR = 2;

/** ioctl numbers (include/uapi/linux/videodev2.h, x86-64 sizes). */
export const VIDIOC_REQBUFS = 0xc0145608;
export const VIDIOC_QBUF = 0xc058560f;
export const VIDIOC_DQBUF = 0xc0585611;
export const VIDIOC_STREAMON = 0x40045612;
export const VIDIOC_STREAMOFF = 0x40045613;

/** struct v4l2_requestbuffers (the fields used). */
export interface v4l2_requestbuffers {
  count: number;
  type: number;
  memory: number;
}

/** struct v4l2_buffer (single-planar USERPTR fields). */
export interface v4l2_buffer {
  index: number;
  type: number;
  memory: number;
  m: { userptr: number };
  length: number;
  bytesused?: number;
  /** V4L2_BUF_FLAG_ERROR (0x40) on DQBUF of a failed buffer. */
  flags?: number;
}

/** The driver's per-device state. */
export interface pfncap_dev {
  readonly pdev: pci_dev;
  readonly q: vb2_queue;
  /** The video device lock (vdev->lock) serialising the ioctls. */
  readonly lock: mutex;
  /** The driver's list of buffers the hardware owns, under slock. */
  readonly active: vb2_buffer[];
  readonly slock: spinlock_t;
  /** Frame size in bytes (the format's sizeimage). */
  sizeimage: number;
  /** Frames written by the device. */
  frames: number;
}

interface pfncap_state {
  dma_sg: boolean;
  devs: Map<pci_dev, pfncap_dev>;
  driver: pci_driver | null;
}

function st(): pfncap_state {
  const k = currentKernel();
  return ((k.sub.pfncap as pfncap_state | undefined) ??= {
    dma_sg: false,
    devs: new Map(),
    driver: null,
  });
}

/** Module parameter `dma_sg`: queues use vb2_dma_sg_memops instead of dma-contig. */
export function dma_sg(): boolean {
  return st().dma_sg;
}
/** Sets the `dma_sg` module parameter (affects devices probed afterwards). */
export function set_dma_sg(v: boolean): void {
  st().dma_sg = v;
}

/** The driver state of a bound function, or null. */
export function pfncap_of(pdev: pci_dev): pfncap_dev | null {
  return st().devs.get(pdev) ?? null;
}

const pfncap_qops = {
  queue_setup(q: vb2_queue, _num: { value: number }, sizes: number[]): number {
    sizes.push((q.drv_priv as pfncap_dev).sizeimage);
    return 0;
  },
  *buf_queue(vb: vb2_buffer): Op<void> {
    const cap = vb.vb2_queue.drv_priv as pfncap_dev;
    yield* spin_lock(cap.slock);
    cap.active.push(vb);
    yield* spin_unlock(cap.slock);
  },
  *stop_streaming(q: vb2_queue): Op<void> {
    const cap = q.drv_priv as pfncap_dev;
    yield* spin_lock(cap.slock);
    const bufs = cap.active.splice(0);
    yield* spin_unlock(cap.slock);
    for (const vb of bufs) yield* vb2_buffer_done(vb, VB2_BUF_STATE_ERROR);
  },
};

function* pfncap_ioctl(filp: file, cmd: number, arg: unknown): Op<number> {
  const cap = filp.private_data as pfncap_dev;
  const q = cap.q;
  yield* mutex_lock(cap.lock);
  let ret: number;
  switch (cmd) {
    case VIDIOC_REQBUFS: {
      const r = arg as v4l2_requestbuffers;
      if (r.type !== q.type) ret = -EINVAL;
      else {
        const count = { value: r.count };
        ret = yield* vb2_core_reqbufs(q, r.memory, count);
        if (!ret) r.count = count.value;
      }
      break;
    }
    case VIDIOC_QBUF: {
      const b = arg as v4l2_buffer;
      // vb2_queue_or_prepare_buf: type and memory must match the queue.
      if (b.type !== q.type || b.memory !== q.memory) ret = -EINVAL;
      else ret = yield* vb2_core_qbuf(q, b.index, [{ userptr: b.m.userptr, length: b.length }]);
      break;
    }
    case VIDIOC_DQBUF: {
      const b = arg as v4l2_buffer;
      if (b.type !== q.type) ret = -EINVAL;
      else {
        const r = yield* vb2_core_dqbuf(q, (filp.f_flags & 0o4000) !== 0 /* O_NONBLOCK */);
        ret = r.ret;
        if (!ret) {
          b.index = r.index;
          b.bytesused = r.bytesused;
          b.memory = VB2_MEMORY_USERPTR;
          b.m = { userptr: q.bufs[r.index]!.planes[0]!.m.userptr };
          b.length = q.bufs[r.index]!.planes[0]!.length;
          b.flags = r.error ? 0x40 : 0;
        }
      }
      break;
    }
    case VIDIOC_STREAMON:
      ret = yield* vb2_core_streamon(q, arg as number);
      break;
    case VIDIOC_STREAMOFF:
      ret = yield* vb2_core_streamoff(q, arg as number);
      break;
    default:
      ret = -ENOTTY;
  }
  yield* mutex_unlock(cap.lock);
  return ret;
}

function* pfncap_release(_i: inode, filp: file): Op<void> {
  const cap = filp.private_data as pfncap_dev;
  yield* mutex_lock(cap.lock);
  yield* vb2_core_queue_release(cap.q);
  yield* mutex_unlock(cap.lock);
}

export const pfncap_fops: file_operations = {
  name: 'pfncap_fops',
  unlocked_ioctl: pfncap_ioctl,
  release: pfncap_release,
};

function* pfncap_probe(pdev: pci_dev): Op<number> {
  let ret = yield* pci_enable_device_mem(pdev);
  if (ret) return ret;
  yield* pci_set_master(pdev);
  ret = dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(32));
  if (ret) return ret;
  const cap = {
    pdev,
    lock: new mutex(`pfncap[${pdev.name}].lock`),
    active: [],
    slock: new spinlock_t(`pfncap[${pdev.name}].slock`),
    sizeimage: 4096,
    frames: 0,
  } as unknown as pfncap_dev;
  (cap as { q: vb2_queue }).q = vb2_core_queue_init({
    name: `pfncap[${pdev.name}].vb2`,
    type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
    io_modes: VB2_USERPTR,
    dev: pdev,
    dma_dir: DMA_FROM_DEVICE,
    mem_ops: st().dma_sg ? vb2_dma_sg_memops : vb2_dma_contig_memops,
    ops: pfncap_qops,
    drv_priv: cap,
  });
  pdev.driver_data = cap;
  st().devs.set(pdev, cap);
  return 0;
}

function* pfncap_remove(pdev: pci_dev): Op<void> {
  st().devs.delete(pdev);
  yield* pci_clear_master(pdev);
  yield* pci_disable_device(pdev);
}

/**
 * Registers the pfncap PCI driver (binds every pfncap function present).
 * Return: 0 or -errno.
 */
export function* pfncap_init(): Op<number> {
  const s = st();
  s.driver ??= {
    name: 'pfncap',
    id_table: [{ vendor: PFNCAP_VENDOR, device: PFNCAP_DEVICE }],
    probe: pfncap_probe,
    remove: pfncap_remove,
  };
  return yield* pci_register_driver(s.driver);
}

/**
 * Opens the device's video node as the current task (/dev/videoN): a new descriptor.
 * Return: the fd, or -ENODEV when no pfncap driver is bound to pdev.
 */
export function* pfncap_open(pdev: pci_dev, flags = O_RDWR): Op<number> {
  const cap = pfncap_of(pdev);
  if (!cap) return -ENODEV;
  const fd = yield* get_unused_fd_flags(flags);
  if (fd < 0) return fd;
  const i = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  const f = alloc_file(`/dev/video-${pdev.name}`, flags, i, pfncap_fops);
  f.private_data = cap;
  yield* fd_install(fd, f);
  return fd;
}

/**
 * The hardware captures one frame: the oldest buffer the driver gave it is filled with
 * `length` bytes of `pattern` (repeated) by DMA, then completed (DONE, or ERROR when the
 * DMA failed). dma-contig buffers are written at their one DMA address; dma-sg buffers
 * segment by segment.
 * Return: the DMA result (0, -EFAULT IOMMU fault, -EIO no bus mastering), or -ENODATA
 *   (-61) when no buffer is queued.
 */
export function* pfncap_capture_frame(cap: pfncap_dev, pattern: number): Op<number> {
  yield* spin_lock(cap.slock);
  const vb = cap.active.shift();
  yield* spin_unlock(cap.slock);
  if (!vb) return -61;
  const plane = vb.planes[0]!;
  const len = Math.min(plane.length, cap.sizeimage);
  const data = new Uint8Array(len).fill(pattern);
  let ret = 0;
  if (cap.q.mem_ops === vb2_dma_sg_memops) {
    const sgt = vb2_dma_sg_plane_desc(vb, 0);
    let done = 0;
    for (let i = 0; i < sgt.nents && done < len && !ret; i++) {
      const s = sgt.sgl[i]!;
      const n = Math.min(s.dma_length, len - done);
      const r = yield* dma_engine_access(cap.pdev, s.dma_address, n, 'write', data.subarray(done));
      ret = r.ret;
      done += r.done;
    }
  } else {
    const addr = vb2_dma_contig_plane_dma_addr(vb, 0);
    ret = (yield* dma_engine_access(cap.pdev, addr, len, 'write', data)).ret;
  }
  plane.bytesused = ret ? 0 : len;
  cap.frames++;
  yield* vb2_buffer_done(vb, ret ? VB2_BUF_STATE_ERROR : VB2_BUF_STATE_DONE);
  return ret;
}
