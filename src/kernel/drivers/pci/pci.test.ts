/**
 * PCI functions and the BAR dispatcher: enabling, bus mastering, D3hot, function reset,
 * hot-unplug; CPU accesses to a BAR through a user mapping (arch/x86/mm/fault.ts hook).
 * Machine: 4 GiB RAM; 0000:01:00.0 with BAR0 1 MiB at 0x180000000 (pfn 0x180000).
 */
import { describe, expect, it } from 'vitest';
import { pci_boot_machine as bootMachine, pci_dev_by_bdf as deviceByBdf } from './probe.js';
import { dmesg } from '../../kernel/printk.js';
import { proc_iomem } from '../../kernel/resource.js';
import { phys_write } from '../../mm/sparse.js';
import { create_user_task } from '../../kernel/fork.js';
import type { Op } from '../../../sched/index.js';
import { PAGE_SHARED, _PAGE_SPECIAL, __pte } from '../../arch/x86/include/asm/pgtable_types.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  set_pte_at,
} from '../../include/linux/pgtable.js';
import { vm_area_alloc, vma_link } from '../../mm/vma.js';
import {
  VM_IO,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../../include/linux/mm.js';
import type { mm_struct } from '../../include/linux/mm_types.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { mmio_or_phys_read, pci_disabled_bar_accesses } from './access.js';
import {
  __pci_reset_function_locked,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_D0,
  PCI_D3hot,
  pci_disable_device,
  pci_enable_device_mem,
  pci_read_config_word,
  pci_reset_function,
  pci_set_master,
  pci_set_power_state,
  pci_write_config_word,
} from './pci.js';
import { pci_hot_unplug, pci_stop_and_remove_bus_device } from './remove.js';
import { pci_find_bdf } from './probe.js';

const BAR = 0x180000000;
const BAR_PFN = 0x180000;

function boot(version = '6.12', extra: { flr?: boolean } = {}) {
  const k = bootMachine({
    version,
    devices: [{ bdf: '0000:01:00.0', bars: [{ size: 0x100000 }], flr: extra.flr }],
  });
  const pdev = deviceByBdf(k, '0000:01:00.0');
  phys_write(BAR + 0x40, new Uint8Array([0x11, 0x22]));
  return { k, pdev };
}

const read2 = () => [...mmio_or_phys_read(BAR + 0x40, 2)];

describe('pci_enable_device_mem / pci_disable_device', () => {
  it('enable turns on COMMAND.MEMORY ("enabling device (0000 -> 0002)"); disable clears only MASTER', () => {
    const { k, pdev } = boot();
    expect(pdev.resource[0]!.start).toBe(BAR);
    expect(read2()).toEqual([0xff, 0xff]); // firmware left decoding off
    expect(k.run(pci_enable_device_mem(pdev))).toBe(0);
    expect(dmesg()).toContain('pci 0000:01:00.0: enabling device (0000 -> 0002)');
    expect(read2()).toEqual([0x11, 0x22]);
    k.run(pci_set_master(pdev));
    expect(pdev.command).toBe(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    expect(k.run(pci_enable_device_mem(pdev))).toBe(0); // counted
    k.run(pci_disable_device(pdev));
    expect(pdev.command & PCI_COMMAND_MASTER).not.toBe(0);
    k.run(pci_disable_device(pdev));
    expect(pdev.command).toBe(PCI_COMMAND_MEMORY);
    expect(pdev.enable_cnt).toBe(0);
    k.run(pci_disable_device(pdev));
    expect(dmesg()).toContain('disabling already-disabled device');
  });
});

describe('BAR dispatcher (access.ts)', () => {
  it('COMMAND.MEMORY clear ⇒ reads all ones, writes dropped; counted as disabled-bar', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    k.run(pci_write_config_word(pdev, PCI_COMMAND, 0));
    const n = pci_disabled_bar_accesses();
    expect(read2()).toEqual([0xff, 0xff]);
    expect(pci_disabled_bar_accesses()).toBe(n + 1);
  });

  it('D3hot ⇒ all ones; back in D0 (No_Soft_Reset) decoding resumes', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    expect(k.run(pci_set_power_state(pdev, PCI_D3hot))).toBe(0);
    expect(read2()).toEqual([0xff, 0xff]);
    expect(k.run(pci_set_power_state(pdev, PCI_D0))).toBe(0);
    expect(read2()).toEqual([0x11, 0x22]);
  });

  it('D3hot -> D0 without No_Soft_Reset resets COMMAND: memory stays off', () => {
    const { k, pdev } = boot();
    pdev.no_soft_reset = false;
    k.run(pci_enable_device_mem(pdev));
    k.run(pci_set_power_state(pdev, PCI_D3hot));
    k.run(pci_set_power_state(pdev, PCI_D0));
    expect(pdev.command).toBe(0);
    expect(read2()).toEqual([0xff, 0xff]);
  });
});

describe('__pci_reset_function_locked / pci_reset_function', () => {
  it('__pci_reset_function_locked clears memory decoding (all ones after); pci_reset_function restores it', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    expect(k.run(__pci_reset_function_locked(pdev))).toBe(0);
    expect(pdev.command).toBe(0);
    expect(read2()).toEqual([0xff, 0xff]);
    k.run(pci_write_config_word(pdev, PCI_COMMAND, PCI_COMMAND_MEMORY));
    expect(k.run(pci_reset_function(pdev))).toBe(0);
    expect(pdev.command).toBe(PCI_COMMAND_MEMORY);
    expect(read2()).toEqual([0x11, 0x22]);
  });

  it('no reset method ⇒ -ENOTTY', () => {
    const { k, pdev } = boot('6.12', { flr: false });
    expect(k.run(pci_reset_function(pdev))).toBe(-25);
    expect(k.run(__pci_reset_function_locked(pdev))).toBe(-25);
  });
});

describe('pci_stop_and_remove_bus_device / hot-unplug', () => {
  it('after hot-unplug the BAR reads all ones, config reads ~0, the BAR leaves /proc/iomem and the IOMMU group', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    expect(proc_iomem(true)).toContain('180000000-1800fffff : 0000:01:00.0');
    const g = pdev.iommu_group!;
    k.run(pci_hot_unplug(pdev));
    expect(read2()).toEqual([0xff, 0xff]);
    expect(k.run(pci_read_config_word(pdev, PCI_COMMAND))).toEqual({ ret: 0x86, val: 0xffff });
    expect(proc_iomem(true)).not.toContain('0000:01:00.0');
    expect(g.devices).toEqual([]);
    expect(pdev.iommu_group).toBeNull();
    expect(pci_find_bdf('0000:01:00.0')).toBe(pdev); // the model handle stays
  });

  it('a plain pci_stop_and_remove_bus_device leaves the hardware decoding (the function is still there)', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    k.run(pci_stop_and_remove_bus_device(pdev));
    expect(pdev.is_added).toBe(false);
    expect(read2()).toEqual([0x11, 0x22]);
  });
});

describe('cpu_user_read / cpu_user_write through a BAR mapping (fault.ts hook)', () => {
  function* installPte(mm: mm_struct, addr: number, pfn: number): Op<void> {
    const pudp = yield* pud_alloc(mm, pgd_offset(mm, addr), addr);
    const pmdp = (yield* pmd_alloc(mm, pudp!, addr))!;
    yield* pte_alloc(mm, pmdp);
    const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp, addr))!;
    yield* set_pte_at(mm, addr, ptep, __pte(pfn, PAGE_SHARED | _PAGE_SPECIAL));
    yield* pte_unmap_unlock(ptep, ptl);
  }

  it('user reads of a BAR page see its contents while decoding, all ones once COMMAND.MEMORY is cleared', () => {
    const { k, pdev } = boot();
    k.run(pci_enable_device_mem(pdev));
    const task = create_user_task('user');
    const mm = task.mm!;
    const vma = vm_area_alloc(mm);
    vma.vm_start = 0x10000000;
    vma.vm_end = 0x10001000;
    vma.vm_flags =
      VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE | VM_IO | VM_PFNMAP;
    vma.vm_page_prot = PAGE_SHARED;
    vma.vm_pgoff = BAR_PFN;
    vma_link(mm, vma);
    // 0x10000000 -> pfn 0x180000 (BAR0 page 0)
    k.run(installPte(mm, 0x10000000, BAR_PFN));
    const ok = k.run(cpu_user_read(task, 0x10000040, 2), 'user');
    expect(ok).toEqual({ kind: 'ok', data: new Uint8Array([0x11, 0x22]) });
    k.run(pci_write_config_word(pdev, PCI_COMMAND, 0));
    const off = k.run(cpu_user_read(task, 0x10000040, 2), 'user');
    expect(off).toEqual({ kind: 'ok', data: new Uint8Array([0xff, 0xff]) });
    expect(k.run(cpu_user_write(task, 0x10000040, new Uint8Array([5, 5])), 'user')).toEqual({
      kind: 'ok',
    });
    k.run(pci_write_config_word(pdev, PCI_COMMAND, PCI_COMMAND_MEMORY));
    expect(read2()).toEqual([0x11, 0x22]); // the write was dropped
  });
});
