/**
 * devmem_is_allowed (arch/x86/mm/init.c): the x86 /dev/mem page policy behind
 * CONFIG_STRICT_DEVMEM (R-REV-3). The machine: e820 RAM 0x1000-0x9efff,
 * 0x100000-0x7fffffff, 0x100000000-0x17fffffff; Reserved 0x0-0xfff and 0x9f000-0xfffff;
 * a device window at 0xe0000000-0xe00fffff.
 */
import { runOp } from '../../../../sched/index.js';
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../../init/main.js';
import {
  release_mem_region,
  request_mem_region,
  request_mem_region_exclusive,
  strict_iomem,
} from '../../../kernel/resource.js';
import { devmem_is_allowed } from './init.js';

function boot(version: string, io_strict: boolean): Kernel {
  const k = new Kernel({ version, config: { CONFIG_IO_STRICT_DEVMEM: io_strict } });
  const map = x86_64_e820(2 ** 32);
  map.push({ start: 0xe0000000, end: 0xe0100000, kind: 'mmio', name: '0000:00:02.0' });
  start_kernel(k, { map });
  return k;
}

describe('devmem_is_allowed', () => {
  it('R-REV-3: RAM is 0 (2 = zeros in the first 1 MiB); holes, Reserved and MMIO are 1', () => {
    boot('6.12', false);
    expect(devmem_is_allowed(0x0)).toBe(1); // Reserved (BIOS data area)
    expect(devmem_is_allowed(0x1)).toBe(2); // System RAM below 1 MiB
    expect(devmem_is_allowed(0x9f)).toBe(1); // Reserved 0x9f000
    expect(devmem_is_allowed(0x100)).toBe(0); // System RAM at 1 MiB
    expect(devmem_is_allowed(0x1000)).toBe(0); // Kernel code (nested System RAM)
    expect(devmem_is_allowed(0x7ffff)).toBe(0);
    expect(devmem_is_allowed(0x80000)).toBe(1); // PCI hole, no resource
    expect(devmem_is_allowed(0xe0000)).toBe(1); // device window, not claimed
    expect(devmem_is_allowed(0x100000)).toBe(0); // System RAM above 4 GiB
  });

  it('R-REV-3: a busy region is 0 with IO_STRICT_DEVMEM, 1 without; exclusive is always 0', () => {
    boot('6.12', true);
    runOp(request_mem_region(0xe0000000, 0x1000, 'drv'));
    expect(devmem_is_allowed(0xe0000)).toBe(0);
    expect(devmem_is_allowed(0xe0001)).toBe(1);
    release_mem_region(0xe0000000, 0x1000);
    expect(devmem_is_allowed(0xe0000)).toBe(1);

    boot('6.12', false);
    runOp(request_mem_region(0xe0000000, 0x1000, 'drv'));
    expect(devmem_is_allowed(0xe0000)).toBe(1);
    runOp(request_mem_region_exclusive(0xe0001000, 0x1000, 'excl'));
    expect(devmem_is_allowed(0xe0001)).toBe(0);
  });

  it('R-REV-3: the first 1 MiB bypasses busy and exclusive regions (still 1)', () => {
    boot('6.12', true);
    runOp(request_mem_region_exclusive(0xa0000, 0x1000, 'vga'));
    expect(devmem_is_allowed(0xa0)).toBe(1);
  });

  it('R-REV-3: iomem=relaxed makes busy and exclusive non-RAM regions 1 again', () => {
    for (const v of ['5.15', '6.12']) {
      boot(v, true);
      runOp(request_mem_region(0xe0000000, 0x1000, 'drv'));
      runOp(request_mem_region_exclusive(0xe0001000, 0x1000, 'excl'));
      expect(devmem_is_allowed(0xe0000)).toBe(0);
      strict_iomem('relaxed');
      expect(devmem_is_allowed(0xe0000)).toBe(1);
      expect(devmem_is_allowed(0xe0001)).toBe(1);
      expect(devmem_is_allowed(0x200)).toBe(0); // RAM stays refused
      strict_iomem('strict');
      expect(devmem_is_allowed(0xe0000)).toBe(0);
    }
  });
});
