// The Linux TUN device for real: each test gets a network namespace of its own, and a
// child process inside it (test/netns/fixtures/tun-fixture.ts) opens TUN devices,
// addresses them and moves packets, then reports what it saw as one JSON line.
// Nothing here touches the host's own namespace; every namespace is deleted after
// its test, even on failure, and every child is killed after a bounded time.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireHost } from '../support/privileges.js';
import { type Json, runScenario } from '../support/scenario.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/tun-fixture.ts', import.meta.url));
const CHILD_TIMEOUT_MS = 40_000;

/**
 * Runs one fixture scenario in a fresh namespace; `wrap` goes between
 * `ip netns exec NS` and node (unshare, setpriv).
 */
async function scenario(name: string, args: string[] = [], wrap: string[] = []): Promise<Json> {
  const node = [process.execPath, '--expose-gc', '--import', 'tsx', FIXTURE, name, ...args];
  return (await runScenario('btun', node, { wrap, timeoutMs: CHILD_TIMEOUT_MS })).result;
}

describe.skipIf(requireHost(['ip', 'ping', 'unshare', 'setpriv']))('TunDevice on Linux, in a network namespace', () => {
  it('reads the echo request of a ping and answers it (IPv4)', async () => {
    const r = await scenario('ping', ['4']);
    expect(r.name).toBe('btping0');
    // The kernel's request, as readBatch returned it.
    expect(r.request).toEqual({
      version: 4,
      protocol: 1,
      icmpType: 8,
      source: '192.0.2.1',
      destination: '192.0.2.2',
    });
    // The crafted reply, written with writeBatch, reached ping.
    expect(r.replies).toBe(1);
    expect(r.pingExit, r.pingOutput).toBe(0);
    expect(r.pingOutput).toContain('1 received');
    expect(r.stats).toEqual({ truncatedReads: 0, refusedWrites: 0 });
  });

  it('reads the echo request of a ping and answers it (IPv6)', async () => {
    const r = await scenario('ping', ['6']);
    expect(r.request).toEqual({
      version: 6,
      protocol: 58,
      icmpType: 128,
      source: '2001:db8:0:0:0:0:0:1',
      destination: '2001:db8:0:0:0:0:0:2',
    });
    expect(r.pingExit, r.pingOutput).toBe(0);
  });

  it('returns every queued packet in one readBatch call, and no more than asked', async () => {
    const r = await scenario('batch');
    // 16 UDP datagrams queued while nobody read: one call returns all of them.
    expect(r.count).toBe(16);
    expect(r.ours).toBe(16);
    expect(r.lengths).toEqual(new Array(16).fill(128)); // 20 IPv4 + 8 UDP + 100
    // With max = 4 of 10 queued: 4, then the other 6.
    expect(r.limited).toBe(4);
    expect(r.rest).toBe(6);
  });

  it('refuses a second open of the same interface as in use', async () => {
    const r = await scenario('busy');
    expect(r.second.code).toBe('ERR_TUN_IN_USE');
    expect(r.second.message).toBe('interface btbusy0 is in use');
    expect(r.loopback.code).toBe('ERR_TUN_IN_USE');
    expect(r.loopback.message).toContain('not a TUN');
    expect(r.reopened).toBe('btbusy0');
    expect(r.template).toBe('btt0'); // "btt%d": the kernel picks the number
  });

  it('closes the fd on close(), leaks none over 200 cycles, and finalizes dropped devices', async () => {
    const r = await scenario('leak', ['200']);
    expect(r.cycles).toBe(200);
    expect(r.closedEachTime).toBe(true); // gone from /proc/self/fd right after close()
    expect(r.fdsAfter).toBe(r.fdsBefore);
    expect(r.leftover).toBe(false);
    expect(r.afterClose.code).toBe('ERR_TUN_CLOSED');
    expect(r.finalizerClosed).toBe(true);
    expect(r.watchedKeptOpen).toBe(true);
    expect(r.rssGrowthKiB).toBeLessThan(16 * 1024);
  });

  it('reports an interface deleted underneath it as ERR_TUN_GONE', async () => {
    const r = await scenario('gone');
    expect(r.onReadable.code).toBe('ERR_TUN_GONE');
    expect(r.read.code).toBe('ERR_TUN_GONE');
    expect(r.watching).toBe(false);
  });

  it('adopts a TUN fd handed over by another process', async () => {
    const r = await scenario('adopt');
    expect(r.childExit).toBe(0);
    expect(r.child.wrongName.code).toBe('ERR_TUN_ARG');
    expect(r.child.name).toBe('btadopt0'); // asked from the kernel (TUNGETIFF)
    expect(r.child.fd).toBe(3);
    expect(r.child.request.destination).toBe('192.0.2.2');
    expect(r.child.pingExit, r.child.pingOutput).toBe(0);
    // The parent closed its copy at once; the interface lived until the child closed.
    expect(r.goneAfterChild).toBe(true);
  });

  it('says to load the tun module when /dev/net/tun is missing', async () => {
    // A tmpfs over /dev/net, in a private mount namespace of the child's own.
    const hide = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /dev/net && exec "$0" "$@"'];
    const r = await scenario('openError', [], hide);
    expect(r.code).toBe('ERR_TUN_NO_DEVICE');
    expect(r.message).toBe('no /dev/net/tun: load the tun module (modprobe tun)');
  });

  it('says it needs root or CAP_NET_ADMIN when it has neither', async () => {
    const r = await scenario('openError', [], ['setpriv', '--bounding-set', '-net_admin']);
    expect(r.code).toBe('ERR_TUN_PERMISSION');
    expect(r.message).toContain('needs root or CAP_NET_ADMIN');
  });

  for (const family of ['4', '6']) {
    it(`hands TCP super-packets over with TSO on (IPv${family}), cut into the bytes written, checksums right`, async () => {
      const r = await scenario('tso', [family]);
      process.stdout.write(`tso ${family}: ${JSON.stringify(r)}\n`);
      expect(r.contiguous).toBe(r.bytes);
      expect(r.intact).toBe(true);
      expect(r.rejected).toBe(0);
      // The kernel sent super-packets of more than one segment, and they were cut.
      expect(r.gsoPackets).toBeGreaterThan(0);
      expect(r.maxSegments).toBeGreaterThan(1);
    });
  }

  describe.skipIf(requireHost(['python3']))('UDP segmentation offload (Linux 6.2 on)', () => {
    for (const family of ['4', '6']) {
      it(`hands a UDP_SEGMENT send over as one super-packet (IPv${family}), cut into the datagrams meant`, async () => {
        const r = await scenario('uso', [family]);
        expect(r.senderExit, r.senderOutput).toBe(0);
        expect(r.gsoPackets).toBe(1);
        expect(r.datagrams).toBe(5); // 5000 bytes in pieces of 1200
        expect(r.accepted).toBe(5);
        expect(r.intact).toBe(true);
      });
    }
  });

  it('measures packets per readBatch call under a UDP burst', async () => {
    const r = await scenario('burst', ['20000']);
    process.stdout.write(
      `tun burst: ${r.received}/${r.sent} packets read in ${r.calls} readBatch calls ` +
        `(mean ${r.meanPerCall.toFixed(2)}, median ${r.medianPerCall}, max ${r.maxPerCall} per call), ` +
        `${r.packetsPerSecond} packets/s; kernel dropped ${r.kernelDropped} on a full queue\n`,
    );
    expect(r.received).toBeGreaterThan(0);
    expect(r.received).toBe(r.kernelSent);
    expect(r.maxPerCall).toBeGreaterThan(1);
  });
});
