/**
 * io_uring registered buffers (IORING_REGISTER_BUFFERS / IORING_UNREGISTER_BUFFERS) and
 * fixed reads and writes through them.
 *
 * Registering a buffer pins its pages for as long as the registration lasts:
 * - v6.10+: io_pin_pages -> pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM), all or
 *   nothing. GUP's rules decide what may be registered: no VM_IO/VM_PFNMAP, no
 *   secretmem, no read-only or PROT_NONE memory (FOLL_WRITE without FOLL_FORCE), no
 *   shared writable mappings of file systems that need dirty tracking (ext4, the AIO
 *   ring: -EFAULT since v6.5); long-term pins migrate CMA/ZONE_MOVABLE pages first and
 *   COW-unshare private file or zero pages.
 * - before v6.10: pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) under mmap_lock, then the
 *   VMAs are checked: every page must come from VMAs with the same vm_file (-EINVAL,
 *   edd478269640 "io_uring/rsrc: disallow multi-source reg buffers", v6.3) and a file
 *   must be shmem or hugetlbfs (-EOPNOTSUPP). (The 5.7 code refused shmem too; the model
 *   applies the later shmem-allowing rule to all versions before v6.10.)
 * Pages of one large folio are coalesced into one bvec with a single pin (v6.10+,
 *   io_check_coalesce_buffer / io_coalesce_buffer). The pinned pages are charged to the
 *   user's RLIMIT_MEMLOCK unless the ring's creator had CAP_IPC_LOCK (io_account_mem,
 *   -ENOMEM over the limit; a compound page is charged whole, once), and to the mm's
 *   pinned_vm.
 *
 * Fixed reads and writes copy through the registered pages (an ITER_BVEC iterator:
 * the kernel reaches the frames directly, not through the process's page tables), so
 * they keep working after munmap of the buffer and see the pinned frames, not whatever
 * the process maps there now.
 *
 * Left out: tags, sparse tables and updates (IORING_REGISTER_BUFFERS2/UPDATE), clone,
 * kernel buffers (ublk), compat iovecs, the node cache.
 *
 * @kernel io_uring/rsrc.c:io_sqe_buffers_register, io_sqe_buffer_register,
 *   io_buffer_validate, io_validate_user_buf_range, io_buffer_account_pin,
 *   headpage_already_acct, io_account_mem, __io_account_mem, io_unaccount_mem,
 *   io_buffer_unmap, io_release_ubuf, io_sqe_buffers_unregister, io_import_fixed,
 *   io_check_coalesce_buffer, io_coalesce_buffer (v6.x)
 */
import type { Op } from '../../sched/index.js';
import type { page } from '../include/linux/mm_types.js';
import { get_current } from '../include/linux/sched.js';
import {
  ITER_DEST,
  ITER_SOURCE,
  type bio_vec,
  type iov_iter,
  type iovec,
} from '../include/linux/uio.js';
import { EBUSY, EFAULT, EINVAL, ENXIO, EOPNOTSUPP, EOVERFLOW } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { FOLL_LONGTERM, FOLL_WRITE } from '../include/linux/mm.js';
import { since } from '../version.js';
import {
  folio_nr_pages,
  folio_order,
  folio_test_large,
  page_folio,
} from '../include/linux/page-flags.js';
import { pin_user_pages, unpin_user_folio, unpin_user_page, unpin_user_pages } from '../mm/gup.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { vmas_in_range } from '../mm/vma.js';
import { vma_is_shmem } from '../mm/shmem.js';
import { VM_HUGETLB } from '../include/linux/mm.js';
import { iov_iter_advance, iov_iter_bvec } from '../lib/iov_iter.js';
import { io_pin_pages } from './memmap.js';
import type { io_ring_ctx } from './io_uring.js';

/** IORING_MAX_REG_BUFFERS */
export const IORING_MAX_REG_BUFFERS = 1 << 14;
/** SZ_1G */
const SZ_1G = 1 << 30;
/** MAX_RW_COUNT */
const MAX_RW_COUNT = 0x7ffff000;

/** IO_IMU_DEST / IO_IMU_SOURCE: the directions a buffer may be used in. */
export const IO_IMU_DEST = 1 << ITER_DEST;
export const IO_IMU_SOURCE = 1 << ITER_SOURCE;

/** struct io_mapped_ubuf */
export interface io_mapped_ubuf {
  readonly ubuf: number;
  readonly len: number;
  readonly nr_bvecs: number;
  /** log2 of the bvec size (PAGE_SHIFT, or the folio's when coalesced). */
  readonly folio_shift: number;
  acct_pages: number;
  readonly bvec: bio_vec[];
  readonly dir: number;
}

/**
 * io_validate_user_buf_range(uaddr, ulen): more than 1 GiB or nothing ⇒ -EFAULT; a
 * range that wraps ⇒ -EOVERFLOW.
 * @kernel io_uring/rsrc.c:io_validate_user_buf_range (v6.13+; io_buffer_validate before)
 */
export function io_validate_user_buf_range(uaddr: number, ulen: number): number {
  const acct_len = Math.ceil(ulen / PAGE_SIZE) * PAGE_SIZE;
  if (ulen > SZ_1G || !ulen) return -EFAULT;
  if (uaddr + acct_len > 2 ** 64) return -EOVERFLOW;
  return 0;
}

/**
 * io_buffer_validate(iov): a NULL base with a length ⇒ -EFAULT (a NULL base alone is a
 * sparse slot, 0); then io_validate_user_buf_range.
 * @kernel io_uring/rsrc.c:io_buffer_validate (all versions)
 */
export function io_buffer_validate(iov: iovec): number {
  if (!iov.iov_base) return iov.iov_len ? -EFAULT : 0;
  return io_validate_user_buf_range(iov.iov_base, iov.iov_len);
}

/** PageCompound(page) */
function PageCompound(p: page): boolean {
  return folio_test_large(page_folio(p));
}

/**
 * headpage_already_acct(ctx, pages, nr_pages, hpage): the compound page was charged
 * already, by an earlier page of this buffer or by a registered buffer.
 * @kernel io_uring/rsrc.c:headpage_already_acct (all versions)
 */
function headpage_already_acct(
  ctx: io_ring_ctx,
  pages: page[],
  nr_pages: number,
  hpage: number,
): boolean {
  for (let i = 0; i < nr_pages; i++) {
    if (PageCompound(pages[i]!) && page_folio(pages[i]!) === hpage) return true;
  }
  for (const imu of ctx.buf_table) {
    if (!imu) continue;
    for (const bv of imu.bvec) {
      if (PageCompound(bv.bv_page) && page_folio(bv.bv_page) === hpage) return true;
    }
  }
  return false;
}

/**
 * io_buffer_account_pin(ctx, pages, nr_pages, imu, last_hpage): one page charged per
 * small page, a compound page's whole size once.
 * @kernel io_uring/rsrc.c:io_buffer_account_pin (all versions)
 * Return: 0 or -ENOMEM (over RLIMIT_MEMLOCK).
 */
function io_buffer_account_pin(
  ctx: io_ring_ctx,
  pages: page[],
  nr_pages: number,
  imu: io_mapped_ubuf,
  last_hpage: { value: number | null },
): number {
  imu.acct_pages = 0;
  for (let i = 0; i < nr_pages; i++) {
    if (!PageCompound(pages[i]!)) {
      imu.acct_pages++;
    } else {
      const hpage = page_folio(pages[i]!);
      if (hpage === last_hpage.value) continue;
      last_hpage.value = hpage;
      if (headpage_already_acct(ctx, pages, i, hpage)) continue;
      imu.acct_pages += folio_nr_pages(hpage);
    }
  }
  if (!imu.acct_pages) return 0;
  const ret = ctx.io_account_mem(imu.acct_pages);
  if (ret) imu.acct_pages = 0;
  return ret;
}

/** struct io_imu_folio_data */
interface io_imu_folio_data {
  nr_pages_head: number;
  nr_pages_mid: number;
  folio_shift: number;
  nr_folios: number;
  first_folio_page_idx: number;
}

/**
 * io_check_coalesce_buffer(page_array, nr_pages, data): whether the pages are runs of
 * whole, same-sized large folios (the first and last may be partial).
 * @kernel io_uring/rsrc.c:io_check_coalesce_buffer (v6.10+)
 */
function io_check_coalesce_buffer(
  pages: page[],
  nr_pages: number,
  data: io_imu_folio_data,
): boolean {
  let f = page_folio(pages[0]!);
  let count = 1;
  let nr_folios = 1;
  data.nr_pages_mid = folio_nr_pages(f);
  data.folio_shift = 12 + folio_order(f);
  data.first_folio_page_idx = pages[0]! - f;
  for (let i = 1; i < nr_pages; i++) {
    if (page_folio(pages[i]!) === f && pages[i] === pages[i - 1]! + 1) {
      count++;
      continue;
    }
    if (nr_folios === 1) {
      if (pages[i - 1]! - f !== data.nr_pages_mid - 1) return false;
      data.nr_pages_head = count;
    } else if (count !== data.nr_pages_mid) {
      return false;
    }
    f = page_folio(pages[i]!);
    if (12 + folio_order(f) !== data.folio_shift || pages[i]! - f !== 0) return false;
    count = 1;
    nr_folios++;
  }
  if (nr_folios === 1) data.nr_pages_head = count;
  data.nr_folios = nr_folios;
  return true;
}

/**
 * io_coalesce_buffer(pages, nr_pages, data): one entry per folio (its head), every pin
 * but one per folio dropped (the whole folio stays pinned).
 * @kernel io_uring/rsrc.c:io_coalesce_buffer (v6.10+)
 * Return: the new page array.
 */
function io_coalesce_buffer(pages: page[], nr_pages: number, data: io_imu_folio_data): page[] {
  const out: page[] = [];
  let left = nr_pages;
  let j = 0;
  for (let i = 0; i < data.nr_folios; i++) {
    const p = page_folio(pages[j]!) as number as page;
    let nr = i ? data.nr_pages_mid : data.nr_pages_head;
    nr = Math.min(nr, left);
    // Drop all but one ref, the entire folio will remain pinned.
    if (nr > 1) unpin_user_folio(page_folio(p), nr - 1);
    j += nr;
    left -= nr;
    out.push(p);
  }
  return out;
}

/**
 * The pre-v6.10 pin: pin_user_pages under mmap_lock, then the VMA checks (same vm_file
 * throughout, files only shmem or hugetlbfs).
 * @kernel io_uring/rsrc.c:io_pin_pages (v5.x–v6.9)
 * Return: the pages or -errno.
 */
function* io_pin_pages_legacy(ubuf: number, len: number): Op<page[] | number> {
  const mm = get_current().mm!;
  const end = Math.floor((ubuf + len + PAGE_SIZE - 1) / PAGE_SIZE);
  const start = Math.floor(ubuf / PAGE_SIZE);
  const nr_pages = end - start;
  const pages: page[] = [];
  let ret = 0;
  yield* mmap_read_lock(mm);
  const pret = yield* pin_user_pages(ubuf, nr_pages, FOLL_WRITE | FOLL_LONGTERM, pages);
  if (pret === nr_pages) {
    const vmas = vmas_in_range(mm, ubuf, ubuf + len);
    const file = vmas[0]?.vm_file ?? null;
    for (const vma of vmas) {
      if (since(6, 3) && vma.vm_file !== file) {
        ret = -EINVAL;
        break;
      }
      if (!vma.vm_file) continue;
      if (!vma_is_shmem(vma) && !(vma.vm_flags & VM_HUGETLB)) {
        ret = -EOPNOTSUPP;
        break;
      }
    }
  } else {
    ret = pret < 0 ? pret : -EFAULT;
  }
  yield* mmap_read_unlock(mm);
  if (ret) {
    if (pret > 0) unpin_user_pages(pages, pret);
    return ret;
  }
  return pages;
}

/**
 * io_sqe_buffer_register(ctx, iov, last_hpage): pins the buffer, coalesces large
 * folios, charges the pages, and builds the bvec table. A NULL base registers nothing
 * (a sparse slot).
 * @kernel io_uring/rsrc.c:io_sqe_buffer_register (all versions)
 * Return: the mapped buffer, null, or -errno (everything pinned is unpinned on error).
 */
export function* io_sqe_buffer_register(
  ctx: io_ring_ctx,
  iov: iovec,
  last_hpage: { value: number | null },
): Op<io_mapped_ubuf | null | number> {
  if (!iov.iov_base) return null;
  const got = since(6, 10)
    ? yield* io_pin_pages(iov.iov_base, iov.iov_len)
    : yield* io_pin_pages_legacy(iov.iov_base, iov.iov_len);
  if (typeof got === 'number') return got;
  let pages = got;
  let nr_pages = pages.length;
  let coalesced = false;
  const data: io_imu_folio_data = {
    nr_pages_head: 0,
    nr_pages_mid: 0,
    folio_shift: 12,
    nr_folios: 0,
    first_folio_page_idx: 0,
  };
  // If it's huge page(s), try to coalesce them into fewer bvec entries.
  if (since(6, 10) && nr_pages > 1 && io_check_coalesce_buffer(pages, nr_pages, data)) {
    if (data.nr_pages_mid !== 1) {
      pages = io_coalesce_buffer(pages, nr_pages, data);
      nr_pages = data.nr_folios;
      coalesced = true;
    }
  }
  const folio_shift = coalesced ? data.folio_shift : 12;
  const imu: io_mapped_ubuf = {
    ubuf: iov.iov_base,
    len: iov.iov_len,
    nr_bvecs: nr_pages,
    folio_shift,
    acct_pages: 0,
    bvec: [],
    dir: IO_IMU_DEST | IO_IMU_SOURCE,
  };
  const ret = io_buffer_account_pin(ctx, pages, nr_pages, imu, last_hpage);
  if (ret) {
    for (let i = 0; i < nr_pages; i++) unpin_user_folio_compat(pages[i]!);
    return ret;
  }
  let size = iov.iov_len;
  let off = iov.iov_base % PAGE_SIZE;
  if (coalesced) off += data.first_folio_page_idx * PAGE_SIZE;
  for (let i = 0; i < nr_pages; i++) {
    const vec_len = Math.min(size, 2 ** folio_shift - off);
    imu.bvec.push({ bv_page: pages[i]!, bv_len: vec_len, bv_offset: off });
    off = 0;
    size -= vec_len;
  }
  return imu;
}

/** unpin_user_folio(folio, 1) (v6.12+) or unpin_user_page (before). */
function unpin_user_folio_compat(p: page): void {
  if (since(6, 12)) unpin_user_folio(page_folio(p), 1);
  else unpin_user_page(p);
}

/**
 * io_buffer_unmap(ctx, imu): returns the charge and drops the pins (one per bvec).
 * @kernel io_uring/rsrc.c:io_buffer_unmap, io_release_ubuf (all versions)
 */
export function io_buffer_unmap(ctx: io_ring_ctx, imu: io_mapped_ubuf): void {
  if (imu.acct_pages) ctx.io_unaccount_mem(imu.acct_pages);
  for (const bv of imu.bvec) unpin_user_folio_compat(bv.bv_page);
}

/**
 * io_sqe_buffers_unregister(ctx): no table ⇒ -ENXIO; otherwise every buffer is unmapped.
 * @kernel io_uring/rsrc.c:io_sqe_buffers_unregister (all versions)
 * Locking: ctx->uring_lock held.
 * Return: 0 or -ENXIO.
 */
export function io_sqe_buffers_unregister(ctx: io_ring_ctx): number {
  if (!ctx.buf_table_nr) return -ENXIO;
  for (let i = ctx.buf_table.length - 1; i >= 0; i--) {
    const imu = ctx.buf_table[i];
    if (imu) io_buffer_unmap(ctx, imu);
  }
  ctx.buf_table = [];
  ctx.buf_table_nr = 0;
  return 0;
}

/**
 * io_sqe_buffers_register(ctx, arg, nr_args, tags): a table already registered ⇒ -EBUSY;
 * 0 or more than IORING_MAX_REG_BUFFERS buffers ⇒ -EINVAL; each buffer is validated and
 * registered in turn; on an error the buffers registered so far are unregistered.
 * @kernel io_uring/rsrc.c:io_sqe_buffers_register (all versions)
 * Locking: ctx->uring_lock held.
 * Return: 0 or -errno.
 * Model: `iovs` holds the user iovec array's contents; tags are not modelled.
 */
export function* io_sqe_buffers_register(
  ctx: io_ring_ctx,
  iovs: readonly iovec[] | null,
  nr_args: number,
): Op<number> {
  const last_hpage = { value: null as number | null };
  if (ctx.buf_table_nr) return -EBUSY;
  if (!nr_args || nr_args > IORING_MAX_REG_BUFFERS) return -EINVAL;
  const table: (io_mapped_ubuf | null)[] = new Array<io_mapped_ubuf | null>(nr_args).fill(null);
  let ret = 0;
  for (let i = 0; i < nr_args; i++) {
    const iov: iovec = iovs
      ? (iovs[i] ?? { iov_base: 0, iov_len: 0 })
      : { iov_base: 0, iov_len: 0 };
    if (iovs) {
      ret = io_buffer_validate(iov);
      if (ret) break;
    }
    // The new table is not yet ctx->buf_table: headpage_already_acct() sees only the
    // buffer being registered.
    const node = yield* io_sqe_buffer_register(ctx, iov, last_hpage);
    if (typeof node === 'number') {
      ret = node;
      break;
    }
    table[i] = node;
  }
  ctx.buf_table = table;
  ctx.buf_table_nr = nr_args;
  if (ret) io_sqe_buffers_unregister(ctx);
  return ret;
}

/**
 * io_import_fixed(ddir, iter, imu, buf_addr, len): a bvec iterator over the part of the
 * registered buffer [buf_addr, buf_addr + len); outside the buffer, or longer than
 * MAX_RW_COUNT ⇒ -EFAULT.
 * @kernel io_uring/rsrc.c:io_import_fixed, validate_fixed_range (all versions)
 * Return: the iterator or -EFAULT.
 */
export function io_import_fixed(
  ddir: number,
  imu: io_mapped_ubuf,
  buf_addr: number,
  len: number,
): iov_iter | number {
  const buf_end = buf_addr + len;
  // not inside the mapped region
  if (buf_addr < imu.ubuf || buf_end > imu.ubuf + imu.len) return -EFAULT;
  if (len > MAX_RW_COUNT) return -EFAULT;
  if (!(imu.dir & (1 << ddir))) return -EFAULT;
  const offset = buf_addr - imu.ubuf;
  const iter = iov_iter_bvec(ddir, imu.bvec, imu.nr_bvecs, offset + len);
  iov_iter_advance(iter, offset);
  return iter;
}
