/**
 * memfd_create(2): an anonymous, unlinked shmem file with a name for /proc (memfd:<name>),
 * optionally sealable.
 *
 * MFD_HUGETLB gives a hugetlbfs file (hugetlb_file_setup on the internal mount of the
 * page size in MFD_HUGE_MASK; fs/hugetlbfs/inode.ts). memfd_secret is later work. There is no fd
 * table in the model: the file itself is returned, and MFD_CLOEXEC is accepted and has
 * nothing to act on. Left out: the vm.memfd_noexec sysctl and its warning (v6.3+; the
 * sysctl's default 0 keeps the file executable), file-mode bits.
 *
 * @kernel mm/memfd.c:memfd_create (all versions)
 */
import type { file } from '../include/linux/mm_types.js';
import { EINVAL } from '../include/linux/errno.js';
import { VM_NORESERVE } from '../include/linux/mm.js';
import { since } from '../version.js';
import { F_SEAL_EXEC, F_SEAL_SEAL, SHMEM_I, shmem_file_setup } from './shmem.js';
import { HUGETLB_ANONHUGE_INODE, HUGETLBFS_I, hugetlb_file_setup } from '../fs/hugetlbfs/inode.js';

/** memfd_create flags (include/uapi/linux/memfd.h). */
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
/** v6.3+ (105ff5339f49 "mm/memfd: add MFD_NOEXEC_SEAL and MFD_EXEC"). */
export const MFD_NOEXEC_SEAL = 0x0008;
export const MFD_EXEC = 0x0010;
export const MFD_HUGE_SHIFT = 26;
export const MFD_HUGE_MASK = 0x3f;

/** NAME_MAX - strlen("memfd:") */
export const MFD_NAME_MAX_LEN = 255 - 6;

function MFD_ALL_FLAGS(): number {
  return (
    MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | (since(6, 3) ? MFD_NOEXEC_SEAL | MFD_EXEC : 0)
  );
}

/**
 * memfd_create(name, flags): checks the flags (unknown ⇒ -EINVAL; huge-size bits only
 * with MFD_HUGETLB; MFD_EXEC with MFD_NOEXEC_SEAL ⇒ -EINVAL, v6.3+), the name length
 * (more than MFD_NAME_MAX_LEN bytes ⇒ -EINVAL), then creates "memfd:<name>" with
 * shmem_file_setup(name, 0, VM_NORESERVE), or with MFD_HUGETLB hugetlb_file_setup(name,
 * 0, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, page size log) (-ENODEV for a page size
 * without an hstate). Without MFD_ALLOW_SEALING (or MFD_NOEXEC_SEAL) the file keeps
 * F_SEAL_SEAL: no seal can be added.
 * @kernel mm/memfd.c:memfd_create, memfd_alloc_file (all versions)
 * Return: the file (O_RDWR), or -errno.
 */
export function memfd_create(name: string, flags: number): file | number {
  if (!(flags & MFD_HUGETLB)) {
    if (flags & ~MFD_ALL_FLAGS()) return -EINVAL;
  } else {
    // Allow huge page size encoding in flags.
    if (flags & ~(MFD_ALL_FLAGS() | (MFD_HUGE_MASK << MFD_HUGE_SHIFT))) return -EINVAL;
  }
  if (since(6, 3) && flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) return -EINVAL;
  // strnlen_user(uname, MFD_NAME_MAX_LEN + 1) counts the terminating NUL.
  if (new TextEncoder().encode(name).length + 1 > MFD_NAME_MAX_LEN + 1) return -EINVAL;
  const f =
    flags & MFD_HUGETLB
      ? hugetlb_file_setup(
          `memfd:${name}`,
          0,
          VM_NORESERVE,
          HUGETLB_ANONHUGE_INODE,
          Math.floor(flags / 2 ** MFD_HUGE_SHIFT) & MFD_HUGE_MASK,
        )
      : shmem_file_setup(`memfd:${name}`, 0, VM_NORESERVE);
  if (typeof f === 'number') return f;
  // memfd_file_seals_ptr(): the shmem or hugetlbfs inode's seals.
  const info = flags & MFD_HUGETLB ? HUGETLBFS_I(f.f_inode) : SHMEM_I(f.f_inode);
  if (since(6, 3) && flags & MFD_NOEXEC_SEAL) {
    info.seals &= ~F_SEAL_SEAL;
    info.seals |= F_SEAL_EXEC;
  } else if (flags & MFD_ALLOW_SEALING) {
    info.seals &= ~F_SEAL_SEAL;
  }
  return f;
}
