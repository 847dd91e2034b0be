// Burrow's tunnel (src/runtime/tunnel.ts) in a process of its own, started inside a test
// namespace by burrow.ts: the TUN, the UDP socket and the control socket all live in that
// namespace, and the engine's clock is one the test can move forward.
//
//   argv[2]  a 0600 JSON file with the configuration (keys included); see ChildConfig
//   stdin    lines "advance MS": move the engine's clock MS milliseconds forward
//   stdout   lines "ready PORT", "log TEXT" (every engine event), "advanced TOTAL_MS",
//            "error TEXT"
//
// It stops on SIGTERM or SIGINT, when stdin closes (the test process has gone), or when
// its control socket is removed, and the kernel removes the TUN when its fd closes.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { decodeKey } from '../../../crypto/keys.js';
import { Tunnel } from '../../../src/runtime/tunnel.js';
import { parseUapiAllowedIp, parseUapiEndpoint, UapiServer } from '../../../src/runtime/uapi.js';
import { uapiSocketPath } from '../../../src/runtime/uapi-client.js';

export interface ChildPeer {
  publicKey: string;
  presharedKey?: string;
  /** a.b.c.d:port or [v6]:port */
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepalive?: number;
}

export interface ChildConfig {
  ifname: string;
  privateKey: string;
  listenPort: number;
  mtu: number;
  /** CIDRs for the TUN; IPv6 added with nodad. */
  addresses: string[];
  peers: ChildPeer[];
}

const say = (line: string): void => {
  process.stdout.write(`${line.replace(/\n/g, ' ')}\n`);
};

async function main(): Promise<void> {
  const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ChildConfig;
  let skew = 0;
  const now = (): number => performance.now() + skew;

  const tunnel = await Tunnel.start({
    ifname: config.ifname,
    privateKey: decodeKey(config.privateKey),
    listenPort: config.listenPort,
    fwmark: 0,
    mtu: config.mtu,
    log: (line) => say(`log ${line}`),
    now,
    peers: config.peers.map((p) => ({
      publicKey: decodeKey(p.publicKey),
      presharedKey: p.presharedKey === undefined ? null : decodeKey(p.presharedKey),
      ...(p.endpoint === undefined ? {} : { endpoint: parseUapiEndpoint(p.endpoint) }),
      persistentKeepalive: p.persistentKeepalive ?? 0,
      allowedIPs: p.allowedIPs.map(parseUapiAllowedIp),
    })),
  });

  let uapi: UapiServer | undefined;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say(`log stopping: ${why}`);
    await uapi?.close().catch(() => undefined);
    tunnel.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  try {
    const ip = (args: string[]): void => {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    };
    ip(['link', 'set', 'dev', config.ifname, 'mtu', String(config.mtu)]);
    for (const cidr of config.addresses) ip(['addr', 'add', cidr, 'dev', config.ifname, ...(cidr.includes(':') ? ['nodad'] : [])]);
    ip(['link', 'set', 'dev', config.ifname, 'up']);

    let fwmark = 0;
    uapi = await UapiServer.listen(uapiSocketPath(config.ifname), {
      device: tunnel.device,
      now: () => tunnel.now(),
      listenPort: () => tunnel.udp.port,
      setListenPort: (port: number) => tunnel.udp.rebind(port),
      fwmark: () => fwmark,
      setFwmark: async (mark: number) => {
        tunnel.udp.setMark(mark);
        fwmark = mark;
      },
      changed: () => tunnel.rearm(),
    }, { log: (line) => say(`log uapi: ${line}`), onSocketRemoved: () => void stop('control socket removed') });
  } catch (e) {
    say(`error ${(e as Error).message}`);
    await stop('setup failed');
    return;
  }

  createInterface({ input: process.stdin })
    .on('line', (line) => {
      const m = /^advance (\d+)$/.exec(line.trim());
      if (m === null) {
        say(`error unknown command ${JSON.stringify(line)}`);
        return;
      }
      skew += Number(m[1]);
      tunnel.rearm(); // the timers now due run at once
      say(`advanced ${skew}`);
    })
    .on('close', () => void stop('stdin closed'));

  say(`ready ${tunnel.udp.port}`);
}

main().catch((e: unknown) => {
  say(`error ${(e as Error)?.stack ?? String(e)}`);
  process.exit(1);
});
