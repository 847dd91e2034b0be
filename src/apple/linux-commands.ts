// What native/jsc-host runs with `ip` to apply the TunnelSettings on Linux, as the Mac's
// system applies NEPacketTunnelNetworkSettings for the extension: the addresses, the MTU
// and link up, and a route into the tunnel for each included route. A /0 (a full tunnel)
// needs policy routing around the tunnel's own UDP, which is platform/linux's work for
// `burrow up`; the host refuses it rather than cut off its own endpoint. DNS is left to
// the system here (on a Mac, NEDNSSettings carries it).

import type { TunnelSettings } from '../policy/index.js';

type Serialized = { settings: TunnelSettings };

export function linuxCommands(started: string | Serialized, ifname: string): string[][] {
  const s = (typeof started === 'string' ? JSON.parse(started) as Serialized : started).settings;
  const out: string[][] = [];
  for (const a of [...s.ipv4.addresses, ...s.ipv6.addresses]) out.push(['address', 'add', a.text, 'dev', ifname]);
  out.push(['link', 'set', 'dev', ifname, 'mtu', String(s.mtu), 'up']);
  for (const r of [...s.ipv4.includedRoutes, ...s.ipv6.includedRoutes]) {
    if (r.prefixLength === 0) throw new Error(`${r.text}: a full tunnel needs policy routing; use burrow up for it`);
    out.push(['route', 'replace', r.text, 'dev', ifname]);
  }
  return out;
}
