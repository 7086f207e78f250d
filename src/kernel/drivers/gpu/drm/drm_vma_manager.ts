/**
 * The DRM VMA offset manager (drivers/gpu/drm/drm_vma_manager.c): every mappable GEM/TTM
 * object gets a range of fake page offsets in the device's address space; user space mmaps
 * the DRM fd at that offset, so vma->vm_pgoff names the object, and the object's
 * mappings can be zapped with unmap_mapping_range() on the device's shared address space
 * (drm_vma_node_unmap, R-REV-4).
 *
 * Offsets start at DRM_FILE_PAGE_OFFSET_START (4 GiB on 64-bit: 0x100000 pages). The
 * allocator stands for drm_mm with DRM_MM_INSERT_BEST: the smallest hole that fits, the
 * lowest such hole on ties. vm_lock (an rwlock) is a Step for lookups; add/remove change
 * only the offset tree and take no Step. Access control (drm_vma_node_allow/is_allowed)
 * keeps a per-node count per open file (tag).
 *
 * @kernel drivers/gpu/drm/drm_vma_manager.c, include/drm/drm_vma_manager.h (all versions;
 *   drm_vma_node_allow_once v6.2+ left out)
 */
import type { Op } from '../../../../sched/index.js';
import type { address_space } from '../../../include/linux/mm_types.js';
import { ENOMEM, ENOSPC } from '../../../include/linux/errno.js';
import { unmap_mapping_range } from '../../../mm/memory.zap.js';

const PAGE_SHIFT = 12;

/** DRM_FILE_PAGE_OFFSET_START (64-bit): ((0xFFFFFFFFUL >> PAGE_SHIFT) + 1). */
export const DRM_FILE_PAGE_OFFSET_START = (0xffffffff >>> PAGE_SHIFT) + 1;
/** DRM_FILE_PAGE_OFFSET_SIZE (64-bit): ((0xFFFFFFFFUL >> PAGE_SHIFT) * 256). */
export const DRM_FILE_PAGE_OFFSET_SIZE = (0xffffffff >>> PAGE_SHIFT) * 256;

/** struct drm_mm_node (the part the model uses). */
export interface drm_mm_node {
  start: number;
  size: number;
  allocated: boolean;
}

/** struct drm_vma_offset_node. */
export interface drm_vma_offset_node {
  readonly vm_node: drm_mm_node;
  /** vm_files: open-file tag -> allow count. */
  readonly vm_files: Map<object, number>;
  readonly_: boolean;
}

/** A fresh, unallocated node (the zeroed embedded struct). */
export function drm_vma_node_init(): drm_vma_offset_node {
  return {
    vm_node: { start: 0, size: 0, allocated: false },
    vm_files: new Map(),
    readonly_: false,
  };
}

/** struct drm_vma_offset_manager. */
export class drm_vma_offset_manager {
  /** Allocated nodes, sorted by start. */
  readonly nodes: drm_vma_offset_node[] = [];
  constructor(
    readonly name: string,
    readonly page_offset: number,
    readonly size: number,
  ) {}
  /** Step object of vm_lock. */
  get obj(): string {
    return `${this.name}.vm_lock`;
  }
}

/**
 * drm_vma_offset_manager_init(mgr, page_offset, size).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_offset_manager_init (all versions)
 * Return: the manager.
 */
export function drm_vma_offset_manager_init(
  name: string,
  page_offset = DRM_FILE_PAGE_OFFSET_START,
  size = DRM_FILE_PAGE_OFFSET_SIZE,
): drm_vma_offset_manager {
  return new drm_vma_offset_manager(name, page_offset, size);
}

/**
 * drm_vma_offset_add(mgr, node, pages): gives node a range of `pages` fake offsets, unless
 * it already has one (then nothing changes, even if the size differs).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_offset_add (all versions)
 * Locking: write_lock(vm_lock) (no Step in the model).
 * Return: 0, -ENOSPC when no hole fits (drm_mm_insert_node), -ENOMEM for 0 pages.
 */
export function drm_vma_offset_add(
  mgr: drm_vma_offset_manager,
  node: drm_vma_offset_node,
  pages: number,
): number {
  if (node.vm_node.allocated) return 0;
  if (pages <= 0) return -ENOMEM;
  let best: { start: number; size: number } | null = null;
  let cur = mgr.page_offset;
  const end = mgr.page_offset + mgr.size;
  const consider = (hs: number, he: number) => {
    const sz = he - hs;
    if (sz >= pages && (!best || sz < best.size)) best = { start: hs, size: sz };
  };
  for (const n of mgr.nodes) {
    consider(cur, n.vm_node.start);
    cur = n.vm_node.start + n.vm_node.size;
  }
  consider(cur, end);
  if (!best) return -ENOSPC;
  node.vm_node.start = (best as { start: number }).start;
  node.vm_node.size = pages;
  node.vm_node.allocated = true;
  mgr.nodes.push(node);
  mgr.nodes.sort((a, b) => a.vm_node.start - b.vm_node.start);
  return 0;
}

/**
 * drm_vma_offset_remove(mgr, node): frees node's offsets (no-op if it has none).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_offset_remove (all versions)
 * Locking: write_lock(vm_lock) (no Step in the model).
 */
export function drm_vma_offset_remove(
  mgr: drm_vma_offset_manager,
  node: drm_vma_offset_node,
): void {
  if (!node.vm_node.allocated) return;
  const i = mgr.nodes.indexOf(node);
  if (i >= 0) mgr.nodes.splice(i, 1);
  node.vm_node.allocated = false;
  node.vm_node.start = 0;
  node.vm_node.size = 0;
}

/** drm_vma_offset_lock_lookup(mgr): read_lock(&mgr->vm_lock) (one Step). */
export function* drm_vma_offset_lock_lookup(mgr: drm_vma_offset_manager): Op<void> {
  yield { obj: mgr.obj, kind: 'read', what: 'drm_vma_offset_lock_lookup' };
}

/** drm_vma_offset_unlock_lookup(mgr): read_unlock (no Step: the lookup was the read). */
export function drm_vma_offset_unlock_lookup(mgr: drm_vma_offset_manager): void {
  void mgr;
}

/**
 * drm_vma_offset_lookup_locked(mgr, start, pages): the node whose range contains
 * [start, start + pages).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_offset_lookup_locked (all versions)
 * Locking: vm_lock held for read.
 * Return: the node or null.
 */
export function drm_vma_offset_lookup_locked(
  mgr: drm_vma_offset_manager,
  start: number,
  pages: number,
): drm_vma_offset_node | null {
  let best: drm_vma_offset_node | null = null;
  for (const n of mgr.nodes) {
    if (n.vm_node.start <= start) best = n;
    else break;
  }
  if (!best) return null;
  const offset = best.vm_node.start;
  if (start >= offset + best.vm_node.size) return null;
  if (start + pages > offset + best.vm_node.size) return null;
  return best;
}

/**
 * drm_vma_offset_exact_lookup_locked(mgr, start, pages): as the lookup, but the node must
 * start exactly at `start`.
 * @kernel include/drm/drm_vma_manager.h:drm_vma_offset_exact_lookup_locked (all versions)
 * Return: the node or null.
 */
export function drm_vma_offset_exact_lookup_locked(
  mgr: drm_vma_offset_manager,
  start: number,
  pages: number,
): drm_vma_offset_node | null {
  const node = drm_vma_offset_lookup_locked(mgr, start, pages);
  return node && node.vm_node.start === start ? node : null;
}

/** drm_vma_node_start(node): first fake page offset. @kernel include/drm/drm_vma_manager.h:drm_vma_node_start (all versions) */
export function drm_vma_node_start(node: drm_vma_offset_node): number {
  return node.vm_node.start;
}

/** drm_vma_node_size(node): pages. @kernel include/drm/drm_vma_manager.h:drm_vma_node_size (all versions) */
export function drm_vma_node_size(node: drm_vma_offset_node): number {
  return node.vm_node.size;
}

/** drm_vma_node_has_offset(node). @kernel include/drm/drm_vma_manager.h:drm_vma_node_has_offset (all versions) */
export function drm_vma_node_has_offset(node: drm_vma_offset_node): boolean {
  return node.vm_node.allocated;
}

/**
 * drm_vma_node_offset_addr(node): the byte offset user space passes to mmap().
 * @kernel include/drm/drm_vma_manager.h:drm_vma_node_offset_addr (all versions)
 */
export function drm_vma_node_offset_addr(node: drm_vma_offset_node): number {
  return node.vm_node.start * 2 ** PAGE_SHIFT;
}

/**
 * drm_vma_node_allow(node, tag): lets the open file `tag` map node (counted).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_node_allow (all versions)
 * Return: 0.
 */
export function drm_vma_node_allow(node: drm_vma_offset_node, tag: object): number {
  node.vm_files.set(tag, (node.vm_files.get(tag) ?? 0) + 1);
  return 0;
}

/**
 * drm_vma_node_revoke(node, tag): drops one allow of `tag`.
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_node_revoke (all versions)
 */
export function drm_vma_node_revoke(node: drm_vma_offset_node, tag: object): void {
  const c = node.vm_files.get(tag);
  if (c === undefined) return;
  if (c <= 1) node.vm_files.delete(tag);
  else node.vm_files.set(tag, c - 1);
}

/**
 * drm_vma_node_is_allowed(node, tag).
 * @kernel drivers/gpu/drm/drm_vma_manager.c:drm_vma_node_is_allowed (all versions)
 */
export function drm_vma_node_is_allowed(node: drm_vma_offset_node, tag: object): boolean {
  return node.vm_files.has(tag);
}

/**
 * drm_vma_node_unmap(node, file_mapping): zaps every user mapping of node's range:
 * unmap_mapping_range(file_mapping, drm_vma_node_offset_addr(node),
 * drm_vma_node_size(node) << PAGE_SHIFT, 1) (even_cows; R-REV-1, R-REV-4). Nothing when the
 * node has no offset.
 * @kernel include/drm/drm_vma_manager.h:drm_vma_node_unmap (all versions)
 * Locking: takes i_mmap_rwsem and the page-table locks (through unmap_mapping_range).
 */
export function* drm_vma_node_unmap(
  node: drm_vma_offset_node,
  file_mapping: address_space,
): Op<void> {
  if (drm_vma_node_has_offset(node)) {
    yield* unmap_mapping_range(
      file_mapping,
      drm_vma_node_offset_addr(node),
      drm_vma_node_size(node) * 2 ** PAGE_SHIFT,
      1,
    );
  }
}
