import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import kvmRemapped from './kvm-remapped.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';

describe('kvm-remapped', () => {
  verdictTests(kvmRemapped, 'unsafe');
  verdictTests(kvmRemapped, 'fixed');
  replayTest(kvmRemapped, 'unsafe', '6.13');

  it('R-CALL-2: without the notifier the sPTE outlives the zap (pfnsan off: the final check)', () => {
    const t = runScenario(variantOf(kvmRemapped, 'unsafe'), '6.13', { CONFIG_PFNSAN: false });
    expect(t.verdict).toMatch(/^check: kvm\d+ still has an sPTE for gfn 0x0 -> pfn 0x200/);
  });
});
