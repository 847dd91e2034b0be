// The apps' resolver: a DNS server the daemon runs for per-app routing. The app's
// processes do not know it is there: nftables redirects their DNS (port 53, UDP and TCP)
// to the app's own port on the loopback (platform/linux/perapp.ts), so the resolver
// always knows which app asked.
//
//   A name that matches the app's domains (policy/domains.ts) is resolved through the
//   tunnel, at the tunnel's DNS servers (DNS = in the file), never at the direct
//   resolver, whatever happens: a failure is SERVFAIL. For A and AAAA, the CNAME chain is
//   followed (within the answer, then by asking for the last target, at most
//   MAX_CNAME_HOPS times), and every address at the end of it is added to the app's
//   nftables set, with the record's TTL clamped (policy/perapp.ts), BEFORE the answer is
//   sent: a connection the app opens with the answer is always marked. The answer's TTLs
//   are lowered to what the set keeps. A or AAAA of a family the tunnel has no address
//   of is answered with no address (NODATA). Other types (MX, SRV, TXT…) of a matched name are
//   answered from the tunnel's DNS too, and add nothing.
//   Any other name is passed, bytes as they came, to the direct resolver (the system's,
//   /etc/resolv.conf when the tunnel came up), over the transport the app used.
//
// UDP and TCP (RFC 7766) both. An answer too big for the app's UDP limit (512 bytes, or
// its EDNS payload size up to 4096) is sent truncated (TC, no records), and the app
// asks again over TCP; the tunnel's DNS is asked over UDP with EDNS first and over TCP
// when its answer is truncated. Upstream queries leave from the tunnel's own address,
// which a policy rule routes into the tunnel. The wire format is dns-packet's.
// Bounded: queries in flight per app, TCP connections per app, message sizes, time.

import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, isIP, type Server, type Socket as TcpSocket } from 'node:net';
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet';
import { answerTtl, type AppRule, appMatches, comparableName, setEntryTimeout } from '../policy/index.js';
import type { Logger } from './log.js';

export const MAX_CNAME_HOPS = 8;
const UPSTREAM_TIMEOUT_MS = 3000;
const TCP_IDLE_MS = 10_000;
const MAX_IN_FLIGHT = 256;
const MAX_TCP_CONNECTIONS = 64;
const EDNS_PAYLOAD = 1232;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2 } as const;

export interface SetEntry {
  readonly family: 4 | 6;
  readonly address: string;
  /** Seconds the entry lives. */
  readonly timeout: number;
}

export interface ResolverOptions {
  readonly apps: readonly AppRule[];
  /** The tunnel's DNS servers: where matched names are resolved. */
  readonly tunnelServers: readonly string[];
  /** The tunnel's own addresses per family: upstream queries to the tunnel's DNS leave from these. */
  readonly tunnelSource: { readonly v4?: string; readonly v6?: string };
  /** The direct resolvers; default: the nameservers of /etc/resolv.conf. */
  readonly directServers?: readonly string[];
  /** Adds addresses to an app's set; the answer waits for it, and a failure is SERVFAIL. */
  readonly addToSet: (app: string, entries: readonly SetEntry[]) => Promise<void>;
  readonly log: Logger;
}

/** The nameservers of a resolv.conf text, in order. */
export function nameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIP(m[1]!.split('%')[0]!) !== 0) out.push(m[1]!);
  }
  return out;
}

/** The largest UDP answer the asker takes: 512, or its EDNS payload size (RFC 6891), at most 4096. */
export function udpLimit(query: Packet): number {
  const opt = (query.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const size = opt?.udpPayloadSize ?? 512;
  return Math.min(4096, Math.max(512, size));
}

/**
 * The addresses a CNAME chain from `name` reaches in `answers`, of `type` (A or AAAA),
 * and the last name of the chain (for asking further when it has no address).
 */
export function followChain(name: string, type: 'A' | 'AAAA', answers: readonly Answer[]): { addresses: { address: string; ttl: number }[]; last: string } {
  const key = (n: string): string => comparableName(n) ?? n.toLowerCase();
  let current = key(name);
  const seen = new Set<string>([current]);
  for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
    const cname = answers.find((a) => a.type === 'CNAME' && key(a.name) === current);
    if (cname === undefined) break;
    const next = key(String((cname as { data: unknown }).data));
    if (seen.has(next)) break; // a loop
    seen.add(next);
    current = next;
  }
  const addresses = answers
    .filter((a) => a.type === type && seen.has(key(a.name)))
    .map((a) => a as { data: unknown; ttl?: number })
    .map((a) => ({ address: String(a.data), ttl: a.ttl ?? 0 }));
  return { addresses, last: current };
}

function encodeResponse(query: Packet, rcode: number, answers: Answer[] = [], authorities: Answer[] = []): Buffer {
  const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  const edns = (query.additionals ?? []).some((a) => a.type === 'OPT');
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: rd | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: query.questions ?? [],
    answers,
    authorities,
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD } as unknown as Answer] : [],
  });
}

/** The same response with no records and TC set: "ask again over TCP". */
function truncated(query: Packet, rcode: number): Buffer {
  const bytes = encodeResponse(query, rcode);
  bytes.writeUInt16BE(bytes.readUInt16BE(2) | dnsPacket.TRUNCATED_RESPONSE, 2);
  return bytes;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`${what}: no answer within ${ms} ms`));
    }, ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** One query over UDP to `server`, from `source` when given; the reply's bytes. */
export function askUdp(server: string, query: Buffer, source?: string): Promise<Buffer> {
  const socket = createSocket(isIP(server) === 6 ? 'udp6' : 'udp4');
  const id = query.readUInt16BE(0);
  const answer = new Promise<Buffer>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('message', (msg, rinfo) => {
      if (rinfo.address === server && rinfo.port === 53 && msg.length >= 12 && msg.readUInt16BE(0) === id) resolve(msg);
    });
    socket.bind({ port: 0, ...(source === undefined ? {} : { address: source }) }, () => socket.send(query, 53, server));
  });
  return withTimeout(answer, UPSTREAM_TIMEOUT_MS, `DNS over UDP to ${server}`, () => undefined).finally(() => socket.close());
}

/** One query over TCP to `server` (two-byte length prefix, RFC 1035 4.2.2); the reply's bytes. */
export function askTcp(server: string, query: Buffer, source?: string): Promise<Buffer> {
  const socket = createConnection({ host: server, port: 53, ...(source === undefined ? {} : { localAddress: source }) });
  const answer = new Promise<Buffer>((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) resolve(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
    socket.on('end', () => reject(new Error(`DNS over TCP to ${server}: closed before a whole answer`)));
  });
  return withTimeout(answer, UPSTREAM_TIMEOUT_MS, `DNS over TCP to ${server}`, () => socket.destroy()).finally(() => socket.destroy());
}

interface Listener {
  readonly app: AppRule;
  readonly port: number;
  readonly udp: Socket[];
  readonly tcp: Server[];
  inFlight: number;
  connections: number;
}

export class PerAppResolver {
  private readonly listeners: Listener[] = [];
  private readonly direct: readonly string[];
  private closed = false;

  private constructor(private readonly o: ResolverOptions) {
    this.direct = o.directServers ?? nameservers(readFileSync('/etc/resolv.conf', 'utf8'));
  }

  /** Listens for every app on a port of its own, 127.0.0.1 and ::1, UDP and TCP. */
  static async start(o: ResolverOptions): Promise<PerAppResolver> {
    const r = new PerAppResolver(o);
    try {
      for (const app of o.apps) r.listeners.push(await r.listen(app));
    } catch (e) {
      await r.close();
      throw e;
    }
    if (r.direct.length === 0) o.log.error('per-app resolver: /etc/resolv.conf names no nameserver: names outside the apps\' domains get SERVFAIL');
    return r;
  }

  /** The port each app's resolver listens on. */
  get ports(): ReadonlyMap<string, number> {
    return new Map(this.listeners.map((l) => [l.app.name, l.port]));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const l of this.listeners.splice(0)) {
      for (const s of l.udp) s.close();
      await Promise.all(l.tcp.map((s) => new Promise((resolve) => s.close(resolve))));
    }
  }

  private async listen(app: AppRule): Promise<Listener> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const udp4 = createSocket('udp4');
      const port = await new Promise<number>((resolve, reject) => {
        udp4.once('error', reject);
        udp4.bind({ address: '127.0.0.1', port: 0 }, () => resolve(udp4.address().port));
      });
      const l: Listener = { app, port, udp: [udp4], tcp: [], inFlight: 0, connections: 0 };
      try {
        l.tcp.push(await this.tcpServer(l, '127.0.0.1', port));
        try {
          const udp6 = createSocket({ type: 'udp6', ipv6Only: true });
          await new Promise<void>((resolve, reject) => {
            udp6.once('error', reject);
            udp6.bind({ address: '::1', port }, () => resolve());
          });
          l.udp.push(udp6);
          l.tcp.push(await this.tcpServer(l, '::1', port));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw e;
          this.o.log.info(`per-app resolver for ${app.name}: no IPv6 loopback (${(e as Error).message}); IPv4 only`);
        }
      } catch (e) {
        for (const s of l.udp) s.close();
        for (const s of l.tcp) s.close();
        if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw e;
      }
      for (const socket of l.udp) socket.on('message', (msg, rinfo) => this.onDatagram(l, socket, msg, rinfo));
      return l;
    }
    throw new Error(`per-app resolver for ${app.name}: no port free on both UDP and TCP after 10 tries`);
  }

  private tcpServer(l: Listener, host: string, port: number): Promise<Server> {
    const server = createServer((socket) => this.onConnection(l, socket));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, ipv6Only: host === '::1', exclusive: true }, () => resolve(server));
    });
  }

  private onDatagram(l: Listener, socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    if (l.inFlight >= MAX_IN_FLIGHT || this.closed) return; // dropped: the app retries
    l.inFlight++;
    this.answer(l, msg, 'udp')
      .then((reply) => {
        if (reply !== undefined && !this.closed) socket.send(reply, rinfo.port, rinfo.address);
      })
      .catch((e: unknown) => this.o.log.error(`per-app resolver for ${l.app.name}: ${(e as Error).message}`))
      .finally(() => l.inFlight--);
  }

  private onConnection(l: Listener, socket: TcpSocket): void {
    if (l.connections >= MAX_TCP_CONNECTIONS || this.closed) {
      socket.destroy();
      return;
    }
    l.connections++;
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => l.connections--);
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        // One at a time per connection, answers in order.
        queue = queue.then(async () => {
          try {
            const reply = await this.answer(l, message, 'tcp');
            if (reply === undefined || socket.destroyed) return;
            const length = Buffer.alloc(2);
            length.writeUInt16BE(reply.length);
            socket.write(Buffer.concat([length, reply]));
          } catch (e) {
            this.o.log.error(`per-app resolver for ${l.app.name}: ${(e as Error).message}`);
            socket.destroy();
          }
        });
      }
    });
  }

  /** The reply to one query, or undefined to stay silent (not DNS at all). */
  private async answer(l: Listener, msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let query: Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    if (query.type !== 'query') return undefined;
    const question = query.questions?.[0];
    if (question === undefined || query.questions!.length !== 1) return encodeResponse(query, RCODE.FORMERR);
    if (!appMatches(l.app, question.name)) return this.forwardDirect(msg, query, transport);
    // A family the tunnel has no address of cannot be routed through it: no such
    // address (NODATA), so the app takes the other family through the tunnel.
    if ((question.type === 'A' && this.o.tunnelSource.v4 === undefined) || (question.type === 'AAAA' && this.o.tunnelSource.v6 === undefined)) {
      return encodeResponse(query, RCODE.NOERROR);
    }

    let reply: Buffer;
    try {
      const { rcode, answers, authorities } = await this.resolveMatched(l.app, question);
      reply = encodeResponse(query, rcode, answers, authorities);
    } catch (e) {
      this.o.log.error(`per-app resolver for ${l.app.name}: ${question.name} ${question.type}: ${(e as Error).message}: SERVFAIL`);
      return encodeResponse(query, RCODE.SERVFAIL);
    }
    if (transport === 'udp' && reply.length > udpLimit(query)) return truncated(query, RCODE.NOERROR);
    return reply;
  }

  /** Asks the tunnel's DNS, UDP first, TCP when the answer is truncated; tries each server in turn. */
  private async askTunnel(question: Question): Promise<Packet> {
    const bytes = dnsPacket.encode({
      type: 'query',
      id: randomInt(0, 65536),
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: question.type, name: question.name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD } as unknown as Answer],
    });
    let last: Error | undefined;
    for (const server of this.o.tunnelServers) {
      const source = isIP(server) === 6 ? this.o.tunnelSource.v6 : this.o.tunnelSource.v4;
      if (source === undefined) {
        last = new Error(`the tunnel has no IPv${isIP(server)} address to ask ${server} from`);
        continue;
      }
      try {
        let reply = dnsPacket.decode(await askUdp(server, bytes, source));
        if (reply.flag_tc) reply = dnsPacket.decode(await askTcp(server, bytes, source));
        return reply;
      } catch (e) {
        last = e as Error;
      }
    }
    throw last ?? new Error('no tunnel DNS server');
  }

  private async resolveMatched(app: AppRule, question: Question): Promise<{ rcode: number; answers: Answer[]; authorities: Answer[] }> {
    const reply = await this.askTunnel(question);
    const rcode = (reply.flags ?? 0) & 0xf;
    const answers = [...(reply.answers ?? [])];
    if ((question.type === 'A' || question.type === 'AAAA') && rcode === RCODE.NOERROR) {
      let chain = followChain(question.name, question.type, answers);
      for (let hop = 0; chain.addresses.length === 0 && chain.last !== (comparableName(question.name) ?? question.name) && hop < MAX_CNAME_HOPS; hop++) {
        const next = await this.askTunnel({ type: question.type, name: chain.last, class: 'IN' });
        const before = chain.last;
        answers.push(...(next.answers ?? []));
        chain = followChain(question.name, question.type, answers);
        if (chain.last === before && chain.addresses.length === 0) break;
      }
      const family = question.type === 'A' ? 4 : 6;
      const entries = chain.addresses.map((a) => ({ family, address: a.address, timeout: setEntryTimeout(a.ttl) }) as SetEntry);
      if (entries.length > 0) await this.o.addToSet(app.name, entries);
      this.o.log.debug(`per-app resolver: ${app.name} asked ${question.name} ${question.type}: ${entries.map((e) => e.address).join(', ') || 'no address'} through the tunnel`);
    }
    const lower = (a: Answer): Answer => ('ttl' in a && typeof a.ttl === 'number' ? ({ ...a, ttl: answerTtl(a.ttl) } as Answer) : a);
    return { rcode, answers: answers.map(lower), authorities: (reply.authorities ?? []).map(lower) };
  }

  /** A name that is not the app's: the query's own bytes to the direct resolver, its reply's back. */
  private async forwardDirect(msg: Buffer, query: Packet, transport: 'udp' | 'tcp'): Promise<Buffer> {
    for (const server of this.direct) {
      try {
        return transport === 'udp' ? await askUdp(server.split('%')[0]!, msg) : await askTcp(server.split('%')[0]!, msg);
      } catch {
        // the next one
      }
    }
    return encodeResponse(query, RCODE.SERVFAIL);
  }
}
