// src/config: wg-quick text <-> Config. Fixtures, round trips, RFC 5952, error codes
// and lines, secrets kept out of errors, and fuzzing that only ConfigError escapes.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import {
  type Config,
  ConfigError,
  formatConfig,
  formatEndpoint,
  formatIpv4,
  formatIpv6,
  HIDDEN,
  type IpPrefix,
  makePrefix,
  maskPrefix,
  parseConfig,
  parseEndpoint,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  type PeerConfig,
} from '../../src/config/index.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'configs');
const BAD = join(FIXTURES, 'bad');
const goodFixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.conf')).sort();
const badFixtures = readdirSync(BAD).filter((f) => f.endsWith('.conf')).sort();

const read = (dir: string, name: string): string => readFileSync(join(dir, name), 'utf8');
const parseFixture = (name: string): Config => parseConfig(read(FIXTURES, name), name);

/** Every 16-character window of every key-like token of `text`. */
function keyWindows(text: string): string[] {
  const windows: string[] = [];
  for (const token of text.match(/[A-Za-z0-9+/]{40,}=?/g) ?? []) {
    for (let i = 0; i + 16 <= token.length; i++) windows.push(token.slice(i, i + 16));
  }
  return windows;
}

function expectNoKeyText(error: ConfigError, source: string): void {
  for (const w of keyWindows(source)) {
    expect(error.message).not.toContain(w);
    expect(error.key ?? '').not.toContain(w);
  }
}

function catchConfigError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('fixtures', () => {
  it('has fixtures to test', () => {
    expect(goodFixtures.length).toBeGreaterThanOrEqual(6);
    expect(badFixtures.length).toBeGreaterThanOrEqual(10);
  });

  it.each(goodFixtures)('%s parses and round-trips', (name) => {
    const config = parseFixture(name);
    const text = formatConfig(config);
    expect(parseConfig(text, name)).toEqual(config);
    // Formatting is a fixed point after one pass.
    expect(formatConfig(parseConfig(text, name))).toBe(text);
  });

  it('full tunnel: both families, DNS servers and search domain, a name kept as a name', () => {
    const c = parseFixture('full-tunnel.conf');
    expect(c.interface.addresses.map((a) => a.text)).toEqual(['10.64.0.2/32', 'fd64::2/128']);
    expect(c.interface.dns).toEqual({ servers: ['10.64.0.1', 'fd64::1'], search: ['corp.example.net'] });
    expect(c.peers).toHaveLength(1);
    const peer = c.peers[0]!;
    expect(encodeKey(peer.publicKey)).toBe('GwOZL0s2n24h1QiONJKV6a3hfUzoYtL9+k49nX/VCXo=');
    expect(peer.allowedIPs.map((a) => a.text)).toEqual(['0.0.0.0/0', '::/0']);
    expect(peer.endpoint).toEqual({ host: 'vpn.example.net', port: 51820 });
    expect(peer.persistentKeepalive).toBe(25);
    expect(peer.presharedKey).toBeUndefined();
  });

  it('IPv6 endpoint in brackets', () => {
    const c = parseFixture('ipv6-endpoint.conf');
    expect(c.peers[0]!.endpoint).toEqual({ host: '2001:db8::1', port: 51820 });
    expect(c.interface.listenPort).toBe(51821);
    expect(formatConfig(c)).toContain('Endpoint = [2001:db8::1]:51820\n');
  });

  it('server: repeated keys accumulate in order, hex FwMark, numbered table', () => {
    const c = parseFixture('server.conf');
    expect(c.interface.addresses.map((a) => a.text)).toEqual(['10.99.0.1/24', 'fd99::1/64']);
    expect(c.interface.fwMark).toBe(0xca6c);
    expect(c.interface.table).toBe(1234);
    expect(c.interface.mtu).toBe(1420);
    expect(c.interface.saveConfig).toBe(true);
    expect(c.interface.preUp).toEqual(['sysctl -w net.ipv4.ip_forward=1']);
    expect(c.interface.postUp).toHaveLength(2);
    expect(c.interface.postUp[0]).toMatch(/^iptables /);
    expect(c.interface.postUp[1]).toMatch(/^ip6tables /);
    expect(c.peers).toHaveLength(3);
    expect(c.peers[0]!.presharedKey).toHaveLength(32);
    expect(c.peers[2]!.allowedIPs.map((a) => a.text)).toEqual(['10.99.0.4/32', '192.168.77.0/24']);
  });

  it("Burrow's own keys", () => {
    const i = parseFixture('burrow-kill-switch.conf').interface;
    expect(i.includeAllNetworks).toBe(true);
    expect(i.excludeLocalNetworks).toBe(true);
    expect(i.mailDomains).toEqual(['example.com', 'mail.example.org']);
    expect(i.calendarDomains).toEqual(['calendar.example.com']);
    expect(i.contactsDomains).toEqual(['contacts.example.com', 'dir.example.org']);
  });

  it('hand-edited file: case, tabs, comments, CRLF, host bits and upper-case text are normalised', () => {
    const c = parseFixture('messy.conf');
    expect(encodeKey(c.interface.privateKey)).toBe('EPZl/fR9cVMiEUMJbFAYOQ1LzUzQOnHauBLkEvWYHEM=');
    // Interface addresses keep their host bits: they are the interface's own address.
    expect(c.interface.addresses.map((a) => a.text)).toEqual(['10.0.0.7/24', '2001:db8::7/64']);
    expect(c.interface.dns).toEqual({ servers: ['1.1.1.1', '2606:4700:4700::1111'], search: ['home.example.net'] });
    expect(c.interface.table).toBe('off');
    // AllowedIPs lose them, as `wg show` prints them.
    expect(c.peers[0]!.allowedIPs.map((a) => a.text)).toEqual(['10.0.0.0/24', '2001:db8::/64']);
    expect(c.peers[0]!.endpoint).toEqual({ host: 'vpn.example.net', port: 51820 });
    expect(c.peers[0]!.persistentKeepalive).toBe(0);
  });

  it("writes wg-quick's spelling, in a stable order", () => {
    expect(formatConfig(parseFixture('burrow-kill-switch.conf'))).toBe(
      [
        '[Interface]',
        'PrivateKey = OBfsiRTxDZZAY2yDdPNZkv5mjHk2PgD4fs0ozU0a438=',
        'Address = 10.70.0.9/32, fd70::9/128',
        'DNS = 10.70.0.1',
        'IncludeAllNetworks = true',
        'ExcludeLocalNetworks = true',
        'MailDomains = example.com, mail.example.org',
        'CalendarDomains = calendar.example.com',
        'ContactsDomains = contacts.example.com, dir.example.org',
        '',
        '[Peer]',
        'PublicKey = uh40w+eCysa2QKYK8ig1NQF3lG4RbxtQmtugCjzzUwU=',
        'PresharedKey = A+5tyARDnVlxRvSS6zTHO3b2JVXKATOYdgl82u8kzd0=',
        'AllowedIPs = 0.0.0.0/0, ::/0',
        'Endpoint = gw.example.com:51820',
        'PersistentKeepalive = 25',
        '',
      ].join('\n'),
    );
  });
});

describe('bad fixtures', () => {
  it.each(badFixtures)('%s is refused with the code and line it names', (name) => {
    const text = read(BAD, name);
    const expectation = /^# expect: (ERR_CONFIG_[A-Z_]+)(?: line (\d+))?$/m.exec(text);
    expect(expectation, `${name} has no "# expect:" line`).not.toBeNull();
    expect(text.split('\n')[0], `${name} says what is wrong on its first line`).toMatch(/^# Wrong: /);
    const [, code, line] = expectation!;
    const error = catchConfigError(() => parseConfig(text, name));
    expect(error.code).toBe(code);
    expect(error.file).toBe(name);
    expect(error.line).toBe(line === undefined ? undefined : Number(line));
    const where = line === undefined ? `${name}: ` : `${name}:${line}: `;
    expect(error.message.startsWith(where + (error.key === undefined ? '' : `${error.key}: `))).toBe(true);
    expect(error.detail.length).toBeGreaterThan(10);
    expectNoKeyText(error, text);
  });

  it('a bad key says what is wrong with it, in the documented form', () => {
    const error = catchConfigError(() => parseConfig(read(BAD, 'truncated-private-key.conf'), 'wg0.conf'));
    expect(error.message).toBe("wg0.conf:4: PrivateKey: a key is 44 base64 characters ending in '=', got 40 characters");
  });

  it('suggests the key that was meant', () => {
    const error = catchConfigError(() => parseConfig('[Peer]\nAllowed IPs = 10.0.0.0/8\n', 'x.conf'));
    expect(error.code).toBe('ERR_CONFIG_UNKNOWN_KEY');
    expect(error.message).toBe("x.conf:2: Allowed IPs: unknown key: did you mean AllowedIPs?");
  });
});

const KEY = 'IKvLucxkTD1m+b8WzTsC8SukysAMeZGrJWWU5A21LmY=';
const PEER = 'GwOZL0s2n24h1QiONJKV6a3hfUzoYtL9+k49nX/VCXo=';
const base = (extra: string, peer = ''): string =>
  `[Interface]\nPrivateKey = ${KEY}\n${extra}\n[Peer]\nPublicKey = ${PEER}\n${peer}\n`;

describe('parseConfig details', () => {
  it.each([
    ['Address = 10.0.0.2', '10.0.0.2/32'],
    ['Address = fd00::2', 'fd00::2/128'],
    ['Address = 10.0.0.2/24 10.0.1.2/24', '10.0.0.2/24 10.0.1.2/24'],
    ['Address = ::ffff:192.0.2.1/128', '::ffff:192.0.2.1/128'],
  ])('%s', (line, texts) => {
    expect(parseConfig(base(line), 't').interface.addresses.map((a) => a.text)).toEqual(texts.split(' '));
  });

  it('an empty list is allowed, an empty entry is not', () => {
    expect(parseConfig(base('DNS =', 'AllowedIPs ='), 't').peers[0]!.allowedIPs).toEqual([]);
    expect(catchConfigError(() => parseConfig(base('', 'AllowedIPs = 10.0.0.0/8,,10.1.0.0/16'), 't')).code).toBe('ERR_CONFIG_SYNTAX');
  });

  it('AllowedIPs are comma-separated only, as `wg` reads them', () => {
    const error = catchConfigError(() => parseConfig(base('', 'AllowedIPs = 10.0.0.0/8 10.1.0.0/16'), 't'));
    expect(error.code).toBe('ERR_CONFIG_BAD_ADDRESS');
    expect(error.detail).toContain('separate entries with commas');
  });

  it.each([
    ['FwMark = off', 0],
    ['FwMark = 0', 0],
    ['FwMark = 51820', 51820],
    ['FwMark = 0xFFFFFFFF', 0xffffffff],
  ])('%s', (line, mark) => {
    expect(parseConfig(base(line), 't').interface.fwMark).toBe(mark);
  });

  it.each([
    ['Table = auto', 'auto'],
    ['Table = OFF', 'off'],
    ['Table = 254', 254],
  ])('%s', (line, table) => {
    expect(parseConfig(base(line), 't').interface.table).toBe(table);
  });

  it.each([
    ['', 'ListenPort = -1', 'ERR_CONFIG_BAD_PORT'],
    ['', 'ListenPort = 0x10', 'ERR_CONFIG_BAD_PORT'],
    ['', 'ListenPort = https', 'ERR_CONFIG_BAD_PORT'],
    ['', 'ListenPort =', 'ERR_CONFIG_EMPTY_VALUE'],
    ['', 'FwMark = 010', 'ERR_CONFIG_BAD_FWMARK'],
    ['', 'FwMark = 0x100000000', 'ERR_CONFIG_BAD_FWMARK'],
    ['', 'Table = 0', 'ERR_CONFIG_BAD_TABLE'],
    ['', 'MTU = 65536', 'ERR_CONFIG_BAD_MTU'],
    ['', 'MTU = 1279\nAddress = fd00::1/64', 'ERR_CONFIG_BAD_MTU'],
    ['', 'IncludeAllNetworks = 1', 'ERR_CONFIG_BAD_BOOLEAN'],
    ['', 'DNS = 1.1.1', 'ERR_CONFIG_BAD_ADDRESS'],
    ['', 'DNS = fe80::1%eth0', 'ERR_CONFIG_BAD_ADDRESS'],
    ['', 'DNS = -corp.example', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'MailDomains = .example.com', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'MailDomains = example.com..', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'MailDomains = ex_ample.com', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'MailDomains = b\u200dücher.example', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'MailDomains = 192.0.2.1', 'ERR_CONFIG_BAD_DOMAIN'],
    ['', `MailDomains = ${'a'.repeat(64)}.com`, 'ERR_CONFIG_BAD_DOMAIN'],
    ['', `MailDomains = ${'abcdefgh.'.repeat(28)}com`, 'ERR_CONFIG_BAD_DOMAIN'],
    ['', 'PostUp =', 'ERR_CONFIG_EMPTY_VALUE'],
    ['', 'PrivateKey = x', 'ERR_CONFIG_DUPLICATE_KEY'],
    ['Endpoint = [192.0.2.1]:51820', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = [2001:db8::1]51820', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = [2001:db8::1', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = vpn.example.net', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = vpn.example.net:65536', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = :51820', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['Endpoint = 192.0.2:51820', '', 'ERR_CONFIG_BAD_ENDPOINT'],
    ['PersistentKeepalive = 65536', '', 'ERR_CONFIG_BAD_KEEPALIVE'],
    ['AllowedIPs = 10.0.0.0/08', '', 'ERR_CONFIG_BAD_ADDRESS'],
    ['AllowedIPs = ::/129', '', 'ERR_CONFIG_BAD_ADDRESS'],
    ['PresharedKey = ', '', 'ERR_CONFIG_EMPTY_VALUE'],
    ['ListenPort = 1', '', 'ERR_CONFIG_WRONG_SECTION'],
  ])('[Peer] %s / [Interface] %s -> %s', (peerLine, ifaceLine, code) => {
    expect(catchConfigError(() => parseConfig(base(ifaceLine, peerLine), 't')).code).toBe(code);
  });

  it('keeps a hook exactly, with "=" and quotes, and cuts it at "#" as wg-quick does', () => {
    const c = parseConfig(base('PostUp = echo "a=b" > /tmp/x # note'), 't');
    expect(c.interface.postUp).toEqual(['echo "a=b" > /tmp/x']);
  });

  it('accepts [Peer] before [Interface], and a leading byte order mark', () => {
    const c = parseConfig(`\ufeff[Peer]\nPublicKey = ${PEER}\n[Interface]\nPrivateKey = ${KEY}\n`, 't');
    expect(c.peers).toHaveLength(1);
  });

  it('endpoint names and IPv4 endpoints', () => {
    const peer = (line: string): PeerConfig => parseConfig(base('', line), 't').peers[0]!;
    expect(peer('Endpoint = 192.0.2.1:1').endpoint).toEqual({ host: '192.0.2.1', port: 1 });
    expect(peer('Endpoint = [::FFFF:192.0.2.1]:65535').endpoint).toEqual({ host: '::ffff:192.0.2.1', port: 65535 });
    expect(peer('Endpoint = xn--bcher-kva.example:443').endpoint).toEqual({ host: 'xn--bcher-kva.example', port: 443 });
  });
});

describe('endpoints: one parser for the file and the control socket', () => {
  it.each([
    ['198.51.100.9:51820', { host: '198.51.100.9', port: 51820 }],
    ['[2001:DB8:0::9]:443', { host: '2001:db8::9', port: 443 }],
    ['[::ffff:192.0.2.1]:1', { host: '::ffff:192.0.2.1', port: 1 }],
  ])('%s', (text, endpoint) => {
    expect(parseEndpoint(text, { names: true })).toEqual(endpoint);
    expect(parseEndpoint(text, { names: false })).toEqual(endpoint);
    expect(formatEndpoint(endpoint)).toBe(text.toLowerCase().replace(':0::', '::'));
  });

  it('a name is kept as a name in a file (lower case), and refused where only addresses go', () => {
    expect(parseEndpoint('VPN.Example.com:51820', { names: true })).toEqual({ host: 'vpn.example.com', port: 51820 });
    expect(() => parseEndpoint('vpn.example.com:51820', { names: false })).toThrow(/an IP address here, not a name/);
  });

  it.each([
    '198.51.100.9', '198.51.100.9:0', '198.51.100.9:65536', '198.51.100.9:051820', '2001:db8::1:51820', '[198.51.100.9]:1',
    '[2001:db8::1]51820', '[2001:db8::1', '[fe80::1%eth0]:1', ':51820', '198.051.100.9:1', '',
  ])('refuses %j in both forms', (text) => {
    for (const names of [true, false]) {
      expect(() => parseEndpoint(text, { names })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_BAD_ENDPOINT' }));
    }
  });
});

describe('trimming', () => {
  it('trims exactly POSIX [[:space:]] at both ends, as wg-quick: not a no-break space, and never inside', () => {
    const config = parseConfig(base(' \t\v\fPostUp\r\t = \v echo  a \f\r\n'), 't');
    expect(config.interface.postUp).toEqual(['echo  a']);
    expect(() => parseConfig(base('MTU = 1420\u00a0'), 't')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_BAD_MTU' }));
    expect(parseConfig(base(`MTU = 1420${' '.repeat(100_000)}`), 't').interface.mtu).toBe(1420);
  });
});

describe('formatConfig', () => {
  const config = parseFixture('server.conf');

  it('redact hides the private and preshared keys, and only those', () => {
    const shown = formatConfig(config, { redact: true });
    expect(shown).toContain(`PrivateKey = ${HIDDEN}\n`);
    expect(shown).toContain(`PresharedKey = ${HIDDEN}\n`);
    expect(shown).not.toContain(encodeKey(config.interface.privateKey));
    expect(shown).not.toContain(encodeKey(config.peers[0]!.presharedKey!));
    expect(shown).toContain(`PublicKey = ${encodeKey(config.peers[0]!.publicKey)}\n`);
  });

  it('writes the keys in full without redact', () => {
    const text = formatConfig(config);
    expect(text).toContain(`PrivateKey = ${encodeKey(config.interface.privateKey)}\n`);
    expect(text).toContain(`PresharedKey = ${encodeKey(config.peers[0]!.presharedKey!)}\n`);
  });

  it.each([
    ['a hook with a line break', { ...config, interface: { ...config.interface, postUp: ['true\nPostUp = rm -rf /'] } }, 'ERR_CONFIG_UNREPRESENTABLE'],
    ['a hook with "#"', { ...config, interface: { ...config.interface, postUp: ['echo #1'] } }, 'ERR_CONFIG_UNREPRESENTABLE'],
    ['a domain with a line break', { ...config, interface: { ...config.interface, mailDomains: ['a.example\n[Peer]'] } }, 'ERR_CONFIG_BAD_DOMAIN'],
    ['a DNS server that is not an address', { ...config, interface: { ...config.interface, dns: { servers: ['dns.example'], search: [] } } }, 'ERR_CONFIG_BAD_ADDRESS'],
    ['an MTU out of range', { ...config, interface: { ...config.interface, mtu: 70000 } }, 'ERR_CONFIG_BAD_MTU'],
    ['a fractional port', { ...config, interface: { ...config.interface, listenPort: 1.5 } }, 'ERR_CONFIG_BAD_PORT'],
    ['ExcludeLocalNetworks alone', { ...config, interface: { ...config.interface, excludeLocalNetworks: true } }, 'ERR_CONFIG_EXCLUDE_WITHOUT_INCLUDE'],
    ['two peers with one key', { ...config, peers: [config.peers[0]!, { ...config.peers[0]!, allowedIPs: [] }] }, 'ERR_CONFIG_DUPLICATE_PEER'],
    ['an endpoint host with a space', { ...config, peers: [{ ...config.peers[0]!, endpoint: { host: 'a b', port: 1 } }] }, 'ERR_CONFIG_BAD_ENDPOINT'],
  ] as [string, Config, string][])('refuses %s', (_, bad, code) => {
    const error = catchConfigError(() => formatConfig(bad));
    expect(error.code).toBe(code);
    expect(error.file).toBe('(config)');
    expect(error.line).toBeUndefined();
  });
});

describe('IP text', () => {
  // RFC 5952 §4 and the examples of §2 and §4.2.
  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of two equal runs
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.1: no leading zeros
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: one zero group stays
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // §4.2.3: the longest run
    ['2001:DB8::AbCd', '2001:db8::abcd'], // §4.3: lower case
    ['2001:db8:aaaa:bbbb:cccc:dddd:eeee:0001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['fe80:0:0:0:0:0:0:1', 'fe80::1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // §5: IPv4-mapped in mixed notation
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['::192.0.2.1', '::c000:201'],
    ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4:5:6:c000:201'],
  ])('%s -> %s', (input, canonical) => {
    expect(formatIpv6(parseIpv6(input))).toBe(canonical);
  });

  it.each([
    '',
    ':',
    ':::',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1::2::3',
    '12345::',
    '::g',
    ':1::',
    '1::2:',
    ':1:2:3:4:5:6:7',
    'fe80::1%eth0',
    '1.2.3.4::',
    '::1.2.3',
    '::256.0.0.1',
    '::1.2.3.4:5',
    ' ::1',
  ])('refuses IPv6 %j', (input) => {
    expect(() => parseIpv6(input)).toThrow();
  });

  it.each(['1.2.3', '01.2.3.4', '256.1.1.1', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.-4', '1..3.4', '1.2.3.4 ', '0x1.2.3.4', '１.2.3.4'])(
    'refuses IPv4 %j',
    (input) => {
      expect(() => parseIpv4(input)).toThrow();
    },
  );

  it('IPv6 text agrees with the WHATWG URL serialiser (RFC 5952 compression) on random addresses', () => {
    const notMapped = fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 255 && b[11] === 255));
    // Sparse addresses, so that zero runs of every length turn up.
    const sparse = fc.array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xab), { minLength: 8, maxLength: 8 }).map((groups) => {
      const b = new Uint8Array(16);
      groups.forEach((g, i) => {
        b[2 * i] = g >>> 8;
        b[2 * i + 1] = g & 255;
      });
      return b;
    });
    fc.assert(
      fc.property(fc.oneof(notMapped, sparse.filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 255 && b[11] === 255))), (bytes) => {
        const text = formatIpv6(bytes);
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
        expect(parseIpv6(text)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('IPv4 text round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
        expect(parseIpv4(formatIpv4(bytes))).toEqual(bytes);
      }),
    );
  });

  it('prefixes: a bare address is a host prefix, host bits are cleared only on request', () => {
    expect(parsePrefix('10.0.0.1').text).toBe('10.0.0.1/32');
    expect(parsePrefix('10.0.0.1/24').text).toBe('10.0.0.1/24');
    expect(parsePrefix('10.0.0.1/24', { mask: true }).text).toBe('10.0.0.0/24');
    expect(parsePrefix('2001:db8::ffff:1/33', { mask: true }).text).toBe('2001:db8::/33');
    expect(parsePrefix('255.255.255.255/0', { mask: true }).text).toBe('0.0.0.0/0');
    expect(parsePrefix('10.255.255.255/9', { mask: true }).text).toBe('10.128.0.0/9');
    expect(parsePrefix('::ffff:10.1.2.3/120', { mask: true }).text).toBe('::ffff:10.1.2.0/120');
  });
});

// ---- Random valid Configs ----------------------------------------------------------

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const ipv6 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.array(fc.constantFrom(0, 0, 1, 0xffff), { minLength: 8, maxLength: 8 }).map((g) => {
    const b = new Uint8Array(16);
    g.forEach((x, i) => {
      b[2 * i] = x >>> 8;
      b[2 * i + 1] = x & 255;
    });
    return b;
  }),
);
const prefix: fc.Arbitrary<IpPrefix> = fc.oneof(
  fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => makePrefix(4, a, l)),
  fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([a, l]) => makePrefix(6, a, l)),
);
const ipText = fc.oneof(ipv4.map(formatIpv4), ipv6.map(formatIpv6));
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
const domain = fc
  .tuple(fc.array(label, { minLength: 0, maxLength: 3 }), fc.stringMatching(/^[a-z][a-z0-9-]{0,6}[a-z]$/))
  .map(([labels, tld]) => [...labels, tld].join('.'));
const hook = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
  .map((s) => s.replace(/[#\r\n]/g, '').replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, ''))
  .filter((s) => s !== '');
const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });

const peer = fc.record({
  publicKey: key,
  presharedKey: opt(key),
  allowedIPs: fc.array(prefix.map(maskPrefix), { maxLength: 4 }),
  endpoint: opt(fc.tuple(fc.oneof(ipText, domain), fc.integer({ min: 1, max: 65535 })).map(([host, port]) => ({ host, port }))),
  persistentKeepalive: opt(fc.integer({ min: 0, max: 65535 })),
});

/** Drops undefined members, as parseConfig leaves absent keys out. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const config: fc.Arbitrary<Config> = fc
  .record({
    privateKey: key,
    addresses: fc.array(prefix, { maxLength: 4 }),
    listenPort: opt(fc.integer({ min: 0, max: 65535 })),
    servers: fc.array(ipText, { maxLength: 3 }),
    search: fc.array(domain, { maxLength: 2 }),
    mtu: opt(fc.integer({ min: 576, max: 65535 })),
    table: opt(fc.oneof(fc.constantFrom('off' as const, 'auto' as const), fc.integer({ min: 1, max: 0xffffffff }))),
    fwMark: opt(fc.integer({ min: 0, max: 0xffffffff })),
    saveConfig: fc.boolean(),
    preUp: fc.array(hook, { maxLength: 2 }),
    postUp: fc.array(hook, { maxLength: 2 }),
    preDown: fc.array(hook, { maxLength: 2 }),
    postDown: fc.array(hook, { maxLength: 2 }),
    includeAllNetworks: fc.boolean(),
    excludeLocalNetworks: fc.boolean(),
    mailDomains: fc.array(domain, { maxLength: 3 }),
    calendarDomains: fc.array(domain, { maxLength: 3 }),
    contactsDomains: fc.array(domain, { maxLength: 3 }),
    peers: fc.uniqueArray(peer, { maxLength: 4, selector: (p) => encodeKey(p.publicKey) }),
  })
  .map((r): Config => {
    const hasV6 = r.addresses.some((a) => a.family === 6);
    // A prefix may belong to one peer only.
    const owner = new Map<string, number>();
    const peers = r.peers.map((p, n) => {
      const allowedIPs = p.allowedIPs.filter((a) => (owner.get(a.text) ?? n) === n && owner.set(a.text, n));
      return compact({ ...p, allowedIPs });
    });
    return {
      interface: compact({
        privateKey: r.privateKey,
        addresses: r.addresses,
        listenPort: r.listenPort,
        dns: { servers: r.servers, search: r.search },
        mtu: r.mtu === undefined ? undefined : hasV6 ? Math.max(1280, r.mtu) : r.mtu,
        table: r.table,
        fwMark: r.fwMark,
        saveConfig: r.saveConfig,
        preUp: r.preUp,
        postUp: r.postUp,
        preDown: r.preDown,
        postDown: r.postDown,
        includeAllNetworks: r.includeAllNetworks,
        excludeLocalNetworks: r.includeAllNetworks && r.excludeLocalNetworks,
        mailDomains: r.mailDomains,
        calendarDomains: r.calendarDomains,
        contactsDomains: r.contactsDomains,
      }),
      peers,
    };
  });

describe('properties', () => {
  it('random valid Configs round-trip through text', () => {
    fc.assert(
      fc.property(config, (c) => {
        expect(parseConfig(formatConfig(c), 'random.conf')).toStrictEqual(c);
      }),
      { numRuns: 300 },
    );
  });

  const lineArb = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.constantFrom('[Interface]', '[Peer]', '[interface]', '[', ']', '=', '#', '', `PrivateKey = ${KEY}`, `PublicKey = ${PEER}`),
    fc
      .tuple(
        fc.constantFrom('PrivateKey', 'PublicKey', 'PresharedKey', 'Address', 'DNS', 'MTU', 'Table', 'FwMark', 'ListenPort', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive', 'SaveConfig', 'IncludeAllNetworks', 'ExcludeLocalNetworks', 'MailDomains', 'PostUp'),
        fc.oneof(fc.string({ maxLength: 40 }), ipText, domain, fc.integer().map(String), fc.constantFrom('[::1]:1', 'off', 'true', '0x', '1.2.3.4/33', KEY)),
      )
      .map(([k, v]) => `${k} = ${v}`),
  );

  it('any text gives a Config or a ConfigError, never another exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.array(lineArb, { maxLength: 14 }).map((l) => l.join('\n'))), (text) => {
        try {
          parseConfig(text, 'fuzz.conf');
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          expect(error.message.startsWith('fuzz.conf')).toBe(true);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('errors never show a private key, wherever it lands in the file', () => {
    const variants = (k: string): string[] => [k, k.slice(0, 43), k.slice(0, 30), k.slice(3), `${k.slice(0, 20)}!${k.slice(21)}`, `${k}${k}`];
    fc.assert(
      fc.property(config, fc.nat(), fc.nat(), fc.nat(), (c, where, which, how) => {
        const secret = encodeKey(c.interface.privateKey);
        const lines = formatConfig(c).split('\n');
        const injected = variants(secret)[which % 6]!;
        const at = where % lines.length;
        const forms = [
          injected,
          `${injected} = x`,
          `Address = ${injected}`,
          `Endpoint = ${injected}:1`,
          `Endpoint = [${injected}]:1`,
          `MailDomains = ${injected}`,
          `DNS = ${injected}`,
          `[${injected}]`,
          `PrivateKey = ${injected}`,
          `${lines[at]}${injected}`,
        ];
        lines.splice(at, 1, forms[how % forms.length]!);
        const text = lines.join('\n');
        try {
          parseConfig(text, 'leak.conf');
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          for (let i = 0; i + 16 <= secret.length; i++) {
            expect(error.message).not.toContain(secret.slice(i, i + 16));
            expect(error.key ?? '').not.toContain(secret.slice(i, i + 16));
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});
