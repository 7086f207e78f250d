/**
 * The x86 /dev/mem policy (arch/x86/mm/init.c): devmem_is_allowed() says whether a
 * physical page may be read, written or mapped through /dev/mem (and, from v5.8, whether
 * a claimed region's /dev/mem mappings survive: revoke_devmem / revoke_iomem ask it too).
 *
 * Left out: the rest of arch/x86/mm/init.c (the direct map, free_initmem, ...); the 2025
 * confidential-guest restriction (cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT) gating the
 * low-1 MiB bypass) since the model has no confidential guests.
 *
 * @kernel arch/x86/mm/init.c:devmem_is_allowed (all supported versions)
 */
import {
  IORESOURCE_SYSTEM_RAM,
  IORES_DESC_NONE,
  REGION_DISJOINT,
  iomem_is_exclusive,
  region_intersects,
} from '../../../kernel/resource.js';
import { PAGE_SIZE } from '../include/asm/pgtable_types.js';

/** The first megabyte (BIOS area) in pages: pagenr < 256. */
const LOW_1MB_PAGES = 256;

/**
 * devmem_is_allowed(pagenr): whether /dev/mem may touch physical page `pagenr`.
 * Any page that intersects System RAM is refused, except that System RAM in the first
 * 1 MiB reads as zeros (2: read() zero-fills, write() skips, mmap() is allowed since
 * range_is_allowed only tests for 0). Otherwise a page in an exclusive iomem resource
 * (IORESOURCE_EXCLUSIVE, or any busy one under CONFIG_IO_STRICT_DEVMEM, unless
 * iomem=relaxed; see iomem_is_exclusive) is refused outside the first 1 MiB; anything
 * else (PCI MMIO, holes, BIOS/ACPI areas) is allowed.
 * @kernel arch/x86/mm/init.c:devmem_is_allowed (all supported versions: the
 *   region_intersects() test is from "x86/mm: Tighten x86 /dev/mem with
 *   region_intersects()" (2018, v4.18), the zero-filled low 1 MiB from a4866aa81251
 *   "mm: Tighten x86 /dev/mem with zeroing reads" (v4.11))
 * Locking: takes resource_lock for read inside region_intersects and
 *   iomem_is_exclusive (model: synchronous, no Steps).
 * Return: 0 (refused), 1 (allowed) or 2 (allowed, shown as zeros).
 */
export function devmem_is_allowed(pagenr: number): number {
  if (
    region_intersects(pagenr * PAGE_SIZE, PAGE_SIZE, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) !==
    REGION_DISJOINT
  ) {
    /*
     * For disallowed memory regions in the low 1MB range,
     * request that the page be shown as all zeros.
     */
    if (pagenr < LOW_1MB_PAGES) return 2;
    return 0;
  }
  /*
   * This must follow RAM test, since System RAM is considered a
   * restricted resource under CONFIG_STRICT_DEVMEM.
   */
  if (iomem_is_exclusive(pagenr * PAGE_SIZE)) {
    /* Low 1MB bypasses iomem restrictions. */
    if (pagenr < LOW_1MB_PAGES) return 1;
    return 0;
  }
  return 1;
}
