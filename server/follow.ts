// The server daemon's view of its registry (a file, or PostgreSQL shared by several
// gateways), kept current by the store's watch:
//
//   - data() is the registry as last read: the admin page and the usage tracker read it
//     without a round trip; it stays what it was while the store is unreachable, so the
//     gateway goes on serving the peers it knows;
//   - after every change (the watch's onChange, and this process's own update()) the
//     registry is read again and every subscriber (the reconciler) gets the new data.
//     Reads are coalesced: a change during a read schedules exactly one more;
//   - status() is the store's reachability, written to /run/burrow/IFACE.registry for
//     `burrow show` (registry-status.ts).
//
// It is itself a PeerRegistry, so the commands of the admin API go through it and see
// their own change at once.

import type { Logger } from '../src/runtime/log.js';
import type { RegistryData } from './registry.js';
import { removeRegistryStatus, writeRegistryStatus } from './registry-status.js';
import type { PeerRegistry, RegistryStatus, RegistryWatcher } from './store.js';

export class RegistryFollower implements PeerRegistry {
  private current: RegistryData;
  private state: RegistryStatus;
  private readonly subscribers = new Set<(data: RegistryData) => void>();
  private reading: Promise<void> = Promise.resolve();
  /** A read scheduled and not started yet: later calls share it. */
  private queued: Promise<void> | undefined;
  private watcher: RegistryWatcher | undefined;
  private lastError: string | undefined;
  private stopped = false;
  /** addTransfer calls that succeeded: a read that started before one is not taken. */
  private saves = 0;

  constructor(
    private readonly store: PeerRegistry,
    initial: RegistryData,
    private readonly o: { ifname: string; log: Logger },
  ) {
    this.current = initial;
    this.state = { reachable: true, since: new Date().toISOString() };
  }

  get location(): string {
    return this.store.location;
  }

  /** The registry as last read. */
  data(): RegistryData {
    return this.current;
  }

  status(): RegistryStatus {
    return this.state;
  }

  /** `f` is called with the data after every read; returns how to stop. */
  subscribe(f: (data: RegistryData) => void): () => void {
    this.subscribers.add(f);
    return () => this.subscribers.delete(f);
  }

  /** Starts following the store's changes and reachability. */
  start(): void {
    this.publish();
    this.watcher = this.store.watch({
      onChange: () => void this.refresh(),
      onStatus: (s) => {
        this.state = s;
        this.publish();
        if (s.reachable) this.o.log.info(`registry ${this.location} is reachable again`);
        else this.o.log.error(`registry ${this.location} is unreachable${s.error === undefined ? '' : ` (${s.error})`}: serving the peers known at ${s.since}`);
      },
    });
  }

  /** Reads the registry again and tells the subscribers; resolves once that read is done. */
  refresh(): Promise<void> {
    if (this.queued !== undefined) return this.queued;
    const next = this.reading.then(async () => {
      this.queued = undefined;
      if (this.stopped) return;
      const saves = this.saves;
      try {
        const data = await this.store.read();
        // A save landed during the read, which may not hold it: the read that save
        // queued comes next (data() keeps the save's totals till then).
        if (saves !== this.saves) return;
        this.current = data;
        this.lastError = undefined;
      } catch (e) {
        // Said once per distinct error: the store retries, and says when it is back.
        const message = (e as Error).message;
        if (message !== this.lastError) this.o.log.error(`registry ${this.location} not read, the device keeps its peers: ${message}`);
        this.lastError = message;
        return;
      }
      for (const f of this.subscribers) {
        try {
          f(this.current);
        } catch (e) {
          this.o.log.error(`following ${this.location}: ${(e as Error).stack ?? String(e)}`);
        }
      }
    });
    this.queued = next;
    this.reading = next;
    return next;
  }

  read(): Promise<RegistryData> {
    return this.store.read();
  }

  async update<T>(change: (data: RegistryData) => { data: RegistryData; result: T }): Promise<T> {
    const result = await this.store.update(change);
    await this.refresh();
    // A read set aside for a save that landed meanwhile is followed by another one.
    await this.reading;
    return result;
  }

  /**
   * The store announces no transfer (every gateway saves every 30 s): what this gateway
   * saved is added to data() at once, and the registry is read again for the other
   * gateways' shares.
   */
  async addTransfer(deltas: ReadonlyMap<string, { rx: number; tx: number }>): Promise<void> {
    await this.store.addTransfer(deltas);
    this.saves++;
    this.current = {
      ...this.current,
      peers: this.current.peers.map((r) => {
        const d = deltas.get(r.name);
        return d === undefined ? r : { ...r, rx: r.rx + d.rx, tx: r.tx + d.tx };
      }),
    };
    void this.refresh();
  }

  watch(handlers: { onChange(): void; onStatus(status: RegistryStatus): void }): RegistryWatcher {
    return this.store.watch(handlers);
  }

  /** Stops following (the store itself is closed by its owner). */
  async close(): Promise<void> {
    this.stopped = true;
    await this.watcher?.stop();
    await this.reading;
    removeRegistryStatus(this.o.ifname);
  }

  private publish(): void {
    try {
      writeRegistryStatus(this.o.ifname, { location: this.location, ...this.state });
    } catch (e) {
      this.o.log.error(`cannot write the registry's status for burrow show: ${(e as Error).message}`);
    }
  }
}
