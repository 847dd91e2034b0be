// A TCP client for namespace tests: node connect.mjs HOST PORT FAMILY(0|4|6) [SECONDS].
// HOST may be a name: it is looked up as any program would (getaddrinfo, so
// /etc/resolv.conf). Prints "connected ADDRESS", then "echo N" for each echo of a byte
// sent every 500 ms, for SECONDS (default: one echo, then exit 0). Exit 1 on failure.
import { connect } from 'node:net';

const [host, port, family, seconds] = process.argv.slice(2);
const s = connect({ host, port: Number(port), family: Number(family) });
let echoes = 0;
s.setTimeout(4000, () => process.exit(1));
s.on('error', (e) => {
  process.stdout.write(`error ${e.code ?? e.message}\n`);
  process.exit(1);
});
s.on('connect', () => {
  s.setTimeout(0);
  process.stdout.write(`connected ${s.remoteAddress}\n`);
  s.write('x');
  if (seconds !== undefined) {
    const timer = setInterval(() => s.write('x'), 500);
    setTimeout(() => {
      clearInterval(timer);
      s.end();
      process.exit(0);
    }, Number(seconds) * 1000);
  }
});
s.on('data', (d) => {
  echoes += d.length;
  process.stdout.write(`echo ${echoes}\n`);
  if (seconds === undefined) process.exit(0);
});
