// One-time links: a peer's configuration for one download, without a session, so an
// admin can send it to the person who will use it.
//
// The token is 128 random bits (base64url, 22 characters): guessing one of the at most
// MAX_LINKS live ones takes about 2^120 tries. The table keeps only the token's SHA-256,
// so the table itself holds nothing a reader could use. A link lasts LINK_MS and works
// once: the first request takes it out of the table, every later one is a 404.

import { createHash, randomBytes } from 'node:crypto';

export const LINK_MS = 15 * 60_000;
export const MAX_LINKS = 256;

const digest = (token: string): string => createHash('sha256').update(token).digest('hex');

export class OneTimeLinks {
  private readonly byDigest = new Map<string, { peer: string; expires: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  create(peer: string): { token: string; expires: number } {
    const token = randomBytes(16).toString('base64url');
    const expires = this.now() + LINK_MS;
    this.prune();
    this.byDigest.set(digest(token), { peer, expires });
    while (this.byDigest.size > MAX_LINKS) this.byDigest.delete(this.byDigest.keys().next().value!);
    return { token, expires };
  }

  /** The peer a live token is for, taking the link out; undefined when unknown, used or expired. */
  take(token: string): string | undefined {
    if (!/^[A-Za-z0-9_-]{22}$/.test(token)) return undefined;
    const key = digest(token);
    const link = this.byDigest.get(key);
    this.byDigest.delete(key);
    return link !== undefined && link.expires > this.now() ? link.peer : undefined;
  }

  /** Links of a peer that is removed go with it. */
  forget(peer: string): void {
    for (const [k, v] of this.byDigest) if (v.peer === peer) this.byDigest.delete(k);
  }

  private prune(): void {
    const now = this.now();
    for (const [k, v] of this.byDigest) if (v.expires <= now) this.byDigest.delete(k);
  }
}
