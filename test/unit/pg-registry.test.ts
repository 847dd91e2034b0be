// The PostgreSQL registry (server/pg/) against a real PostgreSQL server that the test
// starts itself (test/support/postgres.ts: Debian's initdb and pg_ctl, a Unix socket in a
// temporary directory): migrations, the same data as the file registry, writes of only
// what changed, allocation by two gateways at once, the UNIQUE address, NOTIFY to another
// gateway's watch, the database stopped and started again, transfer totals summed over
// gateways, import and export, and no password in any message.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { parsePrefix } from '../../src/config/index.js';
import { addPeer } from '../../server/peers.js';
import { redactUrl } from '../../server/pg/connection.js';
import { exportRegistry, importRegistry } from '../../server/pg/copy.js';
import { PgRegistry } from '../../server/pg/registry.js';
import { migrate, SCHEMA_VERSION } from '../../server/pg/schema.js';
import { formatRegistry, parseRegistry, type PeerRecord, type RegistryData } from '../../server/registry.js';
import { FileRegistry, type RegistryStatus } from '../../server/store.js';
import { CLI, cliBuilt } from '../support/burrow.js';
import { requirePostgres, startPostgres, type TestPostgres } from '../support/postgres.js';

function burrow(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
const PASSWORD = 'hunter2-Secret';

/** A registry with something in every field the file keeps. */
function registryText(): string {
  return [
    '[Interface]',
    '# burrow-server: endpoint=vpn.example.net:51820 uplink=eth9 client-to-client=true dns=10.8.0.1,fd00:8::1 admin=127.0.0.1:51821',
    `PrivateKey = ${encodeKey(generatePrivateKey())}`,
    'Address = 10.8.0.1/24, fd00:8::1/64',
    'ListenPort = 51820',
    'MTU = 1380',
    'PostUp = logger burrow up',
    '',
    '[Peer]',
    `# burrow: name=alice created=2026-12-01T10:00:00.000Z enabled=true expires=2030-01-31T00:00:00.000Z rx=1000 tx=2000 client-key=${encodeKey(generatePrivateKey())} quota=5000000`,
    `PublicKey = ${key()}`,
    `PresharedKey = ${encodeKey(generatePrivateKey())}`,
    'AllowedIPs = 10.8.0.2/32, fd00:8::2/128',
    '',
    '#~ [Peer]',
    '#~ # burrow: name=bob created=2026-12-02T10:00:00.000Z enabled=false rx=7 tx=9 quota=100 over-quota=2026-12',
    `#~ PublicKey = ${key()}`,
    '#~ AllowedIPs = 10.8.0.3/32, fd00:8::3/128',
    '',
    '[Peer]',
    '# burrow: name=carol created=2026-12-03T10:00:00.000Z enabled=true rx=0 tx=0',
    `PublicKey = ${key()}`,
    'AllowedIPs = 10.8.0.4/32, 192.168.50.0/24',
    'Endpoint = 198.51.100.7:51820',
    'PersistentKeepalive = 25',
    '',
  ].join('\n');
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(requirePostgres())('the PostgreSQL registry', () => {
  let db: TestPostgres;
  let dir: string;
  const opened: PgRegistry[] = [];
  const open = (gateway = 'gw-a', url = db.url): PgRegistry => {
    const r = new PgRegistry(url, { gateway });
    opened.push(r);
    return r;
  };
  /** A server in the database from registryText(); returns its data as the file registry reads it. */
  async function seed(r: PgRegistry, text = registryText()): Promise<RegistryData> {
    const data = parseRegistry(text, 'seed.conf');
    await r.create(data);
    return data;
  }

  beforeAll(async () => {
    db = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
    await db.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('migrates an empty database once, under its lock, with a version table; a re-run changes nothing', async () => {
    // Two gateways opening at once: the advisory lock lets one migrate, the other finds it done.
    expect(await Promise.all([open('gw-a').exists(), open('gw-b').exists()])).toEqual([false, false]);
    expect(await db.query('SELECT version FROM burrow_schema_version ORDER BY version')).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
    const tables = await db.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name");
    expect(tables.map((t) => t.table_name)).toEqual(['burrow_address', 'burrow_peer', 'burrow_schema_version', 'burrow_server', 'burrow_transfer']);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      expect(await migrate(client, 'test')).toEqual([]);
      await client.query('INSERT INTO burrow_schema_version (version) VALUES (99)');
    } finally {
      await client.end();
    }
    await expect(open('gw-c').read()).rejects.toThrow(/schema is at version 99, newer than this Burrow knows/);
  });

  it('reads back what the file registry reads, and one change gives the same data in both', async () => {
    dir = mkdtempSync(join(tmpdir(), 'burrow-pg-test-'));
    const path = join(dir, 'wg0.conf');
    writeFileSync(path, registryText(), { mode: 0o600 });
    const file = new FileRegistry(path);
    const r = open();
    await r.create(await file.read());
    expect(await r.read()).toEqual(await file.read());
    // Parsed keys are kept between reads, but a caller that wipes its copy wipes only its own.
    (await r.read()).peers[0]!.peer.presharedKey!.fill(0);
    expect(await r.read()).toEqual(await file.read());

    const dave: PeerRecord = { name: 'dave', created: '2026-12-04T00:00:00.000Z', enabled: true, rx: 0, tx: 0, peer: { publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: [parsePrefix('10.8.0.5/32'), parsePrefix('fd00:8::5/128')] } };
    const change = (data: RegistryData) => ({
      data: {
        ...data,
        config: { ...data.config, interface: { ...data.config.interface, mtu: 1400 } },
        settings: { ...data.settings, dns: ['10.8.0.53'] },
        peers: [
          ...data.peers
            .filter((p) => p.name !== 'carol')
            .map((p) => (p.name === 'alice' ? { ...p, enabled: false, rx: p.rx + 100, peer: { ...p.peer, allowedIPs: [parsePrefix('10.8.0.9/32')] } } : p)),
          dave,
        ],
      },
      result: 'done',
    });
    expect(await r.update(change)).toBe('done');
    await file.update(change);
    expect(await r.read()).toEqual(await file.read());
    // A change that changes nothing writes nothing (and announces nothing).
    const generation = async () => (await db.query<{ generation: string }>('SELECT generation::text FROM burrow_server'))[0]!.generation;
    const before = await generation();
    await r.update((data) => ({ data, result: undefined }));
    expect(await generation()).toBe(before);
  });

  it('add-peer writes its own rows only, never the other peers', async () => {
    const r = open();
    await seed(r);
    for (let i = 0; i < 30; i++) await addPeer(r, { name: `p${i}` });
    const rows = async () => ({
      peers: await db.query<{ id: string; xmin: string }>('SELECT id::text, xmin::text FROM burrow_peer ORDER BY burrow_peer.id'),
      addresses: await db.query<{ address: string; xmin: string }>('SELECT address, xmin::text FROM burrow_address ORDER BY address'),
      transfer: await db.query<{ peer_id: string; xmin: string }>('SELECT peer_id::text, gateway, xmin::text FROM burrow_transfer ORDER BY burrow_transfer.peer_id, gateway'),
    });
    const before = await rows();
    const { record } = await addPeer(r, { name: 'newcomer' });
    const after = await rows();
    // Every row that was there is the same row version (xmin: the transaction that wrote it).
    expect(after.peers.slice(0, before.peers.length)).toEqual(before.peers);
    expect(after.peers).toHaveLength(before.peers.length + 1);
    expect(after.addresses.filter((a) => !record.peer.allowedIPs.some((p) => p.text === a.address))).toEqual(before.addresses);
    expect(after.transfer).toEqual(before.transfer);
  });

  it('200 add-peer calls split across two gateways at once give 200 distinct addresses', async () => {
    const a = open('gw-a');
    const b = open('gw-b');
    await seed(a);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => addPeer(i % 2 === 0 ? a : b, { name: `n${i}` })));
    const v4 = results.map((x) => x.record.peer.allowedIPs[0]!.text);
    const v6 = results.map((x) => x.record.peer.allowedIPs[1]!.text);
    expect(new Set(v4).size).toBe(200);
    expect(new Set(v6).size).toBe(200);
    const data = await b.read();
    expect(data.peers).toHaveLength(203);
    const stored = data.peers.flatMap((p) => p.peer.allowedIPs.map((x) => x.text));
    expect(new Set(stored).size).toBe(stored.length);
    expect((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM burrow_address'))[0]!.n).toBe(String(stored.length));
  });

  it('the UNIQUE address refuses a duplicate inserted by hand; update retries once, then says which', async () => {
    const r = open();
    await seed(r);
    const alice = (await r.read()).peers.find((p) => p.name === 'alice')!;
    const [{ id }] = (await db.query<{ id: string }>("INSERT INTO burrow_peer (name, public_key, created, enabled) VALUES ('mallory', $1, now(), true) RETURNING id::text", [key()])) as [{ id: string }];
    await expect(db.query('INSERT INTO burrow_address (peer_id, position, address) VALUES ($1, 0, $2)', [id, alice.peer.allowedIPs[0]!.text])).rejects.toMatchObject({ code: '23505' });
    await expect(db.query("INSERT INTO burrow_peer (name, public_key, created, enabled) VALUES ('eve', $1, now(), true)", [encodeKey(alice.peer.publicKey)])).rejects.toMatchObject({ code: '23505' });

    // A change that (wrongly) gives a new peer alice's address: the constraint refuses it at
    // both attempts, and nothing is stored.
    let runs = 0;
    const clash = (data: RegistryData) => {
      runs++;
      const copy: PeerRecord = { ...alice, name: 'clash', peer: { ...alice.peer, publicKey: publicKeyOf(generatePrivateKey()) } };
      return { data: { ...data, peers: [...data.peers, copy] }, result: undefined };
    };
    await expect(r.update(clash)).rejects.toMatchObject({ code: 'ERR_REGISTRY_DUPLICATE', message: expect.stringMatching(/address.*already exists/) });
    expect(runs).toBe(2);
    expect((await r.read()).peers.map((p) => p.name)).not.toContain('clash');
  });

  it("a change on one gateway reaches the other gateway's watch (NOTIFY), and a first onChange comes at connect", async () => {
    const a = open('gw-a');
    const b = open('gw-b');
    await seed(a);
    let changes = 0;
    const statuses: RegistryStatus[] = [];
    const watcher = b.watch({ onChange: () => changes++, onStatus: (s) => statuses.push(s) });
    await waitFor('the first onChange (connected)', () => changes === 1);
    await addPeer(a, { name: 'fresh' });
    await waitFor('onChange after add-peer on the other gateway', () => changes === 2, 5_000);
    // Transfer saves are not registry changes: nobody is woken for them.
    await a.addTransfer(new Map([['fresh', { rx: 1, tx: 1 }]]));
    await new Promise((r) => setTimeout(r, 300));
    expect(changes).toBe(2);
    await watcher.stop();
    await addPeer(a, { name: 'after-stop' });
    await new Promise((r) => setTimeout(r, 300));
    expect(changes).toBe(2);
    expect(statuses).toEqual([]);
  });

  it('database stopped: watch says unreachable, read throws ERR_REGISTRY_UNREACHABLE; started: reachable and a full reconcile', async () => {
    const url = db.url.replace('postgres@', `postgres:${encodeURIComponent(PASSWORD)}@`);
    const a = open('gw-a', url);
    const b = open('gw-b', url);
    await seed(a);
    expect(a.location).not.toContain(PASSWORD);
    expect(a.location).toBe(db.url);
    let changes = 0;
    const statuses: RegistryStatus[] = [];
    b.watch({ onChange: () => changes++, onStatus: (s) => statuses.push(s) });
    await waitFor('connected', () => changes === 1);
    await db.stop();
    try {
      await waitFor('onStatus unreachable', () => statuses.length === 1);
      expect(statuses[0]).toMatchObject({ reachable: false, since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
      const error = await a.read().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE', message: expect.stringContaining(`cannot reach the registry ${db.url}`) });
      await expect(addPeer(a, { name: 'while-away' })).rejects.toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE' });
      for (const text of [(error as Error).message, JSON.stringify(statuses), (error as Error).stack ?? '']) expect(text).not.toContain(PASSWORD);
    } finally {
      await db.start();
    }
    await waitFor('onStatus reachable', () => statuses.length === 2, 10_000);
    expect(statuses[1]).toMatchObject({ reachable: true });
    await waitFor('onChange after the reconnect', () => changes === 2, 5_000);
    expect((await a.read()).peers).toHaveLength(3);
    await addPeer(a, { name: 'after-restart' });
    await waitFor('notifications flow again', () => changes === 3, 5_000);
  }, 60_000);

  it("transfer totals are the sums of every gateway's share", async () => {
    const a = open('gw-a');
    const b = open('gw-b');
    await seed(a); // alice 1000/2000 and bob 7/9 become gw-a's share
    await a.addTransfer(new Map([['alice', { rx: 10, tx: 20 }]]));
    await b.addTransfer(new Map([['alice', { rx: 1, tx: 2 }], ['nobody', { rx: 5, tx: 5 }]]));
    await b.addTransfer(new Map([['alice', { rx: 1, tx: 2 }], ['carol', { rx: 0, tx: 0 }]]));
    for (const r of [a, b]) expect((await r.read()).peers.find((p) => p.name === 'alice')).toMatchObject({ rx: 1012, tx: 2024 });
    // A change of a peer's totals (disable folding in its last counts) is the changing gateway's.
    await b.update((data) => ({ data: { ...data, peers: data.peers.map((p) => (p.name === 'alice' ? { ...p, enabled: false, rx: p.rx + 5, tx: p.tx + 6 } : p)) }, result: undefined }));
    const shares = await db.query('SELECT p.name, t.gateway, t.rx::int, t.tx::int FROM burrow_transfer t JOIN burrow_peer p ON p.id = t.peer_id ORDER BY p.name, t.gateway');
    expect(shares).toEqual([
      { name: 'alice', gateway: 'gw-a', rx: 1010, tx: 2020 },
      { name: 'alice', gateway: 'gw-b', rx: 7, tx: 10 },
      { name: 'bob', gateway: 'gw-a', rx: 7, tx: 9 },
    ]);
    expect((await a.read()).peers.find((p) => p.name === 'alice')).toMatchObject({ rx: 1017, tx: 2030, enabled: false });
  });

  it('import and export: file -> PostgreSQL -> file is the same file; each refuses to overwrite unless told', async () => {
    dir = mkdtempSync(join(tmpdir(), 'burrow-pg-test-'));
    const source = join(dir, 'wg0.conf');
    const text = formatRegistry(parseRegistry(registryText(), source), source);
    writeFileSync(source, text, { mode: 0o600 });
    const r = open('gw-a');
    expect(await importRegistry(source, r)).toEqual({ peers: 3 });
    const back = join(dir, 'wg1.conf');
    expect(await exportRegistry(r, back)).toEqual({ peers: 3 });
    expect(readFileSync(back, 'utf8')).toBe(text);
    expect(statSync(back).mode & 0o777).toBe(0o600);

    await expect(importRegistry(source, r)).rejects.toThrow(/holds a server already \(with 3 peer\(s\)\): nothing was changed; replace everything in it with --replace/);
    await expect(exportRegistry(r, back)).rejects.toThrow(/wg1.conf exists already: nothing was written; overwrite it with --replace/);
    // Another gateway's counts are in the export's sums.
    await open('gw-b').addTransfer(new Map([['carol', { rx: 40, tx: 50 }]]));
    await exportRegistry(r, back, { replace: true });
    expect((await new FileRegistry(back).read()).peers.find((p) => p.name === 'carol')).toMatchObject({ rx: 40, tx: 50 });
    // --replace: the database becomes the file again (carol's 40/50 gone with the old rows).
    await importRegistry(source, r, { replace: true });
    expect(await r.read()).toEqual(await new FileRegistry(source).read());
  });

  it('close() ends every connection it opened, watchers included', async () => {
    const a = open('gw-close');
    await seed(a);
    a.watch({ onChange: () => undefined, onStatus: () => undefined });
    await Promise.all([a.read(), a.read(), a.read()]);
    const connections = () => db.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name LIKE 'burrow%'").then((rows) => Number(rows[0]!.n));
    await waitFor('the watch connected', async () => (await connections()) >= 2);
    await a.close();
    await waitFor('no connection left', async () => (await connections()) === 0, 5_000);
    await expect(a.read()).rejects.toThrow(/is closed/);
  });
});

describe.skipIf(requirePostgres())('burrow server on a PostgreSQL registry (the CLI)', () => {
  let db: TestPostgres;
  let dir: string;
  beforeAll(async () => {
    cliBuilt();
    db = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'burrow-pg-cli-'));
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('init --registry, add-peer and list-peers through BURROW_REGISTRY, export and import; refusals exit 2, a lost database 1, no password shown', async () => {
    const url = db.url.replace('postgres@', `postgres:${encodeURIComponent(PASSWORD)}@`);
    const init = await burrow(['server', 'init', '--registry', url, '--endpoint', 'vpn.example.net', '--subnet', '10.66.0.0/24', '--subnet6', 'fd66::/64']);
    expect(init).toMatchObject({ code: 0, stdout: expect.stringContaining(`wrote the server into ${db.url}: 10.66.0.1/24, fd66::1/64, UDP port 51820`) });
    const again = await burrow(['server', 'init', '--registry', url]);
    expect(again).toMatchObject({ code: 2, stderr: expect.stringContaining('holds a server already (with 0 peer(s)): nothing was changed') });

    const added = await burrow(['server', 'add-peer', 'alice', '--gateway', 'gw-cli'], { BURROW_REGISTRY: url });
    expect(added).toMatchObject({ code: 0, stdout: expect.stringContaining('Address = 10.66.0.2/32, fd66::2/128'), stderr: expect.stringContaining("added 'alice'") });
    const list = await burrow(['server', 'list-peers', '--json', '--registry', url]);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: 'alice', addresses: ['10.66.0.2/32', 'fd66::2/128'], enabled: true }]);
    expect(await burrow(['server', 'list-peers', '--registry', url, '--config', join(dir, 'wg0.conf')])).toMatchObject({ code: 2, stderr: expect.stringContaining('--config and --registry name the registry twice') });

    const file = join(dir, 'wg5.conf');
    expect(await burrow(['server', 'registry', 'export', '--registry', url, '--config', file])).toMatchObject({ code: 0, stdout: expect.stringContaining(`wrote ${file} (0600) from ${db.url}: the server and 1 peer(s)`) });
    expect((await new FileRegistry(file).read()).peers.map((p) => p.name)).toEqual(['alice']);
    expect(await burrow(['server', 'registry', 'import', '--registry', url, '--config', file])).toMatchObject({ code: 2, stderr: expect.stringContaining('--replace') });
    expect(await burrow(['server', 'registry', 'import', '--registry', url, '--config', file, '--replace'])).toMatchObject({ code: 0 });

    await db.stop();
    try {
      const lost = await burrow(['server', 'list-peers', '--registry', url]);
      expect(lost).toMatchObject({ code: 1, stderr: expect.stringContaining(`cannot reach the registry ${db.url}`) });
      for (const r of [init, again, added, list, lost]) expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    } finally {
      await db.start();
    }
  }, 120_000);
});

describe('the URL as shown: no password', () => {
  it('takes the password out of the user part and the query', () => {
    expect(redactUrl('postgresql://burrow:s3cr%40t@db.example.net:5432/burrow')).toBe('postgresql://burrow@db.example.net:5432/burrow');
    expect(redactUrl('postgres://burrow@db/burrow?sslmode=require&password=s3cret')).toBe('postgres://burrow@db/burrow?sslmode=require');
    expect(redactUrl('postgres://burrow@db/burrow?password=s3cret&sslmode=require')).toBe('postgres://burrow@db/burrow?sslmode=require');
    expect(redactUrl('postgresql://postgres@/burrow?host=%2Ftmp%2Fx')).toBe('postgresql://postgres@/burrow?host=%2Ftmp%2Fx');
  });
});
