// A userspace WireGuard daemon with wireguard-go's command line (`IMPL -f IFNAME`),
// started inside a test namespace as wg-quick starts it: no key, no peers, configured
// afterwards with `wg` and `ip` only. burrow-go and the latest wireguard-go side by side,
// so a test can hold Burrow to what the reference does.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Netns, stopChild } from './netns.js';
import { PEERS_BIN_DIR, WIREGUARD_RUN_DIR } from './wireguard-go.js';

const BURROW_GO = join(import.meta.dirname, '..', '..', 'bin', 'burrow-go.js');

export const USERSPACE = {
  'burrow-go': { command: process.execPath, args: [BURROW_GO, '-f'] },
  'wireguard-go': { command: join(PEERS_BIN_DIR, 'wireguard-go'), args: ['-f'] },
  /** Debian's build (0.0.20220316), whose Linux bind still has its own sticky sockets. */
  'debian-wireguard-go': { command: 'wireguard-go', args: ['-f'] },
} as const;
export type Userspace = keyof typeof USERSPACE;
/** Burrow and the latest wireguard-go, the reference. */
export const USERSPACE_NAMES: Userspace[] = ['burrow-go', 'wireguard-go'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STOP_GRACE_MS = 3_000;

/** A daemon started by startUserspace: its process (the daemon itself: it runs in the foreground) and socket. */
export interface UserspaceDaemon {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly socketPath: string;
  running(): boolean;
  /** SIGTERM, then SIGKILL, by PID; waits for the exit and removes a stale socket. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `impl` on `ifname` in `ns` and waits for its control socket; stopped by PID when
 * `ns` is destroyed, or when the socket never appears.
 */
export async function startUserspace(ns: Netns, impl: Userspace, ifname: string, timeoutMs = 20_000): Promise<UserspaceDaemon> {
  const { command, args } = USERSPACE[impl];
  const socketPath = `${WIREGUARD_RUN_DIR}/${ifname}.sock`;
  const child = ns.spawn(command, [...args, ifname], { env: { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' } });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  ns.removeOnDestroy(socketPath);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopChild(child, STOP_GRACE_MS);
      await rm(socketPath, { force: true });
    })();
    return stopping;
  };
  ns.onDestroy(stop);
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(socketPath)) {
    if (!running()) {
      await stop();
      throw new Error(`${impl} ${ifname} exited (${child.exitCode ?? child.signalCode}) before its socket appeared: ${ns.outputOf(child).trim()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${impl} ${ifname}: no ${socketPath} after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
  return { child, pid: child.pid!, socketPath, running, stop };
}

/** `wg ARGS` in ns: its output trimmed, or "error: …" when it fails. */
export function wg(ns: Netns, args: string[]): Promise<string> {
  return ns.exec('wg', args).then((out) => out.trim(), (e: Error) => `error: ${e.message}`);
}

/** Echo replies received for `count` pings (extra: e.g. ['-s', '7900']). */
export async function pingCount(ns: Netns, target: string, count: number, extra: string[] = []): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', String(count), '-i', '0.3', '-W', '3', ...extra, target], { timeoutMs: 60_000 }).catch((e: Error) => e.message);
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}
