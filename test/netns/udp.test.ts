// UdpTransport for real (the addon's batched recvmmsg/sendmmsg sockets): each scenario
// runs a child process in a fresh network namespace of its own, with only `lo` up, and
// reports what it saw as one JSON line. Nothing here touches the host's namespace; the
// namespace is deleted after its test, even on failure, and the child is killed after
// a bounded time.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { requireHost } from '../support/privileges.js';
import { type Json, runScenario } from '../support/scenario.js';

const UDP = fileURLToPath(new URL('../../src/runtime/udp.ts', import.meta.url));
const CHILD_TIMEOUT_MS = 40_000;

// The child: scenarios by name, each resolving to a JSON-able result.
const FIXTURE = `
import { UdpTransport, UdpError } from ${JSON.stringify(UDP)};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (f, ms = 5000) => { const end = Date.now() + ms; while (!f() && Date.now() < end) await sleep(5); };

const scenarios = {
  // Datagrams both ways over IPv4 and IPv6; endpoints as wg show prints them, cached.
  async echo() {
    const got = [];
    const b = await UdpTransport.open(0, (data, from) => {
      got.push({ text: Buffer.from(data).toString(), host: from.host, port: from.port, from });
      b.send(data, from); // echo from inside the handler: flushed at the end of the batch
    });
    const back = [];
    const a = await UdpTransport.open(0, (data, from) => back.push({ text: Buffer.from(data).toString(), host: from.host, port: from.port }));
    const buf = new Uint8Array(64);
    const send = (text, host) => { const n = Buffer.from(buf.buffer).write(text); a.send(buf.subarray(0, n), { host, port: b.port }); buf.fill(0); };
    send('one', '127.0.0.1');
    send('two', '::1');
    send('three', '127.0.0.1');
    send('mapped', '::ffff:127.0.0.1');
    await until(() => back.length >= 4);
    const r = {
      aPort: a.port, bPort: b.port,
      got: got.map(({ text, host, port }) => ({ text, host, port })),
      back: back.map(({ text, host, port }) => ({ text, host, port })),
      sameEndpoint: got[0].from === got[2].from,
      stats: a.stats(),
    };
    a.close(); b.close(); a.close();
    return r;
  },

  // A burst far larger than one sendmmsg and than the queue: everything sent either
  // arrives, is counted as dropped, or was lost by the kernel's buffers; no crash.
  async burst() {
    let received = 0; let bytes = 0;
    const b = await UdpTransport.open(0, (data) => { received++; bytes += data.length; });
    const a = await UdpTransport.open(0, () => undefined);
    const data = new Uint8Array(1400);
    const to = { host: '127.0.0.1', port: b.port };
    const total = 20000;
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < total / 20; i++) { data[0] = i & 0xff; a.send(data, to); }
      await sleep(1);
    }
    await until(() => received + a.stats().droppedSends >= total, 3000);
    const r = { total, received, sizeOk: bytes === received * 1400, stats: a.stats(), bStats: b.stats() };
    a.close(); b.close();
    return r;
  },

  // A run of equal datagrams to one address, the last shorter (which ends the run, so
  // the next short one is sent alone), then one to elsewhere: sent with UDP GSO, each
  // arrives whole, where it was sent, in order.
  async gso() {
    const got = [];
    const b = await UdpTransport.open(0, (data) => got.push({ first: data[0], last: data[data.length - 1], length: data.length }));
    const c = await UdpTransport.open(0, (data) => got.push({ other: data.length }));
    const a = await UdpTransport.open(0, () => undefined);
    const to = { host: '127.0.0.1', port: b.port };
    for (let i = 0; i < 10; i++) a.send(new Uint8Array(1000).fill(i), to);
    a.send(new Uint8Array(300).fill(10), to);
    a.send(new Uint8Array(300).fill(11), to);
    a.send(new Uint8Array(1000).fill(12), { host: '127.0.0.1', port: c.port });
    a.send(new Uint8Array(1000).fill(13), to);
    await until(() => got.length >= 14);
    const r = { got, stats: a.stats() };
    a.close(); b.close(); c.close();
    return r;
  },

  // Runs longer than one GSO message (65,000 bytes), from a source address, as replies
  // go: each message keeps its own PKTINFO and UDP_SEGMENT, so the kernel takes the
  // source as given (a clobbered control buffer made it refuse, and the source was
  // dropped as if it were gone).
  async gsoSources() {
    const got = [];
    const b = await UdpTransport.open(0, (data) => got.push(data[0]));
    const a = await UdpTransport.open(0, () => undefined);
    const to = { host: '127.0.0.1', port: b.port, source: '127.0.0.1' };
    for (let i = 0; i < 60; i++) a.send(new Uint8Array(1400).fill(i), to);
    await until(() => got.length >= 60);
    const r = { got, stats: a.stats() };
    a.close(); b.close();
    return r;
  },

  // A GSO run (ten of 1,000 bytes, then 300) to a socket with UDP GRO arrives in one
  // receive and is split back into its datagrams; with BURROW_UDP_GRO=0 the kernel cuts
  // it, datagram by datagram. Either way the handler sees the same eleven, in order.
  async gro() {
    const run = async (gro) => {
      if (!gro) process.env.BURROW_UDP_GRO = '0';
      const got = [];
      const b = await UdpTransport.open(0, (data, from) => got.push({ first: data[0], last: data[data.length - 1], length: data.length, port: from.port }));
      delete process.env.BURROW_UDP_GRO;
      const a = await UdpTransport.open(0, () => undefined);
      const to = { host: '127.0.0.1', port: b.port };
      for (let i = 0; i < 10; i++) a.send(new Uint8Array(1000).fill(i), to);
      a.send(new Uint8Array(300).fill(10), to);
      await until(() => got.length >= 11);
      await sleep(20);
      const r = { got: got.map(({ port, ...g }) => ({ ...g, fromA: port === a.port })), gsoSends: a.stats().gsoSends, groReceives: b.stats().groReceives };
      a.close(); b.close();
      return r;
    };
    return { on: await run(true), off: await run(false) };
  },

  // Corked, nothing is sent, not even by the microtask that an uncorked send schedules;
  // uncork() sends it all at once. Replies sent from the handler go after the batch.
  async cork() {
    const got = [];
    const b = await UdpTransport.open(0, (data, from) => {
      got.push(data.length);
      if (data.length === 30) { b.send(data.subarray(0, 5), from); r.receivingInHandler = b.receiving; }
    });
    const replies = [];
    const a = await UdpTransport.open(0, (data) => replies.push(data.length));
    const to = { host: '127.0.0.1', port: b.port };
    const r = {};
    a.cork();
    a.send(new Uint8Array(10), to);
    a.send(new Uint8Array(20), to);
    await sleep(50);
    r.whileCorked = got.length;
    a.uncork();
    await until(() => got.length >= 2);
    a.send(new Uint8Array(30), to); // uncorked: sent at the end of this callback
    await until(() => replies.length >= 1);
    r.got = got;
    r.replies = replies;
    r.receivingOutside = b.receiving;
    a.close(); b.close();
    return r;
  },

  // The largest datagram arrives whole (a receive slot holds any, so any tunnel MTU
  // works); unroutable sends are counted.
  async limits() {
    const got = [];
    const b = await UdpTransport.open(0, (data) => got.push(data.length));
    const a = await UdpTransport.open(0, () => undefined);
    a.send(new Uint8Array(65507), { host: '127.0.0.1', port: b.port });
    a.send(new Uint8Array(100), { host: '127.0.0.1', port: b.port });
    a.send(new Uint8Array(100), { host: 'example.invalid', port: b.port });
    a.send(new Uint8Array(100), { host: '127.0.0.1', port: 0 });
    await until(() => got.length >= 2);
    await sleep(50);
    const r = { got, a: a.stats(), b: b.stats() };
    a.close(); b.close();
    return r;
  },

  // Ports: a fixed port, in use, rebind keeps the mark and the handler; close releases.
  async ports() {
    const seen = [];
    const t = await UdpTransport.open(0, (d, from) => seen.push(from.port));
    const port = t.port;
    let inUse;
    try { await UdpTransport.open(port, () => undefined); } catch (e) { inUse = e instanceof UdpError ? e.code : String(e); }
    let badPort;
    try { await UdpTransport.open(70000, () => undefined); } catch (e) { badPort = e.code; }
    t.setMark(0x1234);
    const other = await UdpTransport.open(0, () => undefined);
    const next = other.port; other.close();
    await t.rebind(next);
    const peer = await UdpTransport.open(0, () => undefined);
    peer.send(new Uint8Array(8), { host: '::1', port: next });
    await until(() => seen.length >= 1);
    const r = { rebound: t.port === next, fwmark: t.fwmark, inUse, badPort, seen: seen.length, fromPeer: seen[0] === peer.port };
    t.close(); peer.close();
    // The old and the new port are free again.
    const again = await UdpTransport.open(next, () => undefined);
    const again2 = await UdpTransport.open(port, () => undefined);
    again.close(); again2.close();
    r.reopened = true;
    return r;
  },
};

const name = process.argv[2];
try {
  const result = await scenarios[name]();
  console.log(JSON.stringify(result));
  // The sockets are closed: nothing keeps the loop alive, the process must exit by itself.
} catch (e) {
  console.log(JSON.stringify({ error: String(e), stack: e?.stack }));
  process.exitCode = 1;
}
`;

const dir = mkdtempSync(join(tmpdir(), 'burrow-udp-'));
const fixture = join(dir, 'udp-fixture.mts');
writeFileSync(fixture, FIXTURE);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function scenario(name: string): Promise<Json> {
  const ran = await runScenario('budp', [process.execPath, '--import', 'tsx', fixture, name], { timeoutMs: CHILD_TIMEOUT_MS });
  expect(ran.code, `the child exits by itself once closed\n${ran.stderr}`).toBe(0);
  return ran.result;
}

describe.skipIf(requireHost(['ip']))('UdpTransport (batched native sockets), in a network namespace', () => {
  it('carries datagrams both ways over IPv4 and IPv6, with endpoints as wg prints them', async () => {
    const r = await scenario('echo');
    expect(r.aPort).toBeGreaterThan(0);
    expect(r.got.map((g: Json) => g.text).sort()).toEqual(['mapped', 'one', 'three', 'two']);
    for (const g of r.got) {
      expect(g.port).toBe(r.aPort);
      expect(g.host).toBe(g.text === 'two' ? '::1' : '127.0.0.1');
    }
    expect(r.back.map((g: Json) => g.text).sort()).toEqual(['mapped', 'one', 'three', 'two']);
    for (const g of r.back) expect(g.port).toBe(r.bPort);
    expect(r.sameEndpoint).toBe(true);
    expect(r.stats).toEqual({ droppedSends: 0, unroutableSends: 0, failedSends: 0, truncatedReceives: 0, groReceives: expect.any(Number), clearedSources: 0, gsoSends: expect.any(Number) });
  });

  it('queues a burst beyond one sendmmsg, drops and counts what does not fit, and exits clean', async () => {
    const r = await scenario('burst');
    expect(r.sizeOk).toBe(true);
    expect(r.received).toBeGreaterThan(1000);
    expect(r.received + r.stats.droppedSends).toBeLessThanOrEqual(r.total);
    expect(r.stats.failedSends).toBe(0);
  });

  it('sends a run of datagrams with UDP GSO, each arriving whole and in order', async () => {
    const r = await scenario('gso');
    const toB = r.got.filter((g: Json) => g.other === undefined);
    expect(toB).toEqual([
      ...Array.from({ length: 10 }, (_, i) => ({ first: i, last: i, length: 1000 })),
      { first: 10, last: 10, length: 300 },
      { first: 11, last: 11, length: 300 },
      { first: 13, last: 13, length: 1000 },
    ]);
    expect(r.got.filter((g: Json) => g.other !== undefined)).toEqual([{ other: 1000 }]);
    expect(r.stats.gsoSends).toBe(1);
    expect(r.stats.failedSends).toBe(0);
  });

  it('sends GSO runs of several messages from a source address without the kernel refusing one', async () => {
    const r = await scenario('gsoSources');
    expect(r.got).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(r.stats.clearedSources).toBe(0);
    expect(r.stats.gsoSends).toBeGreaterThanOrEqual(2);
    expect(r.stats.failedSends).toBe(0);
  });

  it('receives a GSO run with UDP GRO as one, split back into its datagrams; the same without GRO', async () => {
    const r = await scenario('gro');
    const expected = [
      ...Array.from({ length: 10 }, (_, i) => ({ first: i, last: i, length: 1000, fromA: true })),
      { first: 10, last: 10, length: 300, fromA: true },
    ];
    expect(r.on.got).toEqual(expected);
    expect(r.on.gsoSends).toBe(1);
    expect(r.on.groReceives).toBe(1);
    expect(r.off.got).toEqual(expected);
    expect(r.off.groReceives).toBe(0);
  });

  it('holds sends while corked, sends them at uncork, and replies from the handler after its batch', async () => {
    const r = await scenario('cork');
    expect(r.whileCorked).toBe(0);
    expect(r.got).toEqual([10, 20, 30]);
    expect(r.replies).toEqual([5]);
    expect(r.receivingInHandler).toBe(true);
    expect(r.receivingOutside).toBe(false);
  });

  it('receives the largest IPv4 datagram whole, and drops and counts unroutable destinations', async () => {
    const r = await scenario('limits');
    expect(r.got).toEqual([65507, 100]);
    expect(r.b.truncatedReceives).toBe(0);
    expect(r.a.unroutableSends).toBe(2);
  });

  it('binds fixed ports, refuses one in use, rebinds keeping the mark, and frees ports on close', async () => {
    const r = await scenario('ports');
    expect(r.inUse).toBe('EADDRINUSE');
    expect(r.badPort).toBe('ERR_UDP_PORT');
    expect(r.rebound).toBe(true);
    expect(r.fwmark).toBe(0x1234);
    expect(r.fromPeer).toBe(true);
    expect(r.reopened).toBe(true);
  });
});
