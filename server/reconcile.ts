// The running device follows the registry: after every change anyone makes (any
// command, any gateway; the store's watch says when), the registry is read and the
// device is brought in step with it, in process (no control-socket round trip):
//
//   - an enabled peer whose expiry has not passed is on the device, with the registry's
//     preshared key and allowed IPs; a new one is added;
//   - a peer removed, disabled or expired is removed: its sessions end at once;
//   - a peer that did not change is not touched (no field is set again), so its sessions
//     and handshake go on.
//
// The comparison is one pass over the device's peers and one over the registry's
// (src/runtime/peer-sync.ts), a few milliseconds for 10,000 peers.

import type { Session } from '../src/runtime/session.js';
import { type PeerChanges, syncPeers } from '../src/runtime/peer-sync.js';
import type { PeerSetup } from '../src/runtime/tunnel.js';
import type { RegistryData } from './registry.js';

/** Whether `record` should be on the device at `now` (ms): enabled and not expired. */
export const serves = (r: { enabled: boolean; expires?: string }, now: number): boolean => r.enabled && (r.expires === undefined || Date.parse(r.expires) > now);

export function wantedPeers(data: RegistryData, now: number): PeerSetup[] {
  const out: PeerSetup[] = [];
  for (const r of data.peers) {
    if (!serves(r, now)) continue;
    const p = r.peer;
    out.push({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey ?? null,
      ...(p.persistentKeepalive === undefined ? {} : { persistentKeepalive: p.persistentKeepalive }),
      allowedIPs: p.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })),
    });
  }
  return out;
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

/** Makes the session's device match `data` at `now` (ms); the routes follow. */
export function reconcile(session: Session, data: RegistryData, now: number): PeerChanges {
  const changes = syncPeers(session.tunnel.device, session.tunnel.now(), wantedPeers(data, now));
  if (changes.added.length + changes.removed.length + changes.updated.length > 0) {
    session.tunnel.rearm();
    session.follow();
  }
  return changes;
}

export function describeChanges(c: PeerChanges): string {
  const short = (keys: readonly string[]) => (keys.length <= 3 ? keys.map((k) => `${k.slice(0, 8)}…`).join(', ') : `${keys.length} peers`);
  return [
    ...(c.added.length === 0 ? [] : [`added ${short(c.added)}`]),
    ...(c.removed.length === 0 ? [] : [`removed ${short(c.removed)}`]),
    ...(c.updated.length === 0 ? [] : [`updated ${short(c.updated.map((u) => u.key))}`]),
  ].join('; ');
}
