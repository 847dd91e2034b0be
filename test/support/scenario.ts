// Runs a child program in a fresh network namespace of its own and reads what it found
// from its last line of output (one JSON object). The namespace comes from netns.ts, so
// it is deleted afterwards, even on failure or when the runner is stopped.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Netns } from './netns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// A scenario's findings: plain JSON, whose shape each test states by what it expects.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export interface ScenarioRun {
  result: Json;
  code: number;
  stderr: string;
}

/**
 * Runs `argv` under `ip netns exec NS [wrap…]` in a new namespace named after `prefix`,
 * killed after `timeoutMs`. Throws when it printed no JSON, or JSON with an `error`.
 */
export async function runScenario(prefix: string, argv: string[], opts: { wrap?: string[]; timeoutMs?: number } = {}): Promise<ScenarioRun> {
  const ns = await Netns.create(prefix);
  try {
    const ran = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('ip', ['netns', 'exec', ns.name, ...(opts.wrap ?? []), ...argv],
        { cwd: ROOT, timeout: opts.timeoutMs ?? 40_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
        });
    });
    const last = ran.stdout.trim().split('\n').pop() ?? '';
    let result: Json;
    try {
      result = JSON.parse(last) as Json;
    } catch {
      throw new Error(`${argv.join(' ')} printed no result (exit ${ran.code}):\n${ran.stdout}\n${ran.stderr}`);
    }
    if (result.error !== undefined) throw new Error(`${argv.at(-1)} failed: ${result.error}\n${result.stack ?? ''}\n${ran.stderr}`);
    return { result, code: ran.code, stderr: ran.stderr };
  } finally {
    await ns.destroy();
  }
}
