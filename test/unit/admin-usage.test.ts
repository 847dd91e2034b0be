// Usage history and quotas: the UsageBook's 24-hour buckets and month counts, its file
// (kept across restarts), and the tracker's quota rules against a real registry file
// (cut off at the quota, enabled again when the month turns).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { UsageTracker } from '../../server/admin/tracker.js';
import { BUCKET_MS, HISTORY_BUCKETS, nextMonth, UsageBook } from '../../server/admin/usage.js';
import { serverView } from '../../server/admin/view.js';
import { RegistryFollower } from '../../server/follow.js';
import { formatRegistry, parseRegistry } from '../../server/registry.js';
import { FileRegistry } from '../../server/store.js';
import type { Logger } from '../../src/runtime/log.js';

const T0 = Date.parse('2026-12-04T12:00:00Z');
const OLD = '2026-01-01T00:00:00.000Z';
const NEW = '2026-12-02T00:00:00.000Z';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-usage-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('UsageBook', () => {
  it('puts each sample\'s difference in the bucket of its time; buckets older than 24 h fall off', () => {
    const book = UsageBook.empty(T0);
    book.sample([{ publicKey: 'a', total: 1000, created: OLD }], T0);
    book.sample([{ publicKey: 'a', total: 1500, created: OLD }], T0 + 1000);
    book.sample([{ publicKey: 'a', total: 1700, created: OLD }], T0 + 2 * BUCKET_MS);
    const h = book.history('a').buckets;
    expect(h).toHaveLength(HISTORY_BUCKETS);
    // The first sight only sets the baseline; 500 two buckets ago, 200 now.
    expect(h.slice(-3)).toEqual([500, 0, 200]);
    expect(h.slice(0, -3).every((v) => v === 0)).toBe(true);
    book.sample([{ publicKey: 'a', total: 1700, created: OLD }], T0 + (HISTORY_BUCKETS + 2) * BUCKET_MS);
    expect(book.history('a').buckets.every((v) => v === 0)).toBe(true);
  });

  it('keeps no buckets for a peer without traffic in the last 24 h (10,000 idle peers hold none)', () => {
    const path = join(dir, 'wg0.usage.json');
    const book = UsageBook.empty(T0);
    const idle = Array.from({ length: 100 }, (_, i) => ({ publicKey: `idle${i}`, total: 5000, created: OLD }));
    book.sample([...idle, { publicKey: 'busy', total: 0, created: NEW }], T0);
    book.sample([...idle, { publicKey: 'busy', total: 700, created: NEW }], T0 + 1000);
    book.save(path);
    const saved = JSON.parse(readFileSync(path, 'utf8')) as { history: Record<string, number[]>; last: Record<string, number> };
    expect(Object.keys(saved.history)).toEqual(['busy']);
    expect(Object.keys(saved.last)).toHaveLength(101);
    expect(book.history('idle7').buckets).toEqual(new Array(HISTORY_BUCKETS).fill(0));
    expect(book.history('busy').buckets.at(-1)).toBe(700);
    // Once its traffic is more than 24 h old, the busy peer holds none either.
    book.sample([...idle, { publicKey: 'busy', total: 700, created: NEW }], T0 + (HISTORY_BUCKETS + 1) * BUCKET_MS);
    book.save(path);
    expect(Object.keys((JSON.parse(readFileSync(path, 'utf8')) as { history: object }).history)).toEqual([]);
  });

  it('counts the month from the first sight (from zero for a peer created this month), and afresh each month', () => {
    const book = UsageBook.empty(T0);
    book.sample([{ publicKey: 'old', total: 10_000, created: OLD }, { publicKey: 'new', total: 300, created: NEW }], T0);
    book.sample([{ publicKey: 'old', total: 10_400, created: OLD }, { publicKey: 'new', total: 900, created: NEW }], T0 + 60_000);
    expect(book.usedThisMonth('old', 10_400)).toBe(400);
    expect(book.usedThisMonth('new', 900)).toBe(900);
    const jan = Date.parse('2027-01-01T00:00:10Z');
    expect(book.sample([{ publicKey: 'old', total: 10_500, created: OLD }], jan)).toBe(true);
    expect(book.month).toBe('2027-01');
    expect(book.usedThisMonth('old', 10_500)).toBe(100);
    // A peer no longer in the registry is forgotten.
    expect(book.history('new').buckets.every((v) => v === 0)).toBe(true);
    expect(nextMonth('2026-12')).toBe('2027-01-01T00:00:00.000Z');
  });

  it('is kept in a 0600 file and read back the same after a restart; a damaged file is named', () => {
    const path = join(dir, 'wg0.usage.json');
    const book = UsageBook.empty(T0);
    book.sample([{ publicKey: 'a', total: 0, created: NEW }], T0);
    book.sample([{ publicKey: 'a', total: 4096, created: NEW }], T0 + 1000);
    book.save(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = UsageBook.load(path, T0 + 2000);
    expect(again.history('a')).toEqual(book.history('a'));
    expect(again.usedThisMonth('a', 5000)).toBe(5000);
    again.sample([{ publicKey: 'a', total: 5000, created: NEW }], T0 + 3000);
    expect(again.history('a').buckets.at(-1)).toBe(5000);
    writeFileSync(path, '{"version":1,"month":"2026-12","bucket":1,"base":{"a":-1},"last":{},"history":{}}');
    expect(() => UsageBook.load(path, T0)).toThrow(`${path}: base: expected byte counts by public key`);
    expect(UsageBook.load(join(dir, 'absent.json'), T0).history('a').buckets.every((v) => v === 0)).toBe(true);
  });
});

describe('the tracker\'s quota rules', () => {
  const silent = { error: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;
  const pub = () => encodeKey(publicKeyOf(generatePrivateKey()));

  function registry(peers: string[]): FileRegistry {
    const path = join(dir, 'wg9.conf');
    writeFileSync(path, ['[Interface]', '# burrow-server: endpoint=vpn.example.net:51820', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.9.0.1/24', '', ...peers, ''].join('\n'), { mode: 0o600 });
    return new FileRegistry(path);
  }

  it('disables a peer at its quota with over-quota=MONTH, and enables one cut off in an earlier month', async () => {
    const r = registry([
      '[Peer]',
      `# burrow: name=heavy created=${NEW} enabled=true rx=700 tx=400 quota=1000`,
      `PublicKey = ${pub()}`,
      'AllowedIPs = 10.9.0.2/32',
      '',
      '[Peer]',
      `# burrow: name=light created=${NEW} enabled=true rx=100 tx=100 quota=1000`,
      `PublicKey = ${pub()}`,
      'AllowedIPs = 10.9.0.3/32',
      '',
      '#~ [Peer]',
      `#~ # burrow: name=last-month created=${OLD} enabled=false rx=9000 tx=9000 quota=1000 over-quota=2026-11`,
      `#~ PublicKey = ${pub()}`,
      '#~ AllowedIPs = 10.9.0.4/32',
    ]);
    const ifname = `trk${process.pid % 100000}`;
    const view = serverView(ifname, new RegistryFollower(r, await r.read(), { ifname, log: silent }), () => undefined);
    const tracker = new UsageTracker({ view, path: join(dir, 'wg9.usage.json'), log: silent, now: () => T0 });
    tracker.start();
    await tracker.stop();
    const text = readFileSync(r.location, 'utf8');
    expect(text).toMatch(/^#~ # burrow: name=heavy \S+ enabled=false rx=700 tx=400 quota=1000 over-quota=2026-12$/m);
    expect(text).toMatch(/^# burrow: name=light \S+ enabled=true rx=100 tx=100 quota=1000$/m);
    expect(text).toMatch(/^# burrow: name=last-month \S+ enabled=true rx=9000 tx=9000 quota=1000$/m);
    const heavy = view.status().list.find((p) => p.name === 'heavy')!;
    expect(tracker.reason(heavy, T0)).toBe('over its quota for 2026-12: disabled until 2027-01-01 or a higher quota');
    expect(statSync(join(dir, 'wg9.usage.json')).mode & 0o777).toBe(0o600);
  });
});

describe("the registry's quota and admin fields", () => {
  const head = ['[Interface]', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.9.0.1/24'];
  const peer = (meta: string) => ['', '[Peer]', `# burrow: ${meta}`, `PublicKey = ${encodeKey(publicKeyOf(generatePrivateKey()))}`, 'AllowedIPs = 10.9.0.2/32', ''];

  it('read back what they wrote, and a damaged value names FILE:LINE', () => {
    const text = [...head.slice(0, 1), '# burrow-server: client-to-client=false admin=127.0.0.1:51821 admin-tls-cert=/etc/burrow/c.pem admin-tls-key=/etc/burrow/k.pem', ...head.slice(1), ...peer(`name=a created=${NEW} enabled=true rx=1 tx=2 quota=5000`)].join('\n');
    const data = parseRegistry(text, 'wg9.conf');
    expect(data.settings).toMatchObject({ admin: '127.0.0.1:51821', adminTlsCert: '/etc/burrow/c.pem', adminTlsKey: '/etc/burrow/k.pem' });
    expect(data.peers[0]).toMatchObject({ quota: 5000 });
    expect(parseRegistry(formatRegistry(data), 'x')).toEqual(data);
    expect(() => parseRegistry([...head, ...peer(`name=a created=${NEW} enabled=true rx=1 tx=2 quota=lots`)].join('\n'), 'wg9.conf')).toThrow('wg9.conf:6: quota: expected a count of bytes, got "lots"');
    expect(() => parseRegistry([...head, ...peer(`name=a created=${NEW} enabled=true rx=1 tx=2 over-quota=2026-12`)].join('\n'), 'wg9.conf')).toThrow('wg9.conf:6: over-quota=2026-12 on an enabled peer');
    expect(() => parseRegistry([head[0]!, '# burrow-server: admin=127.0.0.1:51821 admin-tls-cert=/c.pem', ...head.slice(1)].join('\n'), 'wg9.conf')).toThrow('wg9.conf:2: admin-tls-cert and admin-tls-key go together');
  });
});
