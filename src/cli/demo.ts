// `burrow demo` (npm run demo): a client and a server, each in a network namespace of
// its own joined by a veth pair, both brought up with Burrow from wg-quick files; a
// ping through the tunnel, a file sent over TCP and checked, the status, the
// throughput. Everything it makes (namespaces, daemons, files) is removed at the end,
// also when a step fails. It touches nothing in the host's own network namespace.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { logPath } from '../runtime/journal.js';
import { CliError } from './errors.js';
import { tcpTransfer } from './transfer.js';

const SERVER_NS = 'burrow-demo-srv';
const CLIENT_NS = 'burrow-demo-cli';
const SERVER_IF = 'bdemo-srv';
const CLIENT_IF = 'bdemo-cli';
// Documentation ranges only: the outer link and the tunnel.
const SERVER_OUTER = '198.51.100.1';
const CLIENT_OUTER = '198.51.100.2';
const SERVER_TUN = '192.0.2.1';
const CLIENT_TUN = '192.0.2.2';
const SERVER_TUN6 = '2001:db8:b0::1';
const CLIENT_TUN6 = '2001:db8:b0::2';
const TRANSFER_BYTES = 64 * 1024 * 1024;

function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const inNs = (ns: string, cmd: string, args: string[], timeoutMs?: number) => sh('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);

export async function demo(cliScript: string, say: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  if (process.getuid?.() !== 0) throw new CliError('the demo builds network namespaces: run it as root (sudo npm run demo)');
  const dir = mkdtempSync(join(tmpdir(), 'burrow-demo-'));
  const cleanups: (() => Promise<unknown>)[] = [];
  const burrow = (ns: string, args: string[]) => inNs(ns, process.execPath, [cliScript, ...args], 60_000);
  try {
    // --- two hosts joined by a veth pair ---------------------------------------------
    for (const ns of [SERVER_NS, CLIENT_NS]) {
      await sh('ip', ['netns', 'del', ns]).catch(() => undefined); // left over from an interrupted run
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/resolv.conf`, '# burrow demo namespace\n');
      cleanups.push(async () => rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }));
      await sh('ip', ['netns', 'add', ns]);
      cleanups.push(() => sh('ip', ['netns', 'del', ns]));
      await inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
    }
    await inNs(SERVER_NS, 'ip', ['link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth0', 'netns', CLIENT_NS]);
    await inNs(SERVER_NS, 'ip', ['addr', 'add', `${SERVER_OUTER}/24`, 'dev', 'veth0']);
    await inNs(CLIENT_NS, 'ip', ['addr', 'add', `${CLIENT_OUTER}/24`, 'dev', 'veth0']);
    for (const ns of [SERVER_NS, CLIENT_NS]) await inNs(ns, 'ip', ['link', 'set', 'veth0', 'up']);
    say(`hosts: ${SERVER_NS} (${SERVER_OUTER}) and ${CLIENT_NS} (${CLIENT_OUTER}), joined by a veth pair`);

    // --- keys and wg-quick files ------------------------------------------------------
    const serverKey = generatePrivateKey();
    const clientKey = generatePrivateKey();
    const psk = encodeKey(randomBytes(32));
    const serverConf = join(dir, `${SERVER_IF}.conf`);
    const clientConf = join(dir, `${CLIENT_IF}.conf`);
    writeFileSync(serverConf, [
      '[Interface]', `PrivateKey = ${encodeKey(serverKey)}`, `Address = ${SERVER_TUN}/24, ${SERVER_TUN6}/64`, 'ListenPort = 51820', '',
      '[Peer]', `PublicKey = ${encodeKey(publicKeyOf(clientKey))}`, `PresharedKey = ${psk}`, `AllowedIPs = ${CLIENT_TUN}/32, ${CLIENT_TUN6}/128`, '',
    ].join('\n'), { mode: 0o600 });
    writeFileSync(clientConf, [
      '[Interface]', `PrivateKey = ${encodeKey(clientKey)}`, `Address = ${CLIENT_TUN}/24, ${CLIENT_TUN6}/64`, '',
      '[Peer]', `PublicKey = ${encodeKey(publicKeyOf(serverKey))}`, `PresharedKey = ${psk}`, `Endpoint = ${SERVER_OUTER}:51820`,
      `AllowedIPs = ${SERVER_TUN}/32, ${SERVER_TUN6}/128`, 'PersistentKeepalive = 25', '',
    ].join('\n'), { mode: 0o600 });
    serverKey.fill(0);
    clientKey.fill(0);

    // --- up -----------------------------------------------------------------------------
    say(await burrow(SERVER_NS, ['up', serverConf]).then((s) => s.trim()));
    cleanups.push(() => burrow(SERVER_NS, ['down', SERVER_IF]).catch(() => undefined));
    say(await burrow(CLIENT_NS, ['up', clientConf]).then((s) => s.trim()));
    cleanups.push(() => burrow(CLIENT_NS, ['down', CLIENT_IF]).catch(() => undefined));

    // --- ping through the tunnel ------------------------------------------------------
    const ping = await inNs(CLIENT_NS, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', SERVER_TUN]);
    say(`ping ${SERVER_TUN} through the tunnel: ${ping.split('\n').find((l) => l.includes('packets transmitted'))}`);
    const rtt = ping.split('\n').find((l) => l.startsWith('rtt'));
    if (rtt) say(`  ${rtt}`);
    const ping6 = await inNs(CLIENT_NS, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', SERVER_TUN6]);
    say(`ping ${SERVER_TUN6} through the tunnel: ${ping6.split('\n').find((l) => l.includes('packets transmitted'))}`);

    // --- data over TCP, checked ---------------------------------------------------
    const host = (ns: string) => ({
      spawn: (cmd: string, args: string[]) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }),
      exec: (cmd: string, args: string[], timeoutMs: number) => inNs(ns, cmd, args, timeoutMs),
    });
    const t = await tcpTransfer(host(SERVER_NS), host(CLIENT_NS), SERVER_TUN, TRANSFER_BYTES);
    if (t.bytes !== TRANSFER_BYTES || t.receivedSha256 !== t.sentSha256) {
      throw new CliError(`the data arrived damaged: ${t.bytes} bytes, sha256 ${t.receivedSha256}, sent ${t.sentSha256}`);
    }
    say(`sent ${TRANSFER_BYTES / (1 << 20)} MiB over TCP through the tunnel: sha256 matches (${t.sentSha256.slice(0, 16)}…)`);
    say(`throughput: ${((t.bytes * 8) / (t.ms / 1000) / 1e6).toFixed(0)} Mbit/s (${(t.ms / 1000).toFixed(2)} s)`);

    // --- status ------------------------------------------------------------------------
    say('');
    say(`$ burrow show ${CLIENT_IF}   (in ${CLIENT_NS})`);
    say((await burrow(CLIENT_NS, ['show', CLIENT_IF])).trimEnd());
    say('');
    say(`$ burrow show ${SERVER_IF}   (in ${SERVER_NS})`);
    say((await burrow(SERVER_NS, ['show', SERVER_IF])).trimEnd());
  } finally {
    for (const c of cleanups.reverse()) await c().catch((e: Error) => say(`cleanup: ${e.message}`));
    rmSync(dir, { recursive: true, force: true });
    for (const ifname of [SERVER_IF, CLIENT_IF]) rmSync(logPath(ifname), { force: true });
    say('\ntorn down: daemons stopped, namespaces and files removed');
  }
}
