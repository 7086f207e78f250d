/**
 * IOMMU core: iommu_map / iommu_unmap / iommu_iova_to_phys results and errors per version,
 * domain allocation per version, group attach/detach. Machine: 4 GiB RAM, device
 * 0000:01:00.0 with a 1 MiB BAR0 at 0x180000000 (pfn 0x180000), IOMMU on.
 */
import { describe, expect, it } from 'vitest';
import { pci_boot_machine as bootMachine, pci_dev_by_bdf as deviceByBdf } from '../pci/probe.js';
import { dmesg } from '../../kernel/printk.js';
import { alloc_page, GFP_KERNEL } from '../../mm/page_alloc.js';
import { since } from '../../version.js';
import {
  IOMMU_DOMAIN_DMA,
  IOMMU_DOMAIN_DMA_FQ,
  IOMMU_DOMAIN_UNMANAGED,
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_attach_group,
  iommu_detach_group,
  iommu_domain,
  iommu_domain_alloc,
  iommu_iova_to_phys,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_unmap,
} from './iommu.js';
import { IS_ERR } from '../../include/linux/errno.js';

function boot(version: string, config: Record<string, boolean> = {}) {
  const k = bootMachine({
    version,
    config,
    devices: [
      { bdf: '0000:01:00.0', bars: [{ size: 0x100000 }] },
      { bdf: '0000:02:00.0', bars: [{ size: 0x1000 }] },
    ],
  });
  const pdev = deviceByBdf(k, '0000:01:00.0');
  return { k, pdev };
}

function newDomain(version: string): {
  k: ReturnType<typeof boot>['k'];
  d: iommu_domain;
  pdev: ReturnType<typeof boot>['pdev'];
} {
  const { k, pdev } = boot(version);
  const d = since(6, 11)
    ? (iommu_paging_domain_alloc(pdev) as iommu_domain)
    : iommu_domain_alloc(pdev.bus)!;
  return { k, d, pdev };
}

/** iommu_map with the argument list of the running version. */
function map(d: iommu_domain, iova: number, pa: number, size: number, prot: number) {
  return since(6, 3)
    ? iommu_map(d, iova, pa, size, prot, GFP_KERNEL)
    : iommu_map(d, iova, pa, size, prot);
}

describe('iommu_map', () => {
  for (const v of ['5.10', '6.1', '6.12', '6.18']) {
    it(`(${v}) maps 0x100000..0x102000 to two frames; iova_to_phys follows the table`, () => {
      const { k, d } = newDomain(v);
      const p = alloc_page(GFP_KERNEL)!;
      expect(k.run(map(d, 0x100000, p * 4096, 0x1000, IOMMU_READ | IOMMU_WRITE))).toBe(0);
      expect(iommu_iova_to_phys(d, 0x100abc)).toBe(p * 4096 + 0xabc);
      expect(iommu_iova_to_phys(d, 0x101000)).toBe(0); // not mapped
      expect(d.pt.get(0x100)).toMatchObject({ pfn: p, prot: IOMMU_READ | IOMMU_WRITE });
    });
  }

  it('R-IOMMU-MAP: unaligned iova/paddr/size ⇒ -EINVAL with the "unaligned" pr_err', () => {
    const { k, d } = newDomain('6.12');
    expect(k.run(map(d, 0x100800, 0x200000, 0x1000, IOMMU_READ))).toBe(-22);
    expect(k.run(map(d, 0x100000, 0x200000, 0x800, IOMMU_READ))).toBe(-22);
    expect(dmesg()).toContain(
      'iommu: unaligned: iova 0x100800 pa 0x0000000000200000 size 0x1000 min_pagesz 0x1000',
    );
    expect(d.pt.size).toBe(0);
  });

  it('no READ/WRITE prot ⇒ -EINVAL (intel __domain_mapping); beyond 48 bits ⇒ -EFAULT', () => {
    const { k, d } = newDomain('6.12');
    expect(k.run(map(d, 0x100000, 0x200000, 0x1000, 0))).toBe(-22);
    expect(k.run(map(d, 2 ** 48, 0x200000, 0x1000, IOMMU_READ))).toBe(-14);
    expect(dmesg()).toContain('is not sufficient for the mapped address');
  });

  it('a non-paging (identity) domain ⇒ -EINVAL', () => {
    const { k, d } = newDomain('6.12');
    d.type = 4; // IOMMU_DOMAIN_IDENTITY
    expect(k.run(map(d, 0x100000, 0x200000, 0x1000, IOMMU_READ))).toBe(-22);
    expect(iommu_iova_to_phys(d, 0x1234)).toBe(0x1234);
  });

  it('mapping over a present entry keeps it: pr_crit "already set" + WARN, returns 0', () => {
    const { k, d } = newDomain('6.12');
    expect(k.run(map(d, 0x100000, 0x200000, 0x1000, IOMMU_READ))).toBe(0);
    expect(k.run(map(d, 0x100000, 0x300000, 0x1000, IOMMU_READ))).toBe(0);
    expect(iommu_iova_to_phys(d, 0x100000)).toBe(0x200000);
    expect(dmesg()).toContain(
      'DMAR: ERROR: DMA PTE for vPFN 0x100 already set (to 200001 not 300001)',
    );
    expect(k.tainted_mask & (1 << 9)).not.toBe(0); // TAINT_WARN
  });

  it('the gfp argument exists exactly from v6.3 (1369459b2e21)', () => {
    const a = newDomain('6.1');
    expect(() => a.k.run(iommu_map(a.d, 0, 0x200000, 0x1000, IOMMU_READ, GFP_KERNEL))).toThrow(
      /no gfp argument before v6.3/,
    );
    const b = newDomain('6.5');
    expect(() => b.k.run(iommu_map(b.d, 0, 0x200000, 0x1000, IOMMU_READ))).toThrow(
      /takes a gfp argument/,
    );
  });
});

describe('iommu_unmap', () => {
  it('returns the bytes unmapped; stops at the first hole; unaligned ⇒ 0', () => {
    const { k, d } = newDomain('6.12');
    // 0x100000..0x103000 mapped, 0x103000 a hole, 0x104000 mapped
    expect(k.run(map(d, 0x100000, 0x200000, 0x3000, IOMMU_READ))).toBe(0);
    expect(k.run(map(d, 0x104000, 0x300000, 0x1000, IOMMU_READ))).toBe(0);
    expect(k.run(iommu_unmap(d, 0x100000, 0x5000))).toBe(0x3000);
    expect(iommu_iova_to_phys(d, 0x102000)).toBe(0);
    expect(iommu_iova_to_phys(d, 0x104000)).toBe(0x300000);
    expect(k.run(iommu_unmap(d, 0x104800, 0x1000))).toBe(0);
    expect(dmesg()).toContain('iommu: unaligned: iova 0x104800 size 0x1000 min_pagesz 0x1000');
    expect(k.run(iommu_unmap(d, 0x104000, 0x1000))).toBe(0x1000);
    expect(k.run(iommu_unmap(d, 0x104000, 0x1000))).toBe(0);
  });
});

describe('iommu_domain_alloc / iommu_paging_domain_alloc', () => {
  it('6.10 has only iommu_domain_alloc(bus); 6.12 has both; 6.13+ only iommu_paging_domain_alloc(dev)', () => {
    const a = boot('6.10');
    expect(iommu_domain_alloc(a.pdev.bus)!.type).toBe(IOMMU_DOMAIN_UNMANAGED);
    expect(() => iommu_paging_domain_alloc(a.pdev)).toThrow(/before v6.11/);
    const b = boot('6.12');
    expect(iommu_domain_alloc(b.pdev.bus)).not.toBeNull();
    expect(IS_ERR(iommu_paging_domain_alloc(b.pdev))).toBe(false);
    const c = boot('6.13');
    expect(() => iommu_domain_alloc(c.pdev.bus)).toThrow(/v6.13/);
  });

  it('no IOMMU ⇒ iommu_paging_domain_alloc returns ERR_PTR(-ENODEV)', () => {
    const k = bootMachine({
      version: '6.12',
      iommu: false,
      devices: [{ bdf: '0000:01:00.0', bars: [] }],
    });
    const pdev = deviceByBdf(k, '0000:01:00.0');
    expect(iommu_paging_domain_alloc(pdev)).toBe(-19);
    expect(pdev.iommu_group).toBeNull();
  });

  it('default domain: DMA when CONFIG_IOMMU_DEFAULT_DMA_STRICT, else DMA_FQ (lazy)', () => {
    expect(boot('6.12').pdev.iommu_group!.default_domain!.type).toBe(IOMMU_DOMAIN_DMA);
    const lazy = bootMachine({
      version: '6.12',
      config: { CONFIG_IOMMU_DEFAULT_DMA_STRICT: false },
      devices: [{ bdf: '0000:01:00.0', bars: [] }],
    });
    expect(deviceByBdf(lazy, '0000:01:00.0').iommu_group!.default_domain!.type).toBe(
      IOMMU_DOMAIN_DMA_FQ,
    );
  });
});

describe('iommu_attach_group / iommu_detach_group', () => {
  it('attach from the default domain works; a second attach ⇒ -EBUSY; detach returns to default', () => {
    const { k, d, pdev } = newDomain('6.12');
    const g = pdev.iommu_group!;
    const d2 = iommu_paging_domain_alloc(pdev) as iommu_domain;
    expect(k.run(iommu_attach_group(d, g))).toBe(0);
    expect(g.domain).toBe(d);
    expect(k.run(iommu_attach_group(d2, g))).toBe(-16);
    k.run(iommu_detach_group(d, g));
    expect(g.domain).toBe(g.default_domain);
  });

  it('devices with the same iommuGroup share one group', () => {
    const k = bootMachine({
      version: '6.12',
      devices: [
        { bdf: '0000:01:00.0', bars: [], iommuGroup: 7 },
        { bdf: '0000:01:00.1', bars: [], iommuGroup: 7 },
        { bdf: '0000:02:00.0', bars: [] },
      ],
    });
    const a = deviceByBdf(k, '0000:01:00.0');
    const b = deviceByBdf(k, '0000:01:00.1');
    const c = deviceByBdf(k, '0000:02:00.0');
    expect(a.iommu_group).toBe(b.iommu_group);
    expect(a.iommu_group!.devices).toEqual([a, b]);
    expect(c.iommu_group).not.toBe(a.iommu_group);
  });
});
