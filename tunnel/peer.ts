// One configured peer: its keys, endpoint, keypairs, pending handshake, staged packets,
// timers and counters. The Device drives it; nothing here does I/O. Costly derived
// state (the static-static DH, the MAC keys) and the per-session parts (keypair slots,
// timers, the cookie jar) are made on first use, so a configured peer that never
// handshakes holds its key's text, its preshared key and a few small fields: about 250
// bytes with its allowed IPs (bench/server.ts measures it).

import { decodeKey, encodeKey } from '../crypto/keys.js';
import { CookieJar } from './cookie.js';
import {
  createPeerSecrets, type Identity, type InitiationGuard, type InitiatorState, newInitiationGuard, type PeerSecrets, wipePeerSecrets,
} from './handshake.js';
import { type Keypair, KeypairSlots } from './keypair.js';
import type { Endpoint } from './endpoint.js';
import type { Backends } from './noise.js';
import { PeerTimers } from './timers.js';

export { type Endpoint, sameEndpoint } from './endpoint.js';

export type HandshakeState =
  | { readonly kind: 'none' }
  | { readonly kind: 'initiation-sent'; readonly localIndex: number; readonly initiator: InitiatorState; readonly sentAt: number };

const NONE: HandshakeState = Object.freeze({ kind: 'none' });
const NO_KEYPAIRS: readonly Keypair[] = Object.freeze([]);
export const noHandshake = (): HandshakeState => NONE;

export class Peer {
  /** The public key in `wg` text form: the peer's identity and its map key. */
  readonly name: string;
  presharedKey: Uint8Array | undefined;
  endpoint: Endpoint | undefined;
  /** PersistentKeepalive in ms; 0 = off. */
  persistentKeepalive = 0;

  handshake: HandshakeState = NONE;
  /** Packets waiting for a usable keypair, each with header room in front. */
  staged: { buf: Uint8Array; length: number }[] | undefined;
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  lastHandshakeWall = 0;
  rxBytes = 0;
  txBytes = 0;
  /** The earliest deadline this peer is filed under in the device's heap. */
  scheduledAt = Infinity;

  #keypairs: KeypairSlots | undefined;
  #timers: PeerTimers | undefined;
  #secrets: PeerSecrets | null | undefined;
  #guard: InitiationGuard | undefined;
  #cookies: CookieJar | undefined;

  constructor(publicKey: Uint8Array) {
    this.name = encodeKey(publicKey);
  }

  /** The current, previous and next keypairs; the slots are made on first use. */
  get keypairs(): KeypairSlots {
    return (this.#keypairs ??= new KeypairSlots());
  }

  /** The current keypair, without making the slots of a peer that never had one. */
  get currentKeypair(): Keypair | undefined {
    return this.#keypairs?.current;
  }

  /** Empties the keypair slots; returns what was there. */
  clearKeypairs(): readonly Keypair[] {
    return this.#keypairs?.clear() ?? NO_KEYPAIRS;
  }

  /** The timers (timers.ts), made when one is first armed or read. */
  get timers(): PeerTimers {
    return (this.#timers ??= new PeerTimers());
  }

  /** The earliest pending deadline; Infinity for a peer whose timers were never made. */
  nextDeadline(): number {
    return this.#timers === undefined ? Infinity : this.#timers.next();
  }

  /** Clears every timer (a peer without timers has none to clear). */
  clearTimers(): void {
    this.#timers?.clearAll();
  }

  /** Engine-clock time of the last initiation sent (REKEY_TIMEOUT rate limit); -Infinity: none. */
  get lastSentHandshake(): number {
    return this.#timers === undefined ? -Infinity : this.#timers.lastSentHandshake;
  }

  set lastSentHandshake(t: number) {
    if (this.#timers !== undefined || t !== -Infinity) this.timers.lastSentHandshake = t;
  }

  /** Wall-clock ms of the TAI64N timestamp in our last initiation (kept monotonic); -Infinity: none. */
  get lastInitiationWall(): number {
    return this.#timers === undefined ? -Infinity : this.#timers.lastInitiationWall;
  }

  set lastInitiationWall(t: number) {
    if (this.#timers !== undefined || t !== -Infinity) this.timers.lastInitiationWall = t;
  }

  /** The public key's bytes, decoded when needed (handshakes, not packets): an idle peer keeps only its text. */
  get publicKey(): Uint8Array {
    return decodeKey(this.name);
  }

  /** The derived handshake secrets, or null when the key is of low order. */
  secretsFor(b: Backends, id: Identity): PeerSecrets | null {
    if (this.#secrets === undefined) this.#secrets = createPeerSecrets(b, id, this.publicKey, this.presharedKey);
    return this.#secrets;
  }

  /** The derived secrets as they are, without deriving them (for Device.inspect()). */
  get derivedSecrets(): PeerSecrets | null | undefined {
    return this.#secrets;
  }

  /** Wipes and forgets the derived secrets (the private or preshared key changed, or the peer is removed). */
  resetSecrets(): void {
    if (this.#secrets) wipePeerSecrets(this.#secrets);
    this.#secrets = undefined;
  }

  get guard(): InitiationGuard {
    return (this.#guard ??= newInitiationGuard());
  }

  get cookies(): CookieJar {
    return (this.#cookies ??= new CookieJar(this.publicKey));
  }

  /** Forgets the cookie state, without making a jar (a BLAKE2s of the key) for a peer that never had one. */
  clearCookies(): void {
    this.#cookies?.clear();
  }

  /** The keypair to send with: current, while within REJECT_AFTER_TIME and the counter limit. */
  sendingKeypair(now: number, rejectAfterTime: number, rejectAfterMessages: number): Keypair | undefined {
    const kp = this.#keypairs?.current;
    if (kp === undefined || now - kp.created >= rejectAfterTime || kp.sendCounter >= rejectAfterMessages) return undefined;
    return kp;
  }
}
