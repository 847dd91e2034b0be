// Internationalised domain names in their ASCII form (RFC 3492 punycode after UTS #46
// mapping), as WHATWG URL and node:url's domainToASCII compute them: "Bücher.Example"
// is "xn--bcher-kva.example". Done with tr46 (the UTS #46 implementation jsdom's
// whatwg-url uses) rather than node:url, because config/ and policy/ are also bundled
// for JavaScriptCore, which has no Node modules.

import { toASCII } from 'tr46';

/** The ASCII form of `name`, lower case; undefined when IDNA refuses it. */
export function idnToAscii(name: string): string | undefined {
  // WHATWG URL's "domain to ASCII" with beStrict = false: the options node:url uses.
  const ascii = toASCII(name, {
    checkBidi: true,
    checkHyphens: false,
    checkJoiners: true,
    useSTD3ASCIIRules: false,
    transitionalProcessing: false,
    verifyDNSLength: false,
  });
  return ascii === null || ascii === '' ? undefined : ascii;
}
