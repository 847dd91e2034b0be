// DNS for a tunnel, as wg-quick sets it, through systemd-resolved where it runs, with a
// fallback for systems without resolvconf. The method is detected at each `up`.
//
// resolved:    where systemd-resolved runs (its varlink socket exists) and Burrow runs
//              in the host's own network namespace (resolved sees only that one's
//              interfaces): `resolvectl dns IF SERVERS`, `resolvectl domain IF ~. SEARCH`
//              (the routing domain "~." sends every name to the tunnel's servers) and
//              `resolvectl default-route IF yes`, as Mullvad's app does; undone with
//              `resolvectl revert IF`.
// resolvconf:  the servers and search domains are fed on standard input to
//              `resolvconf -a NAME -m 0 -x` (metric 0, exclusive: only this interface's
//              servers are used) and taken back with `resolvconf -d NAME -f`. NAME is the
//              interface name, prefixed as wg-quick does for Debian's resolvconf: when
//              /etc/resolvconf/interface-order exists and resolvconf is not a symlink (to
//              openresolv or systemd's resolvectl, which want the plain name), the first
//              `PREFIX*` pattern of that file gives "PREFIX." ("tun." on Debian), so that
//              the tunnel's servers rank first.
// file:        without resolvconf (a plain Debian install), /etc/resolv.conf is rewritten
//              in place (truncated and written, never replaced: it may be a bind mount,
//              as `ip netns exec` and containers make it) after its content is saved; undo
//              writes the saved content back, unless someone has rewritten the file since,
//              in which case theirs is newer and is left alone.
//
// Both read and write through the Exec (cat, tee), so they act on the resolv.conf that
// the Exec's commands see: inside `ip netns exec NAME` that is /etc/netns/NAME/resolv.conf
// when that file exists, and the host's when it does not. Create it first.

import { accessSync, constants, existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TunnelDnsSettings } from '../../policy/index.js';

export type DnsMethod =
  | { readonly kind: 'resolved'; readonly program: string }
  | { readonly kind: 'resolvconf'; readonly program: string; readonly interfacePrefix: string }
  | { readonly kind: 'file'; readonly path: string };

export const RESOLV_CONF = '/etc/resolv.conf';
const INTERFACE_ORDER = '/etc/resolvconf/interface-order';

function findProgram(name: string): string | undefined {
  const path = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** wg-quick's resolvconf_iface_prefix: "tun." with Debian's resolvconf, "" otherwise. */
function interfacePrefix(program: string): string {
  try {
    if (lstatSync(program).isSymbolicLink()) return '';
    for (const line of readFileSync(INTERFACE_ORDER, 'utf8').split('\n')) {
      const match = /^([A-Za-z0-9-]+)\*$/.exec(line.trim());
      if (match !== null) return `${match[1]}.`;
    }
  } catch {
    // no interface-order file: openresolv or no prefix scheme
  }
  return '';
}

const RESOLVED_SOCKET = '/run/systemd/resolve/io.systemd.Resolve';

/** True in the host's own network namespace, the only one systemd-resolved serves. */
function inInitialNetns(): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync('/proc/1/ns/net');
  } catch {
    return false;
  }
}

/** systemd-resolved where it runs (and serves this namespace), else resolvconf when it is on PATH, else the file. */
export function detectDnsMethod(): DnsMethod {
  const resolvectl = findProgram('resolvectl');
  if (resolvectl !== undefined && existsSync(RESOLVED_SOCKET) && inInitialNetns()) return { kind: 'resolved', program: resolvectl };
  const program = findProgram('resolvconf');
  if (program === undefined) return { kind: 'file', path: RESOLV_CONF };
  return { kind: 'resolvconf', program, interfacePrefix: interfacePrefix(program) };
}

/** The resolver lines wg-quick hands to resolvconf: one nameserver each, one search line. */
export function resolverLines(dns: TunnelDnsSettings): string {
  let text = dns.servers.map((server) => `nameserver ${server}\n`).join('');
  if (dns.searchDomains.length > 0) text += `search ${dns.searchDomains.join(' ')}\n`;
  return text;
}

/** The whole resolv.conf the file method writes. */
export function resolvConfText(dns: TunnelDnsSettings, ifname: string): string {
  return `# Written by Burrow for ${ifname}; the previous content is put back when the tunnel goes down.\n${resolverLines(dns)}`;
}
