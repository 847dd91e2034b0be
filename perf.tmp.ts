import { startPostgres } from './test/support/postgres.ts';
import { PgRegistry } from './server/pg/registry.ts';
import { FileRegistry } from './server/store.ts';
import { parseRegistry, formatRegistry } from './server/registry.ts';
import { addPeer } from './server/peers.ts';
import { encodeKey, generatePrivateKey, generatePresharedKey, publicKeyOf } from './crypto/keys.ts';
import { writeFileSync } from 'node:fs';
const db = await startPostgres();
try {
  const lines = ['[Interface]', '# burrow-server: endpoint=vpn.example.net:51820', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.8.0.1/16, fd00:8::1/64', 'ListenPort = 51820', ''];
  for (let i = 0; i < 10000; i++) { const n = i + 2; lines.push('[Peer]', `# burrow: name=p${i} created=2026-12-01T10:00:00.000Z enabled=true rx=${i} tx=${i} client-key=${encodeKey(generatePrivateKey())}`, `PublicKey = ${encodeKey(publicKeyOf(generatePrivateKey()))}`, `PresharedKey = ${encodeKey(generatePresharedKey())}`, `AllowedIPs = 10.8.${n >> 8}.${n & 255}/32, fd00:8::${n.toString(16)}/128`, ''); }
  const path = `${db.dir}/wg0.conf`; writeFileSync(path, lines.join('\n'));
  const data = await new FileRegistry(path).read();
  const r = new PgRegistry(db.url, { gateway: 'gw' });
  let t = performance.now(); await r.create(data); console.log('create 10k ms', (performance.now() - t).toFixed(0));
  const reads = []; for (let i = 0; i < 5; i++) { t = performance.now(); const d = await r.read(); reads.push((performance.now() - t).toFixed(0)); if (d.peers.length !== 10000) throw new Error('n'); }
  console.log('read 10k ms', reads.join(' '));
  const adds = []; for (let i = 0; i < 5; i++) { t = performance.now(); await addPeer(r, { name: `x${i}` }); adds.push((performance.now() - t).toFixed(0)); }
  console.log('add-peer on 10k ms', adds.join(' '));
  const fr = new FileRegistry(path); const fadds = []; for (let i = 0; i < 5; i++) { t = performance.now(); await addPeer(fr, { name: `x${i}` }); fadds.push((performance.now() - t).toFixed(0)); }
  console.log('file add-peer on 10k ms', fadds.join(' '));
  const freads = []; for (let i = 0; i < 5; i++) { t = performance.now(); await fr.read(); freads.push((performance.now() - t).toFixed(0)); }
  console.log('file read 10k ms', freads.join(' '));
  await r.close();
} finally { await db.destroy(); }
