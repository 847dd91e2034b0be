// Where the registry is kept, behind one small interface: the server's wg-quick file for
// one server (FileRegistry, here), or PostgreSQL shared by several gateways (server/pg/).
// `openRegistry` picks one from a path or a postgres:// URL.
//
// The file store writes with writeFileAtomic (a temporary file beside it, fsync, rename,
// the directory fsync'd; 0600), so a kill at any instant leaves the old file or the new
// one. Writers (the CLI's commands, the daemon saving transfer totals and disabling
// expired peers) take turns through a lock file, PATH.lock, created with O_EXCL and
// holding the writer's pid; a lock whose pid is gone is stale and taken over.

import { closeSync, constants, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { writeFileAtomic } from '../src/runtime/journal.js';
import { PgRegistry } from './pg/registry.js';
import { appendPeerText, formatRegistry, parseRegistry, type PeerRecord, type RegistryData, RegistryError, type RegistryScan, scanRegistry } from './registry.js';

export interface RegistryStatus {
  /** false while the store cannot be reached (the gateway serves the peers it knows). */
  readonly reachable: boolean;
  /** ISO 8601: when `reachable` last changed. */
  readonly since: string;
  /** Why it is unreachable, without credentials. */
  readonly error?: string;
}

export interface RegistryWatcher {
  /** Ends the watch: no handler is called once this has resolved. */
  stop(): Promise<void>;
}

export interface PeerRegistry {
  /** Where it is, for messages: a path, or a postgres URL with any password removed. */
  readonly location: string;
  /**
   * The registry as it is now; the rx/tx of each PeerRecord are the sums over all
   * gateways. Throws RegistryError naming the place when it is damaged or unreachable.
   */
  read(): Promise<RegistryData>;
  /**
   * One change, made whole or not at all: `change` gets the current data and returns the
   * new data and a result. Nothing is stored when `change` throws or returns the data
   * unchanged. `change` may run more than once (a store may retry a conflicting
   * transaction), so it must not have effects outside the data it returns.
   */
  update<T>(change: (data: RegistryData) => { data: RegistryData; result: T }): Promise<T>;
  /** Adds what THIS gateway counted since its last save (by peer name) to its share of the totals. */
  addTransfer(deltas: ReadonlyMap<string, { rx: number; tx: number }>): Promise<void>;
  /**
   * onChange: after every committed change made by anyone (any process, any gateway) and
   * once after every (re)connect, the first included, since notifications can be missed;
   * the listener then re-reads and reconciles. onStatus: whenever reachability changes
   * (the store is taken as reachable when the watch starts). No handler is called from
   * within watch() itself. FileRegistry implements it by polling its version() (stat)
   * every 250 ms.
   */
  watch(handlers: { onChange(): void; onStatus(status: RegistryStatus): void }): RegistryWatcher;
  /** Ends every connection and timer: nothing of it keeps the process alive. */
  close(): Promise<void>;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** True for a postgres:// or postgresql:// URL (else the spec is a file's path). */
export const isPostgresSpec = (spec: string): boolean => POSTGRES_URL.test(spec);

/**
 * A path (the wg-quick file registry) or a postgres:// / postgresql:// URL. `gateway`
 * names this gateway's share of the transfer totals in PostgreSQL (default: the host
 * name); the file registry has one gateway and ignores it.
 */
export function openRegistry(spec: string, o: { gateway?: string } = {}): PeerRegistry {
  if (isPostgresSpec(spec)) return new PgRegistry(spec, { gateway: o.gateway ?? hostname() });
  return new FileRegistry(spec);
}

/** How often FileRegistry.watch looks at the file. */
export const FILE_WATCH_MS = 250;
const LOCK_WAIT_MS = 10_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FileRegistry implements PeerRegistry {
  constructor(readonly location: string) {}

  async read(): Promise<RegistryData> {
    return parseRegistry(this.readText(), this.location);
  }

  /** The file as it is (for a scan that needs no full parse). */
  text(): string {
    return this.readText();
  }

  /** Identifies the file's current version cheaply (for the daemon's re-reads). */
  version(): string {
    const st = statSync(this.location);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  }

  async update<T>(change: (data: RegistryData) => { data: RegistryData; result: T }): Promise<T> {
    await this.lock();
    try {
      const text = this.readText();
      const read = parseRegistry(text, this.location);
      const { data, result } = change(read);
      // Parsed once: what the change kept from `read` is not read back again.
      const next = formatRegistry(data, this.location, read);
      if (next !== text) writeFileAtomic(this.location, next, 0o600);
      return result;
    } finally {
      rmSync(`${this.location}.lock`, { force: true });
    }
  }

  async addTransfer(deltas: ReadonlyMap<string, { rx: number; tx: number }>): Promise<void> {
    if (![...deltas.values()].some((d) => d.rx !== 0 || d.tx !== 0)) return;
    await this.update((data) => {
      const peers = data.peers.map((r) => {
        const d = deltas.get(r.name);
        return d === undefined || (d.rx === 0 && d.tx === 0) ? r : { ...r, rx: r.rx + d.rx, tx: r.tx + d.tx };
      });
      return { data: { ...data, peers }, result: undefined };
    });
  }

  watch(handlers: { onChange(): void; onStatus(status: RegistryStatus): void }): RegistryWatcher {
    // A file on the local disk: reachable while it can be stat'ed.
    let last: string | undefined;
    let reachable = true;
    const look = () => {
      let version: string;
      try {
        version = this.version();
      } catch (e) {
        if (reachable) {
          reachable = false;
          handlers.onStatus({ reachable, since: new Date().toISOString(), error: `cannot read ${this.location}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
        }
        return;
      }
      const back = !reachable;
      if (back) {
        reachable = true;
        handlers.onStatus({ reachable, since: new Date().toISOString() });
      }
      if (back || version !== last) handlers.onChange();
      last = version;
    };
    const first = setImmediate(look);
    const timer = setInterval(look, FILE_WATCH_MS);
    timer.unref();
    return {
      async stop() {
        clearImmediate(first);
        clearInterval(timer);
      },
    };
  }

  async close(): Promise<void> {}

  /**
   * add-peer's write, without a read of the whole file: under the lock, the file is
   * scanned (registry.ts's scanRegistry), `make` returns the new peer from the scan, and
   * its section is appended (atomically, as every write). Resolves undefined, with
   * nothing written, when the file is not one the scan reads: then use update().
   */
  async appendPeer<T>(make: (scan: RegistryScan) => { record: PeerRecord; result: T }): Promise<T | undefined> {
    await this.lock();
    try {
      const text = this.readText();
      const scan = scanRegistry(text, this.location);
      if (scan === undefined) return undefined;
      const { record, result } = make(scan);
      writeFileAtomic(this.location, appendPeerText(text, scan, record, this.location), 0o600);
      return result;
    } finally {
      rmSync(`${this.location}.lock`, { force: true });
    }
  }

  private readText(): string {
    try {
      return readFileSync(this.location, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new RegistryError('ERR_REGISTRY_INPUT', `cannot read ${this.location}: ${code === 'ENOENT' ? 'no such file (make one with burrow server init)' : (e as Error).message}`);
    }
  }

  private async lock(): Promise<void> {
    const path = `${this.location}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder: number;
      let age: number;
      try {
        holder = Number(readFileSync(path, 'utf8').trim() || 'NaN');
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue; // released between the two calls
      }
      // A lock whose writer died is stale; so is one left empty (its writer died between
      // create and write) for longer than a writer takes to fill it.
      if ((Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) || (Number.isNaN(holder) && age > 2_000)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new RegistryError('ERR_REGISTRY_BUSY', `${this.location} is locked by pid ${holder} (${path}) for more than ${LOCK_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
