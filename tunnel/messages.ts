// The four WireGuard messages (paper §5.4), the single source of truth for the wire
// format. Every multi-byte integer is little-endian. Decoding is by (type, length):
// anything else is a typed refusal, never an exception.
//
//   initiation (148)  type=1 | reserved[3] | sender u32 | ephemeral[32]
//                     | static[32+16] | timestamp[12+16] | mac1[16] | mac2[16]
//   response    (92)  type=2 | reserved[3] | sender u32 | receiver u32 | ephemeral[32]
//                     | empty[0+16] | mac1[16] | mac2[16]
//   cookie reply (64) type=3 | reserved[3] | receiver u32 | nonce[24] | cookie[16+16]
//   transport (16+n)  type=4 | reserved[3] | receiver u32 | counter u64 | packet[n], n >= 16
//
// Decoded fields are views (subarray) into the caller's bytes: nothing is copied.

import {
  COOKIE_REPLY_LENGTH, INITIATION_LENGTH, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT, RESPONSE_LENGTH, TRANSPORT_HEADER_LENGTH, TRANSPORT_MIN_LENGTH,
} from './constants.js';

export interface Initiation {
  readonly type: typeof MESSAGE_INITIATION;
  readonly senderIndex: number;
  readonly ephemeral: Uint8Array; // 32
  readonly encryptedStatic: Uint8Array; // 48
  readonly encryptedTimestamp: Uint8Array; // 28
  readonly mac1: Uint8Array; // 16
  readonly mac2: Uint8Array; // 16
  readonly bytes: Uint8Array; // the whole message, for the MACs
}

export interface Response {
  readonly type: typeof MESSAGE_RESPONSE;
  readonly senderIndex: number;
  readonly receiverIndex: number;
  readonly ephemeral: Uint8Array; // 32
  readonly encryptedNothing: Uint8Array; // 16
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
  readonly bytes: Uint8Array;
}

export interface CookieReply {
  readonly type: typeof MESSAGE_COOKIE_REPLY;
  readonly receiverIndex: number;
  readonly nonce: Uint8Array; // 24
  readonly encryptedCookie: Uint8Array; // 32
}

export interface Transport {
  readonly type: typeof MESSAGE_TRANSPORT;
  readonly receiverIndex: number;
  /** The counter's 8 wire bytes (exact even above 2^53). */
  readonly counterBytes: Uint8Array;
  readonly encryptedPacket: Uint8Array;
}

export type Message = Initiation | Response | CookieReply | Transport;

export type DecodeRefusal = 'empty' | 'unknown-type' | 'reserved-nonzero' | 'bad-length';
export type Decoded = { ok: true; message: Message } | { ok: false; reason: DecodeRefusal };

/** Offsets of the MAC fields: mac1 covers bytes before it, mac2 everything before mac2. */
export const INITIATION_MAC1_OFFSET = 116;
export const INITIATION_MAC2_OFFSET = 132;
export const RESPONSE_MAC1_OFFSET = 60;
export const RESPONSE_MAC2_OFFSET = 76;

const u32 = (b: Uint8Array, off: number): number =>
  (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 255;
  b[off + 1] = (v >>> 8) & 255;
  b[off + 2] = (v >>> 16) & 255;
  b[off + 3] = (v >>> 24) & 255;
}

/**
 * The message type of `bytes`, or a refusal: checks the type byte, the three reserved
 * bytes and the length that type requires. Cheap enough for every datagram.
 */
export function classify(bytes: Uint8Array): number | DecodeRefusal {
  if (bytes.length === 0) return 'empty';
  const type = bytes[0]!;
  if (type < MESSAGE_INITIATION || type > MESSAGE_TRANSPORT) return 'unknown-type';
  if (bytes.length < 4) return 'bad-length';
  if ((bytes[1]! | bytes[2]! | bytes[3]!) !== 0) return 'reserved-nonzero';
  switch (type) {
    case MESSAGE_INITIATION: return bytes.length === INITIATION_LENGTH ? type : 'bad-length';
    case MESSAGE_RESPONSE: return bytes.length === RESPONSE_LENGTH ? type : 'bad-length';
    case MESSAGE_COOKIE_REPLY: return bytes.length === COOKIE_REPLY_LENGTH ? type : 'bad-length';
    default: return bytes.length >= TRANSPORT_MIN_LENGTH ? type : 'bad-length';
  }
}

export function decodeMessage(bytes: Uint8Array): Decoded {
  if (!(bytes instanceof Uint8Array)) return { ok: false, reason: 'empty' };
  const type = classify(bytes);
  if (typeof type !== 'number') return { ok: false, reason: type };
  switch (type) {
    case MESSAGE_INITIATION:
      return { ok: true, message: {
        type, senderIndex: u32(bytes, 4), ephemeral: bytes.subarray(8, 40),
        encryptedStatic: bytes.subarray(40, 88), encryptedTimestamp: bytes.subarray(88, 116),
        mac1: bytes.subarray(116, 132), mac2: bytes.subarray(132, 148), bytes,
      } };
    case MESSAGE_RESPONSE:
      return { ok: true, message: {
        type, senderIndex: u32(bytes, 4), receiverIndex: u32(bytes, 8), ephemeral: bytes.subarray(12, 44),
        encryptedNothing: bytes.subarray(44, 60), mac1: bytes.subarray(60, 76), mac2: bytes.subarray(76, 92), bytes,
      } };
    case MESSAGE_COOKIE_REPLY:
      return { ok: true, message: {
        type, receiverIndex: u32(bytes, 4), nonce: bytes.subarray(8, 32), encryptedCookie: bytes.subarray(32, 64),
      } };
    default:
      return { ok: true, message: {
        type: MESSAGE_TRANSPORT, receiverIndex: u32(bytes, 4), counterBytes: bytes.subarray(8, 16),
        encryptedPacket: bytes.subarray(TRANSPORT_HEADER_LENGTH),
      } };
  }
}

// --- Hot-path accessors for transport messages (no object per packet) -------------

/** The receiver index of a handshake response (classified as one). */
export function responseReceiverIndexOf(bytes: Uint8Array): number {
  return u32(bytes, 8);
}

export function receiverIndexOf(bytes: Uint8Array): number {
  return u32(bytes, 4);
}

/**
 * The transport counter as a number, or -1 when it is 2^53 or more (not exactly
 * representable; such counters are refused as past REJECT_AFTER_MESSAGES).
 */
export function transportCounterOf(bytes: Uint8Array): number {
  const lo = u32(bytes, 8);
  const hi = u32(bytes, 12);
  if (hi >= 0x20_0000) return -1;
  return hi * 0x1_0000_0000 + lo;
}

/** Writes a transport header (type, reserved, receiver, counter) at the start of `out`. */
export function writeTransportHeader(out: Uint8Array, receiverIndex: number, counter: number): void {
  out[0] = MESSAGE_TRANSPORT;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  putU32(out, 4, receiverIndex);
  putU32(out, 8, counter >>> 0);
  putU32(out, 12, Math.floor(counter / 0x1_0000_0000));
}

// --- Encoding ------------------------------------------------------------------------

function checkField(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new RangeError(`${name}: expected ${length} bytes`);
  }
}

function checkIndex(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new RangeError(`${name}: expected a 32-bit index`);
}

/** Encodes an initiation with zero MACs; `writeMacs` (cookie.ts) fills them. */
export function encodeInitiation(f: { senderIndex: number; ephemeral: Uint8Array; encryptedStatic: Uint8Array; encryptedTimestamp: Uint8Array }): Uint8Array {
  checkIndex('senderIndex', f.senderIndex);
  checkField('ephemeral', f.ephemeral, 32);
  checkField('encryptedStatic', f.encryptedStatic, 48);
  checkField('encryptedTimestamp', f.encryptedTimestamp, 28);
  const out = new Uint8Array(INITIATION_LENGTH);
  out[0] = MESSAGE_INITIATION;
  putU32(out, 4, f.senderIndex);
  out.set(f.ephemeral, 8);
  out.set(f.encryptedStatic, 40);
  out.set(f.encryptedTimestamp, 88);
  return out;
}

export function encodeResponse(f: { senderIndex: number; receiverIndex: number; ephemeral: Uint8Array; encryptedNothing: Uint8Array }): Uint8Array {
  checkIndex('senderIndex', f.senderIndex);
  checkIndex('receiverIndex', f.receiverIndex);
  checkField('ephemeral', f.ephemeral, 32);
  checkField('encryptedNothing', f.encryptedNothing, 16);
  const out = new Uint8Array(RESPONSE_LENGTH);
  out[0] = MESSAGE_RESPONSE;
  putU32(out, 4, f.senderIndex);
  putU32(out, 8, f.receiverIndex);
  out.set(f.ephemeral, 12);
  out.set(f.encryptedNothing, 44);
  return out;
}

export function encodeCookieReply(f: { receiverIndex: number; nonce: Uint8Array; encryptedCookie: Uint8Array }): Uint8Array {
  checkIndex('receiverIndex', f.receiverIndex);
  checkField('nonce', f.nonce, 24);
  checkField('encryptedCookie', f.encryptedCookie, 32);
  const out = new Uint8Array(COOKIE_REPLY_LENGTH);
  out[0] = MESSAGE_COOKIE_REPLY;
  putU32(out, 4, f.receiverIndex);
  out.set(f.nonce, 8);
  out.set(f.encryptedCookie, 32);
  return out;
}
