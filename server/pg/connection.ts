// What every part of the PostgreSQL registry needs to know about its connection: the URL
// without its password (for every message and `location`), which errors mean "the
// database cannot be reached" rather than "it refused this statement", and the driver,
// loaded on first use (the file registry's commands never load it).

import type pg from 'pg';
import { RegistryError } from '../registry.js';

/** The channel every committed change is announced on. */
export const CHANNEL = 'burrow_registry';

let driver: Promise<typeof pg> | undefined;
export const loadDriver = (): Promise<typeof pg> => (driver ??= import('pg').then((m) => m.default));

/** The URL's password (userinfo or ?password=), or undefined. */
function passwordOf(url: string): string | undefined {
  const user = /^postgres(?:ql)?:\/\/([^@/?#]*)@/i.exec(url)?.[1];
  const colon = user?.indexOf(':') ?? -1;
  if (user !== undefined && colon >= 0) return decodeURIComponent(user.slice(colon + 1));
  const q = /[?&]password=([^&#]*)/i.exec(url)?.[1];
  return q === undefined ? undefined : decodeURIComponent(q);
}

/** The URL with any password taken out (from the user part and from ?password=). */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/)([^@/?#:]*):[^@/?#]*@/i, '$1$2@').replace(/([?&])password=[^&#]*(&?)/gi, (_m, sep: string, next: string) => (next === '' ? '' : sep)).replace(/[?&]$/, '');
}

/** `text` with every occurrence of the URL's password (raw and percent-encoded) replaced. */
export function scrub(url: string, text: string): string {
  const password = passwordOf(url);
  if (password === undefined || password === '') return text;
  let out = text;
  for (const p of new Set([password, encodeURIComponent(password)])) out = out.split(p).join('***');
  return out;
}

/**
 * True for an error that says the server is away (refused, socket gone, connection
 * ended, shutting down, too many connections), as opposed to a SQL error.
 */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code.startsWith('08') || code.startsWith('57') || code === '53300';
  if (typeof code === 'string' && code.startsWith('E')) return true; // ECONNREFUSED, ENOENT, ECONNRESET, EPIPE, ETIMEDOUT …
  return /connection terminated|not queryable|timeout exceeded when trying to connect|connection timeout|Connection ended/i.test(e.message);
}

/** Why the server is away, for a person: the driver's words, never the password. */
export function reason(url: string, e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const message = typeof err.message === 'string' && err.message !== '' ? err.message : String(e);
  return scrub(url, message);
}

export function unreachable(url: string, location: string, e: unknown): RegistryError {
  return new RegistryError('ERR_REGISTRY_UNREACHABLE', `cannot reach the registry ${location}: ${reason(url, e)}`);
}
