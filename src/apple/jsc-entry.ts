// The bundle's entry for JavaScriptCore: the driver's functions on one global, `Burrow`,
// which the host (native/jsc-host, native/apple) looks up after evaluating the script.
import * as driver from './driver.js';
import { runSelftest } from './selftest.js';
import { linuxCommands } from './linux-commands.js';

(globalThis as unknown as { Burrow: unknown }).Burrow = { ...driver, linuxCommands, runSelftest };
