// Which registry a `burrow server` command works on, from its options:
//
//   --config PATH      the server's wg-quick file; the interface is named after it
//   --registry SPEC    a path as above, or a postgres:// URL (also BURROW_REGISTRY, used
//                      when neither option is given); with a URL, the interface is
//                      --interface NAME (default wg0) and this gateway's share of the
//                      transfer totals is --gateway NAME (default: the host name)
//
// and `burrow server registry export|import`, between the file and PostgreSQL.

import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { Command, Option } from 'commander';
import { exportRegistry, importRegistry } from '../../server/pg/copy.js';
import { PgRegistry } from '../../server/pg/registry.js';
import { RegistryError } from '../../server/registry.js';
import { isPostgresSpec, openRegistry, type PeerRegistry } from '../../server/store.js';
import { ifnameFromConfigPath } from './daemon.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';

export const DEFAULT_SERVER_CONFIG = '/etc/wireguard/wg0.conf';
export const DEFAULT_INTERFACE = 'wg0';
/** Where a gateway on a shared registry keeps its own files (admin password, metrics token, usage). */
export const LOCAL_DIR = '/etc/wireguard';

export interface RegistryOptions {
  readonly config?: string;
  readonly registry?: string;
  readonly gateway?: string;
  readonly interface?: string;
}

export interface SelectedRegistry {
  readonly registry: PeerRegistry;
  readonly ifname: string;
  /**
   * The path this gateway's own files go beside (wg0.admin-password, wg0.usage.json …):
   * the registry file, or LOCAL_DIR/IFACE.conf for a PostgreSQL registry.
   */
  readonly localBase: string;
  readonly postgres: boolean;
}

/** --config, --registry, --gateway, --interface on `c`. */
export function registryOptions(c: Command): Command {
  return c
    .addOption(new Option('-c, --config <path>', `the server's wg-quick file (the registry); the interface is named after it (default ${DEFAULT_SERVER_CONFIG})`))
    .addOption(new Option('--registry <spec>', 'the registry instead: a wg-quick file, or postgresql://USER@HOST/DB shared by several gateways (default: $BURROW_REGISTRY)'))
    .addOption(new Option('--gateway <name>', "with a PostgreSQL registry: this gateway's name, for its share of the transfer totals (default: the host name)"))
    .addOption(new Option('-i, --interface <name>', `with a PostgreSQL registry: the interface (default ${DEFAULT_INTERFACE})`));
}

function checkIfname(name: string): string {
  return ifnameFromConfigPath(`${name}.conf`);
}

/** The registry the options name; throws CliError for contradicting or bad options. */
export function registryFrom(o: RegistryOptions): SelectedRegistry {
  if (o.config !== undefined && o.registry !== undefined) throw new CliError('--config and --registry name the registry twice: give one', EXIT_BAD_INPUT);
  const env = process.env.BURROW_REGISTRY;
  const spec = o.registry ?? o.config ?? (env === undefined || env === '' ? DEFAULT_SERVER_CONFIG : env);
  if (!isPostgresSpec(spec)) {
    if (o.interface !== undefined) throw new CliError(`--interface goes with a PostgreSQL registry: with a file, the interface is named after it (${spec})`, EXIT_BAD_INPUT);
    const full = resolvePath(spec);
    return { registry: openRegistry(full), ifname: ifnameFromConfigPath(full), localBase: full, postgres: false };
  }
  const ifname = checkIfname(o.interface ?? DEFAULT_INTERFACE);
  let registry: PeerRegistry;
  try {
    registry = openRegistry(spec, { gateway: o.gateway ?? hostname() });
  } catch (e) {
    if (e instanceof RegistryError) throw new CliError(e.message, EXIT_BAD_INPUT);
    throw e;
  }
  return { registry, ifname, localBase: `${LOCAL_DIR}/${ifname}.conf`, postgres: true };
}

/** Runs `f` on the registry the options name, and closes it (its connections) after. */
export async function withRegistry<T>(o: RegistryOptions, f: (r: SelectedRegistry) => Promise<T>): Promise<T> {
  const selected = registryFrom(o);
  try {
    return await f(selected);
  } finally {
    await selected.registry.close();
  }
}

const asCliError = (e: unknown): unknown =>
  e instanceof RegistryError ? new CliError(e.message, e.code === 'ERR_REGISTRY_UNREACHABLE' || e.code === 'ERR_REGISTRY_BUSY' ? EXIT_FAILURE : EXIT_BAD_INPUT) : e;

/** The PostgreSQL registry of --registry (or BURROW_REGISTRY); a path is refused here. */
function postgresOnly(spec: string | undefined, gateway: string | undefined): PgRegistry {
  const url = spec ?? process.env.BURROW_REGISTRY;
  if (url === undefined || !isPostgresSpec(url)) throw new CliError('--registry: expected a postgresql:// URL (or BURROW_REGISTRY)', EXIT_BAD_INPUT);
  try {
    return new PgRegistry(url, { gateway: gateway ?? hostname() });
  } catch (e) {
    throw asCliError(e);
  }
}

/** `burrow server registry export|import`. */
export function registryCommand(): Command {
  const c = new Command('registry').description('move the registry between its wg-quick file and PostgreSQL (several gateways), both ways');
  c.command('export')
    .description("write a PostgreSQL registry to a wg-quick file (0600, atomically), each peer's transfer totals summed over every gateway")
    .requiredOption('--config <path>', 'the wg-quick file to write')
    .option('--registry <url>', 'the PostgreSQL registry (default: $BURROW_REGISTRY)')
    .option('--replace', 'overwrite the file when it exists')
    .action(async (o: { config: string; registry?: string; replace?: boolean }) => {
      const path = resolvePath(o.config);
      ifnameFromConfigPath(path);
      const from = postgresOnly(o.registry, undefined);
      try {
        const { peers } = await exportRegistry(from, path, { replace: o.replace === true });
        process.stdout.write(`wrote ${path} (0600) from ${from.location}: the server and ${peers} peer(s)\n`);
      } catch (e) {
        throw asCliError(e);
      } finally {
        await from.close();
      }
    });
  c.command('import')
    .description("write a wg-quick file's registry into PostgreSQL (one transaction); its transfer totals become this host's share")
    .requiredOption('--config <path>', 'the wg-quick file to read')
    .option('--registry <url>', 'the PostgreSQL registry (default: $BURROW_REGISTRY)')
    .option('--gateway <name>', "whose share the file's transfer totals become (default: the host name)")
    .option('--replace', 'replace a server already in the database, and all its peers')
    .action(async (o: { config: string; registry?: string; gateway?: string; replace?: boolean }) => {
      const path = resolvePath(o.config);
      const to = postgresOnly(o.registry, o.gateway);
      try {
        const { peers } = await importRegistry(path, to, { replace: o.replace === true });
        process.stdout.write(`imported ${path} into ${to.location}: the server and ${peers} peer(s)\n`);
      } catch (e) {
        throw asCliError(e);
      } finally {
        await to.close();
      }
    });
  for (const sub of [c, ...c.commands]) sub.exitOverride().showHelpAfterError();
  return c;
}
