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

// The errno name, as Node spells it in `err.code`. libuv does not know EBADFD, which a
// Linux TUN fd returns once its interface is gone.
std::string ErrnoName(int err) {
#ifdef EBADFD
  if (err == EBADFD) return "EBADFD";
#endif
  char name[64];
  uv_err_name_r(-err, name, sizeof name);
  return name;
}

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

}  // namespace

// A libuv poll handle outlives the TunFd that made it: uv_close() finishes on a later
// loop turn. Until then an async cleanup hook holds up environment teardown, because
// Node unloads the addon after teardown, and libuv would otherwise call OnPollClosed
// in unmapped code (a worker thread exiting while watching crashed that way).
struct PollState {
  uv_poll_t handle;  // first member: libuv hands back &handle
  TunFd* owner;
  napi_async_cleanup_hook_handle hook = nullptr;
};

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

Napi::Function TunFd::Define(Napi::Env env) {
  return DefineClass(env, "TunFd",
                     {
                         InstanceAccessor<&TunFd::Fd>("fd"),
                         InstanceMethod<&TunFd::ReadBatch>("readBatch"),
                         InstanceMethod<&TunFd::WriteBatch>("writeBatch"),
                         InstanceMethod<&TunFd::WritePackets>("writePackets"),
                         InstanceMethod<&TunFd::Watch>("watch"),
                         InstanceMethod<&TunFd::Unwatch>("unwatch"),
                         InstanceMethod<&TunFd::Close>("close"),
                         InstanceMethod<&TunFd::Stats>("stats"),
                     });
}

TunFd::TunFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunFd>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "fd must not be negative");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) ThrowErrno(env, errno, "fcntl F_GETFL");
  if ((flags & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    ThrowErrno(env, errno, "fcntl F_SETFL O_NONBLOCK");
  }
  // Only now is the fd ours: a constructor that throws leaves it to the caller.
  fd_ = fd;
  if (napi_add_env_cleanup_hook(env_, OnEnvCleanup, this) == napi_ok) cleanupHook_ = true;
}

TunFd::~TunFd() { Release(); }

void TunFd::OnEnvCleanup(void* arg) {
  auto* self = static_cast<TunFd*>(arg);
  self->cleanupHook_ = false;  // Node removes a hook once it has run
  self->Release();
}

void TunFd::StopPolling() {
  if (poll_ != nullptr && watching_) uv_poll_stop(&poll_->handle);
  watching_ = false;
}

void TunFd::ClosePoll() {
  StopPolling();
  PollState* state = poll_;
  if (state == nullptr) return;
  poll_ = nullptr;
  state->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle), OnPollClosed);
}

void TunFd::OnPollClosed(uv_handle_t* handle) {
  auto* state = reinterpret_cast<PollState*>(handle);
  if (state->hook != nullptr) napi_remove_async_cleanup_hook(state->hook);
  delete state;
}

void TunFd::OnAsyncCleanup(napi_async_cleanup_hook_handle /*hook*/, void* arg) {
  // Teardown waits until OnPollClosed removes the hook. The owner is gone once
  // closing has started; otherwise close now, before the fd is closed.
  auto* state = static_cast<PollState*>(arg);
  if (state->owner != nullptr) state->owner->ClosePoll();
}

void TunFd::Release() {
  ClosePoll();  // stop polling before the fd closes, as libuv requires
  if (fd_ >= 0) {
    // Linux releases the descriptor even when close() reports EINTR: never retry.
    ::close(fd_);
    fd_ = -1;
  }
  if (cleanupHook_) {
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
    cleanupHook_ = false;
  }
}

Napi::Value TunFd::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_);
}

// readBatch(arena, slotSize, headroom, lengths, max) -> number of packets read into
// slots 0..n-1. Stops at EAGAIN (nothing more queued) or after `max` packets.
Napi::Value TunFd::ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t max = ArgU32(info, 4);
  Arena a = ArgArena(info, 0, max);
  if (fd_ < 0) ThrowErrno(env, EBADF, "read");
  const size_t room = a.slotSize - a.headroom;
  // A TUN read copies what fits and silently drops the rest of a longer packet. One
  // spare byte after the slot tells a packet that filled the slot exactly from one
  // that was cut short; a cut packet is dropped and counted, its slot reused.
  uint8_t spare;
  struct iovec iov[2] = {{nullptr, room}, {&spare, 1}};
  uint32_t n = 0;
  uint32_t dropped = 0;  // bounds the call when every read is cut short
  while (n < max && dropped < max) {
    iov[0].iov_base = a.base + size_t(n) * a.slotSize + a.headroom;
    ssize_t got = ::readv(fd_, iov, 2);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (n > 0) break;  // return what we have; the error recurs on the next call
      ThrowErrno(env, err, "read");
    }
    if (got == 0) break;  // end of file: not a TUN, but an adopted fd may be anything
    if (size_t(got) > room) {
      truncatedReads_++;
      dropped++;
      continue;
    }
    a.lengths[n++] = uint32_t(got);
  }
  return Napi::Number::New(env, n);
}

bool TunFd::WriteOne(Napi::Env env, const uint8_t* data, size_t len, bool first) {
  for (;;) {
    ssize_t put = ::write(fd_, data, len);
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
  if (fd_ < 0) ThrowErrno(env, EBADF, "write");
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

// writePackets(packets: Uint8Array[], start, count) -> packets consumed.
Napi::Value TunFd::WritePackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "packets must be an array");
  Napi::Array packets = info[0].As<Napi::Array>();
  uint32_t start = ArgU32(info, 1);
  uint32_t count = ArgU32(info, 2);
  if (uint64_t(start) + count > packets.Length()) {
    throw Napi::RangeError::New(env, "packets out of range");
  }
  if (fd_ < 0) ThrowErrno(env, EBADF, "write");
  uint32_t done = 0;
  while (done < count) {
    Napi::Value v = packets.Get(start + done);
    if (!IsTypedArrayOf(v, napi_uint8_array)) {
      throw Napi::TypeError::New(env, "every packet must be a Uint8Array");
    }
    Napi::Uint8Array p = v.As<Napi::Uint8Array>();
    if (!WriteOne(env, p.Data(), p.ByteLength(), done == 0)) break;
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
  if (fd_ < 0) ThrowErrno(env, EBADF, "watch");
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "no libuv event loop");
    }
    auto* state = new PollState{};
    int r = uv_poll_init(loop, &state->handle, fd_);
    if (r < 0) {
      delete state;
      ThrowErrno(env, -r, "uv_poll_init");
    }
    state->owner = this;
    if (napi_add_async_cleanup_hook(env, OnAsyncCleanup, state, &state->hook) != napi_ok) {
      state->hook = nullptr;
    }
    poll_ = state;
  }
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (!asyncContext_) asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "BurrowTun");
  if (!watching_) {
    int r = uv_poll_start(&poll_->handle, UV_READABLE, OnPoll);
    if (r < 0) ThrowErrno(env, -r, "uv_poll_start");
    watching_ = true;
    Ref();  // a watched device stays alive, like a listening socket
  }
  return env.Undefined();
}

// unwatch(): stops watching and drops the callback, so that an idle device holds no
// strong reference to JS and can be garbage-collected (and its fd closed).
Napi::Value TunFd::Unwatch(const Napi::CallbackInfo& info) {
  if (watching_) {
    StopPolling();
    Unref();
  }
  callback_.Reset();
  return info.Env().Undefined();
}

Napi::Value TunFd::Close(const Napi::CallbackInfo& info) {
  if (watching_) {
    StopPolling();
    Unref();
  }
  Release();
  callback_.Reset();
  if (!inCallback_) asyncContext_.reset();
  return info.Env().Undefined();
}

void TunFd::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  TunFd* self = reinterpret_cast<PollState*>(handle)->owner;
  if (self == nullptr || !self->watching_ || self->callback_.IsEmpty()) return;
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  // A local handle on the JS object keeps this instance alive for the whole call,
  // even if the callback closes the device and drops the last reference.
  Napi::Object recv = self->Value();
  Napi::Function callback = self->callback_.Value();
  napi_value arg = env.Undefined();
  if (status < 0) {
    // libuv has already stopped the handle (POLLERR); mirror that.
    self->StopPolling();
    self->Unref();
    self->callback_.Reset();
    arg = Napi::String::New(env, ErrnoName(-status));
  }
  self->inCallback_ = true;
  try {
    callback.MakeCallback(recv, {arg}, *self->asyncContext_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
  self->inCallback_ = false;
  if (self->fd_ < 0) self->asyncContext_.reset();
}

Napi::Value TunFd::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("truncatedReads", Napi::Number::New(env, double(truncatedReads_)));
  o.Set("refusedWrites", Napi::Number::New(env, double(refusedWrites_)));
  o.Set("lastRefusedWrite", lastRefusedErrno_ == 0
                                ? env.Undefined()
                                : Napi::String::New(env, ErrnoName(lastRefusedErrno_)));
  return o;
}

}  // namespace burrow
