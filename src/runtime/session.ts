// A running interface is one session: the engine with its TUN and UDP sockets, the
// control socket, the platform state (addresses, routes, rules, DNS) and the hooks,
// with one lifecycle. The client's daemon (`burrow up`), `burrow-go` and the server all
// run one; the CLI only parses arguments.
//
//   start    PreUp; the tunnel (TUN, UDP, engine); the platform plan, step by step, each
//            step's undo journalled before it is made; the control socket; PostUp. A
//            failure at any step undoes everything before it.
//   update   a `wg set` on the control socket, or the engine roaming an endpoint: the
//            routes follow the peers' allowed IPs, the kill switch's endpoint sets follow
//            the peers' endpoints. reload() is SIGHUP: the file again,
//            applied as `wg syncconf` applies it, sessions of unchanged peers kept.
//   stop     PreDown; SaveConfig; every undo newest first; PostDown. The journal goes
//            with the last undo. stop('crash') leaves the steps marked "kept when the
//            daemon dies" (the kill switch) in place, and in the journal.

import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { encodeKey } from '../../crypto/keys.js';
import { clamp } from '../../crypto/x25519.js';
import type { DeviceEvent } from '../../tunnel/device.js';
import { type Config, type IpPrefix, makePrefix } from '../config/index.js';
import { type AppliedLinux, applyLinux, createExec, type Exec, runHooks } from '../platform/linux/index.js';
import type { LinuxStep } from '../platform/linux/plan.js';
import { isLinuxUndo, type LinuxUndo, undoLinux } from '../platform/linux/undo.js';
import { UndoStack } from '../platform/undo.js';
import { appRules, type TunnelEndpoint, tunnelSettings } from '../policy/index.js';
import { isRunning, Journal, readJournal } from './journal.js';
import { startPerApp } from './perapp.js';
import type { Logger } from './log.js';
import { saveConfig } from './save-config.js';
import { sameBytes, syncPeers } from './peer-sync.js';
import { describeEvent, type PeerSetup, Tunnel } from './tunnel.js';
import { UapiServer } from './uapi.js';
import { uapiSocketPath } from './uapi-client.js';

export interface ResolvedEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface SessionOptions {
  readonly ifname: string;
  /**
   * The wg-quick configuration to bring up; absent for `burrow-go`, whose peers arrive
   * over the control socket and whose addresses and routes are wg-quick's business. The
   * session takes it over: once the device holds them, its private key is wiped and its
   * peer list emptied.
   */
  readonly config?: Config;
  /** Where `config` was read from: for SaveConfig and the journal. */
  readonly configPath?: string;
  /** The peers' endpoints, resolved (resolveEndpoints), in the order of config.peers. */
  readonly endpoints?: readonly (ResolvedEndpoint | undefined)[];
  readonly log: Logger;
  /** How platform commands and hooks run; default: on this host. */
  readonly exec?: Exec;
  /**
   * Platform steps applied after the tunnel's addresses and routes, each journalled
   * before it is made and undone at stop (a server's forwarding and NAT). Default none.
   */
  readonly platformSteps?: readonly LinuxStep[];
  /** Asked to end the session from within: the control socket was deleted, the interface removed. */
  readonly onStopRequested?: (why: string) => void;
}

export type StopMode =
  /** An explicit down (SIGTERM, `burrow down`, `wg-quick down`): everything is undone. */
  | 'down'
  /** The daemon is dying of an error: what is kept when the daemon dies stays. */
  | 'crash';

const INTERFACE_POLL_MS = 1000;

/** Resolves every peer's endpoint (names at `up`, as wg-quick does). Throws with the file and peer named. */
export async function resolveEndpoints(config: Config, path: string): Promise<(ResolvedEndpoint | undefined)[]> {
  return Promise.all(
    config.peers.map(async (peer) => {
      const ep = peer.endpoint;
      if (ep === undefined) return undefined;
      if (isIP(ep.host)) return { host: ep.host, port: ep.port };
      try {
        const { address } = await lookup(ep.host);
        return { host: address, port: ep.port };
      } catch (e) {
        throw new Error(
          `${path}: peer ${encodeKey(peer.publicKey).slice(0, 8)}…: Endpoint ${ep.host}: cannot resolve the name (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        );
      }
    }),
  );
}

function peerSetups(config: Config, endpoints: readonly (ResolvedEndpoint | undefined)[]): PeerSetup[] {
  return config.peers.map((p, i) => ({
    publicKey: p.publicKey,
    presharedKey: p.presharedKey ?? null,
    ...(endpoints[i] ? { endpoint: endpoints[i] } : {}),
    persistentKeepalive: p.persistentKeepalive ?? 0,
    allowedIPs: p.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })),
  }));
}


export class Session {
  private applied: AppliedLinux | undefined;
  private uapi: UapiServer | undefined;
  private stopping: Promise<void> | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private syncQueued = false;
  private readonly listeners = new Set<(e: DeviceEvent) => void>();
  private interfaceWatch: NodeJS.Timeout | undefined;
  /** The configuration the session runs, without its private key (the device holds that). */
  private config: Config | undefined;

  private constructor(
    readonly ifname: string,
    readonly tunnel: Tunnel,
    private readonly stack: UndoStack<LinuxUndo>,
    private readonly journal: Journal<LinuxUndo>,
    private readonly options: SessionOptions,
  ) {}

  get log(): Logger {
    return this.options.log;
  }

  /** Brings the interface up. On failure everything done so far is undone and the error rethrown. */
  static async start(options: SessionOptions): Promise<Session> {
    const { ifname, config, log } = options;
    const exec = options.exec ?? createExec();
    // What a dead daemon's journal still holds (only what is kept when a daemon dies:
    // `up` undid the rest) becomes this session's, so that it is never unrecorded.
    const leftover = readJournal(ifname, isLinuxUndo);
    if (leftover !== undefined && isRunning(leftover.daemon, ifname)) throw new Error(`${ifname} is run by another daemon (pid ${leftover.daemon.pid})`);
    const apps = config === undefined ? [] : appRules(config).map((a) => ({ name: a.name, domains: [...a.domains] }));
    const journal = Journal.forInterface<LinuxUndo>(ifname, options.configPath, config?.interface.includeAllNetworks === true, apps);
    const stack = new UndoStack<LinuxUndo>((undo) => undoLinux(undo, exec, (line) => log.info(`[#] ${line}`)), journal.persist);
    for (const e of leftover?.entries ?? []) stack.intend(e.what, e.undo, { keep: e.keep });
    journal.write(); // who owns the interface, before anything is changed
    let session: Session | undefined;
    try {
      const settings = config === undefined ? undefined : tunnelSettings(config, { resolvedEndpoints: (options.endpoints ?? []).filter((e) => e !== undefined) });
      if (config !== undefined) await runHooks(config.interface.preUp, ifname, { exec, log: (c) => log.info(`[#] ${c}`) });
      const tunnel = await Tunnel.start({
        ifname,
        privateKey: config?.interface.privateKey ?? null,
        listenPort: config?.interface.listenPort ?? 0,
        fwmark: settings?.fwmark ?? 0,
        mtu: settings?.mtu,
        log: (line) => log.error(line),
        event: (e) => session?.onEngineEvent(e),
        peers: config === undefined ? [] : peerSetups(config, options.endpoints ?? []),
      });
      stack.defer('stop the tunnel', () => tunnel.stop());
      session = new Session(ifname, tunnel, stack, journal, options);
      if (settings === undefined) {
        // burrow-go: the new TUN gets wireguard-go's MTU (the kernel makes it 1500); wg-quick
        // or `ip link` may change it, and the engine follows. It goes with the interface.
        const r = await exec('ip', ['link', 'set', 'dev', ifname, 'mtu', String(tunnel.mtu)]);
        if (r.exitCode !== 0) throw new Error(`cannot set the MTU of ${ifname}: ${r.stderr.trim()}`);
      }
      if (settings !== undefined) {
        session.applied = await applyLinux(settings, {
          ifname,
          exec,
          log: (c) => log.info(`[#] ${c}`),
          undo: stack,
          ...(options.platformSteps === undefined ? {} : { extraSteps: options.platformSteps }),
        });
        await startPerApp(settings, session.applied, { ifname, exec, stack, log });
        // A full tunnel's bypass table may be another than the one asked for (51820 taken).
        const mark = session.applied.fwmark;
        if (mark !== undefined && mark !== tunnel.udp.fwmark) tunnel.udp.setMark(mark);
      }
      const s = session;
      session.uapi = await UapiServer.listen(
        uapiSocketPath(ifname),
        {
          device: tunnel.device,
          now: () => tunnel.now(),
          listenPort: () => tunnel.udp.port,
          setListenPort: (port: number) => tunnel.udp.rebind(port),
          fwmark: () => tunnel.udp.fwmark,
          setFwmark: async (mark: number) => tunnel.udp.setMark(mark),
          changed: () => {
            tunnel.rearm();
            s.follow();
          },
        },
        { log: (line) => log.info(`uapi: ${line}`), onSocketRemoved: () => options.onStopRequested?.('the control socket was removed') },
      );
      const uapi = session.uapi;
      stack.defer('close the control socket', () => uapi.close());
      if (config !== undefined) {
        await runHooks(config.interface.postUp, ifname, { exec, log: (c) => log.info(`[#] ${c}`) });
        journal.setHooks(config.interface.preDown, config.interface.postDown);
        // The device holds the key from here on; the parsed copy is wiped and dropped. So
        // are the peers, from the caller's config too (a server's 10,000 would stay in
        // memory for nothing while the daemon runs): the device holds them, and SaveConfig
        // writes them from the device (save-config.ts).
        config.interface.privateKey.fill(0);
        config.peers.length = 0;
        session.config = { interface: { ...config.interface, privateKey: new Uint8Array(0) }, peers: [] };
      }
      session.watchInterface();
      return session;
    } catch (e) {
      // What is kept when the daemon dies (the kill switch) stays: a failed up fails closed.
      const { errors } = await stack.unwind({ leaveKept: true });
      for (const { what, error } of errors) log.error(`while undoing (${what}): ${error.message}`);
      journal.close();
      if (stack.entries.some((entry) => entry.keep) && e instanceof Error) {
        e.message += `; the kill switch stays in place and blocks all traffic until: burrow down ${ifname}`;
      }
      throw e;
    }
  }

  /** A line for `up` to print. */
  describe(): string {
    return `${this.ifname} is up: listening on UDP port ${this.tunnel.udp.port}, ${this.tunnel.device.peerCount} peer(s)`;
  }

  private onEngineEvent(e: DeviceEvent): void {
    const line = describeEvent(e);
    if (e.type === 'timer' || e.type === 'handshake-initiated' || e.type === 'peer-removed') this.log.debug(line);
    else this.log.info(line);
    if (e.type === 'endpoint-changed') this.follow();
    for (const listener of this.listeners) listener(e);
  }

  /** Calls `listener` with every engine event from now on (a server counts removed peers' bytes); returns how to stop. */
  onDeviceEvent(listener: (e: DeviceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Brings the system in step with the engine: the routes follow the union of the peers'
   * allowed IPs. Calls are coalesced and run one at a time, in order.
   */
  follow(): void {
    if (this.syncQueued || this.stopping !== undefined) return;
    this.syncQueued = true;
    this.syncing = this.syncing.then(async () => {
      this.syncQueued = false;
      if (this.stopping !== undefined || this.applied === undefined) return;
      try {
        if (await this.applied.syncEndpoints(this.endpoints())) this.log.info(`kill switch: the tunnel may now reach ${this.endpoints().map((e) => `${e.host} port ${e.port}`).join(', ') || 'no endpoint'}`);
        const { added, removed, skipped } = await this.applied.syncRoutes(this.allowedPrefixes());
        for (const r of added) this.log.info(`route added: ${r}`);
        for (const r of removed) this.log.info(`route removed: ${r}`);
        for (const p of skipped) this.log.info(`${p} is not routed: a default route is set up only at up (bring the interface down and up)`);
      } catch (e) {
        this.log.error(`could not bring the routes in step with the allowed IPs: ${(e as Error).message}`);
      }
    });
  }

  /** Resolves when the routes have followed every change made so far. */
  settled(): Promise<void> {
    return this.syncing;
  }

  /** Every peer's endpoint now, as the engine has it (roaming and `wg set` included). */
  private endpoints(): TunnelEndpoint[] {
    const out: TunnelEndpoint[] = [];
    for (const peer of this.tunnel.device.peerStatus(this.tunnel.now())) {
      if (peer.endpoint !== undefined) out.push({ family: peer.endpoint.host.includes(':') ? 6 : 4, host: peer.endpoint.host, port: peer.endpoint.port });
    }
    return out;
  }

  private allowedPrefixes(): IpPrefix[] {
    const out: IpPrefix[] = [];
    for (const peer of this.tunnel.device.peerStatus(this.tunnel.now())) {
      for (const a of peer.allowedIPs) out.push(makePrefix(a.address.length === 4 ? 4 : 6, a.address, a.cidr));
    }
    return out;
  }

  /**
   * SIGHUP: `config` (the file read again) applied as `wg syncconf` applies it. The
   * private key, listen port and fwmark are set when they changed; peers not in the file
   * are removed; a peer in the file gets the fields that differ, so the sessions of
   * unchanged peers go on. Addresses, DNS, MTU and hooks are read only at `up`.
   */
  async reload(config: Config, endpoints: readonly (ResolvedEndpoint | undefined)[]): Promise<string> {
    const device = this.tunnel.device;
    const changes: string[] = [];
    try {
      // The device keeps its key clamped; compare like with like, or every SIGHUP would
      // "change" an unclamped key and end every session.
      const keyNow = device.privateKey;
      const keyWanted = clamp(config.interface.privateKey.slice());
      if (!sameBytes(keyNow, keyWanted)) {
        device.setPrivateKey(config.interface.privateKey);
        changes.push('private key');
      }
      keyNow.fill(0);
      keyWanted.fill(0);
      const port = config.interface.listenPort ?? 0;
      if (port !== 0 && port !== this.tunnel.udp.port) {
        await this.tunnel.udp.rebind(port);
        changes.push(`listen port ${port}`);
      }
      const mark = config.interface.fwMark ?? this.applied?.fwmark ?? 0;
      if (mark !== this.tunnel.udp.fwmark) {
        this.tunnel.udp.setMark(mark);
        changes.push(`fwmark ${mark}`);
      }
      const { added, removed, updated } = syncPeers(device, this.tunnel.now(), peerSetups(config, endpoints));
      for (const key of removed) changes.push(`removed peer ${key.slice(0, 8)}…`);
      for (const key of added) changes.push(`added peer ${key.slice(0, 8)}…`);
      for (const { key, fields } of updated) changes.push(`updated peer ${key.slice(0, 8)}… (${fields.join(', ')})`);
    } finally {
      config.interface.privateKey.fill(0);
    }
    this.tunnel.rearm();
    this.follow();
    await this.settled();
    return changes.length === 0 ? 'nothing changed' : changes.join('; ');
  }

  /**
   * wireguard-go and wg-quick: the daemon goes when its interface is deleted (`ip link
   * del`). Each poll also has the engine follow the interface's MTU.
   */
  private watchInterface(): void {
    const path = `/sys/class/net/${this.ifname}/ifindex`;
    let index: string | undefined;
    const check = async (): Promise<void> => {
      const now = await readFile(path, 'utf8').catch(() => undefined);
      if (index === undefined) index = now;
      else if (now !== index) return this.options.onStopRequested?.(`the interface ${this.ifname} was removed`);
      // The MTU may have been lowered (`ip link set IF mtu N`): padding follows it.
      this.tunnel.followMtu();
    };
    void check();
    this.interfaceWatch = setInterval(() => void check(), INTERFACE_POLL_MS);
    this.interfaceWatch.unref();
  }

  /**
   * Ends the session: PreDown, SaveConfig, every undo newest first, PostDown. Runs once;
   * later calls return the same promise. 'crash' leaves what is kept when the daemon dies.
   */
  stop(mode: StopMode = 'down'): Promise<void> {
    this.stopping ??= this.teardown(mode);
    return this.stopping;
  }

  private async teardown(mode: StopMode): Promise<void> {
    const { log } = this;
    if (this.interfaceWatch !== undefined) clearInterval(this.interfaceWatch);
    await this.syncing;
    const exec = this.options.exec ?? createExec();
    const config = this.config;
    const hook = async (name: string, commands: readonly string[]) => {
      try {
        await runHooks(commands, this.ifname, { exec, log: (c) => log.info(`[#] ${c}`) });
      } catch (e) {
        log.error(`${name}: ${(e as Error).message}`);
      }
    };
    if (config !== undefined) await hook('PreDown', config.interface.preDown);
    if (config?.interface.saveConfig && this.options.configPath !== undefined) {
      try {
        saveConfig(this.options.configPath, config, this.tunnel);
        log.info(`SaveConfig: wrote ${this.options.configPath}`);
      } catch (e) {
        log.error(`SaveConfig: could not write ${this.options.configPath}: ${(e as Error).message}`);
      }
    }
    const { errors } = await this.stack.unwind({ leaveKept: mode === 'crash' });
    for (const { what, error } of errors) log.error(`while undoing (${what}): ${error.message}`);
    if (config !== undefined) await hook('PostDown', config.interface.postDown);
    this.journal.close();
    if (errors.length > 0) log.error(`${errors.length} change(s) could not be undone; they stay in ${this.journal.path} for \`burrow down ${this.ifname}\``);
  }
}
