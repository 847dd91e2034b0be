// The typed binding in src/runtime/addon.ts against the built addon: every export the
// interface names is there and is a function (a class or a plain function), and the
// addon exports nothing the binding does not know.
import { describe, expect, it } from 'vitest';
import { addonPath, loadAddon, type NativeAddon } from '../../src/runtime/addon.js';

const EXPORTS = {
  TunFd: true, open: true, ifName: true, setSocketMark: true, UdpSocket: true, formatAddress: true, parseAddress: true, ifNameToIndex: true, hardenProcess: true,
  aeadSeal: true, aeadOpen: true, checksumChunks: true,
} satisfies Record<keyof NativeAddon, true>;

describe.skipIf(addonPath() === undefined)('the addon binding', () => {
  it('names exactly what the addon exports', () => {
    const addon = loadAddon() as unknown as Record<string, unknown>;
    expect(Object.keys(addon).sort()).toEqual(Object.keys(EXPORTS).sort());
    for (const name of Object.keys(EXPORTS)) expect(typeof addon[name]).toBe('function');
    expect(loadAddon()).toBe(addon); // loaded once
  });

  it('formats and parses addresses as udp.ts relies on', () => {
    const addon = loadAddon();
    const out = new Uint8Array(24);
    expect(addon.parseAddress('2001:db8::1', out)).toBe(6);
    expect(addon.formatAddress(out.subarray(0, 16))).toBe('2001:db8::1');
    expect(addon.parseAddress('192.0.2.7', out)).toBe(4);
    expect(addon.parseAddress('not an address', out)).toBe(0);
  });
});
