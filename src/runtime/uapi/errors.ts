// Every way the control socket refuses a request: a stable code for programs and logs,
// and the errno that goes back to wg(8) in the reply.
//
// errno is written negated, as wireguard-go writes it (errno=-22): wg(8) sets
// `errno = -value` and prints it with perror, so a positive number would print as
// "Unknown error -22". Which errno for what, after wireguard-go's device/uapi.go:
//   EPROTO      a line without "=", an operation other than get=1 / set=1, a request
//               that does not end in a blank line or has bytes after it;
//   EINVAL      an unknown key, a key in the wrong section, a malformed value, a
//               get=1 not followed by the blank line, too many peers for the device,
//               and (ours) an all-zero private_key: the engine has no "no key" state;
//   EADDRINUSE  the runtime could not bind listen_port or apply fwmark (or the errno
//               its error names, when it names one: EPERM for a mark, say);
//   EMSGSIZE    (ours) a request, a line, or the peers or allowed IPs of one request
//               past the bounds in limits.ts;
//   ENOTRECOVERABLE (ours) a set failed after it had changed listen_port or fwmark, and
//               putting the old value back failed too: the runtime is left as
//               backend.listenPort() / fwmark() now say, and the log names both errors;
//   ENOANO      anything unexpected (wireguard-go's IpcErrorUnknown, 55).

import { constants as osConstants } from 'node:os';

const errnoOf = (name: string, linux: number): number => (osConstants.errno as Record<string, number | undefined>)[name] ?? linux;

/** errno values (positive; the reply carries them negated), this platform's numbering. */
export const UAPI_ERRNO = Object.freeze({
  EINVAL: errnoOf('EINVAL', 22),
  ENOANO: 55,
  EPROTO: errnoOf('EPROTO', 71),
  EMSGSIZE: errnoOf('EMSGSIZE', 90),
  EADDRINUSE: errnoOf('EADDRINUSE', 98),
  ENOTRECOVERABLE: errnoOf('ENOTRECOVERABLE', 131),
});

export type UapiErrorCode =
  /** Framing: not get=1 / set=1, a line without "=", no blank line at the end, bytes after it. */
  | 'ERR_UAPI_PROTOCOL'
  /** An unknown key, a key in the wrong section, or a malformed value. */
  | 'ERR_UAPI_INVALID'
  /** Past one of the bounds of limits.ts: request bytes, line bytes, peers or allowed IPs per request. */
  | 'ERR_UAPI_TOO_LARGE'
  /** The request would give the device more than MAX_PEERS peers. */
  | 'ERR_UAPI_TOO_MANY_PEERS'
  /** The runtime refused listen_port or fwmark; nothing was changed. */
  | 'ERR_UAPI_RUNTIME'
  /** The runtime refused a step and could not undo an earlier one: see the message. */
  | 'ERR_UAPI_ROLLBACK_FAILED'
  /** Anything unexpected. */
  | 'ERR_UAPI_INTERNAL';

export class UapiError extends Error {
  override readonly name = 'UapiError';
  constructor(
    readonly code: UapiErrorCode,
    /** Positive errno; the reply says `errno=-N`. */
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export const protocolError = (message: string): UapiError => new UapiError('ERR_UAPI_PROTOCOL', UAPI_ERRNO.EPROTO, message);
export const invalid = (message: string): UapiError => new UapiError('ERR_UAPI_INVALID', UAPI_ERRNO.EINVAL, message);
export const tooLarge = (message: string): UapiError => new UapiError('ERR_UAPI_TOO_LARGE', UAPI_ERRNO.EMSGSIZE, message);

/** The reply to a failed request. */
export const errnoReply = (errno: number): string => `errno=${errno === 0 ? 0 : -Math.abs(errno)}\n\n`;

/** An error's message for the log; never a key (nothing here ever puts one in a message). */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
