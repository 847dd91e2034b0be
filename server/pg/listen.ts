// PgRegistry.watch: a connection of its own that LISTENs on burrow_registry.
//
//   connected      onChange() once (a notification may have been missed while away),
//                  then onChange() per notification;
//   lost           (the server stopped, the socket closed, a connect failed) onStatus
//                  unreachable once, then a reconnect after 100 ms, doubling to at most
//                  1 s between attempts, for as long as it takes;
//   back           onStatus reachable, onChange() (reconcile in full).
//
// Every handler call is checked against `stopped`: once stop() has resolved, no handler
// runs and no connection or timer is left.

import type pg from 'pg';
import type { RegistryStatus, RegistryWatcher } from '../store.js';
import { CHANNEL, loadDriver, reason } from './connection.js';

export const RECONNECT_FIRST_MS = 100;
export const RECONNECT_MAX_MS = 1_000;
const CONNECT_TIMEOUT_MS = 3_000;

export interface ListenHandlers {
  onChange(): void;
  onStatus(status: RegistryStatus): void;
}

export function listen(url: string, handlers: ListenHandlers): RegistryWatcher {
  let stopped = false;
  let reachable = true;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let delay = RECONNECT_FIRST_MS;
  let connecting: Promise<void> | undefined;

  const status = (up: boolean, e?: unknown) => {
    if (stopped || up === reachable) return;
    reachable = up;
    handlers.onStatus({ reachable: up, since: new Date().toISOString(), ...(up ? {} : { error: reason(url, e) }) });
  };

  const retry = () => {
    if (stopped || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      connecting = connect();
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  };

  const lost = (c: pg.Client, e: unknown) => {
    if (client !== c) return;
    client = undefined;
    c.end().catch(() => undefined);
    status(false, e);
    retry();
  };

  const connect = async (): Promise<void> => {
    if (stopped) return;
    const { Client } = await loadDriver();
    const c = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true, application_name: 'burrow listen' });
    c.on('error', (e) => lost(c, e));
    c.on('end', () => lost(c, new Error('the connection ended')));
    c.on('notification', (n) => {
      if (client === c && !stopped && n.channel === CHANNEL) handlers.onChange();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      c.end().catch(() => undefined);
      status(false, e);
      retry();
      return;
    }
    if (stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    delay = RECONNECT_FIRST_MS;
    status(true);
    handlers.onChange();
  };

  const first = setImmediate(() => {
    connecting = connect();
  });

  return {
    async stop() {
      stopped = true;
      clearImmediate(first);
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await connecting;
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
