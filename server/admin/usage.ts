// Usage per peer: a 24-hour history for the admin page's graphs and the month's bytes
// for quotas, kept across restarts in a file beside the registry (`wg0.usage.json`,
// 0600, written atomically).
//
//   history  HISTORY_BUCKETS buckets of BUCKET_MS each (96 x 15 min = 24 h) per peer:
//            the bytes (received + sent) that peer moved in each. Fed by samples of the
//            peers' totals (registry totals + what the device counted since the last
//            save): each sample adds the difference from the one before to the bucket
//            of its time; buckets older than 24 h fall off.
//   month    the month (UTC, YYYY-MM) and each peer's total when it began (or when the
//            peer was first seen that month), so the month's usage is total - base.
//
// UsageBook is pure (data in, data out; the clock passed in); the daemon's part is in
// usage-companion.ts.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../src/runtime/journal.js';

export const BUCKET_MS = 15 * 60_000;
export const HISTORY_BUCKETS = 96;

export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** The first instant of the month after `month` (YYYY-MM), ISO 8601. */
export function nextMonth(month: string): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return new Date(Date.UTC(y, m, 1)).toISOString();
}

export interface UsageState {
  readonly version: 1;
  /** YYYY-MM (UTC) that `base` counts from. */
  month: string;
  /** Per public key: the total when the month (or the peer's tracking) began. */
  base: Record<string, number>;
  /** Per public key: the total at the last sample. */
  last: Record<string, number>;
  /** Index (time / BUCKET_MS) of the newest bucket. */
  bucket: number;
  /**
   * Per public key: HISTORY_BUCKETS byte counts, oldest first, the newest at the end. A
   * peer that moved nothing in the last 24 h has none (all zeros): 10,000 idle peers
   * would otherwise hold 96 numbers each.
   */
  history: Record<string, number[]>;
}

export interface PeerTotal {
  readonly publicKey: string;
  /** Received + sent over the registry's life. */
  readonly total: number;
  /** ISO 8601: a peer created this month counts the month from zero. */
  readonly created: string;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export class UsageBook {
  private constructor(private state: UsageState) {}

  static empty(now: number): UsageBook {
    return new UsageBook({ version: 1, month: monthOf(now), base: {}, last: {}, bucket: Math.floor(now / BUCKET_MS), history: {} });
  }

  /** The file's book; an absent file is an empty book. A damaged one throws, naming the file. */
  static load(path: string, now: number): UsageBook {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return UsageBook.empty(now);
      throw e;
    }
    const bad = (what: string) => new Error(`${path}: ${what} (delete the file to start the usage history afresh)`);
    let v: UsageState;
    try {
      v = JSON.parse(text) as UsageState;
    } catch {
      throw bad('not JSON');
    }
    if (v?.version !== 1 || !/^\d{4}-\d{2}$/.test(v.month) || !Number.isSafeInteger(v.bucket)) throw bad('expected version 1 with month and bucket');
    for (const field of ['base', 'last'] as const) {
      if (typeof v[field] !== 'object' || v[field] === null || !Object.values(v[field]).every(isCount)) throw bad(`${field}: expected byte counts by public key`);
    }
    if (typeof v.history !== 'object' || v.history === null || !Object.values(v.history).every((h) => Array.isArray(h) && h.length === HISTORY_BUCKETS && h.every(isCount))) {
      throw bad(`history: expected ${HISTORY_BUCKETS} byte counts per public key`);
    }
    return new UsageBook(v);
  }

  save(path: string): void {
    writeFileAtomic(path, `${JSON.stringify(this.state)}\n`, 0o600);
  }

  get month(): string {
    return this.state.month;
  }

  /**
   * Takes a sample of every peer's total at `now`. Returns true when a new month began
   * with it (quota cut-offs of the month before end). Peers not in `peers` are forgotten.
   */
  sample(peers: readonly PeerTotal[], now: number): boolean {
    const s = this.state;
    const month = monthOf(now);
    const newMonth = month !== s.month;
    if (newMonth) {
      s.month = month;
      s.base = {};
    }
    const bucket = Math.floor(now / BUCKET_MS);
    const shift = Math.min(HISTORY_BUCKETS, Math.max(0, bucket - s.bucket));
    if (bucket > s.bucket) s.bucket = bucket;
    const keys = new Set<string>();
    for (const p of peers) {
      keys.add(p.publicKey);
      const before = s.last[p.publicKey];
      // A peer removed and added again with the same key starts from zero.
      const delta = before === undefined ? 0 : p.total >= before ? p.total - before : p.total;
      let h = s.history[p.publicKey];
      if (h !== undefined && shift > 0) h = [...h.slice(shift), ...new Array<number>(shift).fill(0)];
      if (h === undefined && delta !== 0) h = new Array<number>(HISTORY_BUCKETS).fill(0);
      if (h !== undefined) h[HISTORY_BUCKETS - 1] = h[HISTORY_BUCKETS - 1]! + delta;
      // A day without traffic is no history: an idle peer holds no buckets (see history()).
      if (h === undefined || h.every((v) => v === 0)) delete s.history[p.publicKey];
      else s.history[p.publicKey] = h;
      s.last[p.publicKey] = p.total;
      const base = s.base[p.publicKey];
      if (base === undefined) {
        // At a month's first sample the month counts from the last sample before it; a
        // peer first seen counts from now, or from zero when it was created this month.
        s.base[p.publicKey] = newMonth && before !== undefined ? before : monthOf(Date.parse(p.created)) === month ? 0 : p.total;
      } else if (p.total < base) {
        s.base[p.publicKey] = 0;
      }
    }
    for (const table of [s.base, s.last, s.history]) for (const k of Object.keys(table)) if (!keys.has(k)) delete table[k];
    return newMonth;
  }

  /** Bytes moved this month by the peer whose total is `total`. */
  usedThisMonth(publicKey: string, total: number): number {
    return Math.max(0, total - (this.state.base[publicKey] ?? total));
  }

  /** The peer's last 24 h, oldest bucket first, and when the newest bucket began (ms). */
  history(publicKey: string): { buckets: number[]; newest: number } {
    return { buckets: [...(this.state.history[publicKey] ?? new Array<number>(HISTORY_BUCKETS).fill(0))], newest: this.state.bucket * BUCKET_MS };
  }
}
