// The sans-I/O engine in memory, with a test-owned clock and network: each rule of the
// paper's §6 as a few lines.
import { describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import {
  KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
} from '../../tunnel/constants.js';
import { MAX_STAGED_PACKETS } from '../../tunnel/device.js';
import { decodeMessage } from '../../tunnel/messages.js';
import { MemNet, type Node } from '../support/memnet.js';
import { icmpEcho, readEcho } from '../support/packets.js';

function pair(opts: Parameters<MemNet['connect']>[2] = {}) {
  const net = new MemNet();
  const a = net.add('a', '192.0.2.1');
  const b = net.add('b', '192.0.2.2');
  net.connect(a, b, opts);
  return { net, a, b };
}

const seqs = (n: Node) => n.delivered.map((p) => readEcho(p)!.seq);
const typeOf = (d: Uint8Array) => d[0];

describe('engine: handshake and data', () => {
  it('packets queued before the handshake arrive after it, in order', () => {
    const { net, a, b } = pair();
    for (let i = 1; i <= 5; i++) net.ping(a, b, i);
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([1]); // only an initiation so far
    net.deliverAll();
    expect(seqs(b)).toEqual([1, 2, 3, 4, 5]);
    expect(a.events.some((e) => e.type === 'handshake-complete' && e.role === 'initiator')).toBe(true);
    // The responder sends with the new keypair only after the initiator's first packet.
    net.ping(b, a, 9);
    net.deliverAll();
    expect(seqs(a)).toEqual([9]);
  });

  it('with a preshared key, and refuses a peer whose PSK differs', () => {
    const psk = new Uint8Array(32).fill(5);
    const ok = pair({ psk });
    ok.net.ping(ok.a, ok.b, 1);
    ok.net.deliverAll();
    expect(seqs(ok.b)).toEqual([1]);

    const { net, a, b } = pair();
    b.device.setPeer(a.device.publicKey, { presharedKey: psk });
    net.ping(a, b, 1);
    net.deliverAll();
    expect(b.delivered).toHaveLength(0);
    expect(a.device.drops['bad-payload-tag']).toBe(1);
  });

  it('a packet with no peer for its destination is dropped with a reason', () => {
    const { net, a } = pair();
    net.sendPacket(a, icmpEcho('192.0.2.1', '203.0.113.9', 1, 1, new Uint8Array(8)));
    expect(net.inFlight).toHaveLength(0);
    expect(a.device.drops['no-peer']).toBe(1);
    net.sendPacket(a, Uint8Array.of(0x45, 0, 0, 50, 1, 2));
    expect(a.device.drops['bad-ip']).toBe(1);
  });

  it('decrypted packets whose source is not allowed for that peer are dropped', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    // a sends a packet whose inner source is not a's allowed IP at b.
    net.sendPacket(a, icmpEcho('198.51.100.7', '192.0.2.2', 1, 2, new Uint8Array(8)));
    net.deliverAll();
    expect(seqs(b)).toEqual([1]);
    expect(b.device.drops['source-not-allowed']).toBe(1);
  });

  it('pads plaintext to 16 bytes and trims the padding on receipt', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1, new Uint8Array(3)); // 31-byte packet
    const sizes: number[] = [];
    net.deliverAll((w) => { sizes.push(w.data.length); return true; });
    expect(sizes.at(-1)).toBe(16 + 32 + 16);
    expect(b.delivered[0]).toHaveLength(31);
  });
});

describe('engine: configuration', () => {
  it('a device is never its own peer, also after its private key changes', () => {
    const { net, a, b } = pair();
    expect(a.device.setPeer(a.device.publicKey, {})).toBe(false);
    expect(a.device.peerCount).toBe(1);
    const bKey = b.device.privateKey;
    a.device.setPrivateKey(bKey);
    expect(a.device.peerCount).toBe(0);
    expect(net.inFlight).toHaveLength(0);
  });

  it('keeps its private key clamped, as the kernel and wireguard-go do: an unclamped key reads back clamped', () => {
    const raw = new Uint8Array(32).fill(0xff); // every bit RFC 7748 clears or sets is "wrong"
    const node = new MemNet().add('k', '192.0.2.5', { privateKey: raw });
    const clamped = node.device.privateKey;
    expect(clamped[0]).toBe(0xf8);
    expect(clamped[31]).toBe(0x7f);
    expect(clamped.subarray(1, 31).every((x) => x === 0xff)).toBe(true);
    expect(raw[0]).toBe(0xff); // the caller's copy is not touched
    const publicBefore = encodeKey(node.device.publicKey);
    node.device.setPrivateKey(raw);
    expect(encodeKey(node.device.publicKey)).toBe(publicBefore);
    expect(node.device.privateKey[0]).toBe(0xf8);
  });

  it('a refused peer update leaves no trace', () => {
    const { a } = pair();
    const stranger = new MemNet().add('s', '192.0.2.4').device.publicKey;
    expect(() => a.device.setPeer(stranger, { presharedKey: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => a.device.setPeer(stranger, { persistentKeepalive: 70000 })).toThrow(RangeError);
    expect(() => a.device.setPeer(stranger, { allowedIPs: [{ address: new Uint8Array(4), cidr: 33 }] })).toThrow(RangeError);
    expect(a.device.peerCount).toBe(1);
  });

  it('a new private key ends every session: the next packet needs a new handshake', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    const c = new MemNet().add('c', '192.0.2.3');
    a.device.setPrivateKey(c.device.privateKey);
    net.ping(a, b, 2);
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([1]);
  });
});

describe('engine: replay window on the wire', () => {
  it('accepts out-of-order packets once, refuses replays', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 0);
    net.deliverAll();
    for (let i = 1; i <= 4; i++) net.ping(a, b, i);
    const wires = net.inFlight.splice(0);
    for (const i of [3, 1, 4, 2]) net.deliver(wires[i - 1]!);
    for (const w of wires) net.deliver(w); // every one again
    expect(seqs(b)).toEqual([0, 3, 1, 4, 2]);
    expect(b.device.drops.replay).toBe(4);
  });
});

describe('engine: timers', () => {
  it('rekeys after REKEY_AFTER_TIME without losing a packet', () => {
    const { net, a, b } = pair();
    let seq = 0;
    const sent: number[] = [];
    for (let t = 0; t <= REKEY_AFTER_TIME + 20_000; t += 1000) {
      net.advanceTo(t);
      net.ping(a, b, ++seq);
      sent.push(seq);
      net.deliverAll();
    }
    expect(seqs(b)).toEqual(sent);
    const initiated = a.events.filter((e) => e.type === 'handshake-complete' && e.role === 'initiator');
    expect(initiated.length).toBe(2);
    const st = a.device.peerStatus(net.now)[0]!;
    expect(st.keypairAge).toBeLessThan(30_000);
  });

  it('a request-response exchange draws the newHandshake jitter from a pool, not the system per packet', () => {
    // Each reply re-arms newHandshake (cleared by the request it answers): one jitter per
    // packet. Drawn 64 bytes at a time, 200 exchanges need a handful of draws.
    const net = new MemNet();
    let draws = 0;
    const counting = (out: Uint8Array): Uint8Array => {
      draws++;
      return globalThis.crypto.getRandomValues(out);
    };
    const a = net.add('a', '192.0.2.1', { random: counting });
    const b = net.add('b', '192.0.2.2', { random: counting });
    net.connect(a, b);
    net.ping(a, b, 0);
    net.deliverAll();
    const before = draws;
    for (let i = 1; i <= 200; i++) {
      net.now += 10;
      net.ping(a, b, i);
      net.deliverAll();
      net.ping(b, a, i);
      net.deliverAll();
    }
    expect(seqs(b)).toHaveLength(201);
    expect(seqs(a)).toHaveLength(200);
    // 400 armings of newHandshake, 2 bytes each, from 64-byte draws: 13 draws at most.
    expect(draws - before).toBeLessThanOrEqual(13);
    expect(draws - before).toBeGreaterThan(0);
  });

  it('a lost response is retried after REKEY_TIMEOUT plus jitter', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll((w) => typeOf(w.data) !== 2); // drop the response
    const sentAt: number[] = [];
    a.events.length = 0;
    for (let t = 0; t <= 2 * REKEY_TIMEOUT + 2 * REKEY_TIMEOUT_JITTER_MAX; t += 10) {
      net.now = t;
      a.device.tick(t);
      if (net.inFlight.length > 0) {
        sentAt.push(t);
        net.inFlight.length = 0;
      }
    }
    expect(sentAt.length).toBe(2);
    expect(sentAt[0]).toBeGreaterThanOrEqual(REKEY_TIMEOUT);
    expect(sentAt[0]).toBeLessThan(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 10);
    expect(sentAt[1]! - sentAt[0]!).toBeGreaterThanOrEqual(REKEY_TIMEOUT);
    // Then the retry, delivered, completes the handshake and the staged packet arrives.
    net.advanceTo(net.now + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(seqs(b)).toEqual([1]);
  });

  it('gives up after REKEY_ATTEMPT_TIME and empties its queue', () => {
    const { net, a, b } = pair();
    for (let i = 0; i < 3; i++) net.ping(a, b, i);
    let initiations = 0;
    for (let t = 0; t <= REKEY_ATTEMPT_TIME + 30_000; t += 100) {
      net.now = t;
      a.device.tick(t);
      initiations += net.inFlight.splice(0).filter((w) => typeOf(w.data) === 1).length;
    }
    // As the kernel and wireguard-go: the first initiation, then retries until the attempt
    // counter exceeds MAX_TIMER_HANDSHAKES (18): 1 + 19 initiations, the last at ~95 s.
    expect(initiations).toBe(MAX_TIMER_HANDSHAKES + 2);
    const gaveUp = a.events.find((e) => e.type === 'handshake-given-up');
    expect(gaveUp).toMatchObject({ dropped: 3 });
    // Nothing is staged any more: a late handshake delivers nothing old.
    b.device.tick(net.now);
    expect(b.delivered).toHaveLength(0);
  });

  it('a keypair is unusable after REJECT_AFTER_TIME, and keys are zeroed after 3 x REJECT_AFTER_TIME', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    // Silence: no traffic, timers only (deliveries off so no handshake renews keys).
    const wire = (() => { net.ping(a, b, 2); return net.inFlight.splice(0); })();
    net.advanceTo(REJECT_AFTER_TIME + 1, false);
    net.inFlight.length = 0;
    for (const w of wire) net.deliver(w);
    expect(b.device.drops['expired-keypair']).toBe(1);
    // Sending now must not use the old keypair: a handshake starts instead.
    net.ping(a, b, 3);
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([1]);
    net.inFlight.length = 0;
    net.advanceTo(3 * REJECT_AFTER_TIME + 60_000, false);
    expect(a.events.some((e) => e.type === 'keys-zeroed')).toBe(true);
    expect(b.events.some((e) => e.type === 'keys-zeroed')).toBe(true);
    expect(a.device.peerStatus(net.now)[0]!.keypairAge).toBeUndefined();
  });

  it('sends a passive keepalive KEEPALIVE_TIMEOUT after receiving data with nothing to send back', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    net.inFlight.length = 0;
    net.advanceTo(KEEPALIVE_TIMEOUT - 1, false);
    expect(net.inFlight).toHaveLength(0);
    net.advanceTo(KEEPALIVE_TIMEOUT + 1, false);
    const fromB = net.inFlight.filter((w) => w.from.host === 'b');
    expect(fromB).toHaveLength(1);
    expect(fromB[0]!.data).toHaveLength(32); // header + empty plaintext + tag
  });

  it('starts a new handshake when sent data gets no reply for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    net.advanceTo(1000);
    net.ping(a, b, 2);
    net.inFlight.length = 0; // lost, and b never answers
    net.advanceTo(1000 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX, false);
    expect(net.inFlight.filter((w) => w.from.host === 'a').map((w) => typeOf(w.data))).toContain(1);
  });

  it('persistent keepalive sends every interval', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    a.device.setPeer(b.device.publicKey, { persistentKeepalive: 25 });
    const keepalivesAt: number[] = [];
    for (let t = 1000; t <= 100_000; t += 1000) {
      net.advanceTo(t, false);
      for (const w of net.inFlight.splice(0)) {
        if (w.from.host === 'a' && w.data.length === 32) keepalivesAt.push(t);
        net.deliver(w);
      }
    }
    // One at once when turned on. b's passive keepalive (10 s after the ping it received)
    // is authenticated traffic, which restarts a's interval: then every 25 s of silence.
    expect(keepalivesAt).toEqual([1000, 35_000, 60_000, 85_000]);
  });
});

describe('engine: message limits', () => {
  const currentOf = (n: Node) => [...n.device.inspect().peers.values()][0]!.keypairs.current!;

  it('past REKEY_AFTER_MESSAGES a new handshake starts while the old keypair still carries data', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    net.advanceTo(REKEY_TIMEOUT + 1); // past the initiation rate limit
    currentOf(a).sendCounter = REKEY_AFTER_MESSAGES + 1;
    net.ping(a, b, 2);
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([4, 1]); // the data, then an initiation
    net.deliverAll();
    expect(seqs(b)).toEqual([1, 2]);
    expect(currentOf(a).sendCounter).toBeLessThan(10); // a fresh keypair
  });

  it('at REJECT_AFTER_MESSAGES the keypair is never used again: packets wait for a new one', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    net.advanceTo(REKEY_TIMEOUT + 1);
    currentOf(a).sendCounter = REJECT_AFTER_MESSAGES;
    net.ping(a, b, 2);
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([1]); // no data under the spent keypair
    net.deliverAll();
    expect(seqs(b)).toEqual([1, 2]);
  });

  it('the last usable counter is accepted; a counter field past 2^53 is refused before decryption', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    currentOf(a).sendCounter = REJECT_AFTER_MESSAGES - 1;
    net.ping(a, b, 2);
    net.deliverAll((w) => typeOf(w.data) === 4);
    expect(seqs(b)).toEqual([1, 2]);
    // A transport message to b's current index whose counter field says 2^64 - 1.
    const forged = new Uint8Array(48);
    forged[0] = 4;
    new DataView(forged.buffer).setUint32(4, currentOf(b).localIndex, true);
    forged.fill(0xff, 8, 16);
    b.device.receiveDatagram(forged, a.endpoint, net.now);
    expect(b.device.drops['counter-limit']).toBe(1);
  });
});

describe('engine: roaming', () => {
  it('moves the endpoint to the source of any authenticated packet, not of a forged one', () => {
    const { net, a, b } = pair();
    net.ping(a, b, 1);
    net.deliverAll();
    net.ping(a, b, 2);
    const w = net.inFlight.shift()!;
    net.deliver(w, { host: 'a-new', port: 4242 });
    expect(b.device.peerStatus(net.now)[0]!.endpoint).toEqual({ host: 'a-new', port: 4242 });
    expect(b.events.some((e) => e.type === 'endpoint-changed')).toBe(true);
    // A forged packet (bad tag) from elsewhere moves nothing.
    net.ping(a, b, 3);
    const forged = net.inFlight.shift()!;
    forged.data[20]! ^= 1;
    net.deliver(forged, { host: 'evil', port: 1 });
    expect(b.device.peerStatus(net.now)[0]!.endpoint).toEqual({ host: 'a-new', port: 4242 });
  });
});

describe('engine: cookies under load', () => {
  it('under load, an initiation without mac2 gets a cookie reply, and the retry with mac2 completes', () => {
    const net = new MemNet();
    const a = net.add('a', '192.0.2.1');
    const b = net.add('b', '192.0.2.2', { underLoadBacklog: 0 });
    net.connect(a, b);
    net.ping(a, b, 1);
    const init = net.inFlight.shift()!;
    net.deliver(init);
    // b is always under load (backlog threshold 0): it answered with a cookie reply.
    expect(net.inFlight.map((w) => typeOf(w.data))).toEqual([3]);
    expect(b.device.drops['cookie-sent']).toBe(1);
    net.deliverAll();
    expect(a.events.some((e) => e.type === 'cookie-received')).toBe(true);
    // The retry (after REKEY_TIMEOUT) carries mac2 and is answered.
    net.advanceTo(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 10);
    expect(seqs(b)).toEqual([1]);
    const d = decodeMessage(init.data);
    expect(d.ok).toBe(true);
  });

  it('rate-limits handshakes per source under load', () => {
    const net = new MemNet();
    // 30 handshakes arrive in one turn here: the turn's budget is not what this tests.
    const b = net.add('b', '192.0.2.2', { underLoadBacklog: 0, handshakeWorkPerTurn: Infinity });
    const others = Array.from({ length: 30 }, (_, i) => net.add(`x${i}`, `192.0.2.${10 + i}`));
    for (const o of others) net.connect(o, b);
    // All 30 behind one NAT address, each on its own port.
    const viaNat = () => {
      for (const w of net.inFlight.splice(0)) {
        if (w.to.host === 'b') net.deliver(w, { host: 'nat', port: 1000 + others.findIndex((o) => o.name === w.from.host) });
        else if (w.to.host === 'nat') others[w.to.port - 1000]!.device.receiveDatagram(w.data, b.endpoint, net.now);
      }
    };
    for (const o of others) net.ping(o, b, 1);
    viaNat(); // initiations in: b is under load and answers each with a cookie reply
    expect(b.device.drops['cookie-sent']).toBe(30);
    viaNat(); // cookie replies out to the initiators
    expect(others.every((o) => o.events.some((e) => e.type === 'cookie-received'))).toBe(true);
    net.now = REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1;
    for (const o of others) o.device.tick(net.now);
    expect(net.inFlight.filter((w) => typeOf(w.data) === 1)).toHaveLength(30);
    viaNat(); // retries with a valid mac2: only the per-source burst is answered
    const responses = net.inFlight.filter((w) => typeOf(w.data) === 2).length;
    expect(responses).toBe(5);
    expect(b.device.drops['rate-limited']).toBe(25);
  });

  it('stages at most MAX_STAGED_PACKETS per peer', () => {
    const { net, a, b } = pair({ endpointOnA: false });
    for (let i = 0; i < MAX_STAGED_PACKETS + 10; i++) net.ping(a, b, i);
    expect(a.device.drops['staged-full']).toBe(10);
    expect(a.device.drops['no-endpoint']).toBeGreaterThanOrEqual(1);
  });
});
