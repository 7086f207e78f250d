/**
 * io_uring instances: io_uring_setup makes the context, its ring and SQE regions
 * (io_uring/memmap.ts) and an anon-inode file whose mmap maps them; io_uring_register
 * registers and unregisters buffers (io_uring/rsrc.ts); the last close frees it all.
 * Submissions are modelled by io_issue_sqe for the fixed-buffer reads and writes: the
 * file's ->read_iter/->write_iter run on an iterator over the registered pages.
 *
 * Accounting: a context created without CAP_IPC_LOCK charges its regions and registered
 * buffers to the user's locked_vm against RLIMIT_MEMLOCK (one counter per user; all model
 * processes are one user); every context adds registered pages to its mm's pinned_vm.
 *
 * Left out: the submission and completion queues themselves (io_uring_enter, SQ
 * polling, io-wq, CQE posting: io_issue_sqe returns the CQE's res), every opcode but
 * READ_FIXED/WRITE_FIXED, registered files, IORING_SETUP_* flags other than CLAMP,
 * io_uring_disabled, the non-blocking first attempt of reads and writes.
 *
 * @kernel io_uring/io_uring.c:io_uring_setup, io_uring_create, io_allocate_scq_urings,
 *   rings_size, io_uring_release, io_ring_ctx_free; io_uring/register.c:io_uring_register,
 *   __io_uring_register; io_uring/rw.c:io_read, io_write (fixed buffers) (v6.x)
 */
import type { Op } from '../../sched/index.js';
import type { file, file_operations, inode, mm_struct } from '../include/linux/mm_types.js';
import { get_current } from '../include/linux/sched.js';
import { ITER_DEST, ITER_SOURCE, type iovec } from '../include/linux/uio.js';
import { EBADF, EFAULT, EINVAL, ENOMEM, EOPNOTSUPP } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import { IOCB_WRITE, O_CLOEXEC, f_op_rw, init_sync_kiocb } from '../include/linux/fs.js';
import { mutex, mutex_lock, mutex_unlock } from '../include/linux/spinlock.js';
import { currentKernel } from '../kernel/kernel.js';
import { phys_write } from '../mm/sparse.js';
import { anon_inode_create_getfile } from '../fs/anon_inodes.js';
import { O_RDWR } from '../fs/inode.js';
import { fget } from '../include/linux/fdtable.js';
import { fd_install, get_unused_fd_flags } from '../include/linux/fdtable.js';
import { fput } from '../fs/file_table.js';
import { f_pos, set_f_pos } from '../fs/read_write.js';
import {
  io_create_region,
  io_free_region,
  io_uring_mmap,
  type io_mapped_region,
} from './memmap.js';
import {
  io_import_fixed,
  io_sqe_buffers_register,
  io_sqe_buffers_unregister,
  type io_mapped_ubuf,
} from './rsrc.js';

/** IORING_MAX_ENTRIES / IORING_MAX_CQ_ENTRIES */
export const IORING_MAX_ENTRIES = 32768;
/** IORING_SETUP_CLAMP */
export const IORING_SETUP_CLAMP = 1 << 4;
/** io_uring_register opcodes. */
export const IORING_REGISTER_BUFFERS = 0;
export const IORING_UNREGISTER_BUFFERS = 1;
/** Opcodes (enum io_uring_op). */
export const IORING_OP_READ_FIXED = 4;
export const IORING_OP_WRITE_FIXED = 5;
/** SQE and CQE sizes. */
const SQE_SIZE = 64;
const CQE_SIZE = 16;
/** offsetof(struct io_rings, cqes): the header, cache-line aligned. */
const RINGS_CQES_OFFSET = 64;

/** The user's locked_vm (struct user_struct) of the kernel instance (one user). */
interface user_struct {
  locked_vm: number;
}
function current_user(): user_struct {
  const k = currentKernel();
  return ((k.sub.io_uring_user as user_struct | undefined) ??= { locked_vm: 0 });
}

/** The locked_vm pages io_uring has charged to the (single) user (the tool's accessor). */
export function ioUringUserLockedVm(): number {
  return current_user().locked_vm;
}

/** struct io_ring_ctx, reduced. */
export interface io_ring_ctx {
  readonly id: number;
  /** null when the creator had CAP_IPC_LOCK (no RLIMIT_MEMLOCK charging). */
  readonly user: user_struct | null;
  readonly mm_account: mm_struct;
  readonly uring_lock: mutex;
  readonly sq_entries: number;
  readonly cq_entries: number;
  readonly ring_region: io_mapped_region;
  readonly sq_region: io_mapped_region;
  buf_table: (io_mapped_ubuf | null)[];
  buf_table_nr: number;
  /** rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT of the task that charges. */
  __io_account_mem(nr_pages: number): number;
  __io_unaccount_mem(nr_pages: number): void;
  io_account_mem(nr_pages: number): number;
  io_unaccount_mem(nr_pages: number): void;
}

/** struct io_uring_params, the fields the model fills. */
export interface io_uring_params {
  flags?: number;
  sq_entries?: number;
  cq_entries?: number;
  features?: number;
  sq_off?: { array: number };
  cq_off?: { cqes: number };
}

/**
 * __io_account_mem(user, nr_pages): charges nr_pages to the user's locked_vm; over
 * rlimit(RLIMIT_MEMLOCK) ⇒ -ENOMEM.
 * @kernel io_uring/rsrc.c:__io_account_mem (all versions)
 */
function __io_account_mem(user: user_struct, nr_pages: number): number {
  if (!nr_pages) return 0;
  const page_limit = Math.floor(get_current().rlimit_memlock / PAGE_SIZE);
  const new_pages = user.locked_vm + nr_pages;
  if (new_pages > page_limit) return -ENOMEM;
  user.locked_vm = new_pages;
  return 0;
}

function make_ctx(sq_entries: number, cq_entries: number): io_ring_ctx {
  const k = currentKernel();
  const id = k.nextId('io_uring');
  const cur = get_current();
  const user = cur.caps.has('CAP_IPC_LOCK') ? null : current_user();
  const mm = cur.mm!;
  const ctx: io_ring_ctx = {
    id,
    user,
    mm_account: mm,
    uring_lock: new mutex(`io_uring${id}.uring_lock`),
    sq_entries,
    cq_entries,
    ring_region: { pages: null, nr_pages: 0, single_ref: false },
    sq_region: { pages: null, nr_pages: 0, single_ref: false },
    buf_table: [],
    buf_table_nr: 0,
    __io_account_mem: (n) => (user ? __io_account_mem(user, n) : 0),
    __io_unaccount_mem: (n) => {
      if (user) user.locked_vm -= n;
    },
    io_account_mem(n) {
      if (user) {
        const ret = __io_account_mem(user, n);
        if (ret) return ret;
      }
      mm.pinned_vm += n;
      return 0;
    },
    io_unaccount_mem(n) {
      if (user) user.locked_vm -= n;
      mm.pinned_vm -= n;
    },
  };
  // mmgrab(current->mm): the accounting mm stays while the ring does.
  mm.mm_count++;
  return ctx;
}

/**
 * rings_size(flags, sq_entries, cq_entries, sq_offset): the io_rings header and CQEs,
 * cache-line aligned, then the SQ index array.
 * @kernel io_uring/io_uring.c:rings_size (all versions)
 * Return: { size, sq_array }.
 */
export function rings_size(
  sq_entries: number,
  cq_entries: number,
): { size: number; sq_array: number } {
  let off = RINGS_CQES_OFFSET + cq_entries * CQE_SIZE;
  off = Math.ceil(off / 64) * 64;
  return { size: off + sq_entries * 4, sq_array: off };
}

/** roundup_pow_of_two(n) */
function roundup_pow_of_two(n: number): number {
  let r = 1;
  while (r < n) r *= 2;
  return r;
}

/**
 * io_ring_ctx_free(ctx): the registered buffers are unregistered (pins dropped), the
 * regions freed, the accounting mm dropped.
 * @kernel io_uring/io_uring.c:io_ring_ctx_free (all versions)
 */
export function io_ring_ctx_free(ctx: io_ring_ctx): void {
  if (ctx.buf_table_nr) io_sqe_buffers_unregister(ctx);
  io_free_region(ctx, ctx.ring_region);
  io_free_region(ctx, ctx.sq_region);
  // mmdrop(ctx->mm_account): the model's mm_struct is freed by its own last mmdrop; this
  // reference only kept it.
  ctx.mm_account.mm_count--;
}

/**
 * io_uring_release(inode, file): the last close of the ring frees the context.
 * @kernel io_uring/io_uring.c:io_uring_release, io_ring_ctx_wait_and_kill (all versions)
 */
export function io_uring_release(_i: inode, f: file): void {
  io_ring_ctx_free(f.private_data as io_ring_ctx);
}

/** io_uring_fops */
export const io_uring_fops: file_operations = {
  name: 'io_uring_fops',
  mmap: io_uring_mmap,
  release: io_uring_release,
};

/** io_is_uring_fops(file) */
export function io_is_uring_fops(f: file): boolean {
  return f.f_op === io_uring_fops;
}

/**
 * io_uring_setup(entries, params): no entries ⇒ -EINVAL; more than IORING_MAX_ENTRIES
 * ⇒ -EINVAL unless IORING_SETUP_CLAMP; sq_entries rounded up to a power of two and twice
 * as many CQEs; the ring and SQE regions are allocated (and charged); the descriptor of
 * a new anon-inode file is returned.
 * @kernel io_uring/io_uring.c:io_uring_setup, io_uring_create, io_allocate_scq_urings
 *   (all versions)
 * Return: the descriptor or -errno; params filled.
 */
export function* sys_io_uring_setup(entries: number, p: io_uring_params): Op<number> {
  const flags = p.flags ?? 0;
  if (!entries) return -EINVAL;
  if (entries > IORING_MAX_ENTRIES) {
    if (!(flags & IORING_SETUP_CLAMP)) return -EINVAL;
    entries = IORING_MAX_ENTRIES;
  }
  const sq_entries = roundup_pow_of_two(entries);
  const cq_entries = 2 * sq_entries;
  const ctx = make_ctx(sq_entries, cq_entries);
  // io_allocate_scq_urings()
  const rs = rings_size(sq_entries, cq_entries);
  let ret = io_create_region(ctx, ctx.ring_region, rs.size);
  if (!ret) ret = io_create_region(ctx, ctx.sq_region, sq_entries * SQE_SIZE);
  if (ret) {
    io_ring_ctx_free(ctx);
    return ret;
  }
  // rings->sq_ring_mask, cq_ring_mask, sq_ring_entries, cq_ring_entries
  const hdr = new Uint8Array(16);
  const dv = new DataView(hdr.buffer);
  dv.setUint32(0, sq_entries - 1, true);
  dv.setUint32(4, cq_entries - 1, true);
  dv.setUint32(8, sq_entries, true);
  dv.setUint32(12, cq_entries, true);
  phys_write(ctx.ring_region.pages![0]! * PAGE_SIZE + 16, hdr);
  p.sq_entries = sq_entries;
  p.cq_entries = cq_entries;
  p.sq_off = { array: rs.sq_array };
  p.cq_off = { cqes: RINGS_CQES_OFFSET };
  p.features = 1; // IORING_FEAT_SINGLE_MMAP
  // io_uring_install_fd(): O_RDWR | O_CLOEXEC
  const fd = yield* get_unused_fd_flags(O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    io_ring_ctx_free(ctx);
    return fd;
  }
  const f = anon_inode_create_getfile('[io_uring]', io_uring_fops, ctx, O_RDWR);
  yield* fd_install(fd, f);
  return fd;
}

/**
 * io_uring_register(fd, opcode, arg, nr_args): not an io_uring ⇒ -EOPNOTSUPP; under
 * ctx->uring_lock, IORING_REGISTER_BUFFERS (arg NULL ⇒ -EFAULT) or
 * IORING_UNREGISTER_BUFFERS (an argument ⇒ -EINVAL); other opcodes are not modelled.
 * @kernel io_uring/register.c:SYSCALL_DEFINE4(io_uring_register), __io_uring_register
 *   (v6.x; io_uring/io_uring.c before)
 * Return: 0 or -errno.
 * Model: `arg` is the iovec array's contents, or null.
 */
export function* sys_io_uring_register(
  fd: number,
  opcode: number,
  arg: readonly iovec[] | null,
  nr_args: number,
): Op<number> {
  const f = yield* fget(fd);
  if (!f) return -EBADF;
  if (!io_is_uring_fops(f)) {
    fput(f);
    return -EOPNOTSUPP;
  }
  const ctx = f.private_data as io_ring_ctx;
  yield* mutex_lock(ctx.uring_lock);
  let ret: number;
  switch (opcode) {
    case IORING_REGISTER_BUFFERS:
      ret = -EFAULT;
      if (!arg) break;
      ret = yield* io_sqe_buffers_register(ctx, arg, nr_args);
      break;
    case IORING_UNREGISTER_BUFFERS:
      ret = -EINVAL;
      if (arg || nr_args) break;
      ret = io_sqe_buffers_unregister(ctx);
      break;
    default:
      yield* mutex_unlock(ctx.uring_lock);
      fput(f);
      throw new Error(`io_uring_register opcode ${opcode} is not modelled`);
  }
  yield* mutex_unlock(ctx.uring_lock);
  fput(f);
  return ret;
}

/** The fields of a struct io_uring_sqe a fixed read/write uses. */
export interface io_uring_sqe {
  opcode: number;
  fd: number;
  /** Offset in the file; -1 for the current position. */
  off: number;
  /** The user address inside the registered buffer. */
  addr: number;
  len: number;
  buf_index: number;
}

/**
 * io_issue_sqe for IORING_OP_READ_FIXED / IORING_OP_WRITE_FIXED: the registered buffer
 * buf_index (missing ⇒ -EFAULT), an iterator over its pages for [addr, addr + len)
 * (io_import_fixed), then the file's ->read_iter/->write_iter at off. The result is the
 * CQE's res.
 * @kernel io_uring/rw.c:io_prep_read_fixed, io_read, io_write, __io_read;
 *   io_uring/rsrc.c:io_import_reg_buf (v6.x)
 * Return: bytes transferred or -errno.
 */
export function* io_issue_sqe(ringfd: number, sqe: io_uring_sqe): Op<number> {
  const rf = yield* fget(ringfd);
  if (!rf) return -EBADF;
  if (!io_is_uring_fops(rf)) {
    fput(rf);
    return -EOPNOTSUPP;
  }
  const ctx = rf.private_data as io_ring_ctx;
  const write = sqe.opcode === IORING_OP_WRITE_FIXED;
  if (!write && sqe.opcode !== IORING_OP_READ_FIXED) {
    fput(rf);
    throw new Error(`io_uring opcode ${sqe.opcode} is not modelled`);
  }
  let res: number;
  const f = yield* fget(sqe.fd);
  if (!f) {
    res = -EBADF;
  } else {
    yield* mutex_lock(ctx.uring_lock);
    const imu = sqe.buf_index < ctx.buf_table_nr ? ctx.buf_table[sqe.buf_index] : null;
    yield* mutex_unlock(ctx.uring_lock);
    const iter = imu
      ? io_import_fixed(write ? ITER_SOURCE : ITER_DEST, imu, sqe.addr, sqe.len)
      : -EFAULT;
    if (typeof iter === 'number') {
      res = iter;
    } else if (!(f.f_mode & (write ? FMODE_WRITE : FMODE_READ))) {
      res = -EBADF;
    } else {
      const ops = f_op_rw(f);
      const hook = write ? ops.write_iter : ops.read_iter;
      if (!hook) {
        res = -EINVAL;
      } else {
        const usePos = sqe.off === -1;
        const kiocb = init_sync_kiocb(f, usePos ? f_pos(f) : sqe.off);
        if (write) kiocb.ki_flags |= IOCB_WRITE;
        res = yield* hook(kiocb, iter);
        if (res > 0 && usePos) set_f_pos(f, kiocb.ki_pos);
      }
    }
    fput(f);
  }
  fput(rf);
  return res;
}
