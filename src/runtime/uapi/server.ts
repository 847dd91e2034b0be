// The control socket at /var/run/wireguard/IFACE.sock that `wg show`, `wg showconf` and
// `wg set` from wireguard-tools talk to, as they do to wireguard-go.
//
// Per connection: bytes -> lines (framer.ts) -> requests (protocol.ts) -> answers
// (handle.ts), one request at a time and in order. Reading pauses while a request is
// applied or its reply has not drained, so a client that sends much and reads nothing
// holds at most one line, one plan and one reply.
//
// Clients that are slow, or stuck, must not lock `wg` out:
//   - each request has REQUEST_DEADLINE_MS to arrive whole, counted from when the server
//     starts waiting for it (the connection opened, or the previous reply was handed to
//     the socket); bytes that trickle in do not extend it, and the time a request spends
//     being applied is not counted;
//   - at MAX_CONNECTIONS, a new connection closes the one that has waited longest for its
//     request (never one whose request is being applied), rather than being refused.

import { type FSWatcher, watch } from 'node:fs';
import { chmod, lstat, mkdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { basename, dirname } from 'node:path';
import type { UapiBackend } from './apply.js';
import { describe, errnoReply } from './errors.js';
import { nextRequest, UapiLineFramer } from './framer.js';
import { answerUapi } from './handle.js';
import { MAX_CONNECTIONS, MAX_REQUEST_BYTES, REQUEST_DEADLINE_MS } from './limits.js';
import { DEFAULT_REQUEST_LIMITS, UapiReader } from './protocol.js';

export type UapiServerErrorCode =
  /** Another live server answers on the socket path (another daemon has this interface). */
  | 'ERR_UAPI_IN_USE'
  /** Something other than a socket is at the path; it is left alone. */
  | 'ERR_UAPI_PATH_TAKEN'
  /** Creating the directory or the socket failed; `cause` says why. */
  | 'ERR_UAPI_LISTEN';

export class UapiServerError extends Error {
  override readonly name = 'UapiServerError';
  constructor(
    readonly code: UapiServerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface UapiServerOptions {
  /** Default MAX_CONNECTIONS. */
  maxConnections?: number;
  /** Default REQUEST_DEADLINE_MS: the time each request has to arrive whole. */
  requestDeadlineMs?: number;
  /** Default MAX_REQUEST_BYTES. */
  maxRequestBytes?: number;
  /** One line per refused request or closed connection; never contains a key. */
  log?: (line: string) => void;
  /**
   * Called once if the socket file is removed or replaced by someone else. `wg-quick
   * down` removes a userspace interface's socket to stop its daemon (wireguard-go exits
   * then); the daemon should bring the tunnel down.
   */
  onSocketRemoved?: () => void;
}

/** Whether something accepts connections on the unix socket at `path`. */
function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection(path);
    const done = (live: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    // A server that accepts but is too busy to answer still owns the path.
    const timer = setTimeout(() => done(true), timeoutMs);
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}

/** Listens with umask 077 where the process allows it, so the socket is never group/world accessible. */
function listenPrivately(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let restore: number | undefined;
    try {
      restore = process.umask(0o077);
    } catch {
      // Worker threads cannot change the umask; the 0700 directory and chmod below cover it.
    }
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    try {
      server.listen(path);
    } finally {
      if (restore !== undefined) process.umask(restore);
    }
  });
}

/** One client connection. */
class Connection {
  private readonly framer = new UapiLineFramer();
  private readonly reader: UapiReader;
  /** A request is being applied (or waits its turn behind another connection's). */
  applying = false;
  /** performance.now() when the server started waiting for the current request. */
  waitingSince = 0;
  private deadline: NodeJS.Timeout | undefined;
  private pumping = false;
  private ended = false;
  /** The stream was refused: the reply is on its way, nothing more is read. */
  private refused = false;

  constructor(
    readonly socket: net.Socket,
    private readonly server: UapiServer,
    private readonly backend: UapiBackend,
    private readonly deadlineMs: number,
    maxRequestBytes: number,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    this.reader = new UapiReader({ ...DEFAULT_REQUEST_LIMITS, maxRequestBytes });
    socket.on('error', (error) => log?.(`uapi: connection: ${describe(error)}`));
    socket.on('close', () => {
      this.stopWaiting();
      this.framer.wipe();
      this.reader.wipe();
      server.forget(this);
    });
    socket.on('end', () => {
      // The client is done sending; answer what it sent, then close our side.
      this.ended = true;
      void this.pump();
    });
    socket.on('data', (chunk: Buffer) => {
      if (!this.refused) this.framer.push(chunk);
      chunk.fill(0);
      void this.pump();
    });
    this.startWaiting();
  }

  close(why: string): void {
    if (this.socket.destroyed) return;
    this.log?.(`uapi: ${why}: closed the connection`);
    this.socket.destroy();
  }

  private startWaiting(): void {
    this.stopWaiting();
    this.waitingSince = performance.now();
    this.deadline = setTimeout(() => this.close(`no whole request within ${this.deadlineMs} ms`), this.deadlineMs);
    this.deadline.unref();
  }

  private stopWaiting(): void {
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.refused) return;
    this.pumping = true;
    const { socket, framer, reader } = this;
    try {
      while (!socket.destroyed) {
        const result = nextRequest(framer, reader);
        if (result === undefined) break;
        if (result.op === 'fatal') {
          // The stream cannot be resynchronised: answer and hang up.
          this.log?.(`uapi: refused: ${result.error.message}`);
          this.refused = true;
          this.stopWaiting();
          framer.wipe();
          reader.wipe();
          socket.end(errnoReply(result.error.errno));
          return;
        }
        this.stopWaiting();
        this.applying = true;
        socket.pause();
        const answer = await answerUapi(result, this.backend);
        this.applying = false;
        if (answer.error !== undefined) this.log?.(`uapi: refused: ${answer.error.message}`);
        if (socket.destroyed) return;
        // Draining the reply counts against the next request's deadline.
        this.startWaiting();
        if (!socket.write(answer.reply)) await drained(socket);
        if (!socket.destroyed) socket.resume();
      }
      if (this.ended && !socket.destroyed) {
        // Whatever is left is an unfinished request: nothing to answer.
        framer.wipe();
        reader.wipe();
        this.stopWaiting();
        socket.end();
      }
    } catch (error) {
      this.log?.(`uapi: connection: ${describe(error)}`);
      socket.destroy();
    } finally {
      this.pumping = false;
    }
  }
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * The control socket for one device: `wg show`, `wg showconf` and `wg set` work against
 * it. Created mode 0600 (it hands out the private key), in a directory created 0700 if
 * missing.
 */
export class UapiServer {
  private readonly server: net.Server;
  private readonly open = new Set<Connection>();
  private identity: { dev: number; ino: number } | undefined;
  private watcher: FSWatcher | undefined;
  private closing: Promise<void> | undefined;
  private readonly maxConnections: number;
  private readonly maxRequestBytes: number;
  private readonly requestDeadlineMs: number;
  private readonly log: ((line: string) => void) | undefined;

  private constructor(
    readonly path: string,
    private readonly backend: UapiBackend,
    options: UapiServerOptions,
  ) {
    this.maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
    this.maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
    this.requestDeadlineMs = options.requestDeadlineMs ?? REQUEST_DEADLINE_MS;
    this.log = options.log;
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.on('error', (error) => this.log?.(`uapi: ${describe(error)}`));
  }

  /**
   * Listens on `path`. Refuses (ERR_UAPI_IN_USE) when a live server answers there,
   * removes a stale socket left by a daemon that died, and leaves anything that is not
   * a socket alone (ERR_UAPI_PATH_TAKEN).
   */
  static async listen(path: string, backend: UapiBackend, options: UapiServerOptions = {}): Promise<UapiServer> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new UapiServerError('ERR_UAPI_LISTEN', `cannot create ${dir}: ${describe(error)}`, { cause: error });
    }
    const existing = await lstat(path).catch(() => undefined);
    if (existing !== undefined) {
      if (!existing.isSocket()) throw new UapiServerError('ERR_UAPI_PATH_TAKEN', `${path} exists and is not a socket; not touching it`);
      if (await answers(path)) throw new UapiServerError('ERR_UAPI_IN_USE', `another daemon answers on ${path}`);
      await rm(path, { force: true }); // stale: its daemon is gone
    }

    const self = new UapiServer(path, backend, options);
    try {
      await listenPrivately(self.server, path);
      await chmod(path, 0o600);
      const st = await stat(path);
      self.identity = { dev: st.dev, ino: st.ino };
      if (options.onSocketRemoved !== undefined) self.watchSocket(options.onSocketRemoved);
    } catch (error) {
      await self.close().catch(() => undefined);
      const code = (error as { code?: unknown }).code;
      if (code === 'EADDRINUSE') throw new UapiServerError('ERR_UAPI_IN_USE', `${path} was taken while starting`, { cause: error });
      throw new UapiServerError('ERR_UAPI_LISTEN', `cannot listen on ${path}: ${describe(error)}`, { cause: error });
    }
    return self;
  }

  /** Connections open now. */
  get connections(): number {
    return this.open.size;
  }

  /** Stops listening, drops every connection and removes the socket file (if still ours). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.watcher?.close();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const c of this.open) c.socket.destroy();
      await closed;
      // libuv unlinks a bound pipe's path when it closes it; if it did not, remove it
      // here, but never a socket another daemon has put there since.
      const st = await stat(this.path).catch(() => undefined);
      const id = this.identity;
      if (st !== undefined && id !== undefined && st.dev === id.dev && st.ino === id.ino) await rm(this.path, { force: true });
    })();
    return this.closing;
  }

  /** A connection closed (Connection calls this). */
  forget(connection: Connection): void {
    this.open.delete(connection);
  }

  private watchSocket(onRemoved: () => void): void {
    const name = basename(this.path);
    let fired = false;
    const check = async (): Promise<void> => {
      const st = await lstat(this.path).catch(() => undefined);
      const id = this.identity;
      const ours = st !== undefined && id !== undefined && st.dev === id.dev && st.ino === id.ino;
      if (ours || fired || this.closing !== undefined) return;
      fired = true;
      this.watcher?.close();
      onRemoved();
    };
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
      if (filename === null || filename === name) void check();
    });
    this.watcher.on('error', (error) => this.log?.(`uapi: watching ${this.path}: ${describe(error)}`));
  }

  private accept(socket: net.Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    if (this.open.size >= this.maxConnections) {
      let oldest: Connection | undefined;
      for (const c of this.open) if (!c.applying && (oldest === undefined || c.waitingSince < oldest.waitingSince)) oldest = c;
      if (oldest === undefined) {
        this.log?.(`uapi: ${this.open.size} connections are busy applying requests: refused a new one`);
        socket.destroy();
        return;
      }
      oldest.close(`${this.open.size} connections open, this one waited longest for its request`);
      this.open.delete(oldest);
    }
    this.open.add(new Connection(socket, this, this.backend, this.requestDeadlineMs, this.maxRequestBytes, this.log));
  }
}
