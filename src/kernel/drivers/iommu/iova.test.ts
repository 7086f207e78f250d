/** The IOVA allocator: top-down, size-aligned, LIFO reuse through the rcache. */
import { describe, expect, it } from 'vitest';
import {
  alloc_iova,
  alloc_iova_fast,
  find_iova,
  free_iova_fast,
  init_iova_domain,
} from './iova.js';

describe('alloc_iova_fast / free_iova_fast', () => {
  it('allocates top-down below the limit, size-aligned; a freed range is the next one of its size', () => {
    const iovad = init_iova_domain(4096, 1);
    expect(alloc_iova_fast(iovad, 1, 0xfffff, false)).toBe(0xfffff);
    expect(alloc_iova_fast(iovad, 2, 0xfffff, false)).toBe(0xffffc); // aligned to 2
    expect(alloc_iova_fast(iovad, 3, 0xfffff, false)).toBe(0xffff8); // rounded to 4
    free_iova_fast(iovad, 0xfffff, 1);
    expect(find_iova(iovad, 0xfffff)).not.toBeNull(); // cached ranges stay in the tree
    expect(alloc_iova_fast(iovad, 1, 0xfffff, false)).toBe(0xfffff);
    expect(alloc_iova_fast(iovad, 1, 0xfffff, false)).toBe(0xffffe);
  });

  it('alloc_iova returns null when nothing fits above start_pfn', () => {
    const iovad = init_iova_domain(4096, 1);
    expect(alloc_iova(iovad, 4, 3, true)).toBeNull();
    expect(alloc_iova(iovad, 2, 3, true)).toEqual({ pfn_lo: 2, pfn_hi: 3 });
  });
});
