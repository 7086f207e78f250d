/**
 * The I/O resource tree (kernel/resource.c, include/linux/ioport.h): iomem_resource and
 * ioport_resource, requesting and releasing resources and busy regions, the System RAM
 * queries, iomem_is_exclusive() for /dev/mem, and /proc/iomem.
 *
 * The tree is linked as in the kernel (parent, sibling, child; siblings sorted by start
 * and never overlapping). State is per kernel instance, under `currentKernel().sub.iomem`,
 * created on first use by {@link iomem_resource} / {@link ioport_resource}.
 *
 * Numbers: addresses are plain JS numbers, exact below 2^53. The kernel's iomem_resource
 * ends at -1 (all ones); the model ends it at 2^52 - 1 (x86-64 MAX_PHYSMEM_BITS with
 * 5-level paging), above any modelled physical address. Flags are the kernel's unsigned
 * 32-bit values (IORESOURCE_BUSY is 0x80000000). JS bitwise operators return signed
 * 32-bit results, so every flag word built with `|` is normalised with `>>> 0`, and a bit
 * test is written `(flags & BIT) !== 0`, never compared with a positive constant.
 *
 * Locking (whole file): the kernel serialises the tree with resource_lock, a rwlock
 * taken inside these functions. In the model the tree updates are plain code (no Steps):
 * each runs as one atomic action of the calling thread, which is what the rwlock
 * guarantees. __request_region and the request_*region wrappers are Ops all the same:
 * the revoke that follows a claim in iomem_resource (revoke_iomem, after resource_lock
 * is dropped) zaps /dev/mem mappings with the steps of unmap_mapping_range, which other
 * threads can run between.
 *
 * @kernel kernel/resource.c, include/linux/ioport.h (all versions)
 */
import { currentKernel } from './kernel.js';
import { WARN_ON } from './panic.js';
import { pr_warn } from './printk.js';
import { EBUSY, EINVAL } from '../include/linux/errno.js';
import { get_current } from '../include/linux/sched.js';
import { PAGE_SIZE } from '../arch/x86/include/asm/pgtable_types.js';
import { since } from '../version.js';
import type { Op } from '../../sched/index.js';
import type { address_space, inode, super_block } from '../include/linux/mm_types.js';
import { new_inode } from '../fs/inode.js';
import { unmap_mapping_range } from '../mm/memory.zap.js';
import { devmem_is_allowed } from '../arch/x86/mm/init.js';

/* include/linux/ioport.h: resource flags. */
export const IORESOURCE_BITS = 0x000000ff;
export const IORESOURCE_TYPE_BITS = 0x00001f00;
export const IORESOURCE_IO = 0x00000100;
export const IORESOURCE_MEM = 0x00000200;
export const IORESOURCE_REG = 0x00000300;
export const IORESOURCE_IRQ = 0x00000400;
export const IORESOURCE_DMA = 0x00000800;
export const IORESOURCE_BUS = 0x00001000;
export const IORESOURCE_PREFETCH = 0x00002000;
export const IORESOURCE_READONLY = 0x00004000;
export const IORESOURCE_CACHEABLE = 0x00008000;
export const IORESOURCE_RANGELENGTH = 0x00010000;
export const IORESOURCE_SHADOWABLE = 0x00020000;
export const IORESOURCE_SIZEALIGN = 0x00040000;
export const IORESOURCE_STARTALIGN = 0x00080000;
export const IORESOURCE_MEM_64 = 0x00100000;
export const IORESOURCE_WINDOW = 0x00200000;
export const IORESOURCE_MUXED = 0x00400000;
export const IORESOURCE_EXT_TYPE_BITS = 0x01000000;
export const IORESOURCE_SYSRAM = 0x01000000;
export const IORESOURCE_EXCLUSIVE = 0x08000000;
export const IORESOURCE_DISABLED = 0x10000000;
export const IORESOURCE_UNSET = 0x20000000;
export const IORESOURCE_AUTO = 0x40000000;
/** Driver has marked this resource busy. 2^31: keep out of signed comparisons. */
export const IORESOURCE_BUSY = 0x80000000;
/** IORESOURCE_MEM | IORESOURCE_SYSRAM */
export const IORESOURCE_SYSTEM_RAM = 0x01000200;

/* include/linux/ioport.h: I/O resource descriptors. */
export const IORES_DESC_NONE = 0;
export const IORES_DESC_CRASH_KERNEL = 1;
export const IORES_DESC_ACPI_TABLES = 2;
export const IORES_DESC_ACPI_NV_STORAGE = 3;
export const IORES_DESC_PERSISTENT_MEMORY = 4;
export const IORES_DESC_PERSISTENT_MEMORY_LEGACY = 5;
export const IORES_DESC_DEVICE_PRIVATE_MEMORY = 6;

/* include/linux/mm.h: region_intersects() results. */
export const REGION_INTERSECTS = 0;
export const REGION_DISJOINT = 1;
export const REGION_MIXED = 2;

/** x86 IO_SPACE_LIMIT: the end of ioport_resource. */
export const IO_SPACE_LIMIT = 0xffff;
/** The model's end of iomem_resource (the kernel's is -1): 2^52 - 1. */
export const IOMEM_RESOURCE_END = 2 ** 52 - 1;

/** /proc/iomem indents at most this many levels (r_show). */
export const MAX_IORES_LEVEL = 5;

/**
 * struct resource: [start, end] inclusive, a name, IORESOURCE_* flags (unsigned 32-bit),
 * an IORES_DESC_* descriptor, and the tree links.
 * @kernel include/linux/ioport.h:struct resource (all versions)
 */
export class resource {
  parent: resource | null = null;
  sibling: resource | null = null;
  child: resource | null = null;
  constructor(
    public start: number,
    public end: number,
    public name: string | null = null,
    public flags = 0,
    public desc = IORES_DESC_NONE,
  ) {
    this.flags = flags >>> 0;
  }
}

/**
 * DEFINE_RES_NAMED(start, size, name, flags): a detached resource covering `size` bytes.
 * @kernel include/linux/ioport.h:DEFINE_RES_NAMED, DEFINE_RES_MEM_NAMED,
 *   DEFINE_RES_IO_NAMED (all versions)
 * Return: the new resource (not in any tree).
 */
export function DEFINE_RES_NAMED(
  start: number,
  size: number,
  name: string,
  flags: number,
): resource {
  return new resource(start, start + size - 1, name, flags);
}

/** DEFINE_RES_MEM_NAMED(start, size, name) */
export function DEFINE_RES_MEM_NAMED(start: number, size: number, name: string): resource {
  return DEFINE_RES_NAMED(start, size, name, IORESOURCE_MEM);
}

/** DEFINE_RES_IO_NAMED(start, size, name) */
export function DEFINE_RES_IO_NAMED(start: number, size: number, name: string): resource {
  return DEFINE_RES_NAMED(start, size, name, IORESOURCE_IO);
}

/** resource_size(res): end - start + 1. */
export function resource_size(res: resource): number {
  return res.end - res.start + 1;
}

/** resource_type(res): the IORESOURCE_TYPE_BITS of the flags. */
export function resource_type(res: resource): number {
  return (res.flags & IORESOURCE_TYPE_BITS) >>> 0;
}

/** resource_ext_type(res): the IORESOURCE_EXT_TYPE_BITS of the flags. */
export function resource_ext_type(res: resource): number {
  return (res.flags & IORESOURCE_EXT_TYPE_BITS) >>> 0;
}

/**
 * resource_contains(r1, r2): r1 completely contains r2 (same type, both assigned).
 * @kernel include/linux/ioport.h:resource_contains, resource_overlaps (all versions)
 */
export function resource_contains(r1: resource, r2: resource): boolean {
  if (resource_type(r1) !== resource_type(r2)) return false;
  if ((r1.flags & IORESOURCE_UNSET) !== 0 || (r2.flags & IORESOURCE_UNSET) !== 0) return false;
  return r1.start <= r2.start && r1.end >= r2.end;
}

/** resource_overlaps(r1, r2): any part of r1 overlaps r2. */
export function resource_overlaps(r1: resource, r2: resource): boolean {
  return r1.start <= r2.end && r1.end >= r2.start;
}

/** A callback run by {@link revoke_iomem} for each busy region claimed in iomem_resource. */
export type iomem_revoke_hook = (res: resource) => Op<void>;

/** The per-kernel state of this file. */
export interface iomem_state {
  readonly iomem_resource: resource;
  readonly ioport_resource: resource;
  /**
   * Callbacks for revoke_iomem(), in registration order. The /dev/mem model registers
   * here and applies the version and CONFIG_IO_STRICT_DEVMEM gates itself.
   */
  readonly iomem_revoke_hooks: iomem_revoke_hook[];
  /**
   * strict_iomem_checks: CONFIG_STRICT_DEVMEM at boot; `iomem=relaxed` clears it and
   * `iomem=strict` sets it (set this field, or call {@link strict_iomem}, to model the
   * boot parameter).
   */
  strict_iomem_checks: boolean;
  /**
   * iomem_inode (v5.12+): the inode whose address space every /dev/mem open shares
   * (iomem_get_mapping), published by iomem_init_inode; null until then.
   */
  iomem_inode: inode | null;
}

function iomem_state(): iomem_state {
  const k = currentKernel();
  let st = k.sub.iomem as iomem_state | undefined;
  if (!st) {
    st = {
      iomem_resource: new resource(0, IOMEM_RESOURCE_END, 'PCI mem', IORESOURCE_MEM),
      ioport_resource: new resource(0, IO_SPACE_LIMIT, 'PCI IO', IORESOURCE_IO),
      iomem_revoke_hooks: [],
      strict_iomem_checks: k.config.CONFIG_STRICT_DEVMEM === true,
      iomem_inode: null,
    };
    k.sub.iomem = st;
  }
  return st;
}

/** The resource state of the current kernel (created on first use). */
export function iomem_sub_state(): iomem_state {
  return iomem_state();
}

/**
 * iomem_resource: the root of the physical memory address space ("PCI mem").
 * @kernel kernel/resource.c:iomem_resource, ioport_resource (all versions)
 * Return: the current kernel's root, created on first use.
 */
export function iomem_resource(): resource {
  return iomem_state().iomem_resource;
}

/** ioport_resource: the root of the I/O port space ("PCI IO", 0..IO_SPACE_LIMIT). */
export function ioport_resource(): resource {
  return iomem_state().ioport_resource;
}

/** The revoke_iomem() callback list of the current kernel (push to register). */
export function iomem_revoke_hooks(): iomem_revoke_hook[] {
  return iomem_state().iomem_revoke_hooks;
}

/**
 * next_resource(p, skip_children): the pre-order successor of p, climbing out of p's
 * subtree to the next sibling of an ancestor; null at the end of the tree.
 * @kernel kernel/resource.c:next_resource (all versions)
 */
function next_resource(p: resource, skip_children: boolean): resource | null {
  if (!skip_children && p.child) return p.child;
  let q: resource = p;
  while (!q.sibling && q.parent) q = q.parent;
  return q.sibling;
}

/**
 * The descendants of `root` in address (pre-)order, without leaving its subtree: the
 * kernel's for_each_resource(root, p, false) when root is a tree root, and
 * for_each_resource_descendant() (__next_resource with a subtree root).
 */
function* descendants(root: resource): Generator<resource, void, undefined> {
  let p = root.child;
  while (p) {
    yield p;
    if (p.child) {
      p = p.child;
      continue;
    }
    let q: resource = p;
    while (!q.sibling && q.parent && q.parent !== root) q = q.parent;
    p = q.sibling;
  }
}

/**
 * __request_resource(root, new): links `new` among root's children if it fits in root
 * and overlaps no child.
 * @kernel kernel/resource.c:__request_resource (all versions)
 * Locking: resource_lock held for write by the caller (in the model: none, synchronous).
 * Return: null on success; root when new is empty or outside root; else the first
 * overlapping child.
 */
function __request_resource(root: resource, nw: resource): resource | null {
  const start = nw.start;
  const end = nw.end;
  if (end < start) return root;
  if (start < root.start) return root;
  if (end > root.end) return root;
  let prev: resource | null = null;
  for (;;) {
    const tmp: resource | null = prev ? prev.sibling : root.child;
    if (!tmp || tmp.start > end) {
      nw.sibling = tmp;
      if (prev) prev.sibling = nw;
      else root.child = nw;
      nw.parent = root;
      return null;
    }
    prev = tmp;
    if (tmp.end < start) continue;
    return tmp;
  }
}

/** Unlinks `res` from its parent's child list; false when it is not there. */
function unlink(res: resource, replacement: resource | null): boolean {
  const parent = res.parent;
  if (!parent) return false;
  if (parent.child === res) {
    parent.child = replacement;
    return true;
  }
  for (let p = parent.child; p; p = p.sibling) {
    if (p.sibling === res) {
      p.sibling = replacement;
      return true;
    }
  }
  return false;
}

/**
 * __release_resource(old, release_child): unlinks old; its children go with it, or, when
 * !release_child, move up to take its place.
 * @kernel kernel/resource.c:__release_resource (all versions)
 * Locking: resource_lock held for write by the caller (in the model: none).
 * Return: 0, or -EINVAL when old is not in its parent's child list.
 */
function __release_resource(old: resource, release_child: boolean): number {
  if (!old.parent) return -EINVAL;
  let ok: boolean;
  if (release_child || !old.child) {
    ok = unlink(old, old.sibling);
  } else {
    let chd = old.child;
    for (;;) {
      chd.parent = old.parent;
      if (!chd.sibling) break;
      chd = chd.sibling;
    }
    chd.sibling = old.sibling;
    ok = unlink(old, old.child);
    if (ok) old.child = null;
  }
  if (!ok) return -EINVAL;
  old.parent = null;
  return 0;
}

/**
 * request_resource_conflict(root, new): requests and reserves an I/O or memory resource.
 * @kernel kernel/resource.c:request_resource_conflict (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: null on success, or the conflicting resource (root when new does not fit in it).
 */
export function request_resource_conflict(root: resource, nw: resource): resource | null {
  return __request_resource(root, nw);
}

/**
 * request_resource(root, new): as request_resource_conflict, with an errno.
 * @kernel kernel/resource.c:request_resource (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: 0, or -EBUSY on a conflict.
 */
export function request_resource(root: resource, nw: resource): number {
  return request_resource_conflict(root, nw) ? -EBUSY : 0;
}

/**
 * release_resource(old): removes old and its children from the tree.
 * @kernel kernel/resource.c:release_resource (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: 0, or -EINVAL when old is not in a tree.
 */
export function release_resource(old: resource): number {
  return __release_resource(old, true);
}

/**
 * __insert_resource(parent, new): as __request_resource, descending into a conflict
 * that contains new; when the conflicts all lie inside new, new is inserted above them
 * and they become its children.
 * @kernel kernel/resource.c:__insert_resource (all versions)
 * Locking: resource_lock held for write by the caller (in the model: none).
 * Return: null on success, else the conflicting resource (a partial overlap).
 */
function __insert_resource(parent: resource, nw: resource): resource | null {
  let first: resource | null;
  for (; ; parent = first) {
    first = __request_resource(parent, nw);
    if (!first) return first;
    if (first === parent) return first;
    if (WARN_ON(first === nw)) return first; /* duplicated insertion */
    if (first.start > nw.start || first.end < nw.end) break;
    if (first.start === nw.start && first.end === nw.end) break;
  }
  let next: resource = first;
  for (;;) {
    /* Partial overlap? Bad, and unfixable */
    if (next.start < nw.start || next.end > nw.end) return next;
    if (!next.sibling) break;
    if (next.sibling.start > nw.end) break;
    next = next.sibling;
  }
  nw.parent = parent;
  nw.sibling = next.sibling;
  nw.child = first;
  next.sibling = null;
  for (let n: resource | null = first; n; n = n.sibling) n.parent = nw;
  if (parent.child === first) {
    parent.child = nw;
  } else {
    let n = parent.child!;
    while (n.sibling !== first) n = n.sibling!;
    n.sibling = nw;
  }
  return null;
}

/**
 * insert_resource_conflict(parent, new): inserts new, adopting the resources it covers.
 * @kernel kernel/resource.c:insert_resource_conflict (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: null on success, or the conflicting resource.
 */
export function insert_resource_conflict(parent: resource, nw: resource): resource | null {
  return __insert_resource(parent, nw);
}

/**
 * insert_resource(parent, new): as insert_resource_conflict, with an errno.
 * @kernel kernel/resource.c:insert_resource (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: 0, or -EBUSY.
 */
export function insert_resource(parent: resource, nw: resource): number {
  return insert_resource_conflict(parent, nw) ? -EBUSY : 0;
}

/**
 * remove_resource(old): removes old, moving its children up to where they were before
 * insert_resource().
 * @kernel kernel/resource.c:remove_resource (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: 0, or -EINVAL when old is not in a tree.
 */
export function remove_resource(old: resource): number {
  return __release_resource(old, false);
}

/**
 * revoke_iomem(res): a driver has claimed res in iomem_resource (or __request_region's
 * callers in get_free_mem_region); with CONFIG_IO_STRICT_DEVMEM, zaps every user mapping
 * of the range made through the shared iomem address space (/dev/mem; PCI sysfs and
 * procfs BAR mmaps also use it from v5.12, unmodelled here): nothing while iomem_inode is
 * not published; nothing when devmem_is_allowed() still allows the first and the last
 * page ("iomem=relaxed says go ahead, what's the worst that can happen?"); else
 * unmap_mapping_range(inode->i_mapping, res->start, resource_size(res), 1) — the file
 * offset of a /dev/mem page is its physical address, as vm_pgoff is the pfn. The zapped
 * VMAs have no ->fault, so the next access SIGBUSes (R-REV-3). Then runs the model's
 * registered hooks ({@link iomem_revoke_hooks}; /dev/mem registers revoke_devmem there
 * for v5.8-v5.11).
 * @kernel kernel/resource.c:revoke_iomem (v5.12+, 71a1d8ed900f "resource: Move devmem
 *   revoke code to resource framework"; v5.8..v5.11 the same body was revoke_devmem() in
 *   drivers/char/mem.c, 3234ac664a87 "/dev/mem: Revoke mappings when a driver claims the
 *   region", also in 5.7.y stable; none in v5.7.0)
 * Locking: called without resource_lock; unmap_mapping_range takes i_mmap_rwsem and the
 *   page table locks (its steps: a /dev/mem user can run between them).
 * Leaves out: the smp_load_acquire pairing with iomem_init_inode (the model publishes
 *   the inode on first use, see iomem_get_mapping), the PCI sysfs/proc users.
 */
export function* revoke_iomem(res: resource): Op<void> {
  const st = iomem_state();
  if (since(5, 12) && currentKernel().config.CONFIG_IO_STRICT_DEVMEM === true) {
    /* pairs with smp_store_release() in iomem_init_inode() */
    const i = st.iomem_inode;
    /*
     * Check that the initialization has completed. Losing the race
     * is ok because it means drivers are claiming resources before
     * the fs_initcall level of init and prevent iomem_get_mapping users
     * from establishing mappings.
     */
    if (i) {
      /*
       * The expectation is that the driver has successfully marked
       * the resource busy by this point, so devmem_is_allowed()
       * should start returning false, however for performance this
       * does not iterate the entire resource range.
       */
      const relaxed =
        devmem_is_allowed(Math.floor(res.start / PAGE_SIZE)) !== 0 &&
        devmem_is_allowed(Math.floor(res.end / PAGE_SIZE)) !== 0;
      if (!relaxed) yield* unmap_mapping_range(i.i_mapping, res.start, resource_size(res), 1);
    }
  }
  for (const hook of [...st.iomem_revoke_hooks]) yield* hook(res);
}

const iomem_fs_sb: super_block = { s_type: 'iomem', s_nowriteback: true };

/**
 * iomem_init_inode(): mounts the "iomem" pseudo file system and publishes an anonymous
 * inode whose address space all iomem_get_mapping() users share.
 * @kernel kernel/resource.c:iomem_init_inode (v5.12+, fs_initcall; 71a1d8ed900f)
 * Locking: none (init).
 * Return: 0 (the model cannot fail to allocate).
 * Model: run on first use of iomem_get_mapping() rather than at fs_initcall; before
 *   that no mapping can exist, so a revoke that finds no inode changes nothing either way.
 */
export function iomem_init_inode(): number {
  const st = iomem_state();
  if (st.iomem_inode) return 0;
  /* Publish iomem revocation inode initialized. */
  st.iomem_inode = new_inode(iomem_fs_sb, 'anon');
  return 0;
}

/**
 * iomem_get_mapping(): the address space every /dev/mem open uses as f_mapping, so that
 * revoke_iomem() finds all their mappings in one i_mmap tree.
 * @kernel kernel/resource.c:iomem_get_mapping (v5.12+, 71a1d8ed900f; unconditional, not
 *   only with CONFIG_IO_STRICT_DEVMEM)
 * Locking: none.
 * Return: the shared address_space.
 */
export function iomem_get_mapping(): address_space {
  iomem_init_inode();
  return iomem_state().iomem_inode!.i_mapping;
}

/**
 * strict_iomem(str): the `iomem=` boot parameter: "relaxed" clears strict_iomem_checks
 * (busy regions stay mappable through /dev/mem, and are not revoked), "strict" sets it.
 * @kernel kernel/resource.c:strict_iomem (all versions; __setup("iomem=", ...))
 * Locking: none (boot).
 * Return: 1 (parameter consumed).
 */
export function strict_iomem(str: string): number {
  const st = iomem_state();
  if (str.includes('relaxed')) st.strict_iomem_checks = false;
  if (str.includes('strict')) st.strict_iomem_checks = true;
  return 1;
}

/**
 * __request_region_locked(res, parent, start, n, name, flags): the body of
 * __request_region. A conflict with a resource that is not busy is descended into, so a
 * driver's busy region nests inside the (non-busy) bridge window and BAR resources.
 * @kernel kernel/resource.c:__request_region_locked (v5.12+; inline in __request_region before)
 * Locking: resource_lock held for write (in the model: none).
 * Return: 0, or -EBUSY on a conflict with a busy resource or one outside parent.
 * Leaves out: IORESOURCE_MUXED waiting (the caller would sleep until the holder releases;
 * the model throws instead).
 */
function __request_region_locked(
  res: resource,
  parent: resource,
  start: number,
  n: number,
  name: string,
  flags: number,
): number {
  res.name = name;
  res.start = start;
  res.end = start + n - 1;
  for (;;) {
    res.flags = (resource_type(parent) | resource_ext_type(parent) | IORESOURCE_BUSY | flags) >>> 0;
    res.desc = parent.desc;
    const conflict = __request_resource(parent, res);
    if (!conflict) break;
    if (conflict.desc === IORES_DESC_DEVICE_PRIVATE_MEMORY) {
      pr_warn(
        `Unaddressable device ${conflict.name ?? '(null)'} ${resource_string(conflict)} ` +
          `conflicts with ${resource_string(res)}`,
      );
    }
    if (conflict !== parent) {
      if ((conflict.flags & IORESOURCE_BUSY) === 0) {
        parent = conflict;
        continue;
      }
    }
    if ((conflict.flags & flags & IORESOURCE_MUXED) !== 0) {
      throw new Error(
        `__request_region(${name}): waiting for a muxed region (IORESOURCE_MUXED) is not modelled`,
      );
    }
    /* Uhhuh, that didn't work out.. */
    return -EBUSY;
  }
  return 0;
}

/**
 * __request_region(parent, start, n, name, flags): creates a busy region [start,
 * start+n-1] named `name`, nested in the deepest non-busy resource that contains it.
 * On success in iomem_resource, revoke_iomem() runs (see there for versions).
 * @kernel kernel/resource.c:__request_region (all versions; revoke since v5.8)
 * Locking: takes resource_lock for write (in the model the tree update is part of the
 *   caller's step: no reader of the tree runs concurrently); revoke_iomem() runs after it
 *   is dropped, with the steps of its zap.
 * Return: the new resource, or null on a conflict.
 */
export function* __request_region(
  parent: resource,
  start: number,
  n: number,
  name: string,
  flags: number,
): Op<resource | null> {
  const res = new resource(0, 0);
  const ret = __request_region_locked(res, parent, start, n, name, flags);
  if (ret) return null;
  if (parent === iomem_resource()) yield* revoke_iomem(res);
  return res;
}

/**
 * __release_region(parent, start, n): releases the busy region that matches [start,
 * start+n-1] exactly, descending through non-busy resources that contain it.
 * @kernel kernel/resource.c:__release_region (all versions)
 * Locking: takes resource_lock for write; in the model synchronous, no Steps.
 * Return: nothing; a missing region logs "Trying to free nonexistent resource" (the
 * `<%pa-%pa>` text of recent kernels, also for older ones that printed `%016llx`).
 */
export function __release_region(parent: resource, start: number, n: number): void {
  const end = start + n - 1;
  let owner = parent;
  let prev: resource | null = null;
  for (;;) {
    const res: resource | null = prev ? prev.sibling : owner.child;
    if (!res) break;
    if (res.start <= start && res.end >= end) {
      if ((res.flags & IORESOURCE_BUSY) === 0) {
        owner = res;
        prev = null;
        continue;
      }
      if (res.start !== start || res.end !== end) break;
      if (prev) prev.sibling = res.sibling;
      else owner.child = res.sibling;
      res.parent = null;
      res.sibling = null;
      return;
    }
    prev = res;
  }
  pr_warn(`Trying to free nonexistent resource <${pa(start)}-${pa(end)}>`);
}

/** request_region(start, n, name): a busy region of I/O ports. */
export function* request_region(start: number, n: number, name: string): Op<resource | null> {
  return yield* __request_region(ioport_resource(), start, n, name, 0);
}

/**
 * request_mem_region(start, n, name): a busy region of physical address space.
 * @kernel include/linux/ioport.h:request_mem_region, __request_mem_region,
 *   request_mem_region_exclusive, request_region, release_mem_region, release_region
 *   (all versions)
 * Locking: as __request_region.
 * Return: the new resource, or null.
 */
export function* request_mem_region(start: number, n: number, name: string): Op<resource | null> {
  return yield* __request_region(iomem_resource(), start, n, name, 0);
}

/** __request_mem_region(start, n, name, excl) */
export function* __request_mem_region(
  start: number,
  n: number,
  name: string,
  excl: number,
): Op<resource | null> {
  return yield* __request_region(iomem_resource(), start, n, name, excl);
}

/** request_mem_region_exclusive(start, n, name): busy and IORESOURCE_EXCLUSIVE. */
export function* request_mem_region_exclusive(
  start: number,
  n: number,
  name: string,
): Op<resource | null> {
  return yield* __request_region(iomem_resource(), start, n, name, IORESOURCE_EXCLUSIVE);
}

/** release_region(start, n) */
export function release_region(start: number, n: number): void {
  __release_region(ioport_resource(), start, n);
}

/** release_mem_region(start, n) */
export function release_mem_region(start: number, n: number): void {
  __release_region(iomem_resource(), start, n);
}

/**
 * find_next_iomem_res(start, end, flags, desc): the lowest resource anywhere in the
 * iomem tree that overlaps [start, end] and has all `flags` (and `desc`, unless
 * IORES_DESC_NONE), clipped to [start, end].
 * @kernel kernel/resource.c:find_next_iomem_res (all versions)
 * Locking: takes resource_lock for read; in the model synchronous, no Steps.
 * Return: a detached copy of the clipped range (start, end, flags, desc, parent), or
 * null (the kernel returns -ENODEV, -1 before v5.10, or -EINVAL for start >= end).
 */
function find_next_iomem_res(
  start: number,
  end: number,
  flags: number,
  desc: number,
): resource | null {
  if (start >= end) return null;
  const want = flags >>> 0;
  for (const p of descendants(iomem_resource())) {
    if (p.start > end) return null;
    if (p.end < start) continue;
    if ((p.flags & want) >>> 0 !== want) continue;
    if (desc !== IORES_DESC_NONE && desc !== p.desc) continue;
    const r = new resource(Math.max(start, p.start), Math.min(end, p.end), null, p.flags, p.desc);
    r.parent = p.parent;
    return r;
  }
  return null;
}

function __walk_iomem_res_desc(
  start: number,
  end: number,
  flags: number,
  desc: number,
  func: (res: resource) => number,
): number {
  let ret = -EINVAL;
  while (start < end) {
    const res = find_next_iomem_res(start, end, flags, desc);
    if (!res) break;
    ret = func(res);
    if (ret) break;
    start = res.end + 1;
  }
  return ret;
}

/**
 * walk_iomem_res_desc(desc, flags, start, end, func): calls func on each part of
 * [start, end] covered by an iomem resource with `flags` and `desc`, lowest first,
 * descending into children. The kernel's `arg` is a closure here.
 * @kernel kernel/resource.c:walk_iomem_res_desc (all versions)
 * Locking: takes resource_lock for read around each lookup, not around func; in the model
 * synchronous, no Steps.
 * Return: the first non-zero value func returns, func's last 0, or -EINVAL when nothing
 * matched.
 */
export function walk_iomem_res_desc(
  desc: number,
  flags: number,
  start: number,
  end: number,
  func: (res: resource) => number,
): number {
  return __walk_iomem_res_desc(start, end, flags, desc, func);
}

/**
 * walk_system_ram_range(start_pfn, nr_pages, func): calls func(pfn, nr_pages) for each
 * run of whole pages of busy System RAM in the range.
 * @kernel kernel/resource.c:walk_system_ram_range (all versions)
 * Locking: as walk_iomem_res_desc.
 * Return: as walk_iomem_res_desc.
 */
export function walk_system_ram_range(
  start_pfn: number,
  nr_pages: number,
  func: (pfn: number, nr_pages: number) => number,
): number {
  let start = start_pfn * PAGE_SIZE;
  const end = (start_pfn + nr_pages) * PAGE_SIZE - 1;
  const flags = (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0;
  let ret = -EINVAL;
  while (start < end) {
    const res = find_next_iomem_res(start, end, flags, IORES_DESC_NONE);
    if (!res) break;
    const pfn = Math.ceil(res.start / PAGE_SIZE); /* PFN_UP */
    const end_pfn = Math.floor((res.end + 1) / PAGE_SIZE); /* PFN_DOWN */
    if (end_pfn > pfn) ret = func(pfn, end_pfn - pfn);
    if (ret) break;
    start = res.end + 1;
  }
  return ret;
}

/**
 * page_is_ram(pfn): the frame is in a busy System RAM resource.
 * @kernel kernel/resource.c:page_is_ram (all versions; the generic __weak version, used by x86)
 * Locking: as walk_iomem_res_desc.
 * Return: 1 or 0.
 */
export function page_is_ram(pfn: number): number {
  return walk_system_ram_range(pfn, 1, () => 1) === 1 ? 1 : 0;
}

function is_type_match(p: resource, flags: number, desc: number): boolean {
  const want = flags >>> 0;
  return (p.flags & want) >>> 0 === want && (desc === IORES_DESC_NONE || desc === p.desc);
}

function __region_intersects(
  parent: resource,
  start: number,
  size: number,
  flags: number,
  desc: number,
): number {
  const res = new resource(start, start + size - 1);
  let type = 0;
  let other = 0;
  for (let p = parent.child; p; p = p.sibling) {
    if (!resource_overlaps(p, res)) continue;
    if (is_type_match(p, flags, desc)) {
      type++;
      continue;
    }
    if (!since(6, 12)) {
      other++;
      continue;
    }
    /*
     * b4afe4183ec7 "resource: fix region_intersects() vs add_memory_driver_managed()"
     * (v6.12): search the descendants, as if matching ones covered parts of p. v6.12's
     * for_each_resource(p, dp, false) runs on past p's subtree (later made
     * for_each_resource_descendant()); what it then meets can only add to `type` and
     * break, and the outer loop counts those resources anyway, so the result is the same
     * and the model walks the subtree only.
     */
    let covered = false;
    let ostart = Math.max(res.start, p.start);
    const oend = Math.min(res.end, p.end);
    for (const dp of descendants(p)) {
      if (!resource_overlaps(dp, res)) continue;
      if (is_type_match(dp, flags, desc)) {
        type++;
        if (dp.start > ostart) break;
        if (dp.end >= oend) {
          covered = true;
          break;
        }
        ostart = Math.max(ostart, dp.end + 1);
      }
    }
    if (!covered) other++;
  }
  if (type === 0) return REGION_DISJOINT;
  if (other === 0) return REGION_INTERSECTS;
  return REGION_MIXED;
}

/**
 * region_intersects(start, size, flags, desc): how [start, start+size-1] meets the
 * top-level iomem resources with `flags`/`desc`: not at all, only those (and holes), or
 * those and others. From v6.12 the descendants of a non-matching top-level resource count
 * too (b4afe4183ec7).
 * @kernel kernel/resource.c:region_intersects (all versions; descendants v6.12+)
 * Locking: takes resource_lock for read; in the model synchronous, no Steps.
 * Return: REGION_DISJOINT, REGION_INTERSECTS or REGION_MIXED.
 */
export function region_intersects(
  start: number,
  size: number,
  flags: number,
  desc: number,
): number {
  return __region_intersects(iomem_resource(), start, size, flags, desc);
}

/**
 * resource_is_exclusive(root, addr, size): whether [addr, addr+size-1] must not be mapped
 * to user space (/dev/mem). With strict_iomem_checks, a busy resource is exclusive when
 * it is IORESOURCE_EXCLUSIVE or CONFIG_IO_STRICT_DEVMEM is set. From v5.16 ("kernel/
 * resource: disallow access to exclusive system RAM regions") System RAM marked
 * IORESOURCE_EXCLUSIVE is exclusive even when not busy and even with iomem=relaxed;
 * before, iomem=relaxed made everything accessible.
 * @kernel kernel/resource.c:resource_is_exclusive (the walk of iomem_is_exclusive; a
 *   separate function in later kernels)
 * Locking: takes resource_lock for read; in the model synchronous, no Steps.
 * Return: true when exclusive to the kernel.
 */
function resource_is_exclusive(root: resource, addr: number, size: number): boolean {
  const st = iomem_state();
  const io_strict = currentKernel().config.CONFIG_IO_STRICT_DEVMEM === true;
  const v5_16 = since(5, 16);
  if (!v5_16 && !st.strict_iomem_checks) return false;
  const exclusive_system_ram = (IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE) >>> 0;
  let p = root.child;
  while (p) {
    if (p.start >= addr + size) break;
    /* A resource that ends before addr has no children of interest. */
    const skip_children = p.end < addr;
    if (!skip_children) {
      if (v5_16 && (p.flags & exclusive_system_ram) >>> 0 === exclusive_system_ram) return true;
      if (st.strict_iomem_checks && (p.flags & IORESOURCE_BUSY) !== 0) {
        if (io_strict || (p.flags & IORESOURCE_EXCLUSIVE) !== 0) return true;
      }
    }
    p = next_resource(p, skip_children);
  }
  return false;
}

/**
 * iomem_is_exclusive(addr): whether the page at addr is exclusive to the kernel, so
 * /dev/mem must refuse it.
 * @kernel kernel/resource.c:iomem_is_exclusive (all versions; exclusive System RAM v5.16+)
 * Locking: takes resource_lock for read; in the model synchronous, no Steps.
 * Return: true when exclusive.
 */
export function iomem_is_exclusive(addr: number): boolean {
  const page = addr - (addr % PAGE_SIZE); /* addr & PAGE_MASK, exact above 4 GiB */
  return resource_is_exclusive(iomem_resource(), page, PAGE_SIZE);
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** %pa: a phys_addr_t as 0x and 16 hex digits. */
function pa(n: number): string {
  return `0x${hex(n, 16)}`;
}

/**
 * resource_string(res): the `%pR` rendering, e.g. `[mem 0xfe000000-0xfe0fffff 64bit pref]`.
 * @kernel lib/vsprintf.c:resource_string (all versions)
 * Return: the text.
 * Leaves out: IRQ, DMA and bus resources (printed as `??? ` ranges here).
 */
export function resource_string(res: resource): string {
  let s = '[';
  let width: number;
  if ((res.flags & IORESOURCE_IO) !== 0) {
    s += 'io  ';
    width = 4;
  } else if ((res.flags & IORESOURCE_MEM) !== 0) {
    s += 'mem ';
    width = 8;
  } else {
    s += '??? ';
    width = 8;
  }
  if ((res.flags & IORESOURCE_UNSET) !== 0) {
    s += `size 0x${hex(resource_size(res), width)}`;
  } else {
    s += `0x${hex(res.start, width)}`;
    if (res.start !== res.end) s += `-0x${hex(res.end, width)}`;
  }
  if ((res.flags & IORESOURCE_MEM_64) !== 0) s += ' 64bit';
  if ((res.flags & IORESOURCE_PREFETCH) !== 0) s += ' pref';
  if ((res.flags & IORESOURCE_WINDOW) !== 0) s += ' window';
  if ((res.flags & IORESOURCE_DISABLED) !== 0) s += ' disabled';
  return `${s}]`;
}

/**
 * r_show(root, r, cap_sys_admin): one line of /proc/iomem or /proc/ioports:
 * `"%*s%0*llx-%0*llx : %s\n"` with two spaces per level below root (at most
 * MAX_IORES_LEVEL), hex width 4 when root ends below 0x10000 (ioports) else 8, and
 * addresses shown as 0 to readers without CAP_SYS_ADMIN.
 * @kernel kernel/resource.c:r_show (all versions)
 * Locking: resource_lock held for read by r_start (in the model: none).
 * Return: the line, with its newline.
 */
export function r_show(root: resource, r: resource, cap_sys_admin: boolean): string {
  const width = root.end < 0x10000 ? 4 : 8;
  let depth = 0;
  for (let p: resource | null = r; p && depth < MAX_IORES_LEVEL; depth++, p = p.parent) {
    if (p.parent === root) break;
  }
  const start = cap_sys_admin ? r.start : 0;
  const end = cap_sys_admin ? r.end : 0;
  return `${' '.repeat(depth * 2)}${hex(start, width)}-${hex(end, width)} : ${r.name ?? '<BAD>'}\n`;
}

/** The whole seq_file for `root` (r_start/r_next/r_show). */
function resource_seq(root: resource, cap_sys_admin: boolean): string {
  let out = '';
  for (const p of descendants(root)) out += r_show(root, p, cap_sys_admin);
  return out;
}

/**
 * The contents of /proc/iomem, as read by the current task: real addresses with
 * CAP_SYS_ADMIN, zeros without.
 * @kernel kernel/resource.c:ioresources_init, r_start, r_next (all versions)
 * Locking: resource_lock held for read across the read (in the model: none).
 * Return: the file's text.
 */
export function proc_iomem(cap_sys_admin = get_current().caps.has('CAP_SYS_ADMIN')): string {
  return resource_seq(iomem_resource(), cap_sys_admin);
}

/** The contents of /proc/ioports (see {@link proc_iomem}). */
export function proc_ioports(cap_sys_admin = get_current().caps.has('CAP_SYS_ADMIN')): string {
  return resource_seq(ioport_resource(), cap_sys_admin);
}
