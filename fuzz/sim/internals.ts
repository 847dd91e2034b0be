// Read-only views of engine state: the index table, the
// per-peer keypairs and staged packets, the deadline heap. The fuzzers need them to check
// that tables and queues stay bounded and to learn which keypair (and so which peer, and
// how old) sealed or opened each transport message.
//
// They come from Device.inspect(); the narrower view types here say what the checks use.

import type { Device } from '../../tunnel/device.js';

export interface KeypairView {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  readonly created: number;
  readonly sendCounter: number;
}

export interface PeerView {
  readonly name: string;
  readonly keypairs: { current?: KeypairView | undefined; previous?: KeypairView | undefined; next?: KeypairView | undefined };
  readonly staged: { buf: Uint8Array; length: number }[] | undefined;
  readonly handshake: { kind: string; localIndex?: number };
  readonly endpoint: { host: string; port: number } | undefined;
}

export interface IndexEntryView {
  readonly peer: PeerView;
  readonly keypair: KeypairView | undefined;
}

export interface DeviceView {
  readonly indexTable: ReadonlyMap<number, IndexEntryView>;
  readonly peers: ReadonlyMap<string, PeerView>;
  readonly heapLength: number;
  readonly stagedBytes: number;
}

export function inspect(device: Device): DeviceView {
  return device.inspect();
}

/** The index entry whose keypair holds `key` (by identity) as its send or receive key. */
export function keypairOfKey(view: DeviceView, key: Uint8Array, which: 'send' | 'receive'): IndexEntryView | undefined {
  for (const entry of view.indexTable.values()) {
    const kp = entry.keypair;
    if (kp !== undefined && (which === 'send' ? kp.sendKey : kp.receiveKey) === key) return entry;
  }
  // A keypair no longer in the table (retired) can still be named by a peer's slots.
  for (const peer of view.peers.values()) {
    for (const kp of [peer.keypairs.current, peer.keypairs.previous, peer.keypairs.next]) {
      if (kp !== undefined && (which === 'send' ? kp.sendKey : kp.receiveKey) === key) return { peer, keypair: kp };
    }
  }
  return undefined;
}
