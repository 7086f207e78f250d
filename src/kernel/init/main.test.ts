/**
 * Boot: the physical map, the memmap, /proc/iomem and the zero page.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from './main.js';
import { highest_memmap_pfn, memmap, pfn_valid } from '../mm/sparse.js';
import { PageReserved } from '../include/linux/page-flags.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { zero_pfn } from '../include/linux/pgtable.js';
import { proc_iomem } from '../kernel/resource.js';
import { alloc_page, GFP_KERNEL, page_alloc_state } from '../mm/page_alloc.js';
import type { page } from '../include/linux/mm_types.js';

const GiB = 2 ** 30;

describe('start_kernel', () => {
  it('a terabyte machine boots without touching the memmap', () => {
    const k = new Kernel({ version: '6.18' });
    start_kernel(k, { map: x86_64_e820(1024 * GiB) });
    expect(memmap().materialized).toBe(0);
    // RAM above 4 GiB ends at 4 GiB + (1 TiB - 2 GiB); the last pfn has a struct page.
    expect(highest_memmap_pfn()).toBe((4 * GiB + 1022 * GiB) / 4096 - 1);
    expect(pfn_valid(highest_memmap_pfn())).toBe(true);
    expect(pfn_valid(highest_memmap_pfn() + 1)).toBe(false);
  });

  it('the 32-bit PCI hole (2..4 GiB) has no struct page; low reserved memory has one', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, { map: x86_64_e820(4 * GiB) });
    expect(pfn_valid(0x80000)).toBe(false); // 0x80000000
    expect(pfn_valid(0xfffff)).toBe(false); // 0xfffff000
    expect(pfn_valid(0x100000)).toBe(true); // 0x100000000
    // 0xa0000 (legacy VGA, e820 reserved) sits in a present subsection: PageReserved.
    expect(pfn_valid(0xa0)).toBe(true);
    expect(PageReserved(0xa0 as page)).toBe(true);
  });

  it('the kernel image is RAM reserved by memblock: PageReserved, refcount 1, never allocated', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, { map: x86_64_e820(GiB) });
    for (const pfn of [0x1000, 0x2000, 0x2fff]) {
      expect(PageReserved(pfn as page)).toBe(true);
      expect(page_ref_count(pfn as page)).toBe(1);
    }
    expect(PageReserved(0x3000 as page)).toBe(false);
    const got = new Set<number>();
    for (let i = 0; i < 20000; i++) got.add(alloc_page(GFP_KERNEL)!);
    expect([...got].some((p) => p >= 0x1000 && p < 0x3000)).toBe(false);
  });

  it('empty_zero_page is the last page of the image, PageReserved', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, { map: x86_64_e820(GiB) });
    expect(zero_pfn()).toBe(0x2fff);
    expect(PageReserved(zero_pfn() as page)).toBe(true);
  });

  it('/proc/iomem lists the map with the kernel image inside System RAM and device windows', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, {
      map: [
        ...x86_64_e820(4 * GiB),
        { start: 0xfe000000, end: 0xfe100000, kind: 'mmio', name: '0000:00:02.0' },
      ],
    });
    expect(proc_iomem(true).split('\n').filter(Boolean)).toEqual([
      '00000000-00000fff : Reserved',
      '00001000-0009efff : System RAM',
      '0009f000-000fffff : Reserved',
      '00100000-7fffffff : System RAM',
      '  01000000-01aa9fff : Kernel code',
      '  01aaa000-02553fff : Kernel data',
      '  02554000-02ffffff : Kernel bss',
      'fe000000-fe0fffff : 0000:00:02.0',
      '100000000-17fffffff : System RAM',
    ]);
  });

  it('rejects a kernel image outside RAM and overlapping ranges with one-line errors', () => {
    const k = new Kernel({ version: '6.12' });
    expect(() =>
      start_kernel(k, {
        map: x86_64_e820(GiB),
        kernel_image: { start: 0x90000000, end: 0x92000000 },
      }),
    ).toThrow(/kernel image must lie inside one RAM range/);
    expect(() =>
      start_kernel(k, {
        map: [...x86_64_e820(GiB), { start: 0x3000000, end: 0x3001000, kind: 'mmio', name: 'bad' }],
      }),
    ).toThrow(/overlaps/);
  });

  it('RAM is accounted to zones: DMA32 below 4 GiB, Normal above', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, { map: x86_64_e820(4 * GiB) });
    const zones = page_alloc_state().zones.map((z) => [z.name, z.zone_start_pfn, z.zone_end_pfn]);
    expect(zones).toEqual([
      ['DMA32', 0, 0x100000],
      ['Normal', 0x100000, 0x180000],
    ]);
  });
});
