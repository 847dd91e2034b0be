// Where a peer is: one type for the whole program. The engine sends to it and learns it
// from authenticated packets (roaming); the configuration, the control socket, the policy
// layer and the UDP sockets all speak it. Text in, "host:port" or "[v6]:port", is parsed
// in one place, src/config/endpoint.ts; this module holds what `tunnel/` may import.

/** An address (IPv4 or IPv6 text, no brackets) and a UDP port 1..65535. */
export interface Endpoint {
  /**
   * IPv4 or IPv6 text without brackets. Only a configuration file, before `up` resolves
   * it, may hold a DNS name here; the engine only ever gets addresses.
   */
  readonly host: string;
  readonly port: number;
  /**
   * Our local address that an authenticated packet from this endpoint arrived on (IPv6
   * link-local with "%ifindex"): replies leave from it, so a host with several addresses
   * answers from the one the peer wrote to ("sticky sockets", as the kernel's WireGuard).
   * Undefined: the kernel's choice.
   */
  readonly source?: string | undefined;
}

/** Same address, port and local source. */
export const sameEndpoint = (a: Endpoint | undefined, b: Endpoint): boolean =>
  a === b || (a !== undefined && a.port === b.port && a.host === b.host && a.source === b.source);

/** "host:port", or "[host]:port" for IPv6, as wg(8) and wg-quick write it. */
export const formatEndpoint = (e: Endpoint): string => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`);
