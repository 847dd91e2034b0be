// `burrow down PATH.conf|IFACE`: stops the daemon that owns the interface, which undoes
// everything it installed before it exits. With no live daemon, the journal it left
// (/run/burrow/IFACE.state) is replayed instead: exactly what it records is undone.

import { existsSync } from 'node:fs';
import { isLinuxUndo } from '../platform/linux/undo.js';
import { isRunning, readJournal } from '../runtime/journal.js';
import { uapiRequest, uapiSocketPath } from '../runtime/uapi-client.js';
import { ifnameOf, runningDaemon } from './daemon.js';
import { CliError, EXIT_FAILURE } from './errors.js';
import { recoverStale } from './up.js';

const STOP_TIMEOUT_MS = 30_000;

export { ifnameOf };

export async function down(arg: string, say: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const ifname = ifnameOf(arg);
  const pid = runningDaemon(ifname);
  if (pid !== undefined) {
    const identity = readJournal(ifname, isLinuxUndo)!.daemon;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (isRunning(identity, ifname) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isRunning(identity, ifname)) throw new CliError(`${ifname}: the daemon (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s`, EXIT_FAILURE);
    // What the daemon could not undo stays in its journal: finish it here.
    const rest = await recoverStale(ifname, say);
    return rest === undefined ? `${ifname} is down` : `${ifname} is down; ${rest}`;
  }
  const recovered = await recoverStale(ifname, say);
  if (recovered !== undefined) return recovered;
  const answers = existsSync(uapiSocketPath(ifname)) && (await uapiRequest(ifname, 'get=1\n\n', 1000).then(() => true, () => false));
  if (answers) throw new CliError(`${ifname} is up, but not by burrow (no daemon to stop); use the tool that started it`, EXIT_FAILURE);
  throw new CliError(`${ifname} is not up`, EXIT_FAILURE);
}
