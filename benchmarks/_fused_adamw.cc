// Prototype: AdamW as one XLA FFI custom call that reads params, grads, mu and nu once and
// writes params, mu and nu once, in place: the seven-pass minimum that XLA:CPU's three loop
// fusions per leaf (ten passes) cannot reach. Built by benchmarks/_fused_ffi.py with g++.
//
// scalars = [lr, b1, b2, eps, weight_decay, 1 - b1^t, 1 - b2^t], computed in JAX so that the
// step count stays in the optimizer state.

#include <cmath>
#include <cstdint>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

void Update(int64_t begin, int64_t end, const float* s, const float* p, const float* g,
            const float* mu, const float* nu, float* p_out, float* mu_out, float* nu_out) {
  const float lr = s[0], b1 = s[1], b2 = s[2], eps = s[3], wd = s[4];
  const float bc1 = s[5], bc2 = s[6];
  // In place (p_out == p, ...), so the compiler cannot prove the arrays apart and would keep
  // the scalar loop; each index is read before it is written, which makes SIMD safe.
#pragma GCC ivdep
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];
    const float m = b1 * mu[i] + (1.0f - b1) * gi;
    const float v = b2 * nu[i] + (1.0f - b2) * (gi * gi);
    const float u = (m / bc1) / (std::sqrt(v / bc2) + eps) + wd * p[i];
    p_out[i] = p[i] + (-lr) * u;
    mu_out[i] = m;
    nu_out[i] = v;
  }
}

ffi::Error FusedAdamwImpl(ffi::Buffer<ffi::F32> p, ffi::Buffer<ffi::F32> g,
                          ffi::Buffer<ffi::F32> mu, ffi::Buffer<ffi::F32> nu,
                          ffi::Buffer<ffi::F32> scalars, int64_t threads,
                          ffi::ResultBuffer<ffi::F32> p_out, ffi::ResultBuffer<ffi::F32> mu_out,
                          ffi::ResultBuffer<ffi::F32> nu_out) {
  const int64_t n = static_cast<int64_t>(p.element_count());
  const float* s = scalars.typed_data();
  auto run = [&](int64_t begin, int64_t end) {
    Update(begin, end, s, p.typed_data(), g.typed_data(), mu.typed_data(), nu.typed_data(),
           p_out->typed_data(), mu_out->typed_data(), nu_out->typed_data());
  };
  // Small leaves stay on the calling thread: starting a thread costs more than they take.
  if (threads <= 1 || n < (int64_t{1} << 18)) {
    run(0, n);
    return ffi::Error::Success();
  }
  const int64_t share = (n + threads - 1) / threads;
  std::thread helper[8];
  const int64_t helpers = threads - 1 < 8 ? threads - 1 : 8;
  for (int64_t t = 0; t < helpers; ++t) {
    const int64_t begin = (t + 1) * share, end = begin + share < n ? begin + share : n;
    if (begin < end) helper[t] = std::thread(run, begin, end);
  }
  run(0, share < n ? share : n);
  for (int64_t t = 0; t < helpers; ++t) {
    if (helper[t].joinable()) helper[t].join();
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(FusedAdamw, FusedAdamwImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
