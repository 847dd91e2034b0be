// The C host (native/jsc-host) in a namespace: started, its settings line read, its
// status asked over stdin. Used by test/netns/jsc-host.test.ts and bench/jsc.ts.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Netns } from './netns.js';

export const HOST = join('native', 'jsc-host', 'build', 'burrow-jsc-host');
export const BUNDLE = join('dist', 'jsc', 'burrow.js');

export interface Host {
  child: ChildProcess;
  settings: { aead: string; dh: string; apple: { ipv4Settings: { addresses: string[] } } };
  /** Asks the host for Burrow.status() over its stdin. */
  status(): Promise<{ publicKey: string; allowedIPs: string[]; lastHandshake: number; rxBytes: number; txBytes: number }[]>;
}

/** Starts the C host in `ns` (OpenSSL's X25519 with OpenSSL's AEAD unless `dh` says otherwise) and waits for the settings line it prints once the TUN is up. */
export async function startHost(ns: Netns, conf: string, ifname: string, aead: 'noble' | 'openssl', dh: 'noble' | 'openssl' = aead): Promise<Host> {
  const child = ns.spawn(HOST, ['--bundle', BUNDLE, '--config', conf, '--ifname', ifname, '--aead', aead, '--dh', dh], { stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  const waiting: ((line: string) => void)[] = [];
  const lines: string[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString('utf8');
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(line); else lines.push(line);
    }
  });
  const nextLine = (what: string): Promise<string> => new Promise<string>((resolve, reject) => {
    const queued = lines.shift();
    if (queued !== undefined) return resolve(queued);
    const timer = setTimeout(() => reject(new Error(`the C host printed no ${what}: ${ns.outputOf(child)}`)), 10_000);
    waiting.push((line) => { clearTimeout(timer); resolve(line); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the C host exited (${code}): ${ns.outputOf(child)}`)); });
  });
  const settings = JSON.parse(await nextLine('settings')) as Host['settings'];
  return {
    child, settings,
    status: async () => {
      child.stdin!.write('status\n');
      return JSON.parse(await nextLine('status'));
    },
  };
}

