// WireGuard's handshake messages (paper §5.4.2–§5.4.5) on top of the Noise_IKpsk2 pattern
// in noise.ts: the prologue is IDENTIFIER, the initiation's payload is a TAI64N
// timestamp, the response's is empty, and every message carries sender/receiver indices
// and mac1/mac2. This file adds the rules Noise leaves to the application: refuse an
// unknown static key, a bad mac1, a timestamp not newer than the last one accepted from
// that peer, and initiations from one peer faster than INITIATIONS_PER_SECOND.
//
// Sans-I/O like the rest of tunnel/: the caller supplies indices, ephemeral keys, the
// wall-clock timestamp and the monotonic `now`.

import { TAI64N_LENGTH, tai64nAfter } from '../crypto/tai64n.js';
import { utf8Encode } from '../crypto/utf8.js';
import { CONSTRUCTION, IDENTIFIER, INITIATIONS_PER_SECOND } from './constants.js';
import { mac1KeyFor, verifyMac1, writeMacs } from './cookie.js';
import {
  encodeInitiation, encodeResponse, INITIATION_MAC1_OFFSET, type Initiation, type Response, RESPONSE_MAC1_OFFSET,
} from './messages.js';
import {
  type Backends, initialState, mixResponderStatic, readInitiation, readResponse, split, type SymmetricState,
  writeInitiation, writeResponse,
} from './noise.js';

const PROTOCOL = initialState(CONSTRUCTION, utf8Encode(IDENTIFIER));
const EMPTY = new Uint8Array(0);
const NO_PSK = new Uint8Array(32);

/** Our static identity and what is derived from it once. */
export interface Identity {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** mac1 key of messages sent to us. */
  readonly mac1Key: Uint8Array;
  /** The symmetric state after the `<- s` pre-message, as responder. */
  readonly responderBase: SymmetricState;
}

export function createIdentity(b: Backends, privateKey: Uint8Array): Identity {
  const publicKey = b.dh.publicKey(privateKey);
  return { privateKey, publicKey, mac1Key: mac1KeyFor(publicKey), responderBase: mixResponderStatic(PROTOCOL, publicKey) };
}

/** What we derive once per configured peer. */
export interface PeerSecrets {
  readonly remoteStatic: Uint8Array;
  readonly presharedKey: Uint8Array;
  /** DH(our static, their static), precomputed as the references do. */
  readonly staticStatic: Uint8Array;
  /** mac1 key of messages sent to this peer. */
  readonly mac1Key: Uint8Array;
  /** The symmetric state after `<- s` with the peer's key, as initiator. */
  readonly initiatorBase: SymmetricState;
}

/** Returns null when the peer's key is of low order (DH gives zeros): such a peer is refused. */
export function createPeerSecrets(b: Backends, id: Identity, remoteStatic: Uint8Array, presharedKey?: Uint8Array): PeerSecrets | null {
  const staticStatic = b.dh.sharedSecret(id.privateKey, remoteStatic);
  if (staticStatic === null) return null;
  return {
    remoteStatic: remoteStatic.slice(),
    presharedKey: presharedKey ? presharedKey.slice() : NO_PSK,
    staticStatic,
    mac1Key: mac1KeyFor(remoteStatic),
    initiatorBase: mixResponderStatic(PROTOCOL, remoteStatic),
  };
}

/** Wipes the secrets of a PeerSecrets that will not be used again (removal, key change). */
export function wipePeerSecrets(s: PeerSecrets): void {
  s.staticStatic.fill(0);
  if (s.presharedKey !== NO_PSK) s.presharedKey.fill(0);
}

/** Per-peer memory that guards against replayed and flooded initiations. */
export interface InitiationGuard {
  lastTimestamp: Uint8Array;
  lastConsumed: number;
}

export const newInitiationGuard = (): InitiationGuard => ({ lastTimestamp: new Uint8Array(TAI64N_LENGTH), lastConsumed: -Infinity });

/** Transport keys from a completed handshake. */
export interface SessionKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
}

export type HandshakeRefusal =
  | 'bad-mac1' | 'unknown-peer' | 'bad-dh' | 'bad-static-tag' | 'bad-payload-tag' | 'bad-timestamp' | 'stale-timestamp' | 'flood';

// --- Initiator ---------------------------------------------------------------------

export interface InitiatorState {
  readonly localIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  readonly noise: SymmetricState;
}

export interface Sent<S> {
  /** The message with its MACs written. */
  readonly message: Uint8Array;
  /** Its mac1, to match a cookie reply. */
  readonly mac1: Uint8Array;
  readonly state: S;
}

export function createInitiation(
  b: Backends, id: Identity, peer: PeerSecrets, localIndex: number, ephemeralPrivate: Uint8Array,
  timestamp: Uint8Array, cookie?: Uint8Array,
): Sent<InitiatorState> | null {
  const out = writeInitiation(b, peer.initiatorBase, id, peer.remoteStatic, ephemeralPrivate, timestamp, peer.staticStatic);
  if (out === null) return null;
  const message = encodeInitiation({
    senderIndex: localIndex, ephemeral: out.ephemeral, encryptedStatic: out.encryptedStatic, encryptedTimestamp: out.encryptedPayload,
  });
  const mac1 = writeMacs(message, INITIATION_MAC1_OFFSET, peer.mac1Key, cookie);
  return { message, mac1, state: { localIndex, ephemeralPrivate, noise: out.state } };
}

/** Consumes a response to our initiation `state`. The caller matched its receiver index. */
export function consumeResponse(b: Backends, id: Identity, peer: PeerSecrets, state: InitiatorState, msg: Response): SessionKeys | HandshakeRefusal {
  if (!verifyMac1(msg.bytes, RESPONSE_MAC1_OFFSET, id.mac1Key)) return 'bad-mac1';
  const done = readResponse(b, state.noise, id.privateKey, state.ephemeralPrivate, peer.presharedKey, {
    ephemeral: msg.ephemeral, encryptedPayload: msg.encryptedNothing,
  });
  if (typeof done === 'string') return done;
  const [sendKey, receiveKey] = split(done.state, b.hmac);
  // The handshake is over: what it kept to read the response is wiped (split wiped its copy).
  state.ephemeralPrivate.fill(0);
  state.noise.chainingKey.fill(0);
  return { sendKey, receiveKey, localIndex: state.localIndex, remoteIndex: msg.senderIndex, isInitiator: true };
}

// --- Responder ---------------------------------------------------------------------

export interface ConsumedInitiation<P> {
  readonly peer: P;
  readonly remoteIndex: number;
  readonly remoteEphemeral: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly noise: SymmetricState;
}

/**
 * Consumes an initiation addressed to us: mac1 first (cheap, before any DH), then the
 * Noise message, then the peer's timestamp and flood rules. `lookup` finds the peer by
 * its static key. On success the guard is updated: a replay of this message is refused.
 */
export function consumeInitiation<P extends { readonly secrets: PeerSecrets; readonly guard: InitiationGuard }>(
  b: Backends, id: Identity, msg: Initiation, now: number, lookup: (remoteStatic: Uint8Array) => P | undefined,
): ConsumedInitiation<P> | HandshakeRefusal {
  if (!verifyMac1(msg.bytes, INITIATION_MAC1_OFFSET, id.mac1Key)) return 'bad-mac1';
  let peer: P | undefined;
  const read = readInitiation(b, id.responderBase, id.privateKey, {
    ephemeral: msg.ephemeral, encryptedStatic: msg.encryptedStatic, encryptedPayload: msg.encryptedTimestamp,
  }, (remoteStatic) => {
    peer = lookup(remoteStatic);
    return peer?.secrets.staticStatic;
  });
  if (typeof read === 'string') return read;
  if (peer === undefined) return 'unknown-peer';
  const timestamp = read.payload;
  if (timestamp.length !== TAI64N_LENGTH) return 'bad-timestamp';
  if (!tai64nAfter(timestamp, peer.guard.lastTimestamp)) return 'stale-timestamp';
  if (now - peer.guard.lastConsumed < 1000 / INITIATIONS_PER_SECOND) return 'flood';
  peer.guard.lastTimestamp = timestamp;
  peer.guard.lastConsumed = now;
  return { peer, remoteIndex: msg.senderIndex, remoteEphemeral: read.remoteEphemeral, timestamp, noise: read.state };
}

/** Answers a consumed initiation; returns the response and the transport keys. */
export function createResponse<P extends { readonly secrets: PeerSecrets }>(
  b: Backends, consumed: ConsumedInitiation<P>, localIndex: number, ephemeralPrivate: Uint8Array, cookie?: Uint8Array,
): (Sent<undefined> & { keys: SessionKeys }) | null {
  const peer = consumed.peer.secrets;
  const out = writeResponse(b, consumed.noise, peer.remoteStatic, consumed.remoteEphemeral, ephemeralPrivate, peer.presharedKey, EMPTY);
  ephemeralPrivate.fill(0);
  consumed.noise.chainingKey.fill(0); // writeResponse worked on a copy; this one is done with
  if (out === null) return null;
  const message = encodeResponse({
    senderIndex: localIndex, receiverIndex: consumed.remoteIndex, ephemeral: out.ephemeral, encryptedNothing: out.encryptedPayload,
  });
  const mac1 = writeMacs(message, RESPONSE_MAC1_OFFSET, peer.mac1Key, cookie);
  const [receiveKey, sendKey] = split(out.state, b.hmac);
  return { message, mac1, state: undefined, keys: { sendKey, receiveKey, localIndex, remoteIndex: consumed.remoteIndex, isInitiator: false } };
}
