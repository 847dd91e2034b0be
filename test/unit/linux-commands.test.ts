// What the C host runs with `ip` for a configuration's TunnelSettings.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { tunnelSettings } from '../../src/policy/index.js';
import { linuxCommands } from '../../src/apple/linux-commands.js';

const settingsOf = (file: string) => ({ settings: tunnelSettings(parseConfig(readFileSync(`test/fixtures/configs/${file}`, 'utf8'), file)) });

describe('linuxCommands', () => {
  it('addresses, then the MTU with link up, then one route per included prefix; the same from the JSON text', () => {
    const s = settingsOf('preshared-key.conf');
    expect(linuxCommands(s, 'jh0')).toEqual([
      ['address', 'add', '10.8.0.3/24', 'dev', 'jh0'],
      ['link', 'set', 'dev', 'jh0', 'mtu', '1420', 'up'],
      ['route', 'replace', '10.8.0.0/24', 'dev', 'jh0'],
    ]);
    expect(linuxCommands(JSON.stringify(s), 'jh0')).toEqual(linuxCommands(s, 'jh0'));
  });

  it('refuses a full tunnel rather than route its own endpoint into it', () => {
    expect(() => linuxCommands(settingsOf('full-tunnel.conf'), 'jh0')).toThrow(/0\.0\.0\.0\/0: a full tunnel/);
  });
});
