// Two gateways, one registry in PostgreSQL (issue 15), for real: a PostgreSQL server
// started by the test (test/support/postgres.ts: its socket is a file, reached from every
// namespace), two `burrow server up --registry` in two namespaces, a client behind the
// router for each, and an internet host (test/support/gateways.ts). Shown:
//   - a peer added with add-peer on A is on B's device at once and connects through B;
//   - a peer disabled on B is cut off on A (its traffic through A stops);
//   - 200 add-peers split across both gateways' registries at once (8 at a time on each)
//     give 200 distinct addresses, and both devices end up with all of them;
//   - with PostgreSQL stopped both gateways keep carrying their clients' traffic and
//     `burrow show` says the registry is unreachable; after a restart, a change made
//     through gateway B's connection reaches A's device.
// Timings are not asserted (the machine is shared): bench/gateways.ts measures them.
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { burrow, cliBuilt, configDir, up } from '../support/burrow.js';
import { buildGateways, GW, type Gateways, viaGateway } from '../support/gateways.js';
import { type Netns, netnsSuite, uniqueName } from '../support/netns.js';
import { requirePostgres, startPostgres, type TestPostgres } from '../support/postgres.js';
import { requireHost } from '../support/privileges.js';
import { reach } from '../support/topology.js';
import { decodeKey, encodeKey } from '../../crypto/keys.js';
import { addPeer } from '../../server/peers.js';
import { logPath } from '../../src/runtime/journal.js';
import { nodeDh } from '../../src/runtime/node-crypto.js';
import { parseGetReply, uapiRequest } from '../../src/runtime/uapi-client.js';
import { openRegistry, type PeerRegistry } from '../../server/store.js';

interface ShownJson {
  peers: { publicKey: string; allowedIPs: string[] }[];
  registry?: { location: string; reachable: boolean; since: string; error?: string };
}

/** Polls `check` until it is true or `ms` pass. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs `task` over `items`, `width` at a time. */
async function bounded<T>(items: readonly T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await task(items[next++]!);
  }));
}

describe.skipIf(requireHost(['ip', 'nft', 'ping']) || requirePostgres())('two gateways sharing a PostgreSQL registry', () => {
  const scope = netnsSuite();
  cliBuilt();
  let pg: TestPostgres;
  let g: Gateways;
  let dir: string;
  const ifA = uniqueName('gwa');
  const ifB = uniqueName('gwb');
  const gateway = (ns: Netns) => (ns === g.gwA ? { ifname: ifA, name: 'gateway-a', address: GW.gwA } : { ifname: ifB, name: 'gateway-b', address: GW.gwB });
  const server = (ns: Netns, args: string[], timeoutMs?: number) => burrow(ns, ['server', ...args, '--registry', pg.url, '--interface', gateway(ns).ifname], timeoutMs);
  const shown = async (ns: Netns): Promise<ShownJson> => {
    const r = await burrow(ns, ['show', gateway(ns).ifname, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ShownJson;
  };
  /** The keys on a gateway's device, through its control socket (a file: reached from here). */
  const keysOn = async (ns: Netns) => new Set(parseGetReply(gateway(ns).ifname, await uapiRequest(gateway(ns).ifname, 'get=1\n\n'), (k) => nodeDh.publicKey(k)).peers.map((p) => p.publicKey));
  /** The client's public key, from the configuration add-peer printed. */
  const clientKey = (config: string) => encodeKey(nodeDh.publicKey(decodeKey(/^PrivateKey = (.+)$/m.exec(config)![1]!)));
  const keys = new Map<string, string>();

  /** add-peer NAME on `on`, and `burrow up` of its client configuration in `client`, pointed at gateway `via`. */
  async function addClient(on: Netns, name: string, via: Netns, client: Netns): Promise<void> {
    const r = await server(on, ['add-peer', name]);
    expect(r.code, r.stderr).toBe(0);
    keys.set(name, clientKey(r.stdout));
    const ifname = uniqueName('cl');
    const path = join(dir, `${ifname}.conf`);
    writeFileSync(path, viaGateway(r.stdout, gateway(via).address), { mode: 0o600 });
    await up(scope, client, path, ifname);
  }

  it('init --registry, then up on both gateways from the same database', async () => {
    pg = await startPostgres();
    scope.defer(() => pg.destroy());
    g = await buildGateways(scope);
    dir = configDir(scope);
    const init = await burrow(g.gwA, ['server', 'init', '--registry', pg.url, '-i', ifA, '--endpoint', GW.gwA, '--subnet', '10.88.0.0/24', '--subnet6', 'fd88:88::/64']);
    expect(init.code, init.stderr).toBe(0);
    for (const ns of [g.gwA, g.gwB]) {
      const r = await server(ns, ['up', '--gateway', gateway(ns).name]);
      expect(r.code, r.stderr).toBe(0);
      scope.defer(async () => {
        await server(ns, ['down']);
        rmSync(logPath(gateway(ns).ifname), { force: true });
      });
      expect(r.stdout).toContain('registry postgresql://');
    }
    const a = await shown(g.gwA);
    expect(a.registry).toMatchObject({ reachable: true });
    expect(a.registry?.location).toMatch(/^postgresql:\/\//);
  }, 120_000);

  it('a peer added on A is on B at once, and its client connects through B', async () => {
    const r = await server(g.gwA, ['add-peer', 'via-b']);
    expect(r.code, r.stderr).toBe(0);
    const added = Date.now();
    const key = clientKey(r.stdout);
    expect(await eventually(async () => (await keysOn(g.gwB)).has(key), 20_000)).toBe(true);
    process.stderr.write(`gateways: the peer added on A was on B's device ${Date.now() - added} ms after add-peer returned (polled every 200 ms; bench/gateways.ts measures it finer)\n`);
    const ifname = uniqueName('cl');
    const path = join(dir, `${ifname}.conf`);
    writeFileSync(path, viaGateway(r.stdout, GW.gwB), { mode: 0o600 });
    await up(scope, g.cB, path, ifname);
    expect(await eventually(() => reach(g.cB, 'ping', GW.internet), 20_000)).toBe(true);
    // It went through B: B's device has its handshake, A's none.
    const onB = (await shown(g.gwB)).peers.find((p) => p.publicKey === key) as unknown as { lastHandshake: number };
    expect(onB.lastHandshake).toBeGreaterThan(0);
  }, 120_000);

  it('a peer disabled on B is cut off on A', async () => {
    await addClient(g.gwB, 'via-a', g.gwA, g.cA);
    expect(await eventually(() => reach(g.cA, 'ping', GW.internet), 20_000)).toBe(true);
    const key = keys.get('via-a')!;
    const r = await server(g.gwB, ['disable', 'via-a']);
    expect(r.code, r.stderr).toBe(0);
    expect(await eventually(async () => !(await keysOn(g.gwA)).has(key), 20_000)).toBe(true);
    expect(await reach(g.cA, 'ping', GW.internet)).toBe(false);
    // Enabled again (on A this time): it connects again through A.
    expect((await server(g.gwA, ['enable', 'via-a'])).code).toBe(0);
    expect(await eventually(() => reach(g.cA, 'ping', GW.internet), 30_000)).toBe(true);
  }, 120_000);

  it('200 add-peers split across both gateways\' registries at once give 200 distinct addresses, on both devices', async () => {
    // server/peers.ts's addPeer (what `burrow server add-peer` runs), through two
    // registries named as the two gateways, 8 at a time on each: 200 CLI processes would
    // cost minutes of CPU on a shared 2-core machine. Each device gets the peers only by
    // following the registry (nothing applies them through its control socket).
    const names = Array.from({ length: 200 }, (_, i) => `bulk-${i}`);
    const failures: string[] = [];
    const registries = [openRegistry(pg.url, { gateway: 'gateway-a' }), openRegistry(pg.url, { gateway: 'gateway-b' })];
    try {
      const add = (registry: PeerRegistry) => async (name: string) => {
        await addPeer(registry, { name }).catch((e: Error) => failures.push(`${name}: ${e.message}`));
      };
      await Promise.all([bounded(names.slice(0, 100), 8, add(registries[0]!)), bounded(names.slice(100), 8, add(registries[1]!))]);
    } finally {
      await Promise.all(registries.map((r) => r.close()));
    }
    expect(failures).toEqual([]);
    const list = JSON.parse((await server(g.gwA, ['list-peers', '--json'])).stdout) as { name: string; publicKey: string; addresses: string[]; enabled: boolean }[];
    const bulk = list.filter((p) => p.name.startsWith('bulk-'));
    expect(bulk).toHaveLength(200);
    const v4 = bulk.map((p) => p.addresses.find((a) => !a.includes(':')));
    const v6 = bulk.map((p) => p.addresses.find((a) => a.includes(':')));
    expect(new Set(v4).size).toBe(200);
    expect(new Set(v6).size).toBe(200);
    // Every address is unique across all peers, and both devices carry every enabled peer.
    expect(new Set(list.flatMap((p) => p.addresses)).size).toBe(list.flatMap((p) => p.addresses).length);
    const enabled = new Set(list.filter((p) => p.enabled).map((p) => p.publicKey));
    for (const ns of [g.gwA, g.gwB]) {
      expect(await eventually(async () => {
        const keys = await keysOn(ns);
        return keys.size === enabled.size && [...enabled].every((k) => keys.has(k));
      }, 30_000), gateway(ns).name).toBe(true);
    }
  }, 180_000);

  it('with PostgreSQL stopped both gateways carry their clients and say so; after a restart a change made through B reaches A', async () => {
    await pg.stop();
    for (const ns of [g.gwA, g.gwB]) {
      expect(await eventually(async () => (await shown(ns)).registry?.reachable === false, 20_000), gateway(ns).name).toBe(true);
    }
    const text = await burrow(g.gwA, ['show', ifA]);
    expect(text.stdout).toMatch(/^ {2}registry: postgresql:\/\/\S+ unreachable since \d{4}-\d\d-\d\dT\S+ \(.+\)$/m);
    // list-peers cannot read the registry, and says why the gateway serves without it.
    const listed = await server(g.gwA, ['list-peers']);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toMatch(/registry: postgresql:\/\/\S+ unreachable since /);
    // The known peers go on: the client behind each gateway still reaches the internet.
    expect(await reach(g.cA, 'ping', GW.internet)).toBe(true);
    expect(await reach(g.cB, 'ping', GW.internet)).toBe(true);
    expect((await shown(g.gwB)).registry!.error).toBeDefined();

    // Back: at once, a change through gateway B's own database connection (while A may
    // still be reconnecting); A applies it, from the notification or its full re-read.
    await pg.start();
    const r = await server(g.gwB, ['add-peer', 'after-restart'], 60_000);
    expect(r.code, r.stderr).toBe(0);
    const key = clientKey(r.stdout);
    expect(await eventually(async () => (await keysOn(g.gwA)).has(key), 20_000)).toBe(true);
    expect(await eventually(async () => (await shown(g.gwA)).registry?.reachable === true, 20_000)).toBe(true);
    expect((await burrow(g.gwA, ['show', ifA])).stdout).not.toContain('unreachable');
  }, 180_000);
});
