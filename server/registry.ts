// The server's peer registry in its wg-quick file. The file stays a wg-quick file
// (`wg-quick up` on it works); Burrow's own data lives in comments it owns:
//
//   [Interface]
//   # burrow-server: endpoint=vpn.example.com:51820 uplink=eth0 client-to-client=false
//   PrivateKey = …
//   Address = 10.8.0.1/24, fd3c:1a2b:3c4d::1/64
//   ListenPort = 51820
//
//   [Peer]
//   # burrow: name=alice created=2026-12-02T19:00:00.000Z enabled=true rx=0 tx=0 client-key=…
//   PublicKey = …
//   PresharedKey = …
//   AllowedIPs = 10.8.0.2/32, fd3c:1a2b:3c4d::2/128
//
//   #~ [Peer]
//   #~ # burrow: name=bob created=… enabled=false expires=2027-01-01T00:00:00.000Z rx=… tx=…
//   #~ PublicKey = …
//
// A disabled peer is kept whole, each line behind "#~ ": wg-quick reads it as a comment
// and never loads it, Burrow reads it back unchanged, and its keys and addresses stay
// reserved (a disabled peer's address is never handed to another). A peer added by hand
// without a `# burrow:` line is adopted with a name made from its key.
//
// Fields of `# burrow:` (space-separated key=value, no spaces in values):
//   name     1-63 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit; unique
//   created  ISO 8601 time;  enabled  true|false;  expires  ISO 8601 time (optional)
//   rx, tx   bytes received from / sent to the peer over the registry's whole life
//   client-key  the client's private key, when the server generated it (client-config
//            prints it again); absent when the client gave only its public key
//   quota    bytes (received + sent) the peer may move per calendar month (UTC); optional
//   over-quota  YYYY-MM: the month in which the peer went over its quota and was disabled
//            for it; it is enabled again when that month ends or the quota is raised
// Fields of `# burrow-server:` (all optional): endpoint (host:port the clients dial),
// uplink (the interface NAT goes out of; detected at up when absent), client-to-client
// (true|false, default false), dns (comma-separated resolvers for client configs),
// admin (host:port of the admin page; off when absent), admin-tls-cert and admin-tls-key
// (PEM files: the admin page over HTTPS), admin-insecure (true: a non-loopback admin
// address without TLS is allowed).
//
// parseRegistry checks the whole file and names FILE:LINE and what was expected;
// formatRegistry writes a file that parseRegistry reads back to equal data.

import { encodeKey } from '../crypto/keys.js';
import { type Config, ConfigError, formatConfig, formatEndpoint, type IpPrefix, makePrefix, parseConfigLines, type PeerConfig } from '../src/config/index.js';
import { parseEndpoint } from '../src/config/endpoint.js';
import { parsePrefix } from '../src/config/ip.js';
import { parseKey } from '../src/config/values.js';
import { nodeDh } from '../src/runtime/node-crypto.js';

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    readonly code: 'ERR_REGISTRY_DAMAGED' | 'ERR_REGISTRY_INPUT' | 'ERR_REGISTRY_NO_PEER' | 'ERR_REGISTRY_DUPLICATE' | 'ERR_REGISTRY_FULL' | 'ERR_REGISTRY_BUSY' | 'ERR_REGISTRY_UNREACHABLE',
    message: string,
  ) {
    super(message);
  }
}

export interface ServerSettings {
  /** host:port the clients dial, for their configurations. */
  readonly endpoint?: string;
  /** The interface NAT goes out of; detected at up when absent. */
  readonly uplink?: string;
  readonly clientToClient: boolean;
  /** Resolvers written into client configurations. */
  readonly dns: readonly string[];
  /** host:port of the admin page and API (server/admin/); off when absent. */
  readonly admin?: string;
  /** PEM certificate and key files: the admin page is served over HTTPS. */
  readonly adminTlsCert?: string;
  readonly adminTlsKey?: string;
  /** A non-loopback admin address without TLS is allowed. */
  readonly adminInsecure?: boolean;
}

export interface PeerRecord {
  readonly name: string;
  /** ISO 8601. */
  readonly created: string;
  readonly enabled: boolean;
  /** ISO 8601; the peer is disabled once this has passed. */
  readonly expires?: string;
  /** Bytes received from the peer, over the registry's life. */
  readonly rx: number;
  /** Bytes sent to the peer, over the registry's life. */
  readonly tx: number;
  /** Base64; present when the server generated the client's keys. */
  readonly clientKey?: string;
  /** Bytes (received + sent) per calendar month (UTC). */
  readonly quota?: number;
  /** YYYY-MM: disabled for going over its quota in that month. */
  readonly overQuota?: string;
  readonly peer: PeerConfig;
}

export interface RegistryData {
  /** The [Interface] section; `peers` is empty here (see `peers`). */
  readonly config: Config;
  readonly settings: ServerSettings;
  readonly peers: readonly PeerRecord[];
}

const DISABLED = '#~';
/** node:crypto's X25519 for the own-key checks (the portable one builds tables on first use). */
const nodePublicKey = (privateKey: Uint8Array): Uint8Array => nodeDh.publicKey(privateKey);
const PEER_META = /^#\s*burrow:(.*)$/;
const SERVER_META = /^#\s*burrow-server:(.*)$/;
export const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$/;
const PEER_FIELDS = new Set(['name', 'created', 'enabled', 'expires', 'rx', 'tx', 'client-key', 'quota', 'over-quota']);
const SERVER_FIELDS = new Set(['endpoint', 'uplink', 'client-to-client', 'dns', 'admin', 'admin-tls-cert', 'admin-tls-key', 'admin-insecure']);
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

export function checkPeerName(name: string): string | undefined {
  return PEER_NAME.test(name) ? undefined : `a peer name is 1 to 63 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit; got ${JSON.stringify(name)}`;
}

const ISO_CANONICAL = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d{3}Z$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * True when `text` is already what toISOString() writes for its time: the registry's own
 * spelling, checked by its fields (a month's last day, no hour 24) instead of a round
 * trip through Date, which costs several microseconds a peer.
 */
function isCanonicalTime(text: string): boolean {
  const m = ISO_CANONICAL.exec(text);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!);
}

/** An ISO 8601 time, or undefined when `text` is not one. */
export function parseTime(text: string): string | undefined {
  if (isCanonicalTime(text)) return text;
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

function fields(text: string, allowed: Set<string>, where: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const word of text.trim().split(/\s+/).filter((w) => w !== '')) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: expected key=value, got ${JSON.stringify(word.slice(0, 40))}`);
    const key = word.slice(0, eq);
    if (!allowed.has(key)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: unknown field ${JSON.stringify(key.slice(0, 40))} (expected one of ${[...allowed].join(', ')})`);
    if (out.has(key)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: field ${key} given twice`);
    out.set(key, word.slice(eq + 1));
  }
  return out;
}

function adoptedName(peer: PeerConfig): string {
  return `peer-${encodeKey(peer.publicKey).replace(/[^A-Za-z0-9]/g, '').slice(0, 8)}`;
}

interface Block {
  headerLine: number;
  disabled: boolean;
  meta?: { line: number; text: string };
}

/** Reads a registry; throws RegistryError naming FILE:LINE and what was expected. */
export function parseRegistry(text: string, path: string): RegistryData {
  // One pass over the lines: wg-quick's view of the file is the same lines with the
  // disabled peers' "#~ " taken off, parsed as any wg-quick file is.
  const view = text.split('\n');
  const disabled = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i++) {
    const line = view[i]!;
    if (!line.startsWith(DISABLED)) continue;
    disabled[i] = 1;
    view[i] = line.charCodeAt(DISABLED.length) === 32 ? line.slice(DISABLED.length + 1) : line.slice(DISABLED.length);
  }
  let config: Config;
  try {
    config = parseConfigLines(view, path, { publicKeyOf: nodePublicKey });
  } catch (e) {
    if (e instanceof ConfigError) throw new RegistryError('ERR_REGISTRY_DAMAGED', e.message);
    throw e;
  }
  const at = (i: number) => `${path}:${i + 1}`;
  const blocks: Block[] = [];
  let section: 'none' | 'interface' | 'peer' = 'none';
  let block: Block | undefined;
  let serverMeta: { line: number; text: string } | undefined;
  for (let i = 0; i < view.length; i++) {
    const line = view[i]!.trim();
    if (line === '') continue;
    const off = disabled[i] === 1;
    const first = line.charCodeAt(0);
    if (first === 91 /* [ */) {
      const header = /^\[(interface|peer)\]/i.exec(line);
      if (header !== null) {
        section = header[1]!.toLowerCase() as 'interface' | 'peer';
        if (section === 'peer') blocks.push((block = { headerLine: i, disabled: off }));
        else if (off) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: the [Interface] section cannot be disabled: remove the "#~"`);
        else block = undefined;
        continue;
      }
    }
    if (first !== 35 /* # */) {
      if (block !== undefined && off !== block.disabled) {
        throw new RegistryError(
          'ERR_REGISTRY_DAMAGED',
          block.disabled
            ? `${at(i)}: expected "#~ " before this line, as before every line of the disabled peer whose [Peer] is at line ${block.headerLine + 1}`
            : `${at(i)}: a line behind "#~ " in an enabled peer (its [Peer] at line ${block.headerLine + 1} has none)`,
        );
      }
      if (block === undefined && off) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: "#~ " is only for the lines of a disabled [Peer]`);
      continue;
    }
    const peerMeta = PEER_META.exec(line);
    if (peerMeta !== null) {
      if (block === undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: a "# burrow:" line belongs right after a [Peer] header`);
      if (off !== block.disabled) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: this "# burrow:" line and its [Peer] (line ${block.headerLine + 1}) differ in "#~ "`);
      if (block.meta !== undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: a second "# burrow:" line for the [Peer] at line ${block.headerLine + 1} (the first is at line ${block.meta.line + 1})`);
      block.meta = { line: i, text: peerMeta[1]! };
      continue;
    }
    const server = SERVER_META.exec(line);
    if (server !== null) {
      if (section !== 'interface') throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: a "# burrow-server:" line belongs in the [Interface] section`);
      if (serverMeta !== undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${at(i)}: a second "# burrow-server:" line (the first is at line ${serverMeta.line + 1})`);
      serverMeta = { line: i, text: server[1]! };
    }
  }
  if (blocks.length !== config.peers.length) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${path}: ${blocks.length} [Peer] headers but ${config.peers.length} peers read`);

  const settings = parseSettings(serverMeta === undefined ? new Map() : fields(serverMeta.text, SERVER_FIELDS, at(serverMeta.line)), serverMeta === undefined ? path : at(serverMeta.line));
  const names = new Map<string, number>();
  const peers = blocks.map((block, n): PeerRecord => {
    const peer = config.peers[n]!;
    const where = at(block.meta?.line ?? block.headerLine);
    const f = block.meta === undefined ? new Map<string, string>() : fields(block.meta.text, PEER_FIELDS, where);
    const name = f.get('name') ?? adoptedName(peer);
    const bad = checkPeerName(name);
    if (bad !== undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: name: ${bad}`);
    const first = names.get(name);
    if (first !== undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: the name ${name} is taken by the [Peer] at line ${first + 1}`);
    names.set(name, block.headerLine);
    const time = (key: string): string | undefined => {
      const v = f.get(key);
      if (v === undefined) return undefined;
      const t = parseTime(v);
      if (t === undefined) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: ${key}: expected an ISO 8601 time such as 2027-01-31T00:00:00Z, got ${JSON.stringify(v.slice(0, 40))}`);
      return t;
    };
    const count = (key: string): number => {
      const v = f.get(key) ?? '0';
      if (!/^\d{1,16}$/.test(v)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: ${key}: expected a count of bytes, got ${JSON.stringify(v.slice(0, 40))}`);
      return Number(v);
    };
    const enabledText = f.get('enabled') ?? String(!block.disabled);
    if (enabledText !== 'true' && enabledText !== 'false') throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: enabled: expected true or false`);
    if ((enabledText === 'true') === block.disabled) {
      throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: enabled=${enabledText}, but the peer is ${block.disabled ? 'behind "#~ " (disabled)' : 'not behind "#~ " (enabled)'}`);
    }
    const clientKey = f.get('client-key');
    if (clientKey !== undefined) {
      try {
        parseKey(clientKey);
      } catch {
        throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: client-key: expected a base64 key of 32 bytes`);
      }
    }
    const expires = time('expires');
    const quota = f.has('quota') ? count('quota') : undefined;
    const overQuota = f.get('over-quota');
    if (overQuota !== undefined && !MONTH.test(overQuota)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: over-quota: expected a month such as 2027-01, got ${JSON.stringify(overQuota.slice(0, 40))}`);
    if (overQuota !== undefined && enabledText === 'true') throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: over-quota=${overQuota} on an enabled peer (a peer over its quota is disabled)`);
    return {
      name,
      created: time('created') ?? new Date(0).toISOString(),
      enabled: enabledText === 'true',
      ...(expires === undefined ? {} : { expires }),
      rx: count('rx'),
      tx: count('tx'),
      ...(clientKey === undefined ? {} : { clientKey }),
      ...(quota === undefined ? {} : { quota }),
      ...(overQuota === undefined ? {} : { overQuota }),
      peer,
    };
  });
  return { config: { interface: config.interface, peers: [] }, settings, peers };
}

function parseSettings(f: Map<string, string>, where: string): ServerSettings {
  const endpoint = f.get('endpoint');
  if (endpoint !== undefined) {
    try {
      parseEndpoint(endpoint);
    } catch (e) {
      throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: endpoint: ${(e as Error).message}`);
    }
  }
  const c2c = f.get('client-to-client') ?? 'false';
  if (c2c !== 'true' && c2c !== 'false') throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: client-to-client: expected true or false`);
  const uplink = f.get('uplink');
  if (uplink !== undefined && !/^[A-Za-z0-9_=+.][A-Za-z0-9_=+.-]{0,14}$/.test(uplink)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: uplink: expected an interface name`);
  const dns = (f.get('dns') ?? '').split(',').filter((s) => s !== '');
  const admin = f.get('admin');
  if (admin !== undefined) {
    try {
      parseEndpoint(admin);
    } catch (e) {
      throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: admin: expected HOST:PORT such as 127.0.0.1:51821: ${(e as Error).message}`);
    }
  }
  const insecure = f.get('admin-insecure') ?? 'false';
  if (insecure !== 'true' && insecure !== 'false') throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: admin-insecure: expected true or false`);
  const cert = f.get('admin-tls-cert');
  const key = f.get('admin-tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: admin-tls-cert and admin-tls-key go together`);
  return {
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(uplink === undefined ? {} : { uplink }),
    clientToClient: c2c === 'true',
    dns,
    ...(admin === undefined ? {} : { admin }),
    ...(cert === undefined ? {} : { adminTlsCert: cert }),
    ...(key === undefined ? {} : { adminTlsKey: key }),
    ...(insecure === 'true' ? { adminInsecure: true } : {}),
  };
}

export function settingsLine(s: ServerSettings): string {
  const parts = [
    ...(s.endpoint === undefined ? [] : [`endpoint=${s.endpoint}`]),
    ...(s.uplink === undefined ? [] : [`uplink=${s.uplink}`]),
    `client-to-client=${s.clientToClient}`,
    ...(s.dns.length === 0 ? [] : [`dns=${s.dns.join(',')}`]),
    ...(s.admin === undefined ? [] : [`admin=${s.admin}`]),
    ...(s.adminTlsCert === undefined ? [] : [`admin-tls-cert=${s.adminTlsCert}`]),
    ...(s.adminTlsKey === undefined ? [] : [`admin-tls-key=${s.adminTlsKey}`]),
    ...(s.adminInsecure === true ? ['admin-insecure=true'] : []),
  ];
  return `# burrow-server: ${parts.join(' ')}`;
}

function peerLines(r: PeerRecord): string[] {
  const meta = [
    `name=${r.name}`,
    `created=${r.created}`,
    `enabled=${r.enabled}`,
    ...(r.expires === undefined ? [] : [`expires=${r.expires}`]),
    `rx=${r.rx}`,
    `tx=${r.tx}`,
    ...(r.clientKey === undefined ? [] : [`client-key=${r.clientKey}`]),
    ...(r.quota === undefined ? [] : [`quota=${r.quota}`]),
    ...(r.overQuota === undefined ? [] : [`over-quota=${r.overQuota}`]),
  ];
  const p = r.peer;
  const out = ['[Peer]', `# burrow: ${meta.join(' ')}`, `PublicKey = ${encodeKey(p.publicKey)}`];
  if (p.presharedKey !== undefined) out.push(`PresharedKey = ${encodeKey(p.presharedKey)}`);
  // An IpPrefix's text is the canonical form of its address and length (ip.ts): no need to format it again.
  if (p.allowedIPs.length > 0) out.push(`AllowedIPs = ${p.allowedIPs.map((a) => a.text).join(', ')}`);
  if (p.endpoint !== undefined) out.push(`Endpoint = ${formatEndpoint(p.endpoint)}`);
  if (p.persistentKeepalive !== undefined) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  return r.enabled ? out : out.map((l) => `${DISABLED} ${l}`);
}

/**
 * The registry as its file's text. Throws (nothing is written) when the data would not
 * read back: the text is checked as a read checks it.
 *
 * `read`, when given, is the data as parsed from the file this text replaces. Whatever
 * `data` took from it unchanged (the same record objects, the same interface and
 * settings) was checked by that read; then only the rest is read back (each new or
 * changed peer with the [Interface], in a file of its own) and the checks that span peers
 * (names, public keys, allowed IPs) run on the data, so one more peer costs one peer's
 * parse, not the whole file's. Anything found wrong is reported by a full read of the text,
 * with its FILE:LINE.
 */
export function formatRegistry(data: RegistryData, path = '(registry)', read?: RegistryData): string {
  for (const r of data.peers) {
    const bad = checkPeerName(r.name);
    if (bad !== undefined) throw new RegistryError('ERR_REGISTRY_INPUT', `name: ${bad}`);
  }
  const head = formatConfig({ interface: data.config.interface, peers: [] }, { publicKeyOf: nodePublicKey }).trimEnd().split('\n');
  const settings = settingsLine(data.settings);
  const out = [head[0]!, ...(settings === undefined ? [] : [settings]), ...head.slice(1)];
  const headText = `${out.join('\n')}\n`;
  for (const r of data.peers) out.push('', ...peerLines(r));
  const text = `${out.join('\n')}\n`;
  // The same checks as a read: a write never makes a file `up` refuses.
  if (read === undefined || data.config !== read.config || data.settings !== read.settings || !readsBack(data, read, headText, path)) parseRegistry(text, path);
  return text;
}

/**
 * True when `data` reads back, checking only what differs from `read` (see
 * formatRegistry); false when something is wrong (the caller reads the whole text to
 * say what, and where).
 */
function readsBack(data: RegistryData, read: RegistryData, headText: string, path: string): boolean {
  const known = new Set(read.peers);
  const names = new Set<string>();
  const keys = new Set<string>();
  const owners = new Map<string, PeerRecord>();
  for (const r of data.peers) {
    let checked = r;
    if (!known.has(r)) {
      try {
        const alone = parseRegistry(`${headText}\n${peerLines(r).join('\n')}\n`, path).peers;
        if (alone.length !== 1) return false;
        checked = alone[0]!;
      } catch (e) {
        if (e instanceof RegistryError) return false;
        throw e;
      }
    }
    if (names.has(checked.name)) return false;
    names.add(checked.name);
    const key = encodeKey(checked.peer.publicKey);
    if (keys.has(key)) return false;
    keys.add(key);
    for (const a of checked.peer.allowedIPs) {
      const owner = owners.get(a.text);
      if (owner !== undefined && owner !== checked) return false;
      owners.set(a.text, checked);
    }
  }
  return true;
}

/**
 * What add-peer needs of a registry, read without parsing every peer: the head (the
 * lines before the first [Peer]) parsed and checked as a read checks it, and each peer's
 * name, public key and allowed IPs taken from its lines.
 */
export interface RegistryScan {
  /** The head as a registry: the [Interface] and the settings; `peers` is empty. */
  readonly head: RegistryData;
  readonly headText: string;
  readonly names: ReadonlySet<string>;
  /** Public keys, base64 as written (the canonical form: the scan takes no other). */
  readonly keys: ReadonlyMap<string, string>;
  /** Every peer's allowed IPs, enabled or disabled (their addresses stay reserved). */
  readonly allowedIPs: readonly IpPrefix[];
}

const KEY = '[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=';
const SCAN_META = new RegExp(
  `^# burrow: name=(\\S+) created=(\\S+) enabled=(true|false)(?: expires=(\\S+))? rx=\\d{1,16} tx=\\d{1,16}(?: client-key=${KEY})?(?: quota=\\d{1,16})?(?: over-quota=(\\d{4}-(?:0[1-9]|1[0-2])))?$`,
);
const SCAN_LINE = new RegExp(`^(?:PublicKey = (${KEY})|PresharedKey = ${KEY}|AllowedIPs = (.+)|Endpoint = (\\S+)|PersistentKeepalive = (\\d{1,5}))$`);

/**
 * Scans a registry for add-peer (10,000 peers in a few tens of ms, against a full
 * read's few hundred). Each peer's lines must be as formatRegistry writes them, and
 * names, keys and addresses distinct: for anything else (a hand edit, a damaged line, a
 * duplicate) it returns undefined and the caller reads the file whole, which accepts or
 * names the fault with its FILE:LINE. A file the scan accepts is one parseRegistry
 * accepts, with these names, keys and allowed IPs. Throws RegistryError for a damaged
 * head, as a read does.
 */
export function scanRegistry(text: string, path: string): RegistryScan | undefined {
  const lines = text.split('\n');
  let first = lines.findIndex((l) => l === '[Peer]' || l === `${DISABLED} [Peer]`);
  if (first < 0) first = lines.length;
  for (let i = 1; i < first; i++) if (/^\s*(#~\s*)?\[/.test(lines[i]!)) return undefined; // another section: read whole
  const headText = `${lines.slice(0, first).join('\n')}\n`;
  const head = parseRegistry(headText, path);
  const own = encodeKey(nodePublicKey(head.config.interface.privateKey));
  const names = new Set<string>();
  const keys = new Map<string, string>();
  const taken = new Set<string>();
  const allowedIPs: IpPrefix[] = [];
  let peer: { off: boolean; name?: string; key?: string; psk: boolean; ips: boolean; endpoint: boolean; keepalive: boolean } | undefined;
  const close = (): boolean => {
    if (peer === undefined) return true;
    if (peer.key === undefined || peer.key === own || keys.has(peer.key)) return false;
    const name = peer.name ?? `peer-${peer.key.replace(/[^A-Za-z0-9]/g, '').slice(0, 8)}`;
    if (names.has(name)) return false;
    names.add(name);
    keys.set(peer.key, name);
    return true;
  };
  for (let i = first; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw === '') continue;
    const off = raw.startsWith(`${DISABLED} `);
    const line = off ? raw.slice(DISABLED.length + 1) : raw;
    if (line === '[Peer]') {
      if (!close()) return undefined;
      peer = { off, psk: false, ips: false, endpoint: false, keepalive: false };
      continue;
    }
    if (peer === undefined || off !== peer.off) return undefined;
    const meta = SCAN_META.exec(line);
    if (meta !== null) {
      const [, name, created, enabled, expires, overQuota] = meta;
      if (peer.name !== undefined || checkPeerName(name!) !== undefined || !isCanonicalTime(created!) || (expires !== undefined && !isCanonicalTime(expires))) return undefined;
      if ((enabled === 'true') === off || (overQuota !== undefined && enabled === 'true')) return undefined;
      peer.name = name!;
      continue;
    }
    const m = SCAN_LINE.exec(line);
    if (m === null) return undefined;
    const [, key, ips, endpoint, keepalive] = m;
    if (key !== undefined) {
      if (peer.key !== undefined) return undefined;
      peer.key = key;
    } else if (ips !== undefined) {
      if (peer.ips) return undefined;
      peer.ips = true;
      for (const item of ips.split(', ')) {
        let prefix: IpPrefix;
        try {
          prefix = parsePrefix(item, { mask: true });
        } catch {
          return undefined;
        }
        if (prefix.text !== item || taken.has(item)) return undefined;
        taken.add(item);
        allowedIPs.push(prefix);
      }
    } else if (endpoint !== undefined) {
      if (peer.endpoint) return undefined;
      peer.endpoint = true;
      try {
        parseEndpoint(endpoint, { names: true });
      } catch {
        return undefined;
      }
    } else if (keepalive !== undefined) {
      if (peer.keepalive || Number(keepalive) > 65535 || String(Number(keepalive)) !== keepalive) return undefined;
      peer.keepalive = true;
    } else {
      if (peer.psk) return undefined;
      peer.psk = true;
    }
  }
  if (!close()) return undefined;
  return { head, headText, names, keys, allowedIPs };
}

/**
 * The registry's text with `record` appended (add-peer's write: the file as it was, and
 * the new peer's section after it). Throws, with nothing written, unless the new section
 * reads back as `record` with the scanned head and its name, key and addresses are not
 * the scanned peers'.
 */
export function appendPeerText(text: string, scan: RegistryScan, record: PeerRecord, path: string): string {
  const section = `${peerLines(record).join('\n')}\n`;
  const alone = parseRegistry(`${scan.headText}\n${section}`, path).peers;
  const key = encodeKey(record.peer.publicKey);
  if (alone.length !== 1 || alone[0]!.name !== record.name || scan.names.has(record.name) || scan.keys.has(key)) {
    throw new RegistryError('ERR_REGISTRY_DUPLICATE', `${path}: the new peer '${record.name}' is not distinct from the registry's peers`);
  }
  const taken = new Set(scan.allowedIPs.map((a) => a.text));
  for (const a of record.peer.allowedIPs) if (taken.has(a.text)) throw new RegistryError('ERR_REGISTRY_DUPLICATE', `${path}: ${a.text} is allowed to another peer`);
  return `${text}${text.endsWith('\n') ? '' : '\n'}\n${section}`;
}

/** The Config a session runs: the interface and the enabled peers. */
export function sessionConfig(data: RegistryData): Config {
  return { interface: data.config.interface, peers: data.peers.filter((r) => r.enabled).map((r) => r.peer) };
}

/** The tunnel's subnets: the networks of the interface's addresses. */
export function tunnelSubnets(config: Config): IpPrefix[] {
  return config.interface.addresses.map((a) => {
    const bytes = Uint8Array.from(a.address);
    for (let bit = a.prefixLength; bit < bytes.length * 8; bit++) bytes[bit >>> 3]! &= ~(0x80 >>> bit % 8);
    return makePrefix(a.family, bytes, a.prefixLength);
  });
}

export function findPeer(data: RegistryData, name: string): PeerRecord {
  const r = data.peers.find((p) => p.name === name);
  if (r === undefined) throw new RegistryError('ERR_REGISTRY_NO_PEER', `no peer named '${name}'`);
  return r;
}
