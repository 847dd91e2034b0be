// The one timeout that drives the engine's timers (Device.tick): it must fire by the
// engine's next deadline. Those deadlines move with nearly every packet (a keepalive
// owed when data arrives, cleared when data leaves; a handshake expected after data is
// sent), and a clearTimeout and setTimeout per packet cost more than sealing the packet
// (bench/rtt.ts). So the timeout is moved only when a deadline comes earlier than the
// one armed; one armed too early fires, finds nothing due, and is armed again for the
// deadline then: at most one spare wake-up per deadline, instead of a timeout per packet.

export class DeadlineTimer {
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  private readonly onTimeout = (): void => {
    this.armedAt = Infinity;
    this.timer = undefined;
    this.fire();
  };

  /** `now`: the clock deadlines are on (ms); `fire`: runs due work and calls ensure() again. */
  constructor(private readonly now: () => number, private readonly fire: () => void) {}

  /** Makes sure the timeout fires by `at` (Infinity: nothing is due, keep what is armed). */
  ensure(at: number): void {
    if (at >= this.armedAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(this.onTimeout, Math.max(0, Math.ceil(at - this.now())));
  }

  /** When the armed timeout fires (Infinity: none is armed). */
  get armed(): number {
    return this.armedAt;
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }
}
