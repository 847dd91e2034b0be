// Config -> wg-quick configuration text, in wg-quick's key spelling, that parseConfig
// reads back to an equal Config.
//
// The text holds the private and preshared keys: whoever writes it to a file makes the
// file 0600. With `redact`, those two keys read "(hidden)", for display only (the
// result does not parse).
//
// Nothing the caller passes in can inject a line: every string goes through the same
// parser that reads it, and the whole result is parsed once more before it is
// returned, so a Config that parseConfig would refuse (MTU out of range, two peers with
// one key…) is refused here, with the same code.

import { encodeKey } from '../../crypto/keys.js';
import { ConfigError } from './errors.js';
import { type IpPrefix, makePrefix } from './ip.js';
import { parseConfig } from './parse.js';
import type { Config, PeerConfig } from './types.js';
import { formatEndpoint, parseHost } from './endpoint.js';
import { canonicalIp, checkHook, parseAppName, parseCGroup, parseDomain, ValueError } from './values.js';

export interface FormatOptions {
  /** Write "(hidden)" in place of PrivateKey and PresharedKey. */
  readonly redact?: boolean;
  /** For the read back: a faster X25519 public key than the portable one (ParseConfigOptions). */
  readonly publicKeyOf?: (privateKey: Uint8Array) => Uint8Array;
}

export const HIDDEN = '(hidden)';

/** The name errors from formatConfig carry in place of a file name. */
const SOURCE = '(config)';

export function formatConfig(config: Config, options: FormatOptions = {}): string {
  const text = render(config, false);
  try {
    parseConfig(text, SOURCE, options.publicKeyOf === undefined ? {} : { publicKeyOf: options.publicKeyOf });
  } catch (error) {
    // Line numbers of text the caller never saw would only mislead.
    if (error instanceof ConfigError) throw new ConfigError(error.code, SOURCE, undefined, error.key, error.detail);
    throw error;
  }
  return options.redact === true ? render(config, true) : text;
}

function render(config: Config, redact: boolean): string {
  const secret = (key: Uint8Array): string => (redact ? HIDDEN : encodeKey(key));
  const i = config.interface;
  const out: string[] = ['[Interface]'];
  const put = (key: string, value: string): void => {
    out.push(`${key} = ${value}`);
  };

  put('PrivateKey', secret(i.privateKey));
  if (i.addresses.length > 0) put('Address', i.addresses.map((p) => prefixText(p, 'Address')).join(', '));
  if (i.listenPort !== undefined) put('ListenPort', String(i.listenPort));
  if (i.fwMark !== undefined) put('FwMark', i.fwMark === 0 ? 'off' : `0x${i.fwMark.toString(16)}`);
  const dns = [
    ...i.dns.servers.map((s) => checked('DNS', () => canonicalIp(s))),
    ...i.dns.search.map((d) => checked('DNS', () => parseDomain(d))),
  ];
  if (dns.length > 0) put('DNS', dns.join(', '));
  if (i.mtu !== undefined) put('MTU', String(i.mtu));
  if (i.table !== undefined) put('Table', String(i.table));
  if (i.saveConfig) put('SaveConfig', 'true');
  for (const [key, commands] of [
    ['PreUp', i.preUp],
    ['PostUp', i.postUp],
    ['PreDown', i.preDown],
    ['PostDown', i.postDown],
  ] as const) {
    for (const command of commands) put(key, checked(key, () => checkHook(command)));
  }
  if (i.includeAllNetworks) put('IncludeAllNetworks', 'true');
  if (i.excludeLocalNetworks) put('ExcludeLocalNetworks', 'true');
  for (const [key, domains] of [
    ['MailDomains', i.mailDomains],
    ['CalendarDomains', i.calendarDomains],
    ['ContactsDomains', i.contactsDomains],
  ] as const) {
    if (domains.length > 0) put(key, domains.map((d) => checked(key, () => parseDomain(d))).join(', '));
  }

  for (const peer of config.peers) {
    out.push('', '[Peer]');
    renderPeer(peer, put, secret);
  }
  for (const app of config.apps ?? []) {
    out.push('', '[App]');
    put('Name', checked('Name', () => parseAppName(app.name)));
    if (app.domains.length > 0) put('Domains', app.domains.map((d) => checked('Domains', () => parseDomain(d))).join(', '));
    for (const cgroup of app.cgroups) put('CGroup', checked('CGroup', () => parseCGroup(cgroup)));
    for (const uid of app.uids) put('UID', String(uid));
  }
  return out.join('\n') + '\n';
}

function renderPeer(peer: PeerConfig, put: (key: string, value: string) => void, secret: (key: Uint8Array) => string): void {
  put('PublicKey', encodeKey(peer.publicKey));
  if (peer.presharedKey !== undefined) put('PresharedKey', secret(peer.presharedKey));
  if (peer.allowedIPs.length > 0) put('AllowedIPs', peer.allowedIPs.map((p) => prefixText(p, 'AllowedIPs')).join(', '));
  if (peer.endpoint !== undefined) {
    const { host, port } = peer.endpoint;
    put('Endpoint', formatEndpoint({ host: checked('Endpoint', () => parseHost(host)), port }));
  }
  if (peer.persistentKeepalive !== undefined) put('PersistentKeepalive', String(peer.persistentKeepalive));
}

/** The canonical text, rebuilt from the bytes (the `text` field is not trusted). */
function prefixText(prefix: IpPrefix, key: string): string {
  try {
    return makePrefix(prefix.family, prefix.address, prefix.prefixLength).text;
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new ConfigError('ERR_CONFIG_UNREPRESENTABLE', SOURCE, undefined, key, error.message);
    }
    throw error;
  }
}

function checked(key: string, check: () => string): string {
  try {
    return check();
  } catch (error) {
    if (error instanceof ValueError) throw new ConfigError(error.code, SOURCE, undefined, key, error.message);
    throw error;
  }
}
