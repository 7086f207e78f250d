/**
 * The DRM fake-offset allocator: offsets from DRM_FILE_PAGE_OFFSET_START (0x100000 pages =
 * 4 GiB), best-fit reuse of freed ranges, exact lookups for drm_gem_mmap, per-file access.
 */
import { describe, expect, it } from 'vitest';
import {
  DRM_FILE_PAGE_OFFSET_START,
  drm_vma_node_allow,
  drm_vma_node_init,
  drm_vma_node_is_allowed,
  drm_vma_node_offset_addr,
  drm_vma_node_revoke,
  drm_vma_offset_add,
  drm_vma_offset_exact_lookup_locked,
  drm_vma_offset_lookup_locked,
  drm_vma_offset_manager_init,
  drm_vma_offset_remove,
} from './drm_vma_manager.js';

describe('drm_vma_offset_add / drm_vma_offset_remove', () => {
  it('R-REV-4: nodes get consecutive fake offsets from 4 GiB; a freed range is reused by the next node that fits', () => {
    const mgr = drm_vma_offset_manager_init('t');
    const [a, b, c] = [drm_vma_node_init(), drm_vma_node_init(), drm_vma_node_init()];
    expect(drm_vma_offset_add(mgr, a, 2)).toBe(0);
    expect(drm_vma_offset_add(mgr, b, 4)).toBe(0);
    expect(a.vm_node.start).toBe(DRM_FILE_PAGE_OFFSET_START);
    expect(b.vm_node.start).toBe(0x100002);
    expect(drm_vma_node_offset_addr(b)).toBe(0x100002000);
    // adding again keeps the offset
    expect(drm_vma_offset_add(mgr, a, 8)).toBe(0);
    expect(a.vm_node.size).toBe(2);
    drm_vma_offset_remove(mgr, a);
    expect(drm_vma_offset_add(mgr, c, 1)).toBe(0);
    expect(c.vm_node.start).toBe(0x100000);
  });
});

describe('drm_vma_offset_lookup_locked / drm_vma_offset_exact_lookup_locked', () => {
  it('a range inside a node is found; exact lookup needs the node start; overlong ranges fail', () => {
    const mgr = drm_vma_offset_manager_init('t');
    const a = drm_vma_node_init();
    drm_vma_offset_add(mgr, a, 4);
    expect(drm_vma_offset_lookup_locked(mgr, 0x100001, 2)).toBe(a);
    expect(drm_vma_offset_exact_lookup_locked(mgr, 0x100001, 2)).toBeNull();
    expect(drm_vma_offset_exact_lookup_locked(mgr, 0x100000, 4)).toBe(a);
    expect(drm_vma_offset_lookup_locked(mgr, 0x100000, 5)).toBeNull();
    expect(drm_vma_offset_lookup_locked(mgr, 0xfffff, 1)).toBeNull();
  });
});

describe('drm_vma_node_allow / drm_vma_node_is_allowed', () => {
  it('access is counted per open file', () => {
    const n = drm_vma_node_init();
    const f1 = {};
    const f2 = {};
    drm_vma_node_allow(n, f1);
    drm_vma_node_allow(n, f1);
    expect(drm_vma_node_is_allowed(n, f1)).toBe(true);
    expect(drm_vma_node_is_allowed(n, f2)).toBe(false);
    drm_vma_node_revoke(n, f1);
    expect(drm_vma_node_is_allowed(n, f1)).toBe(true);
    drm_vma_node_revoke(n, f1);
    expect(drm_vma_node_is_allowed(n, f1)).toBe(false);
  });
});
