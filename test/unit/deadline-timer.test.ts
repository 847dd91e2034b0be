// The engine's one timeout (src/runtime/deadline-timer.ts): it fires by every deadline it
// was given, and moves only when a deadline comes earlier than the one armed.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineTimer } from '../../src/runtime/deadline-timer.js';

describe('DeadlineTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A timer whose fire() records the time and ensures the next of `deadlines` still ahead. */
  function setup(deadlines: number[]) {
    const now = () => Date.now() - start;
    const start = Date.now();
    const fired: number[] = [];
    const timer: DeadlineTimer = new DeadlineTimer(now, () => {
      fired.push(now());
      const next = deadlines.find((d) => d > now());
      timer.ensure(next ?? Infinity);
    });
    return { timer, fired };
  }

  it('arms one timeout while deadlines move later, fires early once and re-arms for the real one', () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const { timer, fired } = setup([3000]);
    timer.ensure(1000);
    // A packet per millisecond, each moving the deadline later: no new timeout.
    for (let i = 0; i < 500; i++) {
      vi.advanceTimersByTime(1);
      timer.ensure(1000 + i);
    }
    timer.ensure(3000);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    expect(timer.armed).toBe(1000);
    vi.advanceTimersByTime(500); // t = 1000: fires early, nothing due but 3000
    expect(fired).toEqual([1000]);
    expect(timer.armed).toBe(3000);
    vi.advanceTimersByTime(2000);
    expect(fired).toEqual([1000, 3000]);
    expect(timer.armed).toBe(Infinity);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(2);
    setTimeoutSpy.mockRestore();
  });

  it('moves the timeout when a deadline comes earlier, and never fires late', () => {
    const { timer, fired } = setup([]);
    timer.ensure(5000);
    timer.ensure(200);
    vi.advanceTimersByTime(199);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([200]);
    // Fired and nothing ahead: nothing armed, nothing fires at 5000.
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual([200]);
  });

  it('ignores Infinity, and stop() disarms', () => {
    const { timer, fired } = setup([]);
    timer.ensure(Infinity);
    expect(timer.armed).toBe(Infinity);
    timer.ensure(100);
    timer.stop();
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([]);
    expect(timer.armed).toBe(Infinity);
  });
});
