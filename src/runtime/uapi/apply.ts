// Applying a parsed `set` to a device and its runtime, all or nothing as far as it can be:
//   1. the runtime's part (listen_port, fwmark), which may fail: each step records how to
//      put the old value back, and a failure undoes the steps before it;
//   2. the plan: what each peer section does against the device as it is now (update_only
//      and the device's own key decide), and the peer count checked against MAX_PEERS;
//      a refusal here undoes step 1 too;
//   3. the engine's part, synchronous and checked beforehand, so it does not fail halfway.
// wireguard-go applies line by line and leaves a half-applied request behind on an
// error; the end state of a request that succeeds is the same in both.
//
// A failed undo is not swallowed: the request is refused with ENOTRECOVERABLE and an
// error that names both failures, the runtime's getters say where it was left, and
// changed() is called, since the runtime did change.
//
// The device is reached through UapiDeviceControl, the few methods a `set` and a `get`
// need; Device implements it as it is.

import { timingSafeEqual } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { clamp } from '../../../crypto/index.js';
import { encodeKey, publicKeyOf } from '../../../crypto/keys.js';
import { MAX_PEERS, type PeerStatus, type PeerUpdate } from '../../../tunnel/device.js';
import { describe, UAPI_ERRNO, UapiError } from './errors.js';
import type { UapiDeviceState, UapiPeerSet, UapiSetRequest } from './protocol.js';

/** What the control socket needs of the engine. `Device` has exactly these. */
export interface UapiDeviceControl {
  /** The device's public key; all zeros while it has no private key. */
  readonly publicKey: Uint8Array;
  /** A copy of the private key (for `get`), all zeros when there is none; never logged. */
  readonly privateKey: Uint8Array;
  readonly peerCount: number;
  hasPeer(publicKey: Uint8Array): boolean;
  peerStatus(now: number): PeerStatus[];
  /** Changes the key (all zeros: none); a peer with the new public key goes away. */
  setPrivateKey(privateKey: Uint8Array): void;
  /** Adds or updates a peer; false for the device's own key. Throws only on what the plan checked. */
  setPeer(publicKey: Uint8Array, update: PeerUpdate): boolean;
  removePeer(publicKey: Uint8Array): boolean;
  removeAllPeers(): void;
}

/** The device behind a control socket. Port and mark belong to the runtime's sockets. */
export interface UapiBackend {
  readonly device: UapiDeviceControl;
  /** The engine's clock (the `now` its other inputs get), for `peerStatus`. */
  now(): number;
  /** The bound UDP port; 0 when not bound. */
  listenPort(): number;
  /** Rebinds the UDP sockets (0: any free port). May throw an errno-coded error (EADDRINUSE). */
  setListenPort(port: number): Promise<void>;
  /** The sockets' SO_MARK; 0 when none. */
  fwmark(): number;
  /** Marks the sockets (0 clears the mark). May throw an errno-coded error. */
  setFwmark(mark: number): Promise<void>;
  /**
   * Called exactly once after each `set` that changed something (the engine, the port or
   * the mark; also a refused one whose undo failed), so the runtime can bring routes in
   * step with the peers and run the engine's timers now. Never for a `get` or for a set
   * that left everything as it was. Must not throw.
   */
  changed?(): void;
}

/** The state a `get` reports, read from the backend now. */
export function readDeviceState(backend: UapiBackend): UapiDeviceState {
  const { device } = backend;
  return { privateKey: device.privateKey, listenPort: backend.listenPort(), fwmark: backend.fwmark(), peers: device.peerStatus(backend.now()) };
}

/** What a `set` did: whether anything changed, and the error that refused it, if any. */
export interface ApplyOutcome {
  readonly changed: boolean;
  readonly error?: UapiError;
}

/** The errno a runtime error names (its `code`), or EADDRINUSE, wireguard-go's answer for any bind or mark failure. */
function runtimeErrno(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    const n = (osConstants.errno as Record<string, number | undefined>)[code];
    if (n !== undefined) return n;
  }
  return UAPI_ERRNO.EADDRINUSE;
}

type PeerAction = 'set' | 'remove' | 'skip';

/**
 * Decides, against the device as it is now, what each peer section does, and checks the
 * peer count, replaying the request over which keys the device would hold.
 */
export function planPeers(request: UapiSetRequest, device: UapiDeviceControl): PeerAction[] {
  // Keys whose presence the request has decided so far; the rest are as the device has them.
  const decided = new Map<string, boolean>();
  let count = request.replacePeers ? 0 : device.peerCount;
  const present = (name: string, key: Uint8Array): boolean => decided.get(name) ?? (!request.replacePeers && device.hasPeer(key));
  // Our own key as text; '' for a device without one (no peer key encodes to it).
  let own = device.publicKey.some((b) => b !== 0) ? encodeKey(device.publicKey) : '';
  if (request.privateKey !== undefined) {
    own = '';
    // As the engine does: a peer with the device's new public key goes away. All zeros
    // removes the key, and there is no such peer then.
    if (request.privateKey.some((b) => b !== 0)) {
      const ownKey = publicKeyOf(request.privateKey);
      own = encodeKey(ownKey);
      if (present(own, ownKey)) count--;
      decided.set(own, false);
    }
  }
  const actions = request.peers.map((p: UapiPeerSet): PeerAction => {
    const name = encodeKey(p.publicKey);
    const was = present(name, p.publicKey);
    if (p.remove) {
      if (was) count--;
      decided.set(name, false);
      return 'remove';
    }
    if (name === own || (p.updateOnly && !was)) return 'skip';
    if (!was) count++;
    decided.set(name, true);
    return 'set';
  });
  if (count > MAX_PEERS) throw new UapiError('ERR_UAPI_TOO_MANY_PEERS', UAPI_ERRNO.EINVAL, `a device holds at most ${MAX_PEERS} peers`);
  return actions;
}

/** One runtime step done, and how to undo it. */
interface Undo {
  readonly what: string;
  readonly run: () => Promise<void>;
}

/** Applies a parsed `set`. Never throws: a refusal is in the outcome. */
export async function applySet(request: UapiSetRequest, backend: UapiBackend): Promise<ApplyOutcome> {
  const undo: Undo[] = [];
  let actions: PeerAction[];
  try {
    // 1. The runtime's part, which may fail.
    if (request.listenPort !== undefined && request.listenPort !== backend.listenPort()) {
      const old = backend.listenPort();
      try {
        await backend.setListenPort(request.listenPort);
      } catch (error) {
        throw new UapiError('ERR_UAPI_RUNTIME', runtimeErrno(error), `listen_port ${request.listenPort}: ${describe(error)}`);
      }
      undo.push({ what: `listen_port back to ${old}`, run: () => backend.setListenPort(old) });
    }
    if (request.fwmark !== undefined && request.fwmark !== backend.fwmark()) {
      const old = backend.fwmark();
      try {
        await backend.setFwmark(request.fwmark);
      } catch (error) {
        throw new UapiError('ERR_UAPI_RUNTIME', runtimeErrno(error), `fwmark ${request.fwmark}: ${describe(error)}`);
      }
      undo.push({ what: `fwmark back to ${old}`, run: () => backend.setFwmark(old) });
    }
    // 2. Checked against the device as it is after the awaits above.
    actions = planPeers(request, backend.device);
  } catch (error) {
    const refusal = error instanceof UapiError ? error : new UapiError('ERR_UAPI_INTERNAL', UAPI_ERRNO.ENOANO, `unexpected: ${describe(error)}`);
    return rollback(undo, refusal);
  }

  // 3. The engine's part: synchronous, and checked above, so it does not fail halfway.
  const device = backend.device;
  let changed = undo.length > 0;
  if (request.privateKey !== undefined && !holdsKey(device, request.privateKey)) {
    device.setPrivateKey(request.privateKey);
    changed = true;
  }
  if (request.replacePeers && device.peerCount > 0) {
    device.removeAllPeers();
    changed = true;
  }
  request.peers.forEach((p, i) => {
    const action = actions[i];
    if (action === 'remove') {
      if (device.removePeer(p.publicKey)) changed = true;
    } else if (action === 'set') {
      device.setPeer(p.publicKey, {
        ...(p.presharedKey !== undefined && { presharedKey: p.presharedKey }),
        ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
        ...(p.persistentKeepalive !== undefined && { persistentKeepalive: p.persistentKeepalive }),
        allowedIPs: request.allowedIPs.slice(p.allowedFrom, p.allowedTo),
        replaceAllowedIPs: p.replaceAllowedIPs,
      });
      changed = true;
    }
  });
  return { changed };
}

/**
 * True when the device's key is already `privateKey` (once clamped, as the device keeps
 * it). Setting it again is then no change, as in the kernel and wireguard-go: `wg
 * syncconf` and `wg setconf` with the running key must not end every session.
 */
function holdsKey(device: UapiDeviceControl, privateKey: Uint8Array): boolean {
  const wanted = privateKey.slice();
  if (wanted.some((b) => b !== 0)) clamp(wanted);
  const held = device.privateKey;
  const same = timingSafeEqual(wanted, held);
  wanted.fill(0);
  held.fill(0);
  return same;
}

/** Undoes the runtime steps, newest first; a step that cannot be undone turns the refusal into ENOTRECOVERABLE. */
async function rollback(undo: Undo[], refusal: UapiError): Promise<ApplyOutcome> {
  const failed: string[] = [];
  for (const step of undo.reverse()) {
    try {
      await step.run();
    } catch (error) {
      failed.push(`${step.what} failed too (${describe(error)})`);
    }
  }
  if (failed.length === 0) return { changed: false, error: refusal };
  return {
    changed: true,
    error: new UapiError(
      'ERR_UAPI_ROLLBACK_FAILED',
      UAPI_ERRNO.ENOTRECOVERABLE,
      `${refusal.message}; undoing the change: ${failed.join('; ')}; the runtime is left as it is now`,
    ),
  };
}
