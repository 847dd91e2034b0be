// Helpers shared by the control socket's unit tests and fuzz suite.
import type { UapiFatal, UapiRequest } from '../../src/runtime/uapi.js';

const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');

/** A parsed request as plain data, to compare two parses of it (one whole, one streamed). */
export function describeRequest(r: UapiRequest | UapiFatal): string {
  if (r.op === 'get') return 'get';
  if (r.op !== 'set') return `${r.op} ${r.error.code}`;
  const q = r.request;
  return JSON.stringify({
    privateKey: q.privateKey && hex(q.privateKey), listenPort: q.listenPort, fwmark: q.fwmark, replacePeers: q.replacePeers,
    peers: q.peers.map((p) => ({
      ...p, publicKey: hex(p.publicKey), presharedKey: p.presharedKey && hex(p.presharedKey),
      allowedIPs: q.allowedIPs.slice(p.allowedFrom, p.allowedTo).map((a) => `${hex(a.address)}/${a.cidr}`),
    })),
  });
}
