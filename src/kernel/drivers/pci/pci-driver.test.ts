/**
 * Binding PCI functions to drivers (drivers/base/dd.c through pci-driver.c): ID-table
 * matching, driver_override, device_driver_attach return codes per version, unbind, probe
 * failure, and the BAR owner following the binding.
 * Machine: 0000:01:00.0 (8086:1234) with BAR0 4 KiB at 0x180000000.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../../sched/index.js';
import { pci_boot_machine as bootMachine, pci_dev_by_bdf as deviceByBdf } from './probe.js';
import { dmesg } from '../../kernel/printk.js';
import { device_driver_attach, device_release_driver } from '../base/dd.js';
import {
  driver_override_store,
  pci_bar_owner_desc,
  pci_register_driver,
  pci_unregister_driver,
  type pci_driver,
} from './pci-driver.js';
import type { pci_dev } from './pci.js';
import { pci_hot_unplug } from './remove.js';

function boot(version: string) {
  const k = bootMachine({
    version,
    devices: [{ bdf: '0000:01:00.0', vendor: 0x8086, device: 0x1234, bars: [{ size: 0x1000 }] }],
  });
  return { k, pdev: deviceByBdf(k, '0000:01:00.0') };
}

function driver(
  name: string,
  ids: { vendor: number; device: number }[],
  log: string[],
  probeRet = 0,
): pci_driver {
  return {
    name,
    id_table: ids,
    *probe(dev: pci_dev): Op<number> {
      log.push(`${name} probe ${dev.name}`);
      return probeRet;
    },
    *remove(dev: pci_dev): Op<void> {
      log.push(`${name} remove ${dev.name}`);
    },
  };
}

describe('pci_register_driver / driver binding', () => {
  it('a registered driver whose ID table matches binds at once; BAR owner follows', () => {
    const { k, pdev } = boot('6.12');
    const log: string[] = [];
    expect(pci_bar_owner_desc(pdev, 0)).toBe('BAR0 of 0000:01:00.0 (no driver)');
    expect(
      k.run(pci_register_driver(driver('e1000e', [{ vendor: 0x8086, device: 0x1234 }], log))),
    ).toBe(0);
    expect(log).toEqual(['e1000e probe 0000:01:00.0']);
    expect(pdev.driver?.name).toBe('e1000e');
    expect(pci_bar_owner_desc(pdev, 0)).toBe('BAR0 of 0000:01:00.0 (e1000e)');
  });

  it('driver_override: only the named driver binds, even without an ID match (vfio-pci flow)', () => {
    const { k, pdev } = boot('6.12');
    const log: string[] = [];
    const host = driver('e1000e', [{ vendor: 0x8086, device: 0x1234 }], log);
    const vfio = driver('vfio-pci', [], log);
    k.run(pci_register_driver(host));
    k.run(pci_register_driver(vfio));
    expect(pdev.driver?.name).toBe('e1000e');
    driver_override_store(pdev, 'vfio-pci\n');
    // binding another driver while bound: -EBUSY (5.15+)
    expect(k.run(device_driver_attach(vfio.driver!, pdev))).toBe(-16);
    k.run(device_release_driver(pdev));
    expect(pdev.driver).toBeNull();
    expect(pci_bar_owner_desc(pdev, 0)).toBe('BAR0 of 0000:01:00.0 (no driver)');
    // the host driver no longer matches
    expect(k.run(device_driver_attach(host.driver!, pdev))).toBe(-19);
    expect(k.run(device_driver_attach(vfio.driver!, pdev))).toBe(0);
    expect(pdev.driver?.name).toBe('vfio-pci');
    expect(pci_bar_owner_desc(pdev, 0)).toBe('BAR0 of 0000:01:00.0 (vfio-pci)');
    expect(log).toEqual([
      'e1000e probe 0000:01:00.0',
      'e1000e remove 0000:01:00.0',
      'vfio-pci probe 0000:01:00.0',
    ]);
    k.run(pci_unregister_driver(vfio));
    expect(pdev.driver).toBeNull();
    expect(log.at(-1)).toBe('vfio-pci remove 0000:01:00.0');
  });

  it('device_driver_attach returns 1 when bound and 0 when already bound before v5.13 (ef6dcbdd8eb2)', () => {
    const { k, pdev } = boot('5.10');
    const log: string[] = [];
    const a = driver('a', [], log);
    k.run(pci_register_driver(a));
    driver_override_store(pdev, 'a');
    expect(k.run(device_driver_attach(a.driver!, pdev))).toBe(1);
    expect(k.run(device_driver_attach(a.driver!, pdev))).toBe(0);
  });

  it('a failing probe leaves the device unbound: 5.10 returns 0 (error printed), 6.12 returns the -errno', () => {
    for (const [v, want] of [
      ['5.10', 0],
      ['6.12', -12],
    ] as const) {
      const { k, pdev } = boot(v);
      const bad = driver('bad', [], [], -12);
      k.run(pci_register_driver(bad));
      driver_override_store(pdev, 'bad');
      expect(k.run(device_driver_attach(bad.driver!, pdev))).toBe(want);
      expect(pdev.driver).toBeNull();
      expect(dmesg()).toContain('bad: probe of 0000:01:00.0 failed with error -12');
      expect(pci_bar_owner_desc(pdev, 0)).toBe('BAR0 of 0000:01:00.0 (no driver)');
    }
  });

  it('hot-unplug unbinds the driver (remove runs) and no driver can bind afterwards', () => {
    const { k, pdev } = boot('6.12');
    const log: string[] = [];
    const a = driver('a', [{ vendor: 0x8086, device: 0x1234 }], log);
    k.run(pci_register_driver(a));
    k.run(pci_hot_unplug(pdev));
    expect(log).toEqual(['a probe 0000:01:00.0', 'a remove 0000:01:00.0']);
    expect(k.run(device_driver_attach(a.driver!, pdev))).toBe(-19);
  });
});
