// The daemon's usage tracker: every CHECK_MS it samples each peer's totals into the
// UsageBook (usage.ts), and enforces quotas:
//
//   - an enabled peer whose bytes this month reach its quota is disabled, marked
//     over-quota=MONTH in the registry (its sessions end at once, as `disable` does);
//   - a peer marked over-quota for an earlier month is enabled again when a new month
//     begins; raising (or removing) the quota enables it too (setQuota).
//
// The book is saved beside the registry every SAVE_MS and at stop, so the 24-hour
// history and the month's counts survive restarts (a crash loses at most SAVE_MS).

import type { Logger } from '../../src/runtime/log.js';
import { changePeer, type PeerStatus } from '../peers.js';
import { findPeer, RegistryError } from '../registry.js';
import { monthOf, nextMonth, UsageBook } from './usage.js';
import type { ServerView } from './view.js';

export const CHECK_MS = 2_000;
export const SAVE_MS = 60_000;

export interface TrackerOptions {
  readonly view: ServerView;
  /** The book's file (`wg0.usage.json`). */
  readonly path: string;
  readonly log: Logger;
  readonly now?: () => number;
}

export class UsageTracker {
  readonly book: UsageBook;
  private readonly now: () => number;
  private timers: NodeJS.Timeout[] = [];
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly o: TrackerOptions) {
    this.now = o.now ?? Date.now;
    this.book = UsageBook.load(o.path, this.now());
  }

  start(): void {
    this.timers = [
      setInterval(() => this.queue(() => this.check()), CHECK_MS),
      setInterval(() => this.queue(async () => this.book.save(this.o.path)), SAVE_MS),
    ];
    this.queue(() => this.check());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.busy;
    this.sample();
    this.book.save(this.o.path);
  }

  /** Why a peer is disabled, for the page: its quota, its expiry, or an admin. */
  reason(p: PeerStatus, now = this.now()): string | null {
    if (p.enabled) return null;
    if (p.overQuota !== null) return `over its quota for ${p.overQuota}: disabled until ${nextMonth(p.overQuota).slice(0, 10)} or a higher quota`;
    if (p.expires !== null && Date.parse(p.expires) <= now) return `expired on ${p.expires}`;
    return 'disabled by an admin';
  }

  /** Sets (or with null, removes) a peer's monthly quota; a peer cut off by its quota and now under it is enabled again. */
  async setQuota(name: string, quota: number | null): Promise<string> {
    const { view } = this.o;
    await view.registry.update((data) => {
      const record = findPeer(data, name);
      const { quota: _old, ...rest } = record;
      const next = quota === null ? rest : { ...rest, quota };
      return { data: { ...data, peers: data.peers.map((p) => (p === record ? next : p)) }, result: undefined };
    });
    const { list } = view.status();
    this.observe(list);
    const p = list.find((s) => s.name === name)!;
    const what = quota === null ? `removed the quota of '${name}'` : `set the quota of '${name}' to ${quota} bytes a month`;
    if (p.overQuota !== null && (quota === null || this.book.usedThisMonth(p.publicKey, p.rxBytes + p.txBytes) < quota)) {
      await changePeer(view.registry, view.ifname, name, 'enable');
      return `${what}: enabled it again`;
    }
    return what;
  }

  /** Whether enabling `p` would only see it cut off again: it is over its quota this month. */
  overQuotaNow(p: PeerStatus): boolean {
    return p.quota !== null && this.book.usedThisMonth(p.publicKey, p.rxBytes + p.txBytes) >= p.quota;
  }

  private queue(task: () => Promise<void>): void {
    this.busy = this.busy.then(task).catch((e: unknown) => this.o.log.error(`usage: ${(e as Error).message}`));
  }

  /** Samples `list` into the book (the API does, so the page is never older than the tracker). */
  observe(list: readonly PeerStatus[]): void {
    this.book.sample(
      list.map((p) => ({ publicKey: p.publicKey, total: p.rxBytes + p.txBytes, created: p.created })),
      this.now(),
    );
  }

  private sample(): { list: PeerStatus[] } {
    const { list } = this.o.view.status();
    this.observe(list);
    return { list };
  }

  private async check(): Promise<void> {
    const { view, log } = this.o;
    const { list } = this.sample();
    const month = monthOf(this.now());
    for (const p of list) {
      try {
        if (!p.enabled && p.overQuota !== null && p.overQuota !== month && (p.expires === null || Date.parse(p.expires) > this.now())) {
          await changePeer(view.registry, view.ifname, p.name, 'enable');
          log.info(`peer '${p.name}': a new month (${month}): enabled again after its quota cut-off in ${p.overQuota}`);
        } else if (p.enabled && this.overQuotaNow(p)) {
          await changePeer(view.registry, view.ifname, p.name, 'disable', { overQuota: month });
          log.info(`peer '${p.name}' reached its quota of ${p.quota} bytes for ${month}: disabled until next month`);
        }
      } catch (e) {
        // One peer's trouble (removed meanwhile, the registry busy) never stops the others' checks.
        if (!(e instanceof RegistryError && e.code === 'ERR_REGISTRY_NO_PEER')) log.error(`usage: peer '${p.name}': ${(e as Error).message}`);
      }
    }
  }
}
