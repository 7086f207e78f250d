/**
 * The vDSO of an x86-64 process: map_vdso installs, below the text, the [vvar] data
 * mapping (VM_READ|VM_MAYREAD|VM_IO|VM_PFNMAP|VM_DONTDUMP, plus VM_DONTEXPAND from
 * _install_special_mapping: no VM_MAYWRITE, so it can never be written, not even by a
 * forced GUP) and, from v6.15, a separate [vvar_vclock] mapping; then the [vdso] text
 * (VM_READ|VM_EXEC|VM_MAYREAD|VM_MAYWRITE|VM_MAYEXEC: a private mapping gdb may COW).
 *
 * [vvar] is populated on demand by vvar_fault, which inserts the pfns of kernel data
 * pages with vmf_insert_pfn (special PTEs, no struct page references) and returns
 * VM_FAULT_SIGBUS for pages that have no data: as measured on the live 6.18 kernel,
 * page 0 (time data) and page 2 (getrandom data) map, page 1 (the time-namespace page of
 * a task outside a time namespace) and page 3 (no arch data on x86) SIGBUS.
 *
 * The kernel data pages are frames of the kernel image just below empty_zero_page; the
 * vDSO text is two more such frames.
 *
 * Left out: time namespaces (the timens page), the pvclock/hvclock pages of
 * [vvar_vclock] (no paravirtual clock: every page SIGBUSes), the x32/ia32 images, vdso
 * address randomization (the address is from get_unmapped_area), mremap of the vdso,
 * VM_SEALED_SYSMAP (CONFIG_MSEAL_SYSTEM_MAPPINGS off), and the pre-v6.15 [vvar] layout
 * (vvar, pvclock, hvclock, timens pages inside [vvar]): the v6.15+ datastore layout is
 * used for every version, with the getrandom page only from v6.11.
 *
 * @kernel arch/x86/entry/vdso/vma.c:map_vdso, arch_setup_additional_pages,
 *   vvar_vclock_fault; lib/vdso/datastore.c:vvar_fault, vdso_install_vvar_mapping
 *   (v6.15+; arch/x86/entry/vdso/vma.c:vvar_fault before)
 */
import type { Op } from '../../../../../sched/index.js';
import type {
  mm_struct,
  page,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
} from '../../../../include/linux/mm_types.js';
import {
  VM_DONTDUMP,
  VM_EXEC,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
} from '../../../../include/linux/mm.js';
import { PAGE_SIZE } from '../../include/asm/pgtable_types.js';
import { zero_pfn } from '../../../../include/linux/pgtable.js';
import { mmap_write_lock, mmap_write_unlock } from '../../../../include/linux/mmap_lock.js';
import { vmf_insert_pfn } from '../../../../mm/memory.pfnmap.js';
import { get_unmapped_area } from '../../../../mm/mmap.js';
import {
  _install_special_mapping,
  vma_is_special_mapping,
  type vm_special_mapping,
} from '../../../../mm/mmap.special.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import { since } from '../../../../version.js';
import { vma_unlink } from '../../../../mm/vma.js';

/** The [vvar] page offsets (include/vdso/datapage.h, v6.15+). */
export const VDSO_TIME_PAGE_OFFSET = 0;
export const VDSO_TIMENS_PAGE_OFFSET = 1;
export const VDSO_RNG_PAGE_OFFSET = 2;
export const VDSO_ARCH_PAGES_START = 3;
/** x86 has no vdso arch data pages (CONFIG_ARCH_HAS_VDSO_ARCH_DATA off): pages 3.. SIGBUS. */
export const VDSO_NR_PAGES = 4;
/** [vvar_vclock]: the pvclock and hvclock pages (v6.15+). */
export const VDSO_NR_VCLOCK_PAGES = 2;
/** __VDSO_PAGES: the data pages below the vDSO text. */
export function __VDSO_PAGES(): number {
  return VDSO_NR_PAGES + (since(6, 15) ? VDSO_NR_VCLOCK_PAGES : 0);
}
/** vdso_image_64.size: two pages of text. */
export const VDSO_IMAGE_PAGES = 2;

/** The kernel data pages the vDSO exposes (frames of the kernel image). */
function vdso_pfns(): { time: number; rng: number; text: page[] } {
  const z = zero_pfn();
  return {
    time: z - 0x10,
    rng: z - 0x11,
    text: [(z - 0x20) as page, (z - 0x1f) as page],
  };
}

/** The pfn of vdso_k_time_data (__pa_symbol), for tests and reports. */
export function vdso_k_time_data_pfn(): number {
  return vdso_pfns().time;
}

/** The pfn of vdso_k_rng_data. */
export function vdso_k_rng_data_pfn(): number {
  return vdso_pfns().rng;
}

/**
 * vvar_fault(sm, vma, vmf): the time page and (with CONFIG_VDSO_GETRANDOM, v6.11+) the
 * getrandom page are inserted with vmf_insert_pfn; the time-namespace page (no time
 * namespace in the model), the arch pages (none on x86) and anything past them SIGBUS.
 * @kernel lib/vdso/datastore.c:vvar_fault (v6.15+); arch/x86/entry/vdso/vma.c:vvar_fault
 *   (before; layout differences left out, see the file comment)
 * Locking: mmap_lock held for read; vmf_insert_pfn takes the PTE lock.
 * Return: VM_FAULT_NOPAGE (inserted), VM_FAULT_SIGBUS, or vmf_insert_pfn's error.
 */
export function* vvar_fault(
  _sm: vm_special_mapping,
  vma: vm_area_struct,
  vmf: vm_fault,
): Op<vm_fault_t> {
  const d = vdso_pfns();
  let pfn: number;
  switch (vmf.pgoff) {
    case VDSO_TIME_PAGE_OFFSET:
      // CONFIG_HAVE_GENERIC_VDSO; the timens page of a task in a time namespace is
      // left out.
      pfn = d.time;
      break;
    case VDSO_TIMENS_PAGE_OFFSET:
      // !timens_page: the task is in the root time namespace.
      return VM_FAULT_SIGBUS;
    case VDSO_RNG_PAGE_OFFSET:
      // CONFIG_VDSO_GETRANDOM (v6.11+, "x86: vdso: Wire up getrandom() vDSO
      // implementation").
      if (!since(6, 11)) return VM_FAULT_SIGBUS;
      pfn = d.rng;
      break;
    default:
      // VDSO_ARCH_PAGES_START ... : !CONFIG_ARCH_HAS_VDSO_ARCH_DATA on x86.
      return VM_FAULT_SIGBUS;
  }
  return yield* vmf_insert_pfn(vma, vmf.address, pfn);
}

/** vdso_vvar_mapping */
export const vdso_vvar_mapping: vm_special_mapping = { name: '[vvar]', fault: vvar_fault };

/**
 * vvar_vclock_fault(sm, vma, vmf): the pvclock/hvclock pages of a guest with a
 * paravirtual clock; the model has none: SIGBUS.
 * @kernel arch/x86/entry/vdso/vma.c:vvar_vclock_fault (v6.15+)
 */
export function* vvar_vclock_fault(
  _sm: vm_special_mapping,
  _vma: vm_area_struct,
  _vmf: vm_fault,
): Op<vm_fault_t> {
  return VM_FAULT_SIGBUS;
}

/** vvar_vclock_mapping */
export const vvar_vclock_mapping: vm_special_mapping = {
  name: '[vvar_vclock]',
  fault: vvar_vclock_fault,
};

/** vdso_mapping: the text pages of vdso_image_64. */
export function vdso_mapping(): vm_special_mapping {
  const k = currentKernel();
  return ((k.sub.vdso_mapping as vm_special_mapping | undefined) ??= {
    name: '[vdso]',
    pages: vdso_pfns().text,
  });
}

/**
 * vdso_install_vvar_mapping(mm, addr): the [vvar] VMA, VDSO_NR_PAGES long.
 * @kernel lib/vdso/datastore.c:vdso_install_vvar_mapping (v6.15+)
 * Locking: mmap_lock held for write.
 * Return: the VMA or -errno.
 */
export function vdso_install_vvar_mapping(mm: mm_struct, addr: number): vm_area_struct | number {
  return _install_special_mapping(
    mm,
    addr,
    VDSO_NR_PAGES * PAGE_SIZE,
    VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP | VM_PFNMAP,
    vdso_vvar_mapping,
  );
}

/**
 * map_vdso(image, addr): finds room for the data pages and the text, installs the
 * [vdso] text, then [vvar] below it and (v6.15+) [vvar_vclock] after [vvar]; a failure
 * removes what was installed.
 * @kernel arch/x86/entry/vdso/vma.c:map_vdso (all versions)
 * Locking: takes mmap_lock for write.
 * Return: 0 or -errno; the text address is recorded for vdsoBase().
 */
export function* map_vdso(mm: mm_struct, addr: number): Op<number> {
  yield* mmap_write_lock(mm);
  const size = VDSO_IMAGE_PAGES * PAGE_SIZE + __VDSO_PAGES() * PAGE_SIZE;
  addr = get_unmapped_area(mm, null, addr, size, 0, 0);
  if (addr < 0) {
    yield* mmap_write_unlock(mm);
    return addr;
  }
  const text_start = addr + __VDSO_PAGES() * PAGE_SIZE;
  // MAYWRITE to allow gdb to COW and set breakpoints
  const text = _install_special_mapping(
    mm,
    text_start,
    VDSO_IMAGE_PAGES * PAGE_SIZE,
    VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC,
    vdso_mapping(),
  );
  if (typeof text === 'number') {
    yield* mmap_write_unlock(mm);
    return text;
  }
  const vvar = vdso_install_vvar_mapping(mm, addr);
  if (typeof vvar === 'number') {
    vma_unlink(mm, text);
    yield* mmap_write_unlock(mm);
    return vvar;
  }
  if (since(6, 15)) {
    const vclock = _install_special_mapping(
      mm,
      addr + VDSO_NR_PAGES * PAGE_SIZE,
      VDSO_NR_VCLOCK_PAGES * PAGE_SIZE,
      VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP | VM_PFNMAP,
      vvar_vclock_mapping,
    );
    if (typeof vclock === 'number') {
      vma_unlink(mm, text);
      vma_unlink(mm, vvar);
      yield* mmap_write_unlock(mm);
      return vclock;
    }
  }
  vdsoBases.set(mm, text_start);
  yield* mmap_write_unlock(mm);
  return 0;
}

/** mm->context.vdso, per mm. */
const vdsoBases = new WeakMap<mm_struct, number>();

/** The address of a process's [vdso] text (mm->context.vdso), or undefined. */
export function vdsoBase(mm: mm_struct): number | undefined {
  return vdsoBases.get(mm);
}

/**
 * arch_setup_additional_pages(bprm, uses_interp): maps the 64-bit vDSO at exec (the
 * model calls it when a process is created).
 * @kernel arch/x86/entry/vdso/vma.c:arch_setup_additional_pages (all versions)
 * Return: 0 or -errno.
 */
export function arch_setup_additional_pages(mm: mm_struct): Op<number> {
  return map_vdso(mm, 0);
}

/** The [vvar] VMA of an mm, or null (the tool's lookup; the kernel's is by name). */
export function find_vvar_vma(mm: mm_struct): vm_area_struct | null {
  return mm.mmap.find((v) => vma_is_special_mapping(v, vdso_vvar_mapping)) ?? null;
}
