// ChaCha20-Poly1305 in the native addon, on the OpenSSL that Node links
// (native/src/aead.cc): sealed and opened in place, with no cipher object, no Buffer and
// no tag copy per packet, which node:crypto's createCipheriv makes (bench/crypto.ts
// measures the three backends). The core never imports this; the Node runtime injects
// it where the addon is built, node:crypto otherwise.
import { type Aead, KEY_LENGTH, TAG_LENGTH } from '../../crypto/aead.js';
import { checkBytes, checkCounter } from '../../crypto/errors.js';
import { loadAddon } from './addon.js';

export function createAddonAead(): Aead {
  const native = loadAddon();
  return {
    name: 'addon (OpenSSL)',
    seal(key, counter, plaintext, aad, out) {
      checkBytes('key', key, KEY_LENGTH);
      checkCounter('counter', counter);
      checkBytes('plaintext', plaintext);
      checkBytes('aad', aad);
      checkBytes('out', out, plaintext.length + TAG_LENGTH);
      native.aeadSeal(key, counter, plaintext, aad, out);
      return out;
    },
    open(key, counter, sealed, aad, out) {
      checkBytes('sealed', sealed);
      if (sealed.length < TAG_LENGTH) return false;
      checkBytes('key', key, KEY_LENGTH);
      checkCounter('counter', counter);
      checkBytes('aad', aad);
      checkBytes('out', out, sealed.length - TAG_LENGTH);
      return native.aeadOpen(key, counter, sealed, aad, out);
    },
  };
}
