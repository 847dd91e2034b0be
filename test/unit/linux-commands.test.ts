// What the C host (native/jsc-host) does on Linux with the NEPacketTunnelNetworkSettings
// JSON: addresses, MTU, the excluded routes pinned to their path outside the tunnel, the
// included routes (a default route as its two halves), and the resolv.conf for the DNS
// settings. The host's `ip` queries are answered here from a table.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Endpoint, parseConfig } from '../../src/config/index.js';
import { tunnelSettings } from '../../src/policy/index.js';
import { appleNetworkSettings } from '../../src/apple/network-settings.js';
import { linuxCommands, maskLength } from '../../src/apple/linux-commands.js';

const started = (file: string, resolved?: Endpoint[]) => {
  const config = parseConfig(readFileSync(`test/fixtures/configs/${file}`, 'utf8'), file);
  return { apple: appleNetworkSettings(tunnelSettings(config, resolved === undefined ? {} : { resolvedEndpoints: resolved })) };
};

/** An `ip` that answers from `answers` (by the arguments joined with spaces) and records what it was asked. */
function fakeIp(answers: Record<string, unknown>) {
  const asked: string[] = [];
  const query = (args: string[]): string | null => {
    const key = args.join(' ');
    asked.push(key);
    return key in answers ? JSON.stringify(answers[key]) : null;
  };
  return { query, asked };
}

const NO_ROUTE = { '-4 -j route show table main exact 203.0.113.10/32': [] };
const VIA_ROUTER = { ...NO_ROUTE, '-4 -j route get 203.0.113.10': [{ dst: '203.0.113.10', gateway: '198.51.100.1', dev: 'up0', prefsrc: '198.51.100.2' }] };

describe('linuxCommands', () => {
  it('maskLength inverts subnetMask and refuses a mask that is not a prefix', () => {
    expect(['0.0.0.0', '128.0.0.0', '255.255.240.0', '255.255.255.255'].map(maskLength)).toEqual([0, 1, 20, 32]);
    expect(() => maskLength('255.0.255.0')).toThrow(/255\.0\.255\.0 is not a prefix/);
  });

  it('a split tunnel: addresses, the MTU with link up, the endpoint pinned where it is routed now, one route per included prefix', () => {
    const ip = fakeIp({
      '-4 -j route show table main exact 203.0.113.40/32': [],
      '-4 -j route get 203.0.113.40': [{ dst: '203.0.113.40', gateway: '198.51.100.1', dev: 'up0' }],
    });
    const s = started('preshared-key.conf');
    const plan = linuxCommands(s, 'jh0', ip.query);
    expect(plan).toEqual({
      steps: [
        { argv: ['-4', 'address', 'add', '10.8.0.3/24', 'dev', 'jh0'], undo: null },
        { argv: ['link', 'set', 'dev', 'jh0', 'mtu', '1420', 'up'], undo: null },
        { argv: ['-4', 'route', 'add', '203.0.113.40/32', 'via', '198.51.100.1', 'dev', 'up0'], undo: ['-4', 'route', 'del', '203.0.113.40/32', 'via', '198.51.100.1', 'dev', 'up0'] },
        { argv: ['-4', 'route', 'replace', '10.8.0.0/24', 'dev', 'jh0'], undo: null },
      ],
      resolvConf: null,
    });
    expect(linuxCommands(JSON.stringify(s), 'jh0', ip.query)).toEqual(plan);
  });

  it('a full tunnel: each default route as its two halves, the endpoint kept outside, the DNS servers and search domain in resolv.conf', () => {
    const ip = fakeIp(VIA_ROUTER);
    const plan = linuxCommands(started('full-tunnel.conf', [{ host: '203.0.113.10', port: 51820 }]), 'jh0', ip.query);
    expect(plan.steps.map((s) => s.argv.join(' '))).toEqual([
      '-4 address add 10.64.0.2/32 dev jh0',
      '-6 address add fd64::2/128 dev jh0',
      'link set dev jh0 mtu 1420 up',
      '-4 route add 203.0.113.10/32 via 198.51.100.1 dev up0',
      '-4 route replace 0.0.0.0/1 dev jh0',
      '-4 route replace 128.0.0.0/1 dev jh0',
      '-6 route replace ::/1 dev jh0',
      '-6 route replace 8000::/1 dev jh0',
    ]);
    // Only the pinned endpoint outlives the interface; it is the one step with an undo.
    expect(plan.steps.filter((s) => s.undo !== null).map((s) => s.undo!.join(' '))).toEqual(['-4 route del 203.0.113.10/32 via 198.51.100.1 dev up0']);
    expect(ip.asked).toEqual(['-4 -j route show table main exact 203.0.113.10/32', '-4 -j route get 203.0.113.10']);
    expect(plan.resolvConf).toBe(
      '# Written by burrow-jsc-host for jh0; the previous content is put back when it stops.\n' +
      'nameserver 10.64.0.1\nnameserver fd64::1\nsearch corp.example.net\n');
  });

  it('an IPv6 endpoint on the link itself: pinned to the device, with no gateway', () => {
    const ip = fakeIp({
      '-6 -j route show table main exact 2001:db8:77::1/128': [],
      '-6 -j route get 2001:db8:77::1': [{ dst: '2001:db8:77::1', dev: 'up0', metric: 256 }],
    });
    const plan = linuxCommands(started('burrow-kill-switch.conf', [{ host: '2001:db8:77::1', port: 51820 }]), 'jh1', ip.query);
    expect(plan.steps.find((s) => s.undo !== null)).toEqual({
      argv: ['-6', 'route', 'add', '2001:db8:77::1/128', 'dev', 'up0'], undo: ['-6', 'route', 'del', '2001:db8:77::1/128', 'dev', 'up0'],
    });
    expect(plan.resolvConf).toContain('nameserver 10.70.0.1\n');
    expect(plan.resolvConf).not.toContain('search');
  });

  it('an endpoint that already has its own route is left as it is; one with no route outside the tunnel is refused', () => {
    const resolved = [{ host: '203.0.113.10', port: 51820 }];
    const kept = linuxCommands(started('full-tunnel.conf', resolved), 'jh0', fakeIp({ '-4 -j route show table main exact 203.0.113.10/32': [{ dst: '203.0.113.10' }] }).query);
    expect(kept.steps.filter((s) => s.undo !== null)).toEqual([]);
    expect(() => linuxCommands(started('full-tunnel.conf', resolved), 'jh0', fakeIp(NO_ROUTE).query))
      .toThrow('excluded route 203.0.113.10/32: there is no route to 203.0.113.10 outside the tunnel to keep it on');
  });
});
