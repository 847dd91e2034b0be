// Splitting a receive slot that UDP GRO filled back into its datagrams (udp.ts,
// forEachDatagram): the sizes the sender's GSO cut, the last one shorter, views not copies.
import { describe, expect, it } from 'vitest';
import { forEachDatagram } from '../../src/runtime/udp.js';

function split(length: number, segment: number, slotSize = 65536): { sizes: number[]; firsts: number[]; views: boolean } {
  const slot = new Uint8Array(slotSize);
  // Datagram k's bytes are all k, as a sender's run would be laid out.
  for (let k = 0; k * segment < length; k++) slot.fill(k & 0xff, k * segment, Math.min((k + 1) * segment, length));
  const sizes: number[] = [];
  const firsts: number[] = [];
  let views = true;
  const n = forEachDatagram(slot, length, segment, (d) => {
    sizes.push(d.length);
    firsts.push(d[0]!);
    if (d.buffer !== slot.buffer || d[d.length - 1] !== d[0]) views = false;
  });
  expect(n).toBe(sizes.length);
  return { sizes, firsts, views };
}

describe('forEachDatagram (UDP GRO receive)', () => {
  it('cuts equal datagrams, the last one shorter', () => {
    const r = split(10 * 1452 + 300, 1452);
    expect(r.sizes).toEqual([...Array<number>(10).fill(1452), 300]);
    expect(r.firsts).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(r.views).toBe(true);
  });

  it('an exact multiple has no short datagram; one shorter than the segment is one datagram', () => {
    expect(split(4 * 1000, 1000).sizes).toEqual([1000, 1000, 1000, 1000]);
    expect(split(700, 1000).sizes).toEqual([700]);
    expect(split(1000, 1000).sizes).toEqual([1000]);
  });

  it('the largest run a slot holds: 45 WireGuard datagrams of a 1420 MTU in 65,340 bytes', () => {
    const r = split(45 * 1452, 1452);
    expect(r.sizes).toHaveLength(45);
    expect(r.sizes.every((s) => s === 1452)).toBe(true);
    expect(r.firsts[44]).toBe(44);
  });

  it('refuses a segment size of 0 or a length beyond the slot', () => {
    expect(() => forEachDatagram(new Uint8Array(10), 10, 0, () => undefined)).toThrow(RangeError);
    expect(() => forEachDatagram(new Uint8Array(10), 11, 5, () => undefined)).toThrow(RangeError);
  });
});
