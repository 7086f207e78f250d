/**
 * ACRN hypervisor service module: guest RAM mapping (drivers/virt/acrn/mm.c).
 * `acrn_vm_ram_map` turns a range of the service VM's user memory into an EPT mapping
 * request to the hypervisor (R-CALL-3). Two ways in:
 * - the range starts in a VM_PFNMAP VMA (v5.18+, 8a6e85f75a83 "virt: acrn: obtain pa from
 *   VMA with PFNMAP flag"): the pfns are looked up, not pinned, and handed to the
 *   hypervisor as one region. ≤ v6.9: follow_pfn of the first page only, no write or
 *   refcount check. v6.10 (1b265da7ea1e "virt: acrn: stop using follow_pfn", then
 *   3d6586008f7b "drivers/virt/acrn: fix PFNMAP PTE checks in acrn_vm_ram_map()" and
 *   29ae7d96d166 for follow_pte(vma)): every page with follow_pte — a lookup error is
 *   returned; a read-only PTE with ACRN_MEM_ACCESS_WRITE ⇒ -EFAULT; a refcounted page
 *   (pfn_valid && !PageReserved) ⇒ -EFAULT; a pfn that is not first+i ⇒ -EINVAL; and a
 *   zero-length request ⇒ -EINVAL. v6.12 (e6bc784c24fd "acrn: use the new follow_pfnmap
 *   API"): the same with follow_pfnmap_start/_end. No MMU notifier: nothing tells ACRN
 *   when the PFNMAP mapping goes away.
 * - otherwise (all versions since 88f537d5e8dd, v5.12) the pages are long-term pinned with
 *   pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM), mapped into the kernel (vmap),
 *   recorded in the VM's regions_mapping[] and sent as one region per folio.
 *
 * The hypervisor side is a model table (per kernel): every added region with the pfnsan
 * generation of each of its frames at map time; `acrn_hv_guest_access` is a guest access
 * through it. The pfns handed to the hypervisor are consumed with pfnsan_use.
 *
 * Left out: the ioctl layer (acrn_dev_ioctl copies struct acrn_vm_memmap), vmap (the
 * kernel mapping never fails here except for zero pages), kzalloc failures, dev_dbg lines,
 * acrn_vm_memseg_unmap of RAM (the kernel refuses non-MMIO).
 *
 * @kernel drivers/virt/acrn/mm.c (v5.12+, CONFIG_ACRN_HSM), include/uapi/linux/acrn.h
 */
import type { Op } from '../../../../sched/index.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { since } from '../../../version.js';
import { VM_BUG_ON } from '../../../kernel/panic.js';
import { pr_warn } from '../../../kernel/printk.js';
import { EFAULT, EINVAL, ENOMEM } from '../../../include/linux/errno.js';
import type { folio, page } from '../../../include/linux/mm_types.js';
import { FOLL_LONGTERM, FOLL_WRITE, VM_PFNMAP } from '../../../include/linux/mm.js';
import {
  PageReserved,
  PageTail,
  folio_order,
  page_folio,
  pfn_to_page,
} from '../../../include/linux/page-flags.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../include/linux/mmap_lock.js';
import { mutex, mutex_lock, mutex_unlock } from '../../../include/linux/spinlock.js';
import { get_current } from '../../../include/linux/sched.js';
import { ptep_get, pte_unmap_unlock } from '../../../include/linux/pgtable.js';
import { PAGE_SIZE, pte_pfn, pte_write } from '../../../arch/x86/include/asm/pgtable_types.js';
import { pfn_valid } from '../../../mm/sparse.js';
import { vma_lookup } from '../../../mm/vma.js';
import { pin_user_pages_fast, unpin_user_page, type page_array } from '../../../mm/gup.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../../../mm/memory.pfnmap.js';
import { pfnsan_access, pfnsan_gen, pfnsan_use } from '../../../mm/pfnsan/pfnsan.js';

/* include/uapi/linux/acrn.h */
export const ACRN_MEM_ACCESS_RIGHT_MASK = 0x00000007;
export const ACRN_MEM_ACCESS_READ = 0x00000001;
export const ACRN_MEM_ACCESS_WRITE = 0x00000002;
export const ACRN_MEM_ACCESS_EXEC = 0x00000004;
export const ACRN_MEM_ACCESS_RWX =
  ACRN_MEM_ACCESS_READ | ACRN_MEM_ACCESS_WRITE | ACRN_MEM_ACCESS_EXEC;
export const ACRN_MEM_TYPE_MASK = 0x000007c0;
export const ACRN_MEM_TYPE_WB = 0x00000040;
export const ACRN_MEM_TYPE_WT = 0x00000080;
export const ACRN_MEM_TYPE_UC = 0x00000100;
export const ACRN_MEM_TYPE_WC = 0x00000200;
export const ACRN_MEM_TYPE_WP = 0x00000400;
export const ACRN_MEMMAP_RAM = 0;
export const ACRN_MEMMAP_MMIO = 1;

/* drivers/virt/acrn/acrn_drv.h */
export const ACRN_MEM_REGION_ADD = 0;
export const ACRN_MEM_REGION_DEL = 2;
export const ACRN_MEM_MAPPING_MAX = 256;

/** struct acrn_vm_memmap (uapi): `service_vm_pa` and `vma_base` share one field. */
export interface acrn_vm_memmap {
  type: number;
  attr: number;
  user_vm_pa: number;
  /** vma_base for ACRN_MEMMAP_RAM, service_vm_pa for ACRN_MEMMAP_MMIO. */
  vma_base: number;
  len: number;
}

/** struct vm_memory_region_op */
export interface vm_memory_region_op {
  type: number;
  attr: number;
  user_vm_pa: number;
  service_vm_pa: number;
  size: number;
}

/** struct vm_memory_mapping: one pinned RAM region of a VM. */
export interface vm_memory_mapping {
  pages: page_array;
  npages: number;
  size: number;
  /** service_vm_va: the vmap of the pages (model: the first pfn, as an identity). */
  service_vm_va: number;
  user_vm_pa: number;
}

/** struct acrn_vm, reduced to the memory side. */
export interface acrn_vm {
  readonly vmid: number;
  readonly regions_mapping: vm_memory_mapping[];
  regions_mapping_count: number;
  readonly regions_mapping_lock: mutex;
}

/** A VM as acrn_vm_create makes it (hcall_create_vm not modelled). */
export function acrn_vm_alloc(vmid: number): acrn_vm {
  if (currentKernel().config.CONFIG_ACRN_HSM !== true)
    throw new Error(
      `CONFIG_ACRN_HSM is not set in ${currentKernel().version.name} (the driver exists from v5.12)`,
    );
  return {
    vmid,
    regions_mapping: [],
    regions_mapping_count: 0,
    regions_mapping_lock: new mutex(`acrn_vm${vmid}.regions_mapping_lock`),
  };
}

/* ------------------------------------------------------------------------------------ */
/* The hypervisor's EPT (model)                                                          */
/* ------------------------------------------------------------------------------------ */

/** One guest region the hypervisor maps: gpa -> service-VM physical, with generations. */
export interface acrn_hv_region {
  readonly vmid: number;
  readonly user_vm_pa: number;
  readonly service_vm_pa: number;
  readonly size: number;
  readonly attr: number;
  /** pfnsan_gen of each frame when the region was added. */
  readonly gens: readonly number[];
}

interface AcrnHvState {
  regions: acrn_hv_region[];
  /** Hypercalls made (for tests and traces). */
  calls: number;
  /** Model fault injection: the next hypercall fails with this value (< 0). */
  fail_next: number;
}

/** The hypervisor model's table of the running kernel. */
export function acrn_hv_state(): AcrnHvState {
  const k = currentKernel();
  return ((k.sub.acrn_hv as AcrnHvState | undefined) ??= { regions: [], calls: 0, fail_next: 0 });
}

/**
 * hcall_set_memory_regions(regions_pa): HC_VM_SET_MEMORY_REGIONS. The model hypervisor
 * adds (ACRN_MEM_REGION_ADD) or removes (ACRN_MEM_REGION_DEL) EPT regions; an added region
 * records the pfnsan generation of each frame and consumes its pfns (pfnsan_use).
 * @kernel drivers/virt/acrn/hypercall.h:hcall_set_memory_regions (v5.12+); the hypervisor
 *   side is the model's.
 * Return: 0, or the injected failure.
 */
export function* hcall_set_memory_regions(
  vmid: number,
  regions: readonly vm_memory_region_op[],
): Op<number> {
  const hv = acrn_hv_state();
  yield { obj: `acrn.hv.vm${vmid}.ept`, kind: 'write', what: 'hcall_set_memory_regions' };
  hv.calls++;
  if (hv.fail_next) {
    const r = hv.fail_next;
    hv.fail_next = 0;
    return r;
  }
  for (const op of regions) {
    if (op.type === ACRN_MEM_REGION_DEL) {
      hv.regions = hv.regions.filter(
        (r) =>
          r.vmid !== vmid ||
          r.user_vm_pa + r.size <= op.user_vm_pa ||
          r.user_vm_pa >= op.user_vm_pa + op.size,
      );
      continue;
    }
    const first = Math.floor(op.service_vm_pa / PAGE_SIZE);
    const n = Math.floor(op.size / PAGE_SIZE);
    pfnsan_use(first, n, `ACRN EPT vm${vmid} gpa 0x${op.user_vm_pa.toString(16)}`);
    const gens: number[] = [];
    for (let i = 0; i < n; i++) gens.push(pfnsan_gen(first + i));
    hv.regions.push({
      vmid,
      user_vm_pa: op.user_vm_pa,
      service_vm_pa: op.service_vm_pa,
      size: op.size,
      attr: op.attr,
      gens,
    });
  }
  return 0;
}

/**
 * Model: the guest of `vmid` accesses gpa through the hypervisor's EPT (one Step):
 * pfnsan_access with the generation recorded at map time.
 * Return: the host pfn, or null when no region maps gpa (an EPT violation).
 */
export function* acrn_hv_guest_access(
  vmid: number,
  gpa: number,
  how: 'read' | 'write',
): Op<number | null> {
  yield { obj: `acrn.hv.vm${vmid}.ept`, kind: 'read', what: `guest ${how}` };
  for (const r of acrn_hv_state().regions) {
    if (r.vmid !== vmid || gpa < r.user_vm_pa || gpa >= r.user_vm_pa + r.size) continue;
    const i = Math.floor((gpa - r.user_vm_pa) / PAGE_SIZE);
    const pfn = Math.floor(r.service_vm_pa / PAGE_SIZE) + i;
    pfnsan_access(pfn, r.gens[i]!, how, `ACRN EPT vm${vmid} gpa 0x${gpa.toString(16)}`);
    return pfn;
  }
  return null;
}

/* ------------------------------------------------------------------------------------ */
/* drivers/virt/acrn/mm.c                                                                */
/* ------------------------------------------------------------------------------------ */

/** modify_region(vm, region): one region through hcall_set_memory_regions. */
function* modify_region(vm: acrn_vm, region: vm_memory_region_op): Op<number> {
  return yield* hcall_set_memory_regions(vm.vmid, [region]);
}

/**
 * acrn_mm_region_add(vm, user_gpa, service_gpa, size, mem_type, mem_access_right): asks
 * the hypervisor to map [user_gpa, +size) to service_gpa with the type and rights.
 * @kernel drivers/virt/acrn/mm.c:acrn_mm_region_add (v5.12+)
 * Return: 0 or <0 from the hypercall.
 */
export function* acrn_mm_region_add(
  vm: acrn_vm,
  user_gpa: number,
  service_gpa: number,
  size: number,
  mem_type: number,
  mem_access_right: number,
): Op<number> {
  return yield* modify_region(vm, {
    type: ACRN_MEM_REGION_ADD,
    user_vm_pa: user_gpa,
    service_vm_pa: service_gpa,
    size,
    attr: (mem_type & ACRN_MEM_TYPE_MASK) | (mem_access_right & ACRN_MEM_ACCESS_RIGHT_MASK),
  });
}

/**
 * acrn_mm_region_del(vm, user_gpa, size): removes an EPT region.
 * @kernel drivers/virt/acrn/mm.c:acrn_mm_region_del (v5.12+)
 */
export function* acrn_mm_region_del(vm: acrn_vm, user_gpa: number, size: number): Op<number> {
  return yield* modify_region(vm, {
    type: ACRN_MEM_REGION_DEL,
    user_vm_pa: user_gpa,
    service_vm_pa: 0,
    size,
    attr: 0,
  });
}

/**
 * acrn_vm_memseg_map(vm, memmap): RAM ⇒ acrn_vm_ram_map; MMIO ⇒ an uncached region at
 * memmap->service_vm_pa; any other type ⇒ -EINVAL.
 * @kernel drivers/virt/acrn/mm.c:acrn_vm_memseg_map (v5.12+)
 */
export function* acrn_vm_memseg_map(vm: acrn_vm, memmap: acrn_vm_memmap): Op<number> {
  if (memmap.type === ACRN_MEMMAP_RAM) return yield* acrn_vm_ram_map(vm, memmap);
  if (memmap.type !== ACRN_MEMMAP_MMIO) return -EINVAL;
  return yield* acrn_mm_region_add(
    vm,
    memmap.user_vm_pa,
    memmap.vma_base,
    memmap.len,
    ACRN_MEM_TYPE_UC,
    memmap.attr,
  );
}

/**
 * The PFNMAP branch of acrn_vm_ram_map for v6.10+: every page looked up (follow_pte(vma)
 * v6.10–v6.11, follow_pfnmap v6.12+), checked, the lookup ended before the checks.
 * Locking: mmap_lock held for read.
 * Return: { ret, start_pfn }.
 */
function* pfnmap_pages_checked(
  vma: Parameters<typeof follow_pfnmap_args_init>[0],
  memmap: acrn_vm_memmap,
  nr_pages: number,
): Op<{ ret: number; start_pfn: number }> {
  let start_pfn = 0;
  let ret = 0;
  for (let i = 0; i < nr_pages; i++) {
    const address = memmap.vma_base + i * PAGE_SIZE;
    let cur_pfn: number;
    let writable: boolean;
    if (since(6, 12)) {
      /* e6bc784c24fd */
      const args = follow_pfnmap_args_init(vma, address);
      ret = yield* follow_pfnmap_start(args);
      if (ret) break;
      cur_pfn = args.pfn;
      if (i === 0) start_pfn = cur_pfn;
      writable = args.writable;
      yield* follow_pfnmap_end(args);
    } else {
      /* 3d6586008f7b + 29ae7d96d166 */
      const l = yield* follow_pte(vma, address);
      ret = l.ret;
      if (ret) break;
      const pte = ptep_get(l.ptep!);
      cur_pfn = pte_pfn(pte);
      if (i === 0) start_pfn = cur_pfn;
      writable = pte_write(pte);
      yield* pte_unmap_unlock(l.ptep!, l.ptl!);
    }
    /* Disallow write access if the PTE is not writable. */
    if (!writable && memmap.attr & ACRN_MEM_ACCESS_WRITE) {
      ret = -EFAULT;
      break;
    }
    /* Disallow refcounted pages. */
    if (pfn_valid(cur_pfn) && !PageReserved(pfn_to_page(cur_pfn))) {
      ret = -EFAULT;
      break;
    }
    /* Disallow non-contiguous ranges. */
    if (cur_pfn !== start_pfn + i) {
      ret = -EINVAL;
      break;
    }
  }
  return { ret, start_pfn };
}

/**
 * acrn_vm_ram_map(vm, memmap): creates a RAM EPT mapping of a User VM (R-CALL-3); see the
 * file comment for the two branches and their eras. Order of checks in v6.10+: !vm or
 * !memmap ⇒ -EINVAL; len < PAGE_SIZE ⇒ -EINVAL; PFNMAP VMA at vma_base shorter than the
 * request ⇒ -EINVAL; per page: lookup error returned, not writable with
 * ACRN_MEM_ACCESS_WRITE ⇒ -EFAULT, refcounted page ⇒ -EFAULT, pfn ≠ first+i ⇒ -EINVAL; then
 * one WB region at PFN_PHYS(first). Normal memory: pin_user_pages_fast < 0 returned, fewer
 * pages ⇒ -EFAULT (pins dropped), vmap failure ⇒ -ENOMEM, regions_mapping full ⇒ dev_warn
 * "Run out of memory mapping slots!" and -ENOMEM, hypercall failure returned (all undone).
 * @kernel drivers/virt/acrn/mm.c:acrn_vm_ram_map (88f537d5e8dd v5.12; 8a6e85f75a83 v5.18;
 *   1b265da7ea1e, 3d6586008f7b, 29ae7d96d166 v6.10; e6bc784c24fd v6.12)
 * Locking: takes current->mm->mmap_lock for read (the PFNMAP branch) and
 *   vm->regions_mapping_lock.
 * Return: 0 or -errno.
 */
export function* acrn_vm_ram_map(vm: acrn_vm | null, memmap: acrn_vm_memmap | null): Op<number> {
  if (!since(5, 12))
    throw new Error('acrn_vm_ram_map() does not exist before v5.12 (88f537d5e8dd)');
  if (!vm || !memmap) return -EINVAL;

  let nr_pages = 0;
  if (since(6, 10)) {
    /* Get the page number of the map region (3d6586008f7b moved it up) */
    nr_pages = Math.floor(memmap.len / PAGE_SIZE);
    if (!nr_pages) return -EINVAL;
  }

  const mm = get_current().mm!;
  if (since(5, 18)) {
    yield* mmap_read_lock(mm);
    const vma = vma_lookup(mm, memmap.vma_base);
    if (vma && (vma.vm_flags & VM_PFNMAP) !== 0n) {
      if (memmap.vma_base + memmap.len > vma.vm_end) {
        yield* mmap_read_unlock(mm);
        return -EINVAL;
      }
      let ret: number;
      let start_pfn: number;
      if (since(6, 10)) {
        ({ ret, start_pfn } = yield* pfnmap_pages_checked(vma, memmap, nr_pages));
        yield* mmap_read_unlock(mm);
      } else {
        /* 8a6e85f75a83: the first page only, no write or refcount check */
        const f = yield* follow_pfn(vma, memmap.vma_base);
        yield* mmap_read_unlock(mm);
        ret = f.ret;
        start_pfn = f.pfn;
      }
      if (ret) return ret; // dev_dbg "Failed to lookup PFN at VMA:%p."
      return yield* acrn_mm_region_add(
        vm,
        memmap.user_vm_pa,
        start_pfn * PAGE_SIZE,
        memmap.len,
        ACRN_MEM_TYPE_WB,
        memmap.attr,
      );
    }
    yield* mmap_read_unlock(mm);
  }

  if (!since(6, 10)) nr_pages = Math.floor(memmap.len / PAGE_SIZE);
  const pages: page_array = new Array<page | null>(nr_pages).fill(null);

  /* Lock the pages of user memory map region */
  const pinned = yield* pin_user_pages_fast(
    memmap.vma_base,
    nr_pages,
    FOLL_WRITE | FOLL_LONGTERM,
    pages,
  );
  const put_pages = (n: number): void => {
    for (let i = 0; i < n; i++) unpin_user_page(pages[i]!);
  };
  if (pinned < 0) return pinned;
  if (pinned !== nr_pages) {
    put_pages(pinned);
    return -EFAULT;
  }

  /* Create a kernel map for the map region (vmap of zero pages fails) */
  if (nr_pages === 0) return -ENOMEM;
  const remap_vaddr = pages[0]! as number;

  /* Record Service VM va <-> User VM pa mapping */
  yield* mutex_lock(vm.regions_mapping_lock);
  if (vm.regions_mapping_count < ACRN_MEM_MAPPING_MAX) {
    vm.regions_mapping[vm.regions_mapping_count] = {
      pages,
      npages: nr_pages,
      size: memmap.len,
      service_vm_va: remap_vaddr,
      user_vm_pa: memmap.user_vm_pa,
    };
    vm.regions_mapping_count++;
  } else {
    pr_warn('misc acrn_hsm: Run out of memory mapping slots!');
    yield* mutex_unlock(vm.regions_mapping_lock);
    put_pages(pinned); // unmap_no_count: vunmap; put_pages
    return -ENOMEM;
  }
  yield* mutex_unlock(vm.regions_mapping_lock);

  /* Fill each vm_memory_region_op: one per (compound) folio */
  const regions: vm_memory_region_op[] = [];
  let user_vm_pa = memmap.user_vm_pa;
  for (let i = 0; i < nr_pages;) {
    const p = pages[i]!;
    VM_BUG_ON(PageTail(p), `VM_BUG_ON_PAGE(PageTail(page)) pfn:0x${(p as number).toString(16)}`);
    const order = folio_order(page_folio(p) as folio);
    const region_size = PAGE_SIZE * 2 ** order;
    regions.push({
      type: ACRN_MEM_REGION_ADD,
      user_vm_pa,
      service_vm_pa: (p as number) * PAGE_SIZE,
      size: region_size,
      attr: (ACRN_MEM_TYPE_WB & ACRN_MEM_TYPE_MASK) | (memmap.attr & ACRN_MEM_ACCESS_RIGHT_MASK),
    });
    user_vm_pa += region_size;
    i += 2 ** order;
  }

  /* Inform the ACRN Hypervisor to set up EPT mappings */
  const ret = yield* hcall_set_memory_regions(vm.vmid, regions);
  if (ret < 0) {
    /* unset_region / unmap_kernel_map / put_pages */
    yield* mutex_lock(vm.regions_mapping_lock);
    vm.regions_mapping_count--;
    vm.regions_mapping.length = vm.regions_mapping_count;
    yield* mutex_unlock(vm.regions_mapping_lock);
    put_pages(pinned);
    return ret;
  }
  return ret;
}

/**
 * acrn_vm_all_ram_unmap(vm): at VM destruction, drops the kernel maps and the pins of
 * every pinned RAM region (the EPT itself goes with the VM in the hypervisor).
 * @kernel drivers/virt/acrn/mm.c:acrn_vm_all_ram_unmap (v5.12+)
 * Locking: takes vm->regions_mapping_lock.
 */
export function* acrn_vm_all_ram_unmap(vm: acrn_vm): Op<void> {
  yield* mutex_lock(vm.regions_mapping_lock);
  for (let i = 0; i < vm.regions_mapping_count; i++) {
    const m = vm.regions_mapping[i]!;
    for (let j = 0; j < m.npages; j++) unpin_user_page(m.pages[j]!);
  }
  yield* mutex_unlock(vm.regions_mapping_lock);
}
