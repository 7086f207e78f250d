/**
 * Booting a modelled machine: the physical map (e820), the memmap, zones and CMA areas,
 * and the zero page. The kernel image occupies the first 'reserved' range that is at
 * least 2 MiB long; empty_zero_page is a page of it, PageReserved as in the kernel.
 *
 * @kernel init/main.c:start_kernel, mm/mm_init.c:free_area_init, mm/memory.c:init_zero_pfn
 *   (all versions)
 */
import type { Kernel } from '../kernel/kernel.js';
import { Memmap, type PhysRange } from '../mm/sparse.js';
import { free_area_init } from '../mm/page_alloc.js';
import { pr_info } from '../kernel/printk.js';

export interface BootParams {
  /** The physical address map. */
  readonly map: readonly PhysRange[];
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
    { start: 0x100000, end: 0x1000000, kind: 'ram', name: 'System RAM' },
    { start: 0x1000000, end: 0x3000000, kind: 'reserved', name: 'Kernel code' },
    { start: 0x3000000, end: low, kind: 'ram', name: 'System RAM' },
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
  const m = new Memmap(params.map);
  k.sub.memmap = m;
  free_area_init({ movable_start_pfn: params.movable_start_pfn, cma: params.cma });
  const image = m.map.find((r) => r.kind === 'reserved' && r.end - r.start >= 2 * MiB);
  if (!image)
    throw new Error("physical map: no 'reserved' range of 2 MiB or more for the kernel image");
  // empty_zero_page sits in the kernel's .bss: the last page of the image.
  k.sub.zero_pfn = image.end / 4096 - 1;
  const ramBytes = m.map.filter((r) => r.kind === 'ram').reduce((s, r) => s + (r.end - r.start), 0);
  pr_info(`Linux version ${k.version.name}.0-pfnsim (pfnsim model)`);
  pr_info(
    `Memory: ${Math.floor(ramBytes / 1024)}K available, highest_memmap_pfn 0x${m.highest_memmap_pfn.toString(16)}`,
  );
}
