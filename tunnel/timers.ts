// The per-peer timers of the paper (§6), as wireguard-go's timers.go and the kernel's
// timers.c run them. Each is a deadline on the engine's clock (Infinity = not pending);
// the Device keeps one heap of peers ordered by their earliest deadline and its single
// tick(now) fires whatever is due. No timer object exists per peer.
//
//  retransmitHandshake  set when an initiation is sent, to REKEY_TIMEOUT plus up to
//                       REKEY_TIMEOUT_JITTER_MAX of jitter. Firing sends a new initiation,
//                       until MAX_TIMER_HANDSHAKES attempts (REKEY_ATTEMPT_TIME) have
//                       failed: then the peer gives up, drops its queued packets and arms
//                       zeroKeyMaterial. Cleared when a handshake completes.
//  sendKeepalive        set when a data packet is received, to KEEPALIVE_TIMEOUT, unless
//                       already pending (then one more is owed). Firing sends an empty
//                       keepalive. Cleared when any authenticated packet is sent.
//  newHandshake         set when a data packet is sent, to KEEPALIVE_TIMEOUT +
//                       REKEY_TIMEOUT plus jitter, unless already pending. Firing starts a
//                       new handshake: we sent data and heard nothing back. Cleared when any
//                       authenticated packet is received.
//  zeroKeyMaterial      set to 3 × REJECT_AFTER_TIME when a session is derived. Firing
//                       wipes every keypair and the handshake state.
//  persistentKeepalive  set, when the peer has a PersistentKeepalive interval, to that
//                       interval after any authenticated packet is sent or received. Firing
//                       sends a keepalive (keeps NAT mappings alive).

import {
  KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
} from './constants.js';

export type TimerName = 'retransmitHandshake' | 'sendKeepalive' | 'newHandshake' | 'zeroKeyMaterial' | 'persistentKeepalive';

export class PeerTimers {
  retransmitHandshake = Infinity;
  sendKeepalive = Infinity;
  newHandshake = Infinity;
  zeroKeyMaterial = Infinity;
  persistentKeepalive = Infinity;
  /** Initiations sent since the last completed handshake (retries included). */
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
  // Handshake pacing, kept here so that a peer that never handshakes holds neither
  // (Peer's accessors read -Infinity without timers). clearAll leaves both alone.
  /** Engine-clock time of the last initiation sent (REKEY_TIMEOUT rate limit). */
  lastSentHandshake = -Infinity;
  /** Wall-clock ms of the TAI64N timestamp in our last initiation (kept monotonic). */
  lastInitiationWall = -Infinity;

  /** The earliest pending deadline. */
  next(): number {
    return Math.min(this.retransmitHandshake, this.sendKeepalive, this.newHandshake, this.zeroKeyMaterial, this.persistentKeepalive);
  }

  /** The first due timer at `now`, cleared, or undefined. Order: as the paper lists them. */
  takeDue(now: number): TimerName | undefined {
    if (this.retransmitHandshake <= now) { this.retransmitHandshake = Infinity; return 'retransmitHandshake'; }
    if (this.sendKeepalive <= now) { this.sendKeepalive = Infinity; return 'sendKeepalive'; }
    if (this.newHandshake <= now) { this.newHandshake = Infinity; return 'newHandshake'; }
    if (this.zeroKeyMaterial <= now) { this.zeroKeyMaterial = Infinity; return 'zeroKeyMaterial'; }
    if (this.persistentKeepalive <= now) { this.persistentKeepalive = Infinity; return 'persistentKeepalive'; }
    return undefined;
  }

  // --- Event hooks, one line of contract each, named as wireguard-go names them ---

  /**
   * A data packet (not a keepalive) was sent: expect an answer within 15 s. `jitter` is
   * called only when the timer is armed, not for every packet (it costs a random draw).
   */
  dataSent(now: number, jitter: () => number): void {
    if (this.newHandshake === Infinity) this.newHandshake = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter();
  }

  /** A data packet was received: owe a keepalive unless we send something first. */
  dataReceived(now: number): void {
    if (this.sendKeepalive === Infinity) this.sendKeepalive = now + KEEPALIVE_TIMEOUT;
    else this.needAnotherKeepalive = true;
  }

  /** Any authenticated packet (data, keepalive, handshake) was sent. */
  anyAuthenticatedPacketSent(): void {
    this.sendKeepalive = Infinity;
  }

  /** Any authenticated packet was received. */
  anyAuthenticatedPacketReceived(): void {
    this.newHandshake = Infinity;
  }

  /** Any authenticated packet was sent or received: restart the persistent keepalive. */
  anyAuthenticatedPacketTraversal(now: number, persistentKeepaliveMs: number): void {
    if (persistentKeepaliveMs > 0) this.persistentKeepalive = now + persistentKeepaliveMs;
  }

  /** An initiation was sent. */
  handshakeInitiated(now: number, jitter: number): void {
    this.retransmitHandshake = now + REKEY_TIMEOUT + jitter;
  }

  /** A handshake completed (response consumed, or first packet on a `next` keypair). */
  handshakeComplete(): void {
    this.retransmitHandshake = Infinity;
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
  }

  /** New transport keys exist: wipe everything 3 × REJECT_AFTER_TIME from now unless renewed. */
  sessionDerived(now: number): void {
    this.zeroKeyMaterial = now + 3 * REJECT_AFTER_TIME;
  }

  /** True when retransmitting again would pass REKEY_ATTEMPT_TIME. */
  attemptsExhausted(): boolean {
    return this.handshakeAttempts > MAX_TIMER_HANDSHAKES;
  }

  clearAll(): void {
    this.retransmitHandshake = this.sendKeepalive = this.newHandshake = this.zeroKeyMaterial = this.persistentKeepalive = Infinity;
    this.handshakeAttempts = 0;
    this.needAnotherKeepalive = false;
    this.sentLastMinuteHandshake = false;
  }
}

/** A uniformly random jitter in [0, REKEY_TIMEOUT_JITTER_MAX) ms from one random byte pair. */
export function jitterFrom(random16: number): number {
  return (random16 % REKEY_TIMEOUT_JITTER_MAX);
}
