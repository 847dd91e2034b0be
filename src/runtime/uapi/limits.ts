// Every bound of the control socket, in one place. wireguard-go has none but a 64 KiB
// line; these are ours, sized for what wg(8) sends and no more.
//
// A `set` is parsed as its lines arrive into a plan (protocol.ts) and applied only once
// its blank line has arrived, so what one connection holds is its plan, not the text.
// Measured: MAX_PEERS_PER_REQUEST sections with a key, a preshared key and an endpoint
// take ~11 MiB of heap; MAX_ALLOWED_IPS_PER_REQUEST prefixes take 4.5 MiB packed (up to
// twice that while the buffer grows). So a connection holds at most ~20 MiB, and the
// server MAX_CONNECTIONS times that (the socket is root's only). The text itself is
// bounded per line and per request.
//
// Sizes, as wg(8) writes them: a peer with a preshared key, an endpoint, a keepalive and
// two allowed IPs is ~300 bytes, so `wg setconf` with 10,000 peers is ~3 MB; WireGuard's
// selftest sets one peer with 255*256 IPv4 /16s and as many IPv6 /128s (130,560 lines
// of <= 40 bytes, ~3.4 MB).

/** Bytes in one request, from "get=1"/"set=1" to its blank line: room for both counts below at wg(8)'s line sizes. */
export const MAX_REQUEST_BYTES = 16 << 20;
/** Bytes in one line, "\n" included. The longest valid one (an IPv6 endpoint or allowed_ip) is under 100. */
export const MAX_LINE_BYTES = 1024;
/** Bytes of the operation line, "\n" included: "get=1\n" and "set=1\n" are 6. */
export const MAX_OPERATION_LINE_BYTES = 8;
/** public_key= sections in one set: `wg setconf` of 10,000 peers fits (a device holds up to MAX_PEERS; more take several requests). */
export const MAX_PEERS_PER_REQUEST = 1 << 14;
/** allowed_ip lines in one set: WireGuard's selftest sends 130,560 to one peer. */
export const MAX_ALLOWED_IPS_PER_REQUEST = 1 << 18;
/** Open control connections. A new one past it closes the one that has waited longest for its request. */
export const MAX_CONNECTIONS = 16;
/**
 * Time a connection has to deliver a whole request, counted from when the server starts
 * waiting for it (the connection opened, or the previous reply was handed to the socket). Bytes that
 * trickle in do not extend it; the time a request spends being applied is not counted.
 */
export const REQUEST_DEADLINE_MS = 15_000;
