// Read-only views of engine state: the index table, the
// per-peer keypairs and staged packets, the deadline heap. The fuzzers need them to check
// that tables and queues stay bounded and to learn which keypair (and so which peer, and
// how old) sealed or opened each transport message.
//
// They come from Device.inspect(); the names here are the ones the checks use.

import type { Device, DeviceInspection, IndexEntry } from '../../tunnel/device.js';
import type { Keypair } from '../../tunnel/keypair.js';
import type { Peer } from '../../tunnel/peer.js';

export type KeypairView = Keypair;
export type PeerView = Peer;
export type IndexEntryView = IndexEntry;
export type DeviceView = DeviceInspection;

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
