/**
 * Tests of ioremap_prot / iounmap and the __iomem copies (ioremap.ts), which
 * generic_access_phys (kernel-spec.md §3 R-CALL-1) uses for its temporary mapping.
 * Physical map: 4 GiB e820 plus a BAR at 0xfe000000-0xfe100000 (no struct page).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../../init/main.js';
import { KernelBug } from '../../../kernel/panic.js';
import { dmesg } from '../../../kernel/printk.js';
import { alloc_page, GFP_KERNEL } from '../../../mm/page_alloc.js';
import { phys_read, phys_write } from '../../../mm/sparse.js';
import { PAGE_KERNEL, _PAGE_PCD, _PAGE_PWT } from '../include/asm/pgtable_types.js';
import {
  IOREMAP_START,
  ioremap_areas,
  ioremap_prot,
  iounmap,
  memcpy_fromio,
  memcpy_toio,
} from './ioremap.js';
import {
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WB,
  _PAGE_CACHE_MODE_WC,
  memtype_reserve,
  pat_memtype_list,
} from './pat/memtype.js';

const MiB = 2 ** 20;
const BAR = 0xfe000000;

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  return k;
}

describe('ioremap_prot', () => {
  it('maps the page-aligned range, keeps the offset, reserves the memtype of the prot', () => {
    boot();
    // 0xfe001123, 0x10 bytes, UC- (PCD)
    const a = ioremap_prot(BAR + 0x1123, 0x10, PAGE_KERNEL | _PAGE_PCD)!;
    expect(a).toBe(IOREMAP_START + 0x123);
    expect(ioremap_areas()).toEqual([
      {
        addr: IOREMAP_START,
        size: 0x1000,
        phys_addr: BAR + 0x1000,
        pcm: _PAGE_CACHE_MODE_UC_MINUS,
      },
    ]);
    expect(pat_memtype_list()).toEqual([
      { start: BAR + 0x1000, end: BAR + 0x2000, type: _PAGE_CACHE_MODE_UC_MINUS },
    ]);
    // a range crossing a page boundary maps two pages, after a guard page
    const b = ioremap_prot(BAR + 0x2ff0, 0x20, PAGE_KERNEL | _PAGE_PCD)!;
    expect(b).toBe(IOREMAP_START + 0x2000 + 0xff0);
    expect(ioremap_areas()[1]!.size).toBe(0x2000);
  });

  it('a tracked type that may replace the request is used; one that may not fails ("ioremap error")', () => {
    boot();
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    // UC- requested, WC tracked: allowed
    const a = ioremap_prot(BAR, 0x1000, PAGE_KERNEL | _PAGE_PCD)!;
    expect(a).not.toBeNull();
    expect(ioremap_areas()[0]!.pcm).toBe(_PAGE_CACHE_MODE_WC);
    // WT (PAT|PCD|PWT, index 7) requested, WC tracked: not allowed
    expect(ioremap_prot(BAR, 0x1000, PAGE_KERNEL | 0x80 | _PAGE_PCD | _PAGE_PWT)).toBeNull();
    expect(dmesg()).toContain('ioremap error for 0xfe000000-0xfe001000, requested 0x4, got 0x1');
    expect(pat_memtype_list()).toHaveLength(2);
  });

  it('conflicting reservations fail with "ioremap memtype_reserve failed -16"', () => {
    boot();
    expect(memtype_reserve(BAR, BAR + 0x1000, _PAGE_CACHE_MODE_WC, null)).toBe(0);
    expect(memtype_reserve(BAR + 0x1000, BAR + 0x2000, _PAGE_CACHE_MODE_UC_MINUS, null)).toBe(0);
    expect(ioremap_prot(BAR, 0x2000, PAGE_KERNEL | _PAGE_PCD)).toBeNull();
    expect(dmesg()).toContain('ioremap memtype_reserve failed -16');
  });

  it('refuses usable RAM (WARN_ONCE "ioremap on RAM"), zero or wrapping sizes, addresses beyond the physical bits', () => {
    boot();
    const p = alloc_page(GFP_KERNEL)!;
    expect(ioremap_prot(p * 4096, 0x1000, PAGE_KERNEL)).toBeNull();
    const pa = (p * 4096).toString(16).padStart(16, '0');
    expect(dmesg()).toContain(
      `ioremap on RAM at 0x${pa} - 0x${(p * 4096 + 0xfff).toString(16).padStart(16, '0')}`,
    );
    expect(ioremap_prot(BAR, 0, PAGE_KERNEL)).toBeNull();
    expect(ioremap_prot(2 ** 46, 0x1000, PAGE_KERNEL)).toBeNull();
    expect(dmesg()).toContain('ioremap: invalid physical address 400000000000');
    // reserved (non-usable) RAM such as the kernel image may be mapped: WB
    const k = ioremap_prot(0x1000000, 0x1000, PAGE_KERNEL)!;
    expect(k).not.toBeNull();
    expect(ioremap_areas().at(-1)!.pcm).toBe(_PAGE_CACHE_MODE_WB);
  });
});

describe('iounmap', () => {
  it('removes the area and its reservation; an unknown address prints "iounmap: bad address"', () => {
    boot();
    const a = ioremap_prot(BAR + 0x10, 4, PAGE_KERNEL | _PAGE_PCD)!;
    iounmap(a);
    expect(ioremap_areas()).toEqual([]);
    expect(pat_memtype_list()).toEqual([]);
    iounmap(a);
    expect(dmesg()).toContain(`iounmap: bad address ${a.toString(16)}`);
  });
});

describe('memcpy_fromio', () => {
  it('reads and writes the physical bytes behind a live area; outside any area it oopses', () => {
    boot();
    phys_write(BAR + 0x20, new Uint8Array([0xde, 0xad]));
    const a = ioremap_prot(BAR, 0x1000, PAGE_KERNEL | _PAGE_PCD)!;
    const buf = new Uint8Array(2);
    memcpy_fromio(buf, a + 0x20, 2);
    expect([...buf]).toEqual([0xde, 0xad]);
    memcpy_toio(a + 0x30, new Uint8Array([1, 2, 3]), 3);
    expect([...phys_read(BAR + 0x30, 3)]).toEqual([1, 2, 3]);
    expect(() => memcpy_fromio(buf, a + 0xfff, 2)).toThrow(KernelBug);
    iounmap(a);
    expect(() => memcpy_toio(a, buf, 1)).toThrow(KernelBug);
  });
});
