/**
 * shmem/tmpfs read(2)/write(2) and truncate: ->read_iter copies cached pages out (holes
 * read as zeroes without allocating), ->write_iter is the generic buffered write with
 * shmem's write_begin (shmem_get_folio with SGP_WRITE) and write_end (zero what the copy
 * did not fill, mark uptodate and dirty, grow i_size), ->open allows O_DIRECT from v6.6
 * (served by the buffered path), and ->setattr changes the size under the seals.
 *
 * The hooks are attached to shmem_file_operations (mm/shmem.ts) when this module loads,
 * so tmpfs files, memfds and shared anonymous memory read and write through them.
 *
 * Left out: huge pages, swap, fallocate, the F_SEAL_WRITE/FUTURE_WRITE checks of
 * write_begin, block accounting.
 *
 * @kernel mm/shmem.c:shmem_file_read_iter, shmem_write_begin, shmem_write_end,
 *   shmem_setattr, shmem_file_open (v6.x); mm/filemap.c:generic_file_write_iter
 */
import type { Op } from '../../sched/index.js';
import type { address_space, file, folio, inode, page } from '../include/linux/mm_types.js';
import {
  ATTR_SIZE,
  FMODE_CAN_ODIRECT,
  IOCB_APPEND,
  set_fops_rw,
  set_fstype_iops,
  type iattr,
  type kiocb,
} from '../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../include/linux/uio.js';
import { EFAULT, EINVAL, EPERM } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { copy_page_to_iter, iov_iter_zero } from '../lib/iov_iter.js';
import { generic_perform_write, type write_ops } from './filemap.rw.js';
import {
  F_SEAL_GROW,
  F_SEAL_SHRINK,
  SGP_READ,
  SGP_WRITE,
  SHMEM_I,
  shmem_file_operations,
  shmem_get_folio,
} from './shmem.js';
import { folio_mark_dirty, folio_unlock, truncate_setsize } from './filemap.js';
import { folio_mark_uptodate, folio_test_uptodate } from '../include/linux/page-flags.js';
import { folio_put } from '../include/linux/page_ref.js';
import { phys_read, phys_write } from './sparse.js';
import { since } from '../version.js';

/**
 * shmem_file_read_iter(iocb, to): copies the file from ki_pos up to i_size; a hole is
 * copied from the zero page (nothing is allocated).
 * @kernel mm/shmem.c:shmem_file_read_iter (v4.x+)
 * Return: bytes read, or -errno when nothing was.
 */
export function* shmem_file_read_iter(iocb: kiocb, to: iov_iter): Op<number> {
  const inode = iocb.ki_filp.f_inode;
  let retval = 0;
  let error = 0;
  while (iov_iter_count(to) > 0) {
    const i_size = inode.i_size;
    if (iocb.ki_pos >= i_size) break;
    const index = Math.floor(iocb.ki_pos / PAGE_SIZE);
    const offset = iocb.ki_pos % PAGE_SIZE;
    const nr = Math.min(PAGE_SIZE - offset, i_size - iocb.ki_pos, iov_iter_count(to));
    const r = yield* shmem_get_folio(inode, index, SGP_READ);
    if (r !== null && r < 0) {
      error = r === -EINVAL ? 0 : r;
      break;
    }
    let ret: number;
    if (r === null) {
      ret = yield* iov_iter_zero(nr, to);
    } else {
      const f = r as folio;
      yield* folio_unlock(f);
      ret = yield* copy_page_to_iter(f as number as page, offset, nr, to);
      folio_put(f);
    }
    retval += ret;
    iocb.ki_pos += ret;
    if (ret < nr) {
      error = -EFAULT;
      break;
    }
  }
  return retval ? retval : error;
}

/**
 * shmem_write_begin(file, mapping, pos, len): the folio at pos from shmem_get_folio
 * (SGP_WRITE: allocated if missing, not zeroed), locked.
 * @kernel mm/shmem.c:shmem_write_begin (all versions)
 * Return: the folio or -errno.
 */
function* shmem_write_begin(
  _filp: file,
  mapping: address_space,
  pos: number,
  _len: number,
): Op<folio | number> {
  const r = yield* shmem_get_folio(mapping.host, Math.floor(pos / PAGE_SIZE), SGP_WRITE);
  if (r === null) return -EFAULT;
  return r;
}

/**
 * shmem_write_end(file, mapping, pos, len, copied, folio): a new folio gets zeroes where
 * the copy did not write, becomes uptodate; i_size grows; the folio is dirtied, unlocked
 * and put.
 * @kernel mm/shmem.c:shmem_write_end (all versions)
 * Return: copied.
 */
function* shmem_write_end(
  _filp: file,
  mapping: address_space,
  pos: number,
  _len: number,
  copied: number,
  f: folio,
): Op<number> {
  const inode = mapping.host;
  if (pos + copied > inode.i_size) inode.i_size = pos + copied;
  if (!folio_test_uptodate(f)) {
    if (copied < PAGE_SIZE) {
      const from = pos % PAGE_SIZE;
      const data = phys_read(f * PAGE_SIZE + from, copied);
      phys_write(f * PAGE_SIZE, new Uint8Array(PAGE_SIZE));
      phys_write(f * PAGE_SIZE + from, data);
    }
    folio_mark_uptodate(f);
  }
  yield* folio_mark_dirty(f);
  yield* folio_unlock(f);
  folio_put(f);
  return copied;
}

const shmem_write_ops: write_ops = { write_begin: shmem_write_begin, write_end: shmem_write_end };

/**
 * generic_file_write_iter(iocb, from) for shmem: O_APPEND writes at i_size, then the
 * buffered write (O_DIRECT on tmpfs is served buffered: shmem's direct_IO is a no-op).
 * @kernel mm/filemap.c:generic_file_write_iter, __generic_file_write_iter (all versions)
 * Return: bytes written or -errno.
 */
export function* shmem_file_write_iter(iocb: kiocb, from: iov_iter): Op<number> {
  if (iocb.ki_flags & IOCB_APPEND) iocb.ki_pos = iocb.ki_filp.f_inode.i_size;
  if (!iov_iter_count(from)) return 0;
  return yield* generic_perform_write(iocb, from, shmem_write_ops);
}

/**
 * shmem_file_open(inode, file): tmpfs files accept O_DIRECT from v6.6 (e88e0d366f9c
 * "tmpfs: trivial support for direct IO").
 * @kernel mm/shmem.c:shmem_file_open (v6.6+; generic_file_open before)
 * Return: 0.
 */
export function* shmem_file_open(_i: inode, filp: file): Op<number> {
  if (since(6, 6)) filp.f_mode |= FMODE_CAN_ODIRECT;
  return 0;
}

/**
 * shmem_setattr(idmap, dentry, attr) for ATTR_SIZE: F_SEAL_SHRINK refuses a smaller size
 * and F_SEAL_GROW a larger one (-EPERM); a smaller size unmaps and drops the pages past
 * it (truncate_setsize: unmap_mapping_range, shmem_truncate_range).
 * @kernel mm/shmem.c:shmem_setattr (all versions)
 * Return: 0 or -EPERM.
 */
export function* shmem_setattr(i: inode, attr: iattr): Op<number> {
  if (!(attr.ia_valid & ATTR_SIZE)) return 0;
  const oldsize = i.i_size;
  const newsize = attr.ia_size;
  if (newsize === oldsize) return 0;
  const seals = SHMEM_I(i)?.seals ?? 0;
  if ((newsize < oldsize && seals & F_SEAL_SHRINK) || (newsize > oldsize && seals & F_SEAL_GROW))
    return -EPERM;
  if (newsize > oldsize) {
    i.i_size = newsize;
    return 0;
  }
  yield* truncate_setsize(i, newsize);
  return 0;
}

set_fops_rw(shmem_file_operations, {
  read_iter: shmem_file_read_iter,
  write_iter: shmem_file_write_iter,
  open: shmem_file_open,
});
set_fstype_iops('tmpfs', { name: 'shmem_inode_operations', setattr: shmem_setattr });
