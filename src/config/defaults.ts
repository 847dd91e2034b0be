// An [Interface] as code builds it (the server's own file, a client's config it hands
// out): every key at the value an absent line gives, so a caller names only what it sets.

import type { InterfaceConfig } from './types.js';

export function interfaceConfig(fields: Pick<InterfaceConfig, 'privateKey' | 'addresses'> & Partial<InterfaceConfig>): InterfaceConfig {
  return {
    dns: { servers: [], search: [] },
    saveConfig: false,
    preUp: [],
    postUp: [],
    preDown: [],
    postDown: [],
    includeAllNetworks: false,
    excludeLocalNetworks: false,
    mailDomains: [],
    calendarDomains: [],
    contactsDomains: [],
    ...fields,
  };
}
