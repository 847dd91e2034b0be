// The test topology of docs/testing: five hosts in namespaces, joined by veth links.
//
//   lan (LAN neighbour) ── client ── router ── server
//   192.168.77.2           │            └──── internet (documentation addresses only)
//
//   client  up0  198.51.100.2/24   2001:db8:100::2/64   default via the router
//           lan0 192.168.77.1/24   (a second link, to the neighbour)
//   router  rc   198.51.100.1/24   2001:db8:100::1/64   forwards between its links
//           rs   203.0.113.1/24    2001:db8:113::1/64
//           ri   192.0.2.1/24      2001:db8:80::1/64
//   server  up0  203.0.113.2/24 (and .3)   2001:db8:113::2/64   default via the router;
//                forwards and masquerades what comes from its tunnel
//   internet up0 192.0.2.80/24     2001:db8:80::80/64   default via the router
//
// The router counts, in one named nftables counter, every packet from the client that
// is not UDP to the server's tunnel port, nor ICMPv6 link upkeep: `leaks()`.
// Everything lives in namespaces this module creates, destroyed with the scope.
import type { ChildProcess } from 'node:child_process';
import { type Netns, type NetnsScope } from './netns.js';

export const ADDR = {
  clientUp4: '198.51.100.2',
  clientUp6: '2001:db8:100::2',
  routerC4: '198.51.100.1',
  routerC6: '2001:db8:100::1',
  clientLan4: '192.168.77.1',
  lan4: '192.168.77.2',
  routerS4: '203.0.113.1',
  routerS6: '2001:db8:113::1',
  server4: '203.0.113.2',
  server4b: '203.0.113.3',
  server6: '2001:db8:113::2',
  routerI4: '192.0.2.1',
  routerI6: '2001:db8:80::1',
  internet4: '192.0.2.80',
  internet6: '2001:db8:80::80',
} as const;

export const TUNNEL_PORT = 51820;

export interface Topology {
  readonly client: Netns;
  readonly lan: Netns;
  readonly router: Netns;
  readonly server: Netns;
  readonly internet: Netns;
  /** Packets the router saw from the client that were not the tunnel (nor link upkeep). */
  leaks(): Promise<number>;
}

async function link(a: Netns, aIf: string, aAddrs: string[], b: Netns, bIf: string, bAddrs: string[]): Promise<void> {
  await a.exec('ip', ['link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  for (const [ns, dev, addrs] of [[a, aIf, aAddrs], [b, bIf, bAddrs]] as const) {
    for (const addr of addrs) await ns.exec('ip', ['address', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : [])]);
    await ns.exec('ip', ['link', 'set', dev, 'up']);
  }
}

const ROUTER_WATCH = `table inet watch {
  counter leaks { }
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "rc" ip daddr { ${ADDR.server4}, ${ADDR.server4b} } udp dport ${TUNNEL_PORT} accept
    iifname "rc" ip6 daddr ${ADDR.server6} udp dport ${TUNNEL_PORT} accept
    iifname "rc" counter name leaks
  }
  chain input {
    type filter hook input priority -10; policy accept;
    iifname "rc" icmpv6 type { 133, 134, 135, 136, 143 } accept
    iifname "rc" counter name leaks
  }
}
`;

const SERVER_NAT = `table ip burrowtest_nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "up0" masquerade; }
}
table ip6 burrowtest_nat6 {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "up0" masquerade; }
}
`;

/** Builds the five hosts and their links; everything is destroyed with `scope`. */
export async function buildTopology(scope: NetnsScope): Promise<Topology> {
  const [client, lan, router, server, internet] = (await Promise.all(['tc', 'tl', 'tr', 'ts', 'ti'].map((p) => scope.create(p)))) as [Netns, Netns, Netns, Netns, Netns];
  await link(client, 'up0', [`${ADDR.clientUp4}/24`, `${ADDR.clientUp6}/64`], router, 'rc', [`${ADDR.routerC4}/24`, `${ADDR.routerC6}/64`]);
  await link(client, 'lan0', [`${ADDR.clientLan4}/24`], lan, 'lan', [`${ADDR.lan4}/24`]);
  await link(router, 'rs', [`${ADDR.routerS4}/24`, `${ADDR.routerS6}/64`], server, 'up0', [`${ADDR.server4}/24`, `${ADDR.server4b}/24`, `${ADDR.server6}/64`]);
  await link(router, 'ri', [`${ADDR.routerI4}/24`, `${ADDR.routerI6}/64`], internet, 'up0', [`${ADDR.internet4}/24`, `${ADDR.internet6}/64`]);
  for (const [ns, v4, v6] of [[client, ADDR.routerC4, ADDR.routerC6], [server, ADDR.routerS4, ADDR.routerS6], [internet, ADDR.routerI4, ADDR.routerI6]] as const) {
    await ns.exec('ip', ['route', 'add', 'default', 'via', v4]);
    await ns.exec('ip', ['-6', 'route', 'add', 'default', 'via', v6]);
  }
  for (const ns of [router, server]) {
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  }
  await router.exec('nft', ['-f', '-'], { input: ROUTER_WATCH });
  await server.exec('nft', ['-f', '-'], { input: SERVER_NAT });
  return {
    client: client,
    lan: lan,
    router: router,
    server: server,
    internet: internet,
    async leaks() {
      const out = JSON.parse(await router.exec('nft', ['-j', 'list', 'counter', 'inet', 'watch', 'leaks'])) as { nftables: { counter?: { packets: number } }[] };
      return out.nftables.find((x) => x.counter !== undefined)?.counter?.packets ?? -1;
    },
  };
}

/**
 * A listener on `ns` that answers TCP and UDP on the given ports (echoing what it got)
 * and prints one line `PROTO PORT FROM-ADDRESS` per connection or datagram.
 */
export async function startListener(ns: Netns, ports: { tcp: number[]; udp: number[] }): Promise<{ child: ChildProcess; seen: () => string[] }> {
  const code = `
    const net = require('node:net'); const dgram = require('node:dgram');
    const [tcp, udp] = JSON.parse(process.argv[1]);
    const say = (l) => process.stdout.write(l + '\\n');
    for (const port of tcp) for (const host of ['0.0.0.0', '::']) {
      net.createServer((s) => { say('tcp ' + port + ' ' + s.remoteAddress.replace('::ffff:', '')); s.pipe(s); s.on('error', () => {}); })
        .listen({ port, host, ipv6Only: host === '::' });
    }
    for (const port of udp) for (const type of ['udp4', 'udp6']) {
      const sock = dgram.createSocket(type === 'udp6' ? { type, ipv6Only: true } : { type });
      sock.on('message', (m, r) => { say('udp ' + port + ' ' + r.address); sock.send(m, r.port, r.address); });
      sock.bind(port);
    }
    say('listening');
  `;
  const child = ns.spawn(process.execPath, ['-e', code, JSON.stringify([ports.tcp, ports.udp])]);
  const deadline = Date.now() + 10_000;
  while (!ns.outputOf(child).includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the listener in ${ns.name} did not start: ${ns.outputOf(child)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, seen: () => ns.outputOf(child).split('\n').filter((l) => /^(tcp|udp) /.test(l)) };
}

/** One attempt from `ns`: ping, a TCP connection with an echo, or a UDP datagram with its echo. True when it got through. */
export async function reach(ns: Netns, how: 'ping' | 'tcp' | 'udp', host: string, port = 0): Promise<boolean> {
  if (how === 'ping') {
    return ns.exec('ping', ['-n', '-c', '1', '-W', '1', host], { timeoutMs: 5_000 }).then(() => true, () => false);
  }
  const code = how === 'tcp'
    ? `const s = require('node:net').connect({ host: process.argv[1], port: +process.argv[2] }, () => s.write('x'));
       s.on('data', () => process.exit(0)); s.on('error', () => process.exit(1)); setTimeout(() => process.exit(1), 1500);`
    : `const d = require('node:dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');
       d.on('message', () => process.exit(0)); d.on('error', () => process.exit(1));
       d.send('x', +process.argv[2], process.argv[1]); setTimeout(() => process.exit(1), 1500);`;
  return ns.exec(process.execPath, ['-e', code, host, String(port)], { timeoutMs: 5_000 }).then(() => true, () => false);
}
