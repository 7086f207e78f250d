/**
 * The IOVA allocator (drivers/iommu/iova.c): ranges of I/O virtual page frames handed out
 * top-down below a limit, size-aligned, with the per-size "rcache" that hands a just-freed
 * range back to the next allocation of that size (LIFO), as the per-CPU magazines do.
 * That reuse is what makes a stale IOTLB entry dangerous: the flush queue (dma-iommu.ts)
 * delays free_iova_fast() until the IOTLB has been flushed.
 *
 * Model: allocated ranges in a sorted array instead of the rbtree; one CPU's magazine
 * per size class with no bound on its depth; no depot, no cached_node/anchor, no
 * max32_alloc_size shortcut (the search is exhaustive, which finds the same range).
 *
 * Locking: the kernel's iova_rbtree_lock is a spinlock taken inside; these functions run
 * as one atomic action of the calling thread (no Steps), which is what it guarantees.
 *
 * @kernel drivers/iommu/iova.c (all versions; moved from the DMA API's own cache to the
 *   iova_domain rcache in v5.x, which the model follows)
 */

/** IOVA_RANGE_CACHE_MAX_SIZE: log of the largest size class the rcache keeps (pages). */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;

/** struct iova: [pfn_lo, pfn_hi] inclusive. */
export interface iova {
  readonly pfn_lo: number;
  readonly pfn_hi: number;
}

/**
 * struct iova_domain.
 * @kernel include/linux/iova.h:struct iova_domain (all versions)
 */
export class iova_domain {
  /** Sorted by pfn_lo. */
  readonly ranges: iova[] = [];
  /** The rcache: size (pages, a power of two) -> freed pfn_lo, most recent last. */
  readonly rcache = new Map<number, number[]>();
  constructor(
    readonly granule: number,
    readonly start_pfn: number,
  ) {}
}

/**
 * init_iova_domain(iovad, granule, start_pfn).
 * @kernel drivers/iommu/iova.c:init_iova_domain (all versions)
 * Return: the domain.
 */
export function init_iova_domain(granule: number, start_pfn: number): iova_domain {
  return new iova_domain(granule, start_pfn);
}

/** iova_shift(iovad): log2 of the granule. */
export function iova_shift(iovad: iova_domain): number {
  return Math.log2(iovad.granule);
}

/** iova_offset(iovad, iova): offset inside the granule. */
export function iova_offset(iovad: iova_domain, addr: number): number {
  return addr % iovad.granule;
}

/** iova_align(iovad, size): size rounded up to the granule. */
export function iova_align(iovad: iova_domain, size: number): number {
  return Math.ceil(size / iovad.granule) * iovad.granule;
}

function roundup_pow_of_two(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * alloc_iova(iovad, size, limit_pfn, size_aligned): the highest free range of `size` pages
 * ending at or below limit_pfn, aligned to roundup_pow_of_two(size) when size_aligned.
 * @kernel drivers/iommu/iova.c:alloc_iova, __alloc_and_insert_iova_range (all versions)
 * Return: the range, or null when none fits.
 */
export function alloc_iova(
  iovad: iova_domain,
  size: number,
  limit_pfn: number,
  size_aligned: boolean,
): iova | null {
  const align = size_aligned ? roundup_pow_of_two(size) : 1;
  let high = limit_pfn; // inclusive upper bound of the current gap
  for (let i = iovad.ranges.length - 1; i >= -1; i--) {
    const r = i >= 0 ? iovad.ranges[i]! : null;
    if (r && r.pfn_lo > limit_pfn) continue;
    const gapLo = r ? r.pfn_hi + 1 : iovad.start_pfn;
    const gapHi = r ? Math.min(high, limit_pfn) : high;
    let lo = gapHi - size + 1;
    lo -= ((lo % align) + align) % align;
    if (lo >= gapLo && lo >= iovad.start_pfn && lo + size - 1 <= gapHi) {
      const nw = { pfn_lo: lo, pfn_hi: lo + size - 1 };
      iovad.ranges.splice(i + 1, 0, nw);
      return nw;
    }
    if (r) high = Math.min(high, r.pfn_lo - 1);
  }
  return null;
}

/** find_iova(iovad, pfn): the allocated range containing pfn. @kernel drivers/iommu/iova.c:find_iova (all versions) */
export function find_iova(iovad: iova_domain, pfn: number): iova | null {
  return iovad.ranges.find((r) => pfn >= r.pfn_lo && pfn <= r.pfn_hi) ?? null;
}

/** __free_iova(iovad, iova): releases a range. @kernel drivers/iommu/iova.c:__free_iova (all versions) */
export function __free_iova(iovad: iova_domain, r: iova): void {
  const i = iovad.ranges.indexOf(r);
  if (i >= 0) iovad.ranges.splice(i, 1);
}

/** free_iova(iovad, pfn): releases the range containing pfn. @kernel drivers/iommu/iova.c:free_iova (all versions) */
export function free_iova(iovad: iova_domain, pfn: number): void {
  const r = find_iova(iovad, pfn);
  if (r) __free_iova(iovad, r);
}

/**
 * alloc_iova_fast(iovad, size, limit_pfn, flush_rcache): sizes below 2^(MAX-1) are rounded
 * up to a power of two and served from the rcache first (the most recently freed range of
 * that size below the limit), else allocated with alloc_iova(size_aligned).
 * @kernel drivers/iommu/iova.c:alloc_iova_fast, iova_rcache_get (all versions)
 * Return: pfn_lo of the range, or 0 when nothing fits.
 * Leaves out: the retry after free_cpu_cached_iovas() when flush_rcache (nothing is cached
 *   per CPU here beyond the rcache, which is already searched).
 */
export function alloc_iova_fast(
  iovad: iova_domain,
  size: number,
  limit_pfn: number,
  flush_rcache: boolean,
): number {
  void flush_rcache;
  let sz = size;
  if (sz < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1)) sz = roundup_pow_of_two(sz);
  const cache = iovad.rcache.get(sz);
  if (cache) {
    for (let i = cache.length - 1; i >= 0; i--) {
      const pfn = cache[i]!;
      if (pfn + sz - 1 <= limit_pfn) {
        // A cached range stays in the tree while it sits in a magazine.
        cache.splice(i, 1);
        return pfn;
      }
    }
  }
  const r = alloc_iova(iovad, sz, limit_pfn, true);
  return r ? r.pfn_lo : 0;
}

/**
 * free_iova_fast(iovad, pfn, size): puts a range into the rcache of its size class, where it
 * stays allocated in the tree until reused (sizes above the largest class are freed).
 * @kernel drivers/iommu/iova.c:free_iova_fast, iova_rcache_insert (all versions)
 */
export function free_iova_fast(iovad: iova_domain, pfn: number, size: number): void {
  // iova_rcache_insert: log_size = order_base_2(size); too big for a class => free_iova.
  const sz = roundup_pow_of_two(size);
  if (Math.log2(sz) >= IOVA_RANGE_CACHE_MAX_SIZE) {
    free_iova(iovad, pfn);
    return;
  }
  let c = iovad.rcache.get(sz);
  if (!c) iovad.rcache.set(sz, (c = []));
  c.push(pfn);
}
