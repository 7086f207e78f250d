/**
 * vfio-pci (drivers/vfio/pci/vfio_pci_core.c, vfio_pci.c, vfio_pci_config.c) through the
 * user API: BAR mmap checks (R-VPCI-1), the fault handlers and zaps of each era (R-VPCI-2,
 * R-VPCI-3), CVE-2020-12888 (COMMAND.MEMORY, reset, D3hot), a fault racing the
 * memory-disable zap and two faults racing each other (fixed schedules), unbind while
 * open, device release with the 2021 RFC notifier (R-RFC-1).
 *
 * Machine: 4 GiB RAM, PCI 0000:01:00.0 (IOMMU group 0) with BAR0 = 2 MiB and BAR1 = 4 KiB
 * placed by pci_place_bars in the window at 0x180000000 (BAR0 pfns 0x180000-0x1801ff, BAR1
 * pfn 0x180200). The task 'qemu' opens /dev/vfio/vfio, /dev/vfio/0 and the device, and
 * maps BAR0 at 0x40000000 (1 GiB aligned, for the huge-fault tests). Its scratch buffer for
 * config writes is at 0x10000000.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../../sched/index.js';
import type { Kernel } from '../../../kernel/kernel.js';
import { pci_boot_machine, pci_dev_by_bdf } from '../../pci/probe.js';
import { PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_D3hot, type pci_dev } from '../../pci/pci.js';
import {
  driver_override_store,
  pci_bar_owner_desc,
  pci_register_driver,
} from '../../pci/pci-driver.js';
import { device_driver_attach, device_release_driver } from '../../base/dd.js';
import { pci_disabled_bar_accesses } from '../../pci/access.js';
import { create_user_task } from '../../../kernel/fork.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { do_syscall } from '../../../arch/x86/entry/common.js';
import { sys_mmap, sys_munmap } from '../../../arch/x86/entry/syscall_64.js';
import { cpu_user_read, cpu_user_write } from '../../../arch/x86/mm/fault.js';
import { do_sys_open, ksys_close } from '../../../fs/open.js';
import { sys_ioctl } from '../../../fs/ioctl.js';
import { ksys_pwrite64 } from '../../../fs/read_write.js';
import { O_RDWR } from '../../../fs/inode.js';
import { EBUSY, EINVAL, ENODEV } from '../../../include/linux/errno.js';
import {
  VM_ALLOW_ANY_UNCACHED,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_PFNMAP,
} from '../../../include/linux/mm.js';
import { _PAGE_PCD, pte_pfn, pte_present } from '../../../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../../../include/linux/pgtable.js';
import { find_vma } from '../../../mm/vma.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../../../mm/mmap.js';
import { pfnsan_reports } from '../../../mm/pfnsan/pfnsan.js';
import { dmesg } from '../../../kernel/printk.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  type vfio_region_info,
} from '../../../include/uapi/linux/vfio.js';
import { vfio_iommu_type1_init } from '../vfio_iommu_type1.js';
import { VFIO_DEVICE_RELEASE, NOTIFY_OK, type notifier_block } from '../vfio.js';
import {
  vfio_device_get_from_vma,
  vfio_device_put,
  vfio_device_register_notifier,
} from '../vfio_main.js';
import { vfio_pci_driver, vfio_pci_init, vfio_pci_vdev } from './vfio_pci.js';
import { VFIO_PCI_INDEX_TO_OFFSET, type vfio_pci_core_device } from './vfio_pci_core.js';
import { VFIO_MODEL_PM_CTRL } from './vfio_pci_config.js';

const BDF = '0000:01:00.0';
const MAP = 0x40000000;
const SZ_2M = 0x200000;
const ROOT = ['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_RAWIO'];

interface Rig {
  readonly k: Kernel;
  readonly pdev: pci_dev;
  readonly task: task_struct;
  readonly thread: SchedThread;
  sys<T>(op: Op<T>): T;
  /** BAR0's first pfn. */
  readonly bar0: number;
  vdev(): vfio_pci_core_device;
  /** container, group and device fds, as QEMU opens them. */
  openDevice(): { cfd: number; gfd: number; dfd: number };
  mmapBar(dfd: number, index: number, len: number, off?: number, flags?: number): number;
  load(addr: number): Uint8Array | string;
  /** pwrite of a 2-byte little-endian value into the config region at `reg`. */
  cfgWrite(dfd: number, reg: number, val: number): number;
  pteAt(addr: number): { pfn: number; level: string } | null;
}

function rig(version: string, config: Record<string, boolean | number> = {}): Rig {
  const k = pci_boot_machine({
    version,
    config: { CONFIG_PFNSAN: true, ...config },
    devices: [{ bdf: BDF, bars: [{ size: SZ_2M }, { size: 0x1000 }], iommuGroup: 0 }],
  });
  const pdev = pci_dev_by_bdf(k, BDF);
  k.run(vfio_pci_init(), 'modprobe');
  expect(vfio_iommu_type1_init()).toBe(0);
  driver_override_store(pdev, 'vfio-pci');
  expect(k.run(device_driver_attach(vfio_pci_driver().driver!, pdev), 'bind')).toBe(
    version === '5.7' || version === '5.8' || version === '5.10' || version === '5.12' ? 1 : 0,
  );
  const task = create_user_task('qemu', { caps: ROOT });
  const thread = new SchedThread(0, 'qemu', (function* () {})(), task);
  const sys = <T>(op: Op<T>): T => k.run(do_syscall(task, op), thread);
  let scratch = 0;
  const r: Rig = {
    k,
    pdev,
    task,
    thread,
    sys,
    bar0: pdev.resource[0]!.start / 4096,
    vdev: () => vfio_pci_vdev(pdev)!,
    openDevice() {
      const cfd = sys(do_sys_open('/dev/vfio/vfio', O_RDWR, 0));
      const gfd = sys(do_sys_open('/dev/vfio/0', O_RDWR, 0));
      expect(sys(sys_ioctl(gfd, VFIO_GROUP_SET_CONTAINER, cfd))).toBe(0);
      expect(sys(sys_ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toBe(0);
      const dfd = sys(sys_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, BDF));
      expect(dfd).toBeGreaterThanOrEqual(0);
      return { cfd, gfd, dfd };
    },
    mmapBar(dfd, index, len, off = 0, flags = MAP_SHARED) {
      return sys(
        sys_mmap(
          MAP,
          len,
          PROT_READ | PROT_WRITE,
          flags | MAP_FIXED,
          dfd,
          VFIO_PCI_INDEX_TO_OFFSET(index) + off,
        ),
      );
    },
    load(addr) {
      const res = sys(cpu_user_read(task, addr, 4));
      return res.kind === 'ok' ? res.data : res.kind;
    },
    cfgWrite(dfd, reg, val) {
      if (!scratch) {
        scratch = sys(
          sys_mmap(
            0x10000000,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            -1,
            0,
          ),
        );
      }
      expect(sys(cpu_user_write(task, scratch, Uint8Array.from([val & 0xff, val >> 8]))).kind).toBe(
        'ok',
      );
      return sys(
        ksys_pwrite64(
          dfd,
          scratch,
          2,
          VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + reg,
        ),
      );
    },
    pteAt(addr) {
      const l = walkToLeaf(task.mm!, addr);
      if (!l) return null;
      const v = ptep_get(l.ptr);
      if (!pte_present(v)) return null;
      return { pfn: pte_pfn(v), level: l.level };
    },
  };
  return r;
}

const ones = Uint8Array.from([0xff, 0xff, 0xff, 0xff]);
const zeros = Uint8Array.from([0, 0, 0, 0]);

describe('vfio container and group ioctls', () => {
  it('GET_API_VERSION is 0; CHECK_EXTENSION(TYPE1v2) answers through the registered type1', () => {
    const r = rig('6.12');
    const cfd = r.sys(do_sys_open('/dev/vfio/vfio', O_RDWR, 0));
    expect(r.sys(sys_ioctl(cfd, VFIO_GET_API_VERSION, 0))).toBe(0);
    expect(r.sys(sys_ioctl(cfd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU))).toBe(1);
    // SET_IOMMU on a container with no group is -EINVAL (vfio_ioctl_set_iommu).
    expect(r.sys(sys_ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toBe(-EINVAL);
  });
  it('a group opens once (-EBUSY), needs an IOMMU before GET_DEVICE_FD (-EINVAL), names a device (-ENODEV)', () => {
    const r = rig('5.10');
    const cfd = r.sys(do_sys_open('/dev/vfio/vfio', O_RDWR, 0));
    const gfd = r.sys(do_sys_open('/dev/vfio/0', O_RDWR, 0));
    expect(r.sys(do_sys_open('/dev/vfio/0', O_RDWR, 0))).toBe(-EBUSY);
    expect(r.sys(sys_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, BDF))).toBe(-EINVAL);
    expect(r.sys(sys_ioctl(gfd, VFIO_GROUP_SET_CONTAINER, cfd))).toBe(0);
    expect(r.sys(sys_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, BDF))).toBe(-EINVAL);
    expect(r.sys(sys_ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toBe(0);
    expect(r.sys(sys_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, '0000:02:00.0'))).toBe(-ENODEV);
    expect(r.sys(sys_ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, BDF))).toBeGreaterThan(0);
  });
});

describe('vfio_pci_probe / vfio_pci_core_enable', () => {
  it('the idle bound function is in D3hot; opening the device fd brings it to D0 with memory on', () => {
    const r = rig('6.1');
    expect(r.pdev.current_state).toBe(PCI_D3hot);
    expect(pci_bar_owner_desc(r.pdev, 0)).toBe(`BAR0 of ${BDF} (vfio-pci)`);
    r.openDevice();
    expect(r.pdev.current_state).toBe(0);
    expect(r.pdev.command & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    expect(r.vdev().reset_works).toBe(true);
  });
});

describe('vfio_pci_ioctl_get_region_info', () => {
  it('BAR0 is readable, writable and mmappable at offset 0 with its size; config is 4 KiB at index 7; VGA is -EINVAL', () => {
    const r = rig('6.12');
    const { dfd } = r.openDevice();
    const info: vfio_region_info = {
      argsz: 32,
      flags: 0,
      index: 0,
      cap_offset: 0,
      size: 0,
      offset: 0,
    };
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, info))).toBe(0);
    expect(info).toMatchObject({
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
      size: SZ_2M,
      offset: 0,
    });
    const cfg: vfio_region_info = {
      argsz: 32,
      flags: 0,
      index: 7,
      cap_offset: 0,
      size: 0,
      offset: 0,
    };
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, cfg))).toBe(0);
    expect(cfg.offset).toBe(7 * 2 ** 40);
    expect(cfg.size).toBe(4096);
    const vga = { ...cfg, index: VFIO_PCI_VGA_REGION_INDEX };
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, vga))).toBe(-EINVAL);
    const short = { ...cfg, argsz: 16 };
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, short))).toBe(-EINVAL);
  });
});

describe('vfio_pci_core_mmap', () => {
  for (const v of ['5.7', '5.8', '6.12']) {
    it(`R-VPCI-1 (${v}): MAP_PRIVATE, the ROM/config indexes, a device region and a range past the BAR are -EINVAL`, () => {
      const r = rig(v);
      const { dfd } = r.openDevice();
      expect(r.mmapBar(dfd, 0, SZ_2M, 0, MAP_PRIVATE)).toBe(-EINVAL);
      expect(r.mmapBar(dfd, 6, 4096)).toBe(-EINVAL);
      expect(r.mmapBar(dfd, 7, 4096)).toBe(-EINVAL);
      expect(r.mmapBar(dfd, 9, 4096)).toBe(-EINVAL);
      // BAR1 is 4 KiB: 8 KiB, or 4 KiB at offset 4 KiB, do not fit.
      expect(r.mmapBar(dfd, 1, 0x2000)).toBe(-EINVAL);
      expect(r.mmapBar(dfd, 1, 0x1000, 0x1000)).toBe(-EINVAL);
      expect(r.mmapBar(dfd, 1, 0x1000)).toBe(MAP);
    });
  }
  it('R-VPCI-1 (5.7): the whole BAR is remapped at mmap time, vm_pgoff = the BAR pfn', () => {
    const r = rig('5.7');
    const { dfd } = r.openDevice();
    expect(r.mmapBar(dfd, 0, 0x10000, 0x1000)).toBe(MAP);
    const vma = find_vma(r.task.mm!, MAP)!;
    expect(vma.vm_pgoff).toBe(r.bar0 + 1);
    // 0x40000000..0x4000f000 -> pfns bar0+1 .. bar0+0x10
    expect(r.pteAt(MAP)?.pfn).toBe(r.bar0 + 1);
    expect(r.pteAt(MAP + 0xf000)?.pfn).toBe(r.bar0 + 0x10);
    expect(vma.vm_page_prot & _PAGE_PCD).toBe(_PAGE_PCD);
  });
  it('R-VPCI-1 (5.8): IO|PFNMAP|DONTEXPAND|DONTDUMP, noncached, vm_pgoff rewritten, no PTEs', () => {
    const r = rig('5.8');
    const { dfd } = r.openDevice();
    expect(r.mmapBar(dfd, 0, SZ_2M)).toBe(MAP);
    const vma = find_vma(r.task.mm!, MAP)!;
    const want = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    expect(vma.vm_flags & want).toBe(want);
    expect(vma.vm_flags & VM_ALLOW_ANY_UNCACHED).toBe(0n);
    expect(vma.vm_pgoff).toBe(r.bar0);
    expect(vma.vm_page_prot & _PAGE_PCD).toBe(_PAGE_PCD);
    expect(r.pteAt(MAP)).toBeNull();
  });
  it('R-VPCI-1 (6.10): ALLOW_ANY_UNCACHED too, and vm_pgoff keeps the region offset (index 0 => 0)', () => {
    const r = rig('6.10');
    const { dfd } = r.openDevice();
    expect(r.mmapBar(dfd, 0, SZ_2M, 0x3000)).toBe(-EINVAL); // past the end of BAR0
    expect(r.mmapBar(dfd, 0, 0x4000, 0x3000)).toBe(MAP);
    const vma = find_vma(r.task.mm!, MAP)!;
    expect(vma.vm_flags & VM_ALLOW_ANY_UNCACHED).toBe(VM_ALLOW_ANY_UNCACHED);
    expect(vma.vm_pgoff).toBe(3);
    expect(r.pteAt(MAP)).toBeNull();
  });
});

describe('vfio_pci_mmap_fault', () => {
  it('R-VPCI-2 (5.8): the first access remaps the whole VMA and puts it on vma_list', () => {
    const r = rig('5.8');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x8000);
    expect(r.load(MAP + 0x4000)).toEqual(zeros);
    expect(r.pteAt(MAP)?.pfn).toBe(r.bar0);
    expect(r.pteAt(MAP + 0x7000)?.pfn).toBe(r.bar0 + 7);
    expect(r.vdev().vma_list).toHaveLength(1);
  });
  it('R-VPCI-2 (6.10): vmf_insert_pfn of the faulting page and then of the rest of the VMA', () => {
    const r = rig('6.10');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x8000, 0x2000);
    expect(r.load(MAP + 0x4000)).toEqual(zeros);
    // 0x40000000 -> bar0+2 ... 0x40007000 -> bar0+9
    expect(r.pteAt(MAP)?.pfn).toBe(r.bar0 + 2);
    expect(r.pteAt(MAP + 0x7000)?.pfn).toBe(r.bar0 + 9);
  });
});

describe('vfio_pci_mmap_huge_fault', () => {
  it('R-VPCI-3 (6.12): an aligned fault in a 2 MiB mapping of a 2 MiB-aligned BAR gets a PMD leaf', () => {
    const r = rig('6.12');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, SZ_2M);
    expect(r.load(MAP)).toEqual(zeros);
    expect(r.pteAt(MAP)).toEqual({ pfn: r.bar0, level: 'pmd' });
  });
  it('R-VPCI-3 (6.12): an unaligned fault address falls back to a 4 KiB PTE (no align-down before 6.15)', () => {
    const r = rig('6.12');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, SZ_2M);
    expect(r.load(MAP + 0x5000)).toEqual(zeros);
    expect(r.pteAt(MAP + 0x5000)).toEqual({ pfn: r.bar0 + 5, level: 'pte' });
    expect(r.pteAt(MAP)).toBeNull();
  });
  it('R-VPCI-3 (6.15): the address is aligned down to the order, so the same fault gets the PMD leaf', () => {
    const r = rig('6.15');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, SZ_2M);
    expect(r.load(MAP + 0x5000)).toEqual(zeros);
    expect(r.pteAt(MAP)).toEqual({ pfn: r.bar0, level: 'pmd' });
  });
  it('R-VPCI-3 (6.13): a pfn not aligned to the order falls back (BAR offset 4 KiB)', () => {
    const r = rig('6.13');
    const { dfd } = r.openDevice();
    // 2 MiB of VMA cannot start at BAR offset 4 KiB (past the BAR): map 1 MiB at +4 KiB
    // into a 2 MiB-aligned address, so the PMD range leaves the VMA too; use a 2 MiB VMA
    // of BAR0 at offset 0 with vm_pgoff shifted instead is not possible, so check the
    // PTE fallback and that no PMD leaf is made.
    r.mmapBar(dfd, 0, 0x100000, 0x1000);
    expect(r.load(MAP)).toEqual(zeros);
    expect(r.pteAt(MAP)).toEqual({ pfn: r.bar0 + 1, level: 'pte' });
  });
  it('R-VPCI-3 (6.12): memory off => SIGBUS before any insert', () => {
    const r = rig('6.12');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, SZ_2M);
    expect(r.cfgWrite(dfd, PCI_COMMAND, 0)).toBe(2);
    expect(r.load(MAP)).toBe('SIGBUS');
    expect(r.pteAt(MAP)).toBeNull();
  });
});

describe('CVE-2020-12888 (vfio_basic_config_write, vfio_pci_ioctl_reset, vfio_pm_config_write)', () => {
  it('R-VPCI-2 (5.7): clearing COMMAND.MEMORY leaves the PTE; the load reaches the disabled BAR (all ones, disabled-bar)', () => {
    const r = rig('5.7');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x1000);
    expect(r.load(MAP)).toEqual(zeros);
    expect(r.cfgWrite(dfd, PCI_COMMAND, 0)).toBe(2);
    expect(r.pdev.command & PCI_COMMAND_MEMORY).toBe(0);
    const before = pci_disabled_bar_accesses();
    expect(r.pteAt(MAP)?.pfn).toBe(r.bar0);
    expect(r.load(MAP)).toEqual(ones);
    expect(pci_disabled_bar_accesses()).toBe(before + 1);
    expect(pfnsan_reports().some((x) => x.code === 'disabled-bar' && x.pfn === r.bar0)).toBe(true);
  });
  for (const v of ['5.8', '5.10', '6.1', '6.10', '6.12', '6.18']) {
    it(`R-VPCI-2 (${v}): clearing COMMAND.MEMORY zaps; the load is SIGBUS; setting it again refaults and succeeds`, () => {
      const r = rig(v);
      const { dfd } = r.openDevice();
      r.mmapBar(dfd, 0, 0x1000);
      expect(r.load(MAP)).toEqual(zeros);
      expect(r.cfgWrite(dfd, PCI_COMMAND, 0)).toBe(2);
      expect(r.pteAt(MAP)).toBeNull();
      const before = pci_disabled_bar_accesses();
      expect(r.load(MAP)).toBe('SIGBUS');
      expect(pci_disabled_bar_accesses()).toBe(before);
      expect(r.cfgWrite(dfd, PCI_COMMAND, PCI_COMMAND_MEMORY)).toBe(2);
      expect(r.pteAt(MAP)).toBeNull();
      expect(r.load(MAP)).toEqual(zeros);
      expect(r.pteAt(MAP)?.pfn).toBe(r.bar0);
      expect(pfnsan_reports().some((x) => x.code === 'disabled-bar')).toBe(false);
    });
  }
  it('R-VPCI-2 (5.7): VFIO_DEVICE_RESET leaves the PTE in place (the reset restores decoding)', () => {
    const r = rig('5.7');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x1000);
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_RESET, 0))).toBe(0);
    expect(r.pteAt(MAP)?.pfn).toBe(r.bar0);
  });
  it('R-VPCI-2 (5.8): VFIO_DEVICE_RESET zaps under memory_lock; the next access refaults', () => {
    const r = rig('5.8');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x1000);
    expect(r.load(MAP)).toEqual(zeros);
    expect(r.sys(sys_ioctl(dfd, VFIO_DEVICE_RESET, 0))).toBe(0);
    expect(r.pteAt(MAP)).toBeNull();
    expect(r.vdev().vma_list).toHaveLength(0);
    expect(r.load(MAP)).toEqual(zeros);
  });
  for (const v of ['5.7', '5.10', '5.15']) {
    it(`R-VPCI-2 (${v}): D3hot through PCI_PM_CTRL is not memory-disabled before 5.19; the load reaches the D3hot BAR`, () => {
      const r = rig(v);
      const { dfd } = r.openDevice();
      r.mmapBar(dfd, 0, 0x1000);
      expect(r.load(MAP)).toEqual(zeros);
      expect(r.cfgWrite(dfd, VFIO_MODEL_PM_CTRL, 3)).toBe(2);
      expect(r.pdev.current_state).toBe(PCI_D3hot);
      expect(r.load(MAP)).toEqual(ones);
      expect(pfnsan_reports().some((x) => x.code === 'disabled-bar')).toBe(true);
    });
  }
  for (const v of ['6.1', '6.12']) {
    it(`R-VPCI-2 (${v}): D3hot zaps and the load is SIGBUS (2b2c651baf1c); D0 again refaults`, () => {
      const r = rig(v);
      const { dfd } = r.openDevice();
      r.mmapBar(dfd, 0, 0x1000);
      expect(r.load(MAP)).toEqual(zeros);
      expect(r.cfgWrite(dfd, VFIO_MODEL_PM_CTRL, 3)).toBe(2);
      expect(r.pteAt(MAP)).toBeNull();
      expect(r.load(MAP)).toBe('SIGBUS');
      expect(r.cfgWrite(dfd, VFIO_MODEL_PM_CTRL, 0)).toBe(2);
      expect(r.load(MAP)).toEqual(zeros);
    });
  }
});

/**
 * Thread 0 ('load') loads from the BAR mapping at 0x40000000 and faults; thread 1
 * ('disable') pwrites COMMAND = 0 into the config region. Schedule: `first` runs alone
 * for k steps, then the other thread as far as it can, then the rest (default policy).
 * Return: per schedule, whether a PTE to the BAR was left, whether it is on vma_list,
 * and the load's outcome.
 */
function raceDisable(v: string): { leftPte: boolean; listed: boolean; kind: string }[] {
  const out: { leftPte: boolean; listed: boolean; kind: string }[] = [];
  for (const first of [0, 1]) {
    for (let k = 0; k <= 60; k += 3) {
      const r = rig(v);
      const { dfd } = r.openDevice();
      r.mmapBar(dfd, 0, 0x1000);
      const scratch = r.sys(
        sys_mmap(
          0x10000000,
          4096,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
          -1,
          0,
        ),
      );
      expect(r.sys(cpu_user_write(r.task, scratch, Uint8Array.from([0, 0]))).kind).toBe('ok');
      const runner = r.k.runner();
      let loaded: { kind: string } | null = null;
      runner.spawn(
        'load',
        (function* () {
          loaded = yield* do_syscall(r.task, cpu_user_read(r.task, MAP, 4));
        })(),
        r.task,
      );
      runner.spawn(
        'disable',
        do_syscall(
          r.task,
          ksys_pwrite64(dfd, scratch, 2, VFIO_PCI_INDEX_TO_OFFSET(7) + PCI_COMMAND),
        ),
        r.task,
      );
      for (let i = 0; i < k && runner.step(first); i++);
      while (runner.step(1 - first));
      expect(runner.run([]).status).toBe('done');
      expect(r.pdev.command & PCI_COMMAND_MEMORY).toBe(0);
      const vma = find_vma(r.task.mm!, MAP)!;
      out.push({
        leftPte: r.pteAt(MAP) !== null,
        listed: r.vdev().vma_list.includes(vma),
        kind: (loaded as { kind: string } | null)?.kind ?? 'none',
      });
    }
  }
  return out;
}

describe('vfio_pci_zap_and_down_write_memory_lock racing vfio_pci_mmap_fault', () => {
  for (const v of ['5.13', '6.10', '6.12']) {
    it(`R-VPCI-2 (${v}): under each fixed schedule tried, no PTE to the BAR survives memory being disabled`, () => {
      const runs = raceDisable(v);
      for (const x of runs) {
        expect(x.leftPte).toBe(false);
        expect(['ok', 'SIGBUS']).toContain(x.kind);
      }
      // Both orders occur among the schedules: the load before the disable, and after it.
      expect(runs.some((x) => x.kind === 'ok')).toBe(true);
      expect(runs.some((x) => x.kind === 'SIGBUS')).toBe(true);
    });
  }
  it('R-VPCI-2 (5.8): the fault drops vma_lock before remap_pfn_range, so a zap in between leaves a PTE to the disabled BAR that is not on vma_list (closed by 6a45ece4c9af, v5.13)', () => {
    const runs = raceDisable('5.8');
    const bad = runs.filter((x) => x.leftPte);
    expect(bad.length).toBeGreaterThan(0);
    for (const x of bad) expect(x.listed).toBe(false);
  });
});

describe('vfio_pci_mmap_fault: concurrent faults on one VMA', () => {
  /** Two threads of 'qemu' load from 0x40000000 (one 4 KiB BAR0 mapping) under the schedules of raceDisable. */
  function raceFaults(v: string): string[] {
    const out: string[] = [];
    for (let k = 0; k <= 60; k += 2) {
      const r = rig(v);
      const { dfd } = r.openDevice();
      r.mmapBar(dfd, 0, 0x1000);
      const runner = r.k.runner();
      for (const name of ['a', 'b'])
        runner.spawn(name, do_syscall(r.task, cpu_user_read(r.task, MAP, 4)), r.task);
      for (let i = 0; i < k && runner.step(0); i++);
      while (runner.step(1));
      const res = runner.run([]);
      out.push(res.status === 'crashed' ? `crashed: ${String(res.crashed?.error)}` : res.status);
    }
    return out;
  }
  it('R-VPCI-2 (5.10): a second fault that got in while the first had dropped vma_lock remaps present PTEs: remap_pte_range BUG', () => {
    const st = raceFaults('5.10');
    const crashes = st.filter((x) => x.startsWith('crashed'));
    expect(crashes.length).toBeGreaterThan(0);
    for (const c of crashes) expect(c).toContain('kernel BUG at mm/memory.c:remap_pte_range');
  });
  it('R-VPCI-2 (5.13): 6a45ece4c9af holds vma_lock across the remap and skips a VMA already mapped: no BUG', () => {
    const st = raceFaults('5.13');
    expect(st.every((x) => x === 'done')).toBe(true);
  });
});

describe('vfio_unregister_group_dev', () => {
  it('unbinding vfio-pci while the device fd is open blocks (request warning) until the user closes it', () => {
    const r = rig('6.1');
    const { dfd } = r.openDevice();
    const runner = r.k.runner();
    runner.spawn('unbind', device_release_driver(r.pdev), r.task);
    while (runner.step(0));
    expect(runner.blocked()).toHaveLength(1);
    expect(dmesg()).toContain(
      'No device request channel registered, blocked until released by user',
    );
    expect(r.pdev.driver?.name).toBe('vfio-pci');
    runner.spawn('close', do_syscall(r.task, ksys_close(dfd)), r.task);
    expect(runner.run([]).status).toBe('done');
    expect(r.pdev.driver).toBeNull();
    expect(r.vdev).toBeDefined();
    expect(vfio_pci_vdev(r.pdev)).toBeNull();
  });
});

describe('vfio device release (vfio_pci_core_close_device) and the 2021 RFC', () => {
  it('R-RFC-1: vfio_device_get_from_vma resolves a BAR mmap to its device with a reference; an anonymous VMA to null', () => {
    const r = rig('5.10');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x1000);
    const vdev = r.vdev();
    const refs = vdev.refcount;
    expect(vfio_device_get_from_vma(find_vma(r.task.mm!, MAP)!)).toBe(vdev);
    expect(vdev.refcount).toBe(refs + 1);
    vfio_device_put(vdev);
    const anon = r.sys(
      sys_mmap(0x10000000, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
    );
    expect(vfio_device_get_from_vma(find_vma(r.task.mm!, anon)!)).toBeNull();
  });
  it('R-RFC-1: the last close (after munmap) fires VFIO_DEVICE_RELEASE before the disable; the function ends in D3hot', () => {
    const r = rig('6.12');
    const { dfd } = r.openDevice();
    r.mmapBar(dfd, 0, 0x1000);
    const vdev = r.vdev();
    const seen: string[] = [];
    const nb: notifier_block = {
      *notifier_call(_nb, action) {
        seen.push(`${action}:${r.pdev.current_state}:${r.pdev.enable_cnt}`);
        yield { obj: 'test.nb', kind: 'read' };
        return NOTIFY_OK;
      },
    };
    r.sys(vfio_device_register_notifier(vdev, nb));
    expect(r.sys(ksys_close(dfd))).toBe(0);
    expect(seen).toEqual([]); // the VMA still holds the device file
    expect(r.sys(sys_munmap(MAP, 0x1000))).toBe(0);
    expect(seen).toEqual([`${VFIO_DEVICE_RELEASE}:0:1`]);
    expect(vdev.open_count).toBe(0);
    expect(r.pdev.enable_cnt).toBe(0);
    expect(r.pdev.current_state).toBe(PCI_D3hot);
  });
  it('unbinding vfio-pci after release and binding a host driver moves the BAR frames to it', () => {
    const r = rig('6.12');
    const { dfd, gfd, cfd } = r.openDevice();
    r.sys(ksys_close(dfd));
    r.sys(ksys_close(gfd));
    r.sys(ksys_close(cfd));
    r.k.run(device_release_driver(r.pdev), 'unbind');
    expect(r.pdev.driver).toBeNull();
    // vfio_pci_remove powered it up (D0); pci_device_remove then marks it PCI_UNKNOWN.
    expect(r.pdev.hw_power).toBe(0);
    driver_override_store(r.pdev, '');
    const host = {
      name: 'hostdrv',
      id_table: [{ vendor: 0x1af4, device: 0x1000 }],
      *probe() {
        yield { obj: 'hostdrv', kind: 'read' as const };
        return 0;
      },
    };
    expect(r.k.run(pci_register_driver(host), 'insmod')).toBe(0);
    expect(r.pdev.driver?.name).toBe('hostdrv');
    expect(pci_bar_owner_desc(r.pdev, 0)).toBe(`BAR0 of ${BDF} (hostdrv)`);
  });
});
