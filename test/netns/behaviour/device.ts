// One WireGuard device for the behaviour suite, started only through the command line
// that wireguard-go defines (`IMPL -f IFNAME`) and configured only with `wg` and `ip`,
// so the same steps drive Burrow's `burrow-go` and Debian's `wireguard-go`.
//
// The daemon runs in the foreground, so the PID we hold is the daemon's own: stop() ends
// it by PID, cpuSeconds() reads its CPU time from /proc. Its control socket is
// /var/run/wireguard/IFNAME.sock, shared by every namespace: IFNAME comes from uniqueName().
// Private keys go to `wg` through 0600 files (withSecretFiles), never on a command line.

import { type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Netns, uniqueName } from '../../support/netns.js';
import { startUserspace, type Userspace } from '../../support/userspace.js';
import { parseWgDump, type WgInterfaceStatus, type WgPeer, type WgPeerStatus, withSecretFiles } from '../../support/wireguard-go.js';

/** The implementations the suite runs against: Burrow's entry point, and Debian's wireguard-go. */
export const IMPLEMENTATIONS = ['burrow-go', 'wireguard-go'] as const;
export type Implementation = (typeof IMPLEMENTATIONS)[number];

const START_TIMEOUT_MS = 20_000;
/** USER_HZ: the unit of utime and stime in /proc/PID/stat on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;
/** The suite's wireguard-go is Debian's build. */
const USERSPACE_OF: Record<Implementation, Userspace> = { 'burrow-go': 'burrow-go', 'wireguard-go': 'debian-wireguard-go' };

export interface DeviceOptions {
  /** Default uniqueName('bh'). */
  ifname?: string;
  /** Base64; none leaves the device without a key, as the daemon starts. */
  privateKey?: string;
  listenPort?: number;
  peers?: readonly WgPeer[];
  /** CIDRs for the interface; IPv6 ones are added with nodad. */
  addresses?: readonly string[];
  mtu?: number;
}

export interface Device {
  readonly impl: Implementation;
  readonly ns: Netns;
  readonly ifname: string;
  readonly pid: number;
  readonly socketPath: string;
  readonly child: ChildProcess;
  /** `wg ARGS` inside the namespace; its standard output. */
  wg(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** `wg set IF private-key FILE`, the key written to a 0600 file first. */
  setPrivateKey(privateKey: string): Promise<void>;
  /** `wg set IF peer …`: adds the peer, or updates it (its allowed IPs are replaced). */
  setPeer(peer: WgPeer): Promise<void>;
  show(): Promise<WgInterfaceStatus>;
  /** One peer from `wg show IF dump`; throws when it has no such peer. */
  peer(publicKey: string): Promise<WgPeerStatus>;
  /** The interface's counters from `ip -s link`: packets the kernel handed the daemon (tx) and took from it (rx). */
  linkStats(): Promise<{ rxPackets: number; rxBytes: number; txPackets: number; txBytes: number }>;
  /** User plus system CPU time of the daemon (all its threads) so far, in seconds. */
  cpuSeconds(): number;
  running(): boolean;
  output(): string;
  /** SIGTERM, then SIGKILL, by PID; waits for the exit and removes a stale socket. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `impl IFNAME` in the foreground in `ns`, waits for its control socket, and configures it with `wg` and `ip`. */
export async function startDevice(ns: Netns, impl: Implementation, opts: DeviceOptions = {}): Promise<Device> {
  const ifname = opts.ifname ?? uniqueName('bh');
  const { child, pid, socketPath, running, stop } = await startUserspace(ns, USERSPACE_OF[impl], ifname, START_TIMEOUT_MS);
  const wg = (a: readonly string[], timeoutMs = 10_000): Promise<string> => ns.exec('wg', a, { timeoutMs });
  const show = async (): Promise<WgInterfaceStatus> => parseWgDump(await wg(['show', ifname, 'dump']));

  const device: Device = {
    impl,
    ns,
    ifname,
    pid,
    socketPath,
    child,
    wg,
    setPrivateKey: (privateKey) => withSecretFiles(async (write) => void (await wg(['set', ifname, 'private-key', await write(privateKey)]))),
    setPeer: (peer) =>
      withSecretFiles(async (write) => {
        const a = ['set', ifname, 'peer', peer.publicKey];
        if (peer.presharedKey !== undefined) a.push('preshared-key', await write(peer.presharedKey));
        if (peer.endpoint !== undefined) a.push('endpoint', peer.endpoint);
        if (peer.persistentKeepalive !== undefined) a.push('persistent-keepalive', String(peer.persistentKeepalive));
        a.push('allowed-ips', peer.allowedIPs.join(','));
        await wg(a);
      }),
    show,
    peer: async (publicKey) => {
      const found = (await show()).peers.find((p) => p.publicKey === publicKey);
      if (found === undefined) throw new Error(`${ifname} (${impl}) has no peer ${publicKey}`);
      return found;
    },
    linkStats: async () => {
      const [link] = JSON.parse(await ns.exec('ip', ['-s', '-j', 'link', 'show', 'dev', ifname])) as [
        { stats64: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } } },
      ];
      const { rx, tx } = link.stats64;
      return { rxPackets: rx.packets, rxBytes: rx.bytes, txPackets: tx.packets, txBytes: tx.bytes };
    },
    cpuSeconds: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command's closing parenthesis, from field 3 (state): utime is 14, stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
    },
    running,
    output: () => ns.outputOf(child),
    stop,
  };

  try {
    if (opts.privateKey !== undefined) await device.setPrivateKey(opts.privateKey);
    if (opts.listenPort !== undefined) await wg(['set', ifname, 'listen-port', String(opts.listenPort)]);
    for (const peer of opts.peers ?? []) await device.setPeer(peer);
    for (const cidr of opts.addresses ?? []) {
      await ns.exec('ip', ['address', 'add', cidr, 'dev', ifname, ...(cidr.includes(':') ? ['nodad'] : [])]);
    }
    if (opts.mtu !== undefined) await ns.exec('ip', ['link', 'set', 'dev', ifname, 'mtu', String(opts.mtu)]);
    await ns.exec('ip', ['link', 'set', 'dev', ifname, 'up']);
    return device;
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
