// The tunnel's UDP sockets: one IPv4 and one IPv6 socket on the same port (the
// interface's ListenPort), optionally marked with SO_MARK so that policy routing keeps
// them out of the tunnel (wg-quick's fwmark).

import dgram from 'node:dgram';
import type { Endpoint } from '../../tunnel/peer.js';
import { loadAddon } from './tun.js';

export type DatagramHandler = (data: Uint8Array, from: Endpoint) => void;

export class UdpError extends Error {
  override readonly name = 'UdpError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The file descriptor behind a dgram socket, without the deprecated `_handle` getter. */
function socketFd(sock: dgram.Socket): number {
  const state = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const handle = state === undefined ? undefined : (sock as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new UdpError('ERR_UDP_FD', 'cannot find the UDP socket descriptor to mark');
  return fd;
}

function bind(type: 'udp4' | 'udp6', port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    const onError = (e: NodeJS.ErrnoException) => {
      sock.close();
      reject(e);
    };
    sock.once('error', onError);
    sock.bind({ port, address: type === 'udp4' ? '0.0.0.0' : '::', exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

export class UdpTransport {
  private mark = 0;

  private constructor(private v4: dgram.Socket, private v6: dgram.Socket | undefined, private handler: DatagramHandler) {
    this.attach();
  }

  /** Binds both families on `port` (0 = any free port, the same for both). */
  static async open(port: number, handler: DatagramHandler): Promise<UdpTransport> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UdpError('ERR_UDP_PORT', `listen port must be 0 to 65535, got ${port}`);
    const [v4, v6] = await UdpTransport.bindPair(port);
    return new UdpTransport(v4, v6, handler);
  }

  private static async bindPair(port: number): Promise<[dgram.Socket, dgram.Socket | undefined]> {
    for (let attempt = 0; attempt < 10; attempt++) {
      let v4: dgram.Socket;
      try {
        v4 = await bind('udp4', port);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new UdpError('EADDRINUSE', `UDP port ${port} is in use: choose another ListenPort`);
        throw new UdpError(code ?? 'ERR_UDP', `cannot open a UDP socket: ${(e as Error).message}`);
      }
      const chosen = v4.address().port;
      try {
        return [v4, await bind('udp6', chosen)];
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') return [v4, undefined]; // no IPv6 here
        v4.close();
        if (code === 'EADDRINUSE' && port === 0) continue; // the v6 twin of a random port was taken: try another
        throw new UdpError(code ?? 'ERR_UDP', `cannot open the IPv6 UDP socket on port ${chosen}: ${(e as Error).message}`);
      }
    }
    throw new UdpError('EADDRINUSE', 'no UDP port free for both IPv4 and IPv6');
  }

  private attach(): void {
    for (const sock of [this.v4, this.v6]) {
      sock?.on('message', (msg, rinfo) => this.handler(msg, { host: rinfo.address, port: rinfo.port }));
      sock?.on('error', () => undefined); // ICMP errors surface here; the engine's timers retry
    }
  }

  get port(): number {
    return this.v4.address().port;
  }

  get fwmark(): number {
    return this.mark;
  }

  /** SO_MARK on both sockets (0 clears it). */
  setMark(mark: number): void {
    if (!Number.isInteger(mark) || mark < 0 || mark > 0xffff_ffff) throw new UdpError('ERR_UDP_MARK', 'fwmark must be a 32-bit number');
    const addon = loadAddon();
    for (const sock of [this.v4, this.v6]) if (sock) addon.setSocketMark(socketFd(sock), mark);
    this.mark = mark;
  }

  /** Rebinds to a new port (`wg set listen-port`), keeping the mark. */
  async rebind(port: number): Promise<void> {
    const [v4, v6] = await UdpTransport.bindPair(port);
    this.closeSockets();
    this.v4 = v4;
    this.v6 = v6;
    this.attach();
    if (this.mark !== 0) this.setMark(this.mark);
  }

  /** Sends a copy of `data` (the engine reuses its buffer as soon as this returns). */
  send(data: Uint8Array, to: Endpoint): void {
    const v6 = to.host.includes(':');
    const sock = v6 ? this.v6 : this.v4;
    if (sock === undefined) return;
    sock.send(Buffer.from(data), to.port, to.host);
  }

  private closeSockets(): void {
    this.v4.close();
    this.v6?.close();
  }

  close(): void {
    this.closeSockets();
  }
}
