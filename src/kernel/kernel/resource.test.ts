import { beforeEach, describe, expect, it } from 'vitest';
import { runOp, SchedThread, type Op } from '../../sched/index.js';
import { EBUSY, EINVAL } from '../include/linux/errno.js';
import type { task_struct } from '../include/linux/sched.js';
import { Kernel } from './kernel.js';
import {
  DEFINE_RES_MEM_NAMED,
  DEFINE_RES_NAMED,
  insert_resource,
  insert_resource_conflict,
  iomem_is_exclusive,
  iomem_resource,
  iomem_revoke_hooks,
  iomem_sub_state,
  IOMEM_RESOURCE_END,
  ioport_resource,
  IORES_DESC_DEVICE_PRIVATE_MEMORY,
  IORES_DESC_NONE,
  IORES_DESC_PERSISTENT_MEMORY,
  IORESOURCE_BUSY,
  IORESOURCE_EXCLUSIVE,
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_MUXED,
  IORESOURCE_PREFETCH,
  IORESOURCE_SYSRAM,
  IORESOURCE_SYSTEM_RAM,
  page_is_ram,
  proc_iomem,
  proc_ioports,
  r_show,
  REGION_DISJOINT,
  REGION_INTERSECTS,
  REGION_MIXED,
  region_intersects,
  release_mem_region,
  release_region,
  release_resource,
  remove_resource,
  request_mem_region,
  request_mem_region_exclusive,
  request_region,
  request_resource,
  request_resource_conflict,
  resource,
  resource_size,
  resource_string,
  revoke_iomem,
  walk_iomem_res_desc,
  walk_system_ram_range,
  __release_region,
  __request_region,
} from './resource.js';

const RAM = (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0;
const RESERVED = (IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0;

/** The names of a resource's children, in order. */
function children(r: resource): string[] {
  const out: string[] = [];
  for (let c = r.child; c; c = c.sibling) out.push(c.name ?? '<BAD>');
  return out;
}

/** A resource [start, end] with flags, added under parent (iomem by default). */
function add(
  name: string,
  start: number,
  end: number,
  flags: number,
  parent: resource = iomem_resource(),
): resource {
  const r = new resource(start, end, name, flags);
  expect(request_resource(parent, r)).toBe(0);
  return r;
}

/**
 * A small x86 map:
 *   00000000-00000fff Reserved, 00001000-0009ffff System RAM, 000a0000-000fffff Reserved,
 *   00100000-bfffffff System RAM (Kernel code inside), e0000000-efffffff PCI Bus 0000:00
 *   with BARs 0000:00:02.0 (e0000000-e0ffffff) and 0000:00:03.0 (e1000000-e1003fff),
 *   100000000-13fffffff System RAM.
 */
function x86Map(): { bus: resource; bar0: resource; bar1: resource; ram: resource } {
  add('Reserved', 0x0, 0xfff, RESERVED);
  add('System RAM', 0x1000, 0x9ffff, RAM);
  add('Reserved', 0xa0000, 0xfffff, RESERVED);
  const ram = add('System RAM', 0x100000, 0xbfffffff, RAM);
  add('Kernel code', 0x1000000, 0x1ffffff, RESERVED, ram);
  const bus = add('PCI Bus 0000:00', 0xe0000000, 0xefffffff, IORESOURCE_MEM);
  const barFlags = (IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH) >>> 0;
  const bar0 = add('0000:00:02.0', 0xe0000000, 0xe0ffffff, barFlags, bus);
  const bar1 = add('0000:00:03.0', 0xe1000000, 0xe1003fff, IORESOURCE_MEM, bus);
  add('System RAM', 0x100000000, 0x13fffffff, RAM);
  return { bus, bar0, bar1, ram };
}

let k: Kernel;
beforeEach(() => {
  k = new Kernel({ version: '6.12' });
});

describe('iomem_resource / ioport_resource', () => {
  it('are per-kernel roots covering the address spaces', () => {
    const root = iomem_resource();
    expect(root).toMatchObject({ start: 0, end: IOMEM_RESOURCE_END, name: 'PCI mem' });
    expect(root.flags).toBe(IORESOURCE_MEM);
    expect(ioport_resource()).toMatchObject({ start: 0, end: 0xffff, name: 'PCI IO' });
    expect(iomem_resource()).toBe(root);
    expect(k.sub.iomem).toBe(iomem_sub_state());

    add('System RAM', 0x1000, 0x9ffff, RAM);
    const other = new Kernel({ version: '6.12' });
    expect(iomem_resource()).not.toBe(root);
    expect(iomem_resource().child).toBeNull();
    k.activate();
    expect(children(iomem_resource())).toEqual(['System RAM']);
    other.activate();
    expect(proc_iomem()).toBe('');
  });

  it('strict_iomem_checks starts from CONFIG_STRICT_DEVMEM', () => {
    expect(iomem_sub_state().strict_iomem_checks).toBe(true);
    new Kernel({ version: '6.12', config: { CONFIG_STRICT_DEVMEM: false } });
    expect(iomem_sub_state().strict_iomem_checks).toBe(false);
  });
});

describe('struct resource helpers', () => {
  it('DEFINE_RES_MEM_NAMED and resource_size use inclusive ends', () => {
    const r = DEFINE_RES_MEM_NAMED(0xfe000000, 0x1000, 'bar');
    expect([r.start, r.end, r.name, r.flags]).toEqual([
      0xfe000000,
      0xfe000fff,
      'bar',
      IORESOURCE_MEM,
    ]);
    expect(resource_size(r)).toBe(0x1000);
  });

  it('keeps IORESOURCE_BUSY as the unsigned 0x80000000', () => {
    const r = DEFINE_RES_NAMED(0, 1, 'x', IORESOURCE_MEM | IORESOURCE_BUSY);
    expect(r.flags).toBe(0x80000200);
    expect(r.flags).toBeGreaterThan(0);
  });

  it('resource_string prints %pR', () => {
    const bar = new resource(
      0xe0000000,
      0xe0ffffff,
      'b',
      IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH,
    );
    expect(resource_string(bar)).toBe('[mem 0xe0000000-0xe0ffffff 64bit pref]');
    expect(resource_string(new resource(0x3f8, 0x3ff, 's', IORESOURCE_IO))).toBe(
      '[io  0x03f8-0x03ff]',
    );
    expect(resource_string(new resource(0x1000, 0x1000, 'one', IORESOURCE_MEM))).toBe(
      '[mem 0x00001000]',
    );
  });
});

describe('request_resource / request_resource_conflict', () => {
  it('links resources under the root sorted by start, whatever the request order', () => {
    add('c', 0x3000, 0x3fff, IORESOURCE_MEM);
    add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    add('b', 0x2000, 0x2fff, IORESOURCE_MEM);
    expect(children(iomem_resource())).toEqual(['a', 'b', 'c']);
    expect(iomem_resource().child!.parent).toBe(iomem_resource());
  });

  it('nests a request made on a child', () => {
    const p = add('parent', 0x1000, 0x1fff, IORESOURCE_MEM);
    const c = add('child', 0x1800, 0x18ff, IORESOURCE_MEM, p);
    expect(c.parent).toBe(p);
    expect(children(p)).toEqual(['child']);
  });

  it('returns the overlapping sibling and leaves the tree alone', () => {
    const a = add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    const b = add('b', 0x3000, 0x3fff, IORESOURCE_MEM);
    const x = new resource(0x1f00, 0x2fff, 'x', IORESOURCE_MEM);
    expect(request_resource_conflict(iomem_resource(), x)).toBe(a);
    const y = new resource(0x2000, 0x3000, 'y', IORESOURCE_MEM);
    expect(request_resource_conflict(iomem_resource(), y)).toBe(b);
    expect(request_resource(iomem_resource(), y)).toBe(-EBUSY);
    expect(children(iomem_resource())).toEqual(['a', 'b']);
    expect(x.parent).toBeNull();
  });

  it('returns the root for a resource outside it or with end < start', () => {
    const p = add('p', 0x1000, 0x1fff, IORESOURCE_MEM);
    expect(request_resource_conflict(p, new resource(0x1f00, 0x20ff, 'x'))).toBe(p);
    expect(request_resource_conflict(p, new resource(0x0f00, 0x10ff, 'x'))).toBe(p);
    expect(request_resource_conflict(p, new resource(0x1100, 0x10ff, 'x'))).toBe(p);
  });
});

describe('release_resource', () => {
  it('removes a resource with its children and relinks the siblings', () => {
    add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    const b = add('b', 0x2000, 0x2fff, IORESOURCE_MEM);
    add('b.0', 0x2000, 0x20ff, IORESOURCE_MEM, b);
    add('c', 0x3000, 0x3fff, IORESOURCE_MEM);
    expect(release_resource(b)).toBe(0);
    expect(children(iomem_resource())).toEqual(['a', 'c']);
    expect(b.parent).toBeNull();
    expect(children(b)).toEqual(['b.0']);
    expect(request_resource(iomem_resource(), new resource(0x2000, 0x2fff, 'again'))).toBe(0);
  });

  it('fails with -EINVAL for a resource that is not in a tree', () => {
    expect(release_resource(new resource(0, 1, 'loose'))).toBe(-EINVAL);
  });
});

describe('insert_resource / remove_resource', () => {
  it('inserts above the resources it covers, which become its children', () => {
    add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    add('b', 0x3000, 0x3fff, IORESOURCE_MEM);
    add('z', 0x9000, 0x9fff, IORESOURCE_MEM);
    const w = new resource(0x0, 0x4fff, 'window', IORESOURCE_MEM);
    expect(insert_resource(iomem_resource(), w)).toBe(0);
    expect(children(iomem_resource())).toEqual(['window', 'z']);
    expect(children(w)).toEqual(['a', 'b']);
    expect(w.child!.parent).toBe(w);
    expect(w.child!.sibling!.parent).toBe(w);
  });

  it('descends into a resource that contains the new one', () => {
    const p = add('p', 0x1000, 0x8fff, IORESOURCE_MEM);
    add('p.0', 0x2000, 0x2fff, IORESOURCE_MEM, p);
    const n = new resource(0x2000, 0x3fff, 'n', IORESOURCE_MEM);
    expect(insert_resource(iomem_resource(), n)).toBe(0);
    expect(n.parent).toBe(p);
    expect(children(p)).toEqual(['n']);
    expect(children(n)).toEqual(['p.0']);
  });

  it('refuses a partial overlap and names it', () => {
    const a = add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    const n = new resource(0x1800, 0x27ff, 'n', IORESOURCE_MEM);
    expect(insert_resource_conflict(iomem_resource(), n)).toBe(a);
    expect(insert_resource(iomem_resource(), n)).toBe(-EBUSY);
    expect(children(iomem_resource())).toEqual(['a']);
  });

  it('remove_resource puts the children back where they were', () => {
    add('a', 0x1000, 0x1fff, IORESOURCE_MEM);
    add('b', 0x3000, 0x3fff, IORESOURCE_MEM);
    add('z', 0x9000, 0x9fff, IORESOURCE_MEM);
    const w = new resource(0x0, 0x4fff, 'window', IORESOURCE_MEM);
    insert_resource(iomem_resource(), w);
    expect(remove_resource(w)).toBe(0);
    expect(children(iomem_resource())).toEqual(['a', 'b', 'z']);
    expect(iomem_resource().child!.parent).toBe(iomem_resource());
    expect(w.child).toBeNull();
  });
});

describe('__request_region', () => {
  it('nests a driver region inside the non-busy bridge window and BAR (BUSY)', () => {
    const { bar0 } = x86Map();
    const r = runOp(request_mem_region(0xe0000000, 0x1000000, 'vfio-pci'));
    expect(r).not.toBeNull();
    expect(r!.parent).toBe(bar0);
    expect([r!.start, r!.end]).toEqual([0xe0000000, 0xe0ffffff]);
    expect(r!.flags).toBe((IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0);
    expect(children(bar0)).toEqual(['vfio-pci']);
  });

  it('refuses a region that overlaps a busy region, leaving the tree unchanged', () => {
    const { bar0 } = x86Map();
    const first = runOp(request_mem_region(0xe0000000, 0x1000, 'drv-a'));
    expect(first).not.toBeNull();
    expect(runOp(request_mem_region(0xe0000800, 0x1000, 'drv-b'))).toBeNull();
    expect(runOp(request_mem_region(0xe0000000, 0x1000, 'drv-a again'))).toBeNull();
    expect(children(bar0)).toEqual(['drv-a']);
    // Busy System RAM is refused too.
    expect(runOp(request_mem_region(0x2000, 0x1000, 'ram-grab'))).toBeNull();
  });

  it('refuses a region that straddles the end of a non-busy resource', () => {
    const { bar1 } = x86Map();
    expect(runOp(request_mem_region(0xe1003000, 0x2000, 'straddle'))).toBeNull();
    expect(bar1.child).toBeNull();
  });

  it('refuses an empty region and one outside the parent', () => {
    expect(runOp(request_mem_region(0x1000, 0, 'empty'))).toBeNull();
    expect(runOp(request_region(0xfff0, 0x20, 'too-far'))).toBeNull();
  });

  it('passes extra flags and inherits the extended type and desc of the final parent', () => {
    const hot = add('hotplug', 0x200000000, 0x23fffffff, IORESOURCE_SYSTEM_RAM);
    hot.desc = IORES_DESC_PERSISTENT_MEMORY;
    const r = runOp(
      __request_region(iomem_resource(), 0x200000000, 0x1000, 'dax', IORESOURCE_EXCLUSIVE),
    );
    expect(r!.parent).toBe(hot);
    expect(r!.flags).toBe((IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY | IORESOURCE_EXCLUSIVE) >>> 0);
    expect((r!.flags & IORESOURCE_SYSRAM) !== 0).toBe(true);
    expect(r!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
  });

  it('claims I/O ports with request_region', () => {
    const r = runOp(request_region(0x3f8, 8, 'serial'));
    expect(r!.flags).toBe((IORESOURCE_IO | IORESOURCE_BUSY) >>> 0);
    expect(r!.parent).toBe(ioport_resource());
    expect(runOp(request_region(0x3fc, 2, 'other'))).toBeNull();
  });

  it('warns when it meets device-private memory', () => {
    const dp = add('hmm', 0x300000000, 0x3ffffffff, IORESOURCE_MEM);
    dp.desc = IORES_DESC_DEVICE_PRIVATE_MEMORY;
    runOp(request_mem_region(0x300000000, 0x1000, 'x'));
    expect(k.log.map((l) => l.text)).toContain(
      'Unaddressable device hmm [mem 0x300000000-0x3ffffffff] conflicts with [mem 0x300000000-0x300000fff]',
    );
  });

  it('does not model waiting for a muxed region, and says so', () => {
    const held = runOp(__request_region(ioport_resource(), 0x2e, 2, 'superio-a', IORESOURCE_MUXED));
    expect(held).not.toBeNull();
    expect(() =>
      runOp(__request_region(ioport_resource(), 0x2e, 2, 'superio-b', IORESOURCE_MUXED)),
    ).toThrow(/IORESOURCE_MUXED\) is not modelled/);
  });
});

describe('revoke_iomem', () => {
  it('runs the hooks after a successful request in iomem_resource, with the new resource', () => {
    x86Map();
    const seen: string[] = [];
    iomem_revoke_hooks().push(function* (res) {
      // The region is already in the tree when the hook runs.
      seen.push(`${res.name} ${res.start.toString(16)} linked=${res.parent !== null}`);
    });
    const r = runOp(request_mem_region(0xe1000000, 0x4000, 'nvme'));
    expect(seen).toEqual(['nvme e1000000 linked=true']);
    expect(r).not.toBeNull();
  });

  it('does not run the hooks for a failed request, for I/O ports, or for a nested parent', () => {
    const { bar0 } = x86Map();
    let calls = 0;
    iomem_revoke_hooks().push(function* () {
      calls++;
    });
    expect(runOp(request_mem_region(0x2000, 0x1000, 'ram'))).toBeNull();
    runOp(request_region(0x60, 1, 'keyboard'));
    runOp(__request_region(bar0, 0xe0000000, 0x1000, 'direct', 0));
    expect(calls).toBe(0);
    runOp(revoke_iomem(bar0));
    expect(calls).toBe(1);
  });

  it('keeps the hooks per kernel', () => {
    let calls = 0;
    iomem_revoke_hooks().push(function* () {
      calls++;
    });
    new Kernel({ version: '6.12' });
    runOp(request_mem_region(0xfe000000, 0x1000, 'other kernel'));
    expect(calls).toBe(0);
  });
});

describe('__release_region', () => {
  it('releases a busy region found through non-busy parents', () => {
    const { bar0 } = x86Map();
    runOp(request_mem_region(0xe0000000, 0x1000000, 'vfio-pci'));
    release_mem_region(0xe0000000, 0x1000000);
    expect(bar0.child).toBeNull();
    expect(runOp(request_mem_region(0xe0000000, 0x1000000, 'nouveau'))).not.toBeNull();
    expect(k.log).toEqual([]);
  });

  it('releases only an exact match, and warns for anything else', () => {
    const { bar1 } = x86Map();
    runOp(request_mem_region(0xe1000000, 0x4000, 'nvme'));
    release_mem_region(0xe1000000, 0x1000);
    expect(children(bar1)).toEqual(['nvme']);
    expect(k.log.map((l) => [l.level, l.text])).toEqual([
      [4, 'Trying to free nonexistent resource <0x00000000e1000000-0x00000000e1000fff>'],
    ]);
  });

  it('does not release a non-busy resource', () => {
    x86Map();
    __release_region(iomem_resource(), 0xe0000000, 0x10000000);
    expect(children(iomem_resource())).toContain('PCI Bus 0000:00');
    expect(k.log.length).toBe(1);
  });

  it('releases I/O ports with release_region', () => {
    runOp(request_region(0x3f8, 8, 'serial'));
    release_region(0x3f8, 8);
    expect(ioport_resource().child).toBeNull();
  });
});

describe('walk_system_ram_range / page_is_ram', () => {
  it('page_is_ram is true only for frames in busy System RAM', () => {
    x86Map();
    expect(page_is_ram(0x0)).toBe(0); // Reserved
    expect(page_is_ram(0x1)).toBe(1);
    expect(page_is_ram(0x9f)).toBe(1);
    expect(page_is_ram(0xa0)).toBe(0);
    expect(page_is_ram(0x1000)).toBe(1); // 0x1000000: Kernel code, inside System RAM
    expect(page_is_ram(0xe0000)).toBe(0); // 0xe0000000: PCI
    expect(page_is_ram(0x100000)).toBe(1); // 0x100000000, above 4 GiB
    expect(page_is_ram(0x140000)).toBe(0);
  });

  it('reports runs of whole pages, in order', () => {
    x86Map();
    const runs: Array<[number, number]> = [];
    const ret = walk_system_ram_range(0, 0x200000, (pfn, n) => {
      runs.push([pfn, n]);
      return 0;
    });
    expect(ret).toBe(0);
    expect(runs).toEqual([
      [0x1, 0x9f],
      [0x100, 0xbff00],
      [0x100000, 0x40000],
    ]);
  });

  it('drops partial pages, ignores non-busy RAM, and returns -EINVAL when nothing is RAM', () => {
    add('System RAM', 0x1800, 0x4fff, RAM); // pages 2..4 whole, page 1 partial
    add('System RAM', 0x8800, 0x8bff, RAM); // no whole page
    add('hotplug', 0x10000, 0x1ffff, IORESOURCE_SYSTEM_RAM); // not busy
    const runs: Array<[number, number]> = [];
    walk_system_ram_range(0, 0x100, (pfn, n) => {
      runs.push([pfn, n]);
      return 0;
    });
    expect(runs).toEqual([[2, 3]]);
    expect(walk_system_ram_range(0x10, 0x10, () => 0)).toBe(-EINVAL);
    expect(page_is_ram(0x8)).toBe(0);
  });

  it('stops at the first non-zero callback result', () => {
    x86Map();
    let calls = 0;
    expect(walk_system_ram_range(0, 0x200000, () => ++calls * 7)).toBe(7);
    expect(calls).toBe(1);
  });
});

describe('walk_iomem_res_desc', () => {
  it('finds resources by desc at any depth, clipped to the range', () => {
    const win = add('CXL Window 0', 0x400000000, 0x4ffffffff, IORESOURCE_MEM);
    const pmem = add('Persistent Memory', 0x400000000, 0x41fffffff, IORESOURCE_MEM, win);
    pmem.desc = IORES_DESC_PERSISTENT_MEMORY;
    const got: string[] = [];
    const ret = walk_iomem_res_desc(
      IORES_DESC_PERSISTENT_MEMORY,
      IORESOURCE_MEM,
      0x410000000,
      0x4ffffffff,
      (r) => {
        got.push(`${r.start.toString(16)}-${r.end.toString(16)}`);
        return 0;
      },
    );
    expect(ret).toBe(0);
    expect(got).toEqual(['410000000-41fffffff']);
    expect(
      walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_BUSY, 0x400000000, 0x4ffffffff, () => 0),
    ).toBe(-EINVAL);
  });
});

describe('region_intersects', () => {
  it('classifies against top-level resources', () => {
    x86Map();
    expect(region_intersects(0x2000, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_INTERSECTS,
    );
    expect(region_intersects(0xf0000000, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_DISJOINT,
    );
    expect(region_intersects(0x9f000, 0x2000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_MIXED,
    );
    // RAM and a hole: still INTERSECTS.
    expect(region_intersects(0xbffff000, 0x2000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_INTERSECTS,
    );
  });

  function cxl(): void {
    const win = add('CXL Window 0', 0x400000000, 0x4ffffffff, IORESOURCE_MEM);
    add('System RAM (kmem)', 0x400000000, 0x43fffffff, RAM, win);
  }

  it('v6.12+: System RAM inside a non-RAM window counts (b4afe4183ec7)', () => {
    cxl();
    expect(region_intersects(0x400000000, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_INTERSECTS,
    );
    expect(region_intersects(0x43ffff000, 0x2000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_MIXED,
    );
    expect(region_intersects(0x440000000, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_DISJOINT,
    );
  });

  it('before v6.12: only top-level resources count', () => {
    new Kernel({ version: '6.10' });
    cxl();
    expect(region_intersects(0x400000000, 0x1000, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)).toBe(
      REGION_DISJOINT,
    );
  });
});

describe('iomem_is_exclusive', () => {
  it('with STRICT_DEVMEM: only busy IORESOURCE_EXCLUSIVE regions', () => {
    x86Map();
    runOp(request_mem_region(0xe0000000, 0x1000, 'plain'));
    runOp(request_mem_region_exclusive(0xe1000000, 0x4000, 'excl'));
    expect(iomem_is_exclusive(0xe0000000)).toBe(false);
    expect(iomem_is_exclusive(0xe1000010)).toBe(true);
    expect(iomem_is_exclusive(0xe1003fff)).toBe(true);
    expect(iomem_is_exclusive(0xe1004000)).toBe(false);
  });

  it('with IO_STRICT_DEVMEM: every busy region', () => {
    new Kernel({ version: '6.12', config: { CONFIG_IO_STRICT_DEVMEM: true } });
    x86Map();
    runOp(request_mem_region(0xe0000000, 0x1000, 'plain'));
    expect(iomem_is_exclusive(0xe0000000)).toBe(true);
    expect(iomem_is_exclusive(0x2000)).toBe(true); // busy System RAM
    expect(iomem_is_exclusive(0xe0001000)).toBe(false); // BAR, not busy
  });

  it('with iomem=relaxed: nothing, except exclusive System RAM from v5.16', () => {
    const setup = (): void => {
      iomem_sub_state().strict_iomem_checks = false;
      runOp(request_mem_region_exclusive(0xfe000000, 0x1000, 'excl'));
      add('virtio-mem', 0x500000000, 0x5ffffffff, IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE);
    };
    setup();
    expect(iomem_is_exclusive(0xfe000000)).toBe(false);
    expect(iomem_is_exclusive(0x500000000)).toBe(true);
    new Kernel({ version: '5.15' });
    setup();
    expect(iomem_is_exclusive(0x500000000)).toBe(false);
  });

  it('rounds the address down to its page without truncating it to 32 bits', () => {
    add('low', 0x0, 0xfff, RESERVED);
    runOp(request_mem_region_exclusive(0x100000000, 0x1000, 'high'));
    expect(iomem_is_exclusive(0x100000123)).toBe(true);
    expect(iomem_is_exclusive(0x123)).toBe(false);
  });
});

describe('/proc/iomem (r_show)', () => {
  it('renders a small map with two spaces per level and width 8', () => {
    x86Map();
    runOp(request_mem_region(0xe0000000, 0x1000000, 'vfio-pci'));
    expect(proc_iomem()).toBe(
      [
        '00000000-00000fff : Reserved',
        '00001000-0009ffff : System RAM',
        '000a0000-000fffff : Reserved',
        '00100000-bfffffff : System RAM',
        '  01000000-01ffffff : Kernel code',
        'e0000000-efffffff : PCI Bus 0000:00',
        '  e0000000-e0ffffff : 0000:00:02.0',
        '    e0000000-e0ffffff : vfio-pci',
        '  e1000000-e1003fff : 0000:00:03.0',
        '100000000-13fffffff : System RAM',
        '',
      ].join('\n'),
    );
  });

  it('shows zeros to a reader without CAP_SYS_ADMIN', () => {
    add('System RAM', 0x1000, 0x9ffff, RAM);
    expect(proc_iomem(false)).toBe('00000000-00000000 : System RAM\n');
    const user: task_struct = {
      pid: 100,
      tgid: 100,
      comm: 'cat',
      mm: null,
      fatal_signal: false,
      caps: new Set(),
      rlimit_memlock: 0,
    };
    const t = new SchedThread(
      1,
      'cat',
      (function* (): Op<unknown> {
        return undefined;
      })(),
      user,
    );
    const asUser = runOp(
      (function* (): Op<string> {
        yield { obj: 'proc', kind: 'read' };
        return proc_iomem();
      })(),
      t,
    );
    expect(asUser).toBe('00000000-00000000 : System RAM\n');
    expect(proc_iomem()).toBe('00001000-0009ffff : System RAM\n');
  });

  it('indents at most MAX_IORES_LEVEL levels', () => {
    let p = iomem_resource();
    for (let i = 0; i < 7; i++) p = add(`l${i}`, 0x10000 + i, 0x1ffff - i, IORESOURCE_MEM, p);
    const lines = proc_iomem().trimEnd().split('\n');
    expect(lines.map((l) => l.length - l.trimStart().length)).toEqual([0, 2, 4, 6, 8, 10, 10]);
    expect(lines[6]).toBe('          00010006-0001fff9 : l6');
  });

  it('prints <BAD> for a nameless resource, and /proc/ioports with width 4', () => {
    const r = new resource(0x1000, 0x1fff, null, IORESOURCE_MEM);
    request_resource(iomem_resource(), r);
    expect(r_show(iomem_resource(), r, true)).toBe('00001000-00001fff : <BAD>\n');
    runOp(request_region(0x3f8, 8, 'serial'));
    runOp(request_region(0x60, 1, 'keyboard'));
    expect(proc_ioports()).toBe('0060-0060 : keyboard\n03f8-03ff : serial\n');
  });
});
