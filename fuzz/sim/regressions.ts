// Seeds that the simulator runs first, every time (CI included): scenarios that once
// found a bug, or that reach a corner worth keeping. `clients`, `chaosMs` and `keep`
// narrow a seed's scenario as `npm run fuzz -- --seed S --clients N --chaos-ms T --keep …`
// does.
//
// A seed names a scenario through generateScenario (scenario.ts): a change there changes
// what every seed means, so re-check these (they should still reach their corner) after
// one.
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

export const REGRESSIONS: readonly Regression[] = [
  {
    seed: 2059831114,
    keep: [0, 1, 25, 29, 30, 38, 39, 53, 55, 61, 66, 68, 69],
    note: 'a replayed initiation after a restart leaves a next keypair; the rekey then drops current (forgiven, as the kernel does)',
  },
  {
    seed: 2059831012,
    note: 'the same at the forwarding server, for a client removed and added back: packets between two clients are lost at the hop',
  },
  {
    seed: 2059830921,
    note: 'the same, with the loss just after the new keypair is made',
  },
];
