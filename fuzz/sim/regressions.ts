// Seeds that the simulator runs first, every time (CI included): scenarios that once
// found a bug, or that reach a corner worth keeping. `clients`, `chaosMs` and `keep`
// narrow a seed's scenario as `npm run fuzz -- --seed S --clients N --chaos-ms T --keep …`
// does.
//
// `open: true` marks a failure in the engine that is known and not fixed yet: the test
// expects it to fail (it.fails), so CI stays green and turns red the day it is fixed,
// when `open` should be removed.

export interface Regression {
  readonly seed: number;
  readonly clients?: number;
  readonly chaosMs?: number;
  readonly keep?: readonly number[];
  readonly note: string;
  readonly open?: boolean;
}

export const REGRESSIONS: readonly Regression[] = [];
