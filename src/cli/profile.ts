// `burrow profile CONFIG --format mobileconfig`: a configuration profile for managed Macs
// (Apple's device-management schema, github.com/apple/device-management, mdm/profiles):
//   com.apple.vpn.managed            VPNType VPN, VPNSubType = the app's bundle id, the
//                                    tunnel's wg-quick text in VendorConfig, and in VPN the
//                                    provider, packet-tunnel, IncludeAllNetworks and
//                                    ExcludeLocalNetworks (0/1) where the config sets them;
//   with --per-app, instead:
//   com.apple.vpn.managed.applayer   the same keys plus VPNUUID and MailDomains,
//                                    CalendarDomains, ContactsDomains;
//   com.apple.vpn.managed.appmapping binds Mail, Calendar and Contacts to that VPNUUID.
// PayloadIdentifier and PayloadUUID are derived from the tunnel's identity (its name,
// its public key and the bundle id), not from the rest of the file: installing an edited
// profile updates the installed one in place. The private key is written only with
// --include-private-key (otherwise the app supplies it, e.g. from the Keychain); the file
// is 0600 either way, since preshared keys stay in. The plist library writes the XML.
// `burrow server client-config NAME --format mobileconfig` builds its profile here too,
// from the client's tunnel as the server knows it (clientProfile).

import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { build, type PlistValue } from 'plist';
import { encodeKey, publicKeyOf } from '../../crypto/keys.js';
import { type Config, formatConfig, formatEndpoint, parseConfig } from '../config/index.js';
import { clientTunnel } from '../../server/peers.js';
import { findPeer, type RegistryData } from '../../server/registry.js';
import { CliError, EXIT_BAD_INPUT } from './errors.js';

export const DEFAULT_BUNDLE_ID = 'net.burrow.app';

/** The apps whose traffic the per-app domains send through the tunnel on macOS. */
export const PER_APP_APPS = {
  mail: 'com.apple.mail',
  calendar: 'com.apple.iCal',
  contacts: 'com.apple.AddressBook',
} as const;

export interface ProfileOptions {
  /** The tunnel's name (the file's, without .conf). */
  name: string;
  bundleId?: string;
  /** The packet tunnel extension's bundle id; default `${bundleId}.network-extension`. */
  providerBundleId?: string;
  perApp?: boolean;
  includePrivateKey?: boolean;
  /**
   * The interface's public key, when its private key is not known (a server's client
   * that keeps its own key): the profile's identity is derived from it.
   */
  publicKey?: Uint8Array;
}

type Dict = { [key: string]: PlistValue };

/** A name-based UUID (RFC 4122 version 5 layout) over `parts`: the same input, the same UUID. */
export function stableUuid(...parts: string[]): string {
  const h = createHash('sha1').update(parts.join('\0')).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The wg-quick text that goes into VendorConfig: without the PrivateKey line unless asked. */
function vendorText(config: Config, includePrivateKey: boolean): string {
  const text = formatConfig(config);
  return includePrivateKey ? text : text.split('\n').filter((l) => !l.startsWith('PrivateKey =')).join('\n');
}

export function buildProfile(config: Config, o: ProfileOptions): Dict {
  const bundleId = o.bundleId ?? DEFAULT_BUNDLE_ID;
  const provider = o.providerBundleId ?? `${bundleId}.network-extension`;
  const publicKey = encodeKey(o.publicKey ?? publicKeyOf(config.interface.privateKey));
  const identity = [o.name, publicKey, bundleId];
  const base = `${bundleId}.burrow.${createHash('sha256').update(identity.join('\0')).digest('hex').slice(0, 16)}`;
  const i = config.interface;
  const endpoint = config.peers.find((p) => p.endpoint !== undefined)?.endpoint;

  const vpn: Dict = {
    RemoteAddress: endpoint === undefined ? 'burrow' : formatEndpoint(endpoint),
    AuthenticationMethod: 'Password',
    ProviderBundleIdentifier: provider,
    ProviderType: 'packet-tunnel',
  };
  if (i.includeAllNetworks) vpn.IncludeAllNetworks = 1;
  if (i.excludeLocalNetworks) vpn.ExcludeLocalNetworks = 1;

  const common: Dict = {
    PayloadDisplayName: `Burrow VPN (${o.name})`,
    PayloadVersion: 1,
    UserDefinedName: o.name,
    VPNType: 'VPN',
    VPNSubType: bundleId,
    VendorConfig: { WgQuickConfig: vendorText(config, o.includePrivateKey === true), InterfaceName: o.name },
    VPN: vpn,
  };

  const content: Dict[] = [];
  if (o.perApp !== true) {
    content.push({ ...common, PayloadType: 'com.apple.vpn.managed', PayloadIdentifier: `${base}.vpn`, PayloadUUID: stableUuid(...identity, 'vpn') });
  } else {
    const vpnUuid = stableUuid(...identity, 'applayer-vpnuuid');
    const domains: Record<keyof typeof PER_APP_APPS, string[]> = { mail: i.mailDomains, calendar: i.calendarDomains, contacts: i.contactsDomains };
    const applayer: Dict = {
      ...common, PayloadType: 'com.apple.vpn.managed.applayer', PayloadIdentifier: `${base}.applayer`,
      PayloadUUID: stableUuid(...identity, 'applayer'), VPNUUID: vpnUuid,
    };
    if (i.mailDomains.length > 0) applayer.MailDomains = [...i.mailDomains];
    if (i.calendarDomains.length > 0) applayer.CalendarDomains = [...i.calendarDomains];
    if (i.contactsDomains.length > 0) applayer.ContactsDomains = [...i.contactsDomains];
    content.push(applayer);
    const apps = (Object.keys(PER_APP_APPS) as (keyof typeof PER_APP_APPS)[]).filter((k) => domains[k].length > 0);
    if (apps.length > 0) {
      content.push({
        PayloadType: 'com.apple.vpn.managed.appmapping', PayloadVersion: 1, PayloadIdentifier: `${base}.appmapping`,
        PayloadUUID: stableUuid(...identity, 'appmapping'), PayloadDisplayName: `Burrow per-app VPN (${o.name})`,
        AppLayerVPNMapping: apps.map((k) => ({
          Identifier: PER_APP_APPS[k],
          VPNUUID: vpnUuid,
          DesignatedRequirement: `identifier "${PER_APP_APPS[k]}" and anchor apple`,
          SigningIdentifier: PER_APP_APPS[k],
        })),
      });
    }
  }
  return {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: base,
    PayloadUUID: stableUuid(...identity, 'profile'),
    PayloadDisplayName: `Burrow VPN (${o.name})`,
    PayloadDescription: `The Burrow tunnel ${o.name}${o.perApp === true ? ', per app' : ''}.`,
    PayloadContent: content,
  };
}

export function profileXml(config: Config, o: ProfileOptions): string {
  return build(buildProfile(config, o));
}

/**
 * Writes a profile to `path` with mode 0600, also when a file with a wider mode stood
 * there: the mode is narrowed before the first byte is written.
 */
export function writeProfile(path: string, xml: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, xml);
  } finally {
    closeSync(fd);
  }
}

export interface ProfileCommandOptions {
  format: string;
  bundleId?: string;
  perApp?: boolean;
  includePrivateKey?: boolean;
  output?: string;
}

/** The command: reads CONFIG, writes NAME.mobileconfig (or --output) with mode 0600. Returns the path. */
export function profileCommand(path: string, o: ProfileCommandOptions): string {
  if (o.format !== 'mobileconfig') throw new CliError(`--format ${o.format}: only mobileconfig is supported`, EXIT_BAD_INPUT);
  const name = basename(path).replace(/\.conf$/, '');
  const config = parseConfig(readFileSync(path, 'utf8'), path);
  const xml = profileXml(config, {
    name, perApp: o.perApp === true, includePrivateKey: o.includePrivateKey === true,
    ...(o.bundleId === undefined ? {} : { bundleId: o.bundleId }),
  });
  const out = o.output ?? `${name}.mobileconfig`;
  writeProfile(out, xml);
  return out;
}

/**
 * `burrow server client-config NAME --format mobileconfig`: the client's tunnel as the
 * server knows it, through buildProfile, written 0600 to `output` (default
 * NAME.mobileconfig). Returns the path.
 */
export function clientProfile(data: RegistryData, name: string, o: { bundleId?: string; includePrivateKey?: boolean; output?: string }): string {
  const record = findPeer(data, name);
  const { config, privateKeyKnown } = clientTunnel(data, record);
  try {
    if (o.includePrivateKey && !privateKeyKnown) {
      throw new CliError(`--include-private-key: '${name}' keeps its private key on the client (it was added with --public-key); the app supplies it`, EXIT_BAD_INPUT);
    }
    const out = o.output ?? `${name}.mobileconfig`;
    writeProfile(out, profileXml(config, {
      name, publicKey: record.peer.publicKey, includePrivateKey: o.includePrivateKey === true,
      ...(o.bundleId === undefined ? {} : { bundleId: o.bundleId }),
    }));
    return out;
  } finally {
    config.interface.privateKey.fill(0);
  }
}
