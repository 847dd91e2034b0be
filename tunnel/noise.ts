// The Noise_IKpsk2 handshake pattern (Noise Protocol Framework §7.5 and §9), the part of
// WireGuard's handshake that is pure Noise. WireGuard's message layout, indices, MACs and
// timestamp rules are built on it in handshake.ts. Written against the generic pattern
// so that it is checked against the published Noise test vectors as well.
//
//   IKpsk2:
//     <- s
//     ...
//     -> e, es, s, ss          (initiation: payload = TAI64N timestamp in WireGuard)
//     <- e, ee, se, psk        (response:   payload = empty in WireGuard)
//
// With a PSK in the pattern, the `e` token also does MixKey(e.public) (§9.2). Every key
// `k` below encrypts exactly one message, so its nonce is always 0.

import { type Aead, open, seal } from '../crypto/aead.js';
import { hash, hmac as blake2sHmac, type Hmac, kdf2, kdf3 } from '../crypto/blake2s.js';
import type { Dh } from '../crypto/x25519.js';
import { utf8Encode } from '../crypto/utf8.js';

const EMPTY = new Uint8Array(0);

/** The chaining key and handshake hash: Noise's SymmetricState minus the cipher. */
export interface SymmetricState {
  chainingKey: Uint8Array;
  hash: Uint8Array;
}

/** InitializeSymmetric(protocol_name) then MixHash(prologue). */
export function initialState(protocolName: string, prologue: Uint8Array): SymmetricState {
  const name = utf8Encode(protocolName);
  let h: Uint8Array;
  if (name.length <= 32) {
    h = new Uint8Array(32);
    h.set(name);
  } else {
    h = hash(name);
  }
  return { chainingKey: h.slice(), hash: hash(h, prologue) };
}

/** Pre-message `<- s`: the responder's static key is known to both sides. */
export function mixResponderStatic(state: SymmetricState, responderStatic: Uint8Array): SymmetricState {
  return { chainingKey: state.chainingKey, hash: hash(state.hash, responderStatic) };
}

function mixHash(s: SymmetricState, data: Uint8Array): void {
  s.hash = hash(s.hash, data);
}

/** MixKey(ikm): (ck, k) = KDF2(ck, ikm); returns k. */
function mixKey(s: SymmetricState, ikm: Uint8Array, hmac: Hmac): Uint8Array {
  const [ck, k] = kdf2(s.chainingKey, ikm, hmac);
  s.chainingKey.fill(0);
  s.chainingKey = ck;
  return k;
}

/** MixKeyAndHash(psk): (ck, t, k) = KDF3(ck, psk); MixHash(t); returns k. */
function mixKeyAndHash(s: SymmetricState, psk: Uint8Array, hmac: Hmac): Uint8Array {
  const [ck, t, k] = kdf3(s.chainingKey, psk, hmac);
  s.chainingKey.fill(0);
  s.chainingKey = ck;
  mixHash(s, t);
  t.fill(0);
  return k;
}

function encryptAndHash(s: SymmetricState, aead: Aead, k: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = seal(aead, k, 0, plaintext, s.hash);
  k.fill(0);
  mixHash(s, c);
  return c;
}

function decryptAndHash(s: SymmetricState, aead: Aead, k: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
  const p = open(aead, k, 0, ciphertext, s.hash);
  k.fill(0);
  if (p === null) return null;
  mixHash(s, ciphertext);
  return p;
}

export interface Backends {
  readonly dh: Dh;
  readonly aead: Aead;
  /** HMAC-BLAKE2s for the KDFs; @noble's when absent. */
  readonly hmac?: Hmac;
}

export type NoiseRefusal = 'bad-dh' | 'bad-static-tag' | 'bad-payload-tag';

// --- Message 1: -> e, es, s, ss ------------------------------------------------------

export interface InitiationOut {
  ephemeral: Uint8Array; // e.public
  encryptedStatic: Uint8Array; // s.public sealed: 48 bytes
  encryptedPayload: Uint8Array;
  /** What the initiator keeps to consume the response. */
  state: SymmetricState;
}

/**
 * Writes message 1. `state` must already hold the `<- s` pre-message. `staticStatic`
 * is DH(s, rs), which a caller may precompute once per peer. Returns null when a DH
 * gives all zeros (a low-order responder key).
 */
export function writeInitiation(
  b: Backends, state: SymmetricState, local: { privateKey: Uint8Array; publicKey: Uint8Array },
  remoteStatic: Uint8Array, ephemeralPrivate: Uint8Array, payload: Uint8Array, staticStatic?: Uint8Array,
): InitiationOut | null {
  const s: SymmetricState = { chainingKey: state.chainingKey.slice(), hash: state.hash };
  const h = b.hmac ?? blake2sHmac;
  // e
  const ephemeral = b.dh.publicKey(ephemeralPrivate);
  mixHash(s, ephemeral);
  mixKey(s, ephemeral, h).fill(0);
  // es
  const es = b.dh.sharedSecret(ephemeralPrivate, remoteStatic);
  if (es === null) return null;
  const k1 = mixKey(s, es, h);
  es.fill(0);
  // s
  const encryptedStatic = encryptAndHash(s, b.aead, k1, local.publicKey);
  // ss
  const ss = staticStatic ?? b.dh.sharedSecret(local.privateKey, remoteStatic);
  if (ss === null) return null;
  const k2 = mixKey(s, ss, h);
  // payload
  const encryptedPayload = encryptAndHash(s, b.aead, k2, payload);
  return { ephemeral, encryptedStatic, encryptedPayload, state: s };
}

export interface InitiationIn {
  remoteStatic: Uint8Array;
  remoteEphemeral: Uint8Array;
  payload: Uint8Array;
  state: SymmetricState;
}

/**
 * Reads message 1 as the responder. `state` holds the `<- s` pre-message with the
 * responder's own static key. `staticStaticFor(remoteStatic)` returns DH(s, rs) for a
 * known initiator, or undefined to refuse an unknown one before any more work.
 */
export function readInitiation(
  b: Backends, state: SymmetricState, localPrivate: Uint8Array,
  m: { ephemeral: Uint8Array; encryptedStatic: Uint8Array; encryptedPayload: Uint8Array },
  staticStaticFor: (remoteStatic: Uint8Array) => Uint8Array | null | undefined,
): InitiationIn | NoiseRefusal | 'unknown-peer' {
  const s: SymmetricState = { chainingKey: state.chainingKey.slice(), hash: state.hash };
  const h = b.hmac ?? blake2sHmac;
  // e
  const remoteEphemeral = m.ephemeral.slice();
  mixHash(s, remoteEphemeral);
  mixKey(s, remoteEphemeral, h).fill(0);
  // es
  const es = b.dh.sharedSecret(localPrivate, remoteEphemeral);
  if (es === null) return 'bad-dh';
  const k1 = mixKey(s, es, h);
  es.fill(0);
  // s
  const remoteStatic = decryptAndHash(s, b.aead, k1, m.encryptedStatic);
  if (remoteStatic === null) return 'bad-static-tag';
  // ss
  const ss = staticStaticFor(remoteStatic);
  if (ss === undefined) return 'unknown-peer';
  if (ss === null) return 'bad-dh';
  const k2 = mixKey(s, ss, h);
  // payload
  const payload = decryptAndHash(s, b.aead, k2, m.encryptedPayload);
  if (payload === null) return 'bad-payload-tag';
  return { remoteStatic, remoteEphemeral, payload, state: s };
}

// --- Message 2: <- e, ee, se, psk ----------------------------------------------------

export interface ResponseOut {
  ephemeral: Uint8Array;
  encryptedPayload: Uint8Array;
  state: SymmetricState;
}

/** Writes message 2 as the responder, after readInitiation. `psk` is 32 zero bytes when none. */
export function writeResponse(
  b: Backends, state: SymmetricState, remoteStatic: Uint8Array, remoteEphemeral: Uint8Array,
  ephemeralPrivate: Uint8Array, psk: Uint8Array, payload: Uint8Array = EMPTY,
): ResponseOut | null {
  const s: SymmetricState = { chainingKey: state.chainingKey.slice(), hash: state.hash };
  const h = b.hmac ?? blake2sHmac;
  // e
  const ephemeral = b.dh.publicKey(ephemeralPrivate);
  mixHash(s, ephemeral);
  mixKey(s, ephemeral, h).fill(0);
  // ee
  const ee = b.dh.sharedSecret(ephemeralPrivate, remoteEphemeral);
  if (ee === null) return null;
  mixKey(s, ee, h).fill(0);
  ee.fill(0);
  // se
  const se = b.dh.sharedSecret(ephemeralPrivate, remoteStatic);
  if (se === null) return null;
  mixKey(s, se, h).fill(0);
  se.fill(0);
  // psk
  const k = mixKeyAndHash(s, psk, h);
  // payload
  const encryptedPayload = encryptAndHash(s, b.aead, k, payload);
  return { ephemeral, encryptedPayload, state: s };
}

/** Reads message 2 as the initiator, with the state writeInitiation returned. */
export function readResponse(
  b: Backends, state: SymmetricState, localPrivate: Uint8Array, ephemeralPrivate: Uint8Array,
  psk: Uint8Array, m: { ephemeral: Uint8Array; encryptedPayload: Uint8Array },
): { payload: Uint8Array; state: SymmetricState } | NoiseRefusal {
  const s: SymmetricState = { chainingKey: state.chainingKey.slice(), hash: state.hash };
  const h = b.hmac ?? blake2sHmac;
  // e
  const remoteEphemeral = m.ephemeral;
  mixHash(s, remoteEphemeral);
  mixKey(s, remoteEphemeral, h).fill(0);
  // ee
  const ee = b.dh.sharedSecret(ephemeralPrivate, remoteEphemeral);
  if (ee === null) return 'bad-dh';
  mixKey(s, ee, h).fill(0);
  ee.fill(0);
  // se
  const se = b.dh.sharedSecret(localPrivate, remoteEphemeral);
  if (se === null) return 'bad-dh';
  mixKey(s, se, h).fill(0);
  se.fill(0);
  // psk
  const k = mixKeyAndHash(s, psk, h);
  // payload
  const payload = decryptAndHash(s, b.aead, k, m.encryptedPayload);
  if (payload === null) {
    s.chainingKey.fill(0);
    return 'bad-payload-tag';
  }
  return { payload, state: s };
}

/**
 * Split(): the two transport keys, (initiator→responder, responder→initiator).
 * Wipes the chaining key.
 */
export function split(state: SymmetricState, hmac: Hmac = blake2sHmac): [Uint8Array, Uint8Array] {
  const keys = kdf2(state.chainingKey, EMPTY, hmac);
  state.chainingKey.fill(0);
  return keys;
}
