// Who is logged in to the admin page, and who may try.
//
//   Sessions     a session is 32 random bytes (the HttpOnly cookie) with its own CSRF
//                token (32 more, which the page sends in X-CSRF-Token on every change).
//                Kept in memory only: a restart logs everyone out. At most MAX_SESSIONS;
//                a new login past that ends the oldest. Each lasts SESSION_MS from login.
//   LoginLimiter failed logins per client address: after MAX_FAILURES within
//                FAILURE_WINDOW_MS, that address is refused (429) until the window passes,
//                wrong password or right. At most MAX_TRACKED addresses are remembered;
//                past that the oldest entry is forgotten.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_MS = 12 * 3600_000;
export const MAX_SESSIONS = 32;
export const MAX_FAILURES = 5;
export const FAILURE_WINDOW_MS = 15 * 60_000;
const MAX_TRACKED = 4096;

export interface AdminSession {
  readonly csrfToken: string;
  readonly expires: number;
}

const token = (): string => randomBytes(32).toString('base64url');
const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Compares two secrets in constant time (their SHA-256, so lengths may differ). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export class Sessions {
  /** By the SHA-256 of the cookie's value: the table holds no usable secret. */
  private readonly byId = new Map<string, AdminSession>();

  constructor(private readonly now: () => number = Date.now) {}

  create(): { id: string; session: AdminSession } {
    const id = token();
    const session = { csrfToken: token(), expires: this.now() + SESSION_MS };
    this.byId.set(digest(id).toString('hex'), session);
    while (this.byId.size > MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!);
    return { id, session };
  }

  get(id: string | undefined): AdminSession | undefined {
    if (id === undefined || id.length > 100) return undefined;
    const key = digest(id).toString('hex');
    const s = this.byId.get(key);
    if (s !== undefined && s.expires <= this.now()) {
      this.byId.delete(key);
      return undefined;
    }
    return s;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.byId.delete(digest(id).toString('hex'));
  }
}

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Seconds until `client` may try again, or 0 when it may now. */
  retryAfter(client: string): number {
    const recent = this.recent(client);
    if (recent.length < MAX_FAILURES) return 0;
    return Math.ceil((recent[0]! + FAILURE_WINDOW_MS - this.now()) / 1000);
  }

  fail(client: string): void {
    const recent = this.recent(client);
    recent.push(this.now());
    this.failures.delete(client);
    this.failures.set(client, recent);
    while (this.failures.size > MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!);
  }

  succeed(client: string): void {
    this.failures.delete(client);
  }

  private recent(client: string): number[] {
    const since = this.now() - FAILURE_WINDOW_MS;
    return (this.failures.get(client) ?? []).filter((t) => t > since).slice(-MAX_FAILURES);
  }
}
