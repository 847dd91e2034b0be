// crypto/: the primitives WireGuard uses, on @noble/* only. No `node:` imports: this
// folder runs unchanged under Node, JavaScriptCore or a browser.
export * from './aead.js';
export { XNONCE_LENGTH, xopen, xseal } from './xaead.js';
export * from './blake2s.js';
export { clamp, type Dh, nobleDh } from './x25519.js';
export * from './tai64n.js';
export * from './keys.js';
export * from './ct.js';
export * from './random.js';
export { checkBytes } from './errors.js';
