// WireGuard's handshake between two Burrow instances in memory: matching keys, with and
// without a preshared key, and a refusal for every tampered field and every rule.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nobleAead, open, seal } from '../../crypto/aead.js';
import { mac } from '../../crypto/blake2s.js';
import { tai64n } from '../../crypto/tai64n.js';
import { nobleDh } from '../../crypto/x25519.js';
import { COOKIE_REPLY_LENGTH, INITIATION_LENGTH, RESPONSE_LENGTH, TRANSPORT_MIN_LENGTH } from '../../tunnel/constants.js';
import { CookieChecker, CookieJar, mac1KeyFor } from '../../tunnel/cookie.js';
import {
  consumeInitiation, consumeResponse, createIdentity, createInitiation, createPeerSecrets, createResponse,
  newInitiationGuard,
} from '../../tunnel/handshake.js';
import { classify, decodeMessage, type Initiation, INITIATION_MAC2_OFFSET, type Response } from '../../tunnel/messages.js';

const b = { dh: nobleDh, aead: nobleAead };

function setup(psk?: Uint8Array) {
  const alice = createIdentity(b, nobleDh.generatePrivateKey());
  const bob = createIdentity(b, nobleDh.generatePrivateKey());
  const bobAtAlice = createPeerSecrets(b, alice, bob.publicKey, psk)!;
  const aliceAtBob = { secrets: createPeerSecrets(b, bob, alice.publicKey, psk)!, guard: newInitiationGuard() };
  const lookup = (k: Uint8Array) => (Buffer.from(k).equals(Buffer.from(alice.publicKey)) ? aliceAtBob : undefined);
  return { alice, bob, bobAtAlice, aliceAtBob, lookup };
}

let clockSeconds = 1_700_000_000;
const nextTimestamp = () => tai64n(clockSeconds++, 0);

function decodeAs<T>(bytes: Uint8Array): T {
  const d = decodeMessage(bytes);
  if (!d.ok) throw new Error(d.reason);
  return d.message as T;
}

function handshake(psk?: Uint8Array) {
  const s = setup(psk);
  const init = createInitiation(b, s.alice, s.bobAtAlice, 0x11223344, nobleDh.generatePrivateKey(), nextTimestamp())!;
  const consumed = consumeInitiation(b, s.bob, decodeAs<Initiation>(init.message), 0, s.lookup);
  if (typeof consumed === 'string') throw new Error(consumed);
  const resp = createResponse(b, consumed, 0x55667788, nobleDh.generatePrivateKey())!;
  const keys = consumeResponse(b, s.alice, s.bobAtAlice, init.state, decodeAs<Response>(resp.message));
  if (typeof keys === 'string') throw new Error(keys);
  return { s, init, consumed, resp, initiatorKeys: keys, responderKeys: resp.keys };
}

describe('handshake between two Burrow instances', () => {
  for (const withPsk of [false, true]) {
    it(`derives matching transport keys ${withPsk ? 'with' : 'without'} a preshared key`, () => {
      const { initiatorKeys: i, responderKeys: r, init, resp } = handshake(withPsk ? new Uint8Array(32).fill(9) : undefined);
      expect(init.message).toHaveLength(INITIATION_LENGTH);
      expect(resp.message).toHaveLength(RESPONSE_LENGTH);
      expect(i.sendKey).toEqual(r.receiveKey);
      expect(i.receiveKey).toEqual(r.sendKey);
      expect(i.sendKey).not.toEqual(i.receiveKey);
      expect([i.localIndex, i.remoteIndex, r.localIndex, r.remoteIndex]).toEqual([0x11223344, 0x55667788, 0x55667788, 0x11223344]);
      const ct = seal(nobleAead, i.sendKey, 0, Uint8Array.of(1, 2, 3), new Uint8Array(0));
      expect(open(nobleAead, r.receiveKey, 0, ct, new Uint8Array(0))).toEqual(Uint8Array.of(1, 2, 3));
    });
  }

  it('a PSK on one side only makes the response fail to open', () => {
    const s = setup();
    const pskBob = { secrets: createPeerSecrets(b, s.bob, s.alice.publicKey, new Uint8Array(32).fill(1))!, guard: newInitiationGuard() };
    const init = createInitiation(b, s.alice, s.bobAtAlice, 1, nobleDh.generatePrivateKey(), nextTimestamp())!;
    const consumed = consumeInitiation(b, s.bob, decodeAs<Initiation>(init.message), 0, () => pskBob);
    if (typeof consumed === 'string') throw new Error(consumed);
    const resp = createResponse(b, consumed, 2, nobleDh.generatePrivateKey())!;
    expect(consumeResponse(b, s.alice, s.bobAtAlice, init.state, decodeAs<Response>(resp.message))).toBe('bad-payload-tag');
  });

  it('refuses every tampered field of the initiation', () => {
    const s = setup();
    const init = createInitiation(b, s.alice, s.bobAtAlice, 7, nobleDh.generatePrivateKey(), nextTimestamp())!;
    // Every byte before mac2 is covered by mac1; mac1 itself must match.
    const fields: [string, number][] = [['sender', 4], ['ephemeral', 8], ['static', 40], ['timestamp', 88], ['mac1', 116]];
    for (const [, at] of fields) {
      const t = init.message.slice();
      t[at]! ^= 0x10;
      expect(consumeInitiation(b, s.bob, decodeAs<Initiation>(t), 0, s.lookup)).toBe('bad-mac1');
    }
    // A message with a valid mac1 whose inner fields are wrong: re-MAC after tampering.
    for (const [name, at, reason] of [['static', 50, 'bad-static-tag'], ['timestamp', 100, 'bad-payload-tag']] as const) {
      const t = init.message.slice();
      t[at]! ^= 0x10;
      remac(t, 116, mac1KeyFor(s.bob.publicKey));
      expect(consumeInitiation(b, s.bob, decodeAs<Initiation>(t), 0, s.lookup), name).toBe(reason);
    }
  });

  it('refuses an unknown peer, a replayed initiation and a flood', () => {
    const s = setup();
    const init = createInitiation(b, s.alice, s.bobAtAlice, 7, nobleDh.generatePrivateKey(), nextTimestamp())!;
    expect(consumeInitiation(b, s.bob, decodeAs<Initiation>(init.message), 0, () => undefined)).toBe('unknown-peer');
    expect(typeof consumeInitiation(b, s.bob, decodeAs<Initiation>(init.message), 0, s.lookup)).toBe('object');
    expect(consumeInitiation(b, s.bob, decodeAs<Initiation>(init.message), 1000, s.lookup)).toBe('stale-timestamp');
    const again = createInitiation(b, s.alice, s.bobAtAlice, 8, nobleDh.generatePrivateKey(), nextTimestamp())!;
    expect(consumeInitiation(b, s.bob, decodeAs<Initiation>(again.message), 10, s.lookup)).toBe('flood');
    expect(typeof consumeInitiation(b, s.bob, decodeAs<Initiation>(again.message), 20, s.lookup)).toBe('object');
  });

  it('refuses every tampered field of the response', () => {
    const { s, init, resp } = handshake();
    for (const at of [4, 12, 44, 60]) {
      const t = resp.message.slice();
      t[at]! ^= 1;
      expect(consumeResponse(b, s.alice, s.bobAtAlice, init.state, decodeAs<Response>(t))).toBe('bad-mac1');
    }
    for (const at of [12, 44]) {
      const t = resp.message.slice();
      t[at]! ^= 1;
      remac(t, 60, mac1KeyFor(s.alice.publicKey));
      const r = consumeResponse(b, s.alice, s.bobAtAlice, init.state, decodeAs<Response>(t));
      expect(['bad-payload-tag', 'bad-dh']).toContain(r);
    }
  });

  it('a low-order peer key is refused at configuration', () => {
    const s = setup();
    expect(createPeerSecrets(b, s.alice, new Uint8Array(32))).toBeNull();
  });
});

describe('cookies and mac2', () => {
  it('a cookie reply answers exactly the last message sent, and its cookie makes mac2 verify', () => {
    const s = setup();
    const checker = new CookieChecker(s.bob.publicKey);
    const jar = new CookieJar(s.bob.publicKey);
    const source = new TextEncoder().encode('198.51.100.1:51820');
    const first = createInitiation(b, s.alice, s.bobAtAlice, 1, nobleDh.generatePrivateKey(), nextTimestamp())!;
    jar.sent(first.mac1);
    expect(checker.verifyMac2(first.message, 116, source, 0)).toBe(false);
    const reply = checker.createReply(first.message, 116, 1, source, 0);
    expect(reply).toHaveLength(COOKIE_REPLY_LENGTH);
    const decoded = decodeMessage(reply);
    if (!decoded.ok || decoded.message.type !== 3) throw new Error('not a cookie reply');
    expect(decoded.message.receiverIndex).toBe(1);
    const forged = reply.slice();
    forged[40]! ^= 1;
    expect(jar.consume(decodeAs(forged), 0)).toBe(false);
    expect(jar.consume(decoded.message, 0)).toBe(true);
    const cookie = jar.current(1)!;
    expect(cookie).toHaveLength(16);
    const second = createInitiation(b, s.alice, s.bobAtAlice, 2, nobleDh.generatePrivateKey(), nextTimestamp(), cookie)!;
    expect(checker.verifyMac2(second.message, 116, source, 1)).toBe(true);
    expect(checker.verifyMac2(second.message, 116, new TextEncoder().encode('198.51.100.9:51820'), 1)).toBe(false);
    // After two minutes the secret rotates and the old cookie no longer verifies.
    expect(checker.verifyMac2(second.message, 116, source, 120_001)).toBe(false);
    // mac1 stays valid with mac2 present: mac2 covers mac1, not the reverse.
    expect(typeof consumeInitiation(b, s.bob, decodeAs<Initiation>(second.message), 0, s.lookup)).toBe('object');
    expect(second.message.subarray(INITIATION_MAC2_OFFSET).some((x) => x !== 0)).toBe(true);
    // The cookie expires for the sender too.
    expect(jar.current(120_000)).toBeUndefined();
  });
});

describe('message decoding', () => {
  const lengths: [number, number][] = [[1, INITIATION_LENGTH], [2, RESPONSE_LENGTH], [3, COOKIE_REPLY_LENGTH]];
  it('every wrong length of every message type is refused', () => {
    fc.assert(fc.property(fc.constantFrom(...lengths), fc.nat({ max: 400 }), ([type, good], len) => {
      const m = new Uint8Array(len);
      if (len > 0) m[0] = type;
      const d = decodeMessage(m);
      expect(d.ok).toBe(len === good);
      if (!d.ok) expect(['bad-length', 'empty']).toContain(d.reason);
    }), { numRuns: 500 });
    for (let len = 0; len < 100; len++) {
      const m = new Uint8Array(len);
      if (len > 0) m[0] = 4;
      expect(decodeMessage(m).ok).toBe(len >= TRANSPORT_MIN_LENGTH);
    }
  });
  it('non-zero reserved bytes and unknown types are refused', () => {
    for (const at of [1, 2, 3]) {
      const m = new Uint8Array(INITIATION_LENGTH);
      m[0] = 1;
      m[at] = 1;
      expect(decodeMessage(m)).toEqual({ ok: false, reason: 'reserved-nonzero' });
    }
    for (const t of [0, 5, 255]) expect(classify(Uint8Array.of(t, 0, 0, 0))).toBe('unknown-type');
  });
  it('random bytes never throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (m) => {
      const d = decodeMessage(m);
      expect(typeof d.ok).toBe('boolean');
    }), { numRuns: 2000 });
  });
});

/** Rewrites mac1 after tampering, as an attacker who knows the receiver's public key can. */
function remac(message: Uint8Array, offset: number, key: Uint8Array): Uint8Array {
  const m = mac(key, message.subarray(0, offset));
  message.set(m, offset);
  return m;
}
