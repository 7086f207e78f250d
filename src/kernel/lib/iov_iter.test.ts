/**
 * iov_iter walking and page extraction (lib/iov_iter.c).
 * Rules: kernel-spec.md §11 (vmsplice: iov_iter_get_pages2 → FOLL_GET; O_DIRECT:
 * iov_iter_extract_pages → FOLL_PIN, +FOLL_WRITE when data flows into memory).
 */
import { describe, expect, it } from 'vitest';
import { bootEnv } from '../../../test/kernel-env.js';
import {
  copy_to_iter,
  import_iovec,
  iov_iter_advance,
  iov_iter_extract_pages,
  iov_iter_get_pages2,
  iov_iter_revert,
} from './iov_iter.js';
import { ITER_DEST, ITER_SOURCE, type iov_iter } from '../include/linux/uio.js';
import { sys_mmap, sys_munmap } from '../arch/x86/entry/syscall_64.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ } from '../mm/mmap.js';
import { EFAULT, EINVAL } from '../include/linux/errno.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import { GUP_PIN_COUNTING_BIAS } from '../include/linux/mm.js';
import { unpin_user_page } from '../mm/gup.js';
import { put_page } from '../include/linux/page_ref.js';
import type { page } from '../include/linux/mm_types.js';

describe('import_iovec', () => {
  it('§11: segments outside user space are -EFAULT, negative lengths -EINVAL', () => {
    expect(import_iovec(ITER_DEST, [{ iov_base: 2 ** 48, iov_len: 10 }])).toBe(-EFAULT);
    expect(import_iovec(ITER_DEST, [{ iov_base: 0x1000, iov_len: -1 }])).toBe(-EINVAL);
    const i = import_iovec(ITER_DEST, [
      { iov_base: 0x1000, iov_len: 10 },
      { iov_base: 0x3000, iov_len: 20 },
    ]) as iov_iter;
    expect(i.count).toBe(30);
    iov_iter_advance(i, 15);
    expect([i.seg, i.iov_offset, i.count]).toEqual([1, 5, 15]);
    iov_iter_revert(i, 12);
    expect([i.seg, i.iov_offset, i.count]).toEqual([0, 3, 27]);
  });
});

describe('copy_to_iter', () => {
  it('§11: a user segment that faults ends the copy short', () => {
    const env = bootEnv();
    const a = env.buffer(8192);
    env.sys(sys_munmap(a + 4096, 4096));
    const i = import_iovec(ITER_DEST, [{ iov_base: a + 4000, iov_len: 200 }]) as iov_iter;
    expect(env.sys(copy_to_iter(new Uint8Array(200).fill(1), 200, i))).toBe(96);
  });
});

describe('iov_iter_get_pages2', () => {
  it('§11: FOLL_GET references; a destination iterator asks FOLL_WRITE (read-only memory fails)', () => {
    const env = bootEnv();
    const a = env.buffer(4096);
    const p = env.pfnAt(a)! as page;
    const refs = page_ref_count(p);
    const src = import_iovec(ITER_SOURCE, [{ iov_base: a, iov_len: 4096 }]) as iov_iter;
    const pages: page[] = [];
    expect(env.sys(iov_iter_get_pages2(src, pages, 4096, 1)).ret).toBe(4096);
    expect(page_ref_count(p)).toBe(refs + 1);
    put_page(pages[0]!);
    const ro = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    env.load(ro);
    const dst = import_iovec(ITER_DEST, [{ iov_base: ro, iov_len: 4096 }]) as iov_iter;
    expect(env.sys(iov_iter_get_pages2(dst, [], 4096, 1)).ret).toBe(-EFAULT);
  });
});

describe('iov_iter_extract_pages', () => {
  it('§11: user iterators are pinned (FOLL_PIN); the offset of the first page is reported', () => {
    const env = bootEnv();
    const a = env.buffer(8192);
    const p = env.pfnAt(a)! as page;
    const refs = page_ref_count(p);
    const i = import_iovec(ITER_DEST, [{ iov_base: a + 512, iov_len: 4096 }]) as iov_iter;
    const pages: page[] = [];
    const r = env.sys(iov_iter_extract_pages(i, pages, 4096, 2, 0));
    expect(r).toEqual({ ret: 4096, offset: 512 });
    expect(pages.length).toBe(2);
    expect(page_ref_count(p)).toBe(refs + GUP_PIN_COUNTING_BIAS);
    for (const q of pages) unpin_user_page(q);
    expect(page_ref_count(p)).toBe(refs);
  });
});
