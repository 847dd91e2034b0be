// The JavaScriptCore driver in Node: what a host sees. The native X25519 seam (CryptoKit
// on a Mac) is used for the keys and the handshake when the host gives one.
import { describe, expect, it } from 'vitest';
import { encodeKey, publicKeyOf } from '../../crypto/keys.js';
import { nobleDh } from '../../crypto/x25519.js';
import { hostDh, start, packets, stop, status, timer } from '../../src/apple/driver.js';

const PRIV = 'IKvLucxkTD1m+b8WzTsC8SukysAMeZGrJWWU5A21LmY=';
const PEER = 'GwOZL0s2n24h1QiONJKV6a3hfUzoYtL9+k49nX/VCXo=';
const CONF = `[Interface]\nPrivateKey = ${PRIV}\nAddress = 10.5.0.2/24\n\n[Peer]\nPublicKey = ${PEER}\nAllowedIPs = 10.5.0.0/24\nEndpoint = 192.0.2.9:51820\n`;

describe('the JavaScriptCore driver', () => {
  it('a packet for the peer starts a handshake through the host: x25519, random, send to the endpoint, a timer armed', () => {
    let dhCalls = 0;
    const sent: { length: number; host: string; port: number }[] = [];
    const armed: number[] = [];
    const host = {
      random: (b: Uint8Array) => { for (let i = 0; i < b.length; i++) b[i] = (i * 13 + 5) & 255; },
      x25519: (k: Uint8Array, p: Uint8Array, out: Uint8Array) => {
        dhCalls++;
        const r = nobleDh.sharedSecret(k, p);
        if (r === null) return false;
        out.set(r);
        return true;
      },
      send: (d: Uint8Array, h: string, port: number) => { sent.push({ length: d.length, host: h, port }); },
      write: () => undefined,
      arm: (ms: number) => { armed.push(ms); },
    };
    const started = JSON.parse(start(CONF, '', host)) as { publicKey: string; dh: string; slotSize: number };
    expect(started.dh).toBe('host');
    expect(started.publicKey).toBe(encodeKey(publicKeyOf(Buffer.from(PRIV, 'base64'))));
    const slot = started.slotSize;
    const arena = new Uint8Array(slot * 2);
    const p = arena.subarray(16, 16 + 28);
    p.set([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 5, 0, 2, 10, 5, 0, 1]);
    packets(arena, Int32Array.of(28, 0), 1, slot, 1000);
    expect(sent).toEqual([{ length: 148, host: '192.0.2.9', port: 51820 }]); // a handshake initiation
    expect(dhCalls).toBeGreaterThanOrEqual(3); // public key, ephemeral public, es, ss
    expect(armed.at(-1)).toBeGreaterThan(0);
    timer(1000 + 60_000);
    const [peer] = JSON.parse(status(1000 + 60_000)) as { publicKey: string; allowedIPs: string[] }[];
    expect(peer).toMatchObject({ publicKey: PEER, allowedIPs: ['10.5.0.0/24'] });
    stop();
  });

  it('hostDh refuses an all-zero shared secret as the engine requires', () => {
    const dh = hostDh((_k, _p, out) => { out.fill(0); return true; }, (b) => b);
    expect(dh.sharedSecret(new Uint8Array(32), new Uint8Array(32))).toBeNull();
  });
});
