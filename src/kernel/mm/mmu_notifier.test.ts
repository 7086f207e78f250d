/**
 * MMU notifiers: kernel-spec.md §8 R-MMUN-1 (events), R-MMUN-2 (where they fire),
 * R-MMUN-3 (interval notifiers and the read_begin / read_retry protocol), R-MMUN-4
 * (a notifier only asks its user to stop; it cannot refuse a blockable invalidation).
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../sched/index.js';
import { Kernel } from '../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../init/main.js';
import { create_user_task } from '../kernel/fork.js';
import {
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_UNMAP,
  MMU_NOTIFY_EVENT_NAMES,
  mmu_interval_notifier_insert,
  mmu_interval_notifier_remove,
  mmu_interval_read_begin,
  mmu_interval_read_retry,
  mmu_interval_set_seq,
  mmu_notifier_invalidate_range_end,
  mmu_notifier_invalidate_range_start,
  mmu_notifier_range_init,
  mmu_notifier_register,
  mmu_notifier_release,
  new_interval_notifier,
  notifierLog,
  type mmu_interval_notifier,
  type mmu_notifier,
  type mmu_notifier_range,
} from './mmu_notifier.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
  vm_munmap,
} from './mmap.js';
import { cpu_user_write } from '../arch/x86/mm/fault.js';
import { zap_page_range_single } from './memory.zap.js';
import { mmap_read_lock, mmap_read_unlock } from '../include/linux/mmap_lock.js';
import { walkToPte, ptep_get } from '../include/linux/pgtable.js';
import { pte_pfn, pte_present } from '../arch/x86/include/asm/pgtable_types.js';
import { page_ref_count } from '../include/linux/page_ref.js';
import type { page } from '../include/linux/mm_types.js';
import { spinlock_t, spin_lock, spin_unlock } from '../include/linux/spinlock.js';
import { vma_lookup } from './vma.js';

function boot(version = '6.12') {
  const k = new Kernel({ version });
  start_kernel(k, { map: x86_64_e820(2 ** 30) });
  const task = create_user_task('app');
  return { k, task, mm: task.mm! };
}

/** A driver-like user of an interval notifier: a lock, and what it saw. */
function intervalUser(name: string) {
  const lock = new spinlock_t(`${name}.lock`);
  const seen: { start: number; end: number; event: number; ptePresent: boolean[] }[] = [];
  const sub: mmu_interval_notifier = new_interval_notifier(name, {
    *invalidate(s, range: mmu_notifier_range, cur_seq: number): Op<boolean> {
      yield* spin_lock(lock);
      mmu_interval_set_seq(s, cur_seq);
      const present: boolean[] = [];
      for (let a = range.start; a < range.end; a += 4096) {
        const p = walkToPte(range.mm, a);
        present.push(p !== null && pte_present(ptep_get(p)));
      }
      seen.push({ start: range.start, end: range.end, event: range.event, ptePresent: present });
      yield* spin_unlock(lock);
      return true;
    },
  });
  return { sub, lock, seen };
}

describe('mmu_notifier_invalidate_range_start / _end', () => {
  it('R-MMUN-1: the event kinds are the kernel enum in order', () => {
    expect(MMU_NOTIFY_EVENT_NAMES.slice(0, 7)).toEqual([
      'MMU_NOTIFY_UNMAP',
      'MMU_NOTIFY_CLEAR',
      'MMU_NOTIFY_PROTECTION_VMA',
      'MMU_NOTIFY_PROTECTION_PAGE',
      'MMU_NOTIFY_SOFT_DIRTY',
      'MMU_NOTIFY_RELEASE',
      'MMU_NOTIFY_MIGRATE',
    ]);
  });

  it('R-MMUN-2: a zap fires CLEAR and the notifier runs before the PTEs are cleared', () => {
    const { k, task, mm } = boot();
    const addr = k.run(
      vm_mmap_pgoff(mm, null, 0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    for (let i = 0; i < 4; i++) k.run(cpu_user_write(task, addr + i * 4096, new Uint8Array([1])));
    const u = intervalUser('drv');
    expect(k.run(mmu_interval_notifier_insert(u.sub, mm, addr, 4 * 4096, u.sub.ops))).toBe(0);
    k.run(
      (function* () {
        yield* mmap_read_lock(mm);
        yield* zap_page_range_single(vma_lookup(mm, addr)!, addr + 4096, 2 * 4096, null);
        yield* mmap_read_unlock(mm);
      })(),
    );
    // 0x...1000 and 0x...2000 were still mapped when the user was told.
    expect(u.seen).toEqual([
      {
        start: addr + 4096,
        end: addr + 3 * 4096,
        event: MMU_NOTIFY_CLEAR,
        ptePresent: [true, true],
      },
    ]);
    expect(u.sub.invalidations).toBe(1);
  });

  it('R-MMUN-2: munmap fires UNMAP around the whole range; installing entries fires nothing', () => {
    const { k, task, mm } = boot();
    const addr = k.run(
      vm_mmap_pgoff(mm, null, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    notifierLog().length = 0;
    k.run(cpu_user_write(task, addr, new Uint8Array([1])));
    expect(notifierLog()).toEqual([]);
    k.run(vm_munmap(mm, addr, 2 * 4096));
    const ev = notifierLog().filter((e) => e.mm === mm.id);
    expect(ev.map((e) => `${e.phase}:${e.event}`)).toEqual([
      'start:MMU_NOTIFY_UNMAP',
      'end:MMU_NOTIFY_UNMAP',
    ]);
    expect(ev[0]!.start).toBeLessThanOrEqual(addr);
    expect(ev[0]!.end).toBeGreaterThanOrEqual(addr + 2 * 4096);
  });

  it('R-MMUN-2: classic subscriptions see start then end, in that order, with the range', () => {
    const { k, mm } = boot();
    const calls: string[] = [];
    const sub: mmu_notifier = {
      name: 'classic',
      mm: null,
      ops: {
        *invalidate_range_start(_s, r) {
          calls.push(`start ${r.start.toString(16)}-${r.end.toString(16)}`);
          return 0;
        },
        *invalidate_range_end(_s, r) {
          calls.push(`end ${r.start.toString(16)}-${r.end.toString(16)}`);
        },
      },
    };
    k.run(mmu_notifier_register(sub, mm));
    const r = mmu_notifier_range_init(MMU_NOTIFY_UNMAP, 0, mm, 0x10000, 0x12000);
    k.run(mmu_notifier_invalidate_range_start(r));
    k.run(mmu_notifier_invalidate_range_end(r));
    expect(calls).toEqual(['start 10000-12000', 'end 10000-12000']);
  });
});

describe('secondary TLB callbacks', () => {
  /** Zaps 2 written anon pages with a classic subscription that records what it sees. */
  function zapWithSecondary(version: string) {
    const { k, task, mm } = boot(version);
    const addr = k.run(
      vm_mmap_pgoff(mm, null, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
    );
    for (let i = 0; i < 2; i++) k.run(cpu_user_write(task, addr + i * 4096, new Uint8Array([1])));
    const pfns = [0, 1].map((i) => pte_pfn(ptep_get(walkToPte(mm, addr + i * 4096)!)));
    const calls: string[] = [];
    const look = (what: string, start: number, end: number): void => {
      const present = [0, 1].some((i) => pte_present(ptep_get(walkToPte(mm, addr + i * 4096)!)));
      const held = pfns.every((p) => page_ref_count(p as page) > 0);
      calls.push(`${what} ${start <= addr && end >= addr + 2 * 4096} pte:${present} pages:${held}`);
    };
    const sub: mmu_notifier = {
      name: 'iommu-sva',
      mm: null,
      ops: {
        *invalidate_range(_s, _mm, start, end) {
          look('invalidate_range', start, end);
        },
        *arch_invalidate_secondary_tlbs(_s, _mm, start, end) {
          look('arch_invalidate_secondary_tlbs', start, end);
        },
        *invalidate_range_end(_s, r) {
          look('invalidate_range_end', r.start, r.end);
        },
      },
    };
    k.run(mmu_notifier_register(sub, mm));
    k.run(
      (function* () {
        yield* mmap_read_lock(mm);
        yield* zap_page_range_single(vma_lookup(mm, addr)!, addr, 2 * 4096, null);
        yield* mmap_read_unlock(mm);
      })(),
    );
    return { calls, freed: pfns.every((p) => page_ref_count(p as page) === 0) };
  }

  it('R-MMUN-2, v6.6+: ->arch_invalidate_secondary_tlbs after the PTEs are cleared and the TLB flushed, before the pages are freed', () => {
    const r = zapWithSecondary('6.18');
    expect(r.calls).toEqual([
      'invalidate_range_end true pte:false pages:true',
      'arch_invalidate_secondary_tlbs true pte:false pages:true',
    ]);
    expect(r.freed).toBe(true);
  });

  it('R-MMUN-2, v5.10-v6.5: ->invalidate_range from invalidate_range_end, before ->invalidate_range_end and the free', () => {
    const r = zapWithSecondary('6.1');
    expect(r.calls).toEqual([
      'invalidate_range true pte:false pages:true',
      'invalidate_range_end true pte:false pages:true',
    ]);
    expect(r.freed).toBe(true);
  });
});

describe('mmu_interval_read_begin / mmu_interval_read_retry', () => {
  it('R-MMUN-3: an invalidation after read_begin makes read_retry true; none leaves it false', () => {
    const { k, mm } = boot();
    const u = intervalUser('drv');
    k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0x2000, u.sub.ops));
    const seq = k.run(mmu_interval_read_begin(u.sub));
    expect(mmu_interval_read_retry(u.sub, seq)).toBe(false);
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x401000, 0x402000);
    k.run(mmu_notifier_invalidate_range_start(r));
    k.run(mmu_notifier_invalidate_range_end(r));
    expect(mmu_interval_read_retry(u.sub, seq)).toBe(true);
    const seq2 = k.run(mmu_interval_read_begin(u.sub));
    expect(mmu_interval_read_retry(u.sub, seq2)).toBe(false);
  });

  it('R-MMUN-3: an invalidation outside the interval does not disturb the reader', () => {
    const { k, mm } = boot();
    const u = intervalUser('drv');
    k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0x2000, u.sub.ops));
    const seq = k.run(mmu_interval_read_begin(u.sub));
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x402000, 0x403000); // just past last
    k.run(mmu_notifier_invalidate_range_start(r));
    k.run(mmu_notifier_invalidate_range_end(r));
    expect(u.seen).toEqual([]);
    expect(mmu_interval_read_retry(u.sub, seq)).toBe(false);
  });

  it('R-MMUN-3: read_begin waits while an invalidation of the interval is in progress', () => {
    const { k, mm } = boot();
    const u = intervalUser('drv');
    k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0x1000, u.sub.ops));
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x400000, 0x401000);
    const run = k.runner();
    run.spawn(
      'zapper',
      (function* () {
        yield* mmu_notifier_invalidate_range_start(r);
        yield* mmu_notifier_invalidate_range_end(r);
      })(),
    );
    let got = -1;
    run.spawn(
      'reader',
      (function* () {
        got = yield* mmu_interval_read_begin(u.sub);
      })(),
    );
    // The zapper runs until its invalidation has been delivered (start done), then the
    // reader, once it has read the subscription's sequence (set by the callback: its
    // first step), must be blocked until the zapper's end.
    while (u.seen.length === 0) run.step(0);
    while (run.threads[0]!.pending?.what !== 'mn_itree_inv_end') run.step(0);
    expect(run.threads[1]!.pending?.obj).toBe(u.sub.seq_obj);
    expect(run.step(1)).toBe(true);
    expect(run.enabled().map((t) => t.name)).toEqual(['zapper']);
    expect(run.blocked().map((b) => b.thread)).toEqual(['reader']);
    expect(run.run().status).toBe('done');
    expect(got).toBe(u.sub.invalidate_seq);
    expect(mmu_interval_read_retry(u.sub, got)).toBe(false);
  });

  it('R-MMUN-3: insert rejects an empty interval; remove stops invalidations', () => {
    const { k, mm } = boot();
    const u = intervalUser('drv');
    expect(k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0, u.sub.ops))).toBe(-22);
    expect(k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0x1000, u.sub.ops))).toBe(0);
    k.run(mmu_interval_notifier_remove(u.sub));
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x400000, 0x401000);
    k.run(mmu_notifier_invalidate_range_start(r));
    k.run(mmu_notifier_invalidate_range_end(r));
    expect(u.seen).toEqual([]);
  });
});

describe('mmu_notifier_release', () => {
  it('R-MMUN-4: after release (exit) later invalidations reach nobody', () => {
    const { k, mm } = boot();
    const u = intervalUser('drv');
    k.run(mmu_interval_notifier_insert(u.sub, mm, 0x400000, 0x1000, u.sub.ops));
    k.run(mmu_notifier_release(mm));
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x400000, 0x401000);
    k.run(mmu_notifier_invalidate_range_start(r));
    k.run(mmu_notifier_invalidate_range_end(r));
    expect(u.seen).toEqual([]);
  });

  it('R-MMUN-4: a notifier cannot refuse a blockable invalidation: returning false WARNs', () => {
    const { k, mm } = boot();
    const sub = new_interval_notifier('refuser', {
      *invalidate() {
        return false;
      },
    });
    k.run(mmu_interval_notifier_insert(sub, mm, 0x400000, 0x1000, sub.ops));
    const r = mmu_notifier_range_init(MMU_NOTIFY_CLEAR, 0, mm, 0x400000, 0x401000);
    k.run(mmu_notifier_invalidate_range_start(r));
    expect(k.log.some((l) => l.text.startsWith('WARNING: CPU: 0'))).toBe(true);
  });
});
