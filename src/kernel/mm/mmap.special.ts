/**
 * Special mappings: VMAs the kernel installs itself ([vdso], [vvar], [vvar_vclock]),
 * described by a struct vm_special_mapping. Their faults go to the mapping's own ->fault
 * (a driver-like handler that inserts pfns) or map its fixed array of pages
 * (special_mapping_fault: get_page on the page at the offset, SIGBUS past the array).
 * They cannot be split (-EINVAL) or grown (VM_DONTEXPAND).
 *
 * Left out: special_mapping_mremap's ->mremap callback (the model moves nothing),
 * VM_SOFTDIRTY (CONFIG_MEM_SOFT_DIRTY off), perf_event_mmap, vm_stat_account.
 *
 * @kernel mm/mmap.c:_install_special_mapping, __install_special_mapping,
 *   special_mapping_fault, vma_is_special_mapping (v5.x–v6.x; mm/vma_exec.c is not where
 *   they live in v6.18)
 */
import type { Op } from '../../sched/index.js';
import type {
  mm_struct,
  page,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { VM_DONTEXPAND, VM_FAULT_SIGBUS, VM_LOCKED, VM_LOCKONFAULT } from '../include/linux/mm.js';
import { EINVAL, ENOMEM } from '../include/linux/errno.js';
import { find_vma_intersection, vm_area_alloc, vma_link } from './vma.js';
import { vm_get_page_prot } from './mmap.js';
import { get_page } from '../include/linux/page_ref.js';

/** struct vm_special_mapping */
export interface vm_special_mapping {
  /** The name shown in /proc/<pid>/maps ("[vdso]", "[vvar]"). */
  readonly name: string;
  /** The pages mapped in order (when there is no ->fault). */
  readonly pages?: readonly page[];
  /** ->fault(sm, vma, vmf) */
  fault?(sm: vm_special_mapping, vma: vm_area_struct, vmf: vm_fault): Op<vm_fault_t>;
}

/** VM_LOCKED_MASK */
const VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT;

/**
 * special_mapping_fault(vmf): the mapping's ->fault, or the page at vmf->pgoff of its
 * page array with a reference (SIGBUS past the end of the array).
 * @kernel mm/mmap.c:special_mapping_fault (all versions)
 * Locking: mmap_lock held for read.
 * Return: 0 with vmf->page set, the ->fault's result, or VM_FAULT_SIGBUS.
 */
export function* special_mapping_fault(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const sm = vma.vm_private_data as vm_special_mapping;
  if (sm.fault) return yield* sm.fault(sm, vma, vmf);
  const pages = sm.pages ?? [];
  const p = pages[vmf.pgoff];
  if (p !== undefined) {
    get_page(p);
    vmf.page = p;
    return 0;
  }
  return VM_FAULT_SIGBUS;
}

/**
 * special_mapping_split(vma, addr): special mappings cannot be split.
 * @kernel mm/mmap.c:special_mapping_split (v5.x+)
 * Return: -EINVAL.
 */
export function special_mapping_split(_vma: vm_area_struct, _addr: number): number {
  return -EINVAL;
}

/** special_mapping_vmops */
export const special_mapping_vmops: vm_operations_struct = {
  name: 'special_mapping_vmops',
  fault: special_mapping_fault,
  may_split: special_mapping_split,
};

/**
 * _install_special_mapping(mm, addr, len, vm_flags, spec): a VMA [addr, addr + len) with
 * pgoff 0, vm_flags | mm->def_flags | VM_DONTEXPAND (VM_LOCKED dropped), the protection
 * of its flags, special_mapping_vmops and the spec as private data.
 * @kernel mm/mmap.c:_install_special_mapping, __install_special_mapping (all versions)
 * Locking: mmap_lock held for write.
 * Return: the VMA, or -errno (-ENOMEM when the range is taken: insert_vm_struct).
 */
export function _install_special_mapping(
  mm: mm_struct,
  addr: number,
  len: number,
  vm_flags: bigint,
  spec: vm_special_mapping,
): vm_area_struct | number {
  if (find_vma_intersection(mm, addr, addr + len)) return -ENOMEM;
  const vma = vm_area_alloc(mm);
  vma.vm_start = addr;
  vma.vm_end = addr + len;
  vma.vm_pgoff = 0;
  vma.vm_flags = (vm_flags | mm.def_flags | VM_DONTEXPAND) & ~VM_LOCKED_MASK;
  vma.vm_page_prot = vm_get_page_prot(vma.vm_flags);
  vma.vm_ops = special_mapping_vmops;
  vma.vm_private_data = spec;
  vma_link(mm, vma);
  return vma;
}

/**
 * vma_is_special_mapping(vma, sm): the VMA was installed for sm.
 * @kernel mm/mmap.c:vma_is_special_mapping (all versions)
 */
export function vma_is_special_mapping(vma: vm_area_struct, sm: vm_special_mapping): boolean {
  return vma.vm_private_data === sm && vma.vm_ops === special_mapping_vmops;
}

/** The special mapping's name of a VMA ("[vvar]"), or null (the tool's accessor). */
export function specialMappingName(vma: vm_area_struct): string | null {
  if (vma.vm_ops !== special_mapping_vmops) return null;
  return (vma.vm_private_data as vm_special_mapping).name;
}
