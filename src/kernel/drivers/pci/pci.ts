/**
 * PCI functions (drivers/pci/pci.c): struct pci_dev with its BARs, the parts of config
 * space DMA safety needs (PCI_COMMAND with MEMORY and MASTER; the PM state D0/D3hot),
 * enabling and disabling, bus mastering, power states, save/restore and function reset.
 *
 * Hardware state is kept apart from the kernel's view: `command` is the COMMAND register,
 * `hw_power` the function's real PM state, `present` whether it is still plugged in;
 * `current_state` is what the kernel believes (pci_device_remove sets PCI_UNKNOWN). A BAR
 * decodes memory iff present && hw_power == D0 && (command & PCI_COMMAND_MEMORY)
 * (drivers/pci/access.ts dispatches on it).
 *
 * Steps: every config-space access is one Step on `pci<bdf>.config` (read or write), and
 * BAR accesses read the same object first (access.ts), so a CPU or DMA access and a
 * COMMAND write are ordered by the scheduler.
 *
 * Left out: capability walking, MSI/MSI-X, INTx, ASPM, SR-IOV, bridges and bus numbering,
 * D1/D2/D3cold, runtime PM, AER and error recovery, reset methods other than FLR (v5.15+
 * reset_methods ordering), pci_cfg_access_lock, delays (FLR's 100 ms, D3hot's 10 ms).
 *
 * @kernel drivers/pci/pci.c, include/linux/pci.h, include/uapi/linux/pci_regs.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { WARN_ONCE } from '../../kernel/panic.js';
import { pr_err, pr_info, pr_debug } from '../../kernel/printk.js';
import { EAGAIN, EINVAL, EIO } from '../../include/linux/errno.js';
import { IORESOURCE_MEM, resource_string, type resource } from '../../kernel/resource.js';
import { device, device_lock, device_unlock, type bus_type } from '../base/core.js';
import { mutex_trylock } from '../../include/linux/spinlock.js';

/** include/uapi/asm-generic/errno.h: ENOTTY (not in include/linux/errno.ts). */
export const ENOTTY = 25;

/* include/uapi/linux/pci_regs.h */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STD_NUM_BARS = 6;
export const PCI_ROM_RESOURCE = 6;

/* include/linux/pci.h: pci_power_t */
export const PCI_D0 = 0;
export const PCI_D1 = 1;
export const PCI_D2 = 2;
export const PCI_D3hot = 3;
export const PCI_D3cold = 4;
export const PCI_UNKNOWN = 5;
export const PCI_POWER_ERROR = -1;

/** include/linux/pci.h: PCIBIOS_* results of config accessors. */
export const PCIBIOS_SUCCESSFUL = 0x00;
export const PCIBIOS_DEVICE_NOT_FOUND = 0x86;

const STATE_NAMES = ['D0', 'D1', 'D2', 'D3hot', 'D3cold', 'unknown'];
/** pci_power_name(state). @kernel drivers/pci/pci.c:pci_power_name (all versions) */
export function pci_power_name(state: number): string {
  return STATE_NAMES[state] ?? 'error';
}

/** A function's config-space state saved by pci_save_state. */
interface saved_config {
  readonly command: number;
}

/**
 * struct pci_dev: a PCI function. `resource[i]` are its BARs (null when unimplemented);
 * the frames they cover have no struct page.
 * @kernel include/linux/pci.h:struct pci_dev (all versions)
 */
export class pci_dev extends device {
  readonly resource: (resource | null)[] = [null, null, null, null, null, null, null];
  /** The PCI_COMMAND register (hardware). */
  command = 0;
  /** The function's real PM state (hardware). */
  hw_power = PCI_D0;
  /** The kernel's idea of the PM state (dev->current_state). */
  current_state = PCI_UNKNOWN;
  /** The function is physically present (false after hot-unplug). */
  present = true;
  /** dev->error_state == pci_channel_io_perm_failure (pci_dev_set_disconnected). */
  disconnected = false;
  /** atomic_t enable_cnt. */
  enable_cnt = 0;
  is_busmaster = false;
  /** pci_dev_is_added(). */
  is_added = false;
  /** pdev->driver_override (sysfs driver_override). */
  driver_override: string | null = null;
  state_saved = false;
  private saved: saved_config | null = null;
  /** The function supports FLR (pci_reset_supported / dev->reset_fn). */
  flr = true;
  /** PCI_PM_CTRL_NO_SOFT_RESET: D3hot -> D0 keeps config state (else it is reset). */
  no_soft_reset = true;
  constructor(
    /** "0000:01:00.0" */
    name: string,
    bus: bus_type,
    readonly domain_nr: number,
    readonly bus_nr: number,
    readonly devfn: number,
    readonly vendor: number,
    /** pdev->device (the device ID). */
    readonly device: number,
  ) {
    super(name, bus);
    this.dma_mask = 2 ** 32 - 1; // pci_setup_device: DMA_BIT_MASK(32)
    this.coherent_dma_mask = 2 ** 32 - 1;
  }
  /** Requester ID as the IOMMU sees it. */
  get source_id(): number {
    return (this.bus_nr << 8) | this.devfn;
  }
  /** Step object for this function's config space. */
  get cfg_obj(): string {
    return `pci${this.name}.config`;
  }
  /** pci_save_state's buffer (model access for restore). */
  get saved_state(): saved_config | null {
    return this.saved;
  }
  set saved_state(s: saved_config | null) {
    this.saved = s;
  }
}

/** PCI_SLOT(devfn), PCI_FUNC(devfn). */
export function PCI_SLOT(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}
export function PCI_FUNC(devfn: number): number {
  return devfn & 7;
}

/** pci_name(pdev): "0000:01:00.0". @kernel include/linux/pci.h:pci_name (all versions) */
export function pci_name(pdev: pci_dev): string {
  return pdev.name;
}

/** to_pci_dev(dev). */
export function to_pci_dev(dev: device): pci_dev {
  return dev as pci_dev;
}

/** pci_is_enabled(pdev): enable_cnt > 0. @kernel include/linux/pci.h:pci_is_enabled (all versions) */
export function pci_is_enabled(pdev: pci_dev): boolean {
  return pdev.enable_cnt > 0;
}

/** pci_dev_is_disconnected(pdev). @kernel drivers/pci/pci.h:pci_dev_is_disconnected (all versions) */
export function pci_dev_is_disconnected(pdev: pci_dev): boolean {
  return pdev.disconnected;
}

/** pci_info/pci_err prefix: "pci 0000:01:00.0: " or "<driver> 0000:01:00.0: ". */
function pfx(pdev: pci_dev): string {
  return `${pdev.driver ? pdev.driver.name : 'pci'} ${pdev.name}: `;
}

/** Why the BAR of pdev does not decode memory now, or null. */
export function pci_bar_why_disabled(pdev: pci_dev): string | null {
  if (!pdev.present) return 'device removed';
  if (pdev.hw_power !== PCI_D0) return `device in ${pci_power_name(pdev.hw_power)}`;
  if (!(pdev.command & PCI_COMMAND_MEMORY)) return 'PCI_COMMAND_MEMORY clear';
  return null;
}

/**
 * pci_read_config_word(dev, where, &val): reads a config register (COMMAND; the IDs; others
 * read 0 in the model). A function that is gone answers all ones.
 * @kernel drivers/pci/access.c:pci_read_config_word (all versions)
 * Locking: pci_lock inside (one Step).
 * Return: { ret: PCIBIOS_*, val }.
 */
export function* pci_read_config_word(
  pdev: pci_dev,
  where: number,
): Op<{ ret: number; val: number }> {
  yield { obj: pdev.cfg_obj, kind: 'read', what: 'pci_read_config_word' };
  if (pdev.disconnected || !pdev.present) return { ret: PCIBIOS_DEVICE_NOT_FOUND, val: 0xffff };
  if (where === PCI_COMMAND) return { ret: PCIBIOS_SUCCESSFUL, val: pdev.command };
  if (where === PCI_VENDOR_ID) return { ret: PCIBIOS_SUCCESSFUL, val: pdev.vendor };
  if (where === PCI_DEVICE_ID) return { ret: PCIBIOS_SUCCESSFUL, val: pdev.device };
  return { ret: PCIBIOS_SUCCESSFUL, val: 0 };
}

/**
 * pci_write_config_word(dev, where, val): writes a config register (only COMMAND has an
 * effect in the model). Writes to a function that is gone are dropped.
 * @kernel drivers/pci/access.c:pci_write_config_word (all versions)
 * Locking: pci_lock inside (one Step).
 * Return: PCIBIOS_SUCCESSFUL or PCIBIOS_DEVICE_NOT_FOUND.
 */
export function* pci_write_config_word(pdev: pci_dev, where: number, val: number): Op<number> {
  yield { obj: pdev.cfg_obj, kind: 'write', what: 'pci_write_config_word' };
  if (pdev.disconnected || !pdev.present) return PCIBIOS_DEVICE_NOT_FOUND;
  if (where === PCI_COMMAND) pdev.command = val & 0xffff;
  return PCIBIOS_SUCCESSFUL;
}

/**
 * pci_set_power_state(dev, state): moves the function to D0 or D3hot. Leaving D3hot
 * without No_Soft_Reset resets its config (COMMAND = 0).
 * @kernel drivers/pci/pci.c:pci_set_power_state, pci_raw_set_power_state /
 *   pci_set_low_power_state, pci_power_up / pci_set_full_power_state (all versions)
 * Locking: none (config Steps).
 * Return: 0; -EINVAL for a state other than D0..D3cold; -EIO when the function is gone.
 * Leaves out: D1/D2/D3cold (treated as D3hot), platform PM, bridge power, delays.
 */
export function* pci_set_power_state(pdev: pci_dev, state: number): Op<number> {
  if (state < PCI_D0 || state > PCI_D3cold) return -EINVAL;
  const target = state === PCI_D0 ? PCI_D0 : PCI_D3hot;
  if (pdev.current_state === state) return 0;
  if (!pdev.present || pdev.disconnected) {
    pr_err(
      `${pfx(pdev)}Unable to change power state from ${pci_power_name(pdev.current_state)} to ${pci_power_name(state)}, device inaccessible`,
    );
    pdev.current_state = PCI_D3cold;
    return -EIO;
  }
  yield { obj: pdev.cfg_obj, kind: 'write', what: 'pci_set_power_state' };
  const from = pdev.hw_power;
  pdev.hw_power = target;
  if (from === PCI_D3hot && target === PCI_D0 && !pdev.no_soft_reset) pdev.command = 0;
  pdev.current_state = state === PCI_D3cold ? PCI_D3hot : state;
  return 0;
}

/**
 * pci_enable_resources(dev, mask): sets PCI_COMMAND_MEMORY for the memory BARs in mask.
 * @kernel drivers/pci/setup-res.c:pci_enable_resources (all versions)
 * Return: 0, or -EINVAL for a BAR not claimed in the resource tree.
 */
function* pci_enable_resources(pdev: pci_dev, mask: number): Op<number> {
  const { val: old_cmd } = yield* pci_read_config_word(pdev, PCI_COMMAND);
  let cmd = old_cmd;
  for (let i = 0; i <= PCI_ROM_RESOURCE; i++) {
    if (!(mask & (1 << i))) continue;
    const r = pdev.resource[i];
    if (!r) continue;
    if (!r.parent) {
      pr_err(`${pfx(pdev)}can't enable device: BAR ${i} ${resource_string(r)} not claimed`);
      return -EINVAL;
    }
    if (r.flags & IORESOURCE_MEM) cmd |= PCI_COMMAND_MEMORY;
  }
  if (cmd !== old_cmd) {
    pr_info(
      `${pfx(pdev)}enabling device (${old_cmd.toString(16).padStart(4, '0')} -> ${cmd.toString(16).padStart(4, '0')})`,
    );
    yield* pci_write_config_word(pdev, PCI_COMMAND, cmd);
  }
  return 0;
}

/**
 * pci_enable_device_flags(dev, flags): counts the enable; the first one powers up to D0
 * and turns on decoding of the BARs of that type.
 * @kernel drivers/pci/pci.c:pci_enable_device_flags, do_pci_enable_device (all versions)
 * Return: 0 or -errno (the count is dropped again on failure).
 */
function* pci_enable_device_flags(pdev: pci_dev, flags: number): Op<number> {
  if (++pdev.enable_cnt > 1) return 0; /* already enabled */
  let bars = 0;
  for (let i = 0; i <= PCI_ROM_RESOURCE; i++) {
    const r = pdev.resource[i];
    if (r && r.flags & flags) bars |= 1 << i;
  }
  let err = yield* pci_set_power_state(pdev, PCI_D0);
  if (err < 0 && err !== -EIO) {
    pdev.enable_cnt--;
    return err;
  }
  err = yield* pci_enable_resources(pdev, bars);
  if (err < 0) pdev.enable_cnt--;
  return err;
}

/**
 * pci_enable_device(dev): enables I/O and memory decoding.
 * @kernel drivers/pci/pci.c:pci_enable_device (all versions)
 * Return: 0 or -errno.
 */
export function pci_enable_device(pdev: pci_dev): Op<number> {
  return pci_enable_device_flags(pdev, IORESOURCE_MEM | 0x100 /* IORESOURCE_IO */);
}

/**
 * pci_enable_device_mem(dev): enables memory decoding only.
 * @kernel drivers/pci/pci.c:pci_enable_device_mem (all versions)
 * Return: 0 or -errno.
 */
export function pci_enable_device_mem(pdev: pci_dev): Op<number> {
  return pci_enable_device_flags(pdev, IORESOURCE_MEM);
}

/**
 * __pci_set_master(dev, enable): sets or clears PCI_COMMAND_MASTER.
 * @kernel drivers/pci/pci.c:__pci_set_master, pci_set_master, pci_clear_master (all versions)
 */
function* __pci_set_master(pdev: pci_dev, enable: boolean): Op<void> {
  const { val: old_cmd } = yield* pci_read_config_word(pdev, PCI_COMMAND);
  const cmd = enable ? old_cmd | PCI_COMMAND_MASTER : old_cmd & ~PCI_COMMAND_MASTER;
  if (cmd !== old_cmd) {
    pr_debug(`${pfx(pdev)}${enable ? 'enabling' : 'disabling'} bus mastering`);
    yield* pci_write_config_word(pdev, PCI_COMMAND, cmd);
  }
  pdev.is_busmaster = enable;
}

/** pci_set_master(dev). @kernel drivers/pci/pci.c:pci_set_master (all versions) */
export function pci_set_master(pdev: pci_dev): Op<void> {
  return __pci_set_master(pdev, true);
}

/** pci_clear_master(dev). @kernel drivers/pci/pci.c:pci_clear_master (all versions) */
export function pci_clear_master(pdev: pci_dev): Op<void> {
  return __pci_set_master(pdev, false);
}

/**
 * pci_disable_device(dev): drops an enable; the last one clears bus mastering. Memory
 * decoding stays on (do_pci_disable_device does not touch PCI_COMMAND_MEMORY).
 * @kernel drivers/pci/pci.c:pci_disable_device, do_pci_disable_device (all versions)
 */
export function* pci_disable_device(pdev: pci_dev): Op<void> {
  WARN_ONCE(
    pdev.enable_cnt <= 0,
    `${pfx(pdev)}disabling already-disabled device`,
    `pci_disable_device:${pdev.name}`,
  );
  if (--pdev.enable_cnt !== 0) return;
  const { val } = yield* pci_read_config_word(pdev, PCI_COMMAND);
  if (val & PCI_COMMAND_MASTER)
    yield* pci_write_config_word(pdev, PCI_COMMAND, val & ~PCI_COMMAND_MASTER);
  pdev.is_busmaster = false;
}

/**
 * pci_save_state(dev): saves config space (COMMAND in the model).
 * @kernel drivers/pci/pci.c:pci_save_state (all versions)
 * Return: 0.
 */
export function* pci_save_state(pdev: pci_dev): Op<number> {
  const { val } = yield* pci_read_config_word(pdev, PCI_COMMAND);
  pdev.saved_state = { command: val };
  pdev.state_saved = true;
  return 0;
}

/**
 * pci_restore_state(dev): writes the saved config space back, once.
 * @kernel drivers/pci/pci.c:pci_restore_state (all versions)
 */
export function* pci_restore_state(pdev: pci_dev): Op<void> {
  if (!pdev.state_saved || !pdev.saved_state) return;
  yield* pci_write_config_word(pdev, PCI_COMMAND, pdev.saved_state.command);
  pdev.state_saved = false;
}

/** pci_reset_supported(dev) (v5.15+) / dev->reset_fn. @kernel drivers/pci/pci.c:pci_reset_supported (all versions) */
export function pci_reset_supported(pdev: pci_dev): boolean {
  return pdev.flr;
}

/**
 * __pci_reset_function_locked(dev): resets the function (FLR): config space back to its
 * reset values, so memory decoding and bus mastering are off, and the function is in D0.
 * @kernel drivers/pci/pci.c:__pci_reset_function_locked, pcie_flr (all versions)
 * Locking: device_lock held (might_sleep; caller's responsibility).
 * Return: 0, or -ENOTTY when no reset method works.
 */
export function* __pci_reset_function_locked(pdev: pci_dev): Op<number> {
  if (!pci_reset_supported(pdev)) return -ENOTTY;
  if (!pdev.present) return -ENOTTY;
  yield { obj: pdev.cfg_obj, kind: 'write', what: 'pcie_flr' };
  pdev.command = 0;
  pdev.hw_power = PCI_D0;
  return 0;
}

/**
 * pci_dev_save_and_disable(dev): D0, save state, then COMMAND = INTX_DISABLE (decoding and
 * bus mastering off) for the reset.
 * @kernel drivers/pci/pci.c:pci_dev_save_and_disable (all versions)
 */
function* pci_dev_save_and_disable(pdev: pci_dev): Op<void> {
  yield* pci_set_power_state(pdev, PCI_D0);
  yield* pci_save_state(pdev);
  yield* pci_write_config_word(pdev, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
}

/**
 * pci_reset_function(dev): save, disable, reset, restore (decoding comes back as saved).
 * @kernel drivers/pci/pci.c:pci_reset_function, pci_dev_restore (all versions)
 * Locking: takes device_lock (pci_dev_lock).
 * Return: 0, -ENOTTY.
 */
export function* pci_reset_function(pdev: pci_dev): Op<number> {
  if (!pci_reset_supported(pdev)) return -ENOTTY;
  yield* device_lock(pdev);
  yield* pci_dev_save_and_disable(pdev);
  const rc = yield* __pci_reset_function_locked(pdev);
  yield* pci_restore_state(pdev);
  yield* device_unlock(pdev);
  return rc;
}

/**
 * pci_try_reset_function(dev): as pci_reset_function, without waiting for device_lock.
 * @kernel drivers/pci/pci.c:pci_try_reset_function (all versions)
 * Return: 0, -ENOTTY, -EAGAIN when the device is locked.
 */
export function* pci_try_reset_function(pdev: pci_dev): Op<number> {
  if (!pci_reset_supported(pdev)) return -ENOTTY;
  if (!(yield* mutex_trylock(pdev.lock))) return -EAGAIN;
  yield* pci_dev_save_and_disable(pdev);
  const rc = yield* __pci_reset_function_locked(pdev);
  yield* pci_restore_state(pdev);
  yield* device_unlock(pdev);
  return rc;
}

/**
 * pci_dev_set_disconnected(dev): marks a function that is gone (surprise removal).
 * @kernel drivers/pci/pci.h:pci_dev_set_disconnected (all versions)
 */
export function pci_dev_set_disconnected(pdev: pci_dev): void {
  pdev.disconnected = true;
}
