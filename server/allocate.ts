// The next free addresses for a new peer: in each of the tunnel's subnets (the networks
// of the server's Address lines, one IPv4 and one IPv6 at most), the lowest host number
// n >= 1 that is neither the server's address nor allowed to any peer, enabled or
// disabled, nor the IPv4 network or broadcast address. Both families get the same n
// where they can (10.8.0.7 and fd…::7), which keeps a peer's two addresses easy to read.

import { type Config, type IpPrefix, makePrefix } from '../src/config/index.js';
import { type RegistryData, RegistryError, tunnelSubnets } from './registry.js';

/** Beyond this, a host number is never reached by counting up from 1. */
const MAX_HOST = 2 ** 48;

/**
 * The host number of `address` in `subnet`, or undefined when it lies outside, or so far
 * in (2^48 and up) that no count from 1 reaches it. Plain numbers, no BigInt: this runs
 * for every address of every peer at each add-peer.
 */
function hostNumber(subnet: IpPrefix, address: Uint8Array): number | undefined {
  const net = subnet.address;
  if (address.length !== net.length) return undefined;
  let n = 0;
  for (let i = 0; i < net.length; i++) {
    const netBits = Math.max(0, Math.min(8, subnet.prefixLength - 8 * i));
    const mask = (0xff00 >>> netBits) & 0xff;
    if (((address[i]! ^ net[i]!) & mask) !== 0) return undefined;
    n = n * 256 + (address[i]! & ~mask & 0xff);
    if (n >= MAX_HOST) return undefined;
  }
  return n;
}

interface Pool {
  readonly subnet: IpPrefix;
  /** Host numbers 1..last are usable. */
  readonly last: number;
  readonly used: Set<number>;
}

function pools(config: Config, taken: Iterable<IpPrefix>): Pool[] {
  const subnets = tunnelSubnets(config);
  const seen = new Set<number>();
  const out: Pool[] = [];
  for (const subnet of subnets) {
    if (seen.has(subnet.family)) continue; // the first subnet of each family is the pool
    seen.add(subnet.family);
    const hostBits = (subnet.family === 4 ? 32 : 128) - subnet.prefixLength;
    const last = subnet.family === 4 ? 2 ** hostBits - 2 : Math.min(2 ** hostBits - 1, MAX_HOST - 1);
    const used = new Set<number>();
    const mark = (p: IpPrefix) => {
      if (p.family !== subnet.family) return;
      const n = hostNumber(subnet, p.address);
      if (n !== undefined) used.add(n);
    };
    for (const a of config.interface.addresses) mark(a);
    for (const a of taken) mark(a);
    out.push({ subnet, last, used });
  }
  return out;
}

/** A host address (/32, /128) in each of the tunnel's subnets for a new peer. */
export function allocateAddresses(data: RegistryData): IpPrefix[] {
  return allocateAmong(data.config, data.peers.flatMap((r) => r.peer.allowedIPs));
}

/** The same, given the server's config and every peer's allowed IPs (add-peer's scan). */
export function allocateAmong(config: Config, taken: Iterable<IpPrefix>): IpPrefix[] {
  const ps = pools(config, taken);
  if (ps.length === 0) throw new RegistryError('ERR_REGISTRY_FULL', 'the server has no Address: there is no subnet to give peers addresses from');
  const limit = ps.reduce((m, p) => (p.last < m ? p.last : m), ps[0]!.last);
  // The same n in every family first; else the lowest free n of each on its own.
  for (let n = 1; n <= limit; n++) {
    if (ps.every((p) => !p.used.has(n))) return ps.map((p) => hostPrefix(p, n));
  }
  return ps.map((p) => {
    for (let n = 1; n <= p.last; n++) if (!p.used.has(n)) return hostPrefix(p, n);
    throw new RegistryError('ERR_REGISTRY_FULL', `the subnet ${p.subnet.text} is full (${p.last} addresses, all taken): give the server a larger one`);
  });
}

function hostPrefix(p: Pool, n: number): IpPrefix {
  const family = p.subnet.family;
  const bytes = Uint8Array.from(p.subnet.address);
  // The subnet's host bits are zero (tunnelSubnets masks them): add n from the last byte up.
  for (let i = bytes.length - 1, rest = n; rest > 0; i--) {
    bytes[i] = bytes[i]! | rest % 256;
    rest = Math.floor(rest / 256);
  }
  return makePrefix(family, bytes, family === 4 ? 32 : 128);
}
