/**
 * Freeing a folio whose last reference is gone.
 * @kernel mm/swap.c:__folio_put (all versions)
 * Locking: none; the caller dropped the last reference.
 */
import { clear_compound_page, folio_order, folio_test_large } from '../include/linux/page-flags.js';
import type { folio, page } from '../include/linux/mm_types.js';
import { free_pages_prepared } from './page_alloc.js';

/**
 * __folio_put(folio): the refcount reached zero; the frames go back to the allocator,
 * whose free-time checks report a still-mapped folio as a bad page. Large folios are
 * split back into frames first.
 */
export function __folio_put(f: folio): void {
  const order = folio_order(f);
  if (folio_test_large(f)) clear_compound_page(f, order);
  free_pages_prepared(f as number as page, order);
}
