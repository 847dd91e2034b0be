// Applying TunnelSettings to a Linux interface, and taking them off again.
//
// applyLinux reads what it needs from the live system (whether the interface exists and
// its current MTU and state, the first free table for a full tunnel, the MTU of the route
// to the endpoint when none is configured), then runs plan.ts's steps in order. Before
// each step changes anything, its undo (a LinuxUndo record, undo.ts) goes onto the
// caller's UndoStack, which a session persists to its journal; if a step fails, the
// undos of the steps before it run newest first and the error names the failed command
// and its stderr. undo() runs them the same way when the tunnel goes down. A failed undo
// keeps the steps that failed; calling undo() again retries them.
//
// While the tunnel runs, syncRoutes() keeps the routes in step with the peers' allowed
// IPs (`wg set … allowed-ips`), journalled the same way.

import type { TunnelSettings } from '../../policy/index.js';
import { DEFAULT_FWMARK, TUNNEL_OVERHEAD_BYTES } from '../../policy/index.js';
import { type DnsMethod, detectDnsMethod } from './dns.js';
import { type CommandFailure, describeFailure, LinuxPlatformError, renderCommand } from './errors.js';
import { createExec, type Exec, type ExecResult } from './exec.js';
import { type IpPrefix, parsePrefix } from '../../config/index.js';
import type { TunnelEndpoint } from '../../policy/index.js';
import { checkTableOwner, endpointUpdate, KILL_SWITCH_UNDO } from './killswitch.js';
import { UndoStack } from '../undo.js';
import { checkIfname, type LinuxStep, needsBypass, planLinux, renderStep, routeSteps } from './plan.js';
import { describeUndo, type LinuxUndo, undoLinux } from './undo.js';

export interface ApplyLinuxOptions {
  /** The tunnel interface, created beforehand by the runtime. */
  readonly ifname: string;
  /** How commands are run; default: on this host. `createExec(['ip', 'netns', 'exec', NS])` for a namespace. */
  readonly exec?: Exec;
  /** Default: resolvconf when it is on PATH, else /etc/resolv.conf rewritten (dns.ts). */
  readonly dns?: DnsMethod;
  /** Called with each command that changes the system, before it runs (wg-quick's "[#] …"). */
  readonly log?: (command: string) => void;
  /**
   * Where each change's undo is recorded before the change is made: a session's journal.
   * Default: a stack of applyLinux's own, in memory.
   */
  readonly undo?: UndoStack<LinuxUndo>;
  /**
   * Steps run after the tunnel's own, journalled and rolled back like them: a server's
   * forwarding and NAT (forward.ts). Default none.
   */
  readonly extraSteps?: readonly LinuxStep[];
}

export interface AppliedLinux {
  readonly ifname: string;
  /**
   * The mark the runtime must put on the tunnel's UDP socket (SO_MARK): FwMark when set,
   * else the table chosen for a full tunnel's bypass; undefined when no mark is needed.
   */
  readonly fwmark: number | undefined;
  /** The table holding the full tunnel's default routes, when Table = auto made one. */
  readonly bypassTable: number | undefined;
  /**
   * Per-app routing (settings.apps): the table that holds the tunnel's routes, which only
   * the apps' marked flows reach; the mark is the same number. Undefined without apps.
   */
  readonly perAppTable: number | undefined;
  /**
   * The MTU set on the interface: settings.mtu, or, when the config gave none, wg-quick's
   * "route to the endpoint minus 80" if that is smaller.
   */
  readonly mtu: number;
  /** What was run, in order, rendered as describeLinux renders it. */
  readonly commands: readonly string[];
  /** Removes what was added, newest first. Idempotent; succeeds when the interface is gone. */
  undo(): Promise<void>;
  /**
   * Brings the routes in step with `allowedIPs`, the union of every peer's allowed IPs now:
   * a prefix that appeared gets its route, one that went away loses it. A /0 that was not
   * there at `up` is not routed (its bypass rules and mark are made only at `up`, as
   * wg-quick makes them); it is reported in `skipped`.
   */
  syncRoutes(allowedIPs: readonly IpPrefix[]): Promise<{ added: string[]; removed: string[]; skipped: string[] }>;
  /**
   * With the kill switch: lets the tunnel's UDP reach exactly `endpoints` (roaming, `wg
   * set … endpoint`), in one transaction. Returns whether anything changed.
   */
  syncEndpoints(endpoints: readonly TunnelEndpoint[]): Promise<boolean>;
}

const endpointElementsKey = (endpoints: readonly TunnelEndpoint[]): string[] => [...new Set(endpoints.map((e) => `${e.host} ${e.port}`))].sort();

/** The first candidates for a full tunnel's table are tried up to this many. */
const TABLE_SEARCH_LIMIT = 1024;
const FALLBACK_LINK_MTU = 1500;

class Runner {
  constructor(
    private readonly exec: Exec,
    private readonly log: ((command: string) => void) | undefined,
  ) {}

  async query(argv: readonly string[]): Promise<ExecResult> {
    return this.exec(argv[0]!, argv.slice(1));
  }

  async must(argv: readonly string[], input?: string, quiet = false): Promise<ExecResult> {
    if (!quiet) this.log?.(renderCommand(argv));
    const result = await this.exec(argv[0]!, argv.slice(1), input === undefined ? undefined : { input });
    if (result.exitCode !== 0) throw commandError({ command: argv, ...result });
    return result;
  }
}

function commandError(failure: CommandFailure): LinuxPlatformError {
  return new LinuxPlatformError('ERR_PLATFORM_COMMAND', describeFailure(failure), { failure });
}

function parseJsonArray(text: string, what: string): Record<string, unknown>[] {
  if (text.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value)) throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `${what}: expected a JSON array from ip -j`);
  return value as Record<string, unknown>[];
}

interface LinkState {
  readonly mtu: number;
  readonly up: boolean;
}

async function linkState(run: Runner, ifname: string): Promise<LinkState> {
  const result = await run.must(['ip', '-j', 'link', 'show', 'dev', ifname], undefined, true);
  const link = parseJsonArray(result.stdout, 'ip link show')[0];
  const flags = link?.flags;
  if (link === undefined || typeof link.mtu !== 'number' || !Array.isArray(flags)) {
    throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `ip -j link show dev ${ifname}: unexpected output`);
  }
  return { mtu: link.mtu, up: flags.includes('UP') };
}

async function tableHasRoutes(run: Runner, family: 4 | 6, table: number): Promise<boolean> {
  const argv = ['ip', '-j', family === 4 ? '-4' : '-6', 'route', 'show', 'table', String(table)];
  const result = await run.query(argv);
  // An id no route has ever used: "Error: ipv4: FIB table does not exist."
  if (result.exitCode !== 0) {
    if (/does not exist/.test(result.stderr)) return false;
    throw commandError({ command: argv, ...result });
  }
  return parseJsonArray(result.stdout, 'ip route show').length > 0;
}

/**
 * wg-quick's choice of table for a full tunnel without FwMark: the first from `start` with
 * no IPv4 or IPv6 route in it. Burrow also passes over a number that a policy rule already
 * uses as its table or fwmark, so that two tunnels never share one.
 */
async function firstFreeTable(run: Runner, start: number): Promise<number> {
  const rules: Record<string, unknown>[] = [];
  for (const f of ['-4', '-6']) {
    rules.push(...parseJsonArray((await run.must(['ip', '-j', f, 'rule', 'show'], undefined, true)).stdout, 'ip rule show'));
  }
  const usedByRule = (t: number): boolean => rules.some((r) => r.table === String(t) || (typeof r.fwmark === 'string' && Number(r.fwmark) === t));
  for (let t = start; t < start + TABLE_SEARCH_LIMIT && t <= 0xffffffff; t++) {
    if (usedByRule(t) || (await tableHasRoutes(run, 4, t)) || (await tableHasRoutes(run, 6, t))) continue;
    return t;
  }
  throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `no free routing table among ${start}..${start + TABLE_SEARCH_LIMIT - 1}`);
}

async function linkMtu(run: Runner, dev: string): Promise<number | undefined> {
  const result = await run.query(['ip', '-j', 'link', 'show', 'dev', dev]);
  if (result.exitCode !== 0) return undefined;
  const mtu = parseJsonArray(result.stdout, 'ip link show')[0]?.mtu;
  return typeof mtu === 'number' ? mtu : undefined;
}

/** A route's own MTU (`mtu N` metric), else its device's. */
async function routeMtu(run: Runner, route: Record<string, unknown> | undefined): Promise<number | undefined> {
  if (route === undefined) return undefined;
  if (Array.isArray(route.metrics)) {
    for (const metric of route.metrics as unknown[]) {
      const mtu = (metric as { mtu?: unknown } | null)?.mtu;
      if (typeof mtu === 'number') return mtu;
    }
  }
  return typeof route.dev === 'string' ? linkMtu(run, route.dev) : undefined;
}

/**
 * wg-quick's MTU when none is configured: the smallest MTU of the routes to the endpoints,
 * else of the (IPv4) default route, else 1500; less the 80 bytes WireGuard adds. The
 * caller caps it at settings.mtu: the runtime sized its buffers for that.
 */
async function wgQuickMtu(run: Runner, settings: TunnelSettings): Promise<number> {
  let smallest = Infinity;
  for (const endpoint of settings.endpoints) {
    const result = await run.query(['ip', '-j', endpoint.family === 4 ? '-4' : '-6', 'route', 'get', endpoint.host]);
    if (result.exitCode !== 0) continue; // unreachable for now: it does not constrain the MTU
    const mtu = await routeMtu(run, parseJsonArray(result.stdout, 'ip route get')[0]);
    if (mtu !== undefined && mtu > 0) smallest = Math.min(smallest, mtu);
  }
  if (smallest === Infinity) {
    const result = await run.query(['ip', '-j', '-4', 'route', 'show', 'default']);
    const mtu = result.exitCode === 0 ? await routeMtu(run, parseJsonArray(result.stdout, 'ip route show')[0]) : undefined;
    if (mtu !== undefined && mtu > 0) smallest = mtu;
  }
  return (smallest === Infinity ? FALLBACK_LINK_MTU : smallest) - TUNNEL_OVERHEAD_BYTES;
}

/**
 * Why per-app routing cannot run with these settings on Linux, or undefined. With the
 * kill switch every packet already goes through the tunnel (docs/per-app.md); without
 * routes or without the tunnel's resolver, the apps' names could go nowhere.
 */
function perAppRefusal(settings: TunnelSettings): string | undefined {
  if (settings.apps === undefined) return undefined;
  if (settings.includeAllNetworks) {
    return 'per-app domains and IncludeAllNetworks = true cannot be combined on Linux: with the kill switch every packet goes through the tunnel already (see docs/per-app.md)';
  }
  if (settings.table === 'off') return 'per-app domains need the tunnel\'s routes, and Table = off asks for none';
  if (settings.dns.servers.length === 0) return "per-app domains need DNS = the tunnel's resolver, which answers the apps' names";
  return undefined;
}

/**
 * Per-app routing routes nothing in the main table: the tunnel's routes (every peer's
 * AllowedIPs, a /0 included) go into a table of their own, reached only by the apps'
 * marked flows, and the system's resolver is left alone (the apps' resolver asks the
 * tunnel's DNS servers). The table is the configured one, else the first free from
 * 51820, never the tunnel socket's own mark.
 */
async function perAppSettings(run: Runner, settings: TunnelSettings): Promise<{ settings: TunnelSettings; table: number }> {
  let table: number;
  if (typeof settings.table === 'number') table = settings.table;
  else {
    table = await firstFreeTable(run, DEFAULT_FWMARK);
    if (table === settings.fwmark) table = await firstFreeTable(run, table + 1);
  }
  return { settings: { ...settings, table, dns: { servers: [], searchDomains: [], matchDomains: [] } }, table };
}

interface StepContext {
  readonly run: Runner;
  readonly ifname: string;
  readonly bypassTable: number | undefined;
  readonly stack: UndoStack<LinuxUndo>;
}

/** Applies one step, its undo recorded first; returns the undo's id, or undefined when nothing was changed. */
async function applyStep(step: LinuxStep, ctx: StepContext): Promise<{ id: number | undefined; ran: boolean }> {
  const { run, ifname, stack } = ctx;
  const change = async (undo: LinuxUndo, make: () => Promise<unknown>, keep = false): Promise<{ id: number; ran: true }> => {
    // The same undo already recorded: one record is enough. It happens in two places only,
    // so only they are compared (not every route of a large server): a kept entry (a kill
    // switch adopted from a dead daemon's journal, now replaced) and the entry just before
    // (the three resolvectl steps share one revert).
    const text = JSON.stringify(undo);
    const last = stack.entries.at(-1);
    const same = [...(last === undefined ? [] : [last]), ...stack.entries.filter((e) => e.keep)].find((e) => JSON.stringify(e.record) === text);
    if (same !== undefined) {
      await make();
      return { id: same.id, ran: true };
    }
    const id = stack.intend(describeUndo(undo), undo, { keep });
    try {
      await make();
    } catch (e) {
      stack.cancel(id);
      throw e;
    }
    return { id, ran: true };
  };
  switch (step.kind) {
    case 'command': {
      const prefix = step.unlessRouteOnDevice;
      if (prefix !== undefined) {
        const f = prefix.family === 4 ? '-4' : '-6';
        const found = await run.must(['ip', '-j', f, 'route', 'show', 'dev', ifname, 'match', prefix.text], undefined, true);
        if (parseJsonArray(found.stdout, 'ip route show').length > 0) return { id: undefined, ran: false };
      }
      return change({ kind: 'command', argv: step.undo }, () => run.must(step.argv, step.input));
    }
    case 'link': {
      const before = await linkState(run, ifname);
      if (before.up && before.mtu === step.mtu) {
        await run.must(step.argv);
        return { id: undefined, ran: true };
      }
      return change({ kind: 'link', ifname, mtu: before.mtu, up: before.up }, () => run.must(step.argv));
    }
    case 'sysctl': {
      const before = (await run.must(['sysctl', '-n', step.key], undefined, true)).stdout.trim();
      if (before === step.value) return { id: undefined, ran: false };
      const undo: LinuxUndo = { kind: 'sysctl', key: step.key, value: before, ...(ctx.bypassTable === undefined ? {} : { ownMark: ctx.bypassTable }) };
      return change(undo, () => run.must(['sysctl', '-q', '-w', `${step.key}=${step.value}`]));
    }
    case 'resolv-conf': {
      const read = await run.query(['cat', step.path]);
      if (read.exitCode !== 0 && !/No such file/.test(read.stderr)) throw commandError({ command: ['cat', step.path], ...read });
      const original = read.exitCode === 0 ? read.stdout : null;
      return change({ kind: 'resolv-conf', path: step.path, original, written: step.content }, () => run.must(['tee', step.path], step.content));
    }
    case 'nft':
      // Loading the kill switch replaces Burrow's table: never another tunnel's (it would
      // lift that tunnel's kill switch or per-app routing).
      if (step.undo === KILL_SWITCH_UNDO) await checkTableOwner((file, args) => run.query([file, ...args]), ifname);
      return change({ kind: 'command', argv: step.undo }, () => run.must(['nft', '-f', '-'], step.input), step.keep);
  }
}

/** The subnets of every interface but loopback and the tunnel: what ExcludeLocalNetworks calls attached. */
async function attachedSubnets(run: Runner, ifname: string): Promise<IpPrefix[]> {
  const links = parseJsonArray((await run.must(['ip', '-j', 'address', 'show'], undefined, true)).stdout, 'ip address show');
  const out: IpPrefix[] = [];
  for (const link of links) {
    if (link.ifname === 'lo' || link.ifname === ifname || !Array.isArray(link.addr_info)) continue;
    for (const a of link.addr_info as { local?: unknown; prefixlen?: unknown }[]) {
      if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      try {
        out.push(parsePrefix(`${a.local}/${a.prefixlen}`, { mask: true }));
      } catch {
        // an address ip prints that we cannot read: not a local network for us
      }
    }
  }
  return out;
}

function failedUndos(errors: readonly { what: string; error: Error }[]): string {
  return errors.map((e) => `${e.what}: ${e.error.message}`).join('; ');
}

/** Identifies a route step by the command that adds it. */
const routeKey = (step: LinuxStep): string => (step.kind === 'command' ? step.argv.join(' ') : '');

/**
 * Installs `settings` on the existing interface `opts.ifname`: addresses, MTU and link
 * up, DNS, routes and, for a full tunnel with Table = auto, the fwmark bypass rules.
 * On failure everything already applied is removed again and a LinuxPlatformError says
 * which command failed and why.
 */
export async function applyLinux(asked: TunnelSettings, opts: ApplyLinuxOptions): Promise<AppliedLinux> {
  const { ifname } = opts;
  checkIfname(ifname);
  const refusal = perAppRefusal(asked);
  if (refusal !== undefined) throw new LinuxPlatformError('ERR_PLATFORM_ARG', refusal);
  const exec = opts.exec ?? createExec();
  const run = new Runner(exec, opts.log);
  const stack = opts.undo ?? new UndoStack<LinuxUndo>((undo) => undoLinux(undo, exec, opts.log));
  const dns = opts.dns ?? detectDnsMethod();

  // Fails with "Device "x" does not exist." before anything is changed.
  await linkState(run, ifname);
  let settings = asked;
  let perAppTable: number | undefined;
  if (asked.apps !== undefined) ({ settings, table: perAppTable } = await perAppSettings(run, asked));
  let bypassTable: number | undefined;
  if (needsBypass(settings)) {
    // wg-quick: a configured FwMark is the table too, used as is; else the first free one.
    bypassTable =
      settings.fwmarkSource === 'config' && settings.fwmark !== undefined
        ? settings.fwmark
        : await firstFreeTable(run, settings.fwmark ?? DEFAULT_FWMARK);
  }
  const mtu = settings.mtuSource === 'config' ? settings.mtu : Math.min(settings.mtu, await wgQuickMtu(run, settings));
  const attached = settings.includeAllNetworks && settings.excludeLocalNetworks ? await attachedSubnets(run, ifname) : [];
  const steps = [...planLinux(settings, ifname, { bypassTable, mtu, dns, attachedSubnets: attached }), ...(opts.extraSteps ?? [])];

  // What the closures below keep for the daemon's life: the settings without their
  // routes (a server's are one per peer: thousands of prefixes kept for nothing), and
  // whether each family had a default route at up.
  const hadDefault = {
    4: settings.ipv4.includedRoutes.some((p) => p.prefixLength === 0),
    6: settings.ipv6.includedRoutes.some((p) => p.prefixLength === 0),
  };
  const routeless: TunnelSettings = { ...settings, ipv4: { ...settings.ipv4, includedRoutes: [] }, ipv6: { ...settings.ipv6, includedRoutes: [] } };

  const ours = new Set<number>();
  /** The routes added for allowed IPs, by the command that added them: what syncRoutes diffs against. */
  const routes = new Map<string, number>();
  const commands: string[] = [];
  const ctx: StepContext = { run, ifname, bypassTable, stack };
  const isRoute = (step: LinuxStep): boolean => step.kind === 'command' && step.argv.includes('route');
  for (const step of steps) {
    try {
      const { id, ran } = await applyStep(step, ctx);
      if (ran) commands.push(renderStep(step));
      if (id !== undefined) {
        ours.add(id);
        if (isRoute(step)) routes.set(routeKey(step), id);
      }
    } catch (error) {
      const applied = ours.size;
      const { errors } = await stack.unwind({ ids: ours });
      const reason = error instanceof Error ? error.message : String(error);
      const rollback =
        errors.length === 0
          ? `rolled back the ${applied} change${applied === 1 ? '' : 's'} already made`
          : `rolling back also failed: ${failedUndos(errors)}`;
      throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `bringing up ${ifname}: ${reason}; ${rollback}`, {
        ...(error instanceof LinuxPlatformError && error.failure !== undefined ? { failure: error.failure } : {}),
        rollbackErrors: errors.map((e) => e.error),
        cause: error,
      });
    }
  }

  let undoing: Promise<void> | undefined;
  const undo = (): Promise<void> => {
    undoing ??= (async () => {
      try {
        const { errors } = await stack.unwind({ ids: ours });
        for (const id of [...ours]) if (!stack.entries.some((e) => e.id === id)) ours.delete(id);
        routes.clear();
        if (errors.length > 0) {
          throw new LinuxPlatformError(
            'ERR_PLATFORM_UNDO',
            `taking down ${ifname}: ${errors.length} step${errors.length === 1 ? '' : 's'} failed: ${failedUndos(errors)}`,
            { rollbackErrors: errors.map((e) => e.error) },
          );
        }
      } finally {
        undoing = undefined;
      }
    })();
    return undoing;
  };

  const syncRoutes = async (allowedIPs: readonly IpPrefix[]): Promise<{ added: string[]; removed: string[]; skipped: string[] }> => {
    const added: string[] = [];
    const removed: string[] = [];
    const skipped: string[] = [];
    const wanted = new Map<string, LinuxStep>();
    for (const family of [4, 6] as const) {
      const ip = family === 4 ? routeless.ipv4 : routeless.ipv6;
      const prefixes = allowedIPs.filter((p) => p.family === family);
      // A /0 is routed only as `up` set it up (with its bypass); a new one is skipped.
      const usable = prefixes.filter((p) => {
        if (p.prefixLength !== 0 || hadDefault[family] || typeof routeless.table === 'number') return true;
        skipped.push(p.text);
        return false;
      });
      const familySettings = { ...routeless, [family === 4 ? 'ipv4' : 'ipv6']: { ...ip, includedRoutes: usable } } as TunnelSettings;
      for (const step of routeSteps(familySettings, ifname, family, bypassTable)) if (isRoute(step)) wanted.set(routeKey(step), step);
    }
    for (const [key, id] of [...routes]) {
      if (wanted.has(key)) continue;
      await stack.release(id);
      ours.delete(id);
      routes.delete(key);
      removed.push(key);
    }
    for (const [key, step] of wanted) {
      if (routes.has(key)) continue;
      const { id } = await applyStep(step, ctx);
      if (id === undefined) continue;
      ours.add(id);
      routes.set(key, id);
      added.push(key);
    }
    return { added, removed, skipped };
  };

  let endpointsNow = JSON.stringify(endpointElementsKey(settings.endpoints));
  const killSwitch = settings.includeAllNetworks;
  const syncEndpoints = async (endpoints: readonly TunnelEndpoint[]): Promise<boolean> => {
    if (!killSwitch) return false;
    const key = JSON.stringify(endpointElementsKey(endpoints));
    if (key === endpointsNow) return false;
    await run.must(['nft', '-f', '-'], endpointUpdate(endpoints));
    endpointsNow = key;
    return true;
  };

  const fwmark = settings.fwmarkSource === 'config' ? settings.fwmark : bypassTable;
  return { ifname, fwmark, bypassTable, perAppTable, mtu, commands, undo, syncRoutes, syncEndpoints };
}
