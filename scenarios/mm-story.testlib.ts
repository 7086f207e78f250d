/**
 * Test helpers for the memory-management stories: every variant's verdict on every
 * supported version through checkScenario (all interleavings, no minimisation), and the
 * replay of an unsafe variant's counterexample.
 */
import { expect, it } from 'vitest';
import {
  checkScenario,
  concreteScenarios,
  expectedFor,
  runScenario,
  verdictMatches,
  type AnyScenario,
  type ConcreteScenario,
} from '../src/index.js';
import { SUPPORTED_VERSIONS } from '../src/kernel/version.js';

/** The concrete scenario of a variant. */
export function variantOf(s: AnyScenario, v: string): ConcreteScenario {
  const c = concreteScenarios(s).find((x) => x.variant === v);
  if (!c) throw new Error(`no variant ${v} of ${s.name}`);
  return c;
}

/**
 * One test per version for a variant: the explored verdict meets the expectation
 * derived from the kernel rules. `knownModelBugs` lists versions where the model is
 * known to disagree with the rules (the test is then it.fails, and flips when fixed).
 */
export function verdictTests(
  s: AnyScenario,
  variant: string,
  knownModelBugs: { versions: readonly string[]; why: string } | null = null,
): void {
  const c = variantOf(s, variant);
  for (const v of SUPPORTED_VERSIONS) {
    const exp = expectedFor(c, v);
    const known = knownModelBugs?.versions.includes(v) ?? false;
    const name = `${variant} on ${v}: ${exp.join(' | ')}${known ? ` (model disagrees: ${knownModelBugs!.why})` : ''}`;
    (known ? it.fails : it)(name, () => {
      const r = checkScenario(c, v, { minimize: 'never', trace: false });
      expect(verdictMatches(r.verdict, exp), `verdict ${r.verdict}`).toBe(true);
      if (r.verdict === 'SAFE') expect(r.complete).toBe(true);
    });
  }
}

/** The counterexample found on version v replays to the same verdict. */
export function replayTest(s: AnyScenario, variant: string, v: string): void {
  const c = variantOf(s, variant);
  it(`${variant} on ${v}: the counterexample's schedule replays to the same verdict`, () => {
    const r = checkScenario(c, v, { trace: false });
    expect(r.verdict).not.toBe('SAFE');
    const cx = r.counterexample!;
    const t = runScenario(c, v, {}, cx.schedule);
    expect(t.verdict).toBe(r.verdict);
    // Replaying the replayed run's own full schedule gives the same verdict again.
    expect(runScenario(c, v, {}, t.schedule).verdict).toBe(r.verdict);
  });
}
