// Per-app routing in a session: the resolver started first (the nftables rules name its
// ports), then the platform's cgroups, rules and table (platform/linux/perapp.ts), each
// journalled on the session's stack; the resolver is stopped after they are removed.

import type { AppliedLinux } from '../platform/linux/apply.js';
import type { Exec } from '../platform/linux/exec.js';
import { applyPerApp, renderSetAdd } from '../platform/linux/perapp.js';
import type { LinuxUndo } from '../platform/linux/undo.js';
import type { UndoStack } from '../platform/undo.js';
import type { TunnelSettings } from '../policy/index.js';
import type { Logger } from './log.js';
import { PerAppResolver } from './resolver.js';

export interface PerAppContext {
  readonly ifname: string;
  readonly exec: Exec;
  readonly stack: UndoStack<LinuxUndo>;
  readonly log: Logger;
}

/** Enforces settings.apps, when there are any, on the tunnel applyLinux brought up. */
export async function startPerApp(settings: TunnelSettings, applied: AppliedLinux, c: PerAppContext): Promise<void> {
  const { apps } = settings;
  const mark = applied.perAppTable;
  if (apps === undefined || mark === undefined) return;
  const host = (family: 4 | 6): string | undefined => (family === 4 ? settings.ipv4 : settings.ipv6).addresses[0]?.text.split('/')[0];
  const v4 = host(4);
  const v6 = host(6);
  const resolver = await PerAppResolver.start({
    apps,
    tunnelServers: settings.dns.servers,
    tunnelSource: { ...(v4 === undefined ? {} : { v4 }), ...(v6 === undefined ? {} : { v6 }) },
    addToSet: async (app, entries) => {
      const r = await c.exec('nft', ['-f', '-'], { input: renderSetAdd(app, entries) });
      if (r.exitCode !== 0) throw new Error(`adding to the ${app} set: ${r.stderr.trim()}`);
    },
    log: c.log,
  });
  c.stack.defer('stop the per-app resolver', () => resolver.close());
  const ports = resolver.ports;
  await applyPerApp({
    ifname: c.ifname,
    mark,
    apps: apps.map((rule) => ({ rule, port: ports.get(rule.name)! })),
    tunnelAddresses: [...settings.ipv4.addresses, ...settings.ipv6.addresses],
    exec: c.exec,
    stack: c.stack,
    log: (line) => c.log.info(`[#] ${line}`),
  });
  for (const app of apps) c.log.info(`per-app: ${app.name} (${app.domains.join(', ')}): its resolver listens on port ${ports.get(app.name)}`);
}
