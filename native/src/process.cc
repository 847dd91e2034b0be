// hardenProcess(): no core dumps from the daemon, which holds keys in memory.
//   prctl(PR_SET_DUMPABLE, 0): no core file, and /proc/PID/mem, maps and friends become
//     root's alone, so no other user can ptrace or read the process.
//   setrlimit(RLIMIT_CORE, 0): no core even if something turns dumpable back on.
#include "process.h"

#include <errno.h>
#include <sys/resource.h>

#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <cstring>
#include <string>

namespace burrow {

Napi::Value HardenProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    Napi::Error::New(env, std::string("setrlimit(RLIMIT_CORE): ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
#ifdef __linux__
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    Napi::Error::New(env, std::string("prctl(PR_SET_DUMPABLE): ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
#endif
  return env.Undefined();
}

}  // namespace burrow
