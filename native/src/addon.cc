// burrow_native: the module's entry point. See tun_fd.h for the TunFd class.
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#ifdef __linux__
#include <linux/if_tun.h>
#include <net/if.h>
#endif

#include "aead.h"
#include "checksum.h"
#include "process.h"
#include "tun_fd.h"
#include "udp_socket.h"

namespace burrow {
namespace {

struct AddonData {
  Napi::FunctionReference tunFd;
};

// open(name, vnetHdr) -> { handle: TunFd, name: string }: creates (or attaches to a
// persistent) TUN interface `name`, IFF_TUN | IFF_NO_PI, and IFF_VNET_HDR when vnetHdr
// is true (every packet then crosses with a virtio_net_hdr in front: what lets a write
// carry a GRO-coalesced TCP super-packet), non-blocking and close-on-exec. The name
// may be a template such as "burrow%d"; `name` in the result is the kernel's choice.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
#ifdef __linux__
  std::string name = info[0].As<Napi::String>();
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throw Napi::RangeError::New(env, "interface name must be 1 to 15 bytes");
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (info[1].ToBoolean().Value() ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "ioctl TUNSETIFF");
  }
  Napi::Object handle;
  try {
    handle = env.GetInstanceData<AddonData>()->tunFd.New({Napi::Number::New(env, fd)});
  } catch (...) {
    ::close(fd);
    throw;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", handle);
  result.Set("name", Napi::String::New(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)));
  return result;
#else
  ThrowErrno(env, ENOTSUP, "open TUN (Linux only; elsewhere adopt a descriptor)");
#endif
}

// ifName(fd) -> string | undefined: the interface a TUN fd is attached to, or
// undefined when fd is open but not an attached TUN fd. Throws EBADF if fd is not open.
Napi::Value IfName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fcntl(fd, F_GETFD) < 0) ThrowErrno(env, errno, "fcntl F_GETFD");
#ifdef __linux__
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) == 0) {
    return Napi::String::New(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  }
#endif
  return env.Undefined();
}

// setSocketMark(fd, mark): SO_MARK on a socket (needs CAP_NET_ADMIN), so that policy
// routing can keep the tunnel's own UDP traffic out of the tunnel (wg-quick's fwmark).
Napi::Value SetSocketMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "fd and mark must be numbers");
  int fd = info[0].As<Napi::Number>().Int32Value();
#ifdef __linux__
  uint32_t mark = info[1].As<Napi::Number>().Uint32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) ThrowErrno(env, errno, "setsockopt SO_MARK");
  return env.Undefined();
#else
  ThrowErrno(env, ENOTSUP, "SO_MARK (Linux only)");
#endif
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function tunFd = TunFd::Define(env);
  auto* data = new AddonData{Napi::Persistent(tunFd)};
  env.SetInstanceData(data);
  exports.Set("TunFd", tunFd);
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("ifName", Napi::Function::New(env, IfName, "ifName"));
  exports.Set("setSocketMark", Napi::Function::New(env, SetSocketMark, "setSocketMark"));
  exports.Set("UdpSocket", UdpSocket::Define(env));
  exports.Set("formatAddress", Napi::Function::New(env, FormatAddress, "formatAddress"));
  exports.Set("parseAddress", Napi::Function::New(env, ParseAddress, "parseAddress"));
  exports.Set("ifNameToIndex", Napi::Function::New(env, IfNameToIndex, "ifNameToIndex"));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSeal, "aeadSeal"));
  exports.Set("aeadOpen", Napi::Function::New(env, AeadOpen, "aeadOpen"));
  exports.Set("checksumChunks", Napi::Function::New(env, ChecksumChunks, "checksumChunks"));
  exports.Set("hardenProcess", Napi::Function::New(env, HardenProcess, "hardenProcess"));
  return exports;
}

}  // namespace burrow

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return burrow::Init(env, exports);
}

NODE_API_MODULE(burrow_native, InitModule)
