// How the server's daemon runs the admin page and the usage tracker beside its session:
// the files beside the registry, the bind checks, TLS, listen and close.
//
//   wg0.conf            the registry (server/registry.ts)
//   wg0.admin-password  the admin password's scrypt hash (password.ts), 0600
//   wg0.metrics-token   the bearer token for /metrics, 0600 (burrow server metrics-token)
//   wg0.usage.json      24 h history and the month's counts (usage.ts), 0600

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../src/runtime/log.js';
import { writeFileAtomic } from '../../src/runtime/journal.js';
import type { Session } from '../../src/runtime/session.js';
import type { FileRegistry } from '../store.js';
import { AdminError, type AdminBind, buildAdminApp, checkBind } from './app.js';
import { besideRegistry } from './password.js';
import { UsageTracker } from './tracker.js';
import { serverView, type ServerView } from './view.js';

export const adminFiles = (registryPath: string) => ({
  password: besideRegistry(registryPath, 'admin-password'),
  metricsToken: besideRegistry(registryPath, 'metrics-token'),
  usage: besideRegistry(registryPath, 'usage.json'),
});

/** Writes a fresh metrics token (256 random bits) unless one exists or `rotate`; returns the file. */
export function ensureMetricsToken(registryPath: string, rotate: boolean): { path: string; created: boolean } {
  const path = adminFiles(registryPath).metricsToken;
  if (existsSync(path) && !rotate) return { path, created: false };
  writeFileAtomic(path, `${randomBytes(32).toString('base64url')}\n`, 0o600);
  return { path, created: true };
}

export interface AdminServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface ServerExtras {
  readonly view: ServerView;
  readonly tracker: UsageTracker;
  /** Set once the session is up; until then the admin page sees no device. */
  attach(session: Session): void;
  /** The admin page, when one was asked for. */
  readonly admin: AdminServer | undefined;
}

/**
 * The usage tracker (always) and the admin page (when `bind` is given), listening before
 * the session starts so that a port in use or a bad certificate stops `up` before it
 * changes anything. Throws AdminError for a refused address or unreadable TLS files.
 */
export async function startServerExtras(o: { ifname: string; registry: FileRegistry; bind?: AdminBind; log: Logger }): Promise<ServerExtras> {
  const { host, port } = o.bind === undefined ? { host: '', port: 0 } : checkBind(o.bind);
  let session: Session | undefined;
  const view = serverView(o.ifname, o.registry, () => session);
  const files = adminFiles(o.registry.location);
  const tracker = new UsageTracker({ view, path: files.usage, log: o.log });
  let admin: AdminServer | undefined;
  if (o.bind !== undefined) {
    let tls: { cert: Buffer; key: Buffer } | undefined;
    if (o.bind.tlsCert !== undefined && o.bind.tlsKey !== undefined) {
      try {
        tls = { cert: readFileSync(o.bind.tlsCert), key: readFileSync(o.bind.tlsKey) };
      } catch (e) {
        throw new AdminError('ERR_ADMIN_TLS', `cannot read the admin page's TLS files: ${(e as Error).message}`);
      }
    }
    const app: FastifyInstance = await buildAdminApp({ view, tracker, log: o.log, passwordFile: files.password, metricsTokenFile: files.metricsToken, ...(tls === undefined ? {} : { tls }) });
    try {
      await app.listen({ host, port });
    } catch (e) {
      await app.close();
      throw new AdminError('ERR_ADMIN_BIND', `the admin page cannot listen on ${o.bind.address}: ${(e as Error).message}`);
    }
    const url = `${tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
    if (!existsSync(files.password)) o.log.info(`admin page at ${url}: no password set yet (burrow server admin-password)`);
    admin = { url, close: () => app.close() };
  }
  return {
    view,
    tracker,
    admin,
    attach(s) {
      session = s;
      tracker.start();
    },
  };
}
