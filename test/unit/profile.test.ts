// `burrow profile --format mobileconfig`: parsed back with the plist library, checked
// against the keys Apple's device-management schema documents for each payload
// (github.com/apple/device-management, mdm/profiles/com.apple.vpn.managed*.yaml and
// the common payload keys), the tunnel configuration round-tripped through VendorConfig.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'plist';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import { type Config, parseConfig } from '../../src/config/index.js';
import { profileXml, stableUuid } from '../../src/cli/profile.js';
import { CLI } from '../support/burrow.js';

type Dict = Record<string, unknown>;
const dir = 'test/fixtures/configs';
const load = (file: string): Config => parseConfig(readFileSync(`${dir}/${file}`, 'utf8'), file);

// The documented keys (Apple's schema), by payload.
const PAYLOAD = ['PayloadType', 'PayloadVersion', 'PayloadIdentifier', 'PayloadUUID', 'PayloadDisplayName', 'PayloadDescription', 'PayloadOrganization'];
const PROFILE = [...PAYLOAD, 'PayloadContent', 'PayloadRemovalDisallowed', 'PayloadScope', 'PayloadExpirationDate', 'RemovalDate', 'DurationUntilRemoval', 'ConsentText', 'HasRemovalPasscode', 'IsEncrypted', 'TargetDeviceType'];
const VPN_PAYLOAD = [...PAYLOAD, 'VPNType', 'VPNSubType', 'UserDefinedName', 'VendorConfig', 'VPN', 'IPv4', 'DNS', 'Proxies', 'IPSec', 'IKEv2', 'PPP', 'AlwaysOn', 'TransparentProxy', 'OnDemandMatchDomainsAlways'];
const VPN_DICT = ['AuthName', 'AuthPassword', 'RemoteAddress', 'AuthenticationMethod', 'PayloadCertificateUUID', 'ProviderBundleIdentifier',
  'ProviderDesignatedRequirement', 'DisconnectOnIdle', 'DisconnectOnIdleTimer', 'ProviderType', 'IncludeAllNetworks', 'EnforceRoutes',
  'ExcludeLocalNetworks', 'ExcludeCellularServices', 'ExcludeAPNs', 'ExcludeDeviceCommunication', 'OnDemandEnabled', 'OnDemandRules'];
const APPLAYER = [...VPN_PAYLOAD, 'VPNUUID', 'SafariDomains', 'MailDomains', 'CalendarDomains', 'ContactsDomains', 'AssociatedDomains', 'ExcludedDomains', 'OnDemandMatchAppEnabled', 'SMBDomains'];
const APPMAPPING = [...PAYLOAD, 'AppLayerVPNMapping'];
const MAPPING_ITEM = ['Identifier', 'VPNUUID', 'DesignatedRequirement', 'SigningIdentifier', 'Path', 'MatchTools'];
const UUID = /^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/;

function documented(d: Dict, allowed: string[], required: string[]): void {
  for (const k of Object.keys(d)) expect(allowed, `undocumented key ${k}`).toContain(k);
  for (const k of required) expect(d, `missing ${k}`).toHaveProperty(k);
}

function build(file: string, o: { perApp?: boolean; includePrivateKey?: boolean; bundleId?: string } = {}): Dict {
  return parse(profileXml(load(file), { name: file.replace(/\.conf$/, ''), ...o })) as Dict;
}

describe('burrow profile --format mobileconfig', () => {
  for (const file of ['full-tunnel.conf', 'burrow-kill-switch.conf', 'split-tunnel.conf', 'ipv6-endpoint.conf', 'server.conf']) {
    it(`${file}: one com.apple.vpn.managed payload with only documented keys, the config round-tripped`, () => {
      const p = build(file, { includePrivateKey: true, bundleId: 'com.example.burrow' });
      documented(p, PROFILE, ['PayloadContent', 'PayloadIdentifier', 'PayloadType', 'PayloadUUID', 'PayloadVersion']);
      expect(p.PayloadType).toBe('Configuration');
      expect(p.PayloadUUID).toMatch(UUID);
      const content = p.PayloadContent as Dict[];
      expect(content).toHaveLength(1);
      const vpn = content[0]!;
      documented(vpn, VPN_PAYLOAD, ['PayloadType', 'PayloadIdentifier', 'PayloadUUID', 'PayloadVersion', 'VPNType', 'UserDefinedName']);
      expect(vpn).toMatchObject({ PayloadType: 'com.apple.vpn.managed', VPNType: 'VPN', VPNSubType: 'com.example.burrow' });
      expect(vpn.PayloadUUID).toMatch(UUID);
      expect(String(vpn.PayloadIdentifier).startsWith(`${String(p.PayloadIdentifier)}.`)).toBe(true);
      const dict = vpn.VPN as Dict;
      documented(dict, VPN_DICT, ['RemoteAddress']);
      expect(dict.ProviderType).toBe('packet-tunnel');
      expect(dict.ProviderBundleIdentifier).toBe('com.example.burrow.network-extension');
      const config = load(file);
      expect(dict.IncludeAllNetworks).toBe(config.interface.includeAllNetworks ? 1 : undefined);
      expect(dict.ExcludeLocalNetworks).toBe(config.interface.excludeLocalNetworks ? 1 : undefined);
      expect(parseConfig((vpn.VendorConfig as Dict).WgQuickConfig as string, 'vendor')).toEqual(config);
    });
  }

  it('without --include-private-key the key is nowhere in the file, and the rest still round-trips', () => {
    const config = load('full-tunnel.conf');
    const xml = profileXml(config, { name: 'full-tunnel' });
    expect(xml).not.toContain(encodeKey(config.interface.privateKey));
    expect(xml).not.toContain('PrivateKey');
    const text = (((parse(xml) as Dict).PayloadContent as Dict[])[0]!.VendorConfig as Dict).WgQuickConfig as string;
    const key = encodeKey(config.interface.privateKey);
    expect(parseConfig(`[Interface]\nPrivateKey = ${key}\n${text.replace('[Interface]\n', '')}`, 'vendor')).toEqual(config);
  });

  it('--per-app: applayer with the domains and packet-tunnel, appmapping binding Mail, Calendar, Contacts to its VPNUUID', () => {
    const p = build('burrow-kill-switch.conf', { perApp: true });
    const [applayer, mapping, ...rest] = p.PayloadContent as Dict[];
    expect(rest).toEqual([]);
    documented(applayer!, APPLAYER, ['PayloadType', 'PayloadIdentifier', 'PayloadUUID', 'VPNUUID', 'VPNType', 'UserDefinedName']);
    expect(applayer).toMatchObject({
      PayloadType: 'com.apple.vpn.managed.applayer', VPNType: 'VPN', VPNSubType: 'net.burrow.app',
      MailDomains: ['example.com', 'mail.example.org'], CalendarDomains: ['calendar.example.com'],
      ContactsDomains: ['contacts.example.com', 'dir.example.org'],
    });
    expect((applayer!.VPN as Dict).ProviderType).toBe('packet-tunnel'); // the applayer default is app-proxy
    documented(mapping!, APPMAPPING, ['PayloadType', 'PayloadIdentifier', 'PayloadUUID', 'AppLayerVPNMapping']);
    expect(mapping!.PayloadType).toBe('com.apple.vpn.managed.appmapping');
    const items = mapping!.AppLayerVPNMapping as Dict[];
    for (const item of items) documented(item, MAPPING_ITEM, ['Identifier', 'VPNUUID', 'DesignatedRequirement', 'SigningIdentifier']);
    expect(items.map((i) => i.Identifier)).toEqual(['com.apple.mail', 'com.apple.iCal', 'com.apple.AddressBook']);
    expect(new Set(items.map((i) => i.VPNUUID))).toEqual(new Set([applayer!.VPNUUID]));
    expect(applayer!.VPNUUID).toMatch(UUID);
  });

  it('--per-app with no domains binds no app', () => {
    const p = build('split-tunnel.conf', { perApp: true });
    expect((p.PayloadContent as Dict[]).map((c) => c.PayloadType)).toEqual(['com.apple.vpn.managed.applayer']);
  });

  it('identifiers are stable across runs and edits of the tunnel, and differ per bundle id and per tunnel', () => {
    const ids = (p: Dict): string[] => [p.PayloadIdentifier, p.PayloadUUID, ...(p.PayloadContent as Dict[]).flatMap((c) => [c.PayloadIdentifier, c.PayloadUUID])].map(String);
    const a = build('full-tunnel.conf');
    expect(ids(build('full-tunnel.conf'))).toEqual(ids(a));
    const edited = load('full-tunnel.conf');
    const moved = { ...edited, peers: [{ ...edited.peers[0]!, endpoint: { host: 'vpn2.example.net', port: 443 } }] };
    expect(ids(parse(profileXml(moved, { name: 'full-tunnel' })) as Dict)).toEqual(ids(a));
    expect(ids(build('full-tunnel.conf', { bundleId: 'com.example.other' }))[1]).not.toBe(ids(a)[1]);
    expect(ids(build('split-tunnel.conf'))[1]).not.toBe(ids(a)[1]);
    expect(new Set(ids(a)).size).toBe(ids(a).length);
    expect(stableUuid('x')).toBe(stableUuid('x'));
  });
});

describe('the profile command', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'burrow-profile-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes NAME.mobileconfig with mode 0600, also over a wider file, and refuses other formats with exit code 2', () => {
    const out = join(tmp, 'p.mobileconfig');
    writeFileSync(out, 'old', { mode: 0o644 });
    execFileSync(process.execPath, [CLI, 'profile', `${dir}/full-tunnel.conf`, '--format', 'mobileconfig', '-o', out]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect((parse(readFileSync(out, 'utf8')) as Dict).PayloadType).toBe('Configuration');
    execFileSync(process.execPath, [CLI, 'profile', join(process.cwd(), dir, 'server.conf'), '--format', 'mobileconfig', '--per-app'], { cwd: tmp });
    expect(statSync(join(tmp, 'server.mobileconfig')).mode & 0o777).toBe(0o600);
    let code = 0;
    try {
      execFileSync(process.execPath, [CLI, 'profile', `${dir}/full-tunnel.conf`, '--format', 'json'], { stdio: 'pipe' });
    } catch (e) {
      code = (e as { status: number }).status;
    }
    expect(code).toBe(2);
  });
});
