/**
 * Tests of the swap-entry API (include/linux/swapops.h) as the model encodes it: migration
 * entries are non-present, non-none entries whose type and offset (pfn, and from v6.1 the
 * young/dirty bits) survive every conversion the walkers make.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import type { page } from './mm_types.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { alloc_pages, GFP_HIGHUSER_MOVABLE } from '../../mm/page_alloc.js';
import { prep_compound_page } from './page-flags.js';
import {
  PAGE_COPY,
  pfn_pte,
  pte_none,
  pte_pfn,
  pte_present,
} from '../../arch/x86/include/asm/pgtable_types.js';
import { pmd_present } from '../../arch/x86/include/asm/pgtable.js';
import {
  is_migration_entry,
  is_migration_entry_dirty,
  is_migration_entry_young,
  is_pmd_migration_entry,
  is_readable_exclusive_migration_entry,
  is_readable_migration_entry,
  is_swap_pmd,
  is_swap_pte,
  is_writable_migration_entry,
  make_migration_entry,
  make_migration_entry_dirty,
  make_migration_entry_read,
  make_migration_entry_young,
  make_readable_exclusive_migration_entry,
  make_readable_migration_entry,
  make_writable_migration_entry,
  migration_entry_to_page,
  non_swap_entry,
  pfn_swap_entry_folio,
  pfn_swap_entry_to_page,
  pte_to_swp_entry,
  swp_entry,
  swp_entry_to_pmd,
  swp_entry_to_pte,
  swp_offset,
  swp_offset_pfn,
  swp_type,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_WRITE,
  SWP_MODEL_UNKNOWN,
} from './swapops.js';

/** Runs fn inside a kernel of the given version (since() reads the current kernel). */
function inVersion<T>(version: string, fn: () => T): T {
  const k = new Kernel({ version });
  return k.run(
    (function* () {
      return fn();
    })(),
  );
}

describe('swp_entry', () => {
  it('a migration entry of pfn 0x12345 is neither none nor present at PTE or PMD level and keeps its type and pfn', () => {
    inVersion('6.12', () => {
      const e = make_writable_migration_entry(0x12345);
      expect(pte_none(swp_entry_to_pte(e))).toBe(false);
      expect(pte_present(swp_entry_to_pte(e))).toBe(false);
      expect(pmd_present(swp_entry_to_pmd(e))).toBe(false);
      expect(is_swap_pte(e) && is_swap_pmd(e)).toBe(true);
      expect(swp_type(e)).toBe(SWP_MIGRATION_WRITE);
      expect(swp_offset(e)).toBe(0x12345);
      expect(pte_pfn(e)).toBe(0x12345);
      expect(swp_entry(swp_type(e), swp_offset(e))).toBe(e);
      expect(pte_to_swp_entry(swp_entry_to_pte(e))).toBe(e);
    });
  });
});

describe('swp_offset', () => {
  it('v6.1+: the young and dirty bits ride above the pfn (SWP_MIG_YOUNG = 2^34, SWP_MIG_DIRTY = 2^35) and survive make_readable_migration_entry(swp_offset())', () => {
    inVersion('6.12', () => {
      const e = make_migration_entry_dirty(
        make_migration_entry_young(make_writable_migration_entry(0x12345)),
      );
      expect(is_migration_entry_young(e) && is_migration_entry_dirty(e)).toBe(true);
      expect(swp_offset(e)).toBe(0x12345 + SWP_MIG_YOUNG + SWP_MIG_DIRTY);
      expect(swp_offset_pfn(e)).toBe(0x12345);
      // Setting a bit twice is the same as once (offset | bit).
      expect(make_migration_entry_young(e)).toBe(e);
      const r = make_readable_migration_entry(swp_offset(e));
      expect(is_readable_migration_entry(r)).toBe(true);
      expect(is_migration_entry_young(r) && is_migration_entry_dirty(r)).toBe(true);
      expect(swp_offset_pfn(r)).toBe(0x12345);
    });
  });

  it('before v6.1 migration entries carry no young/dirty bits (migration_entry_supports_ad)', () => {
    inVersion('5.15', () => {
      const e = make_migration_entry_dirty(
        make_migration_entry_young(make_writable_migration_entry(0x12345)),
      );
      expect(e).toBe(make_writable_migration_entry(0x12345));
      expect(is_migration_entry_young(e) || is_migration_entry_dirty(e)).toBe(false);
      expect(swp_offset(e)).toBe(0x12345);
    });
  });
});

describe('is_migration_entry', () => {
  it('tells the three migration kinds apart; a present PTE, a none PTE and a non-present value outside the encoding are not migration entries', () => {
    inVersion('6.12', () => {
      const w = make_writable_migration_entry(0x100);
      const r = make_readable_migration_entry(0x100);
      const x = make_readable_exclusive_migration_entry(0x100);
      expect([w, r, x].map(is_migration_entry)).toEqual([true, true, true]);
      expect([w, r, x].map(is_writable_migration_entry)).toEqual([true, false, false]);
      expect([w, r, x].map(is_readable_migration_entry)).toEqual([false, true, false]);
      expect([w, r, x].map(is_readable_exclusive_migration_entry)).toEqual([false, false, true]);
      expect([w, r, x].map(non_swap_entry)).toEqual([true, true, true]);
      const present = pfn_pte(0x100, PAGE_COPY);
      expect(is_migration_entry(present) || is_swap_pte(present)).toBe(false);
      expect(is_migration_entry(0)).toBe(false);
      const odd = pfn_pte(0x100, 0x2); // RW only: not present, no swap marker
      expect(is_swap_pte(odd)).toBe(true);
      expect(swp_type(odd)).toBe(SWP_MODEL_UNKNOWN);
      expect(is_migration_entry(odd) || is_pmd_migration_entry(odd)).toBe(false);
      // Type 0 is a swap device slot: not a migration entry, and a swap entry proper.
      expect(non_swap_entry(swp_entry(0, 5))).toBe(false);
      expect(is_migration_entry(swp_entry(0, 5))).toBe(false);
    });
  });
});

describe('pfn_swap_entry_to_page', () => {
  it('names the page of the entry (migration_entry_to_page before v5.14 is the same); pfn_swap_entry_folio its folio', () => {
    const k = new Kernel({ version: '6.12' });
    start_kernel(k, { map: x86_64_e820(2 ** 30) });
    k.run(
      (function* () {
        // An order-2 folio; the entry names its fourth page.
        const head = alloc_pages(GFP_HIGHUSER_MOVABLE, 2)!;
        prep_compound_page(head, 2);
        const e = make_migration_entry_young(make_readable_migration_entry(head + 3));
        expect(pfn_swap_entry_to_page(e)).toBe((head + 3) as page);
        expect(migration_entry_to_page(e)).toBe((head + 3) as page);
        expect(pfn_swap_entry_folio(e)).toBe(head);
      })(),
    );
  });
});

describe('make_migration_entry', () => {
  it('v5.7-v5.13 constructors: make_migration_entry(page, write) and make_migration_entry_read() map onto the v5.14 kinds', () => {
    inVersion('5.10', () => {
      const w = make_migration_entry(0x77 as page, true);
      expect(w).toBe(make_writable_migration_entry(0x77));
      expect(make_migration_entry(0x77 as page, false)).toBe(make_readable_migration_entry(0x77));
      expect(swp_type(make_migration_entry_read(w))).toBe(SWP_MIGRATION_READ);
      expect(swp_offset(make_migration_entry_read(w))).toBe(0x77);
    });
  });
});
