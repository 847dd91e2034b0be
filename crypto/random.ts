// Randomness from the platform's CSPRNG (Web Crypto `getRandomValues`): present in Node
// and browsers, so crypto/ needs no `node:` import. It is only the default: a bare
// JavaScriptCore context has no `crypto` (Debian's `jsc` has none either), so every user
// of randomness in crypto/ and tunnel/ takes a RandomSource, and the JSC driver
// (src/apple/driver.ts) passes the host's (getrandom(2), SecRandomCopyBytes).

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
