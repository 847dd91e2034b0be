// The control socket against the real wireguard-tools: `wg show`, `wg showconf` and
// `wg set` talk to a UapiServer in front of a real Device, exactly as they talk to
// wireguard-go. wg runs in the host namespace: the socket is a unix socket under
// /var/run/wireguard (shared by every namespace, hence a unique interface name), so no
// packet goes anywhere.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import { nobleDh } from '../../crypto/x25519.js';
import { Device } from '../../tunnel/device.js';
import { parseConfig } from '../../src/config/parse.js';
import { formatIpv4, formatIpv6 } from '../../src/config/ip.js';
import { MAX_CONNECTIONS, type UapiBackend, UapiServer } from '../../src/runtime/uapi.js';
import { NetnsCommandError, run, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';

const SOCKET_DIR = '/var/run/wireguard';
const BUSY_PORT = 1;

const genkey = (): Uint8Array => nobleDh.generatePrivateKey();
const pubOf = (k: Uint8Array): Uint8Array => nobleDh.publicKey(k);
const b64 = (k: Uint8Array): string => encodeKey(k);

/** The runtime's part, in memory: a port that can be "in use", a mark. */
class StubRuntime implements UapiBackend {
  port = 0;
  mark = 0;
  constructor(readonly device: Device) {}
  now(): number {
    return performance.now();
  }
  listenPort(): number {
    return this.port;
  }
  async setListenPort(port: number): Promise<void> {
    if (port === BUSY_PORT) throw Object.assign(new Error(`UDP port ${port} is in use`), { code: 'EADDRINUSE' });
    this.port = port === 0 ? 43_210 : port;
  }
  fwmark(): number {
    return this.mark;
  }
  async setFwmark(mark: number): Promise<void> {
    this.mark = mark;
  }
}

/** `wg ARGS`; on failure, the exit status and what wg printed. */
async function wg(...args: string[]): Promise<string> {
  return run('wg', args, { timeoutMs: 30_000 });
}

async function wgFails(...args: string[]): Promise<string> {
  try {
    await wg(...args);
  } catch (error) {
    if (error instanceof NetnsCommandError) return error.stderr;
    throw error;
  }
  throw new Error(`wg ${args.join(' ')} succeeded; expected it to fail`);
}

const prefixText = (p: { address: Uint8Array; cidr: number }): string =>
  `${p.address.length === 4 ? formatIpv4(p.address) : formatIpv6(p.address)}/${p.cidr}`;

describe.skipIf(requireHost(['wg']))('uapi: wireguard-tools against a UapiServer', () => {
  const name = uniqueName('uapi');
  const path = `${SOCKET_DIR}/${name}.sock`;
  const ownKey = genkey();
  const peerA = pubOf(genkey());
  const peerB = pubOf(genkey());
  const psk = nobleDh.generatePrivateKey(); // any 32 bytes
  let device: Device;
  let runtime: StubRuntime;
  let server: UapiServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'burrow-uapi-wg-'));
    device = new Device({ privateKey: ownKey, wallClockAtZero: performance.timeOrigin }, { send: () => undefined, write: () => undefined });
    runtime = new StubRuntime(device);
    server = await UapiServer.listen(path, runtime);
  });

  afterAll(async () => {
    await server?.close();
    await rm(path, { force: true });
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    device?.removeAllPeers();
  });

  const keyFile = async (fileName: string, key: Uint8Array): Promise<string> => {
    const file = join(dir, fileName);
    await writeFile(file, `${b64(key)}\n`, { mode: 0o600 });
    return file;
  };

  it('the socket is mode 0600 and wg lists the interface', async () => {
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await wg('show', 'interfaces')).split(/\s+/)).toContain(name);
  });

  it('wg show dump: the interface line', async () => {
    const [line] = (await wg('show', name, 'dump')).trim().split('\n');
    expect(line!.split('\t')).toEqual([b64(ownKey), b64(pubOf(ownKey)), '0', 'off']);
  });

  it('wg set listen-port and fwmark reach the runtime', async () => {
    await wg('set', name, 'listen-port', '51820', 'fwmark', '0x1234');
    expect([runtime.port, runtime.mark]).toEqual([51820, 0x1234]);
    const [line] = (await wg('show', name, 'dump')).trim().split('\n');
    expect(line!.split('\t')).toEqual([b64(ownKey), b64(pubOf(ownKey)), '51820', '0x1234']);
  });

  it('wg set peer … allowed-ips endpoint persistent-keepalive', async () => {
    await wg('set', name, 'peer', b64(peerA), 'allowed-ips', '192.0.2.5/32', 'endpoint', '198.51.100.9:51820', 'persistent-keepalive', '25');
    const [status] = device.peerStatus(performance.now());
    expect(status).toMatchObject({ publicKey: b64(peerA), endpoint: { host: '198.51.100.9', port: 51820 }, persistentKeepalive: 25, presharedKey: undefined });
    expect(status!.allowedIPs.map(prefixText)).toEqual(['192.0.2.5/32']);

    const peerLine = (await wg('show', name, 'dump')).trim().split('\n')[1]!.split('\t');
    // public key, preshared key, endpoint, allowed ips, latest handshake, rx, tx, keepalive
    expect(peerLine).toEqual([b64(peerA), '(none)', '198.51.100.9:51820', '192.0.2.5/32', '0', '0', '0', '25']);
  });

  it('wg set peer … preshared-key, IPv6 endpoint and allowed IPs; allowed-ips replaces', async () => {
    const pskFile = await keyFile('psk', psk);
    await wg('set', name, 'peer', b64(peerB), 'preshared-key', pskFile, 'endpoint', '[2001:db8::9]:443', 'allowed-ips', '2001:db8:1::/48,10.9.0.0/16');
    await wg('set', name, 'peer', b64(peerB), 'allowed-ips', '2001:db8:2::1/64,10.8.0.0/16');
    const status = device.peerStatus(performance.now()).find((p) => p.publicKey === b64(peerB))!;
    expect(b64(status.presharedKey!)).toBe(b64(psk));
    expect(status.endpoint).toEqual({ host: '2001:db8::9', port: 443 });
    expect(status.allowedIPs.map(prefixText).sort()).toEqual(['10.8.0.0/16', '2001:db8:2::/64']);
    const dump = await wg('show', name, 'dump');
    expect(dump).toContain(`${b64(peerB)}\t${b64(psk)}\t[2001:db8::9]:443\t`);
  });

  it('wg showconf parses back, with src/config, to the device state', async () => {
    const text = await wg('showconf', name);
    const config = parseConfig(text, `${name}.conf`);
    expect(b64(config.interface.privateKey)).toBe(b64(ownKey));
    expect(config.interface.listenPort).toBe(runtime.port);
    expect(config.interface.fwMark).toBe(runtime.mark);
    const now = performance.now();
    const fromDevice = device.peerStatus(now).map((p) => ({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey && b64(p.presharedKey),
      endpoint: p.endpoint,
      allowedIPs: p.allowedIPs.map(prefixText).sort(),
      persistentKeepalive: p.persistentKeepalive === 0 ? undefined : p.persistentKeepalive,
    }));
    const fromConfig = config.peers.map((p) => ({
      publicKey: b64(p.publicKey),
      presharedKey: p.presharedKey && b64(p.presharedKey),
      endpoint: p.endpoint,
      allowedIPs: p.allowedIPs.map((a) => a.text).sort(),
      persistentKeepalive: p.persistentKeepalive,
    }));
    expect(fromConfig).toEqual(fromDevice);
  });

  it('wg setconf of what wg showconf printed changes nothing', async () => {
    const text = await wg('showconf', name);
    const file = join(dir, 'showconf.conf');
    await writeFile(file, text, { mode: 0o600 });
    const before = await wg('show', name, 'dump');
    await wg('setconf', name, file);
    expect(await wg('show', name, 'dump')).toBe(before);
    expect(await wg('showconf', name)).toBe(text);
  });

  it('wg set private-key FILE', async () => {
    const next = genkey();
    await wg('set', name, 'private-key', await keyFile('private', next));
    expect(b64(device.privateKey)).toBe(b64(next));
    expect(b64(device.publicKey)).toBe(b64(pubOf(next)));
    expect((await wg('show', name, 'public-key')).trim()).toBe(b64(pubOf(next)));
    expect((await wg('show', name, 'private-key')).trim()).toBe(b64(next));
  });

  it('wg set peer KEY remove', async () => {
    await wg('set', name, 'peer', b64(peerA), 'remove');
    expect(device.peerStatus(performance.now()).map((p) => p.publicKey)).toEqual([b64(peerB)]);
    expect((await wg('show', name, 'peers')).trim()).toBe(b64(peerB));
  });

  it('a refused set reaches wg as the right errno and changes nothing', async () => {
    const before = await wg('show', name, 'dump');
    // A scoped IPv6 endpoint: wg resolves it, Burrow refuses zone indices (EINVAL).
    expect(await wgFails('set', name, 'peer', b64(peerA), 'endpoint', '[fe80::1%lo]:51820', 'allowed-ips', '10.7.0.0/16')).toMatch(
      /Unable to modify interface: Invalid argument/,
    );
    // A listen port the runtime cannot bind (EADDRINUSE), together with other changes.
    expect(await wgFails('set', name, 'listen-port', String(BUSY_PORT), 'peer', b64(peerA), 'allowed-ips', '10.7.0.0/16')).toMatch(
      /Unable to modify interface: Address already in use/,
    );
    expect(await wg('show', name, 'dump')).toBe(before);
  });

  it('wg show answers at once while 16 clients trickle bytes into unfinished requests', async () => {
    const slow: net.Socket[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const c = net.createConnection(path);
      c.on('error', () => undefined);
      await new Promise((r) => c.once('connect', r));
      c.write('set=1\n');
      slow.push(c);
    }
    const trickle = setInterval(() => {
      for (const c of slow) if (c.writable) c.write('l');
    }, 20);
    try {
      const t0 = performance.now();
      expect((await run('wg', ['show', name, 'public-key'], { timeoutMs: 5_000 })).trim()).toBe(b64(device.publicKey));
      expect(performance.now() - t0).toBeLessThan(5_000);
    } finally {
      clearInterval(trickle);
      for (const c of slow) c.destroy();
    }
  });

  it('wg setconf with 10,000 peers', async () => {
    const lines = ['[Interface]', `PrivateKey = ${b64(device.privateKey)}`, `ListenPort = ${runtime.port}`];
    for (let i = 0; i < 10_000; i++) {
      const key = new Uint8Array(32).fill(0x5a);
      new DataView(key.buffer).setUint32(0, i + 1);
      lines.push(
        '[Peer]', `PublicKey = ${b64(key)}`, `PresharedKey = ${b64(psk)}`, `AllowedIPs = 10.${i >> 8}.${i & 255}.0/24, fd00:${i.toString(16)}::/64`,
        `Endpoint = 198.51.${(i >> 8) & 255}.${i & 255}:51820`, 'PersistentKeepalive = 25',
      );
    }
    const file = join(dir, 'bulk-peers.conf');
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    await wg('setconf', name, file);
    expect(device.peerCount).toBe(10_000);
    expect((await wg('show', name, 'peers')).trim().split('\n')).toHaveLength(10_000);
    expect((await wg('show', name, 'endpoints')).trim().split('\n').at(-1)).toMatch(/\t198\.51\.39\.15:51820$/);
  });

  it("wg setconf of WireGuard's selftest peer with 130,560 allowed IPs; wg show allowed-ips lists them all", async () => {
    const peer = pubOf(genkey());
    const allowed: string[] = [];
    for (let i = 1; i <= 255; i++) for (let j = 0; j <= 255; j++) allowed.push(`${i}.${j}.0.0/16`, `abcd::${i.toString(16)}:${j.toString(16)}/128`);
    const file = join(dir, 'selftest.conf');
    await writeFile(file, ['[Interface]', `PrivateKey = ${b64(device.privateKey)}`, '[Peer]', `PublicKey = ${b64(peer)}`, `AllowedIPs = ${allowed.join(',')}`, ''].join('\n'), { mode: 0o600 });
    await wg('setconf', name, file);
    const [line] = (await wg('show', name, 'allowed-ips')).trim().split('\n');
    const [key, ...prefixes] = line!.split(/\s+/);
    expect(key).toBe(b64(peer));
    expect(prefixes).toHaveLength(130_560);
    expect(new Set(prefixes)).toEqual(new Set(allowed));
  });
});
