// One request against one backend: a `get` answered from the device as it is, a `set`
// applied (apply.ts) and followed by backend.changed() when it changed something.
// Requests on one backend run one at a time, whichever connection they came from, so
// that a `get` never sees a `set` half-applied across its awaits.

import { applySet, readDeviceState, type UapiBackend } from './apply.js';
import { describe, errnoReply, UAPI_ERRNO, UapiError } from './errors.js';
import { DEFAULT_REQUEST_LIMITS, formatUapiGetReply, readUapiRequest, type UapiRequest, wipeSetRequest } from './protocol.js';

/** The outcome of one request: the reply to send, and the error behind it, if any. */
export interface UapiResult {
  readonly reply: string;
  readonly error?: UapiError;
}

export interface UapiRequestOptions {
  /** Default MAX_REQUEST_BYTES. */
  maxRequestBytes?: number;
}

const queues = new WeakMap<UapiBackend, Promise<unknown>>();

function serialize<T>(backend: UapiBackend, task: () => Promise<T>): Promise<T> {
  const previous = queues.get(backend) ?? Promise.resolve();
  const run = previous.then(task, task);
  queues.set(backend, run.catch(() => undefined));
  return run;
}

const unexpected = (error: unknown): UapiError =>
  error instanceof UapiError ? error : new UapiError('ERR_UAPI_INTERNAL', UAPI_ERRNO.ENOANO, `unexpected: ${describe(error)}`);

/** The body of a `get` reply for the backend as it is now. */
export function formatUapiGet(backend: UapiBackend): string {
  return formatUapiGetReply(readDeviceState(backend));
}

/** Answers one request that has been read whole. Never rejects; wipes the keys of a `set`. */
export function answerUapi(request: UapiRequest, backend: UapiBackend): Promise<UapiResult> {
  if (request.op === 'refused') return Promise.resolve({ reply: errnoReply(request.error.errno), error: request.error });
  return serialize(backend, async (): Promise<UapiResult> => {
    if (request.op === 'get') {
      try {
        return { reply: formatUapiGet(backend) };
      } catch (error) {
        const e = unexpected(error);
        return { reply: errnoReply(e.errno), error: e };
      }
    }
    let changed = true; // unless applySet says otherwise: an engine step that threw may have changed something
    let error: UapiError | undefined;
    try {
      const outcome = await applySet(request.request, backend);
      changed = outcome.changed;
      error = outcome.error;
    } catch (thrown) {
      error = unexpected(thrown);
    } finally {
      wipeSetRequest(request.request);
    }
    if (changed) {
      try {
        backend.changed?.();
      } catch {
        // The change is made; a hook that breaks its contract must not report it as failed.
      }
    }
    return error === undefined ? { reply: errnoReply(0) } : { reply: errnoReply(error.errno), error };
  });
}

/**
 * Handles one whole request given as text ("get=1\n\n", or "set=1\n" + lines + "\n")
 * and returns the reply with the error behind it. Never throws and never rejects: every
 * failure is an `errno=-N` reply, and a failed `set` changes nothing it could check
 * beforehand.
 */
export async function executeUapi(text: string, backend: UapiBackend, options: UapiRequestOptions = {}): Promise<UapiResult> {
  let request: UapiRequest;
  try {
    request = readUapiRequest(text, { ...DEFAULT_REQUEST_LIMITS, ...(options.maxRequestBytes !== undefined && { maxRequestBytes: options.maxRequestBytes }) });
  } catch (error) {
    const e = unexpected(error);
    return { reply: errnoReply(e.errno), error: e };
  }
  return answerUapi(request, backend);
}

/** The reply to one whole request; see executeUapi. */
export async function handleUapi(text: string, backend: UapiBackend, options: UapiRequestOptions = {}): Promise<string> {
  return (await executeUapi(text, backend, options)).reply;
}
