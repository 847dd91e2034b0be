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
