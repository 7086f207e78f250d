/**
 * Tests of fork()'s memory side (kernel/fork.c:dup_mmap, dup_mm, copy_mm, mmput) and of
 * exit_mm. Rules: kernel-spec.md §9 R-FORK-1 (and the fork → exit round trip).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from './kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import {
  copy_mm,
  create_user_task,
  CLONE_VM,
  dup_mmap,
  exit_mm,
  fork_task,
  mm_alloc,
} from './fork.js';
import type { task_struct } from '../include/linux/sched.js';
import type {
  file,
  folio,
  mm_struct,
  page,
  vm_area_struct,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { MMF_HAS_PINNED, MM_ANONPAGES, MM_FILEPAGES } from '../include/linux/mm_types.js';
import {
  GUP_PIN_COUNTING_BIAS,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_LOCKED,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WIPEONFORK,
  VM_WRITE,
  get_mm_counter,
  inc_mm_counter,
  mm_flags_set,
} from '../include/linux/mm.js';
import { folio_set_index, folio_set_mapping, page_mapcount } from '../include/linux/page-flags.js';
import { folio_get, folio_ref_add, page_ref_count } from '../include/linux/page_ref.js';
import {
  pgd_offset,
  pmd_alloc,
  pte_alloc,
  pte_offset_map_lock,
  pte_unmap_unlock,
  pud_alloc,
  ptep_get,
  set_pte_at,
  walkToPte,
} from '../include/linux/pgtable.js';
import { pte_mkspecial } from '../arch/x86/include/asm/pgtable.js';
import {
  pfn_pte,
  pte_mkdirty,
  pte_mkwrite,
  pte_mkyoung,
  pte_pfn,
  pte_write,
  type pteval_t,
} from '../arch/x86/include/asm/pgtable_types.js';
import {
  anon_vma_prepare,
  folio_add_file_rmap_ptes,
  folio_add_new_anon_rmap,
  RMAP_EXCLUSIVE,
} from '../mm/rmap.js';
import { alloc_page, page_is_free, __GFP_ZERO, GFP_HIGHUSER_MOVABLE } from '../mm/page_alloc.js';
import { get_file, vm_area_alloc, vma_lookup, vma_link } from '../mm/vma.js';
import { vm_get_page_prot } from '../mm/mmap.js';
import { notifierLog } from '../mm/mmu_notifier.js';
import { alloc_file, new_inode, O_RDWR } from '../fs/inode.js';
import { dmesg } from './printk.js';
import { Refcount, type Op } from '../../sched/index.js';

const MiB = 2 ** 20;
const BAR_START = 0xc0000000; // pfns 0xc0000.. have no struct page

function boot(version: string): Kernel {
  const k = new Kernel({ version });
  start_kernel(k, {
    map: [
      ...x86_64_e820(2 ** 32),
      { start: BAR_START, end: BAR_START + MiB, kind: 'mmio', name: 'test BAR' },
    ],
  });
  return k;
}

const RW_PRIVATE = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
const RW_SHARED = RW_PRIVATE | VM_SHARED | VM_MAYSHARE;
const PFNMAP_FLAGS = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;

function makeVma(
  mm: mm_struct,
  start: number,
  end: number,
  flags: bigint,
  opts: { file?: file; ops?: vm_operations_struct; anon?: boolean; pgoff?: number } = {},
): vm_area_struct {
  const vma = vm_area_alloc(mm);
  vma.vm_start = start;
  vma.vm_end = end;
  vma.vm_flags = flags;
  vma.vm_page_prot = vm_get_page_prot(flags);
  vma.vm_pgoff = opts.pgoff ?? start / 4096;
  vma.vm_ops = opts.ops ?? null;
  if (opts.file) vma.vm_file = get_file(opts.file);
  vma_link(mm, vma);
  if (opts.anon) expect(anon_vma_prepare(vma)).toBe(0);
  return vma;
}

function* installPte(mm: mm_struct, addr: number, v: pteval_t): Op<void> {
  const pudp = yield* pud_alloc(mm, pgd_offset(mm, addr), addr);
  const pmdp = yield* pmd_alloc(mm, pudp!, addr);
  expect(yield* pte_alloc(mm, pmdp!)).toBe(false);
  const [ptep, ptl] = (yield* pte_offset_map_lock(mm, pmdp!, addr))!;
  yield* set_pte_at(mm, addr, ptep, v);
  yield* pte_unmap_unlock(ptep, ptl);
}

/** An anonymous page faulted in for write (exclusive, dirty, writable). */
function mapAnon(k: Kernel, vma: vm_area_struct, addr: number): number {
  const p = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_ZERO)! as number;
  folio_add_new_anon_rmap(p as folio, vma, addr, RMAP_EXCLUSIVE);
  inc_mm_counter(vma.vm_mm, MM_ANONPAGES);
  let pte = pte_mkyoung(pte_mkdirty(pfn_pte(p, vma.vm_page_prot)));
  if (vma.vm_flags & VM_WRITE) pte = pte_mkwrite(pte);
  k.run(installPte(vma.vm_mm, addr, pte));
  return p;
}

function mapSpecial(k: Kernel, vma: vm_area_struct, addr: number, pfn: number) {
  k.run(installPte(vma.vm_mm, addr, pte_mkspecial(pte_mkwrite(pfn_pte(pfn, vma.vm_page_prot)))));
}

function pteAt(mm: mm_struct, addr: number): pteval_t {
  const p = walkToPte(mm, addr);
  return p ? ptep_get(p) : 0;
}

function fork(k: Kernel, parent: task_struct): task_struct {
  const child = k.run(fork_task(parent));
  if (typeof child === 'number') throw new Error(`fork failed: ${child}`);
  return child;
}

function regFile(): file {
  const inode = new_inode({ s_type: 'ext4', s_nowriteback: false }, 'reg');
  inode.i_size = 16 * MiB;
  return alloc_file('/data', O_RDWR, inode, { name: 'ext4_file_operations' });
}

describe('dup_mmap', () => {
  it('R-FORK-1: a VM_DONTCOPY VMA leaves a hole in the child', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const a = makeVma(parent.mm!, 0x10000000, 0x10002000, RW_PRIVATE, { anon: true });
    const b = makeVma(parent.mm!, 0x20000000, 0x20004000, RW_PRIVATE | VM_DONTCOPY, {
      anon: true,
    });
    makeVma(parent.mm!, 0x30000000, 0x30001000, RW_PRIVATE, { anon: true });
    mapAnon(k, a, 0x10000000);
    const pb = mapAnon(k, b, 0x20001000);
    const child = fork(k, parent);
    const cm = child.mm!;
    expect(cm.mmap.map((v) => [v.vm_start, v.vm_end])).toEqual([
      [0x10000000, 0x10002000],
      [0x30000000, 0x30001000],
    ]);
    expect(vma_lookup(cm, 0x20001000)).toBeNull();
    expect(walkToPte(cm, 0x20001000)).toBeNull();
    expect(page_mapcount(pb as page)).toBe(1);
    expect(pte_write(pteAt(parent.mm!, 0x20001000))).toBe(true);
    expect(cm.total_vm).toBe(3);
  });

  it('R-FORK-1: a VM_WIPEONFORK VMA is an empty VMA in the child', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const w = makeVma(parent.mm!, 0x40000000, 0x40002000, RW_PRIVATE | VM_WIPEONFORK, {
      anon: true,
    });
    const p = mapAnon(k, w, 0x40000000);
    notifierLog().length = 0;
    const child = fork(k, parent);
    const cw = vma_lookup(child.mm!, 0x40000000)!;
    expect([cw.vm_start, cw.vm_end]).toEqual([0x40000000, 0x40002000]);
    expect(cw.vm_flags & VM_WIPEONFORK).toBe(VM_WIPEONFORK);
    expect(cw.anon_vma).toBeNull();
    expect(pteAt(child.mm!, 0x40000000)).toBe(0);
    // Nothing was shared: the parent keeps its exclusive, writable page.
    expect(page_mapcount(p as page)).toBe(1);
    expect(page_ref_count(p as page)).toBe(1);
    expect(pte_write(pteAt(parent.mm!, 0x40000000))).toBe(true);
    expect(w.anon_vma!.vmas.has(cw)).toBe(false);
    expect(notifierLog().filter((e) => e.event === 'MMU_NOTIFY_PROTECTION_PAGE')).toEqual([]);
  });

  it('the child VMA loses VM_LOCKED and shares the file (i_mmap, f_count)', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const f = regFile();
    makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE | VM_LOCKED, { anon: true });
    makeVma(parent.mm!, 0x20000000, 0x20001000, RW_SHARED, { file: f, pgoff: 0 });
    const count = f.f_count;
    const child = fork(k, parent);
    expect(child.mm!.mmap[0]!.vm_flags & VM_LOCKED).toBe(0n);
    const cf = vma_lookup(child.mm!, 0x20000000)!;
    expect(cf.vm_file).toBe(f);
    expect(f.f_count).toBe(count + 1);
    expect(f.f_mapping.i_mmap.has(cf)).toBe(true);
    expect(f.f_mapping.i_mmap_rwsem.isLocked()).toBe(false);
  });

  it('35e351780fa9 (v6.9): vm_ops->open runs before the copy on 6.12, after it on 6.6', () => {
    for (const [v, seenPfn] of [
      ['6.6', 0xc0001],
      ['6.12', 0],
    ] as const) {
      const k = boot(v);
      const parent = create_user_task('p');
      const seen: number[] = [];
      const ops: vm_operations_struct = {
        name: 'test_vm_ops',
        open: (vma) => {
          seen.push(pte_pfn(pteAt(vma.vm_mm, vma.vm_start)));
        },
      };
      const vma = makeVma(parent.mm!, 0x10000000, 0x10001000, RW_SHARED | PFNMAP_FLAGS, { ops });
      mapSpecial(k, vma, 0x10000000, 0xc0001);
      const child = fork(k, parent);
      expect(seen).toEqual([seenPfn]);
      expect(pte_pfn(pteAt(child.mm!, 0x10000000))).toBe(0xc0001);
    }
  });

  it('takes the parent mmap_lock for write, then the child one, and releases child first', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE, { anon: true });
    const r = k.runner();
    r.spawn('forker', fork_task(parent));
    expect(r.run().status).toBe('done');
    const child = r.threads[0]!.result as task_struct;
    const lockSteps = r.trace
      .filter((s) => s.obj.endsWith('.mmap_lock'))
      .map((s) => `${s.kind}:${s.obj}${s.shared ? ':r' : ''}`);
    const pm = `mm${parent.mm!.id}.mmap_lock`;
    const cm = `mm${child.mm!.id}.mmap_lock`;
    expect(lockSteps).toEqual([`acquire:${pm}`, `acquire:${cm}`, `release:${cm}`, `release:${pm}`]);
  });

  it('a fatal signal stops dup_mmap with -EINTR, and fork reports -ENOMEM (copy_mm)', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const a = makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, a, 0x10000000);
    parent.fatal_signal = true;
    const mm = mm_alloc()!;
    mm.owner = parent;
    expect(k.run(dup_mmap(mm, parent.mm!))).toBe(-4);
    expect(mm.mmap).toEqual([]);
    expect(k.run(fork_task(parent))).toBe(-12);
    expect(page_mapcount(p as page)).toBe(1);
    expect(parent.mm!.mmap_lock.isLocked()).toBe(false);
  });

  it('f8e97613fed2 (v6.16): 6.18 shares the pfnmap_track_ctx by kref; at REFCOUNT_MAX the fork fails with -ENOMEM', () => {
    const k = boot('6.18');
    const parent = create_user_task('p');
    const a = makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, a, 0x10000000);
    const vma = makeVma(parent.mm!, 0x20000000, 0x20001000, RW_SHARED | PFNMAP_FLAGS);
    const ctx = { pfn: 0xc0000, size: 4096, kref: 1 };
    vma.pfnmap_track_ctx = ctx;
    mapSpecial(k, vma, 0x20000000, 0xc0000);
    const child = fork(k, parent);
    expect(vma_lookup(child.mm!, 0x20000000)!.pfnmap_track_ctx).toBe(ctx);
    expect(ctx.kref).toBe(2);

    ctx.kref = Refcount.REFCOUNT_MAX;
    const refs = page_ref_count(p as page);
    expect(k.run(fork_task(parent))).toBe(-12);
    expect(ctx.kref).toBe(Refcount.REFCOUNT_MAX);
    // The half-built child was torn down: the anon page it had shared is back to the
    // parent's references and mapping.
    expect(page_ref_count(p as page)).toBe(refs);
    expect(page_mapcount(p as page)).toBe(2); // the first child still maps it
  });
});

describe('copy_mm', () => {
  it('CLONE_VM shares the mm: one more user, no copy; exit of one user leaves it intact', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const a = makeVma(parent.mm!, 0x10000000, 0x10001000, RW_PRIVATE, { anon: true });
    const p = mapAnon(k, a, 0x10000000);
    const thread = { ...parent, pid: 4242, mm: null } as task_struct;
    expect(k.run(copy_mm(CLONE_VM, thread, parent))).toBe(0);
    expect(thread.mm).toBe(parent.mm);
    expect(parent.mm!.mm_users).toBe(2);
    k.run(exit_mm(thread));
    expect(parent.mm!.mm_users).toBe(1);
    expect(pte_pfn(pteAt(parent.mm!, 0x10000000))).toBe(p);
    expect(page_ref_count(p as page)).toBe(1);
  });
});

describe('exit_mm', () => {
  it('fork then exit of the child frees everything the child owned; the parent keeps its references', () => {
    const k = boot('6.12');
    const parent = create_user_task('p');
    const pm = parent.mm!;
    const f = regFile();
    // 0x10000000: anon page shared by COW; 0x10001000: maybe-pinned anon page (O-9)
    const anon = makeVma(pm, 0x10000000, 0x10002000, RW_PRIVATE, { anon: true });
    const shared = mapAnon(k, anon, 0x10000000);
    const pinned = mapAnon(k, anon, 0x10001000);
    folio_ref_add(pinned as folio, GUP_PIN_COUNTING_BIAS);
    mm_flags_set(MMF_HAS_PINNED, pm);
    // 0x20000000: BAR pfn 0xc0005 in a shared PFNMAP
    const bar = makeVma(pm, 0x20000000, 0x20001000, RW_SHARED | PFNMAP_FLAGS);
    mapSpecial(k, bar, 0x20000000, 0xc0005);
    // 0x30000000: page-cache page of a private file mapping with an anon_vma
    const fv = makeVma(pm, 0x30000000, 0x30001000, RW_PRIVATE, { file: f, pgoff: 0, anon: true });
    const pc = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_ZERO)! as number;
    folio_set_mapping(pc as folio, f.f_mapping, false);
    folio_set_index(pc as folio, 0);
    f.f_mapping.i_pages.set(0, pc as folio);
    folio_get(pc as folio);
    folio_add_file_rmap_ptes(pc as folio, pc as page, 1, fv);
    inc_mm_counter(pm, MM_FILEPAGES);
    k.run(installPte(pm, 0x30000000, pfn_pte(pc, fv.vm_page_prot)));
    const fcount = f.f_count;
    const logStart = k.log.length;

    const child = fork(k, parent);
    const cm = child.mm!;
    const copy = pte_pfn(pteAt(cm, 0x10001000));
    expect(copy).not.toBe(pinned);
    expect(page_ref_count(shared as page)).toBe(2);
    expect(page_ref_count(pc as page)).toBe(3);
    expect(get_mm_counter(cm, MM_ANONPAGES)).toBe(2);
    expect(get_mm_counter(cm, MM_FILEPAGES)).toBe(1);
    expect(cm.pgtables_bytes).toBeGreaterThan(0);

    k.run(exit_mm(child));
    expect(child.mm).toBeNull();
    expect(page_is_free(copy)).toBe(true);
    expect(page_ref_count(shared as page)).toBe(1);
    expect(page_mapcount(shared as page)).toBe(1);
    expect(page_ref_count(pinned as page)).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expect(page_ref_count(pc as page)).toBe(2);
    expect(page_mapcount(pc as page)).toBe(1);
    expect(cm.pgtables_bytes).toBe(0);
    expect(cm.mmap).toEqual([]);
    expect(f.f_count).toBe(fcount);
    expect(f.f_mapping.i_mmap.size).toBe(1);
    expect(anon.anon_vma!.vmas.size).toBe(1);
    expect(dmesg(k.log.slice(logStart))).not.toMatch(
      /Bad rss-counter|non-zero pgtables_bytes|Bad page/,
    );
    // The parent's mappings are untouched (the shared page is still write-protected
    // until the parent writes and reuses it).
    expect(pte_pfn(pteAt(pm, 0x10000000))).toBe(shared);
    expect(pte_pfn(pteAt(pm, 0x10001000))).toBe(pinned);
    expect(pte_pfn(pteAt(pm, 0x20000000))).toBe(0xc0005);
    expect(get_mm_counter(pm, MM_ANONPAGES)).toBe(2);
  });
});
