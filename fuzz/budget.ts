// Budgets of the fuzz suites, from the environment, so CI can run them short and a
// person long:
//   FUZZ_RUNS       fast-check runs per property (default 100)
//   FUZZ_BUDGET_MS  wall-clock time the simulator suite spends on random seeds (default 35000)
//   FUZZ_SEED       the first seed of the simulator suite and fast-check's seed (default 1;
//                   "random" for a fresh one, printed)

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name}: expected a positive number, got ${raw}`);
  return n;
}

export const RUNS = Math.round(positive('FUZZ_RUNS', 100));
export const BUDGET_MS = positive('FUZZ_BUDGET_MS', 35_000);

function seed(): number {
  const raw = process.env.FUZZ_SEED;
  if (raw === 'random') return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`FUZZ_SEED: expected a non-negative integer or "random", got ${raw}`);
  return n >>> 0;
}

export const SEED = seed();

/** fast-check parameters: the seed (printed on failure by fast-check) and the run count. */
export const fcParams = (runs = RUNS): { seed: number; numRuns: number } => ({ seed: SEED | 0, numRuns: runs });
