// The one parser of endpoint text, `HOST:PORT` or `[IPV6]:PORT`, for the configuration
// file (where HOST may be a DNS name, resolved at `up`) and the control socket (where
// wg(8) has resolved it already: addresses only). The result is the engine's Endpoint.

import { type Endpoint, formatEndpoint } from '../../tunnel/endpoint.js';
import { formatIpv4, formatIpv6, IpFormatError, parseIpv4, parseIpv6 } from './ip.js';
import { parseDomain, parsePort, ValueError } from './values.js';

export { type Endpoint, formatEndpoint };

export interface ParseEndpointOptions {
  /** Accept a DNS name as the host (a configuration file); otherwise an IP address only. */
  readonly names: boolean;
}

const FORM = 'an endpoint is HOST:PORT, with an IPv6 address in brackets: [2001:db8::1]:51820';
const bad = (detail: string): ValueError => new ValueError('ERR_CONFIG_BAD_ENDPOINT', detail);

/** An endpoint host: IPv4 text, IPv6 text without brackets, or (with `names`) a DNS name. Canonical. */
export function parseHost(text: string, options: ParseEndpointOptions = { names: true }): string {
  try {
    if (text.includes(':')) return formatIpv6(parseIpv6(text));
    if (/^[0-9.]+$/.test(text)) return formatIpv4(parseIpv4(text));
  } catch (error) {
    if (error instanceof IpFormatError) throw bad(error.message);
    throw error;
  }
  if (!options.names) throw bad('the host is an IP address here, not a name');
  try {
    return parseDomain(text);
  } catch (error) {
    if (error instanceof ValueError) throw bad(`the host is neither an IP address nor a DNS name: ${error.message}`);
    throw error;
  }
}

/**
 * HOST:PORT or [IPV6]:PORT, the port decimal 1..65535. Throws ValueError
 * (ERR_CONFIG_BAD_ENDPOINT) saying what was expected, never quoting the text.
 */
export function parseEndpoint(text: string, options: ParseEndpointOptions = { names: true }): Endpoint {
  let hostText: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw bad(`no closing "]": ${FORM}`);
    hostText = text.slice(1, close);
    if (!hostText.includes(':')) throw bad(`brackets are only for an IPv6 address: ${FORM}`);
    if (text[close + 1] !== ':') throw bad(`no ":PORT" after "]": ${FORM}`);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw bad(`no ":PORT": ${FORM}`);
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(':')) throw bad('an IPv6 endpoint is written in brackets: [2001:db8::1]:51820');
  }
  if (hostText === '') throw bad(`no host: ${FORM}`);
  const host = parseHost(hostText, options);
  let port: number;
  try {
    // Port 0 is refused: nothing can be sent to it.
    port = parsePort(portText, false);
  } catch (error) {
    if (error instanceof ValueError) throw bad(error.message);
    throw error;
  }
  return { host, port };
}
