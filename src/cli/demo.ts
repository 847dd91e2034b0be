// `burrow demo` (npm run demo): a client and a server, each in a network namespace of
// its own joined by a veth pair, both brought up with Burrow from wg-quick files; a
// ping through the tunnel, a file sent over TCP and checked, the status, the
// throughput. Everything it makes (namespaces, daemons, files) is removed at the end,
// also when a step fails. It touches nothing in the host's own network namespace.

import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { logPath } from './daemon.js';
import { CliError } from './errors.js';

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
const FILE_BYTES = 32 * 1024 * 1024;
const TCP_PORT = 5201;

function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const inNs = (ns: string, cmd: string, args: string[], timeoutMs?: number) => sh('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);

// A TCP sender and receiver as small inline programs run with node inside each namespace.
const SENDER = `
const net = require('node:net'), fs = require('node:fs');
const data = fs.readFileSync(process.argv[1]);
const server = net.createServer((s) => { s.end(data); server.close(); });
server.listen(Number(process.argv[2]), process.argv[3], () => process.stdout.write('listening\\n'));
setTimeout(() => process.exit(3), 60000).unref();`;
const RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const h = crypto.createHash('sha256'); let n = 0; const t0 = process.hrtime.bigint();
const s = net.connect(Number(process.argv[2]), process.argv[1]);
s.on('data', (d) => { h.update(d); n += d.length; });
s.on('end', () => { const ms = Number(process.hrtime.bigint() - t0) / 1e6; process.stdout.write(JSON.stringify({ bytes: n, ms, sha256: h.digest('hex') })); });
s.on('error', (e) => { process.stderr.write(e.message); process.exit(2); });
setTimeout(() => { process.stderr.write('timed out'); process.exit(3); }, 60000).unref();`;

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

    // --- a file over TCP, checked ----------------------------------------------------
    const file = join(dir, 'payload.bin');
    const payload = randomBytes(FILE_BYTES);
    writeFileSync(file, payload);
    const expected = createHash('sha256').update(payload).digest('hex');
    const sender = spawn('ip', ['netns', 'exec', SERVER_NS, process.execPath, '-e', SENDER, file, String(TCP_PORT), SERVER_TUN], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => { if (sender.exitCode === null) sender.kill('SIGKILL'); });
    await new Promise<void>((resolve, reject) => {
      sender.stdout.once('data', () => resolve());
      sender.once('exit', (c) => reject(new Error(`the TCP sender exited (${c})`)));
    });
    const got = JSON.parse(await inNs(CLIENT_NS, process.execPath, ['-e', RECEIVER, SERVER_TUN, String(TCP_PORT)], 90_000)) as { bytes: number; ms: number; sha256: string };
    if (got.sha256 !== expected || got.bytes !== FILE_BYTES) {
      throw new CliError(`the file arrived damaged: ${got.bytes} bytes, sha256 ${got.sha256}, expected ${expected}`);
    }
    const mbit = (got.bytes * 8) / (got.ms / 1000) / 1e6;
    say(`sent ${FILE_BYTES / (1 << 20)} MiB over TCP through the tunnel: sha256 matches (${expected.slice(0, 16)}…)`);
    say(`throughput: ${mbit.toFixed(0)} Mbit/s (${(got.ms / 1000).toFixed(2)} s)`);

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
