// The next free addresses for a new peer: in each of the tunnel's subnets (the networks
// of the server's Address lines, one IPv4 and one IPv6 at most), the lowest host number
// n >= 1 that is neither the server's address nor allowed to any peer, enabled or
// disabled, nor the IPv4 network or broadcast address. Both families get the same n
// where they can (10.8.0.7 and fd…::7), which keeps a peer's two addresses easy to read.

import { type Config, type IpPrefix, makePrefix } from '../src/config/index.js';
import { type RegistryData, RegistryError, tunnelSubnets } from './registry.js';

function toBig(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBig(v: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

interface Pool {
  readonly subnet: IpPrefix;
  readonly base: bigint;
  /** Host numbers 1..last are usable. */
  readonly last: bigint;
  readonly used: Set<bigint>;
}

function pools(config: Config, data: RegistryData): Pool[] {
  const subnets = tunnelSubnets(config);
  const seen = new Set<number>();
  const out: Pool[] = [];
  for (const subnet of subnets) {
    if (seen.has(subnet.family)) continue; // the first subnet of each family is the pool
    seen.add(subnet.family);
    const bits = subnet.family === 4 ? 32 : 128;
    const hostBits = BigInt(bits - subnet.prefixLength);
    const size = 1n << hostBits;
    const base = toBig(subnet.address);
    const last = subnet.family === 4 ? size - 2n : size - 1n;
    const used = new Set<bigint>();
    const mark = (p: IpPrefix) => {
      if (p.family !== subnet.family) return;
      const v = toBig(p.address);
      if (v >= base && v < base + size) used.add(v - base);
    };
    for (const a of config.interface.addresses) mark(a);
    for (const r of data.peers) for (const a of r.peer.allowedIPs) mark(a);
    out.push({ subnet, base, last, used });
  }
  return out;
}

/** A host address (/32, /128) in each of the tunnel's subnets for a new peer. */
export function allocateAddresses(data: RegistryData): IpPrefix[] {
  const ps = pools(data.config, data);
  if (ps.length === 0) throw new RegistryError('ERR_REGISTRY_FULL', 'the server has no Address: there is no subnet to give peers addresses from');
  const limit = ps.reduce((m, p) => (p.last < m ? p.last : m), ps[0]!.last);
  // The same n in every family first; else the lowest free n of each on its own.
  for (let n = 1n; n <= limit; n++) {
    if (ps.every((p) => !p.used.has(n))) return ps.map((p) => hostPrefix(p, n));
  }
  return ps.map((p) => {
    for (let n = 1n; n <= p.last; n++) if (!p.used.has(n)) return hostPrefix(p, n);
    throw new RegistryError('ERR_REGISTRY_FULL', `the subnet ${p.subnet.text} is full (${p.last} addresses, all taken): give the server a larger one`);
  });
}

function hostPrefix(p: Pool, n: bigint): IpPrefix {
  const family = p.subnet.family;
  const length = family === 4 ? 4 : 16;
  return makePrefix(family, fromBig(p.base + n, length), family === 4 ? 32 : 128);
}
