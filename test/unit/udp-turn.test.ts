// UdpTransport marks each readable event as one turn (the engine's handshake budget is
// per turn), before the turn's datagrams. On loopback only.
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { UdpTransport } from '../../src/runtime/udp.js';

describe('UdpTransport turns', () => {
  it('calls onTurn once per readable event, before that event\'s datagrams', async () => {
    const log: string[] = [];
    let received = 0;
    const udp = await UdpTransport.open(0, () => { log.push('d'); received++; }, () => log.push('T'));
    const sender = createSocket('udp4');
    try {
      for (let i = 0; i < 5; i++) sender.send(new Uint8Array(32), udp.port, '127.0.0.1');
      const deadline = Date.now() + 3000;
      while (received < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(received).toBe(5);
      expect(log[0]).toBe('T');
      const turns = log.filter((x) => x === 'T').length;
      expect(turns).toBeGreaterThanOrEqual(1);
      expect(turns).toBeLessThanOrEqual(5);
    } finally {
      sender.close();
      udp.close();
    }
  });
});

describe('UdpTransport batch ends', () => {
  it('calls onBatchEnd after each recvmmsg batch, while the views it handed out still hold their datagrams', async () => {
    const COUNT = 200; // more than three batches of 64, all queued before the receiver reads
    const held: { view: Uint8Array; seq: number }[] = [];
    const batches: number[] = [];
    let intact = true;
    let received = 0;
    // One datagram per recvmmsg slot: with UDP GRO a slot holds a run, and a batch more than 64.
    const gro = process.env.BURROW_UDP_GRO;
    process.env.BURROW_UDP_GRO = '0';
    const udp = await UdpTransport.open(0, (data) => {
      held.push({ view: data, seq: new DataView(data.buffer, data.byteOffset).getUint32(0) });
      received++;
    }, undefined, () => {
      for (const h of held) if (new DataView(h.view.buffer, h.view.byteOffset).getUint32(0) !== h.seq) intact = false;
      batches.push(held.length);
      held.length = 0;
    });
    if (gro === undefined) delete process.env.BURROW_UDP_GRO;
    else process.env.BURROW_UDP_GRO = gro;
    const sender = await UdpTransport.open(0, () => undefined);
    try {
      // send() flushes every 64 with one synchronous sendmmsg: all 200 are in the
      // receiver's socket buffer before this turn of the loop ends.
      const to = { host: '127.0.0.1', port: udp.port };
      for (let i = 0; i < COUNT; i++) {
        const d = new Uint8Array(64);
        new DataView(d.buffer).setUint32(0, i);
        sender.send(d, to);
      }
      const deadline = Date.now() + 5000;
      while (received < COUNT && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(received).toBe(COUNT);
      expect(intact).toBe(true);
      expect(held).toHaveLength(0); // every batch was ended
      expect(batches.reduce((a, b) => a + b, 0)).toBe(COUNT);
      expect(Math.max(...batches)).toBeLessThanOrEqual(64);
    } finally {
      sender.close();
      udp.close();
    }
  });
});
