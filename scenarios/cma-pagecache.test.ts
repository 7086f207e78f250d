import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import cmaPagecache from './cma-pagecache.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';

describe('cma-pagecache', () => {
  verdictTests(cmaPagecache, 'unsafe');
  verdictTests(cmaPagecache, 'fixed-pin');
  verdictTests(cmaPagecache, 'fixed-revoke');
  replayTest(cmaPagecache, 'unsafe', '6.12');

  it('R-REV-5: the freed CMA frame (pfn 0x30000) backs the page cache of /data when the user maps it', () => {
    // user: lookup + _end (7 steps); driver: zap + cma_release; reader: pread; then the user.
    const t = runScenario(variantOf(cmaPagecache, 'unsafe'), '6.12', {}, '0*7.1*16.2*11.0*10');
    expect(t.verdict).toBe('stale-pfn');
    const r = t.reports[0]!;
    expect(r.pfn).toBe(0x30000);
    expect(r.history.map((h) => h.owner)).toEqual([
      'free',
      'CMA buffer of cma_buf',
      'free',
      expect.stringMatching(/^page cache of inode \d+$/),
    ]);
  });
});
