// Every way a configuration can be refused, with a stable code, the file, the line and
// the key, so that the CLI can print "wg0.conf:3: PrivateKey: what was expected" and a
// program can branch on `code`. Messages never contain a key's text: the only text of
// the file ever quoted is what `quote` lets through.

export type ConfigErrorCode =
  /** A line that is neither `[Section]`, `Key = value`, a comment nor blank. */
  | 'ERR_CONFIG_SYNTAX'
  /** `[Something]` other than [Interface] or [Peer]. */
  | 'ERR_CONFIG_UNKNOWN_SECTION'
  /** A `Key = value` line before the first section header. */
  | 'ERR_CONFIG_OUTSIDE_SECTION'
  | 'ERR_CONFIG_UNKNOWN_KEY'
  /** A known key in the other section (ListenPort under [Peer], Endpoint under [Interface]). */
  | 'ERR_CONFIG_WRONG_SECTION'
  /** A key that takes one value given twice in one section. */
  | 'ERR_CONFIG_DUPLICATE_KEY'
  | 'ERR_CONFIG_MISSING_INTERFACE'
  | 'ERR_CONFIG_DUPLICATE_INTERFACE'
  | 'ERR_CONFIG_MISSING_PRIVATE_KEY'
  | 'ERR_CONFIG_MISSING_PUBLIC_KEY'
  /** Two [Peer] sections with the same PublicKey. */
  | 'ERR_CONFIG_DUPLICATE_PEER'
  /** A [Peer] whose PublicKey is the interface's own: the kernel silently ignores it. */
  | 'ERR_CONFIG_PEER_IS_SELF'
  /** One AllowedIPs prefix on two peers: WireGuard would silently give it to the last one. */
  | 'ERR_CONFIG_DUPLICATE_ALLOWED_IP'
  /** A PrivateKey, PublicKey or PresharedKey that is not 44 base64 characters of 32 bytes. */
  | 'ERR_CONFIG_BAD_KEY'
  | 'ERR_CONFIG_BAD_PORT'
  /** An IP address or CIDR prefix (Address, AllowedIPs, DNS servers). */
  | 'ERR_CONFIG_BAD_ADDRESS'
  | 'ERR_CONFIG_BAD_ENDPOINT'
  | 'ERR_CONFIG_BAD_MTU'
  | 'ERR_CONFIG_BAD_TABLE'
  | 'ERR_CONFIG_BAD_FWMARK'
  | 'ERR_CONFIG_BAD_KEEPALIVE'
  | 'ERR_CONFIG_BAD_BOOLEAN'
  | 'ERR_CONFIG_BAD_DOMAIN'
  /** An [App]'s Name, CGroup or UID that is not one. */
  | 'ERR_CONFIG_BAD_APP'
  /** An [App] without a Name, or two [App]s with one name. */
  | 'ERR_CONFIG_MISSING_APP_NAME'
  | 'ERR_CONFIG_DUPLICATE_APP'
  /** A key given with nothing after the "=" where a value is required. */
  | 'ERR_CONFIG_EMPTY_VALUE'
  /** ExcludeLocalNetworks = true without IncludeAllNetworks = true. */
  | 'ERR_CONFIG_EXCLUDE_WITHOUT_INCLUDE'
  /** formatConfig was given a value that has no faithful text form (a hook with a newline). */
  | 'ERR_CONFIG_UNREPRESENTABLE';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly file: string;
  /** 1-based line, or undefined for a fault of the whole file (no [Interface]). */
  readonly line: number | undefined;
  /** The key in wg-quick's spelling, or undefined when the fault is not about one key. */
  readonly key: string | undefined;
  /** What was expected, without the file, line and key. */
  readonly detail: string;

  constructor(code: ConfigErrorCode, file: string, line: number | undefined, key: string | undefined, detail: string) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${key === undefined ? '' : `${key}: `}${detail}`);
    this.code = code;
    this.file = file;
    this.line = line;
    this.key = key;
    this.detail = detail;
  }
}

// A run of 16 or more base64 characters may be (part of) a key: 16 characters are 96
// bits of it. Such text is never quoted back, wherever it was found in the file.
const KEY_LIKE = /[A-Za-z0-9+/]{16,}/;

/** `'text'` if it is short and cannot be key material, otherwise undefined. */
export function quote(text: string): string | undefined {
  if (text.length > 64 || KEY_LIKE.test(text) || /[\u0000-\u001f\u007f]/.test(text)) return undefined;
  return `'${text}'`;
}
