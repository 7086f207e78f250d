import { describe, expect, it } from 'vitest';
import { agreement, renderAgreement, NOT_MODELLED } from './run.js';
import { loadExpected } from './live.js';

describe('the agreement table', () => {
  it('counts agreements, disagreements and uncompared cases', () => {
    const live = loadExpected('6.18');
    const model = { ...live, 'vvar/mlock': '-ENOMEM' };
    const a = agreement('6.18', 'test', live, model);
    expect(a.disagree).toEqual(['vvar/mlock: live ok, model -ENOMEM']);
    expect(a.notCompared).toBe(14 * NOT_MODELLED.size);
    expect(a.agree + a.disagree.length + a.notCompared).toBe(21 * 14);
    const text = renderAgreement(a);
    expect(text).toContain('!-ENOMEM');
    expect(text).toMatch(new RegExp(`${a.agree} agree, 1 disagree, ${a.notCompared} not compared`));
    expect(a.agree).toBe(21 * 14 - 1 - a.notCompared);
  });
});
