// An Aead that wraps a real one and reports every transport seal and successful open to
// the simulator, which injects it through DeviceOptions.aead. Transport messages are the
// calls with an empty associated-data string (handshake AEAD calls carry the Noise hash).
// The hooks see the plaintext: before sealing it, after opening it.

import type { Aead } from '../../crypto/aead.js';

export interface AeadHooks {
  sealed(key: Uint8Array, counter: number, plaintext: Uint8Array): void;
  opened(key: Uint8Array, counter: number, plaintext: Uint8Array): void;
}

export function instrumentedAead(base: Aead, hooks: AeadHooks): Aead {
  return {
    name: `instrumented ${base.name}`,
    seal(key, counter, plaintext, aad, out) {
      if (aad.length === 0) hooks.sealed(key, counter, plaintext);
      return base.seal(key, counter, plaintext, aad, out);
    },
    open(key, counter, sealed, aad, out) {
      const ok = base.open(key, counter, sealed, aad, out);
      if (ok && aad.length === 0) hooks.opened(key, counter, out);
      return ok;
    },
  };
}
