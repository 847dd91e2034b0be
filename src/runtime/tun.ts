/**
 * The tunnel interface: a Linux TUN device (IFF_TUN | IFF_NO_PI, so every read and
 * write is one bare IPv4 or IPv6 packet), or a packet descriptor adopted from outside,
 * such as the utun fd the macOS shim hands over.
 *
 * Packets cross into native code per batch, never per packet, and land in memory the
 * caller owns: a `PacketBatch` is one ArrayBuffer cut into fixed-size slots, each with
 * optional headroom in front of the packet so that the WireGuard data header can be
 * written in place before sealing. Reading is driven by libuv: `onReadable` is called
 * when the fd has packets queued, and the event loop never blocks.
 *
 * Every argument is checked here; the addon (native/src/) trusts this layer and only
 * keeps memory safe. Errors are `TunError`s with stable codes.
 *
 * The device is MTU-agnostic: the MTU is set on the interface by the platform layer,
 * and a batch's slots must hold a full packet (slotSize - headroom >= MTU). A packet
 * longer than its slot is dropped and counted in `stats().truncatedReads`.
 */
import { AddonError, addonPath, loadAddon, type NativeAddon, type NativeTunFd } from './addon.js';

/** Linux IFNAMSIZ is 16 bytes including the terminating NUL. */
export const MAX_INTERFACE_NAME_BYTES = 15;
/** Bytes per slot when a batch does not say: a 1500-byte MTU, headroom and spare. */
export const DEFAULT_SLOT_SIZE = 2048;
/** Largest slot: an IPv4 or IPv6 packet is at most 65535 bytes, plus headroom. */
export const MAX_SLOT_SIZE = 131072;
/** Most slots in one batch. */
export const MAX_BATCH_CAPACITY = 4096;

export type TunErrorCode =
  /** An argument has the wrong type or is out of range. */
  | 'ERR_TUN_ARG'
  /** The interface name is not one Linux accepts (1 to 15 bytes, no '/', ':', spaces). */
  | 'ERR_TUN_NAME'
  /** native/build/Release/burrow_native.node is missing or cannot be loaded. */
  | 'ERR_TUN_NO_ADDON'
  /** Creating the interface needs root or CAP_NET_ADMIN. */
  | 'ERR_TUN_PERMISSION'
  /** There is no /dev/net/tun. */
  | 'ERR_TUN_NO_DEVICE'
  /** The interface exists and is held by another descriptor, or is not a TUN. */
  | 'ERR_TUN_IN_USE'
  /** An adopted descriptor is not open, or cannot be watched. */
  | 'ERR_TUN_BAD_FD'
  /** The device was closed. */
  | 'ERR_TUN_CLOSED'
  /** The interface was deleted underneath the open descriptor. */
  | 'ERR_TUN_GONE'
  /** This platform cannot open a TUN device by name (adopt a descriptor instead). */
  | 'ERR_TUN_UNSUPPORTED'
  /** Any other operating-system error; `errno` says which. */
  | 'ERR_TUN_IO';

export class TunError extends Error {
  override readonly name = 'TunError';
  readonly code: TunErrorCode;
  /** The operating system's error name behind this one, such as 'EBUSY'. */
  readonly errno: string | undefined;

  constructor(code: TunErrorCode, message: string, options: { errno?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errno = options.errno;
  }
}

/** TUNSETOFFLOAD's flags (linux/if_tun.h). */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_USO4 = 0x20;
const TUN_F_USO6 = 0x40;

// --- the addon ----------------------------------------------------------------------

/** Where the built addon is (see addon.ts). */
export const tunAddonPath = addonPath;

/** The addon, or a TunError that says how to build it. */
function native(): NativeAddon {
  try {
    return loadAddon();
  } catch (cause) {
    if (cause instanceof AddonError) throw new TunError('ERR_TUN_NO_ADDON', cause.message, { cause });
    throw cause;
  }
}

// --- errors from the addon ----------------------------------------------------------

interface NativeError {
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
}

/** Turns an error thrown by the addon into a TunError that says what to do. */
function translate(cause: unknown, what: string): TunError {
  if (cause instanceof TunError) return cause;
  const e = (typeof cause === 'object' && cause !== null ? cause : {}) as NativeError;
  const errno = typeof e.code === 'string' ? e.code : undefined;
  const syscall = typeof e.syscall === 'string' ? e.syscall : 'native call';
  const opts = { cause, ...(errno === undefined ? {} : { errno }) };
  switch (errno) {
    case 'EPERM':
    case 'EACCES':
      return new TunError('ERR_TUN_PERMISSION', `${what} needs root or CAP_NET_ADMIN (${syscall}: ${errno})`, opts);
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      if (syscall === 'open /dev/net/tun') {
        return new TunError('ERR_TUN_NO_DEVICE', `no /dev/net/tun: load the tun module (modprobe tun)`, opts);
      }
      break;
    case 'EBADFD':
      return new TunError('ERR_TUN_GONE', `${what} failed: the interface is gone (deleted while open)`, opts);
    case 'ENOTSUP':
      return new TunError('ERR_TUN_UNSUPPORTED', `${what}: opening a TUN device by name needs Linux; adopt a descriptor instead`, opts);
    default:
      break;
  }
  if (cause instanceof TypeError || cause instanceof RangeError) {
    return new TunError('ERR_TUN_ARG', `${what}: ${cause.message}`, opts);
  }
  const detail = typeof e.message === 'string' ? e.message : String(cause);
  return new TunError('ERR_TUN_IO', `${what} failed: ${detail}`, opts);
}

// --- argument checks ------------------------------------------------------------------

function argError(message: string): TunError {
  return new TunError('ERR_TUN_ARG', message);
}

function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw argError(`${what} must be an integer, got ${typeof value === 'number' ? value : typeof value}`);
  }
  if (value < min || value > max) throw argError(`${what} must be in [${min}, ${max}], got ${value}`);
  return value;
}

/**
 * Checks an interface name as Linux's dev_valid_name() and dev_alloc_name() do: 1 to
 * 15 bytes of UTF-8, not "." or "..", no '/', ':', whitespace or control characters,
 * and at most one '%', which must start a "%d" template ("burrow%d" lets the kernel
 * pick the number).
 */
export function checkInterfaceName(name: unknown): string {
  if (typeof name !== 'string') throw new TunError('ERR_TUN_NAME', `interface name must be a string, got ${typeof name}`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) throw new TunError('ERR_TUN_NAME', 'interface name is empty');
  if (bytes > MAX_INTERFACE_NAME_BYTES) {
    throw new TunError(
      'ERR_TUN_NAME',
      `interface name ${JSON.stringify(name)} is ${bytes} bytes; Linux allows at most ${MAX_INTERFACE_NAME_BYTES}`,
    );
  }
  if (name === '.' || name === '..') throw new TunError('ERR_TUN_NAME', `interface name ${JSON.stringify(name)} is reserved`);
  if (/[/:\s\u0000-\u001f\u007f]/u.test(name)) {
    throw new TunError('ERR_TUN_NAME', `interface name ${JSON.stringify(name)} has '/', ':', whitespace or a control character`);
  }
  const percent = name.indexOf('%');
  if (percent !== -1 && (name[percent + 1] !== 'd' || name.includes('%', percent + 1))) {
    throw new TunError('ERR_TUN_NAME', `interface name ${JSON.stringify(name)} may hold '%' only as one "%d" template`);
  }
  return name;
}

// --- batches ------------------------------------------------------------------------

export interface PacketBatchOptions {
  /** How many packets the batch holds. */
  capacity: number;
  /** Bytes per slot, headroom included (default DEFAULT_SLOT_SIZE). */
  slotSize?: number;
  /** Bytes kept free in front of each packet (default 0), e.g. 16 for WireGuard's header. */
  headroom?: number;
}

/**
 * Caller-owned packet memory for batched I/O: `capacity` slots of `slotSize` bytes in
 * one buffer. Packet i starts at `offset(i)` in `buffer` and is `lengths[i]` bytes long.
 * Nothing here allocates per packet except `packet(i)`, which makes a view.
 */
export class PacketBatch {
  readonly capacity: number;
  readonly slotSize: number;
  readonly headroom: number;
  /** Largest packet a slot holds. */
  readonly room: number;
  readonly buffer: Uint8Array;
  readonly lengths: Uint32Array;
  /** Packets held: set by `TunDevice.readBatch`; set it yourself before `writeBatch`. */
  count = 0;
  readonly #slots: Uint8Array[];

  constructor(options: PacketBatchOptions) {
    if (typeof options !== 'object' || options === null) throw argError('PacketBatch options must be an object');
    this.capacity = checkInteger(options.capacity, 'capacity', 1, MAX_BATCH_CAPACITY);
    this.slotSize = checkInteger(options.slotSize ?? DEFAULT_SLOT_SIZE, 'slotSize', 1, MAX_SLOT_SIZE);
    this.headroom = checkInteger(options.headroom ?? 0, 'headroom', 0, this.slotSize - 1);
    this.room = this.slotSize - this.headroom;
    this.buffer = new Uint8Array(this.capacity * this.slotSize);
    this.lengths = new Uint32Array(this.capacity);
    this.#slots = [];
    for (let i = 0; i < this.capacity; i++) {
      this.#slots.push(this.buffer.subarray(i * this.slotSize, (i + 1) * this.slotSize));
    }
  }

  /** Byte offset of packet i in `buffer` (after its headroom). */
  offset(i: number): number {
    return this.#index(i) * this.slotSize + this.headroom;
  }

  /** The whole of slot i, headroom included: a view made once, not per call. */
  slot(i: number): Uint8Array {
    return this.#slots[this.#index(i)] as Uint8Array;
  }

  /** A view of packet i, `lengths[i]` bytes after the headroom. */
  packet(i: number): Uint8Array {
    const start = this.offset(i);
    return this.buffer.subarray(start, start + (this.lengths[i] ?? 0));
  }

  /** Copies `bytes` into slot i after the headroom and sets `lengths[i]`. */
  set(i: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw argError('packet must be a Uint8Array');
    if (bytes.byteLength > this.room) {
      throw argError(`packet of ${bytes.byteLength} bytes does not fit a slot of ${this.room}`);
    }
    this.buffer.set(bytes, this.offset(i));
    this.lengths[i] = bytes.byteLength;
  }

  #index(i: number): number {
    return checkInteger(i, 'slot index', 0, this.capacity - 1);
  }
}

// --- the device ---------------------------------------------------------------------

/** Called when packets are queued; called once with an error if watching failed. */
export type ReadableCallback = (error?: TunError) => void;

export interface TunStats {
  /** Packets dropped on read because they were longer than a slot. */
  truncatedReads: number;
  /** Packets the kernel refused on write (malformed, or no memory), skipped. */
  refusedWrites: number;
  /** The error name of the last refused write, such as 'EINVAL'. */
  lastRefusedWrite: string | undefined;
}

export class TunDevice {
  /** The interface name (the kernel's, for a "%d" template or an adopted TUN fd). */
  readonly name: string;
  #handle: NativeTunFd | undefined;
  #fd: number;
  #callback: ReadableCallback | undefined;
  #watching = false;
  readonly #onPoll: (code?: string) => void;

  private constructor(handle: NativeTunFd, name: string) {
    this.#handle = handle;
    this.#fd = handle.fd;
    this.name = name;
    this.#onPoll = (code?: string) => {
      if (code === undefined) {
        this.#callback?.();
        return;
      }
      // The addon has stopped watching: libuv reported POLLERR, which a TUN fd
      // raises once its interface is deleted.
      this.#watching = false;
      const error = new TunError(
        'ERR_TUN_GONE',
        `stopped watching ${this.name}: polling failed (${code}); the interface was probably deleted`,
        { errno: code },
      );
      this.#callback?.(error);
    };
  }

  /**
   * Creates the TUN interface `name` (or attaches to a persistent one of that name),
   * non-blocking and close-on-exec. Needs root or CAP_NET_ADMIN, unless the interface
   * was made persistent for this user with `ip tuntap add … user`.
   */
  static open(name: string, options: { vnetHdr?: boolean } = {}): TunDevice {
    checkInterfaceName(name);
    const addon = native();
    let opened: { handle: NativeTunFd; name: string };
    try {
      opened = addon.open(name, options.vnetHdr === true);
    } catch (cause) {
      const e = translate(cause, `opening TUN interface ${name}`);
      if (e.errno === 'EBUSY' || e.errno === 'EEXIST') {
        throw new TunError('ERR_TUN_IN_USE', `interface ${name} is in use`, { errno: e.errno, cause });
      }
      if (e.errno === 'EINVAL') {
        // The name was checked above: the kernel refuses it because a device of
        // that name exists and is not a TUN (say, a veth or a TAP).
        throw new TunError('ERR_TUN_IN_USE', `interface ${name} is in use by a device that is not a TUN`, {
          errno: e.errno,
          cause,
        });
      }
      throw e;
    }
    return new TunDevice(opened.handle, opened.name);
  }

  /**
   * Takes ownership of a packet descriptor opened elsewhere (the macOS shim's utun fd,
   * or a TUN fd passed by a parent process): checks that it is open and makes it
   * non-blocking. From then on it is closed by `close()`. If adopt throws, the
   * descriptor is left as it was, still the caller's.
   *
   * On Linux a TUN fd knows its interface: that name wins, and a different `name` is
   * refused. Otherwise `name` is used, or "fd<N>".
   */
  static adopt(fd: number, name?: string): TunDevice {
    checkInteger(fd, 'fd', 0, 0x7fffffff);
    if (name !== undefined) checkInterfaceName(name);
    const addon = native();
    let kernelName: string | undefined;
    let handle: NativeTunFd;
    try {
      kernelName = addon.ifName(fd);
      if (kernelName !== undefined && name !== undefined && kernelName !== name) {
        throw argError(`fd ${fd} is attached to interface ${kernelName}, not ${name}`);
      }
      handle = new addon.TunFd(fd);
    } catch (cause) {
      const e = translate(cause, `adopting fd ${fd}`);
      if (e.errno === 'EBADF') {
        throw new TunError('ERR_TUN_BAD_FD', `cannot adopt fd ${fd}: it is not an open file descriptor`, {
          errno: e.errno,
          cause,
        });
      }
      throw e;
    }
    return new TunDevice(handle, kernelName ?? name ?? `fd${fd}`);
  }

  /**
   * Opened with IFF_VNET_HDR (TunDevice.open's `vnetHdr`): reads strip the header, and
   * writePackets may give one per packet, so that a write can carry a coalesced TCP
   * super-packet (gro.ts).
   */
  get vnetHdr(): boolean {
    return this.#handle?.vnetHdr ?? false;
  }

  /** The file descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  /** Whether libuv is watching the fd for readability. */
  get watching(): boolean {
    return this.#watching;
  }

  /**
   * Reads up to `max` queued packets into slots 0.. of `batch` in one native call and
   * returns how many (also stored in `batch.count`). Returns 0 when nothing is queued;
   * never blocks. `headers`, on a vnetHdr device only: packet i's virtio_net_hdr is
   * stored at bytes 10 i .. 10 i + 10, and the TCP and UDP super-packets that
   * `setOffload` lets the kernel send are kept (cut them with tso.ts); without it they
   * are dropped and counted in `stats().truncatedReads`.
   */
  readBatch(batch: PacketBatch, max: number = batch.capacity, headers?: Uint8Array): number {
    checkBatch(batch);
    checkInteger(max, 'max', 0, batch.capacity);
    if (headers !== undefined) {
      if (!(headers instanceof Uint8Array) || headers.length < max * 10) throw argError('headers must be a Uint8Array of 10 bytes per packet');
      if (!this.vnetHdr) throw argError(`headers need a TUN opened with vnetHdr; ${this.name} was not`);
    }
    const handle = this.#open('read');
    let n: number;
    try {
      n = handle.readBatch(batch.buffer, batch.slotSize, batch.headroom, batch.lengths, max, headers);
    } catch (cause) {
      throw translate(cause, `reading from ${this.name}`);
    }
    batch.count = n;
    return n;
  }

  /**
   * Writes packets `start` .. `start + count - 1` of `batch` in one native call and
   * returns how many were consumed: written, or refused by the kernel as malformed
   * (counted in `stats()`). Fewer than `count` means the fd would block; write the
   * rest later. A TUN device takes packets as fast as they come, so this is rare.
   */
  writeBatch(batch: PacketBatch, start = 0, count?: number): number {
    checkBatch(batch);
    checkInteger(start, 'start', 0, batch.capacity);
    const n = checkInteger(count ?? batch.count - start, 'count', 0, batch.capacity - start);
    for (let i = start; i < start + n; i++) {
      const len = batch.lengths[i] ?? 0;
      if (len > batch.room) throw argError(`lengths[${i}] is ${len}, more than the slot holds (${batch.room})`);
    }
    const handle = this.#open('write');
    try {
      return handle.writeBatch(batch.buffer, batch.slotSize, batch.headroom, batch.lengths, start, n);
    } catch (cause) {
      throw translate(cause, `writing to ${this.name}`);
    }
  }

  /**
   * Writes `packets[start]` .. `packets[start + count - 1]`, each one whole packet, in
   * one native call; returns how many were consumed, as `writeBatch` does. `headers`,
   * on a vnetHdr device only: packet i's virtio_net_hdr at bytes 10 i .. 10 i + 10.
   */
  writePackets(packets: readonly Uint8Array[], start = 0, count?: number, headers?: Uint8Array): number {
    if (!Array.isArray(packets)) throw argError('packets must be an array of Uint8Array');
    checkInteger(start, 'start', 0, packets.length);
    const n = checkInteger(count ?? packets.length - start, 'count', 0, packets.length - start);
    for (let i = start; i < start + n; i++) {
      if (!(packets[i] instanceof Uint8Array)) throw argError(`packets[${i}] must be a Uint8Array`);
    }
    if (headers !== undefined) {
      if (!(headers instanceof Uint8Array) || headers.length < (start + n) * 10) throw argError('headers must be a Uint8Array of 10 bytes per packet');
      if (!this.vnetHdr) throw argError(`headers need a TUN opened with vnetHdr; ${this.name} was not`);
    }
    const handle = this.#open('write');
    try {
      return handle.writePackets(packets, start, n, headers);
    } catch (cause) {
      throw translate(cause, `writing to ${this.name}`);
    }
  }

  /**
   * Calls `callback` whenever packets are queued, from the event loop; it should read
   * them with `readBatch` (it is called again on the next loop turn while any remain).
   * Replaces an earlier callback and starts watching.
   */
  onReadable(callback: ReadableCallback): void {
    if (typeof callback !== 'function') throw argError('callback must be a function');
    this.#callback = callback;
    this.startWatching();
  }

  /** Resumes watching with the callback given to `onReadable`. */
  startWatching(): void {
    if (this.#callback === undefined) throw argError('call onReadable(callback) first');
    const handle = this.#open('watch');
    if (this.#watching) return;
    try {
      handle.watch(this.#onPoll);
    } catch (cause) {
      const e = translate(cause, `watching ${this.name}`);
      if (e.errno === 'EPERM') {
        throw new TunError('ERR_TUN_BAD_FD', `cannot watch ${this.name}: fd ${this.#fd} does not support polling`, {
          errno: e.errno,
          cause,
        });
      }
      throw e;
    }
    this.#watching = true;
  }

  /** Stops watching (for backpressure); packets queue in the kernel meanwhile. */
  stopWatching(): void {
    if (this.#handle === undefined || !this.#watching) return;
    this.#handle.unwatch();
    this.#watching = false;
  }

  /**
   * Lets the kernel hand over, on reads, packets whose TCP or UDP checksum is left for
   * us to finish (TUN_F_CSUM) and TCP super-packets of up to 64 KiB (TUN_F_TSO4/6), and
   * with `udp` UDP ones too (TUN_F_USO4/6, Linux 6.2): TUNSETOFFLOAD. Read them with
   * `readBatch(…, headers)`. Needs a vnetHdr device. A kernel that does not know a flag
   * refuses them all (ERR_TUN_IO, errno EINVAL) and the device stays as it was.
   */
  setOffload(options: { tcp: boolean; udp?: boolean }): void {
    if (!this.vnetHdr) throw argError(`offloads need a TUN opened with vnetHdr; ${this.name} was not`);
    const flags = (options.tcp || options.udp === true ? TUN_F_CSUM : 0) |
      (options.tcp ? TUN_F_TSO4 | TUN_F_TSO6 : 0) | (options.udp === true ? TUN_F_USO4 | TUN_F_USO6 : 0);
    const handle = this.#open('set offloads');
    try {
      handle.setOffload(flags);
    } catch (cause) {
      throw translate(cause, `setting offloads on ${this.name}`);
    }
  }

  stats(): TunStats {
    return this.#open('stats').stats();
  }

  /**
   * Stops watching and closes the fd; the interface goes away with it unless it is
   * persistent. Idempotent. A device that is garbage-collected unclosed (and not
   * watched: watching keeps it alive) is closed by its finalizer.
   */
  close(): void {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    this.#fd = -1;
    this.#watching = false;
    this.#callback = undefined;
    handle.close();
  }

  #open(what: string): NativeTunFd {
    if (this.#handle === undefined) throw new TunError('ERR_TUN_CLOSED', `cannot ${what}: ${this.name} is closed`);
    return this.#handle;
  }
}

function checkBatch(batch: unknown): asserts batch is PacketBatch {
  if (!(batch instanceof PacketBatch)) throw argError('batch must be a PacketBatch');
}
