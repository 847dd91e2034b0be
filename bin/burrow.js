#!/usr/bin/env node
// `burrow` on PATH (npm install -g .) and `npx burrow` in the repository: runs the
// compiled CLI. The TypeScript is built by scripts/setup.sh (npm run setup).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write(`burrow: not built yet (${main} is missing): run npm run setup in the repository\n`);
  process.exit(1);
}
await import(main);
