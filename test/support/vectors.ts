// Loads the published test vectors from ../shared/vectors (read-only, beside the checkout).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [join(here, '../../../shared/vectors'), join(here, '../../shared/vectors')];

export function loadVectors<T = Record<string, unknown>>(file: string): { source: string; vectors: T[] } & Record<string, unknown> {
  for (const dir of candidates) {
    try {
      return JSON.parse(readFileSync(join(dir, file), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new Error(`test vectors ${file} not found in ${candidates.join(' or ')}`);
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
