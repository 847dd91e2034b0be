// Randomness from the platform's CSPRNG (Web Crypto `getRandomValues`): present in Node,
// JavaScriptCore and browsers, so crypto/ needs no `node:` import.

export type RandomSource = (out: Uint8Array) => Uint8Array;

const MAX_CHUNK = 65536; // getRandomValues refuses more than 64 KiB per call.

export const systemRandom: RandomSource = (out) => {
  for (let off = 0; off < out.length; off += MAX_CHUNK) {
    globalThis.crypto.getRandomValues(out.subarray(off, Math.min(out.length, off + MAX_CHUNK)));
  }
  return out;
};

export function randomBytes(length: number, source: RandomSource = systemRandom): Uint8Array {
  return source(new Uint8Array(length));
}
