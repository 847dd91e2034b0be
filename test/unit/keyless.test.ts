// A device without a private key (issue 18, item 3), as the kernel and wireguard-go allow:
// `wg set IF private-key /dev/null`, or `wg setconf` with a file without PrivateKey. It
// has no identity: it sends no handshake, answers none, and drops what would need one,
// each counted as 'no-identity'; setting a key brings it back.
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../crypto/keys.js';
import { clamp, nobleDh } from '../../crypto/x25519.js';
import { MESSAGE_INITIATION } from '../../tunnel/constants.js';
import { MemNet } from '../support/memnet.js';
import { icmpEcho, readEcho } from '../support/packets.js';

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
const zeros = () => new Uint8Array(32);

/** a starts without a key; b already knows the public key a will get, `keyA`. */
function keylessPair() {
  const net = new MemNet();
  const keyA = nobleDh.generatePrivateKey();
  const a = net.add('a', '192.0.2.1', { privateKey: null });
  const b = net.add('b', '192.0.2.2');
  a.device.setPeer(b.device.publicKey, { allowedIPs: [{ address: v4(b.address), cidr: 32 }], endpoint: b.endpoint });
  b.device.setPeer(publicKeyOf(keyA), { allowedIPs: [{ address: v4(a.address), cidr: 32 }], endpoint: a.endpoint });
  return { net, a, b, keyA };
}

const seqs = (packets: Uint8Array[]) => packets.map((p) => readEcho(p)!.seq);

describe('engine: a device without a private key', () => {
  it('reports no key: the private and public keys read as all zeros', () => {
    const { a } = keylessPair();
    expect(a.device.hasIdentity).toBe(false);
    expect(a.device.privateKey).toEqual(zeros());
    expect(a.device.publicKey).toEqual(zeros());
  });

  it('sends no handshake: a packet for a peer is dropped and counted', () => {
    const { net, a, b } = keylessPair();
    for (let i = 1; i <= 3; i++) net.ping(a, b, i);
    expect(net.inFlight).toHaveLength(0);
    expect(a.device.drops['no-identity']).toBe(3);
    // Its timers start nothing either.
    net.advanceTo(200_000);
    expect(net.inFlight).toHaveLength(0);
    expect(b.delivered).toHaveLength(0);
  });

  it('answers no initiation: it is dropped and counted, nothing is sent back', () => {
    const { net, a, b } = keylessPair();
    net.ping(b, a, 1);
    expect(net.inFlight.map((w) => w.data[0])).toEqual([MESSAGE_INITIATION]);
    net.deliverAll();
    expect(a.device.drops['no-identity']).toBe(1);
    expect(a.device.drops['bad-mac1']).toBeUndefined();
    expect(net.inFlight).toHaveLength(0);
    expect(a.delivered).toHaveLength(0);
  });

  it('a persistent keepalive sends nothing without a key', () => {
    const { net, a, b } = keylessPair();
    a.device.setPeer(b.device.publicKey, { persistentKeepalive: 25 });
    net.advanceTo(100_000, false);
    expect(net.inFlight).toHaveLength(0);
    expect(a.device.drops['no-identity']).toBeGreaterThanOrEqual(1);
  });

  it('setting a key brings it back, in both directions', () => {
    const { net, a, b, keyA } = keylessPair();
    net.ping(a, b, 1);
    a.device.setPrivateKey(keyA);
    expect(a.device.hasIdentity).toBe(true);
    expect(a.device.publicKey).toEqual(publicKeyOf(keyA));
    expect(a.device.privateKey).toEqual(clamp(keyA.slice()));
    net.ping(a, b, 2);
    net.deliverAll();
    expect(seqs(b.delivered)).toEqual([2]);
    net.ping(b, a, 3);
    net.deliverAll();
    expect(seqs(a.delivered)).toEqual([3]);
  });

  it('removing the key (all zeros) ends every session, and the device goes quiet', () => {
    const { net, a, b, keyA } = keylessPair();
    a.device.setPrivateKey(keyA);
    net.ping(a, b, 1);
    net.deliverAll();
    expect(seqs(b.delivered)).toEqual([1]);

    a.device.setPrivateKey(zeros());
    expect(a.device.hasIdentity).toBe(false);
    expect(a.device.privateKey).toEqual(zeros());
    net.ping(a, b, 2); // the old session is gone: nothing to send it with
    expect(net.inFlight).toHaveLength(0);
    // b still holds its keypair and sends; a has forgotten the index.
    net.ping(b, a, 3);
    net.deliverAll();
    expect(a.delivered).toHaveLength(0);
    expect(a.device.drops['unknown-index']).toBe(1);
    // b's next handshake, when it comes, is not answered.
    net.advanceTo(net.now + 200_000);
    expect(a.delivered).toHaveLength(0);
    expect(a.device.drops['no-identity']).toBeGreaterThanOrEqual(2);

    a.device.setPrivateKey(keyA);
    net.ping(a, b, 4);
    net.deliverAll();
    expect(seqs(b.delivered)).toEqual([1, 4]);
  });

  it('null removes the key as all zeros does', () => {
    const { a, keyA } = keylessPair();
    a.device.setPrivateKey(keyA);
    a.device.setPrivateKey(null);
    expect(a.device.hasIdentity).toBe(false);
    expect(() => a.device.setPrivateKey(new Uint8Array(31))).toThrow(RangeError);
  });

  it('a peer whose static-static DH is invalid under the new key is refused, not handshaken with', () => {
    const { net, a, keyA } = keylessPair();
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1; // the point of order 1: DH with it is zero whatever our key
    a.device.setPeer(lowOrder, { allowedIPs: [{ address: v4('198.51.100.1'), cidr: 32 }], endpoint: { host: 'c', port: 1 } });
    a.device.setPrivateKey(keyA);
    net.sendPacket(a, icmpEcho('192.0.2.1', '198.51.100.1', 1, 1, new Uint8Array(8)));
    expect(net.inFlight).toHaveLength(0);
    expect(a.device.drops['bad-peer-key']).toBe(1);
  });
});
