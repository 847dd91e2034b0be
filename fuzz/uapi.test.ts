// The control-socket parser (src/runtime/uapi/): handleUapi and the stream reader fed outside
// bytes. Whatever arrives:
//   - handleUapi never rejects; its reply is a `get` body ending in errno=0, or
//     errno=-N with N one of the documented errnos, never ENOANO (the "unexpected" one);
//   - a request that fails changes nothing (the `get` before and after are equal);
//   - valid `set` requests, generated from a small vocabulary so that keys and prefixes
//     collide, leave the device as a reference model of wireguard-go's rules says
//     (replace_peers, remove, update_only, replace_allowed_ips, prefixes moving between
//     peers, the all-zero preshared key, a peer with the device's own key);
//   - the line framer and the reader cut the same requests out of a stream however it is
//     split, and parse them as a whole request read at once is parsed.

import fc from 'fast-check';
import { describeRequest } from '../test/support/uapi.js';
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../crypto/keys.js';
import {
  handleUapi, nextRequest, readUapiRequest, type UapiBackend, UAPI_ERRNO, UapiLineFramer, UapiReader,
} from '../src/runtime/uapi.js';
import { Device } from '../tunnel/device.js';
import { fcParams } from './budget.js';
import { hex } from './sim/packets.js';
import { Prng } from './sim/prng.js';

const DOCUMENTED = new Set([UAPI_ERRNO.EINVAL, UAPI_ERRNO.EPROTO, UAPI_ERRNO.EMSGSIZE, UAPI_ERRNO.EADDRINUSE, UAPI_ERRNO.ENOTRECOVERABLE]);

function key(seed: number): Uint8Array {
  const k = new Prng(seed, 99).bytes(32);
  k[0]! &= 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}

const DEVICE_KEY = key(1);
const OTHER_PRIVATE = key(2);
const PEER_KEYS = [3, 4, 5, 6].map((s) => publicKeyOf(key(s)));
/** A peer key may also be the device's own public key, or the one it gets after a private_key change. */
const KEY_POOL = [...PEER_KEYS, publicKeyOf(DEVICE_KEY), publicKeyOf(OTHER_PRIVATE)].map(hex);
const PSK_POOL = [hex(new Uint8Array(32)), hex(new Prng(7, 1).bytes(32)), hex(new Prng(8, 1).bytes(32))];
const ENDPOINT_POOL: [string, string][] = [
  ['192.0.2.1:51820', '192.0.2.1:51820'], ['[2001:db8::1]:443', '[2001:db8::1]:443'], ['[2001:0db8:0:0::0001]:443', '[2001:db8::1]:443'],
  ['203.0.113.9:1', '203.0.113.9:1'],
];
/** allowed_ip text as sent, and as `get` reports it (host bits cleared, canonical). */
const PREFIX_POOL: [string, string][] = [
  ['10.0.0.0/8', '10.0.0.0/8'], ['10.1.2.3/24', '10.1.2.0/24'], ['10.1.2.3/32', '10.1.2.3/32'], ['0.0.0.0/0', '0.0.0.0/0'],
  ['::/0', '::/0'], ['fd00::1/64', 'fd00::/64'], ['FD00:0::1/128', 'fd00::1/128'], ['10.1.2.0/24', '10.1.2.0/24'],
];

function makeBackend(): UapiBackend & { port: number; mark: number } {
  const device = new Device({ privateKey: DEVICE_KEY }, { send() {}, write() {} });
  const b = {
    device, port: 0, mark: 0,
    now: () => 0,
    listenPort: () => b.port,
    setListenPort: async (p: number) => {
      if (p === 1) throw Object.assign(new Error('in use'), { code: 'EADDRINUSE' });
      b.port = p;
    },
    fwmark: () => b.mark,
    setFwmark: async (m: number) => {
      b.mark = m;
    },
  };
  return b;
}

/** A reply's errno, or 0 for a get body. */
function errnoOf(reply: string): number {
  expect(reply.endsWith('\n\n'), JSON.stringify(reply.slice(-20))).toBe(true);
  const m = /(?:^|\n)errno=(-?\d+)\n\n$/.exec(reply);
  expect(m, JSON.stringify(reply.slice(-40))).not.toBeNull();
  const n = Math.abs(Number(m![1]));
  if (n !== 0) {
    expect(reply).toBe(`errno=-${n}\n\n`);
    expect(DOCUMENTED.has(n), `errno ${n}`).toBe(true);
  }
  return n;
}

const get = (b: UapiBackend): Promise<string> => handleUapi('get=1\n\n', b);


// --- The reference model --------------------------------------------------------------

interface ModelPeer {
  psk: string;
  endpoint: string | undefined;
  keepalive: number;
  allowed: Set<string>;
}

interface Model {
  ownKey: string;
  port: number;
  mark: number;
  peers: Map<string, ModelPeer>;
}

type Line = [string, string];

interface Section {
  key: number;
  lines: Line[];
}

interface SetRequest {
  device: Line[];
  sections: Section[];
}

const deviceLineArb: fc.Arbitrary<Line> = fc.oneof(
  fc.constantFrom(0, 1, 51820, 65535).map((p): Line => ['listen_port', String(p)]),
  fc.constantFrom(0, 1, 0xca6c, 0xffff_ffff).map((m): Line => ['fwmark', String(m)]),
  fc.constant<Line>(['replace_peers', 'true']),
  fc.constant<Line>(['private_key', hex(OTHER_PRIVATE)]),
);

const peerLineArb: fc.Arbitrary<Line> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Line>(['remove', 'true']) },
  { weight: 1, arbitrary: fc.constant<Line>(['update_only', 'true']) },
  { weight: 2, arbitrary: fc.constantFrom(...PSK_POOL).map((k): Line => ['preshared_key', k]) },
  { weight: 2, arbitrary: fc.constantFrom(...ENDPOINT_POOL).map(([t]): Line => ['endpoint', t]) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 25, 65535).map((s): Line => ['persistent_keepalive_interval', String(s)]) },
  { weight: 1, arbitrary: fc.constant<Line>(['replace_allowed_ips', 'true']) },
  { weight: 4, arbitrary: fc.constantFrom(...PREFIX_POOL).map(([t]): Line => ['allowed_ip', t]) },
  { weight: 1, arbitrary: fc.constant<Line>(['protocol_version', '1']) },
);

const setArb: fc.Arbitrary<SetRequest> = fc.record({
  device: fc.array(deviceLineArb, { maxLength: 2 }),
  sections: fc.array(fc.record({ key: fc.nat({ max: KEY_POOL.length - 1 }), lines: fc.array(peerLineArb, { maxLength: 6 }) }), { maxLength: 5 }),
});

function render(r: SetRequest): string {
  const lines = [...r.device];
  for (const s of r.sections) lines.push(['public_key', KEY_POOL[s.key]!], ...s.lines);
  return `set=1\n${lines.map(([k, v]) => `${k}=${v}\n`).join('')}\n`;
}

const canonicalEndpoint = (text: string): string => ENDPOINT_POOL.find(([t]) => t === text)![1];
const canonicalPrefix = (text: string): string => PREFIX_POOL.find(([t]) => t === text)![1];

/** What wireguard-go's rules make of `r` (a request that the parser accepts). */
function applyModel(m: Model, r: SetRequest): void {
  for (const [k, v] of r.device) {
    if (k === 'listen_port') m.port = Number(v);
    if (k === 'fwmark') m.mark = Number(v);
  }
  const newPrivate = r.device.some(([k]) => k === 'private_key');
  if (newPrivate) {
    m.ownKey = hex(publicKeyOf(OTHER_PRIVATE));
    m.peers.delete(m.ownKey);
  }
  if (r.device.some(([k]) => k === 'replace_peers')) m.peers.clear();
  for (const s of r.sections) {
    const name = KEY_POOL[s.key]!;
    // A section collapses to its end effect: remove wins, then update_only, then the rest in order.
    if (s.lines.some(([k]) => k === 'remove')) {
      m.peers.delete(name);
      continue;
    }
    if (name === m.ownKey) continue;
    if (s.lines.some(([k]) => k === 'update_only') && !m.peers.has(name)) continue;
    let p = m.peers.get(name);
    if (p === undefined) m.peers.set(name, (p = { psk: PSK_POOL[0]!, endpoint: undefined, keepalive: 0, allowed: new Set() }));
    const replaceAt = s.lines.map(([k]) => k).lastIndexOf('replace_allowed_ips');
    if (replaceAt >= 0) p.allowed.clear();
    s.lines.forEach(([k, v], i) => {
      if (k === 'preshared_key') p.psk = v;
      else if (k === 'endpoint') p.endpoint = canonicalEndpoint(v);
      else if (k === 'persistent_keepalive_interval') p.keepalive = Number(v);
      else if (k === 'allowed_ip' && i > replaceAt) {
        const prefix = canonicalPrefix(v);
        for (const other of m.peers.values()) other.allowed.delete(prefix);
        p.allowed.add(prefix);
      }
    });
  }
}

/** The model as the parts of a `get` it decides. */
function expected(m: Model): string[] {
  const out = [`listen_port=${m.port}`, `fwmark=${m.mark}`];
  for (const [name, p] of [...m.peers].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`peer ${name} psk=${p.psk} endpoint=${p.endpoint ?? '-'} keepalive=${p.keepalive} allowed=${[...p.allowed].sort().join(',')}`);
  }
  return out;
}

/** The same parts, read from a `get` reply. */
function observed(reply: string): string[] {
  const peers: { name: string; psk: string; endpoint: string; keepalive: string; allowed: string[] }[] = [];
  let port = '0';
  let mark = '0';
  for (const line of reply.split('\n')) {
    const eq = line.indexOf('=');
    const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
    const p = peers.at(-1);
    if (k === 'listen_port') port = v;
    else if (k === 'fwmark') mark = v;
    else if (k === 'public_key') peers.push({ name: v, psk: '', endpoint: '-', keepalive: '0', allowed: [] });
    else if (p !== undefined && k === 'preshared_key') p.psk = v;
    else if (p !== undefined && k === 'endpoint') p.endpoint = v;
    else if (p !== undefined && k === 'persistent_keepalive_interval') p.keepalive = v;
    else if (p !== undefined && k === 'allowed_ip') p.allowed.push(v);
  }
  return [`listen_port=${port}`, `fwmark=${mark}`, ...peers.sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => `peer ${p.name} psk=${p.psk} endpoint=${p.endpoint} keepalive=${p.keepalive} allowed=${p.allowed.sort().join(',')}`)];
}

// --- Outside bytes ------------------------------------------------------------------------

/** Text that looks like requests often enough: real lines, mangled, joined with and without the framing. */
const requestLike: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.tuple(fc.constantFrom('get=1\n', 'set=1\n', 'set=1', 'get=1', 'GET=1\n', 'set=2\n', ''),
    fc.array(fc.oneof(
      peerLineArb.map(([k, v]) => `${k}=${v}`), deviceLineArb.map(([k, v]) => `${k}=${v}`),
      fc.constantFrom(...KEY_POOL).map((k) => `public_key=${k}`),
      fc.tuple(fc.constantFrom('public_key', 'private_key', 'preshared_key', 'endpoint', 'allowed_ip', 'listen_port', 'fwmark',
        'persistent_keepalive_interval', 'protocol_version', 'remove', 'nonsense', ''), fc.string({ maxLength: 70 })).map(([k, v]) => `${k}=${v}`),
      fc.string({ maxLength: 20 }),
    ), { maxLength: 10 }),
    fc.constantFrom('\n', '\n\n', '', '\n\nget=1\n\n', '\r\n\r\n'))
    .map(([op, lines, end]) => `${op}${lines.join('\n')}${end}`),
);

describe('control socket: handleUapi and the framer on outside bytes', () => {
  it('any request: a documented reply, never a rejection; a failed one changes nothing', async () => {
    await fc.assert(fc.asyncProperty(setArb, requestLike, async (setup, request) => {
      const b = makeBackend();
      errnoOf(await handleUapi(render(setup), b));
      const before = await get(b);
      const reply = await handleUapi(request, b);
      if (errnoOf(reply) !== 0) expect(await get(b)).toBe(before);
    }), fcParams(500));
  });

  it('valid set requests leave the device as the reference model says', async () => {
    await fc.assert(fc.asyncProperty(fc.array(setArb, { minLength: 1, maxLength: 6 }), async (requests) => {
      const b = makeBackend();
      const m: Model = { ownKey: hex(publicKeyOf(DEVICE_KEY)), port: 0, mark: 0, peers: new Map() };
      for (const r of requests) {
        const reply = await handleUapi(render(r), b);
        const errno = errnoOf(reply);
        // The stub refuses port 1 (the last listen_port line is the one applied).
        if (r.device.filter(([k]) => k === 'listen_port').at(-1)?.[1] === '1') expect(errno).toBe(UAPI_ERRNO.EADDRINUSE);
        else expect(errno).toBe(0);
        if (errno === 0) applyModel(m, r);
        expect(observed(await get(b))).toEqual(expected(m));
      }
    }), fcParams(300));
  });

  it('mutated valid requests: documented replies; a failure changes nothing', async () => {
    const edit = fc.tuple(fc.constantFrom('flip', 'delete', 'insert', 'cut'), fc.nat(), fc.constantFrom('=', '\n', '/', ':', '[', '0', 'f', ' ', '\u0000', '\u00ff'));
    await fc.assert(fc.asyncProperty(setArb, fc.array(edit, { minLength: 1, maxLength: 4 }), async (r, edits) => {
      let text = render(r);
      for (const [op, at, ch] of edits) {
        const i = at % Math.max(1, text.length);
        if (op === 'flip') text = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + text.slice(i + 1);
        else if (op === 'delete') text = text.slice(0, i) + text.slice(i + 1);
        else if (op === 'insert') text = text.slice(0, i) + ch + text.slice(i);
        else text = text.slice(0, i);
      }
      const b = makeBackend();
      const before = await get(b);
      if (errnoOf(await handleUapi(text, b)) !== 0) expect(await get(b)).toBe(before);
    }), fcParams(500));
  });

  it('the framer cuts the same frames out of a stream however it is split', () => {
    const stream = fc.array(fc.oneof(requestLike, setArb.map(render), fc.constant('get=1\n\n')), { minLength: 1, maxLength: 4 })
      .map((parts) => Buffer.from(parts.join(''), 'latin1'));
    fc.assert(fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
      const frames = (chunks: Uint8Array[]): string[] => {
        const f = new UapiLineFramer();
        const reader = new UapiReader({ maxRequestBytes: 4096, maxPeersPerRequest: 8, maxAllowedIpsPerRequest: 16 });
        const out: string[] = [];
        for (const c of chunks) {
          f.push(c);
          for (let r = nextRequest(f, reader); r !== undefined; r = nextRequest(f, reader)) out.push(describeRequest(r));
        }
        return out;
      };
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let from = 0;
      for (const p of [...points, bytes.length]) {
        chunks.push(Uint8Array.from(bytes.subarray(from, p)));
        from = p;
      }
      expect(frames(chunks)).toEqual(frames([Uint8Array.from(bytes)]));
    }), fcParams(500));
  });

  it('whatever the stream, the server holds at most one line of text and a plan within its bounds', () => {
    const limits = { maxRequestBytes: 2048, maxPeersPerRequest: 3, maxAllowedIpsPerRequest: 5 };
    const chunk = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.oneof(requestLike, setArb.map(render), fc.constant('get=1\n\n'), fc.constant('allowed_ip=10.0.0.0/8\n'), fc.constant(`public_key=${KEY_POOL[0]}\n`))
        .map((t) => Buffer.from(t, 'latin1')),
    );
    fc.assert(fc.property(fc.array(chunk, { maxLength: 30 }), (chunks) => {
      const f = new UapiLineFramer();
      const reader = new UapiReader(limits);
      const inner = reader as unknown as { parser?: { request: { peers: unknown[]; allowedIPs: { length: number } } } };
      for (const c of chunks) {
        f.push(c);
        while (nextRequest(f, reader) !== undefined);
        if (!reader.failed) expect(f.pending).toBeLessThan(reader.lineLimit());
        const plan = inner.parser?.request;
        if (plan !== undefined) {
          expect(plan.peers.length).toBeLessThanOrEqual(limits.maxPeersPerRequest);
          expect(plan.allowedIPs.length).toBeLessThanOrEqual(limits.maxAllowedIpsPerRequest);
        }
      }
    }), fcParams(500));
  });

  it('a request read from a stream is parsed as the same request read whole', () => {
    const whole = fc.oneof(requestLike, setArb.map(render), fc.constant('get=1\n\n'));
    fc.assert(fc.property(whole, fc.integer({ min: 1, max: 64 }), (text, step) => {
      let expected: string;
      try {
        expected = describeRequest(readUapiRequest(text));
      } catch {
        return; // not one whole request: the stream test above covers it
      }
      const bytes = Buffer.from(text, 'latin1');
      const f = new UapiLineFramer();
      const reader = new UapiReader();
      const got: string[] = [];
      for (let at = 0; at < bytes.length; at += step) {
        f.push(bytes.subarray(at, at + step));
        for (let r = nextRequest(f, reader); r !== undefined; r = nextRequest(f, reader)) got.push(describeRequest(r));
      }
      expect(got).toEqual([expected]);
    }), fcParams(500));
  });
});
