// Brings a device's peers in step with a list, as `wg syncconf` does: peers not in the
// list are removed, new ones added, and a peer in both gets only the fields that differ.
// A preshared key set again restarts the peer's handshake, so equal keys are never set:
// the sessions of unchanged peers go on. Used by SIGHUP's reload (session.ts) and by the
// server's registry reconciler (server/reconcile.ts).

import { encodeKey } from '../../crypto/keys.js';
import type { Device, PeerUpdate } from '../../tunnel/device.js';
import type { PeerSetup } from './tunnel.js';

export interface PeerChanges {
  /** Public keys (base64) added, removed; updated with the fields that changed. */
  readonly added: string[];
  readonly removed: string[];
  readonly updated: { key: string; fields: string[] }[];
}

export function sameBytes(a: Uint8Array | undefined | null, b: Uint8Array | undefined | null): boolean {
  if ((a ?? undefined) === (b ?? undefined)) return true;
  if (a == null || b == null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

type Prefix = { readonly address: Uint8Array; readonly cidr: number };

/** The same prefixes in any order (a peer has a handful: no strings, no sorting). */
export function samePrefixes(a: readonly Prefix[], b: readonly Prefix[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x) => b.some((y) => y.cidr === x.cidr && sameBytes(y.address, x.address)));
}

export function syncPeers(device: Device, now: number, wanted: readonly PeerSetup[]): PeerChanges {
  const changes: PeerChanges = { added: [], removed: [], updated: [] };
  const want = new Map(wanted.map((p) => [encodeKey(p.publicKey), p]));
  const running = new Map(device.peerStatus(now).map((s) => [s.publicKey, s]));
  for (const [key] of running) {
    if (want.has(key)) continue;
    device.removePeer(Buffer.from(key, 'base64'));
    changes.removed.push(key);
  }
  for (const [key, p] of want) {
    const now = running.get(key);
    if (now === undefined) {
      device.setPeer(p.publicKey, p);
      changes.added.push(key);
      continue;
    }
    const update: PeerUpdate = {
      ...(sameBytes(now.presharedKey, p.presharedKey) ? {} : { presharedKey: p.presharedKey ?? null }),
      ...(p.endpoint && (now.endpoint?.host !== p.endpoint.host || now.endpoint.port !== p.endpoint.port) ? { endpoint: p.endpoint } : {}),
      ...(p.persistentKeepalive === undefined || now.persistentKeepalive === p.persistentKeepalive ? {} : { persistentKeepalive: p.persistentKeepalive }),
      ...(samePrefixes(now.allowedIPs, p.allowedIPs ?? []) ? {} : { allowedIPs: p.allowedIPs ?? [], replaceAllowedIPs: true }),
    };
    const fields = Object.keys(update);
    if (fields.length === 0) continue;
    device.setPeer(p.publicKey, update);
    changes.updated.push({ key, fields: fields.filter((k) => k !== 'replaceAllowedIPs') });
  }
  for (const s of running.values()) s.presharedKey?.fill(0);
  return changes;
}
