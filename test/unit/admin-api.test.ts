// The admin page's HTTP API without a network (fastify.inject) against a real registry
// file: sessions and their cookie, CSRF, the login rate limit, validation that names the
// field, one-time links, the OpenAPI document, /metrics and its bearer token, the bind
// policy. The running server, the browser and `wg show dump` are in
// test/netns/admin-browser.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { buildAdminApp, COOKIE } from '../../server/admin/app.js';
import { checkBind } from '../../server/admin/bind.js';
import { adminFiles, ensureMetricsToken } from '../../server/admin/files.js';
import { LINK_MS } from '../../server/admin/links.js';
import { renderMetrics } from '../../server/admin/metrics.js';
import { writePasswordFile } from '../../server/admin/password.js';
import { MAX_FAILURES } from '../../server/admin/sessions.js';
import { UsageTracker } from '../../server/admin/tracker.js';
import { serverView, type ServerView } from '../../server/admin/view.js';
import { RegistryFollower } from '../../server/follow.js';
import { parseRegistry } from '../../server/registry.js';
import { FileRegistry } from '../../server/store.js';
import type { Logger } from '../../src/runtime/log.js';

const PASSWORD = 'correct horse battery';
const silent: Logger = { error: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;

let dir: string;
let registryPath: string;
let clock: number;
let app: FastifyInstance;
let view: ServerView;

function registryText(): string {
  return [
    '[Interface]',
    '# burrow-server: endpoint=vpn.example.net:51820 client-to-client=false',
    `PrivateKey = ${encodeKey(generatePrivateKey())}`,
    'Address = 10.9.0.1/24, fd00:9::1/64',
    'ListenPort = 51820',
    '',
  ].join('\n');
}

/** The daemon's follower of the registry file, without its watch: the tests read it again with refresh(). */
function follower(path: string, ifname: string): RegistryFollower {
  const registry = new FileRegistry(path);
  return new RegistryFollower(registry, parseRegistry(readFileSync(path, 'utf8'), path), { ifname, log: silent });
}

async function build(o: { view?: ServerView; tls?: { cert: string; key: string } } = {}): Promise<FastifyInstance> {
  // An interface name no test host runs: every change stays in the registry.
  const ifname = `adm${process.pid % 100000}`;
  view = o.view ?? serverView(ifname, follower(registryPath, ifname), () => undefined);
  const files = adminFiles(registryPath);
  const tracker = new UsageTracker({ view, path: files.usage, log: silent, now: () => clock });
  return buildAdminApp({ view, tracker, passwordFile: files.password, metricsTokenFile: files.metricsToken, now: () => clock, ...(o.tls === undefined ? {} : { tls: o.tls }) });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-admin-'));
  registryPath = join(dir, 'wg9.conf');
  writeFileSync(registryPath, registryText(), { mode: 0o600 });
  clock = Date.parse('2026-12-04T12:00:00Z');
  app = await build();
});

afterEach(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

async function login(remoteAddress = '127.0.0.1'): Promise<{ cookie: string; csrf: string; response: LightMyRequestResponse }> {
  const response = await app.inject({ method: 'POST', url: '/api/login', payload: { password: PASSWORD }, remoteAddress });
  expect(response.statusCode, response.body).toBe(200);
  const c = response.cookies.find((x) => x.name === COOKIE)!;
  return { cookie: `${COOKIE}=${c.value}`, csrf: (response.json() as { csrfToken: string }).csrfToken, response };
}

const CHANGES: [string, string, object | undefined][] = [
  ['POST', '/api/peers', { name: 'alice' }],
  ['DELETE', '/api/peers/alice', undefined],
  ['POST', '/api/peers/alice/enable', {}],
  ['POST', '/api/peers/alice/disable', undefined],
  ['PUT', '/api/peers/alice/quota', { quota: 1000 }],
  ['POST', '/api/peers/alice/link', undefined],
  ['POST', '/api/logout', undefined],
];

describe('admin password', () => {
  it('is stored as an scrypt hash in a 0600 file, and the login needs it', async () => {
    const none = await app.inject({ method: 'POST', url: '/api/login', payload: { password: PASSWORD } });
    expect(none.statusCode).toBe(503);
    expect(none.json().message).toContain('burrow server admin-password');
    await writePasswordFile(adminFiles(registryPath).password, PASSWORD);
    const stored = readFileSync(adminFiles(registryPath).password, 'utf8');
    expect(statSync(adminFiles(registryPath).password).mode & 0o777).toBe(0o600);
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}\n$/);
    expect(stored).not.toContain('horse');
    expect((await app.inject({ method: 'POST', url: '/api/login', payload: { password: 'correct horse battery!' } })).statusCode).toBe(401);
    await login();
  });
});

describe('sessions and CSRF', () => {
  beforeEach(async () => writePasswordFile(adminFiles(registryPath).password, PASSWORD));

  it('the session cookie is HttpOnly and SameSite=Strict (and not Secure over plain HTTP)', async () => {
    const { response } = await login();
    const header = String(response.headers['set-cookie']);
    expect(header).toMatch(/HttpOnly/);
    expect(header).toMatch(/SameSite=Strict/);
    expect(header).not.toMatch(/Secure/);
  });

  it('without a session every change is refused with 401, every page and read too, and the registry is untouched', async () => {
    const before = readFileSync(registryPath, 'utf8');
    for (const [method, url, payload] of CHANGES) {
      const r = await app.inject({ method: method as 'POST', url, ...(payload === undefined ? {} : { payload }) });
      expect(r.statusCode, `${method} ${url}`).toBe(401);
    }
    for (const url of ['/api/peers', '/api/peers/alice/config', '/api/peers/alice/qr.svg', '/api/session', '/api/openapi.json', '/metrics']) {
      expect((await app.inject({ url })).statusCode, url).toBe(401);
    }
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login');
    expect(readFileSync(registryPath, 'utf8')).toBe(before);
    // A cookie that is no session is no better.
    const forged = await app.inject({ method: 'POST', url: '/api/peers', payload: { name: 'alice' }, headers: { cookie: `${COOKIE}=${'A'.repeat(43)}` } });
    expect(forged.statusCode).toBe(401);
  });

  it('a change with a missing, forged or another session\'s CSRF token is refused with 403; with its own it is made', async () => {
    const a = await login();
    const b = await login('127.0.0.2');
    const add = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/api/peers', payload: { name: 'alice' }, headers: { cookie: a.cookie, ...headers } });
    expect((await add({})).statusCode).toBe(403);
    expect((await add({ 'x-csrf-token': 'x'.repeat(43) })).statusCode).toBe(403);
    expect((await add({ 'x-csrf-token': b.csrf })).statusCode).toBe(403);
    expect(readFileSync(registryPath, 'utf8')).not.toContain('name=alice');
    const ok = await add({ 'x-csrf-token': a.csrf });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(readFileSync(registryPath, 'utf8')).toContain('name=alice');
    // Logged out: the cookie is worth nothing.
    expect((await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie: a.cookie, 'x-csrf-token': a.csrf } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/peers', headers: { cookie: a.cookie } })).statusCode).toBe(401);
  });

  it(`20 wrong passwords in a row are rate-limited after ${MAX_FAILURES}, the right one too, for that address only`, async () => {
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await app.inject({ method: 'POST', url: '/api/login', payload: { password: `wrong ${i}` }, remoteAddress: '192.0.2.7' });
      codes.push(r.statusCode);
      if (r.statusCode === 429) expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(codes).toEqual([...new Array(MAX_FAILURES).fill(401), ...new Array(20 - MAX_FAILURES).fill(429)]);
    const right = await app.inject({ method: 'POST', url: '/api/login', payload: { password: PASSWORD }, remoteAddress: '192.0.2.7' });
    expect(right.statusCode).toBe(429);
    await login('192.0.2.8');
    clock += 16 * 60_000;
    await login('192.0.2.7');
  });
});

describe('the API', () => {
  let s: { cookie: string; csrf: string };
  const call = (method: string, url: string, payload?: object) =>
    app.inject({ method: method as 'POST', url, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, ...(payload === undefined ? {} : { payload }) });

  beforeEach(async () => {
    await writePasswordFile(adminFiles(registryPath).password, PASSWORD);
    s = await login();
  });

  it('invalid input gets a 400 whose message names the field', async () => {
    const cases: [string, string, object, string][] = [
      ['POST', '/api/peers', { name: 'no spaces' }, 'name'],
      ['POST', '/api/peers', {}, 'name'],
      ['POST', '/api/peers', { name: 'ok', publicKey: 'short' }, 'publicKey'],
      ['POST', '/api/peers', { name: 'ok', expires: 'tomorrow' }, 'expires'],
      ['POST', '/api/peers', { name: 'ok', quota: -5 }, 'quota'],
      ['POST', '/api/peers', { name: 'ok', admin: true }, 'admin'],
      ['PUT', '/api/peers/ok/quota', { quota: 'lots' }, 'quota'],
      ['POST', '/api/login', { password: 7 }, 'password'],
    ];
    for (const [method, url, payload, field] of cases) {
      const r = await call(method, url, payload);
      expect(r.statusCode, `${JSON.stringify(payload)}: ${r.body}`).toBe(400);
      expect(r.json().message, JSON.stringify(payload)).toContain(field);
    }
    const badName = await call('POST', '/api/peers/no%20such!/disable');
    expect(badName.statusCode).toBe(400);
    expect(badName.json().message).toContain('name');
    expect(readFileSync(registryPath, 'utf8')).not.toContain('[Peer]');
    const unknown = await call('POST', '/api/peers/carol/disable');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().message).toBe("no peer named 'carol'");
  });

  it('add, list, config, QR, quota, disable, enable, remove', async () => {
    expect((await call('POST', '/api/peers', { name: 'alice', expires: '2099-01-01', quota: 5_000_000 })).statusCode).toBe(201);
    const dup = await call('POST', '/api/peers', { name: 'alice' });
    expect(dup.statusCode).toBe(409);
    const list = (await call('GET', '/api/peers')).json() as { peers: { name: string; addresses: string[]; enabled: boolean; quota: number; expires: string; online: boolean; history: number[]; hasPrivateKey: boolean }[]; registry: { location: string; reachable: boolean } };
    expect(list.peers).toHaveLength(1);
    expect(list.registry).toMatchObject({ location: registryPath, reachable: true });
    expect(list.peers[0]).toMatchObject({ name: 'alice', addresses: ['10.9.0.2/32', 'fd00:9::2/128'], enabled: true, quota: 5_000_000, expires: '2099-01-01T00:00:00.000Z', online: false, hasPrivateKey: true });
    expect(list.peers[0]!.history).toHaveLength(96);
    const conf = await call('GET', '/api/peers/alice/config');
    expect(conf.headers['content-type']).toContain('text/plain');
    expect(conf.headers['cache-control']).toBe('no-store');
    expect(conf.body).toMatch(/^\[Interface\]\nPrivateKey = [A-Za-z0-9+/]{43}=$/m);
    expect(conf.body).toContain('Endpoint = vpn.example.net:51820');
    const qr = await call('GET', '/api/peers/alice/qr.svg');
    expect(qr.headers['content-type']).toContain('image/svg+xml');
    expect(qr.body).toMatch(/^<svg[^>]*viewBox/);
    expect((await call('PUT', '/api/peers/alice/quota', { quota: null })).statusCode).toBe(200);
    expect(readFileSync(registryPath, 'utf8')).not.toContain('quota=');
    expect((await call('POST', '/api/peers/alice/disable')).statusCode).toBe(200);
    const off = ((await call('GET', '/api/peers')).json() as { peers: { enabled: boolean; disabledReason: string }[] }).peers[0]!;
    expect(off).toMatchObject({ enabled: false, disabledReason: 'disabled by an admin' });
    expect((await call('POST', '/api/peers/alice/enable', {})).statusCode).toBe(200);
    expect((await call('DELETE', '/api/peers/alice')).statusCode).toBe(200);
    expect(readFileSync(registryPath, 'utf8')).not.toContain('alice');
  });

  it('a peer disabled for its quota says so, cannot be enabled while over it, and is enabled again when the quota is raised', async () => {
    const pub = encodeKey(publicKeyOf(generatePrivateKey()));
    expect((await call('POST', '/api/peers', { name: 'bob', publicKey: pub, quota: 1000 })).statusCode).toBe(201);
    // Bob moved 5000 bytes this month, and the tracker cut him off (as the daemon's does).
    writeFileSync(registryPath, readFileSync(registryPath, 'utf8').replace(/^\[Peer\]\n# burrow: (name=bob \S+) enabled=true rx=0 tx=0 quota=1000$/m, '#~ [Peer]\n#~ # burrow: $1 enabled=false rx=2000 tx=3000 quota=1000 over-quota=2026-12').replace(/^(PublicKey|PresharedKey|AllowedIPs) = /gm, '#~ $1 = '));
    await view.registry.refresh(); // the daemon's watch would
    const bob = ((await call('GET', '/api/peers')).json() as { peers: { enabled: boolean; disabledReason: string; usedThisMonth: number; overQuota: string }[] }).peers[0]!;
    expect(bob).toMatchObject({ enabled: false, overQuota: '2026-12', usedThisMonth: 5000 });
    expect(bob.disabledReason).toBe('over its quota for 2026-12: disabled until 2027-01-01 or a higher quota');
    const refused = await call('POST', '/api/peers/bob/enable', {});
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toContain('raise the quota');
    const raised = await call('PUT', '/api/peers/bob/quota', { quota: 10_000 });
    expect(raised.json().message).toContain('enabled it again');
    expect(readFileSync(registryPath, 'utf8')).toMatch(/^# burrow: name=bob \S+ enabled=true rx=2000 tx=3000 quota=10000$/m);
  });

  it('a one-time link works once, then 404; a link older than 15 minutes is a 404; the token is 128 bits', async () => {
    expect((await call('POST', '/api/peers', { name: 'alice' })).statusCode).toBe(201);
    const link = (await call('POST', '/api/peers/alice/link')).json() as { path: string; expires: string };
    expect(link.path).toMatch(/^\/link\/[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(link.path.slice(6), 'base64url')).toHaveLength(16);
    expect(Date.parse(link.expires) - clock).toBe(LINK_MS);
    const first = await app.inject({ url: link.path });
    expect(first.statusCode).toBe(200);
    expect(first.body).toContain('[Interface]');
    expect(first.body).toContain('<svg');
    expect((await app.inject({ url: link.path })).statusCode).toBe(404);
    const late = (await call('POST', '/api/peers/alice/link')).json() as { path: string };
    clock += LINK_MS + 1;
    expect((await app.inject({ url: late.path })).statusCode).toBe(404);
    expect((await app.inject({ url: `/link/${'A'.repeat(22)}` })).statusCode).toBe(404);
  });

  it('serves its OpenAPI document, and every page with a CSP that allows only its own origin', async () => {
    const doc = (await call('GET', '/api/openapi.json')).json() as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/peers', '/api/peers/{name}', '/api/peers/{name}/quota', '/api/peers/{name}/link', '/api/login']));
    expect(Object.keys(doc.paths['/api/peers']!.post!.requestBody!.content['application/json']!.schema.properties)).toEqual(['name', 'publicKey', 'expires', 'quota']);
    const page = await call('GET', '/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    // Every asset the page names is served here.
    for (const ref of page.body.matchAll(/(?:src|href)="([^"]+)"/g)) {
      expect(ref[1]!.startsWith('/'), ref[1]).toBe(true);
      expect((await app.inject({ url: ref[1]! })).statusCode, ref[1]).toBe(200);
    }
  });
});

describe('/metrics', () => {
  const alice = encodeKey(publicKeyOf(generatePrivateKey()));
  const bob = encodeKey(publicKeyOf(generatePrivateKey()));
  const fake = (): ServerView => ({
    ...serverView('wg9', follower(registryPath, 'wg9'), () => undefined),
    device: () => ({
      name: 'wg9',
      publicKey: undefined,
      listenPort: 51820,
      fwmark: 0,
      peers: [
        { publicKey: alice, hasPresharedKey: true, endpoint: '198.51.100.2:4000', allowedIPs: ['10.9.0.2/32', 'fd00:9::2/128'], lastHandshake: 1_796_300_000, rxBytes: 1234, txBytes: 5678, persistentKeepalive: 0 },
        { publicKey: bob, hasPresharedKey: true, endpoint: undefined, allowedIPs: ['10.9.0.3/32'], lastHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 },
      ],
    }),
    drops: () => ({ 'bad-tag': 3, replay: 1 }),
  });

  it('is the text format, with the exporter\'s names and labels and the drop counters', () => {
    const text = renderMetrics({ ifname: 'wg9', device: fake().device(), names: new Map([[alice, 'alice "the first"']]), drops: { 'bad-tag': 3, replay: 1 }, registryUp: false, now: 1_796_300_010 });
    const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const sample = (name: string, key: string) => families.get(name)!.metrics.find((m) => m.labels!.public_key === key);
    expect(families.get('wireguard_sent_bytes_total')!.type).toBe('COUNTER');
    expect(sample('wireguard_sent_bytes_total', alice)).toEqual({ value: '5678', labels: { interface: 'wg9', public_key: alice, allowed_ips: '10.9.0.2/32,fd00:9::2/128', name: 'alice "the first"' } });
    expect(sample('wireguard_received_bytes_total', alice)!.value).toBe('1234');
    expect(sample('wireguard_latest_handshake_seconds', alice)!.value).toBe('1796300000');
    expect(sample('wireguard_latest_handshake_seconds', bob)!.value).toBe('0');
    expect(sample('wireguard_latest_handshake_delay_seconds', alice)!.value).toBe('10');
    expect(sample('wireguard_latest_handshake_delay_seconds', bob)).toBeUndefined();
    expect(families.get('wireguard_peers_total')!.metrics).toEqual([{ value: '2', labels: { interface: 'wg9' } }]);
    expect(families.get('burrow_dropped_packets_total')!.metrics.map((m) => [m.labels!.reason, m.value])).toEqual([['bad-tag', '3'], ['replay', '1']]);
    expect(families.get('burrow_registry_up')!.metrics).toEqual([{ value: '0', labels: { interface: 'wg9' } }]);
  });

  it('needs a session or its own bearer token', async () => {
    await app.close();
    app = await build({ view: fake() });
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer nothing-set' } })).statusCode).toBe(401);
    const { path } = ensureMetricsToken(registryPath, false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const token = readFileSync(path, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}x` } })).statusCode).toBe(401);
    const ok = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(ok.body).toContain('wireguard_sent_bytes_total{interface="wg9"');
    expect(ok.body).toContain('burrow_registry_up{interface="wg9"} 1');
    // The bearer token opens /metrics only.
    expect((await app.inject({ url: '/api/peers', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
    ensureMetricsToken(registryPath, true);
    expect((await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
  });
});

describe('where it listens', () => {
  it('binds loopback freely, and refuses another address without TLS or --insecure', () => {
    expect(checkBind({ address: '127.0.0.1:51821' })).toEqual({ host: '127.0.0.1', port: 51821 });
    expect(checkBind({ address: '[::1]:51821' })).toEqual({ host: '::1', port: 51821 });
    expect(() => checkBind({ address: '0.0.0.0:51821' })).toThrow(/not a loopback address, and no TLS/);
    expect(() => checkBind({ address: '[2001:db8::1]:443' })).toThrow(/--insecure/);
    expect(checkBind({ address: '0.0.0.0:51821', insecure: true }).host).toBe('0.0.0.0');
    expect(checkBind({ address: '0.0.0.0:443', tlsCert: 'c.pem', tlsKey: 'k.pem' }).port).toBe(443);
    expect(() => checkBind({ address: '0.0.0.0:443', tlsCert: 'c.pem' })).toThrow(/both a certificate and a key/);
    expect(() => checkBind({ address: 'nonsense' })).toThrow(/expected HOST:PORT/);
  });

  it('over TLS the session cookie is Secure', async () => {
    await app.close();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    app = await build({ tls: { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') } });
    await writePasswordFile(adminFiles(registryPath).password, PASSWORD);
    const { response } = await login();
    expect(String(response.headers['set-cookie'])).toMatch(/; Secure/);
  });
});
