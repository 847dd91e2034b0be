// The undo stack, the journal's file format and atomic writes, recovery's wording and
// the bounded, levelled log: the parts of the session that need no root.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isLinuxUndo, type LinuxUndo } from '../../src/platform/linux/undo.js';
import { UndoStack } from '../../src/platform/undo.js';
import { Journal, writeFileAtomic } from '../../src/runtime/journal.js';
import { BoundedLogFile, createLogger, parseLogLevel } from '../../src/runtime/log.js';
import { describeChanges } from '../../src/runtime/recover.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-journal-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const cmd = (...argv: string[]): LinuxUndo => ({ kind: 'command', argv });
const argvOf = (u: LinuxUndo): readonly string[] => (u.kind === 'command' ? u.argv : []);

describe('UndoStack', () => {
  it('persists each undo before the change, runs them newest first, and forgets a cancelled one', async () => {
    const ran: string[] = [];
    const persisted: string[][] = [];
    const stack = new UndoStack<LinuxUndo>(
      async (u) => void ran.push(argvOf(u).join(' ')),
      (entries) => void persisted.push(entries.map((e) => e.what)),
    );
    const a = stack.intend('a', cmd('ip', 'a'));
    expect(persisted.at(-1)).toEqual(['a']);
    stack.defer('local', () => void ran.push('local'));
    await expect(stack.around('b', cmd('ip', 'b'), async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(persisted.at(-1)).toEqual(['a', 'local']); // b was announced, then forgotten
    stack.intend('c', cmd('ip', 'c'));
    await stack.unwind();
    expect(ran).toEqual(['ip c', 'local', 'ip a']);
    expect(stack.size).toBe(0);
    expect(a).toBe(1);
  });

  it('keeps failed undos for a retry, and leaves what is kept when the daemon dies', async () => {
    let fail = true;
    const ran: string[] = [];
    const stack = new UndoStack<LinuxUndo>(async (u) => {
      const what = argvOf(u)[1]!;
      if (what === 'flaky' && fail) throw new Error('busy');
      ran.push(what);
    });
    stack.intend('table', cmd('nft', 'table'), { keep: true });
    stack.intend('flaky', cmd('ip', 'flaky'));
    stack.intend('route', cmd('ip', 'route'));
    const first = await stack.unwind({ leaveKept: true });
    expect(first.errors.map((e) => e.what)).toEqual(['flaky']);
    expect(ran).toEqual(['route']);
    expect(stack.entries.map((e) => e.what)).toEqual(['table', 'flaky']);
    fail = false;
    await stack.unwind();
    expect(ran).toEqual(['route', 'flaky', 'table']);
  });

  it('release undoes one change now and drops it', async () => {
    const ran: string[] = [];
    const stack = new UndoStack<LinuxUndo>(async (u) => void ran.push(argvOf(u)[1]!));
    stack.intend('x', cmd('ip', 'x'));
    const y = stack.intend('y', cmd('ip', 'y'));
    await stack.release(y);
    expect(ran).toEqual(['y']);
    expect(stack.entries.map((e) => e.what)).toEqual(['x']);
  });
});

describe('journal', () => {
  it('writes the records, 0600, atomically; an emptied journal is removed at close', () => {
    const path = join(tempDir(), 'wg0.state');
    const journal = new Journal<LinuxUndo>(path, { ifname: 'wg0', daemon: { pid: 1, startTime: '1' }, startedAt: 0, config: undefined });
    const stack = new UndoStack<LinuxUndo>(async () => undefined, journal.persist);
    stack.intend('ip -4 rule del table 51820', cmd('ip', '-4', 'rule', 'del', 'table', '51820'));
    stack.defer('never written', () => undefined);
    const state = JSON.parse(readFileSync(path, 'utf8')) as { entries: { what: string; keep: boolean }[] };
    expect(state.entries).toEqual([{ what: 'ip -4 rule del table 51820', undo: cmd('ip', '-4', 'rule', 'del', 'table', '51820'), keep: false }]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    journal.close();
    expect(existsSync(path)).toBe(true); // one entry is still there
  });

  it('writeFileAtomic replaces a symlink at the temporary name instead of following it', () => {
    const dir = tempDir();
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'mine\n');
    symlinkSync(victim, join(dir, 'f.tmp'));
    writeFileAtomic(join(dir, 'f'), 'new\n');
    expect(readFileSync(victim, 'utf8')).toBe('mine\n');
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('new\n');
    expect(existsSync(join(dir, 'f.tmp'))).toBe(false);
  });

  it('accepts only the undo records it knows', () => {
    expect(isLinuxUndo(cmd('ip', '-4', 'route', 'del', '10.0.0.0/8'))).toBe(true);
    expect(isLinuxUndo(cmd('/sbin/resolvconf', '-d', 'tun.wg0', '-f'))).toBe(true);
    expect(isLinuxUndo(cmd('rm', '-rf', '/'))).toBe(false);
    expect(isLinuxUndo({ kind: 'sysctl', key: 'net.ipv4.conf.all.src_valid_mark', value: '0' })).toBe(true);
    expect(isLinuxUndo({ kind: 'sysctl', key: '../../etc/passwd', value: '0' })).toBe(false);
    expect(isLinuxUndo({ kind: 'resolv-conf', path: '/etc/resolv.conf', original: null, written: 'x' })).toBe(true);
    expect(isLinuxUndo({ kind: 'link', ifname: 'wg0', mtu: '1500', up: true })).toBe(false);
    expect(isLinuxUndo({ kind: 'exec', argv: ['ip'] })).toBe(false);
  });

  it('recovery says what it removed in words', () => {
    expect(describeChanges([cmd('ip', '-4', 'rule', 'del'), cmd('ip', '-4', 'route', 'del'), { kind: 'resolv-conf', path: 'p', original: null, written: '' }])).toBe(
      'routes, rules and DNS',
    );
    expect(describeChanges([])).toBe('nothing was left to remove');
  });
});

describe('log', () => {
  it('filters by level; wireguard-go\'s names are understood', () => {
    const lines: string[] = [];
    const log = createLogger(parseLogLevel(undefined), 'wg0', (t) => void lines.push(t));
    log.debug('timer fired');
    log.info('handshake complete');
    log.error('failed');
    expect(lines.map((l) => l.replace(/^\S+ /, ''))).toEqual(['wg0: handshake complete\n', 'wg0: failed\n']);
    expect(parseLogLevel('verbose')).toBe('debug');
    expect(parseLogLevel('silent')).toBe('silent');
    expect(parseLogLevel('nonsense', 'error')).toBe('error');
  });

  it('rotates past its cap, so at most twice the cap is on disk', () => {
    const path = join(tempDir(), 'wg0.log');
    const file = new BoundedLogFile(path, 1000);
    for (let i = 0; i < 500; i++) file.write(`line ${i} ${'x'.repeat(40)}\n`);
    file.close();
    expect(statSync(path).size).toBeLessThanOrEqual(1000);
    expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(1000);
    expect(readFileSync(path, 'utf8')).toContain('line 499 ');
  });
});
