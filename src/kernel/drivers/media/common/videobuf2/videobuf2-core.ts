/**
 * The videobuf2 core (videobuf2-core.c), reduced to what a USERPTR capture stream needs:
 * REQBUFS (allocating and freeing vb2_buffer structures), QBUF with __prepare_userptr
 * (the allocator's get_userptr pins or looks up the user's frames), STREAMON/STREAMOFF,
 * the driver's vb2_buffer_done, and DQBUF. The user memory is acquired at QBUF and kept
 * across DQBUF: it is given back (put_userptr) only when the same buffer is queued with
 * another address or length, or when the buffers are freed (REQBUFS 0). For a whole
 * stream the device writes into whatever those frames are (R-MMUN-4: "userptr buffers
 * must stay available and in place for a whole stream").
 *
 * Left out: MMAP and DMABUF memory, multi-planar formats beyond the plane array, requests,
 * fileio (read/write emulation), poll, buf_init/buf_prepare/buf_cleanup/buf_finish queue
 * ops, the memops prepare/finish cache syncs (x86 is coherent), timestamps and
 * sequence numbers, min_buffers_needed other than 0, CREATE_BUFS, wait_prepare/
 * wait_finish. The V4L2 ioctl layer (videobuf2-v4l2.c) is reduced to the argument checks
 * the model's capture driver does itself (drivers/media/pfncap/).
 *
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c, include/media/videobuf2-core.h
 *   (v5.7+)
 */
import type { Op } from '../../../../../sched/index.js';
import { EAGAIN, EBUSY, EINVAL, IS_ERR, type ErrOr } from '../../../../include/linux/errno.js';
import { spinlock_t, spin_lock, spin_unlock } from '../../../../include/linux/spinlock.js';
import { pr_debug } from '../../../../kernel/printk.js';
import { WARN_ON } from '../../../../kernel/panic.js';
import type { device } from '../../../base/core.js';

/** enum vb2_memory */
export const VB2_MEMORY_UNKNOWN = 0;
export const VB2_MEMORY_MMAP = 1;
export const VB2_MEMORY_USERPTR = 2;
export const VB2_MEMORY_DMABUF = 4;

/** enum vb2_io_modes */
export const VB2_MMAP = 1 << 0;
export const VB2_USERPTR = 1 << 1;
export const VB2_READ = 1 << 2;
export const VB2_WRITE = 1 << 3;
export const VB2_DMABUF = 1 << 4;

/** enum vb2_buffer_state */
export const VB2_BUF_STATE_DEQUEUED = 0;
export const VB2_BUF_STATE_IN_REQUEST = 1;
export const VB2_BUF_STATE_PREPARING = 2;
export const VB2_BUF_STATE_QUEUED = 3;
export const VB2_BUF_STATE_ACTIVE = 4;
export const VB2_BUF_STATE_DONE = 5;
export const VB2_BUF_STATE_ERROR = 6;

/** VB2_MAX_FRAME (64 from v5.x; 32 in older kernels). */
export const VB2_MAX_FRAME = 64;
export const VB2_MAX_PLANES = 8;

/**
 * struct vb2_mem_ops, the USERPTR part: get_userptr acquires the user range for the
 * device (an ERR_PTR as -errno), put_userptr gives it back, cookie is the allocator's
 * handle for the driver (a DMA address or an sg_table).
 * @kernel include/media/videobuf2-core.h:struct vb2_mem_ops (v5.7+; get_userptr took
 *   (dev, vaddr, size, dma_dir) until the `vb` argument was added — the model passes vb
 *   in every version and reads the direction from its queue)
 */
export interface vb2_mem_ops {
  readonly name: string;
  get_userptr(vb: vb2_buffer, dev: device, vaddr: number, size: number): Op<ErrOr<unknown>>;
  put_userptr(buf_priv: unknown): Op<void>;
  cookie(vb: vb2_buffer, buf_priv: unknown): unknown;
}

/**
 * struct vb2_ops, the part the model calls.
 * @kernel include/media/videobuf2-core.h:struct vb2_ops (v5.7+)
 */
export interface vb2_ops {
  /** Number of planes and their sizes for `num_buffers` buffers. Return: 0 or -errno. */
  queue_setup(q: vb2_queue, num_buffers: { value: number }, sizes: number[]): number;
  /** Give a buffer to the driver (the device will fill it). */
  buf_queue(vb: vb2_buffer): Op<void>;
  start_streaming?(q: vb2_queue, count: number): Op<number>;
  /** Must give back every buffer the driver owns (vb2_buffer_done). */
  stop_streaming?(q: vb2_queue): Op<void>;
}

/** struct vb2_plane (USERPTR fields). @kernel include/media/videobuf2-core.h:struct vb2_plane (v5.7+) */
export interface vb2_plane {
  mem_priv: unknown;
  bytesused: number;
  length: number;
  min_length: number;
  m: { userptr: number };
  data_offset: number;
}

/** struct vb2_buffer. @kernel include/media/videobuf2-core.h:struct vb2_buffer (v5.7+) */
export interface vb2_buffer {
  readonly vb2_queue: vb2_queue;
  readonly index: number;
  readonly type: number;
  readonly memory: number;
  readonly num_planes: number;
  readonly planes: vb2_plane[];
  state: number;
}

/**
 * struct vb2_queue (the fields the model uses).
 * @kernel include/media/videobuf2-core.h:struct vb2_queue (v5.7+)
 */
export interface vb2_queue {
  type: number;
  io_modes: number;
  dev: device;
  /** DMA_FROM_DEVICE for capture (set by vb2_queue_init from the type). */
  dma_dir: number;
  mem_ops: vb2_mem_ops;
  ops: vb2_ops;
  drv_priv: unknown;
  memory: number;
  bufs: (vb2_buffer | null)[];
  num_buffers: number;
  queued_list: vb2_buffer[];
  queued_count: number;
  owned_by_drv_count: number;
  done_list: vb2_buffer[];
  /** done_lock: the driver's interrupt path and DQBUF meet on it. */
  readonly done_lock: spinlock_t;
  streaming: boolean;
  start_streaming_called: boolean;
  error: boolean;
  /** Model: a name for Steps and messages. */
  readonly name: string;
}

/**
 * vb2_core_queue_init(q): a fresh queue. The caller fills type, io_modes, dev, mem_ops,
 * ops, drv_priv and dma_dir.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_queue_init (v5.7+)
 * Return: the queue.
 */
export function vb2_core_queue_init(init: {
  name: string;
  type: number;
  io_modes: number;
  dev: device;
  dma_dir: number;
  mem_ops: vb2_mem_ops;
  ops: vb2_ops;
  drv_priv?: unknown;
}): vb2_queue {
  return {
    ...init,
    drv_priv: init.drv_priv ?? null,
    memory: VB2_MEMORY_UNKNOWN,
    bufs: new Array<vb2_buffer | null>(VB2_MAX_FRAME).fill(null),
    num_buffers: 0,
    queued_list: [],
    queued_count: 0,
    owned_by_drv_count: 0,
    done_list: [],
    done_lock: new spinlock_t(`${init.name}.done_lock`),
    streaming: false,
    start_streaming_called: false,
    error: false,
  };
}

function dprintk(q: vb2_queue, msg: string): void {
  pr_debug(`${q.name}: ${msg}`);
}

/**
 * __vb2_buf_userptr_put(vb): gives back every plane's user memory.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:__vb2_buf_userptr_put (v5.7+)
 */
function* __vb2_buf_userptr_put(vb: vb2_buffer): Op<void> {
  for (const p of vb.planes) {
    if (p.mem_priv) yield* vb.vb2_queue.mem_ops.put_userptr(p.mem_priv);
    p.mem_priv = null;
  }
}

/**
 * __vb2_queue_free(q, buffers): frees the last `buffers` buffers, giving back their user
 * memory.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:__vb2_queue_free (v5.7+)
 */
function* __vb2_queue_free(q: vb2_queue, buffers: number): Op<void> {
  for (let i = q.num_buffers - buffers; i < q.num_buffers; i++) {
    const vb = q.bufs[i];
    if (vb && q.memory === VB2_MEMORY_USERPTR) yield* __vb2_buf_userptr_put(vb);
    q.bufs[i] = null;
  }
  q.num_buffers -= buffers;
  if (!q.num_buffers) q.memory = VB2_MEMORY_UNKNOWN;
}

/**
 * __vb2_queue_cancel(q): stops streaming: the driver's stop_streaming, then every buffer
 * still owned by the driver is taken back (WARN: the driver should have returned them),
 * the queued and done lists are emptied and every buffer is dequeued. User memory stays
 * acquired.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:__vb2_queue_cancel (v5.7+)
 */
function* __vb2_queue_cancel(q: vb2_queue): Op<void> {
  if (q.start_streaming_called && q.ops.stop_streaming) yield* q.ops.stop_streaming(q);
  if (WARN_ON(q.owned_by_drv_count !== 0)) {
    for (let i = 0; i < q.num_buffers; i++) {
      const vb = q.bufs[i]!;
      if (vb.state === VB2_BUF_STATE_ACTIVE) yield* vb2_buffer_done(vb, VB2_BUF_STATE_ERROR);
    }
  }
  q.streaming = false;
  q.start_streaming_called = false;
  q.queued_list.length = 0;
  q.queued_count = 0;
  q.error = false;
  q.done_list.length = 0;
  for (let i = 0; i < q.num_buffers; i++) q.bufs[i]!.state = VB2_BUF_STATE_DEQUEUED;
}

/**
 * vb2_core_reqbufs(q, memory, count): frees all buffers (count 0) or allocates `count`
 * buffer structures of `memory` type, as many as queue_setup allows (at most
 * VB2_MAX_FRAME). USERPTR buffers get no memory here.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_reqbufs,
 *   __vb2_queue_alloc (v5.7+)
 * Locking: the caller's queue lock.
 * Return: 0 (count updated in `count.value`) or -EBUSY (streaming) / -EINVAL.
 */
export function* vb2_core_reqbufs(
  q: vb2_queue,
  memory: number,
  count: { value: number },
): Op<number> {
  if (q.streaming) {
    dprintk(q, 'streaming active');
    return -EBUSY;
  }
  if (memory !== VB2_MEMORY_USERPTR || !(q.io_modes & VB2_USERPTR)) return -EINVAL;
  if (q.num_buffers) {
    // Call queue_cancel to clean up any buffers in the QUEUED state which is possible if
    // buffers were prepared or queued without ever calling STREAMON.
    yield* __vb2_queue_cancel(q);
    yield* __vb2_queue_free(q, q.num_buffers);
  }
  if (count.value === 0) return 0;
  const num = { value: Math.min(count.value, VB2_MAX_FRAME) };
  const sizes: number[] = [];
  const ret = q.ops.queue_setup(q, num, sizes);
  if (ret) return ret;
  q.memory = memory;
  for (let i = 0; i < num.value; i++) {
    q.bufs[i] = {
      vb2_queue: q,
      index: i,
      type: q.type,
      memory,
      num_planes: sizes.length,
      planes: sizes.map((s) => ({
        mem_priv: null,
        bytesused: 0,
        length: 0,
        min_length: s,
        m: { userptr: 0 },
        data_offset: 0,
      })),
      state: VB2_BUF_STATE_DEQUEUED,
    };
  }
  q.num_buffers = num.value;
  count.value = num.value;
  return 0;
}

/** One plane as QBUF gives it (struct v4l2_buffer's m.userptr and length). */
export interface vb2_userptr_plane {
  readonly userptr: number;
  readonly length: number;
}

/**
 * __prepare_userptr(vb, planes): (re)acquires the user memory of each plane whose address
 * or length changed: put_userptr of the old, get_userptr of the new. A plane shorter than
 * the format needs is -EINVAL. On an error every acquired plane is given back.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:__prepare_userptr (v5.7+)
 * Return: 0 or -errno (get_userptr's).
 */
function* __prepare_userptr(vb: vb2_buffer, planes: readonly vb2_userptr_plane[]): Op<number> {
  const q = vb.vb2_queue;
  let ret: number;
  err: {
    for (let plane = 0; plane < vb.num_planes; ++plane) {
      const want = planes[plane]!;
      const p = vb.planes[plane]!;
      // Skip the plane if already verified
      if (p.m.userptr && p.m.userptr === want.userptr && p.length === want.length) continue;
      dprintk(q, `userspace address for plane ${plane} changed, reacquiring memory`);
      // Check if the provided plane buffer is large enough
      if (want.length < p.min_length) {
        dprintk(
          q,
          `provided buffer size ${want.length} is less than setup size ${p.min_length} for plane ${plane}`,
        );
        ret = -EINVAL;
        break err;
      }
      // Release previously acquired memory if present
      if (p.mem_priv) yield* q.mem_ops.put_userptr(p.mem_priv);
      p.mem_priv = null;
      p.bytesused = 0;
      p.length = 0;
      p.m.userptr = 0;
      p.data_offset = 0;
      // Acquire each plane's memory
      const mem_priv = yield* q.mem_ops.get_userptr(vb, q.dev, want.userptr, want.length);
      if (IS_ERR(mem_priv)) {
        dprintk(q, `failed acquiring userspace memory for plane ${plane}`);
        ret = mem_priv;
        break err;
      }
      p.mem_priv = mem_priv;
    }
    // Now that everything is in order, copy relevant information provided by userspace.
    for (let plane = 0; plane < vb.num_planes; ++plane) {
      const p = vb.planes[plane]!;
      p.length = planes[plane]!.length;
      p.m.userptr = planes[plane]!.userptr;
    }
    return 0;
  }
  // In case of errors, release planes that were already acquired
  for (const p of vb.planes) {
    if (p.mem_priv) yield* q.mem_ops.put_userptr(p.mem_priv);
    p.mem_priv = null;
    p.m.userptr = 0;
    p.length = 0;
  }
  return ret;
}

/**
 * __enqueue_in_driver(vb): the buffer becomes the driver's (buf_queue).
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:__enqueue_in_driver (v5.7+)
 */
function* __enqueue_in_driver(vb: vb2_buffer): Op<void> {
  const q = vb.vb2_queue;
  vb.state = VB2_BUF_STATE_ACTIVE;
  q.owned_by_drv_count++;
  yield* q.ops.buf_queue(vb);
}

/**
 * vb2_start_streaming(q): gives every queued buffer to the driver and calls
 * start_streaming; on failure the buffers come back as queued.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_start_streaming (v5.7+)
 * Return: 0 or the driver's -errno.
 */
function* vb2_start_streaming(q: vb2_queue): Op<number> {
  for (const vb of q.queued_list) yield* __enqueue_in_driver(vb);
  q.start_streaming_called = true;
  const ret = q.ops.start_streaming ? yield* q.ops.start_streaming(q, q.queued_count) : 0;
  if (!ret) return 0;
  q.start_streaming_called = false;
  for (const vb of q.queued_list)
    if (vb.state === VB2_BUF_STATE_ACTIVE) vb.state = VB2_BUF_STATE_QUEUED;
  q.owned_by_drv_count = 0;
  return ret;
}

/**
 * vb2_core_qbuf(q, index, planes): prepares the buffer (USERPTR: __prepare_userptr) and
 * queues it; while streaming it goes to the driver at once.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_qbuf, __buf_prepare
 *   (v5.7+)
 * Locking: the caller's queue lock.
 * Return: 0 or -errno (-EINVAL for a bad index or state, -EIO after a queue error,
 *   get_userptr's error).
 */
export function* vb2_core_qbuf(
  q: vb2_queue,
  index: number,
  planes: readonly vb2_userptr_plane[],
): Op<number> {
  if (q.error) {
    dprintk(q, 'fatal error occurred on queue');
    return -5; // -EIO
  }
  const vb = index >= 0 && index < q.num_buffers ? q.bufs[index] : null;
  if (!vb) {
    dprintk(q, 'buffer index out of range');
    return -EINVAL;
  }
  if (vb.state !== VB2_BUF_STATE_DEQUEUED) {
    dprintk(q, `invalid buffer state ${vb.state}`);
    return -EINVAL;
  }
  vb.state = VB2_BUF_STATE_PREPARING;
  const ret = yield* __prepare_userptr(vb, planes);
  if (ret) {
    dprintk(q, `buffer preparation failed: ${ret}`);
    vb.state = VB2_BUF_STATE_DEQUEUED;
    return ret;
  }
  q.queued_list.push(vb);
  q.queued_count++;
  vb.state = VB2_BUF_STATE_QUEUED;
  if (q.start_streaming_called) yield* __enqueue_in_driver(vb);
  if (q.streaming && !q.start_streaming_called) {
    const r = yield* vb2_start_streaming(q);
    if (r) return r;
  }
  return 0;
}

/**
 * vb2_buffer_done(vb, state): the driver hands a filled (DONE) or failed (ERROR) buffer
 * back; it moves to the done list for DQBUF.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_buffer_done (v5.7+)
 * Locking: takes q->done_lock (interrupt context in drivers).
 */
export function* vb2_buffer_done(vb: vb2_buffer, state: number): Op<void> {
  const q = vb.vb2_queue;
  if (WARN_ON(vb.state !== VB2_BUF_STATE_ACTIVE)) return;
  yield* spin_lock(q.done_lock);
  vb.state = state;
  q.done_list.push(vb);
  q.owned_by_drv_count--;
  yield* spin_unlock(q.done_lock);
}

/**
 * vb2_core_dqbuf(q, nonblocking): takes the oldest done buffer off the queue. Without one
 * a non-blocking call is -EAGAIN; a blocking one waits for vb2_buffer_done (a Step enabled
 * once the done list is not empty or streaming stopped). The user memory stays acquired.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_dqbuf,
 *   __vb2_wait_for_done_vb, __vb2_get_done_vb (v5.7+)
 * Locking: the caller's queue lock (the model does not drop it while waiting).
 * Return: { ret: 0 | -errno, index, bytesused, state }.
 */
export function* vb2_core_dqbuf(
  q: vb2_queue,
  nonblocking: boolean,
): Op<{ ret: number; index: number; bytesused: number; error: boolean }> {
  const none = { index: -1, bytesused: 0, error: false };
  for (;;) {
    if (!q.streaming) {
      dprintk(q, 'streaming off, will not wait for buffers');
      return { ret: -EINVAL, ...none };
    }
    if (q.error) return { ret: -5, ...none };
    if (q.done_list.length) break;
    if (nonblocking) {
      dprintk(q, 'nonblocking and no buffers to dequeue, will not wait');
      return { ret: -EAGAIN, ...none };
    }
    yield {
      obj: `${q.name}.done_wq`,
      kind: 'read',
      what: '__vb2_wait_for_done_vb',
      enabled: () => q.done_list.length > 0 || !q.streaming,
    };
  }
  yield* spin_lock(q.done_lock);
  const vb = q.done_list.shift()!;
  yield* spin_unlock(q.done_lock);
  const i = q.queued_list.indexOf(vb);
  if (i >= 0) q.queued_list.splice(i, 1);
  q.queued_count--;
  const error = vb.state === VB2_BUF_STATE_ERROR;
  vb.state = VB2_BUF_STATE_DEQUEUED;
  return { ret: 0, index: vb.index, bytesused: vb.planes[0]?.bytesused ?? 0, error };
}

/**
 * vb2_core_streamon(q, type): starts streaming; buffers already queued go to the driver.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_streamon (v5.7+)
 * Return: 0 (also when already streaming), -EINVAL (wrong type, no buffers).
 */
export function* vb2_core_streamon(q: vb2_queue, type: number): Op<number> {
  if (type !== q.type) {
    dprintk(q, 'invalid stream type');
    return -EINVAL;
  }
  if (q.streaming) {
    dprintk(q, 'already streaming');
    return 0;
  }
  if (!q.num_buffers) {
    dprintk(q, 'no buffers have been allocated');
    return -EINVAL;
  }
  if (q.queued_count >= 0) {
    const ret = yield* vb2_start_streaming(q);
    if (ret) return ret;
  }
  q.streaming = true;
  dprintk(q, 'successful');
  return 0;
}

/**
 * vb2_core_streamoff(q, type): stops streaming (__vb2_queue_cancel); buffers keep their
 * user memory.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_streamoff (v5.7+)
 * Return: 0 or -EINVAL (wrong type).
 */
export function* vb2_core_streamoff(q: vb2_queue, type: number): Op<number> {
  if (type !== q.type) {
    dprintk(q, 'invalid stream type');
    return -EINVAL;
  }
  yield* __vb2_queue_cancel(q);
  dprintk(q, 'successful');
  return 0;
}

/**
 * vb2_plane_cookie(vb, plane_no): the allocator's handle of a plane (dma-contig: the DMA
 * address; dma-sg: the sg_table), or null.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_plane_cookie (v5.7+)
 */
export function vb2_plane_cookie(vb: vb2_buffer, plane_no: number): unknown {
  if (plane_no >= vb.num_planes || !vb.planes[plane_no]!.mem_priv) return null;
  return vb.vb2_queue.mem_ops.cookie(vb, vb.planes[plane_no]!.mem_priv);
}

/**
 * vb2_queue_release(q): the file is closed: streaming stops and every buffer is freed.
 * @kernel drivers/media/common/videobuf2/videobuf2-core.c:vb2_core_queue_release (v5.7+)
 */
export function* vb2_core_queue_release(q: vb2_queue): Op<void> {
  yield* __vb2_queue_cancel(q);
  yield* __vb2_queue_free(q, q.num_buffers);
}
