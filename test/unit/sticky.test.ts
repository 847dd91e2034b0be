// Sticky source addresses in the engine (issue 18, item 2): the local address an
// authenticated packet arrived on is kept with the peer's endpoint, so replies leave from
// it; it changes with the next authenticated packet, silently when only it changed, and
// never on an unauthenticated one.
import { describe, expect, it } from 'vitest';
import { memPair } from '../support/memnet.js';

const pair = () => memPair({ endpointOnB: false });

describe('engine: sticky source addresses', () => {
  it('keeps the local address of the last authenticated packet with the endpoint, and sends to it', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll((w) => {
      if (w.to.host === 'b') {
        net.deliver(w, { ...w.from, source: '10.77.0.2' });
        return false;
      }
      return true;
    });
    const endpoint = b.device.peerStatus(0)[0]!.endpoint!;
    expect(endpoint).toEqual({ host: 'a', port: 51820, source: '10.77.0.2' });
    // b's replies go to that endpoint, source included.
    net.ping(b, a, 2);
    expect(net.inFlight.at(-1)!.to).toEqual({ host: 'a', port: 51820, source: '10.77.0.2' });
    net.deliverAll();
    const roams = b.events.filter((e) => e.type === 'endpoint-changed').length;

    // Another local address: followed, without an endpoint-changed event (the peer did not move).
    net.ping(a, b, 3);
    const w = net.inFlight.shift()!;
    net.deliver(w, { ...w.from, source: '10.77.0.1' });
    expect(b.device.peerStatus(0)[0]!.endpoint).toEqual({ host: 'a', port: 51820, source: '10.77.0.1' });
    expect(b.events.filter((e) => e.type === 'endpoint-changed')).toHaveLength(roams);

    // An unauthenticated datagram (a forged copy with a broken tag) changes nothing.
    net.ping(a, b, 4);
    const forged = net.inFlight.shift()!;
    forged.data[forged.data.length - 1]! ^= 1;
    net.deliver(forged, { ...forged.from, source: '10.77.0.9' });
    expect(b.device.peerStatus(0)[0]!.endpoint!.source).toBe('10.77.0.1');
  });
});
