// The handshake queue (wireguard-go's queue.handshake, QueueHandshakeSize): handshake
// messages that arrive while a turn's handshake work budget is spent wait here, copied,
// in arrival order, for the next turns. How long it is tells the device whether it is
// under load: by backlog, as wireguard-go decides it (a queue 1/8 full), not by rate,
// so a burst the device can answer is answered without cookies.
//
// Bounded: a message that finds it full is refused (the caller counts the drop). The
// slots are one arena, allocated when the first message waits, so an idle device pays
// nothing for it.

import { INITIATION_LENGTH } from './constants.js';
import type { Endpoint } from './endpoint.js';

/** Handshake messages that may wait (wireguard-go's QueueHandshakeSize). */
export const HANDSHAKE_QUEUE_LENGTH = 1024;
/** A slot holds the longest handshake message, an initiation. */
const SLOT = INITIATION_LENGTH;

export class HandshakeQueue {
  private arena: Uint8Array | undefined;
  private readonly lengths: Uint8Array;
  private readonly senders: (Endpoint | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity = HANDSHAKE_QUEUE_LENGTH) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity: expected a positive integer');
    this.lengths = new Uint8Array(capacity);
    this.senders = new Array<Endpoint | undefined>(capacity).fill(undefined);
  }

  /** Messages waiting. */
  get length(): number {
    return this.count;
  }

  /** Copies `message` (at most an initiation's length) to the back; false when the queue is full. */
  push(message: Uint8Array, from: Endpoint): boolean {
    if (message.length > SLOT) throw new RangeError(`message: expected at most ${SLOT} bytes`);
    if (this.count === this.capacity) return false;
    this.arena ??= new Uint8Array(this.capacity * SLOT);
    const i = (this.head + this.count) % this.capacity;
    this.arena.set(message, i * SLOT);
    this.lengths[i] = message.length;
    this.senders[i] = from;
    this.count++;
    return true;
  }

  /** The oldest message: a view into its slot, valid until pop(). Undefined when empty. */
  front(): Uint8Array | undefined {
    if (this.count === 0) return undefined;
    const o = this.head * SLOT;
    return this.arena!.subarray(o, o + this.lengths[this.head]!);
  }

  /** Where the oldest message came from. */
  frontSender(): Endpoint | undefined {
    return this.count === 0 ? undefined : this.senders[this.head];
  }

  /** Removes the oldest message; its slot is free for the next push. */
  pop(): void {
    if (this.count === 0) return;
    this.senders[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }
}
