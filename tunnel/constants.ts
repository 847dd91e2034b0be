// Constants of the WireGuard protocol, named as the paper names them (§5.4 and §6),
// kept apart from the choices this implementation makes. Times are in milliseconds:
// the engine's clock is a monotonic millisecond count handed in by the caller.

// --- The paper's -----------------------------------------------------------------

/** The Noise protocol name, hashed to make the initial chaining key (§5.4). */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
/** Mixed into the hash as the Noise prologue (§5.4). */
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

/**
 * Refuse to use a keypair after this many messages. The paper's value is 2^64 − 2^13 − 1;
 * counters are JS numbers here, exact only below 2^53, so any counter at or above 2^53 − 1
 * is refused: stricter than the paper, and unreachable in practice (285 years at 1 M
 * packets/s, while REJECT_AFTER_TIME retires a keypair after 180 s).
 */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER;
/**
 * Initiate a new handshake after this many messages under one keypair. The paper's 2^60
 * lies past our REJECT_AFTER_MESSAGES, which would make the rekey never happen before the
 * keypair is refused; 2^52 keeps the paper's order (rekey long before reject) within what a
 * JS number counts exactly.
 */
export const REKEY_AFTER_MESSAGES = 2 ** 52;
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const KEEPALIVE_TIMEOUT = 10_000;
/** The cookie secret changes every two minutes (§5.4.7). */
export const COOKIE_SECRET_MAX_AGE = 120_000;
/** A received cookie is used for mac2 only this long (§5.4.7, as the references do). */
export const COOKIE_MAX_AGE = 120_000 - 5_000;
/** Handshake retries add up to this much random jitter (§6.1). */
export const REKEY_TIMEOUT_JITTER_MAX = 333;

// --- The wire format (§5.4) --------------------------------------------------------

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_LENGTH = 148;
export const RESPONSE_LENGTH = 92;
export const COOKIE_REPLY_LENGTH = 64;
export const TRANSPORT_HEADER_LENGTH = 16;
export const TAG_LENGTH = 16;
/** A transport message carries at least the 16-byte tag of an empty keepalive. */
export const TRANSPORT_MIN_LENGTH = TRANSPORT_HEADER_LENGTH + TAG_LENGTH;
/**
 * The longest packet one transport message carries: a message is at most 65535 bytes
 * (wireguard-go's MaxMessageSize), header and tag included (its MaxContentSize).
 */
export const MAX_CONTENT_LENGTH = 65535 - TRANSPORT_MIN_LENGTH;
/** Plaintext is padded to a multiple of this (§5.4.6). */
export const PADDING_MULTIPLE = 16;

// --- This implementation's choices (as the Linux kernel and wireguard-go choose) ---

/** At most this many initiations per second are consumed from one peer (flood guard). */
export const INITIATIONS_PER_SECOND = 50;
/** Default tunnel MTU, as wg-quick picks for an IPv4/IPv6 underlay of 1500. */
export const DEFAULT_MTU = 1420;
/** Handshake attempts before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
