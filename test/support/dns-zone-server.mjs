// A DNS server for namespace tests, on dns-packet: answers from a zone given as JSON
// (argv[2]) on port 53, UDP and TCP, IPv4 and IPv6, and prints one line per query:
// "query NAME TYPE TRANSPORT FROM". Like a recursive resolver it follows CNAMEs inside
// the zone and puts the whole chain in the answer, unless an entry says `stop: true`.
// A UDP answer over 512 bytes is sent truncated (TC) whatever EDNS says, so that a
// client's TCP fallback is exercised.
//
// Zone: { "name": { "A": ["192.0.2.1"], "AAAA": [...], "CNAME": "target", "ttl": 60, "stop": false } }
import dnsPacket from 'dns-packet';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const zone = JSON.parse(process.argv[2]);
const say = (line) => process.stdout.write(`${line}\n`);

function answer(query) {
  const q = query.questions[0];
  const answers = [];
  let name = q.name.toLowerCase().replace(/\.$/, '');
  let rcode = 0;
  for (let hop = 0; hop < 10; hop++) {
    const entry = zone[name];
    if (entry === undefined) {
      if (answers.length === 0) rcode = 3; // NXDOMAIN
      break;
    }
    const ttl = entry.ttl ?? 60;
    if (entry.CNAME !== undefined && q.type !== 'CNAME') {
      answers.push({ type: 'CNAME', name, ttl, data: entry.CNAME });
      if (entry.stop) break;
      name = entry.CNAME;
      continue;
    }
    for (const data of entry[q.type] ?? []) answers.push({ type: q.type, name, ttl, data });
    break;
  }
  return dnsPacket.encode({ type: 'response', id: query.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode, questions: query.questions, answers });
}

for (const type of ['udp4', 'udp6']) {
  const socket = createSocket(type === 'udp6' ? { type, ipv6Only: true } : { type });
  socket.on('message', (msg, rinfo) => {
    const query = dnsPacket.decode(msg);
    say(`query ${query.questions[0].name} ${query.questions[0].type} udp ${rinfo.address}`);
    let reply = answer(query);
    if (reply.length > 512) {
      reply = dnsPacket.encode({ type: 'response', id: query.id, flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.RECURSION_AVAILABLE, questions: query.questions });
    }
    socket.send(reply, rinfo.port, rinfo.address);
  });
  socket.bind(53);
}
for (const host of ['0.0.0.0', '::']) {
  createServer((s) => {
    let buffered = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = dnsPacket.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        say(`query ${query.questions[0].name} ${query.questions[0].type} tcp ${s.remoteAddress.replace('::ffff:', '')}`);
        const reply = answer(query);
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        s.write(Buffer.concat([length, reply]));
      }
    });
  }).listen({ port: 53, host, ipv6Only: host === '::' });
}
say('listening');
