// Test hosts built from Linux network namespaces and veth pairs.
//
// Everything made here lives inside namespaces this module created: addresses, links and
// processes. Nothing is added to the host's own namespace except what `ip netns add`
// itself needs (/run/netns/NAME) and the per-namespace resolver file
// /etc/netns/NAME/resolv.conf, which makes `ip netns exec` bind-mount a harmless
// resolv.conf over /etc/resolv.conf so nothing run inside can rewrite the host's.
//
// Teardown is layered, so that a failing test never leaves a host behind:
//   1. `withNetns(fn)` / `netnsSuite()` destroy what they created, even when fn throws;
//   2. every Netns is registered, and `destroyAllNetns()` destroys those still alive;
//   3. on process exit (and SIGINT/SIGTERM/SIGHUP) a synchronous pass kills the
//      processes this module spawned, by PID, and deletes the namespaces.

import { type ChildProcess, execFile, execFileSync, spawn, type StdioOptions } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { afterAll } from 'vitest';

/** Linux IFNAMSIZ - 1: the longest interface name the kernel accepts. */
export const MAX_IFNAME_LENGTH = 15;
const DEFAULT_EXEC_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 2_000;
const OUTPUT_TAIL_BYTES = 8 * 1024;

// ---------------------------------------------------------------------------------
// Names

let nameCounter = 0;

/**
 * A name unique to this test run: `PREFIX-PID-N` (pid and counter in base 36), at most
 * 15 characters so it is valid both as a namespace and as an interface name. Because
 * /var/run/wireguard/ is shared by every namespace, wireguard interface names must come
 * from here too. The prefix is 1 to 5 characters of [a-z0-9].
 */
export function uniqueName(prefix: string): string {
  if (!/^[a-z0-9]{1,5}$/.test(prefix)) {
    throw new RangeError(`uniqueName: the prefix must be 1 to 5 characters of [a-z0-9], got ${JSON.stringify(prefix)}`);
  }
  nameCounter += 1;
  const name = `${prefix}-${process.pid.toString(36)}-${nameCounter.toString(36)}`;
  if (name.length > MAX_IFNAME_LENGTH) {
    throw new RangeError(`uniqueName: ${name} is longer than ${MAX_IFNAME_LENGTH} characters; use a shorter prefix`);
  }
  return name;
}

// ---------------------------------------------------------------------------------
// Errors

/** A command run in (or for) a namespace failed; `stderr` says why. */
export class NetnsCommandError extends Error {
  readonly code = 'ERR_NETNS_COMMAND';
  override readonly name = 'NetnsCommandError';
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number | string | null,
    readonly stderr: string,
    readonly stdout: string,
    readonly timedOut: boolean,
  ) {
    const why = timedOut ? 'timed out' : `failed (exit ${String(exitCode)})`;
    const detail = stderr.trim() || stdout.trim();
    super(`${command.join(' ')} ${why}${detail ? `: ${detail}` : ''}`);
  }
}

export interface ExecOptions {
  /** Killed (SIGKILL) after this long; default 10 s. */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
}

/** Runs a command on the host (not in a namespace) and returns its stdout. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const argv = [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        const e = error as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
        const timedOut = e.killed === true && e.signal === 'SIGKILL';
        reject(new NetnsCommandError(argv, e.code ?? e.signal ?? null, stderr, stdout, timedOut));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

// ---------------------------------------------------------------------------------
// Processes

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers signal 0; it has exited, only not yet been reaped.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `pid` has exited; false if it is still running after `ms`. */
export async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

function childExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Waits for a child we spawned to exit, also when it already has (listening for 'exit'
 * alone misses that); false if it is still running after `ms`.
 */
export function waitForChildExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (childExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/**
 * Stops a process we spawned: SIGTERM, then SIGKILL after `graceMs`, by PID only.
 * Resolves once it has exited.
 */
export async function stopChild(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || childExited(child)) return;
  signal(pid, 'SIGTERM');
  if (await waitForChildExit(child, graceMs)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitForChildExit(child, graceMs))) {
    throw new Error(`process ${pid} did not exit after SIGKILL`);
  }
}

// ---------------------------------------------------------------------------------
// Namespaces

const live = new Set<Netns>();

export interface SpawnOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /**
   * Default ['ignore', 'pipe', 'pipe']. Piped stdout and stderr are always drained, the
   * last 8 KiB kept for `ns.outputOf(child)`, so a chatty child can never block.
   */
  stdio?: StdioOptions;
}

/** One test host: a network namespace with `lo` up and its own resolv.conf. */
export class Netns {
  private readonly children = new Set<ChildProcess>();
  private readonly outputs = new WeakMap<ChildProcess, { text: string }>();
  private readonly hooks: Array<() => Promise<void> | void> = [];
  private readonly files = new Set<string>();
  private destroying: Promise<void> | undefined;
  private deleted = false;

  private constructor(readonly name: string) {}

  /** The directory whose files `ip netns exec` bind-mounts over /etc. */
  get etcDir(): string {
    return `/etc/netns/${this.name}`;
  }

  /** Creates a namespace named `uniqueName(prefix)`, with resolv.conf and `lo` up. */
  static async create(prefix = 'bns'): Promise<Netns> {
    installExitHook();
    const ns = new Netns(uniqueName(prefix));
    // Create the resolver file first: from the first `ip netns exec`, /etc/resolv.conf
    // inside is this file, never the host's.
    await mkdir(ns.etcDir, { recursive: true, mode: 0o755 });
    await writeFile(`${ns.etcDir}/resolv.conf`, `# Burrow test namespace ${ns.name}: no resolver\n`, { mode: 0o644 });
    live.add(ns);
    try {
      await run('ip', ['netns', 'add', ns.name]);
      await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    } catch (error) {
      await ns.destroy().catch(() => undefined);
      throw error;
    }
    return ns;
  }

  /** Runs `cmd args` inside the namespace; returns stdout, throws NetnsCommandError. */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    this.checkUsable();
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /**
   * Starts a long-running `cmd args` inside the namespace. `ip netns exec` execs the
   * command in place, so the ChildProcess's pid is the command's own. The process is
   * stopped by PID on destroy().
   */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.checkUsable();
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    if (child.pid === undefined) {
      // spawn reports ENOENT and friends asynchronously; keep the error from escaping.
      child.once('error', () => undefined);
      throw new Error(`could not start ${cmd} in ${this.name}`);
    }
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const out = { text: '' };
    this.outputs.set(child, out);
    const keep = (chunk: Buffer): void => {
      out.text = (out.text + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return child;
  }

  /** The last 8 KiB a spawned child wrote to its piped stdout and stderr. */
  outputOf(child: ChildProcess): string {
    return this.outputs.get(child)?.text ?? '';
  }

  /**
   * Runs `fn` on destroy, before processes are stopped and while the namespace still
   * exists; the last registered runs first.
   */
  onDestroy(fn: () => Promise<void> | void): void {
    this.hooks.push(fn);
  }

  /** Removes this host path on destroy, also on the synchronous exit path. */
  removeOnDestroy(path: string): void {
    this.files.add(path);
  }

  /** PIDs of every process inside the namespace (`ip netns pids`). */
  async pids(): Promise<number[]> {
    const out = await run('ip', ['netns', 'pids', this.name]);
    return out
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  }

  /**
   * Runs the onDestroy hooks, stops every process we started in the namespace (by PID),
   * deletes the namespace and its /etc/netns directory. Idempotent; every step is tried
   * even when an earlier one fails, and the failures are thrown together at the end.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    };
    for (const hook of this.hooks.splice(0).reverse()) await attempt(hook);
    await Promise.all([...this.children].map((child) => attempt(() => stopChild(child))));
    // Anything still inside was started from a command we ran here (a daemon that
    // forked); it dies with the host it belongs to.
    if (existsSync(`/run/netns/${this.name}`)) {
      await attempt(async () => {
        const leftovers = (await this.pids()).filter((pid) => pid !== process.pid);
        for (const pid of leftovers) signal(pid, 'SIGKILL');
        for (const pid of leftovers) {
          if (!(await waitForExit(pid, STOP_GRACE_MS))) throw new Error(`process ${pid} in ${this.name} survived SIGKILL`);
        }
      });
      await attempt(() => run('ip', ['netns', 'del', this.name]));
    }
    this.deleted = true;
    for (const path of this.files) await attempt(() => rm(path, { force: true }));
    await attempt(() => rm(this.etcDir, { recursive: true, force: true }));
    live.delete(this);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `tearing down namespace ${this.name}: ${errors.length} steps failed`);
  }

  /** Synchronous last resort for process exit: SIGKILL by PID, delete, remove files. */
  destroySync(): void {
    for (const child of this.children) if (child.pid !== undefined && !childExited(child)) signal(child.pid, 'SIGKILL');
    try {
      const pids = execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const pid of pids.split(/\s+/).filter((s) => s !== '').map(Number)) if (pid !== process.pid) signal(pid, 'SIGKILL');
    } catch {
      // the namespace is already gone
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore', timeout: 5_000 });
    } catch {
      // the namespace is already gone
    }
    for (const path of this.files) rmSync(path, { force: true });
    rmSync(this.etcDir, { recursive: true, force: true });
    this.deleted = true;
    live.delete(this);
  }

  private checkUsable(): void {
    if (this.deleted) throw new Error(`namespace ${this.name} has been destroyed`);
  }
}

/** Names from `ip netns list` (all namespaces on the host, not only ours). */
export async function listNetns(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((line) => line.trim().split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** Destroys every namespace this process created and has not destroyed yet. */
export async function destroyAllNetns(): Promise<void> {
  const results = await Promise.allSettled([...live].map((ns) => ns.destroy()));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (errors.length > 0) throw new AggregateError(errors, `${errors.length} namespaces failed to tear down`);
}

let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const sweep = (): void => {
    for (const ns of [...live]) {
      try {
        ns.destroySync();
      } catch {
        // keep sweeping the others
      }
    }
  };
  process.on('exit', sweep);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      sweep();
      // Hand the signal on: if nobody else listens, the default action ends the process.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.once(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------------
// A pair of hosts joined by a veth link

export interface PairOptions {
  /** Namespace name prefix (1-5 of [a-z0-9]); default 'bp'. */
  prefix?: string;
  /** Default 198.51.100.1 and .2 (TEST-NET-2, documentation), /24. */
  aAddr4?: string;
  bAddr4?: string;
  prefixLength4?: number;
  /** Default 2001:db8:5100::1 and ::2 (documentation), /64, added with `nodad`. */
  aAddr6?: string;
  bAddr6?: string;
  prefixLength6?: number;
  /** MTU of both veth ends; the kernel's default (1500) when omitted. */
  mtu?: number;
}

export interface Pair {
  a: Netns;
  b: Netns;
  /** The veth end inside a, and the one inside b. */
  aIf: string;
  bIf: string;
  aAddr4: string;
  bAddr4: string;
  aAddr6: string;
  bAddr6: string;
  /** Destroys both namespaces (and so the link). */
  destroy(): Promise<void>;
}

const LINK_UP_TIMEOUT_MS = 5_000;

async function waitLinkUp(ns: Netns, ifname: string): Promise<void> {
  const deadline = Date.now() + LINK_UP_TIMEOUT_MS;
  for (;;) {
    const out = await ns.exec('ip', ['-o', 'link', 'show', 'dev', ifname]);
    if (/\bstate UP\b/.test(out)) return;
    if (Date.now() >= deadline) throw new Error(`${ifname} in ${ns.name} is not up after ${LINK_UP_TIMEOUT_MS} ms: ${out.trim()}`);
    await sleep(20);
  }
}

/** Two fresh namespaces `a` and `b` joined by a veth pair, each end with IPv4 and IPv6. */
export async function createPair(opts: PairOptions = {}): Promise<Pair> {
  const prefix = opts.prefix ?? 'bp';
  const aAddr4 = opts.aAddr4 ?? '198.51.100.1';
  const bAddr4 = opts.bAddr4 ?? '198.51.100.2';
  const aAddr6 = opts.aAddr6 ?? '2001:db8:5100::1';
  const bAddr6 = opts.bAddr6 ?? '2001:db8:5100::2';
  const len4 = opts.prefixLength4 ?? 24;
  const len6 = opts.prefixLength6 ?? 64;
  const aIf = 'veth-a';
  const bIf = 'veth-b';

  const created: Netns[] = [];
  const destroy = async (): Promise<void> => {
    const results = await Promise.allSettled(created.map((ns) => ns.destroy()));
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, 'tearing down a namespace pair');
  };
  try {
    const a = await Netns.create(prefix);
    created.push(a);
    const b = await Netns.create(prefix);
    created.push(b);
    // Made from inside a, with the peer end placed straight into b: the link never
    // exists in the host's namespace.
    await a.exec('ip', ['link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
    for (const [ns, ifname, addr4, addr6] of [
      [a, aIf, aAddr4, aAddr6],
      [b, bIf, bAddr4, bAddr6],
    ] as const) {
      if (opts.mtu !== undefined) await ns.exec('ip', ['link', 'set', 'dev', ifname, 'mtu', String(opts.mtu)]);
      await ns.exec('ip', ['addr', 'add', `${addr4}/${len4}`, 'dev', ifname]);
      await ns.exec('ip', ['-6', 'addr', 'add', `${addr6}/${len6}`, 'dev', ifname, 'nodad']);
      await ns.exec('ip', ['link', 'set', 'dev', ifname, 'up']);
    }
    await waitLinkUp(a, aIf);
    await waitLinkUp(b, bIf);
    return { a, b, aIf, bIf, aAddr4, bAddr4, aAddr6, bAddr6, destroy };
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------------
// Scopes that guarantee teardown

/** Owns the namespaces and cleanups of one test or suite; destroy() undoes them all. */
export class NetnsScope {
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  /** A namespace destroyed with the scope. */
  async create(prefix?: string): Promise<Netns> {
    const ns = await Netns.create(prefix);
    this.defer(() => ns.destroy());
    return ns;
  }

  /** A veth-joined pair destroyed with the scope. */
  async pair(opts?: PairOptions): Promise<Pair> {
    const pair = await createPair(opts);
    this.defer(() => pair.destroy());
    return pair;
  }

  /** Runs `fn` on destroy; the last deferred runs first. */
  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** Runs every cleanup, even when some fail; throws their errors together. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed`);
  }
}

/**
 * Runs `fn` with a fresh scope and destroys it afterwards, whether fn returns or throws.
 * fn's own error wins over a teardown error.
 */
export async function withNetns<T>(fn: (scope: NetnsScope) => Promise<T>): Promise<T> {
  const scope = new NetnsScope();
  let result: T;
  try {
    result = await fn(scope);
  } catch (error) {
    await scope.destroy().catch((teardown: unknown) => {
      process.stderr.write(`withNetns: teardown after a failure also failed: ${String(teardown)}\n`);
    });
    throw error;
  }
  await scope.destroy();
  return result;
}

/**
 * A scope for a whole describe block: call it at the top of the block; vitest's afterAll
 * destroys it however the tests ended.
 */
export function netnsSuite(): NetnsScope {
  const scope = new NetnsScope();
  afterAll(() => scope.destroy());
  return scope;
}
