// The server's registry: its text form (wg-quick file plus Burrow's comments), damage
// reported with FILE:LINE, duplicates refused, address allocation, and the commands'
// registry side (the running server is the namespace tests' business).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { parseConfig, parsePrefix } from '../../src/config/index.js';
import { allocateAddresses } from '../../server/allocate.js';
import { addPeer, changePeer, clientConfig, peerStatus, since } from '../../server/peers.js';
import { appendPeerText, formatRegistry, parseRegistry, parseTime, type PeerRecord, type RegistryData, RegistryError, scanRegistry, sessionConfig } from '../../server/registry.js';
import { PgRegistry } from '../../server/pg/registry.js';
import { nextExpiry } from '../../server/reconcile.js';
import { FileRegistry, openRegistry } from '../../server/store.js';

const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
const serverKey = encodeKey(generatePrivateKey());

function file(peers: string[][], head: string[] = []): string {
  return [
    '[Interface]',
    '# burrow-server: endpoint=vpn.example.net:51820 client-to-client=false',
    ...head,
    `PrivateKey = ${serverKey}`,
    'Address = 10.8.0.1/24, fd00:8::1/64',
    'ListenPort = 51820',
    ...peers.flatMap((p) => ['', ...p]),
    '',
  ].join('\n');
}

const alice = [
  '[Peer]',
  '# burrow: name=alice created=2026-12-01T10:00:00.000Z enabled=true rx=1200 tx=3400',
  `PublicKey = ${key()}`,
  'AllowedIPs = 10.8.0.2/32, fd00:8::2/128',
];
const bob = [
  '#~ [Peer]',
  '#~ # burrow: name=bob created=2026-12-01T11:00:00.000Z enabled=false expires=2026-12-01T12:00:00.000Z rx=5 tx=6',
  `#~ PublicKey = ${key()}`,
  '#~ AllowedIPs = 10.8.0.3/32, fd00:8::3/128',
];

function damaged(text: string): RegistryError {
  try {
    parseRegistry(text, '/etc/wireguard/wg0.conf');
  } catch (e) {
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).code).toBe('ERR_REGISTRY_DAMAGED');
    return e as RegistryError;
  }
  throw new Error('parsed a damaged registry');
}

describe('registry text', () => {
  it('reads names, state, expiry and totals, and writes the same text back', () => {
    const text = file([alice, bob]);
    const data = parseRegistry(text, 'wg0.conf');
    expect(data.peers.map((p) => [p.name, p.enabled, p.expires, p.rx, p.tx])).toEqual([
      ['alice', true, undefined, 1200, 3400],
      ['bob', false, '2026-12-01T12:00:00.000Z', 5, 6],
    ]);
    expect(data.settings).toEqual({ endpoint: 'vpn.example.net:51820', clientToClient: false, dns: [] });
    expect(formatRegistry(data)).toBe(text);
  });

  it('is a wg-quick file that loads only the enabled peers', () => {
    const text = file([alice, bob]);
    const asWgQuick = parseConfig(text, 'wg0.conf');
    expect(asWgQuick.peers.map((p) => p.allowedIPs.map((a) => a.text))).toEqual([['10.8.0.2/32', 'fd00:8::2/128']]);
    expect(sessionConfig(parseRegistry(text, 'wg0.conf')).peers).toHaveLength(1);
  });

  it('adopts a peer added by hand without a burrow line, under a name made from its key', () => {
    const k = key();
    const data = parseRegistry(file([['[Peer]', `PublicKey = ${k}`, 'AllowedIPs = 10.8.0.9/32']]), 'wg0.conf');
    expect(data.peers[0]!.name).toBe(`peer-${k.replace(/[^A-Za-z0-9]/g, '').slice(0, 8)}`);
    expect(data.peers[0]!.enabled).toBe(true);
  });

  it.each([
    ['a bad count', [alice.map((l) => l.replace('rx=1200', 'rx=12k'))], 8, 'rx: expected a count of bytes'],
    ['an unknown field', [alice.map((l) => l.replace('rx=1200', 'colour=blue'))], 8, 'unknown field "colour"'],
    ['a bad time', [alice.map((l) => l.replace('created=2026-12-01T10:00:00.000Z', 'created=yesterday'))], 8, 'created: expected an ISO 8601 time'],
    ['a disabled peer with one line not behind #~', [bob.map((l, i) => (i === 3 ? l.slice(3) : l))], 10, 'expected "#~ " before this line'],
    ['#~ inside an enabled peer', [[...alice, '#~ PersistentKeepalive = 25']], 11, 'a line behind "#~ " in an enabled peer'],
    ['enabled=true behind #~', [bob.map((l) => l.replace('enabled=false', 'enabled=true'))], 8, 'enabled=true, but the peer is behind "#~ "'],
    ['a second burrow line', [[...alice.slice(0, 2), '# burrow: name=x', ...alice.slice(2)]], 9, 'a second "# burrow:" line'],
    ['a duplicate name', [alice, bob.map((l) => l.replace('name=bob', 'name=alice'))], 13, 'the name alice is taken by the [Peer] at line 7'],
    ['a duplicate address, even on a disabled peer', [alice, bob.map((l) => l.replace('10.8.0.3/32', '10.8.0.2/32'))], 15, '10.8.0.2/32 is already allowed'],
  ])('refuses %s, naming the line', (_what, peers, line, expected) => {
    const e = damaged(file(peers as string[][]));
    expect(e.message).toContain(`/etc/wireguard/wg0.conf:${line}: `);
    expect(e.message).toContain(expected);
  });

  it('refuses a duplicate public key, naming both peers', () => {
    const k = key();
    const e = damaged(file([['[Peer]', '# burrow: name=a', `PublicKey = ${k}`], ['[Peer]', '# burrow: name=b', `PublicKey = ${k}`]]));
    expect(e.message).toMatch(/wg0\.conf:13: PublicKey: the same PublicKey as the \[Peer\] at line 7/);
  });

  it('never formats data that would not read back', () => {
    const data = parseRegistry(file([alice]), 'wg0.conf');
    const twin: RegistryData = { ...data, peers: [data.peers[0]!, { ...data.peers[0]!, name: 'twin' }] };
    expect(() => formatRegistry(twin)).toThrow(/the same PublicKey/);
    expect(() => formatRegistry({ ...data, peers: [{ ...data.peers[0]!, name: 'no spaces' }] })).toThrow(/name: a peer name is/);
  });

  it('given the data it was read as, reads back only what changed, and refuses what a full read refuses, with FILE:LINE', () => {
    const read = parseRegistry(file([alice, bob]), 'wg0.conf');
    const [a, b] = read.peers as [PeerRecord, PeerRecord];
    const fresh = (over: Partial<PeerRecord> = {}, peer: Partial<PeerRecord['peer']> = {}): PeerRecord => ({
      name: 'carol', created: '2026-12-03T00:00:00.000Z', enabled: true, rx: 0, tx: 0, ...over,
      peer: { publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: [parsePrefix('10.8.0.4/32'), parsePrefix('fd00:8::4/128')], ...peer },
    });
    const cases: [string, RegistryData][] = [
      ['a new peer', { ...read, peers: [a, b, fresh()] }],
      ['a new peer named as another', { ...read, peers: [a, b, fresh({ name: 'bob' })] }],
      ["a new peer with another's key", { ...read, peers: [a, b, fresh({}, { publicKey: a.peer.publicKey })] }],
      ["a new peer with another's address", { ...read, peers: [a, b, fresh({}, { allowedIPs: [parsePrefix('10.8.0.4/32'), parsePrefix('fd00:8::3/128')] })] }],
      ["a new peer with another's address, unmasked", { ...read, peers: [a, b, fresh({}, { allowedIPs: [parsePrefix('10.8.0.2/32'), parsePrefix('fd00:8:0:0::2/128')] })] }],
      ["a new peer with the server's own key", { ...read, peers: [a, b, fresh({}, { publicKey: publicKeyOf(read.config.interface.privateKey) })] }],
      ['a kept peer renamed onto another', { ...read, peers: [a, { ...b, name: 'alice' }] }],
      ['a disabled new peer', { ...read, peers: [a, b, fresh({ enabled: false })] }],
      ['a peer removed', { ...read, peers: [b] }],
    ];
    for (const [what, data] of cases) {
      let full: string | Error;
      try {
        full = formatRegistry(data, 'wg0.conf');
      } catch (e) {
        full = e as Error;
      }
      let fast: string | Error;
      try {
        fast = formatRegistry(data, 'wg0.conf', read);
      } catch (e) {
        fast = e as Error;
      }
      expect(fast instanceof Error ? `${fast.name}: ${fast.message}` : fast, what).toEqual(full instanceof Error ? `${full.name}: ${full.message}` : full);
    }
  });
});

describe('times', () => {
  // What parseTime must agree with: Date's reading of the text, written as toISOString writes it.
  const roundTrip = (text: string): string | undefined => {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
  };
  const two = (lo: number, hi: number) => fc.integer({ min: lo, max: hi }).map((n) => String(n).padStart(2, '0'));

  it('reads its own spelling as toISOString writes it, and any other time as Date reads it', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(0, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }), (ms) => {
        const text = new Date(ms).toISOString();
        expect(parseTime(text)).toBe(text);
      }),
    );
    // Fields out of range (Feb 30, hour 24, minute 60, month 13) in the canonical shape: as Date reads them.
    fc.assert(
      fc.property(fc.integer({ min: 1900, max: 2100 }), two(0, 13), two(0, 32), two(0, 24), two(0, 60), two(0, 60), (y, mo, d, h, mi, s) => {
        const text = `${y}-${mo}-${d}T${h}:${mi}:${s}.000Z`;
        expect(parseTime(text)).toBe(roundTrip(text));
      }),
      { numRuns: 2000 },
    );
    for (const text of ['2026-02-30T00:00:00.000Z', '2025-02-29T00:00:00.000Z', '2024-02-29T00:00:00.000Z', '2100-02-29T00:00:00.000Z', '2000-02-29T00:00:00.000Z', '2026-01-01T24:00:00.000Z', '2026-04-31T12:00:00.000Z']) {
      expect(parseTime(text)).toBe(roundTrip(text));
    }
  });
});

describe('allocation', () => {
  it('takes the lowest host number free in both families, skipping disabled peers, and reuses a removed one', () => {
    const data = parseRegistry(file([alice, bob]), 'wg0.conf');
    expect(allocateAddresses(data).map((a) => a.text)).toEqual(['10.8.0.4/32', 'fd00:8::4/128']);
    const withoutAlice = { ...data, peers: data.peers.slice(1) };
    expect(allocateAddresses(withoutAlice).map((a) => a.text)).toEqual(['10.8.0.2/32', 'fd00:8::2/128']);
  });

  it('says when the IPv4 subnet is full', () => {
    const text = file([alice]).replace('10.8.0.1/24', '10.8.0.1/30');
    const data = parseRegistry(text, 'wg0.conf');
    expect(() => allocateAddresses(data)).toThrow(/the subnet 10\.8\.0\.0\/30 is full/);
  });

  it('uses different host numbers per family when one is taken in only one family', () => {
    const odd = ['[Peer]', '# burrow: name=odd', `PublicKey = ${key()}`, 'AllowedIPs = fd00:8::4/128'];
    const data = parseRegistry(file([alice, odd]), 'wg0.conf');
    expect(allocateAddresses(data).map((a) => a.text)).toEqual(['10.8.0.3/32', 'fd00:8::3/128']);
    const odd3 = ['[Peer]', '# burrow: name=odd', `PublicKey = ${key()}`, 'AllowedIPs = fd00:8::3/128'];
    expect(allocateAddresses(parseRegistry(file([alice, odd3]), 'wg0.conf')).map((a) => a.text)).toEqual(['10.8.0.4/32', 'fd00:8::4/128']);
  });

  it('counts host numbers across byte boundaries, in a subnet that does not end on one, ignoring addresses outside it', () => {
    // 10.8.16.0/20 and fd00:8::/64: host numbers 1..299 taken, and 301; 10.9.1.44 and fd01::12c (host number 300 if the network were not compared) are elsewhere.
    const taken = [...Array.from({ length: 299 }, (_, i) => i + 1), 301];
    const v4 = (n: number) => `10.8.${16 + (n >> 8)}.${n & 255}/32`;
    const peers = taken.map((n) => ['[Peer]', `# burrow: name=p${n}`, `PublicKey = ${key()}`, `AllowedIPs = ${v4(n)}, fd00:8::${n.toString(16)}/128`]);
    peers.push(['[Peer]', '# burrow: name=elsewhere', `PublicKey = ${key()}`, 'AllowedIPs = 10.9.1.44/32, fd01::12c/128']);
    const data = parseRegistry(file(peers).replace('Address = 10.8.0.1/24, fd00:8::1/64', 'Address = 10.8.16.1/20, fd00:8::1/64'), 'wg0.conf');
    expect(allocateAddresses(data).map((a) => a.text)).toEqual(['10.8.17.44/32', 'fd00:8::12c/128']);
    const more = { ...data, peers: [...data.peers, { ...data.peers[0]!, name: 'n300', peer: { ...data.peers[0]!.peer, allowedIPs: [parsePrefix('10.8.17.44/32'), parsePrefix('fd00:8::12c/128')] } }] };
    expect(allocateAddresses(more).map((a) => a.text)).toEqual(['10.8.17.46/32', 'fd00:8::12e/128']);
  });
});

describe('the file store and the commands on it (server not running)', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  function store(text = file([])): FileRegistry {
    dir = mkdtempSync(join(tmpdir(), 'burrow-registry-'));
    const path = join(dir, 'wgt0.conf');
    writeFileSync(path, text, { mode: 0o600 });
    return new FileRegistry(path);
  }

  it('add-peer: fresh keys, next addresses, 0600; duplicates refused and nothing written', async () => {
    const r = store();
    const { record: a } = await addPeer(r, { name: 'alice', expires: '2030-01-31' });
    expect(a.peer.allowedIPs.map((p) => p.text)).toEqual(['10.8.0.2/32', 'fd00:8::2/128']);
    expect(a.expires).toBe('2030-01-31T00:00:00.000Z');
    expect(encodeKey(publicKeyOf(Buffer.from(a.clientKey!, 'base64')))).toBe(encodeKey(a.peer.publicKey));
    expect(statSync(r.location).mode & 0o777).toBe(0o600);
    const before = readFileSync(r.location, 'utf8');
    await expect(addPeer(r, { name: 'alice' })).rejects.toThrow("a peer named 'alice' exists already");
    await expect(addPeer(r, { name: 'bob', publicKey: encodeKey(a.peer.publicKey) })).rejects.toThrow("the public key is already the peer 'alice''s");
    await expect(addPeer(r, { name: 'bob', expires: 'soon' })).rejects.toThrow('--expires "soon": expected a date');
    await expect(addPeer(r, { name: 'bad name' })).rejects.toThrow('a peer name is');
    expect(readFileSync(r.location, 'utf8')).toBe(before);
    const { record: b } = await addPeer(r, { name: 'bob', publicKey: key() });
    expect(b.clientKey).toBeUndefined();
    expect(b.peer.allowedIPs[0]!.text).toBe('10.8.0.3/32');
  });

  it('disable, enable and remove-peer change the registry and say what changed', async () => {
    const r = store();
    await addPeer(r, { name: 'alice' });
    expect(await changePeer(r, 'wgt0', 'alice', 'disable')).toMatch(/^disabled 'alice' \(the server is not running/);
    const text = readFileSync(r.location, 'utf8');
    expect(text).toContain('#~ [Peer]');
    expect(parseConfig(text, 'x').peers).toHaveLength(0);
    expect(await changePeer(r, 'wgt0', 'alice', 'enable')).toMatch(/^enabled 'alice'/);
    expect(parseConfig(readFileSync(r.location, 'utf8'), 'x').peers).toHaveLength(1);
    await expect(changePeer(r, 'wgt0', 'carol', 'disable')).rejects.toThrow("no peer named 'carol'");
    await expect(changePeer(r, 'wgt0', 'alice', 'enable', { expires: '2001-01-01' })).rejects.toThrow("'alice' expired on 2001-01-01T00:00:00.000Z");
    expect(await changePeer(r, 'wgt0', 'alice', 'remove')).toMatch(/^removed 'alice'/);
    expect((await r.read()).peers).toEqual([]);
  });

  it("addTransfer adds to the named peers' totals; watch reports changes by polling, and the file's loss and return", async () => {
    const r = store();
    await addPeer(r, { name: 'alice' });
    await addPeer(r, { name: 'bob' });
    await r.addTransfer(new Map([['alice', { rx: 10, tx: 20 }], ['gone', { rx: 1, tx: 1 }]]));
    await r.addTransfer(new Map([['alice', { rx: 1, tx: 2 }], ['bob', { rx: 0, tx: 0 }]]));
    expect((await r.read()).peers.map((p) => [p.name, p.rx, p.tx])).toEqual([['alice', 11, 22], ['bob', 0, 0]]);

    const events: string[] = [];
    const watcher = r.watch({ onChange: () => events.push('change'), onStatus: (s) => events.push(s.reachable ? 'reachable' : `unreachable: ${s.error}`) });
    expect(events).toEqual([]); // nothing from within watch() itself
    const until = async (n: number) => {
      for (let i = 0; events.length < n && i < 200; i++) await new Promise((done) => setTimeout(done, 20));
      expect(events).toHaveLength(n);
    };
    await until(1); // the first look counts as a connect
    await addPeer(r, { name: 'carol' });
    await until(2);
    const text = readFileSync(r.location, 'utf8');
    rmSync(r.location);
    await until(3);
    expect(events[2]).toMatch(/^unreachable: cannot read .*wgt0\.conf: ENOENT/);
    writeFileSync(r.location, text, { mode: 0o600 });
    await until(5);
    expect(events.slice(3)).toEqual(['reachable', 'change']);
    await watcher.stop();
    await addPeer(r, { name: 'dave' });
    await new Promise((done) => setTimeout(done, 600));
    expect(events).toHaveLength(5);
    await r.close();
  });

  it('openRegistry: a path is the file registry, a postgres URL the shared one (not connected until used)', async () => {
    expect(openRegistry('/etc/wireguard/wg0.conf')).toBeInstanceOf(FileRegistry);
    const pg = openRegistry('postgresql://burrow:pw@db.invalid/burrow', { gateway: 'gw-1' });
    expect(pg).toBeInstanceOf(PgRegistry);
    expect(pg.location).toBe('postgresql://burrow@db.invalid/burrow');
    expect(openRegistry('POSTGRES://db.invalid/burrow', { gateway: 'gw-1' })).toBeInstanceOf(PgRegistry);
    expect(() => openRegistry('postgres://db.invalid/burrow', { gateway: 'bad name' })).toThrow('--gateway "bad name": a gateway name is 1 to 63');
    await pg.close();
  });

  it('add-peer on a server with no endpoint for clients is refused before anything is written', async () => {
    const r = store(file([]).replace('endpoint=vpn.example.net:51820 ', ''));
    const before = readFileSync(r.location, 'utf8');
    await expect(addPeer(r, { name: 'alice' })).rejects.toThrow('the server has no endpoint for its clients');
    expect(readFileSync(r.location, 'utf8')).toBe(before);
  });

  it('a damaged registry is refused before any change', async () => {
    const r = store(file([alice]).replace('rx=1200', 'rx=x'));
    const before = readFileSync(r.location, 'utf8');
    await expect(addPeer(r, { name: 'carol' })).rejects.toThrow(/wgt0\.conf:8: rx: expected a count of bytes/);
    expect(readFileSync(r.location, 'utf8')).toBe(before);
  });

  it('a stale lock (its writer died) is taken over; a live one is waited for', async () => {
    const r = store();
    writeFileSync(`${r.location}.lock`, '999999999\n');
    await addPeer(r, { name: 'alice' });
    writeFileSync(`${r.location}.lock`, `${process.pid}\n`);
    setTimeout(() => rmSync(`${r.location}.lock`), 200);
    const t = Date.now();
    await addPeer(r, { name: 'bob' });
    expect(Date.now() - t).toBeGreaterThanOrEqual(150);
    expect((await r.read()).peers.map((p) => p.name)).toEqual(['alice', 'bob']);
  });
});

describe("add-peer's scan and append (no read of every peer)", () => {
  const carol = [
    '[Peer]',
    '# burrow: name=carol created=2026-12-01T10:00:00.000Z enabled=true expires=2027-01-01T00:00:00.000Z rx=0 tx=0 quota=1000',
    `PublicKey = ${key()}`,
    `PresharedKey = ${key()}`,
    'AllowedIPs = 10.8.0.9/32, fd00:8::9/128, 192.0.2.0/24',
    'Endpoint = 198.51.100.7:51820',
    'PersistentKeepalive = 25',
  ];
  const record = (name: string, ips: string[]): PeerRecord => ({
    name,
    created: '2026-12-04T00:00:00.000Z',
    enabled: true,
    rx: 0,
    tx: 0,
    peer: { publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: ips.map((t) => parsePrefix(t)) },
  });

  it('reads what formatRegistry writes: the same names, keys and allowed IPs as a full read', () => {
    const text = file([alice, bob, carol]);
    const full = parseRegistry(text, 'wg0.conf');
    expect(formatRegistry(full)).toBe(text);
    const scan = scanRegistry(text, 'wg0.conf')!;
    expect(scan).toBeDefined();
    expect([...scan.names]).toEqual(full.peers.map((p) => p.name));
    expect([...scan.keys.keys()]).toEqual(full.peers.map((p) => encodeKey(p.peer.publicKey)));
    expect(scan.allowedIPs.map((a) => a.text)).toEqual(full.peers.flatMap((p) => p.peer.allowedIPs.map((a) => a.text)));
    expect(scan.head.settings).toEqual(full.settings);
  });

  it('appends a section that reads back as the full update writes it: old peers unchanged, the new one last', () => {
    const text = file([alice, bob, carol]);
    const full = parseRegistry(text, 'wg0.conf');
    const r = record('dave', ['10.8.0.4/32', 'fd00:8::4/128']);
    const appended = appendPeerText(text, scanRegistry(text, 'wg0.conf')!, r, 'wg0.conf');
    expect(appended.startsWith(text)).toBe(true);
    expect(parseRegistry(appended, 'wg0.conf')).toEqual(parseRegistry(formatRegistry({ ...full, peers: [...full.peers, r] }), 'wg0.conf'));
    expect(appended).toBe(formatRegistry({ ...full, peers: [...full.peers, r] }));
    // A file without a final newline gets one before the new section.
    expect(parseRegistry(appendPeerText(text.trimEnd(), scanRegistry(text.trimEnd(), 'wg0.conf')!, r, 'wg0.conf'), 'wg0.conf').peers.map((p) => p.name)).toEqual(['alice', 'bob', 'carol', 'dave']);
    // Taken names, keys and addresses are refused, nothing made.
    const scan = scanRegistry(text, 'wg0.conf')!;
    expect(() => appendPeerText(text, scan, record('alice', ['10.8.0.4/32']), 'wg0.conf')).toThrow(RegistryError);
    expect(() => appendPeerText(text, scan, record('erin', ['10.8.0.3/32']), 'wg0.conf')).toThrow('10.8.0.3/32 is allowed to another peer');
    expect(() => appendPeerText(text, scan, { ...record('erin', []), peer: full.peers[0]!.peer }, 'wg0.conf')).toThrow(RegistryError);
  });

  it('leaves every file it does not read as Burrow writes it to the full read (undefined)', () => {
    const ok = file([alice, bob]);
    const edits: Array<[string, string]> = [
      ['rx=1200', 'rx=x'], // damaged field
      ['PublicKey = ', 'publickey = '], // another spelling
      ['AllowedIPs = 10.8.0.2/32, fd00:8::2/128', 'AllowedIPs = 10.8.0.2/32,fd00:8::2/128'],
      ['AllowedIPs = 10.8.0.2/32, fd00:8::2/128', 'AllowedIPs = 10.8.0.3/32, fd00:8::2/128'], // bob's address
      ['name=alice', 'name=bob'], // a duplicate name
      ['created=2026-12-01T10:00:00.000Z enabled=true', 'created=2026-12-01T10:00:00.000Z enabled=false'], // enabled, not behind #~
      ['\n#~ AllowedIPs', '\nAllowedIPs'], // half of a disabled peer enabled
      ['ListenPort = 51820\n', 'ListenPort = 51820\n\n[App]\nName = mail\n'],
      ['\n', '\r\n'],
    ];
    expect(scanRegistry(ok, 'x')).toBeDefined();
    for (const [from, to] of edits) {
      const text = ok.split(from).join(to);
      expect(text, from).not.toBe(ok);
      expect(scanRegistry(text, 'x'), `${from} -> ${to}`).toBeUndefined();
    }
    // A peer added by hand, without a burrow line, is read under its adopted name.
    const hand = file([alice, ['[Peer]', `PublicKey = ${key()}`, 'AllowedIPs = 10.8.0.5/32']]);
    expect([...scanRegistry(hand, 'x')!.names]).toEqual(parseRegistry(hand, 'x').peers.map((p) => p.name));
    // Our own key as a peer, or two peers with one key: the full read says what is wrong.
    const own = encodeKey(publicKeyOf(Buffer.from(serverKey, 'base64')));
    expect(scanRegistry(file([alice.map((l) => (l.startsWith('PublicKey') ? `PublicKey = ${own}` : l))]), 'x')).toBeUndefined();
  });

  it('agrees with the full read on random registries Burrow wrote', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ enabled: fc.boolean(), rx: fc.nat(), expires: fc.boolean(), psk: fc.boolean(), keepalive: fc.option(fc.nat(65535)) }), { maxLength: 12 }), (specs) => {
        const peers: PeerRecord[] = specs.map((p, i) => ({
          name: `p${i}`,
          created: '2026-12-01T00:00:00.000Z',
          enabled: p.enabled,
          ...(p.expires ? { expires: '2027-06-01T00:00:00.000Z' } : {}),
          rx: p.rx,
          tx: 1,
          peer: {
            publicKey: publicKeyOf(generatePrivateKey()),
            ...(p.psk ? { presharedKey: generatePrivateKey() } : {}),
            allowedIPs: [parsePrefix(`10.8.0.${i + 2}/32`), parsePrefix(`fd00:8::${i + 2}/128`)],
            ...(p.keepalive === null ? {} : { persistentKeepalive: p.keepalive }),
          },
        }));
        const base = parseRegistry(file([]), 'x');
        const text = formatRegistry({ ...base, peers });
        const scan = scanRegistry(text, 'x');
        const full = parseRegistry(text, 'x');
        return scan !== undefined && JSON.stringify([...scan.names]) === JSON.stringify(full.peers.map((p) => p.name))
          && JSON.stringify(scan.allowedIPs.map((a) => a.text)) === JSON.stringify(full.peers.flatMap((p) => p.peer.allowedIPs.map((a) => a.text)));
      }),
      { numRuns: 60 },
    );
  });

  it('add-peer on a registry it scans appends, under the lock, 0600; on a hand-edited one it takes the full update', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-registry-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'wgt0.conf');
    const text = file([alice, bob]);
    writeFileSync(path, text, { mode: 0o600 });
    const r = new FileRegistry(path);
    const { record: dave, data } = await addPeer(r, { name: 'dave' });
    const after = readFileSync(path, 'utf8');
    expect(after.startsWith(text)).toBe(true);
    expect(dave.peer.allowedIPs.map((a) => a.text)).toEqual(['10.8.0.4/32', 'fd00:8::4/128']);
    expect(data.settings.endpoint).toBe('vpn.example.net:51820');
    expect((await r.read()).peers.map((p) => p.name)).toEqual(['alice', 'bob', 'dave']);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // A hand edit the scan does not take (a comment line in a peer): the full update, which rewrites the file.
    writeFileSync(path, after.replace('[Peer]\n# burrow: name=alice', '[Peer]\n# my laptop\n# burrow: name=alice'), { mode: 0o600 });
    await addPeer(r, { name: 'erin' });
    expect((await r.read()).peers.map((p) => p.name)).toEqual(['alice', 'bob', 'dave', 'erin']);
    await expect(addPeer(r, { name: 'dave' })).rejects.toThrow("a peer named 'dave' exists already");
  });
});

describe("the daemon's expiry scan", () => {
  it('finds the earliest expiry of an enabled peer, in any field order, never a disabled one', () => {
    const late = ['[Peer]', '# burrow: expires=2031-01-01T00:00:00Z name=late enabled=true', `PublicKey = ${key()}`];
    const soon = ['[Peer]', '# burrow: name=soon expires=2030-06-01T00:00:00Z', `PublicKey = ${key()}`];
    const earliest = (text: string) => nextExpiry(parseRegistry(text, 'wg0.conf'));
    expect(earliest(file([alice, bob, late, soon]))).toBe(Date.parse('2030-06-01T00:00:00Z'));
    // bob's (disabled, behind "#~") expiry is earlier still, and ignored; none at all: never.
    expect(earliest(file([alice, bob]))).toBe(Infinity);
    // An enabled peer whose date has passed counts: it is still to be disabled.
    const past = ['[Peer]', '# burrow: name=past enabled=true expires=2020-01-01T00:00:00Z', `PublicKey = ${key()}`];
    expect(earliest(file([alice, late, past]))).toBe(Date.parse('2020-01-01T00:00:00Z'));
  });
});

describe('client configuration and status', () => {
  it('is a wg-quick file for the client: its key and addresses, the server as its one peer, everything routed', () => {
    const data = parseRegistry(file([alice]), 'wg0.conf');
    const priv = generatePrivateKey();
    const record = { ...data.peers[0]!, clientKey: encodeKey(priv) };
    const c = parseConfig(clientConfig(data, record), 'client.conf');
    expect(encodeKey(c.interface.privateKey)).toBe(encodeKey(priv));
    expect(c.interface.addresses.map((a) => a.text)).toEqual(['10.8.0.2/32', 'fd00:8::2/128']);
    expect(encodeKey(c.peers[0]!.publicKey)).toBe(encodeKey(publicKeyOf(Buffer.from(serverKey, 'base64'))));
    expect(c.peers[0]!.endpoint).toEqual({ host: 'vpn.example.net', port: 51820 });
    expect(c.peers[0]!.allowedIPs.map((a) => a.text)).toEqual(['0.0.0.0/0', '::/0']);
    // Without the client's key (it gave only its public key), the line says what to put there.
    expect(clientConfig(data, data.peers[0]!)).toMatch(/^# PrivateKey = the private key of .* which stays on the client/m);
  });

  it('totals add what the device counted since the last save; a re-added peer counts from zero', () => {
    expect(since({ rxBytes: 150, txBytes: 70 }, { rx: 100, tx: 50 })).toEqual({ rx: 50, tx: 20 });
    expect(since({ rxBytes: 30, txBytes: 70 }, { rx: 100, tx: 50 })).toEqual({ rx: 30, tx: 70 });
    const data = parseRegistry(file([alice]), 'wg0.conf');
    const k = encodeKey(data.peers[0]!.peer.publicKey);
    const live = { name: 'wg0', publicKey: undefined, listenPort: 0, fwmark: 0, peers: [{ publicKey: k, hasPresharedKey: false, endpoint: '192.0.2.7:4000', allowedIPs: [], lastHandshake: 1000, rxBytes: 500, txBytes: 600, persistentKeepalive: 0 }] };
    const [s] = peerStatus(data, live, { counted: { [k]: { rx: 400, tx: 100 } }, unsaved: { alice: { rx: 7, tx: 9 } } });
    // The registry's totals, what left the device unsaved, and what the device counted since the last save.
    expect(s).toMatchObject({ name: 'alice', rxBytes: 1307, txBytes: 3909, endpoint: '192.0.2.7:4000', lastHandshake: 1000 });
    expect(parsePrefix(s!.addresses[0]!).text).toBe('10.8.0.2/32');
  });
});
