// The admin password, kept as an scrypt hash (node:crypto; RFC 7914) in a 0600 file beside
// the registry: `wg0.conf` -> `wg0.admin-password`, one line
//
//   scrypt$N$r$p$SALT$HASH        (SALT 16 random bytes, HASH 32 bytes; both base64)
//
// The cost parameters travel with the hash, so raising them later leaves old files valid.
// The file is read at each login, so `burrow server admin-password` takes effect at once.

import { randomBytes, scrypt as scryptCb, type ScryptOptions, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../src/runtime/journal.js';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
export const MIN_PASSWORD_LENGTH = 10;
const MAX_PASSWORD_BYTES = 1024;

function scrypt(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(password, salt, KEY_BYTES, opts, (e, key) => (e ? reject(e) : resolve(key))));
}

/** A file beside the registry: `/etc/wireguard/wg0.conf` + `admin-password` -> `/etc/wireguard/wg0.admin-password`. */
export const besideRegistry = (registryPath: string, suffix: string): string => `${registryPath.replace(/\.conf$/, '')}.${suffix}`;

export function checkPassword(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `the password is too short: at least ${MIN_PASSWORD_LENGTH} characters`;
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `the password is too long: at most ${MAX_PASSWORD_BYTES} bytes`;
  return undefined;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** True when `password` matches `stored`; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored.trim());
  if (m === null || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (n < 2 || n > 1 << 20 || (n & (n - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), n, r, p);
  return timingSafeEqual(key, expected);
}

export async function writePasswordFile(path: string, password: string): Promise<void> {
  const bad = checkPassword(password);
  if (bad !== undefined) throw new Error(bad);
  writeFileAtomic(path, `${await hashPassword(password)}\n`, 0o600);
}

/** The stored hash, or undefined when no password was set. */
export function readPasswordFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
