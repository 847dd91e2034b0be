/**
 * The one typed binding to the native addon (native/src/addon.cc): where it is, how it
 * is loaded, and the shape of everything it exports. tun.ts and udp.ts both use it, so a
 * change to the addon's exports changes one interface here, checked by the compiler in
 * both users. The addon trusts its callers: arguments are checked in tun.ts and udp.ts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// --- TUN (native/src/tun_fd.cc) ---------------------------------------------------------

export interface NativeTunStats {
  truncatedReads: number;
  refusedWrites: number;
  lastRefusedWrite: string | undefined;
}

export interface NativeTunFd {
  readonly fd: number;
  /** IFF_VNET_HDR is on: every packet crosses with a 10-byte virtio_net_hdr (see gro.ts). */
  readonly vnetHdr: boolean;
  /** `headers` (vnetHdr only): packet i's virtio_net_hdr at bytes 10 i .. 10 i + 10, GSO packets kept (see tso.ts). */
  readBatch(arena: Uint8Array, slotSize: number, headroom: number, lengths: Uint32Array, max: number, headers?: Uint8Array): number;
  writeBatch(arena: Uint8Array, slotSize: number, headroom: number, lengths: Uint32Array, start: number, count: number): number;
  writePackets(packets: readonly Uint8Array[], start: number, count: number, headers?: Uint8Array): number;
  watch(callback: (code?: string) => void): void;
  unwatch(): void;
  close(): void;
  stats(): NativeTunStats;
  /** TUNSETOFFLOAD with TUN_F_* flags (vnetHdr only); throws the errno (EINVAL: unknown to this kernel). */
  setOffload(flags: number): void;
}

// --- UDP (native/src/udp_socket.cc) -----------------------------------------------------

export interface NativeUdpStats {
  truncatedReceives: number;
  failedSends: number;
  /** Sends that carried several datagrams with UDP_SEGMENT; gso: still in use. */
  gsoSends: number;
  gso: boolean;
  /** Source addresses the kernel refused (gone), each datagram sent again from its choice. */
  clearedSources: number;
  lastSendError: string | undefined;
}

export interface NativeUdpSocket {
  readonly fd: number;
  readonly port: number;
  /** `locals`: where each datagram arrived (local-address records, see udp_socket.h). */
  recvBatch(arena: Uint8Array, slotSize: number, lengths: Uint32Array, addrs: Uint8Array, max: number, locals?: Uint8Array): number;
  /** `sources`: where each datagram should leave from; byte 20 of a refused one becomes 2. */
  sendBatch(arena: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, start: number, count: number, sources?: Uint8Array): number;
  watch(callback: (events: number, code?: string) => void, events: number): void;
  close(): void;
  stats(): NativeUdpStats;
  /** UDP GSO for runs of datagrams, on by default (off once the kernel refuses it). */
  setGso(on: boolean): void;
}

// --- the module's exports (native/src/addon.cc) ----------------------------------------

export interface NativeAddon {
  TunFd: new (fd: number) => NativeTunFd;
  open(name: string, vnetHdr?: boolean): { handle: NativeTunFd; name: string };
  ifName(fd: number): string | undefined;
  setSocketMark(fd: number, mark: number): void;
  UdpSocket: new (family: 4 | 6, port: number, bufferBytes: number) => NativeUdpSocket;
  formatAddress(bytes: Uint8Array): string;
  parseAddress(text: string, out: Uint8Array): 0 | 4 | 6;
  ifNameToIndex(name: string): number;
  /** ChaCha20-Poly1305, WireGuard's nonce, in place (native/src/aead.cc): out = ciphertext || tag. */
  aeadSeal(key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array, out: Uint8Array): void;
  /** False, out undefined, when the tag does not verify. */
  aeadOpen(key: Uint8Array, counter: number, sealed: Uint8Array, aad: Uint8Array, out: Uint8Array): boolean;
  /**
   * RFC 1071 sums, folded, not complemented, network order, of data[start + k chunk ..] up to
   * `end`, one per piece of `chunk` bytes, into out[k]; returns how many (native/src/checksum.cc).
   */
  checksumChunks(data: Uint8Array, start: number, end: number, chunk: number, out: Uint32Array): number;
  /** No core dumps, not dumpable (native/src/process.cc). */
  hardenProcess(): void;
}

/** The addon is not built, or cannot be loaded; tun.ts and udp.ts say so in their own errors. */
export class AddonError extends Error {
  override readonly name = 'AddonError';
}

export const ADDON_PATH = join('native', 'build', 'Release', 'burrow_native.node');

/** Where the built addon is, looking up from this module (src/ or dist/src/). */
export function addonPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    const candidate = join(dir, ADDON_PATH);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

let addon: NativeAddon | undefined;

/** The addon, loaded once. Throws AddonError when it is missing or cannot be loaded. */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) return addon;
  const path = addonPath();
  if (path === undefined) throw new AddonError(`the native addon is not built (${ADDON_PATH} is missing): run npm run setup`);
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (cause) {
    throw new AddonError(`cannot load the native addon ${path} (${(cause as Error).message}): rebuild it with npm run build:native`, { cause });
  }
  return addon;
}
