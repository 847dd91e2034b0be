// UdpSocket: one owned non-blocking UDP socket (IPv4, or IPv6-only) with batched
// receives (recvmmsg) into caller-owned slots and batched sends (sendmmsg) from a
// caller-owned packed arena, and a libuv watcher for readability and writability.
// Arguments are validated in TypeScript (src/runtime/udp.ts); the checks here only keep
// memory safe if that layer is bypassed.
//
// Addresses cross the boundary as 24-byte records: bytes 0-15 the address (IPv4 in
// 0-3), 16-17 the port (big-endian), 20-23 the IPv6 scope id (little-endian).
// Local addresses (where a datagram arrived, where one should leave from) are 24-byte
// records too: 0-15 the address, 16-19 the interface index (little-endian), 20 a state:
// 0 none (the kernel's choice), 1 set, 2 cleared by sendBatch (the kernel refused it).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>

#include "polled_fd.h"

namespace burrow {

class UdpSocket : public PolledWrap<UdpSocket> {
 public:
  static Napi::Function Define(Napi::Env env);

  // new UdpSocket(family 4 | 6, port, bufferBytes): creates and binds the socket to
  // the wildcard address (IPv6: IPV6_V6ONLY), throws an errno error on failure.
  explicit UdpSocket(const Napi::CallbackInfo& info);

 private:
  Napi::Value Port(const Napi::CallbackInfo& info);
  Napi::Value RecvBatch(const Napi::CallbackInfo& info);
  Napi::Value SendBatch(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value SetGso(const Napi::CallbackInfo& info);
  Napi::Value SetGro(const Napi::CallbackInfo& info);

  int family_ = 4;

  uint64_t truncatedReceives_ = 0;
  uint64_t failedSends_ = 0;
  // UDP GSO (UDP_SEGMENT) is used until the kernel refuses it once; sends made with it.
  bool gso_ = true;
  uint64_t gsoSends_ = 0;
  // UDP GRO (UDP_GRO) on receive: off until setGro(true) succeeds.
  bool gro_ = false;
  uint64_t clearedSources_ = 0;
  int lastSendErrno_ = 0;
};

// formatAddress(bytes: Uint8Array(4 | 16)) -> string (inet_ntop);
// parseAddress(text, out: Uint8Array(16)) -> 0 (not an address), 4 or 6 (inet_pton).
Napi::Value FormatAddress(const Napi::CallbackInfo& info);
Napi::Value ParseAddress(const Napi::CallbackInfo& info);
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info);

}  // namespace burrow
