// Crypto and handshake throughput on one core: Burrow's portable @noble backends beside
// node:crypto (OpenSSL) doing the same work in the same process, as a ratio.
//   node --import tsx bench/crypto.ts
import { type Aead, nobleAead } from '../crypto/aead.js';
import { tai64n } from '../crypto/tai64n.js';
import { type Dh, nobleDh } from '../crypto/x25519.js';
import { createAddonAead } from '../src/runtime/addon-crypto.js';
import { nodeAead, nodeDh } from '../src/runtime/node-crypto.js';
import {
  consumeInitiation, consumeResponse, createIdentity, createInitiation, createPeerSecrets, createResponse,
  newInitiationGuard,
} from '../tunnel/handshake.js';
import { decodeMessage, type Initiation, type Response } from '../tunnel/messages.js';
import { measure, report } from './lib.js';

const PACKET = 1420;

function aeadRate(aead: Aead, label: string) {
  const key = new Uint8Array(32).fill(3);
  const buf = new Uint8Array(PACKET + 16);
  const aad = new Uint8Array(0);
  let counter = 0;
  const sealRate = measure(`${label} seal`, () => { aead.seal(key, counter++, buf.subarray(0, PACKET), aad, buf); });
  aead.seal(key, 7, buf.subarray(0, PACKET), aad, buf);
  const sealed = buf.slice();
  const out = new Uint8Array(PACKET);
  const openRate = measure(`${label} open`, () => { if (!aead.open(key, 7, sealed, aad, out)) throw new Error('open failed'); });
  return [sealRate, openRate] as const;
}

function handshakeRates(dh: Dh, aead: Aead, label: string) {
  const b = { dh, aead };
  const alice = createIdentity(b, dh.generatePrivateKey());
  const bob = createIdentity(b, dh.generatePrivateKey());
  const bobAtAlice = createPeerSecrets(b, alice, bob.publicKey)!;
  const aliceAtBob = { secrets: createPeerSecrets(b, bob, alice.publicKey)!, guard: newInitiationGuard() };
  let seconds = 1_700_000_000;
  let now = 0;
  const decode = <T>(m: Uint8Array) => (decodeMessage(m) as unknown as { message: T }).message;

  // Initiator side: create an initiation, consume the response to it.
  const responses: { init: ReturnType<typeof createInitiation>; resp: Uint8Array }[] = [];
  for (let i = 0; i < 64; i++) {
    const init = createInitiation(b, alice, bobAtAlice, i, dh.generatePrivateKey(), tai64n(seconds++, 0))!;
    const consumed = consumeInitiation(b, bob, decode<Initiation>(init.message), (now += 1000), () => aliceAtBob);
    if (typeof consumed === 'string') throw new Error(consumed);
    responses.push({ init, resp: createResponse(b, consumed, i, dh.generatePrivateKey())!.message });
  }
  let k = 0;
  const initiator = measure(`${label} initiator`, () => {
    createInitiation(b, alice, bobAtAlice, 1, dh.generatePrivateKey(), tai64n(seconds, 0));
    const { init, resp } = responses[k++ % responses.length]!;
    const state = { ...init!.state, ephemeralPrivate: init!.state.ephemeralPrivate.slice(), noise: { ...init!.state.noise } };
    if (typeof consumeResponse(b, alice, bobAtAlice, state, decode<Response>(resp)) === 'string') throw new Error('refused');
  }, { ms: 500 });

  // Responder side: consume an initiation, create the response.
  const inits: Uint8Array[] = [];
  for (let i = 0; i < 4096; i++) inits.push(createInitiation(b, alice, bobAtAlice, i, dh.generatePrivateKey(), tai64n(seconds++, 0))!.message);
  let j = 0;
  const responder = measure(`${label} responder`, () => {
    aliceAtBob.guard.lastTimestamp.fill(0);
    const consumed = consumeInitiation(b, bob, decode<Initiation>(inits[j++ % inits.length]!), (now += 1000), () => aliceAtBob);
    if (typeof consumed === 'string') throw new Error(consumed);
    createResponse(b, consumed, 1, dh.generatePrivateKey());
  }, { ms: 500 });
  return [initiator, responder] as const;
}

export function runCryptoBench(): void {
  const [nobleSeal, nobleOpen] = aeadRate(nobleAead, '@noble/ciphers');
  const [nodeSeal, nodeOpen] = aeadRate(nodeAead, 'node:crypto (OpenSSL)');
  const [addonSeal, addonOpen] = aeadRate(createAddonAead(), 'addon (OpenSSL, in place)');
  const mb = PACKET / 1e6;
  report(`ChaCha20-Poly1305 seal, ${PACKET}-byte packets, in place`, 'MB/s', nodeSeal, [nobleSeal, addonSeal], mb);
  report(`ChaCha20-Poly1305 open, ${PACKET}-byte packets`, 'MB/s', nodeOpen, [nobleOpen, addonOpen], mb);

  const [nobleInit, nobleResp] = handshakeRates(nobleDh, nobleAead, 'Burrow on @noble');
  const [nodeInit, nodeResp] = handshakeRates(nodeDh, nodeAead, 'Burrow on node:crypto');
  report('Handshakes per second, initiator side (create initiation + consume response)', 'hs/s', nodeInit, [nobleInit]);
  report('Handshakes per second, responder side (consume initiation + create response)', 'hs/s', nodeResp, [nobleResp]);
}

if (import.meta.url === `file://${process.argv[1]}`) runCryptoBench();
