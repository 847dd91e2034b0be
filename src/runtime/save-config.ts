// SaveConfig = true: at down, the configuration file is rewritten with the running state,
// as wg-quick's save_config does: what `wg showconf` prints (the running private key,
// listen port, fwmark and every peer as it is now, `wg set` changes included) under the
// file's own wg-quick keys (Address, DNS, MTU, Table, the hooks, SaveConfig and Burrow's
// keys). Written atomically (journal.ts's writeFileAtomic): the old file or the new one,
// never half of either, and never through a symlink planted at the temporary name.

import { type Config, formatConfig, makePrefix, type PeerConfig } from '../config/index.js';
import { writeFileAtomic } from './journal.js';
import type { Tunnel } from './tunnel.js';

/** The file's wg-quick keys with the running wg state in place of the file's. */
export function runningConfig(config: Config, tunnel: Tunnel): Config {
  const device = tunnel.device;
  const peers: PeerConfig[] = device.peerStatus(tunnel.now()).map((s) => ({
    publicKey: Uint8Array.from(Buffer.from(s.publicKey, 'base64')),
    ...(s.presharedKey ? { presharedKey: s.presharedKey } : {}),
    ...(s.endpoint ? { endpoint: { host: s.endpoint.host, port: s.endpoint.port } } : {}),
    ...(s.persistentKeepalive ? { persistentKeepalive: s.persistentKeepalive } : {}),
    allowedIPs: s.allowedIPs.map((a) => makePrefix(a.address.length === 4 ? 4 : 6, a.address, a.cidr)),
  }));
  const fwMark = tunnel.udp.fwmark;
  return {
    interface: {
      ...config.interface,
      privateKey: device.privateKey,
      listenPort: tunnel.udp.port,
      ...(fwMark === 0 ? { fwMark: undefined } : { fwMark }),
    },
    peers,
  };
}

/** Writes the running state to `path` (0600, atomically). The key copies are wiped afterwards. */
export function saveConfig(path: string, config: Config, tunnel: Tunnel): void {
  const running = runningConfig(config, tunnel);
  try {
    writeFileAtomic(path, formatConfig(running), 0o600);
  } finally {
    running.interface.privateKey.fill(0);
    for (const p of running.peers) p.presharedKey?.fill(0);
  }
}
