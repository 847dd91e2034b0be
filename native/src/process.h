// Process-wide settings for the daemon (see process.cc).
#pragma once
#include <napi.h>

namespace burrow {
Napi::Value HardenProcess(const Napi::CallbackInfo& info);
}
