// A keypair is the pair of transport keys one handshake derives (paper §5.4.5), with the
// send counter and the receive replay window. A peer holds up to three (§6.2, as the
// references keep them):
//   current  — used to send;
//   previous — the one before, still accepted on receipt while packets in flight drain;
//   next     — a responder's fresh keypair, not used to send until the initiator proves
//              it has it by sending on it first (the initiator's keepalive or data).

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

export interface Keypairs {
  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;
}
