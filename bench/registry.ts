// `npm run bench -- registry`: the PostgreSQL registry at 10,000 peers beside the file
// registry holding the same data, in one run (root needed: the test PostgreSQL runs as
// the postgres user, test/support/postgres.ts). Each is timed RUNS times:
//   - read(): the whole registry (a gateway's start and each reconcile), the first one
//     of a fresh registry object (nothing parsed before) and the later ones;
//   - add-peer: one update (read under the lock, allocate, write the difference).
// Goals (issue 15): read well under a second; add-peer must not rewrite every peer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { addPeer } from '../server/peers.js';
import { PgRegistry } from '../server/pg/registry.js';
import { FileRegistry, type PeerRegistry } from '../server/store.js';
import { postgresSkipReason, startPostgres } from '../test/support/postgres.js';
import { median } from './lib.js';

const PEERS = 10_000;
const RUNS = 5;

function registryText(n: number): string {
  const lines = ['[Interface]', '# burrow-server: endpoint=192.0.2.1:51820 uplink=lo client-to-client=false', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.100.0.1/16, fd10:100::1/64', 'ListenPort = 51820'];
  for (let i = 0; i < n; i++) {
    const host = i + 2;
    lines.push(
      '',
      '[Peer]',
      `# burrow: name=p${i} created=2026-12-01T00:00:00.000Z enabled=true rx=${i} tx=${i}`,
      `PublicKey = ${encodeKey(publicKeyOf(generatePrivateKey()))}`,
      `PresharedKey = ${encodeKey(generatePresharedKey())}`,
      `AllowedIPs = 10.100.${host >> 8}.${host & 255}/32, fd10:100::${host.toString(16)}/128`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

async function series(f: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await timed(() => f(i)));
  return out;
}

const row = (name: string, runs: readonly number[], reference: readonly number[]) =>
  `${name.padEnd(34)} ${runs.map((r) => r.toFixed(0).padStart(6)).join('')}   median ${median(runs).toFixed(0).padStart(5)} ms   x${(median(runs) / median(reference)).toFixed(2)} of the file's`;

export async function runRegistryBench(): Promise<void> {
  const skip = postgresSkipReason();
  if (skip !== undefined) {
    console.log(`registry: skipped: ${skip}`);
    return;
  }
  const db = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-registry-'));
  try {
    const path = join(dir, 'wg0.conf');
    writeFileSync(path, registryText(PEERS), { mode: 0o600 });
    const file = new FileRegistry(path);
    const setup = new PgRegistry(db.url, { gateway: 'bench' });
    const created = await timed(async () => setup.create(await file.read()));
    await setup.close();
    console.log(`${PEERS} peers; import into PostgreSQL: ${created.toFixed(0)} ms; ${RUNS} runs each (ms)`);

    const firstReads = async (open: () => PeerRegistry) =>
      series(async () => {
        const r = open();
        await r.read();
        await r.close();
      });
    const pg = new PgRegistry(db.url, { gateway: 'bench' });
    await pg.read(); // the pool and migrations, outside the timings
    const fileFirst = await firstReads(() => new FileRegistry(path));
    const pgFirst = await firstReads(() => new PgRegistry(db.url, { gateway: 'bench' }));
    const fileRead = await series(() => file.read());
    const pgRead = await series(() => pg.read());
    const fileAdd = await series((i) => addPeer(file, { name: `file${i}` }));
    const pgAdd = await series((i) => addPeer(pg, { name: `pg${i}` }));
    await pg.close();
    console.log(row('file read (fresh object)', fileFirst, fileFirst));
    console.log(row('postgres read (fresh object)', pgFirst, fileFirst));
    console.log(row('file read (again)', fileRead, fileRead));
    console.log(row('postgres read (again)', pgRead, fileRead));
    console.log(row('file add-peer', fileAdd, fileAdd));
    console.log(row('postgres add-peer', pgAdd, fileAdd));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db.destroy();
  }
}
