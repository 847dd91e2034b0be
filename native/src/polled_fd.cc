#include "polled_fd.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>

namespace burrow {

// A libuv poll handle outlives the PolledFd that made it: uv_close() finishes on a later
// loop turn. Until then an async cleanup hook holds up environment teardown, because
// Node unloads the addon after teardown, and libuv would otherwise call OnPollClosed
// in unmapped code (a worker thread exiting while watching crashed that way).
struct PollState {
  uv_poll_t handle;  // first member: libuv hands back &handle
  PolledFd* owner;
  napi_async_cleanup_hook_handle hook = nullptr;
};

std::string ErrnoCode(int err) {
#ifdef EBADFD
  if (err == EBADFD) return "EBADFD";
#endif
  char name[64];
  uv_err_name_r(-err, name, sizeof name);
  return name;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

PolledFd::PolledFd(Napi::Env env, Napi::Reference<Napi::Object>& owner,
                   const char* resourceName, bool socket, PollArgs pollArgs)
    : env_(env), owner_(owner), resourceName_(resourceName), socket_(socket),
      pollArgs_(pollArgs) {}

PolledFd::~PolledFd() { Release(); }

void PolledFd::Adopt(int fd) {
  fd_ = fd;
  if (napi_add_env_cleanup_hook(env_, OnEnvCleanup, this) == napi_ok) cleanupHook_ = true;
}

void PolledFd::OnEnvCleanup(void* arg) {
  auto* self = static_cast<PolledFd*>(arg);
  self->cleanupHook_ = false;  // Node removes a hook once it has run
  self->Release();
}

void PolledFd::StopPolling() {
  if (poll_ != nullptr && events_ != 0) uv_poll_stop(&poll_->handle);
  events_ = 0;
}

void PolledFd::ClosePoll() {
  StopPolling();
  PollState* state = poll_;
  if (state == nullptr) return;
  poll_ = nullptr;
  state->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle), OnPollClosed);
}

void PolledFd::OnPollClosed(uv_handle_t* handle) {
  auto* state = reinterpret_cast<PollState*>(handle);
  if (state->hook != nullptr) napi_remove_async_cleanup_hook(state->hook);
  delete state;
}

void PolledFd::OnAsyncCleanup(napi_async_cleanup_hook_handle /*hook*/, void* arg) {
  // Teardown waits until OnPollClosed removes the hook. The owner is gone once
  // closing has started; otherwise close now, before the fd is closed.
  auto* state = static_cast<PollState*>(arg);
  if (state->owner != nullptr) state->owner->ClosePoll();
}

void PolledFd::Release() {
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

void PolledFd::Watch(Napi::Env env, Napi::Function callback, int events) {
  if (fd_ < 0) ThrowErrno(env, EBADF, "watch");
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "no libuv event loop");
    }
    auto* state = new PollState{};
    int r = socket_ ? uv_poll_init_socket(loop, &state->handle, fd_)
                    : uv_poll_init(loop, &state->handle, fd_);
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
  if (callback_.IsEmpty() || callback_.Value() != callback) {
    callback_ = Napi::Persistent(callback);
  }
  if (!asyncContext_) asyncContext_ = std::make_unique<Napi::AsyncContext>(env, resourceName_);
  if (events == events_) return;
  if (events == 0) {
    StopPolling();
    owner_.Unref();
    return;
  }
  int r = uv_poll_start(&poll_->handle, events, OnPoll);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_start");
  if (events_ == 0) owner_.Ref();
  events_ = events;
}

void PolledFd::Unwatch() {
  if (events_ != 0) {
    StopPolling();
    owner_.Unref();
  }
  callback_.Reset();
}

void PolledFd::Close() {
  if (events_ != 0) {
    StopPolling();
    owner_.Unref();
  }
  Release();
  callback_.Reset();
  if (!inCallback_) asyncContext_.reset();
}

void PolledFd::OnPoll(uv_poll_t* handle, int status, int events) {
  PolledFd* self = reinterpret_cast<PollState*>(handle)->owner;
  if (self == nullptr || self->events_ == 0 || self->callback_.IsEmpty()) return;
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  // A local handle on the JS object keeps the owner alive for the whole call, even if
  // the callback closes it and drops the last reference.
  Napi::Object recv = self->owner_.Value();
  Napi::Function callback = self->callback_.Value();
  if (status < 0) {
    // libuv has already stopped the handle (POLLERR); mirror that.
    self->StopPolling();
    self->owner_.Unref();
  }
  napi_value args[2];
  size_t argc = self->pollArgs_(*self, env, status, events, args);
  self->inCallback_ = true;
  try {
    callback.MakeCallback(recv, argc, args, *self->asyncContext_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
  self->inCallback_ = false;
  if (self->fd_ < 0) self->asyncContext_.reset();
}

}  // namespace burrow
