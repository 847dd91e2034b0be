// The vector checks and an in-memory handshake, written for any ECMAScript engine: the
// test (test/unit/jsc.test.ts) bundles this for Debian's `jsc`, the same JavaScriptCore
// the C host embeds, with the vectors prepended as JSON. Each check is one line of the
// result: "ok NAME" or "FAIL NAME: why". No Node API, no TextEncoder, no Web Crypto.

import { blake2sKeyed, kdf3, nobleDh, openWithNonce, sealWithNonce, tai64n, xopen, xseal } from '../../crypto/index.js';
import { hchachaSubkey } from '../../crypto/xaead.js';
import { Device, type Endpoint } from '../../tunnel/device.js';
import { TRANSPORT_HEADER_LENGTH } from '../../tunnel/constants.js';
import { sealedLength } from '../../tunnel/transport.js';

type V = Record<string, string | number>;
export type VectorFiles = Record<string, { vectors: V[] }>;

const hex = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
};
const toHex = (b: Uint8Array | null | undefined): string => (b == null ? 'null' : Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''));

/** A deterministic xorshift stream: the selftest needs no platform randomness. */
function seededRandom(seed: number): (out: Uint8Array) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      out[i] = s & 255;
    }
    return out;
  };
}

export function runSelftest(files: VectorFiles): string[] {
  const lines: string[] = [];
  const check = (name: string, f: () => string | undefined): void => {
    try {
      const why = f();
      lines.push(why === undefined ? `ok ${name}` : `FAIL ${name}: ${why}`);
    } catch (e) {
      lines.push(`FAIL ${name}: threw ${String(e)}`);
    }
  };
  const eq = (what: string, got: string, want: unknown): string | undefined => (got === want ? undefined : `${what} ${got} != ${String(want)}`);

  for (const v of files['chacha20poly1305-rfc8439']!.vectors) {
    check(`chacha20poly1305 ${v.name}`, () => {
      const sealed = sealWithNonce(hex(v.key as string), hex(v.nonce as string), hex(v.plaintext as string), hex(v.aad as string));
      const bad = eq('sealed', toHex(sealed), `${v.ciphertext}${v.tag}`);
      if (bad) return bad;
      const opened = eq('opened', toHex(openWithNonce(hex(v.key as string), hex(v.nonce as string), sealed, hex(v.aad as string))), v.plaintext);
      if (opened) return opened;
      sealed[0]! ^= 1;
      return openWithNonce(hex(v.key as string), hex(v.nonce as string), sealed, hex(v.aad as string)) === null ? undefined : 'a flipped bit opened';
    });
  }
  for (const v of files['xchacha20poly1305-draft']!.vectors) {
    check(`xchacha20poly1305 ${v.name}`, () => {
      if (v.type === 'hchacha20') return eq('subkey', toHex(hchachaSubkey(hex(v.key as string), hex(v.nonce as string))), v.subkey);
      const sealed = xseal(hex(v.key as string), hex(v.nonce as string), hex(v.plaintext as string), hex(v.aad as string));
      return eq('sealed', toHex(sealed), `${v.ciphertext}${v.tag}`)
        ?? eq('opened', toHex(xopen(hex(v.key as string), hex(v.nonce as string), sealed, hex(v.aad as string))), v.plaintext);
    });
  }
  for (const v of files['blake2s-rfc7693']!.vectors) {
    check(`blake2s ${v.name}`, () => eq('digest', toHex(blake2sKeyed(hex(v.key as string), hex(v.input as string), v.output_len as number)), v.output));
  }
  files['hkdf-blake2s-wireguard']!.vectors.forEach((v, i) => {
    check(`kdf ${i + 1}`, () => eq('kdf3', kdf3(hex(v.key as string), hex(v.input as string)).map(toHex).join(','), `${v.t0},${v.t1},${v.t2}`));
  });
  for (const v of files['x25519-rfc7748']!.vectors) {
    if (v.type === 'iterated' && (v.iterations as number) > 1000) continue; // a million rounds: Node's suite has it
    check(`x25519 ${v.name}`, () => {
      if (v.type === 'scalar_mult') return eq('output', toHex(nobleDh.sharedSecret(hex(v.scalar as string), hex(v.u as string))), v.output);
      if (v.type === 'iterated') {
        let k = hex(v.start_k as string);
        let u = hex(v.start_u as string);
        for (let i = 0; i < (v.iterations as number); i++) [k, u] = [nobleDh.sharedSecret(k, u)!, k];
        return eq('output', toHex(k), v.output);
      }
      const a = hex(v.alice_private as string);
      return eq('alice public', toHex(nobleDh.publicKey(a)), v.alice_public)
        ?? eq('shared', toHex(nobleDh.sharedSecret(a, hex(v.bob_public as string))), v.shared);
    });
  }
  for (const v of files['tai64n']!.vectors) {
    check(`tai64n ${v.utc}`, () => eq('tai64n', toHex(tai64n(v.unix_seconds as number, v.nanoseconds as number, false)), v.tai64n));
  }
  check('in-memory handshake and 200 packets each way', () => inMemory(200));
  return lines;
}

/** Two Devices over an in-memory wire: a handshake, then packets both ways, checked byte for byte. */
function inMemory(count: number): string | undefined {
  const random = seededRandom(7);
  const keyA = random(new Uint8Array(32));
  const keyB = random(new Uint8Array(32));
  const wire: { to: 'a' | 'b'; data: Uint8Array; from: Endpoint }[] = [];
  const got: Record<'a' | 'b', string[]> = { a: [], b: [] };
  const epA = { host: '192.0.2.1', port: 1 };
  const epB = { host: '192.0.2.2', port: 2 };
  const a = new Device({ privateKey: keyA, random }, { send: (d) => wire.push({ to: 'b', data: d.slice(), from: epA }), write: (p) => got.a.push(toHex(p)) });
  const b = new Device({ privateKey: keyB, random }, { send: (d) => wire.push({ to: 'a', data: d.slice(), from: epB }), write: (p) => got.b.push(toHex(p)) });
  a.setPeer(b.publicKey, { endpoint: epB, allowedIPs: [{ address: Uint8Array.of(10, 0, 0, 2), cidr: 32 }] });
  b.setPeer(a.publicKey, { endpoint: epA, allowedIPs: [{ address: Uint8Array.of(10, 0, 0, 1), cidr: 32 }] });
  const packet = (src: number, dst: number, i: number, length: number): Uint8Array => {
    const buf = new Uint8Array(sealedLength(length, 1420) + TRANSPORT_HEADER_LENGTH);
    const p = buf.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length);
    p[0] = 0x45; p[2] = length >> 8; p[3] = length & 255; p[8] = 64; p[9] = 17;
    p.set([10, 0, 0, src], 12); p.set([10, 0, 0, dst], 16);
    for (let j = 20; j < length; j++) p[j] = (i * 31 + j) & 255;
    return buf;
  };
  const sent: Record<'a' | 'b', string[]> = { a: [], b: [] };
  let now = 0;
  const pump = (): void => {
    while (wire.length > 0) {
      const m = wire.shift()!;
      (m.to === 'a' ? a : b).receiveDatagram(m.data, m.from, now);
    }
  };
  for (let i = 0; i < count; i++) {
    const length = 40 + ((i * 97) % 1380);
    const pa = packet(1, 2, i, length);
    sent.b.push(toHex(pa.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length)));
    a.sendPacket(pa, length, now);
    pump();
    const pb = packet(2, 1, i, length);
    sent.a.push(toHex(pb.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length)));
    b.sendPacket(pb, length, now);
    pump();
    now += 1;
  }
  if (got.b.length !== count || got.a.length !== count) return `delivered ${got.b.length} and ${got.a.length} of ${count}`;
  for (let i = 0; i < count; i++) {
    if (got.b[i] !== sent.b[i] || got.a[i] !== sent.a[i]) return `packet ${i} differs`;
  }
  return undefined;
}
