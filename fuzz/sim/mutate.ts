// Ways to damage a datagram, shared by the simulator's adversary and the datagram
// property suite. Each returns a new array; the original is left alone.

import {
  COOKIE_REPLY_LENGTH, INITIATION_LENGTH, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT,
  RESPONSE_LENGTH,
} from '../../tunnel/constants.js';
import { mac1KeyFor, writeMacs } from '../../tunnel/cookie.js';
import { INITIATION_MAC1_OFFSET, RESPONSE_MAC1_OFFSET } from '../../tunnel/messages.js';
import type { Mutation } from './scenario.js';
import type { Prng } from './prng.js';

const LENGTH_OF: Record<number, number> = {
  [MESSAGE_INITIATION]: INITIATION_LENGTH,
  [MESSAGE_RESPONSE]: RESPONSE_LENGTH,
  [MESSAGE_COOKIE_REPLY]: COOKIE_REPLY_LENGTH,
};

function flipBits(b: Uint8Array, r: Prng, from = 0, to = b.length): Uint8Array {
  if (to <= from) return b;
  const n = r.range(1, 3);
  for (let i = 0; i < n; i++) {
    const pos = r.range(from, to - 1);
    b[pos]! ^= 1 << r.int(8);
  }
  return b;
}

/** A message of `type` with random contents but the right shape (length, reserved zero). */
export function shapedRandom(type: number, r: Prng): Uint8Array {
  const length = LENGTH_OF[type] ?? r.range(32, 200);
  const b = r.bytes(length);
  b[0] = type;
  b[1] = b[2] = b[3] = 0;
  return b;
}

/** An initiation with a random body and a valid mac1 for `responderPublicKey`: it costs the responder a DH. */
export function craftedInitiation(responderPublicKey: Uint8Array, r: Prng): Uint8Array {
  const b = shapedRandom(MESSAGE_INITIATION, r);
  writeMacs(b, INITIATION_MAC1_OFFSET, mac1KeyFor(responderPublicKey));
  return b;
}

export function mutate(original: Uint8Array, mutation: Mutation, r: Prng, target: { publicKey: Uint8Array }): Uint8Array {
  const b = original.slice();
  const type = b[0];
  switch (mutation) {
    case 'flip':
      return flipBits(b, r);
    case 'flip-mac1':
      if (type === MESSAGE_INITIATION && b.length === INITIATION_LENGTH) return flipBits(b, r, INITIATION_MAC1_OFFSET, INITIATION_MAC1_OFFSET + 16);
      if (type === MESSAGE_RESPONSE && b.length === RESPONSE_LENGTH) return flipBits(b, r, RESPONSE_MAC1_OFFSET, RESPONSE_MAC1_OFFSET + 16);
      return flipBits(b, r);
    case 'truncate':
      return b.subarray(0, r.int(Math.max(1, b.length))).slice();
    case 'extend': {
      const out = new Uint8Array(b.length + r.range(1, 64));
      out.set(b);
      r.fill(out.subarray(b.length));
      return out;
    }
    case 'retype': {
      const newType = r.pick([0, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY, MESSAGE_TRANSPORT, 5, 255].filter((t) => t !== type));
      const length = LENGTH_OF[newType] ?? b.length;
      const out = new Uint8Array(Math.max(length, 1));
      out.set(b.subarray(0, out.length));
      if (out.length > b.length) r.fill(out.subarray(b.length));
      out[0] = newType;
      return out;
    }
    case 'reserved':
      if (b.length < 4) return flipBits(b, r);
      b[r.range(1, 3)] = r.range(1, 255);
      return b;
    case 'random':
      return r.chance(0.2) ? r.bytes(r.int(300)) : shapedRandom(r.range(1, 4), r);
    case 'index': {
      const at = type === MESSAGE_RESPONSE ? 8 : 4;
      if (b.length < at + 4) return flipBits(b, r);
      r.fill(b.subarray(at, at + 4));
      return b;
    }
    case 'counter': {
      if (type !== MESSAGE_TRANSPORT || b.length < 16) return flipBits(b, r);
      const view = new DataView(b.buffer, b.byteOffset, b.length);
      const choice = r.int(4);
      if (choice === 0) view.setUint32(8, view.getUint32(8, true) + 1, true);
      else if (choice === 1) view.setUint32(12, 0x20_0000, true); // 2^53: past the counter limit
      else if (choice === 2) view.setUint32(12, 0xffff_ffff, true);
      else r.fill(b.subarray(8, 16));
      return b;
    }
    case 'craft-initiation':
      return craftedInitiation(target.publicKey, r);
  }
}
