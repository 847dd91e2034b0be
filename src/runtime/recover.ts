// Finishing what a dead daemon left: the journal it wrote is replayed by another
// process, `burrow down IFACE` or the next `burrow up`. The order is the session's own
// stop: PreDown hooks, every undo newest first (what was kept when the daemon died
// too: this is an explicit down), PostDown hooks. A stale control socket goes as well.
// Undos that fail stay in the journal, so running `down` again retries them.

import { existsSync, rmSync, statSync } from 'node:fs';
import { type Exec, runHooks } from '../platform/linux/index.js';
import { isLinuxUndo, type LinuxUndo, undoLinux } from '../platform/linux/undo.js';
import { UndoStack } from '../platform/undo.js';
import { isRunning, type JournalState, Journal, logPath, readJournal, removeJournal } from './journal.js';
import { uapiRequest, uapiSocketPath } from './uapi-client.js';

export interface Recovery {
  /** What was undone, in words: "routes, rules and DNS". */
  readonly removed: string;
  /** When the dead daemon was last heard from (its log, else its journal). */
  readonly lastSeen: Date;
  readonly pid: number;
  /** Undos that failed and stay in the journal. */
  readonly failed: readonly string[];
}

export class DaemonRunningError extends Error {
  override readonly name = 'DaemonRunningError';
  constructor(readonly pid: number) {
    super(`its daemon (pid ${pid}) is running`);
  }
}

/** "routes, rules and DNS": the kinds of change in a journal, for a person. */
export function describeChanges(undos: readonly LinuxUndo[]): string {
  const kinds = new Set<string>();
  for (const u of undos) {
    if (u.kind === 'resolv-conf') kinds.add('DNS');
    else if (u.kind === 'sysctl') kinds.add('sysctls');
    else if (u.kind === 'link') kinds.add('link settings');
    else if (u.kind === 'cgroup') kinds.add('cgroups');
    else if (u.argv[0]!.endsWith('resolvconf') || u.argv[0]!.endsWith('resolvectl')) kinds.add('DNS');
    else if (u.argv[0] === 'nft') kinds.add('firewall table');
    else if (u.argv.includes('rule')) kinds.add('rules');
    else if (u.argv.includes('route')) kinds.add('routes');
    else if (u.argv.includes('address')) kinds.add('addresses');
    else kinds.add('settings');
  }
  const order = ['addresses', 'link settings', 'routes', 'rules', 'DNS', 'sysctls', 'firewall table', 'cgroups', 'settings'];
  const list = order.filter((k) => kinds.has(k));
  if (list.length === 0) return 'nothing was left to remove';
  return list.length === 1 ? list[0]! : `${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
}

function lastSeen(journal: JournalState<LinuxUndo> & { modified: Date }): Date {
  try {
    const log = statSync(logPath(journal.ifname)).mtime;
    return log > journal.modified ? log : journal.modified;
  } catch {
    return journal.modified;
  }
}

/**
 * Replays the journal of `ifname` if its daemon is gone. Returns undefined when there is
 * no journal; throws DaemonRunningError when its daemon still runs, JournalError when the
 * journal cannot be understood (then nothing is changed).
 */
export interface RecoverOptions {
  /**
   * Leave what was kept when the daemon died (the kill switch) in the journal: the `up`
   * that follows replaces it atomically, so traffic is never let out in between.
   */
  readonly leaveKept?: boolean;
}

export async function recover(ifname: string, exec: Exec, log: (line: string) => void = () => undefined, options: RecoverOptions = {}): Promise<Recovery | undefined> {
  const journal = readJournal(ifname, isLinuxUndo);
  if (journal === undefined) return undefined;
  if (isRunning(journal.daemon, ifname)) throw new DaemonRunningError(journal.daemon.pid);
  const seen = lastSeen(journal);
  const hooks = async (commands: readonly string[], name: string) => {
    try {
      await runHooks(commands, ifname, { exec, log });
    } catch (e) {
      log(`${name}: ${(e as Error).message}`);
    }
  };
  await hooks(journal.hooks.preDown, 'PreDown');
  // The rewritten journal keeps this process's identity: a second `down` at the same
  // time sees it running and leaves it alone.
  const rewrite = Journal.forInterface<LinuxUndo>(ifname, journal.config);
  const stack = new UndoStack<LinuxUndo>((undo) => undoLinux(undo, exec, log), rewrite.persist);
  for (const e of journal.entries) stack.intend(e.what, e.undo, { keep: e.keep });
  const { errors } = await stack.unwind({ leaveKept: options.leaveKept === true });
  await hooks(journal.hooks.postDown, 'PostDown');
  if (stack.size === 0) removeJournal(ifname);
  else rewrite.write();
  // The dead daemon's control socket, unless something else answers on it now.
  const socket = uapiSocketPath(ifname);
  if (existsSync(socket) && !(await uapiRequest(ifname, 'get=1\n\n', 1000).then(() => true, () => false))) rmSync(socket, { force: true });
  return {
    removed: describeChanges(journal.entries.filter((e) => !stack.entries.some((left) => left.what === e.what)).map((e) => e.undo)),
    lastSeen: seen,
    pid: journal.daemon.pid,
    failed: errors.map((e) => `${e.what}: ${e.error.message}`),
  };
}
