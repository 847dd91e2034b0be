// `burrow exec --app NAME [--interface IFACE] [--] CMD…`: runs CMD as one of an app's
// processes for per-app routing. This process moves itself into the app's cgroup
// (burrow/IFACE/NAME under the cgroup2 root, made by the tunnel's daemon at up) and
// starts CMD there, so CMD and everything it starts are in it from their first
// instruction: there is no instant in which CMD runs outside the app. Under sudo, CMD
// runs as the invoking user (SUDO_UID, SUDO_GID; supplementary groups are dropped).
// The exit code is CMD's (128 + N when a signal N ended it).

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BURROW_CGROUP, cgroup2Root, enterCgroup, execCgroup } from '../platform/linux/cgroup.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';

export interface ExecOptions {
  readonly app: string;
  readonly interface?: string;
}

const NEEDS_ROOT =
  'burrow exec needs root: it moves the command into the app\'s cgroup (cgroup v2, burrow/IFACE/APP), which only root may do. ' +
  'Run it with sudo (sudo burrow exec --app mail -- thunderbird): the command itself then runs as you.';

/** Which tunnel's cgroup for `app`: the one named, or the only one that has the app. */
export function findAppCgroup(root: string, app: string, ifname?: string): string {
  if (!/^[a-z][a-z0-9_]{0,23}$/.test(app)) throw new CliError(`--app ${JSON.stringify(app)}: an app name is lower-case letters, digits and _ (mail, calendar, contacts, or an [App] Name)`, EXIT_BAD_INPUT);
  const base = join(root, BURROW_CGROUP);
  const tunnels = existsSync(base) ? readdirSync(base, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) : [];
  const having = tunnels.filter((t) => existsSync(join(root, execCgroup(t, app))) && (ifname === undefined || t === ifname));
  if (having.length === 1) return execCgroup(having[0]!, app);
  if (having.length === 0) {
    const where = ifname === undefined ? `no tunnel that is up routes the app ${app}` : `the tunnel ${ifname} is not up or does not route the app ${app}`;
    throw new CliError(`${where}: bring up a configuration with its domains first (MailDomains for mail, CalendarDomains, ContactsDomains, or an [App] with Name = ${app} and Domains)`, EXIT_FAILURE);
  }
  throw new CliError(`the app ${app} is routed by several tunnels (${having.join(', ')}): say which with --interface`, EXIT_BAD_INPUT);
}

/** The invoking user under sudo, with their home and name for the environment. */
function sudoUser(): { uid: number; gid: number; env: Record<string, string> } | undefined {
  const uid = Number(process.env.SUDO_UID);
  const gid = Number(process.env.SUDO_GID);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || process.env.SUDO_UID === undefined || process.env.SUDO_GID === undefined) return undefined;
  const env: Record<string, string> = {};
  const entry = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === String(uid));
  if (entry !== undefined) Object.assign(env, { USER: entry[0]!, LOGNAME: entry[0]!, HOME: entry[5]! });
  return { uid, gid, env };
}

/** Runs `command` in the app's cgroup; resolves with its exit code. */
export async function execInApp(command: readonly string[], o: ExecOptions): Promise<number> {
  if (command.length === 0) throw new CliError('burrow exec: which command? (burrow exec --app mail -- thunderbird)', EXIT_BAD_INPUT);
  if (process.getuid?.() !== 0) throw new CliError(NEEDS_ROOT, EXIT_FAILURE);
  const root = cgroup2Root();
  const path = findAppCgroup(root, o.app, o.interface);
  enterCgroup(root, path);
  const user = sudoUser();
  const child = spawn(command[0]!, command.slice(1), {
    stdio: 'inherit',
    ...(user === undefined ? {} : { uid: user.uid, gid: user.gid, env: { ...process.env, ...user.env } }),
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward(signal));
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new CliError(`burrow exec: cannot run ${command[0]}: ${e.message}`, 127)));
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : osSignal(signal))));
  });
}

function osSignal(name: NodeJS.Signals): number {
  const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return signals[name] ?? 0;
}
