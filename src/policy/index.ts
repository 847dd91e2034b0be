// src/policy: pure functions from a Config to what the operating system must be told.
// Nothing here reads the system; platform/ applies the result.

export {
  DEFAULT_FWMARK,
  DEFAULT_MTU,
  type IpSettings,
  type PerAppDomains,
  TUNNEL_OVERHEAD_BYTES,
  type TunnelDnsSettings,
  type TunnelEndpoint,
  type TunnelSettings,
  type TunnelSettingsOptions,
  tunnelSettings,
} from './settings.js';
export { decide, type DecideContext, DNS_PORTS, type Flow, type KillSwitchPolicy, killSwitchPolicy, LINK_ICMPV6_TYPES, LOCAL_NETWORKS, type Verdict } from './killswitch.js';
export { answerTtl, appMatches, type AppRule, appRules, BUILT_IN_APPS, SET_TTL_MAX_SECONDS, SET_TTL_MIN_SECONDS, setEntryTimeout } from './perapp.js';
export { comparableName, matchesDomain, matchingDomain } from './domains.js';
