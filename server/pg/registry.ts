// The peer registry in PostgreSQL, shared by several gateways (PeerRegistry, store.ts).
//
//   open      lazily, at the first call: a pool of at most POOL_SIZE connections, and the
//             schema's migrations (schema.ts) under their advisory lock.
//   read      one REPEATABLE READ transaction, one query per table (server, peers,
//             addresses, transfer sums): a consistent picture, whatever its size.
//   update    one transaction: the server row locked FOR UPDATE (the registry's lock:
//             every writer on every gateway takes it), the registry read, `change`
//             applied, and only the difference written (a new peer is one INSERT into
//             burrow_peer and one into burrow_address), then NOTIFY burrow_registry with
//             the new generation, COMMIT. Address allocation runs inside it; the UNIQUE
//             address is the last guard: a unique violation or serialization failure
//             retries the whole transaction once.
//   addTransfer  an UPSERT of (peer, this gateway) += delta per peer, without the lock.
//             It is not a change of the registry: it NOTIFYs nobody.
//   watch     listen.ts.
//
// A peer's rx/tx in RegistryData are the sums over every gateway. When `change` alters a
// peer's rx/tx (a disable folding in the last counts), the difference goes to THIS
// gateway's share.

import type pg from 'pg';
import type { PeerConfig } from '../../src/config/index.js';
import { formatRegistry, type PeerRecord, PEER_NAME, type RegistryData, RegistryError } from '../registry.js';
import type { PeerRegistry, RegistryStatus, RegistryWatcher } from '../store.js';
import { CHANNEL, isConnectionError, loadDriver, redactUrl, scrub, unreachable } from './connection.js';
import { listen } from './listen.js';
import { addressTexts, PEER_COLUMNS, PEER_SELECT, PEER_TYPES, peerConfigFromRow, peerConfigSource, peerFromRow, peerRow, type PeerRow, samePeerRow, SERVER_COLUMNS, serverFromRow, serverRow, type ServerRow } from './rows.js';
import { migrate } from './schema.js';

export const POOL_SIZE = 4;
const CONNECT_TIMEOUT_MS = 5_000;
const IDLE_MS = 10_000;

interface Loaded {
  readonly data: RegistryData;
  readonly server: ServerRow;
  /** By name: the peer's id, record and row as read. */
  readonly peers: Map<string, { id: string; record: PeerRecord; row: PeerRow; addresses: string[] }>;
}

export class PgRegistry implements PeerRegistry {
  readonly location: string;
  readonly gateway: string;
  private pool: Promise<pg.Pool> | undefined;
  private readonly watchers = new Set<RegistryWatcher>();
  /** By peer id: the PeerConfig made at the last load, and the text it was made from. */
  private configs = new Map<string, { source: string; config: PeerConfig }>();
  private closed = false;

  constructor(
    private readonly url: string,
    o: { gateway: string; poolSize?: number },
  ) {
    this.location = redactUrl(url);
    if (!PEER_NAME.test(o.gateway)) throw new RegistryError('ERR_REGISTRY_INPUT', `--gateway ${JSON.stringify(o.gateway.slice(0, 70))}: a gateway name is 1 to 63 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit`);
    this.gateway = o.gateway;
    this.poolSize = o.poolSize ?? POOL_SIZE;
  }

  private readonly poolSize: number;

  /** The pool, made and the schema migrated at the first call; again after a failure. */
  private open(): Promise<pg.Pool> {
    if (this.closed) return Promise.reject(new RegistryError('ERR_REGISTRY_INPUT', `the registry ${this.location} is closed`));
    this.pool ??= (async () => {
      const { Pool } = await loadDriver();
      const pool = new Pool({ connectionString: this.url, max: this.poolSize, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, idleTimeoutMillis: IDLE_MS, allowExitOnIdle: true, application_name: `burrow ${this.gateway}` });
      // An idle connection the server drops is an 'error' of the pool: it is replaced at the next use.
      pool.on('error', () => undefined);
      try {
        const client = await pool.connect();
        try {
          await migrate(client, this.location);
        } finally {
          client.release();
        }
      } catch (e) {
        await pool.end().catch(() => undefined);
        throw e;
      }
      return pool;
    })();
    const pending = this.pool;
    pending.catch(() => {
      if (this.pool === pending) this.pool = undefined;
    });
    return pending;
  }

  /**
   * Runs `f` on a pooled connection; connection failures become ERR_REGISTRY_UNREACHABLE.
   * Callers queue here for a turn, not in the pool: the pool's connect timeout then
   * measures reaching the server only, never the wait behind other writers.
   */
  private async session<T>(f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.turn();
    try {
      let client: pg.PoolClient;
      try {
        client = await (await this.open()).connect();
      } catch (e) {
        throw this.translate(e);
      }
      try {
        const out = await f(client);
        client.release();
        return out;
      } catch (e) {
        // A connection that failed is destroyed, not given back.
        client.release(isConnectionError(e) ? (e as Error) : undefined);
        throw this.translate(e);
      }
    } finally {
      this.endTurn();
    }
  }

  private active = 0;
  private readonly waiting: (() => void)[] = [];

  private turn(): Promise<void> {
    if (this.active < this.poolSize) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the turn to the next caller waiting, else frees it. */
  private endTurn(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.active--;
  }

  private translate(e: unknown): unknown {
    if (e instanceof RegistryError) return e;
    if (isConnectionError(e)) return unreachable(this.url, this.location, e);
    if (e instanceof Error) e.message = scrub(this.url, e.message);
    return e;
  }

  async read(): Promise<RegistryData> {
    return this.session(async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const loaded = await this.load(c, false);
        await c.query('COMMIT');
        return loaded.data;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    });
  }

  /** True when the database holds a server (init has run, or an import). */
  async exists(): Promise<boolean> {
    return this.session(async (c) => (await c.query('SELECT 1 FROM burrow_server')).rowCount !== 0);
  }

  private async load(c: pg.ClientBase, lock: boolean): Promise<Loaded> {
    const server = await c.query<ServerRow>(`SELECT ${SERVER_COLUMNS.join(', ')} FROM burrow_server${lock ? ' FOR UPDATE' : ''}`);
    const row = server.rows[0];
    if (row === undefined) throw new RegistryError('ERR_REGISTRY_INPUT', `${this.location} holds no server yet (make one with: burrow server init --registry URL, or burrow server registry import)`);
    const head = serverFromRow(row, this.location);
    const peerRows = await c.query<PeerRow & { id: string }>(`SELECT id, ${PEER_SELECT} FROM burrow_peer ORDER BY id`);
    const addressRows = await c.query<{ peer_id: string; address: string }>('SELECT peer_id, address FROM burrow_address ORDER BY peer_id, position');
    const transferRows = await c.query<{ peer_id: string; rx: string; tx: string }>('SELECT peer_id, sum(rx)::text AS rx, sum(tx)::text AS tx FROM burrow_transfer GROUP BY peer_id');
    const addresses = new Map<string, string[]>();
    for (const a of addressRows.rows) {
      const list = addresses.get(a.peer_id);
      if (list === undefined) addresses.set(a.peer_id, [a.address]);
      else list.push(a.address);
    }
    const transfer = new Map(transferRows.rows.map((t) => [t.peer_id, t]));
    const peers: Loaded['peers'] = new Map();
    // A peer's keys and addresses are parsed again only when their text changed since the
    // last load (every gateway re-reads the whole registry at each change).
    const configs: PgRegistry['configs'] = new Map();
    const records = peerRows.rows.map((p) => {
      const t = transfer.get(p.id);
      const list = addresses.get(p.id) ?? [];
      const source = peerConfigSource(p, list);
      const cached = this.configs.get(p.id);
      const parsed = cached?.source === source ? cached.config : peerConfigFromRow(p, list, this.location);
      configs.set(p.id, { source, config: parsed });
      // Each read hands out its own preshared key: a caller may wipe it.
      const config = parsed.presharedKey === undefined ? parsed : { ...parsed, presharedKey: parsed.presharedKey.slice() };
      const record = peerFromRow(p, config, t === undefined ? 0 : Number(t.rx), t === undefined ? 0 : Number(t.tx), this.location);
      peers.set(p.name, { id: p.id, record, row: p, addresses: list });
      return record;
    });
    this.configs = configs;
    return { data: { config: head.config, settings: head.settings, peers: records }, server: row, peers };
  }

  async update<T>(change: (data: RegistryData) => { data: RegistryData; result: T }): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.session(async (c) => {
          await c.query('BEGIN');
          try {
            const before = await this.load(c, true);
            const { data, result } = change(before.data);
            if (await this.write(c, before, data)) {
              const gen = await c.query<{ generation: string }>('UPDATE burrow_server SET generation = generation + 1 RETURNING generation::text');
              await c.query('SELECT pg_notify($1, $2)', [CHANNEL, gen.rows[0]!.generation]);
            }
            await c.query('COMMIT');
            return result;
          } catch (e) {
            await c.query('ROLLBACK').catch(() => undefined);
            throw e;
          }
        });
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        const conflict = code === '23505' || code === '40001' || code === '40P01';
        if (conflict && attempt < 2) continue;
        if (code === '23505') throw new RegistryError('ERR_REGISTRY_DUPLICATE', `${this.location}: ${(e as { detail?: string }).detail ?? (e as Error).message}`);
        throw e;
      }
    }
  }

  /**
   * Writes what differs between `before` and `next`; false when nothing does. `next` is
   * checked first as a file's write is (formatRegistry on the changed peers and the
   * [Interface]); names, keys and addresses are kept unique by the constraints.
   */
  private async write(c: pg.ClientBase, before: Loaded, next: RegistryData, checked = false): Promise<boolean> {
    const old = new Set(before.data.peers);
    const touched = next.peers.filter((r) => !old.has(r));
    const headChanged = next.config !== before.data.config || next.settings !== before.data.settings;
    if (!checked && (touched.length > 0 || headChanged)) formatRegistry({ config: next.config, settings: next.settings, peers: touched }, this.location);
    let wrote = false;

    if (headChanged) {
      const row = serverRow(next);
      if (SERVER_COLUMNS.some((k) => JSON.stringify(row[k]) !== JSON.stringify(before.server[k]))) {
        await c.query(`UPDATE burrow_server SET ${SERVER_COLUMNS.map((k, i) => `${k} = $${i + 1}`).join(', ')}`, SERVER_COLUMNS.map((k) => row[k]));
        wrote = true;
      }
    }

    const names = new Set(next.peers.map((r) => r.name));
    const removed = [...before.peers.values()].filter((p) => !names.has(p.record.name)).map((p) => p.id);
    if (removed.length > 0) {
      await c.query('DELETE FROM burrow_peer WHERE id = ANY($1::bigint[])', [removed]);
      wrote = true;
    }

    const updated: { id: string; row: PeerRow }[] = [];
    const readdressed: { id: string; addresses: string[] }[] = [];
    const deltas: { id: string; rx: number; tx: number }[] = [];
    const added: PeerRecord[] = [];
    for (const r of touched) {
      const was = before.peers.get(r.name);
      if (was === undefined) {
        added.push(r);
        continue;
      }
      const row = peerRow(r);
      if (!samePeerRow(row, was.row)) updated.push({ id: was.id, row });
      const addresses = addressTexts(r);
      if (addresses.join(',') !== was.addresses.join(',')) readdressed.push({ id: was.id, addresses });
      if (r.rx !== was.record.rx || r.tx !== was.record.tx) deltas.push({ id: was.id, rx: r.rx - was.record.rx, tx: r.tx - was.record.tx });
    }
    if (updated.length > 0) {
      const sets = PEER_COLUMNS.map((k) => `${k} = u.${k}`).join(', ');
      const cols = PEER_COLUMNS.map((k, i) => `$${i + 2}::${PEER_TYPES[k]}[]`).join(', ');
      await c.query(`UPDATE burrow_peer p SET ${sets} FROM unnest($1::bigint[], ${cols}) AS u(id, ${PEER_COLUMNS.join(', ')}) WHERE p.id = u.id`, [updated.map((u) => u.id), ...PEER_COLUMNS.map((k) => updated.map((u) => u.row[k]))]);
      wrote = true;
    }
    // Every changed peer's old addresses go before any new one is written: two peers may trade.
    if (readdressed.length > 0) {
      await c.query('DELETE FROM burrow_address WHERE peer_id = ANY($1::bigint[])', [readdressed.map((p) => p.id)]);
      wrote = true;
    }
    const ids = new Map<string, string>();
    if (added.length > 0) {
      const rows = added.map(peerRow);
      const inserted = await c.query<{ id: string; name: string }>(
        `INSERT INTO burrow_peer (${PEER_COLUMNS.join(', ')}) SELECT * FROM unnest(${PEER_COLUMNS.map((k, i) => `$${i + 1}::${PEER_TYPES[k]}[]`).join(', ')}) RETURNING id::text, name`,
        PEER_COLUMNS.map((k) => rows.map((r) => r[k])),
      );
      for (const r of inserted.rows) ids.set(r.name, r.id);
      wrote = true;
    }
    const addressRows = [...readdressed, ...added.map((r) => ({ id: ids.get(r.name)!, addresses: addressTexts(r) }))];
    await this.insertAddresses(c, addressRows);
    const shares = [...deltas, ...added.filter((r) => r.rx !== 0 || r.tx !== 0).map((r) => ({ id: ids.get(r.name)!, rx: r.rx, tx: r.tx }))];
    if (shares.length > 0) {
      await this.addShares(c, shares);
      wrote = true;
    }
    return wrote;
  }

  private async insertAddresses(c: pg.ClientBase, peers: readonly { id: string; addresses: readonly string[] }[]): Promise<void> {
    const id: string[] = [];
    const position: number[] = [];
    const address: string[] = [];
    for (const p of peers) {
      p.addresses.forEach((a, i) => {
        id.push(p.id);
        position.push(i);
        address.push(a);
      });
    }
    if (id.length === 0) return;
    await c.query('INSERT INTO burrow_address (peer_id, position, address) SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[])', [id, position, address]);
  }

  /** Adds to THIS gateway's share of each peer's totals (peer ids). */
  private async addShares(c: pg.ClientBase, shares: readonly { id: string; rx: number; tx: number }[]): Promise<void> {
    await c.query(
      `INSERT INTO burrow_transfer (peer_id, gateway, rx, tx) SELECT d.id, $1, d.rx, d.tx FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS d(id, rx, tx)
       ON CONFLICT (peer_id, gateway) DO UPDATE SET rx = burrow_transfer.rx + EXCLUDED.rx, tx = burrow_transfer.tx + EXCLUDED.tx`,
      [this.gateway, shares.map((s) => s.id), shares.map((s) => s.rx), shares.map((s) => s.tx)],
    );
  }

  async addTransfer(deltas: ReadonlyMap<string, { rx: number; tx: number }>): Promise<void> {
    const moved = [...deltas].filter(([, d]) => d.rx !== 0 || d.tx !== 0);
    if (moved.length === 0) return;
    await this.session(async (c) => {
      // A peer removed meanwhile is simply not found: its counts go with it.
      await c.query(
        `INSERT INTO burrow_transfer (peer_id, gateway, rx, tx)
         SELECT p.id, $1, d.rx, d.tx FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS d(name, rx, tx) JOIN burrow_peer p ON p.name = d.name
         ON CONFLICT (peer_id, gateway) DO UPDATE SET rx = burrow_transfer.rx + EXCLUDED.rx, tx = burrow_transfer.tx + EXCLUDED.tx`,
        [this.gateway, moved.map(([n]) => n), moved.map(([, d]) => d.rx), moved.map(([, d]) => d.tx)],
      );
    });
  }

  /**
   * Writes a whole registry into the database (server init, import). Refuses when it
   * holds a server already, unless `replace`: then everything in it goes first. The
   * records' rx/tx become this gateway's share. One transaction.
   */
  async create(data: RegistryData, o: { replace?: boolean; hint?: string } = {}): Promise<void> {
    formatRegistry(data, this.location);
    await this.session(async (c) => {
      await c.query('BEGIN');
      try {
        // Blocks every writer (they lock the server row) until this commits.
        await c.query('LOCK TABLE burrow_server IN EXCLUSIVE MODE');
        const had = await c.query<{ generation: string; peers: string }>('SELECT generation::text, (SELECT count(*) FROM burrow_peer)::text AS peers FROM burrow_server');
        const existing = had.rows[0];
        if (existing !== undefined && o.replace !== true) {
          throw new RegistryError('ERR_REGISTRY_INPUT', `${this.location} holds a server already (with ${existing.peers} peer(s)): nothing was changed${o.hint === undefined ? '' : `; ${o.hint}`}`);
        }
        await c.query('DELETE FROM burrow_peer');
        await c.query('DELETE FROM burrow_server');
        const row = serverRow(data);
        await c.query(`INSERT INTO burrow_server (${SERVER_COLUMNS.join(', ')}, generation) VALUES (${SERVER_COLUMNS.map((_k, i) => `$${i + 1}`).join(', ')}, $${SERVER_COLUMNS.length + 1})`, [
          ...SERVER_COLUMNS.map((k) => row[k]),
          existing === undefined ? 1 : Number(existing.generation) + 1,
        ]);
        const empty: Loaded = { data: { ...data, peers: [] }, server: row, peers: new Map() };
        await this.write(c, empty, data, true);
        await c.query('SELECT pg_notify($1, $2)', [CHANNEL, 'created']);
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    });
  }

  watch(handlers: { onChange(): void; onStatus(status: RegistryStatus): void }): RegistryWatcher {
    const inner = listen(this.url, handlers);
    const watcher: RegistryWatcher = {
      stop: async () => {
        this.watchers.delete(watcher);
        await inner.stop();
      },
    };
    this.watchers.add(watcher);
    return watcher;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watchers].map((w) => w.stop()));
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await (await pool.catch(() => undefined))?.end();
  }
}
