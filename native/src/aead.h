// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce, in place, on OpenSSL (aead.cc).
#pragma once
#include <napi.h>

namespace burrow {
Napi::Value AeadSeal(const Napi::CallbackInfo& info);
Napi::Value AeadOpen(const Napi::CallbackInfo& info);
}  // namespace burrow
