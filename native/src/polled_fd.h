// PolledFd: the lifecycle shared by the addon's objects that own a file descriptor
// watched by libuv (TunFd, UdpSocket): the fd itself, the uv_poll_t and the JS callback
// it drives, and the hooks that close both at environment teardown, so that a worker
// thread can exit while watching. Nothing here touches JS state except Watch, Unwatch,
// Close and the poll callback.
//
// PolledWrap<T>: the Napi::ObjectWrap<T> base (CRTP, like ObjectWrap itself) of such an
// object. It holds the PolledFd and gives the JS members the objects share (the `fd`
// accessor and close()), so that T keeps only what is specific to it: its reads and
// writes, and how a poll result is passed to JS.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>

namespace burrow {

// The errno name, as Node spells it in `err.code` ("EPERM"; also EBADFD, which libuv
// does not know and a Linux TUN fd returns once its interface is gone).
std::string ErrnoCode(int err);

// Throws a JS Error with code = errno name ("EPERM"), errno and syscall properties.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

struct PollState;

class PolledFd {
 public:
  // Fills in the JS callback's arguments (at most 2) for one poll result and returns
  // how many there are. status < 0 means polling failed: watching has stopped and the
  // owner has been unreferenced already.
  using PollArgs = size_t (*)(PolledFd& io, Napi::Env env, int status, int events,
                              napi_value* args);

  // `owner` is the ObjectWrap this belongs to: it is referenced while watching and is
  // the callback's receiver. `socket` selects uv_poll_init_socket over uv_poll_init.
  PolledFd(Napi::Env env, Napi::Reference<Napi::Object>& owner, const char* resourceName,
           bool socket, PollArgs pollArgs);
  ~PolledFd();
  PolledFd(const PolledFd&) = delete;
  PolledFd& operator=(const PolledFd&) = delete;

  // Takes ownership of fd: it is closed by Close(), by the destructor (the owner's
  // finalizer) or at environment teardown.
  void Adopt(int fd);
  int fd() const { return fd_; }

  // Watches for `events` (UV_READABLE and/or UV_WRITABLE; 0 stops watching), calling
  // `callback` with the owner as receiver. A watched owner is referenced, so it stays
  // alive like a listening socket. Throws EBADF once closed.
  void Watch(Napi::Env env, Napi::Function callback, int events);
  // Stops watching and drops the callback, so an idle owner holds no strong reference
  // to JS and can be garbage-collected.
  void Unwatch();
  // Stops watching, closes the poll handle and the fd, and drops the callback.
  void Close();
  // Drops the callback (from a PollArgs whose owner stops calling JS after an error).
  void ResetCallback() { callback_.Reset(); }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(void* arg);
  static void OnAsyncCleanup(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnPollClosed(uv_handle_t* handle);

  void StopPolling();  // stops the poll handle; touches no JS state
  void ClosePoll();    // starts closing the poll handle; touches no JS state
  void Release();      // closes the poll handle and the fd; touches no JS state

  napi_env env_;
  Napi::Reference<Napi::Object>& owner_;
  const char* resourceName_;
  bool socket_;
  PollArgs pollArgs_;
  int fd_ = -1;
  PollState* poll_ = nullptr;
  int events_ = 0;  // the mask libuv is watching; 0 = stopped
  bool inCallback_ = false;
  bool cleanupHook_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

template <typename T>
class PolledWrap : public Napi::ObjectWrap<T> {
 protected:
  using Property = typename Napi::ObjectWrap<T>::PropertyDescriptor;

  PolledWrap(const Napi::CallbackInfo& info, const char* resourceName, bool socket,
             PolledFd::PollArgs pollArgs)
      : Napi::ObjectWrap<T>(info), io_(info.Env(), *this, resourceName, socket, pollArgs) {}

  // For T::Define: the `fd` accessor (-1 once closed), and close(), which stops
  // watching, closes the poll handle and the fd, and drops the callback.
  static Property FdAccessor() {
    return Napi::ObjectWrap<T>::InstanceAccessor("fd", static_cast<Method>(&PolledWrap::Fd),
                                                 nullptr);
  }
  static Property CloseMethod() {
    return Napi::ObjectWrap<T>::InstanceMethod("close", static_cast<Method>(&PolledWrap::Close));
  }

  PolledFd io_;  // the fd, its watcher and their teardown

 private:
  using Method = Napi::Value (T::*)(const Napi::CallbackInfo& info);

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), io_.fd()); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    io_.Close();
    return info.Env().Undefined();
  }
};

}  // namespace burrow
