// The server daemon's companion counts every byte once (issue 15): what its device
// counted goes to this gateway's share through addTransfer; a save that fails (the
// database away) is kept and added by a later one; a peer that leaves the device
// (disabled through the registry, here) has its last counts kept for the next save. A
// gateway (b) and a client (a) on the in-memory network, a store in memory that can be
// made to fail.
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKey, generatePresharedKey } from '../../crypto/keys.js';
import { parsePrefix } from '../../src/config/index.js';
import type { Logger } from '../../src/runtime/log.js';
import type { Session } from '../../src/runtime/session.js';
import type { DeviceEvent } from '../../tunnel/device.js';
import { serverCompanion } from '../../server/companion.js';
import { RegistryFollower } from '../../server/follow.js';
import { countersPath, peerStatus, readSnapshot } from '../../server/peers.js';
import { registryStatusPath } from '../../server/registry-status.js';
import type { PeerRecord, RegistryData } from '../../server/registry.js';
import type { PeerRegistry } from '../../server/store.js';
import { memPair } from '../support/memnet.js';

const silent = { error: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;
const ifname = `cmp${process.pid % 100000}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  rmSync(countersPath(ifname), { force: true });
  rmSync(registryStatusPath(ifname), { force: true });
});

/** A gateway (b) serving a client (a) as the daemon does, with a store in memory. */
function gateway() {
  const psk = generatePresharedKey();
  const { net, a, b } = memPair({ psk });
  // The engine's events, as the session hands them to its listeners.
  const listeners = new Set<(e: DeviceEvent) => void>();
  b.events.push = (...events: DeviceEvent[]) => {
    for (const e of events) for (const l of listeners) l(e);
    return Array.prototype.push.apply(b.events, events);
  };
  const session = {
    ifname,
    log: silent,
    tunnel: { device: b.device, now: () => net.now, rearm: () => undefined },
    follow: () => undefined,
    onDeviceEvent: (l: (e: DeviceEvent) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  } as unknown as Session;

  const alice: PeerRecord = { name: 'alice', created: '2026-12-01T00:00:00.000Z', enabled: true, rx: 0, tx: 0, peer: { publicKey: a.device.publicKey, presharedKey: psk, allowedIPs: [parsePrefix('192.0.2.1/32')] } };
  let data: RegistryData = { config: { interface: {} as RegistryData['config']['interface'], peers: [] }, settings: { clientToClient: false, dns: [] }, peers: [alice] };
  const ctl = { failing: false, gate: undefined as Promise<void> | undefined };
  const saved = { rx: 0, tx: 0, calls: 0 };
  const store: PeerRegistry = {
    location: 'memory',
    read: async () => data,
    async update(change) {
      const r = change(data);
      data = r.data;
      return r.result;
    },
    async addTransfer(deltas) {
      saved.calls++;
      await ctl.gate;
      if (ctl.failing) throw new Error('connection refused');
      const d = deltas.get('alice');
      if (d !== undefined) {
        saved.rx += d.rx;
        saved.tx += d.tx;
        data = { ...data, peers: data.peers.map((p) => ({ ...p, rx: p.rx + d.rx, tx: p.tx + d.tx })) };
      }
    },
    watch: () => ({ stop: async () => undefined }),
    close: async () => undefined,
  };
  const follower = new RegistryFollower(store, data, { ifname, log: silent });
  return { net, a, b, session, saved, ctl, follower };
}

describe("the server's transfer totals", () => {
  it('a failed save is kept and added later; a peer that leaves the device keeps its last counts; nothing is counted twice', async () => {
    const { net, a, b, session, saved, ctl, follower } = gateway();
    const companion = serverCompanion(session, { follower, saveIntervalMs: 40 });
    try {
      const traffic = (seq: number) => {
        net.ping(a, b, seq, new Uint8Array(200));
        net.deliverAll();
      };
      traffic(1);
      await sleep(150);
      const counted = () => b.device.peerStatus(net.now).find((p) => p.publicKey === encodeKey(a.device.publicKey))!;
      expect(saved.rx).toBe(counted().rxBytes);
      // What the daemon shows (admin page, tracker) has the saved totals, not only the store.
      expect(follower.data().peers[0]!.rx).toBe(saved.rx);

      // The database goes away: saves fail, and what they held is kept.
      ctl.failing = true;
      const callsBefore = saved.calls;
      traffic(2);
      await sleep(150);
      expect(saved.calls).toBeGreaterThan(callsBefore);
      // More traffic, and at once (before the next save) alice is disabled through the
      // registry: the follower reads it, the device drops her with what she had counted.
      traffic(3);
      const last = counted();
      await follower.update((d) => ({ data: { ...d, peers: d.peers.map((p) => ({ ...p, enabled: false })) }, result: undefined }));
      expect(b.device.hasPeer(a.device.publicKey)).toBe(false);
      await new Promise((r) => setImmediate(r)); // the counter file is rewritten once after a reconcile
      expect(readSnapshot(ifname).unsaved.alice?.rx).toBe(last.rxBytes - saved.rx);

      // Back: everything the device counted is saved, once.
      ctl.failing = false;
      await sleep(150);
      expect(saved).toMatchObject({ rx: last.rxBytes, tx: last.txBytes });
      expect(follower.data().peers[0]).toMatchObject({ rx: last.rxBytes, tx: last.txBytes });
      expect(readSnapshot(ifname).unsaved).toEqual({});
    } finally {
      await companion.stop();
    }
  });

  it('what the daemon shows never drops while a save is under way', async () => {
    const { net, a, b, session, ctl, follower } = gateway();
    const companion = serverCompanion(session, { follower, saveIntervalMs: 40 });
    let release = () => undefined as void;
    try {
      const key = encodeKey(a.device.publicKey);
      const live = () => {
        const p = b.device.peerStatus(net.now).find((x) => x.publicKey === key)!;
        return { name: ifname, publicKey: undefined, listenPort: 0, fwmark: 0, peers: [{ publicKey: key, hasPresharedKey: true, endpoint: undefined, allowedIPs: [], lastHandshake: 0, rxBytes: p.rxBytes, txBytes: p.txBytes, persistentKeepalive: 0 }] };
      };
      // What the admin page and the tracker see: the view's sum (peers.ts's peerStatus).
      const shown = () => peerStatus(follower.data(), live(), readSnapshot(ifname))[0]!.rxBytes;
      ctl.gate = new Promise<void>((r) => (release = r));
      net.ping(a, b, 1, new Uint8Array(200));
      net.deliverAll();
      const total = live().peers[0]!.rxBytes;
      await sleep(120); // a save has started and waits for the store
      expect(shown()).toBe(total);
      release();
      await sleep(120);
      expect(shown()).toBe(total);
    } finally {
      release();
      await companion.stop();
    }
  });
});
