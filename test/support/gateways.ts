// Two gateways of one shared registry, for test/netns/gateways.test.ts and
// bench/gateways.ts: six hosts in namespaces around one router (IPv4 only, addresses
// from the benchmarking range 198.18.0.0/15):
//
//   gwA 198.18.1.2 ─┐            ┌─ internet 198.18.3.2
//   gwB 198.18.2.2 ─┼─ router ───┤
//   cA  198.18.4.2 ─┘            └─ cB 198.18.5.2
//
// Each gateway forwards and masquerades out of its up0 (burrow server up does that);
// the clients reach the gateways only through the router. PostgreSQL runs on the host,
// reached by every namespace through its Unix socket (test/support/postgres.ts).
import type { Netns, NetnsScope } from './netns.js';

export const GW = {
  gwA: '198.18.1.2',
  gwB: '198.18.2.2',
  internet: '198.18.3.2',
  cA: '198.18.4.2',
  cB: '198.18.5.2',
} as const;

export interface Gateways {
  readonly router: Netns;
  readonly gwA: Netns;
  readonly gwB: Netns;
  readonly internet: Netns;
  readonly cA: Netns;
  readonly cB: Netns;
}

/** Builds the six hosts; everything is destroyed with `scope`. */
export async function buildGateways(scope: NetnsScope): Promise<Gateways> {
  const [router, gwA, gwB, internet, cA, cB] = (await Promise.all(['gr', 'ga', 'gb', 'gi', 'gca', 'gcb'].map((p) => scope.create(p)))) as [Netns, Netns, Netns, Netns, Netns, Netns];
  await router.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  const hosts: [Netns, string, number][] = [[gwA, GW.gwA, 1], [gwB, GW.gwB, 2], [internet, GW.internet, 3], [cA, GW.cA, 4], [cB, GW.cB, 5]];
  for (const [ns, address, n] of hosts) {
    const rIf = `r${n}`;
    await router.exec('ip', ['link', 'add', rIf, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ns.name]);
    await router.exec('ip', ['address', 'add', `198.18.${n}.1/24`, 'dev', rIf]);
    await router.exec('ip', ['link', 'set', rIf, 'up']);
    await ns.exec('ip', ['address', 'add', `${address}/24`, 'dev', 'up0']);
    await ns.exec('ip', ['link', 'set', 'up0', 'up']);
    await ns.exec('ip', ['route', 'add', 'default', 'via', `198.18.${n}.1`]);
  }
  return { router, gwA, gwB, internet, cA, cB };
}

/** A client configuration printed by add-peer, pointed at another gateway (only the endpoint differs). */
export const viaGateway = (config: string, address: string): string => config.replace(/^Endpoint = .*:(\d+)$/m, `Endpoint = ${address}:$1`);
