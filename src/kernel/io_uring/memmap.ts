/**
 * io_uring memory: pinning user buffers (io_pin_pages: pin_user_pages_fast with
 * FOLL_WRITE|FOLL_LONGTERM, all or nothing), the kernel-allocated regions that hold the
 * rings and the SQE array (one compound allocation when possible, else single pages;
 * charged to the user's RLIMIT_MEMLOCK unless CAP_IPC_LOCK), and mmap of those regions
 * into the process.
 *
 * The mapping of a region, by version:
 * - v6.10+ (3ab1db3c6039 "io_uring: get rid of remap_pfn_range() for mapping
 *   rings/sqes"): VM_DONTEXPAND and vm_insert_pages of the region's pages: a VM_MIXEDMAP
 *   VMA of ordinary refcounted pages (GUP and long-term pins work on it; no ->fault, so a
 *   zapped range SIGBUSes; the pages have no mapping, so a shared futex on them is
 *   -EFAULT). At most the VMA's size is inserted.
 * - before: remap_pfn_range of the region's pfns: VM_IO|VM_PFNMAP, GUP refuses it.
 *
 * Left out: user-provided regions (IORING_MEM_REGION_TYPE_USER), provided buffer rings,
 * zcrx regions, IORING_SETUP_NO_MMAP, the vmap of multi-page regions (the kernel's own
 * access goes straight to the frames), get_unmapped_area's address rules.
 *
 * @kernel io_uring/memmap.c:io_pin_pages, io_create_region, io_region_allocate_pages,
 *   io_mem_alloc_compound, io_free_region, io_region_mmap, io_uring_mmap (v6.13+ regions;
 *   io_uring/memmap.c v6.10–v6.12 and io_uring/io_uring.c before, same effects as noted)
 */
import type { Op } from '../../sched/index.js';
import type { file, page, vm_area_struct } from '../include/linux/mm_types.js';
import { FOLL_LONGTERM, FOLL_WRITE, VM_DONTEXPAND } from '../include/linux/mm.js';
import { EFAULT, EINVAL, ENOMEM, EOVERFLOW } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { WARN_ON_ONCE } from '../kernel/panic.js';
import { since } from '../version.js';
import { pin_user_pages_fast, unpin_user_pages } from '../mm/gup.js';
import {
  alloc_pages,
  GFP_KERNEL_ACCOUNT,
  __GFP_COMP,
  __GFP_NOWARN,
  __GFP_ZERO,
} from '../mm/page_alloc.js';
import { prep_compound_page } from '../include/linux/page-flags.js';
import { put_page } from '../include/linux/page_ref.js';
import { vm_insert_pages, vm_flags_set, remap_pfn_range } from '../mm/memory.pfnmap.js';
import type { io_ring_ctx } from './io_uring.js';

/** mmap offsets (include/uapi/linux/io_uring.h). */
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;
export const IORING_OFF_MMAP_MASK = 0xf8000000;

/** INT_MAX */
const INT_MAX = 0x7fffffff;

/**
 * io_pin_pages(uaddr, len, npages): pins every page of [uaddr, uaddr + len) with
 * pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM); a partial pin is undone and is
 * -EFAULT, as is a pin of nothing; GUP's error is passed on.
 * @kernel io_uring/memmap.c:io_pin_pages (v6.10+, 1943f96b3816 "io_uring: unify
 *   io_pin_pages()"; io_uring/rsrc.c with pin_user_pages under mmap_lock before)
 * Locking: none held (GUP-fast, falling back to the slow path).
 * Return: the pinned pages, or -errno.
 */
export function* io_pin_pages(uaddr: number, len: number): Op<page[] | number> {
  let end = uaddr + len;
  if (end > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
  end = Math.floor((end + PAGE_SIZE - 1) / PAGE_SIZE);
  const start = Math.floor(uaddr / PAGE_SIZE);
  const nr_pages = end - start;
  if (WARN_ON_ONCE(!nr_pages)) return -EINVAL;
  if (WARN_ON_ONCE(nr_pages > INT_MAX)) return -EOVERFLOW;
  const pages: page[] = [];
  let ret = yield* pin_user_pages_fast(uaddr, nr_pages, FOLL_WRITE | FOLL_LONGTERM, pages);
  // success, mapped all pages
  if (ret === nr_pages) return pages;
  // partial map, or didn't map anything
  if (ret >= 0) {
    // if we did partial map, release any pages we did get
    if (ret) unpin_user_pages(pages, ret);
    ret = -EFAULT;
  }
  return ret;
}

/** struct io_mapped_region */
export interface io_mapped_region {
  pages: page[] | null;
  nr_pages: number;
  /** IO_REGION_F_SINGLE_REF: one compound allocation, only the head is referenced. */
  single_ref: boolean;
}

/** get_order(size) */
function get_order(size: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < size) order++;
  return order;
}

/**
 * io_mem_alloc_compound(pages, nr_pages, size, gfp): one allocation of the size's order
 * (a compound page when order > 0), its pages listed.
 * @kernel io_uring/memmap.c:io_mem_alloc_compound (v6.10+)
 * Return: true, or false when the allocation failed.
 */
function io_mem_alloc_compound(pages: page[], nr_pages: number, size: number): boolean {
  const order = get_order(size);
  const gfp = GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_NOWARN | (order ? __GFP_COMP : 0);
  if (order > 10) return false; // MAX_PAGE_ORDER
  const p = alloc_pages(gfp, order);
  if (p === null) return false;
  if (order) prep_compound_page(p, order);
  for (let i = 0; i < nr_pages; i++) pages[i] = (p + i) as page;
  return true;
}

/**
 * io_create_region(ctx, mr, reg, mmap_offset) for a kernel-allocated region of size
 * bytes: charged to the user (__io_account_mem) when the ring accounts, then the pages
 * (compound first, single pages otherwise).
 * @kernel io_uring/memmap.c:io_create_region, io_region_allocate_pages (v6.13+;
 *   io_mem_alloc and io_allocate_scq_urings before)
 * Return: 0 or -errno.
 */
export function io_create_region(ctx: io_ring_ctx, mr: io_mapped_region, size: number): number {
  if (WARN_ON_ONCE(mr.pages !== null || mr.nr_pages !== 0)) return -EFAULT;
  if (!size) return -EINVAL;
  const nr_pages = Math.ceil(size / PAGE_SIZE);
  if (ctx.user) {
    const ret = ctx.__io_account_mem(nr_pages);
    if (ret) return ret;
  }
  mr.nr_pages = nr_pages;
  const pages: page[] = [];
  if (io_mem_alloc_compound(pages, nr_pages, nr_pages * PAGE_SIZE)) {
    mr.single_ref = true;
  } else {
    for (let i = 0; i < nr_pages; i++) {
      const p = alloc_pages(GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_NOWARN, 0);
      if (p === null) {
        for (const q of pages) put_page(q);
        if (ctx.user) ctx.__io_unaccount_mem(nr_pages);
        mr.nr_pages = 0;
        return -ENOMEM;
      }
      pages.push(p);
    }
  }
  mr.pages = pages;
  return 0;
}

/**
 * io_free_region(ctx, mr): the region's pages go back (one reference for a compound
 * allocation, one per page otherwise) and the charge is returned.
 * @kernel io_uring/memmap.c:io_free_region (v6.13+)
 */
export function io_free_region(ctx: io_ring_ctx, mr: io_mapped_region): void {
  if (mr.pages) {
    const nr_refs = mr.single_ref ? 1 : mr.nr_pages;
    for (let i = 0; i < nr_refs; i++) {
      if (mr.single_ref) __free_pages_compound(mr.pages[0]!);
      else put_page(mr.pages[i]!);
    }
  }
  if (mr.nr_pages && ctx.user) ctx.__io_unaccount_mem(mr.nr_pages);
  mr.pages = null;
  mr.nr_pages = 0;
  mr.single_ref = false;
}

/** release_pages() of a compound head with one reference left: put_page. */
function __free_pages_compound(head: page): void {
  put_page(head);
}

/**
 * io_mmap_get_region(ctx, pgoff): the region an mmap offset names.
 * @kernel io_uring/memmap.c:io_mmap_get_region (v6.13+)
 */
function io_mmap_get_region(ctx: io_ring_ctx, pgoff: number): io_mapped_region | null {
  const offset = pgoff * PAGE_SIZE;
  switch (offset & IORING_OFF_MMAP_MASK) {
    case IORING_OFF_SQ_RING:
    case IORING_OFF_CQ_RING:
      return ctx.ring_region;
    case IORING_OFF_SQES:
      return ctx.sq_region;
    default:
      return null;
  }
}

/**
 * io_region_mmap(ctx, mr, vma, max_pages): VM_DONTEXPAND, then vm_insert_pages of up to
 * max_pages of the region's pages (v6.10+); before, remap_pfn_range of the whole VMA
 * over the region's pfns.
 * @kernel io_uring/memmap.c:io_region_mmap (v6.13+), io_uring_mmap_pages (v6.10–v6.12);
 *   io_uring/io_uring.c:io_uring_mmap (remap_pfn_range, before v6.10)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* io_region_mmap(
  mr: io_mapped_region,
  vma: vm_area_struct,
  max_pages: number,
): Op<number> {
  const pages = mr.pages!;
  if (!since(6, 10)) {
    const sz = vma.vm_end - vma.vm_start;
    if (sz > mr.nr_pages * PAGE_SIZE) return -EINVAL;
    return yield* remap_pfn_range(vma, vma.vm_start, pages[0]!, sz, vma.vm_page_prot);
  }
  const nr_pages = Math.min(mr.nr_pages, max_pages);
  vm_flags_set(vma, VM_DONTEXPAND);
  const r = yield* vm_insert_pages(vma, vma.vm_start, pages, nr_pages);
  return r.ret;
}

/**
 * io_uring_mmap(file, vma): the region at vm_pgoff (SQ/CQ rings, SQEs; anything else
 * -EINVAL), at most as many ring pages as the VMA covers.
 * @kernel io_uring/memmap.c:io_uring_mmap (v6.10+), io_uring/io_uring.c:io_uring_mmap
 *   (before)
 * Locking: mmap_lock held for write; takes ctx->mmap_lock (not modelled).
 * Return: 0 or -errno.
 */
export function* io_uring_mmap(f: file, vma: vm_area_struct): Op<number> {
  const ctx = f.private_data as io_ring_ctx;
  const sz = vma.vm_end - vma.vm_start;
  const offset = vma.vm_pgoff * PAGE_SIZE;
  const region = io_mmap_get_region(ctx, vma.vm_pgoff);
  if (!region || !region.pages) return -EINVAL;
  let page_limit = INT_MAX;
  switch (offset & IORING_OFF_MMAP_MASK) {
    case IORING_OFF_SQ_RING:
    case IORING_OFF_CQ_RING:
      page_limit = Math.ceil(sz / PAGE_SIZE);
      break;
  }
  // The VMA has no ->fault: a zapped page stays unmapped (vma_dummy_vm_ops).
  vma.vm_ops = io_uring_vm_ops;
  return yield* io_region_mmap(region, vma, page_limit);
}

/**
 * The ops an io_uring VMA ends up with: the kernel leaves vma_dummy_vm_ops from
 * vma_init() in place (no ->fault: a fault on a missing page is SIGBUS); the model's
 * vm_area_alloc leaves NULL, which would read as anonymous memory, so io_uring_mmap sets
 * an empty set explicitly.
 * @kernel mm/vma_init.c:vma_dummy_vm_ops (v6.17+; mm/mmap.c / kernel/fork.c before)
 */
export const io_uring_vm_ops = { name: 'vma_dummy_vm_ops' };
