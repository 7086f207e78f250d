/**
 * Tests of page migration (mm/migrate.c: migrate_pages and the unmap/move steps,
 * try_to_migrate, remove_migration_ptes, migration entries). Rules: kernel-spec.md
 * R-REV-5 (frames change owner as soon as they are freed), R-GUP-8 (the migration step of
 * FOLL_LONGTERM: a pinned folio cannot move), R-GUP-5 (pins add GUP_PIN_COUNTING_BIAS =
 * 1024 to a small folio's refcount), R-MMUN-1/2 (notifier events).
 *
 * Memory is set up by hand as the fault path and fork would leave it (the fault and fork
 * models were not importable when these tests were written): an anonymous page is
 * alloc_pages(GFP_HIGHUSER_MOVABLE, 0) + anon_vma_prepare + folio_add_new_anon_rmap +
 * set_pte_at + inc_mm_counter under the PTE lock; a "forked" sharer is a second mm whose
 * VMA shares the anon_vma, maps the page read-only with folio_add_anon_rmap_ptes and a
 * reference, and clears PageAnonExclusive, as copy_present_pte does.
 */
import { mm_alloc } from '../kernel/fork.js';
import { describe, expect, it } from 'vitest';
import type { Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import type {
  address_space,
  folio,
  mm_struct,
  page,
  pte_t_ptr,
  vm_area_struct,
} from '../include/linux/mm_types.js';
import { MM_ANONPAGES, MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../include/linux/mm.js';
import {
  ClearPageAnonExclusive,
  __folio_clear_locked,
  __folio_set_locked,
  folio_mapcount,
  folio_set_index,
  folio_set_mapping,
  folio_test_anon,
  folio_test_locked,
  page_mapcount,
  PageAnonExclusive,
  prep_compound_page,
} from '../include/linux/page-flags.js';
import {
  folio_get,
  folio_ref_add,
  folio_ref_count,
  page_ref_count,
} from '../include/linux/page_ref.js';
import {
  PAGE_COPY,
  PAGE_SHARED,
  PAGE_SIZE,
  pfn_pte,
  pte_dirty,
  pte_mkdirty,
  pte_mkhuge,
  pte_mkwrite,
  pte_pfn,
  pte_present,
  pte_write,
  pte_wrprotect,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map,
  ptep_get,
  pud_alloc,
  set_pmd_at,
  set_pte_at,
  walkToLeaf,
} from '../include/linux/pgtable.js';
import { spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { vm_area_alloc, vma_link } from './vma.js';
import {
  anon_vma_prepare,
  folio_add_anon_rmap_ptes,
  folio_add_file_rmap_ptes,
  folio_add_new_anon_rmap,
  RMAP_EXCLUSIVE,
  RMAP_NONE,
} from './rmap.js';
import {
  alloc_page,
  alloc_pages,
  GFP_HIGHUSER_MOVABLE,
  GFP_USER,
  __GFP_MOVABLE,
  page_is_free,
} from './page_alloc.js';
import { phys_read, phys_write } from './sparse.js';
import { new_inode } from '../fs/inode.js';
import { notifierLog } from './mmu_notifier.js';
import {
  alloc_migration_target,
  folio_expected_refs,
  folio_isolate_lru,
  folioIsolated,
  migrate_failure,
  migrate_pages,
  migration_entry_wait,
  MIGRATE_ASYNC,
  MIGRATE_SYNC,
  MR_CONTIG_RANGE,
  MR_LONGTERM_PIN,
  MR_SYSCALL,
  putback_movable_pages,
  remove_migration_ptes,
  try_to_migrate,
  type migration_target_control,
} from './migrate.js';
import {
  is_migration_entry,
  is_readable_exclusive_migration_entry,
  is_writable_migration_entry,
  swp_offset,
  swp_offset_pfn,
} from '../include/linux/swapops.js';
import { SWP_MIG_DIRTY, SWP_MIG_YOUNG } from '../include/linux/swapops.js';

const GiB = 2 ** 30;
const A = 0x7f0000000000; // user address of the first test page
const mtc: migration_target_control = {
  nid: 0,
  gfp_mask: GFP_USER | __GFP_MOVABLE,
  reason: MR_SYSCALL,
};

function boot(version = '6.12'): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(GiB) });
  return k;
}

/** An empty address space, as mm_alloc() makes it. */
function newMm(_k: Kernel): mm_struct {
  const mm = mm_alloc()!;
  mm.mmap_base = A;
  return mm;
}

function newVma(mm: mm_struct, start: number, npages: number, shared = false): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = start;
  vma.vm_end = start + npages * PAGE_SIZE;
  vma.vm_flags =
    VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | (shared ? VM_SHARED | VM_MAYSHARE : 0n);
  vma.vm_page_prot = shared ? PAGE_SHARED : PAGE_COPY;
  vma_link(mm, vma);
  return vma;
}

/** The PTE slot for addr, allocating the tables. */
function* ptep(mm: mm_struct, addr: number): Op<pte_t_ptr> {
  const pud = (yield* pud_alloc(mm, pgd_offset(mm, addr), addr))!;
  const pmd = (yield* pmd_alloc(mm, pud, addr))!;
  yield* pte_alloc(mm, pmd);
  return pte_offset_map(pmd, addr)!;
}

/** do_anonymous_page's effect: a new exclusive, writable, dirty anonymous page. */
function* mapNewAnon(vma: vm_area_struct, addr: number, p: page): Op<void> {
  const mm = vma.vm_mm;
  expect(anon_vma_prepare(vma)).toBe(0);
  const pte = yield* ptep(mm, addr);
  yield* spin_lock(pte.t.ptl!);
  folio_add_new_anon_rmap(p as number as folio, vma, addr, RMAP_EXCLUSIVE);
  yield* set_pte_at(mm, addr, pte, pte_mkdirty(pte_mkwrite(pfn_pte(p, vma.vm_page_prot))));
  mm.rss_stat[MM_ANONPAGES]!++;
  yield* spin_unlock(pte.t.ptl!);
}

/** fork's copy of an anonymous page: both PTEs read-only, the page no longer exclusive. */
function* shareAnon(
  parent: vm_area_struct,
  child: vm_area_struct,
  addr: number,
  p: page,
): Op<void> {
  const ppte = (yield* ptep(parent.vm_mm, addr))!;
  yield* set_pte_at(parent.vm_mm, addr, ppte, pte_wrprotect(ptep_get(ppte)));
  ClearPageAnonExclusive(p);
  const cpte = yield* ptep(child.vm_mm, addr);
  folio_get(p as number as folio);
  folio_add_anon_rmap_ptes(p as number as folio, p, 1, child, addr, RMAP_NONE);
  yield* set_pte_at(child.vm_mm, addr, cpte, ptep_get(ppte));
  child.vm_mm.rss_stat[MM_ANONPAGES]!++;
}

function pteAt(mm: mm_struct, addr: number): number {
  const l = walkToLeaf(mm, addr);
  if (l) return ptep_get(l.ptr);
  // A migration entry at PTE level: walk to the table by hand.
  const pgd = pgd_offset(mm, addr);
  const pud = pgd.t.children![pgd.i]!;
  const pmd = pud.children![Math.floor(addr / 2 ** 30) % 512]!;
  const t = pmd.children![Math.floor(addr / 2 ** 21) % 512]!;
  return t.entries[Math.floor(addr / 4096) % 512]!;
}

function fill(p: number, byte: number): Uint8Array {
  const d = new Uint8Array(PAGE_SIZE).fill(byte);
  d[0] = 0x5a;
  d[PAGE_SIZE - 1] = p % 251;
  phys_write(p * PAGE_SIZE, d);
  return d;
}

/** Two mms sharing one anonymous page at A, as after fork. */
function forkedAnon(k: Kernel): {
  mm1: mm_struct;
  mm2: mm_struct;
  v1: vm_area_struct;
  v2: vm_area_struct;
  p: page;
} {
  const mm1 = newMm(k);
  const mm2 = newMm(k);
  const v1 = newVma(mm1, A, 16);
  const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
  k.run(mapNewAnon(v1, A, p));
  const v2 = vm_area_alloc(mm2);
  Object.assign(v2, {
    vm_start: v1.vm_start,
    vm_end: v1.vm_end,
    vm_flags: v1.vm_flags,
    vm_page_prot: v1.vm_page_prot,
  });
  v2.anon_vma = v1.anon_vma;
  vma_link(mm2, v2);
  k.run(shareAnon(v1, v2, A, p));
  return { mm1, mm2, v1, v2, p };
}

/** A page-cache folio of a new file, mapped shared at A in `mms` (one VMA each). */
function sharedFile(k: Kernel, mms: mm_struct[], order = 0, migratable = true) {
  const inode = new_inode({ s_type: 'ext4', s_nowriteback: false }, 'reg', {
    name: 'test_aops',
    migrate_folio: migratable,
  });
  const mapping: address_space = inode.i_mapping;
  const n = 2 ** order;
  const p = alloc_pages(GFP_HIGHUSER_MOVABLE, order)!;
  if (order) prep_compound_page(p, order);
  const f = p as number as folio;
  folio_set_mapping(f, mapping, false);
  folio_set_index(f, 0);
  if (n > 1) folio_ref_add(f, n - 1); // the page cache holds one reference per page
  mapping.i_pages.set(0, f);
  mapping.nrpages += n;
  const vmas: vm_area_struct[] = [];
  for (const mm of mms) {
    const vma = newVma(mm, A, 512, true);
    vma.vm_file = { f_mapping: mapping } as never;
    mapping.i_mmap.add(vma);
    vmas.push(vma);
    k.run(
      (function* () {
        for (let i = 0; i < n; i++) {
          const pte = yield* ptep(mm, A + i * PAGE_SIZE);
          folio_get(f);
          folio_add_file_rmap_ptes(f, (p + i) as page, 1, vma);
          yield* set_pte_at(mm, A + i * PAGE_SIZE, pte, pfn_pte(p + i, vma.vm_page_prot));
          mm.rss_stat[MM_FILEPAGES]!++;
        }
      })(),
    );
  }
  return { mapping, f, vmas };
}

function isolate(f: folio): folio[] {
  expect(folio_isolate_lru(f)).toBe(true);
  return [f];
}

describe('migrate_pages', () => {
  for (const v of ['5.10', '6.1', '6.12', '6.18']) {
    it(`R-REV-5 (${v}): an anon folio shared by two processes moves; both PTEs name the new frame, contents equal, the old frame is free at once`, () => {
      const k = boot(v);
      const { mm1, mm2, p } = forkedAnon(k);
      const data = fill(p, 0xab);
      const list = isolate(p as number as folio);
      const ok = { value: 0 };
      const rc = k.run(
        migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL, ok),
      );
      expect(rc).toBe(0);
      expect(ok.value).toBe(1);
      expect(list).toEqual([]);
      const n1 = pte_pfn(pteAt(mm1, A));
      const n2 = pte_pfn(pteAt(mm2, A));
      expect(n1).not.toBe(p);
      expect(n2).toBe(n1);
      expect(pte_present(pteAt(mm1, A))).toBe(true);
      // Read-only after fork, still read-only: the entries were readable (not exclusive).
      expect(pte_write(pteAt(mm1, A))).toBe(false);
      expect(phys_read(n1 * PAGE_SIZE, PAGE_SIZE)).toEqual(data);
      const nf = n1 as folio;
      expect(folio_test_anon(nf)).toBe(true);
      expect(folio_ref_count(nf)).toBe(2); // one per mapping
      expect(page_mapcount(n1 as page)).toBe(2);
      expect(page_is_free(p)).toBe(true);
      expect(page_ref_count(p)).toBe(0);
      // RSS unchanged.
      expect(mm1.rss_stat[MM_ANONPAGES]).toBe(1);
      expect(mm2.rss_stat[MM_ANONPAGES]).toBe(1);
    });
  }

  it('R-REV-5: an exclusive writable anon folio keeps its write bit and PageAnonExclusive on the new frame', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    fill(p, 1);
    const list = isolate(p as number as folio);
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL)),
    ).toBe(0);
    const pte = pteAt(mm, A);
    const np = pte_pfn(pte) as page;
    expect(np).not.toBe(p);
    expect(pte_write(pte)).toBe(true);
    expect(pte_dirty(pte)).toBe(true); // v6.1+: the entry remembers dirty
    expect(PageAnonExclusive(np)).toBe(true);
    expect(page_ref_count(np)).toBe(1);
  });

  it('R-REV-5: a page-cache folio mapped shared in two processes moves; i_pages and both PTEs name the new frame', () => {
    const k = boot('6.12');
    const mm1 = newMm(k);
    const mm2 = newMm(k);
    const { mapping, f } = sharedFile(k, [mm1, mm2]);
    const data = fill(f, 0x33);
    expect(folio_ref_count(f)).toBe(3); // cache + 2 mappings
    const list = isolate(f);
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL)),
    ).toBe(0);
    const nf = pte_pfn(pteAt(mm1, A)) as folio;
    expect(nf).not.toBe(f);
    expect(pte_pfn(pteAt(mm2, A))).toBe(nf);
    expect(mapping.i_pages.get(0)).toBe(nf);
    expect(folio_ref_count(nf)).toBe(3);
    expect(folio_mapcount(nf)).toBe(2);
    expect(phys_read(nf * PAGE_SIZE, PAGE_SIZE)).toEqual(data);
    expect(page_is_free(f)).toBe(true);
    expect(mm1.rss_stat[MM_FILEPAGES]).toBe(1);
  });

  it('R-REV-5: an order-9 page-cache folio mapped by 512 PTEs moves as one folio', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const { mapping, f } = sharedFile(k, [mm], 9);
    fill(f + 300, 0x77);
    const list = isolate(f);
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL)),
    ).toBe(0);
    const nf = pte_pfn(pteAt(mm, A)) as folio;
    expect(nf % 512).toBe(0);
    expect(pte_pfn(pteAt(mm, A + 300 * PAGE_SIZE))).toBe(nf + 300);
    expect(phys_read((nf + 300) * PAGE_SIZE, PAGE_SIZE)).toEqual(
      phys_read((f + 300) * PAGE_SIZE, PAGE_SIZE),
    );
    expect(mapping.i_pages.get(0)).toBe(nf);
    expect(folio_ref_count(nf)).toBe(512 + 512);
    expect(page_is_free(f + 511)).toBe(true);
  });

  it('R-REV-5: an order-9 anon folio mapped by a PMD moves through a PMD migration entry', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 512);
    expect(anon_vma_prepare(vma)).toBe(0);
    const p = alloc_pages(GFP_HIGHUSER_MOVABLE, 9)!;
    prep_compound_page(p, 9);
    const f = p as number as folio;
    fill(p + 7, 0x42);
    k.run(
      (function* () {
        const pud = (yield* pud_alloc(mm, pgd_offset(mm, A), A))!;
        const pmd = (yield* pmd_alloc(mm, pud, A))!;
        folio_add_new_anon_rmap(f, vma, A, RMAP_EXCLUSIVE, true);
        yield* set_pmd_at(
          mm,
          A,
          pmd,
          pte_mkhuge(pte_mkdirty(pte_mkwrite(pfn_pte(p, vma.vm_page_prot)))),
        );
      })(),
    );
    expect(folio_mapcount(f)).toBe(1);
    const list = isolate(f);
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_SYSCALL)),
    ).toBe(0);
    const l = walkToLeaf(mm, A)!;
    expect(l.level).toBe('pmd');
    const nf = pte_pfn(ptep_get(l.ptr)) as folio;
    expect(nf).not.toBe(f);
    expect(pte_write(ptep_get(l.ptr))).toBe(true);
    expect(phys_read((nf + 7) * PAGE_SIZE, PAGE_SIZE)).toEqual(
      phys_read((p + 7) * PAGE_SIZE, PAGE_SIZE),
    );
    expect(folio_mapcount(nf)).toBe(1);
    expect(PageAnonExclusive(nf as number as page)).toBe(true);
    expect(page_is_free(p)).toBe(true);
  });

  for (const [v, attempts] of [
    ['5.10', 10],
    ['6.12', 2],
  ] as const) {
    it(`R-GUP-8 (${v}): a folio with one extra reference is not migrated, stays mapped, and is retried (${attempts} unmap rounds) before migrate_pages reports it`, () => {
      const k = boot(v);
      const { mm1, mm2, p } = forkedAnon(k);
      const f = p as number as folio;
      folio_get(f); // an extra reference (a FOLL_GET user)
      const data = fill(p, 9);
      const list = isolate(f);
      const before = notifierLog().length;
      const rc = k.run(
        migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_CONTIG_RANGE),
      );
      expect(rc).toBe(1);
      expect(list).toEqual([f]);
      expect(pte_pfn(pteAt(mm1, A))).toBe(p);
      expect(pte_pfn(pteAt(mm2, A))).toBe(p);
      expect(pte_present(pteAt(mm1, A))).toBe(true);
      expect(phys_read(p * PAGE_SIZE, PAGE_SIZE)).toEqual(data);
      // Each attempt unmapped both mappings (CLEAR ranges in both mms) and restored them.
      const starts = notifierLog()
        .slice(before)
        .filter((e) => e.phase === 'start');
      expect(starts.length).toBe(2 * attempts);
      const fail = migrate_failure(f)!;
      expect(fail.rc).toBe(-11);
      expect(fail.refcount).toBe(fail.expected + 1);
      // Isolation reference + 2 mappings + the extra one.
      expect(folio_ref_count(f)).toBe(4);
      k.run(putback_movable_pages(list));
      expect(folio_ref_count(f)).toBe(3);
      expect(folioIsolated(f)).toBe(false);
    });
  }

  it('R-GUP-8, R-GUP-5: a pinned exclusive anon folio (+GUP_PIN_COUNTING_BIAS) keeps its PTE: try_to_migrate refuses to unmap it', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const f = p as number as folio;
    folio_ref_add(f, 1024); // FOLL_PIN of a small folio
    const list = isolate(f);
    const before = notifierLog().length;
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_LONGTERM_PIN)),
    ).toBe(1);
    expect(list).toEqual([f]);
    expect(pte_pfn(pteAt(mm, A))).toBe(p);
    expect(pte_write(pteAt(mm, A))).toBe(true);
    expect(PageAnonExclusive(p)).toBe(true); // never shared
    expect(migrate_failure(f)!.maybe_dma_pinned).toBe(true);
    expect(migrate_failure(f)!.reason).toMatch(/DMA-pinned/);
    // Every attempt still fired a CLEAR range around the refused unmap.
    const ev = notifierLog().slice(before);
    expect(ev.every((e) => e.event === 'MMU_NOTIFY_CLEAR')).toBe(true);
    k.run(putback_movable_pages(list));
  });

  it('R-GUP-8 (5.15, before PG_anon_exclusive): the pinned folio is unmapped, then fails the refcount check and is restored', () => {
    const k = boot('5.15');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const f = p as number as folio;
    folio_ref_add(f, 1024);
    const list = isolate(f);
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_SYNC, MR_CONTIG_RANGE)),
    ).toBe(1);
    expect(pte_pfn(pteAt(mm, A))).toBe(p);
    expect(pte_write(pteAt(mm, A))).toBe(true);
    expect(migrate_failure(f)!.reason).toMatch(/extra references/);
    // Checked while unmapped: the isolation reference and the pin.
    expect(migrate_failure(f)!.refcount).toBe(1 + 1024);
    expect(migrate_failure(f)!.expected).toBe(1);
  });

  it('returns -ENOMEM when no destination can be allocated, leaving the folio mapped', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const list = isolate(p as number as folio);
    expect(k.run(migrate_pages(list, () => null, null, mtc, MIGRATE_SYNC, MR_SYSCALL))).toBe(-12);
    expect(list).toEqual([p]);
    expect(pte_pfn(pteAt(mm, A))).toBe(p);
  });

  it('MIGRATE_ASYNC runs one batch of NR_MAX_MIGRATE_PAGES_RETRY passes', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    folio_get(p as number as folio);
    const list = isolate(p as number as folio);
    const before = notifierLog().length;
    expect(
      k.run(migrate_pages(list, alloc_migration_target, null, mtc, MIGRATE_ASYNC, MR_SYSCALL)),
    ).toBe(1);
    // One unmap (the move step retried 10 times on the unmapped folio), one CLEAR range.
    expect(
      notifierLog()
        .slice(before)
        .filter((e) => e.phase === 'start').length,
    ).toBe(1);
    expect(pte_pfn(pteAt(mm, A))).toBe(p);
  });
});

describe('try_to_migrate', () => {
  it('R-MMUN-2: replaces each mapping by a migration entry inside an MMU_NOTIFY_CLEAR range per mm; RSS unchanged', () => {
    const k = boot('6.12');
    const { mm1, mm2, p } = forkedAnon(k);
    const f = p as number as folio;
    const before = notifierLog().length;
    isolate(f); // the caller's reference keeps the folio alive while unmapped
    __folio_set_locked(f);
    k.run(try_to_migrate(f, 0));
    const e1 = pteAt(mm1, A);
    expect(pte_present(e1)).toBe(false);
    expect(is_migration_entry(e1)).toBe(true);
    expect(swp_offset_pfn(e1)).toBe(p);
    // v6.1+: the young and dirty bits ride above the pfn in the offset (SWP_MIG_YOUNG/DIRTY).
    expect(swp_offset(e1)).toBe(p + SWP_MIG_YOUNG + SWP_MIG_DIRTY);
    expect(is_migration_entry(pteAt(mm2, A))).toBe(true);
    expect(folio_mapcount(f)).toBe(0);
    expect(folio_ref_count(f)).toBe(1); // only the isolation reference is left
    expect(mm1.rss_stat[MM_ANONPAGES]).toBe(1);
    const ev = notifierLog().slice(before);
    expect(
      ev.map((e) => `${e.phase}:${e.event}:${e.mm}:${e.start.toString(16)}-${e.end.toString(16)}`),
    ).toEqual([
      `start:MMU_NOTIFY_CLEAR:${mm1.id}:7f0000000000-7f0000001000`,
      `end:MMU_NOTIFY_CLEAR:${mm1.id}:7f0000000000-7f0000001000`,
      `start:MMU_NOTIFY_CLEAR:${mm2.id}:7f0000000000-7f0000001000`,
      `end:MMU_NOTIFY_CLEAR:${mm2.id}:7f0000000000-7f0000001000`,
    ]);
    expect(ev.some((e) => e.event === 'MMU_NOTIFY_MIGRATE')).toBe(false);
    __folio_clear_locked(f);
  });

  it('a writable exclusive PTE becomes a writable migration entry; a read-only exclusive one a readable-exclusive entry', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p1 = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    const p2 = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p1));
    k.run(mapNewAnon(vma, A + PAGE_SIZE, p2));
    isolate(p1 as number as folio);
    isolate(p2 as number as folio);
    k.run(
      (function* () {
        const pte = yield* ptep(mm, A + PAGE_SIZE);
        yield* set_pte_at(mm, A + PAGE_SIZE, pte, pte_wrprotect(ptep_get(pte)));
      })(),
    );
    k.run(try_to_migrate(p1 as number as folio, 0));
    k.run(try_to_migrate(p2 as number as folio, 0));
    expect(is_writable_migration_entry(pteAt(mm, A))).toBe(true);
    expect(is_readable_exclusive_migration_entry(pteAt(mm, A + PAGE_SIZE))).toBe(true);
    expect(PageAnonExclusive(p1)).toBe(false); // the entry remembers exclusivity
  });
});

describe('remove_migration_ptes', () => {
  it('restores the mappings of an unmapped folio (src == dst): the PTE, rmap, reference and exclusivity come back', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const f = p as number as folio;
    const orig = pteAt(mm, A);
    isolate(f);
    k.run(try_to_migrate(f, 0));
    expect(folio_ref_count(f)).toBe(1);
    k.run(remove_migration_ptes(f, f, false));
    const pte = pteAt(mm, A);
    expect(pte_pfn(pte)).toBe(p);
    expect(pte_write(pte)).toBe(pte_write(orig));
    expect(page_mapcount(p)).toBe(1);
    expect(folio_ref_count(f)).toBe(2);
    expect(PageAnonExclusive(p)).toBe(true);
  });

  it('before v6.1 the restored PTE is old and clean (no young/dirty bits in migration entries)', () => {
    const k = boot('5.15');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    isolate(p as number as folio);
    k.run(try_to_migrate(p as number as folio, 0));
    k.run(remove_migration_ptes(p as number as folio, p as number as folio, false));
    expect(pte_dirty(pteAt(mm, A))).toBe(false);
    expect(pte_write(pteAt(mm, A))).toBe(true);
  });
});

describe('migration_entry_wait', () => {
  it('a fault that finds a migration entry waits until the folio is unlocked', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const f = p as number as folio;
    isolate(f);
    __folio_set_locked(f); // migrate_folio_unmap holds the folio lock
    k.run(try_to_migrate(f, 0));
    const pgd = pgd_offset(mm, A);
    const pmdp = {
      t: pgd.t.children![pgd.i]!.children![Math.floor(A / 2 ** 30) % 512]!,
      i: Math.floor(A / 2 ** 21) % 512,
    };
    const r = k.runner();
    r.spawn('fault', migration_entry_wait(mm, pmdp, A));
    const res = r.run();
    expect(res.status).toBe('deadlock');
    expect(res.blocked[0]!.what).toBe('migration_entry_wait_on_locked');
    __folio_clear_locked(f);
    expect(r.run().status).toBe('done');
    expect(folio_test_locked(f)).toBe(false);
  });
});

describe('folio_expected_refs', () => {
  it('is 1 for anonymous folios and 1 + nr_pages for page-cache folios', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const { mapping, f } = sharedFile(k, [mm], 9);
    expect(folio_expected_refs(null, f)).toBe(1);
    expect(folio_expected_refs(mapping, f)).toBe(513);
  });
});

describe('folio_isolate_lru', () => {
  it('takes a reference once; a second isolation fails; putback drops it', () => {
    const k = boot('6.12');
    const mm = newMm(k);
    const vma = newVma(mm, A, 4);
    const p = alloc_page(GFP_HIGHUSER_MOVABLE)!;
    k.run(mapNewAnon(vma, A, p));
    const f = p as number as folio;
    expect(folio_isolate_lru(f)).toBe(true);
    expect(folio_ref_count(f)).toBe(2);
    expect(folio_isolate_lru(f)).toBe(false);
    k.run(putback_movable_pages([f]));
    expect(folio_ref_count(f)).toBe(1);
  });
});
