/**
 * A DMA engine thread against an unmap thread under fixed schedules (Runner): the window
 * between iommu_unmap's page-table clear and its IOTLB sync lets a DMA through the stale
 * IOTLB entry reach the old frame; after the sync it faults.
 *
 * Machine: 0000:01:00.0, unmanaged domain, iova 0x10000 -> one RAM frame, IOTLB warmed.
 * Thread E (0): dma_engine_access read of 1 byte: steps 0 cfg (bus master), 1 translate
 * (iommu_domain<id> read), 2 frame read. Thread U (1): iommu_unmap: 0 page-table write,
 * 1 IOTLB sync write.
 */
import { describe, expect, it } from 'vitest';
import { pci_boot_machine as bootMachine, pci_dev_by_bdf as deviceByBdf } from '../pci/probe.js';
import { alloc_page, GFP_KERNEL } from '../../mm/page_alloc.js';
import { phys_write } from '../../mm/sparse.js';
import {
  IOMMU_READ,
  iommu_attach_group,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_unmap,
  type iommu_domain,
} from '../iommu/iommu.js';
import { pci_enable_device_mem, pci_set_master } from '../pci/pci.js';
import { dma_engine_access, frame_obj, type dma_engine_result } from './engine.js';

const E = 0;
const U = 1;

function setup() {
  const k = bootMachine({
    version: '6.12',
    devices: [{ bdf: '0000:01:00.0', bars: [{ size: 0x1000 }] }],
  });
  const a = deviceByBdf(k, '0000:01:00.0');
  k.run(pci_enable_device_mem(a));
  k.run(pci_set_master(a));
  const d = iommu_paging_domain_alloc(a) as iommu_domain;
  k.run(iommu_attach_group(d, a.iommu_group!));
  const p = alloc_page(GFP_KERNEL)!;
  phys_write(p * 4096, new Uint8Array([0x42]));
  k.run(iommu_map(d, 0x10000, p * 4096, 0x1000, IOMMU_READ, GFP_KERNEL));
  k.run(dma_engine_access(a, 0x10000, 1, 'read')); // warm the IOTLB
  return { k, a, d, p };
}

function run(schedule: number[]) {
  const { k, a, d, p } = setup();
  const r = k.runner();
  const te = r.spawn('E', dma_engine_access(a, 0x10000, 1, 'read'));
  const tu = r.spawn('U', iommu_unmap(d, 0x10000, 0x1000));
  const res = r.run(schedule);
  return { res, e: te.result as dma_engine_result, u: tu.result as number, d, p };
}

describe('dma_engine_access vs iommu_unmap (fixed schedules)', () => {
  it('DMA translated between the page-table clear and the IOTLB sync still reads the old frame', () => {
    // U clears the entry, E translates (IOTLB hit) and reads, completes, then U syncs.
    const { res, e, u, d, p } = run([U, E, E, E, E, U]);
    expect(res.status).toBe('done');
    expect(u).toBe(0x1000);
    expect(e).toMatchObject({ ret: 0, done: 1 });
    expect(e.data[0]).toBe(0x42);
    const objs = res.trace.map((s) => `${s.thread}:${s.obj}:${s.kind}`);
    expect(objs).toEqual([
      `U:${d.obj}:write`,
      'E:pci0000:01:00.0.config:read',
      `E:${d.obj}:read`,
      `E:${frame_obj(p)}:read`,
      `E:${d.obj}:read`,
      `U:${d.obj}:write`,
    ]);
  });

  it('the IOTLB sync waits for a request already translated (drain): the access completes first', () => {
    // U clears the entry, E translates; U's sync is not enabled until E's request completes.
    const { res } = run([U, E, E, U]);
    expect(res.status).toBe('bad-schedule');
    expect(res.message).toMatch(/blocked on iommu_domain/);
  });

  it('DMA translated after the sync faults (-EFAULT, DMAR log)', () => {
    const { res, e } = run([U, U, E, E]);
    expect(res.status).toBe('done');
    expect(e).toMatchObject({ ret: -14, done: 0 });
  });

  it('the same schedule gives the same trace', () => {
    expect(run([U, E, E, E, E, U]).res.trace).toEqual(run([U, E, E, E, E, U]).res.trace);
  });
});
