// The device's index table (paper §5.4.2, wireguard-go indextable.go): every message
// after the initiation names its receiver by a random 32-bit index that the receiver
// chose, so that a datagram finds its peer and keypair in one lookup, never by the
// sender's address. An index names either a pending handshake (no keypair yet) or a
// keypair. Entries are owned by one peer: freeing checks the owner, so a stale index that
// was reused by another peer is never removed by mistake.

import type { RandomSource } from '../crypto/random.js';
import type { Keypair } from './keypair.js';
import type { Peer } from './peer.js';

export interface IndexEntry {
  readonly peer: Peer;
  /** Undefined while the index names a pending handshake. */
  readonly keypair: Keypair | undefined;
}

export class IndexTable {
  readonly #entries = new Map<number, IndexEntry>();
  readonly #scratch = new Uint8Array(4);
  readonly #view = new DataView(this.#scratch.buffer);

  constructor(private readonly random: RandomSource) {}

  /** A live read-only view, for Device.inspect(). */
  get entries(): ReadonlyMap<number, IndexEntry> {
    return this.#entries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(index: number): IndexEntry | undefined {
    return this.#entries.get(index);
  }

  /** A fresh random index, not in use, reserved for `peer`'s pending handshake. */
  reserve(peer: Peer): number {
    for (;;) {
      this.random(this.#scratch);
      const index = this.#view.getUint32(0, true);
      if (!this.#entries.has(index)) {
        this.#entries.set(index, { peer, keypair: undefined });
        return index;
      }
    }
  }

  /** Points `peer`'s reserved index `kp.localIndex` at the keypair the handshake made. */
  attach(peer: Peer, kp: Keypair): void {
    this.#entries.set(kp.localIndex, { peer, keypair: kp });
  }

  /** Frees `index` if `peer` holds it. */
  free(peer: Peer, index: number): void {
    if (this.#entries.get(index)?.peer === peer) this.#entries.delete(index);
  }
}
