/**
 * Test helper shared by the mm tests that race something with a page migration.
 */
import { expect } from 'vitest';
import type { Runner } from '../../sched/index.js';
import type { Kernel } from '../kernel/kernel.js';
import type { folio } from '../include/linux/mm_types.js';
import { folio_ref_obj } from '../include/linux/page_ref.js';
import { GFP_USER, __GFP_MOVABLE } from './page_alloc.js';
import {
  alloc_migration_target,
  folio_isolate_lru,
  migrate_pages,
  MIGRATE_SYNC,
  MR_SYSCALL,
} from './migrate.js';

/**
 * Isolates folio `src` and starts migrate_pages() of it (MIGRATE_SYNC, MR_SYSCALL,
 * destinations from GFP_USER | __GFP_MOVABLE) in thread 0 of a runner of k, stopped
 * once try_to_migrate has replaced its mappings by migration entries and dropped the
 * page-table lock: the next step is __migrate_folio's reference check.
 * Return: the runner, src, and the migration list (the folio is on it while the
 *   migration fails).
 */
export function startMigration(k: Kernel, src: folio): { r: Runner; src: folio; list: folio[] } {
  expect(folio_isolate_lru(src)).toBe(true);
  const list = [src];
  const r = k.runner();
  const mtc = { nid: 0, gfp_mask: GFP_USER | __GFP_MOVABLE, reason: MR_SYSCALL };
  r.spawn(
    'migrate',
    migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL),
  );
  for (;;) {
    const p = r.threads[0]!.pending!;
    if (p.what === 'folio_ref_count' && p.obj === folio_ref_obj(src)) break;
    expect(r.step(0)).toBe(true);
  }
  return { r, src, list };
}
