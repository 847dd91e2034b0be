#include "udp_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace burrow {

namespace {

constexpr uint32_t kAddrRecord = 24;
constexpr uint32_t kMaxBatch = 1024;
// Control buffer per message: one IP_PKTINFO or IPV6_PKTINFO cmsg.
constexpr size_t kCtrl = CMSG_SPACE(sizeof(struct in6_pktinfo)) > CMSG_SPACE(sizeof(struct in_pktinfo))
                             ? CMSG_SPACE(sizeof(struct in6_pktinfo))
                             : CMSG_SPACE(sizeof(struct in_pktinfo));
// Byte 20 of a local-address record (see udp_socket.h).
constexpr uint8_t kSourceNone = 0;
constexpr uint8_t kSourceSet = 1;
constexpr uint8_t kSourceCleared = 2;
// UDP GSO (UDP_SEGMENT): at most this many datagrams, and bytes, in one send.
constexpr uint32_t kGsoMaxSegments = 64;
constexpr uint64_t kGsoMaxBytes = 65000;
// Control buffer per message: PKTINFO, then UDP_SEGMENT (sending) or UDP_GRO (receiving).
constexpr size_t kCtrlAll = kCtrl + (CMSG_SPACE(sizeof(uint16_t)) > CMSG_SPACE(sizeof(int)) ? CMSG_SPACE(sizeof(uint16_t))
                                                                                              : CMSG_SPACE(sizeof(int)));

std::string ErrnoName(int err) {
  char name[64];
  uv_err_name_r(-err, name, sizeof name);
  return name;
}

bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a number argument");
  return info[i].As<Napi::Number>().Uint32Value();
}

Napi::Uint8Array ArgBytes(const Napi::CallbackInfo& info, size_t i) {
  if (!IsTypedArrayOf(info[i], napi_uint8_array)) throw Napi::TypeError::New(info.Env(), "expected a Uint8Array");
  return info[i].As<Napi::Uint8Array>();
}

Napi::Uint32Array ArgWords(const Napi::CallbackInfo& info, size_t i) {
  if (!IsTypedArrayOf(info[i], napi_uint32_array)) throw Napi::TypeError::New(info.Env(), "expected a Uint32Array");
  return info[i].As<Napi::Uint32Array>();
}

// Storage for one batch's message headers, reused across calls; one per thread, as
// every worker thread has its own loop and its own sockets.
struct Scratch {
  std::vector<struct mmsghdr> msgs;
  std::vector<struct iovec> iovs;
  std::vector<struct sockaddr_in6> addrs;  // large enough for either family
  std::vector<uint32_t> datagrams;         // datagrams carried by message k (GSO: several)
  std::vector<uint64_t> ctrl;              // kCtrlAll bytes per message, 8-aligned for cmsghdr
  void Ensure(size_t n) {
    if (msgs.size() < n) {
      msgs.resize(n);
      iovs.resize(n);
      addrs.resize(n);
      datagrams.resize(n);
      ctrl.resize(n * (kCtrlAll / sizeof(uint64_t) + 1));
    }
  }
  // Message i's control buffer: kCtrlAll bytes (PKTINFO and UDP_SEGMENT, or UDP_GRO).
  void* Ctrl(size_t i) { return ctrl.data() + i * (kCtrlAll / sizeof(uint64_t) + 1); }
};
thread_local Scratch scratch;

void ToRecord(int family, const struct sockaddr_in6& sa, uint8_t* rec) {
  std::memset(rec, 0, kAddrRecord);
  uint16_t port;
  if (family == 4) {
    const auto& s4 = reinterpret_cast<const struct sockaddr_in&>(sa);
    std::memcpy(rec, &s4.sin_addr, 4);
    port = ntohs(s4.sin_port);
  } else {
    std::memcpy(rec, &sa.sin6_addr, 16);
    port = ntohs(sa.sin6_port);
    uint32_t scope = sa.sin6_scope_id;
    rec[20] = uint8_t(scope);
    rec[21] = uint8_t(scope >> 8);
    rec[22] = uint8_t(scope >> 16);
    rec[23] = uint8_t(scope >> 24);
  }
  rec[16] = uint8_t(port >> 8);
  rec[17] = uint8_t(port);
}

socklen_t FromRecord(int family, const uint8_t* rec, struct sockaddr_in6* out) {
  std::memset(out, 0, sizeof *out);
  uint16_t port = uint16_t((rec[16] << 8) | rec[17]);
  if (family == 4) {
    auto* s4 = reinterpret_cast<struct sockaddr_in*>(out);
    s4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, rec, 4);
    s4->sin_port = htons(port);
    return sizeof(struct sockaddr_in);
  }
  out->sin6_family = AF_INET6;
  std::memcpy(&out->sin6_addr, rec, 16);
  out->sin6_port = htons(port);
  out->sin6_scope_id = uint32_t(rec[20]) | (uint32_t(rec[21]) << 8) | (uint32_t(rec[22]) << 16) |
                       (uint32_t(rec[23]) << 24);
  return sizeof(struct sockaddr_in6);
}

// The segment size of a datagram that UDP GRO coalesced (its UDP_GRO cmsg), or 0.
uint32_t ReadGro(const struct msghdr& h) {
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<struct msghdr*>(&h), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      return size > 0 ? uint32_t(size) : 0;
    }
  }
  return 0;
}

// The local address a datagram arrived on, from its IP_PKTINFO / IPV6_PKTINFO cmsg, as a
// local-address record: the address the reply should come from, and the interface.
void ReadPktinfo(int family, const struct msghdr& h, uint8_t* rec) {
  std::memset(rec, 0, kAddrRecord);
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<struct msghdr*>(&h), c)) {
    uint32_t ifindex;
    if (family == 4 && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      std::memcpy(rec, &info.ipi_spec_dst, 4);  // the local address, as wireguard-go takes it
      ifindex = uint32_t(info.ipi_ifindex);
    } else if (family == 6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      std::memcpy(rec, &info.ipi6_addr, 16);
      ifindex = info.ipi6_ifindex;
    } else {
      continue;
    }
    std::memcpy(rec + 16, &ifindex, 4);
    rec[20] = kSourceSet;
    return;
  }
}

// Attaches a source-address cmsg to `h` from a local-address record: IP_PKTINFO's
// ipi_spec_dst (the kernel picks the interface), or IPV6_PKTINFO with the interface only
// for a link-local address, which needs it.
void WritePktinfo(int family, const uint8_t* rec, void* buf, struct msghdr& h) {
  std::memset(buf, 0, kCtrl);
  h.msg_control = buf;
  struct cmsghdr* c = reinterpret_cast<struct cmsghdr*>(buf);
  if (family == 4) {
    struct in_pktinfo info;
    std::memset(&info, 0, sizeof info);
    std::memcpy(&info.ipi_spec_dst, rec, 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof info);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    h.msg_controllen = CMSG_SPACE(sizeof info);
    return;
  }
  struct in6_pktinfo info;
  std::memset(&info, 0, sizeof info);
  std::memcpy(&info.ipi6_addr, rec, 16);
  if (IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr)) std::memcpy(&info.ipi6_ifindex, rec + 16, 4);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof info);
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
  h.msg_controllen = CMSG_SPACE(sizeof info);
}

// watch()'s callback gets the ready events, or (-1, error code) once if polling failed,
// after which watching has stopped.
size_t UdpPollArgs(PolledFd& /*io*/, Napi::Env env, int status, int events, napi_value* args) {
  if (status < 0) {
    args[0] = Napi::Number::New(env, -1);
    args[1] = Napi::String::New(env, ErrnoName(-status));
    return 2;
  }
  args[0] = Napi::Number::New(env, events);
  return 1;
}

}  // namespace

Napi::Function UdpSocket::Define(Napi::Env env) {
  return DefineClass(env, "UdpSocket",
                     {
                         FdAccessor(),
                         InstanceAccessor<&UdpSocket::Port>("port"),
                         InstanceMethod<&UdpSocket::RecvBatch>("recvBatch"),
                         InstanceMethod<&UdpSocket::SendBatch>("sendBatch"),
                         InstanceMethod<&UdpSocket::Watch>("watch"),
                         CloseMethod(),
                         InstanceMethod<&UdpSocket::Stats>("stats"),
                         InstanceMethod<&UdpSocket::SetGso>("setGso"),
                         InstanceMethod<&UdpSocket::SetGro>("setGro"),
                     });
}

UdpSocket::UdpSocket(const Napi::CallbackInfo& info)
    : PolledWrap<UdpSocket>(info, "BurrowUdp", /*socket=*/true, UdpPollArgs) {
  Napi::Env env = info.Env();
  uint32_t family = ArgU32(info, 0);
  uint32_t port = ArgU32(info, 1);
  uint32_t bufferBytes = ArgU32(info, 2);
  if ((family != 4 && family != 6) || port > 65535) throw Napi::RangeError::New(env, "bad family or port");
  int fd = ::socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  int one = 1;
  int size = int(bufferBytes);
  struct sockaddr_in6 sa;
  std::memset(&sa, 0, sizeof sa);
  socklen_t len;
  if (family == 4) {
    auto* s4 = reinterpret_cast<struct sockaddr_in*>(&sa);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_port = htons(uint16_t(port));
    len = sizeof(struct sockaddr_in);
  } else {
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_any;
    sa.sin6_port = htons(uint16_t(port));
    len = sizeof sa;
  }
  const char* failed = nullptr;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) failed = "setsockopt IPV6_V6ONLY";
  // The local address of each datagram received (recvBatch's `locals`).
  if (failed == nullptr && family == 4 && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) failed = "setsockopt IP_PKTINFO";
  if (failed == nullptr && family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0) failed = "setsockopt IPV6_RECVPKTINFO";
  // Buffer sizes are best effort, as Node's recvBufferSize is capped by rmem_max.
  if (size > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (failed == nullptr && ::bind(fd, reinterpret_cast<struct sockaddr*>(&sa), len) < 0) failed = "bind";
  if (failed != nullptr) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, failed);
  }
  io_.Adopt(fd);
  family_ = int(family);
}

Napi::Value UdpSocket::Port(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "getsockname");
  struct sockaddr_in6 sa;
  socklen_t len = sizeof sa;
  if (getsockname(io_.fd(), reinterpret_cast<struct sockaddr*>(&sa), &len) < 0) ThrowErrno(env, errno, "getsockname");
  // sin_port and sin6_port sit at the same offset.
  return Napi::Number::New(env, ntohs(sa.sin6_port));
}

// recvBatch(arena, slotSize, lengths, addrs, max[, locals[, segments]]) -> datagrams
// received into slots 0..n-1 (0 when none are queued). A datagram longer than its slot is
// dropped, its length reported as 0. A socket error with nothing received returns -errno.
// With `locals`, the local address each datagram arrived on goes there (local-address
// records). With `segments` (a Uint32Array), each slot's UDP GRO segment size: 0 for one
// datagram, else the slot holds datagrams of that size one after the other, the last
// possibly shorter (setGro).
Napi::Value UdpSocket::RecvBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array arena = ArgBytes(info, 0);
  uint32_t slotSize = ArgU32(info, 1);
  Napi::Uint32Array lengths = ArgWords(info, 2);
  Napi::Uint8Array addrs = ArgBytes(info, 3);
  uint32_t max = ArgU32(info, 4);
  uint8_t* locals = nullptr;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    Napi::Uint8Array l = ArgBytes(info, 5);
    if (uint64_t(max) * kAddrRecord > l.ByteLength()) throw Napi::RangeError::New(env, "locals out of range");
    locals = l.Data();
  }
  uint32_t* segments = nullptr;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    Napi::Uint32Array g = ArgWords(info, 6);
    if (max > g.ElementLength()) throw Napi::RangeError::New(env, "segments out of range");
    segments = g.Data();
  }
  if (max > kMaxBatch || slotSize == 0 || max > lengths.ElementLength() ||
      uint64_t(max) * slotSize > arena.ByteLength() || uint64_t(max) * kAddrRecord > addrs.ByteLength()) {
    throw Napi::RangeError::New(env, "batch slots out of range");
  }
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "recvmmsg");
  if (max == 0) return Napi::Number::New(env, 0);
  scratch.Ensure(max);
  for (uint32_t i = 0; i < max; i++) {
    scratch.iovs[i].iov_base = arena.Data() + size_t(i) * slotSize;
    scratch.iovs[i].iov_len = slotSize;
    struct msghdr& h = scratch.msgs[i].msg_hdr;
    std::memset(&h, 0, sizeof h);
    h.msg_name = &scratch.addrs[i];
    h.msg_namelen = sizeof(struct sockaddr_in6);
    h.msg_iov = &scratch.iovs[i];
    h.msg_iovlen = 1;
    if (locals != nullptr || gro_) {
      h.msg_control = scratch.Ctrl(i);
      h.msg_controllen = kCtrlAll;
    }
    scratch.msgs[i].msg_len = 0;
  }
  int r;
  do {
    r = recvmmsg(io_.fd(), scratch.msgs.data(), max, MSG_DONTWAIT, nullptr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return Napi::Number::New(env, 0);
    return Napi::Number::New(env, -err);
  }
  uint32_t* lens = lengths.Data();
  for (int i = 0; i < r; i++) {
    if (scratch.msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      truncatedReceives_++;
      lens[i] = 0;
    } else {
      lens[i] = scratch.msgs[i].msg_len;
    }
    ToRecord(family_, scratch.addrs[i], addrs.Data() + size_t(i) * kAddrRecord);
    if (locals != nullptr) ReadPktinfo(family_, scratch.msgs[i].msg_hdr, locals + size_t(i) * kAddrRecord);
    if (segments != nullptr) segments[i] = gro_ ? ReadGro(scratch.msgs[i].msg_hdr) : 0;
  }
  return Napi::Number::New(env, r);
}

// sendBatch(arena, offsets, lengths, addrs, start, count[, sources]) -> datagrams
// consumed from index `start` on: sent, or refused by the kernel (counted in stats and
// skipped, as node:dgram drops them). Fewer than `count` means the socket would block.
// With `sources`, a datagram whose local-address record is set goes out from that
// address; if the kernel refuses it (EINVAL, EADDRNOTAVAIL, ENETUNREACH: the address is
// gone), the record is marked cleared and the datagram sent again from the kernel's
// choice, as the kernel's WireGuard does; a second refusal counts as any other.
Napi::Value UdpSocket::SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array arena = ArgBytes(info, 0);
  Napi::Uint32Array offsets = ArgWords(info, 1);
  Napi::Uint32Array lengths = ArgWords(info, 2);
  Napi::Uint8Array addrs = ArgBytes(info, 3);
  uint32_t start = ArgU32(info, 4);
  uint32_t count = ArgU32(info, 5);
  uint64_t end = uint64_t(start) + count;
  if (end > offsets.ElementLength() || end > lengths.ElementLength() || end * kAddrRecord > addrs.ByteLength()) {
    throw Napi::RangeError::New(env, "batch out of range");
  }
  uint8_t* sources = nullptr;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    Napi::Uint8Array s = ArgBytes(info, 6);
    if (end * kAddrRecord > s.ByteLength()) throw Napi::RangeError::New(env, "sources out of range");
    sources = s.Data();
  }
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "sendmmsg");
  uint32_t done = 0;
  const uint8_t* base = arena.Data();
  const uint32_t* offs = offsets.Data();
  const uint32_t* lens = lengths.Data();
  const uint8_t* recs = addrs.Data();
  while (done < count) {
    // Messages for up to kMaxBatch datagrams. With GSO, a run of datagrams that lie one
    // after the other in the arena, go to the same address and have the same length
    // (the last may be shorter) is one message with UDP_SEGMENT: the kernel cuts it.
    uint32_t msgCount = 0;
    uint32_t planned = 0;
    uint32_t limit = count - done < kMaxBatch ? count - done : kMaxBatch;
    scratch.Ensure(limit);
    while (planned < limit) {
      uint32_t i = start + done + planned;
      uint64_t off = offs[i];
      uint32_t len = lens[i];
      if (off + len > arena.ByteLength()) throw Napi::RangeError::New(env, "datagram out of the arena");
      uint32_t run = 1;
      uint64_t bytes = len;
      if (gso_ && len > 0) {
        while (planned + run < limit && run < kGsoMaxSegments) {
          uint32_t j = i + run;
          uint32_t lj = lens[j];
          if (offs[j] != off + bytes || lj == 0 || lj > len || bytes + lj > kGsoMaxBytes ||
              offs[j] + uint64_t(lj) > arena.ByteLength() ||
              std::memcmp(recs + size_t(j) * kAddrRecord, recs + size_t(i) * kAddrRecord, kAddrRecord) != 0 ||
              (sources != nullptr &&
               std::memcmp(sources + size_t(j) * kAddrRecord, sources + size_t(i) * kAddrRecord, kAddrRecord) != 0)) {
            break;
          }
          bytes += lj;
          run++;
          if (lj < len) break;  // a shorter one ends the run
        }
      }
      uint32_t k = msgCount++;
      scratch.iovs[k].iov_base = const_cast<uint8_t*>(base) + off;
      scratch.iovs[k].iov_len = size_t(bytes);
      struct msghdr& h = scratch.msgs[k].msg_hdr;
      std::memset(&h, 0, sizeof h);
      h.msg_namelen = FromRecord(family_, recs + size_t(i) * kAddrRecord, &scratch.addrs[k]);
      h.msg_name = &scratch.addrs[k];
      h.msg_iov = &scratch.iovs[k];
      h.msg_iovlen = 1;
      if (sources != nullptr && sources[size_t(i) * kAddrRecord + 20] == kSourceSet) {
        WritePktinfo(family_, sources + size_t(i) * kAddrRecord, scratch.Ctrl(k), h);
      }
      if (run > 1) {
        // UDP_SEGMENT after the PKTINFO, if any (CMSG_SPACE keeps it aligned).
        if (h.msg_control == nullptr) {
          h.msg_control = scratch.Ctrl(k);
          h.msg_controllen = 0;
        }
        auto* c = reinterpret_cast<struct cmsghdr*>(static_cast<uint8_t*>(h.msg_control) + h.msg_controllen);
        std::memset(c, 0, CMSG_SPACE(sizeof(uint16_t)));
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segment = uint16_t(len);
        std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
        h.msg_controllen += CMSG_SPACE(sizeof(uint16_t));
      }
      scratch.datagrams[k] = run;
      planned += run;
    }
    int r = sendmmsg(io_.fd(), scratch.msgs.data(), msgCount, MSG_DONTWAIT);
    if (r > 0) {
      for (int k = 0; k < r; k++) {
        done += scratch.datagrams[k];
        if (scratch.datagrams[k] > 1) gsoSends_++;
      }
      continue;
    }
    int err = r == 0 ? EAGAIN : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    uint8_t* source = sources == nullptr ? nullptr : sources + size_t(start + done) * kAddrRecord;
    if (source != nullptr && source[20] == kSourceSet) {
      // Sticky, but not too sticky: the source is gone; the same datagram goes again from
      // the kernel's choice.
      source[20] = kSourceCleared;
      clearedSources_++;
      continue;
    }
    if (scratch.datagrams[0] > 1) {
      // The kernel or the route refuses GSO (no UDP_SEGMENT before Linux 4.18, or a
      // device without checksum offload: EIO): send one by one from now on.
      gso_ = false;
      lastSendErrno_ = err;
      continue;
    }
    // This datagram was refused (no route, a firewall, too long...): skip it.
    failedSends_++;
    lastSendErrno_ = err;
    done++;
  }
  return Napi::Number::New(env, done);
}

// watch(callback, events): watch for UV_READABLE (1) and/or UV_WRITABLE (2); libuv calls
// `callback(events)`, or `callback(-1, code)` once if polling failed, after which
// watching has stopped. events 0 stops watching and lets the loop exit.
Napi::Value UdpSocket::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  int events = int(ArgU32(info, 1)) & (UV_READABLE | UV_WRITABLE);
  io_.Watch(env, info[0].As<Napi::Function>(), events);
  return env.Undefined();
}

// setGso(on): use UDP GSO for runs of datagrams (the default), or send each alone.
Napi::Value UdpSocket::SetGso(const Napi::CallbackInfo& info) {
  gso_ = info[0].ToBoolean().Value();
  return info.Env().Undefined();
}

// setGro(on) -> whether UDP GRO is on: the kernel may hand over a run of datagrams from
// one sender as one (UDP_GRO; recvBatch reports the segment size). False where the
// kernel lacks it (before Linux 5.0): datagrams then come one by one, as before.
Napi::Value UdpSocket::SetGro(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (io_.fd() < 0) ThrowErrno(env, EBADF, "setsockopt UDP_GRO");
  int on = info[0].ToBoolean().Value() ? 1 : 0;
  if (setsockopt(io_.fd(), SOL_UDP, UDP_GRO, &on, sizeof on) == 0) gro_ = on != 0;
  else gro_ = false;
  return Napi::Boolean::New(env, gro_);
}

Napi::Value UdpSocket::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("truncatedReceives", Napi::Number::New(env, double(truncatedReceives_)));
  o.Set("failedSends", Napi::Number::New(env, double(failedSends_)));
  o.Set("gsoSends", Napi::Number::New(env, double(gsoSends_)));
  o.Set("gso", Napi::Boolean::New(env, gso_));
  o.Set("clearedSources", Napi::Number::New(env, double(clearedSources_)));
  o.Set("lastSendError", lastSendErrno_ == 0 ? env.Undefined() : Napi::String::New(env, ErrnoName(lastSendErrno_)));
  return o;
}

Napi::Value FormatAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array bytes = ArgBytes(info, 0);
  char text[INET6_ADDRSTRLEN];
  int af = bytes.ByteLength() == 4 ? AF_INET : bytes.ByteLength() == 16 ? AF_INET6 : -1;
  if (af < 0) throw Napi::RangeError::New(env, "an address is 4 or 16 bytes");
  if (inet_ntop(af, bytes.Data(), text, sizeof text) == nullptr) ThrowErrno(env, errno, "inet_ntop");
  return Napi::String::New(env, text);
}

Napi::Value ParseAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "address must be a string");
  std::string text = info[0].As<Napi::String>();
  Napi::Uint8Array out = ArgBytes(info, 1);
  if (out.ByteLength() < 16) throw Napi::RangeError::New(env, "output must hold 16 bytes");
  if (inet_pton(AF_INET, text.c_str(), out.Data()) == 1) return Napi::Number::New(env, 4);
  if (inet_pton(AF_INET6, text.c_str(), out.Data()) == 1) return Napi::Number::New(env, 6);
  return Napi::Number::New(env, 0);
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  std::string name = info[0].As<Napi::String>();
  return Napi::Number::New(env, if_nametoindex(name.c_str()));
}

}  // namespace burrow
