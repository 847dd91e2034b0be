// A routing loop (issue 18): a peer's endpoint reachable only through its own tunnel. Our
// datagram to that endpoint comes back out of the tunnel interface; sealing and sending it
// again would loop for as long as a session lasts (the behaviour suite measured tens of
// MB/s, with wireguard-go too). The engine recognises its own datagram (UDP from the
// listen port to a peer's endpoint) and drops it as 'routing-loop', as the kernel drops a
// route through its own device.
import { describe, expect, it } from 'vitest';
import { nobleDh } from '../../crypto/x25519.js';
import { Device, packetBufferSize } from '../../tunnel/device.js';
import type { Endpoint } from '../../tunnel/endpoint.js';

const LISTEN_PORT = 51820;

/** A UDP packet as it comes out of the tunnel interface, at buf[16:], and its length. */
function udpPacket(version: 4 | 6, source: Uint8Array, destination: Uint8Array, sourcePort: number, destinationPort: number) {
  const payload = 32;
  const header = version === 4 ? 20 : 40;
  const length = header + 8 + payload;
  const buf = new Uint8Array(packetBufferSize(1420));
  const p = buf.subarray(16, 16 + length);
  if (version === 4) {
    p[0] = 0x45;
    p[2] = length >> 8;
    p[3] = length & 0xff;
    p[8] = 64;
    p[9] = 17;
    p.set(source, 12);
    p.set(destination, 16);
  } else {
    p[0] = 0x60;
    p[4] = (length - 40) >> 8;
    p[5] = (length - 40) & 0xff;
    p[6] = 17;
    p[7] = 64;
    p.set(source, 8);
    p.set(destination, 24);
  }
  p[header] = sourcePort >> 8;
  p[header + 1] = sourcePort & 0xff;
  p[header + 2] = destinationPort >> 8;
  p[header + 3] = destinationPort & 0xff;
  return { buf, length };
}

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
const v6 = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));

function device(endpoint: Endpoint, listenPort = () => LISTEN_PORT) {
  const sent: Endpoint[] = [];
  const d = new Device({ privateKey: nobleDh.generatePrivateKey(), listenPort }, { send: (_data, to) => sent.push(to), write: () => undefined });
  // The whole Internet through the tunnel, the endpoint included: the loop.
  d.setPeer(nobleDh.publicKey(nobleDh.generatePrivateKey()), {
    endpoint,
    allowedIPs: [{ address: new Uint8Array(4), cidr: 0 }, { address: new Uint8Array(16), cidr: 0 }],
  });
  return { d, sent };
}

describe('engine: a routing loop', () => {
  it('drops our own IPv4 datagram to the endpoint, and sends nothing for it', () => {
    const { d, sent } = device({ host: '198.51.100.7', port: 51821 });
    const { buf, length } = udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821);
    d.sendPacket(buf, length, 0);
    expect(d.drops['routing-loop']).toBe(1);
    expect(sent).toHaveLength(0);
  });

  it('drops our own IPv6 datagram to the endpoint', () => {
    const { d, sent } = device({ host: '2001:db8::7', port: 51821 });
    const { buf, length } = udpPacket(6, v6('fd000000000000000000000000000002'), v6('20010db8000000000000000000000007'), LISTEN_PORT, 51821);
    d.sendPacket(buf, length, 0);
    expect(d.drops['routing-loop']).toBe(1);
    expect(sent).toHaveLength(0);
  });

  it('follows the listen port as it changes', () => {
    let port = 40000;
    const { d } = device({ host: '198.51.100.7', port: 51821 }, () => port);
    d.sendPacket(udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821).buf, 60, 0);
    expect(d.drops['routing-loop']).toBeUndefined();
    port = LISTEN_PORT;
    d.sendPacket(udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821).buf, 60, 0);
    expect(d.drops['routing-loop']).toBe(1);
  });

  it('carries everything else: another port, another address, another protocol, a later fragment', () => {
    const { d, sent } = device({ host: '198.51.100.7', port: 51821 });
    const cases = [
      udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT + 1, 51821), // another source port
      udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51822), // another destination port
      udpPacket(4, v4('10.0.0.2'), v4('198.51.100.8'), LISTEN_PORT, 51821), // another host
    ];
    const tcp = udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821);
    tcp.buf[16 + 9] = 6;
    const fragment = udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821);
    fragment.buf[16 + 7] = 1; // fragment offset 8: these bytes are not a UDP header
    for (const c of [...cases, tcp, fragment]) d.sendPacket(c.buf, c.length, 0);
    expect(d.drops['routing-loop']).toBeUndefined();
    // No session yet: the first packet starts a handshake to the endpoint; the rest wait.
    expect(sent).toEqual([{ host: '198.51.100.7', port: 51821 }]);
  });

  it('without a listen port (a simulation), nothing is taken for a loop', () => {
    const sent: Endpoint[] = [];
    const d = new Device({ privateKey: nobleDh.generatePrivateKey() }, { send: (_data, to) => sent.push(to), write: () => undefined });
    d.setPeer(nobleDh.publicKey(nobleDh.generatePrivateKey()), { endpoint: { host: '198.51.100.7', port: 51821 }, allowedIPs: [{ address: new Uint8Array(4), cidr: 0 }] });
    const { buf, length } = udpPacket(4, v4('10.0.0.2'), v4('198.51.100.7'), LISTEN_PORT, 51821);
    d.sendPacket(buf, length, 0);
    expect(d.drops['routing-loop']).toBeUndefined();
    expect(sent).toHaveLength(1);
  });
});
