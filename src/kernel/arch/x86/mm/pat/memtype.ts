/**
 * x86 PAT memory-type tracking: the memtype reservation tree (an interval tree of
 * physical ranges with their cache mode, arch/x86/mm/pat/memtype_interval.c), the
 * per-page memtype of RAM pages, and the hooks the core mm calls when it maps PFNs:
 *
 * - up to v6.15: track_pfn_remap / untrack_pfn (VM_PAT on the VMA), track_pfn_insert,
 *   track_pfn_copy / untrack_pfn_copy (fork), untrack_pfn_clear;
 * - from f8e97613fed2 "mm: convert VM_PFNMAP tracking to pfnmap_track() +
 *   pfnmap_untrack()" (v6.16, the 2025 rework; first supported version 6.18):
 *   pfnmap_track / pfnmap_untrack (the reservation lives in vma->pfnmap_track_ctx,
 *   mm/memory.c) and pfnmap_setup_cachemode(_pfn).
 *
 * Calling a hook that does not exist in the run's version throws an Error naming the
 * commit that added or removed it.
 *
 * Also here: pfn_modify_allowed (arch/x86/mm/mmap.c, the L1TF check).
 *
 * Model notes:
 * - The PAT MSR is the kernel's full-PAT layout (WB, WC, UC-, UC, WB, WP, UC-, WT).
 * - MTRRs: a WB request is WB when the whole range lies in memory with a memmap (System
 *   RAM or firmware-reserved ranges of the boot map), else UC- (pat_x_mtrr_type; BIOSes
 *   cover the PCI hole with a UC MTRR).
 * - System RAM: the ranges e820__reserve_resources() registers as "System RAM" are read
 *   from the boot map (kind 'ram'); the model's boot does not put them in iomem_resource.
 * - The memtype of RAM pages (PG_arch_1/PG_arch_2 in page->flags) is kept in a per-kernel
 *   map keyed by pfn.
 * - memtype_lock critical sections are atomic in the model (no Steps), as the resource
 *   tree's are in kernel/resource.ts; the tree is touched only under it.
 * - memtype_kernel_map_sync (the kernel identity map's cache attributes) and the
 *   boot-time PAT setup are not modelled; kmalloc of a tree node never fails.
 *
 * @kernel arch/x86/mm/pat/memtype.c, arch/x86/mm/pat/memtype_interval.c (v5.7+)
 */
import type { Op } from '../../../../../sched/index.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import { WARN, WARN_ON_ONCE, VM_WARN_ON_ONCE } from '../../../../kernel/panic.js';
import { pr_err, pr_info, pr_warn } from '../../../../kernel/printk.js';
import { get_current } from '../../../../include/linux/sched.js';
import { since } from '../../../../version.js';
import { EBUSY, EINVAL } from '../../../../include/linux/errno.js';
import type { vm_area_struct } from '../../../../include/linux/mm_types.js';
import { VM_PAT, is_cow_mapping } from '../../../../include/linux/mm.js';
import {
  _PAGE_CACHE_MASK,
  _PAGE_PAT,
  _PAGE_PCD,
  _PAGE_PRESENT,
  _PAGE_PWT,
  PAGE_SIZE,
  type pgprot_t,
} from '../../include/asm/pgtable_types.js';
import { memmap, pfn_valid } from '../../../../mm/sparse.js';
import {
  __vm_flags_mod,
  follow_phys as mm_follow_phys,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  pfn_t_to_pfn,
  vm_flags_clear,
  vm_flags_set,
  type pfn_t,
} from '../../../../mm/memory.pfnmap.js';

/* enum page_cache_mode (arch/x86/include/asm/pgtable_types.h) */
export const _PAGE_CACHE_MODE_WB = 0;
export const _PAGE_CACHE_MODE_WC = 1;
export const _PAGE_CACHE_MODE_UC_MINUS = 2;
export const _PAGE_CACHE_MODE_UC = 3;
export const _PAGE_CACHE_MODE_WT = 4;
export const _PAGE_CACHE_MODE_WP = 5;
export type page_cache_mode = number;

/** A `pgprot_t *` argument: the callee may rewrite the cache-mode bits of `pgprot`. */
export interface pgprot_ptr {
  pgprot: pgprot_t;
}

/** An `enum page_cache_mode *` out argument. */
export interface page_cache_mode_ptr {
  pcm: page_cache_mode;
}

/** struct memtype: one reservation [start, end) with its cache mode. */
export interface memtype {
  start: number;
  end: number;
  type: page_cache_mode;
}

/** The per-kernel PAT state (the kernel's statics). */
export interface pat_state {
  /** pat_disabled: !CONFIG_X86_PAT at boot; set it to model "nopat". */
  pat_disabled: boolean;
  /** memtype_rbroot: the reservations, ordered by start (interval-tree order). */
  readonly tree: memtype[];
  /** The PG_arch_1/PG_arch_2 memtype of RAM pages; absent = WB. */
  readonly page_memtype: Map<number, page_cache_mode>;
}

/** The PAT state of the current kernel (created on first use). */
export function pat_state(): pat_state {
  const k = currentKernel();
  let st = k.sub.pat as pat_state | undefined;
  if (!st) {
    st = {
      pat_disabled: k.config.CONFIG_X86_PAT !== true,
      tree: [],
      page_memtype: new Map(),
    };
    k.sub.pat = st;
  }
  return st;
}

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/**
 * pat_enabled(): PAT is on (CONFIG_X86_PAT and not "nopat").
 * @kernel arch/x86/mm/pat/memtype.c:pat_enabled (all versions)
 * Return: true or false.
 */
export function pat_enabled(): boolean {
  return !pat_state().pat_disabled;
}

/** __cachemode2pte_tbl for the full-PAT MSR layout. */
const CACHEMODE2PROT: readonly pgprot_t[] = [
  0,
  _PAGE_PWT,
  _PAGE_PCD,
  _PAGE_PCD | _PAGE_PWT,
  _PAGE_PAT | _PAGE_PCD | _PAGE_PWT,
  _PAGE_PAT | _PAGE_PWT,
];
/** __pte2cachemode_tbl: index PAT<<2 | PCD<<1 | PWT. */
const PROT2CACHEMODE: readonly page_cache_mode[] = [
  _PAGE_CACHE_MODE_WB,
  _PAGE_CACHE_MODE_WC,
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_UC,
  _PAGE_CACHE_MODE_WB,
  _PAGE_CACHE_MODE_WP,
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WT,
];

/**
 * cachemode2protval(pcm): the PTE cache bits of a cache mode (4 KiB entry layout).
 * @kernel arch/x86/include/asm/pgtable_types.h:cachemode2protval (all versions)
 * Return: the _PAGE_PWT/_PAGE_PCD/_PAGE_PAT bits.
 */
export function cachemode2protval(pcm: page_cache_mode): pgprot_t {
  return CACHEMODE2PROT[pcm] ?? 0;
}

/**
 * pgprot2cachemode(pgprot): the cache mode a PTE protection selects.
 * @kernel arch/x86/include/asm/pgtable_types.h:pgprot2cachemode (all versions)
 * Return: the page_cache_mode.
 */
export function pgprot2cachemode(prot: pgprot_t): page_cache_mode {
  const idx =
    ((prot & _PAGE_PAT) !== 0 ? 4 : 0) |
    ((prot & _PAGE_PCD) !== 0 ? 2 : 0) |
    ((prot & _PAGE_PWT) !== 0 ? 1 : 0);
  return PROT2CACHEMODE[idx]!;
}

/**
 * cattr_name(pcm): the name printed in PAT messages.
 * @kernel arch/x86/mm/pat/memtype.h:cattr_name (all versions)
 */
export function cattr_name(pcm: page_cache_mode): string {
  switch (pcm) {
    case _PAGE_CACHE_MODE_UC:
      return 'uncached';
    case _PAGE_CACHE_MODE_UC_MINUS:
      return 'uncached-minus';
    case _PAGE_CACHE_MODE_WB:
      return 'write-back';
    case _PAGE_CACHE_MODE_WC:
      return 'write-combining';
    case _PAGE_CACHE_MODE_WT:
      return 'write-through';
    case _PAGE_CACHE_MODE_WP:
      return 'write-protected';
    default:
      return 'broken';
  }
}

/**
 * pgprot_set_cachemode(prot, pcm): replaces the cache bits of *prot.
 * @kernel arch/x86/mm/pat/memtype.c:pgprot_set_cachemode (v5.7+; open-coded before v6.16)
 */
export function pgprot_set_cachemode(prot: pgprot_ptr, pcm: page_cache_mode): void {
  prot.pgprot = (prot.pgprot & ~_PAGE_CACHE_MASK) | cachemode2protval(pcm);
}

/** "%#010Lx" */
function x010(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

const ISA_START_ADDRESS = 0xa0000;
const ISA_END_ADDRESS = 0x100000;

/**
 * x86_platform.is_untracked_pat_range = is_ISA_range(start, end): the legacy ISA hole
 * is always WB and never tracked.
 * @kernel arch/x86/include/asm/e820/api.h:is_ISA_range (all versions)
 */
export function is_untracked_pat_range(start: number, end: number): boolean {
  return start >= ISA_START_ADDRESS && end <= ISA_END_ADDRESS;
}

/**
 * walk_system_ram_range() over the "System RAM" resources e820__reserve_resources()
 * registers (the boot map's 'ram' ranges; see the file comment): calls func(pfn, nr)
 * for each run of whole RAM pages in [start_pfn, start_pfn + nr_pages).
 * @kernel kernel/resource.c:walk_system_ram_range (all versions)
 * Return: the first non-zero value of func, func's last 0, or -EINVAL when no RAM.
 */
export function e820_walk_system_ram_range(
  start_pfn: number,
  nr_pages: number,
  func: (pfn: number, nr_pages: number) => number,
): number {
  let start = start_pfn * PAGE_SIZE;
  const end = (start_pfn + nr_pages) * PAGE_SIZE - 1;
  let ret = -EINVAL;
  const ram = memmap().map.filter((r) => r.kind === 'ram');
  while (start < end) {
    const r = ram.find((x) => x.end - 1 >= start && x.start <= end);
    if (!r) break;
    const rs = Math.max(start, r.start);
    const re = Math.min(end, r.end - 1);
    const pfn = Math.ceil(rs / PAGE_SIZE);
    const end_pfn = Math.floor((re + 1) / PAGE_SIZE);
    if (end_pfn > pfn) ret = func(pfn, end_pfn - pfn);
    if (ret) break;
    start = re + 1;
  }
  return ret;
}

/**
 * pat_pagerange_is_ram(start, end): whether [start, end) is System RAM. The legacy ISA
 * range counts as non-RAM; the state starts at the caller's first pfn, so a range
 * starting below 1 MiB that reaches RAM reports a gap (-1), as in the kernel.
 * @kernel arch/x86/mm/pat/memtype.c:pat_pagerange_is_ram (all versions)
 * Return: 1 all RAM, 0 no RAM, -1 mixed (RAM after a non-RAM gap).
 */
export function pat_pagerange_is_ram(start: number, end: number): number {
  let start_pfn = Math.floor(start / PAGE_SIZE);
  const end_pfn = Math.floor((end + PAGE_SIZE - 1) / PAGE_SIZE);
  const state = { cur_pfn: start_pfn, ram: 0, not_ram: 0 };
  let ret = 0;
  if (start_pfn < ISA_END_ADDRESS / PAGE_SIZE) start_pfn = ISA_END_ADDRESS / PAGE_SIZE;
  if (start_pfn < end_pfn) {
    ret = e820_walk_system_ram_range(start_pfn, end_pfn - start_pfn, (pfn, nr) => {
      state.not_ram |= pfn > state.cur_pfn ? 1 : 0;
      state.ram |= nr > 0 ? 1 : 0;
      state.cur_pfn = pfn + nr;
      return state.ram && state.not_ram ? 1 : 0;
    });
  }
  return ret > 0 ? -1 : state.ram ? 1 : 0;
}

/** get_page_memtype(page): the RAM page's tracked type (WB by default). */
function get_page_memtype(pfn: number): page_cache_mode {
  return pat_state().page_memtype.get(pfn) ?? _PAGE_CACHE_MODE_WB;
}

/** set_page_memtype(page, memtype): WP and UC are not representable (only WB/WC/UC-/WT). */
function set_page_memtype(pfn: number, pcm: page_cache_mode): void {
  const st = pat_state();
  if (
    pcm === _PAGE_CACHE_MODE_WC ||
    pcm === _PAGE_CACHE_MODE_UC_MINUS ||
    pcm === _PAGE_CACHE_MODE_WT
  )
    st.page_memtype.set(pfn, pcm);
  else st.page_memtype.delete(pfn);
}

/**
 * reserve_ram_pages_type(start, end, req_type, new_type): marks RAM pages with a cache
 * mode; only pages still WB may change. WP is refused, UC becomes UC- with a warning.
 * @kernel arch/x86/mm/pat/memtype.c:reserve_ram_pages_type (all versions)
 * Locking: none (page flags are updated atomically).
 * Return: 0, -EINVAL (WP) or -EBUSY (a page already has a non-WB type).
 */
function reserve_ram_pages_type(
  start: number,
  end: number,
  req_type: page_cache_mode,
  new_type: page_cache_mode_ptr | null,
): number {
  if (req_type === _PAGE_CACHE_MODE_WP) {
    if (new_type) new_type.pcm = _PAGE_CACHE_MODE_UC_MINUS;
    return -EINVAL;
  }
  if (req_type === _PAGE_CACHE_MODE_UC) {
    /* We do not support strong UC */
    WARN_ON_ONCE(true, 'arch/x86/mm/pat/memtype.c:reserve_ram_pages_type');
    req_type = _PAGE_CACHE_MODE_UC_MINUS;
  }
  for (let pfn = Math.floor(start / PAGE_SIZE); pfn < Math.floor(end / PAGE_SIZE); ++pfn) {
    const type = get_page_memtype(pfn);
    if (type !== _PAGE_CACHE_MODE_WB) {
      pr_info(
        `x86/PAT: reserve_ram_pages_type failed [mem ${x010(start)}-${x010(end - 1)}], track 0x${type.toString(16)}, req 0x${req_type.toString(16)}`,
      );
      if (new_type) new_type.pcm = type;
      return -EBUSY;
    }
  }
  if (new_type) new_type.pcm = req_type;
  for (let pfn = Math.floor(start / PAGE_SIZE); pfn < Math.floor(end / PAGE_SIZE); ++pfn)
    set_page_memtype(pfn, req_type);
  return 0;
}

/**
 * free_ram_pages_type(start, end): RAM pages go back to WB.
 * @kernel arch/x86/mm/pat/memtype.c:free_ram_pages_type (all versions)
 * Return: 0.
 */
function free_ram_pages_type(start: number, end: number): number {
  for (let pfn = Math.floor(start / PAGE_SIZE); pfn < Math.floor(end / PAGE_SIZE); ++pfn)
    set_page_memtype(pfn, _PAGE_CACHE_MODE_WB);
  return 0;
}

/** mtrr_type_lookup(start, end) == MTRR_TYPE_WRBACK, per the model's MTRRs (file comment). */
function mtrr_is_wrback(start: number, end: number): boolean {
  let a = start;
  for (const r of memmap().memmapRanges) {
    if (r.end <= a) continue;
    if (r.start > a) return false;
    a = r.end;
    if (a >= end) return true;
  }
  return a >= end;
}

/**
 * pat_x_mtrr_type(start, end, req_type): a WB request gets UC- unless MTRRs say WB.
 * @kernel arch/x86/mm/pat/memtype.c:pat_x_mtrr_type (all versions)
 */
function pat_x_mtrr_type(start: number, end: number, req_type: page_cache_mode): page_cache_mode {
  if (req_type === _PAGE_CACHE_MODE_WB) {
    return mtrr_is_wrback(start, end) ? _PAGE_CACHE_MODE_WB : _PAGE_CACHE_MODE_UC_MINUS;
  }
  return req_type;
}

/** interval_iter_first/next over [start, last]: the tree entries overlapping it, by start. */
function overlapping(start: number, last: number): memtype[] {
  return pat_state().tree.filter((e) => e.start <= last && e.end - 1 >= start);
}

/**
 * memtype_check_conflict(start, end, reqtype, newtype): all overlapping reservations
 * must have one type; with newtype the request adopts it, without it must equal it.
 * @kernel arch/x86/mm/pat/memtype_interval.c:memtype_check_conflict (all versions)
 * Locking: memtype_lock (atomic in the model).
 * Return: 0, or -EBUSY with "conflicting memory types".
 */
function memtype_check_conflict(
  start: number,
  end: number,
  reqtype: page_cache_mode,
  newtype: page_cache_mode_ptr | null,
): number {
  const matches = overlapping(start, end - 1);
  let found_type = reqtype;
  let bad: memtype | undefined;
  if (matches.length > 0) {
    const first = matches[0]!;
    if (first.type !== found_type && newtype === null) bad = first;
    else {
      found_type = first.type;
      bad = matches.slice(1).find((e) => e.type !== found_type);
    }
  }
  if (bad) {
    const cur = get_current();
    pr_info(
      `x86/PAT: ${cur.comm}:${cur.pid} conflicting memory types ${start.toString(16)}-${end.toString(16)} ${cattr_name(found_type)}<->${cattr_name(bad.type)}`,
    );
    return -EBUSY;
  }
  if (newtype) newtype.pcm = found_type;
  return 0;
}

/**
 * memtype_check_insert(entry_new, ret_type): inserts after the conflict check.
 * @kernel arch/x86/mm/pat/memtype_interval.c:memtype_check_insert (all versions)
 * Locking: memtype_lock (atomic in the model).
 * Return: 0 or -EBUSY.
 */
function memtype_check_insert(entry_new: memtype, ret_type: page_cache_mode_ptr | null): number {
  const err = memtype_check_conflict(entry_new.start, entry_new.end, entry_new.type, ret_type);
  if (err) return err;
  if (ret_type) entry_new.type = ret_type.pcm;
  const tree = pat_state().tree;
  let i = 0;
  while (i < tree.length && tree[i]!.start <= entry_new.start) i++;
  tree.splice(i, 0, entry_new);
  return 0;
}

/**
 * memtype_erase(start, end): removes the reservation [start, end). Up to v6.15 a
 * reservation that ends at `end` and starts before `start` is shrunk instead (the
 * mremap case, MEMTYPE_END_MATCH); the 2025 rework removed that (v6.16 series of
 * f8e97613fed2, "x86/mm/pat: remove MEMTYPE_*_MATCH").
 * @kernel arch/x86/mm/pat/memtype_interval.c:memtype_erase (all versions)
 * Locking: memtype_lock (atomic in the model).
 * Return: the removed entry, null when shrunk, or -EINVAL when nothing matches.
 */
function memtype_erase(start: number, end: number): memtype | null | number {
  const tree = pat_state().tree;
  const cands = overlapping(start, end - 1).filter((e) => e.start < end);
  const exact = cands.find((e) => e.start === start && e.end === end);
  if (exact) {
    tree.splice(tree.indexOf(exact), 1);
    return exact;
  }
  if (since(6, 16)) return -EINVAL;
  const endm = cands.find((e) => e.start < start && e.end === end);
  if (!endm) return -EINVAL;
  endm.end = start;
  return null;
}

/**
 * memtype_lookup(addr): the first reservation overlapping the page at addr.
 * @kernel arch/x86/mm/pat/memtype_interval.c:memtype_lookup (all versions)
 */
function memtype_lookup(addr: number): memtype | undefined {
  return overlapping(addr, addr + PAGE_SIZE - 1)[0];
}

/**
 * memtype_reserve(start, end, req_type, new_type): reserves [start, end) with a cache
 * mode. RAM ranges are tracked per page; non-RAM ranges go in the tree, where an
 * overlap with another type fails (-EBUSY) unless new_type lets the request adopt the
 * existing type. Mixed RAM/non-RAM ranges fail (-EINVAL). A WB request on non-RAM
 * becomes UC- (MTRRs).
 * @kernel arch/x86/mm/pat/memtype.c:memtype_reserve (v5.7+)
 * Locking: takes memtype_lock (atomic in the model).
 * Return: 0, -EINVAL, -EBUSY.
 */
export function memtype_reserve(
  start: number,
  end: number,
  req_type: page_cache_mode,
  new_type: page_cache_mode_ptr | null,
): number {
  if (start >= end) {
    WARN(
      true,
      `memtype_reserve failed: [mem ${x010(start)}-${x010(end - 1)}], req ${cattr_name(req_type)}`,
    );
    return -EINVAL;
  }
  if (!pat_enabled()) {
    /* This is identical to page table setting without PAT */
    if (new_type) new_type.pcm = req_type;
    return 0;
  }
  /* Low ISA region is always mapped WB in page table. No need to track */
  if (is_untracked_pat_range(start, end)) {
    if (new_type) new_type.pcm = _PAGE_CACHE_MODE_WB;
    return 0;
  }
  const actual_type = pat_x_mtrr_type(start, end, req_type);
  if (new_type) new_type.pcm = actual_type;

  const is_range_ram = pat_pagerange_is_ram(start, end);
  if (is_range_ram === 1) return reserve_ram_pages_type(start, end, req_type, new_type);
  else if (is_range_ram < 0) return -EINVAL;

  const entry_new: memtype = { start, end, type: actual_type };
  const err = memtype_check_insert(entry_new, new_type);
  if (err) {
    pr_info(
      `x86/PAT: memtype_reserve failed [mem ${x010(start)}-${x010(end - 1)}], track ${cattr_name(entry_new.type)}, req ${cattr_name(req_type)}`,
    );
    return err;
  }
  return 0;
}

/**
 * memtype_free(start, end): drops the reservation of [start, end).
 * @kernel arch/x86/mm/pat/memtype.c:memtype_free (v5.7+)
 * Locking: takes memtype_lock (atomic in the model).
 * Return: 0, or -EINVAL ("freeing invalid memtype" when no reservation matches).
 */
export function memtype_free(start: number, end: number): number {
  if (!pat_enabled()) return 0;
  /* Low ISA region is always mapped WB. No need to track */
  if (is_untracked_pat_range(start, end)) return 0;
  const is_range_ram = pat_pagerange_is_ram(start, end);
  if (is_range_ram === 1) return free_ram_pages_type(start, end);
  if (is_range_ram < 0) return -EINVAL;
  const entry_old = memtype_erase(start, end);
  if (typeof entry_old === 'number') {
    const cur = get_current();
    pr_info(
      `x86/PAT: ${cur.comm}:${cur.pid} freeing invalid memtype [mem ${x010(start)}-${x010(end - 1)}]`,
    );
    return -EINVAL;
  }
  return 0;
}

/**
 * lookup_memtype(paddr): the cache mode the page at paddr is tracked with: WB for the
 * ISA range, the page's type for RAM, the first overlapping reservation's type, else UC-.
 * @kernel arch/x86/mm/pat/memtype.c:lookup_memtype (all versions)
 * Locking: takes memtype_lock (atomic in the model).
 * Return: a page_cache_mode.
 */
export function lookup_memtype(paddr: number): page_cache_mode {
  if (is_untracked_pat_range(paddr, paddr + PAGE_SIZE)) return _PAGE_CACHE_MODE_WB;
  if (pat_pagerange_is_ram(paddr, paddr + PAGE_SIZE)) return get_page_memtype(paddr / PAGE_SIZE);
  const entry = memtype_lookup(paddr);
  return entry !== undefined ? entry.type : _PAGE_CACHE_MODE_UC_MINUS;
}

/**
 * is_new_memtype_allowed(paddr, size, pcm, new_pcm): whether a reservation may come
 * back with another cache mode than requested (never WB for UC-/WC/WT requests, never WC
 * for WT).
 * @kernel arch/x86/include/asm/pgtable.h:is_new_memtype_allowed (all versions)
 * Return: true or false.
 */
export function is_new_memtype_allowed(
  paddr: number,
  size: number,
  pcm: page_cache_mode,
  new_pcm: page_cache_mode,
): boolean {
  if (is_untracked_pat_range(paddr, paddr + size)) return true;
  if (
    (pcm === _PAGE_CACHE_MODE_UC_MINUS && new_pcm === _PAGE_CACHE_MODE_WB) ||
    (pcm === _PAGE_CACHE_MODE_WC && new_pcm === _PAGE_CACHE_MODE_WB) ||
    (pcm === _PAGE_CACHE_MODE_WT && new_pcm === _PAGE_CACHE_MODE_WB) ||
    (pcm === _PAGE_CACHE_MODE_WT && new_pcm === _PAGE_CACHE_MODE_WC)
  )
    return false;
  return true;
}

/**
 * memtype_kernel_map_sync: the kernel identity map keeps the reserved cache mode. The
 * model has no identity map; this always succeeds.
 * @kernel arch/x86/mm/pat/memtype.c:memtype_kernel_map_sync (all versions; not modelled)
 * Return: 0.
 */
export function memtype_kernel_map_sync(
  _base: number,
  _size: number,
  _pcm: page_cache_mode,
): number {
  return 0;
}

/**
 * reserve_pfn_range(paddr, size, vma_prot, strict_prot): reserves the memtype of a PFN
 * range for a user mapping.
 * - RAM (and, as in the kernel, a mixed range, whose is_ram is -1): nothing is
 *   reserved; the type of the first page is used, with "map pfn RAM range req ... got"
 *   when it differs from the request.
 * - Otherwise memtype_reserve; a different type than requested is an error when
 *   strict_prot (fork's track_pfn_copy, up to v6.15) or not allowed
 *   (is_new_memtype_allowed), else the prot adopts it. The 2025 rework dropped
 *   strict_prot.
 * @kernel arch/x86/mm/pat/memtype.c:reserve_pfn_range (v5.7+; strict_prot until v6.16)
 * Locking: memtype_lock inside (atomic in the model).
 * Return: 0 or -errno (-EINVAL, -EBUSY).
 */
export function reserve_pfn_range(
  paddr: number,
  size: number,
  vma_prot: pgprot_ptr,
  strict_prot = 0,
): number {
  const want_pcm = pgprot2cachemode(vma_prot.pgprot);
  const pcm: page_cache_mode_ptr = { pcm: want_pcm };
  const is_ram = pat_pagerange_is_ram(paddr, paddr + size);
  const cur = get_current();

  if (is_ram) {
    if (!pat_enabled()) return 0;
    pcm.pcm = lookup_memtype(paddr);
    if (want_pcm !== pcm.pcm) {
      pr_warn(
        `x86/PAT: ${cur.comm}:${cur.pid} map pfn RAM range req ${cattr_name(want_pcm)} for [mem ${x010(paddr)}-${x010(paddr + size - 1)}], got ${cattr_name(pcm.pcm)}`,
      );
      pgprot_set_cachemode(vma_prot, pcm.pcm);
    }
    return 0;
  }

  const ret = memtype_reserve(paddr, paddr + size, want_pcm, pcm);
  if (ret) return ret;

  if (pcm.pcm !== want_pcm) {
    if ((strict_prot && !since(6, 16)) || !is_new_memtype_allowed(paddr, size, want_pcm, pcm.pcm)) {
      memtype_free(paddr, paddr + size);
      pr_err(
        `x86/PAT: ${cur.comm}:${cur.pid} map pfn expected mapping type ${cattr_name(want_pcm)} for [mem ${x010(paddr)}-${x010(paddr + size - 1)}], got ${cattr_name(pcm.pcm)}`,
      );
      return -EINVAL;
    }
    pgprot_set_cachemode(vma_prot, pcm.pcm);
  }
  if (memtype_kernel_map_sync(paddr, size, pcm.pcm) < 0) {
    memtype_free(paddr, paddr + size);
    return -EINVAL;
  }
  return 0;
}

/**
 * free_pfn_range(paddr, size): frees the reservation of a non-RAM range.
 * @kernel arch/x86/mm/pat/memtype.c:free_pfn_range (all versions)
 */
export function free_pfn_range(paddr: number, size: number): void {
  const is_ram = pat_pagerange_is_ram(paddr, paddr + size);
  if (is_ram === 0) memtype_free(paddr, paddr + size);
}

/**
 * The partial-range path of track_pfn_remap, later pfnmap_setup_cachemode: the whole
 * range must be tracked with one cache mode, which *prot then takes.
 */
function setup_cachemode(pfn: number, size: number, prot: pgprot_ptr): number {
  if (!pat_enabled()) return 0;
  let paddr = pfn * PAGE_SIZE;
  const pcm = lookup_memtype(paddr);
  /* Check memtype for the remaining pages */
  while (size > PAGE_SIZE) {
    size -= PAGE_SIZE;
    paddr += PAGE_SIZE;
    if (pcm !== lookup_memtype(paddr)) return -EINVAL;
  }
  pgprot_set_cachemode(prot, pcm);
  return 0;
}

/**
 * track_pfn_remap(vma, prot, pfn, addr, size): remap_pfn_range's PAT hook. A call
 * covering the whole VMA (or with no VMA) reserves the memtype of the range and marks
 * the VMA VM_PAT; a partial call only sets *prot to the range's tracked cache mode,
 * which must be uniform.
 * @kernel arch/x86/mm/pat/memtype.c:track_pfn_remap (v5.7-v6.15; removed by the
 *   f8e97613fed2 series, v6.16)
 * Locking: mmap_lock held for write (vm_flags_set asserts it from v6.4).
 * Return: 0 or -errno (remap_pfn_range turns any error into -EINVAL).
 */
export function track_pfn_remap(
  vma: vm_area_struct | null,
  prot: pgprot_ptr,
  pfn: number,
  addr: number,
  size: number,
): number {
  if (since(6, 16)) absent('track_pfn_remap()', 'removed by the f8e97613fed2 series, v6.16');
  const paddr = pfn * PAGE_SIZE;
  /* reserve the whole chunk starting from paddr */
  if (!vma || (addr === vma.vm_start && size === vma.vm_end - vma.vm_start)) {
    const ret = reserve_pfn_range(paddr, size, prot, 0);
    if (ret === 0 && vma) vm_flags_set(vma, VM_PAT);
    return ret;
  }
  return setup_cachemode(pfn, size, prot);
}

/**
 * track_pfn_insert(vma, prot, pfn): vmf_insert_pfn's PAT hook: *prot takes the tracked
 * cache mode of the pfn.
 * @kernel arch/x86/mm/pat/memtype.c:track_pfn_insert (v5.7-v6.15; replaced by
 *   pfnmap_setup_cachemode_pfn in the f8e97613fed2 series, v6.16)
 * Locking: memtype_lock inside (atomic in the model).
 * Return: nothing.
 */
export function track_pfn_insert(_vma: vm_area_struct, prot: pgprot_ptr, pfn: pfn_t): void {
  if (since(6, 16)) absent('track_pfn_insert()', 'replaced by pfnmap_setup_cachemode_pfn(), v6.16');
  if (!pat_enabled()) return;
  /* Set prot based on lookup */
  const pcm = lookup_memtype(pfn_t_to_pfn(pfn) * PAGE_SIZE);
  pgprot_set_cachemode(prot, pcm);
}

/**
 * pfnmap_setup_cachemode(pfn, size, prot): *prot takes the tracked cache mode of the
 * range, which must be uniform (the partial-VMA path of remap_pfn_range).
 * @kernel arch/x86/mm/pat/memtype.c:pfnmap_setup_cachemode (v6.16+, f8e97613fed2
 *   series; pfnmap_sanitize_pgprot in that series' first patches)
 * Locking: memtype_lock inside (atomic in the model).
 * Return: 0 or -EINVAL.
 */
export function pfnmap_setup_cachemode(pfn: number, size: number, prot: pgprot_ptr): number {
  if (!since(6, 16)) absent('pfnmap_setup_cachemode()', 'added by the f8e97613fed2 series, v6.16');
  return setup_cachemode(pfn, size, prot);
}

/**
 * pfnmap_setup_cachemode_pfn(pfn, prot): the single-page form (vmf_insert_pfn_prot,
 * __vm_insert_mixed, vmf_insert_pfn_pmd/pud).
 * @kernel include/linux/pgtable.h:pfnmap_setup_cachemode_pfn (v6.16+)
 * Return: nothing (a single page cannot fail).
 */
export function pfnmap_setup_cachemode_pfn(pfn: number, prot: pgprot_ptr): void {
  pfnmap_setup_cachemode(pfn, PAGE_SIZE, prot);
}

/**
 * pfnmap_track(pfn, size, prot): reserves the memtype of a PFN range for a whole-VMA
 * remap (the reservation is then owned by vma->pfnmap_track_ctx).
 * @kernel arch/x86/mm/pat/memtype.c:pfnmap_track (v6.16+, f8e97613fed2 series)
 * Return: 0 or -errno.
 */
export function pfnmap_track(pfn: number, size: number, prot: pgprot_ptr): number {
  if (!since(6, 16)) absent('pfnmap_track()', 'added by the f8e97613fed2 series, v6.16');
  return reserve_pfn_range(pfn * PAGE_SIZE, size, prot);
}

/**
 * pfnmap_untrack(pfn, size): drops the reservation made by pfnmap_track.
 * @kernel arch/x86/mm/pat/memtype.c:pfnmap_untrack (v6.16+)
 */
export function pfnmap_untrack(pfn: number, size: number): void {
  if (!since(6, 16)) absent('pfnmap_untrack()', 'added by the f8e97613fed2 series, v6.16');
  free_pfn_range(pfn * PAGE_SIZE, size);
}

/** What follow_phys()/get_pat_info() found: the pte's protection and physical address. */
interface phys_info {
  ret: number;
  prot: pgprot_t;
  paddr: number;
}

/**
 * follow_phys(vma, &prot, &phys) of memtype.c (v6.12-v6.15): the entry at vm_start
 * through follow_pfnmap_start; a non-special entry (a COWed anon folio) is refused.
 * @kernel arch/x86/mm/pat/memtype.c:follow_phys (v6.12-v6.15)
 * Locking: takes and drops the page-table lock of the entry.
 */
function* pat_follow_phys(vma: vm_area_struct): Op<phys_info> {
  const args = follow_pfnmap_args_init(vma, vma.vm_start);
  if (yield* follow_pfnmap_start(args)) return { ret: -EINVAL, prot: 0, paddr: 0 };
  /* Never return PFNs of anon folios in COW mappings. */
  if (!args.special) {
    yield* follow_pfnmap_end(args);
    return { ret: -EINVAL, prot: 0, paddr: 0 };
  }
  const info = { ret: 0, prot: args.pgprot, paddr: args.pfn * PAGE_SIZE };
  yield* follow_pfnmap_end(args);
  return info;
}

/**
 * get_pat_info(vma, paddr, pgprot): the pfn (and, when wanted, the cache mode) a VM_PAT
 * VMA was remapped with, read from its first entry; a COW VMA whose first entry is now
 * an anon folio falls back to vm_pgoff when no pgprot is wanted, else fails.
 * @kernel arch/x86/mm/pat/memtype.c:get_pat_info (v6.9-v6.15, "x86/mm/pat: fix VM_PAT
 *   handling in COW mappings"; follow_phys via follow_pfnmap from v6.12)
 * Locking: takes and drops the entry's page-table lock.
 * Return: { ret: 0 or -EINVAL, prot, paddr }.
 */
function* get_pat_info(vma: vm_area_struct, want_pgprot: boolean): Op<phys_info> {
  VM_WARN_ON_ONCE((vma.vm_flags & VM_PAT) === 0n);
  const r = since(6, 12)
    ? yield* pat_follow_phys(vma)
    : yield* mm_follow_phys(vma, vma.vm_start, 0);
  if (!r.ret) return r;
  if (is_cow_mapping(vma.vm_flags)) {
    if (want_pgprot) return { ret: -EINVAL, prot: 0, paddr: 0 };
    return { ret: 0, prot: 0, paddr: vma.vm_pgoff * PAGE_SIZE };
  }
  WARN_ON_ONCE(true, 'arch/x86/mm/pat/memtype.c:get_pat_info');
  return { ret: -EINVAL, prot: 0, paddr: 0 };
}

/**
 * track_pfn_copy(dst_vma, src_vma): fork's PAT hook for a VM_PFNMAP VMA: a VM_PAT
 * source gets its whole range reserved again for the child, with the source's cache
 * mode, strictly (another type is an error, which fails the fork).
 * - up to v6.8: the entry at vm_start must be found (else WARN, -EINVAL);
 * - v6.9-v6.14: get_pat_info (COW fallback to vm_pgoff is refused here, since the
 *   cache mode is needed);
 * - v6.15 (dc84bc2aba85 "x86/mm/pat: Fix VM_PAT handling when fork() fails in
 *   copy_page_range()"): dst_vma gets VM_PAT once reserved and the pfn is returned for
 *   untrack_pfn_copy.
 * The kernel's signature is track_pfn_copy(vma) (given the source VMA) before v6.15 and
 * track_pfn_copy(dst_vma, src_vma, &pfn) in v6.15; the model takes both VMAs always and
 * returns the pfn out-parameter in the result (0 when nothing was tracked).
 * @kernel arch/x86/mm/pat/memtype.c:track_pfn_copy (v5.7-v6.15; removed by the
 *   f8e97613fed2 series, v6.16)
 * Locking: mmap_lock held for write (fork); takes the entry's page-table lock.
 * Return: { ret: 0 or -errno, pfn }.
 */
export function* track_pfn_copy(
  dst_vma: vm_area_struct,
  src_vma: vm_area_struct,
): Op<{ ret: number; pfn: number }> {
  if (since(6, 16)) absent('track_pfn_copy()', 'removed by the f8e97613fed2 series, v6.16');
  const vma_size = src_vma.vm_end - src_vma.vm_start;
  if (!(src_vma.vm_flags & VM_PAT)) return { ret: 0, pfn: 0 };
  let info: phys_info;
  if (since(6, 9)) {
    info = yield* get_pat_info(src_vma, true);
    if (info.ret) return { ret: -EINVAL, pfn: 0 };
  } else {
    /* reserve the whole chunk covered by vma. We need the starting address and protection from pte. */
    info = yield* mm_follow_phys(src_vma, src_vma.vm_start, 0);
    if (info.ret) {
      WARN_ON_ONCE(true, 'arch/x86/mm/pat/memtype.c:track_pfn_copy');
      return { ret: -EINVAL, pfn: 0 };
    }
  }
  const pgprot: pgprot_ptr = { pgprot: info.prot };
  const rc = reserve_pfn_range(info.paddr, vma_size, pgprot, 1);
  if (rc) return { ret: rc, pfn: 0 };
  if (since(6, 15)) {
    /* Reservation for the destination VMA succeeded. */
    vm_flags_set(dst_vma, VM_PAT);
    return { ret: 0, pfn: Math.floor(info.paddr / PAGE_SIZE) };
  }
  return { ret: 0, pfn: 0 };
}

/**
 * The pfn/size form of untrack_pfn (no entry lookup, so no lock): frees the range and
 * clears VM_PAT.
 */
function untrack_pfn_range(
  vma: vm_area_struct | null,
  paddr: number,
  size: number,
  mm_wr_locked: boolean,
): void {
  free_pfn_range(paddr, size);
  if (vma) {
    if (mm_wr_locked || !since(6, 3)) vm_flags_clear(vma, VM_PAT);
    else __vm_flags_mod(vma, 0n, VM_PAT);
  }
}

/**
 * untrack_pfn_copy(dst_vma, pfn): undoes track_pfn_copy's reservation when the copy
 * failed. Never looks the entry up (pfn and size are given), so it takes no lock.
 * @kernel arch/x86/mm/pat/memtype.c:untrack_pfn_copy (v6.15 only: dc84bc2aba85, removed
 *   by the f8e97613fed2 series)
 * Locking: mmap_lock held for write (fork).
 */
export function untrack_pfn_copy(dst_vma: vm_area_struct, pfn: number): void {
  if (!since(6, 15) || since(6, 16))
    absent('untrack_pfn_copy()', 'exists in v6.15 only: dc84bc2aba85 .. f8e97613fed2');
  if (!(dst_vma.vm_flags & VM_PAT)) return;
  const size = dst_vma.vm_end - dst_vma.vm_start;
  if (pfn === 0 && size === 0) return;
  untrack_pfn_range(dst_vma, pfn * PAGE_SIZE, size, true);
}

/**
 * untrack_pfn(vma, pfn, size, mm_wr_locked): drops a VM_PAT VMA's reservation (or, with
 * no VMA, the given range). pfn = size = 0 means the whole VMA, whose pfn is looked up
 * from its first entry (up to v6.8: failure WARNs; v6.9+: get_pat_info, with the COW
 * fallback to vm_pgoff). VM_PAT is cleared (with the VMA write lock when mm_wr_locked,
 * v6.3+).
 * @kernel arch/x86/mm/pat/memtype.c:untrack_pfn (v5.7-v6.15; mm_wr_locked v6.3+; removed
 *   by the f8e97613fed2 series, v6.16)
 * Locking: mmap_lock held (zap, munmap, remap failure); may take the first entry's
 *   page-table lock.
 */
export function* untrack_pfn(
  vma: vm_area_struct | null,
  pfn: number,
  size: number,
  mm_wr_locked = true,
): Op<void> {
  if (since(6, 16)) absent('untrack_pfn()', 'removed by the f8e97613fed2 series, v6.16');
  if (vma && !(vma.vm_flags & VM_PAT)) return;
  /* free the chunk starting from pfn or the whole chunk */
  let paddr = pfn * PAGE_SIZE;
  if (!paddr && !size) {
    if (!vma) return;
    if (since(6, 9)) {
      const info = yield* get_pat_info(vma, false);
      if (info.ret) return;
      paddr = info.paddr;
    } else {
      const info = yield* mm_follow_phys(vma, vma.vm_start, 0);
      if (info.ret) {
        WARN_ON_ONCE(true, 'arch/x86/mm/pat/memtype.c:untrack_pfn');
        return;
      }
      paddr = info.paddr;
    }
    size = vma.vm_end - vma.vm_start;
  }
  untrack_pfn_range(vma, paddr, size, mm_wr_locked);
}

/**
 * untrack_pfn_clear(vma): clears VM_PAT without freeing (mremap source; fork child
 * whose copy failed, v6.4-v6.14).
 * @kernel arch/x86/mm/pat/memtype.c:untrack_pfn_clear (v5.7-v6.15)
 * Locking: mmap_lock held for write.
 */
export function untrack_pfn_clear(vma: vm_area_struct): void {
  if (since(6, 16)) absent('untrack_pfn_clear()', 'removed by the f8e97613fed2 series, v6.16');
  vm_flags_clear(vma, VM_PAT);
}

/** The model CPU's physical address bits (boot_cpu_data.x86_cache_bits). */
export const X86_CACHE_BITS = 46;

/**
 * pfn_modify_allowed(pfn, prot): the L1TF mitigation: on an affected CPU an inverted
 * (PROT_NONE) entry of a pfn without struct page above the L1TF limit needs
 * CAP_SYS_ADMIN. The model CPU is affected only with CONFIG_X86_BUG_L1TF (a model-only
 * option standing for boot_cpu_has_bug(X86_BUG_L1TF)); the limit is
 * 2^(X86_CACHE_BITS - 1 - PAGE_SHIFT) pfns.
 * @kernel arch/x86/mm/mmap.c:pfn_modify_allowed (all versions)
 * Return: true when the entry may be installed.
 */
export function pfn_modify_allowed(pfn: number, prot: pgprot_t): boolean {
  if (currentKernel().config.CONFIG_X86_BUG_L1TF !== true) return true;
  /* __pte_needs_invert(): a non-zero entry without _PAGE_PRESENT */
  if (!(prot !== 0 && (prot & _PAGE_PRESENT) === 0)) return true;
  /* If it's real memory always allow */
  if (pfn_valid(pfn)) return true;
  if (pfn >= 2 ** (X86_CACHE_BITS - 1 - 12) && !get_current().caps.has('CAP_SYS_ADMIN'))
    return false;
  return true;
}

/** The reservations of the tree, for tests and reports (debugfs pat_memtype_list). */
export function pat_memtype_list(): readonly memtype[] {
  return pat_state().tree.map((e) => ({ ...e }));
}
