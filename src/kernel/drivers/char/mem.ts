/**
 * /dev/zero and /dev/null (drivers/char/mem.c): reads of /dev/zero give zeroes, writes to
 * either are swallowed, /dev/null reads end at once; mmap of /dev/zero is shared
 * anonymous memory (shmem_zero_setup: a "dev/zero" shmem file replaces the VMA's file)
 * when MAP_SHARED, and plain private anonymous memory otherwise (vma_set_anonymous: no
 * vm_ops, though vm_file stays /dev/zero).
 *
 * Left out: /dev/mem, /dev/port, /dev/full, /dev/random (other modules or unmodelled),
 * splice, the get_unmapped_area THP alignment of private /dev/zero mappings.
 *
 * @kernel drivers/char/mem.c:mmap_zero (mmap_zero_prepare v6.17+), read_iter_zero,
 *   read_iter_null, write_iter_null, zero_fops, null_fops (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type { file, file_operations, vm_area_struct } from '../../include/linux/mm_types.js';
import { VM_SHARED } from '../../include/linux/mm.js';
import {
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  type file_operations_rw,
  type kiocb,
} from '../../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../../include/linux/uio.js';
import { EFAULT } from '../../include/linux/errno.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { iov_iter_advance, iov_iter_zero } from '../../lib/iov_iter.js';
import { shmem_zero_setup } from '../../mm/shmem.js';

/**
 * vma_set_anonymous(vma): the VMA becomes anonymous memory (vm_ops = NULL).
 * @kernel include/linux/mm.h:vma_set_anonymous (all versions)
 */
export function vma_set_anonymous(vma: vm_area_struct): void {
  vma.vm_ops = null;
}

/**
 * mmap_zero(file, vma): MAP_SHARED ⇒ shmem_zero_setup; private ⇒ anonymous memory.
 * @kernel drivers/char/mem.c:mmap_zero (all versions; mmap_zero_prepare with
 *   shmem_zero_setup_desc in v6.17+, same effect)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno (shmem_zero_setup's).
 */
export function* mmap_zero(_file: file, vma: vm_area_struct): Op<number> {
  if (vma.vm_flags & VM_SHARED) return shmem_zero_setup(vma);
  vma_set_anonymous(vma);
  return 0;
}

/**
 * read_iter_zero(iocb, iter): fills the iterator with zeroes, a page at a time; a fault
 * part-way returns what was done (or -EFAULT when nothing was).
 * @kernel drivers/char/mem.c:read_iter_zero (all versions)
 * Return: bytes written into the iterator or -EFAULT.
 */
export function* read_iter_zero(_iocb: kiocb, iter: iov_iter): Op<number> {
  let written = 0;
  while (iov_iter_count(iter)) {
    const chunk = Math.min(iov_iter_count(iter), PAGE_SIZE);
    const n = yield* iov_iter_zero(chunk, iter);
    written += n;
    if (n < chunk) return written ? written : -EFAULT;
  }
  return written;
}

/**
 * read_iter_null(iocb, to): end of file.
 * @kernel drivers/char/mem.c:read_iter_null (all versions)
 */
export function* read_iter_null(_iocb: kiocb, _to: iov_iter): Op<number> {
  return 0;
}

/**
 * write_iter_null(iocb, from): everything is accepted and dropped.
 * @kernel drivers/char/mem.c:write_iter_null (all versions)
 * Return: the byte count.
 */
export function* write_iter_null(_iocb: kiocb, from: iov_iter): Op<number> {
  const count = iov_iter_count(from);
  iov_iter_advance(from, count);
  return count;
}

const fmode = FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;

/** zero_fops */
export const zero_fops: file_operations & file_operations_rw = {
  name: 'zero_fops',
  mmap: mmap_zero,
  read_iter: read_iter_zero,
  write_iter: write_iter_null,
  fmode,
};

/** null_fops */
export const null_fops: file_operations & file_operations_rw = {
  name: 'null_fops',
  read_iter: read_iter_null,
  write_iter: write_iter_null,
  fmode,
};
