// The admin page in a real browser (Debian's chromium, headless, driven by
// playwright-core) against a real `burrow server up --admin` in the topology's server
// namespace, with a real client: log in, add a peer and see its QR code (decoded with
// zbarimg: it is the configuration the API serves); bring that configuration up with
// `burrow up` and see the row turn online with growing transfer; /metrics scraped by a
// Prometheus text-format parser and matched against `wg show dump`; disable the peer
// and see the client's traffic stop; a one-time link works once, then 404; a quota
// cuts the peer off after the bytes set, and the page says why; the usage history
// survives a restart of the server.
//
// The browser runs inside the server's namespace (a wrapper runs it under `ip netns
// exec`), so the admin page binds loopback as it would in production. The page is
// used at a phone's viewport; screenshots go to test-results/admin/.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { burrow, CLI, cliBuilt, configDir, up } from '../support/burrow.js';
import { type Netns, netnsSuite, run, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { ADDR, buildTopology, reach, type Topology } from '../support/topology.js';

const ADMIN = '127.0.0.1:51821';
const BASE = `http://${ADMIN}`;
const PASSWORD = 'a long admin password';
const SHOTS = join(process.cwd(), 'test-results', 'admin');
const PHONE = { width: 390, height: 844 };

/** Polls `check` until it is true or `ms` pass. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A burst of pings from `ns` through the tunnel (bytes for the counters); never throws. */
async function traffic(ns: Netns, count: number, size = 1000): Promise<void> {
  await ns.exec('ping', ['-n', '-q', '-c', String(count), '-i', '0.01', '-s', String(size), '-W', '1', ADDR.internet4], { timeoutMs: 60_000 }).catch(() => undefined);
}

describe.skipIf(requireHost(['ip', 'nft', 'ping', 'wg', 'chromium', 'zbarimg']))('the admin page in headless Chromium', () => {
  const scope = netnsSuite();
  cliBuilt();
  let t: Topology;
  let dir: string;
  let registry: string;
  let sIf: string;
  let cIf: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const row = () => page.locator('tr[data-peer="phone"]');
  const shot = async (name: string) => {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };
  /** A GET made by the page itself, with its session (the test's own process is outside the server's namespace). */
  const pageGet = (path: string): Promise<string> => page.evaluate(async (p) => (await fetch(p)).text(), path);
  const peerJson = async () => (JSON.parse(await pageGet('/api/peers')) as { peers: { name: string; usedThisMonth: number; enabled: boolean }[] }).peers.find((p) => p.name === 'phone')!;
  /** A GET from inside the server's namespace, without the browser: status and body. */
  const serverGet = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
    JSON.parse(
      await t.server.exec(process.execPath, ['-e', 'fetch(process.argv[1], { headers: JSON.parse(process.argv[2]) }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))', `${BASE}${path}`, JSON.stringify(headers)]),
    ) as { status: number; body: string };

  it('log in, add a peer, see its QR code', async () => {
    t = await buildTopology(scope);
    await t.server.exec('nft', ['flush', 'ruleset']);
    dir = configDir(scope);
    sIf = uniqueName('adm');
    registry = join(dir, `${sIf}.conf`);
    const init = await burrow(t.server, ['server', 'init', '--dir', dir, '-i', sIf, '--endpoint', ADDR.server4, '--subnet', '10.78.0.0/24', '--subnet6', 'fd78:78::/64']);
    expect(init.code, init.stderr).toBe(0);
    await t.server.exec(process.execPath, [CLI, 'server', 'admin-password', '--config', registry], { input: `${PASSWORD}\n` });
    const upped = await burrow(t.server, ['server', 'up', '--config', registry, '--admin', ADMIN]);
    expect(upped.code, upped.stderr).toBe(0);
    expect(upped.stdout).toContain(`admin page on http://${ADMIN}/`);
    scope.defer(async () => {
      await burrow(t.server, ['server', 'down', '--config', registry]);
    });

    const wrapper = join(dir, 'chromium-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${t.server.name} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
    browser = await chromium.launch({ executablePath: wrapper, headless: true, timeout: 60_000 });
    scope.defer(() => browser.close());
    context = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    page = await context.newPage();
    // Every request the page makes stays on the admin server's origin.
    const origins = new Set<string>();
    page.on('request', (r) => origins.add(new URL(r.url()).origin));

    await page.goto(`${BASE}/`);
    expect(page.url()).toBe(`${BASE}/login`);
    await page.getByLabel('Admin password').fill('not the password');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 20_000 }).toBe('wrong password');
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${BASE}/`);
    await shot('1-logged-in');

    // Keyboard only: the name field, then Enter submits the form.
    await page.getByLabel('Name').focus();
    await page.keyboard.type('phone');
    await page.keyboard.press('Enter');
    await row().waitFor({ timeout: 15_000 });
    expect(await row().locator('td.peer').textContent()).toContain('10.78.0.2/32');
    await row().getByRole('button', { name: "show phone's QR code" }).press('Enter');
    await expect.poll(() => page.locator('#qr-img').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth), { timeout: 15_000 }).toBeGreaterThan(0);
    await shot('2-qr-code');
    const qrPng = join(dir, 'qr.png');
    await page.locator('#qr-img').screenshot({ path: qrPng });
    const decoded = await run('zbarimg', ['--quiet', '--raw', '-Sbinary', qrPng]);
    const config = await pageGet('/api/peers/phone/config');
    expect(decoded.trim()).toBe(config.trim());
    await page.keyboard.press('Escape');
    expect(await page.locator('#qr-dialog').getAttribute('open')).toBeNull();
    expect([...origins]).toEqual([BASE]);
  }, 180_000);

  it("that peer's configuration up with burrow up in a client namespace: the row turns online with growing transfer", async () => {
    const config = await pageGet('/api/peers/phone/config');
    cIf = uniqueName('phn');
    const path = join(dir, `${cIf}.conf`);
    writeFileSync(path, config, { mode: 0o600 });
    await up(scope, t.client, path, cIf);
    expect(await eventually(() => reach(t.client, 'ping', ADDR.internet4), 30_000)).toBe(true);
    await row().locator('td.connection[data-online="true"]').waitFor({ timeout: 20_000 });
    expect(await row().locator('td.connection').textContent()).toMatch(/^online, handshake \d+ s ago$/);
    const before = Number(await row().locator('td.transfer').getAttribute('data-total'));
    await traffic(t.client, 50);
    await expect.poll(async () => Number(await row().locator('td.transfer').getAttribute('data-total')), { timeout: 20_000, interval: 500 }).toBeGreaterThan(before + 50 * 1000);
    await shot('3-online');
  }, 120_000);

  it('/metrics, scraped with its bearer token and parsed as Prometheus text, matches wg show dump', async () => {
    await t.server.exec(process.execPath, [CLI, 'server', 'metrics-token', '--config', registry]);
    const token = readFileSync(join(dir, `${sIf}.metrics-token`), 'utf8').trim();
    // A datagram that is no WireGuard message: the engine drops it and counts why.
    await t.client.exec(process.execPath, ['-e', `const d = require('node:dgram').createSocket('udp4'); d.send(Buffer.alloc(37, 7), 51820, '${ADDR.server4}', () => d.close());`]);
    const dump = async () => (await run('wg', ['show', sIf, 'dump'])).trim().split('\n').slice(1).map((l) => l.split('\t'));
    const before = await dump();
    const scraped = await serverGet('/metrics', { authorization: `Bearer ${token}` });
    const after = await dump();
    expect((await serverGet('/metrics')).status).toBe(401);
    expect(scraped.status).toBe(200);
    const families = new Map(parsePrometheusTextFormat(scraped.body).map((f) => [f.name, f]));
    expect(before).toHaveLength(1);
    const [publicKey, , , allowedIps, handshake, rx, tx] = before[0]!;
    const [, , , , handshake2, rx2, tx2] = after[0]!;
    const value = (name: string) => {
      const m = families.get(name)!.metrics.find((x) => x.labels!.public_key === publicKey)!;
      expect(m.labels).toEqual({ interface: sIf, public_key: publicKey, allowed_ips: allowedIps, name: 'phone' });
      return Number(m.value);
    };
    const between = (v: number, a: string, b: string) => {
      expect(v).toBeGreaterThanOrEqual(Number(a));
      expect(v).toBeLessThanOrEqual(Number(b));
    };
    between(value('wireguard_received_bytes_total'), rx!, rx2!);
    between(value('wireguard_sent_bytes_total'), tx!, tx2!);
    between(value('wireguard_latest_handshake_seconds'), handshake!, handshake2!);
    expect(Number(rx)).toBeGreaterThan(50_000);
    const delay = value('wireguard_latest_handshake_delay_seconds');
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(300);
    expect(families.get('wireguard_peers_total')!.metrics).toEqual([{ value: '1', labels: { interface: sIf } }]);
    const drops = families.get('burrow_dropped_packets_total')!;
    expect(drops.type).toBe('COUNTER');
    expect(drops.metrics.reduce((n, m) => n + Number(m.value), 0)).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("disable it, and the client's traffic stops", async () => {
    await row().getByRole('button', { name: 'disable phone' }).click();
    await row().locator('td.state[data-enabled="false"]').waitFor({ timeout: 15_000 });
    expect(await row().locator('td.state').textContent()).toContain('disabled: disabled by an admin');
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(false);
    await shot('4-disabled');
  }, 60_000);

  it('a one-time link works once, then returns 404', async () => {
    await row().getByRole('button', { name: 'make a one-time link for phone' }).click();
    await page.locator('#link-dialog[open]').waitFor();
    const url = await page.locator('#link-url').inputValue();
    expect(url).toMatch(new RegExp(`^${BASE}/link/[A-Za-z0-9_-]{22}$`));
    await shot('5-one-time-link');
    await page.keyboard.press('Escape');
    // Opened by someone without a session, on another phone.
    const stranger = await browser.newContext({ viewport: PHONE });
    const other = await stranger.newPage();
    const first = await other.goto(url);
    expect(first!.status()).toBe(200);
    expect(await other.locator('#config').textContent()).toContain('[Interface]');
    await other.screenshot({ path: join(SHOTS, '6-link-opened.png'), fullPage: true });
    const second = await other.goto(url);
    expect(second!.status()).toBe(404);
    await stranger.close();
  }, 60_000);

  it('a quota cuts the peer off after the bytes set, and the page says so', async () => {
    await row().getByRole('button', { name: 'enable phone' }).click();
    await row().locator('td.state[data-enabled="true"]').waitFor({ timeout: 15_000 });
    expect(await eventually(() => reach(t.client, 'ping', ADDR.internet4), 30_000)).toBe(true);
    const used = (await peerJson()).usedThisMonth;
    // Whole KiB, so the MiB typed into the form is exact.
    const quota = Math.ceil((used + 300 * 1024) / 1024) * 1024;
    await row().getByRole('button', { name: "set phone's monthly quota" }).click();
    await page.locator('#quota-mib').fill(String(quota / 1048576));
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => readFileSync(registry, 'utf8'), { timeout: 15_000 }).toMatch(new RegExp(`name=phone .* quota=${quota}\\b`));
    await expect.poll(async () => row().locator('td.state').textContent(), { timeout: 15_000 }).toMatch(/^enabled; quota [\d.]+ KiB of [\d.]+ KiB this month$/);
    // Under the quota it still flows; 400 pings of 1000 bytes each way pass it.
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    await traffic(t.client, 400);
    await row().locator('td.state[data-enabled="false"]').waitFor({ timeout: 30_000 });
    const state = await row().locator('td.state').textContent();
    expect(state).toMatch(/disabled: over its quota for \d{4}-\d{2}: disabled until \d{4}-\d{2}-01 or a higher quota/);
    expect((await peerJson()).usedThisMonth).toBeGreaterThanOrEqual(quota);
    expect(readFileSync(registry, 'utf8')).toMatch(/over-quota=\d{4}-\d{2}/);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(false);
    await shot('7-over-quota');
  }, 120_000);

  it("the 24 h history and the month's usage survive a restart of the server; the sessions do not", async () => {
    const history = async () => (JSON.parse(await pageGet('/api/peers')) as { peers: { name: string; history: number[]; usedThisMonth: number }[] }).peers.find((p) => p.name === 'phone')!;
    const before = await history();
    const sum = (h: number[]) => h.reduce((a, b) => a + b, 0);
    expect(sum(before.history)).toBeGreaterThan(300 * 1024);
    expect((await burrow(t.server, ['server', 'down', '--config', registry])).code).toBe(0);
    expect(readFileSync(join(dir, `${sIf}.usage.json`), 'utf8')).toContain(before.history.filter((v) => v > 0).at(-1)!.toString());
    const again = await burrow(t.server, ['server', 'up', '--config', registry, '--admin', ADMIN]);
    expect(again.code, again.stderr).toBe(0);
    await page.reload();
    await page.waitForURL(`${BASE}/login`);
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${BASE}/`);
    await row().waitFor({ timeout: 15_000 });
    const after = await history();
    expect(sum(after.history)).toBe(sum(before.history));
    expect(after.usedThisMonth).toBe(before.usedThisMonth);
    expect(await row().locator('td.state').textContent()).toContain('over its quota');
    await shot('8-after-restart');
  }, 120_000);
});
