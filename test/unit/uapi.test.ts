// The control socket's protocol (wireguard.com/xplatform, as wireguard-go's device/uapi.go
// answers it): every key of get and set, the errno of every refusal, all-or-nothing
// sets, the framer, and the server on a socket in a temporary directory.
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { describeRequest } from '../support/uapi.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import { nobleDh } from '../../crypto/x25519.js';
import { Device } from '../../tunnel/device.js';
import {
  executeUapi, formatUapiGet, handleUapi, MAX_ALLOWED_IPS_PER_REQUEST, MAX_CONNECTIONS, MAX_PEERS_PER_REQUEST, nextRequest, readUapiRequest, UAPI_ERRNO, type UapiBackend,
  type UapiFatal, UapiLineFramer, UapiReader, type UapiRequest, UapiServer, UapiServerError,
} from '../../src/runtime/uapi.js';
import { MemNet } from '../support/memnet.js';

// --- Fixtures ------------------------------------------------------------------------

const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');
const key = (fill: number): Uint8Array => nobleDh.generatePrivateKey((out) => out.fill(fill));
const pub = (priv: Uint8Array): Uint8Array => nobleDh.publicKey(priv);

class FakeBackend implements UapiBackend {
  readonly device: Device;
  clock = 5_000;
  port = 0;
  mark = 0;
  /** setListenPort rejects these ports with EADDRINUSE. */
  readonly busyPorts = new Set<number>();
  /** setFwmark rejects every mark with this errno code. */
  markFails: string | undefined;
  readonly calls: string[] = [];

  constructor(privateKey: Uint8Array | null = key(1)) {
    this.device = new Device({ privateKey, wallClockAtZero: 1_700_000_000_000 }, { send: () => undefined, write: () => undefined });
  }

  now(): number {
    return this.clock;
  }
  listenPort(): number {
    return this.port;
  }
  async setListenPort(port: number): Promise<void> {
    this.calls.push(`port ${port}`);
    if (this.busyPorts.has(port)) throw Object.assign(new Error(`UDP port ${port} is in use`), { code: 'EADDRINUSE' });
    this.port = port === 0 ? 40_000 : port;
  }
  fwmark(): number {
    return this.mark;
  }
  async setFwmark(mark: number): Promise<void> {
    this.calls.push(`mark ${mark}`);
    if (this.markFails !== undefined) throw Object.assign(new Error('cannot mark'), { code: this.markFails });
    this.mark = mark;
  }
}

const set = (...lines: string[]): string => `set=1\n${lines.map((l) => `${l}\n`).join('')}\n`;
const GET = 'get=1\n\n';
const errno = (reply: string): number => Number(/errno=(-?\d+)\n\n$/.exec(reply)?.[1]);
const OK = 'errno=0\n\n';

const PEER_A = pub(key(2));
const PEER_B = pub(key(3));
const PSK = new Uint8Array(32).fill(0x5a);
const ZERO = '0'.repeat(64);

/** Everything `get` can see, to prove a refused set changed nothing. */
async function snapshot(b: FakeBackend): Promise<string> {
  return handleUapi(GET, b);
}

// --- get -----------------------------------------------------------------------------

describe('uapi get', () => {
  it('a fresh device: its private key only (port and mark 0 are left out, as wireguard-go does)', async () => {
    const b = new FakeBackend(key(1));
    expect(await handleUapi(GET, b)).toBe(`private_key=${hex(key(1))}\nerrno=0\n\n`);
  });

  it("prints every key in wireguard-go's order and format", async () => {
    const b = new FakeBackend(key(1));
    b.port = 51820;
    b.mark = 0xca6c;
    b.device.setPeer(PEER_A, {
      presharedKey: PSK,
      endpoint: { host: '198.51.100.9', port: 51820 },
      persistentKeepalive: 25,
      allowedIPs: [
        { address: Uint8Array.of(192, 0, 2, 5), cidr: 32 },
        { address: Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(12).fill(0)), cidr: 32 },
      ],
    });
    b.device.setPeer(PEER_B, { endpoint: { host: '2001:db8::9', port: 443 } });
    expect(await handleUapi(GET, b)).toBe(
      [
        `private_key=${hex(key(1))}`,
        'listen_port=51820',
        'fwmark=51820',
        `public_key=${hex(PEER_A)}`,
        `preshared_key=${hex(PSK)}`,
        'protocol_version=1',
        'endpoint=198.51.100.9:51820',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=25',
        'allowed_ip=192.0.2.5/32',
        'allowed_ip=2001:db8::/32',
        `public_key=${hex(PEER_B)}`,
        `preshared_key=${ZERO}`,
        'protocol_version=1',
        'endpoint=[2001:db8::9]:443',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        'errno=0',
        '',
        '',
      ].join('\n'),
    );
  });

  it('reports the handshake time in seconds and nanoseconds, and the bytes moved', async () => {
    const net = new MemNet();
    const a = net.add('a', '10.0.0.1');
    const c = net.add('c', '10.0.0.2');
    net.connect(a, c);
    net.now = 1_234;
    net.ping(a, c, 1);
    net.deliverAll();
    const backend: UapiBackend = {
      device: a.device, now: () => net.now, listenPort: () => 0, setListenPort: async () => undefined, fwmark: () => 0, setFwmark: async () => undefined,
    };
    const reply = await handleUapi(GET, backend);
    // wallClockAtZero 1_700_000_000_000 + 1_234 ms
    expect(reply).toContain('\nlast_handshake_time_sec=1700000001\nlast_handshake_time_nsec=234000000\n');
    const [status] = a.device.peerStatus(net.now);
    expect(reply).toContain(`\ntx_bytes=${status!.txBytes}\nrx_bytes=${status!.rxBytes}\n`);
    expect(status!.txBytes).toBeGreaterThan(0);
    // MemNet's endpoints are names, not addresses: wg(8) would resolve them, so they are left out.
    expect(reply).not.toContain('endpoint=');
  });

  it('get=1 must be followed by exactly one blank line', async () => {
    const b = new FakeBackend();
    expect(await handleUapi('get=1\nx', b)).toBe(`errno=-${UAPI_ERRNO.EINVAL}\n\n`);
    expect(await handleUapi('get=1\n\n\n', b)).toBe(`errno=-${UAPI_ERRNO.EINVAL}\n\n`);
    expect(await handleUapi('get=1\n', b)).toBe(`errno=-${UAPI_ERRNO.EINVAL}\n\n`);
  });
});

// --- set: every key --------------------------------------------------------------------

describe('uapi set: device keys', () => {
  it('private_key replaces the key (upper-case hex accepted) and drops a peer that has the new public key', async () => {
    const b = new FakeBackend(key(1));
    b.device.setPeer(pub(key(9)), {});
    b.device.setPeer(PEER_A, {});
    expect(await handleUapi(set(`private_key=${hex(key(9)).toUpperCase()}`), b)).toBe(OK);
    expect(hex(b.device.privateKey)).toBe(hex(key(9)));
    expect(hex(b.device.publicKey)).toBe(hex(pub(key(9))));
    expect(b.device.peerStatus(0).map((p) => p.publicKey)).toEqual([encodeKey(PEER_A)]);
  });

  it('private_key equal to the running key, clamped or not, is no change: the sessions stay (wg syncconf with the same key)', async () => {
    const b = new FakeBackend(key(1));
    const setPrivateKey = vi.spyOn(b.device, 'setPrivateKey');
    const unclamped = key(1);
    unclamped[0] = unclamped[0]! | 7;
    for (const k of [key(1), unclamped]) expect(await handleUapi(set(`private_key=${hex(k)}`), b)).toBe(OK);
    expect(setPrivateKey).not.toHaveBeenCalled();
    expect(await handleUapi(set(`private_key=${hex(key(2))}`), b)).toBe(OK);
    expect(await handleUapi(set(`private_key=${ZERO}`), b)).toBe(OK);
    expect(await handleUapi(set(`private_key=${ZERO}`), b)).toBe(OK);
    expect(setPrivateKey).toHaveBeenCalledTimes(2);
    expect(b.device.hasIdentity).toBe(false);
  });

  it('private_key all zeros removes the key, as `wg set private-key /dev/null`: get then has none; a key brings it back', async () => {
    const b = new FakeBackend(key(1));
    b.device.setPeer(PEER_A, {});
    expect(await handleUapi(set(`private_key=${ZERO}`), b)).toBe(OK);
    expect(b.device.hasIdentity).toBe(false);
    expect(await handleUapi(GET, b)).not.toContain('private_key=');
    // No key, so no peer is "our own": a peer section for any key is taken.
    expect(await handleUapi(set(`public_key=${hex(PEER_B)}`), b)).toBe(OK);
    expect(b.device.peerCount).toBe(2);
    expect(await handleUapi(set(`private_key=${hex(key(1))}`), b)).toBe(OK);
    expect(b.device.hasIdentity).toBe(true);
    expect(await handleUapi(GET, b)).toMatch(new RegExp(`^private_key=${hex(key(1))}\n`));
  });

  it('a device started without a key reports none, as wireguard-go started by wg-quick', async () => {
    const b = new FakeBackend(null);
    expect(await handleUapi(GET, b)).toBe(OK);
  });

  it('listen_port and fwmark go to the runtime; unchanged values are not re-applied', async () => {
    const b = new FakeBackend();
    expect(await handleUapi(set('listen_port=51820', 'fwmark=4294967295'), b)).toBe(OK);
    expect([b.port, b.mark]).toEqual([51820, 0xffffffff]);
    expect(await handleUapi(set('listen_port=51820', 'fwmark=4294967295'), b)).toBe(OK);
    expect(b.calls).toEqual(['port 51820', 'mark 4294967295']);
    expect(await handleUapi(set('listen_port=0', 'fwmark=0'), b)).toBe(OK);
    expect([b.port, b.mark]).toEqual([40_000, 0]);
    expect(await handleUapi(set('listen_port=00443'), b)).toBe(OK); // strconv.ParseUint takes leading zeros
    expect(b.port).toBe(443);
  });

  it('replace_peers removes every peer before the ones that follow are added', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, {});
    expect(await handleUapi(set('replace_peers=true', `public_key=${hex(PEER_B)}`), b)).toBe(OK);
    expect(b.device.peerStatus(0).map((p) => p.publicKey)).toEqual([encodeKey(PEER_B)]);
    expect(await handleUapi(set('replace_peers=true'), b)).toBe(OK);
    expect(b.device.peerCount).toBe(0);
  });

  it('an empty set is fine', async () => {
    expect(await handleUapi('set=1\n\n', new FakeBackend())).toBe(OK);
  });

  it('changed() once after each set that changed something; never for a refused set, a get, or a set that changed nothing', async () => {
    let changed = 0;
    const b = Object.assign(new FakeBackend(), { changed: () => void changed++ });
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'persistent_keepalive_interval=25'), b);
    expect(changed).toBe(1);
    await handleUapi(set('bogus=1'), b);
    await handleUapi(set('listen_port=1', `public_key=${hex(PEER_B)}`), Object.assign(b, { busyPorts: new Set([1]) }));
    await handleUapi(GET, b);
    await handleUapi('set=1\n\n', b);
    await handleUapi(set(`public_key=${hex(PEER_B)}`, 'remove=true'), b); // not there: nothing removed
    await handleUapi(set(`public_key=${hex(PEER_B)}`, 'update_only=true', 'allowed_ip=10.0.0.1/32'), b); // skipped
    expect(changed).toBe(1);
    await handleUapi(set('listen_port=7'), b);
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'remove=true'), b);
    expect(changed).toBe(3);
  });
});

describe('uapi set: peer keys', () => {
  it('public_key, preshared_key, endpoint, persistent_keepalive_interval, allowed_ip, protocol_version', async () => {
    const b = new FakeBackend();
    const reply = await handleUapi(
      set(
        `public_key=${hex(PEER_A)}`,
        'protocol_version=1',
        `preshared_key=${hex(PSK)}`,
        'endpoint=198.51.100.9:51820',
        'persistent_keepalive_interval=25',
        'replace_allowed_ips=true',
        'allowed_ip=192.0.2.5/32',
        'allowed_ip=10.1.2.3/8',
        'allowed_ip=2001:DB8::1/64',
        `public_key=${hex(PEER_B)}`,
        'endpoint=[2001:db8:0:0::1]:443',
      ),
      b,
    );
    expect(reply).toBe(OK);
    const [a, c] = b.device.peerStatus(0);
    expect(a!.publicKey).toBe(encodeKey(PEER_A));
    expect(hex(a!.presharedKey!)).toBe(hex(PSK));
    expect(a!.endpoint).toEqual({ host: '198.51.100.9', port: 51820 });
    expect(a!.persistentKeepalive).toBe(25);
    // Host bits cleared, as the allowed-IPs table keeps them; IPv6 canonical.
    const got = await handleUapi(GET, b);
    expect(got).toContain('allowed_ip=192.0.2.5/32\nallowed_ip=10.0.0.0/8\nallowed_ip=2001:db8::/64\n');
    expect(c!.endpoint).toEqual({ host: '2001:db8::1', port: 443 });
    expect(c!.presharedKey).toBeUndefined();
  });

  it('an all-zero preshared_key removes it; persistent_keepalive_interval=0 turns it off', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, { presharedKey: PSK, persistentKeepalive: 25 });
    expect(await handleUapi(set(`public_key=${hex(PEER_A)}`, `preshared_key=${ZERO}`, 'persistent_keepalive_interval=0'), b)).toBe(OK);
    const [a] = b.device.peerStatus(0);
    expect(a!.presharedKey).toBeUndefined();
    expect(a!.persistentKeepalive).toBe(0);
  });

  it('allowed_ip adds; replace_allowed_ips replaces with the ones after it (none: clears)', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, { allowedIPs: [{ address: Uint8Array.of(10, 0, 0, 1), cidr: 32 }] });
    const allowed = () => b.device.peerStatus(0)[0]!.allowedIPs.map((p) => `${[...p.address].join('.')}/${p.cidr}`);
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'allowed_ip=10.0.0.2/32'), b);
    expect(allowed()).toEqual(['10.0.0.1/32', '10.0.0.2/32']);
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'allowed_ip=10.0.0.3/32', 'replace_allowed_ips=true', 'allowed_ip=10.0.0.4/32'), b);
    expect(allowed()).toEqual(['10.0.0.4/32']);
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'replace_allowed_ips=true'), b);
    expect(allowed()).toEqual([]);
  });

  it('an allowed IP given to a second peer moves to it', async () => {
    const b = new FakeBackend();
    await handleUapi(set(`public_key=${hex(PEER_A)}`, 'allowed_ip=10.0.0.0/24', `public_key=${hex(PEER_B)}`, 'allowed_ip=10.0.0.0/24'), b);
    const [a, c] = b.device.peerStatus(0);
    expect(a!.allowedIPs).toEqual([]);
    expect(c!.allowedIPs).toHaveLength(1);
  });

  it('remove=true removes the peer (and a peer that does not exist is no error)', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, {});
    expect(await handleUapi(set(`public_key=${hex(PEER_A)}`, 'remove=true', `public_key=${hex(PEER_B)}`, 'remove=true'), b)).toBe(OK);
    expect(b.device.peerCount).toBe(0);
  });

  it('lines after remove=true in its section are checked but change nothing', async () => {
    const b = new FakeBackend();
    expect(await handleUapi(set(`public_key=${hex(PEER_A)}`, 'remove=true', 'allowed_ip=10.0.0.1/32'), b)).toBe(OK);
    expect(b.device.peerCount).toBe(0);
    expect(errno(await handleUapi(set(`public_key=${hex(PEER_A)}`, 'remove=true', 'allowed_ip=10.0.0.1'), b))).toBe(-UAPI_ERRNO.EINVAL);
  });

  it('update_only changes an existing peer and never creates one', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, {});
    const reply = await handleUapi(
      set(`public_key=${hex(PEER_A)}`, 'update_only=true', 'persistent_keepalive_interval=7', `public_key=${hex(PEER_B)}`, 'update_only=true', 'persistent_keepalive_interval=7'),
      b,
    );
    expect(reply).toBe(OK);
    expect(b.device.peerStatus(0).map((p) => [p.publicKey, p.persistentKeepalive])).toEqual([[encodeKey(PEER_A), 7]]);
  });

  it('update_only sees peers added earlier in the same request, and not those removed by replace_peers', async () => {
    const b = new FakeBackend();
    b.device.setPeer(PEER_A, {});
    await handleUapi(set('replace_peers=true', `public_key=${hex(PEER_A)}`, 'update_only=true', `public_key=${hex(PEER_B)}`, `public_key=${hex(PEER_B)}`, 'update_only=true', 'persistent_keepalive_interval=3'), b);
    expect(b.device.peerStatus(0).map((p) => [p.publicKey, p.persistentKeepalive])).toEqual([[encodeKey(PEER_B), 3]]);
  });

  it("a peer with the device's own public key is ignored, as wireguard-go does", async () => {
    const b = new FakeBackend(key(1));
    expect(await handleUapi(set(`public_key=${hex(pub(key(1)))}`, 'allowed_ip=10.0.0.1/32'), b)).toBe(OK);
    expect(b.device.peerCount).toBe(0);
    // ...also when the key becomes our own in the same request.
    expect(await handleUapi(set(`private_key=${hex(key(4))}`, `public_key=${hex(pub(key(4)))}`, 'update_only=true'), b)).toBe(OK);
    expect(await handleUapi(set(`private_key=${hex(key(5))}`, `public_key=${hex(pub(key(5)))}`), b)).toBe(OK);
    expect(b.device.peerCount).toBe(0);
  });
});

// --- set: refusals ---------------------------------------------------------------------

describe('uapi set: errno', () => {
  const { EINVAL, EPROTO, EADDRINUSE, EMSGSIZE } = UAPI_ERRNO;
  const peer = `public_key=${hex(PEER_A)}`;
  const cases: Array<[string, string, number]> = [
    ['unknown device key', set('listen-port=1'), EINVAL],
    ['unknown peer key', set(peer, 'listen_port=1'), EINVAL],
    ['a get-only key', set(peer, 'rx_bytes=1'), EINVAL],
    ['errno in a set', set('errno=0'), EINVAL],
    ['a line without "="', set('listen_port'), EPROTO],
    ['an empty key', set('=1'), EINVAL],
    ['private_key: 63 hex digits', set(`private_key=${hex(key(1)).slice(1)}`), EINVAL],
    ['private_key: not hex', set(`private_key=${'g'.repeat(64)}`), EINVAL],
    ['private_key: base64', set(`private_key=${encodeKey(key(1))}`), EINVAL],
    ['private_key in a peer section', set(peer, `private_key=${hex(key(1))}`), EINVAL],
    ['listen_port 65536', set('listen_port=65536'), EINVAL],
    ['listen_port -1', set('listen_port=-1'), EINVAL],
    ['listen_port empty', set('listen_port='), EINVAL],
    ['listen_port with a space', set('listen_port= 1'), EINVAL],
    ['listen_port with CR', set('listen_port=1\r'), EINVAL],
    ['fwmark 2^32', set('fwmark=4294967296'), EINVAL],
    ['fwmark hex', set('fwmark=0x10'), EINVAL],
    ['replace_peers=false', set('replace_peers=false'), EINVAL],
    ['public_key: short', set('public_key=abcd'), EINVAL],
    ['remove=1', set(peer, 'remove=1'), EINVAL],
    ['update_only=yes', set(peer, 'update_only=yes'), EINVAL],
    ['replace_allowed_ips=TRUE', set(peer, 'replace_allowed_ips=TRUE'), EINVAL],
    ['preshared_key: short', set(peer, 'preshared_key=00'), EINVAL],
    ['endpoint: no port', set(peer, 'endpoint=198.51.100.9'), EINVAL],
    ['endpoint: port 0', set(peer, 'endpoint=198.51.100.9:0'), EINVAL],
    ['endpoint: port 65536', set(peer, 'endpoint=198.51.100.9:65536'), EINVAL],
    ['endpoint: IPv6 without brackets', set(peer, 'endpoint=2001:db8::1:51820'), EINVAL],
    ['endpoint: IPv4 in brackets', set(peer, 'endpoint=[198.51.100.9]:1'), EINVAL],
    ['endpoint: zone index', set(peer, 'endpoint=[fe80::1%eth0]:51820'), EINVAL],
    ['endpoint: a name', set(peer, 'endpoint=vpn.example.com:51820'), EINVAL],
    ['endpoint: leading zero', set(peer, 'endpoint=198.051.100.9:1'), EINVAL],
    ['endpoint: empty', set(peer, 'endpoint='), EINVAL],
    ['persistent_keepalive_interval 65536', set(peer, 'persistent_keepalive_interval=65536'), EINVAL],
    ['allowed_ip: no length', set(peer, 'allowed_ip=10.0.0.1'), EINVAL],
    ['allowed_ip: /33', set(peer, 'allowed_ip=10.0.0.1/33'), EINVAL],
    ['allowed_ip: /129', set(peer, 'allowed_ip=::/129'), EINVAL],
    ['allowed_ip: /032', set(peer, 'allowed_ip=10.0.0.1/032'), EINVAL],
    ['allowed_ip: empty', set(peer, 'allowed_ip='), EINVAL],
    ['protocol_version=2', set(peer, 'protocol_version=2'), EINVAL],
    ['protocol_version as a device key', set('protocol_version=1'), EINVAL],
    ['an unknown operation', 'put=1\n\n', EPROTO],
    ['no operation', '\n', EPROTO],
    ['set without its blank line', 'set=1\nlisten_port=1\n', EPROTO],
    ['set with bytes after its blank line', 'set=1\nlisten_port=1\n\nget=1\n\n', EPROTO],
    ['the empty string', '', EPROTO],
  ];
  for (const [name, request, code] of cases) {
    it(`${name} -> errno=-${code}`, async () => {
      const b = new FakeBackend();
      b.device.setPeer(PEER_B, {});
      const before = await snapshot(b);
      expect(await handleUapi(request, b)).toBe(`errno=-${code}\n\n`);
      expect(await snapshot(b)).toBe(before);
      expect(b.calls).toEqual([]);
    });
  }

  it(`too many allowed_ip lines -> errno=-${EMSGSIZE}`, async () => {
    const lines = [peer, ...Array.from({ length: MAX_ALLOWED_IPS_PER_REQUEST + 1 }, (_, i) => `allowed_ip=10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`)];
    const b = new FakeBackend();
    const result = await executeUapi(`set=1\n${lines.join('\n')}\n\n`, b);
    expect(result.reply).toBe(`errno=-${EMSGSIZE}\n\n`);
    expect(result.error?.code).toBe('ERR_UAPI_TOO_LARGE');
    expect(b.device.peerCount).toBe(0);
  });

  it(`too many peer sections -> errno=-${EMSGSIZE}`, async () => {
    const lines = Array.from({ length: MAX_PEERS_PER_REQUEST + 1 }, (_, i) => `public_key=${i.toString(16).padStart(64, '0')}`);
    const b = new FakeBackend();
    const result = await executeUapi(`set=1\n${lines.join('\n')}\n\n`, b);
    expect(result.reply).toBe(`errno=-${EMSGSIZE}\n\n`);
    expect(result.error?.code).toBe('ERR_UAPI_TOO_LARGE');
    expect(b.device.peerCount).toBe(0);
  });

  it(`a request over maxRequestBytes -> errno=-${EMSGSIZE}`, async () => {
    expect(await handleUapi(set('listen_port=1'), new FakeBackend(), { maxRequestBytes: 10 })).toBe(`errno=-${EMSGSIZE}\n\n`);
  });

  it(`listen_port in use -> errno=-${EADDRINUSE}, and nothing else changes`, async () => {
    const b = new FakeBackend();
    b.port = 51820;
    b.busyPorts.add(51821);
    const before = await snapshot(b);
    const reply = await handleUapi(set(`private_key=${hex(key(7))}`, 'listen_port=51821', 'fwmark=1', 'replace_peers=true', `public_key=${hex(PEER_A)}`), b);
    expect(reply).toBe(`errno=-${EADDRINUSE}\n\n`);
    expect(await snapshot(b)).toBe(before);
    expect(b.calls).toEqual(['port 51821']);
  });

  it('a failed fwmark puts the listen port back and changes nothing else; its errno is the one the runtime names', async () => {
    const b = new FakeBackend();
    b.port = 51820;
    b.markFails = 'EPERM';
    const before = await snapshot(b);
    const result = await executeUapi(set('listen_port=51821', 'fwmark=7', `public_key=${hex(PEER_A)}`), b);
    expect(result.reply).toBe(`errno=-${osConstants.errno.EPERM}\n\n`);
    expect(result.error?.code).toBe('ERR_UAPI_RUNTIME');
    expect(b.calls).toEqual(['port 51821', 'mark 7', 'port 51820']);
    expect(await snapshot(b)).toBe(before);
  });

  it('a listen_port that cannot be put back is reported (ENOTRECOVERABLE, both errors named), and the runtime told', async () => {
    let changed = 0;
    const b = Object.assign(new FakeBackend(), { changed: () => void changed++ });
    b.port = 51820;
    b.markFails = 'EPERM';
    b.busyPorts.add(51820); // once left, the old port is taken: the undo fails
    const result = await executeUapi(set('listen_port=51821', 'fwmark=7', `public_key=${hex(PEER_A)}`), b);
    expect(result.reply).toBe(`errno=-${UAPI_ERRNO.ENOTRECOVERABLE}\n\n`);
    expect(result.error?.code).toBe('ERR_UAPI_ROLLBACK_FAILED');
    expect(result.error?.message).toMatch(/fwmark 7: cannot mark.*listen_port back to 51820 failed too \(UDP port 51820 is in use\)/);
    expect(b.calls).toEqual(['port 51821', 'mark 7', 'port 51820']);
    // Where the runtime was left is what get reports; the peer was not added.
    expect(await handleUapi(GET, b)).toContain('\nlisten_port=51821\n');
    expect(b.device.peerCount).toBe(0);
    expect(changed).toBe(1);
  });

  it('a bad line in the middle of a set changes nothing at all', async () => {
    const b = new FakeBackend(key(1));
    b.port = 51820;
    b.device.setPeer(PEER_A, { presharedKey: PSK, allowedIPs: [{ address: Uint8Array.of(10, 0, 0, 1), cidr: 32 }] });
    const before = await snapshot(b);
    const reply = await handleUapi(
      set(
        `private_key=${hex(key(8))}`,
        'listen_port=1',
        'fwmark=2',
        'replace_peers=true',
        `public_key=${hex(PEER_B)}`,
        'allowed_ip=10.0.0.2/32',
        'endpoint=198.51.100.1:1',
        `public_key=${hex(PEER_A)}`,
        'remove=true',
        'allowed_ip=10.0.0.300/32', // the bad line
        `public_key=${hex(pub(key(6)))}`,
        'allowed_ip=10.0.0.3/32',
      ),
      b,
    );
    expect(reply).toBe(`errno=-${EINVAL}\n\n`);
    expect(await snapshot(b)).toBe(before);
    expect(b.calls).toEqual([]);
  });

  it('error messages never carry a key', async () => {
    const secret = hex(key(1));
    const requests = [
      set(`private_key=${secret}x`),
      set(`private_key=${secret.slice(2)}`),
      set(`${secret}=1`),
      set(`public_key=${hex(PEER_A)}`, `endpoint=${secret}`),
      set(`public_key=${hex(PEER_A)}`, `allowed_ip=${secret}/32`),
      set(`public_key=${hex(PEER_A)}`, `preshared_key=${secret}0`),
      set(`public_key=${hex(PEER_A)}`, `endpoint=[${secret}]:1`),
      set(`public_key=${hex(PEER_A)}`, `${encodeKey(key(1))}=x`),
    ];
    for (const request of requests) {
      const { error } = await executeUapi(request, new FakeBackend());
      expect(error).toBeDefined();
      expect(error!.message).not.toMatch(/[0-9a-fA-F]{16}/);
      expect(error!.message).not.toContain(encodeKey(key(1)).slice(0, 16));
    }
  });
});

// --- properties ----------------------------------------------------------------------

const REPLY = /^(?:[a-z_]+=[^\n]*\n)*errno=(-?\d+)\n\n$/;

/** Lines that are sometimes valid, sometimes nearly so. */
const lineArb = fc.oneof(
  fc.constantFrom(
    `public_key=${hex(PEER_A)}`, `public_key=${hex(PEER_B)}`, `private_key=${hex(key(4))}`, 'replace_peers=true', 'remove=true',
    'update_only=true', 'replace_allowed_ips=true', 'protocol_version=1', `preshared_key=${hex(PSK)}`, `preshared_key=${ZERO}`,
    'endpoint=[2001:db8::1]:51820', 'endpoint=198.51.100.9:1', 'listen_port=51820', 'fwmark=1', 'bogus=1', 'allowed_ip=10.0.0.0/300',
    'listen_port', 'endpoint=198.51.100.9', '',
  ),
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 33 })).map(([a, n]) => `allowed_ip=${a}/${n}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 129 })).map(([a, n]) => `allowed_ip=${a}/${n}`),
  fc.integer({ min: -1, max: 70_000 }).map((n) => `persistent_keepalive_interval=${n}`),
  fc.tuple(fc.constantFrom('listen_port', 'fwmark', 'endpoint', 'allowed_ip', 'public_key'), fc.string({ unit: 'binary', maxLength: 70 })).map(([k, v]) => `${k}=${v}`),
);

describe('uapi properties', () => {
  it('random bytes never throw and always get an errno reply', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, prefixed) => {
        const text = (prefixed ? 'set=1\n' : '') + Buffer.from(bytes).toString('latin1');
        const reply = await handleUapi(text, new FakeBackend());
        expect(reply).toMatch(REPLY);
      }),
      { numRuns: 500 },
    );
  });

  it('random lines: either errno=0, or the device is exactly as it was', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(lineArb, { maxLength: 12 }), async (lines) => {
        const b = new FakeBackend();
        b.device.setPeer(PEER_A, { allowedIPs: [{ address: Uint8Array.of(10, 9, 9, 9), cidr: 32 }] });
        const before = await snapshot(b);
        const request = `set=1\n${lines.map((l) => `${l}\n`).join('')}\n`;
        const reply = await handleUapi(request, b);
        const code = Number(REPLY.exec(reply)?.[1]);
        expect(Number.isInteger(code)).toBe(true);
        if (code !== 0) expect(await snapshot(b)).toBe(before);
      }),
      { numRuns: 400 },
    );
  });

  it('get output read back through set gives the same get output', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(lineArb, { maxLength: 12 }), async (lines) => {
        const b = new FakeBackend();
        await handleUapi(`set=1\n${lines.map((l) => `${l}\n`).join('')}\n`, b);
        const got = await snapshot(b);
        // What wg(8) does with `wg showconf | wg setconf`: every key, as a set.
        const settable = got.split('\n').filter((l) => /^(private_key|listen_port|fwmark|public_key|preshared_key|endpoint|persistent_keepalive_interval|allowed_ip|protocol_version)=/.test(l));
        const c = new FakeBackend(key(11));
        expect(await handleUapi(`set=1\n${['replace_peers=true', ...settable].map((l) => `${l}\n`).join('')}\n`, c)).toBe(OK);
        expect(await snapshot(c)).toBe(got);
      }),
      { numRuns: 200 },
    );
  });

  it('a stream cut anywhere gives the same requests, parsed alike, as each request read whole', () => {
    const requestArb = fc.oneof(
      fc.constant(GET),
      // Lines as they could arrive on the socket: bytes (latin1), no newline inside.
      fc.array(lineArb.filter((l) => l !== '' && /^[^\n\u0100-\uffff]*$/.test(l)), { maxLength: 5 }).map((ls) => set(...ls)),
    );
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1 }), (requests, cuts) => {
        const stream = Buffer.from(requests.join(''), 'latin1');
        const framer = new UapiLineFramer();
        const reader = new UapiReader();
        const got: string[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length]!;
          framer.push(stream.subarray(at, at + n));
          at += n;
          for (let r = nextRequest(framer, reader); r !== undefined; r = nextRequest(framer, reader)) got.push(describeRequest(r));
        }
        expect(got).toEqual(requests.map((text) => describeRequest(readUapiRequest(text))));
        expect(framer.pending).toBe(0);
        expect(reader.idle).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});


describe('uapi framing', () => {
  const drain = (framer: UapiLineFramer, reader: UapiReader): (UapiRequest | UapiFatal)[] => {
    const out: (UapiRequest | UapiFatal)[] = [];
    for (let r = nextRequest(framer, reader); r !== undefined; r = nextRequest(framer, reader)) out.push(r);
    return out;
  };

  it('an unknown operation is refused as soon as its line ends, and nothing after it is read', () => {
    const framer = new UapiLineFramer();
    framer.push(Buffer.from('hello\nget=1\n\n'));
    const got = drain(framer, new UapiReader());
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ op: 'fatal', error: { errno: UAPI_ERRNO.EPROTO } });
  });

  it('an operation line longer than "set=1" is refused before its newline arrives', () => {
    const framer = new UapiLineFramer();
    framer.push(Buffer.from('x'.repeat(1000)));
    expect(drain(framer, new UapiReader())[0]).toMatchObject({ op: 'fatal', error: { errno: UAPI_ERRNO.EPROTO } });
  });

  it('a line longer than any valid one is refused before its newline arrives', () => {
    const framer = new UapiLineFramer();
    framer.push(Buffer.from(`set=1\nendpoint=${'1'.repeat(2000)}`));
    expect(drain(framer, new UapiReader())[0]).toMatchObject({ op: 'fatal', error: { code: 'ERR_UAPI_TOO_LARGE' } });
  });

  it('a set longer than the limit is refused before its end arrives', () => {
    const framer = new UapiLineFramer();
    const reader = new UapiReader({ maxRequestBytes: 100, maxPeersPerRequest: 10, maxAllowedIpsPerRequest: 10 });
    framer.push(Buffer.from('set=1\n'));
    for (let i = 0; i < 20; i++) framer.push(Buffer.from('allowed_ip=10.0.0.1/32\n'));
    expect(drain(framer, reader)[0]).toMatchObject({ op: 'fatal', error: { errno: UAPI_ERRNO.EMSGSIZE } });
  });

  it('get=1 followed by anything but a blank line is refused', () => {
    const framer = new UapiLineFramer();
    framer.push(Buffer.from('get=1\nx\n'));
    expect(drain(framer, new UapiReader())[0]).toMatchObject({ op: 'fatal', error: { errno: UAPI_ERRNO.EINVAL } });
  });

  it('a bad line is answered at the end of its set, and the next request is read', () => {
    const framer = new UapiLineFramer();
    framer.push(Buffer.from(`${set('bogus=1', 'listen_port=1')}${GET}`));
    const got = drain(framer, new UapiReader());
    expect(got.map((r) => r.op)).toEqual(['refused', 'get']);
  });

  it('wipes what it was given', () => {
    const framer = new UapiLineFramer();
    const chunk = Buffer.from(set(`private_key=${hex(key(1))}`));
    framer.push(chunk.subarray(0, 30));
    const internal = framer as unknown as { input: Uint8Array };
    const partial = internal.input;
    framer.push(chunk.subarray(30));
    const whole = internal.input;
    expect(drain(framer, new UapiReader())).toHaveLength(1);
    expect(partial.every((b) => b === 0)).toBe(true);
    expect(whole.every((b) => b === 0)).toBe(true);
  });
});

// --- formatUapiGet directly ---------------------------------------------------------------

describe('formatUapiGet', () => {
  it('leaves out an all-zero private key, as wireguard-go does', () => {
    const b = new FakeBackend(new Uint8Array(32));
    expect(formatUapiGet(b)).toBe('errno=0\n\n');
  });
});

// --- the server ------------------------------------------------------------------------

/** `wg setconf` of `count` peers as wg(8) sends it: key, preshared key, endpoint, keepalive, two allowed IPs each. */
function bulkPeers(count: number): string {
  const lines = ['set=1', `private_key=${hex(key(1))}`, 'replace_peers=true'];
  for (let i = 0; i < count; i++) {
    const k = Buffer.alloc(32, 0x5a);
    k.writeUInt32BE(i + 1, 0);
    lines.push(
      `public_key=${k.toString('hex')}`, `preshared_key=${hex(PSK)}`, 'replace_allowed_ips=true', `endpoint=198.51.${(i >> 8) & 255}.${i & 255}:51820`,
      'persistent_keepalive_interval=25', `allowed_ip=10.${i >> 8}.${i & 255}.0/24`, `allowed_ip=fd00:${i.toString(16)}::/64`,
    );
  }
  return `${lines.join('\n')}\n\n`;
}

/** WireGuard's selftest's one peer with 255 * 256 IPv4 /16s and as many IPv6 /128s. */
function selftestAllowedIps(peer: Uint8Array): string {
  const lines = ['set=1', `public_key=${hex(peer)}`, 'replace_allowed_ips=true'];
  for (let i = 1; i <= 255; i++) for (let j = 0; j <= 255; j++) lines.push(`allowed_ip=${i}.${j}.0.0/16`, `allowed_ip=abcd::${i.toString(16)}:${j.toString(16)}/128`);
  return `${lines.join('\n')}\n\n`;
}

/** Sends `request`, reads until the peer closes or `until` matches. */
function talk(path: string, request: string | Buffer, until: RegExp = /\n\n$/, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms; got ${JSON.stringify(got)}`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(got);
    };
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: string) => {
      got += d;
      if (until.test(got)) finish();
    });
    sock.on('close', finish);
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // The server hung up on us (connection limit, garbage): as good as a close.
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') return finish();
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('UapiServer', () => {
  let dir: string;
  let path: string;
  const servers: UapiServer[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'burrow-uapi-'));
    path = join(dir, 'wireguard', 'wgtest.sock');
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });
  const start = async (backend: UapiBackend = new FakeBackend(), options = {}): Promise<UapiServer> => {
    const s = await UapiServer.listen(path, backend, options);
    servers.push(s);
    return s;
  };

  it('creates the directory 0700 and the socket 0600, answers get and set, removes the socket on close', async () => {
    const b = new FakeBackend(key(1));
    const s = await start(b);
    expect((await stat(join(dir, 'wireguard'))).mode & 0o777).toBe(0o700);
    const st = await stat(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(await talk(path, set('listen_port=51820', `public_key=${hex(PEER_A)}`))).toBe(OK);
    expect(await talk(path, GET)).toBe(await handleUapi(GET, b));
    await s.close();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers several requests on one connection, in order', async () => {
    const b = new FakeBackend(key(1));
    await start(b);
    const got = await talk(path, `${set('listen_port=7')}${GET}${set('bogus=1')}${GET}`, /(errno=-?\d+\n\n[^]*){4}$/);
    const get7 = `private_key=${hex(key(1))}\nlisten_port=7\nerrno=0\n\n`;
    expect(got).toBe(`${OK}${get7}errno=-${UAPI_ERRNO.EINVAL}\n\n${get7}`);
  });

  it('answers a client that half-closes after its request', async () => {
    await start();
    const got = await new Promise<string>((resolve, reject) => {
      const sock = net.createConnection(path, () => sock.end(GET));
      let text = '';
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => (text += d));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
    });
    expect(got).toMatch(/errno=0\n\n$/);
  });

  it('answers garbage with errno and hangs up', async () => {
    await start();
    expect(await talk(path, 'GET / HTTP/1.1\r\n\r\n', /$^/)).toBe(`errno=-${UAPI_ERRNO.EPROTO}\n\n`);
    expect(await talk(path, Buffer.alloc(70_000, 0x41), /$^/)).toBe(`errno=-${UAPI_ERRNO.EPROTO}\n\n`);
  });

  it('refuses an oversized request with EMSGSIZE and hangs up', async () => {
    await start(new FakeBackend(), { maxRequestBytes: 1024 });
    const big = `set=1\n${'allowed_ip=10.0.0.1/32\n'.repeat(100)}`;
    expect(await talk(path, big, /$^/)).toBe(`errno=-${UAPI_ERRNO.EMSGSIZE}\n\n`);
  });

  it('closes a connection that stays idle', async () => {
    const s = await start(new FakeBackend(), { requestDeadlineMs: 100 });
    const t0 = Date.now();
    expect(await talk(path, 'set=1\nlisten_port=1\n', /$^/)).toBe('');
    expect(Date.now() - t0).toBeLessThan(3_000);
    await until(() => s.connections === 0);
  });

  it('at the connection limit, a new connection closes the one that has waited longest for its request', async () => {
    const lines: string[] = [];
    const s = await start(new FakeBackend(), { maxConnections: 2, log: (l: string) => lines.push(l) });
    const open = (): Promise<{ socket: net.Socket; closed: Promise<void> }> => new Promise((resolve) => {
      const socket = net.createConnection(path, () => resolve({ socket, closed }));
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.on('error', () => undefined);
    });
    const first = await open();
    await until(() => s.connections === 1);
    const second = await open();
    await until(() => s.connections === 2);
    expect(await talk(path, GET)).toMatch(/errno=0\n\n$/);
    await first.closed;
    expect(second.socket.destroyed).toBe(false);
    expect(lines.some((l) => l.includes('waited longest'))).toBe(true);
    second.socket.destroy();
  });

  it('a request that trickles in is closed at its deadline: bytes that arrive do not extend it', async () => {
    const lines: string[] = [];
    const s = await start(new FakeBackend(), { requestDeadlineMs: 300, log: (l: string) => lines.push(l) });
    const socket = net.createConnection(path);
    socket.on('error', () => undefined);
    const t0 = Date.now();
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await new Promise((r) => socket.once('connect', r));
    socket.write('set=1\n');
    const trickle = setInterval(() => socket.writable && socket.write('p'), 50); // one byte every 50 ms, forever
    await closed;
    clearInterval(trickle);
    const ms = Date.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2_000);
    expect(lines.some((l) => l.includes('no whole request within 300 ms'))).toBe(true);
    await until(() => s.connections === 0);
  });

  it('16 clients that trickle bytes do not lock out a 17th: it is answered at once', async () => {
    const s = await start(new FakeBackend(key(1)));
    const slow: net.Socket[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const c = net.createConnection(path);
      c.on('error', () => undefined);
      await new Promise((r) => c.once('connect', r));
      c.write('set=1\n');
      slow.push(c);
    }
    await until(() => s.connections === MAX_CONNECTIONS);
    const trickle = setInterval(() => {
      for (const c of slow) if (c.writable) c.write('l');
    }, 20);
    try {
      const t0 = Date.now();
      expect(await talk(path, GET, /\n\n$/, 2_000)).toBe(`private_key=${hex(key(1))}\nerrno=0\n\n`);
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(s.connections).toBeLessThanOrEqual(MAX_CONNECTIONS);
    } finally {
      clearInterval(trickle);
      for (const c of slow) c.destroy();
    }
  });

  it('takes a set of 10,000 peers, and one of a peer with 130,560 allowed IPs, through the socket', async () => {
    const b = new FakeBackend(key(1));
    await start(b);
    const peers = bulkPeers(10_000);
    expect(await talk(path, peers, /\n\n$/, 30_000)).toBe(OK);
    expect(b.device.peerCount).toBe(10_000);
    expect(await talk(path, selftestAllowedIps(PEER_A), /\n\n$/, 30_000)).toBe(OK);
    const got = await talk(path, GET, /errno=0\n\n$/, 30_000);
    expect(got.split('\n').filter((l) => l.startsWith('public_key=')).length).toBe(10_001);
    const allowed = got.slice(got.indexOf(`public_key=${hex(PEER_A)}`)).split('\n').filter((l) => l.startsWith('allowed_ip='));
    expect(allowed.length).toBe(130_560);
    expect(allowed).toContain('allowed_ip=255.255.0.0/16');
    expect(allowed).toContain('allowed_ip=abcd::ff:ff/128');
  });

  it('refuses to start while another server answers on the path', async () => {
    await start();
    await expect(UapiServer.listen(path, new FakeBackend())).rejects.toMatchObject({ code: 'ERR_UAPI_IN_USE' });
    // The first one still works.
    expect(await talk(path, GET)).toMatch(/errno=0\n\n$/);
  });

  it('replaces a stale socket whose daemon is gone', async () => {
    // What a killed daemon leaves: a socket file nobody listens on. Closing a listener
    // unlinks its path, so move the file aside while closing, then put it back.
    await mkdir(dirname(path), { recursive: true });
    const dead = net.createServer();
    await new Promise<void>((resolve) => dead.listen(path, resolve));
    await rename(path, `${path}.aside`);
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    await rename(`${path}.aside`, path);
    expect((await stat(path)).isSocket()).toBe(true);
    await start();
    expect(await talk(path, GET)).toMatch(/errno=0\n\n$/);
  });

  it('leaves a path that is not a socket alone', async () => {
    await start();
    await servers.pop()!.close();
    await writeFile(path, 'not a socket');
    await expect(UapiServer.listen(path, new FakeBackend())).rejects.toBeInstanceOf(UapiServerError);
    await expect(UapiServer.listen(path, new FakeBackend())).rejects.toMatchObject({ code: 'ERR_UAPI_PATH_TAKEN' });
  });

  it('logs a listen_port that could not be put back, with both errors', async () => {
    const lines: string[] = [];
    const b = new FakeBackend();
    b.port = 51820;
    b.markFails = 'EPERM';
    b.busyPorts.add(51820);
    await start(b, { log: (l: string) => lines.push(l) });
    expect(await talk(path, set('listen_port=51821', 'fwmark=7'))).toBe(`errno=-${UAPI_ERRNO.ENOTRECOVERABLE}\n\n`);
    expect(lines).toEqual([expect.stringMatching(/^uapi: refused: fwmark 7: cannot mark; undoing the change: listen_port back to 51820 failed too/)]);
  });

  it('logs refusals without keys', async () => {
    const lines: string[] = [];
    await start(new FakeBackend(), { log: (l: string) => lines.push(l) });
    await talk(path, set(`private_key=${hex(key(1))}0`));
    await talk(path, set(`private_key=${ZERO.slice(1)}x`));
    expect(lines.length).toBe(2);
    for (const l of lines) expect(l).not.toMatch(/[0-9a-f]{16}/);
  });

  it('tells the daemon when its socket file is removed (how wg-quick down stops a userspace daemon)', async () => {
    let removed = 0;
    const s = await start(new FakeBackend(), { onSocketRemoved: () => removed++ });
    await rm(path);
    await until(() => removed === 1);
    await s.close();
    expect(removed).toBe(1);
  });

  it('does not call onSocketRemoved for its own close()', async () => {
    let removed = 0;
    const s = await start(new FakeBackend(), { onSocketRemoved: () => removed++ });
    await s.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(removed).toBe(0);
  });

  it('close() drops open connections', async () => {
    const s = await start();
    const c = net.createConnection(path);
    await new Promise((r) => c.once('connect', r));
    const closed = new Promise((r) => c.once('close', r));
    await s.close();
    await closed;
    servers.splice(0);
  });
});
