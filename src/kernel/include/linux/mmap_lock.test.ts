/**
 * Tests of the mmap_lock wrappers and assertions (mmap_lock.ts), which the PFN-mapping
 * code relies on (vm_flags_set, vm_insert_page's BUG_ON(mmap_read_trylock()),
 * folio_walk_start and follow_pte's mmap_assert_locked).
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task } from '../../kernel/fork.js';
import { KernelBug } from '../../kernel/panic.js';
import { dmesg } from '../../kernel/printk.js';
import type { Op } from '../../../sched/index.js';
import type { mm_struct } from './mm_types.js';
import {
  mmap_assert_locked,
  mmap_assert_write_locked,
  mmap_read_lock,
  mmap_read_trylock,
  mmap_read_unlock,
  mmap_write_downgrade,
  mmap_write_lock,
  mmap_write_unlock,
} from './mmap_lock.js';

function boot(
  version: string,
  config: Record<string, boolean | number> = {},
): { k: Kernel; mm: mm_struct } {
  const k = new Kernel({ version, config });
  start_kernel(k, { map: x86_64_e820(2 ** 30) });
  return { k, mm: create_user_task('test').mm! };
}

function warnings(): number {
  return (dmesg().match(/WARNING: CPU/g) ?? []).length;
}

describe('mmap_read_trylock', () => {
  it('fails while a writer holds the lock, succeeds with readers', () => {
    const { k, mm } = boot('6.12');
    const r = k.runner();
    const results: boolean[] = [];
    r.spawn(
      'writer',
      (function* (): Op<void> {
        yield* mmap_write_lock(mm);
        yield* mmap_write_unlock(mm);
      })(),
    );
    r.spawn(
      'reader',
      (function* (): Op<void> {
        results.push(yield* mmap_read_trylock(mm));
        results.push(yield* mmap_read_trylock(mm));
        yield* mmap_read_unlock(mm);
      })(),
    );
    // writer locks; reader tries (fails); writer unlocks; reader tries (succeeds), unlocks
    const res = r.run([0, 1, 0, 1, 1]);
    expect(res.status).toBe('done');
    expect(results).toEqual([false, true]);
  });
});

describe('mmap_write_lock', () => {
  it('excludes readers until mmap_write_downgrade, which keeps the lock for read', () => {
    const { k, mm } = boot('6.12');
    const r = k.runner();
    r.spawn(
      'writer',
      (function* (): Op<void> {
        yield* mmap_write_lock(mm);
        yield* mmap_write_downgrade(mm);
        yield* mmap_read_unlock(mm);
      })(),
    );
    r.spawn(
      'reader',
      (function* (): Op<void> {
        yield* mmap_read_lock(mm);
        yield* mmap_read_unlock(mm);
      })(),
    );
    r.step(0); // write-locked
    expect(r.blocked().map((b) => b.thread)).toEqual(['reader']);
    r.step(0); // downgraded: readers may enter
    expect(r.blocked()).toEqual([]);
    expect(r.run([1, 1, 0]).status).toBe('done');
  });
});

describe('mmap_assert_locked', () => {
  it('v6.10+ with lockdep: a WARN when the running thread does not hold it', () => {
    const { k, mm } = boot('6.12');
    k.run(
      (function* () {
        mmap_assert_locked(mm);
      })(),
    );
    expect(warnings()).toBe(1);
    k.run(
      (function* () {
        yield* mmap_read_lock(mm);
        mmap_assert_locked(mm);
        yield* mmap_read_unlock(mm);
      })(),
    );
    expect(warnings()).toBe(1);
  });

  it('v6.10+ without lockdep: WARN_ON_ONCE(!rwsem_is_locked()) only', () => {
    const { k, mm } = boot('6.12', { CONFIG_LOCKDEP: false, CONFIG_PROVE_LOCKING: false });
    mmap_assert_locked(mm);
    expect(warnings()).toBe(1);
    // held by another thread: rwsem_is_locked() is true, no report
    const r = k.runner();
    r.spawn(
      'holder',
      (function* (): Op<void> {
        yield* mmap_read_lock(mm);
        yield* mmap_read_unlock(mm);
      })(),
    );
    r.step(0);
    mmap_assert_locked(mm);
    expect(warnings()).toBe(1);
    r.run();
  });

  it('up to v6.9: lockdep WARN, then VM_BUG_ON_MM when nobody holds it', () => {
    const { mm } = boot('6.1');
    expect(() => mmap_assert_locked(mm)).toThrow(KernelBug);
    expect(warnings()).toBe(1);
  });
});

describe('mmap_assert_write_locked', () => {
  it('a read hold is not enough (lockdep WARN)', () => {
    const { k, mm } = boot('6.12');
    k.run(
      (function* () {
        yield* mmap_read_lock(mm);
        mmap_assert_write_locked(mm);
        yield* mmap_read_unlock(mm);
      })(),
    );
    expect(warnings()).toBe(1);
  });
});
