// A session's journal: /run/burrow/IFACE.state.
//
// It names the daemon that owns the interface (pid and the kernel's start time of that
// pid, so a recycled pid is never mistaken for it) and lists, oldest first, the undo of
// every change the session has made to the system, each written before its change is
// made. It is rewritten whole on every change: a temporary file created with O_EXCL |
// O_NOFOLLOW beside it, 0600, fsync'd, renamed over the journal, and the directory
// fsync'd, so that after a crash at any moment the file is either the old list or the
// new one.
//
// When the daemon exits cleanly the journal is removed. When it dies (SIGKILL, an OOM
// kill, a crash in native code) the journal stays, and `burrow down` or the next
// `burrow up` replays it: the PreDown hooks, the undos newest first, the PostDown hooks.
// Entries marked "kept when the daemon dies" are in the journal like the others; only
// the daemon's own exit path treats them differently.

import { closeSync, constants, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { UndoEntry } from '../platform/undo.js';

export const RUN_DIR = '/run/burrow';
export const journalPath = (ifname: string): string => `${RUN_DIR}/${ifname}.state`;
export const logPath = (ifname: string): string => `${RUN_DIR}/${ifname}.log`;

const FORMAT = 'burrow-journal/1';

export interface DaemonIdentity {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot. */
  readonly startTime: string;
}

export interface JournalEntry<R> {
  readonly what: string;
  readonly undo: R;
  readonly keep: boolean;
}

export interface JournalState<R> {
  readonly ifname: string;
  readonly daemon: DaemonIdentity;
  /** Wall-clock ms when the session started. */
  readonly startedAt: number;
  /** The configuration file the session was started from, if any. */
  readonly config: string | undefined;
  /** The session runs a kill switch (IncludeAllNetworks), for `burrow show`. */
  readonly killSwitch?: boolean;
  /** The apps of per-app routing and their domains, for `burrow show`; absent or empty without. */
  readonly perApp?: readonly { readonly name: string; readonly domains: readonly string[] }[];
  /** Run, in order, before the undos (PreDown) and after them (PostDown). */
  readonly hooks: { readonly preDown: readonly string[]; readonly postDown: readonly string[] };
  readonly entries: readonly JournalEntry<R>[];
}

export class JournalError extends Error {
  override readonly name = 'JournalError';
  readonly code = 'ERR_JOURNAL';
}

/** The start time of `pid` as the kernel has it, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function ownIdentity(): DaemonIdentity {
  const startTime = processStartTime(process.pid);
  if (startTime === undefined) throw new JournalError('cannot read /proc/self/stat');
  return { pid: process.pid, startTime };
}

/** The process title a session's daemon gives itself (daemon.ts), as /proc/PID/cmdline shows it. */
export const daemonTitle = (ifname: string): string => `burrow-daemon ${ifname}`;

/**
 * True when `identity` names Burrow's daemon for `ifname` and it still runs: the same pid,
 * started at the same time, with the daemon's title. A recycled pid fails the first test,
 * an unrelated process that somehow matches it fails the second.
 */
export function isRunning(identity: DaemonIdentity, ifname: string): boolean {
  if (processStartTime(identity.pid) !== identity.startTime) return false;
  try {
    const cmdline = readFileSync(`/proc/${identity.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    return cmdline.startsWith(`${daemonTitle(ifname)} `) || cmdline.trimEnd() === daemonTitle(ifname);
  } catch {
    return false;
  }
}

/**
 * Writes `text` to `path` so that a crash leaves either the old file or the new one: a
 * temporary file `PATH.tmp` beside it, created exclusively and never through a symlink
 * (O_EXCL | O_NOFOLLOW), mode `mode`, fsync'd, renamed over `path`, then the directory
 * fsync'd. Whatever already stands at the temporary name (a leftover of a crash, or a
 * symlink someone planted) is unlinked, never followed, and the exclusive create tried
 * once more.
 */
export function writeFileAtomic(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.tmp`;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(tmp, flags, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    unlinkSync(tmp);
    fd = openSync(tmp, flags, mode);
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const dir = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** The journal a running session keeps. */
export class Journal<R> {
  private hooks: JournalState<R>['hooks'] = { preDown: [], postDown: [] };
  private entries: readonly JournalEntry<R>[] = [];
  private closed = false;

  constructor(
    readonly path: string,
    private readonly head: Omit<JournalState<R>, 'hooks' | 'entries'>,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  static forInterface<R>(ifname: string, config: string | undefined, killSwitch = false, perApp: JournalState<R>['perApp'] = []): Journal<R> {
    return new Journal<R>(journalPath(ifname), { ifname, daemon: ownIdentity(), startedAt: Date.now(), config, killSwitch, ...(perApp.length === 0 ? {} : { perApp }) });
  }

  /** The undo stack's persist hook: the records of `stack`, oldest first. */
  readonly persist = (stack: readonly UndoEntry<R>[]): void => {
    this.entries = stack.flatMap((e) => (e.record === undefined ? [] : [{ what: e.what, undo: e.record, keep: e.keep }]));
    this.write();
  };

  /** From now on a replay runs these hooks around the undos (set once PostUp has run). */
  setHooks(preDown: readonly string[], postDown: readonly string[]): void {
    this.hooks = { preDown: [...preDown], postDown: [...postDown] };
    this.write();
  }

  write(): void {
    if (this.closed) return;
    const state: JournalState<R> & { format: string } = { format: FORMAT, ...this.head, hooks: this.hooks, entries: this.entries };
    writeFileAtomic(this.path, `${JSON.stringify(state, null, 1)}\n`);
  }

  /**
   * The session ended. With nothing left to undo the journal is removed; what is left
   * (entries kept when the daemon dies, or undos that failed) stays for `down` to finish.
   */
  close(): void {
    if (this.entries.length === 0) rmSync(this.path, { force: true });
    this.closed = true;
  }
}

/**
 * Reads a journal left on disk; undefined when there is none. Every field is checked,
 * and each entry by `isRecord`, before anything acts on it: the file is root's and 0600,
 * but a half-understood journal must stop recovery, not guide it.
 */
export function readJournal<R>(ifname: string, isRecord: (value: unknown) => value is R): (JournalState<R> & { modified: Date }) | undefined {
  const path = journalPath(ifname);
  let text: string;
  let modified: Date;
  try {
    text = readFileSync(path, 'utf8');
    modified = statSync(path).mtime;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new JournalError(`${path}: ${(e as Error).message}`);
  }
  const bad = (what: string): JournalError => new JournalError(`${path}: ${what}; move it away to start afresh (nothing was changed)`);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad('not valid JSON');
  }
  if (typeof v !== 'object' || v === null || v.format !== FORMAT) throw bad(`not a journal of format ${FORMAT}`);
  const daemon = v.daemon as Record<string, unknown> | undefined;
  if (typeof daemon !== 'object' || daemon === null || !Number.isInteger(daemon.pid) || typeof daemon.startTime !== 'string') throw bad('no daemon identity');
  const hooks = v.hooks as Record<string, unknown> | undefined;
  const strings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');
  if (typeof hooks !== 'object' || hooks === null || !strings(hooks.preDown) || !strings(hooks.postDown)) throw bad('bad hooks');
  if (!Array.isArray(v.entries)) throw bad('no entries');
  const entries: JournalEntry<R>[] = [];
  for (const [i, e] of (v.entries as Record<string, unknown>[]).entries()) {
    if (typeof e !== 'object' || e === null || typeof e.what !== 'string' || typeof e.keep !== 'boolean' || !isRecord(e.undo)) {
      throw bad(`entry ${i + 1} is not an undo this version understands`);
    }
    entries.push({ what: e.what, undo: e.undo, keep: e.keep });
  }
  if (v.ifname !== ifname) throw bad(`it names interface ${JSON.stringify(v.ifname)}`);
  return {
    ifname,
    daemon: { pid: daemon.pid as number, startTime: daemon.startTime },
    startedAt: typeof v.startedAt === 'number' ? v.startedAt : 0,
    config: typeof v.config === 'string' ? v.config : undefined,
    killSwitch: v.killSwitch === true,
    ...(perAppOf(v.perApp) === undefined ? {} : { perApp: perAppOf(v.perApp)! }),
    hooks: { preDown: hooks.preDown, postDown: hooks.postDown },
    entries,
    modified,
  };
}

/** The journal's app list, if it is one (it only informs `burrow show`). */
function perAppOf(value: unknown): JournalState<unknown>['perApp'] {
  if (!Array.isArray(value)) return undefined;
  const ok = value.every(
    (a: unknown) =>
      typeof a === 'object' && a !== null && typeof (a as { name?: unknown }).name === 'string' &&
      Array.isArray((a as { domains?: unknown }).domains) && ((a as { domains: unknown[] }).domains).every((d) => typeof d === 'string'),
  );
  return ok ? (value as { name: string; domains: string[] }[]) : undefined;
}

export function removeJournal(ifname: string): void {
  rmSync(journalPath(ifname), { force: true });
}
