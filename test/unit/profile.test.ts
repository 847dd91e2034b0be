// `burrow profile --format mobileconfig`: parsed back with the plist library, checked
// against the keys Apple's device-management schema documents for each payload
// (github.com/apple/device-management, mdm/profiles/com.apple.vpn.managed*.yaml and
// the common payload keys), the tunnel configuration round-tripped through VendorConfig;
// the same for the server's `client-config NAME --format mobileconfig`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'plist';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
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

describe('burrow server client-config --format mobileconfig', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'burrow-server-profile-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const ifname = `bsp${process.pid.toString(36)}`.slice(0, 15);
  const conf = join(tmp, `${ifname}.conf`);
  const run = (args: string[]): { code: number; stdout: string; stderr: string } => {
    try {
      return { code: 0, stdout: execFileSync(process.execPath, [CLI, ...args], { cwd: tmp, encoding: 'utf8', stdio: 'pipe' }), stderr: '' };
    } catch (e) {
      const x = e as { status: number; stdout: string; stderr: string };
      return { code: x.status, stdout: x.stdout, stderr: x.stderr };
    }
  };
  const ids = (p: Dict): string[] => [p.PayloadIdentifier, p.PayloadUUID, ...(p.PayloadContent as Dict[]).flatMap((c) => [c.PayloadIdentifier, c.PayloadUUID])].map(String);
  const profileAt = (path: string): Dict => parse(readFileSync(path, 'utf8')) as Dict;
  const vendorOf = (p: Dict): string => ((p.PayloadContent as Dict[])[0]!.VendorConfig as Dict).WgQuickConfig as string;

  it("the client's configuration through the same code as burrow profile: documented keys, 0600, round-tripped, the key only on request", () => {
    expect(run(['server', 'init', '--dir', tmp, '-i', ifname, '--endpoint', 'vpn.example.net:51820', '--subnet', '10.67.0.0/24']).code).toBe(0);
    const added = run(['server', 'add-peer', 'phone', '--config', conf]);
    expect(added.code, added.stderr).toBe(0);
    const client = parseConfig(added.stdout, 'phone.conf');

    const withKey = run(['server', 'client-config', 'phone', '--config', conf, '--format', 'mobileconfig', '--include-private-key', '-o', 'with-key.mobileconfig']);
    expect(withKey.code, withKey.stderr).toBe(0);
    expect(withKey.stdout).toBe('with-key.mobileconfig\n');
    const path = join(tmp, 'with-key.mobileconfig');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const p = profileAt(path);
    documented(p, PROFILE, ['PayloadContent', 'PayloadIdentifier', 'PayloadType', 'PayloadUUID', 'PayloadVersion']);
    const [vpn, ...rest] = p.PayloadContent as Dict[];
    expect(rest).toEqual([]);
    documented(vpn!, VPN_PAYLOAD, ['PayloadType', 'PayloadIdentifier', 'PayloadUUID', 'PayloadVersion', 'VPNType', 'UserDefinedName']);
    expect(vpn).toMatchObject({ PayloadType: 'com.apple.vpn.managed', VPNType: 'VPN', VPNSubType: 'net.burrow.app', UserDefinedName: 'phone' });
    documented(vpn!.VPN as Dict, VPN_DICT, ['RemoteAddress']);
    expect((vpn!.VPN as Dict).RemoteAddress).toBe('vpn.example.net:51820');
    expect(parseConfig(vendorOf(p), 'vendor')).toEqual(client);

    // The very profile `burrow profile phone.conf` writes from the printed configuration.
    writeFileSync(join(tmp, 'phone.conf'), added.stdout, { mode: 0o600 });
    expect(run(['profile', 'phone.conf', '--format', 'mobileconfig', '--include-private-key', '-o', 'direct.mobileconfig']).code).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe(readFileSync(join(tmp, 'direct.mobileconfig'), 'utf8'));

    // Without the flag: no key anywhere, the same identity (installing it updates the other).
    expect(run(['server', 'client-config', 'phone', '--config', conf, '--format', 'mobileconfig', '--bundle-id', 'com.example.vpn']).code).toBe(0);
    const bare = readFileSync(join(tmp, 'phone.mobileconfig'), 'utf8');
    expect(bare).not.toContain(encodeKey(client.interface.privateKey));
    expect(bare).not.toContain('PrivateKey');
    const b = parse(bare) as Dict;
    expect((b.PayloadContent as Dict[])[0]!.VPNSubType).toBe('com.example.vpn');
    const bareAgain = run(['server', 'client-config', 'phone', '--config', conf, '--format', 'mobileconfig', '--bundle-id', 'com.example.vpn', '-o', 'again.mobileconfig']);
    expect(bareAgain.code).toBe(0);
    expect(ids(profileAt(join(tmp, 'again.mobileconfig')))).toEqual(ids(b));
  });

  it("a client that keeps its own key: the profile's identity is its public key's, and --include-private-key is refused", () => {
    const own = generatePrivateKey();
    expect(run(['server', 'add-peer', 'tablet', '--config', conf, '--public-key', encodeKey(publicKeyOf(own))]).code).toBe(0);
    const refused = run(['server', 'client-config', 'tablet', '--config', conf, '--format', 'mobileconfig', '--include-private-key']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--include-private-key: 'tablet' keeps its private key on the client");
    expect(existsSync(join(tmp, 'tablet.mobileconfig'))).toBe(false);
    expect(run(['server', 'client-config', 'tablet', '--config', conf, '--format', 'mobileconfig']).code).toBe(0);
    const p = profileAt(join(tmp, 'tablet.mobileconfig'));
    // The client's own file (its key filled in) gives the same identity through `burrow profile`.
    const text = run(['server', 'client-config', 'tablet', '--config', conf]).stdout.replace(/^# PrivateKey = .*$/m, `PrivateKey = ${encodeKey(own)}`);
    writeFileSync(join(tmp, 'tablet.conf'), text, { mode: 0o600 });
    expect(run(['profile', 'tablet.conf', '--format', 'mobileconfig', '-o', 'own.mobileconfig']).code).toBe(0);
    expect(ids(p)).toEqual(ids(profileAt(join(tmp, 'own.mobileconfig'))));
    expect(parseConfig(`[Interface]\nPrivateKey = ${encodeKey(own)}\n${vendorOf(p).replace('[Interface]\n', '')}`, 'vendor')).toEqual(parseConfig(text, 'tablet.conf'));
  });

  it('--qr and --png go only with the wg-quick text; an unknown format exits 2', () => {
    expect(run(['server', 'client-config', 'phone', '--config', conf, '--format', 'mobileconfig', '--qr']).stderr).toContain('--qr and --png go with --format conf');
    const bad = run(['server', 'client-config', 'phone', '--config', conf, '--format', 'json']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('conf, mobileconfig');
  });
});
