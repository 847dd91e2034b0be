// The server's device follows its registry (server/reconcile.ts over
// src/runtime/peer-sync.ts, and server/follow.ts's reads): new enabled peers are added,
// removed/disabled/expired ones leave with their counts reported, a changed peer gets
// only what changed, and an unchanged peer is not touched: its session goes on without a
// new handshake. Two engines on the in-memory network stand for a gateway and a client.
import { describe, expect, it } from 'vitest';
import { generatePresharedKey } from '../../crypto/keys.js';
import { parsePrefix } from '../../src/config/index.js';
import { syncPeers } from '../../src/runtime/peer-sync.js';
import type { Logger } from '../../src/runtime/log.js';
import { RegistryFollower } from '../../server/follow.js';
import { nextExpiry, Reconciler, wantedPeers } from '../../server/reconcile.js';
import type { Device } from '../../tunnel/device.js';
import type { PeerChanges } from '../../src/runtime/peer-sync.js';
import type { PeerRecord, RegistryData } from '../../server/registry.js';
import type { PeerRegistry, RegistryStatus } from '../../server/store.js';
import { memPair } from '../support/memnet.js';

const silent = { error: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;

function registry(peers: PeerRecord[]): RegistryData {
  return { config: { interface: {} as RegistryData['config']['interface'], peers: [] }, settings: { clientToClient: false, dns: [] }, peers };
}

function record(name: string, publicKey: Uint8Array, psk: Uint8Array, ips: string[], o: Partial<PeerRecord> = {}): PeerRecord {
  return { name, created: '2026-12-01T00:00:00.000Z', enabled: true, rx: 0, tx: 0, peer: { publicKey, presharedKey: psk, allowedIPs: ips.map((p) => parsePrefix(p)) }, ...o };
}

/** The two ways a device follows a registry: the server's Reconciler, and syncPeers (SIGHUP's reload). */
const appliers: [string, (device: Device) => (data: RegistryData, now: number, netNow: number) => PeerChanges][] = [
  ['the Reconciler', (device) => {
    const r = new Reconciler(device, registry([]), 0);
    return (data, now) => r.run(data, now);
  }],
  ['syncPeers', (device) => (data, now, netNow) => syncPeers(device, netNow, wantedPeers(data, now))],
];

describe.each(appliers)('the device follows the registry: %s', (_, make) => {
  it('adds, keeps an unchanged peer untouched (no new handshake), updates only what changed, removes with the counts', () => {
    const psk = generatePresharedKey();
    // a: the client, connected to b with the psk; b: the gateway, which knows no peer yet.
    const { net, a, b } = memPair({ psk });
    b.device.removePeer(a.device.publicKey);
    b.events.length = 0;
    const apply = make(b.device);
    const now = Date.parse('2026-12-04T12:00:00Z');
    const client = record('alice', a.device.publicKey, psk, ['192.0.2.1/32']);

    let c = apply(registry([client]), now, net.now);
    expect(c.added).toHaveLength(1);
    net.ping(a, b, 1);
    net.deliverAll();
    expect(b.delivered).toHaveLength(1);
    const handshakes = () => b.events.filter((e) => e.type === 'handshake-complete').length;
    expect(handshakes()).toBe(1);

    // The same registry again: nothing set, so the session goes on.
    c = apply(registry([client]), now, net.now);
    expect(c).toEqual({ added: [], removed: [], updated: [] });
    // A second peer added, and alice's allowed IPs grown: only her allowed IPs are set.
    const other = memPair().a.device.publicKey;
    const grown = record('alice', a.device.publicKey, psk, ['192.0.2.1/32', '198.51.100.0/24']);
    c = apply(registry([grown, record('bob', other, generatePresharedKey(), ['192.0.2.9/32'])]), now, net.now);
    expect(c.added).toHaveLength(1);
    expect(c.updated).toEqual([{ key: Buffer.from(a.device.publicKey).toString('base64'), fields: ['allowedIPs'] }]);
    net.advanceTo(5_000);
    net.ping(a, b, 2);
    net.deliverAll();
    expect(b.delivered).toHaveLength(2);
    expect(handshakes()).toBe(1);
    expect(b.events.filter((e) => e.type === 'handshake-initiated')).toHaveLength(0);

    // Disabled: removed at once, with what it had counted.
    c = apply(registry([{ ...grown, enabled: false }]), now, net.now);
    expect(new Set(c.removed)).toEqual(new Set([Buffer.from(a.device.publicKey).toString('base64'), Buffer.from(other).toString('base64')]));
    const gone = b.events.find((e) => e.type === 'peer-removed' && e.peer === Buffer.from(a.device.publicKey).toString('base64'));
    expect(gone).toMatchObject({ type: 'peer-removed' });
    expect(gone?.type === 'peer-removed' && gone.rxBytes > 0 && gone.txBytes > 0).toBe(true);
    net.ping(a, b, 3);
    net.deliverAll();
    expect(b.delivered).toHaveLength(2);
  });

  it('a changed preshared key is set (the peer must handshake again); an expired peer is not served', () => {
    const { net, a, b } = memPair();
    b.device.removePeer(a.device.publicKey);
    const apply = make(b.device);
    const now = Date.parse('2026-12-04T12:00:00Z');
    const psk = generatePresharedKey();
    apply(registry([record('alice', a.device.publicKey, psk, ['192.0.2.1/32'])]), now, net.now);
    const c = apply(registry([record('alice', a.device.publicKey, generatePresharedKey(), ['192.0.2.1/32'])]), now, net.now);
    expect(c.updated.map((u) => u.fields)).toEqual([['presharedKey']]);
    const expired = record('alice', a.device.publicKey, psk, ['192.0.2.1/32'], { expires: '2026-12-04T11:59:59.000Z' });
    expect(wantedPeers(registry([expired]), now)).toEqual([]);
    expect(apply(registry([expired]), now, net.now).removed).toHaveLength(1);
    // Still enabled in the registry: the next expiry is in the past until the registry says disabled.
    expect(nextExpiry(registry([expired]))).toBe(Date.parse('2026-12-04T11:59:59.000Z'));
    expect(nextExpiry(registry([{ ...expired, enabled: false }]))).toBe(Infinity);
  });
});

/** A store whose reads the test releases one at a time. */
function slowStore(initial: RegistryData) {
  let data = initial;
  let reads = 0;
  let reachable = true;
  const waiting: (() => void)[] = [];
  const store: PeerRegistry = {
    location: 'postgresql://gw@/burrow',
    async read() {
      reads++;
      const seen = data; // what the read's transaction sees
      await new Promise<void>((r) => waiting.push(r));
      if (!reachable) throw new Error('connection refused');
      return seen;
    },
    async update(change) {
      const { data: next, result } = change(data);
      data = next;
      return result;
    },
    async addTransfer(deltas) {
      data = { ...data, peers: data.peers.map((p) => ({ ...p, rx: p.rx + (deltas.get(p.name)?.rx ?? 0) })) };
    },
    watch: () => ({ stop: async () => undefined }),
    async close() {},
  };
  return {
    store,
    reads: () => reads,
    release: () => waiting.splice(0).forEach((r) => r()),
    set: (d: RegistryData) => (data = d),
    down: () => (reachable = false),
  };
}

describe('the follower of the registry', () => {
  it('coalesces a burst of changes into one more read, gives each read to its subscribers, keeps the data while unreachable', async () => {
    const first = registry([]);
    const s = slowStore(first);
    const f = new RegistryFollower(s.store, first, { ifname: 'wgt0', log: silent });
    const seen: RegistryData[] = [];
    f.subscribe((d) => seen.push(d));
    const one = f.refresh();
    await Promise.resolve();
    // Ten changes while the first read runs: one read more, not ten.
    const { a } = memPair();
    const next = registry([record('alice', a.device.publicKey, generatePresharedKey(), ['10.0.0.2/32'])]);
    s.set(next);
    const later = Array.from({ length: 10 }, () => f.refresh());
    s.release();
    await one;
    await new Promise((r) => setImmediate(r));
    s.release();
    await Promise.all(later);
    expect(s.reads()).toBe(2);
    expect(seen).toHaveLength(2);
    expect(f.data()).toBe(next);

    s.down();
    const failed = f.refresh();
    await new Promise((r) => setImmediate(r));
    s.release();
    await failed;
    expect(f.data()).toBe(next);
    expect(seen).toHaveLength(2);
    const status: RegistryStatus = f.status();
    expect(status.reachable).toBe(true); // reachability is the store's to say (its watch)
  });

  it('a change made through it is read back before update() returns', async () => {
    const first = registry([]);
    const s = slowStore(first);
    const f = new RegistryFollower(s.store, first, { ifname: 'wgt0', log: silent });
    const { a } = memPair();
    const done = f.update((d) => ({ data: { ...d, peers: [record('alice', a.device.publicKey, generatePresharedKey(), ['10.0.0.2/32'])] }, result: 'ok' }));
    await new Promise((r) => setImmediate(r));
    s.release();
    expect(await done).toBe('ok');
    expect(f.data().peers.map((p) => p.name)).toEqual(['alice']);
  });

  it('a read that a save overtook is set aside (its totals would go backwards); the read the save queued follows', async () => {
    const { a } = memPair();
    const first = registry([record('alice', a.device.publicKey, generatePresharedKey(), ['10.0.0.2/32'])]);
    const s = slowStore(first);
    const f = new RegistryFollower(s.store, first, { ifname: 'wgt0', log: silent });
    const stale = f.refresh(); // reads the registry before the save
    await Promise.resolve();
    await f.addTransfer(new Map([['alice', { rx: 500, tx: 0 }]]));
    expect(f.data().peers[0]!.rx).toBe(500); // at once
    s.release();
    await stale;
    expect(f.data().peers[0]!.rx).toBe(500); // not the stale read's 0
    await new Promise((r) => setImmediate(r));
    s.release();
    await new Promise((r) => setImmediate(r));
    expect(s.reads()).toBe(2);
    expect(f.data().peers[0]!.rx).toBe(500);
  });
});
