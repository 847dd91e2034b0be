// UdpTransport's argument checks, which run in TypeScript before any socket exists
// (test/netns/udp.test.ts moves real datagrams, inside a namespace).
import { describe, expect, it } from 'vitest';
import { UdpError, UdpTransport } from '../../src/runtime/udp.js';

const bad = <T>(v: unknown): T => v as T;

async function codeOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    return e instanceof UdpError ? e.code : `not a UdpError: ${String(e)}`;
  }
  return 'did not throw';
}

describe('UdpTransport arguments', () => {
  it('refuses listen ports outside 0..65535 and non-integers', async () => {
    for (const port of [-1, 65536, 1.5, NaN, bad<number>('51820')]) {
      expect(await codeOf(() => UdpTransport.open(port, () => undefined))).toBe('ERR_UDP_PORT');
    }
  });

  it('refuses a handler that is not a function', async () => {
    expect(await codeOf(() => UdpTransport.open(0, bad(undefined)))).toBe('ERR_UDP_HANDLER');
  });

  it('refuses a turn handler that is not a function', async () => {
    expect(await codeOf(() => UdpTransport.open(0, () => undefined, bad(42)))).toBe('ERR_UDP_HANDLER');
  });
});
