import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import followPfnmap from './follow-pfnmap.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';
import { expectDporCoversBruteForce } from './dpor.testlib.js';

describe('follow-pfnmap', () => {
  verdictTests(followPfnmap, 'unsafe');
  verdictTests(followPfnmap, 'fixed-window');
  verdictTests(followPfnmap, 'fixed-notifier');
  replayTest(followPfnmap, 'unsafe', '6.12');
  replayTest(followPfnmap, 'unsafe', '5.10');

  it('R-FPM-3: unsafe 6.12, zap + free + reuse between _end and iommu_map: the report names the new owner', () => {
    // user: lookup, _end and mmap_read_unlock (7 steps); the driver zaps and frees pfn
    // 0x200; victim's fault takes it (first for its new PTE table: the allocator is LIFO);
    // then the user maps it for its device.
    const t = runScenario(variantOf(followPfnmap, 'unsafe'), '6.12', {}, '0*7.1*14.2*23');
    expect(t.verdict).toBe('stale-pfn');
    const r = t.reports[0]!;
    expect(r.ended?.what).toBe('follow_pfnmap_end');
    expect(r.history.at(-1)!.owner).toMatch(
      /^(page table of mm \d+|anon memory of pid \d+ \(victim\))$/,
    );
  });

  it('R-MMUN-3: fixed-notifier, zap first: one invalidation, the lookup finds no PTE', () => {
    const t = runScenario(variantOf(followPfnmap, 'fixed-notifier'), '6.12', {}, '1');
    expect(t.verdict).toBe('SAFE');
    const notes = t.notes.map((n) => n.text);
    expect(notes).toContain('accel: 1 invalidation(s), 0 retries');
    expect(notes.some((n) => n.startsWith('follow_pfnmap_start: -EINVAL'))).toBe(true);
  });

  it('fixed-notifier: the search explores every trace of the schedules with <= 1 preemption, once', () => {
    // mmu_interval_set_seq (in the accel callback, under the user's lock) writes the
    // subscription's invalidate_seq, which mmu_interval_read_begin reads without that lock:
    // a read_begin between the invalidation's start and the callback's set_seq does not
    // wait (the retry catches it), one after it waits. Unannounced, the two were one trace.
    const r = expectDporCoversBruteForce(variantOf(followPfnmap, 'fixed-notifier'), '6.18', 1);
    expect(r.traces).toBeGreaterThanOrEqual(r.brute);
  }, 300_000);
});
