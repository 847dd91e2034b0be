// Transport data messages (paper §5.4.6): the hot path. Packets are sealed and opened in
// place in a caller-owned buffer that has the 16-byte header room in front and the tag
// room behind, so a packet crosses this file without a copy or an allocation.
//
//   buf: [ header 16 | plaintext (padded to 16, never past the MTU) | tag 16 ]

import type { Aead } from '../crypto/aead.js';
import { PADDING_MULTIPLE, TAG_LENGTH, TRANSPORT_HEADER_LENGTH } from './constants.js';
import { writeTransportHeader } from './messages.js';

const EMPTY = new Uint8Array(0);

/** Zero bytes to add to a `packetLength`-byte packet (as wireguard-go computes it). */
export function paddingFor(packetLength: number, mtu: number): number {
  let last = packetLength;
  if (mtu > 0 && last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (mtu > 0 && padded > mtu) padded = mtu;
  return padded - last;
}

/** Room a buffer needs around a packet of `packetLength` bytes. */
export const sealedLength = (packetLength: number, mtu: number): number =>
  TRANSPORT_HEADER_LENGTH + packetLength + paddingFor(packetLength, mtu) + TAG_LENGTH;

/**
 * Seals the packet at buf[16 : 16 + packetLength] in place: pads it with zeros, writes
 * the header and the tag. Returns the message length. `buf` must be at least
 * sealedLength(packetLength, mtu) bytes.
 */
export function sealTransport(
  aead: Aead, key: Uint8Array, receiverIndex: number, counter: number, buf: Uint8Array, packetLength: number, mtu: number,
): number {
  const padded = packetLength + paddingFor(packetLength, mtu);
  const total = TRANSPORT_HEADER_LENGTH + padded + TAG_LENGTH;
  if (buf.length < total) throw new RangeError(`buf: needs ${total} bytes, has ${buf.length}`);
  buf.fill(0, TRANSPORT_HEADER_LENGTH + packetLength, TRANSPORT_HEADER_LENGTH + padded);
  writeTransportHeader(buf, receiverIndex, counter);
  const plaintext = buf.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + padded);
  aead.seal(key, counter, plaintext, EMPTY, buf.subarray(TRANSPORT_HEADER_LENGTH, total));
  return total;
}

/**
 * Opens a transport message in place. Returns the (padded) plaintext length, which is
 * then at msg[16 : 16 + length], or -1 when the tag does not verify.
 */
export function openTransport(aead: Aead, key: Uint8Array, counter: number, msg: Uint8Array): number {
  const sealed = msg.subarray(TRANSPORT_HEADER_LENGTH);
  const length = sealed.length - TAG_LENGTH;
  if (length < 0) return -1;
  return aead.open(key, counter, sealed, EMPTY, sealed.subarray(0, length)) ? length : -1;
}
