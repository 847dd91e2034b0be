#include "tun_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>

#ifdef __linux__
#include <linux/if_tun.h>
#include <net/if.h>
#endif

namespace burrow {

namespace {

// struct virtio_net_hdr, the header in front of every packet with IFF_VNET_HDR.
constexpr size_t kVnetHdr = 10;

// True for errors that concern one packet being written, not the descriptor: the
// kernel refused a malformed packet or had no memory for it. The batch goes on.
bool IsPerPacketWriteError(int err) {
  return err == EINVAL || err == EMSGSIZE || err == ENOBUFS || err == ENOMEM;
}

bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "expected a number argument");
  }
  return info[i].As<Napi::Number>().Uint32Value();
}

// The slot arena of a batch: `count` slots of `slotSize` bytes starting at slot
// `start`, each holding a packet at offset `headroom`, lengths in `lengths[i]`.
struct Arena {
  uint8_t* base;
  uint32_t slotSize;
  uint32_t headroom;
  uint32_t* lengths;
};

Arena ArgArena(const Napi::CallbackInfo& info, uint32_t start, uint32_t count) {
  Napi::Env env = info.Env();
  if (!IsTypedArrayOf(info[0], napi_uint8_array) ||
      !IsTypedArrayOf(info[3], napi_uint32_array)) {
    throw Napi::TypeError::New(env, "expected (Uint8Array, slotSize, headroom, Uint32Array)");
  }
  Napi::Uint8Array arena = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array lengths = info[3].As<Napi::Uint32Array>();
  Arena a{arena.Data(), ArgU32(info, 1), ArgU32(info, 2), lengths.Data()};
  uint64_t end = uint64_t(start) + count;
  if (a.headroom >= a.slotSize || end > lengths.ElementLength() ||
      end * a.slotSize > arena.ByteLength()) {
    throw Napi::RangeError::New(env, "batch slots out of range");
  }
  return a;
}

// watch()'s callback gets no argument (undefined) when the fd is readable, or the
// error code once if polling failed; it is dropped then, as watching has stopped.
size_t TunPollArgs(PolledFd& io, Napi::Env env, int status, int /*events*/,
                   napi_value* args) {
  args[0] = env.Undefined();
  if (status < 0) {
    io.ResetCallback();
    args[0] = Napi::String::New(env, ErrnoCode(-status));
  }
  return 1;
}

}  // namespace

Napi::Function TunFd::Define(Napi::Env env) {
  return DefineClass(env, "TunFd",
                     {
                         FdAccessor(),
                         InstanceMethod<&TunFd::ReadBatch>("readBatch"),
                         InstanceMethod<&TunFd::WriteBatch>("writeBatch"),
                         InstanceMethod<&TunFd::WritePackets>("writePackets"),
                         InstanceMethod<&TunFd::Watch>("watch"),
                         InstanceMethod<&TunFd::Unwatch>("unwatch"),
                         CloseMethod(),
                         InstanceMethod<&TunFd::Stats>("stats"),
                         InstanceMethod<&TunFd::SetOffload>("setOffload"),
                         InstanceAccessor<&TunFd::VnetHdr>("vnetHdr"),
                     });
}

TunFd::TunFd(const Napi::CallbackInfo& info)
    : PolledWrap<TunFd>(info, "BurrowTun", /*socket=*/false, TunPollArgs) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "fd must not be negative");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) ThrowErrno(env, errno, "fcntl F_GETFL");
  if ((flags & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    ThrowErrno(env, errno, "fcntl F_SETFL O_NONBLOCK");
  }
#ifdef __linux__
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) == 0) vnetHdr_ = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
#endif
  // Only now is the fd ours: a constructor that throws leaves it to the caller.
  io_.Adopt(fd);
}

Napi::Value TunFd::VnetHdr(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), vnetHdr_);
}

// readBatch(arena, slotSize, headroom, lengths, max, headers?) -> number of packets
// read into slots 0..n-1. Stops at EAGAIN (nothing more queued) or after `max` packets.
// headers (IFF_VNET_HDR only): packet i's virtio_net_hdr lands at headers[10 i ..
// 10 i + 10], and GSO super-packets are kept for the caller to cut (src/runtime/tso.ts).
Napi::Value TunFd::ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t max = ArgU32(info, 4);
  Arena a = ArgArena(info, 0, max);
  uint8_t* headers = nullptr;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!IsTypedArrayOf(info[5], napi_uint8_array)) throw Napi::TypeError::New(env, "headers must be a Uint8Array");
    Napi::Uint8Array h = info[5].As<Napi::Uint8Array>();
    if (uint64_t(max) * kVnetHdr > h.ByteLength()) throw Napi::RangeError::New(env, "headers out of range");
    if (!vnetHdr_) throw Napi::Error::New(env, "headers need a TUN opened with IFF_VNET_HDR");
    headers = h.Data();
  }
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "read");
  const size_t room = a.slotSize - a.headroom;
  // A TUN read copies what fits and silently drops the rest of a longer packet. One
  // spare byte after the slot tells a packet that filled the slot exactly from one
  // that was cut short; a cut packet is dropped and counted, its slot reused.
  // With IFF_VNET_HDR a virtio_net_hdr comes first. Without `headers` to keep it in,
  // it is read into a scratch copy and a packet it announces as GSO is dropped (only
  // TUNSETOFFLOAD makes the kernel send those).
  uint8_t spare;
  uint8_t scratch[kVnetHdr];
  struct iovec iov[3] = {{scratch, kVnetHdr}, {nullptr, room}, {&spare, 1}};
  struct iovec* first = vnetHdr_ ? iov : iov + 1;
  int iovcnt = vnetHdr_ ? 3 : 2;
  uint32_t n = 0;
  uint32_t dropped = 0;  // bounds the call when every read is cut short
  while (n < max && dropped < max) {
    uint8_t* hdr = headers != nullptr ? headers + size_t(n) * kVnetHdr : scratch;
    iov[0].iov_base = hdr;
    iov[1].iov_base = a.base + size_t(n) * a.slotSize + a.headroom;
    ssize_t got = ::readv(io_.fd(), first, iovcnt);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (n > 0) break;  // return what we have; the error recurs on the next call
      ThrowErrno(env, err, "read");
    }
    if (got == 0) break;  // end of file: not a TUN, but an adopted fd may be anything
    if (vnetHdr_) {
      got -= ssize_t(kVnetHdr);
      if (got <= 0 || (headers == nullptr && hdr[1] != 0 /* gso_type NONE */)) {
        truncatedReads_++;
        dropped++;
        continue;
      }
    }
    if (size_t(got) > room) {
      truncatedReads_++;
      dropped++;
      continue;
    }
    a.lengths[n++] = uint32_t(got);
  }
  return Napi::Number::New(env, n);
}

// setOffload(flags): TUNSETOFFLOAD with TUN_F_* flags (an IFF_VNET_HDR fd only): what
// the kernel may hand over on reads: partial checksums (TUN_F_CSUM), TCP super-packets
// (TUN_F_TSO4/6), UDP ones (TUN_F_USO4/6). Throws the errno (EINVAL: a flag this
// kernel does not know) and leaves the offloads as they were.
Napi::Value TunFd::SetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t flags = ArgU32(info, 0);
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "ioctl TUNSETOFFLOAD");
  if (!vnetHdr_) throw Napi::Error::New(env, "offloads need a TUN opened with IFF_VNET_HDR");
#ifdef __linux__
  if (ioctl(io_.fd(), TUNSETOFFLOAD, (unsigned long)flags) < 0) ThrowErrno(env, errno, "ioctl TUNSETOFFLOAD");
  return env.Undefined();
#else
  ThrowErrno(env, ENOTSUP, "ioctl TUNSETOFFLOAD (Linux only)");
#endif
}

bool TunFd::WriteOne(Napi::Env env, const uint8_t* data, size_t len, bool first, const uint8_t* hdr) {
  static const uint8_t kNoHdr[kVnetHdr] = {};
  struct iovec iov[2] = {{const_cast<uint8_t*>(hdr != nullptr ? hdr : kNoHdr), kVnetHdr},
                         {const_cast<uint8_t*>(data), len}};
  for (;;) {
    ssize_t put = vnetHdr_ ? ::writev(io_.fd(), iov, 2) : ::write(io_.fd(), data, len);
    if (put >= 0) return true;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return false;
    if (IsPerPacketWriteError(err)) {
      refusedWrites_++;
      lastRefusedErrno_ = err;
      return true;
    }
    if (!first) return false;  // stop here; the error recurs on the next call
    ThrowErrno(env, err, "write");
  }
}

// writeBatch(arena, slotSize, headroom, lengths, start, count) -> packets consumed,
// from slot `start` on. Fewer than `count` means the fd would block.
Napi::Value TunFd::WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t start = ArgU32(info, 4);
  uint32_t count = ArgU32(info, 5);
  Arena a = ArgArena(info, start, count);
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "write");
  uint32_t done = 0;
  while (done < count) {
    uint32_t i = start + done;
    uint32_t len = a.lengths[i];
    if (len > a.slotSize - a.headroom) {
      throw Napi::RangeError::New(env, "packet length exceeds its slot");
    }
    if (!WriteOne(env, a.base + size_t(i) * a.slotSize + a.headroom, len, done == 0)) {
      break;
    }
    done++;
  }
  return Napi::Number::New(env, done);
}

// writePackets(packets: Uint8Array[], start, count, headers?) -> packets consumed.
// headers (IFF_VNET_HDR only): packet i's virtio_net_hdr at headers[10 i .. 10 i + 10].
Napi::Value TunFd::WritePackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "packets must be an array");
  Napi::Array packets = info[0].As<Napi::Array>();
  uint32_t start = ArgU32(info, 1);
  uint32_t count = ArgU32(info, 2);
  if (uint64_t(start) + count > packets.Length()) {
    throw Napi::RangeError::New(env, "packets out of range");
  }
  const uint8_t* headers = nullptr;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!IsTypedArrayOf(info[3], napi_uint8_array)) throw Napi::TypeError::New(env, "headers must be a Uint8Array");
    Napi::Uint8Array h = info[3].As<Napi::Uint8Array>();
    if ((uint64_t(start) + count) * kVnetHdr > h.ByteLength()) throw Napi::RangeError::New(env, "headers out of range");
    if (!vnetHdr_) throw Napi::Error::New(env, "headers need a TUN opened with IFF_VNET_HDR");
    headers = h.Data();
  }
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "write");
  uint32_t done = 0;
  while (done < count) {
    Napi::Value v = packets.Get(start + done);
    if (!IsTypedArrayOf(v, napi_uint8_array)) {
      throw Napi::TypeError::New(env, "every packet must be a Uint8Array");
    }
    Napi::Uint8Array p = v.As<Napi::Uint8Array>();
    const uint8_t* hdr = headers == nullptr ? nullptr : headers + size_t(start + done) * kVnetHdr;
    if (!WriteOne(env, p.Data(), p.ByteLength(), done == 0, hdr)) break;
    done++;
  }
  return Napi::Number::New(env, done);
}

// watch(callback): libuv calls `callback()` whenever the fd is readable (level
// triggered: again on the next loop turn while packets remain), or `callback(code)`
// once if polling failed, after which watching has stopped.
Napi::Value TunFd::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  io_.Watch(env, info[0].As<Napi::Function>(), UV_READABLE);
  return env.Undefined();
}

// unwatch(): stops watching and drops the callback, so that an idle device holds no
// strong reference to JS and can be garbage-collected (and its fd closed).
Napi::Value TunFd::Unwatch(const Napi::CallbackInfo& info) {
  io_.Unwatch();
  return info.Env().Undefined();
}

Napi::Value TunFd::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("truncatedReads", Napi::Number::New(env, double(truncatedReads_)));
  o.Set("refusedWrites", Napi::Number::New(env, double(refusedWrites_)));
  o.Set("lastRefusedWrite", lastRefusedErrno_ == 0
                                ? env.Undefined()
                                : Napi::String::New(env, ErrnoCode(lastRefusedErrno_)));
  return o;
}

}  // namespace burrow
