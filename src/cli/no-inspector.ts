// Imported first by every entry point, so that it runs before any other module is even
// loaded: Node opens its inspector on 127.0.0.1:9229 when SIGUSR1 arrives and the signal
// has no listener. A daemon running as root must never do that. The daemon replaces
// these listeners with ones that log (runtime/daemon.ts).
for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) process.on(signal, () => undefined);
