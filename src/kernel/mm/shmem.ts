/**
 * shmem/tmpfs (placeholder: the shmem model lands in this file).
 * @kernel mm/shmem.c:shmem_zero_setup (all versions)
 */
import type { vm_area_struct } from '../include/linux/mm_types.js';

/** shmem_zero_setup(vma): shared anonymous memory becomes a shmem file. */
export function shmem_zero_setup(_vma: vm_area_struct): number {
  throw new Error('shmem_zero_setup: not modelled yet');
}
