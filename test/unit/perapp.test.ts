// Per-app routing without a network: domain matching (as Apple's per-app VPN matches
// MailDomains and friends), the [App] sections of a configuration, the apps the policy
// derives, the TTL bounds, the nftables table, the resolver's pure parts and how
// applyLinux routes a per-app tunnel.
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { findAppCgroup } from '../../src/cli/exec.js';
import { ConfigError, formatConfig, parseConfig } from '../../src/config/index.js';
import { idnToAscii } from '../../src/config/idn.js';
import { applyLinux, type Exec, LinuxPlatformError } from '../../src/platform/linux/index.js';
import { findCgroup2Mount } from '../../src/platform/linux/cgroup.js';
import { checkTableOwner } from '../../src/platform/linux/killswitch.js';
import { renderPerApp, renderSetAdd } from '../../src/platform/linux/perapp.js';
import { isLinuxUndo } from '../../src/platform/linux/undo.js';
import { answerTtl, appRules, comparableName, matchesDomain, setEntryTimeout, tunnelSettings } from '../../src/policy/index.js';
import { followChain, nameservers, PerAppResolver, udpLimit } from '../../src/runtime/resolver.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

function conf(...lines: string[]): string {
  return ['[Interface]', `PrivateKey = ${KEY}`, 'Address = 10.99.0.2/24', 'DNS = 10.20.0.53', ...lines].join('\n');
}

function withPeer(text: string): string {
  return `${text}\n[Peer]\nPublicKey = ${PEER}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = 192.0.2.1:51820\n`;
}

function configError(text: string): ConfigError {
  try {
    parseConfig(text, 'wg0.conf');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('domain matching', () => {
  it.each([
    ['corp.example', 'corp.example', true],
    ['mail.corp.example', 'corp.example', true],
    ['a.b.mail.corp.example', 'corp.example', true],
    ['MAIL.Corp.EXAMPLE', 'corp.example', true],
    ['mail.corp.example.', 'corp.example', true],
    ['mail.corp.example', 'Corp.Example.', true],
    ['notcorp.example', 'corp.example', false],
    ['corp.example.net', 'corp.example', false],
    ['example', 'corp.example', false],
    ['xcorp.example', 'corp.example', false],
    ['shop.bücher.example', 'xn--bcher-kva.example', true],
    ['shop.xn--bcher-kva.example', 'Bücher.example', true],
    ['xn--bcher-kva.example', 'bucher.example', false],
  ])('%s against %s: %s', (name, domain, expected) => {
    expect(matchesDomain(name, domain)).toBe(expected);
  });

  it('compares internationalised names in the ASCII form node:url gives', () => {
    for (const name of ['Bücher.example', 'MÜNCHEN.de', 'παράδειγμα.δοκιμή', '例え.テスト', 'straße.de', 'faß.example']) {
      expect(idnToAscii(name)).toBe(domainToASCII(name));
      expect(comparableName(`${name}.`)).toBe(domainToASCII(name));
    }
    expect(comparableName('')).toBeUndefined();
    expect(comparableName('a\u200db.example')).toBeUndefined();
  });
});

describe('[App] sections and the per-app domain lists', () => {
  it('reads apps, and writes them back', () => {
    const c = parseConfig(
      conf(
        'MailDomains = Corp.Example., bücher.example',
        '',
        '[App]',
        'Name = mail',
        'CGroup = /user.slice/user-1000.slice/user@1000.service/app.slice/app-thunderbird.scope/',
        'UID = 1000',
        '',
        '[app]',
        'name = chat',
        'Domains = chat.corp.example',
        'Domains = im.corp.example',
        'UID = 1001, ',
      ).replace('UID = 1001, ', 'UID = 1001'),
      'wg0.conf',
    );
    expect(c.interface.mailDomains).toEqual(['corp.example', 'xn--bcher-kva.example']);
    expect(c.apps).toEqual([
      { name: 'mail', domains: [], cgroups: ['user.slice/user-1000.slice/user@1000.service/app.slice/app-thunderbird.scope'], uids: [1000] },
      { name: 'chat', domains: ['chat.corp.example', 'im.corp.example'], cgroups: [], uids: [1001] },
    ]);
    expect(parseConfig(formatConfig(c), 'again.conf')).toStrictEqual(c);
    expect(parseConfig(conf(), 'wg0.conf').apps).toBeUndefined();
  });

  it.each([
    ['MailDomains = corp..example', 5, 'MailDomains', 'ERR_CONFIG_BAD_DOMAIN'],
    ['MailDomains = a\u200db.example', 5, 'MailDomains', 'ERR_CONFIG_BAD_DOMAIN'],
    ['[App]\nName = Mail', 6, 'Name', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nName = a-b', 6, 'Name', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nDomains = corp.example', 5, 'Name', 'ERR_CONFIG_MISSING_APP_NAME'],
    ['[App]\nName = mail\n[App]\nName = mail', 8, 'Name', 'ERR_CONFIG_DUPLICATE_APP'],
    ['[App]\nName = x\nCGroup = a/../b', 7, 'CGroup', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nName = x\nCGroup = a b', 7, 'CGroup', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nName = x\nUID = 0', 7, 'UID', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nName = x\nUID = -1', 7, 'UID', 'ERR_CONFIG_BAD_APP'],
    ['[App]\nName = x\nDomains = _x.example', 7, 'Domains', 'ERR_CONFIG_BAD_DOMAIN'],
    ['Name = mail', 5, 'Name', 'ERR_CONFIG_WRONG_SECTION'],
    ['[App]\nName = x\nAllowedIPs = 10.0.0.0/8', 7, 'AllowedIPs', 'ERR_CONFIG_WRONG_SECTION'],
  ])('%j is refused at line %i, key %s', (extra, line, key, code) => {
    const e = configError(conf(...extra.split('\n')));
    expect({ code: e.code, line: e.line, key: e.key, file: e.file }).toEqual({ code, line, key, file: 'wg0.conf' });
  });
});

describe('the per-app policy', () => {
  it('merges a built-in app with its [App] section, keeps file order, and leaves out apps without domains', () => {
    const c = parseConfig(
      conf('ContactsDomains = dir.corp.example', 'MailDomains = corp.example', '[App]', 'Name = chat', 'Domains = im.corp.example', '[App]', 'Name = idle', 'UID = 5', '[App]', 'Name = mail', 'Domains = mx.other.example', 'UID = 1000'),
      'wg0.conf',
    );
    expect(appRules(c)).toEqual([
      { name: 'mail', domains: ['corp.example', 'mx.other.example'], cgroups: [], uids: [1000] },
      { name: 'contacts', domains: ['dir.corp.example'], cgroups: [], uids: [] },
      { name: 'chat', domains: ['im.corp.example'], cgroups: [], uids: [] },
    ]);
    expect(tunnelSettings(parseConfig(conf(), 'x')).apps).toBeUndefined();
  });

  it('clamps how long a set keeps an address, and never tells the app a longer TTL than that', () => {
    expect([0, 1, 29, 30, 300, 3600, 86400, -5, Number.NaN].map(setEntryTimeout)).toEqual([30, 30, 30, 30, 300, 3600, 3600, 30, 30]);
    expect([0, 1, 300, 3600, 86400, -5].map(answerTtl)).toEqual([0, 1, 300, 3600, 3600, 0]);
    for (const ttl of [0, 1, 59, 600, 7200, 1e9]) expect(answerTtl(ttl)).toBeLessThanOrEqual(setEntryTimeout(ttl));
  });
});

describe('the nftables table', () => {
  const rule = { name: 'mail', domains: ['corp.example'], cgroups: ['user.slice/app-mail.slice'], uids: [1000] };
  const text = renderPerApp({ ifname: 'wg0', mark: 51820, apps: [{ rule, port: 40053 }] });

  it('redirects each way of recognising the app to its resolver, and marks new flows to its set', () => {
    expect(text).toMatch(/^table inet burrow\ndelete table inet burrow\ntable inet burrow \{\n/);
    expect(text).toContain('set app_mail_v4 { type ipv4_addr; flags timeout; size 65536; }');
    for (const match of ['socket cgroupv2 level 3 "burrow/wg0/mail"', 'socket cgroupv2 level 2 "user.slice/app-mail.slice"', 'meta skuid 1000']) {
      expect(text).toContain(`${match} meta l4proto { tcp, udp } th dport 53 redirect to :40053`);
      expect(text).toContain(`ct state new ${match} ip daddr @app_mail_v4 ct mark set 0xca6c`);
      expect(text).toContain(`ct state new ${match} ip6 daddr @app_mail_v6 ct mark set 0xca6c`);
    }
    // Established flows keep the mark from conntrack, not from the set.
    expect(text.match(/ct mark 0xca6c meta mark set 0xca6c/g)).toHaveLength(2);
    expect(text).toContain('oifname "wg0" ct mark 0xca6c masquerade');
  });

  it('never replaces the table of another tunnel (its kill switch), only its own or none', async () => {
    const listing = (stdout: string, exitCode = 0): Exec => async () => ({ exitCode, stdout, stderr: '' });
    const killSwitch = 'table inet burrow {\n\tcomment "Burrow\'s kill switch for wg1: removed by burrow down wg1"\n}\n';
    await expect(checkTableOwner(listing(killSwitch), 'wg0')).rejects.toThrow(/belongs to another tunnel .*kill switch for wg1/);
    await expect(checkTableOwner(listing(killSwitch), 'wg1')).resolves.toBeUndefined();
    await expect(checkTableOwner(listing('', 1), 'wg0')).resolves.toBeUndefined();
    await expect(checkTableOwner(listing('table inet burrow {\n}\n'), 'wg0')).rejects.toThrow(/no comment/);
  });

  it('adds addresses with their timeouts, per family', () => {
    expect(renderSetAdd('mail', [{ family: 4, address: '10.0.0.1', timeout: 30 }, { family: 6, address: 'fd00::1', timeout: 60 }, { family: 4, address: '10.0.0.2', timeout: 3600 }])).toBe(
      'add element inet burrow app_mail_v4 { 10.0.0.1 timeout 30s, 10.0.0.2 timeout 3600s }\nadd element inet burrow app_mail_v6 { fd00::1 timeout 60s }\n',
    );
    expect(renderSetAdd('mail', [])).toBe('');
  });
});

describe('the resolver, pure parts', () => {
  const a = (name: string, type: string, data: string, ttl = 60) => ({ name, type, data, ttl }) as never;

  it('follows a CNAME chain to its addresses, and stops at loops', () => {
    const answers = [a('Alias.corp.example', 'CNAME', 'mid.corp.example'), a('mid.corp.example', 'CNAME', 'cdn.other.example'), a('cdn.other.example', 'A', '10.0.0.1', 20), a('unrelated.example', 'A', '10.9.9.9')];
    expect(followChain('alias.corp.example.', 'A', answers)).toEqual({ addresses: [{ address: '10.0.0.1', ttl: 20 }], last: 'cdn.other.example' });
    expect(followChain('alias.corp.example', 'AAAA', answers).addresses).toEqual([]);
    const loop = [a('x.example', 'CNAME', 'y.example'), a('y.example', 'CNAME', 'x.example')];
    expect(followChain('x.example', 'A', loop)).toEqual({ addresses: [], last: 'y.example' });
  });

  it('answers over UDP within 512 bytes, or the EDNS size asked for (at most 4096)', () => {
    expect(udpLimit({ type: 'query' })).toBe(512);
    expect(udpLimit({ type: 'query', additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never] })).toBe(1232);
    expect(udpLimit({ type: 'query', additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 65000 } as never] })).toBe(4096);
    expect(udpLimit({ type: 'query', additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 100 } as never] })).toBe(512);
  });

  it('reads the direct resolvers from resolv.conf', () => {
    expect(nameservers('# x\nnameserver 192.0.2.53\nsearch corp\n nameserver fe80::1%eth0\nnameserver not-an-address\noptions edns0\n')).toEqual(['192.0.2.53', 'fe80::1%eth0']);
  });
});

describe('a per-app tunnel on Linux (scripted system)', () => {
  const run = async (text: string) => {
    const ran: string[] = [];
    const exec: Exec = async (file, args) => {
      const cmd = [file, ...args].join(' ');
      ran.push(cmd);
      if (cmd.startsWith('ip -j link show dev')) return { exitCode: 0, stdout: '[{"ifname":"wg0","mtu":1500,"flags":[]}]', stderr: '' };
      if (cmd.startsWith('ip -j')) return { exitCode: 0, stdout: '[]', stderr: '' };
      return { exitCode: 0, stdout: '', stderr: '' };
    };
    const settings = tunnelSettings(parseConfig(text, 'wg0.conf'));
    return { settings, applied: await applyLinux(settings, { ifname: 'wg0', exec, dns: { kind: 'file', path: '/etc/resolv.conf' } }), ran };
  };

  it('puts every route, the /0 too, in a table of its own, and leaves the system resolver alone', async () => {
    const { settings, applied, ran } = await run(withPeer(conf('MailDomains = corp.example')));
    expect(settings.fwmark).toBeUndefined();
    expect(applied.perAppTable).toBe(51820);
    expect(applied.fwmark).toBeUndefined();
    expect(ran).toContain('ip -4 route add 0.0.0.0/0 dev wg0 table 51820');
    expect(ran).toContain('ip -6 route add ::/0 dev wg0 table 51820');
    expect(ran.filter((c) => c.includes('rule add') || c.includes('resolv.conf') || c.startsWith('tee'))).toEqual([]);
  });

  it.each([
    ['IncludeAllNetworks = true', /cannot be combined/],
    ['Table = off', /Table = off/],
  ])('refuses %s with per-app domains, before changing anything', async (line, message) => {
    const e = await run(withPeer(conf('MailDomains = corp.example', line))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LinuxPlatformError);
    expect((e as LinuxPlatformError).code).toBe('ERR_PLATFORM_ARG');
    expect((e as Error).message).toMatch(message);
  });

  it('refuses per-app domains without the tunnel\'s DNS', async () => {
    const e = await run(withPeer(conf('MailDomains = corp.example').replace('DNS = 10.20.0.53\n', ''))).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/need DNS =/);
  });
});

describe('journal records and the cgroup2 mount', () => {
  it('accepts only the removal of Burrow\'s own cgroups', () => {
    expect(isLinuxUndo({ kind: 'cgroup', path: 'burrow/wg0', ifEmpty: false })).toBe(true);
    expect(isLinuxUndo({ kind: 'cgroup', path: 'burrow', ifEmpty: true })).toBe(true);
    for (const path of ['user.slice', 'burrow/../user.slice', 'burrowx/wg0', '/burrow/wg0', 'burrow//wg0']) {
      expect(isLinuxUndo({ kind: 'cgroup', path, ifEmpty: false })).toBe(false);
    }
    expect(isLinuxUndo({ kind: 'cgroup', path: 'burrow/wg0' })).toBe(false);
  });

  it('finds the cgroup2 mount in mountinfo, on a unified and on a hybrid system', () => {
    const hybrid = [
      '30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755',
      '31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw',
      '32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd',
    ].join('\n');
    expect(findCgroup2Mount(hybrid)).toBe('/sys/fs/cgroup/unified');
    expect(findCgroup2Mount('35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate')).toBe('/sys/fs/cgroup');
    expect(findCgroup2Mount('36 24 0:30 / /mnt/with\\040space rw - cgroup2 none rw')).toBe('/mnt/with space');
    expect(findCgroup2Mount(hybrid.split('\n')[0]!)).toBeUndefined();
  });
});

describe('the resolver on the loopback', () => {
  const ask = (port: number, name: string, type: 'A' | 'AAAA'): Promise<dnsPacket.DecodedPacket & { rcode: string }> =>
    new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.on('message', (msg) => {
        socket.close();
        resolve(dnsPacket.decode(msg) as dnsPacket.DecodedPacket & { rcode: string });
      });
      socket.on('error', reject);
      socket.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }), port, '127.0.0.1');
    });

  it('answers a family the tunnel has no address of with none; a matched name whose tunnel DNS is silent is SERVFAIL, never asked elsewhere', async () => {
    const added: string[] = [];
    const log = { error: () => undefined, info: () => undefined, debug: () => undefined };
    const resolver = await PerAppResolver.start({
      apps: [{ name: 'mail', domains: ['corp.example'], cgroups: [], uids: [] }],
      // Nothing listens there: the query times out on the loopback.
      tunnelServers: ['127.0.0.9'],
      tunnelSource: { v4: '127.0.0.1' },
      directServers: [],
      addToSet: async (app, entries) => {
        added.push(`${app} ${entries.length}`);
      },
      log: log as never,
    });
    try {
      const port = resolver.ports.get('mail')!;
      const v6 = await ask(port, 'imap.corp.example', 'AAAA');
      expect([v6.rcode, v6.answers, v6.id]).toEqual(['NOERROR', [], 7]);
      const v4 = await ask(port, 'IMAP.corp.example.', 'A');
      expect(v4.rcode).toBe('SERVFAIL');
      // Not the app's name, and no direct resolver: SERVFAIL at once.
      expect((await ask(port, 'www.example.org', 'A')).rcode).toBe('SERVFAIL');
      expect(added).toEqual([]);
    } finally {
      await resolver.close();
    }
  }, 20_000);
});

describe('burrow exec finds the app\'s cgroup', () => {
  it('takes the only tunnel that routes the app, asks which when several do, and says when none does', () => {
    const root = mkdtempSync(join(tmpdir(), 'burrow-cgroup-'));
    try {
      mkdirSync(join(root, 'burrow', 'wg0', 'mail'), { recursive: true });
      mkdirSync(join(root, 'burrow', 'wg0', 'calendar'), { recursive: true });
      expect(findAppCgroup(root, 'mail')).toBe('burrow/wg0/mail');
      mkdirSync(join(root, 'burrow', 'wg1', 'mail'), { recursive: true });
      expect(() => findAppCgroup(root, 'mail')).toThrow(/routed by several tunnels \(wg0, wg1\): say which with --interface/);
      expect(findAppCgroup(root, 'mail', 'wg1')).toBe('burrow/wg1/mail');
      expect(findAppCgroup(root, 'calendar')).toBe('burrow/wg0/calendar');
      expect(() => findAppCgroup(root, 'contacts')).toThrow(/no tunnel that is up routes the app contacts/);
      expect(() => findAppCgroup(root, 'calendar', 'wg1')).toThrow(/the tunnel wg1 is not up or does not route the app calendar/);
      expect(() => findAppCgroup(root, '../x')).toThrow(/an app name is/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
