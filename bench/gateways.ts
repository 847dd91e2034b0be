// `npm run bench -- gateways`: several gateways on one PostgreSQL registry (issue 15).
//
//   reconcile   in this process: a device of 10,000 peers brought in step with a
//               registry of 10,000 (server/reconcile.ts's Reconciler, and syncPeers as
//               SIGHUP's reload does it), unchanged and with one peer added; reference:
//               the naive rebuild (every peer removed and set again), which would also
//               end every session.
//   propagation in namespaces (root, PostgreSQL): two gateways up on one database
//               (test/support/gateways.ts); `add-peer` run on gateway A, then the time
//               until the peer is on gateway B's device (its control socket polled every
//               5 ms from this process), and until the first handshake through B of a
//               client brought up at once with that configuration pointed at B.
//               Reference: the same add-peer run on B itself (applied through B's own
//               control socket before the command returns).
//   start-up    `burrow server up --registry` (until ready) of a gateway with 10,000
//               peers in PostgreSQL (written in one update from this process), and the
//               same 10,000 from a wg-quick file as the reference.
// Every run is printed, with the median. Wrap it in `flock /work/bench.lock`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { parsePrefix } from '../src/config/index.js';
import { syncPeers } from '../src/runtime/peer-sync.js';
import { nodeAead, nodeDh } from '../src/runtime/node-crypto.js';
import { parseGetReply, uapiRequest } from '../src/runtime/uapi-client.js';
import { logPath } from '../src/runtime/journal.js';
import { rmSync } from 'node:fs';
import { Reconciler, wantedPeers } from '../server/reconcile.js';
import { formatRegistry, type PeerRecord, type RegistryData } from '../server/registry.js';
import { openRegistry } from '../server/store.js';
import { Device } from '../tunnel/device.js';
import { burrow, configDir } from '../test/support/burrow.js';
import { buildGateways, GW, type Gateways, viaGateway } from '../test/support/gateways.js';
import { type Netns, uniqueName, withNetns } from '../test/support/netns.js';
import { postgresSkipReason, startPostgres } from '../test/support/postgres.js';
import { median } from './lib.js';

const PEERS = 10_000;

const line = (name: string, unit: string, runs: number[], reference?: number) => {
  const m = median(runs);
  const ratio = reference === undefined ? 'reference' : `${(m / reference).toFixed(2)}x reference`;
  console.log(`  ${name.padEnd(44)} ${m.toFixed(1).padStart(9)} ${unit}  ${ratio.padEnd(18)} (runs ${runs.map((r) => r.toFixed(1)).join(' / ')})`);
  return m;
};

/** `n` peers as the registry holds them: 10.100.0.0/16 and fd10:100::/64, deterministic keys. */
function records(n: number, from = 0): PeerRecord[] {
  const base = Buffer.from(publicKeyOf(generatePrivateKey()));
  const psk = generatePresharedKey();
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const key = Buffer.from(base);
    key.writeUInt32BE(i, 0);
    const host = i + 2;
    return {
      name: `p${i}`,
      created: '2026-12-01T00:00:00.000Z',
      enabled: true,
      rx: 0,
      tx: 0,
      peer: { publicKey: Uint8Array.from(key), presharedKey: psk, allowedIPs: [parsePrefix(`10.100.${host >> 8}.${host & 255}/32`), parsePrefix(`fd10:100::${host.toString(16)}/128`)] },
    };
  });
}

export function reconcileBench(): void {
  console.log(`\nreconcile: a device of ${PEERS} peers brought in step with the registry, in process (ms per reconcile)`);
  const peers = records(PEERS + 1);
  const registry = (list: PeerRecord[]): RegistryData => ({ config: { interface: {} as RegistryData['config']['interface'], peers: [] }, settings: { clientToClient: false, dns: [] }, peers: list });
  const now = Date.now();
  const all = registry(peers.slice(0, PEERS));
  const plusOne = registry(peers);
  const device = new Device({ privateKey: nodeDh.generatePrivateKey(), dh: nodeDh, aead: nodeAead }, { send: () => undefined, write: () => undefined });
  for (const p of wantedPeers(all, now)) device.setPeer(p.publicKey, p);
  const reconciler = new Reconciler(device, all, now);
  const time = (f: () => void) => {
    const t = performance.now();
    f();
    return performance.now() - t;
  };
  const rebuild: number[] = [];
  const sync: number[] = [];
  const same: number[] = [];
  const added: number[] = [];
  for (let r = 0; r < 5; r++) {
    rebuild.push(time(() => {
      device.removeAllPeers();
      for (const p of wantedPeers(all, now)) device.setPeer(p.publicKey, p);
    }));
    sync.push(time(() => syncPeers(device, 0, wantedPeers(all, now))));
    same.push(time(() => reconciler.run(all, now)));
    added.push(time(() => reconciler.run(plusOne, now)));
    reconciler.run(all, now);
  }
  const ref = line('rebuild every peer (naive; ends every session)', 'ms', rebuild);
  line('syncPeers against the device (SIGHUP\'s reload)', 'ms', sync, ref);
  line('Reconciler, nothing changed', 'ms', same, ref);
  line('Reconciler, one peer added', 'ms', added, ref);
}

async function hasPeer(ifname: string, key: string, handshake: boolean): Promise<boolean> {
  try {
    const i = parseGetReply(ifname, await uapiRequest(ifname, 'get=1\n\n'), (k) => nodeDh.publicKey(k));
    const p = i.peers.find((x) => x.publicKey === key);
    return p !== undefined && (!handshake || p.lastHandshake > 0);
  } catch {
    return false;
  }
}

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function namespaceBench(runs: number): Promise<void> {
  const skip = postgresSkipReason();
  if (skip !== undefined) {
    console.log(`\npropagation and start-up: skipped (${skip})`);
    return;
  }
  await withNetns(async (scope) => {
    const pg = await startPostgres();
    scope.defer(() => pg.destroy());
    const g: Gateways = await buildGateways(scope);
    const dir = configDir(scope);
    const ifA = uniqueName('bga');
    const ifB = uniqueName('bgb');
    const gw = (ns: Netns) => (ns === g.gwA ? { ifname: ifA, name: 'bench-a' } : { ifname: ifB, name: 'bench-b' });
    const server = async (ns: Netns, args: string[]) => {
      const r = await burrow(ns, ['server', ...args, '--registry', pg.url, '--interface', gw(ns).ifname], 180_000);
      if (r.code !== 0) throw new Error(`burrow server ${args[0]} in ${ns.name}: ${r.stderr}`);
      return r.stdout;
    };
    await burrow(g.gwA, ['server', 'init', '--registry', pg.url, '-i', ifA, '--endpoint', GW.gwA, '--subnet', '10.100.0.0/16', '--subnet6', 'fd10:100::/64']);
    for (const ns of [g.gwA, g.gwB]) {
      await server(ns, ['up', '--gateway', gw(ns).name]);
      scope.defer(async () => {
        await burrow(ns, ['server', 'down', '--registry', pg.url, '--interface', gw(ns).ifname]);
        rmSync(logPath(gw(ns).ifname), { force: true });
      });
    }

    console.log(`\npropagation: add-peer, then the peer on gateway B's device / the first handshake through B (ms after add-peer returned)`);
    const local: number[] = [];
    const remote: number[] = [];
    const handshake: number[] = [];
    for (let r = 0; r < runs; r++) {
      // Reference: on B itself (applied through its control socket before add-peer returns).
      const own = await server(g.gwB, ['add-peer', `own-${r}`]);
      const ownKey = encodeKey(publicKeyOf(Buffer.from(/^PrivateKey = (.+)$/m.exec(own)![1]!, 'base64')));
      local.push(await until(() => hasPeer(ifB, ownKey, false), 10_000, 'own peer on B'));
      const text = await server(g.gwA, ['add-peer', `via-b-${r}`]);
      const key = encodeKey(publicKeyOf(Buffer.from(/^PrivateKey = (.+)$/m.exec(text)![1]!, 'base64')));
      const t0 = performance.now();
      const onB = until(() => hasPeer(ifB, key, false), 10_000, 'peer on B');
      const ifname = uniqueName('bcl');
      const conf = join(dir, `${ifname}.conf`);
      writeFileSync(conf, viaGateway(text, GW.gwB), { mode: 0o600 });
      const upped = burrow(g.cB, ['up', conf]);
      remote.push(await onB);
      if ((await upped).code !== 0) throw new Error(`client up: ${(await upped).stderr}`);
      // The client's first packet starts the handshake (a full tunnel: a ping to the internet host).
      const ping = g.cB.exec('ping', ['-n', '-c', '1', '-W', '5', GW.internet], { timeoutMs: 10_000 }).catch(() => undefined);
      await until(() => hasPeer(ifB, key, true), 20_000, 'handshake through B');
      handshake.push(performance.now() - t0);
      await ping;
      await burrow(g.cB, ['down', ifname]);
      rmSync(logPath(ifname), { force: true });
    }
    const ref = line('add-peer on B: on B (its own control socket)', 'ms', local);
    line('add-peer on A: on B (NOTIFY, reconcile)', 'ms', remote, ref);
    line('add-peer on A: first handshake through B', 'ms', handshake, ref);
    console.log('  (the handshake time includes the client\'s `burrow up`, started when add-peer returned)');

    console.log(`\nstart-up: burrow server up of a gateway with ${PEERS} peers, until ready (ms)`);
    const registry = openRegistry(pg.url, { gateway: 'bench-setup' });
    let fileText = '';
    try {
      await registry.update((data) => ({ data: { ...data, peers: [...data.peers, ...records(PEERS, 1_000)] }, result: undefined }));
      fileText = formatRegistry(await registry.read(), 'bench');
    } finally {
      await registry.close();
    }
    await server(g.gwB, ['down']);
    const ifF = uniqueName('bgf');
    const file = join(dir, `${ifF}.conf`);
    writeFileSync(file, fileText, { mode: 0o600 });
    const fromFile: number[] = [];
    const fromPg: number[] = [];
    for (let r = 0; r < Math.max(3, Math.min(runs, 5)); r++) {
      let t = performance.now();
      const f = await burrow(g.gwB, ['server', 'up', '--config', file], 180_000);
      fromFile.push(performance.now() - t);
      if (f.code !== 0) throw new Error(`server up --config: ${f.stderr}`);
      await burrow(g.gwB, ['server', 'down', '--config', file]);
      t = performance.now();
      await server(g.gwB, ['up', '--gateway', 'bench-b']);
      fromPg.push(performance.now() - t);
      await server(g.gwB, ['down']);
    }
    rmSync(logPath(ifF), { force: true });
    const fileRef = line('up from a wg-quick file (the same peers)', 'ms', fromFile);
    line('up from PostgreSQL', 'ms', fromPg, fileRef);
  });
}

export async function runGatewaysBench(options: readonly string[] = []): Promise<void> {
  const quick = options.includes('--quick');
  const i = options.indexOf('--runs');
  const runs = i >= 0 ? Number(options[i + 1]) : quick ? 2 : 5;
  reconcileBench();
  if (process.getuid?.() !== 0) {
    console.log('\npropagation and start-up: skipped (needs root for the namespaces)');
    return;
  }
  await namespaceBench(runs);
}
