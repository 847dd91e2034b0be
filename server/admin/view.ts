// What the admin page and the usage tracker see of the server: the registry as the
// daemon last read it (follow.ts: read again after every change, kept while the store is
// unreachable), and the running device's peers (in the same process, as `wg show` would
// report them), with the totals that combine the two (peers.ts's peerStatus).

import { encodeKey } from '../../crypto/keys.js';
import { formatIpv4, formatIpv6 } from '../../src/config/ip.js';
import type { Session } from '../../src/runtime/session.js';
import type { UapiInterface } from '../../src/runtime/uapi-client.js';
import { formatEndpoint } from '../../tunnel/endpoint.js';
import { peerStatus, type PeerStatus, readSnapshot } from '../peers.js';
import type { RegistryFollower } from '../follow.js';
import type { RegistryData } from '../registry.js';
import type { RegistryStatus } from '../store.js';

export interface ServerView {
  readonly ifname: string;
  /** The registry: changes made through it are read back (and applied) at once. */
  readonly registry: RegistryFollower;
  /** The running device as a control-socket `get` reports it; undefined before it is up. */
  device(): UapiInterface | undefined;
  /** The engine's drop counters by reason. */
  drops(): Readonly<Record<string, number>>;
  /** The registry as last read (after every change to it). */
  data(): RegistryData;
  /** Whether the registry can be reached now. */
  registryStatus(): RegistryStatus;
  /** Every peer with its totals (registry + the device's counts since the last save). */
  status(): { data: RegistryData; list: PeerStatus[] };
}

const prefixText = (p: { address: Uint8Array; cidr: number }): string => `${p.address.length === 4 ? formatIpv4(p.address) : formatIpv6(p.address)}/${p.cidr}`;

/** The view of a server whose session is `session()` (undefined until it is up). */
export function serverView(ifname: string, registry: RegistryFollower, session: () => Session | undefined): ServerView {
  const data = (): RegistryData => registry.data();
  const device = (): UapiInterface | undefined => {
    const s = session();
    if (s === undefined) return undefined;
    const d = s.tunnel.device;
    return {
      name: ifname,
      publicKey: undefined,
      listenPort: 0,
      fwmark: 0,
      peers: d.peerStatus(s.tunnel.now()).map((p) => ({
        publicKey: p.publicKey,
        hasPresharedKey: p.presharedKey !== undefined,
        endpoint: p.endpoint === undefined ? undefined : formatEndpoint(p.endpoint),
        allowedIPs: p.allowedIPs.map(prefixText),
        lastHandshake: p.lastHandshake > 0 ? Math.floor(p.lastHandshake / 1000) : 0,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepalive,
      })),
    };
  };
  return {
    ifname,
    registry,
    device,
    drops: () => ({ ...(session()?.tunnel.device.drops ?? {}) }),
    data,
    registryStatus: () => registry.status(),
    status() {
      // Registry, counters and snapshot read with no await between them: the daemon's
      // save (which rewrites the last two) cannot fall in between.
      const d = data();
      const list = peerStatus(d, device(), readSnapshot(ifname));
      return { data: d, list };
    },
  };
}

export const keyOf = (r: { peer: { publicKey: Uint8Array } }): string => encodeKey(r.peer.publicKey);
