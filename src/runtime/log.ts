// The daemon's log: one line per event that matters, at a level, into a bounded file.
//
// Levels follow wireguard-go's LOG_LEVEL: `error` (only failures), `info` (the default:
// start, stop, handshakes completed or given up, roaming, configuration changes),
// `debug` (also every timer and handshake initiation), `silent`. wireguard-go's
// `verbose` is taken as `debug`. `burrow up --verbose` is LOG_LEVEL=debug.
//
// The file is capped: past MAX_LOG_BYTES it is renamed to IFACE.log.1 (replacing the
// one before) and a new one is started, so a daemon with a thousand peers cannot fill
// /run. At most twice the cap is ever on disk.

import { closeSync, constants, fstatSync, openSync, renameSync, writeSync } from 'node:fs';

export type LogLevel = 'silent' | 'error' | 'info' | 'debug';

export const MAX_LOG_BYTES = 1 << 20;
const RANK: Record<LogLevel, number> = { silent: 0, error: 1, info: 2, debug: 3 };

/** LOG_LEVEL's value as a level: wireguard-go's names, and Burrow's. */
export function parseLogLevel(text: string | undefined, fallback: LogLevel = 'info'): LogLevel {
  switch (text?.trim().toLowerCase()) {
    case 'silent':
      return 'silent';
    case 'error':
      return 'error';
    case 'info':
      return 'info';
    case 'debug':
    case 'verbose':
      return 'debug';
    default:
      return fallback;
  }
}

export interface Logger {
  readonly level: LogLevel;
  error(line: string): void;
  info(line: string): void;
  debug(line: string): void;
}

/** A logger that writes `TIME PREFIX: line` to `sink` for the lines at or above `level`. */
export function createLogger(level: LogLevel, prefix: string, sink: (text: string) => void): Logger {
  const at = (l: LogLevel) => (line: string) => {
    if (RANK[l] <= RANK[level]) sink(`${new Date().toISOString()} ${prefix}: ${line}\n`);
  };
  return { level, error: at('error'), info: at('info'), debug: at('debug') };
}

/** Appends to `path`, rotating to `path.1` once the file passes `maxBytes`. */
export class BoundedLogFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes = MAX_LOG_BYTES,
  ) {
    this.fd = this.open();
    this.size = fstatSync(this.fd).size;
  }

  readonly write = (text: string): void => {
    if (this.size + text.length > this.maxBytes && this.size > 0) this.rotate();
    try {
      this.size += writeSync(this.fd, text);
    } catch {
      // A log that cannot be written must not stop the tunnel.
    }
  };

  close(): void {
    closeSync(this.fd);
  }

  private open(): number {
    return openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  }

  private rotate(): void {
    try {
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // keep writing to the one we have
      return;
    }
    closeSync(this.fd);
    this.fd = this.open();
    this.size = 0;
  }
}
