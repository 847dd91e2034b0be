// Runs inside a test namespace (under `ip netns exec`): binds one UDP socket and relays
// datagrams to and from the test process over stdio, one JSON object a line.
//   stdout: {"t":"ready","port":P} then {"t":"rx","host":H,"port":P,"data":HEX} per datagram
//   stdin:  {"host":H,"port":P,"data":HEX} per datagram to send
// It exits when stdin closes. Plain JavaScript so it needs no loader.
import dgram from 'node:dgram';
import readline from 'node:readline';

const [family = 'udp4', bindAddress = '0.0.0.0', bindPort = '0'] = process.argv.slice(2);
const sock = dgram.createSocket({ type: family, ipv6Only: family === 'udp6' });
sock.on('message', (msg, rinfo) => {
  process.stdout.write(`${JSON.stringify({ t: 'rx', host: rinfo.address, port: rinfo.port, data: msg.toString('hex') })}\n`);
});
sock.on('error', (e) => {
  process.stderr.write(`udp-bridge: ${e.message}\n`);
  process.exit(2);
});
sock.bind(Number(bindPort), bindAddress, () => {
  process.stdout.write(`${JSON.stringify({ t: 'ready', port: sock.address().port })}\n`);
});
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  sock.send(Buffer.from(m.data, 'hex'), m.port, m.host);
});
rl.on('close', () => sock.close(() => process.exit(0)));
