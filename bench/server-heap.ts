// The server daemon's own heap, for bench/server.ts: run as
//   ip netns exec NS node --expose-gc dist/bench/server-heap.js CONF [SNAPSHOT]
// it runs `burrow server up --foreground` on CONF in this process (the daemon's code
// path: registry read, session, companion, usage tracker), waits until the server is up
// and its first expiry check and usage sample have run, collects garbage, prints
// {"heapUsed":N,"peers":N} on stdout (and writes a heap snapshot when asked), then brings
// the server down as SIGTERM does.
import { existsSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { serverTarget, serverUp } from '../src/cli/server.js';
import { ifnameFromConfigPath } from '../src/cli/daemon.js';
import { uapiSocketPath } from '../src/runtime/uapi-client.js';

const [conf, snapshot] = process.argv.slice(2);
if (conf === undefined) {
  process.stderr.write('usage: node --expose-gc server-heap.js CONF [SNAPSHOT]\n');
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('server-heap: run node with --expose-gc\n');
  process.exit(2);
}
const ifname = ifnameFromConfigPath(conf);
// Quiet: the daemon's log lines would go to stderr in the foreground.
process.env.LOG_LEVEL = 'error';

const up = serverUp(serverTarget({ config: conf }), { foreground: true });
const deadline = Date.now() + 120_000;
while (!existsSync(uapiSocketPath(ifname))) {
  if (Date.now() > deadline) throw new Error(`server-heap: ${ifname} did not come up`);
  await new Promise((r) => setTimeout(r, 50));
}
// The first expiry check and usage sample run right after up; the next sample in 2 s.
await new Promise((r) => setTimeout(r, 3_000));
for (let i = 0; i < 4; i++) gc();
const heapUsed = process.memoryUsage().heapUsed;
if (snapshot !== undefined) writeHeapSnapshot(snapshot);
process.stdout.write(`${JSON.stringify({ heapUsed })}\n`);
process.kill(process.pid, 'SIGTERM');
await up;
