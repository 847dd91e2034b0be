// Where a running tunnel keeps its state, and how `up` turns itself into a daemon.
//   /run/burrow/IFACE.pid   the daemon's PID (for `down`)
//   /run/burrow/IFACE.log   what it logs (handshakes, timers, errors; never keys)
// The control socket is WireGuard's: /var/run/wireguard/IFACE.sock.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { CliError, EXIT_BAD_INPUT } from './errors.js';

export const RUN_DIR = '/run/burrow';
export const pidPath = (ifname: string): string => `${RUN_DIR}/${ifname}.pid`;
export const logPath = (ifname: string): string => `${RUN_DIR}/${ifname}.log`;

/** The interface name a configuration file gives, by wg-quick's rule. */
export function ifnameFromConfigPath(path: string): string {
  const name = basename(path).replace(/\.conf$/, '');
  if (!/^[a-zA-Z0-9_=+.-]{1,15}$/.test(name)) {
    throw new CliError(
      `${path}: the interface is named after the file, and "${name}" is not a valid name (1 to 15 of a-z A-Z 0-9 _ = + . -)`,
      EXIT_BAD_INPUT,
    );
  }
  return name;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPid(ifname: string): number | undefined {
  if (!existsSync(pidPath(ifname))) return undefined;
  const pid = Number(readFileSync(pidPath(ifname), 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export type ChildReport = { ready: true; message: string } | { ready: false; message: string; exitCode: number };

/**
 * Starts `argv` as a detached daemon with its output in `log`, and waits until it
 * reports ready (or fails, or exits) over IPC. Returns what it reported.
 */
export function spawnDaemon(argv: string[], log: string, timeoutMs = 30_000): Promise<ChildReport> {
  mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', fd, fd, 'ipc'] });
  closeSync(fd);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      resolve({ ready: false, message: `the daemon did not report ready within ${timeoutMs / 1000} s; see ${log}`, exitCode: 1 });
    }, timeoutMs);
    child.once('message', (m: ChildReport) => {
      clearTimeout(timer);
      child.disconnect();
      child.unref();
      resolve(m);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ready: false, message: `the daemon exited (${code}) before it was ready; see ${log}`, exitCode: 1 });
    });
  });
}
