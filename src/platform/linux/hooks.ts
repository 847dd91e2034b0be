// PreUp / PostUp / PreDown / PostDown, as wg-quick runs them: each command in file order,
// "%i" replaced by the interface name, run by bash. The first that fails stops the rest
// and fails the operation with its output. Hooks are shell by definition; the interface
// name put into them is checked first, so it cannot add shell syntax.

import { describeFailure, LinuxPlatformError } from './errors.js';
import { createExec, type Exec } from './exec.js';
import { checkIfname } from './plan.js';

export interface HookRun {
  /** The command as run, "%i" replaced. */
  readonly command: string;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunHooksOptions {
  /** Default: on this host (the same Exec as applyLinux's, to run them in a namespace). */
  readonly exec?: Exec;
  /** Called with each command before it runs. */
  readonly log?: (command: string) => void;
}

/** Runs each hook with `bash -c`; resolves with their output, rejects with ERR_PLATFORM_HOOK. */
export async function runHooks(commands: readonly string[], ifname: string, opts: RunHooksOptions = {}): Promise<HookRun[]> {
  checkIfname(ifname);
  const exec = opts.exec ?? createExec();
  const runs: HookRun[] = [];
  for (const hook of commands) {
    const command = hook.replaceAll('%i', ifname);
    opts.log?.(command);
    const result = await exec('bash', ['-c', command]);
    if (result.exitCode !== 0) {
      throw new LinuxPlatformError('ERR_PLATFORM_HOOK', `hook ${describeFailure({ command: ['bash', '-c', command], ...result })}`, {
        failure: { command: ['bash', '-c', command], ...result },
      });
    }
    runs.push({ command, stdout: result.stdout, stderr: result.stderr });
  }
  return runs;
}
