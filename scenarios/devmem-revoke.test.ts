import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import devmemRevoke from './devmem-revoke.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';
import { expectDporCoversBruteForce } from './dpor.testlib.js';

describe('devmem-revoke', () => {
  verdictTests(devmemRevoke, 'strict');
  verdictTests(devmemRevoke, 'relaxed');
  replayTest(devmemRevoke, 'relaxed', '6.12');
  replayTest(devmemRevoke, 'strict', '5.7');

  it('R-REV-3: 5.8 strict, claim first: the store to BAR0+0x10 (0x40000010) is SIGBUS', () => {
    const t = runScenario(variantOf(devmemRevoke, 'strict'), '5.8', {}, '1');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.some((n) => /store to BAR0\+0x10: SIGBUS/.test(n.text))).toBe(true);
  });

  it.each(['5.8', '6.18'])(
    'R-REV-3 (%s strict): the revoke is scheduled: the stores interleave with its zap, and the search covers every bounded trace',
    (v) => {
      const r = expectDporCoversBruteForce(variantOf(devmemRevoke, 'strict'), v, 2);
      // More than claim-first and store-first: the zap's steps race with the stores.
      expect(r.traces).toBeGreaterThan(2);
    },
  );
});
