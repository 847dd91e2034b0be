import { describe, expect, it } from 'vitest';
import { INITIATION_LENGTH, RESPONSE_LENGTH } from '../../tunnel/constants.js';
import { HANDSHAKE_QUEUE_LENGTH, HandshakeQueue } from '../../tunnel/handshakequeue.js';

const message = (n: number, length = INITIATION_LENGTH) => new Uint8Array(length).fill(n);
const from = (n: number) => ({ host: `198.51.100.${n}`, port: 1000 + n });

describe('HandshakeQueue', () => {
  it('keeps copies in arrival order, with their senders, around the ring', () => {
    const q = new HandshakeQueue(3);
    const taken: number[] = [];
    for (let n = 1; n <= 7; n++) {
      const m = message(n, n % 2 === 0 ? RESPONSE_LENGTH : INITIATION_LENGTH);
      expect(q.push(m, from(n))).toBe(true);
      m.fill(0); // the caller's buffer is reused at once: the queue holds a copy
      if (q.length === 2) {
        const front = q.front()!;
        expect(front.length).toBe(front[0]! % 2 === 0 ? RESPONSE_LENGTH : INITIATION_LENGTH);
        expect(front.every((b) => b === front[0])).toBe(true);
        expect(q.frontSender()).toEqual(from(front[0]!));
        taken.push(front[0]!);
        q.pop();
      }
    }
    while (q.length > 0) {
      taken.push(q.front()![0]!);
      q.pop();
    }
    expect(taken).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(q.front()).toBeUndefined();
    expect(q.frontSender()).toBeUndefined();
  });

  it('is bounded: a push to a full queue is refused and changes nothing', () => {
    const q = new HandshakeQueue();
    expect(q.capacity).toBe(HANDSHAKE_QUEUE_LENGTH);
    for (let n = 0; n < HANDSHAKE_QUEUE_LENGTH; n++) expect(q.push(message(n & 0xff), from(n & 0xff))).toBe(true);
    expect(q.push(message(9), from(9))).toBe(false);
    expect(q.length).toBe(HANDSHAKE_QUEUE_LENGTH);
    expect(q.front()![0]).toBe(0);
    q.pop();
    expect(q.push(message(9), from(9))).toBe(true);
  });

  it('refuses what is not a handshake message by length, and a capacity that is not a positive integer', () => {
    expect(() => new HandshakeQueue().push(new Uint8Array(INITIATION_LENGTH + 1), from(1))).toThrow(RangeError);
    expect(() => new HandshakeQueue(0)).toThrow(RangeError);
    expect(() => new HandshakeQueue(1.5)).toThrow(RangeError);
  });
});
