// RegistryData <-> the rows of server/pg/schema.ts. Pure: no database here.
//
// The server row keeps the [Interface] as its private key, addresses and listen port in
// columns of their own and every other wg-quick line of it (MTU, FwMark, PostUp …) as
// text; it is read back through parseRegistry, so a registry from the database is
// checked exactly as one from a file is. Peers are built straight from their columns
// (10,000 of them must read in well under a second), each value checked as it is parsed.

import { encodeKey } from '../../crypto/keys.js';
import { ConfigError, formatConfig, formatEndpoint, parseEndpoint, parsePrefix, type PeerConfig } from '../../src/config/index.js';
import { parseKey } from '../../src/config/values.js';
import { nodeDh } from '../../src/runtime/node-crypto.js';
import { type PeerRecord, parseRegistry, parseTime, type RegistryData, RegistryError, settingsLine } from '../registry.js';

export interface ServerRow {
  readonly private_key: string;
  readonly addresses: string[];
  readonly listen_port: number | null;
  readonly interface_extra: string;
  readonly endpoint: string | null;
  readonly uplink: string | null;
  readonly client_to_client: boolean;
  readonly dns: string[];
  readonly admin: string | null;
  readonly admin_tls_cert: string | null;
  readonly admin_tls_key: string | null;
  readonly admin_insecure: boolean;
}

export const SERVER_COLUMNS: readonly (keyof ServerRow)[] = [
  'private_key', 'addresses', 'listen_port', 'interface_extra', 'endpoint', 'uplink', 'client_to_client', 'dns', 'admin', 'admin_tls_cert', 'admin_tls_key', 'admin_insecure',
];

export interface PeerRow {
  readonly name: string;
  readonly public_key: string;
  readonly preshared_key: string | null;
  readonly client_key: string | null;
  /** ISO 8601 going in; a Date coming out of pg. */
  readonly created: string | Date;
  readonly enabled: boolean;
  readonly expires: string | Date | null;
  /** bigint: pg returns it as text. */
  readonly quota: string | number | null;
  readonly over_quota: string | null;
  readonly endpoint: string | null;
  readonly persistent_keepalive: number | null;
}

/** Every column of PeerRow, in one order for the batched statements. */
export const PEER_COLUMNS: readonly (keyof PeerRow)[] = ['name', 'public_key', 'preshared_key', 'client_key', 'created', 'enabled', 'expires', 'quota', 'over_quota', 'endpoint', 'persistent_keepalive'];
/** Their SQL types, for unnest($n::TYPE[]). */
export const PEER_TYPES: Readonly<Record<keyof PeerRow, string>> = {
  name: 'text', public_key: 'text', preshared_key: 'text', client_key: 'text', created: 'timestamptz', enabled: 'boolean', expires: 'timestamptz', quota: 'bigint', over_quota: 'text', endpoint: 'text', persistent_keepalive: 'integer',
};

const publicKeyOf = (k: Uint8Array): Uint8Array => nodeDh.publicKey(k);

/** The server row for `data`'s [Interface] and settings. */
export function serverRow(data: Pick<RegistryData, 'config' | 'settings'>): ServerRow {
  const lines = formatConfig({ interface: data.config.interface, peers: [] }, { publicKeyOf }).trimEnd().split('\n').slice(1);
  let privateKey = '';
  let addresses: string[] = [];
  let listenPort: number | null = null;
  const extra: string[] = [];
  for (const line of lines) {
    const eq = line.indexOf(' = ');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 3);
    if (key === 'PrivateKey') privateKey = value;
    else if (key === 'Address') addresses = value.split(', ');
    else if (key === 'ListenPort') listenPort = Number(value);
    else extra.push(line);
  }
  const s = data.settings;
  return {
    private_key: privateKey,
    addresses,
    listen_port: listenPort,
    interface_extra: extra.join('\n'),
    endpoint: s.endpoint ?? null,
    uplink: s.uplink ?? null,
    client_to_client: s.clientToClient,
    dns: [...s.dns],
    admin: s.admin ?? null,
    admin_tls_cert: s.adminTlsCert ?? null,
    admin_tls_key: s.adminTlsKey ?? null,
    admin_insecure: s.adminInsecure === true,
  };
}

/** The [Interface] and settings of a server row, checked as a file's are. */
export function serverFromRow(row: ServerRow, location: string): Pick<RegistryData, 'config' | 'settings'> {
  const settings = settingsLine({
    ...(row.endpoint === null ? {} : { endpoint: row.endpoint }),
    ...(row.uplink === null ? {} : { uplink: row.uplink }),
    clientToClient: row.client_to_client,
    dns: row.dns,
    ...(row.admin === null ? {} : { admin: row.admin }),
    ...(row.admin_tls_cert === null ? {} : { adminTlsCert: row.admin_tls_cert }),
    ...(row.admin_tls_key === null ? {} : { adminTlsKey: row.admin_tls_key }),
    ...(row.admin_insecure ? { adminInsecure: true } : {}),
  });
  const text = [
    '[Interface]',
    settings,
    `PrivateKey = ${row.private_key}`,
    ...(row.addresses.length === 0 ? [] : [`Address = ${row.addresses.join(', ')}`]),
    ...(row.listen_port === null ? [] : [`ListenPort = ${row.listen_port}`]),
    ...(row.interface_extra === '' ? [] : [row.interface_extra]),
    '',
  ].join('\n');
  // Line numbers of a text nobody wrote would mislead: name the table instead.
  try {
    const { config, settings: s } = parseRegistry(text, 'burrow_server');
    return { config, settings: s };
  } catch (e) {
    if (e instanceof RegistryError) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${location}: the server row: ${e.message.replace(/^burrow_server(:\d+)?: /, '')}`);
    throw e;
  }
}

const iso = (v: string | Date): string => (typeof v === 'string' ? new Date(v).toISOString() : v.toISOString());

export function peerRow(r: PeerRecord): PeerRow {
  const p = r.peer;
  return {
    name: r.name,
    public_key: encodeKey(p.publicKey),
    preshared_key: p.presharedKey === undefined ? null : encodeKey(p.presharedKey),
    client_key: r.clientKey ?? null,
    created: r.created,
    enabled: r.enabled,
    expires: r.expires ?? null,
    quota: r.quota ?? null,
    over_quota: r.overQuota ?? null,
    endpoint: p.endpoint === undefined ? null : formatEndpoint(p.endpoint),
    persistent_keepalive: p.persistentKeepalive ?? null,
  };
}

/** The addresses of a peer, as stored (canonical prefixes, host bits cleared). */
export const addressTexts = (r: PeerRecord): string[] => r.peer.allowedIPs.map((a) => a.text);

/** True when two rows store the same peer (created and expires compared as times). */
export function samePeerRow(a: PeerRow, b: PeerRow): boolean {
  for (const c of PEER_COLUMNS) {
    const x = a[c];
    const y = b[c];
    if (x === y) continue;
    if (x === null || y === null) return false;
    if (c === 'created' || c === 'expires') {
      if (iso(x as string | Date) !== iso(y as string | Date)) return false;
    } else if (String(x) !== String(y)) return false;
  }
  return true;
}

/** The SELECT list of PeerRow: times as toISOString() writes them (no Date made per peer). */
export const PEER_SELECT = PEER_COLUMNS.map((c) => (c === 'created' || c === 'expires' ? `to_char(${c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${c}` : c)).join(', ');

function damaged(location: string, row: PeerRow, what: string, e: unknown): RegistryError {
  const detail = e instanceof ConfigError ? e.message : (e as Error).message;
  return new RegistryError('ERR_REGISTRY_DAMAGED', `${location}: peer ${JSON.stringify(row.name)}: ${what}: ${detail}`);
}

function field<T>(location: string, row: PeerRow, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw damaged(location, row, what, e);
  }
}

/** What the PeerConfig of a row is made from: equal texts give equal configs. */
export const peerConfigSource = (row: PeerRow, addresses: readonly string[]): string =>
  `${row.public_key} ${row.preshared_key} ${addresses.join(',')} ${row.endpoint} ${row.persistent_keepalive}`;

/** The wg-quick side of a peer (keys, AllowedIPs, endpoint), each value checked as it is parsed. */
export function peerConfigFromRow(row: PeerRow, addresses: readonly string[], location: string): PeerConfig {
  return {
    publicKey: field(location, row, 'public_key', () => parseKey(row.public_key)),
    ...(row.preshared_key === null ? {} : { presharedKey: field(location, row, 'preshared_key', () => parseKey(row.preshared_key!)) }),
    allowedIPs: addresses.map((a) => field(location, row, 'address', () => parsePrefix(a, { mask: true }))),
    ...(row.endpoint === null ? {} : { endpoint: field(location, row, 'endpoint', () => parseEndpoint(row.endpoint!)) }),
    ...(row.persistent_keepalive === null ? {} : { persistentKeepalive: row.persistent_keepalive }),
  };
}

function time(location: string, row: PeerRow, what: string, v: string | Date): string {
  if (typeof v !== 'string') return v.toISOString();
  const t = parseTime(v);
  if (t === undefined) throw damaged(location, row, what, new Error(`expected an ISO 8601 time, got ${JSON.stringify(v.slice(0, 40))}`));
  return t;
}

/** A peer from its row, its PeerConfig (peerConfigFromRow) and its summed transfer. */
export function peerFromRow(row: PeerRow, peer: PeerConfig, rx: number, tx: number, location: string): PeerRecord {
  // Checked only: the key itself stays text, as the file keeps it.
  if (row.client_key !== null) field(location, row, 'client_key', () => parseKey(row.client_key!).fill(0));
  return {
    name: row.name,
    created: time(location, row, 'created', row.created),
    enabled: row.enabled,
    ...(row.expires === null ? {} : { expires: time(location, row, 'expires', row.expires) }),
    rx,
    tx,
    ...(row.client_key === null ? {} : { clientKey: row.client_key }),
    ...(row.quota === null ? {} : { quota: Number(row.quota) }),
    ...(row.over_quota === null ? {} : { overQuota: row.over_quota }),
    peer,
  };
}
