// Cryptokey routing (WireGuard paper section 2): the table from IP prefixes to peers.
// Sending, the destination of a packet from the tunnel interface picks the peer;
// receiving, the source of a decrypted packet must map back to the peer it came from.
//
// One path-compressed binary trie per family, as the Linux kernel keeps
// (drivers/net/wireguard/allowedips.c) and wireguard-go (device/allowedips.go):
// - every node holds a prefix (its key, masked to its `cidr`) and, if the prefix was
//   inserted, the peer it belongs to;
// - a node's children extend its prefix, and the bit at position `cidr` of a child's key
//   says which side it hangs on;
// - a node without a peer is only a branch point and always has two children, so a
//   family holding n prefixes has at most 2n - 1 nodes.
// Lookup walks down from the root while each node's prefix matches the address and
// remembers the last peer seen: that is the longest matching prefix. It allocates
// nothing and visits at most 33 (IPv4) or 129 (IPv6) nodes.
//
// Keys are held as four signed 32-bit words (word 0 = the first four bytes, big-endian)
// so that a prefix comparison is a few XORs and masks instead of a byte loop.
//
// Host prefixes (/32, /128), what a server gives each of its peers, are kept apart, in a
// hash table over typed arrays: a /32 or /128 is the longest prefix there is, so an exact
// match there is the answer and the trie is walked only when there is none. A trie leaf
// and its branch point cost about 200 bytes each; a host entry costs a few dozen.
//
// Every prefix, in the trie or not, has an entry id, and each peer's entries are a
// circular list linked through `#nextOfPeer`, in the order given; `#lastOf` holds the
// last id of each peer's list (whose next is the first): a peer costs one Map entry, not
// an array, and an append costs the same for a peer of 130,000 prefixes as for one.
//
// Rules, as `wg set` has them: a prefix belongs to exactly one peer, inserting it again
// for another peer moves it there; host bits beyond the prefix length are cleared.

/** A prefix as `entriesFor` reports it: the masked address bytes and the length. */
export interface AllowedIp {
  readonly address: Uint8Array;
  readonly cidr: number;
}

class Node<T> {
  k0: number;
  k1: number;
  k2: number;
  k3: number;
  cidr: number;
  readonly v6: boolean;
  peer: T | undefined = undefined;
  parent: Node<T> | null = null;
  child0: Node<T> | null = null;
  child1: Node<T> | null = null;
  /** The entry id while the node holds a prefix (has a peer); -1 for a branch point. */
  entry = -1;

  constructor(k0: number, k1: number, k2: number, k3: number, cidr: number, v6: boolean) {
    this.k0 = k0;
    this.k1 = k1;
    this.k2 = k2;
    this.k3 = k3;
    this.cidr = cidr;
    this.v6 = v6;
  }
}

/** Big-endian 32-bit word `index` of `bytes`, as a signed 32-bit integer. */
function wordOf(bytes: Uint8Array, index: number): number {
  const o = index * 4;
  return (bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!;
}

/** The mask keeping the first `bits` (0..32) bits of a word. */
function maskOf(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? -1 : -1 << (32 - bits);
}

/** Bit `position` (0 = most significant bit of word 0) of the key (a0, a1, a2, a3). */
function bitAt(position: number, a0: number, a1: number, a2: number, a3: number): number {
  const word = position >>> 5;
  const w = word === 0 ? a0 : word === 1 ? a1 : word === 2 ? a2 : a3;
  return (w >>> (31 - (position & 31))) & 1;
}

function nodeBit<T>(node: Node<T>, position: number): number {
  return bitAt(position, node.k0, node.k1, node.k2, node.k3);
}

/** Does the address (a0..a3) fall inside the node's prefix? */
function covers<T>(node: Node<T>, a0: number, a1: number, a2: number, a3: number): boolean {
  const c = node.cidr;
  if (c < 32) return c === 0 || ((a0 ^ node.k0) & (-1 << (32 - c))) === 0;
  if (a0 !== node.k0) return false;
  if (c < 64) return c === 32 || ((a1 ^ node.k1) & (-1 << (64 - c))) === 0;
  if (a1 !== node.k1) return false;
  if (c < 96) return c === 64 || ((a2 ^ node.k2) & (-1 << (96 - c))) === 0;
  if (a2 !== node.k2) return false;
  if (c < 128) return c === 96 || ((a3 ^ node.k3) & (-1 << (128 - c))) === 0;
  return a3 === node.k3;
}

/** How many leading bits the two keys share, at most `limit`. */
function commonBits<T>(x: Node<T>, y: Node<T>, limit: number): number {
  const d0 = x.k0 ^ y.k0;
  if (d0 !== 0) return Math.min(limit, Math.clz32(d0));
  if (limit <= 32) return limit;
  const d1 = x.k1 ^ y.k1;
  if (d1 !== 0) return Math.min(limit, 32 + Math.clz32(d1));
  if (limit <= 64) return limit;
  const d2 = x.k2 ^ y.k2;
  if (d2 !== 0) return Math.min(limit, 64 + Math.clz32(d2));
  if (limit <= 96) return limit;
  const d3 = x.k3 ^ y.k3;
  if (d3 !== 0) return Math.min(limit, 96 + Math.clz32(d3));
  return limit;
}

function checkAddress(name: string, bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${name}: expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`);
  }
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new RangeError(`${name}: expected 4 (IPv4) or 16 (IPv6) bytes, got ${bytes.length}`);
  }
}

function checkCidr(cidr: unknown, bits: number): asserts cidr is number {
  if (typeof cidr !== 'number') throw new TypeError(`cidr: expected a number, got ${typeof cidr}`);
  if (!Number.isInteger(cidr) || cidr < 0 || cidr > bits) {
    throw new RangeError(`cidr: expected an integer from 0 to ${bits}, got ${cidr}`);
  }
}

/** A node for `prefix`/`cidr` with the host bits cleared. Inputs already checked. */
function keyNode<T>(prefix: Uint8Array, cidr: number): Node<T> {
  const v6 = prefix.length === 16;
  return new Node<T>(
    wordOf(prefix, 0) & maskOf(cidr),
    v6 ? wordOf(prefix, 1) & maskOf(cidr - 32) : 0,
    v6 ? wordOf(prefix, 2) & maskOf(cidr - 64) : 0,
    v6 ? wordOf(prefix, 3) & maskOf(cidr - 96) : 0,
    cidr,
    v6,
  );
}

function nodeAddress<T>(node: Node<T>): Uint8Array {
  const out = new Uint8Array(node.v6 ? 16 : 4);
  const words = [node.k0, node.k1, node.k2, node.k3];
  for (let i = 0; i < out.length; i++) out[i] = (words[i >>> 2]! >>> (24 - 8 * (i & 3))) & 0xff;
  return out;
}

/** A hash of a host key (the family mixed in), for the host entries' buckets. */
function hostHash(a0: number, a1: number, a2: number, a3: number, family: number): number {
  let h = Math.imul(a0 ^ family, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ a1, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13) ^ a2, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 16) ^ a3, 0x27d4eb2f);
  return h ^ (h >>> 15);
}

/**
 * The allowed-IPs table: IPv4 and IPv6 prefixes, each mapped to one peer of type T.
 * `undefined` and `null` cannot be peers (lookup returns undefined for "no peer").
 */
export class AllowedIps<T extends NonNullable<unknown>> {
  #root4: Node<T> | null = null;
  #root6: Node<T> | null = null;
  #size = 0;
  #nodes = 0;
  #hosts = 0;
  // Entries by id: the owner (undefined when the id is free), the trie node of a prefix
  // that is not a host's (null for a host entry), a host entry's key words and family
  // (4 or 6; 0 for a free id or a trie entry), the next id of the same peer (or of the
  // free list), and the next host entry in the same hash bucket.
  #capacity = 0;
  #owner: (T | undefined)[] = [];
  #trie: (Node<T> | null)[] = [];
  #key = new Int32Array(0);
  #family = new Uint8Array(0);
  #nextOfPeer = new Int32Array(0);
  #chain = new Int32Array(0);
  /** Host entries by hash: the first id of each bucket's chain, -1 for none. */
  #buckets = new Int32Array(0);
  #free = -1;
  readonly #lastOf = new Map<T, number>();

  /** Number of prefixes in the table, both families. */
  get size(): number {
    return this.#size;
  }

  /**
   * Number of trie nodes (prefixes and branch points) and host entries together. At most
   * 2 × size − 1 per family; exposed so tests can check that removals leave nothing behind.
   */
  get nodeCount(): number {
    return this.#nodes + this.#hosts;
  }

  /**
   * Gives `prefix`/`cidr` to `peer`, moving it from any peer that had it. `prefix` is 4
   * or 16 bytes; host bits past `cidr` are ignored.
   */
  insert(prefix: Uint8Array, cidr: number, peer: T): void {
    checkAddress('prefix', prefix);
    checkCidr(cidr, prefix.length * 8);
    if (peer === undefined || peer === null) throw new TypeError('peer: expected a value, got ' + String(peer));
    if (cidr === prefix.length * 8) {
      this.#insertHost(prefix, peer);
      return;
    }
    const fresh = keyNode<T>(prefix, cidr);
    const root = fresh.v6 ? this.#root6 : this.#root4;
    if (root === null) {
      this.#setRoot(fresh.v6, fresh);
      this.#nodes++;
      this.#give(fresh, peer);
      return;
    }
    let node: Node<T> = root;
    for (;;) {
      const common = commonBits(node, fresh, Math.min(node.cidr, cidr));
      if (common === node.cidr && common === cidr) {
        // The prefix has a node already: a branch point gains a peer, or a peer changes.
        this.#give(node, peer);
        return;
      }
      if (common === node.cidr) {
        // The node's prefix contains the new one: go down the side the new key takes.
        const side = nodeBit(fresh, node.cidr);
        const child: Node<T> | null = side === 0 ? node.child0 : node.child1;
        if (child === null) {
          this.#attach(node, side, fresh);
          this.#nodes++;
          this.#give(fresh, peer);
          return;
        }
        node = child;
        continue;
      }
      if (common === cidr) {
        // The new prefix contains the node's: it takes the node's place, node below it.
        this.#replace(node, fresh);
        this.#attach(fresh, nodeBit(node, cidr), node);
        this.#nodes++;
        this.#give(fresh, peer);
        return;
      }
      // The two part ways at bit `common`: a branch point there holds both.
      const branch = new Node<T>(
        fresh.k0 & maskOf(common),
        fresh.k1 & maskOf(common - 32),
        fresh.k2 & maskOf(common - 64),
        fresh.k3 & maskOf(common - 96),
        common,
        fresh.v6,
      );
      this.#replace(node, branch);
      this.#attach(branch, nodeBit(node, common), node);
      this.#attach(branch, nodeBit(fresh, common), fresh);
      this.#nodes += 2;
      this.#give(fresh, peer);
      return;
    }
  }

  /** Removes `prefix`/`cidr` (host bits ignored). Returns whether it was there. */
  remove(prefix: Uint8Array, cidr: number): boolean {
    checkAddress('prefix', prefix);
    checkCidr(cidr, prefix.length * 8);
    if (cidr === prefix.length * 8) return this.#removeHost(prefix);
    const key = keyNode<T>(prefix, cidr);
    let node = key.v6 ? this.#root6 : this.#root4;
    while (node !== null && node.cidr <= cidr) {
      if (commonBits(node, key, node.cidr) < node.cidr) return false;
      if (node.cidr === cidr) {
        const peer = node.peer;
        if (peer === undefined) return false;
        this.#unlist(peer, node.entry);
        this.#take(node);
        return true;
      }
      node = nodeBit(key, node.cidr) === 0 ? node.child0 : node.child1;
    }
    return false;
  }

  /** Removes every prefix of `peer`. Returns how many there were. */
  removePeer(peer: T): number {
    const last = this.#lastOf.get(peer);
    if (last === undefined) return 0;
    this.#lastOf.delete(peer);
    let count = 0;
    for (let id = this.#nextOfPeer[last]!, done = false; !done; ) {
      done = id === last;
      const next: number = this.#nextOfPeer[id]!;
      const node = this.#trie[id];
      if (node) this.#take(node);
      else this.#dropHost(id);
      count++;
      id = next;
    }
    return count;
  }

  /**
   * The peer whose longest prefix contains `address` (4 or 16 bytes), or undefined.
   * Allocates nothing.
   */
  lookup(address: Uint8Array): T | undefined {
    let node: Node<T> | null;
    let a0: number;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    const length = address.length;
    if (length === 4) {
      node = this.#root4;
      a0 = wordOf(address, 0);
    } else if (length === 16) {
      node = this.#root6;
      a0 = wordOf(address, 0);
      a1 = wordOf(address, 1);
      a2 = wordOf(address, 2);
      a3 = wordOf(address, 3);
    } else {
      checkAddress('address', address);
      return undefined; // unreachable: checkAddress throws
    }
    if (this.#hosts !== 0) {
      // A host prefix is the longest there is: an exact match is the answer.
      const id = this.#findHost(a0, a1, a2, a3, length === 16 ? 6 : 4);
      if (id >= 0) return this.#owner[id];
    }
    let found: T | undefined = undefined;
    while (node !== null && covers(node, a0, a1, a2, a3)) {
      if (node.peer !== undefined) found = node.peer;
      node = bitAt(node.cidr, a0, a1, a2, a3) === 0 ? node.child0 : node.child1;
    }
    return found;
  }

  /** The prefixes of `peer`, in the order they were given to it; fresh copies. */
  entriesFor(peer: T): AllowedIp[] {
    const out: AllowedIp[] = [];
    const last = this.#lastOf.get(peer);
    if (last === undefined) return out;
    for (let id = this.#nextOfPeer[last]!, done = false; !done; id = this.#nextOfPeer[id]!) {
      done = id === last;
      const node = this.#trie[id];
      if (node) {
        out.push({ address: nodeAddress(node), cidr: node.cidr });
      } else {
        const v6 = this.#family[id] === 6;
        const address = new Uint8Array(v6 ? 16 : 4);
        for (let i = 0; i < address.length; i++) address[i] = (this.#key[4 * id + (i >>> 2)]! >>> (24 - 8 * (i & 3))) & 0xff;
        out.push({ address, cidr: v6 ? 128 : 32 });
      }
    }
    return out;
  }

  /**
   * Makes `node` (a trie prefix) `peer`'s, taking it from its previous owner if any. The
   * prefix goes to the end of the peer's list even if the peer already had it, as the
   * kernel's list_move_tail does.
   */
  #give(node: Node<T>, peer: T): void {
    const previous = node.peer;
    if (previous === undefined) {
      this.#size++;
      node.entry = this.#allocate();
      this.#trie[node.entry] = node;
    } else {
      // Taken from the previous owner, which may be `peer` itself: then it re-enters
      // at the end.
      this.#unlist(previous, node.entry);
    }
    node.peer = peer;
    this.#list(peer, node.entry);
  }

  // --- Host prefixes ---------------------------------------------------------------

  #insertHost(prefix: Uint8Array, peer: T): void {
    const v6 = prefix.length === 16;
    const a0 = wordOf(prefix, 0);
    const a1 = v6 ? wordOf(prefix, 1) : 0;
    const a2 = v6 ? wordOf(prefix, 2) : 0;
    const a3 = v6 ? wordOf(prefix, 3) : 0;
    const family = v6 ? 6 : 4;
    let id = this.#findHost(a0, a1, a2, a3, family);
    if (id >= 0) {
      this.#unlist(this.#owner[id]!, id);
    } else {
      id = this.#allocate();
      const k = 4 * id;
      this.#key[k] = a0;
      this.#key[k + 1] = a1;
      this.#key[k + 2] = a2;
      this.#key[k + 3] = a3;
      this.#family[id] = family;
      const b = hostHash(a0, a1, a2, a3, family) & (this.#capacity - 1);
      this.#chain[id] = this.#buckets[b]!;
      this.#buckets[b] = id;
      this.#hosts++;
      this.#size++;
    }
    this.#owner[id] = peer;
    this.#list(peer, id);
  }

  #removeHost(prefix: Uint8Array): boolean {
    const v6 = prefix.length === 16;
    const id = this.#findHost(wordOf(prefix, 0), v6 ? wordOf(prefix, 1) : 0, v6 ? wordOf(prefix, 2) : 0, v6 ? wordOf(prefix, 3) : 0, v6 ? 6 : 4);
    if (id < 0) return false;
    this.#unlist(this.#owner[id]!, id);
    this.#dropHost(id);
    return true;
  }

  /** The id of the host entry with this key, or -1. Allocates nothing. */
  #findHost(a0: number, a1: number, a2: number, a3: number, family: number): number {
    const key = this.#key;
    for (let id = this.#buckets[hostHash(a0, a1, a2, a3, family) & (this.#capacity - 1)]!; id >= 0; id = this.#chain[id]!) {
      const k = 4 * id;
      if (key[k] === a0 && key[k + 1] === a1 && key[k + 2] === a2 && key[k + 3] === a3 && this.#family[id] === family) return id;
    }
    return -1;
  }

  /** Takes host entry `id` out of its hash chain and frees it (the caller unlists it). */
  #dropHost(id: number): void {
    const k = 4 * id;
    const b = hostHash(this.#key[k]!, this.#key[k + 1]!, this.#key[k + 2]!, this.#key[k + 3]!, this.#family[id]!) & (this.#capacity - 1);
    if (this.#buckets[b] === id) {
      this.#buckets[b] = this.#chain[id]!;
    } else {
      let at = this.#buckets[b]!;
      while (this.#chain[at] !== id) at = this.#chain[at]!;
      this.#chain[at] = this.#chain[id]!;
    }
    this.#hosts--;
    this.#size--;
    this.#release(id);
  }

  // --- Entry ids and the per-peer lists ----------------------------------------------

  #allocate(): number {
    if (this.#free < 0) this.#grow();
    const id = this.#free;
    this.#free = this.#nextOfPeer[id]!;
    this.#nextOfPeer[id] = -1;
    this.#trie[id] = null;
    return id;
  }

  #release(id: number): void {
    this.#owner[id] = undefined;
    this.#trie[id] = null;
    this.#family[id] = 0;
    this.#nextOfPeer[id] = this.#free;
    this.#free = id;
  }

  /** Doubles the entry arrays (ids stay) and rehashes the host entries. */
  #grow(): void {
    const old = this.#capacity;
    const capacity = Math.max(8, old * 2);
    const widen = <A extends Int32Array | Uint8Array>(a: A, make: (n: number) => A, per = 1): A => {
      const out = make(capacity * per);
      out.set(a);
      return out;
    };
    this.#key = widen(this.#key, (n) => new Int32Array(n), 4);
    this.#family = widen(this.#family, (n) => new Uint8Array(n));
    this.#nextOfPeer = widen(this.#nextOfPeer, (n) => new Int32Array(n));
    this.#chain = new Int32Array(capacity);
    for (let id = old; id < capacity; id++) {
      this.#owner.push(undefined);
      this.#trie.push(null);
      this.#nextOfPeer[id] = id + 1 < capacity ? id + 1 : this.#free;
    }
    this.#free = old;
    this.#capacity = capacity;
    this.#buckets = new Int32Array(capacity).fill(-1);
    const key = this.#key;
    for (let id = 0; id < old; id++) {
      const family = this.#family[id]!;
      if (family === 0 || this.#trie[id] !== null) continue;
      const b = hostHash(key[4 * id]!, key[4 * id + 1]!, key[4 * id + 2]!, key[4 * id + 3]!, family) & (capacity - 1);
      this.#chain[id] = this.#buckets[b]!;
      this.#buckets[b] = id;
    }
  }

  /** Appends entry `id` to `peer`'s list. */
  #list(peer: T, id: number): void {
    const last = this.#lastOf.get(peer);
    if (last === undefined) {
      this.#nextOfPeer[id] = id;
    } else {
      this.#nextOfPeer[id] = this.#nextOfPeer[last]!;
      this.#nextOfPeer[last] = id;
    }
    this.#lastOf.set(peer, id);
  }

  /** Takes entry `id` out of `peer`'s list. */
  #unlist(peer: T, id: number): void {
    const last = this.#lastOf.get(peer);
    if (last === undefined) return;
    const next = this.#nextOfPeer[id]!;
    if (next === id) {
      this.#lastOf.delete(peer);
    } else {
      let at = last;
      while (this.#nextOfPeer[at] !== id) at = this.#nextOfPeer[at]!;
      this.#nextOfPeer[at] = next;
      if (id === last) this.#lastOf.set(peer, at);
    }
    this.#nextOfPeer[id] = -1;
  }

  /**
   * Clears the peer of `node` (the caller updates the per-peer index) and prunes the
   * trie: a node without a peer survives only as a branch point with two children.
   */
  #take(node: Node<T>): void {
    node.peer = undefined;
    this.#release(node.entry);
    node.entry = -1;
    this.#size--;
    if (node.child0 !== null && node.child1 !== null) return;
    const only = node.child0 ?? node.child1;
    if (only !== null) {
      this.#replace(node, only);
      this.#nodes--;
      return;
    }
    const parent = node.parent;
    this.#nodes--;
    if (parent === null) {
      this.#setRoot(node.v6, null);
      return;
    }
    if (parent.child0 === node) parent.child0 = null;
    else parent.child1 = null;
    node.parent = null;
    if (parent.peer === undefined) {
      // A branch point left with one child is no longer needed.
      const other = parent.child0 ?? parent.child1;
      if (other !== null) {
        this.#replace(parent, other);
        this.#nodes--;
      }
    }
  }

  #setRoot(v6: boolean, node: Node<T> | null): void {
    if (v6) this.#root6 = node;
    else this.#root4 = node;
    if (node !== null) node.parent = null;
  }

  #attach(parent: Node<T>, side: number, child: Node<T>): void {
    if (side === 0) parent.child0 = child;
    else parent.child1 = child;
    child.parent = parent;
  }

  /** Puts `next` where `old` hangs (under old's parent, or as the root). */
  #replace(old: Node<T>, next: Node<T>): void {
    const parent = old.parent;
    old.parent = null;
    if (parent === null) {
      this.#setRoot(next.v6, next);
    } else {
      if (parent.child0 === old) parent.child0 = next;
      else parent.child1 = next;
      next.parent = parent;
    }
  }
}
