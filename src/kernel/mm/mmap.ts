/**
 * mmap: do_mmap's flag rules, get_unmapped_area, mmap_region with the file's ->mmap
 * hook, the page protection of a VMA (protection_map, write-notify), and vm_mmap_pgoff
 * (the syscall path under mmap_lock).
 *
 * @kernel mm/mmap.c:do_mmap, mmap_region (mm/vma.c:__mmap_region v6.13+),
 *   get_unmapped_area, vm_get_page_prot, vma_wants_writenotify, vma_set_page_prot;
 *   mm/util.c:vm_mmap_pgoff (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { file, mm_struct, vm_area_struct } from '../include/linux/mm_types.js';
import { FMODE_READ, FMODE_WRITE } from '../include/linux/mm_types.js';
import {
  VM_EXEC,
  VM_GROWSDOWN,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
  VM_HUGETLB,
  VM_NORESERVE,
  VM_ACCOUNT,
} from '../include/linux/mm.js';
import {
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  ENODEV,
  ENOMEM,
  EOVERFLOW,
  EOPNOTSUPP,
} from '../include/linux/errno.js';
import {
  PAGE_COPY,
  PAGE_COPY_EXEC,
  PAGE_NONE,
  PAGE_READONLY,
  PAGE_READONLY_EXEC,
  PAGE_SHARED,
  PAGE_SHARED_EXEC,
  _PAGE_CACHE_MASK,
  TASK_SIZE_MAX,
  PMD_SIZE,
  PAGE_SIZE,
  type pgprot_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  find_vma,
  find_vma_intersection,
  vm_area_alloc,
  vma_link,
  get_file,
  fput,
  vmas_in_range,
  __split_vma,
} from './vma.js';
import { down_write, up_write } from '../include/linux/spinlock.js';
import { shmem_zero_setup } from './shmem.js';
import { since } from '../version.js';
import { currentKernel } from '../kernel/kernel.js';
import {
  mmap_read_lock,
  mmap_read_unlock,
  mmap_write_downgrade,
  mmap_write_lock,
  mmap_write_unlock,
} from '../include/linux/mmap_lock.js';
import {
  FIRST_USER_ADDRESS,
  ULONG_MAX,
  USER_PGTABLES_CEILING,
  free_pgtables,
  tlb_finish_mmu,
  tlb_gather_mmu,
  tlb_gather_mmu_fullmm,
  unmap_vmas,
} from './memory.zap.js';
import { mmu_notifier_release } from './mmu_notifier.js';
import { pfnmap_track_ctx_put } from './memory.pfnmap.js';
import {
  HUGETLB_ANON_FILE,
  HUGETLB_ANONHUGE_INODE,
  hstate_sizelog,
  hugetlb_file_setup,
  hugetlb_get_unmapped_area,
  is_file_hugepages,
} from '../fs/hugetlbfs/inode.js';
import { hstate_file } from './hugetlb.js';
import { huge_page_size } from './hugetlb.pool.js';

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000;
export const MAP_HUGETLB = 0x40000;
export const MAP_SYNC = 0x80000;
export const MAP_FIXED_NOREPLACE = 0x100000;
/** The flags MAP_SHARED accepts (LEGACY_MAP_MASK); MAP_SHARED_VALIDATE rejects others. */
export const MAP_UNINITIALIZED = 0x4000000;
export const LEGACY_MAP_MASK =
  MAP_SHARED |
  MAP_PRIVATE |
  MAP_FIXED |
  MAP_ANONYMOUS |
  MAP_DENYWRITE |
  MAP_EXECUTABLE |
  MAP_UNINITIALIZED |
  MAP_GROWSDOWN |
  MAP_LOCKED |
  MAP_NORESERVE |
  MAP_POPULATE |
  MAP_NONBLOCK |
  MAP_STACK |
  MAP_HUGETLB;

/** x86 protection_map[VM_READ|VM_WRITE|VM_EXEC|VM_SHARED]. */
const protection_map: pgprot_t[] = [
  PAGE_NONE,
  PAGE_READONLY,
  PAGE_COPY,
  PAGE_COPY,
  PAGE_READONLY_EXEC,
  PAGE_READONLY_EXEC,
  PAGE_COPY_EXEC,
  PAGE_COPY_EXEC,
  PAGE_NONE,
  PAGE_READONLY,
  PAGE_SHARED,
  PAGE_SHARED,
  PAGE_READONLY_EXEC,
  PAGE_READONLY_EXEC,
  PAGE_SHARED_EXEC,
  PAGE_SHARED_EXEC,
];

/**
 * vm_get_page_prot(vm_flags): the PTE protection for a VMA's access flags.
 * @kernel mm/mmap.c:vm_get_page_prot (all versions; x86 protection_map)
 * Return: pgprot_t.
 */
export function vm_get_page_prot(vm_flags: bigint): pgprot_t {
  return protection_map[Number(vm_flags & (VM_READ | VM_WRITE | VM_EXEC | VM_SHARED))]!;
}

/** vm_pgprot_modify(oldprot, vm_flags): new access bits, old cache-mode bits. */
export function vm_pgprot_modify(oldprot: pgprot_t, vm_flags: bigint): pgprot_t {
  return (vm_get_page_prot(vm_flags) & ~_PAGE_CACHE_MASK) | (oldprot & _PAGE_CACHE_MASK);
}

/**
 * vma_wants_writenotify(vma, vm_page_prot): a shared writable mapping whose writes must
 * be seen (page_mkwrite/pfn_mkwrite, or a file that is written back) gets read-only
 * PTEs so the first write faults.
 * @kernel mm/mmap.c:vma_wants_writenotify (all versions)
 * Return: true or false.
 */
export function vma_wants_writenotify(vma: vm_area_struct, vm_page_prot: pgprot_t): boolean {
  const f = vma.vm_flags;
  if ((f & (VM_WRITE | VM_SHARED)) !== (VM_WRITE | VM_SHARED)) return false;
  if (vma.vm_ops?.page_mkwrite || vma.vm_ops?.pfn_mkwrite) return true;
  // The driver chose a special cache mode: leave its protection alone.
  if (vm_page_prot !== vm_pgprot_modify(vm_page_prot, f)) return false;
  if (f & VM_PFNMAP) return false;
  const file = vma.vm_file;
  return file !== null && !file.f_mapping.host.i_sb.s_nowriteback;
}

/**
 * vma_set_page_prot(vma): recomputes vm_page_prot, dropping write for write-notify.
 * @kernel mm/mmap.c:vma_set_page_prot (all versions)
 * Locking: mmap_lock held for write.
 */
export function vma_set_page_prot(vma: vm_area_struct): void {
  let f = vma.vm_flags;
  let prot = vm_pgprot_modify(vma.vm_page_prot, f);
  if (vma_wants_writenotify(vma, prot)) {
    f &= ~VM_SHARED;
    prot = vm_pgprot_modify(prot, f);
  }
  vma.vm_page_prot = prot;
}

/** calc_vm_prot_bits(prot) */
export function calc_vm_prot_bits(prot: number): bigint {
  return (
    (prot & PROT_READ ? VM_READ : 0n) |
    (prot & PROT_WRITE ? VM_WRITE : 0n) |
    (prot & PROT_EXEC ? VM_EXEC : 0n)
  );
}

/** calc_vm_flag_bits(flags) */
export function calc_vm_flag_bits(flags: number): bigint {
  return (flags & MAP_GROWSDOWN ? VM_GROWSDOWN : 0n) | (flags & MAP_LOCKED ? VM_LOCKED : 0n);
}

/**
 * get_unmapped_area: top-down search below mmap_base (arch_get_unmapped_area_topdown).
 * A hint is used when it is free. Anonymous and THP-capable mappings of at least
 * PMD_SIZE are PMD-aligned (v6.7+ "mm: align larger anonymous mappings on THP
 * boundaries"; files with huge faults align through their get_unmapped_area). A
 * hugetlbfs file's ->get_unmapped_area is hugetlb_get_unmapped_area (-EINVAL/huge-page
 * aligned).
 * @kernel mm/mmap.c:get_unmapped_area, arch_get_unmapped_area_topdown (all versions)
 * Locking: mmap_lock held for write.
 * Return: an address, or -ENOMEM (-EINVAL for a misaligned hugetlbfs request).
 */
export function get_unmapped_area(
  mm: mm_struct,
  file: file | null,
  addr: number,
  len: number,
  _pgoff: number,
  flags: number,
): number {
  if (len > TASK_SIZE_MAX) return -ENOMEM;
  // file->f_op->get_unmapped_area of hugetlbfs (fs/hugetlbfs/inode.ts).
  if (file && is_file_hugepages(file))
    return hugetlb_get_unmapped_area(mm, file, addr, len, _pgoff, flags);
  if (flags & MAP_FIXED) {
    if (addr + len > TASK_SIZE_MAX) return -ENOMEM;
    return addr;
  }
  if (addr) {
    addr = Math.ceil(addr / 4096) * 4096;
    if (addr + len <= TASK_SIZE_MAX && !find_vma_intersection(mm, addr, addr + len)) return addr;
  }
  const align =
    file === null &&
    len >= PMD_SIZE &&
    currentKernel().config.CONFIG_TRANSPARENT_HUGEPAGE === true &&
    since(6, 7)
      ? PMD_SIZE
      : 4096;
  let top = mm.mmap_base;
  for (let i = mm.mmap.length - 1; i >= -1; i--) {
    const v = i >= 0 ? mm.mmap[i]! : null;
    if (v && v.vm_start >= top) continue;
    const floor = v ? v.vm_end : 0x10000;
    const start = Math.floor((top - len) / align) * align;
    if (start >= floor) return start;
    if (v) top = Math.min(top, v.vm_start);
  }
  return -ENOMEM;
}

/**
 * mmap_region(file, addr, len, vm_flags, pgoff): creates the VMA, calls the file's
 * ->mmap (drivers set VM_IO/VM_PFNMAP/VM_MIXEDMAP and vm_ops there), sets up shared
 * anonymous memory as shmem, links the VMA and fixes its page protection.
 * @kernel mm/mmap.c:mmap_region (mm/vma.c:__mmap_region v6.13+)
 * Locking: mmap_lock held for write.
 * Return: addr, or -errno (the VMA is not left behind).
 */
export function* mmap_region(
  mm: mm_struct,
  file: file | null,
  addr: number,
  len: number,
  vm_flags: bigint,
  pgoff: number,
): Op<number> {
  if (find_vma_intersection(mm, addr, addr + len)) {
    const err = yield* do_munmap(mm, addr, len);
    if (err) return err;
  }
  const vma = vm_area_alloc(mm);
  vma.vm_start = addr;
  vma.vm_end = addr + len;
  vma.vm_flags = vm_flags;
  vma.vm_page_prot = vm_get_page_prot(vm_flags);
  vma.vm_pgoff = pgoff;
  if (file) {
    vma.vm_file = get_file(file);
    const err = file.f_op.mmap ? yield* file.f_op.mmap(file, vma) : -ENODEV;
    if (err) {
      fput(file);
      return err;
    }
    // Drivers may have changed the range or flags; a VMA that now overlaps is a bug.
    addr = vma.vm_start;
  } else if (vm_flags & VM_SHARED) {
    const err = shmem_zero_setup(vma);
    if (err) return err;
  }
  vma_link(mm, vma);
  if (vma.vm_flags & VM_LOCKED) {
    if (vma.vm_flags & VM_SPECIAL || vma.vm_flags & VM_HUGETLB) vma.vm_flags &= ~VM_LOCKED;
    else mm.locked_vm += len / 4096;
  }
  vma_set_page_prot(vma);
  return addr;
}

/**
 * do_mmap(file, addr, len, prot, flags, pgoff): the flag rules of mmap(2).
 * - MAP_SHARED of a file: PROT_WRITE needs an fd open for writing (-EACCES); the VMA is
 *   SHARED|MAYSHARE, and with a read-only fd loses SHARED and MAYWRITE.
 * - any file mapping needs FMODE_READ (-EACCES) and an ->mmap (-ENODEV).
 * - MAP_SHARED_VALIDATE rejects unknown flags (-EOPNOTSUPP is the kernel's answer for
 *   flags it knows but the file does not support; unknown flags get -EOPNOTSUPP too).
 * - anonymous shared mappings are shmem; private anonymous ones use pgoff = addr >> 12.
 * @kernel mm/mmap.c:do_mmap (all versions)
 * Locking: mmap_lock held for write.
 * Return: the address, or -errno.
 */
export function* do_mmap(
  mm: mm_struct,
  file: file | null,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  pgoff: number,
): Op<number> {
  if (!len) return -EINVAL;
  len = Math.ceil(len / 4096) * 4096;
  if (!len || len > TASK_SIZE_MAX) return -ENOMEM;
  if (pgoff + len / 4096 > Number.MAX_SAFE_INTEGER / 4096) return -EOVERFLOW;
  if (flags & MAP_FIXED_NOREPLACE) {
    if (find_vma_intersection(mm, addr, addr + len)) return -EEXIST;
    flags |= MAP_FIXED;
  }
  if (flags & MAP_FIXED && addr % 4096 !== 0) return -EINVAL;
  let vm_flags =
    calc_vm_prot_bits(prot) |
    calc_vm_flag_bits(flags) |
    mm.def_flags |
    VM_MAYREAD |
    VM_MAYWRITE |
    VM_MAYEXEC;
  const type = flags & MAP_TYPE;
  if (file) {
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      if (
        type === MAP_SHARED_VALIDATE &&
        flags & ~(LEGACY_MAP_MASK | MAP_SYNC | MAP_FIXED_NOREPLACE)
      )
        return -EOPNOTSUPP;
      if (prot & PROT_WRITE && !(file.f_mode & FMODE_WRITE)) return -EACCES;
      vm_flags |= VM_SHARED | VM_MAYSHARE;
      if (!(file.f_mode & FMODE_WRITE)) vm_flags &= ~(VM_MAYWRITE | VM_SHARED);
    } else if (type !== MAP_PRIVATE) {
      return -EINVAL;
    }
    // MAP_SHARED falls through to the MAP_PRIVATE checks, as in the kernel's switch.
    if (!(file.f_mode & FMODE_READ)) return -EACCES;
    if (!file.f_op.mmap) return -ENODEV;
    if (vm_flags & VM_GROWSDOWN) return -EINVAL;
  } else {
    switch (type) {
      case MAP_SHARED:
      case MAP_SHARED_VALIDATE:
        if (vm_flags & VM_GROWSDOWN) return -EINVAL;
        pgoff = 0;
        vm_flags |= VM_SHARED | VM_MAYSHARE;
        break;
      case MAP_PRIVATE:
        break;
      default:
        return -EINVAL;
    }
  }
  if (flags & MAP_NORESERVE) vm_flags |= VM_NORESERVE;
  else if (!file && !(vm_flags & VM_SHARED) && vm_flags & VM_WRITE) vm_flags |= VM_ACCOUNT;
  const a = get_unmapped_area(mm, file, addr, len, pgoff, flags);
  if (a < 0) return a;
  if (!file && type === MAP_PRIVATE) pgoff = a / 4096;
  return yield* mmap_region(mm, file, a, len, vm_flags, pgoff);
}

/**
 * vm_mmap_pgoff: mmap(2) after the fd lookup: takes mmap_lock for write around do_mmap.
 * @kernel mm/util.c:vm_mmap_pgoff (all versions)
 * Locking: takes and releases mmap_lock (write).
 * Return: the address or -errno.
 */
export function* vm_mmap_pgoff(
  mm: mm_struct,
  file: file | null,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  pgoff: number,
): Op<number> {
  yield* down_write(mm.mmap_lock);
  const ret = yield* do_mmap(mm, file, addr, len, prot, flags, pgoff);
  yield* up_write(mm.mmap_lock);
  return ret;
}

/** MAP_HUGE_SHIFT / MAP_HUGE_MASK: the log2 huge page size in mmap flags (uapi). */
export const MAP_HUGE_SHIFT = 26;
export const MAP_HUGE_MASK = 0x3f;

/**
 * ksys_mmap_pgoff(mm, addr, len, prot, flags, file, pgoff): mmap(2) after the descriptor
 * lookup (the caller passes the file, or null: -EBADF without MAP_ANONYMOUS). A
 * hugetlbfs file has len rounded up to its huge page size; MAP_HUGETLB on another file is
 * -EINVAL; MAP_HUGETLB|MAP_ANONYMOUS maps a new unlinked hugetlbfs file
 * (hugetlb_file_setup with VM_NORESERVE: the pages are reserved by hugetlbfs_file_mmap) of
 * the page size in MAP_HUGE_MASK (0: the default; none: -EINVAL).
 * @kernel mm/mmap.c:ksys_mmap_pgoff (all versions; audit_mmap_fd not modelled)
 * Locking: none held; vm_mmap_pgoff takes mmap_lock.
 * Return: the address or -errno. (The populate step of vm_mmap_pgoff is the caller's.)
 */
export function* ksys_mmap_pgoff(
  mm: mm_struct,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd_file: file | null,
  pgoff: number,
): Op<number> {
  let f: file | null = null;
  let created = false;
  if (!(flags & MAP_ANONYMOUS)) {
    f = fd_file;
    if (!f) return -EBADF;
    if (is_file_hugepages(f)) {
      const hsz = huge_page_size(hstate_file(f));
      len = Math.ceil(len / hsz) * hsz;
    } else if (flags & MAP_HUGETLB) {
      return -EINVAL;
    }
  } else if (flags & MAP_HUGETLB) {
    const hs = hstate_sizelog(Math.floor(flags / 2 ** MAP_HUGE_SHIFT) & MAP_HUGE_MASK);
    if (!hs) return -EINVAL;
    len = Math.ceil(len / huge_page_size(hs)) * huge_page_size(hs);
    // VM_NORESERVE is used because the reservations will be taken when vm_ops->mmap() is
    // called
    const r = hugetlb_file_setup(
      HUGETLB_ANON_FILE,
      len,
      VM_NORESERVE,
      HUGETLB_ANONHUGE_INODE,
      Math.floor(flags / 2 ** MAP_HUGE_SHIFT) & MAP_HUGE_MASK,
    );
    if (typeof r === 'number') return r;
    f = r;
    created = true;
  }
  const retval = yield* vm_mmap_pgoff(mm, f, addr, len, prot, flags, pgoff);
  if (created) fput(f!);
  return retval;
}

/** DEFAULT_MAX_MAP_COUNT: vm.max_map_count (the model's mm->map_count is mm.mmap.length). */
export const sysctl_max_map_count = 65530;

/**
 * unlink_file_vma(vma): removes a file VMA from its mapping's i_mmap, so rmap walks and
 * unmap_mapping_range no longer find it.
 * @kernel mm/mmap.c:unlink_file_vma (v5.7+; mm/vma.c v6.10+, batched as
 *   unlink_file_vma_batch_* v6.11+ with the same effect)
 * Locking: takes and releases mapping->i_mmap_rwsem for write.
 * Return: nothing.
 */
export function* unlink_file_vma(vma: vm_area_struct): Op<void> {
  const f = vma.vm_file;
  if (!f) return;
  const mapping = f.f_mapping;
  yield* down_write(mapping.i_mmap_rwsem);
  // __remove_shared_vm_struct()
  mapping.i_mmap.delete(vma);
  yield* up_write(mapping.i_mmap_rwsem);
}

/**
 * vm_area_free(vma): frees a VMA; from the 2025 PAT rework (f8e97613fed2 series, v6.16)
 * this drops the VMA's reference to its pfnmap_track_ctx, and the last reference
 * untracks the memtype (pfnmap_untrack).
 * @kernel kernel/fork.c:vm_area_free (mm/vma_init.c v6.17+), mm/memory.c:
 *   pfnmap_track_ctx_release (v6.16+)
 * Locking: none (the VMA is unreachable).
 */
function vm_area_free(vma: vm_area_struct): void {
  const ctx = vma.pfnmap_track_ctx;
  if (ctx && since(6, 16)) {
    // vma_pfnmap_track_ctx_release(): kref_put(&ctx->kref, pfnmap_track_ctx_release).
    vma.pfnmap_track_ctx = null;
    pfnmap_track_ctx_put(ctx);
  }
}

/**
 * remove_vma(vma): the last step of unmapping a VMA: vm_ops->close, the file reference,
 * the VMA itself.
 * @kernel mm/mmap.c:remove_vma (v5.7+; mm/vma.c v6.10+; vma_close() v6.11+)
 * Locking: mmap_lock held (read after munmap's downgrade), or none at exit.
 * Return: nothing.
 */
export function remove_vma(vma: vm_area_struct): void {
  vma.vm_ops?.close?.(vma);
  if (vma.vm_file) fput(vma.vm_file);
  vm_area_free(vma);
}

/**
 * split_vma(vmi, vma, addr, new_below): __split_vma after the map count check.
 * @kernel mm/vma.c:split_vma (v5.7+; mm/mmap.c before v6.7)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno (-ENOMEM at vm.max_map_count).
 */
export function* split_vma(
  mm: mm_struct,
  vma: vm_area_struct,
  addr: number,
  new_below: boolean,
): Op<number> {
  if (mm.mmap.length >= sysctl_max_map_count) return -ENOMEM;
  const r = yield* __split_vma(mm, vma, addr, new_below);
  return typeof r === 'number' ? r : 0;
}

/** Takes a VMA out of the mm's tree without touching its rmap links (vma_iter_clear). */
function detach_vma(mm: mm_struct, vma: vm_area_struct): void {
  const i = mm.mmap.indexOf(vma);
  if (i >= 0) mm.mmap.splice(i, 1);
}

/**
 * do_vmi_align_munmap(vmi, vma, mm, start, end, uf, unlock): unmaps [start, end), start
 * and end page aligned, vma the first VMA overlapping it:
 * 1. split the first VMA at start and the last at end (a VMA straddling both is split
 *    twice; a failure of the second split leaves the first done);
 * 2. detach the VMAs of the range from the mm;
 * 3. with unlock, downgrade mmap_lock to read;
 * 4. unmap_vmas (MMU_NOTIFY_UNMAP over [start, end)) and free_pgtables, bounded by the
 *    remaining neighbours (prev->vm_end, next->vm_start), in one mmu_gather whose pages
 *    are freed at tlb_finish_mmu;
 * 5. remove_vma each (vm_ops->close, fput); with unlock, release mmap_lock.
 * @kernel mm/vma.c:do_vmi_align_munmap, vms_gather_munmap_vmas, vms_complete_munmap_vmas,
 *   vms_clear_ptes (v6.12; mm/mmap.c:do_vmi_align_munmap v6.1+, __do_munmap with
 *   unmap_region before, in the same order)
 * Locking: mmap_lock held for write; with unlock, released on success.
 * Return: 0 or -errno (-ENOMEM at vm.max_map_count, or a may_split error).
 * Left out: commit accounting, userfaultfd unmap events, mseal (VM_SEALED -EPERM, v6.10+),
 *   arch_unmap, the exec/stack/data VM statistics.
 */
export function* do_vmi_align_munmap(
  mm: mm_struct,
  vma: vm_area_struct,
  start: number,
  end: number,
  unlock: boolean,
): Op<number> {
  // If we need to split any vma, do it now to save pain later. Does it split the first?
  if (start > vma.vm_start) {
    // Make sure map_count on return will not exceed its limit (only when the VMA is
    // split in three).
    if (end < vma.vm_end && mm.mmap.length >= sysctl_max_map_count) return -ENOMEM;
    const err = yield* __split_vma_err(mm, vma, start, true);
    if (err) return err;
  }
  // Does the last one split at end?
  const inRange = vmas_in_range(mm, start, end);
  const last = inRange[inRange.length - 1];
  if (last && last.vm_end > end) {
    const err = yield* __split_vma_err(mm, last, end, false);
    if (err) return err;
  }
  const detached = vmas_in_range(mm, start, end);
  let nr_pages = 0;
  let locked_vm = 0;
  for (const v of detached) {
    detach_vma(mm, v);
    const n = (v.vm_end - v.vm_start) / PAGE_SIZE;
    nr_pages += n;
    if (v.vm_flags & VM_LOCKED) locked_vm += n;
  }
  const prev = find_vma_prev_end(mm, start);
  const next = find_vma(mm, end);
  mm.locked_vm -= locked_vm;
  // With unlock the lock is downgraded to read for the page-table work. Before v6.5 it
  // stays write-held next to a VM_GROWSDOWN VMA (which may grow under the read lock);
  // the caller's unlock is then a write unlock, done here.
  let downgraded = false;
  if (unlock && !(!since(6, 5) && next && next.vm_flags & VM_GROWSDOWN)) {
    yield* mmap_write_downgrade(mm);
    downgraded = true;
  }
  // vms_clear_ptes() / unmap_region()
  const tlb = tlb_gather_mmu(mm);
  yield* unmap_vmas(tlb, detached, start, end, !downgraded);
  yield* free_pgtables(
    tlb,
    detached,
    prev ? prev.vm_end : FIRST_USER_ADDRESS,
    next ? next.vm_start : USER_PGTABLES_CEILING,
    !downgraded,
  );
  yield* tlb_finish_mmu(tlb);
  mm.total_vm -= nr_pages;
  for (const v of detached) remove_vma(v);
  if (downgraded) yield* mmap_read_unlock(mm);
  else if (unlock) yield* mmap_write_unlock(mm);
  return 0;
}

/** __split_vma returning 0 or -errno. */
function* __split_vma_err(
  mm: mm_struct,
  vma: vm_area_struct,
  addr: number,
  new_below: boolean,
): Op<number> {
  const r = yield* __split_vma(mm, vma, addr, new_below);
  return typeof r === 'number' ? r : 0;
}

/** The last VMA ending at or below addr (vma_prev after the start split). */
function find_vma_prev_end(mm: mm_struct, addr: number): vm_area_struct | null {
  let prev: vm_area_struct | null = null;
  for (const v of mm.mmap) {
    if (v.vm_end > addr) break;
    prev = v;
  }
  return prev;
}

/**
 * do_vmi_munmap(vmi, mm, start, len, uf, unlock): munmap's checks, then
 * do_vmi_align_munmap. An unaligned start, a range beyond TASK_SIZE or a zero length
 * (after rounding up) is -EINVAL; no VMA in the range is success.
 * @kernel mm/vma.c:do_vmi_munmap (v6.12; mm/mmap.c v6.1+; __do_munmap before)
 * Locking: mmap_lock held for write; with unlock, released on success (and when there
 *   is nothing to unmap).
 * Return: 0 or -errno.
 */
export function* do_vmi_munmap(
  mm: mm_struct,
  start: number,
  len: number,
  unlock: boolean,
): Op<number> {
  if (start % PAGE_SIZE !== 0 || start > TASK_SIZE_MAX || len > TASK_SIZE_MAX - start)
    return -EINVAL;
  const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end === start) return -EINVAL;
  // Find the first overlapping VMA.
  const vma = find_vma_intersection(mm, start, end);
  if (!vma) {
    if (unlock) yield* mmap_write_unlock(mm);
    return 0;
  }
  return yield* do_vmi_align_munmap(mm, vma, start, end, unlock);
}

/**
 * do_munmap(mm, start, len, uf): unmaps [start, start+len) keeping mmap_lock held.
 * @kernel mm/mmap.c:do_munmap (v5.7+)
 * Locking: mmap_lock held for write; still held on return.
 * Return: 0 or -errno.
 */
export function do_munmap(mm: mm_struct, start: number, len: number): Op<number> {
  return do_vmi_munmap(mm, start, len, false);
}

/**
 * __vm_munmap(start, len, unlock): munmap(2) (unlock = true) and vm_munmap (false):
 * takes mmap_lock for write around do_vmi_munmap.
 * @kernel mm/mmap.c:__vm_munmap (v5.7+; `downgrade` before v6.1)
 * Locking: takes mmap_lock for write; released on return.
 * Return: 0 or -errno.
 */
export function* __vm_munmap(
  mm: mm_struct,
  start: number,
  len: number,
  unlock: boolean,
): Op<number> {
  yield* mmap_write_lock(mm);
  const ret = yield* do_vmi_munmap(mm, start, len, unlock);
  if (ret || !unlock) yield* mmap_write_unlock(mm);
  return ret;
}

/**
 * vm_munmap(start, len): the kernel-internal munmap.
 * @kernel mm/mmap.c:vm_munmap (v5.7+)
 * Locking: takes and releases mmap_lock for write.
 * Return: 0 or -errno.
 */
export function vm_munmap(mm: mm_struct, start: number, len: number): Op<number> {
  return __vm_munmap(mm, start, len, false);
}

/**
 * exit_mmap(mm): tears down the whole address space when its last user is gone:
 * mmu_notifier_release, unmap_vmas over everything (MMU_NOTIFY_UNMAP, to nobody once
 * released), free_pgtables with no floor or ceiling (every table but the PGD), the final
 * TLB flush that frees the pages, then remove_vma for each VMA. The PGD goes at mmdrop
 * (kernel/fork.c:__mmdrop, mm_free_pgd).
 * @kernel mm/mmap.c:exit_mmap (v5.7+; mmap_lock taken since v6.1: read across
 *   unmap_vmas, write for free_pgtables and the teardown; none before)
 * Locking: none held on entry; takes and releases mmap_lock as above.
 * Return: nothing.
 * Left out: the OOM reaper handshake (MMF_OOM_SKIP), arch_exit_mmap, commit accounting.
 */
export function* exit_mmap(mm: mm_struct): Op<void> {
  // mm's last user has gone, and it's about to be pulled down.
  yield* mmu_notifier_release(mm);
  const locking = since(6, 1);
  if (locking) yield* mmap_read_lock(mm);
  const vmas = [...mm.mmap];
  if (vmas.length === 0) {
    if (locking) yield* mmap_read_unlock(mm);
    return;
  }
  const tlb = tlb_gather_mmu_fullmm(mm);
  // Use ULONG_MAX here to ensure all VMAs in the mm are unmapped.
  yield* unmap_vmas(tlb, vmas, 0, ULONG_MAX, false);
  if (locking) {
    yield* mmap_read_unlock(mm);
    yield* mmap_write_lock(mm);
  }
  yield* free_pgtables(tlb, vmas, FIRST_USER_ADDRESS, USER_PGTABLES_CEILING, true);
  yield* tlb_finish_mmu(tlb);
  // Walk the list again, actually closing and freeing it.
  for (const v of vmas) {
    detach_vma(mm, v);
    mm.total_vm -= (v.vm_end - v.vm_start) / PAGE_SIZE;
    if (v.vm_flags & VM_LOCKED) mm.locked_vm -= (v.vm_end - v.vm_start) / PAGE_SIZE;
    remove_vma(v);
  }
  if (locking) yield* mmap_write_unlock(mm);
}
