// TunDevice and PacketBatch without root: every argument is checked in TypeScript
// before the addon sees it, and the batch mechanics work on any descriptor (a FIFO
// stands in for a TUN fd here; test/netns/tun.test.ts covers the real device).
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkInterfaceName,
  PacketBatch,
  TunDevice,
  TunError,
  tunAddonPath,
  type TunErrorCode,
} from '../../src/runtime/tun.js';

function codeOf(f: () => unknown): TunErrorCode | string {
  try {
    f();
  } catch (e) {
    if (e instanceof TunError) return e.code;
    return `not a TunError: ${String(e)}`;
  }
  return 'did not throw';
}

// Deliberately wrong arguments, as untyped JavaScript callers could pass them.
const bad = <T>(v: unknown): T => v as T;

describe('interface names', () => {
  it('accepts names Linux accepts', () => {
    for (const name of ['wg0', 'burrow', 'a', 'x'.repeat(15), 'bt%d', 'tün0', 'b-u_r.row']) {
      expect(checkInterfaceName(name)).toBe(name);
    }
  });

  it('refuses names over 15 bytes, counting UTF-8 bytes', () => {
    expect(codeOf(() => checkInterfaceName('x'.repeat(16)))).toBe('ERR_TUN_NAME');
    expect(codeOf(() => checkInterfaceName('ü'.repeat(8)))).toBe('ERR_TUN_NAME'); // 16 bytes
    expect(() => checkInterfaceName('burrow-interface0')).toThrow(/17 bytes; Linux allows at most 15/);
  });

  it('refuses what dev_valid_name() and dev_alloc_name() refuse', () => {
    for (const name of ['', '.', '..', 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb', 'a\u0000b', 'a%s', 'a%d%d', 'a%']) {
      expect(codeOf(() => checkInterfaceName(name)), JSON.stringify(name)).toBe('ERR_TUN_NAME');
    }
    for (const name of [undefined, null, 7, {}]) {
      expect(codeOf(() => checkInterfaceName(name)), String(name)).toBe('ERR_TUN_NAME');
    }
  });

  it('TunDevice.open checks the name before loading the addon or touching the system', () => {
    expect(codeOf(() => TunDevice.open('much-too-long-name'))).toBe('ERR_TUN_NAME');
    expect(codeOf(() => TunDevice.open(bad<string>(42)))).toBe('ERR_TUN_NAME');
    expect(codeOf(() => TunDevice.open('a/b'))).toBe('ERR_TUN_NAME');
  });

  it('TunDevice.adopt checks the descriptor and the optional name', () => {
    for (const fd of [-1, 1.5, Number.NaN, 2 ** 31, '3', undefined]) {
      expect(codeOf(() => TunDevice.adopt(bad<number>(fd))), String(fd)).toBe('ERR_TUN_ARG');
    }
    expect(codeOf(() => TunDevice.adopt(3, 'much-too-long-name'))).toBe('ERR_TUN_NAME');
  });
});

describe('PacketBatch', () => {
  it('lays out slots with headroom in one buffer', () => {
    const b = new PacketBatch({ capacity: 4, slotSize: 64, headroom: 16 });
    expect(b.buffer.byteLength).toBe(256);
    expect(b.lengths.length).toBe(4);
    expect(b.room).toBe(48);
    expect(b.offset(2)).toBe(144);
    expect(b.slot(3).byteOffset).toBe(192);
    expect(b.slot(3)).toBe(b.slot(3)); // made once
    b.set(1, new Uint8Array([1, 2, 3]));
    expect(b.lengths[1]).toBe(3);
    expect(Array.from(b.packet(1))).toEqual([1, 2, 3]);
    expect(b.buffer[64 + 16]).toBe(1);
  });

  it('defaults to 2048-byte slots without headroom', () => {
    const b = new PacketBatch({ capacity: 2 });
    expect(b.slotSize).toBe(2048);
    expect(b.headroom).toBe(0);
  });

  it('refuses bad sizes', () => {
    for (const capacity of [0, -1, 1.5, 4097, '8', undefined]) {
      expect(codeOf(() => new PacketBatch({ capacity: bad<number>(capacity) })), String(capacity)).toBe('ERR_TUN_ARG');
    }
    expect(codeOf(() => new PacketBatch({ capacity: 1, slotSize: 0 }))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => new PacketBatch({ capacity: 1, slotSize: 131073 }))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => new PacketBatch({ capacity: 1, slotSize: 64, headroom: 64 }))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => new PacketBatch({ capacity: 1, headroom: -1 }))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => new PacketBatch(bad<{ capacity: number }>(null)))).toBe('ERR_TUN_ARG');
  });

  it('refuses out-of-range slots and packets that do not fit', () => {
    const b = new PacketBatch({ capacity: 2, slotSize: 64, headroom: 16 });
    expect(codeOf(() => b.slot(2))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => b.offset(-1))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => b.packet(0.5))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => b.set(0, new Uint8Array(49)))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => b.set(0, bad<Uint8Array>([1, 2])))).toBe('ERR_TUN_ARG');
  });
});

const noAddon = tunAddonPath() === undefined;
if (noAddon) process.stderr.write('skipping addon tests: the addon is not built (run npm run setup)\n');

describe.skipIf(noAddon || process.platform !== 'linux')('TunDevice on an adopted descriptor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-tun-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let fifos = 0;

  function fifoPath(): string {
    const path = join(dir, `fifo${++fifos}`);
    execFileSync('mkfifo', [path]);
    return path;
  }

  /** Two read-write, non-blocking ends of a new FIFO: [for the device, for the test]. */
  function fifo(): [number, number] {
    const path = fifoPath();
    const flags = constants.O_RDWR | constants.O_NONBLOCK;
    return [openSync(path, flags), openSync(path, flags)];
  }

  const fdOpen = (fd: number): boolean => existsSync(`/proc/self/fd/${fd}`);

  it('refuses a descriptor that is not open', () => {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    const e = (() => {
      try {
        TunDevice.adopt(fd);
      } catch (err) {
        return err as TunError;
      }
      return undefined;
    })();
    expect(e?.code).toBe('ERR_TUN_BAD_FD');
    expect(e?.message).toBe(`cannot adopt fd ${fd}: it is not an open file descriptor`);
  });

  it('names a non-TUN descriptor as told, or fd<N>', () => {
    const [a, b] = [openSync('/dev/null', 'r'), openSync('/dev/null', 'r')];
    const da = TunDevice.adopt(a);
    const db = TunDevice.adopt(b, 'utun7');
    expect(da.name).toBe(`fd${a}`);
    expect(db.name).toBe('utun7');
    da.close();
    db.close();
  });

  it('checks the arguments of every call', () => {
    const dev = TunDevice.adopt(openSync('/dev/null', 'r+'));
    const batch = new PacketBatch({ capacity: 4, slotSize: 64, headroom: 8 });
    expect(codeOf(() => dev.readBatch(bad<PacketBatch>({})))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.readBatch(bad<PacketBatch>({ buffer: new Uint8Array(8) })))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.readBatch(batch, 5))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.readBatch(batch, -1))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.writeBatch(batch, 0, 5))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.writeBatch(batch, 5, 0))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.writeBatch(batch, 3, 2))).toBe('ERR_TUN_ARG');
    batch.lengths[1] = 57; // one more than a slot holds
    expect(codeOf(() => dev.writeBatch(batch, 0, 2))).toBe('ERR_TUN_ARG');
    batch.lengths[1] = 0;
    expect(codeOf(() => dev.writePackets(bad<Uint8Array[]>('packets')))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.writePackets([new Uint8Array(4), bad<Uint8Array>(new Uint16Array(2))]))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.writePackets([new Uint8Array(4)], 0, 2))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.onReadable(bad<() => void>('callback')))).toBe('ERR_TUN_ARG');
    expect(codeOf(() => dev.startWatching())).toBe('ERR_TUN_ARG');
    // /dev/null cannot be polled: the watcher says so.
    expect(codeOf(() => dev.onReadable(() => {}))).toBe('ERR_TUN_BAD_FD');
    // /dev/null reads as end of file and takes every write.
    expect(dev.readBatch(batch)).toBe(0);
    expect(dev.writePackets([new Uint8Array(10), new Uint8Array(20)])).toBe(2);
    dev.close();
  });

  it('closes its descriptor once, and refuses to work after close()', () => {
    const dev = TunDevice.adopt(openSync('/dev/null', 'r'));
    const fd = dev.fd;
    expect(fdOpen(fd)).toBe(true);
    dev.close();
    expect(fdOpen(fd)).toBe(false);
    expect(dev.fd).toBe(-1);
    expect(dev.closed).toBe(true);
    dev.close();
    const batch = new PacketBatch({ capacity: 1 });
    expect(codeOf(() => dev.readBatch(batch))).toBe('ERR_TUN_CLOSED');
    expect(codeOf(() => dev.writeBatch(batch))).toBe('ERR_TUN_CLOSED');
    expect(codeOf(() => dev.writePackets([]))).toBe('ERR_TUN_CLOSED');
    expect(codeOf(() => dev.stats())).toBe('ERR_TUN_CLOSED');
    expect(codeOf(() => dev.onReadable(() => {}))).toBe('ERR_TUN_CLOSED');
    dev.stopWatching(); // harmless
  });

  it('reads into slots after the headroom and writes from them', () => {
    const [mine, theirs] = fifo();
    const dev = TunDevice.adopt(mine);
    const batch = new PacketBatch({ capacity: 4, slotSize: 32, headroom: 16 });
    expect(dev.readBatch(batch)).toBe(0); // nothing queued: EAGAIN, not a block
    writeSync(theirs, new Uint8Array([0x45, 1, 2]));
    expect(dev.readBatch(batch)).toBe(1);
    expect(batch.count).toBe(1);
    expect(batch.lengths[0]).toBe(3);
    expect(Array.from(batch.buffer.subarray(16, 19))).toEqual([0x45, 1, 2]);

    batch.set(0, new Uint8Array([7, 8]));
    batch.set(1, new Uint8Array([9]));
    expect(dev.writeBatch(batch, 0, 2)).toBe(2);
    const back = new Uint8Array(8);
    expect(readSync(theirs, back)).toBe(3);
    expect(Array.from(back.subarray(0, 3))).toEqual([7, 8, 9]);
    dev.close();
    closeSync(theirs);
  });

  it('drops and counts a packet longer than its slot', () => {
    const [mine, theirs] = fifo();
    const dev = TunDevice.adopt(mine);
    const batch = new PacketBatch({ capacity: 1, slotSize: 8, headroom: 4 });
    writeSync(theirs, new Uint8Array(5));
    expect(dev.readBatch(batch)).toBe(0);
    expect(dev.stats().truncatedReads).toBe(1);
    dev.close();
    closeSync(theirs);
  });

  it('calls onReadable from the event loop when data arrives, and stops when asked', async () => {
    const [mine, theirs] = fifo();
    const dev = TunDevice.adopt(mine);
    const batch = new PacketBatch({ capacity: 4 });
    let calls = 0;
    const readable = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no readable callback within 2 s')), 2_000);
      dev.onReadable((error) => {
        if (error) return reject(error);
        calls++;
        const n = dev.readBatch(batch);
        clearTimeout(timer);
        resolve(n);
      });
    });
    expect(dev.watching).toBe(true);
    writeSync(theirs, new Uint8Array([1, 2, 3, 4]));
    expect(await readable).toBe(1);
    dev.stopWatching();
    expect(dev.watching).toBe(false);
    writeSync(theirs, new Uint8Array([5]));
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(1);
    dev.startWatching();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(2);
    dev.close();
    expect(dev.watching).toBe(false);
    closeSync(theirs);
  });

  it('survives worker threads that exit or are terminated while watching', () => {
    // Node unloads an addon when a worker's environment is torn down; a poll handle
    // still closing then would call into unmapped code. Run it in a child process
    // so that a crash is reported as one, not as a dead test runner.
    const path = fifoPath();
    const worker = [
      `const wt = require('node:worker_threads');`,
      `const fs = require('node:fs');`,
      `const native = require(${JSON.stringify(tunAddonPath())});`,
      `const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);`,
      `new native.TunFd(fd).watch(() => {});`,
      `wt.parentPort.postMessage(fd);`,
      `if (wt.workerData === 'exit') setTimeout(() => process.exit(0), 10);`,
    ].join('\n');
    const main = `
      const { Worker } = require('node:worker_threads');
      const fs = require('node:fs');
      (async () => {
        const leaked = [];
        for (const end of ['exit', 'terminate', 'exit', 'terminate', 'exit', 'terminate']) {
          const w = new Worker(${JSON.stringify(worker)}, { eval: true, workerData: end });
          const fd = await new Promise((resolve) => w.once('message', resolve));
          if (end === 'terminate') await w.terminate();
          else await new Promise((resolve) => w.once('exit', resolve));
          if (fs.existsSync('/proc/self/fd/' + fd)) leaked.push(fd);
        }
        console.log(JSON.stringify({ leaked }));
      })();`;
    const r = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ leaked: [] });
  });
});
