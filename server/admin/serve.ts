// How the server's daemon runs the usage tracker (always) and the admin page (when
// asked for) beside its session: the bind checks, TLS, listen and close. fastify is
// loaded only when the page is on.

import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../src/runtime/log.js';
import type { Session } from '../../src/runtime/session.js';
import type { RegistryFollower } from '../follow.js';
import { AdminError, type AdminBind, checkBind } from './bind.js';
import { adminFiles } from './files.js';
import { UsageTracker } from './tracker.js';
import { serverView, type ServerView } from './view.js';

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
export async function startServerExtras(o: { ifname: string; registry: RegistryFollower; files: string; bind?: AdminBind; log: Logger }): Promise<ServerExtras> {
  const { host, port } = o.bind === undefined ? { host: '', port: 0 } : checkBind(o.bind);
  let session: Session | undefined;
  const view = serverView(o.ifname, o.registry, () => session);
  const files = adminFiles(o.files);
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
    const { buildAdminApp } = await import('./app.js');
    const app: FastifyInstance = await buildAdminApp({ view, tracker, log: o.log, passwordFile: files.password, metricsTokenFile: files.metricsToken, ...(tls === undefined ? {} : { tls }) });
    try {
      await app.listen({ host, port });
    } catch (e) {
      await app.close();
      throw new AdminError('ERR_ADMIN_BIND', `the admin page cannot listen on ${o.bind.address}: ${(e as Error).message}`);
    }
    const url = `${tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
    if (!existsSync(files.password)) o.log.info(`admin page at ${url}: no password set yet (burrow server admin-password)`);
    let closing: Promise<void> | undefined;
    admin = { url, close: () => (closing ??= app.close()) };
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
