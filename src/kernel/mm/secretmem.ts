/**
 * memfd_secret(2): memory only the owning process maps. The file lives on the
 * "secretmem" pseudo file system; its mapping must be shared (MAP_SHARED), is
 * VM_LOCKED|VM_DONTDUMP, and faults allocate zeroed pages that are removed from the
 * kernel's direct map (set_direct_map_invalid_noflush; the model keeps a per-frame flag)
 * before they go into the file's page cache. GUP refuses secretmem VMAs (check_vma_flags,
 * through vma_is_secretmem) and folios (GUP-fast, through folio_is_secretmem), so
 * pinning, /proc/<pid>/mem and O_DIRECT on it fail.
 *
 * The size can be set once (ftruncate of a file with a size is -EINVAL). The pages
 * return to the direct map when the inode is evicted (secretmem_free_folio in the
 * kernel, at each page's release).
 *
 * Left out: the secretmem_users overflow check (-ENFILE), migration (secretmem folios
 * refuse it; the model's migration has no a_ops->migrate_folio for them), large folios.
 *
 * @kernel mm/secretmem.c (v5.14+, 1507f51255c9 "mm: introduce memfd_secret system call to
 *   create "secret" memory areas"; on by default from v6.5, b758fe6df50d "mm/secretmem:
 *   make it on by default"; mmap_prepare v6.17+)
 */
import type { Op } from '../../sched/index.js';
import type {
  address_space,
  address_space_operations,
  file,
  file_operations,
  folio,
  inode,
  page,
  super_block,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { AS_UNEVICTABLE } from '../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_FAULT_LOCKED,
  VM_FAULT_OOM,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_SHARED,
} from '../include/linux/mm.js';
import {
  ATTR_SIZE,
  O_CLOEXEC,
  O_LARGEFILE,
  set_inode_iops,
  type iattr,
} from '../include/linux/fs.js';
import { EAGAIN, EEXIST, EINVAL, ENOSYS } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { since } from '../version.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { fd_install, get_unused_fd_flags, put_unused_fd } from '../include/linux/fdtable.js';
import { alloc_pages, GFP_USER, __GFP_ZERO } from './page_alloc.js';
import { folio_mark_uptodate, folio_raw_mapping } from '../include/linux/page-flags.js';
import { folio_put } from '../include/linux/page_ref.js';
import {
  FGP_LOCK,
  __filemap_get_folio,
  filemap_add_folio,
  noop_dirty_folio,
  truncate_inode_pages,
  truncate_setsize,
} from './filemap.js';
import { vmf_error } from './shmem.js';

/** The direct-map state of secretmem frames, per kernel. */
interface secretmem_state {
  enable: boolean;
  users: number;
  /** Frames removed from the direct map (set_direct_map_invalid_noflush). */
  readonly invalid: Set<number>;
  sb: super_block | null;
}

function state(): secretmem_state {
  const k = currentKernel();
  return ((k.sub.secretmem as secretmem_state | undefined) ??= {
    enable: since(6, 5),
    users: 0,
    invalid: new Set(),
    sb: null,
  });
}

/**
 * Sets the secretmem.enable boot parameter of a kernel instance (the tool's API; the
 * default is on from v6.5, off before).
 */
export function setSecretmemEnable(enable: boolean): void {
  state().enable = enable;
}

/**
 * secretmem_active(): whether any secretmem file exists (hibernation refuses then).
 * @kernel mm/secretmem.c:secretmem_active (v5.14+)
 */
export function secretmem_active(): boolean {
  return state().users !== 0;
}

/**
 * set_direct_map_invalid_noflush(page) / set_direct_map_default_noflush(page): the
 * frame leaves / rejoins the kernel's direct map.
 * @kernel arch/x86/mm/pat/set_memory.c:set_direct_map_invalid_noflush (v5.x+)
 * Return: 0.
 */
export function set_direct_map_invalid_noflush(p: page): number {
  state().invalid.add(p);
  return 0;
}
export function set_direct_map_default_noflush(p: page): number {
  state().invalid.delete(p);
  return 0;
}

/**
 * Whether the kernel's direct map still maps the frame (false for secretmem pages): the
 * model's stand-in for "the kernel would fault touching this page through its linear
 * address".
 */
export function pageInDirectMap(pfn: number): boolean {
  return !state().invalid.has(pfn);
}

/**
 * secretmem_aops: dirty_folio is a no-op, migration refused (-EBUSY), free_folio puts
 * the frame back into the direct map.
 * @kernel mm/secretmem.c:secretmem_aops (v5.14+)
 */
export const secretmem_aops: address_space_operations = {
  name: 'secretmem_aops',
  dirty_folio: (m, f) => noop_dirty_folio(m, f),
};

/**
 * secretmem_mapping(mapping): mapping->a_ops == &secretmem_aops.
 * @kernel include/linux/secretmem.h:secretmem_mapping (v6.10+; the same comparison inside
 *   folio_is_secretmem / page_is_secretmem before)
 */
export function secretmem_mapping(mapping: address_space | null): boolean {
  return mapping !== null && mapping.a_ops === secretmem_aops;
}

/**
 * folio_is_secretmem(folio): a page-cache folio of a secretmem file (GUP-fast checks it).
 * @kernel include/linux/secretmem.h:folio_is_secretmem (v6.1+; page_is_secretmem v5.14+)
 */
export function folio_is_secretmem(f: folio): boolean {
  return secretmem_mapping((folio_raw_mapping(f) as address_space | null) ?? null);
}

/**
 * secretmem_fault(vmf): beyond i_size ⇒ SIGBUS (vmf_error(-EINVAL)); the cached folio,
 * or a new zeroed one removed from the direct map, marked uptodate and added to the page
 * cache (a racing add retries); returned locked.
 * @kernel mm/secretmem.c:secretmem_fault (v5.14+)
 * Locking: mmap_lock held for read; the invalidate lock is left out.
 * Return: VM_FAULT_LOCKED with vmf->page, VM_FAULT_OOM or VM_FAULT_SIGBUS.
 */
export function* secretmem_fault(vmf: vm_fault): Op<vm_fault_t> {
  const mapping = vmf.vma.vm_file!.f_mapping;
  const inode = mapping.host;
  const offset = vmf.pgoff;
  if (offset * PAGE_SIZE >= inode.i_size) return vmf_error(-EINVAL);
  for (;;) {
    // retry:
    const r = yield* __filemap_get_folio(mapping, offset, FGP_LOCK, 0);
    let f: folio;
    if (r < 0) {
      const p = alloc_pages(GFP_USER | __GFP_ZERO, 0);
      if (p === null) return VM_FAULT_OOM;
      f = p as number as folio;
      set_direct_map_invalid_noflush(p);
      folio_mark_uptodate(f);
      const err = yield* filemap_add_folio(mapping, f, offset, GFP_USER);
      if (err) {
        folio_put(f);
        // If a split of large page was required, it already happened when we marked
        // the page invalid which guarantees that this call won't fail.
        set_direct_map_default_noflush(p);
        if (err === -EEXIST) continue;
        return vmf_error(err);
      }
      // flush_tlb_kernel_range(addr, addr + PAGE_SIZE)
    } else {
      f = r as folio;
    }
    vmf.page = f as number as page;
    return VM_FAULT_LOCKED;
  }
}

/** secretmem_vm_ops */
export const secretmem_vm_ops: vm_operations_struct = {
  name: 'secretmem_vm_ops',
  fault: secretmem_fault,
};

/**
 * vma_is_secretmem(vma): the VMA maps a memfd_secret file.
 * @kernel mm/secretmem.c:vma_is_secretmem (v5.14+; false without CONFIG_SECRETMEM)
 */
export function vma_is_secretmem(vma: vm_area_struct): boolean {
  if (!since(5, 14) || currentKernel().config.CONFIG_SECRETMEM !== true) return false;
  return vma.vm_ops === secretmem_vm_ops;
}

/**
 * mlock_future_ok(mm, flags, bytes): whether locking bytes more stays within
 * RLIMIT_MEMLOCK (or the task has CAP_IPC_LOCK).
 * @kernel mm/mmap.c:mlock_future_ok (v6.5+; mlock_future_check returning -EAGAIN before)
 */
function mlock_future_ok(vma: vm_area_struct, flags: bigint, bytes: number): boolean {
  if (!(flags & VM_LOCKED)) return true;
  const owner = vma.vm_mm.owner;
  if (!owner || owner.caps.has('CAP_IPC_LOCK')) return true;
  const locked = vma.vm_mm.locked_vm * PAGE_SIZE + bytes;
  return locked <= owner.rlimit_memlock;
}

/**
 * secretmem_mmap(file, vma): private mappings ⇒ -EINVAL; beyond RLIMIT_MEMLOCK ⇒
 * -EAGAIN; the VMA becomes VM_LOCKED|VM_DONTDUMP with secretmem_vm_ops.
 * @kernel mm/secretmem.c:secretmem_mmap (v5.14–v6.16), secretmem_mmap_prepare (v6.17+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* secretmem_mmap(_file: file, vma: vm_area_struct): Op<number> {
  const len = vma.vm_end - vma.vm_start;
  if ((vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) === 0n) return -EINVAL;
  if (!mlock_future_ok(vma, vma.vm_flags | VM_LOCKED, len)) return -EAGAIN;
  vma.vm_flags |= VM_LOCKED | VM_DONTDUMP;
  vma.vm_ops = secretmem_vm_ops;
  return 0;
}

/**
 * secretmem_release(inode, file): one secretmem file fewer.
 * @kernel mm/secretmem.c:secretmem_release (v5.14+)
 */
export function secretmem_release(_i: inode, _f: file): void {
  state().users--;
}

/** secretmem_fops */
export const secretmem_fops: file_operations = {
  name: 'secretmem_fops',
  mmap: secretmem_mmap,
  release: secretmem_release,
};

/**
 * secretmem_setattr(idmap, dentry, iattr): a file that already has a size cannot be
 * resized (-EINVAL); otherwise simple_setattr (truncate_setsize).
 * @kernel mm/secretmem.c:secretmem_setattr (v5.14+)
 * Return: 0 or -EINVAL.
 */
export function* secretmem_setattr(i: inode, attr: iattr): Op<number> {
  if (attr.ia_valid & ATTR_SIZE && i.i_size) return -EINVAL;
  if (attr.ia_valid & ATTR_SIZE) yield* truncate_setsize(i, attr.ia_size);
  return 0;
}

/**
 * The secretmem inode's eviction: its cached pages go, and each frame rejoins the direct
 * map (secretmem_free_folio, run per folio in the kernel).
 */
function* secretmem_evict_inode(i: inode): Op<void> {
  const pfns = [...i.i_mapping.i_pages.values()];
  yield* truncate_inode_pages(i.i_mapping, 0);
  for (const p of pfns) set_direct_map_default_noflush(p as number as page);
}

function secretmem_sb(): super_block {
  const s = state();
  return (s.sb ??= {
    s_type: 'secretmem',
    s_nowriteback: true,
    s_op: { evict_inode: secretmem_evict_inode },
  });
}

/**
 * secretmem_file_create(flags): an anonymous, unlinked inode of size 0 on the secretmem
 * mount (unevictable, secretmem_aops) and an O_RDWR file on it.
 * @kernel mm/secretmem.c:secretmem_file_create (v5.14+)
 * Return: the file.
 */
export function secretmem_file_create(_flags: number): file {
  const inode = new_inode(secretmem_sb(), 'reg', secretmem_aops);
  inode.i_nlink = 0;
  inode.i_mapping.flags |= 1 << AS_UNEVICTABLE;
  inode.i_size = 0;
  set_inode_iops(inode, { name: 'secretmem_iops', setattr: secretmem_setattr });
  const f = alloc_file('secretmem', O_RDWR | O_LARGEFILE, inode, secretmem_fops);
  state().users++;
  return f;
}

/**
 * memfd_secret(flags): before v5.14, without CONFIG_SECRETMEM, or with secretmem
 * disabled (the default before v6.5) ⇒ -ENOSYS; flags other than O_CLOEXEC ⇒ -EINVAL;
 * then a descriptor for a new secretmem file.
 * @kernel mm/secretmem.c:SYSCALL_DEFINE1(memfd_secret) (v5.14+)
 * Return: the descriptor or -errno.
 */
export function* sys_memfd_secret(flags: number): Op<number> {
  if (!since(5, 14) || currentKernel().config.CONFIG_SECRETMEM !== true) return -ENOSYS;
  if (!state().enable) return -ENOSYS;
  if (flags & ~O_CLOEXEC) return -EINVAL;
  if (state().users < 0) return -23; // -ENFILE
  const fd = yield* get_unused_fd_flags(flags & O_CLOEXEC);
  if (fd < 0) return fd;
  const f = secretmem_file_create(flags);
  if (typeof f === 'number') {
    yield* put_unused_fd(fd);
    return f;
  }
  yield* fd_install(fd, f);
  return fd;
}
