// `burrow show [IFACE] [--json]`: what `wg show` prints, read over the control socket.

import { nodeDh } from '../runtime/node-crypto.js';
import { isLinuxUndo } from '../platform/linux/undo.js';
import { readJournal } from '../runtime/journal.js';
import { createExec } from '../platform/linux/exec.js';
import { PER_APP_TABLE, setName } from '../platform/linux/perapp.js';
import { listInterfaces, parseGetReply, type UapiInterface, uapiRequest } from '../runtime/uapi-client.js';
import { formatRegistryStatus, readRegistryStatus, type ShownRegistry } from '../../server/registry-status.js';

/** The kill switch's state as `burrow show` reports it. */
export interface KillSwitchStatus {
  readonly on: true;
  /** True while no peer has a session that can carry traffic: everything is dropped. */
  readonly blocking: boolean;
  /** "no handshake for 45 s", "no handshake yet"; absent while not blocking. */
  readonly reason?: string;
}

/** One app of per-app routing: its domains, and the addresses its set routes now. */
export interface PerAppStatus {
  readonly name: string;
  readonly domains: readonly string[];
  /** Live entries of its nftables sets; undefined when they cannot be read. */
  readonly entries: { readonly v4: number; readonly v6: number } | undefined;
}

/** A server's peer registry: where, and whether it can be reached (the gateway serves the peers it knows meanwhile). */
export type ShownInterface = UapiInterface & { killSwitch?: KillSwitchStatus; perApp?: PerAppStatus[]; registry?: ShownRegistry };

/** A session's keys expire REJECT_AFTER_TIME (180 s) after its handshake: then nothing can pass. */
const REJECT_AFTER_SECONDS = 180;

export function killSwitchStatus(i: UapiInterface, nowSeconds = Date.now() / 1000): KillSwitchStatus {
  const latest = Math.max(0, ...i.peers.map((p) => p.lastHandshake));
  if (latest === 0) return { on: true, blocking: true, reason: 'no handshake yet' };
  const age = Math.floor(nowSeconds - latest);
  return age < REJECT_AFTER_SECONDS ? { on: true, blocking: false } : { on: true, blocking: true, reason: `no handshake for ${age} s` };
}

export async function readInterface(ifname: string): Promise<ShownInterface> {
  const reply = await uapiRequest(ifname, 'get=1\n\n');
  const shown: ShownInterface = parseGetReply(ifname, reply, (k) => nodeDh.publicKey(k));
  let killSwitch = false;
  let apps: readonly { name: string; domains: readonly string[] }[] = [];
  try {
    const journal = readJournal(ifname, isLinuxUndo);
    killSwitch = journal?.killSwitch === true;
    apps = journal?.perApp ?? [];
  } catch {
    // a journal this version cannot read says nothing about the kill switch
  }
  if (killSwitch) shown.killSwitch = killSwitchStatus(shown);
  const registry = readRegistryStatus(ifname);
  if (registry !== undefined) shown.registry = registry;
  if (apps.length > 0) shown.perApp = await Promise.all(apps.map(async (a) => ({ name: a.name, domains: a.domains, entries: await setEntries(a.name) })));
  return shown;
}

/** The number of elements of an app's two sets now (expired ones are gone). */
async function setEntries(app: string): Promise<{ v4: number; v6: number } | undefined> {
  const exec = createExec();
  const count = async (family: 4 | 6): Promise<number | undefined> => {
    const r = await exec('nft', ['-j', 'list', 'set', 'inet', PER_APP_TABLE, setName(app, family)]);
    if (r.exitCode !== 0) return undefined;
    const set = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((x) => x.set !== undefined)?.set;
    return set?.elem?.length ?? 0;
  };
  const [v4, v6] = await Promise.all([count(4), count(6)]);
  return v4 === undefined || v6 === undefined ? undefined : { v4, v6 };
}

export async function readInterfaces(ifname?: string): Promise<ShownInterface[]> {
  const names = ifname === undefined ? listInterfaces() : [ifname];
  return Promise.all(names.map(readInterface));
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "1 minute, 5 seconds ago", as wg prints it. */
export function ago(unixSeconds: number, nowSeconds = Date.now() / 1000): string {
  let left = Math.max(0, Math.floor(nowSeconds - unixSeconds));
  if (left === 0) return 'Now';
  const parts: string[] = [];
  for (const [size, unit] of [[365 * 86400, 'year'], [86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']] as const) {
    if (left >= size) {
      parts.push(plural(Math.floor(left / size), unit));
      left %= size;
    }
  }
  return `${parts.join(', ')} ago`;
}

/** Bytes as wg prints them: B, KiB, MiB, GiB, TiB with two decimals. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)} ${units[i]}`;
}

export function formatInterface(i: ShownInterface): string {
  const lines = [`interface: ${i.name}`];
  if (i.publicKey) lines.push(`  public key: ${i.publicKey}`, '  private key: (hidden)');
  if (i.listenPort) lines.push(`  listening port: ${i.listenPort}`);
  if (i.fwmark) lines.push(`  fwmark: 0x${i.fwmark.toString(16)}`);
  if (i.registry) lines.push(`  ${formatRegistryStatus(i.registry)}`);
  if (i.killSwitch) lines.push(`  kill switch: on, ${i.killSwitch.blocking ? `blocking: ${i.killSwitch.reason}` : 'not blocking (the tunnel is up)'}`);
  for (const a of i.perApp ?? []) {
    const live = a.entries === undefined ? 'set not readable' : `${plural(a.entries.v4 + a.entries.v6, 'live address')} (${a.entries.v4} IPv4, ${a.entries.v6} IPv6)`;
    lines.push(`  app ${a.name}: ${a.domains.join(', ')}; ${live}`);
  }
  for (const p of i.peers) {
    lines.push('', `peer: ${p.publicKey}`);
    if (p.hasPresharedKey) lines.push('  preshared key: (hidden)');
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIPs.length > 0 ? p.allowedIPs.join(', ') : '(none)'}`);
    if (p.lastHandshake > 0) lines.push(`  latest handshake: ${ago(p.lastHandshake)}`);
    if (p.rxBytes > 0 || p.txBytes > 0) lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive > 0) lines.push(`  persistent keepalive: every ${plural(p.persistentKeepalive, 'second')}`);
  }
  return `${lines.join('\n')}\n`;
}
