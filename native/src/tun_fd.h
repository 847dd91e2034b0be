// TunFd: one owned packet file descriptor (a Linux TUN fd, or a utun fd handed in
// from outside), with batched reads and writes into caller-owned memory and a libuv
// readiness watcher. Arguments are validated in TypeScript (src/runtime/tun.ts); the
// checks here only keep memory safe if that layer is bypassed.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>

namespace burrow {

struct PollState;

// Throws a JS Error with code = errno name ("EPERM"), errno and syscall properties.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

class TunFd : public Napi::ObjectWrap<TunFd> {
 public:
  static Napi::Function Define(Napi::Env env);

  // new TunFd(fd): checks that fd is open, makes it non-blocking and owns it from
  // then on (it is closed by close(), by the finalizer, or at environment teardown).
  explicit TunFd(const Napi::CallbackInfo& info);
  ~TunFd() override;

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value ReadBatch(const Napi::CallbackInfo& info);
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value WritePackets(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Unwatch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  // Writes one packet. Returns true when the packet was consumed (written, or refused
  // by the kernel as malformed and counted), false when the batch must stop: EAGAIN,
  // or another error after earlier packets of the batch went out (it recurs on the
  // next call). Throws that error when the packet is the batch's `first`.
  bool WriteOne(Napi::Env env, const uint8_t* data, size_t len, bool first);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(void* arg);
  static void OnAsyncCleanup(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnPollClosed(uv_handle_t* handle);

  void StopPolling();  // stops the poll handle; touches no JS state
  void ClosePoll();    // starts closing the poll handle; touches no JS state
  void Release();      // closes the poll handle and the fd; touches no JS state

  napi_env env_;
  int fd_ = -1;
  PollState* poll_ = nullptr;
  bool watching_ = false;
  bool inCallback_ = false;
  bool cleanupHook_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;

  uint64_t truncatedReads_ = 0;
  uint64_t refusedWrites_ = 0;
  int lastRefusedErrno_ = 0;
};

}  // namespace burrow
