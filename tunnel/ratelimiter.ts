// Per-source rate limit on handshake messages under load (paper §5.3, as the kernel's
// ratelimiter.c and wireguard-go's ratelimiter do it): a token bucket per source
// address, INITIATIONS_PER_SECOND_UNDER_LOAD with a burst of INITIATIONS_BURSTABLE.
// The table is bounded: idle entries are swept, and when it is full a new source is
// refused rather than letting the table grow.

export const PACKETS_PER_SECOND = 20;
export const PACKETS_BURSTABLE = 5;
const PACKET_COST = 1000 / PACKETS_PER_SECOND; // ms of budget per packet
const TOKEN_MAX = PACKET_COST * PACKETS_BURSTABLE;
/** Entries idle this long are forgotten (a full bucket again). */
const IDLE_TIME = 1000;
export const RATELIMITER_MAX_ENTRIES = 8192;

interface Bucket {
  tokens: number;
  last: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = -Infinity;

  constructor(private readonly maxEntries = RATELIMITER_MAX_ENTRIES) {}

  get size(): number {
    return this.buckets.size;
  }

  /** True when a packet from `source` (an address, without the port) may be processed now. */
  allow(source: string, now: number): boolean {
    if (now - this.lastSweep >= IDLE_TIME) this.sweep(now);
    let b = this.buckets.get(source);
    if (b === undefined) {
      if (this.buckets.size >= this.maxEntries) return false;
      b = { tokens: TOKEN_MAX, last: now };
      this.buckets.set(source, b);
    }
    b.tokens = Math.min(TOKEN_MAX, b.tokens + Math.max(0, now - b.last));
    b.last = now;
    if (b.tokens < PACKET_COST) return false;
    b.tokens -= PACKET_COST;
    return true;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (now - b.last >= IDLE_TIME) this.buckets.delete(k);
  }
}
