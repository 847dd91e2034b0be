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

import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { build, type PlistValue } from 'plist';
import { encodeKey, publicKeyOf } from '../../crypto/keys.js';
import { type Config, formatConfig, formatEndpoint, parseConfig } from '../config/index.js';
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
  const publicKey = encodeKey(publicKeyOf(config.interface.privateKey));
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
  writeFileSync(out, xml, { mode: 0o600 });
  chmodSync(out, 0o600); // also when the file was there before with a wider mode
  return out;
}
