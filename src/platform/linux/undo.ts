// How each change the Linux platform makes is taken back, as data. A record is written
// to the session's journal before its change is made, so that a process that did not
// make the change (`burrow down` after the daemon was killed) can undo it exactly.
//
// Undoing tolerates what has already gone: routes and addresses vanish with their
// interface (and IPv6 addresses with the link going down), so "Cannot find device", "No
// such process" and friends count as done. Policy rules do not vanish with the interface
// and are always deleted.

import { LinuxPlatformError, describeFailure, renderCommand } from './errors.js';
import type { Exec } from './exec.js';
import { BURROW_CGROUP, cgroup2Root, removeCgroup } from './cgroup.js';

export type LinuxUndo =
  /** Run this deletion; "already gone" counts as done. */
  | { readonly kind: 'command'; readonly argv: readonly string[] }
  /** Put the link's MTU and up/down state back. */
  | { readonly kind: 'link'; readonly ifname: string; readonly mtu: number; readonly up: boolean }
  /**
   * Put a sysctl back. For src_valid_mark, only when no fwmark rule other than
   * `ownMark`'s is left: wg-quick never turns it off again; Burrow does, unless another
   * tunnel may rely on it.
   */
  | { readonly kind: 'sysctl'; readonly key: string; readonly value: string; readonly ownMark?: number }
  /**
   * Write `original` back to `path` (remove the file when it was null), unless the file
   * no longer holds what Burrow wrote: then someone rewrote it since, and theirs is newer.
   */
  | { readonly kind: 'resolv-conf'; readonly path: string; readonly original: string | null; readonly written: string }
  /**
   * Remove one of Burrow's cgroups (cgroup.ts), moving processes still in it to the root
   * cgroup; with `ifEmpty`, only when nothing is left in it (a parent others may share).
   */
  | { readonly kind: 'cgroup'; readonly path: string; readonly ifEmpty: boolean };

export const SRC_VALID_MARK = 'net.ipv4.conf.all.src_valid_mark';

/** Messages of "it is already gone" when deleting (LC_ALL=C). */
const GONE = /No such process|Cannot find device|No such device|address not found|Cannot assign requested address|No such file or directory|does not exist/i;

async function must(exec: Exec, argv: readonly string[], input?: string): Promise<string> {
  const result = await exec(argv[0]!, argv.slice(1), input === undefined ? undefined : { input });
  if (result.exitCode !== 0) {
    throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', describeFailure({ command: argv, ...result }), { failure: { command: argv, ...result } });
  }
  return result.stdout;
}

async function remove(exec: Exec, argv: readonly string[]): Promise<void> {
  const result = await exec(argv[0]!, argv.slice(1));
  if (result.exitCode !== 0 && !GONE.test(result.stderr)) {
    throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', describeFailure({ command: argv, ...result }), { failure: { command: argv, ...result } });
  }
}

/** The undo as one line, for logs and dry runs. */
export function describeUndo(undo: LinuxUndo): string {
  switch (undo.kind) {
    case 'command':
      return renderCommand(undo.argv);
    case 'link':
      return renderCommand(['ip', 'link', 'set', 'dev', undo.ifname, 'mtu', String(undo.mtu), ...(undo.up ? [] : ['down'])]);
    case 'sysctl':
      return renderCommand(['sysctl', '-q', '-w', `${undo.key}=${undo.value}`]);
    case 'resolv-conf':
      return undo.original === null ? `remove ${undo.path}` : `restore ${undo.path}`;
    case 'cgroup':
      return `remove the cgroup ${undo.path}${undo.ifEmpty ? ' if it is empty' : ''}`;
  }
}

/** Takes one change back. Safe to run twice, and after the interface has gone. */
export async function undoLinux(undo: LinuxUndo, exec: Exec, log?: (line: string) => void): Promise<void> {
  log?.(describeUndo(undo));
  switch (undo.kind) {
    case 'command':
      return remove(exec, undo.argv);
    case 'link':
      return remove(exec, ['ip', 'link', 'set', 'dev', undo.ifname, 'mtu', String(undo.mtu), ...(undo.up ? [] : ['down'])]);
    case 'sysctl': {
      if (undo.key === SRC_VALID_MARK) {
        const rules = JSON.parse((await must(exec, ['ip', '-j', '-4', 'rule', 'show'])) || '[]') as { fwmark?: unknown }[];
        if (rules.some((r) => typeof r.fwmark === 'string' && Number(r.fwmark) !== undo.ownMark)) return;
      }
      await must(exec, ['sysctl', '-q', '-w', `${undo.key}=${undo.value}`]);
      return;
    }
    case 'resolv-conf': {
      const now = await exec('cat', [undo.path]);
      if (now.exitCode !== 0 || now.stdout !== undo.written) return;
      if (undo.original === null) await must(exec, ['rm', '-f', undo.path]);
      else await must(exec, ['tee', undo.path], undo.original);
      return;
    }
    case 'cgroup':
      removeCgroup(cgroup2Root(), undo.path, undo.ifEmpty);
      return;
  }
}

/** A record read back from a journal: checked field by field before anything runs it. */
export function isLinuxUndo(value: unknown): value is LinuxUndo {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const strings = (a: unknown): boolean => Array.isArray(a) && a.length > 0 && a.every((s) => typeof s === 'string');
  switch (v.kind) {
    case 'command':
      return strings(v.argv) && ['ip', 'resolvconf', 'resolvectl', 'nft', 'sysctl'].some((p) => (v.argv as string[])[0]!.endsWith(p));
    case 'link':
      return typeof v.ifname === 'string' && Number.isInteger(v.mtu) && typeof v.up === 'boolean';
    case 'sysctl':
      return typeof v.key === 'string' && /^[a-z0-9_.]+$/.test(v.key) && typeof v.value === 'string' && (v.ownMark === undefined || Number.isInteger(v.ownMark));
    case 'resolv-conf':
      return typeof v.path === 'string' && (v.original === null || typeof v.original === 'string') && typeof v.written === 'string';
    case 'cgroup':
      // Only Burrow's own cgroups, by a plain relative path.
      return (
        typeof v.path === 'string' &&
        (v.path === BURROW_CGROUP || v.path.startsWith(`${BURROW_CGROUP}/`)) &&
        v.path.split('/').every((p) => /^[A-Za-z0-9_.=+-]+$/.test(p) && p !== '.' && p !== '..') &&
        typeof v.ifEmpty === 'boolean'
      );
    default:
      return false;
  }
}
