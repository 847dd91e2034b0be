// The configuration parser (src/config) fed text derived from real files: every fixture,
// good and bad, mutated line by line and character by character, and files assembled from
// a vocabulary of keys and values near their limits. Whatever the text:
//   - parseConfig returns a Config or throws a ConfigError with a documented code and a
//     line inside the file (or none), never another exception;
//   - a Config it returns survives formatConfig -> parseConfig unchanged (so what was
//     accepted has a faithful written form), and formatting is idempotent.
// And on pathological text (a line of tens of thousands of spaces, tabs, commas, colons,
// brackets or hyphens, in any place a line can hold it) it takes time linear in the text:
// a backtracking regular expression there took seconds.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, formatConfig, parseConfig } from '../src/config/index.js';
import { fcParams } from './budget.js';

const FIXTURES = join(import.meta.dirname, '..', 'test', 'fixtures', 'configs');
const read = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.conf')).sort().map((f) => readFileSync(join(dir, f), 'utf8'));
const GOOD = read(FIXTURES);
const CORPUS = [...GOOD, ...read(join(FIXTURES, 'bad'))];

const CODES = new Set([
  'ERR_CONFIG_SYNTAX', 'ERR_CONFIG_UNKNOWN_SECTION', 'ERR_CONFIG_OUTSIDE_SECTION', 'ERR_CONFIG_UNKNOWN_KEY', 'ERR_CONFIG_WRONG_SECTION',
  'ERR_CONFIG_DUPLICATE_KEY', 'ERR_CONFIG_MISSING_INTERFACE', 'ERR_CONFIG_DUPLICATE_INTERFACE', 'ERR_CONFIG_MISSING_PRIVATE_KEY',
  'ERR_CONFIG_MISSING_PUBLIC_KEY', 'ERR_CONFIG_DUPLICATE_PEER', 'ERR_CONFIG_PEER_IS_SELF', 'ERR_CONFIG_DUPLICATE_ALLOWED_IP',
  'ERR_CONFIG_BAD_KEY', 'ERR_CONFIG_BAD_PORT', 'ERR_CONFIG_BAD_ADDRESS', 'ERR_CONFIG_BAD_ENDPOINT', 'ERR_CONFIG_BAD_MTU',
  'ERR_CONFIG_BAD_TABLE', 'ERR_CONFIG_BAD_FWMARK', 'ERR_CONFIG_BAD_KEEPALIVE', 'ERR_CONFIG_BAD_BOOLEAN', 'ERR_CONFIG_BAD_DOMAIN',
  'ERR_CONFIG_EMPTY_VALUE', 'ERR_CONFIG_EXCLUDE_WITHOUT_INCLUDE',
]);

/** Outcomes seen, so the suite can show it reached both sides. */
const seen = { accepted: 0, refused: new Map<string, number>() };

/** Parses `text`; checks the error if any; round-trips the Config if not. */
function check(text: string): Config | ConfigError {
  let config: Config;
  try {
    config = parseConfig(text, 'fuzz.conf');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw new Error(`parseConfig threw ${String(error)} for ${JSON.stringify(text)}`);
    expect(CODES.has(error.code), error.code).toBe(true);
    expect(error.file).toBe('fuzz.conf');
    if (error.line !== undefined) {
      expect(error.line).toBeGreaterThanOrEqual(1);
      expect(error.line).toBeLessThanOrEqual(text.split('\n').length);
    }
    seen.refused.set(error.code, (seen.refused.get(error.code) ?? 0) + 1);
    return error;
  }
  const written = formatConfig(config);
  const again = parseConfig(written, 'again.conf');
  expect(again).toEqual(config);
  expect(formatConfig(again)).toBe(written);
  seen.accepted++;
  return config;
}

type Edit =
  | { op: 'delete-line' | 'duplicate-line'; line: number }
  | { op: 'swap-lines'; line: number; other: number }
  | { op: 'delete-char' | 'insert-char'; at: number; char: string }
  | { op: 'replace-value'; line: number; value: string }
  | { op: 'insert-line'; line: number; text: string };

const KEYS = [
  'PrivateKey', 'ListenPort', 'FwMark', 'Address', 'DNS', 'MTU', 'Table', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'SaveConfig',
  'IncludeAllNetworks', 'ExcludeLocalNetworks', 'MailDomains', 'CalendarDomains', 'ContactsDomains', 'PublicKey', 'PresharedKey',
  'AllowedIPs', 'Endpoint', 'PersistentKeepalive', 'privatekey', 'Allowed IPs', 'listen_port', 'Foo',
];
const VALUES = [
  '', ' ', '0', '1', '-1', '65535', '65536', '576', '575', '1280', '1279', 'off', 'auto', 'true', 'false', 'yes', 'TRUE', '0x0', '0xffffffff',
  '0x100000000', '4294967295', '10.0.0.1/24', '10.0.0.1/33', '10.0.0.256/8', 'fd00::1/64', 'fd00::1/129', '::/0', '0.0.0.0/0',
  '10.0.0.0/8, fd00::/8', '10.0.0.0/8,,', '[::1]:51820', '::1:51820', 'host.example:0', 'host.example:65535', 'exa mple.com:1',
  '1.2.3.4:51820', 'mail.example.com, *.example.com', 'example..com', 'a'.repeat(64) + '.com', '1.1.1.1, example.com',
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=', 'gouft/YdVKcWmobDbm/UUqK2Qxe8RC2IqjWOptWQ6Aw=',
  '4ERPoG7Kjg7ELywVxOqiEHfsdzejlbEa4VTju7FYI30', 'echo a=b # c', '\u0000', '\ufeff', '\u00e9t\u00e9', '\r',
];
const CHARS = ['=', '#', '[', ']', ',', ':', '/', ' ', '\t', '\r', '\n', '\u0000', '\ufeff', 'a', '0', '.', '*', '\u00e9', '\ud83d\ude00'];
const LINES = [
  '[Interface]', '[Peer]', '[interface]', '[ Peer ]', '[Peer', '[]', '= value', 'Key', '#comment', '  ', '\ufeff[Interface]',
  ...KEYS.map((k) => `${k} = ${VALUES[k.length % VALUES.length]}`),
];

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constantFrom('delete-line' as const, 'duplicate-line' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('swap-lines' as const), line: fc.nat(), other: fc.nat() }),
  fc.record({ op: fc.constantFrom('delete-char' as const, 'insert-char' as const), at: fc.nat(), char: fc.constantFrom(...CHARS) }),
  fc.record({ op: fc.constant('replace-value' as const), line: fc.nat(), value: fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 20 })) }),
  fc.record({ op: fc.constant('insert-line' as const), line: fc.nat(), text: fc.oneof(fc.constantFrom(...LINES), fc.string({ maxLength: 30 })) }),
);

function applyEdit(text: string, e: Edit): string {
  const lines = text.split('\n');
  const n = lines.length;
  switch (e.op) {
    case 'delete-line': lines.splice(e.line % n, 1); break;
    case 'duplicate-line': lines.splice(e.line % n, 0, lines[e.line % n]!); break;
    case 'swap-lines': {
      const [i, j] = [e.line % n, e.other % n];
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      break;
    }
    case 'insert-line': lines.splice(e.line % (n + 1), 0, e.text); break;
    case 'replace-value': {
      const i = e.line % n;
      const eq = lines[i]!.indexOf('=');
      if (eq >= 0) lines[i] = `${lines[i]!.slice(0, eq + 1)} ${e.value}`;
      break;
    }
    case 'delete-char': {
      const at = e.at % Math.max(1, text.length);
      return text.slice(0, at) + text.slice(at + 1);
    }
    case 'insert-char': {
      const at = e.at % (text.length + 1);
      return text.slice(0, at) + e.char + text.slice(at);
    }
  }
  return lines.join('\n');
}

/** Characters per pathological line, and the time any one may take to parse (measured: ~10 ms). */
const LONG_LINE = { min: 20_000, max: 60_000 } as const;
const LONG_LINE_BUDGET_MS = 400;

const OWN_KEY = 'PrivateKey = 4ERPoG7Kjg7ELywVxOqiEHfsdzejlbEa4VTju7FYI30=';
const PEER_KEY = 'PublicKey = gouft/YdVKcWmobDbm/UUqK2Qxe8RC2IqjWOptWQ6Aw=';
/** Where a long run can sit: `%` is replaced by it. */
const PLACES = [
  `[Interface]\n${OWN_KEY}\nAddress = 10.0.0.1/24%`,
  `[Interface]\n${OWN_KEY}\nAddress = %`,
  `[Interface]\n${OWN_KEY}\nAddress%= 10.0.0.1/24`,
  `[Interface]\n${OWN_KEY}\n%`,
  `[Interface]\n${OWN_KEY}\nDNS = 1.1.1.1%`,
  `[Interface]\n${OWN_KEY}\nPostUp = echo%`,
  `[Interface]\n${OWN_KEY}\nMailDomains = example.com,%`,
  `[Interface]\n${OWN_KEY}\nMTU = 1420%`,
  `[Interface]\n${OWN_KEY}\n[Peer%]`,
  `[%`,
  `[Interface]\n${OWN_KEY}\n[Peer]\n${PEER_KEY}\nAllowedIPs = 10.0.0.0/8%`,
  `[Interface]\n${OWN_KEY}\n[Peer]\n${PEER_KEY}\nEndpoint = [%]:51820`,
  `[Interface]\n${OWN_KEY}\n[Peer]\n${PEER_KEY}\nEndpoint = %:51820`,
  `[Interface]\n${OWN_KEY}\n[Peer]\n${PEER_KEY}\nPersistentKeepalive = %`,
  `[Interface]\n${OWN_KEY}\n[Peer]\n${PEER_KEY}\nPresharedKey = %`,
];
/** Units a run is made of; each is repeated, then ended by one of END. */
const UNITS = [' ', '\t', '\r', '\v\f', ' \t', ', ', ',', ':', '::', '1:', '[', ']', '=', '#', 'a-', 'a.', '1.', '0', '/', 'A', '+/', '\r\n', '\n', '\u00a0'];
const END = ['', 'x', '=', ']', ',', ' ', '#', '\u0000'];

/**
 * The fastest of up to three runs, stopping at the first within `budgetMs`: a run slowed
 * by a busy machine is tried again, a quadratic step is slow every time.
 */
function fastestMs(run: () => void, budgetMs: number): number {
  let best = Infinity;
  for (let i = 0; i < 3 && best > budgetMs; i++) {
    const started = performance.now();
    run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

describe('parseConfig time on pathological lines', () => {
  it(`a line of ${LONG_LINE.min}..${LONG_LINE.max} characters made of one repeated unit parses within ${LONG_LINE_BUDGET_MS} ms`, () => {
    const slow: string[] = [];
    fc.assert(
      fc.property(
        fc.constantFrom(...PLACES),
        fc.constantFrom(...UNITS),
        fc.integer(LONG_LINE),
        fc.constantFrom(...END),
        (place, unit, length, end) => {
          const run = unit.repeat(Math.ceil(length / unit.length)) + end;
          const text = place.replace('%', () => run);
          const ms = fastestMs(() => {
            try {
              parseConfig(text, 'long.conf');
            } catch (error) {
              if (!(error instanceof ConfigError)) throw error;
            }
          }, LONG_LINE_BUDGET_MS);
          if (ms > LONG_LINE_BUDGET_MS) slow.push(`${Math.round(ms)} ms: ${JSON.stringify(unit)} x ${length} + ${JSON.stringify(end)} in ${JSON.stringify(place.slice(-30))}`);
          expect(ms, slow.at(-1)).toBeLessThanOrEqual(LONG_LINE_BUDGET_MS);
        },
      ),
      // A slow case is slow every time: no shrinking through more of them.
      { ...fcParams(150), endOnFailure: true },
    );
  });

  it('a file of 200,000 lines (blank, comments, repeated list keys) parses within a second', () => {
    const lines = ['[Interface]', OWN_KEY];
    for (let i = 0; i < 200_000; i++) lines.push(i % 3 === 0 ? '' : i % 3 === 1 ? '  # a comment  ' : 'DNS = ');
    const text = lines.join('\n');
    expect(parseConfig(text, 'many.conf').interface.dns.servers).toEqual([]);
    expect(fastestMs(() => parseConfig(text, 'many.conf'), 1000)).toBeLessThan(1000);
  });
});

describe('parseConfig on mutated real files', () => {
  it('every fixture, good or bad, gives a Config or a ConfigError; Configs round-trip', () => {
    for (const text of CORPUS) check(text);
    for (const text of GOOD) expect(check(text)).not.toBeInstanceOf(ConfigError);
  });

  it('after any sequence of edits', () => {
    fc.assert(fc.property(fc.nat(), fc.array(editArb, { minLength: 1, maxLength: 8 }), (pick, edits) => {
      let text = CORPUS[pick % CORPUS.length]!;
      for (const e of edits) text = applyEdit(text, e);
      check(text);
    }), fcParams(500));
  });

  it('files assembled from keys and values near their limits', () => {
    const line = fc.oneof(
      fc.constantFrom(...LINES),
      fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(' = ', '=', ' =', '\t=\t', ' == '), fc.constantFrom(...VALUES), fc.constantFrom('', ' # note', '#'))
        .map(([k, eq, v, c]) => `${k}${eq}${v}${c}`),
    );
    fc.assert(fc.property(fc.array(line, { maxLength: 25 }), fc.constantFrom('\n', '\r\n'), (lines, eol) => {
      check(['[Interface]', 'PrivateKey = 4ERPoG7Kjg7ELywVxOqiEHfsdzejlbEa4VTju7FYI30=', ...lines].join(eol));
    }), fcParams(500));
  });

  it('reached accepted files and many kinds of refusal', () => {
    console.log(`config outcomes: ${seen.accepted} accepted, refused ${JSON.stringify(Object.fromEntries(seen.refused))}`);
    expect(seen.accepted).toBeGreaterThan(50);
    expect(seen.refused.size).toBeGreaterThan(15);
  });
});
