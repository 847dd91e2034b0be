// Packets staged while their peer has no usable keypair (wireguard-go's staged queue,
// the kernel's staged_packet_queue): each is a copy with header room in front, so that it
// is sealed in place once a handshake completes, and they go out in order.
//
// Two bounds. Per peer, MAX_STAGED_PACKETS: past it the peer's oldest is dropped, as the
// references do. Per device, MAX_STAGED_BYTES: past it the oldest packet of the LARGEST
// queue is dropped, never the newcomer's by default. So a hundred offline peers with full
// queues cannot starve a peer that is connecting: its first packets push out theirs.
// The largest queue is found in O(1): queues are filed in buckets by their length.

import { TRANSPORT_HEADER_LENGTH } from './constants.js';

/** Packets staged per peer while it has no keypair (as the kernel and wireguard-go: 128). */
export const MAX_STAGED_PACKETS = 128;
/** Bytes staged across all peers; past it, the largest queue gives up its oldest packet. */
export const MAX_STAGED_BYTES = 16 * 1024 * 1024;

export interface StagedPacket {
  /** The packet at [TRANSPORT_HEADER_LENGTH, +length), with room to seal it in place. */
  readonly buf: Uint8Array;
  readonly length: number;
}

/** What a queue hangs on: a peer's `staged` field, undefined when nothing waits. */
export interface Stager {
  staged: StagedPacket[] | undefined;
}

export class StagingQueues<P extends Stager> {
  #bytes = 0;
  /** #byLength[n]: the peers whose queue holds n packets (n ≥ 1). */
  readonly #byLength: Set<P>[];
  #longest = 0;

  constructor(readonly maxPerPeer = MAX_STAGED_PACKETS, readonly maxBytes = MAX_STAGED_BYTES) {
    this.#byLength = Array.from({ length: maxPerPeer + 1 }, () => new Set<P>());
  }

  /** Bytes staged across all peers. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Stages a copy of buf[TRANSPORT_HEADER_LENGTH, +length) for `peer`, in a buffer of
   * `size` bytes. Returns how many packets were dropped to make room (the peer's own oldest
   * when its queue is full; the longest queue's oldest when the device's budget is), or
   * -1 when the packet alone is larger than the budget and was not staged.
   */
  push(peer: P, buf: Uint8Array, length: number, size: number): number {
    if (size > this.maxBytes) return -1;
    let dropped = 0;
    const queue = peer.staged ?? [];
    if (queue.length >= this.maxPerPeer) {
      this.#bytes -= queue.shift()!.buf.length;
      this.#refile(peer, queue.length + 1, queue.length);
      dropped++;
    }
    while (this.#bytes + size > this.maxBytes) {
      const victim = this.#longestQueue();
      if (victim === undefined) break; // unreachable: size fits the budget, so something is staged
      const vq = victim.staged!;
      this.#bytes -= vq.shift()!.buf.length;
      this.#refile(victim, vq.length + 1, vq.length);
      if (vq.length === 0) victim.staged = undefined;
      dropped++;
    }
    const copy = new Uint8Array(size);
    copy.set(buf.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length), TRANSPORT_HEADER_LENGTH);
    queue.push({ buf: copy, length });
    peer.staged = queue;
    this.#bytes += size;
    this.#refile(peer, queue.length - 1, queue.length);
    return dropped;
  }

  /** Takes every packet staged for `peer`, oldest first (undefined: none). */
  take(peer: P): StagedPacket[] | undefined {
    const queue = peer.staged;
    if (queue === undefined) return undefined;
    peer.staged = undefined;
    for (const s of queue) this.#bytes -= s.buf.length;
    this.#refile(peer, queue.length, 0);
    return queue;
  }

  /** Drops every packet staged for `peer`; returns how many. */
  clear(peer: P): number {
    return this.take(peer)?.length ?? 0;
  }

  #refile(peer: P, from: number, to: number): void {
    if (from === to) return;
    if (from > 0) this.#byLength[from]!.delete(peer);
    if (to > 0) {
      this.#byLength[to]!.add(peer);
      if (to > this.#longest) this.#longest = to;
    }
  }

  #longestQueue(): P | undefined {
    while (this.#longest > 0) {
      const bucket = this.#byLength[this.#longest]!;
      if (bucket.size > 0) return bucket.values().next().value;
      this.#longest--;
    }
    return undefined;
  }
}
