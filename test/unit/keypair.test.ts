// KeypairSlots: the kernel's add_new_keypair and received_with_keypair, each returning
// what it pushed out of the slots (the caller wipes those and frees their indices).
import { describe, expect, it } from 'vitest';
import { Keypair, KeypairSlots } from '../../tunnel/keypair.js';

let nextIndex = 1;
const kp = (isInitiator: boolean) => new Keypair({
  sendKey: new Uint8Array(32), receiveKey: new Uint8Array(32), localIndex: nextIndex++, remoteIndex: 0, isInitiator,
}, 0);

describe('KeypairSlots', () => {
  it('an initiator\'s keypair becomes current at once; the one before becomes previous', () => {
    const s = new KeypairSlots();
    const k1 = kp(true);
    expect(s.install(k1)).toEqual([]);
    const k2 = kp(true);
    expect(s.install(k2)).toEqual([]);
    expect([s.current, s.previous, s.next]).toEqual([k2, k1, undefined]);
    const k3 = kp(true);
    expect(s.install(k3)).toEqual([k1]);
    expect([s.current, s.previous, s.next]).toEqual([k3, k2, undefined]);
  });

  it('a responder\'s keypair waits in next, and the first packet on it confirms it', () => {
    const s = new KeypairSlots();
    const c = kp(true);
    s.install(c);
    const p = kp(true);
    s.install(p); // current p, previous c
    const n = kp(false);
    expect(s.install(n)).toEqual([c]); // previous is dropped: next takes its place on the wire
    expect([s.current, s.previous, s.next]).toEqual([p, undefined, n]);
    expect(s.confirm(p)).toBeNull(); // not next: nothing moves
    expect(s.confirm(n)).toEqual([]);
    expect([s.current, s.previous, s.next]).toEqual([n, p, undefined]);
  });

  it('a newer responder keypair replaces an unconfirmed next', () => {
    const s = new KeypairSlots();
    const n1 = kp(false);
    const n2 = kp(false);
    s.install(n1);
    expect(s.install(n2)).toEqual([n1]);
    expect(s.next).toBe(n2);
  });

  it('an initiator\'s keypair over an unconfirmed next keeps next as previous and retires current', () => {
    const s = new KeypairSlots();
    const c = kp(true);
    s.install(c);
    const n = kp(false);
    s.install(n);
    const i = kp(true);
    expect(s.install(i)).toEqual([c]);
    expect([s.current, s.previous, s.next]).toEqual([i, n, undefined]);
  });

  it('clear returns everything that was held', () => {
    const s = new KeypairSlots();
    const a = kp(true);
    const b = kp(true);
    const n = kp(false);
    s.install(a);
    s.install(b);
    s.install(n);
    expect(new Set(s.clear())).toEqual(new Set([b, n]));
    expect([s.current, s.previous, s.next]).toEqual([undefined, undefined, undefined]);
  });
});
