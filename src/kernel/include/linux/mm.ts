/**
 * VM_* flags, FOLL_* and VM_FAULT_* codes, and the VMA helpers of include/linux/mm.h.
 * vm_flags are 64-bit and held as bigint, so `vma.vm_flags & VM_PFNMAP` reads as in C.
 *
 * @kernel include/linux/mm.h (all versions; high bits as of v6.12+)
 */
import type { vm_area_struct, mm_struct, folio } from './mm_types.js';
import { MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES } from './mm_types.js';
import { folio_test_anon, folio_test_swapbacked } from './page-flags.js';

export const VM_NONE = 0x0n;
export const VM_READ = 0x1n;
export const VM_WRITE = 0x2n;
export const VM_EXEC = 0x4n;
export const VM_SHARED = 0x8n;
export const VM_MAYREAD = 0x10n;
export const VM_MAYWRITE = 0x20n;
export const VM_MAYEXEC = 0x40n;
export const VM_MAYSHARE = 0x80n;
export const VM_GROWSDOWN = 0x100n;
export const VM_UFFD_MISSING = 0x200n;
export const VM_PFNMAP = 0x400n;
export const VM_UFFD_WP = 0x1000n;
export const VM_LOCKED = 0x2000n;
export const VM_IO = 0x4000n;
export const VM_SEQ_READ = 0x8000n;
export const VM_RAND_READ = 0x10000n;
export const VM_DONTCOPY = 0x20000n;
export const VM_DONTEXPAND = 0x40000n;
export const VM_LOCKONFAULT = 0x80000n;
export const VM_ACCOUNT = 0x100000n;
export const VM_NORESERVE = 0x200000n;
export const VM_HUGETLB = 0x400000n;
export const VM_SYNC = 0x800000n;
export const VM_ARCH_1 = 0x1000000n;
/** x86: VM_PAT = VM_ARCH_1, memtype reserved by track_pfn_remap (until the 2025 rework). */
export const VM_PAT = VM_ARCH_1;
export const VM_WIPEONFORK = 0x2000000n;
export const VM_DONTDUMP = 0x4000000n;
export const VM_SOFTDIRTY = 0x8000000n;
export const VM_MIXEDMAP = 0x10000000n;
export const VM_HUGEPAGE = 0x20000000n;
export const VM_NOHUGEPAGE = 0x40000000n;
export const VM_MERGEABLE = 0x80000000n;
/** x86 VM_SHADOW_STACK = VM_HIGH_ARCH_5. */
export const VM_SHADOW_STACK = 1n << 37n;
export const VM_ALLOW_ANY_UNCACHED = 1n << 39n;
export const VM_DROPPABLE = 1n << 40n;
export const VM_UFFD_MINOR = 1n << 41n;
export const VM_SEALED = 1n << 42n;

/** VM_SPECIAL: never merged, never mlocked (mm.h). */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

const VM_FLAG_NAMES: [bigint, string][] = [
  [VM_READ, 'read'],
  [VM_WRITE, 'write'],
  [VM_EXEC, 'exec'],
  [VM_SHARED, 'shared'],
  [VM_MAYREAD, 'mayread'],
  [VM_MAYWRITE, 'maywrite'],
  [VM_MAYEXEC, 'mayexec'],
  [VM_MAYSHARE, 'mayshare'],
  [VM_GROWSDOWN, 'growsdown'],
  [VM_PFNMAP, 'pfnmap'],
  [VM_LOCKED, 'locked'],
  [VM_IO, 'io'],
  [VM_DONTCOPY, 'dontcopy'],
  [VM_DONTEXPAND, 'dontexpand'],
  [VM_ACCOUNT, 'account'],
  [VM_NORESERVE, 'noreserve'],
  [VM_HUGETLB, 'hugetlb'],
  [VM_PAT, 'pat'],
  [VM_WIPEONFORK, 'wipeonfork'],
  [VM_DONTDUMP, 'dontdump'],
  [VM_MIXEDMAP, 'mixedmap'],
  [VM_HUGEPAGE, 'hugepage'],
  [VM_NOHUGEPAGE, 'nohugepage'],
  [VM_SHADOW_STACK, 'shadow_stack'],
  [VM_ALLOW_ANY_UNCACHED, 'allow_any_uncached'],
];

/** "read|write|shared|..." for traces (the tool's own rendering, not a kernel function). */
export function vmFlagNames(f: bigint): string {
  return (
    VM_FLAG_NAMES.filter(([b]) => (f & b) !== 0n)
      .map(([, n]) => n)
      .join('|') || 'none'
  );
}

/** %#lx of vm_flags, as the kernel prints them. */
export function vmFlagsHex(f: bigint): string {
  return `0x${f.toString(16).padStart(8, '0')}`;
}

/**
 * is_cow_mapping(flags): private and may be written, so writes copy.
 * @kernel include/linux/mm.h:is_cow_mapping (all versions)
 * Return: (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE
 */
export function is_cow_mapping(flags: bigint): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/** vma_pages(vma) */
export function vma_pages(vma: vm_area_struct): number {
  return (vma.vm_end - vma.vm_start) / 4096;
}

/** vma_is_anonymous(vma): no vm_ops. */
export function vma_is_anonymous(vma: vm_area_struct): boolean {
  return vma.vm_ops === null;
}

/** linear_page_index(vma, address) */
export function linear_page_index(vma: vm_area_struct, address: number): number {
  return Math.floor((address - vma.vm_start) / 4096) + vma.vm_pgoff;
}

/** vma_is_shared_maywrite(vma) */
export function is_shared_maywrite(flags: bigint): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === (VM_SHARED | VM_MAYWRITE);
}

/** VM_FAULT_* (enum vm_fault_reason). */
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_MAJOR = 0x000004;
export const VM_FAULT_HWPOISON = 0x000010;
export const VM_FAULT_HWPOISON_LARGE = 0x000020;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
export const VM_FAULT_LOCKED = 0x000200;
export const VM_FAULT_RETRY = 0x000400;
export const VM_FAULT_FALLBACK = 0x000800;
export const VM_FAULT_DONE_COW = 0x001000;
export const VM_FAULT_NEEDDSYNC = 0x002000;
export const VM_FAULT_COMPLETED = 0x004000;
export const VM_FAULT_ERROR =
  VM_FAULT_OOM |
  VM_FAULT_SIGBUS |
  VM_FAULT_SIGSEGV |
  VM_FAULT_HWPOISON |
  VM_FAULT_HWPOISON_LARGE |
  VM_FAULT_FALLBACK;

const VM_FAULT_NAMES: [number, string][] = [
  [VM_FAULT_OOM, 'OOM'],
  [VM_FAULT_SIGBUS, 'SIGBUS'],
  [VM_FAULT_MAJOR, 'MAJOR'],
  [VM_FAULT_HWPOISON, 'HWPOISON'],
  [VM_FAULT_SIGSEGV, 'SIGSEGV'],
  [VM_FAULT_NOPAGE, 'NOPAGE'],
  [VM_FAULT_LOCKED, 'LOCKED'],
  [VM_FAULT_RETRY, 'RETRY'],
  [VM_FAULT_FALLBACK, 'FALLBACK'],
  [VM_FAULT_DONE_COW, 'DONE_COW'],
  [VM_FAULT_COMPLETED, 'COMPLETED'],
];

/** "SIGBUS|NOPAGE" for traces; "0" for success. */
export function vmFaultNames(r: number): string {
  return (
    VM_FAULT_NAMES.filter(([b]) => (r & b) !== 0)
      .map(([, n]) => `VM_FAULT_${n}`)
      .join('|') || '0'
  );
}

/** FOLL_* (include/linux/mm_types.h enum, v6.3+ values; internal ones in mm/internal.h). */
export const FOLL_WRITE = 1 << 0;
export const FOLL_GET = 1 << 1;
export const FOLL_DUMP = 1 << 2;
export const FOLL_FORCE = 1 << 3;
export const FOLL_NOWAIT = 1 << 4;
export const FOLL_NOFAULT = 1 << 5;
export const FOLL_HWPOISON = 1 << 6;
export const FOLL_ANON = 1 << 7;
export const FOLL_LONGTERM = 1 << 8;
export const FOLL_SPLIT_PMD = 1 << 9;
export const FOLL_PCI_P2PDMA = 1 << 10;
export const FOLL_INTERRUPTIBLE = 1 << 11;
export const FOLL_HONOR_NUMA_FAULT = 1 << 12;
export const FOLL_TOUCH = 1 << 16;
export const FOLL_TRIED = 1 << 17;
export const FOLL_REMOTE = 1 << 18;
export const FOLL_PIN = 1 << 19;
export const FOLL_FAST_ONLY = 1 << 20;
export const FOLL_UNLOCKABLE = 1 << 21;
export const FOLL_MADV_POPULATE = 1 << 22;

/** add_mm_counter(mm, member, value) */
export function add_mm_counter(mm: mm_struct, member: number, value: number): void {
  mm.rss_stat[member]! += value;
}
export const inc_mm_counter = (mm: mm_struct, member: number): void =>
  add_mm_counter(mm, member, 1);
export const dec_mm_counter = (mm: mm_struct, member: number): void =>
  add_mm_counter(mm, member, -1);
export function get_mm_counter(mm: mm_struct, member: number): number {
  return mm.rss_stat[member]!;
}

/** mm_counter_file(folio): shmem pages count as MM_SHMEMPAGES. */
export function mm_counter_file(f: folio): number {
  return folio_test_swapbacked(f) ? MM_SHMEMPAGES : MM_FILEPAGES;
}

/** mm_counter(folio) */
export function mm_counter(f: folio): number {
  return folio_test_anon(f) ? MM_ANONPAGES : mm_counter_file(f);
}

/** test_bit(MMF_*, &mm->flags) / set_bit */
export function mm_flags_test(bit: number, mm: mm_struct): boolean {
  return (mm.flags & (1 << bit)) !== 0;
}
export function mm_flags_set(bit: number, mm: mm_struct): void {
  mm.flags |= 1 << bit;
}

/**
 * GUP_PIN_COUNTING_BIAS: what one FOLL_PIN adds to the refcount of a small folio, so a
 * refcount of 1024 or more reads as "maybe pinned".
 * @kernel include/linux/mm.h:GUP_PIN_COUNTING_BIAS (v5.7+)
 */
export const GUP_PIN_COUNTING_BIAS = 1024;

/**
 * folio_maybe_dma_pinned(folio): whether the folio may be pinned for DMA (FOLL_PIN). A
 * large folio counts pins in _pincount; a small one in its refcount, biased by
 * GUP_PIN_COUNTING_BIAS per pin, so enough plain references also read as pinned (a false
 * positive the callers accept). The refcount is compared as unsigned, as in the kernel.
 * @kernel include/linux/mm.h:folio_maybe_dma_pinned (v5.16+; page_maybe_dma_pinned
 *   v5.7+, which used the refcount for order-1 compound pages too)
 * Locking: none (a racy read).
 * Return: true when maybe pinned.
 */
export function folio_maybe_dma_pinned(f: folio): boolean {
  if (folio_test_large(f)) return folio_pincount(f) > 0;
  return folio_ref_count(f) >>> 0 >= GUP_PIN_COUNTING_BIAS;
}

// Imports of the two helpers above (kept with them; ES imports are hoisted).
import { folio_pincount, folio_test_large } from './page-flags.js';
import { folio_ref_count } from './page_ref.js';

/*
 * FOLL_* by version (the values above are the v6.3+ enum's; the model uses one numbering
 * for every version, and GUP only honours a flag in the versions that have it):
 * FOLL_FAST_ONLY v5.8+, FOLL_NOFAULT v5.16+, FOLL_INTERRUPTIBLE v6.1+, FOLL_PCI_P2PDMA
 * v6.2+, FOLL_UNLOCKABLE v6.3+, FOLL_HONOR_NUMA_FAULT v6.5+, FOLL_MADV_POPULATE v6.9+; the
 * others exist in every supported version. Gone in later versions: FOLL_NUMA, FOLL_COW,
 * FOLL_MLOCK, FOLL_POPULATE (below).
 *
 * FOLL_* flags of older kernels. Their numbering is the model's own (the kernel's values
 * changed over time and only their distinctness matters here); each existed in the
 * versions noted and the model only sets it there.
 */
/** FOLL_NUMA: honour NUMA hinting (protnone) faults; set by __get_user_pages when !FOLL_FORCE.
 *  Replaced by gup_can_follow_protnone() in v6.2 (474098edac26 "mm/gup: replace FOLL_NUMA by
 *  gup_can_follow_protnone()"); the idea came back as FOLL_HONOR_NUMA_FAULT in v6.5. */
export const FOLL_NUMA = 1 << 23;
/** FOLL_COW: internal "COW has been broken, a dirty R/O PTE may be followed for write".
 *  Removed in v6.0 (5535be309971 "mm/gup: fix FOLL_FORCE COW security issue and remove
 *  FOLL_COW"). */
export const FOLL_COW = 1 << 24;
/** FOLL_MLOCK / FOLL_POPULATE: mlock present pages / populate with VM_LOCKONFAULT. Removed in
 *  v5.18 (b67bf49ce7aa "mm/munlock: delete FOLL_MLOCK and FOLL_POPULATE"). */
export const FOLL_MLOCK = 1 << 25;
export const FOLL_POPULATE = 1 << 26;

/**
 * vm_fault_to_errno(vm_fault, foll_flags): the errno GUP reports for a fault result.
 * @kernel include/linux/mm.h:vm_fault_to_errno (all versions)
 * Return: -ENOMEM (OOM), -EHWPOISON with FOLL_HWPOISON else -EFAULT (hwpoison), -EFAULT
 *   (SIGBUS/SIGSEGV), or 0 (no error the caller can report; GUP then BUG()s).
 */
export function vm_fault_to_errno(vm_fault: number, foll_flags: number): number {
  if (vm_fault & VM_FAULT_OOM) return -12; // -ENOMEM
  if (vm_fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE))
    return foll_flags & FOLL_HWPOISON ? -133 /* -EHWPOISON */ : -14; /* -EFAULT */
  if (vm_fault & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -14; // -EFAULT
  return 0;
}

/**
 * folio_has_pincount(folio): whether FOLL_PIN counts this folio's pins exactly in
 * folio->_pincount (otherwise in its refcount, GUP_PIN_COUNTING_BIAS at a time).
 * v6.6+ (64-bit): every large folio. Before (hpage_pincount_available): compound pages
 * of order > 1 only (the pincount lived in the third struct page). The model has no
 * order-1 folios, so the two rules never differ in a run.
 * @kernel include/linux/mm.h:folio_has_pincount (v6.6+; hpage_pincount_available v5.7+)
 * Return: true when _pincount is used.
 */
export function folio_has_pincount(f: folio): boolean {
  if (since(6, 6)) return folio_test_large(f);
  return folio_test_large(f) && folio_order(f) > 1;
}

/**
 * folio_is_device_coherent(folio): a ZONE_DEVICE MEMORY_DEVICE_COHERENT folio. The model
 * has no ZONE_DEVICE memory model yet: a folio counts as device-coherent when its pfn was
 * registered with {@link mark_device_coherent} (a model hook for the device model to come).
 * @kernel include/linux/memremap.h:folio_is_device_coherent (v6.0+, "mm: add zone device coherent type memory
 *   support")
 */
export function folio_is_device_coherent(f: folio): boolean {
  if (!since(6, 0)) return false;
  const s = currentKernel().sub.device_coherent_pfns as Set<number> | undefined;
  return s?.has(f) ?? false;
}

/** Model hook: marks pfn as device-coherent memory (see folio_is_device_coherent). */
export function mark_device_coherent(pfn: number): void {
  const k = currentKernel();
  const s = (k.sub.device_coherent_pfns as Set<number> | undefined) ?? new Set<number>();
  s.add(pfn);
  k.sub.device_coherent_pfns = s;
}

/**
 * folio_is_longterm_pinnable(folio): may this folio stay pinned indefinitely (FOLL_LONGTERM)?
 * - v5.19+ (1c563432588d "mm: fix is_pinnable_page against a cma page"): not in a
 *   MIGRATE_CMA or MIGRATE_ISOLATE pageblock; then the zero page yes; device-coherent
 *   memory no (v6.0); fsdax no (v6.14; the model has no fsdax folios); else
 *   anything outside ZONE_MOVABLE.
 * - v5.13-v5.18 (is_pinnable_page, d1e153fea2a8 "mm/gup: migrate pinned pages out of
 *   movable zone"): neither ZONE_MOVABLE nor CMA, or the zero pfn.
 * - v5.7-v5.12: only CMA pageblocks were migrated (check_and_migrate_cma_pages), which
 *   this function reports as: not in a CMA pageblock.
 * @kernel include/linux/mm.h:folio_is_longterm_pinnable (v6.2+;
 *   is_longterm_pinnable_page v5.19-v6.1, is_pinnable_page v5.13-v5.18)
 * Return: true when the folio may be long-term pinned where it is.
 */
export function folio_is_longterm_pinnable(f: folio): boolean {
  if (!since(5, 13)) return get_pageblock_migratetype(f) !== MIGRATE_CMA;
  if (!since(5, 19)) {
    return (
      !(page_zonenum(f) === ZONE_MOVABLE || get_pageblock_migratetype(f) === MIGRATE_CMA) ||
      is_zero_pfn(f)
    );
  }
  const mt = get_pageblock_migratetype(f);
  // CMA pages are always movable, and ISOLATE pages might be in the process of being migrated.
  if (mt === MIGRATE_CMA || mt === MIGRATE_ISOLATE) return false;
  // The zero page can be "pinned" but gets special handling.
  if (is_zero_pfn(f)) return true;
  // Coherent device memory must always allow eviction.
  if (folio_is_device_coherent(f)) return false;
  // Otherwise, non-movable zone folios can be pinned.
  return page_zonenum(f) !== ZONE_MOVABLE;
}

// Imports of the helpers above (hoisted, as the ones above them).
import { folio_order } from './page-flags.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { get_pageblock_migratetype, page_zonenum, ZONE_MOVABLE } from '../../mm/page_alloc.js';
import { MIGRATE_CMA, MIGRATE_ISOLATE } from '../../mm/sparse.js';
import { is_zero_pfn } from './pgtable.js';
