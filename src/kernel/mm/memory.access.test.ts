/**
 * __access_remote_vm / access_process_vm (mm/memory.c).
 * Rules: kernel-spec.md §11 (get_user_pages_remote(FOLL_FORCE[|FOLL_WRITE]), the
 * vm_ops->access fallback), O-2, O-6.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import { __access_remote_vm, access_process_vm } from './memory.access.js';
import { FOLL_FORCE, FOLL_WRITE } from '../include/linux/mm.js';
import { sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { folio_test_dirty } from '../include/linux/page-flags.js';
import type { folio, page } from '../include/linux/mm_types.js';

describe('__access_remote_vm', () => {
  it('§11: copies page by page and stops at the first page it cannot reach', () => {
    const env = bootEnv();
    const a = env.buffer(3 * 4096, 4);
    env.sys(sys_munmap(a + 8192, 4096));
    const buf = new Uint8Array(3 * 4096);
    expect(
      env.sys(__access_remote_vm(env.task.mm!, a + 100, buf, 3 * 4096 - 100, FOLL_FORCE)),
    ).toBe(8192 - 100);
    expect(buf[0]).toBe(4);
    // An address in no VMA: 0 at once.
    expect(env.sys(__access_remote_vm(env.task.mm!, a + 8192, buf, 16, FOLL_FORCE))).toBe(0);
  });

  it('§11: a write goes through the page, marks it dirty and puts the GUP reference', () => {
    const env = bootEnv();
    const other = env.spawn('other');
    const a = other.buffer(4096, 0);
    const p = other.pfnAt(a)! as page;
    const refs = page_ref_count(p);
    const n = env.sys(
      access_process_vm(other.task, a, new Uint8Array([7, 8]), 2, FOLL_FORCE | FOLL_WRITE),
    );
    expect(n).toBe(2);
    expect([...(other.load(a, 2) as Uint8Array)]).toEqual([7, 8]);
    expect(folio_test_dirty(p as number as folio)).toBe(true);
    expect(page_ref_count(p)).toBe(refs);
  });
});
