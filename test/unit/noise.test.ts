// tunnel/noise.ts against the Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector from
// cacophony (shared/vectors/noise-ikpsk2-cacophony.json): both handshake messages, the
// handshake hash and the four transport messages after Split().
import { describe, expect, it } from 'vitest';
import { nobleAead, open, seal } from '../../crypto/aead.js';
import { nobleDh } from '../../crypto/x25519.js';
import { initialState, mixResponderStatic, readInitiation, readResponse, split, writeInitiation, writeResponse } from '../../tunnel/noise.js';
import { hex, loadVectors, toHex } from '../support/vectors.js';

type NoiseVector = {
  protocol_name: string; init_prologue: string; init_psks: string[]; init_static: string; init_ephemeral: string;
  init_remote_static: string; resp_static: string; resp_ephemeral: string; handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
};

const b = { dh: nobleDh, aead: nobleAead };

describe('Noise_IKpsk2 (cacophony vector)', () => {
  const v = loadVectors<NoiseVector>('noise-ikpsk2-cacophony.json').vectors[0]!;
  const iStatic = hex(v.init_static);
  const rStatic = hex(v.resp_static);
  const rStaticPub = nobleDh.publicKey(rStatic);
  const psk = hex(v.init_psks[0]!);
  const msgs = v.messages;

  it('the responder public key matches the vector', () => {
    expect(toHex(rStaticPub)).toBe(v.init_remote_static);
  });

  it('initiator writes message 1, responder reads it, byte for byte', () => {
    const base = mixResponderStatic(initialState(v.protocol_name, hex(v.init_prologue)), rStaticPub);
    const out = writeInitiation(b, base, { privateKey: iStatic, publicKey: nobleDh.publicKey(iStatic) }, rStaticPub,
      hex(v.init_ephemeral), hex(msgs[0]!.payload))!;
    expect(toHex(out.ephemeral) + toHex(out.encryptedStatic) + toHex(out.encryptedPayload)).toBe(msgs[0]!.ciphertext);

    const c = hex(msgs[0]!.ciphertext);
    const rbase = mixResponderStatic(initialState(v.protocol_name, hex(v.init_prologue)), rStaticPub);
    const read = readInitiation(b, rbase, rStatic,
      { ephemeral: c.subarray(0, 32), encryptedStatic: c.subarray(32, 80), encryptedPayload: c.subarray(80) },
      (rs) => nobleDh.sharedSecret(rStatic, rs));
    if (typeof read === 'string') throw new Error(read);
    expect(toHex(read.payload)).toBe(msgs[0]!.payload);
    expect(read.remoteStatic).toEqual(nobleDh.publicKey(iStatic));
    expect(read.state.hash).toEqual(out.state.hash);

    // Message 2 and the handshake hash
    const resp = writeResponse(b, read.state, read.remoteStatic, read.remoteEphemeral, hex(v.resp_ephemeral), psk, hex(msgs[1]!.payload))!;
    expect(toHex(resp.ephemeral) + toHex(resp.encryptedPayload)).toBe(msgs[1]!.ciphertext);
    expect(toHex(resp.state.hash)).toBe(v.handshake_hash);

    const c2 = hex(msgs[1]!.ciphertext);
    const done = readResponse(b, out.state, iStatic, hex(v.init_ephemeral), psk, { ephemeral: c2.subarray(0, 32), encryptedPayload: c2.subarray(32) });
    if (typeof done === 'string') throw new Error(done);
    expect(toHex(done.payload)).toBe(msgs[1]!.payload);
    expect(toHex(done.state.hash)).toBe(v.handshake_hash);

    // Transport: even messages initiator -> responder under the first key, odd the reverse.
    const [i2r, r2i] = split(done.state);
    const [ri2r, rr2i] = split(resp.state);
    expect(ri2r).toEqual(i2r);
    expect(rr2i).toEqual(r2i);
    const counters = [0, 0];
    for (const m of msgs.slice(2)) {
      const dir = msgs.indexOf(m) % 2;
      const key = dir === 0 ? i2r : r2i;
      const n = counters[dir]!++;
      expect(toHex(seal(nobleAead, key, n, hex(m.payload), new Uint8Array(0)))).toBe(m.ciphertext);
      expect(toHex(open(nobleAead, key, n, hex(m.ciphertext), new Uint8Array(0))!)).toBe(m.payload);
    }
  });

  it('refuses a tampered message 1 and a wrong psk on message 2', () => {
    const rbase = mixResponderStatic(initialState(v.protocol_name, hex(v.init_prologue)), rStaticPub);
    const c = hex(msgs[0]!.ciphertext);
    const fields = (x: Uint8Array) => ({ ephemeral: x.subarray(0, 32), encryptedStatic: x.subarray(32, 80), encryptedPayload: x.subarray(80) });
    const ss = (rs: Uint8Array) => nobleDh.sharedSecret(rStatic, rs);
    for (const [at, expected] of [[5, 'bad-static-tag'], [40, 'bad-static-tag'], [90, 'bad-payload-tag']] as const) {
      const t = c.slice();
      t[at]! ^= 1;
      expect(readInitiation(b, rbase, rStatic, fields(t), ss)).toBe(expected);
    }
    expect(readInitiation(b, rbase, rStatic, fields(c), () => undefined)).toBe('unknown-peer');

    const base = mixResponderStatic(initialState(v.protocol_name, hex(v.init_prologue)), rStaticPub);
    const out = writeInitiation(b, base, { privateKey: iStatic, publicKey: nobleDh.publicKey(iStatic) }, rStaticPub, hex(v.init_ephemeral), hex(msgs[0]!.payload))!;
    const c2 = hex(msgs[1]!.ciphertext);
    const wrongPsk = psk.slice();
    wrongPsk[0]! ^= 1;
    expect(readResponse(b, out.state, iStatic, hex(v.init_ephemeral), wrongPsk, { ephemeral: c2.subarray(0, 32), encryptedPayload: c2.subarray(32) })).toBe('bad-payload-tag');
  });
});
