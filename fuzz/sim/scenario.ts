// A simulation scenario: the topology and a timed list of steps, all derived from one
// seed. Steps are data, not code, so a failing scenario can be shrunk (drop steps, drop
// clients) and replayed with `--seed S --clients N --keep i,j,k`. Everything a step
// needs (which packet to replay, which bit to flip) is in the step itself, so removing
// other steps does not change what it does beyond what the state it meets allows.
//
// Node 0 is the server; nodes 1..clients are clients behind NAT.

import { Prng } from './prng.js';

export interface LinkState {
  readonly loss: number;
  readonly dup: number;
  readonly corrupt: number;
  readonly delayMin: number;
  readonly delayMax: number;
}

export const PERFECT_LINK: LinkState = { loss: 0, dup: 0, corrupt: 0, delayMin: 5, delayMax: 50 };

export type Mutation =
  | 'flip' | 'flip-mac1' | 'truncate' | 'extend' | 'retype' | 'reserved' | 'random' | 'index' | 'counter' | 'craft-initiation';

export const MUTATIONS: readonly Mutation[] = [
  'flip', 'flip-mac1', 'truncate', 'extend', 'retype', 'reserved', 'random', 'index', 'counter', 'craft-initiation',
];

interface StepBase {
  /** Position in the generated list: the name `--keep` uses. */
  readonly id: number;
  /** Simulated time, ms. */
  readonly at: number;
}

export type Step = StepBase & (
  /** `from` sends `count` tagged packets to node `to` (or to an address no peer has). */
  | { readonly kind: 'send'; readonly from: number; readonly to: number | 'nowhere'; readonly count: number; readonly size: number; readonly v6: boolean; readonly spoof: boolean }
  | { readonly kind: 'link'; readonly link: LinkState }
  /** Everything to and from one client is lost for `ms`. */
  | { readonly kind: 'partition'; readonly client: number; readonly ms: number }
  /** The client's NAT gives it a new public port (NAT rebinding). */
  | { readonly kind: 'rebind'; readonly client: number }
  /** The client moves to another network: new public address and port. */
  | { readonly kind: 'roam'; readonly client: number }
  /** The node's clock jumps forward (suspend and resume). */
  | { readonly kind: 'jump'; readonly node: number; readonly ms: number }
  /** For `ms`, the adversary withholds a share `rate` of datagrams (recorded, not delivered). */
  | { readonly kind: 'intercept'; readonly ms: number; readonly rate: number }
  /** The adversary sends recorded datagrams again, from their source or from its own address. */
  | { readonly kind: 'replay'; readonly pick: number; readonly count: number; readonly fromAdversary: boolean; readonly retarget: number | undefined }
  /** The adversary sends a datagram it made: a mutated recording, or new bytes. */
  | { readonly kind: 'inject'; readonly pick: number; readonly mutation: Mutation; readonly target: number; readonly noise: number }
  /** The adversary floods a node with handshake messages (drives it under load). */
  | { readonly kind: 'flood'; readonly target: number; readonly count: number; readonly pick: number }
  /** The node restarts: a fresh Device with the same key and configuration. */
  | { readonly kind: 'restart'; readonly node: number }
  /** The server removes a client's peer, and later adds it back. */
  | { readonly kind: 'remove'; readonly client: number }
  | { readonly kind: 'readd'; readonly client: number }
);

export type StepKind = Step['kind'];

export interface Scenario {
  readonly seed: number;
  readonly clients: number;
  /** Chaos until this time; then the network heals and liveness is checked. */
  readonly chaosMs: number;
  readonly healMs: number;
  /** The server forwards packets between clients. */
  readonly forwarding: boolean;
  /** The server's configuration has the clients' first endpoints (else it learns them). */
  readonly serverKnowsClients: boolean;
  /** PersistentKeepalive of each client's server peer, seconds (index 0 unused). */
  readonly keepalive: readonly number[];
  /** Handshake messages waiting that put a device under load (0: always under load). */
  readonly underLoadBacklog: number;
  readonly link: LinkState;
  readonly steps: readonly Step[];
}

export interface ScenarioLimits {
  /** Longest chaos phase, ms. */
  readonly maxChaosMs?: number;
  readonly maxClients?: number;
}

function randomLink(r: Prng): LinkState {
  const delayMin = r.pick([0, 1, 5, 20, 100]);
  return {
    loss: r.pick([0, 0, 0.01, 0.05, 0.2, 0.5]),
    dup: r.pick([0, 0, 0.01, 0.05, 0.2]),
    corrupt: r.pick([0, 0, 0.01, 0.05, 0.1]),
    delayMin,
    delayMax: delayMin + r.pick([0, 10, 50, 300, 2000, 8000]),
  };
}

const WEIGHTS: readonly [StepKind, number][] = [
  ['send', 40], ['link', 4], ['partition', 3], ['rebind', 4], ['roam', 2], ['jump', 3], ['intercept', 3],
  ['replay', 12], ['inject', 14], ['flood', 2], ['restart', 1.5], ['remove', 2], ['readd', 2],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((a, [, w]) => a + w, 0);

function pickKind(r: Prng): StepKind {
  let x = r.float() * TOTAL_WEIGHT;
  for (const [kind, w] of WEIGHTS) {
    x -= w;
    if (x < 0) return kind;
  }
  return 'send';
}

export function generateScenario(seed: number, limits: ScenarioLimits = {}): Scenario {
  const r = new Prng(seed, 7);
  const clients = r.range(1, limits.maxClients ?? 4);
  const maxChaos = limits.maxChaosMs ?? 300_000;
  const chaosMs = r.range(Math.min(10_000, maxChaos), maxChaos);
  const healMs = r.range(40_000, 160_000);
  const forwarding = clients >= 2 && r.chance(0.6);
  const keepalive = [0, ...Array.from({ length: clients }, () => r.pick([0, 0, 0, 1, 5, 25]))];
  const client = (): number => r.range(1, clients);
  const anyNode = (): number => r.range(0, clients);
  const steps: Step[] = [];
  const meanGap = r.pick([150, 400, 1000, 2500]);
  for (let at = r.int(500); ; ) {
    at += Math.max(1, Math.round(-Math.log(1 - r.float()) * meanGap));
    if (at >= chaosMs) break;
    const id = steps.length;
    const kind = pickKind(r);
    switch (kind) {
      case 'send': {
        const from = anyNode();
        let to: number | 'nowhere';
        if (r.chance(0.05)) to = 'nowhere';
        else if (from === 0) to = client();
        else if (forwarding && r.chance(0.3)) to = r.range(1, clients);
        else to = 0;
        if (to === from) to = 0;
        const count = r.chance(0.03) ? r.range(100, 160) : r.range(1, 6);
        const size = r.chance(0.5) ? r.range(48, 120) : r.range(48, 1420);
        steps.push({ id, at, kind, from, to, count, size, v6: r.chance(0.5), spoof: from !== 0 && r.chance(0.08) });
        break;
      }
      case 'link':
        steps.push({ id, at, kind, link: randomLink(r) });
        break;
      case 'partition':
        steps.push({ id, at, kind, client: client(), ms: r.pick([500, 3000, 12_000, 40_000, 100_000]) });
        break;
      case 'rebind':
      case 'roam':
        steps.push({ id, at, kind, client: client() });
        break;
      case 'jump':
        steps.push({ id, at, kind, node: anyNode(), ms: r.pick([700, 5_000, 30_000, 125_000, 200_000, 600_000]) });
        break;
      case 'intercept':
        steps.push({ id, at, kind, ms: r.pick([1_000, 5_000, 20_000]), rate: r.pick([0.2, 0.5, 1]) });
        break;
      case 'replay':
        steps.push({
          id, at, kind, pick: r.next(), count: r.range(1, 4), fromAdversary: r.chance(0.4),
          retarget: r.chance(0.15) ? anyNode() : undefined,
        });
        break;
      case 'inject':
        steps.push({ id, at, kind, pick: r.next(), mutation: r.pick(MUTATIONS), target: anyNode(), noise: r.next() });
        break;
      case 'flood':
        steps.push({ id, at, kind, target: r.chance(0.7) ? 0 : client(), count: r.range(20, 80), pick: r.next() });
        break;
      case 'restart':
        steps.push({ id, at, kind, node: r.chance(0.8) ? client() : 0 });
        break;
      case 'remove':
      case 'readd':
        steps.push({ id, at, kind, client: client() });
        break;
    }
  }
  return {
    seed, clients, chaosMs, healMs, forwarding, serverKnowsClients: r.chance(0.5), keepalive,
    underLoadBacklog: r.pick([128, 128, 0]), link: randomLink(r), steps,
  };
}

/** The same scenario with fewer clients: steps that name a dropped client go. */
export function withClients(s: Scenario, clients: number): Scenario {
  const ok = (n: number | 'nowhere' | undefined): boolean => n === undefined || n === 'nowhere' || n <= clients;
  const steps = s.steps.filter((st) => {
    switch (st.kind) {
      case 'send': return ok(st.from) && ok(st.to);
      case 'partition': case 'rebind': case 'roam': case 'remove': case 'readd': return ok(st.client);
      case 'jump': case 'restart': return ok(st.node);
      case 'inject': case 'flood': return ok(st.target);
      case 'replay': return ok(st.retarget);
      default: return true;
    }
  });
  return {
    ...s, clients, forwarding: s.forwarding && clients >= 2, keepalive: s.keepalive.slice(0, clients + 1), steps,
  };
}

export function keepSteps(s: Scenario, keep: ReadonlySet<number>): Scenario {
  return { ...s, steps: s.steps.filter((st) => keep.has(st.id)) };
}

export function describeStep(st: Step): string {
  const n = (i: number | 'nowhere'): string => (i === 'nowhere' ? 'nowhere' : i === 0 ? 'server' : `c${i}`);
  const head = `#${st.id} @${(st.at / 1000).toFixed(3)}s`;
  switch (st.kind) {
    case 'send': return `${head} send ${st.count}x ${st.size}B ${n(st.from)} -> ${n(st.to)}${st.v6 ? ' v6' : ''}${st.spoof ? ' SPOOFED' : ''}`;
    case 'link': return `${head} link loss=${st.link.loss} dup=${st.link.dup} corrupt=${st.link.corrupt} delay=${st.link.delayMin}..${st.link.delayMax}ms`;
    case 'partition': return `${head} partition ${n(st.client)} for ${st.ms}ms`;
    case 'rebind': return `${head} NAT rebinding of ${n(st.client)}`;
    case 'roam': return `${head} ${n(st.client)} roams to a new network`;
    case 'jump': return `${head} clock of ${n(st.node)} jumps +${st.ms}ms`;
    case 'intercept': return `${head} adversary withholds ${st.rate * 100}% for ${st.ms}ms`;
    case 'replay': return `${head} adversary replays ${st.count} (pick ${st.pick})${st.fromAdversary ? ' from its own address' : ''}${st.retarget === undefined ? '' : ` to ${n(st.retarget)}`}`;
    case 'inject': return `${head} adversary injects ${st.mutation} (pick ${st.pick}) to ${n(st.target)}`;
    case 'flood': return `${head} adversary floods ${n(st.target)} with ${st.count} handshake messages`;
    case 'restart': return `${head} ${n(st.node)} restarts`;
    case 'remove': return `${head} server removes ${n(st.client)}`;
    case 'readd': return `${head} server re-adds ${n(st.client)}`;
  }
}
