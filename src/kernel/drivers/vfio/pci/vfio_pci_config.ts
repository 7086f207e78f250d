/**
 * vfio-pci config space emulation, reduced to what decides BAR access: the COMMAND
 * register (MEMORY/IO written through to the function and remembered in the virtual
 * config space, INTX_DISABLE virtualized) and the power-management control register
 * (PowerState virtualized; the requested state is set with vfio_pci_set_power_state).
 *
 * The model's functions have one capability, Power Management at 0x40 (PCI_PM_CTRL at
 * 0x44). Other registers read as the function answers (pci_read_config_word) and writes
 * to them are accepted and dropped.
 *
 * Left out: the permission tables of every capability and extended capability, BAR
 * sizing emulation and vfio_bar_restore, MSI/MSI-X, INTx masking emulation, the
 * PCIe/AF FLR initiation through config space (vfio_exp/af_config_write), VPD.
 *
 * @kernel drivers/vfio/pci/vfio_pci_config.c (5.7–6.18)
 */
import type { Op } from '../../../../sched/index.js';
import { EFAULT, EINVAL } from '../../../include/linux/errno.js';
import { down_write, up_write } from '../../../include/linux/spinlock.js';
import { copy_from_user, copy_to_user } from '../../../arch/x86/mm/fault.js';
import { since } from '../../../version.js';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_D0,
  PCI_D1,
  PCI_D2,
  PCI_D3hot,
  pci_read_config_word,
  pci_write_config_word,
} from '../../pci/pci.js';
import {
  VFIO_PCI_OFFSET_MASK,
  vfio_pci_set_power_state,
  vfio_pci_zap_and_down_write_memory_lock,
  type vfio_pci_core_device,
} from './vfio_pci_core.js';

/** The model's Power Management capability: at 0x40, PCI_PM_CTRL at +4. */
export const VFIO_MODEL_PM_CAP = 0x40;
/** include/uapi/linux/pci_regs.h */
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
/** The PCI_PM_CTRL register's absolute offset in the model's config space. */
export const VFIO_MODEL_PM_CTRL = VFIO_MODEL_PM_CAP + PCI_PM_CTRL;

/**
 * vfio_config_init(vdev): the virtual config space starts as a copy of the function's
 * (COMMAND as pci_enable_device left it).
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_config_init (5.7–6.18)
 * Return: 0.
 */
export function* vfio_config_init(vdev: vfio_pci_core_device): Op<number> {
  const { val } = yield* pci_read_config_word(vdev.pdev, PCI_COMMAND);
  vdev.vconfig = { command: val };
  return 0;
}

/** vfio_config_free(vdev). @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_config_free (5.7–6.18) */
export function vfio_config_free(vdev: vfio_pci_core_device): void {
  vdev.vconfig = null;
}

/**
 * vfio_basic_config_write(vdev, pos, count, perm, offset, val) for PCI_COMMAND: clearing
 * MEMORY zaps the BAR mappings and takes memory_lock for write (5.8+), setting it only
 * takes the lock; the value goes to the function except the virtualized INTX_DISABLE; the
 * new MEMORY/IO bits are saved in vconfig before memory_lock is dropped.
 * ≤5.7: no lock and no zap (CVE-2020-12888).
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_basic_config_write (5.7–6.18; the lock
 *   and zap since abafbc551fdd, v5.8)
 * Return: count.
 */
function* vfio_basic_config_write_command(
  vdev: vfio_pci_core_device,
  count: number,
  new_cmd: number,
): Op<number> {
  const pdev = vdev.pdev;
  const vconfig = vdev.vconfig!;
  const locked = since(5, 8);
  if (locked) {
    if (!(new_cmd & PCI_COMMAND_MEMORY)) yield* vfio_pci_zap_and_down_write_memory_lock(vdev);
    else yield* down_write(vdev.memory_lock);
  }
  // vfio_default_config_write: write bits that are not virtualized go to the function.
  const virt = PCI_COMMAND_INTX_DISABLE;
  const { val: phys } = yield* pci_read_config_word(pdev, PCI_COMMAND);
  yield* pci_write_config_word(pdev, PCI_COMMAND, (phys & virt) | (new_cmd & ~virt & 0xffff));
  vconfig.command = (vconfig.command & ~virt) | (new_cmd & virt);
  /* Save current memory/io enable bits in vconfig to allow for the test above next time. */
  const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
  vconfig.command = (vconfig.command & ~mask) | (new_cmd & mask);
  if (locked) yield* up_write(vdev.memory_lock);
  return count;
}

/**
 * vfio_lock_and_set_power_state(vdev, state): D3hot and deeper zap the BAR mappings and
 * take memory_lock for write, shallower states only take it.
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_lock_and_set_power_state (v5.19+,
 *   2b2c651baf1c "vfio/pci: Invalidate mmaps and block the access in D3hot power state")
 */
function* vfio_lock_and_set_power_state(vdev: vfio_pci_core_device, state: number): Op<void> {
  if (state >= PCI_D3hot) yield* vfio_pci_zap_and_down_write_memory_lock(vdev);
  else yield* down_write(vdev.memory_lock);
  yield* vfio_pci_set_power_state(vdev, state);
  yield* up_write(vdev.memory_lock);
}

/**
 * vfio_pm_config_write(vdev, pos, count, perm, offset, val) for PCI_PM_CTRL: the
 * PowerState field selects D0..D3hot, applied with vfio_pci_set_power_state. Before 5.19
 * nothing is zapped or locked, and __vfio_pci_memory_enabled ignores the power state: a
 * BAR mapping keeps working into D3hot (the function answers all ones).
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_pm_config_write (5.7–6.18; the lock
 *   and zap since 2b2c651baf1c, v5.19)
 * Return: count.
 */
function* vfio_pm_config_write(vdev: vfio_pci_core_device, count: number, val: number): Op<number> {
  let state = PCI_D0;
  switch (val & PCI_PM_CTRL_STATE_MASK) {
    case 0:
      state = PCI_D0;
      break;
    case 1:
      state = PCI_D1;
      break;
    case 2:
      state = PCI_D2;
      break;
    case 3:
      state = PCI_D3hot;
      break;
  }
  if (since(5, 19)) yield* vfio_lock_and_set_power_state(vdev, state);
  else yield* vfio_pci_set_power_state(vdev, state);
  return count;
}

/**
 * vfio_config_do_rw(vdev, buf, count, ppos, iswrite): one naturally aligned access of
 * 4, 2 or 1 bytes.
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_config_do_rw (5.7–6.18)
 * Return: bytes done or -errno.
 */
function* vfio_config_do_rw(
  vdev: vfio_pci_core_device,
  buf: number,
  count: number,
  pos: number,
  iswrite: boolean,
): Op<number> {
  let size = 1;
  if (count >= 4 && !(pos % 4)) size = 4;
  else if (count >= 2 && !(pos % 2)) size = 2;
  const bytes = new Uint8Array(size);
  if (iswrite) {
    if (yield* copy_from_user(bytes, buf, size)) return -EFAULT;
    let val = 0;
    for (let i = size - 1; i >= 0; i--) val = val * 256 + bytes[i]!;
    if (pos === PCI_COMMAND && size >= 2)
      return yield* vfio_basic_config_write_command(vdev, size, val & 0xffff);
    if (pos === VFIO_MODEL_PM_CTRL && size >= 2)
      return yield* vfio_pm_config_write(vdev, size, val & 0xffff);
    return size;
  }
  let val = 0;
  if (pos === PCI_COMMAND) val = vdev.vconfig!.command;
  else if (pos === VFIO_MODEL_PM_CTRL) val = Math.min(vdev.pdev.current_state, PCI_D3hot);
  else if (pos % 2 === 0) val = (yield* pci_read_config_word(vdev.pdev, pos)).val;
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(val / 256 ** i) & 0xff;
  if (yield* copy_to_user(buf, bytes, size)) return -EFAULT;
  return size;
}

/**
 * vfio_pci_config_rw(vdev, buf, count, ppos, iswrite): config-region reads and writes in
 * naturally aligned pieces; the position advances by what was done.
 * @kernel drivers/vfio/pci/vfio_pci_config.c:vfio_pci_config_rw (5.7–6.18)
 * Return: bytes or -errno.
 */
export function* vfio_pci_config_rw(
  vdev: vfio_pci_core_device,
  buf: number,
  count: number,
  ppos: { pos: number },
  iswrite: boolean,
): Op<number> {
  let done = 0;
  let pos = VFIO_PCI_OFFSET_MASK(ppos.pos);
  if (!vdev.vconfig) return -EINVAL;
  while (count) {
    const ret = yield* vfio_config_do_rw(vdev, buf, count, pos, iswrite);
    if (ret < 0) return ret;
    count -= ret;
    done += ret;
    buf += ret;
    pos += ret;
  }
  ppos.pos += done;
  return done;
}
