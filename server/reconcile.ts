// The running device follows the registry: after every change anyone makes (any
// command, any gateway; the store's watch says when), the registry is read and the
// device is brought in step with it, in process (no control-socket round trip):
//
//   - an enabled peer whose expiry has not passed is on the device, with the registry's
//     preshared key and allowed IPs; a new one is added;
//   - a peer removed, disabled or expired is removed: its sessions end at once;
//   - a peer that did not change is not touched (no field is set again: a preshared key
//     set again would restart its handshake), so its sessions go on.
//
// It must stay cheap at 10,000 peers (it runs on the daemon's one thread after every
// change): the Reconciler remembers the allowed IPs it last gave each peer, so an
// unchanged peer costs a key's text, a map lookup and a 32-byte comparison. The device's
// own tables are read through its live view (Device.inspect), never copied whole.

import { encodeKey } from '../crypto/keys.js';
import type { PeerChanges } from '../src/runtime/peer-sync.js';
import { sameBytes } from '../src/runtime/peer-sync.js';
import type { PeerSetup } from '../src/runtime/tunnel.js';
import type { Device, PeerUpdate } from '../tunnel/device.js';
import type { PeerRecord, RegistryData } from './registry.js';

/** Whether `record` should be on the device at `now` (ms): enabled and not expired. */
export const serves = (r: { enabled: boolean; expires?: string }, now: number): boolean => r.enabled && (r.expires === undefined || Date.parse(r.expires) > now);

const setupOf = (r: PeerRecord): PeerSetup => ({
  publicKey: r.peer.publicKey,
  presharedKey: r.peer.presharedKey ?? null,
  ...(r.peer.persistentKeepalive === undefined ? {} : { persistentKeepalive: r.peer.persistentKeepalive }),
  allowedIPs: r.peer.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })),
});

/** The peers the device should have at `now`, as the session sets them up. */
export function wantedPeers(data: RegistryData, now: number): PeerSetup[] {
  return data.peers.filter((r) => serves(r, now)).map(setupOf);
}

/**
 * The earliest expiry (ms) of an enabled peer, or Infinity. One in the past is a peer
 * still to be disabled in the registry (the device serves it no more).
 */
export function nextExpiry(data: RegistryData): number {
  let earliest = Infinity;
  for (const r of data.peers) {
    if (r.enabled && r.expires !== undefined) {
      const t = Date.parse(r.expires);
      if (t < earliest) earliest = t;
    }
  }
  return earliest;
}

const allowedText = (r: PeerRecord): string => r.peer.allowedIPs.map((a) => a.text).join(',');

export class Reconciler {
  /** The allowed IPs (as text) last given to each peer on the device, by key (base64). */
  private readonly applied = new Map<string, string>();

  /** `started`: the registry the device was started with (its served peers are on it). */
  constructor(
    private readonly device: Device,
    started: RegistryData,
    now: number,
  ) {
    for (const r of started.peers) if (serves(r, now)) this.applied.set(encodeKey(r.peer.publicKey), allowedText(r));
  }

  /** Makes the device match `data` at `now` (ms); says what changed. */
  run(data: RegistryData, now: number): PeerChanges {
    const changes: PeerChanges = { added: [], removed: [], updated: [] };
    const on = this.device.inspect().peers;
    const wanted = new Map<string, PeerRecord>();
    for (const r of data.peers) if (serves(r, now)) wanted.set(encodeKey(r.peer.publicKey), r);
    for (const [key, peer] of [...on]) {
      if (wanted.has(key)) continue;
      this.device.removePeer(peer.publicKey);
      this.applied.delete(key);
      changes.removed.push(key);
    }
    for (const [key, r] of wanted) {
      const peer = on.get(key);
      const allowed = allowedText(r);
      if (peer === undefined) {
        this.device.setPeer(r.peer.publicKey, setupOf(r));
        this.applied.set(key, allowed);
        changes.added.push(key);
        continue;
      }
      const keepalive = r.peer.persistentKeepalive ?? 0;
      const update: PeerUpdate = {
        ...(sameBytes(peer.presharedKey, r.peer.presharedKey) ? {} : { presharedKey: r.peer.presharedKey ?? null }),
        ...(peer.persistentKeepalive === keepalive * 1000 ? {} : { persistentKeepalive: keepalive }),
        ...(this.applied.get(key) === allowed ? {} : { allowedIPs: setupOf(r).allowedIPs ?? [], replaceAllowedIPs: true }),
      };
      const fields = Object.keys(update);
      if (fields.length === 0) continue;
      this.device.setPeer(r.peer.publicKey, update);
      this.applied.set(key, allowed);
      changes.updated.push({ key, fields: fields.filter((k) => k !== 'replaceAllowedIPs') });
    }
    return changes;
  }
}

export function describeChanges(c: PeerChanges): string {
  const short = (keys: readonly string[]) => (keys.length <= 3 ? keys.map((k) => `${k.slice(0, 8)}…`).join(', ') : `${keys.length} peers`);
  return [
    ...(c.added.length === 0 ? [] : [`added ${short(c.added)}`]),
    ...(c.removed.length === 0 ? [] : [`removed ${short(c.removed)}`]),
    ...(c.updated.length === 0 ? [] : [`updated ${short(c.updated.map((u) => u.key))}`]),
  ].join('; ');
}
