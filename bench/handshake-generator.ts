// The load for bench/handshakes.ts: a process, run inside the generator's namespace, that
// plays many WireGuard clients at once against one responder, with the repository's own
// handshake code (tunnel/handshake.ts) and node:crypto.
//
//   node --import tsx bench/handshake-generator.ts KEYFILE PER_PEER
//     KEYFILE (0600, JSON): { "server": base64 public key, "peers": [base64 private keys] }
//   then, on standard input, one line per measurement:
//     run HOST PORT MS WINDOW
//   and on standard output one JSON line per measurement (and one "ready" line first).
//
// Every initiation is made before any measurement (the generator's DH is not what is
// measured): PER_PEER rounds over the peers, each with a fresh ephemeral key and a TAI64N
// timestamp one second after the peer's previous one, so a responder that has not seen
// them (a fresh process per measurement) takes each once. The peers take turns, so one
// peer's initiations are far more than 20 ms apart (the references' per-peer flood rule)
// whenever the window is much smaller than the peer count.
//
// A measurement keeps WINDOW initiations in flight (closed loop): each response sends
// the next one. A cookie reply is opened (tunnel/cookie.ts's CookieJar), and from then on
// every initiation carries a mac2 with that cookie, as a client does; the one it answered
// goes again. An initiation unanswered after LOST_AFTER_MS counts as lost and its place
// in the window goes to the next. The first VERIFY responses of each measurement are
// consumed in full (consumeResponse: the responder's DH checked), so a count is of real
// handshakes, not of packets that look like responses.

import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { decodeKey } from '../crypto/keys.js';
import { tai64n } from '../crypto/tai64n.js';
import { MESSAGE_COOKIE_REPLY, MESSAGE_RESPONSE } from '../tunnel/constants.js';
import { CookieJar, mac1KeyFor, writeMacs } from '../tunnel/cookie.js';
import { consumeResponse, createIdentity, createInitiation, createPeerSecrets, type Identity, type InitiatorState, type PeerSecrets } from '../tunnel/handshake.js';
import { decodeMessage, INITIATION_MAC1_OFFSET, INITIATION_MAC2_OFFSET } from '../tunnel/messages.js';
import type { Backends } from '../tunnel/noise.js';
import { nodeAead, nodeDh } from '../src/runtime/node-crypto.js';

const LOST_AFTER_MS = 250;
const VERIFY = 8;

export interface GeneratorResult {
  /** Responses to our initiations, counted until the deadline or until every initiation was answered. */
  responses: number;
  cookieReplies: number;
  lost: number;
  elapsedMs: number;
  /** Responses consumed in full; all of them completed a handshake. */
  verified: number;
  /** Initiations available; a measurement that used them all ended early. */
  supply: number;
}

const b: Backends = { dh: nodeDh, aead: nodeAead };

interface Prepared {
  message: Uint8Array;
  mac1: Uint8Array;
  peer: number;
}

function prepare(serverKey: Uint8Array, privateKeys: Uint8Array[], perPeer: number) {
  const ids: Identity[] = privateKeys.map((k) => createIdentity(b, k));
  const secrets: PeerSecrets[] = ids.map((id) => {
    const s = createPeerSecrets(b, id, serverKey);
    if (s === null) throw new Error('the server key is of low order');
    return s;
  });
  const base = Math.floor(Date.now() / 1000);
  const prepared: Prepared[] = [];
  const states: InitiatorState[] = [];
  for (let round = 0; round < perPeer; round++) {
    for (let p = 0; p < ids.length; p++) {
      const index = prepared.length;
      const sent = createInitiation(b, ids[p]!, secrets[p]!, index + 1, nodeDh.generatePrivateKey(), tai64n(base + round, 0));
      if (sent === null) throw new Error('could not make an initiation');
      prepared.push({ message: sent.message, mac1: sent.mac1, peer: p });
      if (index < VERIFY) states.push(sent.state);
    }
  }
  return { ids, secrets, prepared, states };
}

/** A fresh copy of an initiator's state: consumeResponse wipes the one it is given. */
const copyState = (s: InitiatorState): InitiatorState => ({
  localIndex: s.localIndex,
  ephemeralPrivate: s.ephemeralPrivate.slice(),
  noise: { chainingKey: s.noise.chainingKey.slice(), hash: s.noise.hash.slice() },
});

async function measure(host: string, port: number, ms: number, window: number, p: ReturnType<typeof prepare>, serverKey: Uint8Array): Promise<GeneratorResult> {
  const { prepared } = p;
  for (const x of prepared) x.message.fill(0, INITIATION_MAC2_OFFSET); // no cookie yet
  const mac1Key = mac1KeyFor(serverKey);
  const jar = new CookieJar(serverKey);
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  const sentAt = new Map<number, number>();
  let next = 0;
  let responses = 0;
  let cookieReplies = 0;
  let lost = 0;
  let verified = 0;
  let cookie: Uint8Array | undefined;
  const start = performance.now();
  let end = start;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const send = (index: number): void => {
    const x = prepared[index]!;
    if (cookie !== undefined) writeMacs(x.message, INITIATION_MAC1_OFFSET, mac1Key, cookie);
    sentAt.set(index, performance.now());
    socket.send(x.message, port, host);
  };
  const fill = (): void => {
    const now = performance.now();
    if (now - start >= ms || (next >= prepared.length && sentAt.size === 0)) {
      end = now;
      finish();
      return;
    }
    while (sentAt.size < window && next < prepared.length) send(next++);
  };
  socket.on('message', (data) => {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (bytes[0] === MESSAGE_RESPONSE && bytes.length === 92) {
      const index = data.readUInt32LE(8) - 1;
      if (!sentAt.delete(index)) return;
      responses++;
      if (index < VERIFY) {
        const decoded = decodeMessage(bytes);
        const x = prepared[index]!;
        if (decoded.ok && decoded.message.type === MESSAGE_RESPONSE) {
          const keys = consumeResponse(b, p.ids[x.peer]!, p.secrets[x.peer]!, copyState(p.states[index]!), decoded.message);
          if (typeof keys !== 'string') verified++;
        }
      }
      fill();
    } else if (bytes[0] === MESSAGE_COOKIE_REPLY && bytes.length === 64) {
      const index = data.readUInt32LE(4) - 1;
      if (!sentAt.has(index)) return;
      const decoded = decodeMessage(bytes);
      if (!decoded.ok || decoded.message.type !== MESSAGE_COOKIE_REPLY) return;
      jar.sent(prepared[index]!.mac1);
      if (!jar.consume(decoded.message, performance.now())) return;
      cookie = jar.current(performance.now());
      cookieReplies++;
      send(index);
    }
  });
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [index, at] of sentAt) {
      if (now - at < LOST_AFTER_MS) continue;
      sentAt.delete(index);
      lost++;
    }
    fill();
  }, 20);
  fill();
  await done;
  clearInterval(sweep);
  socket.close();
  return { responses, cookieReplies, lost, elapsedMs: end - start, verified, supply: prepared.length };
}

async function main(): Promise<void> {
  const [keyFile, perPeerText] = process.argv.slice(2);
  if (keyFile === undefined || perPeerText === undefined) {
    process.stderr.write('usage: handshake-generator.ts KEYFILE PER_PEER, then "run HOST PORT MS WINDOW" lines on stdin\n');
    process.exit(2);
  }
  const keys = JSON.parse(readFileSync(keyFile, 'utf8')) as { server: string; peers: string[] };
  const serverKey = decodeKey(keys.server);
  const prepared = prepare(serverKey, keys.peers.map(decodeKey), Number(perPeerText));
  process.stdout.write(`${JSON.stringify({ ready: prepared.prepared.length })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    const [verb, host, port, ms, window] = line.trim().split(/\s+/);
    if (verb !== 'run' || host === undefined) continue;
    const result = await measure(host, Number(port), Number(ms), Number(window), prepared, serverKey);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
}

await main();
