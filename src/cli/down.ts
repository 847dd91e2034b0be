// `burrow down PATH.conf|IFACE`: stops the daemon that `up` started; it undoes
// everything it installed (routes, DNS, the interface) before it exits.

import { existsSync, rmSync } from 'node:fs';
import { uapiRequest } from '../runtime/uapi-client.js';
import { ifnameFromConfigPath, isAlive, pidPath, readPid } from './daemon.js';
import { CliError, EXIT_FAILURE } from './errors.js';

const STOP_TIMEOUT_MS = 15_000;

export function ifnameOf(arg: string): string {
  return arg.includes('/') || arg.endsWith('.conf') ? ifnameFromConfigPath(arg) : ifnameFromConfigPath(`${arg}.conf`);
}

export async function down(arg: string): Promise<string> {
  const ifname = ifnameOf(arg);
  const pid = readPid(ifname);
  if (pid === undefined || !isAlive(pid)) {
    if (pid !== undefined) rmSync(pidPath(ifname), { force: true }); // stale
    const answers = await uapiRequest(ifname, 'get=1\n\n', 1000).then(() => true, () => false);
    if (answers) throw new CliError(`${ifname} is up, but not by burrow (no daemon to stop); use the tool that started it`, EXIT_FAILURE);
    throw new CliError(`${ifname} is not up`, EXIT_FAILURE);
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) throw new CliError(`${ifname}: the daemon (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s`, EXIT_FAILURE);
  if (existsSync(pidPath(ifname))) rmSync(pidPath(ifname), { force: true });
  return `${ifname} is down`;
}
