// Per-app routing as a policy: which apps there are, which names each sends through the
// tunnel, and for how long a resolved address stays routed. Pure; the Linux platform
// enforces it (platform/linux/perapp.ts, runtime/resolver.ts), the Apple side hands the
// three built-in lists to the OS (a configuration profile's applayer payload).
//
// The apps are the three built-ins, named as on Apple's platforms (mail, calendar,
// contacts, with MailDomains, CalendarDomains and ContactsDomains), and every [App]
// section. An [App] named like a built-in adds to it (more domains, its cgroups and
// uids). An app without a domain routes nothing and is left out.

import type { AppConfig, Config } from '../config/index.js';
import { matchesDomain } from './domains.js';

export const BUILT_IN_APPS = ['mail', 'calendar', 'contacts'] as const;

/** One app as the platform enforces it. */
export interface AppRule {
  readonly name: string;
  /** ASCII, lower case, no trailing dot; each matches itself and every name under it. */
  readonly domains: readonly string[];
  /** cgroup v2 paths (relative to the cgroup2 root) whose processes are the app's. */
  readonly cgroups: readonly string[];
  /** Users whose processes are the app's. */
  readonly uids: readonly number[];
}

/**
 * Bounds on how long a resolved address stays in an app's set, in seconds. The lower
 * bound outlives the caches of applications that keep an answer longer than its TTL
 * (Java's default is 30 s); the upper one keeps a record with a day-long TTL from
 * pinning an address for a day. The answer handed to the app never claims a TTL longer
 * than the set entry lives (answerTtl).
 */
export const SET_TTL_MIN_SECONDS = 30;
export const SET_TTL_MAX_SECONDS = 3600;

/** The apps of `config` that have domains, built-ins first, then [App]s in file order. */
export function appRules(config: Config): AppRule[] {
  const i = config.interface;
  const sections = config.apps ?? [];
  const section = (name: string): AppConfig | undefined => sections.find((a) => a.name === name);
  const builtIn: Record<(typeof BUILT_IN_APPS)[number], readonly string[]> = { mail: i.mailDomains, calendar: i.calendarDomains, contacts: i.contactsDomains };
  const rules: AppRule[] = [];
  const add = (name: string, domains: readonly string[], app: AppConfig | undefined): void => {
    const unique = [...new Set(domains)];
    if (unique.length === 0) return;
    rules.push({ name, domains: unique, cgroups: [...new Set(app?.cgroups ?? [])], uids: [...new Set(app?.uids ?? [])] });
  };
  for (const name of BUILT_IN_APPS) add(name, [...builtIn[name], ...(section(name)?.domains ?? [])], section(name));
  for (const app of sections) if (!(BUILT_IN_APPS as readonly string[]).includes(app.name)) add(app.name, app.domains, app);
  return rules;
}

/** Whether `name` (as asked, any case, trailing dot or not, IDN or punycode) is one of `app`'s. */
export function appMatches(app: AppRule, name: string): boolean {
  return app.domains.some((d) => matchesDomain(name, d));
}

/** How long an address from a record with `ttl` seconds stays in the app's set. */
export function setEntryTimeout(ttl: number): number {
  const t = Number.isFinite(ttl) ? Math.floor(ttl) : 0;
  return Math.min(SET_TTL_MAX_SECONDS, Math.max(SET_TTL_MIN_SECONDS, t));
}

/** The TTL the app is told: never longer than the set entry lives, never raised. */
export function answerTtl(ttl: number): number {
  const t = Number.isFinite(ttl) ? Math.max(0, Math.floor(ttl)) : 0;
  return Math.min(SET_TTL_MAX_SECONDS, t);
}
