// Applying TunnelSettings to a Linux interface, and taking them off again.
//
// applyLinux reads what it needs from the live system (whether the interface exists and
// its current MTU and state, the first free table for a full tunnel, the MTU of the route
// to the endpoint when none is configured), then runs plan.ts's steps in order. Each step
// that changed something leaves an undo behind; if a step fails, the undos run newest
// first and the error names the failed command and its stderr. undo() runs them the same
// way when the tunnel goes down.
//
// Undoing tolerates what has already gone: routes and addresses vanish with their
// interface (and IPv6 addresses with the link going down), so "Cannot find device", "No
// such process" and friends count as done. Policy rules do not vanish with the interface
// and are always deleted. A failed undo keeps the steps that failed; calling undo()
// again retries them.

import type { TunnelSettings } from '../../policy/index.js';
import { DEFAULT_FWMARK, TUNNEL_OVERHEAD_BYTES } from '../../policy/index.js';
import { type DnsMethod, detectDnsMethod } from './dns.js';
import { type CommandFailure, describeFailure, LinuxPlatformError, renderCommand } from './errors.js';
import { createExec, type Exec, type ExecResult } from './exec.js';
import { checkIfname, type LinuxStep, needsBypass, planLinux, renderStep, SRC_VALID_MARK } from './plan.js';

export interface ApplyLinuxOptions {
  /** The tunnel interface, created beforehand by the runtime. */
  readonly ifname: string;
  /** How commands are run; default: on this host. `createExec(['ip', 'netns', 'exec', NS])` for a namespace. */
  readonly exec?: Exec;
  /** Default: resolvconf when it is on PATH, else /etc/resolv.conf rewritten (dns.ts). */
  readonly dns?: DnsMethod;
  /**
   * Bring the tunnel up even though the settings ask for the kill switch or per-app
   * routing, which this layer does not enforce yet. Default false: refuse, because a kill
   * switch that silently is not there is a leak.
   */
  readonly allowUnenforced?: boolean;
  /** Called with each command that changes the system, before it runs (wg-quick's "[#] …"). */
  readonly log?: (command: string) => void;
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
   * The MTU set on the interface: settings.mtu, or, when the config gave none, wg-quick's
   * "route to the endpoint minus 80" if that is smaller.
   */
  readonly mtu: number;
  /** What was run, in order, rendered as describeLinux renders it. */
  readonly commands: readonly string[];
  /** Removes what was added, newest first. Idempotent; succeeds when the interface is gone. */
  undo(): Promise<void>;
}

interface Undo {
  readonly what: string;
  readonly run: () => Promise<void>;
}

/** Messages of "it is already gone" when deleting (LC_ALL=C). */
const GONE = /No such process|Cannot find device|address not found|Cannot assign requested address|No such file or directory|does not exist/i;

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

  /** Runs a deletion; "already gone" counts as success. */
  async remove(argv: readonly string[]): Promise<void> {
    this.log?.(renderCommand(argv));
    const result = await this.exec(argv[0]!, argv.slice(1));
    if (result.exitCode !== 0 && !GONE.test(result.stderr)) throw commandError({ command: argv, ...result });
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

/** What the settings ask for that this layer cannot enforce yet. */
function unenforced(settings: TunnelSettings): string[] {
  const out: string[] = [];
  if (settings.includeAllNetworks) {
    out.push(`IncludeAllNetworks (the kill switch${settings.excludeLocalNetworks ? ', with ExcludeLocalNetworks' : ''})`);
  }
  const apps = (['mail', 'calendar', 'contacts'] as const).filter((app) => settings.perApp[app].length > 0);
  if (apps.length > 0) out.push(`per-app domains (${apps.join(', ')})`);
  return out;
}

interface StepContext {
  readonly run: Runner;
  readonly ifname: string;
  readonly bypassTable: number | undefined;
}

/** Applies one step; returns its undo, or undefined when nothing was changed. */
async function applyStep(step: LinuxStep, ctx: StepContext): Promise<{ undo: Undo | undefined; ran: boolean }> {
  const { run, ifname } = ctx;
  switch (step.kind) {
    case 'command': {
      const prefix = step.unlessRouteOnDevice;
      if (prefix !== undefined) {
        const f = prefix.family === 4 ? '-4' : '-6';
        const found = await run.must(['ip', '-j', f, 'route', 'show', 'dev', ifname, 'match', prefix.text], undefined, true);
        if (parseJsonArray(found.stdout, 'ip route show').length > 0) return { undo: undefined, ran: false };
      }
      await run.must(step.argv, step.input);
      return { undo: { what: renderCommand(step.undo), run: () => run.remove(step.undo) }, ran: true };
    }
    case 'link': {
      const before = await linkState(run, ifname);
      await run.must(step.argv);
      if (before.up && before.mtu === step.mtu) return { undo: undefined, ran: true };
      const argv = ['ip', 'link', 'set', 'dev', ifname, 'mtu', String(before.mtu), ...(before.up ? [] : ['down'])];
      return { undo: { what: renderCommand(argv), run: () => run.remove(argv) }, ran: true };
    }
    case 'sysctl': {
      const before = (await run.must(['sysctl', '-n', step.key], undefined, true)).stdout.trim();
      if (before === step.value) return { undo: undefined, ran: false };
      await run.must(['sysctl', '-q', '-w', `${step.key}=${step.value}`]);
      const restore = ['sysctl', '-q', '-w', `${step.key}=${before}`];
      return {
        undo: {
          what: renderCommand(restore),
          run: async () => {
            // wg-quick never turns src_valid_mark off again. Burrow does, unless another
            // tunnel's fwmark rule (one not ours) is still there and may rely on it.
            if (step.key === SRC_VALID_MARK) {
              const rules = parseJsonArray((await run.must(['ip', '-j', '-4', 'rule', 'show'], undefined, true)).stdout, 'ip rule show');
              const others = rules.some((r) => typeof r.fwmark === 'string' && Number(r.fwmark) !== ctx.bypassTable);
              if (others) return;
            }
            await run.must(restore);
          },
        },
        ran: true,
      };
    }
    case 'resolv-conf': {
      const read = await run.query(['cat', step.path]);
      if (read.exitCode !== 0 && !/No such file/.test(read.stderr)) throw commandError({ command: ['cat', step.path], ...read });
      const original = read.exitCode === 0 ? read.stdout : undefined;
      await run.must(['tee', step.path], step.content);
      return {
        undo: {
          what: `restore ${step.path}`,
          run: async () => {
            const now = await run.query(['cat', step.path]);
            // Rewritten by someone else since (a DHCP client, the user): theirs is newer.
            if (now.exitCode !== 0 || now.stdout !== step.content) return;
            if (original === undefined) await run.must(['rm', '-f', step.path]);
            else await run.must(['tee', step.path], original);
          },
        },
        ran: true,
      };
    }
  }
}

/** Runs undos newest first, keeping going past failures; returns the errors and the undos that failed. */
async function unwind(undos: Undo[]): Promise<{ errors: Error[]; failed: Undo[] }> {
  const errors: Error[] = [];
  const failed: Undo[] = [];
  while (undos.length > 0) {
    const undo = undos.pop()!;
    try {
      await undo.run();
    } catch (error) {
      errors.push(error instanceof Error ? error : new Error(String(error)));
      failed.unshift(undo);
    }
  }
  return { errors, failed };
}

/**
 * Installs `settings` on the existing interface `opts.ifname`: addresses, MTU and link
 * up, DNS, routes and, for a full tunnel with Table = auto, the fwmark bypass rules.
 * On failure everything already applied is removed again and a LinuxPlatformError says
 * which command failed and why.
 */
export async function applyLinux(settings: TunnelSettings, opts: ApplyLinuxOptions): Promise<AppliedLinux> {
  const { ifname } = opts;
  checkIfname(ifname);
  const missing = unenforced(settings);
  if (missing.length > 0 && opts.allowUnenforced !== true) {
    throw new LinuxPlatformError(
      'ERR_PLATFORM_UNSUPPORTED',
      `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not enforced on Linux yet; refusing to bring ${ifname} up without ` +
        `${missing.length > 1 ? 'them' : 'it'} (allowUnenforced brings it up anyway)`,
    );
  }
  const run = new Runner(opts.exec ?? createExec(), opts.log);
  const dns = opts.dns ?? detectDnsMethod();

  // Fails with "Device "x" does not exist." before anything is changed.
  await linkState(run, ifname);
  let bypassTable: number | undefined;
  if (needsBypass(settings)) {
    // wg-quick: a configured FwMark is the table too, used as is; else the first free one.
    bypassTable =
      settings.fwmarkSource === 'config' && settings.fwmark !== undefined
        ? settings.fwmark
        : await firstFreeTable(run, settings.fwmark ?? DEFAULT_FWMARK);
  }
  const mtu = settings.mtuSource === 'config' ? settings.mtu : Math.min(settings.mtu, await wgQuickMtu(run, settings));
  const steps = planLinux(settings, ifname, { bypassTable, mtu, dns });

  let undos: Undo[] = [];
  const commands: string[] = [];
  const ctx: StepContext = { run, ifname, bypassTable };
  for (const step of steps) {
    try {
      const { undo, ran } = await applyStep(step, ctx);
      if (ran) commands.push(renderStep(step));
      if (undo !== undefined) undos.push(undo);
    } catch (error) {
      const applied = undos.length;
      const { errors } = await unwind(undos);
      const reason = error instanceof Error ? error.message : String(error);
      const rollback =
        errors.length === 0
          ? `rolled back the ${applied} change${applied === 1 ? '' : 's'} already made`
          : `rolling back also failed: ${errors.map((e) => e.message).join('; ')}`;
      throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `bringing up ${ifname}: ${reason}; ${rollback}`, {
        ...(error instanceof LinuxPlatformError && error.failure !== undefined ? { failure: error.failure } : {}),
        rollbackErrors: errors,
        cause: error,
      });
    }
  }

  let undoing: Promise<void> | undefined;
  const undo = (): Promise<void> => {
    undoing ??= (async () => {
      try {
        const { errors, failed } = await unwind(undos);
        undos = failed;
        if (errors.length > 0) {
          throw new LinuxPlatformError(
            'ERR_PLATFORM_UNDO',
            `taking down ${ifname}: ${errors.length} step${errors.length === 1 ? '' : 's'} failed (${failed.map((u) => u.what).join('; ')}): ` +
              errors.map((e) => e.message).join('; '),
            { rollbackErrors: errors },
          );
        }
      } finally {
        undoing = undefined;
      }
    })();
    return undoing;
  };

  const fwmark = settings.fwmarkSource === 'config' ? settings.fwmark : bypassTable;
  return { ifname, fwmark, bypassTable, mtu, commands, undo };
}
