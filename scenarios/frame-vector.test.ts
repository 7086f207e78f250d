import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import frameVector from './frame-vector.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';

describe('frame-vector', () => {
  verdictTests(frameVector, 'cma');
  verdictTests(frameVector, 'pfn-path');
  replayTest(frameVector, 'cma', '5.10');
  replayTest(frameVector, 'pfn-path', '5.15');

  it('R-GUP-8: 5.12 FOLL_LONGTERM moves the buffer out of CMA before pinning; cma_alloc succeeds', () => {
    const t = runScenario(variantOf(frameVector, 'cma'), '5.12');
    expect(t.verdict).toBe('SAFE');
    const notes = t.notes.map((n) => n.text);
    expect(
      notes.some((n) =>
        /^get_vaddr_frames: 1 frame\(s\), pinned page\(s\) from pfn 0x[0-9a-f]+$/.test(n),
      ),
    ).toBe(true);
    // The pinned page is outside the CMA area (pfn 0x30000..0x301ff): it was migrated.
    const pinned = Number(
      /from pfn (0x[0-9a-f]+)/.exec(notes.find((n) => n.includes('pinned'))!)![1],
    );
    expect(pinned < 0x30000 || pinned >= 0x30200).toBe(true);
    expect(notes.some((n) => /^cma_alloc\(512 pages\) = pfn 0x30000$/.test(n))).toBe(true);
  });

  it('R-FV-1: 6.1 refuses the VM_IO mapping (no follow_pfn fallback)', () => {
    const t = runScenario(variantOf(frameVector, 'pfn-path'), '6.1');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toContain(
      'get_vaddr_frames: -EFAULT: the buffer is refused',
    );
  });
});
