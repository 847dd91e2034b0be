// Runs the built `burrow` CLI inside test namespaces, with wg-quick files the test
// writes (0600, in a private temp dir), and moves checksummed data over TCP.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { logPath } from '../../src/runtime/journal.js';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Transfer, tcpTransfer as transfer } from '../../src/cli/transfer.js';
import { NetnsCommandError, type Netns, type NetnsScope } from './netns.js';

/** A key pair as wg-quick files take it: base64 text. */
export interface Keys {
  priv: string;
  pub: string;
}

export function keys(): Keys {
  const k = generatePrivateKey();
  return { priv: encodeKey(k), pub: encodeKey(publicKeyOf(k)) };
}

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
    rmSync(logPath(ifname), { force: true });
  });
  return r.stdout;
}

/** A checksummed TCP transfer from a server in `from` to a client in `to` (see src/cli/transfer.ts). */
export function tcpTransfer(from: Netns, to: Netns, listenAddress: string, size: number, port = 5201): Promise<Transfer> {
  const host = (ns: Netns) => ({
    spawn: (cmd: string, args: string[]) => ns.spawn(cmd, args),
    exec: (cmd: string, args: string[], timeoutMs: number) => ns.exec(cmd, args, { timeoutMs }),
  });
  return transfer(host(from), host(to), listenAddress, size, port);
}
