// How this layer runs commands: execFile with an argument array, never a shell string
// (hooks are the one exception, and they are shell by definition: hooks.ts).
//
// Everything that changes the system goes through one Exec, reading and writing
// /etc/resolv.conf included (with cat and tee), so that a caller can run the whole layer
// in another network namespace by giving it `createExec(['ip', 'netns', 'exec', NAME])`:
// the commands then see that namespace's routes, rules, sysctls and resolv.conf.

import { execFile } from 'node:child_process';

export interface ExecResult {
  /** The exit status; 127 when the program could not be started, -1 when it timed out. */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** Written to the command's standard input. */
  readonly input?: string;
}

/** Runs `file args`; resolves with how it ended, never rejects for a non-zero exit. */
export type Exec = (file: string, args: readonly string[], options?: ExecOptions) => Promise<ExecResult>;

export interface CreateExecOptions {
  /** Each command is killed (SIGKILL) after this long; default 30 s. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * An Exec that runs commands on this host, each prefixed by `prefix` (for instance
 * ['ip', 'netns', 'exec', 'blue']). LC_ALL=C, so that error text is the kernel's English.
 */
export function createExec(prefix: readonly string[] = [], options: CreateExecOptions = {}): Exec {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return (file, args, execOptions = {}) => {
    const argv = [...prefix, file, ...args];
    const program = argv[0]!;
    return new Promise((resolve) => {
      const child = execFile(
        program,
        argv.slice(1),
        { timeout, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
        (error, stdout, stderr) => {
          if (error === null) {
            resolve({ exitCode: 0, stdout, stderr });
            return;
          }
          const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
          if (e.killed === true) resolve({ exitCode: -1, stdout, stderr: `${stderr}(killed after ${timeout} ms)` });
          else if (typeof e.code === 'number') resolve({ exitCode: e.code, stdout, stderr });
          else resolve({ exitCode: 127, stdout, stderr: `${stderr}${program}: ${e.message}` });
        },
      );
      // A program that exits without reading its input must not crash us with EPIPE.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(execOptions.input ?? '');
    });
  };
}
