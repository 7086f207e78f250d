/**
 * The memory character devices (drivers/char/mem.c): /dev/mem, /dev/zero and /dev/null.
 *
 * /dev/zero and /dev/null: reads of /dev/zero give zeroes, writes to either are swallowed,
 * /dev/null reads end at once; mmap of /dev/zero is shared anonymous memory
 * (shmem_zero_setup: a "dev/zero" shmem file replaces the VMA's file) when MAP_SHARED, and
 * plain private anonymous memory otherwise (vma_set_anonymous: no vm_ops, though vm_file
 * stays /dev/zero).
 *
 * /dev/mem (CONFIG_DEVMEM): physical memory by offset. open needs CAP_SYS_RAWIO; read and
 * write go page by page through page_is_allowed() (CONFIG_STRICT_DEVMEM: x86
 * devmem_is_allowed: RAM refused, low-1 MiB RAM zero-filled, exclusive iomem refused);
 * mmap is remap_pfn_range of vm_pgoff (the pfn) with vm_ops whose only method is
 * ->access = generic_access_phys. From v5.8 (3234ac664a87 "/dev/mem: Revoke mappings when
 * a driver claims the region") all opens share one address space (devmem_inode, v5.8-
 * v5.11; iomem_get_mapping() in kernel/resource.c from v5.12, 71a1d8ed900f) so that a
 * driver's request_mem_region() can zap every /dev/mem mapping of the claimed range
 * (revoke_devmem here for v5.8-v5.11, revoke_iomem in kernel/resource.ts from v5.12).
 *
 * Left out: /dev/port, /dev/full, /dev/random, /dev/kmsg, memory_lseek (pread/pwrite
 * give the offset), splice, security_locked_down (no lockdown: 0), the nommu
 * get_unmapped_area_mem and private_mapping_ok (x86 has an MMU: 1), should_stop_iteration
 * (no signals during the copy), the get_unmapped_area THP alignment of private /dev/zero
 * mappings; /dev/mem's mmap_mem_prepare conversion (late 2025, same checks, remap errors
 * still -EAGAIN) is modelled as mmap_mem.
 *
 * @kernel drivers/char/mem.c:mmap_zero (mmap_zero_prepare v6.17+), read_iter_zero,
 *   read_iter_null, write_iter_null, zero_fops, null_fops, read_mem, write_mem, mmap_mem,
 *   open_port/open_mem, mem_fops, mmap_mem_ops (all versions); devmem_init_inode,
 *   revoke_devmem (v5.8-v5.11)
 */
import type { Op } from '../../../sched/index.js';
import type {
  file,
  file_operations,
  inode,
  super_block,
  vm_area_struct,
  vm_operations_struct,
} from '../../include/linux/mm_types.js';
import { VM_SHARED } from '../../include/linux/mm.js';
import {
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  type file_operations_rw,
  type kiocb,
} from '../../include/linux/fs.js';
import { iov_iter_count, type iov_iter } from '../../include/linux/uio.js';
import { EAGAIN, EFAULT, EINVAL, ENOSYS, EPERM } from '../../include/linux/errno.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { iov_iter_advance, iov_iter_zero } from '../../lib/iov_iter.js';
import { shmem_zero_setup } from '../../mm/shmem.js';
import { FMODE_UNSIGNED_OFFSET } from '../../include/linux/fs.js';
import { get_current } from '../../include/linux/sched.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import {
  iomem_get_mapping,
  iomem_revoke_hooks,
  resource_size,
  type resource,
} from '../../kernel/resource.js';
import { devmem_is_allowed } from '../../arch/x86/mm/init.js';
import {
  phys_mem_access_prot,
  phys_mem_access_prot_allowed,
} from '../../arch/x86/mm/pat/memtype.devmem.js';
import type { pgprot_ptr } from '../../arch/x86/mm/pat/memtype.js';
import { copy_from_user, copy_to_user } from '../../arch/x86/mm/fault.js';
import { memmap, phys_read, phys_write } from '../../mm/sparse.js';
import { generic_access_phys, remap_pfn_range } from '../../mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../../mm/memory.zap.js';
import { new_inode } from '../../fs/inode.js';

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

/* ------------------------------------------------------------------------------------ */
/* /dev/mem                                                                              */
/* ------------------------------------------------------------------------------------ */

/**
 * *ppos as a phys_addr_t: loff_t is signed, phys_addr_t unsigned 64-bit (a negative
 * offset, possible with FMODE_UNSIGNED_OFFSET, is a huge address). The kernel's
 * `p != *ppos` checks (0 / -EFBIG) only fire where phys_addr_t is 32-bit, not on x86-64.
 */
function ppos_phys(pos: number): number {
  return pos < 0 ? pos + 2 ** 64 : pos;
}

/** DEVMEM_MINOR: the minor number of /dev/mem. */
export const DEVMEM_MINOR = 1;

/**
 * size_inside_page(start, size): the bytes from start to the end of its page, at most size.
 * @kernel drivers/char/mem.c:size_inside_page (all versions)
 */
function size_inside_page(start: number, size: number): number {
  const sz = PAGE_SIZE - (start % PAGE_SIZE);
  return Math.min(sz, size);
}

/**
 * __pa(high_memory) on x86-64: the end of the directly mapped RAM, max_pfn << PAGE_SHIFT
 * (e820__end_of_ram_pfn: the end of the highest System RAM range).
 */
function pa_high_memory(): number {
  let end = 0;
  for (const r of memmap().map) if (r.kind === 'ram' && r.end > end) end = r.end;
  return end;
}

/**
 * valid_phys_addr_range(addr, count): read()/write() stay below the top of RAM (x86 has
 * no ARCH_HAS_VALID_PHYS_ADDR_RANGE, so the generic rule applies: MMIO above the last
 * RAM byte cannot be read with read(), only mapped).
 * @kernel drivers/char/mem.c:valid_phys_addr_range (all versions, generic)
 */
function valid_phys_addr_range(addr: number, count: number): boolean {
  return addr + count <= pa_high_memory();
}

/**
 * valid_mmap_phys_addr_range(pfn, size): always 1 (generic, x86).
 * @kernel drivers/char/mem.c:valid_mmap_phys_addr_range (all versions, generic)
 */
function valid_mmap_phys_addr_range(_pfn: number, _size: number): boolean {
  return true;
}

/**
 * page_is_allowed(pfn): devmem_is_allowed(pfn) under CONFIG_STRICT_DEVMEM, else 1.
 * @kernel drivers/char/mem.c:page_is_allowed (all versions)
 * Return: 0, 1 or 2 (zero-filled).
 */
export function page_is_allowed(pfn: number): number {
  if (currentKernel().config.CONFIG_STRICT_DEVMEM !== true) return 1;
  return devmem_is_allowed(pfn);
}

/**
 * range_is_allowed(pfn, size): every page of [pfn, pfn + size) passes
 * devmem_is_allowed() (any non-zero value, so zero-filled low-1 MiB RAM may be mapped)
 * under CONFIG_STRICT_DEVMEM, else 1.
 * @kernel drivers/char/mem.c:range_is_allowed (v5.7-v6.15); include/linux/io.h
 *   (v6.16+, 1b3f2bd04d90 "x86/devmem: Remove duplicate range_is_allowed() definition",
 *   same body)
 * Return: 1 or 0.
 */
export function range_is_allowed(pfn: number, size: number): number {
  if (currentKernel().config.CONFIG_STRICT_DEVMEM !== true) return 1;
  const to = pfn * PAGE_SIZE + size;
  for (let cursor = pfn * PAGE_SIZE; cursor < to; cursor += PAGE_SIZE, pfn++) {
    if (!devmem_is_allowed(pfn)) return 0;
  }
  return 1;
}

/**
 * read_mem(file, buf, count, ppos): reads physical memory at *ppos into the user buffer,
 * page by page: a page page_is_allowed() refuses ends the read with -EPERM (even after
 * earlier pages were copied: the bytes already copied are lost, *ppos is not advanced);
 * a zero-filled page (2) gives zeros; else the bytes are copied through a temporary
 * mapping (xlate_dev_mem_ptr, copy_from_kernel_nofault into a bounce page, copy_to_user);
 * a user-copy fault ends it with -EFAULT likewise. A range past the top of RAM is -EFAULT.
 * @kernel drivers/char/mem.c:read_mem (all versions; copy_from_kernel_nofault was
 *   probe_kernel_read before v5.8)
 * Locking: none held; may fault on the user buffer.
 * Return: the byte count or -errno.
 * Model: xlate_dev_mem_ptr and copy_from_kernel_nofault never fail (no unmapped or
 *   poisoned physical memory); the bytes are the machine's (phys_read).
 */
export function* read_mem(_f: file, buf: number, count: number, ppos: { pos: number }): Op<number> {
  let p = ppos_phys(ppos.pos);
  let read = 0;
  if (!valid_phys_addr_range(p, count)) return -EFAULT;
  while (count > 0) {
    const sz = size_inside_page(p, count);
    let err = -EPERM;
    const allowed = page_is_allowed(Math.floor(p / PAGE_SIZE));
    if (!allowed) return err;
    err = -EFAULT;
    let remaining: number;
    if (allowed === 2) {
      /* Show zeros for restricted memory. (clear_user) */
      remaining = yield* copy_to_user(buf, new Uint8Array(sz), sz);
    } else {
      const bounce = phys_read(p, sz);
      remaining = yield* copy_to_user(buf, bounce, sz);
    }
    if (remaining) return err;
    buf += sz;
    p += sz;
    count -= sz;
    read += sz;
  }
  ppos.pos += read;
  return read;
}

/**
 * write_mem(file, buf, count, ppos): writes the user buffer to physical memory at *ppos,
 * page by page: a refused page is -EPERM (what was written stays written, but the count
 * is lost); a zero-filled page (2) is skipped silently but counted; a user-copy fault
 * ends the write with the bytes written so far, or -EFAULT when none.
 * @kernel drivers/char/mem.c:write_mem (all versions)
 * Locking: none held; may fault on the user buffer.
 * Return: the byte count or -errno.
 * Model: xlate_dev_mem_ptr never fails; a partial copy_from_user counts as a fault of the
 *   whole page's tail (the bytes before it are written).
 */
export function* write_mem(
  _f: file,
  buf: number,
  count: number,
  ppos: { pos: number },
): Op<number> {
  let p = ppos_phys(ppos.pos);
  let written = 0;
  if (!valid_phys_addr_range(p, count)) return -EFAULT;
  while (count > 0) {
    const sz = size_inside_page(p, count);
    const allowed = page_is_allowed(Math.floor(p / PAGE_SIZE));
    if (!allowed) return -EPERM;
    /* Skip actual writing when a page is marked as restricted. */
    if (allowed === 1) {
      const data = new Uint8Array(sz);
      const copied = yield* copy_from_user(data, buf, sz);
      phys_write(p, data.subarray(0, sz - copied));
      if (copied) {
        written += sz - copied;
        if (written) break;
        return -EFAULT;
      }
    }
    buf += sz;
    p += sz;
    count -= sz;
    written += sz;
  }
  ppos.pos += written;
  return written;
}

/**
 * mmap_mem_ops: the vm_operations of a /dev/mem mapping: no ->fault (a zapped page
 * SIGBUSes), ->access = generic_access_phys for ptrace and /proc/<pid>/mem (R-CALL-1).
 * @kernel drivers/char/mem.c:mmap_mem_ops (all versions; .access under
 *   CONFIG_HAVE_IOREMAP_PROT, which x86 selects)
 */
export const mmap_mem_ops: vm_operations_struct = {
  name: 'mmap_mem_ops',
  access: generic_access_phys,
};

/**
 * mmap_mem(file, vma): maps physical memory: vm_pgoff is the first pfn. The offset must
 * fit phys_addr_t and not wrap (-EINVAL); valid_mmap_phys_addr_range (-EINVAL);
 * private_mapping_ok (-ENOSYS, nommu only); range_is_allowed per page (-EPERM);
 * phys_mem_access_prot_allowed (x86 PAT: -EINVAL, and the cache mode: UC- with O_SYNC);
 * phys_mem_access_prot; vm_ops = mmap_mem_ops; remap_pfn_range of the whole VMA (marks
 * it VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP; its failure is -EAGAIN). MAP_PRIVATE is
 * allowed (a COW pfnmap: vm_pgoff is the pfn, as remap_pfn_range requires).
 * @kernel drivers/char/mem.c:mmap_mem (all versions; mmap_mem_prepare with the same
 *   checks after the late-2025 mmap_prepare conversion)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* mmap_mem(f: file, vma: vm_area_struct): Op<number> {
  const size = vma.vm_end - vma.vm_start;
  const offset = BigInt(vma.vm_pgoff) * BigInt(PAGE_SIZE);
  const PHYS_ADDR_MAX = (1n << 64n) - 1n;
  /* Does it even fit in phys_addr_t? */
  if (offset > PHYS_ADDR_MAX) return -EINVAL;
  /* It's illegal to wrap around the end of the physical address space. */
  if (offset + BigInt(size) - 1n > PHYS_ADDR_MAX) return -EINVAL;
  if (!valid_mmap_phys_addr_range(vma.vm_pgoff, size)) return -EINVAL;
  /* private_mapping_ok(): 1 with an MMU. */
  if (currentKernel().config.CONFIG_MMU !== true) return -ENOSYS;
  if (!range_is_allowed(vma.vm_pgoff, size)) return -EPERM;
  const prot: pgprot_ptr = { pgprot: vma.vm_page_prot };
  if (!phys_mem_access_prot_allowed(f, vma.vm_pgoff, size, prot)) return -EINVAL;
  vma.vm_page_prot = phys_mem_access_prot(f, vma.vm_pgoff, size, prot.pgprot);
  vma.vm_ops = mmap_mem_ops;
  /* Remap-pfn-range will mark the range VM_IO */
  if (yield* remap_pfn_range(vma, vma.vm_start, vma.vm_pgoff, size, vma.vm_page_prot))
    return -EAGAIN;
  return 0;
}

/** Per-kernel /dev/mem state: devmem_inode (v5.8-v5.11). */
interface devmem_state {
  devmem_inode: inode | null;
}

function devmem_state(): devmem_state {
  const k = currentKernel();
  return ((k.sub.devmem as devmem_state | undefined) ??= { devmem_inode: null });
}

const devmem_fs_sb: super_block = { s_type: 'devmem', s_nowriteback: true };

/**
 * devmem_init_inode(): mounts the "devmem" pseudo file system, allocates the inode whose
 * address space all /dev/mem opens share, publishes it, and (model) registers
 * revoke_devmem with __request_region's revoke hooks.
 * @kernel drivers/char/mem.c:devmem_init_inode (v5.8-v5.11, 3234ac664a87; called from
 *   chr_dev_init for DEVMEM_MINOR)
 * Locking: none (init).
 * Return: 0.
 * Model: run on the first open of /dev/mem instead of at chr_dev_init; no mapping can
 *   exist before, so a revoke that finds no inode changes nothing either way.
 */
export function devmem_init_inode(): number {
  const st = devmem_state();
  if (st.devmem_inode) return 0;
  /*
   * Publish /dev/mem initialized.
   * Pairs with smp_load_acquire() in revoke_devmem().
   */
  st.devmem_inode = new_inode(devmem_fs_sb, 'anon');
  iomem_revoke_hooks().push(revoke_devmem);
  return 0;
}

/**
 * revoke_devmem(res): with CONFIG_IO_STRICT_DEVMEM, a driver claimed res: unless
 * devmem_is_allowed() still allows its first and last page (iomem=relaxed), zaps every
 * /dev/mem mapping of it: unmap_mapping_range(devmem_inode's mapping, res->start,
 * resource_size(res), 1) (R-REV-3). Called by __request_region for iomem_resource.
 * @kernel drivers/char/mem.c:revoke_devmem (v5.8-v5.11, 3234ac664a87; moved to
 *   kernel/resource.c as revoke_iomem in v5.12, 71a1d8ed900f)
 * Locking: no resource_lock; unmap_mapping_range takes i_mmap_rwsem and the page table
 *   locks (its steps).
 */
export function* revoke_devmem(res: resource): Op<void> {
  if (!since(5, 8) || since(5, 12)) return; // v5.12+: kernel/resource.c:revoke_iomem
  if (currentKernel().config.CONFIG_IO_STRICT_DEVMEM !== true) return;
  /* pairs with smp_store_release() in devmem_init_inode() */
  const i = devmem_state().devmem_inode;
  /*
   * Check that the initialization has completed. Losing the race
   * is ok because it means drivers are claiming resources before
   * the fs_initcall level of init and prevent /dev/mem from
   * establishing mappings.
   */
  if (!i) return;
  /*
   * The expectation is that the driver has successfully marked
   * the resource busy by this point, so devmem_is_allowed()
   * should start returning false, however for performance this
   * does not iterate the entire resource range.
   */
  if (
    devmem_is_allowed(Math.floor(res.start / PAGE_SIZE)) &&
    devmem_is_allowed(Math.floor(res.end / PAGE_SIZE))
  ) {
    /*
     * *cringe* iomem=relaxed says "go ahead, what's the
     * worst that can happen?"
     */
    return;
  }
  yield* unmap_mapping_range(i.i_mapping, res.start, resource_size(res), 1);
}

/**
 * open_port(inode, filp) = open_mem: CAP_SYS_RAWIO or -EPERM; security_locked_down
 * (LOCKDOWN_DEV_MEM; no lockdown in the model); then for /dev/mem from v5.8 the file's
 * f_mapping becomes the shared address space (devmem_inode's, v5.8-v5.11, which also
 * becomes the device inode's i_mapping; iomem_get_mapping() from v5.12), so every
 * mapping of /dev/mem is in one i_mmap tree for the revoke.
 * @kernel drivers/char/mem.c:open_port, open_mem (all versions; the shared mapping from
 *   v5.8, 3234ac664a87; iomem_get_mapping from v5.12, 71a1d8ed900f)
 * Locking: none.
 * Return: 0 or -EPERM.
 * Model: the inode's i_mapping is not rewritten (read-only in the model); only f_mapping
 *   matters to mmap. CAP_SYS_RAWIO is read from the task's capability set.
 */
export function* open_port(_i: inode, filp: file): Op<number> {
  if (!get_current().caps.has('CAP_SYS_RAWIO')) return -EPERM;
  /* security_locked_down(LOCKDOWN_DEV_MEM): 0 */
  if (!since(5, 8)) return 0;
  /* iminor(inode) == DEVMEM_MINOR: the model uses open_port for /dev/mem only */
  /*
   * Use a unified address space to have a single point to manage
   * revocations when drivers want to take over a /dev/mem mapped
   * range.
   */
  if (since(5, 12)) {
    filp.f_mapping = iomem_get_mapping();
  } else {
    devmem_init_inode();
    filp.f_mapping = devmem_state().devmem_inode!.i_mapping;
  }
  return 0;
}

/** open_mem: open_port. */
export const open_mem = open_port;

/** mem_fops: /dev/mem (read_mem, write_mem, mmap_mem, open_mem; FMODE_UNSIGNED_OFFSET). */
export const mem_fops: file_operations & file_operations_rw = {
  name: 'mem_fops',
  read: read_mem,
  write: write_mem,
  mmap: mmap_mem,
  open: open_mem,
  fmode: FMODE_UNSIGNED_OFFSET,
};
