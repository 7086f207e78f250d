/**
 * struct iov_iter and its segment types: user buffers (ITER_UBUF, ITER_IOVEC), kernel
 * buffers (ITER_KVEC) and page vectors (ITER_BVEC). The functions that walk them are in
 * lib/iov_iter.ts.
 *
 * A user-backed iterator names addresses in the address space of the task that built it
 * (current->mm when it is used, as in the kernel, where copy_to_user works on current).
 *
 * @kernel include/linux/uio.h, include/linux/bvec.h (v6.x layout; ITER_UBUF v6.0+)
 */
import type { page } from './mm_types.js';

/** iov_iter_rw() values: data flows into the iterator (READ) or out of it (WRITE). */
export const ITER_DEST = 0;
export const ITER_SOURCE = 1;
export const READ = 0;
export const WRITE = 1;

/** UIO_FASTIOV / UIO_MAXIOV */
export const UIO_FASTIOV = 8;
export const UIO_MAXIOV = 1024;

/** struct iovec: a user buffer. */
export interface iovec {
  iov_base: number;
  iov_len: number;
}

/** struct kvec: a kernel buffer (a view of kernel memory). */
export interface kvec {
  iov_base: Uint8Array;
  iov_len: number;
}

/** struct bio_vec: a part of one page. */
export interface bio_vec {
  bv_page: page;
  bv_len: number;
  bv_offset: number;
}

export type iter_type = 'ITER_UBUF' | 'ITER_IOVEC' | 'ITER_KVEC' | 'ITER_BVEC';

/** struct iov_iter. `seg` is the index of the current segment in `iov`/`kvec`/`bvec`. */
export interface iov_iter {
  readonly iter_type: iter_type;
  /** true: the iterator is the data source (ITER_SOURCE, a write from it). */
  readonly data_source: boolean;
  /** Page faults must not be taken while copying (FOLL_NOFAULT for GUP). */
  nofault: boolean;
  /** Offset into the current segment. */
  iov_offset: number;
  /** Bytes left. */
  count: number;
  seg: number;
  nr_segs: number;
  readonly iov: readonly iovec[];
  readonly kvec: readonly kvec[];
  readonly bvec: readonly bio_vec[];
}

/** iov_iter_rw(i) */
export function iov_iter_rw(i: iov_iter): number {
  return i.data_source ? WRITE : READ;
}

/** iov_iter_count(i) */
export function iov_iter_count(i: iov_iter): number {
  return i.count;
}

/** user_backed_iter(i): ITER_UBUF or ITER_IOVEC. */
export function user_backed_iter(i: iov_iter): boolean {
  return i.iter_type === 'ITER_UBUF' || i.iter_type === 'ITER_IOVEC';
}

/** iov_iter_is_bvec(i) */
export function iov_iter_is_bvec(i: iov_iter): boolean {
  return i.iter_type === 'ITER_BVEC';
}
