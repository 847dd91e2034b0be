// The reference WireGuard implementations, run inside a test namespace and configured
// with `wg` from wireguard-tools over their control sockets. Interop tests put Burrow on
// the other end; benchmarks run two of them side by side with Burrow as the yardstick.
// Three implementations (PEER_IMPLEMENTATIONS):
//   - Debian's wireguard-go (0.0.20220316), the packaged one, on PATH;
//   - the latest wireguard-go, built from its Go module by scripts/setup.sh;
//   - boringtun (Cloudflare's, in Rust), built from its crate by scripts/setup.sh.
// The last two live in a cache outside the repository, /var/cache/burrow/peers/bin (or
// $BURROW_PEERS_DIR/bin), as links to the pinned builds.
//
// Each runs in the foreground, so the PID we hold is the daemon's own and stop() can end
// it by PID. Its control socket is /var/run/wireguard/IFNAME.sock, in a directory shared
// by every namespace, so IFNAME must be unique across the test run (take it from
// uniqueName()). Keys never appear on a command line: private and preshared keys go to
// `wg set` through 0600 files in a 0700 temporary directory, and to `wg pubkey` through
// stdin.

import { type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_IFNAME_LENGTH, type Netns, run, stopChild } from './netns.js';
import { hostSkipReason } from './privileges.js';

export const WIREGUARD_RUN_DIR = '/var/run/wireguard';
const START_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 3_000;

/** Where scripts/setup.sh links the reference peers it builds. */
export const PEERS_BIN_DIR = join(process.env.BURROW_PEERS_DIR ?? '/var/cache/burrow/peers', 'bin');

/** The implementations a test can put on the other end of Burrow. */
export const PEER_IMPLEMENTATIONS = ['debian-wireguard-go', 'latest-wireguard-go', 'boringtun'] as const;
export type PeerImplementation = (typeof PEER_IMPLEMENTATIONS)[number];

interface PeerSpec {
  /** A name for tables and messages. */
  readonly label: string;
  /** A command on PATH, or an absolute path. */
  readonly command: string;
  /** Foreground, no privilege drop, logs to stdout/stderr. */
  args(ifname: string, logLevel: 'silent' | 'error' | 'verbose'): string[];
  env(logLevel: 'silent' | 'error' | 'verbose'): Record<string, string>;
  readonly quirks: PeerQuirks;
}

/** Where an implementation's control socket departs from what wireguard-go and the kernel answer. */
export interface PeerQuirks {
  /**
   * `get` answers `own_public_key=HEX` instead of `private_key=HEX`, so `wg show` prints
   * no public key for the interface (boringtun issue 348).
   */
  ownPublicKeyInsteadOfPrivateKey?: true;
  /**
   * `last_handshake_time_sec` is the seconds since the handshake, not a Unix time, so
   * `wg show` prints "55 years ago" (boringtun issue 447).
   */
  handshakeTimeIsAge?: true;
}

const wireguardGoEnv = (logLevel: string): Record<string, string> => ({
  // Foreground mode also silences the "use the kernel module" banner. Versions from
  // 2019 refused to start on Linux without the second variable; current ones ignore it.
  WG_PROCESS_FOREGROUND: '1',
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1',
  LOG_LEVEL: logLevel,
});

const PEER_SPECS: Record<PeerImplementation, PeerSpec> = {
  'debian-wireguard-go': {
    label: "Debian's wireguard-go",
    command: 'wireguard-go',
    args: (ifname) => ['-f', ifname],
    env: wireguardGoEnv,
    quirks: {},
  },
  'latest-wireguard-go': {
    label: 'latest wireguard-go',
    command: join(PEERS_BIN_DIR, 'wireguard-go'),
    args: (ifname) => ['-f', ifname],
    env: wireguardGoEnv,
    quirks: {},
  },
  boringtun: {
    label: 'boringtun',
    command: join(PEERS_BIN_DIR, 'boringtun-cli'),
    // It drops to the user `nobody` by default (then it cannot reopen its socket or TUN)
    // and daemonizes; --foreground logs to stdout. Two threads: the machine has two cores.
    args: (ifname, logLevel) => [
      ifname, '--foreground', '--disable-drop-privileges', '--threads', '2',
      '--verbosity', logLevel === 'verbose' ? 'debug' : 'error',
    ],
    env: () => ({}),
    quirks: { ownPublicKeyInsteadOfPrivateKey: true, handshakeTimeIsAge: true },
  },
};

/** The known departures of an implementation's control socket; see PeerQuirks. */
export function peerQuirks(implementation: PeerImplementation): PeerQuirks {
  return PEER_SPECS[implementation].quirks;
}

/**
 * The Unix time, in seconds, of the handshake that `wg show` reported as `reported` for
 * a peer of `implementation`: the value itself, or now minus it where it is an age.
 * 0 stays 0 (never).
 */
export function handshakeUnixSeconds(implementation: PeerImplementation, reported: number, nowMs = Date.now()): number {
  if (reported === 0 || PEER_SPECS[implementation].quirks.handshakeTimeIsAge !== true) return reported;
  return Math.floor(nowMs / 1000) - reported;
}

/** The name of an implementation for tables and messages, e.g. "latest wireguard-go". */
export function peerLabel(implementation: PeerImplementation): string {
  return PEER_SPECS[implementation].label;
}

/** Why `implementation` cannot run here (not root, no `ip`/`wg`, not built), or undefined. */
export function peerSkipReason(implementation: PeerImplementation): string | undefined {
  const spec = PEER_SPECS[implementation];
  if (!spec.command.startsWith('/')) return hostSkipReason(['ip', 'wg', spec.command]);
  const host = hostSkipReason(['ip', 'wg']);
  if (host !== undefined) return host;
  try {
    accessSync(spec.command, fsConstants.X_OK);
  } catch {
    return `needs ${spec.label} at ${spec.command} (run scripts/setup.sh as root, which builds it)`;
  }
  return undefined;
}

/**
 * For `describe.skipIf(requirePeer(...))`, as requireHost: prints the reason and skips,
 * but in CI (CI=true) a missing implementation is an error.
 */
export function requirePeer(implementation: PeerImplementation): boolean {
  const reason = peerSkipReason(implementation);
  if (reason === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI must run this test, but it ${reason}`);
  process.stderr.write(`skipping: ${reason}\n`);
  return true;
}

/** The first line `--version` prints, e.g. "wireguard-go v0.0.20250522" or "boringtun 0.7.1". */
export async function peerVersion(implementation: PeerImplementation): Promise<string> {
  const out = await run(PEER_SPECS[implementation].command, ['--version']);
  return out.trim().split('\n')[0]!.trim();
}

/** A peer as `wg set` takes it. Keys are base64 text as `wg genkey` prints them. */
export interface WgPeer {
  publicKey: string;
  presharedKey?: string;
  /** host:port; IPv6 in brackets, e.g. `[2001:db8::1]:51820` (see formatEndpoint). */
  endpoint?: string;
  /** CIDRs; replaces the peer's whole list. An empty list leaves it with none. */
  allowedIPs: readonly string[];
  /** Seconds; 0 turns it off. */
  persistentKeepalive?: number;
}

export interface WireguardGoOptions {
  /** Which implementation to run; Debian's wireguard-go by default. */
  implementation?: PeerImplementation;
  /** ≤ 15 characters and unique across namespaces: use uniqueName(). */
  ifname: string;
  /** Base64, as `wg genkey` prints it. */
  privateKey: string;
  /** UDP port inside the namespace; wireguard-go picks one when omitted. */
  listenPort?: number;
  /** CIDRs for the interface, e.g. ['192.0.2.1/24', '2001:db8:c0de::1/64']; IPv6 with nodad. */
  addresses?: readonly string[];
  peers?: readonly WgPeer[];
  /** Interface MTU; the default of all three is 1420. */
  mtu?: number;
  /** The log level; default 'error'. The output is kept for output(). */
  logLevel?: 'silent' | 'error' | 'verbose';
  /** How long to wait for the control socket; default 5 s. */
  startTimeoutMs?: number;
}

/** One peer from `wg show IF dump`. */
export interface WgPeerStatus {
  publicKey: string;
  hasPresharedKey: boolean;
  /** host:port as wg prints it, or undefined before the peer has one. */
  endpoint: string | undefined;
  allowedIPs: string[];
  /** Unix time in seconds of the last completed handshake; 0 for never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds, or undefined when off. */
  persistentKeepalive: number | undefined;
}

/** `wg show IF dump`, without the private key. */
export interface WgInterfaceStatus {
  publicKey: string;
  listenPort: number;
  fwmark: number | undefined;
  peers: WgPeerStatus[];
}

export interface WireguardGo {
  readonly implementation: PeerImplementation;
  readonly ns: Netns;
  readonly ifname: string;
  readonly pid: number;
  readonly publicKey: string;
  /** The UDP port it listens on (the one asked for, or the one it picked). */
  readonly listenPort: number;
  readonly socketPath: string;
  readonly child: ChildProcess;
  /** Parsed `wg show IF dump`. */
  show(): Promise<WgInterfaceStatus>;
  /** The raw answer to `get=1` on the control socket, keys included: keep it out of logs. */
  uapiGet(): Promise<string>;
  /** Adds the peer, or updates it (its allowed IPs are replaced). */
  setPeer(peer: WgPeer): Promise<void>;
  removePeer(publicKey: string): Promise<void>;
  /** True until the process has exited. */
  running(): boolean;
  /** The last 8 KiB the daemon wrote to stdout and stderr. */
  output(): string;
  /** Kills the daemon by PID (SIGTERM, then SIGKILL), waits for exit, removes a stale socket. Idempotent. */
  stop(): Promise<void>;
}

/** host:port for `wg set … endpoint`, bracketing IPv6 literals. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A key pair from `wg genkey` and `wg pubkey` (run on the host; no network involved). */
export async function wgGenKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await run('wg', ['genkey'])).trim();
  const publicKey = (await run('wg', ['pubkey'], { input: `${privateKey}\n` })).trim();
  return { privateKey, publicKey };
}

/** A preshared key from `wg genpsk`. */
export async function wgGenPsk(): Promise<string> {
  return (await run('wg', ['genpsk'])).trim();
}

/** Parses `wg show IF dump` for one interface. The private key is read past, never kept. */
export function parseWgDump(text: string): WgInterfaceStatus {
  const lines = text.split('\n').filter((line) => line !== '');
  const device = lines[0]?.split('\t');
  if (device === undefined || device.length !== 4) {
    throw new Error(`wg show dump: expected a 4-field interface line, got ${device?.length ?? 0} fields`);
  }
  const none = (s: string): string | undefined => (s === '(none)' ? undefined : s);
  const off = (s: string): number | undefined => (s === 'off' || s === '0' ? undefined : Number(s));
  const peers = lines.slice(1).map((line, i): WgPeerStatus => {
    const f = line.split('\t');
    if (f.length !== 8) throw new Error(`wg show dump: peer line ${i + 1} has ${f.length} fields, expected 8`);
    const [publicKey, psk, endpoint, allowed, handshake, rx, tx, keepalive] = f as [
      string, string, string, string, string, string, string, string,
    ];
    return {
      publicKey,
      hasPresharedKey: psk !== '(none)',
      endpoint: none(endpoint),
      allowedIPs: allowed === '(none)' ? [] : allowed.split(','),
      latestHandshake: Number(handshake),
      rxBytes: Number(rx),
      txBytes: Number(tx),
      persistentKeepalive: off(keepalive),
    };
  });
  return {
    publicKey: device[1]!,
    listenPort: Number(device[2]),
    fwmark: off(device[3]!),
    peers,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends `get=1` to a control socket and returns the answer up to its blank line. */
export function uapiGet(socketPath: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${socketPath}: no answer to get=1 after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.endsWith('\n\n')) {
        clearTimeout(timer);
        socket.end();
        resolve(text);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write('get=1\n\n');
  });
}

/** Runs fn with a writer of 0600 secret files (in a 0700 directory), and deletes them all afterwards. */
export async function withSecretFiles<T>(fn: (write: (text: string) => Promise<string>) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'burrow-wg-')); // mode 0700
  let n = 0;
  try {
    return await fn(async (text) => {
      n += 1;
      const path = join(dir, `key${n}`);
      await writeFile(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
      return path;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function peerArgs(peer: WgPeer, write: (text: string) => Promise<string>): Promise<string[]> {
  const args = ['peer', peer.publicKey];
  if (peer.presharedKey !== undefined) args.push('preshared-key', await write(peer.presharedKey));
  if (peer.endpoint !== undefined) args.push('endpoint', peer.endpoint);
  if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive));
  args.push('allowed-ips', peer.allowedIPs.join(','));
  return args;
}

/** A reference peer: the same handle for each implementation. */
export type Peer = WireguardGo;
export type PeerOptions = WireguardGoOptions;

/**
 * Starts the implementation (Debian's wireguard-go by default) in the foreground in `ns`,
 * waits for its control socket, and configures keys, port, peers, addresses and MTU with
 * `wg` and `ip`, then brings the interface up. On any failure the daemon is stopped
 * before the error is thrown. Also stopped when `ns` is destroyed. Starting again with
 * the same options after stop() is a restart: same keys, port and interface name.
 */
export async function startPeer(ns: Netns, opts: PeerOptions): Promise<Peer> {
  const { ifname } = opts;
  const implementation = opts.implementation ?? 'debian-wireguard-go';
  const spec = PEER_SPECS[implementation];
  const logLevel = opts.logLevel ?? 'error';
  if (!/^[A-Za-z0-9_.=+-]{1,15}$/.test(ifname)) {
    throw new RangeError(`${spec.label}: interface name must be 1 to ${MAX_IFNAME_LENGTH} plain characters, got ${JSON.stringify(ifname)}`);
  }
  const socketPath = `${WIREGUARD_RUN_DIR}/${ifname}.sock`;
  if (existsSync(socketPath)) {
    throw new Error(`${spec.label}: ${socketPath} exists already; interface names must be unique across namespaces`);
  }

  const child = ns.spawn(spec.command, spec.args(ifname, logLevel), { env: spec.env(logLevel) });
  const pid = child.pid!;
  const output = (): string => ns.outputOf(child);
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  // If the daemon is SIGKILLed its socket stays behind in the shared directory.
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

  const wg = (args: readonly string[]): Promise<string> => ns.exec('wg', args);

  try {
    const deadline = Date.now() + (opts.startTimeoutMs ?? START_TIMEOUT_MS);
    while (!existsSync(socketPath)) {
      if (!running()) {
        throw new Error(`${spec.label} for ${ifname} exited (${child.exitCode ?? child.signalCode}) before its socket appeared: ${output().trim()}`);
      }
      if (Date.now() >= deadline) throw new Error(`${spec.label} for ${ifname}: no ${socketPath} after ${opts.startTimeoutMs ?? START_TIMEOUT_MS} ms`);
      await sleep(10);
    }

    await withSecretFiles(async (write) => {
      const args = ['set', ifname, 'private-key', await write(opts.privateKey)];
      if (opts.listenPort !== undefined) args.push('listen-port', String(opts.listenPort));
      for (const peer of opts.peers ?? []) args.push(...(await peerArgs(peer, write)));
      await wg(args);
    });
    for (const cidr of opts.addresses ?? []) {
      const extra = cidr.includes(':') ? ['nodad'] : [];
      await ns.exec('ip', ['addr', 'add', cidr, 'dev', ifname, ...extra]);
    }
    if (opts.mtu !== undefined) await ns.exec('ip', ['link', 'set', 'dev', ifname, 'mtu', String(opts.mtu)]);
    await ns.exec('ip', ['link', 'set', 'dev', ifname, 'up']);

    const status = parseWgDump(await wg(['show', ifname, 'dump']));
    return {
      implementation,
      ns,
      ifname,
      pid,
      publicKey: status.publicKey,
      listenPort: status.listenPort,
      socketPath,
      child,
      show: async () => parseWgDump(await wg(['show', ifname, 'dump'])),
      uapiGet: () => uapiGet(socketPath),
      setPeer: async (peer) => {
        await withSecretFiles(async (write) => {
          await wg(['set', ifname, ...(await peerArgs(peer, write))]);
        });
      },
      removePeer: async (publicKey) => {
        await wg(['set', ifname, 'peer', publicKey, 'remove']);
      },
      running,
      output,
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/** Debian's wireguard-go unless `opts.implementation` says otherwise; see startPeer. */
export const startWireguardGo: (ns: Netns, opts: WireguardGoOptions) => Promise<WireguardGo> = startPeer;
