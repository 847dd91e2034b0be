// `burrow show [IFACE] [--json]`: what `wg show` prints, read over the control socket.

import { nodeDh } from '../runtime/node-crypto.js';
import { isLinuxUndo } from '../platform/linux/undo.js';
import { readJournal } from '../runtime/journal.js';
import { listInterfaces, parseGetReply, type UapiInterface, uapiRequest } from '../runtime/uapi-client.js';

/** The kill switch's state as `burrow show` reports it. */
export interface KillSwitchStatus {
  readonly on: true;
  /** True while no peer has a session that can carry traffic: everything is dropped. */
  readonly blocking: boolean;
  /** "no handshake for 45 s", "no handshake yet"; absent while not blocking. */
  readonly reason?: string;
}

export type ShownInterface = UapiInterface & { killSwitch?: KillSwitchStatus };

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
  try {
    killSwitch = readJournal(ifname, isLinuxUndo)?.killSwitch === true;
  } catch {
    // a journal this version cannot read says nothing about the kill switch
  }
  if (killSwitch) shown.killSwitch = killSwitchStatus(shown);
  return shown;
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
  if (i.killSwitch) lines.push(`  kill switch: on, ${i.killSwitch.blocking ? `blocking: ${i.killSwitch.reason}` : 'not blocking (the tunnel is up)'}`);
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
