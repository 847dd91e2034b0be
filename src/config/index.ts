// src/config: wg-quick configuration text <-> typed Config, with Burrow's own keys
// (IncludeAllNetworks, ExcludeLocalNetworks, Mail/Calendar/ContactsDomains).

export type { AppConfig, Config, DnsSettings, Endpoint, InterfaceConfig, IpAddress, IpFamily, IpPrefix, PeerConfig, RoutingTable } from './types.js';
export { ConfigError, type ConfigErrorCode } from './errors.js';
export { parseConfig, parseConfigLines, type ParseConfigOptions } from './parse.js';
export { formatConfig, type FormatOptions, HIDDEN } from './write.js';
export {
  formatIpAddress,
  formatIpv4,
  formatIpv6,
  hasHostBits,
  IpFormatError,
  makePrefix,
  maskPrefix,
  parseIpAddress,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  type ParsePrefixOptions,
} from './ip.js';
export { formatEndpoint, parseEndpoint, type ParseEndpointOptions, parseHost } from './endpoint.js';
export { interfaceConfig } from './defaults.js';
