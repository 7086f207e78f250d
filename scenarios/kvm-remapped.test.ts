import { describe, expect, it } from 'vitest';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';
import { runScenario } from '../src/index.js';
import kvmRemapped from './kvm-remapped.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';

describe('kvm-remapped', () => {
  verdictTests(kvmRemapped, 'unsafe');
  // Model disagreement (see the report): hva_to_pfn_remapped's guard() looks for a
  // `lease` property on the lookup's result, but follow_pfnmap_start binds its lease with
  // pfnsan_lease_bind and follow_pte/follow_pfn expose none, so KVM never guards the pfn
  // with its notifier and the sPTE install is reported stale-pfn. Also
  // kvm_vcpu_guest_access gives up after 64 RET_PF_RETRY faults in schedules that starve
  // the invalidating thread.
  verdictTests(kvmRemapped, 'fixed', {
    versions: SUPPORTED_VERSIONS,
    why: 'KVM notifier guard finds no lease',
  });
  replayTest(kvmRemapped, 'unsafe', '6.13');

  it('R-CALL-2: without the notifier the sPTE outlives the zap (pfnsan off: the final check)', () => {
    const t = runScenario(variantOf(kvmRemapped, 'unsafe'), '6.13', { CONFIG_PFNSAN: false });
    expect(t.verdict).toMatch(/^check: kvm\d+ still has an sPTE for gfn 0x0 -> pfn 0x200/);
  });
});
