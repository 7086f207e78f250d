import { describe, expect, it } from 'vitest';
import { runDemo } from './driver-mmap.js';

describe('the driver-mmap example', () => {
  it('6.12: the zap waits for the PTE lock follow_pfnmap_start holds until _end', () => {
    const t = runDemo('6.12', {}, []);
    expect(t.status).toBe('done');
    const lookupUnlock = t.steps.findIndex(
      (s) => s.thread === 'lookup' && s.kind === 'release' && s.obj.endsWith('.ptl'),
    );
    const lookupLock = t.steps.findIndex(
      (s) => s.thread === 'lookup' && s.kind === 'acquire' && s.obj.endsWith('.ptl'),
    );
    const revokeLock = t.steps.findIndex(
      (s) => s.thread === 'revoke' && s.kind === 'acquire' && s.obj === t.steps[lookupLock]!.obj,
    );
    // The revoke ran while the lookup held the lock, yet only took it after the release.
    expect(t.steps.slice(lookupLock, lookupUnlock).some((s) => s.thread === 'revoke')).toBe(true);
    expect(revokeLock).toBeGreaterThan(lookupUnlock);
    expect(t.notes.map((n) => n.text)).toContain(
      'follow_pfnmap_start: pfn 0xfe003, PTE lock held until _end',
    );
    expect(t.notes.at(-1)!.text).toBe('PTE cleared');
  });

  it('5.10: follow_pfn hands out the pfn with the lock already dropped', () => {
    const t = runDemo('5.10', {}, []);
    expect(t.notes.map((n) => n.text)).toContain(
      'follow_pfn: pfn 0xfe003 (PTE lock already dropped)',
    );
  });

  it('the same schedule gives the identical trace; the trace schedule replays the default run', () => {
    const a = runDemo('6.18', {}, []);
    const b = runDemo('6.18', {}, a.schedule);
    expect(b).toEqual(a);
    expect(runDemo('6.18', {}, [])).toEqual(a);
  });

  it('a schedule that names a blocked thread is reported, not thrown', () => {
    const a = runDemo('6.12', {}, []);
    const lock = a.steps.findIndex(
      (s) => s.thread === 'lookup' && s.kind === 'acquire' && s.obj.endsWith('.ptl'),
    );
    // lookup up to and including its PTE lock, then revoke until it blocks, then revoke again.
    const sched = [...a.schedule.slice(0, lock + 1), 1, 1, 1, 1, 1, 1, 1, 1];
    const t = runDemo('6.12', {}, sched);
    expect(t.status).toBe('bad-schedule');
    expect(t.error).toMatch(/thread 1 \(revoke\) is blocked on mm1\.pte\d+\.ptl/);
  });
});
