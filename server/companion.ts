// What the server's daemon runs beside its session (daemon.ts's Companion):
//
//   follow   after every change to the registry (follow.ts reads it again), the device
//            is brought in step with it (reconcile.ts): peers added, removed, disabled or
//            changed through any command, the admin page, or another gateway.
//   expiry   every EXPIRY_CHECK_MS, an enabled peer whose `expires` has passed is
//            removed from the device (its sessions end at once) and disabled in the
//            registry. The dates come from the registry as last read.
//   totals   every SAVE_INTERVAL_MS and at stop, what the device counted per peer since
//            the last save is added to this gateway's share of the totals
//            (registry.addTransfer). A peer that leaves the device has its last counts
//            kept for the next save, and a save that fails (the database away) is kept
//            whole for a later one; at stop, counts that could not be saved stay in
//            /run/burrow/IFACE.totals and the next up adds them.

import type { Companion } from '../src/runtime/daemon.js';
import type { Session } from '../src/runtime/session.js';
import type { RegistryFollower } from './follow.js';
import { type CounterSnapshot, readSnapshot, removeSnapshot, SAVE_INTERVAL_MS, since, writeSnapshot } from './peers.js';
import { describeChanges, nextExpiry, Reconciler, serves } from './reconcile.js';
import type { PeerRecord, RegistryData } from './registry.js';

export const EXPIRY_CHECK_MS = 1_000;

export interface ServerCompanionOptions {
  readonly follower: RegistryFollower;
  readonly saveIntervalMs?: number;
  readonly now?: () => number;
}

type Counts = { rx: number; tx: number };

const add = (map: Map<string, Counts>, name: string, d: Counts): void => {
  if (d.rx === 0 && d.tx === 0) return;
  const was = map.get(name) ?? { rx: 0, tx: 0 };
  map.set(name, { rx: was.rx + d.rx, tx: was.tx + d.tx });
};

export function serverCompanion(session: Session, o: ServerCompanionOptions): Companion {
  const { follower } = o;
  const ifname = session.ifname;
  const now = o.now ?? Date.now;
  const log = session.log;
  const device = session.tunnel.device;
  /** The device's counters at the last save, by public key (base64). */
  const counted = new Map<string, Counts>();
  /** The device's counters that the save under way is storing, by key. */
  let saving = new Map<string, Counts>();
  /** Counted and not saved: peers that left the device, and what a failed last stop left. */
  const unsaved = new Map<string, Counts>(Object.entries(readSnapshot(ifname).unsaved));
  /** Peer names by public key, from every read (a removed peer's name is still needed for its last counts). */
  const names = new Map<string, string>();
  let expiry = Infinity;
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;
  let published = false;

  const publish = () => {
    const snapshot: CounterSnapshot = { counted: Object.fromEntries(counted), unsaved: Object.fromEntries(unsaved) };
    writeSnapshot(ifname, snapshot);
  };
  // Many peers can leave in one reconcile: the file is rewritten once after them.
  const publishSoon = () => {
    if (published) return;
    published = true;
    setImmediate(() => {
      published = false;
      publish();
    });
  };

  const reconciler = new Reconciler(device, follower.data(), now());
  const follow = (data: RegistryData) => {
    for (const r of data.peers) names.set(Buffer.from(r.peer.publicKey).toString('base64'), r.name);
    const changes = reconciler.run(data, now());
    const said = describeChanges(changes);
    if (said !== '') {
      log.info(`registry ${follower.location} changed: ${said}`);
      session.tunnel.rearm();
      session.follow();
    }
    expiry = nextExpiry(data);
  };

  const stopEvents = session.onDeviceEvent((e) => {
    if (e.type !== 'peer-removed') return;
    const name = names.get(e.peer);
    const d = since({ rxBytes: e.rxBytes, txBytes: e.txBytes }, saving.get(e.peer) ?? counted.get(e.peer));
    counted.delete(e.peer);
    if (name !== undefined) add(unsaved, name, d);
    publishSoon();
  });

  /**
   * Adds what was counted since the last save to this gateway's share. The device's
   * counters become `counted` only once the store has answered, so what the view shows
   * (registry totals + unsaved + counted since) never drops meanwhile; a peer leaving
   * during the save counts from the values being saved. A failed save moves its counts
   * to `unsaved`, for the next one.
   */
  const save = async (): Promise<number> => {
    const taken = new Map(unsaved);
    const fromDevice = new Map<string, Counts>();
    const at = new Map<string, Counts>();
    for (const p of device.peerStatus(session.tunnel.now())) {
      const name = names.get(p.publicKey);
      if (name === undefined) continue;
      const d = since(p, counted.get(p.publicKey));
      if (d.rx === 0 && d.tx === 0) continue;
      at.set(p.publicKey, { rx: p.rxBytes, tx: p.txBytes });
      add(fromDevice, name, d);
    }
    const deltas = new Map(taken);
    for (const [name, d] of fromDevice) add(deltas, name, d);
    // An idle server writes nothing.
    if (deltas.size === 0) return 0;
    saving = at;
    let failure: unknown;
    try {
      await follower.addTransfer(deltas);
    } catch (e) {
      failure = e;
    } finally {
      saving = new Map();
    }
    for (const [key, c] of at) if (device.hasPeer(Buffer.from(key, 'base64'))) counted.set(key, c);
    if (failure !== undefined) {
      for (const [name, d] of fromDevice) add(unsaved, name, d);
      publish();
      throw failure;
    }
    for (const [name, d] of taken) {
      const left = unsaved.get(name)!;
      const rest = { rx: left.rx - d.rx, tx: left.tx - d.tx };
      if (rest.rx === 0 && rest.tx === 0) unsaved.delete(name);
      else unsaved.set(name, rest);
    }
    publish();
    return deltas.size;
  };

  const expire = async (): Promise<void> => {
    const t = now();
    if (expiry > t) return;
    // Cut off here at once, whether or not the registry can be reached; disabled in the
    // registry when it can be (until then this runs again at every check).
    follow(follower.data());
    if (!follower.status().reachable) return;
    await follower.update((data) => {
      const expired: string[] = [];
      const peers = data.peers.map((r): PeerRecord => {
        if (!r.enabled || r.expires === undefined || serves(r, t)) return r;
        expired.push(r.name);
        return { ...r, enabled: false };
      });
      return { data: { ...data, peers }, result: expired };
    }).then((expired) => {
      for (const name of expired) log.info(`peer '${name}' expired: disabled`);
    });
  };

  const run = (what: string, task: () => Promise<unknown>) => {
    busy = busy.then(async () => {
      if (stopped) return;
      try {
        await task();
      } catch (e) {
        log.error(`${what}: ${(e as Error).message}`);
      }
    });
  };

  const unsubscribe = follower.subscribe(follow);
  follow(follower.data());
  publish();
  follower.start();
  const expiryTimer = setInterval(() => run('expiry check', expire), EXPIRY_CHECK_MS);
  const saveTimer = setInterval(
    () =>
      run('saving transfer totals (kept for the next save)', async () => {
        const n = await save();
        if (n > 0) log.debug(`transfer totals of ${n} peer(s) saved to ${follower.location}`);
      }),
    o.saveIntervalMs ?? SAVE_INTERVAL_MS,
  );
  run('expiry check', expire);

  return {
    async stop() {
      clearInterval(expiryTimer);
      clearInterval(saveTimer);
      await busy;
      stopped = true;
      unsubscribe();
      try {
        await save();
        log.info(`transfer totals saved to ${follower.location}`);
        stopEvents();
        removeSnapshot(ifname);
      } catch (e) {
        // save() kept what it could not store as unsaved: the file holds it for the next up.
        stopEvents();
        counted.clear();
        publish();
        log.error(`transfer totals not saved (${(e as Error).message}): kept in ${ifname}'s counter file for the next up`);
      } finally {
        await follower.close();
      }
    },
  };
}
