// The control socket (WireGuard's cross-platform userspace API) that `wg` talks to: the
// public surface of src/runtime/uapi/, one file per concern:
//   limits.ts    every bound: request and line bytes, peers and allowed IPs per request,
//                connections, the per-request deadline
//   errors.ts    UapiError, its codes and the errno each one sends back
//   protocol.ts  the text: reading requests line by line into a bounded plan, formatting
//                a get; pure, the fuzz target
//   apply.ts     a parsed set against the device (UapiDeviceControl) and the runtime:
//                plan, apply, roll back; the UapiBackend contract
//   handle.ts    one request: serialised per backend, changed() after a set that changed something
//   framer.ts    lines out of the socket's bytes, wiped once handed out
//   server.ts    the unix socket: deadlines, the connection limit, the socket file

export { type ApplyOutcome, planPeers, readDeviceState, type UapiBackend, type UapiDeviceControl } from './uapi/apply.js';
export { errnoReply, UAPI_ERRNO, UapiError, type UapiErrorCode } from './uapi/errors.js';
export { type FramedLine, nextRequest, UapiLineFramer } from './uapi/framer.js';
export { answerUapi, executeUapi, formatUapiGet, handleUapi, type UapiRequestOptions, type UapiResult } from './uapi/handle.js';
export {
  MAX_ALLOWED_IPS_PER_REQUEST, MAX_CONNECTIONS, MAX_LINE_BYTES, MAX_OPERATION_LINE_BYTES, MAX_PEERS_PER_REQUEST, MAX_REQUEST_BYTES,
  REQUEST_DEADLINE_MS,
} from './uapi/limits.js';
export {
  DEFAULT_REQUEST_LIMITS, formatUapiEndpoint, formatUapiGetReply, parseUapiAllowedIp, parseUapiEndpoint, parseUapiSet, PrefixList,
  readUapiRequest, type UapiDeviceState, type UapiFatal, type UapiPeerSet, UapiReader, type UapiRequest, type UapiRequestLimits,
  UapiSetParser, type UapiSetRequest,
} from './uapi/protocol.js';
export { UapiServer, UapiServerError, type UapiServerErrorCode, type UapiServerOptions } from './uapi/server.js';
