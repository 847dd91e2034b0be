// `burrow genkey`, `pubkey` and `genpsk`: byte-identical to `wg genkey`, `wg pubkey`
// and `wg genpsk` (a 44-character base64 key and a newline).

import { fstatSync } from 'node:fs';
import { decodeKey, encodeKey, generatePresharedKey, generatePrivateKey, KeyFormatError, publicKeyOf } from '../../crypto/keys.js';
import { CliError, EXIT_BAD_INPUT } from './errors.js';

/** As wg: warn when a secret goes to a file that others can read. */
function warnIfWorldReadable(): void {
  try {
    const st = fstatSync(1);
    if (st.isFile() && (st.mode & 0o007) !== 0) {
      process.stderr.write('Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.\n');
    }
  } catch {
    // stdout is not something we can stat: nothing to warn about
  }
}

export function genkey(): string {
  warnIfWorldReadable();
  const key = generatePrivateKey();
  const text = encodeKey(key);
  key.fill(0);
  return `${text}\n`;
}

export function genpsk(): string {
  warnIfWorldReadable();
  const key = generatePresharedKey();
  const text = encodeKey(key);
  key.fill(0);
  return `${text}\n`;
}

/** Reads a private key as `wg pubkey` does: the key, then optional trailing whitespace. */
export function pubkey(input: string): string {
  const text = input.replace(/[\s]+$/, '');
  let key: Uint8Array;
  try {
    key = decodeKey(text);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new CliError(`pubkey: the private key on standard input is not valid: ${e.message}`, EXIT_BAD_INPUT);
    throw e;
  }
  const pub = publicKeyOf(key);
  key.fill(0);
  return `${encodeKey(pub)}\n`;
}

export async function readStdin(limit = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new CliError(`standard input is longer than ${limit} bytes: expected one key`, EXIT_BAD_INPUT);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
