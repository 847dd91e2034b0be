// Where the admin page may listen: loopback freely; any other address only over TLS or
// when --insecure accepts that the password and session cross the network in the clear.
// Kept apart from the app so that the command line checks it without loading fastify.

import { isIP } from 'node:net';
import { parseEndpoint } from '../../src/config/endpoint.js';

export class AdminError extends Error {
  override readonly name = 'AdminError';
  constructor(readonly code: 'ERR_ADMIN_BIND' | 'ERR_ADMIN_TLS', message: string) {
    super(message);
  }
}

export interface AdminBind {
  readonly address: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly insecure?: boolean;
}

const isLoopback = (host: string): boolean => host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';

/** host and port of `bind`; throws AdminError for an address it must refuse (non-loopback without TLS or --insecure). */
export function checkBind(bind: AdminBind): { host: string; port: number } {
  let host: string;
  let port: number;
  try {
    const e = parseEndpoint(bind.address);
    host = e.host;
    port = e.port;
  } catch (e) {
    throw new AdminError('ERR_ADMIN_BIND', `--admin ${JSON.stringify(bind.address)}: expected HOST:PORT such as 127.0.0.1:51821 (${(e as Error).message})`);
  }
  if ((bind.tlsCert === undefined) !== (bind.tlsKey === undefined)) throw new AdminError('ERR_ADMIN_TLS', 'the admin page over TLS needs both a certificate and a key file (--admin-tls-cert, --admin-tls-key)');
  if (!isLoopback(host) && bind.tlsCert === undefined && bind.insecure !== true) {
    throw new AdminError(
      'ERR_ADMIN_BIND',
      `--admin ${bind.address}: not a loopback address, and no TLS: the password and session would cross the network in the clear. Give --admin-tls-cert and --admin-tls-key, bind to 127.0.0.1 (and tunnel to it over SSH), or accept the risk with --insecure`,
    );
  }
  return { host, port };
}
