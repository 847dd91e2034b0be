// Lines out of the control socket's byte stream. The framer knows nothing of requests:
// the reader (protocol.ts) says how long the next line may be, and the framer refuses a
// longer one as soon as that many bytes have arrived without a "\n", so that a client
// cannot make the server hold more than one line of its text.
//
// Lines may carry private keys: the framer keeps its own copy of what arrived and wipes
// each byte once its line has been handed out, and everything on wipe().

import type { UapiFatal, UapiReader, UapiRequest } from './protocol.js';

const NEWLINE = 0x0a;
const EMPTY = new Uint8Array(0);

/** What nextLine found: a whole line (latin1 text, one character per byte, no "\n"), or a line past its bound. */
export type FramedLine = { readonly kind: 'line'; readonly text: string } | { readonly kind: 'too-long' };

export class UapiLineFramer {
  /** Our own copy of what arrived; [pos, length) is not handed out yet. */
  private input: Uint8Array = EMPTY;
  private pos = 0;

  /** Adds bytes (copied: the caller may wipe or reuse `chunk`); then call nextLine() until undefined. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const rest = this.input.length - this.pos;
    const next = new Uint8Array(rest + chunk.length);
    next.set(this.input.subarray(this.pos));
    next.set(chunk, rest);
    this.input.fill(0);
    this.input = next;
    this.pos = 0;
  }

  /** Bytes that arrived and are not handed out yet: a line in progress. */
  get pending(): number {
    return this.input.length - this.pos;
  }

  /**
   * The next whole line if it is at most `maxBytes` long with its "\n"; too-long as soon
   * as it is known to be longer; undefined while its end has not arrived.
   */
  nextLine(maxBytes: number): FramedLine | undefined {
    const { input, pos } = this;
    const nl = input.indexOf(NEWLINE, pos);
    if (nl < 0) return input.length - pos >= maxBytes ? { kind: 'too-long' } : undefined;
    if (nl + 1 - pos > maxBytes) return { kind: 'too-long' };
    let text = '';
    // Chunks of a few thousand characters: String.fromCharCode takes them as arguments.
    for (let at = pos; at < nl; at += 4096) text += String.fromCharCode(...input.subarray(at, Math.min(nl, at + 4096)));
    input.fill(0, pos, nl + 1);
    this.pos = nl + 1;
    if (this.pos === input.length) {
      this.input = EMPTY;
      this.pos = 0;
    }
    return { kind: 'line', text };
  }

  /** Forgets and wipes everything not handed out yet. */
  wipe(): void {
    this.input.fill(0);
    this.input = EMPTY;
    this.pos = 0;
  }
}

/**
 * Feeds the framer's whole lines to the reader, each within the bound the reader sets,
 * until a request is whole (returned), the stream is refused (fatal), or more bytes are
 * needed (undefined).
 */
export function nextRequest(framer: UapiLineFramer, reader: UapiReader): UapiRequest | UapiFatal | undefined {
  while (!reader.failed) {
    const line = framer.nextLine(reader.lineLimit());
    if (line === undefined) return undefined;
    const result = line.kind === 'too-long' ? reader.lineTooLong() : reader.push(line.text);
    if (result !== undefined) return result;
  }
  return undefined;
}
