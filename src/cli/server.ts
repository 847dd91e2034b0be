// `burrow server …`: the Linux server. The CLI only parses arguments; the registry, the
// peer commands and the daemon's companion are in server/, the session in
// src/runtime/session.ts, forwarding and NAT in src/platform/linux/forward.ts.
//
//   init          DIR/IFACE.conf with fresh keys, a free subnet and a ULA /64
//   up / down     the session with every enabled peer, plus forwarding and NAT, journalled
//   add-peer, remove-peer, disable, enable, list-peers, client-config (also as a
//                 .mobileconfig, through src/cli/profile.ts as `burrow profile`)
//                 the registry first (one atomic write), then the running server through
//                 its control socket, one peer at a time

import { rmSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { AdminError, type AdminBind, checkBind } from '../../server/admin/bind.js';
import { adminFiles, ensureMetricsToken } from '../../server/admin/files.js';
import { checkPassword, writePasswordFile } from '../../server/admin/password.js';
import { serverCompanion } from '../../server/companion.js';
import { detectUplink, initServer, initServerIn } from '../../server/init.js';
import { PgRegistry } from '../../server/pg/registry.js';
import { addPeer, applyIfRunning, changePeer, clientConfig, formatPeerStatus, type PeerChange, peerStatus, readSnapshot, removeSnapshot, running } from '../../server/peers.js';
import { findPeer, type RegistryData, RegistryError, sessionConfig, tunnelSubnets } from '../../server/registry.js';
import { RegistryFollower } from '../../server/follow.js';
import { formatRegistryStatus, readRegistryStatus, removeRegistryStatus } from '../../server/registry-status.js';
import { isPostgresSpec, openRegistry, type PeerRegistry } from '../../server/store.js';
import { createExec, LinuxPlatformError } from '../platform/linux/index.js';
import { forwardingSteps } from '../platform/linux/forward.js';
import { runDaemon, spawnDaemon, type ChildReport } from '../runtime/daemon.js';
import { logPath } from '../runtime/journal.js';
import { BoundedLogFile, createLogger, type Logger, parseLogLevel } from '../runtime/log.js';
import { ifnameFromConfigPath, runningDaemon } from './daemon.js';
import { down } from './down.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';
import { clientProfile } from './profile.js';
import { readSecret } from './secret.js';
import { DEFAULT_SERVER_CONFIG, registryCommand, registryFrom, registryOptions, type RegistryOptions, withRegistry } from './server-registry.js';
import { recoverStale, resolveEndpoints } from './up.js';

export { DEFAULT_SERVER_CONFIG };

const say = (line: string) => process.stderr.write(`${line}\n`);

/** RegistryError -> CliError: bad input (2) unless the registry is busy or full (1). */
function cliError(e: unknown): unknown {
  if (!(e instanceof RegistryError)) return e;
  return new CliError(e.message, e.code === 'ERR_REGISTRY_BUSY' || e.code === 'ERR_REGISTRY_FULL' || e.code === 'ERR_REGISTRY_UNREACHABLE' ? EXIT_FAILURE : EXIT_BAD_INPUT);
}

async function guarded<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw cliError(e);
  }
}

/**
 * The registry a server runs from (server-registry.ts's registryFrom chooses it): its
 * wg-quick file, or a postgres:// URL shared by several gateways.
 */
export interface ServerTarget {
  /** A file's path or a postgres URL (which may hold a password: never logged, never in argv). */
  readonly spec: string;
  readonly ifname: string;
  /** The path the gateway's own files go beside (admin password, metrics token, usage). */
  readonly localBase: string;
  readonly postgres: boolean;
  readonly gateway?: string;
}

export function serverTarget(o: RegistryOptions): ServerTarget {
  // Checked and chosen as every other command does; nothing is opened before the first call.
  const { registry, ifname, localBase, postgres } = registryFrom(o);
  void registry.close();
  const spec = postgres ? (o.registry ?? o.config ?? process.env.BURROW_REGISTRY)! : localBase;
  return { spec, ifname, localBase, postgres, ...(o.gateway === undefined ? {} : { gateway: o.gateway }) };
}

/** How to name the target in a command line to run (never the URL: it may hold a password). */
const targetArgs = (t: ServerTarget): string => (t.postgres ? `--registry "$BURROW_REGISTRY" --interface ${t.ifname}` : `--config ${t.spec}`);

/** Reads the registry for `up`: every check before anything changes. */
async function loadForUp(registry: PeerRegistry): Promise<RegistryData> {
  const data = await registry.read();
  if (data.config.interface.saveConfig) {
    throw new RegistryError('ERR_REGISTRY_DAMAGED', `${registry.location}: SaveConfig = true would write the file without Burrow's comments (the registry): remove it`);
  }
  if (data.config.interface.addresses.length === 0) throw new RegistryError('ERR_REGISTRY_DAMAGED', `${registry.location}: the server needs an Address (its subnet is where peers get theirs)`);
  return data;
}

/** Enabled peers whose expiry has passed at `now`. */
const expiredPeers = (data: RegistryData, now: number): string[] =>
  data.peers.filter((r) => r.enabled && r.expires !== undefined && Date.parse(r.expires) <= now).map((r) => r.name);

/**
 * Peers whose expiry has passed are disabled before the server starts, so they never
 * load. The registry is written only when one has; returns the data to start with.
 */
async function disableExpired(registry: PeerRegistry, data: RegistryData, now = Date.now()): Promise<{ data: RegistryData; names: string[] }> {
  if (expiredPeers(data, now).length === 0) return { data, names: [] };
  return registry.update((current) => {
    const names = expiredPeers(current, now);
    const next = { ...current, peers: current.peers.map((r) => (names.includes(r.name) ? { ...r, enabled: false } : r)) };
    return { data: next, result: { data: next, names } };
  });
}

interface ServerUpOptions {
  foreground?: boolean;
  daemonChild?: boolean;
  verbose?: boolean;
  /** host:port of the admin page (else the registry's admin=, else off). */
  admin?: string;
  adminTlsCert?: string;
  adminTlsKey?: string;
  insecure?: boolean;
}

/** The admin page's address and TLS: the command line's, else the registry's; undefined: off. */
function adminBind(o: ServerUpOptions, data: RegistryData | undefined): AdminBind | undefined {
  const s: Partial<RegistryData['settings']> = data?.settings ?? {};
  const address = o.admin ?? s.admin;
  if (address === undefined) return undefined;
  const cert = o.adminTlsCert ?? s.adminTlsCert;
  const key = o.adminTlsKey ?? s.adminTlsKey;
  const bind: AdminBind = { address, ...(cert === undefined ? {} : { tlsCert: cert }), ...(key === undefined ? {} : { tlsKey: key }), insecure: o.insecure === true || s.adminInsecure === true };
  try {
    checkBind(bind);
  } catch (e) {
    throw new CliError((e as Error).message, EXIT_BAD_INPUT);
  }
  return bind;
}

function daemonLogger(ifname: string, options: ServerUpOptions): Logger {
  const level = options.verbose ? 'debug' : parseLogLevel(process.env.LOG_LEVEL);
  if (options.daemonChild) return createLogger(level, ifname, new BoundedLogFile(logPath(ifname)).write);
  return createLogger(level, ifname, (text) => process.stderr.write(text));
}

const exitCodeOf = (e: unknown): number => {
  const c = cliError(e);
  return c instanceof CliError ? c.exitCode : c instanceof LinuxPlatformError && c.code === 'ERR_PLATFORM_ARG' ? EXIT_BAD_INPUT : EXIT_FAILURE;
};

export async function serverUp(target: ServerTarget, options: ServerUpOptions = {}): Promise<string> {
  const { ifname } = target;
  if (!options.foreground) {
    // The detaching parent reads no registry: the daemon reads it once, and a damaged
    // one comes back as its report (FILE:LINE, exit 2) before anything has changed. An
    // admin address given here is checked here; one from the registry, by the daemon.
    adminBind(options, undefined);
    if (process.getuid?.() !== 0) throw new CliError('server up needs root (CAP_NET_ADMIN): run it with sudo', EXIT_FAILURE);
    await clearTheWay(target);
    const { postgres } = target;
    const argv = [
      process.argv[1]!, 'server', 'up', '--foreground', '--daemon-child',
      // A URL may hold a password: it goes to the daemon in its environment (readable by
      // root and the daemon only), never on its command line.
      ...(postgres ? ['--interface', ifname, ...(target.gateway === undefined ? [] : ['--gateway', target.gateway])] : ['--config', target.spec]),
      ...(options.verbose ? ['--verbose'] : []),
      ...(options.admin === undefined ? [] : ['--admin', options.admin]),
      ...(options.adminTlsCert === undefined ? [] : ['--admin-tls-cert', options.adminTlsCert]),
      ...(options.adminTlsKey === undefined ? [] : ['--admin-tls-key', options.adminTlsKey]),
      ...(options.insecure ? ['--insecure'] : []),
    ];
    const env = { ...process.env };
    if (postgres) env.BURROW_REGISTRY = target.spec;
    else delete env.BURROW_REGISTRY;
    const report = await spawnDaemon(argv, logPath(ifname), env);
    if (!report.ready) throw new CliError(report.message, report.exitCode);
    return report.message;
  }
  const report = (r: ChildReport) => {
    if (options.daemonChild && process.send) process.send(r);
  };
  const registry = openRegistry(target.spec, target.gateway === undefined ? {} : { gateway: target.gateway });
  try {
    return await runServer(registry, target, options, report);
  } finally {
    await registry.close();
  }
}

async function runServer(registry: PeerRegistry, target: ServerTarget, options: ServerUpOptions, report: (r: ChildReport) => void): Promise<string> {
  const { ifname } = target;
  let prepared: Awaited<ReturnType<typeof prepareUp>>;
  try {
    prepared = await prepareUp(registry, target, options);
  } catch (e) {
    report({ ready: false, message: (cliError(e) as Error).message, exitCode: exitCodeOf(e) });
    throw e;
  }
  const { data, config, uplink, steps, notes, bind } = prepared;
  const log = daemonLogger(ifname, options);
  const follower = new RegistryFollower(registry, data, { ifname, log });
  // Loaded here only: the other commands start without the admin page's modules.
  const { startServerExtras } = await import('../../server/admin/serve.js');
  let extras: Awaited<ReturnType<typeof startServerExtras>>;
  try {
    extras = await startServerExtras({ ifname, registry: follower, files: target.localBase, log, ...(bind === undefined ? {} : { bind }) });
  } catch (e) {
    const message = e instanceof AdminError ? e.message : `the usage history or admin page cannot start: ${(e as Error).message}`;
    report({ ready: false, message, exitCode: e instanceof AdminError && e.code === 'ERR_ADMIN_TLS' ? EXIT_BAD_INPUT : EXIT_FAILURE });
    throw new CliError(message, EXIT_FAILURE);
  }
  if (extras.admin !== undefined) {
    log.info(`admin page on ${extras.admin.url}`);
    notes.push(`admin page on ${bind?.tlsCert === undefined ? 'http' : 'https'}://${bind?.address}/`);
  }
  const code = await runDaemon({
    ifname,
    config,
    configPath: registry.location,
    endpoints: await resolveEndpoints(config, registry.location),
    log,
    platformSteps: steps,
    companion: (session) => {
      const totals = serverCompanion(session, { follower });
      extras.attach(session);
      return {
        async stop() {
          await extras.admin?.close();
          await extras.tracker.stop();
          await totals.stop();
        },
      };
    },
    reread: async () => {
      const next = sessionConfig(await registry.read());
      return { config: next, endpoints: await resolveEndpoints(next, registry.location) };
    },
    report: (r) => report(r.ready ? { ...r, message: [r.message, `NAT out of ${uplink}`, `registry ${registry.location}`, ...notes].join('; ') } : r),
    exitCodeOf,
  });
  await extras.admin?.close();
  if (code !== 0) process.exitCode = code;
  return `${ifname} is down`;
}

/** Refuses a server that runs already; undoes what a crashed one left (its journal), and says so. */
async function clearTheWay(target: ServerTarget): Promise<void> {
  const { ifname } = target;
  if (runningDaemon(ifname) !== undefined || (await running(ifname)) !== undefined) {
    throw new CliError(`${ifname} is already up; bring it down first with: burrow server down ${targetArgs(target)}`, EXIT_FAILURE);
  }
  const recovered = await recoverStale(ifname, say);
  if (recovered !== undefined) say(recovered);
}

/**
 * What the server process does before its session starts: the registry read (once) and
 * checked whole, expired peers disabled, the uplink found, the NAT steps planned.
 */
async function prepareUp(registry: PeerRegistry, target: ServerTarget, options: ServerUpOptions) {
  const { ifname } = target;
  const loaded = await guarded(() => loadForUp(registry));
  if (process.getuid?.() !== 0) throw new CliError('server up needs root (CAP_NET_ADMIN): run it with sudo', EXIT_FAILURE);
  // The daemon child's parent has done this before it started the child.
  if (!options.daemonChild) await clearTheWay(target);
  const { data, names } = await guarded(() => disableExpired(registry, loaded));
  const notes = names.length === 0 ? [] : [`expired, now disabled: ${names.join(', ')}`];
  if (!options.daemonChild) for (const note of notes) say(note);
  const uplink = data.settings.uplink ?? (await detectUplink(createExec()));
  if (uplink === undefined) throw new CliError(`${registry.location}: no uplink: there is no default route; name the interface with uplink=IFACE on the "# burrow-server:" line`, EXIT_BAD_INPUT);
  const config = sessionConfig(data);
  const steps = forwardingSteps({ ifname, uplink, subnets: tunnelSubnets(config), clientToClient: data.settings.clientToClient });
  const bind = adminBind(options, data);
  return { data, config, uplink, steps, notes, bind };
}

async function qrOutput(text: string, opts: { qr?: boolean; png?: string }): Promise<string> {
  if (!opts.qr && opts.png === undefined) return '';
  // Loaded only when asked for: every other server command starts without it.
  const { default: QRCode } = await import('qrcode');
  let out = '';
  if (opts.qr) out += await QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
  if (opts.png !== undefined) {
    const png = await QRCode.toBuffer(text, { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 6 });
    // The image holds the client's private key: 0600, made afresh (never through an existing file).
    rmSync(opts.png, { force: true });
    writeFileSync(opts.png, png, { mode: 0o600, flag: 'wx' });
  }
  return out;
}

export function serverCommand(): Command {
  const server = new Command('server').description('run a Burrow server: many peers, forwarding and NAT, a peer registry in its wg-quick file or in PostgreSQL (several gateways)');

  server
    .command('init')
    .description("write a new server's wg-quick file (DIR/IFACE.conf, 0600) with fresh keys, a free IPv4 subnet and an IPv6 ULA /64")
    .option('--endpoint <host[:port]>', 'the name or address clients dial (the port defaults to the listen port)')
    .option('--subnet <cidr>', 'IPv4 subnet for the tunnel (default: the first free 10.x.0.0/24)')
    .option('--subnet6 <cidr>', 'IPv6 subnet for the tunnel (default: a random ULA /64)')
    .option('--port <n>', 'UDP listen port', '51820')
    .option('--dir <dir>', 'where to write the file', '/etc/wireguard')
    .option('-i, --interface <name>', 'the interface name (the file is NAME.conf)', 'wg0')
    .option('--registry <url>', 'write the server into this PostgreSQL registry instead of a file, for several gateways (default: $BURROW_REGISTRY when it is a postgresql:// URL); refused when it holds a server already')
    .action(async (o: { endpoint?: string; subnet?: string; subnet6?: string; port: string; dir: string; interface: string; registry?: string }) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`--port ${JSON.stringify(o.port)}: expected 1 to 65535`, EXIT_BAD_INPUT);
      ifnameFromConfigPath(`${o.interface}.conf`);
      const env = process.env.BURROW_REGISTRY;
      const url = o.registry ?? (env !== undefined && isPostgresSpec(env) ? env : undefined);
      if (url !== undefined && !isPostgresSpec(url)) throw new CliError(`--registry ${JSON.stringify(url)}: expected a postgresql:// URL (for a file, use --dir and --interface)`, EXIT_BAD_INPUT);
      const inputs = { port, exec: createExec(), ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }), ...(o.subnet === undefined ? {} : { subnet: o.subnet }), ...(o.subnet6 === undefined ? {} : { subnet6: o.subnet6 }) };
      const r = await guarded(async () => {
        if (url === undefined) return initServer({ ifname: o.interface, dir: o.dir, ...inputs });
        const registry = new PgRegistry(url, { gateway: 'init' });
        try {
          return await initServerIn(registry, inputs);
        } finally {
          await registry.close();
        }
      });
      const cfg = url !== undefined ? ` --registry '${r.path}'${o.interface === 'wg0' ? '' : ` --interface ${o.interface}`}` : o.dir === '/etc/wireguard' && o.interface === 'wg0' ? '' : ` --config ${r.path}`;
      process.stdout.write(
        [
          url === undefined ? `wrote ${r.path} (0600): ${o.interface}, ${r.addresses.join(', ')}, UDP port ${port}` : `wrote the server into ${r.path}: ${r.addresses.join(', ')}, UDP port ${port} (every gateway uses this key, subnet and port)`,
          `server public key: ${r.publicKey}`,
          `uplink: ${r.uplink ?? '(no default route now: set uplink=IFACE on its "# burrow-server:" line)'}; NAT goes out of the default route's interface at each up`,
          ...(r.endpoint === undefined ? ['endpoint: none yet: add endpoint=HOST:PORT to its "# burrow-server:" line, or init again with --endpoint'] : [`endpoint for clients: ${r.endpoint}`]),
          '',
          'next:',
          `  burrow server up${cfg}                 # or: systemctl enable --now burrow-server@${o.interface}`,
          `  burrow server add-peer NAME${cfg} --qr   # prints the client's configuration and a QR code`,
          `  open UDP port ${port} in the host's firewall`,
          '',
        ].join('\n'),
      );
    });

  server
    .command('up')
    .description('bring the server up: every enabled peer, IP forwarding and NAT out of the uplink; returns once it is up, a daemon keeps it up. With a PostgreSQL registry it follows every change any gateway makes, and goes on serving the peers it knows while the database is away (docs/gateways.md)')
    .option('-f, --foreground', 'stay attached until SIGINT or SIGTERM (for systemd)')
    .option('-v, --verbose', 'log every timer and handshake initiation too')
    .option('--admin <host:port>', 'serve the admin page, its API and /metrics here, such as 127.0.0.1:51821 (default: admin= on the "# burrow-server:" line; else off)')
    .option('--admin-tls-cert <file>', "the admin page's certificate (PEM): HTTPS, and the session cookie is Secure")
    .option('--admin-tls-key <file>', "the admin page's private key (PEM)")
    .option('--insecure', 'allow --admin on a non-loopback address without TLS (the password crosses the network in the clear)')
    .addOption(new Option('--daemon-child', 'run as the daemon that `server up` starts').hideHelp())
    .action(async (o: RegistryOptions & { foreground?: boolean; daemonChild?: boolean; verbose?: boolean; admin?: string; adminTlsCert?: string; adminTlsKey?: string; insecure?: boolean }) => {
      const message = await serverUp(serverTarget(o), {
        foreground: o.foreground === true,
        daemonChild: o.daemonChild === true,
        verbose: o.verbose === true,
        ...(o.admin === undefined ? {} : { admin: o.admin }),
        ...(o.adminTlsCert === undefined ? {} : { adminTlsCert: o.adminTlsCert }),
        ...(o.adminTlsKey === undefined ? {} : { adminTlsKey: o.adminTlsKey }),
        insecure: o.insecure === true,
      });
      if (!o.daemonChild) process.stdout.write(`${message}\n`);
    });

  server
    .command('down')
    .description("bring the server down: transfer totals saved, forwarding and NAT undone; after a crash, undo what its journal records")
    .action(async (o: RegistryOptions) => {
      const { ifname } = await withRegistry(o, async (r) => r);
      const message = await down(ifname);
      // A daemon that was killed left its counters: the next up starts afresh, but adds
      // what it had not saved (kept as unsaved in the file).
      if (Object.keys(readSnapshot(ifname).unsaved).length === 0) removeSnapshot(ifname);
      removeRegistryStatus(ifname);
      process.stdout.write(`${message}\n`);
    });

  server
    .command('add-peer')
    .description("add a peer with the next free addresses and print its client configuration; applied at once to a running server")
    .argument('<name>', 'a name: 1 to 63 of A-Z a-z 0-9 _ . @ -')
    .option('--public-key <key>', "the client's public key: its private key never leaves the client")
    .option('--expires <date>', 'disable the peer at this date (2027-01-31 or 2027-01-31T12:00:00Z)')
    .option('--qr', 'also print the configuration as a QR code')
    .option('--png <file>', 'also write the QR code to this PNG file (0600)')
    .action(async (name: string, o: RegistryOptions & { publicKey?: string; expires?: string; qr?: boolean; png?: string }) => {
      const { record, data, ifname } = await withRegistry(o, async ({ registry, ifname }) => ({
        ...(await guarded(() => addPeer(registry, { name, ...(o.publicKey === undefined ? {} : { publicKey: o.publicKey }), ...(o.expires === undefined ? {} : { expires: o.expires }) }))),
        ifname,
      }));
      const expired = record.expires !== undefined && Date.parse(record.expires) <= Date.now();
      const applied = !expired && (await applyIfRunning(ifname, record.peer));
      const note = expired ? ' (its expiry has passed: the server disables it)' : applied ? '' : ' (the server is not running: it takes effect at its next up)';
      say(`added '${name}': ${record.peer.allowedIPs.map((a) => a.text).join(', ')}${note}`);
      const text = await guarded(async () => clientConfig(data, record));
      process.stdout.write(text + (await qrOutput(text, o)));
    });

  for (const [command, change, description] of [
    ['remove-peer', 'remove', 'remove a peer from the registry and cut it off at once'],
    ['disable', 'disable', 'cut a peer off at once and keep it (and its addresses) in the registry'],
    ['enable', 'enable', 'let a disabled peer connect again'],
  ] as const) {
    const c = server.command(command).description(description).argument('<name>');
    if (change === 'enable') c.option('--expires <date>', 'a new expiry date');
    c.action(async (name: string, o: RegistryOptions & { expires?: string }) => {
      const message = await withRegistry(o, ({ registry, ifname }) => guarded(() => changePeer(registry, ifname, name, change as PeerChange, o.expires === undefined ? {} : { expires: o.expires })));
      process.stdout.write(`${message}\n`);
    });
  }

  server
    .command('list-peers')
    .description('every peer: name, addresses, endpoint, latest handshake, transfer totals, enabled and expiry')
    .option('--json', 'the same as JSON, for scripts')
    .action(async (o: RegistryOptions & { json?: boolean }) => {
      const { data, ifname } = await withRegistry(o, async ({ registry, ifname }) => {
        // The running server says when it cannot reach its registry (it serves the peers it knows).
        const shown = readRegistryStatus(ifname);
        if (shown !== undefined && !shown.reachable) say(formatRegistryStatus(shown));
        return { data: await guarded(() => registry.read()), ifname };
      });
      const live = await running(ifname);
      const list = peerStatus(data, live, readSnapshot(ifname));
      process.stdout.write(o.json ? `${JSON.stringify(list, null, 2)}\n` : formatPeerStatus(list));
    });

  server
    .command('client-config')
    .description("print a peer's client configuration (for burrow up, wg-quick or the WireGuard apps), or write it as a configuration profile for a managed Mac")
    .argument('<name>')
    .option('--qr', 'also print it as a QR code, for the WireGuard mobile apps')
    .option('--png <file>', 'also write the QR code to this PNG file (0600)')
    .addOption(new Option('--format <format>', 'conf: the wg-quick text; mobileconfig: a profile for the Burrow app, as `burrow profile` writes').choices(['conf', 'mobileconfig']).default('conf'))
    .option('--bundle-id <id>', "mobileconfig: the Burrow app's bundle identifier (VPNSubType)")
    .option('--include-private-key', "mobileconfig: put the client's private key in the profile (only when the server generated it)")
    .option('-o, --output <file>', 'mobileconfig: where to write it, 0600 (default NAME.mobileconfig)')
    .action(async (name: string, o: RegistryOptions & { qr?: boolean; png?: string; format: string; bundleId?: string; includePrivateKey?: boolean; output?: string }) => {
      if (o.format === 'mobileconfig' && (o.qr || o.png !== undefined)) throw new CliError('--qr and --png go with --format conf', EXIT_BAD_INPUT);
      const data = await withRegistry(o, ({ registry }) => guarded(() => registry.read()));
      if (o.format === 'mobileconfig') {
        process.stdout.write(`${await guarded(async () => clientProfile(data, name, o))}\n`);
        return;
      }
      const text = await guarded(async () => clientConfig(data, findPeer(data, name)));
      process.stdout.write(text + (await qrOutput(text, o)));
    });

  server
    .command('admin-password')
    .description("set the admin page's password: read from the terminal (twice, not echoed) or one line of standard input; stored as an scrypt hash (FILE.admin-password, 0600) and used from the next login")
    .action(async (o: RegistryOptions) => {
      const localBase = await withRegistry(o, async ({ registry, localBase }) => {
        await guarded(() => registry.read());
        return localBase;
      });
      const password = await readSecret('admin password: ', 'again: ');
      const bad = checkPassword(password);
      if (bad !== undefined) throw new CliError(bad, EXIT_BAD_INPUT);
      const path = adminFiles(localBase).password;
      await writePasswordFile(path, password);
      process.stdout.write(`admin password set (${path}, 0600)\n`);
    });

  server
    .command('metrics-token')
    .description("make the bearer token that /metrics accepts without a session (FILE.metrics-token, 0600: point Prometheus's bearer_token_file at it)")
    .option('--rotate', 'replace the existing token (the old one stops working at once)')
    .action(async (o: RegistryOptions & { rotate?: boolean }) => {
      const localBase = await withRegistry(o, async ({ registry, localBase }) => {
        await guarded(() => registry.read());
        return localBase;
      });
      const { path, created } = ensureMetricsToken(localBase, o.rotate === true);
      process.stdout.write(`${created ? 'metrics token written to' : 'the metrics token is in'} ${path} (0600)\n`);
    });

  // Every command but init (which has its own) names its registry the same way.
  for (const c of server.commands) if (c.name() !== 'init') registryOptions(c);
  server.addCommand(registryCommand());
  // As the program's own commands: usage errors exit 2 (main.ts), never process.exit here.
  for (const c of [server, ...server.commands]) c.exitOverride().showHelpAfterError();
  return server;
}
