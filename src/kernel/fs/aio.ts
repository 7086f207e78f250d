/**
 * The AIO ring of io_setup(2): a file on the aio pseudo file system whose page cache
 * holds the ring (zeroed pages the context keeps a reference on), mapped MAP_SHARED
 * read-write into the process with aio_ring_vm_ops: ->fault is filemap_fault and
 * ->page_mkwrite is filemap_page_mkwrite, so the mapping is write-notified and counts as
 * needing dirty tracking: a long-term FOLL_WRITE pin of it is refused (kernel-spec
 * O-1), ordinary GUP works. The context id the process gets is the ring's address.
 *
 * exit_aio (at the mm's last user) and io_destroy tear the context down: the ring file
 * is truncated and released and the context's page references dropped.
 *
 * Left out: submitting and completing I/O (io_submit, io_getevents), the per-CPU request
 * slots, aio_max_nr/aio_nr limits beyond nr_events checks, ring migration
 * (aio_migrate_folio), mremap of the ring (aio_ring_mremap), the compat entry points.
 *
 * @kernel fs/aio.c:io_setup, ioctx_alloc, aio_setup_ring, aio_private_file,
 *   aio_ring_mmap (aio_ring_mmap_prepare v6.17+), aio_ring_vm_ops, aio_free_ring,
 *   put_aio_ring_file, kill_ioctx, exit_aio, io_destroy (all versions)
 */
import type { Op } from '../../sched/index.js';
import type {
  address_space_operations,
  file,
  file_operations,
  folio,
  mm_struct,
  super_block,
  vm_area_struct,
  vm_operations_struct,
} from '../include/linux/mm_types.js';
import { VM_DONTEXPAND } from '../include/linux/mm.js';
import { EAGAIN, EINVAL, ENOMEM } from '../include/linux/errno.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { currentKernel } from '../kernel/kernel.js';
import { get_current } from '../include/linux/sched.js';
import {
  FGP_ACCESSED,
  FGP_CREAT,
  FGP_LOCK,
  __filemap_get_folio,
  filemap_fault,
  filemap_page_mkwrite,
  folio_unlock,
  noop_dirty_folio,
  truncate_setsize,
} from '../mm/filemap.js';
import { folio_mark_uptodate } from '../include/linux/page-flags.js';
import { folio_put } from '../include/linux/page_ref.js';
import { GFP_USER, __GFP_ZERO } from '../mm/page_alloc.js';
import { phys_write } from '../mm/sparse.js';
import { mmap_write_lock, mmap_write_unlock } from '../include/linux/mmap_lock.js';
import { do_mmap, MAP_SHARED, PROT_READ, PROT_WRITE, vm_munmap } from '../mm/mmap.js';
import { alloc_file, new_inode, O_RDWR } from './inode.js';
import { fput } from './file_table.js';

/** sizeof(struct aio_ring) and sizeof(struct io_event). */
const AIO_RING_SIZE = 32;
const IO_EVENT_SIZE = 32;
/** AIO_RING_MAGIC */
export const AIO_RING_MAGIC = 0xa10a10a1;
/** fs.aio-max-nr default. */
export const aio_max_nr = 0x10000;

/** struct kioctx, reduced. */
export interface kioctx {
  readonly id: number;
  user_id: number;
  mmap_base: number;
  mmap_size: number;
  nr_events: number;
  readonly max_reqs: number;
  aio_ring_file: file | null;
  ring_folios: folio[];
  dead: boolean;
}

/** mm->ioctx_table */
const ioctxTables = new WeakMap<mm_struct, kioctx[]>();

function aio_sb(): super_block {
  const k = currentKernel();
  return ((k.sub.aio_sb as super_block | undefined) ??= { s_type: 'aio', s_nowriteback: true });
}

/**
 * aio_ctx_aops: noop dirtying (the ring is never written back); migration not modelled.
 * @kernel fs/aio.c:aio_ctx_aops (all versions)
 */
export const aio_ctx_aops: address_space_operations = {
  name: 'aio_ctx_aops',
  dirty_folio: (m, f) => noop_dirty_folio(m, f),
};

/**
 * aio_ring_vm_ops: filemap_fault, filemap_page_mkwrite (and ->mremap, left out).
 * @kernel fs/aio.c:aio_ring_vm_ops (all versions)
 */
export const aio_ring_vm_ops: vm_operations_struct = {
  name: 'aio_ring_vm_ops',
  fault: filemap_fault,
  page_mkwrite: filemap_page_mkwrite,
};

/**
 * aio_ring_mmap(file, vma): VM_DONTEXPAND and aio_ring_vm_ops.
 * @kernel fs/aio.c:aio_ring_mmap (aio_ring_mmap_prepare v6.17+) (all versions)
 * Return: 0.
 */
export function* aio_ring_mmap(_file: file, vma: vm_area_struct): Op<number> {
  vma.vm_flags |= VM_DONTEXPAND;
  vma.vm_ops = aio_ring_vm_ops;
  return 0;
}

/** aio_ring_fops */
export const aio_ring_fops: file_operations = { name: 'aio_ring_fops', mmap: aio_ring_mmap };

/**
 * aio_private_file(ctx, nr_pages): an anonymous inode of the aio file system of
 * nr_pages pages, and an O_RDWR file "[aio]" on it.
 * @kernel fs/aio.c:aio_private_file (all versions)
 */
function aio_private_file(ctx: kioctx, nr_pages: number): file {
  const inode = new_inode(aio_sb(), 'reg', aio_ctx_aops);
  inode.i_nlink = 0;
  inode.i_mapping.private_data = ctx;
  inode.i_size = PAGE_SIZE * nr_pages;
  return alloc_file('[aio]', O_RDWR, inode, aio_ring_fops);
}

/**
 * put_aio_ring_file(ctx): the ring file is truncated (its pages leave the page cache and
 * every mapping of them) and released.
 * @kernel fs/aio.c:put_aio_ring_file (all versions)
 */
function* put_aio_ring_file(ctx: kioctx): Op<void> {
  const f = ctx.aio_ring_file;
  if (!f) return;
  yield* truncate_setsize(f.f_inode, 0);
  f.f_mapping.private_data = null;
  ctx.aio_ring_file = null;
  fput(f);
}

/**
 * aio_free_ring(ctx): the ring file goes, then the context's references on the ring
 * folios.
 * @kernel fs/aio.c:aio_free_ring (all versions)
 */
function* aio_free_ring(ctx: kioctx): Op<void> {
  yield* put_aio_ring_file(ctx);
  for (const f of ctx.ring_folios) folio_put(f);
  ctx.ring_folios = [];
}

/**
 * aio_setup_ring(ctx, nr_events): the ring's pages are created in the ring file's page
 * cache (zeroed, uptodate, one reference kept by the context) and the file is mapped
 * MAP_SHARED read-write at an address of the kernel's choice; the ring header is
 * written.
 * @kernel fs/aio.c:aio_setup_ring (all versions)
 * Locking: takes mmap_lock for write around do_mmap.
 * Return: 0 or -errno.
 */
function* aio_setup_ring(ctx: kioctx, nr_events: number): Op<number> {
  const mm = get_current().mm!;
  // Compensate for the ring buffer's head/tail overlap entry
  nr_events += 2; // 1 is required, 2 for good luck
  const size = AIO_RING_SIZE + IO_EVENT_SIZE * nr_events;
  const nr_pages = Math.ceil(size / PAGE_SIZE);
  const f = aio_private_file(ctx, nr_pages);
  ctx.aio_ring_file = f;
  nr_events = Math.floor((PAGE_SIZE * nr_pages - AIO_RING_SIZE) / IO_EVENT_SIZE);
  for (let i = 0; i < nr_pages; i++) {
    const r = yield* __filemap_get_folio(
      f.f_mapping,
      i,
      FGP_LOCK | FGP_ACCESSED | FGP_CREAT,
      GFP_USER | __GFP_ZERO,
    );
    if (r < 0) break;
    const fo = r as folio;
    // folio_end_read(folio, true)
    folio_mark_uptodate(fo);
    yield* folio_unlock(fo);
    ctx.ring_folios.push(fo);
  }
  if (ctx.ring_folios.length !== nr_pages) {
    yield* aio_free_ring(ctx);
    return -ENOMEM;
  }
  ctx.mmap_size = nr_pages * PAGE_SIZE;
  yield* mmap_write_lock(mm);
  const base = yield* do_mmap(mm, f, 0, ctx.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
  yield* mmap_write_unlock(mm);
  if (base < 0) {
    ctx.mmap_size = 0;
    yield* aio_free_ring(ctx);
    return -ENOMEM;
  }
  ctx.mmap_base = base;
  ctx.user_id = base;
  ctx.nr_events = nr_events;
  // The ring header, through the kernel mapping of the first page.
  const hdr = new Uint8Array(AIO_RING_SIZE);
  const dv = new DataView(hdr.buffer);
  dv.setUint32(0, 0xffffffff, true); // id (set by ioctx_add_table)
  dv.setUint32(4, nr_events, true); // nr
  dv.setUint32(16, AIO_RING_MAGIC, true); // magic
  dv.setUint32(20, 1, true); // compat_features
  dv.setUint32(28, AIO_RING_SIZE, true); // header_length
  phys_write(ctx.ring_folios[0]! * PAGE_SIZE, hdr);
  return 0;
}

/**
 * ioctx_alloc(nr_events): nr_events is raised to 4 per possible CPU and doubled; too
 * many ⇒ -EINVAL, none or above aio-max-nr ⇒ -EAGAIN; then the ring, and the context
 * joins the mm's table.
 * @kernel fs/aio.c:ioctx_alloc (all versions)
 * Return: the context or -errno.
 */
function* ioctx_alloc(nr_events: number): Op<kioctx | number> {
  const mm = get_current().mm!;
  const max_reqs = nr_events;
  const ncpus = currentKernel().config.CONFIG_NR_CPUS as number;
  nr_events = Math.max(nr_events, ncpus * 4) * 2;
  // Prevent overflows
  if (nr_events > 0x10000000 / IO_EVENT_SIZE) return -EINVAL;
  if (!nr_events || max_reqs > aio_max_nr) return -EAGAIN;
  const ctx: kioctx = {
    id: currentKernel().nextId('kioctx'),
    user_id: 0,
    mmap_base: 0,
    mmap_size: 0,
    nr_events: 0,
    max_reqs,
    aio_ring_file: null,
    ring_folios: [],
    dead: false,
  };
  const err = yield* aio_setup_ring(ctx, nr_events);
  if (err < 0) return err;
  let table = ioctxTables.get(mm);
  if (!table) ioctxTables.set(mm, (table = []));
  table.push(ctx);
  // ring->id = ctx->id (the slot in the table)
  const idb = new Uint8Array(4);
  new DataView(idb.buffer).setUint32(0, table.length - 1, true);
  phys_write(ctx.ring_folios[0]! * PAGE_SIZE, idb);
  return ctx;
}

/**
 * io_setup(nr_events, ctxp): *ctxp must be 0 and nr_events non-zero (-EINVAL); the new
 * context's id (the ring's address) is stored in *ctxp.
 * @kernel fs/aio.c:SYSCALL_DEFINE2(io_setup) (all versions)
 * Return: 0 or -errno.
 * Model: ctxp is an in/out object (the get_user/put_user of the id are left out).
 */
export function* sys_io_setup(nr_events: number, ctxp: { value: number }): Op<number> {
  if (ctxp.value || nr_events === 0) return -EINVAL;
  const ioctx = yield* ioctx_alloc(nr_events);
  if (typeof ioctx === 'number') return ioctx;
  ctxp.value = ioctx.user_id;
  return 0;
}

/**
 * kill_ioctx(mm, ctx, wait): the context leaves the table; its ring is unmapped
 * (vm_munmap, unless the whole mm is going) and freed.
 * @kernel fs/aio.c:kill_ioctx, free_ioctx (all versions)
 * Return: 0, or -EINVAL for a context already dead.
 */
function* kill_ioctx(mm: mm_struct, ctx: kioctx, unmap: boolean): Op<number> {
  if (ctx.dead) return -EINVAL;
  ctx.dead = true;
  const table = ioctxTables.get(mm) ?? [];
  const i = table.indexOf(ctx);
  if (i >= 0) table.splice(i, 1);
  if (unmap && ctx.mmap_size) yield* vm_munmap(mm, ctx.mmap_base, ctx.mmap_size);
  yield* aio_free_ring(ctx);
  return 0;
}

/**
 * io_destroy(ctx): the context with that id is killed; none ⇒ -EINVAL.
 * @kernel fs/aio.c:SYSCALL_DEFINE1(io_destroy) (all versions)
 * Return: 0 or -EINVAL.
 */
export function* sys_io_destroy(ctx_id: number): Op<number> {
  const mm = get_current().mm!;
  const ctx = (ioctxTables.get(mm) ?? []).find((c) => c.user_id === ctx_id);
  if (!ctx) return -EINVAL;
  return yield* kill_ioctx(mm, ctx, true);
}

/**
 * exit_aio(mm): the mm is going away: every context is killed without munmap (exit_mmap
 * unmaps everything) and its ring freed.
 * @kernel fs/aio.c:exit_aio (all versions)
 */
export function* exit_aio(mm: mm_struct): Op<void> {
  const table = ioctxTables.get(mm);
  if (!table) return;
  for (const ctx of [...table]) {
    // We don't need to bother with munmap() here - exit_mmap(mm) is coming and it'll
    // unmap everything. And we'll free the ring pages.
    ctx.mmap_size = 0;
    yield* kill_ioctx(mm, ctx, false);
  }
  ioctxTables.delete(mm);
}

/** The contexts of an mm (the tool's accessor). */
export function aioContexts(mm: mm_struct): readonly kioctx[] {
  return ioctxTables.get(mm) ?? [];
}
