/**
 * Freeing a folio whose last reference is gone.
 * @kernel mm/swap.c:__folio_put (all versions)
 * Locking: none; the caller dropped the last reference.
 */
import { clear_compound_page, folio_order, folio_test_large } from '../include/linux/page-flags.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { free_pages_prepared } from './page_alloc.js';
import { folio_test_hugetlb, free_huge_folio } from './hugetlb.pool.js';

/**
 * __folio_put(folio): the refcount reached zero; a hugetlb folio goes back to the hugetlb
 * pool (free_huge_folio); other frames go back to the allocator,
 * whose free-time checks report a still-mapped folio as a bad page. Large folios are
 * split back into frames first.
 */
export function __folio_put(f: folio): void {
  // A hugetlb folio goes back to its pool (v6.6+ here; the HUGETLB_PAGE_DTOR compound
  // destructor called free_huge_page before).
  if (folio_test_hugetlb(f)) {
    free_huge_folio(f);
    return;
  }
  const order = folio_order(f);
  if (folio_test_large(f)) clear_compound_page(f, order);
  free_pages_prepared(f as number as page, order);
}
