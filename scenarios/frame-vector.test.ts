import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/index.js';
import { checkScenario, scenarioFactory } from '../src/scenario/execute.js';
import { explore } from '../src/sched/explore.js';
import frameVector from './frame-vector.js';
import { replayTest, variantOf, verdictTests } from './mm-story.testlib.js';
import { expectDporCoversBruteForce } from './dpor.testlib.js';

/** The CMA area of the scenario: pfn 0x30000..0x301ff. */
const inCma = (pfn: number): boolean => pfn >= 0x30000 && pfn < 0x30200;

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

  it('R-GUP-8 (5.15): a FOLL_LONGTERM pin taken after cma_alloc isolated the pageblock stays in CMA: cma-pin', () => {
    const c = variantOf(frameVector, 'cma');
    const r = checkScenario(c, '5.15', { trace: false });
    expect(r.verdict).toBe('cma-pin');
    const t = runScenario(c, '5.15', {}, r.counterexample!.schedule);
    expect(t.verdict).toBe('cma-pin');
    // is_pinnable_page() asked for MIGRATE_CMA; the block was MIGRATE_ISOLATE by then.
    const isolated = t.steps.findIndex((x) => x.what === 'set_migratetype_isolate');
    const pinned = t.notes.find((n) => n.text.includes('pinned page(s) from pfn'))!;
    expect(isolated).toBeGreaterThanOrEqual(0);
    expect(pinned.step).toBeGreaterThan(t.steps[isolated]!.index);
    expect(inCma(Number(/from pfn (0x[0-9a-f]+)/.exec(pinned.text)![1]))).toBe(true);
  });

  it('R-GUP-8 (6.18): cma_alloc can fail while the long-term pin is in flight; nothing is reported and it succeeds once GUP is done', () => {
    const c = variantOf(frameVector, 'cma');
    const schedules: number[][] = [];
    explore(scenarioFactory(c, '6.18'), {
      maxExecutions: 20,
      onExecution: (run) => schedules.push([...run.schedule]),
    });
    const t = schedules
      .map((sch) => runScenario(c, '6.18', {}, sch, { snapshots: false }))
      .find((x) => x.notes.some((n) => n.text === 'cma_alloc(512 pages) failed'));
    expect(t).toBeDefined();
    expect(t!.verdict).toBe('SAFE');
    expect(t!.reports).toEqual([]);
    const notes = t!.notes.map((n) => n.text);
    expect(notes).toContain('cma_alloc(512 pages) again at the end = pfn 0x30000');
    const pinned = notes.find((n) => n.includes('pinned page(s) from pfn'))!;
    expect(inCma(Number(/from pfn (0x[0-9a-f]+)/.exec(pinned)![1]))).toBe(false);
  });

  it('the search covers every trace that has a schedule with at most one preemption (6.18)', () => {
    const r = expectDporCoversBruteForce(variantOf(frameVector, 'cma'), '6.18', 1);
    expect(r.brute).toBeGreaterThan(1);
    expect(r.traces).toBeGreaterThan(r.brute);
  }, 120_000);

  it('R-FV-1: 6.1 refuses the VM_IO mapping (no follow_pfn fallback)', () => {
    const t = runScenario(variantOf(frameVector, 'pfn-path'), '6.1');
    expect(t.verdict).toBe('SAFE');
    expect(t.notes.map((n) => n.text)).toContain(
      'get_vaddr_frames: -EFAULT: the buffer is refused',
    );
  });
});
