// `burrow-go [-f] IFACE`: Burrow behind wireguard-go's command line, so that the tools
// that drive wireguard-go drive Burrow unchanged:
//
//   WG_QUICK_USERSPACE_IMPLEMENTATION=burrow-go wg-quick up wg0
//
// As wireguard-go: it creates the TUN interface IFACE and serves the control socket
// /var/run/wireguard/IFACE.sock, with no key and no peers (wg-quick sets them with `wg
// setconf`, and sets the addresses, routes and DNS itself); without -f it detaches
// once both are ready and returns 0; it exits when the socket is deleted (`wg-quick
// down`) or the interface removed (`ip link del`), and on SIGINT or SIGTERM.
// WG_PROCESS_FOREGROUND=1 is -f, and LOG_LEVEL (error, info, debug/verbose, silent)
// sets what is logged: to standard output in the foreground, to /run/burrow/IFACE.log
// when detached.

import './no-inspector.js'; // first: see the file
import { Command, CommanderError } from 'commander';
import { checkIfnameText } from '../platform/linux/plan.js';
import { runDaemon, spawnDaemon, type ChildReport } from '../runtime/daemon.js';
import { logPath } from '../runtime/journal.js';
import { BoundedLogFile, createLogger, parseLogLevel } from '../runtime/log.js';
import { runningDaemon } from './daemon.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE } from './errors.js';
import { recoverStale } from './up.js';

const CHILD = 'BURROW_GO_DAEMON_CHILD';

async function main(ifname: string, opts: { foreground?: boolean }): Promise<void> {
  const why = checkIfnameText(ifname);
  if (why !== undefined) throw new CliError(`interface name ${JSON.stringify(ifname)}: ${why}`, EXIT_BAD_INPUT);
  if (process.getuid?.() !== 0) throw new CliError('burrow-go needs root (CAP_NET_ADMIN) to create a TUN interface', EXIT_FAILURE);
  const child = process.env[CHILD] === '1';
  if (!child) {
    if (runningDaemon(ifname) !== undefined) throw new CliError(`${ifname} is already run by another burrow-go or burrow daemon`, EXIT_FAILURE);
    const recovered = await recoverStale(ifname, (l) => process.stderr.write(`${l}\n`));
    if (recovered !== undefined) process.stderr.write(`${recovered}\n`);
  }
  const foreground = opts.foreground === true || process.env.WG_PROCESS_FOREGROUND === '1';
  if (!foreground) {
    const report = await spawnDaemon([process.argv[1]!, ifname], logPath(ifname), { ...process.env, WG_PROCESS_FOREGROUND: '1', [CHILD]: '1' });
    if (!report.ready) throw new CliError(report.message, report.exitCode);
    return;
  }
  const level = parseLogLevel(process.env.LOG_LEVEL);
  const sink = child ? new BoundedLogFile(logPath(ifname)).write : (text: string) => void process.stdout.write(text);
  const code = await runDaemon({
    ifname,
    log: createLogger(level, ifname, sink),
    report: (r: ChildReport) => {
      if (child && process.send) process.send(r);
    },
  });
  if (code !== 0) process.exitCode = code;
}

const program = new Command();
program
  .name('burrow-go')
  .description(
    "Burrow's WireGuard engine with wireguard-go's command line: creates the TUN interface and its control socket\n" +
      '(/var/run/wireguard/IFACE.sock) for `wg` and `wg-quick` to configure, e.g.\n' +
      '  WG_QUICK_USERSPACE_IMPLEMENTATION=burrow-go wg-quick up wg0',
  )
  .version('0.1.0')
  .argument('<interface>', 'the interface to create, e.g. wg0')
  .option('-f, --foreground', 'stay in the foreground (also WG_PROCESS_FOREGROUND=1); log to standard output')
  .addHelpText('after', '\nEnvironment: LOG_LEVEL = error | info | debug | verbose | silent (default info).\nExits when the control socket is deleted or the interface removed, and on SIGINT/SIGTERM.')
  .showHelpAfterError()
  .exitOverride()
  .action(main);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
  else {
    process.stderr.write(`burrow-go: ${(e as Error).message ?? String(e)}\n`);
    process.exitCode = e instanceof CliError ? e.exitCode : EXIT_FAILURE;
  }
}
