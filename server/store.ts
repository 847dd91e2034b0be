// Where the registry is kept, behind one small interface: today the server's wg-quick
// file; a shared database (PostgreSQL, for several gateways) implements the same two
// calls later.
//
// The file store writes with writeFileAtomic (a temporary file beside it, fsync, rename,
// the directory fsync'd; 0600), so a kill at any instant leaves the old file or the new
// one. Writers (the CLI's commands, the daemon saving transfer totals and disabling
// expired peers) take turns through a lock file, PATH.lock, created with O_EXCL and
// holding the writer's pid; a lock whose pid is gone is stale and taken over.

import { closeSync, constants, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { writeFileAtomic } from '../src/runtime/journal.js';
import { appendPeerText, formatRegistry, parseRegistry, type PeerRecord, type RegistryData, RegistryError, type RegistryScan, scanRegistry } from './registry.js';

export interface PeerRegistry {
  /** Where it is, for messages. */
  readonly location: string;
  /** The registry as it is now; throws RegistryError (naming the place) when it is damaged. */
  read(): Promise<RegistryData>;
  /**
   * One change, made whole or not at all: `change` gets the current data and returns the
   * new data and a result. Nothing is stored when `change` throws or returns the data
   * unchanged.
   */
  update<T>(change: (data: RegistryData) => { data: RegistryData; result: T }): Promise<T>;
}

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
