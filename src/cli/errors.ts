// Exit codes that scripts can rely on, and the error type the CLI turns into them.

export const EXIT_OK = 0;
/** The operation failed (not up, already up, a command failed, no root). */
export const EXIT_FAILURE = 1;
/** The input was wrong (usage, a configuration or key that does not parse). */
export const EXIT_BAD_INPUT = 2;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(message: string, readonly exitCode: number = EXIT_FAILURE) {
    super(message);
  }
}
