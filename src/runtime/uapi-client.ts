// The client side of the WireGuard userspace API: what `burrow show` and `burrow down`
// use to talk to a running tunnel over /var/run/wireguard/IFACE.sock.

import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { encodeKey } from '../../crypto/keys.js';

export const UAPI_DIR = '/var/run/wireguard';
const MAX_REPLY = 16 << 20;

export const uapiSocketPath = (ifname: string): string => join(UAPI_DIR, `${ifname}.sock`);

export class UapiClientError extends Error {
  override readonly name = 'UapiClientError';
  constructor(readonly code: 'ERR_NOT_UP' | 'ERR_UAPI_TIMEOUT' | 'ERR_UAPI_ERRNO' | 'ERR_UAPI_PROTOCOL', message: string) {
    super(message);
  }
}

/** Sends one request (ending in a blank line) and returns the reply up to its blank line. */
export function uapiRequest(ifname: string, request: string, timeoutMs = 3000): Promise<string> {
  const path = uapiSocketPath(ifname);
  return new Promise((resolve, reject) => {
    if (!existsSync(path)) return reject(new UapiClientError('ERR_NOT_UP', `${ifname} is not up (no ${path})`));
    const sock = net.createConnection(path);
    let reply = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new UapiClientError('ERR_UAPI_TIMEOUT', `${ifname} did not answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.length > MAX_REPLY) {
        sock.destroy();
        clearTimeout(timer);
        reject(new UapiClientError('ERR_UAPI_PROTOCOL', `${ifname}: reply larger than ${MAX_REPLY} bytes`));
      } else if (reply.endsWith('\n\n')) {
        clearTimeout(timer);
        sock.end();
        resolve(reply);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === 'ECONNREFUSED' || e.code === 'ENOENT'
        ? new UapiClientError('ERR_NOT_UP', `${ifname} is not up (nothing answers on ${path})`)
        : e);
    });
  });
}

export interface UapiPeer {
  publicKey: string;
  hasPresharedKey: boolean;
  endpoint: string | undefined;
  allowedIPs: string[];
  /** Unix seconds of the last handshake; 0 = never. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface UapiInterface {
  name: string;
  publicKey: string | undefined;
  listenPort: number;
  fwmark: number;
  peers: UapiPeer[];
}

const hexKey = (hex: string): string => encodeKey(Uint8Array.from(Buffer.from(hex, 'hex')));

/** Parses a `get=1` reply. The private key is reduced to the public one it implies. */
export function parseGetReply(name: string, reply: string, publicKeyOf: (privateKey: Uint8Array) => Uint8Array): UapiInterface {
  const out: UapiInterface = { name, publicKey: undefined, listenPort: 0, fwmark: 0, peers: [] };
  let peer: UapiPeer | undefined;
  for (const line of reply.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new UapiClientError('ERR_UAPI_PROTOCOL', `${name}: malformed reply line`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case 'private_key': {
        const priv = Uint8Array.from(Buffer.from(value, 'hex'));
        out.publicKey = encodeKey(publicKeyOf(priv));
        priv.fill(0);
        break;
      }
      case 'listen_port': out.listenPort = Number(value); break;
      case 'fwmark': out.fwmark = Number(value); break;
      case 'public_key':
        peer = { publicKey: hexKey(value), hasPresharedKey: false, endpoint: undefined, allowedIPs: [], lastHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };
        out.peers.push(peer);
        break;
      case 'errno':
        if (value !== '0') throw new UapiClientError('ERR_UAPI_ERRNO', `${name}: the tunnel answered errno ${value}`);
        break;
      default:
        if (peer === undefined) break;
        if (key === 'preshared_key') peer.hasPresharedKey = !/^0+$/.test(value);
        else if (key === 'endpoint') peer.endpoint = value;
        else if (key === 'allowed_ip') peer.allowedIPs.push(value);
        else if (key === 'last_handshake_time_sec') peer.lastHandshake = Number(value);
        else if (key === 'rx_bytes') peer.rxBytes = Number(value);
        else if (key === 'tx_bytes') peer.txBytes = Number(value);
        else if (key === 'persistent_keepalive_interval') peer.persistentKeepalive = Number(value);
    }
  }
  return out;
}

/** Interfaces with a control socket (Burrow's, or any userspace WireGuard's). */
export function listInterfaces(): string[] {
  if (!existsSync(UAPI_DIR)) return [];
  return readdirSync(UAPI_DIR).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).sort();
}
