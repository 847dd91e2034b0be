#!/usr/bin/env node
// `burrow-go` on PATH (npm install -g .): Burrow with wireguard-go's command line, for
// WG_QUICK_USERSPACE_IMPLEMENTATION=burrow-go wg-quick up IFACE. Runs the compiled CLI.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'burrow-go.js');
if (!existsSync(main)) {
  process.stderr.write(`burrow-go: not built yet (${main} is missing): run npm run setup in the repository\n`);
  process.exit(1);
}
await import(main);
