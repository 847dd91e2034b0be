// What the server's daemon runs beside its session (daemon.ts's Companion):
//
//   expiry   every EXPIRY_CHECK_MS, an enabled peer whose `expires` has passed is
//            disabled in the registry and removed from the device: its sessions end at
//            once. The expiry dates are read again whenever the registry file changes
//            (add-peer, enable --expires, a hand edit), found by its inode, size and mtime.
//   totals   every SAVE_INTERVAL_MS and at stop, what the device counted per peer since
//            the last save is added to the peer's totals in the registry (peers.ts).

import { encodeKey } from '../crypto/keys.js';
import type { Companion } from '../src/runtime/daemon.js';
import type { Session } from '../src/runtime/session.js';
import { type CounterSnapshot, readSnapshot, removeSnapshot, SAVE_INTERVAL_MS, since, writeSnapshot } from './peers.js';
import type { PeerRecord } from './registry.js';
import type { FileRegistry } from './store.js';

export const EXPIRY_CHECK_MS = 1_000;

/** The earliest `expires=` on an enabled peer's `# burrow:` line (disabled ones are behind "#~"). */
export function earliestExpiry(text: string): number {
  let earliest = Infinity;
  for (const m of text.matchAll(/^#\s*burrow:([^\n]*)$/gm)) {
    const fields = m[1]!;
    const expires = /(?:^|\s)expires=(\S+)/.exec(fields)?.[1];
    if (expires === undefined || /(?:^|\s)enabled=false(?:\s|$)/.test(fields)) continue;
    const t = Date.parse(expires);
    if (t < earliest) earliest = t;
  }
  return earliest;
}

export interface ServerCompanionOptions {
  readonly registry: FileRegistry;
  readonly saveIntervalMs?: number;
  readonly now?: () => number;
}

export function serverCompanion(session: Session, o: ServerCompanionOptions): Companion {
  const { registry } = o;
  const ifname = session.ifname;
  const now = o.now ?? Date.now;
  const log = session.log;
  const device = session.tunnel.device;
  let version = '';
  /** The earliest expiry of an enabled peer (ms), or Infinity. */
  let nextExpiry = Infinity;
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;

  writeSnapshot(ifname, {});

  const live = (): Map<string, { rxBytes: number; txBytes: number }> =>
    new Map(device.peerStatus(session.tunnel.now()).map((p) => [p.publicKey, p]));

  const save = async (): Promise<void> => {
    const counts = live();
    // An idle server rewrites nothing: the registry is read (and the event loop held) only
    // when some peer's counters moved since the last save.
    const before = readSnapshot(ifname);
    const moved = [...counts].some(([key, c]) => {
      const d = since(c, before[key]);
      return d.rx !== 0 || d.tx !== 0;
    });
    if (!moved) return;
    const saved = await registry.update((data) => {
      const snapshot: CounterSnapshot = readSnapshot(ifname);
      const next: CounterSnapshot = {};
      const peers = data.peers.map((r): PeerRecord => {
        const key = encodeKey(r.peer.publicKey);
        const c = counts.get(key);
        if (c === undefined || !r.enabled) return r;
        const d = since(c, snapshot[key]);
        next[key] = { rx: c.rxBytes, tx: c.txBytes };
        return d.rx === 0 && d.tx === 0 ? r : { ...r, rx: r.rx + d.rx, tx: r.tx + d.tx };
      });
      writeSnapshot(ifname, next);
      return { data: { ...data, peers }, result: Object.keys(next).length };
    });
    log.debug(`transfer totals of ${saved} peer(s) saved to ${registry.location}`);
  };

  const expire = async (): Promise<void> => {
    const v = registry.version();
    if (v !== version) {
      // A scan of the enabled peers' comment lines, not a full parse: this runs after
      // every change to the registry, on the daemon's one thread.
      nextExpiry = earliestExpiry(registry.text());
      version = v;
    }
    const t = now();
    if (nextExpiry > t) return;
    const counts = live();
    const expiries: number[] = [];
    await registry.update((data) => {
      const snapshot = readSnapshot(ifname);
      const peers = data.peers.map((r): PeerRecord => {
        const key = encodeKey(r.peer.publicKey);
        if (!r.enabled || r.expires === undefined) return r;
        if (Date.parse(r.expires) > t) {
          expiries.push(Date.parse(r.expires));
          return r;
        }
        const c = counts.get(key);
        const d = c === undefined ? { rx: 0, tx: 0 } : since(c, snapshot[key]);
        delete snapshot[key];
        device.removePeer(r.peer.publicKey);
        log.info(`peer '${r.name}' expired (${r.expires}): disabled`);
        return { ...r, enabled: false, rx: r.rx + d.rx, tx: r.tx + d.tx };
      });
      writeSnapshot(ifname, snapshot);
      return { data: { ...data, peers }, result: undefined };
    });
    nextExpiry = Math.min(Infinity, ...expiries);
    session.tunnel.rearm();
    session.follow();
  };

  const run = (what: string, task: () => Promise<void>) => {
    busy = busy.then(async () => {
      if (stopped) return;
      try {
        await task();
      } catch (e) {
        log.error(`${what}: ${(e as Error).message}`);
      }
    });
  };
  const expiryTimer = setInterval(() => run('expiry check', expire), EXPIRY_CHECK_MS);
  const saveTimer = setInterval(() => run('saving transfer totals', save), o.saveIntervalMs ?? SAVE_INTERVAL_MS);
  run('expiry check', expire);

  return {
    async stop() {
      clearInterval(expiryTimer);
      clearInterval(saveTimer);
      await busy;
      stopped = true;
      try {
        await save();
        log.info(`transfer totals saved to ${registry.location}`);
      } finally {
        removeSnapshot(ifname);
      }
    },
  };
}
