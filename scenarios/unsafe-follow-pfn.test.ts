import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import unsafeFollowPfn from './unsafe-follow-pfn.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';

describe('unsafe-follow-pfn', () => {
  verdictTests(unsafeFollowPfn, 'strict');
  verdictTests(unsafeFollowPfn, 'nonstrict');
  replayTest(unsafeFollowPfn, 'nonstrict', '5.13');

  it('R-LEG-3: STRICT_FOLLOW_PFN=y refuses with pr_info and -EINVAL, nothing is mapped', () => {
    const t = runScenario(variantOf(unsafeFollowPfn, 'strict'), '5.13');
    expect(t.verdict).toBe('SAFE');
    expect(t.log.map((l) => l.text).join('\n')).toContain(
      'unsafe follow_pfn usage rejected, see CONFIG_STRICT_FOLLOW_PFN',
    );
    expect(t.notes.map((n) => n.text)).toContain('unsafe_follow_pfn: -EINVAL');
  });

  it('R-LEG-3: STRICT_FOLLOW_PFN=n WARNs once, taints, then the pfn is used stale', () => {
    const t = runScenario(variantOf(unsafeFollowPfn, 'nonstrict'), '5.13');
    expect(t.verdict).toBe('stale-pfn');
    const log = t.log.map((l) => l.text).join('\n');
    expect(log).toContain('unsafe follow_pfn usage');
    expect(log).toMatch(/WARNING: CPU: 0 PID: \d+ at mm\/memory\.c:unsafe_follow_pfn/);
    expect(t.reports[0]!.title).toContain('iommu_map');
  });
});
