/**
 * Walking iov_iters: building them from user buffers (import_ubuf, import_iovec), kernel
 * buffers and page vectors; copying to and from them (user segments through
 * copy_to_user/copy_from_user, so they fault as the kernel's copies do; page segments
 * through the frame contents); and taking the pages behind a user-backed iterator:
 * iov_iter_get_pages2 with FOLL_GET references (get_user_pages_fast) and
 * iov_iter_extract_pages with FOLL_PIN pins (pin_user_pages_fast) for the users that
 * must pin (direct I/O).
 *
 * Left out: ITER_XARRAY, ITER_FOLIOQ and ITER_DISCARD, compat iovecs, the copy of the
 * iovec array itself from user memory (import_iovec takes the array's contents),
 * p2pdma extraction flags beyond FOLL_PCI_P2PDMA.
 *
 * @kernel lib/iov_iter.c (v6.x; iov_iter_get_pages2 v6.0+, iov_iter_extract_pages v6.3+)
 */
import type { Op } from '../../sched/index.js';
import type { page } from '../include/linux/mm_types.js';
import {
  ITER_DEST,
  ITER_SOURCE,
  UIO_MAXIOV,
  iov_iter_rw,
  user_backed_iter,
  WRITE,
  type bio_vec,
  type iov_iter,
  type iovec,
  type kvec,
} from '../include/linux/uio.js';
import { EFAULT, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { FOLL_NOFAULT, FOLL_PCI_P2PDMA, FOLL_WRITE } from '../include/linux/mm.js';
import { MAX_RW_COUNT } from '../include/linux/fs.js';
import { PAGE_SIZE, TASK_SIZE_MAX } from '../arch/x86/include/asm/pgtable_types.js';
import { __copy_from_user_inatomic, copy_from_user, copy_to_user } from '../arch/x86/mm/fault.js';
import { get_current } from '../include/linux/sched.js';
import { phys_read, phys_write } from '../mm/sparse.js';
import { folio_ref_obj, get_page } from '../include/linux/page_ref.js';
import { page_folio } from '../include/linux/page-flags.js';
import { get_user_pages_fast, pin_user_pages_fast } from '../mm/gup.js';

/** iov_iter_extraction_t: ITER_ALLOW_P2PDMA */
export const ITER_ALLOW_P2PDMA = 0x01;

function make(
  iter_type: iov_iter['iter_type'],
  direction: number,
  parts: { iov?: iovec[]; kvec?: kvec[]; bvec?: bio_vec[] },
  nr_segs: number,
  count: number,
): iov_iter {
  return {
    iter_type,
    data_source: direction === ITER_SOURCE,
    nofault: false,
    iov_offset: 0,
    count,
    seg: 0,
    nr_segs,
    iov: parts.iov ?? [],
    kvec: parts.kvec ?? [],
    bvec: parts.bvec ?? [],
  };
}

/**
 * access_ok(addr, size): the range lies below TASK_SIZE_MAX without wrapping.
 * @kernel arch/x86/include/asm/uaccess_64.h:__access_ok (all versions)
 */
export function access_ok(addr: number, size: number): boolean {
  return addr >= 0 && size >= 0 && addr + size <= TASK_SIZE_MAX;
}

/**
 * iov_iter_ubuf(i, direction, buf, count): one user buffer.
 * @kernel include/linux/uio.h:iov_iter_ubuf (v6.0+)
 */
export function iov_iter_ubuf(direction: number, buf: number, count: number): iov_iter {
  return make('ITER_UBUF', direction, { iov: [{ iov_base: buf, iov_len: count }] }, 1, count);
}

/**
 * import_ubuf(type, buf, len, i): a user buffer for read(2)/write(2).
 * @kernel lib/iov_iter.c:import_ubuf (v6.0+)
 * Return: the iterator, or -EFAULT when the buffer is not a user address range.
 */
export function import_ubuf(type: number, buf: number, len: number): iov_iter | number {
  if (len > MAX_RW_COUNT) len = MAX_RW_COUNT;
  if (!access_ok(buf, len)) return -EFAULT;
  return iov_iter_ubuf(type, buf, len);
}

/**
 * iov_iter_init(i, direction, iov, nr_segs, count): user segments.
 * @kernel lib/iov_iter.c:iov_iter_init (all versions)
 */
export function iov_iter_init(direction: number, iov: iovec[], count: number): iov_iter {
  return make('ITER_IOVEC', direction, { iov }, iov.length, count);
}

/**
 * import_iovec(type, uvec, nr_segs, fast_segs, iovp, i): checks a user iovec array and
 * builds an iterator over it. More than UIO_MAXIOV segments is -EINVAL; a segment whose
 * base is not a user range is -EFAULT; the total is clamped to MAX_RW_COUNT (later
 * segments are shortened).
 * @kernel lib/iov_iter.c:__import_iovec, iovec_from_user (all versions)
 * Return: the iterator, or -errno.
 * Model: `iovs` are the array's contents (the copy of the array from user memory is left
 *   out); a negative length stands for a length above SSIZE_MAX (-EINVAL).
 */
export function import_iovec(type: number, iovs: readonly iovec[]): iov_iter | number {
  if (iovs.length > UIO_MAXIOV) return -EINVAL;
  const out: iovec[] = [];
  let total = 0;
  for (const v of iovs) {
    let len = v.iov_len;
    if (len < 0) return -EINVAL;
    if (!access_ok(v.iov_base, len)) return -EFAULT;
    if (len > MAX_RW_COUNT - total) len = MAX_RW_COUNT - total;
    total += len;
    out.push({ iov_base: v.iov_base, iov_len: len });
  }
  if (out.length === 1) return iov_iter_ubuf(type, out[0]!.iov_base, out[0]!.iov_len);
  return iov_iter_init(type, out, total);
}

/**
 * iov_iter_kvec(i, direction, kvec, nr_segs, count): kernel buffers.
 * @kernel lib/iov_iter.c:iov_iter_kvec (all versions)
 */
export function iov_iter_kvec(direction: number, kv: kvec[], count: number): iov_iter {
  return make('ITER_KVEC', direction, { kvec: kv }, kv.length, count);
}

/**
 * iov_iter_bvec(i, direction, bvec, nr_segs, count): page fragments.
 * @kernel lib/iov_iter.c:iov_iter_bvec (all versions)
 */
export function iov_iter_bvec(
  direction: number,
  bv: readonly bio_vec[],
  nr_segs: number,
  count: number,
): iov_iter {
  return make('ITER_BVEC', direction, { bvec: [...bv] }, nr_segs, count);
}

/** Length of segment `s`. */
function segLen(i: iov_iter, s: number): number {
  if (i.iter_type === 'ITER_KVEC') return i.kvec[s]!.iov_len;
  if (i.iter_type === 'ITER_BVEC') return i.bvec[s]!.bv_len;
  return i.iov[s]!.iov_len;
}

/**
 * iov_iter_advance(i, size): consumes size bytes.
 * @kernel lib/iov_iter.c:iov_iter_advance (all versions)
 */
export function iov_iter_advance(i: iov_iter, size: number): void {
  if (size > i.count) size = i.count;
  i.count -= size;
  let off = i.iov_offset + size;
  while (i.seg < i.nr_segs && off >= segLen(i, i.seg)) {
    off -= segLen(i, i.seg);
    i.seg++;
  }
  i.iov_offset = off;
}

/**
 * iov_iter_revert(i, unroll): gives back unroll bytes consumed earlier.
 * @kernel lib/iov_iter.c:iov_iter_revert (all versions)
 */
export function iov_iter_revert(i: iov_iter, unroll: number): void {
  if (!unroll) return;
  i.count += unroll;
  let back = unroll;
  for (;;) {
    if (back <= i.iov_offset) {
      i.iov_offset -= back;
      return;
    }
    back -= i.iov_offset;
    i.seg--;
    i.iov_offset = segLen(i, i.seg);
  }
}

/** iov_iter_truncate(i, count): limits the iterator to count bytes. */
export function iov_iter_truncate(i: iov_iter, count: number): void {
  if (i.count > count) i.count = count;
}

/** iov_iter_reexpand(i, count) */
export function iov_iter_reexpand(i: iov_iter, count: number): void {
  i.count = count;
}

/** The current segment's remaining piece: [kind, where, length]. */
function current(i: iov_iter): { s: number; off: number; len: number } | null {
  while (i.seg < i.nr_segs && i.iov_offset >= segLen(i, i.seg)) {
    i.iov_offset -= segLen(i, i.seg);
    i.seg++;
  }
  if (i.seg >= i.nr_segs || i.count === 0) return null;
  return { s: i.seg, off: i.iov_offset, len: Math.min(segLen(i, i.seg) - i.iov_offset, i.count) };
}

/**
 * _copy_to_iter(addr, bytes, i): copies data into the iterator; a user segment goes
 * through copy_to_user (page faults allowed, so a write fault may COW or fail), a page
 * segment into the frame, a kernel segment into its buffer.
 * @kernel lib/iov_iter.c:_copy_to_iter (all versions)
 * Locking: may sleep (user segments); no mmap_lock held.
 * Return: bytes copied (short when a user copy faults).
 */
export function* copy_to_iter(data: Uint8Array, bytes: number, i: iov_iter): Op<number> {
  bytes = Math.min(bytes, i.count, data.length);
  let done = 0;
  while (done < bytes) {
    const c = current(i);
    if (!c) break;
    const n = Math.min(c.len, bytes - done);
    const chunk = data.subarray(done, done + n);
    let copied = n;
    if (i.iter_type === 'ITER_KVEC') {
      i.kvec[c.s]!.iov_base.set(chunk, c.off);
    } else if (i.iter_type === 'ITER_BVEC') {
      const bv = i.bvec[c.s]!;
      phys_write(bv.bv_page * PAGE_SIZE + bv.bv_offset + c.off, chunk);
    } else {
      copied = n - (yield* copy_to_user(i.iov[c.s]!.iov_base + c.off, chunk, n));
    }
    iov_iter_advance(i, copied);
    done += copied;
    if (copied < n) break;
  }
  return done;
}

/**
 * _copy_from_iter(addr, bytes, i): copies data out of the iterator into `out`.
 * @kernel lib/iov_iter.c:_copy_from_iter (all versions)
 * Locking: may sleep (user segments).
 * Return: bytes copied.
 */
export function* copy_from_iter(out: Uint8Array, bytes: number, i: iov_iter): Op<number> {
  bytes = Math.min(bytes, i.count, out.length);
  let done = 0;
  while (done < bytes) {
    const c = current(i);
    if (!c) break;
    const n = Math.min(c.len, bytes - done);
    let copied = n;
    if (i.iter_type === 'ITER_KVEC') {
      out.set(i.kvec[c.s]!.iov_base.subarray(c.off, c.off + n), done);
    } else if (i.iter_type === 'ITER_BVEC') {
      const bv = i.bvec[c.s]!;
      out.set(phys_read(bv.bv_page * PAGE_SIZE + bv.bv_offset + c.off, n), done);
    } else {
      const tmp = new Uint8Array(n);
      copied = n - (yield* copy_from_user(tmp, i.iov[c.s]!.iov_base + c.off, n));
      out.set(tmp.subarray(0, copied), done);
    }
    iov_iter_advance(i, copied);
    done += copied;
    if (copied < n) break;
  }
  return done;
}

/**
 * copy_page_to_iter(page, offset, bytes, i): copies from a page (any kernel mapping of
 * it) into the iterator.
 * @kernel lib/iov_iter.c:copy_page_to_iter (all versions)
 * Return: bytes copied.
 */
export function copy_page_to_iter(p: page, offset: number, bytes: number, i: iov_iter): Op<number> {
  return copy_to_iter(phys_read(p * PAGE_SIZE + offset, bytes), bytes, i);
}

/**
 * copy_page_from_iter(page, offset, bytes, i): copies from the iterator into a page.
 * @kernel lib/iov_iter.c:copy_page_from_iter (all versions)
 * Return: bytes copied.
 */
export function* copy_page_from_iter(
  p: page,
  offset: number,
  bytes: number,
  i: iov_iter,
): Op<number> {
  const buf = new Uint8Array(bytes);
  const n = yield* copy_from_iter(buf, bytes, i);
  phys_write(p * PAGE_SIZE + offset, buf.subarray(0, n));
  return n;
}

/**
 * copy_page_from_iter_atomic(page, offset, bytes, i): copies from the iterator into a
 * page with page faults disabled: a user segment whose page is not present (or not
 * readable) ends the copy (__copy_from_user_inatomic), as buffered writes copy while
 * holding the locked page-cache folio.
 * @kernel lib/iov_iter.c:copy_page_from_iter_atomic (v5.14+; iov_iter_copy_from_user_atomic
 *   before)
 * Return: bytes copied.
 */
export function* copy_page_from_iter_atomic(
  p: page,
  offset: number,
  bytes: number,
  i: iov_iter,
): Op<number> {
  if (!user_backed_iter(i)) return yield* copy_page_from_iter(p, offset, bytes, i);
  bytes = Math.min(bytes, i.count);
  let done = 0;
  while (done < bytes) {
    const c = current(i);
    if (!c) break;
    const n = Math.min(c.len, bytes - done);
    const tmp = new Uint8Array(n);
    const left = yield* __copy_from_user_inatomic(
      get_current().mm,
      tmp,
      i.iov[c.s]!.iov_base + c.off,
      n,
    );
    const copied = n - left;
    phys_write(p * PAGE_SIZE + offset + done, tmp.subarray(0, copied));
    iov_iter_advance(i, copied);
    done += copied;
    if (copied < n) break;
  }
  return done;
}

/**
 * iov_iter_zero(bytes, i): writes zeroes into the iterator (clear_user for user
 * segments).
 * @kernel lib/iov_iter.c:iov_iter_zero (all versions)
 * Return: bytes zeroed.
 */
export function iov_iter_zero(bytes: number, i: iov_iter): Op<number> {
  return copy_to_iter(new Uint8Array(Math.min(bytes, i.count)), bytes, i);
}

/**
 * fault_in_iov_iter_readable(i, size): faults in the user pages the next size bytes
 * come from (fault_in_readable: a read of each page that may fault).
 * @kernel lib/iov_iter.c:fault_in_iov_iter_readable, mm/gup.c:fault_in_readable (v5.16+)
 * Return: bytes that could not be faulted in (0 on success); 0 for non-user iterators.
 */
export function* fault_in_iov_iter_readable(i: iov_iter, size: number): Op<number> {
  if (!user_backed_iter(i)) return 0;
  const save = { seg: i.seg, iov_offset: i.iov_offset, count: i.count };
  const buf = new Uint8Array(Math.min(size, i.count));
  const got = yield* copy_from_iter(buf, buf.length, i);
  i.seg = save.seg;
  i.iov_offset = save.iov_offset;
  i.count = save.count;
  return Math.min(size, save.count) - got;
}

/** The first non-empty user segment: its address and length (bounded by maxsize). */
function first_iovec_segment(i: iov_iter, maxsize: number): { addr: number; len: number } {
  const c = current(i);
  if (!c) return { addr: 0, len: 0 };
  return { addr: i.iov[c.s]!.iov_base + c.off, len: Math.min(c.len, maxsize) };
}

/** want_pages_array: how many page slots the request needs, at most maxpages. */
function want_pages(maxsize: number, start: number, maxpages: number): number {
  return Math.min(Math.ceil((maxsize + start) / PAGE_SIZE), maxpages);
}

/**
 * iov_iter_get_pages2(i, pages, maxsize, maxpages, start): takes references (FOLL_GET,
 * get_user_pages_fast) on the pages behind the first user segment, FOLL_WRITE when the
 * iterator is a destination, and advances past them. A page segment yields its pages
 * with a get_page each.
 * @kernel lib/iov_iter.c:iov_iter_get_pages2, __iov_iter_get_pages_alloc (v6.0+;
 *   iov_iter_get_pages + advance before, same effect)
 * Locking: none held; GUP-fast, falling back to the slow path.
 * Return: { ret: bytes covered (> 0) or GUP's result (0 or -errno), start: offset in the
 *   first page }.
 */
export function* iov_iter_get_pages2(
  i: iov_iter,
  pages: page[],
  maxsize: number,
  maxpages: number,
): Op<{ ret: number; start: number }> {
  if (maxsize > i.count) maxsize = i.count;
  if (!maxsize) return { ret: 0, start: 0 };
  if (maxsize > MAX_RW_COUNT) maxsize = MAX_RW_COUNT;
  if (user_backed_iter(i)) {
    let gup_flags = 0;
    if (iov_iter_rw(i) !== WRITE) gup_flags |= FOLL_WRITE;
    if (i.nofault) gup_flags |= FOLL_NOFAULT;
    const seg = first_iovec_segment(i, maxsize);
    const start = seg.addr % PAGE_SIZE;
    const addr = seg.addr - start;
    const n = want_pages(seg.len, start, maxpages);
    if (!n) return { ret: -ENOMEM, start };
    const res = yield* get_user_pages_fast(addr, n, gup_flags, pages);
    if (res <= 0) return { ret: res, start };
    const got = Math.min(seg.len, res * PAGE_SIZE - start);
    iov_iter_advance(i, got);
    return { ret: got, start };
  }
  return yield* bvec_pages(i, pages, maxsize, maxpages, true);
}

/** Pages of a bvec iterator, with (get) or without references; advances. */
function* bvec_pages(
  i: iov_iter,
  pages: page[],
  maxsize: number,
  maxpages: number,
  get: boolean,
): Op<{ ret: number; start: number }> {
  if (i.iter_type !== 'ITER_BVEC') return { ret: -EFAULT, start: 0 };
  const c = current(i);
  if (!c) return { ret: 0, start: 0 };
  const bv = i.bvec[c.s]!;
  const skip = bv.bv_offset + c.off;
  const first = (bv.bv_page + Math.floor(skip / PAGE_SIZE)) as page;
  const start = skip % PAGE_SIZE;
  const len = Math.min(c.len, maxsize);
  const n = want_pages(len, start, maxpages);
  for (let k = 0; k < n; k++) {
    pages[k] = (first + k) as page;
    if (get) {
      yield {
        obj: folio_ref_obj(page_folio((first + k) as page)),
        kind: 'write',
        what: 'get_page',
      };
      get_page(pages[k]!);
    }
  }
  const got = Math.min(len, n * PAGE_SIZE - start);
  iov_iter_advance(i, got);
  return { ret: got, start };
}

/**
 * iov_iter_extract_will_pin(i): whether iov_iter_extract_pages pins (user-backed
 * iterators) or takes nothing (kernel iterators, whose pages the caller keeps alive).
 * @kernel include/linux/uio.h:iov_iter_extract_will_pin (v6.3+)
 */
export function iov_iter_extract_will_pin(i: iov_iter): boolean {
  return user_backed_iter(i);
}

/**
 * iov_iter_extract_pages(i, pages, maxsize, maxpages, extraction_flags, offset0): the
 * pages behind the iterator for I/O. User-backed: pin_user_pages_fast with FOLL_PIN
 * (implied), FOLL_WRITE when data flows into memory (a read into it), FOLL_NOFAULT for a
 * nofault iterator, FOLL_PCI_P2PDMA with ITER_ALLOW_P2PDMA. Page vectors: the pages,
 * no reference taken.
 * @kernel lib/iov_iter.c:iov_iter_extract_pages, iov_iter_extract_user_pages,
 *   iov_iter_extract_bvec_pages (v6.3+, 7d58fe731028 "iov_iter: Add a function to
 *   extract a page list from an iterator")
 * Locking: none held.
 * Return: { ret: bytes covered or GUP's result (0, -errno), offset in the first page }.
 */
export function* iov_iter_extract_pages(
  i: iov_iter,
  pages: page[],
  maxsize: number,
  maxpages: number,
  extraction_flags: number,
): Op<{ ret: number; offset: number }> {
  maxsize = Math.min(maxsize, i.count, MAX_RW_COUNT);
  if (!maxsize || !maxpages) return { ret: 0, offset: 0 };
  if (user_backed_iter(i)) {
    let gup_flags = 0;
    if (iov_iter_rw(i) !== WRITE) gup_flags |= FOLL_WRITE;
    if (extraction_flags & ITER_ALLOW_P2PDMA) gup_flags |= FOLL_PCI_P2PDMA;
    if (i.nofault) gup_flags |= FOLL_NOFAULT;
    const seg = first_iovec_segment(i, maxsize);
    const offset = seg.addr % PAGE_SIZE;
    const addr = seg.addr - offset;
    const n = want_pages(seg.len, offset, maxpages);
    const res = yield* pin_user_pages_fast(addr, n, gup_flags, pages);
    if (res <= 0) return { ret: res, offset };
    const got = Math.min(seg.len, res * PAGE_SIZE - offset);
    iov_iter_advance(i, got);
    return { ret: got, offset };
  }
  const r = yield* bvec_pages(i, pages, maxsize, maxpages, false);
  return { ret: r.ret, offset: r.start };
}

export { ITER_DEST, ITER_SOURCE };
