// Exact sums of int64 tensors on any device, for the CODEC numerators and
// denominators that reach n^3 and so overflow int64 above n of about 2e6.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace unlearn {

// Entries summed per chunk: with t = hi * 2^32 + lo, hi in [-2^31, 2^31) and
// lo in [0, 2^32), a chunk's sums of hi and of lo stay below 2^61 and 2^62.
inline constexpr int64_t kExactSumChunk = int64_t{1} << 30;

// The exact sum of the int64 tensor t (any entries, any device, any length):
// per chunk of at most `chunk` entries (1 <= chunk <= kExactSumChunk) the sums
// of the high and low 32-bit halves, combined on the host in 128 bits. One
// host synchronisation.
inline __int128 exact_sum(const at::Tensor& t, int64_t chunk = kExactSumChunk) {
  TORCH_CHECK(t.scalar_type() == at::kLong && chunk >= 1 && chunk <= kExactSumChunk,
              "exact_sum: needs an int64 tensor and 1 <= chunk <= 2^30");
  const auto flat = t.reshape(-1);
  const int64_t n = flat.numel();
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += chunk) {
    const auto c = flat.narrow(0, start, std::min(chunk, n - start));
    parts.push_back(at::bitwise_right_shift(c, 32).sum());           // hi: arithmetic shift
    parts.push_back(at::bitwise_and(c, int64_t{0xffffffff}).sum());  // lo
  }
  if (parts.empty()) return 0;
  const auto host = at::stack(parts).cpu();
  const int64_t* h = host.data_ptr<int64_t>();
  __int128 total = 0;
  for (size_t k = 0; k < parts.size(); k += 2) {
    total += static_cast<__int128>(h[k]) * (int64_t{1} << 32) + h[k + 1];
  }
  return total;
}

}  // namespace unlearn
