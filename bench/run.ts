// `npm run bench`: every benchmark, each printing Burrow beside a reference measured in
// the same run. Pass names to run a subset, and options after them:
//   npm run bench -- throughput            the tunnels side by side (needs root)
//   npm run bench -- throughput --quick    3 s x 1 run, for development
//   npm run bench -- throughput --only burrow,debian-wg-go --seconds 5 --runs 5
//   npm run bench -- rtt --count 500 --rounds 4   ping RTT: median and p99 (needs root)
import { runCryptoBench } from './crypto.js';
import { runEngineBench } from './engine.js';
import { runFloodBench } from './flood.js';
import { runGatewaysBench } from './gateways.js';
import { runHandshakesBench } from './handshakes.js';
import { runJscBench } from './jsc.js';
import { runLoopBench } from './loop.js';
import { runRegistryBench } from './registry.js';
import { runRttBench } from './rtt.js';
import { runServerBench } from './server.js';
import { runServerClientsBench } from './server-clients.js';
import { runStickyBench } from './sticky.js';
import { runThroughputBench } from './throughput.js';

const benches: Record<string, (options: readonly string[]) => void | Promise<void>> = {
  crypto: runCryptoBench,
  engine: () => runEngineBench(),
  flood: runFloodBench,
  throughput: (options) => runThroughputBench(options),
  rtt: (options) => runRttBench(options),
  server: (options) => runServerBench(options),
  jsc: runJscBench,
  loop: runLoopBench,
  sticky: runStickyBench,
  handshakes: async () => {
    await runHandshakesBench();
  },
  'server-clients': () => runServerClientsBench(),
  gateways: runGatewaysBench,
  registry: () => runRegistryBench(),
};

const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith('--'));
const wanted = firstOption < 0 ? args : args.slice(0, firstOption);
const options = firstOption < 0 ? [] : args.slice(firstOption);
if (args.includes('--help')) {
  console.log('usage: npm run bench -- [NAME...] [--quick] [--seconds N] [--runs N] [--only TUNNEL,...] [--json PATH] [--count N] [--rounds N] [--interval MS] [--warm N] [--base DIR]');
  console.log(`  NAME: ${Object.keys(benches).join(', ')} (all when none is given)`);
  console.log('  --quick: 3 s x 1 run for the tunnels, for development; --only: some of the tunnels (see bench/throughput.ts)');
  console.log('  rtt: --count pings per round (500), --rounds (4), --interval ms between pings (10), --warm N flood pings first');
  console.log('  --base DIR: also the Burrow built in another checkout (throughput, rtt)');
  process.exit(0);
}
for (const name of wanted) {
  if (!(name in benches)) {
    console.error(`bench: no benchmark named ${name}; have: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
}
for (const [name, run] of Object.entries(benches)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  console.log(`\n=== ${name} ===`);
  await run(options);
}
