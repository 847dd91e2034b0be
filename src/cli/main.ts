// The `burrow` command line, with wg-quick's and wg's conventions.
// Exit codes: 0 success, 1 the operation failed, 2 the input was wrong.

import './no-inspector.js'; // first: see the file
import { Command, CommanderError, Option } from 'commander';
import { execInApp } from './exec.js';
import { down } from './down.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';
import { genkey, genpsk, pubkey, readStdin } from './keys.js';
import { serverCommand } from './server.js';
import { formatInterface, readInterfaces } from './show.js';
import { up } from './up.js';

// The profile writer (plist, an XML library) and the demo load when their command runs:
// every other command, the server's daemon among them, starts without them.

const program = new Command();
program
  .name('burrow')
  .description('A WireGuard-compatible VPN in TypeScript.\n\nExit codes: 0 success, 1 the operation failed, 2 the input was wrong.')
  .version('0.1.0')
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride();

program
  .command('up')
  .description('bring up the tunnel described by a wg-quick configuration file; the interface is named after the file (wg0.conf -> wg0). Returns once the tunnel is configured; a daemon keeps it up.')
  .argument('<config>', 'path to the configuration file, e.g. /etc/wireguard/wg0.conf')
  .option('-f, --foreground', 'stay attached and keep the tunnel up until Ctrl-C (SIGINT) or SIGTERM; SIGHUP reloads the file')
  .option('-v, --verbose', 'log every timer and handshake initiation too (as LOG_LEVEL=debug); the log is /run/burrow/IFACE.log')
  .addOption(new Option('--daemon-child', 'run as the daemon that `up` starts').hideHelp())
  .addHelpText(
    'after',
    `
A daemon that died without cleaning up (SIGKILL, a crash) left a journal in
/run/burrow/IFACE.state: \`up\` finishes its work first, then comes up.
While up: SIGHUP re-reads the file and applies the difference as \`wg syncconf\` does;
SIGTERM brings the tunnel down; \`wg set\` works, and routes follow allowed-ips changes.
The log level is LOG_LEVEL (error, info, debug; default info) unless --verbose.`,
  )
  .action(async (config: string, opts: { foreground?: boolean; daemonChild?: boolean; verbose?: boolean }) => {
    const message = await up(config, { foreground: opts.foreground === true, daemonChild: opts.daemonChild === true, verbose: opts.verbose === true });
    if (!opts.daemonChild) process.stdout.write(`${message}\n`);
  });

program
  .command('down')
  .description('bring down a tunnel that `burrow up` brought up, removing its routes, rules and DNS; if its daemon died, undo what its journal (/run/burrow/IFACE.state) records')
  .argument('<config|interface>', 'the configuration file it was brought up with, or the interface name')
  .action(async (arg: string) => {
    process.stdout.write(`${await down(arg)}\n`);
  });

program
  .command('show')
  .description('show the running tunnels: peers, endpoints, latest handshakes, transfer (as `wg show`)')
  .argument('[interface]', 'only this interface')
  .option('--json', 'print JSON for scripts')
  .action(async (ifname: string | undefined, opts: { json?: boolean }) => {
    const interfaces = await readInterfaces(ifname);
    if (opts.json) process.stdout.write(`${JSON.stringify(ifname === undefined ? interfaces : interfaces[0], null, 2)}\n`);
    else process.stdout.write(interfaces.map(formatInterface).join('\n'));
  });

program
  .command('exec')
  .description("run a command as one of an app's processes for per-app routing: its names that match the app's domains go through the tunnel (needs root; under sudo the command runs as you)")
  .requiredOption('--app <name>', 'the app: mail, calendar, contacts, or the Name of an [App] section')
  .option('-i, --interface <iface>', 'the tunnel, when more than one routes this app')
  .argument('<command...>', 'the command and its arguments (put -- before a command that takes options)')
  .passThroughOptions()
  .addHelpText(
    'after',
    `
The tunnel must be up (burrow up) with domains for the app: MailDomains (mail),
CalendarDomains (calendar), ContactsDomains (contacts), or an [App] section's Domains.
The command is put in the cgroup burrow/IFACE/APP before it starts; so is all it starts.
Its DNS is answered by Burrow's resolver for the app; a connection to an address of a
matching name goes through the tunnel, everything else directly. See docs/per-app.md.

  sudo burrow exec --app mail -- thunderbird`,
  )
  .action(async (command: string[], opts: { app: string; interface?: string }) => {
    process.exitCode = await execInApp(command, { app: opts.app, ...(opts.interface === undefined ? {} : { interface: opts.interface }) });
  });

program
  .command('genkey')
  .description('print a new private key (as `wg genkey`)')
  .action(() => {
    process.stdout.write(genkey());
  });

program
  .command('pubkey')
  .description('read a private key on standard input, print its public key (as `wg pubkey`)')
  .action(async () => {
    process.stdout.write(pubkey(await readStdin()));
  });

program
  .command('genpsk')
  .description('print a new preshared key (as `wg genpsk`)')
  .action(() => {
    process.stdout.write(genpsk());
  });

program
  .command('profile')
  .description('write a configuration profile (.mobileconfig, mode 0600) that installs the tunnel on a managed Mac for the Burrow app')
  .argument('<config>', 'the wg-quick configuration file')
  .requiredOption('--format <format>', 'the profile format: mobileconfig')
  .option('--bundle-id <id>', 'the Burrow app\'s bundle identifier (VPNSubType)')
  .option('--per-app', 'a per-app VPN for Mail, Calendar and Contacts from MailDomains, CalendarDomains, ContactsDomains')
  .option('--include-private-key', 'put the interface\'s private key in the profile')
  .option('-o, --output <file>', 'where to write it (default NAME.mobileconfig)')
  .action(async (config: string, opts: { format: string; bundleId?: string; perApp?: boolean; includePrivateKey?: boolean; output?: string }) => {
    const { profileCommand } = await import('./profile.js');
    process.stdout.write(`${profileCommand(config, opts)}\n`);
  });

program
  .command('demo')
  .description('run a client and a server in two network namespaces, send traffic through the tunnel, print the status and throughput, and tear it all down (needs root)')
  .action(async () => {
    const { demo } = await import('./demo.js');
    await demo(process.argv[1]!);
  });

program.addCommand(serverCommand());

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
  } else if (e instanceof CliError) {
    process.stderr.write(`burrow: ${e.message}\n`);
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`burrow: ${(e as Error).message ?? String(e)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
