// A checksummed TCP transfer between two hosts (network namespaces), for the demo and
// the tests: a sender streams `size` random bytes and prints their SHA-256; the
// receiver hashes what arrives. Both are small node programs run inside the namespaces.

import type { ChildProcess } from 'node:child_process';

const SENDER = `
const net = require('node:net'), crypto = require('node:crypto');
const size = Number(process.argv[1]);
const server = net.createServer((s) => {
  let left = size; const h = crypto.createHash('sha256');
  const pump = () => { while (left > 0) { const n = Math.min(left, 65536); const chunk = crypto.randomBytes(n);
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

/** Runs commands on one host. */
export interface Host {
  spawn(cmd: string, args: string[]): ChildProcess;
  exec(cmd: string, args: string[], timeoutMs: number): Promise<string>;
}

export interface Transfer {
  bytes: number;
  ms: number;
  sentSha256: string;
  receivedSha256: string;
}

/** Sends `size` bytes from a TCP server on `from` (listening on `address`) to a client on `to`. */
export async function tcpTransfer(from: Host, to: Host, address: string, size: number, port = 5201): Promise<Transfer> {
  const sender = from.spawn(process.execPath, ['-e', SENDER, String(size), String(port), address]);
  let out = '';
  sender.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  try {
    const deadline = Date.now() + 10_000;
    while (!out.includes('listening')) {
      if (Date.now() > deadline || sender.exitCode !== null) throw new Error('the TCP sender did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    const got = JSON.parse(await to.exec(process.execPath, ['-e', RECEIVER, address, String(port)], 130_000)) as {
      bytes: number; ms: number; sha256: string;
    };
    const until = Date.now() + 5000;
    while (!/[0-9a-f]{64}/.test(out) && sender.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return { bytes: got.bytes, ms: got.ms, sentSha256: /([0-9a-f]{64})/.exec(out)?.[1] ?? '', receivedSha256: got.sha256 };
  } finally {
    if (sender.exitCode === null) sender.kill('SIGKILL');
  }
}
