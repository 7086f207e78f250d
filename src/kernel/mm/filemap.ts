/**
 * The page cache: the folios of a file (address_space->i_pages), the folio lock, page-cache
 * faults (filemap_fault, filemap_page_mkwrite), dirtying and writeback, and truncation.
 *
 * A page-cache folio holds one reference for the cache (taken by filemap_add_folio,
 * dropped by filemap_remove_folio) plus one per PTE that maps it and one per transient
 * user. folio->mapping and folio->index name the file and offset; mapping->nrpages counts
 * the cached pages.
 *
 * Left out: readahead (every miss reads one folio), large page-cache folios (all folios
 * are order 0), the invalidate_lock, fault-around (->map_pages), dirty throttling
 * (balance_dirty_pages) and dropping mmap_lock for I/O (filemap_fault never returns
 * VM_FAULT_RETRY), the xarray's shadow and dirty/writeback tags (the PG_dirty and
 * PG_writeback flags stand in for them), and hwpoison.
 *
 * @kernel mm/filemap.c, mm/truncate.c, mm/page-writeback.c (all versions)
 */
import type { Op } from '../../sched/index.js';
import type {
  address_space,
  file,
  folio,
  inode,
  page,
  vm_fault,
  vm_fault_t,
} from '../include/linux/mm_types.js';
import {
  __folio_clear_locked,
  __folio_set_locked,
  folio_clear_dirty,
  folio_clear_writeback,
  folio_index,
  folio_mapped,
  folio_nr_pages,
  folio_raw_mapping,
  folio_set_dirty_flag,
  folio_set_index,
  folio_set_mapping,
  folio_set_writeback,
  folio_test_anon,
  folio_test_dirty,
  folio_test_locked,
  folio_test_uptodate,
  folio_mark_uptodate,
} from '../include/linux/page-flags.js';
import {
  folio_put,
  folio_put_refs,
  folio_ref_add,
  folio_try_get,
} from '../include/linux/page_ref.js';
import { alloc_pages, GFP_HIGHUSER_MOVABLE } from './page_alloc.js';
import {
  VM_FAULT_LOCKED,
  VM_FAULT_MAJOR,
  VM_FAULT_NOPAGE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
} from '../include/linux/mm.js';
import { EEXIST, EIO, ENOENT, ENOMEM } from '../include/linux/errno.js';
import { VM_BUG_ON } from '../kernel/panic.js';
import { folio_mkclean } from './rmap.js';
import { phys_write } from './sparse.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { unmap_mapping_folio, unmap_mapping_range } from './memory.zap.js';
import { pfnsan_owner_pagecache } from './pfnsan/pfnsan.js';

/** fgp_t flags of __filemap_get_folio (include/linux/pagemap.h, v6.x values). */
export const FGP_ACCESSED = 0x1;
export const FGP_LOCK = 0x2;
export const FGP_CREAT = 0x4;
export const FGP_WRITE = 0x8;
export const FGP_NOFS = 0x10;
export const FGP_NOWAIT = 0x20;
export const FGP_FOR_MMAP = 0x40;
export const FGP_STABLE = 0x80;

/** Step object of a folio's lock bit. */
function lockName(f: folio): string {
  return `folio${f}.lock`;
}

/** Step object of the page cache of a mapping (the xarray). */
function ipagesName(mapping: address_space): string {
  return `mapping${mapping.id}.i_pages`;
}

/**
 * mapping_gfp_mask(mapping): the allocation flags of the page cache.
 * @kernel include/linux/pagemap.h:mapping_gfp_mask (all versions)
 * Return: GFP_HIGHUSER_MOVABLE (no file system in the model narrows it).
 */
export function mapping_gfp_mask(_mapping: address_space): number {
  return GFP_HIGHUSER_MOVABLE;
}

/**
 * mapping_can_writeback(mapping): whether dirty folios are written to a backing store.
 * @kernel include/linux/backing-dev.h:mapping_can_writeback (v5.10+; inode_to_bdi before)
 * Return: false for shmem/tmpfs (s_nowriteback), true otherwise.
 */
export function mapping_can_writeback(mapping: address_space): boolean {
  return !mapping.host.i_sb.s_nowriteback;
}

/**
 * folio_lock(folio): sleeps until the folio's lock bit is clear, then sets it.
 * @kernel include/linux/pagemap.h:folio_lock, mm/filemap.c:__folio_lock (all versions;
 *   lock_page before v5.16)
 * Locking: may sleep; the lock is not owned by a thread (any thread may unlock).
 */
export function* folio_lock(f: folio): Op<void> {
  yield {
    obj: lockName(f),
    kind: 'acquire',
    what: 'folio_lock',
    enabled: () => !folio_test_locked(f),
  };
  __folio_set_locked(f);
}

/**
 * folio_trylock(folio): sets the lock bit if it is clear.
 * @kernel include/linux/pagemap.h:folio_trylock (all versions)
 * Return: true when the folio was locked by this call.
 */
export function* folio_trylock(f: folio): Op<boolean> {
  yield { obj: lockName(f), kind: 'acquire', what: 'folio_trylock' };
  if (folio_test_locked(f)) return false;
  __folio_set_locked(f);
  return true;
}

/**
 * folio_unlock(folio): clears the lock bit and wakes waiters.
 * @kernel mm/filemap.c:folio_unlock (all versions; unlock_page before v5.16)
 * Locking: the folio must be locked (VM_BUG_ON_FOLIO otherwise).
 */
export function* folio_unlock(f: folio): Op<void> {
  yield { obj: lockName(f), kind: 'release', what: 'folio_unlock' };
  VM_BUG_ON(
    !folio_test_locked(f),
    `VM_BUG_ON_FOLIO(!folio_test_locked(folio)) pfn:0x${f.toString(16)}`,
  );
  __folio_clear_locked(f);
}

/**
 * filemap_get_entry(mapping, index): lockless page-cache lookup taking a reference.
 * @kernel mm/filemap.c:filemap_get_entry (v6.3+; find_get_entry / mapping_get_entry before)
 * Locking: none (RCU in the kernel); one step on the mapping's i_pages.
 * Return: the folio with a reference held, or null.
 */
export function* filemap_get_entry(mapping: address_space, index: number): Op<folio | null> {
  yield { obj: ipagesName(mapping), kind: 'read', what: 'filemap_get_entry' };
  const f = mapping.i_pages.get(index);
  if (f === undefined) return null;
  if (!folio_try_get(f)) return null;
  return f;
}

/**
 * filemap_get_folio(mapping, index): a referenced page-cache folio, unlocked.
 * @kernel include/linux/pagemap.h:filemap_get_folio (v5.16+; find_get_page before)
 * Locking: none.
 * Return: the folio, or null (the kernel returns ERR_PTR(-ENOENT) since v6.3).
 */
export function* filemap_get_folio(mapping: address_space, index: number): Op<folio | null> {
  const r = yield* __filemap_get_folio(mapping, index, 0, 0);
  return r < 0 ? null : (r as folio);
}

/**
 * filemap_alloc_folio(gfp, order): a new folio for the page cache.
 * @kernel mm/filemap.c:filemap_alloc_folio (v5.16+; __page_cache_alloc before)
 * Return: the folio with one reference, or null.
 */
export function filemap_alloc_folio(gfp: number, order: number): folio | null {
  return alloc_pages(gfp, order) as folio | null;
}

/**
 * __filemap_add_folio(mapping, folio, index): inserts a locked folio into the cache: the
 * cache takes its references, folio->mapping and ->index are set, nrpages grows.
 * @kernel mm/filemap.c:__filemap_add_folio (v5.16+; __add_to_page_cache_locked before)
 * Locking: the folio is locked; takes the i_pages lock (one step).
 * Return: 0, or -EEXIST when another folio is cached at index.
 */
export function* __filemap_add_folio(mapping: address_space, f: folio, index: number): Op<number> {
  const nr = folio_nr_pages(f);
  folio_ref_add(f, nr);
  folio_set_mapping(f, mapping, false);
  folio_set_index(f, index);
  yield { obj: ipagesName(mapping), kind: 'write', what: '__filemap_add_folio' };
  if (mapping.i_pages.has(index)) {
    folio_set_mapping(f, null, false);
    folio_put_refs(f, nr);
    return -EEXIST;
  }
  mapping.i_pages.set(index, f);
  mapping.nrpages += nr;
  pfnsan_owner_pagecache(f, nr, mapping.host.i_ino);
  return 0;
}

/**
 * filemap_add_folio(mapping, folio, index, gfp): locks a new folio and adds it to the cache.
 * @kernel mm/filemap.c:filemap_add_folio (v5.16+; add_to_page_cache_lru before)
 * Locking: the folio must be new (nobody else can see it).
 * Return: 0 with the folio locked, or -EEXIST (folio unlocked).
 */
export function* filemap_add_folio(
  mapping: address_space,
  f: folio,
  index: number,
  _gfp: number,
): Op<number> {
  __folio_set_locked(f);
  const ret = yield* __filemap_add_folio(mapping, f, index);
  if (ret) __folio_clear_locked(f);
  return ret;
}

/**
 * __filemap_get_folio(mapping, index, fgp_flags, gfp): finds (and with FGP_CREAT creates)
 * the folio at index. FGP_LOCK returns it locked, rechecking truncation; FGP_FOR_MMAP
 * returns a newly created folio unlocked.
 * @kernel mm/filemap.c:__filemap_get_folio (v5.16+; pagecache_get_page before)
 * Locking: may sleep on the folio lock.
 * Return: the folio with a reference, or -ENOENT / -ENOMEM (ERR_PTR).
 */
export function* __filemap_get_folio(
  mapping: address_space,
  index: number,
  fgp_flags: number,
  gfp: number,
): Op<folio | number> {
  for (;;) {
    let f = yield* filemap_get_entry(mapping, index);
    if (f !== null && fgp_flags & FGP_LOCK) {
      if (fgp_flags & FGP_NOWAIT) {
        if (!(yield* folio_trylock(f))) {
          folio_put(f);
          return -11; // -EAGAIN
        }
      } else {
        yield* folio_lock(f);
      }
      // Has the page been truncated?
      if (folio_raw_mapping(f) !== mapping) {
        yield* folio_unlock(f);
        folio_put(f);
        continue;
      }
    }
    if (f === null && fgp_flags & FGP_CREAT) {
      f = filemap_alloc_folio(gfp || mapping_gfp_mask(mapping), 0);
      if (f === null) return -ENOMEM;
      const err = yield* filemap_add_folio(mapping, f, index, gfp);
      if (err) {
        folio_put(f);
        if (err === -EEXIST) continue;
        return err;
      }
      // filemap_add_folio locks the folio; for mmap an unlocked folio is expected.
      if (fgp_flags & FGP_FOR_MMAP) yield* folio_unlock(f);
    }
    return f === null ? -ENOENT : f;
  }
}

/**
 * __filemap_remove_folio(folio, shadow): takes the folio out of i_pages, clears
 * folio->mapping and lowers nrpages. The cache's references are not dropped here.
 * @kernel mm/filemap.c:__filemap_remove_folio (v5.16+; __delete_from_page_cache before)
 * Locking: folio locked; i_pages lock held (the caller's step).
 */
export function __filemap_remove_folio(f: folio): void {
  const mapping = folio_raw_mapping(f) as address_space | null;
  if (!mapping) return;
  const index = folio_index(f);
  if (mapping.i_pages.get(index) === f) mapping.i_pages.delete(index);
  mapping.nrpages -= folio_nr_pages(f);
  folio_set_mapping(f, null, false);
}

/**
 * filemap_remove_folio(folio): removes a locked folio from the page cache and drops the
 * cache's references (filemap_free_folio).
 * @kernel mm/filemap.c:filemap_remove_folio (v5.16+; delete_from_page_cache before)
 * Locking: folio locked (VM_BUG_ON otherwise); takes the i_pages lock.
 */
export function* filemap_remove_folio(f: folio): Op<void> {
  VM_BUG_ON(
    !folio_test_locked(f),
    `VM_BUG_ON_FOLIO(!folio_test_locked(folio)) pfn:0x${f.toString(16)}`,
  );
  const mapping = folio_raw_mapping(f) as address_space | null;
  if (!mapping) return;
  yield { obj: ipagesName(mapping), kind: 'write', what: 'filemap_remove_folio' };
  const nr = folio_nr_pages(f);
  __filemap_remove_folio(f);
  folio_put_refs(f, nr);
}

/**
 * folio_mark_dirty(folio): sets PG_dirty through the mapping's ->dirty_folio.
 * @kernel mm/page-writeback.c:folio_mark_dirty (v5.16+; set_page_dirty before)
 * Locking: the folio is locked or otherwise pinned to its mapping; one step on its flags.
 * Return: true when the folio was clean before.
 */
export function* folio_mark_dirty(f: folio): Op<boolean> {
  yield { obj: `folio${f}.flags`, kind: 'write', what: 'folio_mark_dirty' };
  const mapping = folio_test_anon(f) ? null : (folio_raw_mapping(f) as address_space | null);
  if (mapping?.a_ops.dirty_folio) return mapping.a_ops.dirty_folio(mapping, f);
  return noop_dirty_folio(mapping, f);
}

/**
 * noop_dirty_folio / filemap_dirty_folio: test-and-set PG_dirty (the xarray dirty tag and
 * inode dirtying are not modelled).
 * @kernel mm/page-writeback.c:noop_dirty_folio, filemap_dirty_folio (v5.18+;
 *   __set_page_dirty_nobuffers before)
 * Return: true when the folio was clean before.
 */
export function noop_dirty_folio(_mapping: address_space | null, f: folio): boolean {
  if (folio_test_dirty(f)) return false;
  folio_set_dirty_flag(f);
  return true;
}
export const filemap_dirty_folio = noop_dirty_folio;

/**
 * folio_clear_dirty_for_io(folio): before writeback, write-protects and cleans every PTE
 * mapping the folio (folio_mkclean), carrying their dirty bits to the folio, then
 * test-and-clears PG_dirty. The next write through a shared mapping faults again.
 * @kernel mm/page-writeback.c:folio_clear_dirty_for_io (v5.18+; clear_page_dirty_for_io)
 * Locking: folio locked.
 * Return: true when the folio was dirty (and must be written).
 */
export function* folio_clear_dirty_for_io(f: folio): Op<boolean> {
  const mapping = folio_raw_mapping(f) as address_space | null;
  VM_BUG_ON(
    !folio_test_locked(f),
    `VM_BUG_ON_FOLIO(!folio_test_locked(folio)) pfn:0x${f.toString(16)}`,
  );
  if (mapping && mapping_can_writeback(mapping)) {
    if ((yield* folio_mkclean(f)) > 0) yield* folio_mark_dirty(f);
  }
  const was = folio_test_dirty(f);
  folio_clear_dirty(f);
  return was;
}

/**
 * filemap_write_and_wait_range(mapping, lstart, lend): writes every dirty folio of
 * [lstart, lend] to the backing store: lock, folio_clear_dirty_for_io (folio_mkclean),
 * ->writepage under PG_writeback, unlock. Synchronous, so the wait is the write itself.
 * @kernel mm/filemap.c:filemap_write_and_wait_range, mm/page-writeback.c:write_cache_pages
 *   (all versions)
 * Locking: may sleep; takes folio locks, i_mmap_rwsem and PTLs (through folio_mkclean).
 * Return: 0 or the first -errno of ->writepage.
 */
export function* filemap_write_and_wait_range(
  mapping: address_space,
  lstart: number,
  lend: number,
): Op<number> {
  if (!mapping_can_writeback(mapping) || !mapping.nrpages) return 0;
  const first = Math.floor(lstart / PAGE_SIZE);
  const last = lend < 0 ? Infinity : Math.floor(lend / PAGE_SIZE);
  yield { obj: ipagesName(mapping), kind: 'read', what: 'write_cache_pages' };
  const indices = [...mapping.i_pages.keys()]
    .filter((i) => i >= first && i <= last)
    .sort((a, b) => a - b);
  let err = 0;
  for (const index of indices) {
    const f = yield* filemap_get_entry(mapping, index);
    if (f === null) continue;
    if (!folio_test_dirty(f)) {
      folio_put(f);
      continue;
    }
    yield* folio_lock(f);
    if (folio_raw_mapping(f) !== mapping || !(yield* folio_clear_dirty_for_io(f))) {
      yield* folio_unlock(f);
      folio_put(f);
      continue;
    }
    folio_set_writeback(f);
    const ret = mapping.a_ops.writepage ? yield* mapping.a_ops.writepage(mapping, f) : 0;
    folio_clear_writeback(f);
    if (ret && !err) err = ret;
    yield* folio_unlock(f);
    folio_put(f);
  }
  return err;
}

/**
 * filemap_read_folio(file, filler, folio): calls ->read_folio on a locked folio and waits
 * for it (the model's ->read_folio is synchronous and unlocks the folio).
 * @kernel mm/filemap.c:filemap_read_folio (v6.0+; read_page before)
 * Return: 0 when the folio is uptodate afterwards, else -EIO or the filler's error.
 */
export function* filemap_read_folio(
  file: file | null,
  mapping: address_space,
  f: folio,
): Op<number> {
  const filler = mapping.a_ops.read_folio;
  if (!filler) {
    // No backing store: the folio reads as zeroes (simple_read_folio / ramfs).
    folio_mark_uptodate_zeroed(f);
    yield* folio_unlock(f);
    return 0;
  }
  const err = yield* filler(file, f);
  if (err) return err;
  yield {
    obj: lockName(f),
    kind: 'read',
    what: 'folio_wait_locked',
    enabled: () => !folio_test_locked(f),
  };
  return folio_test_uptodate(f) ? 0 : -EIO;
}

function folio_mark_uptodate_zeroed(f: folio): void {
  const n = folio_nr_pages(f);
  for (let i = 0; i < n; i++) phys_write((f + i) * PAGE_SIZE, new Uint8Array(PAGE_SIZE));
  folio_mark_uptodate(f);
}

/**
 * filemap_fault(vmf): ->fault of page-cache files. Beyond EOF ⇒ VM_FAULT_SIGBUS. A cached
 * folio is locked and returned; on a miss (VM_FAULT_MAJOR) a folio is added to the cache
 * and filled through ->read_folio, then looked up again. Truncation while waiting for the
 * lock retries the lookup.
 * @kernel mm/filemap.c:filemap_fault (all versions)
 * Locking: mmap_lock held for read (never dropped in the model).
 * Return: VM_FAULT_LOCKED (| VM_FAULT_MAJOR) with vmf->page set to the locked folio's page
 *   and a reference held; or VM_FAULT_SIGBUS / VM_FAULT_OOM.
 * Left out: readahead, mmap_lock dropping (VM_FAULT_RETRY), the invalidate_lock.
 */
export function* filemap_fault(vmf: vm_fault): Op<vm_fault_t> {
  const file = vmf.vma.vm_file!;
  const mapping = file.f_mapping;
  const inode = mapping.host;
  const index = vmf.pgoff;
  let ret = 0;
  let max_idx = Math.ceil(inode.i_size / PAGE_SIZE);
  if (index >= max_idx) return VM_FAULT_SIGBUS;
  let f = yield* filemap_get_folio(mapping, index);
  for (;;) {
    if (f === null) {
      // No folio in the page cache at all: a major fault.
      ret = VM_FAULT_MAJOR;
      const r = yield* __filemap_get_folio(mapping, index, FGP_CREAT | FGP_FOR_MMAP, vmf.gfp_mask);
      if (r < 0) return VM_FAULT_OOM;
      f = r as folio;
    }
    yield* folio_lock(f);
    // Did it get truncated?
    if (folio_raw_mapping(f) !== mapping) {
      yield* folio_unlock(f);
      folio_put(f);
      f = yield* filemap_get_folio(mapping, index);
      continue;
    }
    if (!folio_test_uptodate(f)) {
      // page_not_uptodate: read it, drop our reference and look it up again.
      const error = yield* filemap_read_folio(file, mapping, f);
      folio_put(f);
      if (error) return VM_FAULT_SIGBUS;
      f = yield* filemap_get_folio(mapping, index);
      continue;
    }
    break;
  }
  // Found the folio, but is it still within i_size?
  max_idx = Math.ceil(inode.i_size / PAGE_SIZE);
  if (index >= max_idx) {
    yield* folio_unlock(f);
    folio_put(f);
    return VM_FAULT_SIGBUS;
  }
  vmf.page = (f + (index - folio_index(f))) as page;
  return ret | VM_FAULT_LOCKED;
}

/**
 * filemap_page_mkwrite(vmf): generic ->page_mkwrite: locks the folio, returns
 * VM_FAULT_NOPAGE if it was truncated, else marks it dirty.
 * @kernel mm/filemap.c:filemap_page_mkwrite (all versions)
 * Locking: mmap_lock held for read; returns with the folio locked.
 * Return: VM_FAULT_LOCKED or VM_FAULT_NOPAGE.
 * Left out: sb_start_pagefault (freezing), file_update_time, folio_wait_stable.
 */
export function* filemap_page_mkwrite(vmf: vm_fault): Op<vm_fault_t> {
  const mapping = vmf.vma.vm_file!.f_mapping;
  const f = vmf.page! as number as folio;
  yield* folio_lock(f);
  if (folio_raw_mapping(f) !== mapping) {
    yield* folio_unlock(f);
    return VM_FAULT_NOPAGE;
  }
  yield* folio_mark_dirty(f);
  return VM_FAULT_LOCKED;
}

/**
 * truncate_inode_folio(mapping, folio): unmaps a locked page-cache folio from every
 * mapping of the file (private COWed copies stay) and removes it from the cache.
 * @kernel mm/truncate.c:truncate_inode_folio (v5.16+; truncate_inode_page before)
 * Locking: folio locked.
 * Return: 0, or -EIO when the folio is no longer in this mapping.
 */
export function* truncate_inode_folio(mapping: address_space, f: folio): Op<number> {
  if (folio_raw_mapping(f) !== mapping) return -EIO;
  // truncate_cleanup_folio()
  if (folio_mapped(f)) yield* unmap_mapping_folio(f);
  folio_clear_dirty(f);
  yield* filemap_remove_folio(f);
  return 0;
}

/**
 * truncate_inode_pages_range(mapping, lstart, lend): removes the cached folios wholly
 * inside [lstart, lend] (lend -1 = to the end) and zeroes the truncated part of a partial
 * folio at lstart.
 * @kernel mm/truncate.c:truncate_inode_pages_range (all versions)
 * Locking: the caller holds the inode lock (not modelled); takes folio locks.
 */
export function* truncate_inode_pages_range(
  mapping: address_space,
  lstart: number,
  lend: number,
): Op<void> {
  if (mapping.nrpages === 0) return;
  const start = Math.ceil(lstart / PAGE_SIZE);
  const end = lend === -1 ? Infinity : Math.floor((lend + 1) / PAGE_SIZE);
  // The partial folio at lstart keeps its head and loses its tail.
  if (lstart % PAGE_SIZE !== 0) {
    const r = yield* __filemap_get_folio(mapping, Math.floor(lstart / PAGE_SIZE), FGP_LOCK, 0);
    if (r >= 0) {
      const f = r as folio;
      const off = lstart % PAGE_SIZE;
      const stop =
        lend !== -1 && lend < (folio_index(f) + 1) * PAGE_SIZE ? (lend % PAGE_SIZE) + 1 : PAGE_SIZE;
      phys_write(f * PAGE_SIZE + off, new Uint8Array(stop - off));
      yield* folio_unlock(f);
      folio_put(f);
    }
  }
  yield { obj: ipagesName(mapping), kind: 'read', what: 'truncate_inode_pages_range' };
  const indices = [...mapping.i_pages.keys()]
    .filter((i) => i >= start && i < end)
    .sort((a, b) => a - b);
  for (const index of indices) {
    const r = yield* __filemap_get_folio(mapping, index, FGP_LOCK, 0);
    if (r < 0) continue;
    const f = r as folio;
    yield* truncate_inode_folio(mapping, f);
    yield* folio_unlock(f);
    folio_put(f);
  }
}

/**
 * truncate_inode_pages(mapping, lstart): truncate_inode_pages_range(mapping, lstart, -1).
 * @kernel mm/truncate.c:truncate_inode_pages (all versions)
 */
export function truncate_inode_pages(mapping: address_space, lstart: number): Op<void> {
  return truncate_inode_pages_range(mapping, lstart, -1);
}

/**
 * truncate_pagecache(inode, newsize): unmaps the file beyond newsize from every mapping
 * (COWed private pages too, even_cows=1), drops those cached folios, and unmaps again to
 * catch pages faulted in meanwhile.
 * @kernel mm/truncate.c:truncate_pagecache (all versions)
 * Locking: the caller holds the inode lock and has already set i_size.
 */
export function* truncate_pagecache(inode: inode, newsize: number): Op<void> {
  const mapping = inode.i_mapping;
  const holebegin = Math.ceil(newsize / PAGE_SIZE) * PAGE_SIZE;
  yield* unmap_mapping_range(mapping, holebegin, 0, 1);
  yield* truncate_inode_pages(mapping, newsize);
  yield* unmap_mapping_range(mapping, holebegin, 0, 1);
}

/**
 * truncate_setsize(inode, newsize): sets i_size and truncates the page cache.
 * @kernel mm/truncate.c:truncate_setsize (all versions)
 * Locking: the caller holds the inode lock (not modelled).
 * Left out: pagecache_isize_extended when growing.
 */
export function* truncate_setsize(inode: inode, newsize: number): Op<void> {
  inode.i_size = newsize;
  yield* truncate_pagecache(inode, newsize);
}
