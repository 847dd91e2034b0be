// The simulator from the command line.
//
//   npm run fuzz                          a short run of random seeds (about 20 s)
//   npm run fuzz -- --minutes 30          random seeds for 30 minutes
//   npm run fuzz -- --seed 1234           replay one seed and print its whole trace
//   npm run fuzz -- --seed 1234 --clients 1 --chaos-ms 5000 --keep 3,17
//                                         replay a shrunk scenario, as a failure prints it
// Options: --verbose (every datagram in the trace), --crypto noble (the portable
// backends instead of node:crypto), --shrink-ms N (time spent shrinking a failure),
// --first-seed N (start of the random run), --max-chaos-ms N, --stop (at the first failure).
// A failure prints its seed, the shrunk scenario's replay arguments and its trace, and
// the run exits with status 1.

import { parseArgs } from 'node:util';
import { campaign, explain, regressionScenario, scenarioFor } from './sim/campaign.js';
import { REGRESSIONS } from './sim/regressions.js';
import type { ScenarioLimits } from './sim/scenario.js';
import { type SimOptions, type SimResult, simulate } from './sim/simulate.js';
import type { CryptoChoice } from './sim/world.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    clients: { type: 'string' },
    'chaos-ms': { type: 'string' },
    keep: { type: 'string' },
    minutes: { type: 'string' },
    'budget-ms': { type: 'string' },
    'shrink-ms': { type: 'string' },
    'first-seed': { type: 'string' },
    'max-chaos-ms': { type: 'string' },
    crypto: { type: 'string' },
    verbose: { type: 'boolean' },
    stop: { type: 'boolean' },
  },
  strict: true,
});

const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`--${name}: expected a non-negative number, got ${v}`);
  return n;
};

const crypto = (values.crypto ?? 'node') as CryptoChoice;
if (crypto !== 'node' && crypto !== 'noble') throw new RangeError('--crypto: node or noble');
const limits: ScenarioLimits = values['max-chaos-ms'] === undefined ? {} : { maxChaosMs: num('max-chaos-ms', values['max-chaos-ms'])! };
const shrinkMs = num('shrink-ms', values['shrink-ms']) ?? 60_000;
const sim: SimOptions = { crypto };

function report(r: SimResult): void {
  const v = r.violation!;
  console.log(`\nFAIL seed=${r.scenario.seed} [${v.rule}] at ${v.time} ms on ${v.node ?? '-'}: ${v.message}`);
  console.log(`shrinking (up to ${shrinkMs / 1000} s)…`);
  const f = explain(r, shrinkMs, sim, limits);
  console.log(`replay: npm run fuzz -- ${f.replay}`);
  for (const line of f.trace) console.log(line);
}

function main(): number {
  if (values.seed !== undefined) {
    const seed = num('seed', values.seed)!;
    const keep = values.keep === undefined ? undefined : values.keep === 'none' ? [] : values.keep.split(',').map((x) => num('keep', x)!);
    const s = scenarioFor(seed, { clients: num('clients', values.clients), chaosMs: num('chaos-ms', values['chaos-ms']), keep }, limits);
    const r = simulate(s, { ...sim, verbose: values.verbose === true, trace: (l) => console.log(l) });
    const st = r.stats;
    console.log(`\nseed ${seed}: ${r.violation === undefined ? 'ok' : `FAIL [${r.violation.rule}] ${r.violation.message}`}`);
    console.log(`  ${st.simulatedMs / 1000} s simulated, ${st.inputs} inputs, ${st.datagrams} datagrams (${st.forged} forged), `
      + `${st.delivered} packets delivered, ${st.handshakes} handshakes, max heap ${st.maxHeap}, max staged ${st.maxStaged}`);
    console.log(`  drops: ${JSON.stringify(st.drops)}`);
    return r.violation === undefined ? 0 : 1;
  }

  const minutes = num('minutes', values.minutes);
  const budgetMs = minutes !== undefined ? minutes * 60_000 : (num('budget-ms', values['budget-ms']) ?? 20_000);
  const firstSeed = num('first-seed', values['first-seed']) ?? (globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!);
  let failed = 0;

  for (const reg of REGRESSIONS) {
    const r = simulate(regressionScenario(reg, limits), sim);
    const bad = r.violation !== undefined;
    console.log(`regression seed ${reg.seed}${reg.open === true ? ' (open engine finding)' : ''}: ${bad ? `fails [${r.violation!.rule}]` : 'passes'} — ${reg.note}`);
    if (bad && reg.open !== true) {
      failed++;
      report(r);
    }
  }

  console.log(`random seeds from ${firstSeed} for ${(budgetMs / 1000).toFixed(0)} s`);
  const start = performance.now();
  let lastProgress = start;
  const summary = campaign({
    budgetMs, firstSeed, limits, sim, stop: values.stop === true,
    onResult: (r) => {
      if (r.violation !== undefined) {
        failed++;
        report(r);
      }
      const now = performance.now();
      if (now - lastProgress > 30_000) {
        lastProgress = now;
        console.log(`… ${((now - start) / 1000).toFixed(0)} s: seed ${r.scenario.seed}, ${failed} failing so far`);
      }
    },
  });
  console.log(`\n${summary.seeds} seeds (${firstSeed}..${(firstSeed + summary.seeds - 1) >>> 0}), ${(summary.simulatedMs / 3_600_000).toFixed(1)} h simulated, `
    + `${summary.handshakes} handshakes, ${summary.delivered} packets delivered, ${summary.forged} forged datagrams refused, `
    + `${summary.failures.length} failing seeds${summary.failures.length === 0 ? '' : `: ${summary.failures.map((f) => f.scenario.seed).join(', ')}`}`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = main();
