/**
 * The VFIO core (drivers/vfio/vfio_main.c, container.c): the 2021 RFC's device notifier
 * chain and VMA lookup (R-RFC-1), and IOMMU backend registration.
 *
 * The devices here are bare vfio_devices on a struct device named "0000:03:00.0" (no PCI
 * function, no IOMMU group): what the core does with them needs neither.
 */
import { describe, expect, it } from 'vitest';
import { pure, runOp } from '../../../sched/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { device } from '../base/core.js';
import type { vm_area_struct } from '../../include/linux/mm_types.js';
import {
  NOTIFY_DONE,
  NOTIFY_OK,
  NOTIFY_STOP_MASK,
  VFIO_DEVICE_RELEASE,
  vfio_device,
  vfio_register_iommu_driver,
  vfio_unregister_iommu_driver,
  type notifier_block,
  type vfio_device_ops,
  type vfio_iommu_driver_ops,
} from './vfio.js';
import {
  vfio_device_get_from_vma,
  vfio_device_notifier_call,
  vfio_device_put,
  vfio_device_register_notifier,
  vfio_device_unregister_notifier,
  vfio_device_vma_open,
  vfio_register_vma_ops,
} from './vfio_main.js';

function boot(): Kernel {
  const k = new Kernel({ version: '5.12' });
  start_kernel(k, { map: x86_64_e820(2 ** 30) });
  return k;
}

const ops = {} as vfio_device_ops;

function dev(): vfio_device {
  return new vfio_device(new device('0000:03:00.0', null), ops);
}

function vmaWith(vm_ops: vm_area_struct['vm_ops'], priv: unknown): vm_area_struct {
  return { vm_ops, vm_private_data: priv } as vm_area_struct;
}

describe('vfio_device_notifier_call', () => {
  it('R-RFC-1: callbacks run in registration order until one returns NOTIFY_STOP_MASK', () => {
    boot();
    const d = dev();
    const seen: string[] = [];
    const mk = (name: string, ret: number): notifier_block => ({
      *notifier_call(_nb, action) {
        seen.push(`${name}:${action}`);
        yield { obj: `nb.${name}`, kind: 'read' };
        return ret;
      },
    });
    const a = mk('a', NOTIFY_OK);
    const b = mk('b', NOTIFY_OK | NOTIFY_STOP_MASK);
    const c = mk('c', NOTIFY_OK);
    for (const nb of [a, b, c]) expect(runOp(vfio_device_register_notifier(d, nb))).toBe(0);
    expect(runOp(vfio_device_notifier_call(d, VFIO_DEVICE_RELEASE))).toBe(
      NOTIFY_OK | NOTIFY_STOP_MASK,
    );
    expect(seen).toEqual(['a:0', 'b:0']);
    runOp(vfio_device_unregister_notifier(d, b));
    seen.length = 0;
    expect(runOp(vfio_device_notifier_call(d, VFIO_DEVICE_RELEASE))).toBe(NOTIFY_OK);
    expect(seen).toEqual(['a:0', 'c:0']);
  });
  it('R-RFC-1: an empty chain returns NOTIFY_DONE', () => {
    boot();
    expect(runOp(vfio_device_notifier_call(dev(), VFIO_DEVICE_RELEASE))).toBe(NOTIFY_DONE);
  });
});

describe('vfio_device_get_from_vma', () => {
  it('R-RFC-1: a VMA whose ->open is vfio_device_vma_open, or whose ops are registered, gives its device with a reference', () => {
    boot();
    const d = dev();
    const marked = vmaWith({ name: 'x', open: vfio_device_vma_open }, d);
    expect(vfio_device_get_from_vma(marked)).toBe(d);
    expect(d.refcount).toBe(2);
    const registered = { name: 'vfio_pci_mmap_ops_test' };
    expect(vfio_device_get_from_vma(vmaWith(registered, d))).toBeNull();
    vfio_register_vma_ops(registered);
    expect(vfio_device_get_from_vma(vmaWith(registered, d))).toBe(d);
    expect(d.refcount).toBe(3);
    vfio_device_put(d);
    vfio_device_put(d);
    expect(d.refcount).toBe(1);
  });
  it('R-RFC-1: no vm_ops, foreign vm_ops, or a device being unregistered => null (ERR_PTR(-ENODEV))', () => {
    boot();
    const d = dev();
    expect(vfio_device_get_from_vma(vmaWith(null, d))).toBeNull();
    expect(vfio_device_get_from_vma(vmaWith({ name: 'other' }, d))).toBeNull();
    d.unregistered = true;
    expect(
      vfio_device_get_from_vma(vmaWith({ name: 'x', open: vfio_device_vma_open }, d)),
    ).toBeNull();
    expect(d.refcount).toBe(1);
  });
});

describe('vfio_register_iommu_driver', () => {
  it('registering the same ops twice is -EINVAL; after unregistering it can be registered again', () => {
    boot();
    const drv: vfio_iommu_driver_ops = {
      name: 'test-iommu',
      open: () => ({}),
      release: () => pure(undefined),
      ioctl: () => pure(0),
      attach_group: () => pure(0),
      detach_group: () => pure(undefined),
    };
    expect(vfio_register_iommu_driver(drv)).toBe(0);
    expect(vfio_register_iommu_driver(drv)).toBe(-22);
    vfio_unregister_iommu_driver(drv);
    expect(vfio_register_iommu_driver(drv)).toBe(0);
  });
});
