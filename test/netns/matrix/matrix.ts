// The interop matrix (issue 10): Burrow against one reference implementation, in both
// roles, each cell in fresh namespaces. interop-matrix-*.test.ts call defineMatrix() once
// per implementation, so vitest runs the implementations in parallel files.
//
// Topology of every cell: namespace a holds Burrow (burrow-child.ts, its clock movable),
// namespace b the reference peer, joined by a veth pair with IPv4 and IPv6 outside.
//   role 'burrow-initiates': Burrow knows the peer's endpoint, the peer does not know
//     Burrow's, and the first packet goes from a; so Burrow must start the session.
//   role 'peer-initiates': the other way round.
// Checks per role:
//   - no PSK, outside IPv4: pings inside over IPv4 and IPv6, 100 MB Burrow -> peer over
//     IPv4 inside with a matching SHA-256, `wg show` on both sides;
//   - PSK, outside IPv6: the same, 100 MB peer -> Burrow over IPv6 inside;
//   - rekey after 120 s: Burrow initiating, its clock is moved past REKEY_AFTER_TIME; the
//     peer initiating, the test waits the 120 s in real time (the peer's clock cannot be
//     moved), in the background from the start of the file so the other cells overlap;
//   - a restart of the peer in the middle of a 100 MB transfer: the session is back
//     within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (+ jitter), the paper's bound for a side
//     that sends and hears nothing back, and the transfer completes intact.
// Each check's outcome goes to a table (peer x check) that the last file to finish prints.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../../../crypto/keys.js';
import { KEEPALIVE_TIMEOUT, REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../../../tunnel/constants.js';
import { tcpTransfer } from '../../support/burrow.js';
import { type Netns, type NetnsScope, netnsSuite, uniqueName } from '../../support/netns.js';
import { requireHost } from '../../support/privileges.js';
import {
  formatEndpoint, handshakeUnixSeconds, PEER_IMPLEMENTATIONS, type Peer, type PeerImplementation, type PeerOptions, peerLabel,
  peerQuirks, peerVersion, requirePeer, startPeer, type WgInterfaceStatus,
} from '../../support/wireguard-go.js';
import { type BurrowProcess, startBurrow } from './burrow.js';

export type Role = 'burrow-initiates' | 'peer-initiates';
export const ROLES: readonly Role[] = ['burrow-initiates', 'peer-initiates'];

const BURROW_IN4 = '192.0.2.1';
const PEER_IN4 = '192.0.2.2';
const BURROW_IN6 = '2001:db8:c0de::1';
const PEER_IN6 = '2001:db8:c0de::2';
const BURROW_PORT = 51820;
const PEER_PORT = 51821;
const TRANSFER_BYTES = 100 * 1024 * 1024;
/** The paper's bound on a dead session for a side that keeps sending: Keepalive-Timeout + Rekey-Timeout, plus the jitter. */
const RESTART_BOUND_MS = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX;
/** Slack on that bound for the restart itself (a second or less) and a loaded 2-core machine. */
const RESTART_SLACK_MS = 2_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Keys { priv: string; pub: string }
function keys(): Keys {
  const k = generatePrivateKey();
  return { priv: encodeKey(k), pub: encodeKey(publicKeyOf(k)) };
}

export interface SessionOptions {
  role: Role;
  psk: boolean;
  outer: 'IPv4' | 'IPv6';
}

/** One Burrow and one reference peer in fresh namespaces, configured but silent. */
export interface Session extends SessionOptions {
  implementation: PeerImplementation;
  a: Netns;
  b: Netns;
  burrow: BurrowProcess;
  /** Replaced by restartPeer(). */
  peer: Peer;
  burrowKeys: Keys;
  peerKeys: Keys;
  pskText: string | undefined;
  burrowOuter: string;
  peerOuter: string;
  /** The namespace whose first packet starts the session. */
  initiatorNs: Netns;
  /** Inner addresses of the side that does not initiate. */
  responderIn4: string;
  responderIn6: string;
  /** Stops the peer and starts it again with the same keys, port and interface name. */
  restartPeer(): Promise<void>;
}

export async function openSession(scope: NetnsScope, implementation: PeerImplementation, o: SessionOptions): Promise<Session> {
  const pair = await scope.pair({ prefix: 'mx' });
  const [burrowKeys, peerKeys] = [keys(), keys()];
  const pskText = o.psk ? encodeKey(generatePresharedKey()) : undefined;
  const psk = pskText === undefined ? {} : { presharedKey: pskText };
  const burrowOuter = o.outer === 'IPv4' ? pair.aAddr4 : pair.aAddr6;
  const peerOuter = o.outer === 'IPv4' ? pair.bAddr4 : pair.bAddr6;
  const burrowFirst = o.role === 'burrow-initiates';

  const peerOpts: PeerOptions = {
    implementation,
    ifname: uniqueName('mxp'),
    privateKey: peerKeys.priv,
    listenPort: PEER_PORT,
    addresses: [`${PEER_IN4}/24`, `${PEER_IN6}/64`],
    peers: [{
      publicKey: burrowKeys.pub,
      allowedIPs: [`${BURROW_IN4}/32`, `${BURROW_IN6}/128`],
      ...psk,
      ...(burrowFirst ? {} : { endpoint: formatEndpoint(burrowOuter, BURROW_PORT) }),
    }],
  };
  const session: Session = {
    ...o,
    implementation,
    a: pair.a,
    b: pair.b,
    peer: await startPeer(pair.b, peerOpts),
    burrow: await startBurrow(pair.a, {
      ifname: uniqueName('mxb'),
      privateKey: burrowKeys.priv,
      listenPort: BURROW_PORT,
      addresses: [`${BURROW_IN4}/24`, `${BURROW_IN6}/64`],
      peers: [{
        publicKey: peerKeys.pub,
        allowedIPs: [`${PEER_IN4}/32`, `${PEER_IN6}/128`],
        ...psk,
        ...(burrowFirst ? { endpoint: formatEndpoint(peerOuter, PEER_PORT) } : {}),
      }],
    }),
    burrowKeys,
    peerKeys,
    pskText,
    burrowOuter,
    peerOuter,
    initiatorNs: burrowFirst ? pair.a : pair.b,
    responderIn4: burrowFirst ? PEER_IN4 : BURROW_IN4,
    responderIn6: burrowFirst ? PEER_IN6 : BURROW_IN6,
    restartPeer: async () => {
      await session.peer.stop();
      session.peer = await startPeer(pair.b, peerOpts);
    },
  };
  // Both are also stopped when their namespaces go; this stops them first, peer last.
  scope.defer(() => session.peer.stop());
  scope.defer(() => session.burrow.stop());
  return session;
}

/** `ping` bounded in count and time: how many of `count` were answered. */
export async function ping(ns: Netns, target: string, count = 3, intervalS = 0.2): Promise<{ sent: number; received: number }> {
  const out = await ns
    .exec('ping', ['-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', '2', target], { timeoutMs: 10_000 + count * intervalS * 1000 * 2 })
    .catch((e: Error & { stdout?: string }) => e.stdout ?? e.message);
  return { sent: Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0), received: Number(/(\d+) received/.exec(out)?.[1] ?? 0) };
}

/** The initiator's first packets start the session; both families inside must answer. */
export async function establish(s: Session): Promise<void> {
  expect(await ping(s.initiatorNs, s.responderIn4)).toEqual({ sent: 3, received: 3 });
  expect(await ping(s.initiatorNs, s.responderIn6)).toEqual({ sent: 3, received: 3 });
  const hs = s.burrow.handshakes();
  expect(hs.map((h) => h.role)).toEqual([s.role === 'burrow-initiates' ? 'initiator' : 'responder']);
}

const mbits = (bytes: number, ms: number): string => `${((bytes * 8) / ms / 1000).toFixed(0)} Mbit/s`;

/**
 * `wg show` on both sides after `sent` bytes went from `from`: keys, port, PSK, endpoint,
 * allowed IPs, a handshake in the time of the cell, and byte counters past `sent`. Where
 * the peer's control socket has a known quirk (PeerQuirks), the check reads around it
 * and says so.
 */
export async function checkShowBothSides(s: Session, from: 'burrow' | 'peer', sent: number, sinceMs: number): Promise<string> {
  const [b, p] = [await s.burrow.show(), await s.peer.show()];
  const nowMs = Date.now();
  const quirks = peerQuirks(s.implementation);
  const check = (side: WgInterfaceStatus, own: Keys, port: number, other: Keys, endpoint: string, inner: string[], sender: boolean, handshakeUnix: (n: number) => number) => {
    expect(side.listenPort).toBe(port);
    expect(side.peers).toHaveLength(1);
    const peer = side.peers[0]!;
    expect(peer.publicKey).toBe(other.pub);
    expect(peer.hasPresharedKey).toBe(s.psk);
    expect(peer.endpoint).toBe(endpoint);
    expect([...peer.allowedIPs].sort()).toEqual([...inner].sort());
    const handshake = handshakeUnix(peer.latestHandshake);
    expect(handshake).toBeGreaterThanOrEqual(Math.floor(sinceMs / 1000) - 1);
    expect(handshake).toBeLessThanOrEqual(nowMs / 1000 + 1);
    expect(sender ? peer.txBytes : peer.rxBytes).toBeGreaterThan(sent);
    expect(sender ? peer.rxBytes : peer.txBytes).toBeGreaterThan(0);
    expect(peer.persistentKeepalive).toBeUndefined();
  };
  expect(b.publicKey).toBe(s.burrowKeys.pub);
  check(b, s.burrowKeys, BURROW_PORT, s.peerKeys, formatEndpoint(s.peerOuter, PEER_PORT), [`${PEER_IN4}/32`, `${PEER_IN6}/128`], from === 'burrow', (n) => n);
  const notes: string[] = [];
  if (quirks.ownPublicKeyInsteadOfPrivateKey) {
    expect(p.publicKey).toBe('(none)');
    const hex = /^own_public_key=([0-9a-f]{64})$/m.exec(await s.peer.uapiGet())?.[1];
    expect(hex).toBe(Buffer.from(s.peerKeys.pub, 'base64').toString('hex'));
    notes.push("the peer's own key read from own_public_key, which wg does not show");
  } else {
    expect(p.publicKey).toBe(s.peerKeys.pub);
  }
  if (quirks.handshakeTimeIsAge) notes.push("the peer's handshake time is an age");
  check(p, s.peerKeys, PEER_PORT, s.burrowKeys, formatEndpoint(s.burrowOuter, BURROW_PORT), [`${BURROW_IN4}/32`, `${BURROW_IN6}/128`], from === 'peer',
    (n) => handshakeUnixSeconds(s.implementation, n, nowMs));
  const rx = from === 'peer' ? b.peers[0]!.rxBytes : p.peers[0]!.rxBytes;
  return `keys, port, PSK, endpoint, allowed IPs, handshake, rx ${fmtBytes(rx)}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
}

const fmtBytes = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------
// The table

const CHECKS = ['no PSK, IPv4 outside', 'PSK, IPv6 outside', 'wg show', 'rekey', 'restart'] as const;
type Check = (typeof CHECKS)[number];
interface CellResult { row: string; check: Check; ok: boolean; note: string }

// One directory per vitest run (its main process is every test file's parent), one file
// per implementation, so files running in parallel never write the same file.
const TABLE_ROOT = join(tmpdir(), 'burrow-interop-matrix');
const tableDir = join(TABLE_ROOT, String(process.ppid));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function saveResults(implementation: PeerImplementation, version: string, cells: CellResult[]): void {
  mkdirSync(tableDir, { recursive: true, mode: 0o700 });
  // Runs that were killed leave their directory: remove those whose process is gone.
  for (const d of readdirSync(TABLE_ROOT)) if (/^\d+$/.test(d) && !pidAlive(Number(d))) rmSync(join(TABLE_ROOT, d), { recursive: true, force: true });
  writeFileSync(join(tableDir, `${implementation}.json`), JSON.stringify({ version, cells }));
}

function formatTable(results: { implementation: PeerImplementation; version: string; cells: CellResult[] }[]): string {
  const rows: string[][] = [['peer / role', ...CHECKS]];
  for (const r of results) {
    for (const role of ROLES) {
      const row = `${peerLabel(r.implementation)} (${r.version}) / ${role}`;
      rows.push([row, ...CHECKS.map((c) => {
        const cell = r.cells.find((x) => x.row === role && x.check === c);
        return cell === undefined ? 'not run' : `${cell.ok ? 'ok' : 'FAIL'}: ${cell.note}`;
      })]);
    }
  }
  return rows.map((cols, i) => `| ${cols.join(' | ')} |${i === 0 ? `\n|${cols.map(() => '---').join('|')}|` : ''}`).join('\n');
}

/** Prints this implementation's rows, and the whole table once every implementation has reported. */
function printTable(implementation: PeerImplementation, version: string, cells: CellResult[]): void {
  saveResults(implementation, version, cells);
  const all = PEER_IMPLEMENTATIONS.map((impl) => {
    const path = join(tableDir, `${impl}.json`);
    if (!existsSync(path)) return undefined;
    const saved = JSON.parse(readFileSync(path, 'utf8')) as { version: string; cells: CellResult[] };
    return { implementation: impl, ...saved };
  });
  if (all.every((r) => r !== undefined)) {
    process.stdout.write(`\nInterop matrix, Burrow against three implementations:\n\n${formatTable(all)}\n\n`);
    rmSync(tableDir, { recursive: true, force: true });
    if (readdirSync(TABLE_ROOT).length === 0) rmSync(TABLE_ROOT, { recursive: true, force: true });
  } else {
    process.stdout.write(`\nInterop matrix, ${peerLabel(implementation)}:\n\n${formatTable([{ implementation, version, cells }])}\n\n`);
  }
}

// ---------------------------------------------------------------------------------
// The cells

export function defineMatrix(implementation: PeerImplementation): void {
  const label = peerLabel(implementation);
  describe.skipIf(requireHost(['ping']) || requirePeer(implementation))(`interop matrix: Burrow and ${label}`, () => {
    const scope = netnsSuite();
    const cells: CellResult[] = [];
    let version = '?';

    /** Runs a check, records its outcome in the table, and rethrows a failure. */
    async function cell(role: Role, check: Check, body: () => Promise<string>): Promise<void> {
      try {
        const note = await body();
        cells.push({ row: role, check, ok: true, note });
      } catch (e) {
        cells.push({ row: role, check, ok: false, note: String((e as Error).message ?? e).split('\n')[0]!.slice(0, 100) });
        throw e;
      }
    }

    // The peer-initiated rekey takes 120 s of real time: it starts before the other
    // cells and its test, the last of the file, collects it.
    let peerRekey: Promise<() => Promise<string>>;
    beforeAll(async () => {
      version = await peerVersion(implementation);
      peerRekey = watchPeerRekey(scope, implementation).then(
        (note) => () => Promise.resolve(note),
        (e: unknown) => () => Promise.reject(e as Error),
      );
    });
    afterAll(() => printTable(implementation, version, cells));

    for (const role of ROLES) {
      describe(role, () => {
        it('without a PSK, IPv4 outside: pings inside over IPv4 and IPv6, 100 MB Burrow -> peer over IPv4, wg show both sides', async () => {
          const t0 = Date.now();
          const s = await openSession(scope, implementation, { role, psk: false, outer: 'IPv4' });
          await cell(role, 'no PSK, IPv4 outside', async () => {
            await establish(s);
            const t = await tcpTransfer(s.a, s.b, BURROW_IN4, TRANSFER_BYTES);
            expect(t.bytes).toBe(TRANSFER_BYTES);
            expect(t.receivedSha256).toBe(t.sentSha256);
            return `pings v4+v6, 100 MB to the peer over IPv4, sha256 equal, ${mbits(t.bytes, t.ms)}`;
          });
          await cell(role, 'wg show', async () => `both sides: ${await checkShowBothSides(s, 'burrow', TRANSFER_BYTES, t0)}`);
        }, 150_000);

        it('with a PSK, IPv6 outside: pings inside over IPv4 and IPv6, 100 MB peer -> Burrow over IPv6, wg show both sides', async () => {
          const t0 = Date.now();
          const s = await openSession(scope, implementation, { role, psk: true, outer: 'IPv6' });
          await cell(role, 'PSK, IPv6 outside', async () => {
            await establish(s);
            const t = await tcpTransfer(s.b, s.a, PEER_IN6, TRANSFER_BYTES);
            expect(t.bytes).toBe(TRANSFER_BYTES);
            expect(t.receivedSha256).toBe(t.sentSha256);
            // The PSK checks are in wg show below: both sides report one.
            await checkShowBothSides(s, 'peer', TRANSFER_BYTES, t0);
            return `pings v4+v6, 100 MB to Burrow over IPv6, sha256 equal, ${mbits(t.bytes, t.ms)}; wg show both sides`;
          });
        }, 150_000);

        if (role === 'burrow-initiates') {
          it("rekeys after 120 s on Burrow's clock without losing a ping", async () => {
            await cell(role, 'rekey', () => burrowRekey(scope, implementation));
          }, 60_000);
        }

        it('a peer restart in the middle of a 100 MB transfer: the session is back within the bound, the data intact', async () => {
          await cell(role, 'restart', () => restartMidTransfer(scope, implementation, role));
        }, 150_000);

        if (role === 'peer-initiates') {
          it('rekeys after 120 s of real time, started by the peer, without losing a ping', async () => {
            await cell(role, 'rekey', async () => (await peerRekey)());
          }, 200_000);
        }
      });
    }
  });
}

/** Burrow initiated; its clock passes REKEY_AFTER_TIME; the next packets start a new handshake. */
async function burrowRekey(scope: NetnsScope, implementation: PeerImplementation): Promise<string> {
  const s = await openSession(scope, implementation, { role: 'burrow-initiates', psk: true, outer: 'IPv4' });
  await establish(s);
  const peerHandshake = async (): Promise<number> => handshakeUnixSeconds(implementation, (await s.peer.show()).peers[0]!.latestHandshake);
  const first = await peerHandshake();
  // So that the peer's handshake time, in whole seconds, moves even where it is
  // reported as an age (then it is known to ±1 s).
  await sleep(2_100);
  // Before 120 s, traffic starts no handshake.
  expect(await ping(s.a, PEER_IN4, 5, 0.05)).toEqual({ sent: 5, received: 5 });
  expect(s.burrow.handshakes()).toHaveLength(1);

  await s.burrow.advanceClock(REKEY_AFTER_TIME + 1_000);
  const moved = Date.now();
  // The old keypair carries these while the new handshake runs: none is lost.
  expect(await ping(s.a, PEER_IN4, 20, 0.05)).toEqual({ sent: 20, received: 20 });
  const hs = await s.burrow.waitForHandshake(1, 5_000);
  expect(hs.role).toBe('initiator');
  expect(s.burrow.handshakes()).toHaveLength(2);
  const after = await peerHandshake();
  expect(after).toBeGreaterThan(first);
  // And the new keys carry data both ways.
  expect(await ping(s.b, BURROW_IN6, 3)).toEqual({ sent: 3, received: 3 });
  return `Burrow's clock +${(REKEY_AFTER_TIME + 1000) / 1000} s: new handshake (Burrow initiator) ${hs.at - moved} ms later, 20/20 pings across it; the peer's handshake time moved ${after - first} s`;
}

/** The peer initiated; it pings Burrow every 0.5 s for 128 s; it must rekey past 120 s. */
async function watchPeerRekey(scope: NetnsScope, implementation: PeerImplementation): Promise<string> {
  const s = await openSession(scope, implementation, { role: 'peer-initiates', psk: false, outer: 'IPv6' });
  await establish(s);
  const first = s.burrow.handshakes()[0]!;
  const peerHandshake = async (): Promise<number> => handshakeUnixSeconds(implementation, (await s.peer.show()).peers[0]!.latestHandshake);
  const firstPeer = await peerHandshake();
  const pings = await ping(s.b, BURROW_IN4, 256, 0.5);
  const hs = s.burrow.handshakes();
  expect(hs.length).toBeGreaterThanOrEqual(2);
  expect(hs[1]!.role).toBe('responder');
  const after = hs[1]!.at - first.at;
  expect(after).toBeGreaterThanOrEqual(REKEY_AFTER_TIME - 1_000);
  expect(pings.sent).toBe(256);
  expect(pings.received).toBe(256);
  // ±1 s on each reading where the peer reports an age.
  expect((await peerHandshake()) - firstPeer).toBeGreaterThanOrEqual(118);
  return `the peer rekeyed ${(after / 1000).toFixed(1)} s after the first handshake (Burrow responder), ${pings.received}/${pings.sent} pings across it`;
}

/**
 * A 100 MB transfer from the initiating side; the peer is stopped and started again when
 * about a tenth has moved. The session must come back within the bound, and the transfer
 * complete with the same SHA-256.
 */
async function restartMidTransfer(scope: NetnsScope, implementation: PeerImplementation, role: Role): Promise<string> {
  const s = await openSession(scope, implementation, { role, psk: false, outer: 'IPv4' });
  await establish(s);
  // The side that starts sessions also sends the data: after the restart it keeps
  // sending, which is what brings the session back (a silent receiver without the
  // other's endpoint could not, by design).
  const burrowSends = role === 'burrow-initiates';
  const [from, to, address] = burrowSends ? [s.a, s.b, BURROW_IN4] : [s.b, s.a, PEER_IN4];
  const moved = async (): Promise<number> => {
    const p = (await s.burrow.show()).peers[0]!;
    return burrowSends ? p.txBytes : p.rxBytes;
  };
  const base = await moved();
  const transfer = tcpTransfer(from, to, address, TRANSFER_BYTES, 5202);
  transfer.catch(() => undefined); // awaited below; keep an early failure from going unhandled
  const deadline = Date.now() + 30_000;
  while ((await moved()) - base < TRANSFER_BYTES / 10) {
    if (Date.now() > deadline) throw new Error('the transfer did not start');
    await sleep(20);
  }
  const handshakesBefore = s.burrow.handshakes().length;
  const stoppedAt = Date.now();
  const movedAtStop = (await moved()) - base;
  await s.restartPeer();
  const upAt = Date.now();
  const hs = await s.burrow.waitForHandshake(handshakesBefore, RESTART_BOUND_MS + RESTART_SLACK_MS + 5_000);
  const back = hs.at - stoppedAt;
  const t = await transfer;
  expect(t.bytes).toBe(TRANSFER_BYTES);
  expect(t.receivedSha256).toBe(t.sentSha256);
  expect(movedAtStop).toBeLessThan(TRANSFER_BYTES);
  expect(hs.role).toBe(burrowSends ? 'initiator' : 'responder');
  expect(back).toBeLessThanOrEqual(RESTART_BOUND_MS + RESTART_SLACK_MS);
  return `stopped at ${fmtBytes(movedAtStop)}, restarted in ${upAt - stoppedAt} ms, session back ${(back / 1000).toFixed(1)} s after the stop (Burrow ${hs.role}; bound ${(RESTART_BOUND_MS / 1000).toFixed(1)} s + ${RESTART_SLACK_MS / 1000} s for the restart), 100 MB intact in ${(t.ms / 1000).toFixed(1)} s`;
}
