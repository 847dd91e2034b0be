// Whether the running server reaches its registry, for `burrow show` and `list-peers`:
// the daemon writes /run/burrow/IFACE.registry (0600, atomically) whenever reachability
// changes, and removes it at stop. The location never holds a password (the store
// removes it).

import { readFileSync, rmSync } from 'node:fs';
import { RUN_DIR, writeFileAtomic } from '../src/runtime/journal.js';
import type { RegistryStatus } from './store.js';

export interface ShownRegistry extends RegistryStatus {
  readonly location: string;
}

export const registryStatusPath = (ifname: string): string => `${RUN_DIR}/${ifname}.registry`;

export function writeRegistryStatus(ifname: string, shown: ShownRegistry): void {
  writeFileAtomic(registryStatusPath(ifname), `${JSON.stringify(shown)}\n`, 0o600);
}

export function removeRegistryStatus(ifname: string): void {
  rmSync(registryStatusPath(ifname), { force: true });
}

/** What the daemon of `ifname` last wrote; undefined when it wrote nothing (not a server, or down). */
export function readRegistryStatus(ifname: string): ShownRegistry | undefined {
  try {
    const v = JSON.parse(readFileSync(registryStatusPath(ifname), 'utf8')) as Partial<ShownRegistry>;
    if (typeof v.location !== 'string' || typeof v.reachable !== 'boolean' || typeof v.since !== 'string') return undefined;
    return { location: v.location, reachable: v.reachable, since: v.since, ...(typeof v.error === 'string' ? { error: v.error } : {}) };
  } catch {
    return undefined;
  }
}

/** "registry: postgresql://…/burrow unreachable since 2026-12-04T18:00:00.000Z (connection refused)". */
export function formatRegistryStatus(s: ShownRegistry): string {
  return s.reachable ? `registry: ${s.location}` : `registry: ${s.location} unreachable since ${s.since}${s.error === undefined ? '' : ` (${s.error})`}`;
}
