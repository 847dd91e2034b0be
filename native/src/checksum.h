// The Internet checksum (RFC 1071) of many pieces of one buffer in one call, for the TSO
// cut (src/runtime/tso.ts), which checks the arguments.
#pragma once
#include <napi.h>

namespace burrow {
Napi::Value ChecksumChunks(const Napi::CallbackInfo& info);
}
