// Naming and finding a tunnel's daemon from the command line.
//   /run/burrow/IFACE.state   the session's journal: who owns the interface, what to undo
//   /run/burrow/IFACE.log     what the daemon logs (bounded; never keys)
// The control socket is WireGuard's: /var/run/wireguard/IFACE.sock.

import { basename } from 'node:path';
import { isLinuxUndo } from '../platform/linux/undo.js';
import { isRunning, JournalError, readJournal } from '../runtime/journal.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';

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

/** `wg0`, `wg0.conf` or `/etc/wireguard/wg0.conf` -> wg0. */
export function ifnameOf(arg: string): string {
  return arg.includes('/') || arg.endsWith('.conf') ? ifnameFromConfigPath(arg) : ifnameFromConfigPath(`${arg}.conf`);
}

/** The pid of the live daemon that owns `ifname`, if there is one (checked by start time and title). */
export function runningDaemon(ifname: string): number | undefined {
  try {
    const journal = readJournal(ifname, isLinuxUndo);
    return journal !== undefined && isRunning(journal.daemon, ifname) ? journal.daemon.pid : undefined;
  } catch (e) {
    if (e instanceof JournalError) throw new CliError(e.message, EXIT_FAILURE);
    throw e;
  }
}
