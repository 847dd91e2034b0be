// Errors of the Linux platform layer, with stable codes. A command's failure carries the
// command as run (argument array), its exit status and what it wrote, so that the CLI
// can print "ip -4 route add 10.0.0.0/24 dev wg0 failed (exit 2): RTNETLINK answers: File exists".

export type LinuxPlatformErrorCode =
  /** A bad argument: an interface name Linux would refuse, settings of the wrong shape. */
  | 'ERR_PLATFORM_ARG'
  /** A command (ip, sysctl, resolvconf, …) failed; applying was rolled back. */
  | 'ERR_PLATFORM_COMMAND'
  /** A PreUp/PostUp/PreDown/PostDown hook exited non-zero. */
  | 'ERR_PLATFORM_HOOK'
  /** undo() could not remove everything; calling it again retries what is left. */
  | 'ERR_PLATFORM_UNDO';

/** How a command ended; exitCode -1 when it was killed after its time limit. */
export interface CommandFailure {
  readonly command: readonly string[];
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class LinuxPlatformError extends Error {
  override readonly name = 'LinuxPlatformError';
  readonly code: LinuxPlatformErrorCode;
  /** The command that failed, when one did. */
  readonly failure: CommandFailure | undefined;
  /** Errors met while rolling back a failed apply (empty when the rollback was clean). */
  readonly rollbackErrors: readonly Error[];

  constructor(
    code: LinuxPlatformErrorCode,
    message: string,
    options: { failure?: CommandFailure; rollbackErrors?: readonly Error[]; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.failure = options.failure;
    this.rollbackErrors = options.rollbackErrors ?? [];
  }
}

/** Renders an argument vector the way a person would type it (single quotes where needed). */
export function renderCommand(argv: readonly string[]): string {
  return argv.map((arg) => (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** "CMD failed (exit N): stderr" — the output trimmed, stdout when stderr is empty. */
export function describeFailure(failure: CommandFailure): string {
  const why = failure.exitCode === -1 ? 'timed out' : `failed (exit ${failure.exitCode})`;
  const detail = failure.stderr.trim() || failure.stdout.trim();
  return `${renderCommand(failure.command)} ${why}${detail === '' ? '' : `: ${detail}`}`;
}
