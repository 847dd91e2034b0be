// The admin page's files beside the registry (all 0600, written atomically):
//
//   wg0.conf            the registry (server/registry.ts)
//   wg0.admin-password  the admin password's scrypt hash (password.ts)
//   wg0.metrics-token   the bearer token for /metrics (burrow server metrics-token)
//   wg0.usage.json      24 h history and the month's counts (usage.ts)

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../../src/runtime/journal.js';
import { besideRegistry } from './password.js';

export const adminFiles = (registryPath: string) => ({
  password: besideRegistry(registryPath, 'admin-password'),
  metricsToken: besideRegistry(registryPath, 'metrics-token'),
  usage: besideRegistry(registryPath, 'usage.json'),
});

/** Writes a fresh metrics token (256 random bits) unless one exists or `rotate`; returns the file. */
export function ensureMetricsToken(registryPath: string, rotate: boolean): { path: string; created: boolean } {
  const path = adminFiles(registryPath).metricsToken;
  if (existsSync(path) && !rotate) return { path, created: false };
  writeFileAtomic(path, `${randomBytes(32).toString('base64url')}\n`, 0o600);
  return { path, created: true };
}
