// TunnelSettings -> the list of steps that bring a tunnel's addresses, routes, rules and
// DNS up on Linux, in wg-quick's order. Pure: the values that need the live system (the
// full-tunnel table, an unconfigured MTU, the DNS method) are inputs, chosen by apply.ts
// or, for a dry run, filled with their first candidates by describeLinux.
//
// The order, as wg-quick's cmd_up, after Burrow's kill switch:
//   0. nft -f - (table inet burrow)                            IncludeAllNetworks only
//   1. ip -4/-6 address add ADDR dev IF                       each Address
//   2. ip link set mtu M up dev IF
//   3. DNS (resolvectl, resolvconf -a …, or /etc/resolv.conf)  when there are servers
//   4. routes, per family, longest prefix first:
//      Table = off      nothing
//      Table = N        ip -F route add P dev IF table N       every AllowedIPs, /0 too
//      Table = auto     ip -F route add P dev IF               every AllowedIPs but /0,
//                         unless a route on IF already covers P (the connected route of
//                         an Address: adding it again would fail with "File exists")
//                       for a /0, the endpoint bypass with table T = mark M:
//                         ip -F rule add not fwmark T table T    unmarked traffic: table T
//                         ip -F rule add table main suppress_prefixlength 0
//                                                  main, but never its default route
//                         ip -F route add ::/0 or 0.0.0.0/0 dev IF table T
//                         sysctl -q -w net.ipv4.conf.all.src_valid_mark=1   (IPv4 only)
//      The runtime marks the tunnel's UDP socket with M (SO_MARK): those packets skip
//      table T and follow main's default route, so the endpoint is never routed into the
//      tunnel. src_valid_mark makes the reverse-path check of replies use the mark too.
//      Net sysctls are per network namespace.
//
// Every step knows its undo: "add" becomes "del" with the same arguments; the link, the
// sysctl and resolv.conf get back the values apply.ts read before changing them.

import type { IpFamily, IpPrefix } from '../../config/index.js';
import { DEFAULT_FWMARK, killSwitchPolicy, type TunnelSettings } from '../../policy/index.js';
import { type DnsMethod, detectDnsMethod, resolvConfText, resolverLines } from './dns.js';
import { LinuxPlatformError, renderCommand } from './errors.js';
import { KILL_SWITCH_UNDO, renderKillSwitch } from './killswitch.js';
import { SRC_VALID_MARK } from './undo.js';


export type LinuxStep =
  /** Run `argv`; undo runs `undo`. `unlessRouteOnDevice`: skip when `ip route show dev IF match P` finds one. */
  | {
      readonly kind: 'command';
      readonly argv: readonly string[];
      readonly undo: readonly string[];
      readonly input?: string;
      readonly unlessRouteOnDevice?: IpPrefix;
    }
  /** Set the MTU and bring the link up; undo restores the MTU and state read before. */
  | { readonly kind: 'link'; readonly argv: readonly string[]; readonly mtu: number }
  /** Set a sysctl unless it already has the value; undo restores the value read before. */
  | { readonly kind: 'sysctl'; readonly key: string; readonly value: string }
  /** Rewrite a resolv.conf in place; undo writes back what was there. */
  | { readonly kind: 'resolv-conf'; readonly path: string; readonly content: string }
  /** Load an nftables file in one transaction (`nft -f -`); `undo` is kept when the daemon dies when `keep`. */
  | { readonly kind: 'nft'; readonly input: string; readonly undo: readonly string[]; readonly keep: boolean };

export interface PlanValues {
  /** The table (= fwmark) of the full-tunnel bypass; required when one is needed. */
  readonly bypassTable: number | undefined;
  readonly mtu: number;
  readonly dns: DnsMethod;
  /** Subnets of the machine's other interfaces, for ExcludeLocalNetworks; default none. */
  readonly attachedSubnets?: readonly IpPrefix[];
}

/** wg-quick's interface-name rule, which Linux's also satisfies; no leading "-". */
const IFNAME = /^[A-Za-z0-9_=+.][A-Za-z0-9_=+.-]{0,14}$/;

/** Why `ifname` is not an interface name Linux and wg-quick accept; undefined when it is. */
export function checkIfnameText(ifname: unknown): string | undefined {
  if (typeof ifname === 'string' && IFNAME.test(ifname)) return undefined;
  return 'expected 1 to 15 characters of A-Z a-z 0-9 _ = + . - (not starting with -)';
}

export function checkIfname(ifname: unknown): asserts ifname is string {
  const why = checkIfnameText(ifname);
  if (why !== undefined) throw new LinuxPlatformError('ERR_PLATFORM_ARG', `interface name ${JSON.stringify(ifname)}: ${why}`);
}

/** True when the full tunnel of some family is routed by Table = auto: the bypass is needed. */
export function needsBypass(settings: TunnelSettings): boolean {
  return settings.table === 'auto' && (settings.fullTunnel.v4 || settings.fullTunnel.v6);
}

function familyFlag(family: IpFamily): '-4' | '-6' {
  return family === 4 ? '-4' : '-6';
}

/** Does `outer` contain every address of `inner`? */
function covers(outer: IpPrefix, inner: IpPrefix): boolean {
  if (outer.family !== inner.family || outer.prefixLength > inner.prefixLength) return false;
  for (let bit = 0; bit < outer.prefixLength; bit++) {
    const mask = 0x80 >>> bit % 8;
    const byte = bit >>> 3;
    if ((outer.address[byte]! & mask) !== (inner.address[byte]! & mask)) return false;
  }
  return true;
}

/** The route the kernel adds with an address (none for a /32 or /128). */
function connectedRoutes(addresses: readonly IpPrefix[]): IpPrefix[] {
  return addresses.filter((a) => a.prefixLength < (a.family === 4 ? 32 : 128));
}

function dnsSteps(settings: TunnelSettings, ifname: string, method: DnsMethod): LinuxStep[] {
  if (settings.dns.servers.length === 0) return [];
  if (method.kind === 'file') return [{ kind: 'resolv-conf', path: method.path, content: resolvConfText(settings.dns, ifname) }];
  if (method.kind === 'resolved') {
    // One undo for the three: `revert` drops every per-link setting.
    const revert = [method.program, 'revert', ifname];
    return [
      { kind: 'command', argv: [method.program, 'dns', ifname, ...settings.dns.servers], undo: revert },
      { kind: 'command', argv: [method.program, 'domain', ifname, '~.', ...settings.dns.searchDomains], undo: revert },
      { kind: 'command', argv: [method.program, 'default-route', ifname, 'yes'], undo: revert },
    ];
  }
  const name = `${method.interfacePrefix}${ifname}`;
  return [
    {
      kind: 'command',
      argv: [method.program, '-a', name, '-m', '0', '-x'],
      undo: [method.program, '-d', name, '-f'],
      input: resolverLines(settings.dns),
    },
  ];
}

/** The route (and, for a /0 with Table = auto, bypass) steps of one family. */
export function routeSteps(settings: TunnelSettings, ifname: string, family: IpFamily, bypassTable: number | undefined): LinuxStep[] {
  const { table } = settings;
  if (table === 'off') return [];
  const ip = family === 4 ? settings.ipv4 : settings.ipv6;
  const f = familyFlag(family);
  // wg-quick adds the longest prefixes first; the sort is stable, so ties keep file order.
  const routes = [...ip.includedRoutes].sort((a, b) => b.prefixLength - a.prefixLength);
  const steps: LinuxStep[] = [];
  const route = (prefix: IpPrefix, tableArgs: string[], unless: boolean): LinuxStep => ({
    kind: 'command',
    argv: ['ip', f, 'route', 'add', prefix.text, 'dev', ifname, ...tableArgs],
    undo: ['ip', f, 'route', 'del', prefix.text, 'dev', ifname, ...tableArgs],
    ...(unless ? { unlessRouteOnDevice: prefix } : {}),
  });
  if (typeof table === 'number') {
    for (const prefix of routes) steps.push(route(prefix, ['table', String(table)], false));
    return steps;
  }
  const connected = connectedRoutes(ip.addresses);
  for (const prefix of routes) {
    if (prefix.prefixLength === 0) {
      if (bypassTable === undefined) throw new LinuxPlatformError('ERR_PLATFORM_ARG', 'a full tunnel with Table = auto needs a bypass table');
      const t = String(bypassTable);
      steps.push(
        {
          kind: 'command',
          argv: ['ip', f, 'rule', 'add', 'not', 'fwmark', t, 'table', t],
          undo: ['ip', f, 'rule', 'del', 'not', 'fwmark', t, 'table', t],
        },
        {
          kind: 'command',
          argv: ['ip', f, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0'],
          undo: ['ip', f, 'rule', 'del', 'table', 'main', 'suppress_prefixlength', '0'],
        },
        route(prefix, ['table', t], false),
      );
      if (family === 4) steps.push({ kind: 'sysctl', key: SRC_VALID_MARK, value: '1' });
    } else if (!connected.some((c) => covers(c, prefix))) {
      steps.push(route(prefix, [], true));
    }
  }
  return steps;
}

/** The steps that apply `settings` to interface `ifname`, in order. Pure. */
export function planLinux(settings: TunnelSettings, ifname: string, values: PlanValues): LinuxStep[] {
  checkIfname(ifname);
  const steps: LinuxStep[] = [];
  // The kill switch first: it is in place before the link comes up, and it stays.
  const killSwitch = killSwitchPolicy(settings);
  if (killSwitch !== undefined) {
    const fwmark = settings.fwmarkSource === 'config' ? settings.fwmark : values.bypassTable;
    const input = renderKillSwitch(killSwitch, { ifname, fwmark, attachedSubnets: values.attachedSubnets ?? [] });
    steps.push({ kind: 'nft', input, undo: KILL_SWITCH_UNDO, keep: true });
  }
  for (const ip of [settings.ipv4, settings.ipv6]) {
    for (const address of ip.addresses) {
      const f = familyFlag(address.family);
      steps.push({
        kind: 'command',
        argv: ['ip', f, 'address', 'add', address.text, 'dev', ifname],
        undo: ['ip', f, 'address', 'del', address.text, 'dev', ifname],
      });
    }
  }
  steps.push({ kind: 'link', argv: ['ip', 'link', 'set', 'mtu', String(values.mtu), 'up', 'dev', ifname], mtu: values.mtu });
  steps.push(...dnsSteps(settings, ifname, values.dns));
  const bypassTable = needsBypass(settings) ? values.bypassTable : undefined;
  steps.push(...routeSteps(settings, ifname, 4, bypassTable), ...routeSteps(settings, ifname, 6, bypassTable));
  return steps;
}

function oneLine(text: string): string {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .join(', ');
}

/** A step as one line of a dry run. */
export function renderStep(step: LinuxStep): string {
  switch (step.kind) {
    case 'command':
      return step.input === undefined ? renderCommand(step.argv) : `${renderCommand(step.argv)}  # stdin: ${oneLine(step.input)}`;
    case 'link':
      return renderCommand(step.argv);
    case 'sysctl':
      return renderCommand(['sysctl', '-q', '-w', `${step.key}=${step.value}`]);
    case 'resolv-conf':
      return `${renderCommand(['tee', step.path])}  # stdin: ${oneLine(step.content)} (the previous content is saved and put back on undo)`;
    case 'nft':
      return `nft -f -  # stdin: ${step.input.split('\n').find((l) => l.endsWith('{')) ?? 'a ruleset'} … (${step.input.split('\n').length - 1} lines)`;
  }
}

export interface DescribeOptions {
  /** Default: detected as applyLinux would (resolvconf on PATH, else the file). */
  readonly dns?: DnsMethod;
}

/**
 * The commands applyLinux would run for `settings` on a fresh interface `ifname`, for
 * `burrow up --dry-run`. Values that apply reads from the system are shown with their
 * first candidates: the bypass table is the fwmark (51820 unless FwMark is set; apply
 * takes the first free table from there) and the MTU is settings.mtu (apply may lower an
 * unconfigured one by wg-quick's rule, from the route to the endpoint).
 */
export function describeLinux(settings: TunnelSettings, ifname: string, opts: DescribeOptions = {}): string[] {
  const values: PlanValues = {
    bypassTable: settings.fwmark ?? DEFAULT_FWMARK,
    mtu: settings.mtu,
    dns: opts.dns ?? detectDnsMethod(),
  };
  return planLinux(settings, ifname, values).map(renderStep);
}
