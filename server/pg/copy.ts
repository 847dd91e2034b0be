// `burrow server registry import|export`: the whole registry between its wg-quick file
// and PostgreSQL, both ways, so a deployment can grow into several gateways and back
// out. Each way is one atomic step: the database in one transaction (PgRegistry.create),
// the file by writeFileAtomic (0600). Export writes each peer's transfer totals summed
// over every gateway; import makes the file's totals the importing gateway's share.

import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../../src/runtime/journal.js';
import { formatRegistry, RegistryError } from '../registry.js';
import { FileRegistry } from '../store.js';
import type { PgRegistry } from './registry.js';

export async function exportRegistry(from: PgRegistry, path: string, o: { replace?: boolean } = {}): Promise<{ peers: number }> {
  if (o.replace !== true && existsSync(path)) throw new RegistryError('ERR_REGISTRY_INPUT', `${path} exists already: nothing was written; overwrite it with --replace`);
  const data = await from.read();
  writeFileAtomic(path, formatRegistry(data, path), 0o600);
  return { peers: data.peers.length };
}

export async function importRegistry(path: string, to: PgRegistry, o: { replace?: boolean } = {}): Promise<{ peers: number }> {
  const data = await new FileRegistry(path).read();
  await to.create(data, { replace: o.replace === true, hint: 'replace everything in it with --replace' });
  return { peers: data.peers.length };
}
