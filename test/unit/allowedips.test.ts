import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AllowedIps } from '../../tunnel/allowedips.js';

function ip4(a: number, b: number, c: number, d: number): Uint8Array {
  return Uint8Array.of(a, b, c, d);
}

/** IPv6 from four 32-bit words, big-endian, as the kernel selftest writes them. */
function ip6(a: number, b: number, c: number, d: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint32(0, a >>> 0);
  view.setUint32(4, b >>> 0);
  view.setUint32(8, c >>> 0);
  view.setUint32(12, d >>> 0);
  return out;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Cases from the Linux kernel's drivers/net/wireguard/selftest/allowedips.c, in the same
// order; peers are named a..h as there.
describe('kernel selftest allowedips.c cases', () => {
  function kernelTable(): AllowedIps<string> {
    const t = new AllowedIps<string>();
    t.insert(ip4(192, 168, 4, 0), 24, 'a');
    t.insert(ip4(192, 168, 4, 4), 32, 'b');
    t.insert(ip4(192, 168, 0, 0), 16, 'c');
    t.insert(ip4(192, 95, 5, 64), 27, 'd');
    t.insert(ip4(192, 95, 5, 65), 27, 'c'); // replaces d's entry; host bits masked
    t.insert(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128, 'd');
    t.insert(ip6(0x26075300, 0x60006b00, 0, 0), 64, 'c');
    t.insert(ip4(0, 0, 0, 0), 0, 'e');
    t.insert(ip6(0, 0, 0, 0), 0, 'e');
    t.insert(ip6(0, 0, 0, 0), 0, 'f'); // replaces e's entry
    t.insert(ip6(0x24046800, 0, 0, 0), 32, 'g');
    t.insert(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 64, 'h'); // masked
    t.insert(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 128, 'a');
    t.insert(ip6(0x24446800, 0x40e40800, 0xdeaebeef, 0x0defbeef), 128, 'c');
    t.insert(ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0), 98, 'b');
    t.insert(ip4(64, 15, 112, 0), 20, 'g');
    t.insert(ip4(64, 15, 123, 211), 25, 'h'); // masked
    t.insert(ip4(10, 0, 0, 0), 25, 'a');
    t.insert(ip4(10, 0, 0, 128), 25, 'b');
    t.insert(ip4(10, 1, 0, 0), 30, 'a');
    t.insert(ip4(10, 1, 0, 4), 30, 'b');
    t.insert(ip4(10, 1, 0, 8), 29, 'c');
    t.insert(ip4(10, 1, 0, 16), 29, 'd');
    return t;
  }

  const lookups: Array<[string, Uint8Array, string]> = [
    ['1', ip4(192, 168, 4, 20), 'a'],
    ['2', ip4(192, 168, 4, 0), 'a'],
    ['3', ip4(192, 168, 4, 4), 'b'],
    ['4', ip4(192, 168, 200, 182), 'c'],
    ['5', ip4(192, 95, 5, 68), 'c'],
    ['6', ip4(192, 95, 5, 96), 'e'],
    ['7', ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 'd'],
    ['8', ip6(0x26075300, 0x60006b00, 0, 0xc02e01ee), 'c'],
    ['9', ip6(0x26075300, 0x60006b01, 0, 0), 'f'],
    ['10', ip6(0x24046800, 0x40040806, 0, 0x1006), 'g'],
    ['11', ip6(0x24046800, 0x40040806, 0x1234, 0x5678), 'g'],
    ['12', ip6(0x240467ff, 0x40040806, 0x1234, 0x5678), 'f'],
    ['13', ip6(0x24046801, 0x40040806, 0x1234, 0x5678), 'f'],
    ['14', ip6(0x24046800, 0x40040800, 0x1234, 0x5678), 'h'],
    ['15', ip6(0x24046800, 0x40040800, 0, 0), 'h'],
    ['16', ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010), 'h'],
    ['17', ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 'a'],
    ['18', ip4(64, 15, 116, 26), 'g'],
    ['19', ip4(64, 15, 127, 3), 'g'],
    ['20', ip4(64, 15, 123, 1), 'g'],
    ['21', ip4(64, 15, 123, 128), 'h'],
    ['22', ip4(64, 15, 123, 129), 'h'],
    ['23', ip4(10, 0, 0, 52), 'a'],
    ['24', ip4(10, 0, 0, 220), 'b'],
    ['25', ip4(10, 1, 0, 2), 'a'],
    ['26', ip4(10, 1, 0, 6), 'b'],
    ['27', ip4(10, 1, 0, 10), 'c'],
    ['28', ip4(10, 1, 0, 20), 'd'],
  ];

  it.each(lookups)('test %s', (_n, address, peer) => {
    expect(kernelTable().lookup(address)).toBe(peer);
  });

  it('the replaced entries moved: d lost 192.95.5.64/27, e lost ::/0', () => {
    const t = kernelTable();
    expect(t.entriesFor('d').map((e) => e.cidr)).not.toContain(27);
    expect(t.entriesFor('e')).toEqual([{ address: ip4(0, 0, 0, 0), cidr: 0 }]);
    expect(t.size).toBe(21); // 23 inserts, 2 of them moves
  });

  it('tests 29-33: removePeer takes every /32 of a away', () => {
    const t = kernelTable();
    for (const first of [1, 64, 128, 192, 255]) t.insert(ip4(first, 0, 0, 0), 32, 'a');
    t.removePeer('a');
    for (const first of [1, 64, 128, 192, 255]) expect(t.lookup(ip4(first, 0, 0, 0))).not.toBe('a');
    expect(t.entriesFor('a')).toEqual([]);
  });

  it('test 34: removing a peer with nested prefixes', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(192, 168, 0, 0), 16, 'a');
    t.insert(ip4(192, 168, 0, 0), 24, 'a');
    t.removePeer('a');
    expect(t.lookup(ip4(192, 168, 0, 1))).toBeUndefined();
    expect(t.size).toBe(0);
    expect(t.nodeCount).toBe(0);
  });

  it('128 host routes differing in one bit each, then removed', () => {
    const t = new AllowedIps<string>();
    for (let i = 0; i < 128; i++) {
      const ip = new Uint8Array(16).fill(0xff);
      ip[i >>> 3] = 0xff ^ (0x80 >>> (i & 7));
      t.insert(ip, 128, 'a');
    }
    expect(t.size).toBe(128);
    expect(t.nodeCount).toBeLessThanOrEqual(2 * 128 - 1);
    const probe = new Uint8Array(16).fill(0xff);
    probe[5] = 0xff ^ 0x10; // bit 43
    expect(t.lookup(probe)).toBe('a');
    expect(t.lookup(new Uint8Array(16).fill(0xff))).toBeUndefined();
    expect(t.removePeer('a')).toBe(128);
    expect(t.nodeCount).toBe(0);
  });

  it('tests 35-41: entriesFor reads prefixes back masked, in insertion order', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(192, 95, 5, 93), 27, 'a');
    t.insert(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128, 'a');
    t.insert(ip4(10, 1, 0, 20), 29, 'a');
    t.insert(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83, 'a');
    t.insert(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21, 'a');
    expect(t.entriesFor('a')).toEqual([
      { address: ip4(192, 95, 5, 64), cidr: 27 },
      { address: ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), cidr: 128 },
      { address: ip4(10, 1, 0, 16), cidr: 29 },
      { address: ip6(0x26075300, 0x6d8a6bf8, 0xdab1e000, 0), cidr: 83 },
      { address: ip6(0x26075000, 0, 0, 0), cidr: 21 },
    ]);
  });
});

describe('allowed IPs rules', () => {
  it('re-adding a prefix for another peer moves it, as wg set does', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(10, 0, 0, 0), 8, 'a');
    t.insert(ip4(10, 1, 0, 0), 16, 'a');
    t.insert(ip4(10, 0, 0, 0), 8, 'b');
    expect(t.size).toBe(2);
    expect(t.lookup(ip4(10, 2, 3, 4))).toBe('b');
    expect(t.lookup(ip4(10, 1, 3, 4))).toBe('a');
    expect(t.entriesFor('a')).toEqual([{ address: ip4(10, 1, 0, 0), cidr: 16 }]);
    expect(t.entriesFor('b')).toEqual([{ address: ip4(10, 0, 0, 0), cidr: 8 }]);
    // the same prefix with other host bits is the same prefix
    t.insert(ip4(10, 99, 98, 97), 8, 'c');
    expect(t.size).toBe(2);
    expect(t.entriesFor('b')).toEqual([]);
    expect(t.lookup(ip4(10, 2, 3, 4))).toBe('c');
  });

  it('re-adding a prefix for the same peer moves it to the end of its list (kernel list_move_tail)', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(10, 0, 0, 0), 8, 'a');
    t.insert(ip4(172, 16, 0, 0), 12, 'a');
    t.insert(ip4(10, 0, 0, 0), 8, 'a');
    expect(t.size).toBe(2);
    expect(t.entriesFor('a').map((e) => e.cidr)).toEqual([12, 8]);
  });

  it('remove takes one prefix and leaves shorter and longer ones alone', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(10, 0, 0, 0), 8, 'a');
    t.insert(ip4(10, 1, 0, 0), 16, 'b');
    t.insert(ip4(10, 1, 2, 0), 24, 'c');
    expect(t.remove(ip4(10, 1, 0, 0), 24)).toBe(false); // not there
    expect(t.remove(ip4(10, 1, 255, 255), 16)).toBe(true); // host bits ignored
    expect(t.remove(ip4(10, 1, 0, 0), 16)).toBe(false);
    expect(t.lookup(ip4(10, 1, 9, 9))).toBe('a');
    expect(t.lookup(ip4(10, 1, 2, 9))).toBe('c');
    expect(t.entriesFor('b')).toEqual([]);
    expect(t.size).toBe(2);
  });

  it('the families are separate: ::/0 does not cover IPv4, 0.0.0.0/0 does not cover IPv6', () => {
    const t = new AllowedIps<string>();
    t.insert(new Uint8Array(16), 0, 'six');
    expect(t.lookup(ip4(1, 2, 3, 4))).toBeUndefined();
    t.insert(new Uint8Array(4), 0, 'four');
    expect(t.lookup(ip4(1, 2, 3, 4))).toBe('four');
    expect(t.lookup(ip6(1, 2, 3, 4))).toBe('six');
  });

  it('removePeer returns the count and forgets the peer', () => {
    const t = new AllowedIps<object>();
    const p = {};
    const q = {};
    t.insert(ip4(1, 1, 1, 1), 32, p);
    t.insert(ip6(0x20010db8, 0, 0, 0), 32, p);
    t.insert(ip4(1, 1, 1, 0), 24, q);
    expect(t.removePeer(p)).toBe(2);
    expect(t.removePeer(p)).toBe(0);
    expect(t.lookup(ip4(1, 1, 1, 1))).toBe(q);
    expect(t.lookup(ip6(0x20010db8, 0, 0, 1))).toBeUndefined();
    expect(t.size).toBe(1);
  });

  it('lookup does not keep or copy the address it is given', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(10, 0, 0, 0), 8, 'a');
    const packet = Uint8Array.of(0, 0, 0, 0, 10, 20, 30, 40, 99);
    expect(t.lookup(packet.subarray(4, 8))).toBe('a');
  });

  it('validates its inputs', () => {
    const t = new AllowedIps<string>();
    expect(() => t.insert(new Uint8Array(5), 8, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(0), 0, 'a')).toThrow(RangeError);
    expect(() => t.insert([10, 0, 0, 0] as unknown as Uint8Array, 8, 'a')).toThrow(TypeError);
    expect(() => t.insert(new Uint8Array(4), 33, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(16), 129, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(4), -1, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(4), 8.5, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(4), NaN, 'a')).toThrow(RangeError);
    expect(() => t.insert(new Uint8Array(4), '8' as unknown as number, 'a')).toThrow(TypeError);
    expect(() => t.insert(new Uint8Array(4), 8, undefined as unknown as string)).toThrow(TypeError);
    expect(() => t.insert(new Uint8Array(4), 8, null as unknown as string)).toThrow(TypeError);
    expect(() => t.remove(new Uint8Array(3), 8)).toThrow(RangeError);
    expect(() => t.remove(new Uint8Array(4), 40)).toThrow(RangeError);
    expect(() => t.lookup(new Uint8Array(6))).toThrow(RangeError);
    expect(() => t.lookup(undefined as unknown as Uint8Array)).toThrow(TypeError);
    expect(t.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Differential test against a deliberately naive table: a list of entries, looked up by
// scanning for the longest matching prefix of the address's family.

interface NaiveEntry {
  v6: boolean;
  key: Uint8Array; // masked
  cidr: number;
  peer: string;
}

function masked(bytes: Uint8Array, cidr: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.min(8, Math.max(0, cidr - 8 * i));
    out[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

class NaiveTable {
  // In the order each prefix was last given to its peer.
  entries: NaiveEntry[] = [];

  #find(bytes: Uint8Array, cidr: number): number {
    const key = hex(masked(bytes, cidr));
    return this.entries.findIndex((e) => e.v6 === (bytes.length === 16) && e.cidr === cidr && hex(e.key) === key);
  }

  insert(bytes: Uint8Array, cidr: number, peer: string): void {
    const i = this.#find(bytes, cidr);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ v6: bytes.length === 16, key: masked(bytes, cidr), cidr, peer });
  }

  remove(bytes: Uint8Array, cidr: number): boolean {
    const i = this.#find(bytes, cidr);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  removePeer(peer: string): number {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.peer !== peer);
    return before - this.entries.length;
  }

  lookup(address: Uint8Array): string | undefined {
    let best: NaiveEntry | undefined;
    for (const e of this.entries) {
      if (e.v6 !== (address.length === 16)) continue;
      if (hex(masked(address, e.cidr)) !== hex(e.key)) continue;
      if (best === undefined || e.cidr > best.cidr) best = e;
    }
    return best?.peer;
  }

  entriesFor(peer: string): Array<{ address: string; cidr: number }> {
    return this.entries.filter((e) => e.peer === peer).map((e) => ({ address: hex(e.key), cidr: e.cidr }));
  }
}

const PEERS = ['a', 'b', 'c', 'd', 'e'];

// Addresses are drawn near a few base addresses per family (the kernel's randomized test
// mutates the tail of its routes the same way), so prefixes nest and diverge often.
interface AddrSpec {
  v6: boolean;
  base: number;
  keep: number; // leading bits kept from the base
  noise: Uint8Array; // the rest
}

const addrSpec: fc.Arbitrary<AddrSpec> = fc.record({
  v6: fc.boolean(),
  base: fc.nat(3),
  keep: fc.nat(128),
  noise: fc.uint8Array({ minLength: 16, maxLength: 16 }),
});

function resolve(spec: AddrSpec, bases4: Uint8Array[], bases6: Uint8Array[]): Uint8Array {
  const base = (spec.v6 ? bases6 : bases4)[spec.base]!;
  const keep = Math.min(spec.keep, base.length * 8);
  const out = new Uint8Array(base.length);
  for (let i = 0; i < out.length; i++) {
    const k = Math.min(8, Math.max(0, keep - 8 * i));
    const mask = (0xff << (8 - k)) & 0xff;
    out[i] = (base[i]! & mask) | (spec.noise[i]! & ~mask & 0xff);
  }
  return out;
}

type Op =
  | { op: 'insert'; addr: AddrSpec; cidr: number; peer: number }
  | { op: 'remove'; addr: AddrSpec; cidr: number }
  | { op: 'removeExisting'; pick: number }
  | { op: 'removePeer'; peer: number }
  | { op: 'lookup'; addr: AddrSpec };

const cidrArb = fc.oneof(fc.nat(128), fc.constantFrom(0, 1, 8, 16, 24, 31, 32, 33, 63, 64, 65, 96, 127, 128));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('insert' as const), addr: addrSpec, cidr: cidrArb, peer: fc.nat(PEERS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), addr: addrSpec, cidr: cidrArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('removeExisting' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('removePeer' as const), peer: fc.nat(PEERS.length - 1) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('lookup' as const), addr: addrSpec }) },
);

const basesArb = fc.record({
  v4: fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 4, maxLength: 4 }),
  v6: fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { minLength: 4, maxLength: 4 }),
});

function sameEntries(real: AllowedIps<string>, model: NaiveTable): boolean {
  for (const peer of PEERS) {
    const got = real.entriesFor(peer).map((e) => ({ address: hex(e.address), cidr: e.cidr }));
    if (JSON.stringify(got) !== JSON.stringify(model.entriesFor(peer))) return false;
  }
  return true;
}

describe('allowed IPs against the naive table', () => {
  it('agrees on every lookup, size and entry list over random operations', () => {
    fc.assert(
      fc.property(basesArb, fc.array(opArb, { minLength: 1, maxLength: 150 }), fc.array(addrSpec, { maxLength: 16 }), (bases, ops, probes) => {
        const real = new AllowedIps<string>();
        const model = new NaiveTable();
        for (const o of ops) {
          switch (o.op) {
            case 'insert': {
              const a = resolve(o.addr, bases.v4, bases.v6);
              const cidr = Math.min(o.cidr, a.length * 8);
              real.insert(a, cidr, PEERS[o.peer]!);
              model.insert(a, cidr, PEERS[o.peer]!);
              break;
            }
            case 'remove': {
              const a = resolve(o.addr, bases.v4, bases.v6);
              const cidr = Math.min(o.cidr, a.length * 8);
              if (real.remove(a, cidr) !== model.remove(a, cidr)) return false;
              break;
            }
            case 'removeExisting': {
              if (model.entries.length === 0) break;
              const e = model.entries[o.pick % model.entries.length]!;
              const key = new Uint8Array(e.key);
              if (real.remove(key, e.cidr) !== model.remove(key, e.cidr)) return false;
              break;
            }
            case 'removePeer':
              if (real.removePeer(PEERS[o.peer]!) !== model.removePeer(PEERS[o.peer]!)) return false;
              break;
            case 'lookup': {
              const a = resolve(o.addr, bases.v4, bases.v6);
              if (real.lookup(a) !== model.lookup(a)) return false;
              break;
            }
          }
          if (real.size !== model.entries.length) return false;
          // a family of n prefixes needs at most 2n - 1 nodes
          if (real.nodeCount > 2 * real.size) return false;
          for (const p of probes) {
            const a = resolve(p, bases.v4, bases.v6);
            if (real.lookup(a) !== model.lookup(a)) return false;
          }
          // every stored prefix, probed at its first and last address
          for (const e of model.entries) {
            const first = e.key;
            const last = new Uint8Array(e.key);
            for (let bit = e.cidr; bit < last.length * 8; bit++) last[bit >>> 3]! |= 0x80 >>> (bit & 7);
            if (real.lookup(first) !== model.lookup(first)) return false;
            if (real.lookup(last) !== model.lookup(last)) return false;
          }
        }
        if (!sameEntries(real, model)) return false;
        for (const peer of PEERS) real.removePeer(peer);
        return real.size === 0 && real.nodeCount === 0;
      }),
      { numRuns: 300 },
    );
  });

  it('agrees on random addresses with a larger random table (kernel-style mutated routes)', () => {
    fc.assert(
      fc.property(
        basesArb,
        fc.array(fc.record({ addr: addrSpec, cidr: cidrArb, peer: fc.nat(PEERS.length - 1) }), { minLength: 50, maxLength: 400 }),
        fc.array(addrSpec, { minLength: 200, maxLength: 200 }),
        (bases, routes, probes) => {
          const real = new AllowedIps<string>();
          const model = new NaiveTable();
          for (const r of routes) {
            const a = resolve(r.addr, bases.v4, bases.v6);
            const cidr = Math.min(r.cidr, a.length * 8);
            real.insert(a, cidr, PEERS[r.peer]!);
            model.insert(a, cidr, PEERS[r.peer]!);
          }
          if (!sameEntries(real, model)) return false;
          for (const peer of PEERS) {
            for (const p of probes) {
              const a = resolve(p, bases.v4, bases.v6);
              if (real.lookup(a) !== model.lookup(a)) return false;
            }
            real.removePeer(peer);
            model.removePeer(peer);
          }
          return real.size === 0 && real.nodeCount === 0;
        },
      ),
      { numRuns: 40 },
    );
  });
});
