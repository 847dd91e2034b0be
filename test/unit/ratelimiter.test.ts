// The per-source handshake rate limiter (finding 5 of issue 10): IPv6 sources share a
// bucket per /64, as the kernel keys them, and a full table makes room by forgetting
// the entry seen longest ago instead of refusing the newcomer.
import { describe, expect, it } from 'vitest';
import { PACKETS_BURSTABLE, RateLimiter, sourceKey } from '../../tunnel/ratelimiter.js';

const burst = (rl: RateLimiter, source: string, now: number) =>
  Array.from({ length: PACKETS_BURSTABLE + 1 }, () => rl.allow(source, now));

describe('RateLimiter', () => {
  it('keys IPv6 by /64: the hosts of one /64 share a bucket', () => {
    const rl = new RateLimiter();
    expect(burst(rl, '2001:db8:1:2::1', 0).filter(Boolean)).toHaveLength(PACKETS_BURSTABLE);
    expect(rl.allow('2001:db8:1:2:ffff:ffff:ffff:ffff', 0)).toBe(false);
    expect(rl.allow('2001:db8:1:3::1', 0)).toBe(true); // the next /64 has its own
  });

  it('keys IPv4 by address, also written IPv4-mapped', () => {
    const rl = new RateLimiter();
    expect(burst(rl, '192.0.2.1', 0).filter(Boolean)).toHaveLength(PACKETS_BURSTABLE);
    expect(rl.allow('::ffff:192.0.2.1', 0)).toBe(false);
    expect(rl.allow('192.0.2.2', 0)).toBe(true);
  });

  it('one /64 however it is written', () => {
    const forms = ['2001:db8:0:1::5', '2001:0DB8:0000:0001:0000:0000:0000:0006', '2001:db8:0:1:1:2:3:4%eth0', '2001:db8::1:0:0:0:7'];
    expect(new Set(forms.map(sourceKey)).size).toBe(1);
    expect(sourceKey('::1.2.3.4')).toBe('0:0:0:0::/64');
    expect(sourceKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(sourceKey('198.51.100.7')).toBe('198.51.100.7');
    expect(sourceKey('not:an::address::')).toBe('not:an::address::');
  });

  it('a full table forgets the entry seen longest ago and admits the newcomer', () => {
    const rl = new RateLimiter(4);
    for (let i = 1; i <= 4; i++) rl.allow(`198.51.100.${i}`, i);
    rl.allow('198.51.100.1', 5); // .1 seen again: .2 is now the oldest
    expect(rl.allow('203.0.113.9', 6)).toBe(true);
    expect(rl.size).toBe(4);
    // .1 kept its spent token (still limited), .2 was forgotten (a full bucket again).
    expect(burst(rl, '198.51.100.1', 6).filter(Boolean)).toHaveLength(PACKETS_BURSTABLE - 2);
  });

  it('forgets idle entries', () => {
    const rl = new RateLimiter();
    for (let i = 0; i < 100; i++) rl.allow(`10.0.${i >> 8}.${i & 255}`, 0);
    rl.allow('10.1.0.0', 500);
    rl.allow('10.1.0.1', 1000);
    expect(rl.size).toBe(2);
  });
});
