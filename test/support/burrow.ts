// Runs the built `burrow` CLI inside test namespaces, with wg-quick files the test
// writes (0600, in a private temp dir), and moves checksummed data over TCP.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsCommandError, type Netns, type NetnsScope } from './netns.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'cli', 'main.js');

export function cliBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run setup (npm test does)`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `burrow ARGS` in `ns` and returns its exit code and output (never throws on exit code). */
export async function burrow(ns: Netns, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  try {
    const stdout = await ns.exec(process.execPath, [CLI, ...args], { timeoutMs });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    if (e instanceof NetnsCommandError && typeof e.exitCode === 'number') return { code: e.exitCode, stdout: e.stdout, stderr: e.stderr };
    throw e;
  }
}

/** A private directory for configuration files, removed with the scope. */
export function configDir(scope: NetnsScope): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-test-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeConf(dir: string, ifname: string, lines: string[]): string {
  const path = join(dir, `${ifname}.conf`);
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return path;
}

/** `burrow up` in ns, with `burrow down` registered on the scope. Throws with stderr on failure. */
export async function up(scope: NetnsScope, ns: Netns, conf: string, ifname: string): Promise<string> {
  const r = await burrow(ns, ['up', conf]);
  if (r.code !== 0) throw new Error(`burrow up ${conf} failed (${r.code}): ${r.stderr}`);
  scope.defer(async () => {
    await burrow(ns, ['down', ifname]);
  });
  return r.stdout;
}

const SENDER = `
const net = require('node:net'), crypto = require('node:crypto');
const size = Number(process.argv[1]); const seed = process.argv[4];
const server = net.createServer((s) => {
  let left = size; const h = crypto.createHash('sha256'); let block = crypto.createHash('sha256').update(seed).digest();
  const pump = () => { while (left > 0) { const n = Math.min(left, 65536);
      const chunk = Buffer.alloc(n); for (let i = 0; i < n; i += 32) { block = crypto.createHash('sha256').update(block).digest(); block.copy(chunk, i); }
      h.update(chunk); left -= n; if (!s.write(chunk)) { s.once('drain', pump); return; } }
    s.end(); server.close(); process.stdout.write(h.digest('hex') + '\\n'); };
  pump();
});
server.listen(Number(process.argv[2]), process.argv[3], () => process.stdout.write('listening\\n'));
setTimeout(() => process.exit(3), 120000).unref();`;

const RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const h = crypto.createHash('sha256'); let n = 0; const t0 = process.hrtime.bigint();
const s = net.connect(Number(process.argv[2]), process.argv[1]);
s.on('data', (d) => { h.update(d); n += d.length; });
s.on('end', () => { const ms = Number(process.hrtime.bigint() - t0) / 1e6; process.stdout.write(JSON.stringify({ bytes: n, ms, sha256: h.digest('hex') })); });
s.on('error', (e) => { process.stderr.write(e.message); process.exit(2); });
setTimeout(() => { process.stderr.write('timed out'); process.exit(3); }, 120000).unref();`;

export interface Transfer {
  bytes: number;
  ms: number;
  sentSha256: string;
  receivedSha256: string;
}

/** Sends `size` pseudo-random bytes from a TCP server in `from` to a client in `to`. */
export async function tcpTransfer(from: Netns, to: Netns, listenAddress: string, size: number, port = 5201): Promise<Transfer> {
  const seed = randomBytes(8).toString('hex');
  const sender = from.spawn(process.execPath, ['-e', SENDER, String(size), String(port), listenAddress, seed]);
  let out = '';
  sender.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening')) {
    if (Date.now() > deadline || sender.exitCode !== null) throw new Error(`TCP sender did not start: ${from.outputOf(sender)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const host = listenAddress.includes(':') ? listenAddress : listenAddress;
  const got = JSON.parse(await to.exec(process.execPath, ['-e', RECEIVER, host, String(port)], { timeoutMs: 130_000 })) as {
    bytes: number; ms: number; sha256: string;
  };
  while (!/[0-9a-f]{64}/.test(out) && sender.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  const sent = /([0-9a-f]{64})/.exec(out)?.[1] ?? '';
  return { bytes: got.bytes, ms: got.ms, sentSha256: sent, receivedSha256: got.sha256 };
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
