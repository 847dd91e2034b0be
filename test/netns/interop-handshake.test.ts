// Byte compatibility of Burrow's handshake with a real wireguard-go, both ways, before any
// TUN code exists. wireguard-go runs in namespace B with a `wg`-configured interface;
// Burrow's handshake runs in this process, its datagrams crossing the veth link through a
// UDP socket in namespace A. Each direction is proven by data: after the handshake,
// a packet sealed by one side is opened by the other.
//
//   (a) Burrow initiates: its initiation to wireguard-go, wireguard-go's response
//       consumed, then an ICMP echo sealed under Burrow's keys is answered by B's kernel
//       and the reply opened under Burrow's keys.
//   (b) wireguard-go initiates: a ping in B makes it send an initiation to Burrow;
//       Burrow answers, then opens the queued echo request and `wg show` reports the
//       completed handshake.
// Both are repeated with a preshared key.
import { describe, expect, it } from 'vitest';
import { nobleAead } from '../../crypto/aead.js';
import { decodeKey, encodeKey } from '../../crypto/keys.js';
import { tai64nFromMillis } from '../../crypto/tai64n.js';
import { nobleDh } from '../../crypto/x25519.js';
import {
  consumeInitiation, consumeResponse, createIdentity, createInitiation, createPeerSecrets, createResponse,
  newInitiationGuard, type SessionKeys,
} from '../../tunnel/handshake.js';
import { decodeMessage, transportCounterOf } from '../../tunnel/messages.js';
import { openTransport, sealedLength, sealTransport } from '../../tunnel/transport.js';
import { netnsSuite, uniqueName } from '../support/netns.js';
import { icmpEcho, readEcho } from '../support/packets.js';
import { requireHost } from '../support/privileges.js';
import { UdpBridge } from '../support/udp-bridge.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const b = { dh: nobleDh, aead: nobleAead };
const BURROW_TUN = '192.0.2.1';
const WG_TUN = '192.0.2.2';
const WG_PORT = 51820;

function seal(keys: SessionKeys, counter: number, packet: Uint8Array): Uint8Array {
  const buf = new Uint8Array(sealedLength(packet.length, 1420));
  buf.set(packet, 16);
  const n = sealTransport(b.aead, keys.sendKey, keys.remoteIndex, counter, buf, packet.length, 1420);
  return buf.subarray(0, n);
}

function openData(keys: SessionKeys, data: Uint8Array): Uint8Array {
  const d = decodeMessage(data);
  if (!d.ok || d.message.type !== 4) throw new Error(`expected a transport message, got ${d.ok ? d.message.type : d.reason}`);
  expect(d.message.receiverIndex).toBe(keys.localIndex);
  const len = openTransport(b.aead, keys.receiveKey, transportCounterOf(data), data);
  if (len < 0) throw new Error('transport message did not open under the derived keys');
  return data.subarray(16, 16 + len);
}

describe.skipIf(requireHost(['ip', 'wg', 'wireguard-go', 'ping']))('handshake interop with wireguard-go', () => {
  const scope = netnsSuite();

  for (const withPsk of [false, true]) {
    const label = withPsk ? 'with a preshared key' : 'without a preshared key';

    it(`(a) Burrow initiates, wireguard-go responds, ${label}`, async () => {
      const pair = await scope.pair({ prefix: 'bia' });
      const burrowPriv = nobleDh.generatePrivateKey();
      const wgPriv = nobleDh.generatePrivateKey();
      const psk = withPsk ? nobleDh.generatePrivateKey() : undefined;
      const bridge = await UdpBridge.open(pair.a);
      scope.defer(() => bridge.close());
      const wg = await startWireguardGo(pair.b, {
        ifname: uniqueName('wga'), privateKey: encodeKey(wgPriv), listenPort: WG_PORT, addresses: [`${WG_TUN}/24`],
        peers: [{ publicKey: encodeKey(nobleDh.publicKey(burrowPriv)), allowedIPs: [`${BURROW_TUN}/32`], ...(psk ? { presharedKey: encodeKey(psk) } : {}) }],
      });
      scope.defer(() => wg.stop());

      const id = createIdentity(b, burrowPriv);
      const peer = createPeerSecrets(b, id, decodeKey(wg.publicKey), psk)!;
      const init = createInitiation(b, id, peer, 0xa1b2c3d4, nobleDh.generatePrivateKey(), tai64nFromMillis(Date.now()))!;
      bridge.send(init.message, pair.bAddr4, WG_PORT);

      const reply = await bridge.receive();
      expect(reply.host).toBe(pair.bAddr4);
      expect(reply.port).toBe(WG_PORT);
      const d = decodeMessage(reply.data);
      if (!d.ok || d.message.type !== 2) throw new Error('wireguard-go did not answer with a handshake response');
      expect(d.message.receiverIndex).toBe(0xa1b2c3d4);
      const keys = consumeResponse(b, id, peer, init.state, d.message);
      if (typeof keys === 'string') throw new Error(`response refused: ${keys}`);

      // Data both ways under the derived keys: an echo request in, the kernel's reply out.
      const payload = new TextEncoder().encode(`burrow interop ${label}`);
      bridge.send(seal(keys, 0, icmpEcho(BURROW_TUN, WG_TUN, 0x4242, 1, payload)), pair.bAddr4, WG_PORT);
      const back = await bridge.receive();
      const echo = readEcho(openData(keys, back.data));
      expect(echo).toMatchObject({ type: 'reply', src: WG_TUN, dst: BURROW_TUN, id: 0x4242, seq: 1 });
      expect(Buffer.from(echo!.payload).toString()).toBe(Buffer.from(payload).toString());

      const status = await wg.show();
      expect(status.peers[0]!.latestHandshake).toBeGreaterThan(0);
      expect(status.peers[0]!.hasPresharedKey).toBe(withPsk);
    });

    it(`(b) wireguard-go initiates, Burrow responds, ${label}`, async () => {
      const pair = await scope.pair({ prefix: 'bib' });
      const burrowPriv = nobleDh.generatePrivateKey();
      const wgPriv = nobleDh.generatePrivateKey();
      const psk = withPsk ? nobleDh.generatePrivateKey() : undefined;
      const bridge = await UdpBridge.open(pair.a);
      scope.defer(() => bridge.close());
      const wg = await startWireguardGo(pair.b, {
        ifname: uniqueName('wgb'), privateKey: encodeKey(wgPriv), listenPort: WG_PORT, addresses: [`${WG_TUN}/24`],
        peers: [{
          publicKey: encodeKey(nobleDh.publicKey(burrowPriv)), allowedIPs: [`${BURROW_TUN}/32`],
          endpoint: `${pair.aAddr4}:${bridge.port}`, ...(psk ? { presharedKey: encodeKey(psk) } : {}),
        }],
      });
      scope.defer(() => wg.stop());

      const id = createIdentity(b, burrowPriv);
      const wgPeer = { secrets: createPeerSecrets(b, id, decodeKey(wg.publicKey), psk)!, guard: newInitiationGuard() };
      // The ping's packet is queued in wireguard-go until the handshake completes.
      const ping = pair.b.exec('ping', ['-c', '1', '-W', '3', BURROW_TUN]).catch(() => 'no reply');

      const first = await bridge.receive();
      expect(first.host).toBe(pair.bAddr4);
      const d = decodeMessage(first.data);
      if (!d.ok || d.message.type !== 1) throw new Error('wireguard-go did not send a handshake initiation');
      const consumed = consumeInitiation(b, id, d.message, performance.now(), (k) =>
        Buffer.from(k).equals(Buffer.from(wgPeer.secrets.remoteStatic)) ? wgPeer : undefined);
      if (typeof consumed === 'string') throw new Error(`initiation refused: ${consumed}`);
      const resp = createResponse(b, consumed, 0x0badcafe, nobleDh.generatePrivateKey())!;
      bridge.send(resp.message, first.host, first.port);

      // wireguard-go now sends the queued echo request under the new keys.
      let request: ReturnType<typeof readEcho>;
      for (let i = 0; i < 10 && request === undefined; i++) {
        const next = await bridge.receive();
        if (next.data[0] === 4) request = readEcho(openData(resp.keys, next.data));
      }
      expect(request).toMatchObject({ type: 'request', src: WG_TUN, dst: BURROW_TUN });
      // Answer it, so the ping in B succeeds through Burrow's keys.
      bridge.send(seal(resp.keys, 0, icmpEcho(BURROW_TUN, WG_TUN, request!.id, request!.seq, request!.payload, true)), first.host, first.port);
      expect(await ping).toMatch(/1 received/);

      const status = await wg.show();
      expect(status.peers[0]!.latestHandshake).toBeGreaterThan(0);
      expect(status.peers[0]!.hasPresharedKey).toBe(withPsk);
    });
  }
});
