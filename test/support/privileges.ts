// Tests that need root, network namespaces or Debian tools call `requireHost(...)`.
// Outside CI they skip with a printed reason; in CI (CI=true) a missing requirement is
// an error, because CI must run every such test for real.
import { execFileSync } from 'node:child_process';

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns why the test cannot run here, or undefined when it can. */
export function hostSkipReason(commands: readonly string[] = []): string | undefined {
  if (process.platform !== 'linux') return `needs Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const missing = commands.filter((c) => !hasCommand(c));
  if (missing.length > 0) return `needs ${missing.join(', ')} (run scripts/setup.sh as root)`;
  return undefined;
}

/**
 * For `describe.skipIf(requireHost([...]))`. Prints the reason when skipping; in CI it
 * throws instead, so a skipped namespace test can never pass CI unnoticed.
 */
export function requireHost(commands: readonly string[] = []): boolean {
  const reason = hostSkipReason(commands);
  if (reason === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI must run this test, but it ${reason}`);
  process.stderr.write(`skipping: ${reason}\n`);
  return true;
}

/**
 * For `describe.skipIf(requireTools([...]))`: tests that need programs but not root (Debian's
 * `jsc`). Skips with a printed reason; in CI a missing program is an error.
 */
export function requireTools(commands: readonly string[]): boolean {
  const missing = commands.filter((c) => !hasCommand(c));
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')} (run scripts/setup.sh as root)`;
  if (process.env.CI === 'true') throw new Error(`CI must run this test, but it ${reason}`);
  process.stderr.write(`skipping: ${reason}\n`);
  return true;
}
