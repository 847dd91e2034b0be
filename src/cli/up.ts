// `burrow up PATH.conf`: parses and checks everything, finishes what a crashed daemon
// left behind (its journal), then starts the session in a detached daemon and returns
// once the tunnel is up, or with the reason it is not. --foreground runs the daemon in
// this process instead. The session itself is src/runtime/session.ts.

import { readFileSync, statSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { ConfigError, type Config, parseConfig } from '../config/index.js';
import { createExec, LinuxPlatformError } from '../platform/linux/index.js';
import { runDaemon, spawnDaemon, type ChildReport } from '../runtime/daemon.js';
import { JournalError, logPath } from '../runtime/journal.js';
import { BoundedLogFile, createLogger, type Logger, parseLogLevel } from '../runtime/log.js';
import { recover, type RecoverOptions } from '../runtime/recover.js';
import { resolveEndpoints as resolve, type ResolvedEndpoint } from '../runtime/session.js';
import { uapiRequest, uapiSocketPath } from '../runtime/uapi-client.js';
import { ifnameFromConfigPath, runningDaemon } from './daemon.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';

export interface UpOptions {
  foreground?: boolean;
  /** Set by `up` on the daemon it spawns: report over IPC, log to the file. */
  daemonChild?: boolean;
  /** Log every timer and handshake initiation too (LOG_LEVEL=debug). */
  verbose?: boolean;
  /** Where the CLI's own notes go (warnings, recovery); default stderr. */
  say?: (line: string) => void;
}

/** Reads and parses a configuration file; errors name the file and line. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, EXIT_BAD_INPUT);
  }
  try {
    return parseConfig(text, path);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT_BAD_INPUT);
    throw e;
  }
}

/** Resolves every peer's endpoint; nothing is changed yet. An unresolvable name is bad input. */
export async function resolveEndpoints(config: Config, path: string): Promise<(ResolvedEndpoint | undefined)[]> {
  try {
    return await resolve(config, path);
  } catch (e) {
    throw new CliError((e as Error).message, EXIT_BAD_INPUT);
  }
}

/** wg-quick's warning: the file holds a private key, and others may read it. */
export function accessWarning(path: string): string | undefined {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o007) === 0) return undefined;
  return `Warning: \`${path}' is world accessible (mode ${mode.toString(8).padStart(4, '0')}); it holds a private key: chmod 600 ${path}`;
}

async function answers(ifname: string): Promise<boolean> {
  if (!existsSync(uapiSocketPath(ifname))) return false;
  return uapiRequest(ifname, 'get=1\n\n', 1000).then(() => true, () => false);
}

/** Finishes the work of a daemon that died without cleaning up, and says so. */
export async function recoverStale(ifname: string, say: (line: string) => void, options: RecoverOptions = {}): Promise<string | undefined> {
  try {
    const r = await recover(ifname, createExec(), (line) => say(`[#] ${line}`), options);
    if (r === undefined) return undefined;
    const when = r.lastSeen.toTimeString().slice(0, 8);
    const failed = r.failed.length === 0 ? '' : `; could not undo: ${r.failed.join('; ')} (run burrow down ${ifname} again)`;
    return `${ifname} was not running (its daemon, pid ${r.pid}, stopped without cleaning up; last heard from at ${when}); removed its ${r.removed}${failed}`;
  } catch (e) {
    if (e instanceof JournalError) throw new CliError(e.message, EXIT_FAILURE);
    throw e;
  }
}

function daemonLogger(ifname: string, options: UpOptions): Logger {
  const level = options.verbose ? 'debug' : parseLogLevel(process.env.LOG_LEVEL);
  if (options.daemonChild) return createLogger(level, ifname, new BoundedLogFile(logPath(ifname)).write);
  return createLogger(level, ifname, (text) => process.stderr.write(text));
}

const exitCodeOf = (e: unknown): number => (e instanceof CliError ? e.exitCode : e instanceof LinuxPlatformError && e.code === 'ERR_PLATFORM_ARG' ? EXIT_BAD_INPUT : EXIT_FAILURE);

export async function up(path: string, options: UpOptions = {}): Promise<string> {
  const say = options.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const config = loadConfig(path);
  const ifname = ifnameFromConfigPath(path);
  if (process.getuid?.() !== 0) throw new CliError('up needs root (CAP_NET_ADMIN): run it with sudo', EXIT_FAILURE);
  if (!options.daemonChild) {
    const warning = accessWarning(path);
    if (warning !== undefined) say(warning);
  }
  if (runningDaemon(ifname) !== undefined || (await answers(ifname))) {
    throw new CliError(`${ifname} is already up; bring it down first with: burrow down ${ifname}`, EXIT_FAILURE);
  }
  // A kill switch left by the dead daemon stays until this up replaces it, if this up has one.
  const recovered = options.daemonChild ? undefined : await recoverStale(ifname, say, { leaveKept: config.interface.includeAllNetworks });
  if (recovered !== undefined) say(recovered);
  if (existsSync(`/sys/class/net/${ifname}`)) throw new CliError(`an interface named ${ifname} already exists`, EXIT_FAILURE);
  const endpoints = await resolveEndpoints(config, path);

  if (!options.foreground) {
    const script = process.argv[1]!;
    const argv = [script, 'up', resolvePath(path), '--foreground', '--daemon-child', ...(options.verbose ? ['--verbose'] : [])];
    const report = await spawnDaemon(argv, logPath(ifname));
    if (!report.ready) throw new CliError(report.message, report.exitCode);
    return report.message;
  }

  const report = (r: ChildReport) => {
    if (options.daemonChild && process.send) process.send(r);
  };
  const configPath = resolvePath(path);
  const code = await runDaemon({
    ifname,
    config,
    configPath,
    endpoints,
    log: daemonLogger(ifname, options),
    reread: async () => {
      const next = loadConfig(configPath);
      return { config: next, endpoints: await resolveEndpoints(next, configPath) };
    },
    report,
    exitCodeOf,
  });
  if (code !== 0) process.exitCode = code;
  return `${ifname} is down`;
}
