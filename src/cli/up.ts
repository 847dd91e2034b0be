// `burrow up PATH.conf`: wg-quick's up, in-process. Everything it changes is recorded as
// an undo step; a failure at any step undoes what was done, so nothing is left
// half-applied. Without --foreground the work happens in a detached daemon and `up`
// returns once the tunnel is configured (or prints why it is not).

import { lookup } from 'node:dns/promises';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { encodeKey } from '../../crypto/keys.js';
import { ConfigError, type Config, formatConfig, makePrefix, parseConfig } from '../config/index.js';
import { applyLinux, runHooks } from '../platform/linux/index.js';
import { tunnelSettings } from '../policy/index.js';
import { Tunnel } from '../runtime/tunnel.js';
import { UapiServer } from '../runtime/uapi.js';
import { uapiRequest, uapiSocketPath } from '../runtime/uapi-client.js';
import type { Endpoint } from '../../tunnel/peer.js';
import { type ChildReport, ifnameFromConfigPath, logPath, pidPath, RUN_DIR, spawnDaemon } from './daemon.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';

export interface UpOptions {
  foreground?: boolean;
  /** Set by `up` on the daemon it spawns: report over IPC. */
  daemonChild?: boolean;
  log?: (line: string) => void;
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

/** Resolves every peer's endpoint (DNS names at `up`, as wg-quick does); nothing is changed yet. */
export async function resolveEndpoints(config: Config, path: string): Promise<(Endpoint | undefined)[]> {
  return Promise.all(config.peers.map(async (peer) => {
    const ep = peer.endpoint;
    if (ep === undefined) return undefined;
    if (isIP(ep.host)) return { host: ep.host, port: ep.port };
    try {
      const { address } = await lookup(ep.host);
      return { host: address, port: ep.port };
    } catch (e) {
      throw new CliError(
        `${path}: peer ${encodeKey(peer.publicKey).slice(0, 8)}…: Endpoint ${ep.host}: cannot resolve the name (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        EXIT_BAD_INPUT,
      );
    }
  }));
}

async function isUp(ifname: string): Promise<boolean> {
  if (!existsSync(uapiSocketPath(ifname))) return false;
  try {
    await uapiRequest(ifname, 'get=1\n\n', 1000);
    return true;
  } catch {
    return false;
  }
}

export async function up(path: string, options: UpOptions = {}): Promise<string> {
  const config = loadConfig(path);
  const ifname = ifnameFromConfigPath(path);
  if (process.getuid?.() !== 0) throw new CliError('up needs root (CAP_NET_ADMIN): run it with sudo', EXIT_FAILURE);
  if (await isUp(ifname)) throw new CliError(`${ifname} is already up; bring it down first with: burrow down ${ifname}`, EXIT_FAILURE);
  if (existsSync(`/sys/class/net/${ifname}`)) throw new CliError(`an interface named ${ifname} already exists`, EXIT_FAILURE);
  const endpoints = await resolveEndpoints(config, path);

  if (!options.foreground) {
    const script = process.argv[1]!;
    const report = await spawnDaemon([script, 'up', resolvePath(path), '--foreground', '--daemon-child'], logPath(ifname));
    if (!report.ready) throw new CliError(report.message, report.exitCode);
    return report.message;
  }
  return runForeground(path, config, ifname, endpoints, options);
}

/** Brings the tunnel up in this process and keeps it up until SIGINT or SIGTERM. */
async function runForeground(path: string, config: Config, ifname: string, endpoints: (Endpoint | undefined)[], options: UpOptions): Promise<string> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} ${ifname}: ${line}\n`));
  const undo: { what: string; run: () => unknown }[] = [];
  const undoAll = async () => {
    for (const step of undo.splice(0).reverse()) {
      try {
        await step.run();
      } catch (e) {
        log(`while undoing ${step.what}: ${(e as Error).message}`);
      }
    }
  };
  const report = (r: ChildReport) => {
    if (options.daemonChild && process.send) process.send(r);
  };

  // Asked to stop: by a signal, or by someone deleting the control socket (wg-quick down).
  let requestStop: (why: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => {
    requestStop = resolve;
  });
  process.once('SIGINT', () => requestStop('SIGINT'));
  process.once('SIGTERM', () => requestStop('SIGTERM'));
  // A bug must not leave routes, rules or DNS behind: log it, undo everything, exit 1.
  let crashed = false;
  const fatal = (e: unknown) => {
    log(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    crashed = true;
    requestStop('internal error');
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  let tunnel: Tunnel;
  try {
    const settings = tunnelSettings(config, { resolvedEndpoints: endpoints.filter((e): e is Endpoint => e !== undefined) });
    await runHooks(config.interface.preUp, ifname);
    tunnel = await Tunnel.start({
      ifname,
      privateKey: config.interface.privateKey,
      listenPort: config.interface.listenPort ?? 0,
      fwmark: settings.fwmark ?? 0,
      mtu: settings.mtu,
      log,
      peers: config.peers.map((p, i) => ({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey ?? null,
        ...(endpoints[i] ? { endpoint: endpoints[i] } : {}),
        persistentKeepalive: p.persistentKeepalive ?? 0,
        allowedIPs: p.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })),
      })),
    });
    undo.push({ what: 'the tunnel', run: () => tunnel.stop() });
    const applied = await applyLinux(settings, { ifname, log });
    undo.push({ what: 'addresses, routes and DNS', run: () => applied.undo() });
    // A full tunnel's bypass table may be another than the one asked for (51820 taken).
    if (applied.fwmark !== undefined && applied.fwmark !== tunnel.udp.fwmark) tunnel.udp.setMark(applied.fwmark);
    let fwmark = tunnel.udp.fwmark;
    const uapi = await UapiServer.listen(uapiSocketPath(ifname), {
      device: tunnel.device,
      now: () => tunnel.now(),
      listenPort: () => tunnel.udp.port,
      setListenPort: (port: number) => tunnel.udp.rebind(port),
      fwmark: () => fwmark,
      setFwmark: async (mark: number) => {
        tunnel.udp.setMark(mark);
        fwmark = mark;
      },
      changed: () => tunnel.rearm(),
    }, { log, onSocketRemoved: () => requestStop('control socket removed') });
    undo.push({ what: 'the control socket', run: () => uapi.close() });
    await runHooks(config.interface.postUp, ifname);
    mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
    writeFileSync(pidPath(ifname), `${process.pid}\n`, { mode: 0o600 });
    undo.push({ what: 'the pid file', run: () => rmSync(pidPath(ifname), { force: true }) });
  } catch (e) {
    await undoAll();
    const message = e instanceof CliError ? e.message : `cannot bring ${ifname} up: ${(e as Error).message}`;
    report({ ready: false, message, exitCode: e instanceof CliError ? e.exitCode : EXIT_FAILURE });
    throw e instanceof CliError ? e : new CliError(message);
  }

  const ready = `${ifname} is up: listening on UDP port ${tunnel.udp.port}, ${config.peers.length} peer(s)`;
  log(ready);
  report({ ready: true, message: ready });

  const why = await stopRequested;
  log(`${why}: bringing ${ifname} down`);
  try {
    await runHooks(config.interface.preDown, ifname);
  } catch (e) {
    log(`PreDown: ${(e as Error).message}`);
  }
  if (config.interface.saveConfig) saveConfig(path, config, tunnel, log);
  await undoAll();
  try {
    await runHooks(config.interface.postDown, ifname);
  } catch (e) {
    log(`PostDown: ${(e as Error).message}`);
  }
  log(`${ifname} is down`);
  if (crashed) process.exitCode = EXIT_FAILURE;
  return `${ifname} is down`;
}

/** SaveConfig = true: write the running peers back to the file at down, as wg-quick does. */
function saveConfig(path: string, config: Config, tunnel: Tunnel, log: (l: string) => void): void {
  const status = tunnel.device.peerStatus(tunnel.now());
  const byKey = new Map(config.peers.map((p) => [encodeKey(p.publicKey), p]));
  const peers = status.map((s) => {
    const old = byKey.get(s.publicKey);
    return {
      ...(old ?? { publicKey: Uint8Array.from(Buffer.from(s.publicKey, 'base64')), allowedIPs: [] }),
      ...(s.presharedKey ? { presharedKey: s.presharedKey } : {}),
      ...(s.endpoint ? { endpoint: { host: s.endpoint.host, port: s.endpoint.port } } : {}),
      ...(s.persistentKeepalive ? { persistentKeepalive: s.persistentKeepalive } : {}),
      allowedIPs: s.allowedIPs.map((a) => makePrefix(a.address.length === 4 ? 4 : 6, a.address, a.cidr)),
    };
  });
  try {
    const text = formatConfig({ ...config, interface: { ...config.interface, listenPort: tunnel.udp.port }, peers } as Config);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, path); // atomic: the old file or the new one, never half of either
    log(`SaveConfig: wrote ${path}`);
  } catch (e) {
    log(`SaveConfig: could not write ${path}: ${(e as Error).message}`);
  }
}
