// The registry survives a kill during a write: a writer process adds peers one atomic
// update at a time to a registry of a few thousand peers and is SIGKILLed at random
// moments; after each kill the file reads back whole, as the old registry or the new one,
// and the next writer takes over the dead one's lock.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { parseRegistry } from '../../server/registry.js';
import { CLI, cliBuilt } from '../support/burrow.js';

const STORE = join(CLI, '..', '..', '..', 'server', 'store.js');
const PEERS = join(CLI, '..', '..', '..', 'server', 'peers.js');

// Half the rounds are killed from outside at a random moment; the others kill themselves
// in the middle of the registry's write (half its bytes written), the worst moment.
const WRITER = `
  const [store, peers, path, prefix, killAt] = process.argv.slice(1);
  const fs = (await import('node:fs')).default;
  const { syncBuiltinESMExports } = await import('node:module');
  const write = fs.writeSync;
  let big = 0;
  fs.writeSync = (fd, data, ...rest) => {
    if (typeof data === 'string' && data.length > 10000 && ++big === Number(killAt)) {
      write(fd, data.slice(0, data.length >> 1));
      process.kill(process.pid, 'SIGKILL');
    }
    return write(fd, data, ...rest);
  };
  syncBuiltinESMExports();
  const { FileRegistry } = await import(store);
  const { addPeer } = await import(peers);
  const r = new FileRegistry(path);
  process.stdout.write('ready\\n');
  for (let i = 0; ; i++) await addPeer(r, { name: prefix + i, publicKey: undefined });
`;

describe('the registry under SIGKILL', () => {
  cliBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'burrow-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is always the old file or the new one, never a broken one', async () => {
    const path = join(dir, 'wgk0.conf');
    const lines = ['[Interface]', '# burrow-server: endpoint=192.0.2.1:51820 client-to-client=false', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.20.0.1/16, fd20::1/64'];
    for (let i = 0; i < 3000; i++) {
      lines.push('', '[Peer]', `# burrow: name=seed${i} created=2026-12-01T00:00:00.000Z enabled=true rx=0 tx=0`, `PublicKey = ${encodeKey(publicKeyOf(generatePrivateKey()))}`, `AllowedIPs = 10.20.${(i + 2) >> 8}.${(i + 2) & 255}/32`);
    }
    writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
    let count = 3000;
    let kills = 0;
    for (let round = 0; round < 12; round++) {
      const selfKill = round % 2 === 1 ? 1 + (round % 3) : 0;
      const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, STORE, PEERS, path, `r${round}n`, String(selfKill)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await Promise.race([new Promise<void>((resolve) => child.stdout.once('data', () => resolve())), exited]);
      if (selfKill === 0) {
        await new Promise((r) => setTimeout(r, 400 + Math.random() * 1000));
        child.kill('SIGKILL');
      }
      await exited;
      expect(child.signalCode).toBe('SIGKILL');
      expect(err).toBe('');
      kills++;
      const data = parseRegistry(readFileSync(path, 'utf8'), path); // throws on a broken file
      const names = data.peers.map((p) => p.name);
      // Only whole updates: the seeds, then each round's peers in order, with no gap.
      expect(names.length).toBeGreaterThanOrEqual(count);
      const added = names.slice(count);
      expect(added).toEqual(added.map((_, i) => `r${round}n${i}`));
      count = names.length;
    }
    expect(kills).toBe(12);
    expect(count).toBeGreaterThan(3000);
  }, 120_000);
});
