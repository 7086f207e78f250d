/**
 * Reading and writing another address space page by page, as /proc/<pid>/mem, ptrace
 * and core dumps do: each page is taken with get_user_pages_remote (FOLL_GET; the
 * callers pass FOLL_FORCE, and FOLL_WRITE for writes), copied through a kernel mapping of
 * the page, dirtied when written, and put. When GUP cannot take the page (a VM_IO or
 * VM_PFNMAP VMA, secretmem, a forced write to a shared read-only mapping...), the VMA's
 * vm_ops->access is tried (generic_access_phys for /dev/mem-like mappings); without one,
 * or when it fails, the copy stops there.
 *
 * Nothing is an error here: the result is the number of bytes copied, 0 when the first
 * page could not be reached (mem_rw turns that into -EIO).
 *
 * Left out: stack expansion (expand_stack: a fault below a VM_GROWSDOWN VMA), address
 * tagging (untagged_addr_remote), killable lock waits, highmem.
 *
 * @kernel mm/memory.c:__access_remote_vm, access_remote_vm, access_process_vm;
 *   include/linux/mm.h:get_user_page_vma_remote (v6.5+) (all versions)
 */
import type { Op } from '../../sched/index.js';
import type { mm_struct, page, vm_area_struct } from '../include/linux/mm_types.js';
import type { task_struct } from '../include/linux/sched.js';
import { FOLL_NOWAIT, FOLL_WRITE } from '../include/linux/mm.js';
import { EINVAL } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { WARN_ON_ONCE } from '../kernel/panic.js';
import { vma_lookup } from './vma.js';
import { phys_read, phys_write } from './sparse.js';
import { page_folio } from '../include/linux/page-flags.js';
import { put_page } from '../include/linux/page_ref.js';
import { folio_lock, folio_mark_dirty, folio_unlock } from './filemap.js';
import { get_user_pages_remote } from './gup.js';
import { since } from '../version.js';
import { get_task_mm } from '../kernel/fork.access.js';
import { mmput } from '../kernel/fork.js';

/**
 * get_user_page_vma_remote(mm, addr, gup_flags, vmap): one page with a reference and
 * the VMA it is in. FOLL_NOWAIT is refused (WARN, -EINVAL); a VMA that vanished after a
 * successful GUP is a WARN and -EINVAL (the page is put).
 * @kernel include/linux/mm.h:get_user_page_vma_remote (v6.5+)
 * Locking: mmap_lock held for read.
 * Return: { page, vma } or -errno.
 */
export function* get_user_page_vma_remote(
  mm: mm_struct,
  addr: number,
  gup_flags: number,
): Op<{ page: page; vma: vm_area_struct } | number> {
  if (WARN_ON_ONCE((gup_flags & FOLL_NOWAIT) !== 0)) return -EINVAL;
  const pages: page[] = [];
  const got = yield* get_user_pages_remote(mm, addr, 1, gup_flags, pages, null);
  if (got < 0) return got;
  if (got === 0) return -EINVAL;
  const vma = vma_lookup(mm, addr);
  if (WARN_ON_ONCE(vma === null)) {
    put_page(pages[0]!);
    return -EINVAL;
  }
  return { page: pages[0]!, vma: vma! };
}

/**
 * folio_mark_dirty_lock(folio): folio_mark_dirty under the folio lock.
 * @kernel mm/page-writeback.c:folio_mark_dirty_lock (v6.x; set_page_dirty_lock before)
 */
function* folio_mark_dirty_lock(p: page): Op<void> {
  const f = page_folio(p);
  yield* folio_lock(f);
  yield* folio_mark_dirty(f);
  yield* folio_unlock(f);
}

/**
 * __access_remote_vm(mm, addr, buf, len, gup_flags): copies len bytes between buf and
 * mm's memory at addr, page by page. An address in no VMA ends at once (v6.5+: "avoid
 * triggering the temporary warning in __get_user_pages"). A page GUP cannot take is
 * handed to vm_ops->access when the VMA has one; a result ≤ 0 (or no ->access) stops the
 * copy. A written page is marked dirty.
 * @kernel mm/memory.c:__access_remote_vm (all versions; the early vma_lookup from
 *   eee9c708cc89 "gup: avoid stack expansion warning for known-good case", v6.5;
 *   get_user_page_vma_remote v6.5+,
 *   get_user_pages_remote with a vmas array before)
 * Locking: takes and releases mmap_lock for read; GUP runs under it.
 * Return: bytes copied (0 when nothing could be accessed).
 */
export function* __access_remote_vm(
  mm: mm_struct,
  addr: number,
  buf: Uint8Array,
  len: number,
  gup_flags: number,
): Op<number> {
  const write = gup_flags & FOLL_WRITE;
  let done = 0;
  yield* mmap_read_lock(mm);
  // Avoid triggering the temporary warning in __get_user_pages (v6.5+, eee9c708cc89);
  // stack expansion is not modelled.
  if (since(6, 5) && !vma_lookup(mm, addr)) {
    yield* mmap_read_unlock(mm);
    return 0;
  }
  // ignore errors, just check how much was successfully transferred
  while (len) {
    let bytes: number;
    const r = yield* get_user_page_vma_remote(mm, addr, gup_flags);
    if (typeof r === 'number') {
      const vma = vma_lookup(mm, addr);
      if (!vma) break;
      // Check if this is a VM_IO | VM_PFNMAP VMA, which we can access using slightly
      // different code (CONFIG_HAVE_IOREMAP_PROT).
      bytes = 0;
      if (vma.vm_ops?.access) {
        bytes = yield* vma.vm_ops.access(vma, addr, buf.subarray(done, done + len), len, write);
      }
      if (bytes <= 0) break;
    } else {
      const offset = addr % PAGE_SIZE;
      bytes = Math.min(len, PAGE_SIZE - offset);
      const pa = r.page * PAGE_SIZE + offset;
      if (write) {
        // copy_to_user_page() through the kernel mapping, then folio_mark_dirty_lock().
        yield { obj: `pfn${r.page}`, kind: 'write', what: 'copy_to_user_page' };
        phys_write(pa, buf.subarray(done, done + bytes));
        yield* folio_mark_dirty_lock(r.page);
      } else {
        yield { obj: `pfn${r.page}`, kind: 'read', what: 'copy_from_user_page' };
        buf.set(phys_read(pa, bytes), done);
      }
      // folio_release_kmap() / put_page()
      put_page(r.page);
    }
    len -= bytes;
    done += bytes;
    addr += bytes;
  }
  yield* mmap_read_unlock(mm);
  return done;
}

/**
 * access_remote_vm(mm, addr, buf, len, gup_flags): __access_remote_vm on an mm the
 * caller holds a user reference on.
 * @kernel mm/memory.c:access_remote_vm (all versions)
 * Return: bytes copied.
 */
export function access_remote_vm(
  mm: mm_struct,
  addr: number,
  buf: Uint8Array,
  len: number,
  gup_flags: number,
): Op<number> {
  return __access_remote_vm(mm, addr, buf, len, gup_flags);
}

/**
 * access_process_vm(tsk, addr, buf, len, gup_flags): as access_remote_vm on the task's
 * mm, with a user reference held for the duration (0 for a task without an mm).
 * @kernel mm/memory.c:access_process_vm (all versions)
 * Return: bytes copied.
 */
export function* access_process_vm(
  tsk: task_struct,
  addr: number,
  buf: Uint8Array,
  len: number,
  gup_flags: number,
): Op<number> {
  const mm = yield* get_task_mm(tsk);
  if (!mm) return 0;
  const ret = yield* __access_remote_vm(mm, addr, buf, len, gup_flags);
  yield* mmput(mm);
  return ret;
}
