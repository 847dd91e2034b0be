// What the server's peer commands do, apart from the command line: change the registry
// (one atomic update each), then apply the change to the running server through its
// control socket with the `wg set` protocol, touching only that peer, so every other
// peer's session goes on. (The daemon also follows the registry itself, reconcile.ts,
// which is how a change made through another gateway reaches this one.)
//
// Transfer totals: the registry holds each peer's totals as of the daemons' last saves
// (with several gateways, the sum of each one's share). The daemon is the only one that
// counts: every SAVE_INTERVAL_MS and at down it adds what its device counted since the
// save before (registry.addTransfer); a peer that leaves the device (disabled, removed,
// expired, by whoever) has its last counts kept for the next save; a save that fails
// (the database away) is kept whole and added by a later one. What the daemon has
// counted and not saved yet is in /run/burrow/IFACE.totals (rewritten after each save
// and each removal), so that `list-peers` shows it too.

import { readFileSync, rmSync } from 'node:fs';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { type Config, formatConfig, interfaceConfig, type IpPrefix, makePrefix, parsePrefix, type PeerConfig } from '../src/config/index.js';
import { parseEndpoint } from '../src/config/endpoint.js';
import { parseKey } from '../src/config/values.js';
import { RUN_DIR, writeFileAtomic } from '../src/runtime/journal.js';
import { nodeDh } from '../src/runtime/node-crypto.js';
import { parseGetReply, UapiClientError, type UapiInterface, type UapiPeer, uapiRequest } from '../src/runtime/uapi-client.js';
import { allocateAmong } from './allocate.js';
import { checkPeerName, findPeer, parseTime, type PeerRecord, type RegistryData, RegistryError } from './registry.js';
import { FileRegistry, type PeerRegistry } from './store.js';

export const SAVE_INTERVAL_MS = 30_000;
export const countersPath = (ifname: string): string => `${RUN_DIR}/${ifname}.totals`;

/**
 * What the daemon has counted and not saved: the device's counters at its last save, by
 * public key (base64), and the counts of peers that left the device since, by name.
 */
export interface CounterSnapshot {
  readonly counted: Record<string, { rx: number; tx: number }>;
  readonly unsaved: Record<string, { rx: number; tx: number }>;
}

const EMPTY: CounterSnapshot = { counted: {}, unsaved: {} };

export function readSnapshot(ifname: string): CounterSnapshot {
  try {
    const v = JSON.parse(readFileSync(countersPath(ifname), 'utf8')) as Partial<CounterSnapshot>;
    return typeof v?.counted === 'object' && typeof v.unsaved === 'object' && v.counted !== null && v.unsaved !== null ? { counted: v.counted, unsaved: v.unsaved } : EMPTY;
  } catch {
    return EMPTY;
  }
}

export function writeSnapshot(ifname: string, snapshot: CounterSnapshot): void {
  writeFileAtomic(countersPath(ifname), `${JSON.stringify(snapshot)}\n`, 0o600);
}

export function removeSnapshot(ifname: string): void {
  rmSync(countersPath(ifname), { force: true });
}

/** What the device counted since `before`; a peer re-added since (counters restarted) counts from zero. */
export function since(live: { rxBytes: number; txBytes: number }, before: { rx: number; tx: number } | undefined): { rx: number; tx: number } {
  const b = before ?? { rx: 0, tx: 0 };
  if (live.rxBytes < b.rx || live.txBytes < b.tx) return { rx: live.rxBytes, tx: live.txBytes };
  return { rx: live.rxBytes - b.rx, tx: live.txBytes - b.tx };
}

const hex = (key: Uint8Array): string => Buffer.from(key).toString('hex');

/** Two 32-byte keys are equal (compared as bytes: no text made per peer of a large registry). */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The running server's state, or undefined when it is not up. */
export async function running(ifname: string): Promise<UapiInterface | undefined> {
  try {
    return parseGetReply(ifname, await uapiRequest(ifname, 'get=1\n\n'), (k) => nodeDh.publicKey(k));
  } catch {
    return undefined;
  }
}

async function uapiSet(ifname: string, lines: string[]): Promise<void> {
  const reply = await uapiRequest(ifname, `set=1\n${lines.join('\n')}\n\n`);
  const errno = /errno=(-?\d+)/.exec(reply)?.[1];
  if (errno !== '0') throw new Error(`${ifname} refused the change (errno ${errno ?? '?'})`);
}

/**
 * Adds the peer to the running server; false when the server is not running. Cheaper
 * than asking first: a `get` of a 10,000-peer server is a megabyte.
 */
export function applyIfRunning(ifname: string, peer: PeerConfig): Promise<boolean> {
  return ifRunning(() => applyPeer(ifname, peer));
}

/** Runs a change to the running server; false when it is not running. */
async function ifRunning(change: () => Promise<void>): Promise<boolean> {
  try {
    await change();
    return true;
  } catch (e) {
    if (e instanceof UapiClientError && e.code === 'ERR_NOT_UP') return false;
    throw e;
  }
}

/** Adds or replaces one peer on the running device. */
export function applyPeer(ifname: string, peer: PeerConfig): Promise<void> {
  return uapiSet(ifname, [
    `public_key=${hex(peer.publicKey)}`,
    `preshared_key=${peer.presharedKey === undefined ? '0'.repeat(64) : hex(peer.presharedKey)}`,
    ...(peer.persistentKeepalive === undefined ? [] : [`persistent_keepalive_interval=${peer.persistentKeepalive}`]),
    'replace_allowed_ips=true',
    ...peer.allowedIPs.map((a) => `allowed_ip=${a.text}`),
  ]);
}

/** Removes one peer from the running device: its sessions end at once. */
export function unapplyPeer(ifname: string, peer: PeerConfig): Promise<void> {
  return uapiSet(ifname, [`public_key=${hex(peer.publicKey)}`, 'remove=true']);
}

export interface AddPeerInput {
  readonly name: string;
  /** Base64: the client keeps its private key; else one is generated. */
  readonly publicKey?: string;
  /** Any date Date.parse takes (2027-01-31, 2027-01-31T12:00:00Z). */
  readonly expires?: string;
  readonly now?: Date;
}

export function checkExpiry(text: string): string {
  const t = parseTime(text);
  if (t === undefined) throw new RegistryError('ERR_REGISTRY_INPUT', `--expires ${JSON.stringify(text)}: expected a date such as 2027-01-31 or 2027-01-31T12:00:00Z`);
  return t;
}

/** The registry as a new peer's client configuration needs it: the server's interface and settings. */
export type ServerData = Pick<RegistryData, 'config' | 'settings'>;

/**
 * Adds a peer to the registry (next free addresses, fresh keys unless given). Resolves
 * with the record and the server's data. A file registry that its scan reads (as Burrow
 * writes it) gets the peer appended without a read of every peer (FileRegistry.appendPeer):
 * add-peer on 10,000 peers; any other store or file takes the whole update.
 */
export async function addPeer(registry: PeerRegistry, input: AddPeerInput): Promise<{ record: PeerRecord; data: ServerData }> {
  const bad = checkPeerName(input.name);
  if (bad !== undefined) throw new RegistryError('ERR_REGISTRY_INPUT', bad);
  let publicKey: Uint8Array;
  let clientKey: string | undefined;
  if (input.publicKey !== undefined) {
    try {
      publicKey = parseKey(input.publicKey);
    } catch (e) {
      throw new RegistryError('ERR_REGISTRY_INPUT', `--public-key: ${(e as Error).message}`);
    }
  } else {
    const priv = generatePrivateKey(nodeDh);
    publicKey = publicKeyOf(priv, nodeDh);
    clientKey = encodeKey(priv);
    priv.fill(0);
  }
  const expires = input.expires === undefined ? undefined : checkExpiry(input.expires);
  const key = encodeKey(publicKey);
  /** The new record, checked against the registry's names and keys; `taken`: every peer's allowed IPs. */
  const make = (server: ServerData, nameTaken: boolean, keyOwner: string | undefined, taken: Iterable<IpPrefix>): PeerRecord => {
    if (server.settings.endpoint === undefined) {
      throw new RegistryError('ERR_REGISTRY_INPUT', 'the server has no endpoint for its clients: set endpoint=HOST:PORT on its "# burrow-server:" line (burrow server init --endpoint does)');
    }
    if (nameTaken) throw new RegistryError('ERR_REGISTRY_DUPLICATE', `a peer named '${input.name}' exists already`);
    if (keyOwner !== undefined) throw new RegistryError('ERR_REGISTRY_DUPLICATE', `the public key is already the peer '${keyOwner}''s`);
    if (sameKey(publicKeyOf(server.config.interface.privateKey, nodeDh), publicKey)) throw new RegistryError('ERR_REGISTRY_INPUT', "the public key is the server's own");
    return {
      name: input.name,
      created: (input.now ?? new Date()).toISOString(),
      enabled: true,
      ...(expires === undefined ? {} : { expires }),
      rx: 0,
      tx: 0,
      ...(clientKey === undefined ? {} : { clientKey }),
      peer: { publicKey, presharedKey: generatePresharedKey(), allowedIPs: allocateAmong(server.config, taken) },
    };
  };
  if (registry instanceof FileRegistry) {
    const appended = await registry.appendPeer((scan) => {
      const record = make(scan.head, scan.names.has(input.name), scan.keys.get(key), scan.allowedIPs);
      return { record, result: { record, data: scan.head } };
    });
    if (appended !== undefined) return appended;
  }
  return registry.update((data) => {
    const record = make(data, data.peers.some((p) => p.name === input.name), data.peers.find((p) => sameKey(p.peer.publicKey, publicKey))?.name, data.peers.flatMap((r) => r.peer.allowedIPs));
    const next = { ...data, peers: [...data.peers, record] };
    return { data: next, result: { record, data: next } };
  });
}

export type PeerChange = 'remove' | 'disable' | 'enable';

/**
 * Removes, disables or enables `name`, in the registry and (when the server runs) on
 * the device; the daemon keeps the counts of a peer that leaves its device. Returns what
 * changed, as a sentence.
 */
export async function changePeer(registry: PeerRegistry, ifname: string, name: string, change: PeerChange, opts: { expires?: string; now?: Date; overQuota?: string } = {}): Promise<string> {
  const expires = opts.expires === undefined ? undefined : checkExpiry(opts.expires);
  const now = opts.now ?? new Date();
  let after: (() => Promise<void>) | undefined;
  const message = await registry.update((data) => {
    const record = findPeer(data, name);
    after = undefined;
    if (change === 'remove') {
      after = () => unapplyPeer(ifname, record.peer);
      return { data: { ...data, peers: data.peers.filter((p) => p !== record) }, result: `removed '${name}'` };
    }
    if (change === 'disable') {
      if (!record.enabled) return { data, result: `'${name}' is disabled already` };
      const next = { ...record, enabled: false, ...(opts.overQuota === undefined ? {} : { overQuota: opts.overQuota }) };
      after = () => unapplyPeer(ifname, record.peer);
      return { data: { ...data, peers: data.peers.map((p) => (p === record ? next : p)) }, result: `disabled '${name}'` };
    }
    const until = expires ?? record.expires;
    if (until !== undefined && Date.parse(until) <= now.getTime()) {
      throw new RegistryError('ERR_REGISTRY_INPUT', `'${name}' expired on ${until}: enable it with a later date (--expires DATE)`);
    }
    if (record.enabled && expires === undefined) return { data, result: `'${name}' is enabled already` };
    const { overQuota: _cleared, ...rest } = record;
    const next: PeerRecord = { ...rest, enabled: true, ...(until === undefined ? {} : { expires: until }) };
    after = () => applyPeer(ifname, next.peer);
    return { data: { ...data, peers: data.peers.map((p) => (p === record ? next : p)) }, result: `enabled '${name}'${until === undefined ? '' : ` until ${until}`}` };
  });
  if (after === undefined || (await ifRunning(after))) return message;
  return `${message} (the server is not running: it takes effect at its next up)`;
}

export interface ClientConfigOptions {
  /** The client's AllowedIPs; default everything in the families the server has. */
  readonly allowedIPs?: readonly string[];
  readonly persistentKeepalive?: number;
}

/**
 * The client's tunnel for `record`. Its private key is the one the server generated, or
 * all zeros when the client keeps its own (`privateKeyKnown` false); the caller zeroes it.
 */
export function clientTunnel(data: ServerData, record: PeerRecord, opts: ClientConfigOptions = {}): { config: Config; privateKeyKnown: boolean } {
  const endpoint = data.settings.endpoint;
  if (endpoint === undefined) {
    throw new RegistryError('ERR_REGISTRY_INPUT', 'the server has no endpoint for its clients: set endpoint=HOST:PORT on its "# burrow-server:" line (burrow server init --endpoint does)');
  }
  const families = new Set(record.peer.allowedIPs.map((a) => a.family));
  const allowed = opts.allowedIPs ?? [...(families.has(4) ? ['0.0.0.0/0'] : []), ...(families.has(6) ? ['::/0'] : [])];
  const privateKey = record.clientKey === undefined ? new Uint8Array(32) : parseKey(record.clientKey);
  const config: Config = {
    interface: interfaceConfig({
      privateKey,
      addresses: record.peer.allowedIPs.map((a) => makePrefix(a.family, a.address, a.prefixLength)),
      dns: { servers: [...data.settings.dns], search: [] },
    }),
    peers: [
      {
        publicKey: publicKeyOf(data.config.interface.privateKey, nodeDh),
        ...(record.peer.presharedKey === undefined ? {} : { presharedKey: record.peer.presharedKey }),
        allowedIPs: allowed.map((a) => parsePrefix(a, { mask: true })),
        endpoint: parseEndpoint(endpoint),
        persistentKeepalive: opts.persistentKeepalive ?? 25,
      },
    ],
  };
  return { config, privateKeyKnown: record.clientKey !== undefined };
}

/** The client's wg-quick file for `record`, as `burrow up` and `wg-quick up` read it. */
export function clientConfig(data: ServerData, record: PeerRecord, opts: ClientConfigOptions = {}): string {
  const { config, privateKeyKnown } = clientTunnel(data, record, opts);
  let text = formatConfig(config, { publicKeyOf: (k) => nodeDh.publicKey(k) });
  config.interface.privateKey.fill(0);
  if (!privateKeyKnown) {
    text = text.replace(/^PrivateKey = .*$/m, `# PrivateKey = the private key of ${encodeKey(record.peer.publicKey)}, which stays on the client: put it here`);
  }
  return text;
}

export interface PeerStatus {
  readonly name: string;
  readonly publicKey: string;
  readonly addresses: string[];
  readonly enabled: boolean;
  readonly created: string;
  readonly expires: string | null;
  readonly endpoint: string | null;
  /** Unix seconds; null before any handshake in this run of the server. */
  readonly lastHandshake: number | null;
  /** Totals over the registry's life, the running server's latest counts included. */
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Bytes per calendar month (UTC), or null for none. */
  readonly quota: number | null;
  /** YYYY-MM when the peer is disabled for going over its quota that month, else null. */
  readonly overQuota: string | null;
}

/** Every peer with the running server's view of it (endpoint, handshake, transfer so far). */
export function peerStatus(data: RegistryData, live: UapiInterface | undefined, snapshot: CounterSnapshot): PeerStatus[] {
  const byKey = new Map<string, UapiPeer>((live?.peers ?? []).map((p) => [p.publicKey, p]));
  return data.peers.map((r) => {
    const key = encodeKey(r.peer.publicKey);
    const p = byKey.get(key);
    const d = p === undefined ? { rx: 0, tx: 0 } : since(p, snapshot.counted[key]);
    const u = snapshot.unsaved[r.name] ?? { rx: 0, tx: 0 };
    return {
      name: r.name,
      publicKey: key,
      addresses: r.peer.allowedIPs.map((a) => a.text),
      enabled: r.enabled,
      created: r.created,
      expires: r.expires ?? null,
      endpoint: p?.endpoint ?? null,
      lastHandshake: p === undefined || p.lastHandshake === 0 ? null : p.lastHandshake,
      rxBytes: r.rx + u.rx + d.rx,
      txBytes: r.tx + u.tx + d.tx,
      quota: r.quota ?? null,
      overQuota: r.overQuota ?? null,
    };
  });
}

const bytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
};

/** list-peers for a person: one block per peer. */
export function formatPeerStatus(list: readonly PeerStatus[], nowSeconds = Date.now() / 1000): string {
  if (list.length === 0) return 'no peers (add one with: burrow server add-peer NAME)\n';
  return list
    .map((s) => {
      const hs = s.lastHandshake === null ? 'never' : `${Math.max(0, Math.floor(nowSeconds - s.lastHandshake))} s ago`;
      return [
        `${s.name}: ${s.enabled ? 'enabled' : 'disabled'}${s.expires === null ? '' : `, expires ${s.expires}`}`,
        `  addresses: ${s.addresses.join(', ')}`,
        `  endpoint: ${s.endpoint ?? '(none)'}`,
        `  latest handshake: ${hs}`,
        `  transfer: ${bytes(s.rxBytes)} received, ${bytes(s.txBytes)} sent`,
        ...(s.quota === null ? [] : [`  quota: ${bytes(s.quota)} a month${s.overQuota === null ? '' : ` (went over it in ${s.overQuota}: disabled until the month ends or the quota is raised)`}`]),
      ].join('\n');
    })
    .join('\n\n')
    .concat('\n');
}
