// ChaCha20-Poly1305 with WireGuard's nonce on the OpenSSL that Node links (its EVP
// interface), sealing and opening in caller-owned memory: no allocation, no JS object
// per packet, one cipher context per thread reused for every call. It backs the Aead
// seam (src/runtime/addon-crypto.ts), which checks the arguments; the checks here only
// keep memory safe if that layer is bypassed.
#include "aead.h"

#include <openssl/evp.h>

#include <cstring>

namespace burrow {

namespace {

constexpr size_t kKey = 32;
constexpr size_t kTag = 16;
constexpr size_t kNonce = 12;

// Two cipher contexts per thread (one sealing, one opening), set up for the cipher and
// the 12-byte nonce once; a call only gives its key and nonce. Measured: setting the
// cipher up again per call costs more than the whole seal of a 64-byte packet. The last
// session key used stays in the context until the next call or the thread's exit, as it
// stays in the keypair that the engine holds anyway.
struct Context {
  EVP_CIPHER_CTX* seal = Make(1);
  EVP_CIPHER_CTX* open = Make(0);
  ~Context() {
    EVP_CIPHER_CTX_free(seal);  // frees and cleanses the key schedule
    EVP_CIPHER_CTX_free(open);
  }
  static EVP_CIPHER_CTX* Make(int enc) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr &&
        (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr, enc) != 1 ||
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, int(kNonce), nullptr) != 1)) {
      EVP_CIPHER_CTX_free(ctx);
      ctx = nullptr;
    }
    return ctx;
  }
};
thread_local Context context;

Napi::Uint8Array Bytes(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "expected a Uint8Array");
  }
  return info[i].As<Napi::Uint8Array>();
}

void Nonce(const Napi::CallbackInfo& info, uint8_t nonce[kNonce]) {
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "counter must be a number");
  double c = info[1].As<Napi::Number>().DoubleValue();
  if (!(c >= 0 && c <= 9007199254740991.0)) throw Napi::RangeError::New(info.Env(), "counter out of range");
  uint64_t counter = uint64_t(c);
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = uint8_t(counter >> (8 * i));
}

bool Init(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, int enc) {
  return ctx != nullptr && EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, enc) == 1;
}

bool Aad(EVP_CIPHER_CTX* ctx, const Napi::Uint8Array& aad) {
  int n = 0;
  return aad.ByteLength() == 0 || EVP_CipherUpdate(ctx, nullptr, &n, aad.Data(), int(aad.ByteLength())) == 1;
}

}  // namespace

// aeadSeal(key, counter, plaintext, aad, out): out (plaintext.length + 16 bytes) gets
// ciphertext || tag. out may be plaintext itself (in place) or overlap it anywhere.
Napi::Value AeadSeal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = Bytes(info, 0);
  uint8_t nonce[kNonce];
  Nonce(info, nonce);
  Napi::Uint8Array plaintext = Bytes(info, 2);
  Napi::Uint8Array aad = Bytes(info, 3);
  Napi::Uint8Array out = Bytes(info, 4);
  size_t n = plaintext.ByteLength();
  if (key.ByteLength() != kKey || out.ByteLength() != n + kTag || n > 0x7fffffff) {
    throw Napi::RangeError::New(env, "aeadSeal: bad key or output length");
  }
  uint8_t* dst = out.Data();
  // Encrypt in place in out: EVP allows in == out, not other overlaps.
  if (dst != plaintext.Data()) std::memmove(dst, plaintext.Data(), n);
  EVP_CIPHER_CTX* ctx = context.seal;
  int len = 0;
  bool ok = Init(ctx, key.Data(), nonce, 1) && Aad(ctx, aad) &&
            (n == 0 || EVP_CipherUpdate(ctx, dst, &len, dst, int(n)) == 1) &&
            EVP_CipherFinal_ex(ctx, dst + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, int(kTag), dst + n) == 1;
  if (!ok) throw Napi::Error::New(env, "aeadSeal: OpenSSL refused ChaCha20-Poly1305");
  return env.Undefined();
}

// aeadOpen(key, counter, sealed, aad, out) -> boolean: out (sealed.length - 16 bytes)
// gets the plaintext when the tag verifies; false, out undefined, when it does not.
Napi::Value AeadOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = Bytes(info, 0);
  uint8_t nonce[kNonce];
  Nonce(info, nonce);
  Napi::Uint8Array sealed = Bytes(info, 2);
  Napi::Uint8Array aad = Bytes(info, 3);
  Napi::Uint8Array out = Bytes(info, 4);
  if (sealed.ByteLength() < kTag) return Napi::Boolean::New(env, false);
  size_t n = sealed.ByteLength() - kTag;
  if (key.ByteLength() != kKey || out.ByteLength() != n || n > 0x7fffffff) {
    throw Napi::RangeError::New(env, "aeadOpen: bad key or output length");
  }
  uint8_t tag[kTag];
  std::memcpy(tag, sealed.Data() + n, kTag);
  uint8_t* dst = out.Data();
  if (dst != sealed.Data()) std::memmove(dst, sealed.Data(), n);
  EVP_CIPHER_CTX* ctx = context.open;
  int len = 0;
  bool ok = Init(ctx, key.Data(), nonce, 0) && Aad(ctx, aad) &&
            (n == 0 || EVP_CipherUpdate(ctx, dst, &len, dst, int(n)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, int(kTag), tag) == 1 &&
            EVP_CipherFinal_ex(ctx, dst + len, &len) == 1;
  return Napi::Boolean::New(env, ok);
}

}  // namespace burrow
