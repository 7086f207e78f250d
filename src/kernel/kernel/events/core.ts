/**
 * perf events, as far as their ring buffer mapping goes: perf_event_open of a software
 * event returns an anon-inode file; mmap of it (offset 0, 1 + 2^n pages, MAP_SHARED)
 * allocates the ring (a user control page and 2^n data pages, zeroed kernel pages) and
 * maps it.
 *
 * From v6.14 (b709eb872e19 "perf: map pages in advance") perf_mmap maps every page at
 * mmap time with remap_pfn_range, one page at a time, read-only
 * (vm_get_page_prot(vm_flags & ~VM_SHARED)): the VMA is VM_IO|VM_PFNMAP (+VM_DONTEXPAND,
 * VM_DONTDUMP from remap_pfn_range, VM_DONTCOPY from perf_mmap), GUP refuses it, and the
 * first write to a page faults into perf_mmap_pfn_mkwrite: page 0 (the control page)
 * becomes writable, the data pages SIGBUS. Before v6.14 the pages were mapped on demand
 * by perf_mmap_fault (a reference and page->mapping set, so they were ordinary file
 * pages to the fault path) with the same function as ->page_mkwrite (page 0 writable,
 * others SIGBUS), and VM_DONTCOPY|VM_DONTEXPAND|VM_DONTDUMP without VM_IO|VM_PFNMAP.
 *
 * Left out: events themselves (counting, sampling: nothing is ever written to the ring),
 * the AUX area (vm_pgoff != 0), perf_event_mlock_kb accounting, CONFIG_PERF_USE_VMALLOC
 * (off on x86), event groups, inheritance, CPU-wide events.
 *
 * @kernel kernel/events/core.c:perf_event_open, perf_mmap, map_range (v6.14+),
 *   perf_mmap_pfn_mkwrite (v6.14+), perf_mmap_fault (before v6.14), perf_mmap_close;
 *   kernel/events/ring_buffer.c:rb_alloc, perf_mmap_to_page
 */
import type { Op } from '../../../sched/index.js';
import type {
  file,
  file_operations,
  inode,
  page,
  vm_area_struct,
  vm_fault,
  vm_fault_t,
  vm_operations_struct,
} from '../../include/linux/mm_types.js';
import { FAULT_FLAG_MKWRITE, FAULT_FLAG_WRITE } from '../../include/linux/mm_types.js';
import {
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_SHARED,
  VM_WRITE,
  vma_pages,
} from '../../include/linux/mm.js';
import { O_CLOEXEC } from '../../include/linux/fs.js';
import { O_RDWR } from '../../fs/inode.js';
import { EACCES, EINVAL, ENOENT, ENOMEM } from '../../include/linux/errno.js';
import { PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { get_current } from '../../include/linux/sched.js';
import { since } from '../../version.js';
import { alloc_page, GFP_KERNEL, __GFP_ZERO, __free_pages } from '../../mm/page_alloc.js';
import { get_page } from '../../include/linux/page_ref.js';
import { folio_set_index, folio_set_mapping, page_folio } from '../../include/linux/page-flags.js';
import { remap_pfn_range } from '../../mm/memory.pfnmap.js';
import { zap_page_range_single } from '../../mm/memory.zap.js';
import { vm_get_page_prot } from '../../mm/mmap.js';
import { anon_inode_getfile } from '../../fs/anon_inodes.js';
import { fd_install, get_unused_fd_flags } from '../../include/linux/fdtable.js';

/** perf_event_attr.type values. */
export const PERF_TYPE_HARDWARE = 0;
export const PERF_TYPE_SOFTWARE = 1;
/** Software event ids (enum perf_sw_ids). */
export const PERF_COUNT_SW_CPU_CLOCK = 0;
export const PERF_COUNT_SW_TASK_CLOCK = 1;
export const PERF_COUNT_SW_PAGE_FAULTS = 2;
export const PERF_COUNT_SW_DUMMY = 9;
export const PERF_COUNT_SW_MAX = 12;
/** PERF_FLAG_FD_CLOEXEC */
export const PERF_FLAG_FD_CLOEXEC = 1 << 3;

/** struct perf_event_attr, reduced. */
export interface perf_event_attr {
  type: number;
  config: number;
  disabled?: boolean;
  exclude_kernel?: boolean;
}

/** struct perf_buffer, reduced: the user page and the data pages. */
export interface perf_buffer {
  readonly user_page: page;
  readonly data_pages: page[];
  readonly nr_pages: number;
  /** RING_BUFFER_WRITABLE */
  readonly writable: boolean;
  /** Mappings of the buffer (rb->mmap_count). */
  mmap_count: number;
}

/** struct perf_event, reduced. */
export interface perf_event {
  readonly id: number;
  readonly attr: perf_event_attr;
  rb: perf_buffer | null;
  mmap_count: number;
  released: boolean;
}

/** kernel.perf_event_paranoid (default 2). */
export const sysctl_perf_event_paranoid = 2;

/** perfmon_capable() */
function perfmon_capable(): boolean {
  const c = get_current().caps;
  return c.has('CAP_PERFMON') || c.has('CAP_SYS_ADMIN');
}

/**
 * rb_alloc(nr_pages, watermark, cpu, flags): the user page and nr_pages data pages,
 * each a zeroed kernel page.
 * @kernel kernel/events/ring_buffer.c:rb_alloc (!CONFIG_PERF_USE_VMALLOC, all versions)
 * Return: the buffer, or null.
 */
export function rb_alloc(nr_pages: number, writable: boolean): perf_buffer | null {
  const user_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
  if (user_page === null) return null;
  const data_pages: page[] = [];
  for (let i = 0; i < nr_pages; i++) {
    const p = alloc_page(GFP_KERNEL | __GFP_ZERO);
    if (p === null) {
      for (const q of data_pages) __free_pages(q, 0);
      __free_pages(user_page, 0);
      return null;
    }
    data_pages.push(p);
  }
  return { user_page, data_pages, nr_pages, writable, mmap_count: 0 };
}

/** rb_free: the pages go back to the allocator. */
function rb_free(rb: perf_buffer): void {
  for (const p of rb.data_pages) {
    folio_set_mapping(page_folio(p), null, false);
    __free_pages(p, 0);
  }
  folio_set_mapping(page_folio(rb.user_page), null, false);
  __free_pages(rb.user_page, 0);
}

/**
 * perf_mmap_to_page(rb, pgoff): page 0 is the user page, then the data pages.
 * @kernel kernel/events/ring_buffer.c:perf_mmap_to_page (all versions)
 */
export function perf_mmap_to_page(rb: perf_buffer, pgoff: number): page | null {
  if (pgoff > rb.nr_pages) return null;
  if (pgoff === 0) return rb.user_page;
  return rb.data_pages[pgoff - 1] ?? null;
}

/**
 * perf_mmap_pfn_mkwrite(vmf): the first page is the user control page, others are
 * read-only.
 * @kernel kernel/events/core.c:perf_mmap_pfn_mkwrite (v6.14+)
 * Return: 0 for page 0, VM_FAULT_SIGBUS otherwise.
 */
export function* perf_mmap_pfn_mkwrite(vmf: vm_fault): Op<vm_fault_t> {
  return vmf.pgoff === 0 ? 0 : VM_FAULT_SIGBUS;
}

/**
 * perf_mmap_fault(vmf): before v6.14, ->fault and ->page_mkwrite: a mkwrite of page 0 is
 * allowed, of any other page SIGBUS; a write fault on a data page SIGBUSes; otherwise the
 * buffer's page with a reference, its mapping and index set as for a file page.
 * @kernel kernel/events/core.c:perf_mmap_fault (before v6.14)
 * Return: 0 (vmf->page set, unlocked) or VM_FAULT_SIGBUS.
 */
export function* perf_mmap_fault(vmf: vm_fault): Op<vm_fault_t> {
  const event = vmf.vma.vm_file!.private_data as perf_event;
  if (vmf.flags & FAULT_FLAG_MKWRITE) return vmf.pgoff === 0 ? 0 : VM_FAULT_SIGBUS;
  const rb = event.rb;
  if (!rb) return VM_FAULT_SIGBUS;
  if (vmf.pgoff && vmf.flags & FAULT_FLAG_WRITE) return VM_FAULT_SIGBUS;
  const p = perf_mmap_to_page(rb, vmf.pgoff);
  if (!p) return VM_FAULT_SIGBUS;
  get_page(p);
  const f = page_folio(p);
  folio_set_mapping(f, vmf.vma.vm_file!.f_mapping, false);
  folio_set_index(f, vmf.pgoff);
  vmf.page = p;
  return 0;
}

/**
 * perf_mmap_close(vma): one mapping fewer; the last mapping of a released event frees
 * the buffer.
 * @kernel kernel/events/core.c:perf_mmap_close (all versions; reduced)
 */
export function perf_mmap_close(vma: vm_area_struct): void {
  const event = vma.vm_file!.private_data as perf_event;
  const rb = event.rb;
  event.mmap_count--;
  if (!rb) return;
  rb.mmap_count--;
  if (rb.mmap_count === 0 && event.mmap_count === 0) {
    event.rb = null;
    rb_free(rb);
  }
}

/**
 * perf_mmap_may_split(vma, addr): perf mappings cannot be split ("perf: Prevent VMA
 * split of buffer mappings", v6.17, backported to stable); before, splitting was allowed.
 * @kernel kernel/events/core.c:perf_mmap_may_split (v6.17+)
 * Return: -EINVAL (v6.17+), 0 before.
 */
export function perf_mmap_may_split(_vma: vm_area_struct, _addr: number): number {
  return since(6, 17) ? -EINVAL : 0;
}

/** perf_mmap_vmops (v6.14+ form). */
export const perf_mmap_vmops: vm_operations_struct = {
  name: 'perf_mmap_vmops',
  close: perf_mmap_close,
  pfn_mkwrite: perf_mmap_pfn_mkwrite,
  may_split: perf_mmap_may_split,
};

/** perf_mmap_vmops before v6.14: the fault path. */
export const perf_mmap_vmops_fault: vm_operations_struct = {
  name: 'perf_mmap_vmops',
  close: perf_mmap_close,
  fault: perf_mmap_fault,
  page_mkwrite: perf_mmap_fault,
};

/**
 * map_range(rb, vma): maps every page of the VMA now, each with its own
 * remap_pfn_range, read-only (perf_mmap_pfn_mkwrite decides on a write fault); a
 * failure zaps what was mapped.
 * @kernel kernel/events/core.c:map_range (v6.14+)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* map_range(rb: perf_buffer, vma: vm_area_struct): Op<number> {
  const nr_pages = vma_pages(vma);
  let err = 0;
  for (let pagenum = 0; pagenum < nr_pages; pagenum++) {
    const va = vma.vm_start + PAGE_SIZE * pagenum;
    const p = perf_mmap_to_page(rb, vma.vm_pgoff + pagenum);
    if (p === null) {
      err = -EINVAL;
      break;
    }
    // Map readonly, perf_mmap_pfn_mkwrite() called on write fault.
    err = yield* remap_pfn_range(
      vma,
      va,
      p,
      PAGE_SIZE,
      vm_get_page_prot(vma.vm_flags & ~VM_SHARED),
    );
    if (err) break;
  }
  // Clear any partial mappings on error.
  if (err) yield* zap_page_range_single(vma, vma.vm_start, nr_pages * PAGE_SIZE, null);
  return err;
}

/**
 * perf_mmap(file, vma): the ring buffer mapping: shared mappings only, offset 0 (the AUX
 * area is left out), 1 + 2^n pages (-EINVAL otherwise); a second mapping must match the
 * existing buffer's size; a writable mapping makes a writable buffer. Then VM_DONTCOPY |
 * VM_DONTEXPAND | VM_DONTDUMP, perf_mmap_vmops, and (v6.14+) map_range.
 * @kernel kernel/events/core.c:perf_mmap (all versions; reduced)
 * Locking: mmap_lock held for write.
 * Return: 0 or -errno.
 */
export function* perf_mmap(f: file, vma: vm_area_struct): Op<number> {
  const event = f.private_data as perf_event;
  if (!(vma.vm_flags & VM_SHARED)) return -EINVAL;
  const vma_size = vma.vm_end - vma.vm_start;
  if (vma.vm_pgoff !== 0) return -EINVAL; // the AUX area is not modelled
  const nr_pages = vma_size / PAGE_SIZE - 1;
  // If we have rb pages ensure they're a power-of-two number, so we can do bitmasks
  // instead of modulo.
  if (nr_pages !== 0 && (nr_pages & (nr_pages - 1)) !== 0) return -EINVAL;
  if (vma_size !== PAGE_SIZE * (1 + nr_pages)) return -EINVAL;
  let rb = event.rb;
  if (rb) {
    if (rb.nr_pages !== nr_pages) return -EINVAL;
  } else {
    rb = rb_alloc(nr_pages, (vma.vm_flags & VM_WRITE) !== 0n);
    if (!rb) return -ENOMEM;
    event.rb = rb;
  }
  rb.mmap_count++;
  event.mmap_count++;
  vma.vm_flags |= VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP;
  if (since(6, 14)) {
    vma.vm_ops = perf_mmap_vmops;
    return yield* map_range(rb, vma);
  }
  vma.vm_ops = perf_mmap_vmops_fault;
  return 0;
}

/**
 * perf_release(inode, file): the event goes; its buffer stays while mapped.
 * @kernel kernel/events/core.c:perf_release (reduced)
 */
export function perf_release(_i: inode, f: file): void {
  const event = f.private_data as perf_event;
  event.released = true;
  const rb = event.rb;
  if (rb && rb.mmap_count === 0) {
    event.rb = null;
    rb_free(rb);
  }
}

/** perf_fops */
export const perf_fops: file_operations = {
  name: 'perf_fops',
  mmap: perf_mmap,
  release: perf_release,
};

/**
 * perf_event_open(attr, pid, cpu, group_fd, flags): a software event of the calling task
 * (pid 0 or its own pid, cpu -1). Unknown types or configs ⇒ -ENOENT/-EINVAL; a
 * kernel-counting event without CAP_PERFMON under perf_event_paranoid 2 ⇒ -EACCES.
 * @kernel kernel/events/core.c:SYSCALL_DEFINE5(perf_event_open) (reduced)
 * Return: the descriptor or -errno.
 */
export function* sys_perf_event_open(
  attr: perf_event_attr,
  pid: number,
  cpu: number,
  group_fd: number,
  flags: number,
): Op<number> {
  if (flags & ~PERF_FLAG_FD_CLOEXEC) return -EINVAL;
  if (attr.type !== PERF_TYPE_SOFTWARE) return -ENOENT;
  if (attr.config >= PERF_COUNT_SW_MAX) return -ENOENT;
  if (!attr.exclude_kernel && sysctl_perf_event_paranoid > 1 && !perfmon_capable()) return -EACCES;
  if (cpu !== -1 || group_fd !== -1 || (pid !== 0 && pid !== get_current().pid)) {
    throw new Error(
      'perf_event_open: only events of the calling task (pid 0, cpu -1, group_fd -1) are modelled',
    );
  }
  const event_fd = yield* get_unused_fd_flags(flags & PERF_FLAG_FD_CLOEXEC ? O_CLOEXEC : 0);
  if (event_fd < 0) return event_fd;
  const event: perf_event = { id: event_fd, attr, rb: null, mmap_count: 0, released: false };
  const f = anon_inode_getfile('[perf_event]', perf_fops, event, O_RDWR);
  yield* fd_install(event_fd, f);
  return event_fd;
}
