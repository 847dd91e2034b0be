// Domain matching for per-app routing, as Apple's per-app VPN does it for MailDomains,
// CalendarDomains and ContactsDomains (NEAppRule / the applayer payload's domain lists):
// a domain matches itself and every name under it, on label boundaries, without regard
// to case; a trailing dot (the root label) is ignored; internationalised names are
// compared in their ASCII form (punycode, RFC 3492 after UTS #46 mapping: config/idn.ts,
// which gives what node:url's domainToASCII gives).
//
//   corp.example matches corp.example, mail.corp.example, MAIL.Corp.Example.
//   corp.example does not match notcorp.example nor corp.example.net.

import { idnToAscii } from '../config/idn.js';

/**
 * A name as it is compared: ASCII (punycode for an internationalised name), lower case,
 * without a trailing dot. Undefined when the name has no ASCII form (an invalid IDN).
 */
export function comparableName(name: string): string | undefined {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare === '') return undefined;
  return /^[\x21-\x7e]*$/.test(bare) ? bare.toLowerCase() : idnToAscii(bare);
}

/** Whether `name` is `domain` or under it. Both are compared in their comparable form. */
export function matchesDomain(name: string, domain: string): boolean {
  const n = comparableName(name);
  const d = comparableName(domain);
  if (n === undefined || d === undefined) return false;
  return n === d || n.endsWith(`.${d}`);
}

/** The first of `domains` that `name` matches, or undefined. */
export function matchingDomain(name: string, domains: readonly string[]): string | undefined {
  return domains.find((d) => matchesDomain(name, d));
}
