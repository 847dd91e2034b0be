// /metrics in Prometheus's text exposition format (version 0.0.4). The WireGuard series
// follow prometheus_wireguard_exporter's names and labels (interface, public_key,
// allowed_ips; and name, the peer's name in the registry), so its dashboards work:
//
//   wireguard_sent_bytes_total{…}               counter: bytes sent to the peer by the
//                                               running device (as `wg show … transfer`;
//                                               from zero at each start of the server)
//   wireguard_received_bytes_total{…}           counter: bytes received from the peer
//   wireguard_latest_handshake_seconds{…}       gauge: UNIX time of the latest handshake,
//                                               0 before the first
//   wireguard_latest_handshake_delay_seconds{…} gauge: seconds since the latest
//                                               handshake (peers that had one)
//   wireguard_peers_total{interface}            gauge: peers loaded on the device (the
//                                               enabled ones)
//   burrow_dropped_packets_total{interface,reason}  counter: packets the engine refused,
//                                               by reason (tunnel/device.ts's DropReason)
//   burrow_registry_up{interface}               gauge: 1 while the registry (the file, or
//                                               the PostgreSQL shared by the gateways) can
//                                               be reached, 0 while the gateway serves the
//                                               peers it knows without it
//
// docs/admin.md says the same for operators.

import type { UapiInterface } from '../../src/runtime/uapi-client.js';

/** A label value as the format requires: backslash, double quote and newline escaped. */
const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const labels = (l: Record<string, string>): string => `{${Object.entries(l).map(([k, v]) => `${k}="${label(v)}"`).join(',')}}`;

export interface MetricsInput {
  readonly ifname: string;
  readonly device: UapiInterface | undefined;
  /** Peer names by public key (base64). */
  readonly names: ReadonlyMap<string, string>;
  readonly drops: Readonly<Record<string, number>>;
  /** Whether the registry can be reached now. */
  readonly registryUp: boolean;
  /** UNIX seconds. */
  readonly now: number;
}

export function renderMetrics(m: MetricsInput): string {
  const peers = m.device?.peers ?? [];
  const out: string[] = [];
  const family = (name: string, type: 'counter' | 'gauge', help: string, rows: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of rows) out.push(`${name}${labels(l)} ${v}`);
  };
  const peerLabels = (p: (typeof peers)[number]) => ({
    interface: m.ifname,
    public_key: p.publicKey,
    allowed_ips: p.allowedIPs.join(','),
    name: m.names.get(p.publicKey) ?? '',
  });
  family('wireguard_sent_bytes_total', 'counter', 'Bytes sent to the peer since the server started', peers.map((p) => [peerLabels(p), p.txBytes]));
  family('wireguard_received_bytes_total', 'counter', 'Bytes received from the peer since the server started', peers.map((p) => [peerLabels(p), p.rxBytes]));
  family('wireguard_latest_handshake_seconds', 'gauge', 'UNIX time of the latest handshake with the peer (0: none yet)', peers.map((p) => [peerLabels(p), p.lastHandshake]));
  family(
    'wireguard_latest_handshake_delay_seconds',
    'gauge',
    'Seconds since the latest handshake with the peer',
    peers.filter((p) => p.lastHandshake > 0).map((p) => [peerLabels(p), Math.max(0, m.now - p.lastHandshake)]),
  );
  family('wireguard_peers_total', 'gauge', 'Peers loaded on the interface (the enabled ones)', m.device === undefined ? [] : [[{ interface: m.ifname }, peers.length]]);
  family(
    'burrow_dropped_packets_total',
    'counter',
    "Packets Burrow's engine refused since the server started, by reason",
    Object.entries(m.drops)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([reason, n]) => [{ interface: m.ifname, reason }, n]),
  );
  family('burrow_registry_up', 'gauge', 'Whether the peer registry can be reached (0: serving the peers known without it)', [[{ interface: m.ifname }, m.registryUp ? 1 : 0]]);
  return `${out.join('\n')}\n`;
}
