// Starts Burrow's tunnel in its own process inside a test namespace (burrow-child.ts),
// with the same handle shape as the reference peers (test/support/wireguard-go.ts): `wg`
// reads it over its control socket, stop() ends it by PID. What the reference peers
// cannot do, it can: its engine clock can be moved forward (advanceClock), so the
// 120 s rekey is reached at once, and every engine event comes back as a log line with
// the time it arrived.

import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Netns, stopChild } from '../../support/netns.js';
import { parseWgDump, type WgInterfaceStatus, type WgPeer, WIREGUARD_RUN_DIR } from '../../support/wireguard-go.js';
import type { ChildConfig } from './burrow-child.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'burrow-child.ts');
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

export interface BurrowOptions {
  /** ≤ 15 characters, unique across namespaces: use uniqueName(). */
  ifname: string;
  privateKey: string;
  listenPort: number;
  addresses: readonly string[];
  peers: readonly WgPeer[];
  /** Default 1420, as the reference peers. */
  mtu?: number;
}

export interface LogLine {
  /** Date.now() when the test process read it. */
  at: number;
  text: string;
}

export interface BurrowProcess {
  readonly ns: Netns;
  readonly ifname: string;
  readonly pid: number;
  readonly listenPort: number;
  readonly socketPath: string;
  /** Parsed `wg show IF dump`, read over Burrow's control socket. */
  show(): Promise<WgInterfaceStatus>;
  /** Moves the engine's clock `ms` forward (the wall clock it reports moves with it). */
  advanceClock(ms: number): Promise<void>;
  /** Every engine event so far, in order. */
  log(): readonly LogLine[];
  /** Handshakes completed so far, with the role Burrow had in each. */
  handshakes(): { at: number; role: 'initiator' | 'responder' }[];
  /** Waits until handshakes() has more than `count` entries; the first one past them. */
  waitForHandshake(count: number, timeoutMs: number): Promise<{ at: number; role: 'initiator' | 'responder' }>;
  running(): boolean;
  /** The last 8 KiB of stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL; waits for exit and removes a stale socket. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts Burrow in `ns` and waits until its TUN is up and its control socket answers. */
export async function startBurrow(ns: Netns, opts: BurrowOptions): Promise<BurrowProcess> {
  const socketPath = `${WIREGUARD_RUN_DIR}/${opts.ifname}.sock`;
  if (existsSync(socketPath)) throw new Error(`burrow: ${socketPath} exists already`);
  const dir = await mkdtemp(join(tmpdir(), 'burrow-matrix-')); // 0700
  const configPath = join(dir, 'config.json');
  const config: ChildConfig = {
    ifname: opts.ifname,
    privateKey: opts.privateKey,
    listenPort: opts.listenPort,
    mtu: opts.mtu ?? 1420,
    addresses: [...opts.addresses],
    peers: opts.peers.map((p) => ({
      publicKey: p.publicKey,
      allowedIPs: [...p.allowedIPs],
      ...(p.presharedKey === undefined ? {} : { presharedKey: p.presharedKey }),
      ...(p.endpoint === undefined ? {} : { endpoint: p.endpoint }),
      ...(p.persistentKeepalive === undefined ? {} : { persistentKeepalive: p.persistentKeepalive }),
    })),
  };
  await writeFile(configPath, JSON.stringify(config), { mode: 0o600, flag: 'wx' });

  let child: ChildProcess;
  try {
    // tsx (resolved from the working directory, the repository's root under vitest) lets
    // the child run the TypeScript sources.
    child = ns.spawn(process.execPath, ['--import', 'tsx', CHILD, configPath], { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  ns.removeOnDestroy(socketPath);
  const lines: LogLine[] = [];
  let port: number | undefined;
  let failure: string | undefined;
  const acks: number[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      const at = Date.now();
      if (line.startsWith('log ')) lines.push({ at, text: line.slice(4) });
      else if (line.startsWith('ready ')) port = Number(line.slice(6));
      else if (line.startsWith('advanced ')) acks.push(Number(line.slice(9)));
      else if (line.startsWith('error ')) failure = line.slice(6);
    }
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const output = (): string => ns.outputOf(child);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopChild(child, STOP_GRACE_MS);
      await rm(socketPath, { force: true });
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  ns.onDestroy(stop);

  const handshakes = (): { at: number; role: 'initiator' | 'responder' }[] =>
    lines.flatMap((l) => {
      const m = /handshake complete \((initiator|responder)\)/.exec(l.text);
      return m ? [{ at: l.at, role: m[1] as 'initiator' | 'responder' }] : [];
    });

  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (port === undefined) {
      if (failure !== undefined) throw new Error(`burrow in ${ns.name}: ${failure}`);
      if (!running()) throw new Error(`burrow in ${ns.name} exited (${child.exitCode ?? child.signalCode}) before it was ready: ${output().trim()}`);
      if (Date.now() > deadline) throw new Error(`burrow in ${ns.name}: not ready after ${START_TIMEOUT_MS} ms: ${output().trim()}`);
      await sleep(20);
    }
    // The keys are in the engine now; nothing keeps them on disk.
    await rm(dir, { recursive: true, force: true });
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }

  let skew = 0;
  return {
    ns,
    ifname: opts.ifname,
    pid: child.pid!,
    listenPort: port,
    socketPath,
    show: async () => parseWgDump(await ns.exec('wg', ['show', opts.ifname, 'dump'])),
    advanceClock: async (ms) => {
      skew += ms;
      child.stdin!.write(`advance ${Math.round(ms)}\n`);
      const deadline = Date.now() + 5_000;
      while (!acks.includes(Math.round(skew))) {
        if (Date.now() > deadline || !running()) throw new Error(`burrow in ${ns.name} did not move its clock: ${output().trim()}`);
        await sleep(10);
      }
    },
    log: () => lines,
    handshakes,
    waitForHandshake: async (count, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const all = handshakes();
        if (all.length > count) return all[count]!;
        if (Date.now() > deadline) throw new Error(`burrow in ${ns.name}: ${all.length} handshakes after ${timeoutMs} ms, expected more than ${count}`);
        if (!running()) throw new Error(`burrow in ${ns.name} exited: ${output().trim()}`);
        await sleep(20);
      }
    },
    running,
    output,
    stop,
  };
}
