import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import folioWalkPfnmap from './folio-walk-pfnmap.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';
import { expectDporCoversBruteForce } from './dpor.testlib.js';

describe('folio-walk-pfnmap', () => {
  verdictTests(folioWalkPfnmap, 'unsafe');
  verdictTests(folioWalkPfnmap, 'fixed');
  replayTest(folioWalkPfnmap, 'unsafe', '6.12');

  it('R-FW-1: 6.12 folio_walk_start on the special PMD leaf (BAR pfn 0xfe000) returns NULL', () => {
    const t = runScenario(variantOf(folioWalkPfnmap, 'fixed'), '6.12');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toContain('walker: folio_walk_start = NULL');
    expect(t.notes[0]!.text).toContain('2 MiB special PMD leaf');
  });

  it('R-GUP-6: 6.1 follow_page(FOLL_GET) on the special PTE is -EEXIST', () => {
    const t = runScenario(variantOf(folioWalkPfnmap, 'fixed'), '6.1');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toContain('walker: follow_page(FOLL_GET) = -EEXIST');
  });

  it('unsafe: the search explores every trace of the schedules with <= 3 preemptions, once', () => {
    // The walker BUGs holding the PMD lock; the zapper takes that lock later: the zap
    // first (the walker then finds nothing, SAFE) is another trace.
    const r = expectDporCoversBruteForce(variantOf(folioWalkPfnmap, 'unsafe'), '6.18', 3);
    expect(r.traces).toBeGreaterThanOrEqual(2);
  });
});
