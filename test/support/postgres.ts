// A throwaway PostgreSQL server for tests: Debian's postgresql binaries
// (/usr/lib/postgresql/VERSION/bin), a cluster made by initdb in a fresh temporary
// directory owned by the `postgres` user (the server refuses to run as root), started
// with pg_ctl listening on no TCP port at all, only on a Unix socket in that directory.
// The socket is a file, so a process in any network namespace reaches it by its path.
//
// The Debian package's own cluster (/var/lib/postgresql) is never started or touched.
//
// Teardown: `destroy()` stops the server and removes the directory; a synchronous pass
// at process exit does the same for any server a test left running.

import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const PG_USER = 'postgres';
const DATABASE = 'burrow';

/** The newest Debian PostgreSQL's bin directory, or undefined when none is installed. */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? undefined : join(root, versions[0]!, 'bin');
}

function userExists(name: string): boolean {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresSkipReason(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root (initdb and pg_ctl run as the postgres user through runuser)';
  if (postgresBin() === undefined) return 'needs PostgreSQL (/usr/lib/postgresql/*/bin/initdb; run scripts/setup.sh as root)';
  if (!userExists(PG_USER)) return `needs the ${PG_USER} user (Debian's postgresql package makes it)`;
  return undefined;
}

/** For `describe.skipIf(requirePostgres())`: skips with a reason outside CI, throws in CI. */
export function requirePostgres(): boolean {
  const reason = postgresSkipReason();
  if (reason === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI must run this test, but it ${reason}`);
  process.stderr.write(`skipping: ${reason}\n`);
  return true;
}

export interface TestPostgres {
  /** postgresql://postgres@/burrow?host=DIR (the socket's directory, percent-encoded). */
  readonly url: string;
  /** The temporary directory: the socket, the cluster (DIR/data) and the server's log. */
  readonly dir: string;
  /** Stops the server (pg_ctl stop -m fast): clients see the database go away. */
  stop(): Promise<void>;
  /** Starts it again on the same cluster. */
  start(): Promise<void>;
  /** Runs SQL on the burrow database as the superuser, on a connection of its own. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<R[]>;
  /** Stops the server and removes the directory. */
  destroy(): Promise<void>;
}

const alive = new Set<string>();

function stopSync(dir: string): void {
  const bin = postgresBin();
  if (bin === undefined) return;
  try {
    execFileSync('runuser', ['-u', PG_USER, '--', join(bin, 'pg_ctl'), 'stop', '-D', join(dir, 'data'), '-m', 'immediate', '-w'], { stdio: 'ignore', cwd: dir, timeout: 10_000 });
  } catch {
    // not running
  }
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const cleanup = () => {
    for (const dir of alive) {
      stopSync(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    alive.clear();
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanup();
      process.kill(process.pid, signal);
    });
  }
}

async function asPostgres(dir: string, cmd: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run('runuser', ['-u', PG_USER, '--', cmd, ...args], { cwd: dir, timeout: 60_000 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}\n(server log: ${join(dir, 'log')})`);
  }
}

/** A fresh PostgreSQL server with an empty database `burrow`, reached through its socket only. */
export async function startPostgres(): Promise<TestPostgres> {
  const reason = postgresSkipReason();
  if (reason !== undefined) throw new Error(`startPostgres: ${reason}`);
  const bin = postgresBin()!;
  const dir = mkdtempSync(join(tmpdir(), 'burrow-pg-'));
  const uid = Number(execFileSync('id', ['-u', PG_USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', PG_USER]).toString().trim());
  chownSync(dir, uid, gid);
  alive.add(dir);
  hookExit();
  const data = join(dir, 'data');
  const pgCtl = join(bin, 'pg_ctl');
  // No TCP listener at all; the socket in DIR; fsync off (a test's data need not survive a power cut).
  const options = `-c listen_addresses='' -c unix_socket_directories='${dir}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60`;
  const start = () => asPostgres(dir, pgCtl, ['start', '-D', data, '-w', '-t', '60', '-l', join(dir, 'log'), '-o', options]).then(() => undefined);
  const stop = () => asPostgres(dir, pgCtl, ['stop', '-D', data, '-m', 'fast', '-w', '-t', '60']).then(() => undefined);
  try {
    await asPostgres(dir, join(bin, 'initdb'), ['-D', data, '--auth=trust', '-U', PG_USER, '--encoding=UTF8', '--locale=C', '--no-sync']);
    await start();
    await asPostgres(dir, join(bin, 'createdb'), ['-h', dir, '-U', PG_USER, DATABASE]);
  } catch (e) {
    stopSync(dir);
    rmSync(dir, { recursive: true, force: true });
    alive.delete(dir);
    throw e;
  }
  const url = `postgresql://${PG_USER}@/${DATABASE}?host=${encodeURIComponent(dir)}`;
  return {
    url,
    dir,
    stop,
    start,
    async query<R extends pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<R[]> {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<R>(sql, values)).rows;
      } finally {
        await client.end();
      }
    },
    async destroy() {
      if (!alive.has(dir)) return;
      try {
        await asPostgres(dir, pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30']);
      } catch {
        // stopped already (a test's stop())
      }
      rmSync(dir, { recursive: true, force: true });
      alive.delete(dir);
    },
  };
}
