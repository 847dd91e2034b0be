// The receive replay window of one keypair: a sliding bitmap in the style of RFC 6479
// ("IPsec Anti-Replay Algorithm without Bit Shifting"), as the Linux kernel
// (drivers/net/wireguard/receive.c, counter_validate) and wireguard-go (replay/replay.go)
// implement it.
//
// The bitmap is a ring of words. A counter's bit lives at (counter mod RING_BITS); when a
// newer counter arrives, the words between the old newest word and the new one are
// zeroed, never shifted. One word of the ring is kept as slack, so a window of
// RING_BITS - 64 counters behind the newest one can be judged exactly.
//
// Constants, checked against the sources:
// - kernel messages.h: COUNTER_BITS_TOTAL = 8192, COUNTER_REDUNDANT_BITS = BITS_PER_LONG,
//   COUNTER_WINDOW_SIZE = COUNTER_BITS_TOTAL - COUNTER_REDUNDANT_BITS (8128 on 64-bit);
// - wireguard-go replay.go: blockBits = 64, ringBlocks = 128,
//   windowSize = (ringBlocks - 1) * blockBits = 8128.
// Burrow stores the same 8192 bits as 256 32-bit words (no 64-bit integers in JS without
// BigInt) and keeps the window at 8128, so every accept/reject decision is the one a
// 64-bit kernel or wireguard-go makes. With 32-bit words the window spans at most 255
// distinct words of the 256, so no two live counters ever share a bit.
//
// Counters are JS numbers. The paper's REJECT_AFTER_MESSAGES is 2^64 - 2^13 - 1, which a
// double cannot hold; every counter that is not a safe integer (>= 2^53) is refused
// instead. A sender would need 2^53 packets (about 285 years at a million packets per
// second) on one keypair to get there, and REJECT_AFTER_TIME retires a keypair after
// 180 s, so no honest peer ever sends one: refusing them loses nothing.

/** Bits in the ring (kernel COUNTER_BITS_TOTAL). */
export const COUNTER_BITS_TOTAL = 8192;
/** One 64-bit word of slack (kernel COUNTER_REDUNDANT_BITS on 64-bit). */
export const COUNTER_REDUNDANT_BITS = 64;
/** How far behind the newest counter an older one may still be accepted. */
export const COUNTER_WINDOW_SIZE = COUNTER_BITS_TOTAL - COUNTER_REDUNDANT_BITS; // 8128
/**
 * Counters at or above this are refused. It stands in for the paper's
 * REJECT_AFTER_MESSAGES (2^64 - 2^13 - 1): 2^53 is the first integer a JS number cannot
 * tell from its neighbour.
 */
export const COUNTER_LIMIT = 2 ** 53;

const WORD_BITS = 32;
const WORD_BITS_LOG = 5;
const RING_WORDS = COUNTER_BITS_TOTAL / WORD_BITS; // 256
const RING_MASK = RING_WORDS - 1;

function isCounter(counter: number): boolean {
  // Number.isSafeInteger refuses NaN, infinities, fractions and anything >= 2^53.
  return Number.isSafeInteger(counter) && counter >= 0;
}

export class ReplayWindow {
  // Newest counter accepted so far. 0 with an empty ring means "nothing yet": counter 0
  // is then judged by its bit, which is clear, as in wireguard-go.
  #last = 0;
  readonly #ring = new Uint32Array(RING_WORDS);

  /**
   * Would `counter` be accepted now? Changes nothing. The engine asks this before it
   * spends time decrypting a packet.
   */
  check(counter: number): boolean {
    if (!isCounter(counter)) return false;
    const last = this.#last;
    // Newer than anything seen: its bit is either clear already (same word as the
    // newest) or will be cleared when the window moves forward.
    if (counter > last) return true;
    if (last - counter > COUNTER_WINDOW_SIZE) return false;
    const low = counter % COUNTER_BITS_TOTAL;
    return (this.#ring[low >>> WORD_BITS_LOG]! & (1 << (low & (WORD_BITS - 1)))) === 0;
  }

  /**
   * Marks `counter` as received. Returns false, changing nothing, when it is a replay,
   * too old, or out of range. The engine calls this only after the tag has verified, so
   * a forged packet can never move the window.
   */
  accept(counter: number): boolean {
    if (!isCounter(counter)) return false;
    const ring = this.#ring;
    const last = this.#last;
    if (counter > last) {
      // Move the window forward: zero every word after the newest one, up to and
      // including the new counter's word (at most the whole ring).
      const from = Math.floor(last / WORD_BITS);
      const to = Math.floor(counter / WORD_BITS);
      const steps = Math.min(to - from, RING_WORDS);
      // Index within the ring from the low bits only: `from` may exceed 2^32.
      let index = from % RING_WORDS;
      for (let i = 0; i < steps; i++) {
        index = (index + 1) & RING_MASK;
        ring[index] = 0;
      }
      this.#last = counter;
    } else if (last - counter > COUNTER_WINDOW_SIZE) {
      return false;
    }
    const low = counter % COUNTER_BITS_TOTAL;
    const word = low >>> WORD_BITS_LOG;
    const bit = 1 << (low & (WORD_BITS - 1));
    const old = ring[word]!;
    if ((old & bit) !== 0) return false;
    ring[word] = old | bit;
    return true;
  }

  /** Forgets every counter, as for a fresh keypair. */
  reset(): void {
    this.#last = 0;
    this.#ring.fill(0);
  }
}
