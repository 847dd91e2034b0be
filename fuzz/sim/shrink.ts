// Shrinking a failing scenario: a smaller one that fails by the same rule. Tried in
// order, each kept only if the failure stays: drop the steps after the violation, fewer
// clients, an earlier heal, then delta debugging (ddmin) over the steps, then single
// steps. Bounded by a wall-clock budget; whatever was reached by then is returned.

import { keepSteps, type Scenario, withClients } from './scenario.js';
import { type SimOptions, simulate } from './simulate.js';
import type { Violation } from './world.js';

export interface Shrunk {
  readonly scenario: Scenario;
  readonly violation: Violation;
  readonly attempts: number;
}

/** The command-line arguments that replay `s` exactly. */
export function replayArgs(s: Scenario, original: Scenario): string {
  const args = [`--seed ${s.seed}`];
  if (s.clients !== original.clients) args.push(`--clients ${s.clients}`);
  if (s.chaosMs !== original.chaosMs) args.push(`--chaos-ms ${s.chaosMs}`);
  if (s.steps.length !== original.steps.length) args.push(`--keep ${s.steps.length === 0 ? 'none' : s.steps.map((x) => x.id).join(',')}`);
  return args.join(' ');
}

export function shrink(failing: Scenario, violation: Violation, budgetMs: number, options: SimOptions = {}): Shrunk {
  const deadline = performance.now() + budgetMs;
  let best = failing;
  let bestViolation = violation;
  let attempts = 0;
  const quiet: SimOptions = { ...(options.crypto === undefined ? {} : { crypto: options.crypto }) };

  const tryCandidate = (candidate: Scenario): boolean => {
    if (performance.now() > deadline) return false;
    attempts++;
    const r = simulate(candidate, quiet);
    if (r.violation !== undefined && r.violation.rule === violation.rule) {
      best = candidate;
      bestViolation = r.violation;
      return true;
    }
    return false;
  };

  // Steps after the violation never ran.
  const cut = { ...best, steps: best.steps.filter((st) => st.at <= bestViolation.time) };
  if (cut.steps.length < best.steps.length) tryCandidate(cut);

  for (let c = 1; c < best.clients; c++) {
    if (tryCandidate(withClients(best, c))) break;
  }

  // An earlier heal, when the violation is not about the heal itself.
  const lastStep = best.steps.at(-1)?.at ?? 0;
  if (lastStep + 1000 < best.chaosMs && bestViolation.time < best.chaosMs) {
    tryCandidate({ ...best, chaosMs: Math.max(lastStep + 1000, Math.ceil(bestViolation.time) + 1) });
  }

  // ddmin over the steps.
  let n = 2;
  while (best.steps.length >= 2 && performance.now() < deadline) {
    const steps = best.steps;
    const chunk = Math.ceil(steps.length / n);
    let reduced = false;
    for (let i = 0; i < n && !reduced; i++) {
      const keep = new Set(steps.filter((_, j) => Math.floor(j / chunk) !== i).map((st) => st.id));
      if (keep.size < steps.length && tryCandidate(keepSteps(best, keep))) {
        reduced = true;
        n = Math.max(n - 1, 2);
      }
    }
    if (!reduced) {
      if (n >= steps.length) break;
      n = Math.min(steps.length, n * 2);
    }
  }
  for (const st of [...best.steps]) {
    if (performance.now() > deadline) break;
    const keep = new Set(best.steps.filter((x) => x.id !== st.id).map((x) => x.id));
    tryCandidate(keepSteps(best, keep));
  }
  return { scenario: best, violation: bestViolation, attempts };
}
