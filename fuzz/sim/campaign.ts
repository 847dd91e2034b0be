// Running many seeds: the shared loop behind `npm run fuzz` and fuzz/sim.test.ts.

import { type Regression } from './regressions.js';
import { describeStep, generateScenario, keepSteps, type Scenario, type ScenarioLimits, withClients } from './scenario.js';
import { replayArgs, shrink } from './shrink.js';
import { type SimOptions, type SimResult, simulate } from './simulate.js';

export interface Narrowing {
  readonly clients?: number | undefined;
  readonly chaosMs?: number | undefined;
  readonly keep?: readonly number[] | undefined;
}

/** The scenario of `seed`, narrowed as a shrunk replay asks. */
export function scenarioFor(seed: number, narrow: Narrowing = {}, limits: ScenarioLimits = {}): Scenario {
  let s = generateScenario(seed, limits);
  if (narrow.clients !== undefined) s = withClients(s, narrow.clients);
  if (narrow.chaosMs !== undefined) s = { ...s, chaosMs: narrow.chaosMs };
  if (narrow.keep !== undefined) s = keepSteps(s, new Set(narrow.keep));
  return s;
}

export const regressionScenario = (r: Regression, limits: ScenarioLimits = {}): Scenario =>
  scenarioFor(r.seed, { clients: r.clients, chaosMs: r.chaosMs, keep: r.keep }, limits);

export interface Failure {
  readonly seed: number;
  readonly result: SimResult;
  /** The shrunk scenario's replay arguments and its trace. */
  readonly replay: string;
  readonly trace: string[];
  readonly shrunkSteps: number;
}

const TRACE_TAIL = 400;

/** Shrinks a failing result and renders its minimal trace (every step, the last lines of the rest). */
export function explain(result: SimResult, shrinkMs: number, options: SimOptions = {}, limits: ScenarioLimits = {}): Failure {
  const original = generateScenario(result.scenario.seed, limits);
  const shrunk = shrink(result.scenario, result.violation!, shrinkMs, options);
  const lines: string[] = [];
  simulate(shrunk.scenario, { ...options, trace: (l) => lines.push(l) });
  const stepLines = shrunk.scenario.steps.map((st) => `  ${describeStep(st)}`);
  const tail = lines.length > TRACE_TAIL ? [`  … ${lines.length - TRACE_TAIL} earlier lines …`, ...lines.slice(-TRACE_TAIL)] : lines;
  return {
    seed: result.scenario.seed, result, replay: replayArgs(shrunk.scenario, original), shrunkSteps: shrunk.scenario.steps.length,
    trace: [`steps of the shrunk scenario (${shrunk.scenario.steps.length}, ${shrunk.attempts} shrink attempts):`, ...stepLines, 'trace:', ...tail],
  };
}

export interface CampaignOptions {
  readonly budgetMs: number;
  readonly firstSeed: number;
  readonly maxSeeds?: number;
  readonly limits?: ScenarioLimits;
  readonly sim?: SimOptions;
  readonly onResult?: (r: SimResult, elapsedMs: number) => void;
  /** Stop at the first failure. */
  readonly stop?: boolean;
}

export interface CampaignSummary {
  readonly seeds: number;
  readonly simulatedMs: number;
  readonly failures: SimResult[];
  readonly handshakes: number;
  readonly delivered: number;
  readonly forged: number;
}

/** Runs seeds firstSeed, firstSeed + 1, … until the budget (or maxSeeds) is spent. */
export function campaign(o: CampaignOptions): CampaignSummary {
  const start = performance.now();
  const failures: SimResult[] = [];
  let seeds = 0;
  let simulatedMs = 0;
  let handshakes = 0;
  let delivered = 0;
  let forged = 0;
  for (let seed = o.firstSeed >>> 0; ; seed = (seed + 1) >>> 0) {
    if (performance.now() - start >= o.budgetMs || (o.maxSeeds !== undefined && seeds >= o.maxSeeds)) break;
    const t0 = performance.now();
    const r = simulate(generateScenario(seed, o.limits), o.sim);
    seeds++;
    simulatedMs += r.stats.simulatedMs;
    handshakes += r.stats.handshakes;
    delivered += r.stats.delivered;
    forged += r.stats.forged;
    o.onResult?.(r, performance.now() - t0);
    if (r.violation !== undefined) {
      failures.push(r);
      if (o.stop === true) break;
    }
  }
  return { seeds, simulatedMs, failures, handshakes, delivered, forged };
}
