// Builds and reads the IP packets tests push through tunnels: ICMP echo over IPv4 and
// IPv6, with real checksums, so a real kernel on the far side answers them.

function checksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ipv4Bytes = (a: string): number[] => a.split('.').map(Number);

function ipv6Bytes(a: string): number[] {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 255];
  });
}

/** An ICMP (v4) or ICMPv6 echo request (or reply), addresses as text. */
export function icmpEcho(src: string, dst: string, id: number, seq: number, payload: Uint8Array, reply = false): Uint8Array {
  if (src.includes(':')) {
    const icmp = new Uint8Array(8 + payload.length);
    icmp[0] = reply ? 129 : 128;
    icmp[4] = id >> 8; icmp[5] = id & 255; icmp[6] = seq >> 8; icmp[7] = seq & 255;
    icmp.set(payload, 8);
    const pkt = new Uint8Array(40 + icmp.length);
    pkt[0] = 0x60;
    pkt[4] = icmp.length >> 8; pkt[5] = icmp.length & 255;
    pkt[6] = 58; pkt[7] = 64;
    pkt.set(ipv6Bytes(src), 8);
    pkt.set(ipv6Bytes(dst), 24);
    const pseudo = new Uint8Array(40 + icmp.length);
    pseudo.set(pkt.subarray(8, 40), 0);
    pseudo[34] = icmp.length >> 8; pseudo[35] = icmp.length & 255; pseudo[39] = 58;
    pseudo.set(icmp, 40);
    const c = checksum(pseudo);
    icmp[2] = c >> 8; icmp[3] = c & 255;
    pkt.set(icmp, 40);
    return pkt;
  }
  const icmp = new Uint8Array(8 + payload.length);
  icmp[0] = reply ? 0 : 8;
  icmp[4] = id >> 8; icmp[5] = id & 255; icmp[6] = seq >> 8; icmp[7] = seq & 255;
  icmp.set(payload, 8);
  const c = checksum(icmp);
  icmp[2] = c >> 8; icmp[3] = c & 255;
  const pkt = new Uint8Array(20 + icmp.length);
  pkt[0] = 0x45;
  pkt[2] = pkt.length >> 8; pkt[3] = pkt.length & 255;
  pkt[8] = 64; pkt[9] = 1;
  pkt.set(ipv4Bytes(src), 12);
  pkt.set(ipv4Bytes(dst), 16);
  const hc = checksum(pkt.subarray(0, 20));
  pkt[10] = hc >> 8; pkt[11] = hc & 255;
  pkt.set(icmp, 20);
  return pkt;
}

export interface EchoInfo {
  version: 4 | 6;
  src: string;
  dst: string;
  type: 'request' | 'reply';
  id: number;
  seq: number;
  payload: Uint8Array;
}

const v6Text = (b: Uint8Array): string =>
  Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':');

/** Reads an ICMP/ICMPv6 echo from an IP packet (ignoring trailing padding), or undefined. */
export function readEcho(pkt: Uint8Array): EchoInfo | undefined {
  const version = pkt[0]! >> 4;
  if (version === 4) {
    const total = (pkt[2]! << 8) | pkt[3]!;
    const ihl = (pkt[0]! & 15) * 4;
    if (pkt[9] !== 1) return undefined;
    const icmp = pkt.subarray(ihl, total);
    if (icmp[0] !== 0 && icmp[0] !== 8) return undefined;
    return {
      version: 4, src: Array.from(pkt.subarray(12, 16)).join('.'), dst: Array.from(pkt.subarray(16, 20)).join('.'),
      type: icmp[0] === 8 ? 'request' : 'reply', id: (icmp[4]! << 8) | icmp[5]!, seq: (icmp[6]! << 8) | icmp[7]!, payload: icmp.subarray(8),
    };
  }
  if (version === 6) {
    const len = (pkt[4]! << 8) | pkt[5]!;
    if (pkt[6] !== 58) return undefined;
    const icmp = pkt.subarray(40, 40 + len);
    if (icmp[0] !== 128 && icmp[0] !== 129) return undefined;
    return {
      version: 6, src: v6Text(pkt.subarray(8, 24)), dst: v6Text(pkt.subarray(24, 40)),
      type: icmp[0] === 128 ? 'request' : 'reply', id: (icmp[4]! << 8) | icmp[5]!, seq: (icmp[6]! << 8) | icmp[7]!, payload: icmp.subarray(8),
    };
  }
  return undefined;
}
