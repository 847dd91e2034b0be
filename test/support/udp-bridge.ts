// A UDP socket inside a test namespace, driven from the test process. Lets a test run
// Burrow's sans-I/O engine in-process while its datagrams really cross a veth link to a
// peer such as wireguard-go in another namespace.
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from './netns.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'udp-bridge-child.mjs');

export interface Datagram {
  data: Uint8Array;
  host: string;
  port: number;
}

export class UdpBridge {
  private readonly queue: Datagram[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly child: ChildProcess, readonly port: number) {}

  /** Binds a UDP socket in `ns` (family udp4 or udp6, port 0 = any) and waits until it is ready. */
  static async open(ns: Netns, family: 'udp4' | 'udp6' = 'udp4', port = 0): Promise<UdpBridge> {
    const child = ns.spawn(process.execPath, [CHILD, family, family === 'udp4' ? '0.0.0.0' : '::', String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines = readline.createInterface({ input: child.stdout! });
    let bridge: UdpBridge | undefined;
    const ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`udp bridge in ${ns.name} not ready after 5 s: ${ns.outputOf(child)}`)), 5000);
      child.once('exit', (code) => reject(new Error(`udp bridge in ${ns.name} exited (${code}): ${ns.outputOf(child)}`)));
      lines.on('line', (line) => {
        const m = JSON.parse(line) as { t: string; port: number; host?: string; data?: string };
        if (m.t === 'ready') {
          clearTimeout(timer);
          resolve(m.port);
        } else if (bridge !== undefined) {
          bridge.queue.push({ data: Uint8Array.from(Buffer.from(m.data!, 'hex')), host: m.host!, port: m.port });
          bridge.waiter?.();
        }
      });
    });
    bridge = new UdpBridge(child, await ready);
    return bridge;
  }

  send(data: Uint8Array, host: string, port: number): void {
    this.child.stdin!.write(`${JSON.stringify({ host, port, data: Buffer.from(data).toString('hex') })}\n`);
  }

  /** The next datagram, or an error after `timeoutMs`. */
  async receive(timeoutMs = 5000): Promise<Datagram> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`no datagram within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  /** Every datagram that arrives within `ms`. */
  async drain(ms: number): Promise<Datagram[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin!.end();
  }
}
