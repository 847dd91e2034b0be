// Per-app routing on Linux: the AppRules of policy/perapp.ts enforced with cgroups, one
// nftables table, two policy rules per family and the resolver of runtime/resolver.ts.
//
//   cgroups   burrow/IFACE/APP for each app (`burrow exec --app APP` puts processes there)
//   sysctl    net.ipv4.conf.all.src_valid_mark=1: replies of marked flows pass the
//             reverse-path check with their mark, as for wg-quick's full tunnel
//   rules     ip rule fwmark M table M           the apps' marked flows: the tunnel's table
//             ip rule from TUNNEL-ADDRESS table M  what is bound to the tunnel's address
//                                                  (the resolver asking the tunnel's DNS)
//   nftables  table inet burrow (replaced whole, atomically, as the kill switch's is):
//     set app_NAME_v4/_v6  the addresses of the app's names, each with a timeout
//     dns       (nat, output)  the app's DNS (port 53, UDP and TCP) redirected to its
//                              resolver port on the loopback
//     route     (route, output) an app's NEW flow to an address in its set: ct mark M;
//                              every packet of a flow with ct mark M: meta mark M, so the
//                              route is chosen again, into table M. The conntrack mark
//                              stays with the flow after the set entry expires.
//     restore   (prerouting)   replies of those flows carry the mark too
//     source    (postrouting)  marked flows leaving by the tunnel take its address: the
//                              socket chose its source before the mark rerouted it
// An app's processes are its exec cgroup, its configured cgroups and its uids. Every
// change is journalled before it is made (UndoStack), and `down` removes all of it, also
// after a SIGKILL (the records are data: a cgroup, a sysctl, commands).

import type { IpPrefix } from '../../config/index.js';
import type { AppRule } from '../../policy/index.js';
import type { UndoStack } from '../undo.js';
import { BURROW_CGROUP, cgroup2Root, cgroupLevel, execCgroup, makeCgroup, nftWithCgroups } from './cgroup.js';
import { describeFailure, LinuxPlatformError, renderCommand } from './errors.js';
import type { Exec } from './exec.js';
import { checkTableOwner, KILL_SWITCH_TABLE, KILL_SWITCH_UNDO } from './killswitch.js';
import { describeUndo, type LinuxUndo, SRC_VALID_MARK } from './undo.js';

/** The per-app table is Burrow's one table: a tunnel has the kill switch or per-app routing, not both. */
export const PER_APP_TABLE = KILL_SWITCH_TABLE;
/** Entries an app's set may hold per family: a bound on what a resolver can be made to add. */
export const SET_SIZE = 65536;
export const DNS_PORT = 53;

export interface PerAppApp {
  readonly rule: AppRule;
  /** Where its resolver listens on 127.0.0.1 and ::1 (UDP and TCP). */
  readonly port: number;
}

export interface PerAppValues {
  readonly ifname: string;
  /** The mark of the apps' flows, which is also the table holding the tunnel's routes. */
  readonly mark: number;
  readonly apps: readonly PerAppApp[];
}

export const setName = (app: string, family: 4 | 6): string => `app_${app}_v${family}`;

/** The nftables expressions that recognise `app`'s processes, one per way. */
export function appMatches(ifname: string, app: AppRule): string[] {
  const cgroup = (path: string): string => `socket cgroupv2 level ${cgroupLevel(path)} "${path}"`;
  return [cgroup(execCgroup(ifname, app.name)), ...app.cgroups.map(cgroup), ...app.uids.map((uid) => `meta skuid ${uid}`)];
}

/** The whole table, as an `nft -f` file that replaces any table of the same name atomically. */
export function renderPerApp(v: PerAppValues): string {
  const m = `0x${v.mark.toString(16)}`;
  const lines = [
    `table inet ${PER_APP_TABLE}`,
    `delete table inet ${PER_APP_TABLE}`,
    `table inet ${PER_APP_TABLE} {`,
    `  comment "Burrow's per-app routing for ${v.ifname}: removed by burrow down ${v.ifname}"`,
  ];
  for (const { rule } of v.apps) {
    for (const family of [4, 6] as const) {
      lines.push(`  set ${setName(rule.name, family)} { type ipv${family}_addr; flags timeout; size ${SET_SIZE}; }`);
    }
  }
  lines.push('  chain dns {', '    type nat hook output priority -100; policy accept;');
  for (const { rule, port } of v.apps) {
    for (const match of appMatches(v.ifname, rule)) lines.push(`    ${match} meta l4proto { tcp, udp } th dport ${DNS_PORT} redirect to :${port}`);
  }
  lines.push('  }', '  chain route {', '    type route hook output priority mangle; policy accept;');
  for (const { rule } of v.apps) {
    for (const match of appMatches(v.ifname, rule)) {
      lines.push(`    ct state new ${match} ip daddr @${setName(rule.name, 4)} ct mark set ${m}`);
      lines.push(`    ct state new ${match} ip6 daddr @${setName(rule.name, 6)} ct mark set ${m}`);
    }
  }
  lines.push(
    `    ct mark ${m} meta mark set ${m}`,
    '  }',
    '  chain restore {',
    '    type filter hook prerouting priority mangle; policy accept;',
    `    ct mark ${m} meta mark set ${m}`,
    '  }',
    '  chain source {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    oifname "${v.ifname}" ct mark ${m} masquerade`,
    '  }',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

/** An `nft -f` file that adds addresses to an app's set, each with its timeout (an existing one gets the new timeout). */
export function renderSetAdd(app: string, entries: readonly { family: 4 | 6; address: string; timeout: number }[]): string {
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const items = entries.filter((e) => e.family === family).map((e) => `${e.address} timeout ${e.timeout}s`);
    if (items.length > 0) lines.push(`add element inet ${PER_APP_TABLE} ${setName(app, family)} { ${items.join(', ')} }`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

export interface ApplyPerAppOptions extends PerAppValues {
  /** The tunnel's own addresses: what the resolver binds to when it asks the tunnel's DNS. */
  readonly tunnelAddresses: readonly IpPrefix[];
  readonly exec: Exec;
  readonly stack: UndoStack<LinuxUndo>;
  readonly log?: (command: string) => void;
}

async function must(o: ApplyPerAppOptions, argv: readonly string[], input?: string): Promise<void> {
  o.log?.(input === undefined ? renderCommand(argv) : `${renderCommand(argv)}  # stdin: ${input.split('\n')[2] ?? ''} …`);
  const r = await o.exec(argv[0]!, argv.slice(1), input === undefined ? undefined : { input });
  if (r.exitCode !== 0) throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', describeFailure({ command: argv, ...r }), { failure: { command: argv, ...r } });
}

/**
 * Makes the cgroups, the sysctl, the rules and the table, each undo on `o.stack` (the
 * session's journal) before its change. The resolver must already listen on the ports.
 */
export async function applyPerApp(o: ApplyPerAppOptions): Promise<void> {
  const { stack, ifname, mark } = o;
  const change = (undo: LinuxUndo, make: () => Promise<unknown> | unknown): Promise<unknown> => stack.around(describeUndo(undo), undo, async () => make());
  await checkTableOwner(o.exec, ifname);
  const root = cgroup2Root();
  // The shared parent only if this tunnel made it, and removed only when empty.
  if (makeCgroup(root, BURROW_CGROUP)) await change({ kind: 'cgroup', path: BURROW_CGROUP, ifEmpty: true }, () => undefined);
  const own = `${BURROW_CGROUP}/${ifname}`;
  await change({ kind: 'cgroup', path: own, ifEmpty: false }, () => {
    makeCgroup(root, own);
    for (const { rule } of o.apps) makeCgroup(root, execCgroup(ifname, rule.name));
  });

  const before = await o.exec('sysctl', ['-n', SRC_VALID_MARK]);
  if (before.exitCode === 0 && before.stdout.trim() !== '1') {
    await change({ kind: 'sysctl', key: SRC_VALID_MARK, value: before.stdout.trim(), ownMark: mark }, () => must(o, ['sysctl', '-q', '-w', `${SRC_VALID_MARK}=1`]));
  }
  const t = String(mark);
  for (const family of [4, 6] as const) {
    const f = family === 4 ? '-4' : '-6';
    const rules = [['fwmark', t], ...o.tunnelAddresses.filter((a) => a.family === family).map((a) => ['from', a.text.split('/')[0]!])];
    for (const selector of rules) {
      await change({ kind: 'command', argv: ['ip', f, 'rule', 'del', ...selector, 'table', t] }, () => must(o, ['ip', f, 'rule', 'add', ...selector, 'table', t]));
    }
  }
  await change({ kind: 'command', argv: KILL_SWITCH_UNDO }, () => must(o, nftWithCgroups(root), renderPerApp(o)));
}
