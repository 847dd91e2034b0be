// `burrow server init`: the server's wg-quick file with fresh keys, a free IPv4 subnet
// and an IPv6 ULA /64, written atomically (0600). Also the detection `server up` uses
// when the file names no uplink: the interface of the default route.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { interfaceConfig, type IpPrefix, makePrefix, parsePrefix } from '../src/config/index.js';
import { parseEndpoint } from '../src/config/endpoint.js';
import type { Exec } from '../src/platform/linux/index.js';
import { writeFileAtomic } from '../src/runtime/journal.js';
import type { PgRegistry } from './pg/registry.js';
import { formatRegistry, type RegistryData, RegistryError } from './registry.js';

export const DEFAULT_PORT = 51820;

function json(text: string): Record<string, unknown>[] {
  try {
    const v = JSON.parse(text || '[]') as unknown;
    return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
  } catch {
    return [];
  }
}

/** The interface of the default route (IPv4 first, then IPv6); undefined when there is none. */
export async function detectUplink(exec: Exec): Promise<string | undefined> {
  for (const f of ['-4', '-6']) {
    const r = await exec('ip', ['-j', f, 'route', 'show', 'default']);
    const dev = json(r.stdout).find((x) => typeof x.dev === 'string')?.dev;
    if (r.exitCode === 0 && typeof dev === 'string') return dev;
  }
  return undefined;
}

function overlaps(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false;
  const bits = Math.min(a.prefixLength, b.prefixLength);
  for (let bit = 0; bit < bits; bit++) {
    const m = 0x80 >>> bit % 8;
    if ((a.address[bit >>> 3]! & m) !== (b.address[bit >>> 3]! & m)) return false;
  }
  return true;
}

/** The networks the host already uses: its addresses and routes, every table. */
async function usedNetworks(exec: Exec): Promise<IpPrefix[]> {
  const out: IpPrefix[] = [];
  const add = (text: string) => {
    try {
      out.push(parsePrefix(text, { mask: true }));
    } catch {
      // "default", "broadcast …" and the like: not a network to avoid
    }
  };
  for (const link of json((await exec('ip', ['-j', 'address', 'show'])).stdout)) {
    for (const a of (link.addr_info as { local?: string; prefixlen?: number }[] | undefined) ?? []) {
      if (typeof a.local === 'string' && typeof a.prefixlen === 'number') add(`${a.local}/${a.prefixlen}`);
    }
  }
  for (const f of ['-4', '-6']) {
    for (const r of json((await exec('ip', ['-j', f, 'route', 'show', 'table', 'all'])).stdout)) {
      if (typeof r.dst === 'string') add(r.dst.includes('/') ? r.dst : `${r.dst}/${f === '-4' ? 32 : 128}`);
    }
  }
  return out;
}

/** The first of 10.8.0.0/24, 10.9.0.0/24 … 10.254.0.0/24 that nothing on the host uses. */
export async function freeSubnet(exec: Exec): Promise<IpPrefix> {
  const used = await usedNetworks(exec);
  for (let second = 8; second < 255; second++) {
    const candidate = makePrefix(4, Uint8Array.of(10, second, 0, 0), 24);
    if (!used.some((u) => overlaps(u, candidate))) return candidate;
  }
  throw new RegistryError('ERR_REGISTRY_FULL', 'no free 10.x.0.0/24 on this host: give one with --subnet');
}

/** A random ULA /64 (RFC 4193: fd00::/8, a 40-bit random global ID, subnet 0). */
export function randomUla(): IpPrefix {
  const bytes = new Uint8Array(16);
  bytes[0] = 0xfd;
  bytes.set(randomBytes(5), 1);
  return makePrefix(6, bytes, 64);
}

/** The subnet's first host address, with the subnet's length: the server's Address. */
function firstHost(subnet: IpPrefix): IpPrefix {
  const bytes = Uint8Array.from(subnet.address);
  bytes[bytes.length - 1]! |= 1;
  return makePrefix(subnet.family, bytes, subnet.prefixLength);
}

export interface InitOptions {
  readonly ifname: string;
  readonly dir: string;
  /** HOST or HOST:PORT that clients dial; the port defaults to the listen port. */
  readonly endpoint?: string;
  readonly subnet?: string;
  readonly subnet6?: string;
  readonly port?: number;
  readonly exec: Exec;
}

function subnetArg(text: string, family: 4 | 6, flag: string): IpPrefix {
  let p: IpPrefix;
  try {
    p = parsePrefix(text, { mask: true });
  } catch (e) {
    throw new RegistryError('ERR_REGISTRY_INPUT', `${flag} ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
  const max = family === 4 ? 30 : 126;
  if (p.family !== family || p.prefixLength > max || p.prefixLength < (family === 4 ? 8 : 48)) {
    throw new RegistryError('ERR_REGISTRY_INPUT', `${flag} ${JSON.stringify(text)}: expected an IPv${family} subnet from /${family === 4 ? 8 : 48} to /${max}`);
  }
  return p;
}

function endpointArg(text: string, port: number): string {
  const withPort = /^\[.*\]:\d+$|^[^:\[\]]+:\d+$/.test(text) ? text : text.includes(':') && !text.startsWith('[') ? `[${text}]:${port}` : `${text}:${port}`;
  try {
    parseEndpoint(withPort);
  } catch (e) {
    throw new RegistryError('ERR_REGISTRY_INPUT', `--endpoint ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
  return withPort;
}

export interface InitResult {
  /** The file written, or the registry's location (a URL without its password). */
  readonly path: string;
  readonly publicKey: string;
  readonly addresses: readonly string[];
  readonly endpoint: string | undefined;
  readonly uplink: string | undefined;
}

/** A new server's registry: fresh keys, the subnets, no peers. */
async function newServer(o: Omit<InitOptions, 'dir' | 'ifname'>): Promise<{ data: RegistryData; result: Omit<InitResult, 'path'> }> {
  const port = o.port ?? DEFAULT_PORT;
  const subnet = o.subnet === undefined ? await freeSubnet(o.exec) : subnetArg(o.subnet, 4, '--subnet');
  const subnet6 = o.subnet6 === undefined ? randomUla() : subnetArg(o.subnet6, 6, '--subnet6');
  const uplink = await detectUplink(o.exec);
  const endpoint = o.endpoint === undefined ? undefined : endpointArg(o.endpoint, port);
  const privateKey = generatePrivateKey();
  const data: RegistryData = {
    config: {
      interface: interfaceConfig({ privateKey, addresses: [firstHost(subnet), firstHost(subnet6)], listenPort: port }),
      peers: [],
    },
    settings: { ...(endpoint === undefined ? {} : { endpoint }), clientToClient: false, dns: [] },
    peers: [],
  };
  const publicKey = encodeKey(publicKeyOf(privateKey));
  return { data, result: { publicKey, addresses: data.config.interface.addresses.map((a) => a.text), endpoint, uplink } };
}

/** Writes DIR/IFACE.conf; refuses to overwrite one. Returns its path and what it holds. */
export async function initServer(o: InitOptions): Promise<InitResult> {
  const path = join(o.dir, `${o.ifname}.conf`);
  if (existsSync(path)) throw new RegistryError('ERR_REGISTRY_INPUT', `${path} exists already: burrow server init never overwrites a registry`);
  const { data, result } = await newServer(o);
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  try {
    writeFileAtomic(path, formatRegistry(data, path), 0o600);
  } finally {
    data.config.interface.privateKey.fill(0);
  }
  return { path, ...result };
}

/**
 * Writes a new server into a PostgreSQL registry; refuses one that holds a server
 * already (all its peers' configurations name that server's key: replacing it is
 * `burrow server registry import --replace`, never a side effect of init).
 */
export async function initServerIn(registry: PgRegistry, o: Omit<InitOptions, 'dir' | 'ifname'>): Promise<InitResult> {
  const { data, result } = await newServer(o);
  try {
    await registry.create(data);
  } finally {
    data.config.interface.privateKey.fill(0);
  }
  return { path: registry.location, ...result };
}
