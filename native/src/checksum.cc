// checksumChunks(data, start, end, chunk, out) -> count: out[k] is the one's-complement
// sum (RFC 1071), folded to 16 bits and not complemented, in network byte order, of the
// bytes data[start + k chunk, min(start + (k + 1) chunk, end)), each piece summed as
// if it began at an even offset. It is what the TSO cut needs for the payload of each
// segment of a super-packet: one call per super-packet instead of a JavaScript loop over
// every byte.
#include "checksum.h"

#include <cstdint>
#include <cstring>

namespace burrow {

namespace {

// Sums host-order 32-bit words into 64 bits (RFC 1071 §2(B): the byte order of the
// words does not matter; the result is swapped back at the end), then the 0 to 3 bytes
// left over in network order.
uint16_t Sum(const uint8_t* p, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    acc += w;
  }
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint32_t sum = uint32_t(acc);
  const uint16_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) == 1) sum = ((sum & 0xff) << 8) | (sum >> 8);
  if (i + 2 <= n) {
    sum += (uint32_t(p[i]) << 8) | p[i + 1];
    i += 2;
  }
  if (i < n) sum += uint32_t(p[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

}  // namespace

Napi::Value ChecksumChunks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "expected (Uint8Array, start, end, chunk, Uint32Array)");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array out = info[4].As<Napi::Uint32Array>();
  uint32_t start = info[1].As<Napi::Number>().Uint32Value();
  uint32_t end = info[2].As<Napi::Number>().Uint32Value();
  uint32_t chunk = info[3].As<Napi::Number>().Uint32Value();
  if (chunk == 0 || start > end || end > data.ByteLength()) throw Napi::RangeError::New(env, "chunks out of range");
  uint64_t count = (uint64_t(end - start) + chunk - 1) / chunk;
  if (count > out.ElementLength()) throw Napi::RangeError::New(env, "out holds too few sums");
  const uint8_t* p = data.Data();
  uint32_t* sums = out.Data();
  for (uint64_t k = 0; k < count; k++) {
    uint64_t from = start + k * chunk;
    uint64_t to = from + chunk < end ? from + chunk : end;
    sums[k] = Sum(p + from, size_t(to - from));
  }
  return Napi::Number::New(env, double(count));
}

}  // namespace burrow
