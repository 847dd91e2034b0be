// The CLI's pure parts: keys byte-identical to wg's, interface names, show's formatting.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ifnameFromConfigPath } from '../../src/cli/daemon.js';
import { CliError } from '../../src/cli/errors.js';
import { genkey, genpsk, pubkey } from '../../src/cli/keys.js';
import { ago, bytes } from '../../src/cli/show.js';
import { requireHost } from '../support/privileges.js';



describe('genkey / pubkey / genpsk', () => {
  it('print a 44-character key and a newline', () => {
    for (const out of [genkey(), genpsk()]) expect(out).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
  });
  it.skipIf(requireHost(['wg']))('pubkey is byte-identical to wg pubkey, with or without a trailing newline', () => {
    for (let i = 0; i < 5; i++) {
      const priv = genkey();
      const theirs = execFileSync('wg', ['pubkey'], { input: priv }).toString();
      expect(pubkey(priv)).toBe(theirs);
      expect(pubkey(priv.trim())).toBe(theirs);
      // and wg accepts our genkey output, and our pubkey reads wg genkey's
      const wgPriv = execFileSync('wg', ['genkey']).toString();
      expect(pubkey(wgPriv)).toBe(execFileSync('wg', ['pubkey'], { input: wgPriv }).toString());
    }
  });
  it('pubkey refuses a malformed key with exit code 2 and does not echo it', () => {
    let err: unknown;
    try { pubkey('AAAA\n'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as Error).message).not.toContain('AAAA');
  });
});

describe('interface names from configuration files (wg-quick rule)', () => {
  it('names the interface after the file', () => {
    expect(ifnameFromConfigPath('/etc/wireguard/wg0.conf')).toBe('wg0');
    expect(ifnameFromConfigPath('work-vpn.conf')).toBe('work-vpn');
  });
  it('refuses names the kernel would refuse', () => {
    for (const bad of ['/tmp/this-name-is-too-long.conf', '/tmp/sp ace.conf', '/tmp/.conf', '/tmp/a:b.conf']) {
      expect(() => ifnameFromConfigPath(bad)).toThrow(CliError);
    }
  });
});

describe('show formatting (as wg show)', () => {
  it('formats ages and byte counts', () => {
    expect(ago(1000, 1000)).toBe('Now');
    expect(ago(1000, 1065)).toBe('1 minute, 5 seconds ago');
    expect(ago(0, 2 * 86400 + 3600 + 1)).toBe('2 days, 1 hour, 1 second ago');
    expect(bytes(1023)).toBe('1023 B');
    expect(bytes(1536)).toBe('1.50 KiB');
    expect(bytes(5 * 1024 * 1024)).toBe('5.00 MiB');
  });
});
