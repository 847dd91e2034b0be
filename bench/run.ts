// `npm run bench`: every benchmark, each printing Burrow beside a reference measured in
// the same run. Pass names to run a subset: `npm run bench -- crypto`.
import { runCryptoBench } from './crypto.js';
import { runEngineBench } from './engine.js';
import { runFloodBench } from './flood.js';
import { runJscBench } from './jsc.js';
import { runLoopBench } from './loop.js';
import { runServerBench } from './server.js';
import { runStickyBench } from './sticky.js';
import { runThroughputBench } from './throughput.js';

const benches: Record<string, () => void | Promise<void>> = {
  crypto: runCryptoBench,
  engine: () => runEngineBench(),
  flood: runFloodBench,
  throughput: () => runThroughputBench(),
  server: () => runServerBench(),
  jsc: runJscBench,
  loop: runLoopBench,
  sticky: runStickyBench,
};

const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!(name in benches)) {
    console.error(`bench: no benchmark named ${name}; have: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
}
for (const [name, run] of Object.entries(benches)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  console.log(`\n=== ${name} ===`);
  await run();
}
