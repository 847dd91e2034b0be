// The cost of sticky source addresses on the UDP hot path (issue 18, item 2): the addon's
// sockets moving 1420-byte datagrams over loopback in batches of 64, sendmmsg then
// recvmmsg, plain (no control messages) beside sticky (each datagram sent with an
// IP_PKTINFO source, each received with its IP_PKTINFO parsed), alternated in one process,
// as datagrams per second of the process's CPU time.
//   node --import tsx bench/sticky.ts
import { loadAddon } from '../src/runtime/addon.js';
import { median, type Rate, report } from './lib.js';

const BATCH = 64;
const SIZE = 1420;
const ADDR = 24;
const ROUNDS = 9;
/** Round trips of BATCH datagrams per run. */
const TRIPS = 300;

export function runStickyBench(): void {
  const { UdpSocket } = loadAddon();
  const tx = new UdpSocket(4, 0, 4 << 20);
  const rx = new UdpSocket(4, 0, 4 << 20);
  try {
    const arena = new Uint8Array(BATCH * SIZE).fill(7);
    const offsets = Uint32Array.from({ length: BATCH }, (_, i) => i * SIZE);
    const lengths = new Uint32Array(BATCH).fill(SIZE);
    const addrs = new Uint8Array(BATCH * ADDR);
    const sources = new Uint8Array(BATCH * ADDR);
    for (let i = 0; i < BATCH; i++) {
      addrs.set([127, 0, 0, 1], i * ADDR);
      addrs[i * ADDR + 16] = rx.port >>> 8;
      addrs[i * ADDR + 17] = rx.port & 0xff;
      sources.set([127, 0, 0, 1], i * ADDR);
      sources[i * ADDR + 20] = 1;
    }
    const recvArena = new Uint8Array(BATCH * 2048);
    const recvLengths = new Uint32Array(BATCH);
    const recvAddrs = new Uint8Array(BATCH * ADDR);
    const locals = new Uint8Array(BATCH * ADDR);

    const roundTrip = (sticky: boolean) => () => {
      const sent = tx.sendBatch(arena, offsets, lengths, addrs, 0, BATCH, sticky ? sources : undefined);
      let got = 0;
      for (let tries = 0; got < sent && tries < 1000; tries++) {
        const n = rx.recvBatch(recvArena, 2048, recvLengths, recvAddrs, BATCH, sticky ? locals : undefined);
        if (n > 0) got += n;
      }
      if (got !== sent) throw new Error(`sent ${sent}, received ${got}`);
      if (sticky && locals[20] !== 1) throw new Error('no IP_PKTINFO on a received datagram');
    };

    // CPU time, not wall time: the machine is shared, and a busy neighbour stretches the
    // wall clock of both variants unevenly; the process's own CPU seconds do not.
    const perCpuSecond = (op: () => void): number => {
      const before = process.cpuUsage();
      for (let i = 0; i < TRIPS; i++) op();
      const used = process.cpuUsage(before);
      return (TRIPS * BATCH) / ((used.user + used.system) / 1e6);
    };
    const plain = roundTrip(false);
    const sticky = roundTrip(true);
    perCpuSecond(plain); // warm-up
    perCpuSecond(sticky);
    const plainRuns: number[] = [];
    const stickyRuns: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      plainRuns.push(perCpuSecond(plain));
      stickyRuns.push(perCpuSecond(sticky));
    }
    const rate = (name: string, runs: number[]): Rate => ({ name, perSecond: median(runs), runs });
    report(
      `UDP datagrams of ${SIZE} bytes over loopback, sendmmsg + recvmmsg of ${BATCH}, one thread (${ROUNDS} alternated runs each)`,
      'datagrams per CPU second', rate('plain: no control messages', plainRuns), [rate('sticky: IP_PKTINFO out and in', stickyRuns)],
    );
  } finally {
    tx.close();
    rx.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runStickyBench();
