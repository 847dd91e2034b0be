// The engine's MTU follows the interface's (issue 18, item 1): padding changes with it,
// packets staged under one MTU go out under another, and a packet longer than a transport
// message can carry is dropped with a reason.
import { describe, expect, it } from 'vitest';
import { MAX_CONTENT_LENGTH } from '../../tunnel/constants.js';
import { MemNet, memPair } from '../support/memnet.js';
import { icmpEcho, readEcho } from '../support/packets.js';

const pair = () => memPair();

/** Sends one echo of `payload` bytes a -> b and returns the datagram's length. */
function sent(net: MemNet, a: ReturnType<MemNet['add']>, b: ReturnType<MemNet['add']>, payload: number): number {
  net.ping(a, b, 1, new Uint8Array(payload));
  const w = net.inFlight.at(-1)!;
  net.deliverAll();
  return w.data.length;
}

describe('engine: the MTU', () => {
  it('padding follows setMtu: never past the MTU, up to 16 below it', () => {
    const { net, a, b } = pair();
    sent(net, a, b, 8); // handshake
    // A 1,420-byte packet (28 + 1392): at MTU 1420 unpadded, at 8000 padded to 1,424.
    expect(sent(net, a, b, 1392)).toBe(16 + 1420 + 16);
    a.device.setMtu(8000);
    expect(sent(net, a, b, 1392)).toBe(16 + 1424 + 16);
    // 7,928 bytes: 7,936 at 8000; at 1420 the remainder past the MTU is padded (7,932).
    expect(sent(net, a, b, 7900)).toBe(16 + 7936 + 16);
    a.device.setMtu(1420);
    expect(sent(net, a, b, 7900)).toBe(16 + 7932 + 16);
    expect(b.delivered.map((p) => readEcho(p)!.seq)).toHaveLength(5);
  });

  it('a packet staged under a small MTU goes out after the MTU rose (its copy has room for any padding)', () => {
    const { net, a, b } = pair();
    a.device.setMtu(1000);
    net.ping(a, b, 7, new Uint8Array(1000 - 28)); // 1,000 bytes: no room for padding at MTU 1000
    a.device.setMtu(1500); // now it pads to 1,008
    net.deliverAll();
    expect(b.delivered.map((p) => readEcho(p)!.seq)).toEqual([7]);
  });

  it('refuses an MTU out of range, and a packet longer than a transport message carries, counted as too-large', () => {
    const { net, a } = pair();
    expect(() => a.device.setMtu(67)).toThrow(RangeError);
    expect(() => a.device.setMtu(65536)).toThrow(RangeError);
    a.device.setMtu(65535);
    const big = icmpEcho('192.0.2.1', '192.0.2.2', 1, 1, new Uint8Array(MAX_CONTENT_LENGTH + 1 - 28));
    net.sendPacket(a, big);
    expect(net.inFlight).toHaveLength(0);
    expect(a.device.drops['too-large']).toBe(1);
  });
});
