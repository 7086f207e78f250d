/**
 * Page and folio reference counts (include/linux/page_ref.h, include/linux/mm.h).
 * Refcount updates are atomic in the kernel; in the model each update happens within one
 * step, and the sites where a racing zero-check matters (folio_try_get in GUP-fast)
 * yield their own step there.
 *
 * @kernel include/linux/page_ref.h, include/linux/mm.h:folio_get, folio_put (all versions)
 * Locking: none (atomic).
 */
import { memmap, memmap_slot } from '../../mm/sparse.js';
import { VM_BUG_ON } from '../../kernel/panic.js';
import { __folio_put } from '../../mm/swap.js';
import { page_folio } from './page-flags.js';
import type { folio, page } from './mm_types.js';
import { pfnsan_page_ref, pfnsan_refcount_underflow } from '../../mm/pfnsan/pfnsan.js';

const slot = (pfn: number): number => memmap_slot(pfn);

/**
 * Model: the scheduler object of a folio's reference count (its head's _refcount, which
 * also carries FOLL_PIN pins of small folios). Every step that reads or changes a
 * folio's references names this object, whichever subsystem takes the step.
 */
export function folio_ref_obj(f: folio | number): string {
  return `folio${f}.refcount`;
}

/** page_ref_count(page) */
export function page_ref_count(p: page): number {
  const a = memmap().peek(p);
  if (a) return a.refcount[slot(p)]!;
  return memmap().pristineFlags(p) === 0 ? 0 : 1;
}

/** folio_ref_count(folio) */
export function folio_ref_count(f: folio): number {
  return page_ref_count(f as number as page);
}

/** set_page_count(page, v) */
export function set_page_count(p: page, v: number): void {
  memmap().arraysFor(p).refcount[slot(p)] = v;
}

/** page_ref_add(page, nr) */
export function page_ref_add(p: page, nr: number): number {
  const a = memmap().arraysFor(p);
  a.refcount[slot(p)]! += nr;
  return a.refcount[slot(p)]!;
}

/** folio_ref_add(folio, nr) */
export function folio_ref_add(f: folio, nr: number): number {
  return page_ref_add(f as number as page, nr);
}

/**
 * folio_ref_sub_and_test(folio, nr): drops nr references; true when none are left.
 * An underflow is VM_BUG_ON_FOLIO in put paths (checked by the callers below).
 */
export function folio_ref_sub_and_test(f: folio, nr: number): boolean {
  return page_ref_add(f as number as page, -nr) === 0;
}

/** folio_get(folio): VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)). */
export function folio_get(f: folio): void {
  pfnsan_page_ref(f, 'folio_get');
  VM_BUG_ON(
    folio_ref_count(f) <= 0,
    `VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)) pfn:0x${f.toString(16)}`,
  );
  folio_ref_add(f, 1);
}

/** get_page(page) = folio_get(page_folio(page)). */
export function get_page(p: page): void {
  pfnsan_page_ref(p, 'get_page');
  folio_get(page_folio(p));
}

/** folio_try_get(folio): takes a reference unless the count is zero. */
export function folio_try_get(f: folio): boolean {
  if (folio_ref_count(f) === 0) return false;
  folio_ref_add(f, 1);
  return true;
}

/** folio_ref_try_add(folio, nr) (folio_ref_try_add_rcu). */
export function folio_ref_try_add(f: folio, nr: number): boolean {
  if (folio_ref_count(f) === 0) return false;
  folio_ref_add(f, nr);
  return true;
}

/**
 * folio_put(folio): drops a reference and frees the folio when it was the last.
 * put_page_testzero: VM_BUG_ON_PAGE(page_ref_count(page) == 0, page).
 */
export function folio_put(f: folio): void {
  if (folio_ref_count(f) <= 0) pfnsan_refcount_underflow(f, 1, folio_ref_count(f), 'folio_put');
  VM_BUG_ON(
    folio_ref_count(f) === 0,
    `VM_BUG_ON_FOLIO(folio_ref_count(folio) == 0) pfn:0x${f.toString(16)}`,
  );
  if (folio_ref_sub_and_test(f, 1)) __folio_put(f);
}

/** folio_put_refs(folio, refs) */
export function folio_put_refs(f: folio, refs: number): void {
  if (folio_ref_count(f) < refs)
    pfnsan_refcount_underflow(f, refs, folio_ref_count(f), 'folio_put_refs');
  VM_BUG_ON(
    folio_ref_count(f) < refs,
    `VM_BUG_ON_FOLIO(folio_ref_count(folio) < refs) pfn:0x${f.toString(16)}`,
  );
  if (folio_ref_sub_and_test(f, refs)) __folio_put(f);
}

/** put_page(page) */
export function put_page(p: page): void {
  folio_put(page_folio(p));
}
