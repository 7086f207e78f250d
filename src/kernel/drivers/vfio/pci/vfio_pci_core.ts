/**
 * vfio-pci core: a PCI function handed to user space. Enabling and disabling the device
 * on the first open and last close of its fd, VFIO_DEVICE_GET_INFO/GET_REGION_INFO/
 * RESET, BAR mmap (R-VPCI-1) and the BAR fault handlers of each era, memory_lock and the
 * zaps that keep user mappings away from a BAR that does not decode (R-VPCI-2/3).
 *
 * Eras of the BAR mapping:
 * - ≤5.7: vfio_pci_mmap maps the whole request at mmap time with remap_pfn_range and
 *   nothing ever zaps it: disabling memory (COMMAND), a reset or D3hot leave the PTEs, and
 *   user accesses reach a BAR that does not decode (CVE-2020-12888).
 * - 5.8–6.9 (abafbc551fdd "vfio-pci: Invalidate mmaps and block MMIO access on disabled
 *   memory"): mmap installs nothing; vfio_pci_mmap_fault takes memory_lock for read,
 *   gives SIGBUS when memory is off, else remaps the whole VMA and records it on vma_list;
 *   vfio_pci_zap_and_down_write_memory_lock zaps every VMA on the list (mmap_lock dance)
 *   and takes memory_lock for write. vm_pgoff is rewritten to the BAR's pfn. 5.9
 *   (7b06a56d468b) uses io_remap_pfn_range; 5.13 (6a45ece4c9af "vfio/pci: Handle
 *   concurrent vma faults") skips a VMA already on the list and zaps on failure.
 * - 6.10–6.11 (aac6db75a9fc "vfio/pci: Use unmap_mapping_range()"): the zap is
 *   unmap_mapping_range of the device inode's address space (vfio_pci_zap_bars), vm_pgoff
 *   keeps the region offset, the fault inserts pfns with vmf_insert_pfn (the faulting one,
 *   then the rest of the VMA, d71a989cf5d9 "vfio/pci: Insert full vma on mmap'd MMIO
 *   fault").
 * - 6.12+ (f9e54c3a2f5b "vfio/pci: implement huge_fault support"): ->huge_fault with
 *   PMD/PUD leaves (R-VPCI-3); 6.13 (09dfc8a5f2ce "vfio/pci: Fallback huge faults for
 *   unaligned pfn") checks pfn alignment; 6.15 (c1d9dac0db16 "vfio/pci: Align huge faults
 *   to order") aligns the address down to the order instead of requiring it aligned.
 *
 * Left out: INTx/MSI/MSI-X and the IRQ ioctls, ioeventfds, VGA and ROM regions, device
 * specific regions (IGD, NVLink), hot reset of a slot/bus (VFIO_DEVICE_PCI_HOT_RESET and
 * vfio_pci_try_bus_reset), SR-IOV and VF tokens, runtime PM (idle D3hot is entered with
 * pci_set_power_state directly; pm_runtime_engaged is always false), BAR read/write
 * through the device fd (vfio_pci_bar_rw), the pci_request_selected_regions/pci_iomap of
 * the barmap (always succeed), dma-buf export (≈6.19), the sparse-mmap MSI-X capability.
 *
 * @kernel drivers/vfio/pci/vfio_pci_core.c (5.15+), drivers/vfio/pci/vfio_pci.c (≤5.14)
 */
import type { Op } from '../../../../sched/index.js';
import { EAGAIN, EINVAL, ENOTTY } from '../../../include/linux/errno.js';
import type {
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../../../include/linux/mm_types.js';
import {
  VM_ALLOW_ANY_UNCACHED,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_ERROR,
  VM_FAULT_FALLBACK,
  VM_FAULT_NOPAGE,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
  VM_SHARED,
} from '../../../include/linux/mm.js';
import {
  down_read,
  down_write,
  mutex,
  mutex_lock,
  mutex_unlock,
  rw_semaphore,
  up_read,
  up_write,
} from '../../../include/linux/spinlock.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../include/linux/mmap_lock.js';
import type { pgprot_t } from '../../../arch/x86/include/asm/pgtable_types.js';
import { _PAGE_CACHE_MASK, _PAGE_PCD } from '../../../arch/x86/include/asm/pgtable_types.js';
import {
  io_remap_pfn_range,
  pgprot_decrypted,
  remap_pfn_range,
  vmf_insert_pfn,
} from '../../../mm/memory.pfnmap.js';
import { vmf_insert_pfn_pmd, vmf_insert_pfn_pud } from '../../../mm/huge_memory.js';
import { unmap_mapping_range, zap_vma_ptes } from '../../../mm/memory.zap.js';
import { mmget_not_zero } from '../../../kernel/fork.access.js';
import { mmput } from '../../../kernel/fork.js';
import { currentKernel } from '../../../kernel/kernel.js';
import { since } from '../../../version.js';
import { IORESOURCE_MEM, resource_size } from '../../../kernel/resource.js';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MEMORY,
  PCI_D0,
  PCI_D3hot,
  PCI_STD_NUM_BARS,
  pci_clear_master,
  pci_disable_device,
  pci_enable_device,
  pci_read_config_word,
  pci_restore_state,
  pci_save_state,
  pci_set_power_state,
  pci_try_reset_function,
  pci_write_config_word,
  __pci_reset_function_locked,
  type pci_dev,
} from '../../pci/pci.js';
import { mutex_trylock } from '../../../include/linux/spinlock.js';
import { pr_info, pr_warn } from '../../../kernel/printk.js';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_INFO_MINSZ,
  VFIO_DEVICE_RESET,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_REGION_INFO_MINSZ,
  type vfio_device_info,
  type vfio_region_info,
} from '../../../include/uapi/linux/vfio.js';
import { VFIO_DEVICE_RELEASE, vfio_device, type vfio_device_ops } from '../vfio.js';
import { vfio_device_notifier_call, vfio_register_vma_ops } from '../vfio_main.js';
import { vfio_config_free, vfio_config_init, vfio_pci_config_rw } from './vfio_pci_config.js';

const PAGE_SIZE = 4096;

/** pci_info()/pci_warn(): "vfio-pci 0000:01:00.0: msg". */
function pci_info_log(pdev: pci_dev, msg: string, level: 'info' | 'warn' = 'info'): void {
  const line = `${pdev.driver ? pdev.driver.name : 'pci'} ${pdev.name}: ${msg}`;
  if (level === 'warn') pr_warn(line);
  else pr_info(line);
}
const PAGE_SHIFT = 12;

/** VFIO_PCI_OFFSET_SHIFT: region index in bits 40+ of the device-fd offset. */
export const VFIO_PCI_OFFSET_SHIFT = 40;
const SHIFT = 2 ** VFIO_PCI_OFFSET_SHIFT;
/** VFIO_PCI_OFFSET_TO_INDEX(off). @kernel include/linux/vfio_pci_core.h (vfio_pci_private.h ≤5.14) */
export function VFIO_PCI_OFFSET_TO_INDEX(off: number): number {
  return Math.floor(off / SHIFT);
}
/** VFIO_PCI_INDEX_TO_OFFSET(index). */
export function VFIO_PCI_INDEX_TO_OFFSET(index: number): number {
  return index * SHIFT;
}
/** VFIO_PCI_OFFSET_MASK. */
export function VFIO_PCI_OFFSET_MASK(off: number): number {
  return off % SHIFT;
}
/** PCI_CFG_SPACE_EXP_SIZE: the model's functions are PCIe. */
const PCI_CFG_SPACE_EXP_SIZE = 4096;
/** PMD_ORDER / PUD_ORDER on x86-64. */
const PMD_ORDER = 9;
const PUD_ORDER = 18;

/**
 * pgprot_noncached(prot): UC- (PCD) caching.
 * @kernel arch/x86/include/asm/pgtable.h:pgprot_noncached (all versions)
 */
export function pgprot_noncached(prot: pgprot_t): pgprot_t {
  return (prot & ~_PAGE_CACHE_MASK) | _PAGE_PCD;
}

/**
 * struct vfio_pci_core_device (struct vfio_pci_device ≤5.14): the vfio_device of a PCI
 * function bound to vfio-pci.
 * @kernel include/linux/vfio_pci_core.h:struct vfio_pci_core_device (5.15+);
 *   drivers/vfio/pci/vfio_pci_private.h:struct vfio_pci_device (≤5.14)
 */
export class vfio_pci_core_device extends vfio_device {
  /** Virtual config space: the COMMAND register as the user sees it (vdev->vconfig). */
  vconfig: { command: number } | null = null;
  /** barmap[i] != NULL: the BAR was requested and iomapped (first mmap/rw). */
  readonly barmap: boolean[] = [false, false, false, false, false, false];
  readonly bar_mmap_supported: boolean[] = [false, false, false, false, false, false];
  reset_works = false;
  needs_reset = false;
  /** pci_store_saved_state() at enable: what vfio_pci_core_disable restores. */
  pci_saved_state: { command: number } | null = null;
  /** needs_pm_restore: the function soft-resets on D3hot -> D0 (NoSoftRst-). */
  needs_pm_restore = false;
  pm_save: { command: number } | null = null;
  /** 5.8+: struct rw_semaphore memory_lock. */
  readonly memory_lock: rw_semaphore;
  /** 5.8–6.9: struct mutex vma_lock and the list of VMAs with PTEs (vma_list). */
  readonly vma_lock: mutex;
  readonly vma_list: vm_area_struct[] = [];
  /** 5.19+: runtime PM holds the device suspended (never set in the model). */
  pm_runtime_engaged = false;
  constructor(readonly pdev: pci_dev) {
    super(pdev, vfio_pci_ops);
    this.memory_lock = new rw_semaphore(`vfio_pci[${pdev.name}].memory_lock`);
    this.vma_lock = new mutex(`vfio_pci[${pdev.name}].vma_lock`);
  }
}

/** Module parameter disable_idle_d3 (default false: idle devices go to D3hot). */
interface vfio_pci_params {
  disable_idle_d3: boolean;
}
function params(): vfio_pci_params {
  const k = currentKernel();
  return ((k.sub.vfio_pci_params as vfio_pci_params | undefined) ??= { disable_idle_d3: false });
}
/** Sets vfio-pci's disable_idle_d3 module parameter (modprobe vfio-pci disable_idle_d3=1). */
export function disable_idle_d3(on: boolean): void {
  params().disable_idle_d3 = on;
}
export function vfio_pci_disable_idle_d3(): boolean {
  return params().disable_idle_d3;
}

/**
 * vfio_pci_set_power_state(vdev, state): pci_set_power_state, saving config space before
 * D3hot and restoring it after D0 for functions that soft-reset (needs_pm_restore).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_set_power_state (5.7–6.18)
 * Locking: callers changing to D3hot from user requests hold memory_lock for write (5.19+).
 * Return: 0 or -errno.
 */
export function* vfio_pci_set_power_state(vdev: vfio_pci_core_device, state: number): Op<number> {
  const pdev = vdev.pdev;
  let needs_save = false;
  let needs_restore = false;
  if (vdev.needs_pm_restore) {
    if (pdev.current_state < PCI_D3hot && state >= PCI_D3hot) {
      yield* pci_save_state(pdev);
      needs_save = true;
    }
    if (pdev.current_state >= PCI_D3hot && state <= PCI_D0) needs_restore = true;
  }
  const ret = yield* pci_set_power_state(pdev, state);
  if (!ret) {
    if (needs_save && pdev.current_state >= PCI_D3hot) {
      vdev.pm_save = pdev.saved_state;
    } else if (needs_restore && vdev.pm_save) {
      pdev.saved_state = vdev.pm_save;
      pdev.state_saved = true;
      vdev.pm_save = null;
      yield* pci_restore_state(pdev);
    }
  }
  return ret;
}

/**
 * vfio_pci_probe_mmaps(vdev): a memory BAR of at least a page can be mmapped.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_probe_mmaps (5.7–6.18; sub-page BARs
 *   with dummy resources left out: they are not mmappable here)
 */
function vfio_pci_probe_mmaps(vdev: vfio_pci_core_device): void {
  for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++) {
    const res = vdev.pdev.resource[bar];
    vdev.bar_mmap_supported[bar] =
      !!res && (res.flags & IORESOURCE_MEM) !== 0 && resource_size(res) >= PAGE_SIZE;
  }
}

/**
 * vfio_pci_core_enable(vdev): D0, bus mastering off, pci_enable_device, a function reset
 * (pci_try_reset_function; -EAGAIN fails the open), saves the state to restore at close,
 * builds the virtual config space.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_enable (5.15+; vfio_pci.c:
 *   vfio_pci_enable before)
 * Locking: dev_set->lock (reflck->lock ≤5.14) held.
 * Return: 0 or -errno.
 */
export function* vfio_pci_core_enable(vdev: vfio_pci_core_device): Op<number> {
  const pdev = vdev.pdev;
  yield* vfio_pci_set_power_state(vdev, PCI_D0);
  /* Don't allow our initial saved state to include busmaster */
  yield* pci_clear_master(pdev);
  let ret = yield* pci_enable_device(pdev);
  if (ret) return ret;
  /* If reset fails because of the device lock, fail this path entirely */
  ret = yield* pci_try_reset_function(pdev);
  if (ret === -EAGAIN) {
    yield* pci_disable_device(pdev);
    return ret;
  }
  vdev.reset_works = !ret;
  yield* pci_save_state(pdev);
  vdev.pci_saved_state = pdev.saved_state;
  ret = yield* vfio_config_init(vdev);
  if (ret) {
    vdev.pci_saved_state = null;
    yield* pci_disable_device(pdev);
    return ret;
  }
  vfio_pci_probe_mmaps(vdev);
  return 0;
}

/**
 * vfio_pci_core_disable(vdev): stops DMA (bus master off), drops the barmaps, restores the
 * state saved at enable, resets the function if the device lock is free (COMMAND is
 * INTX_DISABLE, memory off, during it), pci_disable_device, then D3hot unless
 * disable_idle_d3.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_disable (5.15+; vfio_pci.c:
 *   vfio_pci_disable before)
 * Locking: dev_set->lock held.
 * Leaves out: IRQ teardown, ioeventfds, device regions, bus reset, pci_cfg_access_trylock.
 */
export function* vfio_pci_core_disable(vdev: vfio_pci_core_device): Op<void> {
  const pdev = vdev.pdev;
  /* Stop the device from further DMA */
  yield* pci_clear_master(pdev);
  vfio_config_free(vdev);
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) vdev.barmap[i] = false;
  vdev.needs_reset = true;
  let restore = true;
  // pci_load_and_free_saved_state(pdev, &vdev->pci_saved_state)
  if (vdev.pci_saved_state) {
    pdev.saved_state = vdev.pci_saved_state;
    pdev.state_saved = true;
    vdev.pci_saved_state = null;
  } else {
    pci_info_log(pdev, "vfio_pci_core_disable: Couldn't reload saved state");
    if (!vdev.reset_works) restore = false;
    else yield* pci_save_state(pdev);
  }
  if (restore) {
    /* Disable INTx and MSI, presumably to avoid spurious interrupts during reset. */
    yield* pci_write_config_word(pdev, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
    if (vdev.reset_works && (yield* mutex_trylock(pdev.lock))) {
      if (!(yield* __pci_reset_function_locked(pdev))) vdev.needs_reset = false;
      yield* mutex_unlock(pdev.lock);
    }
    yield* pci_restore_state(pdev);
  }
  // out:
  yield* pci_disable_device(pdev);
  if (!vfio_pci_disable_idle_d3()) yield* vfio_pci_set_power_state(vdev, PCI_D3hot);
}

/**
 * vfio_pci_open_device(core_vdev): the first open of the device fd enables the function.
 * @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_open_device (5.15+; vfio_pci_open ≤5.14
 *   with the driver's own refcnt under reflck->lock)
 * Return: 0 or -errno.
 */
function* vfio_pci_open_device(core_vdev: vfio_device): Op<number> {
  const vdev = core_vdev as vfio_pci_core_device;
  return yield* vfio_pci_core_enable(vdev);
}

/**
 * vfio_pci_core_close_device(core_vdev): the last close: tells the device notifier chain
 * (RFC 07/10 "vfio/pci: Notify on device release": VFIO_DEVICE_RELEASE, before the
 * disable), then disables the function.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_close_device (5.15+;
 *   vfio_pci.c:vfio_pci_release ≤5.14)
 * Locking: dev_set->lock held.
 */
function* vfio_pci_core_close_device(core_vdev: vfio_device): Op<void> {
  const vdev = core_vdev as vfio_pci_core_device;
  yield* vfio_device_notifier_call(vdev, VFIO_DEVICE_RELEASE);
  yield* vfio_pci_core_disable(vdev);
}

/* ------------------------------------------------------------------ memory_lock, zap */

/**
 * vfio_pci_zap_and_vma_lock(vdev, try): zaps the PTEs of every VMA on vma_list, keeping
 * the lock order mmap_lock -> vma_lock: take an mm from the list under vma_lock, drop
 * it, take that mm's mmap_lock for read, retake vma_lock, zap and unlist that mm's VMAs.
 * Returns with vma_lock held and the list empty.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_zap_and_vma_lock (5.8–6.9,
 *   abafbc551fdd; removed by aac6db75a9fc)
 * Locking: none on entry; vma_lock held on return (1).
 * Return: 1 (the try variant, used by bus resets, is not modelled).
 */
function* vfio_pci_zap_and_vma_lock(vdev: vfio_pci_core_device): Op<number> {
  for (;;) {
    let mm = null;
    yield* mutex_lock(vdev.vma_lock);
    while (vdev.vma_list.length) {
      const first = vdev.vma_list[0]!;
      mm = first.vm_mm;
      if (yield* mmget_not_zero(mm)) break;
      vdev.vma_list.shift();
      mm = null;
    }
    if (!mm) return 1;
    yield* mutex_unlock(vdev.vma_lock);
    yield* mmap_read_lock(mm);
    if (mm.mm_users > 0) {
      // mmget_still_valid(mm) (≤5.9; always true after "mm: remove the now-unnecessary
      // mmget_still_valid() hack", 4d45e75a9955, v5.10)
      yield* mutex_lock(vdev.vma_lock);
      for (const vma of [...vdev.vma_list]) {
        if (vma.vm_mm !== mm) continue;
        vdev.vma_list.splice(vdev.vma_list.indexOf(vma), 1);
        yield* zap_vma_ptes(vma, vma.vm_start, vma.vm_end - vma.vm_start);
      }
      yield* mutex_unlock(vdev.vma_lock);
    }
    yield* mmap_read_unlock(mm);
    yield* mmput(mm);
  }
}

/**
 * vfio_pci_zap_bars(vdev): unmap_mapping_range of BAR0..BAR5 in the device's address
 * space (every mmap of the device through any fd), even_cows.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_zap_bars (v6.10+, aac6db75a9fc)
 * Locking: memory_lock held for write; takes i_mmap_rwsem.
 */
export function* vfio_pci_zap_bars(vdev: vfio_pci_core_device): Op<void> {
  const start = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_BAR0_REGION_INDEX);
  const len = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_ROM_REGION_INDEX) - start;
  if (!vdev.inode) return;
  yield* unmap_mapping_range(vdev.inode.i_mapping, start, len, true);
}

/**
 * vfio_pci_zap_and_down_write_memory_lock(vdev): removes every user PTE to the BARs and
 * takes memory_lock for write (R-VPCI-2).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_zap_and_down_write_memory_lock
 *   (5.8+, abafbc551fdd: zap_and_vma_lock, down_write, drop vma_lock; 6.10+ aac6db75a9fc:
 *   down_write then vfio_pci_zap_bars)
 * Locking: memory_lock held for write on return.
 */
export function* vfio_pci_zap_and_down_write_memory_lock(vdev: vfio_pci_core_device): Op<void> {
  if (since(6, 10)) {
    yield* down_write(vdev.memory_lock);
    yield* vfio_pci_zap_bars(vdev);
    return;
  }
  yield* vfio_pci_zap_and_vma_lock(vdev);
  yield* down_write(vdev.memory_lock);
  yield* mutex_unlock(vdev.vma_lock);
}

/**
 * vfio_pci_memory_lock_and_enable(vdev): takes memory_lock for write and turns memory
 * decoding on for a kernel access (used around BAR rw/reset paths).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_memory_lock_and_enable (5.8+)
 * Return: the previous COMMAND value.
 */
export function* vfio_pci_memory_lock_and_enable(vdev: vfio_pci_core_device): Op<number> {
  yield* down_write(vdev.memory_lock);
  const { val: cmd } = yield* pci_read_config_word(vdev.pdev, PCI_COMMAND);
  if (!(cmd & PCI_COMMAND_MEMORY))
    yield* pci_write_config_word(vdev.pdev, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
  return cmd;
}

/**
 * vfio_pci_memory_unlock_and_restore(vdev, cmd).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_memory_unlock_and_restore (5.8+)
 */
export function* vfio_pci_memory_unlock_and_restore(
  vdev: vfio_pci_core_device,
  cmd: number,
): Op<void> {
  yield* pci_write_config_word(vdev.pdev, PCI_COMMAND, cmd);
  yield* up_write(vdev.memory_lock);
}

/* ----------------------------------------------------------------------------- ioctl */

/**
 * vfio_pci_ioctl_get_region_info(vdev, info): offset/size/flags of a region; BARs that
 * can be mmapped carry VFIO_REGION_INFO_FLAG_MMAP.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_ioctl_get_region_info (6.1+; inline
 *   in the ioctl before) (5.7–6.18)
 * Return: 0, -EINVAL (argsz, index; VGA without VGA).
 */
function vfio_pci_ioctl_get_region_info(
  vdev: vfio_pci_core_device,
  info: vfio_region_info,
): number {
  if (info.argsz < VFIO_REGION_INFO_MINSZ) return -EINVAL;
  const pdev = vdev.pdev;
  switch (true) {
    case info.index === VFIO_PCI_CONFIG_REGION_INDEX:
      info.offset = VFIO_PCI_INDEX_TO_OFFSET(info.index);
      info.size = PCI_CFG_SPACE_EXP_SIZE;
      info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      break;
    case info.index >= VFIO_PCI_BAR0_REGION_INDEX && info.index <= VFIO_PCI_BAR5_REGION_INDEX: {
      info.offset = VFIO_PCI_INDEX_TO_OFFSET(info.index);
      const res = pdev.resource[info.index];
      info.size = res ? resource_size(res) : 0;
      if (!info.size) {
        info.flags = 0;
        break;
      }
      info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      if (vdev.bar_mmap_supported[info.index]) info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
      break;
    }
    case info.index === VFIO_PCI_ROM_REGION_INDEX:
      // No ROM BAR in the model: pci_resource_len() == 0 => size 0, flags 0.
      info.offset = VFIO_PCI_INDEX_TO_OFFSET(info.index);
      info.size = 0;
      info.flags = 0;
      break;
    case info.index === VFIO_PCI_VGA_REGION_INDEX:
      return -EINVAL; // !vdev->has_vga
    default:
      // Device-specific regions: none (num_regions == 0).
      if (info.index >= VFIO_PCI_NUM_REGIONS) return -EINVAL;
      return -EINVAL;
  }
  info.cap_offset = 0;
  return 0;
}

/**
 * vfio_pci_ioctl_reset(vdev): a function reset. 5.8+ zaps the BAR mappings and holds
 * memory_lock for write around it, so no user access or fault reaches the function
 * while its config space is reset; ≤5.7 resets under the user's feet.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_ioctl_reset (5.7–6.18; the zap and
 *   lock since abafbc551fdd, v5.8)
 * Return: 0, -EINVAL when reset does not work, pci_try_reset_function's -errno.
 */
function* vfio_pci_ioctl_reset(vdev: vfio_pci_core_device): Op<number> {
  if (!vdev.reset_works) return -EINVAL;
  if (!since(5, 8)) return yield* pci_try_reset_function(vdev.pdev);
  yield* vfio_pci_zap_and_down_write_memory_lock(vdev);
  const ret = yield* pci_try_reset_function(vdev.pdev);
  yield* up_write(vdev.memory_lock);
  return ret;
}

/**
 * vfio_pci_core_ioctl(core_vdev, cmd, arg): GET_INFO, GET_REGION_INFO, RESET.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_ioctl (5.15+; vfio_pci.c:
 *   vfio_pci_ioctl ≤5.14)
 * Return: per command; -ENOTTY for commands not modelled.
 */
function* vfio_pci_core_ioctl(core_vdev: vfio_device, cmd: number, arg: unknown): Op<number> {
  const vdev = core_vdev as vfio_pci_core_device;
  switch (cmd) {
    case VFIO_DEVICE_GET_INFO: {
      const info = arg as vfio_device_info;
      if (info.argsz < VFIO_DEVICE_INFO_MINSZ) return -EINVAL;
      info.flags = VFIO_DEVICE_FLAGS_PCI;
      if (vdev.reset_works) info.flags |= VFIO_DEVICE_FLAGS_RESET;
      info.num_regions = VFIO_PCI_NUM_REGIONS;
      info.num_irqs = 5; // VFIO_PCI_NUM_IRQS
      return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO:
      return vfio_pci_ioctl_get_region_info(vdev, arg as vfio_region_info);
    case VFIO_DEVICE_RESET:
      return yield* vfio_pci_ioctl_reset(vdev);
    default:
      return -ENOTTY;
  }
}

/**
 * vfio_pci_rw(vdev, buf, count, ppos, iswrite): the config region goes to the config
 * emulation; other regions are not modelled (-EINVAL).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_rw (5.7–6.18)
 * Return: bytes or -errno.
 */
function* vfio_pci_rw(
  vdev: vfio_pci_core_device,
  buf: number,
  count: number,
  ppos: { pos: number },
  iswrite: boolean,
): Op<number> {
  const index = VFIO_PCI_OFFSET_TO_INDEX(ppos.pos);
  if (index >= VFIO_PCI_NUM_REGIONS) return -EINVAL;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX)
    return yield* vfio_pci_config_rw(vdev, buf, count, ppos, iswrite);
  return -EINVAL;
}

/* ------------------------------------------------------------------------------ mmap */

/**
 * vfio_pci_mmap_open(vma): 5.8–6.9 zaps a new VMA (split/dup) so that it faults and gets
 * on vma_list.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_open (5.8–6.9)
 * Left out: the zap (vm_ops->open is not an operation in the model); split/duplicated
 *   vfio VMAs keep their PTEs and are not on vma_list.
 */
function vfio_pci_mmap_open(vma: vm_area_struct): void {
  void vma;
}

/**
 * vfio_pci_mmap_close(vma): takes the VMA off vma_list.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_close (5.8–6.9)
 * Locking: vma_lock in the kernel; the model's ->close is not an operation, so the list
 *   update is done without the scheduling point.
 */
function vfio_pci_mmap_close(vma: vm_area_struct): void {
  const vdev = vma.vm_private_data as vfio_pci_core_device;
  const i = vdev.vma_list.indexOf(vma);
  if (i >= 0) vdev.vma_list.splice(i, 1);
}

/**
 * __vfio_pci_memory_enabled(vdev): may the BARs be accessed? The user's (virtual) COMMAND
 * MEMORY bit; 5.19+ (2b2c651baf1c "vfio/pci: Invalidate mmaps and block the access in
 * D3hot power state") also requires the function below D3hot.
 * @kernel drivers/vfio/pci/vfio_pci_config.c:__vfio_pci_memory_enabled (5.8+)
 * Locking: memory_lock held.
 */
export function __vfio_pci_memory_enabled(vdev: vfio_pci_core_device): boolean {
  const cmd = vdev.vconfig?.command ?? 0;
  const mem = (cmd & PCI_COMMAND_MEMORY) !== 0;
  if (since(5, 19)) return vdev.pdev.current_state < PCI_D3hot && mem;
  return mem;
}

/**
 * vfio_pci_mmap_fault(vmf) for 5.8–6.9: memory off ⇒ SIGBUS; else the whole VMA is
 * remapped (remap_pfn_range; io_remap_pfn_range 5.9+) and the VMA put on vma_list.
 * 5.13+ (6a45ece4c9af): a VMA already on the list is left alone (concurrent faults), a
 * remap failure zaps what was mapped.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_fault (5.8–6.9)
 * Locking: mmap_lock held for read; takes vma_lock then memory_lock for read.
 * Return: VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_OOM.
 */
function* vfio_pci_mmap_fault_v58(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const vdev = vma.vm_private_data as vfio_pci_core_device;
  let ret: vm_fault_t = VM_FAULT_NOPAGE;
  const size = vma.vm_end - vma.vm_start;
  const remap = since(5, 9) ? io_remap_pfn_range : remap_pfn_range;
  yield* mutex_lock(vdev.vma_lock);
  yield* down_read(vdev.memory_lock);
  if (since(5, 13)) {
    // 6a45ece4c9af "vfio/pci: Handle concurrent vma faults"
    if (!__vfio_pci_memory_enabled(vdev)) ret = VM_FAULT_SIGBUS;
    else if (!vdev.vma_list.includes(vma)) {
      if (yield* remap(vma, vma.vm_start, vma.vm_pgoff, size, vma.vm_page_prot)) {
        ret = VM_FAULT_SIGBUS;
        yield* zap_vma_ptes(vma, vma.vm_start, size);
      } else {
        vdev.vma_list.unshift(vma); // __vfio_pci_add_vma: list_add
      }
    }
    yield* up_read(vdev.memory_lock);
    yield* mutex_unlock(vdev.vma_lock);
    return ret;
  }
  if (!__vfio_pci_memory_enabled(vdev)) {
    yield* mutex_unlock(vdev.vma_lock);
    yield* up_read(vdev.memory_lock);
    return VM_FAULT_SIGBUS;
  }
  vdev.vma_list.unshift(vma); // __vfio_pci_add_vma (its kmalloc failure, VM_FAULT_OOM, is not modelled)
  yield* mutex_unlock(vdev.vma_lock);
  if (yield* remap(vma, vma.vm_start, vma.vm_pgoff, size, vma.vm_page_prot)) ret = VM_FAULT_SIGBUS;
  yield* up_read(vdev.memory_lock);
  return ret;
}

/**
 * vma_to_pfn(vma): the pfn the VMA's first page maps: BAR start + the offset in vm_pgoff.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vma_to_pfn (v6.10+, aac6db75a9fc)
 */
export function vma_to_pfn(vma: vm_area_struct): number {
  const vdev = vma.vm_private_data as vfio_pci_core_device;
  const index = Math.floor(vma.vm_pgoff / 2 ** (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT));
  const pgoff = vma.vm_pgoff % 2 ** (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
  return vdev.pdev.resource[index]!.start / PAGE_SIZE + pgoff;
}

/**
 * vfio_pci_mmap_fault(vmf) for 6.10–6.11: memory off or runtime-suspended ⇒ SIGBUS; else
 * vmf_insert_pfn of the faulting page, then the rest of the VMA (errors there stop the
 * pre-fault silently).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_fault (v6.10–v6.11;
 *   aac6db75a9fc, d71a989cf5d9)
 * Locking: mmap_lock (or the VMA lock) held; takes memory_lock for read.
 * Return: VM_FAULT_NOPAGE or VM_FAULT_SIGBUS (or vmf_insert_pfn's error).
 */
function* vfio_pci_mmap_fault_v610(vmf: vm_fault): Op<vm_fault_t> {
  const vma = vmf.vma;
  const vdev = vma.vm_private_data as vfio_pci_core_device;
  const pgoff = vmf.pgoff - vma.vm_pgoff;
  let ret: vm_fault_t = VM_FAULT_SIGBUS;
  let pfn = vma_to_pfn(vma);
  yield* down_read(vdev.memory_lock);
  if (!vdev.pm_runtime_engaged && __vfio_pci_memory_enabled(vdev)) {
    ret = yield* vmf_insert_pfn(vma, vmf.address, pfn + pgoff);
    if (!(ret & VM_FAULT_ERROR)) {
      for (let addr = vma.vm_start; addr < vma.vm_end; addr += PAGE_SIZE, pfn++) {
        if (addr === vmf.address) continue;
        if ((yield* vmf_insert_pfn(vma, addr, pfn)) & VM_FAULT_ERROR) break;
      }
    }
  }
  yield* up_read(vdev.memory_lock);
  return ret;
}

/**
 * vfio_pci_mmap_huge_fault(vmf, order) (R-VPCI-3): for order > 0 a leaf that would leave
 * the VMA or a pfn not aligned to the order ⇒ FALLBACK (before taking the lock);
 * memory_lock for read; runtime-suspended or memory off ⇒ SIGBUS; order 0 ⇒
 * vmf_insert_pfn; PMD_ORDER ⇒ vmf_insert_pfn_pmd; PUD_ORDER ⇒ vmf_insert_pfn_pud; other
 * orders ⇒ FALLBACK.
 *  - 6.12 (f9e54c3a2f5b): needs vmf->address aligned to the order; pfn = vma_to_pfn +
 *    (vmf->pgoff - vm_pgoff); no pfn alignment check.
 *  - 6.13 (09dfc8a5f2ce): also falls back for a pfn not aligned to the order.
 *  - 6.15 (c1d9dac0db16): the address is aligned down to the order; the leaf must lie
 *    inside the VMA and the pfn be aligned.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_huge_fault (v6.12+)
 * Locking: mmap_lock (or the VMA lock) held; takes memory_lock for read.
 * Return: VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_FALLBACK, or the insert's error.
 */
export function* vfio_pci_mmap_huge_fault(vmf: vm_fault, order: number): Op<vm_fault_t> {
  const vma = vmf.vma;
  const vdev = vma.vm_private_data as vfio_pci_core_device;
  const span = PAGE_SIZE * 2 ** order;
  let addr: number;
  let pfn: number;
  if (since(6, 15)) {
    addr = Math.floor(vmf.address / span) * span;
    pfn = vma_to_pfn(vma) + (addr - vma.vm_start) / PAGE_SIZE;
    if (order && (addr < vma.vm_start || addr + span > vma.vm_end || pfn % 2 ** order !== 0))
      return VM_FAULT_FALLBACK;
  } else {
    addr = vmf.address;
    pfn = vma_to_pfn(vma) + (vmf.pgoff - vma.vm_pgoff);
    if (
      order &&
      ((since(6, 13) && pfn % 2 ** order !== 0) ||
        vmf.address % span !== 0 ||
        vmf.address + span > vma.vm_end)
    )
      return VM_FAULT_FALLBACK;
  }
  let ret: vm_fault_t = VM_FAULT_SIGBUS;
  yield* down_read(vdev.memory_lock);
  if (!vdev.pm_runtime_engaged && __vfio_pci_memory_enabled(vdev)) {
    switch (order) {
      case 0:
        ret = yield* vmf_insert_pfn(vma, vmf.address, pfn);
        break;
      case PMD_ORDER:
        ret =
          currentKernel().config.CONFIG_ARCH_SUPPORTS_PMD_PFNMAP === true
            ? yield* vmf_insert_pfn_pmd(vmf, pfn, false)
            : VM_FAULT_FALLBACK;
        break;
      case PUD_ORDER:
        ret =
          currentKernel().config.CONFIG_ARCH_SUPPORTS_PUD_PFNMAP === true
            ? yield* vmf_insert_pfn_pud(vmf, pfn, false)
            : VM_FAULT_FALLBACK;
        break;
      default:
        ret = VM_FAULT_FALLBACK;
    }
  }
  yield* up_read(vdev.memory_lock);
  void addr;
  return ret;
}

/**
 * vfio_pci_mmap_page_fault(vmf) = vfio_pci_mmap_huge_fault(vmf, 0).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_page_fault (v6.12+)
 */
function vfio_pci_mmap_page_fault(vmf: vm_fault): Op<vm_fault_t> {
  return vfio_pci_mmap_huge_fault(vmf, 0);
}

/** vfio_pci_mmap_ops of 5.8–6.9. @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_ops */
const vfio_pci_mmap_ops_v58: vm_operations_struct = {
  name: 'vfio_pci_mmap_ops',
  open: vfio_pci_mmap_open,
  close: vfio_pci_mmap_close,
  fault: vfio_pci_mmap_fault_v58,
};
/** vfio_pci_mmap_ops of 6.10–6.11. */
const vfio_pci_mmap_ops_v610: vm_operations_struct = {
  name: 'vfio_pci_mmap_ops',
  fault: vfio_pci_mmap_fault_v610,
};
/** vfio_pci_mmap_ops of 6.12+ (CONFIG_ARCH_SUPPORTS_HUGE_PFNMAP: huge_fault). */
const vfio_pci_mmap_ops_v612: vm_operations_struct = {
  name: 'vfio_pci_mmap_ops',
  fault: vfio_pci_mmap_page_fault,
  huge_fault: vfio_pci_mmap_huge_fault,
};
vfio_register_vma_ops(vfio_pci_mmap_ops_v58);
vfio_register_vma_ops(vfio_pci_mmap_ops_v610);
vfio_register_vma_ops(vfio_pci_mmap_ops_v612);

/** The vm_ops vfio-pci gives its BAR mmaps in this kernel (null ≤5.7: none). */
export function vfio_pci_mmap_ops(): vm_operations_struct | null {
  if (!since(5, 8)) return null;
  if (!since(6, 10)) return vfio_pci_mmap_ops_v58;
  if (!since(6, 12)) return vfio_pci_mmap_ops_v610;
  return vfio_pci_mmap_ops_v612;
}

/**
 * vfio_pci_core_mmap(core_vdev, vma) (R-VPCI-1): index from vm_pgoff >> 28; the end before
 * the start, no VM_SHARED, a device region, ROM/config/VGA (index ≥ ROM), a BAR that
 * cannot be mmapped, or offset + length beyond the page-aligned BAR ⇒ -EINVAL; requests
 * and iomaps the BAR once; prot noncached (and decrypted); flags IO|PFNMAP|DONTEXPAND|
 * DONTDUMP (+ALLOW_ANY_UNCACHED 6.9+, 8c47d8ecc56a "vfio: Convey kvm that the vfio-pci
 * device is wc safe"). ≤5.7: vm_pgoff = the BAR's pfn + offset and the whole range is
 * remap_pfn_range'd now. 5.8–6.9: vm_pgoff rewritten likewise, vm_ops set, no PTEs.
 * 6.10+: vm_pgoff keeps the region offset (the device address space's index).
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_mmap (5.15+; vfio_pci.c:
 *   vfio_pci_mmap ≤5.14)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
function* vfio_pci_core_mmap(core_vdev: vfio_device, vma: vm_area_struct): Op<number> {
  const vdev = core_vdev as vfio_pci_core_device;
  const pdev = vdev.pdev;
  const index = Math.floor(vma.vm_pgoff / 2 ** (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT));
  if (vma.vm_end < vma.vm_start) return -EINVAL;
  if ((vma.vm_flags & VM_SHARED) === 0n) return -EINVAL;
  if (index >= VFIO_PCI_NUM_REGIONS) return -EINVAL; // no device-specific regions
  if (index >= VFIO_PCI_ROM_REGION_INDEX) return -EINVAL;
  if (!vdev.bar_mmap_supported[index]) return -EINVAL;
  const res = pdev.resource[index]!;
  const phys_len = Math.ceil(resource_size(res) / PAGE_SIZE) * PAGE_SIZE;
  const req_len = vma.vm_end - vma.vm_start;
  const pgoff = vma.vm_pgoff % 2 ** (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
  const req_start = pgoff * PAGE_SIZE;
  if (req_start + req_len > phys_len) return -EINVAL;
  /*
   * Even though we don't make use of the barmap for the mmap, we need to request the
   * region and the barmap tracks that (vfio_pci_core_setup_barmap).
   */
  if (!vdev.barmap[index]) vdev.barmap[index] = true;
  vma.vm_private_data = vdev;
  vma.vm_page_prot = pgprot_noncached(vma.vm_page_prot);
  if (since(6, 10)) vma.vm_page_prot = pgprot_decrypted(vma.vm_page_prot);
  else vma.vm_pgoff = res.start / PAGE_SIZE + pgoff;
  if (!since(5, 8)) {
    return yield* remap_pfn_range(vma, vma.vm_start, vma.vm_pgoff, req_len, vma.vm_page_prot);
  }
  /*
   * See remap_pfn_range(), called from vfio_pci_fault() but we can't change vm_flags
   * within the fault handler.  Set them now.
   */
  let flags = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  if (since(6, 9)) flags |= VM_ALLOW_ANY_UNCACHED;
  vma.vm_flags |= flags;
  vma.vm_ops = vfio_pci_mmap_ops();
  return 0;
}

/** vfio_pci_core_read / vfio_pci_core_write. @kernel drivers/vfio/pci/vfio_pci_core.c (5.7–6.18) */
function vfio_pci_core_read(
  core_vdev: vfio_device,
  buf: number,
  count: number,
  ppos: { pos: number },
): Op<number> {
  return vfio_pci_rw(core_vdev as vfio_pci_core_device, buf, count, ppos, false);
}
function vfio_pci_core_write(
  core_vdev: vfio_device,
  buf: number,
  count: number,
  ppos: { pos: number },
): Op<number> {
  return vfio_pci_rw(core_vdev as vfio_pci_core_device, buf, count, ppos, true);
}

/**
 * vfio_pci_core_request(core_vdev, count): unbind while open; without a request eventfd
 * the kernel warns once.
 * @kernel drivers/vfio/pci/vfio_pci_core.c:vfio_pci_core_request (5.7–6.18)
 */
function vfio_pci_core_request(core_vdev: vfio_device, count: number): void {
  const vdev = core_vdev as vfio_pci_core_device;
  if (count === 0)
    pci_info_log(
      vdev.pdev,
      'No device request channel registered, blocked until released by user',
      'warn',
    );
}

/**
 * vfio_pci_ops: vfio-pci's vfio_device_ops.
 * @kernel drivers/vfio/pci/vfio_pci.c:vfio_pci_ops (5.7–6.18)
 */
export const vfio_pci_ops: vfio_device_ops = {
  name: 'vfio-pci',
  open_device: vfio_pci_open_device,
  close_device: vfio_pci_core_close_device,
  ioctl: vfio_pci_core_ioctl,
  read: vfio_pci_core_read,
  write: vfio_pci_core_write,
  mmap: vfio_pci_core_mmap,
  request: vfio_pci_core_request,
};
