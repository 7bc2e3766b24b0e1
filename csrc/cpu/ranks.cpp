#include "cpu/ranks.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace unlearn::cpu {

namespace {

constexpr int kDigitBits = 11;
constexpr int kBuckets = 1 << kDigitBits;

// An unsigned key whose order refines the order of the finite value v: the
// sign bit flipped for v >= 0, every bit for v < 0 (-0 comes just before +0,
// which compare equal and so stay in one group).
template <typename T, typename U>
U sort_key(T v) {
  U u;
  std::memcpy(&u, &v, sizeof(T));
  constexpr U sign = U{1} << (8 * sizeof(U) - 1);
  return (u & sign) ? ~u : (u | sign);
}

// The positions 0..n-1 ordered by key (a stable LSD radix sort, 11 bits a
// pass; a pass whose digit is the same for every key is skipped).
template <typename U>
std::vector<uint32_t> radix_order(std::vector<U> keys) {
  constexpr int kPasses = (8 * sizeof(U) + kDigitBits - 1) / kDigitBits;
  const int64_t n = static_cast<int64_t>(keys.size());
  std::vector<uint32_t> order(n), next_order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
  if (n == 0) return order;
  std::vector<std::array<int64_t, kBuckets>> counts(kPasses);
  for (auto& c : counts) c.fill(0);
  for (const U k : keys) {
    for (int p = 0; p < kPasses; ++p) ++counts[p][(k >> (p * kDigitBits)) & (kBuckets - 1)];
  }
  std::vector<U> next_keys(n);
  for (int p = 0; p < kPasses; ++p) {
    auto& start = counts[p];
    const int shift = p * kDigitBits;
    if (start[(keys[0] >> shift) & (kBuckets - 1)] == n) continue;
    int64_t sum = 0;
    for (auto& c : start) sum += std::exchange(c, sum);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t to = start[(keys[i] >> shift) & (kBuckets - 1)]++;
      next_keys[to] = keys[i];
      next_order[to] = order[i];
    }
    keys.swap(next_keys);
    order.swap(next_order);
  }
  return order;
}

// Writes R and L from the sorted order: a group of equal values at sorted
// positions [a, b) has R = b and L = n - a.
template <typename T>
void ranks_from_order(const T* y, const std::vector<uint32_t>& order, int64_t* up, int64_t* down) {
  const int64_t n = static_cast<int64_t>(order.size());
  for (int64_t a = 0, b = 0; a < n; a = b) {
    const T v = y[order[a]];
    while (b < n && y[order[b]] == v) ++b;
    for (int64_t k = a; k < b; ++k) {
      up[order[k]] = b;
      down[order[k]] = n - a;
    }
  }
}

template <typename T>
void max_ranks_of(const T* y, int64_t n, int64_t* up, int64_t* down) {
  using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  std::vector<U> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = sort_key<T, U>(y[i]);
  ranks_from_order(y, radix_order(std::move(keys)), up, down);
}

}  // namespace

Ranks max_ranks(const at::Tensor& y) {
  const auto v = y.contiguous();
  const int64_t n = v.size(0);
  TORCH_CHECK(n < (int64_t{1} << 32), "max_ranks: at most 2^32 - 1 values");
  auto up = at::empty({n}, v.options().dtype(at::kLong));
  auto down = at::empty({n}, v.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "max_ranks_cpu", [&] {
    max_ranks_of(v.data_ptr<scalar_t>(), n, up.data_ptr<int64_t>(), down.data_ptr<int64_t>());
  });
  return {up, down};
}

}  // namespace unlearn::cpu
