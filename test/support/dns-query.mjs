// One DNS query from a test process: node dns-query.mjs NAME TYPE udp|tcp SERVER.
// Prints {"rcode","tc","answers":[{name,type,data,ttl}]} as JSON. UDP queries carry no
// EDNS, so an answer over 512 bytes comes back truncated.
import dnsPacket from 'dns-packet';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

const [name, type, transport, server] = process.argv.slice(2);
const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
const done = (bytes) => {
  const r = dnsPacket.decode(bytes);
  process.stdout.write(JSON.stringify({ rcode: r.rcode, tc: r.flag_tc, answers: r.answers.map((a) => ({ name: a.name, type: a.type, data: a.data, ttl: a.ttl })) }));
  process.exit(0);
};
setTimeout(() => process.exit(3), 8000);
if (transport === 'udp') {
  const s = createSocket(server.includes(':') ? 'udp6' : 'udp4');
  s.on('message', done);
  s.send(query, 53, server);
} else {
  const s = connect({ host: server, port: 53 }, () => {
    const length = Buffer.alloc(2);
    length.writeUInt16BE(query.length);
    s.write(Buffer.concat([length, query]));
  });
  let buffered = Buffer.alloc(0);
  s.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) done(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
  });
}
