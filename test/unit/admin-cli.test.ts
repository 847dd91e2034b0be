// The admin commands as a person runs them, without a running server: admin-password
// (from standard input, never argv; hash 0600; too short refused), metrics-token, and
// `server up --admin` refusing a non-loopback address without TLS or --insecure before
// anything else (exit 2, saying how to do it right).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey } from '../../crypto/keys.js';
import { verifyPassword } from '../../server/admin/password.js';
import { CLI, cliBuilt } from '../support/burrow.js';

function burrow(args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

describe('burrow server admin commands', () => {
  cliBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'burrow-admin-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'wg7.conf');
  writeFileSync(conf, ['[Interface]', '# burrow-server: endpoint=vpn.example.net:51820', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.7.0.1/24', ''].join('\n'), { mode: 0o600 });

  it('admin-password reads one line of standard input and stores only its scrypt hash, 0600', async () => {
    const short = await burrow(['server', 'admin-password', '--config', conf], 'short\n');
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('too short: at least 10 characters');
    const r = await burrow(['server', 'admin-password', '--config', conf], 'a good long password\nignored\n');
    expect(r.code, r.stderr).toBe(0);
    const file = join(dir, 'wg7.admin-password');
    expect(r.stdout).toBe(`admin password set (${file}, 0600)\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const hash = readFileSync(file, 'utf8');
    expect(hash).not.toContain('good long');
    expect(await verifyPassword('a good long password', hash)).toBe(true);
    expect(await verifyPassword('ignored', hash)).toBe(false);
  });

  it('metrics-token writes a 0600 token once, and a new one with --rotate', async () => {
    const file = join(dir, 'wg7.metrics-token');
    expect((await burrow(['server', 'metrics-token', '--config', conf])).stdout).toBe(`metrics token written to ${file} (0600)\n`);
    const first = readFileSync(file, 'utf8');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await burrow(['server', 'metrics-token', '--config', conf])).stdout).toBe(`the metrics token is in ${file} (0600)\n`);
    expect(readFileSync(file, 'utf8')).toBe(first);
    await burrow(['server', 'metrics-token', '--config', conf, '--rotate']);
    expect(readFileSync(file, 'utf8')).not.toBe(first);
  });

  it('up --admin on a non-loopback address without TLS or --insecure exits 2 and says what to do', async () => {
    const r = await burrow(['server', 'up', '--config', conf, '--admin', '0.0.0.0:51821']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--admin 0.0.0.0:51821: not a loopback address, and no TLS');
    expect(r.stderr).toContain('--insecure');
    const half = await burrow(['server', 'up', '--config', conf, '--admin', '0.0.0.0:51821', '--admin-tls-cert', '/nonexistent.pem']);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('both a certificate and a key file');
    // The registry's admin= is checked the same way.
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('endpoint=vpn.example.net:51820', 'endpoint=vpn.example.net:51820 admin=192.0.2.1:8443'), { mode: 0o600 });
    const fromFile = await burrow(['server', 'up', '--config', conf]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toContain('--admin 192.0.2.1:8443: not a loopback address');
  });
});
