// Per-source rate limit on handshake messages under load (paper §5.3, as the kernel's
// ratelimiter.c and wireguard-go's ratelimiter do it): a token bucket per source,
// PACKETS_PER_SECOND with a burst of PACKETS_BURSTABLE.
//
// A source is an IPv4 address, or an IPv6 /64 as the kernel keys it: one host owns a
// whole /64, so keying by /128 would give an attacker 2^64 fresh buckets.
// The table is bounded. It is kept in last-seen order (a Map re-inserted on each use), so
// idle entries are swept from its front, and when it is full the entry seen longest ago
// makes room: a newcomer is never refused for want of space.

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

/**
 * The bucket key of a source address in text form: an IPv4 address as it is (also when
 * written IPv4-mapped, ::ffff:a.b.c.d), an IPv6 address by its first 64 bits. Text that
 * is not an address is its own key.
 */
export function sourceKey(host: string): string {
  const percent = host.indexOf('%');
  const text = percent >= 0 ? host.slice(0, percent) : host;
  if (!text.includes(':')) return text;
  const groups = ipv6Groups(text);
  if (groups === undefined) return text;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address in text form, or undefined. */
function ipv6Groups(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (i === fields.length - 1 && f.includes('.')) {
        const v4 = f.split('.');
        if (v4.length !== 4 || !v4.every((o) => /^\d{1,3}$/u.test(o) && Number(o) <= 255)) return undefined;
        const [a, b, c, d] = v4.map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        if (!/^[0-9a-f]{1,4}$/iu.test(f)) return undefined;
        out.push(parseInt(f, 16));
      }
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
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
    const key = sourceKey(source);
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxEntries) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: TOKEN_MAX, last: now };
    } else {
      this.buckets.delete(key); // re-inserted below: the Map stays in last-seen order
    }
    this.buckets.set(key, b);
    b.tokens = Math.min(TOKEN_MAX, b.tokens + Math.max(0, now - b.last));
    b.last = now;
    if (b.tokens < PACKET_COST) return false;
    b.tokens -= PACKET_COST;
    return true;
  }

  /** Forgets idle entries: they sit at the front of the last-seen order. */
  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.buckets) {
      if (now - b.last < IDLE_TIME) break;
      this.buckets.delete(k);
    }
  }
}
