/**
 * Booting a modelled machine: the physical map (e820), the memmap, zones and CMA areas,
 * /proc/iomem, and the zero page. The kernel image lies in RAM and is reserved with
 * memblock, so its pages have a memmap, are PageReserved and never reach the allocator;
 * empty_zero_page is a page of its .bss, as in the kernel.
 *
 * @kernel init/main.c:start_kernel, mm/mm_init.c:free_area_init, mm/memory.c:init_zero_pfn
 *   (all versions)
 */
import type { Kernel } from '../kernel/kernel.js';
import { Memmap, type PhysRange } from '../mm/sparse.js';
import { free_area_init } from '../mm/page_alloc.js';
import { pr_info } from '../kernel/printk.js';
import { pfnsan_boot_owner } from '../mm/pfnsan/pfnsan.js';
import {
  DEFINE_RES_NAMED,
  insert_resource,
  iomem_resource,
  IORESOURCE_MEM,
  IORESOURCE_SYSTEM_RAM,
} from '../kernel/resource.js';

export interface BootParams {
  /** The physical address map. */
  readonly map: readonly PhysRange[];
  /** Where the kernel image lies (inside RAM); default 16 MiB..48 MiB. */
  readonly kernel_image?: { readonly start: number; readonly end: number };
  /** CMA areas (cma= / reserved-memory), each pageblock-aligned inside RAM. */
  readonly cma?: readonly { name: string; base: number; size: number }[];
  /** movablecore: ZONE_MOVABLE starts at this pfn. */
  readonly movable_start_pfn?: number;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/**
 * A typical x86-64 e820 map with `ram` bytes of memory: low memory, the kernel image,
 * the 32-bit PCI hole from 2 GiB to 4 GiB (no memmap), and the rest above 4 GiB.
 */
export function x86_64_e820(ram: number): PhysRange[] {
  if (ram < 256 * MiB || ram % (2 * MiB) !== 0) {
    throw new Error('machine RAM must be a multiple of 2 MiB and at least 256 MiB');
  }
  const low = Math.min(ram, 2 * GiB);
  const map: PhysRange[] = [
    { start: 0, end: 0x1000, kind: 'reserved', name: 'Reserved' },
    { start: 0x1000, end: 0x9f000, kind: 'ram', name: 'System RAM' },
    { start: 0x9f000, end: 0x100000, kind: 'reserved', name: 'Reserved' },
    { start: 0x100000, end: low, kind: 'ram', name: 'System RAM' },
  ];
  if (ram > low)
    map.push({ start: 4 * GiB, end: 4 * GiB + (ram - low), kind: 'ram', name: 'System RAM' });
  return map;
}

/**
 * start_kernel: sets up the memmap and the page allocator of `k` and picks the zero page.
 * Locking: none (boot is single-threaded).
 */
export function start_kernel(k: Kernel, params: BootParams): void {
  k.activate();
  const img = params.kernel_image ?? { start: 0x1000000, end: 0x3000000 };
  const inRam = params.map.some(
    (r) => r.kind === 'ram' && img.start >= r.start && img.end <= r.end,
  );
  if (!inRam) throw new Error('physical map: the kernel image must lie inside one RAM range');
  // The image is text, data and bss (Kernel code / Kernel data / Kernel bss in /proc/iomem).
  const third = Math.floor((img.end - img.start) / 3 / 4096) * 4096;
  const parts = [
    { start: img.start, end: img.start + third, name: 'Kernel code' },
    { start: img.start + third, end: img.start + 2 * third, name: 'Kernel data' },
    { start: img.start + 2 * third, end: img.end, name: 'Kernel bss' },
  ];
  const m = new Memmap(params.map, parts);
  k.sub.memmap = m;
  pfnsan_boot_owners(m.map, parts);
  free_area_init({ movable_start_pfn: params.movable_start_pfn, cma: params.cma });
  // empty_zero_page sits in the kernel's .bss: the last page of the image.
  k.sub.zero_pfn = img.end / 4096 - 1;
  e820__reserve_resources(m.map, parts);
  const ramBytes = m.map.filter((r) => r.kind === 'ram').reduce((s, r) => s + (r.end - r.start), 0);
  pr_info(`Linux version ${k.version.name}.0-pfnsim (pfnsim model)`);
  pr_info(
    `Memory: ${Math.floor((ramBytes - (img.end - img.start)) / 1024)}K/${Math.floor(ramBytes / 1024)}K available, highest_memmap_pfn 0x${m.highest_memmap_pfn.toString(16)}`,
  );
}

/**
 * The owners frames start with (pfnsan, model only): RAM is free, firmware-reserved ranges
 * and the kernel image belong to the kernel, device windows (MMIO) are unassigned until a
 * driver claims them. Recorded per range, without per-frame state.
 */
function pfnsan_boot_owners(
  map: readonly PhysRange[],
  image: readonly { start: number; end: number; name: string }[],
): void {
  for (const r of map) {
    const pfn = r.start / 4096;
    const nr = (r.end - r.start) / 4096;
    if (r.kind === 'ram') pfnsan_boot_owner(pfn, nr, { kind: 'free', desc: 'free' });
    else if (r.kind === 'reserved')
      pfnsan_boot_owner(pfn, nr, { kind: 'kernel', desc: `firmware reserved (${r.name})` });
    else pfnsan_boot_owner(pfn, nr, { kind: 'unassigned', desc: `device memory (${r.name})` });
  }
  for (const p of image) {
    const desc = `kernel image (${p.name})`;
    pfnsan_boot_owner(p.start / 4096, (p.end - p.start) / 4096, { kind: 'kernel', desc });
  }
}

/**
 * e820__reserve_resources + the kernel image resources: /proc/iomem's top level is the
 * physical map (System RAM, Reserved, device windows), with the kernel image nested in
 * System RAM.
 * @kernel arch/x86/kernel/e820.c:e820__reserve_resources, arch/x86/kernel/setup.c (all versions)
 */
function e820__reserve_resources(
  map: readonly PhysRange[],
  image: readonly { start: number; end: number; name: string }[],
): void {
  const root = iomem_resource();
  for (const r of map) {
    const flags = r.kind === 'ram' ? IORESOURCE_SYSTEM_RAM : IORESOURCE_MEM;
    const name = r.kind === 'ram' ? 'System RAM' : r.kind === 'reserved' ? 'Reserved' : r.name;
    insert_resource(root, DEFINE_RES_NAMED(r.start, r.end - r.start, name, flags));
  }
  for (const p of image) {
    insert_resource(
      root,
      DEFINE_RES_NAMED(p.start, p.end - p.start, p.name, IORESOURCE_SYSTEM_RAM),
    );
  }
}
