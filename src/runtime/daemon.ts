// The daemon process around a session: what `burrow up` and `burrow-go` run once their
// arguments are parsed.
//
//   identity   the process title becomes "burrow-daemon IFACE" (/proc/PID/cmdline), and
//              the journal records its pid and kernel start time; `down` checks both
//              before it signals anything
//   hardening  no core dumps and not dumpable (the addon's hardenProcess): the daemon
//              holds keys; SIGUSR1 and SIGUSR2 are caught, so Node never opens its
//              inspector (on SIGUSR1 it would listen on 127.0.0.1:9229: a root shell for
//              any local user)
//   signals    SIGINT and SIGTERM start one teardown; any signal during it is logged and
//              ignored, so a second Ctrl-C cannot cut it short. SIGHUP reloads the file
//              (`wg syncconf`'s semantics) when there is one.
//   errors     an uncaught error is logged, and the session stops as a crash: everything
//              is undone but what is kept when the daemon dies (the kill switch)
//   detaching  spawnDaemon starts the same program as a detached child and waits for it
//              to report ready over IPC, so the command returns only once the interface
//              is up, or with the reason it is not
//   JIT        the data path is compiled by V8's optimizing tier after a few hundred
//              packets, not a few thousand (tierUpSooner)

import { spawn } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import type { Config } from '../config/index.js';
import type { LinuxStep } from '../platform/linux/plan.js';
import { daemonTitle, RUN_DIR } from './journal.js';
import type { Logger } from './log.js';
import { type ResolvedEndpoint, Session, type StopMode } from './session.js';
import { loadAddon } from './addon.js';

export type ChildReport = { ready: true; message: string } | { ready: false; message: string; exitCode: number };

/** Catches SIGUSR1/SIGUSR2 before anything else runs: Node would open its inspector on SIGUSR1. */
export function refuseInspectorSignals(log?: (line: string) => void): void {
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
    process.removeAllListeners(signal);
    process.on(signal, () => log?.(`${signal} ignored (Burrow's daemon opens no debugger)`));
  }
}

/**
 * V8 runs a function in its baseline tier (Sparkplug) until it has spent its interrupt
 * budget, 66 KiB of bytecode by default, a few times over; only then does TurboFan compile
 * it. A tunnel carrying a ping every 10 ms or an interactive session needs thousands of
 * packets for that, and until then each packet costs several times its optimized time:
 * perf on the daemon showed the whole hot path in baseline code after 800 pings, and
 * bench/rtt.ts measured 1.19 ms before a flood of pings and 0.80 ms after it. An eighth of
 * the budget reaches TurboFan eight times sooner, for a little more compiling of code
 * that runs less. BURROW_EAGER_JIT=0 keeps V8's default (to compare, in bench/).
 */
export const EAGER_INTERRUPT_BUDGET = 8 * 1024;

export function tierUpSooner(): void {
  if (process.env.BURROW_EAGER_JIT === '0') return;
  setFlagsFromString(`--interrupt-budget=${EAGER_INTERRUPT_BUDGET}`);
}

export interface Companion {
  stop(): Promise<void>;
}

export interface DaemonOptions {
  readonly ifname: string;
  readonly config?: Config;
  readonly configPath?: string;
  readonly endpoints?: readonly (ResolvedEndpoint | undefined)[];
  readonly log: Logger;
  /** SIGHUP: the configuration read and resolved again; absent: SIGHUP is ignored. */
  readonly reread?: () => Promise<{ config: Config; endpoints: readonly (ResolvedEndpoint | undefined)[] }>;
  /** Platform steps after the tunnel's own, journalled (SessionOptions.platformSteps). */
  readonly platformSteps?: readonly LinuxStep[];
  /**
   * Work that runs beside the session once it is up (a server's expiry timer and
   * transfer totals); stopped, and awaited, before the session stops.
   */
  readonly companion?: (session: Session) => Companion;
  /** Called once: ready, or why not. */
  readonly report?: (r: ChildReport) => void;
  /** How a start failure becomes an exit code (the CLI knows bad input from failure). */
  readonly exitCodeOf?: (e: unknown) => number;
}

/**
 * Runs the session until it is asked to stop. Resolves with the process's exit code:
 * 0 after a clean down, 1 when the session could not start or died of an error.
 */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  const { log, ifname } = o;
  process.title = daemonTitle(ifname);
  refuseInspectorSignals((line) => log.info(line));
  tierUpSooner();
  try {
    loadAddon().hardenProcess();
  } catch (e) {
    log.error(`could not turn core dumps off: ${(e as Error).message}`);
  }

  let requestStop: (how: { why: string; mode: StopMode }) => void = () => undefined;
  const stopRequested = new Promise<{ why: string; mode: StopMode }>((resolve) => {
    requestStop = resolve;
  });
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.info(`${signal} ignored: already bringing ${ifname} down`);
      return;
    }
    stopping = true;
    requestStop({ why: signal, mode: 'down' });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let session: Session | undefined;
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    if (stopping || session === undefined || o.reread === undefined) {
      log.info(`SIGHUP ignored${o.reread === undefined ? ' (no configuration file to reload)' : ''}`);
      return;
    }
    const s = session;
    const reread = o.reread;
    reloading = reloading.then(async () => {
      try {
        const { config, endpoints } = await reread();
        log.info(`SIGHUP: reloaded ${o.configPath}: ${await s.reload(config, endpoints)}`);
      } catch (e) {
        log.error(`SIGHUP: ${o.configPath} not reloaded, the running configuration is unchanged: ${(e as Error).message}`);
      }
    });
  });
  let crashed = false;
  const fatal = (e: unknown) => {
    log.error(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    crashed = true;
    stopping = true;
    requestStop({ why: 'internal error', mode: 'crash' });
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  try {
    session = await Session.start({
      ifname,
      ...(o.config === undefined ? {} : { config: o.config }),
      ...(o.configPath === undefined ? {} : { configPath: o.configPath }),
      ...(o.endpoints === undefined ? {} : { endpoints: o.endpoints }),
      ...(o.platformSteps === undefined ? {} : { platformSteps: o.platformSteps }),
      log,
      onStopRequested: (why) => {
        if (stopping) return;
        stopping = true;
        requestStop({ why, mode: 'down' });
      },
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log.error(`cannot bring ${ifname} up: ${message}`);
    o.report?.({ ready: false, message: `cannot bring ${ifname} up: ${message}`, exitCode: o.exitCodeOf?.(e) ?? 1 });
    return o.exitCodeOf?.(e) ?? 1;
  }
  let companion: Companion | undefined;
  try {
    companion = o.companion?.(session);
  } catch (e) {
    fatal(e);
  }
  const ready = session.describe();
  log.info(ready);
  o.report?.({ ready: true, message: ready });

  const { why, mode } = await stopRequested;
  log.info(`${why}: bringing ${ifname} down`);
  await reloading;
  try {
    await companion?.stop();
  } catch (e) {
    log.error(`while stopping beside the session: ${(e as Error).message}`);
  }
  await session.stop(mode);
  log.info(`${ifname} is down`);
  return crashed ? 1 : 0;
}

/**
 * Starts `argv` (a script and its arguments, run by this Node) as a detached daemon whose
 * standard output and error go to `output` (a log file, or /dev/null), and waits until it
 * reports ready (or fails, or exits) over IPC.
 */
export function spawnDaemon(argv: string[], output: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<ChildReport> {
  mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
  const fd = openSync(output, 'a', 0o600);
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', fd, fd, 'ipc'], env });
  closeSync(fd);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      resolve({ ready: false, message: `the daemon did not report ready within ${timeoutMs / 1000} s; see ${output}`, exitCode: 1 });
    }, timeoutMs);
    child.once('message', (m: ChildReport) => {
      clearTimeout(timer);
      child.disconnect();
      child.unref();
      resolve(m);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ready: false, message: `the daemon exited (${code}) before it was ready; see ${output}`, exitCode: 1 });
    });
  });
}
