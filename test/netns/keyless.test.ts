// A device without a private key, through `wg` only (issue 18, item 3), on burrow-go and
// on the latest wireguard-go side by side: each starts without a key, as wg-quick starts
// them; `wg setconf` with a file without PrivateKey and `wg set IF private-key /dev/null`
// are accepted; `wg show` prints "(none)" for both keys; a keyless device completes no
// handshake in either direction, and one set later does.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keys, configDir, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, stopChild, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { PEERS_BIN_DIR, requirePeer, startPeer, WIREGUARD_RUN_DIR } from '../support/wireguard-go.js';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';

const BURROW_GO = join(import.meta.dirname, '..', '..', 'bin', 'burrow-go.js');
const IMPLEMENTATIONS = {
  'burrow-go': { command: process.execPath, args: [BURROW_GO, '-f'] },
  'wireguard-go': { command: join(PEERS_BIN_DIR, 'wireguard-go'), args: ['-f'] },
} as const;
type Implementation = keyof typeof IMPLEMENTATIONS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `impl` on `ifname` in `ns` as wg-quick does (no key, no peers); stopped by PID with the namespace. */
async function startKeyless(ns: Netns, impl: Implementation, ifname: string): Promise<void> {
  const { command, args } = IMPLEMENTATIONS[impl];
  const socket = `${WIREGUARD_RUN_DIR}/${ifname}.sock`;
  const child = ns.spawn(command, [...args, ifname], { env: { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' } });
  ns.removeOnDestroy(socket);
  ns.onDestroy(async () => {
    await stopChild(child, 3_000);
    await rm(socket, { force: true });
  });
  const deadline = Date.now() + 20_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`${impl} exited (${child.exitCode}): ${ns.outputOf(child)}`);
    if (Date.now() > deadline) throw new Error(`${impl}: no ${socket} after 20 s`);
    await sleep(20);
  }
}

/** `wg ARGS` in ns; its output, or "error: STDERR" when it fails. */
async function wg(ns: Netns, args: string[]): Promise<string> {
  return ns.exec('wg', args).then((out) => out.trim(), (e: Error) => `error: ${e.message}`);
}

async function pingCount(ns: Netns, target: string, count: number): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', String(count), '-i', '0.3', '-W', '2', target], { timeoutMs: 60_000 }).catch((e: Error) => e.message);
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}

describe.skipIf(requireHost(['ip', 'wg', 'ping']) || requirePeer('latest-wireguard-go'))('a device without a private key, as wireguard-go', () => {
  const scope = netnsSuite();

  it('starts without a key; setconf without PrivateKey and private-key /dev/null are accepted; wg show prints (none)', async () => {
    const dir = configDir(scope);
    const peer = keys();
    const own = keys();
    const ownKeyFile = writeConf(dir, 'own', [own.priv]);
    const transcripts: Record<string, string[]> = {};
    for (const impl of Object.keys(IMPLEMENTATIONS) as Implementation[]) {
      const ns = await scope.create('kl');
      const ifname = uniqueName('kl');
      await startKeyless(ns, impl, ifname);
      const conf = writeConf(dir, ifname, ['[Interface]', 'ListenPort = 51820', '', '[Peer]', `PublicKey = ${peer.pub}`, 'AllowedIPs = 10.9.0.2/32']);
      const t: string[] = [];
      t.push(await wg(ns, ['show', ifname, 'private-key']), await wg(ns, ['show', ifname, 'public-key']));
      t.push(await wg(ns, ['setconf', ifname, conf]));
      t.push(await wg(ns, ['show', ifname, 'private-key']), await wg(ns, ['show', ifname, 'peers']), await wg(ns, ['showconf', ifname]));
      t.push(await wg(ns, ['set', ifname, 'private-key', ownKeyFile]));
      t.push(await wg(ns, ['show', ifname, 'public-key']));
      t.push(await wg(ns, ['set', ifname, 'private-key', '/dev/null']));
      t.push(await wg(ns, ['show', ifname, 'private-key']), await wg(ns, ['show', ifname, 'public-key']), await wg(ns, ['showconf', ifname]));
      transcripts[impl] = t;
    }
    const expected = [
      '(none)', '(none)',
      '',
      '(none)', peer.pub, `[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = ${peer.pub}\nAllowedIPs = 10.9.0.2/32`,
      '',
      own.pub,
      '',
      '(none)', '(none)', `[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = ${peer.pub}\nAllowedIPs = 10.9.0.2/32`,
    ];
    expect(transcripts['wireguard-go']).toEqual(expected); // the reference says so, or the test is wrong
    expect(transcripts['burrow-go']).toEqual(expected);
  }, 120_000);

  for (const impl of Object.keys(IMPLEMENTATIONS) as Implementation[]) {
    it(`${impl} without a key completes no handshake in either direction; once a key is set it does`, async () => {
      const pair = await scope.pair({ prefix: 'kh' });
      const dir = configDir(scope);
      const [gk, bk] = [keys(), keys()];
      const gIf = uniqueName('kg');
      const bIf = uniqueName('kb');
      const g = await startPeer(pair.a, {
        implementation: 'latest-wireguard-go', ifname: gIf, privateKey: gk.priv, listenPort: 51820, addresses: ['192.0.2.1/24'],
        peers: [{ publicKey: bk.pub, endpoint: `${pair.bAddr4}:51820`, allowedIPs: ['192.0.2.2/32'] }],
      });
      scope.defer(() => g.stop());
      await startKeyless(pair.b, impl, bIf);
      const conf = writeConf(dir, bIf, ['[Interface]', 'ListenPort = 51820', '', '[Peer]', `PublicKey = ${gk.pub}`, `Endpoint = ${pair.aAddr4}:51820`, 'AllowedIPs = 192.0.2.1/32']);
      expect(await wg(pair.b, ['setconf', bIf, conf])).toBe('');
      await pair.b.exec('ip', ['addr', 'add', '192.0.2.2/24', 'dev', bIf]);
      await pair.b.exec('ip', ['link', 'set', bIf, 'up']);

      // The reference initiates; the keyless device answers nothing.
      expect(await pingCount(pair.a, '192.0.2.2', 2)).toBe(0);
      // Nor does it initiate.
      expect(await pingCount(pair.b, '192.0.2.1', 2)).toBe(0);
      expect((await g.show()).peers[0]!.latestHandshake).toBe(0);
      expect(await wg(pair.b, ['show', bIf, 'latest-handshakes'])).toBe(`${gk.pub}\t0`);
      // Nothing received. Sent: nothing from Burrow, as the kernel; wireguard-go sends an
      // initiation made with the all-zero key clamped (148 bytes), which no peer knows.
      const [, rx, tx] = (await wg(pair.b, ['show', bIf, 'transfer'])).split('\t');
      expect(rx).toBe('0');
      if (impl === 'burrow-go') expect(tx).toBe('0');

      const keyFile = writeConf(dir, 'bkey', [bk.priv]);
      expect(await wg(pair.b, ['set', bIf, 'private-key', keyFile])).toBe('');
      expect(await pingCount(pair.b, '192.0.2.1', 3)).toBeGreaterThanOrEqual(2);
      expect((await g.show()).peers[0]!.latestHandshake).toBeGreaterThan(0);
    }, 120_000);
  }
});
