// `npm run bench -- loop`: a routing loop with a session up. The device under test
// (burrow-go, then Debian's wireguard-go, alternating, fresh namespaces each run) has a
// session with a wireguard-go peer; then its peer's endpoint is moved to an address that
// is routed only through the tunnel itself, and five pings go in. Measured over the same
// window: the bytes the kernel routed into the tunnel (what the daemon must handle) and
// the daemon's CPU time. The kernel's WireGuard drops such a packet at once ("routing
// loop"); without a session both userspace implementations send only the odd initiation
// (test/netns/behaviour.test.ts checks that). This measures the case with a session.

import { keys } from '../test/support/burrow.js';
import { createPair } from '../test/support/netns.js';
import { formatEndpoint } from '../test/support/wireguard-go.js';
import { type Implementation, IMPLEMENTATIONS, startDevice } from '../test/netns/behaviour/device.js';
import { ping } from '../test/netns/behaviour/net.js';
import { median, type Rate } from './lib.js';

const RUNS = 3;
const WINDOW_EXTRA_MS = 2_000;

interface LoopRun {
  bytes: number;
  packets: number;
  cpuSeconds: number;
  windowSeconds: number;
}

async function loopOnce(impl: Implementation): Promise<LoopRun> {
  const pair = await createPair({ prefix: 'bbl' });
  try {
    const [dutKeys, refKeys] = [keys(), keys()];
    const ref = await startDevice(pair.b, 'wireguard-go', {
      privateKey: refKeys.priv, listenPort: 51821, addresses: ['192.0.2.2/24'], peers: [{ publicKey: dutKeys.pub, allowedIPs: ['192.0.2.1/32'] }],
    });
    const dut = await startDevice(pair.a, impl, {
      privateKey: dutKeys.priv, listenPort: 51820, addresses: ['192.0.2.1/24'],
      peers: [{ publicKey: refKeys.pub, endpoint: formatEndpoint(pair.bAddr4, 51821), allowedIPs: ['192.0.2.0/24'] }],
    });
    try {
      if ((await ping(pair.a, '192.0.2.2')) !== 3) throw new Error(`${impl}: no session before the loop`);
      // The endpoint is now the peer's inner address: reachable only through this tunnel.
      await dut.wg(['set', dut.ifname, 'peer', refKeys.pub, 'endpoint', formatEndpoint('192.0.2.2', 51821)]);
      const [cpu0, link0, t0] = [dut.cpuSeconds(), await dut.linkStats(), Date.now()];
      await ping(pair.a, '192.0.2.2', { count: 5, interval: 0.5, wait: 1 });
      await new Promise((r) => setTimeout(r, WINDOW_EXTRA_MS));
      const link1 = await dut.linkStats();
      return {
        bytes: link1.txBytes - link0.txBytes,
        packets: link1.txPackets - link0.txPackets,
        cpuSeconds: dut.cpuSeconds() - cpu0,
        windowSeconds: (Date.now() - t0) / 1000,
      };
    } finally {
      await dut.stop();
      await ref.stop();
    }
  } finally {
    await pair.destroy();
  }
}

export async function runLoopBench(): Promise<void> {
  const runs = new Map<Implementation, LoopRun[]>(IMPLEMENTATIONS.map((impl) => [impl, []]));
  for (let i = 0; i < RUNS; i++) for (const impl of IMPLEMENTATIONS) runs.get(impl)!.push(await loopOnce(impl));
  const rate = (impl: Implementation, name: string, of: (r: LoopRun) => number): Rate => {
    const xs = runs.get(impl)!.map(of);
    return { name, perSecond: median(xs), runs: xs };
  };
  console.log('\nRouting loop with a session: 5 pings into a tunnel whose endpoint is routed through itself');
  for (const [what, of, unit] of [
    ['routed into the tunnel', (r: LoopRun) => r.bytes / 1e6 / r.windowSeconds, 'MB/s'],
    ['packets into the tunnel', (r: LoopRun) => r.packets / r.windowSeconds, 'packets/s'],
    ["daemon's CPU", (r: LoopRun) => r.cpuSeconds / r.windowSeconds, 'CPU s/s'],
  ] as const) {
    const reference = rate('wireguard-go', 'wireguard-go', of);
    const burrow = rate('burrow-go', 'burrow-go', of);
    const show = (r: Rate): string => `${r.perSecond.toFixed(2)} ${unit} (runs ${r.runs.map((x) => x.toFixed(2)).join(' / ')})`;
    console.log(`  ${what}: burrow-go ${show(burrow)}, wireguard-go ${show(reference)}; ratio ${(burrow.perSecond / reference.perSecond).toFixed(2)}x`);
  }
}
