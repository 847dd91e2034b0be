// The engine's driver for JavaScriptCore: what a host (native/jsc-host in C on Linux,
// native/apple's PacketTunnelProvider in Swift) calls, in the part src/runtime/tunnel.ts
// plays for Node. Only ECMAScript: the host brings every socket, clock and random byte.
//
//   Burrow.start(configText, resolvedEndpointsJson, host)  -> JSON { settings, apple, ... }
//   Burrow.packets(arena, lengths, count, slotSize, now)  packets read from the tunnel
//       interface: packet i is arena[i*slotSize + 16 : +lengths[i]]; sealed in place and
//       sent through host.send. The 16 bytes in front are room for the data header.
//   Burrow.datagrams(arena, lengths, addrs, count, slotSize, now)  datagrams from the
//       network: datagram i is arena[i*slotSize : +lengths[i]]; addrs holds 20 bytes per
//       datagram: family (4 or 6), port (big-endian, 2 bytes), 1 spare, then the address
//       (4 or 16 bytes). Opened in place; packets for the tunnel go to host.write.
//   Burrow.timer(now)                                     the armed timer fired
//   Burrow.status(now)                                    -> JSON, as `wg show` sees it
// Each call ends with host.arm(delayMs) (-1: no timer needed) when the deadline moved.
// The arrays are the host's own memory, wrapped once without copying
// (JSObjectMakeTypedArrayWithBytesNoCopy); the driver only makes views on them.

import type { Aead } from '../../crypto/aead.js';
import { clamp, type Dh } from '../../crypto/x25519.js';
import { encodeKey } from '../../crypto/keys.js';
import { formatIpAddress, parseConfig } from '../config/index.js';
import { tunnelSettings } from '../policy/index.js';
import { Device, type Endpoint } from '../../tunnel/device.js';
import { sealedLength } from '../../tunnel/transport.js';
import { appleNetworkSettings } from './network-settings.js';

export interface Host {
  /** Fills `out` with bytes from the system's CSPRNG. */
  random(out: Uint8Array): void;
  /** Sends a datagram; `data` is valid only during the call. */
  send(data: Uint8Array, host: string, port: number): void;
  /** Writes an IP packet to the tunnel interface; valid only during the call. */
  write(packet: Uint8Array): void;
  /** Arms the one timer `delayMs` from now; -1 disarms it. */
  arm(delayMs: number): void;
  log?(line: string): void;
  /** A native ChaCha20-Poly1305 (OpenSSL, CryptoKit), through the engine's Aead seam. */
  aead?: Aead;
  /**
   * A native X25519 (CryptoKit's Curve25519 on Apple): writes X25519(scalar, point) into
   * `out`; false when the platform refuses the point or the result is all zeros.
   */
  x25519?(scalar: Uint8Array, point: Uint8Array, out: Uint8Array): boolean;
  /** Wall-clock ms (Unix epoch) at the host's clock zero. */
  wallClockAtZero?: number;
}

export const ADDR_STRIDE = 20;
export const HEADROOM = 16;

let device: Device | undefined;
let host: Host | undefined;
let mtu = 1420;
let armedAt = Infinity;

function formatAddress(addrs: Uint8Array, off: number): string {
  if (addrs[off] === 4) return `${addrs[off + 4]}.${addrs[off + 5]}.${addrs[off + 6]}.${addrs[off + 7]}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(((addrs[off + 4 + 2 * i]! << 8) | addrs[off + 5 + 2 * i]!).toString(16));
  // The canonical form (RFC 5952) so that the engine's endpoint comparison is stable.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

// One Endpoint object per source seen last: a steady peer costs no string per datagram.
let lastKey = '';
let lastEndpoint: Endpoint = { host: '', port: 0 };
let lastBytes = new Uint8Array(ADDR_STRIDE);

function endpointAt(addrs: Uint8Array, off: number): Endpoint {
  const n = addrs[off] === 4 ? 8 : 20;
  let same = lastKey !== '';
  for (let i = 0; same && i < n; i++) same = lastBytes[i] === addrs[off + i];
  if (same) return lastEndpoint;
  lastBytes = addrs.slice(off, off + ADDR_STRIDE);
  lastKey = 'set';
  lastEndpoint = { host: formatAddress(addrs, off), port: (addrs[off + 1]! << 8) | addrs[off + 2]! };
  return lastEndpoint;
}

function rearm(now: number): void {
  const next = device!.tick(now);
  if (next === armedAt) return;
  armedAt = next;
  host!.arm(next === Infinity ? -1 : Math.max(0, Math.ceil(next - now)));
}

const BASEPOINT = Uint8Array.of(9, ...new Array<number>(31).fill(0));

/** The engine's Dh seam over the host's X25519. */
export function hostDh(x25519: NonNullable<Host['x25519']>, random: (out: Uint8Array) => Uint8Array): Dh {
  return {
    name: 'host',
    generatePrivateKey: (r = random) => clamp(r(new Uint8Array(32))),
    publicKey(privateKey) {
      const out = new Uint8Array(32);
      if (!x25519(privateKey, BASEPOINT, out)) throw new Error('host x25519 refused the base point');
      return out;
    },
    sharedSecret(privateKey, publicKey) {
      const out = new Uint8Array(32);
      if (!x25519(privateKey, publicKey, out)) return null;
      return out.some((b) => b !== 0) ? out : null;
    },
  };
}

function need(): Device {
  if (device === undefined) throw new Error('Burrow.start has not been called');
  return device;
}

export function start(configText: string, resolvedEndpointsJson: string, h: Host): string {
  const config = parseConfig(configText, 'config');
  const resolved = resolvedEndpointsJson === '' ? undefined : JSON.parse(resolvedEndpointsJson) as { host: string; port: number }[];
  const settings = tunnelSettings(config, resolved === undefined ? {} : { resolvedEndpoints: resolved });
  host = h;
  mtu = settings.mtu;
  armedAt = Infinity;
  lastKey = '';
  const random = (out: Uint8Array): Uint8Array => { h.random(out); return out; };
  device = new Device({
    privateKey: config.interface.privateKey, mtu, random,
    ...(h.aead === undefined ? {} : { aead: h.aead }),
    ...(h.x25519 === undefined ? {} : { dh: hostDh(h.x25519.bind(h), random) }),
    ...(h.wallClockAtZero === undefined ? {} : { wallClockAtZero: h.wallClockAtZero }),
  }, {
    send: (data, to) => h.send(data, to.host, to.port),
    write: (packet) => h.write(packet),
    event: (e) => h.log?.(JSON.stringify(e)),
  });
  config.peers.forEach((p, i) => {
    const endpoint = resolved?.[i] ?? p.endpoint;
    device!.setPeer(p.publicKey, {
      allowedIPs: p.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })),
      ...(p.presharedKey === undefined ? {} : { presharedKey: p.presharedKey }),
      ...(endpoint === undefined ? {} : { endpoint: { host: endpoint.host, port: endpoint.port } }),
      ...(p.persistentKeepalive === undefined ? {} : { persistentKeepalive: p.persistentKeepalive }),
    });
  });
  return JSON.stringify({
    settings,
    apple: appleNetworkSettings(settings),
    listenPort: config.interface.listenPort ?? 0,
    fwmark: settings.fwmark ?? 0,
    slotSize: sealedLength(mtu, mtu) + HEADROOM,
    publicKey: encodeKey(device.publicKey),
    aead: h.aead?.name ?? '@noble/ciphers',
    dh: h.x25519 === undefined ? '@noble/curves' : 'host',
  }, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
}

export function packets(arena: Uint8Array, lengths: Int32Array, count: number, slotSize: number, now: number): void {
  const d = need();
  for (let i = 0; i < count; i++) {
    const length = lengths[i]!;
    const base = i * slotSize;
    const slot = arena.subarray(base, base + slotSize);
    if (sealedLength(length, mtu) > slot.length) continue;
    d.sendPacket(slot, length, now);
  }
  rearm(now);
}

export function datagrams(arena: Uint8Array, lengths: Int32Array, addrs: Uint8Array, count: number, slotSize: number, now: number): void {
  const d = need();
  for (let i = 0; i < count; i++) {
    const base = i * slotSize;
    d.receiveDatagram(arena.subarray(base, base + lengths[i]!), endpointAt(addrs, i * ADDR_STRIDE), now);
  }
  rearm(now);
}

export function timer(now: number): void {
  armedAt = Infinity;
  need();
  rearm(now);
}

export function status(now: number): string {
  // The preshared key stays inside: the app sees only whether there is one.
  return JSON.stringify(need().peerStatus(now).map((p) => ({
    publicKey: p.publicKey,
    hasPresharedKey: p.presharedKey !== undefined,
    endpoint: p.endpoint ?? null,
    allowedIPs: p.allowedIPs.map((a) => `${formatIpAddress({ family: a.address.length === 4 ? 4 : 6, bytes: a.address })}/${a.cidr}`),
    lastHandshake: p.lastHandshake,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    persistentKeepalive: p.persistentKeepalive,
  })));
}

export function stop(): void {
  device = undefined;
  host = undefined;
}
