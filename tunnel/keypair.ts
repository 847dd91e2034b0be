// A keypair is the pair of transport keys one handshake derives (paper §5.4.5), with the
// send counter and the receive replay window. A peer holds up to three (§6.2, as the
// references keep them), in KeypairSlots:
//   current  — used to send;
//   previous — the one before, still accepted on receipt while packets in flight drain;
//   next     — a responder's fresh keypair, not used to send until the initiator proves
//              it has it by sending on it first (the initiator's keepalive or data).
// Rotation happens in two places only, as in the kernel's noise.c: install() when a
// handshake completes (add_new_keypair) and confirm() when the first packet arrives on
// `next` (received_with_keypair). Both return what they push out of the slots; the
// caller wipes those keypairs and frees their indices.

import type { SessionKeys } from './handshake.js';
import { ReplayWindow } from './replay.js';

export class Keypair {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  /** When the handshake that made it completed (engine clock, ms). */
  readonly created: number;
  /** The counter of the next message sent. */
  sendCounter = 0;
  readonly replay = new ReplayWindow();

  constructor(keys: SessionKeys, created: number) {
    this.sendKey = keys.sendKey;
    this.receiveKey = keys.receiveKey;
    this.localIndex = keys.localIndex;
    this.remoteIndex = keys.remoteIndex;
    this.isInitiator = keys.isInitiator;
    this.created = created;
  }

  wipe(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}

const NOTHING: readonly Keypair[] = Object.freeze([]);

/** The current, previous and next keypairs of one peer. */
export class KeypairSlots {
  #current: Keypair | undefined;
  #previous: Keypair | undefined;
  #next: Keypair | undefined;

  get current(): Keypair | undefined {
    return this.#current;
  }

  get previous(): Keypair | undefined {
    return this.#previous;
  }

  get next(): Keypair | undefined {
    return this.#next;
  }

  /**
   * A handshake completed with `kp`. The initiator's keypair is proven by the response,
   * so it becomes current at once; a responder's waits in `next` for the initiator's first
   * packet. Returns the keypairs that left the slots.
   */
  install(kp: Keypair): readonly Keypair[] {
    const retired: Keypair[] = [];
    const previous = this.#previous;
    if (kp.isInitiator) {
      if (this.#next !== undefined) {
        // An unconfirmed `next` is newer than current: keep it as previous, drop current.
        if (this.#current !== undefined) retired.push(this.#current);
        this.#previous = this.#next;
        this.#next = undefined;
      } else {
        this.#previous = this.#current;
      }
      this.#current = kp;
    } else {
      if (this.#next !== undefined) retired.push(this.#next);
      this.#next = kp;
      this.#previous = undefined;
    }
    if (previous !== undefined) retired.push(previous);
    return retired;
  }

  /**
   * A packet was authenticated with `kp`. When `kp` is `next`, the initiator has proven it:
   * next becomes current and current becomes previous. Returns what left the slots, or
   * null when `kp` was not `next` (nothing changed).
   */
  confirm(kp: Keypair): readonly Keypair[] | null {
    if (kp !== this.#next) return null;
    const retired = this.#previous === undefined ? NOTHING : [this.#previous];
    this.#previous = this.#current;
    this.#current = kp;
    this.#next = undefined;
    return retired;
  }

  /** Empties every slot; returns what was there. */
  clear(): readonly Keypair[] {
    const all = [this.#current, this.#previous, this.#next].filter((kp): kp is Keypair => kp !== undefined);
    this.#current = this.#previous = this.#next = undefined;
    return all;
  }
}
