// wg-quick configuration text -> Config.
//
// The file is read as wg-quick reads it (wg-quick(8) parse_options, and `wg setconf`
// for the keys it passes on):
//   - a line is cut at its first "#", then trimmed; blank lines are skipped;
//   - "[Interface]" and "[Peer]" open sections, matched without regard to case; so does
//     Burrow's "[App]" (per-app routing: Name, Domains, CGroup, UID; docs/per-app.md);
//   - "Key = value": the key is what comes before the first "=", the value what comes
//     after it (so a base64 key's trailing "=" stays in the value); keys are matched
//     without regard to case and reported in wg-quick's spelling;
//   - Address, DNS, AllowedIPs, the Pre/Post hooks, Burrow's domain lists and an [App]'s
//     Domains, CGroup and UID may be
//     repeated and accumulate in order; any other key given twice in one section is an
//     error (wg would silently keep the last one).
// It is stricter than wg-quick wherever wg-quick would fail later, or silently do
// something else than the file says: see the ConfigErrorCode list in errors.ts.

import { ConfigError, type ConfigErrorCode, quote } from './errors.js';
import type { IpPrefix } from './ip.js';
import { parseEndpoint } from './endpoint.js';
import type { AppConfig, Config, Endpoint, InterfaceConfig, PeerConfig, RoutingTable } from './types.js';
import {
  checkHook,
  MTU_MIN_IPV6,
  parseAppName,
  parseBoolean,
  parseCGroup,
  parseDns,
  parseDomainList,
  parseFwMark,
  parseKeepalive,
  parseKey,
  parseMtu,
  parsePort,
  parsePrefixList,
  parseTable,
  parseUid,
  trimAscii,
  ValueError,
} from './values.js';
import { encodeKey, publicKeyOf } from '../../crypto/keys.js';

type Section = 'interface' | 'peer' | 'app';

/** `repeat`: the key may appear several times in one section, its values accumulating. */
interface KeySpec {
  readonly name: string;
  readonly section: Section;
  readonly repeat: boolean;
}

const KEYS: ReadonlyMap<string, KeySpec> = new Map(
  (
    [
      ['PrivateKey', 'interface', false],
      ['ListenPort', 'interface', false],
      ['FwMark', 'interface', false],
      ['Address', 'interface', true],
      ['DNS', 'interface', true],
      ['MTU', 'interface', false],
      ['Table', 'interface', false],
      ['PreUp', 'interface', true],
      ['PostUp', 'interface', true],
      ['PreDown', 'interface', true],
      ['PostDown', 'interface', true],
      ['SaveConfig', 'interface', false],
      ['IncludeAllNetworks', 'interface', false],
      ['ExcludeLocalNetworks', 'interface', false],
      ['MailDomains', 'interface', true],
      ['CalendarDomains', 'interface', true],
      ['ContactsDomains', 'interface', true],
      ['PublicKey', 'peer', false],
      ['PresharedKey', 'peer', false],
      ['AllowedIPs', 'peer', true],
      ['Endpoint', 'peer', false],
      ['PersistentKeepalive', 'peer', false],
      ['Name', 'app', false],
      ['Domains', 'app', true],
      ['CGroup', 'app', true],
      ['UID', 'app', true],
    ] as const
  ).map(([name, section, repeat]) => [name.toLowerCase(), { name, section, repeat }]),
);

const SECTION_TITLE: Record<Section, string> = { interface: '[Interface]', peer: '[Peer]', app: '[App]' };

interface InterfaceDraft {
  headerLine: number;
  privateKey?: Uint8Array;
  addresses: IpPrefix[];
  listenPort?: number;
  servers: string[];
  search: string[];
  mtu?: number;
  mtuLine?: number;
  table?: RoutingTable;
  fwMark?: number;
  saveConfig: boolean;
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  includeAllNetworks: boolean;
  excludeLocalNetworks: boolean;
  excludeLine?: number;
  mailDomains: string[];
  calendarDomains: string[];
  contactsDomains: string[];
}

interface AppDraft {
  headerLine: number;
  name?: string;
  nameLine?: number;
  domains: string[];
  cgroups: string[];
  uids: number[];
}

interface PeerDraft {
  headerLine: number;
  publicKey?: Uint8Array;
  /** The key as written: canonical base64 (parseKey refuses any other spelling), so it identifies the peer. */
  publicKeyText?: string;
  publicKeyLine?: number;
  presharedKey?: Uint8Array;
  allowedIPs: { prefix: IpPrefix; line: number }[];
  endpoint?: Endpoint;
  persistentKeepalive?: number;
}

/** The first line's byte order mark, which some Windows editors write, is ignored. */
const BOM = '\ufeff';

export interface ParseConfigOptions {
  /**
   * X25519 public key of a private key, for the check that no peer is the interface
   * itself. Default: the portable one in crypto/; a runtime may inject a faster one (the
   * portable one spends tens of milliseconds on its first call building tables).
   */
  readonly publicKeyOf?: (privateKey: Uint8Array) => Uint8Array;
}

/**
 * Parses wg-quick configuration text. `fileName` only appears in errors.
 * Throws ConfigError, and nothing else, for any text.
 */
export function parseConfig(text: string, fileName: string, options: ParseConfigOptions = {}): Config {
  if (typeof text !== 'string') throw new TypeError('text: expected a string');
  return parseConfigLines((text.startsWith(BOM) ? text.slice(1) : text).split('\n'), fileName, options);
}

/** parseConfig of text already split at "\n" (line numbers count from 1 at lines[0]). */
export function parseConfigLines(lines: readonly string[], fileName: string, options: ParseConfigOptions = {}): Config {
  const fail: Fail = (code, line, key, detail) => {
    throw new ConfigError(code, fileName, line, key, detail);
  };

  let iface: InterfaceDraft | undefined;
  const peers: PeerDraft[] = [];
  const apps: AppDraft[] = [];
  let section: Section | undefined;
  // Lines of the scalar keys already seen in the current section.
  let seen = new Map<string, number>();

  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const raw = lines[index]!;
    const hash = raw.indexOf('#');
    const stripped = trimAscii(hash < 0 ? raw : raw.slice(0, hash));
    if (stripped === '') continue;

    if (stripped.startsWith('[')) {
      const header = /^\[([^\]]*)\]$/.exec(stripped);
      if (header === null) {
        fail('ERR_CONFIG_SYNTAX', lineNumber, undefined, 'a section header is [Interface], [Peer] or [App], alone on its line');
      }
      const name = header[1]!.toLowerCase();
      if (name === 'interface') {
        if (iface !== undefined) {
          fail('ERR_CONFIG_DUPLICATE_INTERFACE', lineNumber, undefined, `a second [Interface] section (the first is at line ${iface.headerLine})`);
        }
        iface = newInterface(lineNumber);
        section = 'interface';
      } else if (name === 'peer') {
        peers.push({ headerLine: lineNumber, allowedIPs: [] });
        section = 'peer';
      } else if (name === 'app') {
        apps.push({ headerLine: lineNumber, domains: [], cgroups: [], uids: [] });
        section = 'app';
      } else {
        const shown = quote(header[0]);
        fail('ERR_CONFIG_UNKNOWN_SECTION', lineNumber, undefined, `unknown section${shown === undefined ? '' : ` ${shown}`}: expected [Interface], [Peer] or [App]`);
      }
      seen = new Map();
      continue;
    }

    const equals = stripped.indexOf('=');
    if (equals < 0) {
      fail('ERR_CONFIG_SYNTAX', lineNumber, undefined, 'expected "Key = value", a [Section] header, a comment or a blank line');
    }
    const rawKey = trimAscii(stripped.slice(0, equals));
    const value = trimAscii(stripped.slice(equals + 1));
    if (rawKey === '') fail('ERR_CONFIG_SYNTAX', lineNumber, undefined, 'expected "Key = value": there is no key before "="');

    const spec = KEYS.get(rawKey.toLowerCase());
    if (spec === undefined) {
      const shown = quote(rawKey);
      const hint = suggest(rawKey);
      fail(
        'ERR_CONFIG_UNKNOWN_KEY',
        lineNumber,
        shown === undefined ? undefined : rawKey,
        `unknown key${shown === undefined ? ' (not shown: it looks like key material)' : ''}${hint === undefined ? '' : `: did you mean ${hint}?`}`,
      );
    }
    const key = spec.name;
    if (section === undefined) {
      fail('ERR_CONFIG_OUTSIDE_SECTION', lineNumber, key, `keys come after an [Interface], [Peer] or [App] header; this one belongs in ${SECTION_TITLE[spec.section]}`);
    }
    if (spec.section !== section) {
      fail('ERR_CONFIG_WRONG_SECTION', lineNumber, key, `belongs in ${SECTION_TITLE[spec.section]}, not in ${SECTION_TITLE[section]}`);
    }
    if (!spec.repeat) {
      const first = seen.get(key);
      if (first !== undefined) fail('ERR_CONFIG_DUPLICATE_KEY', lineNumber, key, `given twice in one section (first at line ${first})`);
      seen.set(key, lineNumber);
    }

    try {
      if (section === 'interface') setInterfaceKey(iface!, key, value, lineNumber);
      else if (section === 'peer') setPeerKey(peers[peers.length - 1]!, key, value, lineNumber);
      else setAppKey(apps[apps.length - 1]!, key, value, lineNumber);
    } catch (error) {
      if (error instanceof ValueError) fail(error.code, lineNumber, key, error.message);
      throw error;
    }
  }

  if (iface === undefined) return fail('ERR_CONFIG_MISSING_INTERFACE', undefined, undefined, 'no [Interface] section');
  return finish(iface, peers, apps, fail, options.publicKeyOf ?? publicKeyOf);
}

function newInterface(headerLine: number): InterfaceDraft {
  return {
    headerLine,
    addresses: [],
    servers: [],
    search: [],
    saveConfig: false,
    preUp: [],
    postUp: [],
    preDown: [],
    postDown: [],
    includeAllNetworks: false,
    excludeLocalNetworks: false,
    mailDomains: [],
    calendarDomains: [],
    contactsDomains: [],
  };
}

/** Scalars that need a value; lists may be empty (`DNS =` adds nothing). */
function required(value: string): string {
  if (value === '') throw new ValueError('ERR_CONFIG_EMPTY_VALUE', 'a value is required after "="');
  return value;
}

function setInterfaceKey(draft: InterfaceDraft, key: string, value: string, line: number): void {
  switch (key) {
    case 'PrivateKey':
      draft.privateKey = parseKey(value);
      return;
    case 'ListenPort':
      draft.listenPort = parsePort(required(value), true);
      return;
    case 'FwMark':
      draft.fwMark = parseFwMark(required(value));
      return;
    case 'Address':
      draft.addresses.push(...parsePrefixList(value, false, true));
      return;
    case 'DNS': {
      const { servers, search } = parseDns(value);
      draft.servers.push(...servers);
      draft.search.push(...search);
      return;
    }
    case 'MTU':
      draft.mtu = parseMtu(required(value));
      draft.mtuLine = line;
      return;
    case 'Table':
      draft.table = parseTable(required(value));
      return;
    case 'PreUp':
      draft.preUp.push(checkHook(value));
      return;
    case 'PostUp':
      draft.postUp.push(checkHook(value));
      return;
    case 'PreDown':
      draft.preDown.push(checkHook(value));
      return;
    case 'PostDown':
      draft.postDown.push(checkHook(value));
      return;
    case 'SaveConfig':
      draft.saveConfig = parseBoolean(required(value));
      return;
    case 'IncludeAllNetworks':
      draft.includeAllNetworks = parseBoolean(required(value));
      return;
    case 'ExcludeLocalNetworks':
      draft.excludeLocalNetworks = parseBoolean(required(value));
      draft.excludeLine = line;
      return;
    case 'MailDomains':
      draft.mailDomains.push(...parseDomainList(value));
      return;
    case 'CalendarDomains':
      draft.calendarDomains.push(...parseDomainList(value));
      return;
    case 'ContactsDomains':
      draft.contactsDomains.push(...parseDomainList(value));
      return;
  }
}

function setPeerKey(draft: PeerDraft, key: string, value: string, line: number): void {
  switch (key) {
    case 'PublicKey':
      draft.publicKey = parseKey(value);
      draft.publicKeyText = value;
      draft.publicKeyLine = line;
      return;
    case 'PresharedKey':
      draft.presharedKey = parseKey(value);
      return;
    case 'AllowedIPs':
      for (const prefix of parsePrefixList(value, true, false)) draft.allowedIPs.push({ prefix, line });
      return;
    case 'Endpoint':
      draft.endpoint = parseEndpoint(required(value), { names: true });
      return;
    case 'PersistentKeepalive':
      draft.persistentKeepalive = parseKeepalive(required(value));
      return;
  }
}

function setAppKey(draft: AppDraft, key: string, value: string, line: number): void {
  switch (key) {
    case 'Name':
      draft.name = parseAppName(required(value));
      draft.nameLine = line;
      return;
    case 'Domains':
      draft.domains.push(...parseDomainList(value));
      return;
    case 'CGroup':
      draft.cgroups.push(parseCGroup(required(value)));
      return;
    case 'UID':
      draft.uids.push(parseUid(required(value)));
      return;
  }
}

/** The [App] sections, checked: each has a Name, no two share one. */
function finishApps(appDrafts: AppDraft[], fail: Fail): AppConfig[] {
  const apps: AppConfig[] = [];
  const byName = new Map<string, number>();
  for (const a of appDrafts) {
    if (a.name === undefined) return fail('ERR_CONFIG_MISSING_APP_NAME', a.headerLine, 'Name', '[App] needs a Name (mail, calendar, contacts, or your own)');
    const first = byName.get(a.name);
    if (first !== undefined) fail('ERR_CONFIG_DUPLICATE_APP', a.nameLine, 'Name', `a second [App] named ${a.name} (the first is at line ${first})`);
    byName.set(a.name, a.headerLine);
    apps.push({ name: a.name, domains: a.domains, cgroups: a.cgroups, uids: a.uids });
  }
  return apps;
}

type Fail = (code: ConfigErrorCode, line: number | undefined, key: string | undefined, detail: string) => never;

/** Checks that need a whole section, or the whole file, then builds the Config. */
function finish(
  draft: InterfaceDraft, peerDrafts: PeerDraft[], appDrafts: AppDraft[], fail: Fail, derivePublicKey: (privateKey: Uint8Array) => Uint8Array,
): Config {
  if (draft.privateKey === undefined) {
    return fail('ERR_CONFIG_MISSING_PRIVATE_KEY', draft.headerLine, 'PrivateKey', '[Interface] needs a PrivateKey (make one with `burrow genkey`)');
  }
  if (draft.mtu !== undefined && draft.mtu < MTU_MIN_IPV6 && draft.addresses.some((a) => a.family === 6)) {
    fail('ERR_CONFIG_BAD_MTU', draft.mtuLine, 'MTU', `an interface with an IPv6 address needs an MTU of at least ${MTU_MIN_IPV6} (RFC 8200 §5)`);
  }
  if (draft.excludeLocalNetworks && !draft.includeAllNetworks) {
    fail(
      'ERR_CONFIG_EXCLUDE_WITHOUT_INCLUDE',
      draft.excludeLine,
      'ExcludeLocalNetworks',
      'only means something with IncludeAllNetworks = true: without it, local networks are reached directly already',
    );
  }

  const ownKeyId = encodeKey(derivePublicKey(draft.privateKey));
  const peerByKey = new Map<string, number>();
  const allowedOwner = new Map<string, number>();
  const peers: PeerConfig[] = [];
  for (const p of peerDrafts) {
    if (p.publicKey === undefined || p.publicKeyText === undefined) {
      return fail('ERR_CONFIG_MISSING_PUBLIC_KEY', p.headerLine, 'PublicKey', '[Peer] needs a PublicKey');
    }
    const keyId = p.publicKeyText;
    const first = peerByKey.get(keyId);
    if (first !== undefined) {
      fail('ERR_CONFIG_DUPLICATE_PEER', p.publicKeyLine, 'PublicKey', `the same PublicKey as the [Peer] at line ${first}`);
    }
    peerByKey.set(keyId, p.headerLine);
    if (ownKeyId === keyId) {
      fail('ERR_CONFIG_PEER_IS_SELF', p.publicKeyLine, 'PublicKey', "this is the interface's own public key: WireGuard would ignore this peer");
    }
    for (const { prefix, line } of p.allowedIPs) {
      const owner = allowedOwner.get(prefix.text);
      if (owner !== undefined && owner !== p.headerLine) {
        fail(
          'ERR_CONFIG_DUPLICATE_ALLOWED_IP',
          line,
          'AllowedIPs',
          `${prefix.text} is already allowed for the [Peer] at line ${owner}: WireGuard would silently move it to this peer`,
        );
      }
      allowedOwner.set(prefix.text, p.headerLine);
    }
    peers.push({
      publicKey: p.publicKey,
      ...(p.presharedKey === undefined ? {} : { presharedKey: p.presharedKey }),
      allowedIPs: p.allowedIPs.map((a) => a.prefix),
      ...(p.endpoint === undefined ? {} : { endpoint: p.endpoint }),
      ...(p.persistentKeepalive === undefined ? {} : { persistentKeepalive: p.persistentKeepalive }),
    });
  }

  const iface: InterfaceConfig = {
    privateKey: draft.privateKey,
    addresses: draft.addresses,
    ...(draft.listenPort === undefined ? {} : { listenPort: draft.listenPort }),
    dns: { servers: draft.servers, search: draft.search },
    ...(draft.mtu === undefined ? {} : { mtu: draft.mtu }),
    ...(draft.table === undefined ? {} : { table: draft.table }),
    ...(draft.fwMark === undefined ? {} : { fwMark: draft.fwMark }),
    saveConfig: draft.saveConfig,
    preUp: draft.preUp,
    postUp: draft.postUp,
    preDown: draft.preDown,
    postDown: draft.postDown,
    includeAllNetworks: draft.includeAllNetworks,
    excludeLocalNetworks: draft.excludeLocalNetworks,
    mailDomains: draft.mailDomains,
    calendarDomains: draft.calendarDomains,
    contactsDomains: draft.contactsDomains,
  };
  const apps = finishApps(appDrafts, fail);
  return apps.length === 0 ? { interface: iface, peers } : { interface: iface, peers, apps };
}

/** A known key that differs only by case, "_", "-" or spaces ("Allowed IPs", "listen_port"). */
function suggest(rawKey: string): string | undefined {
  const squashed = rawKey.toLowerCase().replace(/[-_ \t]/g, '');
  const spec = KEYS.get(squashed);
  return spec === undefined ? undefined : spec.name;
}
