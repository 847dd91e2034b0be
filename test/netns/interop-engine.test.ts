// The engine against a real wireguard-go, through a UDP socket in a test namespace (no
// TUN on Burrow's side yet): an ICMP echo sealed by Burrow is answered by the kernel
// behind wireguard-go and the reply opened by Burrow; 1,000 packets each way; then a
// rekey (Burrow's clock is the test's, moved past REKEY_AFTER_TIME) that wireguard-go
// accepts without losing a packet of the session.
import { describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import { nobleDh } from '../../crypto/x25519.js';
import { REKEY_AFTER_TIME } from '../../tunnel/constants.js';
import { Device, type DeviceEvent, packetBufferSize } from '../../tunnel/device.js';
import { netnsSuite, uniqueName } from '../support/netns.js';
import { icmpEcho, readEcho } from '../support/packets.js';
import { requireHost } from '../support/privileges.js';
import { UdpBridge } from '../support/udp-bridge.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const BURROW_TUN = '192.0.2.1';
const WG_TUN = '192.0.2.2';
const WG_PORT = 51820;

describe.skipIf(requireHost(['ip', 'wg', 'wireguard-go']))('engine interop with wireguard-go', () => {
  const scope = netnsSuite();

  it('echoes, 1,000 packets each way, and a rekey without loss', async () => {
    const pair = await scope.pair({ prefix: 'bie' });
    const bridge = await UdpBridge.open(pair.a);
    scope.defer(() => bridge.close());
    const burrowPriv = nobleDh.generatePrivateKey();
    const wg = await startWireguardGo(pair.b, {
      ifname: uniqueName('wge'), privateKey: encodeKey(nobleDh.generatePrivateKey()), listenPort: WG_PORT,
      addresses: [`${WG_TUN}/24`], peers: [{ publicKey: encodeKey(nobleDh.publicKey(burrowPriv)), allowedIPs: [`${BURROW_TUN}/32`] }],
    });
    scope.defer(() => wg.stop());

    // The engine's clock: real elapsed time plus a skew the test can add.
    let skew = 0;
    const start = performance.now();
    const now = () => performance.now() - start + skew;
    const replies: number[] = [];
    const events: DeviceEvent[] = [];
    const device = new Device({ privateKey: burrowPriv, wallClockAtZero: Date.now() }, {
      send: (data, to) => bridge.send(data, to.host, to.port),
      write: (packet) => {
        const echo = readEcho(packet);
        if (echo?.type === 'reply' && echo.src === WG_TUN) replies.push(echo.seq);
      },
      event: (e) => events.push(e),
    });
    const wgKey = Uint8Array.from(Buffer.from(wg.publicKey, 'base64'));
    device.setPeer(wgKey, { endpoint: { host: pair.bAddr4, port: WG_PORT }, allowedIPs: [{ address: Uint8Array.of(192, 0, 2, 0), cidr: 24 }] });

    const buf = new Uint8Array(packetBufferSize(device.mtu));
    const ping = (seq: number) => {
      const pkt = icmpEcho(BURROW_TUN, WG_TUN, 7, seq, new TextEncoder().encode(`burrow packet ${seq}`));
      buf.set(pkt, 16);
      device.sendPacket(buf, pkt.length, now());
    };
    /** Feeds datagrams to the engine until `count` replies are in, or fails after `ms`. */
    const pump = async (count: number, ms = 10_000) => {
      const deadline = Date.now() + ms;
      while (replies.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${replies.length} of ${count} replies`);
        const d = await bridge.receive(deadline - Date.now()).catch(() => undefined);
        if (d) device.receiveDatagram(d.data, { host: d.host, port: d.port }, now());
        device.tick(now());
      }
    };

    ping(0);
    await pump(1);
    expect(replies).toEqual([0]);

    // 1,000 more, in bursts of 50, each burst answered before the next.
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 1; i <= 50; i++) ping(burst * 50 + i);
      await pump(1 + (burst + 1) * 50);
    }
    expect(new Set(replies).size).toBe(1001);
    const before = device.peerStatus(now())[0]!;
    expect(before.txBytes).toBeGreaterThan(1000 * 64);
    expect(before.rxBytes).toBeGreaterThan(1000 * 64);

    // Rekey: past REKEY_AFTER_TIME the next packet starts a new handshake while the old
    // keypair keeps carrying data; every packet of the burst is still answered.
    const handshakesBefore = events.filter((e) => e.type === 'handshake-complete').length;
    skew = REKEY_AFTER_TIME + 1000;
    for (let i = 1; i <= 50; i++) ping(2000 + i);
    await pump(1051);
    for (let i = 1; i <= 50; i++) ping(3000 + i);
    await pump(1101);
    expect(events.filter((e) => e.type === 'handshake-complete').length).toBe(handshakesBefore + 1);
    expect(device.peerStatus(now())[0]!.keypairAge).toBeLessThan(60_000);
    expect(new Set(replies).size).toBe(1101);
    const status = await wg.show();
    expect(status.peers[0]!.latestHandshake).toBeGreaterThan(0);
    expect(status.peers[0]!.rxBytes).toBeGreaterThan(1100 * 64);
    expect(device.drops).toEqual({});
  });
});
