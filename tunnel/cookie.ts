// mac1, mac2 and the cookie reply (paper §5.4.4 and §5.4.7).
//
//   mac1 = MAC(HASH(LABEL_MAC1 || S_pub of the receiver), msg[0 : mac1 offset])
//   mac2 = MAC(cookie, msg[0 : mac2 offset]), or zeros when no fresh cookie is held
//   cookie = MAC(R, source address of the sender), R a secret that changes every 2 min
//   cookie reply = XAEAD(HASH(LABEL_COOKIE || S_pub of the replier), nonce, cookie, aad = mac1)
//
// mac1 proves the sender knows our public key; every handshake message must carry a
// valid one. mac2 proves the sender can receive at its source address, and is demanded
// only under load, when the answer to an initiation without it is a cookie reply.

import { hash, mac, MAC_LENGTH } from '../crypto/blake2s.js';
import { constantTimeEqual, isZero } from '../crypto/ct.js';
import { type RandomSource, randomBytes, systemRandom } from '../crypto/random.js';
import { utf8Encode } from '../crypto/utf8.js';
import { xopen, xseal, XNONCE_LENGTH } from '../crypto/xaead.js';
import { COOKIE_MAX_AGE, COOKIE_SECRET_MAX_AGE, LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import { type CookieReply, encodeCookieReply } from './messages.js';

const LABEL_MAC1_BYTES = utf8Encode(LABEL_MAC1);
const LABEL_COOKIE_BYTES = utf8Encode(LABEL_COOKIE);
const ZERO_MAC = new Uint8Array(MAC_LENGTH);

/** The key of mac1 for messages sent to the owner of `publicKey`. */
export const mac1KeyFor = (publicKey: Uint8Array): Uint8Array => hash(LABEL_MAC1_BYTES, publicKey);
/** The key that seals cookie replies sent by the owner of `publicKey`. */
export const cookieKeyFor = (publicKey: Uint8Array): Uint8Array => hash(LABEL_COOKIE_BYTES, publicKey);

/**
 * Fills mac1 and mac2 of a handshake message in place. mac1 sits at `mac1Offset`, mac2
 * right after it. `cookie` is the fresh cookie held for the receiver, if any.
 * Returns a copy of mac1: the sender keeps it to open a cookie reply.
 */
export function writeMacs(message: Uint8Array, mac1Offset: number, mac1Key: Uint8Array, cookie?: Uint8Array): Uint8Array {
  const mac1 = mac(mac1Key, message.subarray(0, mac1Offset));
  message.set(mac1, mac1Offset);
  const mac2Offset = mac1Offset + MAC_LENGTH;
  message.set(cookie ? mac(cookie, message.subarray(0, mac2Offset)) : ZERO_MAC, mac2Offset);
  return mac1;
}

/** True when mac1 is right for a message sent to us (constant-time comparison). */
export function verifyMac1(message: Uint8Array, mac1Offset: number, ownMac1Key: Uint8Array): boolean {
  const expected = mac(ownMac1Key, message.subarray(0, mac1Offset));
  return constantTimeEqual(expected, message.subarray(mac1Offset, mac1Offset + MAC_LENGTH));
}

/**
 * The receiving side of cookies: the rotating secret, mac2 checks and cookie replies.
 * One per device. `source` is any stable byte encoding of the sender's address and port.
 */
export class CookieChecker {
  private secret: Uint8Array = new Uint8Array(32);
  private secretBirth = -Infinity;
  private readonly cookieKey: Uint8Array;

  constructor(ownPublicKey: Uint8Array, private readonly random: RandomSource = systemRandom) {
    this.cookieKey = cookieKeyFor(ownPublicKey);
  }

  /** The cookie for `source` now: MAC(R, source), R renewed every COOKIE_SECRET_MAX_AGE. */
  private cookie(source: Uint8Array, now: number): Uint8Array {
    if (now - this.secretBirth >= COOKIE_SECRET_MAX_AGE) {
      this.secret.fill(0);
      this.secret = randomBytes(32, this.random);
      this.secretBirth = now;
    }
    return mac(this.secret, source);
  }

  /** True when mac2 is the MAC, under the current cookie for `source`, of all before it. */
  verifyMac2(message: Uint8Array, mac1Offset: number, source: Uint8Array, now: number): boolean {
    const mac2Offset = mac1Offset + MAC_LENGTH;
    const mac2 = message.subarray(mac2Offset, mac2Offset + MAC_LENGTH);
    if (isZero(mac2)) return false;
    const expected = mac(this.cookie(source, now), message.subarray(0, mac2Offset));
    return constantTimeEqual(expected, mac2);
  }

  /** The 64-byte cookie reply to a handshake message from `source` with sender index `senderIndex`. */
  createReply(message: Uint8Array, mac1Offset: number, senderIndex: number, source: Uint8Array, now: number): Uint8Array {
    const nonce = randomBytes(XNONCE_LENGTH, this.random);
    const mac1 = message.subarray(mac1Offset, mac1Offset + MAC_LENGTH);
    const encryptedCookie = xseal(this.cookieKey, nonce, this.cookie(source, now), mac1);
    return encodeCookieReply({ receiverIndex: senderIndex, nonce, encryptedCookie });
  }
}

/**
 * The sending side of cookies, one per peer: the mac1 of the last handshake message we
 * sent (a cookie reply must answer exactly that message) and the cookie we hold.
 */
export class CookieJar {
  private lastMac1: Uint8Array | undefined;
  private cookieValue: Uint8Array | undefined;
  private cookieTime = -Infinity;
  private readonly cookieKey: Uint8Array;

  constructor(remotePublicKey: Uint8Array) {
    this.cookieKey = cookieKeyFor(remotePublicKey);
  }

  /** The cookie to put into mac2, while it is fresh. */
  current(now: number): Uint8Array | undefined {
    return this.cookieValue !== undefined && now - this.cookieTime < COOKIE_MAX_AGE ? this.cookieValue : undefined;
  }

  /** Records the mac1 of a handshake message just sent. */
  sent(mac1: Uint8Array): void {
    this.lastMac1 = mac1;
  }

  /** Opens a cookie reply; false when it does not answer our last message or is forged. */
  consume(reply: CookieReply, now: number): boolean {
    if (this.lastMac1 === undefined) return false;
    const cookie = xopen(this.cookieKey, reply.nonce, reply.encryptedCookie, this.lastMac1);
    if (cookie === null) return false;
    this.cookieValue = cookie;
    this.cookieTime = now;
    this.lastMac1 = undefined; // one reply per message
    return true;
  }

  clear(): void {
    this.cookieValue?.fill(0);
    this.cookieValue = undefined;
    this.lastMac1 = undefined;
    this.cookieTime = -Infinity;
  }
}
