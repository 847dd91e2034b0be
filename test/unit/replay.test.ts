import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  COUNTER_BITS_TOTAL,
  COUNTER_LIMIT,
  COUNTER_WINDOW_SIZE,
  ReplayWindow,
} from '../../tunnel/replay.js';

const W = COUNTER_WINDOW_SIZE;

describe('replay window constants', () => {
  it('match the kernel (messages.h) and wireguard-go (replay.go) on 64-bit', () => {
    // COUNTER_BITS_TOTAL 8192; COUNTER_WINDOW_SIZE = 8192 - BITS_PER_LONG;
    // wireguard-go: (ringBlocks 128 - 1) * blockBits 64.
    expect(COUNTER_BITS_TOTAL).toBe(8192);
    expect(W).toBe(8128);
    expect(W).toBe((128 - 1) * 64);
    expect(COUNTER_LIMIT).toBe(Number.MAX_SAFE_INTEGER + 1);
  });
});

// The kernel's numbered cases, drivers/net/wireguard/selftest/counter.c. Each case feeds
// one counter to the validator (check-and-set) and states whether it must pass. Here
// accept() plays counter_validate(); before every accept, check() must already give
// the same answer and must not change anything.
//
// The kernel's REJECT_AFTER_MESSAGES (2^64 - COUNTER_WINDOW_SIZE - 1) is out of reach of
// a JS number; cases 25-34, which probe that limit, probe Burrow's COUNTER_LIMIT (2^53)
// instead. 2^53 + 1 is not a double, so case 30 passes 2^53 + 1 as JS rounds it (2^53):
// still at the limit, still refused.
describe('kernel selftest counter.c cases', () => {
  const T_LIM = W + 1;
  const LIMIT = COUNTER_LIMIT;

  function runner() {
    const w = new ReplayWindow();
    let n = 0;
    const failures: string[] = [];
    const T = (counter: number, expected: boolean) => {
      n++;
      const checked = w.check(counter);
      const again = w.check(counter);
      const accepted = w.accept(counter);
      if (checked !== expected || again !== expected || accepted !== expected) {
        failures.push(`case ${n}: counter ${counter}: check ${checked}, accept ${accepted}, want ${expected}`);
      }
    };
    return { w, T, failures, count: () => n };
  }

  it('cases 1-34 in order', () => {
    const { T, failures, count } = runner();
    /*  1 */ T(0, true); // the first counter of a keypair
    /*  2 */ T(1, true);
    /*  3 */ T(1, false); // replay
    /*  4 */ T(9, true); // a jump ahead
    /*  5 */ T(8, true); // late but in the window
    /*  6 */ T(7, true);
    /*  7 */ T(7, false);
    /*  8 */ T(T_LIM, true); // newest is now W + 1: 0 falls out, 1 is the oldest
    /*  9 */ T(T_LIM - 1, true);
    /* 10 */ T(T_LIM - 1, false);
    /* 11 */ T(T_LIM - 2, true);
    /* 12 */ T(2, true); // exactly W behind the newest: still inside
    /* 13 */ T(2, false);
    /* 14 */ T(T_LIM + 16, true);
    /* 15 */ T(3, false); // now too old
    /* 16 */ T(T_LIM + 16, false);
    /* 17 */ T(T_LIM * 4, true); // a jump of several windows clears the ring
    /* 18 */ T(T_LIM * 4 - (T_LIM - 1), true); // newest - W: the oldest still allowed
    /* 19 */ T(10, false);
    /* 20 */ T(T_LIM * 4 - T_LIM, false); // newest - (W + 1): one too old
    /* 21 */ T(T_LIM * 4 - (T_LIM + 1), false);
    /* 22 */ T(T_LIM * 4 - (T_LIM - 2), true);
    /* 23 */ T(T_LIM * 4 + 1 - T_LIM, false); // = case 18's counter again
    /* 24 */ T(0, false);
    /* 25 */ T(LIMIT, false); // the limit itself is refused
    /* 26 */ T(LIMIT - 1, true); // the largest counter there is
    /* 27 */ T(LIMIT, false);
    /* 28 */ T(LIMIT - 1, false);
    /* 29 */ T(LIMIT - 2, true);
    /* 30 */ T(LIMIT + 1, false);
    /* 31 */ T(LIMIT + 2, false);
    /* 32 */ T(LIMIT - 2, false);
    /* 33 */ T(LIMIT - 3, true);
    /* 34 */ T(0, false);
    expect(failures).toEqual([]);
    expect(count()).toBe(34);
  });

  it('1..W in order, then 0 is exactly W behind: accepted once', () => {
    const { T, failures } = runner();
    for (let i = 1; i <= W; i++) T(i, true);
    T(0, true);
    T(0, false);
    expect(failures).toEqual([]);
  });

  it('2..W+1 in order, then 1 accepted and 0 too old', () => {
    const { T, failures } = runner();
    for (let i = 2; i <= W + 1; i++) T(i, true);
    T(1, true);
    T(0, false);
    expect(failures).toEqual([]);
  });

  it('W..0 in descending order: every one accepted', () => {
    const { T, failures } = runner();
    for (let i = W + 1; i-- > 0; ) T(i, true);
    expect(failures).toEqual([]);
  });

  it('W+1..1 descending, then 0 is too old', () => {
    const { T, failures } = runner();
    for (let i = W + 2; i-- > 1; ) T(i, true);
    T(0, false);
    expect(failures).toEqual([]);
  });

  it('W..1 descending, then W+1 accepted and 0 too old', () => {
    const { T, failures } = runner();
    for (let i = W + 1; i-- > 1; ) T(i, true);
    T(W + 1, true);
    T(0, false);
    expect(failures).toEqual([]);
  });

  it('W..1 descending, then 0 accepted before W+1 arrives', () => {
    const { T, failures } = runner();
    for (let i = W + 1; i-- > 1; ) T(i, true);
    T(0, true);
    T(W + 1, true);
    expect(failures).toEqual([]);
  });
});

describe('replay window edges', () => {
  it('refuses what is not a counter, without changing state', () => {
    const w = new ReplayWindow();
    for (const bad of [-1, -0.5, 0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, Number.MAX_VALUE]) {
      expect(w.check(bad)).toBe(false);
      expect(w.accept(bad)).toBe(false);
    }
    expect(w.accept(0)).toBe(true);
  });

  it('check never changes state', () => {
    const w = new ReplayWindow();
    expect(w.check(100)).toBe(true);
    expect(w.check(100)).toBe(true);
    expect(w.accept(0)).toBe(true); // 100 did not move the window
    expect(w.accept(100)).toBe(true);
    expect(w.check(100)).toBe(false);
  });

  it('reset forgets everything', () => {
    const w = new ReplayWindow();
    expect(w.accept(5)).toBe(true);
    expect(w.accept(100_000)).toBe(true);
    expect(w.accept(5)).toBe(false);
    w.reset();
    expect(w.accept(5)).toBe(true);
    expect(w.accept(0)).toBe(true);
    expect(w.accept(100_000)).toBe(true);
  });

  it('counters beyond 2^32 index the ring correctly', () => {
    const w = new ReplayWindow();
    const base = 2 ** 40 + 12345;
    for (let i = 0; i < 3 * COUNTER_BITS_TOTAL; i += 3) expect(w.accept(base + i)).toBe(true);
    for (let i = 0; i < 3 * COUNTER_BITS_TOTAL; i += 3) {
      const c = base + i;
      const newest = base + 3 * (COUNTER_BITS_TOTAL - 1);
      expect(w.check(c)).toBe(false); // either seen or too old
      expect(w.check(c + 1)).toBe(newest - (c + 1) <= W);
    }
  });
});

// A deliberately naive model: the set of every counter ever accepted and the largest.
// A counter is accepted iff it is a safe non-negative integer, it has not been accepted
// before, and it is at most W behind the newest (counter >= max - W; with nothing
// accepted yet, anything in range). This is exactly the kernel's and wireguard-go's
// behaviour: their ring never forgets a counter that is still inside the window, and
// everything outside it is refused by the age test before the ring is read.
class NaiveReplay {
  readonly seen = new Set<number>();
  max = -1;

  wouldAccept(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (this.seen.has(counter)) return false;
    return this.max < 0 || counter >= this.max - W;
  }

  accept(counter: number): boolean {
    if (!this.wouldAccept(counter)) return false;
    this.seen.add(counter);
    if (counter > this.max) this.max = counter;
    return true;
  }
}

type Step =
  | { kind: 'near'; delta: number; commit: boolean } // relative to the model's newest
  | { kind: 'jump'; delta: number; commit: boolean } // far ahead (or behind)
  | { kind: 'again'; pick: number; commit: boolean } // a counter used before
  | { kind: 'abs'; value: number; commit: boolean }; // absolute, incl. the edges

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('near' as const),
      delta: fc.oneof(
        fc.integer({ min: -W - 70, max: 70 }),
        fc.constantFrom(-W - 1, -W, -W + 1, 0, 1, 32, 64, -32, -64),
      ),
      commit: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('jump' as const),
      delta: fc.oneof(
        fc.integer({ min: W - 200, max: COUNTER_BITS_TOTAL + 200 }),
        fc.integer({ min: 1, max: 4 * COUNTER_BITS_TOTAL }),
        fc.integer({ min: 2 ** 32 - 100, max: 2 ** 32 + 100 }),
        fc.integer({ min: 1, max: 2 ** 52 }),
        fc.integer({ min: -4 * COUNTER_BITS_TOTAL, max: -1 }),
      ),
      commit: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('again' as const), pick: fc.nat(), commit: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('abs' as const),
      value: fc.oneof(
        fc.constantFrom(0, 1, 63, 64, 65, W, W + 1, 2 ** 53 - 1, 2 ** 53 - 2, 2 ** 53, -1, 0.5, NaN),
        fc.integer({ min: 0, max: 3 * COUNTER_BITS_TOTAL }),
      ),
      commit: fc.boolean(),
    }),
  },
);

describe('replay window against the naive model', () => {
  it('agrees on every check and accept over random sequences', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 400 }), (steps) => {
        const real = new ReplayWindow();
        const model = new NaiveReplay();
        const used: number[] = [];
        for (const step of steps) {
          let counter: number;
          const newest = Math.max(model.max, 0);
          switch (step.kind) {
            case 'near':
            case 'jump':
              counter = Math.min(Math.max(newest + step.delta, 0), 2 ** 53 + 2);
              break;
            case 'again':
              counter = used.length === 0 ? 0 : used[step.pick % used.length]!;
              break;
            case 'abs':
              counter = step.value;
              break;
          }
          used.push(counter);
          const want = model.wouldAccept(counter);
          if (real.check(counter) !== want) return false;
          if (step.commit) {
            if (real.accept(counter) !== model.accept(counter)) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('agrees on long in-order runs with reordering and loss', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -3 * 64, max: 3 * 64 }), { minLength: 2000, maxLength: 6000 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (jitter, start) => {
          const real = new ReplayWindow();
          const model = new NaiveReplay();
          for (let i = 0; i < jitter.length; i++) {
            const counter = Math.max(0, start + 4 * i + jitter[i]!);
            if (real.check(counter) !== model.wouldAccept(counter)) return false;
            if (real.accept(counter) !== model.accept(counter)) return false;
          }
          return true;
        },
      ),
      { numRuns: 30 },
    );
  });
});
