import { startPostgres } from './test/support/postgres.ts';
import { PgRegistry } from './server/pg/registry.ts';
import { FileRegistry } from './server/store.ts';
import { peerFromRow, PEER_COLUMNS } from './server/pg/rows.ts';
import { encodeKey, generatePrivateKey, generatePresharedKey, publicKeyOf } from './crypto/keys.ts';
import { writeFileSync } from 'node:fs';
import pg from 'pg';
const db = await startPostgres();
try {
  const lines = ['[Interface]', '# burrow-server: endpoint=vpn.example.net:51820', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.8.0.1/16, fd00:8::1/64', 'ListenPort = 51820', ''];
  for (let i = 0; i < 10000; i++) { const n = i + 2; lines.push('[Peer]', `# burrow: name=p${i} created=2026-12-01T10:00:00.000Z enabled=true rx=${i} tx=${i} client-key=${encodeKey(generatePrivateKey())}`, `PublicKey = ${encodeKey(publicKeyOf(generatePrivateKey()))}`, `PresharedKey = ${encodeKey(generatePresharedKey())}`, `AllowedIPs = 10.8.${n >> 8}.${n & 255}/32, fd00:8::${n.toString(16)}/128`, ''); }
  const path = `${db.dir}/wg0.conf`; writeFileSync(path, lines.join('\n'));
  const r = new PgRegistry(db.url, { gateway: 'gw' });
  await r.create(await new FileRegistry(path).read());
  const c = new pg.Client({ connectionString: db.url }); await c.connect();
  for (let k = 0; k < 3; k++) {
    let t = performance.now();
    const peers = await c.query(`SELECT id, ${PEER_COLUMNS.join(', ')} FROM burrow_peer ORDER BY id`);
    const t1 = performance.now();
    const addrs = await c.query('SELECT peer_id, address FROM burrow_address ORDER BY peer_id, position');
    const t2 = performance.now();
    const tr = await c.query('SELECT peer_id, sum(rx)::text AS rx, sum(tx)::text AS tx FROM burrow_transfer GROUP BY peer_id');
    const t3 = performance.now();
    const m = new Map<string, string[]>(); for (const a of addrs.rows) { const l = m.get(a.peer_id); if (l) l.push(a.address); else m.set(a.peer_id, [a.address]); }
    for (const p of peers.rows) peerFromRow(p, m.get(p.id) ?? [], 0, 0, 'x');
    const t4 = performance.now();
    const agg = await c.query(`SELECT p.id, ${PEER_COLUMNS.map(c=>'p.'+c).join(', ')}, (SELECT array_agg(address ORDER BY position) FROM burrow_address a WHERE a.peer_id = p.id) AS addresses FROM burrow_peer p ORDER BY p.id`);
    const t5 = performance.now();
    console.log(`peers ${(t1-t).toFixed(0)} addrs ${(t2-t1).toFixed(0)} transfer ${(t3-t2).toFixed(0)} build ${(t4-t3).toFixed(0)} agg-query ${(t5-t4).toFixed(0)}`);
  }
  await c.end(); await r.close();
} finally { await db.destroy(); }
