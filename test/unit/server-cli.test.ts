// `burrow server` as a person runs it, without a running server: init, add-peer and
// client-config (the QR code decodes back to the exact configuration, with Debian's
// zbarimg), exit codes and messages for bad input, and a damaged registry that stops
// `up` before anything changes.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { journalPath } from '../../src/runtime/journal.js';
import { parseConfig } from '../../src/config/index.js';
import { CLI, cliBuilt } from '../support/burrow.js';
import { hostSkipReason } from '../support/privileges.js';

function burrow(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

const decode = (file: string): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile('zbarimg', ['--raw', '-q', '-Sbinary', file], { encoding: 'utf8' }, (error, stdout) => (error === null ? resolve(stdout) : reject(error)));
  });

describe('burrow server, offline', () => {
  cliBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'burrow-server-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ifname = `bsc${process.pid.toString(36)}`.slice(0, 15);
  const conf = join(dir, `${ifname}.conf`);

  it('init writes a 0600 registry with fresh keys, the given subnets and endpoint, and never overwrites it', async () => {
    const r = await burrow(['server', 'init', '--dir', dir, '-i', ifname, '--endpoint', 'vpn.example.net', '--subnet', '10.66.0.0/24', '--subnet6', 'fd66:66::/64']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('next:');
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    const text = readFileSync(conf, 'utf8');
    expect(text).toContain('# burrow-server: endpoint=vpn.example.net:51820 client-to-client=false');
    expect(parseConfig(text, conf).interface.addresses.map((a) => a.text)).toEqual(['10.66.0.1/24', 'fd66:66::1/64']);
    const again = await burrow(['server', 'init', '--dir', dir, '-i', ifname]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists already');
    expect(readFileSync(conf, 'utf8')).toBe(text);
  });

  it.skipIf(hostSkipReason(['zbarimg']) !== undefined)('client-config --png: the QR code decodes to exactly the printed configuration', async () => {
    const add = await burrow(['server', 'add-peer', 'phone', '--config', conf]);
    expect(add.code, add.stderr).toBe(0);
    const png = join(dir, 'phone.png');
    const shown = await burrow(['server', 'client-config', 'phone', '--config', conf, '--png', png]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toBe(add.stdout);
    expect(statSync(png).mode & 0o777).toBe(0o600);
    expect(await decode(png)).toBe(`${shown.stdout}`);
    const qr = await burrow(['server', 'client-config', 'phone', '--config', conf, '--qr']);
    expect(qr.stdout.startsWith(shown.stdout)).toBe(true);
    expect(qr.stdout.length).toBeGreaterThan(shown.stdout.length + 500); // the terminal drawing follows
  });

  it('bad input exits 2 and says what is wrong', async () => {
    const cases: [string[], string][] = [
      [['server', 'add-peer', 'bad name'], 'a peer name is 1 to 63'],
      [['server', 'add-peer', 'phone'], "a peer named 'phone' exists already"],
      [['server', 'add-peer', 'tab', '--public-key', 'nope'], '--public-key'],
      [['server', 'add-peer', 'tab', '--expires', 'next week'], '--expires "next week": expected a date'],
      [['server', 'disable', 'nobody'], "no peer named 'nobody'"],
      [['server', 'client-config', 'nobody'], "no peer named 'nobody'"],
    ];
    for (const [args, message] of cases) {
      const r = await burrow([...args, '--config', conf]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
    const missing = await burrow(['server', 'list-peers', '--config', join(dir, 'nothere.conf')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file (make one with burrow server init)');
  });

  it('list-peers --json gives every field for scripts', async () => {
    const r = await burrow(['server', 'list-peers', '--json', '--config', conf]);
    const list = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(list).toHaveLength(1);
    expect(Object.keys(list[0]!).sort()).toEqual(['addresses', 'created', 'enabled', 'endpoint', 'expires', 'lastHandshake', 'name', 'overQuota', 'publicKey', 'quota', 'rxBytes', 'txBytes'].sort());
    expect(list[0]).toMatchObject({ name: 'phone', addresses: ['10.66.0.2/32', 'fd66:66::2/128'], enabled: true, endpoint: null, lastHandshake: null });
  });

  it('a damaged registry stops up with FILE:LINE before anything changes', async () => {
    const text = readFileSync(conf, 'utf8');
    const broken = text.replace(/rx=0/, 'rx=lots');
    writeFileSync(conf, broken, { mode: 0o600 });
    const line = broken.split('\n').findIndex((l) => l.includes('rx=lots')) + 1;
    const r = await burrow(['server', 'up', '--config', conf]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${conf}:${line}: rx: expected a count of bytes`);
    expect(existsSync(journalPath(ifname))).toBe(false);
    expect(readFileSync(conf, 'utf8')).toBe(broken);
    writeFileSync(conf, text, { mode: 0o600 });
  });
});
