// The simulator in CI: the regression seeds, then random seeds for FUZZ_BUDGET_MS
// (default 35 s) starting at FUZZ_SEED (default 1). A failure is shrunk and reported with
// its replay command (`npm run fuzz -- --seed …`) and its minimal trace.

import { describe, expect, it } from 'vitest';
import { BUDGET_MS, SEED } from './budget.js';
import { campaign, explain, regressionScenario } from './sim/campaign.js';
import { REGRESSIONS } from './sim/regressions.js';
import { generateScenario } from './sim/scenario.js';
import { type SimResult, simulate } from './sim/simulate.js';

const SHRINK_MS = 20_000;

function failureReport(r: SimResult): string {
  const f = explain(r, SHRINK_MS);
  const v = r.violation!;
  return [
    `seed ${r.scenario.seed}: [${v.rule}] at ${v.time} ms on ${v.node ?? '-'}: ${v.message}`,
    `replay: npm run fuzz -- ${f.replay}`,
    ...f.trace.slice(-150),
  ].join('\n');
}

describe('simulator', () => {
  for (const reg of REGRESSIONS) {
    const test = reg.open === true ? it.fails : it;
    test(`regression seed ${reg.seed}: ${reg.note}`, () => {
      const r = simulate(regressionScenario(reg));
      if (r.violation !== undefined) throw new Error(failureReport(r));
    });
  }

  it('one seed, run twice, gives the same trace', () => {
    const runOnce = (): string[] => {
      const lines: string[] = [];
      simulate(generateScenario(SEED, { maxChaosMs: 60_000 }), { trace: (l) => lines.push(l), verbose: true });
      return lines;
    };
    const a = runOnce();
    expect(a.length).toBeGreaterThan(100);
    expect(runOnce()).toEqual(a);
  });

  it(`random seeds from ${SEED} for ${BUDGET_MS} ms: every invariant holds`, () => {
    const summary = campaign({ budgetMs: BUDGET_MS, firstSeed: SEED, stop: true });
    console.log(`simulator: ${summary.seeds} seeds from ${SEED}, ${(summary.simulatedMs / 3_600_000).toFixed(1)} h simulated, `
      + `${summary.handshakes} handshakes, ${summary.delivered} packets delivered, ${summary.forged} forged datagrams refused`);
    const failure = summary.failures[0];
    if (failure !== undefined) throw new Error(failureReport(failure));
    expect(summary.seeds).toBeGreaterThan(0);
  }, BUDGET_MS + SHRINK_MS + 60_000);
});
