// TunFd: one owned packet file descriptor (a Linux TUN fd, or a utun fd handed in
// from outside), with batched reads and writes into caller-owned memory and a libuv
// readiness watcher. Arguments are validated in TypeScript (src/runtime/tun.ts); the
// checks here only keep memory safe if that layer is bypassed.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>

#include "polled_fd.h"

namespace burrow {

class TunFd : public PolledWrap<TunFd> {
 public:
  static Napi::Function Define(Napi::Env env);

  // new TunFd(fd): checks that fd is open, makes it non-blocking and owns it from
  // then on (it is closed by close(), by the finalizer, or at environment teardown).
  explicit TunFd(const Napi::CallbackInfo& info);

 private:
  Napi::Value ReadBatch(const Napi::CallbackInfo& info);
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value WritePackets(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Unwatch(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value VnetHdr(const Napi::CallbackInfo& info);
  Napi::Value SetOffload(const Napi::CallbackInfo& info);

  // Writes one packet. Returns true when the packet was consumed (written, or refused
  // by the kernel as malformed and counted), false when the batch must stop: EAGAIN,
  // or another error after earlier packets of the batch went out (it recurs on the
  // next call). Throws that error when the packet is the batch's `first`.
  // With IFF_VNET_HDR, `hdr` (kVnetHdr bytes, or null for none: a plain packet) goes
  // in front of the packet.
  bool WriteOne(Napi::Env env, const uint8_t* data, size_t len, bool first, const uint8_t* hdr = nullptr);

  // IFF_VNET_HDR is on for this fd (read from the kernel when adopted).
  bool vnetHdr_ = false;
  uint64_t truncatedReads_ = 0;
  uint64_t refusedWrites_ = 0;
  int lastRefusedErrno_ = 0;
};

}  // namespace burrow
